// nn/checkpoint.hpp: tensors laid out by a parameter_store round-trip through safetensors
// (float and double); loading reports every missing or unexpected name, shape and dtype at
// once; an inference load ignores the training state; metadata JSON differences are named;
// a RefUNet checkpoint carries the spec's names and refuses another configuration.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "support/data_files.hpp"
#include "support/tiny_denoiser.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/nn/checkpoint.hpp"
#include "softdiff/nn/refunet.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/train/trainer.hpp"

using namespace softdiff;

namespace {

template <class T>
nn::parameter_store<T> small_store(std::size_t out = 3) {
  nn::parameter_store<T> s;
  s.add("layer.weight", {out, 2});
  s.add("layer.bias", {out});
  s.add("norm.weight", {4});
  s.allocate();
  auto p = s.parameters();
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<T>(std::sin(1.0 + static_cast<double>(i)) / 3.0);
  return s;
}

template <class T>
std::vector<T> copy(std::span<const T> s) {
  return {s.begin(), s.end()};
}

}  // namespace

TEMPLATE_TEST_CASE("checkpoint tensors round-trip under their names and prefixes", "[checkpoint]", float, double) {
  test::temp_dir dir("ckpt-roundtrip");
  const nn::parameter_store<TestType> s = small_store<TestType>();
  std::vector<TestType> second(s.size());
  for (std::size_t i = 0; i < second.size(); ++i) second[i] = static_cast<TestType>(i) * TestType(0.5);
  data::safetensors_writer w;
  nn::add_tensors<TestType>(w, s.entries(), "", s.parameters());
  nn::add_tensors<TestType>(w, s.entries(), nn::adam_m_prefix, std::span<const TestType>(second));
  w.write(dir / "c.safetensors");

  const data::safetensors_file f = data::read_safetensors(dir / "c.safetensors");
  CHECK(f.at("layer.weight").shape == std::vector<std::size_t>{3, 2});
  CHECK(f.at("train.adam_m.norm.weight").dtype == std::string(nn::checkpoint_dtype<TestType>()));
  nn::check_tensors<TestType>(f, s.entries(), {std::string_view{}, nn::adam_m_prefix});
  std::vector<TestType> a(s.size()), b(s.size());
  nn::read_tensors<TestType>(f, s.entries(), "", std::span<TestType>(a));
  nn::read_tensors<TestType>(f, s.entries(), nn::adam_m_prefix, std::span<TestType>(b));
  CHECK(a == copy<TestType>(s.parameters()));
  CHECK(b == second);

  nn::parameter_store<TestType> target = small_store<TestType>();
  std::fill(target.parameters().begin(), target.parameters().end(), TestType(0));
  nn::load_weights<TestType>(f, target);  // the train.* tensors are ignored by an inference load
  CHECK(copy<TestType>(target.parameters()) == copy<TestType>(s.parameters()));
}

TEST_CASE("checkpoint loading names every missing, unexpected, mis-shaped and mistyped tensor", "[checkpoint]") {
  test::temp_dir dir("ckpt-problems");
  const nn::parameter_store<float> s = small_store<float>();
  data::safetensors_writer w;
  const std::vector<float> v(16, 0.5f);
  const std::vector<double> d(4, 0.5);
  w.add("layer.weight", {2, 2}, std::span<const float>(v.data(), 4));  // wrong shape
  w.add("norm.weight", {4}, std::span<const double>(d));              // wrong dtype
  w.add("extra.bias", {3}, std::span<const float>(v.data(), 3));       // unexpected
  w.add("train.adam_v.layer.bias", {3}, std::span<const float>(v.data(), 3));
  w.write(dir / "bad.safetensors");
  const data::safetensors_file f = data::read_safetensors(dir / "bad.safetensors");

  try {
    nn::check_tensors<float>(f, s.entries(), {std::string_view{}});
    FAIL("a mismatching checkpoint must be refused");
  } catch (const error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK_THAT(m, Catch::Contains("bad.safetensors") && Catch::Contains("4 problems"));
    CHECK_THAT(m, Catch::Contains("'layer.weight' has shape [2, 2] but the network expects [3, 2]"));
    CHECK_THAT(m, Catch::Contains("missing 'layer.bias' (shape [3])"));
    CHECK_THAT(m, Catch::Contains("'norm.weight' has dtype F64, expected F32"));
    CHECK_THAT(m, Catch::Contains("unexpected 'extra.bias'"));
    CHECK_THAT(m, !Catch::Contains("train.adam_v"));  // training state is not asked for here
  }
  // asking for the training state: its missing tensors are named, its present one is not unexpected
  CHECK_THROWS_WITH(nn::check_tensors<float>(f, s.entries(), {nn::adam_v_prefix}),
                    Catch::Contains("missing 'train.adam_v.layer.weight'") &&
                        !Catch::Contains("missing 'train.adam_v.layer.bias'") && Catch::Contains("unexpected 'extra.bias'"));
  // a double network refuses F32 tensors
  const nn::parameter_store<double> sd = small_store<double>();
  CHECK_THROWS_WITH(nn::check_tensors<double>(f, sd.entries(), {std::string_view{}}),
                    Catch::Contains("'layer.weight' has dtype F32, expected F64"));

  // many problems: the first 12 in full, then a count
  nn::parameter_store<float> big;
  for (int i = 0; i < 20; ++i) big.add("p" + std::to_string(i) + ".weight", {2});
  big.allocate();
  CHECK_THROWS_WITH(nn::check_tensors<float>(f, big.entries(), {std::string_view{}}),
                    Catch::Contains("23 problems") && Catch::Contains("... and 11 more"));
}

TEST_CASE("metadata JSON differences are listed field by field", "[checkpoint]") {
  test::temp_dir dir("ckpt-meta");
  data::safetensors_writer w;
  const std::vector<float> v(1, 0.f);
  w.add("x", {1}, std::span<const float>(v));
  w.set_metadata("cfg", R"({"base_channels": 8, "groups": 8, "old": 1})");
  w.set_metadata("broken", "{not json");
  w.write(dir / "m.safetensors");
  const data::safetensors_file f = data::read_safetensors(dir / "m.safetensors");
  nn::check_metadata_json(f, "cfg", nlohmann::json{{"base_channels", 8}, {"groups", 8}, {"old", 1}});
  CHECK_THROWS_WITH(nn::check_metadata_json(f, "cfg", nlohmann::json{{"base_channels", 16}, {"groups", 8}, {"new", true}}),
                    Catch::Contains("written for another cfg") && Catch::Contains("base_channels: checkpoint 8, expected 16") &&
                        Catch::Contains("new: absent in the checkpoint") && Catch::Contains("old: checkpoint 1, not expected"));
  CHECK_THROWS_WITH(nn::metadata_json(f, "absent"), Catch::Contains("no __metadata__ entry 'absent'"));
  CHECK_THROWS_WITH(nn::metadata_json(f, "broken"), Catch::Contains("'broken' is not valid JSON"));
}

TEST_CASE("a RefUNet training checkpoint: spec names, EMA weights, other configurations refused", "[checkpoint][refunet]") {
  test::temp_dir dir("ckpt-refunet");
  nn::refunet_config cfg;
  cfg.base_channels = 8;
  cfg.channel_mult = {1, 2};
  using net_t = nn::refunet<float>;
  using trainer_t = train::trainer<op::gaussian_blur<float>, schedule::two_stage, net_t>;
  schedule::two_stage_parameters sp;
  sp.level_max = 2.0;
  batch<float> x(shape4{8, 1, 8, 8});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(std::cos(0.21 * static_cast<double>(i)));
  train::trainer_config tc;
  tc.batch_size = 4;
  tc.ema_decay = 0.5;
  train::trainer tr(SoftDiffusion(op::gaussian_blur<float>(4), schedule::two_stage(sp), net_t(cfg, 3)), x, tc);
  static_assert(std::is_same_v<decltype(tr), trainer_t>);
  tr.step();
  tr.step();
  tr.save_checkpoint(dir / "r.safetensors", {}, {{nn::refunet_config::metadata_key, nn::to_json_text(cfg)}});

  const data::safetensors_file f = data::read_safetensors(dir / "r.safetensors");
  const auto& entries = tr.model().network().store().entries();
  CHECK(f.tensors.size() == 4 * entries.size());
  for (const char* name : {"temb.0.weight", "conv_in.weight", "down.0.res.0.norm1.weight", "down.0.down.conv.weight",
                           "down.1.res.0.skip.weight", "mid.attn.q.weight", "up.1.res.2.conv2.bias", "up.1.up.conv.weight",
                           "norm_out.bias", "conv_out.weight", "train.adam_v.conv_out.weight"})
    CHECK(f.contains(name));
  CHECK(f.at("conv_in.weight").shape == std::vector<std::size_t>{8, 1, 3, 3});
  nn::check_metadata_json(f, nn::refunet_config::metadata_key, nlohmann::json(cfg));

  net_t fresh(cfg, 77);
  nn::load_weights<float>(f, fresh.store());
  const auto ema = tr.average().weights();
  CHECK(std::memcmp(fresh.parameters().data(), ema.data(), ema.size() * sizeof(float)) == 0);

  nn::refunet_config wider = cfg;
  wider.base_channels = 16;
  net_t other(wider, 0);
  CHECK_THROWS_WITH(nn::load_weights<float>(f, other.store()),
                    Catch::Contains("does not match the network") &&
                        Catch::Contains("'conv_in.weight' has shape [8, 1, 3, 3] but the network expects [16, 1, 3, 3]"));
  CHECK_THROWS_WITH(nn::check_metadata_json(f, nn::refunet_config::metadata_key, nlohmann::json(wider)),
                    Catch::Contains("base_channels: checkpoint 8, expected 16"));
  nn::refunet_config no_attn = cfg;
  no_attn.attn_at_lowest = false;
  net_t plain(no_attn, 0);
  CHECK_THROWS_WITH(nn::load_weights<float>(f, plain.store()), Catch::Contains("unexpected 'mid.attn.q.weight'"));
}
