"""DwConv1d / DwConv2d against nn.Conv1d / nn.Conv2d, and dwconv.convert."""
import contextlib
import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dwconv
from conftest import TOL, rel_err

MODES = ["zeros", "reflect", "replicate", "circular"]


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("cfg", [
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=1),
    dict(in_channels=3, out_channels=6, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=False),
    dict(in_channels=4, out_channels=4, kernel_size=4, padding="same"),
    dict(in_channels=2, out_channels=2, kernel_size=3, padding="valid"),
])
def test_dwconv2d_matches_nn_conv2d(device, cfg, padding_mode):
    if padding_mode != "zeros" and cfg.get("padding") == "valid":
        cfg = dict(cfg, padding=0)
    torch.manual_seed(0)
    ref = nn.Conv2d(groups=cfg["in_channels"], padding_mode=padding_mode, device=device, **cfg)
    torch.manual_seed(0)
    mine = dwconv.DwConv2d(groups=cfg["in_channels"], padding_mode=padding_mode, device=device, **cfg)
    # same init, attributes, repr and state_dict keys/values
    assert repr(mine).replace("DwConv2d", "Conv2d") == repr(ref)
    sd, sd_ref = mine.state_dict(), ref.state_dict()
    assert list(sd) == list(sd_ref) and all(torch.equal(sd[k], sd_ref[k]) for k in sd)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                 "padding_mode", "transposed", "output_padding"):
        assert getattr(mine, attr) == getattr(ref, attr), attr
    assert isinstance(mine, nn.Conv2d)
    x = torch.randn(2, cfg["in_channels"], 9, 10, device=device, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    y, yr = mine(x), ref(xr)
    torch.testing.assert_close(y, yr, rtol=1e-5, atol=1e-5)
    y.square().sum().backward()
    yr.square().sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding_mode", MODES)
def test_dwconv1d_matches_nn_conv1d(device, padding_mode):
    torch.manual_seed(0)
    ref = nn.Conv1d(6, 12, 5, padding=2, groups=6, padding_mode=padding_mode, device=device)
    mine = dwconv.DwConv1d(6, 12, 5, padding=2, padding_mode=padding_mode, device=device)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, 17, device=device)
    torch.testing.assert_close(mine(x), ref(x), rtol=1e-5, atol=1e-5)
    xt = torch.randn(3, 17, 6, device=device).transpose(1, 2)  # [N, L, C] data
    y = mine(xt)
    torch.testing.assert_close(y, ref(xt), rtol=1e-5, atol=1e-5)
    if padding_mode == "zeros":
        assert y.transpose(1, 2).is_contiguous()


def test_groups_default_and_dtype():
    m = dwconv.DwConv2d(8, 16, 3, dtype=torch.float64)
    assert m.groups == 8 and m.weight.shape == (16, 1, 3, 3) and m.weight.dtype == torch.float64
    assert m(torch.randn(1, 8, 5, 5, dtype=torch.float64)).shape == (1, 16, 3, 3)
    # load an nn.Conv2d checkpoint and back
    ref = nn.Conv2d(8, 16, 3, groups=8, dtype=torch.float64)
    m.load_state_dict(ref.state_dict())
    ref.load_state_dict(m.state_dict())


def test_module_half_and_bf16():
    for dtype in (torch.float16, torch.bfloat16):
        ref = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        mine = dwconv.DwConv2d(4, 4, 3, padding=1)
        mine.load_state_dict(ref.state_dict())
        x = torch.randn(2, 4, 8, 8)
        y = mine.to(dtype)(x.to(dtype))
        assert y.dtype == dtype
        assert rel_err(y, ref.double()(x.double())) < 1e-2


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)  # not depthwise
        self.blocks = nn.Sequential(
            nn.Conv2d(8, 8, 7, padding=3, groups=8),  # depthwise
            nn.BatchNorm2d(8),
            nn.Conv2d(8, 16, 1),  # pointwise
            nn.Conv2d(16, 32, 5, padding="same", groups=16, bias=False, padding_mode="reflect"),  # multiplier 2
            nn.Conv2d(32, 32, 3, padding=1, groups=8),  # grouped, not depthwise
            nn.ConvTranspose2d(32, 32, 3, groups=32),  # transposed: left alone
        )
        self.seq1d = nn.Conv1d(4, 4, 3, padding="same", groups=4)
        self.shared = self.blocks[0]  # the same module twice

    def forward(self, x):
        y = self.blocks(self.stem(x))
        z = self.seq1d(y[:, :4].flatten(2))
        return y, z


def test_convert_small_model():
    torch.manual_seed(0)
    model = _Net().eval()
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        ref = model(x)
    params_before = {n: p for n, p in model.named_parameters()}
    sd_before = copy.deepcopy(model.state_dict())
    out, replaced = dwconv.convert(model)
    assert out is model
    names = [n for n, _ in replaced]
    assert set(names) == {"blocks.0", "blocks.3", "seq1d", "shared"}, names
    assert all("Conv" in r for _, r in replaced)
    assert isinstance(model.blocks[0], dwconv.DwConv2d) and isinstance(model.blocks[3], dwconv.DwConv2d)
    assert model.shared is model.blocks[0]
    assert isinstance(model.seq1d, dwconv.DwConv1d)
    assert type(model.stem) is nn.Conv2d and type(model.blocks[2]) is nn.Conv2d
    assert type(model.blocks[4]) is nn.Conv2d and type(model.blocks[5]) is nn.ConvTranspose2d
    # the very same Parameter objects, same state_dict
    for n, p in model.named_parameters():
        assert p is params_before[n], n
    sd = model.state_dict()
    assert list(sd) == list(sd_before) and all(torch.equal(sd[k], sd_before[k]) for k in sd)
    assert not model.blocks[0].training
    with torch.no_grad():
        got = model(x)
    for a, r in zip(got, ref):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
    # idempotent: nothing left to replace
    assert dwconv.convert(model)[1] == []


def test_convert_root_module():
    conv = nn.Conv2d(4, 4, 3, groups=4)
    new, replaced = dwconv.convert(conv)
    assert isinstance(new, dwconv.DwConv2d) and new.weight is conv.weight and replaced[0][0] == ""


# timm models, random init (pretrained=False: nothing is downloaded), eval mode (BatchNorm on its running
# statistics: in train mode with batch 2 and 2x2 late feature maps some BatchNorm-input gradients are zero
# in exact arithmetic and pure rounding noise in any float computation, torch's own included).
TIMM_MODELS = {
    # timm initializes ConvNeXt's layer scale to 1e-6, which scales every block's branch (and its 7x7
    # depthwise conv) below fp32 rounding of the residual sum: with 1.0 the output depends on every conv.
    "convnext_atto": dict(ls_init_value=1.0),
    "mobilenetv3_small_100": {},
    # 'same' padding: timm makes its strided depthwise convs Conv2dSame (an nn.Conv2d subclass with its own
    # forward), which convert must leave alone, and the stride-1 ones plain nn.Conv2d.
    "tf_mobilenetv3_small_minimal_100": {},
}
TIMM_CASES = [
    ("convnext_atto", torch.float32, False),
    ("convnext_atto", torch.float32, True),
    ("convnext_atto", torch.float64, False),
    ("mobilenetv3_small_100", torch.float32, False),
    ("mobilenetv3_small_100", torch.float32, True),
    ("mobilenetv3_small_100", torch.float64, False),
    ("tf_mobilenetv3_small_minimal_100", torch.float32, False),
]


@functools.lru_cache(maxsize=None)
def _timm_model(name):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **TIMM_MODELS[name]).eval()
    # timm initializes biases to 0 and norm layers to the identity; perturbed, every bias (those of ConvNeXt's
    # depthwise convs included), norm scale and BatchNorm statistic takes part, as in a trained model.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@contextlib.contextmanager
def _no_tf32():
    # The unconverted reference must run in IEEE fp32 on CUDA too (cuDNN convs default to TF32).
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = old


def _forward_backward(model, x, gy):
    x = x.detach().clone().requires_grad_()
    y = model(x)
    y.backward(gy)
    return y.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("name,dtype,channels_last", TIMM_CASES,
                         ids=[f"{n}-{str(d)[6:]}{'-cl' if cl else ''}" for n, d, cl in TIMM_CASES])
def test_convert_timm_model(device, name, dtype, channels_last):
    """A converted timm ConvNeXt / MobileNetV3 gives the outputs and gradients of the original."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ref = copy.deepcopy(_timm_model(name)).to(device=device, dtype=dtype, memory_format=fmt)
    model = copy.deepcopy(ref)
    params_before = dict(model.named_parameters())
    types_before = {n: type(m) for n, m in model.named_modules()}

    out, replaced = dwconv.convert(model)
    assert out is model
    # Replaced: exactly timm's depthwise convs (its blocks name them conv_dw) that are plain nn.Conv2d, in
    # module order, each reported with the repr of the original.
    conv_dw = [n for n, m in ref.named_modules() if n.endswith("conv_dw")]
    expected = [n for n in conv_dw if types_before[n] is nn.Conv2d]
    assert expected and [n for n, _ in replaced] == expected
    for n, r in replaced:
        old, new = ref.get_submodule(n), model.get_submodule(n)
        assert r == repr(old)
        assert type(new) is dwconv.DwConv2d and new.groups == new.in_channels > 1
        assert repr(new).replace("DwConv2d", "Conv2d") == r
    # Everything else is left alone: stems, pointwise, squeeze-excite and head convs, Conv2dSame subclasses.
    others = [n for n in types_before if n not in expected]
    for n in others:
        assert type(model.get_submodule(n)) is types_before[n], n
    left = [n for n in others if isinstance(model.get_submodule(n), nn.Conv2d)]
    assert left and not any(isinstance(model.get_submodule(n), dwconv.DwConv2d) for n in left)
    # ... and none of them is a plain depthwise nn.Conv2d (that is, one convert missed).
    assert not [n for n in left if type(model.get_submodule(n)) is nn.Conv2d
                and model.get_submodule(n).groups == model.get_submodule(n).in_channels]
    if name.startswith("tf_"):
        assert any(n in left for n in conv_dw)  # the strided Conv2dSame depthwise convs
    # The very same parameters, the same state_dict.
    assert all(p is params_before[n] for n, p in model.named_parameters())
    sd, sd_ref = model.state_dict(), ref.state_dict()
    assert list(sd) == list(sd_ref) and all(torch.equal(sd[k], sd_ref[k]) for k in sd)

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=g).to(device=device, dtype=dtype).contiguous(memory_format=fmt)
    gy = torch.randn(2, ref.num_classes, generator=g).to(device=device, dtype=dtype)
    layouts = []  # whether each dwconv layer's input and output are channels_last
    cl = torch.channels_last
    for n in expected:
        model.get_submodule(n).register_forward_hook(
            lambda m, i, o: layouts.append((i[0].is_contiguous(memory_format=cl), o.is_contiguous(memory_format=cl))))
    with _no_tf32():
        y, gx, gp = _forward_backward(model, x, gy)
        y_ref, gx_ref, gp_ref = _forward_backward(ref, x, gy)
    # Two computations of the same function in the same dtype that differ only in the order of the sums
    # inside the depthwise convs. Measured (relative error in norm, per tensor; x86-64 CPU): the converted and
    # unconverted fp32 models are <= 1.1e-6 apart (outputs <= 2.1e-7), while the unconverted fp32 model is
    # itself up to 6.4e-6 from the fp64 one (MobileNetV3's squeeze-excite and BatchNorm gradients); fp64:
    # <= 1.2e-15 apart. TOL (1e-5 for fp32, 1e-10 for fp64) leaves a margin of about 9 in fp32.
    tol = TOL[dtype]
    assert y.dtype == dtype and rel_err(y, y_ref) < tol, f"output rel err {rel_err(y, y_ref):.3g}"
    assert rel_err(gx, gx_ref) < tol, f"grad input rel err {rel_err(gx, gx_ref):.3g}"
    assert list(gp) == list(gp_ref)
    errs = {n: rel_err(gp[n], gp_ref[n]) for n in gp}
    worst = max(errs, key=errs.get)
    assert errs[worst] < tol, f"grad of {worst}: rel err {errs[worst]:.3g}"
    # Each dwconv layer ran in its input's memory format (the NHWC kernels for channels_last activations,
    # which timm's LayerNorm2d hands ConvNeXt's depthwise convs even in a contiguous model), no copy.
    assert len(layouts) == len(expected) and all(i == o for i, o in layouts), layouts
    if channels_last:
        assert all(i for i, _ in layouts)
