//! One connection from start to report: reattach to what this task already started, trigger,
//! decide what "already running" means, wait, and describe the outcome.

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use syncctl_core::{Classified, IdempotencyKey, WaitOptions, Waiter};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{AirbyteClient, Trigger, pick_job};
use crate::error::AirbyteError;
use crate::job::{Job, Phase};
use crate::state::StateStore;
use crate::wait::{WaitEnd, WaitObserver, Waited, wait_for_job};

/// What to do when Airbyte says a sync of the connection is already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfRunning {
    /// Wait on the running job as if we had started it.
    Attach,
    /// Do nothing; report `skipped`.
    Skip,
    /// Fail with a conflict.
    Fail,
}

/// How to run one connection.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The 409 policy.
    pub if_running: IfRunning,
    /// How to wait; `None` returns right after the trigger (`--no-wait`).
    pub wait: Option<WaitOptions>,
    /// When the wait's clocks started (the command's start).
    pub started: Instant,
    /// Start a new sync even when this key's last job succeeded.
    pub force: bool,
}

/// The idempotency key of one connection's sync and where it is remembered.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key, scoped to the connection.
    pub key: IdempotencyKey,
    /// The local state store (`SYNCCTL_STATE_DIR`), if any.
    pub store: Option<StateStore>,
}

/// How a connection's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The job succeeded.
    Succeeded,
    /// The job failed.
    Failed,
    /// The job was cancelled (by us on a signal, or by someone else: see `cancel_requested`).
    Cancelled,
    /// A wait timeout or deadline was reached.
    TimedOut,
    /// Interrupted and told to leave the job running.
    LeftRunning,
    /// A sync was already running and `--if-running skip`.
    Skipped,
    /// Started and not waited for (`--no-wait`).
    Triggered,
    /// A sync was already running and `--if-running fail`.
    Conflict,
    /// syncctl could not do its part (see `error`).
    Error,
}

/// What happened to one connection.
#[derive(Debug)]
pub struct JobReport {
    /// The connection.
    pub connection_id: String,
    /// The job, as last seen.
    pub job: Option<Job>,
    /// The verdict.
    pub verdict: Verdict,
    /// Whether we waited on a job we did not start in this run (already running, or started
    /// by an earlier try of the same task).
    pub attached: bool,
    /// Whether an earlier try's finished job was reported instead of starting another.
    pub reused: bool,
    /// Whether the trigger's answer was lost and the job was found by listing jobs.
    pub reconciled: bool,
    /// Whether we asked Airbyte to cancel the job.
    pub cancel_requested: bool,
    /// Whether Airbyte confirmed it finished after the cancel, within the grace period.
    pub cancel_confirmed: bool,
    /// Whether a signal interrupted the wait.
    pub interrupted: bool,
    /// The scoped idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Things to tell the user.
    pub warnings: Vec<String>,
    /// Why the verdict is `error` or `conflict`.
    pub error: Option<AirbyteError>,
}

impl JobReport {
    pub(crate) fn new(connection_id: &str, idem: Option<&Idempotency>) -> Self {
        Self {
            connection_id: connection_id.to_owned(),
            job: None,
            verdict: Verdict::Error,
            attached: false,
            reused: false,
            reconciled: false,
            cancel_requested: false,
            cancel_confirmed: false,
            interrupted: false,
            idempotency_key: idem.map(|i| i.key.as_str().to_owned()),
            warnings: Vec::new(),
            error: None,
        }
    }

    fn fail(mut self, error: AirbyteError) -> Self {
        self.verdict = Verdict::Error;
        self.error = Some(error);
        self
    }

    /// The result's per-job object.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let now = Utc::now();
        let job = self.job.as_ref();
        let ts = |t: Option<chrono::DateTime<Utc>>| t.map(syncctl_core::result::format_timestamp);
        let streams: Vec<Value> = job
            .map(|j| j.streams.iter().map(|s| json!(s)).collect())
            .unwrap_or_default();
        let mut v = json!({
            "connection_id": self.connection_id,
            "job_id": job.map(|j| j.id),
            "status": job.map(|j| j.status.to_ascii_lowercase()),
            "outcome": self.verdict,
            "attached": self.attached,
            "reused": self.reused,
            "reconciled": self.reconciled,
            "attempts": job.and_then(|j| j.attempts),
            "records_synced": job.and_then(|j| j.records_synced),
            "bytes_synced": job.and_then(|j| j.bytes_synced),
            "started_at": ts(job.and_then(Job::began_at)),
            "duration_ms": job.and_then(|j| j.duration_at(now)).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            "failure_reason": job.and_then(|j| j.failure_reason.clone()),
            "streams": streams,
            "cancel_requested": self.cancel_requested,
            "idempotency_key": self.idempotency_key,
        });
        if self.cancel_requested {
            v["cancel_confirmed"] = json!(self.cancel_confirmed);
        }
        if let Some(e) = &self.error {
            v["error"] = json!({
                "class": e.class(),
                "message": e.to_string(),
            });
        }
        v
    }
}

/// Runs one connection: reattach or trigger, then wait (unless told not to).
pub async fn run_connection(
    client: &AirbyteClient,
    connection_id: &str,
    opts: &RunOptions,
    idem: Option<&Idempotency>,
    cancel: &CancellationToken,
    observer: &dyn WaitObserver,
) -> JobReport {
    let mut report = JobReport::new(connection_id, idem);
    if cancel.is_cancelled() {
        report.verdict = Verdict::Cancelled;
        report.interrupted = true;
        return report;
    }
    let store = idem.and_then(|i| i.store.as_ref().map(|s| (i, s)));

    // 1. Did an earlier try of this task already start a job?
    if let Some((idem, store)) = store {
        match previous_job(client, connection_id, idem, store).await {
            Err(e) => return report.fail(e),
            Ok(Some(job)) => {
                if let Err(e) = remember(Some((idem, store)), connection_id, client, job.id) {
                    report.warnings.push(e.to_string());
                }
                match job.phase() {
                    Phase::Active => {
                        tracing::info!(
                            connection_id,
                            job_id = job.id,
                            "Reattaching to the job an earlier try of this task started."
                        );
                        report.attached = true;
                        return finish(client, report, job, opts, cancel, observer).await;
                    }
                    Phase::Succeeded if !opts.force => {
                        tracing::info!(
                            connection_id,
                            job_id = job.id,
                            "An earlier try of this task already synced this connection; reporting that job instead of starting another (pass --force to sync again)."
                        );
                        report.reused = true;
                        report.verdict = Verdict::Succeeded;
                        report.job = Some(job);
                        return report;
                    }
                    _ => {
                        tracing::info!(connection_id, job_id = job.id, status = %job.status, "The job an earlier try started did not succeed; starting a new sync.");
                    }
                }
            }
            Ok(None) => {}
        }
    }

    // 2. Trigger. Record the intent first so that a crash before the answer can be matched.
    for round in 0..2 {
        if let Some((idem, store)) = store {
            let rec = StateStore::record(
                &idem.key,
                connection_id,
                client.base_url(),
                None,
                Some(Utc::now()),
            );
            if let Err(e) = store.save(&rec) {
                return report.fail(e);
            }
        }
        match client.trigger(connection_id).await {
            Err(e) => return report.fail(e),
            Ok(Trigger::Started { job, reconciled }) => {
                tracing::info!(
                    connection_id,
                    job_id = job.id,
                    "Started Airbyte sync job {}.",
                    job.id
                );
                report.reconciled = reconciled;
                if let Err(e) = remember(store, connection_id, client, job.id) {
                    report.warnings.push(e.to_string());
                }
                return finish(client, report, job, opts, cancel, observer).await;
            }
            Ok(Trigger::AlreadyRunning { message }) => {
                tracing::info!(connection_id, "{message}");
                match opts.if_running {
                    IfRunning::Fail => {
                        report.verdict = Verdict::Conflict;
                        report.job = client.active_job(connection_id).await.ok().flatten();
                        report.error = Some(AirbyteError::AlreadyRunning {
                            connection_id: connection_id.to_owned(),
                            message,
                        });
                        return report;
                    }
                    IfRunning::Skip => {
                        report.verdict = Verdict::Skipped;
                        report.job = client.active_job(connection_id).await.ok().flatten();
                        report.warnings.push(format!(
                            "connection {connection_id}: a sync was already running{}; skipped (--if-running skip)",
                            report.job.as_ref().map(|j| format!(" (job {})", j.id)).unwrap_or_default()
                        ));
                        return report;
                    }
                    IfRunning::Attach => match client.active_job(connection_id).await {
                        Err(e) => return report.fail(e),
                        Ok(Some(job)) => {
                            tracing::info!(
                                connection_id,
                                job_id = job.id,
                                "Attaching to the sync that is already running."
                            );
                            report.attached = true;
                            if let Err(e) = remember(store, connection_id, client, job.id) {
                                report.warnings.push(e.to_string());
                            }
                            return finish(client, report, job, opts, cancel, observer).await;
                        }
                        Ok(None) if round == 0 => {
                            tracing::info!(
                                connection_id,
                                "The running sync finished before it could be attached to; triggering again."
                            );
                        }
                        Ok(None) => {
                            return report.fail(AirbyteError::AlreadyRunning {
                                connection_id: connection_id.to_owned(),
                                message: format!(
                                    "{message}, but no running job can be found for it"
                                ),
                            });
                        }
                    },
                }
            }
        }
    }
    report
}

/// The job the state file says this key started, or that matches the recorded trigger time.
async fn previous_job(
    client: &AirbyteClient,
    connection_id: &str,
    idem: &Idempotency,
    store: &StateStore,
) -> Result<Option<Job>, AirbyteError> {
    let Some(rec) = store.load(&idem.key)? else {
        return Ok(None);
    };
    if rec.connection_id != connection_id || rec.base_url != client.base_url() {
        return Ok(None);
    }
    if let Some(job_id) = rec.job_id {
        return match client.get_job(job_id).await {
            Ok(mut job) => {
                if job.connection_id.is_empty() {
                    connection_id.clone_into(&mut job.connection_id);
                }
                Ok(Some(job))
            }
            Err(AirbyteError::JobNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
    }
    // The earlier try asked but never learned the job id (crash or lost answer).
    let Some(sent) = rec.trigger_sent_at else {
        return Ok(None);
    };
    let jobs = client
        .recent_jobs(connection_id, crate::client::RECENT_JOBS)
        .await?;
    let found = pick_job(&jobs, Some(sent));
    if let Some(j) = &found {
        tracing::info!(
            connection_id,
            job_id = j.id,
            "Matched job {} to the earlier try by its start time.",
            j.id
        );
    }
    Ok(found)
}

fn remember(
    store: Option<(&Idempotency, &StateStore)>,
    connection_id: &str,
    client: &AirbyteClient,
    job_id: i64,
) -> Result<(), AirbyteError> {
    let Some((idem, store)) = store else {
        return Ok(());
    };
    let prev = store.load(&idem.key).ok().flatten();
    let rec = StateStore::record(
        &idem.key,
        connection_id,
        client.base_url(),
        Some(job_id),
        prev.and_then(|p| p.trigger_sent_at),
    );
    store.save(&rec)
}

async fn finish(
    client: &AirbyteClient,
    mut report: JobReport,
    job: Job,
    opts: &RunOptions,
    cancel: &CancellationToken,
    observer: &dyn WaitObserver,
) -> JobReport {
    let Some(wait) = &opts.wait else {
        report.verdict = match job.phase() {
            Phase::Active => Verdict::Triggered,
            Phase::Succeeded => Verdict::Succeeded,
            Phase::Failed => Verdict::Failed,
            Phase::Cancelled => Verdict::Cancelled,
        };
        report.job = Some(job);
        return report;
    };
    let waiter = Waiter::new(wait.clone(), opts.started, cancel.clone());
    let Waited { job, end, warnings } = wait_for_job(client, job, &waiter, observer).await;
    report.warnings.extend(warnings);
    report.verdict = match end {
        WaitEnd::Finished => match job.phase() {
            Phase::Succeeded => Verdict::Succeeded,
            Phase::Cancelled => Verdict::Cancelled,
            Phase::Failed | Phase::Active => Verdict::Failed,
        },
        WaitEnd::WaitTimedOut => Verdict::TimedOut,
        WaitEnd::DeadlineReached { confirmed } => {
            report.cancel_requested = true;
            report.cancel_confirmed = confirmed;
            Verdict::TimedOut
        }
        WaitEnd::Interrupted {
            cancel_requested,
            confirmed,
        } => {
            report.interrupted = true;
            report.cancel_requested = cancel_requested;
            report.cancel_confirmed = confirmed;
            if cancel_requested {
                Verdict::Cancelled
            } else {
                Verdict::LeftRunning
            }
        }
        WaitEnd::Failed(e) => {
            report.error = Some(e);
            Verdict::Error
        }
    };
    report.job = Some(job);
    report
}

/// Reports an existing job by id and, with `wait`, waits for it (`airbyte status`).
pub async fn watch_job(
    client: &AirbyteClient,
    job_id: i64,
    wait: Option<&WaitOptions>,
    started: Instant,
    cancel: &CancellationToken,
    observer: &dyn WaitObserver,
) -> JobReport {
    let mut report = JobReport::new("", None);
    let job = match client.get_job(job_id).await {
        Ok(j) => j,
        Err(e) => return report.fail(e),
    };
    report.connection_id.clone_from(&job.connection_id);
    report.attached = true;
    let opts = RunOptions {
        if_running: IfRunning::Attach,
        wait: wait.cloned(),
        started,
        force: false,
    };
    let mut report = finish(client, report, job, &opts, cancel, observer).await;
    if report.verdict == Verdict::Triggered {
        // Not waited for and still running: the status call itself succeeded.
        report.verdict = Verdict::LeftRunning;
    }
    report
}

/// Cancels an existing job and waits up to `opts.kill_grace` (polling every
/// [`WaitOptions::confirm_step`]) for Airbyte to confirm it
/// (`airbyte cancel`). A job that already finished is reported as it is, untouched.
///
/// With `confirm` false the cancel is only sent.
pub async fn cancel_existing(
    client: &AirbyteClient,
    job_id: i64,
    opts: &WaitOptions,
    confirm: bool,
) -> JobReport {
    let mut report = JobReport::new("", None);
    let job = match client.get_job(job_id).await {
        Ok(j) => j,
        Err(e) => return report.fail(e),
    };
    report.connection_id.clone_from(&job.connection_id);
    if job.phase().is_terminal() {
        report.warnings.push(format!(
            "job {job_id} already finished ({}); nothing to cancel",
            job.status
        ));
        report.verdict = match job.phase() {
            Phase::Succeeded => Verdict::Succeeded,
            Phase::Failed | Phase::Active => Verdict::Failed,
            Phase::Cancelled => Verdict::Cancelled,
        };
        report.job = Some(job);
        return report;
    }
    if !confirm {
        report.cancel_requested = true;
        match client.cancel_job(job_id).await {
            Ok(mut next) => {
                if next.connection_id.is_empty() {
                    next.connection_id.clone_from(&job.connection_id);
                }
                report.verdict = Verdict::Triggered;
                report.job = Some(next);
            }
            Err(e) => {
                report.job = Some(job);
                return report.fail(e);
            }
        }
        return report;
    }
    let (job, confirmed) =
        crate::wait::cancel_and_confirm(client, job, opts.kill_grace, opts.confirm_step()).await;
    report.cancel_requested = true;
    report.cancel_confirmed = confirmed;
    report.verdict = if confirmed && job.phase() == Phase::Cancelled {
        Verdict::Cancelled
    } else if confirmed {
        match job.phase() {
            Phase::Succeeded => Verdict::Succeeded,
            _ => Verdict::Failed,
        }
    } else {
        Verdict::TimedOut
    };
    report.job = Some(job);
    report
}
