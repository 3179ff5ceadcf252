// Generic CUDA kernels: correct for every Params (every dtype including f64,
// both layouts, any kernel size, stride, dilation, padding, multiplier, 1D).
// Score 0: any specialised variant that accepts a call outranks them. They
// follow the reference's formula literally, one thread per element written,
// and are the baseline the fast variants are tested against.
//
//   forward:     one thread per output element, loops over every tap.
//   grad_input:  one thread per input element (gather form), loops over every
//                (multiplier, tap) and keeps the taps whose output position
//                is an integer inside the output.
//   grad_weight: one block per (output channel, tap), the block reduces over
//                N*OH*OW in fp64: each thread a strided subset, then a fixed
//                tree in shared memory. No atomics, bitwise reproducible.
#include "cuda/launch.cuh"

namespace dwconv::cuda {
namespace {

// Offset of (n, c, y, x) in a dense [N, Cc, Hh, Ww] activation.
template <typename I>
__device__ __forceinline__ I act_off(bool nhwc, I Cc, I Hh, I Ww, I n, I c, I y, I x) {
  return nhwc ? ((n * Hh + y) * Ww + x) * Cc + c : ((n * Cc + c) * Hh + y) * Ww + x;
}

// Splits a storage-order index e of a [N, Cc, Hh, Ww] tensor into (n, c, y, x).
template <typename I>
__device__ __forceinline__ void split(bool nhwc, I Cc, I Hh, I Ww, I e, I& n, I& c, I& y, I& x) {
  if (nhwc) {
    c = e % Cc;
    I t = e / Cc;
    x = t % Ww;
    t /= Ww;
    y = t % Hh;
    n = t / Hh;
  } else {
    x = e % Ww;
    I t = e / Ww;
    y = t % Hh;
    t /= Hh;
    c = t % Cc;
    n = t / Cc;
  }
}

template <typename T, typename I>
__global__ void fwd_generic_kernel(Prob s, bool nhwc, const T* __restrict__ x, const T* __restrict__ w,
                                   const T* __restrict__ b, T* __restrict__ y) {
  using A = acc_of<T>;
  const I C = I(s.C), H = I(s.H), W = I(s.W), M = I(s.M), OC = I(s.OC), OH = I(s.OH), OW = I(s.OW);
  const I KH = I(s.KH), KW = I(s.KW), SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW);
  const I PT = I(s.PT), PL = I(s.PL);
  const I total = I(s.N) * OC * OH * OW;
  for (I e = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); e < total; e += I(gridDim.x) * I(blockDim.x)) {
    I n, o, oy, ox;
    split(nhwc, OC, OH, OW, e, n, o, oy, ox);
    const I c = o / M;
    A acc = b != nullptr ? to_acc(b[o]) : A(0);
    for (I i = 0; i < KH; ++i) {
      const I iy = oy * SH - PT + i * DH;
      if (iy < 0 || iy >= H) continue;
      for (I j = 0; j < KW; ++j) {
        const I ix = ox * SW - PL + j * DW;
        if (ix < 0 || ix >= W) continue;
        acc += A(to_acc(w[(o * KH + i) * KW + j])) * A(to_acc(x[act_off(nhwc, C, H, W, n, c, iy, ix)]));
      }
    }
    y[e] = from_acc<T>(acc);
  }
}

template <typename T, typename I>
__global__ void dgrad_generic_kernel(Prob s, bool nhwc, const T* __restrict__ dy, const T* __restrict__ w,
                                     T* __restrict__ dx) {
  using A = acc_of<T>;
  const I C = I(s.C), H = I(s.H), W = I(s.W), M = I(s.M), OC = I(s.OC), OH = I(s.OH), OW = I(s.OW);
  const I KH = I(s.KH), KW = I(s.KW), SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW);
  const I PT = I(s.PT), PL = I(s.PL);
  const I total = I(s.N) * C * H * W;
  for (I e = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); e < total; e += I(gridDim.x) * I(blockDim.x)) {
    I n, c, iy, ix;
    split(nhwc, C, H, W, e, n, c, iy, ix);
    A acc = A(0);
    for (I r = 0; r < M; ++r) {
      const I o = c * M + r;
      for (I i = 0; i < KH; ++i) {
        const I ty = iy + PT - i * DH;  // = oy * SH
        if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
        const I oy = ty / SH;
        for (I j = 0; j < KW; ++j) {
          const I tx = ix + PL - j * DW;  // = ox * SW
          if (tx < 0 || tx % SW != 0 || tx / SW >= OW) continue;
          const I ox = tx / SW;
          acc += A(to_acc(w[(o * KH + i) * KW + j])) * A(to_acc(dy[act_off(nhwc, OC, OH, OW, n, o, oy, ox)]));
        }
      }
    }
    dx[e] = from_acc<T>(acc);
  }
}

// One block (kBlock threads) per (o, tap); fp64 sums, fixed-order tree.
template <typename T, typename I>
__global__ void __launch_bounds__(kBlock)
    wgrad_generic_kernel(Prob s, bool nhwc, const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dw) {
  __shared__ double red[kBlock];
  const I C = I(s.C), H = I(s.H), W = I(s.W), M = I(s.M), OC = I(s.OC), OH = I(s.OH), OW = I(s.OW);
  const I KH = I(s.KH), KW = I(s.KW), SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW);
  const I PT = I(s.PT), PL = I(s.PL);
  const I KK = KH * KW;
  const I o = I(blockIdx.x) / KK, k = I(blockIdx.x) % KK;
  const I i = k / KW, j = k % KW;
  const I c = o / M;
  const I P = OH * OW, total = I(s.N) * P;
  double acc = 0;
  for (I e = I(threadIdx.x); e < total; e += I(blockDim.x)) {
    const I n = e / P, pos = e % P, oy = pos / OW, ox = pos % OW;
    const I iy = oy * SH - PT + i * DH, ix = ox * SW - PL + j * DW;
    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
    acc += double(to_acc(dy[act_off(nhwc, OC, OH, OW, n, o, oy, ox)])) *
           double(to_acc(x[act_off(nhwc, C, H, W, n, c, iy, ix)]));
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) red[threadIdx.x] += red[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) dw[blockIdx.x] = from_acc<T>(red[0]);  // blockIdx.x == o * KK + k
}

void run_fwd(const Params& p) {
  const Prob s = make_prob(p);
  const bool nhwc = p.layout == Layout::nhwc;
  dispatch_dtype(p.dtype, [&](auto tt) {
    using T = typename decltype(tt)::type;
    dispatch_index(needs_i64(p), [&](auto it) {
      using I = typename decltype(it)::type;
      launch_kernel(fwd_generic_kernel<T, I>, grid_for(p.shape.output_elems()), kBlock, 0, stream_of(p), s, nhwc,
                    static_cast<const T*>(p.input), static_cast<const T*>(p.weight), static_cast<const T*>(p.bias),
                    static_cast<T*>(p.output));
      DWCONV_CUDA_LAUNCHED("fwd_generic_kernel", p);
    });
  });
}

void run_dgrad(const Params& p) {
  const Prob s = make_prob(p);
  const bool nhwc = p.layout == Layout::nhwc;
  dispatch_dtype(p.dtype, [&](auto tt) {
    using T = typename decltype(tt)::type;
    dispatch_index(needs_i64(p), [&](auto it) {
      using I = typename decltype(it)::type;
      launch_kernel(dgrad_generic_kernel<T, I>, grid_for(p.shape.input_elems()), kBlock, 0, stream_of(p), s, nhwc,
                    static_cast<const T*>(p.grad_output), static_cast<const T*>(p.weight),
                    static_cast<T*>(p.grad_input));
      DWCONV_CUDA_LAUNCHED("dgrad_generic_kernel", p);
    });
  });
}

void run_wgrad(const Params& p) {
  const Prob s = make_prob(p);
  const bool nhwc = p.layout == Layout::nhwc;
  const unsigned blocks = grid_exact(p.shape.weight_elems(), p, "wgrad_generic_kernel");
  dispatch_dtype(p.dtype, [&](auto tt) {
    using T = typename decltype(tt)::type;
    dispatch_index(needs_i64(p), [&](auto it) {
      using I = typename decltype(it)::type;
      launch_kernel(wgrad_generic_kernel<T, I>, blocks, kBlock, 0, stream_of(p), s, nhwc,
                    static_cast<const T*>(p.grad_output), static_cast<const T*>(p.input),
                    static_cast<T*>(p.grad_weight));
      DWCONV_CUDA_LAUNCHED("wgrad_generic_kernel", p);
    });
  });
}

int accept_nchw(const Params& p) { return p.layout == Layout::nchw ? 0 : -1; }
int accept_nhwc(const Params& p) { return p.layout == Layout::nhwc ? 0 : -1; }

}  // namespace

std::vector<Kernel> generic_kernels() {
  return {
      {"cuda_fwd_nchw_generic", Device::cuda, Direction::forward, accept_nchw, run_fwd, nullptr},
      {"cuda_fwd_nhwc_generic", Device::cuda, Direction::forward, accept_nhwc, run_fwd, nullptr},
      {"cuda_dgrad_nchw_generic", Device::cuda, Direction::grad_input, accept_nchw, run_dgrad, nullptr},
      {"cuda_dgrad_nhwc_generic", Device::cuda, Direction::grad_input, accept_nhwc, run_dgrad, nullptr},
      {"cuda_wgrad_nchw_generic", Device::cuda, Direction::grad_weight, accept_nchw, run_wgrad, nullptr},
      {"cuda_wgrad_nhwc_generic", Device::cuda, Direction::grad_weight, accept_nhwc, run_wgrad, nullptr},
  };
}

}  // namespace dwconv::cuda
