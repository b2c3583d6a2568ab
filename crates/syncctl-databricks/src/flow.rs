//! The command flows: trigger (or attach to) a run, wait for it with two clocks, cancel it on
//! a deadline or a signal, and report the run and its tasks.
//!
//! Decisions (also in docs/dbx.md):
//! * An idempotency token makes `run-now` return the run an earlier try started. Such a run
//!   is reported as `attached` when it started more than 15 s before Databricks answered, or
//!   had already ended when we first looked.
//! * Attaching to a run that already *failed* reports that failure and starts nothing;
//!   `rerun_failed` repairs it instead (`runs/repair`, `rerun_all_failed_tasks`, with the
//!   same parameters) and waits for the repair.
//! * Waiting is the shared [`Waiter`]: `wait_timeout` stops waiting and leaves the run going;
//!   `deadline` cancels it.
//! * On a signal the run is cancelled (or left, with [`OnKill::Leave`]) and we wait up to the
//!   kill grace to see it stop.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use syncctl_core::{Classified, ErrorClass, OnKill, Stop, WaitOptions, Waiter};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::DatabricksError;
use crate::client::JobsClient;
use crate::model::Run;
use crate::state::{StateReading, Verdict, read_state};

/// A run counts as attached when it started this much earlier than `run-now` answered.
pub const ATTACH_SLACK_MS: i64 = 15_000;

/// At most this many failed tasks get their `runs/get-output` error fetched.
const MAX_OUTPUT_FETCHES: usize = 10;

/// Longest task error kept in the report.
const MAX_ERROR_CHARS: usize = 2000;

/// Consecutive transient polling failures tolerated while waiting (the run keeps going on
/// Databricks' side during a short API outage).
const MAX_POLL_FAILURES: u32 = 10;

/// Which job to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    /// By id.
    Id(i64),
    /// By exact name, looked up with `jobs/list`.
    Name(String),
}

/// What to trigger.
#[derive(Debug, Clone)]
pub struct RunNowSpec {
    /// The job.
    pub job: JobRef,
    /// `run-now` parameters (`job_parameters`, `notebook_params`, …), without `job_id` and
    /// `idempotency_token`.
    pub params: Map<String, Value>,
    /// At most 64 characters; makes the trigger safe to resend and reruns attach.
    pub idempotency_token: Option<String>,
    /// Repair an attached run that already failed instead of reporting its failure.
    pub rerun_failed: bool,
    /// Accept `SUCCESS_WITH_FAILURES` as success.
    pub allow_success_with_failures: bool,
}

/// One task's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskReport {
    /// The task's key.
    pub task_key: String,
    /// The task run's id (latest attempt).
    pub run_id: Option<i64>,
    /// Its result, once it has one.
    pub result_state: Option<String>,
    /// How long it ran.
    pub duration_ms: Option<i64>,
    /// Why it failed, from `runs/get-output`.
    pub error: Option<String>,
}

/// The command's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RunReport {
    /// The job.
    pub job_id: Option<i64>,
    /// The run (absent when the trigger itself failed).
    pub run_id: Option<i64>,
    /// The run's page in the workspace UI.
    pub run_page_url: Option<String>,
    /// Whether the run was started by an earlier try with the same idempotency token.
    pub attached: bool,
    /// The run's life-cycle state.
    pub life_cycle_state: Option<String>,
    /// The run's result.
    pub result_state: Option<String>,
    /// Databricks' state message.
    pub state_message: Option<String>,
    /// Latest attempt of each task.
    pub tasks: Vec<TaskReport>,
    /// The repair syncctl started (`--rerun-failed`).
    pub repair_id: Option<i64>,
}

impl RunReport {
    /// As JSON for the result's `data`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}

/// How a flow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The run succeeded.
    Succeeded,
    /// Not waited for (`--no-wait`, `status` without `--wait`); the run is still going.
    NotWaited,
    /// The run ended without success.
    RemoteFailed {
        /// Why, with the first failed task's error.
        message: String,
    },
    /// The idempotency token matched a run that had already failed; nothing was started.
    AttachedToFailed {
        /// Why, and what to do.
        message: String,
    },
    /// The wait timeout passed; the run was left going.
    WaitTimedOut {
        /// What was left running.
        message: String,
    },
    /// The deadline passed; the run was cancelled.
    DeadlineReached {
        /// What was cancelled and whether it stopped.
        message: String,
    },
    /// A signal arrived.
    Interrupted {
        /// What happened to the run.
        message: String,
    },
    /// `cancel`: the run had already ended.
    AlreadyEnded,
    /// `cancel`: cancellation was requested.
    CancelRequested {
        /// Whether the run was seen to stop.
        confirmed: bool,
        /// Said when it was not seen to stop.
        message: String,
    },
}

/// A finished flow.
#[derive(Debug, Clone)]
pub struct FlowResult {
    /// The data to report.
    pub report: RunReport,
    /// How it ended.
    pub ending: Ending,
    /// Things to tell the user that did not decide the outcome.
    pub warnings: Vec<String>,
}

/// A flow that failed on an API or settings error, with what it knew by then.
#[derive(Debug)]
pub struct FlowFailure {
    /// The error.
    pub error: DatabricksError,
    /// What is known about the run, if it started.
    pub report: Option<RunReport>,
    /// Warnings gathered before the failure.
    pub warnings: Vec<String>,
}

/// Drives one command against one workspace.
pub struct Flow<'a> {
    client: &'a JobsClient,
    cancel: CancellationToken,
    progress: &'a mut (dyn FnMut(&str) + Send),
    warnings: Vec<String>,
    started: Instant,
}

impl<'a> Flow<'a> {
    /// A flow that watches `cancel` (fired by SIGINT/SIGTERM) and reports each poll to
    /// `progress`.
    pub fn new(
        client: &'a JobsClient,
        cancel: CancellationToken,
        progress: &'a mut (dyn FnMut(&str) + Send),
    ) -> Self {
        Self {
            client,
            cancel,
            progress,
            warnings: Vec::new(),
            started: Instant::now(),
        }
    }

    fn fail(&mut self, error: DatabricksError, report: Option<RunReport>) -> FlowFailure {
        FlowFailure {
            error,
            report,
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    fn done(&mut self, report: RunReport, ending: Ending) -> FlowResult {
        FlowResult {
            report,
            ending,
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            tracing::warn!("{w}");
            self.warnings.push(w);
        }
    }

    /// Reads a run's state and turns unknown names into (deduplicated) warnings.
    fn read(&mut self, run: &Run) -> StateReading {
        let r = read_state(run.state.as_ref(), run.status.as_ref());
        self.note_unknown(&r);
        r
    }

    fn note_unknown(&mut self, r: &StateReading) {
        for u in &r.unknown {
            let warning = match u
                .strip_prefix("life_cycle_state=")
                .or_else(|| u.strip_prefix("status.state="))
            {
                // The legacy and newer fields usually carry the same new name: warn once.
                Some(name) => format!(
                    "Databricks reported a life-cycle state syncctl does not know ({name}); treated as still running"
                ),
                None => format!(
                    "Databricks reported a result syncctl does not know ({u}); counted as a failure"
                ),
            };
            self.warn(warning);
        }
    }

    /// Triggers the job (or attaches through the idempotency token) and, with `wait`, waits.
    ///
    /// # Errors
    /// API and settings errors, with whatever is known about the run.
    pub async fn run_now(
        &mut self,
        spec: &RunNowSpec,
        wait: Option<&WaitOptions>,
    ) -> Result<FlowResult, FlowFailure> {
        let job_id = match &spec.job {
            JobRef::Id(id) => *id,
            JobRef::Name(name) => match self.client.find_job_id(name).await {
                Ok(id) => {
                    tracing::info!(job_id = id, name = %name, "Found the job by name.");
                    id
                }
                Err(e) => return Err(self.fail(e, None)),
            },
        };
        let partial = RunReport {
            job_id: Some(job_id),
            ..RunReport::default()
        };
        let mut body = spec.params.clone();
        body.insert("job_id".into(), json!(job_id));
        if let Some(t) = &spec.idempotency_token {
            body.insert("idempotency_token".into(), json!(t));
        }
        let answer = match self.client.run_now(&Value::Object(body)).await {
            Ok(a) => a,
            Err(e) => return Err(self.fail(e, Some(partial))),
        };
        let partial = RunReport {
            run_id: Some(answer.run_id),
            ..partial
        };
        let run = match self.get_run_patiently(answer.run_id, false).await {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e, Some(partial))),
        };
        if let (Some(actual), Some(token)) = (run.job_id, &spec.idempotency_token)
            && actual != job_id
        {
            let e = DatabricksError::TokenOfAnotherJob {
                token: token.clone(),
                run_id: run.run_id,
                actual_job_id: actual,
                expected_job_id: job_id,
            };
            return Err(self.fail(e, Some(partial)));
        }
        let reading = self.read(&run);
        // A new run cannot have ended by the first look, so an ended run came from an earlier
        // request with the same token, however recent.
        let attached = spec.idempotency_token.is_some()
            && (reading.terminal
                || run
                    .start_time
                    .is_some_and(|s| s > 0 && s + ATTACH_SLACK_MS < answer.server_time_ms));
        if attached {
            tracing::info!(
                run_id = answer.run_id,
                "Attached to the run an earlier try started with the same idempotency token."
            );
        } else {
            tracing::info!(run_id = answer.run_id, job_id, "Started a Databricks run.");
        }
        let mut repair_id = None;
        if attached && reading.terminal {
            let allow = spec.allow_success_with_failures;
            match reading.verdict {
                Some(Verdict::Success) => {
                    let report = self.report(&run, true, None, false).await;
                    return Ok(self.done(report, Ending::Succeeded));
                }
                Some(Verdict::SuccessWithFailures) if allow => {
                    return Ok(self.conclude(run, true, None, allow).await);
                }
                _ if spec.rerun_failed => match self.repair(&run, &spec.params).await {
                    Ok(id) => repair_id = Some(id),
                    Err(e) => {
                        let report = self.report(&run, true, None, true).await;
                        return Err(self.fail(e, Some(report)));
                    }
                },
                _ => {
                    let report = self.report(&run, true, None, true).await;
                    let message = format!(
                        "{}; this run was started by an earlier try with the same idempotency token and had already ended, so syncctl started nothing (pass --rerun-failed to repair it, or a different --idempotency-key to start a new run)",
                        failure_message(&report, &reading)
                    );
                    return Ok(self.done(report, Ending::AttachedToFailed { message }));
                }
            }
        }
        let Some(w) = wait else {
            if self.cancel.is_cancelled() {
                return Ok(self.interrupted(run, attached, repair_id, None).await);
            }
            if reading.terminal && repair_id.is_none() {
                return Ok(self
                    .conclude(run, attached, None, spec.allow_success_with_failures)
                    .await);
            }
            let report = self.report(&run, attached, repair_id, true).await;
            return Ok(self.done(report, Ending::NotWaited));
        };
        self.wait(
            run,
            attached,
            repair_id,
            w,
            spec.allow_success_with_failures,
        )
        .await
    }

    /// Reports one run; with `wait`, waits for it to end first.
    ///
    /// # Errors
    /// API errors.
    pub async fn status(
        &mut self,
        run_id: i64,
        wait: Option<&WaitOptions>,
        allow_success_with_failures: bool,
    ) -> Result<FlowResult, FlowFailure> {
        let run = match self.client.get_run(run_id, false).await {
            Ok(r) => r,
            Err(e) => {
                let partial = RunReport {
                    run_id: Some(run_id),
                    ..RunReport::default()
                };
                return Err(self.fail(e, Some(partial)));
            }
        };
        let reading = self.read(&run);
        if reading.terminal {
            return Ok(self
                .conclude(run, false, None, allow_success_with_failures)
                .await);
        }
        match wait {
            Some(w) => {
                self.wait(run, false, None, w, allow_success_with_failures)
                    .await
            }
            None => {
                let report = self.report(&run, false, None, true).await;
                Ok(self.done(report, Ending::NotWaited))
            }
        }
    }

    /// Cancels one run; with `wait`, waits up to its kill grace to see it stop.
    ///
    /// # Errors
    /// API errors.
    pub async fn cancel(
        &mut self,
        run_id: i64,
        wait: Option<&WaitOptions>,
    ) -> Result<FlowResult, FlowFailure> {
        let partial = RunReport {
            run_id: Some(run_id),
            ..RunReport::default()
        };
        let run = match self.client.get_run(run_id, false).await {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e, Some(partial))),
        };
        if self.read(&run).terminal {
            let report = self.report(&run, false, None, false).await;
            return Ok(self.done(report, Ending::AlreadyEnded));
        }
        if let Err(e) = self.client.cancel_run(run_id).await {
            let report = self.report(&run, false, None, false).await;
            return Err(self.fail(e, Some(report)));
        }
        tracing::info!(run_id, "Asked Databricks to cancel the run.");
        let Some(w) = wait else {
            let report = self.report(&run, false, None, false).await;
            return Ok(self.done(
                report,
                Ending::CancelRequested {
                    confirmed: false,
                    message: String::new(),
                },
            ));
        };
        let (run, confirmed) = self
            .confirm_stopped(run, w.kill_grace, w.confirm_step(), true)
            .await;
        let report = self.report(&run, false, None, false).await;
        let message = if confirmed {
            String::new()
        } else {
            format!(
                "asked Databricks to cancel run {run_id}, but it was still {} after {} (--kill-grace)",
                state_name(&report),
                syncctl_core::HumanDuration(w.kill_grace)
            )
        };
        Ok(self.done(report, Ending::CancelRequested { confirmed, message }))
    }

    /// `runs/get` that tolerates a few transient failures (the run goes on regardless).
    async fn get_run_patiently(
        &mut self,
        run_id: i64,
        include_history: bool,
    ) -> Result<Run, DatabricksError> {
        let mut failures = 0;
        loop {
            match self.client.get_run(run_id, include_history).await {
                Ok(r) => return Ok(r),
                Err(e) if e.class() == ErrorClass::Transient && failures < MAX_POLL_FAILURES => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "Polling the run failed; trying again.");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn repair(
        &mut self,
        run: &Run,
        params: &Map<String, Value>,
    ) -> Result<i64, DatabricksError> {
        let history = self.client.get_run(run.run_id, true).await?;
        let id = self
            .client
            .repair_run(run.run_id, history.latest_repair_id(), params)
            .await?;
        tracing::info!(
            run_id = run.run_id,
            repair_id = id,
            "The attached run had failed; repairing its failed tasks (--rerun-failed)."
        );
        self.warn(format!(
            "run {} had already failed; repaired its failed tasks (repair {id}) because of --rerun-failed",
            run.run_id
        ));
        Ok(id)
    }

    fn tell_progress(&mut self, run: &Run, reading: &StateReading) {
        let tasks = run.latest_tasks();
        let done = tasks
            .iter()
            .filter(|t| read_state(t.state.as_ref(), t.status.as_ref()).terminal)
            .count();
        let mut msg = format!(
            "Databricks run {}: {}",
            run.run_id,
            reading.life_cycle_state.as_deref().unwrap_or("UNKNOWN")
        );
        if !tasks.is_empty() {
            msg.push_str(&format!(" ({done}/{} tasks finished)", tasks.len()));
        }
        if let Some(m) = &reading.state_message {
            msg.push_str(": ");
            msg.push_str(m);
        }
        (self.progress)(&msg);
    }

    async fn wait(
        &mut self,
        mut run: Run,
        attached: bool,
        repair_id: Option<i64>,
        w: &WaitOptions,
        allow_success_with_failures: bool,
    ) -> Result<FlowResult, FlowFailure> {
        let waiter = Waiter::new(w.clone(), self.started, self.cancel.clone());
        let mut failures = 0u32;
        let mut last_look = None;
        loop {
            let reading = self.read(&run);
            // Right after a repair the run may still show the old result until Databricks
            // lists the repair.
            let repair_visible =
                repair_id.is_none_or(|id| run.repair_history.iter().any(|r| r.id == Some(id)));
            self.tell_progress(&run, &reading);
            if reading.terminal && repair_visible {
                return Ok(self
                    .conclude(run, attached, repair_id, allow_success_with_failures)
                    .await);
            }
            match last_look {
                Some(Stop::Deadline) => {
                    return Ok(self.at_deadline(run, attached, repair_id, w).await);
                }
                Some(_) => {
                    let report = self.report(&run, attached, repair_id, true).await;
                    let message = format!(
                        "stopped waiting after {} (--wait-timeout); Databricks run {} is still {} and was left running",
                        syncctl_core::HumanDuration(w.wait_timeout.unwrap_or_default()),
                        run.run_id,
                        state_name(&report)
                    );
                    return Ok(self.done(report, Ending::WaitTimedOut { message }));
                }
                None => {}
            }
            let polled = match waiter.pause().await {
                Ok(()) => {
                    waiter
                        .race(self.client.get_run(run.run_id, repair_id.is_some()))
                        .await
                }
                Err(e) => Err(e),
            };
            let polled = match polled {
                Ok(p) => p,
                Err(Stop::Signal) => {
                    return Ok(self.interrupted(run, attached, repair_id, Some(w)).await);
                }
                // A clock ran out: one last look (a run that just ended is reported as
                // ended), then stop.
                Err(stop) => {
                    last_look = Some(stop);
                    self.client.get_run(run.run_id, repair_id.is_some()).await
                }
            };
            match polled {
                Ok(r) => {
                    run = r;
                    failures = 0;
                }
                Err(e) if e.class() == ErrorClass::Transient && failures < MAX_POLL_FAILURES => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "Polling the run failed; will try again at the next poll.");
                }
                Err(e) => {
                    let report = self.report(&run, attached, repair_id, false).await;
                    return Err(self.fail(e, Some(report)));
                }
            }
        }
    }

    async fn at_deadline(
        &mut self,
        run: Run,
        attached: bool,
        repair_id: Option<i64>,
        w: &WaitOptions,
    ) -> FlowResult {
        let run_id = run.run_id;
        let deadline = w.deadline.unwrap_or_default();
        let (run, confirmed) = match self.client.cancel_run(run_id).await {
            Ok(()) => {
                tracing::warn!(run_id, "Deadline reached: cancelling the Databricks run.");
                self.confirm_stopped(run, w.kill_grace, w.confirm_step(), true)
                    .await
            }
            Err(e) => {
                self.warn(format!("could not cancel Databricks run {run_id}: {e}"));
                (run, false)
            }
        };
        let report = self.report(&run, attached, repair_id, false).await;
        let message = if confirmed {
            format!(
                "deadline of {} reached (--deadline); cancelled Databricks run {run_id} ({})",
                syncctl_core::HumanDuration(deadline),
                state_name(&report)
            )
        } else {
            format!(
                "deadline of {} reached (--deadline); asked Databricks to cancel run {run_id}, but it was still {} when syncctl stopped waiting",
                syncctl_core::HumanDuration(deadline),
                state_name(&report)
            )
        };
        self.done(report, Ending::DeadlineReached { message })
    }

    async fn interrupted(
        &mut self,
        run: Run,
        attached: bool,
        repair_id: Option<i64>,
        w: Option<&WaitOptions>,
    ) -> FlowResult {
        let run_id = run.run_id;
        let defaults = WaitOptions::default();
        let w = w.unwrap_or(&defaults);
        if w.on_kill == OnKill::Leave {
            let report = self.report(&run, attached, repair_id, false).await;
            let message =
                format!("interrupted; Databricks run {run_id} was left running (--on-kill leave)");
            return self.done(report, Ending::Interrupted { message });
        }
        let (run, confirmed) = match self.client.cancel_run(run_id).await {
            Ok(()) => {
                tracing::warn!(run_id, "Interrupted: cancelling the Databricks run.");
                self.confirm_stopped(run, w.kill_grace, w.confirm_step(), false)
                    .await
            }
            Err(e) => {
                self.warn(format!("could not cancel Databricks run {run_id}: {e}"));
                (run, false)
            }
        };
        let report = self.report(&run, attached, repair_id, false).await;
        let message = if confirmed {
            format!(
                "interrupted; cancelled Databricks run {run_id} ({})",
                state_name(&report)
            )
        } else {
            format!(
                "interrupted; asked Databricks to cancel run {run_id}, but it was still {} after {}",
                state_name(&report),
                syncctl_core::HumanDuration(w.kill_grace)
            )
        };
        self.done(report, Ending::Interrupted { message })
    }

    /// Polls every `step` until the run is over or `limit` passes; returns the last run seen
    /// and whether it was over. With `watch_signal`, a signal stops the wait early.
    async fn confirm_stopped(
        &mut self,
        mut run: Run,
        limit: Duration,
        step: Duration,
        watch_signal: bool,
    ) -> (Run, bool) {
        let until = Instant::now() + limit;
        loop {
            match self.client.get_run(run.run_id, false).await {
                Ok(r) => run = r,
                Err(e) => tracing::warn!(error = %e, "Polling the cancelled run failed."),
            }
            let reading = self.read(&run);
            self.tell_progress(&run, &reading);
            if reading.terminal {
                return (run, true);
            }
            let now = Instant::now();
            if now >= until {
                return (run, false);
            }
            let nap = step.min(until - now);
            if watch_signal {
                tokio::select! {
                    () = tokio::time::sleep(nap) => {}
                    () = self.cancel.cancelled() => return (run, false),
                }
            } else {
                tokio::time::sleep(nap).await;
            }
        }
    }

    async fn conclude(
        &mut self,
        run: Run,
        attached: bool,
        repair_id: Option<i64>,
        allow_success_with_failures: bool,
    ) -> FlowResult {
        let reading = self.read(&run);
        let report = self.report(&run, attached, repair_id, true).await;
        let ending = match reading.verdict {
            Some(Verdict::Success) => Ending::Succeeded,
            Some(Verdict::SuccessWithFailures) if allow_success_with_failures => {
                self.warn(format!(
                    "Databricks run {} ended SUCCESS_WITH_FAILURES; accepted because of --allow-success-with-failures",
                    run.run_id
                ));
                Ending::Succeeded
            }
            Some(Verdict::SuccessWithFailures) => Ending::RemoteFailed {
                message: format!(
                    "{} (pass --allow-success-with-failures to accept it)",
                    failure_message(&report, &reading)
                ),
            },
            _ => Ending::RemoteFailed {
                message: failure_message(&report, &reading),
            },
        };
        self.done(report, ending)
    }

    /// The report for `run`; with `fetch_errors`, failed tasks get their `runs/get-output`
    /// error.
    async fn report(
        &mut self,
        run: &Run,
        attached: bool,
        repair_id: Option<i64>,
        fetch_errors: bool,
    ) -> RunReport {
        let reading = read_state(run.state.as_ref(), run.status.as_ref());
        let mut tasks = Vec::new();
        let mut fetched = 0usize;
        for t in run.latest_tasks() {
            let r = read_state(t.state.as_ref(), t.status.as_ref());
            self.note_unknown(&r);
            let failed = r.terminal && r.verdict.is_some_and(Verdict::has_error_output);
            let mut error = None;
            if failed
                && fetch_errors
                && fetched < MAX_OUTPUT_FETCHES
                && let Some(task_run) = t.run_id
            {
                fetched += 1;
                match self.client.get_output(task_run).await {
                    Ok(out) => error = out.error.filter(|e| !e.trim().is_empty()).map(truncate),
                    Err(e) => self.warn(format!(
                        "could not read the output of task {} (run {task_run}): {e}",
                        t.task_key
                    )),
                }
            }
            if failed && error.is_none() {
                error = r.state_message.clone().map(truncate);
            }
            tasks.push(TaskReport {
                task_key: t.task_key.clone(),
                run_id: t.run_id,
                result_state: if r.terminal {
                    r.result_state.clone()
                } else {
                    None
                },
                duration_ms: t.duration_ms(),
                error,
            });
        }
        RunReport {
            job_id: run.job_id,
            run_id: Some(run.run_id),
            run_page_url: run.run_page_url.clone(),
            attached,
            life_cycle_state: reading.life_cycle_state,
            result_state: reading.result_state,
            state_message: reading.state_message,
            tasks,
            repair_id,
        }
    }
}

fn truncate(s: String) -> String {
    if s.chars().count() <= MAX_ERROR_CHARS {
        return s;
    }
    let mut t: String = s.chars().take(MAX_ERROR_CHARS).collect();
    t.push('…');
    t
}

fn state_name(report: &RunReport) -> String {
    report
        .life_cycle_state
        .clone()
        .unwrap_or_else(|| "in an unknown state".to_owned())
}

/// "Databricks run R ended FAILED: task t failed: <its get-output error>".
fn failure_message(report: &RunReport, reading: &StateReading) -> String {
    let run = report.run_id.map_or_else(
        || "Databricks run".to_owned(),
        |r| format!("Databricks run {r}"),
    );
    let outcome = reading
        .result_state
        .clone()
        .or_else(|| reading.life_cycle_state.clone())
        .unwrap_or_else(|| "without a result".to_owned());
    let mut m = format!("{run} ended {outcome}");
    let failed_task = report.tasks.iter().find(|t| t.error.is_some()).or_else(|| {
        report.tasks.iter().find(|t| {
            t.result_state
                .as_deref()
                .is_some_and(|r| r != "SUCCESS" && r != "SUCCESS_WITH_FAILURES")
        })
    });
    match (failed_task, &reading.state_message) {
        (Some(t), _) => {
            let why = t.error.clone().unwrap_or_else(|| {
                format!(
                    "ended {}",
                    t.result_state.as_deref().unwrap_or("without a result")
                )
            });
            m.push_str(&format!(": task {} failed: {why}", t.task_key));
        }
        (None, Some(msg)) => {
            m.push_str(": ");
            m.push_str(msg);
        }
        (None, None) => {}
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_name_the_first_failed_task() {
        let reading = StateReading {
            terminal: true,
            verdict: Some(Verdict::Failed),
            result_state: Some("FAILED".into()),
            state_message: Some("Task transform failed".into()),
            ..StateReading::default()
        };
        let mut report = RunReport {
            run_id: Some(7),
            tasks: vec![
                TaskReport {
                    task_key: "ingest".into(),
                    run_id: Some(8),
                    result_state: Some("SUCCESS".into()),
                    duration_ms: Some(5),
                    error: None,
                },
                TaskReport {
                    task_key: "transform".into(),
                    run_id: Some(9),
                    result_state: Some("FAILED".into()),
                    duration_ms: Some(5),
                    error: Some("ZeroDivisionError: division by zero".into()),
                },
            ],
            ..RunReport::default()
        };
        assert_eq!(
            failure_message(&report, &reading),
            "Databricks run 7 ended FAILED: task transform failed: ZeroDivisionError: division by zero"
        );
        report.tasks[1].error = None;
        assert_eq!(
            failure_message(&report, &reading),
            "Databricks run 7 ended FAILED: task transform failed: ended FAILED"
        );
        report.tasks.clear();
        assert_eq!(
            failure_message(&report, &reading),
            "Databricks run 7 ended FAILED: Task transform failed"
        );
    }

    #[test]
    fn long_errors_are_cut() {
        let s = truncate("x".repeat(MAX_ERROR_CHARS + 10));
        assert_eq!(s.chars().count(), MAX_ERROR_CHARS + 1);
    }
}
