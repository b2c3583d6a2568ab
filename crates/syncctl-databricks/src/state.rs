//! One table for every state name the Jobs API reports, legacy `state` and newer `status`
//! alike, and the one function that reads a run's state through it.
//!
//! Unknown life-cycle names are treated as "still going" with a warning (Airflow's provider
//! raised on `QUEUED` when it was new). A run counts as successful only when its result is
//! `SUCCESS` (or `SUCCESS_WITH_FAILURES` when the caller accepts it).

use crate::model::{LegacyState, RunStatus};

/// Where a state name appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `state.life_cycle_state` (legacy).
    LifeCycle,
    /// `status.state` (newer).
    StatusState,
    /// `state.result_state` (legacy).
    ResultState,
    /// `status.termination_details.code` (newer).
    TerminationCode,
}

/// How a finished run (or task) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `SUCCESS`.
    Success,
    /// `SUCCESS_WITH_FAILURES`: leaf tasks succeeded, some others failed.
    SuccessWithFailures,
    /// The work failed (`FAILED`, `RUN_EXECUTION_ERROR`, upstream failures, …).
    Failed,
    /// Stopped by a timeout.
    TimedOut,
    /// Cancelled (by a user, by us, or by the platform).
    Cancelled,
    /// Never ran (`SKIPPED`, max concurrent runs, excluded, disabled).
    Skipped,
    /// Databricks itself failed (`INTERNAL_ERROR`, cloud failures).
    PlatformError,
}

impl Verdict {
    /// Whether the task or run should have its `runs/get-output` error fetched.
    #[must_use]
    pub fn has_error_output(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut | Self::PlatformError)
    }
}

/// What a state name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The run is still going: queued, blocked, starting, running, cleaning up.
    Active,
    /// The run is over; its result field says how it went.
    Ended,
    /// The run is over and the life-cycle name alone says how (legacy `SKIPPED`,
    /// `INTERNAL_ERROR`, which carry no result).
    EndedAs(Verdict),
    /// A result value.
    Result(Verdict),
}

/// One row of the state table.
#[derive(Debug, Clone, Copy)]
pub struct StateRow {
    /// Where the name appears.
    pub field: Field,
    /// The name as the API spells it.
    pub name: &'static str,
    /// What it means to syncctl.
    pub meaning: Meaning,
}

const fn row(field: Field, name: &'static str, meaning: Meaning) -> StateRow {
    StateRow {
        field,
        name,
        meaning,
    }
}

use Field::{LifeCycle, ResultState, StatusState, TerminationCode};
use Meaning::{Active, Ended, EndedAs, Result as Res};
use Verdict::{Cancelled, Failed, PlatformError, Skipped, Success, SuccessWithFailures, TimedOut};

/// Every state name syncctl knows, legacy and newer. Names not listed are unknown: a
/// life-cycle name is then "still going" (with a warning), a result name a failure.
pub const STATE_TABLE: &[StateRow] = &[
    row(LifeCycle, "QUEUED", Active),
    row(LifeCycle, "PENDING", Active),
    row(LifeCycle, "RUNNING", Active),
    row(LifeCycle, "BLOCKED", Active),
    row(LifeCycle, "WAITING_FOR_RETRY", Active),
    row(LifeCycle, "TERMINATING", Active),
    row(LifeCycle, "TERMINATED", Ended),
    row(LifeCycle, "SKIPPED", EndedAs(Skipped)),
    row(LifeCycle, "INTERNAL_ERROR", EndedAs(PlatformError)),
    row(StatusState, "QUEUED", Active),
    row(StatusState, "PENDING", Active),
    row(StatusState, "RUNNING", Active),
    row(StatusState, "BLOCKED", Active),
    row(StatusState, "WAITING", Active),
    row(StatusState, "TERMINATING", Active),
    row(StatusState, "TERMINATED", Ended),
    row(ResultState, "SUCCESS", Res(Success)),
    row(
        ResultState,
        "SUCCESS_WITH_FAILURES",
        Res(SuccessWithFailures),
    ),
    row(ResultState, "FAILED", Res(Failed)),
    row(ResultState, "TIMEDOUT", Res(TimedOut)),
    row(ResultState, "CANCELED", Res(Cancelled)),
    row(ResultState, "UPSTREAM_FAILED", Res(Failed)),
    row(ResultState, "UPSTREAM_CANCELED", Res(Cancelled)),
    row(ResultState, "MAXIMUM_CONCURRENT_RUNS_REACHED", Res(Skipped)),
    row(ResultState, "EXCLUDED", Res(Skipped)),
    row(ResultState, "DISABLED", Res(Skipped)),
    row(TerminationCode, "SUCCESS", Res(Success)),
    row(
        TerminationCode,
        "SUCCESS_WITH_FAILURES",
        Res(SuccessWithFailures),
    ),
    row(TerminationCode, "USER_CANCELED", Res(Cancelled)),
    // The platform cancelled the run, for example because it ran past its timeout.
    row(TerminationCode, "CANCELED", Res(TimedOut)),
    row(TerminationCode, "SKIPPED", Res(Skipped)),
    row(TerminationCode, "DISABLED", Res(Skipped)),
    row(
        TerminationCode,
        "MAX_CONCURRENT_RUNS_EXCEEDED",
        Res(Skipped),
    ),
    row(TerminationCode, "MAX_JOB_QUEUE_SIZE_EXCEEDED", Res(Skipped)),
    row(TerminationCode, "RUN_EXECUTION_ERROR", Res(Failed)),
    row(TerminationCode, "INTERNAL_ERROR", Res(PlatformError)),
    row(TerminationCode, "CLOUD_FAILURE", Res(PlatformError)),
    row(TerminationCode, "DRIVER_ERROR", Res(PlatformError)),
    row(TerminationCode, "CLUSTER_ERROR", Res(Failed)),
    row(TerminationCode, "REPOSITORY_CHECKOUT_FAILED", Res(Failed)),
    row(TerminationCode, "INVALID_CLUSTER_REQUEST", Res(Failed)),
    row(TerminationCode, "WORKSPACE_RUN_LIMIT_EXCEEDED", Res(Failed)),
    row(TerminationCode, "FEATURE_DISABLED", Res(Failed)),
    row(
        TerminationCode,
        "CLUSTER_REQUEST_LIMIT_EXCEEDED",
        Res(Failed),
    ),
    row(TerminationCode, "STORAGE_ACCESS_ERROR", Res(Failed)),
    row(TerminationCode, "UNAUTHORIZED_ERROR", Res(Failed)),
    row(TerminationCode, "LIBRARY_INSTALLATION_ERROR", Res(Failed)),
    row(TerminationCode, "MAX_SPARK_CONTEXTS_EXCEEDED", Res(Failed)),
    row(TerminationCode, "RESOURCE_NOT_FOUND", Res(Failed)),
    row(TerminationCode, "INVALID_RUN_CONFIGURATION", Res(Failed)),
    row(TerminationCode, "BUDGET_POLICY_LIMIT_EXCEEDED", Res(Failed)),
];

/// The table's meaning of `name` in `field`, if the name is known.
#[must_use]
pub fn lookup(field: Field, name: &str) -> Option<Meaning> {
    STATE_TABLE
        .iter()
        .find(|r| r.field == field && r.name == name)
        .map(|r| r.meaning)
}

/// A run's (or task's) state as read through the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateReading {
    /// Whether the run is over.
    pub terminal: bool,
    /// How it went (terminal runs only).
    pub verdict: Option<Verdict>,
    /// The life-cycle name to report (legacy name when present, else `status.state`).
    pub life_cycle_state: Option<String>,
    /// The result name to report (legacy `result_state`, else the termination code).
    pub result_state: Option<String>,
    /// The state message to report (legacy message, else the termination message).
    pub state_message: Option<String>,
    /// State names the table does not know, as `field=NAME`, for a warning.
    pub unknown: Vec<String>,
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty()).cloned()
}

/// Reads a `state`/`status` pair through [`STATE_TABLE`].
#[must_use]
pub fn read_state(legacy: Option<&LegacyState>, status: Option<&RunStatus>) -> StateReading {
    let mut unknown = Vec::new();
    let mut life = |field: Field, label: &str, name: Option<&String>| -> Option<Meaning> {
        let name = name?;
        let m = lookup(field, name);
        if m.is_none() {
            unknown.push(format!("{label}={name}"));
        }
        m
    };
    let legacy_life = life(
        LifeCycle,
        "life_cycle_state",
        legacy.and_then(|l| l.life_cycle_state.as_ref()),
    );
    let status_life = life(
        StatusState,
        "status.state",
        status.and_then(|s| s.state.as_ref()),
    );
    let ended = |m: Option<Meaning>| matches!(m, Some(Ended | EndedAs(_)));
    let terminal = ended(legacy_life) || ended(status_life);

    let result_name = legacy.and_then(|l| non_empty(l.result_state.as_ref()));
    let termination = status.and_then(|s| s.termination_details.as_ref());
    let code_name = termination.and_then(|t| non_empty(t.code.as_ref()));
    let verdict = if terminal {
        let from_result = result_name.as_ref().map(|n| match lookup(ResultState, n) {
            Some(Res(v)) => v,
            _ => {
                unknown.push(format!("result_state={n}"));
                Failed
            }
        });
        let from_code = || {
            code_name
                .as_ref()
                .map(|n| match lookup(TerminationCode, n) {
                    Some(Res(v)) => v,
                    _ => {
                        unknown.push(format!("termination code={n}"));
                        Failed
                    }
                })
        };
        let from_life = || match legacy_life {
            Some(EndedAs(v)) => Some(v),
            _ => None,
        };
        Some(
            from_result
                .or_else(from_code)
                .or_else(from_life)
                .unwrap_or(Failed),
        )
    } else {
        None
    };
    StateReading {
        terminal,
        verdict,
        life_cycle_state: legacy
            .and_then(|l| non_empty(l.life_cycle_state.as_ref()))
            .or_else(|| status.and_then(|s| non_empty(s.state.as_ref()))),
        result_state: result_name.or(code_name),
        state_message: legacy
            .and_then(|l| non_empty(l.state_message.as_ref()))
            .or_else(|| termination.and_then(|t| non_empty(t.message.as_ref()))),
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TerminationDetails;

    fn legacy(life: &str, result: Option<&str>) -> LegacyState {
        LegacyState {
            life_cycle_state: Some(life.into()),
            result_state: result.map(Into::into),
            state_message: Some(String::new()),
        }
    }

    fn status(state: &str, code: Option<&str>, msg: Option<&str>) -> RunStatus {
        RunStatus {
            state: Some(state.into()),
            termination_details: code.map(|c| TerminationDetails {
                code: Some(c.into()),
                kind: Some("CLIENT_ERROR".into()),
                message: msg.map(Into::into),
            }),
        }
    }

    #[test]
    fn every_name_appears_once_per_field() {
        for (i, a) in STATE_TABLE.iter().enumerate() {
            for b in &STATE_TABLE[i + 1..] {
                assert!(
                    !(a.field == b.field && a.name == b.name),
                    "{} twice",
                    a.name
                );
            }
        }
    }

    #[test]
    fn legacy_only_runs() {
        let r = read_state(Some(&legacy("RUNNING", None)), None);
        assert!(!r.terminal && r.verdict.is_none() && r.unknown.is_empty());
        let r = read_state(Some(&legacy("TERMINATED", Some("SUCCESS"))), None);
        assert_eq!((r.terminal, r.verdict), (true, Some(Success)));
        let r = read_state(
            Some(&legacy("TERMINATED", Some("SUCCESS_WITH_FAILURES"))),
            None,
        );
        assert_eq!(r.verdict, Some(SuccessWithFailures));
        let r = read_state(Some(&legacy("INTERNAL_ERROR", None)), None);
        assert_eq!((r.terminal, r.verdict), (true, Some(PlatformError)));
        let r = read_state(Some(&legacy("SKIPPED", None)), None);
        assert_eq!(r.verdict, Some(Skipped));
        assert_eq!(r.state_message, None, "empty messages are dropped");
    }

    #[test]
    fn status_only_runs_use_termination_details() {
        let r = read_state(None, Some(&status("WAITING", None, None)));
        assert!(!r.terminal);
        assert_eq!(r.life_cycle_state.as_deref(), Some("WAITING"));
        let r = read_state(
            None,
            Some(&status(
                "TERMINATED",
                Some("RUN_EXECUTION_ERROR"),
                Some("Task t failed"),
            )),
        );
        assert_eq!((r.terminal, r.verdict), (true, Some(Failed)));
        assert_eq!(r.result_state.as_deref(), Some("RUN_EXECUTION_ERROR"));
        assert_eq!(r.state_message.as_deref(), Some("Task t failed"));
        let r = read_state(None, Some(&status("TERMINATED", Some("SUCCESS"), None)));
        assert_eq!(r.verdict, Some(Success));
    }

    #[test]
    fn legacy_result_wins_when_both_are_present() {
        let r = read_state(
            Some(&legacy("TERMINATED", Some("FAILED"))),
            Some(&status("TERMINATED", Some("SUCCESS"), None)),
        );
        assert_eq!(r.verdict, Some(Failed));
        assert_eq!(r.result_state.as_deref(), Some("FAILED"));
    }

    #[test]
    fn unknown_life_cycle_names_are_not_terminal_and_are_reported() {
        let r = read_state(
            Some(&legacy("HIBERNATING", None)),
            Some(&status("HIBERNATING", None, None)),
        );
        assert!(!r.terminal);
        assert_eq!(
            r.unknown,
            vec!["life_cycle_state=HIBERNATING", "status.state=HIBERNATING"]
        );
        // The newer object can still say it is over.
        let r = read_state(
            Some(&legacy("HIBERNATING", None)),
            Some(&status("TERMINATED", Some("SUCCESS"), None)),
        );
        assert_eq!((r.terminal, r.verdict), (true, Some(Success)));
    }

    #[test]
    fn unknown_results_fail_rather_than_pass() {
        let r = read_state(Some(&legacy("TERMINATED", Some("MOSTLY_FINE"))), None);
        assert_eq!(r.verdict, Some(Failed));
        assert_eq!(r.unknown, vec!["result_state=MOSTLY_FINE"]);
        let r = read_state(None, Some(&status("TERMINATED", None, None)));
        assert_eq!(r.verdict, Some(Failed), "terminal without any result");
    }
}
