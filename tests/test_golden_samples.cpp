// Golden values: what SoftDiffusion returns for fixed seeds (samples of all five samplers,
// momentum over blocks, a part of a batch, a corruption, a loss and its gradient, a score),
// compared bit for bit with tests/golden/soft_diffusion.txt. The file was written by this
// test (SOFTDIFF_WRITE_GOLDEN=1) before the samplers and operators were rewritten over the
// backend primitives, so a change in the arithmetic of any of them shows here as a change in
// the bits (docs/architecture.md, "Layers").
//
// The values depend on the floating-point code the compiler emits, which is the same for
// every x86-64 target with FMA that GCC vectorises for (checked: AVX2-only and AVX-512 builds
// of this test agree bit for bit, with OpenBLAS's Haswell and SkylakeX kernels, on 1 and 2
// threads); elsewhere the file may not match, and the test then says which processor
// features it was recorded with. The bits are those of a Release build (-O3): a build at another
// optimisation level (the sanitizer build's -O1) rounds some sums differently, so without
// SOFTDIFF_GOLDEN_BITWISE (tests/CMakeLists.txt defines it for Release builds) the test
// compares to a relative 1e-5 instead.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

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

const std::filesystem::path golden_file = std::filesystem::path(SOFTDIFF_SOURCE_DIR) / "tests/golden/soft_diffusion.txt";

batch<T> dataset() {
  batch<T> d({12, 1, 10, 9});
  for (std::size_t i = 0; i < 12; ++i)
    for (std::size_t j = 0; j < 90; ++j)
      d.data()[i * 90 + j] = static_cast<T>(0.6 * std::sin(0.5 * (i + 1) * (j % 9) + 0.4 * (j / 9) * (i % 4)) - 0.1);
  return d;
}

model_t make_model() {
  schedule::two_stage_parameters p;
  p.sigma_max = 0.4;
  p.level_min = 0.2;
  p.level_max = 2.5;
  const schedule::two_stage sched(p);
  const blur_t blur(6);
  model_t sd(blur, sched, oracle_t(blur, sched, dataset()));
  sd.fit_final_distribution(dataset());
  return sd;
}

/// Every golden array by name, each value as a hex float (exact).
std::map<std::string, std::vector<T>> computed() {
  std::map<std::string, std::vector<T>> out;
  const auto put = [&](const std::string& name, const batch<T>& x) { out[name] = std::vector<T>(x.begin(), x.end()); };
  model_t sd = make_model();
  constexpr std::size_t count = 5, steps = 7;
  put("naive", sd.sample(count, steps, 11, sampler::naive<T>{}));
  put("momentum", sd.sample(count, steps, 12, sampler::momentum<T>{}));
  put("momentum_blocks_2", sd.sample(count, steps, 12, sampler::momentum<T>{2}));
  put("pf_momentum", sd.sample(count, steps, 13, sampler::pf_momentum<T>{}));
  put("ddim_k0", sd.sample(count, steps, 14, sampler::ddim<T>{}));
  put("ddim_k0.5", sd.sample(count, steps, 14, sampler::ddim<T>{0.5}));
  put("predictor_corrector_k0.3", sd.sample(count, steps, 15, sampler::predictor_corrector<T>{0.3}));
  put("momentum_part_2_of_5", sd.sample(sample_range{2, 2}, steps, 12, sampler::momentum<T>{}));

  batch<T> x0({4, 1, 10, 9});
  noise_source{3, 4}.fill(x0);
  const std::vector<double> t{0.1, 0.35, 0.7, 1.0};
  batch<T> xt, grad, s;
  sd.corrupt(x0, t, noise_source{5, 6}, xt);
  put("corrupt", xt);
  const double loss = sd.loss(x0, t, noise_source{5, 6}, loss::weighting::inverse_sigma2, &grad).value;
  put("loss_grad", grad);
  out["loss_value"] = {static_cast<T>(loss)};
  sd.score(xt, 0.5, s);
  put("score_t0.5", s);
  return out;
}

std::string features() {
  std::string f;
#if defined(__AVX512F__)
  f += " avx512f";
#endif
#if defined(__AVX2__)
  f += " avx2";
#endif
#if defined(__FMA__)
  f += " fma";
#endif
  return f.empty() ? " none" : f;
}

void write_golden(const std::map<std::string, std::vector<T>>& values) {
  std::filesystem::create_directories(golden_file.parent_path());
  std::ofstream f(golden_file);
  f << "# tests/test_golden_samples.cpp; recorded with" << features() << "\n";
  for (const auto& [name, v] : values) {
    f << name << " " << v.size();
    char buf[64];
    for (T x : v) {
      std::snprintf(buf, sizeof buf, " %a", static_cast<double>(x));
      f << buf;
    }
    f << "\n";
  }
}

std::map<std::string, std::vector<T>> read_golden(std::string& header) {
  std::ifstream f(golden_file);
  REQUIRE(f.good());
  std::getline(f, header);
  std::map<std::string, std::vector<T>> out;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string name;
    std::size_t n = 0;
    in >> name >> n;
    std::vector<T>& v = out[name];
    for (std::size_t i = 0; i < n; ++i) {
      std::string word;
      in >> word;
      v.push_back(static_cast<T>(std::strtod(word.c_str(), nullptr)));
    }
    REQUIRE(v.size() == n);
  }
  return out;
}

}  // namespace

TEST_CASE("SoftDiffusion gives the recorded bits for fixed seeds", "[golden][soft_diffusion][sampler]") {
  const auto values = computed();
  if (const char* w = std::getenv("SOFTDIFF_WRITE_GOLDEN"); w != nullptr && std::string(w) == "1") {
    write_golden(values);
    WARN("wrote " << golden_file.string());
  }
  std::string header;
  const auto golden = read_golden(header);
  INFO(header << "; this build:" << features());
  REQUIRE(golden.size() == values.size());
  for (const auto& [name, v] : values) {
    INFO(name);
    REQUIRE(golden.count(name) == 1);
    const std::vector<T>& g = golden.at(name);
    REQUIRE(g.size() == v.size());
    std::size_t differ = 0, first = v.size();
    for (std::size_t i = 0; i < v.size(); ++i) {
#if SOFTDIFF_GOLDEN_BITWISE
      const bool same = std::memcmp(&g[i], &v[i], sizeof(T)) == 0;
#else
      const bool same = std::abs(double(g[i]) - double(v[i])) <= 1e-5 * (1.0 + std::abs(double(g[i])));
#endif
      if (!same) {
        ++differ;
        if (first == v.size()) first = i;
      }
    }
    INFO(differ << " of " << v.size() << " values differ; first at " << first << ": "
                << (first < v.size() ? v[first] : T(0)) << " against " << (first < v.size() ? g[first] : T(0)));
    CHECK(differ == 0);
    bool finite = true, nonzero = false;
    for (T x : v) finite = finite && std::isfinite(x), nonzero = nonzero || x != T(0);
    CHECK(finite);
    CHECK(nonzero);
  }
}
