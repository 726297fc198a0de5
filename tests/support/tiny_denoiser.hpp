#pragma once
// A tiny NamedTrainableDenoiser for the trainer and checkpoint tests: per channel c,
//   phi[n, c, h, w] = a[c] x[n, c, h, w] + b[c] + g[c] t_n,
// with parameters registered as "affine.weight" [C], "affine.bias" [C], "time.weight" [C, 1].
// `poison_from_call` makes forward return NaN from that call on (to test divergence handling).
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::test {

template <class T = float>
class tiny_denoiser {
public:
  using scalar_type = T;

  explicit tiny_denoiser(std::size_t channels = 1, std::uint64_t seed = 7) : channels_(channels) {
    a_ = store_.add("affine.weight", {channels});
    b_ = store_.add("affine.bias", {channels});
    g_ = store_.add("time.weight", {channels, 1});
    store_.allocate();
    std::span<T> p = store_.parameters();
    noise_source{seed, stream_for(stream_purpose::user, 3)}.fill(p);
    for (T& v : p) v *= T(0.5);
  }

  void predict(const batch<T>& x, std::span<const double> t, batch<T>& phi) { run(x, t, phi); }
  void forward(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    x_ = x;
    t_.assign(t.begin(), t.end());
    run(x, t, phi);
  }
  void backward(const batch<T>& dphi) {
    const std::size_t N = x_.shape()[0], C = channels_, P = x_.shape()[2] * x_.shape()[3];
    std::span<T> da = store_.grads(a_), db = store_.grads(b_), dg = store_.grads(g_);
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t i = 0; i < P; ++i) {
          const std::size_t k = (n * C + c) * P + i;
          da[c] += dphi.data()[k] * x_.data()[k];
          db[c] += dphi.data()[k];
          dg[c] += dphi.data()[k] * static_cast<T>(t_[n]);
        }
  }
  void zero_grad() { store_.zero_grad(); }
  [[nodiscard]] std::size_t parameter_count() const { return store_.size(); }
  [[nodiscard]] std::span<T> parameters() { return store_.parameters(); }
  [[nodiscard]] std::span<T> gradients() { return store_.gradients(); }
  [[nodiscard]] const nn::parameter_store<T>& store() const { return store_; }
  [[nodiscard]] nn::parameter_store<T>& store() { return store_; }

  long poison_from_call = -1;  // forward returns NaN from this 0-based call on; -1: never

private:
  void run(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    ensure_shape(phi, shape_of(x));
    const std::size_t N = x.shape()[0], C = channels_, P = x.shape()[2] * x.shape()[3];
    std::span<T> a = store_.values(a_), b = store_.values(b_), g = store_.values(g_);
    const bool poison = poison_from_call >= 0 && calls_ >= poison_from_call;
    ++calls_;
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t i = 0; i < P; ++i) {
          const std::size_t k = (n * C + c) * P + i;
          phi.data()[k] = poison ? std::numeric_limits<T>::quiet_NaN()
                                 : a[c] * x.data()[k] + b[c] + g[c] * static_cast<T>(t[n]);
        }
  }

  std::size_t channels_;
  nn::parameter_store<T> store_;
  nn::parameter_slot a_, b_, g_;
  batch<T> x_;
  std::vector<double> t_;
  long calls_ = 0;
};

static_assert(TrainableDenoiser<tiny_denoiser<float>>);
static_assert(TrainableDenoiser<tiny_denoiser<double>>);

}  // namespace softdiff::test
