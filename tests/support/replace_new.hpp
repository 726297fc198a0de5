#pragma once
// Replaces the global operator new/delete of a program: counts every allocation
// (allocation_counter.hpp) and, when SOFTDIFF_POISON_HEAP is 1, fills every fresh allocation with
// 0xFF bytes: a NaN in float and double, -1 in every integer type. Every test program is built
// that way (tests/catch_main.cpp), so a test that reads memory it never wrote sees NaN on every
// machine and fails there, instead of passing while fresh pages happen to hold finite numbers.
// Include it in exactly ONE translation unit of a program; the functions are ordinary definitions.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#include "allocation_counter.hpp"

#ifndef SOFTDIFF_POISON_HEAP
#define SOFTDIFF_POISON_HEAP 0
#endif

namespace softdiff::test::detail {
inline void* counted_alloc(std::size_t n, std::size_t align) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  if constexpr (SOFTDIFF_POISON_HEAP) std::memset(p, 0xFF, n);
  return p;
}
}  // namespace softdiff::test::detail

void* operator new(std::size_t n) { return softdiff::test::detail::counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return softdiff::test::detail::counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return softdiff::test::detail::counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return softdiff::test::detail::counted_alloc(n, static_cast<std::size_t>(a));
}
// The nothrow forms too: a program that replaced only the throwing ones would mix allocators
// (the sanitizers' nothrow new with this free), which AddressSanitizer reports as a mismatch.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return softdiff::test::detail::counted_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return softdiff::test::detail::counted_alloc(n, static_cast<std::size_t>(a));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept { return operator new(n, a, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
