//! The waiting flags every command that waits for remote work shares (`airbyte trigger`,
//! `airbyte status --wait`, `dbx run-now`, `dbx status --wait`, `snowflake copy`): one clap
//! group, flattened, so names, defaults, environment variables and help text are the same
//! everywhere. The clocks themselves are `syncctl_core::Waiter`.

use std::time::Duration;

use clap::{Args, ValueEnum};
use syncctl_config::Env;
use syncctl_core::{HumanDuration, OnKill, WaitOptions, Waiter};
use tokio::time::Instant;

use crate::context::AppContext;
use crate::error::CliError;

/// What SIGTERM/SIGINT does to the remote work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnKillFlag {
    /// Cancel it and wait (up to --kill-grace) for the service to confirm
    Cancel,
    /// Leave it running
    Leave,
}

const POLL_INTERVAL_HELP: &str = "First poll interval; it grows to a tenth of the time waited, up to \
--max-poll-interval [env: SYNCCTL_POLL_INTERVAL] [default: 1s]";
const MAX_POLL_INTERVAL_HELP: &str =
    "Longest poll interval [env: SYNCCTL_MAX_POLL_INTERVAL] [default: 60s]";
const WAIT_TIMEOUT_HELP: &str = "Stop waiting DUR after the command started and leave the remote \
work running (status timed_out, exit 5) [env: SYNCCTL_WAIT_TIMEOUT]";
const DEADLINE_HELP: &str = "Cancel the remote work DUR after the command started (status \
timed_out, exit 5) [env: SYNCCTL_DEADLINE]";
const ON_KILL_HELP: &str = "What SIGTERM/SIGINT does to the remote work [env: SYNCCTL_ON_KILL] \
[default: cancel; leave for status --wait, which did not start it]";
const KILL_GRACE_HELP: &str = "How long to wait for the service to confirm a cancellation (after \
a signal, the deadline or a cancel command; exit 5 when it does not), at most 27s: syncctl \
reports 28s after a signal, before Kubernetes' 30s grace ends [env: SYNCCTL_KILL_GRACE] \
[default: 20s]";

/// The shared waiting flags. Each is resolved flag, then variable, then default.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Waiting")]
pub(crate) struct WaitArgs {
    #[arg(long, value_name = "DUR", help = POLL_INTERVAL_HELP)]
    pub(crate) poll_interval: Option<HumanDuration>,

    #[arg(long, value_name = "DUR", help = MAX_POLL_INTERVAL_HELP)]
    pub(crate) max_poll_interval: Option<HumanDuration>,

    #[arg(long, value_name = "DUR", help = WAIT_TIMEOUT_HELP)]
    pub(crate) wait_timeout: Option<HumanDuration>,

    #[arg(long, value_name = "DUR", help = DEADLINE_HELP)]
    pub(crate) deadline: Option<HumanDuration>,

    #[arg(long, value_enum, value_name = "ACTION", help = ON_KILL_HELP)]
    pub(crate) on_kill: Option<OnKillFlag>,

    #[arg(long, value_name = "DUR", help = KILL_GRACE_HELP)]
    pub(crate) kill_grace: Option<HumanDuration>,
}

/// The part of the waiting flags a cancel command uses (`airbyte cancel`, `dbx cancel`): the
/// same flags, with the same help, variables and defaults.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Waiting")]
pub(crate) struct ConfirmArgs {
    #[arg(long, value_name = "DUR", help = POLL_INTERVAL_HELP)]
    pub(crate) poll_interval: Option<HumanDuration>,

    #[arg(long, value_name = "DUR", help = KILL_GRACE_HELP)]
    pub(crate) kill_grace: Option<HumanDuration>,
}

impl ConfirmArgs {
    /// The options (only the poll interval and the kill grace matter to a cancel).
    pub(crate) fn options(&self, env: &Env) -> Result<WaitOptions, CliError> {
        WaitArgs {
            poll_interval: self.poll_interval,
            kill_grace: self.kill_grace,
            ..WaitArgs::default()
        }
        .options(env, OnKill::Leave)
    }
}

fn duration(
    flag: Option<HumanDuration>,
    env: &Env,
    var: &str,
) -> Result<Option<Duration>, CliError> {
    if let Some(d) = flag {
        return Ok(Some(d.get()));
    }
    match env.get(var) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .parse::<HumanDuration>()
            .map(|d| Some(d.get()))
            .map_err(|e| CliError::config(format!("{var}: {e}"))),
    }
}

impl WaitArgs {
    /// Whether a clock was given on the command line (for commands that wait only on request).
    pub(crate) fn clock_given(&self) -> bool {
        self.wait_timeout.is_some() || self.deadline.is_some()
    }

    /// The options, checked. `on_kill_default` applies when neither `--on-kill` nor
    /// `SYNCCTL_ON_KILL` is given: a command cancels the work it started and leaves alone
    /// work it only watches.
    pub(crate) fn options(
        &self,
        env: &Env,
        on_kill_default: OnKill,
    ) -> Result<WaitOptions, CliError> {
        let d = WaitOptions::default();
        let on_kill = match self.on_kill {
            Some(OnKillFlag::Cancel) => OnKill::Cancel,
            Some(OnKillFlag::Leave) => OnKill::Leave,
            None => match env.get("SYNCCTL_ON_KILL").as_deref().map(str::trim) {
                None | Some("") => on_kill_default,
                Some(v) if v.eq_ignore_ascii_case("cancel") => OnKill::Cancel,
                Some(v) if v.eq_ignore_ascii_case("leave") => OnKill::Leave,
                Some(v) => {
                    return Err(CliError::config(format!(
                        "SYNCCTL_ON_KILL must be cancel or leave, got {v:?}"
                    )));
                }
            },
        };
        let poll_interval =
            duration(self.poll_interval, env, "SYNCCTL_POLL_INTERVAL")?.unwrap_or(d.poll_interval);
        let opts = WaitOptions {
            poll_interval,
            max_poll_interval: duration(self.max_poll_interval, env, "SYNCCTL_MAX_POLL_INTERVAL")?
                .unwrap_or(d.max_poll_interval)
                .max(poll_interval),
            wait_timeout: duration(self.wait_timeout, env, "SYNCCTL_WAIT_TIMEOUT")?,
            deadline: duration(self.deadline, env, "SYNCCTL_DEADLINE")?,
            kill_grace: duration(self.kill_grace, env, "SYNCCTL_KILL_GRACE")?
                .unwrap_or(d.kill_grace),
            on_kill,
        };
        opts.validate().map_err(CliError::usage)?;
        Ok(opts)
    }

    /// A waiter whose clocks started at `started` (the command's start).
    pub(crate) fn waiter(
        &self,
        ctx: &AppContext,
        started: Instant,
        on_kill_default: OnKill,
    ) -> Result<Waiter, CliError> {
        Ok(Waiter::new(
            self.options(&ctx.env, on_kill_default)?,
            started,
            ctx.cancel.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use syncctl_core::ErrorClass;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        wait: WaitArgs,
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn flags_win_over_variables_over_defaults() {
        let c = Cmd::parse_from(["x", "--poll-interval", "2s", "--on-kill", "leave"]);
        let e = env(&[
            ("SYNCCTL_POLL_INTERVAL", "9s"),
            ("SYNCCTL_DEADLINE", "1h"),
            ("SYNCCTL_KILL_GRACE", "5s"),
        ]);
        let o = c.wait.options(&e, OnKill::Cancel).unwrap();
        assert_eq!(o.poll_interval, Duration::from_secs(2));
        assert_eq!(o.max_poll_interval, Duration::from_secs(60));
        assert_eq!(o.deadline, Some(Duration::from_secs(3600)));
        assert_eq!(o.wait_timeout, None);
        assert_eq!(o.kill_grace, Duration::from_secs(5));
        assert_eq!(o.on_kill, OnKill::Leave);

        let c = Cmd::parse_from(["x"]);
        let o = c.wait.options(&env(&[]), OnKill::Leave).unwrap();
        assert_eq!(
            o,
            WaitOptions {
                on_kill: OnKill::Leave,
                ..WaitOptions::default()
            }
        );
        let o = c
            .wait
            .options(&env(&[("SYNCCTL_ON_KILL", "cancel")]), OnKill::Leave)
            .unwrap();
        assert_eq!(o.on_kill, OnKill::Cancel);
    }

    #[test]
    fn bad_values_are_refused_before_anything_is_sent() {
        let c = Cmd::parse_from(["x", "--kill-grace", "28s"]);
        let e = c.wait.options(&env(&[]), OnKill::Cancel).unwrap_err();
        assert_eq!(e.class, ErrorClass::Usage);
        let c = Cmd::parse_from(["x", "--poll-interval", "0s"]);
        let e = c.wait.options(&env(&[]), OnKill::Cancel).unwrap_err();
        assert_eq!(
            e.to_info().message,
            "--poll-interval must be longer than 0s"
        );
        let c = Cmd::parse_from(["x"]);
        for (var, value) in [
            ("SYNCCTL_WAIT_TIMEOUT", "soon"),
            ("SYNCCTL_ON_KILL", "stop"),
        ] {
            let e = c
                .wait
                .options(&env(&[(var, value)]), OnKill::Cancel)
                .unwrap_err();
            assert_eq!(e.class, ErrorClass::Config, "{var}");
            assert!(e.to_info().message.contains(var), "{var}");
        }
    }
}
