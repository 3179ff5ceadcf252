// `dwconv bench`: times a shape suite on one pass, dtype and layout, against a
// baseline measured in the same run. See docs/cli.md for the columns.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli.h"
#include "dwconv/half.h"
#include "dwconv/kernels.h"
#include "onednn_baseline.h"
#include "roofline.h"
#include "suites.h"
#include "timing.h"

#ifdef DWCONV_HAVE_CUDNN_BASELINE
#include "cudnn_baseline.h"
#endif

namespace dwconv::cli {

const char* const kBenchUsage =
    "usage: dwconv bench --suite NAME|FILE [options]\n"
    "\n"
    "Times every shape of a suite (bench/shapes/*.csv, built in, or a CSV file with the same\n"
    "columns) and compares it with a baseline measured in the same run.\n"
    "\n"
    "  --suite NAME|FILE   seeds, mobilenet_v2, efficientnet_b0, convnext_t, replknet_31b, slak_t,\n"
    "                      inceptionnext_t, conv1d; or a path to a CSV file (required)\n"
    "  --device cpu|cuda   where dwconv runs (default cpu)\n"
    "  --dtype f32|bf16|f16           storage type (default f32)\n"
    "  --layout nchw|nhwc             activation layout (default nchw)\n"
    "  --pass fwd|bwd_input|bwd_weight|train\n"
    "                      train = forward + grad_input + grad_weight + grad_bias (default fwd)\n"
    "  --batch N           override the suite's batch size N\n"
    "  --threads T         CPU threads for dwconv and oneDNN (default: OpenMP's default)\n"
    "  --baseline none|reference|onednn|onednn_nchw|cudnn\n"
    "                      default: onednn on the CPU when built with oneDNN, cudnn on CUDA, else none.\n"
    "                      onednn lets oneDNN choose its formats (format_tag::any, NHWC when 'any' lands\n"
    "                      on a reference implementation); onednn_nchw forces plain NCHW activations\n"
    "  --kernel NAME       force a kernel variant (of the pass's direction that it belongs to)\n"
    "  --autotune          autotune dispatch (dwconv::set_autotune, also DWCONV_AUTOTUNE=1): one untimed call\n"
    "                      per shape and direction times every variant that accepts it; the fastest runs\n"
    "                      and is the one in the kernel column\n"
    "  --warmup W          untimed calls per shape (default 2)\n"
    "  --iters I           timed calls per shape, at most (default 10); the median is reported\n"
    "  --time-limit S      stop timing a shape after S seconds once 3 calls are done (default 2)\n"
    "  --json FILE         also write one JSON record per shape to FILE\n"
    "  --list              list the built-in suites and this build's kernel variants, then exit\n"
    "\n"
    "A call slower than 1 s ends the warm-up and is timed once. Inputs rotate among enough\n"
    "buffer sets that the working set exceeds twice the last-level cache.\n"
    "Exit status: 0 ok, 1 a shape failed, 2 a bad argument or suite file.\n";

namespace {

struct Record {
  std::string name, shape, kernel, baseline, baseline_impl, error;
  double ms = 0, baseline_ms = 0, bytes = 0, flops = 0;
  int calls = 0, baseline_calls = 0;
  bool ok = false, skipped = false, baseline_ok = false;
};

// An aligned host allocation.
struct HostBuf {
  std::unique_ptr<unsigned char, decltype(&std::free)> p{nullptr, &std::free};
  size_t bytes = 0;
  void alloc(size_t n) {
    bytes = n;
    const size_t rounded = std::max<size_t>((n + 63) / 64 * 64, 64);
    p.reset(static_cast<unsigned char*>(std::aligned_alloc(64, rounded)));
    if (!p) throw std::bad_alloc();
  }
  void* get() const { return p.get(); }
};

// Uniform values in [-1, 1) in the storage type, filled in parallel.
void fill_random(void* dst, size_t elems, DType dtype, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < int64_t((elems + 4095) / 4096); ++blk) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + uint64_t(blk) * 0xBF58476D1CE4E5B9ull + 1;
    const size_t lo = size_t(blk) * 4096, hi = std::min(elems, lo + 4096);
    for (size_t i = lo; i < hi; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      const float v = float(int64_t(s >> 40) - (int64_t(1) << 23)) / float(int64_t(1) << 23);
      switch (dtype) {
        case DType::f32: static_cast<float*>(dst)[i] = v; break;
        case DType::f64: static_cast<double*>(dst)[i] = v; break;
        case DType::bf16: static_cast<bf16*>(dst)[i] = to_bf16(v); break;
        case DType::f16: static_cast<f16*>(dst)[i] = to_f16(v); break;
      }
    }
  }
}

// The tensors of one pass, one buffer set.
struct Set {
  HostBuf input, weight, bias, output, grad_output, grad_input, grad_weight, grad_bias;
};

Params bind(const Params& base, Set& s) {
  Params p = base;
  p.input = s.input.get();
  p.weight = s.weight.get();
  p.bias = s.bias.get();
  p.output = s.output.get();
  p.grad_output = s.grad_output.get();
  p.grad_input = s.grad_input.get();
  p.grad_weight = s.grad_weight.get();
  p.grad_bias = s.grad_bias.get();
  return p;
}

// Allocates and fills the buffer sets for a pass on the CPU.
std::vector<Set> make_sets(const Params& base, const std::vector<Direction>& dirs, size_t rotate_bytes) {
  const Shape& s = base.shape;
  const size_t e = dtype_size(base.dtype);
  bool need_in = false, need_w = false, need_b = false, need_out = false, need_dy = false, need_dx = false,
       need_dw = false, need_db = false;
  for (Direction d : dirs) {
    if (d == Direction::forward) need_in = need_w = need_b = need_out = true;
    if (d == Direction::grad_input) need_dy = need_w = need_dx = true;
    if (d == Direction::grad_weight) need_dy = need_in = need_dw = true;
    if (d == Direction::grad_bias) need_dy = need_db = true;
  }
  const size_t in_b = size_t(s.input_elems()) * e, out_b = size_t(s.output_elems()) * e,
               w_b = size_t(s.weight_elems()) * e, b_b = size_t(s.out_c()) * e;
  const size_t set_bytes = (need_in ? in_b : 0) + (need_w ? w_b : 0) + (need_b ? b_b : 0) +
                           (need_out ? out_b : 0) + (need_dy ? out_b : 0) + (need_dx ? in_b : 0) +
                           (need_dw ? w_b : 0) + (need_db ? b_b : 0);
  const size_t nsets = std::clamp<size_t>((rotate_bytes + set_bytes - 1) / std::max<size_t>(set_bytes, 1), 1, 4096);
  std::vector<Set> sets(nsets);
  for (size_t i = 0; i < nsets; ++i) {
    Set& st = sets[i];
    auto mk = [&](bool need, HostBuf& b, size_t bytes, HostBuf Set::*member, bool random, uint64_t seed) {
      if (!need) return;
      b.alloc(bytes);
      if (i == 0) {
        if (random)
          fill_random(b.get(), bytes / e, base.dtype, seed);
        else
          std::memset(b.get(), 0, bytes);
      } else {
        std::memcpy(b.get(), (sets[0].*member).get(), bytes);
      }
    };
    mk(need_in, st.input, in_b, &Set::input, true, 1);
    mk(need_w, st.weight, w_b, &Set::weight, true, 2);
    mk(need_b, st.bias, b_b, &Set::bias, true, 3);
    mk(need_out, st.output, out_b, &Set::output, false, 0);
    mk(need_dy, st.grad_output, out_b, &Set::grad_output, true, 4);
    mk(need_dx, st.grad_input, in_b, &Set::grad_input, false, 0);
    mk(need_dw, st.grad_weight, w_b, &Set::grad_weight, false, 0);
    mk(need_db, st.grad_bias, b_b, &Set::grad_bias, false, 0);
  }
  return sets;
}

std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += char(c);
    }
  }
  return o + "\"";
}

const Kernel* find_kernel(const std::string& name) {
  for (const Kernel& k : kernels())
    if (name == k.name) return &k;
  return nullptr;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

int bench_main(const std::vector<std::string>& args) {
  Options o("bench", {{"suite", true},   {"device", true}, {"dtype", true},  {"layout", true},
                      {"pass", true},    {"batch", true},  {"threads", true}, {"baseline", true},
                      {"kernel", true},  {"warmup", true}, {"iters", true},  {"time-limit", true},
                      {"json", true},    {"list", false},  {"autotune", false}});
  o.parse(args);
  if (o.has("list")) {
    std::cout << "suites:";
    for (const auto& n : suite_names()) std::cout << " " << n;
    std::cout << "\nkernels:\n";
    for (const Kernel& k : kernels())
      std::cout << "  " << k.name << " (" << to_string(k.device) << ", " << to_string(k.direction) << ")\n";
    return kExitOk;
  }
  if (!o.has("suite")) throw UsageError("dwconv bench: --suite is required (try 'dwconv bench --help')");
  const Device device = parse_device(o.choice("device", "cpu", {"cpu", "cuda"}));
  const DType dtype = parse_dtype(o.choice("dtype", "f32", {"f32", "bf16", "f16"}));
  const Layout layout = parse_layout(o.choice("layout", "nchw", {"nchw", "nhwc"}));
  const std::string pass = o.choice("pass", "fwd", {"fwd", "bwd_input", "bwd_weight", "train"});
  const int64_t batch = o.integer("batch", 0, 1, int64_t(1) << 20);
  const int threads = int(o.integer("threads", 0, 1, 4096));
  std::string default_baseline = "none";
  if (device == Device::cpu && onednn_available()) default_baseline = "onednn";
#ifdef DWCONV_HAVE_CUDNN_BASELINE
  if (device == Device::cuda) default_baseline = "cudnn";
#endif
  const std::string baseline =
      o.choice("baseline", default_baseline, {"none", "reference", "onednn", "onednn_nchw", "cudnn"});
  TimingPolicy pol;
  pol.warmup = int(o.integer("warmup", 2, 0, 1000));
  pol.iters = int(o.integer("iters", 10, 1, 100000));
  pol.time_limit_s = o.real("time-limit", 2.0, 0.0, 3600.0);
  const std::string json_path = o.str("json", "");
  const std::string forced = o.str("kernel", "");
  if (o.has("autotune")) set_autotune(true);
  const bool autotune = autotune_enabled();

  const std::vector<Direction> dirs = pass_directions(pass);
  const Kernel* forced_k = nullptr;
  if (!forced.empty()) {
    forced_k = find_kernel(forced);
    if (!forced_k) throw UsageError("dwconv bench: --kernel '" + forced + "' is not a kernel of this build (see --list)");
    if (forced_k->device != device)
      throw UsageError("dwconv bench: --kernel '" + forced + "' is a " + to_string(forced_k->device) +
                       " kernel but --device is " + to_string(device));
    if (std::find(dirs.begin(), dirs.end(), forced_k->direction) == dirs.end())
      throw UsageError("dwconv bench: --kernel '" + forced + "' computes " + to_string(forced_k->direction) +
                       ", which pass " + pass + " does not run");
  }
  if ((baseline == "onednn" || baseline == "onednn_nchw") && !onednn_available())
    throw UsageError("dwconv bench: --baseline " + baseline + ": this build has no oneDNN (libdnnl-dev)");
  if ((baseline == "onednn" || baseline == "onednn_nchw" || baseline == "reference") && device != Device::cpu)
    throw UsageError("dwconv bench: --baseline " + baseline + " runs on the CPU; use --baseline cudnn with --device cuda");
  if (baseline == "cudnn" && device != Device::cuda)
    throw UsageError("dwconv bench: --baseline cudnn needs --device cuda");
#ifndef DWCONV_HAVE_CUDNN_BASELINE
  if (device == Device::cuda)
    throw UsageError("dwconv bench: --device cuda: this build has no CUDA benchmark support");
#else
  if (device == Device::cuda && !cuda_available())
    throw UsageError("dwconv bench: --device cuda: no CUDA device is available");
#endif
  Suite suite = load_suite(o.str("suite", ""));
  if (batch > 0)
    for (auto& s : suite.shapes) s.shape.n = batch;

  // Open the JSON file early so that a bad path fails before the run.
  std::ofstream json;
  if (!json_path.empty()) {
    json.open(json_path);
    if (!json) throw UsageError("dwconv bench: cannot write --json file '" + json_path + "'");
  }

  set_threads(threads);
  const int nthreads = threads > 0 ? threads : omp_get_max_threads();
  Machine m;
  const size_t llc = llc_bytes();
  const size_t rotate_bytes = std::min<size_t>(2 * llc, size_t(1) << 30);
  if (device == Device::cpu) {
    m = measure_cpu_machine(threads);
  } else {
#ifdef DWCONV_HAVE_CUDNN_BASELINE
    m = measure_gpu_machine();
#endif
  }

  std::cout << "dwconv bench: suite " << suite.name << " (" << suite.shapes.size() << " shapes), pass " << pass
            << ", " << to_string(dtype) << " " << to_string(layout) << ", " << to_string(device)
            << (device == Device::cpu ? " (" + std::to_string(nthreads) + (nthreads == 1 ? " thread)" : " threads)")
                                   : std::string())
            << ", baseline " << baseline << (batch > 0 ? ", batch " + std::to_string(batch) : std::string())
            << (autotune ? ", autotune" : "") << "\n";
  std::cout << "machine: " << m.device << "; copy " << fmt("%.1f", m.bw_gbps) << " GB/s, fp32 FMA "
            << fmt("%.0f", m.peak_gflops) << " GFLOP/s";
  if (device == Device::cpu) std::cout << "; LLC " << (llc >> 20) << " MiB, rotating >= " << (rotate_bytes >> 20) << " MiB";
  std::cout << "\n\n";

  size_t name_w = 4;
  for (const auto& s : suite.shapes) name_w = std::max(name_w, s.name.size());
  const std::string bcol = baseline == "none" ? "" : baseline + "_ms";
  char line[512];
  std::snprintf(line, sizeof line, "%-*s %10s %8s %8s %6s", int(name_w), "name", "ms", "GB/s", "GFLOP/s", "roof%");
  std::cout << line;
  if (!bcol.empty()) {
    std::snprintf(line, sizeof line, " %12s %8s", bcol.c_str(), "speedup");
    std::cout << line;
  }
  std::cout << "  kernel\n" << std::flush;

  std::vector<Record> recs;
  bool any_failed = false;
  for (const SuiteShape& ss : suite.shapes) {
    Record r;
    r.name = ss.name;
    r.shape = ss.shape.str();
    r.baseline = baseline;
    for (Direction d : dirs) {
      r.bytes += direction_bytes(d, ss.shape, dtype, d == Direction::forward);
      r.flops += direction_flops(d, ss.shape);
    }
    Params base;
    base.shape = ss.shape;
    base.dtype = dtype;
    base.layout = layout;
    base.device = device;
    base.threads = threads;
    try {
      if (device == Device::cpu) {
        std::vector<Set> sets = make_sets(base, dirs, rotate_bytes);
        std::vector<Params> ps;
        for (Set& st : sets) ps.push_back(bind(base, st));
        // Kernel names, and whether a forced kernel accepts the shape.
        std::vector<const char*> forced_for(dirs.size(), nullptr);
        for (size_t i = 0; i < dirs.size(); ++i) {
          Params q = ps[0];
          if (forced_k && forced_k->direction == dirs[i]) {
            q.kernel = forced_k->name;
            forced_for[i] = forced_k->name;
          }
          // Tuning happens in the first call of a kind: make it here, untimed,
          // so that the name below is the tuned choice.
          if (autotune) run(dirs[i], q);
          r.kernel += (r.kernel.empty() ? "" : "+") + selected_kernel(dirs[i], q);
        }
        const Timing t = time_calls(pol, [&](int call) {
          Params& q = ps[size_t(call) % ps.size()];
          for (size_t i = 0; i < dirs.size(); ++i) {
            q.kernel = forced_for[i];
            run(dirs[i], q);
          }
        });
        r.ms = t.ms;
        r.calls = t.calls;
        r.ok = true;
        if (baseline == "reference") {
          const Timing tb = time_calls(pol, [&](int call) {
            const Params& q = ps[size_t(call) % ps.size()];
            for (Direction d : dirs) reference::run(d, q);
          });
          r.baseline_ok = true;
          r.baseline_ms = tb.ms;
          r.baseline_calls = tb.calls;
          r.baseline_impl = "dwconv::reference (fp64 accumulation, plain loops)";
        }
      } else {
#ifdef DWCONV_HAVE_CUDNN_BASELINE
        Params q = base;
        for (Direction d : dirs) {
          Params qd = q;
          if (forced_k && forced_k->direction == d) qd.kernel = forced_k->name;
          GpuTiming t = dwconv_gpu_time(d, qd, pol.warmup, pol.iters);
          r.kernel += (r.kernel.empty() ? "" : "+") + t.kernel;
          r.ms += t.ms;
          r.calls = t.iters;
        }
        r.ok = true;
#endif
      }
    } catch (const Error& e) {
      // A forced kernel that does not take this shape: skipped, not failed.
      r.error = e.what();
      if (forced_k && r.error.find("does not accept") != std::string::npos) {
        r.skipped = true;
      } else {
        any_failed = true;
      }
    } catch (const std::exception& e) {
      r.error = e.what();
      any_failed = true;
    }

    if (r.ok && (baseline == "onednn" || baseline == "onednn_nchw")) {
      const BaselineResult b = onednn_time(pass, ss.shape, dtype, layout, baseline == "onednn_nchw", pol, rotate_bytes);
      r.baseline_ok = b.ok;
      r.baseline_ms = b.ms;
      r.baseline_calls = b.calls;
      r.baseline_impl = b.ok ? b.impl : "n/a: " + b.error;
    }
#ifdef DWCONV_HAVE_CUDNN_BASELINE
    if (r.ok && baseline == "cudnn") {
      try {
        double total = 0;
        for (Direction d : dirs) total += cudnn_time_ms(d, base, pol.warmup, pol.iters);
        r.baseline_ok = std::isfinite(total) && total > 0;
        r.baseline_ms = total;
        if (!r.baseline_ok) r.baseline_impl = "n/a";
        else r.baseline_impl = "cudnn";
      } catch (const std::exception& e) {
        r.baseline_ok = false;
        r.baseline_impl = std::string("n/a: ") + e.what();
      }
    }
#endif

    // One table row.
    std::snprintf(line, sizeof line, "%-*s", int(name_w), r.name.c_str());
    std::cout << line;
    if (!r.ok) {
      std::cout << "  " << (r.skipped ? "skipped: " : "FAILED: ") << r.error << "\n" << std::flush;
      recs.push_back(r);
      continue;
    }
    const double gbps = r.bytes / (r.ms * 1e-3) / 1e9, gflops = r.flops / (r.ms * 1e-3) / 1e9;
    const double roof = roofline_fraction(r.bytes, r.flops, r.ms, m);
    std::snprintf(line, sizeof line, " %10.3f %8.1f %8.1f %5.1f%%", r.ms, gbps, gflops, 100 * roof);
    std::cout << line;
    if (!bcol.empty()) {
      if (r.baseline_ok)
        std::snprintf(line, sizeof line, " %12.3f %7.2fx", r.baseline_ms, r.baseline_ms / r.ms);
      else
        std::snprintf(line, sizeof line, " %12s %8s", "n/a", "-");
      std::cout << line;
    }
    std::cout << "  " << r.kernel << "\n" << std::flush;
    recs.push_back(r);
  }

  // Geomean speedup over the shapes where both ran.
  if (baseline != "none") {
    double logsum = 0;
    int n = 0;
    const Record *lo = nullptr, *hi = nullptr;
    for (const Record& r : recs) {
      if (!r.ok || !r.baseline_ok || !(r.ms > 0) || !(r.baseline_ms > 0)) continue;
      const double sp = r.baseline_ms / r.ms;
      logsum += std::log(sp);
      ++n;
      if (!lo || sp < lo->baseline_ms / lo->ms) lo = &r;
      if (!hi || sp > hi->baseline_ms / hi->ms) hi = &r;
    }
    std::cout << "\n";
    if (n > 0) {
      std::cout << "geomean speedup vs " << baseline << ": " << fmt("%.2f", std::exp(logsum / n)) << "x over " << n
                << " of " << recs.size() << " shapes (min " << fmt("%.2f", lo->baseline_ms / lo->ms) << "x "
                << lo->name << ", max " << fmt("%.2f", hi->baseline_ms / hi->ms) << "x " << hi->name << ")\n";
    } else {
      std::cout << "geomean speedup vs " << baseline << ": n/a (no shape ran on both)\n";
    }
    for (const Record& r : recs)
      if (r.ok && !r.baseline_ok && !r.baseline_impl.empty())
        std::cout << "  baseline " << r.name << ": " << r.baseline_impl << "\n";
  }

  if (json.is_open()) {
    json << "[\n";
    for (size_t i = 0; i < recs.size(); ++i) {
      const Record& r = recs[i];
      const double nan = std::nan("");
      const double gbps = r.ok ? r.bytes / (r.ms * 1e-3) / 1e9 : nan;
      const double gflops = r.ok ? r.flops / (r.ms * 1e-3) / 1e9 : nan;
      const double roof = r.ok ? roofline_fraction(r.bytes, r.flops, r.ms, m) : nan;
      const bool bok = r.ok && r.baseline_ok;
      json << "  {\"name\": " << json_str(r.name) << ", \"suite\": " << json_str(suite.name)
           << ", \"shape\": " << json_str(r.shape) << ", \"pass\": " << json_str(pass)
           << ", \"dtype\": " << json_str(to_string(dtype)) << ", \"layout\": " << json_str(to_string(layout))
           << ", \"device\": " << json_str(to_string(device)) << ", \"threads\": " << nthreads
           << ", \"kernel\": " << json_str(r.kernel) << ", \"autotune\": " << (autotune ? "true" : "false")
           << ", \"status\": "
           << json_str(r.ok ? "ok" : (r.skipped ? "skipped" : "failed"))
           << ", \"error\": " << (r.error.empty() ? "null" : json_str(r.error)) << ", \"ms\": " << json_num(r.ok ? r.ms : nan)
           << ", \"calls\": " << r.calls << ", \"baseline\": " << json_str(baseline)
           << ", \"baseline_ms\": " << json_num(bok ? r.baseline_ms : nan)
           << ", \"baseline_impl\": " << (r.baseline_impl.empty() ? "null" : json_str(r.baseline_impl))
           << ", \"speedup\": " << json_num(bok ? r.baseline_ms / r.ms : nan) << ", \"bytes\": " << json_num(r.bytes)
           << ", \"flops\": " << json_num(r.flops) << ", \"gbps\": " << json_num(gbps)
           << ", \"gflops\": " << json_num(gflops) << ", \"roofline_frac\": " << json_num(roof)
           << ", \"machine_gbps\": " << json_num(m.bw_gbps) << ", \"machine_gflops\": " << json_num(m.peak_gflops)
           << "}" << (i + 1 < recs.size() ? "," : "") << "\n";
    }
    json << "]\n";
    json.close();
    if (!json) {
      std::cerr << "dwconv bench: writing '" << json_path << "' failed\n";
      return kExitFailure;
    }
  }
  return any_failed ? kExitFailure : kExitOk;
}

}  // namespace dwconv::cli
