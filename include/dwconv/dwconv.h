// dwconv: depthwise convolution (groups == input channels) with PyTorch's
// semantics, on CPU and CUDA.
//
// One plain struct, dwconv::Params, describes a call at every layer: the
// public API, validation, dispatch, the fp64 reference, the CPU and CUDA
// kernels and the Python binding. It holds sizes and raw pointers only; it
// never owns memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dwconv {

enum class DType : int { f32 = 0, f64 = 1, f16 = 2, bf16 = 3 };

// Activations (input, output and their gradients) are dense in one of two
// layouts. A 1D problem is a 2D one with h == 1, kh == 1: [N, C, L] is nchw
// and [N, L, C] is nhwc. The weight is always dense [C*m, 1, kh, kw] (that is
// also its channels_last form) and the bias [C*m].
enum class Layout : int { nchw = 0, nhwc = 1 };

enum class Direction : int { forward = 0, grad_input = 1, grad_weight = 2, grad_bias = 3 };

enum class Device : int { cpu = 0, cuda = 1 };

// Bad arguments: the message names the parameter and its value.
class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A backend failed at run time (a CUDA call, an allocation).
class BackendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Floor division that stays correct for negative numerators, so that an
// over-large kernel gives an output size <= 0 (rejected) rather than 1.
constexpr int64_t floor_div(int64_t a, int64_t b) {
  return (a >= 0) ? a / b : -((-a + b - 1) / b);
}

struct Shape {
  int64_t n = 1, c = 1, h = 1, w = 1;  // input [n, c, h, w]
  int64_t multiplier = 1;              // output channel o reads input channel o / multiplier
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dil_h = 1, dil_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // zero padding

  int64_t out_c() const { return c * multiplier; }
  int64_t out_h() const {
    return floor_div(h + pad_top + pad_bottom - dil_h * (kh - 1) - 1, stride_h) + 1;
  }
  int64_t out_w() const {
    return floor_div(w + pad_left + pad_right - dil_w * (kw - 1) - 1, stride_w) + 1;
  }
  int64_t input_elems() const { return n * c * h * w; }
  int64_t output_elems() const { return n * out_c() * out_h() * out_w(); }
  int64_t weight_elems() const { return out_c() * kh * kw; }
  bool is_1d() const { return h == 1 && kh == 1 && stride_h == 1 && dil_h == 1 && pad_top == 0 && pad_bottom == 0; }
  std::string str() const;  // "N2 C3x1 8x8 k3x3 s1x1 d1x1 p1,1,1,1"
};

// Shape builders. Padding 'same' follows PyTorch: stride 1 only, the odd
// extra pixel goes to the bottom / right.
struct Padding2d {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
};
Padding2d same_padding(int64_t kh, int64_t kw, int64_t dil_h = 1, int64_t dil_w = 1);
Shape conv2d_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                   int64_t stride = 1, int64_t pad = 0, int64_t dilation = 1, int64_t multiplier = 1);
// 1D: [n, c, l], kernel k. causal=true puts all (k-1)*dilation padding on the left.
Shape conv1d_shape(int64_t n, int64_t c, int64_t l, int64_t k, int64_t stride = 1, int64_t pad = 0,
                   int64_t dilation = 1, int64_t multiplier = 1, bool causal = false);

struct Params {
  Shape shape;
  DType dtype = DType::f32;  // storage type of every tensor; accumulation is fp32 (fp64 for f64)
  Layout layout = Layout::nchw;
  Device device = Device::cpu;

  // Which pointers a direction reads (R) and writes (W):
  //   forward:     input R, weight R, bias R (may be null), output W
  //   grad_input:  grad_output R, weight R, grad_input W
  //   grad_weight: grad_output R, input R, grad_weight W
  //   grad_bias:   grad_output R, grad_bias W
  // Outputs are overwritten, not accumulated into.
  const void* input = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;
  void* output = nullptr;
  const void* grad_output = nullptr;
  void* grad_input = nullptr;
  void* grad_weight = nullptr;
  void* grad_bias = nullptr;

  // Execution.
  int threads = 0;              // CPU threads; 0 = OpenMP's default (OMP_NUM_THREADS)
  bool deterministic = true;    // false allows float atomics where a kernel offers them
  void* workspace = nullptr;    // scratch of workspace_size() bytes, any alignment; null = the backend allocates
  size_t workspace_bytes = 0;
  void* stream = nullptr;       // cudaStream_t for Device::cuda; null = default stream
  const char* kernel = nullptr; // force a kernel variant by name (tests, benchmarks); null = heuristic or autotuned
};

// Throws dwconv::Error naming the first bad parameter.
void validate(Direction dir, const Params& p);

// Scratch bytes the selected kernel needs (0 for most). With autotuning on
// it must cover whichever variant run() will pick: the kept variant's need
// once tuned, before that the most that any candidate needs. A caller
// workspace smaller than a candidate's need leaves that candidate out of
// tuning.
size_t workspace_size(Direction dir, const Params& p);

// Validates, picks a kernel variant and runs it. CUDA calls are asynchronous
// on p.stream.
void run(Direction dir, const Params& p);
inline void forward(const Params& p) { run(Direction::forward, p); }
inline void grad_input(const Params& p) { run(Direction::grad_input, p); }
inline void grad_weight(const Params& p) { run(Direction::grad_weight, p); }
inline void grad_bias(const Params& p) { run(Direction::grad_bias, p); }

// Name of the variant run(dir, p) would use. With autotuning on, the tuned
// choice once this kind of call was tuned, the heuristic's before.
std::string selected_kernel(Direction dir, const Params& p);

// Autotuning, off by default. The dispatch heuristic is a guess per shape
// and can be wrong on a given machine (on a GPU it has never been measured),
// so a caller that repeats the same calls can have them measured instead:
// when on, the first run() of each kind of call (the key below) that more
// than one variant accepts times every such variant on the caller's own
// buffers (1 warm-up, median of 3), keeps the fastest and runs it; later
// calls of that kind run the kept variant with no timing. The choices live
// in this process only, per device: per CPU ISA target and thread count, per
// GPU (ordinal, name, compute capability). Key: that device, direction,
// dtype, layout, every Shape field and Params::deterministic; not pointers.
// A forced Params::kernel is never tuned. On CUDA no tuning happens while
// p.stream is being captured into a graph (the kept choice, else the
// heuristic's, runs). The first run of a key costs about 4 runs of every
// candidate. DWCONV_AUTOTUNE=1 (also true, on, yes) in the environment turns
// it on; read once, and set_autotune overrides it.
void set_autotune(bool on);
bool autotune_enabled();
void autotune_clear();  // forgets every kept choice; the next call of each kind tunes again

struct AutotuneEntry {
  std::string key;     // "cpu avx2 2 threads | forward f32 nchw N2 C3x1 8x8 k3x3 s1x1 d1x1 p1,1,1,1 det"
  std::string kernel;  // the kept variant
  // Median ms per candidate timed, fastest first; a candidate that threw
  // while being timed is left out.
  std::vector<std::pair<std::string, double>> times_ms;
};
// Every kept choice, ordered by key.
std::vector<AutotuneEntry> autotune_entries();

// The fp64 oracle: plain loops accumulating in double, any dtype and layout,
// CPU pointers only. Obviously correct rather than fast.
namespace reference {
void run(Direction dir, const Params& p);
}  // namespace reference

bool cuda_available();  // built with CUDA and a device is present

const char* to_string(DType);
const char* to_string(Layout);
const char* to_string(Direction);
const char* to_string(Device);
size_t dtype_size(DType);

}  // namespace dwconv
