#pragma once
// Test cases written once and run on every enabled backend: the includer defines
//   SOFTDIFF_TEST_BACKEND   the Backend type (softdiff::backend::cpu, softdiff::backend::cuda)
//   SOFTDIFF_TEST_TAG       a Catch2 tag string literal, e.g. "[cpu]"
//   SOFTDIFF_TEST_NOISE_ULP the largest difference, in units of float rounding, allowed between
//                           the backend's float noise and backend::cpu::fill_normal (0: identical)
// and includes this file once. Every case compares the backend (op/on_backend.hpp, the samplers
// of sampler/ with B = the backend, sampler/backend_model.hpp) with the CPU operators and
// samplers on the same data and noise.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "softdiff/backend/buffer.hpp"
#include "softdiff/op/on_backend.hpp"
#include "softdiff/sampler/backend_model.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"
#include "operator_checks.hpp"

namespace softdiff::testing::backend_cases {

using B = SOFTDIFF_TEST_BACKEND;
static_assert(Backend<B>);

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-11;
}

/// max |a - b| / max(1, max |b|).
template <class T>
double relative_gap(const batch<T>& a, const batch<T>& b) {
  REQUIRE(shape_of(a) == shape_of(b));
  double diff = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
    scale = std::max(scale, std::abs(static_cast<double>(b.data()[i])));
  }
  return diff / scale;
}

/// C x and C^T x on the backend (out of place and in place) against the host operator.
template <class Op>
void check_operator(const Op& host, double level, const shape4& s) {
  using T = typename Op::scalar_type;
  const batch<T> x = random_batch<T>(s, 11);
  auto dev = op::make_backend_operator<B>(host);
  static_assert(op::BackendOperator<decltype(dev)>);
  auto dx = backend::to_backend<B>(x);
  backend::buffer<B, T> dy(x.size());
  for (const bool adjoint : {false, true}) {
    batch<T> expected, got;
    if (adjoint)
      host.apply_adjoint(level, x, expected);
    else
      host.apply(level, x, expected);
    if (adjoint)
      dev.apply_adjoint(level, dx.data(), dy.data(), s);
    else
      dev.apply(level, dx.data(), dy.data(), s);
    backend::to_host(dy, s, got);
    INFO(host.name() << " level " << level << " shape " << to_string(s) << (adjoint ? " adjoint" : " apply"));
    CHECK(relative_gap(got, expected) <= tolerance<T>());
    auto inplace = backend::to_backend<B>(x);  // y aliasing x
    if (adjoint)
      dev.apply_adjoint(level, inplace.data(), inplace.data(), s);
    else
      dev.apply(level, inplace.data(), inplace.data(), s);
    backend::to_host(inplace, s, got);
    CHECK(relative_gap(got, expected) <= tolerance<T>());
  }
}

/// A schedule for the sampler cases: blur std 12 t, sigma_t = 0.5 t (sigma_0 = 0, C_0 = I).
struct test_schedule {
  [[nodiscard]] double level(double t) const { return 12.0 * t; }
  [[nodiscard]] double sigma(double t) const { return 0.5 * t; }
  [[nodiscard]] std::string name() const { return "test"; }
};
static_assert(Schedule<test_schedule>);

/// a x + b y, and a x + b y + c eta with noise: a rule for map and noisy_map (at namespace scope:
/// nvcc refuses a local type as a kernel's template argument).
template <class T>
struct affine_rule {
  T a, b, c;
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y) const { return a * x + b * y; }
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y, T eta) const { return a * x + b * y + c * eta; }
};

/// phi(x, t) = -x / 4, so h = phi + x = 3 x / 4: a linear stand-in for the network.
constexpr double h_factor = 0.75;

template <class T, class Op>
struct host_model {
  using scalar_type = T;
  Op op;
  test_schedule schedule;
  void denoise(const batch<T>& x, double, batch<T>& out) {
    ensure_shape(out, shape_of(x));
    for (std::size_t i = 0; i < x.size(); ++i) out.data()[i] = static_cast<T>(h_factor) * x.data()[i];
  }
  void apply_operator(double t, const batch<T>& x, batch<T>& out) { op.apply(schedule.level(t), x, out); }
  [[nodiscard]] double sigma(double t) const { return schedule.sigma(t); }
};

/// h = 3 x / 4 on backend D's pointers.
template <class D>
struct backend_denoiser_on {
  template <class T>
  void operator()(const T* x, const shape4& s, double, T* h) const {
    op::scale_apply<D>(static_cast<T>(h_factor), x, h, backend::element_count(s));
  }
};
using backend_denoiser = backend_denoiser_on<B>;

/// One step t -> t' of a sampler on the CPU model and of the same sampler on backend B with
/// the backend model, from the same x_t and noise (shifted by `offset` elements, as for a part
/// of a larger batch), on a batch of `s` (an element count that is not a multiple of 4 takes the
/// kernels' path for a partial last Philox block).
template <class T, template <class, class> class S, class... Args>
void check_step(double t, double t_next, const shape4& s, std::uint64_t offset, Args... args) {
  const op::gaussian_blur<T> blur(6);
  host_model<T, op::gaussian_blur<T>> cpu_model{blur, {}};
  sampler::backend_model<B, op::gaussian_blur<T>, test_schedule, backend_denoiser> dev_model(blur, {}, {});
  S<T, backend::cpu> host_sampler(args...);
  S<T, B> dev_sampler(args...);
  static_assert(Sampler<S<T, B>, decltype(dev_model)>);
  static_assert(Sampler<S<T, backend::cpu>, host_model<T, op::gaussian_blur<T>>>);
  const noise_source noise = noise_source{2024, stream_for(stream_purpose::sampler, 3)}.shifted(offset);
  batch<T> x = random_batch<T>(s, 5);
  auto dx = backend::to_backend_batch<B>(x);
  host_sampler.step(cpu_model, x, t, t_next, noise);
  dev_sampler.step(dev_model, dx, t, t_next, noise);
  batch<T> got;
  backend::to_host<B>(dx, got);
  INFO((S<T, B>::name) << " step " << t << " -> " << t_next << " on " << to_string(s) << ", noise offset " << offset);
  CHECK(relative_gap(got, x) <= 10 * tolerance<T>());
}

}  // namespace softdiff::testing::backend_cases

TEMPLATE_TEST_CASE("backend: allocate, copy, parallel_for", "[backend]" SOFTDIFF_TEST_TAG, float, double) {
  using namespace softdiff;
  using B = testing::backend_cases::B;
  const shape4 s{1, 2, 5, 7};
  const batch<TestType> x = testing::random_batch<TestType>(s, 3);
  auto d = backend::to_backend<B>(x);
  backend::buffer<B, TestType> e(x.size());
  B::parallel_for(x.size(), op::kernels::scale_fn<TestType>{d.data(), e.data(), TestType(2)});
  batch<TestType> back;
  backend::to_host(e, s, back);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(back.data()[i] == TestType(2) * x.data()[i]);
  B::template copy<TestType>(d.data(), e.data(), x.size());  // backend to backend
  backend::to_host(e, s, back);
  REQUIRE(std::equal(back.begin(), back.end(), x.begin()));
}

TEMPLATE_TEST_CASE("backend: GEMM and strided-batched GEMM equal the CPU's", "[backend]" SOFTDIFF_TEST_TAG, float,
                   double) {
  using namespace softdiff;
  using B = testing::backend_cases::B;
  using T = TestType;
  const int m = 7, n = 5, k = 6, batches = 3;
  const batch<T> a = testing::random_batch<T>({1, 1, 1, std::size_t(batches * m * k)}, 1);
  const batch<T> b = testing::random_batch<T>({1, 1, 1, std::size_t(batches * k * n)}, 2);
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      const int lda = ta ? m : k, ldb = tb ? k : n;
      std::vector<T> expected(batches * m * n, T(0)), got(batches * m * n);
      backend::cpu::gemm_strided_batched<T>(ta, tb, m, n, k, T(1.5), a.data(), lda, m * k, b.data(), ldb, k * n, T(0),
                                            expected.data(), n, m * n, batches);
      auto da = backend::to_backend<B>(a), db = backend::to_backend<B>(b);
      backend::buffer<B, T> dc(got.size());
      B::template gemm_strided_batched<T>(ta, tb, m, n, k, T(1.5), da.data(), lda, m * k, db.data(), ldb, k * n, T(0),
                                          dc.data(), n, m * n, batches);
      dc.download(got.data());
      for (std::size_t i = 0; i < got.size(); ++i)
        REQUIRE(std::abs(double(got[i]) - double(expected[i])) <= 1e-5 * (1 + std::abs(double(expected[i]))));
      B::template gemm<T>(ta, tb, m, n, k, T(1.5), da.data(), lda, db.data(), ldb, T(0), dc.data(), n);
      dc.download(got.data());
      for (int i = 0; i < m * n; ++i)
        REQUIRE(std::abs(double(got[i]) - double(expected[i])) <= 1e-5 * (1 + std::abs(double(expected[i]))));
    }
}

TEMPLATE_TEST_CASE("backend: Philox noise equals backend::cpu::fill_normal", "[backend][noise]" SOFTDIFF_TEST_TAG,
                   float, double) {
  using namespace softdiff;
  using B = testing::backend_cases::B;
  using T = TestType;
  for (const std::uint64_t offset : {0u, 3u, 4097u})
    for (const std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{100003}}) {
      std::vector<T> expected(n), got(n);
      backend::cpu::fill_normal<T>(77, stream_for(stream_purpose::sampler, 9), expected.data(), n, offset);
      backend::buffer<B, T> d(n);
      B::template fill_normal<T>(77, stream_for(stream_purpose::sampler, 9), d.data(), n, offset);
      d.download(got.data());
      double worst = 0;
      for (std::size_t i = 0; i < n; ++i)
        worst = std::max(worst, std::abs(double(got[i]) - double(expected[i])) /
                                    (std::numeric_limits<T>::epsilon() * std::max(1.0, std::abs(double(expected[i])))));
      INFO("offset " << offset << ", n " << n << ": worst difference " << worst << " roundings");
      if constexpr (std::is_same_v<T, float>)
        CHECK(worst <= SOFTDIFF_TEST_NOISE_ULP);
      else
        CHECK(worst <= 64);  // double: libm log/sin/cos of each side, a few ulp
    }
}

TEMPLATE_TEST_CASE("backend operators equal the CPU operators", "[backend][op]" SOFTDIFF_TEST_TAG, float, double) {
  using namespace softdiff;
  using T = TestType;
  namespace bc = testing::backend_cases;
  const shape4 square{2, 3, 16, 16}, odd{1, 2, 13, 21};
  bc::check_operator(op::identity<T>{}, 0.5, square);
  bc::check_operator(op::scale<T>{}, 0.3, odd);
  for (double level : {0.0, 0.25, 0.6, 1.0}) bc::check_operator(op::mask<T>{}, level, odd);
  for (double sd : {0.0, 0.5, 3.0, 10.0, 23.0}) {
    bc::check_operator(op::gaussian_blur<T>(80), sd, square);
    bc::check_operator(op::gaussian_blur<T>(4), sd, odd);
    bc::check_operator(op::dct_blur<T>{}, sd, odd);
  }
  for (double sd : {0.0, 1.5, 6.0}) {
    bc::check_operator(op::fft_conv<T>(5), sd, square);
    bc::check_operator(op::fft_conv<T>(9), sd, odd);
  }
  // a user kernel family that is not symmetric, so that the adjoint differs from apply
  const auto shifted = [](double level) {
    xt::xtensor<double, 2> k = xt::zeros<double>({3, 5});
    k(1, 2) = 1.0 - level;
    k(0, 4) = level;
    return k;
  };
  bc::check_operator(op::fft_conv<T>(shifted, 0.0, 1.0), 0.4, odd);
  const op::compose<op::mask<T>, op::gaussian_blur<T>> masked_blur(
      op::mask<T>{}, op::gaussian_blur<T>(8), [](double l) { return l; }, [](double l) { return 20 * l; }, 0.0, 1.0);
  bc::check_operator(masked_blur, 0.3, odd);
  bc::check_operator(op::compose<op::scale<T>, op::fft_conv<T>>(op::scale<T>{}, op::fft_conv<T>(3)), 0.5, square);
}

TEMPLATE_TEST_CASE("backend operators reject bad levels and shapes as the CPU does", "[backend][op]" SOFTDIFF_TEST_TAG,
                   float, double) {
  using namespace softdiff;
  using B = testing::backend_cases::B;
  using T = TestType;
  const shape4 s{1, 1, 4, 4};
  backend::buffer<B, T> d(16);
  auto blur = op::make_backend_operator<B>(op::gaussian_blur<T>(3));
  REQUIRE_THROWS_WITH(blur.apply(-1.0, d.data(), d.data(), s), Catch::Contains("gaussian_blur::apply: level -1 is outside"));
  REQUIRE_THROWS_WITH(blur.apply(std::nan(""), d.data(), d.data(), s), Catch::Contains("non-finite"));
  auto mask = op::make_backend_operator<B>(op::mask<T>{});
  REQUIRE_THROWS_WITH(mask.apply(1.5, d.data(), d.data(), s), Catch::Contains("mask::apply: level 1.5 is outside"));
  auto conv = op::make_backend_operator<B>(op::fft_conv<T>(2));
  REQUIRE_THROWS_WITH(conv.apply(1.0, d.data(), d.data(), {1, 1, 0, 4}), Catch::Contains("fft_conv::apply: empty image"));
}

TEMPLATE_TEST_CASE("backend: map and noisy_map evaluate the rule with the CPU's noise", "[backend][noise]" SOFTDIFF_TEST_TAG,
                   float, double) {
  using namespace softdiff;
  using B = testing::backend_cases::B;
  using T = TestType;
  const testing::backend_cases::affine_rule<T> rule{T(0.5), T(-2), T(0.25)};
  for (const std::uint64_t offset : {0u, 3u, 4097u})
    for (const std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{70001}}) {
      const batch<T> x = testing::random_batch<T>({1, 1, 1, n}, 1), y = testing::random_batch<T>({1, 1, 1, n}, 2);
      std::vector<T> eta(n);
      backend::cpu::fill_normal<T>(5, 6, eta.data(), n, offset);
      auto dx = backend::to_backend<B>(x), dy = backend::to_backend<B>(y);
      backend::buffer<B, T> out(n);
      std::vector<T> got(n);
      B::map(out.data(), {dx.data(), dy.data()}, rule, n);
      out.download(got.data());
      double worst = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double want = double(rule.a) * x.data()[i] + double(rule.b) * y.data()[i];
        worst = std::max(worst, std::abs(double(got[i]) - want) / (1 + std::abs(want)));
      }
      CHECK(worst <= 4 * std::numeric_limits<T>::epsilon());
      B::noisy_map(dx.data(), {dx.data(), dy.data()}, rule, n, 5, 6, offset);  // in place
      dx.download(got.data());
      worst = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double want = double(rule.a) * x.data()[i] + double(rule.b) * y.data()[i] + double(rule.c) * eta[i];
        worst = std::max(worst, std::abs(double(got[i]) - want) / (1 + std::abs(want)));
      }
      INFO("offset " << offset << ", n " << n);
      CHECK(worst <= 4 * std::numeric_limits<T>::epsilon() * (1 + SOFTDIFF_TEST_NOISE_ULP));
    }
}

TEMPLATE_TEST_CASE("backend sampler steps equal the CPU sampler steps", "[backend][sampler]" SOFTDIFF_TEST_TAG, float,
                   double) {
  using namespace softdiff;
  using T = TestType;
  namespace bc = testing::backend_cases;
  for (const shape4 s : {shape4{2, 3, 12, 10}, shape4{1, 3, 7, 3}})  // 720 and 63 = 4 * 15 + 3 elements
    for (const std::uint64_t offset : {0u, 126u})                       // a part starting at sample 2 of 63-element samples
      for (const auto& [t, t_next] : {std::pair{0.6, 0.45}, std::pair{0.2, 0.0}}) {
        bc::check_step<T, sampler::naive>(t, t_next, s, offset);
        bc::check_step<T, sampler::momentum>(t, t_next, s, offset);
        bc::check_step<T, sampler::pf_momentum>(t, t_next, s, offset);
        for (double k : {0.0, 0.5}) {
          bc::check_step<T, sampler::ddim>(t, t_next, s, offset, k);
          bc::check_step<T, sampler::predictor_corrector>(t, t_next, s, offset, k);
        }
      }
}

TEMPLATE_TEST_CASE("backend samplers reject bad steps as the CPU does", "[backend][sampler]" SOFTDIFF_TEST_TAG, float,
                   double) {
  using namespace softdiff;
  using B = testing::backend_cases::B;
  using T = TestType;
  namespace bc = testing::backend_cases;
  sampler::backend_model<B, op::identity<T>, bc::test_schedule, bc::backend_denoiser> model({}, {}, {});
  backend::batch_t<B, T> d, empty;
  ensure_shape(d, shape4{1, 1, 2, 4});
  ensure_shape(empty, shape4{0, 1, 2, 4});
  sampler::momentum<T, B> m;
  const noise_source noise{1, 2};
  REQUIRE_THROWS_WITH(m.step(model, d, 0.3, 0.5, noise), Catch::Contains("0 <= t' < t <= 1"));
  REQUIRE_THROWS_WITH(m.step(model, empty, 0.5, 0.3, noise), Catch::Contains("empty batch"));
  using ddim_type = sampler::ddim<T, B>;
  REQUIRE_THROWS_WITH(ddim_type(1.5), Catch::Contains("k_ratio"));
}
