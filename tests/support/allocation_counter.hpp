#pragma once
// Counts every heap allocation of the program, so that a test or benchmark can assert that a
// steady-state forward and backward allocate nothing: replaces the global operator new/delete.
// Include it in exactly ONE translation unit of a program (tests/test_refunet.cpp,
// bench/bench_network.cpp); the replacement functions are ordinary definitions.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace softdiff::test {

/// Allocations so far (operator new in all its forms).
inline std::atomic<std::size_t> allocations{0};

namespace detail {
inline void* counted_alloc(std::size_t n, std::size_t align) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace detail

}  // namespace softdiff::test

void* operator new(std::size_t n) { return softdiff::test::detail::counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return softdiff::test::detail::counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return softdiff::test::detail::counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return softdiff::test::detail::counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
