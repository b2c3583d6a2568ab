//! What the PostgreSQL and MySQL connector tests share: unique names for their schemas and
//! databases, write ops, and the checks both servers must pass the same way.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use syncctl_core::{
    Classified, Connector, ErrorClass, NaturalKey, ObjectSchema, ReadRequest, Record, RecordKey,
    WriteContext, WriteOp, WriteOutcome,
};

/// A name no other test (or earlier run) uses.
pub(crate) fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Panics with every failure of a conformance run.
pub(crate) fn assert_conforms(result: Result<(), Vec<String>>) {
    if let Err(failures) = result {
        panic!("{}", failures.join("\n"));
    }
}

pub(crate) fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A create of a person with natural key `email`.
pub(crate) fn create(email: &str, extra: &[(&str, Value)]) -> WriteOp {
    let mut f = fields(extra);
    f.insert("email".into(), json!(email));
    WriteOp::Create {
        token: format!("tok-{email}"),
        natural_key: Some(NaturalKey {
            field: "email".into(),
            value: json!(email),
        }),
        fields: f,
    }
}

/// The keys of applied outcomes; panics on any other outcome.
pub(crate) fn applied_keys(out: &[WriteOutcome]) -> Vec<RecordKey> {
    out.iter()
        .map(|o| match o {
            WriteOutcome::Applied { key, .. } => key.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Every record an incremental read since `2024-01-01T00:00:10Z` returns, four per page.
pub(crate) async fn read_since_in_pages_of_4(c: &dyn Connector, s: &ObjectSchema) -> Vec<Record> {
    let mut req = ReadRequest {
        since: Some("2024-01-01T00:00:10Z".parse().unwrap()),
        after: None,
        limit: 4,
        keys_only: false,
    };
    let mut got = Vec::new();
    loop {
        let page = c.source().unwrap().read_page(s, &req).await.unwrap();
        assert!(page.records.len() <= 4);
        got.extend(page.records);
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    got
}

/// Archives key 1 (present) and key 99 (missing) of a two-row table; returns the table read
/// back in key order.
pub(crate) async fn archive_first_of_two(
    c: &dyn Connector,
    s: &ObjectSchema,
    ctx: &WriteContext,
) -> Vec<Record> {
    assert!(s.capabilities.archive);
    let out = c
        .sink()
        .unwrap()
        .write(
            s,
            &[
                WriteOp::Archive {
                    key: RecordKey::from("1"),
                },
                WriteOp::Archive {
                    key: RecordKey::from("99"),
                },
            ],
            ctx,
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[0], WriteOutcome::Applied { stored: Some(r), .. } if r.deleted),
        "{out:?}"
    );
    assert!(matches!(out[1], WriteOutcome::NotFound { .. }), "{out:?}");
    let page = c
        .source()
        .unwrap()
        .read_page(s, &ReadRequest::full(10))
        .await
        .unwrap();
    let deleted: Vec<bool> = page.records.iter().map(|r| r.deleted).collect();
    assert_eq!(deleted, vec![true, false]);
    page.records
}

/// `check` against a closed port: transient, and the password nowhere in the error or the
/// connector's `Debug`.
pub(crate) async fn assert_unreachable<C: Connector + Debug>(
    c: &C,
    password: &str,
    endpoint: &str,
) {
    let e = c.check().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert!(!format!("{e}{e:?}{c:?}").contains(password));
    assert_eq!(c.endpoint(), endpoint);
}

/// Outcomes of 50 plain updates, then one stale, one fresh conditional update and one of a
/// missing record.
pub(crate) fn assert_updated_stale_fresh_missing(out: &[WriteOutcome]) {
    assert!(
        out[..50]
            .iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. })),
        "{out:?}"
    );
    assert!(
        matches!(out[50], WriteOutcome::Stale { .. }),
        "{:?}",
        out[50]
    );
    assert!(
        matches!(out[51], WriteOutcome::Applied { .. }),
        "{:?}",
        out[51]
    );
    assert!(
        matches!(out[52], WriteOutcome::NotFound { .. }),
        "{:?}",
        out[52]
    );
}

/// Outcomes of 50 deletes of existing records, then one of a missing record.
pub(crate) fn assert_deleted_then_missing(out: &[WriteOutcome]) {
    assert!(
        out[..50]
            .iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. }))
    );
    assert!(matches!(out[50], WriteOutcome::NotFound { .. }));
}

/// Every op created a record, and its stored row came back.
pub(crate) fn assert_all_created(out: &[WriteOutcome]) {
    assert!(
        out.iter().all(|o| matches!(
            o,
            WriteOutcome::Applied {
                created: true,
                stored: Some(_),
                ..
            }
        )),
        "{out:?}"
    );
}

/// Creates sent again matched (by natural key) the records they created the first time:
/// updated in place, not created.
pub(crate) fn assert_matched_again(again: &[WriteOutcome], keys: &[RecordKey]) {
    assert!(
        again.iter().zip(keys).all(
            |(o, k)| matches!(o, WriteOutcome::Applied { created: false, key, .. } if key == k)
        ),
        "{again:?}"
    );
}
