// The same seed gives bit-identical samples (and corruptions and losses) on 1 and 2 OpenMP
// threads. Batches are large enough (2048 x 1 x 8 x 8) that every element-wise pass, the
// fused noise pass, the oracle and the blur actually split their work over both threads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <omp.h>

#include "softdiff/loss/soft_score_matching.hpp"
#include "softdiff/nn/oracle.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/soft_diffusion.hpp"

using namespace softdiff;

namespace {

using T = float;
using blur_t = op::gaussian_blur<T>;
using oracle_t = nn::oracle<blur_t, schedule::two_stage>;
using model_t = SoftDiffusion<blur_t, schedule::two_stage, oracle_t>;

constexpr std::size_t count = 2048, steps = 8;

batch<T> dataset() {
  batch<T> d({16, 1, 8, 8});
  for (std::size_t i = 0; i < 16; ++i)
    for (std::size_t j = 0; j < 64; ++j)
      d.data()[i * 64 + j] = static_cast<T>(0.5 * std::sin(0.7 * (i + 1) * (j % 8) + 0.3 * (j / 8) * (i % 3)));
  return d;
}

model_t make_model() {
  schedule::two_stage_parameters p;
  p.sigma_max = 0.15;
  p.level_min = 0.1;
  p.level_max = 3.0;
  const schedule::two_stage sched(p);
  const blur_t blur(8);
  model_t sd(blur, sched, oracle_t(blur, sched, dataset()));
  sd.fit_final_distribution(dataset());
  return sd;
}

template <class S>
batch<T> samples_with(int threads, S sampler) {
  omp_set_num_threads(threads);
  model_t sd = make_model();
  batch<T> x = sd.sample(count, steps, 99, sampler);
  omp_set_num_threads(2);
  return x;
}

template <class S>
void check_same(S sampler) {
  const batch<T> one = samples_with(1, sampler), two = samples_with(2, sampler);
  REQUIRE(one.size() == count * 64);
  const bool identical = std::equal(one.begin(), one.end(), two.begin());
  CHECK(identical);
  CHECK(std::isfinite(one.data()[123]));
}

}  // namespace

TEST_CASE("samples are bit-identical on 1 and 2 threads", "[sampler][threads]") {
  check_same(sampler::naive<T>{});
  check_same(sampler::momentum<T>{});
  check_same(sampler::momentum<T>{300});  // blocks of 300 samples (and a remainder of 248)
  check_same(sampler::pf_momentum<T>{});
  check_same(sampler::ddim<T>{0.5});
  check_same(sampler::predictor_corrector<T>{0.5});
}

TEST_CASE("momentum over blocks of samples gives the whole-batch samples", "[sampler][threads]") {
  const batch<T> whole = samples_with(2, sampler::momentum<T>{}), blocked = samples_with(2, sampler::momentum<T>{300});
  CHECK(std::equal(whole.begin(), whole.end(), blocked.begin()));
}

TEST_CASE("corrupt and loss are bit-identical on 1 and 2 threads", "[soft_diffusion][threads]") {
  batch<T> x0({count, 1, 8, 8});
  noise_source{1, 2}.fill(x0);
  std::vector<double> t(count);
  for (std::size_t n = 0; n < count; ++n) t[n] = static_cast<double>(n % 16 + 1) / 16.0;
  batch<T> xt[2], grad[2];
  double value[2];
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    model_t sd = make_model();
    sd.corrupt(x0, t, noise_source{5, 6}, xt[threads - 1]);
    value[threads - 1] = sd.loss(x0, t, noise_source{5, 6}, loss::weighting::inverse_sigma2, &grad[threads - 1]).value;
  }
  omp_set_num_threads(2);
  CHECK(std::equal(xt[0].begin(), xt[0].end(), xt[1].begin()));
  CHECK(std::equal(grad[0].begin(), grad[0].end(), grad[1].begin()));
  CHECK(value[0] == value[1]);
}
