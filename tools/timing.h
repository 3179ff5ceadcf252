// How `dwconv bench` times a callable: warm-up, then timed iterations, median.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace dwconv::cli {

struct TimingPolicy {
  int warmup = 2;            // untimed calls before timing
  int iters = 10;            // timed calls (at most)
  double time_limit_s = 2;   // stop timing once this much time was spent (after >= min(iters, 3) calls)
  double slow_call_s = 1.0;  // a warm-up call slower than this: no more warm-up, 1 timed call
  double very_slow_call_s = 10.0;  // a warm-up call slower than this is the measurement (1 call)
};

struct Timing {
  double ms = 0;  // median of the timed calls
  int calls = 0;  // timed calls
};

// fn(i) runs call number i (warm-up calls included), i selects the rotated
// buffer set. For device work fn must return only when the work is done.
inline Timing time_calls(const TimingPolicy& pol, const std::function<void(int)>& fn) {
  using clock = std::chrono::steady_clock;
  int call = 0;
  bool slow = false;
  for (int w = 0; w < std::max(pol.warmup, 0); ++w) {
    const auto t0 = clock::now();
    fn(call++);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > pol.very_slow_call_s) return Timing{s * 1e3, 1};
    if (s > pol.slow_call_s) {
      slow = true;
      break;
    }
  }
  std::vector<double> ms;
  const int want = slow ? 1 : std::max(pol.iters, 1);
  const int min_calls = std::min(want, 3);
  double spent = 0;
  for (int i = 0; i < want; ++i) {
    const auto t0 = clock::now();
    fn(call++);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    ms.push_back(s * 1e3);
    spent += s;
    if (s > pol.slow_call_s && pol.warmup == 0) break;  // no warm-up asked: the first call decides
    if (int(ms.size()) >= min_calls && spent > pol.time_limit_s) break;
  }
  std::sort(ms.begin(), ms.end());
  Timing t;
  t.calls = int(ms.size());
  const size_t n = ms.size();
  t.ms = (n % 2) ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  return t;
}

}  // namespace dwconv::cli
