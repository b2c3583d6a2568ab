#!/usr/bin/env bash
# Long property-based fuzzing (proptest, stable toolchain) of the inputs an attacker or a
# careless user controls: the config loader with ${VAR} interpolation, the CSV reader and
# writer, and the Snowflake COPY builder. CI (scripts/test.sh) runs the same properties with
# a small default case count; this runs many more.
#
#   bash scripts/fuzz.sh            # 20 000 cases per property
#   bash scripts/fuzz.sh 200000     # more
#
# A failure prints the minimal failing input and proptest stores its seed in the crate's
# *.proptest-regressions file: commit it, so every later run (and CI) replays it first.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
export PROPTEST_CASES="$cases"
echo "fuzz: $cases cases per property" >&2
cargo test -p syncctl-config --lib fuzz_
cargo test -p syncctl-csv --lib fuzz_   # reader, writer and formula guard
cargo test -p syncctl-snowflake --test quoting_props
