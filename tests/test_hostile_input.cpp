// Hostile input, each case made here: deeply nested JSON, numbers that do not fit, missing keys,
// non-finite weights, shapes that overflow, paths that are not UTF-8, data out of range, an --out
// that is a file. Every one must end in a softdiff::error (or exit status 1, 2 for usage) whose
// message names the file and the field, never a crash, an undefined conversion or a NaN written
// with exit status 0.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/data/json.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/nn/refunet_config.hpp"
#include "softdiff/schedule/tabulated.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;
using Catch::Matchers::Contains;

namespace {

/// `depth` nested arrays: [[[...]]].
std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

/// A 2-step checkpoint of a tiny network, trained by the tool.
fs::path tiny_checkpoint(const temp_dir& dir) {
  batch<float> x(shape4{8, 1, 8, 8});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  data::write_npy(dir / "x.npy", x);
  const result r = run_tool(dir, "train --data " + q(dir / "x.npy") + " --out " + q(dir / "run") +
                                     " --steps 2 --base-channels 8 --channel-mult 1,2 --batch 4 --warmup 1 --sample-every 0");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  return dir / "run" / "checkpoint.safetensors";
}

/// A copy of checkpoint `from` with its metadata entry `key` replaced by `text`, or a tensor's
/// first element replaced by `first_weight` when `tensor` is given.
fs::path altered(const fs::path& from, const fs::path& to, const std::string& key, const std::string& text,
                 const std::string& tensor = "", float first_weight = 0) {
  const data::safetensors_file f = data::read_safetensors(from);
  data::safetensors_writer w;
  for (const auto& [name, t] : f.tensors) {
    auto bytes = t.bytes;
    if (name == tensor) std::memcpy(bytes.data(), &first_weight, sizeof(float));
    w.add_bytes(name, t.dtype, t.shape, bytes);
  }
  for (const auto& [k, v] : f.metadata) w.set_metadata(k, k == key ? text : v);
  w.write(to);
  return to;
}

nlohmann::json softdiff_meta(const fs::path& ckpt) {
  return nlohmann::json::parse(data::read_safetensors(ckpt).metadata.at("softdiff"));
}

}  // namespace

TEST_CASE("hostile JSON: nesting is bounded, numbers are checked, messages are clean", "[hostile][json]") {
  // 100,000 levels: dump() of it would overflow the stack; the parser refuses it first.
  CHECK_THROWS_WITH(data::parse_json(nested(100000), "the text"), Contains("the text is JSON nested deeper than 64 levels"));
  CHECK_NOTHROW(data::parse_json(nested(data::max_json_depth), "the text"));
  CHECK_THROWS_WITH(data::parse_json(std::string("{\"a\": "), "the text"), Contains("the text is not valid JSON: ") &&
                                                                               !Contains("[json.exception"));
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text("{\"x\": " + nested(5000) + "}"), Contains("nested deeper"));

  const auto j = nlohmann::json::parse(R"({"big": 1e300, "neg": -1, "frac": 2.5, "ok": 7, "huge": 18446744073709551615})");
  CHECK(data::json_integer<int>(j["ok"], "ok") == 7);
  CHECK_THROWS_WITH(data::json_integer<std::int64_t>(j["big"], "\"step\""),
                    Contains("\"step\" must be an integer from") && Contains("got 1e+300"));
  CHECK_THROWS_WITH(data::json_integer<std::size_t>(j["neg"], "n"), Contains("got -1"));
  CHECK_THROWS_WITH(data::json_integer<int>(j["frac"], "n"), Contains("got 2.5"));
  CHECK_THROWS_WITH(data::json_integer<std::int64_t>(j["huge"], "n"), Contains("got 18446744073709551615"));
  CHECK_THROWS_WITH(data::json_number(nlohmann::json(nullptr), "\"lr\""), Contains("\"lr\" must be a finite number, got null"));
  CHECK_THROWS_WITH(data::json_member(j, "step", "meta"), Contains("meta has no \"step\""));
  CHECK(data::json_excerpt(nlohmann::json(std::string(1000, 'a'))).size() < 260);
  CHECK_THROWS_WITH(data::require_utf8("caf\xe9", "the path"), Contains("the path is not valid UTF-8"));
  CHECK_NOTHROW(data::require_utf8("caf\xc3\xa9", "the path"));
}

TEST_CASE("hostile schedule file: deep nesting is refused", "[hostile][schedule]") {
  temp_dir dir("hostile-schedule");
  write_text(dir / "deep.json", "{\"format\": \"softdiff-schedule\", \"version\": 1, \"x\": " + nested(200000) + "}");
  CHECK_THROWS_WITH(schedule::tabulated::load_json(dir / "deep.json"), Contains("deep.json") && Contains("nested deeper"));
}

TEST_CASE("hostile RefUNet configuration: a network no machine holds is refused before allocation", "[hostile]") {
  nn::refunet_config c;
  c.base_channels = 1000000000;
  CHECK_THROWS_WITH(c.validate(), Contains("parameters, more than the"));
  nn::refunet_config d;  // the default is far inside the bound
  CHECK(d.parameter_bound() < nn::refunet_config::max_parameters / 100);
}

TEST_CASE("hostile shapes: empty arrays with huge dimensions are refused before indexing", "[hostile][data]") {
  temp_dir dir("hostile-shapes");
  bytes idx{0, 0, 8, 3};
  append_be32(idx, 0);
  append_be32(idx, 0xffffffffu);
  append_be32(idx, 0xffffffffu);
  write_bytes(dir / "empty-images-idx3-ubyte", idx);
  CHECK_THROWS_WITH(data::read_idx_images<float>(dir / "empty-images-idx3-ubyte"), Contains("too large to index"));

  const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1, 1099511627776, 1099511627776), }";
  std::string text = "\x93NUMPY";
  text += '\x01';
  text += '\x00';
  std::string padded = header + std::string(64 - (10 + header.size() + 1) % 64, ' ') + "\n";
  text += static_cast<char>(padded.size() & 0xff);
  text += static_cast<char>(padded.size() >> 8);
  write_text(dir / "empty.npy", text + padded);
  CHECK_THROWS_WITH(data::read_npy_batch<float>(dir / "empty.npy"), Contains("empty.npy") && Contains("too large to index"));
}

TEST_CASE("hostile checkpoints through the tool", "[hostile][cli]") {
  REQUIRE(fs::exists(tool_path));
  temp_dir dir("hostile-ckpt");
  const fs::path good = tiny_checkpoint(dir);
  const std::string meta = softdiff_meta(good).dump();
  auto sample = [&](const fs::path& ckpt) {
    return run_tool(dir, "sample --ckpt " + q(ckpt) + " --count 2 --steps 2 --out " + q(dir / "s.png"));
  };
  auto with = [&](const std::string& name, nlohmann::json m) {
    return altered(good, dir / name, "softdiff", m.dump());
  };

  SECTION("deeply nested metadata") {
    const fs::path deep = altered(good, dir / "deep.safetensors", "softdiff",
                                  meta.substr(0, meta.size() - 1) + ",\"extra\":" + nested(100000) + "}");
    for (const std::string cmd : {"sample --count 2 --steps 2 --out " + q(dir / "s.png") + " --ckpt ",
                                  "schedule --out " + q(dir / "s.json") + " --ckpt "}) {
      const result r = run_tool(dir, cmd + q(deep));
      INFO(cmd << r.err);
      CHECK(r.status == 1);
      CHECK(contains(r.err, "deep.safetensors': __metadata__ 'softdiff' is JSON nested deeper than 64 levels"));
    }
  }
  SECTION("a step of 1e300, a half size of 1e30") {
    nlohmann::json m = softdiff_meta(good);
    m["step"] = 1e300;
    result r = sample(with("step.safetensors", m));
    CHECK(r.status == 1);
    CHECK((contains(r.err, "step.safetensors") && contains(r.err, "\"step\" must be an integer")));
    m = softdiff_meta(good);
    m["operator"]["half_size"] = 1e30;
    r = sample(with("half.safetensors", m));
    CHECK(r.status == 1);
    CHECK((contains(r.err, "half.safetensors") && contains(r.err, "\"half_size\" must be an integer")));
  }
  SECTION("a missing key names the checkpoint, without nlohmann's tag") {
    nlohmann::json m = softdiff_meta(good);
    m.erase("operator");
    const result r = sample(with("noop.safetensors", m));
    CHECK(r.status == 1);
    CHECK((contains(r.err, "noop.safetensors") && contains(r.err, "'operator' not found")));
    CHECK(!contains(r.err, "json.exception"));
  }
  SECTION("an empty tabulated schedule") {
    nlohmann::json m = softdiff_meta(good);
    m["schedule"] = {{"type", "tabulated"},
                     {"table", {{"format", "softdiff-schedule"}, {"version", 1}, {"t", nlohmann::json::array()},
                                {"level", nlohmann::json::array()}, {"sigma", nlohmann::json::array()}}}};
    const fs::path empty = with("empty.safetensors", m);
    for (const std::string cmd : {"schedule --out " + q(dir / "s.json") + " --ckpt ",
                                  "sample --count 2 --steps 2 --out " + q(dir / "s.png") + " --ckpt "}) {
      const result r = run_tool(dir, cmd + q(empty));
      INFO(cmd << r.err);
      CHECK(r.status == 1);
      CHECK((contains(r.err, "empty.safetensors") && contains(r.err, "needs at least 2 points")));
    }
  }
  SECTION("a network no machine holds") {
    nlohmann::json c = nlohmann::json::parse(data::read_safetensors(good).metadata.at("refunet_config"));
    c["base_channels"] = 1000000000;
    const result r = sample(altered(good, dir / "bigc.safetensors", "refunet_config", c.dump()));
    CHECK(r.status == 1);
    CHECK((contains(r.err, "bigc.safetensors") && contains(r.err, "parameters, more than the")));
  }
  SECTION("a NaN weight is refused on load, not written out") {
    const std::string tensor = data::read_safetensors(good).tensors.begin()->first;
    const fs::path nan = altered(good, dir / "nan.safetensors", "", "", tensor, std::numeric_limits<float>::quiet_NaN());
    batch<float> x(shape4{2, 1, 8, 8});
    x.fill(0.25f);
    data::write_npy(dir / "xt.npy", x);
    const result r = run_tool(dir, "denoise --ckpt " + q(nan) + " --in " + q(dir / "xt.npy") + " --t 0.5 --out " +
                                       q(dir / "y.npy"));
    CHECK(r.status == 1);
    CHECK((contains(r.err, "nan.safetensors") && contains(r.err, tensor) && contains(r.err, "element 0 is nan")));
    CHECK(!fs::exists(dir / "y.npy"));
  }
}

TEST_CASE("hostile command lines: --out a file, a path that is not UTF-8, data out of range, overflow", "[hostile][cli]") {
  REQUIRE(fs::exists(tool_path));
  temp_dir dir("hostile-cli");
  batch<float> x(shape4{8, 1, 8, 8});
  x.fill(0.5f);
  data::write_npy(dir / "x.npy", x);
  const std::string net = " --steps 2 --base-channels 8 --channel-mult 1,2 --batch 4 --sample-every 0";

  write_text(dir / "file", "not a directory");
  result r = run_tool(dir, "train --data " + q(dir / "x.npy") + " --out " + q(dir / "file") + net);
  CHECK(r.status == 2);
  CHECK(contains(r.err, "is a file; it must name a directory"));

  // A Latin-1 file name: refused before training, not at the first checkpoint.
  const fs::path latin1 = dir / "caf\xe9.npy";
  fs::copy_file(dir / "x.npy", latin1);
  r = run_tool(dir, "train --data " + q(latin1) + " --out " + q(dir / "l1") + net);
  CHECK(r.status == 1);
  CHECK(contains(r.err, "the --data path is not valid UTF-8"));
  CHECK(!fs::exists(dir / "l1" / "checkpoint.safetensors"));

  x.fill(255.0f);  // unscaled 8-bit pixels
  data::write_npy(dir / "u8.npy", x);
  r = run_tool(dir, "train --data " + q(dir / "u8.npy") + " --out " + q(dir / "u8") + net);
  CHECK(r.status == 1);
  CHECK(contains(r.err, "u8.npy: image 0 has the value 255 at channel 0, row 0, column 0; softdiff takes images in [-1, 1]"));

  x.fill(3.0e38f);  // finite, but the DCT's sums overflow
  data::write_npy(dir / "big.npy", x);
  r = run_tool(dir, "corrupt --op dct-blur --level 2 --in " + q(dir / "big.npy") + " --out " + q(dir / "y.npy"));
  CHECK(r.status == 1);
  CHECK(contains(r.err, "big.npy: the result has the non-finite value"));
  CHECK(!fs::exists(dir / "y.npy"));
}

TEST_CASE("stale temporaries of killed writers are removed by the next write, live ones kept", "[hostile][data]") {
  temp_dir dir("hostile-tmp");
  const fs::path dead = dir / "x.npy.tmp.999999999.0";  // above any pid_max: no such process
  const fs::path live = dir / ("x.npy.tmp." + std::to_string(::getppid()) + ".0");
  const fs::path other = dir / "y.npy.tmp.999999999.0";  // another destination's: not ours to remove
  for (const fs::path& p : {dead, live, other}) write_text(p, "half a file");
  batch<float> x(shape4{1, 1, 2, 2});
  x.fill(0.0f);
  data::write_npy(dir / "x.npy", x);
  CHECK(!fs::exists(dead));
  CHECK(fs::exists(live));
  CHECK(fs::exists(other));
  CHECK(fs::exists(dir / "x.npy"));
}
