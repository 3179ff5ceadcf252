// SIMD grad-weight, NHWC, multiplier 1: vectorised along C; for each row of
// dy and tap row i, 4 taps j share each dy load (4 independent FMA chains)
// over the pixels where all 4 are inside, the rest one tap at a time. Sums
// run in fp32 over 8 rows, then fp64; per (channel block, chunk of rows)
// partials in the workspace are reduced in chunk order, the chunks depend on
// the shape only: bitwise the same result for any thread count. fp32, bf16.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_wgrad_nhwc.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kWG = 4;

// facc[(i*kw + j)*cb + c - c0] += sum over the valid pixels of row (n, oy)
// of dy[ox][c] * x[iy][ix][c], for channel vector c.
// Pixels ox in [oa, ob) only: callers walk a row in chunks of pixels with
// the channel vectors inside, so that a chunk's lines stay in L1.
template <class D, typename T>
HWY_INLINE void WgradRowVec(D d, const Shape& s, const T* HWY_RESTRICT dyr, const T* HWY_RESTRICT xn, int64_t oy,
                            int64_t i_lo, int64_t i_hi, int64_t oa, int64_t ob, int64_t c, int64_t cofs, int64_t cb,
                            float* HWY_RESTRICT facc) {
  const int64_t C = s.c, W = s.w, OW = s.out_w(), kw = s.kw;
  for (int64_t i = i_lo; i < i_hi; ++i) {
    const int64_t iy = oy * s.stride_h - s.pad_top + i * s.dil_h;
    const T* HWY_RESTRICT xr = xn + iy * W * C + c;
    for (int64_t j0 = 0; j0 < kw; j0 += kWG) {
      const int ng = int(std::min<int64_t>(kWG, kw - j0));
      TapRange rg[kWG];
      int64_t lo = oa, hi = ob;
      for (int g = 0; g < ng; ++g) {
        rg[g] = valid_outputs(OW, W, s.stride_w, s.pad_left, s.dil_w, j0 + g);
        rg[g].lo = std::max(rg[g].lo, oa), rg[g].hi = std::min(rg[g].hi, ob);
        if (rg[g].hi < rg[g].lo) rg[g].hi = rg[g].lo;
        lo = std::max(lo, rg[g].lo), hi = std::min(hi, rg[g].hi);
      }
      if (hi < lo) hi = lo;
      float* HWY_RESTRICT fa = facc + (i * kw + j0) * cb + cofs;
      if (ng == kWG) {
        hn::Vec<D> a[kWG];
        for (int g = 0; g < kWG; ++g) a[g] = hn::LoadU(d, fa + g * cb);
        for (int64_t ox = lo; ox < hi; ++ox) {
          const auto dv = LoadF(d, dyr + ox * C + c);
          const T* HWY_RESTRICT xp = xr + (ox * s.stride_w - s.pad_left + j0 * s.dil_w) * C;
          for (int g = 0; g < kWG; ++g) a[g] = hn::MulAdd(dv, LoadF(d, xp + g * s.dil_w * C), a[g]);
        }
        for (int g = 0; g < kWG; ++g) hn::StoreU(a[g], d, fa + g * cb);
      } else {
        lo = hi = 0;  // all pixels go through the single-tap loop below
      }
      // Remaining pixels of each tap: [rg.lo, lo) and [hi, rg.hi).
      for (int g = 0; g < ng; ++g) {
        auto a = hn::LoadU(d, fa + g * cb);
        const int64_t j = j0 + g;
        auto one = [&](int64_t ox) {
          a = hn::MulAdd(LoadF(d, dyr + ox * C + c), LoadF(d, xr + (ox * s.stride_w - s.pad_left + j * s.dil_w) * C),
                         a);
        };
        // [lo, hi) is inside [rg.lo, rg.hi) when not empty; otherwise all of rg is left.
        const bool inside = lo < hi;
        const int64_t a_hi = inside ? lo : rg[g].hi, b_lo = inside ? hi : rg[g].hi;
        for (int64_t ox = rg[g].lo; ox < a_hi; ++ox) one(ox);
        for (int64_t ox = b_lo; ox < rg[g].hi; ++ox) one(ox);
        hn::StoreU(a, d, fa + g * cb);
      }
    }
  }
}

template <typename T>
void WgradNhwcTyped(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradNhwcPlan& wp) {
  const Shape& s = p.shape;
  const int64_t C = s.c, H = s.h, W = s.w, OH = s.out_h(), OW = s.out_w(), KK = wp.kk, cb = wp.cb;
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* x = static_cast<const T*>(p.input);
  T* dw = static_cast<T*>(p.grad_weight);
  const int64_t tasks = wp.ncb * wp.chunks;
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 4> d4;
  const hn::CappedTag<float, 1> d1;
  const int64_t L = int64_t(hn::Lanes(d)), L4 = int64_t(hn::Lanes(d4));
#pragma omp parallel num_threads(ws.threads)
  {
    float* facc = reinterpret_cast<float*>(ws.get(omp_get_thread_num()));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t blk = task / wp.chunks, k = task % wp.chunks;
      const int64_t c0 = blk * cb, c1 = std::min(C, c0 + cb);
      const int64_t u0 = k * wp.units / wp.chunks, u1 = (k + 1) * wp.units / wp.chunks;
      double* dacc = partial + (blk * wp.chunks + k) * KK * cb;
      std::fill_n(dacc, KK * cb, 0.0);
      std::fill_n(facc, KK * cb, 0.0f);
      auto flush = [&] {
        for (int64_t e = 0; e < KK * cb; ++e) dacc[e] += double(facc[e]);
        std::fill_n(facc, KK * cb, 0.0f);
      };
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t n = u / OH, oy = u % OH;
        const int64_t base_y = oy * s.stride_h - s.pad_top;
        int64_t i_lo = base_y >= 0 ? 0 : simd::ceil_div(-base_y, s.dil_h);
        int64_t i_hi = base_y >= H ? 0 : std::min(s.kh, floor_div(H - 1 - base_y, s.dil_h) + 1);
        if (i_lo > i_hi) i_lo = i_hi;
        const T* dyr = dy + (n * OH + oy) * OW * C;
        const T* xn = x + n * H * W * C;
        constexpr int64_t kChunk = 32;  // pixels per chunk
        for (int64_t oa = 0; oa < OW; oa += kChunk) {
          const int64_t ob = std::min(OW, oa + kChunk);
          int64_t c = c0;
          for (; c + L <= c1; c += L) WgradRowVec(d, s, dyr, xn, oy, i_lo, i_hi, oa, ob, c, c - c0, cb, facc);
          for (; c + L4 <= c1; c += L4) WgradRowVec(d4, s, dyr, xn, oy, i_lo, i_hi, oa, ob, c, c - c0, cb, facc);
          for (; c < c1; ++c) WgradRowVec(d1, s, dyr, xn, oy, i_lo, i_hi, oa, ob, c, c - c0, cb, facc);
        }
        if ((u - u0) % 8 == 7) flush();
      }
      flush();
    }
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t blk = c / cb, cc = c % cb;
      for (int64_t e = 0; e < KK; ++e) {
        double sum = 0;
        for (int64_t k = 0; k < wp.chunks; ++k) sum += partial[((blk * wp.chunks + k) * KK + e) * cb + cc];
        FromF(float(sum), dw + c * KK + e);
      }
    }
  }
}

void WgradNhwc(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradNhwcPlan& wp) {
  if (p.dtype == DType::f32) {
    WgradNhwcTyped<float>(p, ws, partial, wp);
  } else {
    WgradNhwcTyped<hbf16>(p, ws, partial, wp);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(WgradNhwc);

namespace {
size_t partial_bytes(const simd::WgradNhwcPlan& wp) {
  return simd::align_up(size_t(wp.ncb * wp.chunks * wp.kk * wp.cb) * sizeof(double));
}
size_t thread_bytes(const simd::WgradNhwcPlan& wp) { return simd::align_up(size_t(wp.kk * wp.cb) * 4); }
int score(const Params& p) {
  return p.layout == Layout::nhwc && p.shape.multiplier == 1 && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape) ? 10 : -1;
}
size_t workspace(const Params& p) {
  const simd::WgradNhwcPlan wp = simd::plan_wgrad_nhwc(p.shape);
  return partial_bytes(wp) + simd::workspace_for(thread_bytes(wp), simd::thread_count(p));
}
void run(const Params& p) {
  const simd::WgradNhwcPlan wp = simd::plan_wgrad_nhwc(p.shape);
  const simd::Slices head = simd::slices(p, simd::kAlign);  // aligns the base
  double* partial = reinterpret_cast<double*>(head.base);
  const size_t pb = partial_bytes(wp);
  const size_t lost = size_t(head.base - static_cast<unsigned char*>(p.workspace));
  Params q = p;
  q.workspace = head.base + pb;
  q.workspace_bytes = p.workspace_bytes > lost + pb ? p.workspace_bytes - lost - pb : 0;
  const simd::Slices ws = simd::slices(q, thread_bytes(wp));
  DWCONV_HWY_CALL(WgradNhwc)(p, ws, partial, wp);
}
}  // namespace

std::vector<Kernel> simd_wgrad_nhwc_kernels() {
  return {{"cpu_wgrad_nhwc_vec", Device::cpu, Direction::grad_weight, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
