// Shared pieces of the CUDA backend: error checking, the per-call problem
// description passed to kernels by value, storage <-> accumulation
// conversions, run-time -> compile-time dispatch (dtype, index type), launch
// sizes and scratch memory.
//
// Conventions of every kernel in src/cuda:
//   - Sizes come in a plain POD (Prob, or a family's own desc) by value.
//   - Accumulation is fp32 (fp64 for f64 storage, and fp64 in the generic
//     grad-weight / grad-bias reductions).
//   - Each output element is written by exactly one thread, exactly once.
//   - No float atomics: reductions have a fixed order (deterministic).
//   - Index type I is int32_t when every size fits comfortably (see
//     needs_i64), else int64_t; per-plane kernels take 64-bit plane offsets
//     and 32-bit offsets inside a plane.
//
// Built with -DDWCONV_CUDA_EMU (src/cuda/emu/), the same sources compile with
// g++ against a CPU emulation of the runtime, for testing without a GPU;
// that is why kernels are launched through launch_kernel() rather than
// <<<...>>> and dynamic shared memory is declared with DWCONV_DYNAMIC_SMEM.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/common.h"
#include "dwconv/kernels.h"

namespace dwconv::cuda {

// ------------------------------------------------------------------ errors
// Throws dwconv::BackendError naming the call, the CUDA error and the shape.
[[noreturn]] void fail(const char* what, cudaError_t e, const Params& p);

inline void check(cudaError_t e, const char* what, const Params& p) {
  if (e != cudaSuccess) fail(what, e, p);
}
#define DWCONV_CUDA_CHECK(call, p) ::dwconv::cuda::check((call), #call, (p))
// After every <<<...>>>: launch-configuration errors surface here.
#define DWCONV_CUDA_LAUNCHED(name, p) ::dwconv::cuda::check(cudaGetLastError(), "launch " name, (p))

inline cudaStream_t stream_of(const Params& p) { return static_cast<cudaStream_t>(p.stream); }

// ---------------------------------------------------------------- problem
// The shape with derived sizes, computed once per call on the host.
struct Prob {
  int64_t N, C, H, W, M, OC, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL;
};

inline Prob make_prob(const Params& p) {
  const Shape& s = p.shape;
  return Prob{s.n,  s.c,  s.h,        s.w,        s.multiplier, s.out_c(), s.out_h(), s.out_w(),
              s.kh, s.kw, s.stride_h, s.stride_w, s.dil_h,      s.dil_w,   s.pad_top, s.pad_left};
}

// 32-bit indexing is used when every element count and every coordinate
// (padded extents included) stays below 2^30, which leaves room for
// grid-stride increments and intermediate products without overflow.
inline bool needs_i64(const Params& p) {
  const Shape& s = p.shape;
  const int64_t lim = int64_t(1) << 30;
  // Strides and dilations too: validate() bounds neither (a stride >= 2^31 is
  // valid when the output is 1 high/wide, a dilation when the kernel is 1
  // tap), and the kernels narrow them to I; a truncated stride of 0 or < 0
  // made the grad-input kernels divide by zero / index dy at oy < 0.
  return s.input_elems() >= lim || s.output_elems() >= lim || s.weight_elems() >= lim ||
         s.h + s.pad_top + s.pad_bottom >= lim || s.w + s.pad_left + s.pad_right >= lim || s.stride_h >= lim ||
         s.stride_w >= lim || s.dil_h >= lim || s.dil_w >= lim;
}

// True for the dtypes the fast variants take (f64 goes to the generic ones).
inline bool fast_dtype(const Params& p) {
  return p.dtype == DType::f32 || p.dtype == DType::f16 || p.dtype == DType::bf16;
}

// Calls f(type_tag<int32_t>) or f(type_tag<int64_t>).
template <typename F>
void dispatch_index(bool wide, F&& f) {
  if (wide) {
    f(type_tag<int64_t>{});
  } else {
    f(type_tag<int32_t>{});
  }
}

// Calls f(type_tag<T>) for the fast dtypes only (f32, f16, bf16).
template <typename F>
void dispatch_fast_dtype(const Params& p, F&& f) {
  switch (p.dtype) {
    case DType::f32:
      f(type_tag<float>{});
      return;
    case DType::f16:
      f(type_tag<f16>{});
      return;
    case DType::bf16:
      f(type_tag<bf16>{});
      return;
    default:
      break;
  }
  throw Error(std::string("dwconv: this CUDA variant takes f32, f16 or bf16, got ") + to_string(p.dtype));
}

// -------------------------------------------------------- conversions (device)
template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <typename T>
using acc_of = typename AccOf<T>::type;

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(f16 v) { return __half2float(__ushort_as_half(v.bits)); }
__device__ __forceinline__ float to_acc(bf16 v) { return __uint_as_float(uint32_t(v.bits) << 16); }

template <typename T>
__device__ __forceinline__ T from_acc(float v);
template <>
__device__ __forceinline__ float from_acc<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ f16 from_acc<f16>(float v) {
  return f16{__half_as_ushort(__float2half_rn(v))};
}
template <>
__device__ __forceinline__ bf16 from_acc<bf16>(float v) {
  return bf16{__bfloat16_as_ushort(__float2bfloat16_rn(v))};
}
template <typename T>
__device__ __forceinline__ T from_acc(double v);
template <>
__device__ __forceinline__ double from_acc<double>(double v) {
  return v;
}
template <>
__device__ __forceinline__ float from_acc<float>(double v) {
  return float(v);
}
template <>
__device__ __forceinline__ f16 from_acc<f16>(double v) {
  return from_acc<f16>(float(v));
}
template <>
__device__ __forceinline__ bf16 from_acc<bf16>(double v) {
  return from_acc<bf16>(float(v));
}

// Vectors of V storage elements moved as one 16-, 8-, 4- or 2-byte access
// (the pointer must be aligned to V * sizeof(T)).
template <int Bytes>
struct WordOf;
template <>
struct WordOf<16> {
  using type = uint4;
};
template <>
struct WordOf<8> {
  using type = uint2;
};
template <>
struct WordOf<4> {
  using type = uint32_t;
};
template <>
struct WordOf<2> {
  using type = uint16_t;
};

#ifdef DWCONV_CUDA_EMU
// x86 tolerates what the GPU faults on: the emulation reports it instead.
#define DWCONV_EMU_CHECK_VEC_ALIGN(p, bytes) ::emu::check_access_align((p), (bytes))
#else
#define DWCONV_EMU_CHECK_VEC_ALIGN(p, bytes) ((void)0)
#endif

template <int V, typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&v)[V]) {
  using W = typename WordOf<int(sizeof(T)) * V>::type;
  DWCONV_EMU_CHECK_VEC_ALIGN(p, sizeof(W));
  const W u = *reinterpret_cast<const W*>(p);
  T e[V];
  memcpy(e, &u, sizeof(W));
#pragma unroll
  for (int k = 0; k < V; ++k) v[k] = to_acc(e[k]);
}
template <int V, typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&v)[V]) {
  using W = typename WordOf<int(sizeof(T)) * V>::type;
  DWCONV_EMU_CHECK_VEC_ALIGN(p, sizeof(W));
  T e[V];
#pragma unroll
  for (int k = 0; k < V; ++k) e[k] = from_acc<T>(v[k]);
  W u;
  memcpy(&u, e, sizeof(W));
  *reinterpret_cast<W*>(p) = u;
}

inline bool aligned_to(const void* ptr, size_t bytes) { return (reinterpret_cast<uintptr_t>(ptr) % bytes) == 0; }

// Channels per thread of the NHWC vector kernels: the widest of 16, 8, 4 or
// 2 bytes of storage (at most 4 f32 or 8 f16/bf16 elements) that divides C
// and to which every pointer is aligned. Returns 1 at worst (scalar).
inline int nhwc_vec_width(const Params& p, std::initializer_list<const void*> ptrs) {
  const int es = int(dtype_size(p.dtype));
  for (int bytes = 16; bytes > es; bytes /= 2) {
    const int v = bytes / es;
    bool ok = p.shape.c % v == 0;
    for (const void* q : ptrs) ok = ok && aligned_to(q, size_t(bytes));
    if (ok) return v;
  }
  return 1;
}

// Calls f(std::integral_constant<int, V>) for V in {1, 2, 4, 8}.
template <typename F>
void dispatch_vec(int v, F&& f) {
  switch (v) {
    case 8:
      f(std::integral_constant<int, 8>{});
      return;
    case 4:
      f(std::integral_constant<int, 4>{});
      return;
    case 2:
      f(std::integral_constant<int, 2>{});
      return;
    default:
      f(std::integral_constant<int, 1>{});
      return;
  }
}

// ----------------------------------------------------------------- launch
constexpr int kBlock = 256;

// kernel<<<grid, block, smem, stream>>>(args...). Callers check
// cudaGetLastError() right after (DWCONV_CUDA_LAUNCHED).
template <typename... KArgs, typename... Args>
void launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
#ifdef DWCONV_CUDA_EMU
  ::emu::launch(kernel, grid, block, smem, stream, std::forward<Args>(args)...);
#else
  // clang-format off
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
  // clang-format on
#endif
}

#ifdef DWCONV_CUDA_EMU
#define DWCONV_DYNAMIC_SMEM(T, name) T* name = static_cast<T*>(::emu::dynamic_smem())
#else
#define DWCONV_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#endif

// Blocks for a grid-stride loop over `work` items: at most 2^20 blocks (far
// below the 2^31-1 limit of gridDim.x), at least one.
inline unsigned grid_for(int64_t work, int block = kBlock) {
  const int64_t b = (work + block - 1) / block;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(b, int64_t(1) << 20)));
}

// One block per item: fails cleanly when the count passes gridDim.x's limit.
inline unsigned grid_exact(int64_t blocks, const Params& p, const char* what) {
  if (blocks < 1 || blocks > int64_t(0x7fffffff))
    throw BackendError(std::string("dwconv: ") + what + " needs " + std::to_string(blocks) +
                       " blocks, beyond gridDim.x's limit, on " + p.shape.str());
  return unsigned(blocks);
}

// Scratch alignment. Params::workspace comes from the caller and may sit at
// any address (a slice of a larger buffer, a byte tensor at an offset); a
// misaligned float access faults on the GPU, and refusing such pointers
// would push the rounding onto every caller. So each variant's workspace
// size includes kWorkspaceAlign - 1 bytes of slack (with_align_slack) and
// Scratch rounds the pointer up: any address of workspace_size() bytes
// works. 256 is what cudaMalloc guarantees, so vector accesses of any width
// stay legal.
constexpr size_t kWorkspaceAlign = 256;
constexpr size_t with_align_slack(size_t used) { return used == 0 ? 0 : used + kWorkspaceAlign - 1; }

// Scratch memory of `bytes` (a with_align_slack size), kWorkspaceAlign-aligned:
// p.workspace when given, else cudaMallocAsync on p.stream, freed with
// cudaFreeAsync (stream-ordered, so no synchronisation).
class Scratch {
 public:
  Scratch(const Params& p, size_t bytes) : p_(p) {
    if (bytes == 0) return;
    void* raw = p.workspace;
    if (raw == nullptr) {
      DWCONV_CUDA_CHECK(cudaMallocAsync(&owned_ptr_, bytes, stream_of(p)), p);
      raw = owned_ptr_;
    }
    const uintptr_t a = reinterpret_cast<uintptr_t>(raw);
    ptr_ = reinterpret_cast<void*>((a + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (owned_ptr_ != nullptr) (void)cudaFreeAsync(owned_ptr_, stream_of(p_));  // only reached on an error path
  }
  void* get() const { return ptr_; }
  // Frees owned memory, checked. Call after the last launch that uses it.
  void release() {
    if (owned_ptr_ != nullptr) {
      void* q = owned_ptr_;
      owned_ptr_ = nullptr;
      DWCONV_CUDA_CHECK(cudaFreeAsync(q, stream_of(p_)), p_);
    }
  }

 private:
  Params p_;
  void* ptr_ = nullptr;
  void* owned_ptr_ = nullptr;
};

// ------------------------------------------------- weight as [kh*kw][OC] fp32
// The NHWC variants read the filter of V consecutive channels per tap; the
// transposed fp32 copy makes that a contiguous read. Lives in the workspace.
template <typename T>
__global__ void transpose_weight_kernel(const T* __restrict__ w, float* __restrict__ wt, int64_t OC, int64_t KK) {
  const int64_t total = OC * KK;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = e / OC, o = e - k * OC;  // e indexes the destination: coalesced writes
    wt[e] = float(to_acc(w[o * KK + k]));
  }
}

inline size_t transposed_weight_bytes(const Params& p) {
  return with_align_slack(size_t(p.shape.weight_elems()) * sizeof(float));
}

template <typename T>
void transpose_weight(const Params& p, float* wt) {
  const int64_t OC = p.shape.out_c(), KK = p.shape.kh * p.shape.kw;
  launch_kernel(transpose_weight_kernel<T>, grid_for(OC * KK), kBlock, 0, stream_of(p), static_cast<const T*>(p.weight),
                wt, OC, KK);
  DWCONV_CUDA_LAUNCHED("transpose_weight_kernel", p);
}

// ------------------------------------------------------- per-file variant lists
std::vector<Kernel> generic_kernels();     // generic.cu
std::vector<Kernel> fwd_nchw_kernels();    // fwd_nchw.cu (tile, also grad-input stride 1)
std::vector<Kernel> fwd_nhwc_kernels();    // fwd_nhwc.cu
std::vector<Kernel> dgrad_kernels();       // dgrad.cu (gather NCHW, vec NHWC)
std::vector<Kernel> wgrad_kernels();       // wgrad.cu (two-stage)
std::vector<Kernel> wgrad_tile_kernels();  // wgrad_tile.cu (large NCHW kernels)
std::vector<Kernel> bgrad_kernels();       // bgrad.cu

}  // namespace dwconv::cuda
