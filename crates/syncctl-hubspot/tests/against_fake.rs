//! The HubSpot connector against the testkit's stateful HubSpot fake.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use syncctl_core::{
    BuildContext, Connector, ConnectorError, NaturalKey, RateLimitScope, ReadRequest, RecordKey,
    WriteContext, WriteOp, WriteOutcome,
};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::hubspot::{CallKind, HubSpotFake, Limits};

const TOKEN: &str = "pat-na1-test-token";

async fn start(fake: &HubSpotFake) -> FakeServer {
    FakeServer::start(fake.router()).await
}

async fn connector(server: &FakeServer, settings: Value) -> Box<dyn Connector> {
    let url = server.url();
    let ctx = BuildContext::new(".").with_env(move |k| match k {
        "HUBSPOT_API_TOKEN" => Some(TOKEN.to_owned()),
        "HUBSPOT_BASE_URL" => Some(url.clone()),
        _ => None,
    });
    (syncctl_hubspot::FACTORY.build)(ctx, settings)
        .await
        .unwrap()
}

fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn ctx() -> WriteContext {
    WriteContext::new("t", "run")
}

fn upsert(email: &str, first: &str) -> WriteOp {
    WriteOp::Create {
        token: format!("tok-{email}"),
        natural_key: Some(NaturalKey {
            field: "email".into(),
            value: json!(email),
        }),
        fields: fields(&[("email", json!(email)), ("firstname", json!(first))]),
    }
}

#[tokio::test]
async fn a_missing_token_is_a_config_error_naming_the_variable() {
    let e = (syncctl_hubspot::FACTORY.build)(
        BuildContext::new("."),
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await
    .err()
    .unwrap();
    assert!(e.to_string().contains("HUBSPOT_API_TOKEN"), "{e}");
    let e = (syncctl_hubspot::FACTORY.build)(
        BuildContext::new("."),
        json!({"connector": "hubspot", "object": "tickets"}),
    )
    .await
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .contains("contacts, companies, deals or products"),
        "{e}"
    );
}

#[tokio::test]
async fn full_scan_pages_by_after_and_normalises_values() {
    let fake = HubSpotFake::new(TOKEN);
    for i in 0..250 {
        fake.seed(
            "contacts",
            &[("email", &format!("P{i}@Example.com")), ("firstname", "P")],
        );
    }
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    let src = c.source().unwrap();
    let mut req = ReadRequest::full(100);
    let mut keys = Vec::new();
    loop {
        let page = src.read_page(&schema, &req).await.unwrap();
        keys.extend(page.records.iter().map(|r| r.key.clone()));
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    assert_eq!(keys.len(), 250);
    assert_eq!(fake.calls(CallKind::List), 3, "⌈250/100⌉ list calls");
    let mut sorted = keys.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 250, "no repeats");
    let email = schema.field("email").unwrap();
    assert_eq!(
        email.normalise(&json!(" P1@Example.com")),
        json!("p1@example.com")
    );
}

#[tokio::test]
async fn incremental_reads_re_anchor_before_the_search_cap() {
    let fake = HubSpotFake::new(TOKEN).limits(Limits {
        search_cap: 500,
        search_per_second: 1000,
        ..Limits::default()
    });
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    for i in 0..1200 {
        fake.seed("contacts", &[("email", &format!("c{i}@example.com"))]);
    }
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts", "search_result_cap": 500}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    let mut req = ReadRequest {
        since: Some(since),
        after: None,
        limit: 200,
        keys_only: false,
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = c.source().unwrap().read_page(&schema, &req).await.unwrap();
        pages += 1;
        seen.extend(page.records.iter().map(|r| r.key.clone()));
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
        assert!(pages < 50, "no end");
    }
    assert_eq!(seen.len(), 1200, "every record, none skipped past the cap");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.json()["after"]
                .as_str()
                .is_none_or(|a| a.parse::<usize>().unwrap() + 200 <= 500)),
        "never pages past the cap"
    );
}

#[tokio::test]
async fn upserts_by_email_never_duplicate_and_report_created() {
    let fake = HubSpotFake::new(TOKEN);
    let existing = fake.seed(
        "contacts",
        &[("email", "ada@example.com"), ("firstname", "A")],
    );
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    let ops = vec![
        upsert("Ada@Example.com", "Ada"),
        upsert("grace@example.com", "Grace"),
    ];
    let out = c
        .sink()
        .unwrap()
        .write(&schema, &ops, &ctx())
        .await
        .unwrap();
    match &out[0] {
        WriteOutcome::Applied {
            key,
            created,
            stored,
        } => {
            assert_eq!(key.0, existing.to_string());
            assert!(!created);
            assert_eq!(stored.as_ref().unwrap().fields["firstname"], json!("Ada"));
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        out[1],
        WriteOutcome::Applied { created: true, .. }
    ));
    // A replay of the same batch (a run killed after sending it) changes nothing.
    let again = c
        .sink()
        .unwrap()
        .write(&schema, &ops, &ctx())
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .all(|o| matches!(o, WriteOutcome::Applied { created: false, .. }))
    );
    assert_eq!(fake.all("contacts").len(), 2);
    assert_eq!(fake.calls(CallKind::BatchUpsert), 2, "one call per batch");
}

#[tokio::test]
async fn multi_status_fails_only_the_refused_record_with_its_category() {
    let fake = HubSpotFake::new(TOKEN);
    let a = fake.seed("contacts", &[("email", "a@example.com")]);
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    let ops = vec![
        WriteOp::Update {
            key: RecordKey(a.to_string()),
            fields: fields(&[("firstname", json!("Ann")), ("phone", json!(5551234))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Update {
            key: RecordKey("999999".into()),
            fields: fields(&[("firstname", json!("Ghost"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        upsert("not-an-email", "Bad"),
        upsert("ok@example.com", "Ok"),
    ];
    let out = c
        .sink()
        .unwrap()
        .write(&schema, &ops, &ctx())
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Applied { stored: Some(r), .. } if r.fields["phone"] == json!("5551234")),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(out[1], WriteOutcome::NotFound { .. }),
        "{:?}",
        out[1]
    );
    match &out[2] {
        WriteOutcome::Failed(e) => {
            assert_eq!(e.code.as_deref(), Some("VALIDATION_ERROR"));
            assert!(e.message.contains("INVALID_EMAIL"), "{}", e.message);
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        out[3],
        WriteOutcome::Applied { created: true, .. }
    ));
}

#[tokio::test]
async fn batches_over_one_hundred_are_refused_by_the_fake_and_never_sent() {
    let fake = HubSpotFake::new(TOKEN);
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    assert_eq!(schema.max_batch, 100);
    let ops: Vec<WriteOp> = (0..101)
        .map(|i| upsert(&format!("x{i}@e.com"), "X"))
        .collect();
    assert!(
        c.sink()
            .unwrap()
            .write(&schema, &ops, &ctx())
            .await
            .is_err()
    );
    assert_eq!(server.requests().len(), 0);
    let body =
        json!({"inputs": (0..101).map(|i| json!({"id": i.to_string()})).collect::<Vec<_>>()});
    let resp = reqwest_free_post(&server, "/crm/v3/objects/contacts/batch/read", &body).await;
    assert_eq!(resp, 400);
}

/// A raw POST through the HTTP core (the fake must refuse 101 inputs on its own).
async fn reqwest_free_post(server: &FakeServer, path: &str, body: &Value) -> u16 {
    let http = syncctl_http::HttpClient::builder("t", server.url())
        .auth(std::sync::Arc::new(syncctl_http::BearerToken::new(
            "t",
            secrecy::SecretString::from(TOKEN),
        )))
        .build()
        .unwrap();
    http.send_raw(syncctl_http::Request::post(path).json(body.clone()))
        .await
        .unwrap()
        .status
        .as_u16()
}

#[tokio::test]
async fn a_429_with_retry_after_is_absorbed_and_a_daily_limit_stops() {
    let fake = HubSpotFake::new(TOKEN);
    fake.seed("contacts", &[("email", "a@example.com")]);
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    fake.fail_next(CallKind::List, 429, Some(1), 2);
    let page = c
        .source()
        .unwrap()
        .read_page(&schema, &ReadRequest::full(100))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(fake.refused(), 2);
    let ok = server.requests().last().cloned().unwrap();
    assert_eq!(
        ok.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    fake.exhaust_daily();
    let e = c
        .source()
        .unwrap()
        .read_page(&schema, &ReadRequest::full(100))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ConnectorError::RateLimited {
                scope: RateLimitScope::Daily,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_quota_exhausted());
}

#[tokio::test]
async fn a_rotated_token_is_an_auth_error() {
    let fake = HubSpotFake::new(TOKEN);
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await;
    c.check().await.unwrap();
    fake.rotate_token("pat-na1-new");
    let e = c.check().await.unwrap_err();
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
    assert!(!e.to_string().contains(TOKEN));
}

#[tokio::test]
async fn companies_by_name_update_what_exists_instead_of_duplicating() {
    let fake = HubSpotFake::new(TOKEN).limits(Limits {
        search_per_second: 1000,
        ..Limits::default()
    });
    let acme = fake.seed("companies", &[("name", "Acme")]);
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "companies"}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    let create = |name: &str| WriteOp::Create {
        token: name.into(),
        natural_key: Some(NaturalKey {
            field: "name".into(),
            value: json!(name),
        }),
        fields: fields(&[("name", json!(name)), ("city", json!("Berlin"))]),
    };
    let out = c
        .sink()
        .unwrap()
        .write(&schema, &[create("Acme"), create("Initech")], &ctx())
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Applied { key, created: false, .. } if key.0 == acme.to_string()),
        "{:?}",
        out[0]
    );
    assert!(matches!(
        out[1],
        WriteOutcome::Applied { created: true, .. }
    ));
    assert_eq!(fake.all("companies").len(), 2);
    assert_eq!(
        fake.get("companies", acme).unwrap().properties["city"],
        "Berlin"
    );
}

#[tokio::test]
async fn deals_carry_their_associations_on_every_read_path() {
    let fake = HubSpotFake::new(TOKEN);
    let ada = fake.seed("contacts", &[("email", "ada@example.com")]);
    let bob = fake.seed("contacts", &[("email", "bob@example.com")]);
    let acme = fake.seed("companies", &[("name", "Acme")]);
    let widget = fake.seed("products", &[("name", "Widget"), ("price", "10")]);
    let won = fake.seed("deals", &[("dealname", "Won"), ("dealstage", "closedwon")]);
    let lonely = fake.seed("deals", &[("dealname", "Lonely")]);
    let line = fake.seed(
        "line_items",
        &[
            ("name", "Widget"),
            ("hs_product_id", &widget.to_string()),
            ("quantity", "2"),
            ("price", "10.00"),
            ("amount", "20.00"),
        ],
    );
    // Inserted out of order: the field lists ids ascending.
    fake.associate("deals", won, "contacts", bob);
    fake.associate("deals", won, "contacts", ada);
    fake.associate("deals", won, "companies", acme);
    fake.associate("deals", won, "line_items", line);
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "deals", "associations": ["contacts", "companies", "line_items"]}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    let f = schema.field("associations.contacts").unwrap();
    assert!(!f.writable, "associations are read only");
    assert!(schema.field("line_items").is_some());
    let src = c.source().unwrap();

    let check = |recs: &[syncctl_core::Record]| {
        let won_rec = recs.iter().find(|r| r.key.0 == won.to_string()).unwrap();
        assert_eq!(
            won_rec.fields["associations.contacts"],
            json!([ada.to_string(), bob.to_string()])
        );
        assert_eq!(
            won_rec.fields["associations.companies"],
            json!([acme.to_string()])
        );
        assert_eq!(
            won_rec.fields["line_items"],
            json!([{"id": line.to_string(), "name": "Widget", "hs_product_id": widget.to_string(),
                    "quantity": "2", "price": "10.00", "amount": "20.00"}])
        );
        let lonely_rec = recs.iter().find(|r| r.key.0 == lonely.to_string()).unwrap();
        assert_eq!(lonely_rec.fields["associations.contacts"], json!([]));
        assert_eq!(lonely_rec.fields["line_items"], json!([]));
    };
    let page = src
        .read_page(&schema, &ReadRequest::full(100))
        .await
        .unwrap();
    check(&page.records);
    // One association read per type for the page, one batch read of line items.
    assert_eq!(fake.calls(CallKind::AssociationsRead), 3);
    let keys = [RecordKey(won.to_string()), RecordKey(lonely.to_string())];
    check(&src.read_keys(&schema, &keys).await.unwrap());
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let page = src
        .read_page(
            &schema,
            &ReadRequest {
                since: Some(since),
                after: None,
                limit: 100,
                keys_only: false,
            },
        )
        .await
        .unwrap();
    check(&page.records);
    // A delete-detection scan needs no associations.
    let before = fake.calls(CallKind::AssociationsRead);
    let keys_only = ReadRequest {
        keys_only: true,
        ..ReadRequest::full(100)
    };
    src.read_page(&schema, &keys_only).await.unwrap();
    assert_eq!(fake.calls(CallKind::AssociationsRead), before);
    // An archived contact is no longer associated.
    fake.archive("contacts", bob);
    let recs = src.read_keys(&schema, &keys[..1]).await.unwrap();
    assert_eq!(
        recs[0].fields["associations.contacts"],
        json!([ada.to_string()])
    );
}

#[tokio::test]
async fn associations_spanning_pages_are_read_to_the_end() {
    let fake = HubSpotFake::new(TOKEN);
    let deal = fake.seed("deals", &[("dealname", "Big")]);
    let mut ids = Vec::new();
    for i in 0..503 {
        let c = fake.seed("contacts", &[("email", &format!("c{i}@example.com"))]);
        fake.associate("deals", deal, "contacts", c);
        ids.push(c.to_string());
    }
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "deals", "associations": ["contacts"]}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    let recs = c
        .source()
        .unwrap()
        .read_keys(&schema, &[RecordKey(deal.to_string())])
        .await
        .unwrap();
    assert_eq!(recs[0].fields["associations.contacts"], json!(ids));
    assert_eq!(
        fake.calls(CallKind::AssociationsRead),
        2,
        "a second page by after"
    );
}

#[tokio::test]
async fn an_unknown_association_type_is_a_config_error() {
    let fake = HubSpotFake::new(TOKEN);
    let server = start(&fake).await;
    let url = server.url();
    let ctx = BuildContext::new(".").with_env(move |k| match k {
        "HUBSPOT_API_TOKEN" => Some(TOKEN.to_owned()),
        "HUBSPOT_BASE_URL" => Some(url.clone()),
        _ => None,
    });
    let Err(e) = (syncctl_hubspot::FACTORY.build)(
        ctx,
        json!({"connector": "hubspot", "object": "deals", "associations": ["tickets"]}),
    )
    .await
    else {
        panic!("tickets is not an association type here");
    };
    assert!(matches!(e, ConnectorError::Config { .. }), "{e}");
    assert!(
        e.to_string().contains("contacts, companies, line_items"),
        "{e}"
    );
}

#[tokio::test]
async fn a_delete_detection_read_reports_what_was_archived_since() {
    let fake = HubSpotFake::new(TOKEN);
    let old = fake.seed("contacts", &[("email", "old@example.com")]);
    fake.archive("contacts", old);
    // The fake's clock is in whole milliseconds (and runs ahead of the wall clock by one per
    // write in the same millisecond): keep clear of it on both sides of `since`.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let since = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let gone = fake.seed("contacts", &[("email", "gone@example.com")]);
    let kept = fake.seed("contacts", &[("email", "kept@example.com")]);
    for i in 0..150 {
        let id = fake.seed("contacts", &[("email", &format!("b{i}@example.com"))]);
        fake.archive("contacts", id);
    }
    fake.archive("contacts", gone);
    let server = start(&fake).await;
    let c = connector(
        &server,
        json!({"connector": "hubspot", "object": "contacts"}),
    )
    .await;
    let schema = c.describe().await.unwrap();
    assert!(schema.capabilities.reports_deletes);
    let src = c.source().unwrap();
    let mut req = ReadRequest {
        since: Some(since),
        after: None,
        limit: 100,
        keys_only: true,
    };
    let (mut deleted, mut live) = (Vec::new(), Vec::new());
    loop {
        let page = src.read_page(&schema, &req).await.unwrap();
        for r in page.records {
            if r.deleted {
                deleted.push(r.key.0);
            } else {
                live.push(r.key.0);
            }
        }
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    assert!(deleted.contains(&gone.to_string()));
    assert!(!deleted.contains(&old.to_string()), "archived before since");
    assert_eq!(deleted.len(), 151, "every page of the bin");
    assert!(live.contains(&kept.to_string()));
    assert_eq!(fake.calls(CallKind::List), 2, "⌈152/100⌉ pages of the bin");
    // An ordinary incremental read does not read the bin.
    let before = fake.calls(CallKind::List);
    let page = src
        .read_page(
            &schema,
            &ReadRequest {
                keys_only: false,
                after: None,
                ..req
            },
        )
        .await
        .unwrap();
    assert!(page.records.iter().all(|r| !r.deleted));
    assert!(page.next.is_none());
    assert_eq!(fake.calls(CallKind::List), before);
}
