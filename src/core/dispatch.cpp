// Picks a kernel variant from the one list (include/dwconv/kernels.h): the
// forced one, the autotuned one (core/autotune.h) or the highest score.
#include <algorithm>
#include <cstring>
#include <memory>

#include "core/autotune.h"
#include "dwconv/kernels.h"

namespace dwconv {

const std::vector<Kernel>& kernels() {
  static const std::vector<Kernel> all = [] {
    std::vector<Kernel> v = cpu_kernels();
    std::vector<Kernel> g = cuda_kernels();
    v.insert(v.end(), g.begin(), g.end());
    return v;
  }();
  return all;
}

std::vector<const Kernel*> candidates(Direction dir, const Params& p) {
  std::vector<std::pair<int, const Kernel*>> scored;
  for (const Kernel& k : kernels()) {
    if (k.device != p.device || k.direction != dir) continue;
    const int s = k.score(p);
    if (s >= 0) scored.emplace_back(s, &k);
  }
  std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<const Kernel*> out;
  for (auto& e : scored) out.push_back(e.second);
  return out;
}

namespace {

const Kernel& select(Direction dir, const Params& p) {
  if (p.kernel != nullptr) {
    bool known = false;
    for (const Kernel& k : kernels()) {
      if (std::strcmp(k.name, p.kernel) != 0) continue;
      known = true;
      if (k.device == p.device && k.direction == dir && k.score(p) >= 0) return k;
    }
    throw Error(std::string("dwconv: kernel '") + p.kernel + "' " +
                (known ? "does not accept " + std::string(to_string(dir)) + " on " + p.shape.str() +
                             " (" + to_string(p.dtype) + ", " + to_string(p.layout) + ", " +
                             to_string(p.device) + ")"
                       : std::string("is not a kernel of this build")));
  }
  auto c = candidates(dir, p);
  if (c.empty()) {
    if (p.device == Device::cuda && cuda_kernels().empty())
      throw Error("dwconv: device is cuda but this build has no CUDA backend");
    throw Error(std::string("dwconv: no kernel for ") + to_string(dir) + " on " + p.shape.str() + " (" +
                to_string(p.dtype) + ", " + to_string(p.layout) + ", " + to_string(p.device) + ")");
  }
  return *c.front();
}

void run_kernel(const Kernel& k, const Params& p) {
  if (k.workspace != nullptr && p.workspace != nullptr) {
    const size_t need_given = k.workspace(p);
    if (p.workspace_bytes < need_given)
      throw Error("dwconv: workspace_bytes is " + std::to_string(p.workspace_bytes) + " but kernel " + k.name +
                  " needs " + std::to_string(need_given));
  }
  const size_t need = k.workspace ? k.workspace(p) : 0;
  if (need > 0 && p.workspace == nullptr && p.device == Device::cpu) {
    // Convenience for callers that do not manage scratch; the hot path passes its own.
    std::unique_ptr<unsigned char[]> scratch(new unsigned char[need]);
    Params q = p;
    q.workspace = scratch.get();
    q.workspace_bytes = need;
    k.run(q);
    return;
  }
  k.run(p);  // CUDA variants allocate on their stream when given no workspace
}

}  // namespace

std::string selected_kernel(Direction dir, const Params& p) {
  validate(dir, p);
  const Kernel* tuned = autotune::choose(dir, p, /*may_tune=*/false);
  return (tuned ? *tuned : select(dir, p)).name;
}

size_t workspace_size(Direction dir, const Params& p) {
  validate(dir, p);
  if (const auto need = autotune::workspace_need(dir, p)) return *need;
  const Kernel& k = select(dir, p);
  return k.workspace ? k.workspace(p) : 0;
}

void run(Direction dir, const Params& p) {
  validate(dir, p);
  const Kernel* tuned = autotune::choose(dir, p, /*may_tune=*/true);
  run_kernel(tuned ? *tuned : select(dir, p), p);
}

}  // namespace dwconv
