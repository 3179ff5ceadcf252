// Per-target L x L transpose of fp32 vectors (L = the target's lanes: 1, 4,
// 8 or 16), in registers. Used where a layout puts channels in one
// direction and the kernels want them in the other: the NHWC core's weight
// arrangement ([C][taps] -> [taps][C]) and the NCHW blocked forward, which
// moves NCHW rows into the core's channel-vector scratch and its output
// back. A scalar element-by-element copy of these cost 1.3 ns per element
// (16 % of a 7x7 NHWC call in the weight arrangement alone).
#if defined(DWCONV_CPU_TRANSPOSE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef DWCONV_CPU_TRANSPOSE_INL_H_
#undef DWCONV_CPU_TRANSPOSE_INL_H_
#else
#define DWCONV_CPU_TRANSPOSE_INL_H_
#endif

#include "cpu/simd_convert-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
// One lane: nothing to move.
template <class D>
HWY_INLINE void Transpose(D /* tag */, hn::Vec<D>* /* v */) {}
#else
// 4 x 4 transposes inside every 128-bit block of a, b, c, e (rows in,
// columns out): block k of the result a holds (a, b, c, e) at column 4k of
// the input, b at column 4k + 1, and so on.
template <class D>
HWY_INLINE void Transpose4InBlocks(D d, hn::Vec<D>& a, hn::Vec<D>& b, hn::Vec<D>& c, hn::Vec<D>& e) {
  const hn::Repartition<uint64_t, D> d64;
  const auto ab_lo = hn::BitCast(d64, hn::InterleaveLower(d, a, b));  // a0 b0 a1 b1
  const auto ab_hi = hn::BitCast(d64, hn::InterleaveUpper(d, a, b));  // a2 b2 a3 b3
  const auto ce_lo = hn::BitCast(d64, hn::InterleaveLower(d, c, e));  // c0 e0 c1 e1
  const auto ce_hi = hn::BitCast(d64, hn::InterleaveUpper(d, c, e));  // c2 e2 c3 e3
  a = hn::BitCast(d, hn::InterleaveLower(d64, ab_lo, ce_lo));         // a0 b0 c0 e0
  b = hn::BitCast(d, hn::InterleaveUpper(d64, ab_lo, ce_lo));         // a1 b1 c1 e1
  c = hn::BitCast(d, hn::InterleaveLower(d64, ab_hi, ce_hi));         // a2 b2 c2 e2
  e = hn::BitCast(d, hn::InterleaveUpper(d64, ab_hi, ce_hi));         // a3 b3 c3 e3
}

// v[0..L) in place: on return v[j] lane i is v[i] lane j on entry.
template <class D>
HWY_INLINE void Transpose(D d, hn::Vec<D>* v) {
  constexpr size_t L = hn::MaxLanes(D());
  static_assert(L == 4 || L == 8 || L == 16, "transpose of 4, 8 or 16 lanes");
  if constexpr (L == 4) {
    Transpose4InBlocks(d, v[0], v[1], v[2], v[3]);
  } else if constexpr (L == 8) {
    // Blocks of rows 0-3 and 4-7, then the halves exchanged across them.
    Transpose4InBlocks(d, v[0], v[1], v[2], v[3]);
    Transpose4InBlocks(d, v[4], v[5], v[6], v[7]);
    for (int k = 0; k < 4; ++k) {
      const auto lo = v[k], hi = v[4 + k];
      v[k] = hn::ConcatLowerLower(d, hi, lo);
      v[4 + k] = hn::ConcatUpperUpper(d, hi, lo);
    }
  } else if constexpr (L == 16) {
    // Blocks of 4 rows; then block b of column 4b + k is block b of u_g
    // (g = 0..3, u_g = v[4g + k]): a 4 x 4 transpose of 128-bit blocks,
    // first of 256-bit halves, then of blocks within them.
    for (int g = 0; g < 4; ++g) Transpose4InBlocks(d, v[4 * g], v[4 * g + 1], v[4 * g + 2], v[4 * g + 3]);
    for (int k = 0; k < 4; ++k) {
      const auto u0 = v[k], u1 = v[4 + k], u2 = v[8 + k], u3 = v[12 + k];
      const auto h02_lo = hn::ConcatLowerLower(d, u2, u0);  // u0.b0 u0.b1 u2.b0 u2.b1
      const auto h02_hi = hn::ConcatUpperUpper(d, u2, u0);  // u0.b2 u0.b3 u2.b2 u2.b3
      const auto h13_lo = hn::ConcatLowerLower(d, u3, u1);
      const auto h13_hi = hn::ConcatUpperUpper(d, u3, u1);
      v[k] = hn::OddEvenBlocks(hn::SwapAdjacentBlocks(h13_lo), h02_lo);       // b0 of u0 u1 u2 u3
      v[4 + k] = hn::OddEvenBlocks(h13_lo, hn::SwapAdjacentBlocks(h02_lo));   // b1
      v[8 + k] = hn::OddEvenBlocks(hn::SwapAdjacentBlocks(h13_hi), h02_hi);   // b2
      v[12 + k] = hn::OddEvenBlocks(h13_hi, hn::SwapAdjacentBlocks(h02_hi));  // b3
    }
  }
}
#endif  // HWY_TARGET == HWY_SCALAR

// Planes to channel vectors: pixels [0, n) of L planes (lane l reads
// src[l][off + x], zero where src[l] is null) into n vectors of L
// channels, dst + x * L. end: the end of the source tensor.
template <typename T>
HWY_INLINE void PlanesToVectors(const T* const* src, int64_t off, int64_t n, const T* end, float* HWY_RESTRICT dst) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<decltype(d)> t[hn::MaxLanes(d)];
  int64_t x = 0;
  for (; x + L <= n; x += L) {
    for (int64_t l = 0; l < L; ++l) t[l] = src[l] ? LoadF(d, src[l] + off + x) : hn::Zero(d);
    Transpose(d, t);
    for (int64_t i = 0; i < L; ++i) hn::Store(t[i], d, dst + (x + i) * L);
  }
  if (x < n) {  // the last < L pixels: partial loads, as many stores
    const int64_t rest = n - x;
    for (int64_t l = 0; l < L; ++l) t[l] = src[l] ? LoadTail(d, src[l] + off + x, rest, end) : hn::Zero(d);
    Transpose(d, t);
    for (int64_t i = 0; i < rest; ++i) hn::Store(t[i], d, dst + (x + i) * L);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // DWCONV_CPU_TRANSPOSE_INL_H_
