// Schema, argument checks and CUDA registration of spectral_xai::perturb (kernels in cpu/ and cuda/).
#include "perturb.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/checks.h"
#include "common/row_checks.h"

namespace spectral_xai {

Mixing parse_mixing(const std::string& mixing) {
  if (mixing == "additive") return Mixing::kAdditive;
  if (mixing == "convex") return Mixing::kConvex;
  if (mixing == "damping") return Mixing::kDamping;
  SXAI_CHECK_ARG(false, "mixing", "expected 'additive', 'convex' or 'damping', got '", mixing, "'");
  return Mixing::kAdditive;
}

namespace {

void check_index_tensors(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                         const at::Tensor& scales, const at::Tensor& image_ids) {
  SXAI_CHECK_ARG(rows.dim() == 2 && rows.size(1) == 3, "rows", "expected shape (N, 3), got ", rows.sizes());
  SXAI_CHECK_ARG(rows.scalar_type() == at::kLong, "rows", "expected int64, got ", rows.scalar_type());
  SXAI_CHECK_ARG(sigmas.dim() == 1 && sigmas.scalar_type() == at::kDouble, "sigmas",
                 "expected a 1-D float64 tensor, got ", sigmas.sizes(), " ", sigmas.scalar_type());
  SXAI_CHECK_ARG(scales.dim() == 1 && scales.size(0) == x.size(0) && scales.scalar_type() == at::kDouble,
                 "scales", "expected a float64 tensor of shape (", x.size(0), ",), got ", scales.sizes(), " ",
                 scales.scalar_type());
  SXAI_CHECK_ARG(image_ids.dim() == 1 && image_ids.size(0) == x.size(0) && image_ids.scalar_type() == at::kLong,
                 "image_ids", "expected an int64 tensor of shape (", x.size(0), ",), got ", image_ids.sizes(),
                 " ", image_ids.scalar_type());
  const char* names[] = {"rows", "sigmas", "scales", "image_ids"};
  const at::Tensor* tensors[] = {&rows, &sigmas, &scales, &image_ids};
  for (int k = 0; k < 4; ++k) {
    SXAI_CHECK_ARG(tensors[k]->device() == x.device(), names[k], "expected a tensor on ", x.device(),
                   " (x's device), got ", tensors[k]->device());
  }
}

}  // namespace

PerturbArgs perturb_prepare(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                            const at::Tensor& scales, const at::Tensor& image_ids,
                            const std::optional<at::Tensor>& baseline, c10::string_view mixing_name) {
  const Mixing mixing = parse_mixing(std::string(mixing_name));
  SXAI_CHECK_ARG(x.dim() == 4, "x", "expected a 4-D (B, C, H, W) tensor, got ", x.dim(), "-D");
  SXAI_CHECK_ARG(at::isFloatingType(x.scalar_type()), "x", "expected a floating tensor, got ", x.scalar_type());
  // The noise counter numbers the groups of four elements of one image in 32 bits.
  SXAI_CHECK_ARG((x.size(1) * x.size(2) * x.size(3) + 3) / 4 <= (int64_t(1) << 32), "x",
                 "too many elements per image for the noise counter (at most 2^34)");
  check_index_tensors(x, rows, sigmas, scales, image_ids);
  const bool has_base = baseline.has_value() && baseline->defined();
  if (has_base) {
    SXAI_CHECK_ARG(baseline->sizes() == x.sizes(), "baseline", "expected shape ", x.sizes(), ", got ",
                   baseline->sizes());
    SXAI_CHECK_ARG(baseline->scalar_type() == x.scalar_type(), "baseline", "expected dtype ", x.scalar_type(),
                   ", got ", baseline->scalar_type());
    SXAI_CHECK_ARG(baseline->device() == x.device(), "baseline", "expected device ", x.device(), ", got ",
                   baseline->device());
  }
  SXAI_CHECK_ARG(mixing == Mixing::kDamping || !has_base, "baseline", "is only used by damping mixing");
  const auto format = x.suggest_memory_format();
  at::Tensor out = at::empty({rows.size(0), x.size(1), x.size(2), x.size(3)}, x.options().memory_format(format));
  return PerturbArgs{out,           rows.contiguous(), sigmas.contiguous(), scales.contiguous(),
                     image_ids.contiguous(), has_base ? *baseline : at::Tensor(), mixing};
}

void perturb_check_indices(const at::Tensor& rows, const at::Tensor& image_ids, int64_t S) {
  const int64_t B = image_ids.size(0), N = rows.size(0);
  const int64_t* ids = image_ids.const_data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    SXAI_CHECK_ARG(image_id_error(ids[b]) == kRowOk, "image_ids", "id ", ids[b], " at position ", b,
                   " is outside [0, 2^32)");
  }
  const int64_t* row = rows.const_data_ptr<int64_t>();
  for (int64_t r = 0; r < N; ++r) {
    const int64_t b = row[3 * r], j = row[3 * r + 1], i = row[3 * r + 2];
    const uint32_t err = row_error(b, j, i, B, S, ids);
    if (err == kRowOk) continue;
    SXAI_CHECK_ARG(!(err & kBadSlot), "rows", "image slot ", b, " of row ", r, " is outside [0, ", B, ")");
    SXAI_CHECK_ARG(!(err & kBadSigma), "rows", "sigma index ", j, " of row ", r, " is outside [0, ", S, ")");
    SXAI_CHECK_ARG(!(err & kBadSample), "rows", "sample index ", i, " of row ", r, " is outside [0, 2^32)");
  }
}

}  // namespace spectral_xai

TORCH_LIBRARY_FRAGMENT(spectral_xai, m) {
  m.def(
      "perturb(Tensor x, Tensor rows, Tensor sigmas, Tensor scales, Tensor image_ids, Tensor? baseline, "
      "int seed, str mixing) -> Tensor");
}
