// Schemas and shared helpers of the spectral ops (kernels, and their registrations, in cpu/ and cuda/).
#include "spectrum.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/fft_rfftn.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "common/checks.h"

namespace spectral_xai {

std::vector<int64_t> ring_counts(const Grid& g) {
  std::vector<int64_t> counts(static_cast<size_t>(radial_bins(g)), 0);
  for (int64_t d = 0; d < g.D; ++d) {
    const int64_t cd = centred_index(d, g.D);
    for (int64_t u = 0; u < g.H; ++u) {
      const int64_t cu = centred_index(u, g.H);
      for (int64_t v = 0; v < g.W; ++v) {
        const int64_t cv = centred_index(v, g.W);
        counts[static_cast<size_t>(isqrt(cd * cd + cu * cu + cv * cv))] += 1;
      }
    }
  }
  return counts;
}

void spectrum_check(const at::Tensor& maps, const char* op) {
  SXAI_CHECK_ARG(maps.dim() >= 2 && maps.dim() <= 4, "maps", op,
                 " expects (B, L), (B, H, W) or (B, D, H, W) maps, got shape ", maps.sizes());
  SXAI_CHECK_ARG(at::isFloatingType(maps.scalar_type()), "maps", op, " expects floating maps, got ",
                 maps.scalar_type());
}

int64_t map_numel(const at::Tensor& maps) {
  int64_t n = 1;
  for (int64_t i = 1; i < maps.dim(); ++i) n *= maps.size(i);
  return n;
}

void rank_normalize_check(const at::Tensor& maps) {
  SXAI_CHECK_ARG(maps.dim() >= 2, "maps", "rank_normalize expects (B, ...) maps with at least one map axis, got shape ",
                 maps.sizes());
  SXAI_CHECK_ARG(at::isFloatingType(maps.scalar_type()), "maps", "rank_normalize expects floating maps, got ",
                 maps.scalar_type());
  SXAI_CHECK_ARG(map_numel(maps) < (int64_t(1) << 31), "maps",
                 "rank_normalize supports maps of fewer than 2^31 elements, got ", maps.sizes());
}

void rank_normalize_raise_nan() { SXAI_CHECK_ARG(false, "maps", "contains NaN values, which have no rank"); }

RadialArgs radial_prepare(const at::Tensor& maps) {
  spectrum_check(maps, "radial_power_spectrum");
  const int64_t nd = maps.dim() - 1;
  const int64_t B = maps.size(0);
  const Grid g{nd >= 3 ? maps.size(nd - 2) : 1, nd >= 2 ? maps.size(nd - 1) : 1, maps.size(nd)};
  const auto acc = maps.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t K = radial_bins(g);
  RadialArgs r{at::zeros({B, K}, maps.options().dtype(acc)), at::Tensor(), g, K};
  if (B > 0 && g.size() > 0) {
    std::vector<int64_t> dims;
    for (int64_t i = 1; i <= nd; ++i) dims.push_back(i);
    r.spec = at::fft_rfftn(maps.to(acc), c10::nullopt, at::IntArrayRef(dims)).contiguous();  // (B, [D,] [H,] W/2+1)
  }
  return r;
}

}  // namespace spectral_xai

TORCH_LIBRARY_FRAGMENT(spectral_xai, m) {
  m.def("rank_normalize(Tensor maps) -> Tensor");
  m.def("radial_power_spectrum(Tensor maps) -> Tensor");
}
