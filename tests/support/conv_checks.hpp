#pragma once
// A float conv2d against its float64 twin (tests/test_nn_conv2d.cpp, test_nn_conv_dense.cpp):
// the same weights, the same x and dy; output, dx and every parameter gradient compared.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>

#include <xtensor/xtensor.hpp>

#include "grad_check.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::testing {

struct float_margins {
  double y, dx, dw;  // absolute margins for the output, dx and the parameter gradients
};

/// `d` and `f` are fixtures holding `store` (a parameter_store) and `conv` (a conv2d) in double
/// and float; f's parameters are set to d's. dy is random_tensor(shape of y, seed, dy_stream).
template <class DoubleFixture, class FloatFixture>
void check_float_matches_double(DoubleFixture& d, FloatFixture& f, const batch<double>& x, std::uint64_t seed,
                                std::uint64_t dy_stream, const float_margins& m) {
  for (std::size_t i = 0; i < d.store.size(); ++i) f.store.parameters()[i] = float(d.store.parameters()[i]);
  const batch<float> xf = xt::cast<float>(x);
  const auto& yd = d.conv.forward(x);
  const auto& yf = f.conv.forward(xf);
  REQUIRE(shape_of(yf) == shape_of(yd));
  for (std::size_t i = 0; i < yd.size(); ++i) REQUIRE(yf.data()[i] == Approx(yd.data()[i]).margin(m.y));
  const auto g = random_tensor<double, 4>(shape_of(yd), seed, dy_stream);
  const batch<float> gf = xt::cast<float>(g);
  const auto& dxd = d.conv.backward(g);
  const auto& dxf = f.conv.backward(gf);
  for (std::size_t i = 0; i < dxd.size(); ++i) REQUIRE(dxf.data()[i] == Approx(dxd.data()[i]).margin(m.dx));
  for (std::size_t i = 0; i < d.store.size(); ++i)
    REQUIRE(f.store.gradients()[i] == Approx(d.store.gradients()[i]).margin(m.dw));
}

}  // namespace softdiff::testing
