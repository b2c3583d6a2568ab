//! One module per command group; each has its clap args and an `exec` that returns an
//! [`Outcome`]. Commands never print: they return data and the binary reports it.

pub(crate) mod airbyte;
pub(crate) mod dbx;
pub(crate) mod doctor;
pub(crate) mod notify;
pub(crate) mod schema;
pub(crate) mod shell;
pub(crate) mod snowflake;
pub(crate) mod sync;
pub(crate) mod wait;

use syncctl_core::{Classified, Conclusion, End, Metric, Status};

use crate::cli::Command;
use crate::context::AppContext;
use crate::error::CliError;

/// What a command produced. A failed command that still has data to report returns
/// `Ok(Outcome { status: Failed, error: Some(..), .. })`; one with nothing to report returns
/// `Err(CliError)`.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) status: Status,
    pub(crate) data: serde_json::Value,
    pub(crate) warnings: Vec<String>,
    pub(crate) error: Option<CliError>,
    pub(crate) dry_run: bool,
    pub(crate) metrics: Vec<Metric>,
    /// Overrides the context's key when the command scoped or derived its own.
    pub(crate) idempotency_key: Option<String>,
    /// Print this text instead of a result (only `schema --raw`).
    pub(crate) raw_stdout: Option<String>,
    /// The result's `run_id` when the command has its own id for this run (a sync run's
    /// state-store id), so that the id in the result is the one later commands accept.
    pub(crate) run_id: Option<uuid::Uuid>,
}

#[allow(dead_code)] // constructors are used by service commands as they land
impl Outcome {
    /// A success with `data`.
    pub(crate) fn succeeded(data: serde_json::Value) -> Self {
        Self {
            status: Status::Succeeded,
            data,
            warnings: Vec::new(),
            error: None,
            dry_run: false,
            metrics: Vec::new(),
            idempotency_key: None,
            raw_stdout: None,
            run_id: None,
        }
    }
    /// A dry run's plan.
    pub(crate) fn planned(data: serde_json::Value) -> Self {
        Self {
            status: Status::Planned,
            dry_run: true,
            ..Self::succeeded(data)
        }
    }
    /// Nothing to do.
    pub(crate) fn skipped(data: serde_json::Value) -> Self {
        Self {
            status: Status::Skipped,
            ..Self::succeeded(data)
        }
    }
    /// A failure that still reports `data`; the status follows the error's class.
    pub(crate) fn failed(data: serde_json::Value, error: CliError) -> Self {
        let status = status_for_error(&error);
        Self {
            status,
            error: Some(error),
            ..Self::succeeded(data)
        }
    }
    /// Adds warnings.
    pub(crate) fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }
    /// Reports `id` as the result's `run_id`.
    pub(crate) fn with_run_id(mut self, id: Option<uuid::Uuid>) -> Self {
        self.run_id = id;
        self
    }
    /// Adds Kestra metrics.
    pub(crate) fn with_metrics(mut self, metrics: Vec<Metric>) -> Self {
        self.metrics.extend(metrics);
        self
    }
}

/// A library's conclusion as the command's outcome: the library decided the ending and the
/// error's class; the binary only reports it.
impl<E: Classified> From<Conclusion<E>> for Outcome {
    fn from(c: Conclusion<E>) -> Self {
        let out = match c.end {
            End::Succeeded => Self::succeeded(c.data),
            End::Skipped => Self::skipped(c.data),
            End::Failed(e) => Self::failed(c.data, CliError::from(e)),
        };
        out.with_warnings(c.warnings).with_metrics(c.metrics)
    }
}

/// `timed_out` for timeouts, `cancelled` for interruptions, else `failed`.
pub(crate) fn status_for_error(e: &CliError) -> Status {
    match e.class {
        syncctl_core::ErrorClass::Timeout => Status::TimedOut,
        syncctl_core::ErrorClass::Cancelled => Status::Cancelled,
        _ => Status::Failed,
    }
}

/// A failure of a command asked to dry-run still says so (`"dry_run": true`): the orchestrator
/// must be able to tell a failed rehearsal from a failed real run.
pub(crate) fn mark_dry_run(
    outcome: Result<Outcome, CliError>,
    dry_run: bool,
) -> Result<Outcome, CliError> {
    if !dry_run {
        return outcome;
    }
    let mut o = match outcome {
        Ok(o) => o,
        Err(e) => Outcome::failed(serde_json::Value::Null, e),
    };
    o.dry_run = true;
    Ok(o)
}

/// Runs the parsed command.
pub(crate) async fn dispatch(command: Command, ctx: &AppContext) -> Result<Outcome, CliError> {
    match command {
        Command::Airbyte(a) => airbyte::exec(a, ctx).await,
        Command::Dbx(a) => dbx::exec(a, ctx).await,
        Command::Snowflake(a) => snowflake::exec(a, ctx).await,
        Command::Sync(a) => sync::exec(a, ctx).await,
        Command::Notify(a) => notify::exec(a, ctx).await,
        Command::Doctor(a) => doctor::exec(a, ctx).await,
        Command::Schema(a) => Ok(schema::exec(&a)),
        Command::Completions(a) => Ok(shell::completions(&a)),
        Command::Man(_) => Ok(shell::man()),
    }
}
