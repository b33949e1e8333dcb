// Schemas and shared helpers of the spectral ops (kernels in cpu/ and cuda/).
#include "spectrum.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/fft_rfft2.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "common/checks.h"

namespace spectral_xai {

std::vector<int64_t> ring_counts(int64_t H, int64_t W) {
  std::vector<int64_t> counts(static_cast<size_t>(radial_bins(H, W)), 0);
  for (int64_t u = 0; u < H; ++u) {
    const int64_t cu = centred_index(u, H);
    for (int64_t v = 0; v < W; ++v) {
      const int64_t cv = centred_index(v, W);
      counts[static_cast<size_t>(isqrt(cu * cu + cv * cv))] += 1;
    }
  }
  return counts;
}

void spectrum_check(const at::Tensor& maps, const char* op) {
  SXAI_CHECK_ARG(maps.dim() == 3, "maps", op, " expects (B, H, W) maps, got shape ", maps.sizes());
  SXAI_CHECK_ARG(at::isFloatingType(maps.scalar_type()), "maps", op, " expects floating maps, got ",
                 maps.scalar_type());
}

void rank_normalize_check(const at::Tensor& maps) {
  spectrum_check(maps, "rank_normalize");
  SXAI_CHECK_ARG(maps.size(1) * maps.size(2) < (int64_t(1) << 31), "maps",
                 "rank_normalize supports maps of fewer than 2^31 pixels, got ", maps.sizes());
}

void rank_normalize_raise_nan() { SXAI_CHECK_ARG(false, "maps", "contains NaN values, which have no rank"); }

RadialArgs radial_prepare(const at::Tensor& maps) {
  spectrum_check(maps, "radial_power_spectrum");
  const int64_t B = maps.size(0), H = maps.size(1), W = maps.size(2);
  const auto acc = maps.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t K = radial_bins(H, W);
  RadialArgs r{at::zeros({B, K}, maps.options().dtype(acc)), at::Tensor(), H, W, K};
  if (B > 0 && H > 0 && W > 0) r.spec = at::fft_rfft2(maps.to(acc)).contiguous();  // (B, H, W/2+1)
  return r;
}

}  // namespace spectral_xai

TORCH_LIBRARY_FRAGMENT(spectral_xai, m) {
  m.def("rank_normalize(Tensor maps) -> Tensor");
  m.def("radial_power_spectrum(Tensor maps) -> Tensor");
}

#ifdef SXAI_WITH_CUDA
// Registered here so that the .cu file needs no torch/library.h.
TORCH_LIBRARY_IMPL(spectral_xai, CUDA, m) {
  m.impl("rank_normalize", &spectral_xai::rank_normalize_cuda);
  m.impl("radial_power_spectrum", &spectral_xai::radial_power_spectrum_cuda);
}
#endif
