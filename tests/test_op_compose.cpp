// compose<A, B>: C = A(map_a(level)) B(map_b(level)) equals applying both by hand, its
// adjoint B^T A^T is exact, its range and identity level are checked at construction.
#include <catch2/catch.hpp>

#include <cmath>

// fft_conv.hpp first: its softdiff::op::detail must not hide softdiff::detail from compose.hpp.
#include "softdiff/op/fft_conv.hpp"
#include "softdiff/op/compose.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/mask.hpp"
#include "softdiff/op/scale.hpp"
#include "support/operator_checks.hpp"

using namespace softdiff;
using softdiff::testing::adjoint_gap;
using softdiff::testing::max_relative_error;
using softdiff::testing::random_batch;

static_assert(CorruptionOperator<op::compose<op::mask<float>, op::fft_conv<float>>>);
static_assert(CorruptionOperator<op::compose<op::fft_conv<double>, op::mask<double>>>);

TEST_CASE("compose equals applying both operators by hand", "[op][compose]") {
  const auto x = random_batch<double>({2, 3, 11, 14}, 1);
  SECTION("mask o scale, identity maps") {
    const op::compose<op::mask<double>, op::scale<double>> c(op::mask<double>{}, op::scale<double>{});
    CHECK(c.name() == "compose(mask,scale)");
    CHECK(c.min_level() == 0.0);
    CHECK(c.max_level() == 1.0);
    batch<double> y, ref;
    c.apply(0.45, x, y);
    op::scale<double>{}.apply(0.45, x, ref);
    op::mask<double>{}.apply(0.45, ref, ref);
    CHECK((y == ref));
  }
  SECTION("fft_conv o mask with level maps; the adjoint is B^T A^T") {
    const op::fft_conv<double> blur(6);
    const auto map_a = [](double l) { return 3.0 * l; };   // blur std 0..3
    const auto map_b = [](double l) { return l * l; };     // masked share 0..1
    const op::compose<op::fft_conv<double>, op::mask<double>> c(blur, op::mask<double>{}, map_a, map_b, 0.0, 1.0);
    CHECK(c.name() == "compose(fft-conv,mask)");
    batch<double> y, ref;
    c.apply(0.6, x, y);
    op::mask<double>{}.apply(0.36, x, ref);
    blur.apply(1.8, ref, ref);
    CHECK(max_relative_error(y, xt::xtensor<double, 4>(ref)) < 1e-15);
    c.apply_adjoint(0.6, x, y);
    blur.apply_adjoint(1.8, x, ref);
    op::mask<double>{}.apply_adjoint(0.36, ref, ref);
    CHECK(max_relative_error(y, xt::xtensor<double, 4>(ref)) < 1e-15);
  }
  SECTION("in place equals out of place") {
    const op::compose<op::dct_blur<double>, op::mask<double>> c(op::dct_blur<double>{}, op::mask<double>{});
    batch<double> y, in_place = x;
    c.apply(0.7, x, y);
    c.apply(0.7, in_place, in_place);
    CHECK((in_place == y));
  }
}

TEST_CASE("compose's adjoint is exact", "[op][compose]") {
  const auto map_a = [](double l) { return 5.0 * l; };
  SECTION("float") {
    const op::compose<op::fft_conv<float>, op::mask<float>> c(op::fft_conv<float>(8), op::mask<float>{}, map_a,
                                                              [](double l) { return l; }, 0.0, 1.0);
    const op::compose<op::mask<float>, op::scale<float>> d(op::mask<float>{}, op::scale<float>{});
    for (double l : {0.2, 0.5, 0.9}) {
      CHECK(adjoint_gap(c, l, {2, 3, 12, 9}, 2) < 1e-6);
      CHECK(adjoint_gap(d, l, {2, 3, 12, 9}, 3) < 1e-6);
    }
  }
  SECTION("double") {
    const op::compose<op::fft_conv<double>, op::mask<double>> c(op::fft_conv<double>(8), op::mask<double>{}, map_a,
                                                                [](double l) { return l; }, 0.0, 1.0);
    const op::compose<op::dct_blur<double>, op::fft_conv<double>> e(op::dct_blur<double>{}, op::fft_conv<double>(4));
    for (double l : {0.2, 0.5, 0.9}) {
      CHECK(adjoint_gap(c, l, {2, 3, 12, 9}, 4) < 1e-12);
      CHECK(adjoint_gap(e, 3 * l, {2, 3, 12, 9}, 5) < 1e-12);
    }
  }
}

TEST_CASE("compose: min_level is the identity", "[op][compose]") {
  const op::compose<op::fft_conv<float>, op::mask<float>> c(op::fft_conv<float>(5), op::mask<float>{});
  CHECK(c.max_level() == 1.0);  // the intersection of [0, inf) and [0, 1]
  const auto x = random_batch<float>({1, 2, 7, 7}, 6);
  batch<float> y;
  c.apply(0.0, x, y);
  CHECK((y == x));
  c.apply_adjoint(0.0, x, y);
  CHECK((y == x));
}

TEST_CASE("compose rejects bad ranges, maps and levels with a message naming the problem", "[op][compose]") {
  using C = op::compose<op::fft_conv<float>, op::mask<float>>;
  const auto id = [](double l) { return l; };
  CHECK_THROWS_WITH(C(op::fft_conv<float>(2), op::mask<float>{}, id, id, 1.0, 0.0),
                    Catch::Contains("invalid level range"));
  CHECK_THROWS_WITH(C(op::fft_conv<float>(2), op::mask<float>{}, [](double l) { return l + 1; }, id, 0.0, 1.0),
                    Catch::Contains("not its identity level") && Catch::Contains("fft-conv"));
  CHECK_THROWS_WITH(C(op::fft_conv<float>(2), op::mask<float>{}, id, C::level_map{}, 0.0, 1.0),
                    Catch::Contains("level map is empty"));
  const C c(op::fft_conv<float>(2), op::mask<float>{}, id, [](double l) { return 2 * l; }, 0.0, 1.0);
  const auto x = random_batch<float>({1, 1, 5, 5}, 7);
  batch<float> y;
  CHECK_THROWS_WITH(c.apply(1.5, x, y), Catch::Contains("outside the range") && Catch::Contains("compose(fft-conv,mask)"));
  CHECK_THROWS_WITH(c.apply(std::nan(""), x, y), Catch::Contains("non-finite"));
  // a level inside compose's range that the map sends outside mask's range: mask says so
  CHECK_THROWS_WITH(c.apply(0.8, x, y), Catch::Contains("outside the range") && Catch::Contains("of operator mask"));
}
