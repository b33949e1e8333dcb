// CPU kernels of spectral_xai::rank_normalize and spectral_xai::radial_power_spectrum
// (see ../spectrum.h for the semantics).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "../spectrum.h"

namespace spectral_xai {
namespace {

template <typename scalar_t>
void rank_map(const scalar_t* m, scalar_t* out, int64_t N, std::vector<int64_t>& order) {
  order.resize(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [m](int64_t a, int64_t b) { return m[a] < m[b]; });
  const double inv_n = 1.0 / static_cast<double>(N);
  for (int64_t i = 0; i < N;) {
    int64_t j = i + 1;
    while (j < N && !(m[order[i]] < m[order[j]])) ++j;  // run of ties [i, j)
    const double rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1 .. j
    for (int64_t t = i; t < j; ++t) out[order[t]] = static_cast<scalar_t>(rank * inv_n);
    i = j;
  }
}

at::Tensor rank_normalize_cpu(const at::Tensor& maps_in) {
  spectrum_check(maps_in, "rank_normalize");
  const at::Tensor maps = maps_in.contiguous();
  at::Tensor out = at::empty_like(maps);
  const int64_t B = maps.size(0), N = maps.size(1) * maps.size(2);
  if (B == 0 || N == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, maps.scalar_type(), "rank_normalize_cpu", [&] {
    const scalar_t* mp = maps.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> order;
      for (int64_t b = begin; b < end; ++b) rank_map<scalar_t>(mp + b * N, op + b * N, N, order);
    });
  });
  return out;
}

at::Tensor radial_power_spectrum_cpu(const at::Tensor& maps) {
  spectrum_check(maps, "radial_power_spectrum");
  const int64_t B = maps.size(0), H = maps.size(1), W = maps.size(2);
  const bool f64 = maps.scalar_type() == at::kDouble;
  const int64_t K = radial_bins(H, W);
  at::Tensor out = at::zeros({B, K}, maps.options().dtype(f64 ? at::kDouble : at::kFloat));
  if (B == 0 || H == 0 || W == 0) return out;
  const at::Tensor spec = at::fft_rfft2(maps.to(f64 ? at::kDouble : at::kFloat)).contiguous();  // (B, H, W/2+1)
  const std::vector<int64_t> counts = ring_counts(H, W);
  const int64_t Wh = W / 2 + 1;
  AT_DISPATCH_FLOATING_TYPES(f64 ? at::kDouble : at::kFloat, "radial_power_spectrum_cpu", [&] {
    const auto* sp = reinterpret_cast<const scalar_t*>(spec.const_data_ptr());  // interleaved (re, im)
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<double> ring(static_cast<size_t>(K));
      for (int64_t b = begin; b < end; ++b) {
        std::fill(ring.begin(), ring.end(), 0.0);
        const scalar_t* s = sp + 2 * b * H * Wh;
        for (int64_t u = 0; u < H; ++u) {
          const int64_t cu = centred_index(u, H);
          for (int64_t v = 0; v < Wh; ++v) {
            const double re = static_cast<double>(s[2 * (u * Wh + v)]);
            const double im = static_cast<double>(s[2 * (u * Wh + v) + 1]);
            ring[static_cast<size_t>(isqrt(cu * cu + v * v))] += column_weight(v, W) * (re * re + im * im);
          }
        }
        for (int64_t k = 0; k < K; ++k) op[b * K + k] = static_cast<scalar_t>(ring[k] / counts[k]);
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CPU, m) {
  m.impl("rank_normalize", &rank_normalize_cpu);
  m.impl("radial_power_spectrum", &radial_power_spectrum_cpu);
}

}  // namespace spectral_xai
