#pragma once
// The OpenMP thread count for one scope: set on construction, the previous count restored on
// exit (also when a REQUIRE throws), so that a test's choice never leaks into the next test.
#include <omp.h>

namespace softdiff::testing {

class omp_threads_scope {
public:
  explicit omp_threads_scope(int n) : previous_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~omp_threads_scope() { omp_set_num_threads(previous_); }
  omp_threads_scope(const omp_threads_scope&) = delete;
  omp_threads_scope& operator=(const omp_threads_scope&) = delete;

  /// The count before this scope.
  [[nodiscard]] int previous() const { return previous_; }

private:
  int previous_;
};

}  // namespace softdiff::testing
