// Built when CUDA is off: the CUDA part of the kernel list is empty, and the
// CUDA side of autotuning (cuda/autotune.h) is never reached.
#include "cuda/autotune.h"
#include "dwconv/kernels.h"

namespace dwconv {

std::vector<Kernel> cuda_kernels() { return {}; }
bool cuda_available() { return false; }

namespace cuda {

double time_on_stream_ms(void*, const std::function<void()>&) {
  throw BackendError("dwconv: this build has no CUDA backend");
}
bool stream_capturing(void*) { return false; }
std::string device_key() { return "cuda: none (built without CUDA)"; }

}  // namespace cuda

}  // namespace dwconv
