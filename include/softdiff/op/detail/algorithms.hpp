#pragma once
// Each corruption operator's algorithm, written once over a backend's primitives
// (backend/backend.hpp) on raw pointers of that backend's memory. The CPU operator classes
// (op/*.hpp) run them with B = backend::cpu on their batches; op::backend_operator
// (op/on_backend.hpp) runs the same functions on any backend, and backend::cuda's thin API
// (cuda_ops.cuh) on device pointers:
//
//   identity, scale, mask   one element-wise pass (B::copy, B::parallel_for(_2d) with
//                           op/detail/element_kernels.hpp)
//   gaussian_blur, dct_blur C X = A_H X A_W^T by the backend's separable primitive, given the axis
//                           matrices' structure (Toeplitz taps, DCT multipliers); level 0 = I exactly
//   fft_conv                batched real FFT of the zero-padded planes, K (or conj K for the
//                           adjoint), inverse FFT cropped to the planes (the circular-equals-linear
//                           argument of op/fft_conv.hpp)
//
// Every function accepts y == x (in place).
#include <cstddef>
#include <cstdint>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/separable.hpp"
#include "softdiff/error.hpp"
#include "softdiff/op/detail/element_kernels.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

/// The rectangle op::mask removes from every plane: rows [top, top + h), columns [left, left + w).
struct mask_rectangle {
  std::size_t top = 0, left = 0, h = 0, w = 0;
};

/// y = x (nothing when y is x).
template <Backend B, class T>
void copy_apply(const T* x, T* y, std::size_t n) {
  if (x != y && n > 0) B::template copy<T>(x, y, n);
}

/// y = alpha x.
template <Backend B, class T>
void scale_apply(T alpha, const T* x, T* y, std::size_t n) {
  if (n > 0) B::parallel_for(n, kernels::scale_fn<T>{x, y, alpha});
}

/// y = x with the rectangle r of every H x W plane of the NCHW batch s zeroed.
template <Backend B, class T>
void mask_apply(const mask_rectangle& r, const T* x, T* y, const shape4& s) {
  const std::size_t n = s[0] * s[1] * s[2] * s[3];
  if (n == 0) return;
  copy_apply<B>(x, y, n);
  if (r.h == 0 || r.w == 0) return;
  B::parallel_for_2d(s[0] * s[1] * r.h, r.w, kernels::mask_rows_fn<T>{y, s[2], s[3], r.top, r.left, r.h});
}

/// C(level) X = A_H X A_W^T on every plane of the NCHW batch s by the backend's separable
/// primitive, `spec()` giving the axis matrices at `level` (called only when level != 0: C(0) = I
/// exactly). Throws naming `where` and the plane if the engine found a NaN or an infinity in x
/// (y, and x when y aliases it, then hold unspecified values).
template <Backend B, class T, class Spec>
void separable_operator_apply(typename B::template separable<T>& engine, const char* where, double level, Spec&& spec,
                              const T* x, T* y, const shape4& s) {
  const std::size_t planes = s[0] * s[1], n = planes * s[2] * s[3];
  if (n == 0) return;
  if (level == 0) {
    copy_apply<B>(x, y, n);
    return;
  }
  const std::size_t bad = engine.apply(spec(), x, y, planes, s[2], s[3]);
  const std::size_t channels = s[1] > 0 ? s[1] : 1;
  softdiff::detail::require(bad >= planes, where, ": non-finite value (NaN or inf) in input plane ", bad, " (sample ",
                            bad / channels, ", channel ", bad % channels, ") of shape ", to_string(s));
}

/// y = k * x (adjoint: the correlation): the FFT of every plane zero-padded to ph x pw,
/// multiplication by the half spectrum (interleaved, op::fft_conv::spectrum), the inverse FFT
/// cropped to the plane. `freq` holds 2 N C ph (pw/2 + 1) scalars; y may alias x.
template <Backend B, class T>
void fft_conv_apply(typename B::template fft<T>& fft, const T* spectrum, int ph, int pw, bool adjoint, const T* x,
                    T* y, T* freq, const shape4& s) {
  const std::size_t planes = s[0] * s[1], h = s[2], w = s[3];
  if (planes == 0 || h == 0 || w == 0) return;
  const std::size_t nc = static_cast<std::size_t>(ph) * (static_cast<std::size_t>(pw) / 2 + 1);
  const int hi = static_cast<int>(h), wi = static_cast<int>(w);
  fft.r2c(hi, wi, ph, pw, planes, x, freq);
  B::parallel_for_2d(planes, nc, kernels::spectrum_multiply_fn<T>{freq, spectrum, nc, adjoint});
  fft.c2r(ph, pw, hi, wi, planes, freq, y);
}

}  // namespace softdiff::op
