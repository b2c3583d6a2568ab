#!/usr/bin/env bash
# Installs Apache Airflow (pinned: tests/airflow/requirements.lock, every package with its exact
# version, from PyPI only) into a cached virtualenv and prints the venv's path on stdout.
# Idempotent: a venv whose stamp matches the lock file is reused as is (seconds); a changed
# lock gets a fresh venv. The lock was made with `pip freeze` from
#   pip install apache-airflow==3.3.2 apache-airflow-providers-standard==1.21.0 \
#     apache-airflow-providers-cncf-kubernetes==10.25.0 pytest
# because Airflow's own constraint files are not on PyPI; installing with --no-deps from the
# full lock skips pip's resolver (a first install takes minutes, not the ten a resolve did).
set -euo pipefail
cd "$(dirname "$0")/.."

lock=tests/airflow/requirements.lock
stamp_of_lock="$(sha256sum "$lock" | cut -c1-16)"
venv="${SYNCCTL_AIRFLOW_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/syncctl/airflow-$stamp_of_lock}"

if [ -f "$venv/.syncctl-stamp" ] && [ "$(cat "$venv/.syncctl-stamp")" = "$stamp_of_lock" ]; then
  echo "$venv"
  exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "airflow-venv: python3 is missing; apt-get install -y python3 python3-venv" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' \
  || { echo "airflow-venv: Airflow 3.3 needs Python 3.10 to 3.13, found $("$python" --version)" >&2; exit 1; }

echo "airflow-venv: installing Airflow into $venv (first time only; a few minutes)" >&2
rm -rf "$venv"
"$python" -m venv "$venv" >&2 || { echo "airflow-venv: python3 -m venv failed; apt-get install -y python3-venv" >&2; exit 1; }
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: -r "$lock" >&2
"$venv/bin/pip" check >&2
echo "$stamp_of_lock" > "$venv/.syncctl-stamp"
echo "$venv"
