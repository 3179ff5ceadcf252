// Shared pieces of the dwconv command-line tool: argument parsing, the
// usage-error exception (exit status 2) and the two commands.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "dwconv/dwconv.h"

namespace dwconv::cli {

// A bad command line or a malformed suite file: one line on stderr, exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Exit statuses of the tool.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // check found a mismatch / a benchmark failed
constexpr int kExitUsage = 2;    // bad argument, unknown option, malformed suite file

// Options of one command: "--name value" or "--name=value"; flags take no value.
class Options {
 public:
  // spec: option name (without "--") -> true when it takes a value.
  Options(std::string command, std::map<std::string, bool> spec);
  // Throws UsageError on an unknown option, a missing value, a repeated
  // option or a positional argument.
  void parse(const std::vector<std::string>& args);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& def) const;
  int64_t integer(const std::string& name, int64_t def, int64_t min, int64_t max) const;
  double real(const std::string& name, double def, double min, double max) const;
  // One of the allowed spellings.
  std::string choice(const std::string& name, const std::string& def, const std::vector<std::string>& allowed) const;

 private:
  std::string command_;
  std::map<std::string, bool> spec_;
  std::map<std::string, std::string> values_;
};

// Strict integer parsing ("12", "-3"; not "1.5", "12x", "", " 1").
bool parse_int(const std::string& s, int64_t& out);

DType parse_dtype(const std::string& s);        // f32 | f64 | f16 | bf16
Layout parse_layout(const std::string& s);      // nchw | nhwc
Device parse_device(const std::string& s);      // cpu | cuda

// Sets the OpenMP thread count when threads > 0 (kernels, oneDNN).
void set_threads(int threads);

int check_main(const std::vector<std::string>& args);
int bench_main(const std::vector<std::string>& args);
extern const char* const kCheckUsage;
extern const char* const kBenchUsage;

}  // namespace dwconv::cli
