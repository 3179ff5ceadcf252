// SIMD forward, NCHW, for outputs much narrower than the kernel (a 110x110
// kernel over a 112x112 image: a 3x3 output). The flat engine
// (simd_fwd_nchw.cpp) computes Wq = OW + kw - 1 columns per output row and
// drops all but OW of them: 37x the useful work there. Here each output is a
// dot product along the kernel row instead, vectorised along j (contiguous in
// the weight row and in the input row): per (n, channel) the input plane is
// copied once, fp32 and zero padded, and 4 outputs of a row share each
// weight load. Dilation 1 along W; any stride, padding, dilation along H,
// multiplier; fp32 and bf16 storage, fp32 accumulation.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_fwd_nchw_dot.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/parallel.h"
#include "cpu/simd_convert-inl.h"
#include "cpu/simd_plan.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// R outputs (ox0 .. ox0 + R - 1) of output row oy of one channel. NA
// accumulators per output, for kernel rows i mod NA: an output alone is one
// chain of dependent FMAs, and the 2 FMA pipes x 4 cycles of latency need 8
// chains (a 3-wide output row has R = 3).
template <int R>
HWY_INLINE void DotOutputs(const simd::DotPlan& dp, const Shape& s, const float* HWY_RESTRICT plane,
                           const float* HWY_RESTRICT wt, int64_t oy, int64_t ox0, float bias,
                           float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t full = (s.kw / L) * L;
  const auto tail = hn::FirstN(d, size_t(s.kw - full));
  constexpr int NA = (8 + R - 1) / R;
  hn::Vec<decltype(d)> acc[NA][R];
  for (int a = 0; a < NA; ++a)
    for (int r = 0; r < R; ++r) acc[a][r] = hn::Zero(d);
  // Kernel rows that read input rows (the rest read zero padding).
  const int64_t top = oy * s.stride_h - s.pad_top;
  const int64_t i_lo = top >= 0 ? 0 : simd::ceil_div(-top, s.dil_h);
  const int64_t i_hi = top >= s.h ? 0 : std::min(s.kh, (s.h - 1 - top) / s.dil_h + 1);
  auto row = [&](int64_t i, hn::Vec<decltype(d)>* a) {
    const float* HWY_RESTRICT xr = plane + (top + i * s.dil_h) * dp.wpad + ox0 * s.stride_w;
    const float* HWY_RESTRICT wr = wt + i * dp.kwp;
    int64_t j = 0;
    for (; j < full; j += L) {
      const auto wv = hn::Load(d, wr + j);
      for (int r = 0; r < R; ++r) a[r] = hn::MulAdd(wv, hn::LoadU(d, xr + r * s.stride_w + j), a[r]);
    }
    if (j < s.kw) {
      // Columns past the kernel hold real input: masked to zero, not just
      // multiplied by the zero weights (an inf there would give NaN).
      const auto wv = hn::Load(d, wr + j);
      for (int r = 0; r < R; ++r)
        a[r] = hn::MulAdd(wv, hn::IfThenElseZero(tail, hn::LoadU(d, xr + r * s.stride_w + j)), a[r]);
    }
  };
  int64_t i = i_lo;
  for (; i + NA <= i_hi; i += NA)
    for (int a = 0; a < NA; ++a) row(i + a, acc[a]);
  for (int a = 0; i < i_hi; ++i, ++a) row(i, acc[a]);
  for (int r = 0; r < R; ++r) {
    auto sum = acc[0][r];
    for (int a = 1; a < NA; ++a) sum = hn::Add(sum, acc[a][r]);
    out[r] = bias + hn::GetLane(hn::SumOfLanes(d, sum));
  }
}

template <typename T>
void FwdNchwDotTyped(const Params& p, const simd::DotPlan& dp, const simd::Slices& ws) {
  const Shape& s = p.shape;
  const int64_t C = s.c, M = s.multiplier, OC = s.out_c(), KK = s.kh * s.kw;
  const int64_t oh = s.out_h(), ow = s.out_w();
  const T* x = static_cast<const T*>(p.input);
  const T* w = static_cast<const T*>(p.weight);
  const T* b = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.output);
  parallel_region(ws.threads, [&] {
    float* plane = reinterpret_cast<float*>(ws.get(omp_get_thread_num()));
    float* wt = plane + dp.plane_floats;
    float* row = wt + dp.w_floats;
    // Columns outside the input stay zero from here on; copies only
    // overwrite [pad_left, pad_left + W) of each row.
    std::memset(plane, 0, size_t(dp.plane_floats + dp.w_floats) * sizeof(float));
#pragma omp for schedule(dynamic, 1) nowait  // the region's end is the barrier
    for (int64_t nc = 0; nc < s.n * C; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const T* xp = x + nc * s.h * s.w;
      const int64_t cols = std::max<int64_t>(0, std::min(s.w, dp.wpad - s.pad_left));  // input columns any output reads
      for (int64_t iy = 0; iy < s.h; ++iy) ConvertIn(xp + iy * s.w, plane + iy * dp.wpad + s.pad_left, cols);
      for (int64_t r = 0; r < M; ++r) {
        const int64_t o = c * M + r;
        for (int64_t i = 0; i < s.kh; ++i) ConvertIn(w + o * KK + i * s.kw, wt + i * dp.kwp, s.kw);
        const float bias = b ? ToF(b[o]) : 0.0f;
        T* yo = y + (n * OC + o) * oh * ow;
        for (int64_t oy = 0; oy < oh; ++oy) {
          int64_t ox = 0;
          for (; ox + 4 <= ow; ox += 4) DotOutputs<4>(dp, s, plane, wt, oy, ox, bias, row + ox);
          switch (ow - ox) {
            case 3:
              DotOutputs<3>(dp, s, plane, wt, oy, ox, bias, row + ox);
              break;
            case 2:
              DotOutputs<2>(dp, s, plane, wt, oy, ox, bias, row + ox);
              break;
            case 1:
              DotOutputs<1>(dp, s, plane, wt, oy, ox, bias, row + ox);
              break;
            default:
              break;
          }
          ConvertOut(row, yo + oy * ow, ow);
        }
      }
    }
  });
}

void FwdNchwDot(const Params& p, const simd::DotPlan& dp, const simd::Slices& ws) {
  if (p.dtype == DType::f32) {
    FwdNchwDotTyped<float>(p, dp, ws);
  } else {
    FwdNchwDotTyped<hbf16>(p, dp, ws);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(FwdNchwDot);

namespace {
size_t thread_bytes(const simd::DotPlan& dp) {
  return size_t(dp.plane_floats + dp.w_floats + dp.row_floats) * sizeof(float);
}
int score(const Params& p) {
  const Shape& s = p.shape;
  if (p.layout != Layout::nchw || !simd::simd_dtype(p.dtype) || !simd::simd_geometry(s) || s.dil_w != 1) return -1;
  // Only where the flat engine wastes most of its work (it computes
  // Wq = OW + (kw-1)/sw columns per row), and the kernel row fills vectors.
  const simd::FlatPlan f = simd::flat_forward(s);
  if (s.kw < 8 || f.wq < 2 * f.ow) return -1;
  if (simd::plan_dot(s).plane_floats > simd::kDotMaxPlane) return -1;
  // Above the blocked variant (12) only for outputs far narrower than the
  // kernel (110x110 on 112x112: 0.51 ms against 0.95, 2 threads); at
  // 28x28 k29 the blocked one took 5.5 ms against 12.6.
  return f.wq >= 8 * f.ow ? 13 : 11;
}
size_t workspace(const Params& p) {
  return simd::workspace_for(simd::align_up(thread_bytes(simd::plan_dot(p.shape))), simd::thread_count(p));
}
void run(const Params& p) {
  const simd::DotPlan dp = simd::plan_dot(p.shape);
  const simd::Slices ws = simd::slices(p, thread_bytes(dp));
  DWCONV_HWY_CALL(FwdNchwDot)(p, dp, ws);
}
}  // namespace

std::vector<Kernel> simd_fwd_nchw_dot_kernels() {
  return {{"cpu_fwd_nchw_dot", Device::cpu, Direction::forward, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
