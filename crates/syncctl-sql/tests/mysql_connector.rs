//! The MySQL/MariaDB connector against the real server (SYNCCTL_TEST_MYSQL_URL, default
//! mysql://root@127.0.0.1:3306/test): the shared conformance suite on two table shapes, then
//! the bulk path and its per-record fallback, the natural-key guard against other unique
//! columns, echo marking, quoted identifiers and type round trips. Every test works in its
//! own database, dropped at the end. A server that cannot be reached fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use sqlx::MySqlPool;
use support::{
    applied_keys, archive_first_of_two, assert_all_created, assert_conforms,
    assert_deleted_then_missing, assert_matched_again, assert_unreachable,
    assert_updated_stale_fresh_missing, create, fields, read_since_in_pages_of_4, unique_name,
};
use syncctl_core::{
    Classified, Connector, ErrorClass, NaturalKey, ReadRequest, RecordKey, WriteContext, WriteOp,
    WriteOutcome,
};
use syncctl_sql::mysql::MySqlConnector;
use syncctl_sql::settings::SqlSettings;
use syncctl_testkit::conformance::{Fixture, Person, run_all};

fn my_url() -> String {
    std::env::var("SYNCCTL_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// A database that exists for one test.
struct MyDb {
    name: String,
    pool: MySqlPool,
}

impl MyDb {
    async fn new() -> Self {
        let pool = MySqlPool::connect(&my_url()).await.expect(
            "MariaDB/MySQL must be running for the connector tests (SYNCCTL_TEST_MYSQL_URL, scripts/ensure-services.sh)",
        );
        let name = unique_name("syncctl_my");
        let db = Self { name, pool };
        db.exec("CREATE DATABASE $D").await;
        db
    }

    /// Runs one statement; `$D` is this database, quoted.
    async fn exec(&self, sql: &str) {
        let sql = sql.replace("$D", &format!("`{}`", self.name));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn connector(&self, table: &str, extra: Value) -> MySqlConnector {
        let mut s = json!({
            "url": my_url(),
            "object": format!("{}.{table}", self.name),
            "updated_at_column": "updated_at",
        });
        if let (Some(m), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        let settings: SqlSettings = serde_json::from_value(s).unwrap();
        MySqlConnector::new(settings).unwrap()
    }

    async fn count(&self, table: &str, filter: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM `{}`.{table} WHERE {filter}",
            self.name
        )))
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    async fn drop(self) {
        self.exec("DROP DATABASE IF EXISTS $D").await;
        self.pool.close().await;
    }
}

struct PeopleFixture {
    db: MyDb,
    /// auto_increment key, DATETIME(6) cursor, unique email; else VARCHAR key, TIMESTAMP(6)
    /// cursor, email without a unique index.
    serial: bool,
}

#[async_trait::async_trait]
impl Fixture for PeopleFixture {
    async fn fresh(&self) -> Box<dyn Connector> {
        self.db.exec("DROP TABLE IF EXISTS $D.people").await;
        if self.serial {
            self.db
                .exec(
                    "CREATE TABLE $D.people (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                     email VARCHAR(200) NOT NULL UNIQUE, name TEXT, age INT, \
                     updated_at DATETIME(6) NULL)",
                )
                .await;
        } else {
            self.db
                .exec(
                    "CREATE TABLE $D.people (id VARCHAR(64) PRIMARY KEY, \
                     email VARCHAR(200) NOT NULL, name TEXT, age INT, \
                     updated_at TIMESTAMP(6) NULL DEFAULT NULL)",
                )
                .await;
        }
        Box::new(self.db.connector("people", json!({})))
    }

    async fn insert(&self, rows: &[Person]) -> Vec<RecordKey> {
        let mut keys = Vec::new();
        for (i, p) in rows.iter().enumerate() {
            let age = p.age.map(|a| i32::try_from(a).unwrap());
            if self.serial {
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO `{}`.people (email, name, age, updated_at) VALUES (?, ?, ?, ?)",
                    self.db.name
                )))
                .bind(&p.email)
                .bind(&p.name)
                .bind(age)
                .bind(p.updated_at.naive_utc())
                .execute(&self.db.pool)
                .await
                .unwrap();
                keys.push(RecordKey(done.last_insert_id().to_string()));
            } else {
                let key = format!("k{i:03}-{}", p.email);
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO `{}`.people (id, email, name, age, updated_at) VALUES (?, ?, ?, ?, ?)",
                    self.db.name
                )))
                .bind(&key)
                .bind(&p.email)
                .bind(&p.name)
                .bind(age)
                .bind(p.updated_at.naive_utc())
                .execute(&self.db.pool)
                .await
                .unwrap();
                keys.push(RecordKey(key));
            }
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
async fn mysql_passes_the_conformance_suite_with_auto_increment_keys() {
    let f = PeopleFixture {
        db: MyDb::new().await,
        serial: true,
    };
    let result = run_all(&f).await;
    f.db.drop().await;
    assert_conforms(result);
}

#[tokio::test]
async fn mysql_passes_the_conformance_suite_with_text_keys_and_timestamp_cursors() {
    let f = PeopleFixture {
        db: MyDb::new().await,
        serial: false,
    };
    let result = run_all(&f).await;
    f.db.drop().await;
    assert_conforms(result);
}

fn ctx() -> WriteContext {
    WriteContext::new("my-test", "00000000-0000-0000-0000-000000000002")
}

async fn people_table(db: &MyDb) {
    db.exec(
        "CREATE TABLE $D.people (id INT AUTO_INCREMENT PRIMARY KEY, \
         email VARCHAR(100) NOT NULL UNIQUE, code VARCHAR(20) NULL UNIQUE, name TEXT, \
         age INT CHECK (age >= 0), updated_at DATETIME(6) NULL, origin VARCHAR(100) NULL)",
    )
    .await;
}

#[tokio::test]
async fn batches_use_multi_row_statements() {
    let db = MyDb::new().await;
    people_table(&db).await;
    let c = db.connector("people", json!({}));
    let s = c.describe().await.unwrap();
    let sink = c.sink().unwrap();
    let ops: Vec<WriteOp> = (0..200)
        .map(|i| {
            create(
                &format!("p{i}@x.io"),
                &[
                    ("name", json!(format!("quote ' and \\ backslash {i}"))),
                    ("age", json!(i.to_string())),
                ],
            )
        })
        .collect();
    let before = c.stats().snapshot();
    let out = sink.write(&s, &ops, &ctx()).await.unwrap();
    let after = c.stats().snapshot();
    assert_all_created(&out);
    // SET @origin, BEGIN, lock, INSERT … ON DUPLICATE KEY UPDATE, read back, COMMIT, reset.
    assert_eq!(after.statements - before.statements, 7, "{after:?}");
    assert_eq!(after.bulk_batches, 1);
    let keys = applied_keys(&out);
    let back = c.source().unwrap().read_keys(&s, &keys).await.unwrap();
    assert_eq!(back.len(), 200);
    let p7 = back
        .iter()
        .find(|r| r.fields["email"] == json!("p7@x.io"))
        .unwrap();
    assert_eq!(p7.fields["name"], json!("quote ' and \\ backslash 7"));
    assert_eq!(p7.fields["age"], json!(7));

    // Replayed creates update the same rows.
    let again = sink.write(&s, &ops[..10], &ctx()).await.unwrap();
    assert_matched_again(&again, &keys);
    assert_eq!(db.count("people", "1=1").await, 200);

    // Updates: lock, one UPDATE … CASE, read back; stale and missing reported.
    let current = back
        .iter()
        .find(|r| r.key == keys[50])
        .and_then(|r| r.updated_at)
        .unwrap();
    let mut updates: Vec<WriteOp> = keys[..50]
        .iter()
        .enumerate()
        .map(|(i, k)| WriteOp::Update {
            key: k.clone(),
            fields: fields(&[
                ("name", json!(format!("renamed {i}"))),
                ("age", json!(i + 1)),
            ]),
            expected_updated_at: None,
            expected_version: None,
        })
        .collect();
    updates.push(WriteOp::Update {
        key: keys[50].clone(),
        fields: fields(&[("name", json!("stale")), ("age", json!(1))]),
        expected_updated_at: Some(current - chrono::Duration::seconds(5)),
        expected_version: None,
    });
    updates.push(WriteOp::Update {
        key: keys[51].clone(),
        fields: fields(&[("name", json!("fresh")), ("age", json!(1))]),
        expected_updated_at: back
            .iter()
            .find(|r| r.key == keys[51])
            .and_then(|r| r.updated_at),
        expected_version: None,
    });
    updates.push(WriteOp::Update {
        key: RecordKey::from("987654"),
        fields: fields(&[("name", json!("ghost")), ("age", json!(1))]),
        expected_updated_at: None,
        expected_version: None,
    });
    let before = c.stats().snapshot();
    let out = sink.write(&s, &updates, &ctx()).await.unwrap();
    let after = c.stats().snapshot();
    assert_updated_stale_fresh_missing(&out);
    assert_eq!(after.statements - before.statements, 7, "{after:?}");
    assert_eq!(
        db.count("people", "name = 'renamed 3' AND age = 4").await,
        1
    );
    assert_eq!(db.count("people", "name = 'stale'").await, 0);

    let dels: Vec<WriteOp> = keys[100..150]
        .iter()
        .cloned()
        .chain([RecordKey::from("987654")])
        .map(|key| WriteOp::Delete { key })
        .collect();
    let out = sink.write(&s, &dels, &ctx()).await.unwrap();
    assert_deleted_then_missing(&out);
    assert_eq!(db.count("people", "1=1").await, 150);
    db.drop().await;
}

#[tokio::test]
async fn a_refused_record_in_a_bulk_batch_fails_alone() {
    let db = MyDb::new().await;
    people_table(&db).await;
    let c = db.connector("people", json!({}));
    let s = c.describe().await.unwrap();
    let mut ops: Vec<WriteOp> = (0..20)
        .map(|i| create(&format!("p{i}@x.io"), &[("age", json!(i))]))
        .collect();
    ops[7] = create("bad@x.io", &[("age", json!(-1))]);
    // Too long for VARCHAR(20): strict mode refuses it instead of truncating.
    ops[11] = create("long@x.io", &[("code", json!("x".repeat(30)))]);
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        if i == 7 || i == 11 {
            let WriteOutcome::Failed(e) = o else {
                panic!("op {i}: {o:?}")
            };
            assert_eq!(e.class, ErrorClass::Config, "{e:?}");
        } else {
            assert!(
                matches!(o, WriteOutcome::Applied { created: true, .. }),
                "op {i}: {o:?}"
            );
        }
    }
    assert_eq!(c.stats().snapshot().row_by_row_batches, 1);
    assert_eq!(db.count("people", "1=1").await, 18);
    db.drop().await;
}

#[tokio::test]
async fn a_natural_key_create_never_overwrites_another_record_through_another_unique_column() {
    let db = MyDb::new().await;
    people_table(&db).await;
    db.exec("INSERT INTO $D.people (email, code, name) VALUES ('owner@x.io', 'C-1', 'Owner')")
        .await;
    let c = db.connector("people", json!({}));
    let s = c.describe().await.unwrap();
    let mut ops: Vec<WriteOp> = (0..6)
        .map(|i| create(&format!("p{i}@x.io"), &[("code", json!(format!("N-{i}")))]))
        .collect();
    // New email, but the code belongs to owner@x.io: ON DUPLICATE KEY would hit that row.
    ops[2] = create(
        "intruder@x.io",
        &[("code", json!("C-1")), ("name", json!("Intruder"))],
    );
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    assert!(
        matches!(&out[2], WriteOutcome::Failed(e) if e.message.contains("duplicate")),
        "{:?}",
        out[2]
    );
    assert!(
        !matches!(&out[2], WriteOutcome::Failed(e) if e.message.contains("C-1")),
        "row values stay out of messages"
    );
    for i in [0, 1, 3, 4, 5] {
        assert!(
            matches!(out[i], WriteOutcome::Applied { created: true, .. }),
            "op {i}: {:?}",
            out[i]
        );
    }
    assert_eq!(
        db.count(
            "people",
            "email = 'owner@x.io' AND name = 'Owner' AND code = 'C-1'"
        )
        .await,
        1
    );
    assert_eq!(db.count("people", "email = 'intruder@x.io'").await, 0);
    let st = c.stats().snapshot();
    assert_eq!((st.bulk_batches, st.row_by_row_batches), (0, 1), "{st:?}");
    db.drop().await;
}

#[tokio::test]
async fn own_writes_are_marked_for_capture_triggers() {
    let db = MyDb::new().await;
    people_table(&db).await;
    db.exec("CREATE TABLE $D.capture (id INT, op VARCHAR(10), origin VARCHAR(100))")
        .await;
    db.exec(
        "CREATE TRIGGER $D.cap_ins AFTER INSERT ON $D.people FOR EACH ROW \
         INSERT INTO capture VALUES (NEW.id, 'INSERT', @syncctl_origin)",
    )
    .await;
    db.exec(
        "CREATE TRIGGER $D.cap_upd AFTER UPDATE ON $D.people FOR EACH ROW \
         INSERT INTO capture VALUES (NEW.id, 'UPDATE', @syncctl_origin)",
    )
    .await;
    let c = db.connector("people", json!({"origin_column": "origin"}));
    let s = c.describe().await.unwrap();
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
    db.exec("INSERT INTO $D.people (email) VALUES ('someone@else.io')")
        .await;
    assert_eq!(db.count("capture", "origin = 'syncctl:my-test'").await, 9);
    assert_eq!(db.count("capture", "origin IS NULL").await, 1);
    assert_eq!(db.count("people", "origin = 'syncctl:my-test'").await, 8);
    db.drop().await;
}

#[tokio::test]
async fn quoted_identifiers_and_values_round_trip_by_type() {
    let db = MyDb::new().await;
    db.exec(
        "CREATE TABLE $D.`odd ``table``` (`Key` INT AUTO_INCREMENT PRIMARY KEY, \
         `e-mail` VARCHAR(50) NOT NULL UNIQUE, `select` TEXT, price DECIMAL(10,2), \
         ok TINYINT(1), doc JSON, day DATE, at DATETIME(6), mood ENUM('happy','sad'), \
         ratio DOUBLE, total DECIMAL(12,2) AS (price * 2) PERSISTENT, code VARCHAR(5), \
         updated_at DATETIME(6) NULL)",
    )
    .await;
    let settings: SqlSettings = serde_json::from_value(json!({
        "url": my_url(),
        "object": format!("{}.odd `table`", db.name),
        "updated_at_column": "updated_at",
    }))
    .unwrap();
    let c = MySqlConnector::new(settings).unwrap();
    let s = c.describe().await.unwrap();
    assert_eq!(s.key, "Key");
    assert!(s.capabilities.generated_keys);
    assert!(!s.field("total").unwrap().writable);
    assert_eq!(s.field("code").unwrap().max_length, Some(5));
    let row = |i: usize| WriteOp::Create {
        token: format!("t{i}"),
        natural_key: Some(NaturalKey {
            field: "e-mail".into(),
            value: json!(format!("{i}@x.io")),
        }),
        fields: fields(&[
            ("select", json!("'; DROP TABLE x; --")),
            ("price", json!("0012.50")),
            ("ok", json!("yes")),
            ("doc", json!("{\"a\": [1, 2]}")),
            ("day", json!("2026-01-31")),
            ("at", json!("2026-01-31T10:11:12.345678+02:00")),
            ("mood", json!("sad")),
            ("ratio", json!("0.1")),
        ]),
    };
    let ops: Vec<WriteOp> = (0..5).map(row).collect();
    let out = c.sink().unwrap().write(&s, &ops, &ctx()).await.unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Applied { .. })),
        "{out:?}"
    );
    let WriteOutcome::Applied {
        stored: Some(r), ..
    } = &out[0]
    else {
        panic!()
    };
    assert_eq!(r.fields["select"], json!("'; DROP TABLE x; --"));
    assert_eq!(r.fields["price"], json!("12.5"));
    assert_eq!(r.fields["total"], json!("25"));
    assert_eq!(r.fields["ok"], json!(true));
    assert_eq!(r.fields["day"], json!("2026-01-31"));
    assert_eq!(r.fields["at"], json!("2026-01-31T08:11:12.345678Z"));
    assert_eq!(r.fields["mood"], json!("sad"));
    assert_eq!(r.fields["ratio"], json!(0.1));
    let doc = &r.fields["doc"];
    assert!(
        *doc == json!({"a": [1, 2]}) || *doc == json!("{\"a\": [1, 2]}"),
        "{doc}"
    );
    let page = c
        .source()
        .unwrap()
        .read_page(&s, &ReadRequest::full(2))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 2);
    assert!(page.next.is_some());
    db.drop().await;
}

#[tokio::test]
async fn incremental_reads_return_null_cursors_last_and_page_through_them() {
    let db = MyDb::new().await;
    people_table(&db).await;
    for i in 1..=25 {
        let cursor = if i % 3 == 0 {
            "NULL".to_owned()
        } else {
            format!("TIMESTAMPADD(SECOND, {i}, '2024-01-01 00:00:00')")
        };
        db.exec(&format!(
            "INSERT INTO $D.people (email, updated_at) VALUES ('p{i}@x.io', {cursor})"
        ))
        .await;
    }
    let c = db.connector("people", json!({}));
    let s = c.describe().await.unwrap();
    let got = read_since_in_pages_of_4(&c, &s).await;
    let with_cursor = got.iter().take_while(|r| r.updated_at.is_some()).count();
    assert_eq!(with_cursor, 11, "{got:?}");
    assert_eq!(got.len(), 19);
    let mut keys: Vec<_> = got.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 19);
    db.drop().await;
}

#[tokio::test]
async fn configuration_problems_are_config_errors() {
    let db = MyDb::new().await;
    people_table(&db).await;
    let missing = db
        .connector("nope", json!({}))
        .describe()
        .await
        .unwrap_err();
    assert_eq!(missing.class(), ErrorClass::Config);
    assert!(missing.to_string().contains("not found"), "{missing}");
    let bad = db
        .connector("people", json!({"updated_at_column": "name"}))
        .describe()
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("DATETIME"), "{bad}");
    db.drop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_never_leaks_the_password() {
    let settings: SqlSettings = serde_json::from_value(json!({
        "url": "mysql://u:Sup3rSecretPw@127.0.0.1:1/db",
        "object": "t",
    }))
    .unwrap();
    let c = MySqlConnector::new(settings).unwrap();
    assert_unreachable(&c, "Sup3rSecretPw", "mysql://127.0.0.1:1/db").await;
}

#[tokio::test]
async fn archive_sets_the_deleted_column_and_reads_report_it() {
    let db = MyDb::new().await;
    db.exec(
        "CREATE TABLE $D.people (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(50) NOT NULL, \
         deleted_at DATETIME(6) NULL, updated_at DATETIME(6) NULL)",
    )
    .await;
    db.exec("INSERT INTO $D.people (email) VALUES ('a@x.io'), ('b@x.io')")
        .await;
    let c = db.connector("people", json!({"deleted_column": "deleted_at"}));
    let s = c.describe().await.unwrap();
    archive_first_of_two(&c, &s, &ctx()).await;
    assert_eq!(db.count("people", "deleted_at IS NOT NULL").await, 1);
    db.drop().await;
}
