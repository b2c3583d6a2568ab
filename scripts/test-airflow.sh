#!/usr/bin/env bash
# The Airflow example tests (tests/airflow): installs the pinned Airflow into a cached venv
# (scripts/airflow-venv.sh), builds syncctl and syncctl-fakes, and runs pytest, which imports
# every example DAG into a DagBag and runs `airflow dags test` on the BashOperator DAGs against
# the testkit fakes. Called by one line of scripts/test.sh; runs alone too.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
venv="$(bash scripts/airflow-venv.sh)"
cargo build -p syncctl --bin syncctl -p syncctl-testkit --bin syncctl-fakes
bin_dir="${CARGO_TARGET_DIR:-$PWD/target}/debug"
SYNCCTL_BIN_DIR="$bin_dir" "$venv/bin/python" -m pytest tests/airflow -p no:cacheprovider -q "$@"
echo "test-airflow: $((SECONDS - started)) s" >&2
