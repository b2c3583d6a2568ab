//! The typed client against the stateful QuickBooks fake: paging, CDC, batch replay,
//! SyncToken and DisplayName faults, token expiry with rotating refresh tokens, throttling.

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;
use syncctl_core::{CredentialStore, MemoryCredentials};
use syncctl_http::{RecordingSleeper, RetryPolicy};
use syncctl_quickbooks::client::BatchAnswer;
use syncctl_quickbooks::settings::RefreshSettings;
use syncctl_quickbooks::{ClientOptions, Entity, QuickBooksClient, QuickBooksSettings};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};

fn settings(server: &FakeServer, token: Option<&str>, refresh: Option<&str>) -> QuickBooksSettings {
    QuickBooksSettings {
        realm_id: DEMO_REALM.into(),
        base_url: server.url(),
        access_token: token.map(|t| SecretString::from(t.to_owned())),
        refresh: refresh.map(|r| RefreshSettings {
            client_id: "app".into(),
            client_secret: SecretString::from("app-secret".to_owned()),
            refresh_token: SecretString::from(r.to_owned()),
            token_url: format!("{}/oauth2/v1/tokens/bearer", server.url()),
        }),
    }
}

fn options(store: Arc<dyn CredentialStore>) -> ClientOptions {
    ClientOptions {
        sleeper: Arc::new(RecordingSleeper::default()),
        credentials: store,
        retry: RetryPolicy {
            max_retries: 4,
            ..ClientOptions::default().retry
        },
        ..ClientOptions::default()
    }
}

fn client(server: &FakeServer) -> QuickBooksClient {
    QuickBooksClient::new(
        &settings(server, Some(DEMO_ACCESS_TOKEN), None),
        options(Arc::new(MemoryCredentials::default())),
    )
    .expect("client builds")
}

#[tokio::test]
async fn queries_page_with_startposition_and_every_call_carries_minorversion_and_accept() {
    let fake = QuickBooksFake::new();
    for i in 0..5 {
        fake.insert(
            "Customer",
            json!({"GivenName": format!("P{i}"), "FamilyName": "X"}),
        );
    }
    fake.edit("Customer", "2", json!({"Active": false}));
    let server = FakeServer::start(fake.router()).await;
    let c = client(&server);
    let p1 = c
        .query(
            Entity::Customer,
            "SELECT * FROM Customer ORDERBY Id STARTPOSITION 1 MAXRESULTS 2",
        )
        .await
        .unwrap();
    assert_eq!(p1.objects.len(), 2);
    assert_eq!(p1.objects[0]["Id"], json!("1"));
    assert_eq!(
        p1.objects[1]["Id"],
        json!("3"),
        "inactive customers are not listed by default"
    );
    let all = c
        .query(
            Entity::Customer,
            "SELECT * FROM Customer WHERE Active IN (true, false) STARTPOSITION 1 MAXRESULTS 1000",
        )
        .await
        .unwrap();
    assert_eq!(all.objects.len(), 5);
    let none = c
        .query(
            Entity::Customer,
            "SELECT * FROM Customer STARTPOSITION 100 MAXRESULTS 10",
        )
        .await
        .unwrap();
    assert!(
        none.objects.is_empty(),
        "an empty QueryResponse is no error"
    );
    let err = c
        .query(
            Entity::Customer,
            "SELECT * FROM Customer WHERE a = 'x' OR b = 'y'",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("code 4000"), "{err}");
    for r in server.requests() {
        assert!(
            r.query.contains("minorversion=75"),
            "{} {}",
            r.path,
            r.query
        );
        assert_eq!(r.header("accept"), Some("application/json"));
    }
    assert_eq!(c.stats().queries, 4);
}

#[tokio::test]
async fn cdc_reports_changes_deactivations_and_deletes() {
    let fake = QuickBooksFake::new();
    let cust = fake.insert("Customer", json!({"DisplayName": "Acme"}));
    let item = fake.insert("Item", json!({"Name": "Widget", "Type": "Service"}));
    let inv = fake.insert("Invoice", json!({"CustomerRef": {"value": cust}, "Line": [{"Amount": 10, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": item}}}]}));
    let since = chrono::Utc::now() - chrono::Duration::minutes(5);
    fake.edit("Customer", &cust, json!({"Active": false}));
    fake.delete_invoice(&inv);
    let server = FakeServer::start(fake.router()).await;
    let c = client(&server);
    let r = c
        .cdc(&[Entity::Customer, Entity::Item, Entity::Invoice], since)
        .await
        .unwrap();
    let by: Vec<_> = r
        .objects
        .iter()
        .map(|(e, o)| {
            (
                e.name(),
                o["Id"].as_str().unwrap().to_owned(),
                o.get("status").cloned(),
            )
        })
        .collect();
    assert!(by.contains(&("Customer", cust.clone(), None)), "{by:?}");
    assert!(by.contains(&("Item", item, None)));
    assert!(
        by.contains(&("Invoice", inv, Some(json!("Deleted")))),
        "{by:?}"
    );
    assert_eq!(c.stats().cdc, 1);
    let old = c
        .cdc(
            &[Entity::Customer],
            chrono::Utc::now() - chrono::Duration::days(31),
        )
        .await
        .unwrap_err();
    assert!(old.to_string().contains("30 days"), "{old}");
}

#[tokio::test]
async fn a_replayed_batch_returns_the_original_answer_and_creates_nothing_twice() {
    let fake = QuickBooksFake::new();
    let server = FakeServer::start(fake.router()).await;
    let c = client(&server);
    let items = vec![
        json!({"bId": "0", "operation": "create", "Customer": {"DisplayName": "Ann Lee", "PrimaryEmailAddr": {"Address": "ann@x.com"}}}),
        json!({"bId": "1", "operation": "create", "Customer": {"DisplayName": "Bob Ray"}}),
    ];
    let first = c.batch(items.clone(), "run-abc-0001").await.unwrap();
    let second = c.batch(items.clone(), "run-abc-0001").await.unwrap();
    let ids = |a: &[(String, BatchAnswer)]| -> Vec<String> {
        a.iter()
            .map(|(_, x)| match x {
                BatchAnswer::Entity(e) => e["Id"].as_str().unwrap().to_owned(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(fake.all("Customer").len(), 2);
    assert_eq!(fake.applied_ops(), 2);
    // A new request id with the same names clashes: 6240 per item, the batch itself succeeds.
    let third = c.batch(items, "run-abc-0002").await.unwrap();
    for (_, a) in &third {
        let BatchAnswer::Fault(f) = a else {
            panic!("{a:?}")
        };
        assert_eq!(f.code(), "6240");
    }
    let too_many: Vec<_> = (0..31)
        .map(|i| json!({"bId": i.to_string(), "operation": "create", "Customer": {"DisplayName": format!("N{i}")}}))
        .collect();
    assert!(
        c.batch(too_many, "x")
            .await
            .unwrap_err()
            .to_string()
            .contains("at most 30")
    );
}

#[tokio::test]
async fn stale_synctokens_fail_with_5010_and_sparse_updates_keep_other_fields() {
    let fake = QuickBooksFake::new();
    let id = fake.insert(
        "Customer",
        json!({"GivenName": "Ann", "FamilyName": "Lee", "CompanyName": "Acme"}),
    );
    fake.edit("Customer", &id, json!({"Notes": "edited by someone else"}));
    let server = FakeServer::start(fake.router()).await;
    let c = client(&server);
    let stale = c
        .batch(vec![json!({"bId": "0", "operation": "update", "Customer": {"Id": id, "SyncToken": "0", "sparse": true, "GivenName": "Anna"}})], "r1")
        .await
        .unwrap();
    let BatchAnswer::Fault(f) = &stale[0].1 else {
        panic!("{stale:?}")
    };
    assert_eq!(f.code(), "5010");
    let ok = c
        .batch(vec![json!({"bId": "0", "operation": "update", "Customer": {"Id": id, "SyncToken": "1", "sparse": true, "GivenName": "Anna"}})], "r2")
        .await
        .unwrap();
    let BatchAnswer::Entity(e) = &ok[0].1 else {
        panic!("{ok:?}")
    };
    assert_eq!(e["SyncToken"], json!("2"));
    assert_eq!(e["GivenName"], json!("Anna"));
    assert_eq!(
        e["CompanyName"],
        json!("Acme"),
        "sparse update keeps the rest"
    );
    assert_eq!(e["Notes"], json!("edited by someone else"));
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_is_persisted() {
    let fake = QuickBooksFake::new().with_oauth_client("app", "app-secret", "refresh-0");
    let server = FakeServer::start(fake.router()).await;
    let store: Arc<dyn CredentialStore> = Arc::new(MemoryCredentials::default());
    let c = QuickBooksClient::new(
        &settings(&server, Some(DEMO_ACCESS_TOKEN), Some("refresh-0")),
        options(store.clone()),
    )
    .unwrap();
    c.company_info().await.unwrap();
    assert_eq!(c.refresh_count(), 0);
    fake.expire_access_tokens();
    c.company_info().await.unwrap();
    assert_eq!(c.refresh_count(), 1);
    let valid = fake.valid_refresh_tokens();
    assert_eq!(valid.len(), 1);
    assert_ne!(valid[0], "refresh-0", "Intuit rotated the refresh token");
    let stored = store
        .load("quickbooks:app:9341453050298361:refresh_token")
        .await
        .unwrap()
        .expect("rotated token stored");
    assert!(secrecy::ExposeSecret::expose_secret(&stored).contains(&valid[0]));

    // The next run starts with the same configured (now dead) refresh token and no access
    // token: it must use the stored one.
    let next = QuickBooksClient::new(
        &settings(&server, None, Some("refresh-0")),
        options(store.clone()),
    )
    .unwrap();
    next.company_info().await.unwrap();
    assert_eq!(fake.tokens_issued(), 2);

    // Without the store the configured token is dead: a clear auth error, no secret in it.
    let lost = QuickBooksClient::new(
        &settings(&server, None, Some("refresh-0")),
        options(Arc::new(MemoryCredentials::default())),
    )
    .unwrap();
    let e = lost.company_info().await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("invalid_grant") && msg.contains("QUICKBOOKS_REFRESH_TOKEN"),
        "{msg}"
    );
    assert!(
        !msg.contains("refresh-0") && !msg.contains("app-secret"),
        "{msg}"
    );
    assert_eq!(
        syncctl_core::Classified::class(&e),
        syncctl_core::ErrorClass::Auth
    );
}

#[tokio::test]
async fn an_access_token_alone_fails_clearly_once_it_expires() {
    let fake = QuickBooksFake::new();
    let server = FakeServer::start(fake.router()).await;
    let c = client(&server);
    fake.expire_access_tokens();
    let e = c.company_info().await.unwrap_err();
    assert_eq!(
        syncctl_core::Classified::class(&e),
        syncctl_core::ErrorClass::Auth,
        "{e}"
    );
}

#[tokio::test]
async fn throttling_and_5xx_bursts_are_retried() {
    let fake = QuickBooksFake::new();
    fake.insert("Customer", json!({"DisplayName": "A"}));
    fake.throttle_next(2);
    fake.fail_next(&[503]);
    let server = FakeServer::start(fake.router()).await;
    let c = client(&server);
    let p = c
        .query(
            Entity::Customer,
            "SELECT * FROM Customer STARTPOSITION 1 MAXRESULTS 10",
        )
        .await
        .unwrap();
    assert_eq!(p.objects.len(), 1);
    assert_eq!(fake.throttled(), 2);
    // Beyond the retries: a typed throttling error, transient.
    fake.throttle_next(10);
    let e = c
        .query(
            Entity::Customer,
            "SELECT * FROM Customer STARTPOSITION 1 MAXRESULTS 10",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, syncctl_quickbooks::QuickBooksError::Throttled { .. }),
        "{e}"
    );
    assert_eq!(
        syncctl_core::Classified::class(&e),
        syncctl_core::ErrorClass::Transient
    );
}

#[tokio::test]
async fn the_fake_enforces_the_batch_rate_and_the_client_stays_under_it() {
    // 40 batch requests per (scaled) minute: the client's bucket keeps under it.
    let fake = QuickBooksFake::new().time_scale(600.0);
    let server = FakeServer::start(fake.router()).await;
    let c = QuickBooksClient::new(
        &settings(&server, Some(DEMO_ACCESS_TOKEN), None),
        ClientOptions {
            limits: syncctl_quickbooks::Limits::default().scaled(600.0),
            ..options(Arc::new(MemoryCredentials::default()))
        },
    )
    .unwrap();
    for i in 0..60 {
        let items = vec![
            json!({"bId": "0", "operation": "create", "Customer": {"DisplayName": format!("C{i}")}}),
        ];
        c.batch(items, &format!("rate-{i}")).await.unwrap();
    }
    assert_eq!(
        fake.throttled(),
        0,
        "the client stayed under 40 batches per minute"
    );
    assert_eq!(fake.all("Customer").len(), 60);
}

#[tokio::test]
async fn two_runs_sharing_the_refresh_chain_use_each_others_rotated_tokens() {
    let fake = QuickBooksFake::new().with_oauth_client("app", "app-secret", "refresh-0");
    let server = FakeServer::start(fake.router()).await;
    let store: Arc<dyn CredentialStore> = Arc::new(MemoryCredentials::default());
    // Two syncs of the same app and company on one state store, running side by side.
    let a = QuickBooksClient::new(
        &settings(&server, None, Some("refresh-0")),
        options(store.clone()),
    )
    .unwrap();
    let b = QuickBooksClient::new(
        &settings(&server, None, Some("refresh-0")),
        options(store.clone()),
    )
    .unwrap();
    a.company_info().await.unwrap();
    b.company_info().await.unwrap();
    fake.expire_access_tokens();
    // `a` refreshes again after `b` rotated the token `a` last saw: it must read the newest.
    a.company_info().await.unwrap();
    b.company_info().await.unwrap();
    assert_eq!(fake.tokens_issued(), 4);
    assert_eq!(fake.valid_refresh_tokens().len(), 1);
}
