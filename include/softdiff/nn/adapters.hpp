#pragma once
// A user's own network as a softdiff Denoiser. SoftDiffusion asks a Denoiser for
// phi(x_t, t), the residual whose sum with x_t estimates x_0 (eq. 8, 10: h = phi + x_t,
// score = (C_t h - x_t) / sigma_t^2). `callable_denoiser` wraps any callable in one of two
// calling conventions:
//   batch form     f(const batch<T>& x, std::span<const double> t, batch<T>& out)
//   pointer form   f(const T* x, const shape4& shape, const double* t, T* out)
// where x is NCHW [N, C, H, W], t holds one time per sample, and `out` arrives with x's shape
// (contiguous NCHW in the pointer form: the form for a model that lives in another framework,
// an inference runtime or another process). The callable predicts either the residual phi
// itself or the clean image x_0 (`prediction::clean`, the parametrisation most image models are
// trained with); the adapter turns the latter into phi = x0_hat - x_t. Every output is checked:
// a changed shape or a non-finite value throws softdiff::error naming the adapter, the sample and
// its time, instead of flowing silently into a sampler.
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::nn {

/// What a wrapped model returns for x_t.
enum class prediction {
  residual,  // phi = x_0 - x_t, SoftDiffusion's own parametrisation (eq. 8)
  clean,     // an estimate of x_0 itself
};

template <class F, class T>
concept BatchDenoiserCallable =
    std::is_invocable_v<F&, const batch<T>&, std::span<const double>, batch<T>&>;

template <class F, class T>
concept PointerDenoiserCallable = std::is_invocable_v<F&, const T*, const shape4&, const double*, T*>;

/// A Denoiser made of a callable in the batch or pointer form above.
template <class T, class F>
  requires BatchDenoiserCallable<F, T> || PointerDenoiserCallable<F, T>
class callable_denoiser {
public:
  using scalar_type = T;

  explicit callable_denoiser(F f, prediction p = prediction::residual, std::string name = "callable_denoiser")
      : f_(std::move(f)), prediction_(p), name_(std::move(name)) {}

  [[nodiscard]] prediction predicts() const { return prediction_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] F& callable() { return f_; }

  /// phi(x, t) for every sample: one time per sample.
  void predict(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    const shape4 s = shape_of(x);
    softdiff::detail::require(t.size() == s[0], name_, ": ", t.size(), " times for a batch of ", s[0], " samples");
    softdiff::detail::require(&x != &phi, name_, ": the output must not alias the input");
    ensure_shape(phi, s);
    if constexpr (BatchDenoiserCallable<F, T>) {
      f_(x, t, phi);
      softdiff::detail::require(shape_of(phi) == s, name_, ": the callable returned shape ", to_string(shape_of(phi)),
                      " for input ", to_string(s));
    } else {
      f_(x.data(), s, t.data(), phi.data());
    }
    const std::size_t per_sample = s[1] * s[2] * s[3];
    const T* xp = x.data();
    T* out = phi.data();
    for (std::size_t i = 0; i < phi.size(); ++i) {
      if (!std::isfinite(out[i]))
        throw error(softdiff::detail::concat(name_, ": the callable returned ", out[i], " for sample ", i / per_sample,
                                             " at t = ", t[i / per_sample], " (flat index ", i, ")"));
      if (prediction_ == prediction::clean) out[i] -= xp[i];  // phi = x0_hat - x_t
    }
  }

private:
  F f_;
  prediction prediction_;
  std::string name_;
};

/// callable_denoiser<T, F>(f, p, name) with F deduced.
template <class T, class F>
  requires BatchDenoiserCallable<std::decay_t<F>, T> || PointerDenoiserCallable<std::decay_t<F>, T>
[[nodiscard]] callable_denoiser<T, std::decay_t<F>> make_denoiser(F&& f, prediction p = prediction::residual,
                                                                  std::string name = "callable_denoiser") {
  return callable_denoiser<T, std::decay_t<F>>(std::forward<F>(f), p, std::move(name));
}

namespace detail {

struct batch_callable_archetype {
  void operator()(const batch<float>&, std::span<const double>, batch<float>&) const;
};
struct pointer_callable_archetype {
  void operator()(const double*, const shape4&, const double*, double*) const;
};

}  // namespace detail

static_assert(Denoiser<callable_denoiser<float, detail::batch_callable_archetype>>);
static_assert(Denoiser<callable_denoiser<double, detail::pointer_callable_archetype>>);

}  // namespace softdiff::nn
