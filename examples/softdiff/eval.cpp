// softdiff eval: sample quality of a checkpoint for several samplers, step counts and sampling
// seeds, in the manner of Soft Diffusion's Figure 3 (FID against the number of function
// evaluations). For each sampler, step count and seed it draws K samples (in chunks of --chunk,
// so that memory does not grow with K), optionally clips them to the data range [-1, 1], and
// measures, against held-out images (default: the Fashion-MNIST test split), the Frechet
// distance of the penultimate features of a small classifier (nn/classifier.hpp), the sliced
// Wasserstein distance in pixel space, and precision / recall on k-NN manifolds of the features
// (metrics/sample_quality.hpp). Beside every result stands the floor: the Frechet distance of K
// training images to the same held-out set. Settings are summarised over seeds (mean, max - min)
// and each sampler's best over its step sweep is reported, as the paper reports each sampler at
// its best NFE (eval_report.hpp). Writes metrics.csv, frechet_vs_nfe.png,
// samples_<sampler>_<steps>.png of the best setting, nearest_neighbours.png (appendix F.4: the
// best setting's samples beside their nearest training images) and summary.json.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "eval_options.hpp"
#include "eval_report.hpp"
#include "image_input.hpp"
#include "model_setup.hpp"
#include "samplers.hpp"
#include "softdiff/data/dataset.hpp"
#include "softdiff/data/json.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/metrics/sample_quality.hpp"
#include "softdiff/nn/classifier.hpp"
#if __has_include("classifier_path.hpp")
#include "classifier_path.hpp"
#endif
#ifndef SOFTDIFF_DEFAULT_CLASSIFIER
#define SOFTDIFF_DEFAULT_CLASSIFIER "models/fashion_mnist_classifier.safetensors"
#endif

namespace softdiff::cli {
namespace {

namespace fs = std::filesystem;

/// Throws naming both sides unless the images of `x` are C x H x W.
void require_image_shape(const batch<float>& x, const shape4& want, const std::string& what, const std::string& ckpt) {
  const shape4 s = shape_of(x);
  detail::require(s[1] == want[1] && s[2] == want[2] && s[3] == want[3], what, " has images ", s[1], "x", s[2], "x",
                  s[3], " but the checkpoint '", ckpt, "' makes ", want[1], "x", want[2], "x", want[3]);
}

/// Fraction of the values of x outside the data range [-1, 1]: what clipping would change, a
/// sign of noise the sampler left in its samples.
double outside_fraction(const batch<float>& x) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < x.size(); ++i) n += std::abs(x.data()[i]) > 1.0f;
  return static_cast<double>(n) / static_cast<double>(x.size());
}

/// x clipped to the data range [-1, 1], as writing the samples as images would.
void clip_to_data_range(batch<float>& x) {
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::clamp(x.data()[i], -1.0f, 1.0f);
}

std::string format_seconds(double s) {
  char buf[32];
  if (s < 120) std::snprintf(buf, sizeof buf, "%.1f s", s);
  else std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60.0));
  return buf;
}

}  // namespace

int run_eval(const arguments& args) {
  arg_parser a("softdiff eval",
               "sample quality against the number of network evaluations, per sampler, step count and seed "
               "(Frechet distance of classifier features, sliced Wasserstein, precision / recall), and each "
               "sampler's best over its step sweep");
  a.required("ckpt", "FILE", "checkpoint written by softdiff train")
      .required("out", "DIR", "output directory: metrics.csv, frechet_vs_nfe.png, samples_*.png, "
                              "nearest_neighbours.png, summary.json")
      .option("sampler", "NAME[,NAME]", "samplers to compare: " + sampler_help(), "naive,momentum")
      .option("steps", "N[,N]", "step counts (uniform grid from t = 1 to 0), each in [1, " +
                                    std::to_string(max_eval_steps) + "]",
              "10,20,50,100")
      .option("count", "K", "samples per setting and seed (and training images for the floor)", "500")
      .option("reference", "N", "held-out images to compare with", "10000")
      .option("test-data", "PATH", "held-out images: .npy batch, IDX file or directory (its test split), ...",
              data::default_fashion_mnist_dir().string())
      .option("train-data", "PATH", "training images, for the floor and the nearest neighbours "
                                    "(default: the checkpoint's data)")
      .option("classifier", "FILE", "feature classifier (softdiff train-classifier)", SOFTDIFF_DEFAULT_CLASSIFIER)
      .option("seed", "S", "one sampling seed (the same for every setting)", "0")
      .option("seeds", "S[,S]", "several sampling seeds: every setting is evaluated for each, and summarised "
                                "by the mean and the spread (max - min); replaces --seed")
      .option("clip", "on|off", "clip samples to the data range [-1, 1] before scoring (as saving them as "
                                "images does)", "on")
      .option("chunk", "N", "samples per network batch; memory grows with N, the samples do not depend on it",
              std::to_string(default_chunk))
      .option("k-ratio", "R", k_ratio_samplers() + ": noise k = R * sigma_{t'} of eq. 52, R in [0, 1]", "0")
      .option("precision", "P", precision_help, "float32")
      .option("neighbours", "k", "k of the k-NN manifolds of precision and recall", "3")
      .option("grid-rows", "N", "samples shown in nearest_neighbours.png (5 neighbours each)", "8")
      .epilog("The floor (frechet_floor) is the Frechet distance of K training images to the same held-out\n"
              "images: a model that reproduced the data distribution would score about that.\n"
              "Each sampler's best is its step count with the lowest mean Frechet distance over the seeds;\n"
              "the last line compares the samplers' bests, +- being the spread (max - min) over seeds.\n\n"
              "Example (figures to record: >= 2,000 samples, two seeds):\n"
              "  softdiff eval --ckpt run1/checkpoint.safetensors --sampler naive,momentum \\\n"
              "      --steps 50,100,200,400 --count 2000 --seeds 1,2 --out eval1\n");
  if (!a.parse(args, std::cout)) return 0;
  const std::vector<const sampler_entry*> samplers = sampler_list_option(a.text("sampler"));
  const std::vector<std::size_t> steps = steps_list_option(a.text("steps"));
  const auto neighbours = static_cast<std::size_t>(a.integer("neighbours", 1, 1000));
  const auto count = static_cast<std::size_t>(a.integer("count", 2, 1 << 20));
  if (count <= neighbours)
    throw usage_error("--count " + std::to_string(count) + " must exceed --neighbours " + std::to_string(neighbours));
  const auto reference = static_cast<std::size_t>(a.integer("reference", 1, 1 << 24));
  if (reference < count)
    throw usage_error("--reference " + std::to_string(reference) + " is smaller than --count " + std::to_string(count));
  if (a.given("seed") && a.given("seeds")) throw usage_error("give --seed S or --seeds S[,S], not both");
  const std::vector<std::uint64_t> seeds =
      a.given("seeds") ? seeds_list_option(a.text("seeds"))
                       : std::vector<std::uint64_t>{static_cast<std::uint64_t>(
                             a.integer("seed", 0, std::numeric_limits<long>::max()))};
  const std::string seed_text = join_seeds(seeds);
  const bool clip = clip_option(a.text("clip"));
  const auto chunk = static_cast<std::size_t>(a.integer("chunk", 1, 1 << 20));
  const double k_ratio = a.number("k-ratio");
  if (!(k_ratio >= 0 && k_ratio <= 1)) throw usage_error("--k-ratio must lie in [0, 1]");
  if (a.given("k-ratio") &&
      std::none_of(samplers.begin(), samplers.end(), [](const sampler_entry* e) { return e->takes_k_ratio; }))
    throw usage_error("--k-ratio applies to " + k_ratio_samplers() + " only");
  const auto grid_rows = static_cast<std::size_t>(a.integer("grid-rows", 1, 1000));
  const fs::path out = a.text("out");
  if (fs::exists(out) && !fs::is_directory(out))
    throw usage_error("--out " + out.string() + " is a file; it must name a directory (made if absent)");
  const std::string ckpt = a.text("ckpt");
  data::require_utf8(ckpt, "the --ckpt path");  // summary.json records it
  const fs::path classifier_file = a.text("classifier");

  // everything is read and checked before the first sample is drawn
  loaded_model m = load_model(ckpt);
  const nn::precision precision = apply_precision(m, a.text("precision"), std::cerr);
  const std::vector<std::size_t> image = m.description.image;
  detail::require(image.size() == 3, "checkpoint '", ckpt, "': its metadata lacks \"image\": [C, H, W]");
  const shape4 want{0, image[0], image[1], image[2]};
  detail::require(fs::exists(classifier_file), "classifier '", classifier_file.string(),
                  "' does not exist; train one with `softdiff train-classifier` or pass --classifier FILE");
  nn::classifier<float> classifier = nn::classifier<float>::load(classifier_file);
  const nn::classifier_config& cc = classifier.config();
  detail::require(cc.in_channels == image[0] && cc.height == image[1] && cc.width == image[2], "classifier '",
                  classifier_file.string(), "' takes ", cc.in_channels, "x", cc.height, "x", cc.width,
                  " images but the checkpoint '", ckpt, "' makes ", image[0], "x", image[1], "x", image[2]);

  const bool pad = m.description.pad;
  std::string test_description, train_description;
  batch<float> held_out = load_images(a.text("test-data"), reference, test_description, "test");
  fs::path train_path;
  if (a.given("train-data")) train_path = a.text("train-data");
  else {
    train_path = m.description.data;
    detail::require(!train_path.empty(), "checkpoint '", ckpt, "' does not name its training data; pass --train-data");
  }
  batch<float> training = load_images(train_path, data::no_limit, train_description);
  if (pad) {
    held_out = data::pad_to_multiple(held_out, m.net.size_multiple());
    training = data::pad_to_multiple(training, m.net.size_multiple());
  }
  require_image_shape(held_out, want, "the held-out data " + test_description, ckpt);
  require_image_shape(training, want, "the training data " + train_description, ckpt);
  detail::require(held_out.shape()[0] >= count, "the held-out data ", test_description, " has ", held_out.shape()[0],
                  " images, fewer than --count ", count);
  detail::require(training.shape()[0] >= count, "the training data ", train_description, " has ",
                  training.shape()[0], " images, fewer than --count ", count);

  std::error_code ec;
  fs::create_directories(out, ec);
  detail::require(fs::is_directory(out), "cannot create the output directory '", out.string(), "'");

  const std::string clip_text = clip ? "on" : "off";
  std::cerr << "eval: " << ckpt << " (step " << m.step << "), " << count << " samples per setting and seed (seeds "
            << seed_text << ", chunks of " << chunk << "), clip " << clip_text << ", " << held_out.shape()[0]
            << " held-out images (" << test_description << "), classifier " << classifier_file.string() << " ("
            << classifier.feature_count() << " features)\n";
  auto t0 = std::chrono::steady_clock::now();
  metrics::sample_quality_options qo;
  qo.neighbours = neighbours;
  metrics::sample_quality_reference<float> ref(
      held_out, training, [&classifier](const batch<float>& x) { return classifier.features(x); }, count, qo);
  std::cerr << "eval: reference statistics in "
            << format_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count())
            << "; floor (train vs held-out): Frechet " << number_cell(ref.frechet_floor()) << ", sliced W "
            << number_cell(ref.sliced_w_floor()) << "\n";

  // settings in order, the seeds of a setting one after another; the estimated remaining time
  // counts network evaluations
  std::size_t total_nfe = 0, done_nfe = 0;
  for (const sampler_entry* e : samplers)
    for (const std::size_t n : steps) total_nfe += seeds.size() * network_evaluations(m.model, *e, n);
  std::vector<eval_row> rows;
  batch<float> best_samples;  // the first seed's samples of the best setting so far
  double best_mean = 0, sampling_seconds = 0;
  const std::size_t runs = samplers.size() * steps.size() * seeds.size();
  for (const sampler_entry* e : samplers)
    for (const std::size_t n : steps) {
      const std::string name(e->name);
      batch<float> first_samples;
      for (const std::uint64_t seed : seeds) {
        eval_row r{name, n, network_evaluations(m.model, *e, n), seed, {}, 0, 0};
        std::cerr << "eval: [" << rows.size() + 1 << "/" << runs << "] " << name << ", " << n << " steps (NFE "
                  << r.nfe << "), seed " << seed << " ..." << std::flush;
        t0 = std::chrono::steady_clock::now();
        batch<float> x;
        try {
          x = draw_samples(m.model, *e, count, n, seed, k_ratio, chunk, step_ticker{});
        } catch (const error& err) {
          std::cerr << "\n";
          throw error(detail::concat("sampler ", name, " with ", n, " steps (seed ", seed, ") failed: ", err.what()));
        }
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (std::size_t i = 0; i < x.size(); ++i)
          if (!std::isfinite(x.data()[i])) {
            std::cerr << "\n";
            throw error(detail::concat("sampler ", name, " with ", n, " steps (seed ", seed,
                                       ") produced a non-finite value (", x.data()[i], ") in sample ",
                                       i / (x.size() / count), " of ", count,
                                       "; no metrics for this setting (try more steps or another sampler)"));
          }
        r.outside = outside_fraction(x);
        if (clip) clip_to_data_range(x);
        r.quality = ref.evaluate(x);
        rows.push_back(r);
        if (seed == seeds.front()) first_samples = std::move(x);
        sampling_seconds += r.seconds;
        done_nfe += r.nfe;
        const double eta = sampling_seconds / static_cast<double>(done_nfe) * static_cast<double>(total_nfe - done_nfe);
        std::cerr << " Frechet " << number_cell(r.quality.frechet) << " (floor " << number_cell(r.quality.frechet_floor)
                  << "), sliced W " << number_cell(r.quality.sliced_w) << ", precision "
                  << number_cell(r.quality.precision) << ", recall " << number_cell(r.quality.recall) << ", outside "
                  << number_cell(r.outside) << "; " << format_seconds(r.seconds)
                  << (done_nfe < total_nfe ? ", about " + format_seconds(eta) + " left" : "") << "\n";
        write_metrics_csv(out / "metrics.csv", rows, seeds.size(), clip);  // partial results survive an interruption
      }
      const eval_setting done = settings_of(rows, seeds.size()).back();
      if (seeds.size() > 1)
        std::cerr << "eval: " << name << ", " << n << " steps: Frechet mean " << number_cell(done.frechet.mean)
                  << ", spread (max - min) " << number_cell(done.frechet.spread()) << " over seeds " << seed_text
                  << "\n";
      if (best_samples.size() == 0 || done.frechet.mean < best_mean) {
        best_mean = done.frechet.mean;
        best_samples = std::move(first_samples);
      }
    }

  const std::vector<eval_setting> settings = settings_of(rows, seeds.size());
  const std::vector<eval_setting> bests = best_per_sampler(settings);
  const eval_setting& best = settings[best_setting(settings)];
  const std::string best_name = best.sampler + "_" + std::to_string(best.steps);
  const std::string comparison = comparison_line(bests, seed_text);
  write_frechet_plot(out / "frechet_vs_nfe.png", settings,
                     "Frechet vs NFE, step " + std::to_string(m.step) + ", " + std::to_string(count) +
                         " samples, " + (seeds.size() > 1 ? "mean of seeds " : "seed ") + seed_text + ", clip " +
                         clip_text);
  std::size_t columns = 1;
  const std::size_t shown = std::min<std::size_t>(count, 64);
  while (columns * columns < shown) ++columns;
  batch<float> head(shape4{shown, image[0], image[1], image[2]});
  std::copy(best_samples.data(), best_samples.data() + head.size(), head.data());
  data::write_png_grid(out / ("samples_" + best_name + ".png"), head, columns);
  const std::size_t grid_count = std::min(grid_rows, count);
  batch<float> grid_samples(shape4{grid_count, image[0], image[1], image[2]});
  std::copy(best_samples.data(), best_samples.data() + grid_samples.size(), grid_samples.data());
  const std::size_t k_grid = std::min<std::size_t>(5, training.shape()[0]);
  const metrics::neighbours nn = write_neighbour_grid(out / "nearest_neighbours.png", grid_samples, training, k_grid);

  nlohmann::json summary = {{"checkpoint", fs::absolute(ckpt).lexically_normal().string()},
                            {"checkpoint_step", m.step},
                            {"image", image},
                            {"count", count},
                            {"seeds", seeds},
                            {"spread", "max - min over seeds"},
                            {"clip", clip_text},
                            {"chunk", chunk},
                            {"precision", nn::precision_name(precision)},
                            {"trained_precision", m.trained_precision},
                            {"k_ratio", k_ratio},
                            {"neighbours", neighbours},
                            {"held_out", {{"data", test_description}, {"images", held_out.shape()[0]}}},
                            {"training", {{"data", train_description}, {"images", training.shape()[0]}}},
                            {"classifier", {{"file", classifier_file.string()}, {"info", classifier.info()}}},
                            {"frechet_floor", ref.frechet_floor()},
                            {"sliced_w_floor", ref.sliced_w_floor()},
                            {"floor", {{"frechet", ref.frechet_floor()}, {"sliced_w", ref.sliced_w_floor()},
                                       {"training_images", count}}},
                            {"results", nlohmann::json::array()},
                            {"settings", nlohmann::json::array()},
                            {"best_per_sampler", nlohmann::json::array()},
                            {"comparison", comparison},
                            {"best", setting_json(best)},
                            {"best_samples", "samples_" + best_name + ".png"},
                            {"best_samples_seed", seeds.front()}};
  for (const eval_row& r : rows) summary["results"].push_back(row_json(r));
  for (const eval_setting& g : settings) summary["settings"].push_back(setting_json(g));
  for (const eval_setting& g : bests) summary["best_per_sampler"].push_back(setting_json(g));
  std::vector<double> nearest(grid_count);
  for (std::size_t i = 0; i < grid_count; ++i) nearest[i] = nn.nearest_distance(i);
  summary["nearest_training_distance"] = nearest;
  // replace: a path that is not UTF-8 (the classifier, the data) must not fail the run at its end
  write_text_file(out / "summary.json", summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");

  std::cout << "wrote " << (out / "metrics.csv").string() << ", frechet_vs_nfe.png, samples_" << best_name
            << ".png, nearest_neighbours.png, summary.json\n\n";
  print_tables(std::cout, settings, bests, count, seed_text, clip);
  std::cout << "\nbest: " << best.sampler << " " << best.steps << " steps, NFE " << best.nfe << ", Frechet "
            << number_cell(best.frechet.mean) << " (floor " << number_cell(best.frechet_floor) << ")\n"
            << comparison << "\n";
  return 0;
}

}  // namespace softdiff::cli
