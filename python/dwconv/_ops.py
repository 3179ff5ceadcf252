"""The dwconv custom ops (torch.ops.dwconv.*).

Four ops, one per direction of the native library, all 2D (1D runs as 2D
with H = 1, see functional.py):

  conv2d_forward(input, weight, bias?, stride[2], padding[4], dilation[2], channels_last) -> output
  conv2d_grad_input(grad_output, weight, input_size[4], stride[2], padding[4], dilation[2], channels_last) -> grad_input
  conv2d_grad_weight(grad_output, input, weight_size[4], stride[2], padding[4], dilation[2], channels_last) -> grad_weight
  conv2d_grad_bias(grad_output, channels_last) -> grad_bias

padding is (top, bottom, left, right). channels_last picks the layout the
kernel runs in (nhwc when true): activations are made contiguous in it (a
no-op when they already are) and activation outputs are allocated in it. The
weight is dense [C*m, 1, kh, kw], the bias [C*m].

Each op has a fake (meta) implementation for torch.compile, an autograd
formula (grad ops included, so double backward works) and is opaque to
torch.compile. Autocast is applied by the public functions in functional.py.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor

from . import _C

_DTYPE = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
SUPPORTED_DTYPES = tuple(_DTYPE)
_GRAIN = 32768  # multiply-adds below which a CPU call runs single-threaded
_FORWARD, _GRAD_INPUT, _GRAD_WEIGHT, _GRAD_BIAS = 0, 1, 2, 3


def _fmt(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def out_size(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dil: int) -> int:
    """Output length of one spatial dimension (floor division, like PyTorch)."""
    return (size + pad_lo + pad_hi - dil * (k - 1) - 1) // stride + 1


def _output_shape(input_size, weight_size, stride, padding, dilation) -> List[int]:
    n, c, h, w = input_size
    oc, _, kh, kw = weight_size
    oh = out_size(h, kh, stride[0], padding[0], padding[1], dilation[0])
    ow = out_size(w, kw, stride[1], padding[2], padding[3], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"dwconv: output size would be {oh}x{ow} for input {h}x{w}, kernel {kh}x{kw}, stride "
            f"{tuple(stride)}, padding (top, bottom, left, right) {tuple(padding)}, dilation {tuple(dilation)}: "
            "the kernel (with dilation) is larger than the padded input")
    return [n, oc, oh, ow]


_CUDA_BUILT = bool(_C.cuda_built())


def _check_cuda_build(t: Tensor) -> None:
    # is_cpu / is_cuda rather than device.type: this runs on every call, and building a torch.device costs more
    # than the rest of the check.
    if t.is_cpu:
        return
    if t.is_cuda and not _CUDA_BUILT:
        raise RuntimeError(
            "dwconv: got a CUDA tensor but this dwconv build has no CUDA backend (it was built without nvcc or "
            "with DWCONV_CUDA=OFF). Rebuild with the CUDA toolkit: pip install --no-build-isolation . "
            "(see docs/python.md), or move the tensors to the CPU.")
    if not t.is_cuda:
        raise RuntimeError(f"dwconv: tensors on device '{t.device}' are not supported (cpu and cuda only)")


def _run(direction: int, *, input_size, weight_size, stride, padding, dilation, channels_last: bool, like: Tensor,
         kernel: Optional[str] = None, input: Optional[Tensor] = None, weight: Optional[Tensor] = None,
         bias: Optional[Tensor] = None, output: Optional[Tensor] = None, grad_output: Optional[Tensor] = None,
         grad_input: Optional[Tensor] = None, grad_weight: Optional[Tensor] = None,
         grad_bias: Optional[Tensor] = None) -> None:
    """Calls the native library; every tensor given is dense in the layout already."""
    n, c, h, w = input_size
    oc, _, kh, kw = weight_size
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = padding
    cpu = like.is_cpu
    if not cpu:
        _check_cuda_build(like)
    # Positional, in the order of the binding's arguments (DWCONV_CALL_ARGS in python/src/binding.cpp; a test
    # holds the two together): pybind11 matching 20-odd keyword arguments by name took 4 us a call.
    args = [direction, n, c, h, w, oc // c, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, _DTYPE[like.dtype],
            1 if channels_last else 0, 0 if cpu else 1,
            0 if input is None else input.data_ptr(), 0 if weight is None else weight.data_ptr(),
            0 if bias is None else bias.data_ptr(), 0 if output is None else output.data_ptr(),
            0 if grad_output is None else grad_output.data_ptr(),
            0 if grad_input is None else grad_input.data_ptr(),
            0 if grad_weight is None else grad_weight.data_ptr(), 0 if grad_bias is None else grad_bias.data_ptr()]
    if cpu:
        # torch's intra-op thread count; tiny problems run on one thread (like ATen's grain size), since
        # waking a thread team costs more than the work.
        oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        work = n * oc * max(oh, 1) * max(ow, 1) * kh * kw
        # No workspace from here: the library allocates it with new[] per call, which glibc serves from its heap
        # once a size has been seen (a cached buffer measured no faster).
        _C.run(*args, 1 if work < _GRAIN else torch.get_num_threads(), 0, kernel)
        return
    with torch.cuda.device(like.device):
        args += [0, torch.cuda.current_stream(like.device).cuda_stream, kernel]
        # Scratch from PyTorch's caching allocator (on this stream) rather than from the backend.
        need = _C.workspace_size(*args)
        if need > 0:
            ws = torch.empty(need, dtype=torch.uint8, device=like.device)
            _C.run(*args, ws.data_ptr(), need)
        else:
            _C.run(*args)


_NAMES = {torch.float32: "float", torch.float64: "double", torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16"}


def _check_tensors(**tensors: Optional[Tensor]) -> None:
    """Same dtype (a supported one) and device for every tensor of one call; the native library gets raw
    pointers, so this is what keeps it from reading the wrong memory."""
    name0 = t0 = dtype = device = None
    for name, t in tensors.items():
        if t is None:
            continue
        if t0 is None:
            name0, t0, dtype, device = name, t, t.dtype, t.device
            if dtype not in _DTYPE:
                raise TypeError(f"dwconv: {name0} dtype {dtype} is not supported (float32, float64, float16, "
                                "bfloat16)")
            continue
        if t.dtype != dtype:
            raise RuntimeError(f"dwconv: {name0} type ({_NAMES.get(dtype, dtype)}) and {name} type "
                               f"({_NAMES.get(t.dtype, t.dtype)}) should be the same")
        if t.device != device:
            raise RuntimeError(f"dwconv: expected all tensors on the same device, but {name0} is on {device} "
                               f"and {name} is on {t.device}")


def _check_4d(name: str, t, size=None) -> None:
    if (len(t) if size is not None else t.dim()) != 4:
        raise ValueError(f"dwconv: {name} must be 4D, got size {list(t) if size is not None else list(t.shape)}")


def _check_weight(weight_size, c: int) -> None:
    oc, one = weight_size[0], weight_size[1]
    if one != 1 or oc < 1 or c < 1 or oc % c != 0:
        raise ValueError(f"dwconv: depthwise weight must have size [C*m, 1, kh, kw] with C = {c} input channels, "
                         f"got {list(weight_size)}")


def _check_geometry(stride, padding, dilation) -> None:
    if len(stride) != 2 or len(dilation) != 2 or len(padding) != 4:
        raise ValueError(f"dwconv: op expects stride[2], padding[4] (top, bottom, left, right), dilation[2]; got "
                         f"stride {list(stride)}, padding {list(padding)}, dilation {list(dilation)}")
    if min(stride) < 1:
        raise ValueError(f"dwconv: stride must be >= 1, got {tuple(stride)}")
    if min(dilation) < 1:
        raise ValueError(f"dwconv: dilation must be >= 1, got {tuple(dilation)}")
    if min(padding) < 0:
        raise ValueError(f"dwconv: padding must be >= 0, got {tuple(padding)}")


def _check_forward(input, weight, bias, stride, padding, dilation) -> List[int]:
    _check_tensors(input=input, weight=weight, bias=bias)
    _check_4d("input", input)
    _check_4d("weight", weight)
    _check_weight(weight.shape, input.shape[1])
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"dwconv: bias must have size [{weight.shape[0]}], got {list(bias.shape)}")
    _check_geometry(stride, padding, dilation)
    return _output_shape(input.shape, weight.shape, stride, padding, dilation)


def _check_grad_output(grad_output, expected) -> None:
    if list(grad_output.shape) != list(expected):
        raise ValueError(f"dwconv: grad_output must have size {list(expected)}, got {list(grad_output.shape)}")


def _check_grad_input(grad_output, weight, input_size, stride, padding, dilation) -> None:
    _check_tensors(grad_output=grad_output, weight=weight)
    _check_4d("input_size", input_size, size=True)
    _check_4d("weight", weight)
    _check_weight(weight.shape, input_size[1])
    _check_geometry(stride, padding, dilation)
    _check_grad_output(grad_output, _output_shape(input_size, weight.shape, stride, padding, dilation))


def _check_grad_weight(grad_output, input, weight_size, stride, padding, dilation) -> None:
    _check_tensors(grad_output=grad_output, input=input)
    _check_4d("input", input)
    _check_4d("weight_size", weight_size, size=True)
    _check_weight(weight_size, input.shape[1])
    _check_geometry(stride, padding, dilation)
    _check_grad_output(grad_output, _output_shape(input.shape, weight_size, stride, padding, dilation))


def _check_grad_bias(grad_output) -> None:
    _check_tensors(grad_output=grad_output)
    _check_4d("grad_output", grad_output)


# ----------------------------------------------------------------- forward
# Each op is its check followed by an unchecked body (_forward, _grad_input, ...), which the calls that skip the
# dispatcher (below) share.
def _forward(input, weight, bias, stride, padding, dilation, channels_last: bool, shape) -> Tensor:
    fmt = _fmt(channels_last)
    x = input.contiguous(memory_format=fmt)
    wt = weight.contiguous()
    b = None if bias is None else bias.contiguous()
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    if out.numel() == 0:
        return out
    _run(_FORWARD, input_size=x.shape, weight_size=wt.shape, stride=stride, padding=padding, dilation=dilation,
         channels_last=channels_last, like=x, input=x, weight=wt, bias=b, output=out)
    return out


@torch.library.custom_op("dwconv::conv2d_forward", mutates_args=())
def conv2d_forward(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Sequence[int],
                   padding: Sequence[int], dilation: Sequence[int], channels_last: bool) -> Tensor:
    shape = _check_forward(input, weight, bias, stride, padding, dilation)
    return _forward(input, weight, bias, stride, padding, dilation, channels_last, shape)


@conv2d_forward.register_fake
def _(input, weight, bias, stride, padding, dilation, channels_last):
    shape = _check_forward(input, weight, bias, stride, padding, dilation)
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=_fmt(channels_last))


# -------------------------------------------------------------- grad_input
def _grad_input(grad_output, weight, input_size, stride, padding, dilation, channels_last: bool) -> Tensor:
    fmt = _fmt(channels_last)
    gy = grad_output.contiguous(memory_format=fmt)
    wt = weight.contiguous()
    out = torch.empty(list(input_size), dtype=gy.dtype, device=gy.device, memory_format=fmt)
    if out.numel() == 0:
        return out
    _run(_GRAD_INPUT, input_size=out.shape, weight_size=wt.shape, stride=stride, padding=padding,
         dilation=dilation, channels_last=channels_last, like=gy, grad_output=gy, weight=wt, grad_input=out)
    return out


@torch.library.custom_op("dwconv::conv2d_grad_input", mutates_args=())
def conv2d_grad_input(grad_output: Tensor, weight: Tensor, input_size: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int], channels_last: bool) -> Tensor:
    _check_grad_input(grad_output, weight, input_size, stride, padding, dilation)
    return _grad_input(grad_output, weight, input_size, stride, padding, dilation, channels_last)


@conv2d_grad_input.register_fake
def _(grad_output, weight, input_size, stride, padding, dilation, channels_last):
    _check_grad_input(grad_output, weight, input_size, stride, padding, dilation)
    return torch.empty(list(input_size), dtype=grad_output.dtype, device=grad_output.device,
                       memory_format=_fmt(channels_last))


# ------------------------------------------------------------- grad_weight
def _grad_weight(grad_output, input, weight_size, stride, padding, dilation, channels_last: bool) -> Tensor:
    fmt = _fmt(channels_last)
    gy = grad_output.contiguous(memory_format=fmt)
    x = input.contiguous(memory_format=fmt)
    out = torch.empty(list(weight_size), dtype=gy.dtype, device=gy.device)
    if x.numel() == 0 or gy.numel() == 0:
        return out.zero_()
    _run(_GRAD_WEIGHT, input_size=x.shape, weight_size=out.shape, stride=stride, padding=padding,
         dilation=dilation, channels_last=channels_last, like=gy, grad_output=gy, input=x, grad_weight=out)
    return out


@torch.library.custom_op("dwconv::conv2d_grad_weight", mutates_args=())
def conv2d_grad_weight(grad_output: Tensor, input: Tensor, weight_size: Sequence[int], stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int], channels_last: bool) -> Tensor:
    _check_grad_weight(grad_output, input, weight_size, stride, padding, dilation)
    return _grad_weight(grad_output, input, weight_size, stride, padding, dilation, channels_last)


@conv2d_grad_weight.register_fake
def _(grad_output, input, weight_size, stride, padding, dilation, channels_last):
    _check_grad_weight(grad_output, input, weight_size, stride, padding, dilation)
    return torch.empty(list(weight_size), dtype=grad_output.dtype, device=grad_output.device)


# --------------------------------------------------------------- grad_bias
def _grad_bias(grad_output, channels_last: bool) -> Tensor:
    fmt = _fmt(channels_last)
    gy = grad_output.contiguous(memory_format=fmt)
    n, oc, oh, ow = gy.shape
    out = torch.empty([oc], dtype=gy.dtype, device=gy.device)
    if gy.numel() == 0:
        return out.zero_()
    # The library's shape for grad_bias: c = oc, multiplier 1, a 1x1 kernel over [oh, ow].
    _run(_GRAD_BIAS, input_size=(n, oc, oh, ow), weight_size=(oc, 1, 1, 1), stride=(1, 1), padding=(0, 0, 0, 0),
         dilation=(1, 1), channels_last=channels_last, like=gy, grad_output=gy, grad_bias=out)
    return out


@torch.library.custom_op("dwconv::conv2d_grad_bias", mutates_args=())
def conv2d_grad_bias(grad_output: Tensor, channels_last: bool) -> Tensor:
    _check_grad_bias(grad_output)
    return _grad_bias(grad_output, channels_last)


@conv2d_grad_bias.register_fake
def _(grad_output, channels_last):
    _check_grad_bias(grad_output)
    return grad_output.new_empty([grad_output.shape[1]])


# ------------------------------------------------ calls that skip the dispatcher
# A call through torch.ops.dwconv.* enters Python three times before it reaches the bodies above (torch.library's
# autograd wrapper, its backend wrapper, a dynamo guard), and once more for autograd.Function when a gradient is
# wanted: 40 to 60 us a call on a Zen 3 core, more than the whole kernel of a small layer. In plain eager code the
# dispatcher does nothing else, so functional.py and the backward formulas call the bodies directly when _plain()
# holds (with _Conv2dForward for the gradient), and go through the dispatcher whenever something may be watching
# or rewriting the call.

_PLAIN_TYPES = (Tensor, torch.nn.Parameter)
_get_tracing_state = torch._C._get_tracing_state
_dispatch_modes = torch._C._len_torch_dispatch_stack
_functorch_active = torch._C._are_functorch_transforms_active
_profiler_enabled = torch._C._autograd._profiler_enabled
_has_torch_function = torch._C._has_torch_function_variadic
_is_grad_enabled = torch.is_grad_enabled


def _plain(*tensors: Optional[Tensor]) -> bool:
    """True when the dispatcher would do nothing but run the op body on these tensors: not compiling or tracing
    (torch.compile, export, torch.jit.trace), no TorchFunctionMode or TorchDispatchMode (fake tensors, make_fx,
    FlopCounterMode, torch.device(...) included), no functorch transform (vmap, grad, functionalize), the profiler
    off (it records the op), and only plain or Parameter strided CPU / CUDA tensors (no subclass, meta tensor,
    sparse or nested tensor)."""
    if (torch.compiler.is_compiling() or _get_tracing_state() is not None or _dispatch_modes()
            or _functorch_active() or _profiler_enabled() or _has_torch_function(*tensors)):
        return False
    for t in tensors:
        if t is not None and (type(t) not in _PLAIN_TYPES or t.layout is not torch.strided
                              or not (t.is_cpu or t.is_cuda)):
            return False
    return True


def _grad_needed(*tensors: Optional[Tensor]) -> bool:
    if not _is_grad_enabled():
        return False
    for t in tensors:
        if t is not None and t.requires_grad:
            return True
    return False


def forward_validated(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int], channels_last: bool) -> Tensor:
    """torch.ops.dwconv.conv2d_forward for arguments that functional.py has validated already (every check of
    _check_forward but the output size), skipping the dispatcher when _plain()."""
    if not _plain(input, weight, bias):
        return torch.ops.dwconv.conv2d_forward(input, weight, bias, list(stride), list(padding), list(dilation),
                                               channels_last)
    shape = _output_shape(input.shape, weight.shape, stride, padding, dilation)
    if _grad_needed(input, weight, bias):
        return _Conv2dForward.apply(input, weight, bias, stride, padding, dilation, channels_last, shape)
    return _forward(input, weight, bias, stride, padding, dilation, channels_last, shape)


# The backward formulas call the ops through these: directly when _plain() holds and no graph is being recorded
# (a double backward goes through the dispatcher, whose autograd formulas build it). Unlike forward_validated()
# these keep the op's checks, as no caller has validated the arguments: a few us, and C++ gets raw pointers.
def _call_forward(input, weight, bias, stride, padding, dilation, channels_last):
    if _plain(input, weight, bias) and not _grad_needed(input, weight, bias):
        shape = _check_forward(input, weight, bias, stride, padding, dilation)
        return _forward(input, weight, bias, stride, padding, dilation, channels_last, shape)
    return conv2d_forward(input, weight, bias, stride, padding, dilation, channels_last)


def _call_grad_input(grad_output, weight, input_size, stride, padding, dilation, channels_last):
    if _plain(grad_output, weight) and not _grad_needed(grad_output, weight):
        _check_grad_input(grad_output, weight, input_size, stride, padding, dilation)
        return _grad_input(grad_output, weight, input_size, stride, padding, dilation, channels_last)
    return conv2d_grad_input(grad_output, weight, input_size, stride, padding, dilation, channels_last)


def _call_grad_weight(grad_output, input, weight_size, stride, padding, dilation, channels_last):
    if _plain(grad_output, input) and not _grad_needed(grad_output, input):
        _check_grad_weight(grad_output, input, weight_size, stride, padding, dilation)
        return _grad_weight(grad_output, input, weight_size, stride, padding, dilation, channels_last)
    return conv2d_grad_weight(grad_output, input, weight_size, stride, padding, dilation, channels_last)


def _call_grad_bias(grad_output, channels_last):
    if _plain(grad_output) and not _grad_needed(grad_output):
        _check_grad_bias(grad_output)
        return _grad_bias(grad_output, channels_last)
    return conv2d_grad_bias(grad_output, channels_last)


# ---------------------------------------------------------------- autograd
# Every op is linear in each tensor argument, so each gradient is another op:
#   y  = fwd(x, w) + b        dL/dx = gin(gy, w)   dL/dw = gw(gy, x)   dL/db = gb(gy)
#   gx = gin(gy, w)           d/dgy = fwd(ggx, w)  d/dw  = gw(gy, ggx)
#   gw = gwt(gy, x)           d/dgy = fwd(x, ggw)  d/dx  = gin(gy, ggw)
#   gb = gb(gy)               d/dgy = ggb broadcast over N, H, W

def _needs(ctx, i: int) -> bool:
    flags = getattr(ctx, "needs_input_grad", None)
    return True if flags is None else bool(flags[i])


def _fwd_setup(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, channels_last = inputs
    ctx.geom = (list(stride), list(padding), list(dilation), channels_last)
    ctx.input_size = list(input.shape)
    ctx.weight_size = list(weight.shape)
    ctx.has_bias = bias is not None
    # Keep the activation alive only when the weight gradient needs it.
    ctx.save_for_backward(input if _needs(ctx, 1) else None, weight if _needs(ctx, 0) else None)


def _fwd_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    stride, padding, dilation, cl = ctx.geom
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:
        gx = _call_grad_input(grad, weight, ctx.input_size, stride, padding, dilation, cl)
    if ctx.needs_input_grad[1]:
        gw = _call_grad_weight(grad, input, ctx.weight_size, stride, padding, dilation, cl)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        gb = _call_grad_bias(grad, cl)
    return gx, gw, gb, None, None, None, None


conv2d_forward.register_autograd(_fwd_backward, setup_context=_fwd_setup)


class _Conv2dForward(torch.autograd.Function):
    """conv2d_forward's autograd formula for forward_validated() when it skips the dispatcher. The old-style
    forward(ctx, ...) on purpose: a Function with setup_context binds its arguments with inspect.signature on every
    apply (about 50 us)."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, channels_last, shape):
        _fwd_setup(ctx, (input, weight, bias, stride, padding, dilation, channels_last), None)
        return _forward(input, weight, bias, stride, padding, dilation, channels_last, shape)

    @staticmethod
    def backward(ctx, grad):
        return _fwd_backward(ctx, grad) + (None,)


def _gin_setup(ctx, inputs, output):
    grad_output, weight, input_size, stride, padding, dilation, channels_last = inputs
    ctx.geom = (list(stride), list(padding), list(dilation), channels_last)
    ctx.weight_size = list(weight.shape)
    ctx.save_for_backward(grad_output if _needs(ctx, 1) else None, weight if _needs(ctx, 0) else None)


def _gin_backward(ctx, ggx):
    grad_output, weight = ctx.saved_tensors
    stride, padding, dilation, cl = ctx.geom
    ggy = gw = None
    if ctx.needs_input_grad[0]:
        ggy = _call_forward(ggx, weight, None, stride, padding, dilation, cl)
    if ctx.needs_input_grad[1]:
        gw = _call_grad_weight(grad_output, ggx, ctx.weight_size, stride, padding, dilation, cl)
    return ggy, gw, None, None, None, None, None


conv2d_grad_input.register_autograd(_gin_backward, setup_context=_gin_setup)


def _gwt_setup(ctx, inputs, output):
    grad_output, input, weight_size, stride, padding, dilation, channels_last = inputs
    ctx.geom = (list(stride), list(padding), list(dilation), channels_last)
    ctx.input_size = list(input.shape)
    ctx.save_for_backward(grad_output if _needs(ctx, 1) else None, input if _needs(ctx, 0) else None)


def _gwt_backward(ctx, ggw):
    grad_output, input = ctx.saved_tensors
    stride, padding, dilation, cl = ctx.geom
    ggy = gx = None
    if ctx.needs_input_grad[0]:
        ggy = _call_forward(input, ggw, None, stride, padding, dilation, cl)
    if ctx.needs_input_grad[1]:
        gx = _call_grad_input(grad_output, ggw, ctx.input_size, stride, padding, dilation, cl)
    return ggy, gx, None, None, None, None, None


conv2d_grad_weight.register_autograd(_gwt_backward, setup_context=_gwt_setup)


def _gb_setup(ctx, inputs, output):
    grad_output, channels_last = inputs
    ctx.size = list(grad_output.shape)
    ctx.channels_last = channels_last


def _gb_backward(ctx, ggb):
    ggy = None
    if ctx.needs_input_grad[0]:
        ggy = ggb.reshape(1, -1, 1, 1).expand(ctx.size).contiguous(memory_format=_fmt(ctx.channels_last))
    return ggy, None


conv2d_grad_bias.register_autograd(_gb_backward, setup_context=_gb_setup)


def selected_kernel(direction: str, input: Tensor, weight: Tensor, stride=(1, 1), padding=(0, 0, 0, 0),
                    dilation=(1, 1), channels_last: bool = False) -> str:
    """Name of the native kernel variant that would run (direction: forward, grad_input, grad_weight,
    grad_bias) for a 4D input and weight with the op-level arguments."""
    d = {"forward": _FORWARD, "grad_input": _GRAD_INPUT, "grad_weight": _GRAD_WEIGHT, "grad_bias": _GRAD_BIAS}
    if direction not in d:
        raise ValueError(f"dwconv: direction must be one of {sorted(d)}, got {direction!r}")
    n, c, h, w = input.shape
    oc, _, kh, kw = weight.shape
    if direction == "grad_bias":
        oshape = _output_shape(input.shape, weight.shape, stride, padding, dilation)
        n, c, h, w = oshape
        oc, kh, kw, stride, padding, dilation = oshape[1], 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)
    dev = 1 if input.device.type == "cuda" else 0
    return _C.selected_kernel(
        direction=d[direction], n=n, c=c, h=h, w=w, multiplier=oc // c, kh=kh, kw=kw, stride_h=stride[0],
        stride_w=stride[1], dil_h=dilation[0], dil_w=dilation[1], pad_top=padding[0], pad_bottom=padding[1],
        pad_left=padding[2], pad_right=padding[3], dtype=_DTYPE[input.dtype], layout=int(channels_last),
        device=dev, input=1, weight=1, bias=0, output=1, grad_output=1, grad_input=1, grad_weight=1, grad_bias=1,
        threads=torch.get_num_threads() if dev == 0 else 0)
