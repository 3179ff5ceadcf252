// Emulation (see cuda_runtime.h): the f16 conversions dwconv's kernels use,
// with dwconv's own round-to-nearest-even software conversions.
#pragma once
#include "cuda_runtime.h"
#include "dwconv/half.h"
struct __half {
  unsigned short x;
};
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline float __half2float(__half h) { return dwconv::to_f32(dwconv::f16{h.x}); }
inline __half __float2half_rn(float f) { return __half{dwconv::to_f16(f).bits}; }
