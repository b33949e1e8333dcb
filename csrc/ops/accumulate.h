// accumulate_: running means of g (k=1) and g^2 (k=2) per accumulator slot, in place.
//
// grads (N, C, H, W), any floating dtype and strides; slots (N,) int64 gives the slot of each
// row: the rows of one slot are contiguous and in sample order.  mean1 / mean2 are float64
// (P, C', H, W) with C' = C (channel-resolved) or C' = 1 (channel-reduced: the signed channel
// sum for k=1, the sum of per-channel squares for k=2); an empty tensor means "not tracked".
// counts (P,) int64 holds the samples already in each slot and is advanced.  With n the
// count after a row:  m <- m + (v - m) / n  (sequential in sample order, so the result does
// not depend on how rows are split into calls).
//
// Adaptive stopping: if checkpoint (float64, shape of the primary mean = mean2 if tracked,
// else mean1) is non-empty, then at every count n that is a multiple of check_every:
//   delta[p] = max |m_n - checkpoint|,  scale[p] = max |m_n|,  checkpoint <- m_n
// (delta / scale (P,) float64 keep the values of the last checkpoint reached in the call).
//
// accumulate_stats_ does the same in the same pass and, for each non-empty optional tensor,
// a Monte Carlo statistic of the per-pixel value v_k (after the channel reduction):
//   sumsq_k (P, C', H, W) float64, needs mean_k: Welford's sum of squared deviations,
//       d = v - m_{n-1};  m_n = m_{n-1} + d / n;  S_n = S_{n-1} + d * (v - m_n)
//   sumcube_k (P, C', H, W) float64, needs sumsq_k: the sum of cubed deviations M3 (Pebay's online
//       update, with S the sum of squares before the row): dn = d / n, t1 = d * dn * (n - 1),
//       M3 <- M3 + (t1 * dn * (n - 2) - 3 * dn * S)  (S itself is updated as above);
//   group_counts (P, G) int64, 2 <= G <= kMaxGroups: samples of each slot in group
//       sample_index[r] mod G, with sample_index (N,) int64 >= 0, advanced (G = 2: even / odd);
//   group_mean_k (P, G, C', H, W) float64, needs group_counts: running mean of v_k over the
//       samples of each group, the same update as m with n the group's count;
//   nonfinite (P,) int64: advanced by the number of non-finite elements of grads in the
//       slot's rows (every element, before the channel reduction).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace spectral_xai {

constexpr int64_t kMaxGroups = 64;  // most interleaved sample groups of accumulate_stats_

struct AccumulateLayout {
  int64_t rows, channels, height, width;  // of grads
  int64_t slots;                          // P
  int64_t acc_channels;                   // C' (1 or C)
  bool track1, track2, track_stop;
  // optional statistics of accumulate_stats_
  bool sumsq1 = false, sumsq2 = false, cube1 = false, cube2 = false, grouped = false, group1 = false,
       group2 = false, nonfinite = false;
  int64_t groups = 0;  // G (0 = not tracked)
  bool any_stats() const { return sumsq1 || sumsq2 || grouped || nonfinite; }
};

// The optional tensors of accumulate_stats_ (an empty tensor = not requested).
struct AccumulateStats {
  at::Tensor sample_index, sumsq1, sumsq2, sumcube1, sumcube2, group_mean1, group_mean2, group_counts, nonfinite;
};

// Validates the arguments of accumulate_ (shared by the CPU and CUDA kernels).
AccumulateLayout accumulate_check(const at::Tensor& grads, const at::Tensor& slots, const at::Tensor& mean1,
                                  const at::Tensor& mean2, const at::Tensor& counts, const at::Tensor& checkpoint,
                                  const at::Tensor& delta, const at::Tensor& scale, int64_t check_every);

// Validates the optional statistics against L (from accumulate_check) and sets its flags.
void accumulate_stats_check(AccumulateLayout& L, const at::Tensor& grads, const AccumulateStats& stats);

}  // namespace spectral_xai
