#pragma once
// The configuration of RefUNet (docs/refunet.md, "Configuration"), its validation,
// and its JSON form: the text stored under the checkpoint metadata key `refunet_config`
// and read back by tests/refunet/make_golden.py's files. JSON keys are the spec's field
// names: {"in_channels": 1, "base_channels": 32, "channel_mult": [1, 2, 2],
//         "num_res_blocks": 2, "attn_at_lowest": true, "groups": 8, "norm_eps": 1e-05}
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "softdiff/data/json.hpp"
#include "softdiff/error.hpp"

namespace softdiff::nn {

struct refunet_config {
  std::size_t in_channels = 1;                    // image channels; the output has as many
  std::size_t base_channels = 32;                 // c, channels at the first level
  std::vector<std::size_t> channel_mult{1, 2, 2};  // level i has c * channel_mult[i] channels
  std::size_t num_res_blocks = 2;                 // per encoder level (the decoder has one more)
  bool attn_at_lowest = true;                     // one self-attention block in the middle
  std::size_t groups = 8;                         // GroupNorm groups
  double norm_eps = 1e-5;                         // GroupNorm epsilon

  /// Key of the checkpoint's __metadata__ entry that holds to_json(*this) as text.
  static constexpr const char* metadata_key = "refunet_config";

  [[nodiscard]] std::size_t levels() const { return channel_mult.size(); }
  /// Channels at level i (c * channel_mult[i]).
  [[nodiscard]] std::size_t channels_at(std::size_t level) const { return base_channels * channel_mult.at(level); }
  /// Image height and width must be multiples of this: 2^(levels - 1) (4 for three levels).
  [[nodiscard]] std::size_t size_multiple() const { return std::size_t{1} << (levels() - 1); }

  /// Throws softdiff::error naming the first field that the network cannot be built with.
  void validate() const {
    using ::softdiff::detail::require;
    require(in_channels > 0, "refunet_config: in_channels must be positive, got ", in_channels);
    require(base_channels >= 4 && base_channels % 2 == 0, "refunet_config: base_channels ", base_channels,
            " must be even and >= 4 (the time embedding uses base_channels / 2 frequencies, at least 2)");
    require(!channel_mult.empty() && channel_mult.size() <= 8, "refunet_config: channel_mult has ",
            channel_mult.size(), " levels, expected 1 to 8");
    require(num_res_blocks >= 1, "refunet_config: num_res_blocks must be >= 1, got ", num_res_blocks);
    require(groups > 0, "refunet_config: groups must be positive, got ", groups);
    require(base_channels % groups == 0, "refunet_config: base_channels ", base_channels,
            " is not divisible by groups ", groups, " (norm_out is GroupNorm(groups, base_channels))");
    for (std::size_t i = 0; i < channel_mult.size(); ++i) {
      require(channel_mult[i] > 0, "refunet_config: channel_mult[", i, "] must be positive, got 0");
      require(channels_at(i) % groups == 0, "refunet_config: level ", i, " has base_channels * channel_mult[", i,
              "] = ", channels_at(i), " channels, not divisible by groups ", groups);
    }
    require(std::isfinite(norm_eps) && norm_eps > 0, "refunet_config: norm_eps must be positive and finite, got ",
            norm_eps);
    // A configuration read from a file may ask for any size: refuse what no machine could hold
    // before anything is allocated (an upper bound, computed in floating point so it cannot wrap).
    require(parameter_bound() <= max_parameters, "refunet_config: base_channels ", base_channels, ", in_channels ",
            in_channels, ", ", levels(), " levels and num_res_blocks ", num_res_blocks, " ask for up to ",
            parameter_bound(), " parameters, more than the ", max_parameters, " a RefUNet may have");
  }

  /// The most parameters a RefUNet may have (8 GiB of float32 weights).
  static constexpr double max_parameters = 2147483648.0;
  /// An upper bound of the parameter count: every level as wide as the widest, every 3x3
  /// convolution of a residual block (2 per block, num_res_blocks + 1 blocks per level on each
  /// side) taking twice its channels in, plus the input and output convolutions.
  [[nodiscard]] double parameter_bound() const {
    double widest = 0;
    for (std::size_t i = 0; i < levels(); ++i)
      widest = std::max(widest, static_cast<double>(base_channels) * static_cast<double>(channel_mult[i]));
    const double c = widest, blocks = 2.0 * (static_cast<double>(num_res_blocks) + 1.0) * static_cast<double>(levels());
    return blocks * 2.0 * 9.0 * (2.0 * c) * (c + 1.0) + 2.0 * 9.0 * (static_cast<double>(in_channels) + 1.0) * (c + 1.0);
  }

  /// Throws softdiff::error unless an H x W image fits: both positive multiples of 2^(levels - 1).
  void check_image_size(std::size_t height, std::size_t width, const char* where = "refunet") const {
    const std::size_t m = size_multiple();
    ::softdiff::detail::require(height > 0 && width > 0 && height % m == 0 && width % m == 0, where, ": image size ",
                                height, "x", width, " is not a multiple of 2^(levels - 1) = ", m, " (", levels(),
                                " levels); pad or resize the images, e.g. 28 -> 28 or 32 for 3 levels");
  }

  friend bool operator==(const refunet_config&, const refunet_config&) = default;
};

inline void to_json(nlohmann::json& j, const refunet_config& c) {
  j = nlohmann::json{{"in_channels", c.in_channels},       {"base_channels", c.base_channels},
                     {"channel_mult", c.channel_mult},     {"num_res_blocks", c.num_res_blocks},
                     {"attn_at_lowest", c.attn_at_lowest}, {"groups", c.groups},
                     {"norm_eps", c.norm_eps}};
}

/// Reads the keys of to_json; a missing key keeps the spec's default, an unknown key or a
/// value of the wrong type throws softdiff::error naming it; the result is validated.
inline void from_json(const nlohmann::json& j, refunet_config& c) {
  using ::softdiff::detail::require;
  require(j.is_object(), "refunet_config: expected a JSON object, got ", j.type_name());
  refunet_config out;
  auto count = [&](const char* key, std::size_t& field) {
    if (!j.contains(key)) return;
    const auto& v = j.at(key);
    SOFTDIFF_REQUIRE(v.is_number_unsigned() || (v.is_number_integer() && v.get<long long>() >= 0),
            "refunet_config: \"", key, "\" must be a non-negative integer, got ", data::json_excerpt(v));
    field = v.get<std::size_t>();
  };
  for (const auto& [key, value] : j.items())
    require(key == "in_channels" || key == "base_channels" || key == "channel_mult" || key == "num_res_blocks" ||
                key == "attn_at_lowest" || key == "groups" || key == "norm_eps",
            "refunet_config: unknown key \"", key, "\"");
  count("in_channels", out.in_channels);
  count("base_channels", out.base_channels);
  count("num_res_blocks", out.num_res_blocks);
  count("groups", out.groups);
  if (j.contains("channel_mult")) {
    const auto& m = j.at("channel_mult");
    SOFTDIFF_REQUIRE(m.is_array(), "refunet_config: \"channel_mult\" must be an array of integers, got ", data::json_excerpt(m));
    out.channel_mult.clear();
    for (const auto& e : m) {
      SOFTDIFF_REQUIRE(e.is_number_unsigned() || (e.is_number_integer() && e.get<long long>() >= 0),
              "refunet_config: \"channel_mult\" entry ", data::json_excerpt(e), " is not a non-negative integer");
      out.channel_mult.push_back(e.get<std::size_t>());
    }
  }
  if (j.contains("attn_at_lowest")) {
    const auto& v = j.at("attn_at_lowest");
    SOFTDIFF_REQUIRE(v.is_boolean(), "refunet_config: \"attn_at_lowest\" must be true or false, got ", data::json_excerpt(v));
    out.attn_at_lowest = v.get<bool>();
  }
  if (j.contains("norm_eps")) {
    const auto& v = j.at("norm_eps");
    SOFTDIFF_REQUIRE(v.is_number(), "refunet_config: \"norm_eps\" must be a number, got ", data::json_excerpt(v));
    out.norm_eps = v.get<double>();
  }
  out.validate();
  c = std::move(out);
}

/// The JSON text of `c` (the checkpoint metadata value).
[[nodiscard]] inline std::string to_json_text(const refunet_config& c) { return nlohmann::json(c).dump(); }

/// Parses and validates a configuration from JSON text; malformed text throws softdiff::error.
[[nodiscard]] inline refunet_config refunet_config_from_json_text(const std::string& text) {
  return data::parse_json(text, "refunet_config: the text").get<refunet_config>();
}

}  // namespace softdiff::nn
