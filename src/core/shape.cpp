#include <sstream>

#include "dwconv/dwconv.h"

namespace dwconv {

std::string Shape::str() const {
  std::ostringstream s;
  s << "N" << n << " C" << c << "x" << multiplier << " " << h << "x" << w << " k" << kh << "x" << kw
    << " s" << stride_h << "x" << stride_w << " d" << dil_h << "x" << dil_w << " p" << pad_top << ","
    << pad_bottom << "," << pad_left << "," << pad_right;
  return s.str();
}

Padding2d same_padding(int64_t kh, int64_t kw, int64_t dil_h, int64_t dil_w) {
  const int64_t th = dil_h * (kh - 1), tw = dil_w * (kw - 1);
  return {th / 2, th - th / 2, tw / 2, tw - tw / 2};
}

Shape conv2d_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                   int64_t stride, int64_t pad, int64_t dilation, int64_t multiplier) {
  Shape s;
  s.n = n, s.c = c, s.h = h, s.w = w, s.multiplier = multiplier, s.kh = kh, s.kw = kw;
  s.stride_h = s.stride_w = stride;
  s.dil_h = s.dil_w = dilation;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = pad;
  return s;
}

Shape conv1d_shape(int64_t n, int64_t c, int64_t l, int64_t k, int64_t stride, int64_t pad,
                   int64_t dilation, int64_t multiplier, bool causal) {
  Shape s;
  s.n = n, s.c = c, s.h = 1, s.w = l, s.multiplier = multiplier, s.kh = 1, s.kw = k;
  s.stride_w = stride;
  s.dil_w = dilation;
  if (causal) {
    s.pad_left = (k - 1) * dilation;
  } else {
    s.pad_left = s.pad_right = pad;
  }
  return s;
}

const char* to_string(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
  }
  return "?";
}
const char* to_string(Layout l) { return l == Layout::nchw ? "nchw" : l == Layout::nhwc ? "nhwc" : "?"; }
const char* to_string(Direction d) {
  switch (d) {
    case Direction::forward: return "forward";
    case Direction::grad_input: return "grad_input";
    case Direction::grad_weight: return "grad_weight";
    case Direction::grad_bias: return "grad_bias";
  }
  return "?";
}
const char* to_string(Device d) { return d == Device::cpu ? "cpu" : d == Device::cuda ? "cuda" : "?"; }

size_t dtype_size(DType d) {
  switch (d) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::f16:
    case DType::bf16: return 2;
  }
  return 0;
}

}  // namespace dwconv
