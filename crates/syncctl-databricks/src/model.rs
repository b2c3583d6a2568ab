//! The parts of the Jobs API's JSON that syncctl reads. Every field is optional and every enum
//! is kept as a string, so new fields and new state names never break decoding.

use serde::{Deserialize, Serialize};

/// Which Jobs API version to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiVersion {
    /// Jobs API 2.1 (older workspaces; `jobs/list` pages by offset, `runs/get` does not page).
    V2_1,
    /// Jobs API 2.2 (the default; `runs/get` and `jobs/list` page with `page_token`).
    #[default]
    V2_2,
}

impl ApiVersion {
    /// `2.1` or `2.2`, as it appears in paths.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2_1 => "2.1",
            Self::V2_2 => "2.2",
        }
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The legacy `state` object (`life_cycle_state`, `result_state`, `state_message`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LegacyState {
    /// `PENDING`, `RUNNING`, `TERMINATED`, …
    #[serde(default)]
    pub life_cycle_state: Option<String>,
    /// `SUCCESS`, `FAILED`, … (terminal runs only).
    #[serde(default)]
    pub result_state: Option<String>,
    /// Free text.
    #[serde(default)]
    pub state_message: Option<String>,
}

/// Why a run ended (inside the newer `status` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TerminationDetails {
    /// `SUCCESS`, `RUN_EXECUTION_ERROR`, `USER_CANCELED`, …
    #[serde(default)]
    pub code: Option<String>,
    /// `SUCCESS`, `CLIENT_ERROR`, `INTERNAL_ERROR`, `CLOUD_FAILURE`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Free text.
    #[serde(default)]
    pub message: Option<String>,
}

/// The newer `status` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RunStatus {
    /// `QUEUED`, `PENDING`, `RUNNING`, `TERMINATING`, `TERMINATED`, `BLOCKED`, `WAITING`.
    #[serde(default)]
    pub state: Option<String>,
    /// Set once the run is terminating or terminated.
    #[serde(default)]
    pub termination_details: Option<TerminationDetails>,
}

/// One task run inside a job run.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RunTask {
    /// The task's key in the job.
    #[serde(default)]
    pub task_key: String,
    /// The task run's own id (for `runs/get-output`).
    #[serde(default)]
    pub run_id: Option<i64>,
    /// 0 for the first attempt; retries and repairs add attempts.
    #[serde(default)]
    pub attempt_number: Option<i64>,
    /// Legacy state.
    #[serde(default)]
    pub state: Option<LegacyState>,
    /// Newer status.
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// Epoch milliseconds.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// Epoch milliseconds; 0 while running.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Total milliseconds (newer workspaces).
    #[serde(default)]
    pub run_duration: Option<i64>,
    /// Cluster set-up milliseconds.
    #[serde(default)]
    pub setup_duration: Option<i64>,
    /// Execution milliseconds.
    #[serde(default)]
    pub execution_duration: Option<i64>,
    /// Clean-up milliseconds.
    #[serde(default)]
    pub cleanup_duration: Option<i64>,
}

impl RunTask {
    /// How long the task ran, in milliseconds, from whichever fields the API filled.
    #[must_use]
    pub fn duration_ms(&self) -> Option<i64> {
        if let Some(d) = self.run_duration.filter(|d| *d > 0) {
            return Some(d);
        }
        let parts: i64 = [
            self.setup_duration,
            self.execution_duration,
            self.cleanup_duration,
        ]
        .iter()
        .flatten()
        .sum();
        if parts > 0 {
            return Some(parts);
        }
        match (self.start_time, self.end_time) {
            (Some(s), Some(e)) if s > 0 && e >= s => Some(e - s),
            _ => None,
        }
    }
}

/// One entry of a run's repair history.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RepairHistoryItem {
    /// `ORIGINAL` or `REPAIR`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The repair id (repairs only).
    #[serde(default)]
    pub id: Option<i64>,
}

/// A job run as `runs/get` returns it (pages already merged).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Run {
    /// The run's job.
    #[serde(default)]
    pub job_id: Option<i64>,
    /// The run id.
    #[serde(default)]
    pub run_id: i64,
    /// The run's page in the workspace UI.
    #[serde(default)]
    pub run_page_url: Option<String>,
    /// Epoch milliseconds.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// Epoch milliseconds; 0 while running.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Legacy state.
    #[serde(default)]
    pub state: Option<LegacyState>,
    /// Newer status.
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// Task runs (every attempt; see [`Run::latest_tasks`]).
    #[serde(default)]
    pub tasks: Vec<RunTask>,
    /// Repairs (only with `include_history=true`).
    #[serde(default)]
    pub repair_history: Vec<RepairHistoryItem>,
    /// The iterations of a for-each task run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<RunTask>,
    /// The job clusters the run's tasks share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_clusters: Vec<JobCluster>,
    /// The job parameters the run was started with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_parameters: Vec<JobParameter>,
    /// More of the run's arrays are on the next page (API 2.2).
    #[serde(default)]
    pub next_page_token: Option<String>,
}

impl Run {
    /// Appends a later `runs/get` page's slices of every paged array (API 2.2 pages
    /// `tasks`, `iterations`, `job_clusters`, `job_parameters` and `repair_history`, 100 each);
    /// the rest of a later page repeats the first.
    pub fn append_page(&mut self, page: Run) {
        // A for-each task run repeats its one task on every page of its iterations (Databricks'
        // SDKs append only the iterations then), so a task run already held is not appended twice.
        let seen = |held: &[RunTask], t: &RunTask| {
            t.run_id
                .is_some_and(|id| held.iter().any(|h| h.run_id == Some(id)))
        };
        for t in page.tasks {
            if !seen(&self.tasks, &t) {
                self.tasks.push(t);
            }
        }
        for t in page.iterations {
            if !seen(&self.iterations, &t) {
                self.iterations.push(t);
            }
        }
        // The 2.2 docs slice job_clusters per page, while the Go SDK's tests repeat them on later
        // pages: keys are unique within a job, so either form merges to one entry per key.
        for c in page.job_clusters {
            if !self
                .job_clusters
                .iter()
                .any(|h| h.job_cluster_key == c.job_cluster_key)
            {
                self.job_clusters.push(c);
            }
        }
        for p in page.job_parameters {
            if !self.job_parameters.iter().any(|h| h.name == p.name) {
                self.job_parameters.push(p);
            }
        }
        self.repair_history.extend(page.repair_history);
    }
}

/// A job cluster as `runs/get` lists it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct JobCluster {
    /// The key tasks refer to it by.
    #[serde(default)]
    pub job_cluster_key: String,
    /// The cluster's spec, kept as Databricks sent it (syncctl does not read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cluster: Option<serde_json::Value>,
}

/// One job parameter of a run.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct JobParameter {
    /// The parameter's name.
    #[serde(default)]
    pub name: String,
    /// The job's default for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The value the run used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Run {
    /// The latest attempt of each task, in the order the tasks first appear.
    #[must_use]
    pub fn latest_tasks(&self) -> Vec<&RunTask> {
        let mut order: Vec<&str> = Vec::new();
        let mut latest: std::collections::HashMap<&str, &RunTask> =
            std::collections::HashMap::new();
        for t in &self.tasks {
            let key = t.task_key.as_str();
            match latest.get(key) {
                None => {
                    order.push(key);
                    latest.insert(key, t);
                }
                // Later entries with an equal or higher attempt number are newer attempts.
                Some(prev) if t.attempt_number.unwrap_or(0) >= prev.attempt_number.unwrap_or(0) => {
                    latest.insert(key, t);
                }
                Some(_) => {}
            }
        }
        order
            .iter()
            .filter_map(|k| latest.get(k).copied())
            .collect()
    }

    /// The id of the latest repair, if the run was repaired.
    #[must_use]
    pub fn latest_repair_id(&self) -> Option<i64> {
        self.repair_history
            .iter()
            .filter(|r| r.kind.as_deref() != Some("ORIGINAL"))
            .filter_map(|r| r.id)
            .next_back()
    }
}

/// `runs/get-output` for one task run.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RunOutput {
    /// Why the task failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The stack trace, when there is one.
    #[serde(default)]
    pub error_trace: Option<String>,
}

/// A job's settings (the parts syncctl reads).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct JobSettings {
    /// The job's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A job as `jobs/list` returns it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BaseJob {
    /// The job id.
    #[serde(default)]
    pub job_id: i64,
    /// Its settings.
    #[serde(default)]
    pub settings: Option<JobSettings>,
}

/// A page of `jobs/list`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListJobsPage {
    /// The jobs on this page.
    #[serde(default)]
    pub jobs: Vec<BaseJob>,
    /// More pages follow (API 2.1).
    #[serde(default)]
    pub has_more: Option<bool>,
    /// The next page (API 2.2).
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(key: &str, attempt: i64, run_id: i64) -> RunTask {
        RunTask {
            task_key: key.into(),
            attempt_number: Some(attempt),
            run_id: Some(run_id),
            ..RunTask::default()
        }
    }

    #[test]
    fn job_clusters_and_parameters_merge_once_per_key_whether_sliced_or_repeated() {
        let cluster = |k: &str| JobCluster {
            job_cluster_key: k.into(),
            new_cluster: None,
        };
        let param = |n: &str| JobParameter {
            name: n.into(),
            ..JobParameter::default()
        };
        let mut run = Run {
            job_clusters: vec![cluster("a"), cluster("b")],
            job_parameters: vec![param("x")],
            ..Run::default()
        };
        // A later page that repeats what page one held and adds the next slice.
        run.append_page(Run {
            job_clusters: vec![cluster("a"), cluster("b"), cluster("c")],
            job_parameters: vec![param("x"), param("y")],
            ..Run::default()
        });
        let keys: Vec<_> = run
            .job_clusters
            .iter()
            .map(|c| c.job_cluster_key.as_str())
            .collect();
        assert_eq!(keys, ["a", "b", "c"]);
        let names: Vec<_> = run.job_parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
    }

    #[test]
    fn latest_attempt_per_task_wins_and_order_is_kept() {
        let run = Run {
            tasks: vec![task("a", 0, 1), task("b", 0, 2), task("a", 1, 3)],
            ..Run::default()
        };
        let ids: Vec<_> = run.latest_tasks().iter().map(|t| t.run_id).collect();
        assert_eq!(ids, vec![Some(3), Some(2)]);
    }

    #[test]
    fn durations_come_from_whatever_is_filled() {
        let mut t = task("a", 0, 1);
        assert_eq!(t.duration_ms(), None);
        t.start_time = Some(1000);
        t.end_time = Some(4000);
        assert_eq!(t.duration_ms(), Some(3000));
        t.setup_duration = Some(10);
        t.execution_duration = Some(20);
        assert_eq!(t.duration_ms(), Some(30));
        t.run_duration = Some(99);
        assert_eq!(t.duration_ms(), Some(99));
    }

    #[test]
    fn unknown_fields_and_states_decode() {
        let run: Run = serde_json::from_value(serde_json::json!({
            "run_id": 5, "job_id": 1, "brand_new_field": {"x": 1},
            "state": {"life_cycle_state": "HIBERNATING"},
            "status": {"state": "HIBERNATING", "queue_details": {"code": "X"}},
            "repair_history": [{"type": "ORIGINAL", "id": 1}, {"type": "REPAIR", "id": 8}]
        }))
        .unwrap();
        assert_eq!(
            run.state.unwrap().life_cycle_state.as_deref(),
            Some("HIBERNATING")
        );
        let run: Run = serde_json::from_value(serde_json::json!({
            "run_id": 5, "repair_history": [{"type": "ORIGINAL"}, {"type": "REPAIR", "id": 8}]
        }))
        .unwrap();
        assert_eq!(run.latest_repair_id(), Some(8));
    }
}
