//! Placeholder for command groups whose issue has not landed: they say so and exit 2.

use clap::Args;

use crate::error::CliError;

use super::Outcome;

/// Accepts anything, so the message is about the missing group rather than a flag.
#[derive(Debug, Args)]
pub(crate) struct NotBuiltArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

impl NotBuiltArgs {
    /// `group sub` when a subcommand word was given.
    pub(crate) fn name(&self, group: &str) -> String {
        match self.rest.first().filter(|w| !w.starts_with('-')) {
            Some(sub) => format!("{group} {sub}"),
            None => group.to_owned(),
        }
    }
}

/// Always a usage error.
pub(crate) fn exec(group: &str, _args: &NotBuiltArgs) -> Result<Outcome, CliError> {
    Err(CliError::usage(format!(
        "`syncctl {group}` is not built yet in this version; see `syncctl --help` for what is"
    )))
}
