// CPU backend against the fp64 reference: edge shapes and seeded random
// shapes, every direction x layout x dtype x variant.
#include <cstring>

#include "sweep.h"

namespace dwconv::testing {
namespace {

class CpuEdge : public ::testing::TestWithParam<int> {};

TEST_P(CpuEdge, MatchesReference) {
  const Shape s = check::edge_shapes()[size_t(GetParam())];
  SCOPED_TRACE(s.str());
  sweep_shape(s, Device::cpu, uint64_t(GetParam()) + 1);
}
INSTANTIATE_TEST_SUITE_P(Shapes, CpuEdge, ::testing::Range(0, int(check::edge_shapes().size())));

class CpuRandom : public ::testing::TestWithParam<int> {};

TEST_P(CpuRandom, MatchesReference) {
  std::mt19937_64 rng(uint64_t(GetParam()) * 7919 + 17);
  const Shape s = check::random_shape(rng);
  SCOPED_TRACE(s.str());
  sweep_shape(s, Device::cpu, uint64_t(GetParam()) + 100);
}
INSTANTIATE_TEST_SUITE_P(Seeds, CpuRandom, ::testing::Range(0, 60));

// The NHWC SIMD blocking: whole-image mode with pixel tails done several
// channel vectors at a time (C not a multiple of any vector width), the
// rolling row window with column blocks, stride 2, and a 31x31 kernel whose
// window only fits 16 channels per block; channel multipliers 3 and 2.
TEST(CpuBlocking, MatchesReference) {
  const Shape shapes[] = {conv2d_shape(2, 100, 7, 7, 7, 7, 1, 3),   conv2d_shape(1, 52, 23, 23, 3, 3, 1, 1),
                          conv2d_shape(1, 24, 61, 37, 5, 5, 2, 2),  conv2d_shape(1, 1100, 5, 40, 3, 3, 1, 1),
                          conv2d_shape(1, 40, 20, 20, 31, 31, 1, 15), conv2d_shape(3, 70, 14, 14, 7, 7, 1, 3),
                          conv2d_shape(2, 12, 9, 9, 3, 3, 1, 1, 1, 3), conv2d_shape(1, 20, 30, 30, 5, 5, 2, 2, 1, 2)};
  uint64_t seed = 900;
  for (const Shape& s : shapes) {
    SCOPED_TRACE(s.str());
    sweep_shape(s, Device::cpu, ++seed);
  }
}

// Outputs much narrower than the kernel take cpu_fwd_nchw_dot (dot products
// along the kernel row): kernel widths that are not a multiple of the vector
// (masked tail), stride 2 with a multiplier, dilation along H, padding.
TEST(CpuNarrowOutput, MatchesReference) {
  Shape dil = conv2d_shape(1, 4, 25, 20, 5, 16, 1, 2);
  dil.dil_h = 3;
  const Shape shapes[] = {conv2d_shape(1, 3, 30, 30, 28, 28), conv2d_shape(2, 2, 20, 24, 9, 19, 2, 3, 1, 2), dil};
  uint64_t seed = 950;
  for (const Shape& s : shapes) {
    SCOPED_TRACE(s.str());
    float dummy = 0;  // selected_kernel validates the pointers, never dereferences them
    Params p;
    p.shape = s, p.layout = Layout::nchw;
    p.input = &dummy, p.weight = &dummy, p.output = &dummy;
    EXPECT_EQ(selected_kernel(Direction::forward, p), "cpu_fwd_nchw_dot");
    sweep_shape(s, Device::cpu, ++seed);
  }
}

// Threads must not change the result: grad-weight and grad-bias reduce in a
// fixed order, so 1 and 2 threads agree bit for bit.
TEST(CpuDeterminism, GradWeightIndependentOfThreads) {
  Shape s = conv2d_shape(3, 20, 17, 15, 5, 5, 1, 2);
  for (Layout layout : all_layouts())
    for (DType dtype : {DType::f32, DType::bf16}) {
      std::vector<float> dy(size_t(s.output_elems() * 2)), x(size_t(s.input_elems() * 2));
      std::mt19937_64 rng(5);
      std::uniform_real_distribution<float> u(-1, 1);
      // Raw bytes: any pattern is a valid f32 or (pairs of) bf16 values here.
      for (auto& v : dy) v = u(rng);
      for (auto& v : x) v = u(rng);
      std::vector<double> out[2];
      for (int t = 1; t <= 2; ++t) {
        std::vector<double> dw(size_t(s.weight_elems()));  // big enough for f32 or bf16
        Params p;
        p.shape = s, p.dtype = dtype, p.layout = layout, p.threads = t;
        p.grad_output = dy.data(), p.input = x.data(), p.grad_weight = dw.data();
        run(Direction::grad_weight, p);
        out[t - 1] = dw;
      }
      EXPECT_EQ(std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(double)), 0)
          << to_string(layout) << " " << to_string(dtype);
    }
}

// One-thread calls from inside a caller's parallel region (a loop over
// samples, each calling dwconv on one thread) must run as a team of one:
// the kernels' work sharing and barriers must not bind to the caller's
// team. Each caller thread's result must equal the same call made alone.
// Shapes reach the NHWC core (weights arranged across the team, then a
// barrier), the row-flat engine, the NCHW flat engine and the generic
// kernel (f64), forward, grad-input and grad-weight.
TEST(CpuThreads, OneThreadCallsInsideACallersParallelRegion) {
  struct Case {
    Shape s;
    Layout layout;
    DType dtype;
  };
  const Case cases[] = {{conv2d_shape(1, 48, 9, 9, 3, 3, 1, 1), Layout::nhwc, DType::f32},
                        {conv2d_shape(1, 12, 20, 20, 3, 3, 1, 1), Layout::nhwc, DType::f32},
                        {conv2d_shape(1, 8, 20, 20, 3, 3, 1, 1), Layout::nchw, DType::f32},
                        {conv2d_shape(1, 8, 10, 10, 3, 3, 1, 1), Layout::nhwc, DType::f64}};
  constexpr int kCallers = 3;
  for (const Case& k : cases)
    for (Direction dir : {Direction::forward, Direction::grad_input, Direction::grad_weight}) {
      const Shape& s = k.s;
      const size_t es = dtype_size(k.dtype);
      std::vector<unsigned char> x(size_t(s.input_elems()) * es), w(size_t(s.weight_elems()) * es),
          dy(size_t(s.output_elems()) * es);
      std::mt19937_64 rng(11);
      std::uniform_real_distribution<double> u(-1, 1);
      auto fill = [&](std::vector<unsigned char>& v) {
        for (size_t i = 0; i < v.size() / es; ++i) {
          if (k.dtype == DType::f32) reinterpret_cast<float*>(v.data())[i] = float(u(rng));
          if (k.dtype == DType::f64) reinterpret_cast<double*>(v.data())[i] = u(rng);
        }
      };
      fill(x), fill(w), fill(dy);
      const size_t out_bytes = size_t(dir == Direction::forward      ? s.output_elems()
                                      : dir == Direction::grad_input ? s.input_elems()
                                                                     : s.weight_elems()) * es;
      auto call = [&](std::vector<unsigned char>& out) {
        Params p;
        p.shape = s, p.dtype = k.dtype, p.layout = k.layout, p.threads = 1;
        p.input = x.data(), p.weight = w.data(), p.grad_output = dy.data();
        p.output = p.grad_input = p.grad_weight = out.data();
        run(dir, p);
      };
      std::vector<unsigned char> alone(out_bytes);
      call(alone);
      std::vector<std::vector<unsigned char>> outs(kCallers, std::vector<unsigned char>(out_bytes, 0xff));
#pragma omp parallel for num_threads(kCallers) schedule(static, 1)
      for (int t = 0; t < kCallers; ++t) call(outs[size_t(t)]);
      for (int t = 0; t < kCallers; ++t)
        EXPECT_EQ(std::memcmp(outs[size_t(t)].data(), alone.data(), out_bytes), 0)
            << s.str() << " " << to_string(k.layout) << " " << to_string(k.dtype) << " " << to_string(dir)
            << " caller " << t;
    }
}

// A test that cannot fail is a defect: the checker must catch a kernel that
// leaves one element unwritten, and one that gets one element slightly wrong.
TEST(CheckerCatches, UnwrittenAndWrongElements) {
  for (Direction dir : all_directions()) {
    check::Case c;
    c.shape = conv2d_shape(2, 3, 6, 7, 3, 3, 1, 1);
    EXPECT_TRUE(check::run_case(dir, c).ok);
    auto output_of = [](Direction d, const Params& p) -> float* {
      switch (d) {
        case Direction::forward: return static_cast<float*>(p.output);
        case Direction::grad_input: return static_cast<float*>(p.grad_input);
        case Direction::grad_weight: return static_cast<float*>(p.grad_weight);
        case Direction::grad_bias: return static_cast<float*>(p.grad_bias);
      }
      return nullptr;
    };
    auto output_elems = [](Direction d, const Shape& sh) {
      return d == Direction::forward ? sh.output_elems() : d == Direction::grad_input ? sh.input_elems()
             : d == Direction::grad_weight ? sh.weight_elems() : sh.out_c();
    };
    // Leaves the last element unwritten (it keeps the NaN poison).
    const check::Outcome skipped = check::run_case(dir, c, [&](Direction d, const Params& p) {
      float* out = output_of(d, p);
      const int64_t n = output_elems(d, p.shape);
      const float poison = out[n - 1];
      reference::run(d, p);
      out[n - 1] = poison;
    });
    EXPECT_FALSE(skipped.ok) << to_string(dir);
    // Off by 1e-3 relative in one element of a few dozen: above the f32 tolerance.
    const check::Outcome wrong = check::run_case(dir, c, [&](Direction d, const Params& p) {
      reference::run(d, p);
      output_of(d, p)[0] *= 1.01f;
    });
    EXPECT_FALSE(wrong.ok) << to_string(dir) << " rel_err " << wrong.rel_err;
  }
}

}  // namespace
}  // namespace dwconv::testing
