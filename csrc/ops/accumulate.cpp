// Schema and argument checks of spectral_xai::accumulate_ (kernels in cpu/ and cuda/).
#include "accumulate.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/checks.h"

namespace spectral_xai {
namespace {

void check_accumulator(const at::Tensor& t, const char* name, const at::Tensor& grads, int64_t slots,
                       int64_t acc_channels) {
  SXAI_CHECK_ARG(t.scalar_type() == at::kDouble, name, "expected float64, got ", t.scalar_type());
  SXAI_CHECK_ARG(t.is_contiguous(), name, "expected a contiguous tensor");
  SXAI_CHECK_ARG(t.device() == grads.device(), name, "expected device ", grads.device(), ", got ", t.device());
  SXAI_CHECK_ARG(t.dim() == 4 && t.size(0) == slots && t.size(1) == acc_channels && t.size(2) == grads.size(2) &&
                     t.size(3) == grads.size(3),
                 name, "expected shape (", slots, ", ", acc_channels, ", ", grads.size(2), ", ", grads.size(3),
                 "), got ", t.sizes());
}

}  // namespace

AccumulateLayout accumulate_check(const at::Tensor& grads, const at::Tensor& slots, const at::Tensor& mean1,
                                  const at::Tensor& mean2, const at::Tensor& counts, const at::Tensor& checkpoint,
                                  const at::Tensor& delta, const at::Tensor& scale, int64_t check_every) {
  SXAI_CHECK_ARG(grads.dim() == 4, "grads", "expected a 4-D (N, C, H, W) tensor, got ", grads.dim(), "-D");
  SXAI_CHECK_ARG(at::isFloatingType(grads.scalar_type()), "grads", "expected a floating tensor, got ",
                 grads.scalar_type());
  SXAI_CHECK_ARG(slots.dim() == 1 && slots.size(0) == grads.size(0) && slots.scalar_type() == at::kLong, "slots",
                 "expected an int64 tensor of shape (", grads.size(0), ",), got ", slots.sizes(), " ",
                 slots.scalar_type());
  SXAI_CHECK_ARG(slots.device() == grads.device(), "slots", "expected device ", grads.device());
  AccumulateLayout L{grads.size(0), grads.size(1), grads.size(2), grads.size(3), counts.numel(), 0,
                     mean1.numel() > 0, mean2.numel() > 0, checkpoint.numel() > 0};
  SXAI_CHECK_ARG(L.track1 || L.track2, "mean1/mean2", "at least one of them must be non-empty");
  SXAI_CHECK_ARG(counts.dim() == 1 && counts.scalar_type() == at::kLong && counts.is_contiguous(), "counts",
                 "expected a contiguous 1-D int64 tensor, got ", counts.sizes(), " ", counts.scalar_type());
  SXAI_CHECK_ARG(counts.device() == grads.device(), "counts", "expected device ", grads.device());
  const at::Tensor& primary = L.track2 ? mean2 : mean1;
  L.acc_channels = primary.dim() == 4 ? primary.size(1) : -1;
  SXAI_CHECK_ARG(L.acc_channels == 1 || L.acc_channels == grads.size(1), L.track2 ? "mean2" : "mean1",
                 "expected 1 (channel-reduced) or ", grads.size(1), " channels, got shape ", primary.sizes());
  if (L.track1) check_accumulator(mean1, "mean1", grads, L.slots, L.acc_channels);
  if (L.track2) check_accumulator(mean2, "mean2", grads, L.slots, L.acc_channels);
  if (L.track_stop) {
    check_accumulator(checkpoint, "checkpoint", grads, L.slots, L.acc_channels);
    SXAI_CHECK_ARG(check_every > 0, "check_every", "expected a positive interval, got ", check_every);
    for (const auto& [t, name] : {std::pair{&delta, "delta"}, std::pair{&scale, "scale"}}) {
      SXAI_CHECK_ARG(t->dim() == 1 && t->size(0) == L.slots && t->scalar_type() == at::kDouble &&
                         t->is_contiguous() && t->device() == grads.device(),
                     name, "expected a contiguous float64 tensor of shape (", L.slots, ",) on ", grads.device(),
                     ", got ", t->sizes(), " ", t->scalar_type(), " on ", t->device());
    }
  }
  return L;
}

}  // namespace spectral_xai

TORCH_LIBRARY_FRAGMENT(spectral_xai, m) {
  m.def(
      "accumulate_(Tensor grads, Tensor slots, Tensor(a!) mean1, Tensor(b!) mean2, Tensor(c!) counts, "
      "Tensor(d!) checkpoint, Tensor(e!) delta, Tensor(f!) scale, int check_every) -> ()");
}
