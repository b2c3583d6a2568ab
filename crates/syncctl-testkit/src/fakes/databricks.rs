//! Stateful fake of the Databricks Jobs API (2.1 and 2.2) and the workspace OAuth M2M token
//! endpoint.
//!
//! What it models, because syncctl depends on it:
//! * jobs found by exact (case-insensitive) name through a paginated `jobs/list`: `offset` +
//!   `has_more` in 2.1 (limit ≤ 25), `page_token` + `next_page_token` in 2.2 (limit ≤ 100);
//! * runs that move one life-cycle step per `runs/get` (the job's path, then `TERMINATED`),
//!   multi-task runs where tasks fail with a `runs/get-output` error, the legacy `state`
//!   object (2.1 and 2.2) and the newer `status` object with `termination_details` (2.2),
//!   run pages in 2.2: each `runs/get` page is the whole run with the next ≤ `task_page_size`
//!   (100) slice of `tasks`, `iterations`, `job_clusters`, `job_parameters` and
//!   `repair_history`, and `next_page_token` while any has more;
//! * `idempotency_token`: a second `run-now` with the same token returns the first run;
//! * `runs/cancel` (TERMINATING, then TERMINATED/CANCELED), `runs/repair` with
//!   `latest_repair_id` checks, `runs/get-output` refusing the parent of a multi-task run;
//! * bearer auth with PATs or OAuth tokens from `POST /oidc/v1/token` (client credentials
//!   in HTTP basic auth, `scope=all-apis`), tokens that expire on the fake's clock;
//! * 429 with `Retry-After` and Databricks' error bodies; unknown routes answer 404.
//!
//! The fake's clock can be moved forward ([`DatabricksFake::advance_clock`]) so a test can
//! make a run look as if an earlier try started it; every response carries a `Date` header
//! from that clock.
// The request helpers return the ready error response as their `Err`.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use crate::services::ServiceEntry;

/// The host every `run_page_url` points at.
pub const FAKE_WORKSPACE_URL: &str = "https://fake-workspace.cloud.databricks.com";

/// How one task of a job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// `SUCCESS`.
    Success,
    /// `FAILED`, with this `runs/get-output` error, every time (repairs too).
    Failed(String),
    /// `FAILED` with this error the first time; a repair makes it succeed.
    FailsOnce(String),
}

/// A job the fake knows.
#[derive(Debug, Clone)]
pub struct FakeJob {
    id: i64,
    name: String,
    tasks: Vec<(String, TaskOutcome)>,
    path: Vec<String>,
    final_life: String,
    final_result: Option<String>,
    job_clusters: Vec<String>,
    iterations: usize,
}

impl FakeJob {
    /// A job with one task `main` that succeeds after `PENDING → RUNNING → TERMINATING`.
    #[must_use]
    pub fn new(id: i64, name: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            tasks: Vec::new(),
            path: ["PENDING", "RUNNING", "TERMINATING"]
                .map(str::to_owned)
                .to_vec(),
            final_life: "TERMINATED".to_owned(),
            final_result: None,
            job_clusters: Vec::new(),
            iterations: 0,
        }
    }

    /// Adds a shared job cluster; runs list it in `job_clusters`.
    #[must_use]
    pub fn job_cluster(mut self, key: &str) -> Self {
        self.job_clusters.push(key.to_owned());
        self
    }

    /// The job's for-each task fans out into `n` iterations, which runs list in `iterations`.
    #[must_use]
    pub fn for_each_iterations(mut self, n: usize) -> Self {
        self.iterations = n;
        self
    }

    /// Adds a task (the default `main` task is used only when none is added).
    #[must_use]
    pub fn task(mut self, key: &str, outcome: TaskOutcome) -> Self {
        self.tasks.push((key.to_owned(), outcome));
        self
    }

    /// The life-cycle states a run shows, one per `runs/get`, before it ends. Any name
    /// works, including ones the real API does not have yet.
    #[must_use]
    pub fn lifecycle(mut self, states: &[&str]) -> Self {
        self.path = states.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// How runs end, overriding the result the tasks imply: life-cycle state (normally
    /// `TERMINATED`) and result (`SUCCESS_WITH_FAILURES`, `TIMEDOUT`, …; `None` for
    /// `INTERNAL_ERROR`/`SKIPPED`, which carry none).
    #[must_use]
    pub fn ends(mut self, life: &str, result: Option<&str>) -> Self {
        life.clone_into(&mut self.final_life);
        self.final_result = result.map(str::to_owned);
        self
    }

    fn task_specs(&self) -> Vec<(String, TaskOutcome)> {
        if self.tasks.is_empty() {
            vec![("main".to_owned(), TaskOutcome::Success)]
        } else {
            self.tasks.clone()
        }
    }
}

/// What a test can check about a run afterwards.
#[derive(Debug, Clone)]
pub struct FakeRunInfo {
    /// The run id.
    pub run_id: i64,
    /// Its job.
    pub job_id: i64,
    /// The token it was started with.
    pub idempotency_token: Option<String>,
    /// The `run-now` body.
    pub body: Value,
    /// Whether `runs/cancel` was called while it was active.
    pub cancelled: bool,
    /// Repair ids, oldest first.
    pub repairs: Vec<i64>,
    /// Whether it has ended.
    pub terminal: bool,
}

#[derive(Debug, Clone)]
struct TaskRun {
    key: String,
    run_id: i64,
    attempt: i64,
    outcome: TaskOutcome,
    /// The task's outcome for this attempt: `None` success, `Some(error)` failure.
    error: Option<String>,
}

#[derive(Debug, Clone)]
struct FakeRun {
    run_id: i64,
    job_id: i64,
    token: Option<String>,
    body: Value,
    start_ms: i64,
    path: Vec<String>,
    final_life: String,
    final_result: Option<String>,
    tasks: Vec<TaskRun>,
    /// `runs/get` calls since the run (or its latest repair) started.
    seen: usize,
    /// `seen` when a cancel arrived.
    cancel_at: Option<usize>,
    /// Frozen once terminal: life-cycle, result, end time.
    ended: Option<(String, Option<String>, i64)>,
    repairs: Vec<i64>,
    job_clusters: Vec<String>,
    iterations: usize,
}

struct Throttle {
    path_contains: String,
    times: u32,
    retry_after: u64,
}

struct State0 {
    jobs: BTreeMap<i64, FakeJob>,
    runs: BTreeMap<i64, FakeRun>,
    tokens: HashMap<String, i64>,
    next_id: i64,
    pats: Vec<String>,
    clients: Vec<(String, String)>,
    issued: HashMap<String, i64>,
    token_ttl_secs: u64,
    token_requests: u32,
    clock_offset_ms: i64,
    task_page_size: usize,
    list_page_cap: usize,
    status_only: bool,
    throttles: VecDeque<Throttle>,
    off_spec_run_now: bool,
}

/// The fake. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct DatabricksFake {
    state: Arc<Mutex<State0>>,
}

impl Default for DatabricksFake {
    fn default() -> Self {
        Self::new()
    }
}

type Shared = Arc<Mutex<State0>>;

fn lock(s: &Shared) -> MutexGuard<'_, State0> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DatabricksFake {
    /// An empty workspace: no jobs, no credentials.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State0 {
                jobs: BTreeMap::new(),
                runs: BTreeMap::new(),
                tokens: HashMap::new(),
                next_id: 1000,
                pats: Vec::new(),
                clients: Vec::new(),
                issued: HashMap::new(),
                token_ttl_secs: 3600,
                token_requests: 0,
                clock_offset_ms: 0,
                task_page_size: 100,
                list_page_cap: 100,
                status_only: false,
                throttles: VecDeque::new(),
                off_spec_run_now: false,
            })),
        }
    }

    fn st(&self) -> MutexGuard<'_, State0> {
        lock(&self.state)
    }

    /// Accepts this personal access token.
    #[must_use]
    pub fn with_pat(self, token: &str) -> Self {
        self.st().pats.push(token.to_owned());
        self
    }

    /// Accepts this service principal at `/oidc/v1/token`.
    #[must_use]
    pub fn with_client(self, client_id: &str, client_secret: &str) -> Self {
        self.st()
            .clients
            .push((client_id.to_owned(), client_secret.to_owned()));
        self
    }

    /// Lifetime of issued OAuth tokens (default 3600 s).
    #[must_use]
    pub fn token_ttl(self, secs: u64) -> Self {
        self.st().token_ttl_secs = secs;
        self
    }

    /// Tasks per `runs/get` page in 2.2 (default 100, as the real API).
    #[must_use]
    pub fn task_page_size(self, n: usize) -> Self {
        self.st().task_page_size = n.max(1);
        self
    }

    /// At most this many jobs per `jobs/list` page, whatever the limit asked.
    #[must_use]
    pub fn list_page_cap(self, n: usize) -> Self {
        self.st().list_page_cap = n.max(1);
        self
    }

    /// 2.2 runs carry only the newer `status` object, no legacy `state`.
    #[must_use]
    pub fn status_only(self) -> Self {
        self.st().status_only = true;
        self
    }

    /// Adds a job.
    #[must_use]
    pub fn job(self, job: FakeJob) -> Self {
        self.st().jobs.insert(job.id, job);
        self
    }

    /// Moves the fake's clock forward (run start times and the `Date` header follow it).
    pub fn advance_clock(&self, d: Duration) {
        self.st().clock_offset_ms += i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    }

    /// The next `times` requests whose path contains `path_contains` get 429 with
    /// `Retry-After: retry_after`.
    pub fn throttle(&self, path_contains: &str, times: u32, retry_after: u64) {
        self.st().throttles.push_back(Throttle {
            path_contains: path_contains.to_owned(),
            times,
            retry_after,
        });
    }

    /// Invalidates every OAuth token issued so far (the next call with one gets the 403
    /// "Invalid access token.").
    pub fn revoke_tokens(&self) {
        self.st().issued.clear();
    }

    /// Canary: `run-now` answers with `run_id` as a string, which no spec allows.
    pub fn answer_run_now_off_spec(&self) {
        self.st().off_spec_run_now = true;
    }

    /// How many OAuth tokens were issued.
    #[must_use]
    pub fn token_requests(&self) -> u32 {
        self.st().token_requests
    }

    /// Every run, oldest first.
    #[must_use]
    pub fn runs(&self) -> Vec<FakeRunInfo> {
        self.st()
            .runs
            .values()
            .map(|r| FakeRunInfo {
                run_id: r.run_id,
                job_id: r.job_id,
                idempotency_token: r.token.clone(),
                body: r.body.clone(),
                cancelled: r.cancel_at.is_some(),
                repairs: r.repairs.clone(),
                terminal: r.ended.is_some(),
            })
            .collect()
    }

    /// The router with the Jobs API under `/api` (as a real workspace serves it) and the
    /// token endpoint at `/oidc/v1/token`.
    pub fn router(&self) -> Router {
        self.build("/api")
    }

    /// The Jobs API at the root (`/2.1/jobs/...`), the way the vendor 2.1 spec writes its
    /// paths, for Prism contract tests.
    pub fn router_at_root(&self) -> Router {
        self.build("")
    }

    fn build(&self, prefix: &str) -> Router {
        let jobs = Router::new()
            .route("/{version}/jobs/list", get(list_jobs))
            .route("/{version}/jobs/run-now", post(run_now))
            .route("/{version}/jobs/runs/get", get(get_run))
            .route("/{version}/jobs/runs/get-output", get(get_output))
            .route("/{version}/jobs/runs/cancel", post(cancel_run))
            .route("/{version}/jobs/runs/repair", post(repair_run))
            .route_layer(middleware::from_fn_with_state(
                self.state.clone(),
                require_bearer,
            ));
        let jobs = if prefix.is_empty() {
            jobs
        } else {
            Router::new().nest(prefix, jobs)
        };
        jobs.route("/oidc/v1/token", post(issue_token))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(
                self.state.clone(),
                throttle_and_date,
            ))
            .with_state(self.state.clone())
    }
}

fn now_ms(st: &State0) -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0);
    real + st.clock_offset_ms
}

fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A Databricks error body.
fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({ "error_code": code, "message": message.into() })),
    )
        .into_response()
}

fn invalid(message: impl Into<String>) -> Response {
    error(400, "INVALID_PARAMETER_VALUE", message)
}

async fn not_found(req: Request) -> Response {
    error(
        404,
        "ENDPOINT_NOT_FOUND",
        format!("No API found for '{} {}'", req.method(), req.uri().path()),
    )
}

async fn throttle_and_date(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let throttled = {
        let mut st = lock(&s);
        let path = req.uri().path().to_owned();
        let hit = st
            .throttles
            .iter_mut()
            .find(|t| t.times > 0 && path.contains(&t.path_contains))
            .map(|t| {
                t.times -= 1;
                t.retry_after
            });
        st.throttles.retain(|t| t.times > 0);
        hit
    };
    let mut resp = match throttled {
        Some(secs) => {
            let mut r = error(
                429,
                "REQUEST_LIMIT_EXCEEDED",
                "Too many requests. Please wait a moment and try again.",
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        None => next.run(req).await,
    };
    let date = http_date(now_ms(&lock(&s)));
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert("date", v);
    }
    resp
}

async fn require_bearer(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let ok = {
        let st = lock(&s);
        let now = now_ms(&st);
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| {
                st.pats.iter().any(|p| p == t) || st.issued.get(t).is_some_and(|exp| *exp > now)
            })
    };
    if ok {
        next.run(req).await
    } else {
        // What the workspace gateway answers for an invalid, expired or revoked token.
        invalid_token()
    }
}

/// 403 with a numeric `error_code` and `X-Databricks-Reason-Phrase`, as the gateway sends it.
fn invalid_token() -> Response {
    let mut resp = (
        StatusCode::FORBIDDEN,
        axum::Json(json!({"error_code": 403, "message": "Invalid access token."})),
    )
        .into_response();
    resp.headers_mut().insert(
        "x-databricks-reason-phrase",
        HeaderValue::from_static("Invalid access token."),
    );
    resp
}

fn form_pairs(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode_form(k), decode_form(v)))
        .collect()
}

fn decode_form(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn issue_token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let oauth_error = |status: StatusCode, code: &str, desc: &str| {
        (
            status,
            axum::Json(json!({ "error": code, "error_description": desc })),
        )
            .into_response()
    };
    let creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let form = form_pairs(&body);
    let mut st = lock(&s);
    let Some((id, secret)) = creds else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    };
    if !st.clients.iter().any(|(i, s)| *i == id && *s == secret) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if form.get("scope").map(String::as_str) != Some("all-apis") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope must be all-apis",
        );
    }
    st.token_requests += 1;
    let token = format!(
        "fake-oauth-{}-{}",
        st.token_requests,
        uuid::Uuid::new_v4().simple()
    );
    let ttl = st.token_ttl_secs;
    let exp = now_ms(&st) + i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX);
    st.issued.insert(token.clone(), exp);
    axum::Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": "all-apis",
    }))
    .into_response()
}

/// The API version from the path, or the 404 the real service gives for unknown versions.
fn version(v: &str) -> Result<&'static str, Response> {
    match v {
        "2.1" => Ok("2.1"),
        "2.2" => Ok("2.2"),
        other => Err(error(
            404,
            "ENDPOINT_NOT_FOUND",
            format!("No API found for version {other}"),
        )),
    }
}

fn parse_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(error(
            400,
            "MALFORMED_REQUEST",
            "Invalid JSON given in the body of the request - expected a map",
        )),
    }
}

fn int_field(m: &serde_json::Map<String, Value>, name: &str) -> Result<i64, Response> {
    match m.get(name) {
        Some(v) => v
            .as_i64()
            .ok_or_else(|| invalid(format!("Invalid value for parameter {name}"))),
        None => Err(invalid(format!("Missing required field: {name}"))),
    }
}

fn int_query(q: &HashMap<String, String>, name: &str) -> Result<i64, Response> {
    match q.get(name) {
        Some(v) => v
            .parse()
            .map_err(|_| invalid(format!("Invalid value for parameter {name}"))),
        None => Err(invalid(format!("Missing required field: {name}"))),
    }
}

/// Checks the run-now parameter types the API enforces.
fn check_params(m: &serde_json::Map<String, Value>) -> Result<(), Response> {
    for key in [
        "job_parameters",
        "notebook_params",
        "python_named_params",
        "sql_params",
    ] {
        if let Some(v) = m.get(key) {
            let ok = v
                .as_object()
                .is_some_and(|o| o.values().all(Value::is_string));
            if !ok {
                return Err(invalid(format!(
                    "{key} must be a map from strings to strings"
                )));
            }
        }
    }
    for key in ["python_params", "jar_params", "spark_submit_params"] {
        if let Some(v) = m.get(key) {
            let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return Err(invalid(format!("{key} must be a list of strings")));
            }
        }
    }
    if m.contains_key("jar_params") && m.contains_key("notebook_params") {
        return Err(invalid(
            "jar_params cannot be specified in conjunction with notebook_params",
        ));
    }
    Ok(())
}

async fn list_jobs(
    State(s): State<Shared>,
    Path(v): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = match version(&v) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let max = if v == "2.1" { 25 } else { 100 };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(l)) if (1..=max).contains(&l) => l,
        Some(_) => {
            return invalid(format!(
                "limit must be greater than 0 and less than or equal to {max}"
            ));
        }
    };
    let st = lock(&s);
    let matching: Vec<&FakeJob> = st
        .jobs
        .values()
        .filter(|j| q.get("name").is_none_or(|n| j.name.eq_ignore_ascii_case(n)))
        .collect();
    let start = if v == "2.1" {
        match q.get("offset").map(|o| o.parse::<usize>()) {
            None => 0,
            Some(Ok(o)) => o,
            Some(Err(_)) => return invalid("Invalid value for parameter offset"),
        }
    } else {
        match q.get("page_token") {
            None => 0,
            Some(t) => match t.strip_prefix("jobs-after-").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => return invalid("Invalid page token"),
            },
        }
    };
    let size = limit.min(st.list_page_cap);
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(size)
        .map(|j| {
            json!({
                "job_id": j.id,
                "created_time": 1_700_000_000_000_i64 + j.id,
                "creator_user_name": "etl@example.com",
                "settings": {
                    "name": j.name,
                    "format": "MULTI_TASK",
                    "max_concurrent_runs": 1,
                },
            })
        })
        .collect();
    let more = start + page.len() < matching.len();
    let mut body = json!({ "jobs": page });
    if v == "2.1" {
        body["has_more"] = json!(more);
    } else if more {
        body["next_page_token"] = json!(format!("jobs-after-{}", start + size));
    }
    axum::Json(body).into_response()
}

async fn run_now(State(s): State<Shared>, Path(v): Path<String>, body: Bytes) -> Response {
    if let Err(r) = version(&v) {
        return r;
    }
    let m = match parse_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let job_id = match int_field(&m, "job_id") {
        Ok(j) => j,
        Err(r) => return r,
    };
    if let Err(r) = check_params(&m) {
        return r;
    }
    let token = match m.get("idempotency_token") {
        None => None,
        Some(Value::String(t)) if t.chars().count() <= 64 => Some(t.clone()),
        Some(Value::String(_)) => {
            return invalid("idempotency_token must have at most 64 characters");
        }
        Some(_) => return invalid("Invalid value for parameter idempotency_token"),
    };
    let mut st = lock(&s);
    let run_id = if let Some(existing) = token.as_ref().and_then(|t| st.tokens.get(t)) {
        *existing
    } else {
        let Some(job) = st.jobs.get(&job_id).cloned() else {
            return invalid(format!("Job {job_id} does not exist."));
        };
        st.next_id += 100;
        let run_id = st.next_id;
        let tasks = job
            .task_specs()
            .into_iter()
            .enumerate()
            .map(|(i, (key, outcome))| TaskRun {
                key,
                run_id: run_id + 1 + i64::try_from(i).unwrap_or(0),
                attempt: 0,
                error: match &outcome {
                    TaskOutcome::Success => None,
                    TaskOutcome::Failed(e) | TaskOutcome::FailsOnce(e) => Some(e.clone()),
                },
                outcome,
            })
            .collect();
        let start_ms = now_ms(&st);
        st.runs.insert(
            run_id,
            FakeRun {
                run_id,
                job_id,
                token: token.clone(),
                body: Value::Object(m.clone()),
                start_ms,
                path: job.path.clone(),
                final_life: job.final_life.clone(),
                final_result: job.final_result.clone(),
                tasks,
                seen: 0,
                cancel_at: None,
                ended: None,
                repairs: Vec::new(),
                job_clusters: job.job_clusters.clone(),
                iterations: job.iterations,
            },
        );
        if let Some(t) = token {
            st.tokens.insert(t, run_id);
        }
        run_id
    };
    if st.off_spec_run_now {
        return axum::Json(json!({ "run_id": run_id.to_string(), "number_in_job": run_id }))
            .into_response();
    }
    axum::Json(json!({ "run_id": run_id, "number_in_job": run_id })).into_response()
}

/// The run's life-cycle state now; moves it one step when `advance`.
fn step(run: &mut FakeRun, now: i64, advance: bool) -> (String, Option<String>) {
    if let Some((life, result, _)) = &run.ended {
        return (life.clone(), result.clone());
    }
    let i = run.seen;
    if advance {
        run.seen += 1;
    }
    if let Some(c) = run.cancel_at {
        if i <= c {
            return ("TERMINATING".to_owned(), None);
        }
        run.ended = Some(("TERMINATED".to_owned(), Some("CANCELED".to_owned()), now));
        return ("TERMINATED".to_owned(), Some("CANCELED".to_owned()));
    }
    if let Some(state) = run.path.get(i) {
        return (state.clone(), None);
    }
    let result = run.final_result.clone().or_else(|| {
        (run.final_life == "TERMINATED").then(|| {
            let any_failed = latest_tasks(run).iter().any(|t| t.error.is_some());
            if any_failed { "FAILED" } else { "SUCCESS" }.to_owned()
        })
    });
    run.ended = Some((run.final_life.clone(), result.clone(), now));
    (run.final_life.clone(), result)
}

fn latest_tasks(run: &FakeRun) -> Vec<&TaskRun> {
    let mut latest: Vec<&TaskRun> = Vec::new();
    for t in &run.tasks {
        match latest.iter_mut().find(|l| l.key == t.key) {
            Some(l) => *l = t,
            None => latest.push(t),
        }
    }
    latest
}

/// The newer `status` object for a legacy life-cycle/result pair.
fn status_of(life: &str, result: Option<&str>, message: &str) -> Value {
    let state = match life {
        "TERMINATED" | "SKIPPED" | "INTERNAL_ERROR" => "TERMINATED",
        "WAITING_FOR_RETRY" => "WAITING",
        other => other,
    };
    let mut status = json!({ "state": state });
    if state == "TERMINATED" {
        let (code, kind) = match (life, result) {
            ("INTERNAL_ERROR", _) => ("INTERNAL_ERROR", "INTERNAL_ERROR"),
            ("SKIPPED", _) => ("SKIPPED", "SUCCESS"),
            (_, Some("SUCCESS")) => ("SUCCESS", "SUCCESS"),
            (_, Some("SUCCESS_WITH_FAILURES")) => ("SUCCESS_WITH_FAILURES", "SUCCESS"),
            (_, Some("CANCELED")) => ("USER_CANCELED", "SUCCESS"),
            (_, Some("TIMEDOUT")) => ("CANCELED", "CLIENT_ERROR"),
            (_, Some("MAXIMUM_CONCURRENT_RUNS_REACHED")) => {
                ("MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR")
            }
            _ => ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
        };
        status["termination_details"] = json!({ "code": code, "type": kind, "message": message });
    }
    status
}

fn run_json(run: &FakeRun, life: &str, result: Option<&str>, v: &str, status_only: bool) -> Value {
    let terminal = run.ended.is_some();
    let end_ms = run.ended.as_ref().map_or(0, |(_, _, e)| *e);
    let failed_task = latest_tasks(run)
        .into_iter()
        .find(|t| t.error.is_some())
        .map(|t| t.key.clone());
    let message = match (result, &failed_task) {
        (Some("FAILED"), Some(k)) => format!("Task {k} failed with message: Workload failed."),
        (Some("CANCELED"), _) => "Run cancelled.".to_owned(),
        _ => String::new(),
    };
    let tasks: Vec<Value> = run
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let superseded = run
                .tasks
                .iter()
                .any(|o| o.key == t.key && o.attempt > t.attempt);
            let (t_life, t_result) = if superseded || terminal {
                let r = match result {
                    Some("CANCELED") if !superseded && t.error.is_none() => "CANCELED",
                    _ if t.error.is_some() => "FAILED",
                    _ => "SUCCESS",
                };
                ("TERMINATED".to_owned(), Some(r.to_owned()))
            } else if matches!(life, "QUEUED" | "PENDING" | "BLOCKED") {
                ("PENDING".to_owned(), None)
            } else {
                ("RUNNING".to_owned(), None)
            };
            let t_done = t_result.is_some();
            let start = run.start_ms + 1000 * i64::try_from(i).unwrap_or(0);
            let t_message = if t_result.as_deref() == Some("FAILED") {
                "Workload failed, see run output for details".to_owned()
            } else {
                String::new()
            };
            let mut task = json!({
                "task_key": t.key,
                "run_id": t.run_id,
                "attempt_number": t.attempt,
                "start_time": start,
                "end_time": if t_done { start + 60_000 } else { 0 },
                "setup_duration": 0,
                "execution_duration": if t_done { 60_000 } else { 0 },
                "cleanup_duration": 0,
                "notebook_task": { "notebook_path": format!("/Jobs/{}", t.key) },
            });
            if !(v == "2.2" && status_only) {
                let mut state = json!({ "life_cycle_state": t_life, "state_message": t_message });
                if let Some(r) = &t_result {
                    state["result_state"] = json!(r);
                }
                task["state"] = state;
            }
            if v == "2.2" {
                task["status"] = status_of(&t_life, t_result.as_deref(), &t_message);
                task["run_duration"] = json!(if t_done { 60_000 } else { 0 });
            }
            task
        })
        .collect();
    let mut out = json!({
        "job_id": run.job_id,
        "run_id": run.run_id,
        "number_in_job": run.run_id,
        "original_attempt_run_id": run.run_id,
        "creator_user_name": "etl@example.com",
        "run_name": format!("job-{}", run.job_id),
        "run_page_url": format!("{FAKE_WORKSPACE_URL}/#job/{}/run/{}", run.job_id, run.run_id),
        "run_type": "JOB_RUN",
        "trigger": "ONE_TIME",
        "attempt_number": 0,
        "start_time": run.start_ms,
        "end_time": end_ms,
        "setup_duration": 0,
        "execution_duration": 0,
        "cleanup_duration": 0,
        "tasks": tasks,
    });
    if !run.job_clusters.is_empty() {
        out["job_clusters"] = run
            .job_clusters
            .iter()
            .map(|k| json!({ "job_cluster_key": k, "new_cluster": { "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2 } }))
            .collect();
    }
    // The run's parameters as runs/get lists them: one {name, value} per run-now job parameter.
    if let Some(params) = run.body.get("job_parameters").and_then(Value::as_object) {
        out["job_parameters"] = params
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
    }
    if run.iterations > 0 {
        let (it_life, it_result) = if terminal {
            ("TERMINATED", Some("SUCCESS"))
        } else {
            ("RUNNING", None)
        };
        out["iterations"] = (0..run.iterations)
            .map(|i| {
                let mut it = json!({
                    "task_key": "for_each_item",
                    "run_id": run.run_id * 100_000 + 50_000 + i64::try_from(i).unwrap_or(0),
                    "attempt_number": 0,
                    "start_time": run.start_ms,
                });
                if !(v == "2.2" && status_only) {
                    let mut state = json!({ "life_cycle_state": it_life, "state_message": "" });
                    if let Some(r) = it_result {
                        state["result_state"] = json!(r);
                    }
                    it["state"] = state;
                }
                if v == "2.2" {
                    it["status"] = status_of(it_life, it_result, "");
                }
                it
            })
            .collect();
    }
    if !(v == "2.2" && status_only) {
        let mut state = json!({ "life_cycle_state": life, "state_message": message });
        if let Some(r) = result {
            state["result_state"] = json!(r);
        }
        if result == Some("CANCELED") {
            state["user_cancelled_or_timedout"] = json!(true);
        }
        out["state"] = state;
    }
    if v == "2.2" {
        out["status"] = status_of(life, result, &message);
        out["run_duration"] = json!(if terminal { end_ms - run.start_ms } else { 0 });
    }
    out
}

/// The arrays Jobs API 2.2 `runs/get` pages (at most 100 elements each per page).
const PAGED_RUN_ARRAYS: [&str; 5] = [
    "tasks",
    "iterations",
    "job_clusters",
    "job_parameters",
    "repair_history",
];

async fn get_run(
    State(s): State<Shared>,
    Path(v): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = match version(&v) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let run_id = match int_query(&q, "run_id") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let include_history = match q.get("include_history").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return invalid("Invalid value for parameter include_history"),
    };
    let page = match (v, q.get("page_token")) {
        (_, None) => 0,
        ("2.2", Some(t)) => match t.strip_prefix("tasks-page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return invalid("Invalid page token"),
        },
        (_, Some(_)) => return invalid("page_token is not supported in API 2.1"),
    };
    let mut st = lock(&s);
    let now = now_ms(&st);
    let page_size = st.task_page_size;
    let status_only = st.status_only;
    let Some(run) = st.runs.get_mut(&run_id) else {
        return invalid(format!("Run {run_id} does not exist."));
    };
    // Only the first page of a request moves the run along.
    let (life, result) = step(run, now, page == 0);
    let mut body = run_json(run, &life, result.as_deref(), v, status_only);
    if include_history {
        let mut history = vec![json!({
            "type": "ORIGINAL",
            "start_time": run.start_ms,
            "task_run_ids": run.tasks.iter().filter(|t| t.attempt == 0).map(|t| t.run_id).collect::<Vec<_>>(),
        })];
        for id in &run.repairs {
            history.push(json!({ "type": "REPAIR", "id": id, "start_time": run.start_ms }));
        }
        body["repair_history"] = json!(history);
    }
    if v == "2.2" {
        // Every page is the whole run object with the next slice of each long array; the
        // token comes while any of them has more.
        let mut more = false;
        for key in PAGED_RUN_ARRAYS {
            let Some(all) = body.get(key).and_then(Value::as_array).cloned() else {
                continue;
            };
            more |= (page + 1) * page_size < all.len();
            body[key] = all
                .into_iter()
                .skip(page * page_size)
                .take(page_size)
                .collect();
        }
        if more {
            body["next_page_token"] = json!(format!("tasks-page-{}", page + 1));
        }
    }
    axum::Json(body).into_response()
}

async fn get_output(
    State(s): State<Shared>,
    Path(v): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = version(&v) {
        return r;
    }
    let id = match int_query(&q, "run_id") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let st = lock(&s);
    if st.runs.get(&id).is_some_and(|run| run.tasks.len() > 1) {
        return invalid(
            "Retrieving the output of runs with multiple tasks is not supported. You must retrieve the output of each individual task run instead.",
        );
    }
    let found = st
        .runs
        .values()
        .find_map(|r| r.tasks.iter().find(|t| t.run_id == id).map(|t| (r, t)))
        .or_else(|| {
            st.runs
                .get(&id)
                .and_then(|r| r.tasks.first().map(|t| (r, t)))
        });
    let Some((run, task)) = found else {
        return invalid(format!("Run {id} does not exist."));
    };
    let superseded = run
        .tasks
        .iter()
        .any(|o| o.key == task.key && o.attempt > task.attempt);
    let done = superseded || run.ended.is_some();
    let mut out = json!({
        "metadata": {
            "job_id": run.job_id,
            "run_id": task.run_id,
            "state": { "life_cycle_state": if done { "TERMINATED" } else { "RUNNING" } },
        },
        "notebook_output": {},
    });
    if done && let Some(e) = &task.error {
        out["error"] = json!(e);
        out["error_trace"] = json!(format!("Traceback (most recent call last):\n  ...\n{e}"));
    }
    axum::Json(out).into_response()
}

async fn cancel_run(State(s): State<Shared>, Path(v): Path<String>, body: Bytes) -> Response {
    if let Err(r) = version(&v) {
        return r;
    }
    let m = match parse_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let run_id = match int_field(&m, "run_id") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut st = lock(&s);
    let Some(run) = st.runs.get_mut(&run_id) else {
        return invalid(format!("Run {run_id} does not exist."));
    };
    if run.ended.is_none() && run.cancel_at.is_none() {
        run.cancel_at = Some(run.seen);
    }
    axum::Json(json!({})).into_response()
}

async fn repair_run(State(s): State<Shared>, Path(v): Path<String>, body: Bytes) -> Response {
    if let Err(r) = version(&v) {
        return r;
    }
    let m = match parse_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let run_id = match int_field(&m, "run_id") {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = check_params(&m) {
        return r;
    }
    let mut st = lock(&s);
    st.next_id += 100;
    let repair_id = st.next_id;
    let Some(run) = st.runs.get_mut(&run_id) else {
        return invalid(format!("Run {run_id} does not exist."));
    };
    let Some((_, result, _)) = &run.ended else {
        return error(
            400,
            "INVALID_STATE",
            format!("Run {run_id} is still active."),
        );
    };
    if result.as_deref() == Some("SUCCESS") {
        return error(
            400,
            "INVALID_STATE",
            format!("Run {run_id} succeeded; there is nothing to repair."),
        );
    }
    let latest = m.get("latest_repair_id").and_then(Value::as_i64);
    if latest != run.repairs.last().copied() {
        return invalid(format!(
            "latest_repair_id must be the id of the latest repair of run {run_id}"
        ));
    }
    let rerun: Vec<String> = if m.get("rerun_all_failed_tasks") == Some(&json!(true)) {
        latest_tasks(run)
            .iter()
            .filter(|t| t.error.is_some() || result.as_deref() == Some("CANCELED"))
            .map(|t| t.key.clone())
            .collect()
    } else {
        m.get("rerun_tasks")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    if rerun.is_empty() {
        return invalid("Either rerun_tasks or rerun_all_failed_tasks must be set");
    }
    for (next_task_id, key) in (repair_id + 1..).zip(rerun) {
        let Some(prev) = latest_tasks(run)
            .into_iter()
            .find(|t| t.key == key)
            .cloned()
        else {
            return invalid(format!("Task {key} does not exist in run {run_id}"));
        };
        let error = match &prev.outcome {
            TaskOutcome::Failed(e) => Some(e.clone()),
            TaskOutcome::Success | TaskOutcome::FailsOnce(_) => None,
        };
        run.tasks.push(TaskRun {
            key,
            run_id: next_task_id,
            attempt: prev.attempt + 1,
            outcome: prev.outcome.clone(),
            error,
        });
    }
    run.repairs.push(repair_id);
    run.ended = None;
    run.cancel_at = None;
    run.seen = 0;
    run.final_result = None;
    run.final_life = "TERMINATED".to_owned();
    axum::Json(json!({ "repair_id": repair_id })).into_response()
}

/// A demo workspace for `syncctl-fakes serve databricks`: PAT `dapi-demo-token`, service
/// principal `demo-client` / `demo-secret`, and three jobs.
#[must_use]
pub fn demo() -> DatabricksFake {
    DatabricksFake::new()
        .with_pat("dapi-demo-token")
        .with_client("demo-client", "demo-secret")
        .job(
            FakeJob::new(101, "nightly-etl")
                .lifecycle(&["QUEUED", "PENDING", "RUNNING", "RUNNING", "TERMINATING"])
                .task("ingest", TaskOutcome::Success)
                .task("transform", TaskOutcome::Success),
        )
        .job(
            FakeJob::new(102, "flaky-report")
                .task("extract", TaskOutcome::Success)
                .task(
                    "report",
                    TaskOutcome::FailsOnce("ZeroDivisionError: division by zero".to_owned()),
                ),
        )
        .job(FakeJob::new(103, "broken-report").task(
            "report",
            TaskOutcome::Failed("ValueError: no rows for the partition".to_owned()),
        ))
}

fn demo_router() -> Router {
    demo().router()
}

/// The `syncctl-fakes serve` entries this fake provides.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    vec![ServiceEntry {
        name: "databricks",
        about: "Databricks Jobs API 2.1/2.2 and OAuth M2M (demo jobs 101-103, PAT dapi-demo-token)",
        router: demo_router,
    }]
}

/// The answer Databricks gives for `status` (403, 404, 500 or 503) on a Jobs API call, as the
/// workspace words it, to inject with [`crate::FakeServer::inject_on`]. The 403 is the
/// gateway's answer to an invalid, expired or revoked token: `error_code` is a number there
/// and the reason is repeated in `X-Databricks-Reason-Phrase` (as recorded in
/// databricks-sdk-go issues 873 and 917); the others carry Databricks' string codes.
///
/// # Panics
/// For any other status (a test setup error).
#[must_use]
pub fn error_fault(status: u16) -> crate::Fault {
    let (headers, body) = match status {
        403 => (
            vec![(
                "x-databricks-reason-phrase",
                "Invalid access token.".to_owned(),
            )],
            json!({"error_code": 403, "message": "Invalid access token."}),
        ),
        404 => (
            Vec::new(),
            json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Job 404 does not exist."}),
        ),
        500 => (
            Vec::new(),
            json!({"error_code": "INTERNAL_ERROR", "message": "Internal error happened while processing the request."}),
        ),
        503 => (
            Vec::new(),
            json!({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "The service at /api/2.2/jobs/run-now is temporarily unavailable. Please try again later."}),
        ),
        other => panic!("no Databricks wording for HTTP {other}"),
    };
    crate::Fault::Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = form_pairs(b"grant_type=client_credentials&scope=all-apis&x=a%20b+c");
        assert_eq!(f["grant_type"], "client_credentials");
        assert_eq!(f["x"], "a b c");
    }

    #[test]
    fn runs_walk_their_path_then_end() {
        let job = FakeJob::new(1, "j").task("a", TaskOutcome::Failed("boom".into()));
        let mut run = FakeRun {
            run_id: 10,
            job_id: 1,
            token: None,
            body: json!({}),
            start_ms: 0,
            path: job.path.clone(),
            final_life: job.final_life.clone(),
            final_result: None,
            tasks: vec![TaskRun {
                key: "a".into(),
                run_id: 11,
                attempt: 0,
                outcome: TaskOutcome::Failed("boom".into()),
                error: Some("boom".into()),
            }],
            seen: 0,
            cancel_at: None,
            ended: None,
            repairs: vec![],
            job_clusters: vec![],
            iterations: 0,
        };
        let seen: Vec<_> = (0..5).map(|_| step(&mut run, 5, true)).collect();
        assert_eq!(seen[0].0, "PENDING");
        assert_eq!(seen[2].0, "TERMINATING");
        assert_eq!(
            seen[3],
            ("TERMINATED".to_owned(), Some("FAILED".to_owned()))
        );
        assert_eq!(seen[4], seen[3]);
    }
}
