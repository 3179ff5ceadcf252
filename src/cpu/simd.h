// SIMD CPU kernels (Highway, run-time dispatch; one family of x86
// intrinsics): each family's list of variants, appended to the generic ones
// by registry.cpp.
#pragma once

#include <vector>

#include "dwconv/kernels.h"

namespace dwconv::cpu {

std::vector<Kernel> simd_fwd_nchw_kernels();
std::vector<Kernel> simd_fwd_nchw_dot_kernels();
std::vector<Kernel> simd_dgrad_nchw_kernels();
std::vector<Kernel> simd_wgrad_nchw_kernels();
std::vector<Kernel> simd_fwd_nhwc_kernels();
std::vector<Kernel> simd_dgrad_nhwc_kernels();
std::vector<Kernel> simd_wgrad_nhwc_kernels();
std::vector<Kernel> simd_nhwc_rowflat_kernels();
std::vector<Kernel> simd_wgrad_nhwc_plane_kernels();
// Not Highway: x86 intrinsics for AVX512_BF16 (x86_nhwc_bf16dp.cpp).
std::vector<Kernel> x86_nhwc_bf16dp_kernels();

}  // namespace dwconv::cpu
