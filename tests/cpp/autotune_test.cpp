// Autotuning in dispatch (set_autotune, dwconv.h) on the CPU: results still
// match the reference, a kind of call is timed once, the key separates
// shapes and thread counts, forced kernels and single candidates are not
// timed, the caller's workspace bounds the candidates, workspace_size covers
// the choice, a kept variant that no longer accepts a call falls back to the
// heuristic, concurrent callers agree, and with autotuning off nothing
// changes.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/autotune.h"
#include "sweep.h"

#ifdef DWCONV_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dwconv::testing {
namespace {

// Restores the global switch and empties the cache around every test.
class Autotune : public ::testing::Test {
 protected:
  void SetUp() override {
    was_on_ = autotune_enabled();
    autotune_clear();
    set_autotune(true);
  }
  void TearDown() override {
    autotune_clear();
    set_autotune(was_on_);
  }

 private:
  bool was_on_ = false;
};

// Pointers that validate() accepts; only candidates() and selected_kernel()
// see them, nothing dereferences them.
Params shape_params(const Shape& s, Layout layout, DType dtype = DType::f32, int threads = 0) {
  static float dummy[16];
  Params p;
  p.shape = s, p.layout = layout, p.dtype = dtype, p.threads = threads;
  p.input = p.weight = p.grad_output = dummy;
  p.output = p.grad_input = p.grad_weight = p.grad_bias = dummy;
  return p;
}

std::vector<std::string> candidate_names(Direction dir, const Params& p) {
  std::vector<std::string> v;
  for (const Kernel* k : candidates(dir, p)) v.push_back(k->name);
  return v;
}

size_t need_of(Direction dir, const Params& p, const std::string& name) {
  for (const Kernel* k : candidates(dir, p))
    if (name == k->name) return k->workspace ? k->workspace(p) : 0;
  ADD_FAILURE() << name << " is not a candidate";
  return 0;
}

check::Case make_case(const Shape& s, Layout layout, uint64_t seed, DType dtype = DType::f32) {
  check::Case c;
  c.shape = s, c.layout = layout, c.dtype = dtype, c.seed = seed, c.bias = true;
  return c;
}

// Runs through dwconv::run with a caller workspace of `bytes` bytes.
check::Runner with_workspace(std::vector<unsigned char>& buf, size_t bytes) {
  buf.assign(bytes + 1, 0);
  return [&buf, bytes](Direction dir, const Params& p) {
    Params q = p;
    q.workspace = buf.data();
    q.workspace_bytes = bytes;
    run(dir, q);
  };
}

struct Combo {
  Direction dir;
  Shape shape;
  Layout layout;
};

// Calls that two or more CPU variants accept (the generic one and the SIMD
// ones; k31 NCHW forward also has the dot-product variant).
std::vector<Combo> multi_candidate_combos() {
  return {{Direction::forward, conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1), Layout::nchw},
          {Direction::forward, conv2d_shape(1, 4, 20, 20, 31, 31, 1, 15), Layout::nchw},
          {Direction::grad_input, conv2d_shape(2, 16, 14, 14, 7, 7, 1, 3), Layout::nchw},
          {Direction::grad_weight, conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1), Layout::nhwc},
          {Direction::forward, conv2d_shape(2, 8, 16, 16, 5, 5, 2, 2), Layout::nhwc}};
}

TEST_F(Autotune, TunesOnceKeepsACandidateAndMatchesReference) {
  for (const Combo& cb : multi_candidate_combos()) {
    SCOPED_TRACE(std::string(to_string(cb.dir)) + " " + to_string(cb.layout) + " " + cb.shape.str());
    autotune_clear();
    const Params p = shape_params(cb.shape, cb.layout);
    const std::vector<std::string> names = candidate_names(cb.dir, p);
    ASSERT_GE(names.size(), 2u);

    const uint64_t before = autotune::timed_calls();
    const check::Outcome first = check::run_case(cb.dir, make_case(cb.shape, cb.layout, 11));
    EXPECT_TRUE(first.ok) << first.message;
    EXPECT_LE(first.rel_err, 1e-5);
    // One warm-up and three timed calls per candidate.
    EXPECT_EQ(autotune::timed_calls() - before, 4 * names.size());

    const std::vector<AutotuneEntry> e = autotune_entries();
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].key, autotune::key(cb.dir, p));
    EXPECT_NE(std::find(names.begin(), names.end(), e[0].kernel), names.end()) << e[0].kernel;
    ASSERT_EQ(e[0].times_ms.size(), names.size());
    std::set<std::string> timed;
    for (const auto& [name, ms] : e[0].times_ms) {
      timed.insert(name);
      EXPECT_TRUE(std::isfinite(ms) && ms >= 0) << name << " " << ms;
    }
    EXPECT_EQ(timed, std::set<std::string>(names.begin(), names.end()));
    EXPECT_EQ(e[0].kernel, e[0].times_ms.front().first);  // the fastest
    for (size_t i = 1; i < e[0].times_ms.size(); ++i) EXPECT_LE(e[0].times_ms[i - 1].second, e[0].times_ms[i].second);
    EXPECT_EQ(first.kernel, e[0].kernel);  // run_case asks selected_kernel after the run

    // Same kind of call, other buffers and values: the kept variant, no timing.
    const uint64_t after_tuning = autotune::timed_calls();
    const check::Outcome second = check::run_case(cb.dir, make_case(cb.shape, cb.layout, 12));
    EXPECT_TRUE(second.ok) << second.message;
    EXPECT_EQ(autotune::timed_calls(), after_tuning);
    EXPECT_EQ(autotune_entries().size(), 1u);
    EXPECT_EQ(selected_kernel(cb.dir, p), e[0].kernel);
  }
}

TEST_F(Autotune, KeySeparatesShapesDirectionsAndThreads) {
  const Shape a = conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1);
  const Shape b = conv2d_shape(2, 8, 17, 16, 3, 3, 1, 1);
  check::Case c = make_case(a, Layout::nchw, 21);
  c.threads = 1;
  EXPECT_TRUE(check::run_case(Direction::forward, c).ok);
  EXPECT_EQ(autotune_entries().size(), 1u);
  c.shape = b;
  EXPECT_TRUE(check::run_case(Direction::forward, c).ok);
  EXPECT_EQ(autotune_entries().size(), 2u);
  EXPECT_TRUE(check::run_case(Direction::grad_input, c).ok);
  EXPECT_EQ(autotune_entries().size(), 3u);
  c.threads = 2;
  EXPECT_TRUE(check::run_case(Direction::grad_input, c).ok);
  ASSERT_EQ(autotune_entries().size(), 4u);
  std::set<std::string> keys;
  for (const AutotuneEntry& e : autotune_entries()) keys.insert(e.key);
  EXPECT_EQ(keys.size(), 4u);
  EXPECT_NE(autotune::key(Direction::forward, shape_params(a, Layout::nchw, DType::f32, 1)),
            autotune::key(Direction::forward, shape_params(a, Layout::nhwc, DType::f32, 1)));
  EXPECT_NE(autotune::key(Direction::forward, shape_params(a, Layout::nchw, DType::f32, 1)),
            autotune::key(Direction::forward, shape_params(a, Layout::nchw, DType::bf16, 1)));
  Params nondet = shape_params(a, Layout::nchw, DType::f32, 1);
  nondet.deterministic = false;
  EXPECT_NE(autotune::key(Direction::forward, nondet),
            autotune::key(Direction::forward, shape_params(a, Layout::nchw, DType::f32, 1)));
  // Not the pointers.
  Params other = shape_params(a, Layout::nchw, DType::f32, 1);
  float elsewhere = 0;
  other.input = &elsewhere;
  EXPECT_EQ(autotune::key(Direction::forward, other),
            autotune::key(Direction::forward, shape_params(a, Layout::nchw, DType::f32, 1)));
}

TEST_F(Autotune, ForcedKernelIsNotTuned) {
  const Shape s = conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1);
  check::Case c = make_case(s, Layout::nchw, 31);
  c.kernel = "cpu_fwd_nchw_generic";
  const uint64_t before = autotune::timed_calls();
  const check::Outcome o = check::run_case(Direction::forward, c);
  EXPECT_TRUE(o.ok) << o.message;
  EXPECT_EQ(o.kernel, "cpu_fwd_nchw_generic");
  EXPECT_EQ(autotune::timed_calls(), before);
  EXPECT_TRUE(autotune_entries().empty());
}

TEST_F(Autotune, SingleCandidateIsNotTimed) {
  const Shape s = conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1);
  const Params p = shape_params(s, Layout::nchw, DType::f64);
  ASSERT_EQ(candidates(Direction::forward, p).size(), 1u);  // f64 has only the generic variant
  const uint64_t before = autotune::timed_calls();
  const check::Outcome o = check::run_case(Direction::forward, make_case(s, Layout::nchw, 41, DType::f64));
  EXPECT_TRUE(o.ok) << o.message;
  EXPECT_EQ(autotune::timed_calls(), before);
  EXPECT_TRUE(autotune_entries().empty());
}

TEST_F(Autotune, CallerWorkspaceBoundsTheCandidates) {
  // k31 NCHW forward: dot, blocked, vec and generic, where one needs the most scratch.
  const Shape s = conv2d_shape(1, 4, 20, 20, 31, 31, 1, 15);
  const Direction dir = Direction::forward;
  const Params p = shape_params(s, Layout::nchw);
  const std::vector<std::string> names = candidate_names(dir, p);
  ASSERT_EQ(names.size(), 4u);
  std::string largest;
  size_t largest_need = 0, second_need = 0;
  for (const std::string& n : names) {
    const size_t need = need_of(dir, p, n);
    if (need > largest_need) {
      second_need = largest_need;
      largest_need = need, largest = n;
    } else {
      second_need = std::max(second_need, need);
    }
  }
  ASSERT_GT(largest_need, second_need);

  std::vector<unsigned char> ws;
  const uint64_t before_tuning = autotune::timed_calls();
  const check::Outcome o = check::run_case(dir, make_case(s, Layout::nchw, 51), with_workspace(ws, second_need));
  EXPECT_TRUE(o.ok) << o.message;
  EXPECT_EQ(autotune::timed_calls() - before_tuning, 4 * (names.size() - 1));  // not even tried
  std::vector<AutotuneEntry> e = autotune_entries();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].times_ms.size(), names.size() - 1);
  for (const auto& t : e[0].times_ms) EXPECT_NE(t.first, largest);
  EXPECT_NE(e[0].kernel, largest);

  // Room for the generic variant only: it runs, untimed.
  autotune_clear();
  const uint64_t before = autotune::timed_calls();
  const check::Outcome none = check::run_case(dir, make_case(s, Layout::nchw, 52), with_workspace(ws, 0));
  EXPECT_TRUE(none.ok) << none.message;
  EXPECT_EQ(autotune::timed_calls(), before);
  EXPECT_TRUE(autotune_entries().empty());
  Params tiny = p;
  tiny.workspace = ws.data(), tiny.workspace_bytes = 0;
  EXPECT_EQ(selected_kernel(dir, tiny), "cpu_fwd_nchw_generic");
}

TEST_F(Autotune, WorkspaceSizeCoversWhatRunPicks) {
  for (const Combo& cb : multi_candidate_combos()) {
    SCOPED_TRACE(std::string(to_string(cb.dir)) + " " + to_string(cb.layout) + " " + cb.shape.str());
    autotune_clear();
    const Params p = shape_params(cb.shape, cb.layout);
    const size_t before = workspace_size(cb.dir, p);
    for (const std::string& n : candidate_names(cb.dir, p)) EXPECT_GE(before, need_of(cb.dir, p, n)) << n;

    // Tune with exactly that much scratch from the caller: every candidate fits.
    std::vector<unsigned char> ws;
    const check::Outcome o = check::run_case(cb.dir, make_case(cb.shape, cb.layout, 61), with_workspace(ws, before));
    EXPECT_TRUE(o.ok) << o.message;
    const std::vector<AutotuneEntry> e = autotune_entries();
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].times_ms.size(), candidate_names(cb.dir, p).size());
    EXPECT_EQ(workspace_size(cb.dir, p), need_of(cb.dir, p, e[0].kernel));
  }
}

TEST_F(Autotune, KeptVariantThatNoLongerAcceptsFallsBackToHeuristic) {
  const Shape s = conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1);
  const Direction dir = Direction::forward;
  const Params p = shape_params(s, Layout::nchw);
  const std::string heuristic = candidates(dir, p).front()->name;
  for (const char* stale : {"cpu_fwd_nhwc_generic", "no_such_kernel"}) {
    SCOPED_TRACE(stale);
    autotune_clear();
    autotune::keep_for_testing(autotune::key(dir, p), stale);
    EXPECT_EQ(selected_kernel(dir, p), heuristic);
    const uint64_t before = autotune::timed_calls();
    for (uint64_t seed : {71, 72}) {
      const check::Outcome o = check::run_case(dir, make_case(s, Layout::nchw, seed));
      EXPECT_TRUE(o.ok) << o.message;
      EXPECT_EQ(o.kernel, heuristic);
    }
    EXPECT_EQ(autotune::timed_calls(), before);  // not tuned again
    ASSERT_EQ(autotune_entries().size(), 1u);
    EXPECT_EQ(autotune_entries()[0].kernel, stale);
    EXPECT_GE(workspace_size(dir, p), need_of(dir, p, heuristic));
  }
}

// Callers on several threads may tune the same key at once: each gets a
// correct result and one choice is kept.
TEST_F(Autotune, ConcurrentCallersKeepOneChoice) {
  const Shape s = conv2d_shape(2, 8, 16, 16, 3, 3, 1, 1);
  std::vector<check::Outcome> out(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < out.size(); ++i)
    threads.emplace_back([&, i] {
      check::Case c = make_case(s, Layout::nchw, 90 + i);
      c.threads = 1;
      out[i] = check::run_case(Direction::forward, c);
    });
  for (std::thread& t : threads) t.join();
  for (const check::Outcome& o : out) EXPECT_TRUE(o.ok) << o.message;
  ASSERT_EQ(autotune_entries().size(), 1u);
  for (const check::Outcome& o : out) EXPECT_EQ(o.kernel, autotune_entries()[0].kernel);
}

TEST_F(Autotune, OffLeavesTheHeuristic) {
  set_autotune(false);
  EXPECT_FALSE(autotune_enabled());
  for (const Combo& cb : multi_candidate_combos()) {
    SCOPED_TRACE(std::string(to_string(cb.dir)) + " " + to_string(cb.layout) + " " + cb.shape.str());
    const Params p = shape_params(cb.shape, cb.layout);
    const Kernel* best = candidates(cb.dir, p).front();
    EXPECT_EQ(selected_kernel(cb.dir, p), best->name);
    EXPECT_EQ(workspace_size(cb.dir, p), best->workspace ? best->workspace(p) : 0);
    const uint64_t before = autotune::timed_calls();
    const check::Outcome o = check::run_case(cb.dir, make_case(cb.shape, cb.layout, 81));
    EXPECT_TRUE(o.ok) << o.message;
    EXPECT_EQ(o.kernel, best->name);
    EXPECT_EQ(autotune::timed_calls(), before);
  }
  EXPECT_TRUE(autotune_entries().empty());
}

// On a GPU (label gpu, SKIPPED without one): the CUDA event timer in the same
// first-call tuning, and the key naming the GPU.
TEST_F(Autotune, GpuTunesOnceWithEvents) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or built without CUDA)";
  const Shape s = conv2d_shape(2, 8, 32, 32, 3, 3, 1, 1);
  int tuned = 0;
  for (Direction dir : {Direction::forward, Direction::grad_input, Direction::grad_weight})
    for (Layout layout : all_layouts()) {
      SCOPED_TRACE(std::string(to_string(dir)) + " " + to_string(layout));
      Params p = shape_params(s, layout);
      p.device = Device::cuda;
      const std::vector<std::string> names = candidate_names(dir, p);
      if (names.size() < 2) continue;
      ++tuned;
      autotune_clear();
      check::Case c = make_case(s, layout, 101);
      c.device = Device::cuda;
      const uint64_t before = autotune::timed_calls();
      const check::Outcome first = check::run_case(dir, c);
      EXPECT_TRUE(first.ok) << first.message;
      const std::vector<AutotuneEntry> e = autotune_entries();
      ASSERT_EQ(e.size(), 1u);
      EXPECT_EQ(e[0].key.rfind("cuda:", 0), 0u) << e[0].key;
      EXPECT_GE(e[0].times_ms.size(), 2u);
      EXPECT_EQ(autotune::timed_calls() - before, 4 * e[0].times_ms.size());
      for (const auto& [name, ms] : e[0].times_ms) {
        EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
        EXPECT_TRUE(std::isfinite(ms) && ms >= 0) << name << " " << ms;
      }
      EXPECT_EQ(first.kernel, e[0].kernel);
      const uint64_t after = autotune::timed_calls();
      c.seed = 102;
      const check::Outcome second = check::run_case(dir, c);
      EXPECT_TRUE(second.ok) << second.message;
      EXPECT_EQ(autotune::timed_calls(), after);
    }
  EXPECT_GT(tuned, 0);
}

#ifdef DWCONV_WITH_CUDA
// Nothing is timed while the stream is being captured into a graph (an
// event synchronisation would break the capture): the heuristic's choice is
// captured before tuning, the kept one after, and the graph computes the
// right result.
TEST_F(Autotune, GpuCaptureIsNotTuned) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  const Shape s = conv2d_shape(1, 8, 16, 16, 3, 3, 1, 1);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(size_t(s.input_elems())), w(size_t(s.weight_elems()));
  for (float& v : x) v = u(rng);
  for (float& v : w) v = u(rng);
  std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), ref(size_t(s.output_elems()));
  Params r;
  r.shape = s, r.dtype = DType::f64, r.input = xd.data(), r.weight = wd.data(), r.output = ref.data();
  reference::run(Direction::forward, r);

  void *dx = nullptr, *dw = nullptr, *dy = nullptr, *dws = nullptr;
  ASSERT_EQ(cudaMalloc(&dx, x.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dw, w.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dy, ref.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dw, w.data(), w.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  cudaStream_t st = nullptr;
  ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  Params p;
  p.shape = s, p.device = Device::cuda, p.stream = st;
  p.input = dx, p.weight = dw, p.output = dy;
  ASSERT_GE(candidates(Direction::forward, p).size(), 2u);
  const std::string heuristic = candidates(Direction::forward, p).front()->name;
  // Scratch allocated up front, so that the capture holds kernels only.
  p.workspace_bytes = workspace_size(Direction::forward, p);
  ASSERT_EQ(cudaMalloc(&dws, std::max<size_t>(p.workspace_bytes, 1)), cudaSuccess);
  p.workspace = dws;

  for (const bool tuned_first : {false, true}) {
    SCOPED_TRACE(tuned_first ? "after tuning" : "before tuning");
    if (tuned_first) {
      run(Direction::forward, p);  // uncaptured: tunes
      ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
      ASSERT_EQ(autotune_entries().size(), 1u);
    }
    const std::string expect = tuned_first ? autotune_entries()[0].kernel : heuristic;
    EXPECT_EQ(selected_kernel(Direction::forward, p), expect);
    ASSERT_EQ(cudaMemset(dy, 0xff, ref.size() * 4), cudaSuccess);  // NaN
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const uint64_t before = autotune::timed_calls();
    const size_t kept_before = autotune_entries().size();
    ASSERT_EQ(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    EXPECT_NO_THROW(run(Direction::forward, p));
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(st, &graph), cudaSuccess);
    EXPECT_EQ(autotune::timed_calls(), before);
    EXPECT_EQ(autotune_entries().size(), kept_before);
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, st), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
    std::vector<float> y(ref.size());
    ASSERT_EQ(cudaMemcpy(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    double err = 0, norm = 0;
    for (size_t i = 0; i < y.size(); ++i) err += (y[i] - ref[i]) * (y[i] - ref[i]), norm += ref[i] * ref[i];
    EXPECT_LE(std::sqrt(err / norm), 1e-5);  // NaN (an unwritten element) fails too
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(st);
  cudaFree(dx), cudaFree(dw), cudaFree(dy), cudaFree(dws);
}
#endif

TEST(AutotuneEnv, FlagParsing) {
  for (const char* v : {"1", "true", "TRUE", "On", "yes"}) EXPECT_TRUE(autotune::parse_flag(v)) << v;
  for (const char* v : {"0", "", "false", "off", "no", "2", " 1", "enable"}) EXPECT_FALSE(autotune::parse_flag(v)) << v;
  EXPECT_FALSE(autotune::parse_flag(nullptr));
}

// tests/cpp/CMakeLists.txt also runs this with DWCONV_AUTOTUNE=1 set.
TEST(AutotuneEnv, ReadFromEnvironment) {
  const bool from_env = autotune::parse_flag(std::getenv("DWCONV_AUTOTUNE"));
  EXPECT_EQ(autotune_enabled(), from_env);
  set_autotune(!from_env);  // overrides the environment
  EXPECT_EQ(autotune_enabled(), !from_env);
  set_autotune(from_env);
  EXPECT_EQ(autotune_enabled(), from_env);
}

}  // namespace
}  // namespace dwconv::testing
