#!/usr/bin/env bash
# Sync benchmark: a first load of N rows source → target, then a run with 1 % of the source
# rows changed. Reports wall time, rows/s, peak memory (max RSS) and, for PostgreSQL,
# statements sent (pg_stat_statements when installed, else transactions from pg_stat_database).
#
#   scripts/bench/sync_bench.sh                      # sqlite → sqlite, 100 000 rows
#   scripts/bench/sync_bench.sh --rows 1000000
#   scripts/bench/sync_bench.sh --pair postgres --rows 100000   # needs the postgres connector
#
# Needs: python3 (sqlite pair), psql (postgres pair), GNU /usr/bin/time. Builds syncctl in
# release mode. Everything it creates lives under target/bench/ (and, for postgres, in a schema
# bench_sync_<rows> of SYNCCTL_TEST_PG_URL's database, dropped at the start).
set -euo pipefail
cd "$(dirname "$0")/../.."

pair=sqlite
rows=100000
batch=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --pair) pair="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

cargo build -q --release -p syncctl
bin="$PWD/target/release/syncctl"
work="$PWD/target/bench/sync-$pair-$rows"
rm -rf "$work" && mkdir -p "$work"
pg="${SYNCCTL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
schema="bench_sync_$rows"

case "$pair" in
  sqlite)
    python3 - "$work" "$rows" <<'PY'
import sqlite3, sys
work, n = sys.argv[1], int(sys.argv[2])
ddl = """CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT,
         company TEXT, amount NUMERIC, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"""
for db in ("source.db", "target.db"):
    c = sqlite3.connect(f"{work}/{db}")
    c.execute(ddl)
    if db == "source.db":
        # One modification per second across the past: a realistic spread for the cursor.
        c.executemany("INSERT INTO people (email, name, company, amount, updated_at) VALUES (?,?,?,?, datetime('2025-01-01', '+' || ? || ' seconds'))",
                      ((f"user{i}@example.com", f"User {i}", f"Company {i % 997}", i % 10000 / 100, i) for i in range(n)))
    c.commit()
    c.close()
PY
    src="{connector: sqlite, url: \"sqlite://source.db\", object: people, updated_at_column: updated_at}"
    tgt="{connector: sqlite, url: \"sqlite://target.db\", object: people, updated_at_column: updated_at}"
    state="sqlite://state.db"
    change() {
      python3 - "$work" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"{sys.argv[1]}/source.db")
c.execute("UPDATE people SET name = name || ' (changed)', updated_at = strftime('%Y-%m-%d %H:%M:%f','now') WHERE id % 100 = 0")
c.commit()
PY
    }
    statements() { echo "n/a"; }
    ;;
  postgres)
    psql -q "$pg" <<SQL
DROP SCHEMA IF EXISTS $schema CASCADE;
CREATE SCHEMA $schema;
CREATE TABLE $schema.source (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text, company text,
  amount numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE $schema.target (LIKE $schema.source INCLUDING ALL);
INSERT INTO $schema.source (email, name, company, amount, updated_at)
  SELECT 'user' || i || '@example.com', 'User ' || i, 'Company ' || (i % 997), (i % 10000) / 100.0,
         timestamptz '2025-01-01' + i * interval '1 second'
  FROM generate_series(0, $rows - 1) AS i;
SQL
    src="{connector: postgres, url: \"$pg\", object: $schema.source, updated_at_column: updated_at}"
    tgt="{connector: postgres, url: \"$pg\", object: $schema.target, updated_at_column: updated_at}"
    state="$pg?schema=${schema}_state"
    change() {
      psql -q "$pg" -c "UPDATE $schema.source SET name = name || ' (changed)', updated_at = now() WHERE id % 100 = 0"
    }
    statements() {
      psql -qAt "$pg" -c "SELECT COALESCE((SELECT sum(calls) FROM pg_stat_statements), (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()))" 2>/dev/null || echo "n/a"
    }
    ;;
  *) echo "--pair is sqlite or postgres" >&2; exit 2 ;;
esac

cat > "$work/sync.yaml" <<YAML
name: bench-$pair-$rows
source: $src
target: $tgt
key: {source: email, target: email}
fields:
  - {source: email, target: email}
  - {source: name, target: name}
  - {source: company, target: company}
  - {source: amount, target: amount}
direction: source_to_target
conflict_strategy: source_wins
batch_size: $batch
state: "$state"
YAML

run() {
  local phase="$1"
  local before after
  before=$(statements)
  /usr/bin/time -v -o "$work/$phase.time" "$bin" -q sync run --config "$work/sync.yaml" > "$work/$phase.json"
  after=$(statements)
  python3 - "$work" "$phase" "$before" "$after" <<'PY'
import json, re, sys
work, phase, before, after = sys.argv[1:5]
res = json.loads(open(f"{work}/{phase}.json").read().splitlines()[-1])
t = open(f"{work}/{phase}.time").read()
wall = t.split("Elapsed (wall clock) time (h:mm:ss or m:ss): ")[1].split("\n")[0]
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
d = res["data"]["target"]
written = d["created"] + d["updated"]
stmts = "n/a" if "n/a" in (before, after) else str(int(float(after)) - int(float(before)))
print(f"{phase:<12} status={res['status']:<9} read={res['data']['source']['read']:>8} written={written:>8} "
      f"wall={secs:8.2f}s rows/s={(written / secs if secs else 0):>10.0f} peak_rss={rss_kb / 1024:7.1f}MB statements={stmts}")
PY
}

echo "sync benchmark: $pair → $pair, $rows rows, batch size $batch ($(nproc) cores)"
run first_load
change
run one_percent
