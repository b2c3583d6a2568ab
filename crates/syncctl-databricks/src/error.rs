//! Databricks errors, already classified for the orchestrator.

use syncctl_core::{Classified, ErrorClass};
use syncctl_http::HttpError;

/// A Databricks call or setting failed. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabricksError {
    /// The API answered with a Databricks error body (`error_code` + `message`).
    #[error("Databricks {method} {path} returned HTTP {status} {error_code}: {message}")]
    Api {
        /// The HTTP method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The HTTP status.
        status: u16,
        /// Databricks' `error_code` (`INVALID_PARAMETER_VALUE`, `RESOURCE_DOES_NOT_EXIST`, …).
        error_code: String,
        /// Databricks' message.
        message: String,
    },
    /// Transport, credentials, decoding or any other HTTP-level failure.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// No job has the name asked for.
    #[error("no Databricks job is named {name:?}; check the name or pass --job-id")]
    JobNotFound {
        /// The name looked up.
        name: String,
    },
    /// Several jobs have the name asked for.
    #[error(
        "job name {name:?} is ambiguous: jobs {} all have it; pass --job-id instead",
        join_ids(ids)
    )]
    AmbiguousJobName {
        /// The name looked up.
        name: String,
        /// Every job id with that name.
        ids: Vec<i64>,
    },
    /// The connection settings (host, credentials, profile) are missing or wrong.
    #[error("{0}")]
    Config(String),
    /// Credentials were refused or cannot be used.
    #[error("{0}")]
    Auth(String),
    /// The idempotency token already started a run of a different job.
    #[error(
        "idempotency token {token:?} already belongs to run {run_id} of job {actual_job_id}, not job {expected_job_id}; pass a different --idempotency-key"
    )]
    TokenOfAnotherJob {
        /// The token sent.
        token: String,
        /// The run Databricks returned.
        run_id: i64,
        /// That run's job.
        actual_job_id: i64,
        /// The job we asked to run.
        expected_job_id: i64,
    },
    /// The run ended without success, or an earlier try's run had already failed.
    #[error("{0}")]
    RunFailed(String),
    /// The wait timeout or the deadline passed, or a cancellation was not seen in time.
    #[error("{0}")]
    TimedOut(String),
    /// A signal interrupted the command.
    #[error("{0}")]
    Interrupted(String),
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error_code: Option<ErrorCode>,
    message: Option<String>,
}

/// `error_code` is a string almost everywhere, but the gateway's answer to an invalid,
/// expired or revoked token is `{"error_code": 403, "message": "Invalid access token."}`:
/// a number (which broke Databricks' own Go SDK). Both forms are read.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ErrorCode {
    Text(String),
    Number(i64),
}

impl ErrorCode {
    fn into_text(self) -> String {
        match self {
            Self::Text(t) => t,
            Self::Number(n) => n.to_string(),
        }
    }
}

impl DatabricksError {
    /// Turns an HTTP error into a Databricks API error when the body is Databricks' error
    /// object, so the message says what Databricks said.
    #[must_use]
    pub fn from_http(e: HttpError) -> Self {
        if let HttpError::Status {
            method,
            path,
            status,
            body,
            ..
        } = &e
            && let Ok(parsed) = serde_json::from_str::<ErrorBody>(body)
            && (parsed.error_code.is_some() || parsed.message.is_some())
        {
            return Self::Api {
                method: method.clone(),
                path: path.clone(),
                status: *status,
                error_code: parsed
                    .error_code
                    .map_or_else(|| status.to_string(), ErrorCode::into_text),
                message: parsed.message.unwrap_or_default(),
            };
        }
        Self::Http(e)
    }

    /// The HTTP status, when the server answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Http(e) => e.status(),
            _ => None,
        }
    }
}

impl Classified for DatabricksError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Api {
                status, error_code, ..
            } => match (*status, error_code.as_str()) {
                (401 | 403, _) | (_, "PERMISSION_DENIED" | "UNAUTHENTICATED") => ErrorClass::Auth,
                (_, "TEMPORARILY_UNAVAILABLE" | "REQUEST_LIMIT_EXCEEDED") => ErrorClass::Transient,
                (409, _) | (_, "RESOURCE_CONFLICT" | "RESOURCE_ALREADY_EXISTS") => {
                    ErrorClass::Conflict
                }
                (s, _) if syncctl_http::is_retryable_status(s) => ErrorClass::Transient,
                _ => ErrorClass::Config,
            },
            Self::Http(e) => e.class(),
            Self::JobNotFound { .. } | Self::AmbiguousJobName { .. } | Self::Config(_) => {
                ErrorClass::Config
            }
            Self::Auth(_) => ErrorClass::Auth,
            Self::TokenOfAnotherJob { .. } => ErrorClass::Conflict,
            Self::RunFailed(_) => ErrorClass::RemoteFailed,
            Self::TimedOut(_) => ErrorClass::Timeout,
            Self::Interrupted(_) => ErrorClass::Cancelled,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Self::Http(e) => e.retryable(),
            other => other.class().is_retryable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16, body: &str) -> HttpError {
        HttpError::Status {
            service: "databricks".into(),
            method: "POST".into(),
            path: "/api/2.2/jobs/run-now".into(),
            status: s,
            body: body.into(),
            attempts: 1,
        }
    }

    #[test]
    fn databricks_error_bodies_become_api_errors_with_the_right_class() {
        let e = DatabricksError::from_http(status(
            400,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Job 7 does not exist."}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Config);
        assert_eq!(
            e.to_string(),
            "Databricks POST /api/2.2/jobs/run-now returned HTTP 400 INVALID_PARAMETER_VALUE: Job 7 does not exist."
        );
        let e = DatabricksError::from_http(status(
            429,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e.retryable());
        let e = DatabricksError::from_http(status(403, r#"{"error_code":"PERMISSION_DENIED"}"#));
        assert_eq!(e.class(), ErrorClass::Auth);
        let e = DatabricksError::from_http(status(502, "<html>bad gateway</html>"));
        assert!(matches!(e, DatabricksError::Http(_)));
        assert_eq!(e.class(), ErrorClass::Transient);
    }

    #[test]
    fn an_invalid_token_with_a_numeric_error_code_is_an_auth_error_with_its_message() {
        // The body Databricks sends for an invalid, expired or revoked token.
        let e = DatabricksError::from_http(status(
            403,
            r#"{"error_code": 403, "message": "Invalid access token."}"#,
        ));
        assert!(matches!(e, DatabricksError::Api { .. }), "{e:?}");
        assert_eq!(e.class(), ErrorClass::Auth);
        assert!(!e.retryable());
        assert_eq!(
            e.to_string(),
            "Databricks POST /api/2.2/jobs/run-now returned HTTP 403 403: Invalid access token."
        );
        let e = DatabricksError::from_http(status(
            404,
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Run 9 does not exist."}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Config);
        let e = DatabricksError::from_http(status(
            503,
            r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"The service is temporarily unavailable."}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Transient);
        let e = DatabricksError::from_http(status(
            500,
            r#"{"error_code":"INTERNAL_ERROR","message":"Internal error."}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Transient);
    }

    #[test]
    fn ambiguity_lists_every_id() {
        let e = DatabricksError::AmbiguousJobName {
            name: "nightly".into(),
            ids: vec![3, 9],
        };
        assert_eq!(
            e.to_string(),
            "job name \"nightly\" is ambiguous: jobs 3, 9 all have it; pass --job-id instead"
        );
        assert_eq!(e.class(), ErrorClass::Config);
    }
}
