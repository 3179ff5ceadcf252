// NHWC bf16 forward and grad-input with native bf16 dot products
// (vdpbf16ps, AVX512_BF16): cpu_fwd_nhwc_bf16dp, cpu_dgrad_nhwc_bf16dp.
// The plan and the pixel-pair layout: Bf16DpPlan in simd_plan.h.
//
// Stride 1 or 2 along W (at 2 the pixel pairs are of even columns only, and
// pair m of output ox is pixel pair ox + m), dilation 1 along W.
//
// Highway 1.0.3 (the build's) has no target with AVX512_BF16 and emulates
// its bf16 dot product with two FMAs, so this file is x86 intrinsics in
// functions compiled for AVX-512 + BF16 (target attributes: the rest of the
// file, and every inline function it shares with other files, stays
// baseline x86-64), run only where the CPU has AVX512_BF16 and the ISA cap
// (DWCONV_ISA, force_target) allows Highway's AVX-512 target; built where
// the compiler has them (DWCONV_HAVE_BF16DP, CMake). vdpbf16ps and the
// rounding to bf16 (vcvtneps2bf16) ignore MXCSR: subnormal inputs and
// results are flushed to zero (bf16 subnormals are below 1e-38).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "cpu/isa.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"
#include "cpu/simd_plan.h"
#include "hwy/targets.h"

#ifdef DWCONV_HAVE_BF16DP
#include <immintrin.h>
#endif

namespace dwconv::cpu {

#ifdef DWCONV_HAVE_BF16DP
namespace {

using simd::Bf16DpPlan;
using simd::NhwcGeom;

#define DWCONV_DP_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define DWCONV_DP_INLINE DWCONV_DP_TARGET inline __attribute__((always_inline))

// Weight pairs of 16 channels from vector vg: [kh][kw2][16] 32-bit lanes,
// lane l = channel 16 vg + l, low half tap 2m, high half tap 2m + 1 (zero
// past kw), of kernel row i; flipped (grad-input): taps (kh-1-i, kw-1-j).
// Two taps adjacent in memory are one 32-bit gather; a flipped pair is
// stored high-to-low (rotated by 16); the odd kernel's last tap is read as
// the high (or, flipped, low) half of an in-row pair, so nothing past a row
// is read. kw = 1 (one tap per row) element by element.
DWCONV_DP_TARGET void ArrangePairs(const Bf16DpPlan& pl, const uint16_t* w, bool flip, uint32_t* dst, int64_t vg) {
  const NhwcGeom& g = pl.g;
  const int64_t kk = g.kh * g.kw;
  const uint16_t* w0 = w + vg * 16 * kk;
  uint32_t* d = dst + vg * g.kh * pl.kw2 * 16;
  if (g.kw == 1) {
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t l = 0; l < 16; ++l) d[i * 16 + l] = w0[l * kk + (flip ? g.kh - 1 - i : i)];
    return;
  }
  const __m512i lane = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(int(2 * kk)));
  const __m512i low = _mm512_set1_epi32(0xFFFF);
  const __mmask16 all = 0xFFFF;
  for (int64_t i = 0; i < g.kh; ++i) {
    const int64_t row = (flip ? g.kh - 1 - i : i) * g.kw;
    for (int64_t m = 0; m < pl.kw2; ++m) {
      const int64_t j = 2 * m;
      const bool pair = j + 1 < g.kw;
      // Element index of the 32-bit read (two bf16) in the row.
      const int64_t at = !pair ? (flip ? 0 : g.kw - 2) : (flip ? g.kw - 2 - j : j);
      // (Masked forms with an all-ones mask: GCC 12's unmasked ones warn
      // about their own undefined source operand.)
      __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), all,
                                              _mm512_add_epi32(lane, _mm512_set1_epi32(int(2 * (row + at)))), w0, 1);
      if (pair) {
        if (flip) v = _mm512_maskz_rol_epi32(all, v, 16);
      } else {
        v = flip ? _mm512_and_si512(v, low) : _mm512_maskz_srli_epi32(all, v, 16);
      }
      _mm512_store_si512(d + (i * pl.kw2 + m) * 16, v);
    }
  }
}

// Input row iy of a task, channels [c0, c0 + 16 nvb) (x: that row at c0),
// as pixel pairs: dst[v][q] = (x[q sw - pl], x[q sw - pl + 1]) of channel
// vector v, zero outside the row. Pixel by pixel, 32 channels per load split by
// two permutes: the row is read in order (a walk down one channel group at
// a time would read it strided, a line per pixel, at about half the rate
// from DRAM).
DWCONV_DP_TARGET void CopyPairRow(const Bf16DpPlan& pl, const uint16_t* x, int64_t nvb, uint32_t* dst) {
  const NhwcGeom& g = pl.g;
  const __m512i lo_idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                                          37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
  const __m512i zero = _mm512_setzero_si512();
  const int64_t C = g.cin, wp = pl.wp, in_w = g.in_w, plane = wp * 16;
  const int64_t pairs = nvb / 2;  // whole 32-channel groups; an odd last vector alone
  for (int64_t q = 0; q < wp; ++q) {
    const int64_t ix = q * g.sw - g.pl;  // the pair's columns: ix, ix + 1
    const bool in_a = ix >= 0 && ix < in_w, in_b = ix + 1 >= 0 && ix + 1 < in_w;
    const uint16_t* xa = in_a ? x + ix * C : x;  // (unused where outside)
    const uint16_t* xb = in_b ? x + (ix + 1) * C : x;
    uint32_t* d = dst + q * 16;
    for (int64_t k = 0; k < pairs; ++k, d += 2 * plane) {
      const __m512i a = in_a ? _mm512_loadu_si512(xa + 32 * k) : zero;
      const __m512i b = in_b ? _mm512_loadu_si512(xb + 32 * k) : zero;
      _mm512_store_si512(d, _mm512_permutex2var_epi16(a, lo_idx, b));
      _mm512_store_si512(d + plane, _mm512_permutex2var_epi16(a, hi_idx, b));
    }
    if (nvb % 2) {
      const __m512i a = in_a ? _mm512_maskz_loadu_epi16(0xFFFF, xa + 32 * pairs) : zero;
      const __m512i b = in_b ? _mm512_maskz_loadu_epi16(0xFFFF, xb + 32 * pairs) : zero;
      _mm512_store_si512(d, _mm512_permutex2var_epi16(a, lo_idx, b));
    }
  }
}

// Tap pairs [0, MC) of one kernel row for R output pixels as a register
// window: pixel pair X (pp + 16 X) feeds output r = X - D mm with pair mm
// (D = 2 / stride: pair m of output ox is pixel pair ox + D m).
// Every index is a template argument so that the accumulators stay in
// registers; each pixel pair is pinned in a register (an empty asm), else
// GCC folds the load into every instruction that uses it. LAST_ALONE: the
// chunk's last pair is an odd kernel's last tap alone (zero high weight);
// its pixels' high halves are a real column past the window, masked off so
// that an inf there gives no NaN (0 x inf), as the reference has none.
template <int R, int MC, int D, bool LAST_ALONE, int X, int... M>
DWCONV_DP_INLINE void DpInput(const uint32_t* pp, const __m512i (&w)[MC], __m512 (&acc)[R],
                              std::integer_sequence<int, M...>) {
  __m512i in = _mm512_load_si512(pp + X * 16);
  asm("" : "+v"(in));
  constexpr int kLastR = X - D * (MC - 1);  // the output the last pair feeds
  __m512i alone = in;
  if constexpr (LAST_ALONE && kLastR >= 0 && kLastR < R) alone = _mm512_maskz_mov_epi16(0x55555555, in);
  ((X - D * M >= 0 && X - D * M < R
        ? void(acc[X - D * M] = _mm512_dpbf16_ps(acc[X - D * M], (__m512bh)(LAST_ALONE && M == MC - 1 ? alone : in),
                                                 (__m512bh)w[M]))
        : void()),
   ...);
}
template <int R, int MC, int D, bool LAST_ALONE, int... X>
DWCONV_DP_INLINE void DpInputs(const uint32_t* pp, const __m512i (&w)[MC], __m512 (&acc)[R],
                               std::integer_sequence<int, X...>) {
  (DpInput<R, MC, D, LAST_ALONE, X>(pp, w, acc, std::make_integer_sequence<int, MC>()), ...);
}
template <int R, int MC, int D, bool LAST_ALONE = false>
DWCONV_DP_INLINE void DpTaps(const uint32_t* pp, const uint32_t* wr, __m512 (&acc)[R]) {
  __m512i w[MC];
  for (int m = 0; m < MC; ++m) w[m] = _mm512_load_si512(wr + m * 16);
  DpInputs<R, MC, D, LAST_ALONE>(pp, w, acc, std::make_integer_sequence<int, R + D * (MC - 1)>());
}

// Output pixels [ox, ox + R) of the current row, one channel vector: rows[t]
// its pixel-pair row of valid kernel row t (at q = 0), wrows[t] that row's
// weight pairs; y at pixel ox of the vector, pixels C apart. KW > 0: the
// kernel width, its pairs in chunks fixed at compile time (up to 16 wide: 4
// pairs + the rest); 0: pl.g.kw in chunks of 4 pairs and a switch, whose
// join made GCC keep the accumulators on the stack (3x3 at 384 x 64x64: 3.4
// cycles per dot product where the fixed form runs near 1), so only kernels
// wider than 16 take it.
template <int R, int KW, int D>
DWCONV_DP_TARGET void DpPixels(const Bf16DpPlan& pl, const uint32_t* const* rows, const uint32_t* const* wrows,
                               int64_t nrows, const float* bias, int64_t ox, uint16_t* y) {
  constexpr int KW2 = (KW + 1) / 2;
  constexpr bool kOdd = KW % 2 == 1;
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = bias ? _mm512_load_ps(bias) : _mm512_setzero_ps();
  for (int64_t t = 0; t < nrows; ++t) {
    const uint32_t* pp = rows[t] + ox * 16;
    const uint32_t* wr = wrows[t];
    if constexpr (KW > 0 && KW2 <= 4) {
      DpTaps<R, KW2, D, kOdd>(pp, wr, acc);
    } else if constexpr (KW > 0) {
      static_assert(KW2 <= 8, "two chunks at most");
      DpTaps<R, 4, D>(pp, wr, acc);
      DpTaps<R, KW2 - 4, D, kOdd>(pp + 4 * D * 16, wr + 4 * 16, acc);
    } else {
      const int64_t kw2 = pl.kw2;
      const bool odd = pl.g.kw % 2 == 1;
      int64_t m = 0;
      for (; m + 4 < kw2; m += 4) DpTaps<R, 4, D>(pp + D * m * 16, wr + m * 16, acc);
      pp += D * m * 16, wr += m * 16;
      switch (kw2 - m) {  // the last chunk: 1 to 4 pairs
        case 4:
          odd ? DpTaps<R, 4, D, true>(pp, wr, acc) : DpTaps<R, 4, D>(pp, wr, acc);
          break;
        case 3:
          odd ? DpTaps<R, 3, D, true>(pp, wr, acc) : DpTaps<R, 3, D>(pp, wr, acc);
          break;
        case 2:
          odd ? DpTaps<R, 2, D, true>(pp, wr, acc) : DpTaps<R, 2, D>(pp, wr, acc);
          break;
        default:
          odd ? DpTaps<R, 1, D, true>(pp, wr, acc) : DpTaps<R, 1, D>(pp, wr, acc);
          break;
      }
    }
  }
  const int64_t C = pl.g.c;
  for (int r = 0; r < R; ++r)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + r * C), (__m256i)_mm512_cvtneps_pbh(acc[r]));
}

// The input rows the next output row copies and that output row (for
// writing), into L2, a few lines per pixel group of this row: in bursts of
// a vector's share (30 lines at 384 x 64x64) the prefetches waited on each
// other, 30 % of the copy's time.
struct DpPrefetch {
  simd::PrefetchSpan in, out;
  void step() { in.step<0>(), out.step<1>(); }
};

// The pixels of one output row of one channel vector: groups of 16, then
// the rest as one group (7- and 14-wide rows: one group of 7 or 14 chains,
// where 8 + 4 + 2 left 2 chains to wait on latency).
// pf: what the task prefetches, a step per group.
template <int KW, int D, int... R>
DWCONV_DP_TARGET void DpRowVector(const Bf16DpPlan& pl, const uint32_t* const* rows, const uint32_t* const* wrows,
                                  int64_t nrows, const float* bias, uint16_t* y, DpPrefetch& pf,
                                  std::integer_sequence<int, R...>) {
  const int64_t out_w = pl.g.out_w, C = pl.g.c;
  int64_t ox = 0;
  for (; ox + 16 <= out_w; ox += 16) pf.step(), DpPixels<16, KW, D>(pl, rows, wrows, nrows, bias, ox, y + ox * C);
  const int64_t left = out_w - ox;
  if (left > 0) pf.step();
  ((R + 1 == left ? DpPixels<R + 1, KW, D>(pl, rows, wrows, nrows, bias, ox, y + ox * C) : void()), ...);
}
template <int D, int... KW>
DWCONV_DP_TARGET void DpRowOfWidth(const Bf16DpPlan& pl, const uint32_t* const* rows, const uint32_t* const* wrows,
                                   int64_t nrows, const float* bias, uint16_t* y, DpPrefetch& pf,
                                   std::integer_sequence<int, KW...>) {
  const auto rests = std::make_integer_sequence<int, 15>();  // 1 to 15 pixels
  const int64_t kw = pl.g.kw <= 16 ? pl.g.kw : 0;
  ((KW == kw ? DpRowVector<KW, D>(pl, rows, wrows, nrows, bias, y, pf, rests) : void()), ...);
}
DWCONV_DP_TARGET void DpRow(const Bf16DpPlan& pl, const uint32_t* const* rows, const uint32_t* const* wrows,
                            int64_t nrows, const float* bias, uint16_t* y, DpPrefetch& pf) {
  const auto widths = std::make_integer_sequence<int, 17>();  // 0 (wider), 1 to 16
  if (pl.g.sw == 1)
    DpRowOfWidth<2>(pl, rows, wrows, nrows, bias, y, pf, widths);
  else
    DpRowOfWidth<1>(pl, rows, wrows, nrows, bias, y, pf, widths);
}

// Task (image n, channel block cb, row block by): each input row of its
// window copied once into the rolling pixel-pair rows, then every output
// row, one channel vector at a time (its kernel rows' pairs stay in L1).
DWCONV_DP_TARGET void DpTask(const Bf16DpPlan& pl, const uint16_t* x, const uint32_t* wpairs, const float* bias,
                             uint16_t* y, uint32_t* scratch, int64_t n, int64_t cb, int64_t by) {
  const NhwcGeom& g = pl.g;
  const int64_t C = g.c, kh = g.kh;
  const int64_t oy0 = by * pl.ry, ry = std::min(pl.ry, g.out_h - oy0);
  const int64_t v0 = cb * pl.cbv, nvb = std::min(pl.cbv, pl.nv - v0), c0 = v0 * 16;
  const int64_t row_words = pl.cbv * pl.wp * 16;
  const uint16_t* xn = x + n * g.in_h * g.in_w * C;
  const int64_t base = oy0 * g.sh - g.pt;
  constexpr int64_t kRows = simd::kBf16DpMaxRows;  // bf16dp_geometry bounds kh
  const uint32_t* rows[kRows];
  const uint32_t* vrows[kRows];
  const uint32_t* wrows[kRows];
  int64_t taps[kRows];
  int64_t next_in = base;
  for (int64_t r = 0; r < ry; ++r) {
    const int64_t oy = oy0 + r, top = oy * g.sh - g.pt;
    for (int64_t iy = std::max(next_in, top); iy < top + pl.slots; ++iy)
      if (iy >= 0 && iy < g.in_h)
        CopyPairRow(pl, xn + iy * g.in_w * C + c0, nvb, scratch + ((iy - base) % pl.slots) * row_words);
    next_in = top + pl.slots;
    int64_t nrows = 0;
    for (int64_t i = 0; i < kh; ++i) {
      const int64_t iy = top + i * g.dh;
      if (iy < 0 || iy >= g.in_h) continue;
      rows[nrows] = scratch + ((iy - base) % pl.slots) * row_words;
      taps[nrows++] = i;
    }
    uint16_t* yrow = y + (n * g.out_h + oy) * g.out_w * C + c0;
    // Where the block holds every channel (each row one contiguous span).
    DpPrefetch pf;
    if (nvb * 16 == C && r + 1 < ry) {
      const int64_t steps = nvb * simd::ceil_div(g.out_w, 16);
      const int64_t ntop = top + g.sh;
      const int64_t lo = std::max({next_in, ntop, int64_t(0)}), hi = std::min(ntop + pl.slots, g.in_h);
      if (lo < hi) pf.in.set(xn + lo * g.in_w * C, (hi - lo) * g.in_w * C * 2, steps);
      pf.out.set(yrow + g.out_w * C, g.out_w * C * 2, steps);
    }
    for (int64_t v = 0; v < nvb; ++v) {
      for (int64_t t = 0; t < nrows; ++t) {
        vrows[t] = rows[t] + v * pl.wp * 16;
        wrows[t] = wpairs + ((v0 + v) * kh + taps[t]) * pl.kw2 * 16;
      }
      const float* bv = bias ? bias + c0 + v * 16 : nullptr;
      DpRow(pl, vrows, wrows, nrows, bv, yrow + v * 16, pf);
    }
  }
}

bool cpu_has_bf16dp() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bf16");
  return has;
}

NhwcGeom geometry(const Params& p, Direction dir) {
  NhwcGeom g = dir == Direction::forward ? simd::nhwc_forward(p.shape) : simd::nhwc_grad_input(p.shape);
  g.f32 = p.dtype == DType::f32;
  return g;
}
bool accepts(const Params& p, Direction dir) {
  return p.layout == Layout::nhwc && p.dtype == DType::bf16 && p.shape.multiplier == 1 &&
         simd::simd_geometry(p.shape) && cap_allows(HWY_AVX3) && cpu_has_bf16dp() &&
         simd::bf16dp_fits(geometry(p, dir));
}

size_t workspace(const Params& p, Direction dir) {
  const Bf16DpPlan pl = simd::plan_bf16dp(geometry(p, dir), p.shape.n, 1);
  return simd::shared_workspace(p, pl.shared_bytes(), pl.thread_bytes());
}

void run(const Params& p, Direction dir) {
  const NhwcGeom g = geometry(p, dir);
  const bool flip = dir == Direction::grad_input;
  const Bf16DpPlan big = simd::plan_bf16dp(g, p.shape.n, 1);
  const simd::SharedSlices sh = simd::shared_slices(p, big.shared_bytes(), big.thread_bytes());
  const int threads = sh.ws.threads;
  const Bf16DpPlan pl = simd::plan_bf16dp(g, p.shape.n, threads);
  auto* wpairs = reinterpret_cast<uint32_t*>(sh.shared);
  auto* bias = reinterpret_cast<float*>(sh.shared + simd::align_up(pl.weight_bytes()));
  const auto* w = static_cast<const uint16_t*>(p.weight);
  const auto* b = flip ? nullptr : static_cast<const uint16_t*>(p.bias);
  const auto* x = static_cast<const uint16_t*>(flip ? p.grad_output : p.input);
  auto* y = static_cast<uint16_t*>(flip ? p.grad_input : p.output);
  const int64_t N = p.shape.n, tasks = N * pl.tasks();
  parallel_region(threads, [&] {
#pragma omp for schedule(static)
    for (int64_t vg = 0; vg < pl.nv; ++vg) {
      ArrangePairs(pl, w, flip, wpairs, vg);
      if (b)
        for (int64_t c = vg * 16; c < vg * 16 + 16; ++c) bias[c] = to_f32(bf16{b[c]});
    }
    auto* scratch = reinterpret_cast<uint32_t*>(sh.ws.get(omp_get_thread_num()));
#pragma omp for schedule(static) nowait
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t cb = t % pl.ncb, rest = t / pl.ncb, by = rest % pl.nby, n = rest / pl.nby;
      DpTask(pl, x, wpairs, b ? bias : nullptr, y, scratch, n, cb, by);
    }
  });
}

// Ahead of the NHWC core (10) where it measured faster (Zen 4, bf16, 2
// threads, interleaved runs; docs/performance-cpu.md "Session 19" and its
// results file): kernels 5 wide and more on rows wider than 16 (batch 1:
// 1.05-1.8x), and on rows of 8-16 past the core's clipped tiles (kernels
// taller or wider than 7: 1.19-1.34x); 3x3 at 128 channels or more on rows
// of 28 or more (1.04-1.46x). The core keeps what it reads in place: the
// clipped tiles of rows up to 16 with kernels up to 7x7 (14x14 k5 0.94-1.18x
// here at batch 1, 0.91-0.95x at batch 16; 14x14 k7 0.98-1.02x), the
// clipped and stationary tiles of rows up to 7 (0.6-0.9x in exploratory
// rounds), 3x3 on fewer channels or shorter rows, even kernels 4 wide (not
// measured); and 1D rows (one row per image leaves a few channel blocks as
// the only tasks: 0.5-0.96x in exploratory rounds) and kx1 kernels (one tap
// per pair). At stride 2 along W (pixel pairs of even columns only: half the
// copy) every 2D shape of MobileNetV2 and EfficientNet-B0 (3x3 and 5x5, 96
// to 672 channels) measured ahead, 7-wide outputs included: 1.07-1.86x at
// batch 1, 1.30-2.10x at batch 16; wider kernels at stride 2 are not
// measured and stay on the core.
bool preferred(const NhwcGeom& g) {
  if (g.out_h < 2 || g.kw < 3 || g.kw == 4) return false;
  if (g.sw == 2) return g.kw <= 5;  // measured on 3x3 and 5x5 only
  if (g.out_w <= int64_t(simd::kNhwcStatCols)) return false;
  if (g.kw == 3) return g.c >= 128 && g.out_w >= 28;
  const bool clipped_tiles = g.out_w <= int64_t(simd::kNhwcClipCols) && g.kw <= 7 && g.kh <= 7;
  return !clipped_tiles;
}
int score(const Params& p, Direction dir) {
  if (!accepts(p, dir)) return -1;
  return preferred(geometry(p, dir)) ? 12 : 9;
}
int score_fwd(const Params& p) { return score(p, Direction::forward); }
int score_dgrad(const Params& p) { return score(p, Direction::grad_input); }

}  // namespace

std::vector<Kernel> x86_nhwc_bf16dp_kernels() {
  return {{"cpu_fwd_nhwc_bf16dp", Device::cpu, Direction::forward, score_fwd,
           [](const Params& p) { run(p, Direction::forward); },
           [](const Params& p) { return workspace(p, Direction::forward); }},
          {"cpu_dgrad_nhwc_bf16dp", Device::cpu, Direction::grad_input, score_dgrad,
           [](const Params& p) { run(p, Direction::grad_input); },
           [](const Params& p) { return workspace(p, Direction::grad_input); }}};
}

#else  // a compiler without AVX512_BF16 (the CMake check): no such kernels

std::vector<Kernel> x86_nhwc_bf16dp_kernels() { return {}; }

#endif

}  // namespace dwconv::cpu
