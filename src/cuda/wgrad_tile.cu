// Grad-weight for large NCHW kernels: cuda_wgrad_nchw_tile.
//
// The two-stage kernel (wgrad.cu) gives each block 8 taps and re-reads
// grad_output once per 8 taps, which at 31x31 is 121 times. Here a block
// owns up to 1024 taps (each of its 256 threads up to 4) and a run of
// consecutive work items, an item being one output tile of one image:
//
//   for each item (n, tile) of the block's part (items in n-major order):
//     shared <- grad_output tile (TOH x TOW, zeros outside the plane) and
//               the input window it reads (halo included, zeros outside)
//     every thread: for each output (y, x) of the tile,
//       acc[q] += g(y, x) * x_window(y*SH + i_q*DH, x*SW + j_q*DW)   (fp32)
//       (g is the same address for the whole block: a broadcast read)
//     sum[q] += acc[q]                                                 (fp64)
//   part[(o*KK + k) * parts + p] = sum                                 (fp32)
//
// then the same fixed-order fp64 stage 2 as the two-stage kernel: one thread
// per (o, tap) adds its `parts` partials in order. Deterministic, no
// atomics; the partition depends on the shape only.
//
// The number of parts aims at kTargetBlocks blocks in all, not at the
// number of tiles: a partial per tile made the workspace grow with H*W
// (240 MiB at C64 1024x1024 31x31). Now parts <= ceil(kTargetBlocks /
// (OC * tap_groups)), so the workspace is at most about 8 MiB + 4 bytes per
// weight element whatever N, H and W. A part may hold many items; each
// item is summed in fp32 and the items in fp64, so no fp32 sum runs longer
// than one tile of one image however long the part.
//
// Accepts: NCHW, f32/f16/bf16, kh*kw >= 100, any stride, dilation, padding,
// multiplier, 1D; the shared tile at most 96 KB; planes below 2^30
// elements. Score 15 (above the two-stage kernel's 10).
#include "cuda/launch.cuh"

namespace dwconv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTPT = 4;                         // taps per thread
constexpr int kTapsPerBlock = kThreads * kTPT;  // taps per tap group
constexpr size_t kSmemLimit = 96 * 1024;
constexpr int64_t kTargetBlocks = 2048;
constexpr int64_t kMinTaps = 100;

struct WtDesc {
  int H, W, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL;
  int64_t N, C, M, OC;
  int TOH, TOW;               // output tile
  int tiles_x, tiles;         // tiles per plane (tiles_x across)
  int s_rows, s_cols;         // shared input window
  int64_t tap_groups;         // ceil(KK / kTapsPerBlock)
  int64_t items;              // N * tiles (item = n * tiles + tile)
  int64_t per_part, parts;    // items per part, parts: partials per (o, tap)
};

bool small_enough(const Shape& s) {
  const int64_t lim = int64_t(1) << 30;
  return s.h * s.w < lim && s.out_h() * s.out_w() < lim && s.h + s.pad_top + s.pad_bottom < lim &&
         s.w + s.pad_left + s.pad_right < lim && s.dil_h * (s.kh - 1) < lim && s.dil_w * (s.kw - 1) < lim &&
         s.stride_h < lim && s.stride_w < lim && s.dil_h < lim && s.dil_w < lim;
}

// False when the case is outside what the kernel takes.
bool make_desc(const Params& p, WtDesc& d) {
  const Shape& s = p.shape;
  if (p.layout != Layout::nchw || !fast_dtype(p) || s.kh * s.kw < kMinTaps || !small_enough(s)) return false;
  d.H = int(s.h), d.W = int(s.w), d.OH = int(s.out_h()), d.OW = int(s.out_w());
  d.KH = int(s.kh), d.KW = int(s.kw), d.SH = int(s.stride_h), d.SW = int(s.stride_w);
  d.DH = int(s.dil_h), d.DW = int(s.dil_w), d.PT = int(s.pad_top), d.PL = int(s.pad_left);
  d.N = s.n, d.C = s.c, d.M = s.multiplier, d.OC = s.out_c();
  d.TOW = std::min(d.OW, 64);
  d.TOH = std::min(d.OH, (1024 + d.TOW - 1) / d.TOW);
  d.tiles_x = (d.OW + d.TOW - 1) / d.TOW;
  const int64_t tiles = int64_t(d.tiles_x) * ((d.OH + d.TOH - 1) / d.TOH);
  if (tiles > (int64_t(1) << 30)) return false;
  d.tiles = int(tiles);
  const int64_t rows = int64_t(d.TOH - 1) * d.SH + int64_t(d.KH - 1) * d.DH + 1;
  const int64_t cols = int64_t(d.TOW - 1) * d.SW + int64_t(d.KW - 1) * d.DW + 1;
  if ((rows * cols + int64_t(d.TOH) * d.TOW) * int64_t(sizeof(float)) > int64_t(kSmemLimit)) return false;
  d.s_rows = int(rows), d.s_cols = int(cols);
  d.tap_groups = (s.kh * s.kw + kTapsPerBlock - 1) / kTapsPerBlock;
  d.items = d.N * d.tiles;
  const int64_t base = d.OC * d.tap_groups;
  const int64_t want = std::max<int64_t>(1, std::min<int64_t>(d.items, (kTargetBlocks + base - 1) / base));
  d.per_part = (d.items + want - 1) / want;
  d.parts = (d.items + d.per_part - 1) / d.per_part;
  return base * d.parts <= int64_t(0x7fffffff);
}

size_t smem_bytes(const WtDesc& d) { return (size_t(d.s_rows) * d.s_cols + size_t(d.TOH) * d.TOW) * sizeof(float); }

template <typename T>
__global__ void __launch_bounds__(kThreads)
    wgrad_tile_kernel(WtDesc d, const T* __restrict__ dy, const T* __restrict__ x, float* __restrict__ part) {
  DWCONV_DYNAMIC_SMEM(float, smem);
  float* xs = smem;                        // [s_rows][s_cols]
  float* gs = smem + d.s_rows * d.s_cols;  // [TOH][TOW]
  const int64_t bid = blockIdx.x;
  const int64_t pi = bid % d.parts;
  const int64_t r = bid / d.parts;
  const int64_t tg = r % d.tap_groups, o = r / d.tap_groups;
  const int KK = d.KH * d.KW;

  int ti[kTPT], tj[kTPT];
#pragma unroll
  for (int q = 0; q < kTPT; ++q) {
    const int64_t k = tg * kTapsPerBlock + q * kThreads + threadIdx.x;
    const bool valid = k < KK;  // invalid taps read (0, 0) and are not stored
    ti[q] = valid ? int(k / d.KW) : 0;
    tj[q] = valid ? int(k % d.KW) : 0;
  }
  double sum[kTPT];
#pragma unroll
  for (int q = 0; q < kTPT; ++q) sum[q] = 0;

  const int x_size = d.s_rows * d.s_cols, g_size = d.TOH * d.TOW;
  const int64_t i0 = pi * d.per_part, i1 = std::min<int64_t>(d.items, i0 + d.per_part);
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t n = item / d.tiles;
    const int tile = int(item - n * d.tiles);
    const int oy0 = (tile / d.tiles_x) * d.TOH, ox0 = (tile % d.tiles_x) * d.TOW;
    const int iy0 = oy0 * d.SH - d.PT, ix0 = ox0 * d.SW - d.PL;
    const T* xp = x + (n * d.C + o / d.M) * (int64_t(d.H) * d.W);
    const T* gp = dy + (n * d.OC + o) * (int64_t(d.OH) * d.OW);
    __syncthreads();  // the previous item's tiles are no longer read
    for (int e = threadIdx.x; e < x_size; e += blockDim.x) {
      const int rr = e / d.s_cols, cc = e - rr * d.s_cols;
      const int iy = iy0 + rr, ix = ix0 + cc;
      xs[e] = (iy >= 0 && iy < d.H && ix >= 0 && ix < d.W) ? to_acc(xp[iy * d.W + ix]) : 0.f;
    }
    for (int e = threadIdx.x; e < g_size; e += blockDim.x) {
      const int yy = e / d.TOW, xx = e - yy * d.TOW;
      const int oy = oy0 + yy, ox = ox0 + xx;
      gs[e] = (oy < d.OH && ox < d.OW) ? to_acc(gp[oy * d.OW + ox]) : 0.f;
    }
    __syncthreads();
    float acc[kTPT];
#pragma unroll
    for (int q = 0; q < kTPT; ++q) acc[q] = 0.f;
    for (int yy = 0; yy < d.TOH; ++yy) {
      const float* grow = gs + yy * d.TOW;
      const float* xrow = xs + yy * d.SH * d.s_cols;
      for (int xx = 0; xx < d.TOW; ++xx) {
        const float g = grow[xx];
        const float* xb = xrow + xx * d.SW;
#pragma unroll
        for (int q = 0; q < kTPT; ++q) acc[q] = fmaf(g, xb[ti[q] * d.DH * d.s_cols + tj[q] * d.DW], acc[q]);
      }
    }
#pragma unroll
    for (int q = 0; q < kTPT; ++q) sum[q] += double(acc[q]);
  }
#pragma unroll
  for (int q = 0; q < kTPT; ++q) {
    const int64_t k = tg * kTapsPerBlock + q * kThreads + threadIdx.x;
    if (k < KK) part[(o * KK + k) * d.parts + pi] = float(sum[q]);
  }
}

template <typename T>
__global__ void wgrad_tile_stage2(int64_t weight_elems, int64_t parts, const float* __restrict__ part,
                                  T* __restrict__ dw) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < weight_elems;
       e += int64_t(gridDim.x) * blockDim.x) {
    double sum = 0;
    for (int64_t c = 0; c < parts; ++c) sum += double(part[e * parts + c]);
    dw[e] = from_acc<T>(float(sum));
  }
}

int score(const Params& p) {
  WtDesc d;
  return make_desc(p, d) ? 15 : -1;
}

size_t workspace(const Params& p) {
  WtDesc d;
  if (!make_desc(p, d)) return 0;
  return with_align_slack(size_t(p.shape.weight_elems()) * size_t(d.parts) * sizeof(float));
}

void run(const Params& p) {
  WtDesc d;
  if (!make_desc(p, d)) throw Error("dwconv: cuda_wgrad_nchw_tile does not accept " + p.shape.str());
  const unsigned blocks = grid_exact(d.OC * d.tap_groups * d.parts, p, "wgrad_tile_kernel");
  const size_t smem = smem_bytes(d);
  Scratch scratch(p, workspace(p));
  float* part = static_cast<float*>(scratch.get());
  dispatch_fast_dtype(p, [&](auto tt) {
    using T = typename decltype(tt)::type;
    if (smem > 48 * 1024)
      DWCONV_CUDA_CHECK(
          cudaFuncSetAttribute(wgrad_tile_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), p);
    launch_kernel(wgrad_tile_kernel<T>, blocks, kThreads, smem, stream_of(p), d, static_cast<const T*>(p.grad_output),
                  static_cast<const T*>(p.input), part);
    DWCONV_CUDA_LAUNCHED("wgrad_tile_kernel", p);
    const int64_t we = p.shape.weight_elems();
    launch_kernel(wgrad_tile_stage2<T>, grid_for(we), kBlock, 0, stream_of(p), we, d.parts, part,
                  static_cast<T*>(p.grad_weight));
    DWCONV_CUDA_LAUNCHED("wgrad_tile_stage2", p);
  });
  scratch.release();
}

}  // namespace

std::vector<Kernel> wgrad_tile_kernels() {
  return {
      {"cuda_wgrad_nchw_tile", Device::cuda, Direction::grad_weight, score, run, workspace},
  };
}

}  // namespace dwconv::cuda
