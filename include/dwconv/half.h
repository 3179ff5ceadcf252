// 16-bit float storage types and their conversions (round to nearest even),
// usable from host and device code.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DWCONV_HD __host__ __device__ __forceinline__
#else
#define DWCONV_HD inline
#endif

namespace dwconv {

struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

DWCONV_HD float bits_to_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
DWCONV_HD uint32_t f32_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

DWCONV_HD float to_f32(bf16 h) { return bits_to_f32(uint32_t(h.bits) << 16); }

DWCONV_HD bf16 to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}

DWCONV_HD float to_f32(f16 h) {
  const uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    // Subnormal: value = man * 2^-24.
    float v = float(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

DWCONV_HD f16 to_f16(float f) {
  uint32_t u = f32_to_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return f16{uint16_t(sign | 0x7e00u)};  // NaN
  if (u >= 0x477ff000u) return f16{uint16_t(sign | 0x7c00u)};  // overflow (>= 65520) -> inf
  if (u < 0x38800000u) {
    // Result is subnormal or zero: round f * 2^24 to an integer, nearest even.
    float a = bits_to_f32(u) * 16777216.0f;
    uint32_t m = uint32_t(a);
    float rem = a - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return f16{uint16_t(sign | m)};
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  uint32_t r = u - (112u << 23);
  r += 0xfffu + ((r >> 13) & 1u);
  return f16{uint16_t(sign | (r >> 13))};
}

}  // namespace dwconv
