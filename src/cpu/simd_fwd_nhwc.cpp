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
// Workspace: weights [kh*kw][cp] and bias [cp] (fp32), then per-thread scratch.
size_t shared_bytes(const simd::NhwcPlan& pl) {
  return simd::align_up(size_t(pl.g.kh * pl.g.kw * pl.cp) * 4) + simd::align_up(size_t(pl.cp) * 4);
}
simd::NhwcPlan max_plan(const Params& p) {
  return simd::plan_nhwc(simd::nhwc_forward(p.shape), p.shape.n, 1, false);  // largest scratch
}
int score(const Params& p) {
  return p.layout == Layout::nhwc && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape) && max_plan(p).scratch_floats <= simd::kNhwcMaxScratch ? 10 : -1;
}
size_t workspace(const Params& p) {
  const simd::NhwcPlan pl = max_plan(p);
  return shared_bytes(pl) + simd::workspace_for(size_t(pl.scratch_floats) * 4, simd::thread_count(p));
}
void run(const Params& p) {
  const simd::NhwcPlan big = max_plan(p);
  const size_t sb = shared_bytes(big);
  const simd::Slices head = simd::slices(p, simd::kAlign);  // aligns the base
  float* wt = reinterpret_cast<float*>(head.base);
  float* bias = reinterpret_cast<float*>(head.base + simd::align_up(size_t(big.g.kh * big.g.kw * big.cp) * 4));
  const size_t lost = size_t(head.base - static_cast<unsigned char*>(p.workspace));
  Params q = p;
  q.workspace = head.base + sb;
  q.workspace_bytes = p.workspace_bytes > lost + sb ? p.workspace_bytes - lost - sb : 0;
  const simd::Slices ws = simd::slices(q, size_t(big.scratch_floats) * 4);
  const simd::NhwcPlan pl = simd::plan_nhwc(simd::nhwc_forward(p.shape), p.shape.n, ws.threads, true);
  DWCONV_HWY_CALL(FwdNhwc)(p, pl, ws.threads, wt, bias, reinterpret_cast<float*>(ws.base));
}
}  // namespace

std::vector<Kernel> simd_fwd_nhwc_kernels() {
  return {{"cpu_fwd_nhwc_vec", Device::cpu, Direction::forward, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
