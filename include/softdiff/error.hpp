#pragma once
// softdiff's one exception type and the checks that raise it. Every message
// names what was wrong and where, so a user can fix the input without a debugger.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace softdiff {

class error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Parts>
[[nodiscard]] std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}

template <class... Parts>
void require(bool condition, Parts&&... message) {
  if (!condition) throw error(concat(std::forward<Parts>(message)...));
}

}  // namespace detail
}  // namespace softdiff

/// Like detail::require, but the message parts are evaluated only when the check fails, so a
/// check on a hot path (shapes in every layer call) costs no string building or allocation.
#define SOFTDIFF_REQUIRE(condition, ...)                                          \
  do {                                                                            \
    if (!(condition)) throw ::softdiff::error(::softdiff::detail::concat(__VA_ARGS__)); \
  } while (false)
