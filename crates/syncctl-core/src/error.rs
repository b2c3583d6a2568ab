//! Error classes: the one question an orchestrator asks of a failure ("should I retry?").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What kind of failure happened, from the caller's point of view.
///
/// The binary maps each class to an exit code; libraries only say which class an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Invalid flags or arguments. Do not retry.
    Usage,
    /// Invalid configuration or input data. Do not retry.
    Config,
    /// Authentication or permission refused. Do not retry.
    Auth,
    /// Unavailable, network trouble, rate-limited after retries. A retry may succeed.
    Transient,
    /// The remote job (or the sync) ran and failed.
    RemoteFailed,
    /// A wait timeout or deadline was reached.
    Timeout,
    /// Refused because something is already running or a lock is held.
    Conflict,
    /// Interrupted by SIGINT or SIGTERM.
    Cancelled,
    /// A bug in syncctl.
    Internal,
}

impl ErrorClass {
    /// Whether running the same command again could succeed without anyone changing anything.
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Timeout | Self::Conflict)
    }

    /// The snake_case name used in results and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::Config => "config",
            Self::Auth => "auth",
            Self::Transient => "transient",
            Self::RemoteFailed => "remote_failed",
            Self::Timeout => "timeout",
            Self::Conflict => "conflict",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every library error type so that the binary can classify it without knowing it.
pub trait Classified: std::error::Error + Send + Sync + 'static {
    /// The class of this error.
    fn class(&self) -> ErrorClass;

    /// Whether a retry may succeed; defaults to the class's answer.
    fn retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Service-specific detail for the result's `error.details` (for example Snowflake's
    /// `code` and `sqlState`); none by default.
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_snake_case() {
        assert_eq!(
            serde_json::to_string(&ErrorClass::RemoteFailed).unwrap(),
            "\"remote_failed\""
        );
        assert_eq!(ErrorClass::RemoteFailed.as_str(), "remote_failed");
    }

    #[test]
    fn only_transient_like_classes_are_retryable() {
        assert!(ErrorClass::Transient.is_retryable());
        assert!(!ErrorClass::Auth.is_retryable());
        assert!(!ErrorClass::Usage.is_retryable());
        assert!(!ErrorClass::RemoteFailed.is_retryable());
    }
}
