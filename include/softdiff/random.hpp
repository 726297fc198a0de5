#pragma once
// The one seeded counter-based generator of softdiff. A noise_source is a
// (seed, stream) pair; the deviate at flat index i is a pure function of
// (seed, stream, i), so results do not depend on the thread count.
// Streams are derived from a purpose and an index (stream_for), so that, e.g.,
// the noise of sampling step k never coincides with the noise of step k + 1.
#include <cstdint>
#include <span>
#include <utility>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff {

/// Purposes of random streams; a stream id is (purpose << 48) | index.
enum class stream_purpose : std::uint64_t {
  initial = 1,    // the final distribution p_1 that sampling starts from
  sampler = 2,    // per-step sampler noise (index = step * 4 + sub-draw)
  training = 3,   // per-step training noise (index = step)
  training_t = 4, // per-step training times
  data = 5,       // data shuffling and minibatch choice
  user = 15,
};

[[nodiscard]] constexpr std::uint64_t stream_for(stream_purpose p, std::uint64_t index) {
  return (static_cast<std::uint64_t>(p) << 48) ^ (index & ((std::uint64_t{1} << 48) - 1));
}

struct noise_source {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  std::uint64_t offset = 0;  // flat index of element 0 of what this source fills

  /// A distinct sub-stream, e.g. for the second draw within one sampler step (same offset).
  [[nodiscard]] noise_source sub(std::uint64_t k) const { return {seed, stream + (k << 40), offset}; }
  /// The same stream with element 0 at flat index offset + n.
  [[nodiscard]] noise_source shifted(std::uint64_t n) const { return {seed, stream, offset + n}; }

  /// out[i] = the standard normal at flat index offset + i.
  template <class T>
  void fill(std::span<T> out) const {
    backend::cpu::fill_normal<T>(seed, stream, out.data(), out.size(), offset);
  }
  template <class T>
  void fill(batch<T>& out) const {
    fill(std::span<T>(out.data(), out.size()));
  }
  /// f(lo, hi, eta) over consecutive ranges covering [0, n) on the host, eta[j] the normal at
  /// flat index offset + lo + j (backend::cpu::for_each_normal_tile): a pass that uses the
  /// noise where it is generated, without storing it.
  template <class T, class F>
  void for_each_normal(std::size_t n, F&& f) const {
    backend::cpu::for_each_normal_tile<T>(seed, stream, offset, n, std::forward<F>(f));
  }
  /// Uniform double in (0, 1) at flat index offset + `index` of this stream.
  [[nodiscard]] double uniform(std::uint64_t index) const {
    return backend::uniform_at(offset + index, stream, seed);
  }
};

}  // namespace softdiff
