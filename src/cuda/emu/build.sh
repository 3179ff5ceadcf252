#!/usr/bin/env bash
# Builds src/cuda/emu/emu_test: the CUDA backend's sources compiled by g++
# against the CPU emulation in include/, with the core library, the fp64
# reference and the checker. Usage: src/cuda/emu/build.sh [OUT_DIR] (default
# build-emu). Runs from any directory; uses -j2.
set -eu
cd "$(dirname "$0")/../../.."
OUT=${1:-build-emu}
mkdir -p "$OUT"
CXX=${CXX:-g++}
FLAGS=(-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -Wno-clobbered -DDWCONV_CUDA_EMU -DDWCONV_WITH_CUDA=1
       -Isrc/cuda/emu/include -Iinclude -Isrc)
SRCS=(src/core/shape.cpp src/core/validate.cpp src/core/dispatch.cpp src/core/autotune.cpp src/reference/reference.cpp
      src/check/check.cpp src/cuda/autotune.cu src/cuda/registry.cu src/cuda/generic.cu src/cuda/bgrad.cu src/cuda/fwd_nchw.cu
      src/cuda/fwd_nhwc.cu src/cuda/dgrad.cu src/cuda/wgrad.cu src/cuda/wgrad_tile.cu
      src/cuda/emu/emu_test.cpp)
OBJS=()
pids=()
for src in "${SRCS[@]}"; do
  obj="$OUT/$(echo "$src" | tr '/' '_').o"
  OBJS+=("$obj")
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src/cuda/launch.cuh src/cuda/emu/include include src/core/common.h -newer "$obj" 2>/dev/null | head -1)" ]; then
    "$CXX" "${FLAGS[@]}" -x c++ -c "$src" -o "$obj" &
    pids+=($!)
    if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$CXX" -o "$OUT/emu_test" "${OBJS[@]}"
echo "built $OUT/emu_test"
