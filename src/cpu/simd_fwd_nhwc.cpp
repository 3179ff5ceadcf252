// SIMD forward through the NHWC core (simd_nhwc-inl.h; rolling or
// whole-image window in channel-vector blocked scratch, register window of
// the taps): cpu_fwd_nhwc_vec, and cpu_fwd_nchw_blocked, where each window
// row is transposed from the block's channel planes into the scratch and
// each output row (or, on small images, each group's whole planes) is
// staged per thread and transposed back: the channel-blocked layout
// oneDNN calls nChw8c, without its reorders (on small planes the flat
// engine, cpu_fwd_nchw_vec, vectorises along rows of 7-14 pixels and loses
// most of its lanes to the row ends). Any stride, dilation, padding and
// channel multiplier (the copy-in repeats each input channel m times, so
// the core sees m*C channels); fp32 and bf16 storage, fp32 accumulation.
// The plan's geometry carries the layout: one per-target function serves
// both variants.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_fwd_nhwc.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/parallel.h"
#include "cpu/simd_nhwc-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

template <typename T>
void FwdNhwcTyped(const Params& p, const simd::NhwcPlan& pl, int threads, float* wt, float* bias, float* ws) {
  parallel_region(threads, [&] {
    NhwcConv(pl, p.shape.n, static_cast<const T*>(p.input), static_cast<const T*>(p.weight),
             static_cast<const T*>(p.bias), false, wt, bias, ws, static_cast<T*>(p.output));
  });
}

void FwdNhwc(const Params& p, const simd::NhwcPlan& pl, int threads, float* wt, float* bias, float* ws) {
  if (p.dtype == DType::f32) {
    FwdNhwcTyped<float>(p, pl, threads, wt, bias, ws);
  } else {
    FwdNhwcTyped<hbf16>(p, pl, threads, wt, bias, ws);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(FwdNhwc);

namespace {
simd::NhwcGeom geometry(const Params& p) {
  simd::NhwcGeom g = p.layout == Layout::nchw ? simd::nchw_blocked_forward(p.shape) : simd::nhwc_forward(p.shape);
  g.f32 = p.dtype == DType::f32;
  return g;
}
bool accepts(const Params& p, Layout layout) {
  return p.layout == layout && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape) &&
         simd::nhwc_scratch_fits(geometry(p), p.shape.n);
}
int score_nhwc(const Params& p) { return accepts(p, Layout::nhwc) ? 10 : -1; }
int score_nchw(const Params& p) {
  if (!accepts(p, Layout::nchw)) return -1;
  // Ahead of the flat engine (10) on 2D images with at least two vectors'
  // worth of channels and kernel rows of 3 or more (batch 1, 2 threads:
  // 1.1-3x at 7x7 to 56x56 and 1.3x at 112x112 k3 s2, 2.5-7x at k >= 13).
  // The flat engine keeps 1D (Mamba k4: 1.6x faster there), fewer than 16
  // channels and kx1 kernels (InceptionNeXt 12 x 56x56: 0.5-0.85x).
  const Shape& s = p.shape;
  const bool one_d = s.h == 1 && s.kh == 1;
  return !one_d && s.out_c() >= 16 && s.kw >= 3 ? 12 : 9;
}
size_t workspace(const Params& p) { return simd::nhwc_workspace(p, geometry(p)); }
void run(const Params& p) {
  const simd::NhwcCarve c = simd::nhwc_carve(p, geometry(p));
  DWCONV_HWY_CALL(FwdNhwc)(p, c.pl, c.threads, c.wt, c.bias, c.scratch);
}
}  // namespace

std::vector<Kernel> simd_fwd_nhwc_kernels() {
  return {{"cpu_fwd_nhwc_vec", Device::cpu, Direction::forward, score_nhwc, run, workspace},
          {"cpu_fwd_nchw_blocked", Device::cpu, Direction::forward, score_nchw, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
