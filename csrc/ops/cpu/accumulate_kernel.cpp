// CPU kernels of spectral_xai::accumulate_ and accumulate_stats_ (see ../accumulate.h for the semantics).
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

// The data of one call: grads, and the accumulators (nullptr = not tracked).
template <typename scalar_t>
struct Work {
  const scalar_t* g;
  int64_t gs0, gs1, gs2, gs3;
  double *m1, *m2, *ck;  // (P, C', H, W)
  double *s1, *s2;       // Welford sums of squared deviations (P, C', H, W)
  double *c1, *c2;       // sums of cubed deviations (P, C', H, W)
  double *h1, *h2;       // group means (P, G, C', H, W)
  const int64_t *counts, *group_counts, *sample_index;
  int64_t check_every, groups;
};

// Per-line results of a task, reduced over the lines of a segment afterwards.
struct LineStats {
  double dmax = 0.0, smax = 0.0;
  int64_t nonfinite = 0;
};

// One Welford step with the n-th value v (dn = n): m, the sum of squares s and of cubes c (each optional).
inline void moments_step(double& m, double* s, double* c, double v, double dn) {
  const double d = v - m;
  m = m + d / dn;
  if (!s) return;
  if (c) {
    const double q = d / dn, t1 = d * q * (dn - 1.0);
    *c = *c + (t1 * q * (dn - 2.0) - 3.0 * q * *s);
  }
  *s = *s + d * (v - m);
}

// Streams the rows of one segment through one line (accumulator channel c', row h) of its maps.
template <typename scalar_t, bool kStats>
LineStats accumulate_line(const Work<scalar_t>& X, const AccumulateLayout& L, const Segment& seg, int64_t line) {
  const int64_t C = L.channels, H = L.height, W = L.width, E = L.acc_channels * H * W;
  const bool reduce = L.acc_channels == 1 && C > 1;
  const int64_t c_acc = line / H, h = line % H;
  const int64_t G = X.groups, off = seg.slot * E + line * W, hoff = G * seg.slot * E + line * W;
  auto at = [](double* base, int64_t o) { return base ? base + o : nullptr; };
  double *m1 = at(X.m1, off), *m2 = at(X.m2, off), *ck = at(X.ck, off);
  double *s1 = at(X.s1, off), *s2 = at(X.s2, off), *c1 = at(X.c1, off), *c2 = at(X.c2, off);
  double *h1 = at(X.h1, hoff), *h2 = at(X.h2, hoff);
  double* prim = m2 ? m2 : m1;
  const int64_t n0 = X.counts[seg.slot], every = X.check_every;
  const int64_t n_last = ck ? ((n0 + seg.end - seg.begin) / every) * every : 0;
  int64_t nh[kMaxGroups];  // the groups' counts, advanced row by row
  for (int64_t q = 0; kStats && q < G; ++q) nh[q] = X.group_counts[G * seg.slot + q];
  LineStats out;
  for (int64_t r = seg.begin; r < seg.end; ++r) {
    const int64_t n = n0 + (r - seg.begin) + 1;
    const double dn = static_cast<double>(n);
    const int64_t q = kStats && G > 0 ? X.sample_index[r] % G : 0;
    const double dh = static_cast<double>(kStats && G > 0 ? ++nh[q] : 1);
    double* a1 = kStats && h1 ? h1 + q * E : nullptr;
    double* a2 = kStats && h2 ? h2 + q * E : nullptr;
    const scalar_t* g = X.g + r * X.gs0 + h * X.gs2 + (reduce ? 0 : c_acc * X.gs1);
    for (int64_t w = 0; w < W; ++w) {
      double v1 = 0.0, v2 = 0.0;
      if (reduce) {
        for (int64_t c = 0; c < C; ++c) {
          const double v = static_cast<double>(g[c * X.gs1 + w * X.gs3]);
          if constexpr (kStats) out.nonfinite += !std::isfinite(v);
          v1 = v1 + v;
          v2 = v2 + v * v;
        }
      } else {
        v1 = static_cast<double>(g[w * X.gs3]);
        v2 = v1 * v1;
        if constexpr (kStats) out.nonfinite += !std::isfinite(v1);
      }
      if (m1) moments_step(m1[w], kStats && s1 ? s1 + w : nullptr, kStats && c1 ? c1 + w : nullptr, v1, dn);
      if (m2) moments_step(m2[w], kStats && s2 ? s2 + w : nullptr, kStats && c2 ? c2 + w : nullptr, v2, dn);
      if (a1) a1[w] = a1[w] + (v1 - a1[w]) / dh;
      if (a2) a2[w] = a2[w] + (v2 - a2[w]) / dh;
    }
    if (ck && n % every == 0) {
      if (n == n_last) {
        for (int64_t w = 0; w < W; ++w) {
          out.dmax = std::max(out.dmax, std::abs(prim[w] - ck[w]));
          out.smax = std::max(out.smax, std::abs(prim[w]));
        }
      }
      for (int64_t w = 0; w < W; ++w) ck[w] = prim[w];
    }
  }
  return out;
}

template <typename T>
T* ptr_if(bool on, at::Tensor& t) {
  return on ? t.data_ptr<T>() : nullptr;
}

// Reduces the per-line results of every segment into delta / scale / nonfinite and advances the counts.
void finish_segments(const std::vector<Segment>& segments, const std::vector<LineStats>& parts,
                     const AccumulateLayout& L, const int64_t* sample_index, at::Tensor& counts,
                     at::Tensor& delta, at::Tensor& scale, AccumulateStats& S, int64_t check_every) {
  const int64_t lines = L.acc_channels * L.height;
  int64_t* cnt = counts.data_ptr<int64_t>();
  double* dp = ptr_if<double>(L.track_stop, delta);
  double* sp = ptr_if<double>(L.track_stop, scale);
  int64_t* hc = ptr_if<int64_t>(L.grouped, S.group_counts);
  const int64_t G = L.groups;
  int64_t* nf = ptr_if<int64_t>(L.nonfinite, S.nonfinite);
  for (size_t s = 0; s < segments.size(); ++s) {
    const Segment& seg = segments[s];
    const int64_t n0 = cnt[seg.slot], n1 = n0 + (seg.end - seg.begin);
    LineStats total;
    for (int64_t l = 0; l < lines; ++l) {
      const LineStats& part = parts[s * lines + l];
      total.dmax = std::max(total.dmax, part.dmax);
      total.smax = std::max(total.smax, part.smax);
      total.nonfinite += part.nonfinite;
    }
    if (L.track_stop && (n1 / check_every) * check_every > n0) {
      dp[seg.slot] = total.dmax;
      sp[seg.slot] = total.smax;
    }
    if (nf) nf[seg.slot] += total.nonfinite;
    for (int64_t r = seg.begin; hc && r < seg.end; ++r) ++hc[G * seg.slot + sample_index[r] % G];
    cnt[seg.slot] = n1;
  }
}

template <typename scalar_t>
void accumulate_cpu_impl(const at::Tensor& grads, const std::vector<Segment>& segments, const AccumulateLayout& L,
                         at::Tensor& mean1, at::Tensor& mean2, at::Tensor& counts, at::Tensor& checkpoint,
                         at::Tensor& delta, at::Tensor& scale, int64_t check_every, AccumulateStats& S,
                         const int64_t* sample_index) {
  const Work<scalar_t> X{grads.const_data_ptr<scalar_t>(), grads.stride(0), grads.stride(1), grads.stride(2),
                         grads.stride(3), ptr_if<double>(L.track1, mean1), ptr_if<double>(L.track2, mean2),
                         ptr_if<double>(L.track_stop, checkpoint), ptr_if<double>(L.sumsq1, S.sumsq1),
                         ptr_if<double>(L.sumsq2, S.sumsq2), ptr_if<double>(L.cube1, S.sumcube1),
                         ptr_if<double>(L.cube2, S.sumcube2), ptr_if<double>(L.group1, S.group_mean1),
                         ptr_if<double>(L.group2, S.group_mean2), counts.const_data_ptr<int64_t>(),
                         ptr_if<int64_t>(L.grouped, S.group_counts), sample_index, check_every, L.groups};
  const int64_t lines = L.acc_channels * L.height;
  const int64_t tasks = static_cast<int64_t>(segments.size()) * lines;
  std::vector<LineStats> parts(tasks);
  const bool stats = L.any_stats();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(L.width, 1));
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const Segment& seg = segments[task / lines];
      parts[task] = stats ? accumulate_line<scalar_t, true>(X, L, seg, task % lines)
                          : accumulate_line<scalar_t, false>(X, L, seg, task % lines);
    }
  });
  finish_segments(segments, parts, L, sample_index, counts, delta, scale, S, check_every);
}

void accumulate_stats_cpu(const at::Tensor& grads, const at::Tensor& slots_in, at::Tensor mean1, at::Tensor mean2,
                          at::Tensor counts, at::Tensor checkpoint, at::Tensor delta, at::Tensor scale,
                          int64_t check_every, const at::Tensor& sample_index, at::Tensor sumsq1, at::Tensor sumsq2,
                          at::Tensor sumcube1, at::Tensor sumcube2, at::Tensor group_mean1, at::Tensor group_mean2,
                          at::Tensor group_counts, at::Tensor nonfinite) {
  AccumulateLayout L = accumulate_check(grads, slots_in, mean1, mean2, counts, checkpoint, delta, scale, check_every);
  AccumulateStats S{sample_index, sumsq1,      sumsq2,      sumcube1,    sumcube2,
                    group_mean1,  group_mean2, group_counts, nonfinite};
  accumulate_stats_check(L, grads, S);
  const at::Tensor slots = slots_in.contiguous();
  const std::vector<Segment> segments = find_segments(slots, L.slots);
  if (segments.empty()) return;
  const at::Tensor index = L.grouped ? sample_index.contiguous() : at::Tensor();
  const int64_t* idx = L.grouped ? index.const_data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "accumulate_cpu", [&] {
    accumulate_cpu_impl<scalar_t>(grads, segments, L, mean1, mean2, counts, checkpoint, delta, scale, check_every,
                                  S, idx);
  });
}

void accumulate_cpu(const at::Tensor& grads, const at::Tensor& slots, at::Tensor mean1, at::Tensor mean2,
                    at::Tensor counts, at::Tensor checkpoint, at::Tensor delta, at::Tensor scale,
                    int64_t check_every) {
  const at::Tensor none;
  accumulate_stats_cpu(grads, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every, none, none, none,
                       none, none, none, none, none, none);
}

}  // namespace

TORCH_LIBRARY_IMPL(spectral_xai, CPU, m) {
  m.impl("accumulate_", &accumulate_cpu);
  m.impl("accumulate_stats_", &accumulate_stats_cpu);
}

}  // namespace spectral_xai
