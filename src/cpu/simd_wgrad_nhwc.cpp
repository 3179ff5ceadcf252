// SIMD grad-weight, multiplier 1, vectorised along C: cpu_wgrad_nhwc_vec and,
// with x and dy rows transposed from their channel planes (blocks of at
// most 64 channels), cpu_wgrad_nchw_blocked:
//   dw[c][i][j] = sum over n, oy, ox of dy[n][oy][ox][c] * x[n][oy*sh + i*dh - pt][ox*sw + j*dw - pl][c].
// A task (channel block, chunk of output rows) walks runs of a few output
// rows. The x rows of a run sit in a rolling per-thread scratch (fp32, zero
// padded, one plane per channel vector), so each x row is copied once per
// task and the compute has no bounds checks; the run's dy rows are copied
// the same way. Per channel vector, group of tap rows and chunk of at most
// 8 taps, the accumulators stay in registers over the run and every loaded
// x vector feeds all the taps it belongs to (WgPixels, WgBlock). Sums run
// in fp32 over about kWgFlushPx pixels, then in fp64 per task; task
// partials are reduced in chunk order and the chunks depend on the shape
// only, so the result is bitwise the same for any thread count. fp32, bf16.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_wgrad_nhwc.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <utility>

#include "cpu/parallel.h"
#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "cpu/simd_transpose-inl.h"
#include "cpu/simd_wgrad-inl.h"
#include "hwy/highway.h"

// Target-independent blocking (this file is compiled once per target).
#ifndef DWCONV_CPU_SIMD_WGRAD_NHWC_PLAN_
#define DWCONV_CPU_SIMD_WGRAD_NHWC_PLAN_
namespace dwconv::cpu::simd {

// Blocking of NHWC grad-weight; everything here depends on the shape only.
// Scratch coordinates: tap (i, j) of output (r, p) of a run reads x slot
// row xrow(r, i) and slot column p*csw + j*cdw. "Dense" keeps the input's
// own rows / columns (consecutive output rows share them); when the stride
// or dilation make the dense window larger than one copy per tap, each
// (output, tap) gets its own slot ("im2row" / "im2col": csw = kw, cdw = 1),
// which bounds the scratch for any stride and dilation.
struct WgradNhwcTiles {
  int64_t cb = 0, ncb = 1, cbp = 0;  // channels per block, blocks, pitch (multiple of 16)
  int64_t bw = 0, nbx = 1;           // output columns per block, blocks
  int64_t rr = 1;                    // output rows per run
  bool row_dense = true, col_dense = true;
  int64_t srows = 0, wp = 0;  // x scratch rows and pixels per row (full column block)
  int64_t zrows = 0;          // 1: a zero row after the srows rows
  int64_t csw = 1, cdw = 1;   // column step per output pixel / per tap in the scratch
  int64_t ni = 1, nj = 1;     // tap rows per group, tap-column chunks
  int64_t units = 0, chunks = 1, kk = 0;
  int64_t x_floats = 0, dy_floats = 0, acc_floats = 0;
  bool nchw = false;  // NCHW tensors (cpu_wgrad_nchw_blocked): rows read plane by plane
};

// One x row and one dy row of a run per channel vector, 32-byte pixels
// (AVX2): rr * (bw + wp) pixels stay within ~24 KiB of L1.
constexpr int64_t kWgL1Px = 768;
// Scratch per thread (x + dy + fp32 accumulators), floats: the 512 KiB of
// L2 (half of it for large kernels, see fits below).
constexpr int64_t kWgBudget = 128 * 1024;
// Output pixels per run: the accumulators of a (channel vector, tap group)
// are loaded and stored once per run. Runs get fewer rows to fit the
// budget, down to kWgRunMinPx pixels (7x7 images: 1.1 ms with 2-row runs
// of 768 channels, 0.73 ms with whole 7-row images of 384).
constexpr int64_t kWgRunPx = 256, kWgRunMinPx = 64;
// Chunks of output rows per channel block aim at this many tasks.
constexpr int64_t kWgTasks = 16;
// A chunk covers at least this many output pixels (its fp64 partial and
// the window it copies first are paid once per chunk).
constexpr int64_t kWgChunkPx = 512;

inline WgradNhwcTiles plan_wgrad_nhwc_tiles(const Shape& s, bool nchw) {
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t ext_h = (s.kh - 1) * s.dil_h + 1, ext_w = (s.kw - 1) * s.dil_w + 1;
  WgradNhwcTiles base;
  base.nchw = nchw;
  base.kk = s.kh * s.kw;
  base.ni = std::min(wgrad_nhwc_ni(s.kw), s.kh);
  base.nj = ceil_div(s.kw, 8);
  // Channel block cb (balanced blocks, a multiple of 16 unless all of C),
  // nbx column blocks: the rest follows.
  auto tiles = [&](int64_t cb, int64_t nbx, int64_t rr) {
    WgradNhwcTiles t = base;
    t.bw = ceil_div(OW, nbx);
    t.nbx = ceil_div(OW, t.bw);
    const int64_t dense_w = (t.bw - 1) * s.stride_w + ext_w, col_w = t.bw * s.kw;
    t.col_dense = dense_w <= col_w;
    t.wp = std::min(dense_w, col_w);
    t.csw = t.col_dense ? s.stride_w : s.kw;
    t.cdw = t.col_dense ? s.dil_w : 1;
    const int64_t rr_max = std::min<int64_t>({OH, 32, kWgL1Px / (t.bw + t.wp), ceil_div(kWgRunPx, t.bw)});
    t.rr = rr > 0 ? rr : std::max<int64_t>(1, rr_max);
    const int64_t dense_h = (t.rr - 1) * s.stride_h + ext_h, row_h = t.rr * s.kh;
    t.row_dense = dense_h <= row_h;
    t.srows = std::min(dense_h, row_h);
    t.cb = cb;
    t.ncb = ceil_div(s.c, cb);
    t.cbp = round_up(cb, 16);
    // Groups of several tap rows read a zero row (slot srows) for tap rows
    // outside the image; one tap row at a time skips them.
    if (!(t.cdw == 1 && (t.csw == 1 || t.csw == 2))) t.ni = 1;  // the generic form takes one tap row
    t.zrows = t.ni > 1 ? 1 : 0;
    t.x_floats = (t.srows + t.zrows) * t.wp * t.cbp;
    t.dy_floats = t.rr * t.bw * t.cbp;
    t.acc_floats = t.kk * t.cbp;
    return t;
  };
  // Large kernels: a scratch within half of L2 (rlk_128x56_k31: 10% slower
  // with 32 channels and 490 KiB than with 16 and 250 KiB); small ones: all
  // of L2 if that keeps whole pixels (see below).
  const int64_t budget = base.kk > 64 ? kWgBudget / 2 : kWgBudget;
  auto fits = [&](const WgradNhwcTiles& t) {
    return t.bw + t.wp <= kWgL1Px && t.x_floats + t.dy_floats + t.acc_floats <= budget;
  };
  auto block = [&](int64_t cmax) {
    const int64_t nb = ceil_div(s.c, std::max<int64_t>(16, cmax));
    return nb == 1 ? s.c : round_up(ceil_div(s.c, nb), 16);
  };
  // Widest column block of at least bw_min pixels that fits (with the
  // most rows per run), if any.
  auto widest = [&](int64_t cb, int64_t bw_min, WgradNhwcTiles* out) {
    for (int64_t nbx = 1; ceil_div(OW, nbx) >= bw_min; nbx = nbx < 16 ? nbx + 1 : nbx + nbx / 4) {
      WgradNhwcTiles t = tiles(cb, nbx, 0);
      const int64_t rr_min = std::min(t.rr, ceil_div(kWgRunMinPx, t.bw));
      for (int64_t rr = t.rr; rr >= rr_min; rr = rr > rr_min ? std::max(rr_min, rr * 3 / 4) : 0) {
        t = tiles(cb, nbx, rr);
        if (fits(t)) return *out = t, true;
      }
      if (t.bw == 1) break;
    }
    return false;
  };
  // Whole pixels (all channels) are contiguous reads: the copy of blocks of
  // channels ran up to 3.5x slower (cnxt_96x56_k7: 1.5 ms of copy with whole
  // pixels, 2.1 with 48 channels, 5.3 with 16; Mamba C1536 L2048 9.7 ms
  // whole, 16 ms in 768-channel halves). So the column block shrinks down
  // to a halo as wide as itself before the channel block does. NCHW reads
  // one row per channel of the block: at most 64 of them at once (the
  // blocked forward's finding).
  const int64_t bw_min = std::min(OW, std::max<int64_t>(8, ext_w - 1));
  WgradNhwcTiles t;
  bool found = false;
  for (int64_t cb = nchw ? block(64) : s.c;;) {
    if (widest(cb, bw_min, &t)) {
      found = true;
      break;
    }
    const int64_t next = block(cb / 2);
    if (cb <= 16 || next >= cb) break;
    cb = next;
  }
  // Nothing fits (kernels of thousands of taps, huge dilations): the
  // widest block that fits with 16 channels, else one pixel and one row.
  if (!found && !widest(block(16), 1, &t)) t = tiles(block(16), OW, 1);
  // Units: (column block, n, output row), in that order, so a chunk's
  // consecutive units share a column block and an image (rolling window).
  t.units = t.nbx * s.n * OH;
  const int64_t min_units = std::max<int64_t>(1, ceil_div(kWgChunkPx, t.bw));
  t.chunks = std::max<int64_t>(1, std::min(t.units / min_units, ceil_div(kWgTasks, t.ncb)));
  return t;
}

// Workspace: the fp64 task partials, then per-thread scratch (x, dy, fp32
// accumulators, the run's offset tables).
inline size_t wgrad_partial_bytes(const WgradNhwcTiles& t) {
  return align_up(size_t(t.ncb * t.chunks * t.kk * t.cbp) * sizeof(double));
}
inline size_t wgrad_thread_bytes(const WgradNhwcTiles& t, const Shape& s) {
  const size_t floats = size_t(t.x_floats + t.dy_floats + t.acc_floats);
  const size_t table = size_t(t.rr * s.kh + 2 * t.rr + 2 * t.nj) * sizeof(int64_t);
  return align_up(floats * 4 + table);
}
inline size_t wgrad_nhwc_workspace(const Params& p, const WgradNhwcTiles& t) {
  return shared_workspace(p, wgrad_partial_bytes(t), wgrad_thread_bytes(t, p.shape));
}

}  // namespace dwconv::cpu::simd
#endif  // DWCONV_CPU_SIMD_WGRAD_NHWC_PLAN_

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One scratch row of ncol columns from source row `row` (width pixels):
// column x reads source pixel ix0 + x, zero outside the row.
template <typename T>
HWY_INLINE void WgCopyRow(const T* HWY_RESTRICT row, int64_t width, const WgSrc<T>& src, int64_t nc, int64_t ix0,
                          int64_t ncol, float* HWY_RESTRICT dst, int64_t vplane) {
  const int64_t nv = simd::ceil_div(nc, int64_t(hn::Lanes(DF())));
  const int64_t lo = std::min(ncol, std::max<int64_t>(0, -ix0)), hi = std::max(lo, std::min(ncol, width - ix0));
  const int64_t L = int64_t(hn::Lanes(DF()));
  WgZeroPixels(nv, lo, dst, vplane);
  WgCopyPixels(row + (ix0 + lo) * src.px, src, nc, hi - lo, dst + lo * L, vplane);
  WgZeroPixels(nv, ncol - hi, dst + hi * L, vplane);
}
// im2col form: column x reads source pixel col(x) (or zero outside).
template <typename T, class Col>
HWY_INLINE void WgCopyCols(const T* HWY_RESTRICT row, int64_t width, const WgSrc<T>& src, int64_t nc, int64_t ncol,
                           Col col, float* HWY_RESTRICT dst, int64_t vplane) {
  const int64_t nv = simd::ceil_div(nc, int64_t(hn::Lanes(DF())));
  const int64_t L = int64_t(hn::Lanes(DF()));
  for (int64_t x = 0; x < ncol; ++x) {
    const int64_t ix = col(x);
    if (ix < 0 || ix >= width) {
      WgZeroPixels(nv, 1, dst + x * L, vplane);
    } else {
      WgCopyPixels(row + ix * src.px, src, nc, 1, dst + x * L, vplane);
    }
  }
}


template <typename T>
void WgradNhwcTyped(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradNhwcTiles& t) {
  const Shape& s = p.shape;
  const int64_t C = s.c, H = s.h, W = s.w, OH = s.out_h(), OW = s.out_w(), KK = t.kk, kh = s.kh, kw = s.kw;
  const int64_t sh = s.stride_h, dh = s.dil_h, ext_h = (kh - 1) * dh + 1;
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* x = static_cast<const T*>(p.input);
  T* dw = static_cast<T*>(p.grad_weight);
  const bool nchw = t.nchw;
  const WgSrc<T> xsrc{nchw ? 1 : C, nchw ? H * W : 1, x + s.n * C * H * W};
  const WgSrc<T> dsrc{nchw ? 1 : C, nchw ? OH * OW : 1, dy + s.n * C * OH * OW};
  const int64_t tasks = t.ncb * t.chunks;
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t ni = t.ni;
  const WgFns fns(ni, kw, t.nj, t.csw, t.cdw);
  parallel_region(ws.threads, [&] {
    float* xs = reinterpret_cast<float*>(ws.get(omp_get_thread_num()));
    float* ds = xs + t.x_floats;
    float* facc = ds + t.dy_floats;
    int64_t* xoff = reinterpret_cast<int64_t*>(facc + t.acc_floats);  // [rr * kh]
    int64_t* ilo = xoff + t.rr * kh;                                  // [rr]
    int64_t* ihi = ilo + t.rr;                                        // [rr]
    int64_t* plo = ihi + t.rr;  // [nj]: pixels [plo, phi) of a run see columns of tap chunk q
    int64_t* phi = plo + t.nj;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t blk = task / t.chunks, k = task % t.chunks;
      const int64_t c0 = blk * t.cb, nc = std::min(t.cb, C - c0), nv = simd::ceil_div(nc, L);
      const int64_t u0 = k * t.units / t.chunks, u1 = (k + 1) * t.units / t.chunks;
      double* dacc = partial + (blk * t.chunks + k) * KK * t.cbp;
      std::fill_n(dacc, KK * t.cbp, 0.0);
      std::fill_n(facc, KK * t.cbp, 0.0f);
      int64_t pending = 0;  // pixels summed in facc since the last flush
      auto flush = [&] {
        const hn::ScalableTag<double> dd;
        const hn::Rebind<float, decltype(dd)> dh2;
        const int64_t Ld = int64_t(hn::Lanes(dd));
        for (int64_t e = 0; e < KK * t.cbp; e += Ld)
          hn::Store(hn::Add(hn::Load(dd, dacc + e), hn::PromoteTo(dd, hn::Load(dh2, facc + e))), dd, dacc + e);
        std::fill_n(facc, KK * t.cbp, 0.0f);
        pending = 0;
      };
      // A run: up to rr consecutive units of one column block and image;
      // runs of a segment (same block and image, inside the chunk) share
      // the rolling x window.
      struct Run {
        int64_t n, oy, nr, ox0, bw, wp, ix0, top;
        bool first;
      };
      auto run_at = [&](int64_t u) {
        Run r;
        const int64_t bx = u / (s.n * OH);
        r.n = (u / OH) % s.n, r.oy = u % OH;
        r.nr = std::min({t.rr, OH - r.oy, u1 - u});
        r.first = u == u0 || r.oy == 0;
        r.ox0 = bx * t.bw, r.bw = std::min(t.bw, OW - r.ox0);
        r.wp = t.col_dense ? (r.bw - 1) * s.stride_w + (kw - 1) * s.dil_w + 1 : r.bw * kw;
        r.ix0 = r.ox0 * s.stride_w - s.pad_left;
        r.top = r.oy * sh - s.pad_top;
        return r;
      };
      // Dense rows: the rows a run copies (the rest are in the window).
      auto new_rows = [&](const Run& r, int64_t* lo, int64_t* hi) {
        *hi = r.top + (r.nr - 1) * sh + ext_h;
        *lo = r.first ? r.top : std::max(r.top, r.top - sh + ext_h);
      };
      int64_t base = 0;  // dense: input row iy in slot (iy - base) % srows
      for (int64_t u = u0; u < u1;) {
        const Run r = run_at(u);
        u += r.nr;
        const int64_t bw = r.bw, wp = r.wp, ix0 = r.ix0, top = r.top, nr = r.nr;
        const int64_t xplane = (t.srows + t.zrows) * wp * L, dplane = t.rr * bw * L;
        const T* xn = x + (nchw ? (r.n * C + c0) * H * W : r.n * H * W * C + c0);
        auto copy_x = [&](int64_t iy, int64_t slot) {  // iy inside the image
          const T* row = xn + iy * W * xsrc.px;
          float* dst = xs + slot * wp * L;
          if (t.col_dense) {
            WgCopyRow(row, W, xsrc, nc, ix0, wp, dst, xplane);
          } else {
            WgCopyCols(
                row, W, xsrc, nc, wp, [&](int64_t c) { return ix0 + (c / kw) * s.stride_w + (c % kw) * s.dil_w; },
                dst, xplane);
          }
        };
        // Tap rows above or below the image read slot srows, a zero row,
        // instead of copies of zeros (a 7x7 image with a 7x7 kernel: 6 of
        // 13 rows); only groups of several tap rows read it.
        if (r.first) {
          base = top;
          for (int64_t v = 0; v < nv && t.zrows > 0; ++v) std::fill_n(xs + v * xplane + t.srows * wp * L, wp * L, 0.0f);
        }
        if (t.row_dense) {
          int64_t lo, hi;
          new_rows(r, &lo, &hi);
          for (int64_t iy = std::max<int64_t>(lo, 0); iy < std::min(hi, H); ++iy) copy_x(iy, (iy - base) % t.srows);
        }
        for (int64_t q = 0; q < nr; ++q) {
          const int64_t ty = top + q * sh;
          ilo[q] = ty >= 0 ? 0 : simd::ceil_div(-ty, dh);
          ihi[q] = ty >= H ? 0 : std::min(kh, floor_div(H - 1 - ty, dh) + 1);
          for (int64_t i = 0; i < kh; ++i) {
            const int64_t iy = ty + i * dh;
            int64_t slot = t.srows;
            if (iy >= 0 && iy < H) {
              slot = t.row_dense ? (iy - base) % t.srows : q * kh + i;
              if (!t.row_dense) copy_x(iy, slot);
            }
            xoff[q * kh + i] = slot * wp * L;
          }
          const T* dyr = nchw ? dy + ((r.n * C + c0) * OH + r.oy + q) * OW + r.ox0
                              : dy + ((r.n * OH + r.oy + q) * OW + r.ox0) * C + c0;
          WgCopyPixels(dyr, dsrc, nc, bw, ds + q * bw * L, dplane);
        }
        // Pixels whose taps of a chunk all fall in the zero padding are
        // skipped (a 29x29 kernel on a 28-wide image: 15% of the work).
        for (int64_t q = 0; q < t.nj; ++q) {
          simd::wgrad_chunk_pixels(s, ix0, bw, q * kw / t.nj, (q + 1) * kw / t.nj, &plo[q], &phi[q]);
        }
        for (int64_t v = 0; v < nv; ++v) {
          WgRun a;
          a.xoff = xoff, a.ilo = ilo, a.ihi = ihi;
          a.nr = nr, a.kh = kh, a.dpitch = bw * L;
          a.dstep = L;
          a.csw = t.csw, a.cdw = t.cdw;
          a.fa_i = kw * t.cbp, a.fa_j = t.cbp;
          for (int64_t i0 = 0; i0 < kh; i0 += ni) {
            const int64_t g = std::min(ni, kh - i0);
            for (int64_t q = 0; q < t.nj; ++q) {
              const int64_t j0 = q * kw / t.nj, jn = (q + 1) * kw / t.nj - j0;
              if (phi[q] <= plo[q]) continue;
              a.bw = phi[q] - plo[q];
              a.dy = ds + v * dplane + plo[q] * L;
              a.x = xs + v * xplane + (j0 * t.cdw + plo[q] * t.csw) * L;
              a.fa = facc + (i0 * kw + j0) * t.cbp + v * L;
              fns.get(jn, g)(a, i0);
            }
          }
        }
        pending += nr * bw;
        if (pending >= simd::kWgFlushPx) flush();
      }
      if (pending > 0) flush();
    }
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t blk = c / t.cb, cc = c % t.cb;
      for (int64_t e = 0; e < KK; ++e) {
        double sum = 0;
        for (int64_t k = 0; k < t.chunks; ++k) sum += partial[((blk * t.chunks + k) * KK + e) * t.cbp + cc];
        FromF(float(sum), dw + c * KK + e);
      }
    }
  });
}

void WgradNhwc(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradNhwcTiles& t) {
  if (p.dtype == DType::f32) {
    WgradNhwcTyped<float>(p, ws, partial, t);
  } else {
    WgradNhwcTyped<hbf16>(p, ws, partial, t);
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
template <bool NCHW>
size_t workspace(const Params& p) {
  return simd::wgrad_nhwc_workspace(p, simd::plan_wgrad_nhwc_tiles(p.shape, NCHW));
}
template <bool NCHW>
void run(const Params& p) {
  const simd::WgradNhwcTiles t = simd::plan_wgrad_nhwc_tiles(p.shape, NCHW);
  const simd::SharedSlices c = simd::shared_slices(p, simd::wgrad_partial_bytes(t), simd::wgrad_thread_bytes(t, p.shape));
  DWCONV_HWY_CALL(WgradNhwc)(p, c.ws, reinterpret_cast<double*>(c.shared), t);
}
bool accepts(const Params& p, Layout layout) {
  return p.layout == layout && p.shape.multiplier == 1 && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape);
}
int score_nhwc(const Params& p) { return accepts(p, Layout::nhwc) ? 10 : -1; }
int score_nchw(const Params& p) {
  if (!accepts(p, Layout::nchw)) return -1;
  // Ahead of the flat engine (10) except for 2D images with a kx1 or 1xk
  // kernel (batch 1, 2 threads, against cpu_wgrad_nchw_vec in one run:
  // MobileNetV2, EfficientNet-B0 and ConvNeXt 0.94-2.9x, 1D Mamba and
  // Conformer 1.2-1.5x, InceptionNeXt 24 x 28x28 1x11 0.74x).
  const Shape& s = p.shape;
  const bool one_d = s.h == 1 && s.kh == 1;
  return one_d || (s.kh > 1 && s.kw > 1) ? 12 : 9;
}
}  // namespace

std::vector<Kernel> simd_wgrad_nhwc_kernels() {
  return {{"cpu_wgrad_nhwc_vec", Device::cpu, Direction::grad_weight, score_nhwc, run<false>, workspace<false>},
          {"cpu_wgrad_nchw_blocked", Device::cpu, Direction::grad_weight, score_nchw, run<true>, workspace<true>}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
