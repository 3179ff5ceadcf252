// The CPU backend's part of the one kernel list.
#include "cpu/generic.h"

namespace dwconv {

std::vector<Kernel> cpu_kernels() {
  std::vector<Kernel> v = cpu::generic_kernels();
  return v;
}

}  // namespace dwconv
