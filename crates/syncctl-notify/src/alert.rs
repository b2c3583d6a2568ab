//! The alert: what a Slack message and an email say about one run.

use std::collections::BTreeMap;

use serde_json::Value;
use syncctl_core::{OrchestratorContext, RunResult, Status};

/// A link shown as a button (Slack) or an anchor (email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Button text.
    pub label: String,
    /// Target URL.
    pub url: String,
}

/// One alert, built from a run's result or from `syncctl notify` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Headline, e.g. `syncctl sync run failed`.
    pub title: String,
    /// The run's status.
    pub status: Status,
    /// The command, when the alert is about a syncctl run.
    pub command: Option<String>,
    /// Free text: the error message of a failed run, or the `--message` of `syncctl notify`.
    pub message: Option<String>,
    /// The error class of a failed run.
    pub error_class: Option<String>,
    /// Key figures as label/value pairs, in display order.
    pub facts: Vec<(String, String)>,
    /// The result's run id.
    pub run_id: Option<String>,
    /// The idempotency key.
    pub idempotency_key: Option<String>,
    /// Airflow/Kestra context (dag id, run id, task id, try; namespace, flow, execution).
    pub context: BTreeMap<String, String>,
    /// Links (Databricks run page, Airflow task, Kestra execution).
    pub links: Vec<Link>,
    /// The run's warnings.
    pub warnings: Vec<String>,
    /// When the run finished (RFC 3339).
    pub finished_at: Option<String>,
}

impl Alert {
    /// An alert with a title and status and nothing else.
    #[must_use]
    pub fn new(title: impl Into<String>, status: Status) -> Self {
        Self {
            title: title.into(),
            status,
            command: None,
            message: None,
            error_class: None,
            facts: Vec::new(),
            run_id: None,
            idempotency_key: None,
            context: BTreeMap::new(),
            links: Vec::new(),
            warnings: Vec::new(),
            finished_at: None,
        }
    }

    /// The alert about a finished run: its status, error, key figures and links from `data`.
    #[must_use]
    pub fn from_result(r: &RunResult) -> Self {
        let mut a = Self::new(
            format!("syncctl {} {}", r.command, status_words(r.status)),
            r.status,
        );
        a.command = Some(r.command.clone());
        a.message = r.error.as_ref().map(|e| e.message.clone());
        a.error_class = r.error.as_ref().map(|e| e.class.to_string());
        a.run_id = Some(r.run_id.to_string());
        a.idempotency_key.clone_from(&r.idempotency_key);
        a.warnings.clone_from(&r.warnings);
        a.finished_at = Some(syncctl_core::result::format_timestamp(r.finished_at));
        a.facts.push(("Command".into(), r.command.clone()));
        a.facts
            .push(("Status".into(), r.status.as_str().to_owned()));
        a.facts.push(("Duration".into(), human_ms(r.duration_ms)));
        if r.exit_code != 0 {
            a.facts.push(("Exit code".into(), r.exit_code.to_string()));
        }
        a.facts.extend(key_figures(&r.command, &r.data));
        if let Some(url) = r.data.get("run_page_url").and_then(Value::as_str)
            && is_http_url(url)
        {
            a.links.push(Link {
                label: "Databricks run".into(),
                url: url.to_owned(),
            });
        }
        a
    }

    /// Adds the orchestrator context and links to the Airflow task or Kestra execution.
    ///
    /// `lookup` reads `AIRFLOW__WEBSERVER__BASE_URL` (Airflow 2), `AIRFLOW__API__BASE_URL`
    /// (Airflow 3) and `KESTRA_URL`, when the deployment exports them.
    #[must_use]
    pub fn with_orchestrator(
        mut self,
        ctx: &OrchestratorContext,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        for (k, v) in ctx.to_map() {
            self.context.insert(k.to_owned(), v);
        }
        if let (Some(dag), Some(run)) = (&ctx.airflow_dag_id, &ctx.airflow_dag_run_id) {
            let base = lookup("AIRFLOW__API__BASE_URL")
                .or_else(|| lookup("AIRFLOW__WEBSERVER__BASE_URL"))
                .filter(|b| is_http_url(b));
            if let Some(base) = base {
                let mut url = format!(
                    "{}/dags/{}/grid?dag_run_id={}",
                    base.trim_end_matches('/'),
                    encode(dag),
                    encode(run)
                );
                if let Some(task) = &ctx.airflow_task_id {
                    url.push_str(&format!("&task_id={}", encode(task)));
                }
                self.links.push(Link {
                    label: "Airflow task".into(),
                    url,
                });
            }
        }
        if let (Some(ns), Some(flow), Some(exec)) = (
            &ctx.kestra_namespace,
            &ctx.kestra_flow_id,
            &ctx.kestra_execution_id,
        ) && let Some(base) = lookup("KESTRA_URL").filter(|b| is_http_url(b))
        {
            self.links.push(Link {
                label: "Kestra execution".into(),
                url: format!(
                    "{}/ui/executions/{}/{}/{}",
                    base.trim_end_matches('/'),
                    encode(ns),
                    encode(flow),
                    encode(exec)
                ),
            });
        }
        self
    }

    /// Whether the alert reports a failure (red) rather than news (green).
    #[must_use]
    pub fn is_failure(&self) -> bool {
        crate::settings::is_failure(self.status)
    }

    /// The context as one line: `Airflow dag_id=… run_id=… task_id=… try=…`.
    #[must_use]
    pub fn context_line(&self) -> Option<String> {
        if self.context.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        Some(parts.join(" "))
    }
}

/// `failed`, `succeeded`, `timed out`, … for titles.
fn status_words(s: Status) -> &'static str {
    match s {
        Status::TimedOut => "timed out",
        other => other.as_str(),
    }
}

fn human_ms(ms: u64) -> String {
    let secs = ms / 1000;
    if secs >= 3600 {
        format!("{}h {}m {}s", secs / 3600, secs % 3600 / 60, secs % 60)
    } else if secs >= 60 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn is_http_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// Percent-encodes a URL path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn num(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_u64()
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The figures a person wants first, per command group, from the result's `data`.
fn key_figures(command: &str, data: &Value) -> Vec<(String, String)> {
    let mut f = Vec::new();
    let group = command.split(' ').next().unwrap_or_default();
    match group {
        "sync" => {
            if let Some(s) = text(data, "sync") {
                f.push(("Sync".into(), s));
            }
            for side in ["source", "target"] {
                let Some(d) = data.get(side) else { continue };
                let name = match (text(d, "connector"), text(d, "object")) {
                    (Some(c), Some(o)) => format!("{c} {o}"),
                    (Some(c), None) => c,
                    _ => continue,
                };
                let n = |k: &str| num(d, &[k]).unwrap_or(0);
                f.push((
                    format!("{} ({name})", capitalise(side)),
                    format!(
                        "read {} · created {} · updated {} · deleted {} · rejected {} · failed {}",
                        n("read"),
                        n("created"),
                        n("updated"),
                        n("deleted"),
                        n("rejected"),
                        n("failed")
                    ),
                ));
            }
            if let Some(c) = data.get("conflicts") {
                f.push((
                    "Conflicts".into(),
                    format!(
                        "detected {} · resolved {} · queued {}",
                        num(c, &["detected"]).unwrap_or(0),
                        num(c, &["resolved"]).unwrap_or(0),
                        num(c, &["queued"]).unwrap_or(0)
                    ),
                ));
            }
            if let Some(b) = data.get("breaker").and_then(Value::as_object) {
                let open: Vec<&str> = b
                    .iter()
                    .filter(|(_, v)| v.get("phase").and_then(Value::as_str) == Some("open"))
                    .map(|(k, _)| k.as_str())
                    .collect();
                if !open.is_empty() {
                    f.push(("Breaker open".into(), open.join(", ")));
                }
            }
        }
        "airbyte" => {
            let jobs = data.get("jobs").and_then(Value::as_array);
            if let Some(jobs) = jobs {
                let records: u64 = jobs
                    .iter()
                    .filter_map(|j| num(j, &["records_synced"]))
                    .sum();
                let bytes: u64 = jobs.iter().filter_map(|j| num(j, &["bytes_synced"])).sum();
                f.push((
                    "Jobs".into(),
                    format!(
                        "{} · succeeded {} · failed {}",
                        jobs.len(),
                        num(data, &["succeeded"]).unwrap_or(0),
                        num(data, &["failed"]).unwrap_or(0)
                    ),
                ));
                f.push(("Records synced".into(), records.to_string()));
                f.push(("Bytes synced".into(), bytes.to_string()));
                for j in jobs.iter().filter(|j| {
                    j.get("failure_reason")
                        .and_then(Value::as_str)
                        .is_some_and(|r| !r.is_empty())
                }) {
                    f.push((
                        format!(
                            "Connection {}",
                            text(j, "connection_name")
                                .or_else(|| text(j, "connection_id"))
                                .unwrap_or_default()
                        ),
                        text(j, "failure_reason").unwrap_or_default(),
                    ));
                }
            }
        }
        "dbx" => {
            for (label, key) in [
                ("Job", "job_id"),
                ("Databricks run", "run_id"),
                ("Result", "result_state"),
            ] {
                if let Some(v) = text(data, key) {
                    f.push((label.into(), v));
                }
            }
            if let Some(tasks) = data.get("tasks").and_then(Value::as_array) {
                let failed: Vec<String> = tasks
                    .iter()
                    .filter(|t| {
                        t.get("result_state")
                            .and_then(Value::as_str)
                            .is_some_and(|s| s != "SUCCESS")
                    })
                    .filter_map(|t| text(t, "task_key"))
                    .collect();
                f.push((
                    "Tasks".into(),
                    format!("{} · not successful {}", tasks.len(), failed.len()),
                ));
                if !failed.is_empty() {
                    f.push(("Failed tasks".into(), failed.join(", ")));
                }
            }
        }
        "snowflake" => {
            if let Some(t) = text(data, "table") {
                f.push(("Table".into(), t));
            }
            if let Some(t) = data.get("totals") {
                f.push((
                    "Files".into(),
                    format!(
                        "loaded {} · partially {} · failed {}",
                        num(t, &["files_loaded"]).unwrap_or(0),
                        num(t, &["files_partially_loaded"]).unwrap_or(0),
                        num(t, &["files_failed"]).unwrap_or(0)
                    ),
                ));
                f.push((
                    "Rows loaded".into(),
                    num(t, &["rows_loaded"]).unwrap_or(0).to_string(),
                ));
            }
        }
        _ => {}
    }
    f
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use syncctl_core::{ErrorClass, ErrorInfo};

    use super::*;

    fn failed_dbx() -> RunResult {
        let mut r = RunResult::new("dbx run-now", Utc::now());
        r.status = Status::Failed;
        r.exit_code = 1;
        r.error = Some(ErrorInfo::new(
            ErrorClass::RemoteFailed,
            "task report failed",
        ));
        r.data = json!({
            "job_id": 43, "run_id": 1100, "result_state": "FAILED",
            "run_page_url": "https://ws.cloud.databricks.com/#job/43/run/1100",
            "tasks": [
                {"task_key": "extract", "result_state": "SUCCESS"},
                {"task_key": "report", "result_state": "FAILED"}
            ]
        });
        r
    }

    #[test]
    fn a_failed_run_carries_error_figures_and_the_run_page() {
        let a = Alert::from_result(&failed_dbx());
        assert_eq!(a.title, "syncctl dbx run-now failed");
        assert_eq!(a.message.as_deref(), Some("task report failed"));
        assert_eq!(a.error_class.as_deref(), Some("remote_failed"));
        assert!(a.is_failure());
        assert!(a.facts.contains(&("Failed tasks".into(), "report".into())));
        assert!(a.facts.contains(&("Job".into(), "43".into())));
        assert_eq!(a.links[0].label, "Databricks run");
    }

    #[test]
    fn orchestrator_context_adds_lines_and_links() {
        let ctx = OrchestratorContext::from_lookup(|k| {
            match k {
                "AIRFLOW_CTX_DAG_ID" => Some("nightly etl"),
                "AIRFLOW_CTX_DAG_RUN_ID" => Some("scheduled__2026-01-01T00:00:00+00:00"),
                "AIRFLOW_CTX_TASK_ID" => Some("run"),
                "AIRFLOW_CTX_TRY_NUMBER" => Some("2"),
                _ => None,
            }
            .map(str::to_owned)
        });
        let a = Alert::from_result(&failed_dbx()).with_orchestrator(&ctx, |k| {
            (k == "AIRFLOW__WEBSERVER__BASE_URL").then(|| "https://airflow.example.com/".to_owned())
        });
        assert_eq!(a.context["airflow_try_number"], "2");
        let link = &a.links[1];
        assert_eq!(
            link.url,
            "https://airflow.example.com/dags/nightly%20etl/grid?dag_run_id=scheduled__2026-01-01T00%3A00%3A00%2B00%3A00&task_id=run"
        );
        assert!(
            a.context_line()
                .unwrap()
                .contains("airflow_dag_id=nightly etl")
        );
    }

    #[test]
    fn sync_figures_count_both_sides() {
        let mut r = RunResult::new("sync run", Utc::now());
        r.data = json!({
            "sync": "contacts",
            "source": {"connector": "csv", "object": "contacts", "read": 5, "created": 2},
            "target": {"connector": "postgres", "object": "customers", "read": 3, "failed": 1},
            "conflicts": {"detected": 1, "resolved": 1, "queued": 0},
            "breaker": {"target": {"phase": "open"}, "source": {"phase": "closed"}}
        });
        let a = Alert::from_result(&r);
        assert_eq!(a.title, "syncctl sync run succeeded");
        assert!(a.facts.contains(&("Sync".into(), "contacts".into())));
        assert!(
            a.facts
                .iter()
                .any(|(k, v)| k == "Target (postgres customers)" && v.contains("failed 1"))
        );
        assert!(a.facts.contains(&("Breaker open".into(), "target".into())));
    }
}
