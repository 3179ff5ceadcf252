// Target capping for Highway dynamic dispatch; see isa.h.
#include "cpu/isa.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <unistd.h>

#include "dwconv/dwconv.h"
#include "hwy/highway.h"
#include "hwy/targets.h"

namespace dwconv::cpu {
namespace {

struct Named {
  int64_t bit;
  const char* name;
};
// Best first. Lower Highway bits are better targets.
const Named kTargets[] = {
    {HWY_AVX3_DL, "avx512_dl"}, {HWY_AVX3, "avx512"},   {HWY_AVX2, "avx2"},     {HWY_SSE4, "sse4"},
    {HWY_SSSE3, "ssse3"},       {HWY_EMU128, "emu128"}, {HWY_SCALAR, "scalar"},
};
constexpr int64_t kFallback = HWY_EMU128 | HWY_SCALAR;

int64_t cap_from_name(const char* name) {
  if (name == nullptr || name[0] == '\0' || std::strcmp(name, "best") == 0 || std::strcmp(name, "auto") == 0)
    return ~int64_t(0);
  if (std::strcmp(name, "scalar") == 0 || std::strcmp(name, "emu128") == 0) return kFallback;
  if (std::strcmp(name, "avx3") == 0) name = "avx512";
  for (const Named& t : kTargets)
    if (std::strcmp(t.name, name) == 0) return ~(t.bit - 1);  // this target and every worse one
  std::string all;
  for (const Named& t : kTargets) all += std::string(all.empty() ? "" : ", ") + t.name;
  throw Error(std::string("dwconv: unknown ISA '") + name + "'; expected one of: best, " + all);
}

std::atomic<int64_t> g_cap{0};  // 0: not initialised yet
std::once_flag g_env_once;

int64_t cap() {
  std::call_once(g_env_once, [] {
    int64_t expected = 0;
    int64_t c = ~int64_t(0);
    if (const char* env = std::getenv("DWCONV_ISA")) {
      try {
        c = cap_from_name(env);
      } catch (const Error&) {
        c = ~int64_t(0);  // an unknown value is ignored rather than failing every call
      }
    }
    g_cap.compare_exchange_strong(expected, c);
  });
  return g_cap.load(std::memory_order_relaxed);
}

int64_t cpu_bits() {
  static const int64_t bits = hwy::SupportedTargets() | kFallback;
  return bits;
}

}  // namespace

std::vector<std::string> compiled_targets() {
  std::vector<std::string> v;
  for (const Named& t : kTargets)
    if (HWY_TARGETS & t.bit) v.push_back(t.name);
  return v;
}

std::vector<std::string> supported_targets() {
  std::vector<std::string> v;
  for (const Named& t : kTargets)
    if ((HWY_TARGETS & t.bit) && (cpu_bits() & t.bit)) v.push_back(t.name);
  return v;
}

void force_target(const char* name) {
  const int64_t c = cap_from_name(name);
  cap();  // consume the environment first so it cannot override this later
  g_cap.store(c);
}

int64_t allowed_target_bits() { return cpu_bits() & HWY_TARGETS & cap(); }

bool cap_allows(int64_t bit) { return (cap() & bit) != 0; }

int64_t l2_cache_bytes() {
  static const int64_t bytes = [] {
    int64_t v = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    // Clamped to what cache-size-dependent plans were measured around:
    // some VMs report no L2, or the host's, or a shared cache's size.
    return v > 0 ? std::clamp<int64_t>(v, int64_t(256) << 10, int64_t(2) << 20) : int64_t(512) << 10;
  }();
  return bytes;
}

static std::atomic<int64_t> llc_override{0};  // override_llc_bytes

void override_llc_bytes(int64_t bytes) { llc_override.store(bytes); }

int64_t llc_bytes() {
  if (const int64_t o = llc_override.load(); o > 0) return o;
  static const int64_t bytes = [] {
    // sysfs first: some VMs' sysconf reports the whole socket's L3.
    int level = 0;
    if (FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/level", "r")) {
      if (std::fscanf(f, "%d", &level) != 1) level = 0;
      std::fclose(f);
    }
    if (FILE* f = level == 3 ? std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r") : nullptr) {
      long kib = 0;
      char unit = 0;
      const int got = std::fscanf(f, "%ld%c", &kib, &unit);
      std::fclose(f);
      if (got >= 1 && kib > 0) return int64_t(kib) << (unit == 'M' ? 20 : 10);
    }
    int64_t v = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
    v = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    return v > 0 ? v : int64_t(32) << 20;
  }();
  return bytes;
}

std::string active_target() {
  const int64_t a = allowed_target_bits();
  for (const Named& t : kTargets)
    if (a & t.bit) return t.name;
  return (HWY_TARGETS & HWY_EMU128) ? "emu128" : "scalar";
}

}  // namespace dwconv::cpu
