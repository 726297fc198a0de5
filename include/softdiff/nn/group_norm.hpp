#pragma once
// GroupNorm(groups, channels, eps) with affine weight gamma and bias beta, PyTorch semantics:
// for sample n and group g (channels g*C/G .. (g+1)*C/G - 1, all H*W positions, M elements),
//   mu = mean(x),  var = mean((x - mu)^2)  (biased),  rstd = 1 / sqrt(var + eps)
//   xhat = (x - mu) rstd,  y[c] = gamma[c] xhat + beta[c]
// Backward (the gradient rule, once), sums over the group's M elements:
//   dbeta[c] += sum_{n,hw} dy,   dgamma[c] += sum_{n,hw} dy xhat
//   dx = rstd (gamma[c] dy - A / M - xhat B / M),  A = sum gamma dy,  B = sum gamma dy xhat
// Statistics accumulate in double, also for float data. (n, g) pairs run in parallel; the
// per-(n, c) sums for dgamma and dbeta are reduced over n afterwards. The SiLU that follows every
// GroupNorm in RefUNet is fused (channel_affine.hpp): forward_silu writes SiLU(y) without keeping
// y, silu_map hands the map to the convolution that reads it (which then never needs SiLU(y)
// stored either), and backward_silu recomputes y = a x + b from x and the saved a, b.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "softdiff/nn/channel_affine.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/parameter_store.hpp"

namespace softdiff::nn {

template <class T = float>
struct group_norm {
  using scalar_type = T;

  std::size_t groups = 1, channels = 0;
  double eps = 1e-5;
  std::span<T> weight, bias;    // gamma, beta [channels]
  std::span<T> dweight, dbias;  // their gradients (backward adds)
  parameter_slot weight_slot, bias_slot;
  batch<T> y;    // output of the last forward (not written by forward_silu or silu_map)
  batch<T> dx;   // input gradient of the last backward
  batch<T> act;  // SiLU(y) of the last forward_silu

  group_norm() = default;
  group_norm(std::size_t groups_, std::size_t channels_, double eps_ = 1e-5)
      : groups(groups_), channels(channels_), eps(eps_) {
    SOFTDIFF_REQUIRE(groups > 0 && channels > 0 && channels % groups == 0, "group_norm: ", channels,
                    " channels cannot be split into ", groups, " groups");
    SOFTDIFF_REQUIRE(eps > 0 && std::isfinite(eps), "group_norm: eps must be positive, got ", eps);
  }

  /// Registers `prefix.weight` [channels] and `prefix.bias` [channels].
  void declare(parameter_store<T>& store, std::string_view prefix) {
    weight_slot = store.add(std::string(prefix) + ".weight", {channels});
    bias_slot = store.add(std::string(prefix) + ".bias", {channels});
  }
  void bind(parameter_store<T>& store) {
    weight = store.values(weight_slot), dweight = store.grads(weight_slot);
    bias = store.values(bias_slot), dbias = store.grads(bias_slot);
  }
  /// PyTorch's initialisation: gamma = 1, beta = 0 (deterministic; the noise is not used).
  void init(const noise_source& = {}) {
    std::fill(weight.begin(), weight.end(), T(1));
    std::fill(bias.begin(), bias.end(), T(0));
  }

  const batch<T>& forward(const batch<T>& x) {
    const channel_affine<T> m = silu_map(x).prepared_all(shape_[0]);
    ensure_shape(y, shape_);
    apply(x, m, y, [](const T* xc, std::size_t n, T a, T b, T* out) {
#pragma omp simd
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::affine(xc[i], a, b);
    });
    return y;
  }

  /// SiLU(GroupNorm(x)) (silu.hpp: x sigmoid(x)): the same values as silu.forward(forward(x)),
  /// written to act in one pass without keeping GroupNorm(x). Pairs with backward_silu.
  const batch<T>& forward_silu(const batch<T>& x) {
    const channel_affine<T> m = silu_map(x).prepared_all(shape_[0]);
    ensure_shape(act, shape_);
    apply(x, m, act, [](const T* xc, std::size_t n, T a, T b, T* out) { detail::affine_silu_row(xc, n, a, b, out); });
    return act;
  }

  /// The map SiLU(GroupNorm(x)) = SiLU(a x + b) per (n, c), for a layer that applies it as it
  /// reads x (conv2d::forward(x, map)); writes no activations. The statistics of sample n are
  /// computed when the consumer prepares sample n (channel_affine::prepare), while x[n] is in its
  /// cache. x must stay alive and unchanged until backward_silu (the layer protocol); the map's
  /// arrays live in this layer until its next forward. Pairs with backward_silu.
  channel_affine<T> silu_map(const batch<T>& x) {
    check_bound();
    const shape4 s = shape_of(x);
    SOFTDIFF_REQUIRE(s[1] == channels, "group_norm: input ", to_string(s), " has ", s[1], " channels, expected ",
                    channels);
    shape_ = s;
    x_ = &x;
    detail::reserve(mean_, s[0] * groups);
    detail::reserve(rstd_, s[0] * groups);
    T* scale = detail::reserve(scale_, s[0] * channels);
    T* shift = detail::reserve(shift_, s[0] * channels);
    return {scale, shift, channels, &group_norm::fill_sample, this};
  }

private:
  static void fill_sample(void* self, std::size_t n) { static_cast<group_norm*>(self)->sample_statistics(n); }

  /// mean, rstd of sample n's groups and the map's a, b for its channels.
  void sample_statistics(std::size_t n) {
    const std::size_t G = groups, cpg = channels / groups, HW = shape_[2] * shape_[3], M = cpg * HW;
    const T *gamma = weight.data(), *beta = bias.data();
    for (std::size_t g = 0; g < G; ++g) {
      const T* xg = x_->data() + (n * channels + g * cpg) * HW;
      // one pass over x: sum x and sum x^2 in double are exact enough that var = E[x^2] - mu^2
      // loses only a relative 1e-16 mu^2 / var (float data has 24 bits; double 53)
      double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (std::size_t i = 0; i < M; ++i) {
        const double v = static_cast<double>(xg[i]);
        s1 += v;
        s2 += v * v;
      }
      const double mu = s1 / static_cast<double>(M);
      const double var = std::max(0.0, s2 / static_cast<double>(M) - mu * mu);
      const double r = 1.0 / std::sqrt(var + eps);
      mean_[n * G + g] = mu, rstd_[n * G + g] = r;
      for (std::size_t c = 0; c < cpg; ++c) {
        const std::size_t ch = g * cpg + c;
        scale_[n * channels + ch] = static_cast<T>(r * static_cast<double>(gamma[ch]));
        shift_[n * channels + ch] =
            static_cast<T>(static_cast<double>(beta[ch]) - mu * r * static_cast<double>(gamma[ch]));
      }
    }
  }

private:
  /// row(x plane, HW, a, b, out plane) for every (n, c) plane.
  template <class Row>
  void apply(const batch<T>& x, const channel_affine<T>& m, batch<T>& out, Row row) const {
    const std::size_t planes = shape_[0] * shape_[1], HW = shape_[2] * shape_[3];
    const T* xp = x.data();
    T* op = out.data();
    const auto count = static_cast<std::ptrdiff_t>(planes);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (count > 1 && x.size() > detail::parallel_threshold)
    for (std::ptrdiff_t p = 0; p < count; ++p) {
      const auto q = static_cast<std::size_t>(p);
      row(xp + q * HW, HW, m.scale[q], m.shift[q], op + q * HW);
    }
  }

public:

  /// Adds into dweight, dbias; returns dL/dx unless need_dx is false.
  const batch<T>& backward(const batch<T>& dy, bool need_dx = true) { return backward_impl<false>(dy, need_dx); }

  /// Backward of SiLU(GroupNorm(x)) (forward_silu) given ds = dL/d SiLU output: the same as
  /// backward(silu.backward(ds)) for a silu run on this layer's y, with the SiLU rule
  /// dy = ds sigma(y) (1 + y (1 - sigma(y))) applied group by group while the group is in cache.
  const batch<T>& backward_silu(const batch<T>& ds) { return backward_impl<true>(ds, true); }

private:
  template <bool ThroughSilu>
  const batch<T>& backward_impl(const batch<T>& dy, bool need_dx) {
    check_bound();
    SOFTDIFF_REQUIRE(x_ != nullptr, "group_norm::backward: called before forward");
    SOFTDIFF_REQUIRE(shape_of(dy) == shape_, "group_norm::backward: dy ", to_string(shape_of(dy)),
                    " does not match the forward output ", to_string(shape_));
    const batch<T>& x = *x_;
    const shape4 s = shape_of(x);
    if (need_dx) ensure_shape(dx, s);
    const std::size_t N = s[0], G = groups, cpg = channels / groups, HW = s[2] * s[3], M = cpg * HW;
    double* sums = detail::reserve(sums_, 2 * N * channels);  // per (n, c): sum dy, sum dy xhat
    const T *xp = x.data(), *gamma = weight.data(), *scale = scale_.data(), *shift = shift_.data();
    const double *mean = mean_.data(), *rstd = rstd_.data();
    T* dxp = need_dx ? dx.data() : nullptr;
    // through SiLU, pass 1 writes dy (the SiLU backward of ds) into dx, and pass 2 reads it from there
    const T* gp = ThroughSilu ? dxp : dy.data();
    const T* sp = dy.data();
    const auto count = static_cast<std::ptrdiff_t>(N * G);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (count > 1 && x.size() > detail::parallel_threshold)
    for (std::ptrdiff_t ng = 0; ng < count; ++ng) {
      const std::size_t n = static_cast<std::size_t>(ng) / G, g = static_cast<std::size_t>(ng) % G;
      const std::size_t base = (n * channels + g * cpg) * HW;
      const double mu = mean[ng], r = rstd[ng];
      double A = 0, B = 0;
      for (std::size_t c = 0; c < cpg; ++c) {
        const T* xc = xp + base + c * HW;
        const T* gc = gp + base + c * HW;
        double sdy = 0, sdyx = 0;
        if constexpr (ThroughSilu) {
          // SiLU backward (silu.hpp): with s = sigmoid(y), dy = ds s (1 + y (1 - s)), kept in dx;
          // y = a x + b recomputed as the forward computed it (channel_affine.hpp). A loop of its
          // own in sixteen lanes: inside the double reductions below it ran at their width, four.
          const T a = scale[n * channels + g * cpg + c], b = shift[n * channels + g * cpg + c];
          const T* sc = sp + base + c * HW;
          T* dc = dxp + base + c * HW;
#pragma omp simd simdlen(16)
          for (std::size_t i = 0; i < HW; ++i) {
            const T yv = detail::affine(xc[i], a, b);
            const T sg = detail::sigmoid(yv);
            dc[i] = sc[i] * sg * (T(1) + yv * (T(1) - sg));
          }
        }
        // the same sums whether dy came through SiLU or not
#pragma omp simd reduction(+ : sdy, sdyx)
        for (std::size_t i = 0; i < HW; ++i) {
          sdy += static_cast<double>(gc[i]);
          sdyx += static_cast<double>(gc[i]) * (static_cast<double>(xc[i]) - mu);
        }
        const std::size_t ch = g * cpg + c;
        sums[2 * (n * channels + ch)] = sdy;
        sums[2 * (n * channels + ch) + 1] = sdyx * r;
        A += static_cast<double>(gamma[ch]) * sdy;
        B += static_cast<double>(gamma[ch]) * sdyx * r;
      }
      if (!dxp) continue;
      // dx = k1[c] dy + k2 x + k3 with k1 = rstd gamma, k2 = -rstd^2 B / M, k3 = rstd (mu rstd B - A) / M
      const double inv_m = 1.0 / static_cast<double>(M);
      const T k2 = static_cast<T>(-r * r * B * inv_m);
      const T k3 = static_cast<T>(r * (mu * r * B - A) * inv_m);
      for (std::size_t c = 0; c < cpg; ++c) {
        const T k1 = static_cast<T>(r * static_cast<double>(gamma[g * cpg + c]));
        const T* xc = xp + base + c * HW;
        const T* gc = gp + base + c * HW;
        T* dc = dxp + base + c * HW;
#pragma omp simd
        for (std::size_t i = 0; i < HW; ++i) dc[i] = k1 * gc[i] + k2 * xc[i] + k3;  // gc may be dc
      }
    }
    for (std::size_t c = 0; c < channels; ++c) {
      double sb = 0, sg = 0;
      for (std::size_t n = 0; n < N; ++n) sb += sums[2 * (n * channels + c)], sg += sums[2 * (n * channels + c) + 1];
      dbias[c] += static_cast<T>(sb);
      dweight[c] += static_cast<T>(sg);
    }
    return dx;
  }

public:
  /// Per-(n, group) mean and 1/sqrt(var + eps) of the last forward, [N * groups].
  [[nodiscard]] std::span<const double> saved_mean() const { return {mean_.data(), shape_[0] * groups}; }
  [[nodiscard]] std::span<const double> saved_rstd() const { return {rstd_.data(), shape_[0] * groups}; }

private:
  void check_bound() const {
    SOFTDIFF_REQUIRE(weight.size() == channels && bias.size() == channels && dweight.size() == channels &&
                        dbias.size() == channels,
                    "group_norm: parameters not bound (call declare, parameter_store::allocate, bind)");
  }

  const batch<T>* x_ = nullptr;
  shape4 shape_{};  // of the last forward's input and output
  std::vector<double> mean_, rstd_, sums_;
  std::vector<T> scale_, shift_;  // a, b of the last forward, [N * channels] (channel_affine.hpp)
};

static_assert(Layer<group_norm<float>>);
static_assert(Layer<group_norm<double>>);

}  // namespace softdiff::nn
