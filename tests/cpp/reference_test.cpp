// The oracle itself: hand-computed values and the adjoint identities that tie
// the three directions together, in fp64.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "dwconv/check.h"
#include "dwconv/dwconv.h"

namespace dwconv {
namespace {

TEST(Reference, HandComputed3x3) {
  // x = 1..9 on a 3x3 image, w = all ones, pad 1: y[0,0] = 1+2+4+5 = 12, centre 45.
  Shape s = conv2d_shape(1, 1, 3, 3, 3, 3, 1, 1);
  std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w(9, 1.0), b = {0.5}, y(9);
  Params p;
  p.shape = s, p.dtype = DType::f64, p.input = x.data(), p.weight = w.data(), p.bias = b.data(), p.output = y.data();
  reference::run(Direction::forward, p);
  EXPECT_DOUBLE_EQ(y[0], 12.5);
  EXPECT_DOUBLE_EQ(y[4], 45.5);
  EXPECT_DOUBLE_EQ(y[8], 5 + 6 + 8 + 9 + 0.5);
}

TEST(Reference, HandComputedStrideDilationMultiplier) {
  // 1D, C = 1, multiplier 2, k = 2, dilation 2, stride 2, x = 1..7:
  // y_o[t] = w_o0 * x[2t] + w_o1 * x[2t + 2], t = 0..2.
  Shape s = conv1d_shape(1, 1, 7, 2, 2, 0, 2, 2);
  std::vector<double> x = {1, 2, 3, 4, 5, 6, 7}, w = {1, 10, 2, 20}, y(6);
  Params p;
  p.shape = s, p.dtype = DType::f64, p.input = x.data(), p.weight = w.data(), p.output = y.data();
  reference::run(Direction::forward, p);
  EXPECT_EQ(y, (std::vector<double>{31, 53, 75, 62, 106, 150}));
}

TEST(Reference, CausalSeesOnlyThePast) {
  Shape s = conv1d_shape(1, 1, 5, 3, 1, 0, 1, 1, true);
  EXPECT_EQ(s.out_w(), 5);
  std::vector<double> x = {1, 2, 3, 4, 5}, w = {100, 10, 1}, y(5);
  Params p;
  p.shape = s, p.dtype = DType::f64, p.input = x.data(), p.weight = w.data(), p.output = y.data();
  reference::run(Direction::forward, p);
  EXPECT_EQ(y, (std::vector<double>{1, 12, 123, 234, 345}));
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// <conv(x, w), dy> = <x, grad_input(dy, w)> = <w, grad_weight(dy, x)>, and
// grad_bias = sum of dy: the directions are adjoint to one another.
class ReferenceAdjoint : public ::testing::TestWithParam<int> {};

TEST_P(ReferenceAdjoint, DirectionsAreAdjoint) {
  std::mt19937_64 rng(uint64_t(GetParam()) + 1000);
  std::vector<Shape> shapes = check::edge_shapes();
  const Shape s = GetParam() < int(shapes.size()) ? shapes[size_t(GetParam())] : check::random_shape(rng);
  for (Layout layout : {Layout::nchw, Layout::nhwc}) {
    std::uniform_real_distribution<double> u(-1, 1);
    auto rand = [&](int64_t n) {
      std::vector<double> v(static_cast<size_t>(n));
      for (auto& e : v) e = u(rng);
      return v;
    };
    std::vector<double> x = rand(s.input_elems()), w = rand(s.weight_elems()), dy = rand(s.output_elems());
    std::vector<double> y(size_t(s.output_elems())), dx(size_t(s.input_elems())), dw(size_t(s.weight_elems())),
        db(size_t(s.out_c()));
    Params p;
    p.shape = s, p.dtype = DType::f64, p.layout = layout;
    p.input = x.data(), p.weight = w.data(), p.output = y.data(), p.grad_output = dy.data();
    p.grad_input = dx.data(), p.grad_weight = dw.data(), p.grad_bias = db.data();
    for (Direction d : {Direction::forward, Direction::grad_input, Direction::grad_weight, Direction::grad_bias})
      reference::run(d, p);
    const double a = dot(y, dy), b = dot(x, dx), c = dot(w, dw);
    const double scale = std::sqrt(dot(y, y) * dot(dy, dy)) + 1e-300;
    EXPECT_NEAR(a / scale, b / scale, 1e-12) << s.str();
    EXPECT_NEAR(a / scale, c / scale, 1e-12) << s.str();
    // grad_bias[o] = sum of dy over channel o.
    std::vector<double> sums(size_t(s.out_c()), 0.0);
    const int64_t P = s.out_h() * s.out_w();
    for (int64_t i = 0; i < s.output_elems(); ++i) {
      const int64_t o = layout == Layout::nchw ? (i / P) % s.out_c() : i % s.out_c();
      sums[size_t(o)] += dy[size_t(i)];
    }
    for (size_t o = 0; o < sums.size(); ++o) EXPECT_NEAR(db[o], sums[o], 1e-9);
  }
}
INSTANTIATE_TEST_SUITE_P(Shapes, ReferenceAdjoint, ::testing::Range(0, 60));

TEST(Reference, LayoutsAgree) {
  // The same tensor in NCHW and NHWC gives the same output, transposed.
  Shape s = conv2d_shape(2, 3, 5, 6, 3, 3, 2, 1, 1, 2);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> x(size_t(s.input_elems())), w(size_t(s.weight_elems()));
  for (auto& e : x) e = u(rng);
  for (auto& e : w) e = u(rng);
  std::vector<double> xh(x.size());
  const int64_t C = s.c, H = s.h, W = s.w;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t ww = 0; ww < W; ++ww) xh[size_t(((n * H + h) * W + ww) * C + c)] = x[size_t(((n * C + c) * H + h) * W + ww)];
  std::vector<double> y1(size_t(s.output_elems())), y2(y1.size());
  Params p;
  p.shape = s, p.dtype = DType::f64, p.weight = w.data();
  p.input = x.data(), p.output = y1.data();
  reference::run(Direction::forward, p);
  p.layout = Layout::nhwc, p.input = xh.data(), p.output = y2.data();
  reference::run(Direction::forward, p);
  const int64_t OC = s.out_c(), OH = s.out_h(), OW = s.out_w();
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t o = 0; o < OC; ++o)
      for (int64_t h = 0; h < OH; ++h)
        for (int64_t ww = 0; ww < OW; ++ww)
          EXPECT_DOUBLE_EQ(y1[size_t(((n * OC + o) * OH + h) * OW + ww)], y2[size_t(((n * OH + h) * OW + ww) * OC + o)]);
}

TEST(Shapes, SamePaddingMatchesPyTorch) {
  // PyTorch puts the odd pixel of 'same' padding at the end.
  Padding2d p = same_padding(4, 5, 1, 2);
  EXPECT_EQ(p.top, 1);
  EXPECT_EQ(p.bottom, 2);
  EXPECT_EQ(p.left, 4);
  EXPECT_EQ(p.right, 4);
  Shape s = conv2d_shape(1, 1, 10, 10, 3, 3, 2, 1);
  EXPECT_EQ(s.out_h(), 5);
  EXPECT_EQ(conv1d_shape(1, 1, 10, 4, 1, 0, 2, 1, true).pad_left, 6);
}

}  // namespace
}  // namespace dwconv
