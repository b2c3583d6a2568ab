//! QuickBooks errors: Intuit's `Fault` bodies, kept whole, and the crate's error type.

use serde::{Deserialize, Serialize};
use syncctl_core::{Classified, ErrorClass};
use syncctl_http::HttpError;

/// Intuit's error body: `{"Fault":{"Error":[{"Message","Detail","code","element"}],"type"}}`.
/// Authentication failures come lower-cased (`fault`/`error`), hence the aliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fault {
    /// The errors, usually one.
    #[serde(rename = "Error", alias = "error", default)]
    pub errors: Vec<FaultError>,
    /// `ValidationFault`, `SystemFault`, `AuthenticationFault`, `AuthorizationFault`,
    /// `ThrottlingFault` (or `AUTHENTICATION` on 401 bodies).
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// One entry of [`Fault::errors`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FaultError {
    /// Short message (`Duplicate Name Exists Error`).
    #[serde(rename = "Message", alias = "message", default)]
    pub message: String,
    /// Longer explanation.
    #[serde(rename = "Detail", alias = "detail", default)]
    pub detail: String,
    /// Intuit's error code (`6240`, `5010`, `610`, `2010`).
    #[serde(default)]
    pub code: String,
    /// The element (field) at fault, when Intuit says.
    #[serde(default)]
    pub element: String,
}

/// Stale SyncToken: someone else changed the object since it was read.
pub const CODE_STALE_OBJECT: &str = "5010";
/// Duplicate name: a Customer/Vendor/Employee already has this DisplayName.
pub const CODE_DUPLICATE_NAME: &str = "6240";
/// Object not found (or made inactive).
pub const CODE_OBJECT_NOT_FOUND: &str = "610";

impl Fault {
    /// The first error's code, or "" when the fault carries none.
    #[must_use]
    pub fn code(&self) -> &str {
        self.errors.first().map_or("", |e| e.code.as_str())
    }

    /// The first error's element (field), when named.
    #[must_use]
    pub fn element(&self) -> Option<&str> {
        self.errors
            .first()
            .map(|e| e.element.as_str())
            .filter(|e| !e.is_empty())
    }

    /// `Message: Detail (code N)` for every error, joined; never carries request values
    /// beyond what Intuit itself echoes.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.errors.is_empty() {
            return format!("{} without details", self.kind);
        }
        self.errors
            .iter()
            .map(|e| {
                let mut s = e.message.clone();
                if !e.detail.is_empty() && e.detail != e.message {
                    s.push_str(": ");
                    s.push_str(&e.detail);
                }
                if !e.code.is_empty() {
                    s.push_str(&format!(" (code {})", e.code));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether this is a data problem the same request would hit again.
    #[must_use]
    pub fn is_validation(&self) -> bool {
        self.kind.eq_ignore_ascii_case("ValidationFault")
    }

    /// Parses `{"Fault": …}` (or `{"fault": …}`) from a response body.
    #[must_use]
    pub fn from_body(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wrapper {
            #[serde(rename = "Fault", alias = "fault")]
            fault: Fault,
        }
        serde_json::from_slice::<Wrapper>(body)
            .ok()
            .map(|w| w.fault)
    }
}

/// Why a QuickBooks call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuickBooksError {
    /// A setting is missing or invalid.
    #[error("quickbooks: {0}")]
    Settings(String),
    /// The HTTP layer failed (transport, breaker, non-2xx without a Fault body).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// QuickBooks answered with a Fault.
    #[error("quickbooks: {operation} returned HTTP {status}: {}", fault.describe())]
    Fault {
        /// What we asked (`query Customer`, `batch`).
        operation: String,
        /// The HTTP status.
        status: u16,
        /// Intuit's fault.
        fault: Fault,
    },
    /// Still throttled (HTTP 429) after the client's retries.
    #[error(
        "quickbooks: {operation} still throttled (HTTP 429) after retries; QuickBooks allows 500 requests/min, 10 concurrent and 40 batch requests/min per company"
    )]
    Throttled {
        /// What we asked.
        operation: String,
    },
    /// QuickBooks answered something we cannot read.
    #[error("quickbooks: unexpected response to {operation}: {message}")]
    Decode {
        /// What we asked.
        operation: String,
        /// What was wrong.
        message: String,
    },
}

impl Classified for QuickBooksError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Settings(_) => ErrorClass::Config,
            Self::Http(e) => e.class(),
            Self::Fault { status, fault, .. } => match status {
                401 | 403 => ErrorClass::Auth,
                429 | 500 | 502 | 503 | 504 => ErrorClass::Transient,
                _ if fault.kind.contains("uthentication")
                    || fault.kind.contains("uthorization") =>
                {
                    ErrorClass::Auth
                }
                _ if fault.is_validation() => ErrorClass::Config,
                _ => ErrorClass::RemoteFailed,
            },
            Self::Throttled { .. } => ErrorClass::Transient,
            Self::Decode { .. } => ErrorClass::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_in_both_spellings() {
        let f = Fault::from_body(br#"{"Fault":{"Error":[{"Message":"Stale Object Error","Detail":"Stale Object Error : You and root were working on this at the same time.","code":"5010","element":""}],"type":"ValidationFault"},"time":"2016-04-15T09:01:18.141-07:00"}"#).unwrap();
        assert_eq!(f.code(), CODE_STALE_OBJECT);
        assert!(f.is_validation());
        assert_eq!(f.element(), None);
        assert!(f.describe().contains("(code 5010)"));
        let auth = Fault::from_body(br#"{"fault":{"error":[{"message":"message=AuthenticationFailed; errorCode=003200; statusCode=401","detail":"Token expired","code":"3200"}],"type":"AUTHENTICATION"},"time":"x"}"#).unwrap();
        assert_eq!(auth.code(), "3200");
        assert!(Fault::from_body(b"not json").is_none());
    }

    #[test]
    fn classes() {
        let fault = |status, kind: &str| QuickBooksError::Fault {
            operation: "q".into(),
            status,
            fault: Fault {
                errors: vec![],
                kind: kind.into(),
            },
        };
        assert_eq!(fault(400, "ValidationFault").class(), ErrorClass::Config);
        assert_eq!(fault(401, "AUTHENTICATION").class(), ErrorClass::Auth);
        assert_eq!(fault(403, "AuthorizationFault").class(), ErrorClass::Auth);
        assert_eq!(fault(500, "SystemFault").class(), ErrorClass::Transient);
        assert_eq!(fault(400, "SystemFault").class(), ErrorClass::RemoteFailed);
    }
}
