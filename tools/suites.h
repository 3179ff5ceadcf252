// Benchmark shape suites: the CSVs of bench/shapes (embedded into the binary
// at build time) or a user's file with the same columns.
#pragma once

#include <string>
#include <vector>

#include "dwconv/dwconv.h"

namespace dwconv::cli {

struct SuiteShape {
  std::string name;
  Shape shape;
  bool one_d = false;  // from a 1D suite (h == 1, kh == 1)
};

struct Suite {
  std::string name;    // "seeds", or the file's path
  std::vector<SuiteShape> shapes;
};

// Names of the embedded suites ("seeds", "conv1d", ...), sorted.
std::vector<std::string> suite_names();

// A suite by name (with or without ".csv") or a CSV file path. Throws
// UsageError naming the file and line for an unknown suite, a bad header, a
// wrong column count, a non-integer or out-of-range value, or a shape whose
// output would be empty.
Suite load_suite(const std::string& name_or_path);

// Parses CSV text; `origin` names it in error messages.
Suite parse_suite(const std::string& text, const std::string& origin);

}  // namespace dwconv::cli
