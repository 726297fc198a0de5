#pragma once
// The reverse samplers of the tool, for `softdiff sample` and `softdiff eval`: one registry,
// `registered_samplers`, holds each sampler type of include/softdiff/sampler/ with the words the
// help texts show. Names are the types' own `name` (naive, momentum, pf_momentum, ddim,
// predictor_corrector); the tool's former spellings `pf-momentum` and `pc` stay accepted as
// aliases. Whether a sampler takes --k-ratio and its network evaluations per step come from the
// type too (a k_ratio() accessor; evaluations_per_step()).
//
// NFE on the uniform grid of `steps` steps: evaluations_per_step() on every step, and one on a
// final step to sigma = 0, which every sampler ends by returning the x_0 estimate
// (sampler/step_support.hpp).
//
// Sampling runs in chunks of at most `chunk` samples (SoftDiffusion::sample with a
// sample_range): memory grows with the chunk, not with the count, and the samples are bitwise
// those of one batch, since every random number is drawn at the element's index in the whole
// batch and the network treats samples independently.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
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

/// One sampler type S in the registry: an alias (the tool's former spelling, or empty) and what
/// it is, for help texts.
template <class S>
struct registered {
  using type = S;
  std::string_view alias, what;
};

/// Every sampler the tool offers, in the order help texts list them.
inline constexpr std::tuple registered_samplers{
    registered<sampler::naive<float>>{"", "Algorithm 1"},
    registered<sampler::momentum<float>>{"", "Algorithm 2, eq. 17"},
    registered<sampler::pf_momentum<float>>{"pf-momentum", "probability-flow momentum, eq. 51"},
    registered<sampler::ddim<float>>{"", "DDIM-type, eq. 52"},
    registered<sampler::predictor_corrector<float>>{"pc", "DDIM predictor + eq. 51 corrector, 2 NFE per step"},
};

/// Whether S takes the noise ratio k = R * sigma_{t'} of eq. 52 (it has a k_ratio() accessor).
template <class S>
inline constexpr bool takes_k_ratio_v = requires(const S& s) { s.k_ratio(); };

/// S with noise ratio `k_ratio` where it takes one.
template <class S>
[[nodiscard]] S make_sampler(double k_ratio) {
  if constexpr (takes_k_ratio_v<S>) return S(k_ratio);
  else return S{};
}

/// What the tool knows of one sampler.
struct sampler_entry {
  std::string_view name;   // the type's own name, used in every output
  std::string_view alias;  // also accepted on input; empty when none
  std::string_view what;
  bool takes_k_ratio = false;
  std::size_t evaluations_per_step = 1;
};

/// The registry as entries, in order.
[[nodiscard]] inline const std::vector<sampler_entry>& sampler_registry() {
  static const std::vector<sampler_entry> entries = std::apply(
      [](const auto&... r) {
        return std::vector<sampler_entry>{sampler_entry{
            std::remove_cvref_t<decltype(r)>::type::name, r.alias, r.what,
            takes_k_ratio_v<typename std::remove_cvref_t<decltype(r)>::type>,
            static_cast<std::size_t>(
                make_sampler<typename std::remove_cvref_t<decltype(r)>::type>(0.0).evaluations_per_step())}...};
      },
      registered_samplers);
  return entries;
}

/// "naive, momentum, pf_momentum, ddim, predictor_corrector".
[[nodiscard]] inline std::string sampler_list() {
  std::string s;
  for (const sampler_entry& e : sampler_registry()) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

/// The registry for a help text: "naive (Algorithm 1), ..., predictor_corrector (alias pc: ...)".
[[nodiscard]] inline std::string sampler_help() {
  std::string s;
  for (const sampler_entry& e : sampler_registry()) {
    s += (s.empty() ? "" : ", ") + std::string(e.name) + " (";
    if (!e.alias.empty()) s += "alias " + std::string(e.alias) + "; ";
    s += std::string(e.what) + ")";
  }
  return s;
}

/// The names of the samplers that take --k-ratio, "ddim and predictor_corrector".
[[nodiscard]] inline std::string k_ratio_samplers() {
  std::vector<std::string> names;
  for (const sampler_entry& e : sampler_registry())
    if (e.takes_k_ratio) names.emplace_back(e.name);
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i)
    s += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return s;
}

/// The entry named `name` (or its alias); a usage_error naming option --`option` otherwise.
[[nodiscard]] inline const sampler_entry& find_sampler(const std::string& name, const std::string& option = "sampler") {
  for (const sampler_entry& e : sampler_registry())
    if (e.name == name || (!e.alias.empty() && e.alias == name)) return e;
  std::string known;
  for (const sampler_entry& e : sampler_registry())
    known += (known.empty() ? "" : ", ") + std::string(e.name) + (e.alias.empty() ? "" : " (" + std::string(e.alias) + ")");
  throw usage_error("--" + option + ": unknown sampler '" + name + "' (known: " + known + ")");
}

/// f(S) for the registered sampler type S named `e.name`, built with `k_ratio`.
template <class F>
auto with_sampler(const sampler_entry& e, double k_ratio, F&& f) {
  std::optional<decltype(f(sampler::naive<float>{}))> out;
  std::apply(
      [&](const auto&... r) {
        (void)((!out && std::remove_cvref_t<decltype(r)>::type::name == e.name
                    ? (out.emplace(f(make_sampler<typename std::remove_cvref_t<decltype(r)>::type>(k_ratio))), true)
                    : false) ||
               ...);
      },
      registered_samplers);
  detail::require(out.has_value(), "sampler '", e.name, "' is not registered");
  return std::move(*out);
}

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

/// Default --chunk: samples per network batch. The frozen network runs a chunk in micro-batches
/// of 4 samples per replica where they pay (refunet::predict), so its buffers need not grow with
/// the chunk; the
/// sampler's own state does, by a few images' worth per sample (2,000 samples of a RefUNet of
/// base 16 on 28 x 28 images: 90 MB max RSS at 250; before the micro-batches 0.55 GB, and the
/// whole count in one batch 8.5 GB).
inline constexpr std::size_t default_chunk = 250;

/// `count` samples with `steps` steps of sampler `e` from the model's final distribution, drawn
/// in chunks of at most `chunk` samples; bitwise the same for every chunk size. on_step(k, total)
/// counts steps over all chunks (total = chunks * steps).
template <StepObserver OnStep = no_step_observer>
[[nodiscard]] batch<float> draw_samples(model_type& model, const sampler_entry& e, std::size_t count,
                                        std::size_t steps, std::uint64_t seed, double k_ratio, std::size_t chunk,
                                        OnStep on_step = {}) {
  detail::require(count > 0 && chunk > 0, "draw_samples: count (", count, ") and chunk (", chunk, ") must be > 0");
  const std::size_t parts = (count + chunk - 1) / chunk;
  return with_sampler(e, k_ratio, [&](auto s) {
    batch<float> all;
    for (std::size_t p = 0; p < parts; ++p) {
      const std::size_t first = p * chunk, n = std::min(chunk, count - first);
      auto observe = [&on_step, p, parts](std::size_t done, std::size_t total) {
        on_step(p * total + done, parts * total);
      };
      const batch<float> x = model.sample(sample_range{first, n}, steps, seed, s, observe);
      if (p == 0) {
        shape4 shape = shape_of(x);
        shape[0] = count;
        all = batch<float>(shape);
      }
      std::copy(x.data(), x.data() + x.size(), all.data() + first * (x.size() / n));
    }
    return all;
  });
}

/// Network evaluations per sample of `steps` steps of sampler `e` on the uniform grid:
/// evaluations_per_step on every step, 1 on a step to sigma_{t'} = 0.
[[nodiscard]] inline std::size_t network_evaluations(const model_type& model, const sampler_entry& e,
                                                     std::size_t steps) {
  const std::vector<double> grid = sampler::uniform_grid(steps);
  std::size_t nfe = 0;
  for (std::size_t k = 0; k + 1 < grid.size(); ++k)
    nfe += model.sigma(grid[k + 1]) == 0.0 ? 1 : e.evaluations_per_step;
  return nfe;
}

}  // namespace softdiff::cli
