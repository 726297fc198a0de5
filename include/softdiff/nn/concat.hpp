#pragma once
// Channel concatenation for the U-Net decoder (docs/refunet.md: current activation
// first, then the skip): y = [a; b] along channels, a [N,Ca,H,W], b [N,Cb,H,W] ->
// y [N,Ca+Cb,H,W]. Backward (the gradient rule, once) splits dy: da = dy[:, :Ca],
// db = dy[:, Ca:].
#include <algorithm>
#include <cstddef>

#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn {

template <class T>
struct concat_grads {
  const batch<T>& first;   // dL/da (the current activation)
  const batch<T>& second;  // dL/db (the skip)
};

template <class T = float>
struct concat_channels {
  using scalar_type = T;

  batch<T> y;                   // [N, Ca + Cb, H, W]
  batch<T> d_first, d_second;   // the two halves of the last backward's dy

  const batch<T>& forward(const batch<T>& a, const batch<T>& b) {
    const shape4 sa = shape_of(a), sb = shape_of(b);
    SOFTDIFF_REQUIRE(sa[0] == sb[0] && sa[2] == sb[2] && sa[3] == sb[3], "concat_channels: inputs ", to_string(sa),
                    " and ", to_string(sb), " differ outside the channel axis");
    sa_ = sa, sb_ = sb;
    forwarded_ = true;
    ensure_shape(y, {sa[0], sa[1] + sb[1], sa[2], sa[3]});
    const std::size_t N = sa[0], na = sa[1] * sa[2] * sa[3], nb = sb[1] * sb[2] * sb[3];
    const T *ap = a.data(), *bp = b.data();
    T* yp = y.data();
    const auto count = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (y.size() > detail::parallel_threshold)
    for (std::ptrdiff_t n = 0; n < count; ++n) {
      const std::size_t i = static_cast<std::size_t>(n);
      std::copy(ap + i * na, ap + (i + 1) * na, yp + i * (na + nb));
      std::copy(bp + i * nb, bp + (i + 1) * nb, yp + i * (na + nb) + na);
    }
    return y;
  }

  concat_grads<T> backward(const batch<T>& dy) {
    SOFTDIFF_REQUIRE(forwarded_, "concat_channels::backward: called before forward");
    SOFTDIFF_REQUIRE(shape_of(dy) == shape_of(y), "concat_channels::backward: dy ", to_string(shape_of(dy)),
                    " does not match the forward output ", to_string(shape_of(y)));
    ensure_shape(d_first, sa_);
    ensure_shape(d_second, sb_);
    const std::size_t N = sa_[0], na = sa_[1] * sa_[2] * sa_[3], nb = sb_[1] * sb_[2] * sb_[3];
    const T* gp = dy.data();
    T *ap = d_first.data(), *bp = d_second.data();
    const auto count = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (y.size() > detail::parallel_threshold)
    for (std::ptrdiff_t n = 0; n < count; ++n) {
      const std::size_t i = static_cast<std::size_t>(n);
      std::copy(gp + i * (na + nb), gp + i * (na + nb) + na, ap + i * na);
      std::copy(gp + i * (na + nb) + na, gp + (i + 1) * (na + nb), bp + i * nb);
    }
    return {d_first, d_second};
  }

private:
  shape4 sa_{}, sb_{};
  bool forwarded_ = false;
};

}  // namespace softdiff::nn
