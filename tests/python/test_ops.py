"""The torch.ops.dwconv.* ops: opcheck, gradcheck / gradgradcheck in float64, torch.compile, error cases."""
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dwconv

OPS = ["conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"]


def _op_samples(device, dtype=torch.float32, small=False):
    """(op name, args) with requires_grad on the differentiable tensors."""
    g = torch.Generator().manual_seed(0)
    samples = []
    cases = [
        (False, (2, 3, 7, 8, 1, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1])),
        (True, (1, 4, 9, 6, 2, 3, 2, [2, 1], [0, 2, 1, 0], [1, 2])),
    ]
    if small:  # for gradcheck, whose cost grows with the square of the sizes
        cases = [
            (False, (1, 2, 4, 5, 1, 2, 3, [1, 1], [1, 0, 1, 1], [1, 1])),
            (True, (2, 2, 5, 4, 2, 2, 2, [2, 1], [0, 1, 1, 0], [1, 2])),
        ]
    for cl, (n, c, h, w, m, kh, kw, stride, pad, dil) in cases:
        fmt = torch.channels_last if cl else torch.contiguous_format

        def r(*size):
            return torch.randn(*size, generator=g).to(device=device, dtype=dtype)

        x = r(n, c, h, w).contiguous(memory_format=fmt).requires_grad_()
        wt = r(c * m, 1, kh, kw).requires_grad_()
        b = r(c * m).requires_grad_()
        y = torch.ops.dwconv.conv2d_forward(x, wt, b, stride, pad, dil, cl)
        gy = torch.randn(y.shape, generator=g).to(device=device, dtype=dtype).contiguous(
            memory_format=fmt).requires_grad_()
        samples += [
            ("conv2d_forward", (x, wt, b, stride, pad, dil, cl)),
            ("conv2d_forward", (x, wt, None, stride, pad, dil, cl)),
            ("conv2d_grad_input", (gy, wt, list(x.shape), stride, pad, dil, cl)),
            ("conv2d_grad_weight", (gy, x, list(wt.shape), stride, pad, dil, cl)),
            ("conv2d_grad_bias", (gy, cl)),
        ]
    return samples


@pytest.mark.parametrize("op", OPS)
def test_opcheck(device, op):
    samples = [args for name, args in _op_samples(device) if name == op]
    assert samples
    for args in samples:
        torch.library.opcheck(getattr(torch.ops.dwconv, op).default, args)


@pytest.mark.parametrize("op", OPS)
def test_gradcheck_ops(device, op):
    """First and second derivatives of every op (each op's autograd formula is another op)."""
    for name, args in _op_samples(device, torch.float64, small=True):
        if name != op:
            continue
        fn = getattr(torch.ops.dwconv, op)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        idx = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]

        def f(*ts, args=args, idx=idx, fn=fn):
            full = list(args)
            for i, t in zip(idx, ts):
                full[i] = t
            return fn(*full)

        assert torch.autograd.gradcheck(f, tensors)
        assert torch.autograd.gradgradcheck(f, tensors, fast_mode=True)


@pytest.mark.parametrize("padding", [1, "same", "valid", (2, 0)])
def test_gradcheck_conv2d(device, padding):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 5, 6, generator=g, dtype=torch.float64).to(device).requires_grad_()
    w = torch.randn(4, 1, 3, 2, generator=g, dtype=torch.float64).to(device).requires_grad_()
    b = torch.randn(4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: dwconv.conv2d(x, w, b, padding=padding, dilation=(1, 2)),
                                    (x, w, b))


@pytest.mark.parametrize("padding", [2, "causal"])
def test_gradcheck_conv1d_channels_last(device, padding):
    x = torch.randn(2, 9, 3, dtype=torch.float64, device=device).transpose(1, 2).requires_grad_()
    w = torch.randn(3, 1, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: dwconv.conv1d(x, w, None, 1, padding), (x, w))


def test_only_needed_grads_are_computed(monkeypatch):
    """ctx.needs_input_grad: a frozen weight skips grad_weight, an input without grad skips grad_input."""
    import dwconv._ops as ops_mod

    calls = []

    real_run = ops_mod._run

    def spy(direction, **kw):
        calls.append(direction)
        return real_run(direction, **kw)

    monkeypatch.setattr(ops_mod, "_run", spy)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    w = torch.randn(2, 1, 3, 3)  # frozen weight
    b = torch.randn(2)
    dwconv.conv2d(x, w, b, padding=1).sum().backward()
    assert calls == [0, 1]  # forward, grad_input only
    calls.clear()
    w.requires_grad_()
    dwconv.conv2d(x.detach(), w, b, padding=1).sum().backward()
    assert calls == [0, 2]


class _Block(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.dw = dwconv.DwConv2d(c, c, 5, padding=2)
        self.pw = nn.Conv2d(c, c, 1)
        self.dw1 = dwconv.DwConv1d(c, 2 * c, 3, padding="same")

    def forward(self, x):
        y = self.pw(torch.relu(self.dw(x))) + dwconv.conv2d(x, self.dw.weight, None, 1, "same")
        z = self.dw1(y.flatten(2))
        return y, z


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compile_fullgraph(backend):
    torch.manual_seed(0)
    m = _Block()
    x = torch.randn(2, 8, 10, 10, requires_grad=True)
    ref = m(x)
    torch._dynamo.reset()
    cm = torch.compile(m, backend=backend, fullgraph=True)
    out = cm(x)
    for a, r in zip(out, ref):
        torch.testing.assert_close(a, r)
    sum(o.sum() for o in out).backward()
    g = x.grad.clone()
    x.grad = None
    sum(o.sum() for o in ref).backward()
    torch.testing.assert_close(g, x.grad)
    # channels_last input through the compiled module
    xc = x.detach().to(memory_format=torch.channels_last)
    torch.testing.assert_close(cm(xc)[0], m(xc)[0])


def test_compile_dynamic_shapes():
    m = nn.Sequential(dwconv.DwConv2d(4, 8, 3, padding="same"), nn.ReLU())
    cm = torch.compile(m, backend="aot_eager", fullgraph=True, dynamic=True)
    for n, h in [(2, 6), (3, 9)]:
        x = torch.randn(n, 4, h, h + 1, requires_grad=True)
        y = cm(x)
        torch.testing.assert_close(y, m(x))
        y.sum().backward()
    cf = torch.compile(lambda x, w: dwconv.conv1d(x, w, padding="causal"), backend="aot_eager", fullgraph=True,
                       dynamic=True)
    for length in (9, 17):
        x, w = torch.randn(2, length, 4).transpose(1, 2), torch.randn(4, 1, 4)
        torch.testing.assert_close(cf(x, w), F.conv1d(F.pad(x, (3, 0)), w, groups=4))


def test_compile_autocast_cpu():
    m = dwconv.DwConv2d(4, 4, 3, padding=1)
    cm = torch.compile(m, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cm(x).dtype == torch.bfloat16
    assert cm(x).dtype == torch.float32


def test_compile_inductor():
    torch.manual_seed(0)
    m = _Block()
    x = torch.randn(2, 8, 10, 10)
    torch._dynamo.reset()
    cm = torch.compile(m, fullgraph=True)
    for a, r in zip(cm(x), m(x)):
        torch.testing.assert_close(a, r)


# ------------------------------------------------------------------ errors
def _x(*s, **kw):
    return torch.randn(*s, **kw)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(4, 1, 3, 3)), ValueError, r"\[4, 1, 3, 3\]"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 2, 3, 3)), ValueError, r"\[3, 2, 3, 3\]"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3)), ValueError, "4D weight"),
    (lambda: dwconv.conv2d(_x(8, 8), _x(3, 1, 3, 3)), ValueError, r"\[8, 8\]"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), _x(4)), ValueError, r"bias must have size \[3\]"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3).double()), RuntimeError, "should be the same"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), _x(3).half()), RuntimeError, "should be the same"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8, dtype=torch.float64).to(torch.int32), _x(3, 1, 3, 3).int()), TypeError,
     "int32"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), stride=0), ValueError, r"\(0, 0\)"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), dilation=(1, 0)), ValueError, r"\(1, 0\)"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), padding=-1), ValueError, "-1"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), padding="full"), ValueError, "'full'"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), padding=(1, 2, 3)), ValueError, r"\(1, 2, 3\)"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), stride=2, padding="same"), ValueError, "strided"),
    (lambda: dwconv.conv2d(_x(2, 3, 4, 4), _x(3, 1, 7, 7)), ValueError, "output size would be -2x-2"),
    (lambda: dwconv.conv2d(_x(2, 3, 4, 4), _x(3, 1, 3, 3), padding=1, asymmetric_padding=(1, 1, 1, 1)),
     ValueError, "either padding or asymmetric_padding"),
    (lambda: dwconv.conv2d(_x(2, 3, 4, 4), _x(3, 1, 3, 3), asymmetric_padding=(1, 1)), ValueError,
     "asymmetric_padding"),
    (lambda: dwconv.conv2d(_x(2, 3, 4, 4), _x(3, 1, 3, 3), asymmetric_padding=(1, -1, 0, 0)), ValueError, "-1"),
    (lambda: dwconv.conv1d(_x(2, 3, 8), _x(3, 1, 3), padding="causal", stride=0), ValueError, "stride"),
    (lambda: dwconv.conv1d(_x(2, 3, 8), _x(3, 1, 3, 3)), ValueError, "3D weight"),
    (lambda: dwconv.conv2d(_x(2, 3, 8, 8), _x(3, 1, 3, 3), padding="causal"), ValueError, "'causal'"),
    (lambda: dwconv.conv2d("x", _x(3, 1, 3, 3)), TypeError, "tensors"),
    (lambda: torch.ops.dwconv.conv2d_forward(_x(2, 3, 8, 8), _x(3, 1, 3, 3), None, [1], [0, 0, 0, 0], [1, 1], False),
     ValueError, "stride"),
    (lambda: torch.ops.dwconv.conv2d_grad_input(_x(2, 3, 5, 5), _x(3, 1, 3, 3), [2, 3, 8, 8], [1, 1], [0, 0, 0, 0],
                                                [1, 1], False), ValueError, r"grad_output must have size \[2, 3, 6, 6\]"),
    (lambda: torch.ops.dwconv.conv2d_grad_weight(_x(2, 3, 6, 6), _x(2, 3, 8, 8).double(), [3, 1, 3, 3], [1, 1],
                                                 [0, 0, 0, 0], [1, 1], False), RuntimeError, "should be the same"),
    (lambda: dwconv.DwConv2d(4, 8, 3, groups=2), ValueError, "groups=2"),
    (lambda: dwconv.DwConv2d(4, 6, 3), ValueError, "out_channels"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_native_errors_are_value_errors():
    """The binding maps dwconv::Error to ValueError and names the value."""
    from dwconv import _C
    with pytest.raises(ValueError, match="stride_h"):
        _C.run(direction=0, n=1, c=1, h=4, w=4, multiplier=1, kh=3, kw=3, stride_h=0, stride_w=1, dil_h=1, dil_w=1,
               pad_top=0, pad_bottom=0, pad_left=0, pad_right=0, dtype=0, layout=0, device=0, input=8, weight=8,
               output=8)
    with pytest.raises(ValueError, match="is not a kernel of this build"):
        _C.selected_kernel(direction=0, n=1, c=1, h=4, w=4, multiplier=1, kh=3, kw=3, stride_h=1, stride_w=1,
                           dil_h=1, dil_w=1, pad_top=0, pad_bottom=0, pad_left=0, pad_right=0, dtype=0, layout=0,
                           device=0, input=8, weight=8, output=8, kernel="no_such_kernel")
    assert isinstance(_C.cuda_version(), int) and (_C.cuda_version() > 0) == _C.cuda_built()


def test_every_cpu_kernel_variant_through_torch():
    """Force each CPU forward variant by name (the kernel= escape hatch of the binding) on a shape it accepts."""
    from dwconv import _C, _ops
    x = torch.randn(2, 4, 9, 9)
    w = torch.randn(4, 1, 3, 3)
    ref = F.conv2d(x, w, padding=1, groups=4)
    names = [n for n, dev, d in dwconv.kernels() if dev == "cpu" and d == "forward"]
    assert names
    for name in names:
        for cl in (False, True):
            xx = x.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
            out = torch.empty_like(ref, memory_format=torch.channels_last if cl else torch.contiguous_format)
            try:
                _ops._run(0, input_size=x.shape, weight_size=w.shape, stride=(1, 1), padding=(1, 1, 1, 1),
                          dilation=(1, 1), channels_last=cl, like=xx, kernel=name, input=xx, weight=w, bias=None,
                          output=out)
            except ValueError as e:
                assert "does not accept" in str(e)
                continue
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert _C.cuda_built() or not [n for n, dev, _ in dwconv.kernels() if dev == "cuda"]


def test_cuda_major_mismatch_is_import_error(monkeypatch):
    class FakeC:
        @staticmethod
        def cuda_built():
            return True

        @staticmethod
        def cuda_version():
            return 12080

    monkeypatch.setattr(dwconv, "_C", FakeC)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(ImportError, match=r"built with CUDA 12\.8 but this torch uses CUDA 13\.0"):
        dwconv._check_cuda_match()
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    dwconv._check_cuda_match()  # same major: fine
    monkeypatch.setattr(torch.version, "cuda", None)
    dwconv._check_cuda_match()  # CPU-only torch: fine


def test_torch_too_old_is_import_error():
    with pytest.raises(ImportError, match=r"needs torch >= 2\.4 .* this is torch 2\.3\.1\+cpu"):
        dwconv._check_torch_version("2.3.1+cpu")
    for version in ("2.4.0", "2.15.0+cu132", "2.6.0a0+git1234", "3.0.0", torch.__version__):
        dwconv._check_torch_version(version)


def test_native_module_does_not_depend_on_torch():
    """_C loads and runs in an interpreter that never imports torch: it does not link libtorch, so there is
    no torch ABI it could have been built for, and a different torch needs no rebuild."""
    code = textwrap.dedent(f"""
        import importlib.machinery, importlib.util, sys
        loader = importlib.machinery.ExtensionFileLoader("dwconv._C", {dwconv._C.__file__!r})
        spec = importlib.util.spec_from_file_location("dwconv._C", {dwconv._C.__file__!r}, loader=loader)
        C = importlib.util.module_from_spec(spec)
        loader.exec_module(C)
        assert C.kernels() and C.__version__ == {dwconv.__version__!r}
        assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")], "torch was imported"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ------------------------------------------------- calls that skip the dispatcher
# dwconv.conv2d / conv1d and the backward formulas call the op bodies directly in plain eager code (_ops._plain)
# and go through torch.ops.dwconv.* otherwise; both roads must give the same tensors, and everything that watches
# or rewrites calls must still see the ops.

def _direct_vs_dispatcher(device, cl, bias, stride, pad, dil, m=1):
    torch.manual_seed(0)
    fmt = torch.channels_last if cl else torch.contiguous_format
    x = torch.randn(2, 3, 9, 8, device=device).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(3 * m, 1, 3, 2, device=device, requires_grad=True)
    b = torch.randn(3 * m, device=device, requires_grad=True) if bias else None
    y = dwconv.conv2d(x, w, b, stride, dilation=dil, asymmetric_padding=pad)
    assert type(y.grad_fn) is dwconv._ops._Conv2dForward._backward_cls  # the direct road was taken
    ref = torch.ops.dwconv.conv2d_forward(x, w, b, list(stride), list(pad), list(dil), cl)
    assert torch.equal(y, ref) and y.stride() == ref.stride()
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], gy)
    want = torch.autograd.grad(ref, [t for t in (x, w, b) if t is not None], gy)
    for g, r in zip(got, want):
        assert torch.equal(g, r) and g.stride() == r.stride()
    with torch.no_grad():
        assert torch.equal(dwconv.conv2d(x, w, b, stride, dilation=dil, asymmetric_padding=pad), ref)


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "nhwc"])
def test_direct_calls_match_dispatcher(device, cl):
    _direct_vs_dispatcher(device, cl, True, (1, 1), (1, 1, 0, 1), (1, 1))
    _direct_vs_dispatcher(device, cl, False, (2, 1), (0, 2, 1, 0), (1, 2), m=2)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_plain_detects_what_the_dispatcher_would_do():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    from dwconv._ops import _plain

    x, w = torch.randn(1, 2, 4, 4), nn.Parameter(torch.randn(2, 1, 3, 3))
    assert _plain(x, w, None)
    with torch.no_grad(), torch.inference_mode():
        assert _plain(x, w, None)

    class Sub(torch.Tensor):
        pass

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    class FMode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    assert not _plain(x.as_subclass(Sub), w, None)
    assert not _plain(torch.empty(1, 2, 4, 4, device="meta"), w, None)
    assert not _plain(x.to_sparse(), w, None)
    with Mode():
        assert not _plain(x, w, None)
    with FMode():
        assert not _plain(x, w, None)
    with torch.device("cpu"):  # a TorchFunctionMode too
        assert not _plain(x, w, None)
    with FakeTensorMode():
        assert not _plain(torch.empty(1, 2, 4, 4), torch.empty(2, 1, 3, 3), None)
    with torch.profiler.profile():
        assert not _plain(x, w, None)
    seen = []
    torch.func.vmap(lambda t: seen.append(_plain(t, w, None)) or t)(torch.randn(3, 1, 2, 4, 4))
    torch.func.grad(lambda t: seen.append(_plain(t, w, None)) or t.sum())(x)
    torch.jit.trace(lambda t: seen.append(_plain(t, w, None)) or t * 1, (x,), check_trace=False)
    assert seen == [False, False, False]
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: t * 2 if _plain(t, w, None) else t * 3, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), x * 3)


def test_modes_and_profiler_still_see_every_op():
    """A TorchDispatchMode and the profiler record forward and all three gradient ops, as before."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Log(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    want = {"conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"}
    with Log() as log:
        dwconv.conv2d(x, w, b, padding=1).sum().backward()
    assert {o.split(".")[1] for o in log.ops if o.startswith("dwconv.")} == want
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        dwconv.conv2d(x, w, b, padding=1).sum().backward()
    assert {e.name.split("::")[1] for e in prof.events() if e.name.startswith("dwconv::")} == want


def test_gradgradcheck_through_direct_calls():
    """First order through _Conv2dForward, second order through the ops' own autograd formulas."""
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    f = lambda x, w, b: dwconv.conv2d(x, w, b, (1, 2), padding=1, dilation=(2, 1))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))
    xc = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradgradcheck(f, (xc, w, b))


def test_run_passes_arguments_in_binding_order(monkeypatch):
    """_ops._run calls _C.run positionally: each value must land on the binding argument of its name."""
    import re

    from dwconv import _C, _ops

    names = re.findall(r"(\w+): ", _C.run.__doc__.split("\n")[0].split("(", 1)[1])
    assert names[:3] == ["direction", "n", "c"] and names[-1] == "workspace_bytes"
    got = {}
    monkeypatch.setattr(_ops, "_C", type("FakeC", (), {"run": staticmethod(lambda *a: got.update(zip(names, a)))}))
    x, gy = torch.randn(2, 3, 11, 13), torch.randn(2, 6, 4, 5)
    w, gx = torch.randn(6, 1, 5, 3), torch.empty(2, 3, 11, 13)
    _ops._run(1, input_size=x.shape, weight_size=w.shape, stride=(3, 2), padding=(4, 1, 2, 0), dilation=(1, 2),
              channels_last=True, like=gy, kernel="k", grad_output=gy, weight=w, grad_input=gx)
    assert got == dict(direction=1, n=2, c=3, h=11, w=13, multiplier=2, kh=5, kw=3, stride_h=3, stride_w=2,
                       dil_h=1, dil_w=2, pad_top=4, pad_bottom=1, pad_left=2, pad_right=0, dtype=0, layout=1,
                       device=0, input=0, weight=w.data_ptr(), bias=0, output=0, grad_output=gy.data_ptr(),
                       grad_input=gx.data_ptr(), grad_weight=0, grad_bias=0, threads=1, stream=0, kernel="k")
