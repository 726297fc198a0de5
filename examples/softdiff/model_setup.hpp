#pragma once
// What the train, sample, denoise and eval subcommands share: the model type of the tool
// (any operator, a two-stage or tabulated schedule, RefUNet) and a model loaded from a
// checkpoint through its description (model_description.hpp, where the checkpoint's metadata
// is read and written), so sampling needs neither the data nor the command line of the
// training run.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "model_description.hpp"
#include "operators.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/data/json.hpp"
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

using model_type = SoftDiffusion<any_operator<float>, any_schedule, nn::refunet<float>>;

/// The operator a description names.
[[nodiscard]] inline any_operator<float> make_operator(const model_description& d) {
  return make_operator<float>(d.op, find_operator(d.op).takes_half_size ? d.half_size : -1);
}

/// A model read from a checkpoint for sampling: the EMA weights in the network.
struct loaded_model {
  model_type model;
  nn::refunet_config net;
  model_description description;
  std::int64_t step = 0;
  std::string trained_precision = "float32";  // "precision" of the checkpoint's metadata
};

/// --precision of sample and eval: the arithmetic of the network's 3 x 3 and 1 x 1 convolutions while
/// sampling (nn/precision.hpp). bf16 needs AMX and is refused naming the missing CPU feature.
inline constexpr const char* precision_help =
    "arithmetic of the network's 3x3 and 1x1 convolutions: float32, or bf16 (Intel AMX only: faster, samples "
    "differ slightly; docs/performance.md)";

/// Sets the network's precision from --precision and says which arithmetic runs.
inline nn::precision apply_precision(loaded_model& m, const std::string& text, std::ostream& log) {
  nn::precision p = nn::precision::float32;
  try {
    p = nn::parse_precision(text);
    m.model.network().set_precision(p);
  } catch (const error& e) {
    throw usage_error(std::string("--precision ") + text + ": " + e.what());
  }
  log << "precision: " << nn::precision_name(p)
      << (p == nn::precision::bf16 ? " (AMX tiles for the 3x3 and 1x1 convolutions with 16k channels; the rest float32)" : "")
      << ", checkpoint trained in " << m.trained_precision << "\n";
  return p;
}

/// Reads `path`, builds the network its refunet_config describes, loads the sampling (EMA)
/// weights after checking every name, shape and dtype, and restores operator, schedule and
/// final distribution from the description. The network comes frozen (refunet::freeze): the
/// commands that load a checkpoint only sample from it.
[[nodiscard]] inline loaded_model load_model(const std::filesystem::path& path) {
  const data::safetensors_file file = data::read_safetensors(path);
  const std::string where = "checkpoint '" + path.string() + "'";
  model_description d = read_description(file);
  detail::require(d.schedule.has_value() && d.final_distribution.has_value(), where,
                  ": __metadata__ softdiff lacks \"schedule\" or \"final_distribution\"");
  nn::refunet<float> net(d.network);
  nn::load_weights<float>(file, net.store());
  model_type model(make_operator(d), *d.schedule, std::move(net));
  model.set_final_distribution(*d.final_distribution);
  model.network().freeze(true);  // inference only: the replicas and the bf16 packing are set up once
  const nlohmann::json meta = nn::metadata_json(file, "softdiff");
  const std::int64_t step =
      meta.contains("step") ? data::json_integer<std::int64_t>(meta["step"], where + ": __metadata__ softdiff \"step\"") : 0;
  nn::refunet_config cfg = d.network;
  const std::string precision = meta.contains("precision") && meta["precision"].is_string()
                                    ? meta["precision"].get<std::string>()
                                    : "float32";  // checkpoints from before the field: float32
  return {std::move(model), std::move(cfg), std::move(d), step, precision};
}

}  // namespace softdiff::cli
