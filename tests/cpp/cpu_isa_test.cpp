// The SIMD CPU kernels on every Highway target this CPU runs: each SIMD
// variant (every CPU variant not named *_generic) that accepts a case is
// forced, on each target in turn (cpu::force_target, what DWCONV_ISA does),
// and checked by dwconv::check against the fp64 reference (relative error in
// the 2-norm: 1e-5 for f32, 1e-2 for bf16), on SIMD-specific shapes (vector
// tails, strides, dilations, large kernels), the shared edge shapes and
// random shapes. Also: the ISA cap itself, dispatch picking the SIMD
// variants, and grad-weight bitwise independent of the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/common.h"
#include "cpu/isa.h"
#include "cpu/simd_plan.h"
#include "dwconv/check.h"
#include "dwconv/kernels.h"

namespace dwconv {
namespace {

struct Buffers {
  std::vector<unsigned char> x, w, b, y, dy, dx, dw;
};

size_t bytes(DType t, int64_t n) { return size_t(n) * dtype_size(t); }

void fill(DType t, std::vector<unsigned char>& v, int64_t n, std::mt19937_64& rng) {
  v.assign(bytes(t, n), 0);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < n; ++i) {
    const float f = u(rng);
    if (t == DType::f32)
      reinterpret_cast<float*>(v.data())[i] = f;
    else if (t == DType::bf16)
      reinterpret_cast<bf16*>(v.data())[i] = to_bf16(f);
  }
}
Shape padded_shape(Shape s, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  s.pad_top = top, s.pad_bottom = bottom, s.pad_left = left, s.pad_right = right;
  return s;
}

std::vector<Shape> isa_shapes() {
  std::vector<Shape> v = {
      conv2d_shape(2, 3, 9, 11, 3, 3, 1, 1),
      conv2d_shape(1, 2, 17, 40, 3, 3, 2, 1),
      conv2d_shape(2, 2, 12, 13, 5, 5, 1, 2),
      conv2d_shape(1, 3, 15, 19, 5, 5, 2, 2),
      conv2d_shape(1, 2, 14, 14, 7, 7, 1, 3),
      conv2d_shape(1, 2, 9, 30, 4, 4, 1, 1),         // even kernel
      conv2d_shape(1, 2, 20, 21, 3, 3, 3, 0, 2),     // stride 3, dilation 2
      conv2d_shape(2, 2, 10, 10, 3, 3, 1, 1, 1, 3),  // multiplier 3
      conv2d_shape(1, 1, 7, 7, 13, 13, 1, 6),        // kernel larger than input
      conv2d_shape(1, 1, 40, 37, 31, 31, 1, 15),
      conv2d_shape(1, 2, 9, 9, 1, 1),
      conv2d_shape(1, 2, 6, 5, 3, 3, 1, 4),  // padding larger than kernel
      conv2d_shape(1, 1, 60, 12, 51, 5, 1, 0),
      conv1d_shape(2, 3, 100, 4, 1, 0, 1, 1, true),  // causal
      conv1d_shape(1, 2, 77, 31, 1, 15),
      conv1d_shape(1, 2, 50, 3, 2, 1, 3),
      conv2d_shape(3, 20, 8, 8, 3, 3, 1, 1),  // NHWC channel tails: 16 + 4
      conv2d_shape(1, 37, 5, 6, 3, 3, 1, 1),  // 16 + 16 + 4 + 1
      conv2d_shape(1, 7, 11, 1, 3, 1, 1, 1),  // W = 1
      conv2d_shape(1, 5, 1, 11, 1, 3, 1, 1),  // H = 1
      conv2d_shape(1, 2, 30, 30, 28, 28),            // output 3x3: cpu_fwd_nchw_dot, masked tail
      conv2d_shape(1, 2, 20, 24, 9, 19, 2, 3, 1, 2), // the same at stride 2 with a multiplier
      conv2d_shape(1, 3, 36, 36, 33, 33, 1, 0),      // kw = 33: two 16-lane vectors + tail on AVX-512
      conv2d_shape(4, 48, 7, 7, 7, 7, 1, 3),         // whole-image mode (fp32 NHWC: clipped tiles), pixel tails
      conv2d_shape(1, 8, 21, 18, 5, 5, 2, 2),        // NHWC grad-input at stride 2 (upsampled dy)
      conv2d_shape(1, 51, 6, 6, 5, 5, 1, 2),         // NHWC rows of 6: pairs of vectors, a single, a partial
      conv2d_shape(2, 40, 5, 5, 3, 3, 1, 1),         // NHWC rows of 5 at kw = 3
      // NHWC in-place mode (fp32, C a multiple of 16, stride 1 and at most 9 taps, up to 5x5 on few rows per task, or
      // a narrow valid output; stride 2 up to 5x5 below):
      conv2d_shape(2, 32, 9, 23, 3, 3, 1, 1),        // pixel groups, tiles and both edges
      conv2d_shape(1, 48, 12, 12, 3, 3, 1, 2, 2),    // dilation 2
      conv2d_shape(1, 16, 6, 5, 3, 3, 1, 4),         // padding beyond the kernel (grad-input: negative)
      conv2d_shape(1, 136, 7, 7, 3, 3, 1, 1),        // whole-image mode, channel groups
      conv2d_shape(1, 1024, 4, 40, 3, 3, 1, 1),      // fp32 in place: whole rows; bf16: the copy, whole rows in L2
      conv2d_shape(1, 1024, 3, 260, 3, 3, 1, 1),     // bf16: the copy's column blocks (past 3/4 of a 4 MiB L2)
      conv2d_shape(1, 32, 3, 2, 3, 3, 1, 1),         // no interior column
      conv1d_shape(2, 32, 50, 4, 1, 0, 1, 1, true),  // causal
      conv1d_shape(1, 48, 203, 4, 1, 0, 1, 1, true), // batch 1 in place: column blocks per thread
      conv1d_shape(1, 32, 150, 7, 1, 3),              // the same, k7 (generic width, in place)
      conv2d_shape(1, 32, 14, 15, 12, 12, 1, 0),     // output narrower than the kernel, no padding: 3x4 tiles
      conv2d_shape(2, 16, 20, 9, 7, 7, 1, 0),        // the same, 14x3 output (the scratch copy at bf16)
      conv2d_shape(1, 48, 12, 12, 10, 10, 1, 0),     // 3x3: one tile per block, weights arranged by tap row
      conv2d_shape(1, 32, 7, 20, 5, 5, 1, 2),        // 5x5 in place (1-2 rows per task): edge columns
      conv2d_shape(1, 256, 9, 40, 7, 7, 1, 3),       // the copy's whole rows within 3/4 of L2 (else column blocks)
      conv2d_shape(1, 32, 5, 5, 7, 7, 1, 6),         // grad-input: output narrower than the kernel, no padding column
      // Edge-clipped tiles of short rows (cpu_plan_test pins the mode).
      conv2d_shape(1, 48, 7, 7, 7, 7, 1, 3),
      conv2d_shape(2, 32, 14, 13, 5, 5, 1, 2),
      conv2d_shape(1, 16, 5, 16, 3, 3, 1, 1),
      conv2d_shape(1, 16, 6, 5, 7, 7, 1, 3),
      conv2d_shape(1, 32, 14, 14, 7, 7, 1, 3),  // k7: two tiles of 7 (15 of 16 registers on AVX2 / SSE4)
      // bf16 clipped tiles in pairs (fp32: in place, the edge columns): two
      // pair vectors, tiles of 7, 7 and 1; a kernel wider than the row.
      conv2d_shape(2, 64, 6, 15, 3, 3, 1, 1),
      conv2d_shape(1, 64, 6, 5, 7, 7, 1, 3),
      // Clipped tiles at stride 2: k5 and k3 (fp32 two vectors and one;
      // bf16 pairs, odd sizes).
      conv2d_shape(1, 48, 14, 14, 5, 5, 2, 2),
      conv2d_shape(2, 64, 13, 15, 5, 5, 2, 2),
      conv2d_shape(1, 64, 14, 14, 3, 3, 2, 1),
      conv2d_shape(1, 48, 13, 15, 3, 3, 2, 1),
      // fp32 in place at stride 2 on rows wider than the tiles: the whole
      // image with both edge columns (an odd input width), row by row,
      // channel and column blocks, a 4-wide kernel; 5x5 with asymmetric
      // padding below.
      conv2d_shape(1, 48, 11, 37, 3, 3, 2, 1),
      conv2d_shape(1, 48, 40, 40, 3, 3, 2, 1),
      conv2d_shape(1, 1024, 5, 100, 5, 5, 2, 2),
      conv2d_shape(1, 32, 9, 35, 4, 4, 2, 1),
      // Row-flat engine (few channels, vectorised along W x C): weights of
      // 3 / 5 phases, rows of one vector or less (all edge), pairs of
      // output rows sharing kx1 taps, an odd row count (a single last row).
      conv2d_shape(2, 12, 9, 13, 1, 11, 1, 0),
      conv2d_shape(1, 20, 5, 2, 3, 3, 1, 1),
      conv2d_shape(1, 24, 14, 7, 11, 1, 1, 0),
      conv2d_shape(1, 12, 15, 30, 3, 3, 1, 1),
  };
  Shape asym = conv2d_shape(1, 3, 11, 12, 3, 5, 1, 0);
  asym.pad_top = 2, asym.pad_bottom = 0, asym.pad_left = 0, asym.pad_right = 3;
  v.push_back(asym);
  Shape mix = conv2d_shape(2, 4, 13, 17, 5, 3, 1, 0);
  mix.stride_h = 2, mix.stride_w = 1, mix.dil_h = 1, mix.dil_w = 2, mix.pad_top = 1, mix.pad_bottom = 3,
  mix.pad_left = 2, mix.pad_right = 2;
  v.push_back(mix);
  Shape in_place_asym = conv2d_shape(2, 64, 10, 17, 2, 3, 1, 0);  // in-place mode, even and asymmetric
  in_place_asym.pad_top = 0, in_place_asym.pad_bottom = 1, in_place_asym.pad_left = 0, in_place_asym.pad_right = 2;
  v.push_back(in_place_asym);
  Shape s2_asym = conv2d_shape(2, 32, 12, 40, 5, 5, 2, 0);  // 5x5 in place at stride 2
  s2_asym.pad_top = 2, s2_asym.pad_bottom = 1, s2_asym.pad_left = 1, s2_asym.pad_right = 2;
  v.push_back(s2_asym);
  // 5x3 in place, asymmetric padding and a dilation along W.
  Shape k53 = conv2d_shape(1, 48, 6, 11, 5, 3, 1, 0);
  k53.pad_top = 2, k53.pad_bottom = 1, k53.pad_left = 1, k53.pad_right = 2, k53.dil_w = 2;
  v.push_back(k53);
  // Row-flat: 1 x 11 and 11 x 1 as InceptionNeXt pads them; stride 2 along
  // H only (grad-input: dy upsampled along H, every other row skipped) with
  // a dilation along H (forward pairs share 2 of 3 input rows, grad-input
  // pairs none).
  Shape incn_w = conv2d_shape(1, 12, 8, 20, 1, 11, 1, 0);
  incn_w.pad_left = incn_w.pad_right = 5;
  v.push_back(incn_w);
  Shape incn_h = conv2d_shape(2, 24, 12, 5, 11, 1, 1, 0);
  incn_h.pad_top = incn_h.pad_bottom = 5;
  v.push_back(incn_h);
  Shape rows_h = conv2d_shape(1, 12, 17, 9, 3, 3, 1, 0);
  rows_h.stride_h = 2, rows_h.dil_h = 2, rows_h.pad_top = 2, rows_h.pad_bottom = 1, rows_h.pad_left = 1,
  rows_h.pad_right = 1;
  v.push_back(rows_h);
  // Row-flat on a narrow row whose staged end is longest at one lane (the
  // HWY_SCALAR target: one right end of 75 floats where 16 lanes split it
  // into two ends of at most 72), and the same with stride 16 along H so
  // that both rows of a pair read 16 rows each (32 staged rows).
  Shape narrow_end = conv2d_shape(1, 5, 2, 8, 1, 9, 1, 0);
  narrow_end.pad_left = 1, narrow_end.pad_right = 7;
  v.push_back(narrow_end);
  Shape narrow_tall = conv2d_shape(1, 5, 32, 8, 16, 9, 1, 0);
  narrow_tall.stride_h = 16, narrow_tall.pad_left = 1, narrow_tall.pad_right = 7;
  v.push_back(narrow_tall);
  // Stationary tiles: kernels wider than 7 on images at most 7 wide
  // (fp32 two vectors and one; bf16 pairs), odd and even, asymmetric.
  v.push_back(conv2d_shape(1, 48, 7, 7, 13, 13, 1, 6));
  Shape stat_asym = padded_shape(conv2d_shape(2, 64, 5, 6, 9, 11, 1, 0), 4, 4, 5, 4);  // 5x5 output
  v.push_back(stat_asym);
  v.push_back(padded_shape(conv2d_shape(1, 32, 7, 7, 8, 8, 1, 0), 3, 4, 3, 4));
  Shape clipped_s12 = conv2d_shape(1, 32, 9, 20, 3, 3, 1, 1);  // bf16 clipped, stride 2 along W only
  clipped_s12.stride_w = 2;
  v.push_back(clipped_s12);
  Shape clipped_asym = conv2d_shape(1, 32, 9, 10, 3, 7, 1, 0);  // clipped tiles, asymmetric, dilation down H
  clipped_asym.pad_top = 1, clipped_asym.pad_bottom = 0, clipped_asym.pad_left = 0, clipped_asym.pad_right = 2;
  clipped_asym.dil_h = 2;
  v.push_back(clipped_asym);
  // Narrow mode with top and bottom padding (tile rows with missing tap
  // rows) and a dilation along W, one tile per block.
  Shape narrow_pad = conv2d_shape(1, 16, 5, 13, 4, 6, 1, 0);
  narrow_pad.pad_top = 1, narrow_pad.pad_bottom = 0, narrow_pad.dil_w = 2;
  v.push_back(narrow_pad);
  // bf16 pair mode (see cpu_plan_test): 5x5 on 7x7 (the per-tap form, two
  // pair vectors on AVX-512), and 3x3 with a dilation along H and
  // asymmetric padding (the register window, edge columns on both sides).
  v.push_back(conv2d_shape(1, 64, 7, 7, 5, 5, 1, 2));
  Shape pairs_dil = conv2d_shape(2, 96, 9, 13, 3, 3, 1, 0);
  pairs_dil.dil_h = 2, pairs_dil.pad_top = 3, pairs_dil.pad_bottom = 1, pairs_dil.pad_left = 2, pairs_dil.pad_right = 1;
  v.push_back(pairs_dil);
  // Grad-weight plane engine (cpu_plan_test pins its plan): groups of 16 +
  // 4 channels (the last vector's dy from a plane, not in place), batch
  // chunks, stride 2 with asymmetric padding, a kernel wider than 8 taps
  // (two tap chunks), a dilation (the generic form), bf16 through the dy
  // plane, a 1D row.
  v.push_back(padded_shape(conv2d_shape(5, 20, 9, 11, 3, 5, 2, 0), 1, 0, 2, 1));
  v.push_back(conv2d_shape(2, 40, 7, 7, 11, 11, 1, 5));
  v.push_back(conv2d_shape(1, 36, 10, 9, 3, 3, 1, 1, 2));
  v.push_back(conv1d_shape(2, 24, 90, 9, 1, 4));
  v.push_back(conv1d_shape(1, 32, 90, 9, 2, 4));  // dy in place at stride 2, two tap chunks
  // A 1D row longer than the fp32 band (kWgFlushPx = 2048 pixels): the
  // sums go to fp64 per band of columns. (Forward and grad-input: a
  // rolling pixel-major row; bf16 in pairs, 144K elements.)
  v.push_back(conv1d_shape(1, 32, 4500, 3, 1, 1));
  return v;
}

bool is_simd(const char* name) { return std::strstr(name, "generic") == nullptr; }

// Every SIMD variant that accepts a case, on one target.
void check_simd_variants(const std::string& target, const Shape& shape, uint64_t seed,
                         std::map<std::string, int>& runs) {
  for (Direction dir : {Direction::forward, Direction::grad_input, Direction::grad_weight})
    for (Layout layout : {Layout::nchw, Layout::nhwc})
      for (DType dt : {DType::f32, DType::bf16}) {
        Params p;
        p.shape = shape, p.dtype = dt, p.layout = layout;
        for (const Kernel* k : candidates(dir, p)) {
          if (!is_simd(k->name)) continue;
          check::Case c;
          c.shape = shape, c.dtype = dt, c.layout = layout, c.kernel = k->name, c.seed = seed;
          c.bias = (seed % 2) == 0;
          c.threads = int(1 + seed % 3);
          const check::Outcome o = check::run_case(dir, c);
          EXPECT_TRUE(o.ok) << target << ": " << to_string(dir) << " " << c.str() << ": " << o.message;
          ++runs[k->name];
        }
      }
}

class CpuIsa : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { cpu::force_target(GetParam().c_str()); }
  void TearDown() override { cpu::force_target(nullptr); }
};

TEST_P(CpuIsa, SimdVariantsOnIsaShapes) {
  ASSERT_EQ(cpu::active_target(), GetParam());
  std::map<std::string, int> runs;
  const std::vector<Shape> shapes = isa_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) check_simd_variants(GetParam(), shapes[i], 100 + i, runs);
  for (const char* name : {"cpu_fwd_nchw_vec", "cpu_fwd_nchw_blocked", "cpu_dgrad_nchw_vec", "cpu_dgrad_nchw_blocked",
                           "cpu_wgrad_nchw_vec", "cpu_wgrad_nchw_blocked", "cpu_fwd_nhwc_vec", "cpu_dgrad_nhwc_vec",
                           "cpu_wgrad_nhwc_vec", "cpu_wgrad_nhwc_plane"})
    EXPECT_GT(runs[name], 5) << name;
}

TEST_P(CpuIsa, SimdVariantsOnEdgeShapes) {
  std::map<std::string, int> runs;
  const std::vector<Shape> shapes = check::edge_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) check_simd_variants(GetParam(), shapes[i], 200 + i, runs);
}

TEST_P(CpuIsa, SimdVariantsOnRandomShapes) {
  std::map<std::string, int> runs;
  std::mt19937_64 rng(0x15a);
  for (int i = 0; i < 25; ++i) check_simd_variants(GetParam(), check::random_shape(rng), 300 + i, runs);
}

// Clipped short rows split into one channel block per thread, each
// thread arranging its block's weights (NhwcPlan::owned; cpu_plan_test
// pins which thread counts take it): every shape at 1, 2 and 3 threads.
std::vector<Shape> owned_shapes() {
  return {
      conv2d_shape(1, 96, 7, 7, 5, 5, 1, 2),    // fp32: blocks of 48 (2 threads), 32 (3)
      conv2d_shape(1, 80, 7, 7, 3, 3, 1, 1),    // fp32: 48 + 32 (2 threads)
      conv2d_shape(1, 128, 5, 9, 3, 3, 1, 1),   // bf16: 64 + 64 (2); fp32 48 + 48 + 32 (3)
      conv2d_shape(1, 224, 6, 6, 7, 7, 1, 3),   // bf16: 128 + 96 (2), 96 + 96 + 32 (3)
      conv2d_shape(1, 160, 7, 7, 11, 11, 1, 5), // stationary tiles; fp32 80 + 80 (2), bf16 96 + 64 (2)
  };
}
TEST_P(CpuIsa, SimdVariantsOnOwnedChannelBlocks) {
  std::map<std::string, int> runs;
  const std::vector<Shape> shapes = owned_shapes();
  for (size_t i = 0; i < shapes.size(); ++i)
    for (uint64_t t = 0; t < 3; ++t) check_simd_variants(GetParam(), shapes[i], 402 + 3 * i + t, runs);
}

// 1D rows read in place walk pixel-major (NhwcPlan::pixel_major; bf16
// in pairs, at any row length): cpu_plan_test pins the modes. Every shape
// at 1, 2 and 3 threads: whole-image and rolling tasks, column blocks
// whose interior columns end in pixel groups of 4, 2 and 1 after the 6s
// (64 x 301 at 3 threads: 99, 101 and 97), both edges, k3 / k4 / k5.
std::vector<Shape> pixel_major_shapes() {
  return {
      conv1d_shape(1, 64, 301, 5, 1, 2),                // whole image; bf16 pairs past 16K elements
      conv1d_shape(2, 32, 50, 4, 1, 0, 1, 1, true),     // causal
      conv1d_shape(1, 64, 1100, 4, 1, 0, 1, 1, true),   // rolling: a window past the scratch budget
      conv1d_shape(1, 48, 203, 3, 1, 1),                // k3; bf16 copies (48 channels)
  };
}
TEST_P(CpuIsa, SimdVariantsOnPixelMajorRows) {
  std::map<std::string, int> runs;
  const std::vector<Shape> shapes = pixel_major_shapes();
  for (size_t i = 0; i < shapes.size(); ++i)
    for (uint64_t t = 0; t < 3; ++t) check_simd_variants(GetParam(), shapes[i], 501 + 3 * i + t, runs);
  EXPECT_GT(runs["cpu_fwd_nhwc_vec"], 0);
  EXPECT_GT(runs["cpu_dgrad_nhwc_vec"], 0);
}

// Streaming stores (NhwcPlan::stream: in-place rows of calls whose data
// exceeds the last-level cache, here made 64 KiB): the output, poisoned
// with NaN and 64-byte aligned, must equal bitwise what plain stores give
// (the same output one float off alignment, where streaming is off), which
// the other tests check against the reference, and nothing outside the
// tensor may change. Pixel groups and tails, edge columns, stride 2, 1D,
// channel blocks, 1-3 threads. Only 16-lane targets stream (NhwcConv);
// on the others both outputs come from plain stores.
TEST_P(CpuIsa, StreamingStoresEqualPlainStores) {
  struct LlcOverride {
    LlcOverride() { cpu::override_llc_bytes(64 << 10); }
    ~LlcOverride() { cpu::override_llc_bytes(0); }
  } small_llc;
  const Shape shapes[] = {conv2d_shape(2, 32, 64, 61, 3, 3, 1, 1), conv2d_shape(1, 48, 40, 40, 3, 3, 2, 1),
                          conv2d_shape(1, 1024, 5, 100, 5, 5, 2, 2), conv1d_shape(1, 64, 3000, 4, 1, 0, 1, 1, true)};
  int streamed = 0;
  for (const Shape& s : shapes)
    for (int threads = 1; threads <= 3; ++threads) {
      SCOPED_TRACE(s.str() + " threads " + std::to_string(threads));
      cpu::simd::NhwcGeom g = cpu::simd::nhwc_forward(s);
      g.f32 = true;
      streamed += cpu::simd::plan_nhwc(g, s.n, threads, true).stream;
      std::mt19937_64 rng(threads);
      std::vector<unsigned char> x, w, b;
      fill(DType::f32, x, s.input_elems(), rng);
      fill(DType::f32, w, s.weight_elems(), rng);
      fill(DType::f32, b, s.out_c(), rng);
      const size_t out = size_t(s.output_elems());
      std::vector<float> buf(out + 32, std::numeric_limits<float>::quiet_NaN());
      float* aligned = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
      std::vector<float> plain_buf(out + 32, std::numeric_limits<float>::quiet_NaN());
      float* plain = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(plain_buf.data()) + 63) & ~uintptr_t(63)) + 1;
      for (float* y : {aligned, plain}) {
        Params p;
        p.shape = s, p.layout = Layout::nhwc, p.threads = threads, p.kernel = "cpu_fwd_nhwc_vec";
        p.input = x.data(), p.weight = w.data(), p.bias = b.data(), p.output = y;
        forward(p);
      }
      EXPECT_EQ(0, std::memcmp(aligned, plain, out * sizeof(float)));
      // Nothing written outside the tensor.
      for (size_t i = 0; i < buf.size(); ++i)
        if (buf.data() + i < aligned || buf.data() + i >= aligned + out) EXPECT_TRUE(std::isnan(buf[i])) << i;
    }
  EXPECT_EQ(streamed, 12);  // every shape and thread count streams (the plan)
}

// The bf16 dot-product kernels (x86_nhwc_bf16dp.cpp: AVX512_BF16 CPUs, the
// AVX-512 target): pixel-pair rows of odd and even vector counts (an odd
// one copies a lone 16-channel half), odd kernels (a zero high weight),
// even ones, kw 1 (weights element by element), tap-pair chunks of 4 + 1,
// 4 + 2 and 4 + 3, row tails of every kind (16-pixel groups and one rest
// group), asymmetric padding, stride and dilation along H, stride 2 along
// W (pairs of even columns: one and two tap chunks and the run-time ones),
// channel blocks (the last one odd), 1D, tall kernels; every thread count
// cpu_isa_test uses, with and without a bias, forward and (stride 1)
// grad-input.
std::vector<Shape> bf16dp_shapes() {
  Shape sh2 = conv2d_shape(1, 64, 15, 20, 5, 5, 1, 2);
  sh2.stride_h = 2;
  Shape dh2 = padded_shape(conv2d_shape(2, 16, 13, 18, 3, 3, 1, 1), 2, 2, 1, 1);
  dh2.dil_h = 2;
  Shape sh3 = padded_shape(conv2d_shape(1, 16, 14, 19, 2, 3, 1, 0), 0, 1, 1, 1);  // stride 3 past 2 slots
  sh3.stride_h = 3;
  Shape sd2 = padded_shape(conv2d_shape(2, 16, 15, 22, 3, 5, 1, 0), 2, 2, 2, 2);  // stride and dilation 2 along H
  sd2.stride_h = 2, sd2.dil_h = 2;
  Shape sw2 = padded_shape(conv2d_shape(2, 48, 11, 37, 5, 5, 1, 0), 2, 2, 1, 2);  // stride 2 along W only
  sw2.stride_w = 2;
  Shape sw2b = padded_shape(conv2d_shape(1, 16, 9, 30, 3, 4, 1, 0), 1, 1, 2, 1);  // even kernel at stride 2
  sw2b.stride_w = 2;
  Shape sw2c = padded_shape(conv2d_shape(1, 16, 6, 61, 3, 13, 1, 0), 1, 1, 6, 6);  // 7 pairs: 4 + 3
  sw2c.stride_w = 2;
  Shape sw2d = padded_shape(conv2d_shape(1, 32, 5, 70, 3, 19, 1, 0), 1, 1, 9, 9);  // 10 pairs: run-time chunks
  sw2d.stride_w = 2;
  return {
      conv2d_shape(2, 48, 9, 23, 5, 5, 1, 2),                          // 3 vectors; 23 = 16 + 7
      conv2d_shape(1, 32, 12, 40, 4, 4, 1, 1),                         // even kernel; 39 = 16 + 16 + 7
      padded_shape(conv2d_shape(1, 16, 10, 17, 3, 7, 1, 0), 2, 0, 5, 1),  // asymmetric, 3x7
      sh2,
      dh2,
      padded_shape(conv2d_shape(1, 32, 12, 12, 5, 1, 1, 0), 2, 2, 0, 0),  // kw = 1
      conv2d_shape(1, 16, 8, 30, 9, 9, 1, 4),                          // 5 tap pairs: 4 + 1
      conv2d_shape(1, 32, 6, 33, 11, 11, 1, 5),                        // 6: 4 + 2
      conv2d_shape(1, 16, 7, 21, 13, 13, 1, 6),                        // 7: 4 + 3
      conv2d_shape(1, 272, 16, 60, 15, 15, 1, 7),                      // channel blocks of 10 + 7 vectors
      conv2d_shape(3, 16, 5, 5, 3, 3, 1, 1),                           // rows of 5: the rest group alone
      conv1d_shape(2, 32, 100, 7, 1, 3),
      conv2d_shape(1, 16, 60, 12, 51, 5, 1, 0),                        // 51 kernel rows
      conv2d_shape(1, 32, 52, 121, 51, 5, 1, 0),                       // blocks of one vector (2 blocks)
      conv2d_shape(1, 16, 5, 40, 3, 17, 1, 0),                         // kw > 16: the run-time chunks, 4 + 4 + 1
      padded_shape(conv2d_shape(1, 16, 4, 45, 3, 19, 1, 0), 1, 1, 9, 9),  // 4 + 4 + 2
      padded_shape(conv2d_shape(1, 32, 3, 30, 1, 21, 1, 0), 0, 0, 3, 17), // 4 + 4 + 3
      conv1d_shape(1, 16, 77, 31, 1, 15),                              // 4 x 4
      conv1d_shape(1, 16, 60, 32, 1, 16),                              // even, 4 x 4
      sh3,
      sd2,
      sw2,
      sw2b,
      conv2d_shape(1, 32, 14, 14, 3, 3, 2, 1),                         // stride 2 both ways, 7 outputs
      sw2c,
      sw2d,
  };
}
void q_pins(Params p, float& dummy) {
  p.input = p.weight = p.grad_output = &dummy;
  p.output = p.grad_input = p.grad_weight = &dummy;
  Shape slak = conv2d_shape(1, 384, 14, 14, 47, 5, 1, 0);
  slak.pad_top = slak.pad_bottom = 23, slak.pad_left = slak.pad_right = 2;
  for (const Shape& s : {conv2d_shape(1, 256, 28, 28, 5, 5, 1, 2), conv2d_shape(1, 384, 64, 64, 7, 7, 1, 3),
                         conv2d_shape(1, 192, 28, 28, 3, 3, 1, 1), conv2d_shape(1, 512, 14, 14, 27, 27, 1, 13), slak}) {
    p.shape = s;
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_bf16dp") << s.str();
    EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nhwc_bf16dp") << s.str();
  }
  for (const Shape& s : {conv2d_shape(1, 1152, 7, 7, 5, 5, 1, 2), conv2d_shape(1, 384, 14, 14, 7, 7, 1, 3),
                         conv2d_shape(1, 480, 14, 14, 5, 5, 1, 2), conv2d_shape(1, 1024, 7, 7, 13, 13, 1, 6),
                         conv2d_shape(1, 64, 32, 32, 4, 4, 1, 1), conv2d_shape(1, 32, 112, 112, 110, 110),
                         conv2d_shape(1, 96, 56, 56, 3, 3, 1, 1), conv2d_shape(1, 384, 14, 14, 3, 3, 1, 1),
                         conv1d_shape(1, 512, 1024, 31, 1, 15)}) {
    p.shape = s;
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_vec") << s.str();
  }
  p.shape = conv2d_shape(1, 32, 112, 112, 110, 110);
  EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nhwc_bf16dp");
  // Stride 2 along W, 3x3 and 5x5 (forward only), 7-wide outputs included.
  for (const Shape& s : {conv2d_shape(1, 96, 112, 112, 3, 3, 2, 1), conv2d_shape(1, 576, 14, 14, 3, 3, 2, 1),
                         conv2d_shape(1, 672, 14, 14, 5, 5, 2, 2)}) {
    p.shape = s;
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_bf16dp") << s.str();
    EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nhwc_vec") << s.str();
  }
  p.shape = conv2d_shape(1, 96, 56, 56, 7, 7, 2, 3);  // stride 2 past 5x5: not measured
  EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_vec");
}
TEST(CpuBf16Dp, EveryShapeAgainstTheReference) {
  Params probe;
  probe.shape = conv2d_shape(1, 16, 8, 8, 3, 3, 1, 1), probe.dtype = DType::bf16, probe.layout = Layout::nhwc;
  const auto has = [&](Direction dir, const Params& q, const char* name) {
    for (const Kernel* k : candidates(dir, q))
      if (std::strcmp(k->name, name) == 0) return true;
    return false;
  };
  if (!has(Direction::forward, probe, "cpu_fwd_nhwc_bf16dp")) GTEST_SKIP() << "no AVX512_BF16 on this CPU, DWCONV_ISA caps it below AVX-512, or the compiler lacks it (DWCONV_HAVE_BF16DP)";
  std::map<std::string, int> runs;
  int declined = 0;
  const std::vector<Shape> shapes = bf16dp_shapes();
  for (size_t i = 0; i < shapes.size(); ++i)
    for (Direction dir : {Direction::forward, Direction::grad_input}) {
      const char* name = dir == Direction::forward ? "cpu_fwd_nhwc_bf16dp" : "cpu_dgrad_nhwc_bf16dp";
      Params q = probe;
      q.shape = shapes[i];
      if (!has(dir, q, name)) {
        EXPECT_TRUE(dir == Direction::grad_input && (shapes[i].stride_h > 1 || shapes[i].stride_w > 1))
            << name << " declined " << shapes[i].str();
        ++declined;
        continue;
      }
      for (int threads = 1; threads <= 3; ++threads) {
        check::Case c;
        c.shape = shapes[i], c.dtype = DType::bf16, c.layout = Layout::nhwc, c.kernel = name;
        c.seed = 500 + 7 * i + threads, c.bias = threads != 2, c.threads = threads;
        const check::Outcome o = check::run_case(dir, c);
        EXPECT_TRUE(o.ok) << to_string(dir) << " " << c.str() << ": " << o.message;
        ++runs[name];
      }
    }
  EXPECT_EQ(runs["cpu_fwd_nhwc_bf16dp"], 3 * int(shapes.size()));
  EXPECT_EQ(declined, 8);  // grad-input at stride 2 or 3
  EXPECT_EQ(runs["cpu_dgrad_nhwc_bf16dp"], 3 * (int(shapes.size()) - declined));
  // Every width of the rest group (1 to 15 pixels after groups of 16), at
  // stride 1 (forward and grad-input) and at stride 2 along W (forward).
  for (int64_t w = 1; w <= 15; ++w)
    for (int dir_sw = 0; dir_sw < 3; ++dir_sw) {
      const Direction dir = dir_sw == 1 ? Direction::grad_input : Direction::forward;
      check::Case c;
      c.shape = conv2d_shape(1, 16, 3, w + 16 * (w % 2), 3, 3, 1, 1), c.dtype = DType::bf16, c.layout = Layout::nhwc;
      if (dir_sw == 2) c.shape = conv2d_shape(1, 16, 3, 2 * (w + 16 * (w % 2)), 3, 3, 1, 1), c.shape.stride_w = 2;
      c.kernel = dir == Direction::forward ? "cpu_fwd_nhwc_bf16dp" : "cpu_dgrad_nhwc_bf16dp";
      c.seed = 600 + w, c.threads = 1;
      const check::Outcome o = check::run_case(dir, c);
      EXPECT_TRUE(o.ok) << to_string(dir) << " " << c.str() << ": " << o.message;
    }
  // Dispatch (the score's rule): kernels 5 wide and more on rows wider
  // than 16, or of 8-16 past the clipped tiles' 7x7; 3x3 at 128 channels on
  // rows of 28; not the clipped tiles' 14x14 images up to 7x7 kernels, rows
  // up to 7 (clipped and stationary tiles), 3x3 on fewer channels, 4 wide,
  // 1D or kx1. (Grad-input of the 110x110 kernel: rows of 112, taken.)
  float dummy = 0;
  q_pins(probe, dummy);
  // Only where the ISA cap allows the AVX-512 target, and only bf16.
  cpu::force_target("avx2");
  EXPECT_FALSE(has(Direction::forward, probe, "cpu_fwd_nhwc_bf16dp"));
  cpu::force_target(nullptr);
  probe.dtype = DType::f32;
  EXPECT_FALSE(has(Direction::forward, probe, "cpu_fwd_nhwc_bf16dp"));
}

// An odd kernel's last tap pair has a zero high weight, whose pixel is a
// real column past the window: an inf there must not make a NaN (0 x inf)
// where the reference is finite. One inf in the input (dy for grad-input)
// of odd kernels, kw 1 included; every output finite or not exactly where
// the generic kernel's is.
TEST(CpuBf16Dp, InfPastTheWindowMakesNoNaN) {
  for (const Shape& s : {conv2d_shape(1, 16, 6, 9, 3, 3, 1, 1), conv2d_shape(1, 32, 7, 21, 5, 5, 1, 2),
                         padded_shape(conv2d_shape(1, 16, 5, 40, 3, 17, 1, 0), 1, 1, 8, 8),
                         padded_shape(conv2d_shape(1, 16, 6, 9, 3, 1, 1, 0), 1, 1, 0, 0),
                         conv2d_shape(1, 16, 6, 9, 3, 3, 2, 1)})  // stride 2: forward only
    for (Direction dir : {Direction::forward, Direction::grad_input}) {
      Params p;
      p.shape = s, p.dtype = DType::bf16, p.layout = Layout::nhwc, p.threads = 1;
      const char* dp = dir == Direction::forward ? "cpu_fwd_nhwc_bf16dp" : "cpu_dgrad_nhwc_bf16dp";
      const bool fwd = dir == Direction::forward;
      const int64_t in_elems = fwd ? s.input_elems() : s.output_elems();
      const int64_t out_elems = fwd ? s.output_elems() : s.input_elems();
      const int64_t in_w = fwd ? s.w : s.out_w(), in_h = fwd ? s.h : s.out_h();
      std::vector<bf16> in(static_cast<size_t>(in_elems)), w(static_cast<size_t>(s.weight_elems()));
      std::vector<bf16> out_dp(static_cast<size_t>(out_elems)), out_ref(static_cast<size_t>(out_elems));
      std::mt19937_64 rng(700);
      std::uniform_real_distribution<float> u(-1.f, 1.f);
      for (bf16& v : in) v = to_bf16(u(rng));
      for (bf16& v : w) v = to_bf16(u(rng));
      // Channel 0 of the last column of the middle row.
      in[size_t(((in_h / 2) * in_w + in_w - 1) * s.c)] = to_bf16(std::numeric_limits<float>::infinity());
      p.weight = w.data();
      (fwd ? p.input : p.grad_output) = in.data();
      (fwd ? p.output : p.grad_input) = out_dp.data();
      bool has = false;
      for (const Kernel* k : candidates(dir, p)) has = has || std::strcmp(k->name, dp) == 0;
      if (!has && dir == Direction::grad_input && s.stride_w > 1) continue;
      if (!has) GTEST_SKIP() << "no AVX512_BF16 on this CPU, DWCONV_ISA caps it below AVX-512, or the compiler lacks it (DWCONV_HAVE_BF16DP)";
      for (auto [out, kernel] : {std::pair{&out_dp, dp}, std::pair{&out_ref, fwd ? "cpu_fwd_nhwc_generic" : "cpu_dgrad_nhwc_generic"}}) {
        (fwd ? p.output : p.grad_input) = out->data();
        p.kernel = kernel;
        run(dir, p);
      }
      int nonfinite = 0;
      for (size_t i = 0; i < out_dp.size(); ++i) {
        const bool ref_finite = std::isfinite(to_f32(out_ref[i]));
        nonfinite += !ref_finite;
        EXPECT_EQ(std::isfinite(to_f32(out_dp[i])), ref_finite) << to_string(dir) << " " << s.str() << " element " << i;
      }
      EXPECT_GT(nonfinite, 0) << s.str();  // the inf reaches some outputs
    }
}

INSTANTIATE_TEST_SUITE_P(Targets, CpuIsa, ::testing::ValuesIn(cpu::supported_targets()),
                         [](const auto& info) { return info.param; });

TEST(CpuIsaDispatch, TargetsAndCap) {
  const auto compiled = cpu::compiled_targets();
  ASSERT_FALSE(compiled.empty());
  const std::string fallback = compiled.back();
  EXPECT_TRUE(fallback == "emu128" || fallback == "scalar") << fallback;
  cpu::force_target("scalar");
  EXPECT_EQ(cpu::active_target(), fallback);
  cpu::force_target("emu128");
  EXPECT_EQ(cpu::active_target(), fallback);
  cpu::force_target("sse4");
  EXPECT_EQ(cpu::active_target(), "sse4");
  cpu::force_target(nullptr);
  EXPECT_EQ(cpu::active_target(), cpu::supported_targets().front());
  EXPECT_THROW(cpu::force_target("avx9000"), Error);
}

TEST(CpuIsaDispatch, SimdChosenWhereItApplies) {
  Params p;
  p.shape = conv2d_shape(2, 32, 28, 28, 3, 3, 1, 1);
  float dummy = 0;  // selection needs non-null pointers, never reads them
  p.input = p.weight = p.grad_output = &dummy;
  p.output = p.grad_input = p.grad_weight = &dummy;
  for (DType dt : {DType::f32, DType::bf16}) {
    p.dtype = dt;
    p.layout = Layout::nchw;
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nchw_blocked");
    EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nchw_blocked");
    EXPECT_EQ(selected_kernel(Direction::grad_weight, p), "cpu_wgrad_nchw_blocked");
    p.layout = Layout::nhwc;
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_vec");
    EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nhwc_vec");
    EXPECT_EQ(selected_kernel(Direction::grad_weight, p), "cpu_wgrad_nhwc_plane");
    // NHWC grad-weight: the scratch engine for planes past half of L2 and
    // for one group of few channels at batch 1.
    for (const Shape& s : {conv2d_shape(1, 32, 112, 112, 3, 3, 1, 1), conv2d_shape(1, 12, 56, 56, 3, 3, 1, 1)}) {
      Params q = p;
      q.shape = s;
      EXPECT_EQ(selected_kernel(Direction::grad_weight, q), "cpu_wgrad_nhwc_vec") << s.str();
    }
  }
  // NHWC with few channels or a kx1 kernel: the row-flat engine (stride 1
  // along W); at stride 2 along W, and with 48 channels on a 3x3, the core.
  p.layout = Layout::nhwc;
  Shape wide = conv2d_shape(1, 12, 56, 56, 1, 11, 1, 0);
  wide.pad_left = wide.pad_right = 5;
  Shape tall_nhwc = conv2d_shape(1, 96, 14, 14, 11, 1, 1, 0);
  tall_nhwc.pad_top = tall_nhwc.pad_bottom = 5;
  for (DType dt : {DType::f32, DType::bf16}) {
    p.dtype = dt;
    for (const Shape& s : {conv2d_shape(1, 12, 56, 56, 3, 3, 1, 1), wide, tall_nhwc}) {
      p.shape = s;
      EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_rowflat") << s.str();
      EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nhwc_rowflat") << s.str();
    }
    p.shape = conv2d_shape(1, 12, 56, 56, 3, 3, 2, 1);
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_vec");
    p.shape = conv2d_shape(1, 48, 56, 56, 3, 3, 1, 1);
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nhwc_vec");
    EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nhwc_vec");
  }
  // The flat engine keeps 1D, few channels and kx1 kernels.
  p.dtype = DType::f32;
  p.layout = Layout::nchw;
  Shape tall = conv2d_shape(2, 64, 28, 28, 11, 1, 1, 0);
  tall.pad_top = tall.pad_bottom = 5;
  for (const Shape& s : {conv1d_shape(2, 64, 500, 4, 1, 3), conv2d_shape(2, 12, 28, 28, 3, 3, 1, 1), tall}) {
    p.shape = s;
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nchw_vec") << s.str();
    EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nchw_vec") << s.str();
  }
  p.shape = tall;
  EXPECT_EQ(selected_kernel(Direction::grad_weight, p), "cpu_wgrad_nchw_vec");
  p.shape = conv1d_shape(2, 64, 500, 4, 1, 3);
  EXPECT_EQ(selected_kernel(Direction::grad_weight, p), "cpu_wgrad_nchw_blocked");
  p.shape = conv2d_shape(2, 96, 112, 112, 3, 3, 2, 1);  // grad-input at stride 2 on a large plane
  EXPECT_EQ(selected_kernel(Direction::grad_input, p), "cpu_dgrad_nchw_vec");
  p.shape = conv2d_shape(2, 32, 28, 28, 3, 3, 1, 1);
  p.dtype = DType::f64;  // stays generic
  EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nchw_generic");
}

TEST(CpuIsaDispatch, GradWeightBitwiseIndependentOfThreads) {
  const Shape s = conv2d_shape(3, 5, 33, 29, 5, 5, 1, 2);
  for (Layout layout : {Layout::nchw, Layout::nhwc}) {
    std::mt19937_64 rng(7);
    Buffers a;
    fill(DType::f32, a.x, s.input_elems(), rng);
    fill(DType::f32, a.dy, s.output_elems(), rng);
    Params shape_only;
    shape_only.shape = s, shape_only.layout = layout;
    int variants = 0;
    for (const Kernel* k : candidates(Direction::grad_weight, shape_only)) {  // every variant, forced
      SCOPED_TRACE(k->name);
      std::vector<std::vector<float>> results;
      for (int threads : {1, 2, 3}) {
        std::vector<float> dw(size_t(s.weight_elems()));
        Params p;
        p.shape = s, p.layout = layout, p.threads = threads, p.kernel = k->name;
        p.input = a.x.data(), p.grad_output = a.dy.data(), p.grad_weight = dw.data();
        grad_weight(p);
        results.push_back(dw);
      }
      EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), results[0].size() * 4));
      EXPECT_EQ(0, std::memcmp(results[0].data(), results[2].data(), results[0].size() * 4));
      ++variants;
    }
    EXPECT_GE(variants, 3);  // generic + vec + blocked (NCHW) or plane (NHWC)
  }
}

}  // namespace
}  // namespace dwconv
