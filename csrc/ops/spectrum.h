// Spectral ops of explanation maps (SPEC §7).
//
// rank_normalize(maps (B, H, W)) -> (B, H, W): average ranks (1..N, ties averaged) divided by
//   N = H*W, per map; the result equals scipy.stats.rankdata(m, "average") / N.
// radial_power_spectrum(maps (B, H, W)) -> (B, K): P = |FFT2(m)|^2 (no mean removal, no window),
//   the centred integer radius k = floor(sqrt(u^2 + v^2)) of each frequency (u, v centred at
//   (H//2, W//2) as after fftshift), S_k = mean of P over ring k, K = max k + 1.  The FFT is
//   ATen's real FFT (pocketfft / cuFFT); its Hermitian half is folded in with weight 2 for the
//   columns whose mirror is not stored.  Accumulation in float64; output float64 for float64
//   maps, else float32.
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/philox.h"  // SXAI_HD

namespace spectral_xai {

// Number of rings K for an H x W map.
inline int64_t radial_bins(int64_t H, int64_t W) {
  const int64_t h = H / 2, w = W / 2;
  int64_t k = static_cast<int64_t>(std::sqrt(static_cast<double>(h * h + w * w)));
  while ((k + 1) * (k + 1) <= h * h + w * w) ++k;  // exact integer floor of the square root
  while (k * k > h * h + w * w) --k;
  return k + 1;
}

// Centred frequency index of FFT row u (as after fftshift): ((u + H/2) mod H) - H/2.
SXAI_HD int64_t centred_index(int64_t u, int64_t n) { return ((u + n / 2) % n) - n / 2; }

// Integer floor(sqrt(r2)) without floating-point rounding surprises.
SXAI_HD int64_t isqrt(int64_t r2) {
  int64_t k = static_cast<int64_t>(sqrt(static_cast<double>(r2)));
  while ((k + 1) * (k + 1) <= r2) ++k;
  while (k * k > r2) --k;
  return k;
}

// Weight of half-spectrum column v (0 <= v <= W/2) in the full spectrum: 1 if its mirror column
// W - v is itself (v = 0, or v = W/2 for even W), else 2.
SXAI_HD int column_weight(int64_t v, int64_t W) { return (v == 0 || 2 * v == W) ? 1 : 2; }

// Average rank / N of the sorted positions [first, end) of a tie run in a map of N values
// (ranks first+1 .. end), the same division on host and device.
SXAI_HD double average_rank(int64_t first, int64_t end, int64_t N) {
  return 0.5 * static_cast<double>(first + 1 + end) / static_cast<double>(N);
}

// Elements of the full H x W spectrum in each ring (host).
std::vector<int64_t> ring_counts(int64_t H, int64_t W);

// Validates (B, H, W) floating maps without NaN handling (shared by CPU and CUDA).
void spectrum_check(const at::Tensor& maps, const char* op);

// rank_normalize's checks before any data is read (both backends): spectrum_check and
// fewer than 2^31 pixels per map.
void rank_normalize_check(const at::Tensor& maps);

// Raises the ValueError of maps holding a NaN (both backends).
void rank_normalize_raise_nan();

// radial_power_spectrum's shared preparation: checks, the zeroed (B, K) output and, unless
// the maps are empty, their real FFT (B, H, W/2+1) as a contiguous complex tensor.
struct RadialArgs {
  at::Tensor out, spec;
  int64_t H, W, K;
};
RadialArgs radial_prepare(const at::Tensor& maps);

#ifdef SXAI_WITH_CUDA
at::Tensor rank_normalize_cuda(const at::Tensor& maps);
at::Tensor radial_power_spectrum_cuda(const at::Tensor& maps);
#endif

}  // namespace spectral_xai
