// Time grids: the uniform grid and the checks on user grids.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "softdiff/sampler/time_grid.hpp"

using namespace softdiff;

TEST_CASE("uniform_grid runs from 1 to 0 in equal steps", "[sampler]") {
  const std::vector<double> g = sampler::uniform_grid(4);
  REQUIRE(g.size() == 5);
  CHECK(g == std::vector<double>{1.0, 0.75, 0.5, 0.25, 0.0});
  const std::vector<double> g1 = sampler::uniform_grid(1);
  CHECK(g1 == std::vector<double>{1.0, 0.0});
  const std::vector<double> g3 = sampler::uniform_grid(3);
  CHECK(g3.front() == 1.0);
  CHECK(g3.back() == 0.0);
  CHECK_NOTHROW(sampler::validate_grid(sampler::uniform_grid(1000)));
  CHECK_THROWS_WITH(sampler::uniform_grid(0), Catch::Contains("at least 1"));
}

TEST_CASE("validate_grid accepts decreasing grids inside [0, 1] and names what is wrong", "[sampler]") {
  using v = std::vector<double>;
  CHECK_NOTHROW(sampler::validate_grid(v{0.9, 0.5, 0.1}));  // need not start at 1 nor end at 0
  CHECK_THROWS_WITH(sampler::validate_grid(v{1.0}), Catch::Contains("at least 2"));
  CHECK_THROWS_WITH(sampler::validate_grid(v{1.0, 0.5, 0.5, 0.0}),
                    Catch::Contains("strictly decreasing") && Catch::Contains("t[2]"));
  CHECK_THROWS_WITH(sampler::validate_grid(v{0.5, 0.7}), Catch::Contains("strictly decreasing"));
  CHECK_THROWS_WITH(sampler::validate_grid(v{1.2, 0.0}), Catch::Contains("outside [0, 1]"));
  CHECK_THROWS_WITH(sampler::validate_grid(v{1.0, -0.1}), Catch::Contains("outside [0, 1]"));
  CHECK_THROWS_WITH(sampler::validate_grid(v{1.0, std::nan(""), 0.0}), Catch::Contains("not finite"));
  CHECK_THROWS_WITH(sampler::validate_grid(v{0.0, 0.0}), Catch::Contains("strictly decreasing"));
}
