#!/usr/bin/env bash
# The connectors alone, side by side with the databases' own bulk paths, on the same generated
# rows in one run (no engine, no state store: scripts/bench/sync_bench.sh and side_by_side.sh
# measure whole `sync run`s):
#   PostgreSQL read / write  vs  psql \copy out / in
#   MariaDB write            vs  LOAD DATA LOCAL INFILE (mariadb client, --local-infile)
#   SQLite, CSV read / write in rows/s
# Every written table or file is compared with the source and every read record with the
# generated row, so a fast path that loses or changes data fails the run.
#
#   scripts/bench/connectors.sh                 # 100 000 rows
#   scripts/bench/connectors.sh 20000 pg        # any size; pg, mysql, sqlite, csv to pick some
#
# Needs: PostgreSQL and MariaDB (SYNCCTL_TEST_PG_URL / SYNCCTL_TEST_MYSQL_URL, default the test
# databases), psql and the mariadb client. Release build (cargo bench). Writes a schema
# bench_connectors, tables bench_connectors_* and files under target/bench/connectors/.
set -euo pipefail
cd "$(dirname "$0")/../.."

export SYNCCTL_TEST_PG_URL="${SYNCCTL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
export SYNCCTL_TEST_MYSQL_URL="${SYNCCTL_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"

rows=100000
sql=()
csv=yes
picked=no
for a in "$@"; do
  case "$a" in
    [0-9]*) rows="$a" ;;
    pg|mysql|sqlite) sql+=("$a"); picked=yes ;;
    csv) picked=yes ;;
    *) echo "unknown argument $a (rows, pg, mysql, sqlite, csv)" >&2; exit 2 ;;
  esac
done
if [ "$picked" = yes ]; then
  case " $* " in *" csv "*) csv=yes ;; *) csv=no ;; esac
fi

# Both packages in every cargo call: one feature resolution, one build of the dependencies.
pkgs=(-p syncctl-sql -p syncctl-csv)
cargo bench -q "${pkgs[@]}" --bench connectors --bench csv_rows --no-run

echo "rows: $rows, page/batch: ${SYNCCTL_BENCH_PAGE:-1000}, $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$picked" = no ] || [ "${#sql[@]}" -gt 0 ]; then
  cargo bench -q "${pkgs[@]}" --bench connectors -- "$rows" "${sql[@]}"
fi
if [ "$csv" = yes ]; then
  cargo bench -q "${pkgs[@]}" --bench csv_rows -- "$rows" | grep '^| csv'
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
