//! HTTP errors, already classified for the orchestrator.

use syncctl_core::{Classified, ErrorClass};

/// Longest response-body excerpt kept in an error message.
const MAX_BODY_EXCERPT: usize = 500;

/// A request failed. Messages name the service, method and path, never the query string,
/// headers or credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The server answered with a non-success status (after any retries).
    #[error("{service}: {method} {path} returned HTTP {status}{}", excerpt(body))]
    Status {
        /// The service name.
        service: String,
        /// The HTTP method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The status code.
        status: u16,
        /// A truncated excerpt of the body.
        body: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The connection failed or broke, or the request timed out.
    #[error("{service}: {method} {path} failed after {attempts} attempt(s): {message}")]
    Transport {
        /// The service name.
        service: String,
        /// The HTTP method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// What went wrong, without URLs.
        message: String,
        /// True when the request certainly never reached the server (connect failure).
        not_sent: bool,
        /// True when the failure was a timeout.
        timeout: bool,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The server's TLS certificate was refused (untrusted issuer, expired, another host's
    /// name): the same on every attempt until someone changes the URL, the trusted CAs or the
    /// server, so it is not retried.
    #[error(
        "{service}: {method} {path}: the server's TLS certificate was refused ({message}); check the URL's host name and that the server's certificate is valid and issued by a trusted CA"
    )]
    Certificate {
        /// The service name.
        service: String,
        /// The HTTP method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// What the TLS library refused, without URLs.
        message: String,
    },
    /// The circuit breaker for the service is open.
    #[error(
        "{service}: circuit breaker is open after repeated failures; next probe at {next_probe}"
    )]
    BreakerOpen {
        /// The service name.
        service: String,
        /// When a half-open probe will be allowed (RFC 3339).
        next_probe: String,
    },
    /// Obtaining credentials failed.
    #[error("{service}: could not obtain credentials: {message}")]
    Credentials {
        /// The service name.
        service: String,
        /// What went wrong.
        message: String,
        /// Whether the cause looks temporary (token endpoint unavailable).
        transient: bool,
    },
    /// The response body was not what the API documents.
    #[error("{service}: unexpected response from {method} {path}: {message}")]
    Decode {
        /// The service name.
        service: String,
        /// The HTTP method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The decoder's message.
        message: String,
    },
    /// The request could not be built (bad URL, bad header).
    #[error("{service}: invalid request: {message}")]
    InvalidRequest {
        /// The service name.
        service: String,
        /// What is wrong.
        message: String,
    },
}

fn excerpt(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

/// Truncates a body to an excerpt suitable for an error message.
pub(crate) fn body_excerpt(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.len() <= MAX_BODY_EXCERPT {
        return s.to_owned();
    }
    let mut end = MAX_BODY_EXCERPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl HttpError {
    /// The HTTP status, when the server answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request certainly never reached the server, so even a non-idempotent
    /// request may be sent again.
    #[must_use]
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            Self::Transport { not_sent: true, .. }
                | Self::BreakerOpen { .. }
                | Self::Certificate { .. }
        )
    }

    /// Whether this error is worth retrying at all (for requests that are safe to repeat).
    #[must_use]
    pub fn is_retryable_kind(&self) -> bool {
        match self {
            Self::Status { status, .. } => is_retryable_status(*status),
            Self::Transport { .. } => true,
            Self::Credentials { transient, .. } => *transient,
            _ => false,
        }
    }

    /// The response body excerpt, when the server answered.
    #[must_use]
    pub fn body(&self) -> Option<&str> {
        match self {
            Self::Status { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// Statuses that mean "try again later": 408, 425, 429 and 5xx except 501.
#[must_use]
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504) || (status > 504 && status < 600)
}

/// Whether an answer with `status` is worth asking again for a request whose definite
/// answers include `final_statuses` (see [`crate::Request::final_statuses`]): the one decision
/// the client's retries and a caller's own resend (Snowflake's `retry=true`) share.
#[must_use]
pub fn is_retryable_answer(status: u16, final_statuses: &[u16]) -> bool {
    is_retryable_status(status) && !final_statuses.contains(&status)
}

impl Classified for HttpError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Status {
                status: 401 | 403, ..
            } => ErrorClass::Auth,
            Self::Status { status: 409, .. } => ErrorClass::Conflict,
            Self::Status { status, .. } if is_retryable_status(*status) => ErrorClass::Transient,
            Self::Status { .. } | Self::InvalidRequest { .. } | Self::Certificate { .. } => {
                ErrorClass::Config
            }
            Self::Transport { timeout: true, .. }
            | Self::Transport { .. }
            | Self::BreakerOpen { .. } => ErrorClass::Transient,
            Self::Credentials {
                transient: true, ..
            } => ErrorClass::Transient,
            Self::Credentials { .. } => ErrorClass::Auth,
            Self::Decode { .. } => ErrorClass::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> HttpError {
        HttpError::Status {
            service: "x".into(),
            method: "GET".into(),
            path: "/p".into(),
            status: s,
            body: String::new(),
            attempts: 1,
        }
    }

    #[test]
    fn a_final_status_is_not_asked_again() {
        assert!(is_retryable_answer(408, &[]));
        assert!(!is_retryable_answer(408, &[408]));
        assert!(is_retryable_answer(503, &[408]));
        assert!(!is_retryable_answer(404, &[]));
    }

    #[test]
    fn classes_follow_the_exit_code_table() {
        assert_eq!(status(401).class(), ErrorClass::Auth);
        assert_eq!(status(403).class(), ErrorClass::Auth);
        assert_eq!(status(409).class(), ErrorClass::Conflict);
        assert_eq!(status(429).class(), ErrorClass::Transient);
        assert_eq!(status(503).class(), ErrorClass::Transient);
        assert_eq!(status(400).class(), ErrorClass::Config);
        assert_eq!(status(404).class(), ErrorClass::Config);
        assert!(!is_retryable_status(501));
    }

    #[test]
    fn excerpt_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(400);
        let e = body_excerpt(long.as_bytes());
        assert!(e.len() <= MAX_BODY_EXCERPT + 3 && e.ends_with('…'));
    }
}
