// CPU kernels of spectral_xai::rank_normalize and spectral_xai::radial_power_spectrum
// (see ../spectrum.h for the semantics).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>
#include <vector>

#include "../common/checks.h"
#include "../spectrum.h"

namespace spectral_xai {
namespace {

// Ranks of one map from its sorted order: runs of equal values get the mean of their ranks.
template <typename key_t, typename scalar_t>
void assign_average_ranks(const key_t* sorted_keys, const int32_t* order, scalar_t* out, int64_t N) {
  for (int64_t i = 0; i < N;) {
    int64_t j = i + 1;
    while (j < N && sorted_keys[j] == sorted_keys[i]) ++j;  // run of ties [i, j)
    const scalar_t value = static_cast<scalar_t>(average_rank(i, j, N));  // mean of ranks i+1 .. j, / N
    for (int64_t t = i; t < j; ++t) out[order[t]] = value;
    i = j;
  }
}

// Order-preserving unsigned key of a float (-0 and +0 share a key, as they compare equal).
inline uint32_t float_key(float f) {
  f = f + 0.0f;  // -0 -> +0
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

struct RankScratch {
  std::vector<uint32_t> keys, keys2;
  std::vector<int32_t> order, order2;
  std::vector<std::pair<double, int32_t>> pairs;
};

// float / half / bfloat16 maps: LSD radix sort of 32-bit keys (3 passes of 11 bits), O(N).
// Returns false if the map holds a NaN (which has no rank).
template <typename scalar_t>
bool rank_map(const scalar_t* m, scalar_t* out, int64_t N, RankScratch& s) {
  s.keys.resize(N), s.keys2.resize(N), s.order.resize(N), s.order2.resize(N);
  bool finite_order = true;
  for (int64_t i = 0; i < N; ++i) {
    const float v = static_cast<float>(m[i]);
    finite_order &= (v == v);
    s.keys[i] = float_key(v);
    s.order[i] = static_cast<int32_t>(i);
  }
  if (!finite_order) return false;
  constexpr int kBits = 11;
  constexpr uint32_t kMask = (1u << kBits) - 1u;
  std::vector<int64_t> count(static_cast<size_t>(kMask) + 2);
  for (int shift = 0; shift < 32; shift += kBits) {
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < N; ++i) ++count[((s.keys[i] >> shift) & kMask) + 1];
    for (uint32_t d = 0; d <= kMask; ++d) count[d + 1] += count[d];
    for (int64_t i = 0; i < N; ++i) {
      const int64_t pos = count[(s.keys[i] >> shift) & kMask]++;
      s.keys2[pos] = s.keys[i];
      s.order2[pos] = s.order[i];
    }
    s.keys.swap(s.keys2);
    s.order.swap(s.order2);
  }
  assign_average_ranks(s.keys.data(), s.order.data(), out, N);
  return true;
}

// float64 maps: comparison sort of (value, index) pairs.
template <>
bool rank_map<double>(const double* m, double* out, int64_t N, RankScratch& s) {
  s.pairs.resize(N);
  for (int64_t i = 0; i < N; ++i) {
    if (m[i] != m[i]) return false;
    s.pairs[i] = {m[i] + 0.0, static_cast<int32_t>(i)};
  }
  std::sort(s.pairs.begin(), s.pairs.end());
  s.keys.clear();
  std::vector<double> sorted(N);
  s.order.resize(N);
  for (int64_t i = 0; i < N; ++i) {
    sorted[i] = s.pairs[i].first;
    s.order[i] = s.pairs[i].second;
  }
  assign_average_ranks(sorted.data(), s.order.data(), out, N);
  return true;
}

at::Tensor rank_normalize_cpu(const at::Tensor& maps_in) {
  rank_normalize_check(maps_in);
  const at::Tensor maps = maps_in.contiguous();
  at::Tensor out = at::empty_like(maps);
  const int64_t B = maps.size(0), N = map_numel(maps);
  if (B == 0 || N == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, maps.scalar_type(), "rank_normalize_cpu", [&] {
    const scalar_t* mp = maps.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    std::atomic<bool> has_nan{false};
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      RankScratch scratch;
      for (int64_t b = begin; b < end; ++b) {
        if (!rank_map<scalar_t>(mp + b * N, op + b * N, N, scratch)) has_nan = true;
      }
    });
    if (has_nan.load()) rank_normalize_raise_nan();
  });
  return out;
}

at::Tensor radial_power_spectrum_cpu(const at::Tensor& maps) {
  RadialArgs p = radial_prepare(maps);
  if (!p.spec.defined()) return p.out;
  const int64_t B = p.out.size(0), D = p.grid.D, H = p.grid.H, W = p.grid.W, K = p.K;
  at::Tensor& out = p.out;
  const at::Tensor& spec = p.spec;
  const std::vector<int64_t> counts = ring_counts(p.grid);
  const int64_t Wh = W / 2 + 1;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "radial_power_spectrum_cpu", [&] {
    const auto* sp = reinterpret_cast<const scalar_t*>(spec.const_data_ptr());  // interleaved (re, im)
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<double> ring(static_cast<size_t>(K));
      for (int64_t b = begin; b < end; ++b) {
        std::fill(ring.begin(), ring.end(), 0.0);
        const scalar_t* s = sp + 2 * b * D * H * Wh;
        for (int64_t d = 0; d < D; ++d) {
          const int64_t cd = centred_index(d, D);
          for (int64_t u = 0; u < H; ++u) {
            const int64_t cu = centred_index(u, H);
            const int64_t row = (d * H + u) * Wh;
            for (int64_t v = 0; v < Wh; ++v) {
              const double re = static_cast<double>(s[2 * (row + v)]);
              const double im = static_cast<double>(s[2 * (row + v) + 1]);
              ring[static_cast<size_t>(isqrt(cd * cd + cu * cu + v * v))] += column_weight(v, W) * (re * re + im * im);
            }
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
