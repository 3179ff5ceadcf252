// SIMD grad-weight, NCHW, multiplier 1: the grad-weight engine of
// cpu_wgrad_nhwc_vec (simd_wgrad_nhwc-inl.h) with x and dy rows
// transposed from their channel planes into its channel-vector scratch
// (blocks of at most 64 channels: one row stream per channel). Any stride,
// dilation and padding; fp32 and bf16; deterministic for any thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_wgrad_nchw_blocked.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/simd_wgrad_nhwc-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

void WgradNchwBlocked(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradNhwcTiles& t) {
  if (p.dtype == DType::f32) {
    WgradNhwcTyped<float, true>(p, ws, partial, t);
  } else {
    WgradNhwcTyped<hbf16, true>(p, ws, partial, t);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(WgradNchwBlocked);

namespace {
int score(const Params& p) {
  const Shape& s = p.shape;
  if (p.layout != Layout::nchw || s.multiplier != 1 || !simd::simd_dtype(p.dtype) || !simd::simd_geometry(s))
    return -1;
  // Ahead of the flat engine (10) except for 2D images with a kx1 or 1xk
  // kernel (batch 1, 2 threads, against cpu_wgrad_nchw_vec in one run:
  // MobileNetV2, EfficientNet-B0 and ConvNeXt 0.94-2.9x, 1D Mamba and
  // Conformer 1.2-1.5x, InceptionNeXt 24 x 28x28 1x11 0.74x).
  const bool one_d = s.h == 1 && s.kh == 1;
  return one_d || (s.kh > 1 && s.kw > 1) ? 12 : 9;
}
size_t workspace(const Params& p) {
  return simd::wgrad_nhwc_workspace(p, simd::plan_wgrad_nhwc_tiles(p.shape, true));
}
void run(const Params& p) {
  const simd::WgradNhwcTiles t = simd::plan_wgrad_nhwc_tiles(p.shape, true);
  const simd::WgradCarve c = simd::wgrad_nhwc_carve(p, t);
  DWCONV_HWY_CALL(WgradNchwBlocked)(p, c.ws, c.partial, t);
}
}  // namespace

std::vector<Kernel> simd_wgrad_nchw_blocked_kernels() {
  return {{"cpu_wgrad_nchw_blocked", Device::cpu, Direction::grad_weight, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
