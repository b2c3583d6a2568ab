//! Sends an alert and metrics everywhere they are configured, concurrently, under one deadline.

use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, join_all};

use crate::{
    Alert, AlertSettings, EmailSender, MetricsSettings, NotifyError, Pushgateway, RunMetrics,
    SlackSender, write_textfile,
};

/// The outcome of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `slack`, `email`, `pushgateway` or `metrics_file`.
    pub channel: &'static str,
    /// Who or where (a recipient, a file); never the webhook URL.
    pub target: Option<String>,
    /// Whether it arrived.
    pub delivered: bool,
    /// Attempts made (1 when it worked first time).
    pub attempts: u32,
    /// Why not, when not.
    pub error: Option<String>,
}

/// Every delivery of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// In channel order: Slack, email recipients, Pushgateway, metrics file.
    pub deliveries: Vec<Delivery>,
}

impl DeliveryReport {
    /// One warning per failed delivery, for the result's `warnings`.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        self.deliveries
            .iter()
            .filter_map(|d| d.error.clone())
            .collect()
    }

    /// Whether anything was tried and everything failed.
    #[must_use]
    pub fn all_failed(&self) -> bool {
        !self.deliveries.is_empty() && self.deliveries.iter().all(|d| !d.delivered)
    }
}

fn done(channel: &'static str, target: Option<String>, r: Result<u32, NotifyError>) -> Delivery {
    match r {
        Ok(attempts) => Delivery {
            channel,
            target,
            delivered: true,
            attempts,
            error: None,
        },
        Err(e) => Delivery {
            channel,
            target,
            delivered: false,
            attempts: 0,
            error: Some(e.to_string()),
        },
    }
}

async fn within<T>(
    deadline: Duration,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, NotifyError> {
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| NotifyError::Deadline {
            what: what.to_owned(),
            after: format!("{} s", deadline.as_secs_f64()),
        })
}

/// Sends `alert` (when given) to every enabled channel and pushes/writes `metrics` (when
/// given), all at once; whatever has not finished after `deadline` is abandoned with a
/// warning, so the caller's result is never held up longer than that.
pub async fn deliver(
    alert: Option<&Alert>,
    alerts: &AlertSettings,
    metrics: Option<&RunMetrics>,
    metrics_to: &MetricsSettings,
    deadline: Duration,
) -> DeliveryReport {
    let mut jobs: Vec<BoxFuture<'_, Vec<Delivery>>> = Vec::new();
    if let Some(alert) = alert {
        if let Some(slack) = &alerts.slack {
            jobs.push(
                async move {
                    let r = match SlackSender::new(slack) {
                        Ok(s) => within(deadline, "Slack alert", s.send(alert))
                            .await
                            .and_then(|r| r),
                        Err(e) => Err(e),
                    };
                    vec![done("slack", None, r)]
                }
                .boxed(),
            );
        }
        if let Some(email) = &alerts.email {
            jobs.push(
                async move {
                    let sender = match EmailSender::new(email) {
                        Ok(s) => s,
                        Err(e) => return vec![done("email", None, Err(e))],
                    };
                    match within(deadline, "email alert", sender.send(alert)).await {
                        Ok(per_recipient) => per_recipient
                            .into_iter()
                            .map(|(to, r)| done("email", Some(to), r))
                            .collect(),
                        Err(e) => vec![done("email", None, Err(e))],
                    }
                }
                .boxed(),
            );
        }
    }
    if let Some(m) = metrics {
        if let Some(url) = &metrics_to.pushgateway {
            jobs.push(
                async move {
                    let r = match Pushgateway::new(url) {
                        Ok(p) => within(deadline, "metrics push", p.push(m))
                            .await
                            .and_then(|r| r)
                            .map(|()| 1),
                        Err(e) => Err(e),
                    };
                    vec![done("pushgateway", None, r)]
                }
                .boxed(),
            );
        }
        if let Some(path) = &metrics_to.file {
            jobs.push(
                async move {
                    let r = write_textfile(path, m).map(|()| 1);
                    vec![done("metrics_file", Some(path.display().to_string()), r)]
                }
                .boxed(),
            );
        }
    }
    DeliveryReport {
        deliveries: join_all(jobs).await.into_iter().flatten().collect(),
    }
}
