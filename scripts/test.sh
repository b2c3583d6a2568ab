#!/usr/bin/env bash
# Every test syncctl has: format, lints, unit, integration, contract (Prism) and database
# (PostgreSQL + MariaDB) tests. This is the command README.md and .ci/run use.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/check-prereqs.sh # seconds: fails naming what is missing, before anything compiles
bash scripts/ensure-services.sh
source scripts/install-alert-tools.sh # Pushgateway (Debian) + aiosmtpd venv (PyPI); alert tests fail without them

# Prism for the contract tests (pinned in tools/contract/package-lock.json).
if [ ! -x tools/contract/node_modules/.bin/prism ] || [ tools/contract/package-lock.json -nt tools/contract/node_modules/.package-lock.json ]; then
  npm ci --prefix tools/contract --no-audit --no-fund --loglevel=error
fi

# Vendor specs: tests/contracts/vendor in the repository unless SYNCCTL_CONTRACTS_DIR is set.

# Database tests always fail (never skip) when their server is unreachable.
export SYNCCTL_TEST_PG_URL="${SYNCCTL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
export SYNCCTL_TEST_MYSQL_URL="${SYNCCTL_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/audit.sh
cargo test --workspace --no-fail-fast
bash scripts/test-airflow.sh # the example DAGs in a real Airflow (cached venv; first install a few minutes)
