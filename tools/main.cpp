// dwconv: the command-line tool. `dwconv check` compares every kernel variant
// with the fp64 reference; `dwconv bench` times a shape suite against a
// baseline. See docs/cli.md.
#include <omp.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"

namespace dwconv::cli {

Options::Options(std::string command, std::map<std::string, bool> spec)
    : command_(std::move(command)), spec_(std::move(spec)) {}

void Options::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0)
      throw UsageError("dwconv " + command_ + ": unexpected argument '" + a + "' (try 'dwconv " + command_ +
                       " --help')");
    std::string name = a.substr(2), value;
    bool inline_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto it = spec_.find(name);
    if (it == spec_.end())
      throw UsageError("dwconv " + command_ + ": unknown option '--" + name + "' (try 'dwconv " + command_ +
                       " --help')");
    if (values_.count(name)) throw UsageError("dwconv " + command_ + ": option --" + name + " given twice");
    if (it->second) {
      if (!inline_value) {
        if (i + 1 >= args.size()) throw UsageError("dwconv " + command_ + ": option --" + name + " needs a value");
        value = args[++i];
      }
      if (value.empty()) throw UsageError("dwconv " + command_ + ": option --" + name + " needs a value");
    } else if (inline_value) {
      throw UsageError("dwconv " + command_ + ": option --" + name + " takes no value");
    }
    values_[name] = value;
  }
}

std::string Options::str(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t j = i; j < s.size(); ++j)
    if (s[j] < '0' || s[j] > '9') return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

int64_t Options::integer(const std::string& name, int64_t def, int64_t min, int64_t max) const {
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  int64_t v = 0;
  if (!parse_int(it->second, v))
    throw UsageError("dwconv " + command_ + ": --" + name + " must be an integer, got '" + it->second + "'");
  if (v < min || v > max)
    throw UsageError("dwconv " + command_ + ": --" + name + " must be in [" + std::to_string(min) + ", " +
                     std::to_string(max) + "], got " + it->second);
  return v;
}

double Options::real(const std::string& name, double def, double min, double max) const {
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(it->second.c_str(), &end);
  if (errno != 0 || end == it->second.c_str() || *end != '\0' || !(v >= min && v <= max))
  {
    char range[96];
    std::snprintf(range, sizeof range, "[%g, %g]", min, max);
    throw UsageError("dwconv " + command_ + ": --" + name + " must be a number in " + range + ", got '" +
                     it->second + "'");
  }
  return v;
}

std::string Options::choice(const std::string& name, const std::string& def,
                            const std::vector<std::string>& allowed) const {
  const std::string v = str(name, def);
  for (const auto& a : allowed)
    if (a == v) return v;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
  throw UsageError("dwconv " + command_ + ": --" + name + " must be one of " + list + ", got '" + v + "'");
}

DType parse_dtype(const std::string& s) {
  if (s == "f32") return DType::f32;
  if (s == "f64") return DType::f64;
  if (s == "f16") return DType::f16;
  if (s == "bf16") return DType::bf16;
  throw UsageError("dwconv: unknown dtype '" + s + "'");
}

Layout parse_layout(const std::string& s) {
  if (s == "nchw") return Layout::nchw;
  if (s == "nhwc") return Layout::nhwc;
  throw UsageError("dwconv: unknown layout '" + s + "'");
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::cpu;
  if (s == "cuda") return Device::cuda;
  throw UsageError("dwconv: unknown device '" + s + "'");
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace dwconv::cli

namespace {

const char* const kMainUsage =
    "usage: dwconv <command> [options]\n"
    "\n"
    "commands:\n"
    "  check   compare every kernel variant of this build with the fp64 reference\n"
    "  bench   time a shape suite and compare with a baseline (oneDNN, cuDNN, reference)\n"
    "  help    this text, or 'dwconv help <command>'\n"
    "\n"
    "'dwconv <command> --help' describes a command's options (docs/cli.md has more).\n"
    "Exit status: 0 ok, 1 a check mismatch or a failed benchmark, 2 a bad command line or suite file.\n";

bool is_help(const std::string& a) { return a == "--help" || a == "-h" || a == "help"; }

int dispatch(const std::vector<std::string>& argv) {
  using namespace dwconv::cli;
  if (argv.empty()) {
    std::cerr << "dwconv: missing command (check, bench or help)\n";
    return kExitUsage;
  }
  const std::string& cmd = argv[0];
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (cmd == "--version") {
    std::cout << "dwconv " << DWCONV_VERSION_STRING << "\n";
    return kExitOk;
  }
  if (is_help(cmd)) {
    if (rest.empty()) {
      std::cout << kMainUsage;
      return kExitOk;
    }
    if (rest.size() == 1 && rest[0] == "check") {
      std::cout << kCheckUsage;
      return kExitOk;
    }
    if (rest.size() == 1 && rest[0] == "bench") {
      std::cout << kBenchUsage;
      return kExitOk;
    }
    std::cerr << "dwconv help: unknown command '" << rest[0] << "' (commands: check, bench)\n";
    return kExitUsage;
  }
  if (cmd == "check" || cmd == "bench") {
    for (const auto& a : rest)
      if (a == "--help" || a == "-h") {
        std::cout << (cmd == "check" ? kCheckUsage : kBenchUsage);
        return kExitOk;
      }
    return cmd == "check" ? check_main(rest) : bench_main(rest);
  }
  std::cerr << "dwconv: unknown command '" << cmd << "' (commands: check, bench, help)\n";
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return dispatch(args);
  } catch (const dwconv::cli::UsageError& e) {
    std::cerr << e.what() << "\n";
    return dwconv::cli::kExitUsage;
  } catch (const dwconv::Error& e) {
    std::cerr << "dwconv: " << e.what() << "\n";
    return dwconv::cli::kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "dwconv: error: " << e.what() << "\n";
    return dwconv::cli::kExitFailure;
  }
}
