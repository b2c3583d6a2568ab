//! The PostgreSQL connector against the real server (SYNCCTL_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432/test): the shared conformance suite on two table shapes,
//! then what only a SQL server shows: the bulk path and its per-record fallback, echo marking,
//! quoted identifiers, type round trips. Every test works in its own schema, dropped at the
//! end. A server that cannot be reached fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use sqlx::PgPool;
use support::{
    applied_keys, archive_first_of_two, assert_all_created, assert_conforms,
    assert_deleted_then_missing, assert_matched_again, assert_unreachable,
    assert_updated_stale_fresh_missing, create, fields, read_since_in_pages_of_4, unique_name,
};
use syncctl_core::{
    BuildContext, Classified, Connector, ErrorClass, NaturalKey, ReadRequest, RecordKey,
    WriteContext, WriteOp, WriteOutcome,
};
use syncctl_sql::postgres::{FACTORY, PgConnector};
use syncctl_sql::settings::SqlSettings;
use syncctl_testkit::conformance::{Fixture, Person, run_all};

fn pg_url() -> String {
    std::env::var("SYNCCTL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema that exists for one test.
struct PgSchema {
    name: String,
    pool: PgPool,
}

impl PgSchema {
    async fn new() -> Self {
        let pool = PgPool::connect(&pg_url()).await.expect(
            "PostgreSQL must be running for the connector tests (SYNCCTL_TEST_PG_URL, scripts/ensure-services.sh)",
        );
        let name = unique_name("syncctl_pg");
        exec(&pool, &format!("CREATE SCHEMA \"{name}\"")).await;
        Self { name, pool }
    }

    async fn exec(&self, sql: &str) {
        let sql = sql
            .replace("$S", &format!("\"{}\"", self.name))
            .replace("$N", &self.name);
        exec(&self.pool, &sql).await;
    }

    async fn connector(&self, settings: Value) -> Box<dyn Connector> {
        let mut s = settings;
        s["connector"] = json!("postgres");
        s["url"] = json!(pg_url());
        if let Some(o) = s["object"].as_str() {
            s["object"] = json!(o.replace("$S", &self.name));
        }
        (FACTORY.build)(BuildContext::new("."), s).await.unwrap()
    }

    async fn drop(self) {
        exec(
            &self.pool,
            &format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name),
        )
        .await;
        self.pool.close().await;
    }
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The conformance `people` table in one of two shapes.
struct PeopleFixture {
    schema: PgSchema,
    /// bigserial key, timestamptz cursor, unique email; else text key without default,
    /// timestamp (no time zone) cursor, email without a unique index.
    serial: bool,
}

#[async_trait::async_trait]
impl Fixture for PeopleFixture {
    async fn fresh(&self) -> Box<dyn Connector> {
        self.schema.exec("DROP TABLE IF EXISTS $S.people").await;
        if self.serial {
            self.schema
                .exec(
                    "CREATE TABLE $S.people (id bigserial PRIMARY KEY, \
                     email varchar(200) NOT NULL UNIQUE, name text, age integer, \
                     updated_at timestamptz DEFAULT now())",
                )
                .await;
        } else {
            self.schema
                .exec(
                    "CREATE TABLE $S.people (id text PRIMARY KEY, email varchar(200) NOT NULL, \
                     name text, age integer, updated_at timestamp)",
                )
                .await;
        }
        self.schema
            .connector(json!({"object": "$S.people", "updated_at_column": "updated_at"}))
            .await
    }

    async fn insert(&self, rows: &[Person]) -> Vec<RecordKey> {
        let mut keys = Vec::new();
        for (i, p) in rows.iter().enumerate() {
            let key: String = if self.serial {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO \"{}\".people (email, name, age, updated_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id::text",
                    self.schema.name
                )))
                .bind(&p.email)
                .bind(&p.name)
                .bind(p.age.map(|a| i32::try_from(a).unwrap()))
                .bind(p.updated_at)
                .fetch_one(&self.schema.pool)
                .await
                .unwrap()
            } else {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO \"{}\".people (id, email, name, age, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    self.schema.name
                )))
                .bind(format!("k{i:03}-{}", p.email))
                .bind(&p.email)
                .bind(&p.name)
                .bind(p.age.map(|a| i32::try_from(a).unwrap()))
                .bind(p.updated_at.naive_utc())
                .fetch_one(&self.schema.pool)
                .await
                .unwrap()
            };
            keys.push(RecordKey(key));
        }
        keys
    }

    fn refused_age(&self) -> Option<Value> {
        Some(json!("not a number"))
    }

    fn enforces_unique_email(&self) -> bool {
        self.serial
    }
}

#[tokio::test]
async fn postgres_passes_the_conformance_suite_with_serial_keys() {
    let f = PeopleFixture {
        schema: PgSchema::new().await,
        serial: true,
    };
    let result = run_all(&f).await;
    f.schema.drop().await;
    assert_conforms(result);
}

#[tokio::test]
async fn postgres_passes_the_conformance_suite_with_text_keys_and_local_timestamps() {
    let f = PeopleFixture {
        schema: PgSchema::new().await,
        serial: false,
    };
    let result = run_all(&f).await;
    f.schema.drop().await;
    assert_conforms(result);
}

fn ctx() -> WriteContext {
    WriteContext::new("pg-test", "00000000-0000-0000-0000-000000000001")
}

/// A concrete connector (for its statement counters) on `$S.people`.
async fn pg_connector(schema: &PgSchema, object: &str, extra: Value) -> PgConnector {
    let mut s = json!({
        "url": pg_url(),
        "object": object.replace("$S", &schema.name),
        "updated_at_column": "updated_at",
    });
    if let (Some(m), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    let settings: SqlSettings = serde_json::from_value(s).unwrap();
    PgConnector::new(settings).unwrap()
}

async fn people_table(schema: &PgSchema) {
    schema
        .exec(
            "CREATE TABLE $S.people (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, \
             name text, age integer CHECK (age >= 0), updated_at timestamptz, origin text)",
        )
        .await;
}

#[tokio::test]
async fn batches_use_one_statement_per_group() {
    let schema = PgSchema::new().await;
    people_table(&schema).await;
    let c = pg_connector(&schema, "$S.people", json!({})).await;
    let s = c.describe().await.unwrap();
    let sink = c.sink().unwrap();
    let ops: Vec<WriteOp> = (0..200)
        .map(|i| {
            create(
                &format!("p{i}@x.io"),
                &[
                    (
                        "name",
                        json!(format!("tab\there, newline\nthere, back\\slash {i}")),
                    ),
                    ("age", json!(i.to_string())),
                ],
            )
        })
        .collect();
    let before = c.stats().snapshot();
    let out = sink.write(&s, &ops, &ctx()).await.unwrap();
    let after = c.stats().snapshot();
    assert_all_created(&out);
    // BEGIN, mark, INSERT … FROM unnest(…), COMMIT.
    assert_eq!(after.statements - before.statements, 4, "{after:?}");
    assert_eq!(after.bulk_batches, 1);
    assert_eq!(after.row_by_row_batches, 0);
    let keys = applied_keys(&out);
    let back = c.source().unwrap().read_keys(&s, &keys).await.unwrap();
    assert_eq!(back.len(), 200);
    let p7 = back
        .iter()
        .find(|r| r.fields["email"] == json!("p7@x.io"))
        .unwrap();
    assert_eq!(
        p7.fields["name"],
        json!("tab\there, newline\nthere, back\\slash 7")
    );
    assert_eq!(p7.fields["age"], json!(7));

    // Replaying the same creates updates the same rows (natural key), reported created: false.
    let again = sink.write(&s, &ops[..10], &ctx()).await.unwrap();
    assert_matched_again(&again, &keys);

    // Updates of one column set: one UPDATE … FROM; a stale one and a missing one reported.
    let mut updates: Vec<WriteOp> = keys[..50]
        .iter()
        .map(|k| WriteOp::Update {
            key: k.clone(),
            fields: fields(&[("name", json!("renamed"))]),
            expected_updated_at: None,
            expected_version: None,
        })
        .collect();
    let current = back
        .iter()
        .find(|r| r.key == keys[50])
        .and_then(|r| r.updated_at)
        .unwrap();
    updates.push(WriteOp::Update {
        key: keys[50].clone(),
        fields: fields(&[("name", json!("renamed"))]),
        expected_updated_at: Some(current - chrono::Duration::seconds(5)),
        expected_version: None,
    });
    updates.push(WriteOp::Update {
        key: keys[51].clone(),
        fields: fields(&[("name", json!("renamed"))]),
        expected_updated_at: Some(current),
        expected_version: None,
    });
    updates.push(WriteOp::Update {
        key: RecordKey::from("987654321"),
        fields: fields(&[("name", json!("ghost"))]),
        expected_updated_at: None,
        expected_version: None,
    });
    let before = c.stats().snapshot();
    let out = sink.write(&s, &updates, &ctx()).await.unwrap();
    let after = c.stats().snapshot();
    assert_updated_stale_fresh_missing(&out);
    // BEGIN, mark, UPDATE … FROM unnest(…), stale probe, COMMIT.
    assert_eq!(after.statements - before.statements, 5, "{after:?}");

    // Deletes: one statement for the lot.
    let dels: Vec<WriteOp> = keys[100..150]
        .iter()
        .cloned()
        .chain([RecordKey::from("987654321")])
        .map(|key| WriteOp::Delete { key })
        .collect();
    let out = sink.write(&s, &dels, &ctx()).await.unwrap();
    assert_deleted_then_missing(&out);
    let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".people",
        schema.name
    )))
    .fetch_one(&schema.pool)
    .await
    .unwrap();
    assert_eq!(left, 150);
    schema.drop().await;
}

#[tokio::test]
async fn a_refused_record_in_a_bulk_batch_fails_alone() {
    let schema = PgSchema::new().await;
    people_table(&schema).await;
    let c = pg_connector(&schema, "$S.people", json!({})).await;
    let s = c.describe().await.unwrap();
    let mut ops: Vec<WriteOp> = (0..20)
        .map(|i| create(&format!("p{i}@x.io"), &[("age", json!(i))]))
        .collect();
    // The CHECK constraint refuses a negative age; only the server knows.
    ops[7] = create("bad@x.io", &[("age", json!(-1))]);
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        if i == 7 {
            let WriteOutcome::Failed(e) = o else {
                panic!("op 7: {o:?}")
            };
            assert_eq!(e.class, ErrorClass::Config);
            assert!(e.message.contains("check constraint"), "{}", e.message);
            assert!(
                !e.message.contains("-1"),
                "row values stay out: {}",
                e.message
            );
        } else {
            assert!(
                matches!(o, WriteOutcome::Applied { created: true, .. }),
                "op {i}: {o:?}"
            );
        }
    }
    let st = c.stats().snapshot();
    assert_eq!(st.bulk_batches, 0);
    assert_eq!(st.row_by_row_batches, 1);
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".people",
        schema.name
    )))
    .fetch_one(&schema.pool)
    .await
    .unwrap();
    assert_eq!(n, 19);
    schema.drop().await;
}

#[tokio::test]
async fn own_writes_are_marked_for_capture_triggers() {
    let schema = PgSchema::new().await;
    people_table(&schema).await;
    schema
        .exec(
            "CREATE TABLE $S.capture (id bigint, op text, origin text, app text); \
             CREATE FUNCTION $S.capture() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               INSERT INTO capture VALUES (NEW.id, TG_OP, current_setting('syncctl.origin', true), \
                 current_setting('application_name')); RETURN NEW; END $$; \
             CREATE TRIGGER capture AFTER INSERT OR UPDATE ON $S.people \
               FOR EACH ROW EXECUTE FUNCTION $S.capture();",
        )
        .await;
    // The trigger writes `capture` unqualified: resolve it in this schema.
    schema
        .exec(&format!(
            "ALTER FUNCTION $S.capture() SET search_path = \"{}\"",
            schema.name
        ))
        .await;
    let c = pg_connector(&schema, "$S.people", json!({"origin_column": "origin"})).await;
    let s = c.describe().await.unwrap();
    // Bulk path (8 creates), row path (1 update), and someone else's write.
    let ops: Vec<WriteOp> = (0..8).map(|i| create(&format!("p{i}@x.io"), &[])).collect();
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    let WriteOutcome::Applied { key, .. } = &out[0] else {
        panic!("{out:?}")
    };
    c.sink()
        .unwrap()
        .write(
            &s,
            &[WriteOp::Update {
                key: key.clone(),
                fields: fields(&[("name", json!("x"))]),
                expected_updated_at: None,
                expected_version: None,
            }],
            &ctx(),
        )
        .await
        .unwrap();
    schema
        .exec("INSERT INTO $S.people (email) VALUES ('someone@else.io')")
        .await;
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT op, origin, app FROM \"{}\".capture ORDER BY id, op",
        schema.name
    )))
    .fetch_all(&schema.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 10, "{rows:?}");
    let ours: Vec<_> = rows
        .iter()
        .filter(|(_, o, _)| o.as_deref() == Some("syncctl:pg-test"))
        .collect();
    assert_eq!(ours.len(), 9, "{rows:?}");
    assert!(ours.iter().all(|(_, _, app)| app == "syncctl"));
    let theirs: Vec<_> = rows
        .iter()
        .filter(|(_, o, _)| o.as_deref() != Some("syncctl:pg-test"))
        .collect();
    assert_eq!(theirs.len(), 1);
    assert!(theirs[0].1.as_deref().unwrap_or_default().is_empty());
    // The setting was local to the write transactions.
    let after: Option<String> =
        sqlx::query_scalar("SELECT current_setting('syncctl.origin', true)")
            .fetch_one(&schema.pool)
            .await
            .unwrap();
    assert!(after.unwrap_or_default().is_empty());
    // origin_column carries the mark on every row syncctl wrote, and only those.
    let marked: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".people WHERE origin = 'syncctl:pg-test'",
        schema.name
    )))
    .fetch_one(&schema.pool)
    .await
    .unwrap();
    assert_eq!(marked, 8);
    schema.drop().await;
}

#[tokio::test]
async fn quoted_identifiers_and_schema_qualified_names() {
    let schema = PgSchema::new().await;
    schema
        .exec(
            "CREATE SCHEMA \"$N odd\"; \
             CREATE TABLE \"$N odd\".\"my \"\"people\"\"\" (\"Key\" serial PRIMARY KEY, \
             \"e-mail\" text UNIQUE NOT NULL, \"select\" text, \"when\" timestamptz)",
        )
        .await;
    let name = format!("{} odd", schema.name);
    let settings = json!({
        "object": format!("\"{name}\".\"my \"\"people\"\"\""),
        "updated_at_column": "when",
    });
    let c = schema.connector(settings).await;
    let s = c.describe().await.unwrap();
    assert_eq!(s.key, "Key");
    let ops: Vec<WriteOp> = (0..6)
        .map(|i| WriteOp::Create {
            token: format!("t{i}"),
            natural_key: Some(NaturalKey {
                field: "e-mail".into(),
                value: json!(format!("{i}@x.io")),
            }),
            fields: fields(&[("select", json!("'; DROP TABLE x; --"))]),
        })
        .collect();
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. })),
        "{out:?}"
    );
    let page = c
        .source()
        .unwrap()
        .read_page(&s, &ReadRequest::full(100))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 6);
    assert_eq!(
        page.records[0].fields["select"],
        json!("'; DROP TABLE x; --")
    );
    assert!(page.records[0].updated_at.is_some());
    exec(&schema.pool, &format!("DROP SCHEMA \"{name}\" CASCADE")).await;
    schema.drop().await;
}

#[tokio::test]
async fn values_round_trip_by_type() {
    let schema = PgSchema::new().await;
    schema
        .exec(
            "CREATE TYPE $S.mood AS ENUM ('happy', 'sad'); \
             CREATE TABLE $S.things (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
             code varchar(5) UNIQUE, price numeric(10,2), ok boolean, doc jsonb, day date, \
             at timestamp, mood $S.mood, tags text[], ratio double precision, \
             total numeric GENERATED ALWAYS AS (price * 2) STORED, \
             updated_at timestamptz)",
        )
        .await;
    let c = pg_connector(&schema, "$S.things", json!({})).await;
    let s = c.describe().await.unwrap();
    assert!(s.capabilities.generated_keys);
    assert!(!s.field("total").unwrap().writable);
    assert_eq!(s.field("code").unwrap().max_length, Some(5));
    // Values as a CSV source sends them: all strings.
    let row = |code: &str| WriteOp::Create {
        token: code.into(),
        natural_key: Some(NaturalKey {
            field: "code".into(),
            value: json!(code),
        }),
        fields: fields(&[
            ("code", json!(code)),
            ("price", json!("0012.50")),
            ("ok", json!("yes")),
            ("doc", json!("{\"a\": [1, 2]}")),
            ("day", json!("2026-01-31")),
            ("at", json!("2026-01-31T10:11:12.345678+02:00")),
            ("mood", json!("sad")),
            ("tags", json!("{red,green}")),
            ("ratio", json!("0.1")),
        ]),
    };
    let mut ops: Vec<WriteOp> = (0..5).map(|i| row(&format!("c{i}"))).collect();
    // Too long for varchar(5): the server refuses it; the others stay.
    ops.push(row("toolong"));
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    assert!(
        out[..5]
            .iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. })),
        "{out:?}"
    );
    assert!(
        matches!(&out[5], WriteOutcome::Failed(e) if e.message.contains("too long")),
        "{:?}",
        out[5]
    );
    let WriteOutcome::Applied {
        stored: Some(r), ..
    } = &out[0]
    else {
        panic!()
    };
    assert_eq!(r.fields["price"], json!("12.5"));
    assert_eq!(r.fields["total"], json!("25"));
    assert_eq!(r.fields["ok"], json!(true));
    assert_eq!(r.fields["doc"], json!({"a": [1, 2]}));
    assert_eq!(r.fields["day"], json!("2026-01-31"));
    assert_eq!(r.fields["at"], json!("2026-01-31T08:11:12.345678Z"));
    assert_eq!(r.fields["mood"], json!("sad"));
    assert_eq!(r.fields["tags"], json!("{red,green}"));
    assert_eq!(r.fields["ratio"], json!(0.1));
    assert_eq!(r.key.as_str().len(), 36, "uuid key {}", r.key);
    // A value of the wrong type is refused before any SQL; an unknown column too.
    let bad = c
        .sink()
        .unwrap()
        .write(
            &s,
            &[
                WriteOp::Update {
                    key: r.key.clone(),
                    fields: fields(&[("price", json!("cheap"))]),
                    expected_updated_at: None,
                    expected_version: None,
                },
                WriteOp::Update {
                    key: r.key.clone(),
                    fields: fields(&[("nope", json!(1))]),
                    expected_updated_at: None,
                    expected_version: None,
                },
                WriteOp::Update {
                    key: RecordKey::from("not-a-uuid"),
                    fields: fields(&[("price", json!(1))]),
                    expected_updated_at: None,
                    expected_version: None,
                },
            ],
            &ctx(),
        )
        .await
        .unwrap();
    assert!(matches!(&bad[0], WriteOutcome::Failed(e) if e.field.as_deref() == Some("price")));
    assert!(matches!(&bad[1], WriteOutcome::Failed(e) if e.field.as_deref() == Some("nope")));
    assert!(matches!(&bad[2], WriteOutcome::NotFound { .. }));
    schema.drop().await;
}

#[tokio::test]
async fn incremental_reads_return_null_cursors_last_and_page_through_them() {
    let schema = PgSchema::new().await;
    people_table(&schema).await;
    schema
        .exec(
            "INSERT INTO $S.people (email, updated_at) \
             SELECT 'p' || i || '@x.io', CASE WHEN i % 3 = 0 THEN NULL \
               ELSE timestamptz '2024-01-01' + i * interval '1 second' END \
             FROM generate_series(1, 25) i",
        )
        .await;
    let c = pg_connector(&schema, "$S.people", json!({})).await;
    let s = c.describe().await.unwrap();
    let got = read_since_in_pages_of_4(&c, &s).await;
    // i in 10..=25 not divisible by 3 (11 rows), then the 8 NULL-cursor rows.
    let with_cursor: Vec<_> = got.iter().take_while(|r| r.updated_at.is_some()).collect();
    assert_eq!(with_cursor.len(), 11, "{got:?}");
    assert_eq!(got.len(), 19);
    assert!(got[11..].iter().all(|r| r.updated_at.is_none()));
    let mut keys: Vec<_> = got.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 19, "no repeats");
    schema.drop().await;
}

#[tokio::test]
async fn configuration_problems_are_config_errors() {
    let schema = PgSchema::new().await;
    people_table(&schema).await;
    let missing = schema
        .connector(json!({"object": "$S.nope"}))
        .await
        .describe()
        .await
        .unwrap_err();
    assert_eq!(missing.class(), ErrorClass::Config);
    assert!(missing.to_string().contains("not found"), "{missing}");
    let bad_col = schema
        .connector(json!({"object": "$S.people", "updated_at_column": "modified"}))
        .await
        .describe()
        .await
        .unwrap_err();
    assert!(bad_col.to_string().contains("modified"), "{bad_col}");
    let bad_type = schema
        .connector(json!({"object": "$S.people", "updated_at_column": "name"}))
        .await
        .describe()
        .await
        .unwrap_err();
    assert!(bad_type.to_string().contains("timestamp"), "{bad_type}");
    schema.drop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_never_leaks_the_password() {
    let settings: SqlSettings = serde_json::from_value(json!({
        "url": "postgres://u:Sup3rSecretPw@127.0.0.1:1/db",
        "object": "t",
    }))
    .unwrap();
    let c = PgConnector::new(settings).unwrap();
    assert_unreachable(&c, "Sup3rSecretPw", "postgres://127.0.0.1:1/db").await;
}

#[tokio::test]
async fn archive_sets_the_deleted_column_and_reads_report_it() {
    let schema = PgSchema::new().await;
    schema
        .exec(
            "CREATE TABLE $S.people (id serial PRIMARY KEY, email text NOT NULL, \
             deleted boolean NOT NULL DEFAULT false, updated_at timestamptz); \
             INSERT INTO $S.people (email) VALUES ('a@x.io'), ('b@x.io')",
        )
        .await;
    let c = pg_connector(&schema, "$S.people", json!({"deleted_column": "deleted"})).await;
    let s = c.describe().await.unwrap();
    let records = archive_first_of_two(&c, &s, &ctx()).await;
    assert!(records[0].updated_at.is_some(), "archive bumps the cursor");
    schema.drop().await;
}
