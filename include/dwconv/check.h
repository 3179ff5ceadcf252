// Correctness checking against the fp64 reference, shared by the GoogleTest
// suite and `dwconv check`: fresh random inputs (never zeros), outputs
// poisoned with NaN before the run so an unwritten element fails, relative
// error in the 2-norm against the reference computed from the same
// (storage-rounded) inputs.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "dwconv/dwconv.h"

namespace dwconv::check {

struct Case {
  Shape shape;
  DType dtype = DType::f32;
  Layout layout = Layout::nchw;
  Device device = Device::cpu;
  bool bias = true;                // forward: with a bias
  const char* kernel = nullptr;    // force a variant; null = what dispatch picks
  uint64_t seed = 1;
  int threads = 0;
  std::string str() const;
};

struct Outcome {
  bool ok = false;
  double rel_err = 0;   // ||out - ref|| / ||ref||
  double tol = 0;
  std::string kernel;   // the variant that ran
  std::string message;  // why it failed, empty when ok
};

// Tolerance on the relative error for a storage type: 1e-5 for f32, 1e-12
// for f64, 1e-2 for f16/bf16.
double tolerance(DType dtype);

// Runs one direction on one case and compares it with the reference.
// Throws only for bad cases (dwconv::Error) or backend failures. `runner`
// replaces dwconv::run (the tests use it to prove that a broken kernel is
// caught).
using Runner = std::function<void(Direction, const Params&)>;
Outcome run_case(Direction dir, const Case& c, const Runner& runner = {});

// Fixed edge cases: kernel larger than the input, padding larger than the
// kernel, stride larger than the kernel, H or W = 1, C = 1, N = 1,
// multiplier 3, dilation 3, even kernels, 1x11 and 51x5, C = 4096 with 4x4
// images, 1D causal with dilation, asymmetric padding.
std::vector<Shape> edge_shapes();

// A random valid shape over the whole parameter space, small enough that the
// reference runs in milliseconds.
Shape random_shape(std::mt19937_64& rng);

}  // namespace dwconv::check
