// Target-independent planning for the SIMD CPU kernels: geometry, blocking,
// thread counts and workspace layout. Shared by score()/workspace() (plain
// C++) and the per-target code (simd_*-inl.h), so the two always agree.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>

#include "core/common.h"
#include "cpu/isa.h"

namespace dwconv::cpu::simd {

inline int thread_count(const Params& p) { return p.threads > 0 ? p.threads : omp_get_max_threads(); }
// The SIMD variants size per-thread scratch from the padded, dilated and
// strided extents; strides, dilations or padding far beyond the kernel make
// that scratch grow without bound while the tensors stay small (a stride of
// 2^32 on a 5x5 image is a valid shape). Such shapes go to the generic
// kernels, which need no scratch.
inline bool simd_geometry(const Shape& s) {
  const bool steps = s.stride_h <= 64 && s.stride_w <= 64 && s.dil_h <= 64 && s.dil_w <= 64;
  const int64_t ext_h = s.dil_h * (s.kh - 1), ext_w = s.dil_w * (s.kw - 1);
  const bool pads = s.pad_top <= ext_h && s.pad_bottom <= ext_h && s.pad_left <= ext_w && s.pad_right <= ext_w;
  return steps && pads;
}
inline bool simd_dtype(DType t) { return t == DType::f32 || t == DType::bf16; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// A byte range prefetched into L2 a few 64-byte lines at a time, spread
// over the steps of a loop (the NHWC core's pixel groups, the flat
// engine's blocks), so the misses overlap the compute instead of arriving
// as one burst. WRITE = 1 prefetches for writing (the lines are about to
// be stored). Counted loops on local copies: updating the members line by
// line made the compiler store them back after every prefetch.
struct PrefetchSpan {
  const char* p = nullptr;
  const char* end = nullptr;
  int64_t per_step = 0;
  void set(const void* first, int64_t bytes, int64_t steps) {
    p = static_cast<const char*>(first), end = p + bytes;
    per_step = ceil_div(bytes / 64 + 1, std::max<int64_t>(1, steps));
  }
  template <int WRITE>
  inline void step(int64_t lines) {
    const char* q = p;
    const int64_t n = std::min<int64_t>(lines, (end - q + 63) / 64);
    for (int64_t k = 0; k < n; ++k) __builtin_prefetch(q + 64 * k, WRITE, 2);
    if (n > 0) p = q + 64 * n;
  }
  template <int WRITE>
  inline void step() { step<WRITE>(per_step); }
};

// Largest vector block any target computes at once in the flat engine
// (8 vectors of 16 floats): flat lengths are rounded up to it.
constexpr int64_t kQBlock = 128;
// Per-thread scratch budget of the flat engine, in floats (keeps a block in L2).
constexpr int64_t kFlatBudget = 32 * 1024;
constexpr size_t kAlign = 64;

// ---------------------------------------------------------------------------
// NCHW "flat" engine. A plane convolution
//   out[oy][ox] = sum_{i,j} w[i][j] * V[sh*oy + dh*i][sw*ox + dw*j]
// over a virtual input V[y][x] = src[(y - top) / uh][(x - left) / uw] (zero
// when not divisible or outside src) is computed block of output rows by
// block: the block's input is copied, converted to fp32 and zero padded, into
// sh*sw phase planes P[ph][pw][r][c] = V[sh*(oy0 + r) + ph][sw*c + pw] of
// pitch Wq = OW + cjmax. Then output (oy, ox) sits at flat index q = oy*Wq + ox
// and every tap reads P[plane_ij] at q + off_ij: a 1D convolution over q with
// no bounds checks (columns ox >= OW are computed and dropped).
// Forward: src = x, uh = uw = 1. Grad-input: src = dy upsampled by the
// stride, flipped weights, stride 1. Grad-weight: dot products of a flat dy
// (zero in dropped columns) with the planes.
struct FlatPlan {
  int64_t src_h = 0, src_w = 0, uh = 1, uw = 1, top = 0, left = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, oh = 0, ow = 0;
  int64_t rimax = 0, cjmax = 0, wq = 0, nphase = 1;
  int64_t rows = 1;   // output rows per block (upper bound; the last block may be shorter)
  int64_t nblk = 1;   // blocks per plane
  int64_t plane = 0;  // floats per phase plane
  int64_t nq = 0;     // flat outputs per full block, rounded up to kQBlock
  int64_t in_floats = 0, out_floats = 0;

  void finish(int64_t r) {
    rows = std::max<int64_t>(1, std::min(r, oh));
    nblk = ceil_div(oh, rows);
    plane = (rows + rimax) * wq;
    nq = round_up(rows * wq, kQBlock);
    // Slack: vector blocks overshoot the block by up to kQBlock.
    in_floats = round_up(nphase * plane + cjmax + 2 * kQBlock + 64, 16);
    out_floats = round_up(nq + kQBlock, 16);
  }
  // Rows per block that keep in + out within the budget.
  int64_t budget_rows() const {
    const int64_t per_row = (nphase + 1) * wq;
    const int64_t fixed = nphase * rimax * wq + cjmax + 3 * kQBlock;
    return std::max<int64_t>(1, (kFlatBudget - fixed) / std::max<int64_t>(1, per_row));
  }
};

inline FlatPlan flat_base(int64_t src_h, int64_t src_w, int64_t uh, int64_t uw, int64_t top, int64_t left, int64_t kh,
                          int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t oh, int64_t ow) {
  FlatPlan f;
  f.src_h = src_h, f.src_w = src_w, f.uh = uh, f.uw = uw, f.top = top, f.left = left;
  f.kh = kh, f.kw = kw, f.sh = sh, f.sw = sw, f.dh = dh, f.dw = dw, f.oh = oh, f.ow = ow;
  f.rimax = ((kh - 1) * dh) / sh;
  f.cjmax = ((kw - 1) * dw) / sw;
  f.wq = ow + f.cjmax;
  f.nphase = sh * sw;
  return f;
}

// Forward on x: planes of the padded input.
inline FlatPlan flat_forward(const Shape& s) {
  return flat_base(s.h, s.w, 1, 1, s.pad_top, s.pad_left, s.kh, s.kw, s.stride_h, s.stride_w, s.dil_h, s.dil_w,
                   s.out_h(), s.out_w());
}
// Grad-input as a stride-1 forward over dy upsampled by the stride, with the
// flipped kernel; output H x W.
inline FlatPlan flat_grad_input(const Shape& s) {
  return flat_base(s.out_h(), s.out_w(), s.stride_h, s.stride_w, (s.kh - 1) * s.dil_h - s.pad_top,
                   (s.kw - 1) * s.dil_w - s.pad_left, s.kh, s.kw, 1, 1, s.dil_h, s.dil_w, s.h, s.w);
}

// Blocking for forward / grad-input: fit the budget, then split rows until
// there are a few tasks per thread (results do not depend on the blocking).
inline FlatPlan plan_rows(FlatPlan f, int64_t planes, int threads) {
  int64_t rows = std::min(f.oh, f.budget_rows());
  const int64_t want_blocks = ceil_div(4 * int64_t(threads), std::max<int64_t>(1, planes));
  if (want_blocks > 1) rows = std::min(rows, ceil_div(f.oh, want_blocks));
  f.finish(rows);
  return f;
}
// Per-thread floats at the budget blocking (an upper bound for plan_rows).
inline int64_t flat_thread_floats(FlatPlan f, int64_t extra) {
  f.finish(std::min(f.oh, f.budget_rows()));
  return f.in_floats + f.out_floats + extra;
}

// Grad-weight: blocking and chunking depend on the shape only, so the
// reduction order (and the result) is the same for any thread count.
struct WgradPlan {
  FlatPlan f;
  int64_t units = 0;   // n x row blocks
  int64_t chunks = 1;  // per channel; chunk k covers units [k*units/chunks, (k+1)*units/chunks)
  int64_t kk = 0;
};
inline WgradPlan plan_wgrad_nchw(const Shape& s) {
  WgradPlan w;
  w.f = flat_forward(s);
  w.f.finish(std::min(w.f.oh, w.f.budget_rows()));
  w.units = s.n * w.f.nblk;
  w.chunks = std::max<int64_t>(1, std::min(w.units, ceil_div(64, s.c)));
  w.kk = s.kh * s.kw;
  return w;
}

inline size_t align_up(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

// NHWC grad-weight engines (simd_wgrad_nhwc.cpp, simd_wgrad_nhwc_plane.cpp):
// fp32 sums run for about kWgFlushPx pixels before going to fp64, and
// narrow kernels take several tap rows per group so that ni * kw
// accumulators make >= 8 independent FMA chains.
constexpr int64_t kWgFlushPx = 2048;
constexpr int64_t wgrad_nhwc_ni(int64_t kw) { return kw == 1 ? 8 : kw == 2 ? 4 : kw == 3 ? 3 : kw <= 5 ? 2 : 1; }
// Output pixels [lo, hi) of a row of bw starting at input column ix0 for
// which some tap of columns [j0, j1) reads inside the image (0 .. w - 1):
// the others read only padding and are skipped.
inline void wgrad_chunk_pixels(const Shape& s, int64_t ix0, int64_t bw, int64_t j0, int64_t j1, int64_t* lo,
                               int64_t* hi) {
  *lo = std::max<int64_t>(0, ceil_div(std::max<int64_t>(0, -ix0 - (j1 - 1) * s.dil_w), s.stride_w));
  const int64_t right = s.w - 1 - ix0 - j0 * s.dil_w;
  *hi = right < 0 ? 0 : std::min(bw, right / s.stride_w + 1);
}

// cpu_wgrad_nhwc_plane: images one channel vector at a time. A task takes
// kWgPlaneGroup channels of a chunk of the batch; per image and channel
// vector, the x image is copied into a zero-padded plane (hp x wp pixels,
// the padding written once per thread) that stays in L1 (small images) or
// L2 while every tap group sums over it, and dy is read in place (fp32,
// whole vectors) or from a plane of its own. The scratch engine instead copies
// all channels of a run of rows (whole pixels) and sums per vector over
// them: on 7x7 and 14x14 images at batch 1 that was one task for all
// threads, and the copies (every x and dy vector stored to an L2-resident
// scratch and read back) took 60 % of the time.
struct WgradPlanePlan {
  int64_t hp = 0, wp = 0;  // the padded x plane: rows and columns
  int64_t groups = 0;      // channel groups of kWgPlaneGroup
  int64_t chunks = 1;      // batch chunks per group (task = group x chunk)
  int64_t kk = 0, ni = 1, nj = 1;
  int64_t csw = 1, cdw = 1;  // column step per output pixel / per tap in the plane
  // fp32 dy read in place (else copied to a plane per vector) where the
  // tap groups pass over it at most twice: the pixels of one vector in
  // place are C floats apart and share few L1 sets, so every pass reads
  // them from L2 again (384 x 64x64 k9, 18 passes: 1.21x with the copy;
  // k3, one pass: 0.89x with it, 14x14 k3 0.85x).
  bool dy_in_place = true;
  int64_t x_floats = 0, dy_floats = 0, acc_floats = 0;  // per thread, at kWgPlaneGroup lanes
};
constexpr int64_t kWgPlaneGroup = 16;  // channels per task: one AVX-512 vector, 2 of AVX2
// x plane pixels at most: 512 KiB at 16 lanes, half of a 1 MiB L2 (Zen 4,
// batch 1, 2 threads, against the scratch engine: 7x7-28x28 images
// 1.2-2.6x, 56x56 1.3-1.4x, 64x64 k31 and 112x112 (832 KiB planes)
// 1.0-1.1x).
constexpr int64_t kWgPlanePx = 8192;
// Tasks the batch is chunked for, at least (a shape-only count).
constexpr int64_t kWgPlaneTasks = 16;
inline WgradPlanePlan plan_wgrad_plane(const Shape& s) {
  WgradPlanePlan t;
  const int64_t OH = s.out_h(), OW = s.out_w();
  t.hp = (OH - 1) * s.stride_h + (s.kh - 1) * s.dil_h + 1;
  t.wp = (OW - 1) * s.stride_w + (s.kw - 1) * s.dil_w + 1;
  t.groups = ceil_div(s.c, kWgPlaneGroup);
  t.chunks = std::max<int64_t>(1, std::min(s.n, ceil_div(kWgPlaneTasks, t.groups)));
  t.kk = s.kh * s.kw;
  t.csw = s.stride_w, t.cdw = s.dil_w;
  const bool regs = t.cdw == 1 && (t.csw == 1 || t.csw == 2);  // the register form (WgGroup)
  t.ni = regs ? std::min(wgrad_nhwc_ni(s.kw), s.kh) : 1;
  t.nj = ceil_div(s.kw, 8);
  t.dy_in_place = ceil_div(s.kh, t.ni) * t.nj <= 2;
  t.x_floats = t.hp * t.wp * kWgPlaneGroup;
  t.dy_floats = OH * OW * kWgPlaneGroup;
  t.acc_floats = t.kk * kWgPlaneGroup;
  return t;
}
// The plane engine runs one task per 16 channels (and batch chunk), so
// one group of few channels at batch 1 is one thread's work: 12 x 56x56
// k3 0.70x of the scratch engine, which splits the rows.
inline bool wgrad_plane_fits(const Shape& s) {
  const WgradPlanePlan t = plan_wgrad_plane(s);
  return t.hp * t.wp <= kWgPlanePx && t.groups * t.chunks >= 2;
}

// NCHW forward as dot products along the kernel row (simd_fwd_nchw_dot.cpp):
// the zero-padded fp32 plane of one input channel, pitch wpad (plane column
// x is input column x - pad_left), and the weights with rows of kwp floats.
// Lengths round up to 16 floats, the widest vector of any target.
struct DotPlan {
  int64_t kwp = 0, wpad = 0, plane_floats = 0, w_floats = 0, row_floats = 0;
};
inline DotPlan plan_dot(const Shape& s) {
  DotPlan d;
  d.kwp = round_up(s.kw, 16);
  d.wpad = (s.out_w() - 1) * s.stride_w + d.kwp + 16;
  d.plane_floats = round_up(s.h * d.wpad + 16, 16);
  d.w_floats = round_up(s.kh * d.kwp, 16);
  d.row_floats = round_up(s.out_w() + 16, 16);
  return d;
}
constexpr int64_t kDotMaxPlane = 1 << 20;  // floats (4 MiB per thread); taller planes stay on the flat engine

}  // namespace dwconv::cpu::simd

namespace dwconv::cpu::simd {

// Per-thread slices of the workspace. The thread count is the caller's,
// capped by what the workspace holds (omp_get_max_threads may have changed
// since workspace_size was asked).
struct Slices {
  unsigned char* base = nullptr;
  size_t per = 0;
  int threads = 1;
  unsigned char* get(int t) const { return base + size_t(t) * per; }
};
inline size_t workspace_for(size_t per_thread, int threads) { return per_thread * size_t(threads) + kAlign; }
inline Slices slices(const Params& p, size_t per_thread) {
  Slices s;
  s.per = align_up(per_thread);
  auto raw = reinterpret_cast<uintptr_t>(p.workspace);
  const uintptr_t aligned = (raw + kAlign - 1) / kAlign * kAlign;
  const size_t lost = size_t(aligned - raw);
  const size_t avail = p.workspace_bytes > lost ? p.workspace_bytes - lost : 0;
  s.base = reinterpret_cast<unsigned char*>(aligned);
  const int64_t fit = int64_t(avail / std::max<size_t>(1, s.per));
  s.threads = int(std::min<int64_t>(thread_count(p), fit));
  if (p.workspace == nullptr || s.threads < 1)
    throw BackendError("dwconv: SIMD CPU kernel given a workspace of " + std::to_string(p.workspace_bytes) +
                       " bytes, needs at least " + std::to_string(s.per + kAlign));
  return s;
}
// A workspace that starts with `shared` bytes every thread uses (weights
// arranged once, task partials), then per-thread slices of `per_thread`.
inline size_t shared_workspace(const Params& p, size_t shared, size_t per_thread) {
  return align_up(shared) + workspace_for(align_up(per_thread), thread_count(p));
}
struct SharedSlices {
  unsigned char* shared = nullptr;  // 64-byte aligned
  Slices ws;
};
inline SharedSlices shared_slices(const Params& p, size_t shared, size_t per_thread) {
  const Slices head = slices(p, kAlign);  // aligns the base
  const size_t sb = align_up(shared);
  const size_t lost = size_t(head.base - static_cast<unsigned char*>(p.workspace));
  Params q = p;
  q.workspace = head.base + sb;
  q.workspace_bytes = p.workspace_bytes > lost + sb ? p.workspace_bytes - lost - sb : 0;
  return {head.base, slices(q, per_thread)};
}

}  // namespace dwconv::cpu::simd

namespace dwconv::cpu::simd {

// NHWC with multiplier 1: a direct convolution vectorised along C, over a
// virtual input V (in_h x in_w) = the source (src_h x src_w) upsampled by
// (uh, uw): V[y][x] = src[y / uh][x / uw] where both divide, else zero.
// Forward: src = V = x, out = y (OH x OW). Grad-input: src = dy upsampled
// by the stride, out = dx (H x W), stride 1, flipped weights, pads
// (k-1)*dil - pad (may be negative).
// c counts output channels; with a channel multiplier m (forward only)
// output channel o reads input channel o / m of cin = c / m.
// nchw: source and output are NCHW (the NCHW blocked variants): rows are
// transposed into the scratch, and output rows are staged per thread and
// transposed out (NchwFlush).
struct NhwcGeom {
  int64_t in_h, in_w, out_h, out_w, c;
  int64_t kh, kw, sh, sw, dh, dw, pt, pl;
  int64_t src_h, src_w, uh, uw;
  int64_t cin, m;
  bool nchw = false;
  bool f32 = false;  // fp32 storage: the in-place mode can read the source as it is
  bool flipped = false;  // grad-input: the kernel is flipped (no narrow mode)
};
inline NhwcGeom nhwc_forward(const Shape& s) {
  return {s.h,     s.w,     s.out_h(),   s.out_w(),  s.out_c(), s.kh, s.kw, s.stride_h, s.stride_w,
          s.dil_h, s.dil_w, s.pad_top,   s.pad_left, s.h,       s.w,  1,    1,          s.c,
          s.multiplier};
}
inline NhwcGeom nchw_blocked_forward(const Shape& s) {
  NhwcGeom g = nhwc_forward(s);
  g.nchw = true;
  return g;
}
inline NhwcGeom nhwc_grad_input(const Shape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
  NhwcGeom g{(oh - 1) * s.stride_h + 1,
             (ow - 1) * s.stride_w + 1,
             s.h,
             s.w,
             s.c,
             s.kh,
             s.kw,
             1,
             1,
             s.dil_h,
             s.dil_w,
             (s.kh - 1) * s.dil_h - s.pad_top,
             (s.kw - 1) * s.dil_w - s.pad_left,
             oh,
             ow,
             s.stride_h,
             s.stride_w,
             s.c,
             1};
  g.flipped = true;
  return g;
}

inline NhwcGeom nchw_blocked_grad_input(const Shape& s) {
  NhwcGeom g = nhwc_grad_input(s);
  g.nchw = true;
  return g;
}

// Blocking of the NHWC convolution. A task is (n, block of output rows,
// block of output columns, block of channels). It walks its output rows in
// order and keeps the input rows of one output row's window in a rolling
// scratch of `slots` rows: each input row is copied (fp32, zero padded,
// channel-vector blocked, see NhwcCopyRow) once per task, not once per
// output row, and every load of the compute is then an aligned whole vector
// with no bounds check.
struct NhwcPlan {
  NhwcGeom g;
  int64_t cp = 0;                    // weight / bias channel pitch (C rounded up to 16, odd in lines)
  int64_t cb = 0, ncb = 1, cbp = 0;  // channels per block, blocks, scratch channel pitch
  int64_t bw = 0, nbx = 1;           // output columns per block, blocks
  int64_t ry = 0, nby = 1;           // output rows per task, blocks
  int64_t slots = 0, wp = 0;         // scratch rows (one window) and pixels per row
  bool whole = false;                // slots hold all rows of any task (no rolling)
  // The compute reads the input itself, no scratch copy (see NhwcConv).
  bool in_place = false;
  // In place, output narrower than the kernel: NhwcNarrow's row tiles, and
  // whether they arrange their own weights (see NhwcNarrowTile).
  bool narrow = false, narrow_row_weights = false;
  // Rows short enough for NhwcRowClipped's edge-clipped tiles (kernels
  // wider than 7: NhwcRowStationary's), read in place (fp32) or in pairs
  // (bf16).
  bool clipped = false;
  // bf16 read in place, two channels per 32-bit lane (NhwcPairRow).
  bool pairs = false;
  // Clipped rows: thread t takes channel block t (cb channels) of every
  // image and row, and arranges that block's weights itself (NhwcConv).
  bool owned = false;
  // In-place rows whose call's data exceeds the last-level cache: output
  // vectors in streaming stores where the output is 64-byte aligned.
  bool stream = false;
  // In-place rows of one output row of one tap row (1D): pixel groups
  // outside, channel vectors inside (NhwcRowAllC), so the loads walk
  // R + kw - 1 pixels' channels in order, where a channel vector's pass
  // over the row touched one vector per pixel, C floats apart.
  bool pixel_major = false;
  int64_t scratch_floats = 0;
  // NCHW only: per-thread fp32 output stage ([pixel][channel], see
  // stage_pitch) that NchwFlush transposes into the output.
  int64_t stage_floats = 0;
  void finish_rows(int64_t r) {
    ry = std::max<int64_t>(1, std::min(r, g.out_h));
    nby = ceil_div(g.out_h, ry);
  }
};
// Rows up to this many output columns take NhwcRowClipped in place.
constexpr int64_t kNhwcClipCols = 16;
// Images (and rows) up to this many columns take NhwcRowStationary when the
// kernel is wider than 7.
constexpr int64_t kNhwcStatCols = 7;
constexpr int64_t kNhwcBudget = 64 * 1024;  // floats of scratch per thread (half of L2)
// Whole mode walks channels in groups of 8 vectors (at most 8 x 16 floats).
constexpr int64_t kNhwcGroup = 128;
// A window of kh*dh rows that does not fit even at 16 channels exceeds the
// budget; past this (dilations near simd_geometry's limit of 64 with large
// kernels) the generic kernel, which needs no scratch, takes the shape.
constexpr int64_t kNhwcMaxScratch = 16 * 1024 * 1024;
// Floats of scratch per thread that whole rows of all channels may take
// instead of column blocks: 3/4 of L2 (see plan_nhwc), never below kNhwcBudget.
inline int64_t nhwc_row_budget() { return std::max(kNhwcBudget, cpu::l2_cache_bytes() * 3 / 16); }
// The largest column block whose window of `slots` rows x cbp channels fits
// `budget` (0 if not even one output column does).
inline NhwcPlan plan_nhwc_cb(const NhwcGeom& g, int64_t cb, int64_t budget = kNhwcBudget) {
  NhwcPlan p;
  p.g = g;
  // An odd number of 64-byte lines per tap, so that a tap's weights and
  // the next one's fall on different L1 sets: at 2^k lines the 49 taps of
  // a 7x7 kernel shared 1 to 4 of the 64 sets of a 32 KiB 8-way L1. Zen 3,
  // AVX2, 1 thread, batch 1, 7x7 k7, 8 interleaved runs (minima): 512,
  // 768 and 1024 channels 1.23x, 1.15x, 1.27x with the data in cache,
  // 1.10x, 0.99x, 1.16x from DRAM; 528 and 784 channels (odd already)
  // unchanged.
  p.cp = round_up(g.c, 16);
  if ((p.cp / 16) % 2 == 0) p.cp += 16;
  p.cb = cb;
  p.ncb = ceil_div(g.c, p.cb);
  p.cbp = round_up(p.cb, 16);
  const int64_t ext_w = (g.kw - 1) * g.dw + 1;
  p.slots = (g.kh - 1) * g.dh + 1;
  // NCHW stages an output row of the block as well (a 1D row of 2048
  // pixels at 32 channels: scratch and stage 256 KB each, and L2 thrashed).
  const int64_t max_px = budget / (p.cbp * (p.slots + (g.nchw ? 1 : 0)));
  p.bw = max_px < ext_w ? 0 : std::min(g.out_w, (max_px - ext_w) / g.sw + 1);
  p.nbx = p.bw > 0 ? ceil_div(g.out_w, p.bw) : 0;
  p.wp = p.bw > 0 ? (p.bw - 1) * g.sw + ext_w : 0;
  p.scratch_floats = round_up(p.slots * std::max<int64_t>(p.wp, 1) * p.cbp + 64, 16);
  p.finish_rows(g.out_h);
  return p;
}
// Output rows per task once rows are split until there are ~per_thread
// tasks per thread (N = 1 inference); all rows when batch, column blocks and
// channel blocks already give that many.
inline int64_t nhwc_balanced_rows(const NhwcPlan& p, int64_t n, int threads, int64_t per_thread) {
  const int64_t want = ceil_div(per_thread * int64_t(threads), std::max<int64_t>(1, n * p.nbx * p.ncb));
  return want > 1 ? ceil_div(p.g.out_h, want) : p.g.out_h;
}
// Rows per task that spread `units` (images x column and channel blocks)
// x blocks of rows evenly over the threads in as few tasks as that takes
// (the estimate: whole tasks dealt out evenly, each of ry rows). For rows
// that copy little or no halo per task: 14 rows at batch 1 on 2 threads
// take 2 tasks of 7, where nhwc_balanced_rows' 7 tasks of 2 split 4 + 3,
// and each task's first rows start cold (its last row prefetches nothing
// ahead).
inline int64_t nhwc_even_rows(int64_t out_h, int64_t units, int threads) {
  int64_t best_ry = out_h, best_load = 0;
  for (int64_t nby = 1; nby <= out_h; ++nby) {
    const int64_t ry = ceil_div(out_h, nby);
    if (ceil_div(out_h, ry) != nby) continue;  // the same blocks as a smaller nby
    const int64_t load = ceil_div(units * nby, threads) * ry;
    if (best_load == 0 || load < best_load) best_load = load, best_ry = ry;
  }
  return best_ry;
}
// Input columns copied per output column, relative to the stride.
inline double nhwc_copy_ratio(const NhwcPlan& p) { return double(p.wp) / double(p.bw * p.g.sw); }
// The channel block: the largest (all channels first: whole pixels are
// contiguous reads) whose column block keeps the copy within 1.15x of what
// the full width needs (the halo of the full width is unavoidable); 16
// channels when none does. Then rows are split until there are ~4 tasks
// per thread (N = 1 inference).
inline NhwcPlan plan_nhwc(const NhwcGeom& g, int64_t n, int threads, bool balance) {
  const double full = double((g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1) / double(g.out_w * g.sw);
  NhwcPlan best;
  bool found = false;
  for (int64_t cb : {int64_t(1) << 30, int64_t(1024), int64_t(512), int64_t(256), int64_t(128), int64_t(64),
                     int64_t(32), int64_t(16)}) {
    // NCHW reads one row per channel of the block: past 64 channels that
    // many streams defeat the hardware prefetcher (384 x 64x64 k3: 256-
    // channel blocks ran 1.9x slower than the flat engine).
    if (g.nchw && cb > 64) continue;
    const NhwcPlan p = plan_nhwc_cb(g, std::min(cb, g.c));
    if (p.bw > 0 && nhwc_copy_ratio(p) <= 1.15 * full) {
      best = p, found = true;
      break;
    }
  }
  if (!found) {
    int64_t cb = 16;
    best = plan_nhwc_cb(g, std::min(cb, g.c));
    // A window taller than the budget at 16 channels: fewer columns would
    // not help; keep 8 output columns and let the scratch exceed the budget.
    if (best.bw == 0) {
      best.bw = std::min<int64_t>(8, g.out_w);
      best.nbx = ceil_div(g.out_w, best.bw);
      best.wp = (best.bw - 1) * g.sw + (g.kw - 1) * g.dw + 1;
      best.scratch_floats = round_up(best.slots * best.wp * best.cbp + 64, 16);
    }
  }
  // Whole rows of all channels where the budget cut the rows into column
  // blocks but their window fits 3/4 of L2 (Zen 4's 1 MiB: 384 x 64x64 at
  // k5 and k7 had blocks of 30, 30 and 4 columns, each copying its halo,
  // the last at a fraction of the rate). Zen 4, 2 threads, 3-4 interleaved
  // runs (minima), two sets: the seeds' 384 x 64x64 k7 forward 1.22-1.31x
  // at batch 1, 384 x 32x32 5x7 1.11-1.17x, 384 x 64x64 k5 1.00-1.05x;
  // at batch 16 1.04-1.12x; grad-input at batch 1 1.10-1.24x. Channel
  // blocks raised the same way where no column block was cut (SLaK's 192 x
  // 28x28 5x49: 192 channels, not 128) were 0.92x, so only plans with
  // column blocks change (to all channels: 384 x 64x64 k7 had blocks of 256
  // and 128 as well). The largest channel block whose whole rows fit,
  // instead of all channels (384 x 64x64 k9-k27, SLaK's 51x5 / 49x5), was
  // 0.95-1.10x, geomean 1.03x, and not kept. Unmeasured on a smaller L2
  // (Zen 3's 512 KiB gives 96K floats, taking fewer shapes).
  if (!g.nchw && best.nbx > 1) {
    const NhwcPlan rows = plan_nhwc_cb(g, g.c, nhwc_row_budget());
    if (rows.nbx == 1) best = rows;
  }
  // Small images: the whole padded height at full width in the budget, with
  // as many channels per block as the rolling plan: whole mode (see
  // NhwcConv). With fewer channels it lost more to strided reads of the
  // input than it gained in L1 reuse (measured, 1 thread, N8: 28x28 k5
  // C240 3.5 -> 5.2 ms and 14x14 k7 C384 1.3 -> 1.5 ms at 64 / 128-channel
  // blocks).
  const int64_t rows_all = (g.out_h - 1) * g.sh + best.slots;
  const int64_t wp_full = (g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  for (int64_t cb : {int64_t(1) << 30, int64_t(1024), int64_t(512), int64_t(256), int64_t(128), int64_t(64),
                     int64_t(32), int64_t(16)}) {
    const int64_t c = std::min(cb, g.c);
    if (cb < 64 && !g.nchw) break;  // NHWC: blocks of 64 channels at least
    // (NCHW reads whole planes whatever the block: any block size will do.)
    if ((c < best.cb && !g.nchw) || best.nbx > 1) break;
    if (rows_all * wp_full * round_up(c, 16) > kNhwcBudget) continue;
    best = plan_nhwc_cb(g, c);
    best.bw = g.out_w, best.nbx = 1, best.wp = wp_full;
    best.slots = rows_all, best.whole = true;
    best.scratch_floats = round_up(rows_all * wp_full * best.cbp + 64, 16);
    break;
  }
  // In-place mode: fp32 NHWC at multiplier 1
  // without upsampling, whole channel vectors, stride 1 and at most 9 taps
  // (more below; stride 2 up to 5x5).
  // Batch 1, 2 threads, against the scratch copy (min of 3 interleaved
  // runs): forward k3 stride 1 1.05-1.28x on every MobileNetV2,
  // EfficientNet-B0 and seed k3 s1 shape but 384x64x64 (0.94x), geomean
  // 1.10x; grad-input 0.84-1.35x, geomean 1.07x; 1D k4 1.04-1.30x. k5
  // (0.90-1.14x) and k7 (0.88-1.04x) keep the copy.
  // Stride 2 (both ways, dilation 1) up to 5x5 as well, since its rows
  // prefetch their input (NhwcConv): it was 0.82-0.93x of the copy without
  // (session 5; 0.78-0.96x in session 21), while the copy writes and reads
  // back every input column for half as many outputs as at stride 1. Zen
  // 4, 2 threads, the 8 stride-2 shapes of MobileNetV2 and EfficientNet-B0,
  // 4-5 interleaved runs against the previous plan (minima; 14x14 and
  // smaller outputs in clipped tiles, below): batch 1 1.17-1.61x, batch 16
  // 1.06-1.60x, 1 thread 1.11-1.73x, AVX2 1.00-1.33x.
  // Also in place: an output narrower than the kernel with no padding
  // column (the seeds' k110 on 112x112, a 3x3 output): row balancing gives
  // each task one output row, so each copied the whole 110-row window for
  // 3 pixels, a third of the work (batch 1, 2 threads, data in cache, 3
  // interleaved runs: 0.73-0.76 -> 0.49-0.59 ms).
  // And kernels up to 5x5 when row balancing (below) will leave each task
  // so few output rows that the copy reads every input row 3 times or more
  // (batch 1 on 7x7 and 14x14 images: 1-2 output rows per task, 5-6 input
  // rows copied for them). Session 7, Xeon with AVX-512, batch 1, 2
  // threads, 7 interleaved runs, 5x5 forward: 7x7 and 14x14 images
  // 1.11-1.22x over the copy (medians), 28x28 0.99x, 56x56 1.06x, 64x64
  // 0.94x; grad-input 1.03-1.16x on 7x7 and 14x14, 0.78-0.95x on 28x28.
  const bool no_pad_cols = g.pl == 0 && (g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1 <= g.in_w;
  const int64_t ry0 = balance ? nhwc_balanced_rows(best, n, threads, 4) : g.out_h;
  const bool halo_bound = g.kh <= 5 && g.kw <= 5 && ry0 + (g.kh - 1) * g.dh >= 3 * ry0;
  // And rows of at most kNhwcClipCols output columns at KW 3, 5 or 7,
  // stride 1, and at most 7 tap rows (7x7 and 14x14 images), whole rows in edge-clipped
  // register tiles (NhwcRowClipped). Sapphire Rapids class Xeon, 2
  // threads, fp32, the 17 such shapes of the seven suites, 3 interleaved
  // runs against the previous plan (minima): batch 1 1.00-1.50x (geomean
  // 1.14x; ConvNeXt 7x7 and 14x14 k7 1.50x / 1.27x), train pass
  // 0.97-1.31x (1.11x), batch 16 1.07-2.00x (1.26x). SLaK's 47x5 on 14x14
  // was 0.92x: taller kernels keep the copy, whose channel-vector order
  // keeps a vector's weights in L1 across rows.
  // At stride 2 (along W; down H 1 or 2) kw 3 and 5 (before session 21 kw
  // 3 in bf16 only). Session
  // 16, Zen 4, 2 threads, the 4 such suite shapes (28x28 and 14x14 inputs),
  // 5 interleaved runs against the copy (minima): bf16 0.98-1.73x at batch
  // 1 and 16 (14x14 k3 1.69-1.73x, k5 1.53-1.61x); fp32 k5 1.30-1.38x,
  // fp32 k3 0.83-0.98x. Session 21, with the input prefetched, fp32 k3
  // too: hot, 1 thread, 14x14 outputs 1.5-1.7x over the copy; cold, 2
  // threads, 5-6 runs, over the same rows read in place without the tiles:
  // 14x14 outputs 1.11x (AVX2: the suites' two 0.87-0.94x, 64 channels
  // 1.20x), 7x7 outputs on AVX2 1.25-1.39x.
  // And kernels wider than 7 on images at most 7 wide (RepLKNet's and
  // SLaK's 13x13 on 7x7), stride 1: NhwcRowStationary's tiles keep a tap
  // row's input columns in registers and skip the padding taps the copy
  // computed (13 of a row's taps, at most 7 of them inside the image).
  // Session 16, Zen 4, 2 threads, the 2 such suite shapes, 5 interleaved
  // runs against the copy (minima): fp32 1.53-1.74x at batch 1, 1.47-1.69x
  // at batch 16; bf16 1.44-1.45x / 1.71-1.73x.
  const bool stationary =
      g.dw == 1 && g.sw == 1 && g.sh == 1 && g.kw > 7 && g.in_w <= kNhwcStatCols && g.out_w <= kNhwcStatCols;
  const bool short_rows = stationary || (g.out_w <= kNhwcClipCols && g.dw == 1 && g.kh <= 7 &&
                          ((g.sw == 1 && g.sh == 1 && (g.kw == 3 || g.kw == 5 || g.kw == 7)) ||
                           (g.sw == 2 && g.sh <= 2 && (g.kw == 3 || g.kw == 5))));
  const bool stride1 = g.sh == 1 && g.sw == 1;
  const bool stride2 = g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 && g.kh <= 5 && g.kw <= 5;
  best.in_place = g.f32 && !g.nchw && g.m == 1 && g.uh == 1 && g.uw == 1 && g.c % 16 == 0 &&
                  best.cb % 16 == 0 &&
                  ((stride1 && (g.kh * g.kw <= 9 || halo_bound || (g.out_w < g.kw && no_pad_cols))) || stride2 ||
                   short_rows);
  // Pair mode: bf16 where fp32 reads in place, at dilation 1 along W, whole
  // blocks of 32 channels (two of the widest vectors), rows of at most 16K
  // elements (1D rows of any length, below). Session 8, Sapphire Rapids class Xeon, 2 threads, k3, 3
  // interleaved runs against the copy (minima): 16 x 32x112x112 1.54x,
  // 16 x 480x14x14 1.39x, 16 x 1152x7x7 1.25x; 64 x 384x64x64 (rows of 24K
  // elements) 0.82x, so rows that long keep the copy. Except 1D rows (one
  // output row of one tap row), whose window is their one input row, read
  // once and in order by the pair rows' pixel-major walk:
  // Zen 4, 2 threads, batch 1, Mamba k4 (rows of 3M-134M
  // elements), two sets of 3 interleaved runs against the copy (minima):
  // 1.43-2.95x; AVX2 1.03-2.00x.
  // Short rows take the clipped tiles with pair mode's loads (k7 too).
  // Session 16, Zen 4 (AVX-512), 2 threads, the 12 short-row shapes of the
  // suites, 5 interleaved runs against the previous plan (pair rows at k3,
  // the copy at k5 / k7; minima): batch 16 1.00-1.99x (geomean 1.60x),
  // batch 1 0.86-1.52x (1.16x); AVX2 on the same machine 1.45x / 1.20x.
  best.pairs = !g.f32 && !g.nchw && g.m == 1 && g.uh == 1 && g.uw == 1 && g.c % 32 == 0 && best.cb % 32 == 0 &&
               g.dw == 1 && (g.src_w * g.c <= 16384 || (g.out_h == 1 && g.kh == 1)) &&
               ((stride1 && (g.kh * g.kw <= 9 || halo_bound)) || short_rows);
  // Narrow mode needs rows too short for a pixel group of 8 (else the
  // register window's 0.4-0.6 loads per FMA win) and 3 of them for a tile;
  // it is forward only (its tiles do not flip the kernel).
  best.narrow = !g.flipped && best.in_place && stride1 && g.out_w < g.kw && no_pad_cols && g.dh == 1 &&
                g.out_w < 8 && g.out_h >= 3;
  if (best.in_place || best.pairs) {
    best.scratch_floats = 16;  // no copy: the scratch goes unused
    // So does its budget, which cut the rows into column blocks (384 x
    // 64x64 at k3: 54 and 10 columns, the 10 at a fraction of the rate,
    // and rows split against them unevenly): whole rows. Zen 4, 2
    // threads, 5 interleaved runs (minima): that shape 1.47x at batch 1,
    // 1.40x at batch 16.
    best.bw = g.out_w, best.nbx = 1, best.wp = wp_full;
    // Except rows whose window of all channels exceeds twice the budget
    // (Mamba's 1D rows: 2048 pixels x 1536 channels, 12 MB): a 2D row
    // walks one channel vector at a time, so each vector's pass would
    // stream the whole row from memory, 64 bytes per pixel; even column
    // blocks that fit keep it in L2. (1D rows walk pixel-major, below;
    // for them the blocks only cut the row into tasks, and blocks 4x or
    // 16x wider measured 0.83-1.15x on the Mamba shapes, no direction.)
    // And single rows (1D) at a batch the threads do
    // not divide, where whole rows left threads idle (Mamba at batch 1:
    // one task): the fewest even column blocks that make the tasks a
    // multiple of the threads.
    const int64_t window = ((g.kh - 1) * g.dh + 1) * wp_full * round_up(g.c, 16);
    // Not narrow mode's rows, whose tiles are 3 columns wide: the seeds'
    // 110x110 kernel on 32 x 112x112 was cut into single columns (3 chains
    // per tile, weights arranged per column). Zen 4, 2 threads, 5
    // interleaved runs (minima): 0.367 -> 0.195 ms at batch 1, 3.18 ->
    // 2.28 ms at batch 16.
    int64_t nbx = window > 2 * kNhwcBudget && !best.narrow ? ceil_div(window, 2 * kNhwcBudget) : 1;
    const int64_t units = n * g.out_h, t = std::max(threads, 1);
    if (g.out_h == 1 && units < 4 * t) nbx = round_up(nbx, t / std::gcd(units, int64_t(t)));
    if (nbx > 1) {
      best.bw = ceil_div(g.out_w, std::min(g.out_w, nbx)), best.nbx = ceil_div(g.out_w, best.bw);
      best.wp = (best.bw - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    }
  }
  best.narrow_row_weights = best.narrow && n == 1 && g.out_h <= 3 && g.out_w <= 3;
  best.clipped = (best.in_place || best.pairs) && short_rows && !best.narrow;
  // Rows of 1D convolutions (one output row of one tap row) read in place
  // walk pixel-major: no next row is prefetched for them, and the channel-
  // major walk read one vector of each pixel per pass. Zen 4, 2 threads,
  // batch 1, Mamba k4 (2048 x 1536, 2048 x 5120, 65536 x 2048 channels), 3
  // interleaved runs (minima): 1.37x, 1.51x, 1.65x; pixel groups of 6
  // over groups of 10: 1.01-1.16x. On 2D rows it lost (MobileNetV2, batch
  // 1: 0.74-0.98x), where the next row's prefetch covers the window.
  best.pixel_major = best.in_place && !best.clipped && !best.narrow && g.out_h == 1 && g.kh == 1;
  if (best.clipped) {
    // No scratch, so no budget to block by: whole rows (a column block
    // would split the tiles: 768 x 7x7 k7 had blocks of 6 and 1 columns)
    // and all channels, so that each row is one contiguous span
    // (prefetched). Channel blocks walked outside the rows (whole mode's
    // order) or split across threads were slower, batch 1, 2 threads.
    best.bw = g.out_w, best.nbx = 1, best.wp = wp_full, best.whole = false;
    best.cb = g.c, best.ncb = 1, best.cbp = round_up(g.c, 16);
  }
  // Narrow mode's scratch: 3 tap rows of weights for a group of 8 vectors.
  if (best.narrow) best.scratch_floats = round_up(3 * g.kw * std::min(kNhwcGroup, best.cbp), 16);
  // Narrow mode: a thread's task takes rows in tiles of 3 (each input row
  // serves 3 output rows), so rows are split only as far as the threads need.
  if (balance) best.finish_rows(nhwc_balanced_rows(best, n, threads, best.narrow ? 1 : 4));
  // Whatever reads the input in place (clipped rows, in-place and pair
  // mode) copies no halo per task, so its rows per task come from
  // nhwc_even_rows. Zen 4, 2 threads, batch 1, 7 interleaved runs
  // (minima): the 7 14x14 clipped shapes of the suites, tasks of 7 rows
  // 1.15-1.45x (geomean 1.22x) over 7 tasks of 2, 14 tasks of 1 0.99x;
  // then 5 runs, the 8 stride-1 k3 shapes on 28x28 to 112x112, fp32
  // 0.99-1.33x (1.19x; 112x112 takes 2 tasks of 56 rows where 8 of 14 were
  // balanced too, but each task's start and last row ran without the
  // prefetch), bf16 pair rows 1.09x; grad-input 1.07x; batch 3 1.03x.
  // So does the copy of whole rows of all channels for kernels up to 7x7
  // (fewer halos copied): 5 runs, batch 1, fp32 28x28 / 56x56 k5 and k7
  // 1.17-1.32x, stride 2 1.06-1.13x, InceptionNeXt 1.00-1.07x; bf16 alike.
  // With column blocks (384 channels on 32x32 and 64x64) it was
  // 0.74-0.89x and past 7x7 0.96-1.02x: those keep nhwc_balanced_rows.
  const bool whole_rows_copy = !best.whole && best.nbx == 1 && best.ncb == 1 && g.kh * g.kw <= 49;
  if (balance && (best.clipped || best.in_place || best.pairs || whole_rows_copy) && !best.narrow)
    best.finish_rows(nhwc_even_rows(g.out_h, n * best.nbx * best.ncb, threads));
  // Clipped rows split by channels, one block per thread, where the rows
  // of all images give the threads fewer than 4 each (batch 1 on 7x7
  // images: 7 one-row tasks split 4 + 3) and each block has two units
  // (whole vectors, bf16 whole pairs) or more: no imbalance, and no
  // weights arranged by one core and read by the other after a barrier.
  // Zen 4, fp32, 2 threads, 5 interleaved runs (minima): batch 1 7x7
  // images 1.12-1.36x; 14x14 images 0.86-1.11x and batch 16 0.62-1.03x,
  // where each thread then streams half of every pixel, so they keep the
  // row split.
  const int64_t unit = g.f32 ? 16 : 32;
  best.owned = best.clipped && n * g.out_h < 4 * threads && g.c >= 2 * unit * threads;
  if (best.owned) {
    best.cb = round_up(ceil_div(g.c, threads), unit), best.ncb = ceil_div(g.c, best.cb), best.cbp = best.cb;
    best.finish_rows(g.out_h);
  }
  // Streaming stores for the output of in-place rows (forward, fp32) when
  // the call's input and output together exceed the last-level cache: the
  // output could not stay there for the next layer anyway, and stores that
  // bypass the cache skip reading each output line first (a third of the
  // traffic at stride 1, a sixth at stride 2). AVX-512 only (NhwcConv). Zen 4 (LLC 32 MiB), 2 threads, two or three sets of 4-6
  // interleaved runs against plain stores (minima): Mamba 1D k4 at batch 1
  // (84 MB, 1.07 GB) 1.33-1.53x; batch 16 MobileNetV2 3x3 (36-103 MB)
  // 1.07-1.42x but 144 x 56x56 at stride 2 (36 MB) 0.76-1.04x, the
  // seeds' 384 x 64x64 k3 (201 MB) 1.34-1.38x. The copy's rows (k5 / k7
  // at batch 16) were 0.93-1.08x with them: not taken.
  const double call_bytes =
      double(n) * double(g.in_h * g.in_w * g.cin + g.out_h * g.out_w * g.c) * (g.f32 ? 4.0 : 2.0);
  best.stream = best.in_place && !best.clipped && !best.whole && !best.narrow && !g.flipped && !g.nchw &&
                g.c % 16 == 0 && call_bytes > double(cpu::llc_bytes());
  // NCHW: the rolling mode stages one output row of the block's channels,
  // whole mode all rows of a group of up to kNhwcGroup channels (its loop
  // order: channel groups outside, rows inside).
  if (g.nchw)
    best.stage_floats = round_up(best.whole ? best.ry * best.bw * std::min(kNhwcGroup, best.cbp) : best.bw * best.cbp, 16);
  return best;
}

}  // namespace dwconv::cpu::simd

namespace dwconv::cpu::simd {

// Workspace of the NHWC core (forward and grad-input share it): weights
// [kh*kw][cp] and bias [cp] in fp32, then per-thread scratch sized by the
// largest plan (1 thread, no row balancing).
inline NhwcPlan nhwc_max_plan(const NhwcGeom& g, int64_t n) { return plan_nhwc(g, n, 1, false); }
inline size_t nhwc_shared_bytes(const NhwcPlan& pl) {
  return align_up(size_t(pl.g.kh * pl.g.kw * pl.cp) * 4) + align_up(size_t(pl.cp) * 4);
}
inline bool nhwc_scratch_fits(const NhwcGeom& g, int64_t n) {
  return nhwc_max_plan(g, n).scratch_floats <= kNhwcMaxScratch;
}
inline size_t nhwc_workspace(const Params& p, const NhwcGeom& g) {
  const NhwcPlan pl = nhwc_max_plan(g, p.shape.n);
  return shared_workspace(p, nhwc_shared_bytes(pl), size_t(pl.scratch_floats + pl.stage_floats) * 4);
}
struct NhwcCarve {
  NhwcPlan pl;  // balanced for `threads`
  int threads = 1;
  float *wt = nullptr, *bias = nullptr, *scratch = nullptr;
};
inline NhwcCarve nhwc_carve(const Params& p, const NhwcGeom& g) {
  const NhwcPlan big = nhwc_max_plan(g, p.shape.n);
  const SharedSlices sh = shared_slices(p, nhwc_shared_bytes(big), size_t(big.scratch_floats + big.stage_floats) * 4);
  NhwcCarve c;
  c.wt = reinterpret_cast<float*>(sh.shared);
  c.bias = reinterpret_cast<float*>(sh.shared + align_up(size_t(big.g.kh * big.g.kw * big.cp) * 4));
  const Slices& ws = sh.ws;
  c.threads = ws.threads;
  c.scratch = reinterpret_cast<float*>(ws.base);
  c.pl = plan_nhwc(g, p.shape.n, ws.threads, true);
  c.pl.stage_floats = big.stage_floats;  // the per-thread slices are cut for the largest plan
  return c;
}

// Per-thread bytes of the NCHW flat engine (forward or grad-input plan):
// planes, flat output, fp32 weights and the tap offsets.
inline size_t flat_thread_bytes(const FlatPlan& f, const Shape& s) {
  const int64_t KK = s.kh * s.kw;
  return align_up(size_t(flat_thread_floats(f, round_up(KK, 16))) * 4 + size_t(s.kh + s.kw) * 8);
}

}  // namespace dwconv::cpu::simd

namespace dwconv::cpu::simd {

// NHWC with few channels (C not a multiple of the vector): the row-flat
// engine (simd_nhwc_rowflat.cpp) vectorises along an image row's W x C
// floats instead of along C. At stride 1 along W, tap (i, j) of output
// float q reads input float q + (j*dw - pl)*C of its row: every tap is one
// unaligned load, and no lane is lost to rounding C up to the vector (12
// channels fill 12 of 16 lanes along C). A vector's channels repeat every
// P = lcm(C, L) / L vectors. The weights are arranged once per call as
// [kh*kw][E = P + kRowFlatB - 1][L], entry e of a tap holding phase e % P:
// a block of kRowFlatB vectors starting at phase ph then reads entries
// ph .. ph + kRowFlatB - 1 from one base pointer at fixed offsets (with a
// pointer per vector, 8-vector blocks spilled them). Vectors whose loads stay inside the input row (the
// interior, [v_lo, v_hi)) read it in place; the few at either end read a
// staged copy of their span with the padding as zeros.
constexpr int64_t kRowFlatB = 9;  // output vectors per register block, at most
struct RowFlatPlan {
  NhwcGeom g;
  int64_t L = 0, P = 0, E = 0;    // lanes; weight phases; weight entries per tap
  int64_t row = 0, in_row = 0;    // floats per output / input row (out_w*C, in_w*C)
  int64_t nv = 0;                 // vectors per output row (the last may be partial)
  int64_t off_min = 0, span = 0;  // tap 0's offset (-pl*C), last tap's minus first ((kw-1)*dw*C)
  int64_t v_lo = 0, v_hi = 0;     // interior vectors
  int64_t stage = 0;              // floats of one staged tap row (the wider end)
};
inline RowFlatPlan plan_rowflat(const NhwcGeom& g, int64_t L) {
  RowFlatPlan f;
  f.g = g;
  f.L = L;
  f.P = g.c / std::gcd(g.c, L);
  f.E = f.P + kRowFlatB - 1;
  f.row = g.out_w * g.c;
  f.in_row = g.in_w * g.c;
  f.nv = ceil_div(f.row, L);
  f.off_min = -g.pl * g.c;
  f.span = (g.kw - 1) * g.dw * g.c;
  const int64_t off_max = f.off_min + f.span;
  // Interior: v*L + off_min >= 0 and (v + 1)*L + off_max <= in_row.
  f.v_lo = std::min(f.nv, f.off_min < 0 ? ceil_div(-f.off_min, L) : int64_t(0));
  f.v_hi = f.in_row >= off_max ? std::min(f.nv, (f.in_row - off_max) / L) : int64_t(0);
  f.v_hi = std::max(f.v_hi, f.v_lo);
  f.stage = std::max(f.v_lo, f.nv - f.v_hi) * L + f.span;
  return f;
}
// Every float vector width a compiled target can have (AVX-512 16, AVX2 8,
// SSE4 / EMU128 4, HWY_SCALAR 1, which this build's GCC 12.2 gets instead
// of EMU128): the workspace covers whichever runs. The stage does not
// grow with the width (one lane can leave a narrow row one long right end
// where 16 split it in two), so each width is planned.
constexpr int64_t kRowFlatLanes[] = {16, 8, 4, 2, 1};
// E*L floats per tap for every L above (each divides 16, so P*L <= lcm(C, 16)).
inline int64_t rowflat_entry_floats(const NhwcGeom& g) { return std::lcm(g.c, int64_t(16)) + (kRowFlatB - 1) * 16; }
inline size_t rowflat_shared_bytes(const NhwcGeom& g) {
  const int64_t e = rowflat_entry_floats(g);
  return align_up(size_t(e * g.kh * g.kw) * 4) + align_up(size_t(e) * 4);
}
inline int64_t rowflat_thread_floats(const NhwcGeom& g) {
  int64_t stage = 0;
  for (int64_t L : kRowFlatLanes) stage = std::max(stage, plan_rowflat(g, L).stage);
  return 2 * g.kh * stage;  // the input rows of a pair of output rows
}
// Past this the staged rows (kh x the kernel's dilated width) outgrow the
// caches anyway; such shapes keep the NHWC core.
constexpr int64_t kRowFlatMaxFloats = 1024 * 1024;
// Stride 1 along W (any stride along H; grad-input's upsampled rows are
// skipped whole), multiplier 1, NHWC.
inline bool rowflat_fits(const NhwcGeom& g) {
  return g.sw == 1 && g.uw == 1 && g.m == 1 && !g.nchw && rowflat_thread_floats(g) <= kRowFlatMaxFloats &&
         rowflat_entry_floats(g) * g.kh * g.kw <= kRowFlatMaxFloats;
}
inline size_t rowflat_workspace(const Params& p, const NhwcGeom& g) {
  return shared_workspace(p, rowflat_shared_bytes(g), size_t(rowflat_thread_floats(g)) * 4);
}

}  // namespace dwconv::cpu::simd

namespace dwconv::cpu::simd {

// NHWC bf16 with native bf16 dot products (cpu_fwd_nhwc_bf16dp and
// cpu_dgrad_nhwc_bf16dp, x86_nhwc_bf16dp.cpp; AVX512_BF16 CPUs). vdpbf16ps
// adds, per fp32 lane, the products of two bf16 pairs; depthwise
// convolution keeps channels apart, so the pair is two taps of one channel:
// taps (2m, 2m + 1) of a kernel row meet input pixels (q, q + 1) of the
// padded row. Each input row of a task is copied once into a pixel-pair row
// PP[v][q] (channel vector v: 16 lanes, lane l = channel 16v + l holding the
// bf16 pixels q and q + 1), and output pixel ox takes tap pair m from
// PP[ox + 2m] with one instruction where fp32 needs two FMAs. The copy's
// interleave costs what the bf16 -> fp32 copy of the NHWC core costs.
// At stride 2 along W the pairs are of even columns, (2q - pl, 2q - pl + 1),
// and output ox takes pair m from PP[ox + m]: half the copy. Stride 1 or 2
// and dilation 1 along W; any stride and dilation along H; C a multiple of
// 16; multiplier 1 (grad-input at stride 1: the forward over dy with the
// flipped kernel, as the NHWC core).
struct Bf16DpPlan {
  NhwcGeom g;
  int64_t kw2 = 0;    // tap pairs per kernel row, ceil(kw / 2) (an odd kw's last pair has a zero weight)
  int64_t nv = 0;     // 16-channel vectors, C / 16
  int64_t cbv = 0;    // vectors per channel block (a task's channels)
  int64_t ncb = 0;    // channel blocks
  int64_t wp = 0;     // pixel pairs per scratch row: out_w + d * (kw2 - 1)
  int64_t d = 2;      // pair m of output ox is pixel pair ox + d m: 2 at stride 1, 1 at stride 2
  int64_t slots = 0;  // scratch rows: the kernel's dilated height
  int64_t ry = 0, nby = 0;  // output rows per task, row blocks
  int64_t tasks() const { return nby * ncb; }  // per image
  size_t row_bytes() const { return size_t(cbv * wp) * 64; }
  size_t thread_bytes() const { return size_t(slots) * row_bytes(); }
  // Weight pairs [nv][kh][kw2][16] (32-bit lanes), then the bias in fp32.
  size_t weight_bytes() const { return size_t(nv * g.kh * kw2) * 64; }
  size_t shared_bytes() const { return align_up(weight_bytes()) + align_up(size_t(g.c) * 4); }
};
// A task's scratch window (slots pixel-pair rows of its channel block) is
// kept within this many bytes where a block of one vector allows it: three
// quarters of the 1 MiB (or larger) L2 of every CPU with AVX512_BF16
// (Cooper Lake, Sapphire Rapids and later, Zen 4 and later). Blocks of
// all channels read whole pixels and let the next rows be prefetched as one
// span; at 256 KiB (384 x 64x64 k5 / k7 in blocks of 128 channels) they
// were 0.83-0.86x of whole blocks, and a 1 MiB budget took s001 k11's 1.25
// MiB window past the L2: 0.68x of 256 KiB. Zen 4, bf16, batch 1, 2
// threads, interleaved runs (session 19 results, table 6).
constexpr size_t kBf16DpBudget = 768 * 1024;
// Windows past this even at one vector per block (1D rows of tens of
// thousands of pixels) are left to the NHWC core's column blocks.
constexpr size_t kBf16DpMaxScratch = 4 * 1024 * 1024;
// Kernel rows a task lists per output row (on its stack).
constexpr int64_t kBf16DpMaxRows = 256;
inline bool bf16dp_geometry(const NhwcGeom& g) {
  return g.m == 1 && g.uh == 1 && g.uw == 1 && (g.sw == 1 || g.sw == 2) && g.dw == 1 && g.c % 16 == 0 && !g.nchw &&
         !g.f32 && g.kh <= kBf16DpMaxRows;
}
// threads: the balance of rows against channel blocks (1: whole images).
inline Bf16DpPlan plan_bf16dp(const NhwcGeom& g, int64_t n, int threads) {
  Bf16DpPlan p;
  p.g = g;
  p.kw2 = (g.kw + 1) / 2;
  p.nv = g.c / 16;
  p.d = 2 / g.sw;
  p.wp = g.out_w + p.d * (p.kw2 - 1);
  p.slots = (g.kh - 1) * g.dh + 1;
  // Whole 32-channel groups per block where there are two vectors or more
  // (the copy loads 32 bf16 channels at a time).
  const size_t per_vector = size_t(p.slots * p.wp) * 64;
  int64_t cbv = std::max<int64_t>(1, int64_t(kBf16DpBudget / std::max<size_t>(per_vector, 1)));
  if (cbv >= p.nv) {
    cbv = p.nv;
  } else if (cbv >= 2) {
    cbv -= cbv % 2;
  }
  p.cbv = cbv;
  p.ncb = ceil_div(p.nv, cbv);
  // Rows split evenly over the threads where images x blocks do not give
  // each thread work (batch 1): the fewest even blocks, as the NHWC core's
  // copies of whole rows (each task copies its window's halo rows again).
  p.ry = nhwc_even_rows(g.out_h, n * p.ncb, std::max(threads, 1));
  p.nby = ceil_div(g.out_h, p.ry);
  return p;
}
inline bool bf16dp_fits(const NhwcGeom& g) {
  if (!bf16dp_geometry(g)) return false;
  const Bf16DpPlan p = plan_bf16dp(g, 1, 1);
  return p.thread_bytes() <= kBf16DpMaxScratch;
}

}  // namespace dwconv::cpu::simd
