//! What the PostgreSQL connectors cost on their own: source pages → sink batches, with no
//! engine and no state store (scripts/bench/sync_pg_to_pg.sh measures the whole `sync run`).
//! A first load of N rows (natural-key creates: `COPY` + `INSERT … ON CONFLICT`), then 1 %
//! of the source changed and read incrementally, matched by natural key and updated
//! (`COPY` + `UPDATE … FROM`). Prints rows/s, statements sent and this process's peak RSS.
//!
//! ```text
//! cargo bench -p syncctl-sql --bench pg_bulk               # 100 000 and 1 000 000 rows
//! cargo bench -p syncctl-sql --bench pg_bulk -- 10000      # any sizes
//! ```
//!
//! Uses SYNCCTL_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test) and a schema
//! `bench_pg_bulk_<rows>` that it drops first and keeps after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::{Value, json};
use syncctl_core::{
    Connector, NaturalKey, ReadRequest, RecordKey, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_sql::postgres::PgConnector;
use syncctl_sql::settings::SqlSettings;

const PAGE: usize = 1000;

fn pg_url() -> String {
    std::env::var("SYNCCTL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn connector(object: &str) -> PgConnector {
    let s: SqlSettings = serde_json::from_value(json!({
        "url": pg_url(),
        "object": object,
        "updated_at_column": "updated_at",
        "max_batch": PAGE,
    }))
    .unwrap();
    PgConnector::new(s).unwrap()
}

/// This process's peak resident set size, in MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn mapped(fields: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    ["email", "name", "company", "amount"]
        .iter()
        .map(|f| {
            (
                (*f).to_owned(),
                fields.get(*f).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

async fn bench(rows: usize) {
    let pool = sqlx::PgPool::connect(&pg_url())
        .await
        .expect("PostgreSQL must be running (SYNCCTL_TEST_PG_URL)");
    let schema = format!("bench_pg_bulk_{rows}");
    let setup = format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.source (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE,
           name text, company text, amount numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE {schema}.target (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE,
           name text, company text, amount numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
         CREATE INDEX ON {schema}.source (updated_at, id);
         INSERT INTO {schema}.source (email, name, company, amount, updated_at)
           SELECT 'user' || i || '@example.com', 'User ' || i, 'Company ' || (i % 997),
                  (i % 10000) / 100.0, timestamptz '2025-01-01' + i * interval '1 second'
           FROM generate_series(1, {rows}) AS i;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&pool)
        .await
        .unwrap();
    // Its own statement: VACUUM refuses to run inside the implicit multi-statement block.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "VACUUM ANALYZE {schema}.source"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let source = connector(&format!("{schema}.source"));
    let target = connector(&format!("{schema}.target"));
    let ss = source.describe().await.unwrap();
    let ts = target.describe().await.unwrap();
    let (src, sink) = (source.source().unwrap(), target.sink().unwrap());
    let ctx = WriteContext::new("bench", "00000000-0000-0000-0000-00000000beef");

    // First load: every source row created in the target by natural key.
    let start = Instant::now();
    let mut req = ReadRequest::full(PAGE);
    let mut cursor = None;
    let mut written = 0usize;
    loop {
        let page = src.read_page(&ss, &req).await.unwrap();
        cursor = page
            .records
            .iter()
            .filter_map(|r| r.updated_at)
            .max()
            .max(cursor);
        let ops: Vec<WriteOp> = page
            .records
            .iter()
            .map(|r| WriteOp::Create {
                token: r.key.to_string(),
                natural_key: Some(NaturalKey {
                    field: "email".into(),
                    value: r.fields["email"].clone(),
                }),
                fields: mapped(&r.fields),
            })
            .collect();
        if !ops.is_empty() {
            let out = sink.write(&ts, &ops, &ctx).await.unwrap();
            assert!(
                out.iter()
                    .all(|o| matches!(o, WriteOutcome::Applied { .. }))
            );
            written += out.len();
        }
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    report(rows, "first load", written, start, &source, &target);
    assert_eq!(written, rows);

    // 1 % changed: incremental read since the cursor, natural-key lookup, updates by key.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE {schema}.source SET name = name || ' (changed)', updated_at = now() WHERE id % 100 = 0"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let (s0, t0) = (source.stats().snapshot(), target.stats().snapshot());
    let start = Instant::now();
    let mut req = ReadRequest {
        since: cursor,
        after: None,
        limit: PAGE,
        keys_only: false,
    };
    let mut updated = 0usize;
    loop {
        let page = src.read_page(&ss, &req).await.unwrap();
        let emails: Vec<Value> = page
            .records
            .iter()
            .map(|r| r.fields["email"].clone())
            .collect();
        let matches: HashMap<String, (RecordKey, BTreeMap<String, Value>)> = target
            .source()
            .unwrap()
            .lookup(&ts, "email", &emails)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let email = r.fields["email"].as_str().unwrap_or_default().to_owned();
                (email, (r.key.clone(), r.fields))
            })
            .collect();
        let ops: Vec<WriteOp> = page
            .records
            .iter()
            .filter_map(|r| {
                let (key, current) = matches.get(r.fields["email"].as_str()?)?;
                let changed: BTreeMap<String, Value> = mapped(&r.fields)
                    .into_iter()
                    .filter(|(f, v)| current.get(f) != Some(v))
                    .collect();
                (!changed.is_empty()).then(|| WriteOp::Update {
                    key: key.clone(),
                    fields: changed,
                    expected_updated_at: None,
                    expected_version: None,
                })
            })
            .collect();
        if !ops.is_empty() {
            let out = sink.write(&ts, &ops, &ctx).await.unwrap();
            assert!(
                out.iter()
                    .all(|o| matches!(o, WriteOutcome::Applied { .. }))
            );
            updated += out.len();
        }
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    let (s1, t1) = (source.stats().snapshot(), target.stats().snapshot());
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| {rows} | 1 % changed | {updated} | {secs:.2} | {:.0} | {} | {:.0} |",
        updated as f64 / secs,
        (s1.statements - s0.statements) + (t1.statements - t0.statements),
        peak_rss_mb()
    );
    assert_eq!(updated, rows / 100);
    pool.close().await;
}

fn report(
    rows: usize,
    phase: &str,
    written: usize,
    start: Instant,
    source: &PgConnector,
    target: &PgConnector,
) {
    let secs = start.elapsed().as_secs_f64();
    let stmts = source.stats().snapshot().statements + target.stats().snapshot().statements;
    println!(
        "| {rows} | {phase} | {written} | {secs:.2} | {:.0} | {stmts} | {:.0} |",
        written as f64 / secs,
        peak_rss_mb()
    );
}

#[tokio::main]
async fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    println!("| rows | phase | written | seconds | rows/s | statements | peak RSS MB |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for n in sizes {
        bench(n).await;
    }
}
