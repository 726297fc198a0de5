#pragma once
// What the train, sample and denoise subcommands share: the model type of the tool
// (any operator, a two-stage or tabulated schedule, RefUNet), the schedule chosen for an
// operator and image size, and the checkpoint's description of a model.
//
// A checkpoint (nn/checkpoint.hpp, train/trainer.hpp) carries two metadata entries:
//   refunet_config  the network's configuration (nn/refunet_config.hpp)
//   softdiff        JSON: the trainer's fields (step, seed, batch_size, t_min, weighting,
//                   ema_decay, adam) and the model description written here:
//     "operator": {"name": "gaussian-blur", "half_size": 28}
//     "schedule": {"type": "two_stage", "sigma_min": .., "sigma_max": .., "noise_fraction": ..,
//                  "level_min": .., "level_max": .., "level_growth": "geometric"}
//               | {"type": "tabulated", "table": {softdiff-schedule JSON, schedule/tabulated.hpp}}
//     "image": [C, H, W], "data": "/path", "pad": false,
//     "final_distribution": {"height": H, "width": W, "mean": [..], "variance": [..]}
// so sampling needs neither the data nor the command line of the training run.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "operators.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/error.hpp"
#include "softdiff/nn/checkpoint.hpp"
#include "softdiff/nn/refunet.hpp"
#include "softdiff/nn/refunet_config.hpp"
#include "softdiff/sampler/final_distribution.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/soft_diffusion.hpp"

namespace softdiff::cli {

/// A two-stage or a tabulated schedule behind one type (a Schedule).
class any_schedule {
public:
  explicit any_schedule(schedule::two_stage s) : s_(std::move(s)) {}
  explicit any_schedule(schedule::tabulated s) : s_(std::move(s)) {}
  [[nodiscard]] double level(double t) const {
    return std::visit([t](const auto& s) { return static_cast<double>(s.level(t)); }, s_);
  }
  [[nodiscard]] double sigma(double t) const {
    return std::visit([t](const auto& s) { return static_cast<double>(s.sigma(t)); }, s_);
  }
  [[nodiscard]] std::string name() const {
    return std::visit([](const auto& s) { return std::string(s.name()); }, s_);
  }

  [[nodiscard]] nlohmann::json to_json() const {
    if (const auto* two = std::get_if<schedule::two_stage>(&s_)) {
      const schedule::two_stage_parameters& p = two->parameters();
      return {{"type", "two_stage"},
              {"sigma_min", p.sigma_min},
              {"sigma_max", p.sigma_max},
              {"noise_fraction", p.noise_fraction},
              {"level_min", p.level_min},
              {"level_max", p.level_max},
              {"level_growth", p.level_growth == schedule::growth::geometric ? "geometric" : "linear"}};
    }
    const auto& tab = std::get<schedule::tabulated>(s_);
    return {{"type", "tabulated"},
            {"table",
             {{"format", "softdiff-schedule"},
              {"version", 1},
              {"operator", tab.operator_name()},
              {"t", tab.times()},
              {"level", tab.levels()},
              {"sigma", tab.sigmas()}}}};
  }

  [[nodiscard]] static any_schedule from_json(const nlohmann::json& j, const std::string& where) {
    try {
      const std::string type = j.at("type").get<std::string>();
      if (type == "two_stage") {
        schedule::two_stage_parameters p;
        p.sigma_min = j.at("sigma_min").get<double>();
        p.sigma_max = j.at("sigma_max").get<double>();
        p.noise_fraction = j.at("noise_fraction").get<double>();
        p.level_min = j.at("level_min").get<double>();
        p.level_max = j.at("level_max").get<double>();
        const std::string g = j.at("level_growth").get<std::string>();
        detail::require(g == "geometric" || g == "linear", "unknown level_growth '", g, "'");
        p.level_growth = g == "geometric" ? schedule::growth::geometric : schedule::growth::linear;
        return any_schedule(schedule::two_stage(p));
      }
      detail::require(type == "tabulated", "unknown schedule type '", type, "' (two_stage or tabulated)");
      const nlohmann::json& t = j.at("table");
      return any_schedule(schedule::tabulated(t.at("t").get<std::vector<double>>(),
                                              t.at("level").get<std::vector<double>>(),
                                              t.at("sigma").get<std::vector<double>>(),
                                              t.value("operator", std::string())));
    } catch (const nlohmann::json::exception& e) {
      throw error(where + ": schedule: " + e.what());
    } catch (const error& e) {
      throw error(where + ": schedule: " + e.what());
    }
  }

private:
  std::variant<schedule::two_stage, schedule::tabulated> s_;
};

static_assert(Schedule<any_schedule>);

using model_type = SoftDiffusion<any_operator<float>, any_schedule, nn::refunet<float>>;

/// The training defaults on H x W images: the paper's two-stage schedule (noise 0.01 -> 0.1
/// over the first 20% of t, then the level grows geometrically from 0.01). Final level:
///   gaussian-blur, fft-conv (zero padding): std 18 * max(H, W) / 32, CIFAR-10's 18 at 32 px
///     (appendix G) scaled, 15.75 for 28 x 28;
///   dct-blur (reflecting boundary): sigma_B = max(H, W), which damps the lowest non-constant
///     cosine by exp(-pi^2 / 2) < 1%, so C_1 x is the mean colour that appendix D assumes.
/// Mask and scale grow linearly to 1.
[[nodiscard]] inline schedule::two_stage_parameters default_training_schedule(const std::string& op, std::size_t height,
                                                                             std::size_t width) {
  schedule::two_stage_parameters p;
  const bool blur = op == "fft-conv" || op == "dct-blur" || op == "gaussian-blur";
  if (blur) {
    p.level_growth = schedule::growth::geometric;
    p.level_min = 0.01;
    const auto size = static_cast<double>(std::max(height, width));
    p.level_max = op == "dct-blur" ? size : 18.0 * size / 32.0;
  } else {
    p.level_growth = schedule::growth::linear;
    p.level_min = 0.0;
    p.level_max = op == "identity" ? 0.0 : 1.0;
  }
  return p;
}

/// The operator of a description: {"name": ..., "half_size": h or -1}.
[[nodiscard]] inline any_operator<float> operator_from_json(const nlohmann::json& j, const std::string& where) {
  try {
    const std::string name = j.at("name").get<std::string>();
    const int half = j.at("half_size").get<int>();
    return make_operator<float>(name, find_operator(name).takes_half_size ? half : -1);
  } catch (const nlohmann::json::exception& e) {
    throw error(where + ": operator: " + e.what());
  } catch (const usage_error& e) {
    throw error(where + ": operator: " + e.what());
  }
}

[[nodiscard]] inline nlohmann::json final_distribution_to_json(const sampler::final_distribution<float>& d) {
  return {{"height", d.height()}, {"width", d.width()}, {"mean", d.mean()}, {"variance", d.variance()}};
}

[[nodiscard]] inline sampler::final_distribution<float> final_distribution_from_json(const nlohmann::json& j,
                                                                                    const std::string& where) {
  try {
    return sampler::final_distribution<float>(j.at("height").get<std::size_t>(), j.at("width").get<std::size_t>(),
                                              j.at("mean").get<std::vector<double>>(),
                                              j.at("variance").get<std::vector<double>>());
  } catch (const nlohmann::json::exception& e) {
    throw error(where + ": final_distribution: " + e.what());
  }
}

/// A model read from a checkpoint for sampling: the EMA weights in the network.
struct loaded_model {
  model_type model;
  nn::refunet_config net;
  nlohmann::json description;  // the "softdiff" metadata
  std::int64_t step = 0;
};

/// Reads `path`, builds the network its refunet_config describes, loads the sampling (EMA)
/// weights after checking every name, shape and dtype, and restores operator, schedule and
/// final distribution from the "softdiff" metadata.
[[nodiscard]] inline loaded_model load_model(const std::filesystem::path& path) {
  const data::safetensors_file file = data::read_safetensors(path);
  const std::string where = "checkpoint '" + path.string() + "'";
  const auto cfg_it = file.metadata.find(nn::refunet_config::metadata_key);
  detail::require(cfg_it != file.metadata.end(), where, " has no __metadata__ entry '",
                  nn::refunet_config::metadata_key, "' (not a softdiff RefUNet checkpoint?)");
  nn::refunet_config cfg;
  try {
    cfg = nn::refunet_config_from_json_text(cfg_it->second);
  } catch (const error& e) {
    throw error(where + ": " + e.what());
  }
  const nlohmann::json meta = nn::metadata_json(file, "softdiff");
  detail::require(meta.is_object() && meta.contains("operator") && meta.contains("schedule") &&
                      meta.contains("final_distribution"),
                  where, ": __metadata__ softdiff lacks \"operator\", \"schedule\" or \"final_distribution\"");
  nn::refunet<float> net(cfg);
  nn::load_weights<float>(file, net.store());
  model_type model(operator_from_json(meta["operator"], where), any_schedule::from_json(meta["schedule"], where),
                   std::move(net));
  model.set_final_distribution(final_distribution_from_json(meta["final_distribution"], where));
  const std::int64_t step = meta.value("step", std::int64_t{0});
  return {std::move(model), cfg, meta, step};
}

}  // namespace softdiff::cli
