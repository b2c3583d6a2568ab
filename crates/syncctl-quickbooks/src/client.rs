//! The typed QuickBooks Online Accounting v3 client: query, CDC, batch and company info over
//! the shared HTTP core.
//!
//! Every call goes to `{base}/v3/company/{realm}/…` with `minorversion` and
//! `Accept: application/json`. Intuit's limits per company (realm) and app are 500
//! requests/min, 10 concurrent requests and 40 batch requests/min; the client keeps under
//! all three with token buckets sized so that `burst + rate × 60 s` never exceeds the
//! published per-minute figure, and a semaphore of 10. Intuit sends no `Retry-After` on its
//! 429s and asks clients to wait; the retry policy backs off up to a minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use syncctl_http::{
    Body, HttpClient, RateLimiter, Request, Response, RetryPolicy, Sleeper, TokioSleeper,
};
use tokio::sync::Semaphore;

use crate::auth::{QuickBooksAuth, store_key};
use crate::entity::Entity;
use crate::error::{Fault, QuickBooksError};
use crate::settings::{MINOR_VERSION, QuickBooksSettings};

/// Rate limits the client keeps to (per company and app).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// All requests: steady rate per second.
    pub requests_per_second: f64,
    /// All requests: burst.
    pub request_burst: u32,
    /// Batch requests: steady rate per second.
    pub batches_per_second: f64,
    /// Batch requests: burst.
    pub batch_burst: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for Limits {
    /// 500/min: 10 + 7/s × 60 = 430 ≤ 500 and ≤ 10/s; batches 40/min: 1 + 0.6/s × 60 = 37,
    /// three under the limit so that network jitter (two batches sent close together arriving
    /// in one of Intuit's windows) does not earn a throttle.
    fn default() -> Self {
        Self {
            requests_per_second: 7.0,
            request_burst: 10,
            batches_per_second: 0.6,
            batch_burst: 1,
            concurrency: 10,
        }
    }
}

impl Limits {
    /// The same limits with time scaled by `factor` (benchmarks against fakes whose clock
    /// runs `factor` times faster).
    #[must_use]
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            requests_per_second: self.requests_per_second * factor,
            batches_per_second: self.batches_per_second * factor,
            ..self
        }
    }
}

/// Client construction options beyond the settings.
#[derive(Clone)]
pub struct ClientOptions {
    /// Rate limits.
    pub limits: Limits,
    /// Retry policy (429s and 5xx).
    pub retry: RetryPolicy,
    /// The retry timer.
    pub sleeper: Arc<dyn Sleeper>,
    /// Where the rotating refresh token is kept (the platform's credential store).
    pub credentials: Arc<dyn syncctl_core::CredentialStore>,
    /// A circuit breaker shared with the engine (its persisted state), if any.
    pub breaker: Option<Arc<std::sync::Mutex<syncctl_http::CircuitBreaker>>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            retry: RetryPolicy {
                max_retries: 6,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
                max_retry_after: Duration::from_secs(120),
            },
            sleeper: Arc::new(TokioSleeper),
            credentials: Arc::new(syncctl_core::MemoryCredentials::default()),
            breaker: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Calls made so far, by kind (for tests, results and benchmarks).
#[derive(Debug, Default)]
pub struct CallCounts {
    queries: AtomicU64,
    cdc: AtomicU64,
    batches: AtomicU64,
    other: AtomicU64,
}

/// A snapshot of [`CallCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CallStats {
    /// `query` calls.
    pub queries: u64,
    /// `cdc` calls.
    pub cdc: u64,
    /// `batch` calls.
    pub batches: u64,
    /// Everything else (company info).
    pub other: u64,
}

/// One page of a query.
#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    /// The entity objects, in the order returned.
    pub objects: Vec<Map<String, Value>>,
    /// `startPosition` as answered.
    pub start_position: Option<u64>,
}

/// What a CDC call returned for the asked entities.
#[derive(Debug, Clone, Default)]
pub struct CdcResult {
    /// Objects by entity, active ones first then deleted ones (as Intuit orders them).
    pub objects: Vec<(Entity, Map<String, Value>)>,
}

/// One answer of a batch, matched to its `bId`.
#[derive(Debug, Clone)]
pub enum BatchAnswer {
    /// The operation succeeded; the entity as stored (for a delete: Id and `status`).
    Entity(Map<String, Value>),
    /// A query item's answer.
    Query(Map<String, Value>),
    /// The operation failed.
    Fault(Fault),
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct QuickBooksClient {
    http: HttpClient,
    realm: String,
    auth: Arc<QuickBooksAuth>,
    batch_limiter: Arc<RateLimiter>,
    in_flight: Arc<Semaphore>,
    counts: Arc<CallCounts>,
}

impl std::fmt::Debug for QuickBooksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickBooksClient")
            .field("base_url", &self.http.base_url())
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Quotes a value for the query language (`'` doubled is not supported by Intuit, a
/// backslash escape is).
#[must_use]
pub fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl QuickBooksClient {
    /// Builds the client (no network).
    ///
    /// # Errors
    /// An invalid base or token URL.
    pub fn new(
        settings: &QuickBooksSettings,
        options: ClientOptions,
    ) -> Result<Self, QuickBooksError> {
        let refresh = match &settings.refresh {
            Some(r) => {
                let token_http = HttpClient::builder("quickbooks-oauth", r.token_url.clone())
                    .retry(options.retry)
                    .sleeper(options.sleeper.clone())
                    .timeout(Duration::from_secs(60))
                    .build()?;
                Some((
                    r.clone(),
                    token_http,
                    options.credentials.clone(),
                    store_key(&r.client_id, &settings.realm_id),
                ))
            }
            None => None,
        };
        let auth = Arc::new(QuickBooksAuth::new(settings.access_token.clone(), refresh));
        let limits = options.limits;
        let mut b = HttpClient::builder("quickbooks", settings.base_url.clone())
            .auth(auth.clone())
            .retry(options.retry)
            .sleeper(options.sleeper.clone())
            // Intuit ends requests at 120 s.
            .timeout(Duration::from_secs(125))
            .rate_limiter(Arc::new(RateLimiter::new(
                limits.requests_per_second,
                limits.request_burst,
            )));
        if let Some(br) = options.breaker.clone() {
            b = b.breaker(br);
        }
        Ok(Self {
            http: b.build()?,
            realm: settings.realm_id.clone(),
            auth,
            batch_limiter: Arc::new(RateLimiter::new(
                limits.batches_per_second,
                limits.batch_burst,
            )),
            in_flight: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            counts: Arc::new(CallCounts::default()),
        })
    }

    /// `{base}` for endpoints and logs.
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    /// The company id.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How the client authenticates.
    #[must_use]
    pub fn auth_method(&self) -> &'static str {
        syncctl_http::AuthProvider::method(self.auth.as_ref())
    }

    /// Token refreshes so far.
    #[must_use]
    pub fn refresh_count(&self) -> u32 {
        self.auth.refresh_count()
    }

    /// Calls made so far.
    #[must_use]
    pub fn stats(&self) -> CallStats {
        CallStats {
            queries: self.counts.queries.load(Ordering::Relaxed),
            cdc: self.counts.cdc.load(Ordering::Relaxed),
            batches: self.counts.batches.load(Ordering::Relaxed),
            other: self.counts.other.load(Ordering::Relaxed),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/v3/company/{}/{rest}", self.realm)
    }

    async fn call(&self, operation: &str, req: Request) -> Result<Value, QuickBooksError> {
        let req = req
            .query("minorversion", MINOR_VERSION.to_string())
            .header("Accept", "application/json");
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| QuickBooksError::Decode {
                operation: operation.to_owned(),
                message: "client shut down".into(),
            })?;
        let resp = self.http.send_raw(req).await?;
        Self::answer(operation, resp)
    }

    fn answer(operation: &str, resp: Response) -> Result<Value, QuickBooksError> {
        let status = resp.status.as_u16();
        if resp.status.is_success() {
            return serde_json::from_slice(&resp.body).map_err(|e| QuickBooksError::Decode {
                operation: operation.to_owned(),
                message: e.to_string(),
            });
        }
        if status == 429 {
            return Err(QuickBooksError::Throttled {
                operation: operation.to_owned(),
            });
        }
        match Fault::from_body(&resp.body) {
            Some(fault) => Err(QuickBooksError::Fault {
                operation: operation.to_owned(),
                status,
                fault,
            }),
            None => Err(resp.into_error().into()),
        }
    }

    /// Runs one query statement (`SELECT * FROM Customer WHERE … STARTPOSITION n MAXRESULTS m`).
    ///
    /// # Errors
    /// HTTP, fault or decode errors.
    pub async fn query(
        &self,
        entity: Entity,
        statement: &str,
    ) -> Result<QueryPage, QuickBooksError> {
        self.counts.queries.fetch_add(1, Ordering::Relaxed);
        let operation = format!("query {}", entity.name());
        // Long statements (IN lists) go in the body, which Intuit accepts as application/text.
        let req = if statement.len() > 1500 {
            Request::post(self.path("query"))
                .body(Body::Raw {
                    content_type: "application/text".into(),
                    bytes: statement.to_owned().into_bytes().into(),
                })
                .retry_safe()
        } else {
            Request::get(self.path("query")).query("query", statement)
        };
        let v = self.call(&operation, req).await?;
        let qr = v
            .get("QueryResponse")
            .and_then(Value::as_object)
            .ok_or_else(|| QuickBooksError::Decode {
                operation: operation.clone(),
                message: "no QueryResponse".into(),
            })?;
        Ok(QueryPage {
            objects: objects_of(qr, entity),
            start_position: qr.get("startPosition").and_then(Value::as_u64),
        })
    }

    /// Changes since `since` (at most 30 days back) for the given entities, deleted objects
    /// included (`"status":"Deleted"`). One call; Intuit caps the answer at 1,000 objects.
    ///
    /// # Errors
    /// HTTP, fault or decode errors.
    pub async fn cdc(
        &self,
        entities: &[Entity],
        since: DateTime<Utc>,
    ) -> Result<CdcResult, QuickBooksError> {
        self.counts.cdc.fetch_add(1, Ordering::Relaxed);
        let names: Vec<_> = entities.iter().map(|e| e.name()).collect();
        let req = Request::get(self.path("cdc"))
            .query("entities", names.join(","))
            .query("changedSince", timestamp(since));
        let v = self.call("cdc", req).await?;
        let mut out = CdcResult::default();
        let groups = v
            .get("CDCResponse")
            .and_then(Value::as_array)
            .ok_or_else(|| QuickBooksError::Decode {
                operation: "cdc".into(),
                message: "no CDCResponse".into(),
            })?;
        for g in groups {
            for qr in g
                .get("QueryResponse")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
            {
                for e in entities {
                    out.objects
                        .extend(objects_of(qr, *e).into_iter().map(|o| (*e, o)));
                }
            }
        }
        Ok(out)
    }

    /// Sends one batch (at most 30 items: `{"bId","operation",<Entity>:{…}}`) with a
    /// `requestid`: Intuit answers a repeated request id with the original response, so a
    /// resend after a lost answer or a crash never applies the batch twice.
    ///
    /// # Errors
    /// A batch-level failure (auth, throttling after retries, a fault for the whole batch).
    pub async fn batch(
        &self,
        items: Vec<Value>,
        request_id: &str,
    ) -> Result<Vec<(String, BatchAnswer)>, QuickBooksError> {
        if items.len() > crate::MAX_BATCH {
            return Err(QuickBooksError::Settings(format!(
                "a batch holds at most {} operations, got {}",
                crate::MAX_BATCH,
                items.len()
            )));
        }
        self.batch_limiter.acquire().await;
        self.counts.batches.fetch_add(1, Ordering::Relaxed);
        let req = Request::post(self.path("batch"))
            .query("requestid", request_id)
            .json(serde_json::json!({ "BatchItemRequest": items }))
            .keyed();
        let v = self.call("batch", req).await?;
        let answers = v
            .get("BatchItemResponse")
            .and_then(Value::as_array)
            .ok_or_else(|| QuickBooksError::Decode {
                operation: "batch".into(),
                message: "no BatchItemResponse".into(),
            })?;
        let mut out = Vec::with_capacity(answers.len());
        for a in answers.iter().filter_map(Value::as_object) {
            let bid = a
                .get("bId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let answer = if let Some(f) = a.get("Fault") {
                BatchAnswer::Fault(serde_json::from_value(f.clone()).unwrap_or_default())
            } else if let Some(q) = a.get("QueryResponse").and_then(Value::as_object) {
                BatchAnswer::Query(q.clone())
            } else if let Some(entity) = Entity::ALL
                .iter()
                .find_map(|e| a.get(e.name()).and_then(Value::as_object))
            {
                BatchAnswer::Entity(entity.clone())
            } else {
                return Err(QuickBooksError::Decode {
                    operation: "batch".into(),
                    message: format!("item {bid} has neither an entity nor a Fault"),
                });
            };
            out.push((bid, answer));
        }
        Ok(out)
    }

    /// Reads the company's own record: a cheap authenticated call for `check`/`doctor`.
    ///
    /// # Errors
    /// HTTP, auth or fault errors.
    pub async fn company_info(&self) -> Result<Value, QuickBooksError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        let realm = self.realm.clone();
        self.call(
            "companyinfo",
            Request::get(self.path(&format!("companyinfo/{realm}"))),
        )
        .await
    }
}

fn objects_of(qr: &Map<String, Value>, entity: Entity) -> Vec<Map<String, Value>> {
    qr.get(entity.name())
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("O'Brien"), r"'O\'Brien'");
        assert_eq!(quote(r"a\b"), r"'a\\b'");
    }

    #[test]
    fn default_limits_stay_under_the_published_ones() {
        let l = Limits::default();
        assert!(f64::from(l.request_burst) + l.requests_per_second * 60.0 <= 500.0);
        assert!(l.requests_per_second <= 10.0);
        // A margin under 40/min, not the limit itself: see Limits::default.
        assert!(f64::from(l.batch_burst) + l.batches_per_second * 60.0 <= 38.0);
        assert!(l.concurrency <= 10);
    }
}
