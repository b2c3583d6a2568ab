//! The CSV connector: a spreadsheet exported as a CSV file, read whole and rewritten
//! atomically.
//!
//! * Settings: `path` (relative to the config file; the file must exist and start with a
//!   header row), `object` (a label, default the file name), `key_column` (default `id` when
//!   the header has one, else the first column), `updated_at_column`, `deleted_column`,
//!   `origin_column`, `delimiter` (default `,`), `formula_guard` (`quote`, the default, or
//!   `off`; see [`crate::formula_guard`]).
//! * Every value is text; empty cells read as `null`. A UTF-8 byte-order mark and CRLF line
//!   ends are kept as found.
//! * Identity: the key column. Rows with an empty key are skipped with a warning (they cannot
//!   be linked); a key that appears twice fails the read, because guessing which row is meant
//!   could propagate a wrong update or delete. A create without a key value gets the create
//!   token as its key.
//! * Modified time: the `updated_at_column` when configured (syncctl's writes set it);
//!   otherwise every row reports the file's modification time, which is what the `latest`
//!   conflict strategy then compares.
//! * Writes re-read the file, apply the batch, write a temporary file next to it, flush it to
//!   disk and rename it over the original, so a reader (or a crash) sees the old file or the
//!   new one, never half of one. A symlink is written through; a read-only file, a file that is
//!   not a regular file or one we cannot open for writing is never replaced: the object then
//!   reports no write capability and a direction that writes to it is a config error before
//!   the run writes anything; a file of another owner or with several hard links is rewritten
//!   in place so that it keeps its owner, mode and links (see `target_file`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use syncctl_core::{
    BuildContext, BuildFuture, Capabilities, Connector, ConnectorError, ConnectorFactory,
    FieldSchema, ObjectSchema, Page, PageToken, ReadRequest, Record, RecordError, RecordKey, Sink,
    Source, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_validate::coerce::{canonical_text, format_timestamp, parse_timestamp};

use syncctl_core::parse_settings;

use crate::formula_guard::{FormulaGuard, guard, unguard};

const KIND: &str = "csv";

/// Registry entry.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: KIND,
    summary: "CSV file with a header row (path, key_column, updated_at_column)",
    build,
};

fn build(ctx: BuildContext, settings: Value) -> BuildFuture {
    Box::pin(async move {
        let s: CsvSettings = parse_settings(KIND, settings)?;
        let c = CsvConnector::new(&ctx, s)?;
        Ok(Box::new(c) as Box<dyn Connector>)
    })
}

/// `{connector: csv, path, object, key_column, updated_at_column, …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSettings {
    /// The file (relative to the config file's directory).
    pub path: String,
    /// A label for the object; defaults to the file name.
    #[serde(default)]
    pub object: Option<String>,
    /// The key column; default `id` if present, else the first column.
    #[serde(default)]
    pub key_column: Option<String>,
    /// A column holding each row's modified time.
    #[serde(default)]
    pub updated_at_column: Option<String>,
    /// A soft-delete column (`true` marks a deleted row).
    #[serde(default)]
    pub deleted_column: Option<String>,
    /// A column set to `syncctl:<sync name>` on rows syncctl writes.
    #[serde(default)]
    pub origin_column: Option<String>,
    /// The field separator, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Spreadsheet formula guard: `quote` (default) writes text starting with `=`, `+`, `-`,
    /// `@`, tab or CR behind a `'` and strips it on read; `off` writes values verbatim.
    #[serde(default)]
    pub formula_guard: FormulaGuard,
}

/// A CSV file as a sync source and sink.
pub struct CsvConnector {
    path: PathBuf,
    object: String,
    settings: CsvSettings,
    delimiter: u8,
    /// What [`Connector::warnings`] reports (the file is read many times per run).
    warnings: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The parsed file.
struct Sheet {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    bom: bool,
    crlf: bool,
    modified: Option<DateTime<Utc>>,
}

impl CsvConnector {
    /// A connector for the settings; the file is read on first use.
    ///
    /// # Errors
    /// A bad delimiter.
    pub fn new(ctx: &BuildContext, settings: CsvSettings) -> Result<Self, ConnectorError> {
        let path = ctx.base_dir.join(&settings.path);
        let delimiter = match settings.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some("\\t" | "tab") => b'\t',
            Some(d) => {
                return Err(ConnectorError::config(
                    KIND,
                    format!("delimiter must be one character, got {d:?}"),
                ));
            }
        };
        let object = settings.object.clone().unwrap_or_else(|| {
            Path::new(&settings.path).file_name().map_or_else(
                || settings.path.clone(),
                |n| n.to_string_lossy().into_owned(),
            )
        });
        Ok(Self {
            path,
            object,
            settings,
            delimiter,
            warnings: std::sync::Mutex::default(),
        })
    }

    fn load(&self) -> Result<Sheet, ConnectorError> {
        let bytes = fs::read(&self.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConnectorError::config(
                    KIND,
                    format!(
                        "{} does not exist (the file must exist with a header row)",
                        self.path.display()
                    ),
                )
            } else {
                ConnectorError::unavailable(KIND, format!("{}: {e}", self.path.display()))
            }
        })?;
        let modified = fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        let (bom, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => (true, rest),
            None => (false, bytes.as_slice()),
        };
        let crlf = body
            .iter()
            .position(|b| *b == b'\n')
            .is_some_and(|i| i > 0 && body[i - 1] == b'\r');
        // A malformed file is refused whole, before anything is read from it: the csv crate
        // alone would let an unterminated quote swallow the following rows into one cell.
        check_structure(body, self.delimiter).map_err(|m| {
            ConnectorError::config(
                KIND,
                format!(
                    "{} is not valid CSV: {m}; nothing was synced",
                    self.path.display()
                ),
            )
        })?;
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(false)
            .from_reader(body);
        let bad = |e: csv::Error| {
            let why = match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    pos: Some(pos),
                    expected_len,
                    len,
                } => format!(
                    "line {} has {len} cells but the header has {expected_len}",
                    pos.line()
                ),
                _ => e.to_string(),
            };
            ConnectorError::config(
                KIND,
                format!(
                    "{} is not valid CSV: {why}; nothing was synced",
                    self.path.display()
                ),
            )
        };
        let header: Vec<String> = rdr
            .headers()
            .map_err(bad)?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect();
        if header.is_empty() || header.iter().all(String::is_empty) {
            return Err(ConnectorError::config(
                KIND,
                format!("{} has no header row", self.path.display()),
            ));
        }
        let mut rows = Vec::new();
        let mode = self.settings.formula_guard;
        for rec in rdr.records() {
            let rec = rec.map_err(bad)?;
            let row: Vec<String> = rec.iter().map(|c| unguard(mode, c).to_owned()).collect();
            if row.iter().all(String::is_empty) {
                continue;
            }
            rows.push(row);
        }
        Ok(Sheet {
            header,
            rows,
            bom,
            crlf,
            modified,
        })
    }

    fn save(&self, sheet: &Sheet) -> Result<(), ConnectorError> {
        let io = |e: std::io::Error| {
            ConnectorError::unavailable(KIND, format!("writing {}: {e}", self.path.display()))
        };
        let mut buf = Vec::new();
        if sheet.bom {
            buf.extend_from_slice(b"\xEF\xBB\xBF");
        }
        {
            let mut w = csv::WriterBuilder::new()
                .delimiter(self.delimiter)
                .terminator(if sheet.crlf {
                    csv::Terminator::CRLF
                } else {
                    csv::Terminator::Any(b'\n')
                })
                .from_writer(&mut buf);
            let csv_err = |e: csv::Error| ConnectorError::failed(KIND, e.to_string());
            w.write_record(&sheet.header).map_err(csv_err)?;
            let mode = self.settings.formula_guard;
            for r in &sheet.rows {
                w.write_record(r.iter().map(|c| guard(mode, c).into_owned()))
                    .map_err(csv_err)?;
            }
            w.flush().map_err(io)?;
        }
        crate::target_file::write(&self.path, &buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                ConnectorError::config(
                    KIND,
                    format!("{e}; syncctl writes to this file as a sync side, so make it writable or sync one way from it"),
                )
            } else {
                io(e)
            }
        })
    }

    fn key_column(&self, header: &[String]) -> String {
        self.settings.key_column.clone().unwrap_or_else(|| {
            if header.iter().any(|h| h == "id") {
                "id".to_owned()
            } else {
                header.first().cloned().unwrap_or_default()
            }
        })
    }

    fn col(header: &[String], name: &str) -> Option<usize> {
        header.iter().position(|h| h == name)
    }

    /// Records of the sheet, keyed; fails on duplicate keys.
    fn records(&self, sheet: &Sheet, schema: &ObjectSchema) -> Result<Vec<Record>, ConnectorError> {
        let key_i = Self::col(&sheet.header, &schema.key).unwrap_or(0);
        let upd_i = schema
            .updated_at
            .as_deref()
            .and_then(|u| Self::col(&sheet.header, u));
        let del_i = schema
            .deleted
            .as_deref()
            .and_then(|d| Self::col(&sheet.header, d));
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::with_capacity(sheet.rows.len());
        let mut blank = 0usize;
        for (n, row) in sheet.rows.iter().enumerate() {
            let key = row[key_i].trim();
            if key.is_empty() {
                blank += 1;
                continue;
            }
            if let Some(first) = seen.insert(key, n) {
                return Err(ConnectorError::config(
                    KIND,
                    format!(
                        "{}: key {} is duplicated on data rows {} and {}; fix the file so each row has its own key",
                        self.path.display(),
                        schema.key,
                        first + 1,
                        n + 1
                    ),
                ));
            }
            let fields: BTreeMap<String, Value> = sheet
                .header
                .iter()
                .zip(row)
                .map(|(h, v)| {
                    let v = if v.is_empty() {
                        Value::Null
                    } else {
                        Value::String(v.clone())
                    };
                    (h.clone(), v)
                })
                .collect();
            let updated_at = match upd_i {
                Some(i) => parse_timestamp(&row[i]),
                None => sheet.modified,
            };
            let deleted = del_i.is_some_and(|i| {
                let v = row[i].trim().to_ascii_lowercase();
                !v.is_empty() && v != "false" && v != "0" && v != "no"
            });
            out.push(Record {
                key: RecordKey(key.to_owned()),
                fields,
                updated_at,
                deleted,
                version: None,
            });
        }
        if blank > 0 {
            tracing::warn!(file = %self.path.display(), rows = blank, "Skipped CSV rows with an empty key; they cannot be synced.");
            if let Ok(mut w) = self.warnings.lock() {
                w.insert(format!(
                    "{}: skipped {blank} row(s) with an empty {}; they cannot be synced until they have one",
                    self.path.display(),
                    schema.key
                ));
            }
        }
        Ok(out)
    }
}

/// Checks the quoting of a CSV body (RFC 4180): a quoted cell must be closed, and a closing
/// quote must be followed by a delimiter or the end of the line. Returns the problem with its
/// 1-based line number. Cell counts are checked by the reader (it knows the header).
fn check_structure(body: &[u8], delimiter: u8) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        CellStart,
        Unquoted,
        Quoted { from_line: usize },
        AfterClosingQuote,
    }
    let mut at = At::CellStart;
    let mut line = 1usize;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        let ends_cell = b == delimiter || b == b'\n' || b == b'\r';
        at = match at {
            At::CellStart if b == b'"' => At::Quoted { from_line: line },
            At::CellStart | At::Unquoted | At::AfterClosingQuote if ends_cell => At::CellStart,
            At::CellStart | At::Unquoted => At::Unquoted,
            At::Quoted { .. } if b == b'"' && body.get(i + 1) == Some(&b'"') => {
                i += 1;
                at
            }
            At::Quoted { .. } if b == b'"' => At::AfterClosingQuote,
            At::Quoted { .. } => at,
            At::AfterClosingQuote => {
                return Err(format!(
                    "line {line}: text after the closing quote of a cell (a quote inside a quoted cell is written \"\")"
                ));
            }
        };
        if b == b'\n' {
            line += 1;
        }
        i += 1;
    }
    match at {
        At::Quoted { from_line } => Err(format!(
            "line {from_line}: a quoted cell is never closed (unterminated quote)"
        )),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl Connector for CsvConnector {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn endpoint(&self) -> String {
        format!("csv:{}", self.path.display())
    }

    fn object(&self) -> &str {
        &self.object
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.load().map(|_| ())
    }

    async fn describe(&self) -> Result<ObjectSchema, ConnectorError> {
        let sheet = self.load()?;
        let key = self.key_column(&sheet.header);
        let mut configured = vec![("key_column", key.as_str())];
        for (name, v) in [
            ("updated_at_column", &self.settings.updated_at_column),
            ("deleted_column", &self.settings.deleted_column),
            ("origin_column", &self.settings.origin_column),
        ] {
            if let Some(c) = v {
                configured.push((name, c.as_str()));
            }
        }
        for (setting, col) in configured {
            if Self::col(&sheet.header, col).is_none() {
                return Err(ConnectorError::config(
                    KIND,
                    format!(
                        "{setting} {col:?} is not a column of {}; the header has: {}",
                        self.path.display(),
                        sheet.header.join(", ")
                    ),
                ));
            }
        }
        let mut dup = sheet.header.clone();
        dup.sort();
        if let Some(w) = dup.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "{}: column {:?} appears twice in the header",
                    self.path.display(),
                    w[0]
                ),
            ));
        }
        // A file syncctl may not replace is read-only to the sync: a direction that writes to
        // it is then refused before the run writes anything (see `target_file`).
        let read_only = crate::target_file::check_writable(&self.path);
        if let Some(why) = &read_only {
            tracing::debug!(file = %self.path.display(), %why, "CSV file is read-only to syncctl");
        }
        let writable = read_only.is_none();
        let fields = sheet
            .header
            .iter()
            .map(|h| {
                let mut f = FieldSchema::text(h.clone());
                f.unique = *h == key;
                f
            })
            .collect();
        Ok(ObjectSchema {
            object: self.object.clone(),
            key,
            updated_at: self.settings.updated_at_column.clone(),
            deleted: self.settings.deleted_column.clone(),
            origin: self.settings.origin_column.clone(),
            fields,
            capabilities: Capabilities {
                create: writable,
                update: writable,
                delete: writable,
                archive: writable && self.settings.deleted_column.is_some(),
                incremental: self.settings.updated_at_column.is_some(),
                generated_keys: false,
                conditional_update: false,
                returns_stored: true,
                versioned: false,
                reports_deletes: false,
                page_order: syncctl_core::PageOrder::Keyset,
            },
            max_batch: 5000,
        })
    }

    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn sink(&self) -> Option<&dyn Sink> {
        Some(self)
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Token {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
    k: String,
}

/// Sort position of a record in an incremental scan: unreadable times sort last.
fn cursor_ms(r: &Record) -> i64 {
    r.updated_at.map_or(i64::MAX, |t| t.timestamp_millis())
}

#[async_trait::async_trait]
impl Source for CsvConnector {
    async fn read_page(
        &self,
        schema: &ObjectSchema,
        req: &ReadRequest,
    ) -> Result<Page, ConnectorError> {
        let sheet = self.load()?;
        let mut recs = self.records(&sheet, schema)?;
        let token: Option<Token> = match &req.after {
            None => None,
            Some(PageToken(v)) => Some(
                serde_json::from_value(v.clone())
                    .map_err(|_| ConnectorError::failed(KIND, "invalid page token"))?,
            ),
        };
        let incremental = req
            .since
            .filter(|_| schema.capabilities.incremental && schema.updated_at.is_some());
        if let Some(since) = incremental {
            let since = since.timestamp_millis();
            recs.retain(|r| cursor_ms(r) >= since);
            recs.sort_by(|a, b| (cursor_ms(a), &a.key).cmp(&(cursor_ms(b), &b.key)));
            if let Some(t) = &token {
                let at = (t.t.unwrap_or(i64::MIN), t.k.as_str());
                recs.retain(|r| (cursor_ms(r), r.key.as_str()) > at);
            }
        } else {
            recs.sort_by(|a, b| a.key.cmp(&b.key));
            if let Some(t) = &token {
                recs.retain(|r| r.key.as_str() > t.k.as_str());
            }
        }
        let limit = req.limit.max(1);
        let more = recs.len() > limit;
        recs.truncate(limit);
        let next = if more {
            recs.last().map(|r| {
                PageToken(json!(Token {
                    t: incremental.map(|_| cursor_ms(r)),
                    k: r.key.0.clone(),
                }))
            })
        } else {
            None
        };
        Ok(Page {
            records: recs,
            next,
        })
    }

    async fn read_keys(
        &self,
        schema: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<Record>, ConnectorError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sheet = self.load()?;
        let wanted: std::collections::HashSet<&RecordKey> = keys.iter().collect();
        Ok(self
            .records(&sheet, schema)?
            .into_iter()
            .filter(|r| wanted.contains(&r.key))
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
                format!("{field} is not a column of {}", self.path.display()),
            ));
        }
        let wanted: std::collections::HashSet<String> =
            values.iter().filter_map(canonical_text).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let sheet = self.load()?;
        Ok(self
            .records(&sheet, schema)?
            .into_iter()
            .filter(|r| {
                r.fields
                    .get(field)
                    .and_then(canonical_text)
                    .is_some_and(|v| wanted.contains(&v))
            })
            .collect())
    }
}

impl CsvConnector {
    fn cell(v: &Value) -> String {
        canonical_text(v).unwrap_or_default()
    }

    /// Applies one op to the sheet in memory.
    fn apply(
        sheet: &mut Sheet,
        schema: &ObjectSchema,
        op: &WriteOp,
        ctx: &WriteContext,
        now: &str,
    ) -> WriteOutcome {
        let key_i = Self::col(&sheet.header, &schema.key).unwrap_or(0);
        let find =
            |sheet: &Sheet, key: &str| sheet.rows.iter().position(|r| r[key_i].trim() == key);
        let set = |sheet: &mut Sheet,
                   row: usize,
                   fields: &BTreeMap<String, Value>|
         -> Result<(), RecordError> {
            for name in fields.keys() {
                if Self::col(&sheet.header, name).is_none() {
                    return Err(RecordError::invalid(
                        format!("{name} is not a column of the file"),
                        Some(name),
                    ));
                }
            }
            for (name, v) in fields {
                if let Some(i) = Self::col(&sheet.header, name) {
                    sheet.rows[row][i] = Self::cell(v);
                }
            }
            for (col, value) in [
                (&schema.updated_at, now),
                (&schema.origin, ctx.origin.as_str()),
            ] {
                if let Some(c) = col
                    && !fields.contains_key(c)
                    && let Some(i) = Self::col(&sheet.header, c)
                {
                    sheet.rows[row][i] = value.to_owned();
                }
            }
            Ok(())
        };
        let stored = |sheet: &Sheet, row: usize| -> Record {
            let fields = sheet
                .header
                .iter()
                .zip(&sheet.rows[row])
                .map(|(h, v)| {
                    (
                        h.clone(),
                        if v.is_empty() {
                            Value::Null
                        } else {
                            Value::String(v.clone())
                        },
                    )
                })
                .collect();
            let updated_at = match schema
                .updated_at
                .as_deref()
                .and_then(|u| Self::col(&sheet.header, u))
            {
                Some(i) => parse_timestamp(&sheet.rows[row][i]),
                None => Some(Utc::now()),
            };
            Record {
                key: RecordKey(sheet.rows[row][key_i].trim().to_owned()),
                fields,
                updated_at,
                deleted: false,
                version: None,
            }
        };
        match op {
            WriteOp::Create {
                token,
                natural_key,
                fields,
            } => {
                if let Some(nk) = natural_key {
                    let Some(i) = Self::col(&sheet.header, &nk.field) else {
                        return WriteOutcome::Failed(RecordError::invalid(
                            format!("natural key {} is not a column", nk.field),
                            Some(&nk.field),
                        ));
                    };
                    let want = canonical_text(&nk.value);
                    let hits: Vec<usize> = sheet
                        .rows
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| {
                            want.is_some() && canonical_text(&Value::String(r[i].clone())) == want
                        })
                        .map(|(n, _)| n)
                        .collect();
                    if hits.len() > 1 {
                        return WriteOutcome::Failed(RecordError::invalid(
                            format!("natural key {} matches several rows", nk.field),
                            Some(&nk.field),
                        ));
                    }
                    if let Some(&row) = hits.first() {
                        return match set(sheet, row, fields) {
                            Ok(()) => WriteOutcome::Applied {
                                key: RecordKey(sheet.rows[row][key_i].trim().to_owned()),
                                created: false,
                                stored: Some(stored(sheet, row)),
                            },
                            Err(e) => WriteOutcome::Failed(e),
                        };
                    }
                }
                let key = fields
                    .get(&schema.key)
                    .and_then(canonical_text)
                    .unwrap_or_else(|| token.clone());
                if find(sheet, key.trim()).is_some() {
                    return WriteOutcome::Failed(RecordError::invalid(
                        format!("a row with this {} already exists", schema.key),
                        Some(&schema.key),
                    ));
                }
                sheet.rows.push(vec![String::new(); sheet.header.len()]);
                let row = sheet.rows.len() - 1;
                sheet.rows[row][key_i] = key;
                match set(sheet, row, fields) {
                    Ok(()) => WriteOutcome::Applied {
                        key: RecordKey(sheet.rows[row][key_i].trim().to_owned()),
                        created: true,
                        stored: Some(stored(sheet, row)),
                    },
                    Err(e) => {
                        sheet.rows.pop();
                        WriteOutcome::Failed(e)
                    }
                }
            }
            WriteOp::Update { key, fields, .. } => match find(sheet, key.as_str()) {
                None => WriteOutcome::NotFound { key: key.clone() },
                Some(row) => {
                    let before = sheet.rows[row].clone();
                    match set(sheet, row, fields) {
                        Ok(()) => WriteOutcome::Applied {
                            key: key.clone(),
                            created: false,
                            stored: Some(stored(sheet, row)),
                        },
                        Err(e) => {
                            sheet.rows[row] = before;
                            WriteOutcome::Failed(e)
                        }
                    }
                }
            },
            WriteOp::Delete { key } => match find(sheet, key.as_str()) {
                None => WriteOutcome::NotFound { key: key.clone() },
                Some(row) => {
                    sheet.rows.remove(row);
                    WriteOutcome::Applied {
                        key: key.clone(),
                        created: false,
                        stored: None,
                    }
                }
            },
            WriteOp::Archive { key } => {
                let Some(d) = &schema.deleted else {
                    return WriteOutcome::Failed(RecordError::invalid(
                        "archive needs deleted_column",
                        None,
                    ));
                };
                match find(sheet, key.as_str()) {
                    None => WriteOutcome::NotFound { key: key.clone() },
                    Some(row) => {
                        let fields = BTreeMap::from([(d.clone(), Value::String("true".into()))]);
                        match set(sheet, row, &fields) {
                            Ok(()) => WriteOutcome::Applied {
                                key: key.clone(),
                                created: false,
                                stored: Some(stored(sheet, row)),
                            },
                            Err(e) => WriteOutcome::Failed(e),
                        }
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Sink for CsvConnector {
    async fn write(
        &self,
        schema: &ObjectSchema,
        ops: &[WriteOp],
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let mut sheet = self.load()?;
        let now = format_timestamp(Utc::now());
        let out: Vec<WriteOutcome> = ops
            .iter()
            .map(|op| Self::apply(&mut sheet, schema, op, ctx, &now))
            .collect();
        if out
            .iter()
            .any(|o| matches!(o, WriteOutcome::Applied { .. }))
        {
            self.save(&sheet)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use syncctl_testkit::conformance::{Fixture, Person, run_all};

    struct CsvFixture {
        dir: tempfile::TempDir,
        next_id: AtomicU64,
    }

    #[async_trait::async_trait]
    impl Fixture for CsvFixture {
        async fn fresh(&self) -> Box<dyn Connector> {
            fs::write(
                self.dir.path().join("people.csv"),
                "id,email,name,age,updated_at\n",
            )
            .unwrap();
            (FACTORY.build)(
                BuildContext::new(self.dir.path().to_path_buf()),
                json!({"connector": "csv", "path": "people.csv", "updated_at_column": "updated_at"}),
            )
            .await
            .unwrap()
        }

        async fn insert(&self, rows: &[Person]) -> Vec<RecordKey> {
            let path = self.dir.path().join("people.csv");
            let mut text = fs::read_to_string(&path).unwrap();
            let mut keys = Vec::new();
            for p in rows {
                let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
                text.push_str(&format!(
                    "{id},{},{},{},{}\n",
                    p.email,
                    p.name.clone().unwrap_or_default(),
                    p.age.map(|a| a.to_string()).unwrap_or_default(),
                    format_timestamp(p.updated_at)
                ));
                keys.push(RecordKey(id.to_string()));
            }
            fs::write(&path, text).unwrap();
            keys
        }

        fn refused_age(&self) -> Option<Value> {
            None
        }

        fn enforces_unique_email(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn csv_passes_the_conformance_suite() {
        let f = CsvFixture {
            dir: tempfile::tempdir().unwrap(),
            next_id: AtomicU64::new(0),
        };
        if let Err(failures) = run_all(&f).await {
            panic!("{}", failures.join("\n"));
        }
    }

    async fn connector(dir: &Path, settings: Value) -> Box<dyn Connector> {
        (FACTORY.build)(BuildContext::new(dir.to_path_buf()), settings)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn defaults_bom_crlf_and_quoting_survive_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        fs::write(&path, "\u{feff}email,name\r\na@x.io,\"Smith, Ann\"\r\n").unwrap();
        let c = connector(dir.path(), json!({"connector": "csv", "path": "c.csv"})).await;
        let s = c.describe().await.unwrap();
        assert_eq!(
            s.key, "email",
            "first column is the key without an id column"
        );
        assert_eq!(s.object, "c.csv");
        let out = c
            .sink()
            .unwrap()
            .write(
                &s,
                &[WriteOp::Update {
                    key: RecordKey::from("a@x.io"),
                    fields: BTreeMap::from([("name".to_owned(), json!("Ann \"Q\" Smith"))]),
                    expected_updated_at: None,
                    expected_version: None,
                }],
                &WriteContext::new("t", "r"),
            )
            .await
            .unwrap();
        assert!(matches!(out[0], WriteOutcome::Applied { .. }));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "\u{feff}email,name\r\na@x.io,\"Ann \"\"Q\"\" Smith\"\r\n"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[tokio::test]
    async fn duplicate_keys_fail_the_read_and_missing_files_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("d.csv"), "id,v\n1,a\n2,b\n1,c\n").unwrap();
        let c = connector(dir.path(), json!({"connector": "csv", "path": "d.csv"})).await;
        let s = c.describe().await.unwrap();
        let e = c
            .source()
            .unwrap()
            .read_page(&s, &ReadRequest::full(10))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("duplicated on data rows 1 and 3"),
            "{e}"
        );
        let c = connector(dir.path(), json!({"connector": "csv", "path": "nope.csv"})).await;
        let e = c.describe().await.unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let c = connector(
            dir.path(),
            json!({"connector": "csv", "path": "d.csv", "updated_at_column": "modified"}),
        )
        .await;
        let e = c.describe().await.unwrap_err();
        assert!(
            e.to_string().contains("\"modified\" is not a column"),
            "{e}"
        );
    }

    #[test]
    fn quoting_is_checked_with_line_numbers() {
        assert!(check_structure(b"a,b\n1,\"x \"\"q\"\"\ny\"\n", b',').is_ok());
        assert!(check_structure(b"a,b\r\n1,2\r\n", b',').is_ok());
        assert!(check_structure(b"a,b\n1,5\" screen\n", b',').is_ok());
        let e = check_structure(b"a,b\n1,2\n3,\"Bob\n4,Ann\n", b',').unwrap_err();
        assert!(
            e.starts_with("line 3:") && e.contains("never closed"),
            "{e}"
        );
        let e = check_structure(b"a,b\n1,\"Bob\nx\"y,2\n", b',').unwrap_err();
        assert!(
            e.starts_with("line 3:") && e.contains("after the closing quote"),
            "{e}"
        );
        assert!(check_structure(b"a;b\n\"1\";2\n", b';').is_ok());
    }

    #[tokio::test]
    async fn malformed_files_are_refused_whole_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            (
                "id,v\n1,a\n2,\"b\n3,c\n",
                "line 3: a quoted cell is never closed",
            ),
            (
                "id,v\n1,a\n2,b,extra\n",
                "line 3 has 3 cells but the header has 2",
            ),
            (
                "id,v,w\n1,a,x\n2,b\n",
                "line 3 has 2 cells but the header has 3",
            ),
        ] {
            fs::write(dir.path().join("m.csv"), text).unwrap();
            let c = connector(dir.path(), json!({"connector": "csv", "path": "m.csv"})).await;
            let s = c.describe().await;
            let e = match s {
                Err(e) => e,
                Ok(s) => c
                    .source()
                    .unwrap()
                    .read_page(&s, &ReadRequest::full(10))
                    .await
                    .unwrap_err(),
            };
            assert_eq!(
                syncctl_core::Classified::class(&e),
                syncctl_core::ErrorClass::Config,
                "{e}"
            );
            assert!(e.to_string().contains(want), "{text:?}: {e}");
        }
    }

    /// Cases per property: `PROPTEST_CASES` (scripts/fuzz.sh runs many), else a CI-sized default.
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(128)
    }

    fn cell() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof!["[a-z ,;\"\r\n\t'=+@-]{0,12}", any::<String>(),]
    }

    fn sheet_connector(dir: &Path, delimiter: &str) -> CsvConnector {
        let settings: CsvSettings =
            serde_json::from_value(json!({"path": "f.csv", "delimiter": delimiter})).unwrap();
        CsvConnector::new(&BuildContext::new(dir.to_path_buf()), settings).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases()))]

        /// Whatever the cells hold, the writer's file reads back cell for cell, and the
        /// structure check accepts it.
        #[test]
        fn fuzz_written_files_read_back_exactly(
            width in 1usize..4,
            rows in proptest::collection::vec(proptest::collection::vec(cell(), 3), 0..6),
            crlf: bool,
            bom: bool,
            delimiter in proptest::sample::select(vec![",", ";", "\\t"]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let c = sheet_connector(dir.path(), delimiter);
            let header: Vec<String> = (0..width).map(|i| format!("col{i}")).collect();
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| r.into_iter().take(width).collect::<Vec<_>>())
                // A row of empty cells is a blank line: skipped on read, by design.
                .filter(|r: &Vec<String>| !r.iter().all(String::is_empty))
                .collect();
            let sheet = Sheet { header: header.clone(), rows: rows.clone(), bom, crlf, modified: None };
            // The connector rewrites a file that exists; it never creates one.
            fs::write(dir.path().join("f.csv"), "").unwrap();
            c.save(&sheet).unwrap();
            let bytes = fs::read(dir.path().join("f.csv")).unwrap();
            let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
            proptest::prop_assert!(check_structure(body, c.delimiter).is_ok());
            let back = c.load().unwrap();
            proptest::prop_assert_eq!(back.header, header);
            proptest::prop_assert_eq!(back.rows, rows);
            proptest::prop_assert_eq!(back.bom, bom);
        }

        /// Arbitrary bytes never panic the reader: a file loads or is refused as a config error.
        #[test]
        fn fuzz_arbitrary_files_load_or_are_refused(bytes in proptest::collection::vec(
            proptest::sample::select(b"ab,;\"\r\n \xEF\xBB\xBF\xFF".to_vec()), 0..64)) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("f.csv"), &bytes).unwrap();
            let c = sheet_connector(dir.path(), ",");
            if let Err(e) = c.load() {
                proptest::prop_assert_eq!(syncctl_core::Classified::class(&e), syncctl_core::ErrorClass::Config);
            }
        }
    }
}
