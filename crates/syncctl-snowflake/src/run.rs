//! Running a COPY plan: one request (a transaction) or one request per statement, polled to
//! the end on the shared [`Waiter`] (cancelled at the deadline or on a signal unless
//! `on_kill` says leave; left running at the wait timeout), with per-file results collected.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use syncctl_core::{IdempotencyKey, Stop, Waiter};
use tokio::time::Instant;
use uuid::Uuid;

use crate::SnowflakeError;
use crate::api::{ResultSet, SqlApi, StatementRequest, StatementStatus};
use crate::copy::{CopyPlan, PlannedCopy, RequestText};
use crate::result::{CopyOutput, FileResult, ValidationError, parse_copy_output};
use crate::settings::SessionContext;

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Several statements in one `BEGIN; …; COMMIT` request (else one request each).
    pub transaction: bool,
    /// The plan is `VALIDATION_MODE` statements.
    pub validate: bool,
    /// Warehouse, role, database and schema.
    pub context: SessionContext,
    /// The body's `timeout`.
    pub statement_timeout: Option<Duration>,
    /// The session's `QUERY_TAG`.
    pub query_tag: Option<String>,
    /// Makes request ids deterministic, so a rerun of the same task reuses them.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Send `retry=true` on the first submit too (this task may have submitted before).
    pub retry_first: bool,
    /// Status-check pacing, the wait timeout, the deadline, the signal and what it does.
    pub wait: Waiter,
}

/// One COPY statement's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct StatementReport {
    /// Its handle (the child handle inside a multi-statement request), once known.
    pub handle: Option<String>,
    /// The SQL with secrets replaced by `***`.
    pub sql: String,
    /// The partition it loads.
    pub partition: String,
    /// The request that carried it.
    pub request_id: Uuid,
    /// `succeeded`, `failed`, `cancelled` or `not_run`.
    pub status: &'static str,
    /// Files it processed (0 for "0 files processed").
    pub files: usize,
    /// Whether `LOAD_UNCERTAIN_FILES = TRUE` was added.
    pub load_uncertain: bool,
}

/// One HTTP request (a single statement or a multi-statement batch).
#[derive(Debug, Clone, Serialize)]
pub struct RequestReport {
    /// `requestId`.
    pub request_id: Uuid,
    /// The statement handle (the parent handle of a batch).
    pub handle: Option<String>,
    /// `MULTI_STATEMENT_COUNT` (1 for a single statement).
    pub statement_count: usize,
    /// Whether the statements ran inside `BEGIN … COMMIT`.
    pub transaction: bool,
    /// Whether the submit was resubmitted with `retry=true` after a lost response.
    pub resubmitted: bool,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// Every request finished.
    Completed,
    /// A statement failed or the API refused.
    Failed(SnowflakeError),
    /// Stopped by a signal, the deadline or the wait timeout; `cancelled` lists the handles
    /// cancelled, `left_running` those left running (wait timeout, `--on-kill leave`).
    Interrupted {
        /// Signal, deadline or wait timeout.
        why: Stop,
        /// Handles a cancel was sent for.
        cancelled: Vec<String>,
        /// Handles left running.
        left_running: Vec<String>,
        /// Why a cancel could not be confirmed, if it could not.
        cancel_error: Option<String>,
    },
}

/// Everything a run produced, also when it failed part way.
#[derive(Debug)]
pub struct CopyReport {
    /// One entry per COPY statement of the plan.
    pub statements: Vec<StatementReport>,
    /// One entry per request sent.
    pub requests: Vec<RequestReport>,
    /// Per-file results of all statements.
    pub files: Vec<FileResult>,
    /// What `--validate` found.
    pub validation_errors: Vec<ValidationError>,
    /// How it ended.
    pub end: RunEnd,
}

enum Halt {
    Interrupted(Stop),
    Failed(SnowflakeError),
}

impl From<SnowflakeError> for Halt {
    fn from(e: SnowflakeError) -> Self {
        Self::Failed(e)
    }
}

/// A request id: deterministic from the idempotency key and the request (so a rerun of the
/// same task and statements reuses it), else random.
#[must_use]
pub fn request_id(key: Option<&IdempotencyKey>, text: &RequestText, ctx: &SessionContext) -> Uuid {
    match key {
        Some(k) => {
            // The statements, then the session context, hashed as one text.
            let hashed = format!(
                "{}{}",
                text.redacted,
                serde_json::to_string(ctx).unwrap_or_default()
            );
            let hex = syncctl_core::digest::sha256_hex(hashed);
            k.scoped(&format!("snowflake-copy:{}", &hex[..24])).uuid()
        }
        None => Uuid::new_v4(),
    }
}

/// Runs `plan` through `api`; `progress` hears about long waits.
pub async fn run_copy(
    api: &SqlApi,
    plan: &CopyPlan,
    opts: &RunOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> CopyReport {
    let batches: Vec<&[PlannedCopy]> = if opts.transaction {
        vec![&plan.copies[..]]
    } else {
        plan.copies.chunks(1).collect()
    };
    let mut report = CopyReport {
        statements: Vec::new(),
        requests: Vec::new(),
        files: Vec::new(),
        validation_errors: Vec::new(),
        end: RunEnd::Completed,
    };
    for (b, batch) in batches.iter().enumerate() {
        let text = CopyPlan::request_text(batch, opts.transaction);
        let rid = request_id(opts.idempotency_key.as_ref(), &text, &opts.context);
        let first_statement = report.statements.len();
        for c in *batch {
            report.statements.push(StatementReport {
                handle: None,
                sql: c.redacted_sql.clone(),
                partition: c.partition.clone(),
                request_id: rid,
                status: "not_run",
                files: 0,
                load_uncertain: c.load_uncertain,
            });
        }
        report.requests.push(RequestReport {
            request_id: rid,
            handle: None,
            statement_count: text.count,
            transaction: opts.transaction && batch.len() > 1,
            resubmitted: false,
        });
        let req = StatementRequest {
            text: &text.sql,
            count: text.count,
            context: &opts.context,
            timeout: opts.statement_timeout,
            query_tag: opts.query_tag.as_deref(),
        };
        tracing::info!(request_id = %rid, statements = text.count, batch = b + 1, batches = batches.len(), "Submitting COPY.");
        let outcome = run_request(
            api,
            &req,
            rid,
            &text,
            batch.len(),
            opts,
            &mut report,
            progress,
        )
        .await;
        let stmts = &mut report.statements[first_statement..];
        match outcome {
            Ok(outputs) => {
                for (s, (handle, out)) in stmts.iter_mut().zip(outputs) {
                    s.handle = handle;
                    s.status = "succeeded";
                    match out {
                        CopyOutput::Files(files) => {
                            s.files = files.len();
                            report.files.extend(files);
                        }
                        CopyOutput::NoFiles(_) => s.files = 0,
                        CopyOutput::Validation(errors) => report.validation_errors.extend(errors),
                    }
                }
            }
            Err(Halt::Failed(e)) => {
                for s in stmts.iter_mut() {
                    s.status = "failed";
                }
                report.end = RunEnd::Failed(e);
                return report;
            }
            Err(Halt::Interrupted(why)) => {
                let cancels = why.cancels(opts.wait.on_kill());
                for s in stmts.iter_mut() {
                    s.status = if cancels { "cancelled" } else { "left_running" };
                }
                let handle = report.requests.last().and_then(|r| r.handle.clone());
                let grace = opts.wait.options().kill_grace;
                let (cancelled, left_running, cancel_error) = match handle {
                    Some(h) if !cancels => {
                        tracing::warn!(handle = %h, ?why, "Leaving the running statement running.");
                        (Vec::new(), vec![h], None)
                    }
                    Some(h) => {
                        tracing::warn!(handle = %h, ?why, "Cancelling the running statement.");
                        match tokio::time::timeout(grace, api.cancel(&h)).await {
                            Ok(Ok(())) => (vec![h], Vec::new(), None),
                            Ok(Err(e)) => (vec![h], Vec::new(), Some(e.to_string())),
                            Err(_) => (vec![h], Vec::new(), Some("the cancel request did not answer within --kill-grace".into())),
                        }
                    }
                    None => (Vec::new(), Vec::new(), Some("the statement was being submitted; no handle to cancel (Snowflake may still run it)".into())),
                };
                report.end = RunEnd::Interrupted {
                    why,
                    cancelled,
                    left_running,
                    cancel_error,
                };
                return report;
            }
        }
    }
    report
}

#[allow(clippy::too_many_arguments)]
async fn run_request(
    api: &SqlApi,
    req: &StatementRequest<'_>,
    rid: Uuid,
    text: &RequestText,
    copies: usize,
    opts: &RunOptions,
    report: &mut CopyReport,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<(Option<String>, CopyOutput)>, Halt> {
    let submit = api.submit(req, rid, opts.retry_first);
    tokio::pin!(submit);
    let submitted = match interruptible(opts, &mut submit).await {
        Ok(answer) => answer?,
        Err(Halt::Interrupted(why)) => {
            // The request may already be running on Snowflake, and only its answer carries
            // the handle a cancel needs: let the submit finish (bounded), so that the caller
            // cancels the statement instead of leaving it running unseen.
            tracing::warn!(request_id = %rid, ?why, "Interrupted while submitting; waiting briefly for the statement handle to cancel it.");
            match tokio::time::timeout(opts.wait.options().kill_grace, &mut submit).await {
                // Finished within the submit: its result is reported like any other.
                Ok(Ok(late)) if late.done.is_some() => late,
                Ok(Ok(late)) => {
                    if let Some(r) = report.requests.last_mut() {
                        r.handle = Some(late.handle.clone());
                        r.resubmitted = late.resubmitted;
                    }
                    return Err(Halt::Interrupted(why));
                }
                Ok(Err(e)) => {
                    tracing::warn!(request_id = %rid, error = %e, "The interrupted submit failed.");
                    return Err(Halt::Interrupted(why));
                }
                Err(_) => return Err(Halt::Interrupted(why)),
            }
        }
        Err(failed) => return Err(failed),
    };
    if let Some(r) = report.requests.last_mut() {
        r.handle = Some(submitted.handle.clone());
        r.resubmitted = submitted.resubmitted;
    }
    let handle = submitted.handle.clone();
    progress(&format!(
        "Statement {handle} submitted; waiting for it to finish."
    ));
    let rs = match submitted.done {
        Some(rs) => rs,
        None => wait(api, &handle, opts, progress).await?,
    };
    if text.count == 1 {
        return Ok(vec![(Some(handle), parse_copy_output(&rs, opts.validate)?)]);
    }
    let mut out = Vec::with_capacity(copies);
    for i in 0..copies {
        let child = rs
            .statement_handles
            .get(text.first_copy_index + i)
            .cloned()
            .ok_or_else(|| {
                SnowflakeError::Protocol(format!(
                    "the multi-statement result lists {} statement handles, expected {}",
                    rs.statement_handles.len(),
                    text.count
                ))
            })?;
        let child_rs = match interruptible(opts, api.status(&child)).await?? {
            StatementStatus::Done(rs) => rs,
            StatementStatus::Running => wait(api, &child, opts, progress).await?,
        };
        out.push((Some(child), parse_copy_output(&child_rs, opts.validate)?));
    }
    Ok(out)
}

async fn wait(
    api: &SqlApi,
    handle: &str,
    opts: &RunOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<ResultSet, Halt> {
    let mut checks = 0u32;
    let started = Instant::now();
    loop {
        if let Err(stop) = opts.wait.pause().await {
            // A clock ran out: one last look, so that a statement that just finished is
            // reported as finished rather than cancelled or left.
            if stop != Stop::Signal
                && let Ok(StatementStatus::Done(rs)) = api.status(handle).await
            {
                return Ok(rs);
            }
            return Err(Halt::Interrupted(stop));
        }
        checks += 1;
        match interruptible(opts, api.status(handle)).await?? {
            StatementStatus::Done(rs) => return Ok(rs),
            StatementStatus::Running => {
                progress(&format!(
                    "Statement {handle} still running after {}s ({checks} checks).",
                    started.elapsed().as_secs()
                ));
            }
        }
    }
}

/// Runs `fut` unless a signal, the deadline or the wait timeout comes first.
async fn interruptible<T>(opts: &RunOptions, fut: impl Future<Output = T>) -> Result<T, Halt> {
    opts.wait.race(fut).await.map_err(Halt::Interrupted)
}
