// Built when CUDA is off: the CUDA part of the kernel list is empty.
#include "dwconv/kernels.h"

namespace dwconv {

std::vector<Kernel> cuda_kernels() { return {}; }
bool cuda_available() { return false; }

}  // namespace dwconv
