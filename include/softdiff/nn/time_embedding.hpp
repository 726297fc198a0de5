#pragma once
// The time conditioning of docs/refunet.md. t in [0, 1], one per sample:
//   emb0 = [sin(t f_0 1000), ..., sin(t f_{h-1} 1000), cos(t f_0 1000), ..., cos(t f_{h-1} 1000)]
//   h = c / 2,  f_k = exp(-ln(10000) k / (h - 1))
//   temb = Linear(4c, 4c)(SiLU(Linear(c, 4c)(emb0)))        temb.0, temb.2
// t is not learned: backward gives the MLP's parameter gradients only.
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/linear.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "softdiff/nn/silu.hpp"

namespace softdiff::nn {

/// out [N, dim] = emb0(t) above, dim = c even and >= 4; computed in double.
template <class T>
void sinusoidal_embedding(std::span<const double> t, std::size_t dim, matrix<T>& out) {
  SOFTDIFF_REQUIRE(dim >= 4 && dim % 2 == 0, "sinusoidal_embedding: dimension ", dim, " must be even and >= 4");
  for (std::size_t n = 0; n < t.size(); ++n)
    SOFTDIFF_REQUIRE(std::isfinite(t[n]), "sinusoidal_embedding: non-finite t ", t[n], " at sample ", n);
  const std::size_t h = dim / 2;
  detail::ensure_shape(out, std::array<std::size_t, 2>{t.size(), dim});
  for (std::size_t n = 0; n < t.size(); ++n)
    for (std::size_t k = 0; k < h; ++k) {
      const double f = std::exp(-std::log(10000.0) * static_cast<double>(k) / static_cast<double>(h - 1));
      const double arg = t[n] * f * 1000.0;
      out(n, k) = static_cast<T>(std::sin(arg));
      out(n, h + k) = static_cast<T>(std::cos(arg));
    }
}

template <class T = float>
struct time_embedding {
  using scalar_type = T;

  std::size_t base_channels = 0;  // c
  linear<T> fc0, fc2;             // Linear(c, 4c), Linear(4c, 4c): checkpoint names P.0, P.2
  silu<T, 2> act;
  matrix<T> emb0;                 // [N, c] of the last forward

  time_embedding() = default;
  explicit time_embedding(std::size_t c) : base_channels(c), fc0(c, 4 * c), fc2(4 * c, 4 * c) {
    SOFTDIFF_REQUIRE(c >= 4 && c % 2 == 0, "time_embedding: base channels ", c, " must be even and >= 4");
  }

  [[nodiscard]] std::size_t channels() const { return 4 * base_channels; }

  /// Registers P.0.weight, P.0.bias, P.2.weight, P.2.bias (P = "temb" in RefUNet).
  void declare(parameter_store<T>& store, std::string_view prefix) {
    fc0.declare(store, std::string(prefix) + ".0");
    fc2.declare(store, std::string(prefix) + ".2");
  }
  void bind(parameter_store<T>& store) { fc0.bind(store), fc2.bind(store); }
  void init(const noise_source& noise) { fc0.init(noise), fc2.init(noise); }

  /// temb [N, 4c] (fc2.y; valid until the next forward).
  const matrix<T>& forward(std::span<const double> t) {
    sinusoidal_embedding(t, base_channels, emb0);
    return fc2.forward(act.forward(fc0.forward(emb0)));
  }

  /// Adds the gradients of temb.0 and temb.2 for dL/dtemb.
  void backward(const matrix<T>& dtemb) { fc0.backward(act.backward(fc2.backward(dtemb)), false); }
};

}  // namespace softdiff::nn
