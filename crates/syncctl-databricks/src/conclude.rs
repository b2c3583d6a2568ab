//! From how a flow ended to the command's ending: the error class and words of each
//! [`Ending`], the warnings that go with it and the task metrics. The binary only prints.

use syncctl_core::{Classified, Conclusion, ErrorClass, Metric};

use crate::DatabricksError;
use crate::flow::{Ending, FlowFailure, FlowResult, RunReport};

/// The command's ending. `unkeyed_trigger`: the flow sent run-now without an idempotency
/// token (a lost answer then means a run may have started unseen).
#[must_use]
pub fn conclude(
    r: Result<FlowResult, FlowFailure>,
    unkeyed_trigger: bool,
) -> Conclusion<DatabricksError> {
    match r {
        Ok(FlowResult {
            report,
            ending,
            mut warnings,
        }) => {
            let data = report.to_json();
            let metrics = metrics(&report);
            let c = match ending {
                Ending::Succeeded | Ending::NotWaited => Conclusion::succeeded(data),
                Ending::RemoteFailed { message } | Ending::AttachedToFailed { message } => {
                    Conclusion::failed(data, DatabricksError::RunFailed(message))
                }
                Ending::WaitTimedOut { message } | Ending::DeadlineReached { message } => {
                    Conclusion::failed(data, DatabricksError::TimedOut(message))
                }
                Ending::Interrupted { message } => {
                    Conclusion::failed(data, DatabricksError::Interrupted(message))
                }
                Ending::AlreadyEnded => {
                    warnings.push(format!(
                        "Databricks run {} had already ended ({}); there was nothing to cancel",
                        report.run_id.unwrap_or_default(),
                        report
                            .result_state
                            .as_deref()
                            .or(report.life_cycle_state.as_deref())
                            .unwrap_or("unknown state")
                    ));
                    Conclusion::skipped(data)
                }
                Ending::CancelRequested { confirmed, message } => {
                    if confirmed || message.is_empty() {
                        Conclusion::succeeded(data)
                    } else {
                        Conclusion::failed(data, DatabricksError::TimedOut(message))
                    }
                }
            };
            c.with_warnings(warnings).with_metrics(metrics)
        }
        Err(FlowFailure {
            error,
            report,
            mut warnings,
        }) => {
            let started = report.as_ref().is_some_and(|r| r.run_id.is_some());
            if unkeyed_trigger
                && !started
                && error.class() == ErrorClass::Transient
                && is_lost_answer(&error)
            {
                warnings.push("run-now got no answer, so a run may have started; without an idempotency token syncctl does not send it again (check the job's runs before retrying)".to_owned());
            }
            let data = report.unwrap_or_default().to_json();
            Conclusion::failed(data, error).with_warnings(warnings)
        }
    }
}

fn metrics(report: &RunReport) -> Vec<Metric> {
    if report.run_id.is_none() {
        return Vec::new();
    }
    let failed = report
        .tasks
        .iter()
        .filter(|t| t.result_state.as_deref().is_some_and(|r| r != "SUCCESS"))
        .count();
    vec![
        Metric::counter("dbx_tasks", report.tasks.len() as f64),
        Metric::counter("dbx_tasks_failed", failed as f64),
    ]
}

/// Whether the request may have reached Databricks without us seeing the answer.
fn is_lost_answer(e: &DatabricksError) -> bool {
    matches!(
        e,
        DatabricksError::Http(syncctl_http::HttpError::Transport {
            not_sent: false,
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncctl_core::End;

    fn ended(ending: Ending) -> Conclusion<DatabricksError> {
        conclude(
            Ok(FlowResult {
                report: RunReport {
                    run_id: Some(7),
                    ..RunReport::default()
                },
                ending,
                warnings: Vec::new(),
            }),
            false,
        )
    }

    #[test]
    fn each_ending_has_its_class() {
        let m = || "m".to_owned();
        let cases = [
            (Ending::Succeeded, None),
            (Ending::NotWaited, None),
            (
                Ending::RemoteFailed { message: m() },
                Some(ErrorClass::RemoteFailed),
            ),
            (
                Ending::AttachedToFailed { message: m() },
                Some(ErrorClass::RemoteFailed),
            ),
            (
                Ending::WaitTimedOut { message: m() },
                Some(ErrorClass::Timeout),
            ),
            (
                Ending::DeadlineReached { message: m() },
                Some(ErrorClass::Timeout),
            ),
            (
                Ending::Interrupted { message: m() },
                Some(ErrorClass::Cancelled),
            ),
            (
                Ending::CancelRequested {
                    confirmed: true,
                    message: String::new(),
                },
                None,
            ),
            (
                Ending::CancelRequested {
                    confirmed: false,
                    message: m(),
                },
                Some(ErrorClass::Timeout),
            ),
        ];
        for (ending, want) in cases {
            let what = format!("{ending:?}");
            let c = ended(ending);
            assert_eq!(c.error().map(Classified::class), want, "{what}");
        }
        let c = ended(Ending::AlreadyEnded);
        assert!(matches!(c.end, End::Skipped));
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn a_lost_unkeyed_trigger_warns_that_a_run_may_exist() {
        let lost = || FlowFailure {
            error: DatabricksError::Http(syncctl_http::HttpError::Transport {
                service: "databricks".into(),
                method: "POST".into(),
                path: "/api/2.2/jobs/run-now".into(),
                message: "connection reset".into(),
                not_sent: false,
                timeout: false,
                attempts: 1,
            }),
            report: None,
            warnings: Vec::new(),
        };
        let c = conclude(Err(lost()), true);
        assert_eq!(
            c.error().map(Classified::class),
            Some(ErrorClass::Transient)
        );
        assert!(
            c.warnings[0].contains("a run may have started"),
            "{:?}",
            c.warnings
        );
        assert!(conclude(Err(lost()), false).warnings.is_empty());
    }
}
