#pragma once
// What `softdiff eval` reports, from its rows (one per sampler, step count and sampling seed):
// the settings (sampler, step count) summarised over seeds by mean and spread (max - min), each
// sampler's best setting over its step sweep (the lowest mean Frechet distance, as the paper
// picks the best NFE for each sampler), the comparison line of the samplers' bests, and the
// files: metrics.csv, frechet_vs_nfe.png (Frechet distance against network evaluations per
// sample, one line per sampler, the train-vs-held-out floor dashed, as in Soft Diffusion's
// Figure 3), the nearest-neighbour grid of appendix F.4 and summary.json. Every file is written
// to a temporary name and renamed into place.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "softdiff/data/output_file.hpp"
#include "softdiff/data/plot.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/error.hpp"
#include "softdiff/metrics/nearest_neighbours.hpp"
#include "softdiff/metrics/sample_quality.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::cli {

/// One evaluated (sampler, steps, seed).
struct eval_row {
  std::string sampler;
  std::size_t steps = 0, nfe = 0;
  std::uint64_t seed = 0;
  metrics::sample_quality quality;
  double outside = 0;  // fraction of sample values outside [-1, 1] before any clipping
  double seconds = 0;  // sampling time
};

/// Mean, least and greatest value of one measure over seeds; the spread is max - min.
struct over_seeds {
  double mean = 0, min = 0, max = 0;
  [[nodiscard]] double spread() const { return max - min; }
};

/// One (sampler, steps) over all its seeds.
struct eval_setting {
  std::string sampler;
  std::size_t steps = 0, nfe = 0, seeds = 0;
  double frechet_floor = 0;
  over_seeds frechet, sliced_w, precision, recall, outside, seconds;
};

/// The measure `get` of rows [b, e) over seeds.
template <class Get>
[[nodiscard]] over_seeds summarise(const std::vector<eval_row>& rows, std::size_t b, std::size_t e, Get get) {
  over_seeds s{0, get(rows[b]), get(rows[b])};
  for (std::size_t i = b; i < e; ++i) {
    const double v = get(rows[i]);
    s.mean += v / static_cast<double>(e - b);
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
  }
  return s;
}

/// The settings of `rows` whose `seeds` rows (consecutive, one per seed) are all there, in order.
[[nodiscard]] inline std::vector<eval_setting> settings_of(const std::vector<eval_row>& rows, std::size_t seeds) {
  std::vector<eval_setting> out;
  for (std::size_t b = 0; b + seeds <= rows.size(); b += seeds) {
    const std::size_t e = b + seeds;
    eval_setting s{rows[b].sampler, rows[b].steps, rows[b].nfe, seeds, rows[b].quality.frechet_floor, {}, {}, {}, {}, {}, {}};
    s.frechet = summarise(rows, b, e, [](const eval_row& r) { return r.quality.frechet; });
    s.sliced_w = summarise(rows, b, e, [](const eval_row& r) { return r.quality.sliced_w; });
    s.precision = summarise(rows, b, e, [](const eval_row& r) { return r.quality.precision; });
    s.recall = summarise(rows, b, e, [](const eval_row& r) { return r.quality.recall; });
    s.outside = summarise(rows, b, e, [](const eval_row& r) { return r.outside; });
    s.seconds = summarise(rows, b, e, [](const eval_row& r) { return r.seconds; });
    out.push_back(s);
  }
  return out;
}

/// Each sampler's best setting (lowest mean Frechet distance, the fewest steps on ties), in
/// order of first appearance.
[[nodiscard]] inline std::vector<eval_setting> best_per_sampler(const std::vector<eval_setting>& settings) {
  std::vector<eval_setting> best;
  for (const eval_setting& s : settings) {
    auto it = std::find_if(best.begin(), best.end(), [&](const eval_setting& b) { return b.sampler == s.sampler; });
    if (it == best.end()) best.push_back(s);
    else if (s.frechet.mean < it->frechet.mean || (s.frechet.mean == it->frechet.mean && s.steps < it->steps)) *it = s;
  }
  return best;
}

/// The index of the setting with the lowest mean Frechet distance (the first on ties).
[[nodiscard]] inline std::size_t best_setting(const std::vector<eval_setting>& settings) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < settings.size(); ++i)
    if (settings[i].frechet.mean < settings[best].frechet.mean) best = i;
  return best;
}

/// "%.6g" of a number, for CSV cells and messages.
[[nodiscard]] inline std::string number_cell(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// "%.3g", for the comparison line.
[[nodiscard]] inline std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

/// The final line: the samplers' bests, lowest mean first, "+-" the spread (max - min) over the
/// seeds; then whether the two lowest are separated by more than the larger of their spreads,
/// e.g. "momentum best 8.1 +- 0.3 (200 steps, NFE 200) vs naive best 9 +- 0.2 (100 steps, NFE
/// 100); +- is max - min over seeds 3,4; momentum lower by 0.9, more than the spread".
[[nodiscard]] inline std::string comparison_line(std::vector<eval_setting> best, const std::string& seeds) {
  std::stable_sort(best.begin(), best.end(),
                   [](const eval_setting& a, const eval_setting& b) { return a.frechet.mean < b.frechet.mean; });
  std::string s;
  for (const eval_setting& b : best)
    s += (s.empty() ? "" : " vs ") + b.sampler + " best " + short_number(b.frechet.mean) + " +- " +
         short_number(b.frechet.spread()) + " (" + std::to_string(b.steps) + " steps, NFE " + std::to_string(b.nfe) +
         ")";
  s += "; +- is max - min over seeds " + seeds;
  if (best.size() >= 2) {
    const double gap = best[1].frechet.mean - best[0].frechet.mean;
    const double spread = std::max(best[0].frechet.spread(), best[1].frechet.spread());
    if (best[0].seeds < 2) s += "; one seed: no spread to compare with";
    else if (gap > spread)
      s += "; " + best[0].sampler + " lower than " + best[1].sampler + " by " + short_number(gap) +
           ", more than the spread " + short_number(spread);
    else
      s += "; " + best[0].sampler + " and " + best[1].sampler + " differ by " + short_number(gap) +
           ", within the spread " + short_number(spread) + ": not separated";
  }
  return s;
}

using data::write_text_file;

/// metrics.csv: a row per (sampler, steps, seed) and, after each complete setting, a row with
/// seed "mean" (the mean over its seeds) and one with seed "max-min" (the spread) of every
/// measure.
inline void write_metrics_csv(const std::filesystem::path& file, const std::vector<eval_row>& rows,
                              std::size_t seeds, bool clip) {
  const std::string c = clip ? "on" : "off";
  std::string s = "sampler,steps,nfe,seed,clip,frechet,frechet_floor,sliced_w,precision,recall,outside_fraction,seconds\n";
  auto line = [&](const std::string& sampler, std::size_t steps, std::size_t nfe, const std::string& seed,
                  const std::vector<double>& v) {
    s += sampler + "," + std::to_string(steps) + "," + std::to_string(nfe) + "," + seed + "," + c;
    for (const double x : v) s += "," + number_cell(x);
    s += "\n";
  };
  const std::vector<eval_setting> settings = settings_of(rows, seeds);
  for (std::size_t b = 0; b < rows.size(); b += seeds) {
    for (std::size_t i = b; i < std::min(rows.size(), b + seeds); ++i) {
      const eval_row& r = rows[i];
      line(r.sampler, r.steps, r.nfe, std::to_string(r.seed),
           {r.quality.frechet, r.quality.frechet_floor, r.quality.sliced_w, r.quality.precision, r.quality.recall,
            r.outside, r.seconds});
    }
    if (b / seeds < settings.size()) {
      const eval_setting& g = settings[b / seeds];
      line(g.sampler, g.steps, g.nfe, "mean",
           {g.frechet.mean, g.frechet_floor, g.sliced_w.mean, g.precision.mean, g.recall.mean, g.outside.mean,
            g.seconds.mean});
      line(g.sampler, g.steps, g.nfe, "max-min",
           {g.frechet.spread(), 0.0, g.sliced_w.spread(), g.precision.spread(), g.recall.spread(), g.outside.spread(),
            g.seconds.spread()});
    }
  }
  write_text_file(file, s);
}

/// The stdout tables: every setting (means over seeds and the Frechet spread), then each
/// sampler's best with the floor at the same sample count beside it.
inline void print_tables(std::ostream& os, const std::vector<eval_setting>& settings,
                         const std::vector<eval_setting>& best, std::size_t count, const std::string& seeds,
                         bool clip) {
  char buf[256];
  os << "Frechet distance, mean and spread (max - min) over seeds " << seeds << ", " << count
     << " samples per seed, clip " << (clip ? "on" : "off") << "; outside: fraction of sample values outside [-1, 1]\n";
  std::snprintf(buf, sizeof buf, "%-20s %6s %6s %10s %8s %9s %9s %7s %8s\n", "sampler", "steps", "NFE", "Frechet",
                "spread", "sliced W", "precision", "recall", "outside");
  os << buf;
  for (const eval_setting& s : settings) {
    std::snprintf(buf, sizeof buf, "%-20s %6zu %6zu %10.4g %8.3g %9.4g %9.3f %7.3f %8.4f\n", s.sampler.c_str(), s.steps,
                  s.nfe, s.frechet.mean, s.frechet.spread(), s.sliced_w.mean, s.precision.mean, s.recall.mean,
                  s.outside.mean);
    os << buf;
  }
  os << "\nbest per sampler over its step sweep (lowest mean Frechet distance):\n";
  std::snprintf(buf, sizeof buf, "%-34s %6s %6s %10s %8s %8s\n", "sampler", "steps", "NFE", "Frechet", "spread",
                "outside");
  os << buf;
  for (const eval_setting& s : best) {
    std::snprintf(buf, sizeof buf, "%-34s %6zu %6zu %10.4g %8.3g %8.4f\n", s.sampler.c_str(), s.steps, s.nfe,
                  s.frechet.mean, s.frechet.spread(), s.outside.mean);
    os << buf;
  }
  const std::string floor_label = "floor (" + std::to_string(count) + " training images)";
  std::snprintf(buf, sizeof buf, "%-34s %6s %6s %10.4g\n", floor_label.c_str(), "-", "-",
                settings.front().frechet_floor);
  os << buf;
}

/// Mean Frechet distance against NFE: one series per sampler (in order of first appearance,
/// points in increasing NFE), the floor as a dashed line over the NFE range; log x when the NFE
/// span a factor of 4 or more.
inline void write_frechet_plot(const std::filesystem::path& file, const std::vector<eval_setting>& settings,
                               const std::string& title) {
  std::vector<std::string> names;
  for (const eval_setting& r : settings)
    if (std::find(names.begin(), names.end(), r.sampler) == names.end()) names.push_back(r.sampler);
  std::vector<data::plot_series> series;
  std::size_t lo = settings.front().nfe, hi = settings.front().nfe;
  for (const std::string& n : names) {
    std::vector<const eval_setting*> mine;
    for (const eval_setting& r : settings)
      if (r.sampler == n) mine.push_back(&r);
    std::stable_sort(mine.begin(), mine.end(),
                     [](const eval_setting* a, const eval_setting* b) { return a->nfe < b->nfe; });
    data::plot_series s{n, {}, {}};
    for (const eval_setting* r : mine) {
      s.x.push_back(static_cast<double>(r->nfe));
      s.y.push_back(r->frechet.mean);
      lo = std::min(lo, r->nfe);
      hi = std::max(hi, r->nfe);
    }
    series.push_back(std::move(s));
  }
  const double floor = settings.front().frechet_floor;
  data::plot_series f{"train vs held-out (floor)", {static_cast<double>(lo), static_cast<double>(hi)}, {floor, floor}};
  f.markers = false;
  f.dashed = true;
  series.push_back(std::move(f));
  data::plot_options o;
  o.title = title;
  o.x_label = "network evaluations per sample (NFE)";
  o.y_label = "Frechet distance (classifier features)";
  o.log_x = hi >= 4 * lo;
  data::write_line_plot(file, series, o);
}

/// Appendix F.4: each row one sample followed by its `k` nearest training images in pixel space.
/// Returns the neighbours (for the summary).
inline metrics::neighbours write_neighbour_grid(const std::filesystem::path& file, const batch<float>& samples,
                                                const batch<float>& training, std::size_t k) {
  const shape4 s = shape_of(samples);
  const metrics::neighbours nn = metrics::nearest_neighbours(samples, training, k);
  const std::size_t d = s[1] * s[2] * s[3];
  batch<float> grid(shape4{s[0] * (k + 1), s[1], s[2], s[3]});
  for (std::size_t i = 0; i < s[0]; ++i) {
    std::copy(samples.data() + i * d, samples.data() + (i + 1) * d, grid.data() + i * (k + 1) * d);
    for (std::size_t j = 0; j < k; ++j) {
      const std::size_t r = nn.index[i * k + j];
      std::copy(training.data() + r * d, training.data() + (r + 1) * d, grid.data() + (i * (k + 1) + j + 1) * d);
    }
  }
  data::write_png_grid(file, grid, k + 1);
  return nn;
}

[[nodiscard]] inline nlohmann::json row_json(const eval_row& r) {
  return {{"sampler", r.sampler},
          {"steps", r.steps},
          {"nfe", r.nfe},
          {"seed", r.seed},
          {"frechet", r.quality.frechet},
          {"frechet_floor", r.quality.frechet_floor},
          {"sliced_w", r.quality.sliced_w},
          {"sliced_w_floor", r.quality.sliced_w_floor},
          {"precision", r.quality.precision},
          {"recall", r.quality.recall},
          {"outside_fraction", r.outside},
          {"seconds", r.seconds}};
}

[[nodiscard]] inline nlohmann::json seeds_json(const over_seeds& s) {
  return {{"mean", s.mean}, {"min", s.min}, {"max", s.max}, {"spread", s.spread()}};
}

/// A setting in summary.json: every measure as {mean, min, max, spread} over the seeds.
[[nodiscard]] inline nlohmann::json setting_json(const eval_setting& s) {
  return {{"sampler", s.sampler},
          {"steps", s.steps},
          {"nfe", s.nfe},
          {"seeds", s.seeds},
          {"frechet", seeds_json(s.frechet)},
          {"frechet_floor", s.frechet_floor},
          {"sliced_w", seeds_json(s.sliced_w)},
          {"precision", seeds_json(s.precision)},
          {"recall", seeds_json(s.recall)},
          {"outside_fraction", seeds_json(s.outside)},
          {"seconds", seeds_json(s.seconds)}};
}

}  // namespace softdiff::cli
