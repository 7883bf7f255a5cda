#!/usr/bin/env bash
# fit()'s training throughput alone and across 2 ranks of mpirun on this machine (issue #18):
# samples per second of bench/fit_throughput for each model given (default: compare_lstm and
# sentiment_imdb), at batch 64 per rank:
#   N=1 with 1 thread, N=1 with 2 threads (a batch's halves at once), N=2 ranks of 1 thread.
# Arguments: model names. Run by hand on a quiet machine; timings never go into tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${WEFT_BUILD_DIR:-build}
bash tools/setup.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" --target fit_throughput > /dev/null
models=("$@")
((${#models[@]} > 0)) || models=(compare_lstm sentiment_imdb)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for model in "${models[@]}"; do
  samples=4096
  [[ $model == sentiment_imdb ]] && samples=1024
  WEFT_NUM_THREADS=1 "$build"/bench/fit_throughput "$model" "$samples" 64
  WEFT_NUM_THREADS=2 "$build"/bench/fit_throughput "$model" "$samples" 64
  mpirun -np 2 --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo \
    -x WEFT_NUM_THREADS=1 "$build"/bench/fit_throughput "$model" "$samples" 64
done
