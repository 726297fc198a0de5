#pragma once
// A small option parser for the softdiff subcommands: `--name VALUE`, `--name=VALUE` and
// boolean `--flag`s, `--help` / `-h` on every subcommand, and a usage_error (exit status 2)
// for unknown, repeated or missing options and for values that are not numbers.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace softdiff::cli {

/// A mistake on the command line; main prints it with a pointer to --help and exits with 2.
class usage_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class arg_parser {
public:
  /// `command` as the user types it ("softdiff corrupt"); `summary` is the first line of --help.
  arg_parser(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {}

  /// `--name VALUE`; absent means `default_value` (or "not given" when there is none).
  arg_parser& option(const std::string& name, const std::string& value_name, const std::string& help,
                     std::optional<std::string> default_value = std::nullopt) {
    return add({name, value_name, help, std::move(default_value), false, false});
  }
  /// `--name VALUE` that must be given.
  arg_parser& required(const std::string& name, const std::string& value_name, const std::string& help) {
    return add({name, value_name, help, std::nullopt, true, false});
  }
  /// A boolean `--name`.
  arg_parser& flag(const std::string& name, const std::string& help) {
    return add({name, "", help, std::nullopt, false, true});
  }
  /// Text printed after the option list in --help (examples, notes).
  arg_parser& epilog(std::string text) {
    epilog_ = std::move(text);
    return *this;
  }

  /// Parses the arguments after the subcommand's name. Returns false if --help was asked
  /// for (the help is then written to `out` and the command should exit with 0).
  bool parse(const std::vector<std::string>& args, std::ostream& out) {
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--help" || a == "-h") {
        out << help();
        return false;
      }
      if (a.rfind("--", 0) != 0 || a.size() == 2)
        throw usage_error("unexpected argument '" + a + "' (options start with --)");
      const std::size_t eq = a.find('=');
      const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const spec* s = find(name);
      if (s == nullptr) throw usage_error("unknown option '--" + name + "'" + suggestion(name));
      if (values_.count(name)) throw usage_error("option --" + name + " is given twice");
      if (s->is_flag) {
        if (eq != std::string::npos) throw usage_error("option --" + name + " is a flag and takes no value");
        values_[name] = "1";
      } else if (eq != std::string::npos) {
        values_[name] = a.substr(eq + 1);
      } else {
        if (i + 1 >= args.size()) throw usage_error("option --" + name + " needs a value (" + s->value_name + ")");
        values_[name] = args[++i];
      }
    }
    for (const spec& s : specs_)
      if (s.required && !values_.count(s.name))
        throw usage_error("missing required option --" + s.name + " " + s.value_name);
    return true;
  }

  /// Whether the user gave `--name` (defaults do not count).
  [[nodiscard]] bool given(const std::string& name) const { return values_.count(checked(name).name) != 0; }
  /// Whether a flag was given.
  [[nodiscard]] bool flag_set(const std::string& name) const { return given(name); }
  /// Whether the option has a value, given or default.
  [[nodiscard]] bool has(const std::string& name) const { return given(name) || checked(name).default_value; }

  /// The option's text (given or default).
  [[nodiscard]] std::string text(const std::string& name) const {
    const spec& s = checked(name);
    if (auto it = values_.find(name); it != values_.end()) return it->second;
    if (s.default_value) return *s.default_value;
    throw usage_error("option --" + name + " is required here");
  }
  /// The option as a finite number.
  [[nodiscard]] double number(const std::string& name) const {
    const std::string v = text(name);
    errno = 0;
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || !std::isfinite(d))
      throw usage_error("option --" + name + ": '" + v + "' is not a finite number");
    return d;
  }
  /// The option as an integer in [lo, hi].
  [[nodiscard]] long integer(const std::string& name, long lo, long hi) const {
    const std::string v = text(name);
    errno = 0;
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE)
      throw usage_error("option --" + name + ": '" + v + "' is not an integer");
    if (n < lo || n > hi)
      throw usage_error("option --" + name + ": " + v + " is outside [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
    return n;
  }

  [[nodiscard]] const std::string& command() const { return command_; }

  [[nodiscard]] std::string help() const {
    std::ostringstream os;
    os << command_ << ": " << summary_ << "\n\nUsage: " << command_;
    for (const spec& s : specs_)
      if (s.required) os << " --" << s.name << " " << s.value_name;
    os << " [options]\n\nOptions:\n";
    for (const spec& s : specs_) {
      std::string left = "  --" + s.name + (s.is_flag ? "" : " " + s.value_name);
      if (left.size() < 26) left.resize(26, ' ');
      else left += "\n" + std::string(26, ' ');
      os << left << s.help;
      if (s.required) os << " (required)";
      if (s.default_value) os << " (default: " << *s.default_value << ")";
      os << "\n";
    }
    os << "  -h, --help              show this help\n";
    if (!epilog_.empty()) os << "\n" << epilog_ << (epilog_.back() == '\n' ? "" : "\n");
    return os.str();
  }

private:
  struct spec {
    std::string name, value_name, help;
    std::optional<std::string> default_value;
    bool required = false;
    bool is_flag = false;
  };

  arg_parser& add(spec s) {
    specs_.push_back(std::move(s));
    return *this;
  }
  [[nodiscard]] const spec* find(const std::string& name) const {
    for (const spec& s : specs_)
      if (s.name == name) return &s;
    return nullptr;
  }
  /// Guards the program itself against asking for an option it never declared.
  [[nodiscard]] const spec& checked(const std::string& name) const {
    const spec* s = find(name);
    if (s == nullptr) throw std::logic_error(command_ + ": internal error: undeclared option --" + name);
    return *s;
  }
  /// " (did you mean --x?)" for a declared option that shares a prefix of 3 or more characters.
  [[nodiscard]] std::string suggestion(const std::string& name) const {
    for (const spec& s : specs_)
      if (name.size() >= 3 && (s.name.rfind(name.substr(0, 3), 0) == 0)) return " (did you mean --" + s.name + "?)";
    return " (see " + command_ + " --help)";
  }

  std::string command_, summary_, epilog_;
  std::vector<spec> specs_;
  std::map<std::string, std::string> values_;
};

}  // namespace softdiff::cli
