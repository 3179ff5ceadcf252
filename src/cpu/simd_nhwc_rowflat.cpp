// SIMD NHWC forward and grad-input for few channels: the row-flat engine
// (RowFlatPlan in simd_plan.h). Vectorised along an image row's W x C
// floats, so C = 12 or 24 (InceptionNeXt) loses no lanes to rounding C up
// to the vector and nothing is copied to a channel-blocked scratch: the
// interior of a row is read in place, each row's two ends from a staged
// copy with the padding as zeros. Weights repeat every P vectors and are
// arranged once per call as [kh*kw][E][L] (RowFlatPlan). Stride 1 along W, any stride
// along H, any dilation and padding, multiplier 1; fp32 and bf16 storage,
// fp32 accumulation. cpu_fwd_nhwc_rowflat; cpu_dgrad_nhwc_rowflat is the
// same engine at stride 1 over dy upsampled along H by the stride (rows
// between samples skipped) with the flipped kernel.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_nhwc_rowflat.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <omp.h>

#include "cpu/parallel.h"
#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Weights [kh*kw][E][L] (flipped for grad-input) and bias [E][L]. Lane l
// of entry e holds channel ((e % P)*L + l) % C, which is (e*L + l) % C
// since P*L is a multiple of C: each tap's E*L floats are its C weights
// repeated.
template <typename T>
void RowFlatArrange(const simd::RowFlatPlan& f, const T* HWY_RESTRICT w, const T* HWY_RESTRICT b, bool flip,
                    float* HWY_RESTRICT wt, float* HWY_RESTRICT bias) {
  const simd::NhwcGeom& g = f.g;
  const int64_t kk = g.kh * g.kw, n = f.E * f.L, c0 = std::min(g.c, n);
  for (int64_t t = 0; t < kk; ++t) {
    float* dst = wt + t * n;
    const T* src = w + (flip ? kk - 1 - t : t);
    for (int64_t c = 0; c < c0; ++c) dst[c] = ToF(src[c * kk]);
    for (int64_t i = c0; i < n; ++i) dst[i] = dst[i - g.c];
  }
  for (int64_t c = 0; c < c0; ++c) bias[c] = b ? ToF(b[c]) : 0.f;
  for (int64_t i = c0; i < n; ++i) bias[i] = bias[i - g.c];
}

// Input floats [lo, lo + len) of a row of in_row floats, as fp32, zero
// outside the row.
template <typename T>
void RowFlatStage(const T* HWY_RESTRICT xrow, int64_t in_row, int64_t lo, int64_t len, float* HWY_RESTRICT dst) {
  const int64_t a = std::clamp<int64_t>(-lo, 0, len);            // zeros before the row
  const int64_t e = std::clamp<int64_t>(in_row - lo, a, len);     // end of the row's floats
  std::fill(dst, dst + a, 0.f);
  ConvertIn(xrow + lo + a, dst + a, e - a);
  std::fill(dst + e, dst + len, 0.f);
}

// The input rows of one output row, or of a pair of consecutive ones (A
// and B): rows [0, both) feed both, then [both, both + only_a) only A and
// the rest only B. wa / wb: offset of the row's first tap in the weights;
// row u's data starts at in_place[u] (the input) or staged[u] (fp32).
template <typename T>
struct RowFlatRowSet {
  int both = 0, only_a = 0, only_b = 0;
  int64_t wa[128], wb[128];
  const T* in_place[128];
  const float* staged[128];
  int count() const { return both + only_a + only_b; }
};

// One tap of one row into B accumulators (see RowFlatBlock for P).
template <int B, int P, class D, typename S>
HWY_INLINE void RowFlatTap(D d, int64_t L, const S* HWY_RESTRICT s, const float* HWY_RESTRICT w, hn::Vec<D>* acc) {
  if constexpr (P > 0) {
    constexpr int NW = P < B ? P : B;
    hn::Vec<D> wv[NW];
    for (int k = 0; k < NW; ++k) wv[k] = InReg(hn::Load(d, w + k * L));
    for (int b = 0; b < B; ++b) acc[b] = hn::MulAdd(LoadF(d, s + b * L), wv[b % P], acc[b]);
  } else {
    for (int b = 0; b < B; ++b) acc[b] = hn::MulAdd(LoadF(d, s + b * L), hn::Load(d, w + b * L), acc[b]);
  }
}

// B output vectors from vector v of row A (and of row B when PAIR): input
// row u's tap (row, column 0) float for the block's first vector is
// src[u] + at. A pair loads each shared input vector once for both rows.
// With P known (> 0) each tap's weights are loaded once per phase and
// pinned in registers (InReg; vector b takes phase entry b % P);
// otherwise once per vector. Zen 4 loads one 64-byte vector per cycle, so the loads per
// FMA bound the kernel: 2 per FMA single (P = 0) down to (2P + B) / 2B
// for a pair.
template <int B, bool PAIR, int P, class D, typename S, typename T, typename R>
HWY_INLINE void RowFlatBlock(D d, const simd::RowFlatPlan& f, int64_t v, const R& rs, const S* const* src,
                             int64_t at, const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias,
                             T* HWY_RESTRICT ya, T* HWY_RESTRICT yb) {
  const int64_t L = f.L, kw = f.g.kw, tap = f.E * L, step = f.g.dw * f.g.c;
  const int64_t ph = v % f.P;
  const float* w0 = wt + ph * L;
  hn::Vec<D> acc_a[B], acc_b[PAIR ? B : 1];
  for (int b = 0; b < B; ++b) {
    acc_a[b] = hn::Load(d, bias + (ph + b) * L);
    if constexpr (PAIR) acc_b[b] = acc_a[b];
  }
  int u = 0;
  if constexpr (PAIR) {
    for (; u < rs.both; ++u) {
      const S* s = src[u] + at;
      const float* w_a = w0 + rs.wa[u];
      const float* w_b = w0 + rs.wb[u];
      for (int64_t j = 0; j < kw; ++j, s += step, w_a += tap, w_b += tap) {
        if constexpr (P > 0) {
          constexpr int NW = P < B ? P : B;
          hn::Vec<D> wv_a[NW], wv_b[NW];
          for (int k = 0; k < NW; ++k) wv_a[k] = InReg(hn::Load(d, w_a + k * L)), wv_b[k] = InReg(hn::Load(d, w_b + k * L));
          for (int b = 0; b < B; ++b) {
            const auto x = LoadF(d, s + b * L);
            acc_a[b] = hn::MulAdd(x, wv_a[b % P], acc_a[b]);
            acc_b[b] = hn::MulAdd(x, wv_b[b % P], acc_b[b]);
          }
        } else {
          for (int b = 0; b < B; ++b) {
            const auto x = LoadF(d, s + b * L);
            acc_a[b] = hn::MulAdd(x, hn::Load(d, w_a + b * L), acc_a[b]);
            acc_b[b] = hn::MulAdd(x, hn::Load(d, w_b + b * L), acc_b[b]);
          }
        }
      }
    }
  }
  for (; u < rs.both + rs.only_a; ++u) {
    const S* s = src[u] + at;
    const float* w = w0 + rs.wa[u];
    for (int64_t j = 0; j < kw; ++j, s += step, w += tap) RowFlatTap<B, P>(d, L, s, w, acc_a);
  }
  if constexpr (PAIR) {
    for (; u < rs.count(); ++u) {
      const S* s = src[u] + at;
      const float* w = w0 + rs.wb[u];
      for (int64_t j = 0; j < kw; ++j, s += step, w += tap) RowFlatTap<B, P>(d, L, s, w, acc_b);
    }
  }
  for (int b = 0; b < B; ++b) {
    const int64_t q = (v + b) * L;
    if (q + L <= f.row) {
      StoreF(d, acc_a[b], ya + q);
      if constexpr (PAIR) StoreF(d, acc_b[b], yb + q);
    } else {
      StoreFN(d, acc_a[b], ya + q, f.row - q);
      if constexpr (PAIR) StoreFN(d, acc_b[b], yb + q, f.row - q);
    }
  }
}

// Output vectors [va, vb) of row A (and B); row u's float for vector v is
// src[u] + v*L + shift.
// Each block also takes a step of the prefetches (pf[0]: input, pf[1]:
// output, for writing).
template <bool PAIR, int P, class D, typename S, typename T, typename R>
HWY_INLINE void RowFlatRange(D d, const simd::RowFlatPlan& f, int64_t va, int64_t vb, const R& rs,
                             const S* const* src, int64_t shift, const float* wt, const float* bias, T* ya, T* yb,
                             simd::PrefetchSpan* pf) {
  // Accumulators (2B for a pair) and P weight vectors per row within the
  // register file: 32 registers take 8 vectors a row (9 at 3 phases), 16
  // take 8 single (6 at 3 phases), 4 in pairs (3 at 3 phases).
#if HWY_TARGET <= HWY_AVX3
  constexpr int kB = P == 3 ? 9 : 8;
#else
  constexpr int kB = PAIR ? (P == 3 ? 3 : 4) : (P == 3 ? 6 : 8);
#endif
  static_assert(kB <= simd::kRowFlatB, "the weight entries cover kRowFlatB + P - 1 phases");
  int64_t v = va;
  for (; v + kB <= vb; v += kB) {
    pf[0].step<0>();
    pf[1].step<1>();
    RowFlatBlock<kB, PAIR, P>(d, f, v, rs, src, v * f.L + shift, wt, bias, ya, yb);
  }
  if constexpr (kB > 4) {
    for (; v + 4 <= vb; v += 4) RowFlatBlock<4, PAIR, P>(d, f, v, rs, src, v * f.L + shift, wt, bias, ya, yb);
  }
  if (v + 2 <= vb) {
    RowFlatBlock<2, PAIR, P>(d, f, v, rs, src, v * f.L + shift, wt, bias, ya, yb);
    v += 2;
  }
  if (v < vb) RowFlatBlock<1, PAIR, P>(d, f, v, rs, src, v * f.L + shift, wt, bias, ya, yb);
}

// Output rows [r0, r1) of the n x out_h rows, two at a time where both
// are in one image.
template <typename T>
void RowFlatRows(const simd::RowFlatPlan& f, const T* HWY_RESTRICT x, const float* HWY_RESTRICT wt,
                 const float* HWY_RESTRICT bias, int64_t r0, int64_t r1, float* HWY_RESTRICT stage,
                 T* HWY_RESTRICT y) {
  const hn::ScalableTag<float> d;
  const simd::NhwcGeom& g = f.g;
  const int64_t tap_row = g.kw * f.E * f.L;
  RowFlatRowSet<T> rs;
  int64_t iys[128], ta[128], tb[128];
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / g.out_h, oy = r % g.out_h;
    const bool pair = r + 1 < r1 && oy + 1 < g.out_h;
    // Input rows of A, then B's: each joins A's entry for the same row
    // (both) or gets its own (only B); A's own rows then go behind the
    // shared ones.
    int cnt = 0;
    for (int k = 0; k < (pair ? 2 : 1); ++k) {
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t iy = (oy + k) * g.sh + i * g.dh - g.pt;
        if (iy < 0 || iy >= g.in_h || iy % g.uh != 0) continue;
        int e = k == 0 ? cnt : 0;
        while (e < cnt && iys[e] != iy) ++e;
        if (e == cnt) iys[cnt] = iy, ta[cnt] = -1, tb[cnt] = -1, ++cnt;
        (k == 0 ? ta : tb)[e] = i;
      }
    }
    rs.both = rs.only_a = rs.only_b = 0;
    auto put = [&](int e, int& counter, int base) {
      const int u = base + counter++;
      rs.in_place[u] = x + (n * g.src_h + iys[e] / g.uh) * f.in_row;
      rs.wa[u] = ta[e] * tap_row, rs.wb[u] = tb[e] * tap_row;
    };
    for (int e = 0; e < cnt; ++e)
      if (ta[e] >= 0 && tb[e] >= 0) put(e, rs.both, 0);
    for (int e = 0; e < cnt; ++e)
      if (ta[e] >= 0 && tb[e] < 0) put(e, rs.only_a, rs.both);
    for (int e = 0; e < cnt; ++e)
      if (ta[e] < 0) put(e, rs.only_b, rs.both + rs.only_a);
    T* ya = y + r * f.row;
    T* yb = pair ? ya + f.row : ya;
    // Prefetch, spread over this group's blocks, what the next group (two
    // rows on) reads first: its output rows, and the input rows past the
    // last one this group reads (contiguous within an image).
    simd::PrefetchSpan pf[2];
    const int64_t steps = f.nv / simd::kRowFlatB + 1;
    const int64_t step_rows = pair ? 2 : 1;
    if (r + step_rows < r1) {
      const int64_t nn = std::min(int64_t(2), r1 - r - step_rows);
      pf[1].set(y + (r + step_rows) * f.row, nn * f.row * int64_t(sizeof(T)), steps);
      if (oy + step_rows + nn - 1 < g.out_h) {
        const int64_t last = (oy + step_rows - 1) * g.sh + (g.kh - 1) * g.dh - g.pt;
        const int64_t next = (oy + step_rows + nn - 1) * g.sh + (g.kh - 1) * g.dh - g.pt;
        const int64_t lo = last < 0 ? 0 : last / g.uh + 1, hi = std::min(g.src_h, next / g.uh + 1);
        if (lo < hi) pf[0].set(x + (n * g.src_h + lo) * f.in_row, (hi - lo) * f.in_row * int64_t(sizeof(T)), steps);
      }
    }
    auto range = [&](int64_t va, int64_t vb, const auto* const* src, int64_t shift) {
      // Weights in registers at 1 and 3 phases (C = 12, 24: 3 on AVX-512
      // and AVX2; C = 8 on AVX-512: 1); other phase counts load them per
      // vector.
      if (pair) {
        if (f.P == 1) return RowFlatRange<true, 1>(d, f, va, vb, rs, src, shift, wt, bias, ya, yb, pf);
        if (f.P == 3) return RowFlatRange<true, 3>(d, f, va, vb, rs, src, shift, wt, bias, ya, yb, pf);
        return RowFlatRange<true, 0>(d, f, va, vb, rs, src, shift, wt, bias, ya, yb, pf);
      }
      if (f.P == 1) return RowFlatRange<false, 1>(d, f, va, vb, rs, src, shift, wt, bias, ya, yb, pf);
      if (f.P == 3) return RowFlatRange<false, 3>(d, f, va, vb, rs, src, shift, wt, bias, ya, yb, pf);
      return RowFlatRange<false, 0>(d, f, va, vb, rs, src, shift, wt, bias, ya, yb, pf);
    };
    auto edge = [&](int64_t va, int64_t vb) {
      if (va >= vb) return;
      const int64_t lo = va * f.L + f.off_min, len = (vb - va) * f.L + f.span;
      for (int u = 0; u < rs.count(); ++u) {
        RowFlatStage(rs.in_place[u], f.in_row, lo, len, stage + u * f.stage);
        rs.staged[u] = stage + u * f.stage;
      }
      range(va, vb, rs.staged, -va * f.L);
    };
    edge(0, f.v_lo);
    if (f.v_lo < f.v_hi) range(f.v_lo, f.v_hi, rs.in_place, f.off_min);
    edge(f.v_hi, f.nv);
    r += pair ? 2 : 1;
  }
}

template <typename T>
void RowFlatTyped(const Params& p, const simd::NhwcGeom& g, int threads, bool grad_input, unsigned char* shared,
                  const simd::Slices& ws) {
  const hn::ScalableTag<float> d;
  const simd::RowFlatPlan f = simd::plan_rowflat(g, int64_t(hn::Lanes(d)));
  if (2 * g.kh * f.stage > simd::rowflat_thread_floats(g) || ws.per < size_t(simd::rowflat_thread_floats(g)) * 4)
    throw BackendError("dwconv: row-flat workspace sized for fewer staged floats than " + std::to_string(2 * g.kh * f.stage) +
                       " at " + std::to_string(hn::Lanes(d)) + " lanes");
  float* wt = reinterpret_cast<float*>(shared);
  float* bias = wt + simd::align_up(size_t(f.E * g.kh * g.kw * f.L) * 4) / 4;
  const T* x = static_cast<const T*>(grad_input ? p.grad_output : p.input);
  T* y = static_cast<T*>(grad_input ? p.grad_input : p.output);
  RowFlatArrange(f, static_cast<const T*>(p.weight), grad_input ? nullptr : static_cast<const T*>(p.bias), grad_input,
                 wt, bias);
  const int64_t rows = p.shape.n * g.out_h;
  const int nt = int(std::min<int64_t>(threads, rows));
  parallel_region(nt, [&] {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    RowFlatRows(f, x, wt, bias, rows * t / tn, rows * (t + 1) / tn, reinterpret_cast<float*>(ws.get(t)), y);
  });
}

void RowFlat(const Params& p, const simd::NhwcGeom& g, int threads, bool grad_input, unsigned char* shared,
             const simd::Slices& ws) {
  if (p.dtype == DType::f32) {
    RowFlatTyped<float>(p, g, threads, grad_input, shared, ws);
  } else {
    RowFlatTyped<hbf16>(p, g, threads, grad_input, shared, ws);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(RowFlat);

namespace {
simd::NhwcGeom geometry(const Params& p, bool grad_input) {
  simd::NhwcGeom g = grad_input ? simd::nhwc_grad_input(p.shape) : simd::nhwc_forward(p.shape);
  g.f32 = p.dtype == DType::f32;
  return g;
}
bool accepts(const Params& p, bool grad_input) {
  return p.layout == Layout::nhwc && p.shape.multiplier == 1 && simd::simd_dtype(p.dtype) &&
         simd::simd_geometry(p.shape) && p.shape.kh <= 64 && simd::rowflat_fits(geometry(p, grad_input));
}
// Ahead of the NHWC core (10) where it measured faster against it (Zen 4,
// AVX-512, batch 1, 2 threads, 2 interleaved runs, forward / grad-input,
// 56x56 k3, 28x28 1x11, 14x14 11x1 and 7x7 k3): C not a multiple of 16
// below 32 (C = 3: 1.2-3.7x; 12: 1.14-2.0x; 24: 0.90-2.25x) and kx1
// kernels up to 96 channels (1.13-2.25x: the core's register window runs
// along W, where a kx1 kernel has one tap). Elsewhere it lost (C = 48-96
// on 56x56 k3 0.68-0.89x, 1x11 0.52-0.94x) and only scores above the
// generic kernels.
int score(const Params& p, bool grad_input) {
  if (!accepts(p, grad_input)) return -1;
  const Shape& s = p.shape;
  const bool few = s.c % 16 != 0 && s.c < 32;
  const bool tall = s.kw == 1 && s.kh > 1 && s.c <= 96;
  return few || tall ? 11 : 5;
}
int score_fwd(const Params& p) { return score(p, false); }
int score_dgrad(const Params& p) { return score(p, true); }
size_t workspace(const Params& p, bool grad_input) { return simd::rowflat_workspace(p, geometry(p, grad_input)); }
size_t workspace_fwd(const Params& p) { return workspace(p, false); }
size_t workspace_dgrad(const Params& p) { return workspace(p, true); }
void run(const Params& p, bool grad_input) {
  const simd::NhwcGeom g = geometry(p, grad_input);
  const simd::SharedSlices c =
      simd::shared_slices(p, simd::rowflat_shared_bytes(g), size_t(simd::rowflat_thread_floats(g)) * 4);
  DWCONV_HWY_CALL(RowFlat)(p, g, c.ws.threads, grad_input, c.shared, c.ws);
}
void run_fwd(const Params& p) { run(p, false); }
void run_dgrad(const Params& p) { run(p, true); }
}  // namespace

std::vector<Kernel> simd_nhwc_rowflat_kernels() {
  return {{"cpu_fwd_nhwc_rowflat", Device::cpu, Direction::forward, score_fwd, run_fwd, workspace_fwd},
          {"cpu_dgrad_nhwc_rowflat", Device::cpu, Direction::grad_input, score_dgrad, run_dgrad, workspace_dgrad}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
