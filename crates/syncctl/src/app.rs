//! `main → run → result`: total, so every path ends in exactly one reported result.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use syncctl_config::Env;
use syncctl_core::{ErrorClass, IdempotencyKey, OrchestratorContext, Redactor, RunResult, Status};
use tokio_util::sync::CancellationToken;

use crate::alerting::{self, Alerting};
use crate::cli::{self, Cli, GlobalArgs, LogFormat, OutputMode};
use crate::commands::{self, Outcome, status_for_error};
use crate::context::AppContext;
use crate::error::CliError;
use crate::exit;
use crate::logging::{self, LogTarget};
use crate::output::{self, Output};
use crate::signals::{self, SignalState};

/// After a signal, how long commands get to clean up before we report regardless; below
/// Kubernetes' default 30 s grace period.
const HARD_STOP_AFTER_SIGNAL: Duration = Duration::from_secs(28);

/// Global settings after flags, environment and env files were merged.
struct Globals {
    output: OutputMode,
    log_format: LogFormat,
    noop_exit_code: i32,
    result_file: Option<std::path::PathBuf>,
    termination_log: Option<std::path::PathBuf>,
}

/// Runs syncctl with these arguments and environment.
pub(crate) fn main(
    args: Vec<OsString>,
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> ExitCode {
    let started = Utc::now();
    let process_env: Vec<(String, String)> = vars
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let code = match crate::help::try_parse(&args) {
        Ok(cli) => run(cli, &args, started, process_env),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            output::print_help(&e.render().to_string());
            0
        }
        Err(e) => usage_error(&args, &e, started, process_env),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// clap rejected the command line: still report a result, on every transport asked for.
fn usage_error(
    args: &[OsString],
    e: &clap::Error,
    started: chrono::DateTime<Utc>,
    process_env: Vec<(String, String)>,
) -> i32 {
    let scanned = cli::scan_globals(args);
    let (env, _) = build_env(process_env, &scanned);
    let globals = resolve_globals(&scanned, &env).unwrap_or_else(|_| fallback_globals(&scanned));
    let mut redactor = redactor_for(&env);
    alerting::register_flag_secrets(&scanned.alerts, &mut redactor);
    // A broken alert setup cannot be reported better than the usage error itself.
    let alerting = Alerting::resolve(&scanned.alerts, &env, alerting::name_hint(args)).ok();
    if let Some(a) = &alerting {
        a.register_secrets(&mut redactor);
    }
    output::print_error(&e.render().to_string(), &redactor);
    let message = if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        "no command given; run `syncctl --help` to see the commands".to_owned()
    } else {
        first_line_of_clap_error(e)
    };
    let err = CliError::usage(message);
    let outcome = commands::mark_dry_run(Err(err), cli::scan_dry_run(args));
    finish(
        cli::guess_command_name(args),
        started,
        outcome,
        &globals,
        &redactor,
        None,
        None,
        alerting.as_ref(),
    )
}

fn first_line_of_clap_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid usage");
    line.trim().trim_start_matches("error: ").to_owned()
}

fn run(
    mut cli: Cli,
    args: &[OsString],
    started: chrono::DateTime<Utc>,
    process_env: Vec<(String, String)>,
) -> i32 {
    let command_name = cli.command.name();
    let dry_run = cli.command.dry_run();
    // Placeholder groups swallow their arguments; their transports still count.
    merge_unset(&mut cli.global, cli::scan_globals(args));
    let (env, env_file_error) = build_env(process_env, &cli.global);
    let mut first = redactor_for(&env);
    alerting::register_flag_secrets(&cli.global.alerts, &mut first);
    let redactor = Arc::new(RwLock::new(first));
    let snapshot = || redactor.read().map(|r| r.clone()).unwrap_or_default();
    let alerting = Alerting::resolve(&cli.global.alerts, &env, alerting::name_hint(args));
    if let (Ok(a), Ok(mut r)) = (&alerting, redactor.write()) {
        a.register_secrets(&mut r);
    }
    let globals = match resolve_globals(&cli.global, &env) {
        Ok(g) => g,
        Err(e) => {
            let g = fallback_globals(&cli.global);
            let a = alerting.as_ref().ok();
            return finish(
                command_name,
                started,
                Err(e),
                &g,
                &snapshot(),
                None,
                None,
                a,
            );
        }
    };
    if let Some(e) = env_file_error {
        return finish(
            command_name,
            started,
            Err(e),
            &globals,
            &snapshot(),
            None,
            None,
            None,
        );
    }
    // Refused before the command runs (nothing written): an alert setup that cannot work
    // should not be discovered when the first failure goes unreported.
    let alerting = match alerting {
        Ok(a) => a,
        Err(e) => {
            return finish(
                command_name,
                started,
                Err(e),
                &globals,
                &snapshot(),
                None,
                None,
                None,
            );
        }
    };
    let verbosity =
        i8::try_from(i16::from(cli.global.verbose) - i16::from(cli.global.quiet)).unwrap_or(0);
    let target = if globals.output == OutputMode::Kestra {
        LogTarget::Stdout
    } else {
        LogTarget::Stderr
    };
    let bars = logging::init(
        globals.log_format,
        verbosity,
        target,
        !no_progress(&cli.global, &env),
        redactor.clone(),
        env.get("SYNCCTL_LOG").as_deref(),
    );

    let orchestrator = OrchestratorContext::from_lookup(|k| env.get(k));
    let idempotency_key = cli
        .global
        .idempotency_key
        .clone()
        .or_else(|| global_var(&env, "idempotency-key"))
        .map(IdempotencyKey::new)
        .or_else(|| orchestrator.idempotency_key());
    let cancel = CancellationToken::new();
    let signal_state = SignalState::default();
    let ctx = AppContext {
        env,
        orchestrator,
        idempotency_key,
        cancel: cancel.clone(),
        signals: signal_state.clone(),
        redactor: redactor.clone(),
        progress: bars,
        verbosity,
        alerting: alerting.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return finish(
                command_name,
                started,
                Err(CliError::new(ErrorClass::Internal, e)),
                &globals,
                &snapshot(),
                None,
                None,
                Some(&alerting),
            );
        }
    };
    tracing::debug!(command = %command_name, orchestrator = ?ctx.orchestrator.orchestrator(), "Starting.");
    let key = ctx.idempotency_key.as_ref().map(ToString::to_string);
    let outcome = runtime.block_on(async {
        if let Err(e) = signals::install(cancel.clone(), signal_state.clone()) {
            tracing::warn!(error = %e, "Could not install signal handlers; SIGTERM will not cancel remote work.");
        }
        let give_up = async {
            cancel.cancelled().await;
            tokio::select! {
                () = tokio::time::sleep(HARD_STOP_AFTER_SIGNAL) => {}
                () = signal_state.force.cancelled() => {}
            }
        };
        tokio::select! {
            r = commands::dispatch(cli.command, &ctx) => r,
            () = give_up => Err(CliError::new(ErrorClass::Cancelled, anyhow::anyhow!("interrupted; stopped waiting for cleanup"))),
        }
    });
    // Stop background tasks before the result line, so nothing can print after it.
    runtime.shutdown_timeout(Duration::from_secs(2));
    finish(
        command_name,
        started,
        commands::mark_dry_run(outcome, dry_run),
        &globals,
        &snapshot(),
        signal_state.received(),
        key,
        Some(&alerting),
    )
}

/// Builds the result, alerts and pushes metrics about it (the one shared path for every
/// command), writes it everywhere, and returns the exit code.
#[allow(clippy::too_many_arguments)]
fn finish(
    command: String,
    started: chrono::DateTime<Utc>,
    outcome: Result<Outcome, CliError>,
    globals: &Globals,
    redactor: &Redactor,
    signal: Option<i32>,
    idempotency_key: Option<String>,
    alerting: Option<&Alerting>,
) -> i32 {
    let mut result = RunResult::new(command, started);
    result.idempotency_key = idempotency_key;
    let mut metrics = Vec::new();
    match outcome {
        Ok(o) => {
            if let Some(raw) = o.raw_stdout {
                output::print_help(&raw);
                return 0;
            }
            result.status = o.status;
            result.data = o.data;
            result.warnings = o.warnings;
            result.dry_run = o.dry_run;
            if let Some(id) = o.run_id {
                result.run_id = id;
            }
            result.error = o.error.as_ref().map(CliError::to_info);
            if o.idempotency_key.is_some() {
                result.idempotency_key = o.idempotency_key;
            }
            metrics = o.metrics;
        }
        Err(e) => {
            result.status = status_for_error(&e);
            result.error = Some(e.to_info());
        }
    }
    // A command that noticed the signal reports `cancelled` itself; a failure caused by the
    // interruption (a request aborted mid-flight) is reported as cancelled too.
    if signal.is_some() && result.status == Status::Failed {
        result.status = Status::Cancelled;
        if let Some(e) = &mut result.error {
            e.class = ErrorClass::Cancelled;
        }
    }
    result.exit_code = exit::for_status(
        result.status,
        result.error.as_ref().map(|e| e.class),
        signal,
        globals.noop_exit_code,
    );
    if let Some(e) = &result.error {
        tracing::error!(class = %e.class, "{}", e.message);
    }
    result.finish(Utc::now());
    if let Some(a) = alerting {
        // Warnings only: delivery never changes the status or the exit code.
        result.warnings.extend(a.deliver(&result));
    }
    let out = Output {
        mode: globals.output,
        result_file: globals.result_file.clone(),
        termination_log: globals.termination_log.clone(),
    };
    if out.emit(&mut result, &metrics, redactor) || result.exit_code != 0 {
        result.exit_code
    } else {
        // The work may be done, but the orchestrator got no result: never report success.
        1
    }
}

/// The process environment over env files named by `--env-file` and `SYNCCTL_ENV_FILE`.
fn build_env(process_env: Vec<(String, String)>, g: &GlobalArgs) -> (Env, Option<CliError>) {
    let mut env = Env::from_vars(process_env);
    let mut files = g.env_file.clone();
    if files.is_empty()
        && let Some(f) = global_var(&env, "env-file")
    {
        files.push(f.into());
    }
    for f in &files {
        if let Err(e) = env.load_file(f) {
            return (
                env,
                Some(CliError::from(syncctl_config::ConfigError::from(e))),
            );
        }
    }
    (env, None)
}

fn resolve_globals(g: &GlobalArgs, env: &Env) -> Result<Globals, CliError> {
    let output = match (g.output, global_var(env, "output")) {
        (Some(o), _) => o,
        (None, Some(v)) => <OutputMode as clap::ValueEnum>::from_str(&v, true).map_err(|_| {
            CliError::usage(format!(
                "SYNCCTL_OUTPUT must be json, kestra or text, got {v:?}"
            ))
        })?,
        (None, None) => OutputMode::Json,
    };
    let log_format = match (g.log_format, global_var(env, "log-format")) {
        (Some(f), _) => f,
        (None, Some(v)) => <LogFormat as clap::ValueEnum>::from_str(&v, true).map_err(|_| {
            CliError::usage(format!(
                "SYNCCTL_LOG_FORMAT must be text or json, got {v:?}"
            ))
        })?,
        (None, None) => LogFormat::Text,
    };
    let noop_exit_code = match g
        .noop_exit_code
        .clone()
        .or_else(|| global_var(env, "noop-exit-code"))
    {
        None => 0,
        Some(v) => v.trim().parse::<u8>().map(i32::from).map_err(|_| {
            CliError::usage(format!(
                "--noop-exit-code must be a number from 0 to 255, got {v:?}"
            ))
        })?,
    };
    Ok(Globals {
        output,
        log_format,
        noop_exit_code,
        result_file: g
            .result_file
            .clone()
            .or_else(|| global_var(env, "result-file").map(Into::into)),
        termination_log: g
            .termination_log
            .clone()
            .or_else(|| global_var(env, "termination-log").map(Into::into)),
    })
}

/// The value of the variable behind a global option (see `env_flags`).
fn global_var(env: &Env, flag: &str) -> Option<String> {
    crate::env_flags::global_env(flag).and_then(|name| env.get(name))
}

/// Whether progress bars are off: `--no-progress`, or `SYNCCTL_NO_PROGRESS` set to anything
/// but empty, `0` or `false` (container images set it; nothing there is a terminal anyway).
fn no_progress(g: &GlobalArgs, env: &Env) -> bool {
    g.no_progress
        || global_var(env, "no-progress")
            .is_some_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// Fills flags clap did not see (inside a placeholder's arguments) from a raw scan.
fn merge_unset(g: &mut GlobalArgs, scanned: GlobalArgs) {
    g.result_file = g.result_file.take().or(scanned.result_file);
    g.termination_log = g.termination_log.take().or(scanned.termination_log);
    g.noop_exit_code = g.noop_exit_code.take().or(scanned.noop_exit_code);
    g.output = g.output.or(scanned.output);
    g.log_format = g.log_format.or(scanned.log_format);
    g.alerts.merge_unset(scanned.alerts);
    if g.env_file.is_empty() {
        g.env_file = scanned.env_file;
    }
}

/// Globals from flags alone, for reporting an error in the globals themselves.
fn fallback_globals(g: &GlobalArgs) -> Globals {
    Globals {
        output: g.output.unwrap_or_default(),
        log_format: g.log_format.unwrap_or_default(),
        noop_exit_code: 0,
        result_file: g.result_file.clone(),
        termination_log: g.termination_log.clone(),
    }
}

/// Registers every environment value that looks like a secret, and passwords inside URLs.
fn redactor_for(env: &Env) -> Redactor {
    let mut r = Redactor::new();
    for name in env.names() {
        let Some(value) = env.get(name) else { continue };
        if Redactor::is_secret_name(name) {
            r.add(&value);
        }
        r.add_url_password(&value);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_env_values_are_registered() {
        let env = Env::from_vars([
            ("DATABRICKS_TOKEN".to_owned(), "dapi-abcdef".to_owned()),
            (
                "SYNCCTL_STATE_URL".to_owned(),
                "postgres://me:hunter22@db/x".to_owned(),
            ),
            ("DATABRICKS_HOST".to_owned(), "https://x.cloud".to_owned()),
        ]);
        let r = redactor_for(&env);
        assert_eq!(
            r.redact("dapi-abcdef hunter22 https://x.cloud"),
            "*** *** https://x.cloud"
        );
    }
}
