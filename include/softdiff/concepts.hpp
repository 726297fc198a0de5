#pragma once
// The policies of softdiff, each a C++20 concept. SoftDiffusion<Op, Sched, Net>
// and the samplers speak only through these, so a user's own operator,
// schedule, network or sampler is a first-class citizen.
//
//   CorruptionOperator  y = C(level) x and y = C(level)^T x on an NCHW batch
//   Schedule            t in [0, 1] -> (operator level, sigma_t)
//   Denoiser            phi(x_t, t), the residual to the clean image (eq. 8, 10)
//   TrainableDenoiser   + forward with saved activations, backward, flat parameters and gradients
//   SamplingModel       what a sampler needs of a model: denoise, C_t, sigma_t
//   Sampler             one reverse step from t to t' < t
//   Backend             an execution space: memory, copies, parallel_for, element rules, GEMM,
//                       FFT, counter-based normals (backend/backend.hpp)
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "softdiff/backend/backend.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff {

/// A family of linear corruptions C(level), level a real number in [min_level(), max_level()].
/// apply and apply_adjoint accept y aliasing x (in place) and resize y to x's shape if needed.
/// level = min_level() must give the identity (C_0 = I).
template <class Op>
concept CorruptionOperator =
    requires(const Op& op, double level, const batch<typename Op::scalar_type>& x,
             batch<typename Op::scalar_type>& y) {
      typename Op::scalar_type;
      { Op::self_adjoint } -> std::convertible_to<bool>;
      op.apply(level, x, y);          // y = C(level) x
      op.apply_adjoint(level, x, y);  // y = C(level)^T x
      { op.min_level() } -> std::convertible_to<double>;
      { op.max_level() } -> std::convertible_to<double>;
      { op.name() } -> std::convertible_to<std::string>;
    };

/// Throws softdiff::error unless `level` lies in the operator's range.
template <CorruptionOperator Op>
void check_level(const Op& op, double level, const char* where = "operator") {
  check_finite_scalar(level, where);
  detail::require(level >= op.min_level() && level <= op.max_level(), where, ": level ", level,
                  " is outside the range [", op.min_level(), ", ", op.max_level(), "] of operator ",
                  op.name());
}

/// A corruption schedule: at time t in [0, 1], the operator's level and the noise sigma_t.
/// sigma must be non-decreasing with sigma(t) > 0 for t > 0 (schedule/validate.hpp checks it).
template <class S>
concept Schedule = requires(const S& s, double t) {
  { s.level(t) } -> std::convertible_to<double>;
  { s.sigma(t) } -> std::convertible_to<double>;
  { s.name() } -> std::convertible_to<std::string>;
};

namespace detail {
/// The least a Schedule offers, for the static_asserts beside models that take one.
struct schedule_archetype {
  double level(double t) const;
  double sigma(double t) const;
  std::string name() const;
};
}  // namespace detail
static_assert(Schedule<detail::schedule_archetype>);

/// The network phi of eq. 8/10: phi(x_t, t) predicts the residual x_0 - x_t, so
/// h = phi + x_t estimates x_0. One t per sample.
template <class N>
concept Denoiser = requires(N& net, const batch<typename N::scalar_type>& x, std::span<const double> t,
                            batch<typename N::scalar_type>& phi) {
  typename N::scalar_type;
  net.predict(x, t, phi);
};

/// A Denoiser that can be trained: forward keeps what backward needs; backward adds
/// dL/dparameters into gradients(); parameters and gradients are each one flat span.
template <class N>
concept TrainableDenoiser =
    Denoiser<N> && requires(N& net, const batch<typename N::scalar_type>& x, std::span<const double> t,
                            batch<typename N::scalar_type>& phi, const batch<typename N::scalar_type>& dphi) {
      net.forward(x, t, phi);
      net.backward(dphi);
      net.zero_grad();
      { net.parameter_count() } -> std::convertible_to<std::size_t>;
      { net.parameters() } -> std::convertible_to<std::span<typename N::scalar_type>>;
      { net.gradients() } -> std::convertible_to<std::span<typename N::scalar_type>>;
    };

/// A TrainableDenoiser that splits a batch over replicas and can hand each replica's parameter
/// gradients back unsummed (RefUNet): what data-parallel training needs (train/trainer.hpp). A
/// batch of N runs as min(N, max_replicas()) replicas over equal shards; gradients are added in
/// replica order.
template <class N>
concept ReplicatedDenoiser =
    TrainableDenoiser<N> && requires(N& net, const N& cnet, std::size_t k, bool on) {
      net.set_max_replicas(k);
      { cnet.max_replicas() } -> std::convertible_to<std::size_t>;
      net.set_sum_replicas(on);
      { cnet.replicas_in_use() } -> std::convertible_to<std::size_t>;
      { cnet.replica_gradients(k) } -> std::convertible_to<std::span<const typename N::scalar_type>>;
    };

namespace detail {
template <class M>
struct model_batch {
  using type = batch<typename M::scalar_type>;
};
template <class M>
  requires requires { typename M::batch_type; }
struct model_batch<M> {
  using type = typename M::batch_type;
};
}  // namespace detail

/// The batch type a model works on: M::batch_type where it names one (a model on another
/// backend, sampler/backend_model.hpp), else softdiff::batch of its scalar type.
template <class M>
using model_batch_t = typename detail::model_batch<M>::type;

/// What a sampler needs of a model (SoftDiffusion models it): h = E[x_0 | x_t] estimate,
/// the corruption C_t, and sigma_t, on the model's batches.
template <class M>
concept SamplingModel = requires(M& m, const model_batch_t<M>& x, double t, model_batch_t<M>& out) {
  typename M::scalar_type;
  m.denoise(x, t, out);         // out = phi(x, t) + x
  m.apply_operator(t, x, out);  // out = C_t x
  { m.sigma(t) } -> std::convertible_to<double>;
};

struct noise_source;  // softdiff/random.hpp

/// One reverse step x_t -> x_{t'} (t' < t). `noise` is this step's own Philox stream.
/// evaluations_per_step() counts network evaluations (for NFE accounting).
template <class S, class M>
concept Sampler = SamplingModel<M> && requires(S& s, M& model, model_batch_t<M>& x, double t,
                                               const noise_source& noise) {
  { S::name } -> std::convertible_to<std::string_view>;
  { s.evaluations_per_step() } -> std::convertible_to<int>;
  s.step(model, x, t, t, noise);
};

/// Called by SoftDiffusion::sample after each reverse step as on_step(steps done, steps in all):
/// progress reports, cancellation by exception.
template <class F>
concept StepObserver = std::invocable<F&, std::size_t, std::size_t>;

/// A feature extractor for sample-quality metrics (metrics/sample_quality.hpp): images
/// [N, C, H, W] -> one row of feature_count() features per image, [N, F]; nn::classifier models
/// it with its penultimate layer.
template <class F>
concept FeatureExtractor = requires(F& f, const F& cf, const batch<typename F::scalar_type>& x) {
  typename F::scalar_type;
  { f.features(x) } -> std::same_as<xt::xtensor<typename F::scalar_type, 2>>;
  { cf.feature_count() } -> std::convertible_to<std::size_t>;
};

}  // namespace softdiff
