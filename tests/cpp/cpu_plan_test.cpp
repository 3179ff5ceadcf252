// The NHWC core's plan (src/cpu/simd_plan.h): which mode a shape takes. The
// cpu_isa_test shapes reach the in-place, narrow and whole-image code only
// because the plan sends them there; a plan change that moved them would
// leave that code untested while every reference check still passed. These
// pin the mode of those shapes, for each thread count cpu_isa_test runs
// them with (1-3), and the reasons other shapes keep the copy.
#include <gtest/gtest.h>

#include "cpu/simd_plan.h"
#include "dwconv/dwconv.h"

namespace dwconv {
namespace {

using cpu::simd::NhwcPlan;

NhwcPlan forward_plan(const Shape& s, int threads, bool f32 = true) {
  cpu::simd::NhwcGeom g = cpu::simd::nhwc_forward(s);
  g.f32 = f32;
  return cpu::simd::plan_nhwc(g, s.n, threads, true);
}

Shape padded(Shape s, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  s.pad_top = top, s.pad_bottom = bottom, s.pad_left = left, s.pad_right = right;
  return s;
}

TEST(CpuNhwcPlan, InPlaceShapesOfTheIsaTest) {
  Shape k53 = padded(conv2d_shape(1, 48, 6, 11, 5, 3, 1, 0), 2, 1, 1, 2);
  k53.dil_w = 2;
  const Shape shapes[] = {
      conv2d_shape(2, 32, 9, 23, 3, 3, 1, 1),                    // 9 taps
      conv2d_shape(1, 48, 12, 12, 3, 3, 1, 2, 2),                // 9 taps, dilation 2
      padded(conv2d_shape(2, 64, 10, 17, 2, 3, 1, 0), 0, 1, 0, 2),  // even, asymmetric
      conv2d_shape(1, 32, 7, 20, 5, 5, 1, 2),                    // 5x5: 1-2 rows per task
      k53,                                                       // 5x3: 2 rows per task
  };
  for (const Shape& s : shapes)
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(s, t);
      EXPECT_TRUE(p.in_place) << s.str() << " threads " << t;
      EXPECT_EQ(p.nbx, 1) << s.str() << " threads " << t;  // no scratch budget to cut rows by
      EXPECT_FALSE(p.narrow) << s.str() << " threads " << t;
      EXPECT_FALSE(p.clipped) << s.str() << " threads " << t;  // the edge columns
      EXPECT_FALSE(forward_plan(s, t, /*f32=*/false).in_place) << "bf16 " << s.str();
    }
}

TEST(CpuNhwcPlan, ClippedShortRowsOfTheIsaTest) {
  // Rows of at most 16 output columns at kw 3, 5 or 7, stride 1 and
  // dilation 1 along W: in place (fp32; bf16 in pairs) in edge-clipped
  // tiles (NhwcRowClipped), whole rows and all channels per task.
  Shape asym = padded(conv2d_shape(1, 32, 9, 10, 3, 7, 1, 0), 1, 0, 0, 2);
  asym.dil_h = 2;
  const Shape shapes[] = {
      conv2d_shape(1, 48, 7, 7, 7, 7, 1, 3),    // one tile of 7: 2 + 1 vectors
      conv2d_shape(4, 48, 7, 7, 7, 7, 1, 3),    // batch 4
      conv2d_shape(1, 32, 14, 14, 7, 7, 1, 3),  // 14 columns at k7: two tiles of 7
      conv2d_shape(2, 32, 14, 13, 5, 5, 1, 2),  // 13 columns: tiles of 7, 4 and 2
      conv2d_shape(1, 16, 5, 16, 3, 3, 1, 1),   // 16 columns: 7, 7 and 2
      conv2d_shape(1, 16, 6, 5, 7, 7, 1, 3),    // kernel wider than the row: both edges in one tile
      conv2d_shape(1, 16, 6, 5, 3, 3, 1, 4),    // padding beyond the kernel: tiles wholly outside
      asym,                                     // asymmetric padding, dilation 2 down H
  };
  for (const Shape& s : shapes)
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(s, t);
      EXPECT_TRUE(p.in_place && p.clipped && !p.narrow) << s.str() << " threads " << t;
      EXPECT_EQ(p.bw, s.out_w()) << s.str();
      EXPECT_EQ(p.nbx * p.ncb, 1) << s.str();
      // bf16 in pairs: whole blocks of 32 channels.
      const NhwcPlan b = forward_plan(s, t, /*f32=*/false);
      EXPECT_EQ(b.clipped && b.pairs, s.c % 32 == 0) << "bf16 " << s.str() << " threads " << t;
      EXPECT_EQ(b.clipped, b.pairs) << "bf16 " << s.str();
    }
  // bf16 only (cpu_isa_test): pairs of tiles of 7 and one of 1, two pair
  // vectors on AVX-512; a 7x7 kernel wider than the 5-wide row.
  for (const Shape& s : {conv2d_shape(2, 64, 6, 15, 3, 3, 1, 1), conv2d_shape(1, 64, 6, 5, 7, 7, 1, 3)})
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan b = forward_plan(s, t, /*f32=*/false);
      EXPECT_TRUE(b.clipped && b.pairs && !b.in_place) << "bf16 " << s.str() << " threads " << t;
      EXPECT_EQ(b.nbx * b.ncb, 1) << s.str();
    }
  // Stride 2: kw 3 and 5 (cpu_isa_test's shapes).
  Shape s12 = conv2d_shape(1, 32, 9, 20, 3, 3, 1, 1);
  s12.stride_w = 2;
  struct Want {
    Shape s;
    bool f32, bf16;
  };
  const Want stride2[] = {
      {conv2d_shape(1, 48, 14, 14, 5, 5, 2, 2), true, false},  // 48 channels: no bf16 pairs
      {conv2d_shape(2, 64, 13, 15, 5, 5, 2, 2), true, true},
      {conv2d_shape(1, 64, 14, 14, 3, 3, 2, 1), true, true},
      {conv2d_shape(1, 48, 13, 15, 3, 3, 2, 1), true, false},
      {s12, true, true},
  };
  for (const Want& w : stride2)
    for (int t = 1; t <= 3; ++t) {
      EXPECT_EQ(forward_plan(w.s, t).clipped, w.f32) << w.s.str() << " threads " << t;
      EXPECT_EQ(forward_plan(w.s, t, /*f32=*/false).clipped, w.bf16) << "bf16 " << w.s.str() << " threads " << t;
    }
  const Shape others[] = {
      conv2d_shape(1, 32, 7, 7, 3, 3, 2, 1, 2),     // stride 2, dilation 2
      conv2d_shape(1, 32, 7, 7, 3, 3, 1, 2, 2),     // dilation 2 along W
      conv2d_shape(1, 32, 7, 17, 3, 3, 1, 1),       // 17 columns
      conv2d_shape(1, 32, 7, 8, 9, 9, 1, 4),        // kw 9 on a row of 8 (7 or fewer: stationary tiles)
      conv2d_shape(1, 32, 7, 8, 9, 9, 1, 3),        // the same, 6 output columns: the input is wider than 7
      conv2d_shape(1, 32, 7, 7, 9, 9, 1, 5),        // a 7-wide image, 9 output columns
      conv2d_shape(1, 32, 7, 7, 9, 9, 2, 4),        // kw 9, stride 2
      conv2d_shape(1, 40, 7, 7, 7, 7, 1, 3),        // 40 channels
  };
  for (const Shape& s : others) EXPECT_FALSE(forward_plan(s, 2).clipped) << s.str();
}

TEST(CpuNhwcPlan, StationaryTilesOfTheIsaTest) {
  // Kernels wider than 7 on images at most 7 wide, stride 1 and dilation 1
  // along W: the clipped plan (whole rows in place; bf16 in pairs), whose
  // kw selects NhwcRowStationary; forward and grad-input alike.
  const Shape shapes[] = {
      conv2d_shape(1, 48, 7, 7, 13, 13, 1, 6),                     // fp32 2 + 1 vectors; bf16 48: the copy
      padded(conv2d_shape(2, 64, 5, 6, 9, 11, 1, 0), 4, 4, 5, 4),  // 5x5 output, asymmetric
      padded(conv2d_shape(1, 32, 7, 7, 8, 8, 1, 0), 3, 4, 3, 4),   // even kernel
  };
  for (const Shape& s : shapes)
    for (int t = 1; t <= 3; ++t)
      for (bool grad_input : {false, true}) {
        cpu::simd::NhwcGeom g = grad_input ? cpu::simd::nhwc_grad_input(s) : cpu::simd::nhwc_forward(s);
        g.f32 = true;
        const NhwcPlan p = cpu::simd::plan_nhwc(g, s.n, t, true);
        const std::string what = s.str() + (grad_input ? " grad-input" : "") + " threads " + std::to_string(t);
        EXPECT_TRUE(p.in_place && p.clipped && !p.narrow) << what;
        EXPECT_EQ(p.bw, g.out_w) << what;
        g.f32 = false;
        const NhwcPlan b = cpu::simd::plan_nhwc(g, s.n, t, true);
        EXPECT_EQ(b.clipped && b.pairs, s.c % 32 == 0) << "bf16 " << what;
      }
}

TEST(CpuNhwcPlan, OwnedChannelBlocksOfTheIsaTest) {
  // cpu_isa_test's owned_shapes(): clipped rows whose images give the
  // threads fewer than 4 rows each split into one channel block per thread
  // (blocks of whole 16 channels, bf16 32), given two of them per thread.
  struct Want {
    Shape s;
    bool f32;
    int threads;
    int64_t cb;  // 0: not owned
  };
  const Want wants[] = {
      {conv2d_shape(1, 96, 7, 7, 5, 5, 1, 2), true, 1, 0},    // 7 rows: one thread has 4 or more
      {conv2d_shape(1, 96, 7, 7, 5, 5, 1, 2), true, 2, 48},
      {conv2d_shape(1, 96, 7, 7, 5, 5, 1, 2), true, 3, 32},
      {conv2d_shape(1, 96, 7, 7, 5, 5, 1, 2), false, 2, 0},   // bf16: 96 < 2 x 2 x 32
      {conv2d_shape(1, 80, 7, 7, 3, 3, 1, 1), true, 2, 48},
      {conv2d_shape(1, 80, 7, 7, 3, 3, 1, 1), true, 3, 0},
      {conv2d_shape(1, 128, 5, 9, 3, 3, 1, 1), false, 2, 64},
      {conv2d_shape(1, 128, 5, 9, 3, 3, 1, 1), true, 3, 48},
      {conv2d_shape(1, 224, 6, 6, 7, 7, 1, 3), false, 2, 128},
      {conv2d_shape(1, 224, 6, 6, 7, 7, 1, 3), false, 3, 96},
      {conv2d_shape(2, 224, 6, 6, 7, 7, 1, 3), false, 2, 0},  // batch 2: 12 rows for 2 threads
      {conv2d_shape(1, 768, 14, 14, 7, 7, 1, 3), true, 2, 0}, // 14 rows
      {conv2d_shape(1, 160, 7, 7, 11, 11, 1, 5), true, 2, 80},   // stationary tiles
      {conv2d_shape(1, 160, 7, 7, 11, 11, 1, 5), true, 3, 64},
      {conv2d_shape(1, 160, 7, 7, 11, 11, 1, 5), false, 2, 96},
  };
  for (const Want& w : wants) {
    const NhwcPlan p = forward_plan(w.s, w.threads, w.f32);
    const std::string what = (w.f32 ? "f32 " : "bf16 ") + w.s.str() + " threads " + std::to_string(w.threads);
    EXPECT_TRUE(p.clipped) << what;
    EXPECT_EQ(p.owned, w.cb > 0) << what;
    if (w.cb == 0) continue;
    EXPECT_EQ(p.cb, w.cb) << what;
    EXPECT_EQ(p.ncb, (w.s.c + w.cb - 1) / w.cb) << what;
    EXPECT_EQ(p.nby * p.nbx, 1) << what;
  }
}

TEST(CpuNhwcPlan, NarrowShapesOfTheIsaTest) {
  const Shape shapes[] = {
      conv2d_shape(1, 32, 14, 15, 12, 12, 1, 0),  // 3x4 output
      conv2d_shape(2, 16, 20, 9, 7, 7, 1, 0),     // 14x3 output
      conv2d_shape(1, 48, 12, 12, 10, 10, 1, 0),  // 3x3 output
  };
  for (const Shape& s : shapes)
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(s, t);
      EXPECT_TRUE(p.in_place && p.narrow) << s.str() << " threads " << t;
    }
  // Tap rows arranged per tile: batch 1 and a 3x3 output only.
  EXPECT_TRUE(forward_plan(shapes[2], 2).narrow_row_weights);
  EXPECT_FALSE(forward_plan(shapes[0], 2).narrow_row_weights);
  // The seeds' 110x110 kernel on 112x112 (a 3x3 output): its window of all
  // channels is past the in-place column split's limit, which must not cut
  // narrow tiles into single columns (3 chains each, weights arranged per
  // column: 1.9x slower at batch 1, 2.7x with the data in cache).
  for (int64_t n : {1, 16})
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(conv2d_shape(n, 32, 112, 112, 110, 110, 1, 0), t);
      EXPECT_TRUE(p.narrow) << "batch " << n << " threads " << t;
      EXPECT_EQ(p.nbx, 1) << "batch " << n << " threads " << t;
      EXPECT_EQ(p.bw, 3) << "batch " << n << " threads " << t;
    }
}

// Where kNhwcBudget cuts the copy's rows into column blocks, whole rows of
// all channels take their place if their window fits nhwc_row_budget() (3/4
// of this machine's L2): the seeds' 384 x 64x64 k5 / k7 and 384 x 32x32
// 5x7, and cpu_isa_test's 256 x 9x40 k7.
TEST(CpuNhwcPlan, WholeRowsWithinL2) {
  EXPECT_GE(cpu::simd::nhwc_row_budget(), cpu::simd::kNhwcBudget);
  Shape demo = conv2d_shape(1, 384, 32, 32, 5, 7, 1, 0);
  demo = padded(demo, 2, 2, 3, 3);
  const Shape shapes[] = {conv2d_shape(1, 384, 64, 64, 5, 5, 1, 2), conv2d_shape(1, 384, 64, 64, 7, 7, 1, 3), demo,
                          conv2d_shape(1, 256, 9, 40, 7, 7, 1, 3)};
  for (const Shape& s : shapes) {
    const int64_t window = s.kh * (s.w + s.kw - 1) * s.c;
    ASSERT_GT(window, cpu::simd::kNhwcBudget) << s.str();  // column blocks at the base budget
    const bool fits = window <= cpu::simd::nhwc_row_budget();
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(s, t);
      EXPECT_FALSE(p.in_place) << s.str();
      EXPECT_EQ(p.nbx == 1 && p.cb == s.c, fits) << s.str() << " threads " << t << " budget "
                                                   << cpu::simd::nhwc_row_budget();
    }
  }
}

// Narrow mode is forward only: a grad-input geometry with an output
// narrower than the kernel and no padding column (forward padding (k-1)*d)
// is an ordinary in-place plan, split into column blocks where its window
// is long (NhwcConv would not run narrow tiles for it anyway).
TEST(CpuNhwcPlan, NoNarrowModeForGradInput) {
  for (int t = 1; t <= 3; ++t) {
    const cpu::simd::NhwcGeom g = [] {
      cpu::simd::NhwcGeom q = cpu::simd::nhwc_grad_input(conv2d_shape(1, 2048, 5, 5, 7, 7, 1, 6));
      q.f32 = true;
      return q;
    }();
    ASSERT_EQ(g.pl, 0);
    ASSERT_LT(g.out_w, g.kw);
    const NhwcPlan p = cpu::simd::plan_nhwc(g, 1, t, true);
    EXPECT_TRUE(p.in_place && !p.narrow) << "threads " << t;
    const NhwcPlan f = forward_plan(conv2d_shape(1, 2048, 11, 11, 7, 7, 1, 0), t);  // its forward twin
    EXPECT_TRUE(f.in_place && f.narrow) << "threads " << t;
  }
}

// NCHW keeps channel blocks of at most 64 (one row stream per channel)
// whatever L2 holds.
TEST(CpuNhwcPlan, NchwBlocksIgnoreTheRowBudget) {
  for (int k : {5, 7}) {
    const cpu::simd::NhwcGeom g = cpu::simd::nchw_blocked_forward(conv2d_shape(1, 384, 64, 64, k, k, 1, k / 2));
    EXPECT_LE(cpu::simd::plan_nhwc(g, 1, 2, true).cb, 64) << "k" << k;
  }
}

TEST(CpuNhwcPlan, PairModeForBf16) {
  // bf16 reads in place in pairs where fp32 reads in place, given whole
  // blocks of 32 channels, dilation 1 along W and rows of <= 16K elements,
  // or 1D rows of any length (cpu_isa_test's 64 x 301 k5: 19K elements).
  const Shape pairs[] = {
      conv1d_shape(1, 64, 301, 5, 1, 2),
      conv1d_shape(1, 1536, 2048, 4, 1, 0, 1, 1, true),
      conv2d_shape(2, 32, 9, 23, 3, 3, 1, 1),
      conv2d_shape(1, 1024, 4, 10, 3, 3, 1, 1),
      conv2d_shape(1, 64, 7, 7, 5, 5, 1, 2),  // 5x5, 1-2 rows per task
      conv2d_shape(16, 32, 112, 112, 3, 3, 1, 1),
      padded(conv2d_shape(2, 96, 9, 13, 3, 3, 1, 0), 3, 1, 2, 1),  // cpu_isa_test's, without its dilation
  };
  for (const Shape& s : pairs)
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(s, t, /*f32=*/false);
      EXPECT_TRUE(p.pairs && !p.in_place) << s.str() << " threads " << t;
      EXPECT_FALSE(forward_plan(s, t).pairs) << "fp32 " << s.str();
    }
  const Shape copies[] = {
      conv2d_shape(1, 48, 12, 12, 3, 3, 1, 1),       // 48 channels
      conv2d_shape(1, 64, 12, 12, 3, 3, 1, 1, 2),    // dilation 2
      conv2d_shape(1, 64, 56, 56, 3, 3, 2, 1),       // stride 2 on rows of 28 (14 take the clipped tiles)
      conv2d_shape(64, 384, 64, 64, 3, 3, 1, 1),     // rows of 24K elements
      conv2d_shape(1, 384, 3, 64, 3, 3, 1, 0),       // the same, one output row of 3 tap rows
  };
  for (const Shape& s : copies) EXPECT_FALSE(forward_plan(s, 2, /*f32=*/false).pairs) << s.str();
}

TEST(CpuNhwcPlan, SingleRowsSplitByColumnsForTheThreads) {
  // 1D in place (whole rows, no scratch budget): a batch the threads do
  // not divide gets the fewest even column blocks that make the tasks a
  // multiple of the threads (cpu_isa_test's batch-1 1D shapes).
  struct Want {
    Shape s;
    int threads;
    int64_t nbx;
  };
  const Want wants[] = {
      {conv1d_shape(1, 48, 203, 4, 1, 0, 1, 1, true), 1, 1},
      {conv1d_shape(1, 48, 203, 4, 1, 0, 1, 1, true), 2, 2},
      {conv1d_shape(1, 48, 203, 4, 1, 0, 1, 1, true), 3, 3},
      {conv1d_shape(1, 32, 150, 7, 1, 3), 2, 2},
      {conv1d_shape(2, 32, 50, 4, 1, 0, 1, 1, true), 2, 1},   // 2 rows for 2 threads
      {conv1d_shape(2, 32, 50, 4, 1, 0, 1, 1, true), 3, 3},   // 6 tasks for 3
  };
  for (const Want& w : wants) {
    const NhwcPlan p = forward_plan(w.s, w.threads);
    const std::string what = w.s.str() + " threads " + std::to_string(w.threads);
    EXPECT_TRUE(p.in_place) << what;
    EXPECT_EQ(p.nbx, w.nbx) << what;
  }
  // Rows whose window of all channels exceeds twice the scratch budget
  // (Mamba's 2048 x 1536 at k4): even column blocks that fit, as many as
  // the threads divide when the batch gives them few rows.
  for (int64_t n : {1, 3, 8})
    for (int t = 1; t <= 3; ++t) {
      const Shape s = conv1d_shape(n, 1536, 2048, 4, 1, 0, 1, 1, true);
      const NhwcPlan p = forward_plan(s, t);
      const std::string what = s.str() + " threads " + std::to_string(t);
      EXPECT_TRUE(p.in_place) << what;
      EXPECT_LE(p.wp * 1536, 2 * cpu::simd::kNhwcBudget) << what;
      EXPECT_GE(p.wp * 1536, cpu::simd::kNhwcBudget) << what;  // not needlessly small
      EXPECT_EQ(p.nbx, (2048 + p.bw - 1) / p.bw) << what;
      if (n * 1 < 4 * t) EXPECT_EQ((n * p.nbx) % t, 0) << what;
    }
  // Rows that fit keep whole rows (384 x 64x64 k3: 3 x 66 x 384 floats).
  EXPECT_EQ(forward_plan(conv2d_shape(1, 384, 64, 64, 3, 3, 1, 1), 2).nbx, 1);
}

TEST(CpuNhwcPlan, PixelMajorOneDRows) {
  // 1D rows read in place walk pixel groups outside and channel vectors
  // inside, forward and grad-input at stride 1; cpu_isa_test's
  // pixel_major_shapes() reach that walk only through this flag, in
  // whole-image tasks and in rolling ones (64 x 1100: a window past the
  // scratch budget).
  const Shape one_d[] = {conv1d_shape(1, 64, 301, 5, 1, 2), conv1d_shape(2, 32, 50, 4, 1, 0, 1, 1, true),
                         conv1d_shape(1, 64, 1100, 4, 1, 0, 1, 1, true), conv1d_shape(1, 48, 203, 3, 1, 1),
                         conv1d_shape(1, 1536, 2048, 4, 1, 0, 1, 1, true)};
  for (const Shape& s : one_d)
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(s, t);
      const std::string what = s.str() + " threads " + std::to_string(t);
      EXPECT_TRUE(p.in_place && p.pixel_major && !p.clipped && !p.narrow) << what;
      EXPECT_EQ(p.whole, s.w < 1000) << what;
      cpu::simd::NhwcGeom gi = cpu::simd::nhwc_grad_input(s);
      gi.f32 = true;
      const NhwcPlan b = cpu::simd::plan_nhwc(gi, s.n, t, true);
      EXPECT_TRUE(b.in_place && b.pixel_major) << "grad-input " << what;
    }
  // 64 x 301 at 3 threads: column blocks of 101, 101 and 99, whose 99,
  // 101 and 97 interior columns end in groups of 2 + 1, 4 + 1 and 1.
  const NhwcPlan p3 = forward_plan(conv1d_shape(1, 64, 301, 5, 1, 2), 3);
  EXPECT_EQ(p3.nbx, 3);
  EXPECT_EQ(p3.bw, 101);
  // 2D rows keep the channel-major walk (the next row's prefetch covers
  // their window), a single output row of 3 tap rows included; the copy
  // and bf16's pairs never take it.
  const Shape not_1d[] = {conv2d_shape(1, 384, 64, 64, 3, 3, 1, 1), conv2d_shape(2, 32, 9, 23, 3, 3, 1, 1),
                          conv2d_shape(1, 32, 3, 2, 3, 3, 1, 1), conv2d_shape(1, 384, 3, 64, 3, 3, 1, 0),
                          conv1d_shape(1, 512, 1024, 31, 1, 15)};
  for (const Shape& s : not_1d) EXPECT_FALSE(forward_plan(s, 2).pixel_major) << s.str();
  EXPECT_FALSE(forward_plan(conv1d_shape(1, 64, 301, 5, 1, 2), 2, /*f32=*/false).pixel_major);
}

TEST(CpuNhwcPlan, ColumnBlocksOnlyForTheCopy) {
  // cpu_isa_test's 1024 x 4x40 k3: fp32 reads whole rows in place, bf16
  // (rows of 40K elements, no pair mode) copies them, in whole rows where
  // their window of 3 x 42 x 1024 floats fits nhwc_row_budget() (3/4 of
  // L2), else in column blocks; its 1024 x 3x260 k3 (805K floats) copies
  // them in column blocks up to a 4 MiB L2.
  const Shape s = conv2d_shape(1, 1024, 4, 40, 3, 3, 1, 1), wide = conv2d_shape(1, 1024, 3, 260, 3, 3, 1, 1);
  ASSERT_GT(3 * 262 * 1024, cpu::simd::nhwc_row_budget()) << "cpu_isa_test no longer has column blocks";
  for (int t = 1; t <= 3; ++t) {
    const NhwcPlan f = forward_plan(s, t), b = forward_plan(s, t, /*f32=*/false);
    EXPECT_TRUE(f.in_place && f.nbx == 1 && f.bw == 40) << "threads " << t;
    EXPECT_TRUE(!b.in_place && !b.pairs) << "threads " << t;
    EXPECT_EQ(b.nbx > 1, 3 * 42 * 1024 > cpu::simd::nhwc_row_budget()) << "threads " << t;
    const NhwcPlan bw = forward_plan(wide, t, /*f32=*/false);
    EXPECT_TRUE(!bw.in_place && !bw.pairs && bw.nbx > 1) << "threads " << t;
  }
  const NhwcPlan big = forward_plan(conv2d_shape(1, 384, 64, 64, 3, 3, 1, 1), 2);
  EXPECT_TRUE(big.in_place && big.nbx == 1 && big.ry == 32);
}

TEST(CpuNhwcPlan, CopyWhereInPlaceLost) {
  // Stride 2 past 5x5 or dilated, 5x5 with many rows per task at stride 1,
  // 7x7, multiplier 2 and a channel count that is not a whole number of
  // vectors keep the copy.
  const Shape shapes[] = {
      conv2d_shape(1, 32, 56, 56, 7, 7, 2, 3),
      conv2d_shape(1, 32, 56, 56, 3, 3, 2, 2, 2),
      conv2d_shape(1, 32, 56, 56, 5, 5, 1, 2),
      conv2d_shape(1, 32, 28, 28, 7, 7, 1, 3),
      conv2d_shape(1, 32, 14, 14, 3, 3, 1, 1, 1, 2),
      conv2d_shape(1, 40, 14, 14, 3, 3, 1, 1),
  };
  for (const Shape& s : shapes) EXPECT_FALSE(forward_plan(s, 2).in_place) << s.str();
}

TEST(CpuNhwcPlan, StrideTwoInPlace) {
  // fp32 at stride 2 up to 5x5 reads the input in place: rows wider than
  // the clipped tiles' (the suites' 3x3 and 5x5 on 56x56 and 112x112, and
  // cpu_isa_test's shapes) whole; rows they take (MobileNetV2's 14x14 and
  // 7x7 outputs) in clipped tiles. bf16 keeps the copy past the tiles.
  Shape asym = conv2d_shape(2, 32, 12, 40, 5, 5, 2, 0);
  asym.pad_top = 2, asym.pad_bottom = 1, asym.pad_left = 1, asym.pad_right = 2;
  struct Want {
    Shape s;
    bool whole;
  };
  // Row by row (the suites' shapes, cpu_isa_test's 48 x 40x40), or the
  // whole image at once (cpu_isa_test's smaller ones).
  const Want in_place[] = {{conv2d_shape(1, 96, 112, 112, 3, 3, 2, 1), false},
                           {conv2d_shape(1, 144, 56, 56, 5, 5, 2, 2), false},
                           {conv2d_shape(1, 48, 40, 40, 3, 3, 2, 1), false},
                           {conv2d_shape(1, 48, 11, 37, 3, 3, 2, 1), true},
                           {asym, true}};
  for (const Want& w : in_place)
    for (int t = 1; t <= 3; ++t) {
      const NhwcPlan p = forward_plan(w.s, t);
      EXPECT_TRUE(p.in_place && !p.clipped) << w.s.str() << " threads " << t;
      EXPECT_EQ(p.whole, w.whole) << w.s.str() << " threads " << t;
      EXPECT_EQ(p.nbx * p.ncb, 1) << w.s.str();
      EXPECT_FALSE(forward_plan(w.s, t, /*f32=*/false).pairs) << "bf16 " << w.s.str();
    }
  // Channel and column blocks (cpu_isa_test's 1024 x 5x100 k5).
  const NhwcPlan blocks = forward_plan(conv2d_shape(1, 1024, 5, 100, 5, 5, 2, 2), 2);
  EXPECT_TRUE(blocks.in_place && !blocks.whole && blocks.ncb > 1 && blocks.nbx > 1);
  for (const Shape& s : {conv2d_shape(1, 192, 28, 28, 3, 3, 2, 1), conv2d_shape(1, 576, 14, 14, 3, 3, 2, 1)})
    for (int t = 1; t <= 3; ++t) EXPECT_TRUE(forward_plan(s, t).clipped) << s.str() << " threads " << t;
  // Grad-input at stride 2 upsamples dy: the copy.
  cpu::simd::NhwcGeom g = cpu::simd::nhwc_grad_input(conv2d_shape(1, 96, 112, 112, 3, 3, 2, 1));
  g.f32 = true;
  EXPECT_FALSE(cpu::simd::plan_nhwc(g, 1, 2, true).in_place);
}

TEST(CpuNhwcPlan, StreamingStoresPastTheLastLevelCache) {
  // Streaming stores for in-place rows (not whole images, not clipped
  // tiles, forward only) when the call's input and output exceed the
  // last-level cache: 16 x 96x112x112 at stride 2 holds 96 MB.
  const Shape big = conv2d_shape(16, 96, 112, 112, 3, 3, 2, 1);
  struct LlcOverride {
    explicit LlcOverride(int64_t b) { cpu::override_llc_bytes(b); }
    ~LlcOverride() { cpu::override_llc_bytes(0); }
  };
  {
    LlcOverride llc(int64_t(32) << 20);
    EXPECT_TRUE(forward_plan(big, 2).stream);
    EXPECT_FALSE(forward_plan(conv2d_shape(1, 96, 112, 112, 3, 3, 2, 1), 2).stream);  // 6 MB
    EXPECT_FALSE(forward_plan(big, 2, /*f32=*/false).stream);                          // bf16: no in place
    const NhwcPlan copy = forward_plan(conv2d_shape(16, 96, 112, 112, 7, 7, 1, 3), 2);
    EXPECT_TRUE(!copy.in_place && !copy.stream);
    const NhwcPlan clipped = forward_plan(conv2d_shape(4096, 960, 7, 7, 3, 3, 1, 1), 2);
    EXPECT_TRUE(clipped.clipped && !clipped.stream);
    cpu::simd::NhwcGeom g = cpu::simd::nhwc_grad_input(conv2d_shape(16, 96, 112, 112, 3, 3, 1, 1));
    g.f32 = true;
    EXPECT_TRUE(cpu::simd::plan_nhwc(g, 16, 2, true).in_place);
    EXPECT_FALSE(cpu::simd::plan_nhwc(g, 16, 2, true).stream);
  }
  LlcOverride huge(int64_t(1) << 30);
  EXPECT_FALSE(forward_plan(big, 2).stream);
}

TEST(CpuNhwcPlan, WholeImageAndRowBalancing) {
  // 136 channels of a 7x7 image fit whole (not whole vectors: not in
  // place); batch 1 splits rows for the threads.
  const NhwcPlan whole = forward_plan(conv2d_shape(1, 136, 7, 7, 3, 3, 1, 1), 2);
  EXPECT_TRUE(whole.whole);
  // The copy past 7x7: about 4 tasks per thread (each re-copies its
  // window's halo).
  const NhwcPlan big = forward_plan(conv2d_shape(1, 32, 56, 56, 9, 9, 1, 4), 2);
  EXPECT_FALSE(big.whole || big.in_place);
  EXPECT_EQ(big.nbx * big.ncb, 1);
  EXPECT_EQ(big.ry, 7);  // 8 tasks: 4 per thread
  EXPECT_EQ(big.nby, 8);
  // The copy of whole rows up to 7x7: one task per thread (nhwc_even_rows).
  const NhwcPlan k5 = forward_plan(conv2d_shape(1, 32, 56, 56, 5, 5, 1, 2), 2);
  EXPECT_FALSE(k5.whole || k5.in_place);
  EXPECT_EQ(k5.nbx * k5.ncb, 1);
  EXPECT_EQ(k5.ry, 28);
  // Read in place (no halo copied per task): the fewest tasks that split
  // the rows evenly (nhwc_even_rows).
  const NhwcPlan in_place = forward_plan(conv2d_shape(1, 32, 112, 112, 3, 3, 1, 1), 2);
  EXPECT_TRUE(in_place.in_place);
  EXPECT_EQ(in_place.ry, 56);
  const NhwcPlan clipped = forward_plan(conv2d_shape(1, 32, 14, 14, 5, 5, 1, 2), 2);
  EXPECT_TRUE(clipped.clipped && !clipped.owned);
  EXPECT_EQ(clipped.ry, 7);
  EXPECT_EQ(forward_plan(conv2d_shape(1, 32, 14, 14, 5, 5, 1, 2), 3).ry, 5);  // 5 + 5 + 4 rows
  EXPECT_EQ(forward_plan(conv2d_shape(3, 32, 14, 14, 5, 5, 1, 2), 2).ry, 7);  // 6 tasks
  EXPECT_EQ(forward_plan(conv2d_shape(1, 32, 112, 112, 3, 3, 1, 1), 2, /*f32=*/false).ry, 56);  // bf16 pairs
  // Batch 16 gives the threads enough tasks: no split.
  EXPECT_EQ(forward_plan(conv2d_shape(16, 32, 112, 112, 3, 3, 1, 1), 2).nby, 1);
  EXPECT_EQ(forward_plan(conv2d_shape(16, 32, 56, 56, 5, 5, 1, 2), 2).nby, 1);
}

// The row-flat engine's plan: the interior it reads in place is exactly
// the vectors whose every tap load stays inside the input row (one more on
// either side would read outside it), at every target's width; the weight
// phases; and which cpu_isa_test shapes reach both edges, the interior,
// and rows with no interior.
TEST(CpuRowFlatPlan, InteriorIsWhereEveryLoadStaysInTheRow) {
  const Shape shapes[] = {
      conv2d_shape(2, 12, 9, 13, 1, 11, 1, 0),   // interior and a right edge
      padded(conv2d_shape(1, 12, 8, 20, 1, 11, 1, 0), 0, 0, 5, 5),  // both edges
      conv2d_shape(1, 20, 5, 2, 3, 3, 1, 1),     // no interior
      conv2d_shape(1, 12, 15, 30, 3, 3, 1, 1),
      conv2d_shape(1, 24, 14, 7, 11, 1, 1, 0),   // kx1: only the partial last vector staged
      padded(conv2d_shape(1, 5, 2, 8, 1, 9, 1, 0), 0, 0, 1, 7),  // narrow: one long end at one lane
  };
  for (const Shape& s : shapes)
    for (bool grad_input : {false, true})
      for (int64_t L : cpu::simd::kRowFlatLanes) {
        const cpu::simd::NhwcGeom g = grad_input ? cpu::simd::nhwc_grad_input(s) : cpu::simd::nhwc_forward(s);
        const cpu::simd::RowFlatPlan f = cpu::simd::plan_rowflat(g, L);
        auto inside = [&](int64_t v) { return v * L + f.off_min >= 0 && (v + 1) * L + f.off_min + f.span <= f.in_row; };
        for (int64_t v = 0; v < f.nv; ++v)
          EXPECT_EQ(v >= f.v_lo && v < f.v_hi, inside(v) && f.v_lo < f.v_hi) << s.str() << " L " << L << " v " << v;
        EXPECT_EQ(f.P * L % s.c, 0) << s.str();
        // The workspace covers the staged rows of a pair at this width.
        EXPECT_LE(2 * g.kh * f.stage, cpu::simd::rowflat_thread_floats(g)) << s.str() << " L " << L;
      }
  // A narrow row whose one staged end at one lane (75 floats) is longer
  // than either end at 4, 8 or 16 lanes (at most 72): the workspace must
  // be planned at one lane too (HWY_SCALAR).
  Shape narrow_end = padded(conv2d_shape(1, 5, 2, 8, 1, 9, 1, 0), 0, 0, 1, 7);
  const cpu::simd::NhwcGeom ng = cpu::simd::nhwc_forward(narrow_end);
  EXPECT_EQ(cpu::simd::plan_rowflat(ng, 1).stage, 75);
  for (int64_t L : {16, 8, 4}) EXPECT_LE(cpu::simd::plan_rowflat(ng, L).stage, 72) << L;
  EXPECT_GE(cpu::simd::rowflat_thread_floats(ng), 2 * 75);
  const cpu::simd::RowFlatPlan w = cpu::simd::plan_rowflat(cpu::simd::nhwc_forward(shapes[1]), 16);
  EXPECT_EQ(w.P, 3);
  EXPECT_EQ(w.v_lo, 4);   // 5 padding pixels of 12 channels: 60 floats
  EXPECT_EQ(w.v_hi, 11);  // (240 - 60) / 16
  EXPECT_EQ(w.nv, 15);
  const cpu::simd::RowFlatPlan none = cpu::simd::plan_rowflat(cpu::simd::nhwc_forward(shapes[2]), 16);
  EXPECT_EQ(none.v_lo, none.v_hi);
  const cpu::simd::RowFlatPlan tall = cpu::simd::plan_rowflat(cpu::simd::nhwc_forward(shapes[4]), 16);
  EXPECT_EQ(tall.v_lo, 0);
  EXPECT_EQ(tall.nv, 11);    // 7 x 24 = 168 floats: 10.5 vectors
  EXPECT_EQ(tall.v_hi, 10);  // a whole load of the last would pass the row's end
}

// The grad-weight plane engine (cpu_wgrad_nhwc_plane): the padded plane,
// the batch chunks (shape-only, so results do not depend on the thread
// count) and which shapes it takes: the plane shapes of cpu_isa_test, and
// not one group of few channels at batch 1 or a plane past half of L2.
TEST(CpuWgradPlanePlan, PlaneChunksAndScope) {
  const cpu::simd::WgradPlanePlan a = cpu::simd::plan_wgrad_plane(conv2d_shape(1, 384, 14, 14, 3, 3, 1, 1));
  EXPECT_EQ(a.hp, 16);
  EXPECT_EQ(a.wp, 16);
  EXPECT_EQ(a.groups, 24);
  EXPECT_EQ(a.chunks, 1);
  EXPECT_EQ(a.ni, 3);
  EXPECT_TRUE(a.dy_in_place);  // one pass of 3 tap rows
  Shape s2 = padded(conv2d_shape(5, 20, 9, 11, 3, 5, 2, 0), 1, 0, 2, 1);
  const cpu::simd::WgradPlanePlan b = cpu::simd::plan_wgrad_plane(s2);
  EXPECT_EQ(b.hp, 9);   // outputs 4 rows at stride 2: rows 0 .. 3*2 + 2
  EXPECT_EQ(b.wp, 13);  // 5 columns: 4*2 + 4 + 1
  EXPECT_EQ(b.groups, 2);
  EXPECT_EQ(b.chunks, 5);  // 16 tasks wanted, 5 images
  EXPECT_EQ(b.csw, 2);
  EXPECT_TRUE(b.dy_in_place);  // 3 tap rows in groups of 2: two passes
  const cpu::simd::WgradPlanePlan c = cpu::simd::plan_wgrad_plane(conv2d_shape(1, 16, 20, 20, 3, 3, 1, 0, 3));
  EXPECT_EQ(c.ni, 1);  // dilation 3: the generic form, one tap row
  EXPECT_FALSE(c.dy_in_place);  // three passes: dy copied
  EXPECT_EQ(c.hp, 20);
  const Shape takes[] = {conv2d_shape(1, 384, 14, 14, 3, 3, 1, 1), conv2d_shape(1, 24, 28, 28, 3, 3, 1, 1),
                         conv2d_shape(2, 16, 9, 9, 3, 3, 1, 1), s2, conv1d_shape(1, 32, 2000, 31, 1, 15)};
  for (const Shape& s : takes) EXPECT_TRUE(cpu::simd::wgrad_plane_fits(s)) << s.str();
  const Shape keeps[] = {conv2d_shape(1, 12, 56, 56, 3, 3, 1, 1), conv2d_shape(1, 16, 14, 14, 3, 3, 1, 1),
                         conv2d_shape(1, 32, 112, 112, 3, 3, 1, 1), conv1d_shape(1, 32, 9000, 4, 1, 3)};
  for (const Shape& s : keeps) EXPECT_FALSE(cpu::simd::wgrad_plane_fits(s)) << s.str();
}

// The bf16 dot-product kernels' plan (Bf16DpPlan): pixel pairs per row,
// channel blocks within the budget (whole 32-channel groups, the last
// block any), rows split evenly at batch 1; which geometries it takes.
TEST(CpuBf16DpPlan, PairsBlocksAndScope) {
  auto geom = [](const Shape& s) {
    cpu::simd::NhwcGeom g = cpu::simd::nhwc_forward(s);
    g.f32 = false;
    return g;
  };
  const cpu::simd::Bf16DpPlan a = cpu::simd::plan_bf16dp(geom(conv2d_shape(1, 384, 64, 64, 7, 7, 1, 3)), 1, 2);
  EXPECT_EQ(a.kw2, 4);
  EXPECT_EQ(a.wp, 70);  // 64 outputs + 3 pairs further
  EXPECT_EQ(a.slots, 7);
  EXPECT_EQ(a.cbv, 24);  // all channels: 7 x 70 x 64 B x 24 = 735 KiB
  EXPECT_EQ(a.ncb, 1);
  EXPECT_EQ(a.ry, 32);  // two tasks
  const cpu::simd::Bf16DpPlan b = cpu::simd::plan_bf16dp(geom(conv2d_shape(1, 384, 64, 64, 11, 11, 1, 5)), 1, 2);
  EXPECT_EQ(b.kw2, 6);
  EXPECT_EQ(b.cbv, 14);  // 15 fit, rounded down to whole groups
  EXPECT_EQ(b.ncb, 2);
  const cpu::simd::Bf16DpPlan c = cpu::simd::plan_bf16dp(geom(conv2d_shape(1, 272, 16, 60, 15, 15, 1, 7)), 1, 3);
  EXPECT_EQ(c.cbv, 10);  // cpu_isa_test's blocks of 10 + 7 vectors
  EXPECT_EQ(c.ncb, 2);
  EXPECT_EQ(cpu::simd::plan_bf16dp(geom(conv2d_shape(1, 32, 12, 40, 4, 4, 1, 1)), 1, 1).wp, 39 + 2);
  EXPECT_TRUE(cpu::simd::bf16dp_fits(geom(conv2d_shape(1, 16, 8, 8, 3, 3, 1, 1))));
  cpu::simd::NhwcGeom f32 = geom(conv2d_shape(1, 16, 8, 8, 3, 3, 1, 1));
  f32.f32 = true;
  EXPECT_FALSE(cpu::simd::bf16dp_fits(f32));
  Shape sw2 = conv2d_shape(1, 16, 9, 9, 5, 5, 1, 2);
  sw2.stride_w = 2;  // pair m of output ox: pixel pair ox + m, pairs of columns 2q - pl, 2q - pl + 1
  const cpu::simd::Bf16DpPlan d = cpu::simd::plan_bf16dp(geom(sw2), 1, 1);
  EXPECT_EQ(d.d, 1);
  EXPECT_EQ(d.wp, 5 + 2);  // 5 outputs, 3 pairs
  EXPECT_EQ(a.d, 2);
  EXPECT_TRUE(cpu::simd::bf16dp_fits(geom(sw2)));
  sw2.stride_w = 3;
  EXPECT_FALSE(cpu::simd::bf16dp_fits(geom(sw2)));
  EXPECT_FALSE(cpu::simd::bf16dp_fits(geom(conv2d_shape(1, 24, 8, 8, 3, 3, 1, 1))));        // 24 channels
  EXPECT_FALSE(cpu::simd::bf16dp_fits(geom(conv2d_shape(1, 16, 8, 8, 3, 3, 1, 1, 2, 1))));  // dilation along W
  EXPECT_FALSE(cpu::simd::bf16dp_fits(geom(conv1d_shape(1, 2048, 65536, 4, 1, 3))));       // 4 MiB rows
  EXPECT_FALSE(cpu::simd::bf16dp_fits(cpu::simd::nhwc_grad_input(conv2d_shape(1, 16, 8, 8, 3, 3, 2, 1))));
}

}  // namespace
}  // namespace dwconv
