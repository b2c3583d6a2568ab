//! An in-memory connector for engine tests: a table of text fields with a generated integer
//! key, a logical clock for `updated_at`, and fault injection per record or per batch.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use syncctl_core::{
    Capabilities, Connector, ConnectorError, FieldSchema, ObjectSchema, Page, PageToken,
    ReadRequest, Record, RecordError, RecordKey, Sink, Source, WriteContext, WriteOp, WriteOutcome,
};
use syncctl_validate::canonical_text;

/// A shared logical clock: every mutation on any table ticks it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock(Arc<AtomicI64>);

impl Clock {
    pub(crate) fn tick(&self) -> DateTime<Utc> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Utc.timestamp_opt(1_700_000_000 + n, 0)
            .single()
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) rows: BTreeMap<i64, (BTreeMap<String, Value>, DateTime<Utc>)>,
    next: i64,
    /// Writes touching a record whose `email` is in this set fail (data refused).
    pub(crate) refuse: HashSet<String>,
    /// Every write batch fails as a whole while set.
    pub(crate) down: bool,
    /// A concurrent editor: these edits land the moment the next write batches arrive (one
    /// entry per batch), before the batch is applied.
    pub(crate) edits_before_write: std::collections::VecDeque<Vec<(i64, String, String)>>,
    pub(crate) writes: usize,
}

/// The in-memory connector.
#[derive(Debug, Clone)]
pub(crate) struct Memory {
    pub(crate) name: &'static str,
    pub(crate) fields: Vec<&'static str>,
    pub(crate) table: Arc<Mutex<Table>>,
    pub(crate) clock: Clock,
    /// Records carry a version (their modified time) and updates are conditional on it.
    pub(crate) versioned: Arc<std::sync::atomic::AtomicBool>,
}

impl Memory {
    pub(crate) fn new(name: &'static str, fields: &[&'static str], clock: &Clock) -> Self {
        Self {
            name,
            fields: fields.to_vec(),
            table: Arc::new(Mutex::new(Table::default())),
            clock: clock.clone(),
            versioned: Arc::default(),
        }
    }

    /// Inserts or edits a row as a user would (ticks the clock).
    pub(crate) fn put(&self, id: Option<i64>, vals: &[(&str, &str)]) -> i64 {
        let at = self.clock.tick();
        let mut t = self.table.lock().unwrap();
        let id = id.unwrap_or_else(|| {
            t.next += 1;
            t.next
        });
        let row = t.rows.entry(id).or_insert_with(|| (BTreeMap::new(), at));
        for (k, v) in vals {
            row.0.insert((*k).to_owned(), json!(v));
        }
        row.1 = at;
        id
    }

    pub(crate) fn remove(&self, id: i64) {
        self.table.lock().unwrap().rows.remove(&id);
    }

    /// `email → fields` of every row (text values).
    pub(crate) fn by_email(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.table
            .lock()
            .unwrap()
            .rows
            .values()
            .map(|(f, _)| {
                let email = f.get("email").and_then(canonical_text).unwrap_or_default();
                let vals = f
                    .iter()
                    .map(|(k, v)| (k.clone(), canonical_text(v).unwrap_or_default()))
                    .collect();
                (email, vals)
            })
            .collect()
    }

    pub(crate) fn id_of(&self, email: &str) -> Option<i64> {
        self.table
            .lock()
            .unwrap()
            .rows
            .iter()
            .find(|(_, (f, _))| f.get("email").and_then(canonical_text).as_deref() == Some(email))
            .map(|(id, _)| *id)
    }

    fn record(&self, id: i64, f: &BTreeMap<String, Value>, at: DateTime<Utc>) -> Record {
        let mut fields: BTreeMap<String, Value> = self
            .fields
            .iter()
            .map(|n| ((*n).to_owned(), f.get(*n).cloned().unwrap_or(Value::Null)))
            .collect();
        fields.insert("id".into(), json!(id));
        let versioned = self.versioned.load(Ordering::SeqCst);
        Record {
            key: RecordKey(id.to_string()),
            fields,
            updated_at: Some(at),
            deleted: false,
            version: versioned.then(|| at.timestamp().to_string()),
        }
    }
}

#[async_trait::async_trait]
impl Connector for Memory {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn endpoint(&self) -> String {
        format!("memory:{}", self.name)
    }
    fn object(&self) -> &str {
        self.name
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn describe(&self) -> Result<ObjectSchema, ConnectorError> {
        let mut fields = vec![FieldSchema {
            name: "id".into(),
            field_type: syncctl_core::FieldType::Integer,
            nullable: false,
            writable: true,
            unique: true,
            max_length: None,
            has_default: true,
            normalisation: Vec::new(),
        }];
        fields.extend(self.fields.iter().map(|n| FieldSchema::text(*n)));
        Ok(ObjectSchema {
            object: self.name.into(),
            key: "id".into(),
            updated_at: None,
            deleted: None,
            origin: None,
            fields,
            capabilities: Capabilities {
                incremental: true,
                versioned: self.versioned.load(Ordering::SeqCst),
                ..Capabilities::full()
            },
            max_batch: 3,
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
impl Source for Memory {
    async fn read_page(
        &self,
        _s: &ObjectSchema,
        req: &ReadRequest,
    ) -> Result<Page, ConnectorError> {
        let t = self.table.lock().unwrap();
        let mut rows: Vec<(DateTime<Utc>, i64)> = t
            .rows
            .iter()
            .filter(|(_, (_, at))| req.since.is_none_or(|s| *at >= s))
            .map(|(id, (_, at))| {
                (
                    if req.since.is_some() {
                        *at
                    } else {
                        DateTime::<Utc>::MIN_UTC
                    },
                    *id,
                )
            })
            .collect();
        rows.sort();
        if let Some(PageToken(tok)) = &req.after {
            let at = tok["t"].as_i64().unwrap_or(i64::MIN);
            let id = tok["k"].as_i64().unwrap_or(i64::MIN);
            rows.retain(|(a, i)| (a.timestamp(), *i) > (at, id));
        }
        let more = rows.len() > req.limit;
        rows.truncate(req.limit);
        let next = if more {
            rows.last()
                .map(|(a, i)| PageToken(json!({"t": a.timestamp(), "k": i})))
        } else {
            None
        };
        let records = rows
            .iter()
            .map(|(_, id)| {
                let (f, at) = &t.rows[id];
                self.record(*id, f, *at)
            })
            .collect();
        Ok(Page { records, next })
    }

    async fn read_keys(
        &self,
        _s: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<Record>, ConnectorError> {
        let t = self.table.lock().unwrap();
        Ok(keys
            .iter()
            .filter_map(|k| k.0.parse::<i64>().ok())
            .filter_map(|id| t.rows.get(&id).map(|(f, at)| self.record(id, f, *at)))
            .collect())
    }

    async fn lookup(
        &self,
        _s: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        let wanted: HashSet<String> = values.iter().filter_map(canonical_text).collect();
        let t = self.table.lock().unwrap();
        Ok(t.rows
            .iter()
            .filter(|(_, (f, _))| {
                f.get(field)
                    .and_then(canonical_text)
                    .is_some_and(|v| wanted.contains(&v))
            })
            .map(|(id, (f, at))| self.record(*id, f, *at))
            .collect())
    }
}

#[async_trait::async_trait]
impl Sink for Memory {
    async fn write(
        &self,
        _s: &ObjectSchema,
        ops: &[WriteOp],
        _ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let mut t = self.table.lock().unwrap();
        if t.down {
            return Err(ConnectorError::unavailable("memory", "connection refused"));
        }
        t.writes += 1;
        if let Some(edits) = t.edits_before_write.pop_front() {
            for (id, k, v) in edits {
                let at = self.clock.tick();
                if let Some(row) = t.rows.get_mut(&id) {
                    row.0.insert(k, json!(v));
                    row.1 = at;
                }
            }
        }
        let mut out = Vec::new();
        for op in ops {
            let refused = |t: &Table, f: &BTreeMap<String, Value>| {
                f.get("email")
                    .and_then(canonical_text)
                    .is_some_and(|e| t.refuse.contains(&e))
            };
            let at = self.clock.tick();
            let o = match op {
                WriteOp::Create {
                    natural_key,
                    fields,
                    ..
                } => {
                    if refused(&t, fields) {
                        WriteOutcome::Failed(RecordError::invalid("refused", Some("email")))
                    } else {
                        let existing = natural_key.as_ref().and_then(|nk| {
                            let want = canonical_text(&nk.value);
                            t.rows
                                .iter()
                                .find(|(_, (f, _))| {
                                    f.get(&nk.field).and_then(canonical_text) == want
                                })
                                .map(|(id, _)| *id)
                        });
                        let (id, created) = match existing {
                            Some(id) => (id, false),
                            None => {
                                t.next += 1;
                                (t.next, true)
                            }
                        };
                        let row = t.rows.entry(id).or_insert_with(|| (BTreeMap::new(), at));
                        row.0
                            .extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                        row.1 = at;
                        let rec = self.record(id, &row.0.clone(), at);
                        WriteOutcome::Applied {
                            key: RecordKey(id.to_string()),
                            created,
                            stored: Some(rec),
                        }
                    }
                }
                WriteOp::Update {
                    key,
                    fields,
                    expected_version,
                    ..
                } => {
                    let id = key.0.parse::<i64>().unwrap_or(-1);
                    let cur = t.rows.get(&id).map(|(f, _)| f.clone());
                    let current_version = t.rows.get(&id).map(|(_, at)| at.timestamp().to_string());
                    match cur {
                        None => WriteOutcome::NotFound { key: key.clone() },
                        Some(_)
                            if self.versioned.load(Ordering::SeqCst)
                                && expected_version.is_some()
                                && *expected_version != current_version =>
                        {
                            WriteOutcome::Stale { key: key.clone() }
                        }
                        Some(f) if refused(&t, &f) || refused(&t, fields) => {
                            WriteOutcome::Failed(RecordError::invalid("refused", Some("email")))
                        }
                        Some(_) => {
                            let row = t.rows.get_mut(&id).unwrap();
                            row.0
                                .extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                            row.1 = at;
                            let rec = self.record(id, &row.0.clone(), at);
                            WriteOutcome::Applied {
                                key: key.clone(),
                                created: false,
                                stored: Some(rec),
                            }
                        }
                    }
                }
                WriteOp::Delete { key } | WriteOp::Archive { key } => {
                    let id = key.0.parse::<i64>().unwrap_or(-1);
                    if t.rows.remove(&id).is_some() {
                        WriteOutcome::Applied {
                            key: key.clone(),
                            created: false,
                            stored: None,
                        }
                    } else {
                        WriteOutcome::NotFound { key: key.clone() }
                    }
                }
            };
            out.push(o);
        }
        Ok(out)
    }
}

/// [`Memory`] whose writes go over HTTP first: an `HttpClient` holding the breaker the engine
/// was handed, in front of a server that answers every request 503. Stands for a SaaS
/// connector whose HTTP client counts into (and fails fast on) the connector's one breaker.
pub(crate) struct OverHttp {
    pub(crate) inner: Memory,
    http: syncctl_http::HttpClient,
}

impl OverHttp {
    /// `inner` behind a client for `base_url` that shares `breaker` and never retries.
    pub(crate) fn new(inner: Memory, base_url: &str, breaker: syncctl_http::SharedBreaker) -> Self {
        let http = syncctl_http::HttpClient::builder("over-http", base_url)
            .retry(syncctl_http::RetryPolicy {
                max_retries: 0,
                ..syncctl_http::RetryPolicy::default()
            })
            .breaker(breaker)
            .build()
            .unwrap();
        Self { inner, http }
    }
}

#[async_trait::async_trait]
impl Connector for OverHttp {
    fn kind(&self) -> &'static str {
        "over_http"
    }
    fn endpoint(&self) -> String {
        format!("over-http:{}", self.inner.name)
    }
    fn object(&self) -> &str {
        self.inner.name
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn describe(&self) -> Result<ObjectSchema, ConnectorError> {
        self.inner.describe().await
    }
    fn source(&self) -> Option<&dyn Source> {
        Some(&self.inner)
    }
    fn sink(&self) -> Option<&dyn Sink> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Sink for OverHttp {
    async fn write(
        &self,
        s: &ObjectSchema,
        ops: &[WriteOp],
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        self.http
            .send(syncctl_http::Request::post("/batch").json(json!({"ops": ops.len()})))
            .await
            .map_err(|e| ConnectorError::unavailable("over_http", e.to_string()))?;
        self.inner.write(s, ops, ctx).await
    }
}

/// A server answering every request `503` with `Connection: close`; returns its URL and the
/// number of requests it received.
pub(crate) async fn unavailable_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (url, hits)
}
