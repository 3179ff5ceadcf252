// Opt-in autotuning for dispatch: times the candidates of a kind of call
// once and keeps the fastest (see set_autotune in dwconv.h).
#include "core/autotune.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "cpu/isa.h"
#include "cuda/autotune.h"

namespace dwconv {
namespace autotune {
namespace {

constexpr int kTimedRuns = 3;  // after one warm-up; the median is kept

struct Kept {
  std::string kernel;
  std::vector<std::pair<std::string, double>> times_ms;  // fastest first
};

struct Cache {
  std::mutex m;
  std::map<std::string, Kept> kept;
};
Cache& cache() {
  static Cache c;
  return c;
}

// -1 until DWCONV_AUTOTUNE is read; then 0 or 1.
std::atomic<int> g_on{-1};
std::once_flag g_env_once;
std::atomic<uint64_t> g_timed_calls{0};

void read_env_once() {
  std::call_once(g_env_once, [] {
    int unread = -1;
    g_on.compare_exchange_strong(unread, parse_flag(std::getenv("DWCONV_AUTOTUNE")) ? 1 : 0);
  });
}

bool on() {
  read_env_once();
  return g_on.load(std::memory_order_relaxed) == 1;
}

size_t need(const Kernel& k, const Params& p) { return k.workspace ? k.workspace(p) : 0; }

const Kernel* find(const std::vector<const Kernel*>& ks, const std::string& name) {
  for (const Kernel* k : ks)
    if (name == k->name) return k;
  return nullptr;
}

double cpu_ms(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One warm-up, then the median of kTimedRuns timed calls.
double median_ms(const Params& p, const std::function<void()>& fn) {
  ++g_timed_calls;  // counted before the call, so that one that throws counts too
  fn();
  double ms[kTimedRuns];
  for (double& t : ms) {
    ++g_timed_calls;
    t = p.device == Device::cuda ? cuda::time_on_stream_ms(p.stream, fn) : cpu_ms(fn);
  }
  std::sort(ms, ms + kTimedRuns);
  return ms[kTimedRuns / 2];
}

// Times every candidate on p's buffers; an empty result when all threw.
Kept tune(const std::vector<const Kernel*>& cands, const Params& p) {
  Params q = p;
  // One scratch buffer for all of them, as dispatch would allocate per call.
  std::unique_ptr<unsigned char[]> scratch;
  if (p.workspace == nullptr && p.device == Device::cpu) {
    size_t most = 0;
    for (const Kernel* k : cands) most = std::max(most, need(*k, p));
    if (most > 0) {
      scratch.reset(new unsigned char[most]);
      q.workspace = scratch.get();
      q.workspace_bytes = most;
    }
  }
  Kept r;
  for (const Kernel* k : cands) {
    try {
      r.times_ms.emplace_back(k->name, median_ms(q, [&] { k->run(q); }));
    } catch (const std::exception&) {
      // Not a choice then; if every candidate throws, dispatch runs the
      // heuristic's choice, which reports its own error.
    }
  }
  std::stable_sort(r.times_ms.begin(), r.times_ms.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  if (!r.times_ms.empty()) r.kernel = r.times_ms.front().first;
  return r;
}

}  // namespace

bool parse_flag(const char* value) {
  if (value == nullptr) return false;
  std::string v(value);
  for (char& ch : v) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return v == "1" || v == "true" || v == "on" || v == "yes";
}

uint64_t timed_calls() { return g_timed_calls.load(); }

void keep_for_testing(const std::string& key, const std::string& kernel) {
  std::lock_guard<std::mutex> lock(cache().m);
  cache().kept[key] = Kept{kernel, {}};
}

std::string key(Direction dir, const Params& p) {
  std::string dev;
  if (p.device == Device::cuda) {
    dev = cuda::device_key();
  } else {
    // p.threads = 0 means OpenMP's default, which can change between calls.
#ifdef _OPENMP
    const int t = p.threads > 0 ? p.threads : omp_get_max_threads();
#else
    const int t = p.threads > 0 ? p.threads : 1;
#endif
    dev = "cpu " + cpu::active_target() + " " + std::to_string(t) + (t == 1 ? " thread" : " threads");
  }
  return dev + " | " + to_string(dir) + " " + to_string(p.dtype) + " " + to_string(p.layout) + " " + p.shape.str() +
         (p.deterministic ? " det" : " nondet");
}

const Kernel* choose(Direction dir, const Params& p, bool may_tune) {
  if (p.kernel != nullptr || !on()) return nullptr;
  std::vector<const Kernel*> cands = candidates(dir, p);
  if (p.workspace != nullptr)
    cands.erase(
        std::remove_if(cands.begin(), cands.end(), [&](const Kernel* k) { return need(*k, p) > p.workspace_bytes; }),
        cands.end());
  if (cands.empty()) return nullptr;
  if (cands.size() == 1) return cands.front();

  const std::string k = key(dir, p);
  {
    std::lock_guard<std::mutex> lock(cache().m);
    auto it = cache().kept.find(k);
    if (it != cache().kept.end()) {
      // A variant's score may depend on the pointers' alignment or on the
      // workspace given, so the kept one may not accept this call: then the
      // heuristic's choice, without tuning again.
      const Kernel* kept = find(cands, it->second.kernel);
      return kept ? kept : cands.front();
    }
  }
  if (!may_tune) return nullptr;
  if (p.device == Device::cuda && cuda::stream_capturing(p.stream)) return cands.front();

  Kept r;
  try {
    r = tune(cands, p);
  } catch (const std::bad_alloc&) {
    return cands.front();  // no scratch for the largest candidate: leave it to the heuristic's
  }
  if (r.times_ms.empty()) return cands.front();
  std::lock_guard<std::mutex> lock(cache().m);
  // Another thread may have tuned the same key meanwhile: the first one stays.
  const Kept& kept = cache().kept.emplace(k, std::move(r)).first->second;
  const Kernel* winner = find(cands, kept.kernel);
  return winner ? winner : cands.front();
}

std::optional<size_t> workspace_need(Direction dir, const Params& p) {
  if (p.kernel != nullptr || !on()) return std::nullopt;
  const std::vector<const Kernel*> cands = candidates(dir, p);
  if (cands.empty()) return std::nullopt;
  if (cands.size() > 1) {
    const std::string k = key(dir, p);
    std::lock_guard<std::mutex> lock(cache().m);
    auto it = cache().kept.find(k);
    if (it != cache().kept.end())
      if (const Kernel* kept = find(cands, it->second.kernel)) return need(*kept, p);
  }
  // Not tuned yet (or the kept variant does not accept p): whichever run() picks.
  size_t most = 0;
  for (const Kernel* c : cands) most = std::max(most, need(*c, p));
  return most;
}

}  // namespace autotune

void set_autotune(bool on) {
  autotune::read_env_once();  // so that the environment cannot override this later
  autotune::g_on.store(on ? 1 : 0);
}

bool autotune_enabled() { return autotune::on(); }

void autotune_clear() {
  std::lock_guard<std::mutex> lock(autotune::cache().m);
  autotune::cache().kept.clear();
}

std::vector<AutotuneEntry> autotune_entries() {
  std::lock_guard<std::mutex> lock(autotune::cache().m);
  std::vector<AutotuneEntry> out;
  for (const auto& [k, v] : autotune::cache().kept) out.push_back(AutotuneEntry{k, v.kernel, v.times_ms});
  return out;
}

}  // namespace dwconv
