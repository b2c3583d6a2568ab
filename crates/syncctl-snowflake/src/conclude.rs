//! From a COPY run's report to the command's ending: which error class (a rejected statement,
//! files that did not load, validation errors, the deadline, a signal), in what words, with
//! the per-file data and metrics. The binary only prints.

use std::time::Duration;

use serde_json::{Value, json};
use syncctl_core::{Conclusion, HumanDuration, Metric, Stop};

use crate::SnowflakeError;
use crate::copy::{CopySpec, OnError};
use crate::result::{FileResult, LOAD_FAILED, PARTIALLY_LOADED, Totals};
use crate::run::{CopyReport, RunEnd};

/// At most this many incomplete files are listed as warnings under `ON_ERROR = CONTINUE`.
const MAX_FILE_WARNINGS: usize = 20;

/// The command's ending. `data` holds what the command already reports (table, location,
/// partitions); `deadline` and `wait_timeout` are the clocks the run had, for the words.
#[must_use]
pub fn conclude(
    mut data: Value,
    spec: &CopySpec,
    mut warnings: Vec<String>,
    report: CopyReport,
    deadline: Option<Duration>,
    wait_timeout: Option<Duration>,
) -> Conclusion<SnowflakeError> {
    let totals = Totals::of(&report.files);
    data["statements"] = json!(report.statements);
    data["requests"] = json!(report.requests);
    data["files"] = json!(report.files);
    data["totals"] = json!(totals);
    if spec.validate {
        data["validation_errors"] = json!(report.validation_errors);
    }
    let metrics = vec![
        Metric::counter("files_loaded", totals.files_loaded as f64),
        Metric::counter(
            "files_partially_loaded",
            totals.files_partially_loaded as f64,
        ),
        Metric::counter("files_failed", totals.files_failed as f64),
        Metric::counter("rows_parsed", totals.rows_parsed as f64),
        Metric::counter("rows_loaded", totals.rows_loaded as f64),
    ];
    let end = |c: Conclusion<SnowflakeError>, warnings: Vec<String>| {
        c.with_warnings(warnings).with_metrics(metrics.clone())
    };
    match report.end {
        RunEnd::Failed(e) => end(Conclusion::failed(data, e), warnings),
        RunEnd::Interrupted {
            why,
            cancelled,
            left_running,
            cancel_error,
        } => {
            data["cancelled"] = json!(cancelled);
            data["left_running"] = json!(left_running);
            let what = match (&cancelled[..], &left_running[..], &cancel_error) {
                ([], [], _) => "nothing was running yet to cancel".to_owned(),
                ([], hs, _) => format!("statement {} was left running", hs.join(", ")),
                (hs, _, None) => format!("cancelled statement {}", hs.join(", ")),
                (hs, _, Some(e)) => format!("tried to cancel statement {} ({e})", hs.join(", ")),
            };
            if let Some(e) = &cancel_error {
                warnings.push(format!("cancel not confirmed: {e}"));
            }
            let clock =
                |d: Option<Duration>| d.map(|d| HumanDuration(d).to_string()).unwrap_or_default();
            let err = match why {
                Stop::Signal => SnowflakeError::Interrupted(format!("interrupted; {what}")),
                Stop::Deadline => SnowflakeError::TimedOut(format!(
                    "deadline {} reached; {what}",
                    clock(deadline)
                )),
                Stop::WaitTimeout => SnowflakeError::TimedOut(format!(
                    "stopped waiting after {} (--wait-timeout); {what}",
                    clock(wait_timeout)
                )),
            };
            end(Conclusion::failed(data, err), warnings)
        }
        RunEnd::Completed if spec.validate => {
            let n = report.validation_errors.len();
            let Some(first) = report.validation_errors.first() else {
                return end(Conclusion::succeeded(data), warnings);
            };
            let mut files: Vec<&str> = report
                .validation_errors
                .iter()
                .filter_map(|e| e.file.as_deref())
                .collect();
            files.sort_unstable();
            files.dedup();
            let err = SnowflakeError::NotLoaded(format!(
                "validation found {n} error(s) in {} file(s); nothing was loaded. First: {}{}",
                files.len(),
                first
                    .file
                    .as_deref()
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default(),
                first.error
            ));
            end(Conclusion::failed(data, err), warnings)
        }
        RunEnd::Completed => {
            if report.files.is_empty() {
                data["message"] = json!("Copy executed with 0 files processed.");
                let handles: Vec<&str> = report
                    .requests
                    .iter()
                    .filter_map(|r| r.handle.as_deref())
                    .collect();
                tracing::info!("Nothing new to load (handles {}).", handles.join(", "));
                return end(Conclusion::skipped(data), warnings);
            }
            tracing::info!(
                files_loaded = totals.files_loaded,
                files_partially_loaded = totals.files_partially_loaded,
                files_failed = totals.files_failed,
                "Loaded {} row(s) from {} file(s) into {}.",
                totals.rows_loaded,
                report.files.len(),
                spec.table
            );
            let incomplete: Vec<&FileResult> = report
                .files
                .iter()
                .filter(|f| f.status == LOAD_FAILED || f.status == PARTIALLY_LOADED)
                .collect();
            let Some(first) = incomplete.first() else {
                return end(Conclusion::succeeded(data), warnings);
            };
            if spec.on_error == Some(OnError::Continue) {
                warnings.extend(
                    incomplete
                        .iter()
                        .take(MAX_FILE_WARNINGS)
                        .map(|f| describe(f)),
                );
                if incomplete.len() > MAX_FILE_WARNINGS {
                    warnings.push(format!(
                        "… and {} more files that did not load completely",
                        incomplete.len() - MAX_FILE_WARNINGS
                    ));
                }
                return end(Conclusion::succeeded(data), warnings);
            }
            let err = SnowflakeError::NotLoaded(format!(
                "{} file(s) did not load completely (pass --on-error CONTINUE to accept that); first: {}",
                incomplete.len(),
                describe(first)
            ));
            end(Conclusion::failed(data, err), warnings)
        }
    }
}

fn describe(f: &FileResult) -> String {
    format!(
        "{} {}: {} of {} rows loaded{}",
        f.file,
        f.status,
        f.rows_loaded,
        f.rows_parsed,
        f.first_error
            .as_deref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    )
}
