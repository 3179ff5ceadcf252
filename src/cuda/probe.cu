// Machine ceilings for the benchmark (see probe.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/probe.h"
#include "dwconv/dwconv.h"

namespace dwconv::cuda {
namespace {

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw BackendError(std::string("dwconv probe: ") + what + " failed: " + cudaGetErrorString(e));
}

__global__ void copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

constexpr int kChains = 8;

__global__ void fma_kernel(float* out, int iters, float a, float b) {
  float v[kChains];
#pragma unroll
  for (int c = 0; c < kChains; ++c) v[c] = float(threadIdx.x + c);
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int c = 0; c < kChains; ++c) v[c] = fmaf(v[c], a, b);
  }
  float s = 0;
#pragma unroll
  for (int c = 0; c < kChains; ++c) s += v[c];
  if (s == 1234.5f) out[0] = s;  // practically never true; keeps the chains alive
}

int sm_count() {
  int dev = 0, sms = 0;
  ok(cudaGetDevice(&dev), "cudaGetDevice");
  ok(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  return sms;
}

// Best time in ms of `runs` launches of f (after one warm-up), CUDA events.
template <typename F>
float best_ms(int runs, F&& f) {
  cudaEvent_t a, b;
  ok(cudaEventCreate(&a), "cudaEventCreate");
  ok(cudaEventCreate(&b), "cudaEventCreate");
  f();
  ok(cudaGetLastError(), "probe launch");
  float best = 1e30f;
  for (int r = 0; r < runs; ++r) {
    ok(cudaEventRecord(a), "cudaEventRecord");
    f();
    ok(cudaGetLastError(), "probe launch");
    ok(cudaEventRecord(b), "cudaEventRecord");
    ok(cudaEventSynchronize(b), "cudaEventSynchronize");
    float ms = 0;
    ok(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    best = std::min(best, ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return best;
}

}  // namespace

double probe_copy_gbps(size_t bytes) {
  size_t free_b = 0, total_b = 0;
  ok(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  bytes = std::min(bytes, free_b / 4) / 16 * 16;
  if (bytes < 16) throw BackendError("dwconv probe: no device memory free for the copy test");
  void *src = nullptr, *dst = nullptr;
  ok(cudaMalloc(&src, bytes), "cudaMalloc");
  ok(cudaMalloc(&dst, bytes), "cudaMalloc");
  ok(cudaMemset(src, 0, bytes), "cudaMemset");
  const size_t n = bytes / 16;
  const unsigned blocks = unsigned(sm_count()) * 8;
  const float ms =
      best_ms(10, [&] { copy_kernel<<<blocks, 256>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst), n); });
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * double(bytes) / (double(ms) * 1e-3) / 1e9;
}

double probe_fma_gflops() {
  float* out = nullptr;
  ok(cudaMalloc(&out, sizeof(float)), "cudaMalloc");
  const unsigned blocks = unsigned(sm_count()) * 8;
  const int threads = 256, iters = 1 << 14;
  const float ms = best_ms(5, [&] { fma_kernel<<<blocks, threads>>>(out, iters, 0.999f, 0.001f); });
  cudaFree(out);
  const double fmas = double(blocks) * threads * iters * kChains;
  return 2.0 * fmas / (double(ms) * 1e-3) / 1e9;
}

size_t probe_l2_bytes() {
  int dev = 0, l2 = 0;
  ok(cudaGetDevice(&dev), "cudaGetDevice");
  ok(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev), "cudaDeviceGetAttribute");
  return size_t(l2);
}

std::string probe_device_description() {
  int dev = 0, driver = 0, runtime = 0;
  ok(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp prop{};
  ok(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  ok(cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
  ok(cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
  auto ver = [](int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); };
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.multiProcessorCount) + " SMs, " + std::to_string(prop.l2CacheSize >> 20) +
         " MiB L2), driver " + ver(driver) + ", runtime " + ver(runtime);
}

}  // namespace dwconv::cuda
