//! From job reports to the command's ending: which error class a set of connections' outcomes
//! is, in what words, and what data, warnings and metrics go with it. The binary only prints.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use syncctl_core::{Classified, Conclusion, ErrorClass, HumanDuration, Metric};

use crate::client::Api;
use crate::error::AirbyteError;
use crate::run::{JobReport, Verdict};

/// The ending of `airbyte trigger` or `airbyte status`: one report per connection, each with
/// the label the user gave it. `interrupted` is whether a signal arrived.
///
/// Precedence: a signal makes it `cancelled`; then auth/config errors; then remote failures;
/// other errors; conflicts; timeouts; all skipped is `skipped`; anything else succeeded.
#[must_use]
pub fn conclude(
    api: Api,
    reports: Vec<JobReport>,
    labels: &[Option<String>],
    interrupted: bool,
) -> Conclusion<AirbyteError> {
    let label_of = |i: usize| labels.get(i).and_then(|l| l.as_deref());
    let jobs: Vec<Value> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| job_json(r, label_of(i)))
        .collect();
    let count = |v: &[Verdict]| reports.iter().filter(|r| v.contains(&r.verdict)).count();
    let data = json!({
        "api": api,
        "jobs": jobs,
        "succeeded": count(&[Verdict::Succeeded]),
        "failed": count(&[Verdict::Failed, Verdict::Cancelled, Verdict::Error, Verdict::Conflict]),
        "skipped": count(&[Verdict::Skipped]),
        "running": reports
            .iter()
            .filter(|r| r.job.as_ref().is_some_and(|j| !j.phase().is_terminal()))
            .count(),
    });
    let mut warnings: Vec<String> = reports.iter().flat_map(|r| r.warnings.clone()).collect();
    warnings.dedup();
    let metrics = metrics(&reports, labels);
    let messages = |pred: &dyn Fn(&JobReport) -> bool| messages(&reports, labels, pred);
    let class_of = |r: &JobReport| r.error.as_ref().map(Classified::class);
    let error = if interrupted
        && reports
            .iter()
            .any(|r| r.interrupted || r.verdict == Verdict::Cancelled)
    {
        let msgs = messages(&|r| r.interrupted);
        Some(AirbyteError::Interrupted(if msgs.is_empty() {
            "interrupted before any sync started".to_owned()
        } else {
            msgs
        }))
    } else if let Some(class) = reports
        .iter()
        .filter_map(class_of)
        .find(|c| matches!(c, ErrorClass::Auth | ErrorClass::Config | ErrorClass::Usage))
    {
        Some(errors(reports, labels, &|r| class_of(r) == Some(class)))
    } else if reports
        .iter()
        .any(|r| matches!(r.verdict, Verdict::Failed | Verdict::Cancelled))
    {
        Some(AirbyteError::JobsFailed(messages(&|r| {
            matches!(r.verdict, Verdict::Failed | Verdict::Cancelled)
        })))
    } else if reports
        .iter()
        .any(|r| r.verdict == Verdict::Error && r.error.is_some())
    {
        Some(errors(reports, labels, &|r| r.verdict == Verdict::Error))
    } else if reports.iter().any(|r| r.verdict == Verdict::Conflict) {
        Some(errors(reports, labels, &|r| r.verdict == Verdict::Conflict))
    } else if reports.iter().any(|r| r.verdict == Verdict::TimedOut) {
        Some(AirbyteError::TimedOut(messages(&|r| {
            r.verdict == Verdict::TimedOut
        })))
    } else if !reports.is_empty() && reports.iter().all(|r| r.verdict == Verdict::Skipped) {
        return Conclusion::skipped(data)
            .with_warnings(warnings)
            .with_metrics(metrics);
    } else {
        None
    };
    let c = match error {
        Some(e) => Conclusion::failed(data, e),
        None => Conclusion::succeeded(data),
    };
    c.with_warnings(warnings).with_metrics(metrics)
}

/// The ending of `airbyte cancel` for `job_id`; `kill_grace` is how long the confirmation was
/// waited for.
#[must_use]
pub fn conclude_cancel(
    api: Api,
    job_id: i64,
    report: JobReport,
    kill_grace: Duration,
) -> Conclusion<AirbyteError> {
    let already_finished = !report.cancel_requested && report.verdict != Verdict::Error;
    let data = json!({ "api": api, "jobs": [report.to_json()] });
    let warnings = report.warnings.clone();
    let c = match report.verdict {
        _ if already_finished => Conclusion::skipped(data),
        Verdict::Cancelled | Verdict::Triggered => Conclusion::succeeded(data),
        // Cancelled too late: the job finished on its own.
        Verdict::Succeeded | Verdict::Failed => {
            Conclusion::succeeded(data).with_warnings(vec![format!(
                "job {job_id} finished ({}) before the cancellation took effect",
                report.job.as_ref().map_or("unknown", |j| j.status.as_str())
            )])
        }
        Verdict::TimedOut => Conclusion::failed(
            data,
            AirbyteError::TimedOut(format!(
                "asked Airbyte to cancel job {job_id}, but it had not confirmed within {} (--kill-grace)",
                HumanDuration(kill_grace)
            )),
        ),
        _ => match report.error {
            Some(e) => Conclusion::failed(data, e),
            None => Conclusion::succeeded(data),
        },
    };
    c.with_warnings(warnings)
}

/// The words for the reports `pred` picks, joined.
fn messages(
    reports: &[JobReport],
    labels: &[Option<String>],
    pred: &dyn Fn(&JobReport) -> bool,
) -> String {
    reports
        .iter()
        .enumerate()
        .filter(|(_, r)| pred(r))
        .map(|(i, r)| describe(r, labels.get(i).and_then(|l| l.as_deref())))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first error among the reports `pred` picks (it decides the class), with every picked
/// report's words.
fn errors(
    reports: Vec<JobReport>,
    labels: &[Option<String>],
    pred: &dyn Fn(&JobReport) -> bool,
) -> AirbyteError {
    let message = messages(&reports, labels, pred);
    let first = reports
        .into_iter()
        .filter(|r| pred(r))
        .find_map(|r| r.error)
        .unwrap_or_else(|| AirbyteError::JobsFailed(message.clone()));
    AirbyteError::Connections {
        message,
        first: Box::new(first),
    }
}

fn metrics(reports: &[JobReport], labels: &[Option<String>]) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let Some(job) = &r.job else { continue };
        let mut tags = BTreeMap::new();
        tags.insert("connection_id".to_owned(), r.connection_id.clone());
        if let Some(l) = labels.get(i).and_then(|l| l.as_deref()) {
            tags.insert("connection".to_owned(), l.to_owned());
        }
        for (name, value) in [
            ("records_synced", job.records_synced),
            ("bytes_synced", job.bytes_synced),
        ] {
            if let Some(v) = value {
                let mut m = Metric::counter(name, v as f64);
                m.tags = tags.clone();
                metrics.push(m);
            }
        }
    }
    metrics
}

fn job_json(r: &JobReport, label: Option<&str>) -> Value {
    let mut v = r.to_json();
    if let Some(l) = label {
        v["connection"] = json!(l);
    }
    v
}

/// One connection's outcome in words, for the error message.
fn describe(r: &JobReport, label: Option<&str>) -> String {
    let who = match label {
        Some(l) if l != r.connection_id => format!("{l} ({})", r.connection_id),
        _ if r.connection_id.is_empty() => "Airbyte".to_owned(),
        _ => format!("connection {}", r.connection_id),
    };
    let job = r.job.as_ref();
    let what = match (r.verdict, job) {
        (Verdict::Failed, Some(j)) => format!(
            "job {} failed{}",
            j.id,
            j.failure_reason
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        (Verdict::Cancelled, Some(j)) if !r.cancel_requested => {
            format!("job {} was cancelled outside syncctl", j.id)
        }
        (Verdict::Cancelled, Some(j)) => format!(
            "job {} {}",
            j.id,
            if r.cancel_confirmed {
                "was cancelled"
            } else {
                "was asked to cancel; Airbyte had not confirmed it within --kill-grace"
            }
        ),
        (Verdict::Cancelled, None) => "interrupted before a sync was started".to_owned(),
        (Verdict::LeftRunning, Some(j)) => format!("job {} was left running", j.id),
        (Verdict::TimedOut, Some(j)) if r.cancel_requested => format!(
            "job {} reached --deadline and was {}",
            j.id,
            if r.cancel_confirmed {
                "cancelled"
            } else {
                "asked to cancel (not yet confirmed)"
            }
        ),
        (Verdict::TimedOut, Some(j)) => format!(
            "stopped waiting for job {} at --wait-timeout; it is still {}",
            j.id, j.status
        ),
        (_, _) => r
            .error
            .as_ref()
            .map_or_else(|| format!("{:?}", r.verdict), ToString::to_string),
    };
    format!("{who}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;
    use syncctl_core::End;

    fn report(verdict: Verdict, error: Option<AirbyteError>) -> JobReport {
        let mut r = JobReport::new("c1", None);
        r.verdict = verdict;
        r.error = error;
        let status = match verdict {
            Verdict::Succeeded => "succeeded",
            Verdict::Failed => "failed",
            _ => "running",
        };
        r.job = Some(Job::new(7, "c1", status));
        r
    }

    fn class(c: &Conclusion<AirbyteError>) -> Option<ErrorClass> {
        c.error().map(Classified::class)
    }

    #[test]
    fn each_verdict_has_its_class() {
        let cases = [
            (Verdict::Succeeded, None, None),
            (Verdict::Failed, None, Some(ErrorClass::RemoteFailed)),
            (Verdict::TimedOut, None, Some(ErrorClass::Timeout)),
            (
                Verdict::Conflict,
                Some(AirbyteError::AlreadyRunning {
                    connection_id: "c1".into(),
                    message: "busy".into(),
                }),
                Some(ErrorClass::Conflict),
            ),
            (
                Verdict::Error,
                Some(AirbyteError::Settings("no url".into())),
                Some(ErrorClass::Config),
            ),
        ];
        for (verdict, error, want) in cases {
            let c = conclude(Api::Config, vec![report(verdict, error)], &[None], false);
            assert_eq!(class(&c), want, "{verdict:?}");
        }
        let c = conclude(
            Api::Config,
            vec![report(Verdict::Skipped, None)],
            &[None],
            false,
        );
        assert!(matches!(c.end, End::Skipped));
        // An auth error wins over another connection's failed job; a signal wins over all.
        let two = || {
            vec![
                report(Verdict::Failed, None),
                report(Verdict::Error, Some(AirbyteError::Settings("bad".into()))),
            ]
        };
        let c = conclude(Api::Config, two(), &[None, None], false);
        assert_eq!(class(&c), Some(ErrorClass::Config));
        let mut interrupted = two();
        interrupted[0].interrupted = true;
        interrupted[0].verdict = Verdict::Cancelled;
        let c = conclude(
            Api::Config,
            interrupted,
            &[Some("stripe".into()), None],
            true,
        );
        assert_eq!(class(&c), Some(ErrorClass::Cancelled));
        assert!(c.error().unwrap().to_string().starts_with("stripe (c1)"));
    }
}
