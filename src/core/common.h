// Internal helpers shared by the reference and the backends.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "dwconv/dwconv.h"
#include "dwconv/half.h"

namespace dwconv {

// Element offset of (n, c, y, x) in a dense activation tensor of sizes
// [N, C, H, W] stored in `layout`. 64-bit throughout.
inline int64_t act_offset(Layout layout, int64_t C, int64_t H, int64_t W, int64_t n, int64_t c,
                          int64_t y, int64_t x) {
  return layout == Layout::nchw ? ((n * C + c) * H + y) * W + x : ((n * H + y) * W + x) * C + c;
}

// Scalar load/store between storage types and the accumulation type.
template <typename T>
inline float load_f32(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, float>) {
    return p[i];
  } else if constexpr (std::is_same_v<T, double>) {
    return float(p[i]);
  } else {
    return to_f32(p[i]);
  }
}
template <typename T>
inline double load_f64(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    return double(p[i]);
  } else {
    return double(to_f32(p[i]));
  }
}
template <typename T, typename A>
inline void store(T* p, int64_t i, A v) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    p[i] = T(v);
  } else if constexpr (std::is_same_v<T, bf16>) {
    p[i] = to_bf16(float(v));
  } else {
    p[i] = to_f16(float(v));
  }
}

template <typename T>
struct type_tag {
  using type = T;
};

// Calls f(type_tag<T>{}) with T the C++ storage type of dtype:
//   dispatch_dtype(p.dtype, [&](auto tag) { using T = typename decltype(tag)::type; ... });
template <typename F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: return f(type_tag<float>{});
    case DType::f64: return f(type_tag<double>{});
    case DType::f16: return f(type_tag<f16>{});
    case DType::bf16: return f(type_tag<bf16>{});
  }
  throw Error("dwconv: dtype must be f32, f64, f16 or bf16, got " + std::to_string(int(dtype)));
}

// Accumulation type: fp64 for fp64 storage, fp32 otherwise.
template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// First input index read by tap `t` for output `o`, and the half-open range
// of outputs [lo, hi) whose tap `t` lands inside [0, size). Used to hoist
// bounds checks out of inner loops.
struct TapRange {
  int64_t lo, hi;
};
inline TapRange valid_outputs(int64_t out_size, int64_t in_size, int64_t stride, int64_t pad,
                              int64_t dil, int64_t tap) {
  // o*stride - pad + tap*dil in [0, in_size)  <=>  o in [ceil((pad - tap*dil)/stride), floor((in_size - 1 + pad - tap*dil)/stride)]
  const int64_t off = pad - tap * dil;
  int64_t lo = off <= 0 ? 0 : (off + stride - 1) / stride;
  int64_t hi = floor_div(in_size - 1 + off, stride) + 1;
  if (hi > out_size) hi = out_size;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

}  // namespace dwconv
