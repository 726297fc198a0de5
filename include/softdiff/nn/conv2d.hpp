#pragma once
// 2-D convolution with bias, PyTorch semantics (cross-correlation, zero padding p, stride s):
//   y[n,o,i,j] = bias[o] + sum_{c,u,v} W[o,c,u,v] x[n,c, i*s - p + u, j*s - p + v]
// Per sample this is one GEMM over the im2col matrix (conv_lowering.hpp):
//   y_n [b, L] = W [b, a*k*k] cols [a*k*k, L] + bias,   L = H'*W'
// Backward (the gradient rule, once), g = dy_n [b, L]:
//   dbias += sum_L g,   dW += g cols^T,   dx_n = col2im(W^T g).
// Three algorithms compute these (conv_algorithm):
//  - tiled (float with AVX2/AVX-512 by default): the register-tiled GEMM of conv_kernels.hpp.
//    Stride 1 never builds cols: B's rows are shifted views of the zero-padded image, the
//    output is computed on the padded-width grid and cropped. 3x3 with padding 1 (RefUNet's
//    convolutions) skips the padding columns: the image is padded with zero rows only, the
//    output positions are dense and the lanes that would wrap into a neighbouring row are
//    loaded as zero (tiled_gemm_taps3). dW^T = cols g^T reads the same shifted rows of the
//    fully padded image against g^T, row by row without the padding columns, several samples
//    per GEMM for small images (gemm_depth); dx is itself a stride-1 convolution,
//      dx_n = conv(g, W~, padding k-1-p),  W~[c,o,u,v] = W[o,c,k-1-u,k-1-v],
//    computed like the forward. Stride 2 builds cols (im2col) and uses col2im for dx.
//  - im2col_blas (double and other ISAs by default): im2col and BLAS (backend::cpu::gemm).
//  - winograd4 and winograd (3 x 3, stride 1, padding 1; by default for float with AVX-512,
//    winograd from 64 channels and winograd4 at 32 to 63 on images of 20 x 20 pixels or more,
//    winograd_preferred and winograd_tiling): Winograd's
//    F(4 x 4, 3 x 3), 4x fewer multiply-adds, and F(2 x 2, 3 x 3), 2.25x fewer
//    (winograd_tiles.hpp): forward and dx (winograd.hpp), dW in the transform domain
//    (winograd_grad.hpp). Other shapes: tiled.
// forward(x, m) convolves m(x) for a per-channel map m = SiLU(a x + b) (GroupNorm + SiLU,
// channel_affine.hpp): the dense 3 x 3 path applies m while it pads x (forward, and the dW pass
// of backward), so the activations m(x) are never written out.
// Forward: samples are spread over OpenMP threads, each with its own workspace; a batch smaller
// than the thread count spreads each GEMM instead. Backward: dW and dbias are sums over the
// batch, so their float rounding depends on the summation order; the batch is split into a
// fixed number of segments (detail::segment_count: N / 4 within [1, 8], never the thread count), each
// segment sums its samples in order into its own partial, and the partials are added in segment
// order. Segments run in parallel when there are enough, else one after another with each GEMM
// spread over threads (tiled_gemm splits rows and columns of C, never the depth): the same
// summation tree either way, so the gradients are bitwise the same for any thread count.
#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/nn/batch_reduction.hpp"
#include "softdiff/nn/channel_affine.hpp"
#include "softdiff/nn/conv_bf16_passes.hpp"
#include "softdiff/nn/conv_kernels.hpp"
#include "softdiff/nn/conv_lowering.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "softdiff/nn/winograd.hpp"
#include "softdiff/nn/winograd_grad.hpp"

namespace softdiff::nn {

/// What conv2d::forward(x, m, e) adds to the convolution besides its bias.
template <class T>
struct conv_addends {
  const T* sample_bias = nullptr;      // [N * out]: added to channel o of sample n
  const batch<T>* residual = nullptr;  // the output's shape: added element-wise
};

enum class conv_algorithm {
  automatic,    // winograd4 or winograd where winograd_preferred (by winograd_tiling), else tiled
                // where the scalar type runs on SIMD registers, else im2col_blas
  tiled,        // conv_kernels.hpp (any scalar type; scalar code without SIMD)
  im2col_blas,  // im2col + BLAS GEMM
  winograd,     // winograd.hpp's F(2 x 2, 3 x 3) for 3 x 3, stride 1, padding 1 (forward and
                // backward); tiled otherwise
  winograd4,    // the same with F(4 x 4, 3 x 3)
};

/// Whether a runs winograd.hpp (either tiling).
[[nodiscard]] constexpr bool is_winograd(conv_algorithm a) {
  return a == conv_algorithm::winograd || a == conv_algorithm::winograd4;
}

template <class T = float>
struct conv2d {
  using scalar_type = T;
  static constexpr std::size_t same_padding = static_cast<std::size_t>(-1);

  std::size_t in_channels = 0, out_channels = 0, kernel = 1, stride = 1, padding = 0;
  conv_algorithm algorithm = conv_algorithm::automatic;
  /// bf16: the stride-1 3 x 3 (padding 1) and 1 x 1 (padding 0) convolutions of float data with
  /// 16k input and output channels run in bfloat16 tiles (conv_bf16_passes.hpp) on `engine`,
  /// forward and backward (a backward follows its forward's precision); other shapes stay float32. Set through set_precision (which
  /// checks the engine can run here).
  precision arithmetic = precision::float32;
  bf16_engine engine = bf16_engine::amx;
  std::span<T> weight, bias;    // [out, in, k, k], [out]: views into the network's parameters
  std::span<T> dweight, dbias;  // the matching views into its gradients (backward adds into them)
  parameter_slot weight_slot, bias_slot;
  batch<T> y;   // [N, out, H', W'], output of the last forward
  batch<T> dx;  // [N, in, H, W], input gradient of the last backward

  conv2d() = default;
  /// padding = same_padding means kernel / 2 (PyTorch's padding=1 for a 3x3 kernel).
  conv2d(std::size_t in, std::size_t out, std::size_t kernel_size, std::size_t stride_ = 1,
         std::size_t padding_ = same_padding)
      : in_channels(in), out_channels(out), kernel(kernel_size), stride(stride_),
        padding(padding_ == same_padding ? kernel_size / 2 : padding_) {
    SOFTDIFF_REQUIRE(in > 0 && out > 0 && kernel > 0 && stride > 0, "conv2d: channels (", in, ", ", out,
                    "), kernel ", kernel, " and stride ", stride, " must be positive");
  }

  /// Registers `prefix.weight` [out, in, k, k] and `prefix.bias` [out].
  void declare(parameter_store<T>& store, std::string_view prefix) {
    weight_slot = store.add(std::string(prefix) + ".weight", {out_channels, in_channels, kernel, kernel});
    bias_slot = store.add(std::string(prefix) + ".bias", {out_channels});
  }
  void bind(parameter_store<T>& store) {
    weight = store.values(weight_slot), dweight = store.grads(weight_slot);
    bias = store.values(bias_slot), dbias = store.grads(bias_slot);
  }
  /// PyTorch's default initialisation (U(+-1/sqrt(in*k*k)) for weight and bias).
  void init(const noise_source& noise) {
    const std::size_t fan_in = in_channels * kernel * kernel;
    detail::fill_uniform_fan_in(weight, fan_in, noise, weight_slot.offset);
    detail::fill_uniform_fan_in(bias, fan_in, noise, bias_slot.offset);
  }

  [[nodiscard]] shape4 output_shape(const shape4& in) const {
    SOFTDIFF_REQUIRE(in[1] == in_channels, "conv2d: input ", to_string(in), " has ", in[1], " channels, expected ",
                    in_channels);
    SOFTDIFF_REQUIRE(in[2] + 2 * padding >= kernel && in[3] + 2 * padding >= kernel, "conv2d: input ",
                    to_string(in), " is smaller than the kernel ", kernel, " with padding ", padding);
    return {in[0], out_channels, (in[2] + 2 * padding - kernel) / stride + 1,
            (in[3] + 2 * padding - kernel) / stride + 1};
  }

  /// Sets `arithmetic` and `engine`; bf16 on AMX throws here, naming the missing feature, when
  /// this processor or kernel cannot run it.
  void set_precision(precision p, bf16_engine e = bf16_engine::amx) {
    if (p == precision::bf16) require_bf16_engine(e);
    arithmetic = p, engine = e;
  }
  /// Frozen weights (refunet::freeze): a forward's bf16 packing is kept for the next one, so
  /// weight must not change while frozen; freezing or thawing drops what was kept.
  void freeze_weights(bool on) { weights_frozen_ = on, bf16_.forget_weights(), wino_ = {}, wino_kept_ = false; }

  /// Winograd's kernel transforms, once per training step for every replica of a network
  /// (refunet): prepare_winograd computes this layer's U and flipped U of the current weights for
  /// its next forward and backward; share_winograd(owner) has this layer's next forward and
  /// backward read the owner's (prepared, and with the same weights) instead of computing its
  /// own. Each is used once: a later forward computes its own again unless prepared anew. No-ops
  /// where the layer does not run Winograd. The transforms are functions of the weights alone, so
  /// the results are the same bits.
  void prepare_winograd() {
    wino_ = {};
    if (!runs_winograd()) return;
    with_winograd_tile([&]<class F>(F) {
      transform_weights<F>();
      transform_flipped<F>();
    });
    wino_.next = this;
  }
  void share_winograd(const conv2d* owner) {
    wino_ = {};
    if (owner && owner->wino_.next == owner && runs_winograd()) wino_.next = owner;
  }
  /// Whether a forward of this layer runs winograd.hpp (float32 arithmetic, Winograd resolved).
  [[nodiscard]] bool runs_winograd() const {
    return is_winograd(resolved_algorithm()) && !runs_bf16();
  }

  /// Whether a forward of this layer runs in bf16 tiles.
  [[nodiscard]] bool runs_bf16() const {
    return std::is_same_v<T, float> && arithmetic == precision::bf16 && on_tiles() &&
           (dense_taps3() || pointwise()) && detail::bf16_conv_applies(in_channels, out_channels, kernel);
  }

  /// The algorithm this layer runs: `automatic` resolved for this scalar type (and, where
  /// Winograd is preferred, the image size of the last forward: winograd_tiling; before any
  /// forward, as for a small image), and winograd or winograd4 where they do not apply (not
  /// 3 x 3, stride 1, padding 1) resolved to tiled.
  [[nodiscard]] conv_algorithm resolved_algorithm() const {
    conv_algorithm a = algorithm;
    if (a == conv_algorithm::automatic) {
      a = detail::simd_kernel<T> ? conv_algorithm::tiled : conv_algorithm::im2col_blas;
      if (dense_taps3() && detail::winograd_preferred<T>(in_channels, out_channels)) {
        const std::size_t tiling = detail::winograd_tiling(in_channels, out_channels, image_pixels_);
        if (tiling != 0) a = tiling == 4 ? conv_algorithm::winograd4 : conv_algorithm::winograd;
      }
    }
    return is_winograd(a) && !dense_taps3() ? conv_algorithm::tiled : a;
  }

  const batch<T>& forward(const batch<T>& x) {
    check_bound();
    image_pixels_ = x.shape()[2] * x.shape()[3];
    ensure_shape(y, output_shape(shape_of(x)));
    x_ = &x;
    map_ = {};
    forward_was_bf16_ = false;
    const detail::conv_geometry g = geometry(shape_of(x));
    if (on_tiles())
      forward_tiled(x, g);
    else
      forward_blas(x, g);
    return y;
  }

  /// y = conv(m(x)) + bias + e for the map m = SiLU(a x + b) per (n, c) (channel_affine.hpp;
  /// typically group_norm::silu_map(x)) and the addends e (conv_addends: a per-sample bias such as
  /// RefUNet's time embedding, a residual); backward's dx is dL/d m(x), and dbias the gradient of
  /// the bias alone. The dense 3 x 3 path applies m while it pads x, forward and backward, so m(x)
  /// is never stored, and adds e as it stores y; the other paths store m(x) in this layer, run on
  /// it and add e afterwards. m's arrays, like x, must stay unchanged until backward.
  const batch<T>& forward(const batch<T>& x, const channel_affine<T>& m, const conv_addends<T>& e = {}) {
    const shape4 s = shape_of(x);
    SOFTDIFF_REQUIRE(m.empty() || m.channels == s[1], "conv2d: a map of ", m.channels, " channels for input ",
                    to_string(s));
    const shape4 out = output_shape(s);
    SOFTDIFF_REQUIRE(!e.residual || shape_of(*e.residual) == out, "conv2d: residual ",
                    e.residual ? to_string(shape_of(*e.residual)) : "", " does not match the output ", to_string(out));
    SOFTDIFF_REQUIRE(!e.residual || e.residual != &y, "conv2d: the residual cannot be this layer's own output");
    image_pixels_ = s[2] * s[3];
    if (on_tiles() && dense_taps3()) {
      check_bound();
      ensure_shape(y, out);
      x_ = &x;
      map_ = m;
      forward_tiled(x, geometry(s), e);  // prepares each sample of the map before it pads it
      map_.fill = nullptr;                // every sample is prepared now; backward only reads
      return y;
    }
    const batch<T>* in = &x;
    if (!m.empty()) {
      const channel_affine<T> mp_all = m.prepared_all(s[0]);
      ensure_shape(mapped_, s);
      const std::size_t HW = s[2] * s[3];
      const auto planes = static_cast<std::ptrdiff_t>(s[0] * s[1]);
      const T* xp = x.data();
      T* mp = mapped_.data();
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (x.size() > detail::parallel_threshold)
      for (std::ptrdiff_t p = 0; p < planes; ++p) {
        const auto q = static_cast<std::size_t>(p);
        detail::affine_silu_row(xp + q * HW, HW, mp_all.scale[q], mp_all.shift[q], mp + q * HW);
      }
      in = &mapped_;
    }
    forward(*in);
    const std::size_t planes = out[0] * out[1], L = out[2] * out[3];
    T* yp = y.data();
    for (std::size_t p = 0; p < planes; ++p) {
      const T add = e.sample_bias ? e.sample_bias[p] : T(0);
      const T* r = e.residual ? e.residual->data() + p * L : nullptr;
      for (std::size_t l = 0; l < L; ++l) yp[p * L + l] += add + (r ? r[l] : T(0));
    }
    return y;
  }

  /// Adds dL/dW and dL/dbias into dweight, dbias; returns dL/dx unless need_dx is false
  /// (then dx is left untouched, e.g. for the network's first layer).
  const batch<T>& backward(const batch<T>& dy, bool need_dx = true) {
    check_bound();
    SOFTDIFF_REQUIRE(x_ != nullptr, "conv2d::backward: called before forward");
    SOFTDIFF_REQUIRE(shape_of(dy) == shape_of(y), "conv2d::backward: dy ", to_string(shape_of(dy)),
                    " does not match the forward output ", to_string(shape_of(y)));
    if (need_dx) ensure_shape(dx, shape_of(*x_));
    if (dy.shape()[0] == 0) return dx;  // nothing to add (the partial sums would hold the last batch's)
    const detail::conv_geometry g = geometry(shape_of(*x_));
    if (on_tiles())
      backward_tiled(*x_, dy, g, need_dx);
    else
      backward_blas(*x_, dy, g, need_dx);
    return dx;
  }

private:
  struct plan {
    int threads;       // workspace slots
    bool over_batch;   // samples over threads
    bool within_gemm;  // each GEMM over threads (batches smaller than the thread count)
  };
  /// `macs`: multiply-adds of the pass; small passes stay on one thread.
  [[nodiscard]] static plan make_plan(std::size_t N, std::size_t macs) {
    const int threads = macs > 4 * detail::parallel_threshold ? detail::layer_threads() : 1;
    const bool over_batch = threads > 1 && N >= static_cast<std::size_t>(threads);
    return {over_batch ? threads : 1, over_batch, !over_batch && threads > 1};
  }
  [[nodiscard]] detail::conv_geometry geometry(const shape4& in) const {
    const shape4 out = output_shape(in);
    return {in_channels, out_channels, kernel, stride, padding, in[2], in[3], out[2], out[3]};
  }
  using reduction_plan = detail::reduction_plan;
  /// Partial sums of the backward: slot t at the result + t * n_acc (the dW part is written, not
  /// added, by the first sample of each segment).
  T* partials(const reduction_plan& p, std::size_t n_acc) { return detail::reserve(partial_, p.slots() * n_acc); }
  /// Folds the segments' partials into slot 0 in segment order (when they ran in parallel), then
  /// dweight += the weight part, [K, B] when `transposed` (the tiled algorithm's dW^T) else
  /// [B, K], and dbias += the bias part (after it).
  void add_partials(const reduction_plan& p, T* acc, std::size_t n_acc, std::size_t K, bool transposed) {
    const std::size_t B = out_channels;
    detail::fold_segments(p, acc, n_acc);
    T *gw = dweight.data(), *gb = dbias.data();
    if (transposed) {
      for (std::size_t r = 0; r < K; ++r)
        for (std::size_t o = 0; o < B; ++o) gw[o * K + r] += acc[r * B + o];
    } else {
#pragma omp simd
      for (std::size_t i = 0; i < B * K; ++i) gw[i] += acc[i];
    }
    for (std::size_t o = 0; o < B; ++o) gb[o] += acc[K * B + o];
  }
  /// Workspace of `per_thread` scalars for each of `threads` slots; slot t starts at the result + t * per_thread.
  T* workspace(int threads, std::size_t per_thread) {
    return detail::reserve(work_, static_cast<std::size_t>(threads) * per_thread);
  }

  // ---- tiled ------------------------------------------------------------------------------

  void forward_tiled(const batch<T>& x, const detail::conv_geometry& g, const conv_addends<T>& e = {}) {
    const std::size_t N = x.shape()[0], A = in_channels, B = out_channels, K = g.rows(), L = g.cols();
    const std::size_t k = kernel, HW = g.h * g.w, Hp = g.h + 2 * padding, Wp = g.w + 2 * padding;
    const bool shifted = stride == 1, in_place = shifted && k == 1 && padding == 0, out_direct = k == 1;
    const bool dense = dense_taps3();
    forward_was_bf16_ = runs_bf16();
    wino_u_current_ = false;
    if constexpr (std::is_same_v<T, float>) {
      if (forward_was_bf16_) return forward_bf16(x, g, e);
    }
    if (is_winograd(resolved_algorithm())) {
      const std::size_t tiling = winograd_tile_size();
      const conv2d* src = std::exchange(wino_.next, nullptr);  // prepared (prepare_winograd, share_winograd)
      if (src && src->wino_tiling_ != tiling) src = nullptr;   // prepared for another image size's tiling
      wino_.back = src;
      if (wino_tiling_ != tiling) wino_kept_ = false;
      if (!src && !wino_kept_) with_winograd_tile([&]<class F>(F) { transform_weights<F>(); });
      wino_kept_ = !src && weights_frozen_;  // frozen weights: the next forward reuses this U
      wino_u_current_ = src == nullptr || src == this;
      const T* U = src ? src->wino_u_.data() : wino_u_.data();
      return winograd_pass(x.data(), N, A, B, g.h, g.w, U, map_, bias.data(), e, y.data());
    }
    const std::size_t grid = shifted && !dense ? g.oh * Wp : L;  // GEMM columns
    const std::size_t n_pad = dense ? detail::pad_rows_size(A, g.h, g.w, 1) : shifted && !in_place ? A * Hp * Wp + k : 0;
    const std::size_t n_grid = shifted && !out_direct && !dense ? B * grid : 0, n_cols = shifted ? 0 : K * L;
    const plan p = make_plan(N, N * B * L * K);
    const std::size_t n_bias = e.sample_bias ? B : 0;
    const std::size_t per = n_pad + n_grid + n_cols + n_bias;
    T* ws = workspace(p.threads, per);
    detail::strided_offsets(B, K, off_a_);
    if (dense)
      detail::tap_offsets(A, g.h, g.w, off_b_);
    else if (shifted)
      detail::shifted_offsets(A, k, Hp, Wp, off_b_);
    else
      detail::strided_offsets(K, L, off_b_);
    const T *xp = x.data(), *wp = weight.data(), *bp = bias.data();
    T* yp = y.data();
    const auto count = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) num_threads(p.threads) if (p.over_batch)
    for (std::ptrdiff_t n = 0; n < count; ++n) {
      T* w0 = ws + static_cast<std::size_t>(omp_get_thread_num()) * per;
      T *pad = w0, *gbuf = w0 + n_pad, *cols = gbuf + n_grid, *bias_n = cols + n_cols;
      const T* xn = xp + static_cast<std::size_t>(n) * A * HW;
      T* yn = yp + static_cast<std::size_t>(n) * B * L;
      if (dense) {
        const T* bn = bp;
        if (e.sample_bias) {  // only forward(x, m, e) passes addends, on this path
          const T* sb = e.sample_bias + static_cast<std::size_t>(n) * B;
          for (std::size_t o = 0; o < B; ++o) bias_n[o] = bp[o] + sb[o];
          bn = bias_n;
        }
        map_.prepare(static_cast<std::size_t>(n));
        detail::pad_rows(xn, A, g.h, g.w, 1, pad, map_.sample(static_cast<std::size_t>(n)));
        detail::tiled_gemm_taps3<T>(B, L, K, g.w, wp, off_a_.data(), pad + detail::row_pad_guard, off_b_.data(), yn,
                                    L, bn, p.within_gemm,
                                    e.residual ? e.residual->data() + static_cast<std::size_t>(n) * B * L : nullptr);
        continue;
      }
      const T* src = xn;
      if (shifted && !in_place) {
        detail::pad_image(xn, A, g.h, g.w, padding, pad);
        std::fill(pad + A * Hp * Wp, pad + n_pad, T(0));  // read slack of the last shifted rows
        src = pad;
      } else if (!shifted) {
        detail::im2col(xn, cols, g);
        src = cols;
      }
      T* out = (shifted && !out_direct) ? gbuf : yn;
      detail::tiled_gemm<T>(false, B, grid, K, wp, off_a_.data(), src, off_b_.data(), out, grid, bp, p.within_gemm);
      if (out != yn) detail::crop_columns(gbuf, B, g.oh, Wp, g.ow, yn);
    }
  }

  /// out [N, B, h, w] = the winograd.hpp convolution of in [N, A, h, w] (through the map m) with
  /// the transformed weights U, plus bias (may be null) and the addends e.
  void winograd_pass(const T* in, std::size_t N, std::size_t A, std::size_t B, std::size_t h, std::size_t w,
                     const T* U, const channel_affine<T>& m, const T* b, const conv_addends<T>& e, T* out) {
    with_winograd_tile([&]<class F>(F) {
      detail::winograd_conv(detail::winograd_shape<F>(A, B, h, w, N), N, in, U, m, b, e.sample_bias,
                            e.residual ? e.residual->data() : nullptr, out, work_, off_a_, off_b_);
    });
  }

  /// fn(F{}) for this layer's Winograd tiling F (winograd_tiles.hpp): F(4 x 4) for winograd4,
  /// else F(2 x 2).
  template <class Fn>
  void with_winograd_tile(Fn&& fn) const {
    if (resolved_algorithm() == conv_algorithm::winograd4)
      fn(detail::winograd_f4{});
    else
      fn(detail::winograd_f2{});
  }
  [[nodiscard]] std::size_t winograd_tile_size() const { return resolved_algorithm() == conv_algorithm::winograd4 ? 4 : 2; }
  /// wino_u_ = the tiling F's transform of the weights; wino_flip_ = that of the flipped kernel
  /// (dx's), from wino_u_ where F allows.
  template <class F>
  void transform_weights() {
    const std::size_t A = in_channels, B = out_channels;
    detail::winograd_weights<F>(weight.data(), B, A, detail::reserve(wino_u_, F::planes * A * B));
    wino_tiling_ = F::m;
  }
  template <class F>
  void transform_flipped() {
    const std::size_t A = in_channels, B = out_channels;
    detail::winograd_flipped<F>(weight.data(), wino_u_.data(), A, B, detail::reserve(wino_flip_, F::planes * A * B),
                                wflip_);
  }

  /// The dense 3 x 3 or 1 x 1 forward in bf16 tiles (conv_bf16_passes.hpp), samples over threads.
  void forward_bf16(const batch<T>& x, const detail::conv_geometry& g, const conv_addends<T>& e) {
    const std::size_t N = x.shape()[0];
    const plan p = make_plan(N, N * out_channels * g.h * g.w * in_channels * kernel * kernel);
    bf16_.forward(engine, x.data(), N, in_channels, out_channels, g.h, g.w, kernel, weight.data(), bias.data(), map_,
                  e.sample_bias, e.residual ? e.residual->data() : nullptr, y.data(), p.threads, p.over_batch,
                  weights_frozen_);
  }

  /// The backward of forward_bf16 (bf16 training): dW^T and dbias into the reduction's partials.
  void backward_bf16(const batch<T>& x, const batch<T>& dy, const detail::conv_geometry& g, bool need_dx) {
    const std::size_t N = x.shape()[0], A = in_channels, B = out_channels, K = kernel * kernel * A, n_acc = K * B + B;
    const reduction_plan p = detail::make_reduction_plan(N, N * B * g.h * g.w * K);
    T* acc = partials(p, n_acc);
    bf16_.backward(engine, x.data(), map_, dy.data(), N, A, B, g.h, g.w, kernel, weight.data(), p, acc,
                   need_dx ? dx.data() : nullptr);
    add_partials(p, acc, n_acc, K, true);
  }

  /// Samples per dW GEMM (stride 1), at most dw_chunk and as many as fit dw_chunk_scalars of
  /// padded images and g^T: a longer depth keeps each C tile in registers longer (small images),
  /// while chunks that spill out of L2 slow the dx GEMMs that follow (large ones).
  static constexpr std::size_t dw_chunk = 4, dw_chunk_scalars = 65536;

  /// 3 x 3, stride 1, padding 1: forward and dx run on dense output positions (tiled_gemm_taps3)
  /// or on winograd.hpp.
  [[nodiscard]] bool dense_taps3() const { return stride == 1 && kernel == 3 && padding == 1; }
  /// 1 x 1, stride 1, padding 0: a GEMM per sample (and, in bf16, conv_bf16.hpp with k = 1).
  [[nodiscard]] bool pointwise() const { return stride == 1 && kernel == 1 && padding == 0; }
  /// Whether this layer runs on conv_kernels.hpp's tiles (tiled or winograd), not BLAS.
  [[nodiscard]] bool on_tiles() const { return resolved_algorithm() != conv_algorithm::im2col_blas; }

  void backward_tiled(const batch<T>& x, const batch<T>& dy, const detail::conv_geometry& g, bool need_dx) {
    if constexpr (std::is_same_v<T, float>) {
      if (forward_was_bf16_) return backward_bf16(x, dy, g, need_dx);
    }
    if (is_winograd(resolved_algorithm())) return backward_winograd(x, dy, g, need_dx);
    const std::size_t N = x.shape()[0], A = in_channels, B = out_channels, K = g.rows(), L = g.cols();
    const std::size_t k = kernel, HW = g.h * g.w, Hp = g.h + 2 * padding, Wp = g.w + 2 * padding;
    const bool shifted = stride == 1, in_place = shifted && k == 1 && padding == 0;
    // dx as a convolution of dy needs stride 1 and p <= k-1; its padding, padded size and grid
    const bool dx_conv = need_dx && shifted && padding <= k - 1;
    const std::size_t q = dx_conv ? k - 1 - padding : 0, Hq = g.oh + 2 * q, Wq = g.ow + 2 * q;
    const bool dx_in_place = dx_conv && k == 1 && q == 0, dx_direct = k == 1;
    const bool dx_dense = dx_conv && dense_taps3();  // q = 1: dx = the dense 3 x 3 GEMM of dy
    // dW^T [K, B] += cols [K, L] g^T [L, B] for `chunk` samples at a time (one GEMM, its depth the
    // chunk's L output positions each, read from the padded images row by row)
    const std::size_t x_step = in_place ? A * HW : A * Hp * Wp + k;  // a sample's dW operand
    const std::size_t chunk =
        shifted ? std::clamp<std::size_t>(dw_chunk_scalars / (x_step + L * B), 1, std::min(dw_chunk, N)) : 1;
    const std::size_t n_xpad = shifted && !in_place ? chunk * x_step : 0;
    const std::size_t n_pad = dx_dense ? detail::pad_rows_size(B, g.oh, g.ow, 1)
                              : dx_conv && !dx_in_place ? B * Hq * Wq + k : 0;
    const std::size_t n_grid = dx_conv && !dx_direct && !dx_dense ? A * g.h * Wq : 0;
    const std::size_t n_cols = shifted ? 0 : K * L, n_dcols = need_dx && !dx_conv ? K * L : 0;
    const std::size_t n_gT = chunk * L * B, n_acc = K * B + B;
    const reduction_plan p = detail::make_reduction_plan(N, N * B * L * K);
    const std::size_t per = n_xpad + n_pad + n_grid + n_cols + n_dcols + n_gT;
    T* ws = workspace(p.threads, per);
    T* acc = partials(p, n_acc);
    if (shifted)
      detail::shifted_offsets(A, k, Hp, Wp, off_a_);
    else
      detail::strided_offsets(K, L, off_a_);
    detail::strided_offsets(chunk * L, B, off_b_);
    if (dx_conv) {  // dx [A, H*Wq] = W~ [A, B*k*k] shifted(pad_q(g)) [B*k*k, H*Wq]
      pack_flipped_weight();
      detail::strided_offsets(A, B * k * k, off_c_);
      if (dx_dense)
        detail::tap_offsets(B, g.oh, g.ow, off_d_);
      else
        detail::shifted_offsets(B, k, Hq, Wq, off_d_);
    } else if (need_dx) {  // dcols [K, L] = W^T [K, B] g [B, L]
      detail::transpose(weight.data(), B, K, detail::reserve(wflip_, K * B));
      detail::strided_offsets(K, B, off_c_);
      detail::strided_offsets(B, L, off_d_);
    }
    const T *xp = x.data(), *gp = dy.data(), *wf = wflip_.data();
    T* dxp = need_dx ? dx.data() : nullptr;
    const auto segments = static_cast<std::ptrdiff_t>(p.segments);
#pragma omp parallel for schedule(static) num_threads(p.threads) if (p.over_segments)
    for (std::ptrdiff_t seg = 0; seg < segments; ++seg) {
      T* w0 = ws + static_cast<std::size_t>(omp_get_thread_num()) * per;
      T *xpad = w0, *pad = xpad + n_xpad, *gbuf = pad + n_pad, *cols = gbuf + n_grid, *dcols = cols + n_cols;
      T* gT = dcols + n_dcols;
      T* dwT = acc + p.slot(static_cast<std::size_t>(seg)) * n_acc;
      T* db = dwT + K * B;
      std::fill_n(db, B, T(0));  // dW^T is overwritten by the segment's first chunk
      const std::size_t n0 = detail::segment_begin(N, p.segments, static_cast<std::size_t>(seg));
      const std::size_t n1 = detail::segment_begin(N, p.segments, static_cast<std::size_t>(seg) + 1);
      for (std::size_t c0 = n0; c0 < n1; c0 += chunk) {
        const std::size_t c1 = std::min(n1, c0 + chunk);
        for (std::size_t n = c0; n < c1; ++n) {
          const T* xn = xp + n * A * HW;
          const T* gn = gp + n * B * L;
          detail::add_plane_sums(gn, B, L, db);
          detail::transpose(gn, B, L, gT + (n - c0) * L * B);
          if (shifted && !in_place) {
            T* xs = xpad + (n - c0) * x_step;
            detail::pad_image(xn, A, g.h, g.w, padding, xs, map_.sample(n));
            std::fill(xs + A * Hp * Wp, xs + x_step, T(0));
          } else if (!shifted) {
            detail::im2col(xn, cols, g);
          }
        }
        const T* src = in_place ? xp + c0 * A * HW : shifted ? xpad : cols;
        const detail::gemm_depth depth = shifted && Wp != g.ow ? detail::gemm_depth{g.oh, g.ow, Wp, c1 - c0, x_step}
                                                               : detail::gemm_depth{1, L, L, c1 - c0, x_step};
        detail::tiled_gemm<T>(c0 > n0, K, B, depth, src, off_a_.data(), gT, off_b_.data(), dwT, B, nullptr,
                              p.within_gemm);
        if (!need_dx) continue;
        for (std::size_t n = c0; n < c1; ++n) {
          const T* gn = gp + n * B * L;
          T* dxn = dxp + n * A * HW;
          if (dx_dense) {
            detail::pad_rows(gn, B, g.oh, g.ow, 1, pad);
            detail::tiled_gemm_taps3<T>(A, HW, B * 9, g.w, wf, off_c_.data(), pad + detail::row_pad_guard,
                                        off_d_.data(), dxn, HW, nullptr, p.within_gemm);
          } else if (dx_conv) {
            const T* gsrc = gn;
            if (!dx_in_place) {
              detail::pad_image(gn, B, g.oh, g.ow, q, pad);
              std::fill(pad + B * Hq * Wq, pad + B * Hq * Wq + k, T(0));
              gsrc = pad;
            }
            T* out = dx_direct ? dxn : gbuf;
            detail::tiled_gemm<T>(false, A, g.h * Wq, B * k * k, wf, off_c_.data(), gsrc, off_d_.data(), out,
                                  g.h * Wq, nullptr, p.within_gemm);
            if (out != dxn) detail::crop_columns(gbuf, A, g.h, Wq, g.w, dxn);
          } else {
            detail::tiled_gemm<T>(false, K, L, B, wf, off_c_.data(), gn, off_d_.data(), dcols, L, nullptr,
                                  p.within_gemm);
            detail::col2im(dcols, dxn, g);
          }
        }
      }
      detail::fold_partial(p, static_cast<std::size_t>(seg), acc, n_acc);
    }
    add_partials(p, acc, n_acc, K, true);
  }

  /// dW and dbias in the transform domain (winograd_grad.hpp), dx = conv(dy, W~) by winograd_pass.
  void backward_winograd(const batch<T>& x, const batch<T>& dy, const detail::conv_geometry& g, bool need_dx) {
    const std::size_t N = x.shape()[0], A = in_channels, B = out_channels;
    with_winograd_tile([&]<class F>(F) {
      detail::winograd_backward_weights(detail::winograd_shape<F>(A, B, g.h, g.w, N), N, x.data(), map_, dy.data(),
                                        partial_, work_, dweight.data(), dbias.data());
    });
    if (!need_dx) return;
    const conv2d* src = std::exchange(wino_.back, nullptr);
    if (!src) {
      with_winograd_tile([&]<class F>(F) {
        if (!wino_u_current_) transform_weights<F>();
        transform_flipped<F>();
      });
      wino_u_current_ = true;
    }
    const T* Uf = src ? src->wino_flip_.data() : wino_flip_.data();
    winograd_pass(dy.data(), N, B, A, g.oh, g.ow, Uf, {}, nullptr, {}, dx.data());
  }

  /// W~[c, (o*k + u)*k + v] = W[o, c, k-1-u, k-1-v]: the kernel of dx = conv(dy, W~).
  void pack_flipped_weight() {
    const std::size_t A = in_channels, B = out_channels, k = kernel;
    T* wf = detail::reserve(wflip_, A * B * k * k);
    const T* w = weight.data();
    for (std::size_t o = 0; o < B; ++o)
      for (std::size_t c = 0; c < A; ++c)
        for (std::size_t u = 0; u < k; ++u)
          for (std::size_t v = 0; v < k; ++v)
            wf[c * B * k * k + (o * k + u) * k + v] = w[((o * A + c) * k + (k - 1 - u)) * k + (k - 1 - v)];
  }

  // ---- im2col + BLAS ----------------------------------------------------------------------

  void forward_blas(const batch<T>& x, const detail::conv_geometry& g) {
    const std::size_t N = x.shape()[0], K = g.rows(), L = g.cols(), B = out_channels, HW = g.h * g.w;
    const bool direct = kernel == 1 && stride == 1 && padding == 0;
    const plan p = make_plan(N, N * B * L * K);
    const std::size_t per = direct ? 0 : K * L;
    T* ws = workspace(p.threads, per);
    const T *xp = x.data(), *wp = weight.data(), *bp = bias.data();
    T* yp = y.data();
    const auto count = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) num_threads(p.threads) if (p.over_batch)
    for (std::ptrdiff_t n = 0; n < count; ++n) {
      const T* xn = xp + static_cast<std::size_t>(n) * in_channels * HW;
      T* yn = yp + static_cast<std::size_t>(n) * B * L;
      const T* cols = xn;
      if (!direct) {
        T* c = ws + static_cast<std::size_t>(omp_get_thread_num()) * per;
        detail::im2col(xn, c, g);
        cols = c;
      }
      for (std::size_t o = 0; o < B; ++o) std::fill(yn + o * L, yn + (o + 1) * L, bp[o]);
      backend::cpu::gemm<T>(false, false, int(B), int(L), int(K), T(1), wp, int(K), cols, int(L), T(1), yn, int(L));
    }
  }

  void backward_blas(const batch<T>& x, const batch<T>& dy, const detail::conv_geometry& g, bool need_dx) {
    const std::size_t N = x.shape()[0], K = g.rows(), L = g.cols(), B = out_channels, HW = g.h * g.w;
    const bool direct = kernel == 1 && stride == 1 && padding == 0;
    const reduction_plan p = detail::make_reduction_plan(N, N * B * L * K);
    const std::size_t per = K * L, n_acc = B * K + B;  // cols, then dcols | dW partial, dbias partial
    T* ws = workspace(p.threads, per);
    T* acc = partials(p, n_acc);
    const T *xp = x.data(), *wp = weight.data(), *gp = dy.data();
    T* dxp = need_dx ? dx.data() : nullptr;
    const auto segments = static_cast<std::ptrdiff_t>(p.segments);
#pragma omp parallel for schedule(static) num_threads(p.threads) if (p.over_segments)
    for (std::ptrdiff_t seg = 0; seg < segments; ++seg) {
      T* work = ws + static_cast<std::size_t>(omp_get_thread_num()) * per;
      T* dw = acc + p.slot(static_cast<std::size_t>(seg)) * n_acc;
      T* db = dw + B * K;
      std::fill_n(db, B, T(0));  // dW is overwritten by the segment's first sample
      const std::size_t n0 = detail::segment_begin(N, p.segments, static_cast<std::size_t>(seg));
      const std::size_t n1 = detail::segment_begin(N, p.segments, static_cast<std::size_t>(seg) + 1);
      for (std::size_t n = n0; n < n1; ++n) {
        const T* xn = xp + n * in_channels * HW;
        const T* gn = gp + n * B * L;
        const T* cols = xn;
        if (!direct) {
          detail::im2col(xn, work, g);
          cols = work;
        }
        backend::cpu::gemm<T>(false, true, int(B), int(K), int(L), T(1), gn, int(L), cols, int(L), T(n > n0 ? 1 : 0), dw,
                        int(K));
        for (std::size_t o = 0; o < B; ++o)
          for (std::size_t l = 0; l < L; ++l) db[o] += gn[o * L + l];
        if (!need_dx) continue;
        T* dxn = dxp + n * in_channels * HW;
        if (direct) {
          backend::cpu::gemm<T>(true, false, int(K), int(L), int(B), T(1), wp, int(K), gn, int(L), T(0), dxn,
                          int(L));
        } else {
          backend::cpu::gemm<T>(true, false, int(K), int(L), int(B), T(1), wp, int(K), gn, int(L), T(0), work,
                          int(L));
          detail::col2im(work, dxn, g);
        }
      }
      detail::fold_partial(p, static_cast<std::size_t>(seg), acc, n_acc);
    }
    add_partials(p, acc, n_acc, K, false);
  }

  void check_bound() const {
    SOFTDIFF_REQUIRE(weight.size() == out_channels * in_channels * kernel * kernel && bias.size() == out_channels &&
                        dweight.size() == weight.size() && dbias.size() == bias.size(),
                    "conv2d: parameters not bound (call declare, parameter_store::allocate, bind)");
  }

  const batch<T>* x_ = nullptr;
  channel_affine<T> map_;  // applied to *x_ (dense 3 x 3 path only; else empty)
  batch<T> mapped_;        // m(x) of forward(x, m) on the other paths
  std::vector<T> work_, partial_, wflip_;  // wflip_: the flipped kernel (tiled dx; F(4 x 4)'s transform of it)
  std::vector<T> wino_u_, wino_flip_;  // winograd.hpp's transformed kernel (of the last forward), and of dx's
  bool wino_u_current_ = false;         // wino_u_ is the transform of the weights the last forward used
  /// The layer whose prepared transforms the next forward (next) and the last forward's backward
  /// (back) read; a copy of the layer starts with neither (they point into another layer).
  struct winograd_source {
    const conv2d* next = nullptr;
    const conv2d* back = nullptr;
    winograd_source() = default;
    winograd_source(const winograd_source&) noexcept {}
    winograd_source& operator=(const winograd_source&) noexcept {
      next = back = nullptr;
      return *this;
    }
  } wino_;
  bool wino_kept_ = false;  // frozen: wino_u_ holds the transform of the frozen weights
  std::size_t wino_tiling_ = 0;    // m of the tiling F(m x m, 3 x 3) wino_u_ and wino_flip_ are for
  std::size_t image_pixels_ = 0;   // h w of the last forward's input (automatic's tiling depends on it)
  detail::bf16_conv_passes bf16_;  // forward_bf16, backward_bf16
  bool forward_was_bf16_ = false;     // backward follows it in bf16
  bool weights_frozen_ = false;       // freeze_weights
  std::vector<std::ptrdiff_t> off_a_, off_b_, off_c_, off_d_;
};

static_assert(Layer<conv2d<float>>);
static_assert(Layer<conv2d<double>>);

}  // namespace softdiff::nn
