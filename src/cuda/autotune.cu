// CUDA event timer, capture query and device key for autotuning (see
// autotune.h).
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <string>

#include "cuda/autotune.h"
#include "dwconv/dwconv.h"

namespace dwconv::cuda {
namespace {

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw BackendError(std::string("dwconv autotune: ") + what + " failed: " + cudaGetErrorName(e) + " (" +
                       cudaGetErrorString(e) + ")");
}

}  // namespace

double time_on_stream_ms(void* stream, const std::function<void()>& fn) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  struct Events {  // destroyed also when fn() throws
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start != nullptr) cudaEventDestroy(start);
      if (stop != nullptr) cudaEventDestroy(stop);
    }
  } ev;
  ok(cudaEventCreate(&ev.start), "cudaEventCreate");
  ok(cudaEventCreate(&ev.stop), "cudaEventCreate");
  ok(cudaEventRecord(ev.start, s), "cudaEventRecord");
  fn();
  ok(cudaEventRecord(ev.stop, s), "cudaEventRecord");
  ok(cudaEventSynchronize(ev.stop), "cudaEventSynchronize");
  float ms = 0;
  ok(cudaEventElapsedTime(&ms, ev.start, ev.stop), "cudaEventElapsedTime");
  return double(ms);
}

bool stream_capturing(void* stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status) != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky; keep it from being blamed on the next call
    return true;
  }
  return status != cudaStreamCaptureStatusNone;
}

std::string device_key() {
  int dev = 0;
  ok(cudaGetDevice(&dev), "cudaGetDevice");
  // cudaGetDeviceProperties is slow (it fills every field): once per device.
  static std::mutex m;
  static std::map<int, std::string> keys;
  std::lock_guard<std::mutex> lock(m);
  auto it = keys.find(dev);
  if (it == keys.end()) {
    cudaDeviceProp prop{};
    ok(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
    it = keys.emplace(dev, "cuda:" + std::to_string(dev) + " " + prop.name + " sm_" + std::to_string(prop.major) +
                               std::to_string(prop.minor))
             .first;
  }
  return it->second;
}

}  // namespace dwconv::cuda
