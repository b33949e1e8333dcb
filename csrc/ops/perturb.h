// perturb: Philox noise + mixing written straight into the perturbed batch.
//
//   out[r] = a_r * x[b] + c_r * eps(seed, image_ids[b], j, i)      (additive, convex)
//   out[r] = a_r * x[b] + c_r * baseline[b]                       (damping)
// with (b, j, i) = rows[r] (image slot, sigma index, sample index) and
//   additive: a = 1,       c = sigmas[j] * scales[b]
//   convex:   a = 1 - s_j, c = sigmas[j] * scales[b]
//   damping:  a = 1 - s_j, c = sigmas[j]
// Shapes: x (B, C, H, W); rows (N, 3) int64; sigmas (S,) float64; scales (B,) float64;
// image_ids (B,) int64; baseline (B, C, H, W) or undefined (zeros).  out (N, C, H, W) in
// x's dtype and memory format.  Arithmetic in float32 (float64 for float64 inputs), no FMA.
#pragma once

#include <ATen/core/Tensor.h>

#include "common/macros.h"  // SXAI_HD

#include <cstdint>
#include <optional>
#include <string>

#include <c10/util/string_view.h>

namespace spectral_xai {

enum class Mixing : int { kAdditive = 0, kConvex = 1, kDamping = 2 };

Mixing parse_mixing(const std::string& mixing);

// The checked, contiguous arguments of one call and its output (shared by both backends).
struct PerturbArgs {
  at::Tensor out, rows, sigmas, scales, image_ids, baseline;  // baseline undefined = zeros
  Mixing mixing;
};

// Validates shapes, dtypes, devices and sizes, makes the index tensors contiguous and
// allocates the output (N, C, H, W) in x's memory format.  Reads no tensor data.
PerturbArgs perturb_prepare(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                            const at::Tensor& scales, const at::Tensor& image_ids,
                            const std::optional<at::Tensor>& baseline, c10::string_view mixing);

// Value checks of contiguous CPU index tensors (common/row_checks.h): throws a ValueError
// naming the first bad image id or row.  The CPU op runs it before its kernel; the CUDA op
// runs it on a host copy only when its device-side check raised the flag.
void perturb_check_indices(const at::Tensor& rows, const at::Tensor& image_ids, int64_t num_sigmas);

#ifdef SXAI_WITH_CUDA
at::Tensor perturb_cuda(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                        const at::Tensor& scales, const at::Tensor& image_ids,
                        const std::optional<at::Tensor>& baseline, int64_t seed, c10::string_view mixing);
#endif

// Per-row mixing coefficients (a, c) computed the same way on host and device.
template <typename acc_t>
SXAI_HD void mixing_coefficients(Mixing mixing, double sigma, double scale, acc_t& a, acc_t& c) {
  if (mixing == Mixing::kAdditive) {
    a = acc_t(1);
    c = static_cast<acc_t>(sigma * scale);
  } else if (mixing == Mixing::kConvex) {
    a = static_cast<acc_t>(1.0 - sigma);
    c = static_cast<acc_t>(sigma * scale);
  } else {
    a = static_cast<acc_t>(1.0 - sigma);
    c = static_cast<acc_t>(sigma);
  }
}

}  // namespace spectral_xai
