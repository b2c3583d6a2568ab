//! Running a COPY plan: one request (a transaction) or one request per statement, polled to
//! the end, cancelled on a signal or at the deadline, with per-file results collected.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use syncctl_core::IdempotencyKey;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::SnowflakeError;
use crate::api::{ResultSet, SqlApi, StatementRequest, StatementStatus};
use crate::copy::{CopyPlan, PlannedCopy, RequestText};
use crate::result::{CopyOutput, FileResult, ValidationError, parse_copy_output};
use crate::settings::SessionContext;

/// How long a cancel request may take before we report without its answer.
const CANCEL_BUDGET: Duration = Duration::from_secs(10);

/// How often to check a running statement: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl PollSchedule {
    /// Starts at half a second (or `max` when shorter) and doubles up to `max`.
    #[must_use]
    pub fn up_to(max: Duration) -> Self {
        Self {
            first: max.min(Duration::from_millis(500)),
            max,
        }
    }
}

/// Why waiting stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interrupt {
    /// SIGINT or SIGTERM.
    Signal,
    /// `--deadline` passed.
    Deadline,
}

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
    /// Status-check pacing.
    pub poll: PollSchedule,
    /// Cancel and stop at this instant.
    pub deadline: Option<Instant>,
    /// Fires on SIGINT/SIGTERM.
    pub cancel: CancellationToken,
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
    /// Stopped by a signal or the deadline; `cancelled` lists the handles cancelled.
    Interrupted {
        /// Signal or deadline.
        why: Interrupt,
        /// Handles a cancel was sent for.
        cancelled: Vec<String>,
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

enum Stop {
    Interrupted(Interrupt),
    Failed(SnowflakeError),
}

impl From<SnowflakeError> for Stop {
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
            let mut h = Sha256::new();
            h.update(text.redacted.as_bytes());
            h.update(serde_json::to_string(ctx).unwrap_or_default().as_bytes());
            let digest = h.finalize();
            let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
            k.scoped(&format!("snowflake-copy:{hex}")).uuid()
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
            Err(Stop::Failed(e)) => {
                for s in stmts.iter_mut() {
                    s.status = "failed";
                }
                report.end = RunEnd::Failed(e);
                return report;
            }
            Err(Stop::Interrupted(why)) => {
                for s in stmts.iter_mut() {
                    s.status = "cancelled";
                }
                let handle = report.requests.last().and_then(|r| r.handle.clone());
                let (cancelled, cancel_error) = match handle {
                    Some(h) => {
                        tracing::warn!(handle = %h, ?why, "Cancelling the running statement.");
                        match tokio::time::timeout(CANCEL_BUDGET, api.cancel(&h)).await {
                            Ok(Ok(())) => (vec![h], None),
                            Ok(Err(e)) => (vec![h], Some(e.to_string())),
                            Err(_) => (vec![h], Some("the cancel request did not answer in time".into())),
                        }
                    }
                    None => (Vec::new(), Some("the statement was being submitted; no handle to cancel (Snowflake may still run it)".into())),
                };
                report.end = RunEnd::Interrupted {
                    why,
                    cancelled,
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
) -> Result<Vec<(Option<String>, CopyOutput)>, Stop> {
    let submit = api.submit(req, rid, opts.retry_first);
    tokio::pin!(submit);
    let submitted = match interruptible(opts, &mut submit).await {
        Ok(answer) => answer?,
        Err(Stop::Interrupted(why)) => {
            // The request may already be running on Snowflake, and only its answer carries
            // the handle a cancel needs: let the submit finish (bounded), so that the caller
            // cancels the statement instead of leaving it running unseen.
            tracing::warn!(request_id = %rid, ?why, "Interrupted while submitting; waiting briefly for the statement handle to cancel it.");
            match tokio::time::timeout(CANCEL_BUDGET, &mut submit).await {
                // Finished within the submit: its result is reported like any other.
                Ok(Ok(late)) if late.done.is_some() => late,
                Ok(Ok(late)) => {
                    if let Some(r) = report.requests.last_mut() {
                        r.handle = Some(late.handle.clone());
                        r.resubmitted = late.resubmitted;
                    }
                    return Err(Stop::Interrupted(why));
                }
                Ok(Err(e)) => {
                    tracing::warn!(request_id = %rid, error = %e, "The interrupted submit failed.");
                    return Err(Stop::Interrupted(why));
                }
                Err(_) => return Err(Stop::Interrupted(why)),
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
) -> Result<ResultSet, Stop> {
    let mut delay = opts.poll.first;
    let mut checks = 0u32;
    let started = Instant::now();
    loop {
        interruptible(opts, tokio::time::sleep(delay)).await?;
        checks += 1;
        match interruptible(opts, api.status(handle)).await?? {
            StatementStatus::Done(rs) => return Ok(rs),
            StatementStatus::Running => {
                progress(&format!(
                    "Statement {handle} still running after {}s ({checks} checks).",
                    started.elapsed().as_secs()
                ));
                delay = (delay * 2).min(opts.poll.max);
            }
        }
    }
}

/// Runs `fut` unless a signal or the deadline comes first.
async fn interruptible<T>(opts: &RunOptions, fut: impl Future<Output = T>) -> Result<T, Stop> {
    let deadline = async {
        match opts.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = opts.cancel.cancelled() => Err(Stop::Interrupted(Interrupt::Signal)),
        () = deadline => Err(Stop::Interrupted(Interrupt::Deadline)),
        v = fut => Ok(v),
    }
}
