//! PostgreSQL ⇄ HubSpot end to end through the binary: a real PostgreSQL
//! (SYNCCTL_TEST_PG_URL, default 127.0.0.1:5432/test; tables in a `headline_…` schema of this
//! test's own) and the stateful HubSpot fake. Creates both ways, matching by email without
//! duplicates, updates both ways, a rerun with nothing changed that writes nothing and reads
//! HubSpot once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use sqlx::PgPool;
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::hubspot::HubSpotFake;

/// email, first name, last name, phone.
type Row = (String, Option<String>, Option<String>, Option<String>);

const TOKEN: &str = "pat-na1-pg-headline-secret";

use crate::support::pg_url;

struct Pg {
    pool: PgPool,
    schema: String,
}

impl Pg {
    async fn exec(&self, sql: &str) {
        let sql = sql.replace("$S", &format!("\"{}\"", self.schema));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// email → (first name, last name, phone); fails on a duplicate email.
    async fn rows(&self) -> BTreeMap<String, (String, String, String)> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT email, first_name, last_name, phone FROM \"{}\".people",
            self.schema
        )))
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let mut out = BTreeMap::new();
        for (e, f, l, p) in rows {
            let v = (
                f.unwrap_or_default(),
                l.unwrap_or_default(),
                p.unwrap_or_default(),
            );
            assert!(out.insert(e.clone(), v).is_none(), "duplicate {e}");
        }
        out
    }
}

async fn run(dir: &std::path::Path, server: &FakeServer, args: &[&str]) -> CliRun {
    let mut cmd = crate::support::syncctl();
    cmd.current_dir(dir)
        .env("HUBSPOT_API_TOKEN", TOKEN)
        .env("HUBSPOT_BASE_URL", server.url())
        .env("PG_URL", pg_url())
        .arg("sync")
        .args(args)
        .args(["--config", "sync.yaml"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let r = CliRun::from_output(&out);
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_hubspot_sync_both_ways() {
    let pool = PgPool::connect(&pg_url())
        .await
        .expect("PostgreSQL must be running (SYNCCTL_TEST_PG_URL, scripts/ensure-services.sh)");
    let schema = format!(
        "headline_{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap()
    );
    let pg = Pg { pool, schema };
    pg.exec("CREATE SCHEMA $S").await;
    pg.exec(
        "CREATE TABLE $S.people (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, \
         first_name text, last_name text, phone text, updated_at timestamptz NOT NULL DEFAULT now())",
    )
    .await;
    pg.exec(
        "INSERT INTO $S.people (email, first_name, last_name, phone) VALUES \
         ('ada@example.com', 'Ada', 'Lovelace', '+441234567'), \
         ('edsger@example.com', 'Edsger', 'Dijkstra', NULL)",
    )
    .await;
    let fake = HubSpotFake::new(TOKEN);
    let edsger = fake.seed(
        "contacts",
        &[
            ("email", "Edsger@Example.com"),
            ("firstname", "Edsger"),
            ("lastname", "Dijkstra"),
        ],
    );
    fake.seed(
        "contacts",
        &[
            ("email", "barbara@example.com"),
            ("firstname", "Barbara"),
            ("lastname", "Liskov"),
        ],
    );
    let server = FakeServer::start(fake.router()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sync.yaml"),
        format!(
            r#"name: pg-hubspot-headline
source: {{connector: postgres, url: "${{PG_URL}}", object: {schema}.people, updated_at_column: updated_at}}
target: {{connector: hubspot, object: contacts}}
key: {{source: email, target: email}}
fields:
  - {{source: email, target: email, transform: lowercase}}
  - {{source: first_name, target: firstname}}
  - {{source: last_name, target: lastname}}
  - {{source: phone, target: phone}}
direction: bidirectional
conflict_strategy: source_wins
state: "sqlite://state.db"
"#,
            schema = pg.schema
        ),
    )
    .unwrap();

    let first = run(dir.path(), &server, &["run"]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.stdout);
    assert_eq!(
        first.result["data"]["target"]["created"], 1,
        "{}",
        first.stdout
    );
    assert_eq!(
        first.result["data"]["source"]["created"], 1,
        "{}",
        first.stdout
    );
    let rows = pg.rows().await;
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        [
            "ada@example.com",
            "barbara@example.com",
            "edsger@example.com"
        ]
    );
    assert_eq!(rows["barbara@example.com"].1, "Liskov");
    assert_eq!(
        fake.all("contacts").len(),
        3,
        "edsger matched, not duplicated"
    );
    assert_eq!(
        fake.find("contacts", "email", "ada@example.com")[0].properties["phone"],
        "+441234567"
    );

    // Nothing changed: no write, one HubSpot read.
    let (writes, calls) = (fake.write_calls(), fake.total_calls());
    let quiet = run(dir.path(), &server, &["run"]).await;
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(fake.write_calls(), writes);
    assert_eq!(fake.total_calls() - calls, 1);

    // Updates both ways.
    pg.exec("UPDATE $S.people SET last_name = 'King', updated_at = now() WHERE email = 'ada@example.com'")
        .await;
    fake.edit("contacts", edsger, &[("phone", "+31205550100")]);
    let third = run(dir.path(), &server, &["run"]).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(
        fake.find("contacts", "email", "ada@example.com")[0].properties["lastname"],
        "King"
    );
    assert_eq!(pg.rows().await["edsger@example.com"].2, "+31205550100");
    let writes = fake.write_calls();
    let quiet = run(dir.path(), &server, &["run"]).await;
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(fake.write_calls(), writes, "values flipped back");
    assert_eq!(pg.rows().await.len(), 3);

    pg.exec("DROP SCHEMA $S CASCADE").await;
}
