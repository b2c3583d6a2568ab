//! Contract: every QuickBooks body syncctl sends and every body the fake answers uses only
//! element and attribute names (and value types) that Intuit's XSDs define for that entity
//! (`tests/contracts/vendor/quickbooks`, see SOURCES.md there).
//!
//! 401 answers are not checked: Intuit sends them lower-cased (`fault`/`error`), outside the
//! schema, and the client only reads their status.

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Value, json};
use syncctl_http::RecordingSleeper;
use syncctl_quickbooks::{ClientOptions, Entity, QuickBooksClient, QuickBooksSettings};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};
use syncctl_testkit::xsd;

fn client(server: &FakeServer) -> QuickBooksClient {
    QuickBooksClient::new(
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
    .expect("client builds")
}

/// Every problem in the recorded traffic: batch request bodies against
/// `IntuitBatchRequest`, every JSON answer against `IntuitResponse`.
fn traffic_problems(server: &FakeServer, fake: &QuickBooksFake) -> Vec<String> {
    let model = xsd::quickbooks();
    let mut problems = Vec::new();
    let mut checked = 0;
    for r in server.requests() {
        if r.path.ends_with("/batch") {
            checked += 1;
            problems.extend(
                model
                    .check("IntuitBatchRequest", &r.json())
                    .into_iter()
                    .map(|p| format!("request {}: {p}", r.path)),
            );
        }
    }
    for x in fake.responses() {
        if x.status == 401 {
            continue;
        }
        checked += 1;
        problems.extend(
            model
                .check("IntuitResponse", &x.body)
                .into_iter()
                .map(|p| format!("response {} {}: {p}", x.status, x.path)),
        );
    }
    assert!(checked > 5, "too little traffic checked ({checked})");
    problems
}

#[tokio::test]
async fn client_requests_and_fake_responses_match_intuits_schemas() {
    let fake = QuickBooksFake::new();
    let server = FakeServer::start(fake.router()).await;
    let c = client(&server);
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let created = c
        .batch(
            vec![
                json!({"bId": "0", "operation": "create", "Customer": {
                    "DisplayName": "Ann Lee", "GivenName": "Ann", "FamilyName": "Lee", "CompanyName": "Acme",
                    "PrimaryEmailAddr": {"Address": "ann@x.com"}, "PrimaryPhone": {"FreeFormNumber": "+14155550100"},
                    "BillAddr": {"Line1": "1 Main St", "City": "Oslo", "PostalCode": "0150", "Country": "NO"}}}),
                json!({"bId": "1", "operation": "create", "Customer": {"DisplayName": "Bob Ray"}}),
            ],
            "xsd-1",
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    c.batch(
        vec![json!({"bId": "0", "operation": "create", "Item": {"Name": "Consulting", "Type": "Service", "UnitPrice": 150, "IncomeAccountRef": {"value": "1"}}})],
        "xsd-2",
    )
    .await
    .unwrap();
    c.batch(
        vec![json!({"bId": "0", "operation": "create", "Invoice": {"CustomerRef": {"value": "1"}, "TxnDate": "2026-12-01",
            "Line": [{"Amount": 300, "DetailType": "SalesItemLineDetail", "Description": "Two hours",
                      "SalesItemLineDetail": {"ItemRef": {"value": "3"}, "Qty": 2, "UnitPrice": 150}}]}})],
        "xsd-3",
    )
    .await
    .unwrap();
    // Sparse update, stale token (5010), duplicate name (6240), delete, query item in a batch.
    c.batch(
        vec![
            json!({"bId": "0", "operation": "update", "Customer": {"Id": "1", "SyncToken": "0", "sparse": true, "Notes": "vip", "Active": true}}),
            json!({"bId": "1", "operation": "update", "Customer": {"Id": "2", "SyncToken": "9", "sparse": true, "Notes": "x"}}),
            json!({"bId": "2", "operation": "create", "Customer": {"DisplayName": "Bob Ray"}}),
            json!({"bId": "3", "operation": "delete", "Invoice": {"Id": "4", "SyncToken": "0"}}),
            json!({"bId": "4", "Query": "SELECT * FROM Item STARTPOSITION 1 MAXRESULTS 10"}),
        ],
        "xsd-4",
    )
    .await
    .unwrap();
    for e in Entity::ALL {
        c.query(
            e,
            &format!("SELECT * FROM {} STARTPOSITION 1 MAXRESULTS 1000", e.name()),
        )
        .await
        .unwrap();
    }
    c.query(
        Entity::Customer,
        "SELECT * FROM Customer WHERE Id = '999' STARTPOSITION 1 MAXRESULTS 10",
    )
    .await
    .unwrap();
    c.cdc(&Entity::ALL, since).await.unwrap();
    c.company_info().await.unwrap();
    let _ = c
        .query(Entity::Customer, "SELECT * FROM Customer WHERE")
        .await;
    let problems = traffic_problems(&server, &fake);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_entity_fields_syncctl_maps_exist_in_the_schema() {
    let model = xsd::quickbooks();
    for e in Entity::ALL {
        let mut body = serde_json::Map::new();
        for f in e.fields() {
            let sample = match f.kind {
                syncctl_quickbooks::entity::Kind::Text => json!("x"),
                syncctl_quickbooks::entity::Kind::Decimal => json!(1.5),
                syncctl_quickbooks::entity::Kind::Boolean => json!(true),
                syncctl_quickbooks::entity::Kind::Date => json!("2026-12-01"),
                syncctl_quickbooks::entity::Kind::Timestamp => json!("2026-12-01T10:00:00-08:00"),
                syncctl_quickbooks::entity::Kind::Json => {
                    json!([{"Amount": 1, "DetailType": "SalesItemLineDetail"}])
                }
            };
            let sample = if f.name == "Type" {
                json!("Service")
            } else {
                sample
            };
            syncctl_quickbooks::entity::set_path(&mut body, f.name, sample);
        }
        let problems = model.check_element(e.name(), &Value::Object(body));
        assert!(problems.is_empty(), "{}: {problems:#?}", e.name());
    }
}

#[test]
fn the_check_can_fail() {
    let model = xsd::quickbooks();
    let p = model.check_element(
        "Customer",
        &json!({"DisplayName": "A", "PrimaryEmail": {"Address": "a@x.com"}, "Active": "yes", "BillAddr": {"Town": "Oslo"}}),
    );
    assert_eq!(p.len(), 3, "{p:#?}");
    let p = model.check(
        "IntuitBatchRequest",
        &json!({"BatchItemRequest": [{"bId": "0", "operation": "upsert", "Customer": {}}]}),
    );
    assert!(p.iter().any(|x| x.contains("upsert")), "{p:#?}");
    let p = model.check(
        "IntuitResponse",
        &json!({"QueryResponse": {"Customer": [{"Id": "1", "Foo": 1}], "startPosition": "1"}, "time": "yesterday"}),
    );
    assert_eq!(p.len(), 3, "{p:#?}");
}
