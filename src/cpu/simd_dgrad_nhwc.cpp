// SIMD grad-input, multiplier 1: the NHWC forward core (simd_nhwc-inl.h)
// at stride 1 over dy upsampled by the stride, with the flipped kernel and
// pads (k-1)*dil - pad. Tap rows that land between upsampled rows are
// skipped; columns are not (at stride 2 half the FMAs multiply zeros).
// cpu_dgrad_nhwc_vec, and cpu_dgrad_nchw_blocked with dy rows transposed
// in from their planes and dx rows out as in cpu_fwd_nchw_blocked. Any
// stride, dilation and padding; fp32 and bf16.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_dgrad_nhwc.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/parallel.h"
#include "cpu/simd_nhwc-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

template <typename T>
void DgradNhwcTyped(const Params& p, const simd::NhwcPlan& pl, int threads, float* wt, float* bias, float* ws) {
  parallel_region(threads, [&] {
    NhwcConv(pl, p.shape.n, static_cast<const T*>(p.grad_output), static_cast<const T*>(p.weight),
             static_cast<const T*>(nullptr), true, wt, bias, ws, static_cast<T*>(p.grad_input));
  });
}

void DgradNhwc(const Params& p, const simd::NhwcPlan& pl, int threads, float* wt, float* bias, float* ws) {
  if (p.dtype == DType::f32) {
    DgradNhwcTyped<float>(p, pl, threads, wt, bias, ws);
  } else {
    DgradNhwcTyped<hbf16>(p, pl, threads, wt, bias, ws);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(DgradNhwc);

namespace {
simd::NhwcGeom geometry(const Params& p) {
  simd::NhwcGeom g = p.layout == Layout::nchw ? simd::nchw_blocked_grad_input(p.shape) : simd::nhwc_grad_input(p.shape);
  g.f32 = p.dtype == DType::f32;
  return g;
}
bool accepts(const Params& p, Layout layout) {
  return p.layout == layout && p.shape.multiplier == 1 && simd::simd_dtype(p.dtype) &&
         simd::simd_geometry(p.shape) && simd::nhwc_scratch_fits(geometry(p), p.shape.n);
}
int score_nhwc(const Params& p) { return accepts(p, Layout::nhwc) ? 10 : -1; }
int score_nchw(const Params& p) {
  if (!accepts(p, Layout::nchw)) return -1;
  // Ahead of the flat engine (10) where it measured faster, batch 1, 2
  // threads (docs/performance-cpu.md): 2D, >= 16 channels, kernel rows of 3
  // or more, planes up to 64x64 at stride 1 (1.2-2.2x from 7x7 to 28x28)
  // and up to 28x28 at stride 2 (the upsampled copy and the zero columns
  // cost more on larger planes: 96 x 112x112 s2 0.6x).
  const Shape& s = p.shape;
  const bool one_d = s.h == 1 && s.kh == 1;
  const bool stride1 = s.stride_h == 1 && s.stride_w == 1;
  const bool small = s.h * s.w <= (stride1 ? 64 * 64 : 28 * 28);
  return !one_d && s.c >= 16 && s.kw >= 3 && small ? 12 : 9;
}
size_t workspace(const Params& p) { return simd::nhwc_workspace(p, geometry(p)); }
void run(const Params& p) {
  const simd::NhwcCarve c = simd::nhwc_carve(p, geometry(p));
  DWCONV_HWY_CALL(DgradNhwc)(p, c.pl, c.threads, c.wt, c.bias, c.scratch);
}
}  // namespace

std::vector<Kernel> simd_dgrad_nhwc_kernels() {
  return {{"cpu_dgrad_nhwc_vec", Device::cpu, Direction::grad_input, score_nhwc, run, workspace},
          {"cpu_dgrad_nchw_blocked", Device::cpu, Direction::grad_input, score_nchw, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
