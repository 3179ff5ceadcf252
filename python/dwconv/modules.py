"""DwConv1d / DwConv2d: nn.Conv1d / nn.Conv2d with groups = in_channels, run by dwconv, and convert()."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional

__all__ = ["DwConv1d", "DwConv2d", "convert"]


def _check_groups(cls: str, in_channels: int, out_channels: int, groups: Optional[int]) -> int:
    if groups is None:
        groups = in_channels
    if groups != in_channels:
        raise ValueError(f"dwconv.{cls}: depthwise convolution needs groups == in_channels ({in_channels}), got "
                         f"groups={groups}")
    if out_channels % in_channels != 0:
        raise ValueError(f"dwconv.{cls}: out_channels ({out_channels}) must be a multiple of in_channels "
                         f"({in_channels})")
    return groups


class DwConv2d(nn.Conv2d):
    """Drop-in nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
    groups=in_channels, bias, padding_mode, device, dtype) whose forward runs dwconv.

    Same attributes, parameter initialization, repr and state_dict as nn.Conv2d; groups defaults to (and must
    equal) in_channels, out_channels = in_channels * multiplier. padding_mode other than 'zeros' pads with
    F.pad first, as nn.Conv2d does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: Optional[int] = None, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        groups = _check_groups(type(self).__name__, in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode, device=device,
                         dtype=dtype)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.padding_mode != "zeros":
            return functional.conv2d(F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode),
                                     weight, bias, self.stride, 0, self.dilation)
        return functional.conv2d(input, weight, bias, self.stride, self.padding, self.dilation)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)


class DwConv1d(nn.Conv1d):
    """Drop-in nn.Conv1d with groups = in_channels whose forward runs dwconv (see DwConv2d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: Optional[int] = None, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        groups = _check_groups(type(self).__name__, in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode, device=device,
                         dtype=dtype)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.padding_mode != "zeros":
            return functional.conv1d(F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode),
                                     weight, bias, self.stride, 0, self.dilation)
        return functional.conv1d(input, weight, bias, self.stride, self.padding, self.dilation)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)


_TARGETS = {nn.Conv1d: DwConv1d, nn.Conv2d: DwConv2d}


def _is_depthwise(m: nn.Module) -> bool:
    return (type(m) in _TARGETS and not m.transposed and m.groups == m.in_channels
            and m.out_channels % m.in_channels == 0)


def _swap(old: nn.Module) -> nn.Module:
    cls = _TARGETS[type(old)]
    # Built on the meta device (no allocation, no init), then given the very same Parameter objects.
    new = cls(old.in_channels, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
              dilation=old.dilation, groups=old.groups, bias=old.bias is not None, padding_mode=old.padding_mode,
              device="meta")
    new.weight = old.weight
    new.bias = old.bias
    for name, buf in old._buffers.items():
        new._buffers[name] = buf
    new.train(old.training)
    for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_state_dict_hooks",
                 "_load_state_dict_pre_hooks"):
        if hasattr(old, attr) and getattr(old, attr):
            setattr(new, attr, getattr(old, attr))
    return new


def convert(model: nn.Module) -> Tuple[nn.Module, List[Tuple[str, str]]]:
    """Replace, in place, every nn.Conv1d / nn.Conv2d (exactly those classes, not subclasses, which may
    override forward) with groups == in_channels and out_channels a multiple of it by a DwConv1d / DwConv2d
    holding the same Parameter objects. Other modules are left alone.

    Returns (model, [(qualified_name, repr of the replaced module), ...]). If model itself is such a conv,
    the returned model is the new module (name '').
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"dwconv.convert: expected an nn.Module, got {type(model).__name__}")
    replaced: List[Tuple[str, str]] = []
    if _is_depthwise(model):
        return _swap(model), [("", repr(model))]
    done = {}  # a conv shared by two parents becomes one new module
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent._modules.items()):
            if child is not None and _is_depthwise(child):
                if id(child) not in done:
                    done[id(child)] = _swap(child)
                parent._modules[child_name] = done[id(child)]
                replaced.append((f"{parent_name}.{child_name}" if parent_name else child_name, repr(child)))
    return model, replaced
