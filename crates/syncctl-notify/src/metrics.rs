//! The metrics of one run, in the Prometheus text exposition format (0.0.4).
//!
//! One process runs one command, so every counter here is "this run's" count; the Pushgateway
//! and the textfile collector keep the last run's values per grouping (command + name).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;
use syncctl_core::{RunResult, Status};
use syncctl_http::HttpStatsSnapshot;

use crate::NotifyError;

/// The last-success gauge, which a failed run must leave untouched.
pub const LAST_SUCCESS: &str = "syncctl_last_success_timestamp_seconds";

/// Every family: name, type, help. Rendered in this order.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "syncctl_run_duration_seconds",
        "gauge",
        "Wall-clock duration of the last run in seconds.",
    ),
    (
        "syncctl_run_status",
        "gauge",
        "1 if the last run succeeded (or had nothing to do), 0 if it failed, timed out or was cancelled.",
    ),
    (
        "syncctl_run_exit_code",
        "gauge",
        "Exit code of the last run.",
    ),
    (
        "syncctl_last_run_timestamp_seconds",
        "gauge",
        "Unix time the last run finished, whatever its outcome.",
    ),
    (
        LAST_SUCCESS,
        "gauge",
        "Unix time the last successful run finished; a failed run leaves it unchanged.",
    ),
    (
        "syncctl_records_total",
        "counter",
        "Records handled by the last run, by side, action and outcome.",
    ),
    (
        "syncctl_conflicts_total",
        "counter",
        "Records with a field changed on both sides in the last sync run.",
    ),
    (
        "syncctl_api_requests_total",
        "counter",
        "HTTP requests the last run sent, by service and HTTP status (error: no answer).",
    ),
    (
        "syncctl_api_retries_total",
        "counter",
        "HTTP requests the last run sent again after a failed attempt, by service.",
    ),
    (
        "syncctl_breaker_open",
        "gauge",
        "1 while a connector's circuit breaker is open after the last run, else 0.",
    ),
];

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Family name.
    pub name: &'static str,
    /// Labels (besides the grouping labels).
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    fn new(name: &'static str, value: f64) -> Self {
        Self {
            name,
            labels: Vec::new(),
            value,
        }
    }
    fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.labels.push((key.to_owned(), value.into()));
        self
    }
}

/// The metrics of one run and the grouping that identifies its series.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    /// `command` and, when known, `name` (the sync, connection(s), job or table).
    pub grouping: Vec<(String, String)>,
    /// Every sample, the last-success one included only when the run succeeded.
    pub samples: Vec<Sample>,
    /// Whether the run counts as a success.
    pub succeeded: bool,
}

fn n(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0) as f64
}

impl RunMetrics {
    /// The metrics of a finished run; `name` is the grouping name (sync, connection, job, table).
    #[must_use]
    pub fn from_result(r: &RunResult, name: Option<&str>, http: &HttpStatsSnapshot) -> Self {
        let succeeded = matches!(r.status, Status::Succeeded | Status::Skipped);
        let finished = r.finished_at.timestamp_millis() as f64 / 1000.0;
        let mut grouping = vec![("command".to_owned(), r.command.clone())];
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            grouping.push(("name".to_owned(), name.to_owned()));
        }
        let mut s = vec![
            Sample::new(
                "syncctl_run_duration_seconds",
                r.duration_ms as f64 / 1000.0,
            ),
            Sample::new("syncctl_run_status", if succeeded { 1.0 } else { 0.0 }),
            Sample::new("syncctl_run_exit_code", f64::from(r.exit_code)),
            Sample::new("syncctl_last_run_timestamp_seconds", finished),
        ];
        if succeeded {
            s.push(Sample::new(LAST_SUCCESS, finished));
        }
        s.extend(record_samples(&r.command, &r.data));
        for ((service, status), count) in &http.requests {
            s.push(
                Sample::new("syncctl_api_requests_total", *count as f64)
                    .with("service", service)
                    .with("status", status),
            );
        }
        for (service, count) in &http.retries {
            s.push(
                Sample::new("syncctl_api_retries_total", *count as f64).with("service", service),
            );
        }
        Self {
            grouping,
            samples: s,
            succeeded,
        }
    }

    /// The grouping name for a result: the sync's name, the Airbyte connection(s), the
    /// Databricks job or the Snowflake table, from `data`.
    #[must_use]
    pub fn name_from_data(data: &Value) -> Option<String> {
        if let Some(s) = data.get("sync").and_then(Value::as_str) {
            return Some(s.to_owned());
        }
        if let Some(t) = data.get("table").and_then(Value::as_str) {
            return Some(t.to_owned());
        }
        if let Some(j) = data.get("job_name").and_then(Value::as_str) {
            return Some(j.to_owned());
        }
        if let Some(j) = data.get("job_id").and_then(Value::as_u64) {
            return Some(j.to_string());
        }
        let jobs = data.get("jobs").and_then(Value::as_array)?;
        let mut names: Vec<String> = jobs
            .iter()
            .filter_map(|j| {
                j.get("connection_name")
                    .or_else(|| j.get("connection_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names.dedup();
        (!names.is_empty()).then(|| names.join(","))
    }

    /// The text exposition: every family with HELP and TYPE, samples with the extra labels
    /// (`Some(grouping)` for a textfile, which has no grouping key) and, when
    /// `last_success` is given, that sample instead of this run's.
    #[must_use]
    pub fn render(&self, extra_labels: &[(String, String)], last_success: Option<f64>) -> String {
        let mut out = String::new();
        for (family, kind, help) in FAMILIES {
            let mut samples: Vec<Sample> = self
                .samples
                .iter()
                .filter(|s| s.name == *family)
                .cloned()
                .collect();
            if *family == LAST_SUCCESS
                && samples.is_empty()
                && let Some(v) = last_success
            {
                samples.push(Sample::new(LAST_SUCCESS, v));
            }
            if samples.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for s in samples {
                let labels: Vec<(String, String)> = extra_labels
                    .iter()
                    .cloned()
                    .chain(s.labels.iter().cloned())
                    .collect();
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    family,
                    label_block(&labels),
                    fmt_value(s.value)
                );
            }
        }
        out
    }
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// `{a="x",b="y"}` with values escaped as the exposition format requires.
fn label_block(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn record_samples(command: &str, data: &Value) -> Vec<Sample> {
    let mut out = Vec::new();
    let rec = |side: &str, action: &str, outcome: &str, v: f64| {
        Sample::new("syncctl_records_total", v)
            .with("side", side)
            .with("action", action)
            .with("outcome", outcome)
    };
    match command.split(' ').next().unwrap_or_default() {
        "sync" => {
            for side in ["source", "target"] {
                let Some(d) = data.get(side).filter(|d| d.is_object()) else {
                    continue;
                };
                out.push(rec(side, "read", "ok", n(d, "read")));
                out.push(rec(side, "create", "applied", n(d, "created")));
                out.push(rec(side, "update", "applied", n(d, "updated")));
                out.push(rec(side, "delete", "applied", n(d, "deleted")));
                out.push(rec(side, "write", "rejected", n(d, "rejected")));
                out.push(rec(side, "write", "failed", n(d, "failed")));
                if let Some(phase) = data
                    .get("breaker")
                    .and_then(|b| b.get(side))
                    .and_then(|b| b.get("phase"))
                    .and_then(Value::as_str)
                {
                    let connector = d
                        .get("connector")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown");
                    out.push(
                        Sample::new(
                            "syncctl_breaker_open",
                            if phase == "open" { 1.0 } else { 0.0 },
                        )
                        .with("connector", connector)
                        .with("side", side),
                    );
                }
            }
            if let Some(c) = data.get("conflicts").filter(|c| c.is_object()) {
                out.push(Sample::new("syncctl_conflicts_total", n(c, "detected")));
            }
        }
        "airbyte" => {
            if let Some(jobs) = data.get("jobs").and_then(Value::as_array) {
                let synced: f64 = jobs.iter().map(|j| n(j, "records_synced")).sum();
                let rejected: f64 = jobs
                    .iter()
                    .filter_map(|j| j.get("streams").and_then(Value::as_array))
                    .flatten()
                    .map(|s| n(s, "records_rejected"))
                    .sum();
                out.push(rec("target", "sync", "committed", synced));
                out.push(rec("target", "sync", "rejected", rejected));
            }
        }
        "snowflake" => {
            if let Some(t) = data.get("totals").filter(|t| t.is_object()) {
                let loaded = n(t, "rows_loaded");
                out.push(rec("target", "load", "loaded", loaded));
                out.push(rec(
                    "target",
                    "load",
                    "error",
                    (n(t, "rows_parsed") - loaded).max(0.0),
                ));
            }
        }
        _ => {}
    }
    out
}

/// The last-success value a previous textfile recorded for these labels, so a failed run's
/// file keeps it (the textfile is rewritten whole each run).
#[must_use]
pub fn carry_last_success(previous: &str, labels: &[(String, String)]) -> Option<f64> {
    let prefix = format!("{LAST_SUCCESS}{} ", label_block(labels));
    previous
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Writes the metrics as a node_exporter textfile: to a temporary file in the same directory,
/// then renamed, so the collector never reads half a file. A failed run keeps the previous
/// file's last-success sample.
///
/// # Errors
/// [`NotifyError::MetricsFile`].
pub fn write_textfile(path: &Path, m: &RunMetrics) -> Result<(), NotifyError> {
    let err = |source| NotifyError::MetricsFile {
        path: path.display().to_string(),
        source,
    };
    let previous = if m.succeeded {
        None
    } else {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|p| carry_last_success(&p, &m.grouping))
    };
    let text = m.render(&m.grouping, previous);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics.prom".into());
    // A dot-file without the .prom suffix: node_exporter only reads `*.prom`.
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    fn result(status: Status) -> RunResult {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut r = RunResult::new("sync run", t0);
        r.status = status;
        r.finish(t0 + chrono::Duration::milliseconds(2500));
        r.data = json!({
            "sync": "contacts",
            "source": {"connector": "csv", "read": 5, "created": 2},
            "target": {"connector": "postgres", "read": 3, "failed": 1},
            "conflicts": {"detected": 4},
            "breaker": {"source": {"phase": "closed"}, "target": {"phase": "open"}}
        });
        r
    }

    #[test]
    fn a_success_renders_every_family() {
        let mut http = HttpStatsSnapshot::default();
        http.requests.insert(("hubspot".into(), "429".into()), 2);
        http.retries.insert("hubspot".into(), 2);
        let r = result(Status::Succeeded);
        let name = RunMetrics::name_from_data(&r.data);
        let m = RunMetrics::from_result(&r, name.as_deref(), &http);
        assert_eq!(
            m.grouping,
            vec![
                ("command".to_owned(), "sync run".to_owned()),
                ("name".to_owned(), "contacts".to_owned())
            ]
        );
        let text = m.render(&[], None);
        for line in [
            "# TYPE syncctl_run_duration_seconds gauge",
            "syncctl_run_duration_seconds 2.5",
            "syncctl_run_status 1",
            "syncctl_last_success_timestamp_seconds 1767323047.5",
            "syncctl_records_total{side=\"source\",action=\"create\",outcome=\"applied\"} 2",
            "syncctl_records_total{side=\"target\",action=\"write\",outcome=\"failed\"} 1",
            "syncctl_conflicts_total 4",
            "syncctl_api_requests_total{service=\"hubspot\",status=\"429\"} 2",
            "syncctl_api_retries_total{service=\"hubspot\"} 2",
            "syncctl_breaker_open{connector=\"postgres\",side=\"target\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn a_failure_has_no_last_success_and_the_textfile_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("syncctl.prom");
        let http = HttpStatsSnapshot::default();
        let ok = RunMetrics::from_result(&result(Status::Succeeded), Some("contacts"), &http);
        write_textfile(&path, &ok).unwrap();
        let failed = RunMetrics::from_result(&result(Status::Failed), Some("contacts"), &http);
        assert!(!failed.render(&[], None).contains(LAST_SUCCESS));
        write_textfile(&path, &failed).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("syncctl_run_status{command=\"sync run\",name=\"contacts\"} 0"));
        assert!(text.contains(
            "syncctl_last_success_timestamp_seconds{command=\"sync run\",name=\"contacts\"} 1767323047.5"
        ), "{text}");
        // Only the file itself is left: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            label_block(&[("name".into(), "a\"b\\c\nd".into())]),
            "{name=\"a\\\"b\\\\c\\nd\"}"
        );
    }
}
