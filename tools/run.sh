#!/usr/bin/env bash
# weft's main job: installs the build dependencies, builds the chapter's time-series forecaster
# (examples/temperature_forecast.cpp) in build/ and runs it. Arguments go to the program, e.g.
#   bash tools/run.sh --epochs 5
# The figure, the training curves and the forecast go to build/examples/time_series_forecast.png,
# _history.png (each with an .svg) and .csv unless --out is given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/setup.sh
# The same configuration as tools/test.sh's Release build, so the two share build/.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEFT_SANITIZE=OFF -DWEFT_WERROR=ON \
  -DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_EXAMPLES=ON -DWEFT_BUILD_BENCH=ON >/dev/null
cmake --build build --parallel "$(nproc 2>/dev/null || echo 2)" --target temperature_forecast

args=("$@")
[[ " $* " == *" --out "* ]] || args+=(--out build/examples/time_series_forecast)
exec build/examples/temperature_forecast "${args[@]}"
