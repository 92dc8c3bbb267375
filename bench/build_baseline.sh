#!/usr/bin/env bash
# Builds lepton_graph._C as it was at a git revision, for before/after kernel benchmarks in ONE process:
#
#   bash bench/build_baseline.sh [REV=HEAD] [OUT=build/baseline]   ->  OUT/_C.<soabi>.so
#   (REV "." builds the working tree as it is: both sides of a comparison then come from the same build recipe)
#   python bench/kernel_bench.py --baseline build/baseline/_C.*.so --only gemm,gemm_int8,conv
#
# Each build gets its own pybind11 internals (PYBIND11_COMPILER_TYPE named after OUT), so it loads beside the
# installed build (and beside other OUTs) without a "type already registered" clash, and kernel_bench times both
# in the same interleaved rounds.
set -euo pipefail
rev=${1:-HEAD}
out=${2:-build/baseline}
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
if [ "$rev" = "." ]; then
  cp -r "$root/CMakeLists.txt" "$root/csrc" "$src/"
else
  git -C "$root" archive "$rev" CMakeLists.txt csrc | tar -x -C "$src"
fi
pybind11_dir=$("$py" -m pybind11 --cmakedir)
mkdir -p "$out"
out=$(cd "$out" && pwd)
tag=$(basename "$out" | tr -c 'a-zA-Z0-9\n' '_')  # its own pybind11 internals per output folder
cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$pybind11_dir" \
  -DPython_EXECUTABLE="$py" -DCMAKE_CXX_FLAGS="-DPYBIND11_COMPILER_TYPE=\\\"_lepton_${tag}\\\"" >/dev/null
cmake --build "$src/build" -j "$(nproc)" >/dev/null
rm -f "$out"/_C.*.so
cp "$src"/build/_C.*.so "$out/"
echo "baseline $([ "$rev" = "." ] && echo "working tree" || git -C "$root" rev-parse --short "$rev"): $(ls "$out"/_C.*.so)"
