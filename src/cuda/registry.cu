// The CUDA backend's part of the one kernel list, cuda_available(), and the
// error helper every CUDA call goes through.
#include "cuda/launch.cuh"

namespace dwconv {

namespace cuda {

void fail(const char* what, cudaError_t e, const Params& p) {
  throw BackendError(std::string("dwconv: ") + what + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                     ") on " + p.shape.str() + " (" + to_string(p.dtype) + ", " + to_string(p.layout) + ")");
}

}  // namespace cuda

std::vector<Kernel> cuda_kernels() {
  std::vector<Kernel> v;
  for (auto list : {cuda::generic_kernels(), cuda::fwd_nchw_kernels(), cuda::fwd_nhwc_kernels(), cuda::dgrad_kernels(),
                    cuda::wgrad_kernels(), cuda::wgrad_tile_kernels(), cuda::bgrad_kernels()})
    v.insert(v.end(), list.begin(), list.end());
  return v;
}

// True iff the runtime finds a driver and at least one device. Without a
// driver cudaGetDeviceCount returns an error code (no crash): false. Asked
// once per process.
bool cuda_available() {
  static const bool available = [] {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // clear the error so later calls do not see it
      return false;
    }
    return count > 0;
  }();
  return available;
}

}  // namespace dwconv
