// softdiff train: trains RefUNet with the Soft Score Matching loss (eq. 12; or the clean-image
// loss or eq. 7 for the paper's ablations) on a dataset, with periodic checkpoints
// (DIR/checkpoint.safetensors) and sample grids (DIR/samples_stepN.png, momentum sampler,
// Algorithm 2, with the EMA weights). The recipe's options, their defaults and the checkpoint's
// metadata come from model_description.hpp. Running it again on the same DIR resumes exactly
// where the checkpoint left off (train/trainer.hpp); a recipe option given then must match the
// checkpoint, and is refused naming the option otherwise.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "args.hpp"
#include "commands.hpp"
#include "image_input.hpp"
#include "model_description.hpp"
#include "model_setup.hpp"
#include "operators.hpp"
#include "process_group.hpp"
#include "softdiff/data/dataset.hpp"
#include "softdiff/data/json.hpp"
#include "softdiff/data/output_file.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/schedule/mse_matching.hpp"
#include "softdiff/train/trainer.hpp"

namespace softdiff::cli {

namespace {

namespace fs = std::filesystem;

/// The rows of an earlier loss.csv up to `step` (with its header), or just the header.
std::string read_loss_curve(const fs::path& file, std::int64_t step) {
  std::string kept = "step,loss\n";
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line) || line != "step,loss") return kept;
  while (std::getline(in, line)) {
    char* end = nullptr;
    const long long s = std::strtoll(line.c_str(), &end, 10);
    if (end == line.c_str() || *end != ',' || s > step) break;
    kept += line + "\n";
  }
  return kept;
}

using clock_type = std::chrono::steady_clock;
using trainer_type = train::trainer<any_operator<float>, any_schedule, nn::refunet<float>, process_group>;

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted.store(true); }

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const auto s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

/// Throws a usage error if option `name` was given with a value other than the checkpoint's.
void require_same(const arg_parser& a, const std::string& name, const std::string& mine, const std::string& theirs,
                  const fs::path& ckpt) {
  if (a.given(name) && mine != theirs)
    throw usage_error("--" + name + " " + mine + " differs from " + theirs + " in " + ckpt.string() +
                      ", which this run would resume; give the same value (or leave it out), or train into another --out");
}

/// A `softdiff schedule` file for operator `op`: the table, and the file's JSON in `json` (for
/// its "image" and "noise", which files written before they were recorded lack).
schedule::tabulated load_schedule_file(const std::string& path, const std::string& op, nlohmann::json& json) {
  schedule::tabulated table = schedule::tabulated::load_json(path);
  const std::string file_op = cli_operator_name(table.operator_name());
  if (!file_op.empty() && file_op != op)
    throw usage_error("--schedule " + path + " was made for operator '" + file_op + "' but --op is '" + op + "'");
  std::ifstream in(path, std::ios::binary);
  json = data::parse_json(in, "--schedule " + path);  // load_json has checked it already
  return table;
}

/// The schedule of a new run (section 3.3): the two-stage default (fixed or growing noise),
/// the Wasserstein table of --schedule, or MSE matching on the training images (eq. 55,
/// schedule/mse_matching.hpp), tabulated and stored in the checkpoint like a Wasserstein one.
any_schedule make_training_schedule(const arg_parser& a, const model_description& d, const batch<float>& images,
                                    std::optional<schedule::tabulated>& table) {
  const shape4 s = shape_of(images);
  schedule::two_stage_parameters p = default_training_schedule(d.op, s[2], s[3]);
  if (a.given("max-level")) p.level_max = a.number("max-level");
  switch (d.kind) {
    case schedule_kind::wasserstein: return any_schedule(std::move(*table));
    case schedule_kind::mse_matched: {
      schedule::mse_matching_options o;
      o.levels.count = 128;  // candidates and images: a few seconds on 2 cores, at the start of training
      o.points = 256;
      o.levels.last = p.level_max;
      o.levels.spacing = p.level_growth == schedule::growth::geometric ? schedule::level_spacing::geometric
                                                                     : schedule::level_spacing::linear;
      o.seed = d.recipe.seed;
      o.noise.sigma_min = d.noise.sigma_min;
      o.noise.sigma_max = d.noise.sigma_max;
      o.noise.noise_fraction = d.noise.noise_fraction;
      const auto t0 = clock_type::now();
      schedule::mse_matching_result r = schedule::mse_matching_schedule(make_operator(d), images, o);
      std::cerr << "softdiff train: mse-matched schedule (eq. 55) on " << std::min<std::size_t>(o.points, s[0])
                << " images, " << o.levels.count << " candidate levels up to " << o.levels.last << ": "
                << std::chrono::duration<double>(clock_type::now() - t0).count() << " s\n";
      return any_schedule(std::move(r.schedule));
    }
    case schedule_kind::geometric: break;
  }
  if (a.given("min-level")) p.level_min = a.number("min-level");
  p.sigma_min = d.noise.sigma_min;
  p.sigma_max = d.noise.sigma_max;
  p.noise_fraction = d.noise.noise_fraction;
  p.noise = d.noise.mode;
  return any_schedule(schedule::two_stage(p));
}


int train_on(process_group group, const arguments& args);

}  // namespace

/// Data-parallel over an MPI job's processes when started by mpirun / srun (process_group.hpp):
/// an error that only some processes met ends the whole job, naming the rank.
int run_train(const arguments& args) {
  process_group group = process_group::start();
  if (group.size() == 1) return train_on(group, args);
  try {
    return train_on(group, args);
  } catch (const usage_error& e) {
    if (group.rank() == 0) std::cerr << "softdiff train: " << e.what() << "\n(run 'softdiff train --help' for usage)\n";
    group.abort(2);
  } catch (const std::exception& e) {
    std::cerr << "softdiff train: error (rank " << group.rank() << " of " << group.size() << "): " << e.what() << "\n";
    group.abort(1);
  }
}

namespace {

int train_on(process_group group, const arguments& args) {
  const bool root = group.rank() == 0;  // only rank 0 writes files and prints
  std::ostream& log = std::cerr;
  arg_parser a("softdiff train", "train a Soft Diffusion model (RefUNet) on images; resumes from DIR/checkpoint.safetensors");
  a.required("out", "DIR", "output directory: checkpoint.safetensors, samples_stepN.png")
      .option("data", "PATH", "training images: an IDX file or directory (MNIST layout), CIFAR-10 batches, PNG folder, "
                              "or a float .npy batch [N, C, H, W] in [-1, 1]; default: Fashion-MNIST train set in " +
                                  data::default_fashion_mnist_dir().string())
      .option("steps", "N", "train until N steps in total (counting steps of earlier runs in DIR)")
      .option("minutes", "M", "stop after M minutes of this run (with --steps: whichever comes first)");
  // the recipe: names, help and defaults from the one table of model_description.hpp
  const model_description defaults;
  for (const recipe_option& o : recipe_options())
    a.option(o.name, o.value_name,
             std::string(o.name) == "op" ? "corruption operator (" + operator_names() + ")" : std::string(o.help),
             o.value(defaults));
  a.option("schedule", "FILE", "tabulated schedule (`softdiff schedule` JSON); implies --schedule-kind wasserstein")
      .option("max-level", "L", "geometric and mse-matched schedules: operator level at t = 1 (default: gaussian-blur "
                                "and fft-conv 18 * size / 32, dct-blur size, mask 1)")
      .option("min-level", "L", "geometric schedule: operator level just after the noise stage (default: blur 0.01)")
      .option("half-size", "N", "kernel half size of gaussian-blur and fft-conv (default: the image size)")
      .option("checkpoint-every", "N", "write the checkpoint every N steps (and at the end)", "500")
      .option("sample-every", "N", "write a sample grid every N steps (and at the end); 0: only at the end", "1000")
      .option("loss-every", "N", "add the mean loss of every N steps to DIR/loss.csv (the loss curve)", "100")
      .option("sample-count", "K", "images in each sample grid", "16")
      .option("sample-steps", "N", "momentum-sampler steps for the sample grids", "50")
      .option("limit", "N", "use only the first N images of the data")
      .flag("pad", "pad images (centred, with -1) to the next size the network takes")
      .epilog("Images are in [-1, 1]; the paper's (Song et al.'s) are in [0, 1], so its sigma = 0.1 is --sigma-max 0.2\n"
              "here (docs/guide.md, \"The training recipe\").\n\n"
              "Examples:\n  softdiff train --out run1 --minutes 10 --base-channels 16\n"
              "  softdiff train --out run1 --steps 20000        # resumes run1\n"
              "  softdiff train --out paper --sigma-max 0.2 --weighting inverse-variance --steps 20000\n"
              "  softdiff train --out grow --noise growing --loss dsm --steps 1000\n"
              "  softdiff train --data cifar-10-batches-bin --out c10 --steps 1000 --op dct-blur\n");
  if (!a.parse(args, std::cout)) return 0;
  if (!a.given("steps") && !a.given("minutes")) throw usage_error("give --steps N or --minutes M (or both)");

  const fs::path out = a.text("out");
  if (fs::exists(out) && !fs::is_directory(out))
    throw usage_error("--out " + out.string() + " is a file; it must name a directory (made if absent)");
  if (root) data::detail::remove_stale_temporaries(out);  // of a run killed while writing (docs/reliability.md)
  const fs::path ckpt = out / "checkpoint.safetensors";
  const long steps_target = a.given("steps") ? a.integer("steps", 1, std::numeric_limits<long>::max()) : -1;
  const double minutes = a.given("minutes") ? a.number("minutes") : -1.0;
  if (a.given("minutes") && !(minutes > 0)) throw usage_error("--minutes must be > 0");
  const long checkpoint_every = a.integer("checkpoint-every", 1, std::numeric_limits<long>::max());
  const long sample_every = a.integer("sample-every", 0, std::numeric_limits<long>::max());
  const long loss_every = a.integer("loss-every", 1, std::numeric_limits<long>::max());
  const auto sample_count = static_cast<std::size_t>(a.integer("sample-count", 1, 1024));
  const auto sample_steps = static_cast<std::size_t>(a.integer("sample-steps", 1, 100000));
  const std::size_t limit = a.given("limit") ? static_cast<std::size_t>(a.integer("limit", 1, std::numeric_limits<long>::max()))
                                             : data::no_limit;

  // What the run is: from the options, or from the checkpoint when resuming. Every option is
  // checked here, before the data are read.
  model_description desc;
  for (const recipe_option& o : recipe_options()) o.set(desc, a.text(o.name));
  desc.data = fs::absolute(a.given("data") ? fs::path(a.text("data")) : data::default_fashion_mnist_dir())
                  .lexically_normal()
                  .string();
  data::require_utf8(desc.data, "the --data path");  // the checkpoint records it
  desc.limit = limit;
  desc.pad = a.flag_set("pad");

  std::optional<data::safetensors_file> resume;
  std::error_code ec;
  const bool resuming = fs::exists(ckpt, ec);
  std::optional<schedule::tabulated> table;  // --schedule FILE
  nlohmann::json table_json;
  if (resuming) {
    resume = data::read_safetensors(ckpt);
    model_description theirs = read_description(*resume);
    detail::require(theirs.schedule.has_value() && theirs.final_distribution.has_value() && !theirs.image.empty(),
                    "checkpoint '", ckpt.string(), "': __metadata__ softdiff lacks \"schedule\", \"image\" or "
                    "\"final_distribution\"");
    for (const recipe_option& o : recipe_options())
      require_same(a, o.name, o.value(desc), o.value(theirs), ckpt);
    if (a.given("data")) require_same(a, "data", desc.data, theirs.data, ckpt);
    for (const char* fixed : {"schedule", "min-level", "max-level", "half-size", "limit", "pad"})
      if (a.given(fixed))
        throw usage_error(std::string("--") + fixed + " cannot change when resuming " + ckpt.string() +
                          " (the checkpoint fixes it); leave it out or train into another --out");
    desc = std::move(theirs);
  } else {
    if (a.given("schedule")) {
      if (a.given("schedule-kind") && desc.kind != schedule_kind::wasserstein)
        throw usage_error("--schedule-kind " + a.text("schedule-kind") +
                          " contradicts --schedule FILE, which gives a wasserstein schedule");
      desc.kind = schedule_kind::wasserstein;
    } else if (desc.kind == schedule_kind::wasserstein) {
      throw usage_error("--schedule-kind wasserstein needs --schedule FILE (written by `softdiff schedule`)");
    }
    if (desc.kind == schedule_kind::wasserstein)
      for (const char* n : {"sigma-min", "sigma-max", "noise-fraction", "noise", "max-level"})
        if (a.given(n))
          throw usage_error(std::string("--") + n + " " + a.text(n) + " does not apply to --schedule " +
                            a.text("schedule") + ": the file fixes the levels and sigma(t); make the file with "
                            "`softdiff schedule --" + n + " ...` instead");
    if (a.given("min-level") && desc.kind != schedule_kind::geometric)
      throw usage_error("--min-level applies to --schedule-kind geometric, not " + schedule_kind_name(desc.kind));
    if (a.given("noise-fraction") && desc.noise.mode == schedule::noise_mode::growing)
      throw usage_error("--noise-fraction " + a.text("noise-fraction") +
                        " applies to --noise fixed; with --noise growing there is no separate noise stage");
    check_recipe(desc);
    if (a.given("half-size") && !find_operator(desc.op).takes_half_size)
      throw usage_error("--half-size applies only to gaussian-blur and fft-conv");
    if (desc.kind == schedule_kind::wasserstein) {
      table = load_schedule_file(a.text("schedule"), desc.op, table_json);
      if (table_json.contains("noise")) {
        try {
          desc.noise = table_json["noise"].get<noise_recipe>();
        } catch (const std::exception& e) {
          throw error("schedule " + a.text("schedule") + ": \"noise\": " + e.what());
        }
      }
    }
  }

  // Data: every process loads all of it (each draws the same global batches).
  std::string data_description;
  batch<float> images;
  if (group.size() == 1) {
    images = load_images(desc.data, desc.limit, data_description);
  } else {
    std::string problem;  // a process without the data names itself and the path; all stop
    try {
      images = load_images(desc.data, desc.limit, data_description);
    } catch (const std::exception& e) {
      problem = e.what();
    }
    backend::require_all_ok(group, problem);
  }
  if (desc.pad) images = data::pad_to_multiple(images, desc.network.size_multiple());
  const shape4 s = shape_of(images);
  detail::require(s[0] > 0, desc.data, ": no images");
  const std::vector<std::size_t> image{s[1], s[2], s[3]};
  if (resuming)
    detail::require(desc.image == image, desc.data, ": images are ", s[1], "x", s[2], "x", s[3], " but ",
                    ckpt.string(), " was trained on ", desc.image.at(0), "x", desc.image.at(1), "x", desc.image.at(2));
  if (table_json.contains("image") && table_json["image"] != nlohmann::json(image))
    throw usage_error("--schedule " + a.text("schedule") + " was made for " + data::json_excerpt(table_json["image"]) +
                      " images (C, H, W) but the training images are " + nlohmann::json(image).dump() +
                      "; make a schedule for these images with `softdiff schedule`");
  if (group.size() > 1) {
    // Processes that differ in options, data or checkpoint would train different models.
    std::string args_text;
    for (const std::string& x : args) args_text += (args_text.empty() ? "" : " ") + x;
    std::uint64_t hash = 1469598103934665603ull;  // FNV-1a of the image bytes
    const auto* bytes = reinterpret_cast<const unsigned char*>(images.data());
    for (std::size_t i = 0; i < images.size() * sizeof(float); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
    std::ostringstream id;
    id << "command line: " << args_text << "\ndata: " << desc.data << ", " << s[0] << " images " << s[1] << "x" << s[2]
       << "x" << s[3] << ", FNV-1a " << std::hex << hash << std::dec << "\ncheckpoint: "
       << (resuming ? nn::metadata_json(*resume, "softdiff").dump() : std::string("none (a new run)")) << "\n";
    backend::require_same_everywhere(group, id.str(), "configuration (command line, data, checkpoint)");
  }
  desc.image = image;
  desc.network.in_channels = s[1];
  desc.network.check_image_size(s[2], s[3], ("softdiff train: " + desc.data).c_str());

  // Model.
  if (!resuming) {
    if (a.given("half-size")) desc.half_size = static_cast<int>(a.integer("half-size", 0, 1 << 20));
    else if (find_operator(desc.op).takes_half_size) desc.half_size = static_cast<int>(std::max(s[2], s[3]));
    desc.schedule.emplace(make_training_schedule(a, desc, images, table));
  }
  nn::refunet<float> net(desc.network, desc.recipe.seed);
  model_type model(make_operator(desc), *desc.schedule, std::move(net));
  if (resuming) model.set_final_distribution(*desc.final_distribution);
  const train::trainer_config tc = desc.recipe;
  trainer_type tr(std::move(model), std::move(images), tc, group);
  if (resume) tr.load_checkpoint(*resume);
  resume.reset();
  desc.final_distribution = *tr.model().final_distribution();
  const auto [meta, extra] = checkpoint_metadata(desc);

  if (root) fs::create_directories(out);
  const std::int64_t start_step = tr.steps_done();
  if (steps_target >= 0 && start_step >= steps_target) {
    if (root) std::cout << ckpt.string() << " is at step " << start_step << " >= --steps " << steps_target << "; nothing to do\n";
    return 0;
  }
  if (root)
    log << "softdiff train: " << (start_step > 0 ? "resuming at step " + std::to_string(start_step) : std::string("starting"))
            << ": " << data_description << ", " << s[0] << " images " << s[1] << "x" << s[2] << "x" << s[3]
            << "; RefUNet " << nn::to_json_text(desc.network) << ", " << tr.model().network().parameter_count()
            << " parameters; operator " << desc.op << ", schedule " << schedule_kind_name(desc.kind) << " ("
            << desc.schedule->name() << ", noise " << schedule::noise_mode_name(desc.noise.mode) << ", sigma "
            << desc.noise.sigma_min << " -> " << desc.noise.sigma_max << "); loss " << loss::loss_kind_name(tc.loss)
            << ", weighting " << train::weighting_name(tc.weighting) << "; precision "
            << nn::precision_name(tc.arithmetic) << "; batch " << tc.batch_size << ", seed "
            << tc.seed << (group.size() > 1 ? "; " + group.name() + " (data-parallel)" : std::string()) << "\n";

  auto save = [&] { tr.save_checkpoint(ckpt, meta, extra); };
  auto write_samples = [&]() -> fs::path {
    if (!root) return {};
    const fs::path png = out / ("samples_step" + std::to_string(tr.steps_done()) + ".png");
    const batch<float> x = tr.with_ema_weights([&](model_type& m) {
      return m.sample<sampler::momentum<float>>(sample_count, sample_steps, tc.seed + 1);
    });
    std::size_t cols = 1;
    while (cols * cols < sample_count) ++cols;
    data::write_png_grid(png, x, cols);
    return png;
  };

  const auto t0 = clock_type::now();
  const double budget = minutes > 0 ? minutes * 60.0 : std::numeric_limits<double>::infinity();
  auto elapsed = [&] { return std::chrono::duration<double>(clock_type::now() - t0).count(); };
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const double print_every = tty ? 0.25 : 15.0;
  double last_print = -1e9, loss_sum = 0, train_seconds = 0;
  long loss_n = 0;
  interrupted.store(false);
  auto previous_handler = std::signal(SIGINT, on_interrupt);
  struct restore_handler {
    void (*h)(int);
    ~restore_handler() { std::signal(SIGINT, h); }
  } restore{previous_handler};

  // DIR/loss.csv: "step,loss", the mean loss of steps (step - loss_every, step]; a resumed run
  // keeps the rows up to its checkpoint's step. Rewritten whole (temporary file, rename) per row.
  const fs::path curve_file = out / "loss.csv";
  std::string curve = read_loss_curve(curve_file, start_step);
  double curve_sum = 0;
  long curve_n = 0;

  std::int64_t last_saved = start_step;
  try {
    // rank 0 decides whether to go on (its clock and its interrupt), so that all stop at one step
    while (group.agree((steps_target < 0 || tr.steps_done() < steps_target) && elapsed() < budget && !interrupted.load())) {
      const auto s0 = clock_type::now();
      const train::step_result r = tr.step();
      train_seconds += std::chrono::duration<double>(clock_type::now() - s0).count();
      loss_sum += r.loss;
      ++loss_n;
      const std::int64_t done = tr.steps_done() - start_step;
      curve_sum += r.loss;
      ++curve_n;
      if (r.step % loss_every == 0 && root) {
        char row[64];
        std::snprintf(row, sizeof row, "%lld,%.6g\n", static_cast<long long>(r.step), curve_sum / curve_n);
        curve += row;
        data::write_text_file(curve_file, curve);
      }
      if (r.step % loss_every == 0) curve_sum = 0, curve_n = 0;
      if (r.step % checkpoint_every == 0) {
        save();
        last_saved = r.step;
      }
      if (sample_every > 0 && r.step % sample_every == 0) write_samples();
      const double now = elapsed();
      if (root && now - last_print >= print_every) {
        const double rate = static_cast<double>(done) / std::max(train_seconds, 1e-9);  // steps per second
        double eta = budget - now;
        if (steps_target >= 0) eta = std::min(eta, static_cast<double>(steps_target - r.step) / std::max(rate, 1e-9));
        char line[200];
        std::snprintf(line, sizeof line, "step %lld%s  loss %.5f  lr %.2e  %.1f img/s  ETA %s",  // img/s: all processes
                      static_cast<long long>(r.step),
                      steps_target >= 0 ? ("/" + std::to_string(steps_target)).c_str() : "", loss_sum / loss_n,
                      r.learning_rate, rate * static_cast<double>(tc.batch_size), format_duration(eta).c_str());
        std::cerr << (tty ? "\r" : "") << line << (tty ? "   " : "\n") << std::flush;
        last_print = now;
        loss_sum = 0;
        loss_n = 0;
      }
    }
  } catch (const train::step_error& e) {
    if (tty && root) std::cerr << "\n";
    throw error(std::string(e.what()) + "\n" +
                (last_saved > 0 ? ckpt.string() + " (step " + std::to_string(last_saved) + ") is kept unchanged"
                                : std::string("no checkpoint was written")));
  }
  if (tty && root) std::cerr << "\n";
  if (tr.steps_done() != last_saved) save();
  const fs::path png = write_samples();
  const double secs = elapsed();
  if (root)
    std::cout << (interrupted.load() ? "interrupted; " : "") << "trained steps " << start_step << " -> " << tr.steps_done()
            << " in " << format_duration(secs) << " ("
            << static_cast<double>(tr.steps_done() - start_step) / std::max(train_seconds, 1e-9) << " steps/s); wrote "
            << ckpt.string() << " and " << png.string() << "\n";
  return interrupted.load() ? 130 : 0;
}

}  // namespace

}  // namespace softdiff::cli
