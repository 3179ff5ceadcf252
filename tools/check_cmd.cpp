// `dwconv check`: every kernel variant of this build that accepts a case,
// against the fp64 reference, over the fixed edge shapes and N seeded random
// shapes, for every direction x layout x dtype.
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "cli.h"
#include "dwconv/check.h"
#include "dwconv/kernels.h"

namespace dwconv::cli {

const char* const kCheckUsage =
    "usage: dwconv check [options]\n"
    "\n"
    "Runs every kernel variant that accepts a case (dwconv::candidates, not only the one dispatch\n"
    "picks) on the fixed edge shapes plus N random shapes, for every direction (forward, grad_input,\n"
    "grad_weight, grad_bias) x layout (nchw, nhwc) x dtype (f32, f64, f16, bf16), and compares each\n"
    "result with the fp64 reference (relative error in the 2-norm; tolerance 1e-5 f32, 1e-12 f64,\n"
    "1e-2 f16/bf16; outputs are NaN-poisoned first so an unwritten element fails).\n"
    "\n"
    "  --device cpu|cuda   which backend's variants to check (default cpu)\n"
    "  --count N           random shapes besides the edge shapes (default 100)\n"
    "  --seed S            seed of the random shapes and inputs (default 1)\n"
    "  --threads T         CPU threads per kernel call (default: OpenMP's default)\n"
    "  --failures K        how many failures to print in full (default 10)\n"
    "  --verbose           print every case\n"
    "\n"
    "Exit status: 0 all cases pass, 1 a mismatch, 2 a bad argument.\n";

namespace {

struct DtypeStats {
  long cases = 0, failures = 0;
  double worst = 0, worst_ratio = 0;  // worst relative error, and worst error / tolerance
  std::string worst_case;
};

}  // namespace

int check_main(const std::vector<std::string>& args) {
  Options o("check", {{"device", true}, {"count", true}, {"seed", true}, {"threads", true},
                      {"failures", true}, {"verbose", false}});
  o.parse(args);
  const Device device = parse_device(o.choice("device", "cpu", {"cpu", "cuda"}));
  const int64_t count = o.integer("count", 100, 0, 100000000);
  const int64_t seed = o.integer("seed", 1, 0, INT64_MAX);
  const int threads = int(o.integer("threads", 0, 1, 4096));
  const int64_t show = o.integer("failures", 10, 0, 1000000);
  const bool verbose = o.has("verbose");
  if (device == Device::cuda && cuda_kernels().empty())
    throw UsageError("dwconv check: --device cuda: this build has no CUDA backend");
  if (device == Device::cuda && !cuda_available())
    throw UsageError("dwconv check: --device cuda: no CUDA device is available");
  set_threads(threads);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Shape> shapes = check::edge_shapes();
  const size_t n_edge = shapes.size();
  std::mt19937_64 rng{uint64_t(seed)};
  std::vector<bool> bias(n_edge);
  for (size_t i = 0; i < n_edge; ++i) bias[i] = (i % 2) == 0;
  for (int64_t i = 0; i < count; ++i) {
    shapes.push_back(check::random_shape(rng));
    bias.push_back((rng() & 1) != 0);
  }

  const Direction dirs[] = {Direction::forward, Direction::grad_input, Direction::grad_weight, Direction::grad_bias};
  const Layout layouts[] = {Layout::nchw, Layout::nhwc};
  const DType dtypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

  std::map<int, DtypeStats> per_dtype;
  std::map<std::string, long> per_kernel;
  long cases = 0, failures = 0, no_kernel = 0, declined = 0;
  std::vector<std::string> failure_lines;
  uint64_t case_seed = uint64_t(seed) * 1000003u;

  for (size_t si = 0; si < shapes.size(); ++si) {
    for (Direction dir : dirs)
      for (Layout layout : layouts)
        for (DType dtype : dtypes) {
          Params q;
          q.shape = shapes[si];
          q.dtype = dtype;
          q.layout = layout;
          q.device = device;
          q.threads = threads;
          const std::vector<const Kernel*> cands = candidates(dir, q);
          if (cands.empty()) {
            ++no_kernel;
            ++failures;
            if (long(failure_lines.size()) < show)
              failure_lines.push_back(std::string("no kernel accepts ") + to_string(dir) + " " + q.shape.str() + " " +
                                      to_string(dtype) + " " + to_string(layout));
            continue;
          }
          for (const Kernel* k : cands) {
            check::Case c;
            c.shape = shapes[si];
            c.dtype = dtype;
            c.layout = layout;
            c.device = device;
            c.bias = bias[si];
            c.kernel = k->name;
            c.seed = ++case_seed;
            c.threads = threads;
            check::Outcome out;
            try {
              out = check::run_case(dir, c);
            } catch (const Error& e) {
              // The variant accepted the shape without buffers but declined
              // the case's real buffers (e.g. alignment): not run, not failed.
              if (std::string(e.what()).find("does not accept") != std::string::npos) {
                ++declined;
                if (verbose) std::cout << "skip " << to_string(dir) << " " << c.str() << ": " << e.what() << "\n";
                continue;
              }
              out.ok = false;
              out.rel_err = INFINITY;
              out.tol = check::tolerance(dtype);
              out.kernel = k->name;
              out.message = std::string("threw: ") + e.what();
            } catch (const std::exception& e) {
              out.ok = false;
              out.rel_err = INFINITY;
              out.tol = check::tolerance(dtype);
              out.kernel = k->name;
              out.message = std::string("threw: ") + e.what();
            }
            ++cases;
            ++per_kernel[k->name];
            DtypeStats& st = per_dtype[int(dtype)];
            ++st.cases;
            const double ratio = out.tol > 0 ? out.rel_err / out.tol : 0;
            if (out.rel_err > st.worst || !std::isfinite(out.rel_err)) st.worst = out.rel_err;
            if (ratio > st.worst_ratio || !std::isfinite(ratio)) {
              st.worst_ratio = ratio;
              st.worst_case = std::string(to_string(dir)) + " " + c.str();
            }
            const std::string desc = std::string(to_string(dir)) + " " + c.str();
            if (!out.ok) {
              ++failures;
              ++st.failures;
              if (long(failure_lines.size()) < show) failure_lines.push_back("FAIL " + desc + ": " + out.message);
            }
            if (verbose) {
              char buf[64];
              std::snprintf(buf, sizeof buf, "%s rel_err %.3g (tol %.0e) ", out.ok ? "ok  " : "FAIL", out.rel_err,
                            out.tol);
              std::cout << buf << desc << "\n";
            }
          }
        }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::cout << "dwconv check: " << to_string(device) << ", " << n_edge << " edge + " << count
            << " random shapes (seed " << seed << "), " << cases << " cases over " << per_kernel.size()
            << " kernel variants, " << failures << " failure" << (failures == 1 ? "" : "s");
  char buf[256];
  std::snprintf(buf, sizeof buf, ", %.1f s\n", secs);
  std::cout << buf;
  for (DType dtype : dtypes) {
    const DtypeStats& st = per_dtype[int(dtype)];
    std::snprintf(buf, sizeof buf, "  %-5s %7ld cases %5ld failures  worst rel err %.3g (%.3g of tol %.0e)",
                  to_string(dtype), st.cases, st.failures, st.worst, st.worst_ratio, check::tolerance(dtype));
    std::cout << buf << "\n";
    if (st.cases && !st.worst_case.empty()) std::cout << "        worst: " << st.worst_case << "\n";
  }
  std::cout << "  variants:";
  for (const auto& kv : per_kernel) std::cout << " " << kv.first << " (" << kv.second << ")";
  std::cout << "\n";
  if (declined) std::cout << "  " << declined << " cases not run: the variant declined the case's buffers\n";
  if (no_kernel) std::cout << "  " << no_kernel << " combinations had no kernel\n";
  if (failures) {
    std::cout << "first failures:\n";
    for (const auto& l : failure_lines) std::cout << "  " << l << "\n";
    if (failures > long(failure_lines.size()))
      std::cout << "  ... " << failures - long(failure_lines.size()) << " more\n";
  }
  std::cout << (failures ? "FAILED\n" : "OK\n");
  return failures ? kExitFailure : kExitOk;
}

}  // namespace dwconv::cli
