// Per-target helpers shared by the SIMD kernels: fp32 <-> storage type
// conversion for whole vectors and scalars. bf16 rounds to nearest even
// (Highway 1.0's DemoteTo truncates), matching dwconv::to_bf16.
#if defined(DWCONV_CPU_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DWCONV_CPU_CONVERT_INL_H_
#undef DWCONV_CPU_CONVERT_INL_H_
#else
#define DWCONV_CPU_CONVERT_INL_H_
#endif

#include <cstring>
#include <type_traits>

#include "core/common.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using hbf16 = hwy::bfloat16_t;

// Storage type of the public API -> the Highway lane type.
template <typename T>
struct Lane {
  using type = T;
};
template <>
struct Lane<dwconv::bf16> {
  using type = hbf16;
};

template <class D>
HWY_INLINE hn::Vec<D> LoadF(D d, const float* HWY_RESTRICT p) {
  return hn::LoadU(d, p);
}
template <class D>
HWY_INLINE hn::Vec<D> LoadF(D d, const hbf16* HWY_RESTRICT p) {
  const hn::Rebind<hbf16, D> db;
  return hn::PromoteTo(d, hn::LoadU(db, p));
}

template <class D>
HWY_INLINE void StoreF(D d, hn::Vec<D> v, float* HWY_RESTRICT p) {
  hn::StoreU(v, d, p);
}
template <class D>
HWY_INLINE void StoreF(D /* tag */, hn::Vec<D> v, hbf16* HWY_RESTRICT p) {
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint16_t, D> du16;
  auto u = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u));
  auto r = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du, 0x7fffu), lsb)));
  // NaN stays a (quiet) NaN.
  const auto nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du, 0x40u));
  r = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), nan, r);
  const auto h = hn::DemoteTo(du16, hn::BitCast(di, r));
  hn::StoreU(h, du16, reinterpret_cast<uint16_t*>(p));
}

// The first n (< Lanes) elements, zero beyond, reading nothing past them.
template <class D>
HWY_INLINE hn::Vec<D> LoadFN(D d, const float* HWY_RESTRICT p, int64_t n) {
#if HWY_TARGET <= HWY_AVX2
  return hn::MaskedLoad(hn::FirstN(d, size_t(n)), d, p);
#else
  // Highway 1.0's SSE4 MaskedLoad loads the whole vector (ASan caught it).
  HWY_ALIGN float tmp[hn::MaxLanes(d)] = {};
  for (int64_t i = 0; i < n; ++i) tmp[i] = p[i];
  return hn::Load(d, tmp);
#endif
}
template <class D>
HWY_INLINE hn::Vec<D> LoadFN(D d, const hbf16* HWY_RESTRICT p, int64_t n) {
  // No 16-bit masked load on AVX2 (Highway's loads the whole vector).
  HWY_ALIGN hbf16 tmp[hn::MaxLanes(d)] = {};
  for (int64_t i = 0; i < n; ++i) tmp[i] = p[i];
  return LoadF(d, tmp);
}
// The last n (< Lanes) elements of a run: a whole-vector load when that
// stays inside the tensor (end: its end), else a masked one (which cost
// ~18 cycles on the AMD build machine, against ~3).
template <class D, typename T>
HWY_INLINE hn::Vec<D> LoadTail(D d, const T* HWY_RESTRICT p, int64_t n, const T* end) {
  return p + hn::Lanes(d) <= end ? LoadF(d, p) : LoadFN(d, p, n);
}
// The first n (< Lanes) lanes of v to p, nothing past them.
// Through a stack copy: AVX2's masked store (BlendedStore) takes ~12 cycles
// on AMD Zen.
template <class D, typename T>
HWY_INLINE void StoreFN(D d, hn::Vec<D> v, T* HWY_RESTRICT p, int64_t n) {
  HWY_ALIGN T tmp[hn::MaxLanes(d)];
  StoreF(d, v, tmp);
  for (int64_t i = 0; i < n; ++i) p[i] = tmp[i];
}

HWY_INLINE float ToF(float v) { return v; }
HWY_INLINE float ToF(hbf16 v) { return dwconv::to_f32(dwconv::bf16{v.bits}); }
HWY_INLINE void FromF(float v, float* p) { *p = v; }
HWY_INLINE void FromF(float v, hbf16* p) { p->bits = dwconv::to_bf16(v).bits; }

// n floats from src (storage type) to dst (fp32).
template <typename T>
HWY_INLINE void ConvertIn(const T* HWY_RESTRICT src, float* HWY_RESTRICT dst, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (n > 0) std::memcpy(dst, src, size_t(n) * sizeof(float));
  } else {
    const hn::ScalableTag<float> d;
    const int64_t L = int64_t(hn::Lanes(d));
    int64_t i = 0;
    for (; i + L <= n; i += L) hn::StoreU(LoadF(d, src + i), d, dst + i);
    for (; i < n; ++i) dst[i] = ToF(src[i]);
  }
}
// n floats from src (fp32) to dst (storage type).
template <typename T>
HWY_INLINE void ConvertOut(const float* HWY_RESTRICT src, T* HWY_RESTRICT dst, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (n > 0) std::memcpy(dst, src, size_t(n) * sizeof(float));
  } else {
    const hn::ScalableTag<float> d;
    const int64_t L = int64_t(hn::Lanes(d));
    int64_t i = 0;
    for (; i + L <= n; i += L) StoreF(d, hn::LoadU(d, src + i), dst + i);
    for (; i < n; ++i) FromF(src[i], dst + i);
  }
}

// v pinned in a register: an empty asm the compiler cannot see through.
// GCC otherwise folds a load that feeds several FMAs into each of them as
// a memory operand, one load per use, where the point was to load once.
HWY_INLINE hn::Vec<hn::ScalableTag<float>> InReg(hn::Vec<hn::ScalableTag<float>> v) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128 && (defined(__GNUC__) || defined(__clang__))
  asm("" : "+v"(v.raw));
#endif
  return v;
}

// Sum of the lanes as double (fixed order: lane 0 first).
template <class D>
HWY_INLINE double SumLanes(D d, hn::Vec<D> v) {
  HWY_ALIGN float buf[hn::MaxLanes(d)];
  hn::Store(v, d, buf);
  double s = 0;
  for (size_t i = 0; i < hn::Lanes(d); ++i) s += double(buf[i]);
  return s;
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DWCONV_CPU_CONVERT_INL_H_
