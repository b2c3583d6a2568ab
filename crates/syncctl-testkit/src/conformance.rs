//! The conformance suite every connector must pass (vector's compliance-harness pattern).
//!
//! A connector's test module implements [`Fixture`] for a real instance of its system (a
//! temporary SQLite file, a CSV in a temp dir, a PostgreSQL schema or MySQL database created
//! and dropped by the test) and calls [`run_all`]:
//!
//! ```text
//! #[tokio::test]
//! async fn sqlite_conforms() {
//!     let fixture = SqliteFixture::new();
//!     syncctl_testkit::conformance::run_all(&fixture).await.unwrap();
//! }
//! ```
//!
//! Every case runs against a fresh `people` object with these logical fields; a fixture names
//! them as its system does ([`PeopleFields`]: a SQL table uses the names below, HubSpot
//! contacts `hs_object_id`, `email`, `firstname`, `lastmodifieddate`; QuickBooks customers
//! `Id`, `PrimaryEmailAddr.Address`, `GivenName`, `MetaData.LastUpdatedTime`):
//!
//! | field | type | notes |
//! |---|---|---|
//! | `id` | integer key (generated) — or text for systems without generated keys | the key column |
//! | `email` | text, not null | unique where the system enforces uniqueness |
//! | `name` | text, nullable | |
//! | `age` | integer, nullable | optional: SaaS objects have no such field |
//! | `updated_at` | timestamp | the cursor column, configured as `updated_at_column` |
//!
//! The cases check the contract written in `syncctl_core::connector`: paging without gaps
//! (and without repeats where the schema promises [`PageOrder::Keyset`]; with
//! [`PageOrder::MayRepeat`] repeats are allowed, as the engine drops them), also across equal
//! timestamps, inclusive incremental reads ordered by cursor, read-back by keys, natural-key
//! lookups, creates with generated keys, idempotent natural-key creates, values read back as
//! the schema's [`Normalisation`](syncctl_core::Normalisation) says, partial updates that bump
//! the cursor, deletes (or archives) and `NotFound`, one outcome per op in order, that one bad
//! record does not lose the rest of its batch, and stale writes detected through
//! `expected_updated_at` or `expected_version`. Which of these apply is read from the schema's
//! [`Capabilities`](syncctl_core::Capabilities), never assumed: a SaaS object that archives
//! instead of deleting, or versions its records instead of comparing the cursor, runs the
//! cases that fit it.
//!
//! Rows are seeded behind the connector's back with a given modified time
//! ([`Fixture::insert`]): a SQL fixture inserts them, a SaaS fixture seeds its stateful fake
//! (`HubSpotFake::seed_at`, `QuickBooksFake::insert` with `MetaData.LastUpdatedTime`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use syncctl_core::{
    Connector, NaturalKey, ObjectSchema, PageOrder, ReadRequest, Record, RecordKey, WriteContext,
    WriteOp, WriteOutcome,
};
use syncctl_validate::same_value;

/// A row the fixture inserts behind the connector's back (as another application would).
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Email (unique).
    pub email: String,
    /// Name.
    pub name: Option<String>,
    /// Age.
    pub age: Option<i64>,
    /// The cursor column's value.
    pub updated_at: DateTime<Utc>,
}

impl Person {
    /// A person with a name derived from the email and no age.
    #[must_use]
    pub fn new(email: &str, updated_at: DateTime<Utc>) -> Self {
        Self {
            email: email.to_owned(),
            name: Some(format!("name of {email}")),
            age: None,
            updated_at,
        }
    }
}

/// What the suite's logical fields are called in the connector's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeopleFields {
    /// The key field (`id`).
    pub key: String,
    /// The email field.
    pub email: String,
    /// The name field.
    pub name: String,
    /// The integer `age` field, when the object has one.
    pub age: Option<String>,
    /// The cursor field (`updated_at`).
    pub updated_at: String,
}

impl PeopleFields {
    /// The names of a SQL table or CSV file made for the suite: `id`, `email`, `name`, `age`,
    /// `updated_at`.
    #[must_use]
    pub fn sql() -> Self {
        Self {
            key: "id".into(),
            email: "email".into(),
            name: "name".into(),
            age: Some("age".into()),
            updated_at: "updated_at".into(),
        }
    }
}

impl Default for PeopleFields {
    fn default() -> Self {
        Self::sql()
    }
}

/// A real instance of a connector's system, prepared for the suite.
#[async_trait::async_trait]
pub trait Fixture: Send + Sync {
    /// Creates a fresh, empty `people` object (dropping any earlier one) and returns a
    /// connector configured for it with `updated_at_column: updated_at`.
    async fn fresh(&self) -> Box<dyn Connector>;

    /// Inserts rows directly (not through the connector), each with its `updated_at` as the
    /// record's modified time; returns their keys in order.
    async fn insert(&self, rows: &[Person]) -> Vec<RecordKey>;

    /// A value of `age` the system refuses outright (a text in an integer column), if it
    /// refuses any; CSV files accept anything.
    fn refused_age(&self) -> Option<Value>;

    /// Whether the system rejects a second row with the same `email`.
    fn enforces_unique_email(&self) -> bool;

    /// What the fields are called; the SQL names unless the fixture says otherwise.
    fn fields(&self) -> PeopleFields {
        PeopleFields::sql()
    }

    /// The earliest modified time the cases seed. A fixed day in 2021 unless the system's
    /// incremental reads only reach back a while (QuickBooks CDC: 30 days), whose fixture
    /// gives a recent time (whole seconds: QuickBooks stores no milliseconds).
    fn epoch(&self) -> DateTime<Utc> {
        t0()
    }

    /// Whether deleting a record that is already gone is reported `NotFound`. HubSpot's
    /// `batch/archive` answers 204 "regardless of the initial state of the object (active,
    /// already archived, non-existent)", so its connector cannot tell and reports `Applied`.
    fn deletes_report_missing_records(&self) -> bool {
        true
    }

    /// Whether a create with a natural key updates the record that already has it, whatever
    /// its values (an upsert, or a lookup and insert in one transaction). QuickBooks has
    /// neither an upsert nor unique emails: its connector makes an identical replay of a
    /// batch idempotent through the batch `requestid` (Intuit answers a repeated id with the
    /// original response), and the engine finds existing records by natural key when it
    /// pairs; the suite then checks the identical replay only.
    fn natural_key_creates_upsert(&self) -> bool {
        true
    }

    /// An update of one field the system refuses for that record only, as `(field, value)`:
    /// by default [`Fixture::refused_age`] on the age field; a HubSpot email without `@`.
    fn refused_value(&self) -> Option<(String, Value)> {
        let age = self.fields().age?;
        self.refused_age().map(|v| (age, v))
    }
}

/// Every problem found, one line each.
pub type Failures = Vec<String>;

/// The fakes of a SaaS fixture, one per case: each [`Fixture::fresh`] serves a new one, which
/// [`Fixture::insert`] then seeds. Every server runs as long as the fixture, so a connector
/// built for an earlier case still reaches the fake it was built for.
pub struct FakePerCase<F> {
    current: std::sync::Mutex<Option<F>>,
    servers: std::sync::Mutex<Vec<crate::FakeServer>>,
}

impl<F> Default for FakePerCase<F> {
    fn default() -> Self {
        Self {
            current: std::sync::Mutex::new(None),
            servers: std::sync::Mutex::default(),
        }
    }
}

impl<F: Clone> FakePerCase<F> {
    /// Serves `router` (`fake`'s) for the new case and returns its base URL.
    pub async fn serve(&self, fake: F, router: axum::Router) -> String {
        let server = crate::FakeServer::start(router).await;
        let url = server.url();
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fake);
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(server);
        url
    }

    /// The current case's fake, if a case has started.
    #[must_use]
    pub fn current(&self) -> Option<F> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Runs every case against fresh objects; returns all failures at once.
///
/// # Errors
/// One line per failed expectation, prefixed with the case name.
pub async fn run_all(fixture: &dyn Fixture) -> Result<(), Failures> {
    let mut failures = Vec::new();
    macro_rules! case {
        ($name:ident) => {
            let c = fixture.fresh().await;
            if let Err(msgs) = $name(fixture, c.as_ref()).await {
                failures.extend(
                    msgs.into_iter()
                        .map(|m| format!("{}: {m}", stringify!($name))),
                );
            }
        };
    }
    case!(describe_reports_the_people_object);
    case!(full_scan_pages_without_gaps_or_repeats);
    case!(incremental_reads_are_inclusive_and_ordered);
    case!(equal_timestamps_do_not_break_paging);
    case!(read_keys_skips_missing_keys);
    case!(lookup_matches_by_field);
    case!(creates_assign_keys_and_round_trip_values);
    case!(natural_key_creates_are_idempotent);
    case!(updates_are_partial_and_bump_the_cursor);
    case!(deletes_and_missing_records);
    case!(values_read_back_as_the_schema_normalises);
    case!(one_bad_record_does_not_lose_the_batch);
    case!(conditional_updates_detect_stale_records);
    case!(versioned_updates_detect_stale_versions);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 3, 4, 5, 6, 7)
        .single()
        .unwrap_or_default()
}

fn ctx() -> WriteContext {
    WriteContext::new("conformance", "00000000-0000-0000-0000-000000000000")
}

fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

struct Check(Failures);

impl Check {
    fn new() -> Self {
        Self(Vec::new())
    }
    fn that(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }
    fn done(self) -> Result<(), Failures> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

async fn schema_of(c: &dyn Connector) -> Result<ObjectSchema, Failures> {
    c.describe()
        .await
        .map_err(|e| vec![format!("describe failed: {e}")])
}

async fn scan(
    c: &dyn Connector,
    s: &ObjectSchema,
    since: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<(Vec<Record>, Vec<usize>), Failures> {
    let src = c.source().ok_or_else(|| vec!["no source".to_owned()])?;
    let mut req = ReadRequest {
        since,
        after: None,
        limit,
        keys_only: false,
    };
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..100 {
        let page = src
            .read_page(s, &req)
            .await
            .map_err(|e| vec![format!("read_page failed: {e}")])?;
        sizes.push(page.records.len());
        out.extend(page.records);
        match page.next {
            Some(t) => req.after = Some(t),
            None => return Ok((out, sizes)),
        }
    }
    Err(vec!["more than 100 pages: paging never ends".to_owned()])
}

async fn write(
    c: &dyn Connector,
    s: &ObjectSchema,
    ops: &[WriteOp],
) -> Result<Vec<WriteOutcome>, Failures> {
    let sink = c.sink().ok_or_else(|| vec!["no sink".to_owned()])?;
    let out = sink
        .write(s, ops, &ctx())
        .await
        .map_err(|e| vec![format!("write failed as a whole: {e}")])?;
    if out.len() == ops.len() {
        Ok(out)
    } else {
        Err(vec![format!(
            "{} ops gave {} outcomes; there must be one per op",
            ops.len(),
            out.len()
        )])
    }
}

async fn read_keys(
    c: &dyn Connector,
    s: &ObjectSchema,
    keys: &[RecordKey],
) -> Result<BTreeMap<RecordKey, Record>, Failures> {
    let src = c.source().ok_or_else(|| vec!["no source".to_owned()])?;
    let recs = src
        .read_keys(s, keys)
        .await
        .map_err(|e| vec![format!("read_keys failed: {e}")])?;
    Ok(recs.into_iter().map(|r| (r.key.clone(), r)).collect())
}

fn field<'a>(r: &'a Record, name: &str) -> &'a Value {
    r.fields.get(name).unwrap_or(&Value::Null)
}

fn applied_key(o: &WriteOutcome) -> Option<(RecordKey, bool)> {
    match o {
        WriteOutcome::Applied { key, created, .. } => Some((key.clone(), *created)),
        _ => None,
    }
}

/// Whether the schema promises that a scan returns every record once.
fn keyset(s: &ObjectSchema) -> bool {
    s.capabilities.page_order == PageOrder::Keyset
}

fn people(n: usize, start: DateTime<Utc>, step: Duration) -> Vec<Person> {
    (0..n)
        .map(|i| {
            let factor = i32::try_from(i).unwrap_or(0);
            Person::new(&format!("p{i}@example.com"), start + step * factor)
        })
        .collect()
}

async fn describe_reports_the_people_object(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    let names = f.fields();
    let mut ck = Check::new();
    ck.that(s.key == names.key, || {
        format!("key is {:?}, want {:?}", s.key, names.key)
    });
    ck.that(
        s.updated_at.as_deref() == Some(names.updated_at.as_str()),
        || {
            format!(
                "updated_at is {:?}, want {:?}",
                s.updated_at, names.updated_at
            )
        },
    );
    for name in [&names.key, &names.email, &names.name, &names.updated_at]
        .into_iter()
        .chain(names.age.as_ref())
    {
        ck.that(s.field(name).is_some(), || format!("field {name} missing"));
    }
    ck.that(s.max_batch >= 1, || "max_batch is 0".to_owned());
    let caps = s.capabilities;
    ck.that(
        caps.create && caps.update && (caps.delete || caps.archive),
        || format!("create, update and delete or archive not all supported: {caps:?}"),
    );
    ck.that(caps.incremental == s.updated_at.is_some(), || {
        format!(
            "incremental is {} but the cursor field is {:?}",
            caps.incremental, s.updated_at
        )
    });
    ck.that(!(caps.conditional_update && caps.versioned), || {
        "conditional_update and versioned are two ways to say the same: pick one".into()
    });
    ck.that(c.source().is_some() && c.sink().is_some(), || {
        "connector must be both source and sink".into()
    });
    ck.that(!c.endpoint().contains('@'), || {
        format!("endpoint {:?} may contain credentials", c.endpoint())
    });
    ck.done()
}

async fn full_scan_pages_without_gaps_or_repeats(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let names = f.fields();
    let keys = f.insert(&people(7, f.epoch(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    let (recs, sizes) = scan(c, &s, None, 3).await?;
    let mut ck = Check::new();
    ck.that(sizes.iter().all(|n| *n <= 3), || {
        format!("page sizes {sizes:?} exceed the limit 3")
    });
    let got: Vec<_> = recs.iter().map(|r| r.key.clone()).collect();
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    if keyset(&s) {
        ck.that(unique.len() == got.len(), || {
            format!("repeated keys in a keyset scan: {got:?}")
        });
    }
    let want: BTreeSet<_> = keys.into_iter().collect();
    ck.that(unique == want, || {
        format!("got keys {unique:?}, want {want:?}")
    });
    let emails: BTreeSet<_> = recs
        .iter()
        .filter_map(|r| field(r, &names.email).as_str().map(str::to_owned))
        .collect();
    ck.that(emails.len() == 7, || format!("emails read: {emails:?}"));
    ck.that(
        recs.iter()
            .all(|r| r.fields.contains_key(&names.key) && !r.deleted),
        || "records must carry every field, including the key".into(),
    );
    ck.done()
}

async fn incremental_reads_are_inclusive_and_ordered(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    if !s.capabilities.incremental {
        return Ok(());
    }
    // Inserted out of cursor order so that key order and cursor order differ.
    let mut rows = people(6, f.epoch(), Duration::minutes(1));
    rows.reverse();
    let keys = f.insert(&rows).await;
    let since = f.epoch() + Duration::minutes(3);
    let (recs, _) = scan(c, &s, Some(since), 2).await?;
    let mut ck = Check::new();
    let got: BTreeSet<_> = recs.iter().map(|r| r.key.clone()).collect();
    // rows reversed: index 0..=2 hold minutes 5, 4, 3.
    let want: BTreeSet<_> = keys[..3].iter().cloned().collect();
    ck.that(got == want && (recs.len() == 3 || !keyset(&s)), || {
        format!(
            "since t+3m returned {got:?} ({} records), want {want:?}",
            recs.len()
        )
    });
    let times: Vec<_> = recs.iter().map(|r| r.updated_at).collect();
    ck.that(times.windows(2).all(|w| w[0] <= w[1]), || {
        format!("not ordered by cursor: {times:?}")
    });
    ck.that(times.first().copied().flatten() == Some(since), || {
        format!(
            "first record's updated_at {:?} should equal the boundary {since}",
            times.first()
        )
    });
    ck.done()
}

async fn equal_timestamps_do_not_break_paging(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    if !s.capabilities.incremental {
        return Ok(());
    }
    let keys = f.insert(&people(5, f.epoch(), Duration::zero())).await;
    let (recs, _) = scan(c, &s, Some(f.epoch()), 2).await?;
    let got: Vec<_> = recs.iter().map(|r| r.key.clone()).collect();
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    let want: BTreeSet<_> = keys.into_iter().collect();
    let mut ck = Check::new();
    ck.that((got.len() == 5 || !keyset(&s)) && unique == want, || {
        format!("five rows with one timestamp, pages of 2: got {got:?}")
    });
    ck.done()
}

async fn read_keys_skips_missing_keys(f: &dyn Fixture, c: &dyn Connector) -> Result<(), Failures> {
    let keys = f.insert(&people(3, f.epoch(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    let asked = [
        keys[0].clone(),
        keys[2].clone(),
        RecordKey::from("987654321"),
        RecordKey::from("not-a-key"),
    ];
    let got = read_keys(c, &s, &asked).await?;
    let mut ck = Check::new();
    let got_keys: BTreeSet<_> = got.keys().cloned().collect();
    let want: BTreeSet<_> = [keys[0].clone(), keys[2].clone()].into_iter().collect();
    ck.that(got_keys == want, || {
        format!("got {got_keys:?}, want {want:?}")
    });
    let none = read_keys(c, &s, &[]).await?;
    ck.that(none.is_empty(), || "no keys should read nothing".into());
    ck.done()
}

async fn lookup_matches_by_field(f: &dyn Fixture, c: &dyn Connector) -> Result<(), Failures> {
    let keys = f.insert(&people(3, f.epoch(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    let src = c.source().ok_or_else(|| vec!["no source".to_owned()])?;
    let got = src
        .lookup(
            &s,
            &f.fields().email,
            &[json!("p1@example.com"), json!("nobody@example.com")],
        )
        .await
        .map_err(|e| vec![format!("lookup failed: {e}")])?;
    let mut ck = Check::new();
    ck.that(got.len() == 1 && got[0].key == keys[1], || {
        format!("lookup p1 returned {got:?}")
    });
    ck.done()
}

async fn creates_assign_keys_and_round_trip_values(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let names = f.fields();
    let s = schema_of(c).await?;
    let before = Utc::now() - Duration::minutes(10);
    let person = |email: &str, name: &str, age: Value| {
        let mut v = fields(&[
            (names.email.as_str(), json!(email)),
            (names.name.as_str(), json!(name)),
        ]);
        if let Some(a) = &names.age {
            v.insert(a.clone(), age);
        }
        v
    };
    let ops = [
        WriteOp::Create {
            token: "t-1".into(),
            natural_key: None,
            fields: person("a@example.com", "Ann", json!(42)),
        },
        WriteOp::Create {
            token: "t-2".into(),
            natural_key: None,
            fields: person("b@example.com", "Zoë ✓ \"quoted\", comma", json!("37")),
        },
    ];
    let out = write(c, &s, &ops).await?;
    let mut ck = Check::new();
    let keys: Vec<_> = out.iter().filter_map(applied_key).collect();
    ck.that(
        keys.len() == 2 && keys.iter().all(|(_, created)| *created),
        || format!("creates gave {out:?}"),
    );
    ck.that(
        keys.len() == 2 && keys[0].0 != keys[1].0 && !keys[0].0.as_str().is_empty(),
        || format!("keys must be distinct and non-empty: {keys:?}"),
    );
    let ks: Vec<_> = keys.iter().map(|(k, _)| k.clone()).collect();
    let got = read_keys(c, &s, &ks).await?;
    for ((k, _), op) in keys.iter().zip(&ops) {
        let WriteOp::Create { fields, .. } = op else {
            continue;
        };
        match got.get(k) {
            None => ck.that(false, || format!("created record {k} not readable by key")),
            Some(r) => {
                for (name, want) in fields {
                    let have = field(r, name);
                    ck.that(same_value(have, want), || {
                        format!("{k}.{name}: stored {have}, written {want}")
                    });
                }
                ck.that(r.updated_at.is_some_and(|t| t >= before), || {
                    format!(
                        "{k}: updated_at {:?} not set to now on create",
                        r.updated_at
                    )
                });
            }
        }
    }
    ck.done()
}

async fn natural_key_creates_are_idempotent(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let names = f.fields();
    let s = schema_of(c).await?;
    let create = |name: &str| WriteOp::Create {
        token: "same-token".into(),
        natural_key: Some(NaturalKey {
            field: names.email.clone(),
            value: json!("nk@example.com"),
        }),
        fields: fields(&[
            (names.email.as_str(), json!("nk@example.com")),
            (names.name.as_str(), json!(name)),
        ]),
    };
    let upsert = f.natural_key_creates_upsert();
    let replayed = if upsert { "Second" } else { "First" };
    let first = write(c, &s, &[create("First")]).await?;
    let second = write(c, &s, &[create(replayed)]).await?;
    let mut ck = Check::new();
    let a = first.first().and_then(applied_key);
    let b = second.first().and_then(applied_key);
    ck.that(a.as_ref().is_some_and(|(_, c)| *c), || {
        format!("first create: {first:?}")
    });
    // An identical replay answered from the request id may still say `created`.
    ck.that(
        matches!((&a, &b), (Some((ka, _)), Some((kb, created))) if ka == kb && (!created || !upsert)),
        || format!("replayed create must update the same record: {first:?} then {second:?}"),
    );
    let src = c.source().ok_or_else(|| vec!["no source".to_owned()])?;
    let found = src
        .lookup(&s, &names.email, &[json!("nk@example.com")])
        .await
        .map_err(|e| vec![format!("lookup failed: {e}")])?;
    ck.that(found.len() == 1, || {
        format!("{} records with the natural key, want 1", found.len())
    });
    ck.that(
        found
            .first()
            .is_some_and(|r| same_value(field(r, &names.name), &json!(replayed))),
        || format!("replay must apply the new values: {found:?}"),
    );
    ck.done()
}

/// An email in a form a normalising system rewrites: read back, it must equal what was
/// written under the schema's normalisation of the field, and exactly when the schema
/// declares none (a system that rewrites values must say so, or change detection flips them
/// back and forth).
async fn values_read_back_as_the_schema_normalises(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let names = f.fields();
    let s = schema_of(c).await?;
    let Some(email) = s.field(&names.email).cloned() else {
        return Err(vec![format!("field {} missing", names.email)]);
    };
    let written = json!("Mixed.Case@Example.com");
    let out = write(
        c,
        &s,
        &[WriteOp::Create {
            token: "norm".into(),
            natural_key: None,
            fields: fields(&[
                (names.email.as_str(), written.clone()),
                (names.name.as_str(), json!("Norm")),
            ]),
        }],
    )
    .await?;
    let mut ck = Check::new();
    let Some((key, _)) = out.first().and_then(applied_key) else {
        return Err(vec![format!("create gave {out:?}")]);
    };
    let got = read_keys(c, &s, std::slice::from_ref(&key)).await?;
    let stored = got.get(&key).map(|r| field(r, &names.email).clone());
    ck.that(
        stored
            .as_ref()
            .is_some_and(|v| email.normalise(v) == email.normalise(&written)),
        || {
            format!(
                "wrote {written}, read back {stored:?}, normalisation {:?}",
                email.normalisation
            )
        },
    );
    if email.normalisation.is_empty() {
        ck.that(stored.as_ref() == Some(&written), || {
            format!(
                "wrote {written}, read back {stored:?}, and the schema declares no normalisation"
            )
        });
    }
    ck.done()
}

async fn updates_are_partial_and_bump_the_cursor(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let names = f.fields();
    let mut p = Person::new("u@example.com", f.epoch());
    p.age = Some(30);
    let keys = f.insert(&[p]).await;
    let s = schema_of(c).await?;
    let out = write(
        c,
        &s,
        &[WriteOp::Update {
            key: keys[0].clone(),
            fields: fields(&[(names.name.as_str(), json!("Renamed"))]),
            expected_updated_at: None,
            expected_version: None,
        }],
    )
    .await?;
    let mut ck = Check::new();
    ck.that(
        matches!(out.first(), Some(WriteOutcome::Applied { created: false, key, .. }) if *key == keys[0]),
        || format!("update gave {out:?}"),
    );
    let got = read_keys(c, &s, &keys).await?;
    match got.get(&keys[0]) {
        None => ck.that(false, || "updated record vanished".into()),
        Some(r) => {
            ck.that(same_value(field(r, &names.name), &json!("Renamed")), || {
                format!("name is {}", field(r, &names.name))
            });
            if let Some(age) = &names.age {
                ck.that(same_value(field(r, age), &json!(30)), || {
                    format!(
                        "age changed to {} by an update that did not set it",
                        field(r, age)
                    )
                });
            }
            ck.that(
                same_value(field(r, &names.email), &json!("u@example.com")),
                || "email changed".into(),
            );
            ck.that(r.updated_at.is_some_and(|t| t > f.epoch()), || {
                format!("updated_at {:?} not bumped by the update", r.updated_at)
            });
        }
    }
    ck.done()
}

async fn deletes_and_missing_records(f: &dyn Fixture, c: &dyn Connector) -> Result<(), Failures> {
    let names = f.fields();
    let keys = f.insert(&people(2, f.epoch(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    // A hard delete where the object has one, else an archive (QuickBooks name lists).
    let remove = if s.capabilities.delete {
        WriteOp::Delete {
            key: keys[0].clone(),
        }
    } else if s.capabilities.archive {
        WriteOp::Archive {
            key: keys[0].clone(),
        }
    } else {
        return Err(vec!["neither delete nor archive is supported".into()]);
    };
    let first = write(c, &s, std::slice::from_ref(&remove)).await?;
    let mut ck = Check::new();
    ck.that(
        matches!(first.first(), Some(WriteOutcome::Applied { .. })),
        || format!("{} gave {first:?}", remove.kind()),
    );
    if s.capabilities.delete {
        let again = write(
            c,
            &s,
            &[
                remove,
                WriteOp::Update {
                    key: keys[0].clone(),
                    fields: fields(&[(names.name.as_str(), json!("x"))]),
                    expected_updated_at: None,
                    expected_version: None,
                },
            ],
        )
        .await?;
        let repeat_ok = |o: &WriteOutcome| match o {
            WriteOutcome::NotFound { key } => *key == keys[0],
            WriteOutcome::Applied { key, .. } => {
                *key == keys[0] && !f.deletes_report_missing_records()
            }
            _ => false,
        };
        ck.that(
            repeat_ok(&again[0])
                && matches!(&again[1], WriteOutcome::NotFound { key } if *key == keys[0]),
            || format!("delete and update of a deleted record must be NotFound: {again:?}"),
        );
    }
    // An archived record may still be read by key, but only marked deleted.
    let got = read_keys(c, &s, &keys).await?;
    ck.that(
        got.get(&keys[0])
            .is_none_or(|r| r.deleted && s.capabilities.archive)
            && got.get(&keys[1]).is_some_and(|r| !r.deleted),
        || {
            format!(
                "after {}, read {got:?}",
                if s.capabilities.delete {
                    "delete"
                } else {
                    "archive"
                }
            )
        },
    );
    ck.done()
}

async fn one_bad_record_does_not_lose_the_batch(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let names = f.fields();
    let seeded = people(2, f.epoch(), Duration::minutes(1));
    let keys = f.insert(&seeded).await;
    let s = schema_of(c).await?;
    let mut ops = vec![
        WriteOp::Update {
            key: keys[0].clone(),
            fields: fields(&[(names.name.as_str(), json!("ok-1"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Update {
            key: RecordKey::from("987654321"),
            fields: fields(&[(names.name.as_str(), json!("ghost"))]),
            expected_updated_at: None,
            expected_version: None,
        },
    ];
    let mut expect_failed = Vec::new();
    let refused = f.refused_value();
    if let Some((bad_field, bad)) = &refused {
        expect_failed.push(ops.len());
        ops.push(WriteOp::Update {
            key: keys[1].clone(),
            fields: fields(&[(bad_field.as_str(), bad.clone())]),
            expected_updated_at: None,
            expected_version: None,
        });
    }
    if f.enforces_unique_email() {
        expect_failed.push(ops.len());
        ops.push(WriteOp::Create {
            token: "dup".into(),
            natural_key: None,
            fields: fields(&[(names.email.as_str(), json!("p0@example.com"))]),
        });
    }
    let created_at = ops.len();
    ops.push(WriteOp::Create {
        token: "new".into(),
        natural_key: None,
        fields: fields(&[
            (names.email.as_str(), json!("new@example.com")),
            (names.name.as_str(), json!("New")),
        ]),
    });
    ops.push(WriteOp::Update {
        key: keys[1].clone(),
        fields: fields(&[(names.name.as_str(), json!("ok-2"))]),
        expected_updated_at: None,
        expected_version: None,
    });
    let out = write(c, &s, &ops).await?;
    let mut ck = Check::new();
    ck.that(matches!(out[0], WriteOutcome::Applied { .. }), || {
        format!("op 0: {:?}", out[0])
    });
    ck.that(matches!(out[1], WriteOutcome::NotFound { .. }), || {
        format!("op 1 (missing key): {:?}", out[1])
    });
    for i in &expect_failed {
        ck.that(matches!(out[*i], WriteOutcome::Failed(_)), || {
            format!("op {i} should fail alone: {:?}", out[*i])
        });
    }
    let new_key = applied_key(&out[created_at]);
    ck.that(new_key.as_ref().is_some_and(|(_, c)| *c), || {
        format!("create after a failure: {:?}", out[created_at])
    });
    ck.that(
        matches!(out[created_at + 1], WriteOutcome::Applied { .. }),
        || format!("last update: {:?}", out[created_at + 1]),
    );
    let mut want = keys.clone();
    want.extend(new_key.map(|(k, _)| k));
    let got = read_keys(c, &s, &want).await?;
    let name = |k: &RecordKey| got.get(k).map(|r| field(r, &names.name).clone());
    ck.that(name(&keys[0]) == Some(json!("ok-1")), || {
        format!("first update lost: {:?}", name(&keys[0]))
    });
    ck.that(name(&keys[1]) == Some(json!("ok-2")), || {
        format!("update after the failure lost: {:?}", name(&keys[1]))
    });
    ck.that(got.len() == want.len(), || {
        format!(
            "records after the batch: {:?}",
            got.keys().collect::<Vec<_>>()
        )
    });
    if let Some((bad_field, _)) = &refused {
        // The refused field keeps the value it was seeded with.
        let seeded_value = if Some(bad_field) == names.age.as_ref() {
            seeded[1].age.map_or(Value::Null, |a| json!(a))
        } else if *bad_field == names.email {
            json!(seeded[1].email)
        } else {
            json!("ok-2")
        };
        ck.that(
            got.get(&keys[1])
                .is_some_and(|r| same_value(field(r, bad_field), &seeded_value)),
            || format!("the refused value was stored: {:?}", got.get(&keys[1])),
        );
    }
    ck.done()
}

async fn conditional_updates_detect_stale_records(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    if !s.capabilities.conditional_update {
        return Ok(());
    }
    let names = f.fields();
    let keys = f.insert(&[Person::new("c@example.com", f.epoch())]).await;
    let update = |expected| WriteOp::Update {
        key: keys[0].clone(),
        fields: fields(&[(names.name.as_str(), json!("cas"))]),
        expected_updated_at: Some(expected),
        expected_version: None,
    };
    let stale = write(c, &s, &[update(f.epoch() - Duration::hours(1))]).await?;
    let fresh = write(c, &s, &[update(f.epoch())]).await?;
    let mut ck = Check::new();
    ck.that(
        matches!(stale.first(), Some(WriteOutcome::Stale { .. })),
        || format!("update with an old expected_updated_at: {stale:?}"),
    );
    ck.that(
        matches!(fresh.first(), Some(WriteOutcome::Applied { .. })),
        || format!("update with the current expected_updated_at: {fresh:?}"),
    );
    ck.done()
}

/// Records carry an opaque version (QuickBooks `SyncToken`): an update made from the
/// current version applies, one made from a version another write has since replaced is
/// `Stale` and changes nothing.
async fn versioned_updates_detect_stale_versions(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    if !s.capabilities.versioned {
        return Ok(());
    }
    let names = f.fields();
    let keys = f.insert(&[Person::new("v@example.com", f.epoch())]).await;
    let read = read_keys(c, &s, &keys).await?;
    let Some(v1) = read.get(&keys[0]).and_then(|r| r.version.clone()) else {
        return Err(vec![format!(
            "a versioned object read without a version: {read:?}"
        )]);
    };
    let update = |name: &str| WriteOp::Update {
        key: keys[0].clone(),
        fields: fields(&[(names.name.as_str(), json!(name))]),
        expected_updated_at: None,
        expected_version: Some(v1.clone()),
    };
    let fresh = write(c, &s, &[update("first")]).await?;
    let stale = write(c, &s, &[update("second")]).await?;
    let mut ck = Check::new();
    ck.that(
        matches!(fresh.first(), Some(WriteOutcome::Applied { .. })),
        || format!("update with the current version: {fresh:?}"),
    );
    ck.that(
        matches!(stale.first(), Some(WriteOutcome::Stale { .. })),
        || format!("update with a replaced version: {stale:?}"),
    );
    let after = read_keys(c, &s, &keys).await?;
    let r = after.get(&keys[0]);
    ck.that(
        r.is_some_and(|r| same_value(field(r, &names.name), &json!("first"))),
        || format!("the stale update changed the record: {r:?}"),
    );
    ck.that(
        r.is_some_and(|r| r.version.is_some() && r.version.as_ref() != Some(&v1)),
        || format!("the version did not move on update: {r:?}"),
    );
    ck.done()
}
