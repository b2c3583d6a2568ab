#!/usr/bin/env bash
# The quickstart in one command: copies seed/ to work/ (once; work/ is git-ignored, so no
# tracked file ever changes), builds syncctl and runs `syncctl sync <ARGS> --config sync.yaml`.
#   bash examples/quickstart/run.sh                 # sync run
#   bash examples/quickstart/run.sh plan            # the plan, nothing written
#   bash examples/quickstart/run.sh conflicts list  # any sync subcommand and flags
# Start over with: rm -rf examples/quickstart/work
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/work"
for f in contacts.csv crm.db; do
  [ -e "$here/work/$f" ] || cp "$here/seed/$f" "$here/work/$f"
done
if [ $# -eq 0 ]; then set -- run; fi
cd "$here/../.."
# Build in the open: a silent first build looks like a hang. Progress goes to stderr, so stdout
# still ends with the JSON result only.
bin="${CARGO_TARGET_DIR:-target}/debug/syncctl"
if [ ! -x "$bin" ]; then
  echo "quickstart: building syncctl; the first build takes a few minutes (about 6 on 2 cores), later runs start in seconds" >&2
fi
cargo build -p syncctl --bin syncctl
exec "$bin" sync "$@" --config examples/quickstart/sync.yaml
