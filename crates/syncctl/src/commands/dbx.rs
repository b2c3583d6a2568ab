//! `syncctl dbx`: run Databricks jobs (`run-now`), report runs (`status`) and cancel them
//! (`cancel`). The flows live in `syncctl-databricks`; this module turns flags into them and
//! their endings into results and exit codes.

use std::future::Future;
use std::pin::Pin;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value};
use syncctl_core::{Classified, IdempotencyKey, OnKill};
use syncctl_databricks::config::{self, Settings};
use syncctl_databricks::{
    ApiVersion, ClientOptions, Flow, JobRef, JobsClient, RunNowSpec, conclude,
};

use crate::context::AppContext;
use crate::error::CliError;
use crate::progress::Progress;

use super::Outcome;
use super::doctor::{Probe, ServiceReport};
use super::wait::{ConfirmArgs, WaitArgs};

/// Arguments of `syncctl dbx`.
#[derive(Debug, Args)]
pub(crate) struct DbxArgs {
    #[command(subcommand)]
    command: DbxCommand,
}

#[derive(Debug, Subcommand)]
enum DbxCommand {
    /// Run a job (or attach to the run an earlier try started), wait, and report per-task results
    RunNow(Box<RunNowArgs>),
    /// Report a run and its tasks; with --wait, wait for it to end
    Status(Box<StatusArgs>),
    /// Cancel a run and wait until it has stopped
    Cancel(Box<CancelArgs>),
}

impl DbxArgs {
    /// The command's name in results.
    pub(crate) fn name(&self) -> String {
        match &self.command {
            DbxCommand::RunNow(_) => "dbx run-now",
            DbxCommand::Status(_) => "dbx status",
            DbxCommand::Cancel(_) => "dbx cancel",
        }
        .to_owned()
    }
}

/// Jobs API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ApiVersionArg {
    /// Jobs API 2.2 (paged task lists; the default)
    #[value(name = "2.2")]
    V2_2,
    /// Jobs API 2.1, for workspaces that do not have 2.2
    #[value(name = "2.1")]
    V2_1,
}

#[derive(Debug, Args)]
struct ConnArgs {
    /// Profile in ~/.databrickscfg (or DATABRICKS_CONFIG_FILE) [env: DATABRICKS_CONFIG_PROFILE]
    /// [default: DEFAULT, when the file has it]
    #[arg(long, value_name = "NAME", help_heading = "Connection")]
    profile: Option<String>,

    /// Jobs API version
    #[arg(
        long,
        value_enum,
        value_name = "VERSION",
        default_value = "2.2",
        help_heading = "Connection"
    )]
    api_version: ApiVersionArg,
}

#[derive(Debug, Args)]
struct RunNowArgs {
    /// The job to run
    #[arg(long, value_name = "ID", conflicts_with = "job_name")]
    job_id: Option<i64>,

    /// The job to run, by exact name (looked up through every page of jobs/list; a name that
    /// several jobs share is an error)
    #[arg(long, value_name = "NAME")]
    job_name: Option<String>,

    /// Job parameter (job_parameters); repeatable
    #[arg(
        long = "job-param",
        value_name = "KEY=VALUE",
        help_heading = "Parameters"
    )]
    job_params: Vec<String>,

    /// Notebook parameter (notebook_params); repeatable
    #[arg(
        long = "notebook-param",
        value_name = "KEY=VALUE",
        help_heading = "Parameters"
    )]
    notebook_params: Vec<String>,

    /// Python script argument (python_params), in order; repeatable
    #[arg(
        long = "python-param",
        value_name = "VALUE",
        allow_hyphen_values = true,
        help_heading = "Parameters"
    )]
    python_params: Vec<String>,

    /// Python wheel named parameter (python_named_params); repeatable
    #[arg(
        long = "python-named-param",
        value_name = "KEY=VALUE",
        help_heading = "Parameters"
    )]
    python_named_params: Vec<String>,

    /// JAR main-class argument (jar_params), in order; repeatable
    #[arg(
        long = "jar-param",
        value_name = "VALUE",
        allow_hyphen_values = true,
        help_heading = "Parameters"
    )]
    jar_params: Vec<String>,

    /// SQL task parameter (sql_params); repeatable
    #[arg(
        long = "sql-param",
        value_name = "KEY=VALUE",
        help_heading = "Parameters"
    )]
    sql_params: Vec<String>,

    /// Raw run-now request body, as JSON text or @FILE; the flags above (and the job and
    /// idempotency token) are merged over it
    #[arg(long, value_name = "BODY|@FILE", help_heading = "Parameters")]
    json: Option<String>,

    /// Start the run (or attach) and report at once, without waiting
    #[arg(long, conflicts_with_all = ["wait_timeout", "deadline"], help_heading = "Waiting")]
    no_wait: bool,

    #[command(flatten)]
    wait: WaitArgs,

    /// Count a SUCCESS_WITH_FAILURES run (leaf tasks succeeded, others failed) as success
    #[arg(long, help_heading = "Outcome")]
    allow_success_with_failures: bool,

    /// When the idempotency token leads to a run that already failed, repair it
    /// (runs/repair, all failed tasks) instead of reporting its failure
    #[arg(long, help_heading = "Outcome")]
    rerun_failed: bool,

    /// Send no idempotency token: always start a new run (a lost response can then start
    /// two runs)
    #[arg(long, conflicts_with = "rerun_failed", help_heading = "Outcome")]
    fresh_run: bool,

    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The run to report
    #[arg(long, value_name = "ID")]
    run_id: i64,

    /// Wait for the run to end (exit 1 when it fails)
    #[arg(long, help_heading = "Waiting")]
    wait: bool,

    #[command(flatten)]
    wait_args: WaitArgs,

    /// Count a SUCCESS_WITH_FAILURES run as success
    #[arg(long, help_heading = "Outcome")]
    allow_success_with_failures: bool,

    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Args)]
struct CancelArgs {
    /// The run to cancel
    #[arg(long, value_name = "ID")]
    run_id: i64,

    /// Return once the cancellation is requested
    #[arg(long, conflicts_with = "kill_grace", help_heading = "Waiting")]
    no_wait: bool,

    #[command(flatten)]
    waiting: ConfirmArgs,

    #[command(flatten)]
    conn: ConnArgs,
}

/// Runs the command.
pub(crate) async fn exec(args: DbxArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    match args.command {
        DbxCommand::RunNow(a) => run_now(*a, ctx).await,
        DbxCommand::Status(a) => status(*a, ctx).await,
        DbxCommand::Cancel(a) => cancel(*a, ctx).await,
    }
}

fn api_version(a: ApiVersionArg) -> ApiVersion {
    match a {
        ApiVersionArg::V2_1 => ApiVersion::V2_1,
        ApiVersionArg::V2_2 => ApiVersion::V2_2,
    }
}

/// Resolves the workspace settings and registers secrets read from the config file.
fn settings(ctx: &AppContext, profile: Option<&str>) -> Result<Settings, CliError> {
    let s = config::resolve(|k| ctx.env.get(k), profile)?;
    s.each_secret(|v| ctx.add_secret(v));
    Ok(s)
}

fn connect(ctx: &AppContext, conn: &ConnArgs) -> Result<JobsClient, CliError> {
    let s = settings(ctx, conn.profile.as_deref())?;
    let opts = ClientOptions {
        timeout: ctx.http_timeout()?,
        retry: ctx.retry_policy()?,
        sleeper: None,
    };
    let client = JobsClient::connect(&s, api_version(conn.api_version), &opts)?;
    tracing::debug!(host = %s.host, auth = s.credentials.auth_type(), profile = ?s.profile, api = %client.api(), "Databricks workspace resolved.");
    Ok(client)
}

/// `KEY=VALUE` flags into a JSON object; an empty key or a repeated key is a usage error.
fn pairs(flag: &str, values: &[String]) -> Result<Option<Map<String, Value>>, CliError> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut m = Map::new();
    for v in values {
        let Some((k, val)) = v.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(CliError::usage(format!(
                "{flag} takes KEY=VALUE, got {v:?}"
            )));
        };
        if m.insert(k.to_owned(), Value::String(val.to_owned()))
            .is_some()
        {
            return Err(CliError::usage(format!("{flag} {k} is given twice")));
        }
    }
    Ok(Some(m))
}

/// The `--json` body: inline JSON or `@file`, which must hold a JSON object.
fn json_body(raw: &str) -> Result<Map<String, Value>, CliError> {
    let (text, source) = match raw.strip_prefix('@') {
        Some(path) => (
            syncctl_config::read_capped(
                std::path::Path::new(path),
                syncctl_config::MAX_INPUT_FILE_BYTES,
            )
            .map_err(|e| CliError::config(format!("cannot read the --json file {path}: {e}")))?,
            format!("the --json file {path}"),
        ),
        None => (raw.to_owned(), "--json".to_owned()),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(CliError::usage(format!(
            "{source} must be a JSON object (a run-now request body)"
        ))),
        Err(e) => Err(CliError::usage(format!("{source} is not valid JSON: {e}"))),
    }
}

/// Merges the flags over the `--json` body: maps merge key by key (flags win), lists and
/// scalars are replaced.
fn merge_over(base: &mut Map<String, Value>, key: &str, value: Value) {
    match (base.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(over)) => {
            for (k, v) in over {
                existing.insert(k, v);
            }
        }
        (_, v) => {
            base.insert(key.to_owned(), v);
        }
    }
}

/// What the run-now flags ask for, checked before anything is sent.
struct Plan {
    spec: RunNowSpec,
    token_source: Option<&'static str>,
    warnings: Vec<String>,
}

fn plan(a: &RunNowArgs, ctx: &AppContext) -> Result<Plan, CliError> {
    let mut body = match &a.json {
        Some(raw) => json_body(raw)?,
        None => Map::new(),
    };
    let json_job = body.remove("job_id");
    let json_token = body.remove("idempotency_token");
    let maps = [
        ("--job-param", "job_parameters", &a.job_params),
        ("--notebook-param", "notebook_params", &a.notebook_params),
        (
            "--python-named-param",
            "python_named_params",
            &a.python_named_params,
        ),
        ("--sql-param", "sql_params", &a.sql_params),
    ];
    for (flag, key, values) in maps {
        if let Some(m) = pairs(flag, values)? {
            merge_over(&mut body, key, Value::Object(m));
        }
    }
    for (key, values) in [
        ("python_params", &a.python_params),
        ("jar_params", &a.jar_params),
    ] {
        if !values.is_empty() {
            let list = values.iter().cloned().map(Value::String).collect();
            merge_over(&mut body, key, Value::Array(list));
        }
    }
    let job = match (&a.job_id, &a.job_name, json_job) {
        (Some(id), _, _) => JobRef::Id(*id),
        (None, Some(name), _) if name.trim().is_empty() => {
            return Err(CliError::usage("--job-name must not be empty"));
        }
        (None, Some(name), _) => JobRef::Name(name.clone()),
        (None, None, Some(v)) => JobRef::Id(v.as_i64().ok_or_else(|| {
            CliError::usage(format!("job_id in --json must be an integer, got {v}"))
        })?),
        (None, None, None) => {
            return Err(CliError::usage(
                "say which job to run: --job-id ID, --job-name NAME, or job_id in --json",
            ));
        }
    };
    let mut warnings = Vec::new();
    let key_token = ctx
        .idempotency_key
        .as_ref()
        .map(IdempotencyKey::token64)
        .filter(|t| !t.is_empty());
    let (token, token_source) = if a.fresh_run {
        (None, None)
    } else if let Some(t) = key_token {
        if json_token
            .as_ref()
            .is_some_and(|j| j.as_str() != Some(t.as_str()))
        {
            warnings.push(
                "idempotency_token in --json was replaced by the token from the idempotency key"
                    .to_owned(),
            );
        }
        (Some(t), Some("idempotency key"))
    } else {
        match json_token {
            None | Some(Value::Null) => (None, None),
            Some(Value::String(t)) if !t.is_empty() && t.chars().count() <= 64 => {
                (Some(t), Some("--json"))
            }
            Some(other) => {
                return Err(CliError::usage(format!(
                    "idempotency_token in --json must be a string of 1 to 64 characters, got {other}"
                )));
            }
        }
    };
    Ok(Plan {
        spec: RunNowSpec {
            job,
            params: body,
            idempotency_token: token,
            rerun_failed: a.rerun_failed,
            allow_success_with_failures: a.allow_success_with_failures,
        },
        token_source,
        warnings,
    })
}

async fn run_now(a: RunNowArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let plan = plan(&a, ctx)?;
    let wait = a.wait.options(&ctx.env, OnKill::Cancel)?;
    let wait = (!a.no_wait).then_some(wait);
    let client = connect(ctx, &a.conn)?;
    let mut warnings = plan.warnings.clone();
    if plan.spec.idempotency_token.is_none() && !a.fresh_run {
        warnings.push("no idempotency key: a retried task will start a second run; pass --idempotency-key or run under Airflow or Kestra (or pass --fresh-run to say this is intended)".to_owned());
    }
    if let Some(t) = &plan.spec.idempotency_token {
        tracing::debug!(token = %t, source = plan.token_source.unwrap_or("-"), "Sending an idempotency token with run-now.");
    }
    let mut progress = Progress::new(ctx.progress, "Starting the Databricks run");
    let mut tell = |m: &str| progress.update(m);
    let mut flow = Flow::new(&client, ctx.cancel.clone(), &mut tell);
    let outcome = flow.run_now(&plan.spec, wait.as_ref()).await;
    let unkeyed_trigger = plan.spec.idempotency_token.is_none();
    let mut out = Outcome::from(conclude(outcome, unkeyed_trigger));
    if plan.token_source == Some("--json") {
        out.idempotency_key = plan.spec.idempotency_token.clone();
    }
    Ok(out.with_warnings(warnings))
}

async fn status(a: StatusArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let wait = a.wait_args.options(&ctx.env, OnKill::Leave)?;
    if !a.wait && a.wait_args.clock_given() {
        return Err(CliError::usage(
            "--wait-timeout and --deadline only apply with --wait",
        ));
    }
    let wait = a.wait.then_some(wait);
    let client = connect(ctx, &a.conn)?;
    let mut progress = Progress::new(ctx.progress, "Reading the Databricks run");
    let mut tell = |m: &str| progress.update(m);
    let mut flow = Flow::new(&client, ctx.cancel.clone(), &mut tell);
    let outcome = flow
        .status(a.run_id, wait.as_ref(), a.allow_success_with_failures)
        .await;
    Ok(conclude(outcome, false).into())
}

async fn cancel(a: CancelArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let wait = a.waiting.options(&ctx.env)?;
    let wait = (!a.no_wait).then_some(wait);
    let client = connect(ctx, &a.conn)?;
    let mut progress = Progress::new(ctx.progress, "Cancelling the Databricks run");
    let mut tell = |m: &str| progress.update(m);
    let mut flow = Flow::new(&client, ctx.cancel.clone(), &mut tell);
    let outcome = flow.cancel(a.run_id, wait.as_ref()).await;
    Ok(conclude(outcome, false).into())
}

type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ServiceReport> + Send + 'a>>;

/// `syncctl doctor` checks for this group's services.
pub(crate) fn doctor_probes() -> Vec<Probe> {
    vec![Probe {
        name: "databricks",
        check: probe,
    }]
}

fn probe(ctx: &AppContext, offline: bool) -> ProbeFuture<'_> {
    Box::pin(async move {
        let mut report = ServiceReport {
            name: "databricks",
            ..ServiceReport::default()
        };
        let s = match settings(ctx, None) {
            Ok(s) => s,
            Err(e) => {
                let anything_set = config::ENV_VARS.iter().any(|v| ctx.env.contains(v))
                    || ctx
                        .env
                        .get("HOME")
                        .is_some_and(|h| std::path::Path::new(&h).join(".databrickscfg").is_file());
                if anything_set {
                    report.configured = true;
                    report.ok = Some(false);
                    report.message = Some(e.to_info().message);
                    report.class = Some(e.class);
                }
                return report;
            }
        };
        report.configured = true;
        report.base_url = Some(s.host.clone());
        let method = match s.credentials.auth_type() {
            "pat" => "personal access token",
            _ => "OAuth M2M client credentials",
        };
        report.auth = Some(match &s.profile {
            Some(p) => format!("{method} (profile {p})"),
            None => method.to_owned(),
        });
        if offline {
            return report;
        }
        let opts = match (ctx.http_timeout(), ctx.retry_policy()) {
            (Ok(timeout), Ok(retry)) => ClientOptions {
                timeout,
                retry,
                sleeper: None,
            },
            (Err(e), _) | (_, Err(e)) => {
                report.ok = Some(false);
                report.message = Some(e.to_info().message);
                report.class = Some(e.class);
                return report;
            }
        };
        let result = match JobsClient::connect(&s, ApiVersion::V2_2, &opts) {
            Ok(c) => c.ping().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => report.ok = Some(true),
            Err(e) => {
                report.ok = Some(false);
                report.class = Some(e.class());
                report.message = Some(e.to_string());
            }
        }
        report
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncctl_core::ErrorClass;

    #[test]
    fn key_value_flags() {
        let m = pairs("--job-param", &["a=1".into(), "b=x=y".into(), "c=".into()])
            .unwrap()
            .unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x=y");
        assert_eq!(m["c"], "");
        for bad in [
            vec!["nokey".to_owned()],
            vec!["=v".to_owned()],
            vec!["a=1".into(), "a=2".into()],
        ] {
            let e = pairs("--job-param", &bad).unwrap_err();
            assert_eq!(e.class, ErrorClass::Usage);
        }
        assert!(pairs("--job-param", &[]).unwrap().is_none());
    }

    #[test]
    fn flags_merge_over_the_json_body() {
        let mut base = json_body(
            r#"{"notebook_params":{"a":"json","b":"json"},"python_params":["x"],"queue":{"enabled":true}}"#,
        )
        .unwrap();
        merge_over(
            &mut base,
            "notebook_params",
            serde_json::json!({"b": "flag", "c": "flag"}),
        );
        merge_over(&mut base, "python_params", serde_json::json!(["y"]));
        assert_eq!(
            Value::Object(base),
            serde_json::json!({
                "notebook_params": {"a": "json", "b": "flag", "c": "flag"},
                "python_params": ["y"],
                "queue": {"enabled": true}
            })
        );
        assert_eq!(json_body("[1]").unwrap_err().class, ErrorClass::Usage);
        assert_eq!(json_body("{").unwrap_err().class, ErrorClass::Usage);
        assert_eq!(
            json_body("@/nonexistent/body.json").unwrap_err().class,
            ErrorClass::Config
        );
    }
}
