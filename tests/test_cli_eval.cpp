// softdiff eval, run as a separate process on a tiny checkpoint (RefUNet base 8, 8 x 8 images,
// 2 training steps) with a freshly initialised classifier for 8 x 8 images: metrics.csv (rows per
// seed, mean and max-min rows, exact NFE per sampler, finite values, a constant floor), the PNGs,
// summary.json, the "best:" line against the CSV minimum, several seeds and their spread, each
// sampler's best and the comparison line, --clip on/off, chunked sampling (softdiff sample with
// different --chunk gives the same bytes), and the bad-input paths (sampler names, step and
// seed lists, chunk, clip, classifier shape and file, data shape, a checkpoint whose network
// makes NaN).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/nn/classifier.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;  // run_tool, result, q, contains, read_text, read_csv (support/cli_runner.hpp)

namespace {

/// n varied c x h x w images in [-1, 1] as a float .npy file (phase `offset` tells sets apart).
fs::path write_images(const test::temp_dir& dir, const std::string& name, std::size_t n, std::size_t h,
                      std::size_t w, double offset) {
  batch<float> x(shape4{n, 1, h, w});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t p = 0; p < h * w; ++p)
      x.data()[i * h * w + p] = static_cast<float>(
          0.8 * std::sin(0.37 * static_cast<double>(p) * (1.0 + 0.05 * static_cast<double>(i % 7)) + offset + 0.9 * i));
  const fs::path p = dir / name;
  data::write_npy(p, x);
  return p;
}

/// A randomly initialised classifier for h x w images (its features are still a fixed map).
fs::path write_classifier(const test::temp_dir& dir, const std::string& name, std::size_t h, std::size_t w) {
  nn::classifier_config c;
  c.height = h;
  c.width = w;
  c.channels1 = c.channels2 = c.channels3 = c.channels4 = 8;
  c.groups = 4;
  c.feature_count = 6;
  const fs::path p = dir / name;
  nn::classifier<float>(c, 3).save(p, {{"test", true}});
  return p;
}

const std::vector<std::string> csv_header = {"sampler",   "steps",  "nfe",    "seed",
                                             "clip",      "frechet", "frechet_floor", "sliced_w",
                                             "precision", "recall", "outside_fraction", "seconds"};

/// A tiny checkpoint trained for `steps` steps on `train` (RefUNet base 8).
fs::path train_tiny(const test::temp_dir& dir, const fs::path& train, int steps) {
  const fs::path run_dir = dir / "run";
  const result r = run_tool(dir, "train --out " + q(run_dir) + " --steps " + std::to_string(steps) + " --data " +
                                     q(train) +
                                     " --base-channels 8 --channel-mult 1,2 --batch 4 --lr 1e-3 --warmup 2"
                                     " --ema-decay 0.9 --sample-count 2 --sample-steps 2");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  return run_dir / "checkpoint.safetensors";
}

}  // namespace

TEST_CASE("cli eval: metrics per sampler and step count, plot, grids, best setting", "[cli][eval]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-eval");
  const fs::path train = write_images(dir, "train.npy", 48, 8, 8, 0.0);
  const fs::path held_out = write_images(dir, "test.npy", 30, 8, 8, 0.5);
  const fs::path run_dir = dir / "run", out = dir / "ev";
  result r = run_tool(dir, "train --out " + q(run_dir) + " --steps 2 --data " + q(train) +
                          " --base-channels 8 --channel-mult 1,2 --batch 4 --lr 1e-3 --warmup 2 --ema-decay 0.9"
                          " --sample-count 2 --sample-steps 2");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const fs::path ckpt = run_dir / "checkpoint.safetensors";
  const fs::path clf = write_classifier(dir, "clf.safetensors", 8, 8);
  const std::string common = "eval --ckpt " + q(ckpt) + " --test-data " + q(held_out) + " --classifier " + q(clf) +
                             " --count 12 --reference 30";

  // pc: the tool's former name of predictor_corrector, still accepted
  r = run_tool(dir, common + " --sampler naive,pc --steps 2,3 --grid-rows 3 --out " + q(out));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "floor (train vs held-out)"));
  CHECK(contains(r.err, "[1/4] naive, 2 steps (NFE 2), seed 0"));
  CHECK(contains(r.err, "[4/4] predictor_corrector, 3 steps (NFE 5), seed 0"));

  // one seed: each setting's row, then its mean and max-min rows
  const auto all = read_csv(out / "metrics.csv");
  REQUIRE(all.size() == 13);
  CHECK(all[0] == csv_header);
  std::vector<std::vector<std::string>> csv{all[0]};
  for (std::size_t i = 1; i < all.size(); i += 3) {
    REQUIRE(all[i].size() == 12);
    CHECK(all[i][3] == "0");
    CHECK(all[i + 1][3] == "mean");
    CHECK(all[i + 2][3] == "max-min");
    CHECK(all[i + 1][5] == all[i][5]);  // the mean of one value
    CHECK(std::stod(all[i + 2][5]) == 0);
    csv.push_back(all[i]);
  }
  // NFE: one per step; predictor_corrector two, but one on the final step to sigma = 0
  const std::vector<std::vector<std::string>> keys = {
      {"naive", "2", "2"}, {"naive", "3", "3"}, {"predictor_corrector", "2", "3"}, {"predictor_corrector", "3", "5"}};
  std::size_t best = 1;
  for (std::size_t i = 1; i < csv.size(); ++i) {
    INFO("row " << i);
    CHECK(std::vector<std::string>(csv[i].begin(), csv[i].begin() + 3) == keys[i - 1]);
    CHECK(csv[i][4] == "on");  // the default: clipped to [-1, 1]
    for (std::size_t c = 5; c < 12; ++c) CHECK(std::isfinite(std::stod(csv[i][c])));
    CHECK(std::stod(csv[i][5]) >= 0);
    CHECK(csv[i][6] == csv[1][6]);  // the floor is one number
    CHECK(std::stod(csv[i][6]) > 0);
    CHECK(std::stod(csv[i][7]) > 0);
    for (std::size_t c : {8, 9, 10}) CHECK((std::stod(csv[i][c]) >= 0 && std::stod(csv[i][c]) <= 1));
    if (std::stod(csv[i][5]) < std::stod(csv[best][5])) best = i;
  }
  const std::string best_name = csv[best][0] + "_" + csv[best][1];
  CHECK(contains(r.out, "best: " + csv[best][0] + " " + csv[best][1] + " steps, NFE " + csv[best][2] + ", Frechet " +
                            csv[best][5] + " (floor " + csv[best][6] + ")"));
  CHECK(contains(r.out, "floor (12 training images)"));
  CHECK(contains(r.out, "one seed: no spread to compare with"));
  CHECK(fs::file_size(out / "frechet_vs_nfe.png") > 1000);
  CHECK(fs::exists(out / ("samples_" + best_name + ".png")));
  CHECK(fs::exists(out / "nearest_neighbours.png"));
  const nlohmann::json summary = nlohmann::json::parse(read_text(out / "summary.json"));
  CHECK(summary["results"].size() == 4);
  CHECK(summary["settings"].size() == 4);
  CHECK(summary["best_per_sampler"].size() == 2);
  CHECK(summary["best"]["sampler"] == csv[best][0]);
  CHECK(summary["best"]["nfe"] == std::stoul(csv[best][2]));
  CHECK(summary["best_samples"] == "samples_" + best_name + ".png");
  CHECK(summary["frechet_floor"].get<double>() == Approx(std::stod(csv[1][6])).epsilon(1e-5));
  CHECK(summary["floor"]["training_images"] == 12);
  CHECK(summary["clip"] == "on");
  CHECK(summary["seeds"] == nlohmann::json::array({0}));
  CHECK(summary["classifier"]["info"]["test"] == true);
  CHECK(summary["nearest_training_distance"].size() == 3);
  CHECK(summary["training"]["images"] == 48);  // the checkpoint's own data by default

  // the same seed gives the same numbers
  r = run_tool(dir, common + " --sampler naive,pc --steps 2,3 --grid-rows 3 --out " + q(dir / "ev2"));
  REQUIRE(r.status == 0);
  CHECK(read_csv(dir / "ev2" / "metrics.csv")[4][5] == csv[2][5]);
}

TEST_CASE("cli eval: bad input gives a clear error and a non-zero status", "[cli][eval]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-eval-bad");
  const fs::path train = write_images(dir, "train.npy", 24, 8, 8, 0.0);
  const fs::path held_out = write_images(dir, "test.npy", 12, 8, 8, 0.5);
  result r = run_tool(dir, "train --out " + q(dir / "run") + " --steps 1 --data " + q(train) +
                          " --base-channels 8 --channel-mult 1,2 --batch 4 --sample-count 2 --sample-steps 2");
  REQUIRE(r.status == 0);
  const fs::path ckpt = dir / "run" / "checkpoint.safetensors";
  const fs::path clf = write_classifier(dir, "clf.safetensors", 8, 8);
  const std::string base = "eval --ckpt " + q(ckpt) + " --count 8 --reference 12 --out " + q(dir / "ev");
  const std::string common = base + " --test-data " + q(held_out) + " --classifier " + q(clf);

  r = run_tool(dir, common + " --sampler naive,euler --steps 2");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--sampler: unknown sampler 'euler' (known: naive, momentum, pf_momentum (pf-momentum), "
                        "ddim, predictor_corrector (pc))"));
  CHECK(contains(r.err, "(run 'softdiff eval --help' for usage)"));
  r = run_tool(dir, common + " --sampler naive,naive --steps 2");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--sampler 'naive,naive' lists 'naive' twice"));
  r = run_tool(dir, common + " --sampler pc,predictor_corrector --steps 2");  // an alias and its name
  CHECK(r.status == 2);
  CHECK(contains(r.err, "lists 'predictor_corrector' twice"));
  for (const std::string bad : {"2,x", "0", "2,,3", "3,", "-4", "2.5", "10,0", "100001"}) {
    r = run_tool(dir, common + " --steps " + bad);
    INFO(bad << ": " << r.err);
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--steps '" + bad + "'"));
  }
  r = run_tool(dir, common + " --steps 2,3,2");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--steps '2,3,2' lists 2 twice"));
  for (const std::string bad : {"''", "3,3", "3,x", "-1", "3,"}) {
    r = run_tool(dir, common + " --seeds " + bad);
    INFO(bad << ": " << r.err);
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--seeds '"));
  }
  r = run_tool(dir, common + " --seeds 3,3");
  CHECK(contains(r.err, "--seeds '3,3' lists 3 twice"));
  r = run_tool(dir, common + " --seeds ''");
  CHECK(contains(r.err, "--seeds '': empty item"));
  r = run_tool(dir, common + " --seed 1 --seeds 2,3");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "give --seed S or --seeds S[,S], not both"));
  r = run_tool(dir, common + " --chunk 0");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "option --chunk: 0 is outside [1, "));
  r = run_tool(dir, common + " --clip yes");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--clip 'yes': expected on or off"));
  r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --chunk 0 --out " + q(dir / "s.png"));
  CHECK(r.status == 2);
  CHECK(contains(r.err, "option --chunk: 0 is outside [1, "));
  r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --sampler euler --out " + q(dir / "s.png"));
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--sampler: unknown sampler 'euler'"));
  r = run_tool(dir, common + " --neighbours 8");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--count 8 must exceed --neighbours 8"));
  r = run_tool(dir, common + " --sampler naive --k-ratio 0.5");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--k-ratio applies to ddim and predictor_corrector only"));

  r = run_tool(dir, base + " --test-data " + q(held_out) + " --classifier " + q(write_classifier(dir, "c28.safetensors", 28, 28)));
  CHECK(r.status == 1);
  CHECK(contains(r.err, "c28.safetensors' takes 1x28x28 images but the checkpoint"));
  CHECK(contains(r.err, "makes 1x8x8"));
  r = run_tool(dir, base + " --test-data " + q(held_out));  // the committed classifier takes Fashion-MNIST's 28 x 28
  CHECK(r.status == 1);
  CHECK(contains(r.err, "models/fashion_mnist_classifier.safetensors' takes 1x28x28 images but the checkpoint"));
  r = run_tool(dir, base + " --test-data " + q(held_out) + " --classifier " + q(dir / "none.safetensors"));
  CHECK(r.status == 1);
  CHECK(contains(r.err, "none.safetensors' does not exist; train one with `softdiff train-classifier`"));
  r = run_tool(dir, base + " --classifier " + q(clf) + " --test-data " + q(write_images(dir, "t9.npy", 12, 9, 9, 0.5)));
  CHECK(r.status == 1);
  CHECK(contains(r.err, "the held-out data .npy batch"));
  CHECK(contains(r.err, "has images 1x9x9 but the checkpoint"));
  r = run_tool(dir, common + " --train-data " + q(write_images(dir, "few.npy", 5, 8, 8, 0.1)));
  CHECK(r.status == 1);
  CHECK(contains(r.err, "has 5 images, fewer than --count 8"));
  CHECK_FALSE(fs::exists(dir / "ev" / "metrics.csv"));

  // a checkpoint whose output layer is finite but so large that sampling overflows (NaN weights
  // are refused on load, tests/test_hostile_input.cpp): the sampler and step count are named
  const data::safetensors_file f = data::read_safetensors(ckpt);
  data::safetensors_writer w;
  for (const auto& [name, t] : f.tensors) {
    std::vector<std::byte> bytes = t.bytes;
    if (name.rfind("train.", 0) != 0 && t.dtype == "F32" && name.find("conv_out") != std::string::npos) {
      const float huge = 3.0e38f;
      for (std::size_t i = 0; i + 4 <= bytes.size(); i += 4) std::memcpy(bytes.data() + i, &huge, 4);
    }
    w.add_bytes(name, t.dtype, t.shape, bytes);
  }
  for (const auto& [key, value] : f.metadata) w.set_metadata(key, value);
  w.write(dir / "nan.safetensors");
  r = run_tool(dir, "eval --ckpt " + q(dir / "nan.safetensors") + " --count 8 --reference 12 --test-data " + q(held_out) +
                   " --classifier " + q(clf) + " --sampler momentum --steps 3 --out " + q(dir / "ev"));
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(contains(r.err, "sampler momentum with 3 steps (seed 0)"));
  CHECK(contains(r.err, "non-finite"));
}

TEST_CASE("cli eval: two seeds give a row each, their mean and spread, each sampler's best, the comparison",
          "[cli][eval]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-eval-seeds");
  const fs::path train = write_images(dir, "train.npy", 48, 8, 8, 0.0);
  const fs::path held_out = write_images(dir, "test.npy", 30, 8, 8, 0.5);
  const fs::path ckpt = train_tiny(dir, train, 2);
  const fs::path clf = write_classifier(dir, "clf.safetensors", 8, 8);
  const std::string common = "eval --ckpt " + q(ckpt) + " --test-data " + q(held_out) + " --classifier " + q(clf) +
                             " --count 12 --reference 30 --sampler naive,momentum --steps 2,3 --grid-rows 2";
  const fs::path out = dir / "ev";
  result r = run_tool(dir, common + " --seeds 3,4 --chunk 5 --out " + q(out));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "[1/8] naive, 2 steps (NFE 2), seed 3"));
  CHECK(contains(r.err, "[8/8] momentum, 3 steps (NFE 3), seed 4"));
  CHECK(contains(r.err, "spread (max - min)"));
  const auto csv = read_csv(out / "metrics.csv");
  REQUIRE(csv.size() == 1 + 4 * 4);
  CHECK(csv[0] == csv_header);
  struct best_t {
    std::string steps;
    double mean = 1e300, spread = 0;
  };
  std::map<std::string, best_t> best;
  for (std::size_t i = 1; i < csv.size(); i += 4) {
    INFO("setting at row " << i);
    CHECK(csv[i][3] == "3");
    CHECK(csv[i + 1][3] == "4");
    CHECK(csv[i + 2][3] == "mean");
    CHECK(csv[i + 3][3] == "max-min");
    for (std::size_t k = 0; k < 4; ++k) CHECK(std::vector<std::string>(csv[i + k].begin(), csv[i + k].begin() + 3) ==
                                              std::vector<std::string>(csv[i].begin(), csv[i].begin() + 3));
    for (std::size_t c : {5, 7, 8, 9, 10}) {  // every measure: the mean and max - min of the two seeds
      const double a = std::stod(csv[i][c]), b = std::stod(csv[i + 1][c]);
      const double rounding = 1e-5 * std::max(std::abs(a), std::abs(b)) + 1e-12;  // cells hold 6 digits
      CHECK(std::stod(csv[i + 2][c]) == Approx((a + b) / 2).margin(rounding));
      CHECK(std::stod(csv[i + 3][c]) == Approx(std::abs(a - b)).margin(rounding));
    }
    CHECK(csv[i][5] != csv[i + 1][5]);  // the seeds differ
    const double mean = std::stod(csv[i + 2][5]);
    best_t& b = best[csv[i][0]];
    if (mean < b.mean) b = {csv[i][1], mean, std::stod(csv[i + 3][5])};
  }
  // each sampler's best over its steps, in the table, the JSON and the comparison line
  const nlohmann::json summary = nlohmann::json::parse(read_text(out / "summary.json"));
  CHECK(summary["seeds"] == nlohmann::json::array({3, 4}));
  CHECK(summary["spread"] == "max - min over seeds");
  CHECK(summary["chunk"] == 5);
  CHECK(summary["results"].size() == 8);
  CHECK(summary["settings"].size() == 4);
  REQUIRE(summary["best_per_sampler"].size() == 2);
  for (const auto& b : summary["best_per_sampler"]) {
    const best_t& want = best[b["sampler"].get<std::string>()];
    CHECK(std::to_string(b["steps"].get<std::size_t>()) == want.steps);
    CHECK(b["frechet"]["mean"].get<double>() == Approx(want.mean).epsilon(1e-5));
    CHECK(b["frechet"]["spread"].get<double>() == Approx(want.spread).epsilon(1e-5).margin(1e-9));
    CHECK(b["frechet"]["spread"].get<double>() ==
          Approx(b["frechet"]["max"].get<double>() - b["frechet"]["min"].get<double>()));
    CHECK(b["frechet_floor"].get<double>() == summary["frechet_floor"].get<double>());
    CHECK(contains(r.out, b["sampler"].get<std::string>() + " best "));
  }
  CHECK(contains(r.out, "best per sampler over its step sweep"));
  CHECK(contains(r.out, "floor (12 training images)"));
  CHECK(contains(r.out, "mean and spread (max - min) over seeds 3,4"));
  // the last line compares the bests, lowest first
  const std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  CHECK(last == summary["comparison"].get<std::string>() + "\n");
  const bool naive_first = best["naive"].mean <= best["momentum"].mean;
  CHECK(last.rfind(naive_first ? "naive best " : "momentum best ", 0) == 0);
  CHECK(contains(last, " vs " + std::string(naive_first ? "momentum" : "naive") + " best "));
  CHECK(contains(last, "+- is max - min over seeds 3,4"));
  CHECK((contains(last, "more than the spread") || contains(last, "not separated")));

  // the same seeds in another chunk size give the same numbers
  r = run_tool(dir, common + " --seeds 3,4 --out " + q(dir / "ev2"));
  REQUIRE(r.status == 0);
  const auto again = read_csv(dir / "ev2" / "metrics.csv");
  for (std::size_t i = 1; i < csv.size(); ++i) CHECK(again[i][5] == csv[i][5]);
}

TEST_CASE("cli eval: --clip on|off is recorded, and changes the figures when samples leave [-1, 1]", "[cli][eval]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-eval-clip");
  const fs::path train = write_images(dir, "train.npy", 48, 8, 8, 0.0);
  const fs::path held_out = write_images(dir, "test.npy", 30, 8, 8, 0.5);
  const fs::path ckpt = train_tiny(dir, train, 1);
  const fs::path clf = write_classifier(dir, "clf.safetensors", 8, 8);
  const std::string common = "eval --ckpt " + q(ckpt) + " --test-data " + q(held_out) + " --classifier " + q(clf) +
                             " --count 12 --reference 30 --sampler naive --steps 2 --grid-rows 2";
  result r = run_tool(dir, common + " --clip off --out " + q(dir / "off"));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "clip off"));
  CHECK(contains(r.out, "clip off"));
  r = run_tool(dir, common + " --out " + q(dir / "on"));  // on is the default
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, "clip on"));
  const auto off = read_csv(dir / "off" / "metrics.csv"), on = read_csv(dir / "on" / "metrics.csv");
  REQUIRE(off.size() == 4);
  REQUIRE(on.size() == 4);
  CHECK(off[1][4] == "off");
  CHECK(on[1][4] == "on");
  // the fraction outside [-1, 1] is measured before clipping: the same samples, the same fraction
  CHECK(off[1][10] == on[1][10]);
  REQUIRE(std::stod(on[1][10]) > 0);  // this barely trained model leaves the data range
  CHECK(off[1][5] != on[1][5]);      // so clipping changes the Frechet distance
  CHECK(off[1][7] != on[1][7]);      // and the sliced W
  CHECK(nlohmann::json::parse(read_text(dir / "off" / "summary.json"))["clip"] == "off");
  CHECK(nlohmann::json::parse(read_text(dir / "on" / "summary.json"))["results"][0]["outside_fraction"].get<double>() ==
        Approx(std::stod(on[1][10])).epsilon(1e-5));
}

TEST_CASE("cli sample: --chunk does not change the samples (bitwise), for every sampler", "[cli][eval]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-sample-chunk");
  const fs::path ckpt = train_tiny(dir, write_images(dir, "train.npy", 24, 8, 8, 0.0), 1);
  // the library's names and the former spellings pf-momentum and pc
  for (const std::string sampler : {"naive", "momentum", "pf_momentum", "pf-momentum", "ddim --k-ratio 0.5",
                                    "predictor_corrector --k-ratio 0.5", "pc"}) {
    std::string whole;
    for (const std::string chunk : {"", "1", "3"}) {
      const fs::path png = dir / ("s" + chunk + ".png");
      const result r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --sampler " + sampler + " --steps 3 --count 7" +
                                         (chunk.empty() ? "" : " --chunk " + chunk) + " --seed 5 --out " + q(png));
      INFO(sampler << ", chunk '" << chunk << "': " << r.err);
      REQUIRE(r.status == 0);
      const std::string bytes = read_text(dir / ("s" + chunk + ".npy"));
      REQUIRE(bytes.size() > 7 * 64 * 4);
      if (chunk.empty()) whole = bytes;
      else CHECK(bytes == whole);
    }
  }
}
