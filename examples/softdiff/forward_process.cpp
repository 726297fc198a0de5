// softdiff forward-process: one image x_0 corrupted at K times t = 0, 1/(K-1), ..., 1,
//   x_t = C_t x_0 + sigma_t eta,   eta ~ N(0, I)   (the paper's forward process, C_0 = I, sigma_0 = 0),
// one row per operator, written as one PNG. The same eta is used in every column and row,
// so the strip shows how corruption and noise grow rather than a new noise draw per cell.
// Default schedule: the paper's two-stage one (section 3.3, appendix C) as `softdiff train` makes
// it: sigma geometric from 0.01 to 0.1 over the first 20% of t, then held while the operator's
// level grows (or, with --noise growing, both grow together: appendix F.1).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "model_description.hpp"
#include "operators.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/random.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::cli {

namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

/// "gaussian_blur" (as schedule files may spell it) -> "gaussian-blur".
/// The one image x_0 ([1, C, H, W], values in [-1, 1]) from --in or the IDX data set.
batch<float> load_image(const arg_parser& a, std::size_t index, std::string& source) {
  batch<float> all;
  if (a.given("in")) {
    if (a.given("data")) throw usage_error("give either --in or --data, not both");
    source = a.text("in");
    all = data::read_npy_batch<float>(source);
  } else {
    const std::filesystem::path file = a.given("data")
                                           ? std::filesystem::path(a.text("data"))
                                           : data::fashion_mnist_file(data::default_fashion_mnist_dir(), "t10k", "images");
    source = file.string();
    all = data::read_idx_images<float>(file, index + 1);
  }
  const shape4 s = shape_of(all);
  detail::require(index < s[0], source, ": --image-index ", index, " is out of range (", s[0], " images)");
  batch<float> x(shape4{1, s[1], s[2], s[3]});
  const std::size_t n = s[1] * s[2] * s[3];
  std::copy(all.data() + index * n, all.data() + (index + 1) * n, x.data());
  check_finite(x, source.c_str());
  return x;
}

/// The paper's two-stage schedule with this operator's level range, as `softdiff train` makes
/// it (default_training_schedule, model_description.hpp), with the noise options given here.
schedule::two_stage default_schedule(const arg_parser& a, const std::string& op, const shape4& s) {
  schedule::two_stage_parameters p = default_training_schedule(op, s[2], s[3]);
  p.sigma_min = a.number("sigma-min");
  p.sigma_max = a.number("sigma-max");
  p.noise_fraction = a.number("noise-fraction");
  try {
    p.noise = schedule::noise_mode_from_name(a.text("noise"));
  } catch (const error& e) {
    throw usage_error("--noise " + a.text("noise") + ": " + e.what());
  }
  if (op != "identity" && a.given("max-level")) p.level_max = a.number("max-level");
  if (a.given("min-level")) p.level_min = a.number("min-level");
  return schedule::two_stage(p);
}

}  // namespace

int run_forward_process(const arguments& args) {
  arg_parser a("softdiff forward-process",
               "write a PNG strip of one image corrupted at increasing t, one row per operator");
  a.required("out", "STRIP.png", "output PNG (written atomically)")
      .option("image-index", "I", "which image of the data", "0")
      .option("data", "PATH", "IDX image file (.gz or plain); default: Fashion-MNIST t10k images in " +
                                  data::default_fashion_mnist_dir().string())
      .option("in", "X.npy", "take the image from this float .npy batch [N, C, H, W] (values in [-1, 1]) instead")
      .option("steps", "K", "number of columns, t = 0, 1/(K-1), ..., 1", "8")
      .option("op", "NAMES", "comma-separated operators, one row each (" + operator_names() + ")",
              "gaussian-blur,mask")
      .option("schedule", "FILE", "tabulated schedule (softdiff-schedule JSON) instead of the two-stage default; "
                                  "one operator (--op or the file's \"operator\")")
      .option("max-level", "L", "operator level at t = 1 (default: as softdiff train: gaussian-blur and fft-conv "
                                "18 * max(H, W) / 32, dct-blur max(H, W), mask 1, scale 1)")
      .option("min-level", "L", "operator level just after the noise stage (default: blur 0.01, mask and scale 0)")
      .option("sigma-min", "S", "noise sigma at the start of the noise stage",
              option_text::number_text(noise_recipe{}.sigma_min))
      .option("sigma-max", "S", "noise sigma held after the noise stage", option_text::number_text(noise_recipe{}.sigma_max))
      .option("noise-fraction", "F", "share of [0, 1] spent raising the noise",
              option_text::number_text(noise_recipe{}.noise_fraction))
      .option("noise", "MODE", "fixed (noise stage, then held) or growing (noise and level grow together, appendix F.1)",
              schedule::noise_mode_name(noise_recipe{}.mode))
      .option("half-size", "N", "kernel half size of gaussian-blur and fft-conv", std::to_string(default_half_size))
      .option("seed", "S", "seed of the noise eta", "0")
      .option("padding", "P", "pixels between the cells", "2")
      .epilog("Operator levels:\n" + operator_help() +
              "\nExamples:\n  softdiff forward-process --out strip.png\n"
              "  softdiff forward-process --in x.npy --image-index 3 --op mask --steps 5 --out mask.png\n");
  if (!a.parse(args, std::cout)) return 0;

  const auto index = static_cast<std::size_t>(a.integer("image-index", 0, 1L << 40));
  const auto steps = static_cast<std::size_t>(a.integer("steps", 2, 1024));
  const int padding = static_cast<int>(a.integer("padding", 0, 1024));
  const int half_size = a.given("half-size") ? static_cast<int>(a.integer("half-size", 0, 1 << 20)) : -1;
  const auto seed = static_cast<std::uint64_t>(a.integer("seed", 0, std::numeric_limits<long>::max()));

  std::optional<schedule::tabulated> table;
  std::vector<std::string> ops = split_list(a.text("op"));
  if (a.given("schedule")) {
    table = schedule::tabulated::load_json(a.text("schedule"));
    const std::string file_op = cli_operator_name(table->operator_name());
    if (!a.given("op")) {
      if (file_op.empty())
        throw usage_error("schedule " + a.text("schedule") + " names no operator; pass --op");
      ops = {file_op};
    }
    if (ops.size() != 1) throw usage_error("--schedule gives the levels of one operator; pass a single --op");
    if (a.given("max-level") || a.given("min-level"))
      throw usage_error("--min-level and --max-level apply to the two-stage default, not to --schedule");
    if (!file_op.empty() && file_op != ops[0])
      throw usage_error("schedule " + a.text("schedule") + " is for operator '" + table->operator_name() +
                        "' but --op is '" + ops[0] + "'");
  }
  if (ops.empty()) throw usage_error("--op names no operator");
  for (const std::string& name : ops) (void)find_operator(name);
  if (half_size >= 0 && std::none_of(ops.begin(), ops.end(), [](const std::string& n) {
        return find_operator(n).takes_half_size;
      }))
    throw usage_error("--half-size applies only to the kernel blurs, and none is among --op");

  std::string source;
  const batch<float> x0 = load_image(a, index, source);
  batch<float> eta(shape_of(x0));
  noise_source{seed, stream_for(stream_purpose::user, 0)}.fill(eta);

  std::vector<batch<float>> rows;
  std::ostringstream report;
  for (const std::string& name : ops) {
    const auto info_half = find_operator(name).takes_half_size ? half_size : -1;
    const any_operator<float> op = make_operator<float>(name, info_half);
    std::optional<schedule::two_stage> two;
    if (!table) two = default_schedule(a, name, shape_of(x0));
    batch<float> row(shape4{steps, x0.shape()[1], x0.shape()[2], x0.shape()[3]});
    batch<float> y;
    report << name << ":\n  t      sigma     level\n";
    for (std::size_t k = 0; k < steps; ++k) {
      const double t = k + 1 == steps ? 1.0 : static_cast<double>(k) / static_cast<double>(steps - 1);
      const double level = table ? table->level(t) : two->level(t);
      const double sigma = table ? table->sigma(t) : two->sigma(t);
      op.apply(level, x0, y);  // C_t x_0
      const auto s = static_cast<float>(sigma);
      float* dst = row.data() + k * y.size();
      for (std::size_t i = 0; i < y.size(); ++i) dst[i] = y.data()[i] + s * eta.data()[i];  // + sigma_t eta
      char line[96];
      std::snprintf(line, sizeof line, "  %.3f  %.5f  %.5g\n", t, sigma, level);
      report << line;
    }
    rows.push_back(std::move(row));
  }
  data::write_png_rows<float>(a.text("out"), rows, padding);
  std::cout << "wrote " << a.text("out") << ": image " << index << " of " << source << ", " << rows.size()
            << " row(s) x " << steps << " columns\n"
            << report.str();
  return 0;
}

}  // namespace softdiff::cli
