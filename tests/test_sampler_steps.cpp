// Each sampler's step against its equation evaluated directly in double on a stand-in
// model (C_t = alpha_t I, an affine "network"), the final-step convention, the fused
// noise pass against noise_source::fill, NFE counts and bad-input errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <omp.h>

#include "softdiff/op/scale.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"
#include "softdiff/sampler/step_support.hpp"

using namespace softdiff;

namespace {

// A SamplingModel with known pieces: C_t = (1 - 0.6 t) I, sigma_t = 0.05 + 0.5 t (0 at t = 0),
// h = 0.8 x + 0.1 t (so phi = -0.2 x + 0.1 t).
template <class T>
struct affine_model {
  using scalar_type = T;
  op::scale<T> op;
  int evaluations = 0;
  static double alpha(double t) { return 1.0 - 0.6 * t; }
  double sigma(double t) const { return t == 0.0 ? 0.0 : 0.05 + 0.5 * t; }
  void denoise(const batch<T>& x, double t, batch<T>& out) {
    ++evaluations;
    ensure_shape(out, shape_of(x));
    for (std::size_t i = 0; i < x.size(); ++i) out.data()[i] = static_cast<T>(h_of(x.data()[i], t));
  }
  void apply_operator(double t, const batch<T>& x, batch<T>& out) { op.apply(1.0 - alpha(t), x, out); }
  static double h_of(double x, double t) { return 0.8 * x + 0.1 * t; }
};
static_assert(SamplingModel<affine_model<float>>);

template <class T>
batch<T> start_batch() {
  batch<T> x({3, 2, 5, 7});  // 210 elements: not a multiple of the Philox block
  noise_source{7, 1}.fill(x);
  return x;
}

template <class T>
std::vector<double> eta_of(const noise_source& noise, std::size_t n) {
  std::vector<T> e(n);
  noise.fill(std::span<T>(e));
  return {e.begin(), e.end()};
}

// Steps x (as doubles) with rule(x_i, h, y = C_t h, c = C_{t'} h, eta_i) and compares with the sampler.
template <class T, class S, class Rule>
void check_rule(S sampler, double t, double tn, Rule rule, double tol) {
  affine_model<T> m;
  batch<T> x = start_batch<T>();
  const std::vector<double> x_in(x.begin(), x.end());
  const noise_source noise{11, stream_for(stream_purpose::sampler, 3)};
  const std::vector<double> eta = eta_of<T>(noise, x.size());
  sampler.step(m, x, t, tn, noise);
  const double s = m.sigma(t), sn = m.sigma(tn);
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double h = affine_model<T>::h_of(x_in[i], t);
    const double want = rule(x_in[i], h, affine_model<T>::alpha(t) * h, affine_model<T>::alpha(tn) * h, eta[i], s, sn);
    worst = std::max(worst, std::abs(want - static_cast<double>(x.data()[i])));
  }
  CHECK(worst < tol);
}

// Algorithm 1: x_{t'} = C_{t'} h + s' eta
const auto naive_rule = [](double, double, double, double c, double eta, double, double sn) { return c + sn * eta; };
// Algorithm 2 / eq. 17
const auto momentum_rule = [](double x, double, double y, double c, double eta, double s, double sn) {
  const double e = y - x;
  const double z = x - ((sn * sn - s * s) / (s * s)) * e + std::sqrt(s * s - sn * sn) * eta;
  return z + (c - y);
};
// eq. 51
const auto pf_rule = [](double x, double, double y, double c, double, double s, double sn) {
  const double e = y - x;
  return x - 0.5 * ((sn * sn - s * s) / (s * s)) * e + (c - y);
};
// eq. 52 with k = ratio * s'
auto ddim_rule(double ratio) {
  return [ratio](double x, double, double y, double c, double eta, double s, double sn) {
    const double k = ratio * sn;
    return c + std::sqrt(sn * sn - k * k) * (x - y) / s + k * eta;
  };
}

}  // namespace

TEST_CASE("each sampler step evaluates its equation (double and float)", "[sampler]") {
  for (const auto& [t, tn] : {std::pair{0.9, 0.7}, std::pair{0.3, 0.25}, std::pair{1.0, 0.02}}) {
    check_rule<double>(sampler::naive<double>{}, t, tn, naive_rule, 1e-13);
    check_rule<double>(sampler::momentum<double>{}, t, tn, momentum_rule, 1e-13);
    check_rule<double>(sampler::pf_momentum<double>{}, t, tn, pf_rule, 1e-13);
    check_rule<double>(sampler::ddim<double>{0.0}, t, tn, ddim_rule(0.0), 1e-13);
    check_rule<double>(sampler::ddim<double>{0.6}, t, tn, ddim_rule(0.6), 1e-13);
    check_rule<float>(sampler::momentum<float>{}, t, tn, momentum_rule, 2e-5);
    check_rule<float>(sampler::ddim<float>{0.3}, t, tn, ddim_rule(0.3), 2e-5);
    check_rule<float>(sampler::naive<float>{}, t, tn, naive_rule, 2e-5);
  }
}

TEST_CASE("predictor-corrector: DDIM predictor, then eq. 51 with the averaged x0 estimate", "[sampler]") {
  const double t = 0.8, tn = 0.6, ratio = 0.5;
  affine_model<double> m;
  batch<double> x = start_batch<double>();
  const std::vector<double> x_in(x.begin(), x.end());
  const noise_source noise{5, 9};
  const std::vector<double> eta = eta_of<double>(noise, x.size());
  sampler::predictor_corrector<double> pc(ratio);
  pc.step(m, x, t, tn, noise);
  CHECK(m.evaluations == 2);
  const double s = m.sigma(t), sn = m.sigma(tn), at = affine_model<double>::alpha(t),
               an = affine_model<double>::alpha(tn);
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double h = affine_model<double>::h_of(x_in[i], t);
    const double pred = ddim_rule(ratio)(x_in[i], h, at * h, an * h, eta[i], s, sn);
    const double hb = 0.5 * (h + affine_model<double>::h_of(pred, tn));
    const double want = pf_rule(x_in[i], hb, at * hb, an * hb, 0.0, s, sn);
    worst = std::max(worst, std::abs(want - x.data()[i]));
  }
  CHECK(worst < 1e-13);
}

TEST_CASE("a momentum step over blocks of samples equals the whole-batch step bit for bit", "[sampler]") {
  for (std::size_t block : {1, 2, 3, 5}) {  // batch of 3: blocks with a remainder, one block, larger than the batch
    affine_model<float> m1, m2;
    batch<float> a = start_batch<float>(), b = a;
    sampler::momentum<float> whole, blocked(block);
    CHECK(blocked.block_samples() == block);
    for (const auto& [t, tn] : {std::pair{0.9, 0.7}, std::pair{0.7, 0.5}, std::pair{0.5, 0.0}}) {
      const noise_source noise{21, stream_for(stream_purpose::sampler, 1)};
      whole.step(m1, a, t, tn, noise);
      blocked.step(m2, b, t, tn, noise);
      const bool same = std::equal(a.begin(), a.end(), b.begin());
      CHECK(same);
    }
    CHECK(m2.evaluations == 3 * static_cast<int>((3 + std::min<std::size_t>(block, 3) - 1) / std::min<std::size_t>(block, 3)));
  }
}

TEST_CASE("the DDIM-type step with k = s' is the naive step", "[sampler]") {
  affine_model<double> m;
  batch<double> a = start_batch<double>(), b = a;
  const noise_source noise{3, 4};
  sampler::ddim<double>{1.0}.step(m, a, 0.7, 0.4, noise);
  sampler::naive<double>{}.step(m, b, 0.7, 0.4, noise);
  CHECK(xt::allclose(a, b, 1e-13, 1e-13));
}

TEST_CASE("a step to sigma = 0 returns h, the x0 estimate, for every sampler", "[sampler]") {
  auto check = [](auto sampler) {
    affine_model<double> m;
    batch<double> x = start_batch<double>();
    batch<double> h;
    m.denoise(x, 0.1, h);
    sampler.step(m, x, 0.1, 0.0, noise_source{1, 2});
    const bool same = (x == h);
    CHECK(same);
  };
  check(sampler::naive<double>{});
  check(sampler::momentum<double>{});
  check(sampler::pf_momentum<double>{});
  check(sampler::ddim<double>{0.5});
  check(sampler::predictor_corrector<double>{});
}

TEST_CASE("evaluations per step are what the samplers do", "[sampler]") {
  affine_model<float> m;
  batch<float> x = start_batch<float>();
  sampler::momentum<float> mo;
  sampler::predictor_corrector<float> pc;
  CHECK(mo.evaluations_per_step() == 1);
  CHECK(pc.evaluations_per_step() == 2);
  mo.step(m, x, 0.9, 0.8, noise_source{});
  CHECK(m.evaluations == 1);
  pc.step(m, x, 0.8, 0.7, noise_source{});
  CHECK(m.evaluations == 3);
  pc.step(m, x, 0.7, 0.0, noise_source{});  // final step: one evaluation
  CHECK(m.evaluations == 4);
  CHECK(sampler::naive<float>::name == "naive");
  CHECK(sampler::ddim<float>::name == "ddim");
}

TEST_CASE("the fused noise pass at an offset gives the normals of those flat indices", "[sampler]") {
  const noise_source noise{8, 3};
  std::vector<float> want(1000), got(1000, -99.0f);
  noise.fill(std::span<float>(want));
  for (const auto& [offset, n] : {std::pair<std::size_t, std::size_t>{0, 1000}, {1, 5}, {3, 500}, {517, 483}, {999, 1}}) {
    noise.shifted(offset).for_each_normal<float>(n, [&](std::size_t b, std::size_t e, const float* eta) {
      for (std::size_t i = b; i < e; ++i) got[offset + i] = eta[i - b];
    });
    const bool same = std::equal(want.begin() + offset, want.begin() + offset + n, got.begin() + offset);
    CHECK(same);
  }
}

TEST_CASE("the fused noise pass reproduces noise_source::fill for any thread count", "[sampler]") {
  auto check = [](auto zero, std::size_t n) {
    using T = decltype(zero);
    const noise_source noise{42, stream_for(stream_purpose::sampler, 17)};
    std::vector<T> want(n), got(n, T(-99));
    noise.fill(std::span<T>(want));
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      noise.for_each_normal<T>(n, [&](std::size_t b, std::size_t e, const T* eta) {
        for (std::size_t i = b; i < e; ++i) got[i] = eta[i - b];
      });
      CHECK(got == want);
    }
  };
  for (std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{257}, std::size_t{70001}}) {
    check(0.0f, n);
    check(0.0, n);
  }
}

TEST_CASE("the vectorised normal tile equals backend::normal4 bit for bit", "[sampler]") {
  std::size_t differ = 0;
  for (const std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{42}, ~std::uint64_t{0}, std::uint64_t{0x123456789abcdef}})
    for (const std::uint64_t stream : {std::uint64_t{0}, stream_for(stream_purpose::sampler, 7), ~std::uint64_t{0}})
      for (const std::uint64_t first : {std::uint64_t{0}, std::uint64_t{1000}, (std::uint64_t{1} << 32) - 10,
                                        std::uint64_t{0xfedcba9876543210}}) {
        float tile[4 * backend::detail::normal_tile], want[4];
        backend::detail::normal4_tile(first, stream, seed, tile);
        for (std::size_t j = 0; j < backend::detail::normal_tile; ++j) {
          backend::normal4(first + j, stream, seed, want);
          for (int k = 0; k < 4; ++k) differ += tile[4 * j + k] != want[k];
        }
      }
  CHECK(differ == 0);
}

TEST_CASE("bad steps throw with the reason", "[sampler]") {
  affine_model<float> m;
  batch<float> x = start_batch<float>();
  sampler::momentum<float> s;
  CHECK_THROWS_WITH(s.step(m, x, 0.5, 0.5, noise_source{}), Catch::Contains("t' < t"));
  CHECK_THROWS_WITH(s.step(m, x, 0.4, 0.5, noise_source{}), Catch::Contains("t' < t"));
  CHECK_THROWS_WITH(s.step(m, x, 1.5, 0.5, noise_source{}), Catch::Contains("t' < t"));
  CHECK_THROWS_WITH(s.step(m, x, 0.5, std::nan(""), noise_source{}), Catch::Contains("t' < t"));
  CHECK_THROWS_WITH(s.step(m, x, 0.0, -0.1, noise_source{}), Catch::Contains("t' < t"));
  batch<float> empty({0, 1, 2, 2});
  CHECK_THROWS_WITH(s.step(m, empty, 0.5, 0.4, noise_source{}), Catch::Contains("empty batch"));
  CHECK_THROWS_WITH(sampler::ddim<float>{1.5}, Catch::Contains("k_ratio"));
  CHECK_THROWS_WITH(sampler::predictor_corrector<float>{-0.1}, Catch::Contains("k_ratio"));
}

TEST_CASE("a non-increasing sigma or sigma_t = 0 is refused", "[sampler]") {
  struct flat_model : affine_model<float> {
    double sigma(double t) const { return t < 0.5 ? 0.0 : 1.0 - t; }  // decreasing above 0.5
  };
  flat_model m;
  batch<float> x = start_batch<float>();
  sampler::naive<float> s;
  CHECK_THROWS_WITH(s.step(m, x, 0.4, 0.3, noise_source{}), Catch::Contains("sigma(t) must be > 0"));
  CHECK_THROWS_WITH(s.step(m, x, 0.8, 0.6, noise_source{}), Catch::Contains("sigma(t') <= sigma(t)"));
}
