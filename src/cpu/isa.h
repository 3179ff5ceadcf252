// Run-time ISA selection for the SIMD CPU kernels (Google Highway dynamic
// dispatch). One binary holds every compiled target; the best one the CPU
// supports runs, capped by the environment variable DWCONV_ISA or by
// force_target():
//   "avx512" (Highway AVX3), "avx2", "sse4", "emu128" / "scalar" (portable
//   fallback), "best" / "" (no cap).
// A cap names the best target allowed: "avx2" on an AVX-512 machine runs the
// AVX2 code; on a CPU without the named ISA the next lower supported one runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dwconv::cpu {

// Targets compiled into this binary, best first ("avx512", "avx2", "sse4", "emu128").
std::vector<std::string> compiled_targets();

// Targets that both are compiled and run on this CPU, best first.
std::vector<std::string> supported_targets();

// Caps the target used by every later SIMD call; null or "best" removes the
// cap (DWCONV_ISA is then ignored too). Throws dwconv::Error for an unknown name.
// Not thread-safe against kernels running concurrently: call it between runs.
void force_target(const char* name);

// The target the SIMD kernels use now.
std::string active_target();

// Highway target bits allowed now (internal: used by the dispatch in simd_*.cpp).
int64_t allowed_target_bits();

// Whether the cap allows Highway target `bit` (a HWY_* target bit), whether
// or not this build compiled it and the CPU has it: for code outside
// Highway that stands in for a target (x86_nhwc_bf16dp.cpp), which checks
// the CPU itself. The sanitizer build leaves Highway's AVX-512 target out
// to save compile time; such code still runs there.
bool cap_allows(int64_t bit);

// Bytes of L2 cache, as the C library reports it (read once), clamped to
// 256 KiB - 2 MiB, or 512 KiB where it reports none. The NHWC core's plans
// size their scratch by it (simd_plan.h). Assumes one thread per core (two
// hyperthreads would share it).
int64_t l2_cache_bytes();

// Bytes of the last-level cache (sysfs's index3, else sysconf's L3, else
// 32 MiB), read once. A call whose data exceeds it leaves no output in the
// cache for the next layer, so the NHWC core streams that output past the
// cache (NhwcPlan::stream).
int64_t llc_bytes();
// Tests: plan as if the last-level cache held `bytes` (0: what the machine
// reports again).
void override_llc_bytes(int64_t bytes);

}  // namespace dwconv::cpu

// Index into a HWY_EXPORT table for the allowed targets. A macro so that it
// expands with the HWY_TARGETS of the including translation unit (after
// hwy/highway.h).
#define DWCONV_HWY_INDEX()                                                                              \
  (hwy::Num0BitsBelowLS1Bit_Nonzero64(static_cast<uint64_t>(                                            \
      (HWY_CHOSEN_TARGET_SHIFT(::dwconv::cpu::allowed_target_bits()) | HWY_CHOSEN_TARGET_MASK_SCALAR) & \
      HWY_CHOSEN_TARGET_MASK_TARGETS)))
#define DWCONV_HWY_CALL(FUNC_NAME) (*(HWY_DISPATCH_TABLE(FUNC_NAME)[DWCONV_HWY_INDEX()]))
