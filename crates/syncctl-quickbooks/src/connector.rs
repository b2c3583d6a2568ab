//! The sync connector: Customer, Item or Invoice as a [`Source`] and [`Sink`].
//!
//! * **Reads.** A full scan pages `SELECT * FROM E ORDERBY Id STARTPOSITION n MAXRESULTS m`
//!   (m ≤ 1000; name lists with `Active IN (true, false)` so deactivated records are seen and
//!   reported deleted). QuickBooks pages by offset, so each page starts a little before where
//!   the last ended (overlap of m/20, at most 50): a record deleted during the scan cannot
//!   make the next page skip one; repeats are dropped by the engine ([`PageOrder::MayRepeat`]).
//!   An incremental read (`since`) within CDC's 30-day window is **one CDC call**, deleted
//!   objects included (`status: Deleted`); older cursors, or a CDC answer at Intuit's
//!   1,000-object cap, fall back to a query on `Metadata.LastUpdatedTime` (Customer, Item:
//!   deactivations are updates, so nothing is lost) or, for invoices, whose hard deletes only
//!   CDC reports, to a full reconcile (a full scan).
//! * **Versions.** Every record carries its `SyncToken` as [`Record::version`]; updates are
//!   sparse (`"sparse": true`, only the changed fields) with the plan's `expected_version`,
//!   and a stale token (5010) is [`WriteOutcome::Stale`], which the engine re-reads and
//!   re-merges. Ops without a version (archives, deletes, engine paths without one) read the
//!   current tokens in one query first.
//! * **Writes** go in one batch request (≤ 30 operations) whose `requestid` is a hash of the
//!   sync and the operations: a replay of the same plan after a crash gets Intuit's original
//!   answer instead of creating twice. Answers are per `bId`: the stored entity (returned as
//!   [`WriteOutcome::Applied::stored`], so no read-back call is needed), or a fault kept with
//!   its code, element and message.
//! * **DisplayName clashes (6240).** A customer create without a DisplayName gets one derived
//!   from the names (else the company, else the email). When QuickBooks answers 6240 and the
//!   op has a natural key (email), the connector first looks the key up: a match is the same
//!   customer (a replayed create) and is updated instead. Otherwise the name is
//!   disambiguated — `Name (email)`, then `… 2`, `… 3` — and created; the same for an Item's
//!   `Name`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use syncctl_core::digest::sha256_hex;
use syncctl_core::{
    BuildContext, BuildFuture, Capabilities, Classified, Connector, ConnectorError,
    ConnectorFactory, ErrorClass, NaturalKey, ObjectSchema, Page, PageOrder, PageToken,
    RateLimitScope, ReadRequest, Record, RecordError, RecordKey, Sink, Source, WriteContext,
    WriteOp, WriteOutcome,
};

use crate::client::{BatchAnswer, ClientOptions, QuickBooksClient, quote};
use crate::entity::{self, Entity};
use crate::error::{CODE_DUPLICATE_NAME, CODE_OBJECT_NOT_FOUND, CODE_STALE_OBJECT, Fault};
use crate::settings::{BlockSettings, QuickBooksSettings};
use crate::{MAX_BATCH, MAX_PAGE, QuickBooksError};

const KIND: &str = "quickbooks";

/// CDC looks back at most 30 days; a margin keeps a cursor near the edge on the query path.
const CDC_WINDOW: ChronoDuration = ChronoDuration::hours(30 * 24 - 1);
/// Intuit caps a CDC answer at 1,000 objects across the asked entities.
const CDC_CAP: usize = 1000;
/// Ids per `Id IN (…)` query: as many as one answer holds (`MAXRESULTS 1000`); a long
/// statement goes in the POST body. Natural-key lookups take half, as a value may match twice.
const IN_CHUNK: usize = 1000;
/// Disambiguation rounds after a DisplayName clash.
const CLASH_ROUNDS: usize = 3;

/// The factory: `connector: quickbooks`, `object: Customer | Item | Invoice`.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: KIND,
    summary: "QuickBooks Online Accounting API v3 (Customer, Item, Invoice)",
    build,
};

fn build(ctx: BuildContext, settings: Value) -> BuildFuture {
    Box::pin(async move {
        let block: BlockSettings = syncctl_core::parse_settings(KIND, settings)?;
        let entity = Entity::parse(block.object.as_deref().unwrap_or("Customer"))
            .map_err(|e| ConnectorError::config(KIND, e))?;
        let env = |k: &str| ctx.env_var(k);
        let settings =
            QuickBooksSettings::resolve(&block, &env).map_err(|e| to_connector_error(&e))?;
        let client = QuickBooksClient::new(
            &settings,
            ClientOptions {
                credentials: ctx.credentials.clone(),
                breaker: Some(ctx.breaker.clone()),
                ..ClientOptions::default()
            },
        )
        .map_err(|e| to_connector_error(&e))?;
        Ok(Box::new(QuickBooksConnector::new(client, entity)) as Box<dyn Connector>)
    })
}

/// A QuickBooks error as the platform's connector error.
#[must_use]
pub fn to_connector_error(e: &QuickBooksError) -> ConnectorError {
    let message = e.to_string();
    let message = message.trim_start_matches("quickbooks: ").to_owned();
    if matches!(e, QuickBooksError::Throttled { .. }) {
        return ConnectorError::rate_limited(KIND, RateLimitScope::Burst, None, message);
    }
    match e.class() {
        ErrorClass::Config | ErrorClass::Usage => ConnectorError::config(KIND, message),
        ErrorClass::Auth => ConnectorError::Auth {
            connector: KIND.to_owned(),
            message,
        },
        ErrorClass::Transient | ErrorClass::Timeout => ConnectorError::unavailable(KIND, message),
        _ => ConnectorError::failed(KIND, message),
    }
}

/// Where a scan continues.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "m")]
enum Cursor {
    /// Offset paging of a query; `since` is the incremental lower bound, if any.
    #[serde(rename = "q")]
    Query {
        start: usize,
        since: Option<DateTime<Utc>>,
    },
    /// The next record of a CDC answer.
    #[serde(rename = "cdc")]
    Cdc { since: DateTime<Utc>, offset: usize },
}

/// One CDC answer: the `since` it was asked with and its records, sorted.
type CdcSnapshot = (DateTime<Utc>, Arc<Vec<Record>>);

/// The connector for one entity.
pub struct QuickBooksConnector {
    client: QuickBooksClient,
    entity: Entity,
    /// The last CDC answer (its `since` and records, sorted by `(updated_at, Id)`), so the
    /// engine's pages are served from one call.
    cdc: Mutex<Option<CdcSnapshot>>,
}

impl QuickBooksConnector {
    /// A connector over `client` for `entity`.
    #[must_use]
    pub fn new(client: QuickBooksClient, entity: Entity) -> Self {
        Self {
            client,
            entity,
            cdc: Mutex::new(None),
        }
    }

    /// The client (call counts, refreshes).
    #[must_use]
    pub fn client(&self) -> &QuickBooksClient {
        &self.client
    }

    fn active_clause(&self) -> &'static str {
        if self.entity.is_name_list() {
            "Active IN (true, false)"
        } else {
            ""
        }
    }

    fn record(&self, obj: &Map<String, Value>) -> Option<Record> {
        entity::to_record(self.entity, obj)
    }

    fn err(e: &QuickBooksError) -> ConnectorError {
        to_connector_error(e)
    }

    async fn query_page(
        &self,
        start: usize,
        limit: usize,
        since: Option<DateTime<Utc>>,
    ) -> Result<Page, ConnectorError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut conds = Vec::new();
        if let Some(t) = since {
            conds.push(format!(
                "Metadata.LastUpdatedTime >= {}",
                quote(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            ));
        }
        if !self.active_clause().is_empty() {
            conds.push(self.active_clause().to_owned());
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let order = if since.is_some() {
            "Metadata.LastUpdatedTime"
        } else {
            "Id"
        };
        let statement = format!(
            "SELECT * FROM {}{filter} ORDERBY {order} STARTPOSITION {start} MAXRESULTS {limit}",
            self.entity.name()
        );
        let page = self
            .client
            .query(self.entity, &statement)
            .await
            .map_err(|e| Self::err(&e))?;
        let n = page.objects.len();
        let mut records: Vec<Record> = page.objects.iter().filter_map(|o| self.record(o)).collect();
        if since.is_some() {
            records.sort_by(|a, b| (a.updated_at, &a.key).cmp(&(b.updated_at, &b.key)));
        }
        let next = (n >= limit).then(|| {
            // Start a little before the end: a record that leaves the result set during the
            // scan (deleted, or moved to the end by an update) cannot make us skip one.
            let overlap = (limit / 20).min(50);
            cursor_token(&Cursor::Query {
                start: start + n - overlap,
                since,
            })
        });
        Ok(Page { records, next })
    }

    async fn cdc_records(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<Arc<Vec<Record>>>, ConnectorError> {
        if let Some((s, recs)) = self
            .cdc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && *s == since
        {
            return Ok(Some(recs.clone()));
        }
        let answer = self
            .client
            .cdc(&[self.entity], since)
            .await
            .map_err(|e| Self::err(&e))?;
        if answer.objects.len() >= CDC_CAP {
            tracing::info!(
                entity = self.entity.name(),
                "CDC answer at Intuit's 1,000-object cap: reading with queries instead"
            );
            return Ok(None);
        }
        let mut recs: Vec<Record> = answer
            .objects
            .iter()
            .filter(|(e, _)| *e == self.entity)
            .filter_map(|(_, o)| self.record(o))
            .collect();
        recs.sort_by(|a, b| {
            (a.updated_at, a.key.0.parse::<u64>().ok(), &a.key).cmp(&(
                b.updated_at,
                b.key.0.parse::<u64>().ok(),
                &b.key,
            ))
        });
        let recs = Arc::new(recs);
        *self
            .cdc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((since, recs.clone()));
        Ok(Some(recs))
    }

    /// Current objects for these ids (deactivated ones included), by Id.
    async fn read_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Map<String, Value>>, ConnectorError> {
        let mut out = HashMap::new();
        let ids: Vec<&String> = ids
            .iter()
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_digit()))
            .collect();
        for chunk in ids.chunks(IN_CHUNK) {
            let list: Vec<String> = chunk.iter().map(|k| quote(k)).collect();
            let mut conds = vec![format!("Id IN ({})", list.join(", "))];
            if !self.active_clause().is_empty() {
                conds.push(self.active_clause().to_owned());
            }
            let statement = format!(
                "SELECT * FROM {} WHERE {} STARTPOSITION 1 MAXRESULTS {MAX_PAGE}",
                self.entity.name(),
                conds.join(" AND ")
            );
            let page = self
                .client
                .query(self.entity, &statement)
                .await
                .map_err(|e| Self::err(&e))?;
            for o in page.objects {
                if let Some(id) = o.get("Id").and_then(Value::as_str) {
                    out.insert(id.to_owned(), o);
                }
            }
        }
        Ok(out)
    }
}

fn cursor_token(c: &Cursor) -> PageToken {
    PageToken(serde_json::to_value(c).unwrap_or(Value::Null))
}

/// The query language's name for a dotted field: Intuit filters a simple wrapper element
/// (`PrimaryEmailAddr`) by its value.
fn query_field(field: &str) -> &str {
    for leaf in [".Address", ".FreeFormNumber", ".URI", ".value"] {
        if let Some(head) = field.strip_suffix(leaf)
            && !head.contains('.')
        {
            return head;
        }
    }
    field
}

#[async_trait]
impl Connector for QuickBooksConnector {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/v3/company/{}",
            self.client.base_url(),
            self.client.realm()
        )
    }

    fn object(&self) -> &str {
        self.entity.name()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.client
            .company_info()
            .await
            .map(|_| ())
            .map_err(|e| Self::err(&e))
    }

    async fn describe(&self) -> Result<ObjectSchema, ConnectorError> {
        let e = self.entity;
        Ok(ObjectSchema {
            object: e.name().to_owned(),
            key: "Id".to_owned(),
            updated_at: Some("MetaData.LastUpdatedTime".to_owned()),
            deleted: None,
            origin: None,
            fields: e.field_schemas(),
            capabilities: Capabilities {
                create: true,
                update: true,
                delete: !e.is_name_list(),
                archive: e.is_name_list(),
                incremental: true,
                generated_keys: true,
                conditional_update: false,
                returns_stored: true,
                versioned: true,
                // Deactivations of name lists are updates every read sees; invoice deletes
                // only CDC reports, and only for 30 days, so invoices are key-scanned.
                reports_deletes: e.is_name_list(),
                page_order: PageOrder::MayRepeat,
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

#[async_trait]
impl Source for QuickBooksConnector {
    async fn read_page(
        &self,
        _schema: &ObjectSchema,
        request: &ReadRequest,
    ) -> Result<Page, ConnectorError> {
        let cursor = match &request.after {
            Some(t) => serde_json::from_value::<Cursor>(t.0.clone())
                .map_err(|_| ConnectorError::failed(KIND, "invalid page token"))?,
            None => match request.since {
                Some(since) if Utc::now() - since < CDC_WINDOW => Cursor::Cdc { since, offset: 0 },
                // Beyond CDC's window: name lists by query on the cursor (deactivations are
                // updates, so nothing is lost); invoices by a full reconcile.
                Some(since) if self.entity.is_name_list() => Cursor::Query {
                    start: 1,
                    since: Some(since),
                },
                _ => Cursor::Query {
                    start: 1,
                    since: None,
                },
            },
        };
        match cursor {
            Cursor::Query { start, since } => self.query_page(start, request.limit, since).await,
            Cursor::Cdc { since, offset } => match self.cdc_records(since).await? {
                Some(all) => {
                    let limit = request.limit.max(1);
                    let records: Vec<Record> =
                        all.iter().skip(offset).take(limit).cloned().collect();
                    let next = (offset + records.len() < all.len()).then(|| {
                        cursor_token(&Cursor::Cdc {
                            since,
                            offset: offset + records.len(),
                        })
                    });
                    Ok(Page { records, next })
                }
                None if self.entity.is_name_list() => {
                    self.query_page(1, request.limit, Some(since)).await
                }
                None => self.query_page(1, request.limit, None).await,
            },
        }
    }

    async fn read_keys(
        &self,
        _schema: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<Record>, ConnectorError> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let found = self.read_ids(&ids).await?;
        Ok(keys
            .iter()
            .filter_map(|k| found.get(&k.0))
            .filter_map(|o| self.record(o))
            .collect())
    }

    async fn lookup(
        &self,
        _schema: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        if self.entity.field(field).is_none() {
            return Err(ConnectorError::config(
                KIND,
                format!("{} has no field {field}", self.entity.name()),
            ));
        }
        let wanted: Vec<String> = values
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for chunk in wanted.chunks(IN_CHUNK / 2) {
            let list: Vec<String> = chunk.iter().map(|v| quote(v)).collect();
            let mut conds = vec![format!("{} IN ({})", query_field(field), list.join(", "))];
            if !self.active_clause().is_empty() {
                conds.push(self.active_clause().to_owned());
            }
            let statement = format!(
                "SELECT * FROM {} WHERE {} STARTPOSITION 1 MAXRESULTS {MAX_PAGE}",
                self.entity.name(),
                conds.join(" AND ")
            );
            let page = self
                .client
                .query(self.entity, &statement)
                .await
                .map_err(|e| Self::err(&e))?;
            // Intuit compares loosely; the contract is an exact match.
            out.extend(
                page.objects
                    .iter()
                    .filter_map(|o| self.record(o))
                    .filter(|r| {
                        r.fields
                            .get(field)
                            .and_then(Value::as_str)
                            .is_some_and(|v| chunk.iter().any(|w| w == v))
                    }),
            );
        }
        Ok(out)
    }
}

/// One op prepared for the batch.
#[derive(Debug, Clone)]
enum Prepared {
    /// Answered without a call.
    Done(WriteOutcome),
    /// Waiting for the current SyncToken (archives, deletes, unversioned updates).
    NeedsToken { key: RecordKey },
    /// A batch item.
    Item {
        operation: &'static str,
        body: Map<String, Value>,
    },
}

fn failed(field: Option<&str>, message: impl Into<String>) -> WriteOutcome {
    WriteOutcome::Failed(RecordError::invalid(message, field))
}

fn fault_outcome(f: &Fault) -> WriteOutcome {
    let mut e = RecordError::invalid(f.describe(), f.element());
    if !f.is_validation() {
        e.class = ErrorClass::Transient;
    }
    if !f.code().is_empty() {
        e = e.with_code(f.code());
    }
    WriteOutcome::Failed(e)
}

/// `requestid` for a batch: the sync, the entity and every item, hashed (≤ 36 characters).
fn request_id(ctx: &WriteContext, entity: Entity, items: &[Value]) -> String {
    let mut input = format!("{}\0{}", ctx.sync_name, entity.name());
    for i in items {
        input.push('\0');
        input.push_str(&i.to_string());
    }
    format!("sx{}", &sha256_hex(input)[..32])
}

impl QuickBooksConnector {
    fn prepare(&self, op: &WriteOp) -> Prepared {
        let e = self.entity;
        match op {
            WriteOp::Create { fields, .. } => {
                let mut body = match entity::to_body(e, fields) {
                    Ok(b) => b,
                    Err((f, m)) => return Prepared::Done(failed(Some(&f), m)),
                };
                if e == Entity::Customer && !body.contains_key("DisplayName") {
                    match entity::derive_display_name(fields) {
                        Some(n) => {
                            body.insert("DisplayName".into(), json!(n));
                        }
                        None => {
                            return Prepared::Done(failed(
                                Some("DisplayName"),
                                "a customer needs a DisplayName, a name, a company name or an email to derive one from",
                            ));
                        }
                    }
                }
                if e == Entity::Item && !body.contains_key("Name") {
                    return Prepared::Done(failed(Some("Name"), "an item needs a Name"));
                }
                Prepared::Item {
                    operation: "create",
                    body,
                }
            }
            WriteOp::Update {
                key,
                fields,
                expected_version,
                ..
            } => {
                let mut body = match entity::to_body(e, fields) {
                    Ok(b) => b,
                    Err((f, m)) => return Prepared::Done(failed(Some(&f), m)),
                };
                if body.is_empty() {
                    return Prepared::Done(WriteOutcome::Applied {
                        key: key.clone(),
                        created: false,
                        stored: None,
                    });
                }
                match expected_version {
                    Some(v) => {
                        body.insert("Id".into(), json!(key.0));
                        body.insert("SyncToken".into(), json!(v));
                        body.insert("sparse".into(), json!(true));
                        Prepared::Item {
                            operation: "update",
                            body,
                        }
                    }
                    None => Prepared::NeedsToken { key: key.clone() },
                }
            }
            WriteOp::Archive { key } if e.is_name_list() => {
                Prepared::NeedsToken { key: key.clone() }
            }
            WriteOp::Delete { key } if !e.is_name_list() => {
                Prepared::NeedsToken { key: key.clone() }
            }
            WriteOp::Archive { .. } => Prepared::Done(failed(
                None,
                "invoices cannot be archived in QuickBooks; delete them",
            )),
            WriteOp::Delete { .. } => Prepared::Done(failed(
                None,
                format!(
                    "{} cannot be deleted in QuickBooks, only made inactive (archive)",
                    e.name()
                ),
            )),
        }
    }

    /// The body of an op that needed the current token, now that it is known.
    fn with_token(&self, op: &WriteOp, key: &RecordKey, token: &str) -> Prepared {
        let mut body = Map::new();
        body.insert("Id".into(), json!(key.0));
        body.insert("SyncToken".into(), json!(token));
        match op {
            WriteOp::Update { fields, .. } => match entity::to_body(self.entity, fields) {
                Ok(b) => {
                    body.extend(b);
                    body.insert("sparse".into(), json!(true));
                    Prepared::Item {
                        operation: "update",
                        body,
                    }
                }
                Err((f, m)) => Prepared::Done(failed(Some(&f), m)),
            },
            WriteOp::Archive { .. } => {
                body.insert("Active".into(), json!(false));
                body.insert("sparse".into(), json!(true));
                Prepared::Item {
                    operation: "update",
                    body,
                }
            }
            _ => Prepared::Item {
                operation: "delete",
                body,
            },
        }
    }

    /// Sends prepared items as one batch; answers by op index.
    async fn send(
        &self,
        ctx: &WriteContext,
        items: &[(usize, &'static str, Map<String, Value>)],
    ) -> Result<HashMap<usize, BatchAnswer>, ConnectorError> {
        if items.is_empty() {
            return Ok(HashMap::new());
        }
        let wire: Vec<Value> = items
            .iter()
            .map(|(i, operation, body)| {
                json!({"bId": i.to_string(), "operation": operation, self.entity.name(): body})
            })
            .collect();
        let rid = request_id(ctx, self.entity, &wire);
        let answers = self
            .client
            .batch(wire, &rid)
            .await
            .map_err(|e| Self::err(&e))?;
        let mut out = HashMap::new();
        for (bid, a) in answers {
            if let Ok(i) = bid.parse::<usize>() {
                out.insert(i, a);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Sink for QuickBooksConnector {
    async fn write(
        &self,
        _schema: &ObjectSchema,
        ops: &[WriteOp],
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        if ops.len() > MAX_BATCH {
            return Err(ConnectorError::config(
                KIND,
                format!(
                    "at most {MAX_BATCH} operations per batch, got {}",
                    ops.len()
                ),
            ));
        }
        let mut prepared: Vec<Prepared> = ops.iter().map(|op| self.prepare(op)).collect();
        // One read for every op that needs the current SyncToken.
        let need: Vec<String> = prepared
            .iter()
            .filter_map(|p| match p {
                Prepared::NeedsToken { key } => Some(key.0.clone()),
                _ => None,
            })
            .collect();
        if !need.is_empty() {
            let current = self.read_ids(&need).await?;
            for (i, p) in prepared.iter_mut().enumerate() {
                if let Prepared::NeedsToken { key } = p {
                    let key = key.clone();
                    *p = match current
                        .get(&key.0)
                        .and_then(|o| o.get("SyncToken"))
                        .and_then(Value::as_str)
                    {
                        Some(t) => self.with_token(&ops[i], &key, t),
                        None => Prepared::Done(WriteOutcome::NotFound { key }),
                    };
                }
            }
        }
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; ops.len()];
        let mut items = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            match p {
                Prepared::Done(o) => outcomes[i] = Some(o),
                Prepared::Item { operation, body } => items.push((i, operation, body)),
                Prepared::NeedsToken { .. } => {}
            }
        }
        let mut answers = self.send(ctx, &items).await?;
        let mut bodies: HashMap<usize, (&'static str, Map<String, Value>)> =
            items.into_iter().map(|(i, o, b)| (i, (o, b))).collect();
        let mut clashes: Vec<usize> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            let key_of = || match op {
                WriteOp::Update { key, .. }
                | WriteOp::Delete { key }
                | WriteOp::Archive { key } => key.clone(),
                WriteOp::Create { .. } => RecordKey(String::new()),
            };
            outcomes[i] = Some(match answers.remove(&i) {
                Some(BatchAnswer::Entity(obj)) => {
                    let deleted = obj.get("status").and_then(Value::as_str) == Some("Deleted");
                    let key = obj
                        .get("Id")
                        .and_then(Value::as_str)
                        .map_or_else(key_of, |s| RecordKey(s.to_owned()));
                    WriteOutcome::Applied {
                        key,
                        created: matches!(op, WriteOp::Create { .. }),
                        stored: if deleted { None } else { self.record(&obj) },
                    }
                }
                Some(BatchAnswer::Fault(f)) => match (op, f.code()) {
                    (WriteOp::Create { .. }, CODE_DUPLICATE_NAME) if self.entity.is_name_list() => {
                        clashes.push(i);
                        continue;
                    }
                    (WriteOp::Create { .. }, _) => fault_outcome(&f),
                    (_, CODE_STALE_OBJECT) => WriteOutcome::Stale { key: key_of() },
                    (_, CODE_OBJECT_NOT_FOUND) => WriteOutcome::NotFound { key: key_of() },
                    _ => fault_outcome(&f),
                },
                Some(BatchAnswer::Query(_)) | None => WriteOutcome::Failed(RecordError::transient(
                    "QuickBooks' batch answer had no item for this operation",
                )),
            });
        }
        if !clashes.is_empty() {
            self.resolve_clashes(ops, ctx, &clashes, &mut bodies, &mut outcomes)
                .await?;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| WriteOutcome::Failed(RecordError::transient("no outcome")))
            })
            .collect())
    }
}

impl QuickBooksConnector {
    /// Creates refused with 6240: a natural-key match becomes an update of that record (a
    /// replayed create); the rest are retried with disambiguated names.
    async fn resolve_clashes(
        &self,
        ops: &[WriteOp],
        ctx: &WriteContext,
        clashes: &[usize],
        bodies: &mut HashMap<usize, (&'static str, Map<String, Value>)>,
        outcomes: &mut [Option<WriteOutcome>],
    ) -> Result<(), ConnectorError> {
        let name_field = self.entity.unique_name_field().unwrap_or("DisplayName");
        // 1. Natural keys: the record may already be there.
        let mut by_key: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
        for &i in clashes {
            if let WriteOp::Create {
                natural_key: Some(NaturalKey { field, value }),
                ..
            } = &ops[i]
            {
                by_key
                    .entry(field.clone())
                    .or_default()
                    .push((i, value.clone()));
            }
        }
        let mut updates = Vec::new();
        let mut matched = std::collections::BTreeSet::new();
        for (field, pairs) in &by_key {
            let values: Vec<Value> = pairs.iter().map(|(_, v)| v.clone()).collect();
            let schema = self.describe().await?;
            let found = self.lookup(&schema, field, &values).await?;
            for (i, v) in pairs {
                if let Some(r) = found.iter().find(|r| r.fields.get(field) == Some(v))
                    && let Some((_, body)) = bodies.get(i)
                {
                    let mut b = body.clone();
                    b.remove(name_field);
                    b.insert("Id".into(), json!(r.key.0));
                    b.insert(
                        "SyncToken".into(),
                        json!(r.version.clone().unwrap_or_default()),
                    );
                    b.insert("sparse".into(), json!(true));
                    updates.push((*i, "update", b));
                    matched.insert(*i);
                }
            }
        }
        let answers = self.send(ctx, &updates).await?;
        for (i, _, _) in &updates {
            outcomes[*i] = Some(match answers.get(i) {
                Some(BatchAnswer::Entity(obj)) => WriteOutcome::Applied {
                    key: RecordKey(
                        obj.get("Id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    created: false,
                    stored: self.record(obj),
                },
                Some(BatchAnswer::Fault(f)) => fault_outcome(f),
                _ => WriteOutcome::Failed(RecordError::transient(
                    "no answer for the natural-key update",
                )),
            });
        }
        // 2. Disambiguated names, one batch per round.
        let mut pending: Vec<usize> = clashes
            .iter()
            .copied()
            .filter(|i| !matched.contains(i))
            .collect();
        let candidates: HashMap<usize, Vec<String>> = pending
            .iter()
            .filter_map(|i| {
                let (_, body) = bodies.get(i)?;
                let base = body.get(name_field).and_then(Value::as_str)?.to_owned();
                let email = match &ops[*i] {
                    WriteOp::Create { fields, .. } => fields
                        .get("PrimaryEmailAddr.Address")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    _ => None,
                };
                Some((*i, entity::disambiguations(&base, email.as_deref())))
            })
            .collect();
        for round in 0..CLASH_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let items: Vec<_> = pending
                .iter()
                .filter_map(|i| {
                    let name = candidates.get(i)?.get(round)?;
                    let (_, body) = bodies.get(i)?;
                    let mut b = body.clone();
                    b.insert(name_field.into(), json!(name));
                    Some((*i, "create", b))
                })
                .collect();
            let answers = self.send(ctx, &items).await?;
            let mut still = Vec::new();
            for (i, _, b) in &items {
                match answers.get(i) {
                    Some(BatchAnswer::Entity(obj)) => {
                        let used = b
                            .get(name_field)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned();
                        tracing::warn!(entity = self.entity.name(), name = %used, "{name_field} was taken by another record: created with a disambiguated name");
                        outcomes[*i] = Some(WriteOutcome::Applied {
                            key: RecordKey(
                                obj.get("Id")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_owned(),
                            ),
                            created: true,
                            stored: self.record(obj),
                        });
                    }
                    Some(BatchAnswer::Fault(f)) if f.code() == CODE_DUPLICATE_NAME => {
                        still.push(*i)
                    }
                    Some(BatchAnswer::Fault(f)) => outcomes[*i] = Some(fault_outcome(f)),
                    _ => {
                        outcomes[*i] = Some(WriteOutcome::Failed(RecordError::transient(
                            "no answer for the disambiguated create",
                        )))
                    }
                }
            }
            pending = still;
        }
        for i in pending {
            outcomes[i] = Some(WriteOutcome::Failed(
                RecordError::invalid(
                    format!("{name_field} is already used by another customer, vendor or employee, and so are its disambiguated forms"),
                    Some(name_field),
                )
                .with_code(CODE_DUPLICATE_NAME),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_fit_intuits_limit_and_follow_the_content() {
        let ctx = WriteContext::new("crm", "run-1");
        let a = request_id(&ctx, Entity::Customer, &[json!({"bId": "0"})]);
        let b = request_id(
            &WriteContext::new("crm", "run-2"),
            Entity::Customer,
            &[json!({"bId": "0"})],
        );
        let c = request_id(&ctx, Entity::Customer, &[json!({"bId": "1"})]);
        assert!(a.len() <= 36);
        assert_eq!(a, b, "a replay in another run sends the same request id");
        assert_ne!(a, c);
    }

    #[test]
    fn query_fields_for_wrapped_values() {
        assert_eq!(query_field("PrimaryEmailAddr.Address"), "PrimaryEmailAddr");
        assert_eq!(query_field("DisplayName"), "DisplayName");
        assert_eq!(query_field("BillAddr.City"), "BillAddr.City");
    }
}
