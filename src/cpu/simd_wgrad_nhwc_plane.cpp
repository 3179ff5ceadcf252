// SIMD NHWC grad-weight, multiplier 1, images whose padded plane fits half
// of L2: cpu_wgrad_nhwc_plane (WgradPlanePlan in simd_plan.h). A task is a
// group of 16 channels over a chunk of the batch. Per image and channel
// vector the x image goes into a zero-padded plane that stays in L1 or L2
// (its padding is written once per thread, as only the interior is ever
// copied), dy is read in place (fp32 whole vectors; else from a plane of
// its own), and the register-blocked sums of simd_wgrad-inl.h run over the
// image in bands of at most kWgFlushPx pixels with the accumulators in
// registers, while the next vector's x and dy lines are prefetched into L2
// a share per row. Sums run in fp32 over at most kWgFlushPx pixels, then
// in fp64 per task; task partials are reduced in
// chunk order and the chunks depend on the shape only, so the result is
// bitwise the same for any thread count. fp32 and bf16 storage.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_wgrad_nhwc_plane.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <omp.h>

#include <string>
#include <type_traits>

#include "cpu/parallel.h"
#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "cpu/simd_wgrad-inl.h"
#include "hwy/highway.h"

// Workspace (target-independent): the fp64 task partials, then per thread
// the x plane, the dy plane, the fp32 accumulators and the run's tables.
#ifndef DWCONV_CPU_SIMD_WGRAD_NHWC_PLANE_WS_
#define DWCONV_CPU_SIMD_WGRAD_NHWC_PLANE_WS_
namespace dwconv::cpu::simd {
inline size_t wgrad_plane_partial_bytes(const WgradPlanePlan& t) {
  return align_up(size_t(t.groups * t.chunks * t.acc_floats) * sizeof(double));
}
inline size_t wgrad_plane_thread_bytes(const WgradPlanePlan& t, const Shape& s) {
  const size_t floats = size_t(t.x_floats + t.dy_floats + t.acc_floats);
  const size_t table = size_t(s.out_h() * s.kh + 2 * s.out_h() + 2 * t.nj) * sizeof(int64_t);
  return align_up(floats * 4) + align_up(table);
}
inline size_t wgrad_plane_workspace(const Params& p, const WgradPlanePlan& t) {
  return shared_workspace(p, wgrad_plane_partial_bytes(t), wgrad_plane_thread_bytes(t, p.shape));
}
}  // namespace dwconv::cpu::simd
#endif  // DWCONV_CPU_SIMD_WGRAD_NHWC_PLANE_WS_

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <typename T>
void WgradPlaneTyped(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradPlanePlan& t) {
  const Shape& s = p.shape;
  const int64_t C = s.c, H = s.h, W = s.w, OH = s.out_h(), OW = s.out_w(), KK = t.kk, kh = s.kh, kw = s.kw;
  const int64_t G = simd::kWgPlaneGroup, hp = t.hp, wp = t.wp, pt = s.pad_top, pl = s.pad_left;
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* x = static_cast<const T*>(p.input);
  T* dw = static_cast<T*>(p.grad_weight);
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t tasks = t.groups * t.chunks, ni = t.ni;
  // The workspace holds planes and accumulators of G lanes: whole vectors.
  if (G % L != 0) throw BackendError("dwconv: cpu_wgrad_nhwc_plane needs 16 lanes a multiple of " + std::to_string(L));
  // Input rows and columns in the plane: padding never exceeds the
  // kernel's reach (simd_geometry), so they start at 0; a stride can leave
  // the last ones unread.
  const int64_t h_in = std::min(H, hp - pt), w_in = std::min(W, wp - pl);
  const WgSrc<T> xsrc{C, 1, x + s.n * H * W * C}, dsrc{C, 1, dy + s.n * OH * OW * C};
  const WgFns fns(ni, kw, t.nj, t.csw, t.cdw);
  // Accumulation bands of at most kWgFlushPx pixels (rows, or columns of a
  // long row); a vector's fp32 sums go to fp64 before a band would take
  // them past kWgFlushPx.
  const int64_t band_w = std::min(OW, simd::kWgFlushPx);
  const int64_t band_h = std::max<int64_t>(1, std::min(OH, simd::kWgFlushPx / band_w));
  // dw of a group's channels: its chunks' partials ([chunk][tap][16]
  // doubles) summed in chunk order, whatever thread ran them.
  auto write_group = [&](int64_t grp) {
    const int64_t c0 = grp * G, nc = std::min(G, C - c0);
    const double* pg = partial + grp * t.chunks * KK * G;
    for (int64_t cc = 0; cc < nc; ++cc)
      for (int64_t e = 0; e < KK; ++e) {
        double sum = pg[e * G + cc];
        for (int64_t k = 1; k < t.chunks; ++k) sum += pg[(k * KK + e) * G + cc];
        FromF(float(sum), dw + (c0 + cc) * KK + e);
      }
  };
  parallel_region(ws.threads, [&] {
    unsigned char* base = ws.get(omp_get_thread_num());
    float* xs = reinterpret_cast<float*>(base);
    float* dys = xs + t.x_floats;  // dy plane where dy is not read in place
    float* facc = dys + t.dy_floats;
    int64_t* xoff = reinterpret_cast<int64_t*>(base + simd::align_up(size_t(t.x_floats + t.dy_floats + t.acc_floats) * 4));
    int64_t* ilo = xoff + OH * kh;  // [OH]: tap rows [ilo, ihi) of output row r are inside the image
    int64_t* ihi = ilo + OH;
    int64_t* plo = ihi + OH;  // [nj]: pixels [plo, phi) see columns of tap chunk q
    int64_t* phi = plo + t.nj;
    // The padding of the plane: the copies write only the interior.
    const int64_t r1 = pt + h_in, q1 = pl + w_in;
    std::fill_n(xs, pt * wp * L, 0.0f);
    std::fill_n(xs + r1 * wp * L, (hp - r1) * wp * L, 0.0f);
    for (int64_t r = pt; r < r1; ++r) {
      std::fill_n(xs + r * wp * L, pl * L, 0.0f);
      std::fill_n(xs + (r * wp + q1) * L, (wp - q1) * L, 0.0f);
    }
    for (int64_t r = 0; r < OH; ++r) {
      const int64_t ty = r * s.stride_h - pt;
      ilo[r] = ty >= 0 ? 0 : simd::ceil_div(-ty, s.dil_h);
      ihi[r] = ty >= H ? 0 : std::min(kh, floor_div(H - 1 - ty, s.dil_h) + 1);
      for (int64_t i = 0; i < kh; ++i) xoff[r * kh + i] = (r * s.stride_h + i * s.dil_h) * wp * L;
    }
    for (int64_t q = 0; q < t.nj; ++q) simd::wgrad_chunk_pixels(s, -pl, OW, q * kw / t.nj, (q + 1) * kw / t.nj, &plo[q], &phi[q]);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t grp = task / t.chunks, k = task % t.chunks;
      const int64_t c0 = grp * G, nc = std::min(G, C - c0), nv = simd::ceil_div(nc, L);
      const int64_t n0 = k * s.n / t.chunks, n1 = (k + 1) * s.n / t.chunks;
      double* dacc = partial + task * KK * G;
      std::fill_n(dacc, KK * G, 0.0);
      std::fill_n(facc, KK * G, 0.0f);
      // Channel vector v's fp32 sums into fp64.
      auto flush = [&](int64_t v) {
        const hn::ScalableTag<double> dd;
        const hn::Rebind<float, decltype(dd)> dh2;
        const int64_t Ld = int64_t(hn::Lanes(dd));
        for (int64_t e = 0; e < KK; ++e)
          for (int64_t l = 0; l < L; l += Ld) {
            const int64_t o = e * G + v * L + l;
            hn::Store(hn::Add(hn::Load(dd, dacc + o), hn::PromoteTo(dd, hn::Load(dh2, facc + o))), dd, dacc + o);
          }
        for (int64_t e = 0; e < KK; ++e) std::fill_n(facc + e * G + v * L, L, 0.0f);
      };
      int64_t pending[simd::kWgPlaneGroup] = {};  // per vector: pixels summed in fp32 since its last flush
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t v = 0; v < nv; ++v) {
          const int64_t cv = c0 + v * L, ncv = std::min(L, C - cv);
          const T* xn = x + n * H * W * C + cv;
          for (int64_t iy = 0; iy < h_in; ++iy)
            WgCopyPixels(xn + iy * W * C, xsrc, ncv, w_in, xs + ((iy + pt) * wp + pl) * L, 0);
          // dy in place where a whole vector of fp32 is there to load and
          // the tap groups pass over it at most twice (dy_in_place); else
          // (bf16, the last vector of a partial group, many passes) a copy.
          WgRun a;
          const T* dyn = dy + n * OH * OW * C + cv;
          const bool in_place = std::is_same_v<T, float> && ncv == L && t.dy_in_place;
          if constexpr (std::is_same_v<T, float>) {
            if (in_place) a.dy = dyn, a.dstep = C, a.dpitch = OW * C;
          }
          if (!in_place) {
            for (int64_t oy = 0; oy < OH; ++oy) WgCopyPixels(dyn + oy * OW * C, dsrc, ncv, OW, dys + oy * OW * L, 0);
            a.dy = dys, a.dstep = L, a.dpitch = OW * L;
          }
          a.kh = kh;
          a.csw = t.csw, a.cdw = t.cdw;
          a.fa_i = kw * G, a.fa_j = G;
          const float* dy0 = a.dy;
          // The next vector's x and dy pixels (one line each, C apart) are
          // fetched into L2 a share per row while the first tap group of
          // each row band runs: a column walk that waits for every line
          // (the copy) reads DRAM at about half the rate of a contiguous
          // one on Zen 4.
          int64_t n_next = n, c_next = cv + L;  // the next unit: this task's, else the next task's first
          if (v + 1 == nv) n_next = n + 1, c_next = c0;
          if (n_next == n1 && task + 1 < tasks)
            n_next = ((task + 1) % t.chunks) * s.n / t.chunks, c_next = ((task + 1) / t.chunks) * G;
          WgPrefetch pf_x, pf_dy;  // spread over all OH rows: a share per row of each band's first call
          if (n_next < n1 || task + 1 < tasks) {
            pf_x = {reinterpret_cast<const char*>(x + n_next * H * W * C + c_next), H * W, C * int64_t(sizeof(T)), 0, OH};
            pf_dy = {reinterpret_cast<const char*>(dy + n_next * OH * OW * C + c_next), OH * OW, C * int64_t(sizeof(T)), 0,
                     OH};
          }
          for (int64_t r0 = 0; r0 < OH; r0 += band_h)
            for (int64_t x0 = 0; x0 < OW; x0 += band_w) {
              const int64_t nr = std::min(band_h, OH - r0), x1 = std::min(OW, x0 + band_w), px = nr * (x1 - x0);
              if (pending[v] > 0 && pending[v] + px > simd::kWgFlushPx) flush(v), pending[v] = 0;
              a.nr = nr, a.xoff = xoff + r0 * kh, a.ilo = ilo + r0, a.ihi = ihi + r0;
              if (x0 == 0 && pf_x.base != nullptr) {  // the rows' share, once per row band
                a.pf[0] = pf_x, a.pf[1] = pf_dy;
                a.pf[0].r0 = a.pf[1].r0 = r0;
              }
              for (int64_t i0 = 0; i0 < kh; i0 += ni) {
                const int64_t g = std::min(ni, kh - i0);
                for (int64_t q = 0; q < t.nj; ++q) {
                  const int64_t j0 = q * kw / t.nj, jn = (q + 1) * kw / t.nj - j0;
                  const int64_t lo = std::max(plo[q], x0), hi = std::min(phi[q], x1);
                  if (hi <= lo) continue;
                  a.bw = hi - lo;
                  a.dy = dy0 + r0 * a.dpitch + lo * a.dstep;
                  a.x = xs + (j0 * t.cdw + lo * t.csw) * L;
                  a.fa = facc + (i0 * kw + j0) * G + v * L;
                  fns.get(jn, g)(a, i0);
                  a.pf[0] = a.pf[1] = WgPrefetch{};  // by the band's first call only
                }
              }
              pending[v] += px;
            }
        }
      }
      for (int64_t v = 0; v < nv; ++v)
        if (pending[v] > 0) flush(v);
      if (t.chunks == 1) write_group(grp);  // the group's only partial, still in cache
    }
    if (t.chunks > 1) {
#pragma omp for schedule(static) nowait
      for (int64_t grp = 0; grp < t.groups; ++grp) write_group(grp);
    }
  });
}

void WgradPlane(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradPlanePlan& t) {
  if (p.dtype == DType::f32) {
    WgradPlaneTyped<float>(p, ws, partial, t);
  } else {
    WgradPlaneTyped<hbf16>(p, ws, partial, t);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(WgradPlane);

namespace {
size_t workspace(const Params& p) { return simd::wgrad_plane_workspace(p, simd::plan_wgrad_plane(p.shape)); }
void run(const Params& p) {
  const simd::WgradPlanePlan t = simd::plan_wgrad_plane(p.shape);
  const simd::SharedSlices c =
      simd::shared_slices(p, simd::wgrad_plane_partial_bytes(t), simd::wgrad_plane_thread_bytes(t, p.shape));
  DWCONV_HWY_CALL(WgradPlane)(p, c.ws, reinterpret_cast<double*>(c.shared), t);
}
// Ahead of the scratch engine (10) where a channel vector's padded image
// fits the plane budget.
int score(const Params& p) {
  const bool ok = p.layout == Layout::nhwc && p.shape.multiplier == 1 && simd::simd_dtype(p.dtype) &&
                  simd::simd_geometry(p.shape) && simd::wgrad_plane_fits(p.shape);
  return ok ? 11 : -1;
}
}  // namespace

std::vector<Kernel> simd_wgrad_nhwc_plane_kernels() {
  return {{"cpu_wgrad_nhwc_plane", Device::cpu, Direction::grad_weight, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
