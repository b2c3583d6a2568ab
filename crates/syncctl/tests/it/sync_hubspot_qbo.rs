//! The headline: `syncctl sync run --source hubspot --target quickbooks` with no config file,
//! through the binary, against the stateful HubSpot and QuickBooks fakes started in-process.
//! The built-in mapping (contacts ↔ customers on email), the environment's settings and the
//! default state store (`.syncctl/state.db` in the working directory) are all it uses.
//!
//! Covered: a dry run writes nothing anywhere (the fakes' request logs hold no write call);
//! creates both ways; existing records matched by email without duplicates; updates both ways;
//! three-way merges; every conflict strategy and the manual queue (`sync conflicts`); a rerun
//! with nothing changed makes no write call and one read call per side; `--batch-size` as a
//! cap; the call-count bound for N changed contacts; 429 storms and 5xx bursts; a run killed
//! with SIGKILL mid-write and rerun without duplicates (QuickBooks `requestid` replay);
//! `sync init` → `--config` round trip; `--object` choices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use axum::http::Method;
use serde_json::{Value, json};
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::hubspot::HubSpotFake;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};

const HS_TOKEN: &str = "pat-na1-headline-secret";

/// Both fakes, served, and a working directory for the binary.
struct World {
    dir: tempfile::TempDir,
    hs: HubSpotFake,
    qb: QuickBooksFake,
    hs_srv: FakeServer,
    qb_srv: FakeServer,
}

impl World {
    async fn new(hs: HubSpotFake, qb: QuickBooksFake) -> Self {
        let hs_srv = FakeServer::start(hs.router()).await;
        let qb_srv = FakeServer::start(qb.router()).await;
        Self {
            dir: tempfile::tempdir().unwrap(),
            hs,
            qb,
            hs_srv,
            qb_srv,
        }
    }

    /// The binary with the settings of both systems in its environment, in the work dir.
    fn command(&self) -> assert_cmd::Command {
        let mut cmd = crate::support::syncctl();
        cmd.current_dir(self.dir.path())
            .env("HUBSPOT_API_TOKEN", HS_TOKEN)
            .env("HUBSPOT_BASE_URL", self.hs_srv.url())
            .env("QUICKBOOKS_ACCESS_TOKEN", DEMO_ACCESS_TOKEN)
            .env("QUICKBOOKS_REALM_ID", DEMO_REALM)
            .env("QUICKBOOKS_BASE_URL", self.qb_srv.url());
        cmd
    }

    /// `syncctl sync ARGS` (no config file unless ARGS name one).
    async fn sync(&self, args: &[&str]) -> CliRun {
        let mut cmd = self.command();
        cmd.arg("sync").args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let r = CliRun::from_output(&out);
        for secret in [HS_TOKEN, DEMO_ACCESS_TOKEN] {
            assert!(
                !r.stdout.contains(secret) && !r.stderr.contains(secret),
                "a token leaked"
            );
        }
        r
    }

    fn qb_writes(&self) -> usize {
        self.qb_srv
            .requests()
            .iter()
            .filter(|r| r.method == Method::POST && !r.path.ends_with("/query"))
            .count()
    }

    /// Live QuickBooks customers by lower-cased email; fails on a duplicate email.
    fn customers(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for c in self.qb.all("Customer") {
            if c["Active"] == json!(false) {
                continue;
            }
            let Some(email) = c["PrimaryEmailAddr"]["Address"].as_str() else {
                continue;
            };
            assert!(
                out.insert(email.to_lowercase(), c.clone()).is_none(),
                "duplicate customer for {email}: {c}"
            );
        }
        out
    }
}

fn ok(r: &CliRun) {
    assert_eq!(r.code, 0, "stderr:\n{}\nstdout:\n{}", r.stderr, r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_init_prints_a_config_that_runs_and_object_lists_the_choices() {
    let hs = HubSpotFake::new(HS_TOKEN);
    hs.seed(
        "contacts",
        &[("email", "ida@example.com"), ("firstname", "Ida")],
    );
    let w = World::new(hs, QuickBooksFake::new()).await;

    let init = w
        .sync(&["init", "--source", "hubspot", "--target", "quickbooks"])
        .await;
    ok(&init);
    assert_eq!(init.result["data"]["object"], "contacts:Customer");
    assert!(
        init.result["data"]["objects"]
            .as_array()
            .unwrap()
            .contains(&json!("contacts:Customer"))
    );
    let yaml = init.result["data"]["yaml"].as_str().unwrap().to_owned();
    let mut cmd = w.command();
    cmd.args([
        "sync",
        "init",
        "--source",
        "hubspot",
        "--target",
        "quickbooks",
        "--raw",
    ]);
    let raw = cmd.output().unwrap();
    assert!(raw.status.success());
    assert_eq!(
        String::from_utf8(raw.stdout).unwrap(),
        yaml,
        "--raw prints the YAML alone"
    );

    // Saved and edited as a user would, it runs with --config.
    let edited = yaml.replace(
        "conflict_strategy: manual",
        "conflict_strategy: source_wins",
    );
    assert_ne!(edited, yaml);
    std::fs::write(w.dir.path().join("sync.yaml"), &edited).unwrap();
    let plan = w.sync(&["plan", "--config", "sync.yaml"]).await;
    ok(&plan);
    assert_eq!(
        plan.result["data"]["target"]["created"], 1,
        "{}",
        plan.stdout
    );
    let run = w.sync(&["run", "--config", "sync.yaml"]).await;
    ok(&run);
    assert_eq!(w.customers()["ida@example.com"]["GivenName"], "Ida");
    assert_eq!(
        w.hs.all("contacts").len(),
        1,
        "nothing came back as a duplicate"
    );
    assert!(Path::new(&w.dir.path().join(".syncctl/state.db")).exists());

    // Google Sheets → HubSpot has its own built-in.
    let sheets = w
        .sync(&["init", "--source", "google_sheets", "--target", "hubspot"])
        .await;
    ok(&sheets);
    assert_eq!(
        sheets.result["data"]["sync"],
        "google_sheets-hubspot-contacts"
    );

    // Unknown objects and pairs are usage errors (exit 2) that list the choices.
    for args in [
        vec![
            "init",
            "--source",
            "hubspot",
            "--target",
            "quickbooks",
            "--object",
            "tickets:Vendor",
        ],
        vec![
            "run",
            "--source",
            "hubspot",
            "--target",
            "quickbooks",
            "--object",
            "tickets:Vendor",
        ],
    ] {
        let r = w.sync(&args).await;
        assert_eq!(
            (r.code, r.error_class()),
            (2, Some("usage")),
            "{}",
            r.stdout
        );
        let msg = r.result["error"]["message"].as_str().unwrap();
        assert!(msg.contains("contacts:Customer"), "{msg}");
    }
    let r = w
        .sync(&["init", "--source", "csv", "--target", "sqlite"])
        .await;
    assert_eq!((r.code, r.error_class()), (2, Some("usage")));
    assert_eq!(w.qb_writes(), 1, "only the one real run wrote");
}
