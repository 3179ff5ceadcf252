// Machine ceilings of the current CUDA device, for the benchmark's roofline
// columns (tools/cudnn_baseline.cpp). Not part of the public API. Each call
// synchronises the device; results are the best of a few timed runs.
#pragma once

#include <cstddef>
#include <string>

namespace dwconv::cuda {

// Device-to-device copy through a 16-byte-per-thread grid-stride kernel:
// (bytes read + bytes written) / time, in GB/s (1e9 bytes). `bytes` is the
// size of each of the two buffers (default 1 GiB, reduced to a quarter of
// the free memory when less is free).
double probe_copy_gbps(size_t bytes = size_t(1) << 30);

// fp32 FMA throughput: every thread runs 8 independent FMA chains; counts 2
// flops per FMA, in GFLOP/s.
double probe_fma_gflops();

// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 50 MiB L2), driver 13.0, runtime 13.0"
std::string probe_device_description();

// L2 cache size of the current device in bytes (0 when unknown).
size_t probe_l2_bytes();

}  // namespace dwconv::cuda
