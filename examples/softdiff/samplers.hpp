#pragma once
// The reverse samplers of the tool by name, for `softdiff sample` and `softdiff eval`:
//   naive        Algorithm 1
//   momentum     Algorithm 2, eq. 17
//   pf-momentum  the probability-flow momentum step, eq. 51
//   ddim         eq. 52, noise k = k_ratio * sigma_{t'}
//   pc           DDIM predictor (eq. 52) + probability-flow momentum corrector (eq. 51)
// and the number of network evaluations (NFE) each spends per sample on the uniform grid of
// `steps` steps: one per step, two for pc, and one on a final step to sigma = 0, which every
// sampler ends by returning the x_0 estimate (sampler/step_support.hpp).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "model_setup.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"
#include "softdiff/sampler/time_grid.hpp"

namespace softdiff::cli {

inline constexpr std::string_view sampler_names[] = {"naive", "momentum", "pf-momentum", "ddim", "pc"};

/// "naive, momentum, pf-momentum, ddim, pc".
[[nodiscard]] inline std::string sampler_list() {
  std::string s;
  for (const std::string_view n : sampler_names) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

/// Throws a usage_error unless `name` is one of sampler_names.
inline void check_sampler_name(const std::string& name) {
  for (const std::string_view n : sampler_names)
    if (n == name) return;
  throw usage_error("unknown sampler '" + name + "' (known: " + sampler_list() + ")");
}

/// Whether the sampler takes the noise ratio k = R * sigma_{t'} of eq. 52.
[[nodiscard]] inline bool sampler_takes_k_ratio(const std::string& name) { return name == "ddim" || name == "pc"; }

/// Seconds between sampling progress reports: SOFTDIFF_PROGRESS_SECONDS when it holds a number
/// >= 0, else 5.
[[nodiscard]] inline double progress_interval_seconds() {
  const char* v = std::getenv("SOFTDIFF_PROGRESS_SECONDS");
  if (v == nullptr || *v == '\0') return 5.0;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  return (*end == '\0' && s >= 0.0 && std::isfinite(s)) ? s : 5.0;
}

/// A StepObserver that writes " done/total" on stderr, on the current line, at most once per
/// `interval` (the first time after one interval), so that a long sampling run is not silent.
class step_ticker {
public:
  explicit step_ticker(std::chrono::duration<double> interval = std::chrono::duration<double>(progress_interval_seconds()))
      : interval_(interval), last_(std::chrono::steady_clock::now()) {}
  void operator()(std::size_t done, std::size_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done == total || now - last_ < interval_) return;
    last_ = now;
    std::cerr << " " << done << "/" << total << std::flush;
  }

private:
  std::chrono::duration<double> interval_;
  std::chrono::steady_clock::time_point last_;
};

/// `count` samples with `steps` steps of sampler `name` from the model's final distribution;
/// on_step(k, steps) after each step.
template <StepObserver OnStep = no_step_observer>
[[nodiscard]] batch<float> draw_samples(model_type& model, const std::string& name, std::size_t count,
                                        std::size_t steps, std::uint64_t seed, double k_ratio = 0.0,
                                        OnStep on_step = {}) {
  check_sampler_name(name);
  if (name == "naive") return model.sample(count, steps, seed, sampler::naive<float>{}, on_step);
  if (name == "momentum") return model.sample(count, steps, seed, sampler::momentum<float>{}, on_step);
  if (name == "pf-momentum") return model.sample(count, steps, seed, sampler::pf_momentum<float>{}, on_step);
  if (name == "ddim") return model.sample(count, steps, seed, sampler::ddim<float>(k_ratio), on_step);
  return model.sample(count, steps, seed, sampler::predictor_corrector<float>(k_ratio), on_step);
}

/// Network evaluations per sample of `steps` steps of sampler `name` on the uniform grid:
/// the sampler's evaluations_per_step() on every step, 1 on a step to sigma_{t'} = 0.
[[nodiscard]] inline std::size_t network_evaluations(const model_type& model, const std::string& name,
                                                     std::size_t steps) {
  check_sampler_name(name);
  const std::size_t per_step = name == "pc" ? static_cast<std::size_t>(sampler::predictor_corrector<float>().evaluations_per_step())
                                            : 1;
  const std::vector<double> grid = sampler::uniform_grid(steps);
  std::size_t nfe = 0;
  for (std::size_t k = 0; k + 1 < grid.size(); ++k) nfe += model.sigma(grid[k + 1]) == 0.0 ? 1 : per_step;
  return nfe;
}

}  // namespace softdiff::cli
