// CUDA kernels of spectral_xai::rank_normalize and spectral_xai::radial_power_spectrum
// (see ../spectrum.h), registered for the CUDA dispatch key at the end of this file.  Sorting and
// the FFT are ATen's (CUB segmented sort, cuFFT).  Only the headers these need (no ATen/ATen.h),
// which keeps nvcc's host pass short.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/isnan.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "../spectrum.h"

namespace spectral_xai {
namespace {

// One thread per (map, sorted position): the tie run of its value by binary search.
template <typename scalar_t>
__global__ void average_ranks_kernel(const scalar_t* __restrict__ sorted, const int64_t* __restrict__ index,
                                     scalar_t* __restrict__ out, int64_t B, int64_t N) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * N) return;
  const int64_t b = t / N;
  const scalar_t* s = sorted + b * N;
  const double v = static_cast<double>(s[t % N]);  // exact for every floating dtype
  int64_t lo = 0, hi = N;  // first position with s >= v
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (static_cast<double>(s[mid]) < v) lo = mid + 1; else hi = mid;
  }
  int64_t lo2 = lo, hi2 = N;  // first position with s > v
  while (lo2 < hi2) {
    const int64_t mid = (lo2 + hi2) / 2;
    if (v < static_cast<double>(s[mid])) hi2 = mid; else lo2 = mid + 1;
  }
  out[b * N + index[t]] = static_cast<scalar_t>(average_rank(lo, lo2, N));
}

at::Tensor rank_normalize_cuda(const at::Tensor& maps_in) {
  rank_normalize_check(maps_in);
  const c10::cuda::CUDAGuard guard(maps_in.device());
  const at::Tensor maps = maps_in.contiguous();
  at::Tensor out = at::empty_like(maps);
  const int64_t B = maps.size(0), N = map_numel(maps);
  if (B == 0 || N == 0) return out;
  if (at::isnan(maps).any().item<bool>()) rank_normalize_raise_nan();
  auto [sorted, index] = at::sort(maps.view({B, N}), /*dim=*/1);
  sorted = sorted.contiguous();
  index = index.contiguous();
  const int threads = 256;
  const int64_t blocks = (B * N + threads - 1) / threads;
  TORCH_CHECK(blocks <= std::numeric_limits<int>::max(), "spectral_xai: rank_normalize: ", B * N,
              " pixels exceed one CUDA grid");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, maps.scalar_type(), "rank_normalize_cuda", [&] {
    average_ranks_kernel<scalar_t><<<static_cast<unsigned>(blocks), threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        sorted.const_data_ptr<scalar_t>(), index.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(), B,
        N);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// One block per map: ring sums in shared memory (double atomics), then ring means.
template <typename scalar_t>
__global__ void ring_kernel(const scalar_t* __restrict__ spec, const int64_t* __restrict__ counts,
                            scalar_t* __restrict__ out, Grid g, int64_t K) {
  extern __shared__ double ring[];
  const int64_t b = blockIdx.x;
  const int64_t H = g.H, W = g.W, Wh = W / 2 + 1, rows = g.D * H;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) ring[k] = 0.0;
  __syncthreads();
  const scalar_t* s = spec + 2 * b * rows * Wh;
  for (int64_t e = threadIdx.x; e < rows * Wh; e += blockDim.x) {
    const int64_t row = e / Wh, v = e % Wh;
    const int64_t cd = centred_index(row / H, g.D), cu = centred_index(row % H, H);
    const double re = static_cast<double>(s[2 * e]), im = static_cast<double>(s[2 * e + 1]);
    atomicAdd(&ring[isqrt(cd * cd + cu * cu + v * v)], column_weight(v, W) * (re * re + im * im));
  }
  __syncthreads();
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) out[b * K + k] = static_cast<scalar_t>(ring[k] / counts[k]);
}

at::Tensor radial_power_spectrum_cuda(const at::Tensor& maps) {
  RadialArgs p = radial_prepare(maps);
  if (!p.spec.defined()) return p.out;
  const c10::cuda::CUDAGuard guard(maps.device());
  const int64_t B = p.out.size(0), K = p.K;
  TORCH_CHECK(K * static_cast<int64_t>(sizeof(double)) <= 48 * 1024,
              "spectral_xai: radial_power_spectrum on CUDA supports up to 6144 rings (maps up to ~8000 px per side)");
  TORCH_CHECK(B <= std::numeric_limits<int>::max(), "spectral_xai: radial_power_spectrum: ", B,
              " maps exceed one CUDA grid");
  const std::vector<int64_t> host_counts = ring_counts(p.grid);
  const at::Tensor counts =
      at::tensor(host_counts, at::TensorOptions().dtype(at::kLong)).to(maps.device(), /*non_blocking=*/false);
  const int threads = 256;
  AT_DISPATCH_FLOATING_TYPES(p.out.scalar_type(), "radial_power_spectrum_cuda", [&] {
    ring_kernel<scalar_t><<<static_cast<unsigned>(B), threads, K * sizeof(double),
                            c10::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const scalar_t*>(p.spec.const_data_ptr()), counts.const_data_ptr<int64_t>(),
        p.out.mutable_data_ptr<scalar_t>(), p.grid, K);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return p.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CUDA, m) {
  m.impl("rank_normalize", &rank_normalize_cuda);
  m.impl("radial_power_spectrum", &radial_power_spectrum_cuda);
}

}  // namespace spectral_xai
