//! The HubSpot CRM v3 connector: contacts, companies, deals and products.
//!
//! ```yaml
//! source: {connector: hubspot, object: contacts}          # HUBSPOT_API_TOKEN from the environment
//! source: {connector: hubspot, object: deals, base_url: "http://127.0.0.1:8080",
//!          properties: [dealname, amount, dealstage, closedate], tier: starter,
//!          associations: [contacts, companies, line_items]}
//! ```
//!
//! How it uses the API (facts in `../shared/reference/sync.md` §3, §7):
//!
//! * **Auth**: a private app's access token (`HUBSPOT_API_TOKEN`) as `Authorization: Bearer`.
//!   Base URL `HUBSPOT_BASE_URL` or `base_url` (`scheme://host:port`, no path), default
//!   `https://api.hubapi.com`.
//! * **Full reads**: `GET /crm/v3/objects/{type}?limit=100&properties=…&after=…` (ascending id).
//! * **Incremental reads**: `POST …/search` filtered on the modified-time property
//!   (`lastmodifieddate` on contacts, `hs_lastmodifieddate` elsewhere) `GTE since`, sorted
//!   ascending, 200 per page. A search pages through at most 10 000 results, so before the
//!   cap the scan re-anchors: a new search from the last modified time seen, not a larger
//!   offset. Records at that boundary come again ([`PageOrder::MayRepeat`]); the engine
//!   drops the repeats. Searches have their own limit (5/s) and their own limiter.
//! * **Writes**: batches of at most 100. A create with a natural key on a unique property
//!   (contacts: `email`; any object: a custom `hasUniqueValue` property named in
//!   `id_property`) is `batch/upsert`, so a write replayed after a crash updates instead of
//!   duplicating; other creates look their natural key up with one search per batch and
//!   update what exists. `batch/update` for updates, `batch/archive` for deletes and archives
//!   (HubSpot's delete is an archive). A 207 multi-status is mapped back to each op through
//!   `objectWriteTraceId` and `context.ids`; a whole-batch 4xx is replayed op by op so one
//!   bad record never fails the others.
//! * **Rate limits**: one limiter per connector sized so that burst + rate × 10 s never
//!   exceeds the published 10-second limit (190 Professional/Enterprise, 100 Starter), and a
//!   search limiter (burst 1 + 4/s ≤ 5/s). The HTTP core honours `Retry-After` on 429;
//!   `policyName: DAILY` (or `X-HubSpot-RateLimit-Daily-Remaining: 0`) is
//!   [`ConnectorError::RateLimited`] with [`RateLimitScope::Daily`], which stops the run.
//! * **Values**: HubSpot stores every property as a string, lower-cases emails and clears a
//!   property with `""`; the schema says so per field ([`Normalisation`]) so that change
//!   detection and read-back compare normalised forms.
//! * **Deletes the source reports**: HubSpot's delete is an archive (kept in the recycle bin
//!   for 90 days). A delete-detection scan ([`ReadRequest::keys_only`] with `since`) reads the
//!   changed ids through search and then the bin (`GET …?archived=true`, by id, every page),
//!   returning the records archived since as deleted ([`Capabilities::reports_deletes`]), so
//!   the engine does not list every id to find the missing ones. A record purged for good (90
//!   days in the bin, or a GDPR delete) is not reported: a full refresh finds it.
//! * **Associations** (read only): for each type named in `associations`, every record read
//!   (list, search, batch read) gets a field `associations.<type>`: the ids of the records
//!   associated with it, a JSON array of strings in ascending numeric order (`[]` for none).
//!   They come from `POST /crm/v4/associations/{object}/{type}/batch/read`, one call per 100
//!   records read and type (plus one per further page of one record's associations).
//!   `line_items` also gives a field `line_items`: each associated line item's `name`,
//!   `hs_product_id`, `quantity`, `price` and `amount` (one `batch/read` of line items per
//!   100), as a JSON array of objects in line-item id order. A mapping resolves these ids
//!   through another sync's links (`lookup:` in the sync config), which is how an association
//!   is kept when both ends are synced. Associations are not written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use syncctl_core::{
    BuildContext, BuildFuture, Capabilities, Connector, ConnectorError, ConnectorFactory,
    ErrorClass, FieldSchema, FieldType, Normalisation, ObjectSchema, Page, PageOrder, PageToken,
    RateLimitScope, ReadRequest, Record, RecordError, RecordKey, Sink, Source, WriteContext,
    WriteOp, WriteOutcome,
};
use syncctl_http::{BearerToken, HttpClient, HttpError, RateLimiter, Request, Response};

/// The connector kind as written in config.
pub const KIND: &str = "hubspot";

/// The factory: `connector: hubspot`.
pub const FACTORY: ConnectorFactory = ConnectorFactory {
    kind: KIND,
    summary: "HubSpot CRM v3 (contacts, companies, deals; HUBSPOT_API_TOKEN)",
    build,
};

/// Every connector this crate provides (one line in the binary's list).
pub const FACTORIES: &[ConnectorFactory] = &[FACTORY];

/// HubSpot's batch limit: inputs per batch call.
pub const MAX_BATCH: usize = 100;
/// Results per search page.
const SEARCH_PAGE: usize = 200;
/// Results one search query may page through.
const SEARCH_CAP: usize = 10_000;

/// The default API host.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// The published 10-second limit of the account's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Free and Starter: 100 per 10 s.
    Starter,
    /// Professional: 190 per 10 s (the default).
    #[default]
    Professional,
    /// Enterprise: 190 per 10 s.
    Enterprise,
}

impl Tier {
    /// Calls allowed per rolling 10-second window.
    #[must_use]
    pub fn per_ten_seconds(self) -> u32 {
        match self {
            Self::Starter => 100,
            Self::Professional | Self::Enterprise => 190,
        }
    }
}

/// A token bucket that never admits more than `limit` calls in any `window`: burst `b` plus
/// `rate × window` must stay within `limit` (a bucket of "190 per 10 s with burst 190" admits
/// 380 in its first window). Returns `(per_second, burst)`.
#[must_use]
pub fn bucket_within(limit: u32, window: Duration) -> (f64, u32) {
    let burst = (limit / 10).max(1);
    let per_second = f64::from(limit - burst) / window.as_secs_f64();
    (per_second, burst)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    object: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    id_property: Option<String>,
    #[serde(default)]
    tier: Tier,
    /// The most results one search pages through (HubSpot: 10 000); settable so tests can
    /// cross the cap with a few hundred records.
    #[serde(default = "default_search_cap")]
    search_result_cap: usize,
    /// Association types read with every record (`[contacts, companies, line_items]`).
    #[serde(default)]
    associations: Vec<String>,
}

fn default_search_cap() -> usize {
    SEARCH_CAP
}

fn default_properties(object: &str) -> &'static [&'static str] {
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
        ],
        "companies" => &[
            "name", "domain", "phone", "address", "city", "state", "zip", "country",
        ],
        "products" => &["name", "price", "hs_sku", "description"],
        _ => &["dealname", "amount", "dealstage", "pipeline", "closedate"],
    }
}

/// The objects the connector reads and writes.
const OBJECTS: &[&str] = &["contacts", "companies", "deals", "products"];

/// The association types a record may carry (`associations:`).
const ASSOCIATION_TYPES: &[&str] = &["contacts", "companies", "deals", "line_items"];

/// The line-item properties the `line_items` field carries.
pub const LINE_ITEM_PROPERTIES: &[&str] = &["name", "hs_product_id", "quantity", "price", "amount"];

/// The field holding the ids associated with a record through `association` (`associations.contacts`).
#[must_use]
pub fn association_field(association: &str) -> String {
    format!("associations.{association}")
}

/// The property HubSpot moves on every change of `object`.
#[must_use]
pub fn modified_property(object: &str) -> &'static str {
    if object == "contacts" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

fn build(ctx: BuildContext, settings: Value) -> BuildFuture {
    Box::pin(async move {
        let s: Settings = syncctl_core::parse_settings(KIND, settings)?;
        let connector = HubSpot::new(&ctx, s, 1.0)?;
        Ok(Box::new(connector) as Box<dyn Connector>)
    })
}

/// The connector as [`FACTORY`] builds it, except that its rate limiters run `time_scale`
/// times faster: for benchmarks against a fake whose rate-limit windows are shortened by the
/// same factor (`HubSpotFake::time_scale`), so a run that would take minutes under HubSpot's
/// limits takes seconds and still shows where the limits bind. Only the library offers it:
/// no config setting or environment variable lets a configured run exceed HubSpot's limits
/// (the published limit of the account's tier is chosen with `tier`).
///
/// # Errors
/// As [`FACTORY`]'s build: invalid settings, a missing token.
pub fn build_time_scaled(
    ctx: &BuildContext,
    settings: Value,
    time_scale: f64,
) -> Result<HubSpot, ConnectorError> {
    let s: Settings = syncctl_core::parse_settings(KIND, settings)?;
    HubSpot::new(ctx, s, time_scale)
}

/// Sleeps `1/scale` of every requested wait ([`build_time_scaled`] only).
struct ScaledSleeper(f64);

impl syncctl_http::Sleeper for ScaledSleeper {
    fn sleep(
        &self,
        d: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d.div_f64(self.0)))
    }
}

fn config_err(message: impl Into<String>) -> ConnectorError {
    ConnectorError::config(KIND, message)
}

/// A `scheme://host[:port]` URL with no path, query or fragment.
fn parse_base_url(name: &str, value: &str) -> Result<String, ConnectorError> {
    syncctl_config::parse_origin_url(name, value).map_err(|e| config_err(e.to_string()))
}

/// The configured HubSpot object.
pub struct HubSpot {
    object: String,
    properties: Vec<String>,
    associations: Vec<String>,
    id_property: Option<String>,
    http: HttpClient,
    search_limiter: Arc<RateLimiter>,
    base_url: String,
    search_cap: usize,
    daily_exhausted: AtomicBool,
    calls: AtomicU64,
}

impl std::fmt::Debug for HubSpot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpot")
            .field("object", &self.object)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl HubSpot {
    /// `time_scale` (≥ 1) speeds the limiters up for a fake with a scaled clock; 1 in
    /// production.
    fn new(ctx: &BuildContext, s: Settings, time_scale: f64) -> Result<Self, ConnectorError> {
        if !OBJECTS.contains(&s.object.as_str()) {
            return Err(config_err(format!(
                "object {:?} is not supported; use contacts, companies, deals or products",
                s.object
            )));
        }
        for a in &s.associations {
            if !ASSOCIATION_TYPES.contains(&a.as_str()) || *a == s.object {
                return Err(config_err(format!(
                    "associations: {a:?} is not an association type of {}; use {}",
                    s.object,
                    ASSOCIATION_TYPES
                        .iter()
                        .filter(|t| **t != s.object)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let base_url = match (&s.base_url, ctx.env_var("HUBSPOT_BASE_URL")) {
            (Some(u), _) => parse_base_url("base_url", u)?,
            (None, Some(u)) => parse_base_url("HUBSPOT_BASE_URL", &u)?,
            (None, None) => DEFAULT_BASE_URL.to_owned(),
        };
        let Some(token) = ctx.env_var("HUBSPOT_API_TOKEN") else {
            return Err(config_err(
                "HUBSPOT_API_TOKEN is not set: create a private app in HubSpot (Settings → Integrations → Private apps) with the crm.objects.*.read/write scopes and export its access token",
            ));
        };
        let mut properties: Vec<String> = s.properties.clone().unwrap_or_else(|| {
            default_properties(&s.object)
                .iter()
                .map(|p| (*p).to_owned())
                .collect()
        });
        let id_property = s
            .id_property
            .clone()
            .or_else(|| (s.object == "contacts").then(|| "email".to_owned()));
        if let Some(p) = &id_property
            && !properties.contains(p)
        {
            properties.push(p.clone());
        }
        // A window 1/scale as long admits the same burst plus rate × scale × window/scale.
        let scale = time_scale.max(1.0);
        let (rate, burst) = bucket_within(s.tier.per_ten_seconds(), Duration::from_secs(10));
        let (search_rate, search_burst) = bucket_within(5, Duration::from_secs(1));
        let (rate, search_rate) = (rate * scale, search_rate * scale);
        let mut builder = HttpClient::builder(KIND, base_url.clone())
            .auth(Arc::new(BearerToken::new(KIND, SecretString::from(token))))
            .rate_limiter(Arc::new(RateLimiter::new(rate, burst)))
            .breaker(ctx.breaker.clone());
        if scale > 1.0 {
            // Retry-After and backoff waits are in the fake's scaled seconds too.
            builder = builder.sleeper(Arc::new(ScaledSleeper(scale)));
        }
        let http = builder.build().map_err(|e| config_err(e.to_string()))?;
        let mut associations = s.associations;
        associations.sort();
        associations.dedup();
        Ok(Self {
            object: s.object,
            properties,
            associations,
            id_property,
            http,
            search_limiter: Arc::new(RateLimiter::new(search_rate, search_burst)),
            base_url,
            search_cap: s.search_result_cap.max(SEARCH_PAGE),
            daily_exhausted: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        })
    }

    fn path(&self, rest: &str) -> String {
        if rest.is_empty() {
            format!("/crm/v3/objects/{}", self.object)
        } else {
            format!("/crm/v3/objects/{}/{rest}", self.object)
        }
    }

    fn modified(&self) -> &'static str {
        modified_property(&self.object)
    }

    /// Calls sent so far (for logs and benchmarks).
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Sends `req` and returns the response whatever its status, after turning transport
    /// failures, refused credentials and exhausted rate limits into connector errors.
    async fn send(&self, req: Request) -> Result<Response, ConnectorError> {
        if self.daily_exhausted.load(Ordering::Relaxed) {
            return Err(ConnectorError::rate_limited(
                KIND,
                RateLimitScope::Daily,
                None,
                "the daily API quota is used up (X-HubSpot-RateLimit-Daily-Remaining: 0)",
            ));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let resp = self.http.send_raw(req).await.map_err(http_error)?;
        if resp.header("x-hubspot-ratelimit-daily-remaining") == Some("0") {
            self.daily_exhausted.store(true, Ordering::Relaxed);
        }
        let status = resp.status.as_u16();
        match status {
            401 | 403 => Err(ConnectorError::Auth {
                connector: KIND.to_owned(),
                message: format!("{status}: {}", message_of(&resp)),
            }),
            429 => {
                let body: Value = resp.json().unwrap_or(Value::Null);
                let scope = if body["policyName"].as_str() == Some("DAILY") {
                    self.daily_exhausted.store(true, Ordering::Relaxed);
                    RateLimitScope::Daily
                } else {
                    RateLimitScope::Burst
                };
                let retry_after = resp
                    .header("retry-after")
                    .and_then(|v| syncctl_http::parse_retry_after(v, std::time::SystemTime::now()));
                Err(ConnectorError::rate_limited(
                    KIND,
                    scope,
                    retry_after,
                    message_of(&resp),
                ))
            }
            423 | 477 | 500..=599 => Err(ConnectorError::unavailable(
                KIND,
                format!("{status}: {}", message_of(&resp)),
            )),
            _ => Ok(resp),
        }
    }

    /// Sends a read and requires a 2xx (207 included).
    async fn read_json(&self, req: Request) -> Result<Value, ConnectorError> {
        let resp = self.send(req).await?;
        let status = resp.status.as_u16();
        if !(200..300).contains(&status) {
            return Err(remote_error(status, &resp));
        }
        resp.json::<Value>()
            .map_err(|e| ConnectorError::failed(KIND, format!("unreadable answer: {e}")))
    }

    fn record_of(&self, v: &Value) -> Option<Record> {
        let id = v["id"].as_str()?;
        let props = v["properties"].as_object();
        let mut fields: BTreeMap<String, Value> = BTreeMap::new();
        for p in self.properties.iter().map(String::as_str).chain([
            "hs_object_id",
            "createdate",
            self.modified(),
        ]) {
            let value = props.and_then(|m| m.get(p)).cloned().unwrap_or(Value::Null);
            fields.insert(p.to_owned(), value);
        }
        fields.insert("hs_object_id".to_owned(), Value::String(id.to_owned()));
        let updated_at = v["updatedAt"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        Some(Record {
            key: RecordKey(id.to_owned()),
            fields,
            updated_at,
            deleted: v["archived"].as_bool().unwrap_or(false),
            version: None,
        })
    }

    fn records_of(&self, body: &Value) -> Vec<Record> {
        body["results"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| self.record_of(v)).collect())
            .unwrap_or_default()
    }

    /// `batch/read` of up to 100 ids (or unique property values).
    async fn batch_read(
        &self,
        ids: &[String],
        id_property: Option<&str>,
    ) -> Result<Vec<Record>, ConnectorError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_BATCH) {
            let mut body = json!({
                "properties": self.properties,
                "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            });
            if let Some(p) = id_property {
                body["idProperty"] = json!(p);
            }
            let req = Request::post(self.path("batch/read"))
                .json(body)
                .retry_safe();
            let v = self.read_json(req).await?;
            out.extend(self.records_of(&v));
        }
        Ok(out)
    }

    /// One page of the recycle bin (`GET …?archived=true`, ascending id): the records archived
    /// at or after `since_ms`, reported deleted. HubSpot lists archived records by id, not by
    /// time, so every page of the bin is read.
    async fn archived_page(
        &self,
        since_ms: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ConnectorError> {
        let mut req = Request::get(self.path(""))
            .query("limit", limit.clamp(1, MAX_BATCH).to_string())
            .query("properties", "hs_object_id")
            .query("archived", "true")
            .retry_safe();
        if let Some(a) = after {
            req = req.query("after", a.to_owned());
        }
        let v = self.read_json(req).await?;
        let records = v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| {
                o["archivedAt"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_none_or(|t| t.timestamp_millis() >= since_ms)
            })
            .filter_map(|o| self.record_of(o))
            .map(|mut r| {
                r.deleted = true;
                r
            })
            .collect();
        let next = v["paging"]["next"]["after"]
            .as_str()
            .map(|a| Cursor::Archived {
                since_ms,
                after: Some(a.to_owned()),
            });
        Ok(Page {
            records,
            next: next.map(|c| PageToken(serde_json::to_value(c).unwrap_or(Value::Null))),
        })
    }

    /// Adds the configured association fields to `records` (see the module docs).
    async fn with_associations(
        &self,
        mut records: Vec<Record>,
    ) -> Result<Vec<Record>, ConnectorError> {
        if self.associations.is_empty() || records.is_empty() {
            return Ok(records);
        }
        let ids: Vec<String> = records.iter().map(|r| r.key.0.clone()).collect();
        for kind in &self.associations {
            let linked = self.associated(kind, &ids).await?;
            let mut items: BTreeMap<String, Value> = BTreeMap::new();
            if kind == "line_items" {
                let mut all: Vec<String> = linked.values().flatten().cloned().collect();
                all.sort();
                all.dedup();
                items = self.line_items(&all).await?;
            }
            for r in &mut records {
                let mine = linked.get(&r.key.0).cloned().unwrap_or_default();
                if kind == "line_items" {
                    let details: Vec<Value> = mine
                        .iter()
                        .filter_map(|id| items.get(id).cloned())
                        .collect();
                    r.fields
                        .insert("line_items".to_owned(), Value::Array(details));
                }
                r.fields.insert(
                    association_field(kind),
                    Value::Array(mine.into_iter().map(Value::String).collect()),
                );
            }
        }
        Ok(records)
    }

    /// The ids of the `kind` records associated with each of `ids`, in ascending numeric
    /// order: `POST /crm/v4/associations/{object}/{kind}/batch/read` per 100 ids, and again
    /// with `after` for an object whose associations span pages.
    async fn associated(
        &self,
        kind: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<String>>, ConnectorError> {
        let path = format!("/crm/v4/associations/{}/{kind}/batch/read", self.object);
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let mut pending: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
        while !pending.is_empty() {
            let mut more = Vec::new();
            for chunk in pending.chunks(MAX_BATCH) {
                let req = Request::post(path.clone())
                    .json(json!({"inputs": chunk}))
                    .retry_safe();
                let v = self.read_json(req).await?;
                for e in v["errors"].as_array().into_iter().flatten() {
                    // An object with no association of this type is an "error" of the batch.
                    let none = e["subCategory"]
                        .as_str()
                        .is_some_and(|c| c.ends_with("NO_ASSOCIATIONS_FOUND"));
                    if !none {
                        return Err(ConnectorError::failed(
                            KIND,
                            format!(
                                "reading {} associations of {}: {}",
                                kind,
                                self.object,
                                e["message"].as_str().unwrap_or("refused")
                            ),
                        ));
                    }
                }
                for r in v["results"].as_array().into_iter().flatten() {
                    let Some(from) = r["from"]["id"].as_str() else {
                        continue;
                    };
                    let to = out.entry(from.to_owned()).or_default();
                    for t in r["to"].as_array().into_iter().flatten() {
                        match &t["toObjectId"] {
                            Value::Number(n) => to.push(n.to_string()),
                            Value::String(s) => to.push(s.clone()),
                            _ => {}
                        }
                    }
                    if let Some(after) = r["paging"]["next"]["after"].as_str() {
                        more.push(json!({"id": from, "after": after}));
                    }
                }
            }
            pending = more;
        }
        for v in out.values_mut() {
            v.sort_by_key(|id| (id.len(), id.clone()));
            v.dedup();
        }
        Ok(out)
    }

    /// The line items `ids` with [`LINE_ITEM_PROPERTIES`], by id, as objects
    /// (`{"id", "name", "hs_product_id", "quantity", "price", "amount"}`).
    async fn line_items(&self, ids: &[String]) -> Result<BTreeMap<String, Value>, ConnectorError> {
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(MAX_BATCH) {
            let body = json!({
                "properties": LINE_ITEM_PROPERTIES,
                "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            });
            let req = Request::post("/crm/v3/objects/line_items/batch/read")
                .json(body)
                .retry_safe();
            let v = self.read_json(req).await?;
            for item in v["results"].as_array().into_iter().flatten() {
                let Some(id) = item["id"].as_str() else {
                    continue;
                };
                let mut o = Map::new();
                o.insert("id".to_owned(), json!(id));
                for p in LINE_ITEM_PROPERTIES {
                    o.insert((*p).to_owned(), item["properties"][*p].clone());
                }
                out.insert(id.to_owned(), Value::Object(o));
            }
        }
        Ok(out)
    }

    /// One search page: `filters` ANDed, sorted by the modified time ascending.
    async fn search(
        &self,
        filters: Vec<Value>,
        after: usize,
        limit: usize,
        properties: &[String],
    ) -> Result<Value, ConnectorError> {
        self.search_limiter.acquire().await;
        let body = json!({
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": self.modified(), "direction": "ASCENDING"}],
            "properties": properties,
            "limit": limit,
            "after": after.to_string(),
        });
        let req = Request::post(self.path("search")).json(body).retry_safe();
        self.read_json(req).await
    }

    /// Records whose non-unique `field` is one of `values`, through search.
    async fn search_in(
        &self,
        field: &str,
        values: &[String],
    ) -> Result<Vec<Record>, ConnectorError> {
        let mut out = Vec::new();
        for chunk in values.chunks(MAX_BATCH) {
            let mut after = 0;
            loop {
                let filters =
                    vec![json!({"propertyName": field, "operator": "IN", "values": chunk})];
                let v = self
                    .search(filters, after, SEARCH_PAGE, &self.properties)
                    .await?;
                out.extend(self.records_of(&v));
                match v["paging"]["next"]["after"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                {
                    Some(next) if next + SEARCH_PAGE <= self.search_cap => after = next,
                    Some(_) => {
                        return Err(ConnectorError::failed(
                            KIND,
                            format!(
                                "more than {} records share the same {field} values",
                                self.search_cap
                            ),
                        ));
                    }
                    None => break,
                }
            }
        }
        Ok(out)
    }

    fn field_schema(&self, name: &str) -> FieldSchema {
        let mut f = FieldSchema::text(name);
        f.normalisation = vec![Normalisation::NumbersAsText, Normalisation::EmptyIsNull];
        if name == "email" {
            f.normalisation = vec![
                Normalisation::NumbersAsText,
                Normalisation::Trim,
                Normalisation::Lowercase,
                Normalisation::EmptyIsNull,
            ];
        }
        if Some(name) == self.id_property.as_deref() {
            f.unique = true;
        }
        f
    }
}

fn message_of(resp: &Response) -> String {
    resp.json::<Value>()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {}", resp.status.as_u16()))
}

fn remote_error(status: u16, resp: &Response) -> ConnectorError {
    let msg = format!("{status}: {}", message_of(resp));
    match status {
        400 | 404 | 409 | 422 => ConnectorError::config(KIND, msg),
        _ => ConnectorError::failed(KIND, msg),
    }
}

fn http_error(e: HttpError) -> ConnectorError {
    match &e {
        HttpError::BreakerOpen { .. } => ConnectorError::unavailable(KIND, e.to_string()),
        _ if e.is_retryable_kind() || e.not_sent() => {
            ConnectorError::unavailable(KIND, e.to_string())
        }
        _ => ConnectorError::failed(KIND, e.to_string()),
    }
}

/// A value as a HubSpot property value: always a string; `null` clears the property.
fn property_value(v: &Value) -> Value {
    match v {
        Value::Null => Value::String(String::new()),
        Value::String(_) => v.clone(),
        other => Value::String(other.to_string()),
    }
}

fn properties_of(fields: &BTreeMap<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(k, _)| {
            k.as_str() != "hs_object_id"
                && k.as_str() != "line_items"
                && !k.starts_with("associations.")
        })
        .map(|(k, v)| (k.clone(), property_value(v)))
        .collect()
}

#[async_trait::async_trait]
impl Connector for HubSpot {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn endpoint(&self) -> String {
        format!("{}/crm/v3/objects/{}", self.base_url, self.object)
    }

    fn object(&self) -> &str {
        &self.object
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let req = Request::get(self.path(""))
            .query("limit", "1")
            .query("properties", "hs_object_id")
            .retry_safe();
        self.read_json(req).await.map(|_| ())
    }

    async fn describe(&self) -> Result<ObjectSchema, ConnectorError> {
        // From the configured properties, without a call: a no-change run costs one read.
        let mut fields = vec![FieldSchema {
            name: "hs_object_id".into(),
            field_type: FieldType::Text,
            nullable: false,
            writable: false,
            unique: true,
            max_length: None,
            has_default: true,
            normalisation: vec![Normalisation::NumbersAsText],
        }];
        fields.extend(self.properties.iter().map(|p| self.field_schema(p)));
        for p in ["createdate", self.modified()] {
            fields.push(FieldSchema {
                name: p.into(),
                field_type: FieldType::Timestamp,
                nullable: true,
                writable: false,
                unique: false,
                max_length: None,
                has_default: true,
                normalisation: Vec::new(),
            });
        }
        let json_field = |name: String| FieldSchema {
            name,
            field_type: FieldType::Json,
            nullable: true,
            writable: false,
            unique: false,
            max_length: None,
            has_default: true,
            normalisation: Vec::new(),
        };
        for a in &self.associations {
            fields.push(json_field(association_field(a)));
            if a == "line_items" {
                fields.push(json_field("line_items".to_owned()));
            }
        }
        Ok(ObjectSchema {
            object: self.object.clone(),
            key: "hs_object_id".into(),
            updated_at: Some(self.modified().to_owned()),
            deleted: None,
            origin: None,
            fields,
            capabilities: Capabilities {
                create: true,
                update: true,
                delete: true,
                // HubSpot's delete is an archive (the recycle bin): both ops are `batch/archive`.
                archive: true,
                incremental: true,
                generated_keys: true,
                conditional_update: false,
                returns_stored: true,
                versioned: false,
                reports_deletes: true,
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

/// Where a scan continues: a list cursor, or a search anchored at a modified time.
#[derive(Debug, serde::Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum Cursor {
    List {
        after: String,
    },
    Search {
        anchor_ms: i64,
        after: usize,
    },
    /// The recycle bin, after a delete-detection scan's search: records archived since then.
    Archived {
        since_ms: i64,
        after: Option<String>,
    },
}

#[async_trait::async_trait]
impl Source for HubSpot {
    async fn read_page(
        &self,
        _schema: &ObjectSchema,
        request: &ReadRequest,
    ) -> Result<Page, ConnectorError> {
        let cursor: Option<Cursor> = match &request.after {
            Some(t) => Some(
                serde_json::from_value(t.0.clone())
                    .map_err(|_| ConnectorError::failed(KIND, "invalid page token"))?,
            ),
            None => None,
        };
        let properties: Vec<String> = if request.keys_only {
            vec!["hs_object_id".to_owned()]
        } else {
            self.properties.clone()
        };
        if let Some(Cursor::Archived { since_ms, after }) = &cursor {
            return self
                .archived_page(*since_ms, after.as_deref(), request.limit)
                .await;
        }
        let search_from = match (&cursor, request.since) {
            (Some(Cursor::Search { anchor_ms, after }), _) => Some((*anchor_ms, *after)),
            (None, Some(since)) => Some((since.timestamp_millis(), 0)),
            _ => None,
        };
        if let Some((anchor_ms, after)) = search_from {
            let limit = request.limit.clamp(1, SEARCH_PAGE);
            let filters = vec![json!({
                "propertyName": self.modified(),
                "operator": "GTE",
                "value": anchor_ms.to_string(),
            })];
            let v = self.search(filters, after, limit, &properties).await?;
            let records = self.records_of(&v);
            let next_after = v["paging"]["next"]["after"]
                .as_str()
                .and_then(|a| a.parse::<usize>().ok());
            let next = match next_after {
                // A delete-detection scan (keys only) goes on with the records archived since.
                None => match request.since {
                    Some(since) if request.keys_only => Some(Cursor::Archived {
                        since_ms: since.timestamp_millis(),
                        after: None,
                    }),
                    _ => None,
                },
                Some(n) if n + limit <= self.search_cap => Some(Cursor::Search {
                    anchor_ms,
                    after: n,
                }),
                Some(_) => {
                    // The cap: start a new search from the last modified time seen.
                    let last = records
                        .last()
                        .and_then(|r| r.updated_at)
                        .map_or(anchor_ms, |t| t.timestamp_millis());
                    if last <= anchor_ms {
                        return Err(ConnectorError::failed(
                            KIND,
                            format!(
                                "more than {} {} share one modified time; run with --full-refresh",
                                self.search_cap, self.object
                            ),
                        ));
                    }
                    Some(Cursor::Search {
                        anchor_ms: last,
                        after: 0,
                    })
                }
            };
            let records = if request.keys_only {
                records
            } else {
                self.with_associations(records).await?
            };
            return Ok(Page {
                records,
                next: next.map(|c| PageToken(serde_json::to_value(c).unwrap_or(Value::Null))),
            });
        }
        let mut req = Request::get(self.path(""))
            .query("limit", request.limit.clamp(1, MAX_BATCH).to_string())
            .query("properties", properties.join(","))
            .query("archived", "false")
            .retry_safe();
        if let Some(Cursor::List { after }) = &cursor {
            req = req.query("after", after.clone());
        }
        let v = self.read_json(req).await?;
        let next = v["paging"]["next"]["after"].as_str().map(|a| Cursor::List {
            after: a.to_owned(),
        });
        let records = self.records_of(&v);
        let records = if request.keys_only {
            records
        } else {
            self.with_associations(records).await?
        };
        Ok(Page {
            records,
            next: next.map(|c| PageToken(serde_json::to_value(c).unwrap_or(Value::Null))),
        })
    }

    async fn read_keys(
        &self,
        _schema: &ObjectSchema,
        keys: &[RecordKey],
    ) -> Result<Vec<Record>, ConnectorError> {
        let ids: Vec<String> = keys
            .iter()
            .filter(|k| k.0.parse::<u64>().is_ok())
            .map(|k| k.0.clone())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let records = self.batch_read(&ids, None).await?;
        self.with_associations(records).await
    }

    async fn lookup(
        &self,
        schema: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        let records = self.find(schema, field, values).await?;
        self.with_associations(records).await
    }
}

impl HubSpot {
    /// Records whose `field` is one of `values`, without their associations (what a write
    /// needs to find an existing record).
    async fn find(
        &self,
        schema: &ObjectSchema,
        field: &str,
        values: &[Value],
    ) -> Result<Vec<Record>, ConnectorError> {
        let Some(f) = schema.field(field) else {
            return Err(config_err(format!(
                "{} has no property {field}",
                self.object
            )));
        };
        let mut wanted: Vec<String> = values
            .iter()
            .filter_map(|v| match f.normalise(v) {
                Value::String(s) if !s.is_empty() => Some(s),
                _ => None,
            })
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        if field == "hs_object_id" {
            let ids: Vec<String> = wanted
                .into_iter()
                .filter(|k| k.parse::<u64>().is_ok())
                .collect();
            return self.batch_read(&ids, None).await;
        }
        if Some(field) == self.id_property.as_deref() {
            return self.batch_read(&wanted, Some(field)).await;
        }
        self.search_in(field, &wanted).await
    }
}

/// What one op becomes on the wire.
enum Planned {
    Upsert {
        id: String,
        properties: Map<String, Value>,
    },
    Create {
        properties: Map<String, Value>,
    },
    Update {
        id: String,
        properties: Map<String, Value>,
    },
    Archive {
        id: String,
    },
}

impl HubSpot {
    /// Plans each op; creates with a natural key on a non-unique property look it up first
    /// (one search per batch) so that an existing record is updated, not duplicated.
    async fn plan(
        &self,
        schema: &ObjectSchema,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<Planned, WriteOutcome>>, ConnectorError> {
        let mut lookups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for op in ops {
            if let WriteOp::Create {
                natural_key: Some(nk),
                ..
            } = op
                && Some(nk.field.as_str()) != self.id_property.as_deref()
            {
                lookups
                    .entry(nk.field.clone())
                    .or_default()
                    .push(nk.value.clone());
            }
        }
        let mut existing: HashMap<(String, Value), Vec<String>> = HashMap::new();
        for (field, values) in &lookups {
            let Some(f) = schema.field(field) else {
                continue;
            };
            for r in self.find(schema, field, values).await? {
                let v = f.normalise(r.fields.get(field).unwrap_or(&Value::Null));
                existing
                    .entry((field.clone(), v))
                    .or_default()
                    .push(r.key.0);
            }
        }
        Ok(ops
            .iter()
            .map(|op| match op {
                WriteOp::Create {
                    natural_key,
                    fields,
                    ..
                } => {
                    let properties = properties_of(fields);
                    match natural_key {
                        Some(nk) if Some(nk.field.as_str()) == self.id_property.as_deref() => {
                            let f = schema.field(&nk.field);
                            let id = match f.map(|f| f.normalise(&nk.value)) {
                                Some(Value::String(s)) if !s.is_empty() => s,
                                _ => {
                                    return Err(WriteOutcome::Failed(RecordError::invalid(
                                        format!("the natural key {} is empty", nk.field),
                                        Some(&nk.field),
                                    )));
                                }
                            };
                            Ok(Planned::Upsert { id, properties })
                        }
                        Some(nk) => {
                            let v = schema
                                .field(&nk.field)
                                .map_or_else(|| nk.value.clone(), |f| f.normalise(&nk.value));
                            match existing.get(&(nk.field.clone(), v)).map(Vec::as_slice) {
                                Some([one]) => Ok(Planned::Update {
                                    id: one.clone(),
                                    properties,
                                }),
                                Some(many) if many.len() > 1 => {
                                    Err(WriteOutcome::Failed(RecordError::invalid(
                                        format!(
                                            "{} records have this {}; refusing to pick one",
                                            many.len(),
                                            nk.field
                                        ),
                                        Some(&nk.field),
                                    )))
                                }
                                _ => Ok(Planned::Create { properties }),
                            }
                        }
                        None => Ok(Planned::Create { properties }),
                    }
                }
                WriteOp::Update { key, fields, .. } => Ok(Planned::Update {
                    id: key.0.clone(),
                    properties: properties_of(fields),
                }),
                WriteOp::Delete { key } | WriteOp::Archive { key } => {
                    Ok(Planned::Archive { id: key.0.clone() })
                }
            })
            .collect())
    }

    /// Sends one batch call for the ops at `idx` (all of one kind) and fills `out`.
    async fn send_group(
        &self,
        op: &str,
        idx: &[usize],
        planned: &[Result<Planned, WriteOutcome>],
        out: &mut [Option<WriteOutcome>],
    ) -> Result<(), ConnectorError> {
        let inputs: Vec<Value> = idx
            .iter()
            .map(|&i| {
                let trace = i.to_string();
                match &planned[i] {
                    Ok(Planned::Upsert { id, properties }) => json!({
                        "id": id, "idProperty": self.id_property, "properties": properties,
                        "objectWriteTraceId": trace,
                    }),
                    Ok(Planned::Create { properties }) => {
                        json!({"properties": properties, "objectWriteTraceId": trace})
                    }
                    Ok(Planned::Update { id, properties }) => {
                        json!({"id": id, "properties": properties, "objectWriteTraceId": trace})
                    }
                    Ok(Planned::Archive { id }) => json!({"id": id}),
                    Err(_) => Value::Null,
                }
            })
            .collect();
        let mut req =
            Request::post(self.path(&format!("batch/{op}"))).json(json!({"inputs": inputs}));
        // batch/create is the one call a resend could duplicate.
        req = if op == "create" {
            req.unsafe_to_retry()
        } else {
            req.retry_safe()
        };
        let resp = self.send(req).await?;
        let status = resp.status.as_u16();
        if op == "archive" && (200..300).contains(&status) {
            for &i in idx {
                if let Ok(Planned::Archive { id }) = &planned[i] {
                    out[i] = Some(WriteOutcome::Applied {
                        key: RecordKey(id.clone()),
                        created: false,
                        stored: None,
                    });
                }
            }
            return Ok(());
        }
        if !(200..300).contains(&status) {
            let body: Value = resp.json().unwrap_or(Value::Null);
            let category = body["category"].as_str().unwrap_or("ERROR").to_owned();
            let message = body["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
            if idx.len() > 1 && (400..500).contains(&status) {
                // The whole batch was refused for one record's sake: replay one by one.
                for &i in idx {
                    Box::pin(self.send_group(op, &[i], planned, out)).await?;
                }
                return Ok(());
            }
            for &i in idx {
                out[i] = Some(WriteOutcome::Failed(
                    RecordError::invalid(message.clone(), None).with_code(category.clone()),
                ));
            }
            return Ok(());
        }
        let body: Value = resp
            .json()
            .map_err(|e| ConnectorError::failed(KIND, format!("unreadable answer: {e}")))?;
        let by_trace: HashMap<String, usize> = idx.iter().map(|&i| (i.to_string(), i)).collect();
        for r in body["results"].as_array().into_iter().flatten() {
            let i = r["objectWriteTraceId"]
                .as_str()
                .and_then(|t| by_trace.get(t).copied())
                .or_else(|| {
                    // Fall back to the id (updates) or the unique value (upserts).
                    let id = r["id"].as_str()?;
                    idx.iter().copied().find(|&i| match &planned[i] {
                        Ok(Planned::Update { id: want, .. }) => want == id,
                        Ok(Planned::Upsert { id: want, .. }) => self
                            .id_property
                            .as_deref()
                            .and_then(|p| r["properties"][p].as_str())
                            .is_some_and(|v| v == want),
                        _ => false,
                    })
                });
            let (Some(i), Some(stored)) = (i, self.record_of(r)) else {
                continue;
            };
            let created = match &planned[i] {
                Ok(Planned::Create { .. }) => true,
                Ok(Planned::Upsert { .. }) => r["new"].as_bool().unwrap_or(false),
                _ => false,
            };
            out[i] = Some(WriteOutcome::Applied {
                key: stored.key.clone(),
                created,
                stored: Some(stored),
            });
        }
        for e in body["errors"].as_array().into_iter().flatten() {
            let category = e["category"].as_str().unwrap_or("ERROR");
            let message = e["message"].as_str().unwrap_or("refused").to_owned();
            let traces: Vec<usize> = e["context"]["objectWriteTraceId"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().and_then(|t| by_trace.get(t).copied()))
                .collect();
            let ids: Vec<&str> = e["context"]["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let hit: Vec<usize> = if traces.is_empty() {
                idx.iter()
                    .copied()
                    .filter(|&i| match &planned[i] {
                        Ok(Planned::Update { id, .. } | Planned::Upsert { id, .. }) => {
                            ids.contains(&id.as_str())
                        }
                        _ => false,
                    })
                    .collect()
            } else {
                traces
            };
            for i in hit {
                if out[i].is_some() {
                    continue;
                }
                out[i] = Some(if category == "OBJECT_NOT_FOUND" {
                    WriteOutcome::NotFound {
                        key: match &planned[i] {
                            Ok(Planned::Update { id, .. }) => RecordKey(id.clone()),
                            _ => RecordKey(String::new()),
                        },
                    }
                } else {
                    let field = message
                        .split('"')
                        .nth(1)
                        .filter(|f| self.properties.iter().any(|p| p == f))
                        .map(str::to_owned);
                    WriteOutcome::Failed(RecordError {
                        class: ErrorClass::Config,
                        message: message.clone(),
                        field,
                        code: Some(category.to_owned()),
                    })
                });
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for HubSpot {
    async fn write(
        &self,
        schema: &ObjectSchema,
        ops: &[WriteOp],
        _ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        if ops.len() > MAX_BATCH {
            return Err(ConnectorError::failed(
                KIND,
                format!(
                    "{} ops in one batch; HubSpot takes at most {MAX_BATCH}",
                    ops.len()
                ),
            ));
        }
        let planned = self.plan(schema, ops).await?;
        let mut out: Vec<Option<WriteOutcome>> = vec![None; ops.len()];
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, p) in planned.iter().enumerate() {
            match p {
                Err(o) => out[i] = Some(o.clone()),
                Ok(Planned::Upsert { .. }) => groups.entry("upsert").or_default().push(i),
                Ok(Planned::Create { .. }) => groups.entry("create").or_default().push(i),
                Ok(Planned::Update { .. }) => groups.entry("update").or_default().push(i),
                Ok(Planned::Archive { .. }) => groups.entry("archive").or_default().push(i),
            }
        }
        for (op, idx) in &groups {
            self.send_group(op, idx, &planned, &mut out).await?;
        }
        Ok(out
            .into_iter()
            .zip(&planned)
            .map(|(o, p)| {
                o.unwrap_or_else(|| match p {
                    Ok(Planned::Update { id, .. }) => WriteOutcome::Failed(RecordError::transient(
                        format!("HubSpot returned no outcome for record {id}"),
                    )),
                    _ => WriteOutcome::Failed(RecordError::transient(
                        "HubSpot returned no outcome for this record",
                    )),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_never_admit_more_than_the_published_limit_in_a_window() {
        for limit in [100, 110, 190, 250] {
            let (rate, burst) = bucket_within(limit, Duration::from_secs(10));
            let admitted = f64::from(burst) + rate * 10.0;
            assert!(admitted <= f64::from(limit) + 1e-9, "{limit}: {admitted}");
            assert!(admitted >= f64::from(limit) - 1.0, "{limit}: wastes quota");
        }
        let (rate, burst) = bucket_within(5, Duration::from_secs(1));
        assert!(f64::from(burst) + rate <= 5.0);
    }

    #[test]
    fn base_urls_have_no_path() {
        assert_eq!(
            parse_base_url("HUBSPOT_BASE_URL", "http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        let e = parse_base_url("HUBSPOT_BASE_URL", "https://api.hubapi.com/crm/v3").unwrap_err();
        assert!(e.to_string().contains("no path"), "{e}");
        assert!(parse_base_url("HUBSPOT_BASE_URL", "api.hubapi.com").is_err());
    }

    #[test]
    fn property_values_are_strings_and_null_clears() {
        assert_eq!(property_value(&json!(12.5)), json!("12.5"));
        assert_eq!(property_value(&Value::Null), json!(""));
        assert_eq!(property_value(&json!(true)), json!("true"));
    }
}
