// Work and traffic of a pass, and this machine's ceilings (copy bandwidth and
// fp32 FMA peak), measured once per run.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dwconv/dwconv.h"

namespace dwconv::cli {

// Directions a benchmark pass runs, in order.
std::vector<Direction> pass_directions(const std::string& pass);  // fwd | bwd_input | bwd_weight | train

// Minimal compulsory traffic of one direction: every tensor it reads once,
// every tensor it writes once (the bias of the forward counted when present).
double direction_bytes(Direction dir, const Shape& s, DType dtype, bool bias);
// 2 x multiply-adds over the taps that land inside the input (padding taps
// are not counted); grad_bias counts one add per grad_output element.
double direction_flops(Direction dir, const Shape& s);
// The number of (output, tap) pairs whose tap reads a real input element.
double valid_macs(const Shape& s);

struct Machine {
  std::string device;      // "cpu: 2 threads, AVX-512" / "cuda: ..."
  double bw_gbps = 0;      // bytes read + written per second / 1e9
  double peak_gflops = 0;  // fp32 FMA: 2 flops per FMA lane
};

// Multithreaded copy of large buffers (bytes read + written / s) and a
// multithreaded FMA loop with independent accumulators; best of a few runs.
double measure_cpu_copy_gbps(size_t bytes_per_buffer);
double measure_cpu_fma_gflops(std::string* isa);
Machine measure_cpu_machine(int threads);

// Fraction of the roofline reached: max(bytes / bw, flops / peak) / time.
double roofline_fraction(double bytes, double flops, double ms, const Machine& m);

// Last-level cache size in bytes (sysconf; 32 MiB when unknown).
size_t llc_bytes();

}  // namespace dwconv::cli
