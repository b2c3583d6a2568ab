//! The binary's edge error: an `anyhow::Error` plus the class that decides the exit code.

use syncctl_core::{Classified, ErrorClass, ErrorInfo};

/// A command failed; `class` says how.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) class: ErrorClass,
    pub(crate) error: anyhow::Error,
    pub(crate) details: Option<serde_json::Value>,
}

impl CliError {
    /// An error of a given class.
    pub(crate) fn new(class: ErrorClass, error: impl Into<anyhow::Error>) -> Self {
        Self {
            class,
            error: error.into(),
            details: None,
        }
    }

    /// A usage error with a message.
    pub(crate) fn usage(msg: impl std::fmt::Display) -> Self {
        Self::new(ErrorClass::Usage, anyhow::anyhow!("{msg}"))
    }

    /// A config error with a message.
    pub(crate) fn config(msg: impl std::fmt::Display) -> Self {
        Self::new(ErrorClass::Config, anyhow::anyhow!("{msg}"))
    }

    /// Adds service-specific detail to the result's `error.details`.
    #[allow(dead_code)] // used by service commands as they land
    pub(crate) fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The result's `error` object.
    pub(crate) fn to_info(&self) -> ErrorInfo {
        let mut info = ErrorInfo::new(self.class, chain_message(&self.error));
        info.retryable = self
            .error
            .chain()
            .find_map(retryable_of)
            .unwrap_or_else(|| self.class.is_retryable());
        info.details.clone_from(&self.details);
        info
    }
}

impl<E: Classified> From<E> for CliError {
    fn from(e: E) -> Self {
        let class = e.class();
        let details = e.details();
        Self {
            class,
            error: anyhow::Error::new(e),
            details,
        }
    }
}

/// Extension to give any error a class at the edge: `thing().class(ErrorClass::Config)?`.
#[allow(dead_code)] // used by service commands as they land
pub(crate) trait ResultExt<T> {
    /// Wraps the error with `class`.
    fn class(self, class: ErrorClass) -> Result<T, CliError>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn class(self, class: ErrorClass) -> Result<T, CliError> {
        self.map_err(|e| CliError::new(class, e))
    }
}

/// All causes joined with ": ", skipping a cause whose text the previous one already includes
/// (thiserror's `#[error(transparent)]` and `{source}` formats repeat themselves).
pub(crate) fn chain_message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if parts.last().is_some_and(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}

fn retryable_of(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    e.downcast_ref::<syncctl_http::HttpError>()
        .map(Classified::retryable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_skips_repeats() {
        let inner = std::io::Error::other("disk full");
        let e = anyhow::Error::new(inner).context("writing state");
        assert_eq!(chain_message(&e), "writing state: disk full");
    }

    #[test]
    fn classified_errors_keep_their_class() {
        let e: CliError = syncctl_config::ConfigError::Missing {
            what: "host",
            flag: "--host",
            env: "HOST",
        }
        .into();
        assert_eq!(e.class, ErrorClass::Config);
        assert_eq!(e.to_info().message, "missing host: pass --host or set HOST");
        assert!(!e.to_info().retryable);
    }
}
