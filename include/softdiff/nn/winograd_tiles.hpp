#pragma once
// The two Winograd tilings of the dense 3 x 3 convolution (winograd.hpp, winograd_grad.hpp):
// F(m x m, 3 x 3) computes an m x m output tile from an a x a input patch (a = m + 2) as
//   Y = A^T [ (G w G^T) (.) (B^T d B) ] A,
// with 2-D transforms that are the 1-D ones below applied to the columns, then the rows
// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each policy
// gives the 1-D transforms and their adjoints, which the backward needs:
//   input        t = B^T d          (a values -> a), on vectors of channels
//   output       y = A^T t          (a -> m), on vectors of channels
//   grad_output  t = A y            (m -> a): the adjoint of `output`, for dM = A dY A^T
//   weight       u = G g            (3 -> a), on scalars or vectorised lanes
//   weight_grad  g = G^T u          (a -> 3): the adjoint of `weight`, for dW = G^T dU G
// winograd_f2, F(2 x 2, 3 x 3): points 0, 1, -1, infinity; 16 multiply-adds per 4 outputs and
// channel pair (2.25x fewer than the direct 36); every coefficient is exact in binary.
// winograd_f4, F(4 x 4, 3 x 3): points 0, 1, -1, 2, -2, infinity; 36 per 16 outputs (4x fewer);
// G has 1/6, 1/12 and 1/24, so the transformed weights carry a float rounding each, and the
// result differs from the direct sum by a few float roundings more than F(2 x 2)'s (measured
// against float64 in tests/test_nn_conv_dense.cpp).
// The 1-D functions evaluate each value by one fixed expression, so the bits do not depend on
// the vector width (every lane runs the scalar arithmetic).
#include <concepts>
#include <cstddef>

namespace softdiff::nn::detail {

/// F(2 x 2, 3 x 3).
struct winograd_f2 {
  static constexpr std::size_t m = 2, alpha = 4, planes = alpha * alpha;
  /// Whether the flipped kernel's transform is a permutation of the kernel's (winograd_flipped).
  static constexpr bool flips_by_permutation = true;

  template <class S, class R>
  static void input(const R (&d)[alpha], R (&t)[alpha]) {
    t[0] = S::sub(d[0], d[2]), t[1] = S::add(d[1], d[2]), t[2] = S::sub(d[2], d[1]), t[3] = S::sub(d[1], d[3]);
  }
  template <class S, class R>
  static void output(const R (&t)[alpha], R (&y)[m]) {
    y[0] = S::add(S::add(t[0], t[1]), t[2]);
    y[1] = S::sub(S::sub(t[1], t[2]), t[3]);
  }
  template <class S, class R>
  static void grad_output(const R (&y)[m], R (&t)[alpha]) {
    t[0] = y[0], t[1] = S::add(y[0], y[1]), t[2] = S::sub(y[0], y[1]), t[3] = S::sub(S::zero(), y[1]);
  }
  template <class T>
  static void weight(T g0, T g1, T g2, T (&u)[alpha]) {
    const T h = T(0.5);
    u[0] = g0, u[1] = h * (g0 + g1 + g2), u[2] = h * (g0 - g1 + g2), u[3] = g2;
  }
  template <class T>
  static void weight_grad(const T (&u)[alpha], T (&g)[3]) {
    const T h = T(0.5);
    g[0] = u[0] + h * (u[1] + u[2]);
    g[1] = h * (u[1] - u[2]);
    g[2] = h * (u[1] + u[2]) + u[3];
  }
};

/// F(4 x 4, 3 x 3).
struct winograd_f4 {
  static constexpr std::size_t m = 4, alpha = 6, planes = alpha * alpha;
  static constexpr bool flips_by_permutation = false;

  // B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
  template <class S, class R>
  static void input(const R (&d)[alpha], R (&t)[alpha]) {
    const R four = S::set1(4.0f), five = S::set1(5.0f), two = S::set1(2.0f);
    const R s12 = S::add(d[1], d[2]), s34 = S::add(d[3], d[4]);
    const R d12 = S::sub(d[1], d[2]), d43 = S::sub(d[4], d[3]);
    const R d42 = S::sub(d[4], d[2]), d31 = S::sub(d[3], d[1]);
    t[0] = S::add(S::sub(S::mul(four, d[0]), S::mul(five, d[2])), d[4]);
    t[1] = S::sub(s34, S::mul(four, s12));
    t[2] = S::add(d43, S::mul(four, d12));
    t[3] = S::add(d42, S::mul(two, d31));
    t[4] = S::sub(d42, S::mul(two, d31));
    t[5] = S::add(S::sub(S::mul(four, d[1]), S::mul(five, d[3])), d[5]);
  }
  // A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
  template <class S, class R>
  static void output(const R (&t)[alpha], R (&y)[m]) {
    const R two = S::set1(2.0f), four = S::set1(4.0f), eight = S::set1(8.0f);
    const R a = S::add(t[1], t[2]), b = S::sub(t[1], t[2]), c = S::add(t[3], t[4]), e = S::sub(t[3], t[4]);
    y[0] = S::add(S::add(t[0], a), c);
    y[1] = S::add(b, S::mul(two, e));
    y[2] = S::add(a, S::mul(four, c));
    y[3] = S::add(S::add(b, S::mul(eight, e)), t[5]);
  }
  template <class S, class R>
  static void grad_output(const R (&y)[m], R (&t)[alpha]) {
    const R two = S::set1(2.0f), four = S::set1(4.0f), eight = S::set1(8.0f);
    const R a = S::add(y[0], y[2]), b = S::add(y[1], y[3]);
    const R c = S::add(y[0], S::mul(four, y[2])), e = S::add(S::mul(two, y[1]), S::mul(eight, y[3]));
    t[0] = y[0], t[1] = S::add(a, b), t[2] = S::sub(a, b), t[3] = S::add(c, e), t[4] = S::sub(c, e), t[5] = y[3];
  }
  // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
  template <class T>
  static void weight(T g0, T g1, T g2, T (&u)[alpha]) {
    const T sixth = T(1) / T(6), q = T(0.25);
    u[0] = q * g0;
    u[1] = -sixth * (g0 + g1 + g2);
    u[2] = -sixth * (g0 - g1 + g2);
    u[3] = sixth * (q * g0 + T(0.5) * g1 + g2);
    u[4] = sixth * (q * g0 - T(0.5) * g1 + g2);
    u[5] = g2;
  }
  template <class T>
  static void weight_grad(const T (&u)[alpha], T (&g)[3]) {
    const T sixth = T(1) / T(6), q = T(0.25);
    const T s12 = u[1] + u[2], d12 = u[2] - u[1], s34 = u[3] + u[4], d34 = u[3] - u[4];
    g[0] = q * u[0] + sixth * (q * s34 - s12);
    g[1] = sixth * (d12 + T(0.5) * d34);
    g[2] = sixth * (s34 - s12) + u[5];
  }
};

/// A Winograd tiling: winograd_f2 or winograd_f4.
template <class F>
concept winograd_tile = requires {
  { F::m } -> std::convertible_to<std::size_t>;
  { F::alpha } -> std::convertible_to<std::size_t>;
  { F::planes } -> std::convertible_to<std::size_t>;
  { F::flips_by_permutation } -> std::convertible_to<bool>;
} && F::alpha == F::m + 2 && F::planes == F::alpha * F::alpha;

static_assert(winograd_tile<winograd_f2>);
static_assert(winograd_tile<winograd_f4>);

}  // namespace softdiff::nn::detail
