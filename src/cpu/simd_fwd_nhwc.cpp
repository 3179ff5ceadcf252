// SIMD forward, NHWC: the NHWC core (simd_nhwc-inl.h; rolling or whole-image
// window in channel-vector blocked scratch, register window of the taps).
// Any stride, dilation, padding and channel multiplier (the copy-in repeats
// each input channel m times, so the core sees m*C channels); fp32 and bf16
// storage, fp32 accumulation.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_fwd_nhwc.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/simd_nhwc-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

template <typename T>
void FwdNhwcTyped(const Params& p, const simd::NhwcPlan& pl, int threads, float* wt, float* bias, float* ws) {
#pragma omp parallel num_threads(threads)
  NhwcConv(pl, p.shape.n, static_cast<const T*>(p.input), static_cast<const T*>(p.weight),
           static_cast<const T*>(p.bias), false, wt, bias, ws, static_cast<T*>(p.output));
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
int score(const Params& p) {
  return p.layout == Layout::nhwc && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape) &&
                 simd::nhwc_scratch_fits(simd::nhwc_forward(p.shape), p.shape.n)
             ? 10
             : -1;
}
size_t workspace(const Params& p) { return simd::nhwc_workspace(p, simd::nhwc_forward(p.shape)); }
void run(const Params& p) {
  const simd::NhwcCarve c = simd::nhwc_carve(p, simd::nhwc_forward(p.shape));
  DWCONV_HWY_CALL(FwdNhwc)(p, c.pl, c.threads, c.wt, c.bias, c.scratch);
}
}  // namespace

std::vector<Kernel> simd_fwd_nhwc_kernels() {
  return {{"cpu_fwd_nhwc_vec", Device::cpu, Direction::forward, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
