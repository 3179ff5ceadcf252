// SIMD forward, NCHW: the flat engine (simd_flat-inl.h) over blocks of
// output rows. Any stride, dilation, padding and multiplier; fp32 and bf16
// storage, fp32 accumulation. Vectorised along the flattened (row, column)
// index, 8 vector accumulators per block, one broadcast weight per tap;
// compile-time tap loops for kw = 3, 5, 7 at stride 1.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_fwd_nchw.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "cpu/parallel.h"
#include "cpu/simd_flat-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace dwconv::cpu::HWY_NAMESPACE {

template <typename T>
void FwdNchwTyped(const Params& p, const simd::Slices& ws, const simd::FlatPlan& f) {
  const Shape& s = p.shape;
  const int64_t C = s.c, M = s.multiplier, OC = s.out_c(), KK = s.kh * s.kw;
  const T* x = static_cast<const T*>(p.input);
  const T* w = static_cast<const T*>(p.weight);
  const T* b = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.output);
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
    // Static contiguous chunks (tasks cost the same but the last row block)
    // so that a thread knows its next task and prefetches its input rows.
    const int nth = omp_get_num_threads();
    const int64_t task_begin = tasks * tid / nth, task_end = tasks * (tid + 1) / nth;
    auto spans_in = [&](int64_t next, FlatSpans* sp) {
      const int64_t nblk2 = next % f.nblk, plane = next / f.nblk;
      const int64_t rows2 = std::min(f.rows, f.oh - nblk2 * f.rows);
      const int64_t y0 = std::max<int64_t>(0, (nblk2 * f.rows * f.sh - f.top) / f.uh);
      const int64_t y1 = std::min<int64_t>(f.src_h, ((nblk2 * f.rows + rows2 + f.rimax) * f.sh - f.top) / f.uh + 1);
      if (y0 >= y1) return;
      sp->in = x + (plane * f.src_h + y0) * f.src_w;
      sp->in_bytes = (y1 - y0) * f.src_w * int64_t(sizeof(T));
    };
    // Only at stride 1 and for planes past L1: at stride 2 (mnv2 96x112)
    // it was 10% slower, and on 14x14 planes 3-5% (measured, 1 thread).
    const bool prefetch_in = f.sh == 1 && f.sw == 1 && f.src_h * f.src_w * int64_t(sizeof(T)) >= 32 * 1024;
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t blk = task % f.nblk, nc = task / f.nblk;
      const int64_t n = nc / C, c = nc % C;
      const int64_t oy0 = blk * f.rows, rows = std::min(f.rows, f.oh - oy0);
      CopyIn(f, x + nc * s.h * s.w, oy0, rows, buf);
      for (int64_t r = 0; r < M; ++r) {
        const int64_t o = c * M + r;
        LoadWeights(w, o, KK, false, wt);
        const float bias = b ? ToF(b[o]) : 0.0f;
        T* dst = y + ((n * OC + o) * f.oh + oy0) * f.ow;
        FlatSpans spans{dst, rows * f.ow * int64_t(sizeof(T))};
        if (r + 1 == M && task + 1 < task_end && prefetch_in) spans_in(task + 1, &spans);
        RunFlatConv(f, t, buf, wt, bias, false, rows, out, spans);
        CopyOut(f, out, rows, dst);
      }
    }
  });
}

void FwdNchw(const Params& p, const simd::Slices& ws, const simd::FlatPlan& f) {
  if (p.dtype == DType::f32) {
    FwdNchwTyped<float>(p, ws, f);
  } else {
    FwdNchwTyped<hbf16>(p, ws, f);  // dwconv::bf16 and hwy::bfloat16_t share their bits
  }
}

}  // namespace dwconv::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "cpu/isa.h"
#include "cpu/simd.h"

namespace dwconv::cpu {
HWY_EXPORT(FwdNchw);

namespace {
size_t thread_bytes(const Params& p) { return simd::flat_thread_bytes(simd::flat_forward(p.shape), p.shape); }
int score(const Params& p) { return p.layout == Layout::nchw && simd::simd_dtype(p.dtype) && simd::simd_geometry(p.shape) ? 10 : -1; }
size_t workspace(const Params& p) { return simd::workspace_for(thread_bytes(p), simd::thread_count(p)); }
void run(const Params& p) {
  const simd::Slices ws = simd::slices(p, thread_bytes(p));
  const simd::FlatPlan f = simd::plan_rows(simd::flat_forward(p.shape), p.shape.n * p.shape.c, ws.threads);
  DWCONV_HWY_CALL(FwdNchw)(p, ws, f);
}
}  // namespace

std::vector<Kernel> simd_fwd_nchw_kernels() {
  return {{"cpu_fwd_nchw_vec", Device::cpu, Direction::forward, score, run, workspace}};
}

}  // namespace dwconv::cpu
#endif  // HWY_ONCE
