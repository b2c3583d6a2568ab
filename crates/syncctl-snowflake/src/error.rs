//! Snowflake errors, classified for the orchestrator.

use syncctl_core::{Classified, ErrorClass};
use syncctl_http::HttpError;

/// Anything that can go wrong building or running a COPY through the SQL API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnowflakeError {
    /// A flag or argument is invalid (bad identifier, location, option); nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// A setting is missing or unusable (account, user, private key, host).
    #[error("{0}")]
    Config(String),
    /// The HTTP exchange failed (auth refused, unavailable, rate-limited after retries).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Snowflake ran the statement and rejected it (HTTP 422): missing table, bad file format,
    /// a file that failed under `ON_ERROR = ABORT_STATEMENT`.
    #[error("Snowflake rejected the statement: {message} (code {code}, SQL state {sql_state})")]
    Sql {
        /// Snowflake's message.
        message: String,
        /// Snowflake's error code (`002003`).
        code: String,
        /// The SQL state (`42S02`).
        sql_state: String,
        /// The statement handle, when Snowflake gave one.
        handle: Option<String>,
    },
    /// Snowflake cancelled the statement because it ran past its `timeout` (HTTP 408).
    #[error("Snowflake cancelled statement {handle} after its statement timeout: {message}")]
    StatementTimeout {
        /// The statement handle.
        handle: String,
        /// Snowflake's message.
        message: String,
    },
    /// A response did not have the shape the SQL API documents.
    #[error("unexpected response from the Snowflake SQL API: {0}")]
    Protocol(String),
    /// The COPY ran but files did not load completely, or validation found errors.
    #[error("{0}")]
    NotLoaded(String),
    /// The deadline or the wait timeout passed.
    #[error("{0}")]
    TimedOut(String),
    /// A signal interrupted the command.
    #[error("{0}")]
    Interrupted(String),
}

impl Classified for SnowflakeError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Usage(_) => ErrorClass::Usage,
            Self::Config(_) => ErrorClass::Config,
            Self::Http(e) => e.class(),
            Self::Sql { .. } | Self::NotLoaded(_) => ErrorClass::RemoteFailed,
            Self::StatementTimeout { .. } | Self::TimedOut(_) => ErrorClass::Timeout,
            Self::Interrupted(_) => ErrorClass::Cancelled,
            Self::Protocol(_) => ErrorClass::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Self::Http(e) => e.retryable(),
            other => other.class().is_retryable(),
        }
    }

    /// Snowflake's `code`, `sqlState` and statement handle for the result's `error.details`.
    fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::Sql {
                code,
                sql_state,
                handle,
                message,
            } => Some(serde_json::json!({
                "code": code,
                "sqlState": sql_state,
                "statementHandle": handle,
                "message": message,
            })),
            Self::StatementTimeout { handle, .. } => {
                Some(serde_json::json!({ "statementHandle": handle }))
            }
            _ => None,
        }
    }
}
