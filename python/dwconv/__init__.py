"""dwconv: depthwise convolution (groups == channels) for PyTorch on CPU and CUDA.

    import dwconv
    y = dwconv.conv2d(x, w, b, stride=1, padding="same")      # = F.conv2d(..., groups=x.shape[1])
    layer = dwconv.DwConv2d(64, 64, 7, padding=3)              # drop-in nn.Conv2d(64, 64, 7, padding=3, groups=64)
    model, replaced = dwconv.convert(model)                    # swap depthwise nn.Conv1d/2d in place

The ops are torch.ops.dwconv.conv2d_forward / conv2d_grad_input / conv2d_grad_weight / conv2d_grad_bias
(see dwconv._ops). See docs/python.md.
"""
import re

import torch  # first: loads the CUDA runtime and OpenMP that torch ships

_MIN_TORCH = (2, 4)  # torch.library.custom_op, register_fake / register_autograd, torch.get_autocast_dtype


def _check_torch_version(version: str = torch.__version__) -> None:
    # The native module _C does not link libtorch (it loads without torch), so there is no torch ABI to
    # mismatch and no rebuild is needed when torch changes; only the Python layer needs a recent torch.
    m = re.match(r"(\d+)\.(\d+)", str(version))
    if m and (int(m.group(1)), int(m.group(2))) < _MIN_TORCH:
        raise ImportError(
            f"dwconv needs torch >= {_MIN_TORCH[0]}.{_MIN_TORCH[1]} (for torch.library.custom_op), but this is "
            f"torch {version}: upgrade torch.")


_check_torch_version()

from . import _C  # noqa: E402

__version__ = _C.__version__


def _check_cuda_match() -> None:
    if not _C.cuda_built() or not torch.version.cuda:
        return
    built = _C.cuda_version()  # e.g. 12080 for 12.8
    built_major = built // 1000
    torch_major = int(torch.version.cuda.split(".")[0])
    if built_major != torch_major:
        raise ImportError(
            f"dwconv was built with CUDA {built_major}.{(built % 1000) // 10} but this torch uses CUDA "
            f"{torch.version.cuda}: the major versions must match. Rebuild dwconv against this torch with a "
            f"CUDA {torch_major}.x toolkit (pip install --no-build-isolation . with that nvcc on PATH), or build "
            "it without CUDA (DWCONV_CUDA=OFF).")


_check_cuda_match()

from . import _ops  # noqa: E402  (registers torch.ops.dwconv.*)
from ._ops import selected_kernel  # noqa: E402
from .functional import conv1d, conv2d  # noqa: E402
from .modules import DwConv1d, DwConv2d, convert  # noqa: E402


def cuda_built() -> bool:
    """True when this build has the CUDA backend."""
    return bool(_C.cuda_built())


def kernels():
    """Every native kernel variant of this build as (name, device, direction)."""
    return list(_C.kernels())


def set_autotune(flag: bool) -> None:
    """Autotune the kernel choice in this process, or stop (dwconv::set_autotune). When on, the first call of
    each kind (device, direction, dtype, layout, shape, threads) that several native variants accept times them
    all on that call's tensors and later calls of that kind run the fastest. Off by default; the environment
    variable DWCONV_AUTOTUNE=1 turns it on at start. See docs/python.md."""
    _C.set_autotune(bool(flag))


def autotune_enabled() -> bool:
    """True when autotuning is on."""
    return bool(_C.autotune_enabled())


def autotune_clear() -> None:
    """Forget every tuned choice; the next call of each kind is timed again."""
    _C.autotune_clear()


def autotune_entries():
    """The tuned choices as dicts: key, kernel (the one kept), times_ms ([(name, median ms)], fastest first)."""
    return list(_C.autotune_entries())


__all__ = ["conv1d", "conv2d", "DwConv1d", "DwConv2d", "convert", "cuda_built", "kernels", "selected_kernel",
           "set_autotune", "autotune_enabled", "autotune_clear", "autotune_entries"]
