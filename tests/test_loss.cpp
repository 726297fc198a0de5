// Soft Score Matching (eq. 12) and the baselines (clean-image loss, DSM of eq. 7):
// values against a direct per-sample computation, every gradient against float64
// central finite differences, the exact DSM <-> SSM relation, and bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <omp.h>

#include "softdiff/loss/baselines.hpp"
#include "softdiff/loss/soft_score_matching.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/op/mask.hpp"
#include "support/operator_checks.hpp"

using namespace softdiff;
using Catch::Contains;
using testing::random_batch;

namespace {

const shape4 small_shape{2, 1, 5, 4};
constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

/// Non-uniform inputs: phi, x0, x_t with different random draws and an offset per sample.
struct inputs {
  batch<double> phi, x0, x_t, r;
  explicit inputs(const shape4& s = small_shape, std::uint64_t seed = 7)
      : phi(random_batch<double>(s, seed)), x0(random_batch<double>(s, seed + 10)),
        x_t(random_batch<double>(s, seed + 20)) {
    for (std::size_t j = 0; j < phi.size(); ++j) {
      phi.data()[j] += 0.1 * static_cast<double>(j % 7);
      x0.data()[j] = 0.5 * x0.data()[j] + 0.2;
    }
    r = x0 - x_t;
  }
};

/// Checks grad against central differences of f over every element of x (all losses here are
/// quadratic in phi, so a large step is exact up to rounding), and that grad is not all zero.
void check_gradient(batch<double>& x, const batch<double>& grad, const std::function<double()>& f) {
  REQUIRE(grad.shape() == x.shape());
  const double h = 1e-3;
  double max_grad = 0.0, max_err = 0.0;
  for (std::size_t j = 0; j < x.size(); ++j) {
    const double keep = x.data()[j];
    x.data()[j] = keep + h;
    const double fp = f();
    x.data()[j] = keep - h;
    const double fm = f();
    x.data()[j] = keep;
    const double fd = (fp - fm) / (2 * h);
    max_err = std::max(max_err, std::abs(fd - grad.data()[j]));
    max_grad = std::max(max_grad, std::abs(grad.data()[j]));
  }
  INFO("max |grad| = " << max_grad << ", max |fd - grad| = " << max_err);
  CHECK(max_grad > 1e-3);
  CHECK(max_err <= 1e-9 * max_grad);
}

/// Sample i of x as a batch of one.
batch<double> sample(const batch<double>& x, std::size_t i) {
  const shape4 s = shape_of(x);
  batch<double> y({1, s[1], s[2], s[3]});
  const std::size_t d = y.size();
  std::copy(x.data() + i * d, x.data() + (i + 1) * d, y.data());
  return y;
}

/// (1 / (N D)) sum_i w_i ||C_i (phi_i - r_i)||^2, sample by sample with op.apply.
template <class Op>
double direct_ssm(const Op& op, const std::vector<double>& levels, const std::vector<double>& w,
                  const batch<double>& phi, const batch<double>& r) {
  const std::size_t n = phi.shape()[0], d = phi.size() / n;
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    batch<double> diff = sample(phi, i) - sample(r, i), c;
    op.apply(levels[i], diff, c);
    total += w[i] * testing::dot(c, c);
  }
  return total / static_cast<double>(n * d);
}

template <class Op>
void check_all_gradients(const Op& op, const std::vector<double>& levels) {
  inputs in;
  const std::vector<double> w{1.0, 2.5}, sigmas{0.5, 1.3};
  batch<double> grad;

  SECTION("soft score matching") {
    const auto v = loss::soft_score_matching(op, levels, w, in.phi, in.r, &grad);
    CHECK(v.value == Approx(direct_ssm(op, levels, w, in.phi, in.r)).epsilon(1e-13));
    CHECK(v.unweighted == Approx(direct_ssm(op, levels, {1.0, 1.0}, in.phi, in.r)).epsilon(1e-13));
    CHECK(v.value > 0.0);
    check_gradient(in.phi, grad, [&] { return loss::soft_score_matching(op, levels, w, in.phi, in.r).value; });
  }
  SECTION("clean image") {
    loss::clean_image(std::span<const double>(w), in.phi, in.r, &grad);
    check_gradient(in.phi, grad, [&] { return loss::clean_image(std::span<const double>(w), in.phi, in.r).value; });
  }
  SECTION("denoising score matching (eq. 7)") {
    loss::denoising_score_matching(op, levels, sigmas, w, in.phi, in.x_t, in.x0, &grad);
    check_gradient(in.phi, grad, [&] {
      return loss::denoising_score_matching(op, levels, sigmas, w, in.phi, in.x_t, in.x0).value;
    });
  }
}

}  // namespace

TEST_CASE("weights w(t) of eq. 12", "[loss]") {
  CHECK(loss::weight(loss::weighting::unit, 0.3) == 1.0);
  CHECK(loss::weight(loss::weighting::inverse_sigma2, 0.5) == 4.0);
  std::vector<double> out(2);
  loss::fill_weights(loss::weighting::inverse_sigma2, std::vector<double>{0.5, 2.0}, out);
  CHECK(out == std::vector<double>{4.0, 0.25});
  CHECK_THROWS_WITH(loss::weight(loss::weighting::inverse_sigma2, 0.0), Contains("sigma = 0"));
  CHECK_THROWS_WITH(loss::fill_weights(loss::weighting::unit, std::vector<double>{0.5, 0.0}, out),
                    Contains("sigmas[1] = 0"));
  CHECK_THROWS_WITH(loss::fill_weights(loss::weighting::unit, std::vector<double>{0.5}, out), Contains("1 sigmas"));
}

TEST_CASE("gradients match finite differences: identity operator", "[loss][gradient]") {
  check_all_gradients(op::identity<double>{}, {0.0, 0.0});
}

TEST_CASE("gradients match finite differences: scale operator", "[loss][gradient]") {
  check_all_gradients(op::scale<double>{}, {0.3, 0.85});
}

TEST_CASE("gradients match finite differences: mask operator", "[loss][gradient]") {
  check_all_gradients(op::mask<double>{}, {0.2, 0.6});
}

TEST_CASE("with C_t = I, soft score matching is the plain per-element MSE of phi - r", "[loss]") {
  inputs in;
  const std::vector<double> w{1.0, 1.0}, levels{0.0, 0.0};
  const auto v = loss::soft_score_matching(op::identity<double>{}, levels, w, in.phi, in.r);
  const batch<double> diff = in.phi - in.r;
  CHECK(v.value == Approx(testing::dot(diff, diff) / static_cast<double>(diff.size())).epsilon(1e-14));
  // and the clean-image baseline is the same number
  CHECK(loss::clean_image(std::span<const double>(w), in.phi, in.r).value == Approx(v.value).epsilon(1e-14));
}

// DSM (eq. 7) with the eq. 10 score s = (C (phi + x_t) - x_t) / sigma^2 and target
// (C x0 - x_t) / sigma^2 has s - target = C (phi - r) / sigma^2, hence
//   DSM with weights w_i  ==  SSM (eq. 12) with weights w_i / sigma_i^4.
// With C = I: s - target = (phi - r) / sigma^2, so unit-weight DSM is SSM with w = 1/sigma^4, and
// DSM weighted by lambda = sigma^2 (Song et al.'s choice) is SSM with weighting::inverse_sigma2.
TEST_CASE("DSM of eq. 7 equals soft score matching with w / sigma^4 (exactly, in double)", "[loss]") {
  inputs in;
  const std::vector<double> sigmas{0.5, 1.3};
  auto ssm_and_dsm = [&](const auto& op, const std::vector<double>& levels) {
    const std::vector<double> unit{1.0, 1.0};
    std::vector<double> w4(2), inv2(2), sigma2(2);
    for (int i = 0; i < 2; ++i) {
      w4[i] = 1.0 / std::pow(sigmas[i], 4);
      inv2[i] = loss::weight(loss::weighting::inverse_sigma2, sigmas[i]);
      sigma2[i] = sigmas[i] * sigmas[i];
    }
    batch<double> g_ssm, g_dsm;
    const auto dsm = loss::denoising_score_matching(op, levels, sigmas, unit, in.phi, in.x_t, in.x0, &g_dsm);
    const auto ssm = loss::soft_score_matching(op, levels, w4, in.phi, in.r, &g_ssm);
    CHECK(std::abs(dsm.value - ssm.value) <= 1e-12 * ssm.value);
    CHECK(testing::max_relative_error(g_dsm, g_ssm) <= 1e-12);

    const auto dsm_lambda = loss::denoising_score_matching(op, levels, sigmas, sigma2, in.phi, in.x_t, in.x0);
    const auto ssm_inv2 = loss::soft_score_matching(op, levels, inv2, in.phi, in.r);
    CHECK(std::abs(dsm_lambda.value - ssm_inv2.value) <= 1e-12 * ssm_inv2.value);
    // the factor is real: unit-weight SSM differs from unit-weight DSM when sigma != 1
    CHECK(std::abs(loss::soft_score_matching(op, levels, unit, in.phi, in.r).value - dsm.value) > 1e-3 * dsm.value);
  };
  SECTION("C_t = I") { ssm_and_dsm(op::identity<double>{}, {0.0, 0.0}); }
  SECTION("C_t = alpha I (any C_t)") { ssm_and_dsm(op::scale<double>{}, {0.4, 0.1}); }
}

TEST_CASE("float instantiation agrees with double; workspaces reuse; gradient may alias phi", "[loss]") {
  inputs in({3, 2, 8, 8}, 11);
  const std::vector<double> w{1.0, 0.5, 2.0}, levels{0.1, 0.5, 0.9};
  const batch<float> phi_f = xt::cast<float>(in.phi), r_f = xt::cast<float>(in.r);
  batch<float> grad_f;
  batch<double> grad_d;
  loss::soft_score_matching_loss<op::scale<float>> loss_f;
  const auto vf = loss_f(op::scale<float>{}, levels, w, phi_f, r_f, &grad_f);
  const auto vd = loss::soft_score_matching(op::scale<double>{}, levels, w, in.phi, in.r, &grad_d);
  CHECK(vf.value == Approx(vd.value).epsilon(1e-5));
  CHECK(testing::max_relative_error(grad_f, grad_d) <= 1e-5);
  // a second call with the same workspace gives bit-identical results
  batch<float> grad_f2;
  CHECK(loss_f(op::scale<float>{}, levels, w, phi_f, r_f, &grad_f2).value == vf.value);
  CHECK(bool(grad_f2 == grad_f));
  // gradient written over phi itself
  batch<float> phi_alias = phi_f;
  CHECK(loss_f(op::scale<float>{}, levels, w, phi_alias, r_f, &phi_alias).value == vf.value);
  CHECK(bool(phi_alias == grad_f));
}

TEST_CASE("loss values do not depend on the thread count", "[loss]") {
  inputs in({3, 3, 48, 48}, 5);  // 6912 elements per sample: more than one reduction block
  const std::vector<double> w{1.0, 0.5, 2.0}, levels{0.1, 0.5, 0.9};
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = loss::soft_score_matching(op::scale<double>{}, levels, w, in.phi, in.r).value;
  omp_set_num_threads(std::max(2, threads));
  const double many = loss::soft_score_matching(op::scale<double>{}, levels, w, in.phi, in.r).value;
  omp_set_num_threads(threads);
  CHECK(one == many);
}

TEST_CASE("bad input to the losses names what is wrong", "[loss][errors]") {
  inputs in;
  const op::scale<double> sc;
  const std::vector<double> w{1.0, 1.0}, levels{0.2, 0.4}, sigmas{0.5, 1.0};
  batch<double> grad;

  SECTION("shape mismatch") {
    const batch<double> r_bad = random_batch<double>({2, 1, 5, 5}, 3);
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, levels, w, in.phi, r_bad, &grad),
                      Contains("soft_score_matching: r") && Contains("shape mismatch"));
    CHECK_THROWS_WITH(loss::clean_image(std::span<const double>(w), in.phi, r_bad), Contains("shape mismatch"));
    CHECK_THROWS_WITH(loss::denoising_score_matching(sc, levels, sigmas, w, in.phi, r_bad, in.x0),
                      Contains("x_t") && Contains("shape mismatch"));
  }
  SECTION("NaN in phi, r, x0") {
    batch<double> phi = in.phi;
    phi(1, 0, 2, 3) = nan_value;
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, levels, w, phi, in.r, &grad),
                      Contains("phi") && Contains("non-finite") && Contains("flat index 31"));
    CHECK_THROWS_WITH(loss::clean_image(std::span<const double>(w), phi, in.r), Contains("phi"));
    batch<double> r = in.r;
    r(0, 0, 0, 1) = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, levels, w, in.phi, r), Contains("r (vs phi): non-finite"));
    batch<double> x0 = in.x0;
    x0(0, 0, 1, 1) = nan_value;
    CHECK_THROWS_WITH(loss::denoising_score_matching(sc, levels, sigmas, w, in.phi, in.x_t, x0),
                      Contains("x0") && Contains("non-finite"));
  }
  SECTION("levels, weights and sigmas must have one entry per sample") {
    const std::vector<double> three{0.1, 0.2, 0.3};
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, three, w, in.phi, in.r),
                      Contains("levels has 3 entries") && Contains("N = 2"));
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, levels, three, in.phi, in.r), Contains("weights has 3 entries"));
    CHECK_THROWS_WITH(loss::clean_image(std::span<const double>(three), in.phi, in.r), Contains("weights has 3"));
    CHECK_THROWS_WITH(loss::denoising_score_matching(sc, levels, three, w, in.phi, in.x_t, in.x0),
                      Contains("sigmas has 3 entries"));
  }
  SECTION("bad level, weight or sigma") {
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, std::vector<double>{0.2, 1.5}, w, in.phi, in.r),
                      Contains("levels[1] = 1.5") && Contains("scale"));
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, std::vector<double>{nan_value, 0.1}, w, in.phi, in.r),
                      Contains("levels[0] = nan"));
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, levels, std::vector<double>{1.0, -1.0}, in.phi, in.r),
                      Contains("weights[1] = -1"));
    CHECK_THROWS_WITH(loss::denoising_score_matching(sc, levels, std::vector<double>{0.5, 0.0}, w, in.phi, in.x_t,
                                                     in.x0),
                      Contains("sigmas[1] = 0"));
    CHECK_THROWS_WITH(loss::denoising_score_matching(sc, levels, std::vector<double>{nan_value, 1.0}, w, in.phi,
                                                     in.x_t, in.x0),
                      Contains("sigmas[0] = nan"));
  }
  SECTION("empty batch") {
    const batch<double> empty({0, 1, 5, 4});
    CHECK_THROWS_WITH(loss::soft_score_matching(sc, std::vector<double>{}, std::vector<double>{}, empty, empty),
                      Contains("empty batch"));
  }
}
