//! Proves the contract harness itself: a conforming exchange passes Prism cleanly, an off-spec
//! response from a fake and an off-spec request from a client are both caught (the canary).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use syncctl_http::{BearerToken, HttpClient, Request, RetryPolicy};
use syncctl_testkit::FakeServer;
use syncctl_testkit::prism::PrismProxy;

const HANDLE: &str = "e4ce975e-f7ff-4b5e-b15e-bf25f59371ae";

/// A minimal stand-in for the Snowflake statement-status endpoint; `on_spec` picks the shape.
fn fake(on_spec: bool) -> Router {
    Router::new().route(
        "/api/v2/statements/{handle}",
        get(move || async move {
            let handle = if on_spec {
                serde_json::json!(HANDLE)
            } else {
                serde_json::json!(42)
            };
            (
                axum::http::StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "code": "333334",
                    "message": "Asynchronous execution in progress.",
                    "statementHandle": handle,
                    "statementStatusUrl": format!("http://127.0.0.1/api/v2/statements/{HANDLE}"),
                })),
            )
        }),
    )
}

fn client(url: &str) -> HttpClient {
    let auth = BearerToken::new("snowflake", SecretString::from("test-jwt")).with_header(
        "x-snowflake-authorization-token-type".parse().unwrap(),
        "KEYPAIR_JWT".parse().unwrap(),
    );
    HttpClient::builder("snowflake", url)
        .auth(Arc::new(auth))
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn prism_passes_a_conforming_exchange_and_flags_off_spec_ones() {
    let good = FakeServer::start(fake(true)).await;
    let prism = PrismProxy::start("snowflake/sqlapi.yaml", &good.url()).await;
    let http = client(&prism.url());
    let resp = http
        .send_raw(Request::get(format!("/api/v2/statements/{HANDLE}")))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 202, "{}", resp.text());
    prism.assert_no_violations();
    assert_eq!(
        good.requests().len(),
        1,
        "Prism forwarded the request to the fake"
    );

    // Canary: the fake answers off-spec (statementHandle is a number) and Prism says so.
    let bad = FakeServer::start(fake(false)).await;
    let prism = PrismProxy::start("snowflake/sqlapi.yaml", &bad.url()).await;
    let resp = client(&prism.url())
        .send_raw(Request::get(format!("/api/v2/statements/{HANDLE}")))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 500, "{}", resp.text());
    assert!(resp.text().contains("VIOLATIONS"), "{}", resp.text());
    assert!(
        !prism.violations().is_empty(),
        "the harness must see the violation in Prism's log: {:?}",
        prism.log()
    );

    // Canary: the client sends an off-spec request (requestId must be a UUID); Prism refuses
    // it and does not forward it.
    let before = bad.requests().len();
    let resp = client(&prism.url())
        .send_raw(
            Request::get(format!("/api/v2/statements/{HANDLE}")).query("requestId", "not-a-uuid"),
        )
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 422, "{}", resp.text());
    assert_eq!(bad.requests().len(), before);
}
