// softdiff train / sample / denoise, run as separate processes on tiny data and a tiny
// RefUNet (base 8, mult (1, 2), 8 x 8 images): checkpoints and sample grids, the progress
// line, exact resume across runs, every sampler, phi and x0, and the bad-input paths
// (image size, missing dataset, divergence, another configuration) with their messages; the
// training recipe's options (model_description.hpp): recorded in the checkpoint, refused when
// bad or when a resumed run changes them, old checkpoints without them, and the ablations
// (growing noise, eq. 7, clean-image loss, Wasserstein and MSE-matched schedules).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "softdiff/nn/tile_engines.hpp"
#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/schedule/tabulated.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;  // run_tool, result, q, contains, read_text (support/cli_runner.hpp)

namespace {

/// n smooth c x h x w images in [-1, 1], as a float .npy file.
fs::path write_images(const test::temp_dir& dir, const std::string& name, std::size_t n, std::size_t c, std::size_t h,
                      std::size_t w) {
  batch<float> x(shape4{n, c, h, w});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  const fs::path p = dir / name;
  data::write_npy(p, x);
  return p;
}

const std::string tiny_net = " --base-channels 8 --channel-mult 1,2 --batch 4 --lr 1e-3 --warmup 2 --ema-decay 0.9"
                             " --sample-count 4 --sample-steps 3";

nlohmann::json softdiff_meta(const fs::path& ckpt) {
  return nlohmann::json::parse(data::read_safetensors(ckpt).metadata.at("softdiff"));
}

}  // namespace

TEST_CASE("cli train: checkpoints, sample grids, progress, exact resume", "[cli][train]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train");
  const fs::path data = write_images(dir, "x.npy", 16, 1, 8, 8);
  const fs::path a = dir / "a", b = dir / "b";
  const std::string common = " --data " + q(data) + tiny_net + " --checkpoint-every 2 --sample-every 2";

  result r = run_tool(dir, "train --out " + q(a) + " --steps 4" + common);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(fs::exists(a / "checkpoint.safetensors"));
  CHECK(fs::exists(a / "samples_step2.png"));
  CHECK(fs::exists(a / "samples_step4.png"));
  CHECK(contains(r.err, "step "));
  CHECK(contains(r.err, "loss "));
  CHECK(contains(r.err, "img/s"));
  CHECK(contains(r.err, "ETA"));
  nlohmann::json meta = softdiff_meta(a / "checkpoint.safetensors");
  CHECK(meta["step"] == 4);
  CHECK(meta["operator"]["name"] == "gaussian-blur");
  CHECK(meta["operator"]["half_size"] == 8);
  CHECK(meta["schedule"]["type"] == "two_stage");
  CHECK(meta["schedule"]["level_max"].get<double>() == Approx(18.0 * 8 / 32));
  CHECK(meta["image"] == nlohmann::json::array({1, 8, 8}));
  CHECK(meta["final_distribution"]["mean"].size() == 1);
  CHECK(meta["batch_size"] == 4);
  const data::safetensors_file f = data::read_safetensors(a / "checkpoint.safetensors");
  CHECK(nlohmann::json::parse(f.metadata.at("refunet_config"))["base_channels"] == 8);
  CHECK(f.contains("conv_in.weight"));
  CHECK(f.contains("train.adam_m.conv_in.weight"));

  // resume to 7 steps == 7 steps in one go
  r = run_tool(dir, "train --out " + q(a) + " --steps 7 --data " + q(data));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "resuming at step 4"));
  r = run_tool(dir, "train --out " + q(b) + " --steps 7" + common);
  REQUIRE(r.status == 0);
  const data::safetensors_file fa = data::read_safetensors(a / "checkpoint.safetensors");
  const data::safetensors_file fb = data::read_safetensors(b / "checkpoint.safetensors");
  CHECK(softdiff_meta(a / "checkpoint.safetensors")["step"] == 7);
  REQUIRE(fa.tensors.size() == fb.tensors.size());
  std::size_t same = 0;
  for (const auto& [name, t] : fa.tensors) same += fb.contains(name) && fb.at(name).bytes == t.bytes;
  CHECK(same == fa.tensors.size());

  r = run_tool(dir, "train --out " + q(a) + " --steps 7");
  CHECK(r.status == 0);
  CHECK(contains(r.out, "nothing to do"));
  r = run_tool(dir, "train --out " + q(a) + " --steps 9 --base-channels 16");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--base-channels 16 differs from 8"));
  r = run_tool(dir, "train --out " + q(a) + " --steps 9 --max-level 3");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--max-level cannot change when resuming"));

  {  // sample with every sampler, and denoise
    const fs::path ckpt = a / "checkpoint.safetensors";
    for (const char* sampler : {"naive", "momentum", "pf-momentum", "ddim", "pc"}) {
      const fs::path png = dir / (std::string(sampler) + ".png");
      r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --sampler " + sampler + " --steps 3 --count 5 --seed 1 --out " + q(png));
      INFO(sampler << "\n" << r.out << r.err);
      REQUIRE(r.status == 0);
      CHECK(fs::exists(png));
      const batch<float> s = data::read_npy_batch<float>(dir / (std::string(sampler) + ".npy"));
      CHECK(shape_of(s) == shape4{5, 1, 8, 8});
      CHECK(std::all_of(s.begin(), s.end(), [](float v) { return std::isfinite(v); }));
    }
    // progress within a run: every step when SOFTDIFF_PROGRESS_SECONDS=0 (the default is 5 s)
    r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --steps 3 --count 2 --out " + q(dir / "p.png"),
                 "SOFTDIFF_PROGRESS_SECONDS=0");
    REQUIRE(r.status == 0);
    CHECK(contains(r.err, "sample: 2 samples, momentum, 3 steps ... 1/3 2/3 done"));
    CHECK(run_tool(dir, "sample --ckpt " + q(ckpt) + " --sampler euler --out " + q(dir / "e.png")).status == 2);
    // --precision: the checkpoint says it was trained in float32; bf16 runs where AMX does, is
    // refused naming the missing feature elsewhere; an unknown precision is a usage error
    CHECK(softdiff_meta(ckpt).at("precision") == "float32");
    r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --steps 3 --count 5 --seed 1 --precision float32 --out " +
                          q(dir / "f32.png"));
    REQUIRE(r.status == 0);
    CHECK(contains(r.err, "precision: float32, checkpoint trained in float32"));
    r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --steps 3 --count 5 --seed 1 --precision bf16 --out " +
                          q(dir / "b16.png"));
    INFO(r.out << r.err);
    if (nn::amx_status().usable) {
      REQUIRE(r.status == 0);
      CHECK(contains(r.err, "precision: bf16 (AMX"));
      CHECK(contains(r.out, "bf16"));
      const batch<float> f = data::read_npy_batch<float>(dir / "f32.npy"), h = data::read_npy_batch<float>(dir / "b16.npy");
      REQUIRE(shape_of(f) == shape_of(h));
      double diff = 0;
      for (std::size_t i = 0; i < f.size(); ++i) diff = std::max(diff, double(std::abs(f.data()[i] - h.data()[i])));
      CHECK(diff > 0);    // the 16-channel level ran in bf16
      CHECK(diff < 0.1);  // three steps of a tiny network: the same samples up to bf16 rounding
    } else {
      CHECK(r.status == 2);
      CHECK(contains(r.err, "amx"));
    }
    r = run_tool(dir, "sample --ckpt " + q(ckpt) + " --precision fp16 --out " + q(dir / "e.png"));
    CHECK(r.status == 2);
    CHECK(contains(r.err, "unknown precision 'fp16'"));
    CHECK(run_tool(dir, "sample --ckpt " + q(ckpt) + " --out " + q(dir / "e.jpg")).status == 2);

    const fs::path x = write_images(dir, "xt.npy", 2, 1, 8, 8);
    REQUIRE(run_tool(dir, "denoise --ckpt " + q(ckpt) + " --in " + q(x) + " --t 0.5 --output phi --out " + q(dir / "phi.npy")).status == 0);
    REQUIRE(run_tool(dir, "denoise --ckpt " + q(ckpt) + " --in " + q(x) + " --t 0.5 --output x0 --out " + q(dir / "x0.npy")).status == 0);
    const batch<float> xin = data::read_npy_batch<float>(x), phi = data::read_npy_batch<float>(dir / "phi.npy"),
                       x0 = data::read_npy_batch<float>(dir / "x0.npy");
    REQUIRE(shape_of(phi) == shape_of(xin));
    for (std::size_t i = 0; i < x0.size(); ++i) CHECK(x0.data()[i] == Approx(phi.data()[i] + xin.data()[i]).margin(1e-6));

    r = run_tool(dir, "denoise --ckpt " + q(ckpt) + " --in " + q(write_images(dir, "x9.npy", 2, 1, 9, 9)) +
                     " --t 0.5 --out " + q(dir / "y.npy"));
    CHECK(r.status == 1);
    CHECK(contains(r.err, "image size 9x9 is not a multiple of 2^(levels - 1) = 2"));
    r = run_tool(dir, "denoise --ckpt " + q(ckpt) + " --in " + q(write_images(dir, "x3.npy", 2, 3, 8, 8)) +
                     " --t 0.5 --out " + q(dir / "y.npy"));
    CHECK(r.status == 1);
    CHECK(contains(r.err, "3 channels, but the checkpoint's network takes 1"));
    CHECK(run_tool(dir, "denoise --ckpt " + q(ckpt) + " --in " + q(x) + " --t 1.5 --out " + q(dir / "y.npy")).status == 2);
  }

  {  // a checkpoint whose configuration does not match its tensors is refused
    data::safetensors_writer w;
    for (const auto& [name, t] : fa.tensors) w.add_bytes(name, t.dtype, t.shape, t.bytes);
    for (const auto& [key, value] : fa.metadata) w.set_metadata(key, value);
    w.set_metadata("refunet_config", R"({"base_channels": 16, "channel_mult": [1, 2]})");
    w.write(dir / "other.safetensors");
    r = run_tool(dir, "sample --ckpt " + q(dir / "other.safetensors") + " --steps 2 --count 1 --out " + q(dir / "o.png"));
    CHECK(r.status == 1);
    CHECK(contains(r.err, "does not match the network"));
    CHECK(contains(r.err, "'conv_in.weight' has shape [8, 1, 3, 3] but the network expects [16, 1, 3, 3]"));
    CHECK_FALSE(fs::exists(dir / "o.png"));
  }
}

TEST_CASE("cli train: bad input gives a clear error and a non-zero status", "[cli][train]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train-bad");

  result r = run_tool(dir, "train --out " + q(dir / "o"));
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--steps N or --minutes M"));

  const fs::path odd = write_images(dir, "x9.npy", 8, 1, 9, 9);
  r = run_tool(dir, "train --out " + q(dir / "odd") + " --steps 1 --data " + q(odd) + tiny_net);
  CHECK(r.status == 1);
  CHECK(contains(r.err, "image size 9x9 is not a multiple of 2^(levels - 1) = 2"));
  r = run_tool(dir, "train --out " + q(dir / "odd") + " --steps 1 --pad --data " + q(odd) + tiny_net);
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(softdiff_meta(dir / "odd" / "checkpoint.safetensors")["image"] == nlohmann::json::array({1, 10, 10}));

  const std::string missing = (dir / "no-such-dir").string();
  r = run_tool(dir, "train --out " + q(dir / "m") + " --steps 1" + tiny_net, "SOFTDIFF_FASHION_MNIST_DIR='" + missing + "'");
  CHECK(r.status == 1);
  CHECK(contains(r.err, missing));
  CHECK(contains(r.err, "apt-get install dataset-fashion-mnist"));

  // An absurd learning rate makes the network overflow: the step is named, the checkpoint of
  // the step before stays.
  const fs::path data = write_images(dir, "x.npy", 16, 1, 8, 8);
  const fs::path d = dir / "diverge";
  r = run_tool(dir, "train --out " + q(d) + " --steps 6 --lr 1e30 --warmup 0 --checkpoint-every 1 --data " + q(data) +
                   " --base-channels 8 --channel-mult 1,2 --batch 4 --sample-count 2 --sample-steps 2");
  INFO(r.err);
  CHECK(r.status == 1);
  const auto at = r.err.find("training stopped at step ");
  REQUIRE(at != std::string::npos);
  const long failed = std::strtol(r.err.c_str() + at + 24, nullptr, 10);
  CHECK(failed >= 2);
  CHECK(contains(r.err, "non-finite"));
  CHECK(contains(r.err, "(step " + std::to_string(failed - 1) + ") is kept unchanged"));
  CHECK(softdiff_meta(d / "checkpoint.safetensors")["step"] == failed - 1);
}

TEST_CASE("cli train: the recipe options are recorded, and a resumed run must repeat them", "[cli][train][recipe]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train-recipe");
  const fs::path data = write_images(dir, "x.npy", 16, 1, 8, 8);
  const fs::path a = dir / "a";
  const std::string common = " --data " + q(data) + tiny_net;
  result r = run_tool(dir, "train --out " + q(a) + " --steps 2" + common +
                               " --sigma-min 0.02 --sigma-max 0.2 --noise-fraction 0.3 --weighting inverse-variance"
                               " --loss clean");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  nlohmann::json meta = softdiff_meta(a / "checkpoint.safetensors");
  CHECK(meta["loss"] == "clean");
  CHECK(meta["weighting"] == "inverse-variance");
  CHECK(meta["schedule_kind"] == "geometric");
  CHECK(meta["noise"] == nlohmann::json({{"sigma_min", 0.02}, {"sigma_max", 0.2}, {"noise_fraction", 0.3}, {"mode", "fixed"}}));
  CHECK(meta["schedule"]["type"] == "two_stage");
  CHECK(meta["schedule"]["sigma_max"] == 0.2);
  CHECK(meta["schedule"]["noise_fraction"] == 0.3);
  CHECK(meta["schedule"]["noise_mode"] == "fixed");
  CHECK_FALSE(meta.contains("network"));  // the network is the refunet_config entry

  // a resumed run with another recipe option is refused, naming it; the same value is fine
  r = run_tool(dir, "train --out " + q(a) + " --steps 3 --sigma-max 0.1");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--sigma-max 0.1 differs from 0.2 in " + (a / "checkpoint.safetensors").string()));
  r = run_tool(dir, "train --out " + q(a) + " --steps 3 --loss ssm");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--loss ssm differs from clean"));
  r = run_tool(dir, "train --out " + q(a) + " --steps 3 --noise growing");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--noise growing differs from fixed"));
  r = run_tool(dir, "train --out " + q(a) + " --steps 3 --weighting unit");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--weighting unit differs from inverse-variance"));
  r = run_tool(dir, "train --out " + q(a) + " --steps 3 --weighting inverse-sigma2 --sigma-max 0.2 --loss clean");
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(softdiff_meta(a / "checkpoint.safetensors")["step"] == 3);

  {  // an old-style checkpoint (before the recipe options): no loss, schedule_kind, noise or noise_mode,
     // the old weighting name; it resumes as ssm with fixed noise, and samples
    const fs::path old_dir = dir / "old";
    fs::create_directories(old_dir);
    r = run_tool(dir, "train --out " + q(dir / "new") + " --steps 2 --weighting inverse-variance" + common);
    REQUIRE(r.status == 0);
    const data::safetensors_file f = data::read_safetensors(dir / "new" / "checkpoint.safetensors");
    nlohmann::json old = nlohmann::json::parse(f.metadata.at("softdiff"));
    for (const char* key : {"loss", "schedule_kind", "noise"}) old.erase(key);
    old["schedule"].erase("noise_mode");
    old["weighting"] = "inverse-sigma2";
    data::safetensors_writer w;
    for (const auto& [name, t] : f.tensors) w.add_bytes(name, t.dtype, t.shape, t.bytes);
    for (const auto& [key, value] : f.metadata) w.set_metadata(key, value);
    w.set_metadata("softdiff", old.dump());
    w.write(old_dir / "checkpoint.safetensors");
    r = run_tool(dir, "sample --ckpt " + q(old_dir / "checkpoint.safetensors") + " --steps 3 --count 2 --out " +
                          q(dir / "old.png"));
    INFO(r.err);
    CHECK(r.status == 0);
    r = run_tool(dir, "train --out " + q(old_dir) + " --steps 3 --weighting inverse-variance --loss ssm --noise fixed");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(contains(r.err, "resuming at step 2"));
    meta = softdiff_meta(old_dir / "checkpoint.safetensors");
    CHECK(meta["step"] == 3);
    CHECK(meta["loss"] == "ssm");
    CHECK(meta["weighting"] == "inverse-variance");
    CHECK(meta["noise"]["mode"] == "fixed");
    CHECK(meta["schedule_kind"] == "geometric");
  }
}

namespace {

/// The rows of DIR/loss.csv after its header, as (step, loss).
std::vector<std::pair<long, double>> loss_rows(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  REQUIRE(std::getline(in, line));
  CHECK(line == "step,loss");
  std::vector<std::pair<long, double>> rows;
  while (std::getline(in, line)) {
    const std::size_t comma = line.find(',');
    REQUIRE(comma != std::string::npos);
    rows.emplace_back(std::stol(line.substr(0, comma)), std::stod(line.substr(comma + 1)));
  }
  return rows;
}

}  // namespace

TEST_CASE("cli train: loss.csv holds the loss curve and a resumed run continues it", "[cli][train]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train-curve");
  const fs::path data = write_images(dir, "x.npy", 16, 1, 8, 8);
  const fs::path a = dir / "a", b = dir / "b";
  const std::string common = " --data " + q(data) + tiny_net + " --loss-every 2 --checkpoint-every 100";
  result r = run_tool(dir, "train --out " + q(a) + " --steps 6" + common);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto whole = loss_rows(a / "loss.csv");
  REQUIRE(whole.size() == 3);
  for (std::size_t i = 0; i < whole.size(); ++i) {
    CHECK(whole[i].first == static_cast<long>(2 * (i + 1)));
    CHECK(std::isfinite(whole[i].second));
    CHECK(whole[i].second > 0);
  }
  // 4 steps, then 6: rows beyond the checkpoint's step (none here) are dropped, the rest kept,
  // and the resumed rows equal the one-go run's (the same steps, bitwise the same losses)
  REQUIRE(run_tool(dir, "train --out " + q(b) + " --steps 4" + common).status == 0);
  REQUIRE(loss_rows(b / "loss.csv").size() == 2);
  r = run_tool(dir, "train --out " + q(b) + " --steps 6 --data " + q(data) + " --loss-every 2");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(read_text(b / "loss.csv") == read_text(a / "loss.csv"));
  r = run_tool(dir, "train --out " + q(dir / "c") + " --steps 2 --loss-every 0" + common);
  CHECK(r.status == 2);
}

TEST_CASE("cli train: --precision bf16 trains, is recorded in the checkpoint and kept on resume", "[cli][train][bf16]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train-bf16");
  const fs::path data = write_images(dir, "x.npy", 16, 1, 8, 8);
  const fs::path f = dir / "f", h = dir / "h", h2 = dir / "h2";
  // base 8, mult (1, 2): the 16-channel level is the one bf16 changes (nn/precision.hpp)
  const std::string common = " --data " + q(data) + tiny_net + " --loss-every 1 --checkpoint-every 100";
  result r = run_tool(dir, "train --out " + q(f) + " --steps 4" + common + " --precision float32");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(softdiff_meta(f / "checkpoint.safetensors").at("precision") == "float32");

  r = run_tool(dir, "train --out " + q(h) + " --steps 4" + common + " --precision bf16");
  INFO(r.out << r.err);
  if (!nn::amx_status().usable) {  // refused before any training, naming the missing feature
    CHECK(r.status == 2);
    CHECK(contains(r.err, "amx"));
    CHECK_FALSE(fs::exists(h / "checkpoint.safetensors"));
    return;
  }
  REQUIRE(r.status == 0);
  CHECK(softdiff_meta(h / "checkpoint.safetensors").at("precision") == "bf16");
  // the same steps in bf16 give a loss curve close to float32's, but not the same
  const auto lf = loss_rows(f / "loss.csv"), lh = loss_rows(h / "loss.csv");
  REQUIRE(lf.size() == 4);
  REQUIRE(lh.size() == 4);
  double most = 0;
  for (std::size_t i = 0; i < lf.size(); ++i) {
    CHECK(lh[i].first == lf[i].first);
    most = std::max(most, std::abs(lh[i].second - lf[i].second) / lf[i].second);
  }
  CHECK(most > 0);
  CHECK(most < 0.05);

  // resuming keeps bf16 without being told, bitwise as one run; another precision is refused
  REQUIRE(run_tool(dir, "train --out " + q(h2) + " --steps 2" + common + " --precision bf16").status == 0);
  r = run_tool(dir, "train --out " + q(h2) + " --steps 4 --data " + q(data) + " --loss-every 1");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(softdiff_meta(h2 / "checkpoint.safetensors").at("precision") == "bf16");
  CHECK(read_text(h2 / "loss.csv") == read_text(h / "loss.csv"));
  const data::safetensors_file one = data::read_safetensors(h / "checkpoint.safetensors");
  const data::safetensors_file two = data::read_safetensors(h2 / "checkpoint.safetensors");
  std::size_t same = 0;
  for (const auto& [name, t] : one.tensors) same += two.contains(name) && two.at(name).bytes == t.bytes;
  CHECK(same == one.tensors.size());
  r = run_tool(dir, "train --out " + q(h2) + " --steps 5 --precision float32");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--precision float32 differs from bf16"));

  // a bf16-trained checkpoint samples in float32 and says which it used
  r = run_tool(dir, "sample --ckpt " + q(h / "checkpoint.safetensors") + " --steps 3 --count 2 --out " + q(dir / "s.png"));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "precision: float32, checkpoint trained in bf16"));
}

TEST_CASE("cli train: growing noise, eq. 7 and the mse-matched schedule train, are recorded and sample", "[cli][train][recipe]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train-ablations");
  const fs::path data = write_images(dir, "x.npy", 16, 1, 8, 8);
  const std::string common = " --data " + q(data) + tiny_net;

  result r = run_tool(dir, "train --out " + q(dir / "g") + " --steps 2 --noise growing --loss dsm --sigma-max 0.2" + common);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  nlohmann::json meta = softdiff_meta(dir / "g" / "checkpoint.safetensors");
  CHECK(meta["schedule"]["noise_mode"] == "growing");
  CHECK(meta["noise"]["mode"] == "growing");
  CHECK(meta["loss"] == "dsm");
  r = run_tool(dir, "sample --ckpt " + q(dir / "g" / "checkpoint.safetensors") + " --steps 3 --count 2 --out " + q(dir / "g.png"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  const batch<float> s = data::read_npy_batch<float>(dir / "g.npy");
  CHECK(shape_of(s) == shape4{2, 1, 8, 8});
  CHECK(std::all_of(s.begin(), s.end(), [](float v) { return std::isfinite(v); }));

  r = run_tool(dir, "train --out " + q(dir / "m") + " --steps 1 --schedule-kind mse-matched --sigma-max 0.2" + common);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "mse-matched schedule (eq. 55)"));
  meta = softdiff_meta(dir / "m" / "checkpoint.safetensors");
  CHECK(meta["schedule_kind"] == "mse-matched");
  REQUIRE(meta["schedule"]["type"] == "tabulated");
  const auto sigma = meta["schedule"]["table"]["sigma"].get<std::vector<double>>();
  CHECK(sigma.back() == Approx(0.2));
  const auto level = meta["schedule"]["table"]["level"].get<std::vector<double>>();
  CHECK(level.back() == Approx(18.0 * 8 / 32));
  CHECK(std::is_sorted(level.begin(), level.end()));
  CHECK(run_tool(dir, "sample --ckpt " + q(dir / "m" / "checkpoint.safetensors") + " --steps 3 --count 2 --out " +
                          q(dir / "m.png")).status == 0);
}

TEST_CASE("cli train: a Wasserstein schedule file must fit the operator and the image size", "[cli][train][recipe]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train-wasserstein");
  const fs::path data = write_images(dir, "x.npy", 16, 1, 8, 8);
  const std::string common = " --data " + q(data) + tiny_net;
  auto write_schedule = [&](const std::string& name, const std::string& op, const nlohmann::json& extra) {
    const schedule::tabulated t({0.0, 0.2, 0.6, 1.0}, {0.0, 0.0, 0.5, 2.0}, {0.0, 0.15, 0.15, 0.15}, op);
    t.save_json(dir / name, extra);
    return dir / name;
  };
  const nlohmann::json noise{{"sigma_min", 0.01}, {"sigma_max", 0.15}, {"noise_fraction", 0.2}, {"mode", "fixed"}};
  const fs::path good = write_schedule("good.json", "gaussian_blur", {{"image", {1, 8, 8}}, {"noise", noise}});
  result r = run_tool(dir, "train --out " + q(dir / "w") + " --steps 1 --schedule " + q(good) + common);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  nlohmann::json meta = softdiff_meta(dir / "w" / "checkpoint.safetensors");
  CHECK(meta["schedule_kind"] == "wasserstein");
  CHECK(meta["schedule"]["type"] == "tabulated");
  CHECK(meta["noise"]["sigma_max"] == 0.15);

  const fs::path big = write_schedule("big.json", "gaussian_blur", {{"image", {1, 16, 16}}});
  r = run_tool(dir, "train --out " + q(dir / "b") + " --steps 1 --schedule " + q(big) + common);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--schedule " + big.string() + " was made for [1,16,16] images"));
  CHECK_FALSE(fs::exists(dir / "b" / "checkpoint.safetensors"));
  const fs::path mask = write_schedule("mask.json", "mask", nlohmann::json::object());
  r = run_tool(dir, "train --out " + q(dir / "k") + " --steps 1 --schedule " + q(mask) + common);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--schedule " + mask.string() + " was made for operator 'mask' but --op is 'gaussian-blur'"));
  r = run_tool(dir, "train --out " + q(dir / "k") + " --steps 1 --schedule " + q(good) + " --sigma-max 0.2" + common);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--sigma-max 0.2 does not apply to --schedule"));
  r = run_tool(dir, "train --out " + q(dir / "k") + " --steps 1 --schedule " + q(good) + " --schedule-kind geometric" + common);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--schedule-kind geometric contradicts --schedule"));
  r = run_tool(dir, "train --out " + q(dir / "k") + " --steps 1 --schedule-kind wasserstein" + common);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "--schedule-kind wasserstein needs --schedule FILE"));
}

TEST_CASE("cli train: a bad recipe option is refused naming the option and the value, before any data is read",
          "[cli][train][recipe]") {
  REQUIRE(fs::exists(test::tool_path));
  test::temp_dir dir("cli-train-bad-recipe");
  // the data do not exist: an option checked after reading them would fail with status 1 instead
  const std::string common = " --steps 1 --data " + q(dir / "missing.npy") + tiny_net + " --out " + q(dir / "o");
  const std::pair<std::string, std::string> cases[] = {
      {"--sigma-max 0.005", "--sigma-max 0.005 is below --sigma-min 0.01"},
      {"--sigma-min 0.3 --sigma-max 0.2", "--sigma-max 0.2 is below --sigma-min 0.3"},
      {"--sigma-min 0", "--sigma-min 0: must be > 0"},
      {"--noise-fraction 1.5", "--noise-fraction 1.5: must lie in (0, 1)"},
      {"--noise-fraction 0", "--noise-fraction 0: must lie in (0, 1)"},
      {"--loss l1", "--loss l1: unknown loss 'l1' (known: ssm, clean, dsm)"},
      {"--weighting cubic", "--weighting cubic: unknown loss weighting 'cubic'"},
      {"--noise wobbly", "--noise wobbly: unknown noise mode 'wobbly'"},
      {"--schedule-kind spline", "--schedule-kind spline: unknown schedule kind 'spline'"},
      {"--noise growing --schedule-kind mse-matched", "--noise growing applies to --schedule-kind geometric"},
      {"--noise growing --noise-fraction 0.3", "--noise-fraction 0.3 applies to --noise fixed"},
      {"--min-level 0.1 --schedule-kind mse-matched", "--min-level applies to --schedule-kind geometric"},
  };
  for (const auto& [options, message] : cases) {
    const result r = run_tool(dir, "train " + options + common);
    INFO(options << "\n" << r.err);
    CHECK(r.status == 2);
    CHECK(contains(r.err, message));
    CHECK_FALSE(fs::exists(dir / "o"));
  }
}
