// Schemas and argument checks of spectral_xai::accumulate_ and accumulate_stats_ (kernels in cpu/ and cuda/).
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

void check_index_tensor(const at::Tensor& t, const char* name, const at::Tensor& grads, at::IntArrayRef shape) {
  SXAI_CHECK_ARG(t.scalar_type() == at::kLong && t.sizes() == shape && t.device() == grads.device(), name,
                 "expected an int64 tensor of shape ", shape, " on ", grads.device(), ", got ", t.sizes(), " ",
                 t.scalar_type(), " on ", t.device());
}

void check_group_mean(const at::Tensor& t, const char* name, const at::Tensor& grads, const AccumulateLayout& L) {
  const std::vector<int64_t> want{L.slots, L.groups, L.acc_channels, L.height, L.width};
  SXAI_CHECK_ARG(t.scalar_type() == at::kDouble && t.is_contiguous() && t.device() == grads.device() &&
                     t.sizes() == at::IntArrayRef(want),
                 name, "expected a contiguous float64 tensor of shape ", at::IntArrayRef(want), " on ",
                 grads.device(), ", got ", t.sizes(), " ", t.scalar_type(), " on ", t.device());
}

// The CPU kernel checks the slots row by row while it finds the segments; a device runs the same two checks
// (every slot in [0, P), the rows of a slot contiguous) as tensor ops, with one host read per call, so that a
// bad slot is a ValueError naming `slots` instead of an out-of-bounds write.
void check_device_slots(const at::Tensor& slots, int64_t num_slots) {
  if (slots.numel() == 0) return;
  SXAI_CHECK_ARG(num_slots > 0, "counts", "no slots (counts is empty) but ", slots.numel(), " rows");
  const at::Tensor outside = at::logical_or(slots < 0, slots >= num_slots).any();
  at::Tensor starts = at::ones_like(slots, slots.options().dtype(at::kBool));
  if (slots.size(0) > 1) starts.slice(0, 1).copy_(slots.slice(0, 1) != slots.slice(0, 0, -1));
  const at::Tensor first = slots.clamp(0, num_slots - 1).masked_select(starts);
  const at::Tensor runs = at::bincount(first, {}, num_slots);
  const bool bad = at::logical_or(outside, runs.max() > 1).item<bool>();
  if (!bad) return;
  const at::Tensor host = slots.cpu();
  const int64_t* h = host.const_data_ptr<int64_t>();
  for (int64_t r = 0; r < host.size(0); ++r) {
    SXAI_CHECK_ARG(h[r] >= 0 && h[r] < num_slots, "slots", "slot ", h[r], " of row ", r, " is outside [0, ",
                   num_slots, ")");
  }
  SXAI_CHECK_ARG(false, "slots", "the rows of a slot are not contiguous");
}

}  // namespace

void accumulate_stats_check(AccumulateLayout& L, const at::Tensor& grads, const AccumulateStats& S) {
  auto given = [](const at::Tensor& t) { return t.defined() && t.numel() > 0; };
  L.sumsq1 = given(S.sumsq1);
  L.sumsq2 = given(S.sumsq2);
  L.cube1 = given(S.sumcube1);
  L.cube2 = given(S.sumcube2);
  L.grouped = given(S.group_counts);
  L.group1 = given(S.group_mean1);
  L.group2 = given(S.group_mean2);
  L.nonfinite = given(S.nonfinite);
  SXAI_CHECK_ARG(!L.sumsq1 || L.track1, "sumsq1", "needs mean1 (Welford updates it with the running mean)");
  SXAI_CHECK_ARG(!L.sumsq2 || L.track2, "sumsq2", "needs mean2 (Welford updates it with the running mean)");
  SXAI_CHECK_ARG(!L.cube1 || L.sumsq1, "sumcube1", "needs sumsq1 (the third moment's update uses it)");
  SXAI_CHECK_ARG(!L.cube2 || L.sumsq2, "sumcube2", "needs sumsq2 (the third moment's update uses it)");
  if (L.sumsq1) check_accumulator(S.sumsq1, "sumsq1", grads, L.slots, L.acc_channels);
  if (L.sumsq2) check_accumulator(S.sumsq2, "sumsq2", grads, L.slots, L.acc_channels);
  if (L.cube1) check_accumulator(S.sumcube1, "sumcube1", grads, L.slots, L.acc_channels);
  if (L.cube2) check_accumulator(S.sumcube2, "sumcube2", grads, L.slots, L.acc_channels);
  SXAI_CHECK_ARG(L.grouped || !(L.group1 || L.group2), "group_counts", "needed by group_mean1 / group_mean2");
  if (L.grouped) {
    const at::Tensor& gc = S.group_counts;
    SXAI_CHECK_ARG(gc.dim() == 2 && gc.size(0) == L.slots, "group_counts", "expected shape (", L.slots,
                   ", G), got ", gc.sizes());
    L.groups = gc.size(1);
    SXAI_CHECK_ARG(L.groups >= 2 && L.groups <= kMaxGroups, "group_counts", "expected 2 <= G <= ", kMaxGroups,
                   " groups, got G = ", L.groups);
    check_index_tensor(gc, "group_counts", grads, {L.slots, L.groups});
    SXAI_CHECK_ARG(gc.is_contiguous(), "group_counts", "expected a contiguous tensor");
    check_index_tensor(S.sample_index, "sample_index", grads, {L.rows});
    // A host check of the values would synchronise a CUDA stream once per chunk: CUDA tensors are checked by a
    // device-side assertion in the kernel instead.
    SXAI_CHECK_ARG(L.rows == 0 || !S.sample_index.is_cpu() || S.sample_index.min().item<int64_t>() >= 0,
                   "sample_index", "expected sample indices >= 0, got ", S.sample_index.min().item<int64_t>());
  }
  if (L.group1) check_group_mean(S.group_mean1, "group_mean1", grads, L);
  if (L.group2) check_group_mean(S.group_mean2, "group_mean2", grads, L);
  if (L.nonfinite) {
    check_index_tensor(S.nonfinite, "nonfinite", grads, {L.slots});
    SXAI_CHECK_ARG(S.nonfinite.is_contiguous(), "nonfinite", "expected a contiguous tensor");
  }
}

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
  if (!slots.is_cpu()) check_device_slots(slots, counts.numel());
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
  m.def(
      "accumulate_stats_(Tensor grads, Tensor slots, Tensor(a!) mean1, Tensor(b!) mean2, Tensor(c!) counts, "
      "Tensor(d!) checkpoint, Tensor(e!) delta, Tensor(f!) scale, int check_every, Tensor sample_index, "
      "Tensor(g!) sumsq1, Tensor(h!) sumsq2, Tensor(i!) sumcube1, Tensor(j!) sumcube2, Tensor(k!) group_mean1, "
      "Tensor(l!) group_mean2, Tensor(m!) group_counts, Tensor(n!) nonfinite) -> ()");
}
