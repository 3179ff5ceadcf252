// Every validation rule: a bad Params raises dwconv::Error naming the
// parameter and its value, before any kernel runs.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "dwconv/dwconv.h"

namespace dwconv {
namespace {

struct Valid {
  std::vector<float> x, w, b, y;
  Params p;
  Valid() {
    p.shape = conv2d_shape(2, 3, 8, 8, 3, 3, 1, 1);
    x.resize(size_t(p.shape.input_elems()));
    w.resize(size_t(p.shape.weight_elems()));
    b.resize(size_t(p.shape.out_c()));
    y.resize(size_t(p.shape.output_elems()));
    p.input = x.data(), p.weight = w.data(), p.bias = b.data(), p.output = y.data();
    p.grad_output = y.data(), p.grad_input = x.data(), p.grad_weight = w.data(), p.grad_bias = b.data();
  }
};

// Runs `dir` on a valid Params changed by `mutate`; expects an Error whose
// message contains every string in `expected`.
void expect_error(const std::function<void(Params&)>& mutate, std::vector<std::string> expected,
                  Direction dir = Direction::forward) {
  Valid v;
  mutate(v.p);
  try {
    run(dir, v.p);
    ADD_FAILURE() << "no error; expected one mentioning " << expected[0];
  } catch (const Error& e) {
    for (const auto& s : expected) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

TEST(Errors, ValidParamsRun) {
  for (Direction d : {Direction::forward, Direction::grad_input, Direction::grad_weight, Direction::grad_bias}) {
    Valid v;
    EXPECT_NO_THROW(run(d, v.p));
  }
}

TEST(Errors, SizesMustBePositive) {
  expect_error([](Params& p) { p.shape.n = 0; }, {"n (batch)", "got 0"});
  expect_error([](Params& p) { p.shape.c = -2; }, {"c (channels)", "-2"});
  expect_error([](Params& p) { p.shape.h = 0; }, {"h (height)", "0"});
  expect_error([](Params& p) { p.shape.w = -1; }, {"w (width)", "-1"});
  expect_error([](Params& p) { p.shape.multiplier = 0; }, {"multiplier", "0"});
  expect_error([](Params& p) { p.shape.kh = 0; }, {"kh", "0"});
  expect_error([](Params& p) { p.shape.kw = -3; }, {"kw", "-3"});
  expect_error([](Params& p) { p.shape.stride_h = 0; }, {"stride_h", "0"});
  expect_error([](Params& p) { p.shape.stride_w = -1; }, {"stride_w", "-1"});
  expect_error([](Params& p) { p.shape.dil_h = 0; }, {"dil_h", "0"});
  expect_error([](Params& p) { p.shape.dil_w = 0; }, {"dil_w", "0"});
  expect_error([](Params& p) { p.shape.pad_top = -1; }, {"pad_top", "-1"});
  expect_error([](Params& p) { p.shape.pad_bottom = -1; }, {"pad_bottom", "-1"});
  expect_error([](Params& p) { p.shape.pad_left = -4; }, {"pad_left", "-4"});
  expect_error([](Params& p) { p.shape.pad_right = -1; }, {"pad_right", "-1"});
  expect_error([](Params& p) { p.threads = -1; }, {"threads", "-1"});
}

TEST(Errors, OutputSizeMustBePositive) {
  expect_error([](Params& p) { p.shape.kh = 11; }, {"kernel height", "11", "padded input height (10)"});
  expect_error(
      [](Params& p) {
        p.shape.kw = 5;
        p.shape.dil_w = 3;
      },
      {"kernel width", "13", "padded input width (10)"});
}

TEST(Errors, Overflow) {
  expect_error(
      [](Params& p) {
        p.shape.n = int64_t(1) << 40;
        p.shape.c = int64_t(1) << 30;
      },
      {"overflows 64 bits"});
  expect_error([](Params& p) { p.shape.dil_h = int64_t(1) << 62; p.shape.kh = 8; }, {"dil_h * (kh - 1)", "overflows"});
  expect_error([](Params& p) { p.shape.pad_top = INT64_MAX; }, {"overflows"});
  expect_error([](Params& p) { p.shape.multiplier = INT64_MAX; }, {"c * multiplier", "overflows"});
}

TEST(Errors, NullPointers) {
  expect_error([](Params& p) { p.input = nullptr; }, {"input", "null", "forward"});
  expect_error([](Params& p) { p.weight = nullptr; }, {"weight", "null"});
  expect_error([](Params& p) { p.output = nullptr; }, {"output", "null"});
  expect_error([](Params& p) { p.grad_output = nullptr; }, {"grad_output", "null", "grad_input"}, Direction::grad_input);
  expect_error([](Params& p) { p.grad_input = nullptr; }, {"grad_input", "null"}, Direction::grad_input);
  expect_error([](Params& p) { p.input = nullptr; }, {"input", "null", "grad_weight"}, Direction::grad_weight);
  expect_error([](Params& p) { p.grad_weight = nullptr; }, {"grad_weight", "null"}, Direction::grad_weight);
  expect_error([](Params& p) { p.grad_bias = nullptr; }, {"grad_bias", "null"}, Direction::grad_bias);
  // The bias is optional.
  Valid v;
  v.p.bias = nullptr;
  EXPECT_NO_THROW(run(Direction::forward, v.p));
}

TEST(Errors, EnumsOutOfRange) {
  expect_error([](Params& p) { p.dtype = static_cast<DType>(9); }, {"dtype", "9"});
  expect_error([](Params& p) { p.layout = static_cast<Layout>(7); }, {"layout", "7"});
  expect_error([](Params& p) { p.device = static_cast<Device>(5); }, {"device", "5"});
  expect_error([](Params&) {}, {"direction", "6"}, static_cast<Direction>(6));
}

TEST(Errors, KernelSelection) {
  expect_error([](Params& p) { p.kernel = "no_such_kernel"; }, {"no_such_kernel", "not a kernel"});
  // A real kernel of another direction does not accept forward.
  expect_error([](Params& p) { p.kernel = "cpu_bgrad_generic"; }, {"cpu_bgrad_generic", "does not accept"});
}

TEST(Errors, Workspace) {
  expect_error([](Params& p) { p.workspace_bytes = 64; }, {"workspace", "64"});
}

TEST(Errors, CudaWithoutCuda) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present";
  // Host pointers on device cuda: without a CUDA build or a GPU this must be
  // a clear error, never a crash. (With a CUDA build and no GPU, the CUDA
  // backend reports it.)
  Valid v;
  v.p.device = Device::cuda;
  EXPECT_THROW(run(Direction::forward, v.p), std::exception);
}

TEST(Errors, ReferenceRejectsDevicePointers) {
  Valid v;
  v.p.device = Device::cuda;
  try {
    reference::run(Direction::forward, v.p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos);
  }
}

}  // namespace
}  // namespace dwconv
