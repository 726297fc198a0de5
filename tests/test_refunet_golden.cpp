// RefUNet against PyTorch: tests/data/refunet_golden.safetensors (written by
// tests/refunet/make_golden.py from tests/refunet/refunet_torch.py) holds the weights under the
// spec's names, x, t, an upstream gradient g, phi = RefUNet(x, t) and every parameter gradient
// d(sum(phi * g))/dtheta, computed in float64 from the stored float32 inputs.
//
// Tolerances, per tensor, relative to that tensor's largest reference magnitude:
//   max_i |ours_i - ref_i| <= tol * max_i |ref_i|
// float: 2e-5 for phi, 1e-4 for gradients (float32 accumulation over 28x28 positions and a
// batch; measured 7e-7 and 7e-6); double: 1e-6 (measured 6e-8: the reference itself is rounded
// to float32). The key bias, whose true gradient is zero, is judged on the scale of the key
// weights' gradient instead.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <omp.h>

#include "softdiff/data/safetensors.hpp"
#include "softdiff/nn/refunet.hpp"
#include "support/omp_threads.hpp"

using namespace softdiff;

namespace {

const data::safetensors_file& golden() {
  static const data::safetensors_file f =
      data::read_safetensors(std::filesystem::path(SOFTDIFF_SOURCE_DIR) / "tests/data/refunet_golden.safetensors");
  return f;
}

nn::refunet_config golden_config() {
  return nn::refunet_config_from_json_text(golden().metadata.at(nn::refunet_config::metadata_key));
}

struct deviation {
  double max_abs_diff = 0, max_abs_ref = 0;
  [[nodiscard]] double relative() const { return max_abs_diff / std::max(max_abs_ref, 1e-30); }
};

template <class A, class B>
deviation compare(const A& ours, const std::vector<B>& ref) {
  REQUIRE(ours.size() == ref.size());
  deviation d;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    d.max_abs_diff = std::max(d.max_abs_diff, std::abs(double(ours[i]) - double(ref[i])));
    d.max_abs_ref = std::max(d.max_abs_ref, std::abs(double(ref[i])));
  }
  return d;
}

/// Loads every weight of the golden file into `net` by name (names and shapes must match exactly).
template <class T>
void load_weights(nn::refunet<T>& net) {
  for (const auto& e : net.store().entries()) {
    const auto& t = golden().at(e.name);
    INFO(e.name);
    REQUIRE(t.shape == e.shape);
    const auto v = t.template values<T>();
    std::copy(v.begin(), v.end(), net.store().values(e.name).begin());
  }
}

/// With `replicas` = 2 the batch of two is split over two replicas of the layers (on two threads).
template <class T>
void check_against_golden(double tol_phi, double tol_grad, std::size_t replicas) {
  const testing::omp_threads_scope threads_scope(std::max(2, omp_get_max_threads()));
  nn::refunet<T> net(golden_config(), 5);
  net.set_max_replicas(replicas);
  load_weights(net);
  const auto x = golden().at("x").to_xtensor<T, 4>();
  const auto t = golden().at("t").values<double>();
  const auto g = golden().at("g").to_xtensor<T, 4>();
  batch<T> phi;
  net.forward(x, t, phi);
  REQUIRE(net.replicas_in_use() == replicas);
  const deviation dphi = compare(std::vector<T>(phi.begin(), phi.end()), golden().at("phi").values<double>());
  INFO("phi: max |diff| " << dphi.max_abs_diff << ", max |ref| " << dphi.max_abs_ref);
  CHECK(dphi.max_abs_ref > 0.1);
  CHECK(dphi.relative() <= tol_phi);

  net.zero_grad();
  net.backward(g);
  double worst = 0;
  std::string worst_name;
  for (const auto& e : net.store().entries()) {
    const auto ref = golden().at("grad." + e.name).template values<double>();
    const auto grad = net.store().grads(e.name);
    deviation d = compare(grad, ref);
    INFO(e.name << ": max |diff| " << d.max_abs_diff << ", max |ref| " << d.max_abs_ref);
    if (e.name == "mid.attn.k.bias") {
      // Exactly zero in exact arithmetic: adding b to every key adds q_i . b to a whole row of
      // scores, which the softmax cancels. Judge it on the scale of the key weights' gradient.
      CHECK(d.max_abs_ref < 1e-12);
      d.max_abs_ref = compare(net.store().grads("mid.attn.k.weight"),
                              golden().at("grad.mid.attn.k.weight").template values<double>())
                          .max_abs_ref;
    }
    CHECK(d.max_abs_ref > 1e-6);  // every other tensor receives a real gradient
    CHECK(d.relative() <= tol_grad);
    if (d.relative() > worst) worst = d.relative(), worst_name = e.name;
  }
  INFO("worst gradient deviation " << worst << " in " << worst_name);
  CHECK(worst <= tol_grad);
}

}  // namespace

TEST_CASE("refunet golden file: configuration, names, order and shapes match the PyTorch module",
          "[nn][refunet][golden]") {
  const nn::refunet_config cfg = golden_config();
  CHECK(cfg.in_channels == 2);
  CHECK(cfg.base_channels == 12);
  CHECK(cfg.channel_mult == std::vector<std::size_t>{1, 2, 2});
  CHECK(cfg.groups == 4);
  nn::refunet<float> net(cfg);
  // state_dict() order of the PyTorch module, name for name
  const auto torch_names = nlohmann::json::parse(golden().metadata.at("names")).get<std::vector<std::string>>();
  std::vector<std::string> ours;
  for (const auto& e : net.store().entries()) ours.push_back(e.name);
  CHECK(ours == torch_names);
  // nothing in the file that the network lacks (besides the test's own tensors)
  std::set<std::string> expected(ours.begin(), ours.end());
  for (const auto& n : ours) expected.insert("grad." + n);
  for (const char* n : {"x", "t", "g", "phi"}) expected.insert(n);
  std::set<std::string> in_file;
  for (const auto& [name, tensor] : golden().tensors) in_file.insert(name);
  CHECK(in_file == expected);
  std::size_t count = 0;
  for (const auto& e : net.store().entries()) count += golden().at(e.name).element_count();
  CHECK(count == net.parameter_count());
}

TEST_CASE("refunet<float> matches PyTorch's output and every parameter gradient", "[nn][refunet][golden]") {
  for (std::size_t replicas : {1, 2}) {
    CAPTURE(replicas);
    check_against_golden<float>(2e-5, 1e-4, replicas);
  }
}

TEST_CASE("refunet<double> matches PyTorch's float64 reference to float32 rounding", "[nn][refunet][golden]") {
  for (std::size_t replicas : {1, 2}) {
    CAPTURE(replicas);
    check_against_golden<double>(1e-6, 1e-6, replicas);
  }
}
