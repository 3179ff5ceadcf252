// The CUDA side of autotuning (src/core/autotune.cpp): the event timer, the
// graph-capture query and the device part of the cache key. Not part of the
// public API. Without CUDA, src/cuda/stub.cpp defines them; nothing reaches
// them there, since such a build has no CUDA variant to tune.
#pragma once

#include <functional>
#include <string>

namespace dwconv::cuda {

// Milliseconds between two CUDA events recorded on `stream` (a cudaStream_t,
// null = the default stream) before and after fn(), which enqueues work on
// it; waits for the second event. Throws dwconv::BackendError.
double time_on_stream_ms(void* stream, const std::function<void()>& fn);

// True while `stream` is being captured into a graph, where timing (an
// event synchronisation) is not allowed; also true when the query fails.
bool stream_capturing(void* stream);

// The current device as a key: "cuda:0 NVIDIA H100 80GB HBM3 sm_90".
std::string device_key();

}  // namespace dwconv::cuda
