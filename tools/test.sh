#!/usr/bin/env bash
# weft's test command: installs the build dependencies, then builds and runs the whole suite
# three times: a Release build (warnings are errors) in build/, a portable Release build (no
# -march=native) in build-portable/, and an AddressSanitizer + UndefinedBehaviorSanitizer build
# in build-asan/ (Debug: it compiles about five times faster than -O2 with the sanitizers, and
# the suite's time is mostly process start-up either way); then fuzzes the file readers briefly
# (tools/fuzz.sh, build-fuzz/). Before the sanitizers, it compiles the GEMM's kernels for the x86
# instruction sets this CPU may lack (AVX-512, AVX2).
# Exits non-zero if any phase fails. Safe to rerun: the build folders are reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=$(nproc 2>/dev/null || echo 2)
if ! bash tools/setup.sh; then
  echo "weft tests: FAILED: setup (tools/setup.sh could not install the build dependencies)"
  exit 1
fi

# TensorFlow.js, for the test that loads weft's saved models in TF.js (tests/tfjs/package.json,
# into the git-ignored tests/tfjs/node_modules). Without Node.js, npm or the registry that test
# skips and says so; the rest of the suite needs neither.
if command -v npm >/dev/null && [[ ! -d tests/tfjs/node_modules/@tensorflow/tfjs ]]; then
  (cd tests/tfjs && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "weft tests: npm ci failed in tests/tfjs; the TF.js check will be skipped"
fi

failures=()
summary=()
total_start=$SECONDS

# phase NAME COMMAND...: runs one step, times it, records the result; never stops the script.
phase() {
  local name=$1 start=$SECONDS rc=0
  shift
  echo "==> $name"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if ((rc == 0)); then
    summary+=("$name ok ${took}s")
  else
    summary+=("$name FAILED ${took}s")
    failures+=("$name")
  fi
  echo "==> $name: $([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)") in ${took}s"
  return $rc
}

# configure_and_build DIR CMAKE_ARGS...: a build folder left by another generator is reset.
configure_and_build() {
  local dir=$1
  shift
  if [[ -f $dir/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  cmake -S . -B "$dir" -G Ninja -DWEFT_BUILD_TESTS=ON "$@" &&
    cmake --build "$dir" --parallel "$jobs"
}

run_tests() {
  ctest --test-dir "$1" --output-on-failure -j2 --timeout 1200
}

# build_and_test NAME DIR CMAKE_ARGS...: phase NAME-build in DIR, then NAME-tests if it built.
build_and_test() {
  local name=$1 dir=$2
  shift 2
  if phase "$name-build" configure_and_build "$dir" "$@"; then
    phase "$name-tests" run_tests "$dir" || true
  else
    summary+=("$name-tests skipped")
  fi
}

# 1. Release, warnings as errors, everything built (examples and benchmarks included).
build_and_test release build -DCMAKE_BUILD_TYPE=Release -DWEFT_SANITIZE=OFF -DWEFT_WERROR=ON \
  -DWEFT_BUILD_EXAMPLES=ON -DWEFT_BUILD_BENCH=ON

# 2. Portable: without -march=native (WEFT_NATIVE_ARCH=OFF: SSE2, no FMA, no F16C), the paths
# other CPUs and distributed binaries take, in build-portable/. A native build compiles none of
# them (a half-precision path once broke only here).
build_and_test portable build-portable -DCMAKE_BUILD_TYPE=Release -DWEFT_NATIVE_ARCH=OFF \
  -DWEFT_SANITIZE=OFF -DWEFT_WERROR=ON -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCH=OFF

# 3. The GEMM's kernels for the x86 instruction sets this CPU may lack, compiled, not run:
# runtime/gemm.cpp chooses them at compile time, so a native build compiles only this CPU's (on
# a Zen 2, no AVX-512 path at all). CMakeLists.txt's gemm_x86_64_v4 (AVX-512) and
# gemm_x86_64_v3 (AVX2 + FMA + F16C), with the Release build's warnings.
compile_isa_variants() {
  if [[ $(uname -m) != x86_64 ]]; then
    echo "not an x86-64 machine: skipped"
    return 0
  fi
  cmake --build build --target gemm_x86_64_v4 gemm_x86_64_v3
}
phase "isa-compile" compile_isa_variants || true

# 4. ASan + UBSan. The options are exported for the build too: test discovery runs the tests.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Without MPI: LeakSanitizer reports OpenMPI's own allocations, which live until exit.
build_and_test asan build-asan -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=ON -DWEFT_WERROR=OFF \
  -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCH=OFF -DWEFT_MPI=OFF

# 5. The parsers under libFuzzer (clang-16, ASan + UBSan) in build-fuzz/: a short pass of each
# target; `bash tools/fuzz.sh` alone runs a million inputs each.
phase "fuzz" bash tools/fuzz.sh --runs 20000 || true

total=$((SECONDS - total_start))
echo
if ((${#failures[@]} == 0)); then
  echo "weft tests: PASSED (${summary[*]/%/;} total ${total}s)"
else
  echo "weft tests: FAILED: ${failures[*]} (${summary[*]/%/;} total ${total}s)"
  exit 1
fi
