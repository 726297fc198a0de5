// Every shipped model type satisfies its concept (static_asserts live beside each
// type; these repeat the key ones), and a type missing a required member does not.
#include <catch2/catch.hpp>

#include "softdiff/softdiff.hpp"

using namespace softdiff;

namespace {
struct no_adjoint {  // has apply but not apply_adjoint
  using scalar_type = float;
  static constexpr bool self_adjoint = false;
  void apply(double, const batch<float>&, batch<float>&) const {}
  double min_level() const { return 0; }
  double max_level() const { return 1; }
  std::string name() const { return "no_adjoint"; }
};
struct no_sigma {
  double level(double) const { return 0; }
  std::string name() const { return "no_sigma"; }
};
struct good_schedule {
  double level(double t) const { return t; }
  double sigma(double t) const { return t; }
  std::string name() const { return "good"; }
};
struct forward_only {
  using scalar_type = float;
  void predict(const batch<float>&, std::span<const double>, batch<float>&) {}
};
struct features_without_count {  // features() but no feature_count()
  using scalar_type = float;
  xt::xtensor<float, 2> features(const batch<float>&) { return {}; }
};
}  // namespace

TEST_CASE("shipped types satisfy their concepts", "[concepts]") {
  STATIC_REQUIRE(Backend<backend::cpu>);
  STATIC_REQUIRE(CorruptionOperator<op::identity<float>>);
  STATIC_REQUIRE(CorruptionOperator<op::scale<double>>);
  STATIC_REQUIRE(Schedule<good_schedule>);
  STATIC_REQUIRE(Denoiser<forward_only>);
  STATIC_REQUIRE(FeatureExtractor<nn::classifier<float>>);
}

TEST_CASE("a type missing a required member does not satisfy its concept", "[concepts]") {
  STATIC_REQUIRE_FALSE(CorruptionOperator<no_adjoint>);
  STATIC_REQUIRE_FALSE(FeatureExtractor<features_without_count>);
  STATIC_REQUIRE_FALSE(FeatureExtractor<nn::refunet<float>>);
  STATIC_REQUIRE_FALSE(Schedule<no_sigma>);
  STATIC_REQUIRE_FALSE(TrainableDenoiser<forward_only>);
  STATIC_REQUIRE_FALSE(Backend<int>);
}

TEST_CASE("check_level names the operator and the range", "[concepts]") {
  op::scale<float> s;
  CHECK_THROWS_WITH(check_level(s, 1.5), Catch::Contains("outside the range") && Catch::Contains("scale"));
  CHECK_THROWS_WITH(check_level(s, std::nan("")), Catch::Contains("non-finite"));
  CHECK_NOTHROW(check_level(s, 0.5));
}
