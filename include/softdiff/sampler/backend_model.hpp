#pragma once
// A SamplingModel on any Backend, for the samplers of sampler/ with B = that backend:
// backend_model<B, Op, Sched, Denoise> puts the backend form of a corruption operator
// (op/on_backend.hpp), a schedule (level(t), sigma(t)) and a denoiser together, on the
// backend's batches (backend::batch_t<B, T>: softdiff::batch on the CPU, device_batch
// elsewhere). The denoiser is the user's network on that backend, plugged in as a callable
//   den(const T* x, const shape4& s, double t, T* h)   writing h = phi(x, t) + x
// on backend pointers, so any device code (a cuDNN network, a TensorRT engine) can serve.
#include <cmath>
#include <string>
#include <utility>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/on_backend.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <Backend B, CorruptionOperator Op, Schedule Sched, class Denoise>
class backend_model {
public:
  using scalar_type = typename Op::scalar_type;
  using backend_type = B;
  using batch_type = backend::batch_t<B, scalar_type>;

  backend_model(Op op, Sched schedule, Denoise denoise)
      : op_(std::move(op)), schedule_(std::move(schedule)), denoise_(std::move(denoise)) {}

  /// h = phi(x, t) + x through the user's denoiser.
  void denoise(const batch_type& x, double t, batch_type& h) {
    check_time(t, "backend_model::denoise");
    ensure_shape(h, shape_of(x));
    denoise_(x.data(), shape_of(x), t, h.data());
  }
  /// y = C_t x.
  void apply_operator(double t, const batch_type& x, batch_type& y) {
    check_time(t, "backend_model::apply_operator");
    ensure_shape(y, shape_of(x));
    op_.apply(static_cast<double>(schedule_.level(t)), x.data(), y.data(), shape_of(x));
  }
  [[nodiscard]] double sigma(double t) const {
    check_time(t, "backend_model::sigma");
    return static_cast<double>(schedule_.sigma(t));
  }
  [[nodiscard]] op::backend_operator<B, Op>& op() { return op_; }
  [[nodiscard]] const Sched& schedule() const { return schedule_; }

private:
  static void check_time(double t, const char* where) {
    softdiff::detail::require(std::isfinite(t) && t >= 0.0 && t <= 1.0, where, ": time t = ", t,
                              " must lie in [0, 1]");
  }
  op::backend_operator<B, Op> op_;
  Sched schedule_;
  Denoise denoise_;
};

/// The denoiser with phi = 0 (h = x_t): the sampler benchmarks' network stand-in.
template <Backend B>
struct zero_residual {
  template <class T>
  void operator()(const T* x, const shape4& s, double /*t*/, T* h) const {
    op::copy_apply<B>(x, h, backend::element_count(s));
  }
};

static_assert(SamplingModel<backend_model<backend::cpu, op::identity<float>, ::softdiff::detail::schedule_archetype,
                                         zero_residual<backend::cpu>>>);
static_assert(Sampler<momentum<float, backend::cpu>,
                      backend_model<backend::cpu, op::identity<float>, ::softdiff::detail::schedule_archetype,
                                    zero_residual<backend::cpu>>>);

}  // namespace softdiff::sampler
