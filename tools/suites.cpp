#include "suites.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "cli.h"

namespace dwconv::cli {

// Defined in the generated embedded_suites.cpp (tools/CMakeLists.txt).
struct EmbeddedSuite {
  const char* name;
  const char* text;
};
extern const EmbeddedSuite kEmbeddedSuites[];
extern const int kEmbeddedSuiteCount;

namespace {

const char* const kHeader2d = "name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w";
const char* const kHeader1d = "name,N,C,L,multiplier,k,stride,pad,dil,causal";

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : line) {
    if (ch == ',') {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(trim(cur));
  return out;
}

std::string join_no_space(const std::vector<std::string>& cols) {
  std::string s;
  for (size_t i = 0; i < cols.size(); ++i) s += (i ? "," : "") + cols[i];
  return s;
}

}  // namespace

std::vector<std::string> suite_names() {
  std::vector<std::string> v;
  for (int i = 0; i < kEmbeddedSuiteCount; ++i) v.push_back(kEmbeddedSuites[i].name);
  std::sort(v.begin(), v.end());
  return v;
}

Suite parse_suite(const std::string& text, const std::string& origin) {
  Suite suite;
  suite.name = origin;
  std::istringstream in(text);
  std::string raw;
  int lineno = 0;
  bool have_header = false, one_d = false;
  std::vector<std::string> header;
  while (std::getline(in, raw)) {
    ++lineno;
    const std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = origin + ":" + std::to_string(lineno);
    std::vector<std::string> cols = split(line);
    if (!have_header) {
      const std::string h = join_no_space(cols);
      if (h == kHeader2d) {
        one_d = false;
      } else if (h == kHeader1d) {
        one_d = true;
      } else {
        throw UsageError("dwconv bench: " + where + ": bad header '" + line + "', expected '" + kHeader2d +
                         "' or '" + kHeader1d + "'");
      }
      header = cols;
      have_header = true;
      continue;
    }
    if (cols.size() != header.size())
      throw UsageError("dwconv bench: " + where + ": " + std::to_string(cols.size()) + " columns, expected " +
                       std::to_string(header.size()));
    if (cols[0].empty()) throw UsageError("dwconv bench: " + where + ": empty name");
    std::vector<int64_t> v(cols.size(), 0);
    for (size_t i = 1; i < cols.size(); ++i) {
      if (!parse_int(cols[i], v[i]))
        throw UsageError("dwconv bench: " + where + ": column " + header[i] + " is not an integer: '" + cols[i] +
                         "'");
      const bool may_be_zero = header[i] == "pad_h" || header[i] == "pad_w" || header[i] == "pad" ||
                               header[i] == "causal";
      const int64_t lo = may_be_zero ? 0 : 1;
      const int64_t hi = (header[i] == "causal") ? 1 : (int64_t(1) << 31);
      if (v[i] < lo || v[i] > hi)
        throw UsageError("dwconv bench: " + where + ": column " + header[i] + " out of range: " + cols[i]);
    }
    SuiteShape s;
    s.name = cols[0];
    s.one_d = one_d;
    if (one_d) {
      // name,N,C,L,multiplier,k,stride,pad,dil,causal
      s.shape = conv1d_shape(v[1], v[2], v[3], v[5], v[6], v[7], v[8], v[4], v[9] != 0);
    } else {
      // name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w
      Shape& sh = s.shape;
      sh.n = v[1];
      sh.c = v[2];
      sh.h = v[3];
      sh.w = v[4];
      sh.multiplier = v[5];
      sh.kh = v[6];
      sh.kw = v[7];
      sh.stride_h = v[8];
      sh.stride_w = v[9];
      sh.pad_top = sh.pad_bottom = v[10];
      sh.pad_left = sh.pad_right = v[11];
      sh.dil_h = v[12];
      sh.dil_w = v[13];
    }
    if (s.shape.out_h() <= 0 || s.shape.out_w() <= 0)
      throw UsageError("dwconv bench: " + where + ": shape '" + s.name + "' has an empty output (" +
                       s.shape.str() + ")");
    suite.shapes.push_back(std::move(s));
  }
  if (!have_header) throw UsageError("dwconv bench: " + origin + ": empty suite file (no header)");
  if (suite.shapes.empty()) throw UsageError("dwconv bench: " + origin + ": suite has no shapes");
  return suite;
}

Suite load_suite(const std::string& name_or_path) {
  // A readable file wins; otherwise an embedded suite by name.
  std::ifstream f(name_or_path, std::ios::binary);
  if (f) {
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) throw UsageError("dwconv bench: cannot read suite file '" + name_or_path + "'");
    return parse_suite(ss.str(), name_or_path);
  }
  std::string name = name_or_path;
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".csv") == 0 && name.find('/') == std::string::npos)
    name = name.substr(0, name.size() - 4);
  for (int i = 0; i < kEmbeddedSuiteCount; ++i)
    if (name == kEmbeddedSuites[i].name) {
      Suite s = parse_suite(kEmbeddedSuites[i].text, std::string(kEmbeddedSuites[i].name) + ".csv");
      s.name = kEmbeddedSuites[i].name;
      return s;
    }
  std::string list;
  for (const auto& n : suite_names()) list += (list.empty() ? "" : ", ") + n;
  throw UsageError("dwconv bench: unknown suite '" + name_or_path + "' (not a readable file; built-in suites: " +
                   list + ")");
}

}  // namespace dwconv::cli
