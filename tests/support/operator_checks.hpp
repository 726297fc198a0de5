#pragma once
// Shared test support for corruption operators: random batches, the adjoint
// identity <C x, y> = <x, C^T y>, and a direct dense 2-D zero-padded
// convolution in float64 as the reference for every blur.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include <xtensor/xtensor.hpp>

#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::testing {

/// A batch of N(0, 1) entries; deterministic in seed.
template <class T>
batch<T> random_batch(const shape4& s, std::uint64_t seed) {
  batch<T> x(s);
  noise_source{seed, 99}.fill(x);
  return x;
}

template <class T>
double dot(const batch<T>& a, const batch<T>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a.data()[i]) * b.data()[i];
  return s;
}

/// |<C x, y> - <x, C^T y>| / (|C x| |y|): zero for an exact adjoint up to rounding.
template <class Op>
double adjoint_gap(const Op& op, double level, const shape4& s, std::uint64_t seed) {
  using T = typename Op::scalar_type;
  const batch<T> x = random_batch<T>(s, seed), y = random_batch<T>(s, seed + 1);
  batch<T> cx, cty;
  op.apply(level, x, cx);
  op.apply_adjoint(level, y, cty);
  const double lhs = dot(cx, y), rhs = dot(x, cty);
  const double scale = std::sqrt(dot(cx, cx) * dot(y, y)) + 1e-300;
  return std::abs(lhs - rhs) / scale;
}

/// Direct 2-D convolution with zero padding, in float64:
/// y(n,c,i,j) = sum_{a,b} k(a,b) x(n,c, i + ra - a, j + rb - b), ra = kh/2, rb = kw/2 (odd kernel sizes),
/// x outside the image is 0. For a symmetric kernel this equals correlation.
inline xt::xtensor<double, 4> dense_conv2d_zero_pad(const xt::xtensor<double, 4>& x, const xt::xtensor<double, 2>& k) {
  const std::size_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const long kh = static_cast<long>(k.shape()[0]), kw = static_cast<long>(k.shape()[1]);
  const long ra = kh / 2, rb = kw / 2;
  xt::xtensor<double, 4> y = xt::zeros<double>(x.shape());
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t c = 0; c < C; ++c)
      for (long i = 0; i < static_cast<long>(H); ++i)
        for (long j = 0; j < static_cast<long>(W); ++j) {
          double s = 0;
          for (long a = 0; a < kh; ++a) {
            const long ii = i + ra - a;
            if (ii < 0 || ii >= static_cast<long>(H)) continue;
            for (long b = 0; b < kw; ++b) {
              const long jj = j + rb - b;
              if (jj < 0 || jj >= static_cast<long>(W)) continue;
              s += k(a, b) * x(n, c, ii, jj);
            }
          }
          y(n, c, i, j) = s;
        }
  return y;
}

/// max |a - b| / max |b|: the relative error measure used against float64 references.
template <class T>
double max_relative_error(const batch<T>& a, const xt::xtensor<double, 4>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a.data()[i]) - ref.data()[i]));
    den = std::max(den, std::abs(ref.data()[i]));
  }
  return num / (den + 1e-300);
}

}  // namespace softdiff::testing
