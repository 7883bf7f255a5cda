#!/bin/sh
# Seeds for fuzz_load_model from the TF.js fixtures: each FIXTURES/CASE/model.json, a NUL byte,
# and its shard. Usage: make_corpus.sh FIXTURES OUT (OUT is emptied first).
set -eu
fixtures=$1
out=$2
rm -rf "$out"
mkdir -p "$out"
for dir in "$fixtures"/*/; do
  name=$(basename "$dir")
  { cat "$dir/model.json"; printf '\0'; cat "$dir/group1-shard1of1.bin"; } > "$out/$name"
done
