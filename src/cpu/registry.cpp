// The CPU backend's part of the one kernel list: the generic kernels (score
// 0, accept everything) and the SIMD kernels (score > 0 where they apply).
#include "cpu/generic.h"
#include "cpu/simd.h"

namespace dwconv {

std::vector<Kernel> cpu_kernels() {
  std::vector<Kernel> v = cpu::generic_kernels();
  for (auto list : {cpu::simd_fwd_nchw_kernels, cpu::simd_fwd_nchw_dot_kernels, cpu::simd_fwd_nhwc_kernels,
                    cpu::simd_dgrad_nchw_kernels, cpu::simd_dgrad_nhwc_kernels, cpu::simd_wgrad_nchw_kernels,
                    cpu::simd_wgrad_nhwc_kernels, cpu::simd_nhwc_rowflat_kernels,
                    cpu::simd_wgrad_nhwc_plane_kernels, cpu::x86_nhwc_bf16dp_kernels}) {
    std::vector<Kernel> k = list();
    v.insert(v.end(), k.begin(), k.end());
  }
  return v;
}

}  // namespace dwconv
