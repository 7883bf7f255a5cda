#!/usr/bin/env bash
# Installs weft's build dependencies from Debian 12 packages. Idempotent: silent when everything
# is present; runs `apt-get update` only when a package is missing; uses sudo only when not root.
set -euo pipefail

packages=(g++ cmake ninja-build llvm-16-dev libzstd-dev libboost-graph-dev libfmt-dev libgtest-dev
          libcli11-dev gnuplot-nox nlohmann-json3-dev libicu-dev clang-16 libclang-rt-16-dev
          libopenmpi-dev openmpi-bin)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

echo "setup: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "setup: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
