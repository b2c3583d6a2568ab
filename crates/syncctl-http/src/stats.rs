//! Process-wide request counters for metrics (`syncctl_api_requests_total`,
//! `syncctl_api_retries_total`).
//!
//! One syncctl process runs one command, so process-wide counters are exactly "this run's"
//! numbers, and no command has to thread a collector through its clients.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Counts of requests (by service and answer) and retries (by service).
#[derive(Debug, Default)]
pub struct HttpStats {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    requests: BTreeMap<(String, String), u64>,
    retries: BTreeMap<String, u64>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HttpStatsSnapshot {
    /// `(service, status) → attempts`; status is the HTTP code, or `error` when no answer came.
    pub requests: BTreeMap<(String, String), u64>,
    /// `service → retries` (resends after a failed attempt, including the one resend with fresh
    /// credentials after a 401, or a 403 from a client built with `reauth_on_forbidden`).
    pub retries: BTreeMap<String, u64>,
}

impl HttpStats {
    /// The counters every [`crate::HttpClient`] in this process records into.
    #[must_use]
    pub fn global() -> &'static HttpStats {
        static GLOBAL: OnceLock<HttpStats> = OnceLock::new();
        GLOBAL.get_or_init(HttpStats::default)
    }

    /// Counts one attempt that got `status` (or no answer: `None`).
    pub fn record_attempt(&self, service: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *c.requests.entry((service.to_owned(), status)).or_default() += 1;
    }

    /// Counts one resend.
    pub fn record_retry(&self, service: &str) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *c.retries.entry(service.to_owned()).or_default() += 1;
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> HttpStatsSnapshot {
        let c = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        HttpStatsSnapshot {
            requests: c.requests,
            retries: c.retries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_service_and_status() {
        let s = HttpStats::default();
        s.record_attempt("airbyte", Some(200));
        s.record_attempt("airbyte", Some(200));
        s.record_attempt("airbyte", None);
        s.record_retry("airbyte");
        let snap = s.snapshot();
        assert_eq!(snap.requests[&("airbyte".into(), "200".into())], 2);
        assert_eq!(snap.requests[&("airbyte".into(), "error".into())], 1);
        assert_eq!(snap.retries["airbyte"], 1);
    }
}
