"""Shared helpers for the dwconv Python tests.

CPU tests always run; CUDA variants are parametrized on `device` and skipped
when torch has no usable GPU (or the dwconv build has no CUDA backend).
"""
import pytest
import torch

import dwconv

CUDA_OK = torch.cuda.is_available() and dwconv.cuda_built()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA_OK, reason="no CUDA device or no CUDA build"))]

# Relative error in norm against torch in float64 on the same (rounded) inputs.
TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def rel_err(a, ref):
    a, ref = a.detach().double(), ref.detach().double()
    denom = ref.norm()
    if denom == 0:
        return float(a.norm())
    return float((a - ref).norm() / denom)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _threads():
    # One intra-op thread: the suite runs on small, busy machines where an OpenMP team waiting on a
    # descheduled thread costs more than the work. test_multithreaded covers more threads.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
