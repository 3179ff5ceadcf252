#pragma once

#include <vector>

#include "dwconv/kernels.h"

namespace dwconv::cpu {

// Correct for every Params on the CPU; score 0, so any specialised variant wins.
std::vector<Kernel> generic_kernels();

}  // namespace dwconv::cpu
