// Runs every CUDA kernel variant, compiled for the CPU emulation
// (cuda_runtime.h here), against the fp64 reference through dwconv::check:
// the edge shapes, seeded random shapes and scaled-down suite shapes, every
// direction x layout x dtype x variant that accepts the case. Reports
// failures and how often each variant ran. Variants that take a workspace
// run twice: allocating their own, and given one by the caller at an odd
// address (see with_odd_workspace). See README.md.
//
//   emu_test [--count N] [--seed S] [--filter SUBSTRING] [--quiet] [--skip-wide]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>

#include <cuda_runtime.h>

#include "core/autotune.h"
#include "dwconv/check.h"
#include "dwconv/kernels.h"

namespace dwconv {
// The CPU backend is not part of this build; the reference is the oracle.
std::vector<Kernel> cpu_kernels() { return {}; }
namespace cpu {
std::string active_target() { return "none"; }  // the CPU part of an autotuning key
}  // namespace cpu
}  // namespace dwconv

using namespace dwconv;

namespace {

// Params::workspace may be any address (docs/cuda.md): runs the call with
// a workspace one byte past a 256-byte boundary, the worst case for the
// kernels' internal alignment, and exactly workspace_size() bytes long, so
// the emulator reports a misaligned access if a kernel uses the pointer as
// given and a red-zone write if the alignment slack is too small.
void with_odd_workspace(Direction dir, const Params& p) {
  const size_t need = workspace_size(dir, p);
  struct Buf {
    void* ptr = nullptr;
    ~Buf() {
      // After a failed run: its error is reported already, and a sticky one
      // from this free would be blamed on the next case.
      if (ptr != nullptr) {
        cudaFree(ptr);
        (void)cudaGetLastError();
      }
    }
  } buf;
  if (cudaMalloc(&buf.ptr, need + 1) != cudaSuccess) throw BackendError("emu_test: cudaMalloc failed");
  Params q = p;
  q.workspace = static_cast<unsigned char*>(buf.ptr) + 1;
  q.workspace_bytes = need;
  run(dir, q);
  void* ptr = buf.ptr;
  buf.ptr = nullptr;
  cudaError_t e = cudaFree(ptr);
  const cudaError_t sticky = cudaGetLastError();  // a red zone found at the free
  if (e == cudaSuccess) e = sticky;
  if (e != cudaSuccess) throw BackendError(std::string("emu_test: caller workspace: ") + cudaGetErrorString(e));
}

// Autotuned dispatch on CUDA (the event timer, the per-device key): for calls
// that several variants accept, the first run times them all and matches the
// reference, the kept variant is one of them, and a second run times nothing.
// Returns the number of failures.
int check_autotune(bool quiet) {
  const Shape shapes[] = {conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1), conv2d_shape(1, 4, 20, 20, 13, 13, 1, 6)};
  int failed = 0;
  set_autotune(true);
  for (const Shape& s : shapes)
    for (Direction dir : {Direction::forward, Direction::grad_input, Direction::grad_weight})
      for (Layout layout : {Layout::nchw, Layout::nhwc}) {
        Params p;
        p.shape = s, p.layout = layout, p.device = Device::cuda;
        const std::vector<const Kernel*> cands = candidates(dir, p);
        if (cands.size() < 2) continue;
        check::Case c;
        c.shape = s, c.layout = layout, c.device = Device::cuda, c.seed = 5;
        std::string why;
        const size_t kept_before = autotune_entries().size();
        const uint64_t t0 = autotune::timed_calls();
        const check::Outcome first = check::run_case(dir, c);
        const uint64_t t1 = autotune::timed_calls();
        c.seed = 6;
        const check::Outcome second = check::run_case(dir, c);
        bool known = false;
        for (const Kernel* k : cands) known = known || first.kernel == k->name;
        if (!first.ok || !second.ok) why = first.ok ? second.message : first.message;
        else if (t1 - t0 != 4 * cands.size()) why = "timed " + std::to_string(t1 - t0) + " calls";
        else if (autotune::timed_calls() != t1) why = "the second call was timed again";
        else if (autotune_entries().size() != kept_before + 1) why = "no new kept choice";
        else if (!known || second.kernel != first.kernel) why = "kept '" + first.kernel + "', not a candidate";
        if (!why.empty()) {
          ++failed;
          std::printf("FAIL autotune %-11s %s %s: %s\n", to_string(dir), to_string(layout), s.str().c_str(),
                      why.c_str());
        } else if (!quiet) {
          std::printf("ok   autotune %-11s %s %s -> %s\n", to_string(dir), to_string(layout), s.str().c_str(),
                      first.kernel.c_str());
        }
      }
  for (const AutotuneEntry& e : autotune_entries())
    if (e.key.rfind("cuda:0 dwconv CPU emulation sm_00 | ", 0) != 0) {
      ++failed;
      std::printf("FAIL autotune key '%s'\n", e.key.c_str());
    }
  set_autotune(false);
  autotune_clear();
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int count = 40;
  uint64_t seed = 1;
  std::string filter;
  bool quiet = false;
  bool skip_wide = false;  // skip shapes with >= 1024 channels (slow under emulation)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--count") && i + 1 < argc)
      count = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--filter") && i + 1 < argc)
      filter = argv[++i];
    else if (!std::strcmp(argv[i], "--quiet"))
      quiet = true;
    else if (!std::strcmp(argv[i], "--skip-wide"))
      skip_wide = true;
    else {
      std::fprintf(stderr, "usage: emu_test [--count N] [--seed S] [--filter SUBSTRING] [--quiet] [--skip-wide]\n");
      return 2;
    }
  }
  std::vector<Shape> shapes = check::edge_shapes();
  // Suite-like shapes, small batch and channels (the emulation is slow).
  shapes.push_back(conv2d_shape(1, 4, 56, 56, 7, 7, 1, 3));
  shapes.push_back(conv2d_shape(1, 8, 30, 30, 3, 3, 2, 1));
  shapes.push_back(conv2d_shape(1, 8, 28, 28, 5, 5, 2, 2));
  shapes.push_back(conv2d_shape(2, 16, 7, 7, 7, 7, 1, 3));
  shapes.push_back(conv2d_shape(1, 4, 20, 20, 13, 13, 1, 6));
  shapes.push_back(conv2d_shape(1, 8, 12, 70, 3, 3, 1, 1));
  shapes.push_back(conv1d_shape(1, 16, 300, 4, 1, 0, 1, 1, true));
  shapes.push_back(conv1d_shape(1, 8, 100, 31, 1, 15));
  {
    Shape s = conv2d_shape(1, 8, 10, 12, 3, 3, 1, 1, 1, 2);  // multiplier 2 with 8 channels (vector widths)
    shapes.push_back(s);
  }
  // Large kernels with strides, dilations and multipliers (cuda_wgrad_nchw_tile, the kany tiles).
  {
    Shape a = conv2d_shape(2, 3, 29, 31, 13, 11, 2, 6, 2, 2);
    a.pad_bottom = 3, a.pad_right = 1;
    shapes.push_back(a);
    shapes.push_back(conv2d_shape(1, 2, 30, 30, 11, 11, 1, 15, 3, 1));
    shapes.push_back(conv2d_shape(1, 2, 70, 70, 33, 33, 3, 16, 1, 1));  // > 1024 taps: several tap groups
    shapes.push_back(conv1d_shape(2, 3, 500, 101, 3, 50, 2, 2, false));
    shapes.push_back(conv1d_shape(1, 4, 200, 120, 1, 0, 1, 1, true));
    shapes.push_back(conv2d_shape(5, 2, 9, 9, 11, 11, 1, 5));  // several images, one tile each
  }
  // More tiles than cuda_wgrad_nchw_tile has parts: 3 x 95 tiles in 143
  // parts of 2 (the last of 1), parts straddling images. It cannot be much
  // smaller (the parts aim at 2048 blocks), so only grad-weight runs on it.
  const size_t wgrad_only = shapes.size();
  shapes.push_back(conv1d_shape(3, 8, 6080, 101, 1, 50));
  // Strides >= 2^31 (valid when the output is 1 high / wide): the 32-bit
  // index path must not truncate them (needs_i64 in launch.cuh).
  {
    Shape s = conv2d_shape(1, 2, 5, 5, 3, 3, 1, 1);
    s.stride_h = s.stride_w = int64_t(1) << 32;
    shapes.push_back(s);
    s.stride_h = s.stride_w = (int64_t(1) << 32) - 3;
    shapes.push_back(s);
  }
  std::mt19937_64 rng(seed);
  for (int i = 0; i < count; ++i) shapes.push_back(check::random_shape(rng));

  const Direction dirs[] = {Direction::forward, Direction::grad_input, Direction::grad_weight, Direction::grad_bias};
  const DType dtypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
  const Layout layouts[] = {Layout::nchw, Layout::nhwc};
  std::map<std::string, int> runs, fails;
  int total = 0, failed = 0, idx = 0;
  for (const Shape& s : shapes) {
    ++idx;
    if (skip_wide && s.c >= 1024) continue;
    const auto t0 = std::chrono::steady_clock::now();
    for (Direction dir : dirs) {
      if (size_t(idx - 1) == wgrad_only && dir != Direction::grad_weight) continue;
      for (Layout layout : layouts)
        for (DType dtype : dtypes) {
          Params p;
          p.shape = s, p.dtype = dtype, p.layout = layout, p.device = Device::cuda;
          for (const Kernel* k : candidates(dir, p)) {
            if (!filter.empty() && std::string(k->name).find(filter) == std::string::npos) continue;
            check::Case c;
            c.shape = s, c.dtype = dtype, c.layout = layout, c.device = Device::cuda, c.kernel = k->name;
            c.seed = seed + uint64_t(idx), c.bias = (idx % 2) == 0;
            for (const bool caller_ws : {false, true}) {
              if (caller_ws && k->workspace == nullptr) continue;
              const char* how = caller_ws ? " (caller workspace at +1)" : "";
              check::Outcome o;
              try {
                o = caller_ws ? check::run_case(dir, c, with_odd_workspace) : check::run_case(dir, c);
              } catch (const std::exception& e) {
                o.ok = false;
                o.message = std::string("exception: ") + e.what();
              }
              ++total;
              ++runs[k->name];
              if (!o.ok) {
                ++failed;
                ++fails[k->name];
                std::printf("FAIL %-28s %-11s %s%s: %s (rel_err %.3g)\n", k->name, to_string(dir), c.str().c_str(),
                            how, o.message.c_str(), o.rel_err);
              } else if (!quiet) {
                std::printf("ok   %-28s %-11s %s%s rel_err %.3g\n", k->name, to_string(dir), c.str().c_str(), how,
                            o.rel_err);
              }
            }
          }
        }
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!quiet || sec > 5) std::printf("shape %d/%d %s: %.1fs\n", idx, int(shapes.size()), s.str().c_str(), sec);
  }
  std::printf("\n%-30s %6s %6s\n", "variant", "runs", "fails");
  for (const Kernel& k : kernels()) std::printf("%-30s %6d %6d\n", k.name, runs[k.name], fails[k.name]);
  std::printf("\n%d shapes, %d variant runs, %d failed\n", int(shapes.size()), total, failed);
  const int autotune_failed = filter.empty() ? check_autotune(quiet) : 0;
  if (filter.empty()) std::printf("autotune: %d failed\n", autotune_failed);
  return failed == 0 && autotune_failed == 0 ? 0 : 1;
}
