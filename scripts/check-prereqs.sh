#!/usr/bin/env bash
# Checks, in a few seconds and before anything compiles, that this machine has what
# scripts/test.sh needs, and says what to do about each missing piece. Every problem is listed
# at once; the exit status is 1 when any is missing. Nothing is installed or started here:
# scripts/ensure-services.sh starts the databases, test.sh installs Prism from npm.
set -uo pipefail
cd "$(dirname "$0")/.."

missing=0
need() { # need WHAT FIX
  echo "check-prereqs: missing $1" >&2
  echo "  fix: $2" >&2
  missing=1
}
have() { command -v "$1" >/dev/null 2>&1; }

# Rust toolchain with the components test.sh runs.
have cargo || need "cargo (Rust toolchain)" "install rustup (https://rustup.rs), then \`rustup toolchain install stable\`"
if have cargo; then
  cargo fmt --version >/dev/null 2>&1 || need "rustfmt" "rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 || need "clippy" "rustup component add clippy"
fi

# Node.js + npm for Stoplight Prism (contract tests); Prism 5 needs Node 18 or newer.
if ! have node || ! have npm; then
  need "node and npm (Stoplight Prism runs on Node.js 18+)" "apt-get install -y nodejs npm"
else
  node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  [ "${node_major:-0}" -ge 18 ] || need "Node.js 18 or newer (found $(node --version))" "install a current Node.js (Debian 12: apt-get install -y nodejs from NodeSource, or nvm)"
fi

# PostgreSQL and MariaDB: either already answering, or installed so ensure-services.sh can
# start them. Database tests fail (never skip) without them.
pg_up() { have pg_isready && pg_isready -q -h 127.0.0.1 -p 5432 -t 2 2>/dev/null; }
my_up() { have mysqladmin && mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot --connect-timeout=2 ping >/dev/null 2>&1; }
if ! pg_up; then
  if ! have pg_ctlcluster || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    need "PostgreSQL on 127.0.0.1:5432 (not answering and not installed)" \
      "apt-get install -y postgresql, set 'trust' for 127.0.0.1 in pg_hba.conf, or point SYNCCTL_TEST_PG_URL at a server"
  fi
fi
have psql || need "psql (PostgreSQL client)" "apt-get install -y postgresql-client"
if ! my_up; then
  if [ ! -x /usr/sbin/mariadbd ]; then
    need "MariaDB on 127.0.0.1:3306 (not answering and not installed)" \
      "apt-get install -y mariadb-server (root with an empty password over TCP), or point SYNCCTL_TEST_MYSQL_URL at a server"
  fi
fi
have mysql || need "mysql (MariaDB client)" "apt-get install -y mariadb-client"

# Python 3.10-3.13 with venv for the Airflow example tests (scripts/airflow-venv.sh).
if ! have python3; then
  need "python3 (the Airflow example tests)" "apt-get install -y python3 python3-venv"
elif ! python3 -c 'import sys, venv, ensurepip; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
  need "python3 3.10 to 3.13 with venv and ensurepip (found $(python3 --version 2>&1))" "apt-get install -y python3-venv (Debian 12 ships Python 3.11)"
fi

# Vendor API specs for the contract tests: in the repository, or where SYNCCTL_CONTRACTS_DIR says.
contracts="${SYNCCTL_CONTRACTS_DIR:-tests/contracts/vendor}"
for spec in airbyte/config.yaml \
  airbyte/derived/api_documentation_jobs.subset.yaml \
  airbyte/derived/api_documentation_applications.subset.yaml \
  databricks/derived/jobs-2.1-aws.fixed.yaml \
  snowflake/sqlapi.yaml; do
  [ -f "$contracts/$spec" ] || need "contract spec $contracts/$spec" \
    "use a full clone (the specs are committed under tests/contracts/vendor), or unset SYNCCTL_CONTRACTS_DIR / point it at a folder with the same layout"
done

if [ "$missing" -ne 0 ]; then
  echo "check-prereqs: fix the above, then run bash scripts/test.sh again" >&2
  exit 1
fi
