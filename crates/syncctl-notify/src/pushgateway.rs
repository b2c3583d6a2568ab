//! Pushes a run's metrics to a Prometheus Pushgateway.
//!
//! Grouping key: `job="syncctl"`, `command`, and `name` when known, so each sync, connection
//! set, job or table has its own series. Pushes use POST, which replaces only the metric
//! families present in the body: a failed run pushes no last-success sample, so the previous
//! one survives (PUT would replace the whole group and wipe it).

use std::time::Duration;

use base64::Engine as _;
use syncctl_http::{Body, HttpClient, Request, RetryPolicy};

use crate::{NotifyError, RunMetrics};

/// A Pushgateway at one base URL.
#[derive(Debug, Clone)]
pub struct Pushgateway {
    client: HttpClient,
}

/// The grouping path `/metrics/job/syncctl/command@base64/…/name@base64/…`; values are
/// base64url-encoded so that spaces, slashes and empty values survive.
#[must_use]
pub fn grouping_path(grouping: &[(String, String)]) -> String {
    let mut path = "/metrics/job/syncctl".to_owned();
    for (k, v) in grouping {
        let enc = if v.is_empty() {
            "=".to_owned()
        } else {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.as_bytes())
        };
        path.push_str(&format!("/{k}@base64/{enc}"));
    }
    path
}

impl Pushgateway {
    /// A client for the gateway at `base_url`.
    ///
    /// # Errors
    /// [`NotifyError::Invalid`] when the URL cannot be used.
    pub fn new(base_url: &str) -> Result<Self, NotifyError> {
        let client = HttpClient::builder("pushgateway", base_url)
            .timeout(Duration::from_secs(4))
            .connect_timeout(Duration::from_secs(2))
            .retry(RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
                max_retry_after: Duration::from_secs(2),
            })
            .build()
            .map_err(|e| NotifyError::Invalid {
                name: "PROMETHEUS_PUSHGATEWAY_URL (--pushgateway)",
                message: e.to_string(),
            })?;
        Ok(Self { client })
    }

    /// Pushes the metrics (POST: only the families in the body are replaced).
    ///
    /// # Errors
    /// [`NotifyError::Push`] when the gateway refuses or cannot be reached.
    pub async fn push(&self, m: &RunMetrics) -> Result<(), NotifyError> {
        let body = m.render(&[], None);
        // Re-pushing the same body replaces the same values: safe to repeat.
        let req = Request::post(grouping_path(&m.grouping))
            .body(Body::Raw {
                content_type: "text/plain; version=0.0.4; charset=utf-8".into(),
                bytes: body.into(),
            })
            .retry_safe();
        match self.client.send_raw(req).await {
            Ok(r) if r.status.is_success() => Ok(()),
            Ok(r) => Err(NotifyError::Push(format!(
                "HTTP {}: {}",
                r.status.as_u16(),
                r.text().trim().chars().take(200).collect::<String>()
            ))),
            Err(e) => Err(NotifyError::Push(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_values_are_base64url() {
        assert_eq!(
            grouping_path(&[
                ("command".into(), "sync run".into()),
                ("name".into(), "a/b".into())
            ]),
            "/metrics/job/syncctl/command@base64/c3luYyBydW4/name@base64/YS9i"
        );
        assert_eq!(
            grouping_path(&[("name".into(), String::new())]),
            "/metrics/job/syncctl/name@base64/="
        );
    }
}
