// Per-target NCHW "flat" engine (see FlatPlan in simd_plan.h): copy-in of a
// block of phase planes, the flat convolution, and the flat grad-weight dot
// products. Included by simd_fwd_nchw.cpp, simd_dgrad_nchw.cpp and
// simd_wgrad_nchw.cpp once per Highway target.
#if defined(DWCONV_CPU_FLAT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DWCONV_CPU_FLAT_INL_H_
#undef DWCONV_CPU_FLAT_INL_H_
#else
#define DWCONV_CPU_FLAT_INL_H_
#endif

#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Vectors per flat block: 8 accumulators fit every target's register file.
constexpr int kFlatB = 8;

// Copies output rows [oy0, oy0 + rows) worth of input into the phase planes
// at buf (fp32, zero padded). Rows or columns of V that fall outside the
// source (or between upsampled samples) are zero.
// Stride 2 along W, fp32: one pass over a source row splits even and odd
// columns into the two phase planes (LoadInterleaved2), instead of two
// strided scalar passes. Source column sx lands at x = sx + left,
// plane x % 2, column x / 2.
inline void CopyRowStride2(const simd::FlatPlan& f, const float* HWY_RESTRICT srow, float* HWY_RESTRICT d0,
                           float* HWY_RESTRICT d1) {
  std::memset(d0, 0, size_t(f.wq) * sizeof(float));
  std::memset(d1, 0, size_t(f.wq) * sizeof(float));
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  // Vector part: sx with sx + left even, c = (sx + left) / 2 in [0, wq - L].
  int64_t sx = (f.left % 2 + 2) % 2;  // first sx with sx + left even (left may be negative)
  while (sx + f.left < 0) sx += 2;
  const int64_t v0 = sx;
  for (; sx + 2 * L <= f.src_w && (sx + f.left) / 2 + L <= f.wq; sx += 2 * L) {
    hn::Vec<decltype(d)> ev, od;
    hn::LoadInterleaved2(d, srow + sx, ev, od);
    const int64_t c = (sx + f.left) / 2;
    hn::StoreU(ev, d, d0 + c);
    hn::StoreU(od, d, d1 + c);
  }
  const int64_t v1 = sx;
  auto one = [&](int64_t s) {
    const int64_t x = s + f.left;
    if (x < 0 || x / 2 >= f.wq) return;
    (x % 2 == 0 ? d0 : d1)[x / 2] = srow[s];
  };
  for (int64_t s = 0; s < v0; ++s) one(s);
  for (int64_t s = v1; s < f.src_w; ++s) one(s);
}

template <typename T>
void CopyIn(const simd::FlatPlan& f, const T* HWY_RESTRICT src, int64_t oy0, int64_t rows, float* HWY_RESTRICT buf) {
  const int64_t prow = rows + f.rimax;
  if constexpr (std::is_same_v<T, float>) {
    if (f.sw == 2 && f.uw == 1) {
      for (int64_t r = 0; r < prow; ++r)  // source rows in increasing order
        for (int64_t ph = 0; ph < f.sh; ++ph) {
          float* d0 = buf + (ph * 2 + 0) * f.plane + r * f.wq;
          float* d1 = buf + (ph * 2 + 1) * f.plane + r * f.wq;
          const int64_t y = f.sh * (oy0 + r) + ph - f.top;
          if (y < 0 || y % f.uh != 0 || y / f.uh >= f.src_h) {
            std::memset(d0, 0, size_t(f.wq) * sizeof(float));
            std::memset(d1, 0, size_t(f.wq) * sizeof(float));
          } else {
            CopyRowStride2(f, src + (y / f.uh) * f.src_w, d0, d1);
          }
        }
      return;
    }
  }
  for (int64_t r = 0; r < prow; ++r)  // source rows in increasing order
    for (int64_t ph = 0; ph < f.sh; ++ph)
      for (int64_t pw = 0; pw < f.sw; ++pw) {
        float* dst = buf + (ph * f.sw + pw) * f.plane + r * f.wq;
        const int64_t y = f.sh * (oy0 + r) + ph - f.top;  // row in the upsampled source
        if (y < 0 || y % f.uh != 0 || y / f.uh >= f.src_h) {
          std::memset(dst, 0, size_t(f.wq) * sizeof(float));
          continue;
        }
        const T* srow = src + (y / f.uh) * f.src_w;
        // Column c reads upsampled source column x = sw*c + pw - left.
        if (f.sw == 1 && f.uw == 1) {
          const int64_t x0 = pw - f.left;  // x = c + x0
          const int64_t c_lo = std::min(f.wq, std::max<int64_t>(0, -x0));
          const int64_t c_hi = std::max(c_lo, std::min(f.wq, f.src_w - x0));
          if (c_lo > 0) std::memset(dst, 0, size_t(c_lo) * sizeof(float));
          ConvertIn(srow + c_lo + x0, dst + c_lo, c_hi - c_lo);
          if (c_hi < f.wq) std::memset(dst + c_hi, 0, size_t(f.wq - c_hi) * sizeof(float));
        } else if (f.uw == 1) {
          // sw > 1: c = (sx + left - pw) / sw for sx = sw*c + pw - left.
          std::memset(dst, 0, size_t(f.wq) * sizeof(float));
          const int64_t x0 = pw - f.left;
          int64_t c = x0 >= 0 ? 0 : simd::ceil_div(-x0, f.sw);
          for (int64_t sx = f.sw * c + x0; c < f.wq && sx < f.src_w; ++c, sx += f.sw) dst[c] = ToF(srow[sx]);
        } else {
          // sw == 1, upsampled: source column s lands at c = uw*s + left - pw.
          std::memset(dst, 0, size_t(f.wq) * sizeof(float));
          const int64_t c0 = f.left - pw;
          const int64_t s0 = c0 >= 0 ? 0 : simd::ceil_div(-c0, f.uw);
          for (int64_t s = s0, c = f.uw * s0 + c0; s < f.src_w && c < f.wq; ++s, c += f.uw) dst[c] = ToF(srow[s]);
        }
      }
}

// Tap offsets into the plane buffer: off(i, j) = rowoff[i] + coloff[j].
struct TapOffsets {
  int64_t* rowoff;
  int64_t* coloff;
};
inline void MakeOffsets(const simd::FlatPlan& f, TapOffsets t) {
  for (int64_t i = 0; i < f.kh; ++i) t.rowoff[i] = ((i * f.dh) % f.sh) * f.sw * f.plane + ((i * f.dh) / f.sh) * f.wq;
  for (int64_t j = 0; j < f.kw; ++j) t.coloff[j] = ((j * f.dw) % f.sw) * f.plane + (j * f.dw) / f.sw;
}

// What the flat convolution prefetches while it runs, spread over its
// blocks of kFlatB vectors: the destination CopyOut writes next (otherwise
// its stores miss to DRAM one after another) and the next task's input.
struct FlatPrefetch {
  simd::PrefetchSpan out, in;
  HWY_INLINE void step() { out.step<1>(), in.step<0>(); }
};

// out[q] = init(q) + sum_{i,j} w[i*kw + j] * buf[q + rowoff[i] + coloff[j]] for q in [0, nq),
// nq a multiple of kFlatB vectors. init: bias (accumulate = false) or out itself.
template <int KW>
HWY_NOINLINE void FlatConv(const simd::FlatPlan& f, const TapOffsets& t, const float* HWY_RESTRICT buf,
                           const float* HWY_RESTRICT w, float bias, bool accumulate, int64_t nq,
                           float* HWY_RESTRICT out, FlatPrefetch pf) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t kw = KW > 0 ? KW : f.kw;
  for (int64_t q = 0; q < nq; q += kFlatB * L) {
    pf.step();
    hn::Vec<decltype(d)> acc[kFlatB];
    if (accumulate) {
      for (int b = 0; b < kFlatB; ++b) acc[b] = hn::LoadU(d, out + q + b * L);
    } else {
      for (int b = 0; b < kFlatB; ++b) acc[b] = hn::Set(d, bias);
    }
    for (int64_t i = 0; i < f.kh; ++i) {
      const float* HWY_RESTRICT row = buf + t.rowoff[i] + q;
      const float* HWY_RESTRICT wr = w + i * kw;
      for (int64_t j = 0; j < kw; ++j) {
        const float* HWY_RESTRICT src = row + (KW > 0 ? j : t.coloff[j]);
        const auto wv = hn::Set(d, wr[j]);
        for (int b = 0; b < kFlatB; ++b) acc[b] = hn::MulAdd(wv, hn::LoadU(d, src + b * L), acc[b]);
      }
    }
    for (int b = 0; b < kFlatB; ++b) hn::StoreU(acc[b], d, out + q + b * L);
  }
}

// The flat convolution of output rows [0, rows) of a block into out.
// pf: spans to prefetch (byte ranges; empty: none), spread over the blocks.
struct FlatSpans {
  const void* out = nullptr;
  int64_t out_bytes = 0;
  const void* in = nullptr;
  int64_t in_bytes = 0;
};
inline void RunFlatConv(const simd::FlatPlan& f, const TapOffsets& t, const float* buf, const float* w, float bias,
                        bool accumulate, int64_t rows, float* out, const FlatSpans& spans = FlatSpans()) {
  const bool contiguous = f.sw == 1 && f.dw == 1;
  const int64_t nq = simd::round_up(rows * f.wq, simd::kQBlock);
  FlatPrefetch pf;
  const int64_t blocks = nq / (kFlatB * int64_t(hn::Lanes(hn::ScalableTag<float>())));
  if (spans.out) pf.out.set(spans.out, spans.out_bytes, blocks);
  if (spans.in) pf.in.set(spans.in, spans.in_bytes, blocks);
  // Contiguous taps (stride 1, dilation 1 along W): compile-time widths.
  if (contiguous) {
    switch (f.kw) {
      case 3:
        return FlatConv<3>(f, t, buf, w, bias, accumulate, nq, out, pf);
      case 5:
        return FlatConv<5>(f, t, buf, w, bias, accumulate, nq, out, pf);
      case 7:
        return FlatConv<7>(f, t, buf, w, bias, accumulate, nq, out, pf);
      default:
        break;
    }
  }
  FlatConv<0>(f, t, buf, w, bias, accumulate, nq, out, pf);
}

// Rows [0, rows) of the flat output (pitch wq) to dst rows of pitch ow.
template <typename T>
void CopyOut(const simd::FlatPlan& f, const float* HWY_RESTRICT out, int64_t rows, T* HWY_RESTRICT dst) {
  for (int64_t r = 0; r < rows; ++r) ConvertOut(out + r * f.wq, dst + r * f.ow, f.ow);
}

// Flat dy (pitch wq, zero in columns >= ow and beyond the rows).
template <typename T>
void CopyFlatDy(const simd::FlatPlan& f, const T* HWY_RESTRICT dy, int64_t rows, int64_t nq, float* HWY_RESTRICT dst) {
  for (int64_t r = 0; r < rows; ++r) {
    ConvertIn(dy + r * f.ow, dst + r * f.wq, f.ow);
    std::memset(dst + r * f.wq + f.ow, 0, size_t(f.wq - f.ow) * sizeof(float));
  }
  if (nq > rows * f.wq) std::memset(dst + rows * f.wq, 0, size_t(nq - rows * f.wq) * sizeof(float));
}

// acc[i*kw + j] += sum_q dyf[q] * buf[q + off(i, j)], q in [0, nq), in groups
// of kG taps (one dy load feeds kG FMAs). fp32 within the block, fp64 across.
constexpr int kG = 8;
HWY_NOINLINE inline void FlatDots(const simd::FlatPlan& f, const TapOffsets& t, const float* HWY_RESTRICT buf,
                                  const float* HWY_RESTRICT dyf, int64_t nq, double* HWY_RESTRICT acc) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t kk = f.kh * f.kw;
  for (int64_t t0 = 0; t0 < kk; t0 += kG) {
    const int ng = int(std::min<int64_t>(kG, kk - t0));
    const float* HWY_RESTRICT src[kG];
    for (int g = 0; g < kG; ++g) {
      const int64_t tap = t0 + std::min(g, ng - 1);
      src[g] = buf + t.rowoff[tap / f.kw] + t.coloff[tap % f.kw];
    }
    hn::Vec<decltype(d)> a[kG];
    for (int g = 0; g < kG; ++g) a[g] = hn::Zero(d);
    for (int64_t q = 0; q < nq; q += L) {
      const auto dv = hn::LoadU(d, dyf + q);
      for (int g = 0; g < kG; ++g) a[g] = hn::MulAdd(dv, hn::LoadU(d, src[g] + q), a[g]);
    }
    for (int g = 0; g < ng; ++g) acc[t0 + g] += SumLanes(d, a[g]);
  }
}

// Weight of channel o as fp32, optionally flipped in both axes.
template <typename T>
void LoadWeights(const T* HWY_RESTRICT w, int64_t o, int64_t kk, bool flip, float* HWY_RESTRICT dst) {
  const T* src = w + o * kk;
  for (int64_t k = 0; k < kk; ++k) dst[flip ? kk - 1 - k : k] = ToF(src[k]);
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DWCONV_CPU_FLAT_INL_H_
