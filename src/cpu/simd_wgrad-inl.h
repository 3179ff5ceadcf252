// Per-target compute of the NHWC grad-weight engines (cpu_wgrad_nhwc_vec,
// cpu_wgrad_nchw_blocked in simd_wgrad_nhwc.cpp; cpu_wgrad_nhwc_plane in
// simd_wgrad_nhwc_plane.cpp): the copy of a source row's pixels into a
// channel vector's scratch plane (WgCopyPixels), and the register-blocked
// sums of one channel vector over the rows of a run (WgRun), which both
// engines fill.
#if defined(DWCONV_CPU_WGRAD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DWCONV_CPU_WGRAD_INL_H_
#undef DWCONV_CPU_WGRAD_INL_H_
#else
#define DWCONV_CPU_WGRAD_INL_H_
#endif

#include <utility>

#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "cpu/simd_transpose-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Pixels per register block. One tap row (NI = 1) goes pixel by pixel:
// its registers do not depend on R. Several tap rows go x vector by x
// vector (WgBlock): dy vector p is loaded where x vector p*SW is and dies
// after the taps of pixel p, so about JN/SW dy vectors are live next to the
// NI*JN accumulators and one x vector; R is capped where that would pass 15
// of the 16 vector registers (AVX2, SSE4: at 16 GCC spilled accumulators).
// 7 divides the usual widths 7 .. 112; one row of 8 taps: 88% of peak with
// R = 6, 75% with 7 (microbenchmark). 2 x 5 accumulators spill some at any
// R; R = 2 spills least (k5: 4% faster than R = 4, 6% faster than one tap
// row of 5 chains).
constexpr int WgR(int ni, int jn, int sw) {
  return ni == 1 ? (jn == 8 ? 6 : 7) : ni * jn >= 10 ? 2 : ni * jn + (jn + sw - 1) / sw + 1 <= 15 ? 7 : 14 - ni * jn;
}

// Where a source row's pixels and channels are: pixel x, channel c of the
// block at row + x * px + c * ch (NHWC: px = C, ch = 1; NCHW: px = 1, ch =
// the plane); end: the end of the tensor.
template <typename T>
struct WgSrc {
  int64_t px, ch;
  const T* end;
};

// Pixels [0, n) of a source row (channels [0, nc)) into scratch columns
// [0, n): channel vector v of pixel x at o + v * vplane + x * L. NHWC: two
// pixels per step (measured 2.2 vs 3.4 cycles per vector at C384 on L2
// data: one pixel per step left the load and store ports idle on the loop
// overhead). NCHW: L pixels of L planes transposed at a time.
template <typename T>
HWY_INLINE void WgCopyPixels(const T* HWY_RESTRICT sp, const WgSrc<T>& src, int64_t nc, int64_t n,
                             float* HWY_RESTRICT o, int64_t vplane) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t nv = simd::ceil_div(nc, L), full = nc / L;
  if (src.ch != 1) {
    for (int64_t v = 0; v < nv; ++v) {
      const T* planes[hn::MaxLanes(d)];
      for (int64_t l = 0; l < L; ++l) planes[l] = v * L + l < nc ? sp + (v * L + l) * src.ch : nullptr;
      PlanesToVectors(planes, 0, n, src.end, o + v * vplane);
    }
    return;
  }
  const int64_t C = src.px;
  int64_t x = 0;
  for (; x + 2 <= n; x += 2) {
    const T* HWY_RESTRICT s0 = sp + x * C;
    float* HWY_RESTRICT o0 = o + x * L;
    for (int64_t v = 0; v < full; ++v) {
      const auto a = LoadF(d, s0 + v * L), b = LoadF(d, s0 + C + v * L);
      hn::Store(a, d, o0 + v * vplane);
      hn::Store(b, d, o0 + v * vplane + L);
    }
  }
  for (; x < n; ++x)
    for (int64_t v = 0; v < full; ++v) hn::Store(LoadF(d, sp + x * C + v * L), d, o + v * vplane + x * L);
  if (full < nv) {
    for (x = 0; x < n; ++x) {
      HWY_ALIGN float tmp[hn::MaxLanes(d)] = {};
      ConvertIn(sp + x * C + full * L, tmp, nc - full * L);
      hn::Store(hn::Load(d, tmp), d, o + full * vplane + x * L);
    }
  }
}
HWY_INLINE void WgZeroPixels(int64_t nv, int64_t n, float* HWY_RESTRICT o, int64_t vplane) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  for (int64_t v = 0; v < nv; ++v)
    for (int64_t x = 0; x < n; ++x) hn::Store(hn::Zero(d), d, o + v * vplane + x * L);
}

// Lines fetched into L2 while the rows of a run compute, a share per row:
// n lines, `step` bytes apart. (Into L1 they evicted the plane being read:
// 0.74x of L2 over 9 small-image shapes, 2 threads.)
struct WgPrefetch {
  const char* base = nullptr;
  int64_t n = 0, step = 0;
  int64_t r0 = 0, rows = 1;  // the run's rows are rows [r0, r0 + nr) of `rows` the lines are spread over
};

// The rows of one run for one channel vector, as the compute sees them.
struct WgRun {
  const float* dy;      // dy plane: output row r at dy + r * dpitch
  const float* x;       // x plane, offset to the chunk's first tap column
  const int64_t* xoff;  // [r * kh + i]: offset of tap row i of output row r in x
  const int64_t* ilo;   // [r]: tap rows [ilo, ihi) of row r are inside the image
  const int64_t* ihi;
  int64_t nr, kh, dpitch, bw;
  int64_t dstep;     // dy: pixel p of a row at p * dstep (L in a scratch plane, C read in place, unaligned)
  int64_t csw, cdw;  // runtime column steps (generic form)
  float* fa;         // fp32 accumulator of tap (i0, j0), channel vector v
  int64_t fa_i, fa_j;
  WgPrefetch pf[2];  // the plane engine: the next channel vector's x and dy pixels
};
HWY_INLINE void WgPrefetchRow(const WgRun& a, int64_t r) {
  for (const WgPrefetch& f : a.pf) {
    if (f.base == nullptr) continue;
    const int64_t hi = (f.r0 + r + 1) * f.n / f.rows;
    for (int64_t e = (f.r0 + r) * f.n / f.rows; e < hi; ++e) __builtin_prefetch(f.base + e * f.step, 0, 2);
  }
}

// x vector X of a register block (offset X from the block's first slot
// column, tap row II of the group) feeds tap J of pixel (X - J) / SW where
// that is a pixel of the block. Indices are template arguments so that
// the accumulators stay in registers (GCC spilled arrays of vectors that
// were indexed by unrolled loop counters).
template <int JN, int R, int SW, int II, int X, int J>
HWY_INLINE void WgTap(VF xv, const VF* dv, VF* acc) {
  if constexpr (X >= J && (X - J) % SW == 0 && (X - J) / SW < R)
    acc[II * JN + J] = hn::MulAdd(dv[(X - J) / SW], xv, acc[II * JN + J]);
}
template <int JN, int R, int SW, int II, int X, int... J>
HWY_INLINE void WgX(const float* HWY_RESTRICT xr, const VF* dv, VF* acc, std::integer_sequence<int, J...>) {
  const DF d;
  const VF xv = hn::Load(d, xr + X * int64_t(hn::Lanes(d)));
  (WgTap<JN, R, SW, II, X, J>(xv, dv, acc), ...);
}
// Column X of a block for every tap row of the group; dy of pixel X / SW
// is loaded at its first use.
template <int NI, int JN, int R, int SW, int X, int... II>
HWY_INLINE void WgColumn(const float* HWY_RESTRICT dyp, int64_t ds, const float* const* xr, int64_t xo, VF* dv,
                         VF* acc, std::integer_sequence<int, II...>) {
  if constexpr (X % SW == 0 && X / SW < R) dv[X / SW] = hn::LoadU(DF(), dyp + (X / SW) * ds);
  (WgX<JN, R, SW, II, X>(xr[II] + xo, dv, acc, std::make_integer_sequence<int, JN>()), ...);
}
// R pixels of one output row: R dy loads and (R-1)*SW + JN x loads per
// tap row for R*NI*JN FMAs.
template <int NI, int JN, int R, int SW, int... X>
HWY_INLINE void WgBlock(const float* HWY_RESTRICT dyp, int64_t ds, const float* const* xr, int64_t xo, VF* acc,
                        std::integer_sequence<int, X...>) {
  VF dv[R];
  (WgColumn<NI, JN, R, SW, X>(dyp, ds, xr, xo, dv, acc, std::make_integer_sequence<int, NI>()), ...);
}

// A pointer the compiler cannot see through: a load from it is not merged
// with an earlier load of the same address.
HWY_INLINE const float* WgOpaque(const float* p) {
#if defined(__GNUC__) || defined(__clang__)
  asm("" : "+r"(p));
#endif
  return p;
}
// One tap row, pixel by pixel: pixel P's dy vector feeds its JN taps, each
// on another accumulator, so consecutive FMAs are independent and the
// chains advance together. (The x-major order of WgBlock runs each
// accumulator's R FMAs back to back: 63% of peak at JN = 7 vs 80% here,
// L1-resident microbenchmark.) x vectors stay in a register window from
// their first use to their last; at JN = 8 the window plus 8 accumulators
// would take 17 registers, so the two oldest taps load x from memory
// instead (86% of peak).
template <int JN, int SW, int MEM, int P, int J>
HWY_INLINE void WgPixelTap(VF dv, VF* xw, VF* acc, const float* HWY_RESTRICT xr) {
  const DF d;
  constexpr int X = P * SW + J;
  if constexpr (J < MEM) {
    acc[J] = hn::MulAdd(dv, hn::Load(d, WgOpaque(xr) + X * int64_t(hn::Lanes(d))), acc[J]);
  } else {
    if constexpr (P == 0 || J + SW >= JN) xw[X] = hn::Load(d, xr + X * int64_t(hn::Lanes(d)));
    acc[J] = hn::MulAdd(dv, xw[X], acc[J]);
  }
}
template <int JN, int SW, int MEM, int P, int... J>
HWY_INLINE void WgPixel(const float* HWY_RESTRICT dyp, int64_t ds, const float* HWY_RESTRICT xr, VF* xw, VF* acc,
                        std::integer_sequence<int, J...>) {
  const DF d;
  const VF dv = hn::LoadU(d, dyp + P * ds);
  (WgPixelTap<JN, SW, MEM, P, J>(dv, xw, acc, xr), ...);
}
template <int JN, int R, int SW, int... P>
HWY_INLINE void WgPixels(const float* HWY_RESTRICT dyp, int64_t ds, const float* HWY_RESTRICT xr, VF* acc,
                         std::integer_sequence<int, P...>) {
  constexpr int MEM = 2 * JN + 1 > 15 ? 2 * JN + 1 - 15 : 0;
  VF xw[(R - 1) * SW + JN];
  (WgPixel<JN, SW, MEM, P>(dyp, ds, xr, xw, acc, std::make_integer_sequence<int, JN>()), ...);
}

template <class F, int... K>
HWY_INLINE void WgFor(F f, std::integer_sequence<int, K...>) {
  (f(std::integral_constant<int, K>()), ...);
}

// Tap rows [i0, i0 + NI) x tap columns [j0, j0 + JN) of one channel vector
// over every row of the run, stride SW and dilation 1 along W in the
// scratch. Rows where the whole group is in the zero padding are skipped.
template <int NI, int JN, int SW>
void WgGroup(const WgRun& a, int64_t i0) {
  constexpr int R = WgR(NI, JN, SW);
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  VF acc[NI * JN];
  WgFor([&](auto k) { acc[k] = hn::Load(d, a.fa + (k / JN) * a.fa_i + (k % JN) * a.fa_j); },
        std::make_integer_sequence<int, NI * JN>());
  const int64_t nblk = a.bw / R, ds = a.dstep;
  for (int64_t r = 0; r < a.nr; ++r) {
    WgPrefetchRow(a, r);
    if (a.ihi[r] <= i0 || a.ilo[r] >= i0 + NI) continue;
    const float* xr[NI];
    for (int ii = 0; ii < NI; ++ii) xr[ii] = a.x + a.xoff[r * a.kh + i0 + ii];
    const float* HWY_RESTRICT dyr = a.dy + r * a.dpitch;
    if constexpr (NI == 1) {
      for (int64_t b = 0; b < nblk; ++b)
        WgPixels<JN, R, SW>(dyr + b * R * ds, ds, xr[0] + b * R * SW * L, acc, std::make_integer_sequence<int, R>());
      for (int64_t p = nblk * R; p < a.bw; ++p)
        WgPixels<JN, 1, SW>(dyr + p * ds, ds, xr[0] + p * SW * L, acc, std::make_integer_sequence<int, 1>());
    } else {
      for (int64_t b = 0; b < nblk; ++b)
        WgBlock<NI, JN, R, SW>(dyr + b * R * ds, ds, xr, b * R * SW * L, acc,
                               std::make_integer_sequence<int, (R - 1) * SW + JN>());
      for (int64_t p = nblk * R; p < a.bw; ++p)
        WgBlock<NI, JN, 1, SW>(dyr + p * ds, ds, xr, p * SW * L, acc, std::make_integer_sequence<int, JN>());
    }
  }
  WgFor([&](auto k) { hn::Store(acc[k], d, a.fa + (k / JN) * a.fa_i + (k % JN) * a.fa_j); },
        std::make_integer_sequence<int, NI * JN>());
}

// Any column step and dilation in the scratch (stride > 2, dilation,
// im2col slots of kw > 2): one tap row, x as memory operands.
template <int JN>
void WgGroupAny(const WgRun& a, int64_t i0) {
  constexpr int R = 4;
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  VF acc[JN];
  WgFor([&](auto k) { acc[k] = hn::Load(d, a.fa + k * a.fa_j); }, std::make_integer_sequence<int, JN>());
  const int64_t ps = a.csw * L, ts = a.cdw * L, nblk = a.bw / R, ds = a.dstep;
  for (int64_t r = 0; r < a.nr; ++r) {
    WgPrefetchRow(a, r);
    if (a.ihi[r] <= i0 || a.ilo[r] > i0) continue;
    const float* HWY_RESTRICT xr = a.x + a.xoff[r * a.kh + i0];
    const float* HWY_RESTRICT dyr = a.dy + r * a.dpitch;
    int64_t p = 0;
    for (int64_t b = 0; b < nblk; ++b, p += R) {
      VF dv[R];
      WgFor([&](auto q) { dv[q] = hn::LoadU(d, dyr + (p + q) * ds); }, std::make_integer_sequence<int, R>());
      WgFor(
          [&](auto k) {
            WgFor([&](auto q) { acc[k] = hn::MulAdd(dv[q], hn::Load(d, xr + (p + q) * ps + k * ts), acc[k]); },
                  std::make_integer_sequence<int, R>());
          },
          std::make_integer_sequence<int, JN>());
    }
    for (; p < a.bw; ++p) {
      const VF dv = hn::LoadU(d, dyr + p * ds);
      WgFor([&](auto k) { acc[k] = hn::MulAdd(dv, hn::Load(d, xr + p * ps + k * ts), acc[k]); },
            std::make_integer_sequence<int, JN>());
    }
  }
  WgFor([&](auto k) { hn::Store(acc[k], d, a.fa + k * a.fa_j); }, std::make_integer_sequence<int, JN>());
}

using WgFn = void (*)(const WgRun&, int64_t);

// Group of ni tap rows x jn taps: the register form where the scratch has
// dilation 1 and stride 1 or 2 along W, else the generic form (one row).
template <int JN, int SW, int... NI>
WgFn WgPickNi(int64_t ni, std::integer_sequence<int, NI...>) {
  WgFn f = nullptr;
  ((ni == NI + 1 ? void(f = &WgGroup<NI + 1, JN, SW>) : void()), ...);
  return f;
}
template <int SW, int... JN>
WgFn WgPickJn(int64_t ni, int64_t jn, std::integer_sequence<int, JN...>) {
  WgFn f = nullptr;
  ((jn == JN + 1
        ? void(f = WgPickNi<JN + 1, SW>(ni, std::make_integer_sequence<int, int(simd::wgrad_nhwc_ni(JN + 1))>()))
        : void()),
   ...);
  return f;
}
template <int... JN>
WgFn WgPickAny(int64_t jn, std::integer_sequence<int, JN...>) {
  WgFn f = nullptr;
  ((jn == JN + 1 ? void(f = &WgGroupAny<JN + 1>) : void()), ...);
  return f;
}
// Several tap rows per group only for kw <= 5 (one chunk, jn == kw); wider
// kernels go one tap row at a time in chunks of at most 8 taps.
inline WgFn WgPick(int64_t ni, int64_t jn, int64_t csw, int64_t cdw) {
  if (cdw == 1 && csw == 1) return WgPickJn<1>(ni, jn, std::make_integer_sequence<int, 8>());
  if (cdw == 1 && csw == 2) return WgPickJn<2>(ni, jn, std::make_integer_sequence<int, 8>());
  return ni == 1 ? WgPickAny(jn, std::make_integer_sequence<int, 8>()) : nullptr;
}
// Tap columns go in nj balanced chunks [q*kw/nj, (q+1)*kw/nj) of jmin =
// kw / nj or jmin + 1 taps (at most 8): fns[taps - jmin][rows in group - 1].
struct WgFns {
  int64_t jmin = 1;
  WgFn fns[2][8] = {};
  WgFns(int64_t ni, int64_t kw, int64_t nj, int64_t csw, int64_t cdw) : jmin(kw / nj) {
    for (int64_t e = 0; e < 2; ++e)
      for (int64_t g = 1; g <= ni; ++g) fns[e][g - 1] = jmin + e <= 8 ? WgPick(g, jmin + e, csw, cdw) : nullptr;
  }
  WgFn get(int64_t taps, int64_t rows) const { return fns[taps - jmin][rows - 1]; }
};

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DWCONV_CPU_WGRAD_INL_H_
