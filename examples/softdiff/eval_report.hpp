#pragma once
// The files `softdiff eval` writes: metrics.csv (one row per sampler and step count),
// frechet_vs_nfe.png (Frechet distance against network evaluations per sample, one line per
// sampler, the train-vs-held-out floor dashed, as in Soft Diffusion's Figure 3), the nearest-
// neighbour grid of appendix F.4 and summary.json. Every file is written to a temporary name
// and renamed into place.
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

/// One evaluated setting.
struct eval_row {
  std::string sampler;
  std::size_t steps = 0, nfe = 0;
  metrics::sample_quality quality;
  double seconds = 0;  // sampling time
};

/// The row with the smallest Frechet distance (the first on ties); rows must not be empty.
[[nodiscard]] inline std::size_t best_row(const std::vector<eval_row>& rows) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < rows.size(); ++i)
    if (rows[i].quality.frechet < rows[best].quality.frechet) best = i;
  return best;
}

/// "%.6g" of a number, for CSV cells and messages.
[[nodiscard]] inline std::string number_cell(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// Writes `text` to `file` through a temporary file.
inline void write_text_file(const std::filesystem::path& file, const std::string& text) {
  data::detail::output_file out(file);
  {
    std::ofstream os(out.temporary(), std::ios::binary | std::ios::trunc);
    os << text;
    os.flush();
    detail::require(static_cast<bool>(os), file.string(), ": cannot write");
  }
  out.commit();
}

inline void write_metrics_csv(const std::filesystem::path& file, const std::vector<eval_row>& rows) {
  std::string s = "sampler,steps,nfe,frechet,frechet_floor,sliced_w,precision,recall,seconds\n";
  for (const eval_row& r : rows)
    s += r.sampler + "," + std::to_string(r.steps) + "," + std::to_string(r.nfe) + "," +
         number_cell(r.quality.frechet) + "," + number_cell(r.quality.frechet_floor) + "," +
         number_cell(r.quality.sliced_w) + "," + number_cell(r.quality.precision) + "," +
         number_cell(r.quality.recall) + "," + number_cell(r.seconds) + "\n";
  write_text_file(file, s);
}

/// Frechet distance against NFE: one series per sampler (in order of first appearance, points in
/// increasing NFE), the floor as a dashed line over the NFE range; log x when the NFE span a
/// factor of 4 or more.
inline void write_frechet_plot(const std::filesystem::path& file, const std::vector<eval_row>& rows,
                               const std::string& title) {
  std::vector<std::string> names;
  for (const eval_row& r : rows)
    if (std::find(names.begin(), names.end(), r.sampler) == names.end()) names.push_back(r.sampler);
  std::vector<data::plot_series> series;
  std::size_t lo = rows.front().nfe, hi = rows.front().nfe;
  for (const std::string& n : names) {
    std::vector<const eval_row*> mine;
    for (const eval_row& r : rows)
      if (r.sampler == n) mine.push_back(&r);
    std::stable_sort(mine.begin(), mine.end(), [](const eval_row* a, const eval_row* b) { return a->nfe < b->nfe; });
    data::plot_series s{n, {}, {}};
    for (const eval_row* r : mine) {
      s.x.push_back(static_cast<double>(r->nfe));
      s.y.push_back(r->quality.frechet);
      lo = std::min(lo, r->nfe);
      hi = std::max(hi, r->nfe);
    }
    series.push_back(std::move(s));
  }
  const double floor = rows.front().quality.frechet_floor;
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
          {"frechet", r.quality.frechet},
          {"frechet_floor", r.quality.frechet_floor},
          {"sliced_w", r.quality.sliced_w},
          {"sliced_w_floor", r.quality.sliced_w_floor},
          {"precision", r.quality.precision},
          {"recall", r.quality.recall},
          {"seconds", r.seconds}};
}

}  // namespace softdiff::cli
