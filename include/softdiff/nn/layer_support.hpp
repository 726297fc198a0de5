#pragma once
// What every layer of softdiff::nn shares: the [N, features] matrix type, the
// Layer concept, per-thread workspaces, PyTorch's default initialisation and a
// vectorisable sigmoid.
//
// Layer protocol (llm.c style). A layer is a plain struct holding its
// hyper-parameters, spans into the network's flat parameter and gradient
// buffers (parameter_store), the output of its last forward and the input
// gradient of its last backward. forward(x) keeps a POINTER to x (not a copy):
// x must stay alive and unchanged until backward has run. backward(dy) ADDS the
// parameter gradients into the gradient spans (zero them with
// parameter_store::zero_grad before a step) and WRITES the input gradient.
// Buffers are resized only when a shape changes, so steady-state calls allocate
// nothing. A layer is not re-entrant: one forward/backward pair at a time.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <omp.h>
#include <xtensor/xtensor.hpp>

#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::nn {

/// A batch of feature vectors, shape [N, features], contiguous row-major.
template <class T>
using matrix = xt::xtensor<T, 2>;

/// A layer mapping one NCHW batch to another with a backward pass (see the protocol above).
template <class L>
concept Layer = requires(L& layer, const batch<typename L::scalar_type>& x) {
  typename L::scalar_type;
  { layer.forward(x) } -> std::same_as<const batch<typename L::scalar_type>&>;
  { layer.backward(x) } -> std::same_as<const batch<typename L::scalar_type>&>;
};

namespace detail {

// softdiff::nn::detail would hide softdiff::detail for `detail::require` written inside softdiff::nn.
using ::softdiff::detail::concat;
using ::softdiff::detail::require;

/// Resizes a rank-R xtensor to `s` unless it already has that shape (no allocation then).
template <class T, std::size_t R>
void ensure_shape(xt::xtensor<T, R>& y, const std::array<std::size_t, R>& s) {
  bool same = true;
  for (std::size_t i = 0; i < R; ++i) same = same && y.shape()[i] == s[i];
  if (!same) y.resize(s);
}

template <class T, std::size_t R>
[[nodiscard]] std::array<std::size_t, R> shape_array(const xt::xtensor<T, R>& x) {
  std::array<std::size_t, R> s{};
  for (std::size_t i = 0; i < R; ++i) s[i] = x.shape()[i];
  return s;
}

template <std::size_t R>
[[nodiscard]] std::string shape_string(const std::array<std::size_t, R>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < R; ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// Grows `v` to at least n elements; never shrinks, so steady state allocates nothing.
template <class T>
T* reserve(std::vector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

/// OpenMP threads a layer will use here; 1 inside an enclosing parallel region.
[[nodiscard]] inline int layer_threads() { return omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads()); }

/// Batch reductions (parameter gradients summed over samples) split a batch of N into
/// segment_count(N) contiguous segments, each summed in sample order, and add the segment sums
/// in segment order: a fixed summation tree, so gradients are bitwise the same for any thread
/// count (segments run in parallel; their number never depends on the threads).
inline constexpr std::size_t reduction_segments = 8;
/// out[i] = g[0][i] + g[1][i] + ... + g[R-1][i], added left to right: the one order in which
/// replicas' parameter gradients are combined, by RefUNet within a process and by data-parallel
/// training across processes (so both give the same bits). `out` may be g[0].
template <class T>
void sum_in_order(std::span<T* const> g, T* out, std::size_t count, int threads) {
  const std::size_t R = g.size();
  T* const* p = g.data();
  const auto n = static_cast<std::ptrdiff_t>(count);
#pragma omp parallel for simd schedule(static) num_threads(threads) if (n > 32768)
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    T sum = p[0][i];
    for (std::size_t r = 1; r < R; ++r) sum += p[r][i];
    out[i] = sum;
  }
}

/// Samples per segment at least (where N allows): fewer, larger segments cost fewer partial sums.
inline constexpr std::size_t min_segment_samples = 4;

/// Segments of a batch of n for the reduction above: n / 4, between 1 and 8.
[[nodiscard]] inline std::size_t segment_count(std::size_t n) {
  return std::clamp<std::size_t>(n / min_segment_samples, 1, reduction_segments);
}
/// First sample of segment s of `segments` over a batch of n (segment s is [begin(s), begin(s + 1))).
[[nodiscard]] inline std::size_t segment_begin(std::size_t n, std::size_t segments, std::size_t s) {
  return n * s / segments;
}

/// Loops over fewer elements (or multiply-adds) than this stay on one thread: waking a team
/// costs more than the work, and much more when the cores are oversubscribed.
inline constexpr std::size_t parallel_threshold = 32768;

/// PyTorch's default for Conv2d and Linear (kaiming_uniform_ with a = sqrt(5), and the bias rule):
/// weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Deviate i is uniform(first_index + i) of
/// `noise`, so one noise_source initialises a whole network when first_index is the store offset.
template <class T>
void fill_uniform_fan_in(std::span<T> out, std::size_t fan_in, const noise_source& noise, std::size_t first_index) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<T>(bound * (2.0 * noise.uniform(first_index + i) - 1.0));
}

/// exp for float, vectorisable under `omp simd` (Cephes expf: x = n ln2 + r, degree-6 polynomial
/// for e^r, relative error about 2 ulp); the input is clamped to [-87, 88] so 2^n stays normal.
inline float exp_f32(float x) {
  x = std::min(88.0f, std::max(-87.0f, x));
  const float fn = x * 1.44269504088896341f;
  const int n = static_cast<int>(fn + (fn >= 0.0f ? 0.5f : -0.5f));
  const float nf = static_cast<float>(n);
  const float r = (x - nf * 0.693359375f) + nf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>(static_cast<std::int32_t>((n + 127) << 23));
}

/// e^x; float uses exp_f32 so that loops over it vectorise.
template <class T>
inline T exp_of(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_f32(x);
  else
    return std::exp(x);
}

/// sigmoid(x) = 1 / (1 + e^-x); float uses exp_f32 so that loops over it vectorise.
template <class T>
inline T sigmoid(T x) {
  if constexpr (std::is_same_v<T, float>)
    return 1.0f / (1.0f + exp_f32(-x));
  else
    return T(1) / (T(1) + std::exp(-x));
}

}  // namespace detail
}  // namespace softdiff::nn
