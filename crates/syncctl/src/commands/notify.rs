//! `syncctl notify`: send one alert on demand, for a DAG's `on_failure_callback` or a Kestra
//! `errors` branch. With `--from-result`, the failed task's JSON result becomes the message.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;
use syncctl_core::{ErrorClass, RunResult, Status};
use syncctl_notify::{Alert, Link, MetricsSettings, deliver};

use crate::context::AppContext;
use crate::error::{CliError, ResultExt};

use super::Outcome;

const AFTER_HELP: &str = "\
Channels (flags override the variables; --env-file works too):
  Slack:  ENABLE_SLACK=true|false  SLACK_WEBHOOK_URL (--enable-slack, --slack-webhook-url)
  Email:  ENABLE_EMAIL=true|false  ALERT_EMAILS=a@x,b@y  SMTP_HOST  SMTP_PORT  SMTP_USERNAME
          SMTP_PASSWORD  SMTP_FROM  SMTP_TLS=starttls|tls|none  SMTP_CA_FILE
          (--enable-email, --alert-emails, --smtp-host, --smtp-port, --smtp-username,
           --smtp-password, --smtp-from, --smtp-tls, --smtp-ca-file)
Every other command alerts by itself per --notify on-failure|always|never (SYNCCTL_NOTIFY).
Exit 0 when at least one channel took the alert, 4 when none did, 2 when none is configured.";

/// Arguments of `syncctl notify`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct NotifyArgs {
    /// The status to report [default: the result's status with --from-result, else failed]
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Headline [default: "syncctl COMMAND STATUS" from the result, else "Pipeline STATUS"]
    #[arg(long)]
    title: Option<String>,
    /// Message text (an exception, a log excerpt)
    #[arg(long)]
    message: Option<String>,
    /// A syncctl JSON result (file with the result as its last JSON line) to report
    #[arg(long, value_name = "PATH")]
    from_result: Option<PathBuf>,
    /// A link to add as a button, LABEL=URL or just URL (repeatable)
    #[arg(long, value_name = "LINK")]
    link: Vec<String>,
    /// A key figure to add, NAME=VALUE (repeatable)
    #[arg(long, value_name = "NAME=VALUE")]
    fact: Vec<String>,
}

/// Statuses `--status` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum StatusArg {
    Failed,
    Succeeded,
    TimedOut,
    Cancelled,
    Skipped,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Failed => Status::Failed,
            StatusArg::Succeeded => Status::Succeeded,
            StatusArg::TimedOut => Status::TimedOut,
            StatusArg::Cancelled => Status::Cancelled,
            StatusArg::Skipped => Status::Skipped,
        }
    }
}

/// The last line of `text` that parses as a result (a captured stdout has logs before it).
fn parse_result(text: &str) -> Option<RunResult> {
    text.lines()
        .rev()
        .filter(|l| l.trim_start().starts_with('{'))
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .or_else(|| serde_json::from_str(text).ok())
}

fn build_alert(args: &NotifyArgs, ctx: &AppContext) -> Result<Alert, CliError> {
    let mut alert = match &args.from_result {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .class(ErrorClass::Config)
                .map_err(|e| {
                    CliError::config(format!(
                        "cannot read --from-result {}: {}",
                        path.display(),
                        e.error
                    ))
                })?;
            let result = parse_result(&text).ok_or_else(|| {
                CliError::config(format!(
                    "--from-result {} holds no syncctl.result/v1 JSON",
                    path.display()
                ))
            })?;
            ctx.alerting.alert_for(&result)
        }
        None => {
            let status = args.status.map_or(Status::Failed, Status::from);
            let title = format!(
                "Pipeline {}",
                if status == Status::TimedOut {
                    "timed out"
                } else {
                    status.as_str()
                }
            );
            let mut a = ctx
                .alerting
                .alert_for(&RunResult::new("notify", chrono::Utc::now()));
            // A bare alert: no command, run figures or run id of its own.
            a.title = title;
            a.command = None;
            a.facts.clear();
            a.run_id = None;
            a.finished_at = None;
            a
        }
    };
    if let Some(s) = args.status {
        alert.status = s.into();
        if let Some((_, v)) = alert.facts.iter_mut().find(|(k, _)| k == "Status") {
            *v = alert.status.as_str().to_owned();
        }
    }
    if let Some(t) = &args.title {
        alert.title.clone_from(t);
    }
    if let Some(m) = &args.message {
        if let (Some(old), Some(class)) = (alert.message.take(), alert.error_class.take()) {
            alert
                .facts
                .push(("Error".into(), format!("{class}: {old}")));
        }
        alert.message = Some(m.clone());
    }
    for f in &args.fact {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--fact must be NAME=VALUE, got {f:?}")))?;
        alert.facts.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    for l in &args.link {
        let (label, url) = match l.split_once('=') {
            Some((label, url)) if url.starts_with("http") => (label.trim(), url.trim()),
            _ => ("Details", l.trim()),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(CliError::usage(format!(
                "--link must be an http(s) URL (optionally LABEL=URL), got {l:?}"
            )));
        }
        alert.links.push(Link {
            label: label.to_owned(),
            url: url.to_owned(),
        });
    }
    Ok(alert)
}

/// Sends the alert to every configured channel, whatever `--notify` says (asking is enough).
pub(crate) async fn exec(args: NotifyArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let settings = &ctx.alerting.alerts;
    if !settings.any_channel() {
        return Err(CliError::config(
            "no alert channel is configured: set SLACK_WEBHOOK_URL (Slack) or ALERT_EMAILS with \
             SMTP_HOST and SMTP_FROM (email), or the matching flags",
        ));
    }
    let alert = build_alert(&args, ctx)?;
    let report = deliver(
        Some(&alert),
        settings,
        None,
        &MetricsSettings::default(),
        ctx.alerting.deadline,
    )
    .await;
    let deliveries: Vec<serde_json::Value> = report
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "channel": d.channel,
                "target": d.target,
                "delivered": d.delivered,
                "attempts": d.attempts,
                "error": d.error,
            })
        })
        .collect();
    let data = json!({
        "title": alert.title,
        "status": alert.status,
        "delivered": report.deliveries.iter().filter(|d| d.delivered).count(),
        "failed": report.deliveries.iter().filter(|d| !d.delivered).count(),
        "deliveries": deliveries,
    });
    let warnings = report.warnings();
    if report.all_failed() {
        let err = CliError::new(
            ErrorClass::Transient,
            anyhow::anyhow!(
                "the alert was not delivered to any channel: {}",
                warnings.join("; ")
            ),
        );
        return Ok(Outcome::failed(data, err));
    }
    Ok(Outcome::succeeded(data).with_warnings(warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_found_after_log_lines() {
        let mut r = RunResult::new("dbx run-now", chrono::Utc::now());
        r.status = Status::Failed;
        let text = format!("INFO starting\n{}\n", r.to_json_line());
        assert_eq!(parse_result(&text).unwrap().status, Status::Failed);
        assert!(parse_result("no json here").is_none());
    }
}
