#pragma once
// The list options of `softdiff eval`: --sampler, --steps, --seed / --seeds, --clip. Each bad
// value is a usage_error (exit status 2) naming the option and the value.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "args.hpp"
#include "samplers.hpp"

namespace softdiff::cli {

/// Largest step count an eval sweep takes (far above the paper's 1000).
inline constexpr long max_eval_steps = 100000;

/// The comma-separated items of option `name`; a usage_error for an empty list or item.
[[nodiscard]] inline std::vector<std::string> split_list(const std::string& text, const std::string& name) {
  std::vector<std::string> items;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) items.push_back(item);
  if (text.empty() || text.back() == ',') items.push_back("");
  for (const std::string& i : items)
    if (i.empty()) throw usage_error("--" + name + " '" + text + "': empty item in the comma-separated list");
  return items;
}

/// The registry entries named by --sampler (aliases resolved), each once.
[[nodiscard]] inline std::vector<const sampler_entry*> sampler_list_option(const std::string& text) {
  std::vector<const sampler_entry*> entries;
  for (const std::string& name : split_list(text, "sampler")) {
    const sampler_entry& e = find_sampler(name);
    if (std::find(entries.begin(), entries.end(), &e) != entries.end())
      throw usage_error("--sampler '" + text + "' lists '" + std::string(e.name) + "' twice");
    entries.push_back(&e);
  }
  return entries;
}

/// Whole number of a list item in [lo, hi], or nothing.
[[nodiscard]] inline bool parse_count(const std::string& s, long lo, long hi, long& v) {
  std::size_t used = 0;
  try {
    v = std::stol(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size() && v >= lo && v <= hi;
}

/// --steps: distinct step counts in [1, max_eval_steps].
[[nodiscard]] inline std::vector<std::size_t> steps_list_option(const std::string& text) {
  std::vector<std::size_t> steps;
  for (const std::string& s : split_list(text, "steps")) {
    long v = 0;
    if (!parse_count(s, 1, max_eval_steps, v))
      throw usage_error("--steps '" + text + "': '" + s + "' is not a step count in [1, " +
                        std::to_string(max_eval_steps) + "]");
    if (std::find(steps.begin(), steps.end(), static_cast<std::size_t>(v)) != steps.end())
      throw usage_error("--steps '" + text + "' lists " + s + " twice");
    steps.push_back(static_cast<std::size_t>(v));
  }
  return steps;
}

/// --seeds: distinct sampling seeds >= 0.
[[nodiscard]] inline std::vector<std::uint64_t> seeds_list_option(const std::string& text) {
  std::vector<std::uint64_t> seeds;
  for (const std::string& s : split_list(text, "seeds")) {
    long v = 0;
    if (!parse_count(s, 0, std::numeric_limits<long>::max(), v))
      throw usage_error("--seeds '" + text + "': '" + s + "' is not a seed (a whole number >= 0)");
    if (std::find(seeds.begin(), seeds.end(), static_cast<std::uint64_t>(v)) != seeds.end())
      throw usage_error("--seeds '" + text + "' lists " + s + " twice");
    seeds.push_back(static_cast<std::uint64_t>(v));
  }
  return seeds;
}

/// --clip on|off.
[[nodiscard]] inline bool clip_option(const std::string& text) {
  if (text == "on") return true;
  if (text == "off") return false;
  throw usage_error("--clip '" + text + "': expected on or off");
}

/// "3,4".
[[nodiscard]] inline std::string join_seeds(const std::vector<std::uint64_t>& seeds) {
  std::string s;
  for (const std::uint64_t v : seeds) s += (s.empty() ? "" : ",") + std::to_string(v);
  return s;
}

}  // namespace softdiff::cli
