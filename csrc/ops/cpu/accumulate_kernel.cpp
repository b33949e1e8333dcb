// CPU kernel of spectral_xai::accumulate_ (see ../accumulate.h for the semantics).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <unordered_set>
#include <vector>

#include "../accumulate.h"
#include "../common/checks.h"

namespace spectral_xai {
namespace {

struct Segment {
  int64_t slot, begin, end;
};

std::vector<Segment> find_segments(const at::Tensor& slots, int64_t num_slots) {
  const int64_t* s = slots.data_ptr<int64_t>();
  std::vector<Segment> segments;
  std::unordered_set<int64_t> seen;
  for (int64_t r = 0; r < slots.size(0); ++r) {
    SXAI_CHECK_ARG(s[r] >= 0 && s[r] < num_slots, "slots", "slot ", s[r], " of row ", r, " is outside [0, ",
                   num_slots, ")");
    if (r == 0 || s[r] != s[r - 1]) {
      SXAI_CHECK_ARG(seen.insert(s[r]).second, "slots", "the rows of slot ", s[r], " are not contiguous");
      segments.push_back({s[r], r, r + 1});
    } else {
      segments.back().end = r + 1;
    }
  }
  return segments;
}

template <typename scalar_t>
void accumulate_cpu_impl(const at::Tensor& grads, const std::vector<Segment>& segments, const AccumulateLayout& L,
                         at::Tensor& mean1, at::Tensor& mean2, at::Tensor& counts, at::Tensor& checkpoint,
                         at::Tensor& delta, at::Tensor& scale, int64_t check_every) {
  const int64_t C = L.channels, H = L.height, W = L.width, Cp = L.acc_channels;
  const bool reduce = Cp == 1 && C > 1;
  const int64_t E = Cp * H * W;
  const int64_t lines = Cp * H;
  const scalar_t* gp = grads.const_data_ptr<scalar_t>();
  const int64_t gs0 = grads.stride(0), gs1 = grads.stride(1), gs2 = grads.stride(2), gs3 = grads.stride(3);
  double* m1p = L.track1 ? mean1.data_ptr<double>() : nullptr;
  double* m2p = L.track2 ? mean2.data_ptr<double>() : nullptr;
  double* ckp = L.track_stop ? checkpoint.data_ptr<double>() : nullptr;
  const int64_t* cnt = counts.data_ptr<int64_t>();
  const int64_t nseg = static_cast<int64_t>(segments.size());
  std::vector<double> part_delta(L.track_stop ? nseg * lines : 0, 0.0);
  std::vector<double> part_scale(L.track_stop ? nseg * lines : 0, 0.0);

  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(W, 1));
  at::parallel_for(0, nseg * lines, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const Segment& seg = segments[task / lines];
      const int64_t line = task % lines;
      const int64_t c_acc = line / H, h = line % H;
      const int64_t off = seg.slot * E + line * W;
      double* m1 = m1p ? m1p + off : nullptr;
      double* m2 = m2p ? m2p + off : nullptr;
      double* ck = ckp ? ckp + off : nullptr;
      double* prim = m2 ? m2 : m1;
      const int64_t n0 = cnt[seg.slot];
      const int64_t len = seg.end - seg.begin;
      const int64_t n_last = L.track_stop ? ((n0 + len) / check_every) * check_every : 0;
      double dmax = 0.0, smax = 0.0;
      for (int64_t r = seg.begin; r < seg.end; ++r) {
        const int64_t n = n0 + (r - seg.begin) + 1;
        const double dn = static_cast<double>(n);
        const scalar_t* g = gp + r * gs0 + h * gs2 + (reduce ? 0 : c_acc * gs1);
        for (int64_t w = 0; w < W; ++w) {
          double v1 = 0.0, v2 = 0.0;
          if (reduce) {
            for (int64_t c = 0; c < C; ++c) {
              const double v = static_cast<double>(g[c * gs1 + w * gs3]);
              v1 = v1 + v;
              v2 = v2 + v * v;
            }
          } else {
            v1 = static_cast<double>(g[w * gs3]);
            v2 = v1 * v1;
          }
          if (m1) m1[w] = m1[w] + (v1 - m1[w]) / dn;
          if (m2) m2[w] = m2[w] + (v2 - m2[w]) / dn;
        }
        if (ck && n % check_every == 0) {
          if (n == n_last) {
            for (int64_t w = 0; w < W; ++w) {
              dmax = std::max(dmax, std::abs(prim[w] - ck[w]));
              smax = std::max(smax, std::abs(prim[w]));
            }
          }
          for (int64_t w = 0; w < W; ++w) ck[w] = prim[w];
        }
      }
      if (L.track_stop) {
        part_delta[task] = dmax;
        part_scale[task] = smax;
      }
    }
  });

  int64_t* cnt_mut = counts.data_ptr<int64_t>();
  double* dp = L.track_stop ? delta.data_ptr<double>() : nullptr;
  double* sp = L.track_stop ? scale.data_ptr<double>() : nullptr;
  for (int64_t s = 0; s < nseg; ++s) {
    const Segment& seg = segments[s];
    const int64_t n0 = cnt_mut[seg.slot];
    const int64_t n1 = n0 + (seg.end - seg.begin);
    if (L.track_stop && (n1 / check_every) * check_every > n0) {
      double dmax = 0.0, smax = 0.0;
      for (int64_t l = 0; l < lines; ++l) {
        dmax = std::max(dmax, part_delta[s * lines + l]);
        smax = std::max(smax, part_scale[s * lines + l]);
      }
      dp[seg.slot] = dmax;
      sp[seg.slot] = smax;
    }
    cnt_mut[seg.slot] = n1;
  }
}

void accumulate_cpu(const at::Tensor& grads, const at::Tensor& slots_in, at::Tensor mean1, at::Tensor mean2,
                    at::Tensor counts, at::Tensor checkpoint, at::Tensor delta, at::Tensor scale,
                    int64_t check_every) {
  const AccumulateLayout L =
      accumulate_check(grads, slots_in, mean1, mean2, counts, checkpoint, delta, scale, check_every);
  const at::Tensor slots = slots_in.contiguous();
  const std::vector<Segment> segments = find_segments(slots, L.slots);
  if (segments.empty()) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "accumulate_cpu", [&] {
    accumulate_cpu_impl<scalar_t>(grads, segments, L, mean1, mean2, counts, checkpoint, delta, scale,
                                  check_every);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CPU, m) { m.impl("accumulate_", &accumulate_cpu); }

}  // namespace spectral_xai
