"""python -m dwconv.bench end to end on tiny sizes (the shape CSVs ship with the package)."""
import subprocess
import sys

import pytest

from dwconv import bench


def test_shapes_are_package_data():
    rows = bench.load_shapes("seeds.csv", "s000_")
    assert len(rows) == 9 and all(r["N"] == 16 for r in rows)
    assert [r["kh"] for r in bench.load_shapes("seeds.csv", "s001_k")] == list(range(3, 32, 2))
    assert bench.load_shapes("convnext_t.csv") and bench.load_shapes("replknet_31b.csv")


def test_bench_cpu_tiny(tmp_path, capsys):
    png = tmp_path / "bench.png"
    res = bench.main(["--device", "cpu", "--suite", "training,convnext", "--batch", "1", "--layers", "2",
                      "--size", "12", "--channels", "4", "--kernels", "3,31", "--filter", "768x7", "--repeat", "1", "--warmup", "0",
                      "--plot", str(png)])
    out = capsys.readouterr().out
    assert "| s001_k3 |" in out and "| s001_k31 |" in out and "cnxt_768x7_k7" in out and "cnxt_96x56" not in out
    assert [r["k"] for r in res["training"]] == [3, 31]
    assert all(r["err"] < 1e-5 for r in res["training"])
    assert all(r["err"] < 2e-2 for r in res["convnext"])  # bf16
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert png.stat().st_size > 1000


def test_bench_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "dwconv.bench", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--batch" in r.stdout and "--layers" in r.stdout


def test_bench_overhead(capsys):
    res = bench.main(["--device", "cpu", "--suite", "overhead", "--repeat", "1", "--warmup", "0", "--plot", ""])
    out = capsys.readouterr().out
    assert "## overhead: N1 C32 8x8 k3 (float32, NCHW)" in out and "| dwconv.conv2d |" in out
    names = [r["name"] for r in res["overhead"]]
    assert names == ["F.conv2d(groups=C)", "dwconv.conv2d", "torch.ops.dwconv.conv2d_forward",
                     "dwconv._C.run (binding alone)"]
    assert all(r["fwd_us"] > 0 for r in res["overhead"]) and res["overhead"][-1]["fb_us"] is None
