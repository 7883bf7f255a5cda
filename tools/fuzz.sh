#!/usr/bin/env bash
# Fuzzes weft's file readers with libFuzzer (tests/fuzz/: read_csv, load_imdb_folder,
# load_spam_assassin, the Tokenizer, Sequential::load_weights, load_model), built with clang-16
# and ASan + UBSan in build-fuzz/ (the library instrumented as a whole: WEFT_BUILD_FUZZ).
#   bash tools/fuzz.sh [--runs N] [TARGET...]    (default: 1,000,000 inputs each, all targets)
# Each target starts from its seeds in tests/fuzz/corpus/TARGET (load_model: the TF.js fixtures,
# through tests/fuzz/make_corpus.sh) and keeps what it learns in build-fuzz/corpus/TARGET. A crash, a sanitizer report or a broken invariant stops that target
# and leaves the input in build-fuzz/crashes/; the script exits non-zero if any target failed.
# tools/test.sh runs a short pass (--runs 20000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=1000000
targets=()
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(csv imdb_folder spam_json tokenizer weights load_model)

cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
  -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=ON -DWEFT_WERROR=OFF -DWEFT_BUILD_FUZZ=ON \
  -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz --parallel "$(nproc 2>/dev/null || echo 2)" \
  --target "${targets[@]/#/fuzz_}"
mkdir -p build-fuzz/crashes
sh tests/fuzz/make_corpus.sh tests/data/tfjs build-fuzz/seeds/load_model
# The targets write their inputs to files: in memory where there is a tmpfs.
[[ -d /dev/shm && -w /dev/shm ]] && export TMPDIR=/dev/shm
failed=()
for target in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$target
  mkdir -p "$corpus"
  echo "==> fuzz_$target: $runs inputs"
  seeds=tests/fuzz/corpus/$target
  [[ $target == load_model ]] && seeds=build-fuzz/seeds/load_model
  if ! build-fuzz/tests/fuzz/fuzz_"$target" -runs="$runs" -max_len=16384 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/"$target"- "$corpus" "$seeds" \
      2>build-fuzz/fuzz_"$target".log; then
    tail -40 build-fuzz/fuzz_"$target".log
    failed+=("$target")
  fi
  grep -E "^stat::number_of_executed_units|^Done" build-fuzz/fuzz_"$target".log || true
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in build-fuzz/crashes/)"
  exit 1
fi
echo "fuzz: no crash in ${targets[*]}"
