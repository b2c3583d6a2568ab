//! A recording, fault-injecting HTTP server around any axum `Router`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path (no query).
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body parsed as JSON (`Null` when it is not JSON).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// A header as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Something to do to a request instead of (or besides) answering it normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status, an optional `Retry-After` (seconds) and a JSON body.
    Status {
        /// The status code.
        status: u16,
        /// `Retry-After` in seconds.
        retry_after: Option<u64>,
        /// The body.
        body: serde_json::Value,
    },
    /// Answer with this status, these headers and this body, as the vendor words it (see
    /// each fake's `error_fault`).
    Answer {
        /// The status code.
        status: u16,
        /// Headers besides `content-type: application/json`.
        headers: Vec<(&'static str, String)>,
        /// The body, sent as it is.
        body: String,
    },
    /// Wait this long before handling the request normally.
    Delay(Duration),
    /// Handle the request normally (its effects happen), then break the connection instead
    /// of answering: the client sees a lost response.
    DropAfterHandling,
    /// Break the connection without handling the request.
    DropBeforeHandling,
}

impl Fault {
    /// A 429 with `Retry-After: secs`.
    #[must_use]
    pub fn rate_limited(secs: u64) -> Self {
        Self::Status {
            status: 429,
            retry_after: Some(secs),
            body: serde_json::json!({"message": "Too many requests"}),
        }
    }
    /// A bare status with a small JSON body.
    #[must_use]
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            retry_after: None,
            body: serde_json::json!({"message": format!("injected {status}")}),
        }
    }
}

/// A fault applied to the next `times` requests matching `method` and `path_contains`.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Only this method (any when `None`).
    pub method: Option<Method>,
    /// Only paths containing this.
    pub path_contains: String,
    /// What to do.
    pub fault: Fault,
    /// How many matching requests it applies to.
    pub times: u32,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<FaultRule>>,
}

/// A running fake server. Dropping it stops the server.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeServer {
    /// Serves `router` on `127.0.0.1:0` (or `port` if given) in the current tokio runtime.
    ///
    /// # Panics
    /// When the port cannot be bound (a test setup failure).
    pub async fn start(router: Router) -> Self {
        Self::start_on(router, 0).await
    }

    /// Like [`Self::start`] on a fixed port (used by `syncctl-fakes serve`).
    ///
    /// # Panics
    /// When the port cannot be bound.
    pub async fn start_on(router: Router, port: u16) -> Self {
        let shared = Arc::new(Shared::default());
        let app = router.layer(middleware::from_fn_with_state(
            shared.clone(),
            record_and_inject,
        ));
        #[allow(clippy::expect_used)]
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind fake server port");
        #[allow(clippy::expect_used)]
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            shared,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request seen so far.
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Requests with this method whose path contains `path_contains`.
    #[must_use]
    pub fn requests_to(&self, method: &Method, path_contains: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .collect()
    }

    /// Adds a fault rule.
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.shared.faults).push_back(rule);
    }

    /// Shorthand: apply `fault` to the next `times` requests to paths containing `path_contains`.
    pub fn inject_on(&self, method: Option<Method>, path_contains: &str, fault: Fault, times: u32) {
        self.inject(FaultRule {
            method,
            path_contains: path_contains.to_owned(),
            fault,
            times,
        });
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take_fault(shared: &Shared, method: &Method, path: &str) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    let idx = faults.iter().position(|r| {
        r.times > 0
            && r.method.as_ref().is_none_or(|m| m == method)
            && path.contains(&r.path_contains)
    })?;
    let rule = &mut faults[idx];
    rule.times -= 1;
    let fault = rule.fault.clone();
    if rule.times == 0 {
        faults.remove(idx);
    }
    Some(fault)
}

/// A body that fails after the headers went out, so the client sees a broken response.
fn broken_body() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(OnceErr(false)))
        .unwrap_or_default()
}

/// A one-item stream that yields an I/O error.
struct OnceErr(bool);

impl futures_core::Stream for OnceErr {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.0 {
            std::task::Poll::Ready(None)
        } else {
            self.0 = true;
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected connection drop",
            ))))
        }
    }
}

async fn record_and_inject(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    lock(&shared.requests).push(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers.clone(),
        body: bytes.clone(),
    });
    let fault = take_fault(&shared, &parts.method, parts.uri.path());
    let req = Request::from_parts(parts, Body::from(bytes));
    match fault {
        None => next.run(req).await,
        Some(Fault::Status {
            status,
            retry_after,
            body,
        }) => {
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(body),
            )
                .into_response();
            if let Some(s) = retry_after
                && let Ok(v) = s.to_string().parse()
            {
                resp.headers_mut().insert("retry-after", v);
            }
            resp
        }
        Some(Fault::Answer {
            status,
            headers,
            body,
        }) => {
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [("content-type", "application/json")],
                body,
            )
                .into_response();
            for (name, value) in headers {
                if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(name, v);
                }
            }
            resp
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::DropAfterHandling) => {
            let _ = next.run(req).await;
            broken_body()
        }
        Some(Fault::DropBeforeHandling) => broken_body(),
    }
}
