#pragma once
// conv2d's dense k x k passes (k = 3 or 1, stride 1, padding (k - 1) / 2) in bfloat16 over a
// batch (precision.hpp), float32 data in and out:
//  - forward: conv_bf16.hpp's tile program per sample, samples over threads;
//  - backward (bf16 training): dW by conv_bf16_grad.hpp's tile program, summed over the batch in
//    batch_reduction.hpp's fixed tree (bitwise the same for any thread count); dx = conv(dy, W~)
//    by the forward program with the flipped weights W~[c, o, u, v] = W[o, c, k - 1 - u, k - 1 - v]
//    (conv2d.hpp's gradient rule); dbias summed in float32 as in the float32 path.
// The float32 master weights are rounded to bf16 at every pass; the gradients, the optimiser
// and everything outside these convolutions stay float32.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <omp.h>

#include "softdiff/nn/batch_reduction.hpp"
#include "softdiff/nn/channel_affine.hpp"
#include "softdiff/nn/conv_bf16.hpp"
#include "softdiff/nn/conv_bf16_grad.hpp"
#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn::detail {

/// The passes and their workspaces (one set per thread, grown on demand).
class bf16_conv_passes {
public:
  /// y [N, B, H, W] = conv_k(m(x)) + bias (+ sample_bias [N B], + residual [N, B, H, W] when not
  /// null) for x [N, A, H, W]; m is prepared sample by sample. `threads` workspace slots, the
  /// samples over them when `over_batch`. `frozen_weights`: the weights are those of the last
  /// call with it (their bf16 packing is kept; forget_weights drops it).
  void forward(bf16_engine engine, const float* x, std::size_t N, std::size_t A, std::size_t B, std::size_t H,
               std::size_t W, std::size_t k, const float* weight, const float* bias, const channel_affine<float>& m,
               const float* sample_bias, const float* residual, float* y, int threads, bool over_batch,
               bool frozen_weights = false) {
    require_bf16_engine(engine);
    const bf16_conv_plan bp(A, B, H, W, k);
    const std::size_t HW = H * W, per = bp.grid_output() + bp.row_scratch() + B;
    const std::uint16_t* wp = forward_weights(weight, bp, frozen_weights);
    float* ws = reserve(f_, static_cast<std::size_t>(threads) * per);
    std::uint32_t* qs = reserve(q_, static_cast<std::size_t>(threads) * bp.packed_input());
    const auto count = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) num_threads(threads) if (over_batch)
    for (std::ptrdiff_t n = 0; n < count; ++n) {
      const auto t = static_cast<std::size_t>(omp_get_thread_num());
      float *gbuf = ws + t * per, *rows = gbuf + bp.grid_output(), *bn = rows + bp.row_scratch();
      const auto ns = static_cast<std::size_t>(n);
      for (std::size_t o = 0; o < B; ++o) bn[o] = bias[o] + (sample_bias ? sample_bias[ns * B + o] : 0.0f);
      m.prepare(ns);
      conv_bf16_sample_on(engine, bp, wp, x + ns * A * HW, m.sample(ns), bn,
                             residual ? residual + ns * B * HW : nullptr, y + ns * B * HW,
                             qs + t * bp.packed_input(), gbuf, rows);
    }
  }

  /// The backward of forward(x, m) for dy [N, B, H, W] (m prepared for every sample): segment s
  /// of `p` writes its dW^T [k^2 A, B] (row k^2 c + tap) and then its dbias [B] into slot p.slot(s)
  /// of `acc` (n_acc = k^2 A B + B floats a slot), folded as batch_reduction.hpp says; dx [N, A, H, W]
  /// unless null. Segments run in parallel when p.over_segments, else one after another on one
  /// thread (the tile programs do not split a sample).
  void backward(bf16_engine engine, const float* x, const channel_affine<float>& m, const float* dy, std::size_t N,
                std::size_t A, std::size_t B, std::size_t H, std::size_t W, std::size_t k, const float* weight,
                const reduction_plan& p, float* acc, float* dx) {
    require_bf16_engine(engine);
    const bf16_grad_plan gp(A, B, H, W, k);
    const bf16_conv_plan xp(B, A, H, W, k);  // dx = conv(dy, W~): B channels in, A out
    const std::size_t HW = H * W, n_acc = k * k * A * B + B;
    const std::size_t per16 = gp.packed_input();
    const std::size_t per32 = gp.packed_dy() + gp.dy_block() / 2 + (dx ? xp.packed_input() : 0);
    const std::size_t perf = gp.scratch() + (dx ? xp.grid_output() + xp.row_scratch() : 0);
    const auto slots = static_cast<std::size_t>(p.threads);
    std::uint16_t *h = reserve(h_, slots * per16), *wf = nullptr;
    std::uint32_t* q = reserve(q_, slots * per32);
    float* f = reserve(f_, slots * perf + A);
    float* zero_bias = f + slots * perf;
    std::fill_n(zero_bias, A, 0.0f);
    if (dx) {
      wf = reserve(wflip_, xp.packed_weights());
      pack_bf16_weights(weight, xp, wf, true);
    }
    const auto segments = static_cast<std::ptrdiff_t>(p.segments);
#pragma omp parallel for schedule(static) num_threads(p.threads) if (p.over_segments)
    for (std::ptrdiff_t seg = 0; seg < segments; ++seg) {
      const auto t = static_cast<std::size_t>(omp_get_thread_num()), s = static_cast<std::size_t>(seg);
      std::uint16_t* xb = h + t * per16;
      std::uint32_t *dyT = q + t * per32, *block = dyT + gp.packed_dy(), *qx = block + gp.dy_block() / 2;
      float *plane = f + t * perf, *gbuf = plane + gp.scratch(), *rows = gbuf + xp.grid_output();
      float* dwT = acc + p.slot(s) * n_acc;
      float* db = dwT + k * k * A * B;
      std::fill_n(db, B, 0.0f);
      const std::size_t n0 = p.begin(N, s), n1 = p.begin(N, s + 1);
      for (std::size_t n = n0; n < n1; ++n) {
        const float* gn = dy + n * B * HW;
        conv_bf16_grad_sample_on(engine, gp, x + n * A * HW, m.sample(n), gn, dwT, n > n0, xb, dyT, plane, block);
        add_plane_sums(gn, B, HW, db);
        if (dx)
          conv_bf16_sample_on(engine, xp, wf, gn, channel_affine<float>{}, zero_bias, nullptr, dx + n * A * HW, qx,
                                 gbuf, rows);
      }
      fold_partial(p, s, acc, n_acc);
    }
  }

  /// The next forward packs its weights again.
  void forget_weights() { packed_for_ = {0, 0}; }

private:
  /// pack_bf16_weights(weight) in w_; with `reuse` (frozen weights: conv2d::freeze_weights) the
  /// packing of an earlier call with reuse is kept.
  const std::uint16_t* forward_weights(const float* weight, const bf16_conv_plan& bp, bool reuse) {
    const std::pair<std::size_t, std::size_t> dims{bp.C, bp.B};
    if (!reuse || packed_for_ != dims) {
      pack_bf16_weights(weight, bp, reserve(w_, bp.packed_weights()));
      packed_for_ = reuse ? dims : std::pair<std::size_t, std::size_t>{0, 0};
    }
    return w_.data();
  }

  std::vector<std::uint16_t> w_, wflip_, h_;  // packed bf16 weights (forward, dx's flipped); per-thread planes
  std::pair<std::size_t, std::size_t> packed_for_{0, 0};  // (in, out) of a packing kept for reuse
  std::vector<std::uint32_t> q_;      // per-thread packed pairs
  std::vector<float> f_;              // per-thread float scratch
};

}  // namespace softdiff::nn::detail
