#pragma once
// Configuration of the evaluation classifier (classifier.hpp) and its JSON form, stored in the
// weights file's __metadata__ entry "classifier_config".
#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "softdiff/data/json.hpp"
#include "softdiff/error.hpp"

namespace softdiff::nn {

struct classifier_config {
  std::size_t in_channels = 1, height = 28, width = 28, classes = 10;
  // Output channels of the four 3x3 convolutions (strides 1, 2, 2, 1) and GroupNorm's groups.
  std::size_t channels1 = 32, channels2 = 64, channels3 = 64, channels4 = 64, groups = 8;
  std::size_t feature_count = 128;  // width of the penultimate layer (the Frechet features)

  static constexpr const char* metadata_key = "classifier_config";

  /// Throws softdiff::error naming the first field that cannot describe a network.
  void validate(const std::string& where = "classifier_config") const {
    using ::softdiff::detail::require;
    require(in_channels > 0 && height > 0 && width > 0, where, ": input ", in_channels, "x", height, "x", width,
            " must have positive extents");
    require(classes >= 2, where, ": ", classes, " classes; need at least 2");
    require(feature_count > 0, where, ": feature_count must be positive");
    for (std::size_t c : {channels1, channels2, channels3, channels4})
      require(groups > 0 && c > 0 && c % groups == 0, where, ": ", c, " channels cannot be split into ", groups,
              " groups");
  }

  friend bool operator==(const classifier_config&, const classifier_config&) = default;
};

inline void to_json(nlohmann::json& j, const classifier_config& c) {
  j = nlohmann::json{{"in_channels", c.in_channels}, {"height", c.height},       {"width", c.width},
                     {"classes", c.classes},         {"channels1", c.channels1}, {"channels2", c.channels2},
                     {"channels3", c.channels3},     {"channels4", c.channels4}, {"groups", c.groups},
                     {"feature_count", c.feature_count}};
}

/// Reads every key of to_json (all required); an unknown key, a missing one or a value that is
/// not a non-negative integer throws softdiff::error naming it; the result is validated.
inline void from_json(const nlohmann::json& j, classifier_config& c) {
  using ::softdiff::detail::require;
  require(j.is_object(), "classifier_config: expected a JSON object, got ", j.type_name());
  classifier_config out;
  const std::pair<const char*, std::size_t*> fields[] = {
      {"in_channels", &out.in_channels}, {"height", &out.height},       {"width", &out.width},
      {"classes", &out.classes},         {"channels1", &out.channels1}, {"channels2", &out.channels2},
      {"channels3", &out.channels3},     {"channels4", &out.channels4}, {"groups", &out.groups},
      {"feature_count", &out.feature_count}};
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const auto& f : fields) known = known || key == f.first;
    require(known, "classifier_config: unknown key \"", key, "\"");
  }
  for (const auto& [key, field] : fields) {
    require(j.contains(key), "classifier_config: missing \"", key, "\"");
    const auto& v = j.at(key);
    SOFTDIFF_REQUIRE(v.is_number_unsigned() || (v.is_number_integer() && v.get<long long>() >= 0), "classifier_config: \"",
            key, "\" must be a non-negative integer, got ", data::json_excerpt(v));
    *field = v.get<std::size_t>();
  }
  out.validate();
  c = out;
}

}  // namespace softdiff::nn
