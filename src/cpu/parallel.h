// The CPU kernels' one way into OpenMP.
#pragma once

#include <omp.h>

namespace dwconv::cpu {

// Runs body() on `threads` OpenMP threads, or calls it directly on one: a
// parallel region of one thread still pays libgomp's barrier wake-ups (a
// futex syscall at its start, end and every barrier inside: 0.34 us for an
// empty region and 0.60 us with one barrier on the Zen 4 build machine,
// where a 16-channel 1x1 NHWC call cost 1.5 us in all; calls below the
// Python package's grain run on one thread). Called directly outside any
// active region, the OpenMP constructs in body (omp for, barrier,
// omp_get_thread_num / omp_get_num_threads) behave as in a team of one.
// Inside a caller's active region (a caller's parallel loop over samples,
// each calling dwconv on one thread) they would bind to the caller's team,
// so there body gets a region of its own as before.
template <class F>
inline void parallel_region(int threads, F&& body) {
  if (threads <= 1 && !omp_in_parallel()) {
    body();
    return;
  }
#pragma omp parallel num_threads(threads)
  body();
}

}  // namespace dwconv::cpu
