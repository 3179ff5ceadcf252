"""dwconv.conv2d / dwconv.conv1d against F.conv2d / F.conv1d (groups = C): forward and every gradient,
every dtype, both memory formats, over a parameter grid and seeded random shapes."""
import random

import pytest
import torch
import torch.nn.functional as F

import dwconv
from conftest import TOL, rel_err

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DT_IDS = ["f32", "f64", "f16", "bf16"]


def _make(nd, x_shape, k, m, dtype, bias, seed):
    g = torch.Generator().manual_seed(seed)
    c = x_shape[1]
    w_shape = (c * m, 1) + tuple(k)
    # Values rounded to dtype first, so the fp64 reference sees exactly the same numbers.
    x = torch.randn(x_shape, generator=g).to(dtype)
    w = torch.randn(w_shape, generator=g).to(dtype)
    b = torch.randn(c * m, generator=g).to(dtype) if bias else None
    return x, w, b


def _to_layout(t, nd, channels_last):
    if not channels_last:
        return t.contiguous()
    if nd == 2:
        return t.contiguous(memory_format=torch.channels_last)
    return t.transpose(1, 2).contiguous().transpose(1, 2)  # [N, L, C] data viewed as [N, C, L]


def _is_layout(t, nd, channels_last):
    if nd == 2:
        return t.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return t.transpose(1, 2).is_contiguous() if channels_last else t.is_contiguous()


def _reference(nd, x, w, b, stride, padding, dilation, asym):
    conv = F.conv1d if nd == 1 else F.conv2d
    if asym is not None:
        pad = asym if nd == 1 else (asym[2], asym[3], asym[0], asym[1])  # F.pad: last dim first
        return conv(F.pad(x, pad), w, b, stride, 0, dilation, groups=x.shape[1])
    if padding == "causal":
        d = dilation if isinstance(dilation, int) else dilation[0]
        return conv(F.pad(x, (d * (w.shape[-1] - 1), 0)), w, b, stride, 0, dilation, groups=x.shape[1])
    return conv(x, w, b, stride, padding, dilation, groups=x.shape[1])


def check(nd, device, dtype, x_shape, k, m=1, stride=1, padding=0, dilation=1, bias=True, channels_last=False,
          asym=None, seed=0, grads=True):
    x, w, b = _make(nd, x_shape, k, m, dtype, bias, seed)
    # Reference: PyTorch in float64 on the CPU.
    xr, wr = x.double().requires_grad_(), w.double().requires_grad_()
    br = b.double().requires_grad_() if bias else None
    yr = _reference(nd, xr, wr, br, stride, padding, dilation, asym)

    xd = _to_layout(x.to(device), nd, channels_last).requires_grad_()
    wd = w.to(device).requires_grad_()
    bd = b.to(device).requires_grad_() if bias else None
    fn = dwconv.conv1d if nd == 1 else dwconv.conv2d
    kw = {} if asym is None else {"asymmetric_padding": asym}
    y = fn(xd, wd, bd, stride, 0 if asym is not None else padding, dilation, **kw)
    assert y.shape == yr.shape and y.dtype == dtype and y.device.type == device
    # The layout is checked where the input's is unambiguous (not C == 1 or a 1x1 image, which are dense in
    # both layouts; there the strides decide, as for torch).
    x4 = xd if nd == 2 else xd.unsqueeze(2)
    unambiguous = x4.is_contiguous() != x4.is_contiguous(memory_format=torch.channels_last)
    if unambiguous:
        assert _is_layout(y, nd, channels_last), f"output strides {y.stride()} for channels_last={channels_last}"
    tol = TOL[dtype]
    assert rel_err(y.cpu(), yr) < tol, f"forward rel err {rel_err(y.cpu(), yr):.3g}"
    if not grads:
        return
    gy = torch.randn(yr.shape, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    got = torch.autograd.grad(y, [xd, wd] + ([bd] if bias else []), gy.to(device))
    want = torch.autograd.grad(yr, [xr, wr] + ([br] if bias else []), gy.double())
    for name, a, r in zip(["grad_input", "grad_weight", "grad_bias"], got, want):
        assert a.shape == r.shape and a.dtype == dtype
        assert rel_err(a.cpu(), r) < tol, f"{name} rel err {rel_err(a.cpu(), r):.3g}"
    if unambiguous:
        assert _is_layout(got[0], nd, channels_last), f"grad_input strides {got[0].stride()}"


# (input shape, kernel, multiplier, stride, padding, dilation)
GRID_2D = [
    ((2, 3, 8, 8), (3, 3), 1, 1, 1, 1),
    ((2, 4, 9, 7), (3, 3), 1, 2, 1, 1),
    ((1, 5, 10, 11), (5, 5), 1, 1, 2, 1),
    ((2, 3, 7, 9), (1, 1), 1, 1, 0, 1),
    ((2, 2, 8, 8), (3, 3), 2, 1, 1, 1),
    ((1, 3, 12, 10), (5, 7), 3, (2, 1), (2, 3), 1),
    ((2, 4, 11, 12), (3, 3), 1, 1, "same", 2),
    ((2, 3, 8, 9), (4, 2), 1, 1, "same", 1),
    ((2, 3, 9, 9), (3, 3), 1, 3, "valid", 1),
    ((1, 2, 16, 16), (7, 7), 1, 1, 3, (2, 1)),
    ((2, 6, 6, 6), (6, 6), 1, 1, 0, 1),
    ((1, 3, 5, 5), (3, 3), 1, (1, 2), (0, 4), (1, 2)),
    ((2, 3, 13, 13), (11, 11), 1, 2, 5, 1),
    ((1, 2, 33, 35), (31, 31), 1, 1, 15, 1),
    ((1, 3, 5, 4), (1, 9), 1, 1, (0, 4), 1),
    ((3, 1, 6, 6), (3, 3), 4, 1, 1, 1),
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("case", GRID_2D, ids=[f"g{i}" for i in range(len(GRID_2D))])
def test_conv2d_grid(device, case, dtype, channels_last):
    shape, k, m, stride, padding, dilation = case
    check(2, device, dtype, shape, k, m, stride, padding, dilation, channels_last=channels_last, seed=GRID_2D.index(case))


# (input shape, k, multiplier, stride, padding, dilation)
GRID_1D = [
    ((2, 3, 16), 3, 1, 1, 1, 1),
    ((2, 4, 20), 4, 1, 1, "causal", 1),
    ((1, 5, 17), 4, 1, 1, "causal", 3),
    ((2, 3, 15), 5, 2, 2, 2, 1),
    ((2, 3, 12), 31, 1, 1, 15, 1),
    ((2, 3, 14), 4, 1, 1, "same", 2),
    ((2, 3, 14), 3, 1, 3, "valid", 1),
    ((3, 2, 9), 1, 3, 1, 0, 1),
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["ncl", "nlc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("case", GRID_1D, ids=[f"g{i}" for i in range(len(GRID_1D))])
def test_conv1d_grid(device, case, dtype, channels_last):
    shape, k, m, stride, padding, dilation = case
    check(1, device, dtype, shape, (k,), m, stride, padding, dilation, channels_last=channels_last, seed=7)


def _random_case(rng, nd):
    n, c, m = rng.randint(1, 3), rng.randint(1, 9), rng.choice([1, 1, 1, 2])
    size = [rng.randint(1, 14) for _ in range(nd)]
    k, s, d, p = [], [], [], []
    for i in range(nd):
        d.append(rng.choice([1, 1, 2]))
        p.append(rng.randint(0, 4))
        kmax = (size[i] + 2 * p[i] - 1) // d[i] + 1  # output >= 1
        k.append(rng.randint(1, max(1, min(kmax, 9))))
        s.append(rng.choice([1, 1, 2, 3]))
    return dict(x_shape=(n, c, *size), k=tuple(k), m=m, stride=tuple(s), padding=tuple(p), dilation=tuple(d),
                bias=rng.random() < 0.7, dtype=rng.choice(DTYPES), channels_last=rng.random() < 0.5)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("seed", range(16))
def test_random_shapes(device, nd, seed):
    case = _random_case(random.Random(1000 * nd + seed), nd)
    check(nd, device, seed=seed, **case)


@pytest.mark.parametrize("nd", [1, 2])
def test_no_bias_and_asymmetric_padding(device, nd):
    if nd == 2:
        check(2, device, torch.float32, (2, 3, 7, 8), (3, 4), bias=False, asym=(0, 2, 3, 1))
        check(2, device, torch.float32, (2, 3, 7, 8), (3, 3), stride=2, asym=(1, 0, 0, 2), channels_last=True)
    else:
        check(1, device, torch.float32, (2, 3, 11), (4,), bias=False, asym=(3, 0))
        check(1, device, torch.float32, (2, 3, 11), (3,), asym=(0, 2), channels_last=True)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_multithreaded(channels_last):
    torch.set_num_threads(2)  # restored by the conftest fixture
    check(2, "cpu", torch.float32, (4, 24, 20, 20), (5, 5), padding=2, channels_last=channels_last)
    check(1, "cpu", torch.float32, (4, 48, 300), (4,), padding="causal", channels_last=channels_last)


def test_unbatched(device):
    x = torch.randn(3, 8, 8, device=device)
    w = torch.randn(6, 1, 3, 3, device=device)
    y = dwconv.conv2d(x, w, padding=1)
    assert y.shape == (6, 8, 8)
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1, groups=3), rtol=1e-5, atol=1e-5)
    x1, w1 = torch.randn(4, 10, device=device), torch.randn(4, 1, 3, device=device)
    torch.testing.assert_close(dwconv.conv1d(x1, w1, padding="same"), F.conv1d(x1, w1, padding="same", groups=4),
                               rtol=1e-5, atol=1e-5)


def test_argument_forms(device):
    x = torch.randn(2, 3, 9, 9, device=device)
    w = torch.randn(3, 1, 3, 3, device=device)
    for kw in [dict(stride=(2,), padding=[1], dilation=(1, 1)), dict(stride=[1, 2], padding=(1, 0), dilation=2),
               dict(padding="valid"), dict(padding="same", dilation=(2, 1))]:
        torch.testing.assert_close(dwconv.conv2d(x, w, **kw), F.conv2d(x, w, groups=3, **kw), rtol=1e-5, atol=1e-5)


def test_channels_last_output_no_copy(device):
    x = torch.randn(2, 8, 10, 10, device=device).to(memory_format=torch.channels_last)
    w = torch.randn(8, 1, 5, 5, device=device)
    y = dwconv.conv2d(x, w, padding=2)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    m = dwconv.DwConv2d(8, 8, 3, padding=1, device=device).to(memory_format=torch.channels_last)
    assert m(x).is_contiguous(memory_format=torch.channels_last)
    # nn.Conv2d keeps channels_last too: same strides
    ref = F.conv2d(x, w, padding=2, groups=8)
    assert y.stride() == ref.stride()


def test_which_layout_runs(device):
    """Channels_last input runs the nhwc kernel; 1D [N,L,C]-strided runs nhwc; contiguous runs nchw."""
    x = torch.randn(2, 8, 10, 10, device=device)
    w = torch.randn(8, 1, 3, 3, device=device)
    assert "nchw" in dwconv.selected_kernel("forward", x, w, channels_last=False)
    assert "nhwc" in dwconv.selected_kernel("forward", x, w, channels_last=True)
    assert dwconv.functional._channels_last(x.to(memory_format=torch.channels_last))
    assert not dwconv.functional._channels_last(x)
    x1 = torch.randn(2, 10, 8, device=device).transpose(1, 2)
    assert dwconv.functional._channels_last(x1.unsqueeze(2))


@pytest.mark.parametrize("kind", ["sliced", "permuted", "expanded", "sliced_cl", "batch_transposed",
                                  "nhwc_permuted"])
def test_non_contiguous_inputs(device, kind):
    base = torch.randn(2, 6, 12, 14, device=device, dtype=torch.float64)
    if kind == "sliced":
        x = base[:, ::2, 1:, ::2]
    elif kind == "permuted":
        x = base.permute(0, 1, 3, 2)
    elif kind == "expanded":
        x = torch.randn(1, 6, 1, 14, device=device, dtype=torch.float64).expand(2, 6, 12, 14)
    elif kind == "sliced_cl":
        x = base.to(memory_format=torch.channels_last)[:, :, ::2, 1:]
    elif kind == "batch_transposed":
        x = torch.randn(6, 2, 12, 14, device=device, dtype=torch.float64).transpose(0, 1)
    else:  # [N, H, W, C] data, permuted to [N, C, H, W] and sliced: channels_last-like strides
        x = torch.randn(2, 12, 14, 6, device=device, dtype=torch.float64).permute(0, 3, 1, 2)[:, :, :, 1:]
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    c = x.shape[1]
    w = torch.randn(2 * c, 1, 3, 3, device=device, dtype=torch.float64)[::2]  # non-contiguous weight too
    b = torch.randn(2 * c, device=device, dtype=torch.float64)[::2]
    xg, wg, bg = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y = dwconv.conv2d(xg, wg, bg, stride=(1, 2), padding=1)
    ref = F.conv2d(x, w, b, stride=(1, 2), padding=1, groups=c)
    torch.testing.assert_close(y, ref)
    # Copied once into the layout its strides are closer to, as F.conv2d does: the same output strides.
    assert y.stride() == ref.stride()
    gy = torch.ones((), device=device, dtype=torch.float64).expand(y.shape)  # an expanded (stride 0) grad_output
    y.backward(gy)
    xr, wr, br = (t.detach().clone().requires_grad_() for t in (x, w, b))
    F.conv2d(xr, wr, br, stride=(1, 2), padding=1, groups=c).backward(gy)
    for a, r in [(xg.grad, xr.grad), (wg.grad, wr.grad), (bg.grad, br.grad)]:
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("kind", ["sliced", "strided", "expanded", "batch_transposed", "nlc_sliced", "nlc_c_sliced"])
def test_non_contiguous_inputs_1d(device, kind):
    f64 = dict(device=device, dtype=torch.float64)
    if kind == "sliced":
        x = torch.randn(2, 6, 20, **f64)[:, ::2, 1:]
    elif kind == "strided":
        x = torch.randn(2, 3, 40, **f64)[..., ::3]
    elif kind == "expanded":
        x = torch.randn(1, 3, 1, **f64).expand(2, 3, 20)
    elif kind == "batch_transposed":
        x = torch.randn(3, 2, 20, **f64).transpose(0, 1)
    elif kind == "nlc_sliced":  # [N, L, C] data viewed as [N, C, L], every other time step
        x = torch.randn(2, 20, 3, **f64).transpose(1, 2)[:, :, ::2]
    else:  # [N, L, C] data viewed as [N, C, L], every other channel
        x = torch.randn(2, 20, 6, **f64).transpose(1, 2)[:, ::2]
    assert not x.is_contiguous() and not x.transpose(1, 2).is_contiguous()
    nlc = kind.startswith("nlc")
    c = x.shape[1]
    w = torch.randn(2 * c, 1, 4, **f64)[::2]  # non-contiguous weight too
    b = torch.randn(2 * c, **f64)[::2]
    xg, wg, bg = (t.detach().clone().requires_grad_() for t in (x, w, b))
    for padding in (1, "causal"):
        y = dwconv.conv1d(xg, wg, bg, stride=1 if padding == "causal" else 2, padding=padding)
        xr, wr, br = (t.detach().clone().requires_grad_() for t in (x, w, b))
        if padding == "causal":
            ref = F.conv1d(F.pad(xr, (3, 0)), wr, br, groups=c)
        else:
            ref = F.conv1d(xr, wr, br, stride=2, padding=1, groups=c)
        torch.testing.assert_close(y, ref)
        # Copied once into the layout its strides are closer to: [N, L, C]-like strides run the channels-last
        # kernel and give a [N, L, C] output, as a [N, L, C]-contiguous input does.
        assert (y.transpose(1, 2).is_contiguous() if nlc else y.is_contiguous()), y.stride()
        gy = torch.randn(y.shape, **f64)
        gy = gy.transpose(1, 2).contiguous().transpose(1, 2) if not nlc else gy  # grad_output in the other layout
        y.backward(gy)
        ref.backward(gy)
        for a, r in [(xg.grad, xr.grad), (wg.grad, wr.grad), (bg.grad, br.grad)]:
            torch.testing.assert_close(a, r)
        xg.grad = wg.grad = bg.grad = None


def test_empty_batch(device):
    x = torch.randn(0, 3, 8, 8, device=device, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    y = dwconv.conv2d(x, w, b, padding=1)
    assert y.shape == (0, 3, 8, 8)
    y.sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))


def test_autocast_cpu():
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = dwconv.conv2d(x, w, padding=1)
        ref = F.conv2d(x, w, padding=1, groups=4)
    assert y.dtype == ref.dtype == torch.bfloat16
    assert rel_err(y, ref) < 1e-2
    y.float().sum().backward()
    assert w.grad.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dwconv.conv2d(x.double(), w.double(), padding=1).dtype == torch.float64  # float64 is not cast


@pytest.mark.skipif(not torch.cuda.is_available() or not dwconv.cuda_built(), reason="needs CUDA")
def test_autocast_cuda():
    x = torch.randn(2, 4, 8, 8, device="cuda")
    w = torch.randn(4, 1, 3, 3, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        y = dwconv.conv2d(x, w, padding=1)
    assert y.dtype == torch.float16
    assert rel_err(y, F.conv2d(x, w, padding=1, groups=4)) < 1e-2


@pytest.mark.skipif(not torch.cuda.is_available() or not dwconv.cuda_built(), reason="needs CUDA")
def test_cuda_uses_current_stream():
    x = torch.randn(4, 16, 32, 32, device="cuda")
    w = torch.randn(16, 1, 7, 7, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        y = dwconv.conv2d(x, w, padding=3)
    s.synchronize()
    torch.testing.assert_close(y, F.conv2d(x, w, padding=3, groups=16), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available() and dwconv.cuda_built(), reason="only without a CUDA backend")
def test_cuda_tensor_without_cuda_build_is_clear():
    if not torch.cuda.is_available():
        pytest.skip("no GPU to make a CUDA tensor")
    x = torch.randn(1, 2, 4, 4, device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA backend"):
        dwconv.conv2d(x, torch.randn(2, 1, 3, 3, device="cuda"))
