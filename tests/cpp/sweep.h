// Parameter sweeps shared by the CPU and CUDA suites: every direction x
// layout x dtype x kernel variant on the edge shapes and on seeded random
// shapes, each checked against the fp64 reference by dwconv::check.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dwconv/check.h"
#include "dwconv/kernels.h"

namespace dwconv::testing {

inline const std::vector<Direction>& all_directions() {
  static const std::vector<Direction> v = {Direction::forward, Direction::grad_input, Direction::grad_weight,
                                           Direction::grad_bias};
  return v;
}
inline const std::vector<DType>& all_dtypes() {
  static const std::vector<DType> v = {DType::f32, DType::f64, DType::f16, DType::bf16};
  return v;
}
inline const std::vector<Layout>& all_layouts() {
  static const std::vector<Layout> v = {Layout::nchw, Layout::nhwc};
  return v;
}

// Checks every variant that accepts the case (not only the dispatcher's
// choice). Returns the number of variant runs, so a sweep that checks
// nothing can be caught.
inline int check_all_variants(Direction dir, check::Case c) {
  Params p;
  p.shape = c.shape, p.dtype = c.dtype, p.layout = c.layout, p.device = c.device;
  int runs = 0;
  for (const Kernel* k : candidates(dir, p)) {
    c.kernel = k->name;
    const check::Outcome o = check::run_case(dir, c);
    EXPECT_TRUE(o.ok) << to_string(dir) << " " << c.str() << ": " << o.message;
    EXPECT_EQ(o.kernel, k->name);
    ++runs;
  }
  return runs;
}

// Every direction, layout and dtype of one shape on one device.
inline void sweep_shape(const Shape& s, Device device, uint64_t seed) {
  for (Direction dir : all_directions())
    for (Layout layout : all_layouts())
      for (DType dtype : all_dtypes()) {
        check::Case c;
        c.shape = s, c.dtype = dtype, c.layout = layout, c.device = device, c.seed = seed;
        c.bias = (seed % 2) == 0;
        const int runs = check_all_variants(dir, c);
        EXPECT_GE(runs, 1) << "no kernel accepted " << to_string(dir) << " " << c.str();
      }
}

}  // namespace dwconv::testing
