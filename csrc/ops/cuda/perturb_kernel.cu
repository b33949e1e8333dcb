// CUDA kernel of spectral_xai::perturb (see ../perturb.h).  Same arithmetic as the CPU
// kernel, FMA contraction disabled (-fmad=false), so both produce identical bits.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common/philox.h"
#include "../perturb.h"

namespace spectral_xai {
namespace {

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

// One thread = one group of four consecutive logical (NCHW) elements of one row.
template <typename scalar_t>
__global__ void perturb_kernel(const scalar_t* __restrict__ x, Strides4 xs, const scalar_t* __restrict__ base,
                               Strides4 bs, const int64_t* __restrict__ rows, const double* __restrict__ sigmas,
                               const double* __restrict__ scales, const int64_t* __restrict__ ids,
                               scalar_t* __restrict__ out, Strides4 os, int64_t N, int64_t C, int64_t H, int64_t W,
                               int64_t groups, uint64_t seed, Mixing mixing) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= N * groups) return;
  const int64_t r = t / groups;
  const int64_t g = t % groups;
  const int64_t b = rows[3 * r], j = rows[3 * r + 1], i = rows[3 * r + 2];
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

at::Tensor perturb_cuda(const at::Tensor& x, const at::Tensor& rows_in, const at::Tensor& sigmas_in,
                        const at::Tensor& scales_in, const at::Tensor& image_ids_in,
                        const std::optional<at::Tensor>& baseline, int64_t seed, c10::string_view mixing_name) {
  const Mixing mixing = parse_mixing(std::string(mixing_name));
  at::Tensor out = perturb_prepare(x, rows_in, sigmas_in, scales_in, image_ids_in, baseline, mixing);
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor rows = rows_in.contiguous();
  const at::Tensor sigmas = sigmas_in.contiguous();
  const at::Tensor scales = scales_in.contiguous();
  const at::Tensor ids = image_ids_in.contiguous();
  const at::Tensor base = (baseline.has_value() && baseline->defined()) ? *baseline : at::Tensor();
  const int64_t N = out.size(0), C = out.size(1), H = out.size(2), W = out.size(3);
  const int64_t groups = (C * H * W + 3) / 4;
  const int64_t threads = 256;
  const int64_t blocks = (N * groups + threads - 1) / threads;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "perturb_cuda", [&] {
    perturb_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), strides_of(x), base.defined() ? base.const_data_ptr<scalar_t>() : nullptr,
        strides_of(base), rows.const_data_ptr<int64_t>(), sigmas.const_data_ptr<double>(),
        scales.const_data_ptr<double>(), ids.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(),
        strides_of(out), N, C, H, W, groups, static_cast<uint64_t>(seed), mixing);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CUDA, m) { m.impl("perturb", &perturb_cuda); }

}  // namespace spectral_xai
