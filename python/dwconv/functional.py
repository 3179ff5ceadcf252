"""dwconv.conv2d / dwconv.conv1d: F.conv2d / F.conv1d with groups = input channels.

Arguments, output shape and values follow PyTorch; the channel multiplier is
weight.shape[0] // C. Extra: padding='causal' for conv1d and explicit
asymmetric zero padding through the keyword asymmetric_padding.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import _ops

_IntOr = Union[int, Sequence[int]]


def _pair(value, name: str, n: int) -> Tuple[int, ...]:
    if isinstance(value, bool):
        raise TypeError(f"dwconv: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * n
    try:
        t = tuple(value)
    except TypeError:
        raise TypeError(f"dwconv: {name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(t) == 1:
        t = t * n
    if len(t) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in t):
        raise ValueError(f"dwconv: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return t


def _suggest_channels_last(x: Tensor) -> bool:
    try:
        from torch._prims_common import suggest_memory_format
    except ImportError:  # pragma: no cover - older torch
        s = x.stride()
        return s[1] < s[2] and s[1] < s[3]
    return suggest_memory_format(x) == torch.channels_last


def _channels_last(x: Tensor) -> bool:
    """The layout to run in for a 4D activation, chosen as F.conv2d chooses its output memory format:
    nhwc for a channels_last tensor that is not plain contiguous; when a tensor is both (C == 1, or
    H == W == 1) its strides decide, like Tensor.suggest_memory_format(); other non-contiguous tensors run
    in the layout their strides are closer to, so the one copy made is the cheap one."""
    if x.is_contiguous():
        return x.is_contiguous(memory_format=torch.channels_last) and _suggest_channels_last(x)
    if x.is_contiguous(memory_format=torch.channels_last):
        return True
    return _suggest_channels_last(x)


def _autocast(input: Tensor, *tensors: Optional[Tensor]):
    """What autocast does for F.conv*: float tensors (not float64) go to the autocast dtype. Returns
    (input, *tensors)."""
    tensors = (input,) + tensors
    # is_cpu / is_cuda rather than input.device.type, which builds a torch.device on every call.
    device_type = "cpu" if input.is_cpu else "cuda" if input.is_cuda else None
    if device_type is None or not torch.is_autocast_enabled(device_type):
        return tensors
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != torch.float64 else t
                 for t in tensors)


def _padding_4(padding, asymmetric_padding, k, dil, stride, nd: int):
    """(top, bottom, left, right) for the 2D op; nd = 1 or 2 is the user-facing dimensionality, k/dil/stride
    are (h, w) pairs."""
    if asymmetric_padding is not None:
        if not (isinstance(padding, int) and padding == 0) and padding != (0,) * nd and padding != "valid":
            raise ValueError(f"dwconv: give either padding or asymmetric_padding, got padding={padding!r} "
                             f"and asymmetric_padding={asymmetric_padding!r}")
        p = _pair(asymmetric_padding, "asymmetric_padding", 2 * nd)
        if min(p) < 0:
            raise ValueError(f"dwconv: asymmetric_padding must be >= 0, got {p}")
        return (0, 0) + p if nd == 1 else p
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"dwconv: padding='same' is not supported for strided convolutions "
                                 f"(stride {stride if nd == 2 else stride[1:]})")
            out = []
            for kk, dd in zip(k, dil):
                total = dd * (kk - 1)
                out += [total // 2, total - total // 2]  # the odd pixel goes to the bottom / right
            return tuple(out)
        if padding == "causal" and nd == 1:
            return (0, 0, dil[1] * (k[1] - 1), 0)
        allowed = "'same', 'valid' or 'causal'" if nd == 1 else "'same' or 'valid'"
        raise ValueError(f"dwconv: invalid padding string {padding!r}, expected {allowed}")
    p = _pair(padding, "padding", nd)
    if min(p) < 0:
        raise ValueError(f"dwconv: negative padding is not supported, got {padding!r}")
    if nd == 1:
        return (0, 0, p[0], p[0])
    return (p[0], p[0], p[1], p[1])


def _check_common(input: Tensor, weight: Tensor, bias: Optional[Tensor], nd: int) -> None:
    name = "conv1d" if nd == 1 else "conv2d"
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"dwconv.{name}: input and weight must be tensors, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"dwconv.{name}: bias must be a tensor or None, got {type(bias).__name__}")
    if input.dim() not in (nd + 1, nd + 2):
        raise ValueError(f"dwconv.{name}: expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input, got input "
                         f"of size {list(input.shape)}")
    ws = weight.shape
    if len(ws) != nd + 2:
        raise ValueError(f"dwconv.{name}: expected {nd + 2}D weight [C*m, 1, {'k' if nd == 1 else 'kh, kw'}], got "
                         f"size {list(ws)}")
    c = input.shape[-nd - 1]
    if ws[1] != 1 or c < 1 or ws[0] < 1 or ws[0] % c != 0:
        raise ValueError(f"dwconv.{name}: depthwise (groups = {c} input channels) needs weight of size "
                         f"[{c}*m, 1, ...], got weight of size {list(ws)} for input of size "
                         f"{list(input.shape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != ws[0]):
        raise ValueError(f"dwconv.{name}: bias must have size [{ws[0]}], got {list(bias.shape)}")
    dtype, device = input.dtype, input.device
    for tname, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if t.device != device:
            raise RuntimeError(f"dwconv.{name}: input is on {device} but {tname} is on {t.device}; "
                               "expected all tensors on the same device")
        if t.dtype != dtype:
            raise RuntimeError(f"dwconv.{name}: input type ({dtype}) and {tname} type ({t.dtype}) should be "
                               "the same")
    if dtype not in _ops.SUPPORTED_DTYPES:
        raise TypeError(f"dwconv.{name}: dtype {dtype} is not supported (float32, float64, float16, "
                        "bfloat16)")
    _ops._check_cuda_build(input)


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOr = 1,
           padding: Union[str, _IntOr] = 0, dilation: _IntOr = 1, *,
           asymmetric_padding: Optional[Sequence[int]] = None) -> Tensor:
    """Depthwise F.conv2d(input, weight, bias, stride, padding, dilation, groups=input.shape[-3]).

    input [N, C, H, W] or [C, H, W]; weight [C*m, 1, kh, kw]; bias [C*m] or None.
    padding: int, (ph, pw), 'same' or 'valid'. asymmetric_padding=(top, bottom, left, right) gives explicit
    zero padding per side instead (then padding must be left at 0).
    A channels_last input runs the NHWC kernel and gives a channels_last output.
    """
    _check_common(input, weight, bias, 2)
    input, weight, bias = _autocast(input, weight, bias)
    stride = _pair(stride, "stride", 2)
    dilation = _pair(dilation, "dilation", 2)
    if min(stride) < 1:
        raise ValueError(f"dwconv.conv2d: non-positive stride is not supported, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"dwconv.conv2d: dilation must be >= 1, got {dilation}")
    kh, kw = weight.shape[2], weight.shape[3]
    pad = _padding_4(padding, asymmetric_padding, (kh, kw), dilation, stride, 2)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    y = _ops.forward_validated(x, weight, bias, stride, pad, dilation, _channels_last(x))
    return y.squeeze(0) if unbatched else y


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOr = 1,
           padding: Union[str, _IntOr] = 0, dilation: _IntOr = 1, *,
           asymmetric_padding: Optional[Sequence[int]] = None) -> Tensor:
    """Depthwise F.conv1d(input, weight, bias, stride, padding, dilation, groups=input.shape[-2]).

    input [N, C, L] or [C, L]; weight [C*m, 1, k]; bias [C*m] or None.
    padding: int, (p,), 'same', 'valid' or 'causal' ((k-1)*dilation zeros on the left only, so output t
    sees inputs <= t). asymmetric_padding=(left, right) gives explicit zero padding per side.
    An input that is [N, L, C] contiguous viewed as [N, C, L] (x.transpose(1, 2)) runs the channels-last
    kernel and gives an output of the same kind.
    """
    _check_common(input, weight, bias, 1)
    input, weight, bias = _autocast(input, weight, bias)
    stride = (1,) + _pair(stride, "stride", 1)
    dilation = (1,) + _pair(dilation, "dilation", 1)
    if min(stride) < 1:
        raise ValueError(f"dwconv.conv1d: non-positive stride is not supported, got {stride[1:]}")
    if min(dilation) < 1:
        raise ValueError(f"dwconv.conv1d: dilation must be >= 1, got {dilation[1:]}")
    k = weight.shape[2]
    pad = _padding_4(padding, asymmetric_padding, (1, k), dilation, stride, 1)
    unbatched = input.dim() == 2
    x = input.unsqueeze(0) if unbatched else input
    x4 = x.unsqueeze(2)  # [N, C, 1, L]: [N, L, C]-contiguous data becomes channels_last
    y = _ops.forward_validated(x4, weight.unsqueeze(2), bias, stride, pad, dilation, _channels_last(x4))
    y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y
