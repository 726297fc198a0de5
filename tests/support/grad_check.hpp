#pragma once
// float64 central-difference gradient checker for the layers of softdiff::nn
// (and anything else with a scalar loss). Every element is perturbed, none sampled.
//
// Usage: L(theta) = <f(theta), g> with a random upstream gradient g, so the
// analytic gradient is backward(g). For element i, numeric_i is the fourth-order
// central difference of L in theta_i (see check_gradient) and
//   error_i   = |analytic_i - numeric_i| / max(|analytic_i|, |numeric_i|, 1e-3 max_k |analytic_k|)
// The floor keeps elements whose gradient is tiny next to the largest one from
// being judged on digits that float64 differences cannot deliver.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "softdiff/error.hpp"
#include "softdiff/random.hpp"

namespace softdiff::testing {

struct gradient_check {
  double max_error = 0;          // max_i error_i (see above)
  double max_abs_analytic = 0;   // the compared gradients are not all zero when this is > 0
  std::size_t nonzero = 0;       // analytic entries with |a| > 1e-12
  std::size_t count = 0;         // elements compared
  std::size_t worst = 0;         // index of max_error
  double worst_analytic = 0, worst_numeric = 0;

  [[nodiscard]] std::string describe() const {
    return detail::concat("gradient check over ", count, " elements: max error ", max_error, " at ", worst,
                          " (analytic ", worst_analytic, ", numeric ", worst_numeric, "), max |analytic| ",
                          max_abs_analytic, ", nonzero ", nonzero);
  }
};

/// Compares analytic[i] with the fourth-order central difference of loss() in values[i], for
/// every i:  numeric_i = (-L(+2h) + 8 L(+h) - 8 L(-h) + L(-2h)) / (12 h).
/// Its truncation error is O(h^4), so h = 1e-3 keeps both truncation and rounding near 1e-12
/// relative (the second-order formula cannot get below about 1e-8 in float64).
/// loss() must recompute the scalar from the current contents of `values`; each value is
/// restored after its evaluations.
template <class Loss>
gradient_check check_gradient(std::span<double> values, std::span<const double> analytic, Loss&& loss,
                              double h = 1e-3) {
  detail::require(values.size() == analytic.size(), "check_gradient: ", values.size(), " values but ",
                  analytic.size(), " analytic gradients");
  gradient_check r;
  r.count = values.size();
  for (double a : analytic) {
    r.max_abs_analytic = std::max(r.max_abs_analytic, std::abs(a));
    r.nonzero += std::abs(a) > 1e-12 ? 1 : 0;
  }
  const double floor = 1e-3 * r.max_abs_analytic + 1e-300;
  const auto at = [&](std::size_t i, double v) {
    values[i] = v;
    return loss();
  };
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    const double num = (-at(i, v + 2 * h) + 8 * at(i, v + h) - 8 * at(i, v - h) + at(i, v - 2 * h)) / (12 * h);
    values[i] = v;
    const double a = analytic[i];
    const double err = std::abs(a - num) / std::max({std::abs(a), std::abs(num), floor});
    if (i == 0 || err > r.max_error) {
      r.max_error = err;
      r.worst = i, r.worst_analytic = a, r.worst_numeric = num;
    }
  }
  return r;
}

/// <y, g> over all elements: the loss whose gradient with respect to y is g.
template <class A, class B>
double inner(const A& y, const B& g) {
  detail::require(y.size() == g.size(), "inner: sizes ", y.size(), " and ", g.size(), " differ");
  double s = 0;
  for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y.data()[i]) * static_cast<double>(g.data()[i]);
  return s;
}

/// A tensor of the given shape filled with N(0,1) * scale + shift from (seed, stream).
template <class T, std::size_t R>
xt::xtensor<T, R> random_tensor(const std::array<std::size_t, R>& shape, std::uint64_t seed, std::uint64_t stream,
                                double scale = 1.0, double shift = 0.0) {
  xt::xtensor<T, R> x(shape);
  noise_source{seed, stream}.fill(std::span<T>(x.data(), x.size()));
  for (auto& v : x) v = static_cast<T>(v * scale + shift);
  return x;
}

/// Copies any contiguous container into a vector (analytic gradients are copied before the
/// finite-difference loop, which overwrites the layer's buffers).
template <class C>
std::vector<double> copy_of(const C& c) {
  return std::vector<double>(c.data(), c.data() + c.size());
}

/// A span over any contiguous double container.
template <class C>
std::span<double> span_of(C& c) {
  return std::span<double>(c.data(), c.size());
}

/// Both checks for a layer with the protocol of softdiff::nn (forward(x) -> y, backward(dy) -> dx,
/// parameter gradients added into a parameter_store): the gradient with respect to every
/// element of x and, when `store` is given, of every parameter. The upstream gradient is
/// N(0,1) from `seed`.
struct layer_gradient_checks {
  gradient_check input, parameters;
};

template <class L, class Store>
layer_gradient_checks check_layer_gradients(L& layer, Store* store, xt::xtensor<double, 4>& x, std::uint64_t seed) {
  const auto& y0 = layer.forward(x);
  const auto g = random_tensor<double, 4>({y0.shape()[0], y0.shape()[1], y0.shape()[2], y0.shape()[3]}, seed, 7);
  if (store) store->zero_grad();
  const auto dx = copy_of(layer.backward(g));
  layer_gradient_checks r;
  const auto loss = [&] { return inner(layer.forward(x), g); };
  r.input = check_gradient(span_of(x), dx, loss);
  if (store) {
    const auto dp = copy_of(store->gradients());
    r.parameters = check_gradient(store->parameters(), dp, loss);
  }
  return r;
}

}  // namespace softdiff::testing
