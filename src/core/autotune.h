// Opt-in autotuning for dispatch (the switch and the entries are public, in
// dwconv.h; this is what dispatch.cpp and the tests use). Not part of the
// public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "dwconv/kernels.h"

namespace dwconv::autotune {

// The variant run(dir, p) should use, or null when dispatch's own choice
// stands: autotuning is off, p forces a kernel, no candidate fits the
// caller's workspace (dispatch then reports the workspace error), or
// may_tune is false and nothing is kept for p's key. With may_tune, a key
// with nothing kept is tuned here, on p's buffers. p must be valid.
const Kernel* choose(Direction dir, const Params& p, bool may_tune);

// workspace_size(dir, p) under autotuning (see dwconv.h), or nullopt when
// autotuning does not apply to p (off, forced kernel, no candidate).
std::optional<size_t> workspace_need(Direction dir, const Params& p);

// The cache key of p; see dwconv.h for what it holds.
std::string key(Direction dir, const Params& p);

// Kernel calls made (or attempted) to time candidates, warm-up included,
// since the process started. Tests use it to see which calls were timed.
uint64_t timed_calls();

// Stores `kernel` as the kept choice for `key`, as if tuning had picked it
// (no times). Tests use it for a kept variant that no longer accepts a call.
void keep_for_testing(const std::string& key, const std::string& kernel);

// The value of DWCONV_AUTOTUNE as a flag: "1", "true", "on", "yes" (any
// case) are on; anything else, null and "" included, is off.
bool parse_flag(const char* value);

}  // namespace dwconv::autotune
