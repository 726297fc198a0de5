#pragma once
// The reverse steps of include/softdiff/sampler/ on any Backend, on raw backend pointers:
// the same formulas (backend/elementwise.hpp), the same final-step convention (sigma_{t'} = 0
// returns h = phi(x_t, t) + x_t) and the same noise (Philox block b of `noise` feeds elements
// [P b, P b + P)), so a step on backend::cuda reproduces the CPU sampler to float rounding.
// A model on a backend (BackendSamplingModel) supplies denoise, C_t and sigma_t on backend
// pointers; backend_model puts a backend operator, a schedule and a denoiser together.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "softdiff/backend/elementwise.hpp"
#include "softdiff/backend/portable/buffer.hpp"
#include "softdiff/backend/portable/operators.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/update_rules.hpp"

namespace softdiff::backend::portable {

/// What a backend sampler needs of a model, on backend pointers of an NCHW batch of shape s.
template <class M>
concept BackendSamplingModel = requires(M& m, const typename M::scalar_type* x, typename M::scalar_type* out,
                                        const shape4& s, double t) {
  typename M::scalar_type;
  typename M::backend_type;
  m.denoise(x, s, t, out);         // out = phi(x, t) + x
  m.apply_operator(t, x, s, out);  // out = C_t x
  { m.sigma(t) } -> std::convertible_to<double>;
};

/// One reverse step x_t -> x_{t'} in place on backend memory.
template <class S, class M>
concept BackendSampler = BackendSamplingModel<M> && requires(S& smp, M& m, typename M::scalar_type* x,
                                                             const shape4& s, double t, const noise_source& noise) {
  { S::name } -> std::convertible_to<std::string_view>;
  { smp.evaluations_per_step() } -> std::convertible_to<int>;
  smp.step(m, x, s, t, t, noise);
};

namespace detail {

using sampler::rules::check_step;

/// The least a BackendSamplingModel offers, for the static_asserts below.
template <class B, class T>
struct model_archetype {
  using scalar_type = T;
  using backend_type = B;
  void denoise(const T* x, const shape4& s, double t, T* out);
  void apply_operator(double t, const T* x, const shape4& s, T* out);
  double sigma(double t) const;
};

/// The least a Schedule offers, for the backend_model static_assert below.
struct schedule_archetype {
  double level(double t) const;
  double sigma(double t) const;
  std::string name() const;
};

namespace rules = sampler::rules;

/// out[i] = rule(in[0][i], ..., eta_i) on backend B, eta the normals of `noise` at flat index i.
template <Backend B, class T, class Rule, std::size_t K>
void noisy_map(T* out, const T* const (&in)[K], Rule rule, std::size_t n, const noise_source& noise) {
  // The backend steps draw eta at the batch's own flat indices; a shifted source (a part of a
  // larger batch, random.hpp) is a feature of the CPU samplers only, refused rather than ignored.
  ::softdiff::detail::require(noise.offset == 0, "backend sampler step: a noise source shifted by ", noise.offset,
                              " elements is not supported here; sample the whole batch");
  kernels::noisy_map_fn<T, Rule, K> f{out, {}, rule, n, noise.seed, noise.stream};
  for (std::size_t a = 0; a < K; ++a) f.in[a] = in[a];
  B::parallel_for(kernels::blocks_for<T>(n), f);
}

/// out[i] = rule(in[0][i], ...) on backend B.
template <Backend B, class T, class Rule, std::size_t K>
void map(T* out, const T* const (&in)[K], Rule rule, std::size_t n) {
  kernels::map_fn<T, Rule, K> f{out, {}, rule};
  for (std::size_t a = 0; a < K; ++a) f.in[a] = in[a];
  B::parallel_for(n, f);
}

/// The start of every step but the naive one: h = phi(x_t, t) + x_t, then y = C_t h and
/// c = C_{t'} h. On a final step (s' = 0) x becomes h instead and the result is false
/// (sampler/step_support.hpp's convention).
template <Backend B, class M, class T = typename M::scalar_type>
bool estimate(M& model, T* x, const shape4& s, double t, double t_next, double s_next, buffer<B, T>& h,
              buffer<B, T>& y, buffer<B, T>& c) {
  const std::size_t n = element_count(s);
  h.resize(n);
  model.denoise(x, s, t, h.data());
  if (s_next == 0.0) {
    copy_apply<B>(h.data(), x, n);
    return false;
  }
  y.resize(n);
  c.resize(n);
  model.apply_operator(t, h.data(), s, y.data());
  model.apply_operator(t_next, h.data(), s, c.data());
  return true;
}

/// Eq. 52 (rules::ddim): out = c + sqrt(s'^2 - k^2) (x - y) / s + k eta, k = k_ratio s'.
template <Backend B, class T>
void ddim_update(const T* x, T* out, const T* y, const T* c, std::size_t n, double s, double s_next, double k_ratio,
                 const noise_source& noise) {
  const rules::ddim<T> rule = rules::ddim<T>::at(s, s_next, k_ratio);
  if (rule.noisy)
    noisy_map<B>(out, {x, y, c}, rule, n, noise);
  else
    map<B>(out, {x, y, c}, rule, n);
}

}  // namespace detail

/// Algorithm 1: x_{t'} = C_{t'} h + sigma_{t'} eta.
template <Backend B, class T = float>
class naive {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "naive";
  [[nodiscard]] int evaluations_per_step() const { return 1; }

  template <BackendSamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<typename M::backend_type, B>
  void step(M& model, T* x, const shape4& s, double t, double t_next, const noise_source& noise) {
    const double s_next = model.sigma(t_next);
    detail::check_step("portable::naive::step", s, t, t_next, model.sigma(t), s_next);
    const std::size_t n = element_count(s);
    h_.resize(n);
    model.denoise(x, s, t, h_.data());  // h = phi(x_t, t) + x_t
    if (s_next == 0.0) {                // final step: the x_0 estimate
      copy_apply<B>(h_.data(), x, n);
      return;
    }
    c_.resize(n);
    model.apply_operator(t_next, h_.data(), s, c_.data());  // C_{t'} h
    update(x, c_.data(), n, s_next, noise);
  }

  /// The element-wise part alone: x = c + s' eta, c = C_{t'} h.
  static void update(T* x, const T* c, std::size_t n, double s_next, const noise_source& noise) {
    detail::noisy_map<B>(x, {c}, sampler::rules::naive<T>::at(s_next), n, noise);
  }

private:
  buffer<B, T> h_, c_;
};

/// Algorithm 2 / eq. 17: e = y_t - x_t; z = x_t - ((s'^2 - s^2)/s^2) e + sqrt(s^2 - s'^2) eta;
/// x_{t'} = z + (C_{t'} x0 - y_t), y_t = C_t x0, x0 = phi(x_t, t) + x_t.
template <Backend B, class T = float>
class momentum {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "momentum";
  [[nodiscard]] int evaluations_per_step() const { return 1; }

  template <BackendSamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<typename M::backend_type, B>
  void step(M& model, T* x, const shape4& s, double t, double t_next, const noise_source& noise) {
    const double sg = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("portable::momentum::step", s, t, t_next, sg, s_next);
    if (detail::estimate(model, x, s, t, t_next, s_next, x0_, y_, c_))
      update(x, y_.data(), c_.data(), element_count(s), sg, s_next, noise);
  }

  /// The fused element-wise part of eq. 17 alone (x updated in place), given y_t and C_{t'} x0.
  static void update(T* x, const T* y, const T* c, std::size_t n, double sg, double s_next, const noise_source& noise) {
    detail::noisy_map<B>(x, {x, y, c}, sampler::rules::momentum<T>::at(sg, s_next), n, noise);
  }

private:
  buffer<B, T> x0_, y_, c_;
};

/// Eq. 51: x_{t'} = x_t - (1/2) ((s'^2 - s^2)/s^2) (y_t - x_t) + (C_{t'} x0 - y_t); no noise.
template <Backend B, class T = float>
class pf_momentum {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "pf_momentum";
  [[nodiscard]] int evaluations_per_step() const { return 1; }

  template <BackendSamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<typename M::backend_type, B>
  void step(M& model, T* x, const shape4& s, double t, double t_next, const noise_source& /*noise*/) {
    const double sg = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("portable::pf_momentum::step", s, t, t_next, sg, s_next);
    if (detail::estimate(model, x, s, t, t_next, s_next, x0_, y_, c_))
      update(x, y_.data(), c_.data(), element_count(s), sg, s_next);
  }

  /// The element-wise part of eq. 51 alone (x updated in place), given y_t and C_{t'} x0.
  static void update(T* x, const T* y, const T* c, std::size_t n, double sg, double s_next) {
    detail::map<B>(x, {x, y, c}, sampler::rules::pf_momentum<T>::at(sg, s_next), n);
  }

private:
  buffer<B, T> x0_, y_, c_;
};

namespace detail {

/// The noise ratio k = k_ratio sigma_{t'} of eq. 52, held by ddim and predictor_corrector.
class k_ratio_holder {
public:
  explicit k_ratio_holder(double k_ratio, const char* where) : k_ratio_(k_ratio) {
    sampler::rules::check_k_ratio(where, k_ratio);
  }
  [[nodiscard]] double k_ratio() const { return k_ratio_; }

protected:
  double k_ratio_;
};

}  // namespace detail

/// Eq. 52: x_{t'} = C_{t'} h + sqrt(s'^2 - k^2) (x_t - C_t h) / s + k eta, k = k_ratio s'.
template <Backend B, class T = float>
class ddim : public detail::k_ratio_holder {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "ddim";
  explicit ddim(double k_ratio = 0.0) : detail::k_ratio_holder(k_ratio, "portable::ddim") {}
  [[nodiscard]] int evaluations_per_step() const { return 1; }

  template <BackendSamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<typename M::backend_type, B>
  void step(M& model, T* x, const shape4& s, double t, double t_next, const noise_source& noise) {
    const double sg = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("portable::ddim::step", s, t, t_next, sg, s_next);
    if (detail::estimate(model, x, s, t, t_next, s_next, h_, y_, c_))  // h, C_t h, C_{t'} h
      detail::ddim_update<B, T>(x, x, y_.data(), c_.data(), element_count(s), sg, s_next, this->k_ratio_, noise);
  }

private:
  buffer<B, T> h_, y_, c_;
};

/// DDIM predictor (eq. 52), then the probability-flow momentum corrector (eq. 51) with the
/// trapezoidal estimate hb = (h + h~) / 2 (sampler/predictor_corrector.hpp).
template <Backend B, class T = float>
class predictor_corrector : public detail::k_ratio_holder {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "predictor_corrector";
  explicit predictor_corrector(double k_ratio = 0.0)
      : detail::k_ratio_holder(k_ratio, "portable::predictor_corrector") {}
  [[nodiscard]] int evaluations_per_step() const { return 2; }

  template <BackendSamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<typename M::backend_type, B>
  void step(M& model, T* x, const shape4& s, double t, double t_next, const noise_source& noise) {
    const double sg = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("portable::predictor_corrector::step", s, t, t_next, sg, s_next);
    if (!detail::estimate(model, x, s, t, t_next, s_next, h_, y_, c_)) return;  // 1. h, C_t h, C_{t'} h
    const std::size_t n = element_count(s);
    pred_.resize(n);
    // 2. predictor, eq. 52
    detail::ddim_update<B, T>(x, pred_.data(), y_.data(), c_.data(), n, sg, s_next, this->k_ratio_, noise);
    model.denoise(pred_.data(), s, t_next, h_.data());  // 3. h~ = phi(x~, t') + x~
    y2_.resize(n);
    c2_.resize(n);
    model.apply_operator(t, h_.data(), s, y2_.data());
    model.apply_operator(t_next, h_.data(), s, c2_.data());
    // 4. corrector, eq. 51 with hb = (h + h~) / 2
    correct(x, y_.data(), c_.data(), y2_.data(), c2_.data(), n, sg, s_next);
  }

  /// The corrector alone (x updated in place): y1, c1 = C_t h, C_{t'} h; y2, c2 = C_t h~, C_{t'} h~.
  static void correct(T* x, const T* y1, const T* c1, const T* y2, const T* c2, std::size_t n, double sg,
                      double s_next) {
    detail::map<B>(x, {x, y1, c1, y2, c2}, sampler::rules::corrector<T>::at(sg, s_next), n);
  }

private:
  buffer<B, T> h_, y_, c_, pred_, y2_, c2_;
};

/// A model on backend B: the backend form of operator Op, schedule Sched (level(t), sigma(t))
/// and a denoiser callable den(x, s, t, h) writing h = phi(x, t) + x in backend memory.
template <Backend B, CorruptionOperator Op, Schedule Sched, class Denoise>
class backend_model {
public:
  using scalar_type = typename Op::scalar_type;
  using backend_type = B;

  backend_model(Op op, Sched schedule, Denoise denoise)
      : op_(std::move(op)), schedule_(std::move(schedule)), denoise_(std::move(denoise)) {}

  void denoise(const scalar_type* x, const shape4& s, double t, scalar_type* h) {
    check_time(t, "backend_model::denoise");
    denoise_(x, s, t, h);
  }
  void apply_operator(double t, const scalar_type* x, const shape4& s, scalar_type* y) {
    check_time(t, "backend_model::apply_operator");
    op_.apply(static_cast<double>(schedule_.level(t)), x, y, s);
  }
  [[nodiscard]] double sigma(double t) const {
    check_time(t, "backend_model::sigma");
    return static_cast<double>(schedule_.sigma(t));
  }
  [[nodiscard]] backend_operator<B, Op>& op() { return op_; }
  [[nodiscard]] const Sched& schedule() const { return schedule_; }

private:
  static void check_time(double t, const char* where) {
    softdiff::detail::require(std::isfinite(t) && t >= 0.0 && t <= 1.0, where, ": time t = ", t,
                              " must lie in [0, 1]");
  }
  backend_operator<B, Op> op_;
  Sched schedule_;
  Denoise denoise_;
};

/// The denoiser with phi = 0 (h = x_t): the sampler benchmarks' network stand-in.
template <Backend B>
struct zero_residual {
  template <class T>
  void operator()(const T* x, const shape4& s, double /*t*/, T* h) const {
    copy_apply<B>(x, h, element_count(s));
  }
};

static_assert(BackendSamplingModel<backend_model<cpu, op::identity<float>, detail::schedule_archetype, zero_residual<cpu>>>);
static_assert(BackendSampler<naive<cpu, float>, detail::model_archetype<cpu, float>>);
static_assert(BackendSampler<momentum<cpu, float>, detail::model_archetype<cpu, float>>);
static_assert(BackendSampler<pf_momentum<cpu, double>, detail::model_archetype<cpu, double>>);
static_assert(BackendSampler<ddim<cpu, float>, detail::model_archetype<cpu, float>>);
static_assert(BackendSampler<predictor_corrector<cpu, double>, detail::model_archetype<cpu, double>>);

}  // namespace softdiff::backend::portable
