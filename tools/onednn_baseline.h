// oneDNN baseline for `dwconv bench`: a grouped convolution with groups = C
// (weights goihw: g = C, o = multiplier, i = 1), timed on the CPU in the same
// run as dwconv. Built only when oneDNN is found (DWCONV_WITH_ONEDNN).
#pragma once

#include <string>

#include "dwconv/dwconv.h"
#include "timing.h"

namespace dwconv::cli {

struct BaselineResult {
  bool ok = false;
  double ms = 0;
  int calls = 0;
  std::string impl;   // oneDNN's implementation names and formats, "fwd:jit_uni_dw:avx512_core nhwc"
  std::string error;  // why it is n/a
};

// True when this binary was built with oneDNN.
bool onednn_available();

// pass: fwd | bwd_input | bwd_weight | train (forward + backward data +
// backward weights with the bias gradient). plain_nchw = false: src, dst and
// weights use format_tag::any (oneDNN's best; when that lands on a reference
// implementation, NHWC is tried as well); plain_nchw = true: src/dst are
// nchw. The user's data (in `layout`) is reordered to oneDNN's formats
// outside the timed region; `rotate_bytes` is the working set to exceed by
// rotating buffer sets. Never throws: failures give ok = false.
BaselineResult onednn_time(const std::string& pass, const Shape& s, DType dtype, Layout layout, bool plain_nchw,
                           const TimingPolicy& pol, size_t rotate_bytes);

}  // namespace dwconv::cli
