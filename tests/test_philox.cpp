// Philox4x32-10 known answers, the normal generator's statistics, and the
// promise that noise is a function of (seed, stream, index) alone.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <vector>

#include <omp.h>

#include "softdiff/random.hpp"

using namespace softdiff;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors", "[random]") {
  // Random123 kat_vectors: philox4x32 10 rounds.
  auto r = backend::philox4x32_10(0, 0, 0);
  CHECK(r.v[0] == 0x6627e8d5u);
  CHECK(r.v[1] == 0xe169c58du);
  CHECK(r.v[2] == 0xbc57ac4cu);
  CHECK(r.v[3] == 0x9b00dbd8u);
  r = backend::philox4x32_10(0xffffffffffffffffull, 0xffffffffffffffffull, 0xffffffffffffffffull);
  CHECK(r.v[0] == 0x408f276du);
  CHECK(r.v[1] == 0x41c83b0eu);
  CHECK(r.v[2] == 0xa20bc7c6u);
  CHECK(r.v[3] == 0x6d5451fdu);
  r = backend::philox4x32_10(0x85a308d3243f6a88ull, 0x0370734413198a2eull, 0x299f31d0a4093822ull);
  CHECK(r.v[0] == 0xd16cfe09u);
  CHECK(r.v[1] == 0x94fdccebu);
  CHECK(r.v[2] == 0x5001e420u);
  CHECK(r.v[3] == 0x24126ea1u);
}

TEST_CASE("vectorisable log and sincos agree with libm", "[random]") {
  double worst_log = 0, worst_sc = 0;
  for (int i = 1; i <= 200000; ++i) {
    const float u = static_cast<float>(i) / 200001.0f;
    worst_log = std::max(worst_log, std::abs(backend::detail::log_unit(u) - std::log(static_cast<double>(u))));
    float s, c;
    backend::detail::sincos_2pi(u, s, c);
    const double th = 2 * M_PI * static_cast<double>(u);
    worst_sc = std::max({worst_sc, std::abs(s - std::sin(th)), std::abs(c - std::cos(th))});
  }
  CHECK(worst_log < 2e-6);
  CHECK(worst_sc < 1e-6);
  CHECK(backend::detail::log_unit(1.0f) == Approx(0.0).margin(1e-7));
  CHECK(backend::detail::log_unit(0.5f) == Approx(-std::log(2.0)).epsilon(1e-6));
}

template <class T>
void check_moments(std::uint64_t seed) {
  std::vector<T> x(1 << 20);
  noise_source{seed, 7}.fill(std::span<T>(x));
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  for (T v : x) {
    const double d = v;
    m1 += d;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  const double n = static_cast<double>(x.size());
  m1 /= n, m2 /= n, m3 /= n, m4 /= n;
  // standard errors: 1/sqrt(n) ~ 1e-3 for the mean; allow 5 sigma
  CHECK(std::abs(m1) < 5e-3);
  CHECK(std::abs(m2 - 1) < 1e-2);
  CHECK(std::abs(m3) < 2e-2);
  CHECK(std::abs(m4 - 3) < 5e-2);
  // share inside one sigma: 0.682689
  const double inside = std::count_if(x.begin(), x.end(), [](T v) { return std::abs(v) < 1; }) / n;
  CHECK(std::abs(inside - 0.682689) < 3e-3);
}

TEST_CASE("normal deviates have the moments of N(0, 1)", "[random]") {
  check_moments<float>(42);
  check_moments<double>(42);
}

template <class T>
void check_invariance() {
  const std::size_t n = 100003;  // not a multiple of the block size
  std::vector<T> one(n), two(n), part(n);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  noise_source{123, 5}.fill(std::span<T>(one));
  omp_set_num_threads(2);
  noise_source{123, 5}.fill(std::span<T>(two));
  omp_set_num_threads(saved);
  CHECK(one == two);
  // an offset fill reproduces the same indices
  backend::cpu::fill_normal<T>(123, 5, part.data(), 1000, 4097);
  for (std::size_t i = 0; i < 1000; ++i) REQUIRE(part[i] == one[4097 + i]);
  // another seed or stream changes everything
  noise_source{124, 5}.fill(std::span<T>(two));
  CHECK(one != two);
  noise_source{123, 6}.fill(std::span<T>(two));
  CHECK(one != two);
}

TEST_CASE("fill_normal (vectorised tiles) gives backend::normal4's floats bit for bit", "[random]") {
  const std::size_t n = 4 * 300 + 3, offset = 4 * 70 + 1;  // partial blocks at both ends, several tiles
  std::vector<float> got(n);
  backend::cpu::fill_normal<float>(0xfeed, 9, got.data(), n, offset);
  for (std::size_t i = 0; i < n; ++i) {
    float want[4];
    backend::normal4((offset + i) / 4, 9, 0xfeed, want);
    REQUIRE(got[i] == want[(offset + i) % 4]);
  }
}

TEST_CASE("noise depends on seed, stream and index only, not on threads or offsets", "[random]") {
  check_invariance<float>();
  check_invariance<double>();
}
