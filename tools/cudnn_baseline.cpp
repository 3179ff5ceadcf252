// GPU timing: dwconv's CUDA variants and cuDNN's grouped convolution, timed
// the same way (see cudnn_baseline.h), and the device's ceilings.
#include "cudnn_baseline.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "../src/cuda/probe.h"
#include "dwconv/kernels.h"

// The convolution entry points used here are cuDNN's legacy API, marked
// deprecated in cuDNN 9 but present and supported.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace dwconv::cli {
namespace {

void cu(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw BackendError(std::string("dwconv bench: ") + what + ": " + cudaGetErrorString(e));
}
void dnn(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw BackendError(std::string("dwconv bench: ") + what + ": " + cudnnGetErrorString(s));
}
#define CU(call) cu((call), #call)
#define DNN(call) dnn((call), #call)

// Device memory owned by the host scope.
struct DevBuf {
  void* p = nullptr;
  DevBuf() = default;
  explicit DevBuf(size_t bytes, int fill_byte) {
    if (bytes == 0) return;
    CU(cudaMalloc(&p, bytes));
    CU(cudaMemset(p, fill_byte, bytes));
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p(o.p) { o.p = nullptr; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    if (this != &o) {
      if (p) cudaFree(p);
      p = o.p;
      o.p = nullptr;
    }
    return *this;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

// 0x3c in every byte: f32 0.0115, f16 1.06, bf16 0.0115, f64 1.6e-19; all
// normal numbers, so no denormal slow paths and no NaN.
constexpr int kFill = 0x3c;

// The tensors of one call. Unused ones stay null.
struct Set {
  DevBuf x, w, b, y, dy, dx, dw, db;
};

size_t act_bytes(int64_t elems, DType dt) { return size_t(elems) * dtype_size(dt); }

// Bytes of the tensors a direction touches.
size_t set_bytes(Direction dir, const Shape& s, DType dt) {
  const size_t in = act_bytes(s.input_elems(), dt), out = act_bytes(s.output_elems(), dt);
  const size_t w = act_bytes(s.weight_elems(), dt), b = act_bytes(s.out_c(), dt);
  switch (dir) {
    case Direction::forward:
      return in + w + b + out;
    case Direction::grad_input:
      return out + w + in;
    case Direction::grad_weight:
      return out + in + w;
    case Direction::grad_bias:
      return out + b;
  }
  return 0;
}

Set make_set(Direction dir, const Shape& s, DType dt) {
  Set t;
  const size_t in = act_bytes(s.input_elems(), dt), out = act_bytes(s.output_elems(), dt);
  const size_t w = act_bytes(s.weight_elems(), dt), b = act_bytes(s.out_c(), dt);
  switch (dir) {
    case Direction::forward:
      t.x = DevBuf(in, kFill), t.w = DevBuf(w, kFill), t.b = DevBuf(b, kFill), t.y = DevBuf(out, 0);
      break;
    case Direction::grad_input:
      t.dy = DevBuf(out, kFill), t.w = DevBuf(w, kFill), t.dx = DevBuf(in, 0);
      break;
    case Direction::grad_weight:
      t.dy = DevBuf(out, kFill), t.x = DevBuf(in, kFill), t.dw = DevBuf(w, 0);
      break;
    case Direction::grad_bias:
      t.dy = DevBuf(out, kFill), t.db = DevBuf(b, 0);
      break;
  }
  return t;
}

// Enough sets to exceed 2x L2, at most 16, within half the free memory.
std::vector<Set> make_sets(Direction dir, const Shape& s, DType dt, size_t extra_bytes) {
  const size_t one = std::max<size_t>(set_bytes(dir, s, dt), 1);
  size_t free_b = 0, total_b = 0;
  CU(cudaMemGetInfo(&free_b, &total_b));
  const size_t budget = free_b / 2 > extra_bytes ? free_b / 2 - extra_bytes : 0;
  if (one > budget)
    throw BackendError("dwconv bench: " + s.str() + " needs " + std::to_string(one >> 20) + " MiB, " +
                       std::to_string(budget >> 20) + " MiB available");
  const size_t l2 = dwconv::cuda::probe_l2_bytes();
  size_t n = std::max<size_t>(1, (2 * l2 + one - 1) / one);
  n = std::min<size_t>({n, 16, budget / one});
  std::vector<Set> sets;
  for (size_t i = 0; i < n; ++i) sets.push_back(make_set(dir, s, dt));
  return sets;
}

// warmup untimed calls, then iters calls each between two events; median.
template <typename F>
GpuTiming time_events(cudaStream_t st, int warmup, int iters, size_t sets, F&& call) {
  int k = 0;
  for (int i = 0; i < std::max(warmup, 0); ++i) call(size_t(k++) % sets);
  CU(cudaStreamSynchronize(st));
  cudaEvent_t a, b;
  CU(cudaEventCreate(&a));
  CU(cudaEventCreate(&b));
  std::vector<double> ms;
  try {
    for (int i = 0; i < std::max(iters, 1); ++i) {
      CU(cudaEventRecord(a, st));
      call(size_t(k++) % sets);
      CU(cudaEventRecord(b, st));
      CU(cudaEventSynchronize(b));
      float t = 0;
      CU(cudaEventElapsedTime(&t, a, b));
      ms.push_back(double(t));
    }
  } catch (...) {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    throw;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  GpuTiming r;
  const size_t n = ms.size();
  r.ms = (n % 2) ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  r.iters = int(n);
  return r;
}

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s); }
};

// ------------------------------------------------------------------ cuDNN
cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t x = nullptr;
    DNN(cudnnCreate(&x));
    return x;
  }();
  return h;
}

cudnnDataType_t dnn_type(DType d) {
  switch (d) {
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    case DType::f64:
      return CUDNN_DATA_DOUBLE;
    case DType::f16:
      return CUDNN_DATA_HALF;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
  }
  return CUDNN_DATA_FLOAT;
}

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(cudnnTensorFormat_t f, cudnnDataType_t t, int64_t n, int64_t c, int64_t h, int64_t w) {
    DNN(cudnnCreateTensorDescriptor(&d));
    DNN(cudnnSetTensor4dDescriptor(d, f, t, int(n), int(c), int(h), int(w)));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
};
struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc(cudnnTensorFormat_t f, cudnnDataType_t t, int64_t k, int64_t kh, int64_t kw) {
    DNN(cudnnCreateFilterDescriptor(&d));
    DNN(cudnnSetFilter4dDescriptor(d, t, f, int(k), 1, int(kh), int(kw)));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc(const Shape& s, DType dt) {
    DNN(cudnnCreateConvolutionDescriptor(&d));
    const cudnnDataType_t compute = dt == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    DNN(cudnnSetConvolution2dDescriptor(d, int(s.pad_top), int(s.pad_left), int(s.stride_h), int(s.stride_w),
                                        int(s.dil_h), int(s.dil_w), CUDNN_CROSS_CORRELATION, compute));
    DNN(cudnnSetConvolutionGroupCount(d, int(s.c)));
    DNN(cudnnSetConvolutionMathType(
        d, (dt == DType::f16 || dt == DType::bf16) ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
};

// The shape cuDNN runs: symmetric padding (the larger side on both).
Shape cudnn_shape(const Shape& in) {
  Shape s = in;
  s.pad_top = s.pad_bottom = std::max(in.pad_top, in.pad_bottom);
  s.pad_left = s.pad_right = std::max(in.pad_left, in.pad_right);
  return s;
}

constexpr size_t kFindWorkspace = size_t(256) << 20;

}  // namespace

GpuTiming dwconv_gpu_time(Direction dir, const Params& p0, int warmup, int iters) {
  Params p = p0;
  p.device = Device::cuda;
  p.workspace = nullptr, p.workspace_bytes = 0;
  Stream st;
  p.stream = st.s;
  const Shape& s = p.shape;
  auto bind = [&](Params q, Set& t) {
    q.input = t.x.p, q.weight = t.w.p, q.bias = t.b.p, q.output = t.y.p;
    q.grad_output = t.dy.p, q.grad_input = t.dx.p, q.grad_weight = t.dw.p, q.grad_bias = t.db.p;
    return q;
  };
  // The variant that will run and its workspace (asked with set 0's
  // pointers, which validation requires).
  std::vector<Set> sets = make_sets(dir, s, p.dtype, 0);
  Params q0 = bind(p, sets[0]);
  // With autotuning, one untimed call tunes (the variants allocate their own
  // workspace there); the name and workspace below are then the tuned choice's.
  if (autotune_enabled()) {
    run(dir, q0);
    CU(cudaStreamSynchronize(st.s));
  }
  const std::string kernel = selected_kernel(dir, q0);
  const size_t ws = workspace_size(dir, q0);
  DevBuf wsbuf(ws, 0);
  std::vector<Params> ps;
  for (Set& t : sets) {
    Params q = bind(p, t);
    q.workspace = wsbuf.p, q.workspace_bytes = wsbuf.p ? ws : 0;
    ps.push_back(q);
  }
  GpuTiming r = time_events(st.s, warmup, iters, ps.size(), [&](size_t i) { run(dir, ps[i]); });
  CU(cudaStreamSynchronize(st.s));
  r.kernel = kernel;
  return r;
}

double cudnn_time_ms(Direction dir, const Params& p, int warmup, int iters) {
  const Shape s = cudnn_shape(p.shape);
  const DType dt = p.dtype;
  const cudnnDataType_t t = dnn_type(dt);
  const cudnnTensorFormat_t f = p.layout == Layout::nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  TensorDesc xd(f, t, s.n, s.c, s.h, s.w), yd(f, t, s.n, s.out_c(), s.out_h(), s.out_w());
  TensorDesc bd(CUDNN_TENSOR_NCHW, t, 1, s.out_c(), 1, 1);
  FilterDesc wd(f, t, s.out_c(), s.kh, s.kw);
  ConvDesc cd(s, dt);
  {
    int n = 0, c = 0, h = 0, w = 0;
    DNN(cudnnGetConvolution2dForwardOutputDim(cd.d, xd.d, wd.d, &n, &c, &h, &w));
    if (n != s.n || c != s.out_c() || h != s.out_h() || w != s.out_w())
      throw BackendError("dwconv bench: cuDNN's output size differs from dwconv's for " + s.str());
  }
  Stream st;
  struct StreamBinding {  // the handle must not keep a destroyed stream
    explicit StreamBinding(cudaStream_t s) { DNN(cudnnSetStream(handle(), s)); }
    ~StreamBinding() { cudnnSetStream(handle(), nullptr); }
  } binding(st.s);
  std::vector<Set> sets = make_sets(dir, s, dt, kFindWorkspace);
  DevBuf find_ws(kFindWorkspace, 0);
  const double one_d = 1.0, zero_d = 0.0;
  const float one_f = 1.0f, zero_f = 0.0f;
  const void* one = dt == DType::f64 ? static_cast<const void*>(&one_d) : static_cast<const void*>(&one_f);
  const void* zero = dt == DType::f64 ? static_cast<const void*>(&zero_d) : static_cast<const void*>(&zero_f);
  Set& s0 = sets[0];
  const double nan = std::numeric_limits<double>::quiet_NaN();

  switch (dir) {
    case Direction::forward: {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      int found = 0;
      if (cudnnFindConvolutionForwardAlgorithmEx(handle(), xd.d, s0.x.p, wd.d, s0.w.p, cd.d, yd.d, s0.y.p,
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf, find_ws.p,
                                                 kFindWorkspace) != CUDNN_STATUS_SUCCESS)
        return nan;
      const cudnnConvolutionFwdAlgoPerf_t* best = nullptr;
      for (int i = 0; i < found && !best; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kFindWorkspace) best = &perf[i];
      if (!best) return nan;
      const cudnnConvolutionFwdAlgo_t algo = best->algo;
      const size_t ws = best->memory;
      // The bias as PyTorch adds it; left out if cuDNN cannot broadcast it onto this layout / dtype.
      const bool with_bias = cudnnAddTensor(handle(), one, bd.d, s0.b.p, one, yd.d, s0.y.p) == CUDNN_STATUS_SUCCESS;
      return time_events(st.s, warmup, iters, sets.size(),
                         [&](size_t i) {
                           Set& x = sets[i];
                           DNN(cudnnConvolutionForward(handle(), one, xd.d, x.x.p, wd.d, x.w.p, cd.d, algo, find_ws.p,
                                                       ws, zero, yd.d, x.y.p));
                           if (with_bias) DNN(cudnnAddTensor(handle(), one, bd.d, x.b.p, one, yd.d, x.y.p));
                         })
          .ms;
    }
    case Direction::grad_input: {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      int found = 0;
      if (cudnnFindConvolutionBackwardDataAlgorithmEx(handle(), wd.d, s0.w.p, yd.d, s0.dy.p, cd.d, xd.d, s0.dx.p,
                                                      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, perf, find_ws.p,
                                                      kFindWorkspace) != CUDNN_STATUS_SUCCESS)
        return nan;
      const cudnnConvolutionBwdDataAlgoPerf_t* best = nullptr;
      for (int i = 0; i < found && !best; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kFindWorkspace) best = &perf[i];
      if (!best) return nan;
      const cudnnConvolutionBwdDataAlgo_t algo = best->algo;
      const size_t ws = best->memory;
      return time_events(st.s, warmup, iters, sets.size(),
                         [&](size_t i) {
                           Set& x = sets[i];
                           DNN(cudnnConvolutionBackwardData(handle(), one, wd.d, x.w.p, yd.d, x.dy.p, cd.d, algo,
                                                            find_ws.p, ws, zero, xd.d, x.dx.p));
                         })
          .ms;
    }
    case Direction::grad_weight: {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      int found = 0;
      if (cudnnFindConvolutionBackwardFilterAlgorithmEx(handle(), xd.d, s0.x.p, yd.d, s0.dy.p, cd.d, wd.d, s0.dw.p,
                                                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, perf,
                                                        find_ws.p, kFindWorkspace) != CUDNN_STATUS_SUCCESS)
        return nan;
      const cudnnConvolutionBwdFilterAlgoPerf_t* best = nullptr;
      for (int i = 0; i < found && !best; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kFindWorkspace) best = &perf[i];
      if (!best) return nan;
      const cudnnConvolutionBwdFilterAlgo_t algo = best->algo;
      const size_t ws = best->memory;
      return time_events(st.s, warmup, iters, sets.size(),
                         [&](size_t i) {
                           Set& x = sets[i];
                           DNN(cudnnConvolutionBackwardFilter(handle(), one, xd.d, x.x.p, yd.d, x.dy.p, cd.d, algo,
                                                              find_ws.p, ws, zero, wd.d, x.dw.p));
                         })
          .ms;
    }
    case Direction::grad_bias:
      return time_events(st.s, warmup, iters, sets.size(),
                         [&](size_t i) {
                           Set& x = sets[i];
                           DNN(cudnnConvolutionBackwardBias(handle(), one, yd.d, x.dy.p, zero, bd.d, x.db.p));
                         })
          .ms;
  }
  return nan;
}

Machine measure_gpu_machine() {
  static const Machine m = [] {
    Machine r;
    r.device = "cuda: " + dwconv::cuda::probe_device_description();
    r.bw_gbps = dwconv::cuda::probe_copy_gbps();
    r.peak_gflops = dwconv::cuda::probe_fma_gflops();
    return r;
  }();
  return m;
}

}  // namespace dwconv::cli
