#pragma once
// The Backend concept: the whole contract of an execution space (Kokkos-style), chosen at
// compile time. backend::cpu (backend/cpu.hpp) is the default; backend::cuda
// (backend/cuda.cuh) exists only when SOFTDIFF_ENABLE_CUDA is defined. Operators
// (op/on_backend.hpp) and sampler steps (sampler/) are written once over these primitives:
//
//   name, is_host                 what the space is; is_host: its pointers are host pointers
//   allocate / deallocate         memory of the space
//   copy                          n elements, within the space or between it and host memory
//   require_memory(p, where)      throws softdiff::error naming `where` and the space unless p is
//                                 memory this space's kernels can use (a host pointer handed to a
//                                 device function); nothing to check on the CPU
//   parallel_for(n, f)            f(i) for i in [0, n)
//   parallel_for_2d(rows, cols, f)  f(r, c) over a rows x cols index space (an NCHW batch's rows
//                                 and columns: the host runs a row's columns as one loop)
//   map(out, in, rule, n)         out[i] = rule(in[0][i], ..., in[K-1][i])
//   noisy_map(out, in, rule, n, seed, stream, offset)
//                                 out[i] = rule(in[0][i], ..., eta), eta the counter-based normal
//                                 at flat index offset + i of (seed, stream) (backend/philox.hpp)
//   fill_normal(seed, stream, out, n, offset)   out[i] = that normal
//   gemm, gemm_strided_batched    row-major GEMMs
//   fft<T>                        batched 2-D real FFTs: r2c(h, w, ph, pw, planes, in, out) of every
//                                 h x w plane zero-padded to ph x pw; c2r(ph, pw, h, w, planes, in,
//                                 out) unnormalised inverse, cropped to the top-left h x w
//                                 (in may be overwritten)
//   separable<T>                  y = A_H X A_W^T per plane for structured symmetric axis matrices
//                                 (Toeplitz taps or DCT multipliers; backend/separable.hpp): each
//                                 backend applies them its own way (SeparableEngine)
//
// Both noise primitives put normal k of Philox block b at flat index P b + k (P = 4 for float,
// 2 for double): a number depends on its index alone, never on n, offset, threads or backend.
// This file is the bottom of the library: it includes nothing of softdiff but shape types.
#include <concepts>
#include <cstddef>
#include <cstdint>

namespace softdiff {

namespace detail {
/// Stands for "any callable taking an index" in the Backend concept. (A lambda inside a
/// requires-expression would do, but nvcc 13 then treats the whole requirement as unsatisfied.)
struct index_function_archetype {
  void operator()(std::size_t) const {}
  void operator()(std::size_t, std::size_t) const {}
};
/// Stands for an element rule of map (two inputs) and noisy_map (one input and eta).
struct rule_archetype {
  float operator()(float a, float b) const { return a + b; }
  float operator()(float a) const { return a; }
};
}  // namespace detail

template <class B>
concept Backend = requires(std::size_t n, float* p, const float* cp, std::uint64_t u,
                           detail::index_function_archetype f, const float* const (&two)[2],
                           const float* const (&one)[1], detail::rule_archetype rule,
                           typename B::template fft<float>& fft) {
  typename B::template separable<float>;
  { B::name } -> std::convertible_to<const char*>;
  { B::is_host } -> std::convertible_to<bool>;
  { B::template allocate<float>(n) } -> std::same_as<float*>;
  B::template deallocate<float>(p, n);
  B::template copy<float>(cp, p, n);
  B::require_memory(cp, "where");
  B::parallel_for(n, f);
  B::parallel_for_2d(n, n, f);
  B::map(p, two, rule, n);
  B::noisy_map(p, one, rule, n, u, u, u);
  B::template fill_normal<float>(u, u, p, n, u);
  B::template gemm<float>(false, false, 1, 1, 1, 1.0f, cp, 1, cp, 1, 0.0f, p, 1);
  B::template gemm_strided_batched<float>(false, false, 1, 1, 1, 1.0f, cp, 1, 0, cp, 1, 0, 0.0f, p, 1, 0, 1);
  fft.r2c(1, 1, 1, 1, n, cp, p);
  fft.c2r(1, 1, 1, 1, n, p, p);
};

namespace backend {
/// The FFT engine of backend B for T (one per thread or object: it keeps plans and workspaces).
template <class B, class T>
using fft_engine = typename B::template fft<T>;
}  // namespace backend

}  // namespace softdiff
