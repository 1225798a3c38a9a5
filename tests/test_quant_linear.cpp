// Tests for QuantLinear::forward (core/linear/quant_linear.h) and the CPU GEMM under it: against a plain
// triple-loop reference, with and without activation quantization, on odd shapes and on a real stories260K layer.
#include <catch2/catch.hpp>

#include <limits>
#include <random>
#include <string>

#include "core/backend/cpu/gemm.h"
#include "core/common/error.h"
#include "core/linear/quant_linear.h"
#include "tests/model_fixtures.h"

namespace serq {
namespace {

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

Matrix random_matrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Matrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

double relative_error(const Matrix& y, const Matrix& reference) {
  return static_cast<double>((y - reference).norm()) / static_cast<double>(reference.norm());
}

QuantLinear make_layer(std::string name, Matrix weight, QuantSpec act_quant) {
  QuantLinear layer;
  layer.name = std::move(name);
  layer.weight = std::move(weight);
  layer.act_quant = act_quant;
  return layer;
}

std::string error_of(const QuantLinear& layer, const Matrix& x) {
  Matrix y;
  try {
    layer.forward(x, y);
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
  layer.forward(x, y);
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
    layer.forward(x, y);
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
  layer.forward(x, y);
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

}  // namespace serq
