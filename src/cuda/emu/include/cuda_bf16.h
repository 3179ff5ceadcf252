// Emulation (see cuda_runtime.h): the bf16 conversions dwconv's kernels use.
#pragma once
#include "cuda_runtime.h"
#include "dwconv/half.h"
struct __nv_bfloat16 {
  unsigned short x;
};
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{dwconv::to_bf16(f).bits}; }
