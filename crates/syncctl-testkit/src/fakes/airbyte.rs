//! A stateful fake Airbyte serving both APIs from one server, shaped by the vendor specs
//! (`airbyte/config.yaml`, `airbyte/derived/api_documentation_*.subset.yaml`):
//!
//! * config API under `/api/v1` (every call a POST): `connections/sync`, `connections/get`,
//!   `connections/list`, `jobs/get`, `jobs/cancel`, `jobs/list`, `GET health`;
//! * public API under `/api/public/v1`: `POST applications/token`, `POST jobs`,
//!   `GET jobs`, `GET|DELETE jobs/{id}`, `GET connections`, `GET connections/{id}`,
//!   `GET health`.
//!
//! It enforces basic auth and bearer tokens (tokens it issued, with an expiry, or static
//! ones), runs each job through a [`JobScript`] (pending → running → (incomplete → running)
//! → succeeded | failed | cancelled) on a clock that advances per poll or in real time,
//! answers a second sync of a busy connection with 409 (each API's own error body), cancels
//! asynchronously, and answers unknown routes with 404. Faults (429, 5xx, delays, dropped
//! connections) come from [`crate::FakeServer::inject_on`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::services::ServiceEntry;

/// One step of a job's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptState {
    /// `pending`.
    Pending,
    /// `queued` (Cloud, capacity plans).
    Queued,
    /// `running`: an attempt is running.
    Running,
    /// `incomplete`: the running attempt failed with this reason; Airbyte will retry.
    Incomplete(String),
    /// `succeeded` with these totals (split over the connection's streams).
    Succeeded {
        /// Records committed.
        records: u64,
        /// Bytes committed.
        bytes: u64,
    },
    /// `failed` with this reason.
    Failed(String),
    /// `cancelled`.
    Cancelled,
    /// A state Airbyte does not document (forward compatibility).
    Other(String),
}

impl ScriptState {
    fn name(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Incomplete(_) => "incomplete",
            Self::Succeeded { .. } => "succeeded",
            Self::Failed(_) => "failed",
            Self::Cancelled => "cancelled",
            Self::Other(s) => s,
        }
    }
    fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded { .. } | Self::Failed(_) | Self::Cancelled
        )
    }
}

/// How long a step lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Reported to this many job reads, then the next step.
    Polls(u32),
    /// Lasts this long in real time.
    For(Duration),
    /// Never ends (until cancelled).
    Forever,
}

/// A job's life as a list of steps; the last step should be terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobScript {
    steps: Vec<(ScriptState, Hold)>,
}

impl Default for JobScript {
    /// pending (1 poll) → running (2 polls) → succeeded with 1200 records, 48 000 bytes.
    fn default() -> Self {
        Self::new().pending(1).running(2).succeeded(1200, 48_000)
    }
}

impl JobScript {
    /// An empty script (add steps).
    #[must_use]
    pub fn new() -> Self {
        Self { steps: Vec::new() }
    }
    /// Adds a step.
    #[must_use]
    pub fn step(mut self, state: ScriptState, hold: Hold) -> Self {
        self.steps.push((state, hold));
        self
    }
    /// `pending` for `polls` reads.
    #[must_use]
    pub fn pending(self, polls: u32) -> Self {
        self.step(ScriptState::Pending, Hold::Polls(polls))
    }
    /// `queued` for `polls` reads.
    #[must_use]
    pub fn queued(self, polls: u32) -> Self {
        self.step(ScriptState::Queued, Hold::Polls(polls))
    }
    /// `running` for `polls` reads.
    #[must_use]
    pub fn running(self, polls: u32) -> Self {
        self.step(ScriptState::Running, Hold::Polls(polls))
    }
    /// `running` for a real-time duration.
    #[must_use]
    pub fn running_for(self, d: Duration) -> Self {
        self.step(ScriptState::Running, Hold::For(d))
    }
    /// `running` until cancelled.
    #[must_use]
    pub fn running_forever(self) -> Self {
        self.step(ScriptState::Running, Hold::Forever)
    }
    /// `incomplete` (the attempt failed with `reason`) for one read.
    #[must_use]
    pub fn incomplete(self, reason: &str) -> Self {
        self.step(ScriptState::Incomplete(reason.to_owned()), Hold::Polls(1))
    }
    /// An undocumented state for `polls` reads.
    #[must_use]
    pub fn other(self, state: &str, polls: u32) -> Self {
        self.step(ScriptState::Other(state.to_owned()), Hold::Polls(polls))
    }
    /// Ends `succeeded`.
    #[must_use]
    pub fn succeeded(self, records: u64, bytes: u64) -> Self {
        self.step(ScriptState::Succeeded { records, bytes }, Hold::Forever)
    }
    /// Ends `failed` with `reason`.
    #[must_use]
    pub fn failed(self, reason: &str) -> Self {
        self.step(ScriptState::Failed(reason.to_owned()), Hold::Forever)
    }
    /// Ends `cancelled` (cancelled by someone else).
    #[must_use]
    pub fn cancelled(self) -> Self {
        self.step(ScriptState::Cancelled, Hold::Forever)
    }
}

#[derive(Debug, Clone)]
struct Connection {
    id: String,
    name: String,
    workspace_id: String,
    streams: Vec<String>,
    script: JobScript,
}

#[derive(Debug, Clone)]
struct Attempt {
    status: &'static str,
    created_at: i64,
    updated_at: i64,
    ended_at: Option<i64>,
    records: u64,
    bytes: u64,
    failure: Option<(String, &'static str)>,
}

#[derive(Debug, Clone)]
struct Job {
    id: i64,
    connection_id: String,
    script: JobScript,
    step: usize,
    reads_in_step: u32,
    entered_step: Instant,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    attempts: Vec<Attempt>,
    records: u64,
    bytes: u64,
    cancel_requested: bool,
    reads_since_cancel: u32,
    cancels: u32,
}

/// A job as the fake sees it (for assertions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    /// The id.
    pub id: i64,
    /// The connection.
    pub connection_id: String,
    /// The current state.
    pub status: String,
    /// How many cancel requests it received.
    pub cancels: u32,
    /// How many attempts it made.
    pub attempts: usize,
}

#[derive(Debug, Default)]
struct Auth {
    basic: Option<(String, String)>,
    clients: Vec<(String, String)>,
    static_tokens: Vec<String>,
}

#[derive(Debug)]
struct Inner {
    auth: Auth,
    connections: Vec<Connection>,
    jobs: Vec<Job>,
    next_job_id: i64,
    tokens: HashMap<String, Instant>,
    token_lifetime: Duration,
    token_valid_for: Option<Duration>,
    token_prefix: String,
    tokens_issued: u32,
    rejected_auth: u32,
    cancel_after_reads: u32,
    off_spec: bool,
    sync_requests: HashMap<String, u32>,
}

/// The fake Airbyte. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct FakeAirbyte {
    inner: Arc<Mutex<Inner>>,
}

impl Default for FakeAirbyte {
    fn default() -> Self {
        Self::new()
    }
}

const WORKSPACE: &str = "5ae6b09b-fdec-41af-aaf7-7d94cfc33ef6";
const SOURCE: &str = "95e66a59-8045-4307-9678-63bc3c9b8c93";
const DESTINATION: &str = "e478de0d-a3a0-475c-b019-25f7dd29e281";

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeAirbyte {
    /// An empty fake with no auth, 180 s tokens and cancels confirmed on the next read.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                auth: Auth::default(),
                connections: Vec::new(),
                jobs: Vec::new(),
                next_job_id: 100,
                tokens: HashMap::new(),
                token_lifetime: Duration::from_secs(180),
                token_valid_for: None,
                token_prefix: "fake-airbyte-token".into(),
                tokens_issued: 0,
                rejected_auth: 0,
                cancel_after_reads: 1,
                off_spec: false,
                sync_requests: HashMap::new(),
            })),
        }
    }

    /// Requires HTTP basic auth with these credentials (on both APIs: OSS puts auth at
    /// the proxy).
    #[must_use]
    pub fn with_basic_auth(self, user: &str, password: &str) -> Self {
        lock(&self.inner).auth.basic = Some((user.into(), password.into()));
        self
    }

    /// Accepts these client credentials at the token endpoint (and then requires auth).
    #[must_use]
    pub fn with_client(self, client_id: &str, client_secret: &str) -> Self {
        lock(&self.inner)
            .auth
            .clients
            .push((client_id.into(), client_secret.into()));
        self
    }

    /// Accepts this static bearer token (and then requires auth).
    #[must_use]
    pub fn with_static_token(self, token: &str) -> Self {
        lock(&self.inner).auth.static_tokens.push(token.into());
        self
    }

    /// Issued tokens say they live `d` (`expires_in`).
    #[must_use]
    pub fn with_token_lifetime(self, d: Duration) -> Self {
        lock(&self.inner).token_lifetime = d;
        self
    }

    /// Issued tokens really stop working after `d`, whatever `expires_in` said (clock skew,
    /// revocation): the client must re-authenticate on 401.
    #[must_use]
    pub fn with_tokens_valid_for(self, d: Duration) -> Self {
        lock(&self.inner).token_valid_for = Some(d);
        self
    }

    /// Issued tokens start with this text (secret-leak tests look for it).
    #[must_use]
    pub fn with_token_prefix(self, prefix: &str) -> Self {
        lock(&self.inner).token_prefix = prefix.into();
        self
    }

    /// How many reads a cancelled job keeps reporting its state before `cancelled`.
    #[must_use]
    pub fn with_cancel_after_reads(self, reads: u32) -> Self {
        lock(&self.inner).cancel_after_reads = reads;
        self
    }

    /// Adds a connection with the default script and one stream.
    #[must_use]
    pub fn with_connection(self, id: &str, name: &str) -> Self {
        self.with_connection_script(id, name, JobScript::default())
    }

    /// Adds a connection whose sync jobs follow `script`.
    #[must_use]
    pub fn with_connection_script(self, id: &str, name: &str, script: JobScript) -> Self {
        lock(&self.inner).connections.push(Connection {
            id: id.into(),
            name: name.into(),
            workspace_id: WORKSPACE.into(),
            streams: vec!["users".into(), "events".into()],
            script,
        });
        self
    }

    /// Changes a connection's script for jobs started from now on.
    pub fn set_script(&self, connection_id: &str, script: JobScript) {
        if let Some(c) = lock(&self.inner)
            .connections
            .iter_mut()
            .find(|c| c.id == connection_id)
        {
            c.script = script;
        }
    }

    /// Makes job answers break the spec (the contract canary): ids become strings.
    pub fn set_off_spec(&self, on: bool) {
        lock(&self.inner).off_spec = on;
    }

    /// Starts a job as if someone else (the scheduler, a colleague) had; returns its id.
    ///
    /// # Panics
    /// When the connection does not exist.
    pub fn start_job(&self, connection_id: &str, script: JobScript) -> i64 {
        let mut inner = lock(&self.inner);
        assert!(
            inner.connections.iter().any(|c| c.id == connection_id),
            "unknown connection {connection_id}"
        );
        inner.create_job(connection_id, Some(script))
    }

    /// The workspace every connection lives in.
    #[must_use]
    pub fn workspace_id() -> &'static str {
        WORKSPACE
    }

    /// A job by id.
    #[must_use]
    pub fn job(&self, id: i64) -> Option<JobView> {
        lock(&self.inner)
            .jobs
            .iter()
            .find(|j| j.id == id)
            .map(Job::view)
    }

    /// Every job of a connection, oldest first.
    #[must_use]
    pub fn jobs_for(&self, connection_id: &str) -> Vec<JobView> {
        lock(&self.inner)
            .jobs
            .iter()
            .filter(|j| j.connection_id == connection_id)
            .map(Job::view)
            .collect()
    }

    /// How many sync requests reached a connection (including refused ones).
    #[must_use]
    pub fn sync_requests(&self, connection_id: &str) -> u32 {
        lock(&self.inner)
            .sync_requests
            .get(connection_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many tokens the token endpoint issued.
    #[must_use]
    pub fn tokens_issued(&self) -> u32 {
        lock(&self.inner).tokens_issued
    }

    /// How many requests were refused for missing or bad credentials.
    #[must_use]
    pub fn rejected_auth(&self) -> u32 {
        lock(&self.inner).rejected_auth
    }

    /// The router serving both APIs.
    pub fn router(&self) -> Router {
        let config = Router::new()
            .route("/connections/sync", post(config_sync))
            .route("/connections/get", post(config_connection_get))
            .route("/connections/list", post(config_connection_list))
            .route("/jobs/get", post(config_job_get))
            .route("/jobs/cancel", post(config_job_cancel))
            .route("/jobs/list", post(config_job_list))
            .route(
                "/health",
                get(|| async { axum::Json(json!({"available": true})) }),
            );
        let public = Router::new()
            .route("/applications/token", post(public_token))
            .route("/jobs", post(public_create_job).get(public_list_jobs))
            .route("/jobs/{id}", get(public_get_job).delete(public_cancel_job))
            .route("/connections", get(public_list_connections))
            .route("/connections/{id}", get(public_get_connection))
            .route("/health", get(|| async { StatusCode::OK }));
        Router::new()
            .nest("/api/v1", config)
            .nest("/api/public/v1", public)
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"message": "Not found"})),
                )
            })
            .with_state(self.clone())
    }
}

impl Inner {
    fn create_job(&mut self, connection_id: &str, script: Option<JobScript>) -> i64 {
        let id = self.next_job_id;
        self.next_job_id += 1;
        let script = script.unwrap_or_else(|| {
            self.connections
                .iter()
                .find(|c| c.id == connection_id)
                .map(|c| c.script.clone())
                .unwrap_or_default()
        });
        let now = Utc::now();
        let mut job = Job {
            id,
            connection_id: connection_id.into(),
            script,
            step: 0,
            reads_in_step: 0,
            entered_step: Instant::now(),
            status: String::new(),
            created_at: now,
            updated_at: now,
            attempts: Vec::new(),
            records: 0,
            bytes: 0,
            cancel_requested: false,
            reads_since_cancel: 0,
            cancels: 0,
        };
        job.enter_step();
        self.jobs.push(job);
        id
    }

    fn active_job(&self, connection_id: &str) -> Option<i64> {
        self.jobs
            .iter()
            .rev()
            .find(|j| j.connection_id == connection_id && !j.is_terminal())
            .map(|j| j.id)
    }

    fn streams_of(&self, connection_id: &str) -> Vec<String> {
        self.connections
            .iter()
            .find(|c| c.id == connection_id)
            .map(|c| c.streams.clone())
            .unwrap_or_default()
    }

    /// Checks credentials; bearer tokens must be known and unexpired.
    fn authorized(&mut self, headers: &HeaderMap) -> bool {
        let a = &self.auth;
        if a.basic.is_none() && a.clients.is_empty() && a.static_tokens.is_empty() {
            return true;
        }
        let header = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let ok = if let Some(b64) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match (&a.basic, decoded) {
                (Some((u, p)), Some(d)) => d == format!("{u}:{p}"),
                _ => false,
            }
        } else if let Some(t) = header.strip_prefix("Bearer ") {
            let t = t.trim();
            a.static_tokens.iter().any(|s| s == t)
                || self.tokens.get(t).is_some_and(|exp| Instant::now() < *exp)
        } else {
            false
        };
        if !ok {
            self.rejected_auth += 1;
        }
        ok
    }
}

impl Job {
    fn current(&self) -> &(ScriptState, Hold) {
        let last = self.script.steps.len().saturating_sub(1);
        &self.script.steps[self.step.min(last)]
    }

    fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }

    fn now_secs() -> i64 {
        Utc::now().timestamp()
    }

    fn enter_step(&mut self) {
        self.reads_in_step = 0;
        self.entered_step = Instant::now();
        self.updated_at = Utc::now();
        let now = Self::now_secs();
        let Some((state, _)) = self.script.steps.get(self.step).cloned() else {
            self.status = "succeeded".into();
            return;
        };
        self.status = state.name().to_owned();
        let running = self.attempts.last_mut().filter(|a| a.status == "running");
        match state {
            ScriptState::Running => {
                if running.is_none() {
                    self.attempts.push(Attempt {
                        status: "running",
                        created_at: now,
                        updated_at: now,
                        ended_at: None,
                        records: 0,
                        bytes: 0,
                        failure: None,
                    });
                }
            }
            ScriptState::Incomplete(reason) => {
                self.end_attempt("failed", Some((reason, "transient_error")), 0, 0)
            }
            ScriptState::Succeeded { records, bytes } => {
                self.records = records;
                self.bytes = bytes;
                self.end_attempt("succeeded", None, records, bytes);
            }
            ScriptState::Failed(reason) => {
                self.end_attempt("failed", Some((reason, "system_error")), 0, 0)
            }
            ScriptState::Cancelled => self.end_attempt(
                "failed",
                Some(("The sync was cancelled.".into(), "manual_cancellation")),
                0,
                0,
            ),
            ScriptState::Pending | ScriptState::Queued | ScriptState::Other(_) => {}
        }
    }

    fn end_attempt(
        &mut self,
        status: &'static str,
        failure: Option<(String, &'static str)>,
        records: u64,
        bytes: u64,
    ) {
        let now = Self::now_secs();
        if self.attempts.last().is_none_or(|a| a.status != "running") {
            self.attempts.push(Attempt {
                status: "running",
                created_at: now,
                updated_at: now,
                ended_at: None,
                records: 0,
                bytes: 0,
                failure: None,
            });
        }
        if let Some(a) = self.attempts.last_mut() {
            a.status = status;
            a.updated_at = now;
            a.ended_at = Some(now);
            a.records = records;
            a.bytes = bytes;
            a.failure = failure;
        }
    }

    /// One read of the job: the clock moves, then the state is reported.
    fn observe(&mut self, cancel_after_reads: u32) {
        if self.is_terminal() {
            return;
        }
        if self.cancel_requested {
            if self.reads_since_cancel >= cancel_after_reads {
                self.status = "cancelled".into();
                self.updated_at = Utc::now();
                self.end_attempt(
                    "failed",
                    Some(("The sync was cancelled.".into(), "manual_cancellation")),
                    0,
                    0,
                );
                return;
            }
            self.reads_since_cancel += 1;
            return;
        }
        loop {
            let (state, hold) = self.current().clone();
            let done = match hold {
                Hold::Polls(n) => self.reads_in_step >= n,
                Hold::For(d) => self.entered_step.elapsed() >= d,
                Hold::Forever => false,
            };
            if !done || state.is_terminal() || self.step + 1 >= self.script.steps.len() {
                break;
            }
            self.step += 1;
            self.enter_step();
        }
        self.reads_in_step += 1;
    }

    fn view(&self) -> JobView {
        JobView {
            id: self.id,
            connection_id: self.connection_id.clone(),
            status: self.status.clone(),
            cancels: self.cancels,
            attempts: self.attempts.len(),
        }
    }

    fn id_value(&self, off_spec: bool) -> Value {
        if off_spec {
            json!(self.id.to_string())
        } else {
            json!(self.id)
        }
    }

    fn stream_stats(&self, streams: &[String]) -> Vec<Value> {
        let n = u64::try_from(streams.len().max(1)).unwrap_or(1);
        streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let share = |total: u64| {
                    if i == 0 {
                        total / n + total % n
                    } else {
                        total / n
                    }
                };
                json!({
                    "streamName": s,
                    "recordsEmitted": share(self.records),
                    "bytesEmitted": share(self.bytes),
                    "recordsCommitted": share(self.records),
                    "bytesCommitted": share(self.bytes),
                    "recordsRejected": 0,
                })
            })
            .collect()
    }

    fn attempt_json(&self, a: &Attempt, idx: usize) -> Value {
        let mut v = json!({
            "id": idx,
            "status": a.status,
            "createdAt": a.created_at,
            "updatedAt": a.updated_at,
            "recordsSynced": a.records,
            "bytesSynced": a.bytes,
            "totalStats": {"recordsEmitted": a.records, "bytesEmitted": a.bytes,
                            "recordsCommitted": a.records, "bytesCommitted": a.bytes},
        });
        if let Some(end) = a.ended_at {
            v["endedAt"] = json!(end);
        }
        if let Some((message, kind)) = &a.failure {
            let origin = if *kind == "manual_cancellation" {
                "airbyte_platform"
            } else {
                "source"
            };
            v["failureSummary"] = json!({
                "failures": [{
                    "failureOrigin": origin,
                    "failureType": kind,
                    "externalMessage": message,
                    "internalMessage": message,
                    "timestamp": a.updated_at * 1000,
                }],
                "partialSuccess": false,
            });
        }
        v
    }

    fn config_job(&self, streams: &[String], off_spec: bool) -> Value {
        let mut job = json!({
            "id": self.id_value(off_spec),
            "configType": "sync",
            "configId": self.connection_id,
            "createdAt": self.created_at.timestamp(),
            "updatedAt": self.updated_at.timestamp(),
            "status": self.status,
        });
        if !self.attempts.is_empty() {
            job["startedAt"] = json!(self.attempts[0].created_at);
        }
        if self.is_terminal() {
            job["aggregatedStats"] = json!({
                "recordsEmitted": self.records, "bytesEmitted": self.bytes,
                "recordsCommitted": self.records, "bytesCommitted": self.bytes,
                "recordsRejected": 0,
            });
            job["streamAggregatedStats"] = json!(self.stream_stats(streams));
        }
        job
    }

    /// `JobInfoRead`.
    fn config_info(&self, streams: &[String], off_spec: bool) -> Value {
        json!({
            "job": self.config_job(streams, off_spec),
            "attempts": self.attempts.iter().enumerate().map(|(i, a)| json!({"attempt": self.attempt_json(a, i)})).collect::<Vec<_>>(),
        })
    }

    /// `JobWithAttemptsRead`.
    fn config_with_attempts(&self, streams: &[String], off_spec: bool) -> Value {
        json!({
            "job": self.config_job(streams, off_spec),
            "attempts": self.attempts.iter().enumerate().map(|(i, a)| self.attempt_json(a, i)).collect::<Vec<_>>(),
        })
    }

    /// Public `JobResponse`.
    fn public(&self, off_spec: bool) -> Value {
        let secs = (self.updated_at - self.created_at).num_seconds().max(0);
        let mut v = json!({
            "jobId": if off_spec { json!(self.id.to_string()) } else { json!(self.id) },
            "status": self.status,
            "jobType": "sync",
            "startTime": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "connectionId": self.connection_id,
            "lastUpdatedAt": self.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "duration": format!("PT{secs}S"),
        });
        if self.is_terminal() {
            v["rowsSynced"] = json!(self.records);
            v["bytesSynced"] = json!(self.bytes);
        }
        v
    }
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

fn json_body(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn config_unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"message": "Unauthorized"})),
    )
        .into_response()
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({
            "type": format!("https://reference.airbyte.com/reference/errors#{}-{title}", status.as_u16()),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        })),
    )
        .into_response();
    if let Ok(v) = "application/problem+json".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn invalid_input(path: &str, message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({
            "message": format!("Invalid input: {message}"),
            "exceptionClassName": "javax.validation.ConstraintViolationException",
            "validationErrors": [{"propertyPath": path, "message": message}],
        })),
    )
        .into_response()
}

fn config_not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "message": format!("Could not find {what}"),
            "exceptionClassName": "io.airbyte.commons.server.errors.IdNotFoundKnownException",
        })),
    )
        .into_response()
}

async fn config_sync(State(f): State<FakeAirbyte>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return config_unauthorized();
    }
    let Some(id) = json_body(&body)["connectionId"].as_str().map(str::to_owned) else {
        return invalid_input("connectionId", "must not be null");
    };
    if !is_uuid(&id) {
        return invalid_input("connectionId", "must be a UUID");
    }
    if !inner.connections.iter().any(|c| c.id == id) {
        return config_not_found(&format!("connection {id}"));
    }
    *inner.sync_requests.entry(id.clone()).or_default() += 1;
    if inner.active_job(&id).is_some() {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "message": format!("A sync is already running for: {id}"),
                "exceptionClassName": "io.airbyte.commons.server.errors.ValueConflictKnownException",
            })),
        )
            .into_response();
    }
    let job_id = inner.create_job(&id, None);
    let streams = inner.streams_of(&id);
    let off = inner.off_spec;
    let job = inner.jobs.iter().find(|j| j.id == job_id);
    axum::Json(job.map(|j| j.config_info(&streams, off))).into_response()
}

fn job_id_of(body: &Bytes) -> Option<i64> {
    json_body(body)["id"].as_i64()
}

async fn config_job_get(State(f): State<FakeAirbyte>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return config_unauthorized();
    }
    let Some(id) = job_id_of(&body) else {
        return invalid_input("id", "must be an integer");
    };
    let after = inner.cancel_after_reads;
    let off = inner.off_spec;
    let Some(idx) = inner.jobs.iter().position(|j| j.id == id) else {
        return config_not_found(&format!("job {id}"));
    };
    inner.jobs[idx].observe(after);
    let streams = inner.streams_of(&inner.jobs[idx].connection_id);
    axum::Json(inner.jobs[idx].config_info(&streams, off)).into_response()
}

fn request_cancel(inner: &mut Inner, idx: usize) {
    let after = inner.cancel_after_reads;
    let job = &mut inner.jobs[idx];
    job.cancels += 1;
    if job.is_terminal() {
        return;
    }
    if !job.cancel_requested {
        job.cancel_requested = true;
        job.reads_since_cancel = 0;
    }
    if after == 0 {
        job.observe(0);
    }
}

async fn config_job_cancel(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return config_unauthorized();
    }
    let Some(id) = job_id_of(&body) else {
        return invalid_input("id", "must be an integer");
    };
    let Some(idx) = inner.jobs.iter().position(|j| j.id == id) else {
        return config_not_found(&format!("job {id}"));
    };
    request_cancel(&mut inner, idx);
    let streams = inner.streams_of(&inner.jobs[idx].connection_id);
    let off = inner.off_spec;
    axum::Json(inner.jobs[idx].config_info(&streams, off)).into_response()
}

async fn config_job_list(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return config_unauthorized();
    }
    let req = json_body(&body);
    if !req["configTypes"].is_array() {
        return invalid_input("configTypes", "must not be null");
    }
    let conn = req["configId"].as_str().unwrap_or_default().to_owned();
    let size = req["pagination"]["pageSize"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(20);
    let offset = req["pagination"]["rowOffset"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let streams = inner.streams_of(&conn);
    let off = inner.off_spec;
    let mine: Vec<&Job> = inner
        .jobs
        .iter()
        .rev()
        .filter(|j| conn.is_empty() || j.connection_id == conn)
        .collect();
    let total = mine.len();
    let page: Vec<Value> = mine
        .into_iter()
        .skip(offset)
        .take(size)
        .map(|j| j.config_with_attempts(&streams, off))
        .collect();
    axum::Json(json!({"jobs": page, "totalJobCount": total})).into_response()
}

fn config_connection(c: &Connection) -> Value {
    json!({
        "connectionId": c.id,
        "name": c.name,
        "sourceId": SOURCE,
        "destinationId": DESTINATION,
        "workspaceId": c.workspace_id,
        "syncCatalog": {"streams": []},
        "status": "active",
        "breakingChange": false,
    })
}

async fn config_connection_get(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return config_unauthorized();
    }
    let id = json_body(&body)["connectionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match inner.connections.iter().find(|c| c.id == id) {
        Some(c) => axum::Json(config_connection(c)).into_response(),
        None => config_not_found(&format!("connection {id}")),
    }
}

async fn config_connection_list(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return config_unauthorized();
    }
    let w = json_body(&body)["workspaceId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !is_uuid(&w) {
        return invalid_input("workspaceId", "must be a UUID");
    }
    let list: Vec<Value> = inner
        .connections
        .iter()
        .filter(|c| c.workspace_id == w)
        .map(config_connection)
        .collect();
    axum::Json(json!({"connections": list})).into_response()
}

fn public_unauthorized() -> Response {
    problem(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
}

/// Parses `a=1&b=2` bodies (the token endpoint also takes forms).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
                .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
                .flatten()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (_, Some(b)) => {
                    out.push(b);
                    i += 2;
                }
                (b'+', None) => out.push(b' '),
                (b, None) => out.push(b),
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

async fn public_token(State(f): State<FakeAirbyte>, body: Bytes) -> Response {
    let mut inner = lock(&f.inner);
    let v = json_body(&body);
    let (id, secret, grant) = if v.is_object() {
        (
            v["client_id"].as_str().unwrap_or_default().to_owned(),
            v["client_secret"].as_str().unwrap_or_default().to_owned(),
            v["grant_type"].as_str().map(str::to_owned),
        )
    } else {
        let pairs = form_pairs(&body);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        (
            get("client_id").unwrap_or_default(),
            get("client_secret").unwrap_or_default(),
            get("grant_type"),
        )
    };
    if grant.as_deref().is_some_and(|g| g != "client_credentials") {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "unsupported grant_type",
        );
    }
    if !inner
        .auth
        .clients
        .iter()
        .any(|(i, s)| *i == id && *s == secret)
    {
        return problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Invalid client credentials",
        );
    }
    inner.tokens_issued += 1;
    let token = format!(
        "{}-{}-{}",
        inner.token_prefix,
        inner.tokens_issued,
        uuid::Uuid::new_v4().simple()
    );
    let valid = inner.token_valid_for.unwrap_or(inner.token_lifetime);
    inner.tokens.insert(token.clone(), Instant::now() + valid);
    axum::Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": inner.token_lifetime.as_secs(),
    }))
    .into_response()
}

async fn public_create_job(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return public_unauthorized();
    }
    let v = json_body(&body);
    let Some(id) = v["connectionId"].as_str().map(str::to_owned) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "connectionId is required",
        );
    };
    if !matches!(
        v["jobType"].as_str(),
        Some("sync" | "reset" | "refresh" | "clear")
    ) {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "jobType must be sync, reset, refresh or clear",
        );
    }
    if !inner.connections.iter().any(|c| c.id == id) {
        return problem(
            StatusCode::NOT_FOUND,
            "resource-not-found",
            &format!("Could not find connection {id}"),
        );
    }
    *inner.sync_requests.entry(id.clone()).or_default() += 1;
    if inner.active_job(&id).is_some() {
        return problem(
            StatusCode::CONFLICT,
            "state-conflict",
            &format!("A sync is already running for: {id}"),
        );
    }
    let job_id = inner.create_job(&id, None);
    let off = inner.off_spec;
    let job = inner.jobs.iter().find(|j| j.id == job_id);
    axum::Json(job.map(|j| j.public(off))).into_response()
}

async fn public_get_job(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return public_unauthorized();
    }
    let after = inner.cancel_after_reads;
    let off = inner.off_spec;
    let Some(idx) = id
        .parse::<i64>()
        .ok()
        .and_then(|id| inner.jobs.iter().position(|j| j.id == id))
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "resource-not-found",
            &format!("Could not find job {id}"),
        );
    };
    inner.jobs[idx].observe(after);
    axum::Json(inner.jobs[idx].public(off)).into_response()
}

async fn public_cancel_job(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return public_unauthorized();
    }
    let Some(idx) = id
        .parse::<i64>()
        .ok()
        .and_then(|id| inner.jobs.iter().position(|j| j.id == id))
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "resource-not-found",
            &format!("Could not find job {id}"),
        );
    };
    request_cancel(&mut inner, idx);
    let off = inner.off_spec;
    axum::Json(inner.jobs[idx].public(off)).into_response()
}

fn query_get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn page_params(q: &[(String, String)]) -> (usize, usize) {
    let limit = query_get(q, "limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize)
        .clamp(1, 100);
    let offset = query_get(q, "offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0usize);
    (limit, offset)
}

async fn public_list_jobs(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return public_unauthorized();
    }
    let (limit, offset) = page_params(&q);
    let conn = query_get(&q, "connectionId");
    let status = query_get(&q, "status");
    let ascending = query_get(&q, "orderBy").is_some_and(|o| o.ends_with("|ASC"));
    let off = inner.off_spec;
    let mut matching: Vec<&Job> = inner
        .jobs
        .iter()
        .filter(|j| conn.is_none_or(|c| j.connection_id == c))
        .filter(|j| status.is_none_or(|s| j.status == s))
        .collect();
    if !ascending {
        matching.reverse();
    }
    let total = matching.len();
    let data: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|j| j.public(off))
        .collect();
    let mut body = json!({ "data": data });
    if offset + limit < total {
        body["next"] = json!(format!(
            "/api/public/v1/jobs?limit={limit}&offset={}",
            offset + limit
        ));
    }
    axum::Json(body).into_response()
}

fn public_connection(c: &Connection) -> Value {
    json!({
        "connectionId": c.id,
        "name": c.name,
        "sourceId": SOURCE,
        "destinationId": DESTINATION,
        "workspaceId": c.workspace_id,
        "status": "active",
        "schedule": {"scheduleType": "manual"},
        "configurations": {"streams": []},
        "createdAt": 1_700_000_000,
        "tags": [],
    })
}

async fn public_list_connections(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return public_unauthorized();
    }
    let (limit, offset) = page_params(&q);
    let workspaces: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "workspaceIds")
        .map(|(_, v)| v.as_str())
        .collect();
    let matching: Vec<&Connection> = inner
        .connections
        .iter()
        .filter(|c| workspaces.is_empty() || workspaces.contains(&c.workspace_id.as_str()))
        .collect();
    let total = matching.len();
    let data: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(public_connection)
        .collect();
    let mut body = json!({ "data": data });
    if offset + limit < total {
        body["next"] = json!(format!(
            "/api/public/v1/connections?limit={limit}&offset={}",
            offset + limit
        ));
    }
    axum::Json(body).into_response()
}

async fn public_get_connection(
    State(f): State<FakeAirbyte>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inner = lock(&f.inner);
    if !inner.authorized(&headers) {
        return public_unauthorized();
    }
    match inner.connections.iter().find(|c| c.id == id) {
        Some(c) => axum::Json(public_connection(c)).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "resource-not-found",
            &format!("Could not find connection {id}"),
        ),
    }
}

/// The seed's three connections (Stripe, HubSpot, Salesforce into Postgres), with jobs that
/// run a few seconds of real time, basic auth `airbyte` / `password`, and client credentials
/// `demo-client` / `demo-secret`.
#[must_use]
pub fn demo() -> FakeAirbyte {
    let timed = |secs| {
        JobScript::new()
            .step(ScriptState::Pending, Hold::For(Duration::from_secs(1)))
            .running_for(Duration::from_secs(secs))
            .succeeded(25_000, 9_800_000)
    };
    FakeAirbyte::new()
        .with_basic_auth("airbyte", "password")
        .with_client("demo-client", "demo-secret")
        .with_connection_script(DEMO_CONNECTIONS[0].0, DEMO_CONNECTIONS[0].1, timed(3))
        .with_connection_script(DEMO_CONNECTIONS[1].0, DEMO_CONNECTIONS[1].1, timed(5))
        .with_connection_script(DEMO_CONNECTIONS[2].0, DEMO_CONNECTIONS[2].1, timed(8))
}

/// The demo connections: id and name.
pub const DEMO_CONNECTIONS: [(&str, &str); 3] = [
    ("6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01", "Stripe → Postgres"),
    ("0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02", "HubSpot → Postgres"),
    (
        "a3f9c2d4-7e1b-4f6a-b5c8-1d2e3f4a5b03",
        "Salesforce → Postgres",
    ),
];

/// The `syncctl-fakes serve` entries this fake provides.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    vec![ServiceEntry {
        name: "airbyte",
        about: "Airbyte config API (/api/v1, basic auth airbyte/password) and public API (/api/public/v1, client demo-client/demo-secret) with the seed's three connections",
        router: || demo().router(),
    }]
}

/// The answer the Airbyte config API gives for `status` (403, 404, 500 or 503), to inject with
/// [`crate::FakeServer::inject_on`]: the server's `KnownExceptionInfo` /
/// `NotFoundKnownExceptionInfo` bodies (config.yaml) for 403, 404 and 500, and for 503 the
/// plain-text answer of the proxy in front of an Airbyte server that is not up.
///
/// # Panics
/// For any other status (a test setup error).
#[must_use]
pub fn error_fault(status: u16) -> crate::Fault {
    let (headers, body) = match status {
        403 => (
            Vec::new(),
            json!({
                "message": "Forbidden",
                "exceptionClassName": "io.airbyte.commons.server.errors.problems.ForbiddenProblem",
                "exceptionStack": [],
            })
            .to_string(),
        ),
        404 => (
            Vec::new(),
            json!({
                "id": "00000000-0000-0000-0000-000000000404",
                "message": "Could not find configuration for STANDARD_SYNC: 00000000-0000-0000-0000-000000000404.",
                "exceptionClassName": "io.airbyte.data.exceptions.ConfigNotFoundException",
                "exceptionStack": [],
            })
            .to_string(),
        ),
        500 => (
            Vec::new(),
            json!({
                "message": "Internal Server Error: Unable to connect to the database",
                "exceptionClassName": "java.lang.RuntimeException",
                "exceptionStack": [],
            })
            .to_string(),
        ),
        503 => (
            vec![("content-type", "text/plain".to_owned())],
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure".to_owned(),
        ),
        other => panic!("no Airbyte wording for HTTP {other}"),
    };
    crate::Fault::Answer {
        status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_advance_per_read_and_cancel_is_asynchronous() {
        let fake = FakeAirbyte::new();
        let mut inner = lock(&fake.inner);
        inner.connections.push(Connection {
            id: "c".into(),
            name: "n".into(),
            workspace_id: WORKSPACE.into(),
            streams: vec!["a".into()],
            script: JobScript::new()
                .pending(1)
                .running(1)
                .incomplete("boom")
                .running(1)
                .succeeded(5, 50),
        });
        let id = inner.create_job("c", None);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let j = inner.jobs.iter_mut().find(|j| j.id == id).expect("job");
            j.observe(1);
            seen.push(j.status.clone());
        }
        assert_eq!(
            seen,
            [
                "pending",
                "running",
                "incomplete",
                "running",
                "succeeded",
                "succeeded"
            ]
        );
        let j = inner.jobs.iter().find(|j| j.id == id).expect("job");
        assert_eq!(j.attempts.len(), 2);
        assert_eq!(j.attempts[0].status, "failed");

        let id = inner.create_job("c", Some(JobScript::new().running_forever()));
        let idx = inner.jobs.iter().position(|j| j.id == id).expect("job");
        request_cancel(&mut inner, idx);
        inner.jobs[idx].observe(1);
        assert_eq!(inner.jobs[idx].status, "running");
        inner.jobs[idx].observe(1);
        assert_eq!(inner.jobs[idx].status, "cancelled");
    }

    #[test]
    fn form_bodies_decode() {
        assert_eq!(
            form_pairs(b"client_id=a%2Bb&client_secret=x+y"),
            vec![
                ("client_id".to_owned(), "a+b".to_owned()),
                ("client_secret".to_owned(), "x y".to_owned())
            ]
        );
    }
}
