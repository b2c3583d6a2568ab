#!/usr/bin/env bash
# Side-by-side benchmark: syncctl (release build, state store in SQLite and in PostgreSQL)
# against dlt (`sql_database` source → `postgres` destination, `merge` write disposition,
# incremental on `updated_at`) and against `psql \copy`, on one generated PostgreSQL table.
#
# For each size: a source table of N rows (text, integer, numeric, timestamptz and a nullable
# text column; a unique natural key `sku`) is loaded by every tool into its own empty target,
# then 1 % of the source rows change and every tool runs again, then syncctl runs once more
# with nothing changed. syncctl's targets have their own generated `id` primary key and are
# matched on `sku`; dlt creates and merges its own table on `sku`; `psql \copy` exports the
# source and imports it into an empty table (then stages the changed rows and upserts them).
# Each run reports wall time, rows/s and peak RSS (GNU time); then every target is checked
# equal to the source field by field (a full outer join on `sku`), so a fast wrong run cannot
# pass. Ratios to dlt and to `psql \copy` are computed from the same run. Not part of
# scripts/test.sh: it takes minutes. On a shared machine, compare ratios, not absolute figures.
#
#   scripts/bench/side_by_side.sh                     # 100 000 and 1 000 000 rows
#   scripts/bench/side_by_side.sh --rows 10000        # a quick look
#   scripts/bench/side_by_side.sh --rows 100000 --tools syncctl-sqlite,dlt
#   scripts/bench/side_by_side.sh --no-build          # use the target/release/syncctl built before
#
# Tools: syncctl-sqlite, syncctl-postgres, dlt, copy (default: all). dlt is installed from
# PyPI into a virtualenv under ${SYNCCTL_BENCH_CACHE:-~/.cache/syncctl-bench} (pinned below,
# created once). Needs psql, python3 (with venv), GNU /usr/bin/time and the PostgreSQL of
# SYNCCTL_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test). Everything it
# creates is in the schemas sbs_<rows>* of that database (dropped first, kept after for
# inspection) and under target/bench/side-by-side-<rows>/. Results are appended to
# target/bench/side-by-side-results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Pinned: what the figures in docs/sync.md were measured with.
DLT_VERSION=1.31.0
SQLALCHEMY_VERSION=2.1.9

sizes=()
tools=syncctl-sqlite,syncctl-postgres,dlt,copy
batch=1000
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=no; shift ;;
    --rows) sizes+=("$2"); shift 2 ;;
    --tools) tools="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
has() { [[ ",$tools," == *",$1,"* ]]; }

pg="${SYNCCTL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
export PGOPTIONS="${PGOPTIONS:-} --client-min-messages=warning"
psql -qAt "$pg" -c "SELECT 1" >/dev/null || { echo "PostgreSQL is not reachable at $pg" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "GNU time (/usr/bin/time) is required" >&2; exit 1; }

if [ "$build" = yes ] && { has syncctl-sqlite || has syncctl-postgres; }; then
  cargo build -q --release -p syncctl
fi
bin="$PWD/target/release/syncctl"

venv="${SYNCCTL_BENCH_CACHE:-$HOME/.cache/syncctl-bench}/dlt-$DLT_VERSION"
if has dlt && ! "$venv/bin/python" -c "import dlt, sqlalchemy, psycopg2" 2>/dev/null; then
  echo "== installing dlt $DLT_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "dlt[postgres]==$DLT_VERSION" "sqlalchemy==$SQLALCHEMY_VERSION" >&2
fi

results="$PWD/target/bench/side-by-side-results.md"
mkdir -p "$(dirname "$results")"
{
  echo
  echo "### $(date -u +%Y-%m-%dT%H:%M:%SZ) — $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GB RAM, load $(cut -d' ' -f1-3 /proc/loadavg), PostgreSQL $(psql -qAt "$pg" -c 'SHOW server_version'), syncctl $(git rev-parse --short HEAD), dlt $DLT_VERSION (sqlalchemy $SQLALCHEMY_VERSION), batch size $batch"
  echo
  echo "| rows | tool | phase | rows written | wall s | rows/s | peak RSS MB |"
  echo "|---:|---|---|---:|---:|---:|---:|"
} >> "$results"

# Runs a command under GNU time; appends "tool phase written wall_s rss_mb" to $work/runs.
timed() {
  local tool="$1" phase="$2" written="$3"; shift 3
  local out="$work/$tool.$phase"
  if ! /usr/bin/time -v -o "$out.time" "$@" > "$out.out" 2> "$out.err"; then
    echo "$tool $phase failed; see $out.out and $out.err" >&2
    tail -5 "$out.err" >&2
    tail -1 "$out.out" >&2
    exit 1
  fi
  python3 - "$out" "$tool" "$phase" "$written" >> "$work/runs" <<'PY'
import json, re, sys
out, tool, phase, written = sys.argv[1:5]
t = open(f"{out}.time").read()
wall = t.split("Elapsed (wall clock) time (h:mm:ss or m:ss): ")[1].split("\n")[0]
secs = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
if written == "syncctl":
    res = json.loads(open(f"{out}.out").read().splitlines()[-1])
    assert res["status"] == "succeeded", res
    d = res["data"]["target"]
    written = d["created"] + d["updated"] + d["deleted"]
print(tool, phase, written, f"{secs:.3f}", f"{rss:.1f}")
PY
  tail -1 "$work/runs" | awk '{printf "   %-17s %-12s %9s rows %8.2f s %7.0f MB\n", $1, $2, $3, $4, $5}' >&2
}

for rows in "${sizes[@]}"; do
  s="sbs_$rows"
  work="$PWD/target/bench/side-by-side-$rows"
  rm -rf "$work" && mkdir -p "$work"
  : > "$work/runs"
  changed=$((rows / 100))
  echo "== $rows rows: seeding $s.source" >&2
  psql -q -v ON_ERROR_STOP=1 "$pg" <<SQL
DROP SCHEMA IF EXISTS $s CASCADE;
DROP SCHEMA IF EXISTS ${s}_state CASCADE;
DROP SCHEMA IF EXISTS ${s}_dlt CASCADE;
DROP SCHEMA IF EXISTS ${s}_dlt_staging CASCADE;
CREATE SCHEMA $s;
CREATE TABLE $s.source (id bigserial PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL,
  qty integer NOT NULL, price numeric(12,2) NOT NULL, note text,
  created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX ON $s.source (updated_at, id);
INSERT INTO $s.source (sku, name, qty, price, note, created_at, updated_at)
  SELECT 'SKU-' || lpad(i::text, 8, '0'), 'Product ' || i || ' ' || md5(i::text),
         (i * 7919) % 100000, ((i * 104729) % 10000000) / 100.0,
         CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || (i % 1000) END,
         timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds' + (i % 1000) * interval '1 millisecond',
         timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1::bigint, $rows) AS i;
VACUUM ANALYZE $s.source;
SQL
  for t in target_sqlite target_postgres target_copy; do
    psql -q -v ON_ERROR_STOP=1 "$pg" -c "CREATE TABLE $s.$t (id bigserial PRIMARY KEY, sku text NOT NULL UNIQUE,
      name text NOT NULL, qty integer NOT NULL, price numeric(12,2) NOT NULL, note text,
      created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX ON $s.$t (updated_at, id);"
  done

  for store in sqlite postgres; do
    if [ "$store" = postgres ]; then state="\${BENCH_PG_URL}?schema=${s}_state"; else state="sqlite://state-$rows.db"; fi
    cat > "$work/sync-$store.yaml" <<YAML
name: sbs-$rows-$store
source: {connector: postgres, url: "\${BENCH_PG_URL}", object: $s.source, updated_at_column: updated_at}
target: {connector: postgres, url: "\${BENCH_PG_URL}", object: $s.target_$store, updated_at_column: updated_at}
key: {source: sku, target: sku}
fields:
  - {source: sku, target: sku}
  - {source: name, target: name}
  - {source: qty, target: qty}
  - {source: price, target: price}
  - {source: note, target: note}
  - {source: created_at, target: created_at}
direction: source_to_target
conflict_strategy: source_wins
batch_size: $batch
state: "$state"
YAML
  done

  cat > "$work/dlt_load.py" <<PY
import os
import dlt
from dlt.sources.sql_database import sql_table

# dlt names the dialect postgresql://; SQLAlchemy 2.1 would pick psycopg 3 for it, dlt's
# postgres destination ships psycopg2.
url = "$pg".replace("postgres://", "postgresql://", 1)
table = sql_table(credentials=url.replace("postgresql://", "postgresql+psycopg2://", 1), schema="$s", table="source",
                  incremental=dlt.sources.incremental("updated_at"))
table.apply_hints(primary_key="sku", write_disposition="merge")
# dlt's postgres destination insists on a password; the test server trusts local users.
if "@" in url and ":" not in url.split("://", 1)[1].split("@", 1)[0]:
    os.environ.setdefault("DESTINATION__POSTGRES__CREDENTIALS__PASSWORD", "unused")
pipeline = dlt.pipeline(pipeline_name="$s", pipelines_dir="$work/dlt-pipelines",
                        destination=dlt.destinations.postgres(url), dataset_name="${s}_dlt")
print(pipeline.run(table))
PY

  syncctl_run() {
    local store="$1" phase="$2"
    BENCH_PG_URL="$pg" SYNCCTL_LOG=warn timed "syncctl-$store" "$phase" syncctl \
      "$bin" sync run --config "$work/sync-$store.yaml"
  }
  dlt_run() {
    local phase="$1" written="$2"
    (cd "$work" && RUNTIME__LOG_LEVEL=WARNING timed dlt "$phase" "$written" "$venv/bin/python" "$work/dlt_load.py")
  }
  # psql \copy: export the source, import it into an empty table; for the change, export the
  # changed rows, stage them and upsert on sku.
  cat > "$work/copy_first.sh" <<SH
set -e
psql -qX -v ON_ERROR_STOP=1 "$pg" -c "\\copy (SELECT sku, name, qty, price, note, created_at FROM $s.source) TO '$work/source.tsv'"
psql -qX -v ON_ERROR_STOP=1 "$pg" -c "\\copy $s.target_copy (sku, name, qty, price, note, created_at) FROM '$work/source.tsv'"
SH
  cat > "$work/copy_changed.sh" <<SH
set -e
psql -qX -v ON_ERROR_STOP=1 "$pg" -c "\\copy (SELECT sku, name, qty, price, note, created_at FROM $s.source WHERE updated_at >= timestamptz '2030-01-01 00:00:00+00') TO '$work/changed.tsv'"
psql -qX -v ON_ERROR_STOP=1 "$pg" <<'SQL'
CREATE TEMP TABLE changed (sku text, name text, qty integer, price numeric(12,2), note text, created_at timestamptz);
\\copy changed FROM '$work/changed.tsv'
INSERT INTO $s.target_copy (sku, name, qty, price, note, created_at) SELECT * FROM changed
ON CONFLICT (sku) DO UPDATE SET name = excluded.name, qty = excluded.qty, price = excluded.price,
  note = excluded.note, created_at = excluded.created_at, updated_at = now();
SQL
SH
  copy_first() { timed copy first_load "$rows" bash "$work/copy_first.sh"; }
  copy_changed() { timed copy one_percent "$changed" bash "$work/copy_changed.sh"; }

  echo "== $rows rows: first load" >&2
  for store in sqlite postgres; do has "syncctl-$store" && syncctl_run "$store" first_load; done
  has dlt && dlt_run first_load "$rows"
  has copy && copy_first

  echo "== $rows rows: 1 % of the source changed" >&2
  # Changed rows get a time after every seeded one, as an application editing them would.
  psql -q -v ON_ERROR_STOP=1 "$pg" -c "UPDATE $s.source SET name = name || ' (changed)', qty = qty + 1,
    price = price + 0.01, note = CASE WHEN note IS NULL THEN 'now set' ELSE NULL END,
    updated_at = timestamptz '2030-01-01 00:00:00+00' + id * interval '1 millisecond' WHERE id % 100 = 0"
  for store in sqlite postgres; do has "syncctl-$store" && syncctl_run "$store" one_percent; done
  has dlt && dlt_run one_percent "$changed"
  has copy && copy_changed

  echo "== $rows rows: nothing changed" >&2
  for store in sqlite postgres; do has "syncctl-$store" && syncctl_run "$store" unchanged; done
  has dlt && dlt_run unchanged 0

  # Every target must now equal the source on every synced field.
  check() {
    local table="$1"
    psql -qAt -v ON_ERROR_STOP=1 "$pg" <<SQL
SELECT (SELECT count(*) FROM $table) || ' ' ||
  (SELECT count(*) FROM $s.source s FULL JOIN $table t USING (sku)
    WHERE s.sku IS NULL OR t.sku IS NULL OR s.name IS DISTINCT FROM t.name
       OR s.qty IS DISTINCT FROM t.qty OR s.price IS DISTINCT FROM t.price
       OR s.note IS DISTINCT FROM t.note OR s.created_at IS DISTINCT FROM t.created_at)
SQL
  }
  for tool in syncctl-sqlite syncctl-postgres dlt copy; do
    has "$tool" || continue
    case "$tool" in
      syncctl-*) table="$s.target_${tool#syncctl-}" ;;
      dlt) table="${s}_dlt.source" ;;
      copy) table="$s.target_copy" ;;
    esac
    read -r count differ <<< "$(check "$table")"
    echo "== $rows rows: $tool: $table has $count rows, $differ differing from the source" >&2
    if [ "$count" != "$rows" ] || [ "$differ" != "0" ]; then
      echo "the $tool target does not match the source" >&2
      exit 1
    fi
  done

  python3 - "$work/runs" "$rows" >> "$results" <<'PY'
import sys
runs, rows = sys.argv[1], int(sys.argv[2])
r = {}
for line in open(runs):
    tool, phase, written, secs, rss = line.split()
    r[(tool, phase)] = (int(written), float(secs), float(rss))
for (tool, phase), (w, secs, rss) in r.items():
    rate = f"{w / secs:,.0f}" if secs and w else "–"
    print(f"| {rows:,} | {tool} | {phase.replace('_', ' ')} | {w:,} | {secs:.2f} | {rate} | {rss:.0f} |")
def total(tool):
    ps = [r[(tool, p)] for p in ("first_load", "one_percent") if (tool, p) in r]
    return (sum(p[1] for p in ps), max(p[2] for p in ps)) if len(ps) == 2 else None
lines = []
dlt = total("dlt")
for store in ("sqlite", "postgres"):
    s = total(f"syncctl-{store}")
    if s and dlt:
        lines.append(f"syncctl ({store} state) ÷ dlt, first load + 1 %: time {s[0] / dlt[0]:.2f}, peak RSS {s[1] / dlt[1]:.2f}")
    cp = r.get(("copy", "first_load"))
    fl = r.get((f"syncctl-{store}", "first_load"))
    if cp and fl:
        lines.append(f"syncctl ({store} state) first load: {cp[1] / fl[1]:.0%} of psql \\copy's rate (time ratio {fl[1] / cp[1]:.2f})")
sq, pgs = total("syncctl-sqlite"), total("syncctl-postgres")
if sq and pgs:
    lines.append(f"syncctl PostgreSQL state ÷ SQLite state, first load + 1 %: time {pgs[0] / sq[0]:.2f}")
print()
for l in lines:
    print(f"* {l}")
    print(l, file=sys.stderr)
PY
done

echo "results appended to $results" >&2
