// GPU timing for `dwconv bench --device cuda`: dwconv's CUDA variants and
// cuDNN 9's grouped convolution (groups = C, the path PyTorch takes for
// depthwise layers it sends to cuDNN), timed the same way, and the machine's
// ceilings for the roofline columns. Compiled only in CUDA builds with cuDNN
// (tools/CMakeLists.txt defines DWCONV_HAVE_CUDNN_BASELINE).
//
// Timing method, shared by both sides:
//   - the tensors of one call form a "set"; enough sets are allocated that
//     together they exceed twice the L2 cache (at most 16 sets, at most half
//     of the free device memory), and call i uses set i % sets, so the
//     inputs come from DRAM as they would in a network;
//   - inputs are filled with a small non-zero constant (no NaN, no
//     denormals); outputs are overwritten;
//   - `warmup` untimed calls, then `iters` calls each bracketed by CUDA
//     events on one stream; the result is the median of the per-call times;
//   - workspace is allocated once, outside the timed region.
#pragma once

#include <string>

#include "dwconv/dwconv.h"
#include "roofline.h"

namespace dwconv::cli {

struct GpuTiming {
  double ms = 0;       // median over the timed calls
  int iters = 0;       // timed calls
  std::string kernel;  // the dwconv variant that ran (dwconv_gpu_time only)
};

// Times dwconv::run(dir, p) on the current device. p supplies shape, dtype,
// layout and optionally a forced variant (p.kernel); its pointers are
// ignored (buffers are allocated here); the forward runs with a bias.
// Throws dwconv::Error when the forced variant does not accept p, and
// dwconv::BackendError on CUDA failures.
GpuTiming dwconv_gpu_time(Direction dir, const Params& p, int warmup, int iters);
inline double dwconv_time_ms(Direction dir, const Params& p, int warmup, int iters) {
  return dwconv_gpu_time(dir, p, warmup, iters).ms;
}

// Times the same direction through cuDNN's legacy convolution API:
// cudnnConvolutionForward (+ cudnnAddTensor for the bias, as PyTorch does, when cuDNN can broadcast it),
// cudnnConvolutionBackwardData, cudnnConvolutionBackwardFilter,
// cudnnConvolutionBackwardBias. The algorithm is the fastest that
// cudnnFind*AlgorithmEx reports for these exact tensors (non-deterministic
// algorithms allowed, as in PyTorch's default); default math for f32 (TF32
// allowed, PyTorch's default for cuDNN convolutions), tensor-op math for
// f16/bf16, fp32 compute for all three. Asymmetric padding (causal 1D, 'same'
// with even kernels) is run with the larger padding on both sides, which
// computes a superset of the outputs, as PyTorch users do for causal conv.
// Returns NaN when cuDNN has no algorithm for the case (the bench prints n/a).
double cudnn_time_ms(Direction dir, const Params& p, int warmup, int iters);

// The device's ceilings: copy bandwidth (GB/s, read + written) and fp32 FMA
// peak (GFLOP/s), each measured with a kernel (src/cuda/probe.cu), and a
// description "cuda: NVIDIA H100 ... driver x.y". Measured once per process.
Machine measure_gpu_machine();

}  // namespace dwconv::cli
