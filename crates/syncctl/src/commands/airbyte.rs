//! `syncctl airbyte trigger | status | cancel`: start Airbyte syncs (one or many in parallel),
//! wait, attach, cancel. The behaviour lives in `syncctl-airbyte`; this module turns flags
//! and environment into its options and its reports into one result.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use syncctl_airbyte::{
    AirbyteClient, AirbyteSettings, ApiChoice, ClientOptions, Idempotency, IfRunning, Job,
    JobReport, OnKill, RunOptions, StateStore, Verdict, WaitObserver, WaitOptions, cancel_existing,
    configured_connections, connection_env_var, describe_state, is_uuid, run_connection, watch_job,
};
use syncctl_core::{Classified, ErrorClass, HumanDuration, Metric};
use tokio::time::Instant;

use crate::context::AppContext;
use crate::error::CliError;
use crate::progress::Progress;

use super::Outcome;
use super::doctor::{Probe, ServiceReport};

/// After a signal the binary reports at 28 s whatever happens; the grace period must end
/// before that.
const MAX_KILL_GRACE: Duration = Duration::from_secs(27);

/// Arguments of `syncctl airbyte`.
#[derive(Debug, Args)]
#[command(
    about = "Trigger Airbyte connection syncs (one or many in parallel), wait, attach, cancel",
    long_about = None
)]
pub(crate) struct AirbyteArgs {
    #[command(subcommand)]
    command: AirbyteCommand,
}

#[derive(Debug, Subcommand)]
enum AirbyteCommand {
    /// Start syncs of one or more connections, in parallel, and wait for them
    #[command(after_help = TRIGGER_AFTER_HELP)]
    Trigger(TriggerArgs),
    /// Report a job; with --wait, wait for it to finish
    Status(StatusArgs),
    /// Cancel a job and wait until Airbyte confirms it
    Cancel(CancelArgs),
}

const TRIGGER_AFTER_HELP: &str = "\
Environment:
  AIRBYTE_API_URL            server root, e.g. http://airbyte-server:8000 (config API: {url}/api/v1)
  AIRBYTE_API_USERNAME/_PASSWORD    basic auth (config API, Airbyte OSS)
  AIRBYTE_CLIENT_ID/_SECRET  client credentials for the public API (tokens are refreshed)
  AIRBYTE_API_TOKEN          a static bearer token for the public API
  AIRBYTE_PUBLIC_API_URL     public API base with version (default {AIRBYTE_API_URL}/api/public/v1)
  AIRBYTE_TOKEN_URL          token endpoint (default {public API base}/applications/token)
  AIRBYTE_<NAME>_CONNECTION_ID      what --connection NAME reads
  AIRBYTE_WORKSPACE_ID       workspace(s) for --connection-name with the config API
  SYNCCTL_STATE_DIR          remembers which job each idempotency key started

A rerun with the same idempotency key (derived from AIRFLOW_CTX_* or KESTRA_*, or
--idempotency-key) reattaches to the job an earlier try started, or reports it if it succeeded.";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ApiFlag {
    /// Public when client credentials or a token are set, else config
    Auto,
    /// The config API (/api/v1)
    Config,
    /// The public API (/api/public/v1, Cloud)
    Public,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum IfRunningFlag {
    /// Wait on the running job (result "attached": true)
    Attach,
    /// Do nothing: status skipped (exit 0, or --noop-exit-code)
    Skip,
    /// Fail with a conflict (exit 6)
    Fail,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnKillFlag {
    /// Cancel the job and wait (up to --kill-grace) for Airbyte to confirm
    Cancel,
    /// Leave the job running
    Leave,
}

#[derive(Debug, Args)]
struct ApiArgs {
    /// Which API to use [env: AIRBYTE_API] [default: auto]
    #[arg(long, value_enum, value_name = "API")]
    api: Option<ApiFlag>,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// First poll interval; it grows to a tenth of the time waited, up to --max-poll-interval
    #[arg(long, value_name = "DUR", default_value = "5s")]
    poll_interval: HumanDuration,

    /// Longest poll interval
    #[arg(long, value_name = "DUR", default_value = "60s")]
    max_poll_interval: HumanDuration,

    /// Stop waiting after DUR and leave the job running (status timed_out, exit 5)
    #[arg(long, value_name = "DUR")]
    wait_timeout: Option<HumanDuration>,

    /// Cancel the job when DUR has passed (status timed_out, exit 5)
    #[arg(long, value_name = "DUR")]
    deadline: Option<HumanDuration>,

    /// What SIGTERM/SIGINT does to the job [default: cancel for trigger, leave for status]
    #[arg(long, value_enum, value_name = "ACTION")]
    on_kill: Option<OnKillFlag>,

    /// How long to wait for Airbyte to confirm a cancellation (keep it below Kubernetes' 30 s)
    #[arg(long, value_name = "DUR", default_value = "20s")]
    kill_grace: HumanDuration,
}

#[derive(Debug, Args)]
struct TriggerArgs {
    /// Connection to sync, by id (repeatable; several run in parallel)
    #[arg(long = "connection-id", value_name = "ID")]
    connection_ids: Vec<String>,

    /// Connection to sync, by the NAME in AIRBYTE_<NAME>_CONNECTION_ID (repeatable)
    #[arg(long = "connection", value_name = "NAME")]
    connections: Vec<String>,

    /// Connection to sync, by its exact name in Airbyte (repeatable; must be unique)
    #[arg(long = "connection-name", value_name = "NAME")]
    connection_names: Vec<String>,

    /// Workspace to search for --connection-name (repeatable) [env: AIRBYTE_WORKSPACE_ID]
    #[arg(long = "workspace-id", value_name = "ID")]
    workspace_ids: Vec<String>,

    /// What to do when a sync of the connection is already running
    #[arg(long, value_enum, value_name = "ACTION", default_value = "attach")]
    if_running: IfRunningFlag,

    /// Return once the syncs started, without waiting
    #[arg(long, conflicts_with_all = ["wait_timeout", "deadline"])]
    no_wait: bool,

    /// Start a new sync even when this idempotency key's last job succeeded
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    api: ApiArgs,

    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The job
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    job_id: i64,

    /// Wait for the job to finish (exit code as for trigger)
    #[arg(long)]
    wait: bool,

    #[command(flatten)]
    api: ApiArgs,

    #[command(flatten)]
    waiting: WaitArgs,
}

#[derive(Debug, Args)]
struct CancelArgs {
    /// The job
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    job_id: i64,

    /// Send the cancel and return without waiting for Airbyte to confirm it
    #[arg(long)]
    no_wait: bool,

    /// How long to wait for Airbyte to confirm the cancellation (exit 5 when it does not)
    #[arg(long, value_name = "DUR", default_value = "60s")]
    wait_timeout: HumanDuration,

    /// Poll interval while waiting for the confirmation
    #[arg(long, value_name = "DUR", default_value = "1s")]
    poll_interval: HumanDuration,

    #[command(flatten)]
    api: ApiArgs,
}

impl AirbyteArgs {
    /// The command's name in results.
    pub(crate) fn name(&self) -> String {
        match self.command {
            AirbyteCommand::Trigger(_) => "airbyte trigger",
            AirbyteCommand::Status(_) => "airbyte status",
            AirbyteCommand::Cancel(_) => "airbyte cancel",
        }
        .to_owned()
    }
}

/// Runs the command.
pub(crate) async fn exec(args: AirbyteArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    match args.command {
        AirbyteCommand::Trigger(a) => trigger(a, ctx).await,
        AirbyteCommand::Status(a) => status(a, ctx).await,
        AirbyteCommand::Cancel(a) => cancel(a, ctx).await,
    }
}

fn api_choice(a: &ApiArgs) -> Option<ApiChoice> {
    a.api.map(|f| match f {
        ApiFlag::Auto => ApiChoice::Auto,
        ApiFlag::Config => ApiChoice::Config,
        ApiFlag::Public => ApiChoice::Public,
    })
}

/// Builds the client from the environment; every fetched token is registered with the
/// redactor.
fn client(ctx: &AppContext, api: &ApiArgs) -> Result<(AirbyteClient, Vec<String>), CliError> {
    let settings = AirbyteSettings::resolve(|k| ctx.env.get(k), api_choice(api))?;
    let redactor = ctx.redactor.clone();
    let client = AirbyteClient::new(ClientOptions {
        api: settings.api,
        base_url: settings.base_url,
        auth: settings.auth,
        timeout: ctx.http_timeout()?,
        retry: ctx.retry_policy()?,
        sleeper: None,
        on_token: Some(Arc::new(move |t: &str| {
            if let Ok(mut r) = redactor.write() {
                r.add(t);
            }
        })),
    })?;
    tracing::debug!(api = client.api().as_str(), base_url = %syncctl_config::redact_userinfo(client.base_url()), auth = client.auth_method(), "Airbyte client ready.");
    Ok((client, settings.workspace_ids))
}

impl WaitArgs {
    fn validate(&self) -> Result<(), CliError> {
        if self.poll_interval.get().is_zero() {
            return Err(CliError::usage("--poll-interval must be more than 0s"));
        }
        if self.kill_grace.get() > MAX_KILL_GRACE {
            return Err(CliError::usage(format!(
                "--kill-grace must be at most {} (syncctl reports 28s after a signal, before Kubernetes' 30s grace ends)",
                HumanDuration(MAX_KILL_GRACE)
            )));
        }
        Ok(())
    }

    /// `on_kill_default` applies when `--on-kill` is not given: a trigger cancels the job it
    /// started, a status watcher leaves alone a job it did not start.
    fn options(&self, started: Instant, on_kill_default: OnKill) -> WaitOptions {
        WaitOptions {
            poll_interval: self.poll_interval.get(),
            max_poll_interval: self.max_poll_interval.get().max(self.poll_interval.get()),
            wait_until: self.wait_timeout.map(|d| started + d.get()),
            deadline: self.deadline.map(|d| started + d.get()),
            kill_grace: self.kill_grace.get(),
            on_kill: match self.on_kill {
                Some(OnKillFlag::Cancel) => OnKill::Cancel,
                Some(OnKillFlag::Leave) => OnKill::Leave,
                None => on_kill_default,
            },
        }
    }
}

/// A connection to sync and how the user named it.
struct Target {
    id: String,
    label: Option<String>,
}

/// Connections from `--connection-id` and `--connection`: checked before anything is sent.
fn local_targets(a: &TriggerArgs, ctx: &AppContext) -> Result<Vec<Target>, CliError> {
    let mut out = Vec::new();
    for id in &a.connection_ids {
        let id = id.trim();
        if !is_uuid(id) {
            return Err(CliError::usage(format!(
                "--connection-id {id:?} is not an Airbyte connection id (a UUID like 9924bcd0-99be-453d-ba47-c2c9766f7da5); use --connection-name to give a name"
            )));
        }
        out.push(Target {
            id: id.to_ascii_lowercase(),
            label: None,
        });
    }
    for name in &a.connections {
        let var = connection_env_var(name);
        let Some(id) = ctx.env.get(&var) else {
            return Err(CliError::config(format!(
                "--connection {name}: {var} is not set"
            )));
        };
        let id = id.trim();
        if !is_uuid(id) {
            return Err(CliError::config(format!(
                "{var} is {id:?}, which is not an Airbyte connection id (a UUID)"
            )));
        }
        out.push(Target {
            id: id.to_ascii_lowercase(),
            label: Some(name.clone()),
        });
    }
    Ok(out)
}

fn check_unique(targets: &[Target]) -> Result<(), CliError> {
    let mut seen = HashSet::new();
    for t in targets {
        if !seen.insert(t.id.as_str()) {
            return Err(CliError::usage(format!(
                "connection {}{} is given twice; each connection can be synced once per run",
                t.id,
                t.label
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// Shows the jobs' progress: a spinner on a terminal, log lines otherwise.
struct Board {
    progress: Mutex<Progress>,
    labels: BTreeMap<String, String>,
    states: Mutex<BTreeMap<String, String>>,
}

impl Board {
    fn new(ctx: &AppContext, title: &str, labels: BTreeMap<String, String>) -> Self {
        Self {
            progress: Mutex::new(Progress::new(ctx.progress, title)),
            labels,
            states: Mutex::new(BTreeMap::new()),
        }
    }
}

impl WaitObserver for Board {
    fn on_update(&self, job: &Job) {
        let label = match self.labels.get(&job.connection_id) {
            Some(l) => l.clone(),
            None if job.connection_id.is_empty() => "Airbyte".to_owned(),
            None => format!("connection {}", job.connection_id),
        };
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        let mut line = format!("{label}: job {} {}", job.id, describe_state(&job.status));
        if let Some(r) = job.records_synced.filter(|r| *r > 0) {
            line.push_str(&format!(", {r} records"));
        }
        states.insert(job.connection_id.clone(), line);
        let summary = states.values().cloned().collect::<Vec<_>>().join("; ");
        if let Ok(mut p) = self.progress.lock() {
            p.update(&summary);
        }
    }
}

async fn trigger(a: TriggerArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let started = Instant::now();
    if a.connection_ids.is_empty() && a.connections.is_empty() && a.connection_names.is_empty() {
        return Err(CliError::usage(
            "name at least one connection: --connection-id ID, --connection NAME (reads AIRBYTE_<NAME>_CONNECTION_ID) or --connection-name \"Stripe → Postgres\"",
        ));
    }
    a.wait.validate()?;
    for w in &a.workspace_ids {
        if !is_uuid(w) {
            return Err(CliError::usage(format!(
                "--workspace-id {w:?} is not a workspace id (a UUID)"
            )));
        }
    }
    let mut targets = local_targets(&a, ctx)?;
    check_unique(&targets)?;
    let (client, env_workspaces) = client(ctx, &a.api)?;
    let store = ctx
        .env
        .get("SYNCCTL_STATE_DIR")
        .map(|d| StateStore::new(std::path::Path::new(&d)));

    let workspaces = if a.workspace_ids.is_empty() {
        env_workspaces
    } else {
        a.workspace_ids.clone()
    };
    for name in &a.connection_names {
        let id = client.find_connection(name, &workspaces).await?;
        tracing::info!(connection = %name, connection_id = %id, "Found the connection by name.");
        targets.push(Target {
            id,
            label: Some(name.clone()),
        });
    }
    check_unique(&targets)?;

    let opts = RunOptions {
        if_running: match a.if_running {
            IfRunningFlag::Attach => IfRunning::Attach,
            IfRunningFlag::Skip => IfRunning::Skip,
            IfRunningFlag::Fail => IfRunning::Fail,
        },
        wait: (!a.no_wait).then(|| a.wait.options(started, OnKill::Cancel)),
        force: a.force,
    };
    let labels: BTreeMap<String, String> = targets
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                t.label.clone().unwrap_or_else(|| t.id.clone()),
            )
        })
        .collect();
    let board = Board::new(ctx, "Waiting for Airbyte", labels);
    let idems: Vec<Option<Idempotency>> = targets
        .iter()
        .map(|t| {
            ctx.idempotency_key.as_ref().map(|k| Idempotency {
                key: k.scoped(&t.id),
                store: store.clone(),
            })
        })
        .collect();
    let runs = targets
        .iter()
        .zip(&idems)
        .map(|(t, idem)| run_connection(&client, &t.id, &opts, idem.as_ref(), &ctx.cancel, &board));
    let reports = futures::future::join_all(runs).await;
    Ok(summarize(&client, &targets, &reports, ctx))
}

fn job_json(r: &JobReport, label: Option<&str>) -> Value {
    let mut v = r.to_json();
    if let Some(l) = label {
        v["connection"] = json!(l);
    }
    v
}

fn describe(r: &JobReport, label: Option<&str>) -> String {
    let who = match label {
        Some(l) if l != r.connection_id => format!("{l} ({})", r.connection_id),
        _ if r.connection_id.is_empty() => "Airbyte".to_owned(),
        _ => format!("connection {}", r.connection_id),
    };
    let job = r.job.as_ref();
    let what = match (r.verdict, job) {
        (Verdict::Failed, Some(j)) => format!(
            "job {} failed{}",
            j.id,
            j.failure_reason
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        (Verdict::Cancelled, Some(j)) if !r.cancel_requested => {
            format!("job {} was cancelled outside syncctl", j.id)
        }
        (Verdict::Cancelled, Some(j)) => format!(
            "job {} {}",
            j.id,
            if r.cancel_confirmed {
                "was cancelled"
            } else {
                "was asked to cancel; Airbyte had not confirmed it within --kill-grace"
            }
        ),
        (Verdict::Cancelled, None) => "interrupted before a sync was started".to_owned(),
        (Verdict::LeftRunning, Some(j)) => format!("job {} was left running", j.id),
        (Verdict::TimedOut, Some(j)) if r.cancel_requested => format!(
            "job {} reached --deadline and was {}",
            j.id,
            if r.cancel_confirmed {
                "cancelled"
            } else {
                "asked to cancel (not yet confirmed)"
            }
        ),
        (Verdict::TimedOut, Some(j)) => format!(
            "stopped waiting for job {} at --wait-timeout; it is still {}",
            j.id, j.status
        ),
        (_, _) => r
            .error
            .as_ref()
            .map_or_else(|| format!("{:?}", r.verdict), ToString::to_string),
    };
    format!("{who}: {what}")
}

/// One result from every connection's report. Precedence: a signal makes it `cancelled`;
/// then auth/config errors; then remote failures; other errors; conflicts; timeouts; all
/// skipped is `skipped`; anything else succeeded.
fn summarize(
    client: &AirbyteClient,
    targets: &[Target],
    reports: &[JobReport],
    ctx: &AppContext,
) -> Outcome {
    let label_of = |i: usize| targets.get(i).and_then(|t| t.label.as_deref());
    let jobs: Vec<Value> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| job_json(r, label_of(i)))
        .collect();
    let count = |v: &[Verdict]| reports.iter().filter(|r| v.contains(&r.verdict)).count();
    let data = json!({
        "api": client.api(),
        "jobs": jobs,
        "succeeded": count(&[Verdict::Succeeded]),
        "failed": count(&[Verdict::Failed, Verdict::Cancelled, Verdict::Error, Verdict::Conflict]),
        "skipped": count(&[Verdict::Skipped]),
        "running": reports
            .iter()
            .filter(|r| r.job.as_ref().is_some_and(|j| !j.phase().is_terminal()))
            .count(),
    });
    let mut warnings: Vec<String> = reports.iter().flat_map(|r| r.warnings.clone()).collect();
    let mut metrics = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let Some(job) = &r.job else { continue };
        let mut tags = BTreeMap::new();
        tags.insert("connection_id".to_owned(), r.connection_id.clone());
        if let Some(l) = label_of(i) {
            tags.insert("connection".to_owned(), l.to_owned());
        }
        for (name, value) in [
            ("records_synced", job.records_synced),
            ("bytes_synced", job.bytes_synced),
        ] {
            if let Some(v) = value {
                let mut m = Metric::counter(name, v as f64);
                m.tags = tags.clone();
                metrics.push(m);
            }
        }
    }
    let messages = |pred: &dyn Fn(&JobReport) -> bool| -> Vec<String> {
        reports
            .iter()
            .enumerate()
            .filter(|(_, r)| pred(r))
            .map(|(i, r)| describe(r, label_of(i)))
            .collect()
    };
    let error_class = |r: &JobReport| r.error.as_ref().map(Classified::class);
    let fail = |class: ErrorClass, msgs: Vec<String>| {
        Outcome::failed(
            data.clone(),
            CliError::new(class, anyhow::anyhow!("{}", msgs.join("; "))),
        )
    };
    let outcome = if ctx.cancel.is_cancelled()
        && reports
            .iter()
            .any(|r| r.interrupted || r.verdict == Verdict::Cancelled)
    {
        let msgs = messages(&|r| r.interrupted);
        fail(
            ErrorClass::Cancelled,
            if msgs.is_empty() {
                vec!["interrupted before any sync started".to_owned()]
            } else {
                msgs
            },
        )
    } else if let Some(class) = reports
        .iter()
        .filter_map(error_class)
        .find(|c| matches!(c, ErrorClass::Auth | ErrorClass::Config | ErrorClass::Usage))
    {
        fail(class, messages(&|r| error_class(r) == Some(class)))
    } else if reports
        .iter()
        .any(|r| matches!(r.verdict, Verdict::Failed | Verdict::Cancelled))
    {
        fail(
            ErrorClass::RemoteFailed,
            messages(&|r| matches!(r.verdict, Verdict::Failed | Verdict::Cancelled)),
        )
    } else if let Some(class) = reports
        .iter()
        .filter(|r| r.verdict == Verdict::Error)
        .find_map(error_class)
    {
        fail(class, messages(&|r| r.verdict == Verdict::Error))
    } else if reports.iter().any(|r| r.verdict == Verdict::Conflict) {
        fail(
            ErrorClass::Conflict,
            messages(&|r| r.verdict == Verdict::Conflict),
        )
    } else if reports.iter().any(|r| r.verdict == Verdict::TimedOut) {
        fail(
            ErrorClass::Timeout,
            messages(&|r| r.verdict == Verdict::TimedOut),
        )
    } else if !reports.is_empty() && reports.iter().all(|r| r.verdict == Verdict::Skipped) {
        Outcome::skipped(data.clone())
    } else {
        Outcome::succeeded(data.clone())
    };
    warnings.dedup();
    outcome.with_warnings(warnings).with_metrics(metrics)
}

async fn status(a: StatusArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let started = Instant::now();
    a.waiting.validate()?;
    if !a.wait && (a.waiting.wait_timeout.is_some() || a.waiting.deadline.is_some()) {
        return Err(CliError::usage("--wait-timeout and --deadline need --wait"));
    }
    let (client, _) = client(ctx, &a.api)?;
    let wait = a.wait.then(|| a.waiting.options(started, OnKill::Leave));
    let board = Board::new(ctx, "Waiting for Airbyte", BTreeMap::new());
    let mut report = watch_job(&client, a.job_id, wait.as_ref(), &ctx.cancel, &board).await;
    if report.verdict == Verdict::Error
        && report.job.is_none()
        && let Some(e) = report.error.take()
    {
        return Err(e.into());
    }
    Ok(summarize(&client, &[], &[report], ctx))
}

async fn cancel(a: CancelArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    if a.poll_interval.get().is_zero() {
        return Err(CliError::usage("--poll-interval must be more than 0s"));
    }
    let (client, _) = client(ctx, &a.api)?;
    let opts = WaitOptions {
        poll_interval: a.poll_interval.get(),
        max_poll_interval: a.poll_interval.get(),
        wait_until: None,
        deadline: None,
        kill_grace: a.wait_timeout.get(),
        on_kill: OnKill::Leave,
    };
    let mut report = cancel_existing(&client, a.job_id, &opts, !a.no_wait).await;
    if report.verdict == Verdict::Error
        && report.job.is_none()
        && let Some(e) = report.error.take()
    {
        return Err(e.into());
    }
    let already_finished = !report.cancel_requested && report.verdict != Verdict::Error;
    let data = json!({ "api": client.api(), "jobs": [report.to_json()] });
    let warnings = report.warnings.clone();
    let outcome = match report.verdict {
        _ if already_finished => Outcome::skipped(data),
        Verdict::Cancelled | Verdict::Triggered => Outcome::succeeded(data),
        // Cancelled too late: the job finished on its own.
        Verdict::Succeeded | Verdict::Failed => {
            Outcome::succeeded(data).with_warnings(vec![format!(
                "job {} finished ({}) before the cancellation took effect",
                a.job_id,
                report.job.as_ref().map_or("unknown", |j| j.status.as_str())
            )])
        }
        Verdict::TimedOut => Outcome::failed(
            data,
            CliError::new(
                ErrorClass::Timeout,
                anyhow::anyhow!(
                    "asked Airbyte to cancel job {}, but it had not confirmed within {}",
                    a.job_id,
                    a.wait_timeout
                ),
            ),
        ),
        _ => match report.error {
            Some(e) => Outcome::failed(data, e.into()),
            None => Outcome::succeeded(data),
        },
    };
    Ok(outcome.with_warnings(warnings))
}

/// `syncctl doctor` checks for this group's services.
pub(crate) fn doctor_probes() -> Vec<Probe> {
    vec![Probe {
        name: "airbyte",
        check: |ctx, offline| Box::pin(doctor_check(ctx, offline)),
    }]
}

async fn doctor_check(ctx: &AppContext, offline: bool) -> ServiceReport {
    let mut report = ServiceReport {
        name: "airbyte",
        ..ServiceReport::default()
    };
    if !ctx.env.contains("AIRBYTE_API_URL") && !ctx.env.contains("AIRBYTE_PUBLIC_API_URL") {
        return report;
    }
    report.configured = true;
    let fail = |mut r: ServiceReport, e: &dyn std::fmt::Display, class: ErrorClass| {
        r.ok = Some(false);
        r.message = Some(e.to_string());
        r.class = Some(class);
        r
    };
    let (client, _) = match client(ctx, &ApiArgs { api: None }) {
        Ok(c) => c,
        Err(e) => {
            let msg = crate::error::chain_message(&e.error);
            return fail(report, &msg, e.class);
        }
    };
    report.base_url = Some(syncctl_config::redact_userinfo(client.base_url()));
    report.auth = Some(format!(
        "{} ({} API)",
        client.auth_method(),
        client.api().as_str()
    ));
    let names: Vec<String> = ctx.env.names().map(str::to_owned).collect();
    let mut conns = Vec::new();
    for (name, var) in configured_connections(names.iter().map(String::as_str)) {
        match ctx.env.get(&var) {
            Some(id) if is_uuid(id.trim()) => conns.push((name, id.trim().to_owned())),
            Some(id) => {
                return fail(
                    report,
                    &format!("{var} is {id:?}, which is not a connection id (a UUID)"),
                    ErrorClass::Config,
                );
            }
            None => {}
        }
    }
    if offline {
        return report;
    }
    let ids: Vec<String> = conns.iter().map(|(_, id)| id.clone()).collect();
    match client.probe(&ids).await {
        Ok(found) => {
            report.ok = Some(true);
            report.message = Some(if conns.is_empty() {
                format!("{} API answered", client.api().as_str())
            } else {
                let list: Vec<String> = conns
                    .iter()
                    .zip(found)
                    .map(|((n, _), f)| format!("{n} = {f:?}"))
                    .collect();
                format!("connections found: {}", list.join(", "))
            });
            report
        }
        Err(e) => {
            let class = e.class();
            fail(report, &e, class)
        }
    }
}
