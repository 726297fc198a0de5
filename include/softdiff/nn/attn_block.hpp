#pragma once
// AttnBlock(ch) of docs/refunet.md, named P:
//   y = GN(ch)(x)                                   P.norm
//   q, k, v = Conv1x1(ch, ch)(y) each               P.q, P.k, P.v
//   a = softmax_j(q_i . k_j / sqrt(ch))             over the H*W positions
//   out = x + Conv1x1(ch, ch)(sum_j a_ij v_j)       P.proj
// Backward (the gradient rule, once): the residual passes dout straight to x; the branch
// runs proj, attention, then q/k/v backward, whose three input gradients add before the
// GroupNorm backward: dx = dout + GN^T(dq_in + dk_in + dv_in).
#include <cstddef>
#include <string>
#include <string_view>

#include "softdiff/nn/attention.hpp"
#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/parameter_store.hpp"

namespace softdiff::nn {

template <class T = float>
struct attn_block {
  using scalar_type = T;

  std::size_t channels = 0;
  group_norm<T> norm;
  conv2d<T> q, k, v, proj;
  attention<T> core;
  batch<T> out;  // output of the last forward

  attn_block() = default;
  attn_block(std::size_t channels_, std::size_t groups, double eps = 1e-5)
      : channels(channels_), norm(groups, channels_, eps), q(channels_, channels_, 1), k(channels_, channels_, 1),
        v(channels_, channels_, 1), proj(channels_, channels_, 1), core(channels_) {}

  /// Registers P.norm, P.q, P.k, P.v, P.proj (weight and bias each), P = prefix.
  void declare(parameter_store<T>& store, std::string_view prefix) {
    const std::string p(prefix);
    norm.declare(store, p + ".norm");
    q.declare(store, p + ".q");
    k.declare(store, p + ".k");
    v.declare(store, p + ".v");
    proj.declare(store, p + ".proj");
  }
  void bind(parameter_store<T>& store) {
    norm.bind(store), q.bind(store), k.bind(store), v.bind(store), proj.bind(store);
  }
  void init(const noise_source& noise) {
    norm.init(noise), q.init(noise), k.init(noise), v.init(noise), proj.init(noise);
  }

  const batch<T>& forward(const batch<T>& x) {
    const batch<T>& y = norm.forward(x);
    const batch<T>& o = core.forward(q.forward(y), k.forward(y), v.forward(y));
    const batch<T>& p = proj.forward(o);
    ensure_shape(out, shape_of(x));
    const T *xp = x.data(), *pp = p.data();
    T* op = out.data();
    const auto n = static_cast<std::ptrdiff_t>(x.size());
#pragma omp parallel for simd schedule(static) num_threads(detail::layer_threads()) if (static_cast<std::size_t>(n) > detail::parallel_threshold)
    for (std::ptrdiff_t i = 0; i < n; ++i) op[i] = xp[i] + pp[i];
    return out;
  }

  /// Adds every parameter gradient; returns dL/dx (a buffer of this block, valid until the next backward).
  const batch<T>& backward(const batch<T>& dout) {
    SOFTDIFF_REQUIRE(shape_of(dout) == shape_of(out), "attn_block::backward: dout ", to_string(shape_of(dout)),
                    " does not match the forward output ", to_string(shape_of(out)));
    const attention_grads<T> g = core.backward(proj.backward(dout));
    q.backward(g.dq), k.backward(g.dk), v.backward(g.dv);
    T* s = q.dx.data();
    const T *a = k.dx.data(), *b = v.dx.data();
    const auto n = static_cast<std::ptrdiff_t>(q.dx.size());
#pragma omp parallel for simd schedule(static) num_threads(detail::layer_threads()) if (static_cast<std::size_t>(n) > detail::parallel_threshold)
    for (std::ptrdiff_t i = 0; i < n; ++i) s[i] += a[i] + b[i];
    norm.backward(q.dx);
    T* dx = norm.dx.data();
    const T* gp = dout.data();
#pragma omp parallel for simd schedule(static) num_threads(detail::layer_threads()) if (static_cast<std::size_t>(n) > detail::parallel_threshold)
    for (std::ptrdiff_t i = 0; i < n; ++i) dx[i] += gp[i];
    return norm.dx;
  }
};

static_assert(Layer<attn_block<float>>);
static_assert(Layer<attn_block<double>>);

}  // namespace softdiff::nn
