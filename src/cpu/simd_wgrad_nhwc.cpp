// SIMD grad-weight, NHWC, multiplier 1: the grad-weight engine
// (simd_wgrad_nhwc-inl.h) on NHWC tensors. Any stride, dilation and
// padding; fp32 and bf16; deterministic for any thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_wgrad_nhwc.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/simd_wgrad_nhwc-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

void WgradNhwc(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradNhwcTiles& t) {
  if (p.dtype == DType::f32) {
    WgradNhwcTyped<float, false>(p, ws, partial, t);
  } else {
    WgradNhwcTyped<hbf16, false>(p, ws, partial, t);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(WgradNhwc);

namespace {
int score(const Params& p) {
  return p.layout == Layout::nhwc && p.shape.multiplier == 1 && simd::simd_dtype(p.dtype) &&
                 simd::simd_geometry(p.shape)
             ? 10
             : -1;
}
size_t workspace(const Params& p) {
  return simd::wgrad_nhwc_workspace(p, simd::plan_wgrad_nhwc_tiles(p.shape, false));
}
void run(const Params& p) {
  const simd::WgradNhwcTiles t = simd::plan_wgrad_nhwc_tiles(p.shape, false);
  const simd::WgradCarve c = simd::wgrad_nhwc_carve(p, t);
  DWCONV_HWY_CALL(WgradNhwc)(p, c.ws, c.partial, t);
}
}  // namespace

std::vector<Kernel> simd_wgrad_nhwc_kernels() {
  return {{"cpu_wgrad_nhwc_vec", Device::cpu, Direction::grad_weight, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
