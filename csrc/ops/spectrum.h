// Spectral ops of explanation maps (docs/methods.md §7), for 1-D signals, 2-D images and 3-D volumes.
//
// rank_normalize(maps (B, ...)) -> (B, ...): average ranks (1..N, ties averaged) divided by
//   N = the number of elements per map; the result equals scipy.stats.rankdata(m, "average") / N.
// radial_power_spectrum(maps (B, L) | (B, H, W) | (B, D, H, W)) -> (B, K): P = |FFTn(m)|^2 over
//   the map's 1, 2 or 3 axes (no mean removal, no window), the centred integer radius
//   k = floor(sqrt(sum_i c_i^2)) of each frequency (c_i centred at n_i // 2 as after fftshift),
//   S_k = mean of P over shell k, K = max k + 1.  The FFT is ATen's real FFT (pocketfft / cuFFT)
//   over all map axes; its Hermitian half is folded in with weight 2 for the last-axis columns
//   whose mirror is not stored.  Accumulation in float64; output float64 for float64 maps, else
//   float32.  Internally every map is a D x H x W grid, with D = 1 (2-D) or D = H = 1 (1-D), so
//   the 2-D loop order and arithmetic are those of the former 2-D-only op.
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/macros.h"  // SXAI_HD

namespace spectral_xai {

// Integer floor(sqrt(r2)) without floating-point rounding surprises.
SXAI_HD int64_t isqrt(int64_t r2) {
  int64_t k = static_cast<int64_t>(sqrt(static_cast<double>(r2)));
  while ((k + 1) * (k + 1) <= r2) ++k;
  while (k * k > r2) --k;
  return k;
}

// A map's axes as a D x H x W grid (leading axes of size 1 for 1-D and 2-D maps).
struct Grid {
  int64_t D, H, W;
  int64_t size() const { return D * H * W; }
};

// Number of shells K of a grid: floor(sqrt((D/2)^2 + (H/2)^2 + (W/2)^2)) + 1.
inline int64_t radial_bins(const Grid& g) {
  const int64_t d = g.D / 2, h = g.H / 2, w = g.W / 2;
  return isqrt(d * d + h * h + w * w) + 1;
}

// Centred frequency index of FFT row u (as after fftshift): ((u + n/2) mod n) - n/2.
SXAI_HD int64_t centred_index(int64_t u, int64_t n) { return ((u + n / 2) % n) - n / 2; }

// Weight of half-spectrum column v (0 <= v <= W/2) in the full spectrum: 1 if its mirror column
// W - v is itself (v = 0, or v = W/2 for even W), else 2.
SXAI_HD int column_weight(int64_t v, int64_t W) { return (v == 0 || 2 * v == W) ? 1 : 2; }

// Average rank / N of the sorted positions [first, end) of a tie run in a map of N values
// (ranks first+1 .. end), the same division on host and device.
SXAI_HD double average_rank(int64_t first, int64_t end, int64_t N) {
  return 0.5 * static_cast<double>(first + 1 + end) / static_cast<double>(N);
}

// Elements of the full spectrum in each shell (host).
std::vector<int64_t> ring_counts(const Grid& g);

// Validates floating (B, L), (B, H, W) or (B, D, H, W) maps (shared by CPU and CUDA).
void spectrum_check(const at::Tensor& maps, const char* op);

// rank_normalize's checks before any data is read (both backends): floating (B, ...) maps with
// at least one map axis and fewer than 2^31 elements per map.
void rank_normalize_check(const at::Tensor& maps);

// Elements per map of (B, ...) maps.
int64_t map_numel(const at::Tensor& maps);

// Raises the ValueError of maps holding a NaN (both backends).
void rank_normalize_raise_nan();

// radial_power_spectrum's shared preparation: checks, the zeroed (B, K) output and, unless the
// maps are empty, their real FFT over all map axes (B, D, H, W/2+1) as a contiguous complex tensor.
struct RadialArgs {
  at::Tensor out, spec;
  Grid grid;
  int64_t K;
};
RadialArgs radial_prepare(const at::Tensor& maps);

}  // namespace spectral_xai
