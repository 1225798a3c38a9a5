// Benchmark: prefill time of each linear shape of one decoder layer on the CPU's integer kernel (W4A4, M tokens),
// for RTN and for the three methods whose runtime adds a side path to it: SERQ (its one correction matrix R riding
// along the main GEMM as extra K), L2QER (two low-rank factors: X·Aᵀ, the intermediate quantized, then ·Bᵀ) and
// QuaRot (an online Hadamard on down_proj's input). This is the comparison of the SERQ paper's Figure 3 (its side
// path up to 4.5× faster than L2QER's), on this CPU. RANDOM weights and calibration tokens: SmolLM2-135M's and
// LLaMA-2-7B's layer shapes. Each linear's Backend::quant_linear call (codes, GEMMs, side path) is timed alone, in
// alternation with RTN's on the same input (paired medians of N runs); a method's side path costs its time minus
// RTN's.
//
// usage: bench_side_paths [--tokens M] [--repeats N] [--rank R] [--model smollm2|llama7b|all]
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/common/build_info.h"
#include "core/common/error.h"
#include "core/common/progress.h"
#include "core/data/token_stream.h"
#include "core/model/fold.h"
#include "experiments/calibrate.h"
#include "methods/registry.h"
#include "tools/bench_support.h"

namespace {

struct Shape {
  std::string name;
  serq::ModelConfig config;
  int rank;
};

// The first linear of each shape of the layer ("q_proj (576 × 576)": q/o, k/v and gate/up share theirs), in the
// layer's order.
std::vector<const serq::QuantLinear*> linear_per_shape(const serq::Model& model) {
  std::vector<const serq::QuantLinear*> linears;
  for (const serq::QuantLinear* layer : model.layers[0].linears()) {
    bool seen = false;
    for (const serq::QuantLinear* other : linears)
      seen |= other->d_in() == layer->d_in() && other->d_out() == layer->d_out();
    if (!seen) linears.push_back(layer);
  }
  return linears;
}

std::string shape_name(const serq::QuantLinear& layer) {
  return layer.name.substr(layer.name.rfind('.') + 1) + " (" + std::to_string(layer.d_out()) + " × " +
         std::to_string(layer.d_in()) + ")";
}

// Paired medians of one quant_linear call of `baseline` and of `candidate` (the same shape) on M random rows.
serq::bench::PairedMedians time_pair(const serq::QuantLinear& baseline, const serq::QuantLinear& candidate,
                                     int tokens, int repeats, serq::Backend& backend) {
  std::mt19937 rng(7);
  serq::Matrix x(tokens, baseline.d_in());
  serq::bench::fill_normal(x, rng, 1.0f);
  serq::Buffer work(backend);
  const serq::Tensor input = backend.upload(x, work, "bench input");
  serq::Tensor out = work.alloc(tokens, baseline.d_out());
  serq::Tensor* outputs[] = {&out};
  const std::unique_ptr<serq::ResidentLinear> a = backend.make_resident(baseline, nullptr);
  const std::unique_ptr<serq::ResidentLinear> b = backend.make_resident(candidate, nullptr);
  const serq::ResidentLinear* first[] = {a.get()};
  const serq::ResidentLinear* second[] = {b.get()};
  return serq::bench::paired_median_seconds(
      repeats, [&] { backend.quant_linear(first, input, outputs); },
      [&] { backend.quant_linear(second, input, outputs); });
}

}  // namespace

int main(int argc, char** argv) try {
  int tokens = 2048, repeats = 5, rank = 0;
  std::string which = "all";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_side_paths [--tokens M] [--repeats N] [--rank R] [--model smollm2|llama7b|all]\n"
                  "Per linear shape, W4A4 prefill on the integer kernel: RTN, SERQ (R as extra K), L2QER (two "
                  "factors), QuaRot (online Hadamard); rank R (default 32 for SmolLM2, 128 for LLaMA-2-7B).\n");
      return 0;
    }
    SERQ_CHECK(i + 1 < argc && (arg == "--tokens" || arg == "--repeats" || arg == "--rank" || arg == "--model"),
               "bench_side_paths: unknown argument {} (see --help)", arg);
    const std::string value = argv[++i];
    if (arg == "--model") {
      which = value;
    } else {
      (arg == "--tokens" ? tokens : arg == "--repeats" ? repeats : rank) = std::stoi(value);
    }
  }
  SERQ_CHECK(which == "all" || which == "smollm2" || which == "llama7b",
             "bench_side_paths: --model {} is not smollm2, llama7b or all", which);
  serq::ModelConfig smollm2;
  smollm2.dim = 576;
  smollm2.hidden_dim = 1536;
  smollm2.n_heads = 9;
  smollm2.n_kv_heads = 3;
  serq::ModelConfig llama7b;
  llama7b.dim = 4096;
  llama7b.hidden_dim = 11008;
  llama7b.n_heads = 32;
  llama7b.n_kv_heads = 32;
  std::vector<Shape> shapes;
  if (which != "llama7b") shapes.push_back({"SmolLM2-135M", smollm2, rank > 0 ? rank : 32});
  if (which != "smollm2") shapes.push_back({"LLaMA-2-7B", llama7b, rank > 0 ? rank : 128});

  serq::Progress::set_enabled(false);
  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_side_paths: one decoder layer (RANDOM weights), W4A4 g64 (weights sym, activations asym), "
              "%d tokens, median of %d; integer kernel\n", tokens, repeats);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", info.blas.c_str(), info.blas_threads, info.git_commit.c_str(),
              info.compiler.c_str());
  const std::vector<std::string> methods = {"rtn", "serq", "l2qer", "quarot"};
  for (const Shape& shape : shapes) {
    const serq::Model pristine = serq::bench::random_decoder_layer(shape.config, tokens);
    const serq::TokenStream calib_stream = serq::bench::random_tokens(pristine.config.vocab_size, 16 * 512);
    serq::QuantParams params;
    params.weight = {4, true, 64};
    params.activation = {4, false, 64};
    params.rank = shape.rank;
    std::map<std::string, serq::Model> models;
    for (const std::string& name : methods) {
      const auto method = serq::make_method(name);
      serq::Model model = pristine;
      const serq::Calibration calibration = serq::calibrate(model, *method, params, calib_stream, {16, 512, 0});
      method->quantize(model, params, calibration);
      serq::fold_input_transforms(model);
      for (serq::QuantLinear* layer : model.linears())
        if (layer->int_kernel_applies()) layer->use_int_kernel();
      models.emplace(name, std::move(model));
    }
    std::printf("\n%s, rank %d (each method timed in alternation with RTN on the same input):\n\n"
                "| linear (d_out × d_in) | RTN s | SERQ s | L2QER s | QuaRot s | SERQ side path s | "
                "L2QER side path s | L2QER / SERQ side path |\n|---|---|---|---|---|---|---|---|\n",
                shape.name.c_str(), shape.rank);
    const std::vector<const serq::QuantLinear*> rtn = linear_per_shape(models.at("rtn"));
    for (std::size_t i = 0; i < rtn.size(); ++i) {
      std::map<std::string, serq::bench::PairedMedians> times;
      for (const char* name : {"serq", "l2qer", "quarot"}) {
        times[name] = time_pair(*rtn[i], *linear_per_shape(models.at(name))[i], tokens, repeats, *pristine.backend);
      }
      const double base = times["serq"].baseline;
      const double serq_side = times["serq"].candidate - times["serq"].baseline;
      const double l2qer_side = times["l2qer"].candidate - times["l2qer"].baseline;
      std::printf("| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.2f× |\n", shape_name(*rtn[i]).c_str(), base,
                  times["serq"].candidate, times["l2qer"].candidate, times["quarot"].candidate, serq_side, l2qer_side,
                  l2qer_side / serq_side);
    }
    std::fflush(stdout);
  }
  return 0;
} catch (const serq::Error& e) {
  std::fprintf(stderr, "bench_side_paths: error: %s\n", e.what());
  return 1;
}
