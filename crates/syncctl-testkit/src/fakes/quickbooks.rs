//! Stateful fake of the QuickBooks Online Accounting API v3 and Intuit's OAuth 2.0 token
//! endpoint.
//!
//! What it models, because syncctl depends on it:
//! * `GET /v3/company/{realm}/query?query=…` (and `POST` with an `application/text` body):
//!   the query language subset syncctl uses — `SELECT * FROM Entity [WHERE c AND c …]
//!   [ORDERBY field [ASC|DESC]] [STARTPOSITION n] [MAXRESULTS n]` with `=`, `!=`, `<`, `<=`,
//!   `>`, `>=`, `IN (…)` and `LIKE`; name lists (Customer, Item) return only active records
//!   unless the query filters on `Active`; `MAXRESULTS` defaults to 100 and is at most 1000;
//!   an empty result is `"QueryResponse":{}`; a parse error is a 400 `QueryParserError`;
//! * `GET /v3/company/{realm}/cdc?entities=…&changedSince=…`: changed objects (deactivated
//!   ones included) then deleted ones (`"status":"Deleted"`), at most 1000 objects in all,
//!   `changedSince` at most 30 days back;
//! * `POST /v3/company/{realm}/batch?requestid=…`: at most 30 `BatchItemRequest`s (create,
//!   update — sparse or full, a full update blanks omitted fields — delete, Query), answered
//!   per `bId`; a repeated `requestid` returns the original response without applying
//!   anything again; single-entity `POST /v3/company/{realm}/{entity}` and `GET …/{entity}/{id}`;
//! * `SyncToken` concurrency: an update or delete with a stale token fails with 5010; unknown
//!   ids with 610; `DisplayName` (Customer) and `Name` (Item) unique, even against inactive
//!   records, else 6240; Customer/Item cannot be deleted (only `Active=false`); invoices need
//!   an existing `CustomerRef` and item lines with existing `ItemRef`s;
//! * Bearer access tokens that expire on the fake's clock (401 `AuthenticationFailed` 3200),
//!   and `POST /oauth2/v1/tokens/bearer` with `grant_type=refresh_token` (client id/secret in
//!   HTTP basic auth) that rotates the refresh token — the old one is `invalid_grant` from then on;
//! * Intuit's throttles per realm: 500 requests/min, 10 concurrent, 40 batch requests/min,
//!   answered with 429 and a `ThrottlingFault` without `Retry-After` (as Intuit sends); the
//!   minute can be shortened ([`QuickBooksFake::time_scale`]) for benchmarks;
//! * a fault plan: [`QuickBooksFake::throttle_next`], [`QuickBooksFake::fail_next`] (5xx),
//!   [`QuickBooksFake::edit`] (a concurrent editor), [`QuickBooksFake::expire_access_tokens`],
//!   plus the [`crate::FakeServer`] fault rules.
//!
//! Timestamps carry a `-08:00` offset, as Intuit's do for US companies. Every response
//! carries `intuit_tid`. Without `Accept: application/json` the fake answers XML, as
//! Intuit's default is.
// The request helpers return the ready error response as their `Err`.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value, json};

use crate::services::ServiceEntry;

/// The realm the demo and default fakes serve.
pub const DEMO_REALM: &str = "9341453050298361";
/// The access token the demo fake accepts.
pub const DEMO_ACCESS_TOKEN: &str = "qbo-demo-access-token";

const ENTITIES: [&str; 3] = ["Customer", "Item", "Invoice"];

fn is_name_list(entity: &str) -> bool {
    entity == "Customer" || entity == "Item"
}

/// One stored object.
#[derive(Debug, Clone)]
struct Stored {
    body: Map<String, Value>,
    sync_token: u64,
    updated_ms: i64,
}

#[derive(Debug, Clone)]
struct Deletion {
    entity: String,
    id: u64,
    at_ms: i64,
}

struct Limits {
    per_minute: usize,
    batches_per_minute: usize,
    concurrency: usize,
    window_ms: i64,
}

struct State0 {
    realm: String,
    objects: HashMap<String, BTreeMap<u64, Stored>>,
    deletions: Vec<Deletion>,
    next_id: u64,
    clock_offset_ms: i64,
    // OAuth
    clients: Vec<(String, String)>,
    access_tokens: HashMap<String, i64>,
    refresh_tokens: HashMap<String, bool>,
    access_ttl_secs: i64,
    rotate_refresh: bool,
    issued: u64,
    // requestid → (status, body)
    replies: HashMap<String, (u16, Value)>,
    // limits
    limits: Limits,
    recent: VecDeque<i64>,
    recent_batches: VecDeque<i64>,
    throttle_next: u32,
    fail_next: VecDeque<u16>,
    /// Authenticated API calls left before every access token expires.
    expire_after: Option<u32>,
    /// Edits a concurrent user makes the moment the next batch request arrives.
    edits_before_batch: Vec<(String, String, Value)>,
    throttled: u64,
    applied_ops: u64,
    responses: Vec<Exchange>,
}

/// A JSON response the API part of the fake sent (for contract checks).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request path.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The JSON body answered.
    pub body: Value,
}

/// The fake. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct QuickBooksFake {
    state: Arc<Mutex<State0>>,
    in_flight: Arc<AtomicUsize>,
}

impl Default for QuickBooksFake {
    fn default() -> Self {
        Self::new()
    }
}

type Shared = QuickBooksFake;

fn real_now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn intuit_time(ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    match FixedOffset::west_opt(8 * 3600) {
        Some(pacific) => t
            .with_timezone(&pacific)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        None => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

fn parse_time_ms(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

impl QuickBooksFake {
    /// An empty company [`DEMO_REALM`] that accepts [`DEMO_ACCESS_TOKEN`] (valid one hour
    /// on the fake's clock) and no OAuth client.
    #[must_use]
    pub fn new() -> Self {
        let fake = Self {
            state: Arc::new(Mutex::new(State0 {
                realm: DEMO_REALM.to_owned(),
                objects: HashMap::new(),
                deletions: Vec::new(),
                next_id: 1,
                clock_offset_ms: 0,
                clients: Vec::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashMap::new(),
                access_ttl_secs: 3600,
                rotate_refresh: true,
                issued: 0,
                replies: HashMap::new(),
                limits: Limits {
                    per_minute: 500,
                    batches_per_minute: 40,
                    concurrency: 10,
                    window_ms: 60_000,
                },
                recent: VecDeque::new(),
                recent_batches: VecDeque::new(),
                throttle_next: 0,
                fail_next: VecDeque::new(),
                expire_after: None,
                edits_before_batch: Vec::new(),
                throttled: 0,
                applied_ops: 0,
                responses: Vec::new(),
            })),
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        fake.add_access_token(DEMO_ACCESS_TOKEN);
        fake
    }

    fn st(&self) -> MutexGuard<'_, State0> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(st: &State0) -> i64 {
        real_now_ms() + st.clock_offset_ms
    }

    /// Serves company `realm` instead of [`DEMO_REALM`].
    #[must_use]
    pub fn realm(self, realm: &str) -> Self {
        realm.clone_into(&mut self.st().realm);
        self
    }

    /// The company id served.
    #[must_use]
    pub fn realm_id(&self) -> String {
        self.st().realm.clone()
    }

    /// Accepts `token` as an access token for the access-token lifetime from now.
    pub fn add_access_token(&self, token: &str) {
        let mut st = self.st();
        let exp = Self::now_ms(&st) + st.access_ttl_secs * 1000;
        st.access_tokens.insert(token.to_owned(), exp);
    }

    /// Registers an OAuth app and a valid refresh token for it.
    #[must_use]
    pub fn with_oauth_client(
        self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> Self {
        {
            let mut st = self.st();
            st.clients
                .push((client_id.to_owned(), client_secret.to_owned()));
            st.refresh_tokens.insert(refresh_token.to_owned(), true);
        }
        self
    }

    /// Lifetime of access tokens issued from now on (default 3600 s).
    #[must_use]
    pub fn access_token_ttl(self, secs: i64) -> Self {
        self.st().access_ttl_secs = secs;
        self
    }

    /// Whether a refresh issues a new refresh token (default true: the old one dies).
    #[must_use]
    pub fn rotate_refresh_tokens(self, rotate: bool) -> Self {
        self.st().rotate_refresh = rotate;
        self
    }

    /// Shortens Intuit's one-minute windows by `factor` (benchmarks with a scaled clock).
    #[must_use]
    pub fn time_scale(self, factor: f64) -> Self {
        {
            let mut st = self.st();
            #[allow(clippy::cast_possible_truncation)]
            let w = (60_000.0 / factor.max(1e-3)) as i64;
            st.limits.window_ms = w.max(1);
        }
        self
    }

    /// Per-minute limits other than Intuit's (requests, batch requests, concurrency).
    #[must_use]
    pub fn limits(self, per_minute: usize, batches_per_minute: usize, concurrency: usize) -> Self {
        {
            let mut st = self.st();
            st.limits.per_minute = per_minute;
            st.limits.batches_per_minute = batches_per_minute;
            st.limits.concurrency = concurrency;
        }
        self
    }

    /// Every access token issued or added so far stops working (as after their hour).
    pub fn expire_access_tokens(&self) {
        let mut st = self.st();
        let now = Self::now_ms(&st);
        for exp in st.access_tokens.values_mut() {
            *exp = now - 1;
        }
    }

    /// Moves the fake's clock forward.
    pub fn advance_clock(&self, d: Duration) {
        self.st().clock_offset_ms += i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    }

    /// The next `n` API requests get 429 `ThrottleExceeded`.
    pub fn throttle_next(&self, n: u32) {
        self.st().throttle_next += n;
    }

    /// The next API requests fail with these statuses, one each (500, 503, …).
    pub fn fail_next(&self, statuses: &[u16]) {
        self.st().fail_next.extend(statuses.iter().copied());
    }

    /// How many requests were answered 429 by the limits or the plan.
    #[must_use]
    pub fn throttled(&self) -> u64 {
        self.st().throttled
    }

    /// Every JSON response the API answered after authentication (throttles and the
    /// fault plan's answers are sent before and are not listed).
    #[must_use]
    pub fn responses(&self) -> Vec<Exchange> {
        self.st().responses.clone()
    }

    /// How many write operations were applied (replays excluded).
    #[must_use]
    pub fn applied_ops(&self) -> u64 {
        self.st().applied_ops
    }

    /// How many tokens the OAuth endpoint issued.
    #[must_use]
    pub fn tokens_issued(&self) -> u64 {
        self.st().issued
    }

    /// The refresh tokens that still work.
    #[must_use]
    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .st()
            .refresh_tokens
            .iter()
            .filter(|(_, ok)| **ok)
            .map(|(t, _)| t.clone())
            .collect();
        v.sort();
        v
    }

    /// Inserts an object as another application would; returns its Id. `LastUpdatedTime` is
    /// the fake's now unless the body's `MetaData.LastUpdatedTime` says otherwise.
    ///
    /// # Panics
    /// When the entity is not Customer, Item or Invoice.
    pub fn insert(&self, entity: &str, body: Value) -> String {
        assert!(ENTITIES.contains(&entity), "unknown entity {entity}");
        let mut st = self.st();
        let now = Self::now_ms(&st);
        let mut body = body.as_object().cloned().unwrap_or_default();
        let updated = body
            .get("MetaData")
            .and_then(|m| m.get("LastUpdatedTime"))
            .and_then(Value::as_str)
            .and_then(parse_time_ms)
            .unwrap_or(now);
        let id = st.next_id;
        st.next_id += 1;
        body.insert("Id".into(), json!(id.to_string()));
        if is_name_list(entity) && !body.contains_key("Active") {
            body.insert("Active".into(), json!(true));
        }
        if entity == "Customer" && !body.contains_key("DisplayName") {
            let name = derived_display_name(&body).unwrap_or_else(|| format!("Customer {id}"));
            body.insert("DisplayName".into(), json!(name));
        }
        let mut stored = Stored {
            body,
            sync_token: 0,
            updated_ms: updated,
        };
        finish(entity, &mut stored, updated);
        st.objects
            .entry(entity.to_owned())
            .or_default()
            .insert(id, stored);
        id.to_string()
    }

    /// A concurrent editor: applies `fields` (top-level elements) to an object, bumping its
    /// SyncToken and LastUpdatedTime, as a QuickBooks user would.
    ///
    /// # Panics
    /// When the object does not exist.
    pub fn edit(&self, entity: &str, id: &str, fields: Value) {
        let mut st = self.st();
        apply_edit(&mut st, entity, id, &fields);
    }

    /// A concurrent editor racing the client: `fields` are applied to the object the moment
    /// the next batch request arrives, before it is processed, so an update planned from the
    /// object as read carries a stale SyncToken (5010).
    pub fn edit_before_next_batch(&self, entity: &str, id: &str, fields: Value) {
        self.st()
            .edits_before_batch
            .push((entity.to_owned(), id.to_owned(), fields));
    }

    /// The access tokens valid now stop working after `n` more authenticated API calls, as
    /// when a token's hour ends in the middle of a run.
    pub fn expire_access_tokens_after(&self, n: u32) {
        self.st().expire_after = Some(n);
    }

    /// Hard-deletes an invoice as a user would (CDC reports it).
    pub fn delete_invoice(&self, id: &str) {
        let mut st = self.st();
        let now = Self::now_ms(&st);
        let idn: u64 = id.parse().unwrap_or(0);
        if st
            .objects
            .get_mut("Invoice")
            .and_then(|m| m.remove(&idn))
            .is_some()
        {
            st.deletions.push(Deletion {
                entity: "Invoice".into(),
                id: idn,
                at_ms: now,
            });
        }
    }

    /// The object as stored, if present.
    #[must_use]
    pub fn get(&self, entity: &str, id: &str) -> Option<Value> {
        let idn: u64 = id.parse().ok()?;
        self.st()
            .objects
            .get(entity)
            .and_then(|m| m.get(&idn))
            .map(|o| Value::Object(o.body.clone()))
    }

    /// Every object of an entity (active or not), by Id.
    #[must_use]
    pub fn all(&self, entity: &str) -> Vec<Value> {
        self.st()
            .objects
            .get(entity)
            .map(|m| m.values().map(|o| Value::Object(o.body.clone())).collect())
            .unwrap_or_default()
    }

    /// The router: the API under `/v3/company/{realm}` and the token endpoint at
    /// `/oauth2/v1/tokens/bearer`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/v3/company/{realm}/query", get(query_get).post(query_post))
            .route("/v3/company/{realm}/cdc", get(cdc))
            .route("/v3/company/{realm}/batch", post(batch))
            .route("/v3/company/{realm}/companyinfo/{id}", get(company_info))
            .route("/v3/company/{realm}/{entity}", post(single_write))
            .route("/v3/company/{realm}/{entity}/{id}", get(single_read))
            .route_layer(middleware::from_fn_with_state(self.clone(), guard));
        api.route("/oauth2/v1/tokens/bearer", post(token))
            .fallback(|req: Request| async move {
                fault(
                    404,
                    "ValidationFault",
                    "4000",
                    &format!("no such endpoint {} {}", req.method(), req.uri().path()),
                    "",
                )
            })
            .with_state(self.clone())
    }
}

/// A user's edit of an existing object (see [`QuickBooksFake::edit`]).
fn apply_edit(st: &mut State0, entity: &str, id: &str, fields: &Value) {
    let now = QuickBooksFake::now_ms(st);
    let idn: u64 = id.parse().unwrap_or(0);
    let o = st
        .objects
        .get_mut(entity)
        .and_then(|m| m.get_mut(&idn))
        .unwrap_or_else(|| panic!("no {entity} {id}"));
    for (k, v) in fields.as_object().cloned().unwrap_or_default() {
        o.body.insert(k, v);
    }
    o.sync_token += 1;
    finish(entity, o, now);
}

/// Sets the server-kept elements of a stored object.
fn finish(entity: &str, o: &mut Stored, now: i64) {
    o.updated_ms = now.max(o.updated_ms.min(now));
    let created = o
        .body
        .get("MetaData")
        .and_then(|m| m.get("CreateTime"))
        .cloned()
        .unwrap_or_else(|| json!(intuit_time(now)));
    o.body.insert(
        "MetaData".into(),
        json!({"CreateTime": created, "LastUpdatedTime": intuit_time(o.updated_ms)}),
    );
    o.body
        .insert("SyncToken".into(), json!(o.sync_token.to_string()));
    o.body.insert("domain".into(), json!("QBO"));
    o.body.insert("sparse".into(), json!(false));
    if entity == "Customer"
        && let Some(n) = o.body.get("DisplayName").cloned()
    {
        o.body.insert("FullyQualifiedName".into(), n);
    }
    if entity == "Item"
        && let Some(n) = o.body.get("Name").cloned()
    {
        o.body.insert("FullyQualifiedName".into(), n);
    }
    if entity == "Invoice" {
        let total: f64 = o
            .body
            .get("Line")
            .and_then(Value::as_array)
            .map(|ls| {
                ls.iter()
                    .filter(|l| {
                        l.get("DetailType").and_then(Value::as_str) != Some("SubTotalLineDetail")
                    })
                    .filter_map(|l| l.get("Amount").and_then(Value::as_f64))
                    .sum()
            })
            .unwrap_or(0.0);
        o.body.insert("TotalAmt".into(), json!(total));
        o.body.entry("Balance").or_insert(json!(total));
    }
    if entity == "Customer" {
        o.body.entry("Balance").or_insert(json!(0));
    }
}

fn derived_display_name(body: &Map<String, Value>) -> Option<String> {
    let parts: Vec<&str> = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"]
        .iter()
        .filter_map(|k| body.get(*k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn time_now(s: &Shared) -> String {
    let st = s.st();
    intuit_time(QuickBooksFake::now_ms(&st))
}

/// An Intuit fault response.
fn fault(status: u16, kind: &str, code: &str, message: &str, detail: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({
            "Fault": {"Error": [fault_error(code, message, detail, "")], "type": kind},
            "time": intuit_time(real_now_ms()),
        })),
    )
        .into_response()
}

fn fault_error(code: &str, message: &str, detail: &str, element: &str) -> Value {
    json!({"Message": message, "Detail": detail, "code": code, "element": element})
}

fn validation(code: &str, message: &str, detail: &str, element: &str) -> Value {
    json!({"Error": [fault_error(code, message, detail, element)], "type": "ValidationFault"})
}

fn throttle_response() -> Response {
    fault(
        429,
        "ThrottlingFault",
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.",
    )
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Auth, realm, throttles, the fault plan, JSON-or-XML and `intuit_tid`.
async fn guard(
    State(s): State<Shared>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    let in_flight = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _slot = InFlight(s.in_flight.clone());
    let is_batch = req.uri().path().ends_with("/batch");
    {
        let mut st = s.st();
        let now = QuickBooksFake::now_ms(&st);
        // Authentication first: Intuit refuses before counting.
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let valid = token
            .as_ref()
            .and_then(|t| st.access_tokens.get(t))
            .is_some_and(|exp| *exp > now);
        if !valid {
            drop(st);
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401", "detail": "Token expired or invalid", "code": "3200"}], "type": "AUTHENTICATION"}, "time": intuit_time(now)})),
            )
                .into_response();
        }
        if let Some(left) = st.expire_after {
            // This call is served; when it was the last one, every token dies after it.
            if left <= 1 {
                st.expire_after = None;
                for exp in st.access_tokens.values_mut() {
                    *exp = now - 1;
                }
            } else {
                st.expire_after = Some(left - 1);
            }
        }
        if is_batch {
            for (entity, id, fields) in std::mem::take(&mut st.edits_before_batch) {
                apply_edit(&mut st, &entity, &id, &fields);
            }
        }
        if params.get("realm").is_some_and(|r| *r != st.realm) {
            drop(st);
            return fault(
                403,
                "AuthorizationFault",
                "3100",
                "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                "the token is not authorized for this company",
            );
        }
        if st.throttle_next > 0 {
            st.throttle_next -= 1;
            st.throttled += 1;
            return throttle_response();
        }
        if let Some(status) = st.fail_next.pop_front() {
            drop(st);
            return fault(
                status,
                "SystemFault",
                "10000",
                "An application error has occurred while processing your request",
                "injected",
            );
        }
        let window = st.limits.window_ms;
        while st.recent.front().is_some_and(|t| *t <= now - window) {
            st.recent.pop_front();
        }
        while st
            .recent_batches
            .front()
            .is_some_and(|t| *t <= now - window)
        {
            st.recent_batches.pop_front();
        }
        let over = in_flight > st.limits.concurrency
            || st.recent.len() >= st.limits.per_minute
            || (is_batch && st.recent_batches.len() >= st.limits.batches_per_minute);
        if over {
            st.throttled += 1;
            return throttle_response();
        }
        st.recent.push_back(now);
        if is_batch {
            st.recent_batches.push_back(now);
        }
    }
    let wants_json = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if !wants_json {
        // Intuit's default representation is XML.
        return (
            StatusCode::OK,
            [("content-type", "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><IntuitResponse xmlns=\"http://schema.intuit.com/finance/v3\"/>",
        )
            .into_response();
    }
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        s.st().responses.push(Exchange {
            path,
            status: parts.status.as_u16(),
            body: v,
        });
    }
    if let Ok(v) = uuid::Uuid::new_v4().to_string().parse() {
        parts.headers.insert("intuit_tid", v);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

// ---------------------------------------------------------------- OAuth

async fn token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let oauth_err = |status: u16, error: &str| {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            axum::Json(json!({"error": error})),
        )
            .into_response()
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let form: HashMap<String, String> = form_pairs(&body);
    let mut st = s.st();
    let client_ok = basic
        .as_deref()
        .and_then(|b| b.split_once(':'))
        .is_some_and(|(id, secret)| st.clients.iter().any(|(i, s)| i == id && s == secret));
    if !client_ok {
        return oauth_err(401, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return oauth_err(400, "unsupported_grant_type");
    }
    let Some(rt) = form.get("refresh_token").cloned() else {
        return oauth_err(400, "invalid_request");
    };
    if st.refresh_tokens.get(&rt) != Some(&true) {
        return oauth_err(400, "invalid_grant");
    }
    st.issued += 1;
    let n = st.issued;
    let access = format!("qbo-access-{n}-{}", uuid::Uuid::new_v4().simple());
    let now = QuickBooksFake::now_ms(&st);
    let ttl = st.access_ttl_secs;
    st.access_tokens.insert(access.clone(), now + ttl * 1000);
    let refresh = if st.rotate_refresh {
        let new = format!("qbo-refresh-{n}-{}", uuid::Uuid::new_v4().simple());
        st.refresh_tokens.insert(rt, false);
        st.refresh_tokens.insert(new.clone(), true);
        new
    } else {
        rt
    };
    axum::Json(json!({
        "token_type": "bearer",
        "access_token": access,
        "expires_in": ttl,
        "refresh_token": refresh,
        "x_refresh_token_expires_in": 8_726_400,
    }))
    .into_response()
}

fn form_pairs(body: &[u8]) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    if let Ok(b) = u8::from_str_radix(hex, 16) {
                        out.push(b);
                        i += 2;
                    } else {
                        out.push(b'%');
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

// ---------------------------------------------------------------- query

/// A parsed `SELECT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// The entity.
    pub entity: String,
    /// `AND`-ed conditions.
    pub conditions: Vec<Condition>,
    /// `ORDERBY field`, descending when true.
    pub order: Option<(String, bool)>,
    /// 1-based.
    pub start: usize,
    /// At most 1000.
    pub max: usize,
}

/// One `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field (`Metadata.LastUpdatedTime`, `PrimaryEmailAddr`).
    pub field: String,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`, `IN`, `LIKE`.
    pub op: String,
    /// Literals (one, or several for `IN`).
    pub values: Vec<Value>,
}

fn tokenize(q: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::from("'");
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        if let Some(n) = chars.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(s);
        } else if "(),".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else if "<>=!".contains(c) {
            let mut s = c.to_string();
            if chars.get(i + 1) == Some(&'=') || (c == '<' && chars.get(i + 1) == Some(&'>')) {
                s.push(chars[i + 1]);
                i += 1;
            }
            out.push(s);
            i += 1;
        } else {
            let mut s = String::new();
            while let Some(ch) = chars.get(i) {
                if ch.is_whitespace() || "(),<>=!'".contains(*ch) {
                    break;
                }
                s.push(*ch);
                i += 1;
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn literal(tok: &str) -> Result<Value, String> {
    if let Some(s) = tok.strip_prefix('\'') {
        return Ok(Value::String(s.to_owned()));
    }
    match tok.to_ascii_lowercase().as_str() {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    tok.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("invalid literal {tok}"))
}

/// Parses the query subset; `Err` is the parser's message.
///
/// # Errors
/// Syntax outside the subset.
pub fn parse_select(q: &str) -> Result<Select, String> {
    let toks = tokenize(q)?;
    let kw = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.eq_ignore_ascii_case(w));
    if !kw(0, "select") || toks.get(1).map(String::as_str) != Some("*") || !kw(2, "from") {
        return Err("expected SELECT * FROM <Entity>".into());
    }
    let entity = toks.get(3).ok_or("missing entity")?.clone();
    let entity = ENTITIES
        .iter()
        .find(|e| e.eq_ignore_ascii_case(&entity))
        .ok_or_else(|| format!("unsupported entity {entity}"))?
        .to_string();
    let mut i = 4;
    let mut sel = Select {
        entity,
        conditions: Vec::new(),
        order: None,
        start: 1,
        max: 100,
    };
    if kw(i, "where") {
        i += 1;
        loop {
            let field = toks.get(i).ok_or("missing field")?.clone();
            let op = toks
                .get(i + 1)
                .ok_or("missing operator")?
                .to_ascii_uppercase();
            i += 2;
            let values = match op.as_str() {
                "IN" => {
                    if toks.get(i).map(String::as_str) != Some("(") {
                        return Err("IN needs (".into());
                    }
                    i += 1;
                    let mut vs = Vec::new();
                    loop {
                        vs.push(literal(toks.get(i).ok_or("unterminated IN")?)?);
                        i += 1;
                        match toks.get(i).map(String::as_str) {
                            Some(",") => i += 1,
                            Some(")") => {
                                i += 1;
                                break;
                            }
                            _ => return Err("IN list needs , or )".into()),
                        }
                    }
                    vs
                }
                "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "LIKE" => {
                    let v = literal(toks.get(i).ok_or("missing value")?)?;
                    i += 1;
                    vec![v]
                }
                other => return Err(format!("unsupported operator {other}")),
            };
            sel.conditions.push(Condition { field, op, values });
            if kw(i, "and") {
                i += 1;
            } else if kw(i, "or") {
                return Err("OR is not supported".into());
            } else {
                break;
            }
        }
    }
    if kw(i, "orderby") {
        let field = toks.get(i + 1).ok_or("ORDERBY needs a field")?.clone();
        i += 2;
        let desc = if kw(i, "desc") {
            i += 1;
            true
        } else {
            if kw(i, "asc") {
                i += 1;
            }
            false
        };
        sel.order = Some((field, desc));
    }
    if kw(i, "startposition") {
        sel.start = toks
            .get(i + 1)
            .and_then(|t| t.parse().ok())
            .filter(|n| *n >= 1)
            .ok_or("STARTPOSITION needs a number >= 1")?;
        i += 2;
    }
    if kw(i, "maxresults") {
        sel.max = toks
            .get(i + 1)
            .and_then(|t| t.parse().ok())
            .ok_or("MAXRESULTS needs a number")?;
        if sel.max > 1000 {
            return Err("MAXRESULTS cannot be more than 1000".into());
        }
        i += 2;
    }
    if i != toks.len() {
        return Err(format!("unexpected {:?}", toks[i]));
    }
    Ok(sel)
}

/// The value at a (case-insensitive) dotted path; a leaf object with one of `Address`,
/// `FreeFormNumber`, `URI` or `value` stands for that scalar (`PrimaryEmailAddr = 'x'`).
fn value_at(body: &Map<String, Value>, path: &str) -> Value {
    let mut cur = Value::Object(body.clone());
    for part in path.split('.') {
        let next = cur
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(part)))
            .map(|(_, v)| v.clone());
        match next {
            Some(v) => cur = v,
            None => return Value::Null,
        }
    }
    if let Value::Object(m) = &cur {
        for k in ["Address", "FreeFormNumber", "URI", "value"] {
            if let Some(v) = m.get(k) {
                return v.clone();
            }
        }
    }
    cur
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), _) => x.as_f64()?.partial_cmp(&as_f64(b)?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => {
            if let (Some(tx), Some(ty)) = (parse_time_ms(x), parse_time_ms(y))
                && x.len() >= 10
                && y.len() >= 10
                && x.as_bytes().get(4) == Some(&b'-')
            {
                return Some(tx.cmp(&ty));
            }
            if let (Ok(nx), Ok(ny)) = (x.parse::<f64>(), y.parse::<f64>()) {
                return nx.partial_cmp(&ny);
            }
            Some(x.to_lowercase().cmp(&y.to_lowercase()))
        }
        (Value::String(x), Value::Bool(y)) => Some(if x.eq_ignore_ascii_case(&y.to_string()) {
            std::cmp::Ordering::Equal
        } else {
            std::cmp::Ordering::Less
        }),
        (Value::String(_), Value::Number(_)) => as_f64(a)?.partial_cmp(&as_f64(b)?),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn like(value: &Value, pattern: &str) -> bool {
    let Some(v) = value.as_str() else {
        return false;
    };
    let v = v.to_lowercase();
    let p = pattern.to_lowercase();
    let parts: Vec<&str> = p.split('%').collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match v[pos..].find(part) {
            Some(at) if i > 0 || at == 0 => pos += at + part.len(),
            _ => return false,
        }
    }
    p.ends_with('%') || pos == v.len()
}

fn matches(body: &Map<String, Value>, c: &Condition) -> bool {
    let have = value_at(body, &c.field);
    use std::cmp::Ordering::{Equal, Greater, Less};
    let cmp0 = || c.values.first().and_then(|v| compare(&have, v));
    match c.op.as_str() {
        "=" => cmp0() == Some(Equal),
        "!=" | "<>" => cmp0() != Some(Equal),
        "<" => cmp0() == Some(Less),
        "<=" => matches!(cmp0(), Some(Less | Equal)),
        ">" => cmp0() == Some(Greater),
        ">=" => matches!(cmp0(), Some(Greater | Equal)),
        "IN" => c.values.iter().any(|v| compare(&have, v) == Some(Equal)),
        "LIKE" => c
            .values
            .first()
            .and_then(Value::as_str)
            .is_some_and(|p| like(&have, p)),
        _ => false,
    }
}

fn run_select(s: &Shared, sel: &Select) -> Value {
    let st = s.st();
    let filters_active = sel
        .conditions
        .iter()
        .any(|c| c.field.eq_ignore_ascii_case("Active"));
    let mut rows: Vec<&Stored> = st
        .objects
        .get(&sel.entity)
        .map(|m| m.values().collect())
        .unwrap_or_default();
    rows.retain(|o| {
        (filters_active
            || !is_name_list(&sel.entity)
            || o.body.get("Active") != Some(&Value::Bool(false)))
            && sel.conditions.iter().all(|c| matches(&o.body, c))
    });
    if let Some((field, desc)) = &sel.order {
        rows.sort_by(|a, b| {
            let o = compare(&value_at(&a.body, field), &value_at(&b.body, field))
                .unwrap_or(std::cmp::Ordering::Equal);
            if *desc { o.reverse() } else { o }
        });
    }
    let page: Vec<Value> = rows
        .into_iter()
        .skip(sel.start - 1)
        .take(sel.max)
        .map(|o| Value::Object(o.body.clone()))
        .collect();
    if page.is_empty() {
        json!({})
    } else {
        let n = page.len();
        let mut m = Map::new();
        m.insert(sel.entity.clone(), Value::Array(page));
        m.insert("startPosition".into(), json!(sel.start));
        m.insert("maxResults".into(), json!(n));
        Value::Object(m)
    }
}

fn query_answer(s: &Shared, q: &str) -> Response {
    match parse_select(q) {
        Ok(sel) => axum::Json(json!({"QueryResponse": run_select(s, &sel), "time": time_now(s)}))
            .into_response(),
        Err(e) => fault(
            400,
            "ValidationFault",
            "4000",
            "Error parsing query",
            &format!("QueryParserError: {e}"),
        ),
    }
}

async fn query_get(
    State(s): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match params.get("query") {
        Some(q) => query_answer(&s, q),
        None => fault(
            400,
            "ValidationFault",
            "4000",
            "Error parsing query",
            "QueryParserError: no query",
        ),
    }
}

async fn query_post(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/text") && !ct.starts_with("text/plain") {
        return fault(
            415,
            "ValidationFault",
            "4000",
            "Unsupported Media Type",
            "a query body is application/text",
        );
    }
    query_answer(&s, &String::from_utf8_lossy(&body))
}

// ---------------------------------------------------------------- CDC

async fn cdc(State(s): State<Shared>, Query(params): Query<HashMap<String, String>>) -> Response {
    let Some(since) = params.get("changedSince").and_then(|v| parse_time_ms(v)) else {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            "changedSince is required (ISO 8601)",
        );
    };
    let entities: Vec<String> = params
        .get("entities")
        .map(|e| e.split(',').map(|x| x.trim().to_owned()).collect())
        .unwrap_or_default();
    if entities.is_empty() {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            "entities is required",
        );
    }
    let st = s.st();
    let now = QuickBooksFake::now_ms(&st);
    if since < now - 30 * 24 * 3600 * 1000 {
        drop(st);
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            "changedSince cannot be more than 30 days in the past",
        );
    }
    let mut budget = 1000usize;
    let mut groups = Vec::new();
    for e in &entities {
        let Some(name) = ENTITIES.iter().find(|x| x.eq_ignore_ascii_case(e)) else {
            continue;
        };
        let mut changed: Vec<&Stored> = st
            .objects
            .get(*name)
            .map(|m| m.values().filter(|o| o.updated_ms >= since).collect())
            .unwrap_or_default();
        changed.sort_by_key(|o| o.updated_ms);
        let mut list: Vec<Value> = changed
            .into_iter()
            .map(|o| Value::Object(o.body.clone()))
            .collect();
        list.extend(
            st.deletions
                .iter()
                .filter(|d| d.entity == *name && d.at_ms >= since)
                .map(|d| json!({"status": "Deleted", "domain": "QBO", "Id": d.id.to_string(), "MetaData": {"LastUpdatedTime": intuit_time(d.at_ms)}})),
        );
        list.truncate(budget);
        budget -= list.len();
        let mut m = Map::new();
        if !list.is_empty() {
            m.insert("startPosition".into(), json!(1));
            m.insert("maxResults".into(), json!(list.len()));
            m.insert((*name).to_owned(), Value::Array(list));
        }
        groups.push(Value::Object(m));
    }
    axum::Json(json!({"CDCResponse": [{"QueryResponse": groups}], "time": intuit_time(now)}))
        .into_response()
}

// ---------------------------------------------------------------- writes

/// The outcome of one write: the entity as stored, or a fault.
fn apply(
    st: &mut State0,
    entity: &str,
    operation: &str,
    body: &Map<String, Value>,
) -> Result<Value, Value> {
    let now = QuickBooksFake::now_ms(st);
    let invalid = |code: &str, msg: &str, detail: &str, el: &str| validation(code, msg, detail, el);
    let unique_field = match entity {
        "Customer" => Some("DisplayName"),
        "Item" => Some("Name"),
        _ => None,
    };
    let clash = |st: &State0, field: &str, name: &str, except: Option<u64>| {
        st.objects.get(entity).is_some_and(|m| {
            m.iter().any(|(id, o)| {
                Some(*id) != except
                    && o.body
                        .get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
            })
        })
    };
    let dup = || {
        invalid(
            "6240",
            "Duplicate Name Exists Error",
            "The name supplied already exists. : Another customer, vendor or employee is already using this name. Please use a different name.",
            "",
        )
    };
    let check_refs = |st: &State0, b: &Map<String, Value>| -> Result<(), Value> {
        if entity != "Invoice" {
            return Ok(());
        }
        let exists = |e: &str, id: &Value| {
            id.as_str()
                .and_then(|i| i.parse::<u64>().ok())
                .and_then(|i| st.objects.get(e).and_then(|m| m.get(&i)))
                .is_some_and(|o| o.body.get("Active") != Some(&Value::Bool(false)))
        };
        if let Some(c) = b.get("CustomerRef").and_then(|r| r.get("value"))
            && !exists("Customer", c)
        {
            return Err(invalid(
                "610",
                "Object Not Found",
                "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees.",
                "CustomerRef",
            ));
        }
        for l in b
            .get("Line")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if l.get("DetailType").and_then(Value::as_str) == Some("SalesItemLineDetail") {
                let item = l
                    .get("SalesItemLineDetail")
                    .and_then(|d| d.get("ItemRef"))
                    .and_then(|r| r.get("value"));
                match item {
                    Some(i) if exists("Item", i) => {}
                    _ => {
                        return Err(invalid(
                            "610",
                            "Object Not Found",
                            "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees.",
                            "ItemRef",
                        ));
                    }
                }
            }
            if l.get("Amount").and_then(Value::as_f64).is_none() {
                return Err(invalid(
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter Line.Amount is missing in the request",
                    "Line.Amount",
                ));
            }
        }
        Ok(())
    };
    match operation {
        "create" => {
            let mut b = body.clone();
            for k in ["Id", "SyncToken", "MetaData", "sparse", "domain"] {
                b.remove(k);
            }
            strip_empty(&mut b);
            match entity {
                "Customer" => {
                    if !b.contains_key("DisplayName") {
                        match derived_display_name(&b) {
                            Some(n) => {
                                b.insert("DisplayName".into(), json!(n));
                            }
                            None => {
                                return Err(invalid(
                                    "6000",
                                    "A business validation error has occurred while processing your request",
                                    "Business Validation Error: You must fill out at least one of: Title, GivenName, MiddleName, FamilyName, Suffix or DisplayName",
                                    "DisplayName",
                                ));
                            }
                        }
                    }
                    let name = b
                        .get("DisplayName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if name.contains(':') {
                        return Err(invalid(
                            "2170",
                            "Invalid String",
                            "DisplayName cannot contain a colon (:)",
                            "DisplayName",
                        ));
                    }
                }
                "Item" => {
                    if !b.contains_key("Name") {
                        return Err(invalid(
                            "2020",
                            "Required param missing, need to supply the required value for the API",
                            "Required parameter Name is missing in the request",
                            "Name",
                        ));
                    }
                    b.entry("Type").or_insert(json!("Service"));
                }
                "Invoice" => {
                    if b.get("CustomerRef").and_then(|r| r.get("value")).is_none() {
                        return Err(invalid(
                            "2020",
                            "Required param missing, need to supply the required value for the API",
                            "Required parameter CustomerRef is missing in the request",
                            "CustomerRef",
                        ));
                    }
                    if b.get("Line")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
                    {
                        return Err(invalid(
                            "2020",
                            "Required param missing, need to supply the required value for the API",
                            "Required parameter Line is missing in the request",
                            "Line",
                        ));
                    }
                }
                _ => {}
            }
            if let Some(f) = unique_field
                && let Some(n) = b.get(f).and_then(Value::as_str)
                && clash(st, f, n, None)
            {
                return Err(dup());
            }
            check_refs(st, &b)?;
            let id = st.next_id;
            st.next_id += 1;
            b.insert("Id".into(), json!(id.to_string()));
            if is_name_list(entity) {
                b.entry("Active").or_insert(json!(true));
            }
            if entity == "Invoice" && !b.contains_key("DocNumber") {
                b.insert("DocNumber".into(), json!(format!("{}", 1000 + id)));
            }
            let mut o = Stored {
                body: b,
                sync_token: 0,
                updated_ms: now,
            };
            finish(entity, &mut o, now);
            let out = Value::Object(o.body.clone());
            st.objects
                .entry(entity.to_owned())
                .or_default()
                .insert(id, o);
            st.applied_ops += 1;
            Ok(out)
        }
        "update" | "delete" => {
            let id = body
                .get("Id")
                .and_then(Value::as_str)
                .and_then(|i| i.parse::<u64>().ok());
            let token = body
                .get("SyncToken")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let (Some(id), Some(token)) = (id, token) else {
                return Err(invalid(
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter Id and SyncToken are missing in the request",
                    "Id",
                ));
            };
            let Some(current) = st.objects.get(entity).and_then(|m| m.get(&id)).cloned() else {
                return Err(invalid(
                    "610",
                    "Object Not Found",
                    "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees.",
                    "",
                ));
            };
            if token != current.sync_token.to_string() {
                return Err(invalid(
                    "5010",
                    "Stale Object Error",
                    "Stale Object Error : You and root were working on this at the same time. root finished before you did, so your work was not saved.",
                    "",
                ));
            }
            if operation == "delete" {
                if is_name_list(entity) {
                    return Err(invalid(
                        "6000",
                        "A business validation error has occurred while processing your request",
                        &format!(
                            "Business Validation Error: {entity} cannot be deleted; make it inactive (Active=false)"
                        ),
                        "",
                    ));
                }
                if let Some(m) = st.objects.get_mut(entity) {
                    m.remove(&id);
                }
                st.deletions.push(Deletion {
                    entity: entity.to_owned(),
                    id,
                    at_ms: now,
                });
                st.applied_ops += 1;
                return Ok(json!({"status": "Deleted", "domain": "QBO", "Id": id.to_string()}));
            }
            let sparse = body.get("sparse").and_then(Value::as_bool).unwrap_or(false);
            let mut next = if sparse {
                current.body.clone()
            } else {
                // A full update replaces the object: omitted writable elements are blanked.
                let mut keep = Map::new();
                for k in ["Id", "MetaData", "Balance", "TotalAmt"] {
                    if let Some(v) = current.body.get(k) {
                        keep.insert(k.into(), v.clone());
                    }
                }
                keep
            };
            for (k, v) in body {
                if matches!(
                    k.as_str(),
                    "Id" | "SyncToken" | "MetaData" | "sparse" | "domain"
                ) {
                    continue;
                }
                next.insert(k.clone(), v.clone());
            }
            strip_empty(&mut next);
            if is_name_list(entity) {
                next.entry("Active").or_insert(json!(true));
            }
            if let Some(f) = unique_field {
                match next.get(f).and_then(Value::as_str) {
                    Some(n) if clash(st, f, n, Some(id)) => return Err(dup()),
                    Some(n) if f == "DisplayName" && n.contains(':') => {
                        return Err(invalid(
                            "2170",
                            "Invalid String",
                            "DisplayName cannot contain a colon (:)",
                            "DisplayName",
                        ));
                    }
                    None if entity == "Customer" => {
                        let derived =
                            derived_display_name(&next).unwrap_or_else(|| format!("Customer {id}"));
                        next.insert("DisplayName".into(), json!(derived));
                    }
                    _ => {}
                }
            }
            check_refs(st, &next)?;
            let mut o = Stored {
                body: next,
                sync_token: current.sync_token + 1,
                updated_ms: now,
            };
            finish(entity, &mut o, now);
            let out = Value::Object(o.body.clone());
            st.objects
                .entry(entity.to_owned())
                .or_default()
                .insert(id, o);
            st.applied_ops += 1;
            Ok(out)
        }
        other => Err(invalid(
            "2010",
            "Request has invalid or unsupported property",
            &format!("unsupported operation {other}"),
            "operation",
        )),
    }
}

/// Empty strings clear an element, as in QuickBooks; empty nested objects vanish.
fn strip_empty(m: &mut Map<String, Value>) {
    m.retain(|_, v| {
        if let Value::Object(inner) = v {
            strip_empty(inner);
            !inner.is_empty()
        } else {
            !matches!(v, Value::String(s) if s.is_empty()) && !v.is_null()
        }
    });
}

async fn batch(
    State(s): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let request_id = params.get("requestid").cloned();
    if let Some(r) = &request_id {
        if r.len() > 36 {
            return fault(
                400,
                "ValidationFault",
                "2010",
                "Request has invalid or unsupported property",
                "requestid of a batch is at most 36 characters",
            );
        }
        if let Some((status, body)) = s.st().replies.get(r).cloned() {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                axum::Json(body),
            )
                .into_response();
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            "the body is not JSON",
        );
    };
    let Some(items) = req.get("BatchItemRequest").and_then(Value::as_array) else {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            "BatchItemRequest is required",
        );
    };
    if items.len() > 30 {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            &format!(
                "a batch holds at most 30 BatchItemRequest, got {}",
                items.len()
            ),
        );
    }
    let mut answers = Vec::new();
    for item in items {
        let bid = item
            .get("bId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if request_id.is_some() && bid.len() > 10 {
            answers.push(json!({"bId": bid, "Fault": validation("2010", "Request has invalid or unsupported property", "bId is at most 10 characters when a requestid is given", "bId")}));
            continue;
        }
        if let Some(q) = item.get("Query").and_then(Value::as_str) {
            let a = match parse_select(q) {
                Ok(sel) => json!({"bId": bid, "QueryResponse": run_select(&s, &sel)}),
                Err(e) => {
                    json!({"bId": bid, "Fault": validation("4000", "Error parsing query", &format!("QueryParserError: {e}"), "")})
                }
            };
            answers.push(a);
            continue;
        }
        let op = item
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let found = ENTITIES.iter().find_map(|e| {
            item.get(*e)
                .and_then(Value::as_object)
                .map(|b| (*e, b.clone()))
        });
        let Some((entity, ebody)) = found else {
            answers.push(json!({"bId": bid, "Fault": validation("2010", "Request has invalid or unsupported property", "no supported entity in the item", "")}));
            continue;
        };
        let result = {
            let mut st = s.st();
            apply(&mut st, entity, &op, &ebody)
        };
        answers.push(match result {
            Ok(v) => json!({"bId": bid, entity: v}),
            Err(f) => json!({"bId": bid, "Fault": f}),
        });
    }
    let out = json!({"BatchItemResponse": answers, "time": time_now(&s)});
    if let Some(r) = request_id {
        s.st().replies.insert(r, (200, out.clone()));
    }
    axum::Json(out).into_response()
}

fn entity_of(path: &str) -> Option<&'static str> {
    ENTITIES
        .iter()
        .copied()
        .find(|e| e.eq_ignore_ascii_case(path))
}

async fn single_write(
    State(s): State<Shared>,
    Path((_realm, entity)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(entity) = entity_of(&entity) else {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            &format!("unsupported entity {entity}"),
        );
    };
    let request_id = params.get("requestid").cloned();
    if let Some(r) = &request_id
        && let Some((status, body)) = s.st().replies.get(r).cloned()
    {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            axum::Json(body),
        )
            .into_response();
    }
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            "the body is not a JSON object",
        );
    };
    let op = match params.get("operation").map(String::as_str) {
        Some("delete") => "delete",
        _ if b.contains_key("Id") => "update",
        _ => "create",
    };
    let result = {
        let mut st = s.st();
        apply(&mut st, entity, op, &b)
    };
    let (status, out) = match result {
        Ok(v) => (200, json!({entity: v, "time": time_now(&s)})),
        Err(f) => (400, json!({"Fault": f, "time": time_now(&s)})),
    };
    if let Some(r) = request_id {
        s.st().replies.insert(r, (status, out.clone()));
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        axum::Json(out),
    )
        .into_response()
}

async fn single_read(
    State(s): State<Shared>,
    Path((_realm, entity, id)): Path<(String, String, String)>,
) -> Response {
    let Some(entity) = entity_of(&entity) else {
        return fault(
            400,
            "ValidationFault",
            "2010",
            "Request has invalid or unsupported property",
            &format!("unsupported entity {entity}"),
        );
    };
    match s.get(entity, &id) {
        Some(v) => axum::Json(json!({entity: v, "time": time_now(&s)})).into_response(),
        None => fault(
            400,
            "ValidationFault",
            "610",
            "Object Not Found",
            "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees.",
        ),
    }
}

async fn company_info(State(s): State<Shared>) -> Response {
    axum::Json(json!({
        "CompanyInfo": {"CompanyName": "syncctl fake company", "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": false, "Country": "US", "MetaData": {"CreateTime": intuit_time(0), "LastUpdatedTime": intuit_time(0)}},
        "time": time_now(&s),
    }))
    .into_response()
}

// ---------------------------------------------------------------- demo

fn demo() -> QuickBooksFake {
    let f = QuickBooksFake::new().with_oauth_client(
        "demo-client",
        "demo-secret",
        "qbo-demo-refresh-token",
    );
    f.insert("Customer", json!({"GivenName": "Amy", "FamilyName": "Lauterbach", "PrimaryEmailAddr": {"Address": "amy@example.com"}, "CompanyName": "Amy's Bird Sanctuary"}));
    f.insert("Customer", json!({"GivenName": "Bill", "FamilyName": "Lucchini", "PrimaryEmailAddr": {"Address": "bill@example.com"}, "PrimaryPhone": {"FreeFormNumber": "(415) 555-0100"}}));
    f.insert("Item", json!({"Name": "Consulting", "Type": "Service", "UnitPrice": 150, "IncomeAccountRef": {"value": "1"}}));
    f
}

fn demo_router() -> Router {
    demo().router()
}

/// The `syncctl-fakes serve` entries this fake provides.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    vec![ServiceEntry {
        name: "quickbooks",
        about: "QuickBooks Online Accounting v3 + Intuit OAuth (realm 9341453050298361, token qbo-demo-access-token, client demo-client/demo-secret, refresh qbo-demo-refresh-token)",
        router: demo_router,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_subset_parses() {
        let s = parse_select("select * from customer where Metadata.LastUpdatedTime >= '2026-01-01T00:00:00Z' AND Active IN (true, false) ORDERBY Metadata.LastUpdatedTime STARTPOSITION 3 MAXRESULTS 1000").unwrap();
        assert_eq!(s.entity, "Customer");
        assert_eq!(s.conditions.len(), 2);
        assert_eq!(s.conditions[1].values, vec![json!(true), json!(false)]);
        assert_eq!(s.order, Some(("Metadata.LastUpdatedTime".into(), false)));
        assert_eq!((s.start, s.max), (3, 1000));
        let q = parse_select(r"SELECT * FROM Customer WHERE DisplayName = 'O\'Brien'").unwrap();
        assert_eq!(q.conditions[0].values[0], json!("O'Brien"));
        assert!(parse_select("SELECT * FROM Customer MAXRESULTS 1001").is_err());
        assert!(parse_select("SELECT * FROM Customer WHERE a = 'x' OR b = 'y'").is_err());
        assert!(parse_select("SELECT * FROM Vendor").is_err());
        assert!(parse_select("SELECT Id FROM Customer").is_err());
    }

    #[test]
    fn conditions_compare_times_numbers_and_nested_values() {
        let body = json!({"Id": "12", "PrimaryEmailAddr": {"Address": "a@x.com"}, "MetaData": {"LastUpdatedTime": "2026-01-02T00:00:00-08:00"}, "DisplayName": "Amy Lee"});
        let b = body.as_object().unwrap();
        let c = |q: &str| {
            parse_select(&format!("SELECT * FROM Customer WHERE {q}"))
                .unwrap()
                .conditions[0]
                .clone()
        };
        assert!(matches(b, &c("PrimaryEmailAddr = 'a@x.com'")));
        assert!(matches(
            b,
            &c("Metadata.LastUpdatedTime >= '2026-01-02T08:00:00Z'")
        ));
        assert!(!matches(
            b,
            &c("Metadata.LastUpdatedTime > '2026-01-02T08:00:00Z'")
        ));
        assert!(matches(b, &c("Id IN ('3', '12')")));
        assert!(matches(b, &c("Id > '9'")), "ids compare as numbers");
        assert!(matches(b, &c("DisplayName LIKE 'amy%'")));
        assert!(!matches(b, &c("DisplayName LIKE '%bob%'")));
    }

    #[test]
    fn forms_decode() {
        let f = form_pairs(b"grant_type=refresh_token&refresh_token=a%2Bb+c");
        assert_eq!(f["refresh_token"], "a+b c");
    }
}
