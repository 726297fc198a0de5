#pragma once
// Plans for the CPU backend's separable Toeplitz primitive (backend/cpu_separable.hpp, used by
// op::gaussian_blur): the exact representations of the n x n symmetric Toeplitz matrix of one
// axis, and the choice between them.
//
// Along an axis of length n the matrix is B_ij = g_{|i-j|} from one-sided taps g_0..g_R
// (0 for |i-j| > R: zero padding), with sum_{|k|<=R} |g_k| <= 1 (a normalised blur of
// non-negative taps, as appendix G's, has exactly 1). It is also centro-symmetric
// (B_{n-1-i, n-1-j} = B_ij), so in the even/odd basis e_j = x_j + x_{n-1-j},
// o_j = x_j - x_{n-1-j} it splits into two blocks of about n/2 x n/2: half the
// multiply-adds of the dense matrix. Each axis is held in one of three forms:
//   band             taps g_{-r..r}, r the smallest radius whose dropped tails weigh <= beta;
//   folded dense     the even block P and odd block M, each row trimmed at both ends;
//   folded low rank  P = S V_e L_e V_e^T S, M = V_o L_o V_o^T / 2 (eigen-decomposed in double),
//                    keeping the eigenpairs with |lambda| > beta / sqrt(n).
// Every form is a matrix B~ with ||B~ - B||_inf (largest absolute row sum) <= beta, and
// beta = epsilon(T) / 100 (1.2e-9 for float). Since ||B||_inf <= 1 on each axis, the 2-D
// result differs from the exact zero-padded blur by at most (2 beta + beta^2) max|x| per
// pixel, 1/25 of one unit roundoff of max|x|: the representations are exact to the
// rounding of T. Coefficients are computed in double and rounded to T once.
// The low-rank form is offered for float only: for double, beta is below the accuracy of
// a double-precision eigensolver.
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "softdiff/error.hpp"
#include "softdiff/backend/detail/separable_kernels.hpp"

namespace softdiff::backend::detail {

/// Per-axis bound on the truncation error ||B~ - B||_inf of every representation.
template <class T>
constexpr double truncation_budget() {
  return static_cast<double>(std::numeric_limits<T>::epsilon()) / 100;
}

enum class axis_kind { band, folded_dense, folded_low_rank };

inline const char* to_string(axis_kind k) {
  return k == axis_kind::band ? "band" : k == axis_kind::folded_dense ? "folded-dense" : "folded-low-rank";
}

/// A small coefficient matrix rounded to T, row-major with rows padded to whole vectors, with
/// the windows outside which its rows are zero, and its transpose for right-multiplication (the
/// matrix itself when it is symmetric, which also keeps one copy instead of two in L1).
template <class T>
struct coeff_matrix {
  int rows = 0, cols = 0, lda = 0, ldt = 0;
  bool symmetric = false;
  std::vector<T> a, at;
  std::vector<int> lo, hi;    // row i is zero outside [lo[i], hi[i])
  std::vector<int> vlo, vhi;  // union of the windows of rows [v L, (v+1) L): k-range of output vector v

  [[nodiscard]] const T* transposed() const { return symmetric ? a.data() : at.data(); }

  /// Drops from each row the longest prefix and suffix whose absolute sums are each at most
  /// row_budget / 2, and writes each row's dropped weight. A symmetric m keeps a symmetric
  /// pattern: windows grow (dropping less) until row i keeps j exactly when row j keeps i.
  static coeff_matrix make(const Eigen::MatrixXd& m, double row_budget, std::vector<double>* dropped = nullptr) {
    coeff_matrix c;
    c.rows = static_cast<int>(m.rows());
    c.cols = static_cast<int>(m.cols());
    c.symmetric = c.rows == c.cols && m.isApprox(m.transpose(), 0.0);
    c.lda = padded<T>(c.cols);
    c.ldt = padded<T>(c.rows);
    c.lo.resize(c.rows);
    c.hi.resize(c.rows);
    for (int i = 0; i < c.rows; ++i) {
      int lo = 0, hi = c.cols;
      double head = 0, tail = 0;
      while (lo < hi && head + std::abs(m(i, lo)) <= row_budget / 2) head += std::abs(m(i, lo++));
      while (hi > lo && tail + std::abs(m(i, hi - 1)) <= row_budget / 2) tail += std::abs(m(i, --hi));
      c.lo[i] = lo;
      c.hi[i] = hi;
    }
    for (bool grew = c.symmetric; grew;) {
      grew = false;
      for (int i = 0; i < c.rows; ++i)
        for (int j = c.lo[i]; j < c.hi[i]; ++j)
          if (i < c.lo[j] || i >= c.hi[j]) {
            c.lo[j] = std::min(c.lo[j], i);
            c.hi[j] = std::max(c.hi[j], i + 1);
            grew = true;
          }
    }
    c.a.assign(static_cast<std::size_t>(c.rows) * c.lda, T(0));
    if (!c.symmetric) c.at.assign(static_cast<std::size_t>(c.cols) * c.ldt, T(0));
    if (dropped) dropped->assign(c.rows, 0.0);
    for (int i = 0; i < c.rows; ++i)
      for (int j = 0; j < c.cols; ++j) {
        if (j < c.lo[i] || j >= c.hi[i]) {
          if (dropped) (*dropped)[i] += std::abs(m(i, j));
          continue;
        }
        c.a[static_cast<std::size_t>(i) * c.lda + j] = static_cast<T>(m(i, j));
        if (!c.symmetric) c.at[static_cast<std::size_t>(j) * c.ldt + i] = static_cast<T>(m(i, j));
      }
    const int nv = vectors_for<T>(c.rows);
    c.vlo.assign(nv, c.cols);
    c.vhi.assign(nv, 0);
    for (int i = 0; i < c.rows; ++i) {
      const int v = i / simd<T>::width;
      c.vlo[v] = std::min(c.vlo[v], c.lo[i]);
      c.vhi[v] = std::max(c.vhi[v], c.hi[i]);
    }
    return c;
  }
};

/// One axis of length n in one of the three exact forms.
template <class T>
struct axis_rep {
  axis_kind kind = axis_kind::band;
  int n = 0;
  // band: taps[centre + d] = g_{|d|} for |d| <= radius and 0 for radius < |d| <= radius + 8, so that
  // taps.data() + centre with row stride -1 is the Toeplitz matrix (rows of a GEMM tile read past r)
  int radius = 0, centre = 0;
  std::vector<T> taps;
  // folded: even block (me = ceil(n/2)) and odd block (mo = floor(n/2)); the compress blocks
  // have ke, ko rows (me, mo for the dense form); expand blocks exist for the low-rank form
  int me = 0, mo = 0, ke = 0, ko = 0;
  coeff_matrix<T> compress[2], expand[2];
  double bound = 0;  // ||B~ - B||_inf of this representation

  [[nodiscard]] bool folded() const { return kind != axis_kind::band; }
  [[nodiscard]] bool low_rank() const { return kind == axis_kind::folded_low_rank; }
  /// Columns of the folded layout: even block at 0, odd block at the next whole vector.
  [[nodiscard]] int odd_offset() const { return padded<T>(me); }
  [[nodiscard]] std::pair<int, int> band_window(int i) const {
    return {std::max(0, i - radius), std::min(n, i + radius + 1)};
  }
  /// Tile height for the Toeplitz band: a tile of MR rows sums over 2r + MR taps, of which each row
  /// uses 2r + 1; the taps array holds zeros for |d| <= radius + 8 (so MR <= 9).
  [[nodiscard]] int band_tile_rows() const { return std::clamp(radius + 1, 2, 8); }
  [[nodiscard]] std::string describe() const {
    if (kind == axis_kind::band) return softdiff::detail::concat("band(r=", radius, ")");
    if (kind == axis_kind::folded_dense) return softdiff::detail::concat("folded-dense(", me, "+", mo, ")");
    return softdiff::detail::concat("folded-low-rank(rank ", ke, "+", ko, " of ", me, "+", mo, ")");
  }
};

/// The exact n x n matrix of the paper's blur along one axis, in double.
inline Eigen::MatrixXd axis_matrix(const std::vector<double>& g, int n) {
  const int reach = std::min(static_cast<int>(g.size()) - 1, n - 1);
  Eigen::MatrixXd b = Eigen::MatrixXd::Zero(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = std::max(0, i - reach); j <= std::min(n - 1, i + reach); ++j) b(i, j) = g[std::abs(i - j)];
  return b;
}

template <class T>
axis_rep<T> make_band(const std::vector<double>& g, int n) {
  axis_rep<T> r;
  r.kind = axis_kind::band;
  r.n = n;
  const int reach = std::min(static_cast<int>(g.size()) - 1, n - 1);
  // smallest radius whose two dropped tails (taps radius+1..reach; taps beyond n-1 never meet a pixel) weigh <= beta
  double tail = 0;
  int radius = reach;
  while (radius > 0 && tail + 2 * g[radius] <= truncation_budget<T>()) tail += 2 * g[radius--];
  r.radius = radius;
  r.bound = tail;
  r.centre = radius + 8;
  r.taps.assign(2 * static_cast<std::size_t>(r.centre) + 1, T(0));
  for (int d = -radius; d <= radius; ++d) r.taps[r.centre + d] = static_cast<T>(g[std::abs(d)]);
  return r;
}

/// The even and odd blocks in the orthonormal even/odd basis (Q^T B Q), in double. With the
/// unscaled fold used at run time, B = F^T diag(S P' S, M' / 2) F, S = diag(1/sqrt2, .., 1 (middle)).
inline void folded_blocks(const Eigen::MatrixXd& b, Eigen::MatrixXd& pe, Eigen::MatrixXd& mo_block) {
  const int n = static_cast<int>(b.rows()), mo = n / 2, me = n - mo;
  pe.resize(me, me);
  mo_block.resize(mo, mo);
  const double r2 = std::sqrt(2.0);
  for (int i = 0; i < mo; ++i) {
    for (int j = 0; j < mo; ++j) {
      pe(i, j) = b(i, j) + b(i, n - 1 - j);
      mo_block(i, j) = b(i, j) - b(i, n - 1 - j);
    }
    if (me > mo) pe(i, mo) = pe(mo, i) = r2 * b(i, mo);
  }
  if (me > mo) pe(mo, mo) = b(mo, mo);
}

/// The scaling S of the even block (1/sqrt2 for pairs, 1 for the middle of an odd axis).
inline Eigen::VectorXd even_scaling(int me, int mo) {
  Eigen::VectorXd s = Eigen::VectorXd::Constant(me, 1.0 / std::sqrt(2.0));
  if (me > mo) s(mo) = 1.0;
  return s;
}

/// An axis of b's size in a folded form: me even rows (the middle one of an odd axis included), mo odd.
template <class T>
axis_rep<T> folded_axis(axis_kind kind, const Eigen::MatrixXd& b) {
  axis_rep<T> r;
  r.kind = kind;
  r.n = static_cast<int>(b.rows());
  r.mo = r.n / 2;
  r.me = r.n - r.mo;
  return r;
}

template <class T>
axis_rep<T> make_folded_dense(const Eigen::MatrixXd& b) {
  axis_rep<T> r = folded_axis<T>(axis_kind::folded_dense, b);
  r.ke = r.me;
  r.ko = r.mo;
  Eigen::MatrixXd pe, mb;
  folded_blocks(b, pe, mb);
  const Eigen::VectorXd s = even_scaling(r.me, r.mo);
  Eigen::MatrixXd p = s.asDiagonal() * pe * s.asDiagonal();
  p = (0.5 * (p + p.transpose())).eval();  // exactly symmetric (s_i s_j and s_j s_i may round apart)
  const Eigen::MatrixXd m = mb / 2;
  // y_i = (P e)_i +- (M o)_i with |e|, |o| <= 2 max|x|: a row budget of beta/4 per block keeps
  // ||B~ - B||_inf <= beta (the middle row of an odd axis sees e_mid = x_mid only).
  std::vector<double> dp, dm;
  r.compress[0] = coeff_matrix<T>::make(p, truncation_budget<T>() / 4, &dp);
  r.compress[1] = coeff_matrix<T>::make(m, truncation_budget<T>() / 4, &dm);
  for (int i = 0; i < r.me; ++i) r.bound = std::max(r.bound, 2 * (dp[i] + (i < r.mo ? dm[i] : 0.0)));
  return r;
}

template <class T>
axis_rep<T> make_folded_low_rank(const Eigen::MatrixXd& b) {
  axis_rep<T> r = folded_axis<T>(axis_kind::folded_low_rank, b);
  Eigen::MatrixXd blocks[2];
  folded_blocks(b, blocks[0], blocks[1]);
  const Eigen::VectorXd scale[2] = {even_scaling(r.me, r.mo), Eigen::VectorXd::Constant(r.mo, 1.0 / std::sqrt(2.0))};
  // |lambda| <= beta / sqrt(n) dropped: ||dB||_inf <= sqrt(n) ||dB||_2 <= beta
  const double keep_above = truncation_budget<T>() / std::sqrt(static_cast<double>(r.n));
  double dropped = 0;
  for (int h = 0; h < 2; ++h) {
    const int m = static_cast<int>(blocks[h].rows());
    std::vector<int> kept;
    Eigen::MatrixXd vecs;
    Eigen::VectorXd vals;
    if (m > 0) {
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(blocks[h]);
      softdiff::detail::require(eig.info() == Eigen::Success, "separable Toeplitz plan: eigen-decomposition of the ", m, " x ", m,
              " folded blur block failed");
      vecs = eig.eigenvectors();
      vals = eig.eigenvalues();
      for (int l = 0; l < m; ++l) {
        if (std::abs(vals(l)) > keep_above)
          kept.push_back(l);
        else
          dropped = std::max(dropped, std::abs(vals(l)));
      }
    }
    const int k = static_cast<int>(kept.size());
    Eigen::MatrixXd c(k, m), e(m, k);  // compress = L V^T S, expand = S V
    for (int q = 0; q < k; ++q) {
      const int l = kept[q];
      for (int j = 0; j < m; ++j) {
        c(q, j) = vals(l) * vecs(j, l) * scale[h](j);
        e(j, q) = scale[h](j) * vecs(j, l);
      }
    }
    r.compress[h] = coeff_matrix<T>::make(c, 0.0);
    r.expand[h] = coeff_matrix<T>::make(e, 0.0);
    (h == 0 ? r.ke : r.ko) = k;
  }
  r.bound = std::sqrt(static_cast<double>(r.n)) * dropped;
  return r;
}

/// Longest axis for which the folded forms are built (O(n^2) storage, O(n^3) eigen-decomposition).
constexpr int max_folded_side = 512;

/// The representations of one axis: band always; folded forms for 2 <= n <= max_folded_side;
/// low rank for float only, and, unless `every` form is asked for, only when the band is wide
/// enough (9 taps) for it to have a chance.
template <class T>
std::vector<std::shared_ptr<const axis_rep<T>>> axis_candidates(const std::vector<double>& g, int n, bool every = false) {
  std::vector<std::shared_ptr<const axis_rep<T>>> out;
  auto band = std::make_shared<const axis_rep<T>>(make_band<T>(g, n));
  const int width = 2 * band->radius + 1;
  out.push_back(band);
  if (n >= 2 && n <= max_folded_side && (every || width > 3)) {
    const Eigen::MatrixXd b = axis_matrix(g, n);
    out.push_back(std::make_shared<const axis_rep<T>>(make_folded_dense<T>(b)));
    if (truncation_budget<T>() > 1e-12 && (every || width >= 9))
      out.push_back(std::make_shared<const axis_rep<T>>(make_folded_low_rank<T>(b)));
  }
  return out;
}

/// One plane's plan: the representation of the row axis (H, applied from the left) and of the
/// column axis (W, from the right), the workspace row stride and the modelled cost.
template <class T>
struct plane_plan {
  int h = 0, w = 0, ld = 0;
  std::shared_ptr<const axis_rep<T>> rows, cols;
  double cost = 0;  // vector multiply-adds per plane (model)

  /// Margin on each side of the rows that the column convolution reads (band columns only).
  [[nodiscard]] int margin() const { return cols->folded() ? 0 : padded<T>(cols->radius); }
  /// Row stride of the buffer that the column convolution reads: data at [margin, margin + ld).
  [[nodiscard]] int margin_ld() const { return ld + 2 * margin(); }
  /// Buffer A (h rows), buffer B (3h rows: row-stage output, column-stage output of a low-rank row
  /// axis, low-rank column scratch), and for band columns the h rows with margins; row stride ld.
  /// A plane touches A and small parts of B, so that its working set stays in L1.
  [[nodiscard]] std::size_t workspace_size() const {
    return static_cast<std::size_t>(h) * (4 * static_cast<std::size_t>(ld) + (cols->folded() ? 0 : margin_ld()));
  }
  [[nodiscard]] std::size_t framed_offset() const { return 4 * static_cast<std::size_t>(h) * ld; }
  [[nodiscard]] std::string describe() const {
    return softdiff::detail::concat("rows (H=", h, "): ", rows->describe(), ", columns (W=", w, "): ", cols->describe());
  }
};

/// Vector multiply-adds (and moves) that blur_plane spends for this pair of representations.
template <class T>
double plane_cost(const axis_rep<T>& rh, const axis_rep<T>& rw, int h, int w) {
  const auto full = [](int k) { return [k](int) { return std::pair<int, int>{0, k}; }; };
  const auto rows_of = [](const coeff_matrix<T>& c) { return [&c](int i) { return std::pair<int, int>{c.lo[i], c.hi[i]}; }; };
  const auto vecs_of = [](const coeff_matrix<T>& c) { return [&c](int v) { return std::pair<int, int>{c.vlo[v], c.vhi[v]}; }; };
  const int w0 = rw.folded() ? vectors_for<T>(rw.me) + vectors_for<T>(rw.mo) : vectors_for<T>(w);
  const auto columns = [&](int m) {  // the column stage on m rows
    if (!rw.folded()) return static_cast<double>(m) * vectors_for<T>(w) * (2 * rw.radius + 2);
    double c = 0;
    for (const auto& k : rw.compress) c += gemm_windowed_work(m, vectors_for<T>(k.rows), full(k.cols), vecs_of(k));
    if (rw.low_rank())
      for (const auto& e : rw.expand) c += gemm_windowed_work(m, vectors_for<T>(e.rows), full(e.cols), full(e.cols));
    return c;
  };
  // ingest and emit: a copy, plus a pass for each folded axis
  double cost = 2.0 * h * w0 * (1 + rh.folded() + rw.folded());
  if (!rh.folded()) {
    cost += gemm_windowed_work(h, w0, [&](int i) { return rh.band_window(i); }, full(h), rh.band_tile_rows());
    cost += columns(h);
  } else if (!rh.low_rank()) {
    for (const auto& c : rh.compress) cost += gemm_windowed_work(c.rows, w0, rows_of(c), full(c.cols)) + columns(c.rows);
  } else {
    for (const auto& c : rh.compress) cost += gemm_windowed_work(c.rows, w0, rows_of(c), full(c.cols));
    cost += columns(rh.ke + rh.ko);
    for (const auto& e : rh.expand) cost += gemm_windowed_work(e.rows, w0, full(e.cols), full(e.cols));
  }
  return cost;
}

/// Chooses, among the candidates of each axis, the pair of least modelled cost.
template <class T>
plane_plan<T> make_plane_plan(const std::vector<double>& g_h, const std::vector<double>& g_w, int h, int w) {
  const auto ch = axis_candidates<T>(g_h, h);
  const auto cw = h == w && g_h == g_w ? ch : axis_candidates<T>(g_w, w);
  plane_plan<T> best;
  best.h = h;
  best.w = w;
  best.cost = std::numeric_limits<double>::infinity();
  for (const auto& rh : ch)
    for (const auto& rw : cw) {
      const double c = plane_cost(*rh, *rw, h, w);
      if (c < best.cost) {
        best.cost = c;
        best.rows = rh;
        best.cols = rw;
      }
    }
  best.ld = best.cols->folded() ? padded<T>(best.cols->me) + padded<T>(best.cols->mo) : padded<T>(w);
  return best;
}

/// A plan with the given forms (for tests and benchmarks that exercise each form).
template <class T>
plane_plan<T> make_plane_plan(const std::vector<double>& g_h, const std::vector<double>& g_w, int h, int w,
                              axis_kind kh, axis_kind kw) {
  plane_plan<T> p;
  p.h = h;
  p.w = w;
  for (const auto& c : axis_candidates<T>(g_h, h, true))
    if (c->kind == kh) p.rows = c;
  for (const auto& c : axis_candidates<T>(g_w, w, true))
    if (c->kind == kw) p.cols = c;
  softdiff::detail::require(p.rows && p.cols, "separable Toeplitz plan: the representation ", to_string(p.rows ? kw : kh),
          " is not available for an axis of length ", p.rows ? w : h,
          " (folded forms need 2 <= n <= ", max_folded_side, "; low rank needs float)");
  p.cost = plane_cost(*p.rows, *p.cols, h, w);
  p.ld = p.cols->folded() ? padded<T>(p.cols->me) + padded<T>(p.cols->mo) : padded<T>(w);
  return p;
}

}  // namespace softdiff::backend::detail
