// dwconv._C: the thin binding between PyTorch (python/dwconv/*.py) and the
// native library. It knows nothing of torch: every call passes sizes, enums
// and raw pointers (as Python ints, 0 = null), fills one dwconv::Params and
// calls dwconv::run with the GIL released.
//
// Errors: dwconv::Error (bad arguments) -> ValueError,
//         dwconv::BackendError (a CUDA call, an allocation) -> RuntimeError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "dwconv/dwconv.h"
#include "dwconv/kernels.h"

#if defined(DWCONV_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace py = pybind11;

namespace {

template <typename E>
E to_enum(int v) {
  return static_cast<E>(v);  // out-of-range values are rejected by dwconv::validate
}

const void* cptr(uintptr_t v) { return reinterpret_cast<const void*>(v); }
void* mptr(uintptr_t v) { return reinterpret_cast<void*>(v); }

// One Params from the flat argument list shared by run() and selected_kernel().
struct Call {
  dwconv::Direction dir;
  dwconv::Params p;
  std::string kernel;  // keeps p.kernel alive
};

Call make_call(int direction, int64_t n, int64_t c, int64_t h, int64_t w, int64_t multiplier, int64_t kh,
               int64_t kw, int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w, int64_t pad_top,
               int64_t pad_bottom, int64_t pad_left, int64_t pad_right, int dtype, int layout, int device,
               uintptr_t input, uintptr_t weight, uintptr_t bias, uintptr_t output, uintptr_t grad_output,
               uintptr_t grad_input, uintptr_t grad_weight, uintptr_t grad_bias, int threads, uintptr_t stream,
               const std::optional<std::string>& kernel, uintptr_t workspace, size_t workspace_bytes) {
  Call call;
  call.dir = to_enum<dwconv::Direction>(direction);
  dwconv::Shape& s = call.p.shape;
  s.n = n;
  s.c = c;
  s.h = h;
  s.w = w;
  s.multiplier = multiplier;
  s.kh = kh;
  s.kw = kw;
  s.stride_h = stride_h;
  s.stride_w = stride_w;
  s.dil_h = dil_h;
  s.dil_w = dil_w;
  s.pad_top = pad_top;
  s.pad_bottom = pad_bottom;
  s.pad_left = pad_left;
  s.pad_right = pad_right;
  dwconv::Params& p = call.p;
  p.dtype = to_enum<dwconv::DType>(dtype);
  p.layout = to_enum<dwconv::Layout>(layout);
  p.device = to_enum<dwconv::Device>(device);
  p.input = cptr(input);
  p.weight = cptr(weight);
  p.bias = cptr(bias);
  p.output = mptr(output);
  p.grad_output = cptr(grad_output);
  p.grad_input = mptr(grad_input);
  p.grad_weight = mptr(grad_weight);
  p.grad_bias = mptr(grad_bias);
  p.threads = threads;
  p.stream = mptr(stream);
  p.workspace = mptr(workspace);
  p.workspace_bytes = workspace_bytes;
  if (kernel) {
    call.kernel = *kernel;
    p.kernel = call.kernel.c_str();
  }
  return call;
}

#define DWCONV_CALL_ARGS                                                                                      \
  py::arg("direction"), py::arg("n"), py::arg("c"), py::arg("h"), py::arg("w"), py::arg("multiplier"),        \
      py::arg("kh"), py::arg("kw"), py::arg("stride_h"), py::arg("stride_w"), py::arg("dil_h"),               \
      py::arg("dil_w"), py::arg("pad_top"), py::arg("pad_bottom"), py::arg("pad_left"), py::arg("pad_right"), \
      py::arg("dtype"), py::arg("layout"), py::arg("device"), py::arg("input") = 0, py::arg("weight") = 0,    \
      py::arg("bias") = 0, py::arg("output") = 0, py::arg("grad_output") = 0, py::arg("grad_input") = 0,      \
      py::arg("grad_weight") = 0, py::arg("grad_bias") = 0, py::arg("threads") = 0, py::arg("stream") = 0,    \
      py::arg("kernel") = py::none(), py::arg("workspace") = 0, py::arg("workspace_bytes") = 0

// Wraps f(const Call&) in a function taking the flat argument list of
// DWCONV_CALL_ARGS, so run, selected_kernel and workspace_size share one
// signature and one make_call.
template <typename F>
auto with_call(F f) {
  return [f](int direction, int64_t n, int64_t c, int64_t h, int64_t w, int64_t multiplier, int64_t kh, int64_t kw,
             int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w, int64_t pad_top, int64_t pad_bottom,
             int64_t pad_left, int64_t pad_right, int dtype, int layout, int device, uintptr_t input,
             uintptr_t weight, uintptr_t bias, uintptr_t output, uintptr_t grad_output, uintptr_t grad_input,
             uintptr_t grad_weight, uintptr_t grad_bias, int threads, uintptr_t stream,
             std::optional<std::string> kernel, uintptr_t workspace, size_t workspace_bytes) {
    return f(make_call(direction, n, c, h, w, multiplier, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top,
                       pad_bottom, pad_left, pad_right, dtype, layout, device, input, weight, bias, output,
                       grad_output, grad_input, grad_weight, grad_bias, threads, stream, kernel, workspace,
                       workspace_bytes));
  };
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "dwconv native binding: fills one dwconv::Params and calls dwconv::run (see dwconv.h).";

  py::register_exception_translator([](std::exception_ptr e) {
    try {
      if (e) std::rethrow_exception(e);
    } catch (const dwconv::Error& err) {
      PyErr_SetString(PyExc_ValueError, err.what());
    } catch (const dwconv::BackendError& err) {
      PyErr_SetString(PyExc_RuntimeError, err.what());
    }
  });

  m.def(
      "run",
      with_call([](const Call& call) {
        py::gil_scoped_release release;
        dwconv::run(call.dir, call.p);
      }),
      DWCONV_CALL_ARGS,
      "Run one direction (0 forward, 1 grad_input, 2 grad_weight, 3 grad_bias). dtype: 0 f32, 1 f64, 2 f16, "
      "3 bf16; layout: 0 nchw, 1 nhwc; device: 0 cpu, 1 cuda. Pointers are addresses (0 = null); stream is a "
      "cudaStream_t (0 = default stream). CUDA work is asynchronous on that stream. workspace (an address, "
      "workspace_bytes long; 0 = the backend allocates) is scratch of at least workspace_size() bytes.");

  m.def(
      "selected_kernel",
      with_call([](const Call& call) { return dwconv::selected_kernel(call.dir, call.p); }),
      DWCONV_CALL_ARGS,
      "Name of the kernel variant run() would use for these arguments (validates them; pointers only need to be "
      "non-zero).");

  m.def(
      "workspace_size",
      with_call([](const Call& call) { return dwconv::workspace_size(call.dir, call.p); }),
      DWCONV_CALL_ARGS, "Scratch bytes the selected kernel needs for these arguments (0 for most).");

  m.def("cuda_built", []() {
#if defined(DWCONV_WITH_CUDA)
    return true;
#else
    return false;
#endif
  }, "True when the CUDA backend was compiled in.");

  m.def("cuda_version", []() {
#if defined(DWCONV_WITH_CUDA)
    return int(CUDART_VERSION);
#else
    return 0;
#endif
  }, "CUDART_VERSION the module was built against (e.g. 13000), or 0 without CUDA.");

  m.def("cuda_available", []() { return dwconv::cuda_available(); },
        "Built with CUDA and a CUDA device is present.");

  m.def("set_autotune", [](bool on) { dwconv::set_autotune(on); }, py::arg("on"),
        "Autotuning on or off for this process (dwconv::set_autotune; DWCONV_AUTOTUNE=1 turns it on at start).");
  m.def("autotune_enabled", []() { return dwconv::autotune_enabled(); }, "Whether autotuning is on.");
  m.def("autotune_clear", []() { dwconv::autotune_clear(); }, "Forget every kept choice.");
  m.def("autotune_entries", []() {
    py::list out;
    for (const dwconv::AutotuneEntry& e : dwconv::autotune_entries()) {
      py::dict d;
      d["key"] = e.key;
      d["kernel"] = e.kernel;
      d["times_ms"] = e.times_ms;  // [(name, median ms)], fastest first
      out.append(d);
    }
    return out;
  }, "Every kept choice as {key, kernel, times_ms: [(name, ms), ...] fastest first}.");

  m.def("kernels", []() {
    py::list out;
    for (const dwconv::Kernel& k : dwconv::kernels())
      out.append(py::make_tuple(k.name, dwconv::to_string(k.device), dwconv::to_string(k.direction)));
    return out;
  }, "Every kernel variant of this build as (name, device, direction).");

  m.attr("__version__") = DWCONV_VERSION;
}
