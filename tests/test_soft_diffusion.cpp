// SoftDiffusion<Op, Sched, Net>: corrupt, loss, denoise, score (eq. 10), the momentum step
// against the VE reverse-SDE Euler-Maruyama step when C_t = I, sampling and its random
// streams, sampling in parts (sample_range) against one batch, and bad-input errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

#include <xtensor/xview.hpp>

#include "softdiff/loss/soft_score_matching.hpp"
#include "softdiff/nn/oracle.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/schedule/ve.hpp"
#include "softdiff/schedule/vp.hpp"
#include "softdiff/soft_diffusion.hpp"

using namespace softdiff;

namespace {

// phi = -a x + b t: a Denoiser with a known output.
template <class T>
struct affine_net {
  using scalar_type = T;
  double a = 0.25, b = 0.1;
  int predicts = 0;
  void predict(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    ++predicts;
    ensure_shape(phi, shape_of(x));
    const std::size_t d = x.size() / x.shape()[0];
    for (std::size_t i = 0; i < x.size(); ++i) phi.data()[i] = static_cast<T>(-a * x.data()[i] + b * t[i / d]);
  }
};

// The same as a TrainableDenoiser with no parameters, counting forward calls.
template <class T>
struct trainable_affine : affine_net<T> {
  int forwards = 0;
  void forward(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    ++forwards;
    this->predict(x, t, phi);
  }
  void backward(const batch<T>&) {}
  void zero_grad() {}
  std::size_t parameter_count() const { return 0; }
  std::span<T> parameters() { return {}; }
  std::span<T> gradients() { return {}; }
};
static_assert(TrainableDenoiser<trainable_affine<float>>);

template <class T>
batch<T> images(std::size_t n, std::uint64_t seed) {
  batch<T> x({n, 2, 8, 8});
  noise_source{seed, 77}.fill(x);
  return x;
}

schedule::two_stage small_blur() {
  schedule::two_stage_parameters p;
  p.sigma_max = 0.2;
  p.level_min = 0.2;
  p.level_max = 3.0;
  return schedule::two_stage(p);
}

}  // namespace

TEST_CASE("with C_t = I one momentum step is the VE reverse-SDE Euler-Maruyama step", "[soft_diffusion]") {
  const batch<double> data = images<double>(5, 1);
  using net_t = nn::oracle<op::identity<double>, schedule::ve_geometric>;
  const schedule::ve_geometric ve(0.01, 2.0);
  SoftDiffusion sd(op::identity<double>{}, ve, net_t(op::identity<double>{}, ve, data));
  batch<double> x = images<double>(3, 2), score, eta(x.shape());
  const double t = 0.7, tn = 0.65, s = sd.sigma(t), sn = sd.sigma(tn);
  const noise_source noise{5, stream_for(stream_purpose::sampler, 4)};
  noise.fill(eta);
  sd.score(x, t, score);
  // x_{t'} = x_t + (s^2 - s'^2) score + sqrt(s^2 - s'^2) eta
  const batch<double> em = x + (s * s - sn * sn) * score + std::sqrt(s * s - sn * sn) * eta;
  sampler::momentum<double> m;
  m.step(sd, x, t, tn, noise);
  CHECK(xt::allclose(x, em, 1e-12, 1e-12));
  CHECK(xt::amax(xt::abs(x - em))() < 1e-12);
}

TEST_CASE("corrupt: x_t = C_t x0 + sigma_t eta, one time per sample", "[soft_diffusion]") {
  SoftDiffusion sd(op::scale<double>{}, schedule::vp(), affine_net<double>{});
  const batch<double> x0 = images<double>(3, 3);
  const std::vector<double> t{0.1, 0.9, 0.5};
  const noise_source noise{8, stream_for(stream_purpose::training, 2)};
  batch<double> xt, eta(x0.shape());
  sd.corrupt(x0, t, noise, xt);
  noise.fill(eta);
  const std::size_t d = 128;
  double worst = 0;
  for (std::size_t i = 0; i < x0.size(); ++i) {
    const double tn = t[i / d];
    const double want = (1.0 - sd.level(tn)) * x0.data()[i] + sd.sigma(tn) * eta.data()[i];
    worst = std::max(worst, std::abs(want - xt.data()[i]));
  }
  CHECK(worst < 1e-14);
}

TEST_CASE("loss: eq. 12 on phi = net(x_t), r = x0 - x_t, with forward() for a trainable net", "[soft_diffusion]") {
  SoftDiffusion sd(op::dct_blur<double>{}, small_blur(), trainable_affine<double>{});
  const batch<double> x0 = images<double>(4, 4);
  const std::vector<double> t{0.1, 0.5, 0.9, 0.3};
  const noise_source noise{2, 3};
  batch<double> grad;
  const loss::loss_value v = sd.loss(x0, t, noise, loss::weighting::inverse_sigma2, &grad);
  CHECK(sd.network().forwards == 1);
  CHECK(sd.network().predicts == 1);  // forward calls predict in this stub, once
  // the same by hand
  batch<double> xt, phi, g2;
  sd.corrupt(x0, t, noise, xt);
  sd.network().predict(xt, t, phi);
  const batch<double> r = x0 - xt;
  std::vector<double> levels, weights;
  for (double tn : t) {
    levels.push_back(sd.level(tn));
    weights.push_back(1.0 / (sd.sigma(tn) * sd.sigma(tn)));
  }
  const loss::loss_value want = loss::soft_score_matching(sd.op(), levels, weights, phi, r, &g2);
  CHECK(v.value == Approx(want.value).epsilon(1e-12));
  CHECK(v.value > 0);
  CHECK(xt::allclose(grad, g2, 1e-12, 1e-15));
  // unit weighting differs by the weights
  const loss::loss_value u = sd.loss(x0, t, noise, loss::weighting::unit);
  CHECK(u.value == Approx(want.unweighted).epsilon(1e-12));
}

TEST_CASE("denoise gives h = phi + x_t; score is (C_t h - x_t) / sigma_t^2 (eq. 10)", "[soft_diffusion]") {
  SoftDiffusion sd(op::dct_blur<double>{}, small_blur(), affine_net<double>{});
  const batch<double> x = images<double>(2, 5);
  const double t = 0.6;
  batch<double> h, hs, s, ch;
  sd.denoise(x, t, h);
  const batch<double> want_h = 0.75 * x + 0.1 * t;
  CHECK(xt::allclose(h, want_h, 1e-14, 1e-14));
  const std::vector<double> ts{t, 0.2};
  sd.denoise(x, ts, hs);
  batch<double> second = xt::view(hs, xt::range(1, 2)), x1 = xt::view(x, xt::range(1, 2));
  const batch<double> want_second = 0.75 * x1 + 0.1 * 0.2;
  CHECK(xt::allclose(second, want_second, 1e-14, 1e-14));
  sd.score(x, t, s);
  sd.apply_operator(t, want_h, ch);
  const double sg = sd.sigma(t);
  const batch<double> want_s = (ch - x) / (sg * sg);
  CHECK(xt::allclose(s, want_s, 1e-12, 1e-12));
}

TEST_CASE("sample: from the fitted final distribution, reproducible from the seed", "[soft_diffusion]") {
  const batch<float> data = images<float>(6, 6);
  SoftDiffusion sd(op::dct_blur<float>{}, small_blur(), affine_net<float>{});
  CHECK_THROWS_WITH(sd.sample<sampler::momentum<float>>(2, 4, 1), Catch::Contains("no final distribution"));
  sd.fit_final_distribution(data);
  REQUIRE(sd.final_distribution().has_value());
  const batch<float> a = sd.sample<sampler::momentum<float>>(3, 5, 11);
  const batch<float> b = sd.sample<sampler::momentum<float>>(3, 5, 11);
  const batch<float> c = sd.sample<sampler::momentum<float>>(3, 5, 12);
  CHECK(shape_of(a) == shape4{3, 2, 8, 8});
  CHECK(xt::allclose(a, b, 0.0, 0.0));
  CHECK_FALSE(xt::allclose(a, c, 1e-3, 1e-3));
  // the same by hand: x_1 from stream (initial, 0), step k with stream (sampler, k)
  batch<float> x;
  sd.final_distribution()->sample(sd.op(), sd.level(1.0), sd.sigma(1.0), 3,
                                  noise_source{11, stream_for(stream_purpose::initial, 0)}, x);
  const std::vector<double> grid = sampler::uniform_grid(5);
  sampler::momentum<float> m;
  for (std::size_t k = 0; k < 5; ++k)
    m.step(sd, x, grid[k], grid[k + 1], noise_source{11, stream_for(stream_purpose::sampler, k)});
  CHECK(xt::allclose(a, x, 0.0, 0.0));
  // grid overload and a reused sampler object
  const std::vector<double> g{1.0, 0.5, 0.0};
  const batch<float> d = sd.sample(2, std::span<const double>(g), 3, sampler::ddim<float>{0.5});
  CHECK(shape_of(d) == shape4{2, 2, 8, 8});
}

namespace {

/// Samples [0, total) of `seed` drawn in parts of `part` samples, concatenated.
template <class S, class Model>
batch<typename Model::scalar_type> sample_in_parts(Model& sd, std::size_t total, std::size_t part, std::size_t steps,
                                                   std::uint64_t seed, const S& sampler) {
  using T = typename Model::scalar_type;
  batch<T> all;
  for (std::size_t first = 0; first < total; first += part) {
    const batch<T> x = sd.sample(sample_range{first, std::min(part, total - first)}, steps, seed, sampler);
    if (first == 0) {
      shape4 s = shape_of(x);
      s[0] = total;
      all = batch<T>(s);
    }
    std::copy(x.data(), x.data() + x.size(), all.data() + first * (x.size() / x.shape()[0]));
  }
  return all;
}

template <class T, class S>
void check_parts_match_whole(const S& sampler, std::size_t c, std::size_t h, std::size_t w) {
  batch<T> data({6, c, h, w});
  noise_source{5, 77}.fill(data);
  SoftDiffusion sd(op::dct_blur<T>{}, small_blur(), affine_net<T>{});
  sd.fit_final_distribution(data);
  const batch<T> whole = sd.sample(7, 4, 21, sampler);
  for (const std::size_t part : {1, 2, 3, 7}) {
    INFO(S::name << ", parts of " << part << ", images " << c << "x" << h << "x" << w);
    const batch<T> parts = sample_in_parts(sd, 7, part, 4, 21, sampler);
    REQUIRE(shape_of(parts) == shape_of(whole));
    CHECK(std::equal(whole.data(), whole.data() + whole.size(), parts.data()));  // bitwise
  }
  // a part is the same rows of a larger batch, not the first rows again (x_1 is random)
  const batch<T> tail = sd.sample(sample_range{5, 2}, 4, 21, sampler);
  CHECK(std::equal(tail.data(), tail.data() + tail.size(), whole.data() + 5 * (whole.size() / 7)));
  CHECK_FALSE(std::equal(tail.data(), tail.data() + tail.size(), whole.data()));
}

}  // namespace

TEST_CASE("sample: drawn in parts (sample_range), the samples are bitwise those of one batch", "[soft_diffusion]") {
  // 2 x 8 x 8 images (128 values: whole Philox blocks) and 1 x 5 x 5 (25: parts start inside a block)
  for (const auto& [c, h, w] : {std::tuple<std::size_t, std::size_t, std::size_t>{2, 8, 8}, {1, 5, 5}}) {
    check_parts_match_whole<float>(sampler::naive<float>{}, c, h, w);
    check_parts_match_whole<float>(sampler::momentum<float>{}, c, h, w);
    check_parts_match_whole<float>(sampler::momentum<float>{2}, c, h, w);  // blocked steps inside a part
    check_parts_match_whole<float>(sampler::pf_momentum<float>{}, c, h, w);
    check_parts_match_whole<float>(sampler::ddim<float>{0.5}, c, h, w);
    check_parts_match_whole<float>(sampler::predictor_corrector<float>{0.5}, c, h, w);
    check_parts_match_whole<double>(sampler::momentum<double>{}, c, h, w);
    check_parts_match_whole<double>(sampler::predictor_corrector<double>{0.3}, c, h, w);
  }
  // sample_from with first_sample: the same as the matching part
  SoftDiffusion sd(op::dct_blur<float>{}, small_blur(), affine_net<float>{});
  sd.fit_final_distribution(images<float>(6, 6));
  const batch<float> part = sd.sample(sample_range{3, 2}, 5, 9, sampler::naive<float>{});
  batch<float> x;
  sd.final_distribution()->sample(sd.op(), sd.level(1.0), sd.sigma(1.0), 2,
                                  noise_source{9, stream_for(stream_purpose::initial, 0), 3 * 128}, x);
  sampler::naive<float> n;
  const std::vector<double> grid = sampler::uniform_grid(5);
  sd.sample_from(x, grid, 9, n, no_step_observer{}, 3);
  CHECK(std::equal(x.data(), x.data() + x.size(), part.data()));
  // a shifted source that is not a whole number of images is refused
  CHECK_THROWS_WITH(sd.final_distribution()->sample(sd.op(), 1.0, 0.2, 2, noise_source{9, 1, 100}, x),
                    Catch::Contains("noise offset 100 is not a whole number of 2x8x8 images"));
}

TEST_CASE("sample: the step observer sees every step in order and changes nothing", "[soft_diffusion]") {
  SoftDiffusion sd(op::dct_blur<float>{}, small_blur(), affine_net<float>{});
  sd.fit_final_distribution(images<float>(6, 6));
  std::vector<std::pair<std::size_t, std::size_t>> seen;
  const auto record = [&seen](std::size_t done, std::size_t total) { seen.emplace_back(done, total); };
  const batch<float> observed = sd.sample(3, 5, 11, sampler::momentum<float>{}, record);
  const batch<float> plain = sd.sample<sampler::momentum<float>>(3, 5, 11);
  CHECK(xt::allclose(observed, plain, 0.0, 0.0));
  REQUIRE(seen.size() == 5);
  for (std::size_t k = 0; k < 5; ++k) CHECK(seen[k] == std::pair<std::size_t, std::size_t>{k + 1, 5});
  // on a user grid, and an observer that cancels by throwing after the second step
  const std::vector<double> g{1.0, 0.75, 0.5, 0.0};
  seen.clear();
  (void)sd.sample(2, std::span<const double>(g), 3, sampler::naive<float>{}, record);
  CHECK(seen == std::vector<std::pair<std::size_t, std::size_t>>{{1, 3}, {2, 3}, {3, 3}});
  std::size_t calls = 0;
  const auto cancel = [&calls](std::size_t done, std::size_t) {
    ++calls;
    if (done == 2) throw std::runtime_error("cancelled at step 2");
  };
  CHECK_THROWS_WITH(sd.sample(2, 10, 3, sampler::naive<float>{}, cancel), "cancelled at step 2");
  CHECK(calls == 2);
}

TEST_CASE("SoftDiffusion: bad input throws with the reason", "[soft_diffusion]") {
  SoftDiffusion sd(op::scale<float>{}, schedule::vp(), affine_net<float>{});
  batch<float> x = images<float>(2, 7), out;
  const std::vector<double> t1{0.5}, t2{0.5, 0.5}, tbad{0.5, 2.0};
  CHECK_THROWS_WITH(sd.score(x, 0.0, out), Catch::Contains("sigma_t > 0"));
  CHECK_THROWS_WITH(sd.score(x, 1.5, out), Catch::Contains("outside [0, 1]"));
  CHECK_THROWS_WITH(sd.score(x, 0.5, x), Catch::Contains("must not alias"));
  CHECK_THROWS_WITH(sd.denoise(x, t1, out), Catch::Contains("1 times for a batch of 2"));
  CHECK_THROWS_WITH(sd.denoise(x, tbad, out), Catch::Contains("t[1] = 2"));
  CHECK_THROWS_WITH(sd.corrupt(x, t1, noise_source{}, out), Catch::Contains("1 times for a batch of 2"));
  batch<float> empty({0, 2, 8, 8});
  CHECK_THROWS_WITH(sd.denoise(empty, 0.5, out), Catch::Contains("empty batch"));
  batch<float> bad = x;
  bad(1, 1, 2, 3) = std::nanf("");
  CHECK_THROWS_WITH(sd.denoise(bad, 0.5, out), Catch::Contains("non-finite") && Catch::Contains("denoise"));
  CHECK_THROWS_WITH(sd.score(bad, 0.5, out), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(sd.loss(bad, t2, noise_source{}, loss::weighting::unit), Catch::Contains("non-finite"));
  sampler::momentum<float> m;
  const std::vector<double> grid{1.0, 0.5, 0.0}, rising{0.5, 1.0};
  CHECK_THROWS_WITH(sd.sample_from(bad, grid, 1, m), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(sd.sample_from(x, rising, 1, m), Catch::Contains("strictly decreasing"));
  CHECK_THROWS_WITH(sd.sample<sampler::naive<float>>(2, 0, 1), Catch::Contains("at least 1"));
  sd.fit_final_distribution(x);
  CHECK_THROWS_WITH(sd.sample<sampler::naive<float>>(0, 3, 1), Catch::Contains("count must be > 0"));
  // the schedule must fit the operator: scale's levels end at 1, this blur schedule reaches 3
  CHECK_THROWS_WITH(SoftDiffusion(op::scale<float>{}, small_blur(), affine_net<float>{}),
                    Catch::Contains("outside operator range"));
}
