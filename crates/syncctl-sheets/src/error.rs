//! The crate's typed error, classified for the orchestrator.

use syncctl_core::{Classified, ConnectorError, ErrorClass};
use syncctl_http::HttpError;

/// The connector kind, as written in config.
pub const KIND: &str = "google_sheets";

/// What went wrong talking to Google Sheets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SheetsError {
    /// Settings, credentials file or sheet layout are wrong; nothing was written.
    #[error("{0}")]
    Config(String),
    /// Google refused the credentials or the sheet is not shared with the service account.
    #[error("{0}")]
    Auth(String),
    /// Sheets answered with a status the caller treats as a whole-call failure.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// Google's `error.status` (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`), if sent.
        google_status: Option<String>,
        /// A readable message (Google's `error.message`), never a credential.
        message: String,
        /// The exit class.
        class: ErrorClass,
    },
    /// Transport, decoding or credential failures from the HTTP core.
    #[error(transparent)]
    Http(HttpError),
}

impl Classified for SheetsError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Config(_) => ErrorClass::Config,
            Self::Auth(_) => ErrorClass::Auth,
            Self::Api { class, .. } => *class,
            Self::Http(e) => e.class(),
        }
    }
}

/// Google's JSON error body: `{"error": {"code", "message", "status"}}`.
#[derive(serde::Deserialize)]
struct GoogleErrorBody {
    error: GoogleError,
}

#[derive(serde::Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: Option<String>,
}

impl From<HttpError> for SheetsError {
    fn from(e: HttpError) -> Self {
        let Some(status) = e.status() else {
            return Self::Http(e);
        };
        let parsed: Option<GoogleErrorBody> = e.body().and_then(|b| serde_json::from_str(b).ok());
        let (message, google_status) = match parsed {
            Some(b) => (b.error.message, b.error.status),
            None => (e.to_string(), None),
        };
        let class = match status {
            401 | 403 => ErrorClass::Auth,
            400 | 404 => ErrorClass::Config,
            s if syncctl_http::is_retryable_status(s) => ErrorClass::Transient,
            _ => ErrorClass::RemoteFailed,
        };
        let message = match status {
            401 => format!("Google Sheets refused the access token (HTTP 401): {message}"),
            403 => format!(
                "Google Sheets refused access (HTTP 403): {message}; share the spreadsheet with the service account's client_email as an editor"
            ),
            404 => format!(
                "Google Sheets: spreadsheet not found (HTTP 404): {message}; check GOOGLE_SHEETS_SPREADSHEET_ID / spreadsheet_id"
            ),
            429 => format!(
                "Google Sheets quota exhausted (HTTP 429) after retrying with backoff: {message}"
            ),
            s => format!("Google Sheets answered HTTP {s}: {message}"),
        };
        Self::Api {
            status,
            google_status,
            message,
            class,
        }
    }
}

impl From<SheetsError> for ConnectorError {
    fn from(e: SheetsError) -> Self {
        let message = e.to_string();
        if let SheetsError::Api { status: 429, .. } = &e {
            // Sheets quotas are per minute with no daily cap: the next run finds them open.
            return ConnectorError::rate_limited(
                KIND,
                syncctl_core::RateLimitScope::Burst,
                None,
                message,
            );
        }
        match e.class() {
            ErrorClass::Config | ErrorClass::Usage => ConnectorError::config(KIND, message),
            ErrorClass::Auth => ConnectorError::Auth {
                connector: KIND.to_owned(),
                message,
            },
            ErrorClass::Transient | ErrorClass::Timeout => {
                ConnectorError::unavailable(KIND, message)
            }
            _ => ConnectorError::failed(KIND, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str) -> HttpError {
        HttpError::Status {
            service: "google-sheets".into(),
            method: "GET".into(),
            path: "/v4/spreadsheets/x/values:batchGet".into(),
            status: code,
            body: body.into(),
            attempts: 1,
        }
    }

    #[test]
    fn google_error_bodies_become_classified_messages() {
        let e = SheetsError::from(status(
            400,
            r#"{"error":{"code":400,"message":"Unable to parse range: Nope!A1","status":"INVALID_ARGUMENT"}}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Config);
        assert!(
            e.to_string().contains("Unable to parse range: Nope!A1"),
            "{e}"
        );
        let e = SheetsError::from(status(
            403,
            r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Auth);
        assert!(e.to_string().contains("share the spreadsheet"), "{e}");
        let c = ConnectorError::from(SheetsError::from(status(429, "{}")));
        assert_eq!(c.class(), ErrorClass::Transient);
    }
}
