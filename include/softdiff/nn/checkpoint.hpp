#pragma once
// Network checkpoints in safetensors (data/safetensors.hpp), laid out by a parameter_store:
// every registered tensor is stored under its checkpoint name (docs/refunet.md, e.g.
// "down.0.res.1.conv1.weight") with its PyTorch shape, so the file loads into the PyTorch
// module of tests/refunet/refunet_torch.py once the keys starting with "train." are dropped.
//
// One file holds what sampling needs and what resuming training needs:
//   "<name>"                the weights used for sampling (the EMA of the weights when trained)
//   "train.weights.<name>"  the raw weights the optimiser updates
//   "train.adam_m.<name>"   Adam's first moment
//   "train.adam_v.<name>"   Adam's second moment
// Every name is a prefix (`weights_prefix`, ...) plus the parameter's name. Tensors are F32
// for float networks and F64 for double ones.
//
// Loading validates the whole file before copying anything and reports every problem at once:
// missing names, unexpected names, shapes ([a, b] vs [c, d]) and dtypes.
// check_metadata_json compares a JSON metadata entry (e.g. "refunet_config") field by field, so
// a checkpoint for another configuration says which fields differ.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "softdiff/data/json.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/error.hpp"
#include "softdiff/nn/parameter_store.hpp"

namespace softdiff::nn {

inline constexpr std::string_view training_prefix = "train.";
inline constexpr std::string_view weights_prefix = "train.weights.";
inline constexpr std::string_view adam_m_prefix = "train.adam_m.";
inline constexpr std::string_view adam_v_prefix = "train.adam_v.";

/// The safetensors dtype softdiff stores T as.
template <class T>
[[nodiscard]] constexpr std::string_view checkpoint_dtype() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "checkpoints hold float or double");
  return std::is_same_v<T, float> ? "F32" : "F64";
}

namespace detail {

/// Collects problems and throws them as one message (the first `shown` of each kind in full).
class problem_list {
public:
  explicit problem_list(std::string where) : where_(std::move(where)) {}
  void add(std::string problem) { problems_.push_back(std::move(problem)); }
  void throw_if_any() const {
    if (problems_.empty()) return;
    constexpr std::size_t shown = 12;
    std::string msg = where_ + ": " + std::to_string(problems_.size()) +
                      (problems_.size() == 1 ? " problem: " : " problems: ");
    for (std::size_t i = 0; i < std::min(shown, problems_.size()); ++i) msg += (i ? "; " : "") + problems_[i];
    if (problems_.size() > shown) msg += "; ... and " + std::to_string(problems_.size() - shown) + " more";
    throw error(msg);
  }

private:
  std::string where_;
  std::vector<std::string> problems_;
};

[[nodiscard]] inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace detail

/// Adds one tensor per layout entry, named prefix + entry name, with values from the flat span
/// `values` (laid out as the store lays out its parameters).
template <class T>
void add_tensors(data::safetensors_writer& writer, const std::vector<parameter_entry>& layout, std::string_view prefix,
                 std::span<const T> values) {
  for (const parameter_entry& e : layout) {
    softdiff::detail::require(e.offset + e.size <= values.size(), "nn::add_tensors: '", e.name, "' lies at [", e.offset, ", ",
                    e.offset + e.size, ") past the ", values.size(), " values given");
    writer.add(std::string(prefix) + e.name, e.shape, values.subspan(e.offset, e.size));
  }
}

/// Checks that `file` holds, for every prefix in `prefixes`, exactly the tensors of `layout`
/// (prefix + name) with their shapes and dtype checkpoint_dtype<T>(). A name that is none of
/// these is unexpected, except names starting with "train." when no prefix asked for them
/// (an inference load ignores the training state). Every problem is reported in one error.
template <class T>
void check_tensors(const data::safetensors_file& file, const std::vector<parameter_entry>& layout,
                   std::span<const std::string_view> prefixes) {
  detail::problem_list problems("checkpoint '" + file.path + "' does not match the network");
  std::set<std::string, std::less<>> expected;
  bool wants_training = false;
  for (std::string_view prefix : prefixes) {
    wants_training = wants_training || detail::starts_with(prefix, training_prefix);
    for (const parameter_entry& e : layout) {
      const std::string name = std::string(prefix) + e.name;
      expected.insert(name);
      const auto it = file.tensors.find(name);
      if (it == file.tensors.end()) {
        problems.add("missing '" + name + "' (shape " + data::detail::shape_string(e.shape) + ")");
        continue;
      }
      if (it->second.shape != e.shape)
        problems.add("'" + name + "' has shape " + data::detail::shape_string(it->second.shape) +
                     " but the network expects " + data::detail::shape_string(e.shape));
      if (it->second.dtype != checkpoint_dtype<T>())
        problems.add("'" + name + "' has dtype " + it->second.dtype + ", expected " +
                     std::string(checkpoint_dtype<T>()));
    }
  }
  for (const auto& [name, tensor] : file.tensors) {
    if (expected.contains(name)) continue;
    if (!wants_training && detail::starts_with(name, training_prefix)) continue;
    problems.add("unexpected '" + name + "' (shape " + data::detail::shape_string(tensor.shape) + ")");
  }
  problems.throw_if_any();
}

template <class T>
void check_tensors(const data::safetensors_file& file, const std::vector<parameter_entry>& layout,
                   std::initializer_list<std::string_view> prefixes) {
  check_tensors<T>(file, layout, std::span<const std::string_view>(prefixes.begin(), prefixes.size()));
}

/// Copies the tensors prefix + name of every layout entry into the flat span `out`. Call
/// check_tensors first; this only guards against sizes that do not fit.
template <class T>
void read_tensors(const data::safetensors_file& file, const std::vector<parameter_entry>& layout,
                  std::string_view prefix, std::span<T> out) {
  for (const parameter_entry& e : layout) {
    const data::safetensor& t = file.at(std::string(prefix) + e.name);
    softdiff::detail::require(t.element_count() == e.size && e.offset + e.size <= out.size(), "checkpoint '", file.path,
                    "': '", prefix, e.name, "' has ", t.element_count(), " elements, the network ", e.size);
    softdiff::detail::require(t.dtype == checkpoint_dtype<T>(), "checkpoint '", file.path, "': '", prefix, e.name,
                    "' has dtype ", t.dtype, ", expected ", checkpoint_dtype<T>());
    data::detail::convert_elements(t.dtype, t.bytes.data(), e.size, out.data() + e.offset);
    // A non-finite weight (or Adam moment) would make every output NaN: refuse it here, naming it.
    const T* v = out.data() + e.offset;
    for (std::size_t k = 0; k < e.size; ++k)
      SOFTDIFF_REQUIRE(std::isfinite(static_cast<double>(v[k])), "checkpoint '", file.path, "': '", prefix, e.name,
                       "' element ", k, " is ", v[k], " (a damaged or diverged checkpoint)");
  }
}

/// Loads the sampling weights (the spec's names, no prefix) of `file` into `store`'s parameters,
/// after checking names, shapes and dtypes.
template <class T>
void load_weights(const data::safetensors_file& file, parameter_store<T>& store) {
  check_tensors<T>(file, store.entries(), {std::string_view{}});
  read_tensors<T>(file, store.entries(), "", store.parameters());
}

/// The JSON held in metadata entry `key`; throws naming the file if it is absent or not JSON.
[[nodiscard]] inline nlohmann::json metadata_json(const data::safetensors_file& file, const std::string& key) {
  const auto it = file.metadata.find(key);
  softdiff::detail::require(it != file.metadata.end(), "checkpoint '", file.path, "' has no __metadata__ entry '", key,
                  "' (not a softdiff checkpoint?)");
  return data::parse_json(it->second, softdiff::detail::concat("checkpoint '", file.path, "': __metadata__ '", key, "'"));
}

/// Throws unless metadata entry `key` equals `expected` as JSON; the message lists each differing
/// field ("base_channels: checkpoint 32, expected 16") so the user sees which configuration it was.
inline void check_metadata_json(const data::safetensors_file& file, const std::string& key,
                                const nlohmann::json& expected) {
  const nlohmann::json have = metadata_json(file, key);
  if (have == expected) return;
  detail::problem_list problems("checkpoint '" + file.path + "' was written for another " + key);
  if (have.is_object() && expected.is_object()) {
    for (const auto& [field, value] : expected.items()) {
      if (!have.contains(field)) problems.add(field + ": absent in the checkpoint, expected " + data::json_excerpt(value));
      else if (have[field] != value)
        problems.add(field + ": checkpoint " + data::json_excerpt(have[field]) + ", expected " + data::json_excerpt(value));
    }
    for (const auto& [field, value] : have.items())
      if (!expected.contains(field)) problems.add(field + ": checkpoint " + data::json_excerpt(value) + ", not expected");
  } else {
    problems.add("checkpoint " + data::json_excerpt(have) + ", expected " + data::json_excerpt(expected));
  }
  problems.throw_if_any();
}

}  // namespace softdiff::nn
