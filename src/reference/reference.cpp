// The fp64 oracle. Plain loops over the definition of the operation, every
// sum in double, no cleverness: every backend is tested against this.
//
//   y[n, o, oy, ox] = b[o] + sum_{i,j} w[o, i, j] * x[n, o / m, oy*sh - pt + i*dh, ox*sw - pl + j*dw]
//
// with x read as zero outside the image.
#include <vector>

#include "core/common.h"

namespace dwconv::reference {
namespace {

template <typename T>
void run_typed(Direction dir, const Params& p) {
  const Shape& s = p.shape;
  const int64_t N = s.n, C = s.c, H = s.h, W = s.w, M = s.multiplier, OC = s.out_c();
  const int64_t OH = s.out_h(), OW = s.out_w(), KH = s.kh, KW = s.kw;
  const Layout L = p.layout;
  const T* x = static_cast<const T*>(p.input);
  const T* wt = static_cast<const T*>(p.weight);
  const T* b = static_cast<const T*>(p.bias);
  const T* dy = static_cast<const T*>(p.grad_output);

  // Calls f(n, o, oy, ox, i, j, input_offset) for every tap that lands inside the image.
  auto for_each_tap = [&](auto&& f) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < OC; ++o)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox)
            for (int64_t i = 0; i < KH; ++i) {
              const int64_t iy = oy * s.stride_h - s.pad_top + i * s.dil_h;
              if (iy < 0 || iy >= H) continue;
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t ix = ox * s.stride_w - s.pad_left + j * s.dil_w;
                if (ix < 0 || ix >= W) continue;
                f(n, o, oy, ox, i, j, act_offset(L, C, H, W, n, o / M, iy, ix));
              }
            }
  };
  auto out_offset = [&](int64_t n, int64_t o, int64_t oy, int64_t ox) { return act_offset(L, OC, OH, OW, n, o, oy, ox); };

  switch (dir) {
    case Direction::forward: {
      std::vector<double> acc(size_t(s.output_elems()), 0.0);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < OC; ++o)
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox) acc[size_t(out_offset(n, o, oy, ox))] = b ? load_f64(b, o) : 0.0;
      for_each_tap([&](int64_t n, int64_t o, int64_t oy, int64_t ox, int64_t i, int64_t j, int64_t xo) {
        acc[size_t(out_offset(n, o, oy, ox))] += load_f64(wt, (o * KH + i) * KW + j) * load_f64(x, xo);
      });
      T* y = static_cast<T*>(p.output);
      for (size_t e = 0; e < acc.size(); ++e) store(y, int64_t(e), acc[e]);
      break;
    }
    case Direction::grad_input: {
      std::vector<double> acc(size_t(s.input_elems()), 0.0);
      for_each_tap([&](int64_t n, int64_t o, int64_t oy, int64_t ox, int64_t i, int64_t j, int64_t xo) {
        acc[size_t(xo)] += load_f64(wt, (o * KH + i) * KW + j) * load_f64(dy, out_offset(n, o, oy, ox));
      });
      T* dx = static_cast<T*>(p.grad_input);
      for (size_t e = 0; e < acc.size(); ++e) store(dx, int64_t(e), acc[e]);
      break;
    }
    case Direction::grad_weight: {
      std::vector<double> acc(size_t(s.weight_elems()), 0.0);
      for_each_tap([&](int64_t n, int64_t o, int64_t oy, int64_t ox, int64_t i, int64_t j, int64_t xo) {
        acc[size_t((o * KH + i) * KW + j)] += load_f64(dy, out_offset(n, o, oy, ox)) * load_f64(x, xo);
      });
      T* dw = static_cast<T*>(p.grad_weight);
      for (size_t e = 0; e < acc.size(); ++e) store(dw, int64_t(e), acc[e]);
      break;
    }
    case Direction::grad_bias: {
      std::vector<double> acc(size_t(OC), 0.0);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < OC; ++o)
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox) acc[size_t(o)] += load_f64(dy, out_offset(n, o, oy, ox));
      T* db = static_cast<T*>(p.grad_bias);
      for (size_t e = 0; e < acc.size(); ++e) store(db, int64_t(e), acc[e]);
      break;
    }
  }
}

}  // namespace

void run(Direction dir, const Params& p) {
  validate(dir, p);
  if (p.device != Device::cpu) throw Error("dwconv: the reference runs on cpu pointers only, got device cuda");
  dispatch_dtype(p.dtype, [&](auto tag) { run_typed<typename decltype(tag)::type>(dir, p); });
}

}  // namespace dwconv::reference
