//! Contract: the HubSpot connector's real traffic goes through Stoplight Prism validating every
//! request it sends, and every answer the HubSpot fake gives, against our hand-written
//! description of exactly the CRM v3 endpoints the connector uses
//! (`tests/contracts/hubspot/crm-objects-v3.yaml`; see the README there for why it is ours).
//! Every call kind is exercised: list, search, batch read (by id and by a unique property),
//! batch upsert, create, update and archive, and 207 partial failures.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use syncctl_core::{
    BuildContext, NaturalKey, ReadRequest, RecordKey, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::hubspot::HubSpotFake;
use syncctl_testkit::prism::PrismProxy;

const TOKEN: &str = "pat-na1-contract-token";

fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_traffic_conforms_to_our_crm_v3_description() {
    let fake = HubSpotFake::new(TOKEN);
    let ada = fake.seed(
        "contacts",
        &[
            ("email", "ada@example.com"),
            ("firstname", "Ada"),
            ("lastname", "Lovelace"),
        ],
    );
    let grace = fake.seed(
        "contacts",
        &[("email", "grace@example.com"), ("firstname", "Grace")],
    );
    for i in 0..3 {
        fake.seed(
            "contacts",
            &[("email", &format!("p{i}@example.com")), ("firstname", "P")],
        );
    }
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start("syncctl:hubspot/crm-objects-v3.yaml", &server.url()).await;
    let url = prism.url();
    let ctx = BuildContext::new(".").with_env(move |k| match k {
        "HUBSPOT_API_TOKEN" => Some(TOKEN.to_owned()),
        "HUBSPOT_BASE_URL" => Some(url.clone()),
        _ => None,
    });
    let c = (syncctl_hubspot::FACTORY.build)(
        ctx,
        json!({"connector": "hubspot", "object": "contacts", "properties": ["email", "firstname", "lastname", "phone"]}),
    )
    .await
    .unwrap();
    c.check().await.unwrap();
    let s = c.describe().await.unwrap();
    let src = c.source().unwrap();

    // Full scan in pages of 2 (list with `after`), then an incremental read (search).
    let mut req = ReadRequest::full(2);
    let mut seen = 0;
    loop {
        let page = src.read_page(&s, &req).await.unwrap();
        seen += page.records.len();
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, 5);
    let since = ReadRequest {
        since: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        ..ReadRequest::full(100)
    };
    assert_eq!(src.read_page(&s, &since).await.unwrap().records.len(), 5);

    // batch/read by id (one id missing: a 207), by the unique email, and a search lookup.
    let got = src
        .read_keys(
            &s,
            &[RecordKey(ada.to_string()), RecordKey::from("999999999")],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let by_email = src
        .lookup(&s, "email", &[json!("grace@example.com")])
        .await
        .unwrap();
    assert_eq!(by_email.len(), 1);
    let by_name = src.lookup(&s, "firstname", &[json!("P")]).await.unwrap();
    assert_eq!(by_name.len(), 3);

    // Writes: upserts on email (one new, one existing), a plain create, an update, an update
    // of a missing id (207 OBJECT_NOT_FOUND), an invalid email (207 VALIDATION_ERROR), archive.
    let ops = vec![
        WriteOp::Create {
            token: "t-new".into(),
            natural_key: Some(NaturalKey {
                field: "email".into(),
                value: json!("new@example.com"),
            }),
            fields: fields(&[
                ("email", json!("new@example.com")),
                ("firstname", json!("New")),
            ]),
        },
        WriteOp::Create {
            token: "t-ada".into(),
            natural_key: Some(NaturalKey {
                field: "email".into(),
                value: json!("ada@example.com"),
            }),
            fields: fields(&[
                ("email", json!("ada@example.com")),
                ("phone", json!("+44 1")),
            ]),
        },
        WriteOp::Create {
            token: "t-bad".into(),
            natural_key: Some(NaturalKey {
                field: "email".into(),
                value: json!("not-an-email"),
            }),
            fields: fields(&[("email", json!("not-an-email"))]),
        },
        WriteOp::Update {
            key: RecordKey(grace.to_string()),
            fields: fields(&[("lastname", json!("Hopper"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Update {
            key: RecordKey::from("999999999"),
            fields: fields(&[("lastname", json!("Nobody"))]),
            expected_updated_at: None,
            expected_version: None,
        },
    ];
    let sink = c.sink().unwrap();
    let ctx = WriteContext::new("contract", "run");
    let out = sink.write(&s, &ops, &ctx).await.unwrap();
    assert!(
        matches!(out[0], WriteOutcome::Applied { created: true, .. }),
        "{out:?}"
    );
    assert!(matches!(out[1], WriteOutcome::Applied { .. }), "{out:?}");
    assert!(matches!(out[2], WriteOutcome::Failed(_)), "{out:?}");
    assert!(matches!(out[3], WriteOutcome::Applied { .. }), "{out:?}");
    assert!(matches!(out[4], WriteOutcome::NotFound { .. }), "{out:?}");
    let plain = sink
        .write(
            &s,
            &[WriteOp::Create {
                token: "t-plain".into(),
                natural_key: None,
                fields: fields(&[("email", json!("plain@example.com"))]),
            }],
            &ctx,
        )
        .await
        .unwrap();
    assert!(
        matches!(plain[0], WriteOutcome::Applied { created: true, .. }),
        "{plain:?}"
    );
    let archived = sink
        .write(
            &s,
            &[WriteOp::Delete {
                key: RecordKey(grace.to_string()),
            }],
            &ctx,
        )
        .await
        .unwrap();
    assert!(
        matches!(archived[0], WriteOutcome::Applied { .. }),
        "{archived:?}"
    );
    assert!(fake.get("contacts", grace).unwrap().archived);

    // Deals with their associations: v4 batch read (200 and 207 with NO_ASSOCIATIONS_FOUND)
    // and the line items' batch read.
    let won = fake.seed("deals", &[("dealname", "Won"), ("dealstage", "closedwon")]);
    let bare = fake.seed("deals", &[("dealname", "Bare")]);
    let line = fake.seed(
        "line_items",
        &[("name", "Widget"), ("quantity", "2"), ("price", "10")],
    );
    fake.associate("deals", won, "contacts", ada);
    fake.associate("deals", won, "line_items", line);
    let url = prism.url();
    let ctx = BuildContext::new(".").with_env(move |k| match k {
        "HUBSPOT_API_TOKEN" => Some(TOKEN.to_owned()),
        "HUBSPOT_BASE_URL" => Some(url.clone()),
        _ => None,
    });
    let deals = (syncctl_hubspot::FACTORY.build)(
        ctx,
        json!({"connector": "hubspot", "object": "deals", "associations": ["contacts", "line_items"]}),
    )
    .await
    .unwrap();
    let ds = deals.describe().await.unwrap();
    let recs = deals
        .source()
        .unwrap()
        .read_keys(
            &ds,
            &[RecordKey(won.to_string()), RecordKey(bare.to_string())],
        )
        .await
        .unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[0].fields["associations.contacts"],
        json!([ada.to_string()])
    );
    assert_eq!(recs[1].fields["associations.contacts"], json!([]));

    // A delete-detection read: ids changed since (search), then the recycle bin.
    let mut req = ReadRequest {
        since: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        after: None,
        limit: 100,
        keys_only: true,
    };
    let mut deleted = Vec::new();
    loop {
        let page = c.source().unwrap().read_page(&s, &req).await.unwrap();
        deleted.extend(
            page.records
                .iter()
                .filter(|r| r.deleted)
                .map(|r| r.key.0.clone()),
        );
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    assert_eq!(deleted, [grace.to_string()]);
    assert!(!server.requests().is_empty());
    prism.assert_no_violations();
}
