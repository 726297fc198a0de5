// Adam with warm-up and clipping against values produced by torch.optim.Adam,
// the clipping rule of clip_grad_norm_, and the EMA recurrence.
#include <catch2/catch.hpp>

#include <array>
#include <vector>

#include "softdiff/nn/adam.hpp"
#include "softdiff/nn/ema.hpp"

using namespace softdiff;

TEST_CASE("adam matches torch.optim.Adam with clip_grad_norm_", "[nn][optim]") {
  // Reference: torch 1.13 float64, p0 below, loss sum(c p^2 + d p), clip_grad_norm_(1.0), 5 steps, lr 0.1.
  std::vector<double> p = {0.5, -1.5, 2.0, 0.0, 3.0};
  const std::array<double, 5> c = {1.0, 2.0, 0.5, 3.0, 0.1}, d = {0.3, -0.2, 0.0, 1.0, -0.5};
  nn::adam<double> opt(p.size(), {.lr = 0.1, .warmup_steps = 0, .max_grad_norm = 1.0});
  std::vector<double> g(p.size());
  for (int k = 0; k < 5; ++k) {
    for (std::size_t i = 0; i < p.size(); ++i) g[i] = 2 * c[i] * p[i] + d[i];
    opt.step(p, g);
  }
  const std::array<double, 5> torch = {0.0092679710462350157, -0.99983157067021111, 1.4991536714859675,
                                       -0.24469477767510267, 2.5196949127299346};
  for (std::size_t i = 0; i < p.size(); ++i) CHECK(p[i] == Approx(torch[i]).epsilon(1e-12).margin(1e-14));
  CHECK(opt.steps_taken() == 5);
}

TEST_CASE("linear warm-up scales the learning rate", "[nn][optim]") {
  nn::adam<float> opt(3, {.lr = 2e-4, .warmup_steps = 5000});
  CHECK(opt.learning_rate(1) == Approx(2e-4 / 5000));
  CHECK(opt.learning_rate(2500) == Approx(1e-4));
  CHECK(opt.learning_rate(5000) == Approx(2e-4));
  CHECK(opt.learning_rate(90000) == Approx(2e-4));
  // first Adam step moves each coordinate by lr_1 * sign(g) (up to eps)
  std::vector<float> p = {1.f, 1.f, 1.f}, g = {0.5f, -0.01f, 0.f};
  nn::adam<float> one(3, {.lr = 1e-2, .warmup_steps = 0, .max_grad_norm = 0});
  one.step(p, g);
  CHECK(p[0] == Approx(1 - 1e-2).epsilon(1e-5));
  CHECK(p[1] == Approx(1 + 1e-2).epsilon(1e-5));
  CHECK(p[2] == 1.f);
}

TEST_CASE("gradient clipping caps the global norm and reports it", "[nn][optim]") {
  std::vector<double> g = {3, 4};
  CHECK(nn::clip_grad_norm<double>(g, 1.0) == Approx(5));
  CHECK(nn::global_norm<double>(g) == Approx(1.0).epsilon(1e-6));
  std::vector<double> small = {0.3, 0.4};
  nn::clip_grad_norm<double>(small, 1.0);
  CHECK(small[0] == 0.3);
}

TEST_CASE("adam rejects bad configuration and non-finite gradients", "[nn][optim]") {
  CHECK_THROWS_WITH(nn::adam<float>(2, {.lr = -1}), Catch::Contains("learning rate"));
  CHECK_THROWS_WITH(nn::adam<float>(2, {.beta1 = 1.0}), Catch::Contains("betas"));
  nn::adam<float> opt(2, {});
  std::vector<float> p = {1, 2}, g = {std::nanf(""), 0};
  CHECK_THROWS_WITH(opt.step(p, g), Catch::Contains("non-finite gradient"));
  CHECK(p[0] == 1.f);
  std::vector<float> short_g = {1};
  CHECK_THROWS_WITH(opt.step(p, short_g), Catch::Contains("expected 2"));
}

TEST_CASE("ema follows its recurrence", "[nn][optim]") {
  std::vector<double> p = {1.0, -2.0};
  nn::ema<double> avg(p, 0.9);
  p = {2.0, 0.0};
  avg.update(p);
  CHECK(avg.weights()[0] == Approx(0.9 * 1 + 0.1 * 2));
  CHECK(avg.weights()[1] == Approx(0.9 * -2 + 0.1 * 0));
  avg.update(p);
  CHECK(avg.weights()[0] == Approx(0.9 * 1.1 + 0.1 * 2));
  CHECK_THROWS_WITH(nn::ema<double>(p, 1.0), Catch::Contains("decay"));
}
