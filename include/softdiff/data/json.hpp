#pragma once
// JSON read from files (safetensors headers, checkpoint metadata, schedule files): bounded
// nesting, errors that name the source, and short excerpts of values for messages.
//
// nlohmann's parser is iterative, but dump(), comparison and copying recurse through a value: a
// crafted file of a few hundred kB nested 100,000 deep would overflow the stack in the first
// message that quotes it. Every file's JSON is therefore parsed here, refused beyond
// max_json_depth levels.
#include <cmath>
#include <concepts>
#include <limits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "softdiff/error.hpp"

namespace softdiff::data {

/// The deepest nesting accepted in a file's JSON (softdiff's own files nest at most 4 levels).
inline constexpr int max_json_depth = 64;

/// nlohmann's message without its "[json.exception.type_error.302] " tag: what a user reads.
[[nodiscard]] inline std::string json_message(const nlohmann::json::exception& e) {
  const std::string_view s = e.what();
  const auto close = s.find("] ");
  return std::string(s.starts_with("[json.exception.") && close != std::string_view::npos ? s.substr(close + 2) : s);
}

namespace detail {
/// The parser callback that refuses nesting beyond max_json_depth, naming `what`.
[[nodiscard]] inline nlohmann::json::parser_callback_t json_depth_limit(std::string_view what) {
  return [what](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_json_depth)
      throw error(softdiff::detail::concat(what, " is JSON nested deeper than ", max_json_depth, " levels"));
    return true;
  };
}
}  // namespace detail

/// Parses `input` (text, a stream, or an iterator pair through the two-argument overload);
/// anything that is not JSON, or nests deeper than max_json_depth, throws softdiff::error
/// "<what> is not valid JSON: ..." or "<what> is JSON nested deeper than 64 levels".
template <class Input>
[[nodiscard]] nlohmann::json parse_json(Input&& input, std::string_view what) {
  try {
    return nlohmann::json::parse(std::forward<Input>(input), detail::json_depth_limit(what));
  } catch (const nlohmann::json::exception& e) {
    throw error(softdiff::detail::concat(what, " is not valid JSON: ", json_message(e)));
  }
}

template <class Iterator>
[[nodiscard]] nlohmann::json parse_json(Iterator first, Iterator last, std::string_view what) {
  try {
    return nlohmann::json::parse(first, last, detail::json_depth_limit(what));
  } catch (const nlohmann::json::exception& e) {
    throw error(softdiff::detail::concat(what, " is not valid JSON: ", json_message(e)));
  }
}

/// `j` as JSON text for an error message, cut to about `max_chars` characters.
[[nodiscard]] inline std::string json_excerpt(const nlohmann::json& j, std::size_t max_chars = 200) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "... (" + std::to_string(s.size()) + " characters)";
  return s;
}

/// Throws naming `what` unless `text` is valid UTF-8: JSON (and so a checkpoint's metadata or an
/// evaluation summary that records it) can hold nothing else. Checked before work starts, so a run
/// does not fail at its first checkpoint.
inline void require_utf8(const std::string& text, std::string_view what) {
  try {
    (void)nlohmann::json(text).dump();
  } catch (const nlohmann::json::type_error&) {
    throw error(softdiff::detail::concat(what, " is not valid UTF-8 text, which softdiff's JSON files must record: ",
                                         json_excerpt(nlohmann::json(text)), "; rename it"));
  }
}

/// `j` as an integer of type I. Anything else (a fraction, a float such as 1e300, a value I cannot
/// hold) throws naming `what`: nlohmann's own get<I>() converts a float by static_cast, which is
/// undefined beyond I's range.
template <std::integral I>
[[nodiscard]] I json_integer(const nlohmann::json& j, std::string_view what) {
  if (j.is_number_unsigned()) {
    if (const auto v = j.get<std::uint64_t>(); std::in_range<I>(v)) return static_cast<I>(v);
  } else if (j.is_number_integer()) {
    if (const auto v = j.get<std::int64_t>(); std::in_range<I>(v)) return static_cast<I>(v);
  }
  throw error(softdiff::detail::concat(what, " must be an integer from ", std::numeric_limits<I>::min(), " to ",
                                       std::numeric_limits<I>::max(), ", got ", json_excerpt(j)));
}

/// `j` as a finite double; anything else throws naming `what`.
[[nodiscard]] inline double json_number(const nlohmann::json& j, std::string_view what) {
  if (j.is_number()) {
    const double v = j.get<double>();
    if (std::isfinite(v)) return v;
  }
  throw error(softdiff::detail::concat(what, " must be a finite number, got ", json_excerpt(j)));
}

/// The member `key` of object `j`; its absence (or `j` not being an object) throws naming `what`.
[[nodiscard]] inline const nlohmann::json& json_member(const nlohmann::json& j, const std::string& key,
                                                       std::string_view what) {
  if (!j.is_object()) throw error(softdiff::detail::concat(what, " is a JSON ", j.type_name(), ", expected an object"));
  const auto it = j.find(key);
  if (it == j.end()) throw error(softdiff::detail::concat(what, " has no \"", key, "\""));
  return *it;
}

}  // namespace softdiff::data
