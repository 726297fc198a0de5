#pragma once
// Arithmetic precision of the network's 3 x 3 and 1 x 1 convolutions, and bfloat16 conversion.
//
// float32 (the default) is the reference arithmetic: gradient checks, golden tests.
// bf16 is an option for training and inference: the convolution's inputs, weights and (in
// backward) output gradients are rounded to bfloat16 (8 bits of mantissa), products are exact
// and sums are float32 (AMX TDPBF16PS: conv_bf16.hpp forward and dx, conv_bf16_grad.hpp dW);
// everything else (GroupNorm, SiLU, attention, the time embedding, the loss, the optimiser and
// its float32 master weights, the sampler) stays float32. It is never chosen silently: the
// caller asks for it (refunet::set_precision, `softdiff train|sample|eval --precision bf16`),
// a checkpoint records the precision it was trained in, and a processor without AMX-BF16
// refuses it naming the missing feature (tile_engines.hpp).
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "softdiff/error.hpp"

namespace softdiff::nn {

enum class precision { float32, bf16 };

/// How bf16 tiles are computed: on the processor's AMX unit, or emulated in scalar code (the
/// same packing and tiling, for tests on any processor; far too slow for real use).
enum class bf16_engine { amx, emulated };

[[nodiscard]] inline std::string_view precision_name(precision p) { return p == precision::bf16 ? "bf16" : "float32"; }

[[nodiscard]] inline precision parse_precision(std::string_view s) {
  if (s == "float32" || s == "fp32") return precision::float32;
  if (s == "bf16" || s == "bfloat16") return precision::bf16;
  throw error(softdiff::detail::concat("unknown precision '", s, "' (expected float32 or bf16)"));
}

namespace detail {

/// float -> bfloat16 bits, rounded to nearest even (NaN stays a quiet NaN).
inline std::uint16_t to_bf16(float f) {
  const auto u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/// bfloat16 bits -> float (exact).
inline float from_bf16(std::uint16_t h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

}  // namespace detail
}  // namespace softdiff::nn
