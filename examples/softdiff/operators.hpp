#pragma once
// Operator names on the command line -> softdiff operators.
//
//   with_operator<T>(name, half_size, f)   calls f(op) with the concrete operator type
//                                          (for code that instantiates templates per operator)
//   make_operator<T>(name, half_size)      a type-erased any_operator<T> (one type for all)
//   level_from_cli(name, value)            the command line's --level -> the operator's level
//
// Every operator's level follows docs/architecture.md ("0 is the identity, larger corrupts
// more") except on the command line for `scale`, whose --level is the factor alpha itself
// (C = alpha I); op::scale's level is 1 - alpha, and level_from_cli converts.
#include <concepts>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "args.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/fft_conv.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/mask.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::cli {

struct operator_info {
  std::string_view name;
  std::string_view level_meaning;  // what --level means for this operator, for --help
  bool takes_half_size;            // whether --half-size applies
};

inline constexpr operator_info operator_table[] = {
    {"identity", "ignored (C = I)", false},
    {"scale", "the factor alpha in [0, 1] (C = alpha I)", false},
    {"gaussian-blur", "Gaussian blur std in pixels, >= 0 (the paper's separable blur, zero padding)", true},
    {"fft-conv", "Gaussian blur std in pixels, >= 0 (FFT convolution, zero padding)", true},
    {"dct-blur", "heat-blur std sigma_B in pixels, >= 0 (DCT, reflecting boundary)", false},
    {"mask", "share of pixels removed by a centred rectangle, in [0, 1]", false},
};

/// "identity, scale, ..." for messages and --help.
[[nodiscard]] inline std::string operator_names() {
  std::string s;
  for (const auto& o : operator_table) s += (s.empty() ? "" : ", ") + std::string(o.name);
  return s;
}

/// One line per operator: name and the meaning of --level.
[[nodiscard]] inline std::string operator_help() {
  std::string s;
  for (const auto& o : operator_table) {
    std::string left = "  " + std::string(o.name);
    left.resize(18, ' ');
    s += left + std::string(o.level_meaning) + "\n";
  }
  return s;
}

/// An operator's name() ("gaussian_blur") as the command line spells it ("gaussian-blur").
[[nodiscard]] inline std::string cli_operator_name(std::string name) {
  for (char& c : name)
    if (c == '_') c = '-';
  return name;
}

[[nodiscard]] inline const operator_info& find_operator(std::string_view name) {
  for (const auto& o : operator_table)
    if (o.name == name) return o;
  throw usage_error("unknown operator '" + std::string(name) + "' (known: " + operator_names() + ")");
}

/// Half size of the blur kernels when --half-size is not given: the library's default
/// (the paper's CelebA-64 kernel, 161 x 161).
inline constexpr int default_half_size = 80;

/// Calls f(op) with the operator `name` constructed; half_size < 0 means the default.
template <class T, class F>
decltype(auto) with_operator(std::string_view name, int half_size, F&& f) {
  const operator_info& info = find_operator(name);
  if (half_size >= 0 && !info.takes_half_size)
    throw usage_error("--half-size applies only to the kernel blurs, not to operator '" + std::string(name) + "'");
  const int half = half_size < 0 ? default_half_size : half_size;
  if (name == "identity") return std::forward<F>(f)(op::identity<T>{});
  if (name == "scale") return std::forward<F>(f)(op::scale<T>{});
  if (name == "gaussian-blur") return std::forward<F>(f)(op::gaussian_blur<T>(half));
  if (name == "fft-conv") return std::forward<F>(f)(op::fft_conv<T>(half));
  if (name == "dct-blur") return std::forward<F>(f)(op::dct_blur<T>{});
  return std::forward<F>(f)(op::mask<T>{});
}

/// The operator's level for the command line's --level `value` of operator `name`; throws
/// usage_error, in the command line's terms, when it is out of range.
[[nodiscard]] inline double level_from_cli(std::string_view name, double value, double min_level, double max_level) {
  if (name == "scale") {
    if (!(value >= 0.0 && value <= 1.0))
      throw usage_error("--level " + std::to_string(value) + " for scale is the factor alpha and must lie in [0, 1]");
    return 1.0 - value;  // op::scale: alpha = 1 - level
  }
  if (!(value >= min_level && value <= max_level))
    throw usage_error("--level " + std::to_string(value) + " is outside the range [" + std::to_string(min_level) +
                      ", " + std::to_string(max_level) + "] of operator " + std::string(name));
  return value;
}

/// Any operator behind one type (std::function), itself a CorruptionOperator, so the
/// command-line programs need one instantiation of each template rather than one per operator.
template <class T = float>
class any_operator {
public:
  using scalar_type = T;
  static constexpr bool self_adjoint = false;  // not known at compile time; see is_self_adjoint()

  template <CorruptionOperator Op>
    requires(std::same_as<typename Op::scalar_type, T> && !std::same_as<Op, any_operator>)
  explicit any_operator(Op op) {
    auto p = std::make_shared<const Op>(std::move(op));
    apply_ = [p](double level, const batch<T>& x, batch<T>& y) { p->apply(level, x, y); };
    adjoint_ = [p](double level, const batch<T>& x, batch<T>& y) { p->apply_adjoint(level, x, y); };
    min_ = p->min_level();
    max_ = p->max_level();
    name_ = p->name();
    self_adjoint_ = Op::self_adjoint;
  }

  void apply(double level, const batch<T>& x, batch<T>& y) const { apply_(level, x, y); }
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const { adjoint_(level, x, y); }
  [[nodiscard]] double min_level() const { return min_; }
  [[nodiscard]] double max_level() const { return max_; }
  [[nodiscard]] std::string name() const { return name_; }
  [[nodiscard]] bool is_self_adjoint() const { return self_adjoint_; }

private:
  std::function<void(double, const batch<T>&, batch<T>&)> apply_, adjoint_;
  double min_ = 0, max_ = 0;
  std::string name_;
  bool self_adjoint_ = false;
};

static_assert(CorruptionOperator<any_operator<float>>);
static_assert(CorruptionOperator<any_operator<double>>);

/// The operator `name` behind any_operator; half_size < 0 means the default.
template <class T>
[[nodiscard]] any_operator<T> make_operator(std::string_view name, int half_size = -1) {
  return with_operator<T>(name, half_size, [](auto op) { return any_operator<T>(std::move(op)); });
}

}  // namespace softdiff::cli
