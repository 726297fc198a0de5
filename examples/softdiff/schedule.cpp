// softdiff schedule: the Wasserstein scheduler of Soft Diffusion (section 3.3, appendix C) on a
// data slice. Candidate levels theta_0 (clean) < ... < theta_T of an operator, the corrupted
// datasets D_i = {C(theta_i) x}, edges M(D_i, D_j) where at most eps,
//   M_eps(D_i, D_j) = M(D_i, D_j) if M(D_i, D_j) <= eps, +inf otherwise     (eq. 20)
// and the schedule is the shortest path from D_0 to D_T, eps tuned by bisection for --target nodes
// (or fixed by --epsilon), linearly interpolated in t after the noise stage (schedule/wasserstein.hpp).
// Writes FILE.json (softdiff-schedule, for `train --schedule` and `forward-process --schedule`)
// and FILE.png, the level against t with the path's nodes marked (as the paper's Figure 8).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "image_input.hpp"
#include "model_description.hpp"
#include "operators.hpp"
#include "softdiff/data/dataset.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/plot.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/nn/checkpoint.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/schedule/wasserstein.hpp"

namespace softdiff::cli {

namespace {

namespace fs = std::filesystem;

/// What a training checkpoint says about the model it was trained for (its description).
model_description read_checkpoint_description(const fs::path& path) {
  model_description d = read_description(data::read_safetensors(path), false);
  detail::require(d.image.size() == 3, "checkpoint '", path.string(), "': its metadata lacks \"image\": [C, H, W]");
  return d;
}

std::string shape_text(std::size_t c, std::size_t h, std::size_t w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

/// Throws naming the image and pixel of the first value that is not finite.
void check_slice_finite(const batch<float>& x, const fs::path& path) {
  const shape4 s = shape_of(x);
  const std::size_t per = s[1] * s[2] * s[3];
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x.data()[i])) {
      const std::size_t p = i % per;
      throw error(detail::concat(path.string(), ": image ", i / per, " of the slice has the non-finite value ",
                                 x.data()[i], " at channel ", p / (s[2] * s[3]), ", row ", (p / s[3]) % s[2],
                                 ", column ", p % s[3], "; the scheduler needs finite images"));
    }
}

bool is_blur(const std::string& op) { return op == "gaussian-blur" || op == "fft-conv" || op == "dct-blur"; }

std::string level_axis_name(const std::string& op) {
  if (op == "dct-blur") return "heat-blur sigma_B (pixels)";
  if (is_blur(op)) return "blur std (pixels)";
  if (op == "mask") return "share of pixels masked";
  return "1 - alpha";
}

/// Progress lines on stderr: each stage's first report, then at most one a second.
class progress_printer {
public:
  progress_printer() : start_(std::chrono::steady_clock::now()) {}
  void operator()(std::string_view stage, double fraction) {
    const double now = seconds();
    const bool new_stage = stage != stage_;
    if (new_stage) count_ = 0;
    ++count_;
    if (!new_stage && now - last_ < 1.0) return;
    stage_ = stage;
    last_ = now;
    char line[160];
    if (stage == "epsilon bracket")  // doubling eps until a path of the target length exists
      std::snprintf(line, sizeof line, "softdiff schedule: %s, step %zu  (%.1f s)", stage_.c_str(), count_, now);
    else if (stage == "epsilon bisection")  // the fraction counts against the steps the tolerance needs
      std::snprintf(line, sizeof line, "softdiff schedule: %s, step %zu, about %3.0f%%  (%.1f s)", stage_.c_str(),
                    count_, 100.0 * fraction, now);
    else
      std::snprintf(line, sizeof line, "softdiff schedule: %s %3.0f%%  (%.1f s)", stage_.c_str(), 100.0 * fraction, now);
    std::cerr << line << "\n" << std::flush;
  }
  [[nodiscard]] double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

private:
  std::chrono::steady_clock::time_point start_;
  std::string stage_;
  std::size_t count_ = 0;
  double last_ = -1e9;
};

}  // namespace

int run_schedule(const arguments& args) {
  arg_parser a("softdiff schedule",
               "choose an operator's levels with the Wasserstein scheduler; writes FILE.json and FILE.png");
  a.required("out", "FILE.json", "the schedule (softdiff-schedule JSON); the plot goes to FILE.png")
      .option("data", "PATH", "images: an IDX file or directory, CIFAR-10 batches, PNG folder or float .npy batch; "
                              "default: the Fashion-MNIST train set in " + data::default_fashion_mnist_dir().string())
      .option("op", "NAME", "corruption operator (" + operator_names() + ")", "gaussian-blur")
      .option("ckpt", "FILE", "take operator, half size, data and last level from a softdiff train checkpoint")
      .option("levels", "T", "candidate levels besides the clean one", "256")
      .option("target", "K", "nodes of the path, the clean and the last level included", "32")
      .option("slice", "N", "use the first N images of the data", "6000")
      .option("metric", "NAME", "distance between corrupted datasets: sinkhorn (W2, the paper's) or sliced", "sinkhorn")
      .option("max-level", "L", "last candidate level (default: the checkpoint's, else as train's: gaussian-blur and "
                                "fft-conv 18 * size / 32, dct-blur size, mask and scale 1)")
      .option("half-size", "N", "kernel half size of gaussian-blur and fft-conv (default: the image size)")
      .option("epsilon", "E", "fixed eps: the least-sum path in the eps-graph (eq. 20) without bisection; "
                              "the path then has as many nodes as it needs (--target is ignored)")
      .option("points", "N", "sinkhorn: images per distance estimate (a seeded sub-slice)", "256")
      .option("seed", "S", "seed of the sub-slice (sinkhorn) or the projections (sliced)", "0")
      .option("sigma-min", "S", "noise stage: sigma at its start (default: the checkpoint's, else train's default)")
      .option("sigma-max", "S", "noise stage: sigma at its end, held while the level grows (images in [-1, 1]: "
                                "the paper's 0.1 is 0.2 here)")
      .option("noise-fraction", "F", "noise stage: its share of t, in (0, 1)")
      .epilog("Candidate levels are geometric from the last level / 1000 for the blurs, linear for mask and scale.\n"
              "\nExamples:\n  softdiff schedule --out blur.json\n"
              "  softdiff schedule --ckpt run1/checkpoint.safetensors --metric sliced --out run1/schedule.json\n"
              "  softdiff train --out run2 --schedule blur.json --steps 20000\n");
  if (!a.parse(args, std::cout)) return 0;

  const fs::path json_path = a.text("out");
  if (json_path.extension() != ".json") throw usage_error("--out " + json_path.string() + " must end in .json");
  fs::path png_path = json_path;
  png_path.replace_extension(".png");
  const auto levels = static_cast<std::size_t>(a.integer("levels", 1, 1 << 20));
  const auto target = static_cast<std::size_t>(a.integer("target", 2, 1 << 20));
  const long slice_count = a.integer("slice", 0, std::numeric_limits<long>::max());
  if (slice_count == 0) throw usage_error("--slice 0 leaves the data slice empty; give at least 1 image");
  const std::string metric = a.text("metric");
  if (metric != "sinkhorn" && metric != "sliced") throw usage_error("unknown --metric '" + metric + "' (sinkhorn or sliced)");
  if (a.given("points") && metric != "sinkhorn") throw usage_error("--points applies to --metric sinkhorn only");
  const auto points = static_cast<std::size_t>(a.integer("points", 2, 1 << 20));
  const auto seed = static_cast<std::uint64_t>(a.integer("seed", 0, std::numeric_limits<long>::max()));
  const double epsilon = a.given("epsilon") ? a.number("epsilon") : 0.0;
  if (a.given("epsilon") && !(epsilon > 0)) throw usage_error("--epsilon must be > 0");
  if (!a.given("epsilon") && target > levels + 1)
    throw usage_error("--target " + std::to_string(target) + " nodes need at least " + std::to_string(target - 1) +
                      " candidate levels besides the clean one, but --levels is " + std::to_string(levels));

  // Operator and data: from the options, or from the checkpoint.
  std::optional<model_description> ckpt;
  if (a.given("ckpt")) ckpt = read_checkpoint_description(a.text("ckpt"));
  std::string op_name = a.text("op");
  (void)find_operator(op_name);
  if (ckpt) {
    if (a.given("op") && op_name != ckpt->op)
      throw usage_error("--op " + op_name + " differs from operator " + ckpt->op + " of " + a.text("ckpt"));
    op_name = ckpt->op;
    if (op_name == "identity")
      throw error("checkpoint '" + a.text("ckpt") + "' uses operator identity, which cannot be scheduled: C = I at "
                  "every level, so its level range is empty and every corrupted dataset is the clean one");
  } else if (op_name == "identity") {
    throw usage_error("operator identity cannot be scheduled: C = I at every level, so its level range is empty and "
                      "every corrupted dataset is the clean one; choose another --op");
  }
  const bool kernel = find_operator(op_name).takes_half_size;
  if (a.given("half-size") && !kernel) throw usage_error("--half-size applies only to gaussian-blur and fft-conv");
  const fs::path data_path = a.given("data") ? fs::path(a.text("data"))
                             : ckpt          ? fs::path(ckpt->data)
                                             : data::default_fashion_mnist_dir();

  std::string description;
  batch<float> slice = load_images(data_path, static_cast<std::size_t>(slice_count), description);
  const shape4 s = shape_of(slice);
  detail::require(s[0] > 0, data_path.string(), ": no images, so the data slice is empty");
  if (ckpt)
    detail::require(ckpt->image == std::vector<std::size_t>{s[1], s[2], s[3]}, data_path.string(), ": images are ",
                    shape_text(s[1], s[2], s[3]), " but checkpoint '", a.text("ckpt"), "' was trained on ",
                    shape_text(ckpt->image[0], ckpt->image[1], ckpt->image[2]),
                    "; the slice must have the checkpoint's image shape");
  check_slice_finite(slice, data_path);

  int half_size = -1;
  if (kernel) {
    if (a.given("half-size")) half_size = static_cast<int>(a.integer("half-size", 0, 1 << 20));
    else if (ckpt && ckpt->half_size >= 0) half_size = ckpt->half_size;
    else half_size = static_cast<int>(std::max(s[2], s[3]));
  }
  const any_operator<float> op = make_operator<float>(op_name, half_size);
  double max_level = default_training_schedule(op_name, s[2], s[3]).level_max;
  if (ckpt && ckpt->schedule) max_level = ckpt->schedule->level(1.0);
  if (a.given("max-level")) max_level = a.number("max-level");
  if (op_name == "scale" && a.given("max-level") && !(max_level > 0 && max_level <= 1))
    throw usage_error("--max-level for scale is 1 - alpha at t = 1 and must lie in (0, 1]");
  if (!(max_level > op.min_level() && max_level <= op.max_level())) {
    const std::string range = detail::concat(" must lie in (", op.min_level(), ", ", op.max_level(), "] for operator ",
                                             op_name);
    if (a.given("max-level")) throw usage_error(detail::concat("--max-level ", max_level, range));
    throw error(detail::concat("the last level ", max_level, " of the schedule in checkpoint '", a.text("ckpt"), "'",
                               range, "; give --max-level"));
  }

  schedule::wasserstein_options o;
  o.levels.count = levels;
  o.levels.last = max_level;
  o.levels.spacing = is_blur(op_name) ? schedule::level_spacing::geometric : schedule::level_spacing::linear;
  o.target_nodes = target;
  o.distance = metric == "sliced" ? schedule::distance_estimate::sliced : schedule::distance_estimate::sinkhorn;
  o.sinkhorn_points = points;
  o.seed = seed;
  o.epsilon = epsilon;
  // the noise stage in front of the path: train's recipe (the checkpoint's, or the defaults), as given
  noise_recipe noise_stage = ckpt ? ckpt->noise : noise_recipe{};
  if (a.given("sigma-min")) noise_stage.sigma_min = a.number("sigma-min");
  if (a.given("sigma-max")) noise_stage.sigma_max = a.number("sigma-max");
  if (a.given("noise-fraction")) noise_stage.noise_fraction = a.number("noise-fraction");
  if (!(noise_stage.sigma_min > 0 && noise_stage.sigma_max >= noise_stage.sigma_min))
    throw usage_error(detail::concat("--sigma-max ", noise_stage.sigma_max, " must be >= --sigma-min ",
                                     noise_stage.sigma_min, " > 0"));
  if (!(noise_stage.noise_fraction > 0 && noise_stage.noise_fraction < 1))
    throw usage_error(detail::concat("--noise-fraction ", noise_stage.noise_fraction, " must lie in (0, 1)"));
  o.noise.sigma_min = noise_stage.sigma_min;
  o.noise.sigma_max = noise_stage.sigma_max;
  o.noise.noise_fraction = noise_stage.noise_fraction;
  progress_printer progress;
  o.progress = [&progress](std::string_view stage, double fraction) { progress(stage, fraction); };

  std::cerr << "softdiff schedule: " << op_name << (kernel ? " (half size " + std::to_string(half_size) + ")" : "")
            << " on " << s[0] << " images " << shape_text(s[1], s[2], s[3]) << " of " << description << "; "
            << levels << " " << (is_blur(op_name) ? "geometric" : "linear") << " levels up to " << max_level << ", "
            << (epsilon > 0 ? "fixed epsilon " + a.text("epsilon") : "target " + std::to_string(target) + " nodes")
            << ", metric " << metric
            << (metric == "sinkhorn" ? " (" + std::to_string(std::min<std::size_t>(points, s[0])) + " images)" : "")
            << "\n";
  if (epsilon > 0) progress("shortest path at fixed epsilon", 0.0);
  std::optional<schedule::wasserstein_result> r;
  try {
    r = schedule::wasserstein_schedule(op, slice, o);
  } catch (const error& e) {
    throw error(std::string(e.what()) + (epsilon > 0 ? " (--epsilon " + a.text("epsilon") + ")" : ""));
  }
  const double seconds = progress.seconds();
  detail::require(r->path.length > 0, data_path.string(), ": ", op_name, " up to level ", max_level,
                  " does not change these images (every distance M(D_i, D_j) is 0), so there is nothing to schedule");
  noise_stage.mode = schedule::noise_mode::fixed;  // a tabulated path always follows a noise stage
  r->schedule.save_json(json_path, {{"image", {s[1], s[2], s[3]}}, {"noise", noise_stage}});

  // The plot: the level against t, the path's nodes marked, the noise stage and train's default beside it.
  const schedule::noise_stage_options noise = o.noise;
  const std::size_t K = r->path_levels.size();
  char path_label[96];
  std::snprintf(path_label, sizeof path_label, "Wasserstein path (%zu nodes, eps %.4g)", K, r->path.epsilon);
  data::plot_series path{path_label, {}, r->path_levels, true, false};
  for (std::size_t k = 0; k < K; ++k)
    path.x.push_back(noise.noise_fraction + (1.0 - noise.noise_fraction) * static_cast<double>(k) /
                                                static_cast<double>(K - 1));
  char stage_label[96];
  std::snprintf(stage_label, sizeof stage_label, "noise stage (sigma %g -> %g)", noise.sigma_min, noise.sigma_max);
  data::plot_series stage{stage_label, {0.0, noise.noise_fraction},
                          {op.min_level(), op.min_level()}, false, false};
  schedule::two_stage_parameters p = default_training_schedule(op_name, s[2], s[3]);
  p.level_max = max_level;
  const schedule::two_stage two(p);
  data::plot_series reference{std::string("train's default (") + (is_blur(op_name) ? "geometric" : "linear") + ")",
                              {}, {}, false, true};
  for (int k = 0; k <= 200; ++k) {
    reference.x.push_back(k / 200.0);
    reference.y.push_back(two.level(k / 200.0));
  }
  data::plot_options po;
  po.title = op_name + ": Wasserstein schedule (" + metric + ", " + std::to_string(s[0]) + " images)";
  po.x_label = "t";
  po.y_label = level_axis_name(op_name);
  data::write_line_plot(png_path, {reference, stage, path}, po);  // the path drawn last, on top

  std::ostringstream levels_text;
  for (std::size_t k = 0; k < K; ++k) levels_text << (k ? " " : "") << r->path_levels[k];
  std::printf("wrote %s and %s\n", json_path.c_str(), png_path.c_str());
  std::printf("epsilon %.6g (%zu bisection steps), %zu nodes, path length %.6g\n", r->path.epsilon,
              r->path.bisection_steps, K, r->path.length);
  std::printf("pairs evaluated %zu (%s), corruptions %zu (of %zu images each), %.2f s\n", r->path.evaluations,
              metric.c_str(), r->corruptions,
              metric == "sinkhorn" ? std::min<std::size_t>(points, s[0]) : s[0], seconds);
  std::printf("levels: %s\n", levels_text.str().c_str());
  return 0;
}

}  // namespace softdiff::cli
