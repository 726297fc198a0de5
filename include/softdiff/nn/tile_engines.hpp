#pragma once
// The two engines that run the tile programs of conv_bf16.hpp and conv_bf16_grad.hpp: Intel AMX (TDPBF16PS on eight tile
// registers) and a scalar emulation of the same instructions, so that the packing, tiling and
// cropping around them are tested on every processor. Tiles, as the program uses them:
//   0-3  C: 16 rows x 16 float32 (64 bytes a row)
//   4-5  A: 16 rows x kc bfloat16 (kc = 16 or 32 channels a K step)
//   6-7  B: kc/2 rows x 16 pairs of bfloat16 (VNNI: a row holds 16 columns, 2 channels each)
//   dp<C, A, B>: C[m][n] += sum_k A[m][2k] B[k][2n] + A[m][2k+1] B[k][2n+1], in float32
// amx_status() says whether the processor and the kernel let this process use AMX, and if not,
// what is missing (named as /proc/cpuinfo names the flags).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "softdiff/nn/precision.hpp"

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define SOFTDIFF_AMX_CODE 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define SOFTDIFF_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#else
#define SOFTDIFF_AMX_CODE 0
#define SOFTDIFF_AMX_TARGET
#endif

namespace softdiff::nn {

/// Whether AMX-BF16 can run in this process; `missing` names what is lacking otherwise.
struct amx_support {
  bool usable = false;
  std::string missing;
};

namespace detail {

/// The verdict for a processor with (or without) the two CPUID flags and an operating system
/// that granted (or refused) the tile-data state.
[[nodiscard]] inline amx_support amx_verdict(bool amx_tile, bool amx_bf16, bool os_grants) {
  std::string missing;
  if (!amx_tile) missing += "amx_tile";
  if (!amx_bf16) missing += std::string(missing.empty() ? "" : " and ") + "amx_bf16";
  if (!missing.empty()) return {false, "the processor lacks the " + missing + " feature (Intel AMX)"};
  if (!os_grants)
    return {false, "the kernel did not grant the AMX tile data state (arch_prctl ARCH_REQ_XCOMP_PERM; Linux 5.16 or later)"};
  return {true, {}};
}

[[nodiscard]] inline amx_support probe_amx() {
#if SOFTDIFF_AMX_CODE
  unsigned a = 0, b = 0, c = 0, d = 0;
  bool tile = false, bf16 = false;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) tile = (d >> 24) & 1u, bf16 = (d >> 22) & 1u;
  bool granted = false;
  if (tile && bf16) {
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    granted = syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
  }
  return amx_verdict(tile, bf16, granted);
#else
  return {false, "this build has no AMX code (it needs x86-64 Linux and GCC or Clang)"};
#endif
}

}  // namespace detail

/// Probed once per process (the permission request is made then).
[[nodiscard]] inline const amx_support& amx_status() {
  static const amx_support s = detail::probe_amx();
  return s;
}

/// Throws, naming what is missing, unless `engine` can run here.
inline void require_bf16_engine(bf16_engine engine) {
  if (engine == bf16_engine::emulated) return;
  const amx_support& s = amx_status();
  if (!s.usable) throw error("bf16 precision needs Intel AMX-BF16, but " + s.missing + "; use float32");
}

namespace detail {

/// Scalar emulation of the eight tiles, one set per thread.
struct emulated_tiles {
  struct registers {
    float c[4][16][16];
    std::uint16_t a[2][16][32];
    std::uint32_t b[2][16][16];
    int kc = 32;
  };
  static registers& r() {
    thread_local registers regs;
    return regs;
  }
  static void configure(int kc) { r().kc = kc; }
  static void release() {}
  template <int C>
  static void zero() {
    std::memset(r().c[C], 0, sizeof(r().c[C]));
  }
  template <int C>
  static void load_c(const float* p, std::size_t stride_bytes) {
    for (int m = 0; m < 16; ++m) std::memcpy(r().c[C][m], reinterpret_cast<const char*>(p) + m * stride_bytes, 64);
  }
  template <int A>
  static void load_a(const std::uint16_t* p, std::size_t stride_bytes) {
    for (int m = 0; m < 16; ++m)
      std::memcpy(r().a[A][m], reinterpret_cast<const char*>(p) + m * stride_bytes, std::size_t(r().kc) * 2);
  }
  template <int B>
  static void load_b(const std::uint32_t* p, std::size_t stride_bytes) {
    for (int k = 0; k < r().kc / 2; ++k)
      std::memcpy(r().b[B][k], reinterpret_cast<const char*>(p) + k * stride_bytes, 64);
  }
  template <int C, int A, int B>
  static void dp() {
    registers& t = r();
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) {
        float acc = t.c[C][m][n];
        for (int k = 0; k < t.kc / 2; ++k) {
          const std::uint32_t pair = t.b[B][k][n];
          acc += from_bf16(t.a[A][m][2 * k]) * from_bf16(static_cast<std::uint16_t>(pair & 0xffffu));
          acc += from_bf16(t.a[A][m][2 * k + 1]) * from_bf16(static_cast<std::uint16_t>(pair >> 16));
        }
        t.c[C][m][n] = acc;
      }
  }
  template <int C>
  static void store(float* p, std::size_t stride_bytes) {
    for (int m = 0; m < 16; ++m) std::memcpy(reinterpret_cast<char*>(p) + m * stride_bytes, r().c[C][m], 64);
  }
};

#if SOFTDIFF_AMX_CODE
/// Intel AMX: the same operations on the tile registers (palette 1).
struct amx_tiles {
  struct alignas(64) tile_config {
    std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
    std::uint16_t colsb[16] = {};
    std::uint8_t rows[16] = {};
  };
  SOFTDIFF_AMX_TARGET static void configure(int kc) {
    tile_config cfg;
    for (int t = 0; t < 4; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    for (int t = 4; t < 6; ++t) cfg.rows[t] = 16, cfg.colsb[t] = static_cast<std::uint16_t>(kc * 2);
    for (int t = 6; t < 8; ++t) cfg.rows[t] = static_cast<std::uint8_t>(kc / 2), cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
  }
  SOFTDIFF_AMX_TARGET static void release() { _tile_release(); }
  // GCC's AMX intrinsics paste the tile number into the instruction text: literal numbers only.
  template <int C>
  SOFTDIFF_AMX_TARGET static void zero() {
    if constexpr (C == 0) _tile_zero(0);
    else if constexpr (C == 1) _tile_zero(1);
    else if constexpr (C == 2) _tile_zero(2);
    else _tile_zero(3);
  }
  template <int C>
  SOFTDIFF_AMX_TARGET static void load_c(const float* p, std::size_t stride_bytes) {
    if constexpr (C == 0) _tile_loadd(0, p, stride_bytes);
    else if constexpr (C == 1) _tile_loadd(1, p, stride_bytes);
    else if constexpr (C == 2) _tile_loadd(2, p, stride_bytes);
    else _tile_loadd(3, p, stride_bytes);
  }
  template <int A>
  SOFTDIFF_AMX_TARGET static void load_a(const std::uint16_t* p, std::size_t stride_bytes) {
    if constexpr (A == 0) _tile_loadd(4, p, stride_bytes);
    else _tile_loadd(5, p, stride_bytes);
  }
  template <int B>
  SOFTDIFF_AMX_TARGET static void load_b(const std::uint32_t* p, std::size_t stride_bytes) {
    if constexpr (B == 0) _tile_loadd(6, p, stride_bytes);
    else _tile_loadd(7, p, stride_bytes);
  }
  /// The four products the program issues: C0 = A0 B0, C1 = A0 B1, C2 = A1 B0, C3 = A1 B1.
  template <int C, int A, int B>
  SOFTDIFF_AMX_TARGET static void dp() {
    static_assert(C == 2 * A + B, "tile C = 2 A + B");
    if constexpr (C == 0) _tile_dpbf16ps(0, 4, 6);
    else if constexpr (C == 1) _tile_dpbf16ps(1, 4, 7);
    else if constexpr (C == 2) _tile_dpbf16ps(2, 5, 6);
    else _tile_dpbf16ps(3, 5, 7);
  }
  template <int C>
  SOFTDIFF_AMX_TARGET static void store(float* p, std::size_t stride_bytes) {
    if constexpr (C == 0) _tile_stored(0, p, stride_bytes);
    else if constexpr (C == 1) _tile_stored(1, p, stride_bytes);
    else if constexpr (C == 2) _tile_stored(2, p, stride_bytes);
    else _tile_stored(3, p, stride_bytes);
  }
};
#endif

}  // namespace detail
}  // namespace softdiff::nn
