#pragma once
// What every sampler step shares: the argument checks, the final-step convention,
// a model archetype for the Sampler static_asserts, and the fused noise pass.
//
// Final-step convention (every sampler in sampler/): when sigma_{t'} = 0 (t' = 0,
// where C_0 = I and sigma_0 = 0) the step returns h = phi(x_t, t) + x_t, the
// estimate of x_0, instead of evaluating its update rule. The update rules would
// otherwise keep terms that vanish only in expectation (the momentum rule gives
// h + sigma_t eta at t' = 0) or divide by sigma_{t'}.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/normal_tile.hpp"
#include "softdiff/backend/philox.hpp"
#include "softdiff/error.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/update_rules.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler::detail {

using backend::detail::normal4_tile;
using backend::detail::normal_tile;

/// Least elements per thread in element-wise passes: smaller batches run on one thread, where a
/// parallel region would cost more than it saves (and far more on an oversubscribed machine).
inline constexpr std::size_t elementwise_grain = std::size_t{1} << 16;

/// The checks of one reverse step t -> t': finite times with 0 <= t' < t <= 1, sigma_t > 0,
/// 0 <= sigma_{t'} <= sigma_t, a non-empty batch. Finiteness of x is checked by the model's
/// denoise (SoftDiffusion::denoise), which every step calls first.
template <class T>
void check_step(const char* where, const batch<T>& x, double t, double t_next, double s, double s_next) {
  rules::check_step(where, shape_of(x), t, t_next, s, s_next);
}

/// dst = src (dst takes src's shape; no allocation when it already has it).
template <class T>
void copy_into(const batch<T>& src, batch<T>& dst) {
  ensure_shape(dst, shape_of(src));
  const T* s = src.data();
  T* d = dst.data();
  backend::cpu::parallel_chunks(src.size(), elementwise_grain,
                                [=](std::size_t b, std::size_t e) { std::copy(s + b, s + e, d + b); });
}

/// The start of the pf_momentum, ddim and predictor-corrector steps: h = phi(x_t, t) + x_t, then
/// y = C_t h and c = C_{t'} h. On a final step (s' = 0) x becomes h instead and the result is
/// false (the final-step convention above).
template <class M, class T>
bool estimate(M& model, batch<T>& x, double t, double t_next, double s_next, batch<T>& h, batch<T>& y, batch<T>& c) {
  model.denoise(x, t, h);
  if (s_next == 0.0) {
    copy_into(h, x);
    return false;
  }
  model.apply_operator(t, h, y);
  model.apply_operator(t_next, h, c);
  return true;
}

/// The least a SamplingModel offers, for `static_assert(Sampler<S, model_archetype<T>>)`.
template <class T>
struct model_archetype {
  using scalar_type = T;
  void denoise(const batch<T>& x, double t, batch<T>& out);
  void apply_operator(double t, const batch<T>& x, batch<T>& out);
  double sigma(double t) const;
};

/// Calls f(begin, end, eta) over consecutive ranges covering [0, n), where eta[j] is the standard
/// normal at flat index noise.offset + offset + begin + j (what `noise.fill` writes at
/// offset + begin + j): the same Philox blocks,
/// generated a tile at a time on the stack (normal4_tile for float), so that a sampler's
/// element-wise update and its noise are one pass over memory. Chunks run in parallel; each
/// value is a pure function of its index, so the result depends neither on the thread count
/// nor on how a batch is split into offset ranges.
template <class T, class F>
void for_each_normal_chunk_at(const noise_source& noise, std::size_t offset, std::size_t n, F&& f) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if (n == 0) return;
  constexpr std::size_t per_block = std::is_same_v<T, float> ? 4 : 2;
  constexpr std::size_t tile = normal_tile;
  offset += static_cast<std::size_t>(noise.offset);  // the source's own place in a larger batch
  const std::size_t first = offset / per_block, blocks = (offset + n + per_block - 1) / per_block - first;
  const std::uint64_t stream = noise.stream, seed = noise.seed;
  backend::cpu::parallel_chunks(blocks, elementwise_grain / (4 * per_block), [&](std::size_t b0, std::size_t b1) {
    alignas(64) T buf[tile * per_block];
    for (std::size_t b = b0; b < b1; b += tile) {
      const std::size_t nb = std::min(tile, b1 - b);
      if constexpr (std::is_same_v<T, float>) {
        normal4_tile(first + b, stream, seed, buf);
      } else {
        for (std::size_t j = 0; j < nb; ++j) backend::normal2(first + b + j, stream, seed, buf + 2 * j);
      }
      // the part of this tile's global indices [g0, g1) inside [offset, offset + n)
      const std::size_t g0 = (first + b) * per_block, g1 = g0 + nb * per_block;
      const std::size_t lo = std::max(g0, offset), hi = std::min(g1, offset + n);
      f(lo - offset, hi - offset, static_cast<const T*>(buf) + (lo - g0));
    }
  });
}

/// for_each_normal_chunk_at with offset 0.
template <class T, class F>
void for_each_normal_chunk(const noise_source& noise, std::size_t n, F&& f) {
  for_each_normal_chunk_at<T>(noise, 0, n, std::forward<F>(f));
}

}  // namespace softdiff::sampler::detail
