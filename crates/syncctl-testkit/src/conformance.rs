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
//! Every case runs against a fresh `people` object with these fields:
//!
//! | field | type | notes |
//! |---|---|---|
//! | `id` | integer key (generated) — or text for systems without generated keys | the key column |
//! | `email` | text, not null | unique where the system enforces uniqueness |
//! | `name` | text, nullable | |
//! | `age` | integer, nullable | |
//! | `updated_at` | timestamp | the cursor column, configured as `updated_at_column` |
//!
//! The cases check the contract written in `syncctl_core::connector`: keyset paging without
//! gaps or repeats (also across equal timestamps), inclusive incremental reads ordered by
//! cursor, read-back by keys, natural-key lookups, creates with generated keys, idempotent
//! natural-key creates, partial updates that bump the cursor, deletes and `NotFound`, one
//! outcome per op in order, and that one bad record does not lose the rest of its batch.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use syncctl_core::{
    Connector, NaturalKey, ObjectSchema, ReadRequest, Record, RecordKey, WriteContext, WriteOp,
    WriteOutcome,
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

/// A real instance of a connector's system, prepared for the suite.
#[async_trait::async_trait]
pub trait Fixture: Send + Sync {
    /// Creates a fresh, empty `people` object (dropping any earlier one) and returns a
    /// connector configured for it with `updated_at_column: updated_at`.
    async fn fresh(&self) -> Box<dyn Connector>;

    /// Inserts rows directly (not through the connector); returns their keys in order.
    async fn insert(&self, rows: &[Person]) -> Vec<RecordKey>;

    /// A value of `age` the system refuses outright (a text in an integer column), if it
    /// refuses any; CSV files accept anything.
    fn refused_age(&self) -> Option<Value>;

    /// Whether the system rejects a second row with the same `email`.
    fn enforces_unique_email(&self) -> bool;
}

/// Every problem found, one line each.
pub type Failures = Vec<String>;

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
    case!(one_bad_record_does_not_lose_the_batch);
    case!(conditional_updates_detect_stale_records);
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

fn people(n: usize, start: DateTime<Utc>, step: Duration) -> Vec<Person> {
    (0..n)
        .map(|i| {
            let factor = i32::try_from(i).unwrap_or(0);
            Person::new(&format!("p{i}@example.com"), start + step * factor)
        })
        .collect()
}

async fn describe_reports_the_people_object(
    _f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    let mut ck = Check::new();
    ck.that(s.key == "id", || format!("key is {:?}, want \"id\"", s.key));
    ck.that(s.updated_at.as_deref() == Some("updated_at"), || {
        format!("updated_at is {:?}", s.updated_at)
    });
    for name in ["id", "email", "name", "age", "updated_at"] {
        ck.that(s.field(name).is_some(), || format!("field {name} missing"));
    }
    ck.that(s.max_batch >= 1, || "max_batch is 0".to_owned());
    let caps = s.capabilities;
    ck.that(caps.create && caps.update && caps.delete, || {
        format!("create/update/delete not all supported: {caps:?}")
    });
    ck.that(caps.incremental, || {
        "incremental reads not supported".into()
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
    let keys = f.insert(&people(7, t0(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    let (recs, sizes) = scan(c, &s, None, 3).await?;
    let mut ck = Check::new();
    ck.that(sizes.iter().all(|n| *n <= 3), || {
        format!("page sizes {sizes:?} exceed the limit 3")
    });
    let got: Vec<_> = recs.iter().map(|r| r.key.clone()).collect();
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    ck.that(unique.len() == got.len(), || {
        format!("repeated keys: {got:?}")
    });
    let want: BTreeSet<_> = keys.into_iter().collect();
    ck.that(unique == want, || {
        format!("got keys {unique:?}, want {want:?}")
    });
    let emails: BTreeSet<_> = recs
        .iter()
        .filter_map(|r| field(r, "email").as_str().map(str::to_owned))
        .collect();
    ck.that(emails.len() == 7, || format!("emails read: {emails:?}"));
    ck.that(
        recs.iter()
            .all(|r| r.fields.contains_key("id") && !r.deleted),
        || "records must carry every field, including the key".into(),
    );
    ck.done()
}

async fn incremental_reads_are_inclusive_and_ordered(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    // Inserted out of cursor order so that key order and cursor order differ.
    let mut rows = people(6, t0(), Duration::minutes(1));
    rows.reverse();
    let keys = f.insert(&rows).await;
    let s = schema_of(c).await?;
    let since = t0() + Duration::minutes(3);
    let (recs, _) = scan(c, &s, Some(since), 2).await?;
    let mut ck = Check::new();
    let got: BTreeSet<_> = recs.iter().map(|r| r.key.clone()).collect();
    // rows reversed: index 0..=2 hold minutes 5, 4, 3.
    let want: BTreeSet<_> = keys[..3].iter().cloned().collect();
    ck.that(got == want && recs.len() == 3, || {
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
    let keys = f.insert(&people(5, t0(), Duration::zero())).await;
    let s = schema_of(c).await?;
    let (recs, _) = scan(c, &s, Some(t0()), 2).await?;
    let got: Vec<_> = recs.iter().map(|r| r.key.clone()).collect();
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    let want: BTreeSet<_> = keys.into_iter().collect();
    let mut ck = Check::new();
    ck.that(got.len() == 5 && unique == want, || {
        format!("five rows with one timestamp, pages of 2: got {got:?}")
    });
    ck.done()
}

async fn read_keys_skips_missing_keys(f: &dyn Fixture, c: &dyn Connector) -> Result<(), Failures> {
    let keys = f.insert(&people(3, t0(), Duration::minutes(1))).await;
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
    let keys = f.insert(&people(3, t0(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    let src = c.source().ok_or_else(|| vec!["no source".to_owned()])?;
    let got = src
        .lookup(
            &s,
            "email",
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
    _f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    let before = Utc::now() - Duration::minutes(10);
    let ops = [
        WriteOp::Create {
            token: "t-1".into(),
            natural_key: None,
            fields: fields(&[
                ("email", json!("a@example.com")),
                ("name", json!("Ann")),
                ("age", json!(42)),
            ]),
        },
        WriteOp::Create {
            token: "t-2".into(),
            natural_key: None,
            fields: fields(&[
                ("email", json!("b@example.com")),
                ("name", json!("Zoë ✓ \"quoted\", comma")),
                ("age", json!("37")),
            ]),
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
    _f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let s = schema_of(c).await?;
    let create = |name: &str| WriteOp::Create {
        token: "same-token".into(),
        natural_key: Some(NaturalKey {
            field: "email".into(),
            value: json!("nk@example.com"),
        }),
        fields: fields(&[("email", json!("nk@example.com")), ("name", json!(name))]),
    };
    let first = write(c, &s, &[create("First")]).await?;
    let second = write(c, &s, &[create("Second")]).await?;
    let mut ck = Check::new();
    let a = first.first().and_then(applied_key);
    let b = second.first().and_then(applied_key);
    ck.that(a.as_ref().is_some_and(|(_, c)| *c), || {
        format!("first create: {first:?}")
    });
    ck.that(
        matches!((&a, &b), (Some((ka, _)), Some((kb, false))) if ka == kb),
        || format!("replayed create must update the same record: {first:?} then {second:?}"),
    );
    let src = c.source().ok_or_else(|| vec!["no source".to_owned()])?;
    let found = src
        .lookup(&s, "email", &[json!("nk@example.com")])
        .await
        .map_err(|e| vec![format!("lookup failed: {e}")])?;
    ck.that(found.len() == 1, || {
        format!("{} records with the natural key, want 1", found.len())
    });
    ck.that(
        found
            .first()
            .is_some_and(|r| same_value(field(r, "name"), &json!("Second"))),
        || format!("replay must apply the new values: {found:?}"),
    );
    ck.done()
}

async fn updates_are_partial_and_bump_the_cursor(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let mut p = Person::new("u@example.com", t0());
    p.age = Some(30);
    let keys = f.insert(&[p]).await;
    let s = schema_of(c).await?;
    let out = write(
        c,
        &s,
        &[WriteOp::Update {
            key: keys[0].clone(),
            fields: fields(&[("name", json!("Renamed"))]),
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
            ck.that(same_value(field(r, "name"), &json!("Renamed")), || {
                format!("name is {}", field(r, "name"))
            });
            ck.that(same_value(field(r, "age"), &json!(30)), || {
                format!(
                    "age changed to {} by an update that did not set it",
                    field(r, "age")
                )
            });
            ck.that(
                same_value(field(r, "email"), &json!("u@example.com")),
                || "email changed".into(),
            );
            ck.that(r.updated_at.is_some_and(|t| t > t0()), || {
                format!("updated_at {:?} not bumped by the update", r.updated_at)
            });
        }
    }
    ck.done()
}

async fn deletes_and_missing_records(f: &dyn Fixture, c: &dyn Connector) -> Result<(), Failures> {
    let keys = f.insert(&people(2, t0(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    let del = WriteOp::Delete {
        key: keys[0].clone(),
    };
    let first = write(c, &s, std::slice::from_ref(&del)).await?;
    let again = write(
        c,
        &s,
        &[
            del,
            WriteOp::Update {
                key: keys[0].clone(),
                fields: fields(&[("name", json!("x"))]),
                expected_updated_at: None,
                expected_version: None,
            },
        ],
    )
    .await?;
    let mut ck = Check::new();
    ck.that(
        matches!(first.first(), Some(WriteOutcome::Applied { .. })),
        || format!("delete gave {first:?}"),
    );
    ck.that(
        again
            .iter()
            .all(|o| matches!(o, WriteOutcome::NotFound { key } if *key == keys[0])),
        || format!("delete and update of a deleted record must be NotFound: {again:?}"),
    );
    let got = read_keys(c, &s, &keys).await?;
    ck.that(
        !got.contains_key(&keys[0]) && got.contains_key(&keys[1]),
        || format!("after delete, read {:?}", got.keys().collect::<Vec<_>>()),
    );
    ck.done()
}

async fn one_bad_record_does_not_lose_the_batch(
    f: &dyn Fixture,
    c: &dyn Connector,
) -> Result<(), Failures> {
    let keys = f.insert(&people(2, t0(), Duration::minutes(1))).await;
    let s = schema_of(c).await?;
    let mut ops = vec![
        WriteOp::Update {
            key: keys[0].clone(),
            fields: fields(&[("name", json!("ok-1"))]),
            expected_updated_at: None,
            expected_version: None,
        },
        WriteOp::Update {
            key: RecordKey::from("987654321"),
            fields: fields(&[("name", json!("ghost"))]),
            expected_updated_at: None,
            expected_version: None,
        },
    ];
    let mut expect_failed = Vec::new();
    if let Some(bad) = f.refused_age() {
        expect_failed.push(ops.len());
        ops.push(WriteOp::Update {
            key: keys[1].clone(),
            fields: fields(&[("age", bad)]),
            expected_updated_at: None,
            expected_version: None,
        });
    }
    if f.enforces_unique_email() {
        expect_failed.push(ops.len());
        ops.push(WriteOp::Create {
            token: "dup".into(),
            natural_key: None,
            fields: fields(&[("email", json!("p0@example.com"))]),
        });
    }
    let created_at = ops.len();
    ops.push(WriteOp::Create {
        token: "new".into(),
        natural_key: None,
        fields: fields(&[("email", json!("new@example.com")), ("name", json!("New"))]),
    });
    ops.push(WriteOp::Update {
        key: keys[1].clone(),
        fields: fields(&[("name", json!("ok-2"))]),
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
    let name = |k: &RecordKey| got.get(k).map(|r| field(r, "name").clone());
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
    if f.refused_age().is_some() {
        ck.that(
            got.get(&keys[1]).is_some_and(|r| field(r, "age").is_null()),
            || format!("the refused age was stored: {:?}", got.get(&keys[1])),
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
    let keys = f.insert(&[Person::new("c@example.com", t0())]).await;
    let update = |expected| WriteOp::Update {
        key: keys[0].clone(),
        fields: fields(&[("name", json!("cas"))]),
        expected_updated_at: Some(expected),
        expected_version: None,
    };
    let stale = write(c, &s, &[update(t0() - Duration::hours(1))]).await?;
    let fresh = write(c, &s, &[update(t0())]).await?;
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
