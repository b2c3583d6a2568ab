//! Who is calling: the orchestrator context and the idempotency key derived from it.
//!
//! A retried Airflow task gets a new try number but the same dag id, dag run id and task id, so
//! a key built from those three lets a rerun find the job the first try started instead of
//! starting a duplicate. Airflow exports no map index, so mapped tasks must pass
//! `--idempotency-key` themselves.

use std::collections::BTreeMap;

use uuid::Uuid;

/// The orchestrator context read from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrchestratorContext {
    /// `AIRFLOW_CTX_DAG_ID`.
    pub airflow_dag_id: Option<String>,
    /// `AIRFLOW_CTX_DAG_RUN_ID`.
    pub airflow_dag_run_id: Option<String>,
    /// `AIRFLOW_CTX_TASK_ID`.
    pub airflow_task_id: Option<String>,
    /// `AIRFLOW_CTX_TRY_NUMBER` (reported, never part of the key).
    pub airflow_try_number: Option<String>,
    /// `KESTRA_NAMESPACE` (users template `{{ flow.namespace }}` into it).
    pub kestra_namespace: Option<String>,
    /// `KESTRA_FLOW_ID` (`{{ flow.id }}`).
    pub kestra_flow_id: Option<String>,
    /// `KESTRA_EXECUTION_ID` (`{{ execution.id }}`).
    pub kestra_execution_id: Option<String>,
    /// `KESTRA_TASK_ID` (`{{ task.id }}`).
    pub kestra_task_id: Option<String>,
    /// `KESTRA_TASKRUN_VALUE` (`{{ taskrun.value }}` inside loops).
    pub kestra_taskrun_value: Option<String>,
}

impl OrchestratorContext {
    /// The environment variables this context reads.
    pub const ENV_VARS: [&'static str; 9] = [
        "AIRFLOW_CTX_DAG_ID",
        "AIRFLOW_CTX_DAG_RUN_ID",
        "AIRFLOW_CTX_TASK_ID",
        "AIRFLOW_CTX_TRY_NUMBER",
        "KESTRA_NAMESPACE",
        "KESTRA_FLOW_ID",
        "KESTRA_EXECUTION_ID",
        "KESTRA_TASK_ID",
        "KESTRA_TASKRUN_VALUE",
    ];

    /// Reads the context from an environment lookup; empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let g = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        Self {
            airflow_dag_id: g("AIRFLOW_CTX_DAG_ID"),
            airflow_dag_run_id: g("AIRFLOW_CTX_DAG_RUN_ID"),
            airflow_task_id: g("AIRFLOW_CTX_TASK_ID"),
            airflow_try_number: g("AIRFLOW_CTX_TRY_NUMBER"),
            kestra_namespace: g("KESTRA_NAMESPACE"),
            kestra_flow_id: g("KESTRA_FLOW_ID"),
            kestra_execution_id: g("KESTRA_EXECUTION_ID"),
            kestra_task_id: g("KESTRA_TASK_ID"),
            kestra_taskrun_value: g("KESTRA_TASKRUN_VALUE"),
        }
    }

    /// Which orchestrator called us, if any.
    #[must_use]
    pub fn orchestrator(&self) -> Option<&'static str> {
        if self.airflow_dag_id.is_some() {
            Some("airflow")
        } else if self.kestra_execution_id.is_some() {
            Some("kestra")
        } else {
            None
        }
    }

    /// The idempotency key this context implies, if it carries enough to build one.
    ///
    /// Airflow needs dag id, dag run id and task id; Kestra needs execution id and task id.
    #[must_use]
    pub fn idempotency_key(&self) -> Option<IdempotencyKey> {
        if let (Some(d), Some(r), Some(t)) = (
            &self.airflow_dag_id,
            &self.airflow_dag_run_id,
            &self.airflow_task_id,
        ) {
            return Some(IdempotencyKey(format!("airflow:{d}:{r}:{t}")));
        }
        if let (Some(e), Some(t)) = (&self.kestra_execution_id, &self.kestra_task_id) {
            let mut key = format!("kestra:{e}:{t}");
            if let Some(v) = &self.kestra_taskrun_value {
                key.push(':');
                key.push_str(v);
            }
            return Some(IdempotencyKey(key));
        }
        None
    }

    /// The context as a flat map for results and audit rows (unset entries left out).
    #[must_use]
    pub fn to_map(&self) -> BTreeMap<&'static str, String> {
        let pairs = [
            ("airflow_dag_id", &self.airflow_dag_id),
            ("airflow_dag_run_id", &self.airflow_dag_run_id),
            ("airflow_task_id", &self.airflow_task_id),
            ("airflow_try_number", &self.airflow_try_number),
            ("kestra_namespace", &self.kestra_namespace),
            ("kestra_flow_id", &self.kestra_flow_id),
            ("kestra_execution_id", &self.kestra_execution_id),
            ("kestra_task_id", &self.kestra_task_id),
            ("kestra_taskrun_value", &self.kestra_taskrun_value),
        ];
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect()
    }
}

/// A stable key identifying one logical task execution across retries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Namespace for UUIDv5 request ids derived from idempotency keys.
const SYNCCTL_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_4a1e_9b7d_4d43_8a35_5f2a_5c11_c0de);

impl IdempotencyKey {
    /// Wraps a user-supplied key (`--idempotency-key`).
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as given or derived.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key for one sub-job of this task (for example one Airbyte connection of several).
    #[must_use]
    pub fn scoped(&self, scope: &str) -> Self {
        Self(format!("{}#{scope}", self.0))
    }

    /// A token of at most 64 characters (Databricks' `idempotency_token` limit): the key
    /// itself when short and plain enough, else `sc1-` and a SHA-256 prefix.
    #[must_use]
    pub fn token64(&self) -> String {
        let plain = self.0.len() <= 64
            && self
                .0
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:#".contains(c));
        if plain {
            return self.0.clone();
        }
        let hex = crate::digest::sha256_hex(&self.0);
        format!("sc1-{}", &hex[..60])
    }

    /// A deterministic UUID (v5) for APIs that want a UUID request id (Snowflake `requestId`).
    #[must_use]
    pub fn uuid(&self) -> Uuid {
        Uuid::new_v5(&SYNCCTL_NAMESPACE, self.0.as_bytes())
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> OrchestratorContext {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OrchestratorContext::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn airflow_key_ignores_try_number() {
        let a = ctx(&[
            ("AIRFLOW_CTX_DAG_ID", "d"),
            ("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2025-10-30"),
            ("AIRFLOW_CTX_TASK_ID", "t"),
            ("AIRFLOW_CTX_TRY_NUMBER", "1"),
        ]);
        let mut b = a.clone();
        b.airflow_try_number = Some("2".into());
        assert_eq!(a.idempotency_key(), b.idempotency_key());
        assert_eq!(
            a.idempotency_key().unwrap().as_str(),
            "airflow:d:scheduled__2025-10-30:t"
        );
        assert_eq!(a.orchestrator(), Some("airflow"));
    }

    #[test]
    fn kestra_key_needs_execution_and_task() {
        assert!(
            ctx(&[("KESTRA_EXECUTION_ID", "e")])
                .idempotency_key()
                .is_none()
        );
        let k = ctx(&[("KESTRA_EXECUTION_ID", "e"), ("KESTRA_TASK_ID", "t")]).idempotency_key();
        assert_eq!(k.unwrap().as_str(), "kestra:e:t");
    }

    #[test]
    fn no_context_no_key() {
        assert!(ctx(&[]).idempotency_key().is_none());
        assert!(ctx(&[("AIRFLOW_CTX_DAG_ID", " ")]).orchestrator().is_none());
    }

    #[test]
    fn token64_is_bounded_and_stable() {
        let long = IdempotencyKey::new("airflow:".to_owned() + &"x".repeat(200));
        let t = long.token64();
        assert_eq!(t.len(), 64);
        assert_eq!(t, long.token64());
        assert_ne!(t, IdempotencyKey::new("other").token64());
        assert_eq!(IdempotencyKey::new("short:key").token64(), "short:key");
        assert_eq!(long.uuid(), long.uuid());
        assert_ne!(long.uuid(), long.scoped("a").uuid());
    }
}
