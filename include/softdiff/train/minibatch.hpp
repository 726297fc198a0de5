#pragma once
// What a training step draws at random, each a pure function of (seed, step), so that
// "the random state" of a run is just its seed and its step counter and a resumed run
// draws exactly what an uninterrupted one would:
//
//   which images:  a Philox permutation per epoch (epoch_order); the i-th image of step k is
//                  the (p mod M)-th entry of the permutation of epoch floor(p / M), p = k B + i;
//                  stream stream_for(stream_purpose::data, epoch).
//   which times:   stratified uniform draws over the batch (stratified_times),
//                  t_i = t_min + (1 - t_min) (i + u_i) / B,  u_i ~ U(0, 1),
//                  stream stream_for(stream_purpose::training_t, k).
//   which noise:   eta of x_t = C_t x_0 + sigma_t eta from stream_for(stream_purpose::training, k)
//                  (SoftDiffusion::loss draws it).
//
// t_min > 0 because sigma_0 = 0: at t = 0 the corrupted image is the clean one (nothing to
// learn) and the weighting w(t) = 1 / sigma_t^2 of eq. 12 is infinite.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "softdiff/error.hpp"
#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::train {

/// The Philox permutation of [0, m) for `epoch`: Fisher-Yates from the end, swap position k
/// with floor(u_k (k + 1)), u_k the k-th uniform of stream_for(stream_purpose::data, epoch).
inline void epoch_order(std::uint64_t seed, std::uint64_t epoch, std::vector<std::size_t>& order, std::size_t m) {
  order.resize(m);
  std::iota(order.begin(), order.end(), std::size_t{0});
  const noise_source u{seed, stream_for(stream_purpose::data, epoch)};
  for (std::size_t k = m; k-- > 1;) {
    const auto r = std::min(static_cast<std::size_t>(u.uniform(k) * static_cast<double>(k + 1)), k);
    std::swap(order[k], order[r]);
  }
}

/// Stratified times for step `step`: out[i] = t_min + (1 - t_min) (i + u_i) / B with B = out.size(),
/// so each of the B equal strata of [t_min, 1) holds exactly one time (lower variance of the
/// batch's estimate of E_t in eq. 12 than B independent draws).
inline void stratified_times(std::uint64_t seed, std::uint64_t step, double t_min, std::span<double> out) {
  softdiff::detail::require(t_min >= 0.0 && t_min < 1.0, "train::stratified_times: t_min = ", t_min,
                            " must lie in [0, 1)");
  const noise_source u{seed, stream_for(stream_purpose::training_t, step)};
  const double b = static_cast<double>(out.size());
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = std::min(1.0, t_min + (1.0 - t_min) * (static_cast<double>(i) + u.uniform(i)) / b);
}

/// Gathers the minibatches of a dataset held in memory, epoch by epoch (see the top of this file).
/// Keeps the permutation of the epoch it last used, so a step costs one copy of B images.
template <class T = float>
class minibatch_source {
public:
  minibatch_source() = default;
  explicit minibatch_source(std::uint64_t seed) : seed_(seed) {}

  /// The dataset indices of step `step` with batch size out.size(), for a dataset of m images.
  void indices(std::uint64_t step, std::size_t m, std::span<std::size_t> out) {
    softdiff::detail::require(m > 0, "train::minibatch_source: empty dataset");
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::uint64_t p = step * out.size() + i;
      const std::uint64_t epoch = p / m;
      if (!cached_ || epoch != epoch_ || order_.size() != m) {
        epoch_order(seed_, epoch, order_, m);
        epoch_ = epoch;
        cached_ = true;
      }
      out[i] = order_[static_cast<std::size_t>(p % m)];
    }
  }

  /// x0 = the images of step `step` (x0 keeps its batch size, at least 1; resized to the data's C, H, W).
  void gather(const batch<T>& data, std::uint64_t step, std::size_t batch_size, batch<T>& x0) {
    const shape4 s = shape_of(data);
    softdiff::detail::require(batch_size > 0, "train::minibatch_source: batch size must be > 0");
    ensure_shape(x0, shape4{batch_size, s[1], s[2], s[3]});
    index_.resize(batch_size);
    indices(step, s[0], index_);
    const std::size_t d = s[1] * s[2] * s[3];
    for (std::size_t i = 0; i < batch_size; ++i)
      std::copy_n(data.data() + index_[i] * d, d, x0.data() + i * d);
  }

  [[nodiscard]] std::span<const std::size_t> last_indices() const { return index_; }

private:
  std::uint64_t seed_ = 0;
  std::uint64_t epoch_ = 0;
  bool cached_ = false;
  std::vector<std::size_t> order_, index_;
};

}  // namespace softdiff::train
