// CPU emulation of the small part of the CUDA runtime and language the
// dwconv CUDA backend uses, so that its kernels can be compiled by g++ and
// run on a machine without a GPU (src/cuda/emu/README.md). NOT a CUDA
// implementation: one block at a time, its threads as cooperative fibers
// that switch at __syncthreads() (a minimal x86-64 stack switch: the
// kernels are plain C++, they only need their own stacks).
//
// What it checks beyond the results: launch limits (block size <= 1024,
// gridDim.y/z <= 65535, gridDim.x < 2^31, dynamic shared memory <= 48 KB
// unless raised with cudaFuncSetAttribute, <= 227 KB), __syncthreads()
// reached by all or none of a block's threads, and writes past either end of
// every cudaMalloc'd buffer (4 KB red zones checked after every launch).
// Fresh allocations and dynamic shared memory are filled with 0xff bytes,
// a NaN in every float format, so reading unwritten memory shows up as NaN.
// Misaligned addresses, which x86 tolerates and the GPU faults on
// (cudaErrorMisalignedAddress): every pointer argument of a launch must be
// aligned to its element type, and the 16/8/4/2-byte vector accesses of
// launch.cuh (load_vec, store_vec) to their width.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __syncthreads() ::emu::syncthreads()

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
  cudaErrorIllegalAddress = 700,
  cudaErrorMisalignedAddress = 716,
};
enum cudaMemcpyKind : int { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaFuncAttribute : int { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
using cudaStream_t = struct CUstream_st*;
using cudaEvent_t = struct CUevent_st*;
enum cudaStreamCaptureStatus : int {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2
};
struct cudaDeviceProp {
  char name[256];
  int major, minor;
};

namespace emu {

inline cudaError_t& sticky() {
  static cudaError_t e = cudaSuccess;
  return e;
}
inline std::string& last_message() {
  static std::string m;
  return m;
}
inline void set_error(cudaError_t e, const std::string& msg) {
  if (sticky() == cudaSuccess) {
    sticky() = e;
    last_message() = msg;
  }
}

// ----------------------------------------------------------- memory
constexpr size_t kRedZone = 4096;
struct Alloc {
  unsigned char* base;
  size_t bytes;
};
inline std::map<void*, Alloc>& allocs() {
  static std::map<void*, Alloc> m;
  return m;
}
inline cudaError_t malloc_dev(void** p, size_t bytes) {
  const size_t total = (bytes + 2 * kRedZone + 4095) / 4096 * 4096;
  auto* base = static_cast<unsigned char*>(std::aligned_alloc(4096, total));
  if (!base) return cudaErrorMemoryAllocation;
  std::memset(base, 0xff, total);  // red zones and contents: NaN bytes
  *p = base + kRedZone;
  allocs()[*p] = Alloc{base, bytes};
  return cudaSuccess;
}
// Red zone bytes are 0xff; a write past either end changes them.
inline bool zones_intact(void* p, const Alloc& a) {
  const unsigned char* lo = a.base;
  const unsigned char* hi = static_cast<unsigned char*>(p) + a.bytes;
  for (size_t i = 0; i < kRedZone; ++i)
    if (lo[i] != 0xff || hi[i] != 0xff) return false;
  return true;
}
inline void check_zones(const char* when) {
  for (auto& [p, a] : allocs())
    if (!zones_intact(p, a))
      set_error(cudaErrorIllegalAddress, std::string("write outside a cudaMalloc'd buffer (") + std::to_string(a.bytes) +
                                             " bytes) detected after " + when);
}
inline cudaError_t free_dev(void* p) {
  if (!p) return cudaSuccess;
  auto it = allocs().find(p);
  if (it == allocs().end()) return cudaErrorInvalidValue;
  if (!zones_intact(p, it->second)) set_error(cudaErrorIllegalAddress, "red zone overwritten (found at cudaFree)");
  std::free(it->second.base);
  allocs().erase(it);
  return cudaSuccess;
}

// ----------------------------------------------------------- alignment
inline void check_access_align(const void* p, size_t bytes) {
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0)
    set_error(cudaErrorMisalignedAddress, "misaligned address: " + std::to_string(bytes) + "-byte access at " +
                                              std::to_string(reinterpret_cast<uintptr_t>(p)));
}
// A kernel may dereference any pointer it is given; one misaligned for its
// element type would fault on the first access, so it is reported at launch.
template <typename A>
bool arg_aligned(const A& a, size_t index) {
  if constexpr (std::is_pointer_v<A>) {
    using E = std::remove_cv_t<std::remove_pointer_t<A>>;
    if constexpr (!std::is_void_v<E> && !std::is_function_v<E>) {
      if (reinterpret_cast<uintptr_t>(a) % alignof(E) != 0) {
        set_error(cudaErrorMisalignedAddress, "misaligned address: kernel argument " + std::to_string(index) + " (" +
                                                  std::to_string(reinterpret_cast<uintptr_t>(a)) +
                                                  ") is not aligned to its element type (" +
                                                  std::to_string(alignof(E)) + " bytes)");
        return false;
      }
    }
  }
  return true;
}

// ----------------------------------------------------------- fibers
// emu_switch(save, next): saves the callee-saved registers and the stack
// pointer into *save, loads next's and returns into it.
extern "C" void emu_switch(void** save_sp, void* next_sp);
asm(R"(
  .text
  .weak emu_switch
  .type emu_switch,@function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");

constexpr size_t kStack = 64 * 1024;
struct Fiber {
  void* sp = nullptr;
  std::vector<unsigned char> stack;
  bool done = false, at_barrier = false;
  uint3 tid;
};
inline void* sched_sp = nullptr;
inline std::vector<Fiber> fibers;
inline size_t current = 0;
inline std::function<void()> body;
inline std::vector<unsigned char> smem;
inline std::map<const void*, int>& smem_attr() {
  static std::map<const void*, int> m;
  return m;
}

inline void syncthreads() {
  Fiber& f = fibers[current];
  f.at_barrier = true;
  emu_switch(&f.sp, sched_sp);
}
[[noreturn]] inline void fiber_entry() {
  body();
  fibers[current].done = true;
  emu_switch(&fibers[current].sp, sched_sp);
  std::abort();  // a finished fiber is never resumed
}
// A fresh stack whose first switch "returns" into fiber_entry as if called.
inline void start_fiber(Fiber& f) {
  uintptr_t top = reinterpret_cast<uintptr_t>(f.stack.data() + f.stack.size()) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<uintptr_t*>(top);
  slot[-1] = 0;                                              // fake return address of fiber_entry
  slot[-2] = reinterpret_cast<uintptr_t>(&fiber_entry);      // popped by ret
  for (int r = 3; r <= 8; ++r) slot[-r] = 0;                 // rbp rbx r12 r13 r14 r15
  f.sp = &slot[-8];
}
inline void* dynamic_smem() { return smem.data(); }

template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t shmem, cudaStream_t, Args&&... args) {
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  const int limit = smem_attr().count(reinterpret_cast<const void*>(kernel))
                        ? smem_attr()[reinterpret_cast<const void*>(kernel)]
                        : 48 * 1024;
  if (nthreads == 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu ||
      grid.y > 65535 || grid.z > 65535 || shmem > size_t(limit) || shmem > 227 * 1024) {
    set_error(cudaErrorInvalidConfiguration,
              "invalid launch configuration: grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" +
                  std::to_string(grid.z) + " block " + std::to_string(nthreads) + " smem " + std::to_string(shmem));
    return;
  }
  std::tuple<std::decay_t<KArgs>...> bound(std::forward<Args>(args)...);
  bool aligned = true;
  std::apply(
      [&](const auto&... a) {
        size_t i = 0;
        ((aligned = arg_aligned(a, i++) && aligned), ...);
      },
      bound);
  if (!aligned) return;
  body = [&] { std::apply(kernel, bound); };
  gridDim = grid;
  blockDim = block;
  fibers.resize(nthreads);
  for (auto& f : fibers)
    if (f.stack.size() != kStack) f.stack.resize(kStack);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = uint3{bx, by, bz};
        smem.assign(shmem + 16, 0xff);
        size_t t = 0;
        for (unsigned z = 0; z < block.z; ++z)
          for (unsigned y = 0; y < block.y; ++y)
            for (unsigned x = 0; x < block.x; ++x, ++t) {
              Fiber& f = fibers[t];
              f.done = f.at_barrier = false;
              f.tid = uint3{x, y, z};
              start_fiber(f);
            }
        for (;;) {
          for (size_t i = 0; i < fibers.size(); ++i) {
            Fiber& f = fibers[i];
            if (f.done) continue;
            f.at_barrier = false;
            current = i;
            threadIdx = f.tid;
            emu_switch(&sched_sp, f.sp);
          }
          size_t done = 0, waiting = 0;
          for (auto& f : fibers) (f.done ? done : waiting) += 1;
          if (waiting == 0) break;
          if (done != 0) {
            set_error(cudaErrorLaunchFailure, "__syncthreads() reached by " + std::to_string(waiting) + " of " +
                                                  std::to_string(nthreads) + " threads (the others had exited)");
            // Let the waiting threads run to completion so the fibers are reusable.
          }
        }
      }
  check_zones("a kernel launch");
}

}  // namespace emu

// ----------------------------------------------------------- runtime API
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::sticky();
  emu::sticky() = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return emu::sticky(); }
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : emu::last_message().empty() ? cudaGetErrorName(e) : emu::last_message().c_str();
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return emu::sticky(); }
inline cudaError_t cudaMalloc(void** p, size_t bytes) { return emu::malloc_dev(p, bytes); }
inline cudaError_t cudaFree(void* p) { return emu::free_dev(p); }
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return emu::malloc_dev(p, bytes); }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return emu::free_dev(p); }
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
template <typename F>
cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > 227 * 1024)
    return cudaErrorInvalidValue;
  emu::smem_attr()[reinterpret_cast<const void*>(kernel)] = value;
  return cudaSuccess;
}
// One emulated device, never capturing. Launches run to completion before
// they return, so an event records the host clock when it is recorded.
inline cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int dev) {
  if (dev != 0) return cudaErrorInvalidValue;
  *prop = cudaDeviceProp{};
  std::strcpy(prop->name, "dwconv CPU emulation");
  return cudaSuccess;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* status) {
  *status = cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = reinterpret_cast<cudaEvent_t>(new std::chrono::steady_clock::time_point());
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<std::chrono::steady_clock::time_point*>(e);
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  *reinterpret_cast<std::chrono::steady_clock::time_point*>(e) = std::chrono::steady_clock::now();
  return emu::sticky();
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return emu::sticky(); }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  using tp = std::chrono::steady_clock::time_point;
  *ms = std::chrono::duration<float, std::milli>(*reinterpret_cast<tp*>(stop) - *reinterpret_cast<tp*>(start)).count();
  return cudaSuccess;
}
