// Generic CPU kernels: correct for every parameter combination, every dtype
// and both layouts. Multithreaded with OpenMP; inner loops run over a
// contiguous dimension (W in NCHW, C in NHWC) with bounds hoisted out, so the
// compiler vectorizes them. The SIMD kernels (src/cpu/simd_*.cpp) outrank
// these where they apply; these remain the fallback.
//
// Accumulation: fp32 (fp64 for f64 storage). Long reductions (grad-weight,
// grad-bias over N*OH*OW) add fp32 row sums into fp64 totals so that the
// result does not drift with the size of the image.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/common.h"
#include "cpu/generic.h"
#include "cpu/parallel.h"

namespace dwconv::cpu {
namespace {

int thread_count(const Params& p) { return p.threads > 0 ? p.threads : omp_get_max_threads(); }

// Weight transposed to [kh][kw][OC] in the accumulation type, for NHWC
// kernels whose inner loop runs over channels.
template <typename T, typename A>
std::vector<A> weight_hwo(const Params& p) {
  const Shape& s = p.shape;
  const int64_t OC = s.out_c(), KK = s.kh * s.kw;
  const T* w = static_cast<const T*>(p.weight);
  std::vector<A> t(size_t(OC * KK));
  for (int64_t o = 0; o < OC; ++o)
    for (int64_t k = 0; k < KK; ++k) t[size_t(k * OC + o)] = A(load_f64(w, o * KK + k));
  return t;
}

// ---------------------------------------------------------------- forward
template <typename T>
void forward_nchw(const Params& p) {
  using A = acc_t<T>;
  const Shape& s = p.shape;
  const int64_t H = s.h, W = s.w, M = s.multiplier, OC = s.out_c(), OH = s.out_h(), OW = s.out_w();
  const T* x = static_cast<const T*>(p.input);
  const T* w = static_cast<const T*>(p.weight);
  const T* b = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.output);
  parallel_region(thread_count(p), [&] {
    std::vector<A> row(static_cast<size_t>(OW));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t o = 0; o < OC; ++o) {
        const T* xc = x + (n * s.c + o / M) * H * W;
        T* yc = y + (n * OC + o) * OH * OW;
        const A bias = b ? A(load_f64(b, o)) : A(0);
        for (int64_t oy = 0; oy < OH; ++oy) {
          std::fill(row.begin(), row.end(), bias);
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t iy = oy * s.stride_h - s.pad_top + i * s.dil_h;
            if (iy < 0 || iy >= H) continue;
            const T* xr = xc + iy * W;
            for (int64_t j = 0; j < s.kw; ++j) {
              const A wv = A(load_f64(w, (o * s.kh + i) * s.kw + j));
              const TapRange r = valid_outputs(OW, W, s.stride_w, s.pad_left, s.dil_w, j);
              const int64_t x0 = -s.pad_left + j * s.dil_w;
              for (int64_t ox = r.lo; ox < r.hi; ++ox) row[size_t(ox)] += wv * A(load_f64(xr, ox * s.stride_w + x0));
            }
          }
          for (int64_t ox = 0; ox < OW; ++ox) store(yc, oy * OW + ox, row[size_t(ox)]);
        }
      }
  });
}

template <typename T>
void forward_nhwc(const Params& p) {
  using A = acc_t<T>;
  const Shape& s = p.shape;
  const int64_t C = s.c, H = s.h, W = s.w, M = s.multiplier, OC = s.out_c(), OH = s.out_h(), OW = s.out_w();
  const T* x = static_cast<const T*>(p.input);
  const T* b = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.output);
  const std::vector<A> wt = weight_hwo<T, A>(p);
  parallel_region(thread_count(p), [&] {
    std::vector<A> acc(static_cast<size_t>(OC));
#pragma omp for collapse(3) schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          for (int64_t o = 0; o < OC; ++o) acc[size_t(o)] = b ? A(load_f64(b, o)) : A(0);
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t iy = oy * s.stride_h - s.pad_top + i * s.dil_h;
            if (iy < 0 || iy >= H) continue;
            for (int64_t j = 0; j < s.kw; ++j) {
              const int64_t ix = ox * s.stride_w - s.pad_left + j * s.dil_w;
              if (ix < 0 || ix >= W) continue;
              const T* xp = x + ((n * H + iy) * W + ix) * C;
              const A* wp = wt.data() + (i * s.kw + j) * OC;
              for (int64_t o = 0; o < OC; ++o) acc[size_t(o)] += wp[o] * A(load_f64(xp, o / M));
            }
          }
          T* yp = y + ((n * OH + oy) * OW + ox) * OC;
          for (int64_t o = 0; o < OC; ++o) store(yp, o, acc[size_t(o)]);
        }
  });
}

// ------------------------------------------------------------- grad-input
// Gather form: each grad_input element is written by exactly one thread, so
// no atomics and no reduction order that depends on scheduling.
template <typename T>
void grad_input_nchw(const Params& p) {
  using A = acc_t<T>;
  const Shape& s = p.shape;
  const int64_t H = s.h, W = s.w, M = s.multiplier, OC = s.out_c(), OH = s.out_h(), OW = s.out_w();
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* w = static_cast<const T*>(p.weight);
  T* dx = static_cast<T*>(p.grad_input);
  parallel_region(thread_count(p), [&] {
    std::vector<A> row(static_cast<size_t>(W));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t c = 0; c < s.c; ++c) {
        T* dxc = dx + (n * s.c + c) * H * W;
        for (int64_t iy = 0; iy < H; ++iy) {
          std::fill(row.begin(), row.end(), A(0));
          for (int64_t r = 0; r < M; ++r) {
            const int64_t o = c * M + r;
            const T* dyc = dy + (n * OC + o) * OH * OW;
            for (int64_t i = 0; i < s.kh; ++i) {
              const int64_t t = iy + s.pad_top - i * s.dil_h;  // = oy * stride_h
              if (t < 0 || t % s.stride_h != 0 || t / s.stride_h >= OH) continue;
              const T* dyr = dyc + (t / s.stride_h) * OW;
              for (int64_t j = 0; j < s.kw; ++j) {
                const A wv = A(load_f64(w, (o * s.kh + i) * s.kw + j));
                const TapRange rr = valid_outputs(OW, W, s.stride_w, s.pad_left, s.dil_w, j);
                const int64_t x0 = -s.pad_left + j * s.dil_w;
                for (int64_t ox = rr.lo; ox < rr.hi; ++ox) row[size_t(ox * s.stride_w + x0)] += wv * A(load_f64(dyr, ox));
              }
            }
          }
          for (int64_t ix = 0; ix < W; ++ix) store(dxc, iy * W + ix, row[size_t(ix)]);
        }
      }
  });
}

template <typename T>
void grad_input_nhwc(const Params& p) {
  using A = acc_t<T>;
  const Shape& s = p.shape;
  const int64_t C = s.c, H = s.h, W = s.w, M = s.multiplier, OC = s.out_c(), OH = s.out_h(), OW = s.out_w();
  const T* dy = static_cast<const T*>(p.grad_output);
  T* dx = static_cast<T*>(p.grad_input);
  const std::vector<A> wt = weight_hwo<T, A>(p);
  parallel_region(thread_count(p), [&] {
    std::vector<A> acc(static_cast<size_t>(W * C));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t iy = 0; iy < H; ++iy) {
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t i = 0; i < s.kh; ++i) {
          const int64_t t = iy + s.pad_top - i * s.dil_h;
          if (t < 0 || t % s.stride_h != 0 || t / s.stride_h >= OH) continue;
          const int64_t oy = t / s.stride_h;
          for (int64_t j = 0; j < s.kw; ++j) {
            const TapRange rr = valid_outputs(OW, W, s.stride_w, s.pad_left, s.dil_w, j);
            const A* wp = wt.data() + (i * s.kw + j) * OC;
            for (int64_t ox = rr.lo; ox < rr.hi; ++ox) {
              const int64_t ix = ox * s.stride_w - s.pad_left + j * s.dil_w;
              const T* dyp = dy + ((n * OH + oy) * OW + ox) * OC;
              A* ap = acc.data() + ix * C;
              if (M == 1) {
                for (int64_t c = 0; c < C; ++c) ap[c] += wp[c] * A(load_f64(dyp, c));
              } else {
                for (int64_t o = 0; o < OC; ++o) ap[o / M] += wp[o] * A(load_f64(dyp, o));
              }
            }
          }
        }
        T* dxr = dx + (n * H + iy) * W * C;
        for (int64_t e = 0; e < W * C; ++e) store(dxr, e, acc[size_t(e)]);
      }
  });
}

// ------------------------------------------------------------ grad-weight
// Each output channel is reduced by one thread in a fixed order: the result
// is bitwise reproducible for any thread count.
template <typename T>
void grad_weight_nchw(const Params& p) {
  using A = acc_t<T>;
  const Shape& s = p.shape;
  const int64_t H = s.h, W = s.w, M = s.multiplier, OC = s.out_c(), OH = s.out_h(), OW = s.out_w();
  const int64_t KK = s.kh * s.kw;
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* x = static_cast<const T*>(p.input);
  T* dw = static_cast<T*>(p.grad_weight);
  parallel_region(thread_count(p), [&] {
    std::vector<double> total(static_cast<size_t>(KK));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < OC; ++o) {
      std::fill(total.begin(), total.end(), 0.0);
      for (int64_t n = 0; n < s.n; ++n) {
        const T* xc = x + (n * s.c + o / M) * H * W;
        const T* dyc = dy + (n * OC + o) * OH * OW;
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t iy = oy * s.stride_h - s.pad_top + i * s.dil_h;
            if (iy < 0 || iy >= H) continue;
            const T* xr = xc + iy * W;
            const T* dyr = dyc + oy * OW;
            for (int64_t j = 0; j < s.kw; ++j) {
              const TapRange r = valid_outputs(OW, W, s.stride_w, s.pad_left, s.dil_w, j);
              const int64_t x0 = -s.pad_left + j * s.dil_w;
              A sum = 0;
              for (int64_t ox = r.lo; ox < r.hi; ++ox) sum += A(load_f64(dyr, ox)) * A(load_f64(xr, ox * s.stride_w + x0));
              total[size_t(i * s.kw + j)] += double(sum);
            }
          }
      }
      for (int64_t k = 0; k < KK; ++k) store(dw, o * KK + k, total[size_t(k)]);
    }
  });
}

template <typename T>
void grad_weight_nhwc(const Params& p) {
  using A = acc_t<T>;
  const Shape& s = p.shape;
  const int64_t C = s.c, H = s.h, W = s.w, M = s.multiplier, OC = s.out_c(), OH = s.out_h(), OW = s.out_w();
  const int64_t KK = s.kh * s.kw;
  constexpr int64_t kBlock = 64;  // output channels per task
  const int64_t blocks = (OC + kBlock - 1) / kBlock;
  const T* dy = static_cast<const T*>(p.grad_output);
  const T* x = static_cast<const T*>(p.input);
  T* dw = static_cast<T*>(p.grad_weight);
  parallel_region(thread_count(p), [&] {
    std::vector<double> total(static_cast<size_t>(KK * kBlock));
    std::vector<A> row(static_cast<size_t>(KK * kBlock));
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t o0 = blk * kBlock, nb = std::min(kBlock, OC - o0);
      std::fill(total.begin(), total.end(), 0.0);
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t oy = 0; oy < OH; ++oy) {
          std::fill(row.begin(), row.end(), A(0));
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t iy = oy * s.stride_h - s.pad_top + i * s.dil_h;
            if (iy < 0 || iy >= H) continue;
            for (int64_t j = 0; j < s.kw; ++j) {
              const TapRange r = valid_outputs(OW, W, s.stride_w, s.pad_left, s.dil_w, j);
              A* rp = row.data() + (i * s.kw + j) * kBlock;
              for (int64_t ox = r.lo; ox < r.hi; ++ox) {
                const int64_t ix = ox * s.stride_w - s.pad_left + j * s.dil_w;
                const T* dyp = dy + ((n * OH + oy) * OW + ox) * OC + o0;
                const T* xp = x + ((n * H + iy) * W + ix) * C;
                for (int64_t b = 0; b < nb; ++b) rp[b] += A(load_f64(dyp, b)) * A(load_f64(xp, (o0 + b) / M));
              }
            }
          }
          for (size_t e = 0; e < row.size(); ++e) total[e] += double(row[e]);
        }
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t k = 0; k < KK; ++k) store(dw, (o0 + b) * KK + k, total[size_t(k * kBlock + b)]);
    }
  });
}

// -------------------------------------------------------------- grad-bias
template <typename T>
void grad_bias_any(const Params& p) {
  using A = acc_t<T>;
  const Shape& s = p.shape;
  const int64_t OC = s.out_c(), P = s.out_h() * s.out_w();
  const T* dy = static_cast<const T*>(p.grad_output);
  T* db = static_cast<T*>(p.grad_bias);
  if (p.layout == Layout::nchw) {
    parallel_region(thread_count(p), [&] {
#pragma omp for schedule(static)
      for (int64_t o = 0; o < OC; ++o) {
        double total = 0;
        for (int64_t n = 0; n < s.n; ++n) {
          const T* d = dy + (n * OC + o) * P;
          A sum = 0;
          for (int64_t e = 0; e < P; ++e) sum += A(load_f64(d, e));
          total += double(sum);
        }
        store(db, o, total);
      }
    });
  } else {
    constexpr int64_t kBlock = 256;
    const int64_t blocks = (OC + kBlock - 1) / kBlock;
    parallel_region(thread_count(p), [&] {
      std::vector<double> total(static_cast<size_t>(kBlock));
      std::vector<A> row(static_cast<size_t>(kBlock));
#pragma omp for schedule(static)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t o0 = blk * kBlock, nb = std::min(kBlock, OC - o0);
        std::fill(total.begin(), total.end(), 0.0);
        for (int64_t n = 0; n < s.n; ++n)
          for (int64_t oy = 0; oy < s.out_h(); ++oy) {
            std::fill(row.begin(), row.end(), A(0));
            for (int64_t ox = 0; ox < s.out_w(); ++ox) {
              const T* d = dy + ((n * s.out_h() + oy) * s.out_w() + ox) * OC + o0;
              for (int64_t b = 0; b < nb; ++b) row[size_t(b)] += A(load_f64(d, b));
            }
            for (int64_t b = 0; b < nb; ++b) total[size_t(b)] += double(row[size_t(b)]);
          }
        for (int64_t b = 0; b < nb; ++b) store(db, o0 + b, total[size_t(b)]);
      }
    });
  }
}

template <template <typename> class Fn>
void by_dtype(const Params& p) {
  dispatch_dtype(p.dtype, [&](auto tag) { Fn<typename decltype(tag)::type>::run(p); });
}

#define DWCONV_WRAP(fn)                              \
  template <typename T>                              \
  struct fn##_op {                                   \
    static void run(const Params& p) { fn<T>(p); }   \
  };
DWCONV_WRAP(forward_nchw)
DWCONV_WRAP(forward_nhwc)
DWCONV_WRAP(grad_input_nchw)
DWCONV_WRAP(grad_input_nhwc)
DWCONV_WRAP(grad_weight_nchw)
DWCONV_WRAP(grad_weight_nhwc)
DWCONV_WRAP(grad_bias_any)
#undef DWCONV_WRAP

int accept_nchw(const Params& p) { return p.layout == Layout::nchw ? 0 : -1; }
int accept_nhwc(const Params& p) { return p.layout == Layout::nhwc ? 0 : -1; }
int accept_any(const Params&) { return 0; }

}  // namespace

std::vector<Kernel> generic_kernels() {
  return {
      {"cpu_fwd_nchw_generic", Device::cpu, Direction::forward, accept_nchw, by_dtype<forward_nchw_op>, nullptr},
      {"cpu_fwd_nhwc_generic", Device::cpu, Direction::forward, accept_nhwc, by_dtype<forward_nhwc_op>, nullptr},
      {"cpu_dgrad_nchw_generic", Device::cpu, Direction::grad_input, accept_nchw, by_dtype<grad_input_nchw_op>, nullptr},
      {"cpu_dgrad_nhwc_generic", Device::cpu, Direction::grad_input, accept_nhwc, by_dtype<grad_input_nhwc_op>, nullptr},
      {"cpu_wgrad_nchw_generic", Device::cpu, Direction::grad_weight, accept_nchw, by_dtype<grad_weight_nchw_op>, nullptr},
      {"cpu_wgrad_nhwc_generic", Device::cpu, Direction::grad_weight, accept_nhwc, by_dtype<grad_weight_nhwc_op>, nullptr},
      {"cpu_bgrad_generic", Device::cpu, Direction::grad_bias, accept_any, by_dtype<grad_bias_any_op>, nullptr},
  };
}

}  // namespace dwconv::cpu
