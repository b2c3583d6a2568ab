//! The client: one `reqwest::Client` per service with retries, limits, auth and a breaker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::error::{body_excerpt, is_retryable_status};
use crate::{AuthProvider, CircuitBreaker, HttpError, RateLimiter, RetryPolicy, USER_AGENT};

/// Waits between retries. Production uses tokio's timer; tests record the delays instead of
/// sleeping, so they prove `Retry-After` handling exactly and run instantly.
pub trait Sleeper: Send + Sync {
    /// Sleeps for `d`.
    fn sleep(&self, d: Duration)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// Sleeps on tokio's timer.
#[derive(Debug, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(
        &self,
        d: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Records requested delays and returns at once (for tests).
#[derive(Debug, Default)]
pub struct RecordingSleeper {
    delays: Mutex<Vec<Duration>>,
}

impl RecordingSleeper {
    /// The delays asked for so far.
    #[must_use]
    pub fn delays(&self) -> Vec<Duration> {
        self.delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(
        &self,
        d: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        self.delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(d);
        Box::pin(std::future::ready(()))
    }
}

/// Whether a request may be sent again after it may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrySafety {
    /// Repeating it changes nothing (GET, DELETE, reads done with POST).
    Idempotent,
    /// It carries an idempotency key the server deduplicates on (Databricks
    /// `idempotency_token`, Snowflake `requestId` + `retry=true`).
    Keyed,
    /// Repeating it could do the work twice (an Airbyte trigger). Retried only when the
    /// request certainly did nothing: it never left (connection refused), or the server
    /// refused it with 429 (RFC 6585: rejected before processing). Callers reconcile otherwise.
    Unsafe,
    /// Resent by the client only when it certainly never left (connection refused); every
    /// other resend is the caller's, because a resend must differ (Snowflake's `retry=true`).
    CallerResends,
}

/// A request body.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// A JSON body.
    Json(serde_json::Value),
    /// A `application/x-www-form-urlencoded` body.
    Form(Vec<(String, String)>),
    /// Raw bytes with a content type.
    Raw {
        /// The content type.
        content_type: String,
        /// The bytes.
        bytes: Bytes,
    },
}

/// One request: target, query, headers, body and how safe it is to repeat.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    target: String,
    query: Vec<(String, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
    safety: RetrySafety,
    authenticated: bool,
    final_statuses: &'static [u16],
}

impl Request {
    /// Statuses that are a definite answer for this request although they are retryable in
    /// general (Snowflake's 408: the statement was cancelled at its timeout; asking again
    /// only repeats that).
    #[must_use]
    pub fn final_statuses(mut self, statuses: &'static [u16]) -> Self {
        self.final_statuses = statuses;
        self
    }
    /// A request; `target` is a path under the base URL or an absolute URL.
    #[must_use]
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        let safety = if matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        ) {
            RetrySafety::Idempotent
        } else {
            RetrySafety::Unsafe
        };
        Self {
            method,
            target: target.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            safety,
            authenticated: true,
            final_statuses: &[],
        }
    }
    /// A GET request.
    #[must_use]
    pub fn get(target: impl Into<String>) -> Self {
        Self::new(Method::GET, target)
    }
    /// A POST request (not retried unless marked otherwise).
    #[must_use]
    pub fn post(target: impl Into<String>) -> Self {
        Self::new(Method::POST, target)
    }
    /// A DELETE request.
    #[must_use]
    pub fn delete(target: impl Into<String>) -> Self {
        Self::new(Method::DELETE, target)
    }
    /// A PATCH request (not retried unless marked otherwise).
    #[must_use]
    pub fn patch(target: impl Into<String>) -> Self {
        Self::new(Method::PATCH, target)
    }
    /// A PUT request.
    #[must_use]
    pub fn put(target: impl Into<String>) -> Self {
        Self::new(Method::PUT, target)
    }
    /// Adds a query parameter.
    #[must_use]
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }
    /// Adds a header.
    ///
    /// # Panics
    /// Never for valid ASCII names; invalid names or values are dropped with a debug log.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => self.headers.push((n, v)),
            _ => tracing::debug!(header = name, "dropping a header that cannot be sent"),
        }
        self
    }
    /// Adds a header whose value must not be logged.
    #[must_use]
    pub fn sensitive_header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.push((name, value));
        self
    }
    /// Sets a JSON body.
    #[must_use]
    pub fn json(mut self, value: serde_json::Value) -> Self {
        self.body = Body::Json(value);
        self
    }
    /// Sets any body.
    #[must_use]
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    /// Marks a POST that only reads (Airbyte's config API reads with POST) as safe to repeat.
    #[must_use]
    pub fn retry_safe(mut self) -> Self {
        self.safety = RetrySafety::Idempotent;
        self
    }
    /// Marks the request as carrying an idempotency key the server honours.
    #[must_use]
    pub fn keyed(mut self) -> Self {
        self.safety = RetrySafety::Keyed;
        self
    }
    /// Marks the request as unsafe to repeat.
    #[must_use]
    pub fn unsafe_to_retry(mut self) -> Self {
        self.safety = RetrySafety::Unsafe;
        self
    }
    /// Sends the request exactly once; the caller resends it (differently) when needed.
    #[must_use]
    pub fn caller_resends(mut self) -> Self {
        self.safety = RetrySafety::CallerResends;
        self
    }
    /// Sends the request without the client's credentials (token endpoints).
    #[must_use]
    pub fn without_auth(mut self) -> Self {
        self.authenticated = false;
        self
    }
    /// The retry safety.
    #[must_use]
    pub fn safety(&self) -> RetrySafety {
        self.safety
    }
}

/// A response whose body has been read.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    service: String,
    method: String,
    path: String,
    attempts: u32,
}

impl Response {
    /// Decodes the body as JSON.
    ///
    /// # Errors
    /// [`HttpError::Decode`] when the body is not the expected JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            service: self.service.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
    /// The body as (lossy) text.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// How many attempts it took.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
    /// A header value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// This response as an [`HttpError::Status`].
    #[must_use]
    pub fn into_error(self) -> HttpError {
        HttpError::Status {
            service: self.service,
            method: self.method,
            path: self.path,
            status: self.status.as_u16(),
            body: body_excerpt(&self.body),
            attempts: self.attempts,
        }
    }
}

/// Builds an [`HttpClient`].
pub struct HttpClientBuilder {
    service: String,
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    limiter: Option<Arc<RateLimiter>>,
    auth: Option<Arc<dyn AuthProvider>>,
    breaker: Option<Arc<Mutex<CircuitBreaker>>>,
    sleeper: Arc<dyn Sleeper>,
    reauth_on_forbidden: bool,
}

impl HttpClientBuilder {
    /// Also fetch fresh credentials once after a 403, for services that answer an invalid or
    /// expired token with 403 rather than 401 (Databricks' gateway). Static credentials are
    /// not retried (their `invalidate` says no fresh ones can be had).
    #[must_use]
    pub fn reauth_on_forbidden(mut self) -> Self {
        self.reauth_on_forbidden = true;
        self
    }
    /// Replaces the retry timer (tests pass a [`RecordingSleeper`]).
    #[must_use]
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }
    /// Per-request timeout (connect + send + read the body). Default 60 s.
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// Connect timeout. Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Retry policy. Default [`RetryPolicy::default`].
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
    /// A rate limiter, shared by every client of the same account.
    #[must_use]
    pub fn rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }
    /// Credentials.
    #[must_use]
    pub fn auth(mut self, auth: Arc<dyn AuthProvider>) -> Self {
        self.auth = Some(auth);
        self
    }
    /// A circuit breaker (its state may be persisted by the caller).
    #[must_use]
    pub fn breaker(mut self, breaker: Arc<Mutex<CircuitBreaker>>) -> Self {
        self.breaker = Some(breaker);
        self
    }
    /// Builds the client.
    ///
    /// # Errors
    /// [`HttpError::InvalidRequest`] when the base URL is not absolute or TLS cannot start.
    pub fn build(self) -> Result<HttpClient, HttpError> {
        let invalid = |message: String| HttpError::InvalidRequest {
            service: self.service.clone(),
            message,
        };
        let base = self.base_url.trim_end_matches('/').to_owned();
        Url::parse(&base).map_err(|_| invalid("base URL is not an absolute URL".into()))?;
        #[allow(clippy::disallowed_methods)] // this is the one sanctioned construction
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                client,
                service: self.service,
                base_url: base,
                retry: self.retry,
                limiter: self.limiter,
                auth: self.auth,
                breaker: self.breaker,
                sleeper: self.sleeper,
                reauth_on_forbidden: self.reauth_on_forbidden,
            }),
        })
    }
}

/// A client for one service. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    service: String,
    base_url: String,
    retry: RetryPolicy,
    limiter: Option<Arc<RateLimiter>>,
    auth: Option<Arc<dyn AuthProvider>>,
    breaker: Option<Arc<Mutex<CircuitBreaker>>>,
    sleeper: Arc<dyn Sleeper>,
    reauth_on_forbidden: bool,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("service", &self.inner.service)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

enum Attempt {
    Done(Response),
    Retry {
        delay: Duration,
        last: Result<Response, HttpError>,
    },
    Reauth,
    Fail(HttpError),
}

impl HttpClient {
    /// Starts building a client for `service` (a short name like `airbyte`) at `base_url`.
    #[must_use]
    pub fn builder(service: impl Into<String>, base_url: impl Into<String>) -> HttpClientBuilder {
        HttpClientBuilder {
            service: service.into(),
            base_url: base_url.into(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            limiter: None,
            auth: None,
            breaker: None,
            sleeper: Arc::new(TokioSleeper),
            reauth_on_forbidden: false,
        }
    }

    /// The service name.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The base URL (no trailing slash).
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The auth method's name, if any.
    #[must_use]
    pub fn auth_method(&self) -> Option<&'static str> {
        self.inner.auth.as_ref().map(|a| a.method())
    }

    /// Sends and requires a 2xx status.
    ///
    /// # Errors
    /// [`HttpError::Status`] for non-2xx answers, else whatever [`Self::send_raw`] returns.
    pub async fn send(&self, req: Request) -> Result<Response, HttpError> {
        let resp = self.send_raw(req).await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(resp.into_error())
        }
    }

    /// Sends, requires 2xx and decodes the JSON body.
    ///
    /// # Errors
    /// As [`Self::send`], plus [`HttpError::Decode`].
    pub async fn send_json<T: DeserializeOwned>(&self, req: Request) -> Result<T, HttpError> {
        self.send(req).await?.json()
    }

    /// Sends with retries and returns whatever status the server finally answered.
    ///
    /// # Errors
    /// Transport failures, an open breaker, credential failures, an invalid URL.
    pub async fn send_raw(&self, req: Request) -> Result<Response, HttpError> {
        let url = self.url_for(&req)?;
        let path = url.path().to_owned();
        let method = req.method.to_string();
        let mut delays = self.inner.retry.delays();
        let mut attempts = 0u32;
        let mut reauthed = false;
        loop {
            self.check_breaker()?;
            if let Some(l) = &self.inner.limiter {
                l.acquire().await;
            }
            attempts += 1;
            let started = tokio::time::Instant::now();
            let outcome = self
                .attempt(&req, url.clone(), &path, &method, attempts)
                .await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            crate::HttpStats::global().record_attempt(
                &self.inner.service,
                outcome.as_ref().ok().map(|r| r.status.as_u16()),
            );
            let step = self.decide(&req, outcome, &mut delays, &mut reauthed);
            match step {
                Attempt::Done(resp) => {
                    tracing::debug!(service = %self.inner.service, %method, %path, status = resp.status.as_u16(), attempts, elapsed_ms, "HTTP request done");
                    self.record_breaker(Some(resp.status.as_u16()));
                    return Ok(resp);
                }
                Attempt::Fail(err) => {
                    tracing::debug!(service = %self.inner.service, %method, %path, attempts, elapsed_ms, error = %err, "HTTP request failed");
                    self.record_breaker(err.status().or(if err.is_retryable_kind() {
                        Some(503)
                    } else {
                        None
                    }));
                    return Err(err);
                }
                Attempt::Reauth => {
                    crate::HttpStats::global().record_retry(&self.inner.service);
                    tracing::debug!(service = %self.inner.service, %method, %path, "401/403: refreshing credentials and retrying once");
                }
                Attempt::Retry { delay, last } => {
                    let why = match &last {
                        Ok(r) => format!("HTTP {}", r.status.as_u16()),
                        Err(e) => e.to_string(),
                    };
                    crate::HttpStats::global().record_retry(&self.inner.service);
                    tracing::warn!(service = %self.inner.service, %method, %path, attempt = attempts, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), reason = %why, "Retrying request.");
                    self.inner.sleeper.sleep(delay).await;
                }
            }
        }
    }

    fn decide(
        &self,
        req: &Request,
        outcome: Result<Response, HttpError>,
        delays: &mut impl Iterator<Item = Duration>,
        reauthed: &mut bool,
    ) -> Attempt {
        let policy = &self.inner.retry;
        match outcome {
            Ok(resp) => {
                let status = resp.status.as_u16();
                if (status == 401 || (status == 403 && self.inner.reauth_on_forbidden))
                    && req.authenticated
                    && !*reauthed
                    && let Some(auth) = &self.inner.auth
                    && auth.invalidate()
                {
                    *reauthed = true;
                    return Attempt::Reauth;
                }
                // A 429 is the server refusing the request before doing anything, so even an
                // unsafe request may be sent again once the server says when.
                let may_retry = crate::is_retryable_answer(status, req.final_statuses)
                    && match req.safety {
                        RetrySafety::Idempotent | RetrySafety::Keyed => true,
                        RetrySafety::Unsafe => status == 429,
                        RetrySafety::CallerResends => false,
                    };
                if !may_retry {
                    return Attempt::Done(resp);
                }
                let retry_after = if matches!(status, 429 | 503) {
                    resp.header("retry-after")
                        .and_then(|v| crate::parse_retry_after(v, SystemTime::now()))
                } else {
                    None
                };
                if retry_after.is_some_and(|d| d > policy.max_retry_after) {
                    return Attempt::Done(resp);
                }
                match delays.next() {
                    Some(backoff) => Attempt::Retry {
                        delay: retry_after.unwrap_or(backoff),
                        last: Ok(resp),
                    },
                    None => Attempt::Done(resp),
                }
            }
            Err(err) => {
                let may_retry = err.is_retryable_kind()
                    && match req.safety {
                        RetrySafety::Idempotent | RetrySafety::Keyed => true,
                        RetrySafety::Unsafe | RetrySafety::CallerResends => err.not_sent(),
                    };
                if !may_retry {
                    return Attempt::Fail(err);
                }
                match delays.next() {
                    Some(delay) => Attempt::Retry {
                        delay,
                        last: Err(err),
                    },
                    None => Attempt::Fail(err),
                }
            }
        }
    }

    async fn attempt(
        &self,
        req: &Request,
        url: Url,
        path: &str,
        method: &str,
        attempts: u32,
    ) -> Result<Response, HttpError> {
        let mut rb = self.inner.client.request(req.method.clone(), url);
        if req.authenticated
            && let Some(auth) = &self.inner.auth
        {
            for (name, value) in auth.headers().await? {
                rb = rb.header(name, value);
            }
        }
        for (name, value) in &req.headers {
            rb = rb.header(name.clone(), value.clone());
        }
        rb = match &req.body {
            Body::Empty => rb,
            Body::Json(v) => rb.json(v),
            Body::Form(pairs) => rb.form(pairs),
            Body::Raw {
                content_type,
                bytes,
            } => rb
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone()),
        };
        let transport = |e: &reqwest::Error| match refused_certificate(e) {
            Some(why) => HttpError::Certificate {
                service: self.inner.service.clone(),
                method: method.to_owned(),
                path: path.to_owned(),
                message: why.to_string(),
            },
            None => HttpError::Transport {
                service: self.inner.service.clone(),
                method: method.to_owned(),
                path: path.to_owned(),
                message: describe_reqwest_error(e),
                not_sent: e.is_connect(),
                timeout: e.is_timeout(),
                attempts,
            },
        };
        let resp = rb.send().await.map_err(|e| transport(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| transport(&e))?;
        Ok(Response {
            status,
            headers,
            body,
            service: self.inner.service.clone(),
            method: method.to_owned(),
            path: path.to_owned(),
            attempts,
        })
    }

    fn url_for(&self, req: &Request) -> Result<Url, HttpError> {
        let raw = if req.target.starts_with("http://") || req.target.starts_with("https://") {
            req.target.clone()
        } else {
            format!(
                "{}/{}",
                self.inner.base_url,
                req.target.trim_start_matches('/')
            )
        };
        let mut url = Url::parse(&raw).map_err(|_| HttpError::InvalidRequest {
            service: self.inner.service.clone(),
            message: format!("cannot build a URL from path {:?}", req.target),
        })?;
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter());
        }
        Ok(url)
    }

    fn check_breaker(&self) -> Result<(), HttpError> {
        let Some(b) = &self.inner.breaker else {
            return Ok(());
        };
        let mut b = b.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        b.try_acquire(chrono::Utc::now())
            .map_err(|at| HttpError::BreakerOpen {
                service: self.inner.service.clone(),
                next_probe: syncctl_core::result::format_timestamp(at),
            })
    }

    fn record_breaker(&self, status: Option<u16>) {
        let Some(b) = &self.inner.breaker else { return };
        let mut b = b.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match status {
            // A rate limit is the service working as designed, not an outage: it neither
            // trips nor closes the breaker.
            Some(429) => {}
            Some(s) if is_retryable_status(s) => b.record_failure(chrono::Utc::now()),
            // Any answer that is not "come back later" proves the service is up.
            Some(_) => b.record_success(),
            None => {}
        }
    }
}

/// The TLS library's refusal of the server's certificate, when that is what `e` comes from.
///
/// Walks the source chain. An `io::Error` hides what it wraps from `source()` (it returns the
/// wrapped error's own source), and hyper wraps rustls' error in two of them, so each one is
/// opened with `get_ref` instead.
fn refused_certificate<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) =
            err.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A reqwest error described without its URL (which may carry a query we do not print).
fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the response"
    } else if e.is_request() {
        "connection broke while sending the request"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = None;
    while let Some(s) = source {
        detail = Some(s.to_string());
        source = s.source();
    }
    match detail {
        Some(d) => format!("{kind} ({d})"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    /// An error whose source is `inner`, as the connectors between reqwest and rustls wrap it.
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Wrapped(#[source] Box<dyn std::error::Error + Send + Sync + 'static>);

    /// As hyper hands it over: an `io::Error` in an `io::Error` in a connect error.
    fn chain(tls: rustls::Error) -> Wrapped {
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        Wrapped(Box::new(std::io::Error::other(inner)))
    }

    #[test]
    fn certificate_refusals_are_found_behind_an_io_error() {
        for refusal in [
            CertificateError::UnknownIssuer,
            CertificateError::Expired,
            CertificateError::NotValidForName,
        ] {
            let e = chain(rustls::Error::InvalidCertificate(refusal.clone()));
            assert_eq!(
                refused_certificate(&e),
                Some(&rustls::Error::InvalidCertificate(refusal))
            );
        }
    }

    #[test]
    fn other_tls_and_io_failures_are_not_certificate_refusals() {
        assert_eq!(
            refused_certificate(&chain(rustls::Error::HandshakeNotComplete)),
            None
        );
        let reset = Wrapped(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(refused_certificate(&reset), None);
    }
}
