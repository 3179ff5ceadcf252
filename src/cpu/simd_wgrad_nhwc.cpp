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

// fp32 accumulation runs for about this many pixels before going to fp64.
constexpr int64_t kWgFlushPx = 2048;
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

// Tap rows per group: narrow kernels take several tap rows at once so that
// ni * kw accumulators make >= 8 independent FMA chains.
constexpr int64_t wgrad_nhwc_ni(int64_t kw) { return kw == 1 ? 8 : kw == 2 ? 4 : kw == 3 ? 3 : kw <= 5 ? 2 : 1; }

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
  return wgrad_partial_bytes(t) + workspace_for(wgrad_thread_bytes(t, p.shape), thread_count(p));
}
struct WgradCarve {
  Slices ws;
  double* partial = nullptr;
};
inline WgradCarve wgrad_nhwc_carve(const Params& p, const WgradNhwcTiles& t) {
  const Slices head = slices(p, kAlign);  // aligns the base
  WgradCarve c;
  c.partial = reinterpret_cast<double*>(head.base);
  const size_t pb = wgrad_partial_bytes(t);
  const size_t lost = size_t(head.base - static_cast<unsigned char*>(p.workspace));
  Params q = p;
  q.workspace = head.base + pb;
  q.workspace_bytes = p.workspace_bytes > lost + pb ? p.workspace_bytes - lost - pb : 0;
  c.ws = slices(q, wgrad_thread_bytes(t, p.shape));
  return c;
}

}  // namespace dwconv::cpu::simd
#endif  // DWCONV_CPU_SIMD_WGRAD_NHWC_PLAN_

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

// The rows of one run for one channel vector, as the compute sees them.
struct WgRun {
  const float* dy;      // dy plane: output row r at dy + r * dpitch
  const float* x;       // x plane, offset to the chunk's first tap column
  const int64_t* xoff;  // [r * kh + i]: offset of tap row i of output row r in x
  const int64_t* ilo;   // [r]: tap rows [ilo, ihi) of row r are inside the image
  const int64_t* ihi;
  int64_t nr, kh, dpitch, bw;
  int64_t csw, cdw;  // runtime column steps (generic form)
  float* fa;         // fp32 accumulator of tap (i0, j0), channel vector v
  int64_t fa_i, fa_j;
};

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
HWY_INLINE void WgColumn(const float* HWY_RESTRICT dyp, const float* const* xr, int64_t xo, VF* dv, VF* acc,
                         std::integer_sequence<int, II...>) {
  if constexpr (X % SW == 0 && X / SW < R) dv[X / SW] = hn::Load(DF(), dyp + (X / SW) * int64_t(hn::Lanes(DF())));
  (WgX<JN, R, SW, II, X>(xr[II] + xo, dv, acc, std::make_integer_sequence<int, JN>()), ...);
}
// R pixels of one output row: R dy loads and (R-1)*SW + JN x loads per
// tap row for R*NI*JN FMAs.
template <int NI, int JN, int R, int SW, int... X>
HWY_INLINE void WgBlock(const float* HWY_RESTRICT dyp, const float* const* xr, int64_t xo, VF* acc,
                        std::integer_sequence<int, X...>) {
  VF dv[R];
  (WgColumn<NI, JN, R, SW, X>(dyp, xr, xo, dv, acc, std::make_integer_sequence<int, NI>()), ...);
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
HWY_INLINE void WgPixel(const float* HWY_RESTRICT dyp, const float* HWY_RESTRICT xr, VF* xw, VF* acc,
                        std::integer_sequence<int, J...>) {
  const DF d;
  const VF dv = hn::Load(d, dyp + P * int64_t(hn::Lanes(d)));
  (WgPixelTap<JN, SW, MEM, P, J>(dv, xw, acc, xr), ...);
}
template <int JN, int R, int SW, int... P>
HWY_INLINE void WgPixels(const float* HWY_RESTRICT dyp, const float* HWY_RESTRICT xr, VF* acc,
                         std::integer_sequence<int, P...>) {
  constexpr int MEM = 2 * JN + 1 > 15 ? 2 * JN + 1 - 15 : 0;
  VF xw[(R - 1) * SW + JN];
  (WgPixel<JN, SW, MEM, P>(dyp, xr, xw, acc, std::make_integer_sequence<int, JN>()), ...);
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
  const int64_t nblk = a.bw / R;
  for (int64_t r = 0; r < a.nr; ++r) {
    if (a.ihi[r] <= i0 || a.ilo[r] >= i0 + NI) continue;
    const float* xr[NI];
    for (int ii = 0; ii < NI; ++ii) xr[ii] = a.x + a.xoff[r * a.kh + i0 + ii];
    const float* HWY_RESTRICT dyr = a.dy + r * a.dpitch;
    if constexpr (NI == 1) {
      for (int64_t b = 0; b < nblk; ++b)
        WgPixels<JN, R, SW>(dyr + b * R * L, xr[0] + b * R * SW * L, acc, std::make_integer_sequence<int, R>());
      for (int64_t p = nblk * R; p < a.bw; ++p)
        WgPixels<JN, 1, SW>(dyr + p * L, xr[0] + p * SW * L, acc, std::make_integer_sequence<int, 1>());
    } else {
      for (int64_t b = 0; b < nblk; ++b)
        WgBlock<NI, JN, R, SW>(dyr + b * R * L, xr, b * R * SW * L, acc,
                               std::make_integer_sequence<int, (R - 1) * SW + JN>());
      for (int64_t p = nblk * R; p < a.bw; ++p)
        WgBlock<NI, JN, 1, SW>(dyr + p * L, xr, p * SW * L, acc, std::make_integer_sequence<int, JN>());
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
  const int64_t ps = a.csw * L, ts = a.cdw * L, nblk = a.bw / R;
  for (int64_t r = 0; r < a.nr; ++r) {
    if (a.ihi[r] <= i0 || a.ilo[r] > i0) continue;
    const float* HWY_RESTRICT xr = a.x + a.xoff[r * a.kh + i0];
    const float* HWY_RESTRICT dyr = a.dy + r * a.dpitch;
    int64_t p = 0;
    for (int64_t b = 0; b < nblk; ++b, p += R) {
      VF dv[R];
      WgFor([&](auto q) { dv[q] = hn::Load(d, dyr + (p + q) * L); }, std::make_integer_sequence<int, R>());
      WgFor(
          [&](auto k) {
            WgFor([&](auto q) { acc[k] = hn::MulAdd(dv[q], hn::Load(d, xr + (p + q) * ps + k * ts), acc[k]); },
                  std::make_integer_sequence<int, R>());
          },
          std::make_integer_sequence<int, JN>());
    }
    for (; p < a.bw; ++p) {
      const VF dv = hn::Load(d, dyr + p * L);
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
  // Tap columns in nj balanced chunks [q*kw/nj, (q+1)*kw/nj) of jmin or
  // jmin + 1 taps (at most 8).
  const int64_t jmin = kw / t.nj;
  WgFn fns[2][8];  // [taps - jmin][rows in group - 1]
  for (int64_t e = 0; e < 2; ++e)
    for (int64_t g = 1; g <= ni; ++g) fns[e][g - 1] = jmin + e <= 8 ? WgPick(g, jmin + e, t.csw, t.cdw) : nullptr;
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
          const int64_t j0 = q * kw / t.nj, j1 = (q + 1) * kw / t.nj;
          plo[q] = std::max<int64_t>(0, simd::ceil_div(std::max<int64_t>(0, -ix0 - (j1 - 1) * s.dil_w), s.stride_w));
          const int64_t right = W - 1 - ix0 - j0 * s.dil_w;
          phi[q] = right < 0 ? 0 : std::min(bw, right / s.stride_w + 1);
        }
        for (int64_t v = 0; v < nv; ++v) {
          WgRun a;
          a.xoff = xoff, a.ilo = ilo, a.ihi = ihi;
          a.nr = nr, a.kh = kh, a.dpitch = bw * L;
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
              fns[jn - jmin][g - 1](a, i0);
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
  const simd::WgradCarve c = simd::wgrad_nhwc_carve(p, t);
  DWCONV_HWY_CALL(WgradNhwc)(p, c.ws, c.partial, t);
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
