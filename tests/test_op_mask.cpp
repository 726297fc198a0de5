// mask: the paper's centred binary mask (appendix G). Symmetric, idempotent, the identity at
// level 0, all zero at level 1, removed share close to the level, rectangles nested and centred.
#include <catch2/catch.hpp>

#include <cmath>

#include "softdiff/op/mask.hpp"
#include "support/operator_checks.hpp"

using namespace softdiff;
using softdiff::testing::adjoint_gap;
using softdiff::testing::random_batch;

namespace {
std::size_t zeros_in_plane(const batch<float>& y, std::size_t n, std::size_t c) {
  std::size_t z = 0;
  for (std::size_t i = 0; i < y.shape()[2]; ++i)
    for (std::size_t j = 0; j < y.shape()[3]; ++j) z += y(n, c, i, j) == 0.0f;
  return z;
}
}  // namespace

TEST_CASE("mask is symmetric: the adjoint identity holds", "[op][mask]") {
  STATIC_REQUIRE(op::mask<double>::self_adjoint);
  for (double l : {0.1, 0.5, 0.93}) {
    CHECK(adjoint_gap(op::mask<float>{}, l, {2, 3, 16, 10}, 3) < 1e-6);
    CHECK(adjoint_gap(op::mask<double>{}, l, {2, 3, 16, 10}, 4) < 1e-12);
  }
}

TEST_CASE("mask: identity at 0, all zero at 1, idempotent, in place", "[op][mask]") {
  const op::mask<float> m;
  const auto x = random_batch<float>({2, 3, 12, 9}, 5);
  batch<float> y, yy;
  m.apply(0.0, x, y);
  CHECK((y == x));
  m.apply(1.0, x, y);
  CHECK(xt::amax(xt::abs(y))() == 0.0f);
  m.apply(0.4, x, y);
  m.apply(0.4, y, yy);
  CHECK((yy == y));  // C C = C
  batch<float> in_place = x;
  m.apply_adjoint(0.4, in_place, in_place);
  CHECK((in_place == y));
}

TEST_CASE("mask removes a centred rectangle whose share is close to the level", "[op][mask]") {
  const op::mask<float> m;
  for (const shape4 s : {shape4{1, 3, 64, 64}, shape4{2, 2, 32, 20}, shape4{1, 1, 7, 3}, shape4{1, 1, 1, 40}}) {
    const std::size_t H = s[2], W = s[3];
    const batch<float> ones = xt::ones<float>(s);
    std::size_t previous = 0;
    for (int i = 0; i <= 50; ++i) {
      const double level = i / 50.0;
      batch<float> y;
      m.apply(level, ones, y);
      const auto r = op::mask<float>::removed(level, H, W);
      const std::size_t z = zeros_in_plane(y, 0, 0);
      INFO("shape " << to_string(s) << " level " << level);
      CHECK(z == r.h * r.w);
      // the documented bound |h w - level H W| <= (H + W) sqrt(level) / 2 + 1/4
      CHECK(std::abs(static_cast<double>(z) - level * H * W) <= (H + W) * std::sqrt(level) / 2 + 0.25);
      CHECK(z >= previous);  // a growing share
      previous = z;
      // centred: the margins differ by at most one pixel, and the same mask for every plane
      CHECK((H - r.h) / 2 == r.top);
      CHECK((W - r.w) / 2 == r.left);
      for (std::size_t n = 0; n < s[0]; ++n)
        for (std::size_t c = 0; c < s[1]; ++c) CHECK(zeros_in_plane(y, n, c) == z);
      if (r.h > 0) {
        CHECK(y(0, 0, r.top, r.left) == 0.0f);
        CHECK(y(0, 0, r.top + r.h - 1, r.left + r.w - 1) == 0.0f);
      }
    }
  }
  // worked example of the rounding rule: 64 x 64 at level 0.3 -> h = w = round(64 sqrt(0.3)) = 35
  const auto r = op::mask<float>::removed(0.3, 64, 64);
  CHECK(r.h == 35);
  CHECK(r.w == 35);
  CHECK(r.top == 14);
  CHECK(r.left == 14);
}

TEST_CASE("mask: larger levels remove a superset (nested rectangles)", "[op][mask]") {
  for (int i = 0; i < 40; ++i) {
    const auto a = op::mask<double>::removed(i / 40.0, 31, 18), b = op::mask<double>::removed((i + 1) / 40.0, 31, 18);
    if (a.h == 0) continue;
    CHECK(b.top <= a.top);
    CHECK(b.left <= a.left);
    CHECK(b.top + b.h >= a.top + a.h);
    CHECK(b.left + b.w >= a.left + a.w);
  }
}

TEST_CASE("mask rejects bad levels with a message naming the problem", "[op][mask]") {
  const op::mask<float> m;
  const auto x = random_batch<float>({1, 1, 4, 4}, 6);
  batch<float> y;
  CHECK_THROWS_WITH(m.apply(1.5, x, y), Catch::Contains("outside the range") && Catch::Contains("mask"));
  CHECK_THROWS_WITH(m.apply(-0.1, x, y), Catch::Contains("outside the range"));
  CHECK_THROWS_WITH(m.apply_adjoint(std::nan(""), x, y), Catch::Contains("non-finite") && Catch::Contains("mask"));
}
