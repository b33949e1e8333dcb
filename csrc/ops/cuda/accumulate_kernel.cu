// CUDA kernel of spectral_xai::accumulate_ (see ../accumulate.h).  Same arithmetic as the
// CPU kernel (FMA contraction disabled).  Precondition (validated by the CPU kernel, and
// guaranteed by the engine): the rows of one slot are contiguous and in sample order.
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

__global__ void advance_counts_kernel(const int64_t* slots, int64_t* counts, int64_t N) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= N || !segment_start(slots, r)) return;
  counts[slots[r]] += segment_end(slots, r, N) - r;
}

// Non-negative doubles order like their bit patterns as unsigned integers.
__device__ __forceinline__ void atomic_max_nonneg(double* addr, double v) {
  atomicMax(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(__double_as_longlong(v)));
}

// grid.x = row r (only segment starts work), grid.y * block = element of the slot's map.
template <typename scalar_t>
__global__ void accumulate_kernel(const scalar_t* __restrict__ g, int64_t gs0, int64_t gs1, int64_t gs2,
                                  int64_t gs3, const int64_t* __restrict__ slots, double* m1p, double* m2p,
                                  double* ckp, const int64_t* __restrict__ counts, double* delta, double* scale,
                                  int64_t N, int64_t C, int64_t H, int64_t W, int64_t Cp, int64_t every) {
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
  const int64_t off = p * E + e;
  double m1 = m1p ? m1p[off] : 0.0;
  double m2 = m2p ? m2p[off] : 0.0;
  double ck = ckp ? ckp[off] : 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = n0 + (r - r0) + 1;
    const double dn = static_cast<double>(n);
    const scalar_t* gr = g + r * gs0 + h * gs2 + w * gs3;
    double v1 = 0.0, v2 = 0.0;
    if (reduce) {
      for (int64_t c = 0; c < C; ++c) {
        const double v = static_cast<double>(gr[c * gs1]);
        v1 = v1 + v;
        v2 = v2 + v * v;
      }
    } else {
      v1 = static_cast<double>(gr[c_acc * gs1]);
      v2 = v1 * v1;
    }
    m1 = m1 + (v1 - m1) / dn;
    m2 = m2 + (v2 - m2) / dn;
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
}

void accumulate_cuda(const at::Tensor& grads, const at::Tensor& slots_in, at::Tensor mean1, at::Tensor mean2,
                     at::Tensor counts, at::Tensor checkpoint, at::Tensor delta, at::Tensor scale,
                     int64_t check_every) {
  const AccumulateLayout L =
      accumulate_check(grads, slots_in, mean1, mean2, counts, checkpoint, delta, scale, check_every);
  const int64_t N = L.rows;
  const int64_t E = L.acc_channels * L.height * L.width;
  if (N == 0) return;
  TORCH_CHECK((E + 255) / 256 <= 65535, "spectral_xai: accumulate_ on CUDA supports maps of at most 2^24 elements");
  const c10::cuda::CUDAGuard guard(grads.device());
  const at::Tensor slots = slots_in.contiguous();
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
      accumulate_kernel<scalar_t><<<grid, threads, 0, stream>>>(
          grads.const_data_ptr<scalar_t>(), grads.stride(0), grads.stride(1), grads.stride(2), grads.stride(3),
          slots.const_data_ptr<int64_t>(), L.track1 ? mean1.data_ptr<double>() : nullptr,
          L.track2 ? mean2.data_ptr<double>() : nullptr, L.track_stop ? checkpoint.data_ptr<double>() : nullptr,
          counts.const_data_ptr<int64_t>(), L.track_stop ? delta.data_ptr<double>() : nullptr,
          L.track_stop ? scale.data_ptr<double>() : nullptr, N, L.channels, L.height, L.width, L.acc_channels,
          every);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  advance_counts_kernel<<<row_blocks, threads, 0, stream>>>(slots.const_data_ptr<int64_t>(),
                                                            counts.data_ptr<int64_t>(), N);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CUDA, m) { m.impl("accumulate_", &accumulate_cuda); }

}  // namespace spectral_xai
