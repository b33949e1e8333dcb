// Schema and argument checks of spectral_xai::perturb (kernels in cpu/ and cuda/).
#include "perturb.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/checks.h"

namespace spectral_xai {

Mixing parse_mixing(const std::string& mixing) {
  if (mixing == "additive") return Mixing::kAdditive;
  if (mixing == "convex") return Mixing::kConvex;
  if (mixing == "damping") return Mixing::kDamping;
  SXAI_CHECK_ARG(false, "mixing", "expected 'additive', 'convex' or 'damping', got '", mixing, "'");
  return Mixing::kAdditive;
}

at::Tensor perturb_prepare(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                           const at::Tensor& scales, const at::Tensor& image_ids,
                           const std::optional<at::Tensor>& baseline, Mixing mixing) {
  SXAI_CHECK_ARG(x.dim() == 4, "x", "expected a 4-D (B, C, H, W) tensor, got ", x.dim(), "-D");
  SXAI_CHECK_ARG(at::isFloatingType(x.scalar_type()), "x", "expected a floating tensor, got ", x.scalar_type());
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
  for (const at::Tensor* t : {&rows, &sigmas, &scales, &image_ids}) {
    SXAI_CHECK_ARG(t->device() == x.device(), "rows/sigmas/scales/image_ids",
                   "expected all tensors on ", x.device(), ", got ", t->device());
  }
  if (baseline.has_value() && baseline->defined()) {
    SXAI_CHECK_ARG(baseline->sizes() == x.sizes(), "baseline", "expected shape ", x.sizes(), ", got ",
                   baseline->sizes());
    SXAI_CHECK_ARG(baseline->scalar_type() == x.scalar_type(), "baseline", "expected dtype ", x.scalar_type(),
                   ", got ", baseline->scalar_type());
    SXAI_CHECK_ARG(baseline->device() == x.device(), "baseline", "expected device ", x.device(), ", got ",
                   baseline->device());
  }
  SXAI_CHECK_ARG(mixing == Mixing::kDamping || !(baseline.has_value() && baseline->defined()), "baseline",
                 "is only used by damping mixing");
  const auto format = x.suggest_memory_format();
  return at::empty({rows.size(0), x.size(1), x.size(2), x.size(3)}, x.options().memory_format(format));
}

}  // namespace spectral_xai

TORCH_LIBRARY_FRAGMENT(spectral_xai, m) {
  m.def(
      "perturb(Tensor x, Tensor rows, Tensor sigmas, Tensor scales, Tensor image_ids, Tensor? baseline, "
      "int seed, str mixing) -> Tensor");
}
