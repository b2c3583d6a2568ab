//! The state store suite, run on SQLite (a temp file) and on the real PostgreSQL (a schema
//! created and dropped per test). Same assertions on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use syncctl_core::RecordKey;
use syncctl_http::{BreakerPhase, BreakerState};
use syncctl_sync::SyncError;
use syncctl_sync::store::{
    ChangeRow, ConflictWrite, LinkWrite, PairCommit, RunStart, Side, StateStore,
};

fn pg_url() -> String {
    std::env::var("SYNCCTL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL schema that exists for one test.
struct PgSchema {
    name: String,
    pool: sqlx::PgPool,
}

impl PgSchema {
    async fn new() -> Self {
        let name = format!("syncctl_t_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&pg_url())
            .await
            .expect("PostgreSQL must be running for the state store tests (SYNCCTL_TEST_PG_URL)");
        Self { name, pool }
    }
    fn url(&self) -> String {
        format!("{}?schema={}", pg_url(), self.name)
    }
    async fn drop(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.name
        )))
        .execute(&self.pool)
        .await
        .unwrap();
        self.pool.close().await;
    }
}

fn key(s: &str) -> RecordKey {
    RecordKey::from(s)
}

fn base(v: &str) -> BTreeMap<String, serde_json::Value> {
    BTreeMap::from([("name".to_owned(), json!(v))])
}

fn upsert(id: Option<i64>, s: &str, t: &str, name: &str) -> PairCommit {
    PairCommit {
        link_id: id,
        link: LinkWrite::Upsert {
            id,
            source_key: key(s),
            target_key: key(t),
            natural_key: Some(format!("{s}@x.io")),
            base: base(name),
            source_updated_at: Some(chrono::Utc::now()),
            target_updated_at: None,
            source_deleted: false,
            target_deleted: false,
        },
        conflict: ConflictWrite::None,
        changes: Vec::new(),
        pending_add: Vec::new(),
        pending_remove: Vec::new(),
    }
}

async fn suite(url: &str, base_dir: &std::path::Path) {
    let store = StateStore::open(url, base_dir).await.unwrap();
    // Opening again applies no migration twice.
    let again = StateStore::open(url, base_dir).await.unwrap();
    again.close().await;

    // Runs.
    let run = "11111111-1111-1111-1111-111111111111";
    store
        .begin_run(&RunStart {
            run_id: run.into(),
            sync_name: "s".into(),
            direction: "bidirectional".into(),
            started_at: chrono::Utc::now(),
            invoked_by: "me@host".into(),
            args: json!({"batch_size": 2}),
        })
        .await
        .unwrap();
    let hist = store.history(Some("s"), 10).await.unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].status, "running");
    assert_eq!(hist[0].args.0["batch_size"], 2);

    // Planned changes, then the commit that links and finishes them.
    let ids = store
        .insert_changes(
            run,
            &[ChangeRow {
                seq: 1,
                link_id: None,
                side: Side::Target,
                record_key: None,
                action: "create".into(),
                before: None,
                after: Some(json!({"name": "Ann"})),
                status: "planned".into(),
                error: None,
                origin_key: None,
            }],
        )
        .await
        .unwrap();
    let mut c = upsert(None, "s1", "t1", "Ann");
    c.changes
        .push((ids[0], "applied".into(), None, Some("t1".into())));
    c.pending_add
        .push((Side::Source, key("s9"), "failed".into()));
    let out = store
        .commit("s", run, &[c, upsert(None, "s2", "t2", "Bob")])
        .await
        .unwrap();
    let link1 = out[0].0.unwrap();
    assert!(out[1].0.unwrap() > link1);
    let changes = store.changes(run).await.unwrap();
    assert_eq!(changes[0].status, "applied");
    assert_eq!(changes[0].record_key.as_deref(), Some("t1"));
    assert_eq!(changes[0].link_id, Some(link1));
    assert_eq!(
        store.pending("s", Side::Source).await.unwrap(),
        vec![key("s9")]
    );

    // Links by either side's keys, by id, and all live keys of a side.
    let by_t = store
        .links_for("s", Side::Target, &[key("t1"), key("nope")])
        .await
        .unwrap();
    assert_eq!(by_t.len(), 1);
    assert_eq!(by_t[&key("t1")].source_key, key("s1"));
    assert_eq!(by_t[&key("t1")].base, base("Ann"));
    let many: Vec<RecordKey> = (0..1200)
        .map(|i| key(&format!("x{i}")))
        .chain([key("s2")])
        .collect();
    assert_eq!(
        store
            .links_for("s", Side::Source, &many)
            .await
            .unwrap()
            .len(),
        1,
        "chunked IN lists"
    );
    assert_eq!(
        store.links_by_id("s", &[link1]).await.unwrap()[0].target_key,
        key("t1")
    );
    assert_eq!(store.linked_keys("s", Side::Source).await.unwrap().len(), 2);
    // Update a base, tombstone one side, unique keys per sync.
    let mut u = upsert(Some(link1), "s1", "t1", "Anne");
    if let LinkWrite::Upsert { target_deleted, .. } = &mut u.link {
        *target_deleted = true;
    }
    u.pending_remove.push((Side::Source, key("s9")));
    store.commit("s", run, &[u]).await.unwrap();
    let l = store.links_by_id("s", &[link1]).await.unwrap().remove(0);
    assert_eq!(l.base, base("Anne"));
    assert!(l.target_deleted && !l.source_deleted);
    assert_eq!(store.linked_keys("s", Side::Target).await.unwrap().len(), 1);
    assert!(store.pending("s", Side::Source).await.unwrap().is_empty());
    let dup = store
        .commit("s", run, &[upsert(None, "s1", "t7", "x")])
        .await;
    assert!(dup.is_err(), "a source key links once per sync");
    assert!(
        store
            .commit("other", run, &[upsert(None, "s1", "t1", "x")])
            .await
            .is_ok()
    );

    // Conflicts: one open per link (re-detection updates it), resolve, close.
    let open = |s: &str| PairCommit {
        conflict: ConflictWrite::Open {
            fields: json!({"name": {"base": "a", "source": s, "target": "t"}}),
            strategy: "manual".into(),
            source_key: "s2".into(),
            target_key: "t2".into(),
        },
        link: LinkWrite::Keep,
        ..upsert(Some(out[1].0.unwrap()), "s2", "t2", "x")
    };
    let c1 = store.commit("s", run, &[open("v1")]).await.unwrap()[0]
        .1
        .unwrap();
    let c2 = store.commit("s", run, &[open("v2")]).await.unwrap()[0]
        .1
        .unwrap();
    assert_eq!(c1, c2);
    let listed = store.conflicts(Some("s"), &["open"], 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].fields.0["name"]["source"], "v2");
    let r = store
        .resolve_conflict(c1, &json!({"keep": "source"}), "me")
        .await
        .unwrap();
    assert_eq!(r.status, "resolved");
    assert_eq!(r.resolved_by.as_deref(), Some("me"));
    let close = PairCommit {
        conflict: ConflictWrite::Close { status: "applied" },
        link: LinkWrite::Keep,
        ..upsert(Some(out[1].0.unwrap()), "s2", "t2", "x")
    };
    store.commit("s", run, &[close]).await.unwrap();
    let done = store.conflict(c1).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.applied_run.as_deref()),
        ("applied", Some(run))
    );
    let again = store
        .resolve_conflict(c1, &json!({"keep": "target"}), "me")
        .await;
    assert!(matches!(again, Err(SyncError::NotFound(m)) if m.contains("applied")));
    assert!(matches!(
        store.resolve_conflict(999_999, &json!({}), "me").await,
        Err(SyncError::NotFound(_))
    ));

    // Cursors and breakers.
    assert_eq!(store.cursor("s", Side::Source).await.unwrap(), None);
    let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
        .unwrap()
        .to_utc();
    store.set_cursor("s", Side::Source, t, run).await.unwrap();
    store
        .set_cursor("s", Side::Source, t + chrono::Duration::seconds(1), run)
        .await
        .unwrap();
    assert_eq!(
        store.cursor("s", Side::Source).await.unwrap(),
        Some(t + chrono::Duration::seconds(1))
    );
    let b = BreakerState {
        phase: BreakerPhase::Open,
        consecutive_failures: 5,
        opened_at: Some(t),
        next_probe_at: Some(t),
        probe_in_flight: false,
    };
    store.save_breaker("sqlite://x", &b).await.unwrap();
    assert_eq!(store.breaker("sqlite://x").await.unwrap(), Some(b));
    assert_eq!(store.breaker("other").await.unwrap(), None);

    // Removing a link.
    store
        .commit(
            "s",
            run,
            &[PairCommit {
                link: LinkWrite::Remove(link1),
                ..upsert(None, "", "", "")
            }],
        )
        .await
        .unwrap();
    assert!(store.links_by_id("s", &[link1]).await.unwrap().is_empty());

    // A run left `running` (its process died) is marked interrupted with its planned changes.
    store
        .insert_changes(
            run,
            &[ChangeRow {
                seq: 2,
                link_id: None,
                side: Side::Source,
                record_key: Some("s5".into()),
                action: "update".into(),
                before: None,
                after: None,
                status: "planned".into(),
                error: None,
                origin_key: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store.mark_interrupted("s").await.unwrap(),
        vec![run.to_owned()]
    );
    assert_eq!(store.run(run).await.unwrap().unwrap().status, "interrupted");
    let statuses: Vec<String> = store
        .changes(run)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, ["applied", "interrupted"]);
    store
        .finish_run(run, "failed", &json!({"x": 1}), Some("boom"))
        .await
        .unwrap();
    let r = store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (r.status.as_str(), r.error.as_deref()),
        ("failed", Some("boom"))
    );
    assert!(r.finished_at.is_some());

    // The lock: one holder at a time, across store instances; released on unlock.
    let other = StateStore::open(url, base_dir).await.unwrap();
    let lease = Duration::from_secs(60);
    let held = store.lock("s", "run-a", lease).await.unwrap();
    match other.lock("s", "run-b", lease).await {
        Err(SyncError::Locked { holder, .. }) => assert!(holder.contains("run-a"), "{holder}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("two holders"),
    }
    let other_sync = other.lock("t", "run-c", lease).await.unwrap();
    store.unlock(held).await.unwrap();
    let b = other.lock("s", "run-b", lease).await.unwrap();
    other.unlock(b).await.unwrap();
    other.unlock(other_sync).await.unwrap();

    // A read-only open sees the data and refuses to write.
    let ro = StateStore::open_read_only(url, base_dir).await.unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.history(Some("s"), 5).await.unwrap().len(), 1);
    assert!(ro.set_cursor("s", Side::Target, t, run).await.is_err());
    ro.close().await;
    other.close().await;
    store.close().await;
}

#[tokio::test]
async fn sqlite_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite("sqlite://state/nested/state.db", dir.path()).await;
    assert!(
        dir.path().join("state/nested/state.db").exists(),
        "created with its directory"
    );
}

#[tokio::test]
async fn postgres_store_passes_the_suite() {
    let schema = PgSchema::new().await;
    let dir = tempfile::tempdir().unwrap();
    suite(&schema.url(), dir.path()).await;
    schema.drop().await;
}

#[tokio::test]
async fn read_only_opens_of_a_missing_store_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ro = StateStore::open_read_only("sqlite://none/state.db", dir.path())
        .await
        .unwrap();
    assert!(ro.history(None, 5).await.unwrap().is_empty());
    assert!(!dir.path().join("none").exists());
    let schema = PgSchema::new().await;
    let ro = StateStore::open_read_only(&schema.url(), dir.path())
        .await
        .unwrap();
    assert!(ro.history(None, 5).await.unwrap().is_empty());
    let exists: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = $1")
            .bind(&schema.name)
            .fetch_optional(&schema.pool)
            .await
            .unwrap();
    assert_eq!(exists, None, "a dry run creates no schema");
    schema.drop().await;
}

#[tokio::test]
async fn a_sqlite_lease_of_a_dead_process_or_past_its_expiry_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open("sqlite://s.db", dir.path()).await.unwrap();
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    // A pid no Linux process can have, on this host: its holder is dead.
    sqlx::query("INSERT INTO sync_lock VALUES ('s', 'dead-run', $1, 2147483647, $2, $3)")
        .bind(&host)
        .bind(chrono::Utc::now())
        .bind(future)
        .execute(&pool)
        .await
        .unwrap();
    let l = store
        .lock("s", "new-run", Duration::from_secs(60))
        .await
        .unwrap();
    store.unlock(l).await.unwrap();
    // Another host's live-looking lease blocks until it expires.
    sqlx::query("INSERT INTO sync_lock VALUES ('s', 'remote-run', 'elsewhere', 1, $1, $2)")
        .bind(chrono::Utc::now())
        .bind(future)
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        store.lock("s", "x", Duration::from_secs(60)).await,
        Err(SyncError::Locked { .. })
    ));
    sqlx::query("UPDATE sync_lock SET expires_at = $1")
        .bind(chrono::Utc::now() - chrono::Duration::seconds(1))
        .execute(&pool)
        .await
        .unwrap();
    let l = store.lock("s", "x", Duration::from_secs(60)).await.unwrap();
    store.unlock(l).await.unwrap();
}

#[test]
fn the_dba_schema_file_is_the_postgres_migrations() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/sync_schema.sql"
    ))
    .unwrap();
    assert!(
        doc.ends_with(&all),
        "docs/sync_schema.sql must end with migrations/postgres/*.sql verbatim, joined by blank lines"
    );
}

#[tokio::test]
async fn postgres_run_locks_are_per_store_not_per_database() {
    // Two stores in one database: one chosen with `?schema=`, one with a search_path in the
    // connection options. The same sync name in each must not block the other.
    let by_param = PgSchema::new().await;
    let by_options = PgSchema::new().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA \"{}\"",
        by_options.name
    )))
    .execute(&by_options.pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options_url = format!("{}?options=-csearch_path%3D{}", pg_url(), by_options.name);
    let first = StateStore::open(&by_param.url(), dir.path()).await.unwrap();
    let second = StateStore::open(&options_url, dir.path()).await.unwrap();
    let tables_in_second: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'sync_lock'",
    )
    .bind(&by_options.name)
    .fetch_one(&by_options.pool)
    .await
    .unwrap();
    assert_eq!(
        tables_in_second, 1,
        "the options URL selects its own schema"
    );

    let lease = Duration::from_secs(60);
    let a = first.lock("shared", "run-a", lease).await.unwrap();
    let b = second
        .lock("shared", "run-b", lease)
        .await
        .expect("a store in another schema is not locked by this one");

    // Within one store the lock still excludes, whichever way its schema was chosen.
    let first_again = StateStore::open(&by_param.url(), dir.path()).await.unwrap();
    let second_again = StateStore::open(&options_url, dir.path()).await.unwrap();
    for (store, holder) in [(&first_again, "run-a"), (&second_again, "run-b")] {
        match store.lock("shared", "run-c", lease).await {
            Err(SyncError::Locked { holder: h, .. }) => assert!(h.contains(holder), "{h}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("two holders of one store's lock"),
        }
    }

    first.unlock(a).await.unwrap();
    second.unlock(b).await.unwrap();
    for store in [first, second, first_again, second_again] {
        store.close().await;
    }
    by_param.drop().await;
    by_options.drop().await;
}
