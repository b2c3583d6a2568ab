//! The connector against the stateful Sheets fake: auth, reads, planned writes, hand edits
//! between read and write, quotas, refusals, and the conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use syncctl_core::{
    Classified, Connector, ErrorClass, NaturalKey, ReadRequest, Record, RecordKey, WriteContext,
    WriteOp, WriteOutcome,
};
use syncctl_http::RecordingSleeper;
use syncctl_sheets::GoogleSheets;
use syncctl_sheets::value::datetime_to_serial;
use syncctl_testkit::FakeServer;
use syncctl_testkit::conformance::{Fixture, Person, run_all};
use syncctl_testkit::fakes::sheets::{Edit, SheetsFake, service_account_json};

const ID: &str = "1TestSheet_abc";

struct Setup {
    fake: SheetsFake,
    server: FakeServer,
    sleeper: Arc<RecordingSleeper>,
}

async fn setup(fake: SheetsFake) -> Setup {
    let server = FakeServer::start(fake.router()).await;
    Setup {
        fake,
        server,
        sleeper: Arc::new(RecordingSleeper::default()),
    }
}

impl Setup {
    fn connector(&self, block: Value) -> GoogleSheets {
        self.try_connector(block).unwrap()
    }
    fn try_connector(
        &self,
        mut block: Value,
    ) -> Result<GoogleSheets, syncctl_core::ConnectorError> {
        let creds = service_account_json(&format!("{}/token", self.server.url()));
        let base = self.server.url();
        block["connector"] = json!("google_sheets");
        GoogleSheets::from_settings(
            block,
            Path::new("."),
            &move |k| match k {
                "GOOGLE_SHEETS_SPREADSHEET_ID" => Some(ID.to_owned()),
                "GOOGLE_SHEETS_CREDENTIALS_JSON" => Some(creds.clone()),
                "GOOGLE_SHEETS_BASE_URL" => Some(base.clone()),
                _ => None,
            },
            Some(self.sleeper.clone()),
        )
    }
}

fn contacts() -> Vec<Vec<Value>> {
    vec![
        vec![
            json!("email"),
            json!("name"),
            json!("joined"),
            json!("status"),
        ],
        vec![json!("b@x.io"), json!("Bo"), json!(46053), json!("")],
        vec![json!("a@x.io"), json!("Al"), json!(46054.5)],
        vec![],
        vec![json!("c@x.io"), json!("=1+1"), json!(""), json!("deleted")],
    ]
}

fn block() -> Value {
    json!({"key_column": "email", "deleted_column": "status", "column_types": {"joined": "date"}})
}

fn ctx() -> WriteContext {
    WriteContext::new("t", "00000000-0000-0000-0000-000000000000")
}

fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

async fn scan(c: &GoogleSheets, limit: usize) -> Vec<Record> {
    let s = c.describe().await.unwrap();
    let src = c.source().unwrap();
    let mut req = ReadRequest::full(limit);
    let mut out = Vec::new();
    loop {
        let p = src.read_page(&s, &req).await.unwrap();
        out.extend(p.records);
        match p.next {
            Some(t) => req.after = Some(t),
            None => return out,
        }
    }
}

#[tokio::test]
async fn reads_the_tab_as_keyed_records_with_serial_dates_converted() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    assert_eq!(s.key, "email");
    assert_eq!(s.object, "Sheet1");
    assert!(s.capabilities.archive && !s.capabilities.incremental);
    let recs = scan(&c, 2).await;
    let keys: Vec<_> = recs.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a@x.io", "b@x.io", "c@x.io"]);
    assert_eq!(recs[0].fields["joined"], json!("2026-02-01"));
    assert_eq!(recs[1].fields["joined"], json!("2026-01-31"));
    assert_eq!(recs[2].fields["name"], json!("=1+1"));
    assert!(recs[2].deleted && !recs[0].deleted);
    // One token for every call; every request carried it.
    assert_eq!(t.fake.token_requests(), 1);
    let reads = t.server.requests_to(&axum::http::Method::GET, "/v4/");
    assert!(reads.iter().all(|r| {
        r.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ya29."))
    }));
    let full = reads.iter().find(|r| r.path.contains("/values/")).unwrap();
    assert!(
        full.query.contains("valueRenderOption=UNFORMATTED_VALUE"),
        "{}",
        full.query
    );
    assert!(
        full.query.contains("dateTimeRenderOption=SERIAL_NUMBER"),
        "{}",
        full.query
    );
}

#[tokio::test]
async fn writes_are_raw_explicit_ranges_and_never_append() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 6)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    let ops = vec![
        WriteOp::Update {
            key: RecordKey::from("a@x.io"),
            fields: fields(&[("name", json!("Alice")), ("joined", json!("2026-03-01"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Create {
            token: "t1".into(),
            natural_key: None,
            fields: fields(&[
                ("email", json!("d@x.io")),
                ("name", json!("=HYPERLINK(\"x\")")),
            ]),
        },
        WriteOp::Create {
            token: "t2".into(),
            natural_key: None,
            fields: fields(&[("email", json!("e@x.io")), ("name", json!("Eve"))]),
        },
        WriteOp::Delete {
            key: RecordKey::from("b@x.io"),
        },
        WriteOp::Archive {
            key: RecordKey::from("a@x.io"),
        },
        WriteOp::Update {
            key: RecordKey::from("ghost@x.io"),
            fields: fields(&[("name", json!("x"))]),
            expected_updated_at: None,
            expected_version: None,
        },
    ];
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Applied { created: false, .. }),
        "{out:?}"
    );
    assert!(
        matches!(&out[1], WriteOutcome::Applied { created: true, key, .. } if key.as_str() == "d@x.io")
    );
    assert!(matches!(
        &out[2],
        WriteOutcome::Applied { created: true, .. }
    ));
    assert!(matches!(&out[3], WriteOutcome::Applied { .. }));
    assert!(matches!(&out[5], WriteOutcome::NotFound { .. }));
    let rows = t.fake.rows("Sheet1");
    assert_eq!(
        rows[2],
        vec![
            json!("a@x.io"),
            json!("Alice"),
            json!(46082),
            json!("deleted")
        ]
    );
    assert_eq!(
        rows[1],
        Vec::<Value>::new(),
        "deleted row cleared: {rows:?}"
    );
    assert_eq!(rows[5], vec![json!("d@x.io"), json!("=HYPERLINK(\"x\")")]);
    assert_eq!(rows[6], vec![json!("e@x.io"), json!("Eve")]);
    assert!(
        t.fake.row_count("Sheet1") >= 7,
        "grid grown before writing past it"
    );
    assert_eq!(t.fake.appends(), 0);
    assert!(t.fake.value_input_options().iter().all(|o| o == "RAW"));
    let writes = t
        .server
        .requests_to(&axum::http::Method::POST, "values:batchUpdate");
    assert_eq!(writes.len(), 1, "one batchUpdate for the batch");
    // Read-back sees what was written.
    let back = c
        .source()
        .unwrap()
        .read_keys(&s, &[RecordKey::from("d@x.io"), RecordKey::from("a@x.io")])
        .await
        .unwrap();
    assert_eq!(back.len(), 2);
    assert!(back.iter().any(|r| r.key.as_str() == "a@x.io" && r.deleted));
}

#[tokio::test]
async fn rows_moved_between_read_and_write_are_never_overwritten() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    // After the scan someone inserts two rows at the top; after the write's first fresh read
    // they sort the tab. The write must re-plan twice and touch only the planned keys' rows.
    t.fake.edit(&Edit::InsertRows {
        tab: "Sheet1".into(),
        at: 2,
        rows: vec![
            vec![json!("z@x.io"), json!("Zed")],
            vec![json!("y@x.io"), json!("Yan")],
        ],
    });
    let first_fresh_read = t.fake.read_count() + 1;
    t.fake.edit_after_read(
        first_fresh_read,
        Edit::Sort {
            tab: "Sheet1".into(),
            column: 0,
            desc: true,
        },
    );
    let reads_before = t.fake.read_count();
    let ops = vec![
        WriteOp::Update {
            key: RecordKey::from("b@x.io"),
            fields: fields(&[("name", json!("Bob"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Create {
            token: "t".into(),
            natural_key: Some(NaturalKey {
                field: "email".into(),
                value: json!("n@x.io"),
            }),
            fields: fields(&[("email", json!("n@x.io")), ("name", json!("New"))]),
        },
    ];
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. })),
        "{out:?}"
    );
    assert_eq!(
        t.fake.read_count() - reads_before,
        3,
        "two re-plans, then two reads agreed"
    );
    let rows = t.fake.rows("Sheet1");
    let by_key: BTreeMap<String, Vec<Value>> = rows
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| (r[0].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    assert_eq!(by_key["b@x.io"][1], json!("Bob"));
    assert_eq!(
        by_key["z@x.io"][1],
        json!("Zed"),
        "the rows that moved in were not touched"
    );
    assert_eq!(by_key["y@x.io"][1], json!("Yan"));
    assert_eq!(by_key["a@x.io"][1], json!("Al"));
    assert_eq!(by_key["n@x.io"][1], json!("New"));
    assert_eq!(rows.iter().filter(|r| !r.is_empty()).count(), 7, "{rows:?}");
    // A replay of the create (kill -9 after the write) finds the row instead of adding one.
    let again = c
        .sink()
        .unwrap()
        .write(&s, &ops[1..], &ctx())
        .await
        .unwrap();
    assert!(
        matches!(&again[0], WriteOutcome::Applied { created: false, .. }),
        "{again:?}"
    );
    assert_eq!(
        t.fake
            .rows("Sheet1")
            .iter()
            .filter(|r| !r.is_empty())
            .count(),
        7
    );
}

#[tokio::test]
async fn quota_429s_back_off_and_then_succeed() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    c.describe().await.unwrap();
    t.server.inject_on(None, "/values", syncctl_testkit::Fault::Status {
        status: 429,
        retry_after: None,
        body: json!({"error": {"code": 429, "message": "Quota exceeded for quota metric 'Read requests'", "status": "RESOURCE_EXHAUSTED"}}),
    }, 3);
    let recs = scan(&c, 100).await;
    assert_eq!(recs.len(), 3);
    let delays = t.sleeper.delays();
    assert_eq!(delays.len(), 3, "{delays:?}");
    // Exponential backoff with jitter from one second.
    assert!(delays.iter().all(|d| d.as_secs_f64() <= 64.0));
}

#[tokio::test]
async fn the_fakes_quota_answers_googles_429() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100).quota(
        2,
        10,
        std::time::Duration::from_secs(3600),
    ))
    .await;
    let c = t.connector(block());
    let e = async {
        c.describe().await?;
        scan_result(&c).await
    }
    .await
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert!(e.to_string().contains("Quota exceeded"), "{e}");
    assert_eq!(
        t.sleeper.delays().len(),
        6,
        "retried with backoff before giving up"
    );
}

async fn scan_result(c: &GoogleSheets) -> Result<Vec<Record>, syncctl_core::ConnectorError> {
    let s = c.describe().await?;
    Ok(c.source()
        .unwrap()
        .read_page(&s, &ReadRequest::full(100))
        .await?
        .records)
}

#[tokio::test]
async fn oversized_and_ill_typed_cells_fail_alone() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    let ops = vec![
        WriteOp::Update {
            key: RecordKey::from("a@x.io"),
            fields: fields(&[("name", json!("x".repeat(50_001)))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Update {
            key: RecordKey::from("b@x.io"),
            fields: fields(&[("joined", json!("next tuesday"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Update {
            key: RecordKey::from("b@x.io"),
            fields: fields(&[("nope", json!("x"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Update {
            key: RecordKey::from("c@x.io"),
            fields: fields(&[("name", json!("Cy"))]),
            expected_updated_at: None,
            expected_version: None,
        },
    ];
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    for (i, o) in out.iter().take(3).enumerate() {
        let WriteOutcome::Failed(e) = o else {
            panic!("op {i}: {o:?}")
        };
        assert_eq!(e.class, ErrorClass::Config);
    }
    let WriteOutcome::Failed(e) = &out[0] else {
        unreachable!()
    };
    assert!(e.message.contains("50000"), "{e:?}");
    assert!(matches!(out[3], WriteOutcome::Applied { .. }));
    assert_eq!(t.fake.rows("Sheet1")[4][1], json!("Cy"));
    assert_eq!(t.fake.rows("Sheet1")[2][1], json!("Al"));
}

#[tokio::test]
async fn ambiguous_sheets_are_config_errors_before_any_write() {
    let merged = SheetsFake::new(ID)
        .tab("Sheet1", contacts(), 100)
        .merge("Sheet1", (0, 1), (1, 3));
    let t = setup(merged).await;
    let e = t.connector(block()).describe().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.to_string().contains("B1:C1 are merged"), "{e}");

    let mut dup = contacts();
    dup.push(vec![json!("a@x.io"), json!("Again")]);
    let t = setup(SheetsFake::new(ID).tab("Sheet1", dup, 100)).await;
    let e = scan_result(&t.connector(block())).await.unwrap_err();
    assert!(e.to_string().contains("appears on rows 3 and 6"), "{e}");

    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let e = t
        .connector(json!({"key_column": "id"}))
        .describe()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no column \"id\""), "{e}");
    let e = t
        .connector(json!({"object": "Contacts"}))
        .describe()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no tab \"Contacts\" (tabs: Sheet1)"),
        "{e}"
    );
    let t2 = setup(
        SheetsFake::new(ID)
            .tab("Sheet1", contacts(), 100)
            .time_zone("America/New_York"),
    )
    .await;
    let e2 = t2
        .connector(json!({"updated_at_column": "joined"}))
        .describe()
        .await
        .unwrap_err();
    assert!(e2.to_string().contains("America/New_York"), "{e2}");
}

#[tokio::test]
async fn auth_failures_are_auth_errors_without_key_material() {
    let t = setup(
        SheetsFake::new(ID)
            .tab("Sheet1", contacts(), 100)
            .shared(false),
    )
    .await;
    let e = t.connector(block()).describe().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(e.to_string().contains("share the spreadsheet"), "{e}");

    // A key the token endpoint does not trust.
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let creds = service_account_json(&format!("{}/token", t.server.url())).replace(
        &serde_json::to_string(syncctl_testkit::fakes::snowflake::TEST_PRIVATE_KEY_PEM).unwrap(),
        &serde_json::to_string(syncctl_testkit::fakes::snowflake::UNTRUSTED_PRIVATE_KEY_PEM)
            .unwrap(),
    );
    let c = GoogleSheets::from_settings(
        json!({"connector": "google_sheets", "spreadsheet_id": ID, "base_url": t.server.url(), "credentials_json": creds}),
        Path::new("."),
        &|_| None,
        Some(t.sleeper.clone()),
    )
    .unwrap();
    let e = c.describe().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(e.to_string().contains("Invalid JWT Signature"), "{e}");
    assert!(!e.to_string().contains("PRIVATE KEY"));

    // Not a key file at all.
    let e = GoogleSheets::from_settings(
        json!({"connector": "google_sheets", "spreadsheet_id": ID, "credentials_json": "{\"type\": \"authorized_user\"}"}),
        Path::new("."),
        &|_| None,
        None,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("service-account key"), "{e}");
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    // 300 s tokens with a 300 s renewal lead: each call finds its token about to expire.
    let t = setup(
        SheetsFake::new(ID)
            .tab("Sheet1", contacts(), 100)
            .token_ttl(300),
    )
    .await;
    let c = t.connector(block());
    for _ in 0..3 {
        c.describe().await.unwrap();
    }
    assert!(t.fake.token_requests() >= 3, "{}", t.fake.token_requests());
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    c.describe().await.unwrap();
    c.describe().await.unwrap();
    assert_eq!(t.fake.token_requests(), 1, "a fresh token is reused");
}

/// The conformance suite against the fake: `people` keyed by a text `id`, `age` a number
/// column (text refused per record), `updated_at` a timestamp column.
struct SheetsFixture {
    setup: Setup,
    next_id: AtomicUsize,
}

fn header() -> Vec<Value> {
    vec![
        json!("id"),
        json!("email"),
        json!("name"),
        json!("age"),
        json!("updated_at"),
    ]
}

#[async_trait::async_trait]
impl Fixture for SheetsFixture {
    async fn fresh(&self) -> Box<dyn Connector> {
        self.setup.fake.set_rows("people", vec![header()]);
        Box::new(self.setup.connector(json!({
            "object": "people",
            "key_column": "id",
            "updated_at_column": "updated_at",
            "column_types": {"age": "number"},
        })))
    }

    async fn insert(&self, rows: &[Person]) -> Vec<RecordKey> {
        let mut keys = Vec::new();
        let mut cells = Vec::new();
        for p in rows {
            let id = format!("row-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
            cells.push(vec![
                json!(id),
                json!(p.email),
                p.name.as_ref().map_or(json!(""), |n| json!(n)),
                p.age.map_or(json!(""), |a| json!(a)),
                json!(datetime_to_serial(p.updated_at)),
            ]);
            keys.push(RecordKey(id));
        }
        self.setup.fake.push_rows("people", cells);
        keys
    }

    fn refused_age(&self) -> Option<Value> {
        Some(json!("forty-two"))
    }

    fn enforces_unique_email(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn sheets_passes_the_conformance_suite() {
    let fixture = SheetsFixture {
        setup: setup(SheetsFake::new(ID).tab("people", vec![header()], 20)).await,
        next_id: AtomicUsize::new(1),
    };
    run_all(&fixture).await.unwrap();
}

fn create(email: &str, name: &str) -> WriteOp {
    WriteOp::Create {
        token: format!("t-{email}"),
        natural_key: Some(NaturalKey {
            field: "email".into(),
            value: json!(email),
        }),
        fields: fields(&[("email", json!(email)), ("name", json!(name))]),
    }
}

fn nonempty_rows(t: &Setup) -> Vec<Vec<Value>> {
    t.fake
        .rows("Sheet1")
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect()
}

#[tokio::test]
async fn a_first_load_costs_one_fresh_read_and_one_write_per_batch() {
    // What the engine does on a first load into an empty tab: a scan, then per page a lookup
    // of the page's keys and one write of its creates.
    let t =
        setup(SheetsFake::new(ID).tab("Sheet1", vec![vec![json!("email"), json!("name")]], 100))
            .await;
    let c = t.connector(json!({"key_column": "email"}));
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    let before = (c.client().counts().reads(), c.client().counts().writes());
    let (batches, per_batch) = (10, 50);
    for b in 0..batches {
        let emails: Vec<String> = (0..per_batch).map(|i| format!("p{b}-{i}@x.io")).collect();
        let values: Vec<Value> = emails.iter().map(|e| json!(e)).collect();
        let found = c
            .source()
            .unwrap()
            .lookup(&s, "email", &values)
            .await
            .unwrap();
        assert!(found.is_empty());
        let ops: Vec<WriteOp> = emails.iter().map(|e| create(e, "N")).collect();
        let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
        for (o, e) in out.iter().zip(&emails) {
            // The row as Sheets stored it comes back with the write: no read-back call.
            let WriteOutcome::Applied {
                created: true,
                stored: Some(r),
                ..
            } = o
            else {
                panic!("{o:?}")
            };
            assert_eq!(r.key.as_str(), e);
            assert_eq!(r.fields["name"], json!("N"));
        }
    }
    let reads = c.client().counts().reads() - before.0;
    let writes = c.client().counts().writes() - before.1;
    assert_eq!(reads, batches, "one fresh read of the key column per batch");
    // One batchUpdate per batch; the grid (100 rows) doubles a few times on the way to 501.
    let appends = t
        .server
        .requests_to(&axum::http::Method::POST, &format!("{ID}:batchUpdate"))
        .len() as u64;
    assert_eq!(writes, batches + appends);
    assert!(appends <= 3, "{appends} grid growths");
    assert_eq!(nonempty_rows(&t).len(), 1 + 500);
    // The lookup index follows the writes: a key written in batch 0 is found without a read.
    let reads_before = c.client().counts().reads();
    let found = c
        .source()
        .unwrap()
        .lookup(&s, "email", &[json!("p0-7@x.io")])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(c.client().counts().reads(), reads_before);
}

#[tokio::test]
async fn a_row_added_by_hand_after_the_scan_is_not_duplicated_by_a_create() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    let out = c
        .sink()
        .unwrap()
        .write(&s, &[create("d@x.io", "Dee")], &ctx())
        .await
        .unwrap();
    assert!(matches!(
        &out[0],
        WriteOutcome::Applied { created: true, .. }
    ));
    // Someone types a row for h@x.io; the lookup answers from the scan plus syncctl's own
    // writes, so it does not see it, and the engine plans a create.
    t.fake
        .push_rows("Sheet1", vec![vec![json!("h@x.io"), json!("By hand")]]);
    let found = c
        .source()
        .unwrap()
        .lookup(&s, "email", &[json!("h@x.io"), json!("d@x.io")])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let out = c
        .sink()
        .unwrap()
        .write(&s, &[create("h@x.io", "Synced")], &ctx())
        .await
        .unwrap();
    // The write's fresh read of the key column finds the typed row: it is updated, not
    // doubled.
    assert!(
        matches!(&out[0], WriteOutcome::Applied { created: false, key, .. } if key.as_str() == "h@x.io"),
        "{out:?}"
    );
    let rows = nonempty_rows(&t);
    let h: Vec<_> = rows.iter().filter(|r| r[0] == json!("h@x.io")).collect();
    assert_eq!(h.len(), 1, "{rows:?}");
    assert_eq!(h[0][1], json!("Synced"));
}

#[tokio::test]
async fn a_grid_shrunk_by_hand_is_read_again_before_writing() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 6)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    // The grid had 6 rows when described; deleting row 2 leaves 5, so the append area the
    // connector expects (row 6) is past the grid.
    t.fake.edit(&Edit::DeleteRow {
        tab: "Sheet1".into(),
        at: 2,
    });
    let out = c
        .sink()
        .unwrap()
        .write(&s, &[create("n@x.io", "New")], &ctx())
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Applied { created: true, .. }),
        "{out:?}"
    );
    let rows = t.fake.rows("Sheet1");
    assert_eq!(rows[4], vec![json!("n@x.io"), json!("New")], "{rows:?}");
    assert_eq!(rows.iter().filter(|r| !r.is_empty()).count(), 4);
}

#[tokio::test]
async fn grid_headroom_refused_by_the_cell_cap_grows_by_the_rows_needed() {
    // 6 rows × 26 columns now; the cap leaves room for 2 more rows, not for doubling.
    let t = setup(
        SheetsFake::new(ID)
            .tab("Sheet1", contacts(), 6)
            .max_cells(8 * 26),
    )
    .await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    let out = c
        .sink()
        .unwrap()
        .write(&s, &[create("m@x.io", "M"), create("n@x.io", "N")], &ctx())
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Applied { created: true, .. })),
        "{out:?}"
    );
    assert_eq!(t.fake.row_count("Sheet1"), 7);
    assert_eq!(nonempty_rows(&t).len(), 6);
}

#[tokio::test]
async fn large_batches_are_split_under_the_request_size_limit() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    // 60 rows of 40 000 characters: about 2.4 MB, over Google's recommended 2 MB.
    let long = "x".repeat(40_000);
    let ops: Vec<WriteOp> = (0..60)
        .map(|i| create(&format!("big{i}@x.io"), &long))
        .collect();
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    assert!(out.iter().all(|o| matches!(
        o,
        WriteOutcome::Applied {
            created: true,
            stored: Some(_),
            ..
        }
    )));
    let writes = t
        .server
        .requests_to(&axum::http::Method::POST, "values:batchUpdate");
    assert_eq!(writes.len(), 2);
    assert!(writes.iter().all(|w| w.body.len() <= 2_000_000));
    assert_eq!(nonempty_rows(&t).len(), 4 + 60);
}

#[tokio::test]
async fn columns_limit_the_schema_and_a_missing_one_is_a_config_error() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let s = t
        .connector(json!({"key_column": "email", "columns": ["name"]}))
        .describe()
        .await
        .unwrap();
    let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["email", "name"], "the key column is always in");
    let e = t
        .connector(json!({"key_column": "email", "columns": ["name", "phone"]}))
        .describe()
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.to_string().contains("no column \"phone\""), "{e}");
    let e = t.try_connector(json!({"columns": []})).err().unwrap();
    assert!(e.to_string().contains("columns:"), "{e}");
}

#[tokio::test]
async fn an_update_reports_a_sort_that_lands_between_its_check_and_its_write() {
    let t = setup(SheetsFake::new(ID).tab("Sheet1", contacts(), 100)).await;
    let c = t.connector(block());
    let s = c.describe().await.unwrap();
    scan(&c, 100).await;
    // The write's fresh read agrees with the plan; right after it someone sorts the tab, so
    // b@x.io's old row (2) now holds c@x.io: the race Sheets has no conditional write for.
    t.fake.edit_after_read(
        t.fake.read_count() + 1,
        Edit::Sort {
            tab: "Sheet1".into(),
            column: 0,
            desc: true,
        },
    );
    let reads = c.client().counts().reads();
    let update = |key: &str, name: &str| WriteOp::Update {
        key: RecordKey::from(key),
        fields: fields(&[("name", json!(name))]),
        expected_updated_at: None,
        expected_version: None,
    };
    let out = c
        .sink()
        .unwrap()
        .write(&s, &[update("b@x.io", "Bob")], &ctx())
        .await
        .unwrap();
    let WriteOutcome::Failed(e) = &out[0] else {
        panic!("the moved row was reported as written: {out:?}")
    };
    assert_eq!(e.class, ErrorClass::Transient);
    assert!(
        e.message.contains("held email \"c@x.io\"") && e.message.contains("sorted"),
        "{e:?}"
    );
    // The next write plans on a fresh read and reaches b@x.io where it now is; its answer is
    // the stored row, so no read-back call is made.
    let out = c
        .sink()
        .unwrap()
        .write(&s, &[update("b@x.io", "Bob")], &ctx())
        .await
        .unwrap();
    let WriteOutcome::Applied {
        stored: Some(r), ..
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!(r.key.as_str(), "b@x.io");
    assert_eq!(r.fields["name"], json!("Bob"));
    assert_eq!(
        r.fields["joined"],
        json!("2026-01-31"),
        "the whole row comes back"
    );
    let rows = nonempty_rows(&t);
    let b: Vec<_> = rows.iter().filter(|r| r[0] == json!("b@x.io")).collect();
    assert_eq!(b[0][1], json!("Bob"));
    assert!(c.client().counts().reads() - reads <= 3);
}
