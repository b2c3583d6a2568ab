//! `syncctl snowflake`: not built yet (its issue owns this file).

use clap::Args;

use crate::context::AppContext;
use crate::error::CliError;

use super::Outcome;
use super::doctor::Probe;
use super::not_built::NotBuiltArgs;

/// Arguments of `syncctl snowflake`.
#[derive(Debug, Args)]
pub(crate) struct SnowflakeArgs {
    #[command(flatten)]
    inner: NotBuiltArgs,
}

impl SnowflakeArgs {
    /// The command's name in results.
    pub(crate) fn name(&self) -> String {
        self.inner.name("snowflake")
    }
}

/// Runs the command.
#[allow(clippy::unused_async)]
pub(crate) async fn exec(args: SnowflakeArgs, _ctx: &AppContext) -> Result<Outcome, CliError> {
    super::not_built::exec("snowflake", &args.inner)
}

/// `syncctl doctor` checks for this group's services.
pub(crate) fn doctor_probes() -> Vec<Probe> {
    Vec::new()
}
