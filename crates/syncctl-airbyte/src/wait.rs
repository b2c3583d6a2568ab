//! Waiting for a job on the shared [`Waiter`] (polls with backoff, the wait timeout leaves the
//! job running, the deadline cancels it, a signal does what `on_kill` says), and cancelling
//! until Airbyte confirms it.

use std::time::Duration;

use syncctl_core::{OnKill, Stop, Waiter};
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::client::AirbyteClient;
use crate::error::AirbyteError;
use crate::job::{Job, Phase, describe_state};

/// Polls in a row that may fail (each after the HTTP client's own retries) before the wait
/// gives up on a job.
const MAX_POLL_FAILURES: u32 = 3;

/// How a wait ended.
#[derive(Debug)]
pub enum WaitEnd {
    /// The job finished (see its phase).
    Finished,
    /// `--wait-timeout` was reached; the job was left running.
    WaitTimedOut,
    /// `--deadline` was reached and the job was cancelled; `confirmed` when Airbyte reported
    /// it finished within the grace period.
    DeadlineReached {
        /// Whether the job was seen finished.
        confirmed: bool,
    },
    /// A signal arrived.
    Interrupted {
        /// Whether a cancel was sent (`--on-kill cancel`).
        cancel_requested: bool,
        /// Whether the job was seen finished within the grace period.
        confirmed: bool,
    },
    /// Polling failed for good.
    Failed(AirbyteError),
}

/// Sees every job snapshot (for progress display).
pub trait WaitObserver: Send + Sync {
    /// Called after each poll.
    fn on_update(&self, job: &Job);
}

/// Observes nothing.
#[derive(Debug, Default)]
pub struct NoObserver;

impl WaitObserver for NoObserver {
    fn on_update(&self, _job: &Job) {}
}

/// The end of a wait with the last snapshot of the job.
#[derive(Debug)]
pub struct Waited {
    /// The job as last seen.
    pub job: Job,
    /// Why the wait ended.
    pub end: WaitEnd,
    /// Things to tell the user (unknown states, retried attempts).
    pub warnings: Vec<String>,
}

/// Tracks state changes to log them and to warn about unknown or retrying states once.
struct StateNotes {
    last: String,
    warnings: Vec<String>,
}

impl StateNotes {
    fn see(&mut self, job: &Job) {
        if job.status == self.last {
            return;
        }
        let status = job.status.to_ascii_lowercase();
        tracing::debug!(job_id = job.id, connection_id = %job.connection_id, status = %job.status, "Airbyte job {} is {}.", job.id, describe_state(&job.status));
        if !job.state_is_known() {
            let w = format!(
                "job {} reported state {:?}, which syncctl does not know; it was treated as still running",
                job.id, job.status
            );
            tracing::warn!("{w}");
            self.warnings.push(w);
        } else if status == "incomplete" {
            let w = format!(
                "job {}: an attempt failed and Airbyte retried it (state incomplete){}",
                job.id,
                job.failure_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            tracing::warn!("{w}");
            self.warnings.push(w);
        }
        self.last.clone_from(&job.status);
    }
}

fn merge(prev: &Job, mut next: Job) -> Job {
    if next.connection_id.is_empty() {
        next.connection_id.clone_from(&prev.connection_id);
    }
    next
}

/// Waits for `job` to finish, honouring the waiter's clocks and signal.
pub async fn wait_for_job(
    client: &AirbyteClient,
    job: Job,
    waiter: &Waiter,
    observer: &dyn WaitObserver,
) -> Waited {
    let mut notes = StateNotes {
        last: String::new(),
        warnings: Vec::new(),
    };
    let mut job = job;
    notes.see(&job);
    observer.on_update(&job);
    let mut failures = 0u32;
    loop {
        if job.phase().is_terminal() {
            return Waited {
                job,
                end: WaitEnd::Finished,
                warnings: notes.warnings,
            };
        }
        let polled = match waiter.pause().await {
            Ok(()) => waiter.race(client.get_job(job.id)).await,
            Err(stop) => Err(stop),
        };
        let polled = match polled {
            Ok(p) => p,
            // A clock ran out: one last look, so that a job that just finished is reported
            // as finished rather than cancelled or left.
            Err(stop @ (Stop::Deadline | Stop::WaitTimeout)) => {
                if let Ok(next) = client.get_job(job.id).await {
                    job = merge(&job, next);
                    notes.see(&job);
                    observer.on_update(&job);
                    if job.phase().is_terminal() {
                        continue;
                    }
                }
                return stopped(client, job, waiter, stop, notes.warnings).await;
            }
            Err(Stop::Signal) => {
                return stopped(client, job, waiter, Stop::Signal, notes.warnings).await;
            }
        };
        match polled {
            Ok(next) => {
                failures = 0;
                job = merge(&job, next);
                notes.see(&job);
                observer.on_update(&job);
            }
            Err(e) if e.is_transient() && failures + 1 < MAX_POLL_FAILURES => {
                failures += 1;
                tracing::warn!(job_id = job.id, error = %e, "Could not poll the job; trying again at the next interval.");
            }
            Err(e) => {
                return Waited {
                    end: WaitEnd::Failed(AirbyteError::PollFailed {
                        job_id: job.id,
                        cause: Box::new(e),
                    }),
                    job,
                    warnings: notes.warnings,
                };
            }
        }
    }
}

async fn stopped(
    client: &AirbyteClient,
    job: Job,
    waiter: &Waiter,
    stop: Stop,
    warnings: Vec<String>,
) -> Waited {
    let grace = waiter.options().kill_grace;
    let step = waiter.options().confirm_step();
    let end = match stop {
        Stop::WaitTimeout => {
            tracing::warn!(
                job_id = job.id,
                "Wait timeout reached: leaving the job running."
            );
            return Waited {
                job,
                end: WaitEnd::WaitTimedOut,
                warnings,
            };
        }
        Stop::Deadline => {
            tracing::warn!(job_id = job.id, "Deadline reached: cancelling the job.");
            let (job, confirmed) = cancel_and_confirm(client, job, grace, step).await;
            return Waited {
                job,
                end: WaitEnd::DeadlineReached { confirmed },
                warnings,
            };
        }
        Stop::Signal if waiter.on_kill() == OnKill::Leave => {
            tracing::warn!(
                job_id = job.id,
                "Interrupted: leaving the job running (--on-kill leave)."
            );
            (
                job,
                WaitEnd::Interrupted {
                    cancel_requested: false,
                    confirmed: false,
                },
            )
        }
        Stop::Signal => {
            tracing::warn!(job_id = job.id, "Interrupted: cancelling the job.");
            let (job, confirmed) = cancel_and_confirm(client, job, grace, step).await;
            (
                job,
                WaitEnd::Interrupted {
                    cancel_requested: true,
                    confirmed,
                },
            )
        }
    };
    Waited {
        job: end.0,
        end: end.1,
        warnings,
    }
}

/// Sends a cancel and polls every `step` until the job is finished, for at most `grace`.
/// Returns the last snapshot and whether the job was seen finished.
pub async fn cancel_and_confirm(
    client: &AirbyteClient,
    job: Job,
    grace: Duration,
    step: Duration,
) -> (Job, bool) {
    let until = Instant::now() + grace;
    let mut job = job;
    match timeout_at(until, client.cancel_job(job.id)).await {
        Ok(Ok(next)) => job = merge(&job, next),
        Ok(Err(e)) => {
            // Often "already finished"; the next poll tells.
            tracing::warn!(job_id = job.id, error = %e, "The cancel request failed; checking the job.");
        }
        Err(_) => {
            tracing::warn!(
                job_id = job.id,
                "The cancel request did not finish within the grace period."
            );
            return (job, false);
        }
    }
    loop {
        if job.phase() != Phase::Active {
            tracing::info!(job_id = job.id, status = %job.status, "Airbyte confirmed the job finished.");
            return (job, true);
        }
        let wake = (Instant::now() + step).min(until);
        sleep_until(wake).await;
        if Instant::now() >= until {
            tracing::warn!(
                job_id = job.id,
                "Airbyte did not confirm the cancellation within the grace period."
            );
            return (job, false);
        }
        match timeout_at(until, client.get_job(job.id)).await {
            Ok(Ok(next)) => job = merge(&job, next),
            Ok(Err(e)) => {
                tracing::warn!(job_id = job.id, error = %e, "Could not poll the job while cancelling.")
            }
            Err(_) => return (job, false),
        }
    }
}
