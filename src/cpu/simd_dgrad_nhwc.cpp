// SIMD grad-input, NHWC, multiplier 1: the NHWC forward core
// (simd_nhwc-inl.h) at stride 1 over dy upsampled by the stride, with the
// flipped kernel and pads (k-1)*dil - pad. Tap rows that land between
// upsampled rows are skipped; columns are not (at stride 2 half the FMAs
// multiply zeros). Any stride, dilation and padding; fp32 and bf16.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_dgrad_nhwc.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/simd_nhwc-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

template <typename T>
void DgradNhwcTyped(const Params& p, const simd::NhwcPlan& pl, int threads, float* wt, float* bias, float* ws) {
#pragma omp parallel num_threads(threads)
  NhwcConv(pl, p.shape.n, static_cast<const T*>(p.grad_output), static_cast<const T*>(p.weight),
           static_cast<const T*>(nullptr), true, wt, bias, ws, static_cast<T*>(p.grad_input));
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
int score(const Params& p) {
  const Shape& s = p.shape;
  const bool ok = p.layout == Layout::nhwc && s.multiplier == 1;
  return ok && simd::simd_dtype(p.dtype) && simd::simd_geometry(s) &&
                 simd::nhwc_scratch_fits(simd::nhwc_grad_input(s), s.n)
             ? 10
             : -1;
}
size_t workspace(const Params& p) { return simd::nhwc_workspace(p, simd::nhwc_grad_input(p.shape)); }
void run(const Params& p) {
  const simd::NhwcCarve c = simd::nhwc_carve(p, simd::nhwc_grad_input(p.shape));
  DWCONV_HWY_CALL(DgradNhwc)(p, c.pl, c.threads, c.wt, c.bias, c.scratch);
}
}  // namespace

std::vector<Kernel> simd_dgrad_nhwc_kernels() {
  return {{"cpu_dgrad_nhwc_vec", Device::cpu, Direction::grad_input, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
