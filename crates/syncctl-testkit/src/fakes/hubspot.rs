//! A stateful fake of the HubSpot CRM v3 object APIs (contacts, companies, deals, products,
//! line items) and the v4 associations batch read.
//!
//! What it does as HubSpot does (`../shared/reference/sync.md` §3, HubSpot's API reference):
//!
//! * **Auth**: `Authorization: Bearer <private app token>`; anything else is 401 with
//!   `category: INVALID_AUTHENTICATION`.
//! * **Reads**: `GET /crm/v3/objects/{type}` pages by `after` (ascending id, `limit` ≤ 100,
//!   `properties=a,b`, `archived`); `POST …/search` with `filterGroups` (EQ, NEQ, GT, GTE, LT,
//!   LTE, IN, HAS_PROPERTY, NOT_HAS_PROPERTY), one sort, `limit` ≤ 200 and an offset `after`;
//!   paging past 10 000 results is a 400, and archived records never appear; `batch/read`
//!   (by id or a unique `idProperty`), missing ids are a 207 with `OBJECT_NOT_FOUND`.
//!   `GET …?archived=true` lists archived objects only, each with `archivedAt`.
//! * **Associations**: `POST /crm/v4/associations/{from}/{to}/batch/read` (≤ 1000 inputs)
//!   answers each object's associated ids as `toObjectId` (a number) with its
//!   `associationTypes`, 500 per object and page (`paging.next.after`, passed back in the
//!   input's `after`); an object with none is a 207 error with
//!   `subCategory: crm.associations.NO_ASSOCIATIONS_FOUND`, as HubSpot answers.
//!   [`HubSpotFake::associate`] links two objects both ways, as the HubSpot UI does.
//! * **Writes**: `batch/create`, `batch/update`, `batch/upsert` (by a unique `idProperty`,
//!   `new: true|false`), `batch/archive` (204); more than 100 inputs is a 400. Invalid values
//!   (an email without `@`, a property the object does not have, a read-only property) fail
//!   that record only: 207 multi-status with per-record errors carrying `category`,
//!   `context.ids` and `objectWriteTraceId`. `batch/create` with an email that already exists
//!   fails the whole request with 409 `Contact already exists. Existing ID: …`, as HubSpot does.
//! * **Values come back normalised**: every property is a string; emails are trimmed and
//!   lower-cased; the modified-time property (`lastmodifieddate` on contacts,
//!   `hs_lastmodifieddate` elsewhere) moves on every write.
//! * **Rate limits**: a rolling 10-second window (default 190, Professional) and a daily
//!   quota (default 625 000) over every call, and 5 searches per second on their own. Answers
//!   carry `X-HubSpot-RateLimit-Daily`, `-Daily-Remaining`, `-Interval-Milliseconds`, `-Max`
//!   and `-Remaining` (search answers carry none); a refusal is 429 with `Retry-After` and a
//!   body naming `policyName` (`TEN_SECONDLY_ROLLING`, `DAILY`, `SECONDLY` for search).
//!   [`HubSpotFake::time_scale`] shrinks every window so benchmarks run in seconds.
//! * **Fault plan**: [`HubSpotFake::fail_next`] answers the next calls of one kind with a
//!   status (500 bursts, 429 storms), [`HubSpotFake::exhaust_daily`] uses up the quota,
//!   [`HubSpotFake::rotate_token`] makes the current token invalid mid-run, and
//!   [`HubSpotFake::edit`] is a concurrent editor in the HubSpot UI. `FakeServer`'s generic
//!   faults (dropped connections, delays) apply on top.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};

use crate::services::ServiceEntry;

/// The object types the fake serves.
pub const OBJECT_TYPES: &[&str] = &["contacts", "companies", "deals", "products", "line_items"];

/// The property HubSpot moves on every write of `object`.
#[must_use]
pub fn modified_property(object: &str) -> &'static str {
    if object == "contacts" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

/// Properties each object has (besides `hs_object_id`, `createdate` and the modified time).
fn known_properties(object: &str) -> &'static [&'static str] {
    match object {
        "contacts" => &[
            "email",
            "firstname",
            "lastname",
            "phone",
            "company",
            "address",
            "city",
            "state",
            "zip",
            "country",
            "jobtitle",
            "lifecyclestage",
            "syncctl_id",
        ],
        "companies" => &[
            "name",
            "domain",
            "phone",
            "address",
            "city",
            "state",
            "zip",
            "country",
            "industry",
            "syncctl_id",
        ],
        "products" => &["name", "price", "hs_sku", "description", "syncctl_id"],
        "line_items" => &[
            "name",
            "hs_product_id",
            "quantity",
            "price",
            "amount",
            "syncctl_id",
        ],
        _ => &[
            "dealname",
            "amount",
            "dealstage",
            "pipeline",
            "closedate",
            "syncctl_id",
        ],
    }
}

/// Properties whose values must be unique (usable as `idProperty`).
fn unique_properties(object: &str) -> &'static [&'static str] {
    if object == "contacts" {
        &["email", "syncctl_id"]
    } else {
        &["syncctl_id"]
    }
}

/// A call kind, for call counts and the fault plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    /// `GET /crm/v3/objects/{type}`.
    List,
    /// `POST …/search`.
    Search,
    /// `POST …/batch/read`.
    BatchRead,
    /// `POST …/batch/create`.
    BatchCreate,
    /// `POST …/batch/update`.
    BatchUpdate,
    /// `POST …/batch/upsert`.
    BatchUpsert,
    /// `POST …/batch/archive`.
    BatchArchive,
    /// `POST /crm/v4/associations/{from}/{to}/batch/read`.
    AssociationsRead,
}

impl CallKind {
    /// Whether the call writes.
    #[must_use]
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::BatchCreate | Self::BatchUpdate | Self::BatchUpsert | Self::BatchArchive
        )
    }
}

/// The published limits the fake enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls per rolling 10-second window (190 Professional/Enterprise, 100 Free/Starter).
    pub per_ten_seconds: u32,
    /// Calls per day (625 000 Professional).
    pub daily: u64,
    /// Searches per second (5).
    pub search_per_second: u32,
    /// The most results one search query pages through (10 000).
    pub search_cap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_ten_seconds: 190,
            daily: 625_000,
            search_per_second: 5,
            search_cap: 10_000,
        }
    }
}

/// One stored CRM object.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeObject {
    /// `hs_object_id`.
    pub id: u64,
    /// Properties as HubSpot stores them (strings).
    pub properties: BTreeMap<String, String>,
    /// `createdAt`.
    pub created_at: DateTime<Utc>,
    /// `updatedAt` (also the modified-time property).
    pub updated_at: DateTime<Utc>,
    /// Archived (soft-deleted).
    pub archived: bool,
}

struct Planned {
    kind: CallKind,
    status: u16,
    retry_after: Option<u64>,
    times: u32,
}

struct State0 {
    token: String,
    objects: BTreeMap<String, BTreeMap<u64, FakeObject>>,
    next_id: u64,
    last_write_ms: i64,
    limits: Limits,
    scale: f64,
    window: VecDeque<Instant>,
    search_window: VecDeque<Instant>,
    daily_used: u64,
    calls: BTreeMap<CallKind, u64>,
    refused: u64,
    plan: Vec<Planned>,
    /// `(from type, from id, to type, to id)`, stored both ways.
    associations: std::collections::BTreeSet<(String, u64, String, u64)>,
}

type Shared = Arc<Mutex<State0>>;

fn lock(s: &Shared) -> MutexGuard<'_, State0> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fake. Clones share state.
#[derive(Clone)]
pub struct HubSpotFake {
    state: Shared,
}

impl HubSpotFake {
    /// An empty portal accepting `token`.
    #[must_use]
    pub fn new(token: &str) -> Self {
        let objects = OBJECT_TYPES
            .iter()
            .map(|t| ((*t).to_owned(), BTreeMap::new()))
            .collect();
        Self {
            state: Arc::new(Mutex::new(State0 {
                token: token.to_owned(),
                objects,
                next_id: 1001,
                last_write_ms: 0,
                limits: Limits::default(),
                scale: 1.0,
                window: VecDeque::new(),
                search_window: VecDeque::new(),
                daily_used: 0,
                calls: BTreeMap::new(),
                refused: 0,
                plan: Vec::new(),
                associations: std::collections::BTreeSet::new(),
            })),
        }
    }

    fn st(&self) -> MutexGuard<'_, State0> {
        lock(&self.state)
    }

    /// Enforces these limits instead of Professional's.
    #[must_use]
    pub fn limits(self, limits: Limits) -> Self {
        self.st().limits = limits;
        self
    }

    /// Every rate-limit window lasts `1/scale` of its real length (benchmarks).
    #[must_use]
    pub fn time_scale(self, scale: f64) -> Self {
        self.st().scale = scale.max(1.0);
        self
    }

    /// Creates an object directly (as a user in the HubSpot UI would); returns its id.
    pub fn seed(&self, object: &str, properties: &[(&str, &str)]) -> u64 {
        let props: Map<String, Value> = properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        let mut st = self.st();
        create_object(&mut st, object, &props)
    }

    /// Creates an object directly as last modified (and created) at `at`: a record another
    /// application wrote at a known time, for incremental-read checks; returns its id. Later
    /// writes still get the current time.
    pub fn seed_at(&self, object: &str, properties: &[(&str, &str)], at: DateTime<Utc>) -> u64 {
        let id = self.seed(object, properties);
        let mut st = self.st();
        if let Some(o) = st.objects.get_mut(object).and_then(|m| m.get_mut(&id)) {
            o.created_at = at;
            o.properties.insert("createdate".into(), iso(at));
            touch(object, o, at);
        }
        id
    }

    /// A concurrent editor: sets properties of an existing object (moves its modified time).
    pub fn edit(&self, object: &str, id: u64, properties: &[(&str, &str)]) {
        let mut st = self.st();
        let now = next_write_time(&mut st);
        if let Some(o) = st.objects.get_mut(object).and_then(|m| m.get_mut(&id)) {
            for (k, v) in properties {
                o.properties.insert(
                    (*k).to_owned(),
                    normalise(k, &Value::String((*v).to_owned())),
                );
            }
            touch(object, o, now);
        }
    }

    /// Archives an object directly (its `archivedAt` is now).
    pub fn archive(&self, object: &str, id: u64) {
        let mut st = self.st();
        let now = next_write_time(&mut st);
        if let Some(o) = st.objects.get_mut(object).and_then(|m| m.get_mut(&id)) {
            o.archived = true;
            o.updated_at = now;
        }
    }

    /// Associates two objects (both directions, as HubSpot does), as a user in the UI would.
    pub fn associate(&self, from: &str, from_id: u64, to: &str, to_id: u64) {
        let mut st = self.st();
        st.associations
            .insert((from.to_owned(), from_id, to.to_owned(), to_id));
        st.associations
            .insert((to.to_owned(), to_id, from.to_owned(), from_id));
    }

    /// Removes the association of two objects (both directions).
    pub fn dissociate(&self, from: &str, from_id: u64, to: &str, to_id: u64) {
        let mut st = self.st();
        st.associations
            .remove(&(from.to_owned(), from_id, to.to_owned(), to_id));
        st.associations
            .remove(&(to.to_owned(), to_id, from.to_owned(), from_id));
    }

    /// One stored object.
    #[must_use]
    pub fn get(&self, object: &str, id: u64) -> Option<FakeObject> {
        self.st()
            .objects
            .get(object)
            .and_then(|m| m.get(&id))
            .cloned()
    }

    /// Every live (not archived) object of a type, by id.
    #[must_use]
    pub fn all(&self, object: &str) -> Vec<FakeObject> {
        self.st()
            .objects
            .get(object)
            .map(|m| m.values().filter(|o| !o.archived).cloned().collect())
            .unwrap_or_default()
    }

    /// The live object whose `property` equals `value` (after normalisation).
    #[must_use]
    pub fn find(&self, object: &str, property: &str, value: &str) -> Vec<FakeObject> {
        let want = normalise(property, &Value::String(value.to_owned()));
        self.all(object)
            .into_iter()
            .filter(|o| o.properties.get(property) == Some(&want))
            .collect()
    }

    /// Calls answered (not refused) per kind.
    #[must_use]
    pub fn calls(&self, kind: CallKind) -> u64 {
        self.st().calls.get(&kind).copied().unwrap_or(0)
    }

    /// Calls answered that write.
    #[must_use]
    pub fn write_calls(&self) -> u64 {
        self.st()
            .calls
            .iter()
            .filter(|(k, _)| k.is_write())
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls answered in all.
    #[must_use]
    pub fn total_calls(&self) -> u64 {
        self.st().calls.values().sum()
    }

    /// Calls refused with 429.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.st().refused
    }

    /// The next `times` calls of `kind` are answered with `status` (and `Retry-After` when
    /// given) without touching any data: 5xx bursts, 429 storms.
    pub fn fail_next(&self, kind: CallKind, status: u16, retry_after: Option<u64>, times: u32) {
        self.st().plan.push(Planned {
            kind,
            status,
            retry_after,
            times,
        });
    }

    /// Uses up the daily quota: every later call is a 429 with `policyName: DAILY`.
    pub fn exhaust_daily(&self) {
        let mut st = self.st();
        st.daily_used = st.limits.daily;
    }

    /// Leaves `remaining` calls of today's quota.
    pub fn daily_remaining(&self, remaining: u64) {
        let mut st = self.st();
        st.daily_used = st.limits.daily.saturating_sub(remaining);
    }

    /// The private app's token is rotated: the old one gets 401 from now on.
    pub fn rotate_token(&self, new_token: &str) {
        self.st().token = new_token.to_owned();
    }

    /// The router, with the CRM API at `/crm/v3/objects`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/crm/v3/objects/{object}", get(list))
            .route("/crm/v3/objects/{object}/search", post(search))
            .route("/crm/v3/objects/{object}/batch/{op}", post(batch))
            .route(
                "/crm/v4/associations/{from}/{to}/batch/read",
                post(associations_read),
            )
            .layer(middleware::from_fn_with_state(self.state.clone(), gate))
            .with_state(self.state.clone())
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn next_write_time(st: &mut State0) -> DateTime<Utc> {
    // Strictly increasing, so two writes in one millisecond still order.
    let ms = Utc::now().timestamp_millis().max(st.last_write_ms + 1);
    st.last_write_ms = ms;
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
}

fn touch(object: &str, o: &mut FakeObject, now: DateTime<Utc>) {
    o.updated_at = now;
    o.properties
        .insert(modified_property(object).to_owned(), iso(now));
}

/// A value as HubSpot stores it: a string; emails trimmed and lower-cased.
fn normalise(property: &str, v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if property == "email" {
        s.trim().to_lowercase()
    } else {
        s
    }
}

fn create_object(st: &mut State0, object: &str, props: &Map<String, Value>) -> u64 {
    let id = st.next_id;
    st.next_id += 1;
    let now = next_write_time(st);
    let mut o = FakeObject {
        id,
        properties: BTreeMap::new(),
        created_at: now,
        updated_at: now,
        archived: false,
    };
    for (k, v) in props {
        o.properties.insert(k.clone(), normalise(k, v));
    }
    o.properties.insert("hs_object_id".into(), id.to_string());
    o.properties.insert("createdate".into(), iso(now));
    touch(object, &mut o, now);
    st.objects
        .entry(object.to_owned())
        .or_default()
        .insert(id, o);
    id
}

fn error_body(category: &str, message: &str) -> Value {
    json!({
        "status": "error",
        "message": message,
        "correlationId": uuid::Uuid::new_v4().to_string(),
        "category": category,
    })
}

fn error(status: u16, category: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(error_body(category, message)),
    )
        .into_response()
}

fn kind_of(method: &axum::http::Method, path: &str) -> Option<CallKind> {
    if method == axum::http::Method::POST
        && path.starts_with("/crm/v4/associations/")
        && path.ends_with("/batch/read")
    {
        return Some(CallKind::AssociationsRead);
    }
    let rest = path.strip_prefix("/crm/v3/objects/")?;
    let mut parts = rest.split('/');
    let _object = parts.next()?;
    match (method.as_str(), parts.next(), parts.next()) {
        ("GET", None, None) => Some(CallKind::List),
        ("POST", Some("search"), None) => Some(CallKind::Search),
        ("POST", Some("batch"), Some("read")) => Some(CallKind::BatchRead),
        ("POST", Some("batch"), Some("create")) => Some(CallKind::BatchCreate),
        ("POST", Some("batch"), Some("update")) => Some(CallKind::BatchUpdate),
        ("POST", Some("batch"), Some("upsert")) => Some(CallKind::BatchUpsert),
        ("POST", Some("batch"), Some("archive")) => Some(CallKind::BatchArchive),
        _ => None,
    }
}

fn rate_limited(policy: &str, message: &str, retry_after_secs: u64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "policyName": policy,
            "requestId": uuid::Uuid::new_v4().to_string(),
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

fn header(h: &mut HeaderMap, name: &'static str, v: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
        h.insert(name, v);
    }
}

enum Gate {
    Answer(Response),
    Pass,
    Counted(CallKind, Option<(u64, u64, u32, usize)>),
}

/// Auth, the fault plan, and the rate limits, in that order (HubSpot checks the token first).
async fn gate(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let kind = kind_of(req.method(), req.uri().path());
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let decision = (|| {
        let mut st = lock(&s);
        if bearer.as_deref() != Some(st.token.as_str()) {
            return Gate::Answer(error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ));
        }
        let Some(kind) = kind else {
            return Gate::Pass;
        };
        if let Some(p) = st.plan.iter_mut().find(|p| p.kind == kind && p.times > 0) {
            p.times -= 1;
            let (status, retry_after) = (p.status, p.retry_after);
            st.plan.retain(|p| p.times > 0);
            if status == 429 {
                st.refused += 1;
                return Gate::Answer(rate_limited(
                    "TEN_SECONDLY_ROLLING",
                    "You have reached your ten_secondly_rolling limit.",
                    retry_after.unwrap_or(1),
                ));
            }
            let mut r = error(status, "INTERNAL_ERROR", "injected failure");
            if let Some(secs) = retry_after {
                header(r.headers_mut(), "retry-after", secs);
            }
            return Gate::Answer(r);
        }
        let now = Instant::now();
        let scale = st.scale;
        let window = Duration::from_secs_f64(10.0 / scale);
        let second = Duration::from_secs_f64(1.0 / scale);
        if st.daily_used >= st.limits.daily {
            st.refused += 1;
            let midnight = (Utc::now().date_naive() + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .map_or(3600, |m| {
                    u64::try_from((m.and_utc() - Utc::now()).num_seconds()).unwrap_or(3600)
                });
            return Gate::Answer(rate_limited(
                "DAILY",
                "You have reached your daily limit.",
                midnight,
            ));
        }
        if kind == CallKind::Search {
            while st
                .search_window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= second)
            {
                st.search_window.pop_front();
            }
            if st.search_window.len() >= st.limits.search_per_second as usize {
                st.refused += 1;
                return Gate::Answer(rate_limited(
                    "SECONDLY",
                    "You have reached your secondly limit.",
                    1,
                ));
            }
            st.search_window.push_back(now);
            st.daily_used += 1;
            Gate::Counted(kind, None)
        } else {
            while st
                .window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                st.window.pop_front();
            }
            if st.window.len() >= st.limits.per_ten_seconds as usize {
                st.refused += 1;
                let wait = st
                    .window
                    .front()
                    .map_or(window, |t| window.saturating_sub(now.duration_since(*t)));
                return Gate::Answer(rate_limited(
                    "TEN_SECONDLY_ROLLING",
                    "You have reached your ten_secondly_rolling limit.",
                    wait.as_secs_f64().ceil() as u64,
                ));
            }
            st.window.push_back(now);
            st.daily_used += 1;
            Gate::Counted(
                kind,
                Some((
                    st.limits.daily,
                    st.limits.daily - st.daily_used,
                    st.limits.per_ten_seconds,
                    st.limits.per_ten_seconds as usize - st.window.len(),
                )),
            )
        }
    })();
    let (kind, rate_headers) = match decision {
        Gate::Answer(r) => return r,
        Gate::Pass => return next.run(req).await,
        Gate::Counted(k, h) => (k, h),
    };
    let mut resp = next.run(req).await;
    if resp.status().is_success() {
        *lock(&s).calls.entry(kind).or_default() += 1;
    }
    if let Some((daily, daily_left, max, left)) = rate_headers {
        let h = resp.headers_mut();
        header(h, "x-hubspot-ratelimit-daily", daily);
        header(h, "x-hubspot-ratelimit-daily-remaining", daily_left);
        header(h, "x-hubspot-ratelimit-interval-milliseconds", 10_000);
        header(h, "x-hubspot-ratelimit-max", max);
        header(h, "x-hubspot-ratelimit-remaining", left);
    }
    resp
}

fn object_json(object: &str, o: &FakeObject, properties: Option<&[String]>) -> Value {
    let props: Map<String, Value> = match properties {
        Some(want) => {
            let mut m: Map<String, Value> = want
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        o.properties
                            .get(p)
                            .map_or(Value::Null, |v| Value::String(v.clone())),
                    )
                })
                .collect();
            // HubSpot always adds these three.
            for p in ["hs_object_id", "createdate", modified_property(object)] {
                if let Some(v) = o.properties.get(p) {
                    m.insert(p.to_owned(), Value::String(v.clone()));
                }
            }
            m
        }
        None => o
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    };
    let mut v = json!({
        "id": o.id.to_string(),
        "properties": props,
        "createdAt": iso(o.created_at),
        "updatedAt": iso(o.updated_at),
        "archived": o.archived,
    });
    if o.archived {
        v["archivedAt"] = Value::String(iso(o.updated_at));
    }
    v
}

/// The 400 HubSpot answers for an object type it does not have.
fn check_object(object: &str) -> Option<Response> {
    (!OBJECT_TYPES.contains(&object)).then(|| {
        error(
            400,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {object}"),
        )
    })
}

async fn list(
    State(s): State<Shared>,
    Path(object): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = check_object(&object) {
        return r;
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    if limit == 0 || limit > 100 {
        return error(
            400,
            "VALIDATION_ERROR",
            &format!("limit must be between 1 and 100, got {limit}"),
        );
    }
    let after: u64 = match q.get("after").map(|a| a.parse()) {
        None => 0,
        Some(Ok(a)) => a,
        Some(Err(_)) => return error(400, "VALIDATION_ERROR", "after must be a number"),
    };
    let archived = q.get("archived").is_some_and(|a| a == "true");
    let props: Option<Vec<String>> = q
        .get("properties")
        .map(|p| p.split(',').map(str::to_owned).collect());
    let st = lock(&s);
    let all = &st.objects[&object];
    let mut page: Vec<&FakeObject> = all
        .range(after..)
        .map(|(_, o)| o)
        .filter(|o| o.archived == archived)
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| page[limit].id);
    page.truncate(limit);
    let mut body = json!({
        "results": page.iter().map(|o| object_json(&object, o, props.as_deref())).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        body["paging"] = json!({"next": {"after": n.to_string(), "link": format!("/crm/v3/objects/{object}?after={n}")}});
    }
    axum::Json(body).into_response()
}

fn filter_matches(object: &str, o: &FakeObject, f: &Value) -> Result<bool, String> {
    let name = f["propertyName"]
        .as_str()
        .ok_or("filter without propertyName")?;
    let op = f["operator"].as_str().ok_or("filter without operator")?;
    let have = if name == "hs_object_id" {
        Some(o.id.to_string())
    } else {
        o.properties.get(name).cloned()
    };
    let is_time = name == modified_property(object) || name == "createdate";
    // Dates compare as epoch milliseconds (filters send ms strings or ISO), ids as numbers.
    let key = |v: &str| -> Option<f64> {
        if is_time {
            v.parse::<f64>().ok().or_else(|| {
                DateTime::parse_from_rfc3339(v)
                    .ok()
                    .map(|d| d.timestamp_millis() as f64)
            })
        } else {
            v.parse::<f64>().ok()
        }
    };
    let value = f["value"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| f["value"].as_i64().map(|n| n.to_string()));
    let cmp = |want: &str| -> Option<std::cmp::Ordering> {
        let h = have.as_deref()?;
        match (key(h), key(want)) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => Some(h.cmp(want)),
        }
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    Ok(match op {
        "HAS_PROPERTY" => have.as_deref().is_some_and(|h| !h.is_empty()),
        "NOT_HAS_PROPERTY" => have.as_deref().is_none_or(str::is_empty),
        "IN" | "NOT_IN" => {
            let values: Vec<String> = f["values"]
                .as_array()
                .ok_or("IN needs values")?
                .iter()
                .filter_map(|v| {
                    v.as_str()
                        .map(|s| normalise(name, &Value::String(s.to_owned())))
                })
                .collect();
            let hit = have.as_ref().is_some_and(|h| values.contains(h));
            if op == "IN" { hit } else { !hit }
        }
        _ => {
            let want = value.ok_or("filter without value")?;
            let want = normalise(name, &Value::String(want));
            let c = cmp(&want);
            match op {
                "EQ" => c == Some(Equal),
                "NEQ" => c != Some(Equal),
                "GT" => c == Some(Greater),
                "GTE" => matches!(c, Some(Greater | Equal)),
                "LT" => c == Some(Less),
                "LTE" => matches!(c, Some(Less | Equal)),
                other => return Err(format!("unsupported operator {other}")),
            }
        }
    })
}

async fn search(State(s): State<Shared>, Path(object): Path<String>, body: Bytes) -> Response {
    if let Some(r) = check_object(&object) {
        return r;
    }
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "VALIDATION_ERROR", "Invalid input JSON");
    };
    let limit = q["limit"].as_u64().unwrap_or(10) as usize;
    if limit == 0 || limit > 200 {
        return error(
            400,
            "VALIDATION_ERROR",
            &format!("limit must be between 1 and 200, got {limit}"),
        );
    }
    let after: usize = match &q["after"] {
        Value::Null => 0,
        Value::String(a) => match a.parse() {
            Ok(a) => a,
            Err(_) => return error(400, "VALIDATION_ERROR", "after must be an integer string"),
        },
        Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
        _ => return error(400, "VALIDATION_ERROR", "after must be an integer string"),
    };
    let st = lock(&s);
    if after + limit > st.limits.search_cap {
        return error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "There was a problem with the request. The search API returns at most {} results.",
                st.limits.search_cap
            ),
        );
    }
    let groups = q["filterGroups"].as_array().cloned().unwrap_or_default();
    if groups.len() > 5 {
        return error(400, "VALIDATION_ERROR", "too many filterGroups (max 5)");
    }
    let mut hits: Vec<&FakeObject> = Vec::new();
    for o in st.objects[&object].values().filter(|o| !o.archived) {
        let mut any = groups.is_empty();
        for g in &groups {
            let filters = g["filters"].as_array().cloned().unwrap_or_default();
            let mut all = true;
            for f in &filters {
                match filter_matches(&object, o, f) {
                    Ok(true) => {}
                    Ok(false) => {
                        all = false;
                        break;
                    }
                    Err(e) => return error(400, "VALIDATION_ERROR", &e),
                }
            }
            if all {
                any = true;
                break;
            }
        }
        if any {
            hits.push(o);
        }
    }
    if let Some(sort) = q["sorts"].as_array().and_then(|a| a.first()) {
        let prop = sort["propertyName"]
            .as_str()
            .unwrap_or("hs_object_id")
            .to_owned();
        let desc = sort["direction"].as_str() == Some("DESCENDING");
        let modified = modified_property(&object);
        hits.sort_by(|a, b| {
            let ka = if prop == modified {
                a.updated_at.timestamp_millis().to_string()
            } else {
                a.properties.get(&prop).cloned().unwrap_or_default()
            };
            let kb = if prop == modified {
                b.updated_at.timestamp_millis().to_string()
            } else {
                b.properties.get(&prop).cloned().unwrap_or_default()
            };
            let o = match (ka.parse::<f64>(), kb.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                _ => ka.cmp(&kb),
            }
            .then(a.id.cmp(&b.id));
            if desc { o.reverse() } else { o }
        });
    }
    let props: Option<Vec<String>> = q["properties"].as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    let total = hits.len();
    let page: Vec<Value> = hits
        .iter()
        .skip(after)
        .take(limit)
        .map(|o| object_json(&object, o, props.as_deref()))
        .collect();
    let mut body = json!({"total": total, "results": page});
    if after + limit < total {
        body["paging"] = json!({"next": {"after": (after + limit).to_string()}});
    }
    axum::Json(body).into_response()
}

/// One per-record error of a multi-status answer.
fn record_error(category: &str, message: &str, ids: &[String], trace: Option<&str>) -> Value {
    let mut e = json!({
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
    });
    if let Some(t) = trace {
        e["context"]["objectWriteTraceId"] = json!([t]);
    }
    e
}

/// Why `props` cannot be written to `object`, if they cannot.
fn invalid_properties(object: &str, props: &Map<String, Value>) -> Option<(String, String)> {
    let known = known_properties(object);
    for (k, v) in props {
        if k == "hs_object_id" || k == "createdate" || k == modified_property(object) {
            return Some((
                k.clone(),
                format!("Property \"{k}\" is a read only property; its value cannot be set."),
            ));
        }
        if !known.contains(&k.as_str()) {
            return Some((k.clone(), format!("Property \"{k}\" does not exist")));
        }
        if k == "email" {
            let e = normalise(k, v);
            if !e.is_empty() && (!e.contains('@') || e.starts_with('@') || e.ends_with('@')) {
                return Some((
                    k.clone(),
                    format!("Property values were not valid: INVALID_EMAIL \"{e}\""),
                ));
            }
        }
    }
    None
}

fn multi_status(results: Vec<Value>, errors: Vec<Value>, ok: StatusCode) -> Response {
    let now = iso(Utc::now());
    let status = if errors.is_empty() {
        ok
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "requestedAt": now,
        "startedAt": now,
        "completedAt": now,
    });
    if !errors.is_empty() {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
    }
    (status, axum::Json(body)).into_response()
}

fn find_by(st: &State0, object: &str, prop: &str, value: &str) -> Option<u64> {
    let want = normalise(prop, &Value::String(value.to_owned()));
    st.objects[object]
        .values()
        .find(|o| !o.archived && o.properties.get(prop) == Some(&want))
        .map(|o| o.id)
}

#[allow(clippy::too_many_lines)] // one arm per batch operation, each short
async fn batch(
    State(s): State<Shared>,
    Path((object, op)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(r) = check_object(&object) {
        return r;
    }
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "VALIDATION_ERROR", "Invalid input JSON");
    };
    let Some(inputs) = q["inputs"].as_array().cloned() else {
        return error(400, "VALIDATION_ERROR", "inputs is required");
    };
    if inputs.len() > 100 {
        return error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "Batch input size limit exceeded: {} inputs, the limit is 100",
                inputs.len()
            ),
        );
    }
    let mut st = lock(&s);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let trace = |i: &Value| i["objectWriteTraceId"].as_str().map(str::to_owned);
    match op.as_str() {
        "read" => {
            let props: Option<Vec<String>> = q["properties"].as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            });
            let id_prop = q["idProperty"].as_str();
            if let Some(p) = id_prop
                && !unique_properties(&object).contains(&p)
            {
                return error(
                    400,
                    "VALIDATION_ERROR",
                    &format!("{p} is not a unique property"),
                );
            }
            let mut missing = Vec::new();
            for i in &inputs {
                let id = i["id"].as_str().unwrap_or_default().to_owned();
                let found = match id_prop {
                    Some(p) => find_by(&st, &object, p, &id),
                    None => id
                        .parse()
                        .ok()
                        .filter(|n| st.objects[&object].get(n).is_some_and(|o| !o.archived)),
                };
                match found {
                    Some(n) => results.push(object_json(
                        &object,
                        &st.objects[&object][&n],
                        props.as_deref(),
                    )),
                    None => missing.push(id),
                }
            }
            if !missing.is_empty() {
                errors.push(record_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some objects, they may be deleted or not exist.",
                    &missing,
                    None,
                ));
            }
            multi_status(results, errors, StatusCode::OK)
        }
        "create" => {
            if object == "contacts" {
                for i in &inputs {
                    if let Some(e) = i["properties"]["email"].as_str()
                        && let Some(existing) = find_by(&st, &object, "email", e)
                    {
                        return error(
                            409,
                            "CONFLICT",
                            &format!("Contact already exists. Existing ID: {existing}"),
                        );
                    }
                }
            }
            for i in &inputs {
                let props = i["properties"].as_object().cloned().unwrap_or_default();
                if let Some((_, msg)) = invalid_properties(&object, &props) {
                    errors.push(record_error(
                        "VALIDATION_ERROR",
                        &msg,
                        &[],
                        trace(i).as_deref(),
                    ));
                    continue;
                }
                let id = create_object(&mut st, &object, &props);
                let mut r = object_json(&object, &st.objects[&object][&id], None);
                if let Some(t) = trace(i) {
                    r["objectWriteTraceId"] = json!(t);
                }
                results.push(r);
            }
            multi_status(results, errors, StatusCode::CREATED)
        }
        "update" => {
            for i in &inputs {
                let id_raw = i["id"].as_str().unwrap_or_default().to_owned();
                let found = match i["idProperty"].as_str() {
                    Some(p) => find_by(&st, &object, p, &id_raw),
                    None => id_raw
                        .parse()
                        .ok()
                        .filter(|n| st.objects[&object].get(n).is_some_and(|o| !o.archived)),
                };
                let Some(id) = found else {
                    errors.push(record_error(
                        "OBJECT_NOT_FOUND",
                        &format!("Object {id_raw} not found"),
                        &[id_raw],
                        trace(i).as_deref(),
                    ));
                    continue;
                };
                let props = i["properties"].as_object().cloned().unwrap_or_default();
                if let Some((_, msg)) = invalid_properties(&object, &props) {
                    errors.push(record_error(
                        "VALIDATION_ERROR",
                        &msg,
                        &[id.to_string()],
                        trace(i).as_deref(),
                    ));
                    continue;
                }
                if object == "contacts"
                    && let Some(e) = props.get("email").and_then(Value::as_str)
                    && find_by(&st, &object, "email", e).is_some_and(|other| other != id)
                {
                    errors.push(record_error(
                        "CONFLICT",
                        &format!(
                            "A contact with the email '{}' already exists.",
                            normalise("email", &json!(e))
                        ),
                        &[id.to_string()],
                        trace(i).as_deref(),
                    ));
                    continue;
                }
                let now = next_write_time(&mut st);
                let Some(o) = st.objects.get_mut(&object).and_then(|m| m.get_mut(&id)) else {
                    continue;
                };
                for (k, v) in &props {
                    o.properties.insert(k.clone(), normalise(k, v));
                }
                touch(&object, o, now);
                let mut r = object_json(&object, o, None);
                if let Some(t) = trace(i) {
                    r["objectWriteTraceId"] = json!(t);
                }
                results.push(r);
            }
            multi_status(results, errors, StatusCode::OK)
        }
        "upsert" => {
            for i in &inputs {
                let Some(p) = i["idProperty"].as_str() else {
                    errors.push(record_error(
                        "VALIDATION_ERROR",
                        "idProperty is required for upsert",
                        &[],
                        trace(i).as_deref(),
                    ));
                    continue;
                };
                if !unique_properties(&object).contains(&p) {
                    errors.push(record_error(
                        "VALIDATION_ERROR",
                        &format!("{p} is not a unique property"),
                        &[],
                        trace(i).as_deref(),
                    ));
                    continue;
                }
                let key = i["id"].as_str().unwrap_or_default().to_owned();
                let mut props = i["properties"].as_object().cloned().unwrap_or_default();
                props.insert(p.to_owned(), Value::String(key.clone()));
                if let Some((_, msg)) = invalid_properties(&object, &props) {
                    errors.push(record_error(
                        "VALIDATION_ERROR",
                        &msg,
                        &[key],
                        trace(i).as_deref(),
                    ));
                    continue;
                }
                let (id, new) = match find_by(&st, &object, p, &key) {
                    Some(id) => {
                        let now = next_write_time(&mut st);
                        if let Some(o) = st.objects.get_mut(&object).and_then(|m| m.get_mut(&id)) {
                            for (k, v) in &props {
                                o.properties.insert(k.clone(), normalise(k, v));
                            }
                            touch(&object, o, now);
                        }
                        (id, false)
                    }
                    None => (create_object(&mut st, &object, &props), true),
                };
                let mut r = object_json(&object, &st.objects[&object][&id], None);
                r["new"] = json!(new);
                if let Some(t) = trace(i) {
                    r["objectWriteTraceId"] = json!(t);
                }
                results.push(r);
            }
            multi_status(results, errors, StatusCode::OK)
        }
        "archive" => {
            let now_archive = next_write_time(&mut st);
            for i in &inputs {
                if let Some(o) = i["id"]
                    .as_str()
                    .and_then(|id| id.parse::<u64>().ok())
                    .and_then(|id| st.objects.get_mut(&object).and_then(|m| m.get_mut(&id)))
                {
                    o.archived = true;
                    o.updated_at = now_archive;
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        other => error(404, "NOT_FOUND", &format!("no batch operation {other}")),
    }
}

/// Associated ids per object and page, as HubSpot pages them.
const ASSOCIATIONS_PAGE: usize = 500;

/// HubSpot's singular object names, as its association messages spell them.
fn singular(object: &str) -> &str {
    match object {
        "contacts" => "contact",
        "companies" => "company",
        "deals" => "deal",
        "products" => "product",
        "line_items" => "line_item",
        other => other,
    }
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read`.
async fn associations_read(
    State(s): State<Shared>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(r) = check_object(&from).or_else(|| check_object(&to)) {
        return r;
    }
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "VALIDATION_ERROR", "Invalid input JSON");
    };
    let Some(inputs) = q["inputs"].as_array().cloned() else {
        return error(400, "VALIDATION_ERROR", "inputs is required");
    };
    if inputs.len() > 1000 {
        return error(
            400,
            "VALIDATION_ERROR",
            &format!(
                "Batch input size limit exceeded: {} inputs, the limit is 1000",
                inputs.len()
            ),
        );
    }
    let st = lock(&s);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for i in &inputs {
        let Some(id) = i["id"].as_str().and_then(|id| id.parse::<u64>().ok()) else {
            return error(400, "VALIDATION_ERROR", "every input needs an id");
        };
        let after: u64 = i["after"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let linked: Vec<u64> = st
            .associations
            .range((from.clone(), id, to.clone(), after)..)
            .take_while(|(f, fid, t, _)| *f == from && *fid == id && *t == to)
            .map(|(_, _, _, to_id)| *to_id)
            .filter(|to_id| *to_id >= after)
            .filter(|to_id| st.objects[&to].get(to_id).is_some_and(|o| !o.archived))
            .take(ASSOCIATIONS_PAGE + 1)
            .collect();
        if linked.is_empty() {
            errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No {} is associated with {} {id}.", singular(&to), singular(&from)),
                "context": {
                    "fromObjectId": [id.to_string()],
                    "fromObjectType": [singular(&from)],
                    "toObjectType": [singular(&to)],
                },
            }));
            continue;
        }
        let page = &linked[..linked.len().min(ASSOCIATIONS_PAGE)];
        let mut r = json!({
            "from": {"id": id.to_string()},
            "to": page.iter().map(|to_id| json!({
                "toObjectId": to_id,
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": association_type(&from, &to), "label": null}],
            })).collect::<Vec<_>>(),
        });
        if let Some(next) = linked.get(ASSOCIATIONS_PAGE) {
            r["paging"] = json!({"next": {"after": next.to_string()}});
        }
        results.push(r);
    }
    multi_status(results, errors, StatusCode::OK)
}

/// The default association type id of a pair (HubSpot's published ids for the common pairs).
fn association_type(from: &str, to: &str) -> u32 {
    match (from, to) {
        ("deals", "contacts") => 3,
        ("contacts", "deals") => 4,
        ("deals", "companies") => 341,
        ("companies", "deals") => 342,
        ("deals", "line_items") => 19,
        ("line_items", "deals") => 20,
        ("contacts", "companies") => 279,
        ("companies", "contacts") => 280,
        _ => 1,
    }
}

fn demo_router() -> Router {
    let fake = HubSpotFake::new("pat-demo-token");
    for (email, first, last) in [
        ("ada@example.com", "Ada", "Lovelace"),
        ("grace@example.com", "Grace", "Hopper"),
        ("alan@example.com", "Alan", "Turing"),
    ] {
        fake.seed(
            "contacts",
            &[("email", email), ("firstname", first), ("lastname", last)],
        );
    }
    fake.router()
}

/// `syncctl-fakes serve hubspot`.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    vec![ServiceEntry {
        name: "hubspot",
        about: "HubSpot CRM v3 objects: contacts, companies, deals (3 demo contacts, token pat-demo-token)",
        router: demo_router,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_stored_as_hubspot_stores_them() {
        assert_eq!(
            normalise("email", &json!(" Ada@Example.COM ")),
            "ada@example.com"
        );
        assert_eq!(normalise("amount", &json!(12.5)), "12.5");
        assert_eq!(normalise("firstname", &json!(" Ada ")), " Ada ");
    }

    #[test]
    fn invalid_values_are_named() {
        let bad = json!({"email": "nope"});
        let (field, msg) = invalid_properties("contacts", bad.as_object().unwrap()).unwrap();
        assert_eq!(field, "email");
        assert!(msg.contains("INVALID_EMAIL"), "{msg}");
        let ro = json!({"lastmodifieddate": "x"});
        assert!(invalid_properties("contacts", ro.as_object().unwrap()).is_some());
        let ok = json!({"email": "a@b.co", "firstname": "A"});
        assert!(invalid_properties("contacts", ok.as_object().unwrap()).is_none());
    }
}
