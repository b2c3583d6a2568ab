//! Contract: every Sheets call the connector makes goes through Stoplight Prism validating it
//! (and the fake's answers) against Google's Sheets v4 description
//! (`google/derived/sheets.v4.openapi3.json`, converted from the discovery document). The
//! token endpoint is not part of that description and is called on the fake directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use syncctl_core::{
    Connector, NaturalKey, ReadRequest, RecordKey, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_sheets::GoogleSheets;
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::sheets::{SheetsFake, service_account_json};
use syncctl_testkit::prism::PrismProxy;

const ID: &str = "1ContractSheet_x";

fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheets_traffic_conforms_to_the_sheets_v4_description() {
    let fake = SheetsFake::new(ID).tab(
        "My Contacts",
        vec![
            vec![json!("email"), json!("name"), json!("joined")],
            vec![json!("a@x.io"), json!("Al"), json!(46053)],
            vec![json!("b@x.io"), json!("Bo")],
        ],
        3,
    );
    let server = FakeServer::start(fake.router()).await;
    let prism = PrismProxy::start("google/derived/sheets.v4.openapi3.json", &server.url()).await;
    let creds = service_account_json(&format!("{}/token", server.url()));
    let c = GoogleSheets::from_settings(
        json!({
            "connector": "google_sheets",
            "object": "My Contacts",
            "key_column": "email",
            "column_types": {"joined": "date"},
            "spreadsheet_id": ID,
            "base_url": prism.url(),
            "credentials_json": creds,
        }),
        Path::new("."),
        &|_| None,
        None,
    )
    .unwrap();
    c.check().await.unwrap();
    let s = c.describe().await.unwrap();
    let src = c.source().unwrap();
    let page = src.read_page(&s, &ReadRequest::full(10)).await.unwrap();
    assert_eq!(page.records.len(), 2);
    let ops = vec![
        WriteOp::Update {
            key: RecordKey::from("a@x.io"),
            fields: fields(&[("name", json!("Alice")), ("joined", json!("2026-02-01"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Create {
            token: "t".into(),
            natural_key: Some(NaturalKey {
                field: "email".into(),
                value: json!("c@x.io"),
            }),
            fields: fields(&[("email", json!("c@x.io")), ("name", json!("=cell"))]),
        },
        WriteOp::Delete {
            key: RecordKey::from("b@x.io"),
        },
    ];
    let out = c
        .sink()
        .unwrap()
        .write(&s, &ops, &WriteContext::new("contract", "run"))
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. })),
        "{out:?}"
    );
    let back = src
        .read_keys(&s, &[RecordKey::from("a@x.io"), RecordKey::from("c@x.io")])
        .await
        .unwrap();
    assert_eq!(back.len(), 2);
    // Grown with appendDimension (spreadsheets.batchUpdate), written with values.batchUpdate.
    assert!(fake.row_count("My Contacts") >= 4);
    assert!(!server.requests().is_empty());
    prism.assert_no_violations();
}
