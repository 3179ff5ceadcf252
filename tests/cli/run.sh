#!/usr/bin/env bash
# CLI tests of the dwconv tool, run by CTest (tools/CMakeLists.txt, label "cli"):
#   run.sh <path to dwconv> <case>
# Cases: help, check, bench_json, bench_1d, bench_reference, bench_onednn, bad_args.
set -uo pipefail
bin="$1"
case_name="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A tiny 2D suite and a tiny 1D suite.
cat >"$tmp/tiny.csv" <<'CSV'
name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w
# a comment line
t_k3,2,8,12,12,1,3,3,1,1,1,1,1,1
t_k5s2,1,16,9,11,2,5,5,2,2,2,2,1,1
t_k7d2,1,4,16,16,1,7,7,1,1,6,6,2,2
CSV
cat >"$tmp/tiny1d.csv" <<'CSV'
name,N,C,L,multiplier,k,stride,pad,dil,causal
t_causal4,2,16,64,1,4,1,0,1,1
t_k31,1,8,100,1,31,1,15,1,0
CSV

# Validates a --json file: a list of records carrying the documented fields.
check_json() {  # file expected_records baseline_must_be_numeric(0|1)
  python3 - "$@" <<'PY' || fail "JSON check of $1"
import json, math, sys
path, n, need_base = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
recs = json.load(open(path))
assert isinstance(recs, list), "not a list"
assert len(recs) == n, f"{len(recs)} records, expected {n}"
fields = ["name", "pass", "dtype", "layout", "device", "kernel", "ms", "baseline", "baseline_ms",
          "speedup", "gbps", "gflops", "roofline_frac"]
for r in recs:
    for f in fields:
        assert f in r, f"record {r.get('name')} lacks {f}"
    assert r["status"] == "ok", r
    for f in ["ms", "gbps", "gflops", "roofline_frac"]:
        assert isinstance(r[f], (int, float)) and r[f] > 0 and math.isfinite(r[f]), (f, r[f])
    assert r["kernel"], r
    if need_base:
        assert isinstance(r["baseline_ms"], (int, float)) and r["baseline_ms"] > 0, r
        assert abs(r["speedup"] - r["baseline_ms"] / r["ms"]) < 1e-3 * r["speedup"], r
print(f"{path}: {len(recs)} valid records")
PY
}

expect_usage_error() {  # args...: must exit 2 with exactly one non-empty line on stderr
  local out err rc
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  err="$(cat "$tmp/err")"
  [ "$rc" -eq 2 ] || fail "dwconv $* exited $rc, expected 2 (stderr: $err)"
  [ -n "$err" ] || fail "dwconv $* printed no message"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "dwconv $* printed more than one line: $err"
  echo "ok (exit 2): dwconv $*  ->  $err"
}

case "$case_name" in
  help)
    "$bin" --help | grep -q "commands:" || fail "dwconv --help"
    "$bin" help | grep -q "commands:" || fail "dwconv help"
    "$bin" help bench | grep -q -- "--suite" || fail "dwconv help bench"
    "$bin" bench --help | grep -q -- "--baseline" || fail "dwconv bench --help"
    "$bin" check --help | grep -q -- "--count" || fail "dwconv check --help"
    "$bin" bench --list | grep -q "seeds" || fail "dwconv bench --list"
    echo "help ok"
    ;;
  check)
    "$bin" check --count 20 --seed 7 || fail "dwconv check --count 20"
    ;;
  bench_json)
    "$bin" bench --suite "$tmp/tiny.csv" --iters 2 --warmup 1 --baseline none --json "$tmp/out.json" ||
      fail "bench tiny"
    check_json "$tmp/out.json" 3 0
    "$bin" bench --suite "$tmp/tiny.csv" --iters 2 --warmup 1 --baseline none --pass train --layout nhwc \
      --dtype bf16 --batch 1 --threads 1 --json "$tmp/train.json" || fail "bench tiny train"
    check_json "$tmp/train.json" 3 0
    # Without --json, and with a forced kernel (other directions: dispatch).
    "$bin" bench --suite "$tmp/tiny.csv" --iters 1 --warmup 0 --baseline none >"$tmp/plain.txt" ||
      fail "bench without --json"
    grep -q "^t_k5s2 " "$tmp/plain.txt" || fail "no table row"
    "$bin" bench --suite "$tmp/tiny.csv" --iters 1 --warmup 0 --baseline none --pass train \
      --kernel cpu_dgrad_nhwc_generic --layout nhwc >"$tmp/forced.txt" || fail "bench --kernel"
    grep -q "cpu_dgrad_nhwc_generic" "$tmp/forced.txt" || fail "forced kernel not in the table"
    # Autotuned: every direction's kernel is a variant of this build, and the JSON says autotune.
    "$bin" bench --suite "$tmp/tiny.csv" --iters 2 --warmup 0 --baseline none --pass train --autotune \
      --json "$tmp/tuned.json" >"$tmp/tuned.txt" || fail "bench --autotune"
    grep -q ", autotune$" "$tmp/tuned.txt" || fail "no autotune in the header"
    check_json "$tmp/tuned.json" 3 0
    "$bin" bench --list >"$tmp/list.txt"
    python3 - "$tmp/tuned.json" "$tmp/list.txt" <<'PY' || fail "bench --autotune kernels"
import json, sys
names = {l.split()[0] for l in open(sys.argv[2]) if l.startswith("  ")}
for r in json.load(open(sys.argv[1])):
    assert r["autotune"] is True, r
    ks = r["kernel"].split("+")
    assert len(ks) == 4 and all(k in names for k in ks), r["kernel"]
print("autotune kernels ok")
PY
    ;;
  bench_1d)
    "$bin" bench --suite "$tmp/tiny1d.csv" --iters 2 --warmup 1 --baseline none --pass bwd_weight \
      --json "$tmp/1d.json" || fail "bench 1d"
    check_json "$tmp/1d.json" 2 0
    ;;
  bench_reference)
    "$bin" bench --suite "$tmp/tiny.csv" --iters 2 --warmup 1 --baseline reference --pass bwd_input \
      --json "$tmp/ref.json" | tee "$tmp/ref.txt" || fail "bench reference"
    grep -q "geomean speedup vs reference" "$tmp/ref.txt" || fail "no geomean line"
    check_json "$tmp/ref.json" 3 1
    ;;
  bench_onednn)
    "$bin" bench --suite "$tmp/tiny.csv" --iters 2 --warmup 1 --baseline onednn --pass train \
      --json "$tmp/dnnl.json" | tee "$tmp/dnnl.txt" || fail "bench onednn"
    grep -q "geomean speedup vs onednn" "$tmp/dnnl.txt" || fail "no geomean line"
    check_json "$tmp/dnnl.json" 3 1
    "$bin" bench --suite "$tmp/tiny1d.csv" --iters 2 --warmup 1 --baseline onednn_nchw \
      --json "$tmp/dnnl1d.json" || fail "bench onednn_nchw 1d"
    check_json "$tmp/dnnl1d.json" 2 1
    # f16: oneDNN 2.x has no CPU f16 convolution -> n/a, still exit 0.
    "$bin" bench --suite "$tmp/tiny1d.csv" --iters 1 --warmup 0 --baseline onednn --dtype f16 \
      >"$tmp/f16.txt" || fail "bench f16 with an n/a baseline"
    cat "$tmp/f16.txt"
    ;;
  bad_args)
    printf 'name,N,C,H,W\nx,1,2,3,4\n' >"$tmp/bad_header.csv"
    printf 'name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w\nx,1,2,3,4,1,3,3,1,1,1,1,1\n' \
      >"$tmp/bad_cols.csv"
    printf 'name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w\nx,1,2,3,4,1,3,3.5,1,1,1,1,1,1\n' \
      >"$tmp/bad_int.csv"
    printf 'name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w\nx,1,2,3,4,1,3,3x,1,1,1,1,1,1\n' \
      >"$tmp/bad_int2.csv"
    printf 'name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w\nx,1,0,3,4,1,3,3,1,1,1,1,1,1\n' \
      >"$tmp/bad_zero.csv"
    printf 'name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w\nx,1,2,3,4,1,9,9,1,1,0,0,1,1\n' \
      >"$tmp/bad_empty_out.csv"
    printf 'name,N,C,L,multiplier,k,stride,pad,dil,causal\nx,1,2,30,1,4,1,0,1,2\n' >"$tmp/bad_causal.csv"
    printf 'name,N,C,H,W,multiplier,kh,kw,stride_h,stride_w,pad_h,pad_w,dil_h,dil_w\n' >"$tmp/no_rows.csv"
    : >"$tmp/empty.csv"
    expect_usage_error
    expect_usage_error frobnicate
    expect_usage_error help frobnicate
    expect_usage_error check --bogus
    expect_usage_error check --count
    expect_usage_error check --count abc
    expect_usage_error check --count -1
    expect_usage_error check --count 5x
    expect_usage_error check --seed 1.5
    expect_usage_error check --device tpu
    expect_usage_error check --threads 0
    expect_usage_error check extra
    expect_usage_error check --verbose=1
    expect_usage_error check --count 1 --count 2
    expect_usage_error bench
    expect_usage_error bench --suite
    expect_usage_error bench --suite no_such_suite
    expect_usage_error bench --suite seeds --dtype f8
    expect_usage_error bench --suite seeds --layout nwc
    expect_usage_error bench --suite seeds --pass backward
    expect_usage_error bench --suite seeds --baseline mkl
    expect_usage_error bench --suite seeds --batch 0
    expect_usage_error bench --suite seeds --batch two
    expect_usage_error bench --suite seeds --iters 0
    expect_usage_error bench --suite seeds --warmup -1
    expect_usage_error bench --suite seeds --time-limit x
    expect_usage_error bench --suite seeds --kernel no_such_kernel
    expect_usage_error bench --suite seeds --device gpu
    expect_usage_error bench --suite seeds --baseline cudnn
    expect_usage_error bench --suite seeds --json /nonexistent-dir/x.json
    expect_usage_error bench --suite seeds --frobnicate 3
    expect_usage_error bench --suite seeds --autotune=1
    expect_usage_error bench --suite "$tmp/bad_header.csv"
    expect_usage_error bench --suite "$tmp/bad_cols.csv"
    expect_usage_error bench --suite "$tmp/bad_int.csv"
    expect_usage_error bench --suite "$tmp/bad_int2.csv"
    expect_usage_error bench --suite "$tmp/bad_zero.csv"
    expect_usage_error bench --suite "$tmp/bad_empty_out.csv"
    expect_usage_error bench --suite "$tmp/bad_causal.csv"
    expect_usage_error bench --suite "$tmp/no_rows.csv"
    expect_usage_error bench --suite "$tmp/empty.csv"
    if ! "$bin" bench --list | grep -q "(cuda,"; then
      expect_usage_error bench --suite seeds --device cuda
      expect_usage_error check --device cuda
    fi
    echo "bad_args ok"
    ;;
  *)
    fail "unknown case $case_name"
    ;;
esac
