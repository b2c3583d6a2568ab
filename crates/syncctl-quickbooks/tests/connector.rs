//! The connector's contract (the rules of `syncctl_core::connector`) against the stateful
//! QuickBooks fake, plus what is QuickBooks-specific: SyncToken versions and 5010 as Stale,
//! DisplayName clashes, requestid replays, CDC deletes and the call budget.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Value, json};
use syncctl_core::{
    BuildContext, Connector, MemoryCredentials, NaturalKey, ObjectSchema, ReadRequest, Record,
    RecordKey, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_http::RecordingSleeper;
use syncctl_quickbooks::{
    ClientOptions, Entity, QuickBooksClient, QuickBooksConnector, QuickBooksSettings,
};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};

struct Setup {
    server: FakeServer,
    conn: QuickBooksConnector,
    schema: ObjectSchema,
}

async fn setup(fake: QuickBooksFake, entity: Entity) -> Setup {
    let server = FakeServer::start(fake.router()).await;
    let client = QuickBooksClient::new(
        &QuickBooksSettings {
            realm_id: DEMO_REALM.into(),
            base_url: server.url(),
            access_token: Some(SecretString::from(DEMO_ACCESS_TOKEN.to_owned())),
            refresh: None,
        },
        ClientOptions {
            sleeper: Arc::new(RecordingSleeper::default()),
            credentials: Arc::new(syncctl_core::MemoryCredentials::default()),
            ..ClientOptions::default()
        },
    )
    .expect("client");
    let conn = QuickBooksConnector::new(client, entity);
    let schema = conn.describe().await.expect("describe");
    Setup {
        server,
        conn,
        schema,
    }
}

fn ctx() -> WriteContext {
    WriteContext::new("crm", "00000000-0000-0000-0000-000000000001")
}

fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn create(name: &str, email: &str) -> WriteOp {
    WriteOp::Create {
        token: format!("t-{email}"),
        natural_key: Some(NaturalKey {
            field: "PrimaryEmailAddr.Address".into(),
            value: json!(email),
        }),
        fields: fields(&[
            ("GivenName", json!(name)),
            ("FamilyName", json!("Test")),
            ("PrimaryEmailAddr.Address", json!(email)),
        ]),
    }
}

async fn scan(
    s: &Setup,
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: usize,
) -> Vec<Record> {
    let src = s.conn.source().expect("source");
    let mut req = ReadRequest {
        since,
        after: None,
        limit,
        keys_only: false,
    };
    let mut out = Vec::new();
    for _ in 0..100 {
        let page = src.read_page(&s.schema, &req).await.expect("page");
        out.extend(page.records);
        match page.next {
            Some(t) => req.after = Some(t),
            None => return out,
        }
    }
    panic!("paging never ends")
}

async fn write(s: &Setup, ops: &[WriteOp]) -> Vec<WriteOutcome> {
    let out = s
        .conn
        .sink()
        .expect("sink")
        .write(&s.schema, ops, &ctx())
        .await
        .expect("write");
    assert_eq!(out.len(), ops.len(), "one outcome per op");
    out
}

fn applied(o: &WriteOutcome) -> (RecordKey, bool, Option<Record>) {
    match o {
        WriteOutcome::Applied {
            key,
            created,
            stored,
        } => (key.clone(), *created, stored.clone()),
        other => panic!("not applied: {other:?}"),
    }
}

#[tokio::test]
async fn describe_names_the_entity_and_its_capabilities() {
    let s = setup(QuickBooksFake::new(), Entity::Customer).await;
    assert_eq!(s.schema.key, "Id");
    assert_eq!(
        s.schema.updated_at.as_deref(),
        Some("MetaData.LastUpdatedTime")
    );
    assert_eq!(s.schema.max_batch, 30);
    let c = s.schema.capabilities;
    assert!(
        c.create
            && c.update
            && c.archive
            && !c.delete
            && c.versioned
            && c.returns_stored
            && c.reports_deletes
    );
    for f in [
        "DisplayName",
        "GivenName",
        "FamilyName",
        "CompanyName",
        "PrimaryEmailAddr.Address",
        "PrimaryPhone.FreeFormNumber",
        "BillAddr.City",
    ] {
        assert!(s.schema.field(f).is_some_and(|x| x.writable), "{f}");
    }
    assert!(
        s.conn
            .endpoint()
            .ends_with(&format!("/v3/company/{DEMO_REALM}"))
    );
    s.conn.check().await.expect("check");
    let inv = setup(QuickBooksFake::new(), Entity::Invoice).await;
    assert!(inv.schema.capabilities.delete && !inv.schema.capabilities.archive);
}

#[tokio::test]
async fn full_scans_page_without_gaps_and_report_deactivated_records() {
    let fake = QuickBooksFake::new();
    let ids: Vec<String> = (0..45)
        .map(|i| fake.insert("Customer", json!({"DisplayName": format!("C{i}")})))
        .collect();
    fake.edit("Customer", &ids[3], json!({"Active": false}));
    let s = setup(fake, Entity::Customer).await;
    let recs = scan(&s, None, 20).await;
    let keys: BTreeSet<_> = recs.iter().map(|r| r.key.0.clone()).collect();
    assert_eq!(
        keys,
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        "no gaps"
    );
    let inactive: Vec<_> = recs
        .iter()
        .filter(|r| r.deleted)
        .map(|r| r.key.0.clone())
        .collect();
    assert_eq!(inactive, vec![ids[3].clone()]);
    assert!(
        recs.iter()
            .all(|r| r.version.is_some() && r.updated_at.is_some())
    );
    // 45 records, pages of 20 with an overlap of one: 3 query calls.
    assert_eq!(s.conn.client().stats().queries, 3);
}

#[tokio::test]
async fn incremental_reads_use_one_cdc_call_and_report_deletes() {
    let fake = QuickBooksFake::new();
    let cust = fake.insert(
        "Customer",
        json!({"DisplayName": "Old", "MetaData": {"LastUpdatedTime": "2026-01-01T00:00:00-08:00"}}),
    );
    let item = fake.insert("Item", json!({"Name": "W", "Type": "Service"}));
    let inv = fake.insert("Invoice", json!({"CustomerRef": {"value": cust}, "Line": [{"Amount": 5, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": item}}}]}));
    let since = chrono::Utc::now() - chrono::Duration::seconds(30);
    let changed = fake.insert("Customer", json!({"DisplayName": "New"}));
    fake.delete_invoice(&inv);
    let s = setup(fake.clone(), Entity::Customer).await;
    let recs = scan(&s, Some(since), 1000).await;
    assert_eq!(
        recs.iter().map(|r| r.key.0.clone()).collect::<Vec<_>>(),
        vec![changed]
    );
    assert_eq!(s.conn.client().stats().cdc, 1);
    assert_eq!(s.conn.client().stats().queries, 0);
    let i = setup(fake.clone(), Entity::Invoice).await;
    let recs = scan(&i, Some(since), 1000).await;
    assert!(recs.iter().any(|r| r.key.0 == inv && r.deleted), "{recs:?}");
    // A cursor older than CDC's 30 days: name lists fall back to a query on the cursor.
    let old = setup(fake, Entity::Customer).await;
    let since_old = chrono::DateTime::parse_from_rfc3339("2025-12-31T00:00:00Z")
        .unwrap()
        .to_utc();
    let recs = scan(&old, Some(since_old), 1000).await;
    assert_eq!(recs.len(), 2);
    assert_eq!(old.conn.client().stats().cdc, 0);
    assert!(
        recs.windows(2).all(|w| w[0].updated_at <= w[1].updated_at),
        "ordered by cursor"
    );
}

#[tokio::test]
async fn read_keys_and_lookup() {
    let fake = QuickBooksFake::new();
    let a = fake.insert(
        "Customer",
        json!({"DisplayName": "A", "PrimaryEmailAddr": {"Address": "a@x.com"}}),
    );
    let b = fake.insert(
        "Customer",
        json!({"DisplayName": "B", "PrimaryEmailAddr": {"Address": "b@x.com"}}),
    );
    let s = setup(fake, Entity::Customer).await;
    let src = s.conn.source().unwrap();
    let got = src
        .read_keys(
            &s.schema,
            &[
                RecordKey(a.clone()),
                RecordKey("987654".into()),
                RecordKey("not-a-key".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|r| r.key.0.clone()).collect::<Vec<_>>(),
        vec![a]
    );
    assert!(src.read_keys(&s.schema, &[]).await.unwrap().is_empty());
    let found = src
        .lookup(
            &s.schema,
            "PrimaryEmailAddr.Address",
            &[json!("b@x.com"), json!("nobody@x.com")],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key.0, b);
    assert!(src.lookup(&s.schema, "Nope", &[json!(1)]).await.is_err());
}

#[tokio::test]
async fn creates_updates_and_one_bad_record_in_one_batch() {
    let fake = QuickBooksFake::new();
    let existing = fake.insert(
        "Customer",
        json!({"GivenName": "Eve", "FamilyName": "Old", "CompanyName": "Keep Inc"}),
    );
    let s = setup(fake.clone(), Entity::Customer).await;
    let out = write(
        &s,
        &[
            create("Ann", "ann@x.com"),
            WriteOp::Update {
                key: RecordKey(existing.clone()),
                fields: fields(&[("FamilyName", json!("New"))]),
                expected_updated_at: None,
                expected_version: Some("0".into()),
            },
            WriteOp::Create {
                token: "bad".into(),
                natural_key: None,
                fields: fields(&[("Title", json!("far too long for a title"))]),
            },
            WriteOp::Update {
                key: RecordKey("987654".into()),
                fields: fields(&[("Notes", json!("ghost"))]),
                expected_updated_at: None,
                expected_version: Some("0".into()),
            },
            create("Bob", "bob@x.com"),
        ],
    )
    .await;
    let (ann, created, stored) = applied(&out[0]);
    assert!(created);
    let stored = stored.expect("stored comes back from the batch");
    assert_eq!(
        stored.fields["DisplayName"],
        json!("Ann Test"),
        "derived from the names"
    );
    assert_eq!(
        stored.fields["PrimaryEmailAddr.Address"],
        json!("ann@x.com")
    );
    assert_eq!(stored.version.as_deref(), Some("0"));
    let (_, created, stored) = applied(&out[1]);
    assert!(!created);
    let stored = stored.unwrap();
    assert_eq!(stored.fields["FamilyName"], json!("New"));
    assert_eq!(
        stored.fields["CompanyName"],
        json!("Keep Inc"),
        "sparse update keeps the rest"
    );
    assert!(
        matches!(&out[2], WriteOutcome::Failed(e) if e.field.as_deref() == Some("Title")),
        "{:?}",
        out[2]
    );
    assert!(
        matches!(&out[3], WriteOutcome::NotFound { key } if key.0 == "987654"),
        "{:?}",
        out[3]
    );
    applied(&out[4]);
    assert_eq!(fake.all("Customer").len(), 3);
    assert_eq!(
        s.conn.client().stats().batches,
        1,
        "one batch for the whole write"
    );
    assert_eq!(
        s.conn.client().stats().queries,
        0,
        "versions came with the plan"
    );
    assert!(fake.get("Customer", &ann.0).is_some());
    // Every update was sparse.
    for r in s.server.requests_to(&axum_post(), "/batch") {
        for item in r.json()["BatchItemRequest"].as_array().unwrap() {
            if item["operation"] == "update" {
                assert_eq!(item["Customer"]["sparse"], json!(true));
            }
        }
    }
}

fn axum_post() -> axum::http::Method {
    axum::http::Method::POST
}

#[tokio::test]
async fn a_stale_synctoken_is_a_stale_outcome_and_the_concurrent_edit_survives() {
    let fake = QuickBooksFake::new();
    let id = fake.insert("Customer", json!({"GivenName": "Ann", "FamilyName": "Lee"}));
    let s = setup(fake.clone(), Entity::Customer).await;
    let read = s
        .conn
        .source()
        .unwrap()
        .read_keys(&s.schema, &[RecordKey(id.clone())])
        .await
        .unwrap();
    let version = read[0].version.clone();
    fake.edit("Customer", &id, json!({"Notes": "someone else"}));
    let out = write(
        &s,
        &[WriteOp::Update {
            key: RecordKey(id.clone()),
            fields: fields(&[("GivenName", json!("Anna"))]),
            expected_updated_at: None,
            expected_version: version,
        }],
    )
    .await;
    assert!(
        matches!(&out[0], WriteOutcome::Stale { key } if key.0 == id),
        "{out:?}"
    );
    let now = fake.get("Customer", &id).unwrap();
    assert_eq!(now["Notes"], json!("someone else"));
    assert_eq!(now["GivenName"], json!("Ann"), "nothing written");
}

#[tokio::test]
async fn a_replayed_plan_creates_nothing_twice() {
    let fake = QuickBooksFake::new();
    let s = setup(fake.clone(), Entity::Customer).await;
    let ops = [create("Ann", "ann@x.com"), create("Bob", "bob@x.com")];
    let first = write(&s, &ops).await;
    // The answer was lost (crash): the same plan is sent again with the same request id.
    let again = write(&s, &ops).await;
    assert_eq!(applied(&first[0]).0, applied(&again[0]).0);
    assert_eq!(fake.all("Customer").len(), 2);
    assert_eq!(fake.applied_ops(), 2);
    // A different batch that creates Ann again (another run's plan): the DisplayName clash
    // finds Ann by email and updates her instead of creating a second Ann.
    let third = write(&s, &[create("Ann", "ann@x.com"), create("Cy", "cy@x.com")]).await;
    let (k, created, _) = applied(&third[0]);
    assert_eq!(k, applied(&first[0]).0);
    assert!(!created);
    assert_eq!(fake.all("Customer").len(), 3);
}

#[tokio::test]
async fn a_displayname_clash_with_another_person_is_disambiguated_with_the_email() {
    let fake = QuickBooksFake::new();
    fake.insert("Customer", json!({"GivenName": "Ann", "FamilyName": "Test", "PrimaryEmailAddr": {"Address": "ann@one.com"}}));
    let s = setup(fake.clone(), Entity::Customer).await;
    let out = write(&s, &[create("Ann", "ann@two.com")]).await;
    let (_, created, stored) = applied(&out[0]);
    assert!(created);
    assert_eq!(
        stored.unwrap().fields["DisplayName"],
        json!("Ann Test (ann@two.com)")
    );
    let again = write(
        &s,
        &[WriteOp::Create {
            token: "x".into(),
            natural_key: None,
            fields: fields(&[("GivenName", json!("Ann")), ("FamilyName", json!("Test"))]),
        }],
    )
    .await;
    assert_eq!(
        applied(&again[0]).2.unwrap().fields["DisplayName"],
        json!("Ann Test 2")
    );
}

#[tokio::test]
async fn archive_deactivates_customers_and_invoices_are_deleted() {
    let fake = QuickBooksFake::new();
    let c = fake.insert("Customer", json!({"DisplayName": "Gone"}));
    let item = fake.insert("Item", json!({"Name": "W", "Type": "Service"}));
    let inv = fake.insert("Invoice", json!({"CustomerRef": {"value": c}, "Line": [{"Amount": 5, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": item}}}]}));
    let s = setup(fake.clone(), Entity::Customer).await;
    let out = write(
        &s,
        &[
            WriteOp::Archive {
                key: RecordKey(c.clone()),
            },
            WriteOp::Delete {
                key: RecordKey(c.clone()),
            },
        ],
    )
    .await;
    applied(&out[0]);
    assert!(matches!(out[1], WriteOutcome::Failed(_)));
    assert_eq!(fake.get("Customer", &c).unwrap()["Active"], json!(false));
    let i = setup(fake.clone(), Entity::Invoice).await;
    let out = write(
        &i,
        &[WriteOp::Delete {
            key: RecordKey(inv.clone()),
        }],
    )
    .await;
    applied(&out[0]);
    let again = write(
        &i,
        &[WriteOp::Delete {
            key: RecordKey(inv.clone()),
        }],
    )
    .await;
    assert!(matches!(again[0], WriteOutcome::NotFound { .. }));
    assert!(fake.get("Invoice", &inv).is_none());
}

#[tokio::test]
async fn invoices_reference_customers_and_items_by_id() {
    let fake = QuickBooksFake::new();
    let c = fake.insert("Customer", json!({"DisplayName": "Buyer"}));
    let item = fake.insert("Item", json!({"Name": "Consulting", "Type": "Service"}));
    let s = setup(fake.clone(), Entity::Invoice).await;
    let line = json!([{"Amount": 300, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 2, "UnitPrice": 150}}]);
    let out = write(
        &s,
        &[
            WriteOp::Create {
                token: "d1".into(),
                natural_key: None,
                fields: fields(&[
                    ("CustomerRef.value", json!(c)),
                    ("Line", line.clone()),
                    ("TxnDate", json!("2026-12-01")),
                ]),
            },
            WriteOp::Create {
                token: "d2".into(),
                natural_key: None,
                fields: fields(&[("CustomerRef.value", json!("999")), ("Line", line)]),
            },
        ],
    )
    .await;
    let (_, _, stored) = applied(&out[0]);
    assert_eq!(stored.unwrap().fields["TotalAmt"], json!(300.0));
    let WriteOutcome::Failed(e) = &out[1] else {
        panic!("{:?}", out[1])
    };
    assert_eq!(e.code.as_deref(), Some("610"));
    assert_eq!(e.field.as_deref(), Some("CustomerRef"));
}

#[tokio::test]
async fn factory_reads_settings_from_the_environment_and_refuses_bad_ones() {
    let fake = QuickBooksFake::new();
    fake.insert("Customer", json!({"DisplayName": "A"}));
    let server = FakeServer::start(fake.router()).await;
    let url = server.url();
    let ctx = BuildContext::new(".")
        .with_env(move |k| match k {
            "QUICKBOOKS_REALM_ID" => Some(DEMO_REALM.to_owned()),
            "QUICKBOOKS_ACCESS_TOKEN" => Some(DEMO_ACCESS_TOKEN.to_owned()),
            "QUICKBOOKS_BASE_URL" => Some(url.clone()),
            _ => None,
        })
        .with_credentials(Arc::new(MemoryCredentials::default()));
    let c = (syncctl_quickbooks::FACTORY.build)(
        ctx.clone(),
        json!({"connector": "quickbooks", "object": "Customer"}),
    )
    .await
    .expect("builds");
    c.check().await.expect("check");
    let bad = (syncctl_quickbooks::FACTORY.build)(
        ctx.clone(),
        json!({"connector": "quickbooks", "object": "Vendor"}),
    )
    .await;
    assert!(
        bad.err()
            .unwrap()
            .to_string()
            .contains("Customer, Item, Invoice")
    );
    let typo = (syncctl_quickbooks::FACTORY.build)(
        ctx,
        json!({"connector": "quickbooks", "object": "Customer", "realm": "1"}),
    )
    .await;
    assert!(typo.err().unwrap().to_string().contains("realm"));
    let none = (syncctl_quickbooks::FACTORY.build)(
        BuildContext::new("."),
        json!({"connector": "quickbooks"}),
    )
    .await;
    assert!(
        none.err()
            .unwrap()
            .to_string()
            .contains("QUICKBOOKS_REALM_ID")
    );
}

#[tokio::test]
async fn connector_traffic_matches_intuits_schemas() {
    let fake = QuickBooksFake::new();
    let s = setup(fake.clone(), Entity::Customer).await;
    let out = write(
        &s,
        &[create("Ann", "ann@x.com"), create("Bob", "bob@x.com")],
    )
    .await;
    let (k, _, stored) = applied(&out[0]);
    write(
        &s,
        &[WriteOp::Update {
            key: k.clone(),
            fields: fields(&[
                ("BillAddr.City", json!("Oslo")),
                ("PrimaryPhone.FreeFormNumber", json!("+4722000000")),
            ]),
            expected_updated_at: None,
            expected_version: stored.unwrap().version,
        }],
    )
    .await;
    write(&s, &[WriteOp::Archive { key: k }]).await;
    write(&s, &[create("Ann", "other@x.com")]).await;
    scan(&s, None, 10).await;
    let model = syncctl_testkit::xsd::quickbooks();
    let mut problems = Vec::new();
    for r in s.server.requests() {
        if r.path.ends_with("/batch") {
            problems.extend(model.check("IntuitBatchRequest", &r.json()));
        }
    }
    for x in fake.responses() {
        problems.extend(model.check("IntuitResponse", &x.body));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
