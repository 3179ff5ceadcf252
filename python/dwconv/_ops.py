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
    if t.device.type == "cuda" and not _CUDA_BUILT:
        raise RuntimeError(
            "dwconv: got a CUDA tensor but this dwconv build has no CUDA backend (it was built without nvcc or "
            "with DWCONV_CUDA=OFF). Rebuild with the CUDA toolkit: pip install --no-build-isolation . "
            "(see docs/python.md), or move the tensors to the CPU.")
    if t.device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"dwconv: tensors on device '{t.device}' are not supported (cpu and cuda only)")


def _run(direction: int, *, input_size, weight_size, stride, padding, dilation, channels_last: bool, like: Tensor,
         kernel: Optional[str] = None, **ptrs: Optional[Tensor]) -> None:
    """Calls the native library; every tensor in ptrs is dense in the layout already."""
    _check_cuda_build(like)
    n, c, h, w = input_size
    oc, _, kh, kw = weight_size
    args = dict(
        direction=direction, n=n, c=c, h=h, w=w, multiplier=oc // c, kh=kh, kw=kw, stride_h=stride[0],
        stride_w=stride[1], dil_h=dilation[0], dil_w=dilation[1], pad_top=padding[0], pad_bottom=padding[1],
        pad_left=padding[2], pad_right=padding[3], dtype=_DTYPE[like.dtype], layout=1 if channels_last else 0,
        kernel=kernel)
    for name, t in ptrs.items():
        args[name] = 0 if t is None else t.data_ptr()
    if like.device.type == "cuda":
        args["device"] = 1
        with torch.cuda.device(like.device):
            args["stream"] = torch.cuda.current_stream(like.device).cuda_stream
            # Scratch from PyTorch's caching allocator (on this stream) rather than from the backend.
            need = _C.workspace_size(**args)
            if need > 0:
                ws = torch.empty(need, dtype=torch.uint8, device=like.device)
                args["workspace"], args["workspace_bytes"] = ws.data_ptr(), need
            _C.run(**args)
    else:
        args["device"] = 0
        # torch's intra-op thread count; tiny problems run on one thread (like ATen's grain size), since
        # waking a thread team costs more than the work.
        oh = out_size(h, kh, stride[0], padding[0], padding[1], dilation[0])
        ow = out_size(w, kw, stride[1], padding[2], padding[3], dilation[1])
        work = n * oc * max(oh, 1) * max(ow, 1) * kh * kw
        args["threads"] = 1 if work < _GRAIN else torch.get_num_threads()
        _C.run(**args)


_NAMES = {torch.float32: "float", torch.float64: "double", torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16"}


def _check_tensors(**tensors: Optional[Tensor]) -> None:
    """Same dtype (a supported one) and device for every tensor of one call; the native library gets raw
    pointers, so this is what keeps it from reading the wrong memory."""
    items = [(k, t) for k, t in tensors.items() if t is not None]
    name0, t0 = items[0]
    if t0.dtype not in _DTYPE:
        raise TypeError(f"dwconv: {name0} dtype {t0.dtype} is not supported (float32, float64, float16, bfloat16)")
    for name, t in items[1:]:
        if t.dtype != t0.dtype:
            raise RuntimeError(f"dwconv: {name0} type ({_NAMES.get(t0.dtype, t0.dtype)}) and {name} type "
                               f"({_NAMES.get(t.dtype, t.dtype)}) should be the same")
        if t.device != t0.device:
            raise RuntimeError(f"dwconv: expected all tensors on the same device, but {name0} is on {t0.device} "
                               f"and {name} is on {t.device}")


def _check_4d(name: str, t, size=None) -> None:
    shape = list(t) if size is not None else list(t.shape)
    if len(shape) != 4:
        raise ValueError(f"dwconv: {name} must be 4D, got size {shape}")


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
    if bias is not None and list(bias.shape) != [weight.shape[0]]:
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
@torch.library.custom_op("dwconv::conv2d_forward", mutates_args=())
def conv2d_forward(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Sequence[int],
                   padding: Sequence[int], dilation: Sequence[int], channels_last: bool) -> Tensor:
    shape = _check_forward(input, weight, bias, stride, padding, dilation)
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


@conv2d_forward.register_fake
def _(input, weight, bias, stride, padding, dilation, channels_last):
    shape = _check_forward(input, weight, bias, stride, padding, dilation)
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=_fmt(channels_last))


# -------------------------------------------------------------- grad_input
@torch.library.custom_op("dwconv::conv2d_grad_input", mutates_args=())
def conv2d_grad_input(grad_output: Tensor, weight: Tensor, input_size: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int], channels_last: bool) -> Tensor:
    _check_grad_input(grad_output, weight, input_size, stride, padding, dilation)
    fmt = _fmt(channels_last)
    gy = grad_output.contiguous(memory_format=fmt)
    wt = weight.contiguous()
    out = torch.empty(list(input_size), dtype=gy.dtype, device=gy.device, memory_format=fmt)
    if out.numel() == 0:
        return out
    _run(_GRAD_INPUT, input_size=out.shape, weight_size=wt.shape, stride=stride, padding=padding,
         dilation=dilation, channels_last=channels_last, like=gy, grad_output=gy, weight=wt, grad_input=out)
    return out


@conv2d_grad_input.register_fake
def _(grad_output, weight, input_size, stride, padding, dilation, channels_last):
    _check_grad_input(grad_output, weight, input_size, stride, padding, dilation)
    return torch.empty(list(input_size), dtype=grad_output.dtype, device=grad_output.device,
                       memory_format=_fmt(channels_last))


# ------------------------------------------------------------- grad_weight
@torch.library.custom_op("dwconv::conv2d_grad_weight", mutates_args=())
def conv2d_grad_weight(grad_output: Tensor, input: Tensor, weight_size: Sequence[int], stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int], channels_last: bool) -> Tensor:
    _check_grad_weight(grad_output, input, weight_size, stride, padding, dilation)
    fmt = _fmt(channels_last)
    gy = grad_output.contiguous(memory_format=fmt)
    x = input.contiguous(memory_format=fmt)
    out = torch.empty(list(weight_size), dtype=gy.dtype, device=gy.device)
    if x.numel() == 0 or gy.numel() == 0:
        return out.zero_()
    _run(_GRAD_WEIGHT, input_size=x.shape, weight_size=out.shape, stride=stride, padding=padding,
         dilation=dilation, channels_last=channels_last, like=gy, grad_output=gy, input=x, grad_weight=out)
    return out


@conv2d_grad_weight.register_fake
def _(grad_output, input, weight_size, stride, padding, dilation, channels_last):
    _check_grad_weight(grad_output, input, weight_size, stride, padding, dilation)
    return torch.empty(list(weight_size), dtype=grad_output.dtype, device=grad_output.device)


# --------------------------------------------------------------- grad_bias
@torch.library.custom_op("dwconv::conv2d_grad_bias", mutates_args=())
def conv2d_grad_bias(grad_output: Tensor, channels_last: bool) -> Tensor:
    _check_grad_bias(grad_output)
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


@conv2d_grad_bias.register_fake
def _(grad_output, channels_last):
    _check_grad_bias(grad_output)
    return grad_output.new_empty([grad_output.shape[1]])


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
        gx = conv2d_grad_input(grad, weight, ctx.input_size, stride, padding, dilation, cl)
    if ctx.needs_input_grad[1]:
        gw = conv2d_grad_weight(grad, input, ctx.weight_size, stride, padding, dilation, cl)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        gb = conv2d_grad_bias(grad, cl)
    return gx, gw, gb, None, None, None, None


conv2d_forward.register_autograd(_fwd_backward, setup_context=_fwd_setup)


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
        ggy = conv2d_forward(ggx, weight, None, stride, padding, dilation, cl)
    if ctx.needs_input_grad[1]:
        gw = conv2d_grad_weight(grad_output, ggx, ctx.weight_size, stride, padding, dilation, cl)
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
        ggy = conv2d_forward(input, ggw, None, stride, padding, dilation, cl)
    if ctx.needs_input_grad[1]:
        gx = conv2d_grad_input(grad_output, ggw, ctx.input_size, stride, padding, dilation, cl)
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
