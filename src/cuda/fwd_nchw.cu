// NCHW direct tile kernels (the MegEngine-style direct design), used for
// the forward and, with the filter flipped, for grad-input at stride 1.
//
// One block computes a tile of one output plane: tw columns x (rows_t * R)
// rows, one thread per column and R consecutive rows in registers (R = 4, or
// R = 1 for outputs under 4 rows high, such as 1D). The
// block first copies the input rows the tile needs (halo included, zeros
// outside the image) into shared memory as fp32, then every thread runs
// over the taps reading shared memory only. Any stride, dilation, padding
// and multiplier (output channel o reads input channel o / M).
//
//   cuda_fwd_nchw_tile_k3/k5/k7: square kernels, taps unrolled, filter in
//     registers; at stride 1 and dilation 1 vertically each shared-memory
//     value is loaded once and used for every output row it touches.
//   cuda_fwd_nchw_tile_kany: any kh x kw, run-time tap loops (not unrolled),
//     filter read through the L1 cache (uniform across the block).
//
// Grad-input at stride 1 is a forward over grad_output with the filter
// rotated by 180 degrees and padding dil*(k-1) - pad (which may be negative;
// the halo load handles it), output size H x W. Multiplier 1 only.
//
// Limits (score -1 outside, the generic variant runs): f32/f16/bf16, the
// shared-memory tile at most 96 KB, each plane below 2^30 elements.
#include "cuda/launch.cuh"

namespace dwconv::cuda {
namespace {

constexpr int kTileThreads = 128;         // threads per block at most
constexpr size_t kSmemLimit = 96 * 1024;  // fits every sm_80+ GPU after opting in

struct TileDesc {
  const void* in;
  const void* w;
  const void* bias;  // may be null
  void* out;
  int64_t in_C, out_C, M;  // output plane (n, o) reads input plane (n, o / M) and filter o
  int IH, IW, OH, OW, KH, KW, SH, SW, DH, DW;
  int PT, PL;      // may be negative (grad-input)
  int flip;        // 1: filter rotated by 180 degrees
  int tw, rows_t;  // threads along x, thread rows; blockDim.x == tw * rows_t
  int R;           // output rows per thread: 4, or 1 when the output has fewer than 4 rows
  int tiles_x, tiles_y;
  int s_rows, s_cols;  // shared input tile
};

template <typename T, int KT, int R>
__global__ void __launch_bounds__(kTileThreads) tile_kernel(TileDesc d) {
  DWCONV_DYNAMIC_SMEM(float, s_in);
  const int KH = KT > 0 ? KT : d.KH, KW = KT > 0 ? KT : d.KW;
  const int tiles = d.tiles_x * d.tiles_y;
  const int64_t plane = int64_t(blockIdx.x) / tiles;
  const int tile = int(int64_t(blockIdx.x) - plane * tiles);
  const int tyi = tile / d.tiles_x, txi = tile - tyi * d.tiles_x;
  const int oy0 = tyi * d.rows_t * R, ox0 = txi * d.tw;
  const int64_t n = plane / d.out_C, o = plane - n * d.out_C;
  const T* __restrict__ in = static_cast<const T*>(d.in) + (n * d.in_C + o / d.M) * (int64_t(d.IH) * d.IW);
  const T* __restrict__ w = static_cast<const T*>(d.w) + o * KH * KW;
  T* __restrict__ out = static_cast<T*>(d.out) + plane * (int64_t(d.OH) * d.OW);

  // Halo load: shared (r, c) holds input (oy0*SH - PT + r, ox0*SW - PL + c).
  const int iy0 = oy0 * d.SH - d.PT, ix0 = ox0 * d.SW - d.PL;
  const int s_size = d.s_rows * d.s_cols;
  for (int e = threadIdx.x; e < s_size; e += blockDim.x) {
    const int r = e / d.s_cols, c = e - r * d.s_cols;
    const int iy = iy0 + r, ix = ix0 + c;
    s_in[e] = (iy >= 0 && iy < d.IH && ix >= 0 && ix < d.IW) ? to_acc(in[iy * d.IW + ix]) : 0.f;
  }

  const int tx = int(threadIdx.x) % d.tw, ty = int(threadIdx.x) / d.tw;
  float acc[R];
  const float b0 = d.bias != nullptr ? to_acc(static_cast<const T*>(d.bias)[o]) : 0.f;
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = b0;

  // Output (ty*R + r, tx) of the tile, tap (i, j) reads shared
  // ((ty*R + r)*SH + i*DH, tx*SW + j*DW).
  const float* base = s_in + (ty * R * d.SH) * d.s_cols + tx * d.SW;
  if constexpr (KT > 0) {
    constexpr int KK = KT * KT;
    float wr[KK];
#pragma unroll
    for (int k = 0; k < KK; ++k) wr[k] = to_acc(w[d.flip ? KK - 1 - k : k]);
    __syncthreads();
    if (d.SH == 1 && d.DH == 1) {
      // Shared row q (0 <= q < R + KT - 1) serves output row r with tap i = q - r.
#pragma unroll
      for (int j = 0; j < KT; ++j) {
        const float* col = base + j * d.DW;
#pragma unroll
        for (int q = 0; q < R + KT - 1; ++q) {
          const float v = col[q * d.s_cols];
#pragma unroll
          for (int r = 0; r < R; ++r) {
            const int i = q - r;
            if (i >= 0 && i < KT) acc[r] = fmaf(wr[i * KT + j], v, acc[r]);
          }
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < KT; ++i)
#pragma unroll
        for (int j = 0; j < KT; ++j)
#pragma unroll
          for (int r = 0; r < R; ++r)
            acc[r] = fmaf(wr[i * KT + j], base[(r * d.SH + i * d.DH) * d.s_cols + j * d.DW], acc[r]);
    }
  } else {
    __syncthreads();
    const int KK = KH * KW;
    const int row_step = d.SH * d.s_cols;
#pragma unroll 1
    for (int i = 0; i < KH; ++i) {
      const float* rowp = base + i * d.DH * d.s_cols;
#pragma unroll 2
      for (int j = 0; j < KW; ++j) {
        const int k = i * KW + j;
        const float wv = to_acc(w[d.flip ? KK - 1 - k : k]);
        const float* p = rowp + j * d.DW;
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] = fmaf(wv, p[r * row_step], acc[r]);
      }
    }
  }

  const int ox = ox0 + tx;
  if (ox < d.OW) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int oy = oy0 + ty * R + r;
      if (oy < d.OH) out[oy * d.OW + ox] = from_acc<T>(acc[r]);
    }
  }
}

// Fills the launch geometry of d from its sizes; false when the tile does
// not fit (shared memory, 32-bit plane offsets, grid size).
bool plan(TileDesc& d, int64_t planes) {
  if (int64_t(d.IH) * d.IW >= (int64_t(1) << 30) || int64_t(d.OH) * d.OW >= (int64_t(1) << 30)) return false;
  d.R = d.OH >= 4 ? 4 : 1;
  d.tw = d.OH <= 2 ? 128 : d.OW > 16 ? 32 : d.OW > 8 ? 16 : 8;
  const int want_rows = (d.OH + d.R - 1) / d.R;
  d.rows_t = std::max(1, std::min(kTileThreads / d.tw, want_rows));
  d.tiles_x = (d.OW + d.tw - 1) / d.tw;
  d.tiles_y = (d.OH + d.rows_t * d.R - 1) / (d.rows_t * d.R);
  const int64_t rows = int64_t(d.rows_t * d.R - 1) * d.SH + int64_t(d.KH - 1) * d.DH + 1;
  const int64_t cols = int64_t(d.tw - 1) * d.SW + int64_t(d.KW - 1) * d.DW + 1;
  if (rows * cols * int64_t(sizeof(float)) > int64_t(kSmemLimit)) return false;
  d.s_rows = int(rows), d.s_cols = int(cols);
  const int64_t blocks = planes * d.tiles_x * d.tiles_y;
  return blocks <= int64_t(0x7fffffff);
}

// Sizes fit in int (checked before narrowing): any coordinate of a valid
// shape is below the padded extent.
bool small_enough(const Shape& s) {
  const int64_t lim = int64_t(1) << 30;
  return s.h + s.pad_top + s.pad_bottom < lim && s.w + s.pad_left + s.pad_right < lim && s.dil_h * (s.kh - 1) < lim &&
         s.dil_w * (s.kw - 1) < lim && s.stride_h < lim && s.stride_w < lim && s.dil_h < lim && s.dil_w < lim;
}

TileDesc forward_desc(const Params& p) {
  const Shape& s = p.shape;
  TileDesc d{};
  d.in = p.input, d.w = p.weight, d.bias = p.bias, d.out = p.output;
  d.in_C = s.c, d.out_C = s.out_c(), d.M = s.multiplier;
  d.IH = int(s.h), d.IW = int(s.w), d.OH = int(s.out_h()), d.OW = int(s.out_w());
  d.KH = int(s.kh), d.KW = int(s.kw), d.SH = int(s.stride_h), d.SW = int(s.stride_w);
  d.DH = int(s.dil_h), d.DW = int(s.dil_w), d.PT = int(s.pad_top), d.PL = int(s.pad_left), d.flip = 0;
  return d;
}

// grad_input (n, c) = forward over grad_output (n, c) with the rotated filter.
TileDesc dgrad_desc(const Params& p) {
  const Shape& s = p.shape;
  TileDesc d{};
  d.in = p.grad_output, d.w = p.weight, d.bias = nullptr, d.out = p.grad_input;
  d.in_C = s.out_c(), d.out_C = s.c, d.M = 1;
  d.IH = int(s.out_h()), d.IW = int(s.out_w()), d.OH = int(s.h), d.OW = int(s.w);
  d.KH = int(s.kh), d.KW = int(s.kw), d.SH = 1, d.SW = 1, d.DH = int(s.dil_h), d.DW = int(s.dil_w);
  d.PT = int(s.dil_h * (s.kh - 1) - s.pad_top), d.PL = int(s.dil_w * (s.kw - 1) - s.pad_left), d.flip = 1;
  return d;
}

bool kernel_matches(const Shape& s, int K) { return K == 0 || (s.kh == K && s.kw == K); }

template <int K>
int score_fwd(const Params& p) {
  const Shape& s = p.shape;
  if (p.layout != Layout::nchw || !fast_dtype(p) || !kernel_matches(s, K) || !small_enough(s)) return -1;
  TileDesc d = forward_desc(p);
  if (!plan(d, s.n * s.out_c())) return -1;
  return K > 0 ? 20 : 10;
}

template <int K>
int score_dgrad(const Params& p) {
  const Shape& s = p.shape;
  if (p.layout != Layout::nchw || !fast_dtype(p) || !kernel_matches(s, K) || !small_enough(s)) return -1;
  if (s.stride_h != 1 || s.stride_w != 1 || s.multiplier != 1) return -1;
  TileDesc d = dgrad_desc(p);
  if (!plan(d, s.n * s.c)) return -1;
  return K > 0 ? 20 : 10;
}

template <int K>
void launch(TileDesc d, int64_t planes, const Params& p) {
  if (!plan(d, planes)) throw Error("dwconv: NCHW tile variant does not accept " + p.shape.str());
  const size_t smem = size_t(d.s_rows) * d.s_cols * sizeof(float);
  const unsigned blocks = grid_exact(planes * d.tiles_x * d.tiles_y, p, "tile_kernel");
  const unsigned threads = unsigned(d.tw * d.rows_t);
  dispatch_fast_dtype(p, [&](auto tt) {
    using T = typename decltype(tt)::type;
    auto* kernel = d.R == 4 ? tile_kernel<T, K, 4> : tile_kernel<T, K, 1>;
    if (smem > 48 * 1024)
      DWCONV_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), p);
    launch_kernel(kernel, blocks, threads, smem, stream_of(p), d);
    DWCONV_CUDA_LAUNCHED("tile_kernel", p);
  });
}

template <int K>
void run_fwd(const Params& p) {
  launch<K>(forward_desc(p), p.shape.n * p.shape.out_c(), p);
}
template <int K>
void run_dgrad(const Params& p) {
  if (score_dgrad<K>(p) < 0) throw Error("dwconv: NCHW grad-input tile variant does not accept " + p.shape.str());
  launch<K>(dgrad_desc(p), p.shape.n * p.shape.c, p);
}

}  // namespace

std::vector<Kernel> fwd_nchw_kernels() {
  return {
      {"cuda_fwd_nchw_tile_k3", Device::cuda, Direction::forward, score_fwd<3>, run_fwd<3>, nullptr},
      {"cuda_fwd_nchw_tile_k5", Device::cuda, Direction::forward, score_fwd<5>, run_fwd<5>, nullptr},
      {"cuda_fwd_nchw_tile_k7", Device::cuda, Direction::forward, score_fwd<7>, run_fwd<7>, nullptr},
      {"cuda_fwd_nchw_tile_kany", Device::cuda, Direction::forward, score_fwd<0>, run_fwd<0>, nullptr},
      {"cuda_dgrad_nchw_tile_k3", Device::cuda, Direction::grad_input, score_dgrad<3>, run_dgrad<3>, nullptr},
      {"cuda_dgrad_nchw_tile_k5", Device::cuda, Direction::grad_input, score_dgrad<5>, run_dgrad<5>, nullptr},
      {"cuda_dgrad_nchw_tile_k7", Device::cuda, Direction::grad_input, score_dgrad<7>, run_dgrad<7>, nullptr},
      {"cuda_dgrad_nchw_tile_kany", Device::cuda, Direction::grad_input, score_dgrad<0>, run_dgrad<0>, nullptr},
  };
}

}  // namespace dwconv::cuda
