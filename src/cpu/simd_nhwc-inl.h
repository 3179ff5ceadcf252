// Per-target NHWC direct convolution (multiplier 1), vectorised along C.
// Each task walks its output rows keeping one window of input rows in a
// rolling per-thread scratch (fp32, zero padded, channel-vector blocked), so
// each input row is copied once and the compute needs no bounds checks; at
// stride 1 a register window of the taps' weights feeds R pixels from
// R + KW - 1 input loads. In-place mode (fp32 NHWC, small kernels at
// stride 1 or 2: NhwcPlan::in_place) skips the copy and reads the input in place,
// pixels C floats apart, bounds checking only the padding columns; bf16
// reads in place in channel pairs (pair mode, NhwcLoadPair). Rows of at
// most 16 output columns (7x7, 14x14 images) take edge-clipped register
// tiles instead, fp32 or bf16 pairs, which skip the padding taps
// (NhwcRowClipped; kernels wider than 7 on images at most 7 wide:
// NhwcRowStationary). Used by simd_fwd_nhwc.cpp and simd_dgrad_nhwc.cpp
// (grad-input at stride 1 = forward over dy with the flipped kernel).
#if defined(DWCONV_CPU_NHWC_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DWCONV_CPU_NHWC_INL_H_
#undef DWCONV_CPU_NHWC_INL_H_
#else
#define DWCONV_CPU_NHWC_INL_H_
#endif

#include <numeric>
#include <type_traits>
#include <utility>

#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "cpu/simd_transpose-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One input row of a task into its scratch slot, channel-vector blocked:
// slot[v * vplane + x * L + l] = input (iy, ix0 + x, c0 + v*L + l), zero
// outside the input and beyond nc. Blocked rather than [x][c] because the
// compute walks one channel vector at a time: its window of kh rows is then
// kh*wp*L contiguous-per-row floats that stay in L1, where an [x][c] window
// of all channels spills to L2 (measured 2x slower at C96 k7).
// Columns [lo, hi) of a window row of wp pixels from input column ix0 that
// lie inside the input; the rest are zero padding.
struct NhwcInside {
  int64_t lo, hi;
  NhwcInside(int64_t ix0, int64_t wp, int64_t in_w)
      : lo(std::min(wp, std::max<int64_t>(0, -ix0))), hi(std::max(lo, std::min(wp, in_w - ix0))) {}
};
// Zeroes the padding columns of one window row in nv channel-vector planes.
// Vector stores, not std::fill: the runs are a few vectors, and a memset
// call per run cost 12 % at stride 2 (24 calls per row at C96).
HWY_INLINE void NhwcZeroPadCols(float* HWY_RESTRICT slot, int64_t nv, int64_t vplane, const NhwcInside& in,
                                int64_t wp) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const auto zero = hn::Zero(d);
  for (int64_t v = 0; v < nv; ++v) {
    for (int64_t x = 0; x < in.lo; ++x) hn::Store(zero, d, slot + v * vplane + x * L);
    for (int64_t x = in.hi; x < wp; ++x) hn::Store(zero, d, slot + v * vplane + x * L);
  }
}

// Where the L lanes of the channel vector at output channel oc read in NCHW:
// the same position p0 in input plane oc / m (null past the nc channels).
template <typename T>
HWY_INLINE void NchwLanePlanes(const simd::NhwcGeom& g, const T* p0, int64_t plane, int64_t oc, int64_t nc,
                               const T** src) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  for (int64_t l = 0; l < L; ++l)
    src[l] = l >= nc ? nullptr : p0 + (g.m == 1 ? oc + l : (oc + l) / g.m) * plane;  // no division at m = 1
}

// The NCHW form of NhwcCopyRow's inside columns (xn: the image's first
// plane): lane l of channel vector v is output channel c0 + v*L + l, read
// from input plane (c0 + v*L + l) / m; L pixels of L planes are loaded as
// L vectors and transposed into L pixels' channel vectors.
template <typename T>
HWY_INLINE void NhwcCopyRowNchw(const simd::NhwcGeom& g, const T* HWY_RESTRICT xn, const T* xend, int64_t iy,
                                int64_t ix0, int64_t c0, int64_t nc, int64_t vplane, const NhwcInside& in,
                                float* HWY_RESTRICT slot) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t plane = g.src_h * g.src_w;
  const T* HWY_RESTRICT row = xn + (iy / g.uh) * g.src_w;
  const int64_t nv = simd::ceil_div(nc, L);
  for (int64_t v = 0; v < nv; ++v) {
    float* HWY_RESTRICT dv = slot + v * vplane;
    const T* src[hn::MaxLanes(d)];
    NchwLanePlanes(g, row, plane, c0 + v * L, nc - v * L, src);
    hn::Vec<decltype(d)> t[hn::MaxLanes(d)];
    if (g.uw > 1) {  // upsampled (grad-input at stride > 1): zeros, then every uw-th column
      for (int64_t x = in.lo; x < in.hi; ++x)
        if ((ix0 + x) % g.uw != 0) hn::Store(hn::Zero(d), d, dv + x * L);
      // Source columns [s_lo, s_hi) land at x = s * uw - ix0.
      const int64_t s_lo = simd::ceil_div(ix0 + in.lo, g.uw), s_hi = simd::ceil_div(ix0 + in.hi, g.uw);
      int64_t sx = s_lo;
      for (; sx < s_hi; sx += L) {
        const int64_t n = std::min(L, s_hi - sx);
        for (int64_t l = 0; l < L; ++l)
          t[l] = !src[l] ? hn::Zero(d) : n == L ? LoadF(d, src[l] + sx) : LoadTail(d, src[l] + sx, n, xend);
        Transpose(d, t);
        for (int64_t i = 0; i < n; ++i) hn::Store(t[i], d, dv + ((sx + i) * g.uw - ix0) * L);
      }
      continue;
    }
    PlanesToVectors(src, ix0 + in.lo, in.hi - in.lo, xend, dv + in.lo * L);
  }
}

// Whole-image mode, NCHW, input rows [iy_lo, iy_hi) whole (the window's
// inside columns are the full input width, no upsampling): a channel's
// rows are then one contiguous run in its plane, transposed L pixels at a
// time across row ends (a 7-pixel row alone would have no full vector).
// Row iy goes to scratch row iy - base, input column ix to ix - ix0.
template <typename T>
void NhwcCopyRowsNchw(const simd::NhwcGeom& g, const T* HWY_RESTRICT xn, const T* xend, int64_t iy_lo, int64_t iy_hi,
                      int64_t base, int64_t ix0, int64_t wp, int64_t c0, int64_t nc, int64_t vplane,
                      float* HWY_RESTRICT scratch) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t W = g.in_w, plane = g.src_h * g.src_w, total = (iy_hi - iy_lo) * W;
  const int64_t nv = simd::ceil_div(nc, L);
  float* HWY_RESTRICT first = scratch + ((iy_lo - base) * wp - ix0) * L;  // input (iy_lo, 0)
  hn::Vec<decltype(d)> t[hn::MaxLanes(d)];
  for (int64_t v = 0; v < nv; ++v) {
    float* HWY_RESTRICT dv = first + v * vplane;
    const T* src[hn::MaxLanes(d)];
    NchwLanePlanes(g, xn + iy_lo * W, plane, c0 + v * L, nc - v * L, src);
    int64_t q = 0, r = 0, col = 0;  // flat index in the run, its row and column
    for (; q + L <= total; q += L) {
      for (int64_t l = 0; l < L; ++l) t[l] = src[l] ? LoadF(d, src[l] + q) : hn::Zero(d);
      Transpose(d, t);
      for (int64_t i = 0; i < L; ++i) {
        hn::Store(t[i], d, dv + (r * wp + col) * L);
        if (++col == W) col = 0, ++r;
      }
    }
    if (q < total) {
      const int64_t rest = total - q;
      for (int64_t l = 0; l < L; ++l) t[l] = src[l] ? LoadTail(d, src[l] + q, rest, xend) : hn::Zero(d);
      Transpose(d, t);
      for (int64_t i = 0; i < rest; ++i) {
        hn::Store(t[i], d, dv + (r * wp + col) * L);
        if (++col == W) col = 0, ++r;
      }
    }
  }
}

template <typename T>
void NhwcCopyRow(const simd::NhwcPlan& pl, const T* HWY_RESTRICT xn, const T* xend, int64_t iy, int64_t ix0, int64_t wp,
                 int64_t c0, int64_t nc, int64_t vplane, float* HWY_RESTRICT slot, bool pad_cols_zero = false) {
  const hn::ScalableTag<float> df;
  const int64_t L = int64_t(hn::Lanes(df));
  const simd::NhwcGeom& g = pl.g;
  const int64_t nv = simd::ceil_div(nc, L), full = nc / L;
  // A row outside the input (or between upsampled rows) is never read: the
  // compute skips tap rows that land there (NhwcRows), so it is not zeroed
  // either (on 7x7 images with a 7x7 kernel, 6 of the 13 window rows; the
  // zeroing took 11 % of the time).
  if (iy < 0 || iy >= g.in_h || iy % g.uh != 0) return;
  const NhwcInside inside(ix0, wp, g.in_w);
  const int64_t x_lo = inside.lo, x_hi = inside.hi;
  const auto zero = hn::Zero(df);
  if (!pad_cols_zero) NhwcZeroPadCols(slot, nv, vplane, inside, wp);
  if (x_lo == x_hi) return;
  if (g.nchw) return NhwcCopyRowNchw(g, xn, xend, iy, ix0, c0, nc, vplane, inside, slot);
  const T* HWY_RESTRICT srow = xn + (iy / g.uh) * g.src_w * g.cin + (g.m == 1 ? c0 : 0);
  float* HWY_RESTRICT d = slot + x_lo * L;
  for (int64_t x = x_lo; x < x_hi; ++x, d += L) {
    const int64_t ix = ix0 + x;
    if (g.uw > 1 && ix % g.uw != 0) {  // between upsampled samples
      for (int64_t v = 0; v < nv; ++v) hn::Store(zero, df, d + v * vplane);
      continue;
    }
    const T* HWY_RESTRICT sp = srow + (g.uw > 1 ? ix / g.uw : ix) * g.cin;  // no division per pixel at uw = 1
    if (g.m > 1) {  // channel multiplier: each input channel repeated m times
      int64_t ci = c0 / g.m, rep = c0 % g.m;  // counters, not a division per element
      float val = ToF(sp[ci]);
      for (int64_t oc = 0; oc < nc; ++oc) {
        d[(oc / L) * vplane + oc % L] = val;
        if (++rep == g.m && oc + 1 < nc) rep = 0, val = ToF(sp[++ci]);
      }
      for (int64_t oc = nc; oc < nv * L; ++oc) d[(oc / L) * vplane + oc % L] = 0.0f;
      continue;
    }
    for (int64_t v = 0; v < full; ++v) hn::Store(LoadF(df, sp + v * L), df, d + v * vplane);
    if (full < nv) {
      HWY_ALIGN float tmp[hn::MaxLanes(df)] = {};
      ConvertIn(sp + full * L, tmp, nc - full * L);
      hn::Store(hn::Load(df, tmp), df, d + full * vplane);
    }
  }
}

// Where tap row i of the current output row sits in a channel vector's
// scratch plane: slot (rel0 + i*dh) mod slots, rel0 < slots. Tap rows
// outside [i_lo, i_hi) read only zero padding and are skipped (a quarter of
// the work of a 7x7 kernel on a 7x7 image).
// Upsampled input (grad-input at stride > 1): only every i_step-th tap row
// from i_lo reads a source row; the others read zeros and are skipped too.
// In-place mode reads the NHWC input itself: tap row i is input row
// rel0 + i*dh, rows row_floats = in_w * C apart, pixels C apart.
struct NhwcRows {
  int64_t rel0, slots, row_floats;  // row_floats = wp * L
  int64_t i_lo, i_hi, i_step;
  int64_t ostride;  // output pixel pitch: C (NHWC), or the NCHW stage's
  int64_t pix = 0;  // in-place mode: pixel pitch of the input (C)
  bool stream = false;  // NhwcPlan::stream: full vectors of the output in streaming stores
  template <bool IN_PLACE>
  HWY_INLINE int64_t offset(int64_t i, int64_t dh) const {
    int64_t s = rel0 + i * dh;
    if (!IN_PLACE && s >= slots) s -= slots;
    return s * row_floats;
  }
};
// Pixel pitch of what the compute reads: the scratch's L, or the input's C.
template <bool IN_PLACE>
HWY_INLINE int64_t NhwcPix(const NhwcRows& rows) {
  return IN_PLACE ? rows.pix : int64_t(hn::Lanes(hn::ScalableTag<float>()));
}
// Scratch rows are vector aligned; the input is not.
template <bool IN_PLACE>
HWY_INLINE hn::Vec<hn::ScalableTag<float>> NhwcLoad(const float* HWY_RESTRICT p) {
  const hn::ScalableTag<float> d;
  return IN_PLACE ? hn::LoadU(d, p) : hn::Load(d, p);
}
// A loaded input pinned in a register (an empty asm the compiler cannot
// see through): GCC folds a register window's input loads into the FMAs
// as memory operands, one load per use (k7, R 10: 56 loads per 70 FMAs
// where the window needs 32). Pinned in the windows of generic width
// (NhwcPixelsWindow's KW = 0: the copy's kw other than 3, 5 and 7, in
// place kw other than 3 and 5): Zen 4, AVX-512, 2 threads, batch 1, 3
// interleaved runs (minima): 384 x 64x64 k9-k31 1.04-1.09x, RepLKNet /
// SLaK 1.00-1.06x; AVX2 0.99-1.02x. Pinned in the copy's kw 5 and 7
// windows as well it was 0.80-0.89x / 0.95-1.01x (the load ports were not
// what bound those), so they are not.
HWY_INLINE hn::Vec<hn::ScalableTag<float>> NhwcInReg(hn::Vec<hn::ScalableTag<float>> v) { return InReg(v); }

// What a row of the NHWC core prefetches, one step per pixel group (see
// NhwcPrefetchRuns): the next output row, for writing (its stores missed
// to DRAM one after another inside the compute: mnv2 32x112 k3 N8, 1
// thread, 1.5 ms with the data in L3, 2.5 ms cold, 1.9 ms with this), and
// the input rows the next output row copies (at stride 1) or reads in
// place (at any stride, pixel by pixel for a block of fewer than all
// channels). Measured and not
// kept: into L1 (10-15 % slower at stride 2, two rows of up to 86 KB evicted
// the window), two or three rows ahead (no gain).
// Lines of `runs` runs of `bytes`, `stride` apart (one run when they
// touch), a share per step; WRITE: for writing.
template <int WRITE>
struct NhwcPrefetchRuns {
  const char* p = nullptr;
  const char* end = nullptr;
  int64_t left = 0, bytes = 0, stride = 0, per_step = 0;  // left: runs after the current one
  HWY_INLINE void set(const void* first, int64_t runs, int64_t run_bytes, int64_t run_stride, int64_t steps) {
    if (run_stride == run_bytes) run_bytes *= runs, runs = 1;
    p = static_cast<const char*>(first), end = p + run_bytes;
    per_step = simd::ceil_div(runs * simd::ceil_div(run_bytes, 64) + 1, std::max<int64_t>(1, steps));
    left = runs - 1, bytes = run_bytes, stride = run_stride;
  }
  HWY_INLINE void step(int64_t lines) {
    for (int64_t k = 0; k < lines && p < end; ++k) {
      __builtin_prefetch(p, WRITE, 2);
      p += 64;
      if (p >= end && left > 0) --left, p = end - bytes + stride, end = p + bytes;
    }
  }
};
struct NhwcPrefetch {
  NhwcPrefetchRuns<0> in;
  NhwcPrefetchRuns<1> out;
  // The output row: `pixels` runs of `bytes`, `stride` apart (one span when
  // the task has all channels).
  HWY_INLINE void output(const char* first, int64_t pixels, int64_t bytes, int64_t stride, int64_t groups) {
    out.set(first, pixels, bytes, stride, groups);
  }
  HWY_INLINE void step(int64_t in_lines, int64_t out_lines) { in.step(in_lines), out.step(out_lines); }
  HWY_INLINE void step() { step(in.per_step, out.per_step); }
  HWY_INLINE void rest() { step(int64_t(1) << 40, int64_t(1) << 40); }
};


// R consecutive output pixels (px0 + r) of the current row, one channel
// vector: vs is its scratch plane, wt / bias are offset to it already.
// General form: every tap loads its R inputs (any stride and dilation).
// Accumulates into acc (initialised by the caller).
template <int R, int KW, bool IN_PLACE>
HWY_INLINE void NhwcPixelsStrided(const simd::NhwcPlan& pl, const float* HWY_RESTRICT vs, const NhwcRows& rows,
                                  const float* HWY_RESTRICT wt, int64_t px0,
                                  hn::Vec<hn::ScalableTag<float>>* acc) {
  const hn::ScalableTag<float> d;
  const simd::NhwcGeom& g = pl.g;
  const int64_t cp = pl.cp, kw = KW > 0 ? KW : g.kw, pix = NhwcPix<IN_PLACE>(rows);
  const int64_t pstep = g.sw * pix;
  for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
    const float* HWY_RESTRICT xr = vs + rows.template offset<IN_PLACE>(i, g.dh) + px0 * pstep;
    const float* HWY_RESTRICT wr = wt + i * kw * cp;
    for (int64_t j = 0; j < kw; ++j) {
      const auto wv = hn::Load(d, wr + j * cp);
      const float* HWY_RESTRICT xp = xr + j * g.dw * pix;
      for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(wv, NhwcLoad<IN_PLACE>(xp + r * pstep), acc[r]);
    }
  }
}

// Taps [0, JN) of one tap row as a register window (stride SW, dilation 1):
// the JN weights stay in registers and each input vector is loaded once and
// feeds every (pixel, tap) pair it belongs to, (R-1)*SW + JN loads per
// R*JN FMAs, where the memory-operand form (NhwcPixelsStrided) needs one
// load per FMA and is load-port bound. JN is kept small enough that R
// accumulators + JN weights + 1 input fit the register file (16 on AVX2).
// R must be above 8: each accumulator is a chain of dependent FMAs and
// 2 FMA pipes x 4 cycles of latency need 8 chains in flight just to break
// even (measured on Zen 3, k7 NHWC hot cache: R=6 54%, R=8 63%, R=10 ?).
// PIN: each input in a register (NhwcInReg).
template <int R, int JN, int SW, bool IN_PLACE, bool PIN, int X, int... J>
HWY_INLINE void WindowInput(const float* HWY_RESTRICT xr, int64_t pix, const hn::Vec<hn::ScalableTag<float>>* w,
                            hn::Vec<hn::ScalableTag<float>>* acc, std::integer_sequence<int, J...>) {
  auto xv = NhwcLoad<IN_PLACE>(xr + X * pix);
  if constexpr (PIN) xv = NhwcInReg(xv);
  // Input X feeds pixel (X - j) / SW with tap j, where that is a pixel.
  ((((X - J) >= 0 && (X - J) % SW == 0 && (X - J) / SW < R)
        ? void(acc[(X - J) / SW] = hn::MulAdd(w[J], xv, acc[(X - J) / SW]))
        : void()),
   ...);
}
// Every index is a template argument, so the accumulators are constant-
// indexed from the start and stay in registers (loops unrolled by the
// compiler are not: GCC kept acc[] on the stack, 2x slower).
template <int R, int JN, int SW, bool IN_PLACE, bool PIN, int... X>
HWY_INLINE void WindowInputs(const float* HWY_RESTRICT xr, int64_t pix, const hn::Vec<hn::ScalableTag<float>>* w,
                             hn::Vec<hn::ScalableTag<float>>* acc, std::integer_sequence<int, X...>) {
  (WindowInput<R, JN, SW, IN_PLACE, PIN, X>(xr, pix, w, acc, std::make_integer_sequence<int, JN>()), ...);
}
template <int R, int JN, int SW, bool IN_PLACE, bool PIN, int... J>
HWY_INLINE void WindowTapsSeq(const float* HWY_RESTRICT xr, int64_t pix, const float* HWY_RESTRICT wr, int64_t cp,
                              hn::Vec<hn::ScalableTag<float>>* acc, std::integer_sequence<int, J...>) {
  const hn::ScalableTag<float> d;
  const hn::Vec<decltype(d)> w[JN] = {hn::Load(d, wr + J * cp)...};
  WindowInputs<R, JN, SW, IN_PLACE, PIN>(xr, pix, w, acc, std::make_integer_sequence<int, (R - 1) * SW + JN>());
}
template <int R, int JN, int SW, bool IN_PLACE, bool PIN = false>
HWY_INLINE void WindowTaps(const float* HWY_RESTRICT xr, int64_t pix, const float* HWY_RESTRICT wr, int64_t cp,
                           hn::Vec<hn::ScalableTag<float>>* acc) {
  WindowTapsSeq<R, JN, SW, IN_PLACE, PIN>(xr, pix, wr, cp, acc, std::make_integer_sequence<int, JN>());
}

// Register-window form of NhwcPixelsStrided for dilation 1 along W and
// stride SW: taps in chunks of at most 4 (KW = 3, 5 in one).
template <int R, int KW, int SW, bool IN_PLACE>
HWY_INLINE void NhwcPixelsWindow(const simd::NhwcPlan& pl, const float* HWY_RESTRICT vs, const NhwcRows& rows,
                                 const float* HWY_RESTRICT wt, int64_t px0,
                                 hn::Vec<hn::ScalableTag<float>>* acc) {
  const simd::NhwcGeom& g = pl.g;
  const int64_t cp = pl.cp, kw = KW > 0 ? KW : g.kw, pix = NhwcPix<IN_PLACE>(rows);
  for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
    const float* HWY_RESTRICT xr = vs + rows.template offset<IN_PLACE>(i, g.dh) + px0 * SW * pix;
    const float* HWY_RESTRICT wr = wt + i * kw * cp;
    if constexpr (KW == 3) {
      WindowTaps<R, 3, SW, IN_PLACE>(xr, pix, wr, cp, acc);
    } else if constexpr (KW == 5) {
      WindowTaps<R, 3, SW, IN_PLACE>(xr, pix, wr, cp, acc);
      WindowTaps<R, 2, SW, IN_PLACE>(xr + 3 * pix, pix, wr + 3 * cp, cp, acc);
    } else if constexpr (KW == 7) {
      WindowTaps<R, 4, SW, IN_PLACE>(xr, pix, wr, cp, acc);
      WindowTaps<R, 3, SW, IN_PLACE>(xr + 4 * pix, pix, wr + 4 * cp, cp, acc);
    } else {
      int64_t j = 0;
      for (; j + 4 <= kw; j += 4) WindowTaps<R, 4, SW, IN_PLACE, true>(xr + j * pix, pix, wr + j * cp, cp, acc);
      switch (kw - j) {
        case 3:
          WindowTaps<R, 3, SW, IN_PLACE, true>(xr + j * pix, pix, wr + j * cp, cp, acc);
          break;
        case 2:
          WindowTaps<R, 2, SW, IN_PLACE, true>(xr + j * pix, pix, wr + j * cp, cp, acc);
          break;
        case 1:
          WindowTaps<R, 1, SW, IN_PLACE, true>(xr + j * pix, pix, wr + j * cp, cp, acc);
          break;
        default:
          break;
      }
    }
  }
}

template <int R, int KW, bool IN_PLACE, typename T>
HWY_INLINE void NhwcPixels(const simd::NhwcPlan& pl, const float* HWY_RESTRICT vs, const NhwcRows& rows,
                           const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t px0,
                           int64_t nvalid, T* HWY_RESTRICT yrow) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<decltype(d)> acc[R];
  for (int r = 0; r < R; ++r) acc[r] = bias ? hn::Load(d, bias) : hn::Zero(d);
  if (pl.g.dw == 1 && pl.g.sw == 1) {
    NhwcPixelsWindow<R, KW, 1, IN_PLACE>(pl, vs, rows, wt, px0, acc);
  } else if (pl.g.dw == 1 && pl.g.sw == 2) {
    NhwcPixelsWindow<R, KW, 2, IN_PLACE>(pl, vs, rows, wt, px0, acc);
  } else {
    NhwcPixelsStrided<R, KW, IN_PLACE>(pl, vs, rows, wt, px0, acc);
  }
  const int64_t C = rows.ostride;
  if constexpr (std::is_same_v<T, float>) {
    if (rows.stream && nvalid >= L) {  // 64-byte aligned (NhwcConv)
      for (int r = 0; r < R; ++r) hn::Stream(acc[r], d, yrow + (px0 + r) * C);
      return;
    }
  }
  if (nvalid >= L) {
    for (int r = 0; r < R; ++r) StoreF(d, acc[r], yrow + (px0 + r) * C);
  } else {
    HWY_ALIGN float tmp[hn::MaxLanes(d)];
    for (int r = 0; r < R; ++r) {
      hn::Store(acc[r], d, tmp);
      T* dst = yrow + (px0 + r) * C;
      for (int64_t e = 0; e < nvalid; ++e) FromF(tmp[e], dst + e);
    }
  }
}

// Targets with 32 vector registers (AVX-512) hold a tile's weights of a
// whole tap row besides its accumulators (see NhwcTile).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kNhwcVecRegs = 32;
#else
constexpr int kNhwcVecRegs = 16;
#endif
// Pair mode: bf16 NHWC read in place, 2L channels per whole-vector load.
// Their 32-bit lanes hold channel pairs (2k, 2k + 1): shifted left by 16
// they are the even channels in fp32, masked to the high half the odd ones,
// so each input costs one load and one integer op per L channels. The copy
// path converted every input into an fp32 scratch and read it back for
// each tap: bf16 ran only 1.1-1.3x faster than fp32 there. Weights and bias
// are arranged even-then-odd per 2L channels (NhwcArrangeRange).
struct NhwcPairIn {
  hn::Vec<hn::ScalableTag<float>> even, odd;
};
HWY_INLINE NhwcPairIn NhwcLoadPair(const hbf16* HWY_RESTRICT p) {
  const hn::ScalableTag<float> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const auto u = hn::LoadU(du, reinterpret_cast<const uint32_t*>(p));
  return {hn::BitCast(d, hn::ShiftLeft<16>(u)), hn::BitCast(d, hn::And(u, hn::Set(du, 0xffff0000u)))};
}
// fp32 -> bf16 bits in the low half, rounded to nearest even (as StoreF).
HWY_INLINE hn::Vec<hn::RebindToUnsigned<hn::ScalableTag<float>>> NhwcRoundBf16(hn::Vec<hn::ScalableTag<float>> v) {
  const hn::ScalableTag<float> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const auto u = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u));
  const auto r = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du, 0x7fffu), lsb)));
  const auto nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du, 0x40u));
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), nan, r);
}
HWY_INLINE void NhwcStorePair(hn::Vec<hn::ScalableTag<float>> even, hn::Vec<hn::ScalableTag<float>> odd,
                              hbf16* HWY_RESTRICT p) {
  const hn::RebindToUnsigned<hn::ScalableTag<float>> du;
  hn::StoreU(hn::Or(hn::ShiftLeft<16>(NhwcRoundBf16(odd)), NhwcRoundBf16(even)), du, reinterpret_cast<uint32_t*>(p));
}

// Channel vector h of what an in-place tile reads at p: fp32, the h-th
// vector; bf16 (pair mode), half h % 2 (even channels, then odd) of pair
// vector h / 2, so that vector h's weights and bias sit h * L channels on
// in both. h is a constant in the unrolled tile loops; the two halves of
// one pair are two calls whose loads the compiler merges.
HWY_INLINE hn::Vec<hn::ScalableTag<float>> NhwcLoadVec(const float* HWY_RESTRICT p, int h) {
  const hn::ScalableTag<float> d;
  return hn::LoadU(d, p + h * int64_t(hn::Lanes(d)));
}
HWY_INLINE hn::Vec<hn::ScalableTag<float>> NhwcLoadVec(const hbf16* HWY_RESTRICT p, int h) {
  const NhwcPairIn in = NhwcLoadPair(p + (h / 2) * 2 * int64_t(hn::Lanes(hn::ScalableTag<float>())));
  return h % 2 == 0 ? in.even : in.odd;
}

// Input column X of a tap row for a register-window tile (stride 1,
// dilation 1, in place): vectors H0 .. H0 + V - 1 (NhwcLoadVec) loaded
// through the running pointer p, each feeding output pixel X - j with tap
// j, where that is a pixel.
template <int R, int V, int KW, int SW, int H0, int X, typename TI, int... J>
HWY_INLINE void NhwcTileInput(const TI* HWY_RESTRICT& p, int64_t pix, const hn::Vec<hn::ScalableTag<float>> (&w)[V][KW],
                              hn::Vec<hn::ScalableTag<float>> (&acc)[V][R], std::integer_sequence<int, J...>) {
  for (int v = 0; v < V; ++v) {
    const auto xv = NhwcLoadVec(p, H0 + v);
    // Input X feeds pixel (X - j) / SW with tap j, where that is a pixel.
    (((X - J) >= 0 && (X - J) % SW == 0 && (X - J) / SW < R
          ? void(acc[v][(X - J) / SW] = hn::MulAdd(w[v][J], xv, acc[v][(X - J) / SW]))
          : void()),
     ...);
  }
  p += pix;
}
template <int R, int V, int KW, int... X>
HWY_INLINE void NhwcTileInputs(const float* HWY_RESTRICT xr, int64_t pix, const hn::Vec<hn::ScalableTag<float>> (&w)[V][KW],
                               hn::Vec<hn::ScalableTag<float>> (&acc)[V][R], std::integer_sequence<int, X...>) {
  const float* HWY_RESTRICT p = xr;  // the comma fold runs X in order
  (NhwcTileInput<R, V, KW, 1, 0, X>(p, pix, w, acc, std::make_integer_sequence<int, KW>()), ...);
}

// Output columns [px0, px0 + R) of the current row for V whole channel
// vectors cv0 .. cv0 + V - 1 (relative to wt / bias / yrow): the tail of a
// row narrower than a pixel group. A group of R < 8 pixels alone keeps only
// R chains of dependent FMAs in flight (a 7-wide image: 4 + 2 + 1 pixels,
// 25-50% of the FMA pipes); V channel vectors at once restore R*V chains.
// Memory-operand form (any stride, dilation). ytile: the output row at
// channel cv0.
template <int R, int V, int KW, bool IN_PLACE, typename T>
HWY_INLINE void NhwcTile(const simd::NhwcPlan& pl, const float* HWY_RESTRICT scratch, int64_t vplane,
                         const NhwcRows& rows, const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias,
                         int64_t px0, int64_t cv0, T* HWY_RESTRICT ytile) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  const int64_t cp = pl.cp, kw = KW > 0 ? KW : g.kw, pix = NhwcPix<IN_PLACE>(rows), pstep = g.sw * pix;
  const float* HWY_RESTRICT vs = scratch + (cv0 / L) * vplane;
  hn::Vec<decltype(d)> acc[V][R];
  for (int v = 0; v < V; ++v)
    for (int r = 0; r < R; ++r) acc[v][r] = bias ? hn::Load(d, bias + cv0 + v * L) : hn::Zero(d);
  auto store = [&] {
    for (int v = 0; v < V; ++v)
      for (int r = 0; r < R; ++r) StoreF(d, acc[v][r], ytile + (px0 + r) * rows.ostride + v * L);
  };
  // In place with 32 registers: a register window over the tap row, the
  // V x KW weights held and each input loaded once through one running
  // pointer. The memory-operand form below addresses input (r + j) * C
  // with C known only at run time: GCC kept a pointer per (pixel, tap),
  // spilled them to xmm registers and the stack (two moves per FMA), and
  // a 7x7 image's tiles ran at a seventh of the FMA peak.
  if constexpr (IN_PLACE && (KW == 3 || KW == 5) && kNhwcVecRegs == 32 && R * V + V * KW + V <= 30) {
    if (g.sw == 1 && g.dw == 1) {
      for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
        const float* HWY_RESTRICT wr = wt + i * kw * cp + cv0;
        hn::Vec<decltype(d)> w[V][KW];
        for (int v = 0; v < V; ++v)
          for (int j = 0; j < KW; ++j) w[v][j] = hn::Load(d, wr + j * cp + v * L);
        NhwcTileInputs<R, V, KW>(vs + rows.template offset<true>(i, g.dh) + px0 * pix, pix, w, acc,
                                 std::make_integer_sequence<int, R + KW - 1>());
      }
      return store();
    }
  }
  // The scratch at stride 1, dilation 1: pixel r + j of a vector's row at
  // a compile-time displacement (pix is the lane count) from one pointer
  // per vector (with the run-time stride and vplane GCC kept a pointer per
  // (vector, pixel)).
  if constexpr (!IN_PLACE) {
    if (g.sw == 1 && g.dw == 1) {
      for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
        const float* HWY_RESTRICT xr = vs + rows.template offset<false>(i, g.dh) + px0 * pix;
        const float* HWY_RESTRICT wr = wt + i * kw * cp + cv0;
        for (int v = 0; v < V; ++v) {
          const float* HWY_RESTRICT xv = xr + v * vplane;
          for (int64_t j = 0; j < kw; ++j) {
            const auto wv = hn::Load(d, wr + j * cp + v * L);
            for (int r = 0; r < R; ++r) acc[v][r] = hn::MulAdd(wv, hn::Load(d, xv + (j + r) * pix), acc[v][r]);
          }
        }
      }
      return store();
    }
  }
  for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
    const float* HWY_RESTRICT xr = vs + rows.template offset<IN_PLACE>(i, g.dh) + px0 * pstep;
    const float* HWY_RESTRICT wr = wt + i * kw * cp + cv0;
    for (int64_t j = 0; j < kw; ++j) {
      const float* HWY_RESTRICT xp = xr + j * g.dw * pix;
      for (int v = 0; v < V; ++v) {
        const auto wv = hn::Load(d, wr + j * cp + v * L);
        for (int r = 0; r < R; ++r)
          acc[v][r] = hn::MulAdd(wv, NhwcLoad<IN_PLACE>(xp + v * vplane + r * pstep), acc[v][r]);
      }
    }
  }
  store();
}

// Clipped tiles (NhwcPlan::clipped: in place, dilation 1 along W, rows of
// at most kNhwcClipCols output columns, KW 3, 5 or 7 at stride 1, 3 or 5
// at stride 2; wider kernels: the stationary tiles below): a whole
// short row in register-window tiles whose windows may cross the left or
// right edge of the input. Tile column X (input column ix0 + X) is loaded
// only inside the input, so padding columns are neither read nor computed:
// a 7x7 image with a 7x7 kernel has 37 of 49 taps per row inside, and the
// edge path (NhwcEdgeColumn: two loads per FMA) would take 6 of its 7
// columns. Valid columns are one contiguous run, so one running pointer
// steps over them.
template <int R, int V, int KW, int SW, int H0, int X, typename TI>
HWY_INLINE void NhwcClipInput(const TI* HWY_RESTRICT& p, int64_t pix, int64_t x_lo, int64_t x_hi,
                              const hn::Vec<hn::ScalableTag<float>> (&w)[V][KW],
                              hn::Vec<hn::ScalableTag<float>> (&acc)[V][R]) {
  if (X >= x_lo && X < x_hi)
    NhwcTileInput<R, V, KW, SW, H0, X>(p, pix, w, acc, std::make_integer_sequence<int, KW>());
}
template <int R, int V, int KW, int SW, int H0, typename TI, int... X>
HWY_INLINE void NhwcClipInputs(const TI* HWY_RESTRICT first, int64_t pix, int64_t x_lo, int64_t x_hi,
                               const hn::Vec<hn::ScalableTag<float>> (&w)[V][KW],
                               hn::Vec<hn::ScalableTag<float>> (&acc)[V][R], std::integer_sequence<int, X...>) {
  const TI* HWY_RESTRICT p = first;
  (NhwcClipInput<R, V, KW, SW, H0, X>(p, pix, x_lo, x_hi, w, acc), ...);
}
// One output pixel of a tile (NhwcClipTile, NhwcStatTile): its V vectors
// a0 (and a1 at V = 2) to yp. fp32 as they are; bf16 as pair vectors, at
// V = 2 both halves at once, at V = 1 the even half (H0 = 0) left in row r
// of the stash (null for fp32) for the odd call, which stores the pair.
template <int V, int H0, class D, typename T>
HWY_INLINE void NhwcStoreTilePixel(D d, hn::Vec<D> a0, hn::Vec<D> a1, T* HWY_RESTRICT yp,
                                   float* HWY_RESTRICT stash, int r) {
  static_assert(V == 1 || V == 2, "tiles hold one or two vectors per pixel");
  if constexpr (std::is_same_v<T, float>) {
    StoreF(d, a0, yp);
    if constexpr (V == 2) StoreF(d, a1, yp + hn::Lanes(d));
  } else if constexpr (V == 2) {
    NhwcStorePair(a0, a1, yp);
  } else if constexpr (H0 == 0) {
    hn::Store(a0, d, stash + r * hn::Lanes(d));
  } else {
    NhwcStorePair(hn::Load(d, stash + r * hn::Lanes(d)), a0, yp);
  }
}
// Output columns [ox, ox + R) of the current row, channel vectors H0 ..
// H0 + V - 1 from channel cv (NhwcLoadVec; relative to xc, wt, bias;
// ytile: the output pixel ox at cv). fp32: H0 = 0, V whole vectors. bf16
// (pair mode, cv a multiple of 2L): the even and odd halves of the pair
// vector at cv, both at once (V = 2), or one per call (V = 1, 16-register
// targets, where a pair's accumulators and weights do not fit): the even
// call leaves its sums in `stash` (R x L floats) for the odd call, which
// stores the pair.
template <int R, int V, int KW, int SW, int H0, typename T>
HWY_INLINE void NhwcClipTile(const simd::NhwcPlan& pl, const T* HWY_RESTRICT xc, const NhwcRows& rows,
                             const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t ox, int64_t cv,
                             T* HWY_RESTRICT ytile, float* HWY_RESTRICT stash = nullptr) {
  static_assert(std::is_same_v<T, float> ? H0 == 0 : (V == 2 && H0 == 0) || (V == 1 && H0 <= 1), "vectors of a tile");
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  constexpr int kCols = (R - 1) * SW + KW;  // input columns of the tile's window
  const int64_t ix0 = ox * SW - g.pl;
  const int64_t x_lo = std::max<int64_t>(0, -ix0), x_hi = std::min<int64_t>(kCols, g.in_w - ix0);
  const int64_t c = cv + H0 * L;  // the first vector's weights and bias
  hn::Vec<decltype(d)> acc[V][R];
  for (int v = 0; v < V; ++v)
    for (int r = 0; r < R; ++r) acc[v][r] = bias ? hn::Load(d, bias + c + v * L) : hn::Zero(d);
  if (x_lo < x_hi) {
    for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
      const float* HWY_RESTRICT wr = wt + i * KW * pl.cp + c;
      hn::Vec<decltype(d)> w[V][KW];
      for (int v = 0; v < V; ++v)
        for (int j = 0; j < KW; ++j) w[v][j] = hn::Load(d, wr + j * pl.cp + v * L);
      NhwcClipInputs<R, V, KW, SW, H0>(xc + rows.template offset<true>(i, g.dh) + (ix0 + x_lo) * rows.pix + cv,
                                       rows.pix, x_lo, x_hi, w, acc, std::make_integer_sequence<int, kCols>());
    }
  }
  for (int r = 0; r < R; ++r)
    NhwcStoreTilePixel<V, H0>(d, acc[0][r], acc[V - 1][r], ytile + r * rows.ostride, stash, r);
}
// Tiles of R pixels x V vectors in the vector registers: R x V
// accumulators, V x KW weights of a tap row and V input vectors, at most 7
// pixels so that 7- and 14-wide rows are whole tiles (7 at KW 3, 5 and 7 on
// every target: 7 + 7 + 1 = 15 registers at KW 7 on 16-register targets).
// Why 7 and not fewer: docs/performance-cpu.md, sessions 11 and 12.
constexpr int kNhwcClipV = kNhwcVecRegs >= 32 ? 2 : 1;
template <int KW>
constexpr int kNhwcClipR = std::min(7, kNhwcVecRegs / kNhwcClipV - KW - 1);
static_assert(kNhwcClipR<7> == 7, "a 7-wide row is one tile");
// The columns [ox0, ox0 + bw) of the current row, channels [ca, cz) of
// the block (whole vectors; bf16: whole pair vectors): tiles of
// kNhwcClipR pixels, then 4, 2 and 1.
template <int KW, int SW, typename T>
void NhwcRowClipped(const simd::NhwcPlan& pl, const T* HWY_RESTRICT xc, const NhwcRows& rows,
                    const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t ox0, int64_t bw, int64_t ca,
                    int64_t cz, T* HWY_RESTRICT yrow, NhwcPrefetch& pf) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  constexpr int V = kNhwcClipV;
  HWY_ALIGN float stash[7 * hn::MaxLanes(d)];  // bf16, V = 1: a tile's even half
  auto tiles = [&](auto r, int64_t px) {
    constexpr int R = decltype(r)::value;
    static_assert(R <= 7, "the stash holds 7 pixels");
    T* HWY_RESTRICT ytile = yrow + px * rows.ostride - ca;
    int64_t cv = ca;
    if constexpr (std::is_same_v<T, float>) {
      for (; cv + V * L <= cz; cv += V * L)
        pf.step(), NhwcClipTile<R, V, KW, SW, 0>(pl, xc, rows, wt, bias, ox0 + px, cv, ytile + cv);
      for (; cv < cz; cv += L) NhwcClipTile<R, 1, KW, SW, 0>(pl, xc, rows, wt, bias, ox0 + px, cv, ytile + cv);
    } else if constexpr (V == 2) {
      for (; cv < cz; cv += 2 * L) pf.step(), NhwcClipTile<R, 2, KW, SW, 0>(pl, xc, rows, wt, bias, ox0 + px, cv, ytile + cv);
    } else {
      for (; cv < cz; cv += 2 * L) {
        pf.step();
        NhwcClipTile<R, 1, KW, SW, 0>(pl, xc, rows, wt, bias, ox0 + px, cv, ytile + cv, stash);
        NhwcClipTile<R, 1, KW, SW, 1>(pl, xc, rows, wt, bias, ox0 + px, cv, ytile + cv, stash);
      }
    }
  };
  int64_t px = 0;
  for (; px + kNhwcClipR<KW> <= bw; px += kNhwcClipR<KW>) tiles(std::integral_constant<int, kNhwcClipR<KW>>(), px);
  if (px + 4 <= bw) tiles(std::integral_constant<int, 4>(), px), px += 4;
  if (px + 2 <= bw) tiles(std::integral_constant<int, 2>(), px), px += 2;
  if (px < bw) tiles(std::integral_constant<int, 1>(), px);
}

// Stationary tiles (clipped rows of an image at most 7 wide whose kernel
// is wider than 7, stride 1, dilation 1 along W: RepLKNet's and SLaK's
// 13x13 on 7x7): the clipped tile would hold KW weights per vector, and
// the copy computed every padding tap (13 of a row's taps, 7 inside). Here
// a tap row's input columns (at most 7) stay in registers and each tap's
// weights are loaded once for the pixels on its diagonal: column X feeds
// pixel r with tap j = X - r + pad_left. 7V inputs, 7V accumulators and V
// weights: 30 registers at V = 2, 15 at V = 1.
constexpr int kNhwcStatW = int(simd::kNhwcStatCols);
template <int V, int D, int... X>
HWY_INLINE void NhwcStatDiagonal(const hn::Vec<hn::ScalableTag<float>> (&in)[V][kNhwcStatW],
                                 hn::Vec<hn::ScalableTag<float>> (&acc)[V][kNhwcStatW], const float* HWY_RESTRICT wr,
                                 int64_t cp, int64_t pad_left, int64_t kw, std::integer_sequence<int, X...>) {
  const int64_t j = D + pad_left;  // the tap of diagonal X - r = D
  if (j < 0 || j >= kw) return;
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  for (int v = 0; v < V; ++v) {
    const auto w = hn::Load(d, wr + j * cp + v * L);
    (((X - D) >= 0 && (X - D) < kNhwcStatW ? void(acc[v][X - D] = hn::MulAdd(w, in[v][X], acc[v][X - D])) : void()),
     ...);
  }
}
template <int V, int... D>
HWY_INLINE void NhwcStatDiagonals(const hn::Vec<hn::ScalableTag<float>> (&in)[V][kNhwcStatW],
                                  hn::Vec<hn::ScalableTag<float>> (&acc)[V][kNhwcStatW], const float* HWY_RESTRICT wr,
                                  int64_t cp, int64_t pad_left, int64_t kw, std::integer_sequence<int, D...>) {
  (NhwcStatDiagonal<V, D - (kNhwcStatW - 1)>(in, acc, wr, cp, pad_left, kw,
                                             std::make_integer_sequence<int, kNhwcStatW>()),
   ...);
}
// The whole output row (at most 7 pixels), channel vectors H0 .. H0 + V - 1
// from cv, as NhwcClipTile (the same stash for bf16 halves at V = 1).
template <int V, int H0, typename T>
HWY_INLINE void NhwcStatTile(const simd::NhwcPlan& pl, const T* HWY_RESTRICT xc, const NhwcRows& rows,
                             const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t cv,
                             T* HWY_RESTRICT ytile, float* HWY_RESTRICT stash) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  const int64_t c = cv + H0 * L;  // the first vector's weights and bias
  hn::Vec<decltype(d)> acc[V][kNhwcStatW], in[V][kNhwcStatW];
  for (int v = 0; v < V; ++v)
    for (int r = 0; r < kNhwcStatW; ++r) acc[v][r] = bias ? hn::Load(d, bias + c + v * L) : hn::Zero(d);
  for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
    const T* HWY_RESTRICT xr = xc + rows.template offset<true>(i, g.dh) + cv;
    for (int v = 0; v < V; ++v)  // columns past the image are zero
      for (int x = 0; x < kNhwcStatW; ++x) in[v][x] = x < g.in_w ? NhwcLoadVec(xr + x * rows.pix, H0 + v) : hn::Zero(d);
    NhwcStatDiagonals<V>(in, acc, wt + i * g.kw * pl.cp + c, pl.cp, g.pl, g.kw,
                         std::make_integer_sequence<int, 2 * kNhwcStatW - 1>());
  }
  for (int r = 0; r < kNhwcStatW; ++r) {
    if (r >= g.out_w) break;
    NhwcStoreTilePixel<V, H0>(d, acc[0][r], acc[V - 1][r], ytile + r * rows.ostride, stash, r);
  }
}
// A whole output row of stationary tiles, channels [ca, cz) (as
// NhwcRowClipped). The row is the whole image row (the clipped plan: one
// column block), at most kNhwcStatW columns in and out (plan_nhwc).
template <typename T>
void NhwcRowStationary(const simd::NhwcPlan& pl, const T* HWY_RESTRICT xc, const NhwcRows& rows,
                       const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t ca, int64_t cz,
                       T* HWY_RESTRICT yrow, NhwcPrefetch& pf) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  constexpr int V = kNhwcClipV;
  HWY_DASSERT(pl.nbx == 1 && pl.g.in_w <= kNhwcStatW && pl.g.out_w <= kNhwcStatW);
  HWY_ALIGN float stash[kNhwcStatW * hn::MaxLanes(d)];
  T* HWY_RESTRICT ytile = yrow - ca;
  int64_t cv = ca;
  if constexpr (std::is_same_v<T, float>) {
    for (; cv + V * L <= cz; cv += V * L) pf.step(), NhwcStatTile<V, 0>(pl, xc, rows, wt, bias, cv, ytile + cv, stash);
    for (; cv < cz; cv += L) NhwcStatTile<1, 0>(pl, xc, rows, wt, bias, cv, ytile + cv, stash);
  } else if constexpr (V == 2) {
    for (; cv < cz; cv += 2 * L) pf.step(), NhwcStatTile<2, 0>(pl, xc, rows, wt, bias, cv, ytile + cv, stash);
  } else {
    for (; cv < cz; cv += 2 * L) {
      pf.step();
      NhwcStatTile<1, 0>(pl, xc, rows, wt, bias, cv, ytile + cv, stash);
      NhwcStatTile<1, 1>(pl, xc, rows, wt, bias, cv, ytile + cv, stash);
    }
  }
}

// Output columns [0, bw) of the current row for one channel vector; yrow
// points at its first channel. Pixel groups of 10 and 8 (the rest, if
// `tail`: see NhwcTile).
template <int KW, bool IN_PLACE, typename T>
HWY_INLINE int64_t NhwcRow(const simd::NhwcPlan& pl, const float* vs, const NhwcRows& rows, const float* wt,
                           const float* bias, int64_t bw, int64_t nvalid, bool tail, T* yrow, NhwcPrefetch& pf) {
  int64_t px = 0;
  for (; px + 10 <= bw; px += 10) pf.step(), NhwcPixels<10, KW, IN_PLACE>(pl, vs, rows, wt, bias, px, nvalid, yrow);
  if (px + 8 <= bw) NhwcPixels<8, KW, IN_PLACE>(pl, vs, rows, wt, bias, px, nvalid, yrow), px += 8;
  if (!tail) return px;
  if (px + 4 <= bw) NhwcPixels<4, KW, IN_PLACE>(pl, vs, rows, wt, bias, px, nvalid, yrow), px += 4;
  if (px + 2 <= bw) NhwcPixels<2, KW, IN_PLACE>(pl, vs, rows, wt, bias, px, nvalid, yrow), px += 2;
  if (px < bw) NhwcPixels<1, KW, IN_PLACE>(pl, vs, rows, wt, bias, px, nvalid, yrow);
  return bw;
}

// Pixel-major rows of one tap row at stride 1 and dilation 1 (1D in place,
// kw 3-5): R output pixels (y: their first, at channel 0), channels
// [ca, whole), the group's pointers hoisted out of the channel loop, the
// taps a register window of compile-time width, and no tap-row loop or
// prefetch step per vector (a 1D task has no next row to prefetch).
template <int R>
HWY_INLINE void NhwcGroupOneRow(const float* HWY_RESTRICT x, int64_t pix, const float* HWY_RESTRICT w, int64_t cp,
                                const float* HWY_RESTRICT bias, int64_t kw, int64_t ca, int64_t whole, int64_t C,
                                bool stream, float* HWY_RESTRICT y) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  for (int64_t cv = ca; cv < whole; cv += L) {
    hn::Vec<decltype(d)> acc[R];
    for (int k = 0; k < R; ++k) acc[k] = bias ? hn::Load(d, bias + cv) : hn::Zero(d);
    if (kw == 4) {
      WindowTaps<R, 4, 1, true>(x + cv, pix, w + cv, cp, acc);
    } else if (kw == 3) {
      WindowTaps<R, 3, 1, true>(x + cv, pix, w + cv, cp, acc);
    } else {
      WindowTaps<R, 3, 1, true>(x + cv, pix, w + cv, cp, acc);
      WindowTaps<R, 2, 1, true>(x + cv + 3 * pix, pix, w + cv + 3 * cp, cp, acc);
    }
    if (stream) {  // 64-byte aligned (NhwcConv)
      for (int k = 0; k < R; ++k) hn::Stream(acc[k], d, y + k * C + cv);
    } else {
      for (int k = 0; k < R; ++k) hn::StoreU(acc[k], d, y + k * C + cv);
    }
  }
}

// Every channel vector of the block for the current output row: whole
// vectors take pixel groups of 10 / 8 one vector at a time, then the
// remaining (< 8) pixels several vectors at a time (4 x 2, 2 x 4, 1 x 8); a partial last vector
// does all its pixels alone. Pixel-major plans (1D rows in place) walk
// pixel groups of 6, 4, 2, 1 outside and every vector inside instead.
// Channels [ca, nc) of the block (ca a multiple of L); yrow points at
// channel ca of the output row.
template <int KW, bool IN_PLACE, typename T>
void NhwcRowAllC(const simd::NhwcPlan& pl, const float* scratch, int64_t vplane, const NhwcRows& rows,
                 const float* wt, const float* bias, int64_t bw, int64_t ca, int64_t nc, T* yrow, NhwcPrefetch& pf) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t whole = (nc / L) * L;
  int64_t done = bw;
  if (IN_PLACE && pl.pixel_major) {
    // Pixel groups of 6 outside, channel vectors inside (NhwcPlan::pixel_major).
    // Six chains per call are fewer than the register window's rule of
    // more than 8, but consecutive calls (the next channel vector) are
    // independent, so their chains overlap; groups of 10 were 0.86-0.99x.
    // One tap row at stride 1 (every 1D row in place, kw 3-5) takes
    // NhwcGroupOneRow, which left the general pixel group (a tap-row loop,
    // the generic width's chunks, a prefetch step per vector) behind: Zen
    // 4, 2 threads, batch 1, Mamba k4 and 2048 x 1536 k3 / k5, 4
    // interleaved runs (minima): 1.08-1.20x; AVX2 1.38-1.93x.
    int64_t px = 0;
    const simd::NhwcGeom& g = pl.g;
    const bool one_row = IN_PLACE && g.sw == 1 && g.dw == 1 && g.kw >= 3 && g.kw <= 5 && rows.i_hi - rows.i_lo == 1;
    auto groups = [&](auto r) {
      constexpr int R = decltype(r)::value;
      if constexpr (IN_PLACE) {
        if (one_row) {
          const float* HWY_RESTRICT x0 = scratch + rows.template offset<IN_PLACE>(rows.i_lo, g.dh);
          const float* HWY_RESTRICT w0 = wt + rows.i_lo * g.kw * pl.cp;
          for (; px + R <= bw; px += R)
            NhwcGroupOneRow<R>(x0 + px * rows.pix, rows.pix, w0, pl.cp, bias, g.kw, ca, whole, rows.ostride,
                               rows.stream, yrow + px * rows.ostride - ca);
          return;
        }
      }
      for (; px + R <= bw; px += R)
        for (int64_t cv = ca; cv < whole; cv += L)
          pf.step(), NhwcPixels<R, KW, IN_PLACE>(pl, scratch + (cv / L) * vplane, rows, wt + cv,
                                                  bias ? bias + cv : nullptr, px, L, yrow + (cv - ca));
    };
    groups(std::integral_constant<int, 6>());
    groups(std::integral_constant<int, 4>());
    groups(std::integral_constant<int, 2>());
    groups(std::integral_constant<int, 1>());
  } else {
    for (int64_t cv = ca; cv < whole; cv += L)
      done = NhwcRow<KW, IN_PLACE>(pl, scratch + (cv / L) * vplane, rows, wt + cv, bias ? bias + cv : nullptr, bw, L,
                                   false, yrow + (cv - ca), pf);
  }
  for (int64_t px = done; px < bw;) {
    const int64_t left = bw - px;
    int64_t cv = ca;
    if (left == 3 || (left >= 5 && left <= 7)) {
      // A whole narrow row (7x7 ConvNeXt stage 4): all its pixels x 2
      // vectors, 10-14 chains at 1 + 1/left loads per FMA, where 4x2 + 2x4
      // + 1x8 tiles needed up to 2. Three pixels (the 3x3 output of the
      // seeds' k110): 6 chains, where a block of two vectors took 2x1 and
      // 1x1 tiles (2 and 1 chains).
      auto tiles = [&](auto r) {
        constexpr int R = decltype(r)::value;
        for (; cv + 2 * L <= whole; cv += 2 * L)
          NhwcTile<R, 2, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
        for (; cv < whole; cv += L)
          NhwcTile<R, 1, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      };
      if (left == 7) tiles(std::integral_constant<int, 7>());
      if (left == 6) tiles(std::integral_constant<int, 6>());
      if (left == 5) tiles(std::integral_constant<int, 5>());
      if (left == 3) tiles(std::integral_constant<int, 3>());
      px += left;
    } else if (left >= 4) {
      for (; cv + 2 * L <= whole; cv += 2 * L)
        NhwcTile<4, 2, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      for (; cv < whole; cv += L)
        NhwcTile<4, 1, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      px += 4;
    } else if (left >= 2) {
      for (; cv + 4 * L <= whole; cv += 4 * L)
        NhwcTile<2, 4, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      for (; cv < whole; cv += L)
        NhwcTile<2, 1, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      px += 2;
    } else {
      for (; cv + 8 * L <= whole; cv += 8 * L)
        NhwcTile<1, 8, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      for (; cv + 4 * L <= whole; cv += 4 * L)
        NhwcTile<1, 4, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      for (; cv < whole; cv += L)
        NhwcTile<1, 1, KW, IN_PLACE>(pl, scratch, vplane, rows, wt, bias, px, cv, yrow + (cv - ca));
      px += 1;
    }
  }
  if (whole < nc && whole >= ca)
    NhwcRow<KW, IN_PLACE>(pl, scratch + (whole / L) * vplane, rows, wt + whole, bias ? bias + whole : nullptr, bw,
                        nc - whole, true, yrow + (whole - ca), pf);
  pf.rest();  // what is left of the range, before the next row's copy
}

// In-place mode, output column ox of the current row, channels [ca, cz)
// (whole vectors; xc: the image at channel 0 of the block, ypix: the output
// pixel at channel ca): a column whose window crosses the left or right edge
// of the input, so its taps are bounds checked. V channel vectors at a time
// keep V chains of FMAs in flight (one chain alone is latency bound: a fifth
// of the FMA rate on the build machine); these are the pad_l + pad_r
// columns of each row.
template <int V>
HWY_INLINE void NhwcEdgeVectors(const simd::NhwcPlan& pl, const float* HWY_RESTRICT xc, const NhwcRows& rows,
                                const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t ix0,
                                int64_t j_lo, int64_t j_hi, int64_t cv, float* HWY_RESTRICT y) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  hn::Vec<decltype(d)> acc[V];
  for (int v = 0; v < V; ++v) acc[v] = bias ? hn::Load(d, bias + cv + v * L) : hn::Zero(d);
  for (int64_t i = rows.i_lo; i < rows.i_hi; i += rows.i_step) {
    const float* HWY_RESTRICT xr = xc + rows.template offset<true>(i, g.dh) + cv;
    const float* HWY_RESTRICT wr = wt + i * g.kw * pl.cp + cv;
    for (int64_t j = j_lo; j < j_hi; ++j) {
      const float* HWY_RESTRICT xp = xr + (ix0 + j * g.dw) * rows.pix;
      for (int v = 0; v < V; ++v)
        acc[v] = hn::MulAdd(hn::Load(d, wr + j * pl.cp + v * L), hn::LoadU(d, xp + v * L), acc[v]);
    }
  }
  for (int v = 0; v < V; ++v) hn::StoreU(acc[v], d, y + v * L);
}
inline void NhwcEdgeColumn(const simd::NhwcPlan& pl, const float* HWY_RESTRICT xc, const NhwcRows& rows,
                           const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t ox, int64_t ca,
                           int64_t cz, float* HWY_RESTRICT ypix) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  const int64_t ix0 = ox * g.sw - g.pl;
  const int64_t j_lo = ix0 >= 0 ? 0 : simd::ceil_div(-ix0, g.dw);
  const int64_t j_hi = ix0 >= g.in_w ? 0 : std::min(g.kw, (g.in_w - 1 - ix0) / g.dw + 1);
  int64_t cv = ca;
  for (; cv + 8 * L <= cz; cv += 8 * L) NhwcEdgeVectors<8>(pl, xc, rows, wt, bias, ix0, j_lo, j_hi, cv, ypix + cv - ca);
  for (; cv + 2 * L <= cz; cv += 2 * L) NhwcEdgeVectors<2>(pl, xc, rows, wt, bias, ix0, j_lo, j_hi, cv, ypix + cv - ca);
  for (; cv < cz; cv += L) NhwcEdgeVectors<1>(pl, xc, rows, wt, bias, ix0, j_lo, j_hi, cv, ypix + cv - ca);
}

// Narrow mode (NhwcPlan::narrow: in place, an output narrower than the
// kernel, no padding column, dilation 1 down H, fp32): output rows
// [oy, oy + RY) x columns [ox, ox + R) of one channel vector in registers,
// walked by input row. Input row t of the tile's window feeds output row r
// with tap row t - r, so each input load serves RY outputs and each weight
// load R: (RY + R) loads per RY*R FMAs (3x3: 0.67; one output row at a time,
// NhwcTile 3 x 2, needs 1.33) in RY*R chains. wrow[r]: tap row t - r of the
// vector's weights ([kw] x ldw floats), null where it is not a tap row.
template <int RY, int R>
HWY_INLINE void NhwcNarrowRow(const simd::NhwcPlan& pl, const float* HWY_RESTRICT xrow,
                              const float* const* wrow, int64_t ldw, float* HWY_RESTRICT acc_mem) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  const int64_t kw = g.kw, pix = g.cin, pstep = g.dw * pix;
  hn::Vec<decltype(d)> acc[RY][R];
  for (int r = 0; r < RY; ++r)
    for (int q = 0; q < R; ++q) acc[r][q] = hn::Load(d, acc_mem + (r * R + q) * L);
  bool all = true;
  for (int r = 0; r < RY; ++r) all = all && wrow[r] != nullptr;
  auto taps = [&](auto all_live) {
    constexpr bool kAll = decltype(all_live)::value;
    const float* HWY_RESTRICT xp = xrow;
    for (int64_t j = 0; j < kw; ++j, xp += pstep) {
      hn::Vec<decltype(d)> xv[R];
      for (int q = 0; q < R; ++q) xv[q] = hn::LoadU(d, xp + q * pix);
      for (int r = 0; r < RY; ++r) {
        if (!kAll && wrow[r] == nullptr) continue;
        const auto wv = hn::Load(d, wrow[r] + j * ldw);
        for (int q = 0; q < R; ++q) acc[r][q] = hn::MulAdd(wv, xv[q], acc[r][q]);
      }
    }
  };
  if (all) {
    taps(std::true_type());
  } else {
    taps(std::false_type());
  }
  for (int r = 0; r < RY; ++r)
    for (int q = 0; q < R; ++q) hn::Store(acc[r][q], d, acc_mem + (r * R + q) * L);
}
// Taps [k0, k0 + nk) of L channels (w: the first one's row of kk taps;
// channels from nc on are zero) as nk runs of L channels, tap k to the
// aligned dst(k): L x L register transposes; a last partial block of at
// least half a vector the same way, from whole-vector loads that run into
// the next channel's taps (LoadTail: masked at wend, the end of the
// weights); fewer taps one by one (one by one, the 9 taps of a 3x3 kernel
// cost 15 % of a 1152-channel 7x7 call on AVX-512). Shared by NhwcArrange
// and narrow mode's per-tap-row arrangement.
template <typename T, typename Dst>
HWY_INLINE void ArrangeTaps(const T* HWY_RESTRICT w, int64_t kk, int64_t nc, int64_t k0, int64_t nk, const T* wend,
                            const Dst& dst) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<decltype(d)> v[hn::MaxLanes(d)];
  const int64_t k1 = k0 + nk;
  int64_t k = k0;
  for (; k + L <= k1; k += L) {
    for (int64_t l = 0; l < L; ++l) v[l] = l < nc ? LoadF(d, w + l * kk + k) : hn::Zero(d);
    Transpose(d, v);
    for (int64_t j = 0; j < L; ++j) hn::Store(v[j], d, dst(k + j));
  }
  const int64_t nt = k1 - k;
  if (nt > 0 && 2 * nt >= L) {
    for (int64_t l = 0; l < L; ++l) v[l] = l < nc ? LoadTail(d, w + l * kk + k, nt, wend) : hn::Zero(d);
    Transpose(d, v);
    for (int64_t j = 0; j < nt; ++j) hn::Store(v[j], d, dst(k + j));
    return;
  }
  for (; k < k1; ++k) {
    float* HWY_RESTRICT p = dst(k);
    for (int64_t l = 0; l < L; ++l) p[l] = l < nc ? ToF(w[l * kk + k]) : 0.0f;
  }
}

// Tap row i of channels [0, nc) (nc a multiple of L; w at the first of
// them, [C][kh*kw] fp32, wend its end) -> dst [kw][ldw].
HWY_INLINE void NhwcNarrowArrangeRow(const simd::NhwcGeom& g, const float* HWY_RESTRICT w, const float* wend,
                                     int64_t i, int64_t nc, float* HWY_RESTRICT dst, int64_t ldw) {
  const int64_t L = int64_t(hn::Lanes(hn::ScalableTag<float>()));
  const int64_t kk = g.kh * g.kw, k0 = i * g.kw;
  for (int64_t c = 0; c < nc; c += L)
    ArrangeTaps(w + c * kk, kk, L, k0, g.kw, wend, [&](int64_t k) { return dst + (k - k0) * ldw + c; });
}
// Into L2, kNarrowAhead input rows ahead of row t of a tile (xrow): that
// row's window of the group's nv vectors, and with per-tile weights (w:
// the caller's [C][kh*kw] at the group's first channel, else null) its tap
// row of the group's nc channels. The walk reads one short span of each
// pixel per row, 128 bytes apart at 32 channels, and the weights in 16-32
// runs a tap row long, streams the hardware prefetchers did not keep ahead
// of: the seeds' 110x110 kernel on 32 x 112x112, 2 threads, 5 interleaved
// runs (minima): batch 1 1.24-1.31x (1, 2 and 8 rows ahead 1.15-1.19x),
// batch 16 1.64-1.69x (against the previous commit, a build apart:
// 1.17x / 1.65x). Prefetching the arranged weights as well (batch 16)
// gained nothing (0.98-1.03x).
constexpr int64_t kNarrowAhead = 4;
template <int R>
HWY_INLINE void NhwcNarrowPrefetch(const simd::NhwcGeom& g, const float* xrow, int64_t t, int64_t t_hi, int64_t nv,
                                   const float* w, int64_t nc) {
  const int64_t L = int64_t(hn::Lanes(hn::ScalableTag<float>()));
  if (t + kNarrowAhead < t_hi) {
    const float* xa = xrow + kNarrowAhead * g.src_w * g.cin;
    const int64_t wpx = (R - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    for (int64_t x = 0; x < wpx; ++x)
      for (int64_t v = 0; v < nv; ++v) __builtin_prefetch(xa + x * g.cin + v * L, 0, 2);
  }
  if (w && t + kNarrowAhead < g.kh) {
    for (int64_t c = 0; c < nc; ++c) {
      const float* run = w + c * g.kh * g.kw + (t + kNarrowAhead) * g.kw;
      const uintptr_t last = reinterpret_cast<uintptr_t>(run + g.kw - 1);
      for (uintptr_t a = reinterpret_cast<uintptr_t>(run) & ~uintptr_t(63); a <= last; a += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 2);
    }
  }
}
// The tile's output rows [oy, oy + RY) x columns [ox, ox + R), channels
// [0, nc) of the block (xc, w, wt, bias and yn at its first channel).
// Weights from wt (NhwcArrange's [kh*kw][cp]), or when wt is null
// (NhwcPlan::narrow_row_weights: one tile per channel block) straight from
// the caller's [C][kh*kw], each tap row arranged into the per-thread wbuf
// (RY rows of kw x up to 8 vectors) when the walk reaches it: arranging
// them all up front wrote and re-read as many bytes as the input, for one
// use (s000 k110, batch 1, 2 threads, data in cache, 3 interleaved runs:
// 0.33-0.36 -> 0.27 ms; at batch 2 and 16, where NhwcArrange serves every
// image, 1.0-1.1x and 0.75x, so they keep it).
template <int RY, int R>
void NhwcNarrowTile(const simd::NhwcPlan& pl, const float* HWY_RESTRICT xc, const float* HWY_RESTRICT w,
                    const float* wend, const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t oy, int64_t ox,
                    int64_t nc, float* HWY_RESTRICT wbuf, float* HWY_RESTRICT yn) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  const int64_t kk = g.kh * g.kw;
  constexpr int64_t kGroup = simd::kNhwcGroup / 16;  // vectors whose accumulators a pass keeps
  HWY_ALIGN float acc_mem[kGroup * RY * R * hn::MaxLanes(d)];
  const int64_t top = oy * g.sh - g.pt;  // the tile's first input row (tap row 0 of output row oy)
  const int64_t t_lo = std::max<int64_t>(0, -top), t_hi = std::min<int64_t>(RY - 1 + g.kh, g.in_h - top);
  for (int64_t ca = 0; ca < nc; ca += kGroup * L) {
    const int64_t cz = std::min(nc, ca + kGroup * L), nv = (cz - ca) / L, ldw = wt ? pl.cp : cz - ca;
    for (int64_t v = 0; v < nv; ++v)
      for (int k = 0; k < RY * R; ++k)
        hn::Store(bias ? hn::LoadU(d, bias + ca + v * L) : hn::Zero(d), d, acc_mem + (v * RY * R + k) * L);
    for (int64_t i = std::max<int64_t>(0, t_lo - (RY - 1)); i < std::min(t_lo, g.kh) && !wt; ++i)
      NhwcNarrowArrangeRow(g, w + ca * kk, wend, i, cz - ca, wbuf + (i % RY) * g.kw * ldw, ldw);
    // Tap row i of the vector at ca + v*L.
    auto tap_row = [&](int64_t i, int64_t v) {
      return wt ? wt + i * g.kw * ldw + ca + v * L : wbuf + (i % RY) * g.kw * ldw + v * L;
    };
    for (int64_t t = t_lo; t < t_hi; ++t) {
      if (t < g.kh && !wt) NhwcNarrowArrangeRow(g, w + ca * kk, wend, t, cz - ca, wbuf + (t % RY) * g.kw * ldw, ldw);
      const float* xrow = xc + ((top + t) * g.src_w + ox * g.sw - g.pl) * g.cin + ca;
      NhwcNarrowPrefetch<R>(g, xrow, t, t_hi, nv, wt ? nullptr : w + ca * kk, cz - ca);
      for (int64_t v = 0; v < nv; ++v) {
        const float* wrow[RY];
        for (int r = 0; r < RY; ++r)
          wrow[r] = t - r >= 0 && t - r < g.kh ? tap_row(t - r, v) : nullptr;
        NhwcNarrowRow<RY, R>(pl, xrow + v * L, wrow, ldw, acc_mem + v * RY * R * L);
      }
    }
    for (int64_t v = 0; v < nv; ++v)
      for (int r = 0; r < RY; ++r)
        for (int q = 0; q < R; ++q)
          hn::StoreU(hn::Load(d, acc_mem + (v * RY * R + r * R + q) * L), d,
                     yn + ((oy + r) * g.out_w + ox + q) * g.c + ca + v * L);
  }
}
// Rows [oy0, oy0 + ry) x columns [ox0, ox0 + bw) in tiles of up to 3 x 3.
inline void NhwcNarrow(const simd::NhwcPlan& pl, const float* xc, const float* w, const float* wend, const float* wt,
                       const float* bias, int64_t oy0, int64_t ry, int64_t ox0, int64_t bw, int64_t nc, float* wbuf,
                       float* yn) {
  for (int64_t oy = oy0; oy < oy0 + ry;) {
    const int64_t rows = std::min<int64_t>(3, oy0 + ry - oy);
    for (int64_t ox = ox0; ox < ox0 + bw;) {
      const int64_t cols = std::min<int64_t>(3, ox0 + bw - ox);
      auto tile = [&](auto ry_tag, auto r_tag) {
        NhwcNarrowTile<decltype(ry_tag)::value, decltype(r_tag)::value>(pl, xc, w, wend, wt, bias, oy, ox, nc, wbuf, yn);
      };
      auto with_cols = [&](auto ry_tag) {
        if (cols == 3) return tile(ry_tag, std::integral_constant<int, 3>());
        if (cols == 2) return tile(ry_tag, std::integral_constant<int, 2>());
        return tile(ry_tag, std::integral_constant<int, 1>());
      };
      if (rows == 3) with_cols(std::integral_constant<int, 3>());
      if (rows == 2) with_cols(std::integral_constant<int, 2>());
      if (rows == 1) with_cols(std::integral_constant<int, 1>());
      ox += cols;
    }
    oy += rows;
  }
}

// Weights [C][kh*kw] (storage type) -> [kh*kw][cp] fp32 (zero beyond C),
// optionally flipped, and bias -> [cp], for channels [c_lo, c_hi) of the
// pitch (c_lo a multiple of 2L, c_hi too or cp). Blocks of L channels,
// each through ArrangeTaps (register transposes).
template <typename T>
void NhwcArrangeRange(const simd::NhwcPlan& pl, const T* w, const T* b, bool flip, float* wt, float* bias,
                      int64_t c_lo, int64_t c_hi) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t kk = pl.g.kh * pl.g.kw, C = pl.g.c, cp = pl.cp;
  const T* wend = w + C * kk;
  for (int64_t c0 = c_lo; c0 < c_hi; c0 += L) {
    const int64_t nc = std::min(L, C - c0);
    ArrangeTaps(nc > 0 ? w + c0 * kk : w, kk, nc, 0, kk, wend,
                [&](int64_t k) { return wt + (flip ? kk - 1 - k : k) * cp + c0; });
  }
  // Pair mode (NhwcLoadPair): within each block of 2L channels the even
  // channels first, then the odd ones, as the paired input splits them
  // (one lane: already so). Vector shuffles: element by element, this pass
  // took most of a batch-1 7x7 k7 bf16 call (Zen 4, 1 thread, in cache:
  // 768 channels 0.052 ms against fp32's 0.029).
  auto to_pairs = [&](float* row) {
#if HWY_TARGET != HWY_SCALAR
    for (int64_t c0 = c_lo; c0 + 2 * L <= c_hi; c0 += 2 * L) {
      const auto a = hn::Load(d, row + c0), b = hn::Load(d, row + c0 + L);
      hn::Store(hn::ConcatEven(d, b, a), d, row + c0);
      hn::Store(hn::ConcatOdd(d, b, a), d, row + c0 + L);
    }
#else
    (void)row;
#endif
  };
  if (pl.pairs)
    for (int64_t k = 0; k < kk; ++k) to_pairs(wt + k * cp);
  if (b) {
    for (int64_t c = c_lo; c < c_hi; ++c) bias[c] = c < C ? ToF(b[c]) : 0.0f;
    if (pl.pairs) to_pairs(bias);
  }
}
// All channels, split across the threads of the enclosing omp parallel
// region in whole blocks of 2L; ends with a barrier.
template <typename T>
void NhwcArrange(const simd::NhwcPlan& pl, const T* w, const T* b, bool flip, float* wt, float* bias) {
  const int64_t L2 = 2 * int64_t(hn::Lanes(hn::ScalableTag<float>()));
  const int64_t units = simd::ceil_div(pl.cp, L2), nt = omp_get_num_threads(), me = omp_get_thread_num();
  NhwcArrangeRange(pl, w, b, flip, wt, bias, std::min(pl.cp, units * me / nt * L2),
                   me + 1 == nt ? pl.cp : std::min(pl.cp, units * (me + 1) / nt * L2));
#pragma omp barrier
}

// R output pixels from px (their whole windows inside the input row) of
// one pair vector: x points at the pair vector's channels in input column
// px - pl + 0 of tap row 0's input row; rows of the image row_elems apart.
// KW = 3: a register window (each input loaded and split once for its 3
// taps, the 2 x 3 weights of a tap row held); otherwise a load per tap.
template <int R, int KW>
HWY_INLINE void NhwcPairPixels(const simd::NhwcGeom& g, int64_t cp, const hbf16* HWY_RESTRICT x,
                               int64_t row_elems, int64_t i_lo, int64_t i_hi, const float* HWY_RESTRICT wt,
                               const float* HWY_RESTRICT bias, hbf16* HWY_RESTRICT y) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t C = g.c, kw = g.kw;
  hn::Vec<decltype(d)> ae[R], ao[R];
  for (int r = 0; r < R; ++r) {
    ae[r] = bias ? hn::Load(d, bias) : hn::Zero(d);
    ao[r] = bias ? hn::Load(d, bias + L) : hn::Zero(d);
  }
  for (int64_t i = i_lo; i < i_hi; ++i) {
    const hbf16* HWY_RESTRICT xr = x + i * g.dh * row_elems;
    const float* HWY_RESTRICT wr = wt + i * kw * cp;
    if constexpr (KW == 3) {
      hn::Vec<decltype(d)> we[3], wo[3];
      for (int j = 0; j < 3; ++j) we[j] = hn::Load(d, wr + j * cp), wo[j] = hn::Load(d, wr + j * cp + L);
      for (int c = 0; c < R + 2; ++c) {  // input column c feeds pixel c - j with tap j
        const NhwcPairIn in = NhwcLoadPair(xr + c * C);
        for (int j = 0; j < 3; ++j) {
          const int r = c - j;
          if (r >= 0 && r < R) ae[r] = hn::MulAdd(we[j], in.even, ae[r]), ao[r] = hn::MulAdd(wo[j], in.odd, ao[r]);
        }
      }
    } else {
      for (int64_t j = 0; j < kw; ++j) {
        const auto we = hn::Load(d, wr + j * cp), wo = hn::Load(d, wr + j * cp + L);
        for (int r = 0; r < R; ++r) {
          const NhwcPairIn in = NhwcLoadPair(xr + (r + j) * C);
          ae[r] = hn::MulAdd(we, in.even, ae[r]), ao[r] = hn::MulAdd(wo, in.odd, ao[r]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) NhwcStorePair(ae[r], ao[r], y + r * C);
}

// One output row of a task in pair mode: columns [ox0, ox0 + bw), channels
// [c0, c0 + nc) (nc a multiple of 2L). top: the input row of tap row 0.
// Pixels whose window reaches into the padding check each tap's column.
template <int KW>
void NhwcPairRow(const simd::NhwcPlan& pl, const hbf16* HWY_RESTRICT xn, const float* HWY_RESTRICT wt,
                 const float* HWY_RESTRICT bias, int64_t top, int64_t ox0, int64_t bw, int64_t c0, int64_t nc,
                 hbf16* HWY_RESTRICT yrow) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  const int64_t C = g.c, cp = pl.cp, row_elems = g.src_w * C;
  const int64_t i_lo = top >= 0 ? 0 : simd::ceil_div(-top, g.dh);
  const int64_t i_hi = top >= g.in_h ? 0 : std::min(g.kh, (g.in_h - 1 - top) / g.dh + 1);
  // Columns [a, b) of the block read no padding (stride 1, dilation 1).
  const int64_t a = std::min(bw, std::max<int64_t>(0, g.pl - ox0));
  const int64_t b = std::max(a, std::min(bw, g.in_w - g.kw + 1 + g.pl - ox0));
  constexpr int kR = kNhwcVecRegs == 32 ? 8 : 4;
  const hbf16* HWY_RESTRICT xt = xn + top * row_elems + c0;
  const float* HWY_RESTRICT wt0 = wt + c0;
  const float* HWY_RESTRICT bt0 = bias ? bias + c0 : nullptr;
  // Pixel groups outside, pair vectors inside: a group reads R + kw - 1
  // whole pixels of each tap row and writes R whole pixels, contiguous
  // spans (a pair vector at a time along the row read 64 of every C * 2
  // bytes).
  auto edge = [&](int64_t px) {
    const int64_t ix0 = ox0 + px - g.pl;
    for (int64_t k = 0; k < nc; k += 2 * L) {
      const float* HWY_RESTRICT wk = wt0 + k;
      auto ae = bt0 ? hn::Load(d, bt0 + k) : hn::Zero(d), ao = bt0 ? hn::Load(d, bt0 + k + L) : hn::Zero(d);
      for (int64_t i = i_lo; i < i_hi; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t ix = ix0 + j;
          if (ix < 0 || ix >= g.in_w) continue;
          const NhwcPairIn in = NhwcLoadPair(xt + i * g.dh * row_elems + ix * C + k);
          const float* HWY_RESTRICT w = wk + (i * g.kw + j) * cp;
          ae = hn::MulAdd(hn::Load(d, w), in.even, ae), ao = hn::MulAdd(hn::Load(d, w + L), in.odd, ao);
        }
      NhwcStorePair(ae, ao, yrow + px * C + k);
    }
  };
  for (int64_t px = 0; px < a; ++px) edge(px);
  int64_t px = a;
  auto group = [&](auto rt) {
    constexpr int R = decltype(rt)::value;
    const hbf16* HWY_RESTRICT xg = xt + (ox0 + px - g.pl) * C;
    for (int64_t k = 0; k < nc; k += 2 * L)
      NhwcPairPixels<R, KW>(g, cp, xg + k, row_elems, i_lo, i_hi, wt0 + k, bt0 ? bt0 + k : nullptr,
                            yrow + px * C + k);
    px += R;
  };
  while (px + kR <= b) group(std::integral_constant<int, kR>());
  if (kR > 4 && px + 4 <= b) group(std::integral_constant<int, 4>());
  if (px + 2 <= b) group(std::integral_constant<int, 2>());
  if (px < b) group(std::integral_constant<int, 1>());
  for (px = b; px < bw; ++px) edge(px);
}

// The NCHW stage into the output: npix consecutive output pixels of nch
// channels, stage[p * pitch + c] -> y0[c * cpitch + p], by L x L
// transposes (pitch a multiple of L, stage aligned).
template <typename T>
void NchwFlush(const float* HWY_RESTRICT stage, int64_t pitch, int64_t npix, int64_t nch, T* HWY_RESTRICT y0,
               int64_t cpitch) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<decltype(d)> t[hn::MaxLanes(d)];
  for (int64_t cv = 0; cv < nch; cv += L) {
    const int64_t lanes = std::min(L, nch - cv);
    T* HWY_RESTRICT yc = y0 + cv * cpitch;
    int64_t p = 0;
    for (; p + L <= npix; p += L) {
      for (int64_t i = 0; i < L; ++i) t[i] = hn::Load(d, stage + (p + i) * pitch + cv);
      Transpose(d, t);
      for (int64_t j = 0; j < lanes; ++j) StoreF(d, t[j], yc + j * cpitch + p);
    }
    if (p < npix) {  // the last < L pixels
      const int64_t rest = npix - p;
      for (int64_t i = 0; i < L; ++i) t[i] = i < rest ? hn::Load(d, stage + (p + i) * pitch + cv) : hn::Zero(d);
      Transpose(d, t);
      for (int64_t j = 0; j < lanes; ++j) StoreFN(d, t[j], yc + j * cpitch + p, rest);
    }
  }
}

// The whole convolution, inside an omp parallel region. ws: per-thread
// scratch of pl.scratch_floats (+ pl.stage_floats for NCHW) each.
template <typename T>
void NhwcConv(const simd::NhwcPlan& pl, int64_t N, const T* x, const T* w, const T* b, bool flip, float* wt,
              float* bias, float* ws, T* y) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  // Narrow mode arranges the weights itself, a tap row at a time.
  const bool narrow = std::is_same_v<T, float> && pl.narrow && !flip;
  const bool row_weights = narrow && pl.narrow_row_weights;
  // (Narrow mode reads the caller's bias as it is.)
  // Owned channel blocks arrange their own (below).
  if (!row_weights && !pl.owned)
    NhwcArrange(pl, w, narrow ? nullptr : b, flip, wt, b && !narrow ? bias : nullptr);  // ends with a barrier
  float* scratch = ws + int64_t(omp_get_thread_num()) * (pl.scratch_floats + pl.stage_floats);
  float* stage = scratch + pl.scratch_floats;  // NCHW only
  const int64_t tasks = N * pl.nby * pl.nbx * pl.ncb;
  const T* xend = x + N * g.src_h * g.src_w * g.cin;
  const int64_t ext_h = (g.kh - 1) * g.dh + 1;
  bool pad_cols_zeroed = false;  // whole mode: this thread's scratch padding columns
  const bool in_place = std::is_same_v<T, float> && pl.in_place;
  // What reads the input itself, no scratch copy: in-place mode and the
  // clipped tiles (fp32 in place, or bf16 in pairs).
  const bool no_copy = in_place || pl.clipped;
  // Streaming stores need every output vector aligned: C and the channel
  // blocks multiples of 16 (plan_nhwc) and the tensor on a 64-byte
  // boundary. And whole-line vectors (AVX-512): narrower ones fill a line
  // from 2 or 4 pixel groups a row apart (channel vectors outer), which
  // the write-combining buffers may evict half written; unmeasured.
  const bool stream = std::is_same_v<T, float> && pl.stream && (reinterpret_cast<uintptr_t>(y) & 63) == 0 &&
                      int64_t(hn::Lanes(hn::ScalableTag<float>())) * int64_t(sizeof(float)) == 64;
  // In-place mode: output columns [int_lo, int_hi) of the image read no padding.
  const int64_t last_tap = (g.kw - 1) * g.dw;
  const int64_t int_lo = g.pl <= 0 ? 0 : simd::ceil_div(g.pl, g.sw);
  const int64_t int_hi = g.in_w - 1 - last_tap + g.pl < 0 ? 0 : (g.in_w - 1 - last_tap + g.pl) / g.sw + 1;
  auto run_task = [&](int64_t task) {
    int64_t t = task;
    const int64_t cb_i = t % pl.ncb;
    t /= pl.ncb;
    const int64_t bx = t % pl.nbx;
    t /= pl.nbx;
    const int64_t by = t % pl.nby, n = t / pl.nby;
    const int64_t oy0 = by * pl.ry, ry = std::min(pl.ry, g.out_h - oy0);
    const int64_t ox0 = bx * pl.bw, bw = std::min(pl.bw, g.out_w - ox0);
    const int64_t c0 = cb_i * pl.cb, nc = std::min(pl.cb, g.c - c0);
    const int64_t wp = (bw - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const int64_t ix0 = ox0 * g.sw - g.pl;
    const int64_t vplane = pl.slots * wp * L;
    const T* xn = x + n * g.src_h * g.src_w * g.cin;
    const float* wtc = wt + c0;
    const float* bc = b ? bias + c0 : nullptr;
    // Input row iy lives in slot (iy - base) mod slots.
    const int64_t base = oy0 * g.sh - g.pt;
    if constexpr (!std::is_same_v<T, float>) {
      if (pl.pairs && !pl.clipped) {
        T* yt = y + (n * g.out_h + oy0) * g.out_w * g.c + ox0 * g.c + c0;
        for (int64_t r = 0; r < ry; ++r, yt += g.out_w * g.c) {
          if (g.kw == 3)
            NhwcPairRow<3>(pl, xn, wt, b ? bias : nullptr, base + r, ox0, bw, c0, nc, yt);
          else
            NhwcPairRow<0>(pl, xn, wt, b ? bias : nullptr, base + r, ox0, bw, c0, nc, yt);
        }
        return;
      }
    }
    if constexpr (std::is_same_v<T, float>) {
      if (narrow) {
        NhwcNarrow(pl, xn + c0, w + c0 * g.kh * g.kw, w + g.c * g.kh * g.kw, row_weights ? nullptr : wtc, b ? b + c0 : nullptr, oy0, ry,
                   ox0, bw, nc, scratch, y + n * g.out_h * g.out_w * g.c + c0);
        return;
      }
    }
    auto rows_of = [&](int64_t r) {
      const int64_t top = (oy0 + r) * g.sh - g.pt;
      const int64_t i_lo = top >= 0 ? 0 : simd::ceil_div(-top, g.dh);
      const int64_t i_hi = top >= g.in_h ? 0 : std::min(g.kh, (g.in_h - 1 - top) / g.dh + 1);
      int64_t i_first = i_lo, i_step = 1;
      if (g.uh > 1) {  // tap rows on source rows: (top + i*dh) % uh == 0, periodic in i
        i_step = g.uh / std::gcd(g.uh, g.dh);
        while (i_first < i_lo + i_step && (top + i_first * g.dh) % g.uh != 0) ++i_first;
        if (i_first >= i_lo + i_step) i_first = i_hi;  // none
      }
      return NhwcRows{(top - base) % pl.slots, pl.slots, wp * L, i_first, std::max(i_first, i_hi), i_step, g.c};
    };
    // Output row r, channels [ca, cz) of the block: into y (NHWC), or into
    // the stage (NCHW) at row srow with pixel pitch spitch.
    auto row_all_c = [&](int64_t r, int64_t ca, int64_t cz, NhwcPrefetch& pf, int64_t srow = 0,
                         int64_t spitch = 0) {
      NhwcRows rows = rows_of(r);
      auto run_with = [&](auto in_place_tag, const float* src, int64_t splane, int64_t cols, auto* yrow) {
        constexpr bool kInPlace = decltype(in_place_tag)::value;
        if constexpr (kInPlace) {  // at most 9 taps, or up to 5x5 (plan_nhwc)
          if (g.kw == 3) return NhwcRowAllC<3, true>(pl, src, splane, rows, wtc, bc, cols, ca, cz, yrow, pf);
          if (g.kw == 5) return NhwcRowAllC<5, true>(pl, src, splane, rows, wtc, bc, cols, ca, cz, yrow, pf);
          return NhwcRowAllC<0, true>(pl, src, splane, rows, wtc, bc, cols, ca, cz, yrow, pf);
        } else {
          switch (g.kw) {  // compile-time tap loops for the common widths
            case 3:
              return NhwcRowAllC<3, false>(pl, src, splane, rows, wtc, bc, cols, ca, cz, yrow, pf);
            case 5:
              return NhwcRowAllC<5, false>(pl, src, splane, rows, wtc, bc, cols, ca, cz, yrow, pf);
            case 7:
              return NhwcRowAllC<7, false>(pl, src, splane, rows, wtc, bc, cols, ca, cz, yrow, pf);
            default:
              return NhwcRowAllC<0, false>(pl, src, splane, rows, wtc, bc, cols, ca, cz, yrow, pf);
          }
        }
      };
      auto run = [&](auto* yrow) { run_with(std::false_type(), scratch, vplane, bw, yrow); };
      if (no_copy) {
        // Tap row i reads input row top + i*dh of the image, rows
        // src_w * cin elements apart, pixels cin apart.
        rows.pix = g.cin;
        rows.rel0 = (oy0 + r) * g.sh - g.pt, rows.row_floats = g.src_w * g.cin, rows.ostride = g.c;
        rows.stream = stream && in_place && !pl.clipped;  // the in-place rows' NhwcPixels
      }
      auto yrow_nhwc = [&] { return y + ((n * g.out_h + oy0 + r) * g.out_w + ox0) * g.c + c0 + ca; };
      if (pl.clipped) {  // short rows: whole, in edge-clipped tiles
        T* yrow = yrow_nhwc();
        const T* xc = xn + c0;
        switch (g.kw * 2 + int(g.sw == 2)) {  // kw 3, 5, 7 (or wider, below) at stride 1, 3 or 5 at stride 2 (plan_nhwc)
          case 6:
            NhwcRowClipped<3, 1>(pl, xc, rows, wtc, bc, ox0, bw, ca, cz, yrow, pf);
            break;
          case 10:
            NhwcRowClipped<5, 1>(pl, xc, rows, wtc, bc, ox0, bw, ca, cz, yrow, pf);
            break;
          case 7:
            NhwcRowClipped<3, 2>(pl, xc, rows, wtc, bc, ox0, bw, ca, cz, yrow, pf);
            break;
          case 11:
            NhwcRowClipped<5, 2>(pl, xc, rows, wtc, bc, ox0, bw, ca, cz, yrow, pf);
            break;
          case 14:
            NhwcRowClipped<7, 1>(pl, xc, rows, wtc, bc, ox0, bw, ca, cz, yrow, pf);
            break;
          default:  // kw > 7 on an image at most 7 wide: the whole row (bw = out_w)
            NhwcRowStationary(pl, xc, rows, wtc, bc, ca, cz, yrow, pf);
            break;
        }
        return pf.rest();
      }
      if constexpr (std::is_same_v<T, float>) {
        if (in_place) {
          // Columns [a, b) of the block have their whole window inside the
          // input and take the register-window compute, the others (the
          // padding columns) NhwcEdgeColumn.
          float* yrow = yrow_nhwc();
          const float* xc = xn + c0;
          const int64_t a = std::min(bw, std::max<int64_t>(0, int_lo - ox0));
          const int64_t b = std::max(a, std::min(bw, int_hi - ox0));
          for (int64_t px = 0; px < a; ++px) NhwcEdgeColumn(pl, xc, rows, wtc, bc, ox0 + px, ca, cz, yrow + px * g.c);
          if (a < b) {
            run_with(std::true_type(), xc + ((ox0 + a) * g.sw - g.pl) * g.cin, L, b - a, yrow + a * g.c);
          } else {
            pf.rest();
          }
          for (int64_t px = b; px < bw; ++px) NhwcEdgeColumn(pl, xc, rows, wtc, bc, ox0 + px, ca, cz, yrow + px * g.c);
          return;
        }
      }
      if (g.nchw) {
        rows.ostride = spitch;
        return run(stage + srow * bw * spitch);
      }
      rows.ostride = g.c;
      return run(y + ((n * g.out_h + oy0 + r) * g.out_w + ox0) * g.c + c0 + ca);
    };
    // NCHW: output channel c of the block at pixel p of the image.
    const int64_t ohw = g.out_h * g.out_w;
    auto nchw_out = [&](int64_t c, int64_t p) { return y + (n * g.c + c0 + c) * ohw + p; };
    if (pl.whole) {
      // The task's whole window fits: copy it, then walk channel vectors
      // outside and rows inside, so a vector's weights and rows stay in L1
      // for all its rows (small images with many channels: the row-major
      // order reloaded all channels' weights from L2 for every row).
      const int64_t rows_in = (ry - 1) * g.sh + ext_h;
      // Whole mode has one column block, so the padding columns sit at the
      // same places in every task: zeroed once per thread and call, not per
      // row (on 7x7 images 6 of 13 columns; 7 % of the time).
      if (!pad_cols_zeroed && !in_place) {
        const NhwcInside inside(ix0, wp, g.in_w);
        for (int64_t row = 0; row < pl.slots; ++row)
          NhwcZeroPadCols(scratch + row * wp * L, simd::ceil_div(pl.cb, L), vplane, inside, wp);
        pad_cols_zeroed = true;
      }
      const NhwcInside inside(ix0, wp, g.in_w);
      const int64_t iy_lo = std::max<int64_t>(base, 0), iy_hi = std::min(base + rows_in, g.in_h);
      if (in_place) {
        // nothing to copy
      } else if (g.nchw && g.uh == 1 && g.uw == 1 && inside.lo == -ix0 && inside.hi == g.in_w - ix0) {
        if (iy_lo < iy_hi) NhwcCopyRowsNchw(g, xn, xend, iy_lo, iy_hi, base, ix0, wp, c0, nc, vplane, scratch);
      } else {
        for (int64_t iy = base; iy < base + rows_in; ++iy)
          NhwcCopyRow(pl, xn, xend, iy, ix0, wp, c0, nc, vplane, scratch + (iy - base) * wp * L, true);
      }
      // Output only: the input is in the scratch already, or read in place
      // unprefetched (small images; in place with a prefetch is untried).
      NhwcPrefetch opf;
      for (int64_t ca = 0; ca < nc; ca += 8 * L) {
        const int64_t cz = std::min(nc, ca + 8 * L);
        if (g.nchw) {  // the group's rows into the stage, then out as whole planes
          const int64_t spitch = simd::round_up(cz - ca, L);
          for (int64_t r = 0; r < ry; ++r) row_all_c(r, ca, cz, opf, r, spitch);
          NchwFlush(stage, spitch, ry * bw, cz - ca, nchw_out(ca, oy0 * g.out_w), ohw);
          continue;
        }
        for (int64_t r = 0; r < ry; ++r) {
          // The next (row, channel block) this loop writes.
          const bool last = r + 1 == ry;
          const int64_t nr = last ? 0 : r + 1, na = last ? cz : ca, nz = std::min(nc, na + 8 * L);
          opf = NhwcPrefetch();
          if (na < nc)
            opf.output(reinterpret_cast<const char*>(y + ((n * g.out_h + oy0 + nr) * g.out_w + ox0) * g.c + c0 + na),
                       bw, (nz - na) * int64_t(sizeof(T)), g.c * int64_t(sizeof(T)),
                       simd::ceil_div(cz - ca, L) * std::max<int64_t>(1, bw / 10));
          row_all_c(r, ca, cz, opf);
        }
      }
      return;
    }
    // The source bytes of the rows output row r copies or reads in place
    // (after r - 1): one contiguous span per row when the block holds all
    // channels, else a run of the block's channels per pixel.
    NhwcPrefetch pf;
    const int64_t groups = simd::ceil_div(nc, L) * std::max<int64_t>(1, bw / 10);
    // first: all the rows of output row r's window, for a task's first row
    // read in place, which no earlier row prefetched (tasks of one row
    // prefetched nothing: nhwc_even_rows gives 3 threads 896 of them on 16
    // x 96x112x112 at stride 2; Zen 4, 3 threads, batch 16, 4 interleaved
    // runs, the 8 stride-2 rows of MobileNetV2 and EfficientNet-B0: 1.02-1.37x;
    // 2 threads, batch 1, 0.88-1.06x, geomean 1.02x).
    auto prefetch_for = [&](int64_t r, bool first = false) -> NhwcPrefetch& {
      pf = NhwcPrefetch();
      const int64_t top = (oy0 + r) * g.sh - g.pt;
      const int64_t iy_lo = std::max<int64_t>({0, top, first ? top : top + ext_h - g.sh});
      const int64_t iy_hi = std::min(g.in_h, top + ext_h);
      if (r >= ry || g.nchw) return pf;
      if (!stream)  // a prefetch for writing would bring the lines in
        pf.output(reinterpret_cast<const char*>(y + ((n * g.out_h + oy0 + r) * g.out_w + ox0) * g.c + c0), bw,
                  nc * int64_t(sizeof(T)), g.c * int64_t(sizeof(T)), groups);
      // The copy's input at stride 1 only: at stride 2 (two rows of input
      // per output row) it made mnv2_96x112_s2 25 % slower and effb0 5 %:
      // the prefetches stall once the misses in flight are at their limit.
      // Rows read in place, at any stride: their loads walk a row's pixels
      // one channel vector at a time, which no hardware prefetcher
      // follows. Stride 2 in place lost to the copy without it (0.78-0.96x)
      // and gains with it (simd_plan.h). Channel blocks prefetch their
      // channels of each pixel: the thread-owned blocks of 7x7 images at
      // batch 1, Zen 4, 2 threads, 5 runs, 1.04-1.07x (in-place blocks at
      // stride 2, k5 on rows of 672 channels or more, unmeasured).
      if ((!no_copy && (g.sh > 1 || nc != g.cin)) || g.m != 1 || g.uh > 1 || g.uw > 1 || iy_lo >= iy_hi) return pf;
      const int64_t x_lo = std::max<int64_t>(0, ix0), x_hi = std::min(g.in_w, ix0 + wp);
      if (x_lo >= x_hi) return pf;
      // All the new rows when they are whole, else the first one.
      const bool whole_rows = x_lo == 0 && x_hi == g.in_w;
      const int64_t pixels = whole_rows ? (iy_hi - iy_lo - 1) * g.src_w + x_hi - x_lo : x_hi - x_lo;
      pf.in.set(xn + (iy_lo * g.src_w + x_lo) * g.cin + c0, pixels, nc * int64_t(sizeof(T)), g.cin * int64_t(sizeof(T)),
                groups);
      return pf;
    };
    int64_t next_in = base;  // first input row not copied yet
    // Not for pixel-major rows (1D: one row per task, so this would be
    // its only prefetch, input and output), whose loads walk the input in
    // order: all of a task's input at once (67 pixels of 8 KB on Mamba's
    // long row) was 0.80-0.91x of none (Zen 4, 2 threads, batch 1, the 3
    // Mamba shapes, pixel-major, two sets of 3-4 interleaved runs).
    if (no_copy && !pl.pixel_major) prefetch_for(0, true).rest();
    for (int64_t r = 0; r < ry; ++r) {
      const int64_t top = (oy0 + r) * g.sh - g.pt;
      if (!no_copy)
        for (int64_t iy = std::max(next_in, top); iy < top + ext_h; ++iy)
          NhwcCopyRow(pl, xn, xend, iy, ix0, wp, c0, nc, vplane, scratch + ((iy - base) % pl.slots) * wp * L);
      next_in = top + ext_h;
      if (g.nchw) {
        const int64_t spitch = simd::round_up(nc, L);
        row_all_c(r, 0, nc, prefetch_for(r + 1), 0, spitch);
        NchwFlush(stage, spitch, bw, nc, nchw_out(0, (oy0 + r) * g.out_w + ox0), ohw);
        continue;
      }
      row_all_c(r, 0, nc, prefetch_for(r + 1));
    }
  };
  if (pl.owned) {
    // Thread-owned channel blocks: arrange this thread's weights, then
    // every image and row of its block (nby = nbx = 1: task n * ncb + blk).
    const int nt = omp_get_num_threads();
    for (int64_t blk = omp_get_thread_num(); blk < pl.ncb; blk += nt) {
      NhwcArrangeRange(pl, w, b, flip, wt, b ? bias : nullptr, blk * pl.cb,
                       blk + 1 == pl.ncb ? pl.cp : (blk + 1) * pl.cb);
      for (int64_t n = 0; n < N; ++n) run_task(n * pl.ncb + blk);
    }
    if (stream) hwy::FlushStream();
    return;
  }
  // nowait: the end of the parallel region is the barrier (libgomp wakes
  // the team at each one, a futex syscall).
#pragma omp for schedule(dynamic, 1) nowait
  for (int64_t task = 0; task < tasks; ++task) run_task(task);
  // Streaming stores are weakly ordered: visible before the region ends.
  if (stream) hwy::FlushStream();
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DWCONV_CPU_NHWC_INL_H_
