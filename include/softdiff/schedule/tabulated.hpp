#pragma once
// A schedule given as a table (t_k, level_k, sigma_k), k = 0..K, with 0 = t_0 < ... < t_K = 1,
// linearly interpolated in t. It is what the Wasserstein scheduler produces (section 3.3:
// "the path is linearly interpolated to continuous t") and how any schedule is stored on disk.
//
// File format (JSON, UTF-8), version 1:
//   {
//     "format":   "softdiff-schedule",   required, exactly this string
//     "version":  1,                     required integer; other versions are refused
//     "operator": "gaussian_blur",       optional: the operator family the levels belong to ("" = unspecified)
//     "t":     [0, ..., 1],              required: K + 1 >= 2 strictly increasing times, first 0, last 1
//     "level": [...],                    required: K + 1 finite operator levels
//     "sigma": [...]                     required: K + 1 finite noise levels sigma_t >= 0
//   }
// Other keys are ignored (`softdiff schedule` adds "image": [C, H, W] and "noise": {...}).
// Numbers are written with round-trip precision, so save_json then load_json gives the same table.
// Monotonicity of sigma and the operator range are checked by validate_schedule, not here.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "softdiff/concepts.hpp"
#include "softdiff/data/json.hpp"
#include "softdiff/schedule/common.hpp"

namespace softdiff::schedule {

class tabulated {
public:
  tabulated(std::vector<double> t, std::vector<double> level, std::vector<double> sigma,
            std::string operator_name = "")
      : t_(std::move(t)), level_(std::move(level)), sigma_(std::move(sigma)), operator_(std::move(operator_name)) {
    using softdiff::detail::require;
    require(t_.size() == level_.size() && t_.size() == sigma_.size(), "tabulated: lengths differ: t has ",
            t_.size(), " entries, level ", level_.size(), ", sigma ", sigma_.size());
    require(t_.size() >= 2, "tabulated: needs at least 2 points (t = 0 and t = 1), got ", t_.size());
    check_entries(t_, "t");
    check_entries(level_, "level");
    check_entries(sigma_, "sigma");
    require(t_.front() == 0.0, "tabulated: times must start at 0, t[0] = ", t_.front());
    require(t_.back() == 1.0, "tabulated: times must end at 1, t[", t_.size() - 1, "] = ", t_.back());
    for (std::size_t k = 1; k < t_.size(); ++k)
      require(t_[k] > t_[k - 1], "tabulated: times not strictly increasing at index ", k, ": t[", k - 1,
              "] = ", t_[k - 1], ", t[", k, "] = ", t_[k]);
    for (std::size_t k = 0; k < sigma_.size(); ++k)
      require(sigma_[k] >= 0.0, "tabulated: sigma[", k, "] = ", sigma_[k], " is negative");
  }

  /// Tabulates any schedule on n_points uniform times k / (n_points - 1).
  template <Schedule S>
  [[nodiscard]] static tabulated from(const S& s, int n_points, std::string operator_name = "") {
    softdiff::detail::require(n_points >= 2, "tabulated::from(", s.name(), "): n_points = ", n_points,
                              " must be >= 2");
    const auto n = static_cast<std::size_t>(n_points);
    std::vector<double> t(n), level(n), sigma(n);
    for (std::size_t k = 0; k < n; ++k) {
      t[k] = static_cast<double>(k) / static_cast<double>(n - 1);  // exactly 0 and 1 at the ends
      level[k] = static_cast<double>(s.level(t[k]));
      sigma[k] = static_cast<double>(s.sigma(t[k]));
    }
    return tabulated(std::move(t), std::move(level), std::move(sigma), std::move(operator_name));
  }

  [[nodiscard]] double level(double t) const { return interpolate(level_, t); }
  [[nodiscard]] double sigma(double t) const { return interpolate(sigma_, t); }
  [[nodiscard]] std::string name() const { return "tabulated"; }

  [[nodiscard]] const std::vector<double>& times() const { return t_; }
  [[nodiscard]] const std::vector<double>& levels() const { return level_; }
  [[nodiscard]] const std::vector<double>& sigmas() const { return sigma_; }
  [[nodiscard]] const std::string& operator_name() const { return operator_; }

  /// Reads the format above; any problem throws softdiff::error naming the file and the problem.
  [[nodiscard]] static tabulated load_json(const std::filesystem::path& path) {
    const std::string where = "tabulated::load_json(" + path.string() + ")";
    std::ifstream in(path, std::ios::binary);
    softdiff::detail::require(static_cast<bool>(in), where, ": cannot open the file");
    const nlohmann::json j = data::parse_json(in, where + ": the file");
    auto require = [&](bool ok, const std::string& problem) {
      if (!ok) throw error(where + ": " + problem);
    };
    require(j.is_object(), "the top level is not a JSON object");
    require(j.contains("format"), "missing key \"format\"");
    require(j["format"].is_string() && j["format"].get<std::string>() == "softdiff-schedule",
            "key \"format\" is not \"softdiff-schedule\"");
    require(j.contains("version"), "missing key \"version\"");
    require(j["version"].is_number_integer() && j["version"].get<long long>() == 1,
            "unsupported \"version\" " + data::json_excerpt(j["version"]) + " (this build reads version 1)");
    std::string op;
    if (j.contains("operator")) {
      require(j["operator"].is_string(), "key \"operator\" is not a string");
      op = j["operator"].get<std::string>();
    }
    auto numbers = [&](const char* key) {
      require(j.contains(key), std::string("missing key \"") + key + "\"");
      const nlohmann::json& a = j[key];
      require(a.is_array(), std::string("key \"") + key + "\" is not an array");
      std::vector<double> v;
      v.reserve(a.size());
      for (std::size_t k = 0; k < a.size(); ++k) {
        // nlohmann writes NaN and infinities as null; reject them by position.
        if (!a[k].is_number())
          require(false, std::string("\"") + key + "\"[" + std::to_string(k) + "] = " + data::json_excerpt(a[k]) +
                             " is not a finite number");
        v.push_back(a[k].get<double>());
      }
      return v;
    };
    std::vector<double> t = numbers("t"), level = numbers("level"), sigma = numbers("sigma");
    try {
      return tabulated(std::move(t), std::move(level), std::move(sigma), std::move(op));
    } catch (const error& e) {
      throw error(where + ": " + e.what());
    }
  }

  /// Writes the format above to a temporary file beside `path`, then renames it over `path`,
  /// so a reader never sees a half-written schedule. `extra`: further keys for the file (e.g. the
  /// tool's "image" and "noise"), which load_json ignores; they must not be the format's own keys.
  void save_json(const std::filesystem::path& path, const nlohmann::json& extra = nlohmann::json::object()) const {
    const std::string where = "tabulated::save_json(" + path.string() + ")";
    softdiff::detail::require(extra.is_object(), where, ": extra keys must be a JSON object");
    nlohmann::json j = extra;
    for (const char* key : {"format", "version", "operator", "t", "level", "sigma"})
      softdiff::detail::require(!extra.contains(key), where, ": extra key \"", key, "\" is one of the format's own");
    j["format"] = "softdiff-schedule";
    j["version"] = 1;
    j["operator"] = operator_;
    j["t"] = t_;
    j["level"] = level_;
    j["sigma"] = sigma_;
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      softdiff::detail::require(static_cast<bool>(out), where, ": cannot create the temporary file ", tmp.string());
      out << j.dump(2) << '\n';
      out.close();
      if (!out) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw error(where + ": writing the temporary file " + tmp.string() + " failed");
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw error(where + ": renaming " + tmp.string() + " failed: " + ec.message());
    }
  }

private:
  static void check_entries(const std::vector<double>& v, const char* key) {
    for (std::size_t k = 0; k < v.size(); ++k)
      softdiff::detail::require(std::isfinite(v[k]), "tabulated: ", key, "[", k, "] = ", v[k],
                                " is not a finite number");
  }

  [[nodiscard]] double interpolate(const std::vector<double>& v, double t) const {
    detail::check_time(t, "tabulated");
    // k: the last knot with t_k <= t; t = 1 returns the last value exactly.
    const auto it = std::upper_bound(t_.begin(), t_.end(), t);
    const auto k = static_cast<std::size_t>(it - t_.begin()) - 1;
    if (k + 1 >= t_.size()) return v.back();
    const double w = (t - t_[k]) / (t_[k + 1] - t_[k]);
    return v[k] + w * (v[k + 1] - v[k]);
  }

  std::vector<double> t_, level_, sigma_;
  std::string operator_;
};

static_assert(Schedule<tabulated>);

}  // namespace softdiff::schedule
