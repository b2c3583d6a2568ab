//! `syncctl dbx`: not built yet (its issue owns this file).

use clap::Args;

use crate::context::AppContext;
use crate::error::CliError;

use super::Outcome;
use super::doctor::Probe;
use super::not_built::NotBuiltArgs;

/// Arguments of `syncctl dbx`.
#[derive(Debug, Args)]
pub(crate) struct DbxArgs {
    #[command(flatten)]
    inner: NotBuiltArgs,
}

impl DbxArgs {
    /// The command's name in results.
    pub(crate) fn name(&self) -> String {
        self.inner.name("dbx")
    }
}

/// Runs the command.
#[allow(clippy::unused_async)]
pub(crate) async fn exec(args: DbxArgs, _ctx: &AppContext) -> Result<Outcome, CliError> {
    super::not_built::exec("dbx", &args.inner)
}

/// `syncctl doctor` checks for this group's services.
pub(crate) fn doctor_probes() -> Vec<Probe> {
    Vec::new()
}
