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
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::hubspot::{CallKind, HubSpotFake};
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};
use syncctl_testkit::{FakeServer, Fault};

use crate::support::HubSpotQuickBooks;

const HS_TOKEN: &str = "pat-na1-headline-secret";

/// The fakes (see `support`) and this module's call counts and lookups.
struct World(HubSpotQuickBooks);

impl std::ops::Deref for World {
    type Target = HubSpotQuickBooks;
    fn deref(&self) -> &HubSpotQuickBooks {
        &self.0
    }
}

impl World {
    async fn new(hs: HubSpotFake, qb: QuickBooksFake) -> Self {
        Self(HubSpotQuickBooks::new(HS_TOKEN, hs, qb).await)
    }

    /// The headline command (`--direction bidirectional` unless `extra` names another).
    async fn headline(&self, extra: &[&str]) -> CliRun {
        let mut args = vec!["run", "--source", "hubspot", "--target", "quickbooks"];
        if !extra.contains(&"--direction") {
            args.extend(["--direction", "bidirectional"]);
        }
        args.extend_from_slice(extra);
        self.sync(&args).await
    }

    /// The `requestid` of every QuickBooks batch request, in order.
    fn batch_request_ids(&self) -> Vec<String> {
        self.qb_srv
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/batch"))
            .filter_map(|r| {
                r.query
                    .split('&')
                    .find_map(|p| p.strip_prefix("requestid=").map(str::to_owned))
            })
            .collect()
    }

    /// Write calls in the fakes' request logs: HubSpot batch writes, QuickBooks batches and
    /// single-entity posts (every QuickBooks POST but a long query).
    fn write_calls(&self) -> usize {
        let hs = self
            .hs_srv
            .requests()
            .iter()
            .filter(|r| r.method == Method::POST && is_hubspot_write(&r.path))
            .count();
        hs + self.qb_writes()
    }

    fn qb_reads(&self) -> usize {
        self.qb_srv
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/query") || r.path.ends_with("/cdc"))
            .count()
    }

    fn hs_reads(&self) -> usize {
        self.hs_srv
            .requests()
            .iter()
            .filter(|r| r.method == Method::GET || !is_hubspot_write(&r.path))
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

    /// Live HubSpot contacts by email; fails on a duplicate email.
    fn contacts(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for c in self.hs.all("contacts") {
            let email = c.properties.get("email").cloned().unwrap_or_default();
            assert!(
                out.insert(email.clone(), c.properties.clone()).is_none(),
                "duplicate contact for {email}"
            );
        }
        out
    }

    fn customer_id(&self, email: &str) -> String {
        self.customers()[email]["Id"].as_str().unwrap().to_owned()
    }

    fn contact_id(&self, email: &str) -> u64 {
        self.hs.find("contacts", "email", email)[0].id
    }
}

fn is_hubspot_write(path: &str) -> bool {
    [
        "/batch/create",
        "/batch/update",
        "/batch/upsert",
        "/batch/archive",
    ]
    .iter()
    .any(|w| path.ends_with(w))
}

fn customer(given: &str, family: &str, email: &str) -> Value {
    json!({"GivenName": given, "FamilyName": family, "PrimaryEmailAddr": {"Address": email}})
}

fn ok(r: &CliRun) {
    assert_eq!(r.code, 0, "stderr:\n{}\nstdout:\n{}", r.stderr, r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_headline_command_syncs_both_ways_with_merges_and_every_strategy() {
    let hs = HubSpotFake::new(HS_TOKEN);
    hs.seed(
        "contacts",
        &[
            ("email", "Ada@Example.com"),
            ("firstname", "Ada"),
            ("lastname", "Lovelace"),
        ],
    );
    hs.seed(
        "contacts",
        &[
            ("email", "grace@example.com"),
            ("firstname", "Grace"),
            ("lastname", "Hopper"),
            ("company", "Navy"),
            ("city", "Arlington"),
        ],
    );
    let qb = QuickBooksFake::new();
    let ada_customer = qb.insert("Customer", customer("Ada", "Lovelace", "ada@example.com"));
    qb.insert("Customer", customer("Alan", "Turing", "alan@example.com"));
    // Another Grace Hopper: QuickBooks' DisplayName must be unique (fault 6240).
    qb.insert(
        "Customer",
        customer("Grace", "Hopper", "grace.hopper@navy.example"),
    );
    let w = World::new(hs, qb).await;

    // `sync check` needs no config either: settings, connectivity and the mapping.
    let check = w
        .sync(&["check", "--source", "hubspot", "--target", "quickbooks"])
        .await;
    ok(&check);
    assert_eq!(w.write_calls(), 0, "check wrote");

    // A dry run reads both sides and writes nothing anywhere: no write call in either
    // fake's request log, no state store created.
    let plan = w.headline(&["--dry-run"]).await;
    ok(&plan);
    assert_eq!(plan.status(), "planned");
    assert_eq!(plan.result["dry_run"], true);
    assert_eq!(w.write_calls(), 0, "the dry run wrote");
    assert!(w.qb_reads() >= 1 && w.hs_reads() >= 1, "both sides read");
    assert!(
        !w.dir.path().join(".syncctl").exists(),
        "dry run made state"
    );
    assert_eq!(
        plan.result["data"]["target"]["created"], 1,
        "{}",
        plan.stdout
    );
    assert_eq!(
        plan.result["data"]["source"]["created"], 2,
        "{}",
        plan.stdout
    );

    // The run: grace is created in QuickBooks, alan in HubSpot, ada matched by email (HubSpot's
    // "Ada@Example.com" is the same key), nobody duplicated.
    let first = w.headline(&[]).await;
    ok(&first);
    assert_eq!(first.status(), "succeeded");
    assert_eq!(first.result["data"]["sync"], "hubspot-quickbooks-contacts");
    let customers = w.customers();
    assert_eq!(
        customers.keys().collect::<Vec<_>>(),
        [
            "ada@example.com",
            "alan@example.com",
            "grace.hopper@navy.example",
            "grace@example.com"
        ]
    );
    assert_eq!(customers["ada@example.com"]["Id"], json!(ada_customer));
    assert_eq!(customers["grace@example.com"]["GivenName"], "Grace");
    assert_eq!(customers["grace@example.com"]["CompanyName"], "Navy");
    assert_eq!(
        customers["grace@example.com"]["BillAddr"]["City"],
        "Arlington"
    );
    assert_eq!(
        customers["grace@example.com"]["DisplayName"], "Grace Hopper (grace@example.com)",
        "DisplayName derived from the names, and on a clash disambiguated with the email"
    );
    let contacts = w.contacts();
    assert_eq!(
        contacts.keys().collect::<Vec<_>>(),
        [
            "ada@example.com",
            "alan@example.com",
            "grace.hopper@navy.example",
            "grace@example.com"
        ]
    );
    assert_eq!(contacts["alan@example.com"]["lastname"], "Turing");
    assert!(
        w.dir.path().join(".syncctl/state.db").exists(),
        "default state store"
    );

    // Nothing changed: no write call, one read call per object and side.
    assert_eq!(
        customers["grace.hopper@navy.example"]["DisplayName"], "Grace Hopper",
        "the other Grace keeps her name"
    );
    let (writes, hs_reads, qb_reads) = (w.write_calls(), w.hs_reads(), w.qb_reads());
    let quiet = w.headline(&[]).await;
    ok(&quiet);
    assert_eq!(
        w.write_calls(),
        writes,
        "a rerun with nothing changed wrote"
    );
    assert_eq!(w.hs_reads() - hs_reads, 1, "one HubSpot read");
    assert_eq!(w.qb_reads() - qb_reads, 1, "one QuickBooks read");

    // Updates both ways.
    let grace = w.contact_id("grace@example.com");
    w.hs.edit("contacts", grace, &[("phone", "+1 202 555 0143")]);
    let alan = w.customer_id("alan@example.com");
    w.qb.edit("Customer", &alan, json!({"FamilyName": "Mathison-Turing"}));
    ok(&w.headline(&[]).await);
    assert_eq!(
        w.customers()["grace@example.com"]["PrimaryPhone"]["FreeFormNumber"],
        "+12025550143"
    );
    assert_eq!(
        w.contacts()["alan@example.com"]["lastname"],
        "Mathison-Turing"
    );

    // A three-way merge: different fields changed on each side both survive.
    let ada = w.contact_id("ada@example.com");
    w.hs.edit("contacts", ada, &[("firstname", "Augusta Ada")]);
    w.qb.edit(
        "Customer",
        &ada_customer,
        json!({"BillAddr": {"City": "London"}}),
    );
    let merged = w.headline(&[]).await;
    ok(&merged);
    assert_eq!(merged.result["data"]["conflicts"]["detected"], 0);
    assert_eq!(w.customers()["ada@example.com"]["GivenName"], "Augusta Ada");
    assert_eq!(w.contacts()["ada@example.com"]["city"], "London");
    assert_eq!(
        w.customers()["ada@example.com"]["BillAddr"]["City"],
        "London"
    );

    // manual (the built-in's strategy): the conflict is queued, nothing written for it.
    w.hs.edit("contacts", ada, &[("lastname", "King")]);
    w.qb.edit("Customer", &ada_customer, json!({"FamilyName": "Byron"}));
    let writes = w.write_calls();
    let queued = w.headline(&[]).await;
    ok(&queued);
    assert_eq!(
        queued.result["data"]["conflicts"]["queued"], 1,
        "{}",
        queued.stdout
    );
    assert_eq!(w.write_calls(), writes, "a queued conflict wrote");
    let listed = w
        .sync(&["conflicts", "list", "--sync", "hubspot-quickbooks-contacts"])
        .await;
    ok(&listed);
    let items = listed.result["data"]["conflicts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 1, "{}", listed.stdout);
    let id = items[0]["id"].as_i64().unwrap().to_string();
    assert!(items[0].to_string().contains("Byron"), "{}", items[0]);
    ok(&w
        .sync(&["conflicts", "resolve", &id, "--keep", "target"])
        .await);
    ok(&w.headline(&[]).await);
    assert_eq!(w.contacts()["ada@example.com"]["lastname"], "Byron");
    assert_eq!(w.customers()["ada@example.com"]["FamilyName"], "Byron");
    let after = w
        .sync(&["conflicts", "list", "--sync", "hubspot-quickbooks-contacts"])
        .await;
    assert_eq!(
        after.result["data"]["conflicts"],
        json!([]),
        "{}",
        after.stdout
    );

    // source_wins, target_wins and latest, each on a fresh same-field conflict.
    for (strategy, hs_value, qb_value, want) in [
        ("source_wins", "Hs1", "Qb1", "Hs1"),
        ("target_wins", "Hs2", "Qb2", "Qb2"),
        ("latest", "Hs3", "Qb3", "Qb3"),
    ] {
        w.hs.edit("contacts", grace, &[("lastname", hs_value)]);
        // QuickBooks' edit comes second, so `latest` takes it.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let grace_customer = w.customer_id("grace@example.com");
        w.qb.edit("Customer", &grace_customer, json!({"FamilyName": qb_value}));
        let r = w.headline(&["--conflict-strategy", strategy]).await;
        ok(&r);
        assert_eq!(
            r.result["data"]["conflicts"]["resolved"], 1,
            "{strategy}: {}",
            r.stdout
        );
        assert_eq!(
            w.contacts()["grace@example.com"]["lastname"],
            want,
            "{strategy}"
        );
        assert_eq!(
            w.customers()["grace@example.com"]["FamilyName"],
            want,
            "{strategy}"
        );
    }

    // After all that: still one record per person on each side, and quiet.
    assert_eq!(w.customers().len(), 4);
    assert_eq!(w.contacts().len(), 4);
    let writes = w.write_calls();
    ok(&w.headline(&[]).await);
    assert_eq!(w.write_calls(), writes, "values flipped back and forth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_is_a_cap_and_calls_stay_within_the_bound() {
    const N: usize = 250;
    let hs = HubSpotFake::new(HS_TOKEN);
    for i in 0..N {
        let email = format!("person{i:04}@example.com");
        hs.seed(
            "contacts",
            &[
                ("email", email.as_str()),
                ("firstname", "Person"),
                ("lastname", &format!("Number {i}")),
            ],
        );
    }
    let w = World::new(hs, QuickBooksFake::new()).await;

    // --batch-size above both vendors' maxima: each side uses its own maximum and says so.
    let first = w
        .headline(&["--direction", "source_to_target", "--batch-size", "500"])
        .await;
    ok(&first);
    assert_eq!(first.result["data"]["source"]["batch_size"], 100);
    assert_eq!(first.result["data"]["target"]["batch_size"], 30);
    assert_eq!(first.result["data"]["target"]["created"], N);
    assert_eq!(w.customers().len(), N);
    let batches = w
        .qb_srv
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/batch"))
        .count();
    assert_eq!(batches, N.div_ceil(30), "one batch per 30 creates");

    // N changed contacts HubSpot → QuickBooks: ⌈N/100⌉ HubSpot reads + ⌈N/30⌉ batch writes
    // + ⌈N/1000⌉ QuickBooks reads + a small constant.
    for c in w.hs.all("contacts") {
        w.hs.edit("contacts", c.id, &[("firstname", "Changed")]);
    }
    let hs_before = w.hs_srv.requests().len();
    let qb_before = w.qb_srv.requests().len();
    let (qbw, qbr) = (w.qb_writes(), w.qb_reads());
    let changed = w.headline(&["--direction", "source_to_target"]).await;
    ok(&changed);
    assert_eq!(
        changed.result["data"]["target"]["updated"], N,
        "{}",
        changed.stdout
    );
    let hs_calls = w.hs_srv.requests().len() - hs_before;
    let qb_calls = w.qb_srv.requests().len() - qb_before;
    let (writes, reads) = (w.qb_writes() - qbw, w.qb_reads() - qbr);
    const SMALL: usize = 2;
    assert!(
        hs_calls <= N.div_ceil(100) + SMALL,
        "HubSpot calls {hs_calls}"
    );
    assert_eq!(writes, N.div_ceil(30), "QuickBooks batch writes");
    assert!(
        reads <= N.div_ceil(1000) + SMALL,
        "QuickBooks reads {reads}"
    );
    assert_eq!(qb_calls, writes + reads, "no other QuickBooks call");
    assert!(
        w.customers().values().all(|c| c["GivenName"] == "Changed"),
        "every change arrived"
    );

    // A smaller cap is used as given on both sides.
    for c in w.hs.all("contacts").iter().take(12) {
        w.hs.edit("contacts", c.id, &[("firstname", "Again")]);
    }
    let qbw = w.qb_writes();
    let small = w
        .headline(&["--direction", "source_to_target", "--batch-size", "5"])
        .await;
    ok(&small);
    assert_eq!(small.result["data"]["source"]["batch_size"], 5);
    assert_eq!(small.result["data"]["target"]["batch_size"], 5);
    assert_eq!(w.qb_writes() - qbw, 3, "12 updates in batches of 5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_storms_and_server_errors_lose_nothing() {
    let hs = HubSpotFake::new(HS_TOKEN);
    for i in 0..40 {
        let email = format!("storm{i:02}@example.com");
        hs.seed(
            "contacts",
            &[
                ("email", email.as_str()),
                ("firstname", "Storm"),
                ("lastname", &format!("Front {i}")),
            ],
        );
    }
    let qb = QuickBooksFake::new();
    for i in 0..40 {
        qb.insert(
            "Customer",
            customer(
                "Calm",
                &format!("Number {i}"),
                &format!("calm{i:02}@example.com"),
            ),
        );
    }
    let w = World::new(hs, qb).await;
    // HubSpot: a 429 storm on writes and 5xx bursts on reads; QuickBooks: throttles
    // (429 ThrottlingFault, no Retry-After) on reads and a burst of 5xx on batch writes.
    w.hs.fail_next(CallKind::BatchUpsert, 429, Some(1), 3);
    w.hs.fail_next(CallKind::List, 502, None, 2);
    w.hs_srv
        .inject_on(Some(Method::POST), "/batch/read", Fault::status(503), 2);
    w.qb.throttle_next(2);
    w.qb_srv
        .inject_on(Some(Method::POST), "/batch", Fault::status(503), 2);
    let started = Instant::now();
    let r = w.headline(&[]).await;
    ok(&r);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "backoff took {:?}",
        started.elapsed()
    );
    assert_eq!(r.status(), "succeeded");
    assert!(w.qb.throttled() >= 2);
    assert!(
        r.stderr.contains("HTTP 503") && r.stderr.contains("HTTP 429"),
        "{}",
        r.stderr
    );
    assert!(w.hs.refused() >= 3);
    assert_eq!(r.result["data"]["target"]["created"], 40);
    assert_eq!(r.result["data"]["source"]["created"], 40);
    assert_eq!(w.customers().len(), 80, "nothing lost or duplicated");
    assert_eq!(w.contacts().len(), 80, "nothing lost or duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_is_lost_is_replayed_by_its_requestid() {
    let hs = HubSpotFake::new(HS_TOKEN);
    for i in 0..45 {
        let email = format!("lost{i:02}@example.com");
        hs.seed(
            "contacts",
            &[
                ("email", email.as_str()),
                ("firstname", "Lost"),
                ("lastname", &format!("Answer {i}")),
            ],
        );
    }
    let w = World::new(hs, QuickBooksFake::new()).await;
    // QuickBooks applies the first batch, then the connection breaks before the answer.
    w.qb_srv
        .inject_on(Some(Method::POST), "/batch", Fault::DropAfterHandling, 1);
    let r = w.headline(&[]).await;
    ok(&r);
    assert_eq!(r.result["data"]["target"]["created"], 45, "{}", r.stdout);
    let ids = w.batch_request_ids();
    let sizes: Vec<usize> = w
        .qb_srv
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/batch"))
        .map(|r| r.json()["BatchItemRequest"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "two batches, the first sent twice: {ids:?} {sizes:?}"
    );
    assert_eq!(ids[0], ids[1], "the resend carries the same requestid");
    assert_eq!(w.qb.applied_ops(), 45, "the resend applied nothing again");
    assert_eq!(w.customers().len(), 45);
}

/// Holds every QuickBooks batch answer back until the client has been killed: the batch is
/// applied, the answer never arrives.
async fn slow_batch_answers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let batch = req.uri().path().ends_with("/batch");
    let res = next.run(req).await;
    if batch {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_write_reruns_without_duplicates() {
    use std::os::unix::process::ExitStatusExt;
    const N: usize = 120;
    let hs = HubSpotFake::new(HS_TOKEN);
    for i in 0..N {
        let email = format!("kill{i:03}@example.com");
        hs.seed(
            "contacts",
            &[
                ("email", email.as_str()),
                ("firstname", "K"),
                ("lastname", "Ill"),
            ],
        );
    }
    let qb = QuickBooksFake::new();
    let hs_srv = FakeServer::start(hs.router()).await;
    let qb_srv = FakeServer::start(
        qb.router()
            .layer(axum::middleware::from_fn(slow_batch_answers)),
    )
    .await;
    let w = World(HubSpotQuickBooks::served(HS_TOKEN, hs, qb, hs_srv, qb_srv));
    let bin = assert_cmd::cargo::cargo_bin("syncctl");
    let mut child = std::process::Command::new(bin)
        .current_dir(w.dir.path())
        .env_clear()
        .env("HUBSPOT_API_TOKEN", HS_TOKEN)
        .env("HUBSPOT_BASE_URL", w.hs_srv.url())
        .env("QUICKBOOKS_ACCESS_TOKEN", DEMO_ACCESS_TOKEN)
        .env("QUICKBOOKS_REALM_ID", DEMO_REALM)
        .env("QUICKBOOKS_BASE_URL", w.qb_srv.url())
        .args([
            "sync",
            "run",
            "--source",
            "hubspot",
            "--target",
            "quickbooks",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once QuickBooks has applied a batch whose answer is still on its way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.qb.applied_ops() < 30 {
        assert!(Instant::now() < deadline, "no batch reached QuickBooks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    let applied = w.qb.applied_ops();
    assert!(
        (applied as usize) < N,
        "killed too late: {applied} of {N} applied"
    );

    let rerun = w.headline(&[]).await;
    ok(&rerun);
    let customers = w.customers();
    assert_eq!(customers.len(), N, "every contact once in QuickBooks");
    assert_eq!(w.contacts().len(), N, "no contact duplicated back");
    assert_eq!(
        w.qb.all("Customer").len(),
        N,
        "no duplicate customer, active or not"
    );
    // The rerun recovered the killed run's creates (found by email) instead of creating again.
    assert_eq!(w.qb.applied_ops() as usize, N, "each customer created once");
    ok(&w.headline(&[]).await);
    let writes = w.write_calls();
    ok(&w.headline(&[]).await);
    assert_eq!(w.write_calls(), writes, "converged");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn companies_sync_with_business_customers_by_name_and_leave_people_alone() {
    let hs = HubSpotFake::new(HS_TOKEN);
    hs.seed(
        "companies",
        &[("name", "Acme Corp"), ("city", "Springfield")],
    );
    hs.seed(
        "companies",
        &[("name", "Globex"), ("phone", "+1 555 0100 200")],
    );
    let qb = QuickBooksFake::new();
    let globex = qb.insert(
        "Customer",
        json!({"DisplayName": "Globex", "CompanyName": "Globex", "PrimaryPhone": {"FreeFormNumber": "+15550100200"}}),
    );
    qb.insert(
        "Customer",
        json!({"DisplayName": "Initech", "BillAddr": {"City": "Austin"}}),
    );
    qb.insert("Customer", customer("Ada", "Lovelace", "ada@example.com"));
    let w = World::new(hs, qb).await;

    let r = w.headline(&["--object", "companies:Customer"]).await;
    ok(&r);
    assert_eq!(r.result["data"]["sync"], "hubspot-quickbooks-companies");
    assert_eq!(r.result["data"]["source"]["object"], "companies");
    assert_eq!(r.result["data"]["target"]["created"], 1, "{}", r.stdout);
    assert_eq!(r.result["data"]["source"]["created"], 1, "{}", r.stdout);
    assert_eq!(
        r.result["data"]["target"]["out_of_scope"], 1,
        "the person is no company: {}",
        r.stdout
    );
    let by_name: BTreeMap<String, Value> =
        w.qb.all("Customer")
            .into_iter()
            .map(|c| (c["DisplayName"].as_str().unwrap().to_owned(), c))
            .collect();
    assert_eq!(
        by_name.keys().collect::<Vec<_>>(),
        ["Acme Corp", "Ada Lovelace", "Globex", "Initech"],
        "Globex matched by name, not duplicated"
    );
    assert_eq!(by_name["Acme Corp"]["BillAddr"]["City"], "Springfield");
    assert_eq!(by_name["Globex"]["Id"], json!(globex));
    let mut companies: Vec<(String, String)> =
        w.hs.all("companies")
            .into_iter()
            .map(|c| {
                (
                    c.properties["name"].clone(),
                    c.properties.get("city").cloned().unwrap_or_default(),
                )
            })
            .collect();
    companies.sort();
    assert_eq!(
        companies,
        [
            ("Acme Corp".to_owned(), "Springfield".to_owned()),
            ("Globex".to_owned(), String::new()),
            ("Initech".to_owned(), "Austin".to_owned()),
        ]
    );
    let writes = w.write_calls();
    ok(&w.headline(&["--object", "companies:Customer"]).await);
    assert_eq!(
        w.write_calls(),
        writes,
        "a rerun with nothing changed wrote"
    );
}
