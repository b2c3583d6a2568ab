//! Typed errors of alert settings and delivery.

use syncctl_core::{Classified, ErrorClass};

/// Why alerts or metrics could not be configured or delivered.
///
/// Messages never contain the webhook URL (its path is the secret) or the SMTP password.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A setting has an invalid value.
    #[error("{name}: {message}")]
    Invalid {
        /// The variable (and flag) at fault.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A channel is enabled but a setting it needs is missing.
    #[error("{channel} is enabled but {missing} is not set")]
    Missing {
        /// `Slack` or `email`.
        channel: &'static str,
        /// The variable (and flag) to set.
        missing: &'static str,
    },
    /// The Slack webhook refused the message.
    #[error("Slack webhook answered HTTP {status}{}", fmt_body(.body))]
    SlackStatus {
        /// The HTTP status.
        status: u16,
        /// Slack's error word (`invalid_payload`, `no_service`, …), shortened.
        body: String,
    },
    /// The Slack webhook could not be reached.
    #[error("Slack webhook unreachable: {0}")]
    SlackTransport(String),
    /// The mail server refused or could not be reached.
    #[error("email to {recipient} not sent: {message}")]
    Smtp {
        /// The recipient.
        recipient: String,
        /// What the server or the connection said.
        message: String,
    },
    /// The Pushgateway refused the push or could not be reached.
    #[error("metrics not pushed to the Pushgateway: {0}")]
    Push(String),
    /// The metrics file could not be written.
    #[error("metrics file {path} not written: {source}")]
    MetricsFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Delivery did not finish within the deadline.
    #[error("{what} not delivered within {after}; gave up so the result is not delayed")]
    Deadline {
        /// What was being delivered.
        what: String,
        /// The deadline, e.g. `5 s` or `0.5 s`.
        after: String,
    },
}

fn fmt_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl Classified for NotifyError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Invalid { .. } | Self::Missing { .. } => ErrorClass::Config,
            Self::SlackStatus { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Transient
            }
            Self::SlackStatus { .. } => ErrorClass::Config,
            Self::SlackTransport(_) | Self::Smtp { .. } | Self::Push(_) | Self::Deadline { .. } => {
                ErrorClass::Transient
            }
            Self::MetricsFile { .. } => ErrorClass::Config,
        }
    }
}
