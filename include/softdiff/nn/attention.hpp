#pragma once
// Single-head scaled dot-product attention over the H*W positions of each sample
// (the core of the AttnBlock of docs/refunet.md). Per sample, with Q, K, V the [d, L]
// views of q, k, v [N, d, H, W] (L = H*W, position i is column i):
//   S = Q^T K / sqrt(d)          [L, L],  S_ij = q_i . k_j / sqrt(d)
//   A = softmax over j of S      (each row sums to 1)
//   O = V A^T                    [d, L],  o_i = sum_j A_ij v_j
// Backward (the gradient rule, once), G = dO:
//   dV = G A,   dA = G^T V,   dS_ij = A_ij (dA_ij - sum_k A_ik dA_ik)
//   dQ = K dS^T / sqrt(d),   dK = Q dS / sqrt(d)
// Samples run in parallel (one [L, L] workspace per thread); A is kept for backward.
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn {

template <class T>
struct attention_grads {
  const batch<T>& dq;
  const batch<T>& dk;
  const batch<T>& dv;
};

template <class T = float>
struct attention {
  using scalar_type = T;

  std::size_t channels = 0;  // d
  batch<T> o;                // [N, d, H, W], output of the last forward
  batch<T> dq, dk, dv;       // input gradients of the last backward

  attention() = default;
  explicit attention(std::size_t channels_) : channels(channels_) {
    SOFTDIFF_REQUIRE(channels > 0, "attention: channel count must be positive");
  }

  const batch<T>& forward(const batch<T>& q, const batch<T>& k, const batch<T>& v) {
    const shape4 s = shape_of(q);
    SOFTDIFF_REQUIRE(s[1] == channels, "attention: q ", to_string(s), " has ", s[1], " channels, expected ",
                    channels);
    SOFTDIFF_REQUIRE(shape_of(k) == s && shape_of(v) == s, "attention: q ", to_string(s), ", k ",
                    to_string(shape_of(k)), " and v ", to_string(shape_of(v)), " must have one shape");
    ensure_shape(o, s);
    q_ = &q, k_ = &k, v_ = &v;
    const std::size_t N = s[0], d = channels, L = s[2] * s[3];
    T* ap = detail::reserve(a_, N * L * L);
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
    const T *qp = q.data(), *kp = k.data(), *vp = v.data();
    T* op = o.data();
    const auto count = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (count > 1 && N * L * L * d > detail::parallel_threshold)
    for (std::ptrdiff_t n = 0; n < count; ++n) {
      const std::size_t off = static_cast<std::size_t>(n) * d * L;
      T* A = ap + static_cast<std::size_t>(n) * L * L;
      backend::cpu::gemm<T>(true, false, int(L), int(L), int(d), scale, qp + off, int(L), kp + off, int(L), T(0), A,
                      int(L));
      for (std::size_t i = 0; i < L; ++i) {
        T* row = A + i * L;
        T m = row[0];
        for (std::size_t j = 1; j < L; ++j) m = std::max(m, row[j]);
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (std::size_t j = 0; j < L; ++j) {
          row[j] = detail::exp_of<T>(row[j] - m);
          sum += row[j];
        }
        const T inv = T(1) / sum;
#pragma omp simd
        for (std::size_t j = 0; j < L; ++j) row[j] *= inv;
      }
      backend::cpu::gemm<T>(false, true, int(d), int(L), int(L), T(1), vp + off, int(L), A, int(L), T(0), op + off,
                      int(L));
    }
    return o;
  }

  attention_grads<T> backward(const batch<T>& dout) {
    SOFTDIFF_REQUIRE(q_ != nullptr, "attention::backward: called before forward");
    const shape4 s = shape_of(o);
    SOFTDIFF_REQUIRE(shape_of(dout) == s, "attention::backward: dout ", to_string(shape_of(dout)),
                    " does not match the forward output ", to_string(s));
    ensure_shape(dq, s), ensure_shape(dk, s), ensure_shape(dv, s);
    const std::size_t N = s[0], d = channels, L = s[2] * s[3];
    const int threads = detail::layer_threads();
    T* ws = detail::reserve(work_, static_cast<std::size_t>(threads) * L * L);
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
    const T *qp = q_->data(), *kp = k_->data(), *vp = v_->data(), *gp = dout.data(), *ap = a_.data();
    T *dqp = dq.data(), *dkp = dk.data(), *dvp = dv.data();
    const auto count = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) num_threads(threads) if (count > 1 && threads > 1 && N * L * L * d > detail::parallel_threshold)
    for (std::ptrdiff_t n = 0; n < count; ++n) {
      const std::size_t off = static_cast<std::size_t>(n) * d * L;
      const T* A = ap + static_cast<std::size_t>(n) * L * L;
      T* dS = ws + static_cast<std::size_t>(omp_get_thread_num()) * L * L;
      // dV = G A
      backend::cpu::gemm<T>(false, false, int(d), int(L), int(L), T(1), gp + off, int(L), A, int(L), T(0), dvp + off,
                      int(L));
      // dA = G^T V, then dS = A (dA - rowsum(A dA)) in place
      backend::cpu::gemm<T>(true, false, int(L), int(L), int(d), T(1), gp + off, int(L), vp + off, int(L), T(0), dS,
                      int(L));
      for (std::size_t i = 0; i < L; ++i) {
        const T* a = A + i * L;
        T* r = dS + i * L;
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (std::size_t j = 0; j < L; ++j) dot += a[j] * r[j];
#pragma omp simd
        for (std::size_t j = 0; j < L; ++j) r[j] = a[j] * (r[j] - dot);
      }
      // dQ = K dS^T / sqrt(d),  dK = Q dS / sqrt(d)
      backend::cpu::gemm<T>(false, true, int(d), int(L), int(L), scale, kp + off, int(L), dS, int(L), T(0), dqp + off,
                      int(L));
      backend::cpu::gemm<T>(false, false, int(d), int(L), int(L), scale, qp + off, int(L), dS, int(L), T(0),
                      dkp + off, int(L));
    }
    return {dq, dk, dv};
  }

  /// The attention weights A of the last forward, [N, L, L] row-major (rows sum to 1).
  [[nodiscard]] std::span<const T> probabilities() const {
    const shape4 s = shape_of(o);
    return {a_.data(), s[0] * s[2] * s[3] * s[2] * s[3]};
  }

private:
  const batch<T>*q_ = nullptr, *k_ = nullptr, *v_ = nullptr;
  std::vector<T> a_, work_;
};

}  // namespace softdiff::nn
