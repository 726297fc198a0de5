#pragma once
// The tool's one description of a model, read and written here and nowhere else: the network
// (refunet_config), the operator, the schedule and the training recipe (train::trainer_config,
// the noise levels, the schedule kind), the images it was trained on and its final distribution.
//
// In a checkpoint (train/trainer.hpp) it is two __metadata__ entries:
//   refunet_config  the network (nn/refunet_config.hpp)
//   softdiff        to_json(description) without "network", plus the trainer's "format",
//                   "version" and "step":
//     "seed", "batch_size", "t_min", "weighting": "unit" | "inverse-variance", "loss": "ssm" | "clean" | "dsm",
//     "ema_decay", "adam": {...}                                      (train::to_json(trainer_config))
//     "operator": {"name": "gaussian-blur", "half_size": 28}
//     "schedule_kind": "geometric" | "wasserstein" | "mse-matched"
//     "noise": {"sigma_min": 0.01, "sigma_max": 0.1, "noise_fraction": 0.2, "mode": "fixed" | "growing"}
//     "schedule": {"type": "two_stage", two_stage_parameters (schedule/two_stage.hpp)}
//               | {"type": "tabulated", "table": {softdiff-schedule JSON, schedule/tabulated.hpp}}
//     "image": [C, H, W], "data": "/path", "limit": N (when given), "pad": false,
//     "final_distribution": {"height": H, "width": W, "mean": [..], "variance": [..]}
// Checkpoints written before the recipe options existed lack "loss", "schedule_kind", "noise"
// and "noise_mode": they read as ssm, geometric (two_stage) or wasserstein (tabulated), the
// two-stage schedule's own noise, and fixed noise, which is what they were trained with.
//
// recipe_options is the one table of the recipe's command-line options: their names, help, how
// each reads and prints its value. `softdiff train` declares its options from it (a default is
// the value of a default-constructed description), parses them with it, and on resume compares
// them with the checkpoint's description through it.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "operators.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/data/dataset.hpp"
#include "softdiff/data/json.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/error.hpp"
#include "softdiff/nn/checkpoint.hpp"
#include "softdiff/nn/precision.hpp"
#include "softdiff/nn/tile_engines.hpp"
#include "softdiff/nn/refunet_config.hpp"
#include "softdiff/sampler/final_distribution.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/train/trainer.hpp"

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
  [[nodiscard]] const schedule::two_stage* two_stage() const { return std::get_if<schedule::two_stage>(&s_); }
  [[nodiscard]] const schedule::tabulated* tabulated() const { return std::get_if<schedule::tabulated>(&s_); }

  [[nodiscard]] nlohmann::json to_json() const {
    if (const auto* two = two_stage()) {
      nlohmann::json j = two->parameters();
      j["type"] = "two_stage";
      return j;
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
      if (type == "two_stage") return any_schedule(schedule::two_stage(j.get<schedule::two_stage_parameters>()));
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

/// The default two-stage schedule on H x W images (the one default of the tool: train, schedule
/// and forward-process use it): the paper's noise stage (sigma_min -> sigma_max over the first
/// noise_fraction of t, section 3.3), then the level grows geometrically from 0.01. Final level:
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

/// How the schedule was made: the two-stage default, a `softdiff schedule` file (section 3.3,
/// appendix C), or MSE matching computed from the training data (eq. 55).
enum class schedule_kind { geometric, wasserstein, mse_matched };

[[nodiscard]] inline std::string schedule_kind_name(schedule_kind k) {
  return k == schedule_kind::geometric ? "geometric" : k == schedule_kind::wasserstein ? "wasserstein" : "mse-matched";
}

[[nodiscard]] inline schedule_kind schedule_kind_from_name(const std::string& s) {
  if (s == "geometric") return schedule_kind::geometric;
  if (s == "wasserstein") return schedule_kind::wasserstein;
  if (s == "mse-matched") return schedule_kind::mse_matched;
  throw error("unknown schedule kind '" + s + "' (known: geometric, wasserstein, mse-matched)");
}

/// The noise of the forward process (section 3.3; appendix F.1 for mode growing).
struct noise_recipe {
  double sigma_min = 0.01;
  double sigma_max = 0.1;  // in softdiff's [-1, 1] image range: the paper's sigma = 0.1 on [0, 1] images is 0.2
  double noise_fraction = 0.2;
  schedule::noise_mode mode = schedule::noise_mode::fixed;
};

inline void to_json(nlohmann::json& j, const noise_recipe& n) {
  j = {{"sigma_min", n.sigma_min},
       {"sigma_max", n.sigma_max},
       {"noise_fraction", n.noise_fraction},
       {"mode", schedule::noise_mode_name(n.mode)}};
}

inline void from_json(const nlohmann::json& j, noise_recipe& n) {
  n.sigma_min = data::json_number(data::json_member(j, "sigma_min", "noise"), "\"sigma_min\"");
  n.sigma_max = data::json_number(data::json_member(j, "sigma_max", "noise"), "\"sigma_max\"");
  n.noise_fraction = data::json_number(data::json_member(j, "noise_fraction", "noise"), "\"noise_fraction\"");
  n.mode = schedule::noise_mode_from_name(j.value("mode", std::string("fixed")));
}

[[nodiscard]] inline nlohmann::json final_distribution_to_json(const sampler::final_distribution<float>& d) {
  return {{"height", d.height()}, {"width", d.width()}, {"mean", d.mean()}, {"variance", d.variance()}};
}

[[nodiscard]] inline sampler::final_distribution<float> final_distribution_from_json(const nlohmann::json& j) {
  const auto size = [&](const char* key) {
    return data::json_integer<std::size_t>(data::json_member(j, key, "final_distribution"), detail::concat("\"", key, "\""));
  };
  return sampler::final_distribution<float>(size("height"), size("width"),
                                            j.at("mean").get<std::vector<double>>(),
                                            j.at("variance").get<std::vector<double>>());
}

/// Everything a checkpoint says about its model and how it was trained.
struct model_description {
  nn::refunet_config network;
  std::string op = "gaussian-blur";
  int half_size = -1;  // kernel half size of gaussian-blur and fft-conv; -1 for the other operators
  schedule_kind kind = schedule_kind::geometric;
  noise_recipe noise;
  std::optional<any_schedule> schedule;  // resolved at the start of training
  train::trainer_config recipe;
  std::vector<std::size_t> image;  // [C, H, W]
  std::string data;
  std::size_t limit = data::no_limit;
  bool pad = false;
  std::optional<sampler::final_distribution<float>> final_distribution;
};

inline void to_json(nlohmann::json& j, const model_description& d) {
  j = train::to_json(d.recipe);
  j["network"] = d.network;
  j["operator"] = {{"name", d.op}, {"half_size", d.half_size}};
  j["schedule_kind"] = schedule_kind_name(d.kind);
  j["noise"] = d.noise;
  if (d.schedule) j["schedule"] = d.schedule->to_json();
  if (!d.image.empty()) j["image"] = d.image;
  j["data"] = d.data;
  if (d.limit != data::no_limit) j["limit"] = d.limit;
  j["pad"] = d.pad;
  if (d.final_distribution) j["final_distribution"] = final_distribution_to_json(*d.final_distribution);
}

/// Reads what to_json writes, and the checkpoints written before "loss", "schedule_kind" and
/// "noise" existed (see the top of this file). Throws softdiff::error naming the field.
inline void from_json(const nlohmann::json& j, model_description& d) {
  detail::require(j.is_object(), "the description is not a JSON object");
  auto part = [&](const char* what, auto&& read) {
    try {
      read();
    } catch (const nlohmann::json::exception& e) {
      throw error(std::string(what) + ": " + data::json_message(e));
    } catch (const error& e) {
      throw error(std::string(what) + ": " + e.what());
    } catch (const usage_error& e) {  // an unknown operator: a fault of the file, not of the command line
      throw error(std::string(what) + ": " + e.what());
    }
  };
  model_description out;
  // A description of the model alone (no "network", no trainer's fields) keeps the defaults;
  // resuming checks the trainer's fields strictly (train::trainer::load_checkpoint).
  part("network", [&] {
    if (j.contains("network")) out.network = j["network"].get<nn::refunet_config>();
  });
  if (j.contains("seed")) out.recipe = train::trainer_config_from_json(j, "training configuration");
  part("operator", [&] {
    out.op = j.at("operator").at("name").get<std::string>();
    (void)find_operator(out.op);
    if (j["operator"].contains("half_size")) out.half_size = data::json_integer<int>(j["operator"]["half_size"], "\"half_size\"");
  });
  if (j.contains("schedule")) out.schedule.emplace(any_schedule::from_json(j["schedule"], "description"));
  part("schedule_kind", [&] {
    out.kind = j.contains("schedule_kind") ? schedule_kind_from_name(j["schedule_kind"].get<std::string>())
               : out.schedule && out.schedule->tabulated() ? schedule_kind::wasserstein
                                                           : schedule_kind::geometric;
  });
  part("noise", [&] {
    if (j.contains("noise")) out.noise = j["noise"].get<noise_recipe>();
    else if (const schedule::two_stage* two = out.schedule ? out.schedule->two_stage() : nullptr) {
      const schedule::two_stage_parameters& p = two->parameters();
      out.noise = {p.sigma_min, p.sigma_max, p.noise_fraction, p.noise};
    }
  });
  part("image", [&] {
    if (j.contains("image")) {
      detail::require(j["image"].is_array(), "is a JSON ", j["image"].type_name(), ", expected [C, H, W]");
      for (const auto& e : j["image"]) out.image.push_back(data::json_integer<std::size_t>(e, "an entry"));
    }
    detail::require(out.image.empty() || out.image.size() == 3, "has ", out.image.size(), " entries, expected [C, H, W]");
  });
  part("data", [&] { out.data = j.value("data", std::string()); });
  part("limit", [&] {
    if (j.contains("limit")) out.limit = data::json_integer<std::size_t>(j["limit"], "the value");
  });
  part("pad", [&] { out.pad = j.value("pad", false); });
  part("final_distribution", [&] {
    if (j.contains("final_distribution")) out.final_distribution.emplace(final_distribution_from_json(j["final_distribution"]));
  });
  d = std::move(out);
}

/// The description of a checkpoint: its "softdiff" metadata with the network from "refunet_config"
/// (which must be there unless `need_network` is false: `softdiff schedule --ckpt` needs no network).
[[nodiscard]] inline model_description read_description(const data::safetensors_file& file, bool need_network = true) {
  const std::string where = "checkpoint '" + file.path + "'";
  const auto cfg = file.metadata.find(nn::refunet_config::metadata_key);
  detail::require(!need_network || cfg != file.metadata.end(), where, " has no __metadata__ entry '",
                  nn::refunet_config::metadata_key, "' (not a softdiff RefUNet checkpoint?)");
  nlohmann::json j = nn::metadata_json(file, "softdiff");
  try {
    detail::require(j.is_object(), "__metadata__ softdiff is not a JSON object");
    if (cfg != file.metadata.end()) j["network"] = data::parse_json(cfg->second, "__metadata__ '" + std::string(nn::refunet_config::metadata_key) + "'");
    return j.get<model_description>();
  } catch (const nlohmann::json::exception& e) {
    throw error(where + ": " + data::json_message(e));
  } catch (const error& e) {
    throw error(where + ": " + e.what());
  }
}

/// What save_checkpoint takes: the "softdiff" JSON (without the network) and the
/// "refunet_config" entry.
[[nodiscard]] inline std::pair<nlohmann::json, std::map<std::string, std::string>> checkpoint_metadata(
    const model_description& d) {
  nlohmann::json j = d;
  j.erase("network");
  return {std::move(j), {{nn::refunet_config::metadata_key, nn::to_json_text(d.network)}}};
}

/// One recipe option of `softdiff train`: the value a description holds, as the option's text
/// (`value`), and how the option's text sets it (`set`, throwing a usage_error that names the
/// option and the value).
struct recipe_option {
  const char* name;
  const char* value_name;
  const char* help;
  std::string (*value)(const model_description&);
  void (*set)(model_description&, const std::string& text);
};

namespace option_text {

[[nodiscard]] inline std::string number_text(double v) { return nlohmann::json(v).dump(); }

[[nodiscard]] inline double parse_number(const char* option, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v))
    throw usage_error(std::string("--") + option + " " + text + ": not a finite number");
  return v;
}

[[nodiscard]] inline long parse_integer(const char* option, const std::string& text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    throw usage_error(std::string("--") + option + " " + text + ": expected an integer in [" + std::to_string(lo) +
                      ", " + std::to_string(hi) + "]");
  return v;
}

/// Runs `parse`, turning a softdiff::error (an unknown name) into a usage_error naming the option.
template <class F>
auto named(const char* option, const std::string& text, F&& parse) {
  try {
    return parse();
  } catch (const error& e) {
    throw usage_error(std::string("--") + option + " " + text + ": " + e.what());
  }
}

}  // namespace option_text

inline const std::vector<recipe_option>& recipe_options() {
  using d_t = model_description;
  using s_t = const std::string&;
  static const std::vector<recipe_option> table{
      {"op", "NAME", "corruption operator (see softdiff corrupt --help)", [](const d_t& d) { return d.op; },
       [](d_t& d, s_t s) {
         (void)find_operator(s);
         d.op = s;
       }},
      {"seed", "S", "seed of initialisation, minibatches, times and noise",
       [](const d_t& d) { return std::to_string(d.recipe.seed); },
       [](d_t& d, s_t s) { d.recipe.seed = static_cast<std::uint64_t>(option_text::parse_integer("seed", s, 0, LONG_MAX)); }},
      {"batch", "B", "images per step", [](const d_t& d) { return std::to_string(d.recipe.batch_size); },
       [](d_t& d, s_t s) { d.recipe.batch_size = static_cast<std::size_t>(option_text::parse_integer("batch", s, 1, 1 << 20)); }},
      {"lr", "LR", "Adam learning rate", [](const d_t& d) { return option_text::number_text(d.recipe.adam.lr); },
       [](d_t& d, s_t s) {
         d.recipe.adam.lr = option_text::parse_number("lr", s);
         if (!(d.recipe.adam.lr > 0)) throw usage_error("--lr " + s + ": must be > 0");
       }},
      {"warmup", "N", "linear learning-rate warm-up steps", [](const d_t& d) { return std::to_string(d.recipe.adam.warmup_steps); },
       [](d_t& d, s_t s) { d.recipe.adam.warmup_steps = option_text::parse_integer("warmup", s, 0, LONG_MAX); }},
      {"ema-decay", "D", "decay of the weights' moving average used for sampling",
       [](const d_t& d) { return option_text::number_text(d.recipe.ema_decay); },
       [](d_t& d, s_t s) {
         d.recipe.ema_decay = option_text::parse_number("ema-decay", s);
         if (!(d.recipe.ema_decay >= 0 && d.recipe.ema_decay < 1)) throw usage_error("--ema-decay " + s + ": must lie in [0, 1)");
       }},
      {"precision", "P", "arithmetic of the 3x3 and 1x1 convolutions with 16k channels, forward and backward: float32, or bf16 "
                         "(Intel AMX tiles; weights, gradients and Adam stay float32)",
       [](const d_t& d) { return std::string(nn::precision_name(d.recipe.arithmetic)); },
       [](d_t& d, s_t s) {
         d.recipe.arithmetic = option_text::named("precision", s, [&] {
           const nn::precision p = nn::parse_precision(s);
           if (p == nn::precision::bf16) nn::require_bf16_engine(nn::bf16_engine::amx);  // names the missing feature
           return p;
         });
       }},
      {"weighting", "W", "loss weighting w(t): unit or inverse-variance (1 / sigma_t^2, appendix D)",
       [](const d_t& d) { return train::weighting_name(d.recipe.weighting); },
       [](d_t& d, s_t s) { d.recipe.weighting = option_text::named("weighting", s, [&] { return train::weighting_from_name(s); }); }},
      {"loss", "NAME", "ssm (Soft Score Matching, eq. 12), clean (clean-image loss) or dsm (eq. 7 as written)",
       [](const d_t& d) { return loss::loss_kind_name(d.recipe.loss); },
       [](d_t& d, s_t s) { d.recipe.loss = option_text::named("loss", s, [&] { return loss::loss_kind_from_name(s); }); }},
      {"sigma-min", "S", "noise sigma at the start of the noise stage (images in [-1, 1])",
       [](const d_t& d) { return option_text::number_text(d.noise.sigma_min); },
       [](d_t& d, s_t s) {
         d.noise.sigma_min = option_text::parse_number("sigma-min", s);
         if (!(d.noise.sigma_min > 0)) throw usage_error("--sigma-min " + s + ": must be > 0");
       }},
      {"sigma-max", "S", "noise sigma at the end of the noise stage (images in [-1, 1]: the paper's 0.1 is 0.2 here)",
       [](const d_t& d) { return option_text::number_text(d.noise.sigma_max); },
       [](d_t& d, s_t s) { d.noise.sigma_max = option_text::parse_number("sigma-max", s); }},
      {"noise-fraction", "F", "share of t in (0, 1) spent raising the noise (noise fixed)",
       [](const d_t& d) { return option_text::number_text(d.noise.noise_fraction); },
       [](d_t& d, s_t s) {
         d.noise.noise_fraction = option_text::parse_number("noise-fraction", s);
         if (!(d.noise.noise_fraction > 0 && d.noise.noise_fraction < 1))
           throw usage_error("--noise-fraction " + s + ": must lie in (0, 1)");
       }},
      {"noise", "MODE", "fixed (noise stage, then sigma_max while the level grows) or growing (both grow over (0, 1], "
                        "appendix F.1)",
       [](const d_t& d) { return schedule::noise_mode_name(d.noise.mode); },
       [](d_t& d, s_t s) { d.noise.mode = option_text::named("noise", s, [&] { return schedule::noise_mode_from_name(s); }); }},
      {"schedule-kind", "KIND", "geometric (two-stage), wasserstein (--schedule FILE) or mse-matched (eq. 55, from the data)",
       [](const d_t& d) { return schedule_kind_name(d.kind); },
       [](d_t& d, s_t s) { d.kind = option_text::named("schedule-kind", s, [&] { return schedule_kind_from_name(s); }); }},
      {"base-channels", "C", "RefUNet base channels", [](const d_t& d) { return std::to_string(d.network.base_channels); },
       [](d_t& d, s_t s) { d.network.base_channels = static_cast<std::size_t>(option_text::parse_integer("base-channels", s, 4, 4096)); }},
      {"channel-mult", "LIST", "RefUNet channel multipliers per level",
       [](const d_t& d) {
         std::string out;
         for (std::size_t m : d.network.channel_mult) {
           if (!out.empty()) out += ',';
           out += std::to_string(m);
         }
         return out;
       },
       [](d_t& d, s_t s) {
         std::vector<std::size_t> out;
         std::stringstream ss(s);
         for (std::string item; std::getline(ss, item, ',');) {
           char* end = nullptr;
           const long v = std::strtol(item.c_str(), &end, 10);
           if (item.empty() || *end != '\0' || v <= 0)
             throw usage_error("--channel-mult " + s + ": not a list of positive integers like 1,2,2");
           out.push_back(static_cast<std::size_t>(v));
         }
         if (out.empty()) throw usage_error("--channel-mult is empty");
         d.network.channel_mult = std::move(out);
       }},
  };
  return table;
}

/// Throws a usage_error naming the options when the recipe's parts do not fit together.
inline void check_recipe(const model_description& d) {
  if (d.noise.sigma_max < d.noise.sigma_min)
    throw usage_error("--sigma-max " + option_text::number_text(d.noise.sigma_max) + " is below --sigma-min " +
                      option_text::number_text(d.noise.sigma_min));
  if (d.noise.mode == schedule::noise_mode::growing && d.kind != schedule_kind::geometric)
    throw usage_error("--noise growing applies to --schedule-kind geometric, not " + schedule_kind_name(d.kind));
}

}  // namespace softdiff::cli
