//! `syncctl airbyte trigger | status | cancel`: start Airbyte syncs (one or many in parallel),
//! wait, attach, cancel. The behaviour lives in `syncctl-airbyte`; this module turns flags
//! and environment into its options and its reports into one result.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand, ValueEnum};
use syncctl_airbyte::{
    AirbyteClient, AirbyteSettings, ApiChoice, ClientOptions, Idempotency, IfRunning, Job,
    RunOptions, StateStore, Verdict, WaitObserver, cancel_existing, conclude, conclude_cancel,
    configured_connections, connection_env_var, describe_state, is_uuid, run_connection, watch_job,
};
use syncctl_core::{Classified, ErrorClass, OnKill};
use tokio::time::Instant;

use crate::context::AppContext;
use crate::error::CliError;
use crate::progress::Progress;

use super::Outcome;
use super::doctor::{Probe, ServiceReport};
use super::wait::{ConfirmArgs, WaitArgs};

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

#[derive(Debug, Args)]
struct ApiArgs {
    /// Which API to use [env: AIRBYTE_API] [default: auto]
    #[arg(long, value_enum, value_name = "API")]
    api: Option<ApiFlag>,
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

    #[command(flatten)]
    api: ApiArgs,

    #[command(flatten)]
    waiting: ConfirmArgs,
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
    let wait = a.wait.options(&ctx.env, OnKill::Cancel)?;
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
        wait: (!a.no_wait).then_some(wait),
        started,
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
    let labels: Vec<Option<String>> = targets.into_iter().map(|t| t.label).collect();
    Ok(conclude(client.api(), reports, &labels, ctx.cancel.is_cancelled()).into())
}

async fn status(a: StatusArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let wait = a.waiting.options(&ctx.env, OnKill::Leave)?;
    if !a.wait && a.waiting.clock_given() {
        return Err(CliError::usage("--wait-timeout and --deadline need --wait"));
    }
    let (client, _) = client(ctx, &a.api)?;
    let wait = a.wait.then_some(wait);
    let board = Board::new(ctx, "Waiting for Airbyte", BTreeMap::new());
    let mut report = watch_job(
        &client,
        a.job_id,
        wait.as_ref(),
        started,
        &ctx.cancel,
        &board,
    )
    .await;
    if report.verdict == Verdict::Error
        && report.job.is_none()
        && let Some(e) = report.error.take()
    {
        return Err(e.into());
    }
    Ok(conclude(client.api(), vec![report], &[], ctx.cancel.is_cancelled()).into())
}

async fn cancel(a: CancelArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let wait = a.waiting.options(&ctx.env)?;
    let (client, _) = client(ctx, &a.api)?;
    let mut report = cancel_existing(&client, a.job_id, &wait, !a.no_wait).await;
    if report.verdict == Verdict::Error
        && report.job.is_none()
        && let Some(e) = report.error.take()
    {
        return Err(e.into());
    }
    Ok(conclude_cancel(client.api(), a.job_id, report, wait.kill_grace).into())
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
