//! The one shared path that alerts and pushes metrics for every command: `app::finish` calls
//! [`Alerting::deliver`] with the finished result, whatever command produced it. The work
//! itself lives in `syncctl-notify`; this module only resolves settings and picks what to send.

use std::time::Duration;

use syncctl_config::Env;
use syncctl_core::{HumanDuration, OrchestratorContext, Redactor, RunResult, Status};
use syncctl_notify::{Alert, AlertSettings, MetricsSettings, RunMetrics, deliver};

use crate::cli::AlertArgs;
use crate::error::CliError;

/// How long delivery may hold up the result unless `SYNCCTL_NOTIFY_TIMEOUT` says otherwise.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Command groups whose runs are alerted and measured.
const RUN_GROUPS: [&str; 4] = ["airbyte", "dbx", "snowflake", "sync"];

/// Resolved alert and metrics settings plus what the messages need from the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Alerting {
    pub(crate) alerts: AlertSettings,
    pub(crate) metrics: MetricsSettings,
    pub(crate) deadline: Duration,
    orchestrator: OrchestratorContext,
    /// Variables the links need (`AIRFLOW__WEBSERVER__BASE_URL`, `KESTRA_URL`, …).
    env: Option<Env>,
    /// The grouping name from the command line, for results without one in `data`.
    name_hint: Option<String>,
}

impl Alerting {
    /// Resolves settings: flags over the environment over env files.
    pub(crate) fn resolve(
        flags: &AlertArgs,
        env: &Env,
        name_hint: Option<String>,
    ) -> Result<Self, CliError> {
        let overrides = flags.overrides();
        let lookup = |name: &str| {
            overrides
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| env.get(name))
        };
        let alerts = AlertSettings::resolve(lookup).map_err(CliError::from)?;
        let metrics = MetricsSettings::resolve(lookup).map_err(CliError::from)?;
        let deadline = match env.get("SYNCCTL_NOTIFY_TIMEOUT") {
            None => DEFAULT_DEADLINE,
            Some(v) => v
                .parse::<HumanDuration>()
                .map(HumanDuration::get)
                .map_err(|e| CliError::usage(format!("SYNCCTL_NOTIFY_TIMEOUT: {e}")))?,
        };
        Ok(Self {
            alerts,
            metrics,
            deadline,
            orchestrator: OrchestratorContext::from_lookup(|k| env.get(k)),
            env: Some(env.clone()),
            name_hint,
        })
    }

    /// Registers the webhook URL and path, the SMTP password and a Pushgateway password.
    pub(crate) fn register_secrets(&self, r: &mut Redactor) {
        self.alerts.register_secrets(r);
        self.metrics.register_secrets(r);
    }

    /// The alert for a result, with the orchestrator context and links.
    pub(crate) fn alert_for(&self, result: &RunResult) -> Alert {
        let env = self.env.clone().unwrap_or_default();
        Alert::from_result(result).with_orchestrator(&self.orchestrator, |k| env.get(k))
    }

    /// Alerts (per `--notify`) and pushes/writes metrics for a finished run of one of the
    /// service commands; returns warnings for whatever could not be delivered. Runs on its own
    /// small runtime, bounded by the deadline, after the command's runtime has shut down.
    pub(crate) fn deliver(&self, result: &RunResult) -> Vec<String> {
        let group = result.command.split(' ').next().unwrap_or_default();
        if !RUN_GROUPS.contains(&group) {
            return Vec::new();
        }
        let alert = (self.alerts.any_channel() && self.alerts.policy.wants(result.status))
            .then(|| self.alert_for(result));
        // A dry run changes nothing, so it must not move "last success" or any count.
        let measure = result.status != Status::Planned
            && (self.metrics.pushgateway.is_some() || self.metrics.file.is_some());
        let metrics = measure.then(|| {
            // What the user typed is stable across failures; a sync's name lives in its
            // config, so its result names it (the file name stands in when there is none).
            let from_data = RunMetrics::name_from_data(&result.data);
            let name = if group == "sync" {
                from_data.or_else(|| self.name_hint.clone())
            } else {
                self.name_hint.clone().or(from_data)
            };
            RunMetrics::from_result(
                result,
                name.as_deref(),
                &syncctl_http::HttpStats::global().snapshot(),
            )
        });
        if alert.is_none() && metrics.is_none() {
            return Vec::new();
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return vec![format!("alerts and metrics not sent: {e}")],
        };
        let report = runtime.block_on(deliver(
            alert.as_ref(),
            &self.alerts,
            metrics.as_ref(),
            &self.metrics,
            self.deadline,
        ));
        for d in &report.deliveries {
            match &d.error {
                None => {
                    tracing::debug!(channel = d.channel, target = ?d.target, attempts = d.attempts, "Delivered.")
                }
                Some(e) => tracing::warn!(channel = d.channel, "{e}"),
            }
        }
        report.warnings()
    }
}

/// Registers the secrets typed as alert flags with the redactor before the settings are
/// resolved: an invalid alert setting (a bad port, say) must not leave them unredacted.
pub(crate) fn register_flag_secrets(args: &AlertArgs, r: &mut Redactor) {
    if let Some(url) = &args.slack_webhook_url {
        r.add(url);
    }
    if let Some(password) = &args.smtp_password {
        r.add(password);
    }
    if let Some(url) = &args.pushgateway {
        r.add_url_password(url);
    }
}

/// The grouping name from the command line (the Airbyte connections, the Databricks job,
/// the Snowflake table, the sync config's file name), for results whose `data` has none.
pub(crate) fn name_hint(args: &[std::ffi::OsString]) -> Option<String> {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut found: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (flag, inline) = match words[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (words[i].clone(), None),
        };
        if matches!(
            flag.as_str(),
            "--connection" | "--job-name" | "--job-id" | "--table" | "--config"
        ) {
            let value = inline.or_else(|| {
                i += 1;
                words.get(i).cloned()
            });
            if let Some(v) = value {
                found.push((flag, v));
            }
        }
        i += 1;
    }
    let pick = |f: &str| -> Vec<String> {
        found
            .iter()
            .filter(|(k, _)| k == f)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let mut connections = pick("--connection");
    if !connections.is_empty() {
        connections.sort();
        connections.dedup();
        return Some(connections.join(","));
    }
    for f in ["--job-name", "--job-id", "--table"] {
        if let Some(v) = pick(f).pop() {
            return Some(v);
        }
    }
    pick("--config").pop().map(|c| {
        std::path::Path::new(&c)
            .file_stem()
            .map_or(c.clone(), |s| s.to_string_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
        args.iter().map(std::ffi::OsString::from).collect()
    }

    #[test]
    fn name_hint_prefers_connections_then_job_then_table_then_config() {
        assert_eq!(
            name_hint(&os(&[
                "syncctl",
                "airbyte",
                "trigger",
                "--connection",
                "b",
                "--connection=a"
            ])),
            Some("a,b".into())
        );
        assert_eq!(
            name_hint(&os(&["syncctl", "dbx", "run-now", "--job-name", "nightly"])),
            Some("nightly".into())
        );
        assert_eq!(
            name_hint(&os(&[
                "syncctl",
                "sync",
                "run",
                "--config",
                "/etc/x/contacts.yaml"
            ])),
            Some("contacts".into())
        );
        assert_eq!(name_hint(&os(&["syncctl", "doctor"])), None);
    }

    #[test]
    fn flags_override_the_environment() {
        let env = Env::from_vars([
            ("SYNCCTL_NOTIFY".to_owned(), "never".to_owned()),
            (
                "PROMETHEUS_PUSHGATEWAY_URL".to_owned(),
                "http://env:9091".to_owned(),
            ),
        ]);
        let flags = AlertArgs {
            notify: Some("always".into()),
            ..AlertArgs::default()
        };
        let a = Alerting::resolve(&flags, &env, None).unwrap();
        assert_eq!(a.alerts.policy, syncctl_notify::NotifyPolicy::Always);
        assert_eq!(a.metrics.pushgateway.as_deref(), Some("http://env:9091"));
    }

    #[test]
    fn other_commands_send_nothing() {
        let a = Alerting::default();
        let r = RunResult::new("doctor", chrono::Utc::now());
        assert!(a.deliver(&r).is_empty());
    }
}
