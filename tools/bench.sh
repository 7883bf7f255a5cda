#!/usr/bin/env bash
# Side-by-side benchmark of shared/spec/benchmarks.md's workloads: weft eager (bench/eager_steps)
# and PyTorch (bench/pytorch_steps.py, Debian's python3-torch), in one run on this machine.
# Prints one line per figure: weft ms, PyTorch ms, and the speed-up (>1: weft is faster).
# Run by hand on a quiet machine; timings never go into tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
# PyTorch at its best here: Debian's torch calls the system BLAS, which is the slow reference
# implementation unless OpenBLAS is installed (6 vs ~100+ GFLOP/s on a 2048^3 matmul).
missing=()
for package in python3-torch libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  sudo_if_needed=$([[ $(id -u) == 0 ]] || echo sudo)
  $sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" > /dev/null
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target eager_steps > /dev/null
# Without PASSIVE, PyTorch's OpenMP threads spin against OpenBLAS's on 2 cores.
export OMP_WAIT_POLICY=PASSIVE
weft=$(build/bench/eager_steps)
torch=$(/usr/bin/python3 bench/pytorch_steps.py)
echo "figure         weft ms   PyTorch ms   speed-up"
join <(sort <<<"$weft") <(sort <<<"$torch") |
  awk '{ printf "%-13s %9.2f %12.2f %9.2fx\n", $1, $2, $3, $3 / $2 }'
