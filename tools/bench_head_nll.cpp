// Benchmark: lm_head and the NLL of its logits on the CPU backend, fused into one pass over the vocabulary
// (Backend::head_nll: vocabulary blocks scored while in cache) against the two ops it replaced in the evaluation,
// the head's SGEMM into a rows × vocab logits tensor and then nll() over it. Shapes of SmolLM2-135M (49152 × 576) and
// LLaMA-2-7B (32000 × 4096) with RANDOM weights and hidden states; 1024 rows a call, as the perplexity evaluation
// passes them. Paired medians (the two ways in alternation), and the largest difference of their NLLs.
//
// usage: bench_head_nll [--rows R] [--repeats N]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/common/build_info.h"
#include "core/linear/quant_linear.h"
#include "tools/bench_support.h"

namespace {

void bench_shape(const char* name, int vocab, int d, int rows, int repeats, serq::Backend& backend) {
  std::mt19937 rng(1234);
  serq::QuantLinear head;
  head.name = "lm_head";
  const float stddev = 4.0f / std::sqrt(static_cast<float>(d));  // logits of ±10 or so
  head.weight = serq::bench::random_normal(vocab, d, stddev, rng);
  std::vector<int> targets(static_cast<std::size_t>(rows));
  for (int i = 0; i < rows; ++i) targets[static_cast<std::size_t>(i)] = static_cast<int>(rng() % vocab);
  serq::Buffer work(backend);
  const serq::Tensor hidden =
      backend.upload(serq::bench::random_normal(rows, d, 1.0f, rng), work, "bench hidden states");
  const serq::Tensor ids = work.alloc(rows, 1, serq::ElementType::i32);
  backend.set(ids, targets, "bench targets");
  serq::Tensor logits = work.alloc(rows, vocab);
  const std::unique_ptr<serq::ResidentLinear> resident = backend.make_resident(head, nullptr);
  const serq::ResidentLinear* group[] = {resident.get()};
  serq::Tensor* outputs[] = {&logits};
  std::vector<serq::NllRow> through, fused;
  const auto times = serq::bench::paired_median_seconds(
      repeats,
      [&] {
        through.clear();
        backend.quant_linear(group, hidden, outputs);
        backend.nll(logits, ids, through);
      },
      [&] {
        fused.clear();
        backend.head_nll(*resident, hidden, ids, fused);
      });
  double difference = 0.0;
  bool same_argmax = true;
  for (int i = 0; i < rows; ++i) {
    difference = std::max(difference, std::fabs(fused[i].nll - through[i].nll));
    same_argmax = same_argmax && fused[i].argmax == through[i].argmax;
  }
  const double flops = 2.0 * rows * vocab * d;
  std::printf("%-28s %6d %10.4f %10.4f %9.1f %9.1f %8.2fx %10.1e %s\n", name, rows, times.baseline, times.candidate,
              flops / times.baseline / 1e9, flops / times.candidate / 1e9, times.baseline / times.candidate,
              difference, same_argmax ? "yes" : "NO");
}

}  // namespace

int main(int argc, char** argv) {
  int rows = 1024, repeats = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: bench_head_nll [--rows R] [--repeats N]\n"
                  "lm_head and the NLL on the CPU: the fused head_nll op against the head's logits and then\n"
                  "nll(), at SmolLM2-135M's and LLaMA-2-7B's vocabularies (RANDOM data, paired medians).\n");
      return 0;
    } else if (arg == "--rows" && i + 1 < argc) {
      rows = std::stoi(argv[++i]);
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::stoi(argv[++i]);
    } else {
      std::fprintf(stderr, "bench_head_nll: unknown argument %s (see --help)\n", arg.c_str());
      return 2;
    }
  }
  if (rows < 1 || repeats < 1) {
    std::fprintf(stderr, "bench_head_nll: --rows and --repeats must be at least 1\n");
    return 2;
  }
  serq::Backend& backend = serq::find_backend("cpu", "bench_head_nll");
  const serq::BuildInfo info = serq::build_info();
  std::printf("bench_head_nll: lm_head + NLL, %d rows a call, paired medians of %d runs\n", rows, repeats);
  std::printf("BLAS: %s, %d threads; commit %s; %s\n", info.blas.c_str(), info.blas_threads, info.git_commit.c_str(),
              info.compiler.c_str());
  std::printf("%-28s %6s %10s %10s %9s %9s %9s %10s %s\n", "shape (vocab x d)", "rows", "logits+nll", "head_nll",
              "GFLOP/s", "GFLOP/s", "speedup", "max |dNLL|", "argmax");
  bench_shape("SmolLM2-135M (49152 x 576)", 49152, 576, rows, repeats, backend);
  bench_shape("LLaMA-2-7B (32000 x 4096)", 32000, 4096, rows, repeats, backend);
  return 0;
}
