// apply_per_sample: level i on sample i equals applying the operator sample by sample,
// for identity, scale and mask, forward and adjoint, in place, with and without ties.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <xtensor/xview.hpp>

#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/mask.hpp"
#include "softdiff/op/per_sample.hpp"
#include "softdiff/op/scale.hpp"
#include "support/operator_checks.hpp"

using namespace softdiff;
using softdiff::testing::random_batch;

namespace {

/// Sample by sample, the reference.
template <class Op>
batch<typename Op::scalar_type> one_by_one(const Op& op, const std::vector<double>& levels,
                                           const batch<typename Op::scalar_type>& x, bool adjoint) {
  using T = typename Op::scalar_type;
  batch<T> y(x.shape());
  for (std::size_t i = 0; i < levels.size(); ++i) {
    batch<T> xi = xt::view(x, xt::range(i, i + 1)), yi;
    if (adjoint)
      op.apply_adjoint(levels[i], xi, yi);
    else
      op.apply(levels[i], xi, yi);
    xt::view(y, xt::range(i, i + 1)) = yi;
  }
  return y;
}

/// Counts the calls and the samples passed, to check grouping.
struct counting_scale {
  using scalar_type = float;
  static constexpr bool self_adjoint = true;
  mutable int calls = 0;
  void apply(double level, const batch<float>& x, batch<float>& y) const {
    ++calls;
    op::scale<float>{}.apply(level, x, y);
  }
  void apply_adjoint(double level, const batch<float>& x, batch<float>& y) const { apply(level, x, y); }
  double min_level() const { return 0; }
  double max_level() const { return 1; }
  std::string name() const { return "counting_scale"; }
};
static_assert(CorruptionOperator<counting_scale>);

template <class Op>
void check_matches(const Op& op, const std::vector<double>& levels, const shape4& s) {
  using T = typename Op::scalar_type;
  const auto x = random_batch<T>(s, 17);
  for (bool adjoint : {false, true}) {
    batch<T> y;
    op::apply_per_sample(op, levels, x, y, adjoint);
    CHECK((y == one_by_one(op, levels, x, adjoint)));
    batch<T> in_place = x;
    op::apply_per_sample(op, levels, in_place, in_place, adjoint);
    CHECK((in_place == y));
  }
}

}  // namespace

TEST_CASE("apply_per_sample equals applying the operator sample by sample", "[op][per_sample]") {
  const std::vector<double> distinct{0.1, 0.7, 0.3, 0.9, 0.5};
  const std::vector<double> ties{0.4, 0.2, 0.4, 0.0, 0.2};
  const std::vector<double> equal(5, 0.6);
  for (const auto* levels : {&distinct, &ties, &equal}) {
    check_matches(op::identity<float>{}, *levels, {5, 3, 6, 7});
    check_matches(op::scale<float>{}, *levels, {5, 3, 6, 7});
    check_matches(op::mask<float>{}, *levels, {5, 3, 6, 7});
    check_matches(op::mask<double>{}, *levels, {5, 2, 9, 4});
    check_matches(op::dct_blur<double>{}, *levels, {5, 1, 8, 8});
  }
  // a shape change between calls (fresh workspaces) still matches
  check_matches(op::mask<float>{}, ties, {5, 1, 3, 11});
  check_matches(op::mask<float>{}, distinct, {5, 3, 6, 7});
}

TEST_CASE("apply_per_sample groups equal levels into one call", "[op][per_sample]") {
  const auto x = random_batch<float>({6, 2, 4, 4}, 3);
  batch<float> y;
  counting_scale op;
  const std::vector<double> levels{0.5, 0.1, 0.5, 0.1, 0.5, 0.9};
  op::apply_per_sample(op, levels, x, y);
  CHECK(op.calls == 3);
  op.calls = 0;
  const std::vector<double> same(6, 0.25);
  op::apply_per_sample(op, same, x, y);
  CHECK(op.calls == 1);
  CHECK((y == one_by_one(op::scale<float>{}, same, x, false)));
}

TEST_CASE("apply_per_sample rejects bad levels with a message naming the problem", "[op][per_sample]") {
  const auto x = random_batch<float>({3, 1, 4, 4}, 4);
  batch<float> y;
  const std::vector<double> two{0.1, 0.2};
  CHECK_THROWS_WITH(op::apply_per_sample(op::mask<float>{}, two, x, y),
                    Catch::Contains("2 levels") && Catch::Contains("N = 3"));
  const std::vector<double> nan_level{0.1, std::nan(""), 0.2};
  CHECK_THROWS_WITH(op::apply_per_sample(op::mask<float>{}, nan_level, x, y),
                    Catch::Contains("sample 1") && Catch::Contains("not finite"));
  const std::vector<double> out_of_range{0.1, 1.5, 0.2};
  CHECK_THROWS_WITH(op::apply_per_sample(op::mask<float>{}, out_of_range, x, y),
                    Catch::Contains("outside the range") && Catch::Contains("mask"));
}
