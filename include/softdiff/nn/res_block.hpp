#pragma once
// ResBlock(a -> b) of docs/refunet.md, named P:
//   h = Conv3x3(a, b)(SiLU(GN(a)(x)))                      P.norm1, P.conv1
//   h = h + Linear(4c, b)(SiLU(temb))[:, :, None, None]    P.temb_proj
//   h = Conv3x3(b, b)(SiLU(GN(b)(h)))                      P.norm2, P.conv2
//   out = (x if a == b else Conv1x1(a, b)(x)) + h          P.skip (only when a != b)
// Backward (the gradient rule, once): dout flows into conv2 ... norm2 to give dh; the
// broadcast add sends sum_{hw} dh[n, o] to the temb projection (whose input gradient is
// ADDED into the caller's dtemb: every block shares one temb); dh flows on through
// conv1 ... norm1; the skip (identity or 1x1 conv) adds its gradient of dout to dx.
// conv1 adds the temb projection with its bias (a per-sample bias), conv2 the residual as it
// stores its output (conv2d::forward(x, map, addends)). Each SiLU(GN(.)) is applied by the convolution after it as it reads its
// input (group_norm::silu_map, conv2d::forward(x, map)) and runs backward as one pass
// (group_norm::backward_silu).
#include <cstddef>
#include <string>
#include <string_view>

#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/linear.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "softdiff/nn/silu.hpp"

namespace softdiff::nn {

template <class T = float>
struct res_block {
  using scalar_type = T;

  std::size_t in_channels = 0, out_channels = 0, temb_channels = 0;
  group_norm<T> norm1, norm2;
  conv2d<T> conv1, conv2, skip;  // skip is used only when in_channels != out_channels
  silu<T, 2> temb_act;
  linear<T> temb_proj;

  res_block() = default;
  res_block(std::size_t in, std::size_t out, std::size_t temb_ch, std::size_t groups, double eps = 1e-5)
      : in_channels(in), out_channels(out), temb_channels(temb_ch), norm1(groups, in, eps), norm2(groups, out, eps),
        conv1(in, out, 3), conv2(out, out, 3), temb_proj(temb_ch, out) {
    if (has_skip()) skip = conv2d<T>(in, out, 1);
  }

  [[nodiscard]] bool has_skip() const { return in_channels != out_channels; }

  /// Registers P.norm1, P.conv1, P.temb_proj, P.norm2, P.conv2 and (a != b) P.skip, in PyTorch's order.
  void declare(parameter_store<T>& store, std::string_view prefix) {
    const std::string p(prefix);
    norm1.declare(store, p + ".norm1");
    conv1.declare(store, p + ".conv1");
    temb_proj.declare(store, p + ".temb_proj");
    norm2.declare(store, p + ".norm2");
    conv2.declare(store, p + ".conv2");
    if (has_skip()) skip.declare(store, p + ".skip");
  }
  void bind(parameter_store<T>& store) {
    norm1.bind(store), conv1.bind(store), temb_proj.bind(store), norm2.bind(store), conv2.bind(store);
    if (has_skip()) skip.bind(store);
  }
  void init(const noise_source& noise) {
    norm1.init(noise), conv1.init(noise), temb_proj.init(noise), norm2.init(noise), conv2.init(noise);
    if (has_skip()) skip.init(noise);
  }

  /// x [N, a, H, W], temb [N, temb_channels] -> out [N, b, H, W] (conv2.y; valid until the next forward).
  const batch<T>& forward(const batch<T>& x, const matrix<T>& temb) {
    const shape4 s = shape_of(x);
    SOFTDIFF_REQUIRE(temb.shape()[0] == s[0] && temb.shape()[1] == temb_channels, "res_block: temb [",
                    temb.shape()[0], ", ", temb.shape()[1], "] does not match batch ", s[0], " and ",
                    temb_channels, " embedding channels");
    const matrix<T>& tp = temb_proj.forward(temb_act.forward(temb));
    conv1.forward(x, norm1.silu_map(x), {.sample_bias = tp.data()});
    const batch<T>& res = has_skip() ? skip.forward(x) : x;
    return conv2.forward(conv1.y, norm2.silu_map(conv1.y), {.residual = &res});
  }

  /// Adds every parameter gradient and dL/dtemb (into `dtemb`, [N, temb_channels]); returns dL/dx
  /// (a buffer of this block, valid until the next backward).
  const batch<T>& backward(const batch<T>& dout, matrix<T>& dtemb) {
    SOFTDIFF_REQUIRE(shape_of(dout) == shape_of(conv2.y), "res_block::backward: dout ", to_string(shape_of(dout)),
                    " does not match the forward output ", to_string(shape_of(conv2.y)));
    const std::size_t N = dout.shape()[0], B = out_channels, HW = dout.shape()[2] * dout.shape()[3];
    SOFTDIFF_REQUIRE(dtemb.shape()[0] == N && dtemb.shape()[1] == temb_channels, "res_block::backward: dtemb [",
                    dtemb.shape()[0], ", ", dtemb.shape()[1], "], expected [", N, ", ", temb_channels, "]");
    const batch<T>& dh = norm2.backward_silu(conv2.backward(dout));
    detail::ensure_shape(dtp_, std::array<std::size_t, 2>{N, B});
    const T* hp = dh.data();
    T* tp = dtp_.data();
    const auto rows = static_cast<std::ptrdiff_t>(N * B);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (rows * HW > detail::parallel_threshold)
    for (std::ptrdiff_t r = 0; r < rows; ++r) {
      const T* p = hp + static_cast<std::size_t>(r) * HW;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (std::size_t i = 0; i < HW; ++i) acc += p[i];
      tp[r] = acc;
    }
    const matrix<T>& dte = temb_act.backward(temb_proj.backward(dtp_));
    for (std::size_t i = 0; i < dte.size(); ++i) dtemb.data()[i] += dte.data()[i];
    norm1.backward_silu(conv1.backward(dh));
    add_into(norm1.dx, has_skip() ? skip.backward(dout) : dout);
    return norm1.dx;
  }

private:
  static void add_into(batch<T>& y, const batch<T>& x) {
    T* yp = y.data();
    const T* xp = x.data();
    const auto n = static_cast<std::ptrdiff_t>(y.size());
#pragma omp parallel for simd schedule(static) num_threads(detail::layer_threads()) if (static_cast<std::size_t>(n) > detail::parallel_threshold)
    for (std::ptrdiff_t i = 0; i < n; ++i) yp[i] += xp[i];
  }

  matrix<T> dtp_;
};

}  // namespace softdiff::nn
