"""python -m dwconv.bench: dwconv against nn.Conv2d(groups=C), end to end through PyTorch.

Suites (shapes from the CSVs installed with the package, dwconv/shapes/*.csv):
  forward    the seed-000 forward table: MobileNet/EfficientNet depthwise layers at N=16 (seeds.csv rows s000_*)
  training   the seed-001 speed test: 24 stacked depthwise layers, B64 C384 64x64, k = 3..31, forward + backward
  convnext   ConvNeXt-T 7x7 layers (convnext_t.csv), forward and forward + backward
  replknet   RepLKNet-31B large kernels (replknet_31b.csv), forward and forward + backward
  overhead   per-call time on a tiny layer (N1 C32 8x8 k3 unless --batch/--channels/--size/--kernels), where the
             Python layers rather than the kernel set the time: F.conv2d, dwconv.conv2d, the op through the
             dispatcher and the native binding alone, in microseconds (not in --suite's default list)
convnext and replknet run in bf16 channels_last by default (as those networks train); forward and training use
--dtype (float32 by default) and --channels-last.

Both implementations run in the same process on the same tensors. GPU times are CUDA-event medians; CPU times
are time.perf_counter medians. On CPU use --batch / --layers (and --size, --channels) to keep runs short, e.g.

  python -m dwconv.bench --device cpu --suite training --batch 2 --layers 2 --size 32 --kernels 3,7,15,31

A PNG of time and speedup against kernel size is written with --plot (needs matplotlib).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

import dwconv

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


# ------------------------------------------------------------------ shapes
def shapes_dir() -> Path:
    """The installed shape CSVs (package data), or bench/shapes of a source checkout (editable install)."""
    here = Path(__file__).resolve().parent
    for d in (here / "shapes", here.parent.parent / "bench" / "shapes"):
        if (d / "seeds.csv").is_file():
            return d
    try:
        from importlib.resources import files
        d = Path(str(files("dwconv") / "shapes"))
        if (d / "seeds.csv").is_file():
            return d
    except Exception:  # pragma: no cover
        pass
    raise FileNotFoundError("dwconv.bench: shape CSVs not found (expected dwconv/shapes/*.csv in the package)")


def load_shapes(suite_file: str, prefix: Optional[str] = None) -> List[Dict[str, object]]:
    rows = []
    with open(shapes_dir() / suite_file, newline="") as f:
        for row in csv.DictReader(f):
            if prefix and not row["name"].startswith(prefix):
                continue
            rows.append({k: (v if k == "name" else int(v)) for k, v in row.items()})
    return rows


# ------------------------------------------------------------------ timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: torch.device, warmup: int, repeat: int) -> float:
    """Median milliseconds of fn()."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    if device.type == "cuda":
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _torch_conv(c: int, m: int, k, stride, pad, dil, bias: bool, device, dtype) -> nn.Conv2d:
    return nn.Conv2d(c, c * m, k, stride=stride, padding=pad, dilation=dil, groups=c, bias=bias, device=device,
                     dtype=dtype)


def _pair_modules(row, device, dtype):
    """(nn.Conv2d, DwConv2d holding the same parameters) for one CSV row."""
    ref = _torch_conv(row["C"], row["multiplier"], (row["kh"], row["kw"]), (row["stride_h"], row["stride_w"]),
                      (row["pad_h"], row["pad_w"]), (row["dil_h"], row["dil_w"]), True, device, dtype)
    mine, _ = dwconv.convert(nn.Sequential(_copy(ref)))
    return ref, mine[0]


def _copy(conv: nn.Conv2d) -> nn.Conv2d:
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None, device="meta")
    new.weight, new.bias = conv.weight, conv.bias
    return new


# ------------------------------------------------------------------ suites
def run_layers(rows, args, device, dtype, channels_last: bool, backward: bool, title: str):
    """One line per layer: forward (and forward + backward) time of both implementations."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    results = []
    if args.filter:
        keys = [k for k in args.filter.split(",") if k]
        rows = [r for r in rows if any(k in r["name"] for k in keys)]
    for row in rows:
        n = args.batch or row["N"]
        x = torch.randn(n, row["C"], row["H"], row["W"], device=device, dtype=dtype).contiguous(memory_format=fmt)
        ref, mine = _pair_modules(row, device, dtype)
        with torch.no_grad():
            err = rel_err(mine(x), ref(x))
        r = {"name": row["name"], "shape": f"N{n} C{row['C']} {row['H']}x{row['W']} k{row['kh']}x{row['kw']}"
                                           f" s{row['stride_h']}", "k": row["kh"], "err": err,
             "kernel": dwconv.selected_kernel(
                 "forward", x, ref.weight, ref.stride, (row["pad_h"], row["pad_h"], row["pad_w"], row["pad_w"]),
                 ref.dilation, channels_last)}
        with torch.no_grad():
            r["torch_fwd"] = time_fn(lambda: ref(x), device, args.warmup, args.repeat)
            r["dwconv_fwd"] = time_fn(lambda: mine(x), device, args.warmup, args.repeat)
        if backward:
            xg = x.detach().requires_grad_()
            gy = None

            def step(mod):
                nonlocal gy
                y = mod(xg)
                if gy is None:
                    gy = torch.randn_like(y)
                y.backward(gy)

            r["torch_fb"] = time_fn(lambda: step(ref), device, args.warmup, args.repeat)
            r["dwconv_fb"] = time_fn(lambda: step(mine), device, args.warmup, args.repeat)
        results.append(r)
        _print_row(r, backward)
    return results


def run_training(rows, args, device, dtype, channels_last: bool):
    """Seed 001: `layers` stacked depthwise convs (same padding) per kernel size, forward + backward."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    results = []
    wanted = {int(k) for k in args.kernels.split(",")} if args.kernels else None
    for row in rows:
        k = row["kh"]
        if wanted is not None and k not in wanted:
            continue
        n, c = args.batch or row["N"], args.channels or row["C"]
        h = w = args.size or row["H"]
        layers = args.layers
        ref = nn.Sequential(*[_torch_conv(c, 1, k, 1, k // 2, 1, True, device, dtype) for _ in range(layers)])
        mine = nn.Sequential(*[_copy(m) for m in ref])
        dwconv.convert(mine)
        x = torch.randn(n, c, h, w, device=device, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()

        def step(mod):
            y = mod(x)
            y.backward(torch.ones_like(y))

        r = {"name": row["name"], "shape": f"{layers}x N{n} C{c} {h}x{w} k{k}", "k": k}
        with torch.no_grad():
            probe = x.detach()[:1]
            r["err"] = rel_err(mine(probe), ref(probe))
        r["torch_fb"] = time_fn(lambda: step(ref), device, args.warmup, args.repeat)
        r["dwconv_fb"] = time_fn(lambda: step(mine), device, args.warmup, args.repeat)
        x.grad = None
        for p in ref.parameters():
            p.grad = None
        results.append(r)
        _print_row(r, True, fwd=False)
        del ref, mine, x
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def run_overhead(args, device, dtype, channels_last: bool):
    """Microseconds per call of a layer small enough for the Python side to dominate. Each round times
    100 calls of every contender in turn (so load on the machine hits all alike); the median round counts."""
    from . import _C, _ops
    n, c, h = args.batch or 1, args.channels or 32, args.size or 8
    k = int(args.kernels.split(",")[0]) if args.kernels else 3
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(n, c, h, h, device=device, dtype=dtype).contiguous(memory_format=fmt)
    w = torch.randn(c, 1, k, k, device=device, dtype=dtype)
    b = torch.randn(c, device=device, dtype=dtype)
    p, pad = k // 2, [k // 2] * 4
    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
    gy = torch.randn_like(F.conv2d(x, w, b, 1, p, 1, c))

    def fb(f):
        return lambda: f(xg, wg, bg).backward(gy)

    contenders = {
        "F.conv2d(groups=C)": lambda x, w, b: F.conv2d(x, w, b, 1, p, 1, c),
        "dwconv.conv2d": lambda x, w, b: dwconv.conv2d(x, w, b, padding=p),
        "torch.ops.dwconv.conv2d_forward": lambda x, w, b: torch.ops.dwconv.conv2d_forward(
            x, w, b, [1, 1], pad, [1, 1], channels_last),
    }
    fwd = {name: (lambda f=f: f(x, w, b)) for name, f in contenders.items()}
    if device.type == "cpu":
        # The binding with its arguments ready: validation, kernel choice and the kernel, nothing of Python.
        out = torch.empty_like(gy)
        raw = [0, n, c, h, h, 1, k, k, 1, 1, 1, 1, *pad, _ops._DTYPE[dtype], int(channels_last), 0, x.data_ptr(),
               w.data_ptr(), b.data_ptr(), out.data_ptr(), 0, 0, 0, 0, 1]
        fwd["dwconv._C.run (binding alone)"] = lambda: _C.run(*raw)
    rounds = max(5 * args.repeat, 5)

    def measure(cases):
        per = {name: [] for name in cases}
        for f in cases.values():
            for _ in range(10 * args.warmup + 10):
                f()
        for _ in range(rounds):
            for name, f in cases.items():
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(100):
                    f()
                _sync(device)
                per[name].append((time.perf_counter() - t0) * 1e4)  # us per call
        return {name: statistics.median(v) for name, v in per.items()}

    with torch.no_grad():
        t_fwd = measure(fwd)
    t_fb = measure({name: fb(f) for name, f in contenders.items()})
    print(f"\n## overhead: N{n} C{c} {h}x{h} k{k} ({str(dtype).replace('torch.', '')}, "
          f"{'channels_last' if channels_last else 'NCHW'}), microseconds per call\n")
    print("| call | fwd (no_grad) us | fwd+bwd us |")
    print("|---|---|---|")
    results = []
    for name in fwd:
        r = {"name": name, "fwd_us": t_fwd[name], "fb_us": t_fb.get(name)}
        results.append(r)
        print(f"| {name} | {r['fwd_us']:.1f} | " + ("-" if r["fb_us"] is None else f"{r['fb_us']:.1f}") + " |")
    sys.stdout.flush()
    return results


def _print_header(title: str, backward: bool, fwd: bool = True) -> None:
    print(f"\n## {title}\n")
    cols = ["layer", "shape"]
    if fwd:
        cols += ["torch fwd ms", "dwconv fwd ms", "fwd speedup"]
    if backward:
        cols += ["torch fwd+bwd ms", "dwconv fwd+bwd ms", "fwd+bwd speedup"]
    cols += ["rel err"] + (["dwconv fwd kernel"] if fwd else [])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    sys.stdout.flush()


def _print_row(r, backward: bool, fwd: bool = True) -> None:
    cells = [r["name"], r["shape"]]
    if fwd:
        cells += [f"{r['torch_fwd']:.3f}", f"{r['dwconv_fwd']:.3f}", f"{r['torch_fwd'] / r['dwconv_fwd']:.2f}x"]
    if backward:
        cells += [f"{r['torch_fb']:.3f}", f"{r['dwconv_fb']:.3f}", f"{r['torch_fb'] / r['dwconv_fb']:.2f}x"]
    cells += [f"{r['err']:.1e}"] + ([r["kernel"]] if fwd else [])
    print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def plot(all_results: Dict[str, list], path: str, device_name: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(matplotlib is not installed: no plot written to {path}; pip install matplotlib)")
        return False
    suites = [s for s in all_results if all_results[s] and s != "overhead"]  # no layers to plot
    if not suites:
        return False
    fig, axes = plt.subplots(len(suites), 2, figsize=(12, 3.6 * len(suites)), squeeze=False)
    for row_axes, suite in zip(axes, suites):
        res = all_results[suite]
        key = "fb" if "torch_fb" in res[0] else "fwd"
        labels = [r["k"] if suite == "training" else r["name"] for r in res]
        xs = list(range(len(res)))
        t_torch = [r[f"torch_{key}"] for r in res]
        t_mine = [r[f"dwconv_{key}"] for r in res]
        ax = row_axes[0]
        ax.plot(xs, t_torch, "o-", label="nn.Conv2d")
        ax.plot(xs, t_mine, "o-", label="dwconv")
        ax.set_ylabel("ms" + (" (fwd+bwd)" if key == "fb" else " (fwd)"))
        ax.set_title(f"{suite}: time")
        ax.legend()
        ax = row_axes[1]
        ax.bar(xs, [a / b for a, b in zip(t_torch, t_mine)])
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_ylabel("speedup over nn.Conv2d")
        ax.set_title(f"{suite}: speedup")
        for a in row_axes:
            a.set_xticks(xs)
            a.set_xticklabels(labels, rotation=45 if suite != "training" else 0, ha="right" if suite != "training" else "center",
                              fontsize=7)
            a.set_xlabel("kernel size" if suite == "training" else "layer")
    fig.suptitle(f"dwconv vs nn.Conv2d on {device_name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")
    return True


def main(argv: Optional[List[str]] = None) -> Dict[str, list]:
    p = argparse.ArgumentParser(prog="python -m dwconv.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--suite", default="forward,training,convnext,replknet",
                   help="comma-separated: forward, training, convnext, replknet, overhead (default: all but "
                        "overhead)")
    p.add_argument("--dtype", default="float32", choices=sorted(_DTYPES),
                   help="dtype of the forward and training tables (default float32)")
    p.add_argument("--channels-last", action="store_true", help="forward and training tables in channels_last")
    p.add_argument("--large-dtype", default="bfloat16", choices=sorted(_DTYPES),
                   help="dtype of the convnext and replknet suites (default bfloat16, channels_last)")
    p.add_argument("--batch", type=int, default=None, help="override every suite's batch size")
    p.add_argument("--layers", type=int, default=24, help="stacked layers of the training table (default 24)")
    p.add_argument("--size", type=int, default=None, help="override the training table's image size (64)")
    p.add_argument("--channels", type=int, default=None, help="override the training table's channels (384)")
    p.add_argument("--filter", default=None,
                   help="comma-separated substrings: only layers whose name contains one (forward, convnext, "
                        "replknet)")
    p.add_argument("--kernels", default=None, help="training table kernel sizes, e.g. 3,7,31 (default 3..31)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 3 on GPU, 1 on CPU)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default 20 on GPU, 3 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--plot", default="dwconv_bench.png", help="PNG path ('' for none)")
    args = p.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not dwconv.cuda_built():
        p.error("this dwconv build has no CUDA backend; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    args.warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    args.repeat = args.repeat if args.repeat is not None else (20 if gpu else 3)
    if gpu:
        torch.backends.cudnn.benchmark = True
    dev_name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"# dwconv {dwconv.__version__} vs torch {torch.__version__} nn.Conv2d on {dev_name}")
    print(f"warmup {args.warmup}, repeat {args.repeat}, median times in ms; rel err = |dwconv - torch| / |torch|")

    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = set(suites) - {"forward", "training", "convnext", "replknet", "overhead"}
    if unknown:
        p.error(f"unknown suite(s): {sorted(unknown)}")
    dtype = _DTYPES[args.dtype]
    results: Dict[str, list] = {}
    if "forward" in suites:
        _print_header(f"forward: seed-000 MobileNet/EfficientNet layers ({args.dtype}, "
                      f"{'channels_last' if args.channels_last else 'NCHW'})", False)
        results["forward"] = run_layers(load_shapes("seeds.csv", "s000_"), args, device, dtype, args.channels_last,
                                        False, "forward")
    if "training" in suites:
        _print_header(f"training: {args.layers} stacked layers, forward + backward ({args.dtype}, "
                      f"{'channels_last' if args.channels_last else 'NCHW'})", True, fwd=False)
        rows = [r for r in load_shapes("seeds.csv", "s001_k")]
        results["training"] = run_training(rows, args, device, dtype, args.channels_last)
    ldt = _DTYPES[args.large_dtype]
    for suite, file in (("convnext", "convnext_t.csv"), ("replknet", "replknet_31b.csv")):
        if suite in suites:
            _print_header(f"{suite} ({args.large_dtype}, channels_last)", True)
            results[suite] = run_layers(load_shapes(file), args, device, ldt, True, True, suite)
    if "overhead" in suites:
        results["overhead"] = run_overhead(args, device, dtype, args.channels_last)
    if args.plot:
        plot(results, args.plot, dev_name)
    return results


if __name__ == "__main__":
    main()
