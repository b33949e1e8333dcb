// CPU kernel of spectral_xai::perturb (see ../perturb.h for the semantics).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common/philox.h"
#include "../perturb.h"

namespace spectral_xai {
namespace {

template <typename scalar_t>
void perturb_cpu_impl(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                      const at::Tensor& scales, const at::Tensor& image_ids, const at::Tensor& baseline,
                      uint64_t seed, Mixing mixing, at::Tensor& out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = out.size(0), C = out.size(1), H = out.size(2), W = out.size(3);
  const int64_t HW = H * W;
  const int64_t* row = rows.data_ptr<int64_t>();
  const double* sig = sigmas.data_ptr<double>();
  const double* scl = scales.data_ptr<double>();
  const int64_t* ids = image_ids.data_ptr<int64_t>();
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const scalar_t* bp = baseline.defined() ? baseline.const_data_ptr<scalar_t>() : nullptr;
  scalar_t* op = out.mutable_data_ptr<scalar_t>();
  const auto xs = x.strides();
  const auto os = out.strides();
  std::array<int64_t, 4> bs{0, 0, 0, 0};
  if (bp != nullptr) {
    for (int d = 0; d < 4; ++d) bs[d] = baseline.stride(d);
  }
  const bool use_noise = mixing != Mixing::kDamping;

  // One task = one (row, channel) plane: its noise is generated in one vectorised sweep.
  const int64_t planes = N * C;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(HW, 1));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> noise;
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t r = plane / C, ch = plane % C;
      const int64_t b = row[3 * r];
      const int64_t j = row[3 * r + 1], i = row[3 * r + 2];
      acc_t a = 0, c = 0;
      mixing_coefficients<acc_t>(mixing, sig[j], scl[b], a, c);
      const float* eps = nullptr;
      if (use_noise) {
        const int64_t e0 = ch * HW;  // logical NCHW index of the plane's first element
        const int64_t g0 = e0 >> 2, g1 = (e0 + HW - 1) >> 2;
        noise.resize(static_cast<size_t>(4 * (g1 - g0 + 1)));
        philox::normal4_blocks(seed, static_cast<uint32_t>(ids[b]), static_cast<uint32_t>(j),
                               static_cast<uint32_t>(i), static_cast<uint32_t>(g0), static_cast<int>(g1 - g0 + 1),
                               noise.data());
        eps = noise.data() + (e0 & 3);
      }
      const scalar_t* xc = xp + b * xs[0] + ch * xs[1];
      const scalar_t* bc = bp != nullptr ? bp + b * bs[0] + ch * bs[1] : nullptr;
      scalar_t* oc = op + r * os[0] + ch * os[1];
      for (int64_t h = 0; h < H; ++h) {
        const scalar_t* xl = xc + h * xs[2];
        scalar_t* ol = oc + h * os[2];
        if (use_noise) {
          const float* el = eps + h * W;
          if (xs[3] == 1 && os[3] == 1) {
            for (int64_t w = 0; w < W; ++w) {
              const acc_t ax = a * static_cast<acc_t>(xl[w]);
              const acc_t ce = c * static_cast<acc_t>(el[w]);
              ol[w] = static_cast<scalar_t>(ax + ce);
            }
          } else {
            for (int64_t w = 0; w < W; ++w) {
              const acc_t ax = a * static_cast<acc_t>(xl[w * xs[3]]);
              const acc_t ce = c * static_cast<acc_t>(el[w]);
              ol[w * os[3]] = static_cast<scalar_t>(ax + ce);
            }
          }
        } else {
          const scalar_t* bl = bc != nullptr ? bc + h * bs[2] : nullptr;
          for (int64_t w = 0; w < W; ++w) {
            const acc_t ax = a * static_cast<acc_t>(xl[w * xs[3]]);
            const acc_t bv = bl != nullptr ? static_cast<acc_t>(bl[w * bs[3]]) : acc_t(0);
            const acc_t cb = c * bv;
            ol[w * os[3]] = static_cast<scalar_t>(ax + cb);
          }
        }
      }
    }
  });
}

at::Tensor perturb_cpu(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& sigmas,
                       const at::Tensor& scales, const at::Tensor& image_ids,
                       const std::optional<at::Tensor>& baseline, int64_t seed, c10::string_view mixing) {
  PerturbArgs p = perturb_prepare(x, rows, sigmas, scales, image_ids, baseline, mixing);
  perturb_check_indices(p.rows, p.image_ids, p.sigmas.size(0));
  if (p.out.numel() == 0) return p.out;
  // The schema's int64 seed holds the uint64 key in two's complement (see ops/perturb.py).
  const uint64_t key = static_cast<uint64_t>(seed);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "perturb_cpu", [&] {
    perturb_cpu_impl<scalar_t>(x, p.rows, p.sigmas, p.scales, p.image_ids, p.baseline, key, p.mixing, p.out);
  });
  return p.out;
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CPU, m) { m.impl("perturb", &perturb_cpu); }

}  // namespace spectral_xai
