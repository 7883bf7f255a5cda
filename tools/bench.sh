#!/usr/bin/env bash
# Side-by-side benchmark of shared/spec/benchmarks.md's workloads, in one run on this machine:
# weft's compiled steps and eager tape (bench/weft_steps), PyTorch's C++ API
# (bench/libtorch/libtorch_steps.cpp, Debian's libtorch-dev) and Python (bench/pytorch_steps.py,
# python3-torch). Prints one line per figure (bench/table.py), with weft's speed-up over the
# faster PyTorch side. Arguments (figure name prefixes such as W3 or compile) keep only those of
# weft's figures. WEFT_BUILD_DIR names the build folder (default: build), WEFT_BENCH_ROUNDS the
# rounds (default 3). Run by hand on a quiet machine; timings never go into tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${WEFT_BUILD_DIR:-build}
rounds=${WEFT_BENCH_ROUNDS:-3}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "WEFT_BENCH_ROUNDS must be a positive count, got '$rounds'" >&2; exit 2; }
bash tools/setup.sh
# PyTorch at its best here: Debian's torch calls the system BLAS, which is the slow reference
# implementation unless OpenBLAS is installed (6 vs ~100+ GFLOP/s on a 2048^3 matmul).
missing=()
for package in python3-torch libtorch-dev libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  sudo_if_needed=$([[ $(id -u) == 0 ]] || echo sudo)
  $sudo_if_needed apt-get update -qq
  $sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" > /dev/null
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_LIBTORCH_BENCH=ON > /dev/null
cmake --build "$build" --target weft_steps libtorch_steps > /dev/null
# Without PASSIVE, PyTorch's OpenMP threads spin against OpenBLAS's on 2 cores.
export OMP_WAIT_POLICY=PASSIVE
# The machine first: weft's kernels follow the CPU's vector width (AVX-512 or AVX2) and caches,
# so a table means little without it (the same commit ran W1 twice as fast on a Zen 5 as on a
# Zen 2, where PyTorch's time hardly moved).
vector_isa=$(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || (grep -qw avx2 /proc/cpuinfo && echo AVX2) || echo "no AVX2")
cpu_field() { lscpu | sed -n "s/^$1: *//p" | head -1; }
# One cache's size (lscpu's summary gives the sum over the cores' caches). Some virtual machines
# have no cache table in /sys for lscpu to read; glibc's getconf then asks CPUID, as the
# hypervisor presents it (one such Zen 5 said 1 MiB of L2, right, and 508 MiB of L3).
cache_size() {
  local size
  size=$(lscpu -C=NAME,ONE-SIZE 2>/dev/null | awk -v level="$1" '$1 == level { print $2 }')
  [[ -n $size ]] || size=$(getconf "LEVEL${1#L}_CACHE_SIZE" 2>/dev/null |
    awk '$1 + 0 > 0 { print ($1 >= 1048576 ? $1 / 1048576 "M (CPUID)" : $1 / 1024 "K (CPUID)") }')
  echo "${size:-unknown}"
}
echo "machine: $(cpu_field 'Model name') (family $(cpu_field 'CPU family'), model" \
  "$(cpu_field Model)), $(nproc) CPUs, $vector_isa, L2 $(cache_size L2) a core, L3" \
  "$(cache_size L3);" \
  "weft $(git describe --always --dirty 2>/dev/null || echo '(not a git checkout)')"
# Rounds of all four sides, one after another, and each figure the median of its rounds: a slow
# spell of the machine (minutes long here) then falls on every side alike, not on whichever side
# it happened to meet.
echo "rounds: $rounds (each figure the median of its rounds)"
{
  for ((round = 1; round <= rounds; ++round)); do
    "$build"/bench/weft_steps compiled "$@" | sed 's/^/compiled /'
    "$build"/bench/weft_steps eager "$@" | sed 's/^/eager /'
    "$build"/bench/libtorch_steps | sed 's/^/libtorch /'
    /usr/bin/python3 bench/pytorch_steps.py | sed 's/^/python /'
  done
} | /usr/bin/python3 bench/table.py
