#!/usr/bin/env bash
# PostgreSQL → PostgreSQL sync benchmark of the real binary (`syncctl sync run`): for each
# size, a first load into an empty target, then a run after 1 % of the source rows changed.
# Reports rows written, wall time, rows/s, statements the two connectors sent (their own
# counters, logged at debug level as `connector statistics`), transactions the server
# committed (pg_stat_database, state store included) and peak memory (max RSS from
# /usr/bin/time -v). Checks the target afterwards (row count, changed rows, a checksum), so a
# fast wrong run cannot pass. Not part of scripts/test.sh: it takes minutes.
#
#   scripts/bench/sync_pg_to_pg.sh                    # 100 000 and 1 000 000 rows
#   scripts/bench/sync_pg_to_pg.sh --rows 1000        # a quick look
#   scripts/bench/sync_pg_to_pg.sh --rows 100000 --batch-size 500
#   scripts/bench/sync_pg_to_pg.sh --state sqlite     # state store in a local SQLite file
#
# The state store defaults to PostgreSQL (a schema next to the tables), as in production.
#
# Needs psql, python3, GNU /usr/bin/time and the PostgreSQL of SYNCCTL_TEST_PG_URL (default
# postgres://postgres@127.0.0.1:5432/test). Everything it creates is in the schemas
# bench_pg2pg_<rows> and bench_pg2pg_<rows>_state of that database (dropped first, kept
# after for inspection) and under target/bench/pg-to-pg-<rows>/. Results are appended to
# target/bench/pg-to-pg-results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

sizes=()
batch=1000
state_kind=postgres
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) sizes+=("$2"); shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --state) state_kind="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
case "$state_kind" in postgres|sqlite) ;; *) echo "--state is postgres or sqlite" >&2; exit 2 ;; esac

pg="${SYNCCTL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
psql -qAt "$pg" -c "SELECT 1" >/dev/null || { echo "PostgreSQL is not reachable at $pg" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "GNU time (/usr/bin/time) is required" >&2; exit 1; }

cargo build -q --release -p syncctl
bin="$PWD/target/release/syncctl"
results="$PWD/target/bench/pg-to-pg-results.md"
mkdir -p "$(dirname "$results")"

xacts() {
  psql -qAt "$pg" -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}

{
  echo
  echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ) — $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GB RAM, PostgreSQL $(psql -qAt "$pg" -c 'SHOW server_version'), batch size $batch, state store $state_kind"
  echo
  echo "| rows | phase | read | written | wall s | rows/s | connector statements | server transactions | peak RSS MB |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
} >> "$results"

for rows in "${sizes[@]}"; do
  schema="bench_pg2pg_$rows"
  work="$PWD/target/bench/pg-to-pg-$rows"
  rm -rf "$work" && mkdir -p "$work"
  echo "== $rows rows: seeding $schema.source" >&2
  psql -q -v ON_ERROR_STOP=1 "$pg" <<SQL
DROP SCHEMA IF EXISTS $schema CASCADE;
DROP SCHEMA IF EXISTS ${schema}_state CASCADE;
CREATE SCHEMA $schema;
CREATE TABLE $schema.source (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text,
  company text, amount numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE $schema.target (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text,
  company text, amount numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
-- What incremental keyset reads by (updated_at, key) want.
CREATE INDEX ON $schema.source (updated_at, id);
CREATE INDEX ON $schema.target (updated_at, id);
INSERT INTO $schema.source (email, name, company, amount, updated_at)
  SELECT 'user' || i || '@example.com', 'User ' || i, 'Company ' || (i % 997),
         (i % 10000) / 100.0, timestamptz '2025-01-01' + i * interval '1 second'
  FROM generate_series(1, $rows) AS i;
VACUUM ANALYZE $schema.source;
SQL

  if [ "$state_kind" = postgres ]; then
    state_url="\${BENCH_PG_URL}?schema=${schema}_state"
  else
    state_url="sqlite://state.db"
  fi
  cat > "$work/sync.yaml" <<YAML
name: bench-pg2pg-$rows
source: {connector: postgres, url: "\${BENCH_PG_URL}", object: $schema.source, updated_at_column: updated_at}
target: {connector: postgres, url: "\${BENCH_PG_URL}", object: $schema.target, updated_at_column: updated_at}
key: {source: email, target: email}
fields:
  - {source: email, target: email}
  - {source: name, target: name}
  - {source: company, target: company}
  - {source: amount, target: amount}
direction: source_to_target
conflict_strategy: source_wins
batch_size: $batch
state: "$state_url"
YAML

  run() {
    local phase="$1" before after
    before=$(xacts)
    BENCH_PG_URL="$pg" SYNCCTL_LOG="warn,syncctl=info,syncctl_sql::stats=debug" \
      /usr/bin/time -v -o "$work/$phase.time" \
      "$bin" --log-format json sync run --config "$work/sync.yaml" \
      > "$work/$phase.json" 2> "$work/$phase.log" || {
        echo "$phase failed; see $work/$phase.json and $work/$phase.log" >&2
        tail -1 "$work/$phase.json" >&2
        exit 1
      }
    after=$(xacts)
    python3 - "$work" "$phase" "$rows" "$((after - before))" >> "$results" <<'PY'
import json, re, sys
work, phase, rows, xacts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
res = json.loads(open(f"{work}/{phase}.json").read().splitlines()[-1])
assert res["status"] == "succeeded", res
t = open(f"{work}/{phase}.time").read()
wall = t.split("Elapsed (wall clock) time (h:mm:ss or m:ss): ")[1].split("\n")[0]
secs = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
rss_mb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
stmts = 0
for line in open(f"{work}/{phase}.log"):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    f = ev.get("fields", {})
    if f.get("message") == "connector statistics":
        stmts += int(f["statements"])
d = res["data"]
read = d["source"]["read"] + d["target"]["read"]
written = sum(d["target"][k] for k in ("created", "updated", "deleted"))
rate = written / secs if secs else 0
print(f"| {rows:,} | {phase.replace('_', ' ')} | {read:,} | {written:,} | {secs:.1f} | {rate:,.0f} | {stmts:,} | {xacts:,} | {rss_mb:.0f} |")
print(f"{rows} {phase}: read {read} written {written} in {secs:.1f}s = {rate:,.0f} rows/s, "
      f"{stmts} connector statements, {xacts} server transactions, peak RSS {rss_mb:.0f} MB", file=sys.stderr)
PY
  }

  echo "== $rows rows: first load" >&2
  run first_load
  echo "== $rows rows: 1 % of the source changed" >&2
  psql -q "$pg" -c "UPDATE $schema.source SET name = name || ' (changed)', updated_at = now() WHERE id % 100 = 0"
  run one_percent

  # The target must now equal the source on every mapped field.
  check=$(psql -qAt "$pg" <<SQL
SELECT (SELECT count(*) FROM $schema.target) || ' ' ||
       (SELECT count(*) FROM $schema.target WHERE name LIKE '% (changed)') || ' ' ||
       (SELECT count(*) FROM $schema.source s FULL JOIN $schema.target t USING (email)
         WHERE s.email IS NULL OR t.email IS NULL OR s.name IS DISTINCT FROM t.name
            OR s.company IS DISTINCT FROM t.company OR s.amount IS DISTINCT FROM t.amount)
SQL
)
  read -r count changed differ <<< "$check"
  echo "== $rows rows: target has $count rows, $changed changed, $differ differing from the source" >&2
  if [ "$count" != "$rows" ] || [ "$changed" != "$((rows / 100))" ] || [ "$differ" != "0" ]; then
    echo "the target does not match the source" >&2
    exit 1
  fi
done

echo "results appended to $results" >&2
