// Tests for QuantLinear (core/linear/quant_linear.h) and the CPU GEMM under it: forward against the reference
// backend's (core/backend/reference/), each part alone and combined; input groups; storage and parameter counts by
// hand; the Gram matrix of transformed inputs against a dense transform written here; odd shapes and a real
// stories260K layer.
#include <catch2/catch.hpp>

#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "core/backend/backend.h"
#include "core/backend/cpu/gemm.h"
#include "core/common/error.h"
#include "core/linear/quant_linear.h"
#include "core/quant/int_quant_reference.h"
#include "tests/model_fixtures.h"
#include "tests/support/backend_calls.h"
#include "tests/support/random.h"

namespace serq {
namespace {

using test::random_matrix;
using test::relative_error;

// Y = X · Wᵀ one dot product at a time, accumulated in double.
Matrix reference_xwt(const Matrix& x, const Matrix& w) {
  Matrix y(x.rows(), w.rows());
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < w.rows(); ++j) {
      double sum = 0.0;
      for (Eigen::Index k = 0; k < x.cols(); ++k) sum += static_cast<double>(x(i, k)) * static_cast<double>(w(j, k));
      y(i, j) = static_cast<float>(sum);
    }
  return y;
}

QuantLinear make_layer(std::string name, Matrix weight, QuantSpec act_quant) {
  QuantLinear layer;
  layer.name = std::move(name);
  layer.weight = std::move(weight);
  layer.act_quant = act_quant;
  return layer;
}

// Sylvester's Hadamard matrix H_n (n a power of two): H_1 = [1], H_2k = [[H_k, H_k], [H_k, -H_k]].
Eigen::MatrixXd sylvester_hadamard(int n) {
  Eigen::MatrixXd h = Eigen::MatrixXd::Ones(1, 1);
  while (h.rows() < n) {
    const Eigen::Index k = h.rows();
    Eigen::MatrixXd next(2 * k, 2 * k);
    next << h, h, h, -h;
    h = next;
  }
  return h;
}

// The input transform as one dense d × d matrix T, so that T(X) = X·T: diag(1/s), then the permutation matrix P
// with P(order[j], j) = 1, then the Kronecker product (H_n/√n) ⊗ F entry by entry.
Eigen::MatrixXd dense_transform(const InputTransform& transform, int d) {
  Eigen::MatrixXd t = Eigen::MatrixXd::Identity(d, d);
  if (transform.scale.size() > 0) t = t * transform.scale.cast<double>().cwiseInverse().asDiagonal();
  if (!transform.order.empty()) {
    Eigen::MatrixXd p = Eigen::MatrixXd::Zero(d, d);
    for (int j = 0; j < d; ++j) p(transform.order[static_cast<std::size_t>(j)], j) = 1.0;
    t = t * p;
  }
  if (transform.rotation.enabled()) {
    const int n = transform.rotation.hadamard_size, m = d / n;
    const Eigen::MatrixXd h = sylvester_hadamard(n) / std::sqrt(static_cast<double>(n));
    const Eigen::MatrixXd f = transform.rotation.factor.size() > 0
                                  ? Eigen::MatrixXd(transform.rotation.factor.cast<double>())
                                  : Eigen::MatrixXd(Eigen::MatrixXd::Identity(m, m));
    Eigen::MatrixXd r(d, d);
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < m; ++b)
        for (int c = 0; c < n; ++c)
          for (int e = 0; e < m; ++e) r(a * m + b, c * m + e) = h(a, c) * f(b, e);
    t = t * r;
  }
  return t;
}

// QuantLinear's formula from the library's reference backend (plain loops in double).
Matrix reference_forward(const QuantLinear& layer, const Matrix& x) {
  return run_linear(reference_backend(), layer, x);
}

Vector random_scale(Eigen::Index d, std::mt19937& rng) {
  std::uniform_real_distribution<float> log_scale(-1.5f, 1.5f);
  Vector s(d);
  for (Eigen::Index j = 0; j < d; ++j) s[j] = std::exp(log_scale(rng));
  return s;
}

std::vector<int> random_order(int d, std::mt19937& rng) {
  std::vector<int> order(static_cast<std::size_t>(d));
  for (int j = 0; j < d; ++j) order[static_cast<std::size_t>(j)] = j;
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

Matrix random_orthogonal(int m, std::mt19937& rng) {
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(random_matrix(m, m, rng).cast<double>());
  const Eigen::MatrixXd q = qr.householderQ();
  return q.cast<float>();
}

// H_4 ⊗ (a random orthogonal 43 × 43): the rotation QuaRot's down_proj takes on 172 channels.
InputRotation kron_rotation(std::mt19937& rng) {
  InputRotation rotation;
  rotation.hadamard_size = 4;
  rotation.factor = random_orthogonal(43, rng);
  rotation.description = "hadamard(4) x random-orthogonal(43)";
  return rotation;
}

std::string error_of(const QuantLinear& layer, const Matrix& x) {
  Matrix y;
  try {
    y = run_linear(cpu_backend(), layer, x);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("gemm_xwt equals the triple-loop reference on odd shapes") {
  std::mt19937 rng(7);
  const int shapes[][3] = {{1, 1, 1}, {3, 2, 5}, {7, 64, 172}, {13, 172, 64}, {33, 17, 9}};  // rows, d_out, d_in
  for (const auto& [rows, d_out, d_in] : shapes) {
    const Matrix x = random_matrix(rows, d_in, rng), w = random_matrix(d_out, d_in, rng);
    Matrix y(2, 3);  // wrong size on purpose: gemm_xwt resizes it
    gemm_xwt(x, w, y);
    INFO(rows << " x " << d_in << " · (" << d_out << " x " << d_in << ")ᵀ");
    REQUIRE(y.rows() == rows);
    REQUIRE(y.cols() == d_out);
    CHECK(relative_error(y, reference_xwt(x, w)) < 1e-5);
  }
}

TEST_CASE("gemm_xwt_add adds the first k columns of X times Wᵀ, in place") {
  std::mt19937 rng(9);
  const int shapes[][3] = {{1, 1, 1}, {7, 64, 16}, {13, 172, 64}, {5, 9, 172}};  // rows, d_out, k (of 172 columns)
  for (const auto& [rows, d_out, k] : shapes) {
    const Matrix x = random_matrix(rows, 172, rng), w = random_matrix(d_out, k, rng);
    const Matrix before = random_matrix(rows, d_out, rng);
    Matrix y = before;
    gemm_xwt_add(x, w, y);
    INFO(rows << " x " << k << " of 172 · (" << d_out << " x " << k << ")ᵀ");
    const Matrix head = x.leftCols(k);
    const Matrix expected = before + reference_xwt(head, w);
    CHECK(relative_error(y, expected) < 1e-5);
  }
  const Matrix x = random_matrix(3, 4, rng), none(2, 0);  // k = 0 adds nothing
  Matrix y = Matrix::Constant(3, 2, 5.0f);
  gemm_xwt_add(x, none, y);
  CHECK(y == Matrix::Constant(3, 2, 5.0f));
}

TEST_CASE("gemm_xwt with an empty inner dimension gives zeros") {
  const Matrix x(3, 0), w(2, 0);
  Matrix y = Matrix::Constant(3, 2, 5.0f);
  gemm_xwt(x, w, y);
  CHECK(y == Matrix::Zero(3, 2));
}

TEST_CASE("QuantLinear without activation quantization is X · Wᵀ") {
  std::mt19937 rng(11);
  const QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{});
  const Matrix x = random_matrix(7, 172, rng);
  Matrix y;
  y = run_linear(cpu_backend(), layer, x);
  REQUIRE(y.rows() == 7);
  REQUIRE(y.cols() == 64);
  CHECK(relative_error(y, reference_xwt(x, layer.weight)) < 1e-5);
}

TEST_CASE("QuantLinear with activation quantization is Q_a(X) · Wᵀ and leaves X alone") {
  std::mt19937 rng(13);
  for (const QuantSpec act : {QuantSpec{4, false, 32}, QuantSpec{4, true, 0}, QuantSpec{8, true, 32}}) {
    const QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), act);
    const Matrix x = random_matrix(7, 172, rng);
    const Matrix x_before = x;
    Matrix xq = x;
    fake_quant_rows(xq, act);
    REQUIRE(xq != x);  // the quantizer really changes the input, so the comparison below can tell

    Matrix y;
    y = run_linear(cpu_backend(), layer, x);
    INFO(act.describe());
    CHECK(x == x_before);
    const Matrix expected = reference_xwt(xq, layer.weight);
    CHECK(relative_error(y, expected) < 1e-5);
    CHECK(relative_error(y, reference_xwt(x, layer.weight)) > 1e-4);  // not the unquantized product
  }
}

TEST_CASE("QuantLinear on stories260K's layers.0 down_proj, W4 g32 and A4 asym g32, matches the reference") {
  const Matrix& w = test::stories_model("stories260K-hf").layers[0].down_proj.weight;
  QuantLinear layer = make_layer("layers.0.mlp.down_proj", w, QuantSpec{4, false, 32});
  layer.weight_quant = QuantSpec{4, true, 32};
  fake_quant_rows(layer.weight, layer.weight_quant);
  std::mt19937 rng(17);
  const Matrix x = random_matrix(9, layer.d_in(), rng);
  Matrix xq = x;
  fake_quant_rows(xq, layer.act_quant);
  Matrix y;
  y = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(y, reference_xwt(xq, layer.weight)) < 1e-5);
}

TEST_CASE("QuantLinear: a NaN in the input is an error prefixed with the layer name") {
  std::mt19937 rng(19);
  const QuantLinear layer = make_layer("layers.3.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{4, false, 32});
  Matrix x = random_matrix(5, 172, rng);
  x(4, 170) = std::numeric_limits<float>::quiet_NaN();
  CHECK(error_of(layer, x) == "layers.3.mlp.down_proj: row 4, columns 160..171: non-finite value in a quantization "
                              "group; the input has NaN/Inf — check the weights/activations");
}

TEST_CASE("QuantLinear: an input of the wrong width is an error naming the layer") {
  std::mt19937 rng(23);
  const QuantLinear layer = make_layer("lm_head", random_matrix(512, 64, rng), QuantSpec{});
  CHECK(error_of(layer, random_matrix(2, 172, rng)) ==
        "lm_head: the input has 172 columns but the layer takes d_in = 64 (a shape bug in the caller)");
}

TEST_CASE("QuantLinear with an input scale divides column j of X by s_j") {
  std::mt19937 rng(29);
  QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{});
  layer.input.scale = random_scale(172, rng);
  const Matrix x = random_matrix(7, 172, rng);
  Matrix y;
  y = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
  CHECK(relative_error(y, reference_xwt(x, layer.weight)) > 1e-2);  // the scale really is applied
}

TEST_CASE("QuantLinear with an input order reads column order[j] of X as channel j") {
  std::mt19937 rng(31);
  QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{});
  layer.input.order = random_order(172, rng);
  const Matrix x = random_matrix(7, 172, rng);
  Matrix y;
  y = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
  CHECK(relative_error(y, reference_xwt(x, layer.weight)) > 1e-2);
}

TEST_CASE("QuantLinear with a rotation multiplies X by the Kronecker product of H_n over root n and F") {
  std::mt19937 rng(37);
  SECTION("H_4 x a random orthogonal 43 x 43 on 172 channels") {
    QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{});
    layer.input.rotation = kron_rotation(rng);
    const Matrix x = random_matrix(7, 172, rng);
    Matrix y;
    y = run_linear(cpu_backend(), layer, x);
    CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
    CHECK(relative_error(y, reference_xwt(x, layer.weight)) > 1e-2);
    const Matrix dense = dense_transform(layer.input, 172).cast<float>();
    CHECK((layer.input.rotation.dense(172) - dense).cwiseAbs().maxCoeff() < 1e-5f);
  }
  SECTION("H_64 alone on 64 channels") {
    QuantLinear layer = make_layer("layers.0.self_attn.o_proj", random_matrix(64, 64, rng), QuantSpec{});
    layer.input.rotation.hadamard_size = 64;
    const Matrix x = random_matrix(5, 64, rng);
    Matrix y;
    y = run_linear(cpu_backend(), layer, x);
    CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
    CHECK(relative_error(y, reference_xwt(x, layer.weight)) > 1e-2);
  }
}

TEST_CASE("QuantLinear with asymmetric per-group activation quantization follows the quantizer formula") {
  std::mt19937 rng(41);
  for (const int group : {32, 0}) {  // 172 = 5 groups of 32 and one of 12, or one group per token
    QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{4, false, group});
    const Matrix x = random_matrix(7, 172, rng);
    Matrix y;
    y = run_linear(cpu_backend(), layer, x);
    INFO("group " << group);
    CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
    CHECK(relative_error(y, reference_xwt(x, layer.weight)) > 1e-2);
  }
}

TEST_CASE("QuantLinear with scale, order, rotation and activation quantization together") {
  std::mt19937 rng(43);
  QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{4, false, 32});
  layer.input.scale = random_scale(172, rng);
  layer.input.order = random_order(172, rng);
  layer.input.rotation = kron_rotation(rng);
  const Matrix x = random_matrix(9, 172, rng);
  Matrix y;
  y = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
  QuantLinear without_order = layer;  // the order matters even under the rotation
  without_order.input.order.clear();
  CHECK(relative_error(y, reference_forward(without_order, x)) > 1e-2);
}

TEST_CASE("QuantLinear two-factor correction adds X·Aᵀ·Bᵀ, re-quantized in between when asked") {
  std::mt19937 rng(47);
  QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{});
  layer.low_rank.a = random_matrix(8, 172, rng);
  layer.low_rank.b = random_matrix(64, 8, rng);
  const Matrix x = random_matrix(7, 172, rng);
  Matrix plain;
  plain = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(plain, reference_forward(layer, x)) < 1e-5);
  CHECK(relative_error(plain, reference_xwt(x, layer.weight)) > 1e-2);

  layer.low_rank.intermediate_quant = QuantSpec{4, false, 0};
  Matrix requantized;
  requantized = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(requantized, reference_forward(layer, x)) < 1e-5);
  CHECK(relative_error(requantized, plain) > 1e-3);  // the intermediate really was re-quantized
}

TEST_CASE("QuantLinear salient correction adds X[:, :r]·Rᵀ") {
  std::mt19937 rng(53);
  QuantLinear layer = make_layer("layers.0.mlp.up_proj", random_matrix(172, 64, rng), QuantSpec{});
  layer.salient.r = random_matrix(172, 16, rng);
  const Matrix x = random_matrix(7, 64, rng);
  Matrix y;
  y = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
  CHECK(relative_error(y, reference_xwt(x, layer.weight)) > 1e-2);
}

TEST_CASE("QuantLinear with every part: transform, activation quantization and each correction path") {
  std::mt19937 rng(59);
  QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{4, false, 32});
  layer.weight_quant = QuantSpec{4, true, 32};
  fake_quant_rows(layer.weight, layer.weight_quant);
  layer.input.scale = random_scale(172, rng);
  layer.input.order = random_order(172, rng);
  layer.input.rotation = kron_rotation(rng);
  const Matrix x = random_matrix(9, 172, rng);
  SECTION("two factors with an 8-bit re-quantized intermediate") {
    layer.low_rank.a = random_matrix(8, 172, rng);
    layer.low_rank.b = random_matrix(64, 8, rng);
    layer.low_rank.intermediate_quant = QuantSpec{8, false, 0};
  }
  SECTION("SERQ's R on the first 16 channels") { layer.salient.r = random_matrix(64, 16, rng); }
  Matrix y;
  y = run_linear(cpu_backend(), layer, x);
  CHECK(relative_error(y, reference_forward(layer, x)) < 1e-5);
}

TEST_CASE("A group of linears on the CPU backend gives each linear's own outputs exactly, shared input or not") {
  std::mt19937 rng(61);
  const Vector scale = random_scale(64, rng);
  const std::vector<int> order = random_order(64, rng);
  auto reader = [&](const char* name, int d_out) {
    QuantLinear layer = make_layer(name, random_matrix(d_out, 64, rng), QuantSpec{4, false, 32});
    layer.input.scale = scale;
    layer.input.order = order;
    return layer;
  };
  QuantLinear q = reader("layers.0.self_attn.q_proj", 64), v = reader("layers.0.self_attn.v_proj", 32);
  v.salient.r = random_matrix(32, 8, rng);
  v.bias = random_matrix(32, 1, rng).col(0);
  QuantLinear other_scale = v, other_quant = v, other_order = v;
  other_scale.input.scale[3] *= 2.0f;
  other_quant.act_quant.group_size = 16;
  std::swap(other_order.input.order[0], other_order.input.order[1]);
  const QuantLinear plain = make_layer("lm_head", random_matrix(8, 64, rng), QuantSpec{});
  const Matrix x = random_matrix(9, 64, rng);
  // q and v share T(X) and Q_a; the others differ from q in one part each, so sharing q's would change them.
  const std::vector<const QuantLinear*> seconds = {&v, &other_scale, &other_quant, &other_order, &plain};
  for (const QuantLinear* second : seconds) {
    const QuantLinear* group[] = {&q, second};
    const std::vector<Matrix> y = test::quant_linear(cpu_backend(), group, x);
    const Matrix &y_first = y[0], &y_second = y[1];
    Matrix alone_first, alone_second;
    alone_first = run_linear(cpu_backend(), q, x);
    alone_second = run_linear(cpu_backend(), *second, x);
    CHECK(y_first == alone_first);  // bit for bit
    CHECK(y_second == alone_second);
  }
}

TEST_CASE("QuantLinear storage_bits, measured from what is packed, and extra_parameters counted by hand") {
  std::mt19937 rng(61);
  QuantLinear layer = make_layer("layers.0.mlp.down_proj", random_matrix(64, 172, rng), QuantSpec{});
  CHECK(layer.storage_bits() == 64.0 * 172 * 16);  // full precision counts 16 bits per weight
  CHECK(layer.extra_parameters() == 0);

  // int4 sym g32: 4-bit codes (86 bytes a row) plus a 16-bit scale for each of the ceil(172 / 32) = 6 groups.
  layer.weight_quant = stored_weight_spec(QuantSpec{4, true, 32});
  layer.packed = PackedWeight::quantize(layer.weight, layer.weight_quant);
  const double main_bits = 64.0 * 172 * 4 + 64.0 * 6 * 16;
  CHECK(layer.storage_bits() == main_bits);
  layer.release_weight();  // the floats go; the count and the shape stay
  CHECK(layer.weight.size() == 0);
  CHECK(layer.storage_bits() == main_bits);
  CHECK(layer.d_out() == 64);
  CHECK(layer.d_in() == 172);

  SECTION("two factors, int8 asym g32: A is 8 x 172 (6 groups a row), B is 64 x 8 (1 group a row)") {
    layer.low_rank.a = random_matrix(8, 172, rng);
    layer.low_rank.b = random_matrix(64, 8, rng);
    CHECK(layer.storage_bits() == main_bits + 16.0 * (8 * 172 + 64 * 8));  // not packed: full precision
    layer.low_rank.factor_quant = stored_weight_spec(QuantSpec{8, false, 32});
    layer.low_rank.packed_a = PackedWeight::quantize(layer.low_rank.a, layer.low_rank.factor_quant);
    layer.low_rank.packed_b = PackedWeight::quantize(layer.low_rank.b, layer.low_rank.factor_quant);
    // Codes, a 16-bit scale and an 8-bit zero point per group.
    const double a_bits = 8.0 * 172 * 8 + 8.0 * 6 * (16 + 8), b_bits = 64.0 * 8 * 8 + 64.0 * 1 * (16 + 8);
    CHECK(layer.storage_bits() == main_bits + a_bits + b_bits);
    CHECK(layer.extra_parameters() == 8 * 172 + 64 * 8);
  }
  SECTION("SERQ's R (64 x 16), int4 sym per row") {
    layer.salient.r = random_matrix(64, 16, rng);
    layer.salient.quant = stored_weight_spec(QuantSpec{4, true, 0});
    layer.salient.packed = PackedWeight::quantize(layer.salient.r, layer.salient.quant);
    CHECK(layer.storage_bits() == main_bits + 64.0 * 16 * 4 + 64.0 * 16);
    CHECK(layer.extra_parameters() == 64 * 16);
  }
}

TEST_CASE("a released layer dequantizes its packed weight per call and gives the same outputs bit for bit") {
  std::mt19937 rng(62);
  QuantLinear layer = make_layer("layers.0.mlp.up_proj", random_matrix(48, 40, rng), QuantSpec{4, false, 16});
  layer.weight_quant = stored_weight_spec(QuantSpec{4, true, 16});
  layer.packed = PackedWeight::quantize(layer.weight, layer.weight_quant);
  layer.packed.dequantize(layer.weight);
  const Matrix x = random_matrix(7, 40, rng);
  Matrix kept, released;
  kept = run_linear(cpu_backend(), layer, x);
  layer.release_weight();
  released = run_linear(cpu_backend(), layer, x);
  CHECK(released == kept);
  layer.restore_weight();
  CHECK(layer.weight == layer.packed.dequantize());
}

TEST_CASE("InputTransform::transform_gram of XᵀX equals T(X)ᵀT(X)") {
  std::mt19937 rng(67);
  InputTransform transform;
  transform.scale = random_scale(172, rng);
  transform.order = random_order(172, rng);
  transform.rotation = kron_rotation(rng);
  const Eigen::MatrixXd x = random_matrix(50, 172, rng).cast<double>();
  const Eigen::MatrixXd tx = x * dense_transform(transform, 172);
  const Eigen::MatrixXd expected = tx.transpose() * tx;
  const Eigen::MatrixXd gram = transform.transform_gram(x.transpose() * x);
  CHECK((gram - expected).norm() / expected.norm() < 1e-6);
  CHECK((x.transpose() * x - expected).norm() / expected.norm() > 1e-2);
}

}  // namespace serq
