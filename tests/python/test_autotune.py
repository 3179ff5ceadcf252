"""dwconv.set_autotune through the torch ops: results unchanged, one kept choice per kind of call, every
direction of a training step tuned once, the switch restored afterwards."""
import pytest
import torch
import torch.nn.functional as F

import dwconv
from conftest import rel_err


@pytest.fixture
def autotune():
    was = dwconv.autotune_enabled()
    dwconv.autotune_clear()
    dwconv.set_autotune(True)
    yield
    dwconv.autotune_clear()
    dwconv.set_autotune(was)


def test_switch():
    was = dwconv.autotune_enabled()
    try:
        dwconv.set_autotune(True)
        assert dwconv.autotune_enabled()
        dwconv.set_autotune(False)
        assert not dwconv.autotune_enabled()
    finally:
        dwconv.set_autotune(was)


def test_forward_is_tuned_once_and_matches_torch(autotune):
    g = torch.Generator().manual_seed(3)
    x, w, b = torch.randn(2, 8, 16, 16, generator=g), torch.randn(8, 1, 3, 3, generator=g), torch.randn(8, generator=g)
    ref = F.conv2d(x.double(), w.double(), b.double(), padding=1, groups=8)
    assert rel_err(dwconv.conv2d(x, w, b, padding=1), ref) <= 1e-5
    entries = dwconv.autotune_entries()
    assert len(entries) == 1
    e = entries[0]
    names = [name for name, _ in e["times_ms"]]
    assert len(names) >= 2 and e["kernel"] == names[0]  # fastest first; f32 NCHW 3x3 has SIMD and generic
    assert all(ms >= 0 for _, ms in e["times_ms"])
    assert "forward" in e["key"] and "f32" in e["key"]
    assert rel_err(dwconv.conv2d(x, w, b, padding=1), ref) <= 1e-5
    assert dwconv.autotune_entries() == entries  # no second timing, nothing new kept


def test_training_step_tunes_each_direction(autotune):
    x = torch.randn(2, 8, 12, 12).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(8, 1, 5, 5, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    dwconv.conv2d(x, w, b, padding=2).square().sum().backward()
    xr, wr, br = (t.detach().double().requires_grad_() for t in (x, w, b))
    F.conv2d(xr, wr, br, padding=2, groups=8).square().sum().backward()
    for got, want in ((x.grad, xr.grad), (w.grad, wr.grad), (b.grad, br.grad)):
        assert rel_err(got, want) <= 1e-5
    # forward, grad_input and grad_weight have SIMD and generic NHWC variants; grad_bias has one variant.
    calls = [e["key"].split(" | ")[1].split()[:3] for e in dwconv.autotune_entries()]  # direction, dtype, layout
    assert sorted(c[0] for c in calls) == ["forward", "grad_input", "grad_weight"]
    assert all(c[1:] == ["f32", "nhwc"] for c in calls)
