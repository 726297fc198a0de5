// `softdiff schedule` (examples/softdiff/schedule.cpp), run as a separate process on small
// synthetic IDX files: both metrics write a softdiff-schedule JSON that schedule::tabulated loads
// (levels from the clean one up to the last, increasing along the path) and the plot PNG, with
// progress on stderr and a summary on stdout; the result drives forward-process and train;
// --ckpt takes operator, data and last level from a checkpoint's metadata; and each bad input
// (empty slice, mismatched shapes, identity, too few levels, too small eps, NaN) gives its
// message and exit status (1: softdiff::error, 2: usage error) without writing a schedule.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/schedule/tabulated.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;  // run_tool, result, q, contains, read_text (support/cli_runner.hpp)

namespace {

/// An IDX image file of n side x side images: a bright rectangle of seeded place and size on a
/// dark background with a little texture (so blurring changes the data set a lot, then less).
void write_idx_images(const fs::path& p, std::uint32_t n, std::uint32_t side) {
  test::bytes b{0, 0, 8, 3};
  test::append_be32(b, n);
  test::append_be32(b, side);
  test::append_be32(b, side);
  std::uint64_t state = 12345;
  auto next = [&state](std::uint32_t m) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state >> 33) % m;
  };
  for (std::uint32_t k = 0; k < n; ++k) {
    const std::uint32_t x0 = next(side / 2), y0 = next(side / 2), w = 2 + next(side / 2), h = 2 + next(side / 2);
    for (std::uint32_t y = 0; y < side; ++y)
      for (std::uint32_t x = 0; x < side; ++x) {
        const bool inside = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
        b.push_back(static_cast<std::uint8_t>((inside ? 200 : 20) + next(40)));
      }
  }
  test::write_bytes(p, b);
}

/// A file with the checkpoint metadata that `schedule --ckpt` reads (and one small tensor).
void write_checkpoint(const fs::path& p, const std::string& op, std::vector<std::size_t> image, const fs::path& data,
                      double level_max) {
  nlohmann::json meta;
  meta["operator"] = {{"name", op}, {"half_size", -1}};
  meta["image"] = image;
  meta["data"] = data.string();
  meta["schedule"] = {{"type", "two_stage"},    {"sigma_min", 0.01}, {"sigma_max", 0.1}, {"noise_fraction", 0.2},
                      {"level_min", 0.0},      {"level_max", level_max}, {"level_growth", "linear"}};
  data::safetensors_writer w;
  const std::vector<float> one{1.0f};
  w.add("unused", {1}, std::span<const float>(one));
  w.set_metadata("softdiff", meta.dump());
  w.write(p);
}

const std::string small = " --slice 300 --levels 40 --target 8 ";

}  // namespace

TEST_CASE("cli schedule: both metrics write a loadable schedule, its plot, progress and a summary",
          "[cli][schedule]") {
  test::temp_dir dir("cli-schedule");
  write_idx_images(dir / "images-idx3-ubyte", 400, 16);
  for (const std::string metric : {"sinkhorn", "sliced"}) {
    const fs::path json = dir / (metric + ".json"), png = dir / (metric + ".png");
    const result r = run_tool(dir, "schedule --data " + q(dir / "images-idx3-ubyte") + small + "--metric " + metric +
                                  (metric == "sinkhorn" ? " --points 64" : "") + " --out " + q(json));
    INFO(metric << "\n" << r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(contains(r.err, "300 images 1x16x16"));
    CHECK(contains(r.err, "epsilon bisection"));
    CHECK(contains(r.err, "shortest path"));
    CHECK(contains(r.out, "epsilon "));
    CHECK(contains(r.out, "8 nodes"));
    CHECK(contains(r.out, "pairs evaluated"));
    CHECK(contains(r.out, "corruptions"));

    const schedule::tabulated s = schedule::tabulated::load_json(json);
    CHECK(s.operator_name() == "gaussian-blur");
    // The noise stage (16 tabulated times in (0, 0.2]) at the clean level, then the 8 path nodes.
    REQUIRE(s.times().size() == 1 + 16 + 7);
    CHECK(s.level(0.0) == 0.0);
    CHECK(s.level(0.2) == 0.0);
    CHECK(s.levels().back() == Approx(18.0 * 16 / 32));  // train's default last level for 16 px
    for (std::size_t k = 17; k < s.levels().size(); ++k) CHECK(s.levels()[k] > s.levels()[k - 1]);
    CHECK(s.sigma(1.0) == Approx(0.1));

    const batch<float> plot = data::read_png<float>(png);
    CHECK(shape_of(plot) == shape4{1, 3, 560, 800});
  }
}

TEST_CASE("cli schedule: the result drives forward-process and train", "[cli][schedule]") {
  test::temp_dir dir("cli-schedule-use");
  write_idx_images(dir / "images-idx3-ubyte", 300, 16);
  const fs::path json = dir / "s.json";
  REQUIRE(run_tool(dir, "schedule --data " + q(dir / "images-idx3-ubyte") + small + "--metric sliced --out " + q(json))
              .status == 0);
  const result fp = run_tool(dir, "forward-process --schedule " + q(json) + " --data " + q(dir / "images-idx3-ubyte") +
                                 " --steps 4 --out " + q(dir / "strip.png"));
  INFO(fp.out << fp.err);
  CHECK(fp.status == 0);
  CHECK(fs::exists(dir / "strip.png"));
  const result tr = run_tool(dir, "train --data " + q(dir / "images-idx3-ubyte") + " --schedule " + q(json) +
                                 " --limit 8 --steps 1 --batch 2 --base-channels 8 --channel-mult 1 --sample-count 1"
                                 " --sample-steps 1 --out " + q(dir / "run"));
  INFO(tr.out << tr.err);
  CHECK(tr.status == 0);
  CHECK(fs::exists(dir / "run" / "checkpoint.safetensors"));
  // a schedule made for one operator does not train another
  const result other = run_tool(dir, "train --data " + q(dir / "images-idx3-ubyte") + " --schedule " + q(json) +
                                    " --op mask --steps 1 --out " + q(dir / "run2"));
  CHECK(other.status == 2);
  CHECK(contains(other.err, "was made for operator 'gaussian-blur' but --op is 'mask'"));
  CHECK(!fs::exists(dir / "run2" / "checkpoint.safetensors"));
}

TEST_CASE("cli schedule: --ckpt takes operator, data and last level from the checkpoint", "[cli][schedule]") {
  test::temp_dir dir("cli-schedule-ckpt");
  write_idx_images(dir / "images-idx3-ubyte", 200, 16);
  write_checkpoint(dir / "mask.safetensors", "mask", {1, 16, 16}, dir / "images-idx3-ubyte", 0.5);
  const result r = run_tool(dir, "schedule --ckpt " + q(dir / "mask.safetensors") +
                                " --slice 100 --levels 20 --target 5 --metric sliced --out " + q(dir / "m.json"));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const schedule::tabulated s = schedule::tabulated::load_json(dir / "m.json");
  CHECK(s.operator_name() == "mask");
  CHECK(s.levels().back() == Approx(0.5));
  CHECK(contains(r.err, "100 images 1x16x16"));
}

TEST_CASE("cli schedule: bad input gives a message and an exit status, no schedule", "[cli][schedule]") {
  test::temp_dir dir("cli-schedule-bad");
  const fs::path idx = dir / "images-idx3-ubyte", out = dir / "s.json";
  write_idx_images(idx, 50, 16);
  write_idx_images(dir / "empty-idx3-ubyte", 0, 16);
  batch<float> with_nan(shape4{3, 1, 8, 8}, 0.5f);
  with_nan.data()[64 + 9] = std::nanf("");
  data::write_npy(dir / "nan.npy", with_nan);
  data::write_npy(dir / "constant.npy", batch<float>(shape4{4, 1, 8, 8}, 0.0f));  // blur leaves zeros unchanged
  write_checkpoint(dir / "rgb.safetensors", "gaussian-blur", {3, 32, 32}, idx, 18);
  write_checkpoint(dir / "identity.safetensors", "identity", {1, 16, 16}, idx, 0);

  struct bad_case {
    std::string args;
    int status;
    std::vector<std::string> messages;
  };
  const std::string data = " --data " + q(idx);
  const std::vector<bad_case> cases{
      {"--slice 0" + data, 2, {"--slice 0 leaves the data slice empty"}},
      {"--data " + q(dir / "empty-idx3-ubyte"), 1, {"no images, so the data slice is empty"}},
      {"--ckpt " + q(dir / "rgb.safetensors") + data, 1,
       {"images are 1x16x16 but checkpoint", "was trained on 3x32x32"}},
      {"--op identity" + data, 2, {"identity cannot be scheduled", "level range is empty"}},
      {"--ckpt " + q(dir / "identity.safetensors"), 1, {"uses operator identity, which cannot be scheduled"}},
      {"--levels 4 --target 8" + data, 2, {"--target 8 nodes need at least 7 candidate levels", "--levels is 4"}},
      {"--epsilon 1e-9 --levels 20 --metric sliced" + data, 1, {"no path from level 0 to level 20", "increase epsilon"}},
      {"--data " + q(dir / "nan.npy"), 1, {"image 1 has the non-finite value nan", "row 1, column 1"}},
      {"--levels 10 --target 4 --data " + q(dir / "constant.npy"), 1,
       {"does not change these images", "nothing to schedule"}},
      {"--op mask --ckpt " + q(dir / "rgb.safetensors"), 2, {"--op mask differs from operator gaussian-blur"}},
      {"--metric wasserstein" + data, 2, {"unknown --metric 'wasserstein'"}},
      {"--max-level 2 --op mask" + data, 2, {"--max-level 2 must lie in (0, 1] for operator mask"}},
  };
  for (const bad_case& c : cases) {
    const result r = run_tool(dir, "schedule " + c.args + " --out " + q(out));
    INFO(c.args << "\n" << r.out << r.err);
    CHECK(r.status == c.status);
    for (const std::string& m : c.messages) CHECK(contains(r.err, m));
    CHECK_FALSE(fs::exists(out));
  }
  const result wrong_out = run_tool(dir, "schedule" + data + " --out " + q(dir / "s.txt"));
  CHECK(wrong_out.status == 2);
  CHECK(contains(wrong_out.err, "must end in .json"));
}
