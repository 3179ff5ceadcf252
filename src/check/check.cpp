// The shared correctness checker (see include/dwconv/check.h).
#include "dwconv/check.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/common.h"

#ifdef DWCONV_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dwconv::check {
namespace {

// A host tensor in its storage type, plus the exact values it holds as doubles.
struct HostTensor {
  DType dtype;
  std::vector<unsigned char> bytes;
  std::vector<double> values;

  HostTensor(DType d, int64_t elems) : dtype(d), bytes(size_t(elems) * dtype_size(d)), values(size_t(elems)) {}
  int64_t elems() const { return int64_t(values.size()); }
};

// Uniform in [-1, 1), rounded to the storage type; never all zeros.
HostTensor random_tensor(DType d, int64_t elems, std::mt19937_64& rng) {
  HostTensor t(d, elems);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  dispatch_dtype(d, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = reinterpret_cast<T*>(t.bytes.data());
    for (int64_t i = 0; i < elems; ++i) {
      store(p, i, u(rng));
      t.values[size_t(i)] = load_f64(p, i);
    }
  });
  return t;
}

// Every element NaN, so an element the kernel does not write fails the check.
HostTensor poisoned_tensor(DType d, int64_t elems) {
  HostTensor t(d, elems);
  dispatch_dtype(d, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = reinterpret_cast<T*>(t.bytes.data());
    for (int64_t i = 0; i < elems; ++i) store(p, i, std::nan(""));
  });
  return t;
}

void read_values(HostTensor& t) {
  dispatch_dtype(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = reinterpret_cast<const T*>(t.bytes.data());
    for (int64_t i = 0; i < t.elems(); ++i) t.values[size_t(i)] = load_f64(p, i);
  });
}

// Memory the kernel under test reads and writes: host memory for the CPU,
// device memory for CUDA.
class Buffers {
 public:
  explicit Buffers(Device d) : device_(d) {}
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
  ~Buffers() {
#ifdef DWCONV_WITH_CUDA
    for (void* p : device_ptrs_) cudaFree(p);
#endif
  }

  void* upload(HostTensor& t) {
    if (device_ == Device::cpu) return t.bytes.data();
#ifdef DWCONV_WITH_CUDA
    void* p = nullptr;
    cuda_ok(cudaMalloc(&p, t.bytes.size() ? t.bytes.size() : 1), "cudaMalloc");
    device_ptrs_.push_back(p);
    cuda_ok(cudaMemcpy(p, t.bytes.data(), t.bytes.size(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    return p;
#else
    throw Error("dwconv: device is cuda but this build has no CUDA backend");
#endif
  }

  void download([[maybe_unused]] void* src, HostTensor& t) {
    if (device_ == Device::cuda) {
#ifdef DWCONV_WITH_CUDA
      cuda_ok(cudaDeviceSynchronize(), "kernel execution (cudaDeviceSynchronize)");
      cuda_ok(cudaMemcpy(t.bytes.data(), src, t.bytes.size(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
#endif
    }
    read_values(t);
  }

 private:
#ifdef DWCONV_WITH_CUDA
  static void cuda_ok(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw BackendError(std::string("dwconv check: ") + what + ": " + cudaGetErrorString(e));
  }
  std::vector<void*> device_ptrs_;
#endif
  Device device_;
};

// The reference run on |inputs|: per output, the sum of the magnitudes of its
// terms, which bounds the rounding error any fp32-accumulating kernel makes.
std::vector<double> reference_on_magnitudes(Direction dir, Params r, size_t out_elems) {
  const Shape& s = r.shape;
  auto magnitudes = [](const void* p, int64_t n) {
    const double* d = static_cast<const double*>(p);
    std::vector<double> v(d, d + n);
    for (double& e : v) e = std::fabs(e);
    return v;
  };
  std::vector<double> x, w, b, dy, out(out_elems);
  if (r.input) x = magnitudes(r.input, s.input_elems()), r.input = x.data();
  if (r.weight) w = magnitudes(r.weight, s.weight_elems()), r.weight = w.data();
  if (r.bias) b = magnitudes(r.bias, s.out_c()), r.bias = b.data();
  if (r.grad_output) dy = magnitudes(r.grad_output, s.output_elems()), r.grad_output = dy.data();
  switch (dir) {
    case Direction::forward: r.output = out.data(); break;
    case Direction::grad_input: r.grad_input = out.data(); break;
    case Direction::grad_weight: r.grad_weight = out.data(); break;
    case Direction::grad_bias: r.grad_bias = out.data(); break;
  }
  reference::run(dir, r);
  return out;
}

// Terms summed into one output element (at most).
double terms_per_output(Direction dir, const Shape& s) {
  switch (dir) {
    case Direction::forward: return double(s.kh) * double(s.kw);
    case Direction::grad_input:
      return std::max(1.0, double(s.kh) * double(s.kw) * double(s.multiplier) / (double(s.stride_h) * double(s.stride_w)));
    case Direction::grad_weight:
    case Direction::grad_bias: return double(s.n) * double(s.out_h()) * double(s.out_w());
  }
  return 1;
}

double magnitude_floor(Direction dir, const Params& r, size_t out_elems) {
  double mag2 = 0;
  for (double v : reference_on_magnitudes(dir, r, out_elems)) mag2 += v * v;
  return std::sqrt(mag2 / terms_per_output(dir, r.shape));
}

// Relative error in the 2-norm. The denominator is ||ref||, floored at
// ||ref on magnitudes|| / sqrt(terms): for random signs the two agree to a
// small factor, and the floor only matters when an output is a sum that
// cancels almost exactly, where no fp32 kernel can be relatively accurate.
Outcome compare(const HostTensor& out, const std::vector<double>& ref, DType dtype, double floor_norm) {
  Outcome o;
  o.tol = tolerance(dtype);
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double v = out.values[i];
    if (!std::isfinite(v)) {
      o.ok = false;
      o.rel_err = INFINITY;
      o.message = "element " + std::to_string(i) + " is " + std::to_string(v) + " (not written?), reference " +
                  std::to_string(ref[i]);
      return o;
    }
    diff2 += (v - ref[i]) * (v - ref[i]);
    ref2 += ref[i] * ref[i];
  }
  const double denom = std::max(std::sqrt(ref2), floor_norm);
  o.rel_err = denom > 0 ? std::sqrt(diff2) / denom : std::sqrt(diff2);
  o.ok = o.rel_err <= o.tol;
  if (!o.ok) {
    size_t worst = 0;
    for (size_t i = 1; i < ref.size(); ++i)
      if (std::fabs(out.values[i] - ref[i]) > std::fabs(out.values[worst] - ref[worst])) worst = i;
    std::ostringstream m;
    m << "relative error " << o.rel_err << " > " << o.tol << "; worst element " << worst << ": got "
      << out.values[worst] << ", reference " << ref[worst];
    o.message = m.str();
  }
  return o;
}

}  // namespace

std::string Case::str() const {
  std::ostringstream s;
  s << shape.str() << " " << to_string(dtype) << " " << to_string(layout) << " " << to_string(device)
    << (bias ? " bias" : "") << (kernel ? std::string(" kernel=") + kernel : std::string()) << " seed=" << seed;
  return s.str();
}

double tolerance(DType dtype) {
  switch (dtype) {
    case DType::f32: return 1e-5;
    case DType::f64: return 1e-12;
    case DType::f16:
    case DType::bf16: return 1e-2;
  }
  return 0;
}

Outcome run_case(Direction dir, const Case& c, const Runner& runner) {
  const Runner exec = runner ? runner : Runner([](Direction d, const Params& q) { run(d, q); });
  const Shape& s = c.shape;
  Params p;
  p.shape = s;
  p.dtype = c.dtype;
  p.layout = c.layout;
  p.device = c.device;
  p.threads = c.threads;
  p.kernel = c.kernel;
  {
    // Validate the shape before sizing buffers from it.
    static unsigned char dummy;
    Params q = p;
    q.input = q.weight = q.grad_output = &dummy;
    q.output = q.grad_input = q.grad_weight = q.grad_bias = &dummy;
    validate(dir, q);
  }
  std::mt19937_64 rng(c.seed * 0x9E3779B97F4A7C15ull + uint64_t(dir) + 1);
  Buffers buf(c.device);

  // The reference runs on the same values in fp64.
  Params r = p;
  r.dtype = DType::f64;
  r.device = Device::cpu;
  r.kernel = nullptr;
  r.threads = 0;

  std::vector<double> ref;
  double floor_norm = 0;  // see compare()
  HostTensor out(c.dtype, 0);
  void* out_dev = nullptr;
  switch (dir) {
    case Direction::forward: {
      HostTensor x = random_tensor(c.dtype, s.input_elems(), rng);
      HostTensor w = random_tensor(c.dtype, s.weight_elems(), rng);
      HostTensor b = random_tensor(c.dtype, c.bias ? s.out_c() : 0, rng);
      out = poisoned_tensor(c.dtype, s.output_elems());
      p.input = buf.upload(x);
      p.weight = buf.upload(w);
      p.bias = c.bias ? buf.upload(b) : nullptr;
      p.output = out_dev = buf.upload(out);
      ref.resize(size_t(s.output_elems()));
      r.input = x.values.data(), r.weight = w.values.data(), r.bias = c.bias ? b.values.data() : nullptr;
      r.output = ref.data();
      exec(dir, p);
      reference::run(dir, r);
      floor_norm = magnitude_floor(dir, r, ref.size());
      break;
    }
    case Direction::grad_input: {
      HostTensor dy = random_tensor(c.dtype, s.output_elems(), rng);
      HostTensor w = random_tensor(c.dtype, s.weight_elems(), rng);
      out = poisoned_tensor(c.dtype, s.input_elems());
      p.grad_output = buf.upload(dy);
      p.weight = buf.upload(w);
      p.grad_input = out_dev = buf.upload(out);
      ref.resize(size_t(s.input_elems()));
      r.grad_output = dy.values.data(), r.weight = w.values.data(), r.grad_input = ref.data();
      exec(dir, p);
      reference::run(dir, r);
      floor_norm = magnitude_floor(dir, r, ref.size());
      break;
    }
    case Direction::grad_weight: {
      HostTensor dy = random_tensor(c.dtype, s.output_elems(), rng);
      HostTensor x = random_tensor(c.dtype, s.input_elems(), rng);
      out = poisoned_tensor(c.dtype, s.weight_elems());
      p.grad_output = buf.upload(dy);
      p.input = buf.upload(x);
      p.grad_weight = out_dev = buf.upload(out);
      ref.resize(size_t(s.weight_elems()));
      r.grad_output = dy.values.data(), r.input = x.values.data(), r.grad_weight = ref.data();
      exec(dir, p);
      reference::run(dir, r);
      floor_norm = magnitude_floor(dir, r, ref.size());
      break;
    }
    case Direction::grad_bias: {
      HostTensor dy = random_tensor(c.dtype, s.output_elems(), rng);
      out = poisoned_tensor(c.dtype, s.out_c());
      p.grad_output = buf.upload(dy);
      p.grad_bias = out_dev = buf.upload(out);
      ref.resize(size_t(s.out_c()));
      r.grad_output = dy.values.data(), r.grad_bias = ref.data();
      exec(dir, p);
      reference::run(dir, r);
      floor_norm = magnitude_floor(dir, r, ref.size());
      break;
    }
  }
  buf.download(out_dev, out);
  // What the reference gives after rounding to the storage type is the best
  // any kernel can do; compare against the unrounded fp64 values.
  Outcome o = compare(out, ref, c.dtype, floor_norm);
  o.kernel = runner ? "custom" : selected_kernel(dir, p);
  return o;
}

std::vector<Shape> edge_shapes() {
  std::vector<Shape> v;
  auto add2d = [&](int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                   int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw, int64_t m) {
    Shape s;
    s.n = n, s.c = c, s.h = h, s.w = w, s.kh = kh, s.kw = kw, s.stride_h = sh, s.stride_w = sw;
    s.pad_top = pt, s.pad_bottom = pb, s.pad_left = pl, s.pad_right = pr, s.dil_h = dh, s.dil_w = dw;
    s.multiplier = m;
    v.push_back(s);
  };
  //     n  c   h   w  kh  kw sh sw pt pb pl pr dh dw m
  add2d(2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);      // plain 3x3 'same'
  add2d(2, 4, 9, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1);     // stride 2, odd sizes
  add2d(1, 2, 3, 3, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1);      // kernel larger than the input
  add2d(1, 2, 4, 4, 7, 7, 1, 1, 3, 3, 3, 3, 1, 1, 1);      // 7x7 on 4x4
  add2d(2, 2, 5, 6, 3, 3, 1, 1, 4, 4, 4, 4, 1, 1, 1);      // padding larger than the kernel
  add2d(2, 3, 11, 11, 2, 2, 3, 3, 0, 0, 0, 0, 1, 1, 1);    // stride larger than the kernel
  add2d(1, 3, 9, 9, 1, 1, 4, 4, 0, 0, 0, 0, 1, 1, 1);      // 1x1, stride 4
  add2d(2, 3, 1, 9, 1, 3, 1, 1, 0, 0, 1, 1, 1, 1, 1);      // H = 1
  add2d(2, 3, 9, 1, 3, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1);      // W = 1
  add2d(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1);      // everything 1
  add2d(1, 1, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);      // C = 1, N = 1
  add2d(2, 2, 6, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3);      // multiplier 3
  add2d(1, 3, 8, 9, 3, 3, 2, 1, 1, 0, 2, 1, 1, 1, 2);      // multiplier 2, stride 2x1, asymmetric padding
  add2d(2, 2, 12, 12, 3, 3, 1, 1, 3, 3, 3, 3, 3, 3, 1);    // dilation 3
  add2d(1, 2, 13, 14, 3, 5, 2, 2, 2, 2, 4, 4, 2, 2, 2);    // dilation 2, stride 2, multiplier 2
  add2d(2, 3, 8, 8, 2, 2, 1, 1, 0, 1, 0, 1, 1, 1, 1);      // even kernel, 'same' (extra pad bottom/right)
  add2d(1, 2, 9, 10, 4, 6, 1, 1, 1, 2, 2, 3, 1, 1, 1);     // even non-square kernel
  add2d(1, 2, 10, 9, 4, 4, 2, 2, 1, 2, 1, 2, 1, 1, 1);     // even kernel, stride 2
  add2d(2, 3, 10, 23, 1, 11, 1, 1, 0, 0, 5, 5, 1, 1, 1);   // 1x11 (InceptionNeXt band)
  add2d(2, 3, 23, 10, 11, 1, 1, 1, 5, 5, 0, 0, 1, 1, 1);   // 11x1
  add2d(1, 2, 56, 8, 51, 5, 1, 1, 25, 25, 2, 2, 1, 1, 1);  // 51x5 (SLaK)
  add2d(1, 2, 8, 56, 5, 51, 1, 1, 2, 2, 25, 25, 1, 1, 1);  // 5x51
  add2d(1, 4096, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);   // many channels, tiny image
  add2d(1, 2, 33, 35, 31, 31, 1, 1, 15, 15, 15, 15, 1, 1, 1);  // 31x31 (RepLKNet)
  add2d(1, 1, 40, 20, 63, 63, 1, 1, 31, 31, 31, 31, 1, 1, 1);  // 63x63: kernel larger than the image
  add2d(1, 2, 16, 16, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1);    // 'valid'
  add2d(2, 5, 17, 19, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 1);    // EfficientNet 5x5 stride 2
  add2d(1, 3, 5, 5, 3, 3, 1, 1, 0, 3, 2, 0, 1, 1, 1);      // one-sided padding
  add2d(1, 2, 5, 5, 3, 3, int64_t(1) << 32, (int64_t(1) << 32) - 3, 1, 1, 1, 1, 1, 1, 1);  // strides past 32 bits
  // 1D
  v.push_back(conv1d_shape(2, 5, 40, 4, 1, 0, 3, 1, true));    // causal, dilation 3 (Mamba-like)
  v.push_back(conv1d_shape(2, 4, 33, 4, 1, 0, 1, 1, true));    // causal width 4
  v.push_back(conv1d_shape(2, 3, 50, 31, 1, 15, 1, 1, false)); // Conformer k31 'same'
  v.push_back(conv1d_shape(1, 3, 31, 5, 2, 2, 1, 2, false));   // stride 2, multiplier 2
  v.push_back(conv1d_shape(1, 2, 300, 127, 1, 63, 1, 1, false)); // k127
  v.push_back(conv1d_shape(3, 2, 1, 1, 1, 0, 1, 1, false));    // L = 1
  return v;
}

Shape random_shape(std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (;;) {
    Shape s;
    const bool one_d = pick(0, 3) == 0;
    s.n = pick(1, 3);
    s.c = pick(0, 5) == 0 ? pick(9, 70) : pick(1, 8);
    s.multiplier = pick(0, 4) == 0 ? pick(2, 3) : 1;
    s.w = pick(1, one_d ? 64 : 24);
    s.kw = pick(0, 6) == 0 ? pick(8, 17) : pick(1, 7);
    s.stride_w = pick(0, 2) == 0 ? pick(2, 3) : 1;
    s.dil_w = pick(0, 3) == 0 ? pick(2, 3) : 1;
    s.pad_left = pick(0, s.kw);
    s.pad_right = pick(0, 2) == 0 ? pick(0, s.kw) : s.pad_left;
    if (!one_d) {
      s.h = pick(1, 24);
      s.kh = pick(0, 6) == 0 ? pick(8, 17) : pick(1, 7);
      s.stride_h = pick(0, 2) == 0 ? pick(2, 3) : 1;
      s.dil_h = pick(0, 3) == 0 ? pick(2, 3) : 1;
      s.pad_top = pick(0, s.kh);
      s.pad_bottom = pick(0, 2) == 0 ? pick(0, s.kh) : s.pad_top;
    }
    if (s.out_h() >= 1 && s.out_w() >= 1) return s;
  }
}

}  // namespace dwconv::check
