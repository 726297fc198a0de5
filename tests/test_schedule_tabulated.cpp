// tabulated: linear interpolation, tabulating another schedule, the JSON round trip,
// the temp-then-rename write, and a named error for every kind of malformed file.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/schedule/ve.hpp"
#include "softdiff/schedule/vp.hpp"

using namespace softdiff;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
fs::path scratch_dir() {
  const fs::path d = fs::path(SOFTDIFF_BINARY_DIR) / "test_schedule_tabulated_files";
  fs::create_directories(d);
  return d;
}
fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch_dir() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  return p;
}
std::string with(const std::string& t, const std::string& level, const std::string& sigma) {
  return R"({"format":"softdiff-schedule","version":1,"operator":"scale","t":)" + t + R"(,"level":)" + level +
         R"(,"sigma":)" + sigma + "}";
}
}  // namespace

TEST_CASE("tabulated: exact at the knots, linear in between", "[schedule][tabulated]") {
  const schedule::tabulated s({0.0, 0.25, 1.0}, {0.0, 0.5, 0.8}, {0.0, 1.0, 4.0}, "scale");
  CHECK(s.level(0.0) == 0.0);
  CHECK(s.sigma(0.25) == 1.0);
  CHECK(s.level(1.0) == 0.8);
  CHECK(s.sigma(1.0) == 4.0);
  CHECK(s.level(0.125) == Approx(0.25).epsilon(1e-15));
  CHECK(s.sigma(0.625) == Approx(2.5).epsilon(1e-15));
  CHECK(s.level(0.625) == Approx(0.65).epsilon(1e-15));
  CHECK(s.name() == "tabulated");
  CHECK(s.operator_name() == "scale");
  CHECK_THROWS_WITH(s.sigma(1.01), Contains("outside [0, 1]"));
}

TEST_CASE("tabulated::from reproduces a schedule at the knots and approximates it between", "[schedule][tabulated]") {
  const schedule::vp vp;
  const auto s = schedule::tabulated::from(vp, 257, "scale");
  REQUIRE(s.times().size() == 257);
  CHECK(s.times().front() == 0.0);
  CHECK(s.times().back() == 1.0);
  for (int k : {0, 1, 100, 256}) {
    const double t = k / 256.0;
    CHECK(s.level(t) == vp.level(t));
    CHECK(s.sigma(t) == vp.sigma(t));
  }
  for (double t : {0.3001, 0.51, 0.999}) {
    CHECK(s.level(t) == Approx(vp.level(t)).epsilon(1e-4));
    CHECK(s.sigma(t) == Approx(vp.sigma(t)).epsilon(1e-4));
  }
  CHECK_THROWS_WITH(schedule::tabulated::from(vp, 1), Contains("n_points = 1"));
}

TEST_CASE("tabulated: save_json then load_json gives the same table; no temporary file is left", "[schedule][tabulated]") {
  const auto s = schedule::tabulated::from(schedule::two_stage{}, 65, "gaussian_blur");
  const fs::path p = scratch_dir() / "two_stage.json";
  fs::remove(p);
  s.save_json(p);
  REQUIRE(fs::exists(p));
  fs::path tmp = p;
  tmp += ".tmp";
  CHECK_FALSE(fs::exists(tmp));
  const auto back = schedule::tabulated::load_json(p);
  CHECK(back.times() == s.times());  // bit-exact: round-trip number precision
  CHECK(back.levels() == s.levels());
  CHECK(back.sigmas() == s.sigmas());
  CHECK(back.operator_name() == "gaussian_blur");
  // overwriting an existing file works (rename over it)
  const schedule::tabulated small({0.0, 1.0}, {0.0, 1.0}, {0.0, 2.0});
  small.save_json(p);
  CHECK(schedule::tabulated::load_json(p).sigmas() == std::vector<double>{0.0, 2.0});
  CHECK(schedule::tabulated::load_json(p).operator_name().empty());

  // "operator" is optional on input
  const auto q = write_file("no_operator.json", R"({"format":"softdiff-schedule","version":1,"t":[0,1],"level":[0,0.5],"sigma":[0,1]})");
  CHECK(schedule::tabulated::load_json(q).level(0.5) == Approx(0.25));
}

TEST_CASE("tabulated: save_json into a missing directory fails with the path", "[schedule][tabulated][errors]") {
  const schedule::tabulated small({0.0, 1.0}, {0.0, 1.0}, {0.0, 2.0});
  const fs::path p = scratch_dir() / "no_such_dir" / "x.json";
  CHECK_THROWS_WITH(small.save_json(p), Contains("save_json") && Contains("no_such_dir"));
  CHECK_FALSE(fs::exists(p));
}

TEST_CASE("tabulated: malformed files name the file and the problem", "[schedule][tabulated][errors]") {
  auto fails_with = [](const std::string& file, const std::string& text, const std::string& problem) {
    const fs::path p = write_file(file, text);
    INFO(file);
    CHECK_THROWS_WITH(schedule::tabulated::load_json(p), Contains(file) && Contains(problem));
  };
  const std::string t = "[0,0.5,1]", l = "[0,0.1,0.2]", s = "[0,0.5,1]";
  fails_with("not_json.json", "this is not json", "not valid JSON");
  fails_with("truncated.json", with(t, l, s).substr(0, 40), "not valid JSON");
  fails_with("array.json", "[1,2,3]", "not a JSON object");
  fails_with("no_format.json", R"({"version":1,"t":[0,1],"level":[0,0],"sigma":[0,1]})", "missing key \"format\"");
  fails_with("wrong_format.json", R"({"format":"other","version":1,"t":[0,1],"level":[0,0],"sigma":[0,1]})",
             "\"format\"");
  fails_with("no_version.json", R"({"format":"softdiff-schedule","t":[0,1],"level":[0,0],"sigma":[0,1]})",
             "missing key \"version\"");
  fails_with("version2.json", R"({"format":"softdiff-schedule","version":2,"t":[0,1],"level":[0,0],"sigma":[0,1]})",
             "unsupported \"version\" 2");
  fails_with("no_t.json", R"({"format":"softdiff-schedule","version":1,"level":[0,0],"sigma":[0,1]})",
             "missing key \"t\"");
  fails_with("no_level.json", R"({"format":"softdiff-schedule","version":1,"t":[0,1],"sigma":[0,1]})",
             "missing key \"level\"");
  fails_with("no_sigma.json", R"({"format":"softdiff-schedule","version":1,"t":[0,1],"level":[0,0]})",
             "missing key \"sigma\"");
  fails_with("sigma_not_array.json", with(t, l, "3"), "\"sigma\" is not an array");
  fails_with("bad_operator.json", R"({"format":"softdiff-schedule","version":1,"operator":5,"t":[0,1],"level":[0,0],"sigma":[0,1]})",
             "\"operator\" is not a string");
  fails_with("lengths.json", with(t, "[0,0.1]", s), "lengths differ");
  fails_with("not_increasing.json", with("[0,0.6,0.5,1]", "[0,0,0,0]", "[0,1,2,3]"),
             "not strictly increasing at index 2");
  fails_with("repeated_time.json", with("[0,0.5,0.5,1]", "[0,0,0,0]", "[0,1,2,3]"), "not strictly increasing");
  fails_with("start.json", with("[0.1,0.5,1]", l, s), "must start at 0");
  fails_with("end.json", with("[0,0.5,0.9]", l, s), "must end at 1");
  fails_with("nan.json", with(t, "[0,null,0.2]", s), "\"level\"[1] = null is not a finite number");
  fails_with("nan_literal.json", with(t, l, "[0,NaN,1]"), "not valid JSON");
  fails_with("string_entry.json", with(t, l, R"([0,"x",1])"), "\"sigma\"[1]");
  fails_with("negative_sigma.json", with(t, l, "[0,-0.5,1]"), "sigma[1] = -0.5 is negative");
  fails_with("one_point.json", with("[0]", "[0]", "[0]"), "at least 2 points");
  CHECK_THROWS_WITH(schedule::tabulated::load_json(scratch_dir() / "missing.json"),
                    Contains("missing.json") && Contains("cannot open"));
}

TEST_CASE("tabulated: the constructor names bad tables", "[schedule][tabulated][errors]") {
  const double nan_value = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(schedule::tabulated({0.0, 1.0}, {0.0}, {0.0, 1.0}), Contains("lengths differ"));
  CHECK_THROWS_WITH(schedule::tabulated({0.0, nan_value, 1.0}, {0, 0, 0}, {0, 1, 2}), Contains("t[1]"));
  CHECK_THROWS_WITH(schedule::tabulated({0.0, 1.0}, {0.0, 0.0}, {0.0, nan_value}), Contains("sigma[1]"));
  CHECK_THROWS_WITH(schedule::tabulated({0.0, 2.0}, {0.0, 0.0}, {0.0, 1.0}), Contains("must end at 1"));
}
