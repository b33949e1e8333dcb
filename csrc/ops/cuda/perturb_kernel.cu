// CUDA kernel of spectral_xai::perturb (see ../perturb.h).  Same arithmetic as the CPU
// kernel, FMA contraction disabled (-fmad=false), so both produce identical bits.
// Only the headers the kernel needs (no ATen/ATen.h), which keeps nvcc's host pass short; the CUDA
// implementation is registered at the end of this file, as the CPU one is in ../cpu/perturb_kernel.cpp.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "../common/philox.h"
#include "../common/row_checks.h"
#include "../perturb.h"

namespace spectral_xai {
namespace {

constexpr int kThreads = 256;

struct Strides4 {
  int64_t s[4];
};

Strides4 strides_of(const at::Tensor& t) {
  Strides4 r{{0, 0, 0, 0}};
  if (t.defined()) {
    for (int d = 0; d < 4; ++d) r.s[d] = t.stride(d);
  }
  return r;
}

// Thread t checks image id t (t < B) and row t (t < N); any error sets bits of *flag.
__global__ void check_indices_kernel(const int64_t* __restrict__ rows, const int64_t* __restrict__ ids, int64_t N,
                                     int64_t B, int64_t S, unsigned int* __restrict__ flag) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  uint32_t err = kRowOk;
  if (t < B) err |= image_id_error(ids[t]);
  if (t < N) err |= row_error(rows[3 * t], rows[3 * t + 1], rows[3 * t + 2], B, S, ids);
  if (err != kRowOk) atomicOr(flag, err);
}

// One thread = one group of four consecutive logical (NCHW) elements of one row.  A row that
// fails row_error writes nothing (its error is reported by check_indices_kernel).
template <typename scalar_t>
__global__ void perturb_kernel(const scalar_t* __restrict__ x, Strides4 xs, const scalar_t* __restrict__ base,
                               Strides4 bs, const int64_t* __restrict__ rows, const double* __restrict__ sigmas,
                               const double* __restrict__ scales, const int64_t* __restrict__ ids,
                               scalar_t* __restrict__ out, Strides4 os, int64_t N, int64_t B, int64_t S, int64_t C,
                               int64_t H, int64_t W, int64_t groups, uint64_t seed, Mixing mixing) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= N * groups) return;
  const int64_t r = t / groups;
  const int64_t g = t % groups;
  const int64_t b = rows[3 * r], j = rows[3 * r + 1], i = rows[3 * r + 2];
  if (row_error(b, j, i, B, S, ids) != kRowOk) return;
  acc_t a, c;
  mixing_coefficients<acc_t>(mixing, sigmas[j], scales[b], a, c);
  const bool use_noise = mixing != Mixing::kDamping;
  float eps[4] = {0.f, 0.f, 0.f, 0.f};
  if (use_noise) {
    philox::normal4(seed, static_cast<uint32_t>(ids[b]), static_cast<uint32_t>(j), static_cast<uint32_t>(i),
                    static_cast<uint32_t>(g), eps);
  }
  const int64_t HW = H * W, E = C * HW;
#pragma unroll
  for (int lane = 0; lane < 4; ++lane) {
    const int64_t e = 4 * g + lane;
    if (e >= E) break;
    const int64_t ch = e / HW, h = (e / W) % H, w = e % W;
    const acc_t xv = static_cast<acc_t>(x[b * xs.s[0] + ch * xs.s[1] + h * xs.s[2] + w * xs.s[3]]);
    acc_t second;
    if (use_noise) {
      second = c * static_cast<acc_t>(eps[lane]);
    } else {
      const acc_t bv = base != nullptr
                           ? static_cast<acc_t>(base[b * bs.s[0] + ch * bs.s[1] + h * bs.s[2] + w * bs.s[3]])
                           : acc_t(0);
      second = c * bv;
    }
    const acc_t ax = a * xv;
    out[r * os.s[0] + ch * os.s[1] + h * os.s[2] + w * os.s[3]] = static_cast<scalar_t>(ax + second);
  }
}

unsigned int blocks_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  TORCH_CHECK(blocks <= std::numeric_limits<int>::max(), "spectral_xai: perturb: ", work,
              " threads exceed one CUDA grid");
  return static_cast<unsigned int>(std::max<int64_t>(blocks, 1));
}

}  // namespace

at::Tensor perturb_cuda(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                        const at::Tensor& scales, const at::Tensor& image_ids,
                        const std::optional<at::Tensor>& baseline, int64_t seed, c10::string_view mixing) {
  PerturbArgs p = perturb_prepare(x, rows, sigmas, scales, image_ids, baseline, mixing);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t N = p.out.size(0), B = x.size(0), S = p.sigmas.size(0);
  const int64_t C = p.out.size(1), H = p.out.size(2), W = p.out.size(3);
  if (N == 0 && B == 0) return p.out;
  const at::Tensor flag = at::zeros({1}, p.rows.options().dtype(at::kInt));
  check_indices_kernel<<<blocks_for(std::max(N, B)), kThreads, 0, stream>>>(
      p.rows.const_data_ptr<int64_t>(), p.image_ids.const_data_ptr<int64_t>(), N, B, S,
      reinterpret_cast<unsigned int*>(flag.mutable_data_ptr<int>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (p.out.numel() > 0) {
    const int64_t groups = (C * H * W + 3) / 4;
    // The schema's int64 seed holds the uint64 key in two's complement (see ops/perturb.py).
    const uint64_t key = static_cast<uint64_t>(seed);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "perturb_cuda", [&] {
      const at::Tensor& base = p.baseline;
      perturb_kernel<scalar_t><<<blocks_for(N * groups), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), strides_of(x), base.defined() ? base.const_data_ptr<scalar_t>() : nullptr,
          strides_of(base), p.rows.const_data_ptr<int64_t>(), p.sigmas.const_data_ptr<double>(),
          p.scales.const_data_ptr<double>(), p.image_ids.const_data_ptr<int64_t>(),
          p.out.mutable_data_ptr<scalar_t>(), strides_of(p.out), N, B, S, C, H, W, groups, key, p.mixing);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  // One device-to-host read of the flag per call (none while a CUDA graph is captured: the
  // kernels still skip bad rows).  On error, the host checks name the first bad id or row.
  if (!c10::cuda::isStreamCapturingMayInitCtx(stream) && flag.item<int>() != 0) {
    perturb_check_indices(p.rows.cpu(), p.image_ids.cpu(), S);
    TORCH_CHECK(false, "spectral_xai: perturb: the device index check failed but the host check did not");
  }
  return p.out;
}

TORCH_LIBRARY_IMPL(spectral_xai, CUDA, m) { m.impl("perturb", &perturb_cuda); }

}  // namespace spectral_xai
