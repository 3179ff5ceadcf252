// SIMD grad-input, NCHW: a stride-1 forward of the flat engine over dy
// upsampled by the stride (zeros between samples), with the kernel flipped;
// the multiplier's M output channels accumulate into one input channel.
// Any stride, dilation, padding; fp32 and bf16 storage, fp32 accumulation.
// Stride > 1 multiplies by sh*sw the FMAs spent (on zeros).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_dgrad_nchw.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/parallel.h"
#include "cpu/simd_flat-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

template <typename T>
void DgradNchwTyped(const Params& p, const simd::Slices& ws, const simd::FlatPlan& f) {
  const Shape& s = p.shape;
  const int64_t C = s.c, M = s.multiplier, OC = s.out_c(), KK = s.kh * s.kw;
  const int64_t OH = s.out_h(), OW = s.out_w();
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* w = static_cast<const T*>(p.weight);
  T* dx = static_cast<T*>(p.grad_input);
  const int64_t tasks = s.n * C * f.nblk;
  parallel_region(ws.threads, [&] {
    const int tid = omp_get_thread_num();
    float* buf = reinterpret_cast<float*>(ws.get(tid));
    float* out = buf + f.in_floats;
    float* wt = out + f.out_floats;
    int64_t* offs = reinterpret_cast<int64_t*>(wt + simd::round_up(KK, 16));
    const TapOffsets t{offs, offs + s.kh};
    MakeOffsets(f, t);
    std::memset(buf, 0, size_t(f.in_floats + f.out_floats) * sizeof(float));
#pragma omp for schedule(dynamic, 1) nowait  // the region's end is the barrier
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t blk = task % f.nblk, nc = task / f.nblk;
      const int64_t n = nc / C, c = nc % C;
      const int64_t iy0 = blk * f.rows, rows = std::min(f.rows, f.oh - iy0);
      for (int64_t r = 0; r < M; ++r) {
        const int64_t o = c * M + r;
        CopyIn(f, dy + (n * OC + o) * OH * OW, iy0, rows, buf);
        LoadWeights(w, o, KK, true, wt);
        T* dst = dx + (nc * f.oh + iy0) * f.ow;
        RunFlatConv(f, t, buf, wt, 0.0f, r > 0, rows, out,
                    r + 1 == M ? FlatSpans{dst, rows * f.ow * int64_t(sizeof(T))} : FlatSpans());
      }
      CopyOut(f, out, rows, dx + (nc * f.oh + iy0) * f.ow);
    }
  });
}

void DgradNchw(const Params& p, const simd::Slices& ws, const simd::FlatPlan& f) {
  if (p.dtype == DType::f32) {
    DgradNchwTyped<float>(p, ws, f);
  } else {
    DgradNchwTyped<hbf16>(p, ws, f);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(DgradNchw);

namespace {
size_t thread_bytes(const Params& p) { return simd::flat_thread_bytes(simd::flat_grad_input(p.shape), p.shape); }
int score(const Params& p) { return p.layout == Layout::nchw && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape) ? 10 : -1; }
size_t workspace(const Params& p) { return simd::workspace_for(thread_bytes(p), simd::thread_count(p)); }
void run(const Params& p) {
  const simd::Slices ws = simd::slices(p, thread_bytes(p));
  const simd::FlatPlan f = simd::plan_rows(simd::flat_grad_input(p.shape), p.shape.n * p.shape.c, ws.threads);
  DWCONV_HWY_CALL(DgradNchw)(p, ws, f);
}
}  // namespace

std::vector<Kernel> simd_dgrad_nchw_kernels() {
  return {{"cpu_dgrad_nchw_vec", Device::cpu, Direction::grad_input, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
