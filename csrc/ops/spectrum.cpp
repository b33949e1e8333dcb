// Schemas and shared helpers of the spectral ops (kernels in cpu/ and cuda/).
#include "spectrum.h"

#include <ATen/ATen.h>
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

}  // namespace spectral_xai

TORCH_LIBRARY_FRAGMENT(spectral_xai, m) {
  m.def("rank_normalize(Tensor maps) -> Tensor");
  m.def("radial_power_spectrum(Tensor maps) -> Tensor");
}
