//! A circuit breaker whose state survives the process.
//!
//! syncctl runs once per orchestrator task, so an in-memory breaker would reset on every run
//! and protect nothing. [`BreakerState`] is plain serde data: the sync engine loads it from its
//! state store before a run and saves it after, so the next scheduled run (on another pod)
//! still sees an open breaker and probes half-open only after the cool-down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Closed, open or half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerPhase {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests fail fast until `next_probe_at`.
    Open,
    /// One probe request is allowed; its outcome closes or re-opens the breaker.
    HalfOpen,
}

/// The persisted part of a breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// Current phase.
    pub phase: BreakerPhase,
    /// Consecutive retryable failures seen while closed.
    pub consecutive_failures: u32,
    /// When the breaker last opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When an open breaker lets one probe through.
    pub next_probe_at: Option<DateTime<Utc>>,
    /// Whether the half-open probe is out (only one at a time).
    #[serde(default)]
    pub probe_in_flight: bool,
}

impl Default for BreakerState {
    fn default() -> Self {
        Self {
            phase: BreakerPhase::Closed,
            consecutive_failures: 0,
            opened_at: None,
            next_probe_at: None,
            probe_in_flight: false,
        }
    }
}

/// When to open and how long to stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker waits before a half-open probe.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(300),
        }
    }
}

/// One breaker shared by the engine (which loads and saves its state) and a connector's HTTP
/// client (which fails fast while it is open): one breaker per connector, not two.
pub type SharedBreaker = Arc<Mutex<CircuitBreaker>>;

/// A breaker: configuration plus persisted state. Callers pass `now` so tests control time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// The thresholds.
    pub config: BreakerConfig,
    /// The state to persist.
    pub state: BreakerState,
    /// Outcomes recorded in this process (not persisted): lets two users of one shared
    /// breaker (a connector's HTTP client and the engine) count each failure once.
    recorded: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::default(),
            recorded: 0,
        }
    }

    /// A breaker resumed from persisted state.
    #[must_use]
    pub fn from_state(config: BreakerConfig, state: BreakerState) -> Self {
        Self {
            config,
            state,
            recorded: 0,
        }
    }

    /// How many successes and failures were recorded on this breaker in this process. A
    /// caller that wraps a call which may record its own outcome (a connector whose HTTP client
    /// shares the breaker) compares this before and after and records only when nothing was.
    #[must_use]
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Asks to send a request. `Err` carries the time of the next probe.
    ///
    /// # Errors
    /// Returns the next probe time while the breaker is open or its probe is out.
    pub fn try_acquire(&mut self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        match self.state.phase {
            BreakerPhase::Closed => Ok(()),
            BreakerPhase::Open => {
                let at = self.state.next_probe_at.unwrap_or(now);
                if now >= at {
                    self.state.phase = BreakerPhase::HalfOpen;
                    self.state.probe_in_flight = true;
                    Ok(())
                } else {
                    Err(at)
                }
            }
            BreakerPhase::HalfOpen => {
                if self.state.probe_in_flight {
                    Err(self.state.next_probe_at.unwrap_or(now))
                } else {
                    self.state.probe_in_flight = true;
                    Ok(())
                }
            }
        }
    }

    /// Records a success: closes the breaker and resets the count.
    pub fn record_success(&mut self) {
        self.recorded += 1;
        self.state = BreakerState::default();
    }

    /// Records a retryable failure (validation rejections must not be recorded).
    pub fn record_failure(&mut self, now: DateTime<Utc>) {
        self.recorded += 1;
        match self.state.phase {
            BreakerPhase::HalfOpen => self.open(now),
            BreakerPhase::Open => {}
            BreakerPhase::Closed => {
                self.state.consecutive_failures += 1;
                if self.state.consecutive_failures >= self.config.failure_threshold {
                    self.open(now);
                }
            }
        }
    }

    /// Whether requests are currently refused.
    #[must_use]
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        match self.state.phase {
            BreakerPhase::Closed => false,
            BreakerPhase::Open => self.state.next_probe_at.is_some_and(|t| now < t),
            BreakerPhase::HalfOpen => self.state.probe_in_flight,
        }
    }

    fn open(&mut self, now: DateTime<Utc>) {
        let cooldown =
            chrono::Duration::from_std(self.config.cooldown).unwrap_or(chrono::Duration::MAX);
        self.state.phase = BreakerPhase::Open;
        self.state.opened_at = Some(now);
        self.state.next_probe_at = now.checked_add_signed(cooldown);
        self.state.probe_in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn opens_after_threshold_then_probes_once_after_cooldown() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(60),
        });
        for i in 0..3 {
            assert!(b.try_acquire(t(i)).is_ok());
            b.record_failure(t(i));
        }
        assert_eq!(b.state.phase, BreakerPhase::Open);
        assert_eq!(b.try_acquire(t(10)), Err(t(62)));
        assert!(b.try_acquire(t(62)).is_ok(), "cool-down over: one probe");
        assert!(b.try_acquire(t(62)).is_err(), "only one probe at a time");
        b.record_failure(t(63));
        assert_eq!(b.state.phase, BreakerPhase::Open);
        assert_eq!(b.state.next_probe_at, Some(t(123)));
        assert!(b.try_acquire(t(123)).is_ok());
        b.record_success();
        assert_eq!(b.state, BreakerState::default());
    }

    #[test]
    fn state_survives_a_round_trip_through_storage() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            cooldown: Duration::from_secs(60),
        });
        b.record_failure(t(0));
        let stored = serde_json::to_string(&b.state).unwrap();
        let mut resumed =
            CircuitBreaker::from_state(b.config, serde_json::from_str(&stored).unwrap());
        assert!(resumed.is_open(t(30)));
        assert!(resumed.try_acquire(t(30)).is_err());
        assert!(resumed.try_acquire(t(61)).is_ok());
    }

    #[test]
    fn success_resets_the_count() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 2,
            cooldown: Duration::from_secs(1),
        });
        b.record_failure(t(0));
        b.record_success();
        b.record_failure(t(1));
        assert_eq!(b.state.phase, BreakerPhase::Closed);
    }
}
