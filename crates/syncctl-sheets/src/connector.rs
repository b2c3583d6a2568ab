//! The `google_sheets` connector: one tab of a spreadsheet as a keyed table.
//!
//! * **Identity** is the key column's value, never the row number: people sort and insert rows.
//! * **Reads** fetch the whole tab in one `values.get` and page through that snapshot; there is
//!   no per-row modified time, so the engine diffs the whole tab against its last-synced values
//!   every run (`incremental: false`). Only an `updated_at_column` that every edit sets (a form,
//!   an Apps Script `onEdit` trigger) makes reads incremental; rows without a time are always
//!   returned.
//! * **Writes** are planned on a fresh read of the header row, the key column and the rows new
//!   records would land on (one `values.batchGet` per write batch), and sent as one
//!   `values.batchUpdate` with explicit A1 ranges and `valueInputOption=RAW` (split into
//!   requests under Google's recommended 2 MB when rows are wide). The layout the plan was made
//!   on (the last read, updated with this connector's own writes) is compared with that fresh
//!   read first: when a touched key moved (sorted, inserted, deleted rows) or the append area
//!   filled, the connector re-plans and reads again, and writes only once two reads agree. New
//!   rows go after the last used row; the grid is grown first with `appendDimension`
//!   (geometrically, so a first load grows it a few times, not once per batch). Never
//!   `values.append`. Each record is one range over its whole row, `null` (skip) in the cells
//!   it does not write, and the write's answer carries the row as stored
//!   (`includeValuesInResponse`): that is the record handed back to the engine, so writes need
//!   no read-back call. Matching (`lookup`) answers from the last whole-tab read plus the
//!   connector's own writes, so it costs no read after a write.
//!   What this cannot close: Sheets has no conditional write on values, so a sort landing in
//!   the one round trip between the last fresh read and the `batchUpdate` is not seen before
//!   the write: the answer then shows another key on the row, and the record fails at once
//!   naming that row, but the cells written there stay as written.
//! * **Deletes** clear the row's cells; **archive** writes `deleted_value` to the
//!   `deleted_column` (a status column), and reads report such rows as deleted.
//! * **Refusals**: a cell over 50 000 characters, a value that does not fit a typed column, or
//!   a column the header lacks fails that record alone. Merged header cells, duplicate header
//!   names, a missing key column, a row with values but no key and a key on two rows are config
//!   errors naming the cells, raised before anything is written.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use syncctl_core::{
    BuildContext, BuildFuture, Capabilities, Connector, ConnectorError, ConnectorFactory,
    FieldSchema, FieldType, ObjectSchema, Page, PageToken, ReadRequest, Record, RecordError,
    RecordKey, Sink, Source, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_http::{HttpClient, RateLimiter, RefreshingToken, RetryPolicy, Sleeper};
use tokio::sync::Mutex;

use crate::SheetsError;
use crate::a1;
use crate::auth::{RENEW_BEFORE, ServiceAccountJwt, ServiceAccountKey};
use crate::client::{SheetsClient, TabInfo, UpdateValuesResponse, ValueRange};
use crate::error::KIND;
use crate::settings::{ResolvedSettings, SheetsSettings};
use crate::table::{Header, Layout, RowRules, Table};
use crate::value::{self, ColumnType, MAX_CELL_CHARS};

/// The registry entry.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: KIND,
    summary: "Google Sheets tab as a table (GOOGLE_SHEETS_SPREADSHEET_ID, GOOGLE_SHEETS_CREDENTIALS_JSON; object = tab, key_column, updated_at_column, deleted_column)",
    build,
};

/// Rows per write batch: about 1 000 rows keeps a `values.batchUpdate` well under the 2 MB
/// payload Google recommends.
pub const MAX_BATCH: usize = 1000;

/// Reads of the key column a write makes at most before it gives up on a sheet that keeps
/// changing under it.
const MAX_PLAN_ROUNDS: usize = 5;

/// The most rows one `appendDimension` adds beyond the rows a write needs.
const GROW_ROWS_MAX: u64 = 10_000;

/// Google recommends `values.batchUpdate` bodies of at most 2 MB: a batch of wide rows or long
/// cells is sent as several requests under this size (all planned on the same fresh read).
const MAX_REQUEST_BYTES: usize = 2_000_000;

/// Time zones in which serial numbers are UTC.
const UTC_ZONES: &[&str] = &[
    "UTC",
    "Etc/UTC",
    "GMT",
    "Etc/GMT",
    "Etc/Greenwich",
    "Etc/UCT",
    "Etc/Zulu",
];

fn build(ctx: BuildContext, settings: Value) -> BuildFuture {
    Box::pin(async move {
        let env = ctx.env.clone();
        // The binary's environment snapshot first; the process environment while a binary
        // does not pass one (BuildContext::new carries none).
        let lookup = |k: &str| env(k).or_else(|| std::env::var(k).ok());
        let mut c = GoogleSheets::from_settings(settings, &ctx.base_dir, &lookup, None)?;
        c.share_breaker(ctx.breaker.clone())?;
        Ok(Box::new(c) as Box<dyn Connector>)
    })
}

/// A configured Google Sheets tab.
pub struct GoogleSheets {
    settings: ResolvedSettings,
    key: ServiceAccountKey,
    sleeper: Option<Arc<dyn Sleeper>>,
    client: SheetsClient,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tab: Option<TabInfo>,
    header: Option<Header>,
    layout: Option<Layout>,
    snapshot: Option<Arc<Snapshot>>,
    /// Every row as of the last whole-tab read, by key, with this connector's own writes
    /// applied since: what `lookup` matches against, so matching a page of records after a
    /// write costs no read. Rows someone adds meanwhile are caught by the write's fresh read
    /// of the key column (a create never lands on a second row with the same key).
    index: Option<HashMap<String, Record>>,
    scans: u64,
}

struct Snapshot {
    id: u64,
    records: Vec<Record>,
}

/// One op, checked and turned into cells by column name.
enum Prepared {
    Done(WriteOutcome),
    Put {
        key: Option<String>,
        create: bool,
        /// The key was made from the create's token: finding it already in the sheet means
        /// this create is a replay, which updates that row.
        replay_safe: bool,
        natural: Option<(String, String)>,
        cells: BTreeMap<String, Value>,
    },
    Clear {
        key: String,
    },
}

/// Where one prepared op lands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    Row {
        row: usize,
        key: String,
        created: bool,
    },
    NotFound,
    Duplicate(usize),
}

impl GoogleSheets {
    /// Builds from a settings block; `env` fills what the block leaves out. `sleeper` replaces
    /// the retry timer (tests record backoff delays instead of sleeping).
    ///
    /// # Errors
    /// Invalid settings or an unusable service-account key (no network is touched).
    pub fn from_settings(
        settings: Value,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        sleeper: Option<Arc<dyn Sleeper>>,
    ) -> Result<Self, ConnectorError> {
        let mut settings = settings;
        if let Some(m) = settings.as_object_mut() {
            m.remove("connector");
        }
        let parsed: SheetsSettings = serde_json::from_value(settings)
            .map_err(|e| ConnectorError::config(KIND, format!("invalid settings: {e}")))?;
        let s = parsed.resolve(env, base_dir)?;
        for (k, ty) in &s.column_types {
            if Some(k) == s.updated_at_column.as_ref() && !matches!(ty, ColumnType::Timestamp) {
                return Err(ConnectorError::config(
                    KIND,
                    format!("column_types: {k} is the updated_at_column, so it is a timestamp"),
                ));
            }
        }
        let key = ServiceAccountKey::from_setting(&s.credentials_json, base_dir)?;
        let mut c = Self {
            client: SheetsClient::new(
                HttpClient::builder("google-sheets", s.base_url.clone())
                    .build()
                    .map_err(|e| ConnectorError::config(KIND, e.to_string()))?,
                s.spreadsheet_id.clone(),
            ),
            settings: s,
            key,
            sleeper,
            state: Mutex::new(State::default()),
        };
        c.client = SheetsClient::new(c.http_with(None)?, c.settings.spreadsheet_id.clone());
        Ok(c)
    }

    /// The Sheets HTTP client: service-account auth, Google's recommended truncated
    /// exponential backoff (1 s doubling to 64 s, jittered) on 429 and 5xx, client-side pacing.
    fn http_with(
        &self,
        breaker: Option<syncctl_core::breaker::SharedBreaker>,
    ) -> Result<HttpClient, ConnectorError> {
        let s = &self.settings;
        let token_url = s
            .token_url
            .clone()
            .unwrap_or_else(|| self.key.token_uri.clone());
        let retry = RetryPolicy {
            max_retries: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(64),
            max_retry_after: Duration::from_secs(120),
        };
        let with_sleeper = |b: syncctl_http::HttpClientBuilder| match &self.sleeper {
            Some(sl) => b.sleeper(sl.clone()),
            None => b,
        };
        let token_http = with_sleeper(HttpClient::builder("google-oauth", token_url.clone()))
            .retry(retry)
            .build()
            .map_err(|e| ConnectorError::config(KIND, e.to_string()))?;
        let auth = RefreshingToken::new(
            "google-sheets",
            ServiceAccountJwt::new(self.key.clone(), token_http, token_url),
            RENEW_BEFORE,
        );
        let per_second = f64::from(s.requests_per_minute) / 60.0;
        let mut b = with_sleeper(HttpClient::builder("google-sheets", s.base_url.clone()))
            .retry(retry)
            .auth(Arc::new(auth))
            .rate_limiter(Arc::new(RateLimiter::new(
                per_second,
                s.requests_per_minute,
            )));
        if let Some(br) = breaker {
            b = b.breaker(br);
        }
        b.build()
            .map_err(|e| ConnectorError::config(KIND, e.to_string()))
    }

    /// Sends through the engine's breaker for this connector, so an open breaker stops
    /// requests at once and there is one breaker, not two.
    ///
    /// # Errors
    /// The client cannot be rebuilt (never for settings that built once).
    pub fn share_breaker(
        &mut self,
        breaker: syncctl_core::breaker::SharedBreaker,
    ) -> Result<(), ConnectorError> {
        self.client = SheetsClient::new(
            self.http_with(Some(breaker))?,
            self.settings.spreadsheet_id.clone(),
        );
        Ok(())
    }

    /// The API client (call counts for benchmarks and tests).
    #[must_use]
    pub fn client(&self) -> &SheetsClient {
        &self.client
    }

    fn rules(&self, schema: &ObjectSchema) -> RowRules {
        RowRules {
            tab: self.settings.tab.clone(),
            key: schema.key.clone(),
            updated_at: schema.updated_at.clone(),
            deleted: schema
                .deleted
                .clone()
                .map(|d| (d, self.settings.deleted_value.clone())),
            types: self.types(),
        }
    }

    fn types(&self) -> BTreeMap<String, ColumnType> {
        let mut t = self.settings.column_types.clone();
        if let Some(u) = &self.settings.updated_at_column {
            t.insert(u.clone(), ColumnType::Timestamp);
        }
        t
    }

    /// Reads the whole tab and remembers its layout.
    async fn read_table(&self, schema: &ObjectSchema) -> Result<Table, ConnectorError> {
        let vr = self
            .client
            .values_get(&a1::whole_tab(&self.settings.tab))
            .await?;
        let table = self.rules(schema).parse_table(&vr.values)?;
        for f in &schema.fields {
            if table.header.index(&f.name).is_none() {
                return Err(self.rules(schema).missing(&f.name, &table.header).into());
            }
        }
        let mut st = self.state.lock().await;
        st.layout = Some(table.layout.clone());
        st.header = Some(table.header.clone());
        st.index = Some(
            table
                .records
                .iter()
                .map(|r| (r.key.0.clone(), r.clone()))
                .collect(),
        );
        drop(st);
        Ok(table)
    }

    async fn tab_info(&self, fresh: bool) -> Result<TabInfo, ConnectorError> {
        if !fresh && let Some(t) = self.state.lock().await.tab.clone() {
            return Ok(t);
        }
        let info = self.client.spreadsheet().await?;
        let tab = info
            .tabs
            .iter()
            .find(|t| t.title == self.settings.tab)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = info.tabs.iter().map(|t| t.title.as_str()).collect();
                ConnectorError::config(
                    KIND,
                    format!(
                        "spreadsheet has no tab {:?} (tabs: {}); set object: to the tab's name",
                        self.settings.tab,
                        names.join(", ")
                    ),
                )
            })?;
        let mut st = self.state.lock().await;
        st.tab = Some(tab.clone());
        Ok(tab)
    }
}

impl Drop for GoogleSheets {
    fn drop(&mut self) {
        let c = self.client.counts();
        tracing::debug!(
            connector = KIND,
            tab = %self.settings.tab,
            reads = c.reads(),
            writes = c.writes(),
            cells_read = c.cells_read(),
            cells_written = c.cells_written(),
            "connector statistics"
        );
    }
}

#[async_trait::async_trait]
impl Connector for GoogleSheets {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn endpoint(&self) -> String {
        format!(
            "google_sheets:{}/{}",
            self.settings.spreadsheet_id, self.settings.tab
        )
    }

    fn object(&self) -> &str {
        &self.settings.tab
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.tab_info(true).await.map(|_| ())
    }

    async fn describe(&self) -> Result<ObjectSchema, ConnectorError> {
        // The tab's properties and its header in one call; a tab that does not exist makes
        // the range unparsable (400), and a second call lists the tabs for the message.
        let info = match self
            .client
            .spreadsheet_with_header(&self.settings.tab)
            .await
        {
            Ok(info) => info,
            Err(e @ SheetsError::Api { status: 400, .. }) => {
                let all = self.client.spreadsheet().await?;
                if all.tabs.iter().any(|t| t.title == self.settings.tab) {
                    return Err(e.into());
                }
                all
            }
            Err(e) => return Err(e.into()),
        };
        let tab = info
            .tabs
            .iter()
            .find(|t| t.title == self.settings.tab)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = info.tabs.iter().map(|t| t.title.as_str()).collect();
                ConnectorError::config(
                    KIND,
                    format!(
                        "spreadsheet has no tab {:?} (tabs: {}); set object: to the tab's name",
                        self.settings.tab,
                        names.join(", ")
                    ),
                )
            })?;
        let tabname = &self.settings.tab;
        if let Some((_, _, c0, c1)) = tab.merges.iter().find(|(r0, r1, _, _)| *r0 == 0 && *r1 > 0) {
            let first = usize::try_from(*c0).unwrap_or(0);
            let last = usize::try_from(c1.saturating_sub(1)).unwrap_or(0);
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "tab {tabname:?}: header cells {}1:{}1 are merged; unmerge them so each column has its own name",
                    a1::column_letters(first),
                    a1::column_letters(last)
                ),
            ));
        }
        let header = Header::parse(tabname, &info.header_row)?;
        let missing = |name: &str| {
            let have: Vec<&str> = header.names().collect();
            ConnectorError::config(
                KIND,
                format!(
                    "tab {tabname:?} has no column {name:?} in its header row (columns: {})",
                    have.join(", ")
                ),
            )
        };
        let key = match &self.settings.key_column {
            Some(k) => {
                header.index(k).ok_or_else(|| missing(k))?;
                k.clone()
            }
            None if header.index("id").is_some() => "id".to_owned(),
            None => header.names().next().unwrap_or_default().to_owned(),
        };
        for c in self
            .settings
            .updated_at_column
            .iter()
            .chain(self.settings.deleted_column.iter())
            .chain(self.settings.column_types.keys())
            .chain(self.settings.columns.iter().flatten())
        {
            header.index(c).ok_or_else(|| missing(c))?;
        }
        // With `columns`, the schema is those columns plus the key and status columns; the
        // rest of the header is left alone and named, so a column typed in by hand is not
        // ignored without a word.
        let used = |n: &str| {
            self.settings
                .columns
                .as_ref()
                .is_none_or(|c| c.iter().any(|c| c == n))
                || n == key
                || self.settings.updated_at_column.as_deref() == Some(n)
                || self.settings.deleted_column.as_deref() == Some(n)
        };
        let beyond: Vec<&str> = header.names().filter(|n| !used(n)).collect();
        if !beyond.is_empty() {
            tracing::warn!(
                "tab {tabname:?}: columns {} are not among this sync's columns; they are neither synced nor written",
                beyond.join(", ")
            );
        }
        let types = self.types();
        if types.values().any(|t| *t == ColumnType::Timestamp)
            && let Some(tz) = &info.time_zone
            && !UTC_ZONES.contains(&tz.as_str())
        {
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "the spreadsheet's time zone is {tz}, but date-times are exchanged as serial numbers in UTC; set the spreadsheet's time zone to GMT (File → Settings) or drop the timestamp column types"
                ),
            ));
        }
        let fields = header
            .names()
            .filter(|n| used(n))
            .map(|n| FieldSchema {
                name: n.to_owned(),
                field_type: match types.get(n).copied().unwrap_or_default() {
                    ColumnType::Auto | ColumnType::Text => FieldType::Text,
                    ColumnType::Number => FieldType::Float,
                    ColumnType::Boolean => FieldType::Boolean,
                    ColumnType::Date => FieldType::Date,
                    ColumnType::Timestamp => FieldType::Timestamp,
                },
                nullable: n != key,
                writable: true,
                unique: n == key,
                max_length: u32::try_from(MAX_CELL_CHARS).ok(),
                has_default: false,
                normalisation: Vec::new(),
            })
            .collect();
        {
            let mut st = self.state.lock().await;
            st.tab = Some(tab);
            st.header = Some(header.clone());
        }
        Ok(ObjectSchema {
            object: tabname.clone(),
            key,
            updated_at: self.settings.updated_at_column.clone(),
            deleted: self.settings.deleted_column.clone(),
            origin: None,
            fields,
            capabilities: Capabilities {
                create: true,
                update: true,
                delete: true,
                archive: self.settings.deleted_column.is_some(),
                // Only a modified-time column that every edit sets makes `since` safe;
                // without one the engine diffs the whole tab every run.
                incremental: self.settings.updated_at_column.is_some(),
                generated_keys: false,
                conditional_update: false,
                returns_stored: false,
                versioned: false,
                reports_deletes: false,
                page_order: syncctl_core::PageOrder::Keyset,
            },
            max_batch: MAX_BATCH,
        })
    }

    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn sink(&self) -> Option<&dyn Sink> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Source for GoogleSheets {
    async fn read_page(
        &self,
        schema: &ObjectSchema,
        request: &ReadRequest,
    ) -> Result<Page, ConnectorError> {
        let (snap, offset) = match &request.after {
            None => {
                let table = self.read_table(schema).await?;
                let mut records = table.records;
                if let (Some(since), true) = (request.since, schema.capabilities.incremental) {
                    // Rows without a time (typed in by hand) are always returned: the engine
                    // diffs them against the base, so nothing is missed.
                    records.retain(|r| r.updated_at.is_none_or(|t| t >= since));
                    records.sort_by(|a, b| (a.updated_at, &a.key).cmp(&(b.updated_at, &b.key)));
                }
                let mut st = self.state.lock().await;
                st.scans += 1;
                let snap = Arc::new(Snapshot {
                    id: st.scans,
                    records,
                });
                st.snapshot = Some(snap.clone());
                (snap, 0)
            }
            Some(PageToken(t)) => {
                let id = t.get("scan").and_then(Value::as_u64);
                let offset = t.get("offset").and_then(Value::as_u64);
                let st = self.state.lock().await;
                match (&st.snapshot, id, offset) {
                    (Some(s), Some(id), Some(off)) if s.id == id => {
                        (s.clone(), usize::try_from(off).unwrap_or(usize::MAX))
                    }
                    _ => {
                        return Err(ConnectorError::failed(
                            KIND,
                            "page token does not belong to this connector's current scan of the tab; restart the scan",
                        ));
                    }
                }
            }
        };
        let limit = request.limit.max(1);
        let end = offset.saturating_add(limit).min(snap.records.len());
        let records = snap.records.get(offset..end).unwrap_or_default().to_vec();
        let next = (end < snap.records.len())
            .then(|| PageToken(serde_json::json!({"scan": snap.id, "offset": end})));
        Ok(Page { records, next })
    }

    async fn read_keys(
        &self,
        schema: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<Record>, ConnectorError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(found) = self.read_rows_of(schema, keys).await? {
            return Ok(found);
        }
        let want: std::collections::HashSet<&str> = keys.iter().map(RecordKey::as_str).collect();
        let table = self.read_table(schema).await?;
        Ok(table
            .records
            .into_iter()
            .filter(|r| want.contains(r.key.as_str()))
            .collect())
    }

    async fn lookup(
        &self,
        schema: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        if schema.field(field).is_none() {
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "lookup field {field:?} is not a column of tab {:?}",
                    self.settings.tab
                ),
            ));
        }
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let want: std::collections::HashSet<String> =
            values.iter().filter_map(value::key_text).collect();
        let matches = |r: &Record| {
            r.fields
                .get(field)
                .and_then(value::key_text)
                .is_some_and(|v| want.contains(&v))
        };
        // Matching answers from the last whole-tab read plus this connector's own writes: a
        // row someone added since is not seen here, but the write's fresh read of the key
        // (and natural-key) columns finds it before a create could duplicate it.
        {
            let st = self.state.lock().await;
            if let Some(index) = &st.index {
                let mut found: Vec<Record> =
                    index.values().filter(|r| matches(r)).cloned().collect();
                found.sort_by(|a, b| a.key.cmp(&b.key));
                return Ok(found);
            }
        }
        Ok(self
            .read_table(schema)
            .await?
            .records
            .into_iter()
            .filter(|r| matches(r))
            .collect())
    }
}

/// Sorted 1-based rows merged into spans when the gap between them is small.
fn row_spans(mut rows: Vec<usize>, max_gap: usize) -> Vec<(usize, usize)> {
    rows.sort_unstable();
    rows.dedup();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for r in rows {
        match spans.last_mut() {
            Some((_, end)) if r <= *end + max_gap + 1 => *end = r,
            _ => spans.push((r, r)),
        }
    }
    spans
}

/// Most ranges a read-back of written rows asks for before reading the whole tab instead
/// (the query string carries every range).
const MAX_READBACK_SPANS: usize = 40;

impl GoogleSheets {
    /// Reads just the rows the cached layout places `keys` on, when that is a few ranges and
    /// every key is still where the layout says; `None` means "read the whole tab".
    async fn read_rows_of(
        &self,
        schema: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Option<Vec<Record>>, ConnectorError> {
        let rows: Vec<usize> = {
            let st = self.state.lock().await;
            let Some(layout) = &st.layout else {
                return Ok(None);
            };
            let mut rows = Vec::with_capacity(keys.len());
            for k in keys {
                match layout.rows.get(k.as_str()) {
                    Some(r) => rows.push(*r),
                    None => return Ok(None),
                }
            }
            rows
        };
        let spans = row_spans(rows, 20);
        if spans.len() > MAX_READBACK_SPANS {
            return Ok(None);
        }
        let tab = &self.settings.tab;
        let mut ranges = vec![a1::row(tab, 1)];
        ranges.extend(
            spans
                .iter()
                .map(|(a, b)| format!("{}!{a}:{b}", a1::quote_tab(tab))),
        );
        let got = self.client.values_batch_get(&ranges).await?;
        // Rebuild a small table: header + the spans' rows, then check every key sits where
        // the layout said; any surprise falls back to a whole-tab read.
        let header_row = got
            .first()
            .and_then(|v| v.values.first())
            .cloned()
            .unwrap_or_default();
        let rules = self.rules(schema);
        let want: HashMap<&str, usize> = {
            let st = self.state.lock().await;
            let Some(layout) = &st.layout else {
                return Ok(None);
            };
            keys.iter()
                .filter_map(|k| layout.rows.get(k.as_str()).map(|r| (k.as_str(), *r)))
                .collect()
        };
        let mut found = Vec::with_capacity(keys.len());
        for ((start, end), vr) in spans.iter().zip(got.iter().skip(1)) {
            let mut values = vec![header_row.clone()];
            values.extend(vr.values.iter().cloned());
            let span_len = end - start + 1;
            values.resize(span_len + 1, Vec::new());
            let Ok(table) = rules.parse_table(&values) else {
                return Ok(None);
            };
            for r in table.records {
                let expected_row = table
                    .layout
                    .rows
                    .get(r.key.as_str())
                    .map(|local| start + local - 2);
                match want.get(r.key.as_str()) {
                    Some(row) if Some(*row) == expected_row => found.push(r),
                    Some(_) => return Ok(None),
                    None => {}
                }
            }
        }
        if found.len() != want.len() {
            return Ok(None);
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Some(found))
    }

    /// Checks each op and turns it into cells by column name.
    fn prepare(&self, schema: &ObjectSchema, op: &WriteOp, header: &Header) -> Prepared {
        let types = self.types();
        let now = chrono::Utc::now();
        let cells_of = |fields: &BTreeMap<String, Value>, create: bool| {
            let mut cells = BTreeMap::new();
            for (name, v) in fields {
                if header.index(name).is_none() {
                    return Err(RecordError::invalid(
                        format!(
                            "tab {:?} has no column {name:?}; add it to the header row",
                            self.settings.tab
                        ),
                        Some(name),
                    ));
                }
                let ty = types.get(name).copied().unwrap_or_default();
                let cell = value::value_to_cell(v, ty)
                    .map_err(|r| RecordError::invalid(format!("{name}: {}", r.0), Some(name)))?;
                // A create leaves absent cells alone; null only clears on updates.
                if create && value::is_empty(&cell) {
                    continue;
                }
                cells.insert(name.clone(), cell);
            }
            if let Some(u) = &schema.updated_at
                && !fields.contains_key(u)
            {
                cells.insert(u.clone(), value::number(value::datetime_to_serial(now)));
            }
            Ok(cells)
        };
        match op {
            WriteOp::Create {
                natural_key,
                fields,
                token,
            } => {
                let natural = natural_key
                    .as_ref()
                    .and_then(|nk| value::key_text(&nk.value).map(|v| (nk.field.clone(), v)));
                let given = fields
                    .get(&schema.key)
                    .and_then(value::key_text)
                    .or_else(|| {
                        natural
                            .as_ref()
                            .filter(|(f, _)| *f == schema.key)
                            .map(|(_, v)| v.clone())
                    });
                // A sheet has no generated keys: a create without one gets its stable token
                // (the same on a replay after a crash), so the row can be found again.
                let replay_safe = given.is_none();
                let key = given.unwrap_or_else(|| token.clone());
                if key.is_empty() {
                    return Prepared::Done(WriteOutcome::Failed(RecordError::invalid(
                        format!("a new row needs a value in the key column {}", schema.key),
                        Some(&schema.key),
                    )));
                }
                match cells_of(fields, true) {
                    Ok(mut cells) => {
                        cells
                            .entry(schema.key.clone())
                            .or_insert_with(|| Value::String(key.clone()));
                        Prepared::Put {
                            key: Some(key),
                            create: true,
                            replay_safe,
                            natural,
                            cells,
                        }
                    }
                    Err(e) => Prepared::Done(WriteOutcome::Failed(e)),
                }
            }
            WriteOp::Update { key, fields, .. } => match cells_of(fields, false) {
                Ok(cells) => Prepared::Put {
                    key: Some(key.0.clone()),
                    create: false,
                    replay_safe: false,
                    natural: None,
                    cells,
                },
                Err(e) => Prepared::Done(WriteOutcome::Failed(e)),
            },
            WriteOp::Delete { key } => Prepared::Clear { key: key.0.clone() },
            WriteOp::Archive { key } => match &schema.deleted {
                Some(d) => {
                    let mut cells = BTreeMap::new();
                    cells.insert(
                        d.clone(),
                        Value::String(self.settings.deleted_value.clone()),
                    );
                    if let Some(u) = &schema.updated_at {
                        cells.insert(u.clone(), value::number(value::datetime_to_serial(now)));
                    }
                    Prepared::Put {
                        key: Some(key.0.clone()),
                        create: false,
                        replay_safe: false,
                        natural: None,
                        cells,
                    }
                }
                None => Prepared::Done(WriteOutcome::Failed(RecordError::invalid(
                    "archive needs a deleted_column (a status column) on the sheet",
                    None,
                ))),
            },
        }
    }
}

/// The rows each prepared op lands on, given where keys are and where new rows start.
fn place(
    prepared: &[Prepared],
    layout: &Layout,
    natural_rows: &HashMap<String, HashMap<String, usize>>,
    append_at: usize,
) -> (Vec<Placement>, usize) {
    let mut next_new = append_at;
    let mut claimed: HashMap<String, usize> = HashMap::new();
    let by_row: HashMap<usize, &String> = if prepared.iter().any(|p| {
        matches!(
            p,
            Prepared::Put {
                natural: Some(_),
                ..
            }
        )
    }) {
        layout.rows.iter().map(|(k, r)| (*r, k)).collect()
    } else {
        HashMap::new()
    };
    let mut out = Vec::with_capacity(prepared.len());
    for p in prepared {
        let placement = match p {
            Prepared::Done(_) => Placement::NotFound,
            Prepared::Clear { key } => match layout.rows.get(key) {
                Some(r) => Placement::Row {
                    row: *r,
                    key: key.clone(),
                    created: false,
                },
                None => Placement::NotFound,
            },
            Prepared::Put {
                key, create: false, ..
            } => {
                match key
                    .as_ref()
                    .and_then(|k| layout.rows.get(k).map(|r| (k, r)))
                {
                    Some((k, r)) => Placement::Row {
                        row: *r,
                        key: k.clone(),
                        created: false,
                    },
                    None => Placement::NotFound,
                }
            }
            Prepared::Put {
                key,
                create: true,
                natural,
                replay_safe,
                ..
            } => {
                let existing = natural
                    .as_ref()
                    .and_then(|(f, v)| natural_rows.get(f).and_then(|m| m.get(v)).copied());
                let by_key = key.as_ref().and_then(|k| layout.rows.get(k)).copied();
                let key_of_row = |row: usize| by_row.get(&row).map(|k| (*k).clone());
                match (existing, by_key) {
                    (Some(row), _) => match key_of_row(row) {
                        Some(k) => Placement::Row {
                            row,
                            key: k,
                            created: false,
                        },
                        None => Placement::NotFound,
                    },
                    (None, Some(row)) if *replay_safe => Placement::Row {
                        row,
                        key: key.clone().unwrap_or_default(),
                        created: false,
                    },
                    (None, Some(row)) => Placement::Duplicate(row),
                    (None, None) => {
                        let k = key
                            .clone()
                            .or_else(|| natural.as_ref().map(|(_, v)| v.clone()))
                            .unwrap_or_default();
                        if let Some(row) = claimed.get(&k) {
                            Placement::Duplicate(*row)
                        } else {
                            let row = next_new;
                            next_new += 1;
                            claimed.insert(k.clone(), row);
                            Placement::Row {
                                row,
                                key: k,
                                created: true,
                            }
                        }
                    }
                }
            }
        };
        out.push(placement);
    }
    (out, next_new - append_at)
}

/// One row's cells as a single range over the whole row, `null` (skip) in every column not
/// written: Sheets writes only the given cells, and the write's answer (`updatedData`) then
/// holds the whole row as stored, its key cell included, so an update needs no read-back and
/// a row that moved under the write is seen at once.
fn whole_row(
    tab: &str,
    header: &Header,
    row: usize,
    cells: &BTreeMap<String, Value>,
) -> ValueRange {
    let mut values = vec![Value::Null; header.last_column() + 1];
    for (n, v) in cells {
        if let Some(c) = header.index(n) {
            values[c] = v.clone();
        }
    }
    ValueRange {
        range: a1::cells(tab, 0, row, header.last_column(), row),
        major_dimension: Some("ROWS".into()),
        values: vec![values],
    }
}

#[async_trait::async_trait]
impl Sink for GoogleSheets {
    async fn write(
        &self,
        schema: &ObjectSchema,
        ops: &[WriteOp],
        _ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let tab = self.settings.tab.clone();
        let rules = self.rules(schema);
        let key_col_name = schema.key.clone();
        let natural_fields: Vec<String> = {
            let mut f: Vec<String> = ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Create {
                        natural_key: Some(nk),
                        ..
                    } if nk.field != key_col_name => Some(nk.field.clone()),
                    _ => None,
                })
                .collect();
            f.sort();
            f.dedup();
            f
        };
        let creates = ops
            .iter()
            .filter(|o| matches!(o, WriteOp::Create { .. }))
            .count();
        // The basis is what the plan is made on: the last known header and layout. Each round
        // reads the header, the key column and the append area fresh; the write goes out only
        // when that read places every op where the basis did.
        let mut basis: Option<(Header, Layout)> = {
            let st = self.state.lock().await;
            st.header.clone().zip(st.layout.clone())
        };
        let mut grid_refreshed = false;
        for _round in 0..MAX_PLAN_ROUNDS {
            let (guess_header, guess_layout) = match &basis {
                Some((h, l)) => (h.clone(), Some(l.clone())),
                None => {
                    let vr = self.client.values_get(&a1::row(&tab, 1)).await?;
                    let h = Header::parse(&tab, vr.values.first().map_or(&[][..], Vec::as_slice))?;
                    (h, None)
                }
            };
            let key_idx = guess_header
                .index(&key_col_name)
                .ok_or_else(|| rules.missing(&key_col_name, &guess_header))?;
            let append_at = guess_layout.as_ref().map_or(2, |l| l.last_row + 1);
            if creates > 0 {
                self.ensure_rows(append_at + creates - 1).await?;
            }
            let mut ranges = vec![a1::row(&tab, 1), a1::column(&tab, key_idx)];
            for f in &natural_fields {
                let i = guess_header
                    .index(f)
                    .ok_or_else(|| rules.missing(f, &guess_header))?;
                ranges.push(a1::column(&tab, i));
            }
            if creates > 0 {
                ranges.push(a1::cells(
                    &tab,
                    0,
                    append_at,
                    guess_header.last_column(),
                    append_at + creates - 1,
                ));
            }
            let got = match self.client.values_batch_get(&ranges).await {
                Ok(got) => got,
                // The grid shrank since it was last seen (rows deleted by hand): see it
                // again, grow it and plan again.
                Err(SheetsError::Api {
                    status: 400,
                    message,
                    ..
                }) if message.contains("exceeds grid limits") && !grid_refreshed => {
                    tracing::debug!(%message, "the grid is smaller than last seen; reading it again");
                    grid_refreshed = true;
                    self.tab_info(true).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let header = Header::parse(&tab, got[0].values.first().map_or(&[][..], Vec::as_slice))?;
            for f in &schema.fields {
                if header.index(&f.name).is_none() {
                    return Err(rules.missing(&f.name, &header).into());
                }
            }
            let mut fresh = rules.parse_key_column(&got[1].values)?;
            let mut natural_rows: HashMap<String, HashMap<String, usize>> = HashMap::new();
            natural_rows.insert(
                key_col_name.clone(),
                fresh.rows.iter().map(|(k, r)| (k.clone(), *r)).collect(),
            );
            for (i, f) in natural_fields.iter().enumerate() {
                let mut m = HashMap::new();
                for (r, row) in got[2 + i].values.iter().enumerate().skip(1) {
                    if let Some(v) = row.first().and_then(value::key_text) {
                        m.entry(v).or_insert(r + 1);
                    }
                }
                natural_rows.insert(f.clone(), m);
            }
            // Anything in the append area (a row typed without a key) pushes new rows down.
            let area_used = if creates > 0 {
                got.last().and_then(|v| {
                    v.values
                        .iter()
                        .rposition(|row| !row.iter().all(value::is_empty))
                })
            } else {
                None
            };
            if let Some(i) = area_used {
                fresh.last_row = fresh.last_row.max(append_at + i);
            }
            let prepared: Vec<Prepared> = ops
                .iter()
                .map(|op| self.prepare(schema, op, &header))
                .collect();
            let plan = place(&prepared, &fresh, &natural_rows, fresh.last_row + 1);
            let stable = header == guess_header
                && fresh.last_row + 1 == append_at
                && guess_layout
                    .as_ref()
                    .is_some_and(|l| place(&prepared, l, &natural_rows, append_at).0 == plan.0);
            if !stable {
                tracing::debug!(tab = %tab, "the tab changed since it was read; planning again on a fresh read");
                basis = Some((header, fresh));
                continue;
            }
            return self.apply(schema, &header, prepared, plan.0, fresh).await;
        }
        Err(ConnectorError::unavailable(
            KIND,
            format!(
                "tab {tab:?} kept changing between reads ({MAX_PLAN_ROUNDS} attempts); nothing was written; run again when edits settle"
            ),
        ))
    }
}

impl GoogleSheets {
    /// Grows the grid so row `last` exists (`appendDimension` adds empty rows only, never
    /// shrinking what someone else grew).
    ///
    /// The grid grows geometrically (by its own size, at most [`GROW_ROWS_MAX`] rows a step), so
    /// a first load of N rows grows it O(log N) times rather than once per batch; the blank
    /// rows left at the end are skipped by every read. A spreadsheet's 10 000 000-cell cap can
    /// refuse that headroom when the rows needed would fit: then it grows by exactly those.
    /// The row count is the one last seen: a grid someone shrank since makes the write's fresh
    /// read fail with "exceeds grid limits", which reads the tab's size again.
    async fn ensure_rows(&self, last: usize) -> Result<(), ConnectorError> {
        let tab = self.tab_info(false).await?;
        let last = last as u64;
        if last <= tab.row_count {
            return Ok(());
        }
        let need = last - tab.row_count;
        let add = need.max(tab.row_count.min(GROW_ROWS_MAX));
        let added = match self.client.append_rows(tab.sheet_id, add).await {
            Ok(()) => add,
            Err(SheetsError::Api {
                status: 400,
                message,
                ..
            }) if add > need => {
                tracing::debug!(%message, "growing the grid with headroom was refused; growing by the rows needed");
                self.client.append_rows(tab.sheet_id, need).await?;
                need
            }
            Err(e) => return Err(e.into()),
        };
        let mut st = self.state.lock().await;
        if let Some(t) = &mut st.tab {
            t.row_count += added;
        }
        Ok(())
    }

    async fn apply(
        &self,
        schema: &ObjectSchema,
        header: &Header,
        prepared: Vec<Prepared>,
        placements: Vec<Placement>,
        mut layout: Layout,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let tab = &self.settings.tab;
        let width = header.last_column();
        let mut per_op: Vec<Vec<ValueRange>> = Vec::with_capacity(prepared.len());
        let mut outcomes: Vec<Option<WriteOutcome>> = Vec::with_capacity(prepared.len());
        for (p, pl) in prepared.into_iter().zip(placements.iter()) {
            let (ranges, outcome) = match (p, pl) {
                (Prepared::Done(o), _) => (Vec::new(), Some(o)),
                (Prepared::Put { key, create, .. }, Placement::NotFound) => (
                    Vec::new(),
                    Some(if create {
                        WriteOutcome::Failed(RecordError::invalid(
                            "no row found for the natural key",
                            None,
                        ))
                    } else {
                        WriteOutcome::NotFound {
                            key: RecordKey(key.unwrap_or_default()),
                        }
                    }),
                ),
                (Prepared::Clear { key }, Placement::NotFound) => (
                    Vec::new(),
                    Some(WriteOutcome::NotFound {
                        key: RecordKey(key),
                    }),
                ),
                (_, Placement::Duplicate(row)) => (
                    Vec::new(),
                    Some(WriteOutcome::Failed(RecordError::invalid(
                        format!(
                            "key already on row {row} of tab {tab:?}; a second row with the same {} is refused",
                            schema.key
                        ),
                        Some(&schema.key),
                    ))),
                ),
                // New and updated rows alike: absent cells are left as they are (null = skip).
                (Prepared::Put { cells, .. }, Placement::Row { row, .. }) => {
                    (vec![whole_row(tab, header, *row, &cells)], None)
                }
                (Prepared::Clear { .. }, Placement::Row { row, .. }) => (
                    vec![ValueRange {
                        range: a1::cells(tab, 0, *row, width, *row),
                        major_dimension: Some("ROWS".into()),
                        values: vec![vec![Value::String(String::new()); width + 1]],
                    }],
                    None,
                ),
            };
            per_op.push(ranges);
            outcomes.push(outcome);
        }
        // Sent in requests of at most MAX_REQUEST_BYTES, an op's ranges never split.
        let mut updated: Vec<Vec<ValueRange>> = vec![Vec::new(); per_op.len()];
        let chunks = request_chunks(&per_op, MAX_REQUEST_BYTES);
        for (ci, chunk) in chunks.iter().enumerate() {
            let data: Vec<ValueRange> = chunk.iter().flat_map(|i| per_op[*i].clone()).collect();
            match self.client.values_batch_update(&data).await {
                Ok(resp) => spread_updated(chunk, &per_op, resp.responses, &mut updated),
                Err(SheetsError::Api {
                    status: 400,
                    message,
                    ..
                }) if chunk.len() > 1 => {
                    // Sheets applies a request atomically: find the record it refuses by
                    // sending each one alone.
                    tracing::debug!(%message, "batchUpdate refused; writing records one by one");
                    for &i in chunk {
                        match self.client.values_batch_update(&per_op[i]).await {
                            Ok(resp) => spread_updated(&[i], &per_op, resp.responses, &mut updated),
                            Err(SheetsError::Api {
                                status: 400,
                                message,
                                ..
                            }) => {
                                outcomes[i] =
                                    Some(WriteOutcome::Failed(RecordError::invalid(message, None)));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(SheetsError::Api {
                    status: 400,
                    message,
                    ..
                }) => {
                    outcomes[chunk[0]] =
                        Some(WriteOutcome::Failed(RecordError::invalid(message, None)));
                }
                // Nothing of this batch was written yet: the whole call failed.
                Err(e) if ci == 0 => return Err(e.into()),
                Err(e) => {
                    // Earlier requests were applied: report them, and the rest as failed
                    // (pending, written by the next run).
                    let message = e.to_string();
                    for c in &chunks[ci..] {
                        for &i in c {
                            outcomes[i] = Some(WriteOutcome::Failed(RecordError::transient(
                                format!("not written: {message}"),
                            )));
                        }
                    }
                    break;
                }
            }
        }
        let rules = self.rules(schema);
        let types = self.types();
        let mut st = self.state.lock().await;
        let mut result = Vec::with_capacity(outcomes.len());
        for (i, (o, pl)) in outcomes.into_iter().zip(placements).enumerate() {
            match (o, pl) {
                (Some(o), _) => result.push(o),
                (None, Placement::Row { row, key, created }) => {
                    let cleared = per_op[i].len() == 1
                        && per_op[i][0]
                            .values
                            .first()
                            .is_some_and(|r| r.iter().all(|c| c == &Value::String(String::new())));
                    if cleared && !created {
                        layout.rows.remove(&key);
                        if let Some(index) = &mut st.index {
                            index.remove(&key);
                        }
                        result.push(WriteOutcome::Applied {
                            key: RecordKey(key),
                            created,
                            stored: None,
                        });
                        continue;
                    }
                    // The row as Sheets answered it after the write is the record as stored,
                    // so the engine needs no read-back call.
                    // An update that rewrites the key cell itself is not checked against the
                    // old key (the engine reads it back).
                    let rekeyed = header.index(&schema.key).is_some_and(|k| {
                        per_op[i]
                            .first()
                            .and_then(|vr| vr.values.first())
                            .and_then(|r| r.get(k))
                            .and_then(value::key_text)
                            .is_some_and(|written| written != key)
                    });
                    let stored = updated[i]
                        .first()
                        .filter(|_| !rekeyed)
                        .and_then(|vr| stored_row(&rules, header, vr));
                    if let Some(other) = stored.as_ref().filter(|r| r.key.as_str() != key) {
                        // Rows moved between the fresh read and this write (the race Sheets
                        // cannot close): the cells went to another record's row. Say so now;
                        // the next run plans on a fresh read.
                        layout.rows.remove(&key);
                        if let Some(index) = &mut st.index {
                            index.remove(&key);
                        }
                        result.push(WriteOutcome::Failed(RecordError::transient(format!(
                            "row {row} of tab {tab:?} held {} {:?} when written, not {key:?}: rows were sorted or inserted during the write, so its cells went to that row; check that row, the record is retried next run",
                            schema.key,
                            other.key.as_str()
                        ))));
                        continue;
                    }
                    layout.rows.insert(key.clone(), row);
                    layout.last_row = layout.last_row.max(row);
                    if let Some(index) = &mut st.index {
                        match &stored {
                            Some(r) => {
                                index.insert(key.clone(), r.clone());
                            }
                            None => patch_index(index, &rules, &types, header, &key, &per_op[i]),
                        }
                    }
                    result.push(WriteOutcome::Applied {
                        key: RecordKey(key),
                        created,
                        stored,
                    });
                }
                (None, _) => {
                    result.push(WriteOutcome::Failed(RecordError::transient("no placement")))
                }
            }
        }
        st.layout = Some(layout);
        st.header = Some(header.clone());
        Ok(result)
    }
}

/// Groups the ops that have ranges into requests whose bodies stay under `max_bytes` (an op
/// bigger than that alone goes in a request of its own).
fn request_chunks(per_op: &[Vec<ValueRange>], max_bytes: usize) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for (i, ranges) in per_op.iter().enumerate() {
        if ranges.is_empty() {
            continue;
        }
        let bytes = SheetsClient::payload_bytes(ranges);
        match chunks.last_mut() {
            Some(c) if size + bytes <= max_bytes => {
                c.push(i);
                size += bytes;
            }
            _ => {
                chunks.push(vec![i]);
                size = bytes;
            }
        }
    }
    chunks
}

/// Hands each op of a request the `updatedData` of its own ranges (answers come in the order
/// the ranges were sent).
fn spread_updated(
    ops: &[usize],
    per_op: &[Vec<ValueRange>],
    responses: Vec<UpdateValuesResponse>,
    updated: &mut [Vec<ValueRange>],
) {
    let mut it = responses.into_iter();
    for &i in ops {
        for _ in 0..per_op[i].len() {
            if let Some(data) = it.next().and_then(|r| r.updated_data) {
                updated[i].push(data);
            }
        }
    }
}

/// A whole row as Sheets answered it after the write, parsed like a read of that row.
fn stored_row(rules: &RowRules, header: &Header, data: &ValueRange) -> Option<Record> {
    let header_row: Vec<Value> = header
        .columns
        .iter()
        .map(|c| Value::String(c.clone().unwrap_or_default()))
        .collect();
    let row = data.values.first()?.clone();
    rules
        .parse_table(&[header_row, row])
        .ok()?
        .records
        .into_iter()
        .next()
}

/// Applies the cells written to one row to the lookup index.
fn patch_index(
    index: &mut HashMap<String, Record>,
    rules: &RowRules,
    types: &BTreeMap<String, ColumnType>,
    header: &Header,
    key: &str,
    ranges: &[ValueRange],
) {
    let mut rec = index.remove(key).unwrap_or_else(|| Record {
        key: RecordKey(key.to_owned()),
        fields: BTreeMap::new(),
        updated_at: None,
        deleted: false,
        version: None,
    });
    for vr in ranges {
        let Some(first_col) = a1::parse_range(&vr.range).ok().and_then(|p| p.first_col) else {
            continue;
        };
        for (j, cell) in vr.values.first().into_iter().flatten().enumerate() {
            let Some(name) = header.columns.get(first_col + j).and_then(Option::as_deref) else {
                continue;
            };
            if cell.is_null() {
                continue;
            }
            let ty = types.get(name).copied().unwrap_or_default();
            rec.fields
                .insert(name.to_owned(), value::cell_to_value(cell, ty));
            if rules.updated_at.as_deref() == Some(name) {
                rec.updated_at = value::cell_to_time(cell);
            }
        }
    }
    if let Some((col, deleted_value)) = &rules.deleted {
        rec.deleted = matches!(rec.fields.get(col), Some(Value::String(s)) if s.trim().eq_ignore_ascii_case(deleted_value));
    }
    // A write to the key column moves the record to its new key.
    let new_key = rec
        .fields
        .get(&rules.key)
        .and_then(value::key_text)
        .unwrap_or_else(|| key.to_owned());
    rec.key = RecordKey(new_key.clone());
    index.insert(new_key, rec);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_merge_near_rows() {
        assert_eq!(
            row_spans(vec![5, 3, 4, 40, 9], 2),
            vec![(3, 5), (9, 9), (40, 40)]
        );
        assert_eq!(row_spans(vec![5, 7], 1), vec![(5, 7)]);
    }

    #[test]
    fn update_cells_become_one_whole_row_range_skipping_the_rest() {
        let header = Header {
            columns: vec![
                Some("id".into()),
                Some("a".into()),
                None,
                Some("b".into()),
                Some("c".into()),
            ],
        };
        let mut cells = BTreeMap::new();
        cells.insert("a".to_owned(), Value::from(1));
        cells.insert("c".to_owned(), Value::from(3));
        let r = whole_row("T", &header, 7, &cells);
        assert_eq!(r.range, "'T'!A7:E7");
        assert_eq!(
            r.values,
            vec![vec![
                Value::Null,
                Value::from(1),
                Value::Null,
                Value::Null,
                Value::from(3)
            ]]
        );
    }
}
