//! Command-line definitions (clap). Settings that also come from the environment are resolved
//! in `app.rs`, not by clap, so that `--env-file` values can sit beneath real variables.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::exit::EXIT_CODES_HELP;

/// syncctl: move and reconcile business data from Airflow and Kestra.
#[derive(Debug, Parser)]
#[command(
    name = "syncctl",
    version,
    about = "Move and reconcile business data: Airbyte syncs, Databricks jobs, Snowflake loads and two-way record sync.",
    long_about = None,
    after_help = EXIT_CODES_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true,
    max_term_width = 110
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags accepted before or after any subcommand.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct GlobalArgs {
    /// Also write the JSON result to PATH, even on failure (KubernetesPodOperator:
    /// /airflow/xcom/return.json) [env: SYNCCTL_RESULT_FILE]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub(crate) result_file: Option<PathBuf>,

    /// json: result line only; kestra: also ::{"outputs"}:: and ::{"metrics"}:: lines, logs to
    /// stdout; text: also a human summary on stderr [env: SYNCCTL_OUTPUT] [default: json]
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "MODE",
        help_heading = "Global options"
    )]
    pub(crate) output: Option<OutputMode>,

    /// Log line format [env: SYNCCTL_LOG_FORMAT] [default: text]
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        help_heading = "Global options"
    )]
    pub(crate) log_format: Option<LogFormat>,

    /// More logging (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub(crate) verbose: u8,

    /// Less logging (-q warnings only, -qq errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub(crate) quiet: u8,

    /// Load KEY=VALUE lines from PATH beneath the real environment (repeatable)
    /// [env: SYNCCTL_ENV_FILE]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub(crate) env_file: Vec<PathBuf>,

    /// Exit code for "nothing to do" (status skipped); 99 makes BashOperator skip the task
    /// [env: SYNCCTL_NOOP_EXIT_CODE] [default: 0]
    #[arg(long, global = true, value_name = "N", help_heading = "Global options")]
    pub(crate) noop_exit_code: Option<String>,

    /// Write a one-line failure reason to PATH (KubernetesPodOperator: /dev/termination-log)
    /// [env: SYNCCTL_TERMINATION_LOG]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub(crate) termination_log: Option<PathBuf>,

    /// Idempotency key for this task; by default derived from AIRFLOW_CTX_DAG_ID,
    /// AIRFLOW_CTX_DAG_RUN_ID and AIRFLOW_CTX_TASK_ID (or KESTRA_EXECUTION_ID and
    /// KESTRA_TASK_ID) [env: SYNCCTL_IDEMPOTENCY_KEY]
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        help_heading = "Global options"
    )]
    pub(crate) idempotency_key: Option<String>,

    /// Never draw progress bars (they are drawn only when stderr is a terminal)
    /// [env: SYNCCTL_NO_PROGRESS]
    #[arg(long, global = true, help_heading = "Global options")]
    pub(crate) no_progress: bool,

    /// Alerts and metrics (one shared path for every command).
    #[command(flatten)]
    pub(crate) alerts: AlertArgs,
}

/// Alert and metrics flags. Each one stands for the variable named in `ALERT_FLAG_ENV` and
/// overrides it; `syncctl-notify` resolves their meaning. The Slack and SMTP flags are hidden
/// from every command's help (they are listed in `syncctl notify --help` and docs/alerts.md).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct AlertArgs {
    /// Send Slack/email alerts: on-failure, always or never [env: SYNCCTL_NOTIFY]
    /// [default: on-failure]
    #[arg(
        long,
        global = true,
        value_name = "WHEN",
        help_heading = "Alerts and metrics"
    )]
    pub(crate) notify: Option<String>,
    /// Push this run's metrics to a Prometheus Pushgateway at URL
    /// [env: PROMETHEUS_PUSHGATEWAY_URL]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Alerts and metrics"
    )]
    pub(crate) pushgateway: Option<String>,
    /// Write this run's metrics to PATH in node_exporter textfile format
    /// [env: SYNCCTL_METRICS_FILE]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Alerts and metrics"
    )]
    pub(crate) metrics_file: Option<String>,
    /// true/false [env: ENABLE_SLACK]
    #[arg(long, global = true, value_name = "BOOL", hide = true)]
    pub(crate) enable_slack: Option<String>,
    /// Incoming-webhook URL [env: SLACK_WEBHOOK_URL]
    #[arg(long, global = true, value_name = "URL", hide = true)]
    pub(crate) slack_webhook_url: Option<String>,
    /// true/false [env: ENABLE_EMAIL]
    #[arg(long, global = true, value_name = "BOOL", hide = true)]
    pub(crate) enable_email: Option<String>,
    /// Comma-separated recipients [env: ALERT_EMAILS]
    #[arg(long, global = true, value_name = "ADDRS", hide = true)]
    pub(crate) alert_emails: Option<String>,
    /// [env: SMTP_HOST]
    #[arg(long, global = true, value_name = "HOST", hide = true)]
    pub(crate) smtp_host: Option<String>,
    /// [env: SMTP_PORT]
    #[arg(long, global = true, value_name = "PORT", hide = true)]
    pub(crate) smtp_port: Option<String>,
    /// [env: SMTP_USERNAME]
    #[arg(long, global = true, value_name = "USER", hide = true)]
    pub(crate) smtp_username: Option<String>,
    /// [env: SMTP_PASSWORD]
    #[arg(long, global = true, value_name = "PASSWORD", hide = true)]
    pub(crate) smtp_password: Option<String>,
    /// [env: SMTP_FROM]
    #[arg(long, global = true, value_name = "ADDR", hide = true)]
    pub(crate) smtp_from: Option<String>,
    /// none, starttls or tls [env: SMTP_TLS]
    #[arg(long, global = true, value_name = "MODE", hide = true)]
    pub(crate) smtp_tls: Option<String>,
    /// Extra trusted CA certificate (PEM) [env: SMTP_CA_FILE]
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    pub(crate) smtp_ca_file: Option<String>,
}

/// Each alert flag and the variable it overrides.
pub(crate) const ALERT_FLAG_ENV: [(&str, &str); 14] = [
    ("--notify", "SYNCCTL_NOTIFY"),
    ("--pushgateway", "PROMETHEUS_PUSHGATEWAY_URL"),
    ("--metrics-file", "SYNCCTL_METRICS_FILE"),
    ("--enable-slack", "ENABLE_SLACK"),
    ("--slack-webhook-url", "SLACK_WEBHOOK_URL"),
    ("--enable-email", "ENABLE_EMAIL"),
    ("--alert-emails", "ALERT_EMAILS"),
    ("--smtp-host", "SMTP_HOST"),
    ("--smtp-port", "SMTP_PORT"),
    ("--smtp-username", "SMTP_USERNAME"),
    ("--smtp-password", "SMTP_PASSWORD"),
    ("--smtp-from", "SMTP_FROM"),
    ("--smtp-tls", "SMTP_TLS"),
    ("--smtp-ca-file", "SMTP_CA_FILE"),
];

impl AlertArgs {
    fn slot(&mut self, flag: &str) -> Option<&mut Option<String>> {
        Some(match flag {
            "--notify" => &mut self.notify,
            "--pushgateway" => &mut self.pushgateway,
            "--metrics-file" => &mut self.metrics_file,
            "--enable-slack" => &mut self.enable_slack,
            "--slack-webhook-url" => &mut self.slack_webhook_url,
            "--enable-email" => &mut self.enable_email,
            "--alert-emails" => &mut self.alert_emails,
            "--smtp-host" => &mut self.smtp_host,
            "--smtp-port" => &mut self.smtp_port,
            "--smtp-username" => &mut self.smtp_username,
            "--smtp-password" => &mut self.smtp_password,
            "--smtp-from" => &mut self.smtp_from,
            "--smtp-tls" => &mut self.smtp_tls,
            "--smtp-ca-file" => &mut self.smtp_ca_file,
            _ => return None,
        })
    }

    /// The flags given, as `(variable, value)` pairs that override the environment.
    pub(crate) fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut me = self.clone();
        ALERT_FLAG_ENV
            .iter()
            .filter_map(|(flag, env)| me.slot(flag)?.clone().map(|v| (*env, v)))
            .collect()
    }

    /// Fills flags clap did not see from a raw scan.
    pub(crate) fn merge_unset(&mut self, mut scanned: AlertArgs) {
        for (flag, _) in ALERT_FLAG_ENV {
            let theirs = scanned.slot(flag).and_then(Option::take);
            if let Some(mine) = self.slot(flag)
                && mine.is_none()
            {
                *mine = theirs;
            }
        }
    }
}

/// Where the result goes besides the last stdout line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum OutputMode {
    /// The JSON result line only.
    #[default]
    Json,
    /// Kestra's `::{…}::` protocol lines too; logs go to stdout.
    Kestra,
    /// A human summary on stderr too.
    Text,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Trigger Airbyte connection syncs (one or many), wait, attach, cancel
    Airbyte(commands::airbyte::AirbyteArgs),
    /// Run Databricks jobs, wait, and report per-task results
    Dbx(commands::dbx::DbxArgs),
    /// Load date-partitioned data-lake files into Snowflake with COPY INTO
    Snowflake(commands::snowflake::SnowflakeArgs),
    /// Two-way record sync between CRMs, ERPs, sheets and databases, with audit and conflicts
    Sync(commands::sync::SyncArgs),
    /// Send a Slack/email alert (DAG on_failure_callback, Kestra errors branch)
    Notify(commands::notify::NotifyArgs),
    /// Check every configured service: URL, auth method, and one cheap authenticated call
    Doctor(commands::doctor::DoctorArgs),
    /// Print the JSON Schema of the result (syncctl.result/v1)
    Schema(commands::schema::SchemaArgs),
    /// Print a shell completion script (bash, zsh or fish)
    Completions(commands::shell::CompletionsArgs),
    /// Print the man page (roff) covering every command
    Man(commands::shell::ManArgs),
}

impl Command {
    /// The command's name in results (`airbyte trigger`, `doctor`).
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Airbyte(a) => a.name(),
            Self::Dbx(a) => a.name(),
            Self::Snowflake(a) => a.name(),
            Self::Sync(a) => a.name(),
            Self::Notify(_) => "notify".to_owned(),
            Self::Doctor(_) => "doctor".to_owned(),
            Self::Schema(_) => "schema".to_owned(),
            Self::Completions(_) => "completions".to_owned(),
            Self::Man(_) => "man".to_owned(),
        }
    }
}

impl Command {
    /// Whether the command line asks for a dry run (`sync plan`, `--dry-run`), so that every
    /// result of it, failures included, says `"dry_run": true`.
    pub(crate) fn dry_run(&self) -> bool {
        match self {
            Self::Sync(a) => a.dry_run(),
            Self::Snowflake(a) => a.dry_run(),
            _ => false,
        }
    }
}

/// Whether raw arguments ask for a dry run, for results of usage errors.
pub(crate) fn scan_dry_run(args: &[OsString]) -> bool {
    args.iter().any(|a| a == "--dry-run") || guess_command_name(args) == "sync plan"
}

/// A best-effort command name from raw arguments, for results of usage errors.
pub(crate) fn guess_command_name(args: &[OsString]) -> String {
    let cmd = crate::help::command();
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .filter(|a| !a.starts_with('-'))
        .map(str::to_owned)
        .collect();
    let Some(first) = words.first() else {
        return "syncctl".to_owned();
    };
    let Some(group) = cmd.find_subcommand(first) else {
        return "syncctl".to_owned();
    };
    match words.get(1).and_then(|w| group.find_subcommand(w)) {
        Some(sub) => format!("{} {}", group.get_name(), sub.get_name()),
        None => group.get_name().to_owned(),
    }
}

/// Scans raw arguments for the global flags that decide where a result goes, for when clap
/// rejected the command line and parsed nothing.
pub(crate) fn scan_globals(args: &[OsString]) -> GlobalArgs {
    let mut g = GlobalArgs::default();
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut i = 1;
    while i < words.len() {
        let w = &words[i];
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (w.clone(), None),
        };
        let alert_flag = ALERT_FLAG_ENV.iter().any(|(f, _)| *f == flag);
        let takes_value = alert_flag
            || matches!(
                flag.as_str(),
                "--result-file"
                    | "--output"
                    | "--termination-log"
                    | "--noop-exit-code"
                    | "--env-file"
                    | "--log-format"
            );
        if takes_value {
            let value = inline.or_else(|| {
                i += 1;
                words.get(i).cloned()
            });
            if let Some(v) = value {
                match flag.as_str() {
                    "--result-file" => g.result_file = Some(v.into()),
                    "--termination-log" => g.termination_log = Some(v.into()),
                    "--noop-exit-code" => g.noop_exit_code = Some(v),
                    "--env-file" => g.env_file.push(v.into()),
                    "--output" => g.output = OutputMode::from_str(&v, true).ok(),
                    "--log-format" => g.log_format = LogFormat::from_str(&v, true).ok(),
                    other => {
                        if let Some(slot) = g.alerts.slot(other) {
                            *slot = Some(v);
                        }
                    }
                }
            }
        }
        i += 1;
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(os(&[
            "syncctl",
            "doctor",
            "--result-file",
            "/tmp/r.json",
            "-v",
        ]))
        .unwrap();
        assert_eq!(
            cli.global.result_file.as_deref(),
            Some(std::path::Path::new("/tmp/r.json"))
        );
        assert_eq!(cli.global.verbose, 1);
        let cli = Cli::try_parse_from(os(&["syncctl", "--output", "kestra", "doctor"])).unwrap();
        assert_eq!(cli.global.output, Some(OutputMode::Kestra));
    }

    #[test]
    fn scanning_finds_result_transports_in_bad_command_lines() {
        let g = scan_globals(&os(&[
            "syncctl",
            "dbx",
            "--bogus",
            "--result-file=/x/r.json",
            "--output",
            "kestra",
            "--noop-exit-code",
            "99",
        ]));
        assert_eq!(
            g.result_file.as_deref(),
            Some(std::path::Path::new("/x/r.json"))
        );
        assert_eq!(g.output, Some(OutputMode::Kestra));
        assert_eq!(g.noop_exit_code.as_deref(), Some("99"));
    }

    #[test]
    fn command_names_are_guessed_from_words() {
        assert_eq!(guess_command_name(&os(&["syncctl", "--bogus"])), "syncctl");
        assert_eq!(
            guess_command_name(&os(&["syncctl", "doctor", "--bogus"])),
            "doctor"
        );
        assert_eq!(guess_command_name(&os(&["syncctl", "nope"])), "syncctl");
    }
}
