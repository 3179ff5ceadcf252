// Grad-bias: db[o] = sum over n, oy, ox of dy[n, o, oy, ox]. Every dtype,
// fp64 sums, deterministic (fixed-order block reductions, no atomics).
//
//   cuda_bgrad_nchw_generic: one block per output channel; the block walks
//     the channel's N planes contiguously (coalesced), then a fixed tree.
//   cuda_bgrad_nhwc_generic: one block per 32 consecutive channels; lane =
//     channel (coalesced 32-wide rows), the 8 warps split the N*OH*OW
//     positions, then a fixed-order sum over the 8 warps.
#include "cuda/launch.cuh"

namespace dwconv::cuda {
namespace {

template <typename T, typename I>
__global__ void __launch_bounds__(kBlock) bgrad_nchw_kernel(Prob s, const T* __restrict__ dy, T* __restrict__ db) {
  __shared__ double red[kBlock];
  const I o = I(blockIdx.x), OC = I(s.OC), P = I(s.OH) * I(s.OW);
  const I total = I(s.N) * P;
  double acc = 0;
  for (I e = I(threadIdx.x); e < total; e += I(blockDim.x)) {
    const I n = e / P, pos = e - n * P;
    acc += double(to_acc(dy[(n * OC + o) * P + pos]));
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) red[threadIdx.x] += red[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[o] = from_acc<T>(red[0]);
}

constexpr int kLanes = 32, kWarps = kBlock / kLanes;

template <typename T, typename I>
__global__ void __launch_bounds__(kBlock) bgrad_nhwc_kernel(Prob s, const T* __restrict__ dy, T* __restrict__ db) {
  __shared__ double red[kWarps][kLanes];
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const I OC = I(s.OC);
  const I o = I(blockIdx.x) * kLanes + lane;
  const I total = I(s.N) * I(s.OH) * I(s.OW);
  double acc = 0;
  if (o < OC)
    for (I pos = warp; pos < total; pos += kWarps) acc += double(to_acc(dy[pos * OC + o]));
  red[warp][lane] = acc;
  __syncthreads();
  if (warp == 0 && o < OC) {
    double sum = 0;
    for (int w = 0; w < kWarps; ++w) sum += red[w][lane];
    db[o] = from_acc<T>(sum);
  }
}

void run_nchw(const Params& p) {
  const Prob s = make_prob(p);
  const unsigned blocks = grid_exact(s.OC, p, "bgrad_nchw_kernel");
  dispatch_dtype(p.dtype, [&](auto tt) {
    using T = typename decltype(tt)::type;
    dispatch_index(needs_i64(p), [&](auto it) {
      using I = typename decltype(it)::type;
      launch_kernel(bgrad_nchw_kernel<T, I>, blocks, kBlock, 0, stream_of(p), s, static_cast<const T*>(p.grad_output),
                    static_cast<T*>(p.grad_bias));
      DWCONV_CUDA_LAUNCHED("bgrad_nchw_kernel", p);
    });
  });
}

void run_nhwc(const Params& p) {
  const Prob s = make_prob(p);
  const unsigned blocks = grid_exact((s.OC + kLanes - 1) / kLanes, p, "bgrad_nhwc_kernel");
  dispatch_dtype(p.dtype, [&](auto tt) {
    using T = typename decltype(tt)::type;
    dispatch_index(needs_i64(p), [&](auto it) {
      using I = typename decltype(it)::type;
      launch_kernel(bgrad_nhwc_kernel<T, I>, blocks, kBlock, 0, stream_of(p), s, static_cast<const T*>(p.grad_output),
                    static_cast<T*>(p.grad_bias));
      DWCONV_CUDA_LAUNCHED("bgrad_nhwc_kernel", p);
    });
  });
}

int accept_nchw(const Params& p) { return p.layout == Layout::nchw ? 0 : -1; }
int accept_nhwc(const Params& p) { return p.layout == Layout::nhwc ? 0 : -1; }

}  // namespace

std::vector<Kernel> bgrad_kernels() {
  return {
      {"cuda_bgrad_nchw_generic", Device::cuda, Direction::grad_bias, accept_nchw, run_nchw, nullptr},
      {"cuda_bgrad_nhwc_generic", Device::cuda, Direction::grad_bias, accept_nhwc, run_nhwc, nullptr},
  };
}

}  // namespace dwconv::cuda
