// Grad-weight in two deterministic stages (no atomics, bitwise reproducible
// for a given shape on any GPU):
//
//   stage 1: one block per (output channel or channel group, tap block of
//     kTB taps, chunk of the N*OH output rows). Each thread keeps kTB fp32
//     partial sums over a fixed subset of the chunk's positions (each
//     grad_output value is read once and used for the kTB taps), then a
//     fixed-order block reduction writes one fp32 partial per (o, tap, chunk)
//     into the workspace: part[(o*KK + k) * chunks + chunk].
//   stage 2: one thread per (o, tap) adds its chunks in order, in fp64.
//
//   cuda_wgrad_nchw_2stage: block = one output channel, 256 threads over the
//     chunk's positions (coalesced along ox).
//   cuda_wgrad_nhwc_2stage: block = 32 consecutive output channels (lane =
//     channel, coalesced along C) x 8 warps over the chunk's positions.
//
// Both: f32/f16/bf16, any kernel size, stride, dilation, padding,
// multiplier, 1D. The chunking depends on the shape only.
#include "cuda/launch.cuh"

namespace dwconv::cuda {
namespace {

constexpr int kTB = 8;  // taps per block
constexpr int kLanes = 32, kWarps = kBlock / kLanes;
constexpr int64_t kTargetBlocks = 2048;

struct Plan {
  int64_t groups;      // NCHW: OC; NHWC: ceil(OC / 32)
  int64_t tap_blocks;  // ceil(KK / kTB)
  int64_t rows;        // N * OH
  int64_t rows_per_chunk, chunks;
};

Plan make_plan(const Params& p) {
  const Shape& s = p.shape;
  Plan pl{};
  const int64_t OC = s.out_c(), KK = s.kh * s.kw, OW = s.out_w();
  pl.groups = p.layout == Layout::nchw ? OC : (OC + kLanes - 1) / kLanes;
  pl.tap_blocks = (KK + kTB - 1) / kTB;
  pl.rows = s.n * s.out_h();
  const int64_t base = pl.groups * pl.tap_blocks;
  const int64_t want_chunks = std::max<int64_t>(1, (kTargetBlocks + base - 1) / base);
  // At least ~16 positions per thread per chunk (NCHW: 256 threads; NHWC: 8 warps).
  const int64_t min_pos = p.layout == Layout::nchw ? 16 * kBlock : 16 * kWarps;
  const int64_t min_rows = std::max<int64_t>(1, (min_pos + OW - 1) / OW);
  int64_t rpc = std::max((pl.rows + want_chunks - 1) / want_chunks, min_rows);
  rpc = std::min(rpc, pl.rows);
  pl.rows_per_chunk = rpc;
  pl.chunks = (pl.rows + rpc - 1) / rpc;
  return pl;
}

size_t workspace(const Params& p) {
  const Plan pl = make_plan(p);
  return with_align_slack(size_t(p.shape.weight_elems()) * size_t(pl.chunks) * sizeof(float));
}

// Taps k = tb*kTB + t of the block, as (i, j); valid[t] false past KK.
struct Taps {
  int i[kTB], j[kTB];
  bool valid[kTB];
};
__device__ __forceinline__ Taps block_taps(int64_t tb, int64_t KH, int64_t KW) {
  Taps t;
#pragma unroll
  for (int q = 0; q < kTB; ++q) {
    const int64_t k = tb * kTB + q;
    t.valid[q] = k < KH * KW;
    t.i[q] = t.valid[q] ? int(k / KW) : 0;
    t.j[q] = t.valid[q] ? int(k % KW) : 0;
  }
  return t;
}

template <typename T, typename I>
__global__ void __launch_bounds__(kBlock)
    wgrad_nchw_stage1(Prob s, Plan pl, const T* __restrict__ dy, const T* __restrict__ x, float* __restrict__ part) {
  __shared__ float red[kTB][kBlock];
  const int64_t bid = blockIdx.x;
  const int64_t chunk = bid % pl.chunks, rest = bid / pl.chunks;
  const int64_t tb = rest % pl.tap_blocks, o = rest / pl.tap_blocks;
  const Taps tp = block_taps(tb, s.KH, s.KW);
  const I H = I(s.H), W = I(s.W), OH = I(s.OH), OW = I(s.OW);
  const I SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW), PT = I(s.PT), PL = I(s.PL);
  const I r0 = I(chunk * pl.rows_per_chunk);
  const I r1 = I(std::min<int64_t>(pl.rows, (chunk + 1) * pl.rows_per_chunk));
  float acc[kTB];
#pragma unroll
  for (int q = 0; q < kTB; ++q) acc[q] = 0.f;
  for (I e = r0 * OW + I(threadIdx.x); e < r1 * OW; e += I(blockDim.x)) {
    const I row = e / OW, ox = e - row * OW;
    const I n = row / OH, oy = row - n * OH;
    const float g = to_acc(dy[((I(n) * I(s.OC) + I(o)) * OH + oy) * OW + ox]);
    const T* xp = x + (n * I(s.C) + I(o / s.M)) * H * W;
#pragma unroll
    for (int q = 0; q < kTB; ++q) {
      const I iy = oy * SH - PT + I(tp.i[q]) * DH, ix = ox * SW - PL + I(tp.j[q]) * DW;
      if (tp.valid[q] && iy >= 0 && iy < H && ix >= 0 && ix < W) acc[q] = fmaf(g, to_acc(xp[iy * W + ix]), acc[q]);
    }
  }
#pragma unroll
  for (int q = 0; q < kTB; ++q) red[q][threadIdx.x] = acc[q];
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half)
#pragma unroll
      for (int q = 0; q < kTB; ++q) red[q][threadIdx.x] += red[q][threadIdx.x + half];
    __syncthreads();
  }
  const int64_t k = tb * kTB + threadIdx.x;  // (no run-time index into tp: it would live in local memory)
  if (int(threadIdx.x) < kTB && k < s.KH * s.KW) {
    part[(o * s.KH * s.KW + k) * pl.chunks + chunk] = red[threadIdx.x][0];
  }
}

template <typename T, typename I>
__global__ void __launch_bounds__(kBlock)
    wgrad_nhwc_stage1(Prob s, Plan pl, const T* __restrict__ dy, const T* __restrict__ x, float* __restrict__ part) {
  __shared__ float red[kTB][kWarps][kLanes];
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t bid = blockIdx.x;
  const int64_t chunk = bid % pl.chunks, rest = bid / pl.chunks;
  const int64_t tb = rest % pl.tap_blocks, grp = rest / pl.tap_blocks;
  const Taps tp = block_taps(tb, s.KH, s.KW);
  const I C = I(s.C), H = I(s.H), W = I(s.W), OC = I(s.OC), OH = I(s.OH), OW = I(s.OW);
  const I SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW), PT = I(s.PT), PL = I(s.PL);
  const I o = I(grp * kLanes + lane);
  const bool live = o < OC;
  const I c = live ? o / I(s.M) : I(0);
  const I r0 = I(chunk * pl.rows_per_chunk);
  const I r1 = I(std::min<int64_t>(pl.rows, (chunk + 1) * pl.rows_per_chunk));
  float acc[kTB];
#pragma unroll
  for (int q = 0; q < kTB; ++q) acc[q] = 0.f;
  if (live) {
    for (I e = r0 * OW + I(warp); e < r1 * OW; e += I(kWarps)) {
      const I row = e / OW, ox = e - row * OW;
      const I n = row / OH, oy = row - n * OH;
      const float g = to_acc(dy[e * OC + o]);  // e == (n*OH + oy)*OW + ox
#pragma unroll
      for (int q = 0; q < kTB; ++q) {
        const I iy = oy * SH - PT + I(tp.i[q]) * DH, ix = ox * SW - PL + I(tp.j[q]) * DW;
        if (tp.valid[q] && iy >= 0 && iy < H && ix >= 0 && ix < W)
          acc[q] = fmaf(g, to_acc(x[((n * H + iy) * W + ix) * C + c]), acc[q]);
      }
    }
  }
#pragma unroll
  for (int q = 0; q < kTB; ++q) red[q][warp][lane] = acc[q];
  __syncthreads();
  // Thread (warp q, lane) sums tap q of channel lane over the 8 warps in order.
  const int64_t k = tb * kTB + warp;
  if (warp < kTB && live && k < s.KH * s.KW) {
    float sum = 0.f;
    for (int w = 0; w < kWarps; ++w) sum += red[warp][w][lane];
    part[(int64_t(o) * s.KH * s.KW + k) * pl.chunks + chunk] = sum;
  }
}

template <typename T>
__global__ void wgrad_stage2(int64_t weight_elems, int64_t chunks, const float* __restrict__ part, T* __restrict__ dw) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < weight_elems;
       e += int64_t(gridDim.x) * blockDim.x) {
    double sum = 0;
    for (int64_t c = 0; c < chunks; ++c) sum += double(part[e * chunks + c]);
    dw[e] = from_acc<T>(float(sum));
  }
}

int score_nchw(const Params& p) { return p.layout == Layout::nchw && fast_dtype(p) ? 10 : -1; }
int score_nhwc(const Params& p) { return p.layout == Layout::nhwc && fast_dtype(p) ? 10 : -1; }

void run(const Params& p) {
  if (!fast_dtype(p)) throw Error("dwconv: the CUDA two-stage grad-weight takes f32, f16 or bf16");
  const Prob s = make_prob(p);
  const Plan pl = make_plan(p);
  const bool nchw = p.layout == Layout::nchw;
  const unsigned blocks = grid_exact(pl.groups * pl.tap_blocks * pl.chunks, p, "wgrad stage 1");
  Scratch scratch(p, workspace(p));
  float* part = static_cast<float*>(scratch.get());
  dispatch_fast_dtype(p, [&](auto tt) {
    using T = typename decltype(tt)::type;
    const T* dy = static_cast<const T*>(p.grad_output);
    const T* x = static_cast<const T*>(p.input);
    dispatch_index(needs_i64(p), [&](auto it) {
      using I = typename decltype(it)::type;
      if (nchw) {
        launch_kernel(wgrad_nchw_stage1<T, I>, blocks, kBlock, 0, stream_of(p), s, pl, dy, x, part);
        DWCONV_CUDA_LAUNCHED("wgrad_nchw_stage1", p);
      } else {
        launch_kernel(wgrad_nhwc_stage1<T, I>, blocks, kBlock, 0, stream_of(p), s, pl, dy, x, part);
        DWCONV_CUDA_LAUNCHED("wgrad_nhwc_stage1", p);
      }
    });
    const int64_t we = p.shape.weight_elems();
    launch_kernel(wgrad_stage2<T>, grid_for(we), kBlock, 0, stream_of(p), we, pl.chunks, part,
                  static_cast<T*>(p.grad_weight));
    DWCONV_CUDA_LAUNCHED("wgrad_stage2", p);
  });
  scratch.release();
}

}  // namespace

std::vector<Kernel> wgrad_kernels() {
  return {
      {"cuda_wgrad_nchw_2stage", Device::cuda, Direction::grad_weight, score_nchw, run, workspace},
      {"cuda_wgrad_nhwc_2stage", Device::cuda, Direction::grad_weight, score_nhwc, run, workspace},
  };
}

}  // namespace dwconv::cuda
