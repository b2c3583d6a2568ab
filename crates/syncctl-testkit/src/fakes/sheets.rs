//! Stateful fake of the Google Sheets API v4 (the calls syncctl makes, plus `values.append`)
//! and Google's OAuth token endpoint for service accounts.
//!
//! What it models, because the connector depends on it:
//! * `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: the RS256
//!   assertion is verified against the service account's public key (`kid` must name it,
//!   `iss` = `client_email`, `aud` = this endpoint's URL, scope includes `spreadsheets`,
//!   lifetime ≤ 1 h); refusals are Google's `{"error": "invalid_grant", …}` bodies. Access tokens
//!   expire ([`SheetsFake::token_ttl`]).
//! * `GET /v4/spreadsheets/{id}` (time zone, tabs' grid properties, merges; with `ranges`, only
//!   the tabs they name and, when the field mask asks for `data`, their cells as `GridData`),
//!   `GET …/values/{range}`, `GET …/values:batchGet?ranges=…` (with `UNFORMATTED_VALUE` cells
//!   as stored; `FORMATTED_VALUE` renders numbers as text), `POST …/values:batchUpdate`
//!   (`valueInputOption` required; ranges must lie inside the grid: "exceeds grid limits";
//!   `null` skips a cell, `""` clears it; a cell over 50 000 characters refuses the whole
//!   batch, which is applied atomically), `POST …/values/{range}:append` (finds the table and
//!   writes after its last row, growing the grid: a retried append duplicates rows, as on
//!   Google), `POST /v4/spreadsheets/{id}:batchUpdate` (`appendDimension`, refused past the
//!   10 000 000-cell cap of a spreadsheet). `values.batchUpdate` with
//!   `includeValuesInResponse` answers each range's cells after the write as `updatedData`.
//! * Returned values drop trailing empty cells and rows, as Sheets does.
//! * Per-minute read and write quotas answering 429 `RESOURCE_EXHAUSTED`, Google's error
//!   bodies (400 `INVALID_ARGUMENT`, 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED` when the
//!   sheet is not shared with the account, 404 `NOT_FOUND`).
//! * A fault plan of hand edits applied right after the n-th read ([`SheetsFake::edit_after_read`]):
//!   rows inserted, sorted or deleted between the connector's read and its write.
// The request helpers return the ready error response as their `Err`.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::services::ServiceEntry;

/// The service account the demo fake trusts.
pub const TEST_CLIENT_EMAIL: &str = "syncctl-test@syncctl-demo.iam.gserviceaccount.com";

/// The key id (`private_key_id`) of the test key.
pub const TEST_KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";

/// Sheets refuses cells longer than this.
pub const MAX_CELL_CHARS: usize = 50_000;

/// A spreadsheet holds at most this many cells (every tab's grid counted).
pub const MAX_CELLS: usize = 10_000_000;

/// The spreadsheet id of the demo fake.
pub const DEMO_SPREADSHEET_ID: &str = "1DemoSpreadsheetId_syncctl";

/// A service-account key file for the test key, with `token_uri` pointing at `token_uri`.
#[must_use]
pub fn service_account_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "syncctl-demo",
        "private_key_id": TEST_KEY_ID,
        "private_key": super::snowflake::TEST_PRIVATE_KEY_PEM,
        "client_email": TEST_CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

/// A hand edit made to a tab while syncctl is working.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Insert rows before 1-based `at` (rows below move down).
    InsertRows {
        /// The tab.
        tab: String,
        /// Where.
        at: usize,
        /// The rows.
        rows: Vec<Vec<Value>>,
    },
    /// Delete the 1-based row `at` (rows below move up).
    DeleteRow {
        /// The tab.
        tab: String,
        /// Which.
        at: usize,
    },
    /// Sort the data rows (row 2 on) by a 0-based column, descending when `desc`.
    Sort {
        /// The tab.
        tab: String,
        /// The column.
        column: usize,
        /// Descending.
        desc: bool,
    },
    /// Set one cell (1-based row, 0-based column).
    SetCell {
        /// The tab.
        tab: String,
        /// The row.
        row: usize,
        /// The column.
        column: usize,
        /// The value.
        value: Value,
    },
}

#[derive(Debug, Clone)]
struct Tab {
    sheet_id: i64,
    title: String,
    row_count: usize,
    column_count: usize,
    cells: Vec<Vec<Value>>,
    merges: Vec<(usize, usize, usize, usize)>,
}

impl Tab {
    fn get(&self, r: usize, c: usize) -> Value {
        self.cells
            .get(r)
            .and_then(|row| row.get(c))
            .cloned()
            .unwrap_or(Value::Null)
    }
    fn set(&mut self, r: usize, c: usize, v: Value) {
        if self.cells.len() <= r {
            self.cells.resize(r + 1, Vec::new());
        }
        let row = &mut self.cells[r];
        if row.len() <= c {
            row.resize(c + 1, Value::Null);
        }
        row[c] = v;
    }
    fn row_empty(&self, r: usize) -> bool {
        self.cells.get(r).is_none_or(|row| row.iter().all(empty))
    }
    fn last_used_row(&self) -> Option<usize> {
        (0..self.cells.len()).rev().find(|r| !self.row_empty(*r))
    }
}

fn empty(v: &Value) -> bool {
    matches!(v, Value::Null) || v.as_str().is_some_and(str::is_empty)
}

#[derive(Debug)]
struct Inner {
    spreadsheet_id: String,
    time_zone: String,
    tabs: Vec<Tab>,
    client_email: String,
    public_key_pem: String,
    key_id: String,
    shared: bool,
    token_ttl: u64,
    tokens: Vec<(String, Instant)>,
    token_requests: u32,
    reads_per_minute: Option<usize>,
    writes_per_minute: Option<usize>,
    quota_window: Duration,
    reads: VecDeque<Instant>,
    writes: VecDeque<Instant>,
    read_count: u32,
    max_cells: usize,
    edits: Vec<(u32, Edit)>,
    value_input_options: Vec<String>,
    appends: u32,
}

/// The fake. Cheap to clone; every clone shares the state.
#[derive(Clone)]
pub struct SheetsFake {
    inner: Arc<Mutex<Inner>>,
}

impl Default for SheetsFake {
    fn default() -> Self {
        Self::new(DEMO_SPREADSHEET_ID)
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SheetsFake {
    /// A spreadsheet with no tabs, trusting the testkit's service account.
    #[must_use]
    pub fn new(spreadsheet_id: &str) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                spreadsheet_id: spreadsheet_id.to_owned(),
                time_zone: "Etc/GMT".to_owned(),
                tabs: Vec::new(),
                client_email: TEST_CLIENT_EMAIL.to_owned(),
                public_key_pem: super::snowflake::TEST_PUBLIC_KEY_PEM.to_owned(),
                key_id: TEST_KEY_ID.to_owned(),
                shared: true,
                token_ttl: 3599,
                tokens: Vec::new(),
                token_requests: 0,
                reads_per_minute: None,
                writes_per_minute: None,
                quota_window: Duration::from_secs(60),
                reads: VecDeque::new(),
                writes: VecDeque::new(),
                read_count: 0,
                max_cells: MAX_CELLS,
                edits: Vec::new(),
                value_input_options: Vec::new(),
                appends: 0,
            })),
        }
    }

    /// Adds a tab holding `rows` (row 1 first) in a grid of `row_count` rows × 26 columns.
    #[must_use]
    pub fn tab(self, title: &str, rows: Vec<Vec<Value>>, row_count: usize) -> Self {
        {
            let mut g = lock(&self.inner);
            let id = i64::try_from(g.tabs.len()).unwrap_or(0) * 1000;
            let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(26);
            g.tabs.push(Tab {
                sheet_id: id,
                title: title.to_owned(),
                row_count: row_count.max(rows.len()),
                column_count: width,
                cells: rows,
                merges: Vec::new(),
            });
        }
        self
    }

    /// Merges cells of a tab (0-based, end exclusive), like Format → Merge cells.
    #[must_use]
    pub fn merge(self, tab: &str, rows: (usize, usize), columns: (usize, usize)) -> Self {
        {
            let mut g = lock(&self.inner);
            if let Some(t) = g.tabs.iter_mut().find(|t| t.title == tab) {
                t.merges.push((rows.0, rows.1, columns.0, columns.1));
            }
        }
        self
    }

    /// The spreadsheet's time zone (default `Etc/GMT`).
    #[must_use]
    pub fn time_zone(self, tz: &str) -> Self {
        lock(&self.inner).time_zone = tz.to_owned();
        self
    }

    /// Access tokens live this long (default 3599 s, as Google's).
    #[must_use]
    pub fn token_ttl(self, secs: u64) -> Self {
        lock(&self.inner).token_ttl = secs;
        self
    }

    /// Whether the sheet is shared with the service account (default yes; no → 403).
    #[must_use]
    pub fn shared(self, shared: bool) -> Self {
        lock(&self.inner).shared = shared;
        self
    }

    /// Per-minute quotas (Google: 60 reads and 60 writes per user); over them → 429.
    #[must_use]
    pub fn quota(self, reads: usize, writes: usize, window: Duration) -> Self {
        {
            let mut g = lock(&self.inner);
            g.reads_per_minute = Some(reads);
            g.writes_per_minute = Some(writes);
            g.quota_window = window;
        }
        self
    }

    /// Caps the spreadsheet's grid at `cells` (Google: 10 000 000); growing past it → 400.
    #[must_use]
    pub fn max_cells(self, cells: usize) -> Self {
        lock(&self.inner).max_cells = cells;
        self
    }

    /// Applies `edit` right after the `nth` read (1-based, counting `values.get`,
    /// `values.batchGet` and `spreadsheets.get`) has been answered: a person editing the sheet
    /// between syncctl's read and its write.
    pub fn edit_after_read(&self, nth: u32, edit: Edit) {
        lock(&self.inner).edits.push((nth, edit));
    }

    /// Applies an edit now.
    pub fn edit(&self, edit: &Edit) {
        apply_edit(&mut lock(&self.inner), edit);
    }

    /// Replaces a tab's rows (the grid keeps its size, growing to fit).
    pub fn set_rows(&self, tab: &str, rows: Vec<Vec<Value>>) {
        let mut g = lock(&self.inner);
        if let Some(t) = g.tabs.iter_mut().find(|t| t.title == tab) {
            t.row_count = t.row_count.max(rows.len());
            t.cells = rows;
        }
    }

    /// Appends rows after the last used row, as a person typing them would.
    pub fn push_rows(&self, tab: &str, rows: Vec<Vec<Value>>) {
        let mut g = lock(&self.inner);
        if let Some(t) = g.tabs.iter_mut().find(|t| t.title == tab) {
            let start = t.last_used_row().map_or(0, |l| l + 1);
            t.cells.truncate(start);
            t.cells.extend(rows);
            t.row_count = t.row_count.max(t.cells.len());
        }
    }

    /// Reads answered so far.
    #[must_use]
    pub fn read_count(&self) -> u32 {
        lock(&self.inner).read_count
    }

    /// Tokens issued so far.
    #[must_use]
    pub fn token_requests(&self) -> u32 {
        lock(&self.inner).token_requests
    }

    /// `values.append` calls served.
    #[must_use]
    pub fn appends(&self) -> u32 {
        lock(&self.inner).appends
    }

    /// Every `valueInputOption` written with.
    #[must_use]
    pub fn value_input_options(&self) -> Vec<String> {
        lock(&self.inner).value_input_options.clone()
    }

    /// A tab's rows as stored (trailing empties trimmed).
    #[must_use]
    pub fn rows(&self, tab: &str) -> Vec<Vec<Value>> {
        let g = lock(&self.inner);
        g.tabs
            .iter()
            .find(|t| t.title == tab)
            .map(|t| trimmed(&t.cells))
            .unwrap_or_default()
    }

    /// A tab's grid row count.
    #[must_use]
    pub fn row_count(&self, tab: &str) -> usize {
        let g = lock(&self.inner);
        g.tabs
            .iter()
            .find(|t| t.title == tab)
            .map_or(0, |t| t.row_count)
    }

    /// The router: the Sheets API under `/v4` and the token endpoint at `/token`.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }
}

fn trimmed(cells: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = cells
        .iter()
        .map(|row| {
            let mut r = row.clone();
            while r.last().is_some_and(empty) {
                r.pop();
            }
            r.into_iter()
                .map(|v| if v.is_null() { json!("") } else { v })
                .collect()
        })
        .collect();
    while out.last().is_some_and(Vec::is_empty) {
        out.pop();
    }
    out
}

fn apply_edit(g: &mut Inner, edit: &Edit) {
    let find = |g: &mut Inner, tab: &str| g.tabs.iter().position(|t| t.title == tab);
    match edit {
        Edit::InsertRows { tab, at, rows } => {
            if let Some(i) = find(g, tab) {
                let t = &mut g.tabs[i];
                let at = at.saturating_sub(1).min(t.cells.len());
                for (k, r) in rows.iter().enumerate() {
                    t.cells.insert(at + k, r.clone());
                }
                t.row_count += rows.len();
            }
        }
        Edit::DeleteRow { tab, at } => {
            if let Some(i) = find(g, tab) {
                let t = &mut g.tabs[i];
                if *at >= 1 && at - 1 < t.cells.len() {
                    t.cells.remove(at - 1);
                    t.row_count = t.row_count.saturating_sub(1);
                }
            }
        }
        Edit::Sort { tab, column, desc } => {
            if let Some(i) = find(g, tab) {
                let t = &mut g.tabs[i];
                if t.cells.len() > 1 {
                    let key = |r: &Vec<Value>| {
                        r.get(*column).map(ToString::to_string).unwrap_or_default()
                    };
                    t.cells[1..].sort_by(|a, b| {
                        let o = key(a).cmp(&key(b));
                        if *desc { o.reverse() } else { o }
                    });
                }
            }
        }
        Edit::SetCell {
            tab,
            row,
            column,
            value,
        } => {
            if let Some(i) = find(g, tab) {
                g.tabs[i].set(row.saturating_sub(1), *column, value.clone());
            }
        }
    }
}

fn google_error(status: StatusCode, message: &str) -> Response {
    let s = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "INTERNAL",
    };
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "message": message, "status": s}})),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message)
}

/// Percent-decodes a URL component (`+` as space in forms and queries).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Path segments decoded without treating `+` as a space.
fn decode_path(s: &str) -> String {
    decode(&s.replace('+', "%2B"))
}

async fn handle(State(fake): State<SheetsFake>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let query = pairs(parts.uri.query().unwrap_or_default());
    if path == "/token" && parts.method == Method::POST {
        return token(&fake, &parts.headers, &body);
    }
    let Some(rest) = path.strip_prefix("/v4/spreadsheets/") else {
        return google_error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    };
    let mut g = lock(&fake.inner);
    if let Err(r) = authenticate(&mut g, &parts.headers) {
        return r;
    }
    // `{id}`, `{id}:batchUpdate`, `{id}/values/{range}`, `{id}/values:batchGet`, …
    let (id, tail) = match rest.find(['/', ':']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if decode_path(id) != g.spreadsheet_id {
        return google_error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    }
    if !g.shared {
        return google_error(StatusCode::FORBIDDEN, "The caller does not have permission");
    }
    let is_read = parts.method == Method::GET;
    if let Err(r) = quota(&mut g, is_read) {
        return r;
    }
    let resp = match (parts.method.clone(), tail) {
        (Method::GET, "") => spreadsheet_get(&g, &query),
        (Method::GET, "/values:batchGet") => {
            let ranges: Vec<String> = query
                .iter()
                .filter(|(k, _)| k == "ranges")
                .map(|(_, v)| v.clone())
                .collect();
            if ranges.is_empty() {
                bad_request("Must specify at least one range.")
            } else {
                let mut out = Vec::new();
                let mut failed = None;
                for r in &ranges {
                    match read_range(&g, r, &query) {
                        Ok(v) => out.push(v),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                failed.unwrap_or_else(|| {
                    axum::Json(json!({"spreadsheetId": g.spreadsheet_id, "valueRanges": out}))
                        .into_response()
                })
            }
        }
        (Method::GET, t) if t.starts_with("/values/") => {
            let range = decode_path(&t["/values/".len()..]);
            match read_range(&g, &range, &query) {
                Ok(v) => axum::Json(v).into_response(),
                Err(e) => e,
            }
        }
        (Method::POST, "/values:batchUpdate") => batch_update(&mut g, &body),
        (Method::POST, ":batchUpdate") => structural_update(&mut g, &body),
        (Method::POST, t) if t.starts_with("/values/") && t.ends_with(":append") => {
            let range = decode_path(&t["/values/".len()..t.len() - ":append".len()]);
            append(&mut g, &range, &query, &body)
        }
        _ => google_error(StatusCode::NOT_FOUND, "Requested entity was not found."),
    };
    if is_read && resp.status().is_success() {
        g.read_count += 1;
        let n = g.read_count;
        let due: Vec<Edit> = g
            .edits
            .iter()
            .filter(|(at, _)| *at == n)
            .map(|(_, e)| e.clone())
            .collect();
        g.edits.retain(|(at, _)| *at != n);
        for e in &due {
            apply_edit(&mut g, e);
        }
    }
    resp
}

fn authenticate(g: &mut Inner, headers: &HeaderMap) -> Result<(), Response> {
    let now = Instant::now();
    g.tokens.retain(|(_, exp)| *exp > now);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if g.tokens.iter().any(|(k, _)| k == t) => Ok(()),
        _ => Err(google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )),
    }
}

fn quota(g: &mut Inner, read: bool) -> Result<(), Response> {
    let now = Instant::now();
    let window = g.quota_window;
    let (limit, log, what) = if read {
        (g.reads_per_minute, &mut g.reads, "Read")
    } else {
        (g.writes_per_minute, &mut g.writes, "Write")
    };
    let Some(limit) = limit else {
        return Ok(());
    };
    while log
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        log.pop_front();
    }
    if log.len() >= limit {
        return Err(google_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Quota exceeded for quota metric '{what} requests' and limit '{what} requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:0'."
            ),
        ));
    }
    log.push_back(now);
    Ok(())
}

fn token_refusal(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_grant", "error_description": description})),
    )
        .into_response()
}

fn token(fake: &SheetsFake, headers: &HeaderMap, body: &Bytes) -> Response {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let form = pairs(&String::from_utf8_lossy(body));
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "})),
        )
            .into_response();
    }
    let Some(assertion) = get("assertion") else {
        return token_refusal("Invalid JWT: assertion missing");
    };
    let mut g = lock(&fake.inner);
    g.token_requests += 1;
    let Ok(header) = jsonwebtoken::decode_header(&assertion) else {
        return token_refusal(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    };
    if header.alg != Algorithm::RS256 {
        return token_refusal("Invalid JWT Signature.");
    }
    if header.kid.as_deref() != Some(g.key_id.as_str()) {
        return token_refusal("Invalid JWT Signature.");
    }
    let Ok(key) = DecodingKey::from_rsa_pem(g.public_key_pem.as_bytes()) else {
        return token_refusal("fake misconfigured: public key");
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.set_audience(&[format!("http://{host}/token")]);
    v.set_issuer(&[g.client_email.clone()]);
    v.leeway = 60;
    let Ok(data) = jsonwebtoken::decode::<Value>(&assertion, &key, &v) else {
        return token_refusal("Invalid JWT Signature.");
    };
    let iat = data.claims["iat"].as_i64().unwrap_or(0);
    let exp = data.claims["exp"].as_i64().unwrap_or(0);
    let now = chrono::Utc::now().timestamp();
    if exp - iat > 3600 || iat > now + 60 {
        return token_refusal(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    let scopes = data.claims["scope"].as_str().unwrap_or_default();
    if !scopes
        .split(' ')
        .any(|s| s == "https://www.googleapis.com/auth/spreadsheets")
    {
        return token_refusal(
            "Invalid JWT: scope does not include https://www.googleapis.com/auth/spreadsheets",
        );
    }
    let n = g.token_requests;
    let token = format!("ya29.fake-{n}-{}", uuid::Uuid::new_v4().simple());
    let ttl = g.token_ttl;
    g.tokens
        .push((token.clone(), Instant::now() + Duration::from_secs(ttl)));
    axum::Json(json!({"access_token": token, "expires_in": ttl, "token_type": "Bearer"}))
        .into_response()
}

fn spreadsheet_get(g: &Inner, query: &[(String, String)]) -> Response {
    // `ranges` limits the answer to the tabs they name, with those cells as grid data when
    // the field mask (or includeGridData) asks for data.
    let mut wanted: Vec<Resolved> = Vec::new();
    for (_, r) in query.iter().filter(|(k, _)| k == "ranges") {
        match resolve(g, r) {
            Ok(r) => wanted.push(r),
            Err(e) => return e,
        }
    }
    let grid_data = query.iter().any(|(k, v)| {
        (k == "fields" && v.contains("data(")) || (k == "includeGridData" && v == "true")
    });
    let sheets: Vec<Value> = g
        .tabs
        .iter()
        .enumerate()
        .filter(|(i, _)| wanted.is_empty() || wanted.iter().any(|r| r.tab == *i))
        .map(|(i, t)| {
            let merges: Vec<Value> = t
                .merges
                .iter()
                .map(|(r0, r1, c0, c1)| {
                    json!({"sheetId": t.sheet_id, "startRowIndex": r0, "endRowIndex": r1, "startColumnIndex": c0, "endColumnIndex": c1})
                })
                .collect();
            let mut s = json!({
                "properties": {
                    "sheetId": t.sheet_id,
                    "title": t.title,
                    "index": i,
                    "sheetType": "GRID",
                    "gridProperties": {"rowCount": t.row_count, "columnCount": t.column_count}
                }
            });
            if !merges.is_empty() {
                s["merges"] = Value::Array(merges);
            }
            if grid_data {
                let data: Vec<Value> = wanted
                    .iter()
                    .filter(|r| r.tab == i)
                    .map(|r| grid_of(t, r))
                    .collect();
                s["data"] = Value::Array(data);
            }
            s
        })
        .collect();
    axum::Json(json!({
        "spreadsheetId": g.spreadsheet_id,
        "properties": {"title": "syncctl fake", "locale": "en_US", "timeZone": g.time_zone},
        "sheets": sheets,
    }))
    .into_response()
}

/// A range's cells as `GridData`: one `RowData` per row, `effectiveValue` per non-empty cell
/// (an empty `CellData` for a blank one), trailing empties dropped as Sheets does.
fn grid_of(t: &Tab, r: &Resolved) -> Value {
    let mut rows: Vec<Value> = Vec::new();
    for row in r.r0..=r.r1.min(t.cells.len().saturating_sub(1)) {
        let mut cells: Vec<Value> = (r.c0..=r.c1)
            .map(|c| match t.get(row, c) {
                Value::String(s) if s.is_empty() => json!({}),
                Value::String(s) => json!({"effectiveValue": {"stringValue": s}}),
                Value::Number(n) => json!({"effectiveValue": {"numberValue": n}}),
                Value::Bool(b) => json!({"effectiveValue": {"boolValue": b}}),
                _ => json!({}),
            })
            .collect();
        while cells.last().is_some_and(|c| c == &json!({})) {
            cells.pop();
        }
        rows.push(json!({"values": cells}));
    }
    while rows.last().is_some_and(|r| r["values"] == json!([])) {
        rows.pop();
    }
    json!({"startRow": r.r0, "startColumn": r.c0, "rowData": rows})
}

/// A range resolved against a tab: 0-based inclusive bounds.
struct Resolved {
    tab: usize,
    title: String,
    r0: usize,
    r1: usize,
    c0: usize,
    c1: usize,
}

fn resolve(g: &Inner, range: &str) -> Result<Resolved, Response> {
    let unable = || bad_request(&format!("Unable to parse range: {range}"));
    let p = parse_a1(range).ok_or_else(unable)?;
    let tab = match &p.0 {
        Some(name) => g
            .tabs
            .iter()
            .position(|t| &t.title == name)
            .ok_or_else(unable)?,
        None if !g.tabs.is_empty() => 0,
        None => return Err(unable()),
    };
    let t = &g.tabs[tab];
    let (c0, r0, c1, r1) = p.1;
    let r0 = r0.map_or(0, |r| r - 1);
    let c0 = c0.unwrap_or(0);
    let r1 = r1.map_or(t.row_count.saturating_sub(1), |r| r - 1);
    let c1 = c1.unwrap_or(t.column_count.saturating_sub(1));
    if r1 >= t.row_count || c1 >= t.column_count {
        return Err(bad_request(&format!(
            "Range ({range}) exceeds grid limits. Max rows: {}, max columns: {}",
            t.row_count, t.column_count
        )));
    }
    if r0 > r1 || c0 > c1 {
        return Err(unable());
    }
    Ok(Resolved {
        tab,
        title: t.title.clone(),
        r0,
        r1,
        c0,
        c1,
    })
}

type Bounds = (Option<usize>, Option<usize>, Option<usize>, Option<usize>);

/// `'tab'!A1:B2` → (tab, (first col, first row, last col, last row)); rows 1-based.
fn parse_a1(range: &str) -> Option<(Option<String>, Bounds)> {
    let (tab, cells) = if let Some(rest) = range.strip_prefix('\'') {
        let mut name = String::new();
        let mut it = rest.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = it.next() {
            if c == '\'' {
                if it.peek().is_some_and(|(_, n)| *n == '\'') {
                    it.next();
                    name.push('\'');
                    continue;
                }
                end = Some(i);
                break;
            }
            name.push(c);
        }
        let after = &rest[end? + 1..];
        match after.strip_prefix('!') {
            Some(c) => (Some(name), Some(c.to_owned())),
            None if after.is_empty() => (Some(name), None),
            None => return None,
        }
    } else {
        match range.split_once('!') {
            Some((t, c)) => (Some(t.to_owned()), Some(c.to_owned())),
            None => (Some(range.to_owned()), None),
        }
    };
    let Some(cells) = cells else {
        return Some((tab, (None, None, None, None)));
    };
    let cell = |s: &str| -> Option<(Option<usize>, Option<usize>)> {
        let split = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
        let (l, d) = s.split_at(split);
        let col = if l.is_empty() {
            None
        } else {
            let mut n = 0usize;
            for ch in l.chars() {
                if !ch.is_ascii_alphabetic() {
                    return None;
                }
                n = n * 26 + (ch.to_ascii_uppercase() as usize - 'A' as usize + 1);
            }
            Some(n - 1)
        };
        let row = if d.is_empty() {
            None
        } else {
            let r: usize = d.parse().ok()?;
            if r == 0 {
                return None;
            }
            Some(r)
        };
        Some((col, row))
    };
    let (a, b) = match cells.split_once(':') {
        Some((a, b)) => (cell(a)?, cell(b)?),
        None => {
            let c = cell(&cells)?;
            (c, c)
        }
    };
    if a.0.is_none() && a.1.is_none() {
        return None;
    }
    Some((tab, (a.0, a.1, b.0, b.1)))
}

fn col_letters(mut n: usize) -> String {
    n += 1;
    let mut s = Vec::new();
    while n > 0 {
        s.push(b'A' + u8::try_from((n - 1) % 26).unwrap_or(0));
        n = (n - 1) / 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn a1_of(r: &Resolved) -> String {
    format!(
        "'{}'!{}{}:{}{}",
        r.title.replace('\'', "''"),
        col_letters(r.c0),
        r.r0 + 1,
        col_letters(r.c1),
        r.r1 + 1
    )
}

fn read_range(g: &Inner, range: &str, query: &[(String, String)]) -> Result<Value, Response> {
    let r = resolve(g, range)?;
    let t = &g.tabs[r.tab];
    let formatted = query
        .iter()
        .find(|(k, _)| k == "valueRenderOption")
        .is_none_or(|(_, v)| v == "FORMATTED_VALUE");
    let columns = query
        .iter()
        .any(|(k, v)| k == "majorDimension" && v == "COLUMNS");
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let last_row = t.cells.len().min(r.r1 + 1);
    for row in r.r0..last_row {
        let mut out: Vec<Value> = (r.c0..=r.c1).map(|c| t.get(row, c)).collect();
        while out.last().is_some_and(empty) {
            out.pop();
        }
        let out = out
            .into_iter()
            .map(|v| match v {
                Value::Null => json!(""),
                Value::Number(n) if formatted => Value::String(n.to_string()),
                Value::Bool(b) if formatted => {
                    Value::String(if b { "TRUE" } else { "FALSE" }.into())
                }
                other => other,
            })
            .collect();
        rows.push(out);
    }
    while rows.last().is_some_and(Vec::is_empty) {
        rows.pop();
    }
    if columns {
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut cols = vec![Vec::new(); width];
        for (c, col) in cols.iter_mut().enumerate() {
            for row in &rows {
                col.push(row.get(c).cloned().unwrap_or(json!("")));
            }
            while col.last().is_some_and(empty) {
                col.pop();
            }
        }
        rows = cols;
    }
    let mut v = json!({"range": a1_of(&r), "majorDimension": if columns {"COLUMNS"} else {"ROWS"}});
    if !rows.is_empty() {
        v["values"] = json!(rows);
    }
    Ok(v)
}

fn check_input_option(g: &mut Inner, body: &Value) -> Result<(), Response> {
    match body["valueInputOption"].as_str() {
        Some(o @ ("RAW" | "USER_ENTERED")) => {
            g.value_input_options.push(o.to_owned());
            Ok(())
        }
        _ => Err(bad_request(
            "'valueInputOption' is required but not specified",
        )),
    }
}

fn check_cell(v: &Value) -> Result<(), Response> {
    if let Value::String(s) = v
        && s.chars().count() > MAX_CELL_CHARS
    {
        return Err(bad_request(&format!(
            "Your input contains more than the maximum of {MAX_CELL_CHARS} characters in a single cell."
        )));
    }
    if v.is_object() || v.is_array() {
        return Err(bad_request("Invalid values[0][0]: struct_value"));
    }
    Ok(())
}

fn batch_update(g: &mut Inner, body: &Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad_request("Invalid JSON payload received.");
    };
    if let Err(r) = check_input_option(g, &body) {
        return r;
    }
    let data = body["data"].as_array().cloned().unwrap_or_default();
    let include_values = body["includeValuesInResponse"].as_bool() == Some(true);
    let render: Vec<(String, String)> = body["responseValueRenderOption"]
        .as_str()
        .map(|o| vec![("valueRenderOption".to_owned(), o.to_owned())])
        .unwrap_or_default();
    // Validate everything first: the batch is applied atomically.
    let mut planned = Vec::new();
    for d in &data {
        let range = d["range"].as_str().unwrap_or_default();
        let r = match resolve(g, range) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let values: Vec<Vec<Value>> =
            serde_json::from_value(d["values"].clone()).unwrap_or_default();
        if values.len() > r.r1 - r.r0 + 1 || values.iter().any(|row| row.len() > r.c1 - r.c0 + 1) {
            return bad_request(&format!(
                "Requested writing within range [{range}], but tried writing to column/row outside it"
            ));
        }
        for row in &values {
            for v in row {
                if let Err(e) = check_cell(v) {
                    return e;
                }
            }
        }
        planned.push((r, values));
    }
    let mut responses = Vec::new();
    let (mut cells, mut rows_touched) = (0usize, 0usize);
    for (r, values) in planned {
        let mut n = 0;
        for (i, row) in values.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                if v.is_null() {
                    continue;
                }
                g.tabs[r.tab].set(r.r0 + i, r.c0 + j, v.clone());
                n += 1;
            }
        }
        cells += n;
        rows_touched += values.len();
        let mut response = json!({
            "spreadsheetId": g.spreadsheet_id,
            "updatedRange": a1_of(&r),
            "updatedRows": values.len(),
            "updatedColumns": values.iter().map(Vec::len).max().unwrap_or(0),
            "updatedCells": n,
        });
        if include_values {
            // The cells of the range after the update, rendered as asked (Google's default
            // render option is FORMATTED_VALUE); trailing empty rows and cells dropped.
            if let Ok(v) = read_range(g, &a1_of(&r), &render) {
                response["updatedData"] = v;
            }
        }
        responses.push(response);
    }
    axum::Json(json!({
        "spreadsheetId": g.spreadsheet_id,
        "totalUpdatedRows": rows_touched,
        "totalUpdatedColumns": data.len(),
        "totalUpdatedCells": cells,
        "totalUpdatedSheets": usize::from(!data.is_empty()),
        "responses": responses,
    }))
    .into_response()
}

fn structural_update(g: &mut Inner, body: &Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let requests = body["requests"].as_array().cloned().unwrap_or_default();
    let mut replies = Vec::new();
    // Validate all first (atomic).
    for r in &requests {
        let Some(a) = r.get("appendDimension") else {
            return bad_request("the fake supports only appendDimension requests");
        };
        let id = a["sheetId"].as_i64().unwrap_or(-1);
        if !g.tabs.iter().any(|t| t.sheet_id == id) {
            return bad_request(&format!(
                "Invalid requests[0].appendDimension: No grid with id: {id}"
            ));
        }
        if a["length"].as_u64().unwrap_or(0) == 0 {
            return bad_request("Invalid requests[0].appendDimension: length must be positive");
        }
    }
    // Google's cap on the whole spreadsheet's grid (every tab's rows × columns).
    let mut grid: Vec<(i64, usize, usize)> = g
        .tabs
        .iter()
        .map(|t| (t.sheet_id, t.row_count, t.column_count))
        .collect();
    for r in &requests {
        let a = &r["appendDimension"];
        let len = usize::try_from(a["length"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX);
        if let Some(t) = grid.iter_mut().find(|t| Some(t.0) == a["sheetId"].as_i64()) {
            if a["dimension"] == "COLUMNS" {
                t.2 = t.2.saturating_add(len);
            } else {
                t.1 = t.1.saturating_add(len);
            }
        }
    }
    let total = grid.iter().fold(0usize, |n, (_, r, c)| {
        n.saturating_add(r.saturating_mul(*c))
    });
    if total > g.max_cells {
        return bad_request(&format!(
            "Invalid requests[0].appendDimension: This action would increase the number of cells in the workbook above the limit of {} cells.",
            g.max_cells
        ));
    }
    for r in &requests {
        let a = &r["appendDimension"];
        let id = a["sheetId"].as_i64().unwrap_or(-1);
        let len = usize::try_from(a["length"].as_u64().unwrap_or(0)).unwrap_or(0);
        if let Some(t) = g.tabs.iter_mut().find(|t| t.sheet_id == id) {
            if a["dimension"] == "COLUMNS" {
                t.column_count += len;
            } else {
                t.row_count += len;
            }
        }
        replies.push(json!({}));
    }
    axum::Json(json!({"spreadsheetId": g.spreadsheet_id, "replies": replies})).into_response()
}

fn append(g: &mut Inner, range: &str, query: &[(String, String)], body: &Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad_request("Invalid JSON payload received.");
    };
    let opt = query
        .iter()
        .find(|(k, _)| k == "valueInputOption")
        .map(|(_, v)| v.clone());
    match opt.as_deref() {
        Some(o @ ("RAW" | "USER_ENTERED")) => g.value_input_options.push(o.to_owned()),
        _ => return bad_request("'valueInputOption' is required but not specified"),
    }
    let r = match resolve(g, range) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let values: Vec<Vec<Value>> =
        serde_json::from_value(body["values"].clone()).unwrap_or_default();
    for row in &values {
        for v in row {
            if let Err(e) = check_cell(v) {
                return e;
            }
        }
    }
    g.appends += 1;
    let t = &mut g.tabs[r.tab];
    // The "table" is the used rows; new rows go right after its last one.
    let start = t.last_used_row().map_or(r.r0, |l| l + 1).max(r.r0);
    let needed = start + values.len();
    if needed > t.row_count {
        t.row_count = needed;
    }
    let insert = query
        .iter()
        .any(|(k, v)| k == "insertDataOption" && v == "INSERT_ROWS");
    if insert && start < t.cells.len() {
        for _ in 0..values.len() {
            t.cells.insert(start, Vec::new());
        }
    }
    for (i, row) in values.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            if !v.is_null() {
                t.set(start + i, r.c0 + j, v.clone());
            }
        }
    }
    let updated = Resolved {
        tab: r.tab,
        title: r.title.clone(),
        r0: start,
        r1: start + values.len().max(1) - 1,
        c0: r.c0,
        c1: r.c0 + values.iter().map(Vec::len).max().unwrap_or(1).max(1) - 1,
    };
    axum::Json(json!({
        "spreadsheetId": g.spreadsheet_id,
        "tableRange": a1_of(&r),
        "updates": {
            "spreadsheetId": g.spreadsheet_id,
            "updatedRange": a1_of(&updated),
            "updatedRows": values.len(),
            "updatedColumns": updated.c1 - updated.c0 + 1,
            "updatedCells": values.iter().map(Vec::len).sum::<usize>(),
        }
    }))
    .into_response()
}

/// A demo spreadsheet: `Sheet1` with a header and three contacts, keyed by email.
#[must_use]
pub fn demo() -> SheetsFake {
    SheetsFake::new(DEMO_SPREADSHEET_ID).tab(
        "Sheet1",
        vec![
            vec![
                json!("email"),
                json!("firstname"),
                json!("lastname"),
                json!("company"),
            ],
            vec![
                json!("ada@example.com"),
                json!("Ada"),
                json!("Lovelace"),
                json!("Analytical"),
            ],
            vec![
                json!("grace@example.com"),
                json!("Grace"),
                json!("Hopper"),
                json!("Navy"),
            ],
            vec![
                json!("linus@example.com"),
                json!("Linus"),
                json!("Torvalds"),
                json!(""),
            ],
        ],
        1000,
    )
}

/// The fake's entry for `syncctl-fakes serve sheets`.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    vec![ServiceEntry {
        name: "sheets",
        about: "Google Sheets API v4 + service-account token endpoint at /token (spreadsheet 1DemoSpreadsheetId_syncctl, tab Sheet1, the testkit key)",
        router: || demo().router(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a1_ranges_parse() {
        assert_eq!(
            parse_a1("'My tab'!B2:C").unwrap(),
            (Some("My tab".into()), (Some(1), Some(2), Some(2), None))
        );
        assert_eq!(
            parse_a1("Sheet1!3:3").unwrap(),
            (Some("Sheet1".into()), (None, Some(3), None, Some(3)))
        );
        assert_eq!(
            parse_a1("Sheet1").unwrap(),
            (Some("Sheet1".into()), (None, None, None, None))
        );
        assert!(parse_a1("Sheet1!").is_none());
        assert_eq!(col_letters(27), "AB");
        assert_eq!(decode("%27a%20b%27%21A1"), "'a b'!A1");
    }
}
