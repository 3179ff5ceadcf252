// Every rule a Params must satisfy before any kernel sees it. Each failure
// names the parameter and its value.
#include <limits>
#include <string>

#include "dwconv/dwconv.h"

namespace dwconv {
namespace {

[[noreturn]] void fail(const std::string& what) { throw Error("dwconv: " + what); }

void require_at_least(const char* name, int64_t value, int64_t min) {
  if (value < min) fail(std::string(name) + " must be >= " + std::to_string(min) + ", got " + std::to_string(value));
}

// a * b, or an error naming `what` if it overflows int64.
int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail(std::string(what) + " overflows 64 bits");
  return r;
}
int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail(std::string(what) + " overflows 64 bits");
  return r;
}

void require_ptr(const void* ptr, const char* name, Direction dir) {
  if (ptr == nullptr) fail(std::string(name) + " must not be null for " + to_string(dir));
}

}  // namespace

void validate(Direction dir, const Params& p) {
  const Shape& s = p.shape;
  switch (dir) {
    case Direction::forward:
    case Direction::grad_input:
    case Direction::grad_weight:
    case Direction::grad_bias: break;
    default: fail("direction must be forward, grad_input, grad_weight or grad_bias, got " + std::to_string(int(dir)));
  }
  switch (p.dtype) {
    case DType::f32:
    case DType::f64:
    case DType::f16:
    case DType::bf16: break;
    default: fail("dtype must be f32, f64, f16 or bf16, got " + std::to_string(int(p.dtype)));
  }
  if (p.layout != Layout::nchw && p.layout != Layout::nhwc)
    fail("layout must be nchw or nhwc, got " + std::to_string(int(p.layout)));
  if (p.device != Device::cpu && p.device != Device::cuda)
    fail("device must be cpu or cuda, got " + std::to_string(int(p.device)));

  require_at_least("n (batch)", s.n, 1);
  require_at_least("c (channels)", s.c, 1);
  require_at_least("h (height)", s.h, 1);
  require_at_least("w (width)", s.w, 1);
  require_at_least("multiplier", s.multiplier, 1);
  require_at_least("kh (kernel height)", s.kh, 1);
  require_at_least("kw (kernel width)", s.kw, 1);
  require_at_least("stride_h", s.stride_h, 1);
  require_at_least("stride_w", s.stride_w, 1);
  require_at_least("dil_h (dilation)", s.dil_h, 1);
  require_at_least("dil_w (dilation)", s.dil_w, 1);
  require_at_least("pad_top", s.pad_top, 0);
  require_at_least("pad_bottom", s.pad_bottom, 0);
  require_at_least("pad_left", s.pad_left, 0);
  require_at_least("pad_right", s.pad_right, 0);
  require_at_least("threads", p.threads, 0);

  // Sizes whose products could overflow before out_h()/out_w() are computed.
  const int64_t ext_h = checked_add(checked_mul(s.dil_h, s.kh - 1, "dil_h * (kh - 1)"), 1, "kernel extent");
  const int64_t ext_w = checked_add(checked_mul(s.dil_w, s.kw - 1, "dil_w * (kw - 1)"), 1, "kernel extent");
  const int64_t padded_h = checked_add(checked_add(s.h, s.pad_top, "h + pad_top"), s.pad_bottom, "h + pad_top + pad_bottom");
  const int64_t padded_w = checked_add(checked_add(s.w, s.pad_left, "w + pad_left"), s.pad_right, "w + pad_left + pad_right");
  if (ext_h > padded_h)
    fail("kernel height with dilation (" + std::to_string(ext_h) + ") exceeds padded input height (" +
         std::to_string(padded_h) + "): output height would be " + std::to_string(s.out_h()));
  if (ext_w > padded_w)
    fail("kernel width with dilation (" + std::to_string(ext_w) + ") exceeds padded input width (" +
         std::to_string(padded_w) + "): output width would be " + std::to_string(s.out_w()));

  const int64_t bytes = int64_t(dtype_size(p.dtype));
  const int64_t oc = checked_mul(s.c, s.multiplier, "c * multiplier");
  checked_mul(checked_mul(checked_mul(checked_mul(s.n, s.c, "input size"), s.h, "input size"), s.w, "input size"), bytes,
              "input size in bytes");
  checked_mul(checked_mul(checked_mul(checked_mul(s.n, oc, "output size"), s.out_h(), "output size"), s.out_w(),
                          "output size"),
              bytes, "output size in bytes");
  checked_mul(checked_mul(checked_mul(oc, s.kh, "weight size"), s.kw, "weight size"), bytes, "weight size in bytes");

  switch (dir) {
    case Direction::forward:
      require_ptr(p.input, "input", dir);
      require_ptr(p.weight, "weight", dir);
      require_ptr(p.output, "output", dir);
      break;
    case Direction::grad_input:
      require_ptr(p.grad_output, "grad_output", dir);
      require_ptr(p.weight, "weight", dir);
      require_ptr(p.grad_input, "grad_input", dir);
      break;
    case Direction::grad_weight:
      require_ptr(p.grad_output, "grad_output", dir);
      require_ptr(p.input, "input", dir);
      require_ptr(p.grad_weight, "grad_weight", dir);
      break;
    case Direction::grad_bias:
      require_ptr(p.grad_output, "grad_output", dir);
      require_ptr(p.grad_bias, "grad_bias", dir);
      break;
  }
  if (p.workspace == nullptr && p.workspace_bytes != 0)
    fail("workspace is null but workspace_bytes is " + std::to_string(p.workspace_bytes));
}

}  // namespace dwconv
