//! Engine tests over in-memory connectors and an in-memory SQLite state store, including the
//! property tests: a second run changes nothing, any interleaving of edits converges to the
//! strategy's answer, no record is lost, and a dry run plans exactly what the run does.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{ConflictStrategy, parse_config};
use crate::engine::{RunOutcome, RunSettings, run};
use crate::report::PlanEntry;
use crate::store::StateStore;
use crate::testing::{Clock, Memory};

fn yaml(strategy: &str, extra: &str) -> String {
    format!(
        "name: t\nsource: {{connector: memory}}\ntarget: {{connector: memory}}\n\
         key: {{source: email, target: email}}\n\
         fields:\n  - {{source: email, target: email}}\n  - {{source: name, target: name}}\n  - {{source: phone, target: phone}}\n\
         conflict_strategy: {strategy}\nbatch_size: 2\n{extra}"
    )
}

fn settings(y: &str) -> RunSettings {
    RunSettings {
        config: parse_config("t.yaml", y).unwrap(),
        dry_run: false,
        full_refresh: false,
        include_plan: true,
        plan_limit: 0,
        only_links: None,
        invoked_by: "test".into(),
        args: json!({}),
        lock_lease: Duration::from_secs(60),
        rebind: false,
        breakers: [None, None],
    }
}

struct Fx {
    s: Memory,
    t: Memory,
    store: StateStore,
    settings: RunSettings,
}

impl Fx {
    async fn new(strategy: &str, extra: &str) -> Self {
        let clock = Clock::default();
        Self {
            s: Memory::new("s", &["email", "name", "phone"], &clock),
            t: Memory::new("t", &["email", "name", "phone"], &clock),
            store: StateStore::memory().await.unwrap(),
            settings: settings(&yaml(strategy, extra)),
        }
    }

    async fn run(&self) -> RunOutcome {
        run(
            &self.settings,
            &self.s,
            &self.t,
            &self.store,
            &CancellationToken::new(),
        )
        .await
    }

    async fn plan(&self) -> RunOutcome {
        let mut s = self.settings.clone();
        s.dry_run = true;
        run(&s, &self.s, &self.t, &self.store, &CancellationToken::new()).await
    }

    async fn ok(&self) -> RunOutcome {
        let o = self.run().await;
        assert!(o.error.is_none(), "run failed: {:?}", o.error);
        o
    }
}

fn writes(o: &RunOutcome) -> u64 {
    let (s, t) = (&o.report.source.counts, &o.report.target.counts);
    s.created + s.updated + s.deleted + t.created + t.updated + t.deleted
}

#[tokio::test]
async fn first_run_creates_both_ways_and_a_second_run_changes_nothing() {
    let f = Fx::new("manual", "").await;
    f.s.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    f.s.put(None, &[("email", "b@x.io"), ("name", "Bob")]);
    f.t.put(
        None,
        &[("email", "c@x.io"), ("name", "Cy"), ("phone", "+15550001")],
    );
    f.t.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    let o = f.ok().await;
    assert_eq!(o.report.target.counts.created, 1, "{:?}", o.report);
    assert_eq!(o.report.source.counts.created, 1);
    assert_eq!(f.s.by_email(), f.t.by_email());
    let again = f.ok().await;
    assert_eq!(writes(&again), 0, "{:?}", again.report);
    assert_eq!(again.report.conflicts.detected, 0);
    assert_eq!(f.store.count_links("t").await.unwrap(), 3);
}

#[tokio::test]
async fn different_fields_merge_and_same_field_follows_each_strategy() {
    for (strategy, want) in [("source_wins", "S"), ("target_wins", "T"), ("latest", "T")] {
        let f = Fx::new(strategy, "").await;
        let sid = f.s.put(
            None,
            &[("email", "a@x.io"), ("name", "Ann"), ("phone", "1")],
        );
        f.ok().await;
        let tid = f.t.id_of("a@x.io").unwrap();
        f.s.put(Some(sid), &[("name", "S"), ("phone", "2")]);
        f.t.put(Some(tid), &[("name", "T")]);
        let o = f.ok().await;
        assert_eq!(o.report.conflicts.detected, 1, "{strategy}");
        assert_eq!(o.report.conflicts.resolved, 1, "{strategy}");
        let (s, t) = (f.s.by_email(), f.t.by_email());
        assert_eq!(s["a@x.io"]["name"], want, "{strategy}");
        assert_eq!(t["a@x.io"]["name"], want, "{strategy}");
        assert_eq!(t["a@x.io"]["phone"], "2", "{strategy}: phone merged");
        assert_eq!(writes(&f.ok().await), 0, "{strategy}: converged");
    }
}

#[tokio::test]
async fn manual_conflicts_leave_the_record_untouched_until_resolved() {
    let f = Fx::new("manual", "").await;
    let sid = f.s.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    f.ok().await;
    let tid = f.t.id_of("a@x.io").unwrap();
    f.s.put(Some(sid), &[("name", "S"), ("phone", "9")]);
    f.t.put(Some(tid), &[("name", "T")]);
    let o = f.ok().await;
    assert_eq!(
        (o.report.conflicts.detected, o.report.conflicts.queued),
        (1, 1)
    );
    let id = o.report.conflicts.items[0].id.unwrap();
    assert!(o.warnings.iter().any(|w| w.contains("queued")));
    assert_eq!(
        f.t.by_email()["a@x.io"].get("phone"),
        None,
        "untouched on the target"
    );
    assert_eq!(
        f.s.by_email()["a@x.io"]["name"],
        "S",
        "untouched on the source"
    );
    // Still queued, not duplicated, on the next run.
    let again = f.ok().await;
    assert_eq!(again.report.conflicts.queued, 1);
    assert_eq!(again.report.conflicts.items[0].id, Some(id));
    assert_eq!(
        f.store
            .conflicts(Some("t"), &["open"], 10)
            .await
            .unwrap()
            .len(),
        1
    );
    f.store
        .resolve_conflict(id, &json!({"keep": "target"}), "me")
        .await
        .unwrap();
    let o = f.ok().await;
    assert_eq!(o.report.conflicts.resolved, 1);
    assert_eq!(f.s.by_email()["a@x.io"]["name"], "T");
    assert_eq!(
        f.t.by_email()["a@x.io"]["phone"],
        "9",
        "the other field merged too"
    );
    let c = f.store.conflict(id).await.unwrap().unwrap();
    assert_eq!(c.status, "applied");
    assert_eq!(writes(&f.ok().await), 0);
}

#[tokio::test]
async fn dry_run_plans_exactly_what_the_run_does_and_writes_nothing() {
    let f = Fx::new("latest", "").await;
    let sid = f.s.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    f.s.put(None, &[("email", "b@x.io"), ("name", "Bob")]);
    f.ok().await;
    f.s.put(Some(sid), &[("name", "Anne")]);
    f.t.put(None, &[("email", "z@x.io"), ("name", "Zed")]);
    f.s.put(None, &[("email", "bad"), ("name", "x")]);
    let before = (f.s.by_email(), f.t.by_email());
    let plan = f.plan().await;
    assert!(plan.error.is_none());
    assert_eq!(
        before,
        (f.s.by_email(), f.t.by_email()),
        "a plan writes nothing"
    );
    assert_eq!(
        f.store.history(Some("t"), 10).await.unwrap().len(),
        1,
        "nor a run row"
    );
    let done = f.ok().await;
    let strip = |p: &[PlanEntry]| {
        p.iter()
            .map(|e| {
                let mut e = e.clone();
                e.status = String::new();
                e
            })
            .collect::<Vec<_>>()
    };
    let planned = plan.report.plan.unwrap();
    assert!(!planned.is_empty());
    assert_eq!(strip(&planned), strip(&done.report.plan.unwrap()));
    assert_eq!(plan.report.target.counts, done.report.target.counts);
}

#[tokio::test]
async fn validation_rejects_records_with_reasons_and_retries_them() {
    let f = Fx::new(
        "manual",
        "validation:\n  email: [required, email]\n  name: [{max_length: 5}]\n",
    )
    .await;
    let bad = f.s.put(None, &[("email", "not-an-email"), ("name", "Ann")]);
    f.s.put(None, &[("email", "long@x.io"), ("name", "Much too long")]);
    f.s.put(None, &[("email", "ok@x.io"), ("name", "Ok")]);
    let o = f.ok().await;
    assert_eq!(o.report.target.counts.created, 1);
    assert_eq!(o.report.target.counts.rejected, 2);
    let reasons: Vec<_> = o
        .report
        .rejected
        .iter()
        .flat_map(|r| r.reasons.clone())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("email is not an email address")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("name is longer than 5")),
        "{reasons:?}"
    );
    assert!(o.report.rejected.iter().all(|r| r.id.is_some()));
    // Fixed at the source: the pending record is picked up without a cursor rewind.
    f.s.put(Some(bad), &[("email", "fixed@x.io")]);
    let o = f.ok().await;
    assert_eq!(o.report.target.counts.created, 1, "{:?}", o.report);
    assert!(f.t.by_email().contains_key("fixed@x.io"));
}

#[tokio::test]
async fn a_refused_record_fails_alone_fails_the_run_and_is_retried() {
    let f = Fx::new("manual", "").await;
    for e in ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io"] {
        f.s.put(None, &[("email", e), ("name", "n")]);
    }
    f.t.table.lock().unwrap().refuse.insert("c@x.io".into());
    let o = f.run().await;
    assert!(
        o.error.is_some(),
        "a failed write fails the run (max_failures 0)"
    );
    assert_eq!(o.report.target.counts.created, 4);
    assert_eq!(o.report.target.counts.failed, 1);
    assert_eq!(
        o.report.failed[0].error, "email: refused",
        "the field at fault is named"
    );
    f.t.table.lock().unwrap().refuse.clear();
    let o = f.ok().await;
    assert_eq!(o.report.target.counts.created, 1, "retried from pending");
    assert_eq!(f.t.by_email().len(), 5);
}

#[tokio::test]
async fn a_breaker_opens_persists_and_lets_one_probe_through_after_the_cooldown() {
    let f = Fx::new("manual", "breaker: {failure_threshold: 2, cooldown: 1h}\n").await;
    for i in 0..6 {
        f.s.put(None, &[("email", &format!("{i}@x.io")), ("name", "n")]);
    }
    f.t.table.lock().unwrap().down = true;
    let o = f.run().await;
    let e = o.error.unwrap().to_string();
    assert!(e.contains("circuit breaker for memory:t is open"), "{e}");
    assert_eq!(o.report.breaker["target"].phase, json!("open"));
    assert_eq!(f.t.table.lock().unwrap().writes, 0);
    // The next run (another pod) sees it open and stops before touching anything.
    f.t.table.lock().unwrap().down = false;
    let o = f.run().await;
    assert!(
        matches!(o.error, Some(crate::SyncError::BreakerOpen { .. })),
        "{:?}",
        o.error
    );
    assert_eq!(f.t.by_email().len(), 0);
    // After the cool-down the run is the probe; it succeeds and closes the breaker.
    let mut state = f.store.breaker("memory:t").await.unwrap().unwrap();
    state.next_probe_at = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    f.store.save_breaker("memory:t", &state).await.unwrap();
    let o = f.ok().await;
    assert_eq!(o.report.breaker["target"].phase, json!("closed"));
    assert_eq!(
        f.t.by_email().len(),
        6,
        "everything skipped earlier was pending"
    );
}

#[tokio::test]
async fn deletes_propagate_behind_the_mass_delete_guard() {
    let f = Fx::new("manual", "deletes: propagate\nmax_delete_fraction: 0.3\n").await;
    let ids: Vec<i64> = (0..5)
        .map(|i| {
            f.s.put(None, &[("email", &format!("{i}@x.io")), ("name", "n")])
        })
        .collect();
    f.ok().await;
    f.s.remove(ids[0]);
    let o = f.ok().await;
    assert_eq!(o.report.target.counts.deleted, 1);
    assert_eq!(f.t.by_email().len(), 4);
    // Two of four (50%) is more than 30%: nothing deleted, the run fails.
    f.s.remove(ids[1]);
    f.s.remove(ids[2]);
    let o = f.run().await;
    let e = o.error.unwrap();
    assert!(e.to_string().contains("mass-delete guard: 2 of 4"), "{e}");
    assert_eq!(f.t.by_email().len(), 4);
    // An empty source never deletes.
    f.s.remove(ids[3]);
    f.s.remove(ids[4]);
    let mut s = f.settings.clone();
    s.config.max_delete_fraction = 1.0;
    let o = run(&s, &f.s, &f.t, &f.store, &CancellationToken::new()).await;
    assert!(o.error.is_none());
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("empty read never deletes")),
        "{:?}",
        o.warnings
    );
    assert_eq!(f.t.by_email().len(), 4);
}

#[tokio::test]
async fn deletes_are_ignored_by_default_and_never_resurrect() {
    let f = Fx::new("manual", "").await;
    let sid = f.s.put(None, &[("email", "a@x.io"), ("name", "n")]);
    f.ok().await;
    let tid = f.t.id_of("a@x.io").unwrap();
    f.t.remove(tid);
    f.s.put(Some(sid), &[("name", "changed")]);
    let o = f.ok().await;
    assert_eq!(writes(&o), 0, "{:?}", o.report.plan);
    assert!(f.t.by_email().is_empty(), "not re-created");
}

#[tokio::test]
async fn a_record_written_by_a_killed_run_is_adopted_not_duplicated() {
    let f = Fx::new("manual", "").await;
    f.s.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    // As if a run created it on the target and died before linking.
    f.t.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    let o = f.ok().await;
    assert_eq!(writes(&o), 0);
    assert_eq!(f.t.by_email().len(), 1);
    assert_eq!(f.store.count_links("t").await.unwrap(), 1);
}

#[tokio::test]
async fn one_way_syncs_never_write_the_source() {
    let f = Fx::new("target_wins", "direction: source_to_target\n").await;
    let sid = f.s.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    f.t.put(None, &[("email", "t@x.io"), ("name", "Tee")]);
    f.ok().await;
    let tid = f.t.id_of("a@x.io").unwrap();
    f.t.put(Some(tid), &[("name", "edited in target")]);
    f.s.put(Some(sid), &[("phone", "7")]);
    let o = f.ok().await;
    assert_eq!(
        o.report.source.counts,
        crate::report::SideCounts {
            read: o.report.source.counts.read,
            ..Default::default()
        }
    );
    assert!(!f.s.by_email().contains_key("t@x.io"));
    assert_eq!(
        f.t.by_email()["a@x.io"]["name"],
        "edited in target",
        "not reverted"
    );
    assert_eq!(f.t.by_email()["a@x.io"]["phone"], "7");
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone)]
enum Step {
    /// Edit (or create) the name of email `e` on the source (`true`) or target.
    Edit {
        source: bool,
        e: u8,
        name: u8,
    },
    Sync,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..5, 0u8..4).prop_map(|(source, e, name)| Step::Edit { source, e, name }),
        1 => Just(Step::Sync),
    ]
}

/// The reference model of what a sync should converge to, per email: each side's value and
/// the logical time of its last edit, and the value last synced.
#[derive(Debug, Default, Clone)]
struct Model {
    s: BTreeMap<u8, (u8, u64)>,
    t: BTreeMap<u8, (u8, u64)>,
    base: BTreeMap<u8, u8>,
}

impl Model {
    fn sync(&mut self, strategy: ConflictStrategy) {
        let emails: Vec<u8> = self.s.keys().chain(self.t.keys()).copied().collect();
        for e in emails {
            let (s, t, b) = (
                self.s.get(&e).copied(),
                self.t.get(&e).copied(),
                self.base.get(&e).copied(),
            );
            let v = match (s, t) {
                (Some((sv, st)), Some((tv, tt))) => {
                    let s_changed = b.is_none_or(|b| b != sv);
                    let t_changed = b.is_none_or(|b| b != tv);
                    if sv == tv || (s_changed && !t_changed) {
                        sv
                    } else if t_changed && !s_changed {
                        tv
                    } else {
                        match strategy {
                            ConflictStrategy::SourceWins => sv,
                            ConflictStrategy::TargetWins => tv,
                            _ => {
                                if st >= tt {
                                    sv
                                } else {
                                    tv
                                }
                            }
                        }
                    }
                }
                (Some((sv, _)), None) => sv,
                (None, Some((tv, _))) => tv,
                (None, None) => continue,
            };
            self.s.insert(e, (v, 0));
            self.t.insert(e, (v, 0));
            self.base.insert(e, v);
        }
    }
}

async fn scenario(strategy: ConflictStrategy, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let f = Fx::new(strategy.as_str(), "").await;
    let mut model = Model::default();
    let mut tick = 0u64;
    for st in steps.into_iter().chain([Step::Sync]) {
        match st {
            Step::Edit { source, e, name } => {
                tick += 1;
                let (mem, side) = if source {
                    (&f.s, &mut model.s)
                } else {
                    (&f.t, &mut model.t)
                };
                let email = format!("{e}@x.io");
                let id = mem.id_of(&email);
                mem.put(id, &[("email", &email), ("name", &format!("n{name}"))]);
                side.insert(e, (name, tick));
            }
            Step::Sync => {
                let o = f.run().await;
                prop_assert!(o.error.is_none(), "{:?}", o.error);
                model.sync(strategy);
            }
        }
    }
    let again = f.run().await;
    prop_assert!(again.error.is_none());
    prop_assert_eq!(
        writes(&again),
        0,
        "second run changed something: {:?}",
        again.report.plan
    );
    prop_assert_eq!(again.report.conflicts.detected, 0);
    let (s, t) = (f.s.by_email(), f.t.by_email());
    let names = |m: &BTreeMap<String, BTreeMap<String, String>>| {
        m.iter()
            .map(|(e, v)| (e.clone(), v["name"].clone()))
            .collect::<BTreeMap<_, _>>()
    };
    prop_assert_eq!(names(&s), names(&t), "sides did not converge");
    let want: BTreeMap<String, String> = model
        .s
        .iter()
        .map(|(e, (v, ..))| (format!("{e}@x.io"), format!("n{v}")))
        .collect();
    prop_assert_eq!(
        names(&s),
        want,
        "not the strategy's answer (or a record was lost)"
    );
    Ok(())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn interleaved_edits_converge_to_the_strategy_and_lose_nothing(
        strategy in prop_oneof![
            Just(ConflictStrategy::SourceWins),
            Just(ConflictStrategy::TargetWins),
            Just(ConflictStrategy::Latest),
        ],
        steps in proptest::collection::vec(step(), 0..24),
    ) {
        rt().block_on(scenario(strategy, steps))?;
    }

    #[test]
    fn a_dry_run_plans_what_the_next_run_does(
        steps in proptest::collection::vec(step(), 0..16),
        extra in proptest::collection::vec(step(), 0..8),
    ) {
        rt().block_on(async {
            let f = Fx::new("latest", "").await;
            for st in steps.into_iter().chain(extra) {
                match st {
                    Step::Edit { source, e, name } => {
                        let mem = if source { &f.s } else { &f.t };
                        let email = format!("{e}@x.io");
                        mem.put(mem.id_of(&email), &[("email", &email), ("name", &format!("n{name}"))]);
                    }
                    Step::Sync => {
                        let p = f.plan().await;
                        let r = f.run().await;
                        prop_assert!(r.error.is_none());
                        let strip = |v: Vec<PlanEntry>| v.into_iter().map(|mut e| { e.status.clear(); e }).collect::<Vec<_>>();
                        prop_assert_eq!(strip(p.report.plan.unwrap()), strip(r.report.plan.unwrap()));
                    }
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn http_failures_count_once_on_the_connectors_breaker_which_the_next_run_sees_open() {
    use crate::testing::{OverHttp, unavailable_server};
    use std::sync::atomic::Ordering;
    let f = Fx::new("manual", "breaker: {failure_threshold: 3, cooldown: 1h}\n").await;
    for i in 0..6 {
        f.s.put(None, &[("email", &format!("{i}@x.io")), ("name", "n")]);
    }
    let (url, hits) = unavailable_server().await;
    // Each run is a new process: a fresh breaker handed to both the connector's HTTP client
    // and the engine, which loads the persisted state into it.
    let process = || {
        let breaker: syncctl_http::SharedBreaker = std::sync::Arc::new(std::sync::Mutex::new(
            syncctl_http::CircuitBreaker::new(syncctl_http::BreakerConfig::default()),
        ));
        let target = OverHttp::new(f.t.clone(), &url, breaker.clone());
        let mut settings = f.settings.clone();
        settings.breakers = [None, Some(breaker.clone())];
        (target, settings, breaker)
    };
    let (target, settings, breaker) = process();
    let o = run(
        &settings,
        &f.s,
        &target,
        &f.store,
        &CancellationToken::new(),
    )
    .await;
    // Six records in batches of two: three 503s, each counted once (not once by the client
    // and again by the engine), so the third opens the breaker.
    assert_eq!(hits.load(Ordering::SeqCst), 3, "{:?}", o.error);
    assert_eq!(
        o.report.breaker["target"].phase,
        json!("open"),
        "{:?}",
        o.report.breaker
    );
    assert_eq!(o.report.breaker["target"].consecutive_failures, 3);
    assert_eq!(
        breaker.lock().unwrap().state.phase,
        syncctl_http::BreakerPhase::Open,
        "the connector's own breaker is the one that opened"
    );
    let stored = f.store.breaker("over-http:t").await.unwrap().unwrap();
    assert_eq!(stored.phase, syncctl_http::BreakerPhase::Open);
    // The next process sees it open and stops before any request.
    let (target, settings, breaker) = process();
    let o = run(
        &settings,
        &f.s,
        &target,
        &f.store,
        &CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(o.error, Some(crate::SyncError::BreakerOpen { .. })),
        "{:?}",
        o.error
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3, "no request while open");
    assert!(
        breaker.lock().unwrap().is_open(chrono::Utc::now()),
        "the connector's client fails fast on the loaded state"
    );
    assert_eq!(f.t.by_email().len(), 0);
}

#[tokio::test]
async fn a_stale_version_is_read_again_merged_against_the_base_and_retried_once() {
    let f = Fx::new("source_wins", "").await;
    f.t.versioned
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let sid = f.s.put(
        None,
        &[("email", "a@x.io"), ("name", "Ann"), ("phone", "1")],
    );
    f.ok().await;
    let tid = f.t.id_of("a@x.io").unwrap();
    // We change the name; between our read and our write someone changes the phone there.
    f.s.put(Some(sid), &[("name", "Anna")]);
    f.t.table
        .lock()
        .unwrap()
        .edits_before_write
        .push_back(vec![(tid, "phone".into(), "+999".into())]);
    let o = f.ok().await;
    let t = f.t.by_email()["a@x.io"].clone();
    assert_eq!(t["name"], "Anna", "ours lands");
    assert_eq!(t["phone"], "+999", "the other writer's change survives");
    assert_eq!(f.s.by_email()["a@x.io"]["phone"], "+999", "and flows back");
    assert_eq!(o.report.target.counts.failed, 0, "{:?}", o.report);
    assert_eq!(o.report.target.counts.updated, 1);
    let audit = f.store.changes(&o.report.run).await.unwrap();
    let statuses: Vec<(&str, &str)> = audit
        .iter()
        .map(|c| (c.side.as_str(), c.status.as_str()))
        .collect();
    assert!(statuses.contains(&("target", "stale")), "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == ("target", "applied"))
            .count(),
        1,
        "{statuses:?}"
    );
    // The base now holds both changes: nothing more to do.
    assert_eq!(writes(&f.ok().await), 0);
}

#[tokio::test]
async fn a_second_stale_version_fails_that_record_only() {
    let f = Fx::new("source_wins", "max_failures: 1\n").await;
    f.t.versioned
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let a = f.s.put(None, &[("email", "a@x.io"), ("name", "Ann")]);
    let b = f.s.put(None, &[("email", "b@x.io"), ("name", "Bob")]);
    f.ok().await;
    let ta = f.t.id_of("a@x.io").unwrap();
    f.s.put(Some(a), &[("name", "Anna")]);
    f.s.put(Some(b), &[("name", "Bobby")]);
    // An editor that changes record a before each of our writes: the first attempt and the
    // retry both come back stale.
    {
        let mut t = f.t.table.lock().unwrap();
        t.edits_before_write
            .push_back(vec![(ta, "phone".into(), "+1".into())]);
        t.edits_before_write
            .push_back(vec![(ta, "phone".into(), "+2".into())]);
    }
    let o = f.run().await;
    assert!(
        o.error.is_none(),
        "a stale record is not a failed run: {:?}",
        o.error
    );
    assert_eq!(o.report.target.counts.failed, 1, "{:?}", o.report);
    assert_eq!(
        f.t.by_email()["b@x.io"]["name"],
        "Bobby",
        "the others are written"
    );
    assert_eq!(f.t.by_email()["a@x.io"]["name"], "Ann");
    // The next run picks it up and lands it, keeping the editor's change.
    f.ok().await;
    let t = f.t.by_email()["a@x.io"].clone();
    assert_eq!((t["name"].as_str(), t["phone"].as_str()), ("Anna", "+2"));
}

#[tokio::test]
async fn a_lookup_field_is_written_as_the_key_its_reference_is_linked_to() {
    let clock = Clock::default();
    let store = StateStore::memory().await.unwrap();
    let cancel = CancellationToken::new();
    let ps = Memory::new("ps", &["email", "name"], &clock);
    let pt = Memory::new("pt", &["email", "name"], &clock);
    // The target's ids differ from the source's, so an unresolved value cannot pass for one.
    for i in 0..5 {
        pt.put(
            None,
            &[("email", &format!("other{i}@x.io")), ("name", "Other")],
        );
    }
    let ada = ps.put(None, &[("email", "ada@x.io"), ("name", "Ada")]);
    let people = settings(
        "name: people\nsource: {connector: memory}\ntarget: {connector: memory}\n\
         key: {source: email, target: email}\n\
         fields:\n  - {source: email, target: email}\n  - {source: name, target: name}\n\
         direction: source_to_target\n",
    );
    let os = Memory::new("os", &["email", "person"], &clock);
    let ot = Memory::new("ot", &["email", "customer"], &clock);
    let orders = settings(
        "name: orders\nsource: {connector: memory}\ntarget: {connector: memory}\n\
         key: {source: email, target: email}\n\
         fields:\n  - {source: email, target: email}\n  - {source: person, target: customer, lookup: {sync: people}}\n\
         direction: source_to_target\n",
    );
    let order = os.put(None, &[("email", "o1@x.io"), ("person", &ada.to_string())]);

    // Before the people are synced the reference resolves to nothing: refused, not guessed.
    let o = run(&orders, &os, &ot, &store, &cancel).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.report.target.counts.rejected, 1);
    assert!(ot.by_email().is_empty());
    let why = serde_json::to_string(&o.report.rejected).unwrap();
    assert!(why.contains("not linked in sync people"), "{why}");

    let p = run(&people, &ps, &pt, &store, &cancel).await;
    assert!(p.error.is_none(), "{:?}", p.error);
    let ada_t = pt.id_of("ada@x.io").unwrap();
    assert_ne!(ada_t, ada);

    // The refused order is retried and written with the linked key.
    let o = run(&orders, &os, &ot, &store, &cancel).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.report.target.counts.created, 1);
    assert_eq!(ot.by_email()["o1@x.io"]["customer"], ada_t.to_string());
    let quiet = run(&orders, &os, &ot, &store, &cancel).await;
    assert_eq!(
        (
            quiet.report.target.counts.created,
            quiet.report.target.counts.updated
        ),
        (0, 0),
        "the resolved value compares equal"
    );

    // A new reference that is not linked yet keeps the old one until it is.
    let bob = ps.put(None, &[("email", "bob@x.io"), ("name", "Bob")]);
    os.put(Some(order), &[("person", &bob.to_string())]);
    let o = run(&orders, &os, &ot, &store, &cancel).await;
    assert_eq!(o.report.target.counts.rejected, 1);
    assert_eq!(ot.by_email()["o1@x.io"]["customer"], ada_t.to_string());
    run(&people, &ps, &pt, &store, &cancel).await;
    let o = run(&orders, &os, &ot, &store, &cancel).await;
    assert_eq!(o.report.target.counts.updated, 1, "{:?}", o.report.rejected);
    let bob_t = pt.id_of("bob@x.io").unwrap();
    assert_eq!(ot.by_email()["o1@x.io"]["customer"], bob_t.to_string());

    // A stale write is planned again from a fresh read: the retry resolves the reference too,
    // rather than writing the source's own id.
    ot.versioned
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let ot_order = ot.id_of("o1@x.io").unwrap();
    os.put(Some(order), &[("person", &ada.to_string())]);
    ot.table.lock().unwrap().edits_before_write.push_back(vec![(
        ot_order,
        "customer".into(),
        "edited".into(),
    )]);
    let o = run(&orders, &os, &ot, &store, &cancel).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.report.target.counts.failed, 0, "{:?}", o.report);
    let audit = store.changes(&o.report.run).await.unwrap();
    assert!(
        audit.iter().any(|c| c.status == "stale"),
        "the first write came back stale"
    );
    assert_eq!(ot.by_email()["o1@x.io"]["customer"], ada_t.to_string());

    // Two source records share a natural key; the first names nobody linked. It is refused
    // without claiming the key, so its twin that resolves is created.
    os.put(None, &[("email", "o2@x.io"), ("person", "424242")]);
    os.put(None, &[("email", "o2@x.io"), ("person", &ada.to_string())]);
    let o = run(&orders, &os, &ot, &store, &cancel).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.report.target.counts.created, 1, "{:?}", o.report.rejected);
    assert_eq!(
        o.report.target.counts.rejected, 1,
        "{:?}",
        o.report.rejected
    );
    let why = serde_json::to_string(&o.report.rejected).unwrap();
    assert!(why.contains("not linked in sync people"), "{why}");
    assert_eq!(ot.by_email()["o2@x.io"]["customer"], ada_t.to_string());

    // Only source → target: a lookup that would flow back is a config problem.
    let e = parse_config(
        "o.yaml",
        "name: o\nsource: {connector: memory}\ntarget: {connector: memory}\n\
         key: {source: email, target: email}\n\
         fields:\n  - {source: email, target: email}\n  - {source: person, target: customer, lookup: {sync: people}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("direction: source_to_target"), "{e}");
}
