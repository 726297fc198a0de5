// The softdiff command-line tool (examples/softdiff), run as a separate process: help on every
// level, `corrupt` against the library's operators, `forward-process` output size and content,
// and errors (unknown names, bad levels, malformed files) as messages with a non-zero status.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/fft_conv.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/nn/classifier.hpp"
#include "softdiff/op/mask.hpp"
#include "softdiff/schedule/tabulated.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;  // run_tool, result, q, contains, read_text (support/cli_runner.hpp)

namespace {

template <class T>
batch<T> ramp(shape4 s) {
  batch<T> x(s);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(std::sin(0.7 * static_cast<double>(i)));
  return x;
}


}  // namespace

TEST_CASE("cli: the tool is built", "[cli]") {
  REQUIRE(fs::exists(test::tool_path));
}

TEST_CASE("cli: the tool runs with the tests' NaN-filled heap", "[cli]") {
  // support/poison_heap.cpp replaces the tool's operator new when the tests run it; the dynamic
  // linker's log shows the binding. The sanitizer build fills the heap through ASan instead.
  if (poison_env().empty()) {
    SUCCEED("sanitizer build: ASan's malloc_fill_byte poisons the tool's heap (scripts/sanitize.sh)");
    return;
  }
  temp_dir dir("cli-poison");
  const result r = run_tool(dir, "--help", "LD_DEBUG=bindings");
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "libsoftdiff_poison_heap.so [0]: normal symbol `_Znwm'"));
}

#if !SOFTDIFF_ENABLE_MPI
TEST_CASE("cli: a tool built without MPI refuses to train as several MPI processes", "[cli][mpi]") {
  temp_dir dir("cli-no-mpi");
  const result r = run_tool(dir, "train --out " + q(dir / "run") + " --steps 1", "OMPI_COMM_WORLD_SIZE=2");
  CHECK(r.status == 2);
  CHECK(contains(r.err, "started as 2 processes, but this softdiff was built without MPI"));
  CHECK_FALSE(std::filesystem::exists(dir / "run"));
}
#endif

TEST_CASE("cli: help at every level", "[cli]") {
  test::temp_dir dir("cli-help");
  for (const char* args : {"--help", "-h", "help"}) {
    const result r = run_tool(dir, args);
    INFO(args << "\n" << r.out << r.err);
    CHECK(r.status == 0);
    CHECK(contains(r.out, "corrupt"));
    CHECK(contains(r.out, "forward-process"));
  }
  for (const char* cmd : {"corrupt", "forward-process"}) {
    for (const std::string& args : {std::string(cmd) + " --help", std::string("help ") + cmd,
                                   std::string(cmd) + " --op mask --help"}) {
      const result r = run_tool(dir, args);
      INFO(args << "\n" << r.out << r.err);
      CHECK(r.status == 0);
      CHECK(contains(r.out, std::string("Usage: softdiff ") + cmd));
      CHECK(contains(r.out, "--op"));
      CHECK(contains(r.out, "mask"));
    }
  }
  const result none = run_tool(dir, "");
  CHECK(none.status == 2);
  CHECK(contains(none.err, "Usage: softdiff <command>"));
  const result unknown = run_tool(dir, "frobnicate");
  CHECK(unknown.status == 2);
  CHECK(contains(unknown.err, "unknown command 'frobnicate'"));
  const result help_unknown = run_tool(dir, "help frobnicate");
  CHECK(help_unknown.status == 2);
}

TEST_CASE("cli: corrupt with scale multiplies by the factor alpha and keeps the dtype", "[cli]") {
  test::temp_dir dir("cli-scale");
  const batch<float> xf = ramp<float>({2, 3, 4, 5});
  data::write_npy(dir / "xf.npy", xf);
  const result r = run_tool(dir, "corrupt --op scale --level 0.5 --in " + q(dir / "xf.npy") + " --out " + q(dir / "yf.npy"));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(data::read_npy_header(dir / "yf.npy").dtype == data::npy_dtype::float32);
  const batch<float> yf = data::read_npy_batch<float>(dir / "yf.npy");
  REQUIRE(shape_of(yf) == shape_of(xf));
  for (std::size_t i = 0; i < xf.size(); ++i) CHECK(yf.data()[i] == 0.5f * xf.data()[i]);

  const batch<double> xd = ramp<double>({1, 1, 3, 3});
  data::write_npy(dir / "xd.npy", xd);
  REQUIRE(run_tool(dir, "corrupt --op scale --level=0.25 --adjoint --in " + q(dir / "xd.npy") + " --out " +
                       q(dir / "yd.npy")).status == 0);
  CHECK(data::read_npy_header(dir / "yd.npy").dtype == data::npy_dtype::float64);
  const batch<double> yd = data::read_npy_batch<double>(dir / "yd.npy");
  for (std::size_t i = 0; i < xd.size(); ++i) CHECK(yd.data()[i] == Approx(0.25 * xd.data()[i]).epsilon(1e-15));

  REQUIRE(run_tool(dir, "corrupt --op identity --level 3 --in " + q(dir / "xd.npy") + " --out " + q(dir / "id.npy"))
              .status == 0);
  CHECK(bool(data::read_npy_batch<double>(dir / "id.npy") == xd));
}

TEST_CASE("cli: corrupt equals the library's apply and apply_adjoint", "[cli]") {
  test::temp_dir dir("cli-ops");
  const batch<float> x = ramp<float>({2, 1, 9, 7});
  data::write_npy(dir / "x.npy", x);
  auto via_tool = [&](const std::string& options) {
    const result r = run_tool(dir, "corrupt " + options + " --in " + q(dir / "x.npy") + " --out " + q(dir / "y.npy"));
    INFO(options << "\n" << r.out << r.err);
    REQUIRE(r.status == 0);
    return data::read_npy_batch<float>(dir / "y.npy");
  };
  auto same = [](const batch<float>& a, const batch<float>& b) {
    REQUIRE(shape_of(a) == shape_of(b));
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a.data()[i] == b.data()[i]);
  };
  batch<float> expect;
  op::gaussian_blur<float>(4).apply(1.2, x, expect);
  same(via_tool("--op gaussian-blur --level 1.2 --half-size 4"), expect);
  op::gaussian_blur<float>(4).apply_adjoint(0.7, x, expect);
  same(via_tool("--op gaussian-blur --level 0.7 --half-size 4 --adjoint"), expect);
  op::gaussian_blur<float>().apply(3.0, x, expect);  // default half size 80, larger than the image
  same(via_tool("--op gaussian-blur --level 3"), expect);
  op::fft_conv<float>(3).apply(1.5, x, expect);
  same(via_tool("--op fft-conv --level 1.5 --half-size 3"), expect);
  op::fft_conv<float>(3).apply_adjoint(1.5, x, expect);
  same(via_tool("--op fft-conv --level 1.5 --half-size 3 --adjoint"), expect);
  op::dct_blur<float>().apply(2.0, x, expect);
  same(via_tool("--op dct-blur --level 2"), expect);
  op::mask<float>().apply(0.3, x, expect);
  same(via_tool("--op mask --level 0.3"), expect);
}

TEST_CASE("cli: corrupt reports bad names, levels, options and files", "[cli]") {
  test::temp_dir dir("cli-bad");
  data::write_npy(dir / "x.npy", ramp<float>({1, 1, 4, 4}));
  const std::string io = " --in " + q(dir / "x.npy") + " --out " + q(dir / "y.npy");
  auto expect_failure = [&](const std::string& args, int status, const std::string& message) {
    const result r = run_tool(dir, args);
    INFO(args << "\n" << r.out << r.err);
    CHECK(r.status == status);
    CHECK(contains(r.err, message));
  };
  expect_failure("corrupt --op blurry --level 1" + io, 2, "unknown operator 'blurry'");
  expect_failure("corrupt --op mask --level nan" + io, 2, "'nan' is not a finite number");
  expect_failure("corrupt --op mask --level abc" + io, 2, "'abc' is not a finite number");
  expect_failure("corrupt --op mask --level 1.5" + io, 2, "outside the range");
  expect_failure("corrupt --op dct-blur --level -1" + io, 2, "outside the range");
  expect_failure("corrupt --op scale --level 2" + io, 2, "factor alpha and must lie in [0, 1]");
  expect_failure("corrupt --op mask --level 0.5 --half-size 3" + io, 2, "--half-size applies only");
  expect_failure("corrupt --op mask --level 0.5 --colour red" + io, 2, "unknown option '--colour'");
  expect_failure("corrupt --op mask --level 0.5 --out " + q(dir / "y.npy"), 2, "missing required option --in");
  expect_failure("corrupt --op mask --level 0.5 --level 0.2" + io, 2, "given twice");
  expect_failure("corrupt --op mask --level 0.5 --adjoint=yes" + io, 2, "takes no value");
  expect_failure("corrupt --op mask --level 0.5 stray" + io, 2, "unexpected argument 'stray'");
  expect_failure("corrupt --op mask --level", 2, "needs a value");
  CHECK(!fs::exists(dir / "y.npy"));

  const auto bad_in = [&](const fs::path& p) { return " --in " + q(p) + " --out " + q(dir / "y.npy"); };
  expect_failure("corrupt --op mask --level 0.5" + bad_in(dir / "missing.npy"), 1, "missing.npy: cannot read");
  std::ofstream(dir / "junk.npy") << "this is not numpy";
  expect_failure("corrupt --op mask --level 0.5" + bad_in(dir / "junk.npy"), 1, "junk.npy: not a .npy file");
  const std::string good = read_text(dir / "x.npy");
  std::ofstream(dir / "cut.npy", std::ios::binary) << good.substr(0, good.size() - 5);
  expect_failure("corrupt --op mask --level 0.5" + bad_in(dir / "cut.npy"), 1, "cut.npy: truncated .npy data");
  const std::vector<float> flat{1, 2, 3, 4};
  const std::vector<std::size_t> shape2{2, 2};
  data::write_npy<float>(dir / "flat.npy", flat, shape2);
  expect_failure("corrupt --op mask --level 0.5" + bad_in(dir / "flat.npy"), 1, "flat.npy: expected a 4-D");
  const std::vector<std::uint8_t> bytes{1, 2, 3, 4};
  const std::vector<std::size_t> shape4d{1, 1, 2, 2};
  data::write_npy<std::uint8_t>(dir / "u8.npy", bytes, shape4d);
  expect_failure("corrupt --op mask --level 0.5" + bad_in(dir / "u8.npy"), 1, "corrupt needs float32");
  batch<float> nan = ramp<float>({1, 1, 2, 2});
  nan(0, 0, 1, 1) = std::nanf("");
  data::write_npy(dir / "nan.npy", nan);
  expect_failure("corrupt --op mask --level 0.5" + bad_in(dir / "nan.npy"), 1, "nan.npy: non-finite value");
  expect_failure("corrupt --op mask --level 0.5 --in " + q(dir / "x.npy") + " --out " + q(dir / "no/dir/y.npy"), 1,
                 "y.npy");
  CHECK(!fs::exists(dir / "y.npy"));
}

TEST_CASE("cli: forward-process writes a strip of the right size starting at x_0", "[cli]") {
  test::temp_dir dir("cli-fp");
  batch<float> x = ramp<float>({3, 1, 8, 8});
  data::write_npy(dir / "x.npy", x);
  const result r = run_tool(dir, "forward-process --in " + q(dir / "x.npy") + " --image-index 2 --steps 4 --half-size 4 "
                                                                          "--out " + q(dir / "strip.png"));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const batch<float> strip = data::read_png<float>(dir / "strip.png");
  // Two rows (blur, mask) of 4 columns of 8 x 8 with 2 pixels of padding.
  REQUIRE(shape_of(strip) == shape4{1, 1, 2 * (8 + 2) + 2, 4 * (8 + 2) + 2});
  for (std::size_t row : {0u, 1u})  // t = 0: sigma_0 = 0 and C_0 = I, so both rows start with x_0
    for (std::size_t i = 0; i < 8; ++i)
      for (std::size_t j = 0; j < 8; ++j)
        CHECK(strip(0, 0, 2 + row * 10 + i, 2 + j) == Approx(x(2, 0, i, j)).margin(0.5 / 127.5 + 1e-6));
  // The last mask cell (level 1) is pure noise of sigma 0.1 around 0.
  double mean = 0;
  for (std::size_t i = 0; i < 8; ++i)
    for (std::size_t j = 0; j < 8; ++j) mean += strip(0, 0, 12 + i, 32 + j) / 64.0;
  CHECK(std::abs(mean) < 0.1);

  const batch<float> rgb = ramp<float>({1, 3, 5, 6});
  data::write_npy(dir / "rgb.npy", rgb);
  REQUIRE(run_tool(dir, "forward-process --in " + q(dir / "rgb.npy") + " --op mask --steps 3 --padding 0 --out " +
                       q(dir / "rgb.png")).status == 0);
  CHECK(shape_of(data::read_png<float>(dir / "rgb.png")) == shape4{1, 3, 5, 18});
}

TEST_CASE("cli: forward-process reads IDX data and tabulated schedules", "[cli]") {
  test::temp_dir dir("cli-fp-idx");
  test::bytes idx{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 6};
  for (int i = 0; i < 2 * 4 * 6; ++i) idx.push_back(static_cast<std::uint8_t>(i * 5));
  test::write_gzip(dir / "images.gz", idx);
  const result r = run_tool(dir, "forward-process --data " + q(dir / "images.gz") +
                                " --image-index 1 --op dct-blur --steps 5 --out " + q(dir / "idx.png"));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const batch<float> strip = data::read_png<float>(dir / "idx.png");
  REQUIRE(shape_of(strip) == shape4{1, 1, 8, 5 * 8 + 2});
  CHECK(strip(0, 0, 2, 2) == Approx((24 * 5) / 127.5 - 1).margin(1e-6));  // image 1's first pixel, t = 0

  schedule::tabulated({0.0, 1.0}, {0.0, 0.5}, {0.0, 0.2}, "mask").save_json(dir / "mask.json");
  const result s = run_tool(dir, "forward-process --data " + q(dir / "images.gz") + " --schedule " +
                                q(dir / "mask.json") + " --steps 3 --out " + q(dir / "sched.png"));
  INFO(s.out << s.err);
  REQUIRE(s.status == 0);
  CHECK(contains(s.out, "mask"));
  CHECK(shape_of(data::read_png<float>(dir / "sched.png")) == shape4{1, 1, 8, 3 * 8 + 2});
  const result wrong = run_tool(dir, "forward-process --data " + q(dir / "images.gz") + " --schedule " +
                                    q(dir / "mask.json") + " --op dct-blur --out " + q(dir / "w.png"));
  CHECK(wrong.status == 2);
  CHECK(contains(wrong.err, "is for operator 'mask'"));

  // --min-level: the level just after the noise stage; mask grows linearly from it to --max-level
  const result lo = run_tool(dir, "forward-process --data " + q(dir / "images.gz") +
                                 " --op mask --min-level 0.25 --steps 6 --out " + q(dir / "lo.png"));
  INFO(lo.out << lo.err);
  REQUIRE(lo.status == 0);
  CHECK(contains(lo.out, "  0.200  0.10000  0\n"));       // end of the noise stage: still the identity
  CHECK(contains(lo.out, "  0.400  0.10000  0.4375\n"));  // 0.25 + (0.2 / 0.8) * 0.75
  const result both = run_tool(dir, "forward-process --data " + q(dir / "images.gz") + " --schedule " +
                                   q(dir / "mask.json") + " --min-level 0.1 --out " + q(dir / "b.png"));
  CHECK(both.status == 2);
  CHECK(contains(both.err, "--min-level and --max-level apply to the two-stage default"));
  const result above = run_tool(dir, "forward-process --data " + q(dir / "images.gz") +
                                    " --op mask --min-level 0.9 --max-level 0.5 --out " + q(dir / "a.png"));
  CHECK(above.status == 1);
  CHECK(contains(above.err, "level_max"));

  const result missing = run_tool(dir, "forward-process --data " + q(dir / "nope.gz") + " --out " + q(dir / "m.png"));
  CHECK(missing.status == 1);
  CHECK(contains(missing.err, "nope.gz"));
  CHECK(contains(missing.err, "apt-get install dataset-fashion-mnist"));
  const result range = run_tool(dir, "forward-process --data " + q(dir / "images.gz") + " --image-index 7 --out " +
                                    q(dir / "m.png"));
  CHECK(range.status == 1);
  CHECK(contains(range.err, "--image-index 7 is out of range (2 images)"));
  const result steps = run_tool(dir, "forward-process --data " + q(dir / "images.gz") + " --steps 1 --out " +
                                    q(dir / "m.png"));
  CHECK(steps.status == 2);
  CHECK(contains(steps.err, "--steps"));
  CHECK(!fs::exists(dir / "m.png"));
}

namespace {

/// A Fashion-MNIST-layout directory of n side x side images in two easy classes (label 3: a bright
/// upper half, label 7: a bright lower half, with a seeded speckle), train and t10k splits.
void write_two_class_idx(const fs::path& dir, std::uint32_t n_train, std::uint32_t n_test, std::uint32_t side) {
  fs::create_directories(dir);
  std::uint32_t state = 7;
  for (const auto& [split, n] : {std::pair<std::string, std::uint32_t>{"train", n_train}, {"t10k", n_test}}) {
    test::bytes img{0, 0, 8, 3}, lab{0, 0, 8, 1};
    test::append_be32(img, n);
    test::append_be32(img, side);
    test::append_be32(img, side);
    test::append_be32(lab, n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const bool upper = i % 2 == 0;
      lab.push_back(upper ? 3 : 7);
      for (std::uint32_t r = 0; r < side; ++r)
        for (std::uint32_t c = 0; c < side; ++c) {
          state = state * 1103515245u + 12345u;
          const bool bright = (r < side / 2) == upper;
          img.push_back(static_cast<std::uint8_t>((bright ? 180 : 30) + (state >> 16) % 60));
        }
    }
    test::write_bytes(dir / (split + "-images-idx3-ubyte"), img);
    test::write_bytes(dir / (split + "-labels-idx1-ubyte"), lab);
  }
}

}  // namespace

TEST_CASE("cli: train-classifier learns labels, records its test accuracy, is reproducible", "[cli]") {
  test::temp_dir dir("cli-classifier");
  const fs::path data = dir / "two-class";
  write_two_class_idx(data, 48, 24, 12);
  const std::string common = " --data " + q(data) + " --epochs 12 --batch 8 --lr 1e-2 --ema-decay 0 --report-every 20";
  const result r = run_tool(dir, "train-classifier --out " + q(dir / "a.safetensors") + common,
                            "OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, "test accuracy"));
  const auto a = nn::classifier<float>::load(dir / "a.safetensors");
  CHECK(a.config().height == 12);
  CHECK(a.config().width == 12);
  const double accuracy = a.info().at("test_accuracy").get<double>();
  CHECK(accuracy >= 0.9);  // two classes a glance apart
  CHECK(a.info().at("test_images").get<std::size_t>() == 24);

  // the same seed and configuration give the same weights (features of the test images)
  REQUIRE(run_tool(dir, "train-classifier --out " + q(dir / "b.safetensors") + common,
                   "OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive")
              .status == 0);
  auto b = nn::classifier<float>::load(dir / "b.safetensors");
  auto a2 = nn::classifier<float>::load(dir / "a.safetensors");
  const auto images = data::read_fashion_mnist<float>("t10k", data).images;
  const xt::xtensor<float, 2> fa = a2.features(images), fb = b.features(images);
  CHECK(fa == fb);

  // bad input: a missing directory, labels that do not match the images, a non-positive rate
  const result missing = run_tool(dir, "train-classifier --data " + q(dir / "nowhere") + " --out " + q(dir / "c.safetensors"));
  CHECK(missing.status == 1);
  CHECK(contains(missing.err, "does not exist"));
  test::bytes lab{0, 0, 8, 1};
  test::append_be32(lab, 5);
  for (int i = 0; i < 5; ++i) lab.push_back(1);
  test::write_bytes(data / "train-labels-idx1-ubyte", lab);
  const result mismatch = run_tool(dir, "train-classifier --out " + q(dir / "d.safetensors") + common);
  CHECK(mismatch.status == 1);
  CHECK(contains(mismatch.err, "48 images"));
  CHECK(!fs::exists(dir / "d.safetensors"));
  CHECK(run_tool(dir, "train-classifier --lr 0 --out " + q(dir / "e.safetensors")).status == 2);
}
