// CUDA kernels of spectral_xai::accumulate_ and accumulate_stats_ (see ../accumulate.h), registered at the end
// of this file.  Same arithmetic as the CPU kernel (FMA contraction disabled, -fmad=false).  Precondition
// (checked on the device by check_device_slots in ../accumulate.cpp, and guaranteed by the engine): every slot
// in range and the rows of one slot contiguous, in sample order.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../accumulate.h"

namespace spectral_xai {
namespace {

__device__ __forceinline__ bool segment_start(const int64_t* slots, int64_t r) {
  return r == 0 || slots[r] != slots[r - 1];
}

__device__ __forceinline__ int64_t segment_end(const int64_t* slots, int64_t r, int64_t N) {
  int64_t e = r + 1;
  while (e < N && slots[e] == slots[r]) ++e;
  return e;
}

__device__ __forceinline__ bool has_checkpoint(int64_t n0, int64_t len, int64_t every) {
  return every > 0 && ((n0 + len) / every) * every > n0;
}

// Zero delta/scale of the slots that reach a checkpoint in this call.
__global__ void reset_stats_kernel(const int64_t* slots, const int64_t* counts, double* delta, double* scale,
                                   int64_t N, int64_t every) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= N || !segment_start(slots, r)) return;
  const int64_t p = slots[r];
  if (has_checkpoint(counts[p], segment_end(slots, r, N) - r, every)) {
    delta[p] = 0.0;
    scale[p] = 0.0;
  }
}

// Advances counts (and the group counts when group_counts is non-null) by the slot's rows.
__global__ void advance_counts_kernel(const int64_t* slots, int64_t* counts, int64_t* group_counts,
                                      const int64_t* sample_index, int64_t N, int64_t G) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= N || !segment_start(slots, r)) return;
  const int64_t p = slots[r], end = segment_end(slots, r, N);
  counts[p] += end - r;
  if (group_counts) {
    for (int64_t i = r; i < end; ++i) {
      CUDA_KERNEL_ASSERT(sample_index[i] >= 0);
      ++group_counts[G * p + sample_index[i] % G];
    }
  }
}

// Device pointers of the optional statistics (nullptr = not requested).
struct StatsPtrs {
  double *s1, *s2;  // Welford sums of squared deviations (P, C', H, W)
  double *c1, *c2;  // sums of cubed deviations (P, C', H, W)
  double *h1, *h2;  // group means (P, G, C', H, W)
  const int64_t *group_counts, *sample_index;
  int64_t* nonfinite;
  int64_t groups;  // G (0 = no groups)
};

// Welford / running-mean step with the n-th value v: m <- m + d / n, s <- s + d (v - m), and the sum of
// cubes c <- c + (t1 q (n - 2) - 3 q s_old), q = d / n, t1 = d q (n - 1) (as the CPU kernel).
__device__ __forceinline__ void welford(double& m, double& s, double& c, double v, double dn) {
  const double d = v - m;
  m = m + d / dn;
  const double q = d / dn, t1 = d * q * (dn - 1.0);
  c = c + (t1 * q * (dn - 2.0) - 3.0 * q * s);
  s = s + d * (v - m);
}

// Non-negative doubles order like their bit patterns as unsigned integers.
__device__ __forceinline__ void atomic_max_nonneg(double* addr, double v) {
  atomicMax(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(__double_as_longlong(v)));
}

// The per-pixel values v1, v2 of row gr (channel c_acc, or the channel reduction) and, with
// kStats, the number of non-finite elements read.
template <typename scalar_t, bool kStats>
__device__ __forceinline__ void load_values(const scalar_t* gr, int64_t gs1, int64_t C, int64_t c_acc, bool reduce,
                                            double& v1, double& v2, int64_t& bad) {
  v1 = 0.0;
  v2 = 0.0;
  if (reduce) {
    for (int64_t c = 0; c < C; ++c) {
      const double v = static_cast<double>(gr[c * gs1]);
      if constexpr (kStats) bad += !isfinite(v);
      v1 = v1 + v;
      v2 = v2 + v * v;
    }
  } else {
    v1 = static_cast<double>(gr[c_acc * gs1]);
    v2 = v1 * v1;
    if constexpr (kStats) bad += !isfinite(v1);
  }
}

__device__ __forceinline__ double load_or_zero(const double* p, int64_t i) { return p ? p[i] : 0.0; }

// grid.x = row r (only segment starts work), grid.y * block = element of the slot's map.
template <typename scalar_t, bool kStats>
__global__ void accumulate_kernel(const scalar_t* __restrict__ g, int64_t gs0, int64_t gs1, int64_t gs2,
                                  int64_t gs3, const int64_t* __restrict__ slots, double* m1p, double* m2p,
                                  double* ckp, const int64_t* __restrict__ counts, double* delta, double* scale,
                                  StatsPtrs S, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Cp,
                                  int64_t every) {
  const int64_t r0 = blockIdx.x;
  if (!segment_start(slots, r0)) return;
  const int64_t e = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  const int64_t E = Cp * H * W;
  if (e >= E) return;
  const bool reduce = Cp == 1 && C > 1;
  const int64_t p = slots[r0];
  const int64_t r1 = segment_end(slots, r0, N);
  const int64_t n0 = counts[p];
  const int64_t n_last = ckp ? ((n0 + (r1 - r0)) / every) * every : 0;
  const int64_t c_acc = e / (H * W), h = (e / W) % H, w = e % W;
  const int64_t G = S.groups, off = p * E + e, hoff = G * p * E + e;
  double m1 = load_or_zero(m1p, off), m2 = load_or_zero(m2p, off), ck = load_or_zero(ckp, off);
  // statistics: Welford sums of squares and cubes; the group means stay in global memory (each thread owns
  // its element of every group), the groups' counts in a per-thread array
  double s1 = 0.0, s2 = 0.0, c1 = 0.0, c2 = 0.0;
  int64_t nh[kMaxGroups];
  int64_t bad = 0;
  if constexpr (kStats) {
    s1 = load_or_zero(S.s1, off), s2 = load_or_zero(S.s2, off);
    c1 = load_or_zero(S.c1, off), c2 = load_or_zero(S.c2, off);
    for (int64_t q = 0; q < G; ++q) nh[q] = S.group_counts[G * p + q];
  }
  for (int64_t r = r0; r < r1; ++r) {
    const double dn = static_cast<double>(n0 + (r - r0) + 1);
    double v1, v2;
    load_values<scalar_t, kStats>(g + r * gs0 + h * gs2 + w * gs3, gs1, C, c_acc, reduce, v1, v2, bad);
    welford(m1, s1, c1, v1, dn);  // s_k, c_k are stored only with kStats
    welford(m2, s2, c2, v2, dn);
    if (kStats && G > 0) {  // uniform branch: every thread of the block is on row r
      CUDA_KERNEL_ASSERT(S.sample_index[r] >= 0);  // checked on the host only for CPU tensors (no sync)
      const int64_t q = S.sample_index[r] % G;
      const double dh = static_cast<double>(++nh[q]);
      if (S.h1) {
        double& a = S.h1[hoff + q * E];
        a = a + (v1 - a) / dh;
      }
      if (S.h2) {
        double& a = S.h2[hoff + q * E];
        a = a + (v2 - a) / dh;
      }
    }
    const int64_t n = n0 + (r - r0) + 1;
    if (ckp && n % every == 0) {
      const double prim = m2p ? m2 : m1;
      if (n == n_last) {
        atomic_max_nonneg(delta + p, fabs(prim - ck));
        atomic_max_nonneg(scale + p, fabs(prim));
      }
      ck = prim;
    }
  }
  if (m1p) m1p[off] = m1;
  if (m2p) m2p[off] = m2;
  if (ckp) ckp[off] = ck;
  if constexpr (kStats) {
    if (S.s1) S.s1[off] = s1;
    if (S.s2) S.s2[off] = s2;
    if (S.c1) S.c1[off] = c1;
    if (S.c2) S.c2[off] = c2;
    if (S.nonfinite && bad > 0)
      atomicAdd(reinterpret_cast<unsigned long long*>(S.nonfinite + p), static_cast<unsigned long long>(bad));
  }
}

template <typename T>
T* ptr_if(bool on, const at::Tensor& t) {
  return on ? t.data_ptr<T>() : nullptr;
}

void accumulate_stats_cuda(const at::Tensor& grads, const at::Tensor& slots_in, at::Tensor mean1, at::Tensor mean2,
                           at::Tensor counts, at::Tensor checkpoint, at::Tensor delta, at::Tensor scale,
                           int64_t check_every, const at::Tensor& sample_index, at::Tensor sumsq1,
                           at::Tensor sumsq2, at::Tensor sumcube1, at::Tensor sumcube2, at::Tensor group_mean1,
                           at::Tensor group_mean2, at::Tensor group_counts, at::Tensor nonfinite) {
  AccumulateLayout L = accumulate_check(grads, slots_in, mean1, mean2, counts, checkpoint, delta, scale, check_every);
  AccumulateStats St{sample_index, sumsq1,      sumsq2,      sumcube1,    sumcube2,
                     group_mean1,  group_mean2, group_counts, nonfinite};
  accumulate_stats_check(L, grads, St);
  const int64_t N = L.rows;
  const int64_t E = L.acc_channels * L.height * L.width;
  if (N == 0) return;
  TORCH_CHECK((E + 255) / 256 <= 65535, "spectral_xai: accumulate_ on CUDA supports maps of at most 2^24 elements");
  const c10::cuda::CUDAGuard guard(grads.device());
  const at::Tensor slots = slots_in.contiguous();
  const at::Tensor index = L.grouped ? sample_index.contiguous() : at::Tensor();
  const StatsPtrs S{ptr_if<double>(L.sumsq1, sumsq1),      ptr_if<double>(L.sumsq2, sumsq2),
                    ptr_if<double>(L.cube1, sumcube1),      ptr_if<double>(L.cube2, sumcube2),
                    ptr_if<double>(L.group1, group_mean1),  ptr_if<double>(L.group2, group_mean2),
                    ptr_if<int64_t>(L.grouped, group_counts), ptr_if<int64_t>(L.grouped, index),
                    ptr_if<int64_t>(L.nonfinite, nonfinite), L.groups};
  auto stream = at::cuda::getCurrentCUDAStream();
  const int threads = 256;
  const int64_t every = L.track_stop ? check_every : 0;
  const unsigned row_blocks = static_cast<unsigned>((N + threads - 1) / threads);
  if (L.track_stop) {
    reset_stats_kernel<<<row_blocks, threads, 0, stream>>>(slots.const_data_ptr<int64_t>(),
                                                           counts.const_data_ptr<int64_t>(),
                                                           delta.data_ptr<double>(), scale.data_ptr<double>(), N,
                                                           every);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (E > 0) {
    const dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>((E + threads - 1) / threads));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "accumulate_cuda", [&] {
      auto kernel = L.any_stats() ? accumulate_kernel<scalar_t, true> : accumulate_kernel<scalar_t, false>;
      kernel<<<grid, threads, 0, stream>>>(
          grads.const_data_ptr<scalar_t>(), grads.stride(0), grads.stride(1), grads.stride(2), grads.stride(3),
          slots.const_data_ptr<int64_t>(), ptr_if<double>(L.track1, mean1), ptr_if<double>(L.track2, mean2),
          ptr_if<double>(L.track_stop, checkpoint), counts.const_data_ptr<int64_t>(),
          ptr_if<double>(L.track_stop, delta), ptr_if<double>(L.track_stop, scale), S, N, L.channels, L.height,
          L.width, L.acc_channels, every);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  advance_counts_kernel<<<row_blocks, threads, 0, stream>>>(slots.const_data_ptr<int64_t>(),
                                                            counts.data_ptr<int64_t>(),
                                                            ptr_if<int64_t>(L.grouped, group_counts),
                                                            S.sample_index, N, L.groups);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void accumulate_cuda(const at::Tensor& grads, const at::Tensor& slots, at::Tensor mean1, at::Tensor mean2,
                     at::Tensor counts, at::Tensor checkpoint, at::Tensor delta, at::Tensor scale,
                     int64_t check_every) {
  const at::Tensor none;
  accumulate_stats_cuda(grads, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every, none, none, none,
                        none, none, none, none, none, none);
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CUDA, m) {
  m.impl("accumulate_", &accumulate_cuda);
  m.impl("accumulate_stats_", &accumulate_stats_cuda);
}

}  // namespace spectral_xai
