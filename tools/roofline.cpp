#include <cstdio>
#include "roofline.h"

#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cli.h"

namespace dwconv::cli {

std::vector<Direction> pass_directions(const std::string& pass) {
  if (pass == "fwd") return {Direction::forward};
  if (pass == "bwd_input") return {Direction::grad_input};
  if (pass == "bwd_weight") return {Direction::grad_weight};
  if (pass == "train") return {Direction::forward, Direction::grad_input, Direction::grad_weight, Direction::grad_bias};
  throw UsageError("dwconv bench: unknown pass '" + pass + "'");
}

namespace {

// Sum over output positions along one axis of the taps that read real input.
double valid_taps_1axis(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t dil, int64_t pad_lo) {
  double total = 0;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t base = o * stride - pad_lo;
    int64_t cnt = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = base + t * dil;
      cnt += (i >= 0 && i < in);
    }
    total += double(cnt);
  }
  return total;
}

}  // namespace

double valid_macs(const Shape& s) {
  const double th = valid_taps_1axis(s.h, s.out_h(), s.kh, s.stride_h, s.dil_h, s.pad_top);
  const double tw = valid_taps_1axis(s.w, s.out_w(), s.kw, s.stride_w, s.dil_w, s.pad_left);
  return double(s.n) * double(s.out_c()) * th * tw;
}

double direction_bytes(Direction dir, const Shape& s, DType dtype, bool bias) {
  const double e = double(dtype_size(dtype));
  const double in = double(s.input_elems()), out = double(s.output_elems()), w = double(s.weight_elems()),
               b = double(s.out_c());
  switch (dir) {
    case Direction::forward: return e * (in + w + (bias ? b : 0) + out);
    case Direction::grad_input: return e * (out + w + in);
    case Direction::grad_weight: return e * (out + in + w);
    case Direction::grad_bias: return e * (out + b);
  }
  return 0;
}

double direction_flops(Direction dir, const Shape& s) {
  if (dir == Direction::grad_bias) return double(s.output_elems());
  return 2.0 * valid_macs(s);
}

size_t llc_bytes() {
  // sysfs first: in some VMs sysconf reports the whole socket's L3 rather
  // than what one core's cache domain holds.
  for (const char* path : {"/sys/devices/system/cpu/cpu0/cache/index3/size", "/sys/devices/system/cpu/cpu0/cache/index2/size"}) {
    if (FILE* f = std::fopen(path, "r")) {
      long kib = 0;
      char unit = 0;
      const int got = std::fscanf(f, "%ld%c", &kib, &unit);
      std::fclose(f);
      if (got >= 1 && kib > 0) return size_t(kib) << (unit == 'M' ? 20 : 10);
    }
  }
  long v = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
  v = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (v <= 0) v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  return v > 0 ? size_t(v) : size_t(32) << 20;
}

double measure_cpu_copy_gbps(size_t bytes) {
  bytes &= ~size_t(4095);
  std::unique_ptr<char, decltype(&std::free)> a(static_cast<char*>(std::aligned_alloc(4096, bytes)), &std::free);
  std::unique_ptr<char, decltype(&std::free)> b(static_cast<char*>(std::aligned_alloc(4096, bytes)), &std::free);
  if (!a || !b) return 0;
  char* src = a.get();
  char* dst = b.get();
  // First touch by the threads that will copy (NUMA), and fault the pages in.
  auto copy = [&](bool init) {
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      const size_t chunk = (bytes / size_t(nt) + 4095) & ~size_t(4095);
      const size_t lo = std::min(bytes, chunk * size_t(t)), hi = std::min(bytes, lo + chunk);
      if (init) {
        std::memset(src + lo, 1, hi - lo);
        std::memset(dst + lo, 0, hi - lo);
      } else {
        std::memcpy(dst + lo, src + lo, hi - lo);
      }
    }
  };
  copy(true);
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    copy(false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    std::swap(src, dst);
  }
  return 2.0 * double(bytes) / best / 1e9;
}

namespace {

// Independent accumulators: more than FMA latency x FMA ports (4 x 2), and
// few enough to stay in registers with the two operands (32 zmm / 16 ymm).
constexpr int kAcc = 16;
constexpr int kAcc2 = 12;

__attribute__((target("avx512f"))) double fma_avx512(long iters) {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  double r = 0;
  for (float f : out) r += f;
  return r;
}

__attribute__((target("avx2,fma"))) double fma_avx2(long iters) {
  __m256 acc[kAcc2];
  for (int i = 0; i < kAcc2; ++i) acc[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < kAcc2; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kAcc2; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  double r = 0;
  for (float f : out) r += f;
  return r;
}

double fma_scalar(long iters) {
  float acc[kAcc * 4];
  for (int i = 0; i < kAcc * 4; ++i) acc[i] = float(i) * 1e-3f;
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < kAcc * 4; ++i) acc[i] = acc[i] * 0.999999f + 1e-7f;
  double r = 0;
  for (float f : acc) r += f;
  return r;
}

}  // namespace

double measure_cpu_fma_gflops(std::string* isa) {
  __builtin_cpu_init();
  double flops_per_iter = 0;
  double (*fn)(long) = nullptr;
  if (__builtin_cpu_supports("avx512f")) {
    fn = fma_avx512;
    flops_per_iter = 2.0 * kAcc * 16;
    if (isa) *isa = "avx512f";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    fn = fma_avx2;
    flops_per_iter = 2.0 * kAcc2 * 8;
    if (isa) *isa = "avx2+fma";
  } else {
    fn = fma_scalar;
    flops_per_iter = 2.0 * kAcc * 4;
    if (isa) *isa = "scalar";
  }
  // Every thread times many short trials of its own (about 0.5 ms each) and
  // keeps its best rate; the peak is the sum over the threads. Short trials
  // and per-thread timing keep a shared, loaded machine from hiding the
  // ceiling (a trial that ran undisturbed exists).
  const long iters = 60000;
  double total = 0, sink = 0;
#pragma omp parallel reduction(+ : total, sink)
  {
    double best = 0;
    sink += fn(iters);  // warm-up (frequency ramp)
    for (int r = 0; r < 60; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      sink += fn(iters);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, flops_per_iter * double(iters) / s / 1e9);
    }
    total += best;
  }
  if (sink == 12345.678) std::abort();  // keep the results alive
  return total;
}

Machine measure_cpu_machine(int threads) {
  Machine m;
  std::string isa;
  // Buffers well beyond the last-level cache (capped to keep the run short).
  const size_t bytes = std::min<size_t>(std::max<size_t>(2 * llc_bytes(), size_t(256) << 20), size_t(512) << 20);
  m.bw_gbps = measure_cpu_copy_gbps(bytes);
  m.peak_gflops = measure_cpu_fma_gflops(&isa);
  const int nt = threads > 0 ? threads : omp_get_max_threads();
  m.device = "cpu: " + std::to_string(nt) + " thread" + (nt == 1 ? "" : "s") + ", " + isa;
  return m;
}

double roofline_fraction(double bytes, double flops, double ms, const Machine& m) {
  if (!(ms > 0) || !(m.bw_gbps > 0) || !(m.peak_gflops > 0)) return 0;
  const double t = std::max(bytes / (m.bw_gbps * 1e9), flops / (m.peak_gflops * 1e9));
  return t / (ms * 1e-3);
}

}  // namespace dwconv::cli
