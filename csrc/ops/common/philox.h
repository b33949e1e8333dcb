// Counter-based normal noise shared by the CPU and CUDA kernels.
//
// Philox4x32-10 (Salmon et al., SC'11) maps a 128-bit counter and a 64-bit key to four
// 32-bit words.  The noise of one element is keyed by
//   key     = seed (64 bits)
//   counter = (element / 4, sample index, sigma index, image id)
// and lane element % 4 of the result.  Box-Muller turns each pair of words into two
// standard normals.  Only IEEE-exact float32 operations (+, -, *, /, sqrt) are used, with
// our own polynomials for log/sin/cos and no fused multiply-add (the build disables FMA
// contraction for these files), so the host and the device draw bit-identical values.
// The pure-PyTorch reference in spectral_xai/ops/_philox.py mirrors this file line by line.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "macros.h"  // SXAI_HD

namespace spectral_xai {
namespace philox {

constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;
constexpr uint32_t kW1 = 0xBB67AE85u;

struct U4 {
  uint32_t x, y, z, w;
};

SXAI_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds.
SXAI_HD U4 philox4x32_10(U4 c, uint32_t k0, uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c.x, hi0, lo0);
    mulhilo(kM1, c.z, hi1, lo1);
    c = U4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

SXAI_HD float bits_to_float(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof(f));
  return f;
}

SXAI_HD uint32_t float_to_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof(b));
  return b;
}

// Float32 constants, written as exact hexadecimal values.
constexpr float kInv3 = 0x1.555556p-2f;
constexpr float kInv5 = 0x1.99999ap-3f;
constexpr float kInv7 = 0x1.24924ap-3f;
constexpr float kInv9 = 0x1.c71c72p-4f;
constexpr float kLn2 = 0x1.62e430p-1f;
constexpr float kSqrt2 = 0x1.6a09e6p+0f;
constexpr float kHalfPi = 0x1.921fb6p+0f;
constexpr float kS3 = 0x1.555556p-3f;
constexpr float kS5 = 0x1.111112p-7f;
constexpr float kS7 = 0x1.a01a02p-13f;
constexpr float kS9 = 0x1.71de3ap-19f;
constexpr float kC4 = 0x1.555556p-5f;
constexpr float kC6 = 0x1.6c16c2p-10f;
constexpr float kC8 = 0x1.a01a02p-16f;
constexpr float kC10 = 0x1.27e4fcp-22f;
constexpr float kTwoPow24Inv = 0x1.0p-24f;
constexpr float kTwoPow22Inv = 0x1.0p-22f;

// Natural log of a positive, normal float: u = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172 (series error < 1e-9).
SXAI_HD float log_f32(float u) {
  const uint32_t bits = float_to_bits(u);
  // Integer-only reduction (no float compare or branch, so that host loops vectorise):
  // m = mantissa in [1, 2); if m > sqrt(2), halve it (exponent - 1, exact) and add 1 to e.
  const uint32_t m1 = (bits & 0x7fffffu) | 0x3f800000u;
  const uint32_t big = m1 > float_to_bits(kSqrt2) ? 1u : 0u;
  const int e = static_cast<int>((bits >> 23) & 0xffu) - 127 + static_cast<int>(big);
  const float m = bits_to_float(m1 - (big << 23));
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  float p = kInv9;
  p = p * s2 + kInv7;
  p = p * s2 + kInv5;
  p = p * s2 + kInv3;
  p = p * s2 + 1.0f;
  const float ln_m = 2.0f * s * p;
  return ln_m + static_cast<float>(e) * kLn2;
}

// sin and cos of a in [-pi/4, pi/4] by Taylor polynomials (error < 2e-9).
SXAI_HD void sincos_small_f32(float a, float& s, float& c) {
  const float a2 = a * a;
  float ps = kS9;
  ps = ps * a2 - kS7;
  ps = ps * a2 + kS5;
  ps = ps * a2 - kS3;
  ps = ps * a2 + 1.0f;
  s = a * ps;
  float pc = kC10;
  pc = kC8 - pc * a2;
  pc = kC6 - pc * a2;
  pc = kC4 - pc * a2;
  pc = 0.5f - pc * a2;
  c = 1.0f - pc * a2;
}

// Four standard normals from the four words of one Philox block.
// Words (x, y) give the first pair, (z, w) the second.  For a pair (u, v):
//   r     = sqrt(-2 ln U),  U = (2 (u >> 9) + 1) 2^-24 in (0, 1)   (|z| <= 5.77)
//   theta = q pi/2 + a,     q = v >> 30,  a = (F - 1/2) pi/2,
//   F     = (((v >> 8) & (2^22 - 1)) + 1/2) 2^-22 in (0, 1)
// theta is uniform over a full turn (shifted by -pi/4, which changes nothing).
SXAI_HD void box_muller_pair(uint32_t u, uint32_t v, float& z0, float& z1) {
  const float uu = static_cast<float>(((u >> 9) << 1) | 1u) * kTwoPow24Inv;
  #if defined(__CUDA_ARCH__)
  const float r = __fsqrt_rn(-2.0f * log_f32(uu));
#else
  const float r = std::sqrt(-2.0f * log_f32(uu));
#endif
  const uint32_t q = v >> 30;
  const float f = (static_cast<float>((v >> 8) & 0x3fffffu) + 0.5f) * kTwoPow22Inv;
  const float a = (f - 0.5f) * kHalfPi;
  float s, c;
  sincos_small_f32(a, s, c);
  // Rotate (c, s) by q quarter turns: q=0 (c, s), 1 (-s, c), 2 (-c, -s), 3 (s, -c).
  // Written with bit operations only (sign flips are exact), so that host loops vectorise.
  const uint32_t odd = q & 1u;
  const uint32_t flip_c = (q ^ (q >> 1)) & 1u;  // q = 1 or 2
  const uint32_t flip_s = q >> 1;               // q = 2 or 3
  const uint32_t cb = float_to_bits(c), sb = float_to_bits(s);
  const uint32_t pick = 0u - odd;  // all ones when odd
  const uint32_t cs0 = (sb & pick) | (cb & ~pick);
  const uint32_t sn0 = (cb & pick) | (sb & ~pick);
  const float cs = bits_to_float(cs0 ^ (flip_c << 31));
  const float sn = bits_to_float(sn0 ^ (flip_s << 31));
  z0 = r * cs;
  z1 = r * sn;
}

// The four normals of block `group` (elements 4*group .. 4*group+3) of one
// (seed, image id, sigma index, sample index) stream.
SXAI_HD void normal4(uint64_t seed, uint32_t image_id, uint32_t sigma_index, uint32_t sample_index,
                     uint32_t group, float out[4]) {
  const U4 r = philox4x32_10(U4{group, sample_index, sigma_index, image_id},
                             static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  box_muller_pair(r.x, r.y, out[0], out[1]);
  box_muller_pair(r.z, r.w, out[2], out[3]);
}

// Normals of `count` consecutive blocks starting at `first_group` into out[4 * count]
// (host only).  Split into simple loops over arrays so that the compiler vectorises them;
// the values are exactly those of normal4.
#if !defined(__CUDACC__)
inline void normal4_blocks(uint64_t seed, uint32_t image_id, uint32_t sigma_index, uint32_t sample_index,
                           uint32_t first_group, int count, float* out) {
  constexpr int kMax = 64;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int base = 0; base < count; base += kMax) {
    const int n = count - base < kMax ? count - base : kMax;
    // Philox rounds with the loop over blocks innermost (structure of arrays), so that the
    // 32x32->64 multiplies vectorise; same values as philox4x32_10.
    uint32_t c0[kMax], c1[kMax], c2[kMax], c3[kMax];
    for (int t = 0; t < n; ++t) {
      c0[t] = first_group + static_cast<uint32_t>(base + t);
      c1[t] = sample_index;
      c2[t] = sigma_index;
      c3[t] = image_id;
    }
    uint32_t r0 = k0, r1 = k1;
    for (int round = 0; round < 10; ++round) {
      for (int t = 0; t < n; ++t) {
        const uint64_t p0 = static_cast<uint64_t>(kM0) * c0[t];
        const uint64_t p1 = static_cast<uint64_t>(kM1) * c2[t];
        const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[t] ^ r0;
        const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[t] ^ r1;
        c1[t] = static_cast<uint32_t>(p1);
        c3[t] = static_cast<uint32_t>(p0);
        c0[t] = n0;
        c2[t] = n2;
      }
      r0 += kW0;
      r1 += kW1;
    }
    float z0[kMax], z1[kMax], z2[kMax], z3[kMax];
    for (int t = 0; t < n; ++t) box_muller_pair(c0[t], c1[t], z0[t], z1[t]);
    for (int t = 0; t < n; ++t) box_muller_pair(c2[t], c3[t], z2[t], z3[t]);
    for (int t = 0; t < n; ++t) {
      float* o = out + 4 * (base + t);
      o[0] = z0[t];
      o[1] = z1[t];
      o[2] = z2[t];
      o[3] = z3[t];
    }
  }
}
#endif

}  // namespace philox
}  // namespace spectral_xai
