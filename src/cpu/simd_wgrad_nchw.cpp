// SIMD grad-weight, NCHW: per (channel, chunk of n x row blocks) the input
// block is copied into the flat engine's phase planes and dy into a flat
// buffer of the same pitch (zero in dropped columns); each tap is then a dot
// product over the flat index, 8 taps per dy load. fp32 within a block,
// fp64 across blocks; chunk partials sit in the workspace and are reduced in
// chunk order, and the chunking depends on the shape only: the result is
// bitwise the same for any thread count. fp32 and bf16 storage.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_wgrad_nchw.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/parallel.h"
#include "cpu/simd_flat-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

template <typename T>
void WgradNchwTyped(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradPlan& wp) {
  const Shape& s = p.shape;
  const simd::FlatPlan& f = wp.f;
  const int64_t C = s.c, M = s.multiplier, OC = s.out_c(), KK = wp.kk;
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* x = static_cast<const T*>(p.input);
  T* dw = static_cast<T*>(p.grad_weight);
  const int64_t tasks = C * wp.chunks;
  parallel_region(ws.threads, [&] {
    const int tid = omp_get_thread_num();
    float* buf = reinterpret_cast<float*>(ws.get(tid));
    float* dyf = buf + f.in_floats;
    int64_t* offs = reinterpret_cast<int64_t*>(dyf + f.out_floats);
    const TapOffsets t{offs, offs + s.kh};
    MakeOffsets(f, t);
    std::memset(buf, 0, size_t(f.in_floats + f.out_floats) * sizeof(float));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t c = task / wp.chunks, k = task % wp.chunks;
      const int64_t u0 = k * wp.units / wp.chunks, u1 = (k + 1) * wp.units / wp.chunks;
      for (int64_t r = 0; r < M; ++r) std::fill_n(partial + ((c * M + r) * wp.chunks + k) * KK, KK, 0.0);
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t n = u / f.nblk, blk = u % f.nblk;
        const int64_t oy0 = blk * f.rows, rows = std::min(f.rows, f.oh - oy0);
        const int64_t nq = simd::round_up(rows * f.wq, simd::kQBlock);
        CopyIn(f, x + (n * C + c) * s.h * s.w, oy0, rows, buf);
        for (int64_t r = 0; r < M; ++r) {
          const int64_t o = c * M + r;
          CopyFlatDy(f, dy + ((n * OC + o) * f.oh + oy0) * f.ow, rows, nq, dyf);
          FlatDots(f, t, buf, dyf, nq, partial + (o * wp.chunks + k) * KK);
        }
      }
    }
    // Reduce the chunks of each output channel in chunk order.
#pragma omp for schedule(static)
    for (int64_t o = 0; o < OC; ++o)
      for (int64_t e = 0; e < KK; ++e) {
        double sum = 0;
        for (int64_t k = 0; k < wp.chunks; ++k) sum += partial[(o * wp.chunks + k) * KK + e];
        FromF(float(sum), dw + o * KK + e);
      }
  });
}

void WgradNchw(const Params& p, const simd::Slices& ws, double* partial, const simd::WgradPlan& wp) {
  if (p.dtype == DType::f32) {
    WgradNchwTyped<float>(p, ws, partial, wp);
  } else {
    WgradNchwTyped<hbf16>(p, ws, partial, wp);
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(WgradNchw);

namespace {
size_t partial_bytes(const Params& p, const simd::WgradPlan& wp) {
  return simd::align_up(size_t(p.shape.out_c() * wp.chunks * wp.kk) * sizeof(double));
}
size_t thread_bytes(const Params& p, const simd::WgradPlan& wp) {
  return simd::align_up(size_t(wp.f.in_floats + wp.f.out_floats) * 4 + size_t(p.shape.kh + p.shape.kw) * 8);
}
int score(const Params& p) { return p.layout == Layout::nchw && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape) ? 10 : -1; }
size_t workspace(const Params& p) {
  const simd::WgradPlan wp = simd::plan_wgrad_nchw(p.shape);
  return partial_bytes(p, wp) + simd::workspace_for(thread_bytes(p, wp), simd::thread_count(p));
}
void run(const Params& p) {
  const simd::WgradPlan wp = simd::plan_wgrad_nchw(p.shape);
  // Partials first, then the per-thread slices.
  Params q = p;
  const simd::Slices head = simd::slices(p, 0 + simd::kAlign);  // aligns the base
  double* partial = reinterpret_cast<double*>(head.base);
  const size_t pb = partial_bytes(p, wp);
  const size_t lost = size_t(head.base - static_cast<unsigned char*>(p.workspace));
  q.workspace = head.base + pb;
  q.workspace_bytes = p.workspace_bytes > lost + pb ? p.workspace_bytes - lost - pb : 0;
  const simd::Slices ws = simd::slices(q, thread_bytes(p, wp));
  DWCONV_HWY_CALL(WgradNchw)(p, ws, partial, wp);
}
}  // namespace

std::vector<Kernel> simd_wgrad_nchw_kernels() {
  return {{"cpu_wgrad_nchw_vec", Device::cpu, Direction::grad_weight, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
