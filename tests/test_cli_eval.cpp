// softdiff eval, run as a separate process on a tiny checkpoint (RefUNet base 8, 8 x 8 images,
// 2 training steps) with a freshly initialised classifier for 8 x 8 images: metrics.csv (rows,
// columns, exact NFE per sampler, finite values, a constant floor), the PNGs, summary.json, the
// "best:" line against the CSV minimum, and the bad-input paths (sampler names, step lists,
// classifier shape and file, data shape, a checkpoint whose network makes NaN).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
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
using namespace softdiff::test;  // run_tool, result, q, contains, read_text (support/cli_runner.hpp)

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

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_text(p));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::istringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
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

  r = run_tool(dir, common + " --sampler naive,pc --steps 2,3 --grid-rows 3 --out " + q(out));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "floor (train vs held-out)"));
  CHECK(contains(r.err, "[1/4] naive, 2 steps (NFE 2)"));
  CHECK(contains(r.err, "[4/4] pc, 3 steps (NFE 5)"));

  const auto csv = read_csv(out / "metrics.csv");
  REQUIRE(csv.size() == 5);
  CHECK(csv[0] == std::vector<std::string>{"sampler", "steps", "nfe", "frechet", "frechet_floor", "sliced_w",
                                           "precision", "recall", "seconds"});
  // NFE: one per step; pc two, but one on the final step to sigma = 0
  const std::vector<std::vector<std::string>> keys = {{"naive", "2", "2"}, {"naive", "3", "3"}, {"pc", "2", "3"},
                                                      {"pc", "3", "5"}};
  std::size_t best = 1;
  for (std::size_t i = 1; i < csv.size(); ++i) {
    INFO("row " << i);
    REQUIRE(csv[i].size() == 9);
    CHECK(std::vector<std::string>(csv[i].begin(), csv[i].begin() + 3) == keys[i - 1]);
    for (std::size_t c = 3; c < 9; ++c) CHECK(std::isfinite(std::stod(csv[i][c])));
    CHECK(std::stod(csv[i][3]) >= 0);
    CHECK(csv[i][4] == csv[1][4]);  // the floor is one number
    CHECK(std::stod(csv[i][4]) > 0);
    CHECK(std::stod(csv[i][5]) > 0);
    for (std::size_t c : {6, 7}) CHECK((std::stod(csv[i][c]) >= 0 && std::stod(csv[i][c]) <= 1));
    if (std::stod(csv[i][3]) < std::stod(csv[best][3])) best = i;
  }
  const std::string best_name = csv[best][0] + "_" + csv[best][1];
  CHECK(contains(r.out, "best: " + csv[best][0] + " " + csv[best][1] + " steps, NFE " + csv[best][2] + ", Frechet " +
                            csv[best][3] + " (floor " + csv[best][4] + ")"));
  CHECK(fs::file_size(out / "frechet_vs_nfe.png") > 1000);
  CHECK(fs::exists(out / ("samples_" + best_name + ".png")));
  CHECK(fs::exists(out / "nearest_neighbours.png"));
  const nlohmann::json summary = nlohmann::json::parse(read_text(out / "summary.json"));
  CHECK(summary["results"].size() == 4);
  CHECK(summary["best"]["sampler"] == csv[best][0]);
  CHECK(summary["best"]["nfe"] == std::stoul(csv[best][2]));
  CHECK(summary["best_samples"] == "samples_" + best_name + ".png");
  CHECK(summary["frechet_floor"].get<double>() == Approx(std::stod(csv[1][4])).epsilon(1e-5));
  CHECK(summary["classifier"]["info"]["test"] == true);
  CHECK(summary["nearest_training_distance"].size() == 3);
  CHECK(summary["training"]["images"] == 48);  // the checkpoint's own data by default

  // the same seed gives the same numbers
  r = run_tool(dir, common + " --sampler naive,pc --steps 2,3 --grid-rows 3 --out " + q(dir / "ev2"));
  REQUIRE(r.status == 0);
  CHECK(read_csv(dir / "ev2" / "metrics.csv")[2][3] == csv[2][3]);
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
  CHECK(contains(r.err, "unknown sampler 'euler' (known: naive, momentum, pf-momentum, ddim, pc)"));
  r = run_tool(dir, common + " --sampler naive,naive --steps 2");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--sampler lists 'naive' twice"));
  for (const std::string bad : {"2,x", "0", "2,,3", "3,", "-4", "2.5"}) {
    r = run_tool(dir, common + " --steps " + bad);
    INFO(bad << ": " << r.err);
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--steps '" + bad + "'"));
  }
  r = run_tool(dir, common + " --neighbours 8");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--count 8 must exceed --neighbours 8"));
  r = run_tool(dir, common + " --sampler naive --k-ratio 0.5");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--k-ratio applies to ddim and pc only"));

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

  // a checkpoint whose output layer holds NaN: the sampler and step count are named
  const data::safetensors_file f = data::read_safetensors(ckpt);
  data::safetensors_writer w;
  for (const auto& [name, t] : f.tensors) {
    std::vector<std::byte> bytes = t.bytes;
    if (name.rfind("train.", 0) != 0 && t.dtype == "F32" && name.find("conv_out") != std::string::npos) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      for (std::size_t i = 0; i + 4 <= bytes.size(); i += 4) std::memcpy(bytes.data() + i, &nan, 4);
    }
    w.add_bytes(name, t.dtype, t.shape, bytes);
  }
  for (const auto& [key, value] : f.metadata) w.set_metadata(key, value);
  w.write(dir / "nan.safetensors");
  r = run_tool(dir, "eval --ckpt " + q(dir / "nan.safetensors") + " --count 8 --reference 12 --test-data " + q(held_out) +
                   " --classifier " + q(clf) + " --sampler momentum --steps 3 --out " + q(dir / "ev"));
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(contains(r.err, "sampler momentum with 3 steps"));
  CHECK(contains(r.err, "non-finite"));
}
