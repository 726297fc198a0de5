// Gradients do not depend on the thread count: every backward of softdiff::nn (conv2d with both
// algorithms, group_norm, linear, attention, a whole RefUNet with and without replicas, the
// classifier), Adam's gradient norm and a few trainer steps give bitwise the same results with
// 1, 2 and 3 OpenMP threads. Shapes are chosen above the layers' parallel thresholds so that
// every parallel path (samples over threads, each GEMM over threads, replicas) actually runs.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "softdiff/metrics/frechet.hpp"
#include "softdiff/metrics/sliced_wasserstein.hpp"
#include "softdiff/nn/adam.hpp"
#include "softdiff/nn/attention.hpp"
#include "softdiff/nn/classifier.hpp"
#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/cross_entropy.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/linear.hpp"
#include "softdiff/nn/refunet.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/train/trainer.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::random_tensor;

namespace {

/// Restores the OpenMP thread count on scope exit.
struct thread_count_guard {
  int saved = omp_get_max_threads();
  ~thread_count_guard() { omp_set_num_threads(saved); }
};

template <class C>
std::vector<double> values_of(const C& c) {
  return std::vector<double>(c.data(), c.data() + c.size());
}
void append(std::vector<double>& out, const std::vector<double>& v) { out.insert(out.end(), v.begin(), v.end()); }

/// run() with 1, 2 and 3 threads: the results are equal bit for bit, finite and not all zero.
void check_thread_independent(const std::function<std::vector<double>()>& run) {
  thread_count_guard guard;
  omp_set_num_threads(1);
  const std::vector<double> one = run();
  REQUIRE(!one.empty());
  CHECK(std::all_of(one.begin(), one.end(), [](double v) { return std::isfinite(v); }));
  CHECK(std::count_if(one.begin(), one.end(), [](double v) { return v != 0; }) > static_cast<long>(one.size() / 5));
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    omp_set_num_threads(threads);
    const std::vector<double> other = run();
    REQUIRE(other.size() == one.size());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < one.size(); ++i) differ += one[i] != other[i];
    CHECK(differ == 0);
  }
}

/// dW, dbias and dx of one conv2d backward (gradients accumulated twice, as training does).
template <class T>
std::vector<double> conv_gradients(std::size_t N, std::size_t k, std::size_t stride, nn::conv_algorithm alg) {
  nn::parameter_store<T> store;
  nn::conv2d<T> conv(16, 12, k, stride);
  conv.algorithm = alg;
  conv.declare(store, "conv");
  store.allocate();
  conv.bind(store);
  conv.init(noise_source{3, 1});
  const auto x = random_tensor<T, 4>({N, 16, 16, 16}, 5, N);
  const auto& y = conv.forward(x);
  const auto dy = random_tensor<T, 4>({y.shape()[0], y.shape()[1], y.shape()[2], y.shape()[3]}, 6, N);
  store.zero_grad();
  conv.backward(dy);
  std::vector<double> out = values_of(conv.backward(dy));
  append(out, values_of(store.gradients()));
  append(out, values_of(y));
  return out;
}

}  // namespace

TEST_CASE("conv2d: gradients are bitwise the same for 1, 2 and 3 threads", "[nn][threads][conv2d]") {
  for (auto alg : {nn::conv_algorithm::tiled, nn::conv_algorithm::im2col_blas, nn::conv_algorithm::winograd,
                   nn::conv_algorithm::winograd4})
    for (std::size_t k : {1, 3})
      for (std::size_t stride : {1, 2})
        for (std::size_t N : {1, 3, 8, 17, 40}) {  // segments: 1, 1, 2, 4, 8
          CAPTURE(int(alg), k, stride, N);
          check_thread_independent([&] { return conv_gradients<float>(N, k, stride, alg); });
        }
  for (std::size_t N : {1, 3, 17}) {  // double: the scalar tiled kernel and BLAS
    CAPTURE(N);
    check_thread_independent([&] { return conv_gradients<double>(N, 3, 1, nn::conv_algorithm::im2col_blas); });
    check_thread_independent([&] { return conv_gradients<double>(N, 3, 1, nn::conv_algorithm::tiled); });
    check_thread_independent([&] { return conv_gradients<double>(N, 3, 1, nn::conv_algorithm::winograd); });
    check_thread_independent([&] { return conv_gradients<double>(N, 3, 1, nn::conv_algorithm::winograd4); });
  }
}

TEST_CASE("group_norm, linear and attention: gradients are bitwise the same for 1, 2 and 3 threads",
          "[nn][threads]") {
  check_thread_independent([] {
    nn::parameter_store<float> store;
    nn::group_norm<float> gn(4, 16);
    gn.declare(store, "norm");
    store.allocate();
    gn.bind(store);
    gn.init();
    const auto x = random_tensor<float, 4>({17, 16, 16, 16}, 7, 1, 2.0, 0.5);
    const auto dy = random_tensor<float, 4>({17, 16, 16, 16}, 7, 2);
    std::vector<double> out = values_of(gn.forward(x));
    store.zero_grad();
    append(out, values_of(gn.backward(dy)));
    append(out, values_of(store.gradients()));
    return out;
  });
  check_thread_independent([] {  // large enough for OpenBLAS to thread the dW GEMM
    nn::parameter_store<float> store;
    nn::linear<float> fc(256, 192);
    fc.declare(store, "fc");
    store.allocate();
    fc.bind(store);
    fc.init(noise_source{2, 1});
    const auto x = random_tensor<float, 2>({67, 256}, 8, 1);
    const auto dy = random_tensor<float, 2>({67, 192}, 8, 2);
    std::vector<double> out = values_of(fc.forward(x));
    store.zero_grad();
    append(out, values_of(fc.backward(dy)));
    append(out, values_of(store.gradients()));
    return out;
  });
  check_thread_independent([] {
    nn::attention<float> att(16);
    const auto q = random_tensor<float, 4>({5, 16, 8, 8}, 9, 1);
    const auto k = random_tensor<float, 4>({5, 16, 8, 8}, 9, 2);
    const auto v = random_tensor<float, 4>({5, 16, 8, 8}, 9, 3);
    const auto g = random_tensor<float, 4>({5, 16, 8, 8}, 9, 4);
    std::vector<double> out = values_of(att.forward(q, k, v));
    const auto d = att.backward(g);
    append(out, values_of(d.dq));
    append(out, values_of(d.dk));
    append(out, values_of(d.dv));
    return out;
  });
}

TEST_CASE("refunet: gradients are bitwise the same for 1, 2 and 3 threads", "[nn][threads][refunet]") {
  nn::refunet_config cfg;
  cfg.base_channels = 8;
  cfg.channel_mult = {1, 2};
  cfg.num_res_blocks = 1;
  cfg.groups = 4;
  // 0: the default split (min(N, 4) replicas); 1: layers parallelise inside; 8: more replicas than threads
  for (std::size_t replicas : {0, 1, 8})
    for (std::size_t N : {1, 3, 11}) {
      CAPTURE(replicas, N);
      check_thread_independent([&] {
        nn::refunet<float> net(cfg, 4);
        net.set_max_replicas(replicas);
        const auto x = random_tensor<float, 4>({N, 1, 16, 16}, 10, N);
        const auto g = random_tensor<float, 4>({N, 1, 16, 16}, 11, N);
        std::vector<double> t(N);
        for (std::size_t i = 0; i < N; ++i) t[i] = 0.1 + 0.8 * static_cast<double>(i) / static_cast<double>(N);
        batch<float> phi;
        net.forward(x, t, phi);
        CHECK(net.replicas_in_use() == std::min<std::size_t>(N, replicas == 0 ? 4 : replicas));
        net.zero_grad();
        net.backward(g, true);
        std::vector<double> out = values_of(phi);
        append(out, values_of(net.gradients()));
        append(out, values_of(net.input_gradient()));
        return out;
      });
    }
}

TEST_CASE("classifier: gradients are bitwise the same for 1, 2 and 3 threads", "[nn][threads][classifier]") {
  check_thread_independent([] {
    nn::classifier<float> net(nn::classifier_config{}, 3);
    const auto x = random_tensor<float, 4>({9, 1, 28, 28}, 12, 1);
    const std::vector<std::size_t> labels{0, 1, 2, 3, 4, 5, 6, 7, 8};
    nn::softmax_cross_entropy<float> ce;
    ce.forward(net.logits(x), labels);
    net.store().zero_grad();
    net.backward(ce.backward(), true);
    std::vector<double> out = values_of(net.store().gradients());
    append(out, values_of(net.input_gradient()));
    return out;
  });
}

TEST_CASE("adam: the global gradient norm is bitwise the same for 1, 2 and 3 threads", "[nn][threads][optim]") {
  const auto g = random_tensor<float, 1>({300001}, 13, 1);
  check_thread_independent([&] {
    return std::vector<double>{nn::global_norm<float>(std::span<const float>(g.data(), g.size()))};
  });
}

TEST_CASE("trainer: a few steps of a tiny RefUNet give the same weights with 1 and 3 threads", "[train][threads]") {
  nn::refunet_config cfg;
  cfg.base_channels = 8;
  cfg.channel_mult = {1, 2};
  using unet = nn::refunet<float>;
  using unet_trainer = train::trainer<op::gaussian_blur<float>, schedule::two_stage, unet>;
  batch<float> data(shape4{12, 1, 8, 8});
  for (std::size_t i = 0; i < data.size(); ++i) data.data()[i] = static_cast<float>(std::sin(0.07 * double(i)));
  train::trainer_config c;
  c.seed = 11;
  c.batch_size = 5;
  c.adam.lr = 1e-3;
  c.adam.warmup_steps = 2;
  c.adam.max_grad_norm = 1e-3;  // clipping on: the norm's reduction matters
  c.ema_decay = 0.8;
  schedule::two_stage_parameters sp;
  sp.level_max = 2.0;
  const auto run = [&] {
    unet_trainer tr(SoftDiffusion(op::gaussian_blur<float>(4), schedule::two_stage(sp), unet(cfg, 1)), data, c);
    for (int i = 0; i < 3; ++i) tr.step();
    std::vector<double> out = values_of(tr.model().network().parameters());
    append(out, values_of(tr.average().weights()));
    return out;
  };
  thread_count_guard guard;
  omp_set_num_threads(1);
  const std::vector<double> one = run();
  omp_set_num_threads(3);
  const std::vector<double> three = run();
  REQUIRE(one.size() == three.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < one.size(); ++i) differ += one[i] != three[i];
  CHECK(differ == 0);
  unet fresh(cfg, 1);  // the steps did move the weights
  CHECK(!std::equal(fresh.parameters().begin(), fresh.parameters().end(), one.begin()));
}

TEST_CASE("backend::cpu::gemm and the metrics built on it are bitwise the same for 1, 2 and 3 threads",
          "[threads][metrics]") {
  const auto a = random_tensor<float, 2>({300, 170}, 11, 0), b = random_tensor<float, 2>({170, 210}, 12, 0);
  check_thread_independent([&] {  // above OpenBLAS's threading cut-off, several row blocks
    std::vector<float> c(300 * 210, 0.5f);
    backend::cpu::gemm<float>(false, false, 300, 210, 170, 1.f, a.data(), 170, b.data(), 210, 0.25f, c.data(), 210);
    return std::vector<double>(c.begin(), c.end());
  });
  // Frechet distance (covariances by GEMM) and sliced W2 (projections by GEMM) of two point sets
  const batch<float> x = random_tensor<float, 4>({400, 1, 8, 8}, 21, 0), y = random_tensor<float, 4>({400, 1, 8, 8}, 22, 0, 1.5, 0.2);
  check_thread_independent([&] {
    const metrics::gaussian_fit fx = metrics::fit_gaussian(x), fy = metrics::fit_gaussian(y);
    std::vector<double> out(fx.mean.data(), fx.mean.data() + fx.mean.size());
    out.insert(out.end(), fx.covariance.data(), fx.covariance.data() + fx.covariance.size());
    out.push_back(metrics::frechet_distance(fx, fy));
    out.push_back(metrics::sliced_wasserstein(x, y));
    return out;
  });
}
