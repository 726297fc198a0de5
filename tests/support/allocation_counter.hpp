#pragma once
// Heap allocations of the program, counted by the replacement of the global operator new in
// replace_new.hpp (included once per program: tests/catch_main.cpp, bench/bench_network.cpp), so
// that a test or benchmark can assert that a steady-state forward and backward allocate nothing.
#include <atomic>
#include <cstddef>

namespace softdiff::test {

/// Allocations so far (operator new in all its forms).
inline std::atomic<std::size_t> allocations{0};

}  // namespace softdiff::test
