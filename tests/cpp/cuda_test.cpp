// CUDA backend against the fp64 reference: the same sweeps as the CPU suite
// (every direction x layout x dtype x variant), and a tensor past 2^31
// elements. Without a GPU every test here reports SKIPPED, never passed.
#include <cmath>
#include <cstring>

#include "dwconv/half.h"
#include "sweep.h"

#ifdef DWCONV_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dwconv::testing {
namespace {

#define DWCONV_REQUIRE_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or built without CUDA)"

class GpuEdge : public ::testing::TestWithParam<int> {};

TEST_P(GpuEdge, MatchesReference) {
  DWCONV_REQUIRE_GPU();
  const Shape s = check::edge_shapes()[size_t(GetParam())];
  SCOPED_TRACE(s.str());
  sweep_shape(s, Device::cuda, uint64_t(GetParam()) + 1);
}
INSTANTIATE_TEST_SUITE_P(Shapes, GpuEdge, ::testing::Range(0, int(check::edge_shapes().size())));

class GpuRandom : public ::testing::TestWithParam<int> {};

TEST_P(GpuRandom, MatchesReference) {
  DWCONV_REQUIRE_GPU();
  std::mt19937_64 rng(uint64_t(GetParam()) * 7919 + 17);
  const Shape s = check::random_shape(rng);
  SCOPED_TRACE(s.str());
  sweep_shape(s, Device::cuda, uint64_t(GetParam()) + 100);
}
INSTANTIATE_TEST_SUITE_P(Seeds, GpuRandom, ::testing::Range(0, 60));

// Shapes of the benchmark suites, scaled down in batch, so the fast variants
// (tiles, vector loads) run on the sizes they are tuned for.
class GpuSuiteShapes : public ::testing::TestWithParam<int> {};

TEST_P(GpuSuiteShapes, MatchesReference) {
  DWCONV_REQUIRE_GPU();
  static const std::vector<Shape> shapes = {
      conv2d_shape(2, 32, 112, 112, 3, 3, 1, 1),  conv2d_shape(2, 96, 112, 112, 3, 3, 2, 1),
      conv2d_shape(2, 144, 56, 56, 5, 5, 2, 2),   conv2d_shape(2, 96, 56, 56, 7, 7, 1, 3),
      conv2d_shape(1, 16, 64, 64, 13, 13, 1, 6),  conv2d_shape(1, 8, 56, 56, 31, 31, 1, 15),
      conv2d_shape(2, 768, 7, 7, 7, 7, 1, 3),     conv2d_shape(1, 8, 64, 64, 63, 63, 1, 31),
      conv1d_shape(2, 64, 2048, 4, 1, 0, 1, 1, true), conv1d_shape(2, 32, 1024, 31, 1, 15),
  };
  const Shape s = shapes[size_t(GetParam())];
  SCOPED_TRACE(s.str());
  for (Direction dir : all_directions())
    for (Layout layout : all_layouts())
      for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
        check::Case c;
        c.shape = s, c.dtype = dtype, c.layout = layout, c.device = Device::cuda, c.seed = 7;
        EXPECT_GE(check_all_variants(dir, c), 1);
      }
}
INSTANTIATE_TEST_SUITE_P(Suites, GpuSuiteShapes, ::testing::Range(0, 10));

// Workspace sizes need no GPU (workspace_size only plans), so this runs on
// every CUDA build. cuda_wgrad_nchw_tile's partial count is capped by the
// channel and tap count, not set by the number of output tiles (which made
// it 240 MiB at C64 1024x1024 31x31): past the image size that fills the
// cap, neither a larger image nor a larger batch changes the workspace.
TEST(CudaWorkspace, TileGradWeightDoesNotGrowWithTheImage) {
  if (cuda_kernels().empty()) GTEST_SKIP() << "built without CUDA";
  static float dummy;
  auto size = [](const Shape& s) {
    Params p;
    p.shape = s, p.device = Device::cuda, p.kernel = "cuda_wgrad_nchw_tile";
    p.grad_output = p.input = &dummy, p.grad_weight = &dummy;
    return workspace_size(Direction::grad_weight, p);
  };
  for (int64_t c : {1, 8, 64, 512}) {
    const Shape base = conv2d_shape(1, c, 2048, 2048, 31, 31, 1, 15);
    const size_t bound = size_t(base.weight_elems()) * 4 + (size_t(8) << 20) + 255;
    const size_t ws = size(base);
    EXPECT_LE(ws, bound) << base.str();
    for (const Shape& s : {conv2d_shape(1, c, 4096, 4096, 31, 31, 1, 15), conv2d_shape(8, c, 1024, 1024, 31, 31, 1, 15),
                           conv2d_shape(64, c, 2048, 2048, 31, 31, 1, 15)})
      EXPECT_EQ(size(s), ws) << s.str();
  }
  const Shape line = conv1d_shape(1, 64, int64_t(1) << 20, 101, 1, 50);
  EXPECT_LE(size(line), size_t(line.weight_elems()) * 4 + (size_t(8) << 20) + 255) << line.str();
}

#ifdef DWCONV_WITH_CUDA
// Params::workspace may be any address: every variant with a workspace runs
// with one a byte past a 256-byte boundary and exactly workspace_size()
// bytes long. A kernel using the pointer as given faults on its first float
// access (cudaErrorMisalignedAddress); one without enough slack writes past
// the end (compute-sanitizer in scripts/gpu-check).
TEST(GpuWorkspace, AnyAlignment) {
  DWCONV_REQUIRE_GPU();
  const check::Runner odd = [](Direction dir, const Params& p) {
    const size_t need = workspace_size(dir, p);
    void* buf = nullptr;
    ASSERT_EQ(cudaMalloc(&buf, need + 1), cudaSuccess);
    Params q = p;
    q.workspace = static_cast<unsigned char*>(buf) + 1, q.workspace_bytes = need;
    EXPECT_NO_THROW(run(dir, q)) << q.kernel;
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << q.kernel;
    cudaFree(buf);
  };
  std::vector<Shape> shapes = {conv2d_shape(2, 3, 8, 8, 3, 3, 1, 1), conv2d_shape(1, 8, 56, 56, 31, 31, 1, 15),
                               conv1d_shape(2, 16, 300, 101, 1, 50)};
  int runs = 0;
  for (const Shape& s : shapes)
    for (Direction dir : all_directions())
      for (Layout layout : all_layouts())
        for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
          Params p;
          p.shape = s, p.dtype = dtype, p.layout = layout, p.device = Device::cuda;
          for (const Kernel* k : candidates(dir, p)) {
            if (k->workspace == nullptr) continue;
            check::Case c;
            c.shape = s, c.dtype = dtype, c.layout = layout, c.device = Device::cuda, c.kernel = k->name, c.seed = 3;
            const check::Outcome o = check::run_case(dir, c, odd);
            EXPECT_TRUE(o.ok) << k->name << " " << to_string(dir) << " " << c.str() << ": " << o.message;
            ++runs;
          }
        }
  EXPECT_GT(runs, 0);
}

// A batch whose input and output pass 2^31 elements: the last image lies
// beyond 32-bit offsets. Images are independent, so the last one is checked
// against the reference on its own, and the first one (zero input, no bias)
// must come out zero, written rather than left poisoned.
TEST(GpuLarge, PastTwoToThe31Elements) {
  DWCONV_REQUIRE_GPU();
  for (Layout layout : all_layouts()) {
    Shape s = conv2d_shape(1, 8, 512, 512, 3, 3, 1, 1);
    const int64_t per_image = s.c * s.h * s.w;
    s.n = (int64_t(1) << 31) / per_image + 2;
    ASSERT_GT(s.input_elems(), int64_t(1) << 31);
    const DType dtype = DType::f16;
    const size_t bytes = size_t(s.input_elems()) * 2;
    void *x = nullptr, *y = nullptr, *w = nullptr;
    ASSERT_EQ(cudaMalloc(&x, bytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&y, bytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&w, size_t(s.weight_elems()) * 2), cudaSuccess);
    ASSERT_EQ(cudaMemset(x, 0, bytes), cudaSuccess);
    ASSERT_EQ(cudaMemset(y, 0xFF, bytes), cudaSuccess);  // 0xFFFF is a NaN in f16

    std::mt19937_64 rng(11);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<f16> last(static_cast<size_t>(per_image)), wt(static_cast<size_t>(s.weight_elems()));
    std::vector<double> last64(last.size()), wt64(wt.size());
    for (size_t i = 0; i < last.size(); ++i) last[i] = to_f16(u(rng)), last64[i] = to_f32(last[i]);
    for (size_t i = 0; i < wt.size(); ++i) wt[i] = to_f16(u(rng)), wt64[i] = to_f32(wt[i]);
    const size_t last_off = size_t(s.n - 1) * size_t(per_image) * 2;
    ASSERT_EQ(cudaMemcpy(static_cast<char*>(x) + last_off, last.data(), last.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(w, wt.data(), wt.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);

    Params p;
    p.shape = s, p.dtype = dtype, p.layout = layout, p.device = Device::cuda;
    p.input = x, p.weight = w, p.output = y;
    ASSERT_NO_THROW(run(Direction::forward, p)) << selected_kernel(Direction::forward, p);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

    std::vector<f16> got(static_cast<size_t>(per_image)), first(static_cast<size_t>(per_image));
    ASSERT_EQ(cudaMemcpy(got.data(), static_cast<char*>(y) + last_off, got.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(first.data(), y, first.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(x), cudaFree(y), cudaFree(w);

    Params r = p;
    r.shape.n = 1, r.dtype = DType::f64, r.device = Device::cpu;
    std::vector<double> ref(static_cast<size_t>(per_image));
    r.input = last64.data(), r.weight = wt64.data(), r.output = ref.data();
    reference::run(Direction::forward, r);
    double d2 = 0, r2 = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double g = to_f32(got[i]);
      ASSERT_TRUE(std::isfinite(g)) << "element " << i << " of the last image not written";
      d2 += (g - ref[i]) * (g - ref[i]);
      r2 += ref[i] * ref[i];
    }
    EXPECT_LE(std::sqrt(d2 / r2), check::tolerance(dtype)) << to_string(layout);
    for (size_t i = 0; i < first.size(); ++i) ASSERT_EQ(to_f32(first[i]), 0.0f) << "element " << i;
  }
}
#endif

}  // namespace
}  // namespace dwconv::testing
