// The seed corpora of the fuzz targets (fuzz/, scripts/fuzz.sh), made and checked here: every
// valid seed must be read back, every hostile one refused with a softdiff::error naming the
// problem. With SOFTDIFF_FUZZ_CORPUS_DIR set, each seed is also written to
// <dir>/<target>/<name>, which is how scripts/fuzz.sh gets its corpora. Inputs that the fuzzers
// found to be defects are kept here as hostile seeds, so that each stays a regression test.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/cifar10.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/schedule/two_stage.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;
using Catch::Matchers::Contains;

namespace {

/// Copies `file` into the corpus of `target` when SOFTDIFF_FUZZ_CORPUS_DIR is set.
void seed(const std::string& target, const fs::path& file) {
  const char* dir = std::getenv("SOFTDIFF_FUZZ_CORPUS_DIR");
  if (dir == nullptr || *dir == '\0') return;
  const fs::path to = fs::path(dir) / target;
  fs::create_directories(to);
  fs::copy_file(file, to / file.filename(), fs::copy_options::overwrite_existing);
}

bytes idx_header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  bytes b;
  append_be32(b, magic);
  for (auto d : dims) append_be32(b, d);
  return b;
}

bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  bytes b = idx_header(0x00000803, {n, rows, cols});
  for (std::uint32_t i = 0; i < n * rows * cols; ++i) b.push_back(static_cast<std::uint8_t>(37 * i % 256));
  return b;
}

batch<float> ramp(shape4 s) {
  batch<float> x(s);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  return x;
}

}  // namespace

TEST_CASE("fuzz seeds: IDX, plain and through gzip", "[fuzz][idx]") {
  temp_dir dir("seeds-idx");
  const fs::path images = dir / "images-2x3x4.idx", labels = dir / "labels-3.idx";
  write_bytes(images, idx_images(2, 3, 4));
  bytes l = idx_header(0x00000801, {3});
  l.insert(l.end(), {1, 7, 9});
  write_bytes(labels, l);
  CHECK(data::read_idx_images<float>(images).shape()[0] == 2);
  CHECK(data::read_idx_labels(labels).size() == 3);
  const fs::path gz = dir / "images-2x3x4.idx.gz";
  write_gzip(gz, idx_images(2, 3, 4));
  CHECK(data::read_idx_images<float>(gz).shape()[0] == 2);
  for (const auto& f : {images, labels, gz}) seed("fuzz_idx", f);
  // fuzz_idx_gzip compresses its input itself: its seeds are the plain files.
  for (const auto& f : {images, labels}) seed("fuzz_idx_gzip", f);

  // A header declaring more than the file can hold is refused before anything is allocated: a
  // plain file holds at most its size, a gzip file 1032 times its size (deflate's largest ratio).
  const fs::path claims = dir / "claims-60000x28x28.idx";
  bytes c = idx_header(0x00000803, {60000, 28, 28});
  c.resize(c.size() + 100, 7);
  write_bytes(claims, c);
  CHECK_THROWS_WITH(data::read_idx_images<float>(claims),
                    Contains("declares 60000 images of 28x28 (47040000 bytes), more than a file of its size can hold"));
  const fs::path claims_gz = dir / "claims-4e9.idx.gz";
  write_gzip(claims_gz, idx_header(0x00000801, {0xFFFFFFFFu}));
  CHECK_THROWS_WITH(data::read_idx_labels(claims_gz), Contains("more than a gzip file of its size can hold"));
  const fs::path empty_huge = dir / "empty-huge.idx";
  write_bytes(empty_huge, idx_header(0x00000803, {0, 0xFFFFFFFFu, 0xFFFFFFFFu}));
  CHECK_THROWS_AS(data::read_idx_images<float>(empty_huge), error);
  for (const auto& f : {claims, claims_gz, empty_huge}) seed("fuzz_idx", f);
}

TEST_CASE("fuzz seeds: CIFAR-10 batches", "[fuzz][cifar10]") {
  temp_dir dir("seeds-cifar");
  bytes b;
  for (int r = 0; r < 2; ++r) {
    b.push_back(static_cast<std::uint8_t>(3 + r));
    for (std::size_t i = 0; i < data::cifar10_pixels; ++i) b.push_back(static_cast<std::uint8_t>((i * 7 + r) % 256));
  }
  const fs::path two = dir / "two-records.bin";
  write_bytes(two, b);
  CHECK(data::read_cifar10<float>(two).labels.size() == 2);
  b.resize(data::cifar10_record + 100);
  const fs::path partial = dir / "one-and-a-bit.bin";
  write_bytes(partial, b);
  CHECK_THROWS_WITH(data::read_cifar10<float>(partial), Contains("not a whole number of 3073-byte records"));
  for (const auto& f : {two, partial}) seed("fuzz_cifar10", f);
}

TEST_CASE("fuzz seeds: PNG, gray and colour", "[fuzz][png]") {
  temp_dir dir("seeds-png");
  const fs::path gray = dir / "gray-5x7.png", rgb = dir / "rgb-4x3.png";
  data::write_png(gray, ramp(shape4{1, 1, 5, 7}), 0);
  data::write_png(rgb, ramp(shape4{1, 3, 4, 3}), 0);
  CHECK(shape_of(data::read_png<float>(gray)) == shape4{1, 1, 5, 7});
  CHECK(shape_of(data::read_png<float>(rgb)) == shape4{1, 3, 4, 3});
  for (const auto& f : {gray, rgb}) seed("fuzz_png", f);
}

TEST_CASE("fuzz seeds: .npy arrays", "[fuzz][npy]") {
  temp_dir dir("seeds-npy");
  const fs::path f4 = dir / "f4-2x1x3x4.npy";
  data::write_npy(f4, ramp(shape4{2, 1, 3, 4}));
  CHECK(data::read_npy<float>(f4).data.size() == 24);
  const fs::path empty = dir / "f4-empty.npy";
  const std::vector<float> none;
  const std::vector<std::size_t> zero_shape{0, 1, 2, 2};
  data::write_npy<float>(empty, none, zero_shape);
  CHECK(data::read_npy<float>(empty).data.empty());
  for (const auto& f : {f4, empty}) seed("fuzz_npy", f);
  for (const char* name : {"npy_arange_f4_2x1x3x4.npy", "npy_arange_f8_2x1x3x4_v2.npy"}) {
    const fs::path f = fs::path(SOFTDIFF_SOURCE_DIR) / "tests" / "data" / name;
    CHECK(data::read_npy<double>(f).data.size() == 24);
    seed("fuzz_npy", f);
  }
}

TEST_CASE("fuzz seeds: safetensors files and a checkpoint of the tool", "[fuzz][safetensors][cli]") {
  temp_dir dir("seeds-st");
  const fs::path tiny = fs::path(SOFTDIFF_SOURCE_DIR) / "tests" / "data" / "tiny.safetensors";
  CHECK_FALSE(data::read_safetensors(tiny).tensors.empty());
  seed("fuzz_safetensors", tiny);

  // A checkpoint of the smallest network the tool trains, 1 step.
  data::write_npy(dir / "x.npy", ramp(shape4{4, 1, 8, 8}));
  const result r = run_tool(dir, "train --data " + q(dir / "x.npy") + " --out " + q(dir / "run") +
                                     " --steps 1 --base-channels 8 --channel-mult 1 --batch 2 --warmup 1 --sample-every 0");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const fs::path ckpt = dir / "checkpoint.safetensors";
  fs::copy_file(dir / "run" / "checkpoint.safetensors", ckpt);
  const data::safetensors_file f = data::read_safetensors(ckpt);
  CHECK(f.metadata.count("softdiff") == 1);
  // The same without the training state (Adam moments, raw weights): what sampling reads, smaller.
  data::safetensors_writer w;
  for (const auto& [name, t] : f.tensors)
    if (!name.starts_with("train.")) w.add_bytes(name, t.dtype, t.shape, t.bytes);
  for (const auto& [k, v] : f.metadata) w.set_metadata(k, v);
  const fs::path sampling = dir / "sampling-only.safetensors";
  w.write(sampling);
  const result s = run_tool(dir, "sample --ckpt " + q(sampling) + " --count 1 --steps 2 --out " + q(dir / "s.png"));
  INFO(s.out << s.err);
  CHECK(s.status == 0);
  for (const auto& p : {ckpt, sampling}) {
    seed("fuzz_checkpoint", p);
    seed("fuzz_safetensors", p);
  }
}

TEST_CASE("fuzz seeds: tabulated schedule files", "[fuzz][schedule]") {
  temp_dir dir("seeds-schedule");
  const auto table = schedule::tabulated::from(schedule::two_stage(), 9, "dct-blur");
  const fs::path file = dir / "two-stage-9.json";
  table.save_json(file);
  CHECK(schedule::tabulated::load_json(file).times().size() == 9);
  const fs::path bad = dir / "decreasing-t.json";
  write_text(bad, R"({"format": "softdiff-schedule", "version": 1, "t": [0, 0.5, 0.4, 1], "level": [0, 1, 2, 3],
                      "sigma": [0, 0.1, 0.2, 0.3]})");
  CHECK_THROWS_WITH(schedule::tabulated::load_json(bad), Contains("not strictly increasing"));
  for (const auto& f : {file, bad}) seed("fuzz_schedule", f);
}

TEST_CASE("fuzz seeds: command lines for the option parser", "[fuzz][cli]") {
  temp_dir dir("seeds-cli");
  // The target splits its input at NUL bytes into arguments.
  const std::vector<std::pair<std::string, std::vector<std::string>>> lines = {
      {"required-and-number", {"--ckpt", "a.safetensors", "--steps", "20", "--lr=1e-3"}},
      {"lists-and-flag",
       {"--ckpt=x", "--sampler", "naive,momentum", "--step-list", "10,20", "--seeds", "1,2", "--clip", "off", "--resume"}},
      {"help", {"--help"}},
  };
  for (const auto& [name, args] : lines) {
    std::string text;
    for (const auto& a : args) text += (text.empty() ? "" : std::string(1, '\0')) + a;
    const fs::path f = dir / (name + ".args");
    write_text(f, text);
    CHECK(read_text(f).size() == text.size());
    seed("fuzz_cli_options", f);
  }
}
