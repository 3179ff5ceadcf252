// Per-target NHWC direct convolution (multiplier 1), vectorised along C.
// Each task copies its input window (fp32, zero padded, channel pitch a
// multiple of 16) into a per-thread scratch; then R = 8/4/2/1 output pixels
// share each weight vector load, every load is a whole aligned vector and
// nothing is bounds checked. Used by simd_fwd_nhwc.cpp and
// simd_dgrad_nhwc.cpp (grad-input at stride 1 = forward over dy with the
// flipped kernel).
#if defined(DWCONV_CPU_NHWC_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DWCONV_CPU_NHWC_INL_H_
#undef DWCONV_CPU_NHWC_INL_H_
#else
#define DWCONV_CPU_NHWC_INL_H_
#endif

#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Input window of a task into scratch[r][x][0, cbp): input row
// iy0 + r, column ix0 + x, channels [c0, c0 + nc); zero outside.
template <typename T>
void NhwcCopyIn(const simd::NhwcPlan& pl, const T* HWY_RESTRICT xn, int64_t iy0, int64_t ix0, int64_t rows_in,
                int64_t wp, int64_t c0, int64_t nc, float* HWY_RESTRICT scratch) {
  const simd::NhwcGeom& g = pl.g;
  const int64_t cbp = pl.cbp;
  for (int64_t r = 0; r < rows_in; ++r) {
    float* HWY_RESTRICT dst = scratch + r * wp * cbp;
    const int64_t iy = iy0 + r;
    if (iy < 0 || iy >= g.in_h) {
      std::memset(dst, 0, size_t(wp * cbp) * sizeof(float));
      continue;
    }
    const T* HWY_RESTRICT srow = xn + iy * g.in_w * g.c + c0;
    for (int64_t x = 0; x < wp; ++x) {
      const int64_t ix = ix0 + x;
      float* HWY_RESTRICT d = dst + x * cbp;
      if (ix < 0 || ix >= g.in_w) {
        std::memset(d, 0, size_t(cbp) * sizeof(float));
        continue;
      }
      if (nc == cbp) {
        // Whole vectors (cbp is a multiple of 16 lanes or more): no call, no tail.
        const hn::ScalableTag<float> df;
        const int64_t L = int64_t(hn::Lanes(df));
        const T* HWY_RESTRICT sp = srow + ix * g.c;
        for (int64_t e = 0; e < cbp; e += L) hn::Store(LoadF(df, sp + e), df, d + e);
      } else {
        ConvertIn(srow + ix * g.c, d, nc);
        std::memset(d + nc, 0, size_t(cbp - nc) * sizeof(float));
      }
    }
  }
}

// R pixels (px0 + r) of output row `row` of the block, channel vector cv of
// the block; wt / bias already offset to the block's first channel.
template <int R, int KW, typename T>
HWY_INLINE void NhwcPixels(const simd::NhwcPlan& pl, const float* HWY_RESTRICT scratch, int64_t wp,
                           const float* HWY_RESTRICT wt, const float* HWY_RESTRICT bias, int64_t row, int64_t px0,
                           int64_t cv, int64_t nvalid, T* HWY_RESTRICT yrow) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const simd::NhwcGeom& g = pl.g;
  const int64_t cbp = pl.cbp, cp = pl.cp;
  hn::Vec<decltype(d)> acc[R];
  for (int r = 0; r < R; ++r) acc[r] = bias ? hn::Load(d, bias + cv) : hn::Zero(d);
  const int64_t pstep = g.sw * cbp;
  for (int64_t i = 0; i < g.kh; ++i) {
    const float* HWY_RESTRICT xr = scratch + ((row * g.sh + i * g.dh) * wp + px0 * g.sw) * cbp + cv;
    const float* HWY_RESTRICT wr = wt + i * (KW > 0 ? KW : g.kw) * cp + cv;
    const int64_t kw = KW > 0 ? KW : g.kw;
    for (int64_t j = 0; j < kw; ++j) {
      const auto wv = hn::Load(d, wr + j * cp);
      const float* HWY_RESTRICT xp = xr + j * g.dw * cbp;
      for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(wv, hn::Load(d, xp + r * pstep), acc[r]);
    }
  }
  if (nvalid >= L) {
    for (int r = 0; r < R; ++r) StoreF(d, acc[r], yrow + (px0 + r) * g.c + cv);
  } else {
    HWY_ALIGN float tmp[hn::MaxLanes(d)];
    for (int r = 0; r < R; ++r) {
      hn::Store(acc[r], d, tmp);
      T* dst = yrow + (px0 + r) * g.c + cv;
      for (int64_t e = 0; e < nvalid; ++e) FromF(tmp[e], dst + e);
    }
  }
}

template <int R, typename T>
HWY_INLINE void NhwcPixelsAllC(const simd::NhwcPlan& pl, const float* scratch, int64_t wp, const float* wt,
                               const float* bias, int64_t row, int64_t px0, int64_t nc, T* yrow) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  switch (pl.g.kw) {  // compile-time tap loops for the common widths
    case 3:
      for (int64_t cv = 0; cv < nc; cv += L) NhwcPixels<R, 3>(pl, scratch, wp, wt, bias, row, px0, cv, nc - cv, yrow);
      return;
    case 5:
      for (int64_t cv = 0; cv < nc; cv += L) NhwcPixels<R, 5>(pl, scratch, wp, wt, bias, row, px0, cv, nc - cv, yrow);
      return;
    case 7:
      for (int64_t cv = 0; cv < nc; cv += L) NhwcPixels<R, 7>(pl, scratch, wp, wt, bias, row, px0, cv, nc - cv, yrow);
      return;
    default:
      for (int64_t cv = 0; cv < nc; cv += L) NhwcPixels<R, 0>(pl, scratch, wp, wt, bias, row, px0, cv, nc - cv, yrow);
  }
}

// Weights [C][kh*kw] (storage type) -> [kh*kw][cp] fp32 (zero beyond C),
// optionally flipped; bias -> [cp]. Inside an omp parallel region.
template <typename T>
void NhwcArrange(const simd::NhwcPlan& pl, const T* w, const T* b, bool flip, float* wt, float* bias) {
  const int64_t kk = pl.g.kh * pl.g.kw, C = pl.g.c, cp = pl.cp;
#pragma omp for schedule(static)
  for (int64_t k = 0; k < kk; ++k) {
    float* dst = wt + (flip ? kk - 1 - k : k) * cp;
    for (int64_t c = 0; c < C; ++c) dst[c] = ToF(w[c * kk + k]);
    for (int64_t c = C; c < cp; ++c) dst[c] = 0.0f;
  }
  if (b) {
#pragma omp single
    {
      for (int64_t c = 0; c < C; ++c) bias[c] = ToF(b[c]);
      for (int64_t c = C; c < cp; ++c) bias[c] = 0.0f;
    }
  }
}

// The whole convolution, inside an omp parallel region. ws: per-thread
// scratch of pl.scratch_floats each.
template <typename T>
void NhwcConv(const simd::NhwcPlan& pl, int64_t N, const T* x, const T* w, const T* b, bool flip, float* wt,
              float* bias, float* ws, T* y) {
  const simd::NhwcGeom& g = pl.g;
  NhwcArrange(pl, w, b, flip, wt, b ? bias : nullptr);  // ends with a barrier
  float* scratch = ws + int64_t(omp_get_thread_num()) * pl.scratch_floats;
  const int64_t tasks = N * pl.nby * pl.nbx * pl.ncb;
#pragma omp for schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) {
    int64_t t = task;
    const int64_t cb_i = t % pl.ncb;
    t /= pl.ncb;
    const int64_t bx = t % pl.nbx;
    t /= pl.nbx;
    const int64_t by = t % pl.nby, n = t / pl.nby;
    const int64_t oy0 = by * pl.ry, ry = std::min(pl.ry, g.out_h - oy0);
    const int64_t ox0 = bx * pl.bw, bw = std::min(pl.bw, g.out_w - ox0);
    const int64_t c0 = cb_i * pl.cb, nc = std::min(pl.cb, g.c - c0);
    const int64_t rows_in = (ry - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const int64_t wp = (bw - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    NhwcCopyIn(pl, x + n * g.in_h * g.in_w * g.c, oy0 * g.sh - g.pt, ox0 * g.sw - g.pl, rows_in, wp, c0, nc, scratch);
    const float* wtc = wt + c0;
    const float* bc = b ? bias + c0 : nullptr;
    for (int64_t r = 0; r < ry; ++r) {
      T* yrow = y + ((n * g.out_h + oy0 + r) * g.out_w + ox0) * g.c + c0;
      int64_t px = 0;
      for (; px + 8 <= bw; px += 8) NhwcPixelsAllC<8>(pl, scratch, wp, wtc, bc, r, px, nc, yrow);
      if (px + 4 <= bw) NhwcPixelsAllC<4>(pl, scratch, wp, wtc, bc, r, px, nc, yrow), px += 4;
      if (px + 2 <= bw) NhwcPixelsAllC<2>(pl, scratch, wp, wtc, bc, r, px, nc, yrow), px += 2;
      if (px < bw) NhwcPixelsAllC<1>(pl, scratch, wp, wtc, bc, r, px, nc, yrow);
    }
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DWCONV_CPU_NHWC_INL_H_
