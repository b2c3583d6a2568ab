//! What the state store costs per page of a sync, on both backends, without connectors or
//! engine: the store calls the engine makes for each page of 1 000 records (links of the
//! page's keys on both sides, the `planned` audit rows, the commit of links, base values,
//! audit outcomes and pending keys), first as a first load (every pair new), then as the run
//! after a change (every pair linked and updated). Prints per-page milliseconds of each call
//! and the statements each sends (counted from sqlx's own per-statement events, `BEGIN` and
//! `COMMIT` included).
//!
//! ```text
//! cargo bench -p syncctl-sync --bench store_page                  # 100 pages, both backends
//! cargo bench -p syncctl-sync --bench store_page -- 20 sqlite     # pages, one of sqlite/pg
//! ```
//!
//! Uses SYNCCTL_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test) and a schema
//! `bench_store_page` that it drops first and keeps after; SQLite in a temporary file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syncctl_core::RecordKey;
use syncctl_sync::StateStore;
use syncctl_sync::store::{ChangeRow, ConflictWrite, LinkWrite, PairCommit, RunStart, Side};
use tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

const PAGE: usize = 1000;
const SYNC: &str = "bench";

/// Counts sqlx's per-statement events while switched on.
static COUNTING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

struct StatementCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        if meta.target() == "sqlx::query" {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        meta.target() == "sqlx::query" && COUNTING.load(Ordering::Relaxed)
    }

    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
    }
}

fn pg_url() -> String {
    std::env::var("SYNCCTL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A record's mapped values as the bench table has them: text, integer, numeric, timestamp,
/// a nullable text.
fn values(i: usize, generation: u32) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("sku".to_owned(), json!(format!("SKU-{i:08}"))),
        (
            "name".to_owned(),
            json!(format!("Product {i} v{generation}")),
        ),
        ("qty".to_owned(), json!(i % 1000)),
        (
            "price".to_owned(),
            json!(format!("{}.{:02}", i % 10_000, i % 100)),
        ),
        (
            "modified_at".to_owned(),
            json!(format!("2025-01-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60)),
        ),
        (
            "note".to_owned(),
            if i.is_multiple_of(3) {
                Value::Null
            } else {
                json!(format!("note {i}"))
            },
        ),
    ])
}

/// Per-call time and statements over the measured pages.
#[derive(Default)]
struct Tally {
    time: [Duration; 3],
    statements: [u64; 3],
}

const CALLS: [&str; 3] = ["links_for", "insert_changes", "commit"];

async fn timed<T>(tally: &mut Tally, call: usize, f: impl std::future::Future<Output = T>) -> T {
    let before = STATEMENTS.load(Ordering::Relaxed);
    let start = Instant::now();
    let out = f.await;
    tally.time[call] += start.elapsed();
    tally.statements[call] += STATEMENTS.load(Ordering::Relaxed) - before;
    out
}

/// One page as the engine stores it; `linked` holds the page's links when it is an update.
async fn page(store: &StateStore, run_id: &str, first: usize, generation: u32, tally: &mut Tally) {
    let keys: Vec<RecordKey> = (first..first + PAGE)
        .map(|i| RecordKey(format!("s{i}")))
        .collect();
    let links = timed(tally, 0, store.links_for(SYNC, Side::Source, &keys))
        .await
        .unwrap();
    // The natural-key candidates found on the other side: none in a first load.
    let found: Vec<RecordKey> = links.values().map(|l| l.target_key.clone()).collect();
    let found = if links.is_empty() { Vec::new() } else { found };
    timed(tally, 0, store.links_for(SYNC, Side::Target, &found))
        .await
        .unwrap();
    let rows: Vec<ChangeRow> = keys
        .iter()
        .enumerate()
        .map(|(n, k)| {
            let link = links.get(k);
            ChangeRow {
                seq: i64::try_from(n).unwrap(),
                link_id: link.map(|l| l.id),
                side: Side::Target,
                record_key: link.map(|l| l.target_key.0.clone()),
                action: if link.is_some() { "update" } else { "create" }.to_owned(),
                before: link.map(|l| json!(l.base)),
                after: Some(json!(values(first + n, generation))),
                status: "planned".to_owned(),
                error: None,
                origin_key: Some(k.0.clone()),
            }
        })
        .collect();
    let ids = timed(tally, 1, store.insert_changes(run_id, &rows))
        .await
        .unwrap();
    let commits: Vec<PairCommit> = keys
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(n, (k, change_id))| {
            let link = links.get(k);
            let target_key = RecordKey(format!("t{}", first + n));
            PairCommit {
                link_id: link.map(|l| l.id),
                link: LinkWrite::Upsert {
                    id: link.map(|l| l.id),
                    source_key: k.clone(),
                    target_key: target_key.clone(),
                    natural_key: Some(format!("SKU-{:08}", first + n)),
                    base: values(first + n, generation),
                    source_updated_at: Some(chrono::Utc::now()),
                    target_updated_at: None,
                    source_deleted: false,
                    target_deleted: false,
                },
                conflict: ConflictWrite::None,
                changes: vec![(
                    change_id,
                    "applied".to_owned(),
                    None,
                    Some(target_key.0.clone()),
                )],
                pending_add: Vec::new(),
                pending_remove: if link.is_some() {
                    vec![(Side::Source, k.clone()), (Side::Target, target_key)]
                } else {
                    vec![(Side::Source, k.clone())]
                },
            }
        })
        .collect();
    timed(tally, 2, store.commit(SYNC, run_id, &commits))
        .await
        .unwrap();
}

fn print(backend: &str, phase: &str, pages: usize, t: &Tally) {
    let total: Duration = t.time.iter().sum();
    let mut line = format!("| {backend} | {phase} | {pages} |");
    for c in 0..CALLS.len() {
        line.push_str(&format!(
            " {:.2} ms, {} st |",
            t.time[c].as_secs_f64() * 1000.0 / pages as f64,
            t.statements[c] as f64 / pages as f64
        ));
    }
    line.push_str(&format!(
        " {:.2} ms |",
        total.as_secs_f64() * 1000.0 / pages as f64
    ));
    println!("{line}");
}

async fn bench(backend: &str, url: &str, pages: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(url, dir.path()).await.unwrap();
    let run = |id: &str| RunStart {
        run_id: id.to_owned(),
        sync_name: SYNC.to_owned(),
        direction: "both".to_owned(),
        started_at: chrono::Utc::now(),
        invoked_by: "bench".to_owned(),
        args: json!({}),
    };
    store.begin_run(&run("first")).await.unwrap();
    let mut first = Tally::default();
    for p in 0..pages {
        page(&store, "first", p * PAGE, 0, &mut first).await;
    }
    print(backend, "first load", pages, &first);
    // The run after a change: a tenth of the pages, every pair linked and updated.
    store.begin_run(&run("second")).await.unwrap();
    let mut second = Tally::default();
    let changed = (pages / 10).max(1);
    for p in 0..changed {
        page(&store, "second", p * PAGE * 10, 1, &mut second).await;
    }
    print(backend, "update", changed, &second);
    store.close().await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let pages: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100);
    let only: Vec<&str> = args
        .iter()
        .filter(|a| matches!(a.as_str(), "sqlite" | "pg"))
        .map(String::as_str)
        .collect();
    let want = |b: &str| only.is_empty() || only.contains(&b);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(StatementCounter))
        .unwrap();
    COUNTING.store(true, Ordering::Relaxed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "| backend | phase | pages | links_for | insert_changes | commit | total per page |"
        );
        println!("|---|---|---|---|---|---|---|");
        if want("sqlite") {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/state.db", dir.path().display());
            bench("sqlite", &url, pages).await;
        }
        if want("pg") {
            let pool = sqlx::PgPool::connect(&pg_url()).await.unwrap();
            sqlx::query("DROP SCHEMA IF EXISTS bench_store_page CASCADE")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            bench(
                "pg",
                &format!("{}?schema=bench_store_page", pg_url()),
                pages,
            )
            .await;
        }
    });
}
