//! HTTP core behaviour against a real loopback fake: request counts, retry delays (recorded,
//! never slept), auth refresh and the breaker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use syncctl_core::{Classified, ErrorClass};
use syncctl_http::{
    AccessToken, BearerToken, BreakerConfig, CircuitBreaker, ClientCredentials, CredentialStyle,
    HttpClient, HttpError, RecordingSleeper, RefreshingToken, Request, RetryPolicy, TokenFetcher,
};
use syncctl_testkit::{FakeServer, Fault};

fn ok_router() -> Router {
    Router::new()
        .route(
            "/items",
            get(|| async { Json(serde_json::json!({"items": [1, 2]})) }),
        )
        .route(
            "/items",
            post(|| async { (StatusCode::CREATED, Json(serde_json::json!({"id": 1}))) }),
        )
}

fn client(url: &str, sleeper: &Arc<RecordingSleeper>) -> HttpClient {
    HttpClient::builder("fake", url)
        .retry(RetryPolicy {
            max_retries: 3,
            ..RetryPolicy::default()
        })
        .sleeper(sleeper.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn get_is_retried_on_5xx_until_it_succeeds() {
    let fake = FakeServer::start(ok_router()).await;
    fake.inject_on(Some(Method::GET), "/items", Fault::status(503), 2);
    let sleeper = Arc::new(RecordingSleeper::default());
    let resp = client(&fake.url(), &sleeper)
        .send(Request::get("/items"))
        .await
        .unwrap();
    assert_eq!(resp.attempts(), 3);
    assert_eq!(fake.requests_to(&Method::GET, "/items").len(), 3);
    assert_eq!(sleeper.delays().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_exactly() {
    let fake = FakeServer::start(ok_router()).await;
    fake.inject_on(Some(Method::GET), "/items", Fault::rate_limited(7), 1);
    let sleeper = Arc::new(RecordingSleeper::default());
    client(&fake.url(), &sleeper)
        .send(Request::get("/items"))
        .await
        .unwrap();
    assert_eq!(sleeper.delays(), vec![Duration::from_secs(7)]);
}

#[tokio::test]
async fn rate_limited_after_all_retries_is_transient() {
    let fake = FakeServer::start(ok_router()).await;
    fake.inject_on(None, "/items", Fault::rate_limited(1), 10);
    let sleeper = Arc::new(RecordingSleeper::default());
    let err = client(&fake.url(), &sleeper)
        .send(Request::get("/items"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(fake.requests().len(), 4, "1 try + 3 retries");
    assert_eq!(sleeper.delays(), vec![Duration::from_secs(1); 3]);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_is_not_waited_out() {
    let fake = FakeServer::start(ok_router()).await;
    fake.inject_on(None, "/items", Fault::rate_limited(3600), 1);
    let sleeper = Arc::new(RecordingSleeper::default());
    let err = client(&fake.url(), &sleeper)
        .send(Request::get("/items"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(sleeper.delays().is_empty());
}

#[tokio::test]
async fn unsafe_post_is_never_retried_after_it_reached_the_server() {
    let fake = FakeServer::start(ok_router()).await;
    fake.inject_on(Some(Method::POST), "/items", Fault::status(503), 1);
    let sleeper = Arc::new(RecordingSleeper::default());
    let http = client(&fake.url(), &sleeper);
    let err = http
        .send(Request::post("/items").json(serde_json::json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.requests().len(), 1);

    // A lost response (server handled it, connection broke) is not retried either.
    fake.inject_on(Some(Method::POST), "/items", Fault::DropAfterHandling, 1);
    let err = http.send(Request::post("/items")).await.unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::Transport {
                not_sent: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 2);
    assert!(sleeper.delays().is_empty());
}

#[tokio::test]
async fn a_429_is_waited_out_even_for_unsafe_posts_because_nothing_was_done() {
    let fake = FakeServer::start(ok_router()).await;
    fake.inject_on(Some(Method::POST), "/items", Fault::rate_limited(4), 1);
    let sleeper = Arc::new(RecordingSleeper::default());
    client(&fake.url(), &sleeper)
        .send(Request::post("/items"))
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(sleeper.delays(), vec![Duration::from_secs(4)]);
}

#[tokio::test]
async fn keyed_and_read_only_posts_are_retried() {
    let fake = FakeServer::start(ok_router()).await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let http = client(&fake.url(), &sleeper);
    fake.inject_on(Some(Method::POST), "/items", Fault::status(502), 1);
    http.send(Request::post("/items").keyed()).await.unwrap();
    fake.inject_on(Some(Method::POST), "/items", Fault::DropAfterHandling, 1);
    http.send(Request::post("/items").retry_safe())
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn a_refused_connection_is_retried_even_for_unsafe_posts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sleeper = Arc::new(RecordingSleeper::default());
    let err = client(&format!("http://127.0.0.1:{port}"), &sleeper)
        .send(Request::post("/items"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::Transport {
                not_sent: true,
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(sleeper.delays().len(), 3);
}

// TEST-ONLY self-signed certificate for localhost and 127.0.0.1 (valid until 2126), and its
// P-256 key: trusted by nobody, it guards nothing.
const UNTRUSTED_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUEFD7JOY/l1F+e5V6y0/Ib7dapQYwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMjE0MjIwM1oYDzIxMjYxMTA4
MTQyMjAzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAT4cieFkxvwdUzvdLitfpkbHNPzVQB3SxJ7j0X+knwa8ut4hHZIuZqT
OE4U99Eouk/8aMXyOe8vTtytODCCrujao28wbTAdBgNVHQ4EFgQUhiT85BNsYleB
gTGdnUMixgrP78kwHwYDVR0jBBgwFoAUhiT85BNsYleBgTGdnUMixgrP78kwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIhAJt3VduZpcj52ynZsN41sRWGpFi4reHhTueCg888t5zfAiAj
5Ik3pRQgFef09rJ88W+0sSZUtVvLMCTcEPhWWz3Ngw==
-----END CERTIFICATE-----
";
const UNTRUSTED_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghvaO7nOyNwwwD2d0
rtf/TSs923zGRnGxt4wLDnW3pLWhRANCAAT4cieFkxvwdUzvdLitfpkbHNPzVQB3
SxJ7j0X+knwa8ut4hHZIuZqTOE4U99Eouk/8aMXyOe8vTtytODCCruja
-----END PRIVATE KEY-----
";

/// A TLS listener on 127.0.0.1 presenting [`UNTRUSTED_CERT_PEM`]; counts the connections.
async fn untrusted_tls_server() -> (u16, Arc<AtomicU32>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(UNTRUSTED_CERT_PEM.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(UNTRUSTED_KEY_PEM.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicU32::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            // The client gives up in the handshake; its outcome is the client's to report.
            let acceptor = acceptor.clone();
            tokio::spawn(async move { acceptor.accept(stream).await.is_ok() });
        }
    });
    (port, connections)
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_a_config_error_and_not_retried() {
    let (port, connections) = untrusted_tls_server().await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let err = client(&format!("https://localhost:{port}"), &sleeper)
        .send(Request::get("/items"))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Certificate { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(!err.is_retryable_kind());
    let message = err.to_string();
    assert!(
        message.contains("TLS certificate was refused") && message.contains("GET /items"),
        "{message}"
    );
    // One connection, no back-off: the same certificate would be refused again.
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(sleeper.delays().is_empty(), "{:?}", sleeper.delays());
}

#[tokio::test]
async fn client_errors_are_not_retried_and_carry_the_body() {
    let fake = FakeServer::start(Router::new().route(
        "/items",
        get(|| async {
            (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"message": "bad filter"})),
            )
        }),
    ))
    .await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let err = client(&fake.url(), &sleeper)
        .send(Request::get("/items").query("q", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
    let msg = err.to_string();
    assert!(
        msg.contains("GET /items returned HTTP 400") && msg.contains("bad filter"),
        "{msg}"
    );
    assert!(!msg.contains("q=x"), "queries stay out of messages: {msg}");
    assert_eq!(fake.requests().len(), 1);
}

/// A fetcher that hands out `tok-1`, `tok-2`, … with a fixed lifetime.
struct CountingFetcher {
    n: AtomicU32,
    lifetime: Option<Duration>,
}

#[async_trait::async_trait]
impl TokenFetcher for CountingFetcher {
    async fn fetch(&self) -> Result<AccessToken, HttpError> {
        let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AccessToken::expiring_in(
            SecretString::from(format!("tok-{n}")),
            self.lifetime,
        ))
    }
    fn method(&self) -> &'static str {
        "counting"
    }
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_resends() {
    // The server accepts only the second token it ever sees.
    let router = Router::new().route(
        "/items",
        get(|headers: axum::http::HeaderMap| async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-2") {
                (StatusCode::OK, Json(serde_json::json!({"ok": true})))
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({"message": "expired"})),
                )
            }
        }),
    );
    let fake = FakeServer::start(router).await;
    let auth = Arc::new(RefreshingToken::new(
        "fake",
        CountingFetcher {
            n: AtomicU32::new(0),
            lifetime: None,
        },
        Duration::from_secs(60),
    ));
    let http = HttpClient::builder("fake", fake.url())
        .auth(auth.clone())
        .build()
        .unwrap();
    http.send(Request::get("/items")).await.unwrap();
    assert_eq!(auth.fetch_count(), 2);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_second_401_is_an_auth_error_not_a_loop() {
    let fake = FakeServer::start(
        Router::new().route("/items", get(|| async { StatusCode::UNAUTHORIZED })),
    )
    .await;
    let auth = Arc::new(RefreshingToken::new(
        "fake",
        CountingFetcher {
            n: AtomicU32::new(0),
            lifetime: None,
        },
        Duration::from_secs(60),
    ));
    let http = HttpClient::builder("fake", fake.url())
        .auth(auth.clone())
        .build()
        .unwrap();
    let err = http.send(Request::get("/items")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    // Lifetime shorter than the lead time: every use needs a fresh token.
    let short = RefreshingToken::new(
        "fake",
        CountingFetcher {
            n: AtomicU32::new(0),
            lifetime: Some(Duration::from_secs(30)),
        },
        Duration::from_secs(60),
    );
    short.token().await.unwrap();
    short.token().await.unwrap();
    assert_eq!(short.fetch_count(), 2);
    // A long-lived token is fetched once.
    let long = RefreshingToken::new(
        "fake",
        CountingFetcher {
            n: AtomicU32::new(0),
            lifetime: Some(Duration::from_secs(3600)),
        },
        Duration::from_secs(60),
    );
    long.token().await.unwrap();
    long.token().await.unwrap();
    assert_eq!(long.fetch_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_is_renewed_when_the_clock_reaches_the_lead_time() {
    let t = RefreshingToken::new(
        "fake",
        CountingFetcher {
            n: AtomicU32::new(0),
            lifetime: Some(Duration::from_secs(180)),
        },
        Duration::from_secs(60),
    );
    t.token().await.unwrap();
    tokio::time::advance(Duration::from_secs(119)).await;
    t.token().await.unwrap();
    assert_eq!(t.fetch_count(), 1, "still 61 s left");
    tokio::time::advance(Duration::from_secs(2)).await;
    t.token().await.unwrap();
    assert_eq!(t.fetch_count(), 2, "inside the 60 s lead");
}

#[tokio::test]
async fn a_token_endpoint_error_never_carries_its_body() {
    // A proxy that echoes the submitted form: the client secret must not reach the error.
    let router = Router::new().route(
        "/token",
        post(|body: String| async move { (StatusCode::IM_A_TEAPOT, body) }),
    );
    let fake = FakeServer::start(router).await;
    let plain = HttpClient::builder("fake-auth", fake.url())
        .build()
        .unwrap();
    let cc = ClientCredentials::new(
        plain,
        "/token",
        "cid",
        SecretString::from("csecret-echoed"),
        CredentialStyle::Json,
    );
    let e = cc.fetch().await.unwrap_err();
    assert_eq!(e.status(), Some(418), "{e}");
    assert_eq!(fake.requests().len(), 1, "the endpoint was reached");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("csecret-echoed"), "{shown}");
}

#[tokio::test]
async fn client_credentials_json_and_form_styles() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let router = Router::new().route(
        "/token",
        post(|| async { Json(serde_json::json!({"access_token": "minted", "token_type": "Bearer", "expires_in": 180})) }),
    );
    let fake = FakeServer::start(router).await;
    let plain = HttpClient::builder("fake-auth", fake.url())
        .build()
        .unwrap();

    let json = ClientCredentials::new(
        plain.clone(),
        "/token",
        "cid",
        SecretString::from("csecret"),
        CredentialStyle::Json,
    );
    let tok = json.fetch().await.unwrap();
    assert!(tok.expires_at.is_some());
    let form = ClientCredentials::new(
        plain,
        "/token",
        "cid",
        SecretString::from("csecret"),
        CredentialStyle::FormBasic {
            scope: Some("all-apis".into()),
        },
    );
    form.fetch().await.unwrap();

    let reqs = fake.requests();
    seen.lock()
        .unwrap()
        .extend(reqs.iter().map(|r| r.path.clone()));
    assert_eq!(
        reqs[0].json(),
        serde_json::json!({"client_id": "cid", "client_secret": "csecret", "grant_type": "client_credentials"})
    );
    assert_eq!(
        std::str::from_utf8(&reqs[1].body).unwrap(),
        "grant_type=client_credentials&scope=all-apis"
    );
    assert_eq!(
        reqs[1].header("authorization"),
        Some("Basic Y2lkOmNzZWNyZXQ=")
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn refused_client_credentials_are_an_auth_error() {
    let fake = FakeServer::start(
        Router::new().route("/token", post(|| async { StatusCode::UNAUTHORIZED })),
    )
    .await;
    let plain = HttpClient::builder("fake-auth", fake.url())
        .build()
        .unwrap();
    let cc = ClientCredentials::new(
        plain,
        "/token",
        "cid",
        SecretString::from("csecret"),
        CredentialStyle::Json,
    );
    let err = cc.fetch().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(
        err.to_string().contains("client id and secret") && !err.to_string().contains("csecret")
    );
}

#[tokio::test]
async fn the_breaker_opens_and_then_fails_fast_without_calling() {
    let fake = FakeServer::start(ok_router()).await;
    fake.inject_on(None, "/items", Fault::status(503), 100);
    let breaker = Arc::new(Mutex::new(CircuitBreaker::new(BreakerConfig {
        failure_threshold: 2,
        cooldown: Duration::from_secs(300),
    })));
    let http = HttpClient::builder("fake", fake.url())
        .retry(RetryPolicy::none())
        .breaker(breaker.clone())
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            http.send(Request::get("/items"))
                .await
                .unwrap_err()
                .status(),
            Some(503)
        );
    }
    let err = http.send(Request::get("/items")).await.unwrap_err();
    assert!(matches!(err, HttpError::BreakerOpen { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(fake.requests().len(), 2, "the third call never left");
    // The persisted state says so too.
    let state = breaker.lock().unwrap().state.clone();
    assert_eq!(state.phase, syncctl_http::BreakerPhase::Open);
}

#[tokio::test]
async fn debug_output_never_shows_credentials() {
    let auth = Arc::new(BearerToken::new(
        "fake",
        SecretString::from("super-secret-token"),
    ));
    let http = HttpClient::builder("fake", "http://127.0.0.1:9")
        .auth(auth)
        .build()
        .unwrap();
    let d = format!("{http:?}");
    assert!(!d.contains("super-secret-token"), "{d}");
    assert!(d.contains("BearerToken"));
}

#[tokio::test]
async fn the_user_agent_and_bearer_header_are_sent() {
    let fake = FakeServer::start(ok_router()).await;
    let auth = Arc::new(BearerToken::new("fake", SecretString::from("pat-123")));
    let http = HttpClient::builder("fake", fake.url())
        .auth(auth)
        .build()
        .unwrap();
    http.send(Request::get("/items")).await.unwrap();
    let r = &fake.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer pat-123"));
    assert!(r.header("user-agent").unwrap().starts_with("syncctl/"));
}
