//! Waiting for a job: polling with backoff, two clocks (stop waiting vs cancel), and cancelling
//! on a signal until Airbyte confirms it.

use std::time::Duration;

use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::client::AirbyteClient;
use crate::error::AirbyteError;
use crate::job::{Job, Phase, describe_state};

/// Polls in a row that may fail (each after the HTTP client's own retries) before the wait
/// gives up on a job.
const MAX_POLL_FAILURES: u32 = 3;

/// What to do with the remote job when we are told to stop (SIGTERM/SIGINT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnKill {
    /// Cancel it and wait (up to the grace period) until Airbyte says it is cancelled.
    Cancel,
    /// Leave it running.
    Leave,
}

/// How to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The first poll interval.
    pub poll_interval: Duration,
    /// The longest poll interval: the interval grows to a tenth of the time waited so far,
    /// between the two.
    pub max_poll_interval: Duration,
    /// Stop waiting at this instant and leave the job running (`--wait-timeout`).
    pub wait_until: Option<Instant>,
    /// Cancel the job at this instant (`--deadline`).
    pub deadline: Option<Instant>,
    /// How long to wait for Airbyte to confirm a cancellation.
    pub kill_grace: Duration,
    /// What a signal does to the job.
    pub on_kill: OnKill,
}

impl WaitOptions {
    /// The poll interval after having waited `elapsed`.
    #[must_use]
    pub fn interval_after(&self, elapsed: Duration) -> Duration {
        let max = self.max_poll_interval.max(self.poll_interval);
        (elapsed / 10).clamp(self.poll_interval, max)
    }
}

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

/// Waits for `job` to finish, honouring both clocks and the cancellation token.
pub async fn wait_for_job(
    client: &AirbyteClient,
    job: Job,
    opts: &WaitOptions,
    cancel: &CancellationToken,
    observer: &dyn WaitObserver,
) -> Waited {
    let started = Instant::now();
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
        let mut wake = Instant::now() + opts.interval_after(started.elapsed());
        for limit in [opts.wait_until, opts.deadline].into_iter().flatten() {
            wake = wake.min(limit);
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return interrupted(client, job, opts, notes.warnings).await,
            () = sleep_until(wake) => {}
        }
        let polled = tokio::select! {
            biased;
            () = cancel.cancelled() => return interrupted(client, job, opts, notes.warnings).await,
            r = client.get_job(job.id) => r,
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
        if job.phase().is_terminal() {
            continue;
        }
        let now = Instant::now();
        if opts.deadline.is_some_and(|d| now >= d) {
            tracing::warn!(job_id = job.id, "Deadline reached: cancelling the job.");
            let (job, confirmed) = cancel_and_confirm(client, job, opts).await;
            return Waited {
                job,
                end: WaitEnd::DeadlineReached { confirmed },
                warnings: notes.warnings,
            };
        }
        if opts.wait_until.is_some_and(|t| now >= t) {
            tracing::warn!(
                job_id = job.id,
                "Wait timeout reached: leaving the job running."
            );
            return Waited {
                job,
                end: WaitEnd::WaitTimedOut,
                warnings: notes.warnings,
            };
        }
    }
}

async fn interrupted(
    client: &AirbyteClient,
    job: Job,
    opts: &WaitOptions,
    warnings: Vec<String>,
) -> Waited {
    match opts.on_kill {
        OnKill::Leave => {
            tracing::warn!(
                job_id = job.id,
                "Interrupted: leaving the job running (--on-kill leave)."
            );
            Waited {
                job,
                end: WaitEnd::Interrupted {
                    cancel_requested: false,
                    confirmed: false,
                },
                warnings,
            }
        }
        OnKill::Cancel => {
            tracing::warn!(job_id = job.id, "Interrupted: cancelling the job.");
            let (job, confirmed) = cancel_and_confirm(client, job, opts).await;
            Waited {
                job,
                end: WaitEnd::Interrupted {
                    cancel_requested: true,
                    confirmed,
                },
                warnings,
            }
        }
    }
}

/// Sends a cancel and polls until the job is finished, for at most the grace period.
/// Returns the last snapshot and whether the job was seen finished.
pub async fn cancel_and_confirm(
    client: &AirbyteClient,
    job: Job,
    opts: &WaitOptions,
) -> (Job, bool) {
    let until = Instant::now() + opts.kill_grace;
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
    let step = opts.poll_interval.min(Duration::from_secs(1));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interval_backs_off_to_the_maximum() {
        let o = WaitOptions {
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            wait_until: None,
            deadline: None,
            kill_grace: Duration::from_secs(20),
            on_kill: OnKill::Cancel,
        };
        assert_eq!(o.interval_after(Duration::ZERO), Duration::from_secs(5));
        assert_eq!(
            o.interval_after(Duration::from_secs(40)),
            Duration::from_secs(5)
        );
        assert_eq!(
            o.interval_after(Duration::from_secs(200)),
            Duration::from_secs(20)
        );
        assert_eq!(
            o.interval_after(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        let o = WaitOptions {
            poll_interval: Duration::from_secs(90),
            ..o
        };
        assert_eq!(
            o.interval_after(Duration::from_secs(3600)),
            Duration::from_secs(90)
        );
    }
}
