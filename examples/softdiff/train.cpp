// softdiff train: trains RefUNet with the Soft Score Matching loss (eq. 12) on a dataset,
// with periodic checkpoints (DIR/checkpoint.safetensors) and sample grids
// (DIR/samples_stepN.png, momentum sampler, Algorithm 2, with the EMA weights).
// Running it again on the same DIR resumes exactly where the checkpoint left off
// (train/trainer.hpp); options that would change the run must then match the checkpoint.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
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
#include "model_setup.hpp"
#include "operators.hpp"
#include "softdiff/data/dataset.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/train/trainer.hpp"

namespace softdiff::cli {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using trainer_type = train::trainer<any_operator<float>, any_schedule, nn::refunet<float>>;

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted.store(true); }

std::vector<std::size_t> parse_mult(const std::string& s) {
  std::vector<std::size_t> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0) throw usage_error("--channel-mult: '" + s + "' is not a list of positive integers like 1,2,2");
    out.push_back(static_cast<std::size_t>(v));
  }
  if (out.empty()) throw usage_error("--channel-mult is empty");
  return out;
}

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

std::string number_text(double v) { return nlohmann::json(v).dump(); }

}  // namespace

int run_train(const arguments& args) {
  arg_parser a("softdiff train", "train a Soft Diffusion model (RefUNet) on images; resumes from DIR/checkpoint.safetensors");
  a.required("out", "DIR", "output directory: checkpoint.safetensors, samples_stepN.png")
      .option("data", "PATH", "training images: an IDX file or directory (MNIST layout), CIFAR-10 batches, PNG folder, "
                              "or a float .npy batch [N, C, H, W] in [-1, 1]; default: Fashion-MNIST train set in " +
                                  data::default_fashion_mnist_dir().string())
      .option("steps", "N", "train until N steps in total (counting steps of earlier runs in DIR)")
      .option("minutes", "M", "stop after M minutes of this run (with --steps: whichever comes first)")
      .option("batch", "B", "images per step", "64")
      .option("op", "NAME", "corruption operator (" + operator_names() + ")", "gaussian-blur")
      .option("schedule", "FILE", "tabulated schedule (softdiff-schedule JSON) instead of the two-stage default")
      .option("max-level", "L", "two-stage schedule: operator level at t = 1 (default: gaussian-blur and fft-conv 18 * size / 32, dct-blur size, mask 1)")
      .option("min-level", "L", "two-stage schedule: operator level just after the noise stage (default: blur 0.01)")
      .option("half-size", "N", "kernel half size of gaussian-blur and fft-conv (default: the image size)")
      .option("seed", "S", "seed of initialisation, minibatches, times and noise", "0")
      .option("base-channels", "C", "RefUNet base channels", "32")
      .option("channel-mult", "LIST", "RefUNet channel multipliers per level", "1,2,2")
      .option("ema-decay", "D", "decay of the weights' moving average used for sampling", "0.9999")
      .option("lr", "LR", "Adam learning rate", "2e-4")
      .option("warmup", "N", "linear learning-rate warm-up steps", "5000")
      .option("weighting", "W", "loss weighting w(t) of eq. 12: unit or inverse-sigma2", "unit")
      .option("checkpoint-every", "N", "write the checkpoint every N steps (and at the end)", "500")
      .option("sample-every", "N", "write a sample grid every N steps (and at the end); 0: only at the end", "1000")
      .option("sample-count", "K", "images in each sample grid", "16")
      .option("sample-steps", "N", "momentum-sampler steps for the sample grids", "50")
      .option("limit", "N", "use only the first N images of the data")
      .flag("pad", "pad images (centred, with -1) to the next size the network takes")
      .epilog("Examples:\n  softdiff train --out run1 --minutes 10 --base-channels 16\n"
              "  softdiff train --out run1 --steps 20000        # resumes run1\n"
              "  softdiff train --data cifar-10-batches-bin --out c10 --steps 1000 --op dct-blur\n");
  if (!a.parse(args, std::cout)) return 0;
  if (!a.given("steps") && !a.given("minutes")) throw usage_error("give --steps N or --minutes M (or both)");

  const fs::path out = a.text("out");
  const fs::path ckpt = out / "checkpoint.safetensors";
  const long steps_target = a.given("steps") ? a.integer("steps", 1, std::numeric_limits<long>::max()) : -1;
  const double minutes = a.given("minutes") ? a.number("minutes") : -1.0;
  if (a.given("minutes") && !(minutes > 0)) throw usage_error("--minutes must be > 0");
  const long checkpoint_every = a.integer("checkpoint-every", 1, std::numeric_limits<long>::max());
  const long sample_every = a.integer("sample-every", 0, std::numeric_limits<long>::max());
  const auto sample_count = static_cast<std::size_t>(a.integer("sample-count", 1, 1024));
  const auto sample_steps = static_cast<std::size_t>(a.integer("sample-steps", 1, 100000));
  const std::size_t limit = a.given("limit") ? static_cast<std::size_t>(a.integer("limit", 1, std::numeric_limits<long>::max()))
                                             : data::no_limit;

  // What the run is: from the options, or from the checkpoint when resuming.
  train::trainer_config tc;
  tc.seed = static_cast<std::uint64_t>(a.integer("seed", 0, std::numeric_limits<long>::max()));
  tc.batch_size = static_cast<std::size_t>(a.integer("batch", 1, 1 << 20));
  tc.ema_decay = a.number("ema-decay");
  if (!(tc.ema_decay >= 0 && tc.ema_decay < 1)) throw usage_error("--ema-decay must lie in [0, 1)");
  tc.adam.lr = a.number("lr");
  if (!(tc.adam.lr > 0)) throw usage_error("--lr must be > 0");
  tc.adam.warmup_steps = a.integer("warmup", 0, std::numeric_limits<long>::max());
  try {
    tc.weighting = train::weighting_from_name(a.text("weighting"));
  } catch (const error& e) {
    throw usage_error(std::string("--weighting: ") + e.what());
  }
  nn::refunet_config net_cfg;
  net_cfg.base_channels = static_cast<std::size_t>(a.integer("base-channels", 4, 4096));
  net_cfg.channel_mult = parse_mult(a.text("channel-mult"));
  std::string op_name = a.text("op");
  (void)find_operator(op_name);
  fs::path data_path = a.given("data") ? fs::path(a.text("data")) : data::default_fashion_mnist_dir();
  bool pad = a.flag_set("pad");

  std::optional<data::safetensors_file> resume;
  nlohmann::json desc = nlohmann::json::object();
  std::error_code ec;
  const bool resuming = fs::exists(ckpt, ec);
  if (resuming) {
    resume = data::read_safetensors(ckpt);
    desc = nn::metadata_json(*resume, "softdiff");
    const train::trainer_config theirs = train::trainer_config_from_json(desc, "checkpoint '" + ckpt.string() + "'");
    nn::refunet_config their_net;
    try {
      their_net = nn::refunet_config_from_json_text(resume->metadata.at(nn::refunet_config::metadata_key));
    } catch (const std::exception& e) {
      throw error("checkpoint '" + ckpt.string() + "': refunet_config: " + e.what());
    }
    require_same(a, "seed", std::to_string(tc.seed), std::to_string(theirs.seed), ckpt);
    require_same(a, "batch", std::to_string(tc.batch_size), std::to_string(theirs.batch_size), ckpt);
    require_same(a, "ema-decay", number_text(tc.ema_decay), number_text(theirs.ema_decay), ckpt);
    require_same(a, "lr", number_text(tc.adam.lr), number_text(theirs.adam.lr), ckpt);
    require_same(a, "warmup", std::to_string(tc.adam.warmup_steps), std::to_string(theirs.adam.warmup_steps), ckpt);
    require_same(a, "weighting", train::weighting_name(tc.weighting), train::weighting_name(theirs.weighting), ckpt);
    require_same(a, "base-channels", std::to_string(net_cfg.base_channels), std::to_string(their_net.base_channels), ckpt);
    require_same(a, "channel-mult", nlohmann::json(net_cfg.channel_mult).dump(), nlohmann::json(their_net.channel_mult).dump(), ckpt);
    const std::string their_op = desc.at("operator").at("name").get<std::string>();
    require_same(a, "op", op_name, their_op, ckpt);
    const std::string their_data = desc.value("data", std::string());
    if (a.given("data") && fs::absolute(data_path).lexically_normal().string() != their_data)
      require_same(a, "data", fs::absolute(data_path).lexically_normal().string(), their_data, ckpt);
    for (const char* fixed : {"schedule", "min-level", "max-level", "half-size", "limit", "pad"})
      if (a.given(fixed))
        throw usage_error(std::string("--") + fixed + " cannot change when resuming " + ckpt.string() +
                          " (the checkpoint fixes it); leave it out or train into another --out");
    tc = theirs;
    net_cfg = their_net;
    op_name = their_op;
    data_path = their_data;
    pad = desc.value("pad", false);
  }

  // Data.
  std::string data_description;
  const std::size_t data_limit = resuming ? desc.value("limit", data::no_limit) : limit;
  batch<float> images = load_images(data_path, data_limit, data_description);
  if (pad) images = data::pad_to_multiple(images, net_cfg.size_multiple());
  const shape4 s = shape_of(images);
  detail::require(s[0] > 0, data_path.string(), ": no images");
  if (resuming) {
    const auto img = desc.at("image").get<std::vector<std::size_t>>();
    detail::require(img == std::vector<std::size_t>{s[1], s[2], s[3]}, data_path.string(), ": images are ", s[1], "x",
                    s[2], "x", s[3], " but ", ckpt.string(), " was trained on ", img.at(0), "x", img.at(1), "x", img.at(2));
  }
  net_cfg.in_channels = s[1];
  net_cfg.check_image_size(s[2], s[3], ("softdiff train: " + data_path.string()).c_str());

  // Model.
  std::optional<any_schedule> sched;
  int half_size = -1;
  if (resuming) {
    sched.emplace(any_schedule::from_json(desc.at("schedule"), "checkpoint '" + ckpt.string() + "'"));
    half_size = desc.at("operator").at("half_size").get<int>();
  } else {
    if (a.given("half-size")) half_size = static_cast<int>(a.integer("half-size", 0, 1 << 20));
    else if (find_operator(op_name).takes_half_size) half_size = static_cast<int>(std::max(s[2], s[3]));
    if (a.given("schedule")) {
      if (a.given("max-level") || a.given("min-level"))
        throw usage_error("--min-level and --max-level apply to the two-stage default, not to --schedule");
      schedule::tabulated table = schedule::tabulated::load_json(a.text("schedule"));
      const std::string file_op = cli_operator_name(table.operator_name());
      if (!file_op.empty() && file_op != op_name)
        throw usage_error("schedule " + a.text("schedule") + " is for operator '" + file_op + "' but --op is '" +
                          op_name + "'");
      sched.emplace(std::move(table));
    } else {
      schedule::two_stage_parameters p = default_training_schedule(op_name, s[2], s[3]);
      if (a.given("max-level")) p.level_max = a.number("max-level");
      if (a.given("min-level")) p.level_min = a.number("min-level");
      sched.emplace(schedule::two_stage(p));
    }
  }
  const int op_half = find_operator(op_name).takes_half_size ? half_size : -1;
  if (!resuming && half_size >= 0 && op_half < 0) throw usage_error("--half-size applies only to gaussian-blur and fft-conv");
  nn::refunet<float> net(net_cfg, tc.seed);
  model_type model(make_operator<float>(op_name, op_half), *sched, std::move(net));
  if (resuming)
    model.set_final_distribution(final_distribution_from_json(desc.at("final_distribution"), ckpt.string()));
  trainer_type tr(std::move(model), std::move(images), tc);
  if (resume) tr.load_checkpoint(*resume);
  resume.reset();

  if (!resuming) {
    desc["operator"] = {{"name", op_name}, {"half_size", op_half}};
    desc["schedule"] = sched->to_json();
    desc["data"] = fs::absolute(data_path).lexically_normal().string();
    if (limit != data::no_limit) desc["limit"] = limit;
    desc["pad"] = pad;
    desc["image"] = {s[1], s[2], s[3]};
  }
  desc["final_distribution"] = final_distribution_to_json(*tr.model().final_distribution());
  const std::map<std::string, std::string> extra{{nn::refunet_config::metadata_key, nn::to_json_text(net_cfg)}};

  fs::create_directories(out);
  const std::int64_t start_step = tr.steps_done();
  if (steps_target >= 0 && start_step >= steps_target) {
    std::cout << ckpt.string() << " is at step " << start_step << " >= --steps " << steps_target << "; nothing to do\n";
    return 0;
  }
  std::cerr << "softdiff train: " << (start_step > 0 ? "resuming at step " + std::to_string(start_step) : std::string("starting"))
            << ": " << data_description << ", " << s[0] << " images " << s[1] << "x" << s[2] << "x" << s[3]
            << "; RefUNet " << nn::to_json_text(net_cfg) << ", " << tr.model().network().parameter_count()
            << " parameters; operator " << op_name << ", schedule " << sched->name() << "; batch " << tc.batch_size
            << ", seed " << tc.seed << "\n";

  auto save = [&] { tr.save_checkpoint(ckpt, desc, extra); };
  auto write_samples = [&] {
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

  std::int64_t last_saved = start_step;
  try {
    while ((steps_target < 0 || tr.steps_done() < steps_target) && elapsed() < budget && !interrupted.load()) {
      const auto s0 = clock_type::now();
      const train::step_result r = tr.step();
      train_seconds += std::chrono::duration<double>(clock_type::now() - s0).count();
      loss_sum += r.loss;
      ++loss_n;
      const std::int64_t done = tr.steps_done() - start_step;
      if (r.step % checkpoint_every == 0) {
        save();
        last_saved = r.step;
      }
      if (sample_every > 0 && r.step % sample_every == 0) write_samples();
      const double now = elapsed();
      if (now - last_print >= print_every) {
        const double rate = static_cast<double>(done) / std::max(train_seconds, 1e-9);  // steps per second
        double eta = budget - now;
        if (steps_target >= 0) eta = std::min(eta, static_cast<double>(steps_target - r.step) / std::max(rate, 1e-9));
        char line[200];
        std::snprintf(line, sizeof line, "step %lld%s  loss %.5f  lr %.2e  %.1f img/s  ETA %s",
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
    if (tty) std::cerr << "\n";
    throw error(std::string(e.what()) + "\n" +
                (last_saved > 0 ? ckpt.string() + " (step " + std::to_string(last_saved) + ") is kept unchanged"
                                : std::string("no checkpoint was written")));
  }
  if (tty) std::cerr << "\n";
  if (tr.steps_done() != last_saved) save();
  const fs::path png = write_samples();
  const double secs = elapsed();
  std::cout << (interrupted.load() ? "interrupted; " : "") << "trained steps " << start_step << " -> " << tr.steps_done()
            << " in " << format_duration(secs) << " ("
            << static_cast<double>(tr.steps_done() - start_step) / std::max(train_seconds, 1e-9) << " steps/s); wrote "
            << ckpt.string() << " and " << png.string() << "\n";
  return interrupted.load() ? 130 : 0;
}

}  // namespace softdiff::cli
