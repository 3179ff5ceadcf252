// The one list of kernel variants. Dispatch, tests and benchmarks all read
// it: dispatch runs the highest-scoring variant, tests check every variant
// that accepts a shape against the reference, benchmarks can force one by
// name (Params::kernel).
#pragma once

#include <vector>

#include "dwconv/dwconv.h"

namespace dwconv {

struct Kernel {
  const char* name;     // spells out what it does: "cpu_fwd_nchw_k3s1_f32", "cuda_wgrad_nhwc_generic"
  Device device;
  Direction direction;
  // < 0: cannot run these params. Otherwise a preference: the highest wins.
  // The generic variants score 0 and accept everything, so there is always one.
  int (*score)(const Params& p);
  void (*run)(const Params& p);
  size_t (*workspace)(const Params& p);  // null: needs none
};

// Every variant compiled into this build, CPU first then CUDA.
const std::vector<Kernel>& kernels();

// Variants that accept p for dir, best first.
std::vector<const Kernel*> candidates(Direction dir, const Params& p);

// Per-backend lists, defined by each backend (src/cpu/, src/cuda/).
std::vector<Kernel> cpu_kernels();
std::vector<Kernel> cuda_kernels();  // empty when built without CUDA

}  // namespace dwconv
