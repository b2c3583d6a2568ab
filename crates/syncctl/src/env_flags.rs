//! Which flags stand for an environment variable (the flag wins; the variable, from the
//! process environment or an `--env-file`, fills in when the flag is absent). The variables are
//! read by the code that resolves each setting (`app.rs` for the global options, the library
//! crates' settings for the services); this table is what `--help` must show, and a test walks
//! clap's command tree to hold the two together: a flag documented `[env: NAME]` must be listed
//! here, every entry here must show in its commands' `--help`, and its variable must be read
//! somewhere in the workspace.

#[cfg(test)]
use crate::cli::ALERT_FLAG_ENV;

/// One environment-backed flag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnvFlag {
    /// The command paths that have the flag (`"sync run"`); empty for a global option.
    pub(crate) commands: &'static [&'static str],
    /// The long flag, without dashes.
    pub(crate) flag: &'static str,
    /// The variable it stands for.
    pub(crate) env: &'static str,
}

const fn global(flag: &'static str, env: &'static str) -> EnvFlag {
    EnvFlag {
        commands: &[],
        flag,
        env,
    }
}

const AIRBYTE: &[&str] = &["airbyte trigger", "airbyte status", "airbyte cancel"];
const DBX: &[&str] = &["dbx run-now", "dbx status", "dbx cancel"];
const SNOWFLAKE: &[&str] = &["snowflake copy"];
/// The commands with the shared waiting flags (`commands::wait::WaitArgs`).
const WAITING: &[&str] = &[
    "airbyte trigger",
    "airbyte status",
    "dbx run-now",
    "dbx status",
    "snowflake copy",
];
/// The commands with the cancel-confirmation part of them (`commands::wait::ConfirmArgs`).
const WAITING_AND_CONFIRMING: &[&str] = &[
    "airbyte trigger",
    "airbyte status",
    "dbx run-now",
    "dbx status",
    "snowflake copy",
    "airbyte cancel",
    "dbx cancel",
];

const fn waiting(flag: &'static str, env: &'static str) -> EnvFlag {
    EnvFlag {
        commands: WAITING,
        flag,
        env,
    }
}
const SYNC_STORE: &[&str] = &[
    "sync run",
    "sync plan",
    "sync check",
    "sync conflicts list",
    "sync conflicts resolve",
    "sync history",
    "sync show",
];

/// Every environment-backed flag but the alert flags (`cli::ALERT_FLAG_ENV`, which the alert
/// settings read through that table itself).
const TABLE: &[EnvFlag] = &[
    global("result-file", "SYNCCTL_RESULT_FILE"),
    global("output", "SYNCCTL_OUTPUT"),
    global("log-format", "SYNCCTL_LOG_FORMAT"),
    global("env-file", "SYNCCTL_ENV_FILE"),
    global("noop-exit-code", "SYNCCTL_NOOP_EXIT_CODE"),
    global("termination-log", "SYNCCTL_TERMINATION_LOG"),
    global("idempotency-key", "SYNCCTL_IDEMPOTENCY_KEY"),
    global("no-progress", "SYNCCTL_NO_PROGRESS"),
    EnvFlag {
        commands: AIRBYTE,
        flag: "api",
        env: "AIRBYTE_API",
    },
    EnvFlag {
        commands: &["airbyte trigger"],
        flag: "workspace-id",
        env: "AIRBYTE_WORKSPACE_ID",
    },
    EnvFlag {
        commands: DBX,
        flag: "profile",
        env: "DATABRICKS_CONFIG_PROFILE",
    },
    EnvFlag {
        commands: SNOWFLAKE,
        flag: "warehouse",
        env: "SNOWFLAKE_WAREHOUSE",
    },
    EnvFlag {
        commands: SNOWFLAKE,
        flag: "role",
        env: "SNOWFLAKE_ROLE",
    },
    EnvFlag {
        commands: SNOWFLAKE,
        flag: "database",
        env: "SNOWFLAKE_DATABASE",
    },
    EnvFlag {
        commands: SNOWFLAKE,
        flag: "schema",
        env: "SNOWFLAKE_SCHEMA",
    },
    EnvFlag {
        commands: WAITING_AND_CONFIRMING,
        flag: "poll-interval",
        env: "SYNCCTL_POLL_INTERVAL",
    },
    EnvFlag {
        commands: WAITING_AND_CONFIRMING,
        flag: "kill-grace",
        env: "SYNCCTL_KILL_GRACE",
    },
    waiting("max-poll-interval", "SYNCCTL_MAX_POLL_INTERVAL"),
    waiting("wait-timeout", "SYNCCTL_WAIT_TIMEOUT"),
    waiting("deadline", "SYNCCTL_DEADLINE"),
    waiting("on-kill", "SYNCCTL_ON_KILL"),
    EnvFlag {
        commands: SYNC_STORE,
        flag: "state-url",
        env: "SYNCCTL_STATE_URL",
    },
];

/// Every environment-backed flag, the alert flags included.
#[cfg(test)]
pub(crate) fn all() -> Vec<EnvFlag> {
    let alerts = ALERT_FLAG_ENV.iter().map(|(flag, env)| EnvFlag {
        commands: &[],
        flag: flag.trim_start_matches('-'),
        env,
    });
    TABLE.iter().copied().chain(alerts).collect()
}

/// The variable behind a global option (`"output"` → `SYNCCTL_OUTPUT`), for the code that
/// resolves it; `None` for a flag that has none.
pub(crate) fn global_env(flag: &str) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|f| f.commands.is_empty() && f.flag == flag)
        .map(|f| f.env)
}

/// Whether `flag` of the command at `path` ("" for the top level) stands for `env`.
#[cfg(test)]
pub(crate) fn is_backed(path: &str, flag: &str, env: &str) -> bool {
    all().iter().any(|f| {
        f.flag == flag && f.env == env && (f.commands.is_empty() || f.commands.contains(&path))
    })
}

/// The entries of the command at `path` (globals included).
#[cfg(test)]
pub(crate) fn of_command(path: &str) -> Vec<EnvFlag> {
    all()
        .into_iter()
        .filter(|f| f.commands.is_empty() || f.commands.contains(&path))
        .collect()
}

/// The names only this table spells out (the alert flags' are spelled in `cli.rs`).
#[cfg(test)]
pub(crate) fn own_entries() -> &'static [EnvFlag] {
    TABLE
}
