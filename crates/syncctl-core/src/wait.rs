//! One way to wait for remote work (an Airbyte job, a Databricks run, a Snowflake statement):
//! polls that back off, two clocks measured from the command's start (`wait_timeout` stops
//! waiting and leaves the work running; `deadline` cancels it), and what a signal does
//! (`on_kill`), with `kill_grace` bounding how long a cancellation is watched.
//!
//! The libraries own what "poll", "cancel" and "finished" mean for their service; this module
//! owns the clocks, so that every command reads its flags the same way. No I/O: only tokio's
//! clock and a cancellation token.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// After a signal the binary reports at 28 s whatever happens (Kubernetes kills at 30 s), so
/// a cancellation is watched for at most this long.
pub const MAX_KILL_GRACE: Duration = Duration::from_secs(27);

/// What SIGTERM/SIGINT does to the remote work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnKill {
    /// Cancel it and watch, up to the kill grace, for the service to confirm.
    Cancel,
    /// Leave it running.
    Leave,
}

/// How to wait. Durations are relative to the start of the wait ([`Waiter::new`]'s `started`,
/// the command's start in the binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// The first poll interval.
    pub poll_interval: Duration,
    /// The longest poll interval: the interval grows to a tenth of the time waited so far,
    /// between the two.
    pub max_poll_interval: Duration,
    /// Stop waiting after this long and leave the work running.
    pub wait_timeout: Option<Duration>,
    /// Cancel the work after this long.
    pub deadline: Option<Duration>,
    /// How long to watch a cancellation (after a signal or the deadline) before reporting it
    /// unconfirmed.
    pub kill_grace: Duration,
    /// What a signal does.
    pub on_kill: OnKill,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            max_poll_interval: Duration::from_secs(60),
            wait_timeout: None,
            deadline: None,
            kill_grace: Duration::from_secs(20),
            on_kill: OnKill::Cancel,
        }
    }
}

/// Why options cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitOptionsError {
    /// A duration that must be positive is zero.
    #[error("{0} must be longer than 0s")]
    Zero(&'static str),
    /// `kill_grace` is longer than [`MAX_KILL_GRACE`].
    #[error(
        "--kill-grace must be at most 27s (syncctl reports 28s after a signal, before Kubernetes' 30s grace ends)"
    )]
    KillGraceTooLong,
}

impl WaitOptions {
    /// Checks the durations (the flag names are the binary's; the library has no other names).
    ///
    /// # Errors
    /// A zero poll interval, wait timeout or deadline, or a kill grace over 27 s.
    pub fn validate(&self) -> Result<(), WaitOptionsError> {
        if self.poll_interval.is_zero() {
            return Err(WaitOptionsError::Zero("--poll-interval"));
        }
        if self.wait_timeout.is_some_and(|d| d.is_zero()) {
            return Err(WaitOptionsError::Zero("--wait-timeout"));
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            return Err(WaitOptionsError::Zero("--deadline"));
        }
        if self.kill_grace > MAX_KILL_GRACE {
            return Err(WaitOptionsError::KillGraceTooLong);
        }
        Ok(())
    }

    /// The poll interval after having waited `elapsed`: a tenth of it, between
    /// `poll_interval` and `max_poll_interval`.
    #[must_use]
    pub fn interval_after(&self, elapsed: Duration) -> Duration {
        let max = self.max_poll_interval.max(self.poll_interval);
        (elapsed / 10).clamp(self.poll_interval, max)
    }

    /// The pause between polls while a cancellation is watched: short, so that a confirmed
    /// cancel is seen well within the grace.
    #[must_use]
    pub fn confirm_step(&self) -> Duration {
        self.poll_interval.min(Duration::from_secs(1))
    }
}

/// Why a wait stopped before the work finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// `wait_timeout` passed: leave the work running.
    WaitTimeout,
    /// `deadline` passed: cancel the work.
    Deadline,
    /// SIGTERM/SIGINT: do what `on_kill` says.
    Signal,
}

impl Stop {
    /// Whether the work should be cancelled, given what a signal does.
    #[must_use]
    pub fn cancels(self, on_kill: OnKill) -> bool {
        match self {
            Self::WaitTimeout => false,
            Self::Deadline => true,
            Self::Signal => on_kill == OnKill::Cancel,
        }
    }
}

/// The clocks of one wait.
#[derive(Debug, Clone)]
pub struct Waiter {
    opts: WaitOptions,
    started: Instant,
    cancel: CancellationToken,
}

impl Waiter {
    /// A wait whose clocks started at `started`; `cancel` fires on SIGTERM/SIGINT.
    #[must_use]
    pub fn new(opts: WaitOptions, started: Instant, cancel: CancellationToken) -> Self {
        Self {
            opts,
            started,
            cancel,
        }
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &WaitOptions {
        &self.opts
    }

    /// What a signal does.
    #[must_use]
    pub fn on_kill(&self) -> OnKill {
        self.opts.on_kill
    }

    /// The signal token.
    #[must_use]
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Time since the clocks started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// When `wait_timeout` passes.
    #[must_use]
    pub fn wait_until(&self) -> Option<Instant> {
        self.opts.wait_timeout.map(|d| self.started + d)
    }

    /// When `deadline` passes.
    #[must_use]
    pub fn deadline_at(&self) -> Option<Instant> {
        self.opts.deadline.map(|d| self.started + d)
    }

    /// A clock that has run out now, or a signal that has fired (signal first, then the
    /// deadline, then the wait timeout).
    #[must_use]
    pub fn stopped(&self) -> Option<Stop> {
        let now = Instant::now();
        if self.cancel.is_cancelled() {
            Some(Stop::Signal)
        } else if self.deadline_at().is_some_and(|d| now >= d) {
            Some(Stop::Deadline)
        } else if self.wait_until().is_some_and(|t| now >= t) {
            Some(Stop::WaitTimeout)
        } else {
            None
        }
    }

    /// Sleeps until the next poll is due (see [`WaitOptions::interval_after`]); returns early
    /// with the reason when a clock runs out or a signal arrives.
    ///
    /// # Errors
    /// Why the wait must stop.
    pub async fn pause(&self) -> Result<(), Stop> {
        let wake = Instant::now() + self.opts.interval_after(self.elapsed());
        self.race(sleep_until(wake)).await
    }

    /// Runs `fut` unless a signal, the deadline or the wait timeout comes first.
    ///
    /// # Errors
    /// Why the wait must stop; `fut` is dropped.
    pub async fn race<T>(&self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        if let Some(stop) = self.stopped() {
            return Err(stop);
        }
        let at = |t: Option<Instant>| async move {
            match t {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Stop::Signal),
            () = at(self.deadline_at()) => Err(Stop::Deadline),
            () = at(self.wait_until()) => Err(Stop::WaitTimeout),
            v = fut => Ok(v),
        }
    }

    /// The instant a cancellation started now stops being watched.
    #[must_use]
    pub fn grace_end(&self) -> Instant {
        Instant::now() + self.opts.kill_grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> WaitOptions {
        WaitOptions {
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            ..WaitOptions::default()
        }
    }

    #[test]
    fn poll_interval_backs_off_to_the_maximum() {
        let o = opts();
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

    #[test]
    fn validation_names_the_flag() {
        assert_eq!(opts().validate(), Ok(()));
        let zero = WaitOptions {
            poll_interval: Duration::ZERO,
            ..opts()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "--poll-interval must be longer than 0s"
        );
        let zero = WaitOptions {
            deadline: Some(Duration::ZERO),
            ..opts()
        };
        assert_eq!(zero.validate(), Err(WaitOptionsError::Zero("--deadline")));
        let long = WaitOptions {
            kill_grace: Duration::from_secs(28),
            ..opts()
        };
        assert_eq!(long.validate(), Err(WaitOptionsError::KillGraceTooLong));
    }

    #[test]
    fn only_the_deadline_and_a_cancelling_signal_cancel() {
        assert!(!Stop::WaitTimeout.cancels(OnKill::Cancel));
        assert!(Stop::Deadline.cancels(OnKill::Leave));
        assert!(Stop::Signal.cancels(OnKill::Cancel));
        assert!(!Stop::Signal.cancels(OnKill::Leave));
    }

    #[tokio::test(start_paused = true)]
    async fn clocks_run_from_the_start_and_the_signal_wins() {
        let token = CancellationToken::new();
        let w = Waiter::new(
            WaitOptions {
                wait_timeout: Some(Duration::from_secs(30)),
                deadline: Some(Duration::from_secs(60)),
                ..opts()
            },
            Instant::now(),
            token.clone(),
        );
        // Polls every 5 s until the wait timeout at 30 s.
        let mut polls = 0;
        let stop = loop {
            match w.pause().await {
                Ok(()) => polls += 1,
                Err(s) => break s,
            }
        };
        assert_eq!(stop, Stop::WaitTimeout);
        assert_eq!(polls, 5);
        assert_eq!(w.elapsed(), Duration::from_secs(30));

        let w = Waiter::new(
            WaitOptions {
                deadline: Some(Duration::from_secs(10)),
                ..opts()
            },
            Instant::now(),
            token.clone(),
        );
        assert_eq!(
            w.race(std::future::pending::<()>()).await,
            Err(Stop::Deadline)
        );
        token.cancel();
        assert_eq!(w.stopped(), Some(Stop::Signal));
        assert_eq!(w.race(async { 1 }).await, Err(Stop::Signal));
    }
}
