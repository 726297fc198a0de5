// train::trainer and train/minibatch.hpp: stratified times, per-epoch permutations, the
// step (loss falls, warm-up, EMA recurrence), exact resume through a checkpoint (bit for
// bit), divergence handling (step named, state kept), and configuration mismatches.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <vector>

#include "support/data_files.hpp"
#include "support/tiny_denoiser.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/loss/baselines.hpp"
#include "softdiff/nn/refunet.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/train/trainer.hpp"

using namespace softdiff;

namespace {

using net_t = test::tiny_denoiser<float>;
using model_t = SoftDiffusion<op::gaussian_blur<float>, schedule::two_stage, net_t>;
using trainer_t = train::trainer<op::gaussian_blur<float>, schedule::two_stage, net_t>;

schedule::two_stage small_schedule() {
  schedule::two_stage_parameters p;
  p.level_max = 2.0;  // blur std at t = 1, for 8 x 8 images
  return schedule::two_stage(p);
}

/// 20 smooth 8 x 8 single-channel images in [-1, 1].
batch<float> tiny_data(std::size_t m = 20) {
  batch<float> x(shape4{m, 1, 8, 8});
  for (std::size_t n = 0; n < m; ++n)
    for (std::size_t i = 0; i < 64; ++i)
      x.data()[n * 64 + i] = static_cast<float>(std::sin(0.3 * static_cast<double>(n) + 0.2 * static_cast<double>(i)));
  return x;
}

train::trainer_config tiny_config() {
  train::trainer_config c;
  c.seed = 11;
  c.batch_size = 6;
  c.adam.lr = 1e-2;
  c.adam.warmup_steps = 4;
  c.ema_decay = 0.9;
  return c;
}

trainer_t make_trainer(train::trainer_config c = tiny_config(), batch<float> data = tiny_data(), net_t net = net_t()) {
  return trainer_t(model_t(op::gaussian_blur<float>(4), small_schedule(), std::move(net)), std::move(data), c);
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(*a.data())) == 0;
}

std::vector<float> copy(std::span<const float> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("stratified times: one time per stratum of [t_min, 1), a pure function of (seed, step)", "[train]") {
  std::vector<double> t(16), again(16), other(16);
  const double t_min = 1e-3;
  train::stratified_times(5, 3, t_min, t);
  train::stratified_times(5, 3, t_min, again);
  train::stratified_times(5, 4, t_min, other);
  CHECK(t == again);
  CHECK(t != other);
  for (std::size_t i = 0; i < t.size(); ++i) {
    const double lo = t_min + (1 - t_min) * static_cast<double>(i) / 16, hi = t_min + (1 - t_min) * static_cast<double>(i + 1) / 16;
    CHECK(t[i] > lo);
    CHECK(t[i] < hi);
  }
  CHECK_THROWS_WITH(train::stratified_times(5, 3, 1.0, t), Catch::Contains("t_min"));
}

TEST_CASE("minibatches: each epoch visits every image once, in a seeded order", "[train]") {
  train::minibatch_source<float> a(1), b(1), c(2);
  const std::size_t m = 12, B = 4;
  std::vector<std::size_t> idx(B), epoch0, epoch1, other;
  for (std::uint64_t step = 0; step < 6; ++step) {  // 6 steps of 4 = two epochs of 12
    a.indices(step, m, idx);
    (step < 3 ? epoch0 : epoch1).insert((step < 3 ? epoch0 : epoch1).end(), idx.begin(), idx.end());
    std::vector<std::size_t> again(B);
    b.indices(step, m, again);
    CHECK(again == idx);
    c.indices(step, m, again);
    other.insert(other.end(), again.begin(), again.end());
  }
  std::vector<std::size_t> all(m);
  std::iota(all.begin(), all.end(), 0);
  auto sorted = [](std::vector<std::size_t> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  CHECK(sorted(epoch0) == all);
  CHECK(sorted(epoch1) == all);
  CHECK(epoch0 != epoch1);  // a new permutation per epoch
  CHECK(std::vector<std::size_t>(other.begin(), other.begin() + 12) != epoch0);  // another seed, another order
  // a batch straddling an epoch boundary (m = 10, B = 4: step 2 takes positions 8..11)
  std::vector<std::size_t> e0(10), e1(10);
  train::epoch_order(1, 0, e0, 10);
  train::epoch_order(1, 1, e1, 10);
  a.indices(2, 10, idx);
  CHECK(idx == std::vector<std::size_t>{e0[8], e0[9], e1[0], e1[1]});
}

TEST_CASE("trainer: the loss falls, warm-up and EMA follow their recurrences", "[train]") {
  trainer_t tr = make_trainer();
  const float decay = 0.9f;
  std::vector<float> ema = copy(tr.model().network().parameters());
  double first = 0, last = 0;
  const int steps = 150;
  for (int k = 1; k <= steps; ++k) {
    const train::step_result r = tr.step();
    CHECK(r.step == k);
    if (k <= 4) CHECK(r.learning_rate == Approx(1e-2 * k / 4));
    else if (k == 5) CHECK(r.learning_rate == Approx(1e-2));
    for (std::size_t i = 0; i < ema.size(); ++i)
      ema[i] = decay * ema[i] + (1.0f - decay) * tr.model().network().parameters()[i];
    if (k <= 15) first += r.loss;
    if (k > steps - 15) last += r.loss;
    REQUIRE(std::isfinite(r.loss));
    CHECK(r.grad_norm >= 0);
  }
  CHECK(last < 0.5 * first);
  CHECK(tr.steps_done() == steps);
  CHECK(tr.optimizer().steps_taken() == steps);
  for (std::size_t i = 0; i < ema.size(); ++i) CHECK(ema[i] == Approx(tr.average().weights()[i]).epsilon(1e-5));
  // times of the last step are stratified over the batch
  const auto t = tr.last_times();
  REQUIRE(t.size() == 6);
  for (std::size_t i = 0; i < t.size(); ++i) CHECK(std::floor((t[i] - 1e-3) / ((1 - 1e-3) / 6)) == Approx(i));
}

TEST_CASE("trainer: with_ema_weights samples with the EMA and restores the weights exactly", "[train]") {
  trainer_t tr = make_trainer();
  for (int k = 0; k < 5; ++k) tr.step();
  const std::vector<float> before = copy(tr.model().network().parameters());
  REQUIRE_FALSE(same_bits(before, tr.average().weights()));
  std::vector<float> seen;
  batch<float> x = tr.with_ema_weights([&](model_t& m) {
    seen = copy(m.network().parameters());
    return m.sample<sampler::momentum<float>>(3, 8, 5);
  });
  CHECK(same_bits(seen, tr.average().weights()));
  CHECK(same_bits(before, tr.model().network().parameters()));
  CHECK(shape_of(x) == shape4{3, 1, 8, 8});
  CHECK_THROWS(tr.with_ema_weights([](model_t&) -> int { throw error("inside"); }));
  CHECK(same_bits(before, tr.model().network().parameters()));
}

TEST_CASE("trainer: k steps, save, load, N - k steps equals N steps bit for bit", "[train][checkpoint]") {
  test::temp_dir dir("trainer-resume");
  const int N = 9, k = 4;
  trainer_t whole = make_trainer();
  for (int i = 0; i < N; ++i) whole.step();

  trainer_t first = make_trainer();
  for (int i = 0; i < k; ++i) first.step();
  first.save_checkpoint(dir / "ckpt.safetensors", {{"note", "test"}}, {{"refunet_config", "{}"}});

  // a fresh trainer with another initialisation: everything must come from the file
  trainer_t second = make_trainer(tiny_config(), tiny_data(), net_t(1, 99));
  REQUIRE_FALSE(same_bits(copy(second.model().network().parameters()), copy(first.model().network().parameters())));
  second.load_checkpoint(dir / "ckpt.safetensors");
  CHECK(second.steps_done() == k);
  for (int i = k; i < N; ++i) second.step();

  CHECK(second.steps_done() == whole.steps_done());
  CHECK(second.optimizer().steps_taken() == whole.optimizer().steps_taken());
  CHECK(same_bits(second.model().network().parameters(), whole.model().network().parameters()));
  CHECK(same_bits(second.optimizer().first_moment(), whole.optimizer().first_moment()));
  CHECK(same_bits(second.optimizer().second_moment(), whole.optimizer().second_moment()));
  CHECK(same_bits(second.average().weights(), whole.average().weights()));

  // the file: EMA under the network's names, training state under train.*, metadata
  const data::safetensors_file f = data::read_safetensors(dir / "ckpt.safetensors");
  CHECK(f.tensors.size() == 12);
  CHECK(f.at("affine.weight").dtype == "F32");
  CHECK(f.at("time.weight").shape == std::vector<std::size_t>{1, 1});
  CHECK(f.contains("train.weights.affine.bias"));
  CHECK(f.contains("train.adam_m.affine.bias"));
  CHECK(f.contains("train.adam_v.time.weight"));
  const auto meta = nlohmann::json::parse(f.metadata.at("softdiff"));
  CHECK(meta["step"] == k);
  CHECK(meta["seed"] == 11);
  CHECK(meta["note"] == "test");
  CHECK(meta["adam"]["warmup_steps"] == 4);
  CHECK(f.metadata.at("refunet_config") == "{}");
  std::vector<float> ema(3);
  nn::read_tensors<float>(f, first.model().network().store().entries(), "", std::span<float>(ema));
  CHECK(same_bits(ema, first.average().weights()));
  CHECK_FALSE(std::filesystem::exists(dir / "ckpt.safetensors.tmp"));
}

TEST_CASE("trainer: a non-finite step stops with its number and keeps the last good state", "[train]") {
  test::temp_dir dir("trainer-nan");
  net_t net;
  net.poison_from_call = 3;  // the 4th forward (step 4) returns NaN
  trainer_t tr = make_trainer(tiny_config(), tiny_data(), std::move(net));
  for (int k = 0; k < 3; ++k) tr.step();
  tr.save_checkpoint(dir / "ckpt.safetensors");
  const std::vector<float> p = copy(tr.model().network().parameters()), e = copy(tr.average().weights());
  const std::vector<float> m = copy(tr.optimizer().first_moment());
  try {
    tr.step();
    FAIL("a NaN network output must stop training");
  } catch (const train::step_error& err) {
    CHECK(err.step() == 4);
    CHECK_THAT(err.what(), Catch::Contains("training stopped at step 4") && Catch::Contains("non-finite"));
  }
  CHECK(tr.steps_done() == 3);
  CHECK(tr.optimizer().steps_taken() == 3);
  CHECK(same_bits(p, tr.model().network().parameters()));
  CHECK(same_bits(e, tr.average().weights()));
  CHECK(same_bits(m, tr.optimizer().first_moment()));
  // the checkpoint of step 3 is intact and loads
  trainer_t again = make_trainer();
  again.load_checkpoint(dir / "ckpt.safetensors");
  CHECK(again.steps_done() == 3);
  CHECK(same_bits(p, again.model().network().parameters()));
}

TEST_CASE("trainer: bad data and bad configuration are refused", "[train]") {
  batch<float> bad = tiny_data();
  bad.data()[5 * 64 + 7] = std::nanf("");
  CHECK_THROWS_WITH(make_trainer(tiny_config(), bad), Catch::Contains("training data") && Catch::Contains("non-finite"));
  train::trainer_config c = tiny_config();
  c.t_min = 0.0;
  CHECK_THROWS_WITH(make_trainer(c), Catch::Contains("t_min"));
  c = tiny_config();
  c.batch_size = 0;
  CHECK_THROWS_WITH(make_trainer(c), Catch::Contains("batch size"));
  CHECK_THROWS_WITH(make_trainer(tiny_config(), batch<float>(shape4{0, 1, 8, 8})), Catch::Contains("empty dataset"));
  CHECK(train::weighting_from_name("inverse-sigma2") == loss::weighting::inverse_sigma2);  // the older spelling
  CHECK(train::weighting_from_name("inverse-variance") == loss::weighting::inverse_sigma2);
  CHECK(train::weighting_name(loss::weighting::inverse_sigma2) == "inverse-variance");
  CHECK_THROWS_WITH(train::weighting_from_name("cubic"), Catch::Contains("cubic"));
  CHECK_THROWS_WITH(loss::loss_kind_from_name("l1"), Catch::Contains("unknown loss 'l1'"));
}

TEST_CASE("trainer: the loss kind is part of the configuration, ssm when a checkpoint lacks it", "[train]") {
  train::trainer_config c = tiny_config();
  c.loss = loss::loss_kind::dsm;
  c.weighting = loss::weighting::inverse_sigma2;
  nlohmann::json j = train::to_json(c);
  CHECK(j["loss"] == "dsm");
  CHECK(j["weighting"] == "inverse-variance");
  CHECK(train::trainer_config_from_json(j, "test").loss == loss::loss_kind::dsm);
  j.erase("loss");  // a checkpoint written before the loss could be chosen
  j["weighting"] = "inverse-sigma2";
  const train::trainer_config old = train::trainer_config_from_json(j, "test");
  CHECK(old.loss == loss::loss_kind::ssm);
  CHECK(old.weighting == loss::weighting::inverse_sigma2);
}

TEST_CASE("trainer: each loss kind (eq. 12, clean image, eq. 7) has its own gradient and trains", "[train]") {
  for (const loss::loss_kind kind : {loss::loss_kind::ssm, loss::loss_kind::clean, loss::loss_kind::dsm}) {
    INFO(loss::loss_kind_name(kind));
    train::trainer_config c = tiny_config();
    c.loss = kind;
    trainer_t tr = make_trainer(c);

    // SoftDiffusion::loss against the loss functions themselves (finite-difference checked in
    // test_loss.cpp) on the same x_t and phi: the same value and gradient
    model_t& m = tr.model();
    const batch<float> x0 = tiny_data(4);
    const std::vector<double> t{0.05, 0.3, 0.6, 0.95};
    const noise_source noise{3, 4};
    batch<float> grad, xt, phi, want_grad;
    const loss::loss_value v = m.loss(x0, t, noise, loss::weighting::inverse_sigma2, kind, &grad);
    m.corrupt(x0, t, noise, xt);
    m.network().predict(xt, t, phi);
    const batch<float> r = x0 - xt;
    std::vector<double> levels, sigmas, weights;
    for (double tn : t) {
      levels.push_back(m.level(tn));
      sigmas.push_back(m.sigma(tn));
      weights.push_back(1.0 / (m.sigma(tn) * m.sigma(tn)));
    }
    loss::loss_value want;
    if (kind == loss::loss_kind::ssm) want = loss::soft_score_matching(m.op(), levels, weights, phi, r, &want_grad);
    else if (kind == loss::loss_kind::clean) want = loss::clean_image(std::span<const double>(weights), phi, r, &want_grad);
    else want = loss::denoising_score_matching(m.op(), levels, sigmas, weights, phi, xt, x0, &want_grad);
    CHECK(v.value == Approx(want.value).epsilon(1e-5));
    REQUIRE(shape_of(grad) == shape_of(want_grad));
    CHECK(xt::allclose(grad, want_grad, 1e-4, 1e-6 * xt::amax(xt::abs(want_grad))()));

    // the kinds differ: eq. 12 weights the residual by C_t, eq. 7 also by 1 / sigma_t^4
    if (kind != loss::loss_kind::ssm) {
      const loss::loss_value ssm = m.loss(x0, t, noise, loss::weighting::inverse_sigma2, loss::loss_kind::ssm);
      CHECK(v.value != Approx(ssm.value).epsilon(1e-3));
    }

    // and it trains: the loss of the last steps well below that of the first
    double first = 0, last = 0;
    const int steps = 150;
    for (int k = 1; k <= steps; ++k) {
      const train::step_result sr = tr.step();
      REQUIRE(std::isfinite(sr.loss));
      if (k <= 15) first += sr.loss;
      if (k > steps - 15) last += sr.loss;
    }
    CHECK(last < 0.5 * first);
  }
}

TEST_CASE("trainer: a checkpoint for another configuration or network is refused with the differences", "[train][checkpoint]") {
  test::temp_dir dir("trainer-mismatch");
  trainer_t tr = make_trainer();
  tr.step();
  tr.save_checkpoint(dir / "a.safetensors");

  train::trainer_config c = tiny_config();
  c.seed = 12;
  c.adam.lr = 3e-3;
  trainer_t other = make_trainer(c);
  const std::vector<float> before = copy(other.model().network().parameters());
  CHECK_THROWS_WITH(other.load_checkpoint(dir / "a.safetensors"),
                    Catch::Contains("another training configuration") && Catch::Contains("seed: checkpoint 11, this run 12") &&
                        Catch::Contains("adam"));
  CHECK(other.steps_done() == 0);
  CHECK(same_bits(before, other.model().network().parameters()));

  // a network with two channels: every tensor has another shape
  using two_t = train::trainer<op::gaussian_blur<float>, schedule::two_stage, net_t>;
  batch<float> data2(shape4{4, 2, 8, 8});
  std::fill(data2.begin(), data2.end(), 0.25f);
  two_t wide(model_t(op::gaussian_blur<float>(4), small_schedule(), net_t(2)), data2, tiny_config());
  CHECK_THROWS_WITH(wide.load_checkpoint(dir / "a.safetensors"),
                    Catch::Contains("does not match the network") && Catch::Contains("12 problems") &&
                        Catch::Contains("'affine.weight' has shape [1] but the network expects [2]"));

  // not a training checkpoint: no metadata
  data::safetensors_writer w;
  const std::vector<float> zeros(3, 0.f);
  for (const char* prefix : {"", "train.weights.", "train.adam_m.", "train.adam_v."}) {
    w.add(std::string(prefix) + "affine.weight", {1}, std::span<const float>(zeros.data(), 1));
    w.add(std::string(prefix) + "affine.bias", {1}, std::span<const float>(zeros.data(), 1));
    w.add(std::string(prefix) + "time.weight", {1, 1}, std::span<const float>(zeros.data(), 1));
  }
  w.write(dir / "bare.safetensors");
  CHECK_THROWS_WITH(tr.load_checkpoint(dir / "bare.safetensors"), Catch::Contains("no __metadata__ entry 'softdiff'"));
}

TEST_CASE("trainer: exact resume with a tiny RefUNet (base 8, mult (1, 2), 8 x 8)", "[train][checkpoint][refunet]") {
  test::temp_dir dir("trainer-refunet");
  nn::refunet_config cfg;
  cfg.base_channels = 8;
  cfg.channel_mult = {1, 2};
  using unet = nn::refunet<float>;
  using unet_trainer = train::trainer<op::gaussian_blur<float>, schedule::two_stage, unet>;
  train::trainer_config c = tiny_config();
  c.batch_size = 4;
  c.adam.lr = 1e-3;
  c.ema_decay = 0.8;
  auto make = [&](std::uint64_t init_seed) {
    return unet_trainer(SoftDiffusion(op::gaussian_blur<float>(4), small_schedule(), unet(cfg, init_seed)), tiny_data(12), c);
  };
  const int N = 5, k = 2;
  unet_trainer whole = make(1);
  for (int i = 0; i < N; ++i) whole.step();
  unet_trainer first = make(1);
  for (int i = 0; i < k; ++i) first.step();
  first.save_checkpoint(dir / "u.safetensors");
  unet_trainer second = make(2);
  second.load_checkpoint(dir / "u.safetensors");
  for (int i = k; i < N; ++i) second.step();
  CHECK(second.steps_done() == N);
  CHECK(same_bits(second.model().network().parameters(), whole.model().network().parameters()));
  CHECK(same_bits(second.optimizer().first_moment(), whole.optimizer().first_moment()));
  CHECK(same_bits(second.optimizer().second_moment(), whole.optimizer().second_moment()));
  CHECK(same_bits(second.average().weights(), whole.average().weights()));
  CHECK_FALSE(same_bits(whole.average().weights(), whole.model().network().parameters()));
}

TEST_CASE("trainer: double precision trains and checkpoints as F64", "[train][checkpoint]") {
  test::temp_dir dir("trainer-double");
  using net_d = test::tiny_denoiser<double>;
  using trainer_d = train::trainer<op::gaussian_blur<double>, schedule::two_stage, net_d>;
  batch<double> x(shape4{6, 1, 8, 8});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::sin(0.11 * static_cast<double>(i));
  trainer_d tr(SoftDiffusion(op::gaussian_blur<double>(4), small_schedule(), net_d()), x, tiny_config());
  tr.step();
  tr.save_checkpoint(dir / "d.safetensors");
  const data::safetensors_file f = data::read_safetensors(dir / "d.safetensors");
  CHECK(f.at("affine.weight").dtype == "F64");
  trainer_d again(SoftDiffusion(op::gaussian_blur<double>(4), small_schedule(), net_d(1, 5)), x, tiny_config());
  again.load_checkpoint(f);
  CHECK(same_bits(again.model().network().parameters(), tr.model().network().parameters()));
  CHECK(tr.step().step == 2);
}
