"""DwConv1d / DwConv2d against nn.Conv1d / nn.Conv2d, and dwconv.convert."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dwconv
from conftest import rel_err

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


def test_convert_timm_model():
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilenetv3_small_050", pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        _, replaced = dwconv.convert(model)
        got = model(x)
    assert replaced
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
