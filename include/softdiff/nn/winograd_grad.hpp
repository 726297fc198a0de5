#pragma once
// The weight gradient of winograd.hpp's convolution (tiling F, winograd_tiles.hpp), in the
// transform domain. With M_xi = V_xi U_xi (tiles x in times in x out) and Y = A^T M A per tile,
//   dM = A dY A^T per tile,   dU_xi [in, out] = sum over tiles V_xi^T dM_xi,   dW = G^T dU G,
// the exact gradient of the forward's arithmetic (in exact arithmetic the convolution's). The
// sum over tiles is a GEMM of depth `tiles` per sample (a^2 multiply-adds per m^2 output
// positions against the direct dW's 9 m^2); the back-transform G^T dU G runs once per
// backward, after the batch's sum. The sum over the batch follows batch_reduction.hpp's fixed
// tree (segments of samples, chunks within a segment one GEMM each), so dW is bitwise the same
// for any thread count.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "softdiff/nn/batch_reduction.hpp"
#include "softdiff/nn/winograd.hpp"

namespace softdiff::nn::detail {

/// G [planes, cols, out] (m_plane() apart) at row row0 + tile: dM = A dY A^T for every m x m
/// tile of one sample's dy [out, h, w] (zero outside the image), a vector of channels at a time.
/// scratch: a plane (dy channels-last).
template <class F, class T>
void winograd_grad_output(const winograd_shape<F>& s, const T* dy, T* G, std::size_t row0, T* scratch) {
  using S = typename lanes_for<T>::type;
  using reg = typename S::reg;
  constexpr std::size_t L = S::width, a = F::alpha, mt = F::m;
  const std::size_t O = s.out, H = s.h, W = s.w, plane = s.m_plane();
  T* gt = scratch;  // [h w, out]
  transpose(dy, O, H * W, gt);
  for (std::size_t ti = 0; ti < s.th; ++ti)
    for (std::size_t tj = 0; tj < s.tw; ++tj) {
      const std::size_t i = mt * ti, j = mt * tj;
      const std::size_t rows = std::min(mt, H - i), cols = std::min(mt, W - j);
      const T* g0 = gt + (i * W + j) * O;
      T* m = G + (row0 + ti * s.tw + tj) * O;
      for (std::size_t o = 0; o < O; o += L) {
        const std::size_t k = std::min(L, O - o);
        transform_2d<S, mt, a>(  // A dY: rows, a column at a time; then (A dY) A^T the same over columns
            [&](std::size_t e, std::size_t f) {
              return e < rows && f < cols ? S::load(g0 + (e * W + f) * O + o, k) : S::zero();
            },
            [](const reg(&in)[mt], reg(&out)[a]) { F::template grad_output<S>(in, out); },
            [&](std::size_t e, std::size_t f, reg value) { S::store(m + (a * e + f) * plane + o, value, k); });
      }
    }
}

/// dw [out, in, 3, 3] += G^T dU G for dU [planes, in, out] (winograd_weights' layout).
template <class F, class T>
void winograd_weight_grads(const T* dU, std::size_t out, std::size_t in, T* dw) {
  constexpr std::size_t a = F::alpha;
  const std::size_t plane = in * out;
  for (std::size_t o = 0; o < out; ++o)
    for (std::size_t c = 0; c < in; ++c) {
      T d[a][a], t[3][a];
      for (std::size_t xi = 0; xi < a * a; ++xi) d[xi / a][xi % a] = dU[xi * plane + c * out + o];
      for (std::size_t e = 0; e < a; ++e) {  // dU G: columns
        T r[3];
        F::weight_grad(d[e], r);
        for (std::size_t v = 0; v < 3; ++v) t[v][e] = r[v];
      }
      T* g = dw + (o * in + c) * 9;
      for (std::size_t v = 0; v < 3; ++v) {  // G^T (dU G): rows
        T r[3];
        F::weight_grad(t[v], r);
        for (std::size_t u = 0; u < 3; ++u) g[3 * u + v] += r[u];
      }
    }
}

/// Scalars of one thread's workspace for winograd_weight_grad_pass.
template <class F>
[[nodiscard]] std::size_t winograd_grad_workspace(const winograd_shape<F>& s) {
  return F::planes * (s.v_plane() + s.m_plane()) + s.padded_size() + s.plane_size();
}

/// The transform-domain weight and bias gradients of a batch, summed by the reduction plan p:
/// slot p.slot(segment) of acc (n_acc = planes in out + out scalars each: dU [planes, in, out], then
/// dbias) gets its segment's sum (written, not added); the caller folds the slots
/// (fold_segments) and back-transforms slot 0 (winograd_weight_grads). x, dy: the batch (m is
/// its map, every sample prepared); work: p.threads slots of winograd_grad_workspace(s).
/// dU_xi [in, out] (+)= V_xi^T dM_xi is tiled_gemm_tn over the chunk's tiles: V and dM are both
/// tile-major, so neither is transposed.
template <class F, class T>
void winograd_weight_grad_pass(const winograd_shape<F>& s, std::size_t N, const T* x, const channel_affine<T>& m,
                               const T* dy, const reduction_plan& p, T* acc, T* work) {
  constexpr std::size_t planes = F::planes;
  const std::size_t HW = s.h * s.w, n_acc = planes * s.in * s.out + s.out, per = winograd_grad_workspace(s);
  const auto segments = static_cast<std::ptrdiff_t>(p.segments);
#pragma omp parallel for schedule(static) num_threads(p.threads) if (p.over_segments)
  for (std::ptrdiff_t seg = 0; seg < segments; ++seg) {
    T* V = work + static_cast<std::size_t>(omp_get_thread_num()) * per;
    T *G = V + planes * s.v_plane(), *P = G + planes * s.m_plane();
    T* scratch = P + s.padded_size();
    T* dU = acc + p.slot(static_cast<std::size_t>(seg)) * n_acc;
    T* db = dU + planes * s.in * s.out;
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
      for (std::size_t xi = 0; xi < planes; ++xi) {
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
template <class F, class T>
void winograd_backward_weights(const winograd_shape<F>& s, std::size_t N, const T* x, const channel_affine<T>& m,
                               const T* dy, std::vector<T>& partial, std::vector<T>& work, T* dweight, T* dbias) {
  const std::size_t n_acc = F::planes * s.in * s.out + s.out;
  const reduction_plan p = make_reduction_plan(N, N * s.out * s.h * s.w * s.in * 9);
  T* acc = reserve(partial, p.slots() * n_acc);
  T* ws = reserve(work, static_cast<std::size_t>(p.threads) * winograd_grad_workspace(s));
  winograd_weight_grad_pass(s, N, x, m, dy, p, acc, ws);
  fold_segments(p, acc, n_acc);
  winograd_weight_grads<F>(acc, s.out, s.in, dweight);
  for (std::size_t o = 0; o < s.out; ++o) dbias[o] += acc[F::planes * s.in * s.out + o];
}

}  // namespace softdiff::nn::detail
