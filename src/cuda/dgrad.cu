// Grad-input gather kernels (the NCHW stride-1 tile lives in fwd_nchw.cu).
//
//   dx[n, c, iy, ix] = sum over r < M, taps (i, j) with
//                      oy = (iy + PT - i*DH) / SH and ox = (ix + PL - j*DW) / SW
//                      integers inside the output, of w[c*M + r, i, j] * dy[n, c*M + r, oy, ox]
//
// Only the taps i = i0, i0 + step, ... can divide evenly, where
// step = SH / gcd(SH, DH) and i0 < step is the first that does; the kernels
// visit only those, which is what makes them cheaper than the generic one at
// stride > 1. As i grows iy + PT - i*DH falls, so the loop stops at the first
// negative value.
//
//   cuda_dgrad_nchw_gather: one thread per input element, f32/f16/bf16, any
//     stride, dilation, padding, multiplier, kernel size.
//   cuda_dgrad_nhwc_vec: one thread per (n, iy, ix, V channels), accesses
//     of V elements (16 bytes when C and alignment allow, see
//     nhwc_vec_width), fp32 [kh*kw][C] filter copy in the workspace;
//     f32/f16/bf16, multiplier 1, any C.
#include <numeric>

#include "cuda/launch.cuh"

namespace dwconv::cuda {
namespace {

struct TapSteps {
  int64_t step_h, step_w;
};
TapSteps tap_steps(const Shape& s) {
  return {s.stride_h / std::gcd(s.stride_h, s.dil_h), s.stride_w / std::gcd(s.stride_w, s.dil_w)};
}

// First tap index i in [0, min(step, K)) with (t0 - i*D) divisible by S, or K if none.
template <typename I>
__device__ __forceinline__ I first_tap(I t0, I D, I S, I step, I K) {
  const I lim = step < K ? step : K;
  for (I i = 0; i < lim; ++i) {
    I m = (t0 - i * D) % S;
    if (m < 0) m += S;
    if (m == 0) return i;
  }
  return K;
}

template <typename T, typename I>
__global__ void dgrad_nchw_gather_kernel(Prob s, I step_h, I step_w, const T* __restrict__ dy, const T* __restrict__ w,
                                         T* __restrict__ dx) {
  const I C = I(s.C), H = I(s.H), W = I(s.W), M = I(s.M), OC = I(s.OC), OH = I(s.OH), OW = I(s.OW);
  const I KH = I(s.KH), KW = I(s.KW), SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW);
  const I PT = I(s.PT), PL = I(s.PL);
  const I total = I(s.N) * C * H * W;
  for (I e = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); e < total; e += I(gridDim.x) * I(blockDim.x)) {
    const I ix = e % W;
    I t = e / W;
    const I iy = t % H;
    t /= H;
    const I c = t % C;
    const I n = t / C;
    const I i0 = first_tap(iy + PT, DH, SH, step_h, KH);
    const I j0 = first_tap(ix + PL, DW, SW, step_w, KW);
    float acc = 0.f;
    for (I r = 0; r < M; ++r) {
      const I o = c * M + r;
      const T* dyp = dy + (n * OC + o) * OH * OW;
      const T* wp = w + o * KH * KW;
      for (I i = i0; i < KH; i += step_h) {
        const I ty = iy + PT - i * DH;
        if (ty < 0) break;
        const I oy = ty / SH;
        if (oy >= OH) continue;
        for (I j = j0; j < KW; j += step_w) {
          const I tx = ix + PL - j * DW;
          if (tx < 0) break;
          const I ox = tx / SW;
          if (ox >= OW) continue;
          acc = fmaf(to_acc(wp[i * KW + j]), to_acc(dyp[oy * OW + ox]), acc);
        }
      }
    }
    dx[e] = from_acc<T>(acc);
  }
}

template <typename T, int V, typename I>
__global__ void dgrad_nhwc_vec_kernel(Prob s, I step_h, I step_w, const T* __restrict__ dy,
                                      const float* __restrict__ wt, T* __restrict__ dx) {
  const I C = I(s.C), H = I(s.H), W = I(s.W), OH = I(s.OH), OW = I(s.OW);
  const I KH = I(s.KH), KW = I(s.KW), SH = I(s.SH), SW = I(s.SW), DH = I(s.DH), DW = I(s.DW);
  const I PT = I(s.PT), PL = I(s.PL);
  const I G = C / V;
  const I total = I(s.N) * H * W * G;
  for (I e = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); e < total; e += I(gridDim.x) * I(blockDim.x)) {
    const I g = e % G;
    I t = e / G;
    const I ix = t % W;
    t /= W;
    const I iy = t % H;
    const I n = t / H;
    const I c0 = g * V;
    const I i0 = first_tap(iy + PT, DH, SH, step_h, KH);
    const I j0 = first_tap(ix + PL, DW, SW, step_w, KW);
    float acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = 0.f;
    for (I i = i0; i < KH; i += step_h) {
      const I ty = iy + PT - i * DH;
      if (ty < 0) break;
      const I oy = ty / SH;
      if (oy >= OH) continue;
      const T* dyrow = dy + (n * OH + oy) * OW * C + c0;  // multiplier 1: OC == C
      const float* wrow = wt + i * KW * C + c0;
      for (I j = j0; j < KW; j += step_w) {
        const I tx = ix + PL - j * DW;
        if (tx < 0) break;
        const I ox = tx / SW;
        if (ox >= OW) continue;
        float g_[V];
        load_vec<V>(dyrow + ox * C, g_);
        const float* wp = wrow + j * C;
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = fmaf(wp[v], g_[v], acc[v]);
      }
    }
    store_vec<V>(dx + e * V, acc);  // e * V == ((n*H + iy)*W + ix)*C + c0
  }
}

int score_nchw(const Params& p) {
  if (p.layout != Layout::nchw || !fast_dtype(p)) return -1;
  return 5;  // below the stride-1 tile (fwd_nchw.cu), above generic
}

void run_nchw(const Params& p) {
  if (score_nchw(p) < 0) throw Error("dwconv: cuda_dgrad_nchw_gather does not accept " + p.shape.str());
  const Prob s = make_prob(p);
  const TapSteps st = tap_steps(p.shape);
  dispatch_fast_dtype(p, [&](auto tt) {
    using T = typename decltype(tt)::type;
    dispatch_index(needs_i64(p), [&](auto it) {
      using I = typename decltype(it)::type;
      launch_kernel(dgrad_nchw_gather_kernel<T, I>, grid_for(p.shape.input_elems()), kBlock, 0, stream_of(p), s,
                    I(st.step_h), I(st.step_w), static_cast<const T*>(p.grad_output), static_cast<const T*>(p.weight),
                    static_cast<T*>(p.grad_input));
      DWCONV_CUDA_LAUNCHED("dgrad_nchw_gather_kernel", p);
    });
  });
}

int score_nhwc(const Params& p) {
  const Shape& s = p.shape;
  if (p.layout != Layout::nhwc || !fast_dtype(p) || s.multiplier != 1) return -1;
  return 20;
}

size_t workspace_nhwc(const Params& p) { return transposed_weight_bytes(p); }

void run_nhwc(const Params& p) {
  if (score_nhwc(p) < 0) throw Error("dwconv: cuda_dgrad_nhwc_vec does not accept " + p.shape.str());
  const Prob s = make_prob(p);
  const TapSteps st = tap_steps(p.shape);
  const int vec = nhwc_vec_width(p, {p.grad_output, p.grad_input});
  Scratch scratch(p, workspace_nhwc(p));
  float* wt = static_cast<float*>(scratch.get());
  dispatch_fast_dtype(p, [&](auto tt) {
    using T = typename decltype(tt)::type;
    transpose_weight<T>(p, wt);
    dispatch_vec(vec, [&](auto vv) {
      constexpr int V = decltype(vv)::value;
      if constexpr (V * sizeof(T) <= 16) {
        const int64_t work = p.shape.input_elems() / V;
        dispatch_index(needs_i64(p), [&](auto it) {
          using I = typename decltype(it)::type;
          launch_kernel(dgrad_nhwc_vec_kernel<T, V, I>, grid_for(work), kBlock, 0, stream_of(p), s, I(st.step_h),
                        I(st.step_w), static_cast<const T*>(p.grad_output), wt, static_cast<T*>(p.grad_input));
          DWCONV_CUDA_LAUNCHED("dgrad_nhwc_vec_kernel", p);
        });
      } else {
        throw BackendError("dwconv: internal error: NHWC vector width " + std::to_string(V) + " for this dtype");
      }
    });
  });
  scratch.release();
}

}  // namespace

std::vector<Kernel> dgrad_kernels() {
  return {
      {"cuda_dgrad_nchw_gather", Device::cuda, Direction::grad_input, score_nchw, run_nchw, nullptr},
      {"cuda_dgrad_nhwc_vec", Device::cuda, Direction::grad_input, score_nhwc, run_nhwc, workspace_nhwc},
  };
}

}  // namespace dwconv::cuda
