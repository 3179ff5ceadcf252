// NHWC forward, vectorised along channels: cuda_fwd_nhwc_vec.
//
// One thread per (n, oy, ox, group of V channels), V chosen per call
// (nhwc_vec_width): 16 bytes of storage (4 f32, 8 f16/bf16) when C and the
// pointers allow, else 8, 4 or 2 bytes, else 1 element. Every input read and
// output write is one access of V elements and a warp covers 32 consecutive
// groups, so the accesses are coalesced. The filter is read from an fp32 [kh*kw][C] copy made in the
// workspace (cuda::transpose_weight), contiguous per tap.
//
// Accepts: f32/f16/bf16, multiplier 1; any C, kernel size, stride,
// dilation, padding, 1D ([N, L, C]). Multiplier > 1: score -1 and
// cuda_fwd_nhwc_generic runs.
#include "cuda/launch.cuh"

namespace dwconv::cuda {
namespace {

template <typename T, int V, typename I>
__global__ void fwd_nhwc_vec_kernel(Prob s, const T* __restrict__ x, const float* __restrict__ wt,
                                    const T* __restrict__ b, T* __restrict__ y) {
  const I C = I(s.C), H = I(s.H), W = I(s.W), OH = I(s.OH), OW = I(s.OW);
  const I KH = I(s.KH), KW = I(s.KW), SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW);
  const I PT = I(s.PT), PL = I(s.PL);
  const I G = C / V;  // channel groups
  const I total = I(s.N) * OH * OW * G;
  for (I e = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); e < total; e += I(gridDim.x) * I(blockDim.x)) {
    const I g = e % G;
    I t = e / G;
    const I ox = t % OW;
    t /= OW;
    const I oy = t % OH;
    const I n = t / OH;
    const I c0 = g * V;
    float acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = b != nullptr ? to_acc(b[c0 + v]) : 0.f;
    for (I i = 0; i < KH; ++i) {
      const I iy = oy * SH - PT + i * DH;
      if (iy < 0 || iy >= H) continue;
      const T* xrow = x + (n * H + iy) * W * C + c0;
      const float* wrow = wt + i * KW * C + c0;
      for (I j = 0; j < KW; ++j) {
        const I ix = ox * SW - PL + j * DW;
        if (ix < 0 || ix >= W) continue;
        float xv[V];
        load_vec<V>(xrow + ix * C, xv);
        const float* wp = wrow + j * C;
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = fmaf(wp[v], xv[v], acc[v]);
      }
    }
    store_vec<V>(y + e * V, acc);  // e * V == ((n*OH + oy)*OW + ox)*C + c0
  }
}

int score(const Params& p) {
  const Shape& s = p.shape;
  if (p.layout != Layout::nhwc || !fast_dtype(p) || s.multiplier != 1) return -1;
  return 20;
}

size_t workspace(const Params& p) { return transposed_weight_bytes(p); }

void run(const Params& p) {
  if (score(p) < 0) throw Error("dwconv: cuda_fwd_nhwc_vec does not accept " + p.shape.str());
  const Prob s = make_prob(p);
  const int vec = nhwc_vec_width(p, {p.input, p.output});
  Scratch scratch(p, workspace(p));
  float* wt = static_cast<float*>(scratch.get());
  dispatch_fast_dtype(p, [&](auto tt) {
    using T = typename decltype(tt)::type;
    transpose_weight<T>(p, wt);
    dispatch_vec(vec, [&](auto vv) {
      constexpr int V = decltype(vv)::value;
      if constexpr (V * sizeof(T) <= 16) {
        const int64_t work = p.shape.output_elems() / V;
        dispatch_index(needs_i64(p), [&](auto it) {
          using I = typename decltype(it)::type;
          launch_kernel(fwd_nhwc_vec_kernel<T, V, I>, grid_for(work), kBlock, 0, stream_of(p), s,
                        static_cast<const T*>(p.input), wt, static_cast<const T*>(p.bias), static_cast<T*>(p.output));
          DWCONV_CUDA_LAUNCHED("fwd_nhwc_vec_kernel", p);
        });
      } else {
        throw BackendError("dwconv: internal error: NHWC vector width " + std::to_string(V) + " for this dtype");
      }
    });
  });
  scratch.release();
}

}  // namespace

std::vector<Kernel> fwd_nhwc_kernels() {
  return {
      {"cuda_fwd_nhwc_vec", Device::cuda, Direction::forward, score, run, workspace},
  };
}

}  // namespace dwconv::cuda
