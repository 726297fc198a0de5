#pragma once
// The weight gradient of winograd.hpp's F(2 x 2, 3 x 3) convolution, in the transform domain.
// With M_xi = V_xi U_xi (tiles x in times in x out) and Y = A^T M A per tile,
//   dM = A dY A^T per tile,   dU_xi [in, out] = sum over tiles V_xi^T dM_xi,   dW = G^T dU G,
// the exact gradient of the forward's arithmetic (in exact arithmetic the convolution's). The
// sum over tiles is a GEMM of depth `tiles` per sample (2.25x fewer multiply-adds than the direct
// dW's 9 shifted rows of every output position); the back-transform G^T dU G runs once per
// backward, after the batch's sum. The sum over the batch follows batch_reduction.hpp's fixed
// tree (segments of samples, chunks within a segment one GEMM each), so dW is bitwise the same
// for any thread count.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "softdiff/nn/batch_reduction.hpp"
#include "softdiff/nn/winograd.hpp"

namespace softdiff::nn::detail {

/// G [16, cols, out] (m_plane() apart) at row row0 + tile: dM = A dY A^T for every 2 x 2 tile of
/// one sample's dy [out, h, w] (zero outside the image), a vector of channels at a time.
/// scratch: a plane (dy channels-last).
template <class T>
void winograd_grad_output(const winograd_shape& s, const T* dy, T* G, std::size_t row0, T* scratch) {
  using S = typename lanes_for<T>::type;
  using reg = typename S::reg;
  constexpr std::size_t L = S::width;
  const std::size_t O = s.out, H = s.h, W = s.w, plane = s.m_plane();
  T* gt = scratch;  // [h w, out]
  transpose(dy, O, H * W, gt);
  for (std::size_t ti = 0; ti < s.th; ++ti)
    for (std::size_t tj = 0; tj < s.tw; ++tj) {
      const std::size_t i = 2 * ti, j = 2 * tj;
      const bool down = i + 1 < H, right = j + 1 < W;
      const T* g0 = gt + (i * W + j) * O;
      T* m = G + (row0 + ti * s.tw + tj) * O;
      for (std::size_t o = 0; o < O; o += L) {
        const std::size_t k = std::min(L, O - o);
        const reg g00 = S::load(g0 + o, k), g01 = right ? S::load(g0 + O + o, k) : S::zero();
        const reg g10 = down ? S::load(g0 + W * O + o, k) : S::zero();
        const reg g11 = down && right ? S::load(g0 + (W + 1) * O + o, k) : S::zero();
        // A dY: rows (g0., g0. + g1., g0. - g1., -g1.); then (A dY) A^T the same over columns
        const reg r[4][2] = {{g00, g01},
                             {S::add(g00, g10), S::add(g01, g11)},
                             {S::sub(g00, g10), S::sub(g01, g11)},
                             {S::sub(S::zero(), g10), S::sub(S::zero(), g11)}};
        for (std::size_t a = 0; a < 4; ++a) {
          T* ma = m + 4 * a * plane + o;
          S::store(ma, r[a][0], k);
          S::store(ma + plane, S::add(r[a][0], r[a][1]), k);
          S::store(ma + 2 * plane, S::sub(r[a][0], r[a][1]), k);
          S::store(ma + 3 * plane, S::sub(S::zero(), r[a][1]), k);
        }
      }
    }
}

/// dw [out, in, 3, 3] += G^T dU G for dU [16, in, out] (winograd_weights' layout).
template <class T>
void winograd_weight_grads(const T* dU, std::size_t out, std::size_t in, T* dw) {
  const T h = T(0.5);
  const std::size_t plane = in * out;
  for (std::size_t o = 0; o < out; ++o)
    for (std::size_t c = 0; c < in; ++c) {
      T d[4][4], t[4][3];
      for (std::size_t xi = 0; xi < 16; ++xi) d[xi / 4][xi % 4] = dU[xi * plane + c * out + o];
      for (std::size_t a = 0; a < 4; ++a) {  // dU G: columns
        t[a][0] = d[a][0] + h * (d[a][1] + d[a][2]);
        t[a][1] = h * (d[a][1] - d[a][2]);
        t[a][2] = h * (d[a][1] + d[a][2]) + d[a][3];
      }
      T* g = dw + (o * in + c) * 9;
      for (std::size_t v = 0; v < 3; ++v) {  // G^T (dU G): rows
        g[v] += t[0][v] + h * (t[1][v] + t[2][v]);
        g[3 + v] += h * (t[1][v] - t[2][v]);
        g[6 + v] += h * (t[1][v] + t[2][v]) + t[3][v];
      }
    }
}

/// Scalars of one thread's workspace for winograd_weight_grad_pass.
[[nodiscard]] inline std::size_t winograd_grad_workspace(const winograd_shape& s) {
  return 16 * (s.v_plane() + s.m_plane()) + s.padded_size() + s.plane_size();
}

/// The transform-domain weight and bias gradients of a batch, summed by the reduction plan p:
/// slot p.slot(segment) of acc (n_acc = 16 in out + out scalars each: dU [16, in, out], then
/// dbias) gets its segment's sum (written, not added); the caller folds the slots
/// (fold_segments) and back-transforms slot 0 (winograd_weight_grads). x, dy: the batch (m is
/// its map, every sample prepared); work: p.threads slots of winograd_grad_workspace(s).
/// dU_xi [in, out] (+)= V_xi^T dM_xi is tiled_gemm_tn over the chunk's tiles: V and dM are both
/// tile-major, so neither is transposed.
template <class T>
void winograd_weight_grad_pass(const winograd_shape& s, std::size_t N, const T* x, const channel_affine<T>& m,
                               const T* dy, const reduction_plan& p, T* acc, T* work) {
  const std::size_t HW = s.h * s.w, n_acc = 16 * s.in * s.out + s.out, per = winograd_grad_workspace(s);
  const auto segments = static_cast<std::ptrdiff_t>(p.segments);
#pragma omp parallel for schedule(static) num_threads(p.threads) if (p.over_segments)
  for (std::ptrdiff_t seg = 0; seg < segments; ++seg) {
    T* V = work + static_cast<std::size_t>(omp_get_thread_num()) * per;
    T *G = V + 16 * s.v_plane(), *P = G + 16 * s.m_plane();
    T* scratch = P + s.padded_size();
    T* dU = acc + p.slot(static_cast<std::size_t>(seg)) * n_acc;
    T* db = dU + 16 * s.in * s.out;
    std::fill_n(db, s.out, T(0));
    const std::size_t n0 = p.begin(N, static_cast<std::size_t>(seg)), n1 = p.begin(N, static_cast<std::size_t>(seg) + 1);
    for (std::size_t c0 = n0; c0 < n1; c0 += s.chunk) {
      const std::size_t c1 = std::min(n1, c0 + s.chunk), rows = (c1 - c0) * s.tiles;
      for (std::size_t n = c0; n < c1; ++n) {
        winograd_pad(s, x + n * s.in * HW, m.sample(n), P, scratch);
        winograd_input(s, P, V, (n - c0) * s.tiles);
        winograd_grad_output(s, dy + n * s.out * HW, G, (n - c0) * s.tiles, scratch);
        add_plane_sums(dy + n * s.out * HW, s.out, HW, db);
      }
      for (std::size_t xi = 0; xi < 16; ++xi) {
        const T *v = V + xi * s.v_plane(), *g = G + xi * s.m_plane();
        T* du = dU + xi * s.in * s.out;
        if (c0 > n0)
          tiled_gemm_tn<T, true>(s.in, s.out, rows, v, s.in, g, s.out, du, s.out, p.within_gemm);
        else
          tiled_gemm_tn<T, false>(s.in, s.out, rows, v, s.in, g, s.out, du, s.out, p.within_gemm);
      }
    }
    fold_partial(p, static_cast<std::size_t>(seg), acc, n_acc);
  }
}

/// dweight [out, in, 3, 3] += dL/dW and dbias [out] += dL/dbias for a batch x [N, in, h, w]
/// (through its map m, every sample prepared) and dy [N, out, h, w]: winograd_weight_grad_pass
/// by the batch's reduction plan, the segments folded in order, then back-transformed once.
/// partial and work are the caller's buffers, resized here.
template <class T>
void winograd_backward_weights(const winograd_shape& s, std::size_t N, const T* x, const channel_affine<T>& m,
                               const T* dy, std::vector<T>& partial, std::vector<T>& work, T* dweight, T* dbias) {
  const std::size_t n_acc = 16 * s.in * s.out + s.out;
  const reduction_plan p = make_reduction_plan(N, N * s.out * s.h * s.w * s.in * 9);
  T* acc = reserve(partial, p.slots() * n_acc);
  T* ws = reserve(work, static_cast<std::size_t>(p.threads) * winograd_grad_workspace(s));
  winograd_weight_grad_pass(s, N, x, m, dy, p, acc, ws);
  fold_segments(p, acc, n_acc);
  winograd_weight_grads(acc, s.out, s.in, dweight);
  for (std::size_t o = 0; o < s.out; ++o) dbias[o] += acc[16 * s.in * s.out + o];
}

}  // namespace softdiff::nn::detail
