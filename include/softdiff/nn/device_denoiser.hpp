#pragma once
// A user's network on a backend other than the CPU (a model in another framework or an inference
// runtime on the GPU) as the denoiser of SoftDiffusion<Op, Sched, Net, B>: the pointer form of
// nn/adapters.hpp on backend memory,
//   f(const T* x, const shape4& shape, const double* t, T* out)
// with x and out in B's memory (NCHW, out arrives with x's shape) and t the host array of one
// time per sample. The callable predicts the residual phi or the clean image x_0
// (prediction::clean: the adapter turns it into phi = x0_hat - x_t on the backend).
// Unlike the CPU adapter it does not scan the output for NaN (a scan would stop an asynchronous
// backend); SoftDiffusion's loss reports a non-finite value through its sums.
#include <span>
#include <string>
#include <utility>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/buffer.hpp"
#include "softdiff/error.hpp"
#include "softdiff/nn/adapters.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::nn {

/// A network on backend B: predict(x, t, phi) on backend::batch_t<B, T>.
template <class N, class B>
concept BackendDenoiser = Backend<B> && requires(N& net, const backend::batch_t<B, typename N::scalar_type>& x,
                                                 std::span<const double> t,
                                                 backend::batch_t<B, typename N::scalar_type>& phi) {
  typename N::scalar_type;
  net.predict(x, t, phi);
};

namespace detail {
template <class T>
struct minus_second {  // x - y
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y) const { return x - y; }
};
}  // namespace detail

template <Backend B, class T, class F>
  requires PointerDenoiserCallable<F, T>
class device_denoiser {
public:
  using scalar_type = T;
  using batch_type = backend::batch_t<B, T>;

  explicit device_denoiser(F f, prediction p = prediction::residual, std::string name = "device_denoiser")
      : f_(std::move(f)), prediction_(p), name_(std::move(name)) {}

  [[nodiscard]] prediction predicts() const { return prediction_; }
  [[nodiscard]] F& callable() { return f_; }

  /// phi(x, t) for every sample: one time per sample, on the host.
  void predict(const batch_type& x, std::span<const double> t, batch_type& phi) {
    const shape4 s = shape_of(x);
    softdiff::detail::require(t.size() == s[0], name_, ": ", t.size(), " times for a batch of ", s[0], " samples");
    softdiff::detail::require(&x != &phi, name_, ": the output must not alias the input");
    ensure_shape(phi, s);
    f_(x.data(), s, t.data(), phi.data());
    if (prediction_ == prediction::clean) B::map(phi.data(), {phi.data(), x.data()}, detail::minus_second<T>{}, phi.size());
  }

private:
  F f_;
  prediction prediction_;
  std::string name_;
};

/// device_denoiser<B, T, F>(f, p, name) with F deduced.
template <Backend B, class T, class F>
  requires PointerDenoiserCallable<std::decay_t<F>, T>
[[nodiscard]] device_denoiser<B, T, std::decay_t<F>> make_device_denoiser(F&& f, prediction p = prediction::residual,
                                                                          std::string name = "device_denoiser") {
  return device_denoiser<B, T, std::decay_t<F>>(std::forward<F>(f), p, std::move(name));
}

static_assert(BackendDenoiser<device_denoiser<backend::cpu, double, detail::pointer_callable_archetype>, backend::cpu>);

}  // namespace softdiff::nn
