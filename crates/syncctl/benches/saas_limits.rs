//! HubSpot ↔ QuickBooks through the sync engine against the stateful fakes enforcing the
//! vendors' published limits, with the clock scaled so a 10 000-record run takes seconds.
//!
//! Both fakes shorten their rate-limit windows by SCALE (`HubSpotFake::time_scale`,
//! `QuickBooksFake::time_scale`) and both connectors' limiters run SCALE times faster
//! (`syncctl_hubspot::build_time_scaled`, `syncctl_quickbooks::Limits::scaled`): library
//! calls only, so no setting of the shipped binary can exceed a vendor's limits. Every figure
//! in scaled seconds is also given unscaled (× SCALE).
//!
//! Per direction (HubSpot → QuickBooks, then QuickBooks → HubSpot, each on fresh fakes):
//! a first load of N records, a run with all N changed, and a rerun with nothing changed.
//! Each run reports the calls used (from the fakes' request logs) against the minimum the
//! batch and page sizes allow, and the wall time against the floor the published limits
//! impose on that minimum. The data is checked on the fakes' side: N records arrived, and a
//! sample of them holds the values of its counterpart.
//!
//! `scripts/bench/saas_limits.sh [N] [SCALE]` runs it (default 10000 60).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use syncctl_core::{BuildContext, Connector, MemoryCredentials};
use syncctl_http::RetryPolicy;
use syncctl_quickbooks::{
    ClientOptions, Entity, Limits, QuickBooksClient, QuickBooksConnector, QuickBooksSettings,
};
use syncctl_sync::{Direction, RunSettings, StateStore, SyncConfig};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::hubspot::HubSpotFake;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};
use tokio_util::sync::CancellationToken;

const HS_TOKEN: &str = "pat-na1-bench-token";
/// HubSpot: calls per rolling 10 s (Professional), searches per second, inputs per batch.
const HS_PER_10S: usize = 190;
const HS_SEARCH_PER_S: usize = 5;
const HS_BATCH: usize = 100;
/// QuickBooks: requests and batch requests per minute per realm, operations per batch,
/// results per query.
const QB_PER_MIN: usize = 500;
const QB_BATCHES_PER_MIN: usize = 40;
const QB_BATCH: usize = 30;
const QB_PAGE: usize = 1000;

/// Both fakes, served, and the state store of the sync.
struct World {
    hs: HubSpotFake,
    qb: QuickBooksFake,
    hs_srv: FakeServer,
    qb_srv: FakeServer,
    scale: f64,
    store: StateStore,
    _dir: tempfile::TempDir,
}

/// Calls of one run, from the fakes' request logs.
#[derive(Debug, Default, Clone, Copy)]
struct Calls {
    hs_reads: usize,
    hs_searches: usize,
    hs_writes: usize,
    qb_reads: usize,
    qb_batches: usize,
    qb_other_writes: usize,
    /// Of these, calls the fakes refused with 429 (and the clients retried).
    refused: u64,
}

impl Calls {
    fn hs(&self) -> usize {
        self.hs_reads + self.hs_writes
    }
    fn qb(&self) -> usize {
        self.qb_reads + self.qb_batches + self.qb_other_writes
    }
    fn total(&self) -> usize {
        self.hs() + self.qb()
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

impl World {
    async fn new(scale: f64) -> Self {
        let hs = HubSpotFake::new(HS_TOKEN).time_scale(scale);
        let qb = QuickBooksFake::new().time_scale(scale);
        let hs_srv = FakeServer::start(hs.router()).await;
        let qb_srv = FakeServer::start(qb.router()).await;
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open("sqlite://state.db", dir.path())
            .await
            .unwrap();
        Self {
            hs,
            qb,
            hs_srv,
            qb_srv,
            scale,
            store,
            _dir: dir,
        }
    }

    fn hubspot(&self) -> Box<dyn Connector> {
        let url = self.hs_srv.url();
        let ctx = BuildContext::new(".").with_env(move |k| match k {
            "HUBSPOT_API_TOKEN" => Some(HS_TOKEN.to_owned()),
            "HUBSPOT_BASE_URL" => Some(url.clone()),
            _ => None,
        });
        Box::new(
            syncctl_hubspot::build_time_scaled(
                &ctx,
                json!({"connector": "hubspot", "object": "contacts"}),
                self.scale,
            )
            .unwrap(),
        )
    }

    fn quickbooks(&self) -> Box<dyn Connector> {
        let client = QuickBooksClient::new(
            &QuickBooksSettings {
                realm_id: DEMO_REALM.into(),
                base_url: self.qb_srv.url(),
                access_token: Some(SecretString::from(DEMO_ACCESS_TOKEN.to_owned())),
                refresh: None,
            },
            {
                let defaults = ClientOptions::default();
                // Intuit's 429s carry no Retry-After: the backoff is in scaled seconds too.
                let retry = RetryPolicy {
                    base_delay: defaults.retry.base_delay.div_f64(self.scale),
                    max_delay: defaults.retry.max_delay.div_f64(self.scale),
                    ..defaults.retry
                };
                ClientOptions {
                    limits: Limits::default().scaled(self.scale),
                    retry,
                    credentials: Arc::new(MemoryCredentials::default()),
                    ..defaults
                }
            },
        )
        .unwrap();
        Box::new(QuickBooksConnector::new(client, Entity::Customer))
    }

    fn calls(&self) -> Calls {
        let mut c = Calls {
            refused: self.hs.refused() + self.qb.throttled(),
            ..Calls::default()
        };
        for r in self.hs_srv.requests() {
            if r.method == Method::POST && is_hubspot_write(&r.path) {
                c.hs_writes += 1;
            } else {
                c.hs_reads += 1;
                c.hs_searches += usize::from(r.path.ends_with("/search"));
            }
        }
        for r in self.qb_srv.requests() {
            if r.path.ends_with("/query") || r.path.ends_with("/cdc") {
                c.qb_reads += 1;
            } else if r.path.ends_with("/batch") {
                c.qb_batches += 1;
            } else if r.method == Method::POST {
                c.qb_other_writes += 1;
            } else {
                c.qb_reads += 1;
            }
        }
        c
    }

    /// One engine run in `direction` with the built-in contacts ↔ customers mapping.
    async fn run(&self, direction: Direction) -> (syncctl_sync::RunReport, Calls, Duration) {
        let mut config = builtin_config();
        config.direction = direction;
        // The overlap re-reads the last 5 minutes of changes as a margin for the vendors'
        // clock skew; the fakes run on this process's clock, and the bench's runs follow each
        // other within seconds, so with it every run would re-read the one before.
        config.overlap = Duration::ZERO;
        let settings = RunSettings {
            config,
            dry_run: false,
            full_refresh: false,
            include_plan: false,
            plan_limit: 0,
            only_links: None,
            invoked_by: "saas_limits bench".into(),
            args: json!({}),
            lock_lease: Duration::from_secs(600),
            rebind: false,
            breakers: [None, None],
        };
        let (source, target) = (self.hubspot(), self.quickbooks());
        let before = self.calls();
        let started = Instant::now();
        let outcome = syncctl_sync::run(
            &settings,
            source.as_ref(),
            target.as_ref(),
            &self.store,
            &CancellationToken::new(),
        )
        .await;
        let wall = started.elapsed();
        if let Some(e) = &outcome.error {
            panic!("the run failed: {e}");
        }
        let after = self.calls();
        let used = Calls {
            hs_reads: after.hs_reads - before.hs_reads,
            hs_searches: after.hs_searches - before.hs_searches,
            hs_writes: after.hs_writes - before.hs_writes,
            qb_reads: after.qb_reads - before.qb_reads,
            qb_batches: after.qb_batches - before.qb_batches,
            qb_other_writes: after.qb_other_writes - before.qb_other_writes,
            refused: after.refused - before.refused,
        };
        (outcome.report, used, wall)
    }

    /// Live customers by email.
    fn customers(&self) -> BTreeMap<String, Value> {
        self.qb
            .all("Customer")
            .into_iter()
            .filter_map(|c| {
                let email = c["PrimaryEmailAddr"]["Address"].as_str()?.to_lowercase();
                Some((email, c))
            })
            .collect()
    }

    /// Live contacts by email.
    fn contacts(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.hs
            .all("contacts")
            .into_iter()
            .filter_map(|c| Some((c.properties.get("email")?.clone(), c.properties)))
            .collect()
    }
}

fn builtin_config() -> SyncConfig {
    let b = syncctl_sync::builtin::choose("hubspot", "quickbooks", None).unwrap();
    syncctl_sync::parse_config_with(&b.origin(), b.yaml, &|_| None).unwrap()
}

/// The least time the published limits allow for these calls, in real (unscaled) seconds,
/// with every window fresh at the start: the first window's allowance goes at once, each
/// further one a window later. Limits on different systems overlap, so the floor is the
/// largest of them.
fn floor_secs(c: &Calls) -> f64 {
    let windows = |calls: usize, per_window: usize| calls.div_ceil(per_window).saturating_sub(1);
    [
        windows(c.qb_batches, QB_BATCHES_PER_MIN) as f64 * 60.0,
        windows(c.qb(), QB_PER_MIN) as f64 * 60.0,
        windows(c.hs(), HS_PER_10S) as f64 * 10.0,
        windows(c.hs_searches, HS_SEARCH_PER_S) as f64,
    ]
    .into_iter()
    .fold(0.0, f64::max)
}

/// One row of the report.
struct Row {
    label: String,
    used: Calls,
    minimum: Calls,
    wall: Duration,
}

fn print_row(r: &Row, scale: f64) {
    let floor_used = floor_secs(&r.used) / scale;
    let floor_min = floor_secs(&r.minimum) / scale;
    println!(
        "{:<55} calls {:>4} (minimum {:>4}: HubSpot {}/{} QuickBooks {}/{} [batches {}/{}], 429s {}) wall {:>6.2} s (floor {:>5.2} s for the minimum, {:>5.2} s for the calls made; unscaled {:.0} s vs {:.0} s)",
        r.label,
        r.used.total(),
        r.minimum.total(),
        r.used.hs(),
        r.minimum.hs(),
        r.used.qb(),
        r.minimum.qb(),
        r.used.qb_batches,
        r.minimum.qb_batches,
        r.used.refused,
        r.wall.as_secs_f64(),
        floor_min,
        floor_used,
        r.wall.as_secs_f64() * scale,
        floor_min * scale,
    );
}

fn json_row(r: &Row, scale: f64) -> Value {
    json!({
        "run": r.label,
        "calls": r.used.total(),
        "calls_minimum": r.minimum.total(),
        "hubspot_calls": r.used.hs(),
        "hubspot_minimum": r.minimum.hs(),
        "quickbooks_calls": r.used.qb(),
        "quickbooks_minimum": r.minimum.qb(),
        "quickbooks_batches": r.used.qb_batches,
        "refused_429": r.used.refused,
        "wall_s": r.wall.as_secs_f64(),
        "floor_s": floor_secs(&r.minimum) / scale,
        "floor_of_calls_made_s": floor_secs(&r.used) / scale,
    })
}

/// The minimum for `n` changed records HubSpot → QuickBooks (issue #14, without its "small
/// constant"): ⌈n/100⌉ HubSpot reads, ⌈n/30⌉ QuickBooks batch writes, ⌈n/1000⌉ QuickBooks
/// reads. Changes are found by search (5 per second).
fn minimum_hs_to_qb(n: usize, changed: bool) -> Calls {
    Calls {
        hs_reads: n.div_ceil(HS_BATCH),
        hs_searches: if changed { n.div_ceil(HS_BATCH) } else { 0 },
        qb_reads: n.div_ceil(QB_PAGE),
        qb_batches: n.div_ceil(QB_BATCH),
        ..Calls::default()
    }
}

/// The same the other way: ⌈n/1000⌉ QuickBooks reads, ⌈n/100⌉ HubSpot batch writes and
/// ⌈n/100⌉ HubSpot reads (the counterparts, 100 a `batch/read`).
fn minimum_qb_to_hs(n: usize) -> Calls {
    Calls {
        hs_reads: n.div_ceil(HS_BATCH),
        hs_writes: n.div_ceil(HS_BATCH),
        qb_reads: n.div_ceil(QB_PAGE),
        ..Calls::default()
    }
}

/// Nothing changed, both directions: one read per side, no write.
fn quiet_minimum() -> Calls {
    Calls {
        hs_reads: 1,
        hs_searches: 1,
        qb_reads: 1,
        ..Calls::default()
    }
}

/// A data check on the fakes' side; a failure ends the bench with a non-zero exit.
fn check(ok: bool, what: &str) {
    assert!(ok, "data check failed: {what}");
}

fn sample(n: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by((n / 20).max(1)).chain([n - 1])
}

fn email(i: usize) -> String {
    format!("person{i:05}@example.com")
}

/// A person as either side holds it: given name, family name, company.
type Person = [Option<String>; 3];

/// What one direction of the bench does on its own sides.
struct Way {
    /// `HubSpot → QuickBooks`.
    name: &'static str,
    direction: Direction,
    /// Puts people 0..n on the side read from: `Given{i}`, `Bench`, `Company {i % 97}`.
    seed: fn(&World, usize),
    /// Renames every `Given{i}` to `Changed{i}` on the side read from.
    change: fn(&World),
    /// The people on the side written to, by email.
    arrived: fn(&World) -> BTreeMap<String, Person>,
    /// The written side's created and updated counts.
    written: fn(&syncctl_sync::RunReport) -> (u64, u64),
    /// The least calls for n people, new or changed.
    minimum: fn(usize, bool) -> Calls,
}

const HUBSPOT_TO_QUICKBOOKS: Way = Way {
    name: "HubSpot → QuickBooks",
    direction: Direction::SourceToTarget,
    seed: |w, n| {
        for i in 0..n {
            w.hs.seed(
                "contacts",
                &[
                    ("email", &email(i)),
                    ("firstname", &format!("Given{i}")),
                    ("lastname", "Bench"),
                    ("company", &format!("Company {}", i % 97)),
                ],
            );
        }
    },
    change: |w| {
        for c in w.hs.all("contacts") {
            let i = c.properties["firstname"]
                .trim_start_matches("Given")
                .to_owned();
            w.hs.edit("contacts", c.id, &[("firstname", &format!("Changed{i}"))]);
        }
    },
    arrived: |w| {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        w.customers()
            .into_iter()
            .map(|(email, c)| {
                let person = [
                    text(&c["GivenName"]),
                    text(&c["FamilyName"]),
                    text(&c["CompanyName"]),
                ];
                (email, person)
            })
            .collect()
    },
    written: |r| (r.target.counts.created, r.target.counts.updated),
    minimum: minimum_hs_to_qb,
};

const QUICKBOOKS_TO_HUBSPOT: Way = Way {
    name: "QuickBooks → HubSpot",
    direction: Direction::TargetToSource,
    seed: |w, n| {
        for i in 0..n {
            w.qb.insert(
                "Customer",
                json!({
                    "GivenName": format!("Given{i}"),
                    "FamilyName": "Bench",
                    "CompanyName": format!("Company {}", i % 97),
                    "PrimaryEmailAddr": {"Address": email(i)},
                }),
            );
        }
    },
    change: |w| {
        for c in w.qb.all("Customer") {
            let id = c["Id"].as_str().unwrap().to_owned();
            let given = c["GivenName"].as_str().unwrap().replace("Given", "Changed");
            w.qb.edit("Customer", &id, json!({"GivenName": given}));
        }
    },
    arrived: |w| {
        w.contacts()
            .into_iter()
            .map(|(email, c)| {
                let person = ["firstname", "lastname", "company"].map(|p| c.get(p).cloned());
                (email, person)
            })
            .collect()
    },
    written: |r| (r.source.counts.created, r.source.counts.updated),
    minimum: |n, _| minimum_qb_to_hs(n),
};

/// A first load of `n` people one way, a run with all of them changed, and a rerun with
/// nothing changed both ways, on fresh fakes.
async fn one_way(way: &Way, n: usize, scale: f64) -> Vec<Row> {
    let w = World::new(scale).await;
    (way.seed)(&w, n);
    let mut rows = Vec::new();
    for changed in [false, true] {
        let (run, given, label, what) = if changed {
            ("changes", "Changed", "changed", "updated")
        } else {
            ("first load", "Given", "new", "created")
        };
        if changed {
            (way.change)(&w);
        }
        let (report, used, wall) = w.run(way.direction).await;
        let (created, updated) = (way.written)(&report);
        let count = if changed { updated } else { created };
        let people = (way.arrived)(&w);
        check(
            count == n as u64 && people.len() == n,
            &format!(
                "{run} {}: {count} {what}, {} people, want {n}",
                way.name,
                people.len()
            ),
        );
        for i in sample(n) {
            let want = [
                Some(format!("{given}{i}")),
                Some("Bench".to_owned()),
                Some(format!("Company {}", i % 97)),
            ];
            let got = people.get(&email(i));
            check(got == Some(&want), &format!("{} holds {got:?}", email(i)));
        }
        rows.push(Row {
            label: format!("{}: {n} {label}", way.name),
            used,
            minimum: (way.minimum)(n, changed),
            wall,
        });
    }

    let (_, used, wall) = w.run(Direction::Bidirectional).await;
    check(
        used.hs_writes + used.qb_batches + used.qb_other_writes == 0,
        "a rerun with nothing changed wrote",
    );
    rows.push(Row {
        label: format!("after {}: nothing changed, both ways", way.name),
        used,
        minimum: quiet_minimum(),
        wall,
    });
    rows
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let scale: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(60.0);
    println!(
        "HubSpot (190 calls/10 s, 5 searches/s, batches ≤ 100) ↔ QuickBooks (500 requests/min, 40 batches/min, 10 concurrent, batches ≤ 30, pages ≤ 1000); {n} records; clock ×{scale}"
    );
    let mut rows = Vec::new();
    for way in [&HUBSPOT_TO_QUICKBOOKS, &QUICKBOOKS_TO_HUBSPOT] {
        let done = one_way(way, n, scale).await;
        for r in &done {
            print_row(r, scale);
        }
        rows.extend(done);
    }
    let summary: Vec<Value> = rows.iter().map(|r| json_row(r, scale)).collect();
    println!(
        "{}",
        json!({"records": n, "time_scale": scale, "runs": summary})
    );
}
