//! Airbyte errors, classified for the orchestrator.

use syncctl_core::{Classified, ErrorClass};
use syncctl_http::HttpError;

/// Something went wrong talking to Airbyte or deciding what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AirbyteError {
    /// An HTTP call failed (after the retries it was allowed).
    #[error(transparent)]
    Http(#[from] HttpError),

    /// Settings are missing or unusable.
    #[error("{0}")]
    Settings(String),

    /// Airbyte refused to start a sync because one is already running for the connection.
    #[error("a sync is already running for connection {connection_id} ({message})")]
    AlreadyRunning {
        /// The connection.
        connection_id: String,
        /// What Airbyte said.
        message: String,
    },

    /// The job does not exist (or is not visible with these credentials).
    #[error("Airbyte job {job_id} was not found")]
    JobNotFound {
        /// The job id.
        job_id: i64,
    },

    /// No connection has this exact name.
    #[error("no Airbyte connection is named {name:?}{}", scope(workspaces))]
    ConnectionNotFound {
        /// The name looked for.
        name: String,
        /// The workspaces searched (empty = all visible).
        workspaces: Vec<String>,
    },

    /// More than one connection has this exact name.
    #[error("{} Airbyte connections are named {name:?} ({}); pass --connection-id instead", ids.len(), ids.join(", "))]
    AmbiguousConnection {
        /// The name looked for.
        name: String,
        /// The ids of the connections with that name.
        ids: Vec<String>,
    },

    /// The trigger's answer was lost and no job could be found afterwards; nothing was retried
    /// blindly, so whether a sync started is unknown.
    #[error(
        "could not confirm whether a sync of connection {connection_id} started: {cause}; no job \
         was found for it afterwards, so a retry will start one"
    )]
    TriggerUnconfirmed {
        /// The connection.
        connection_id: String,
        /// The last error seen.
        cause: String,
    },

    /// Polling failed repeatedly.
    #[error("lost track of Airbyte job {job_id}: {cause}")]
    PollFailed {
        /// The job.
        job_id: i64,
        /// The last error seen.
        cause: Box<AirbyteError>,
    },

    /// One or more connections' jobs failed or were cancelled outside syncctl.
    #[error("{0}")]
    JobsFailed(String),

    /// A signal interrupted the command (the jobs were cancelled or left, as said).
    #[error("{0}")]
    Interrupted(String),

    /// The wait timeout or the deadline was reached, or a cancel was not confirmed in time.
    #[error("{0}")]
    TimedOut(String),

    /// What several connections reported, of the class of the first error among them.
    #[error("{message}")]
    Connections {
        /// Every affected connection's description, joined.
        message: String,
        /// The error that decides the class.
        first: Box<AirbyteError>,
    },

    /// The local state file could not be read or written.
    #[error("state file {path}: {message}")]
    State {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

fn scope(workspaces: &[String]) -> String {
    if workspaces.is_empty() {
        String::new()
    } else {
        format!(" in workspace(s) {}", workspaces.join(", "))
    }
}

impl Classified for AirbyteError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Http(e) => e.class(),
            Self::Settings(_)
            | Self::ConnectionNotFound { .. }
            | Self::AmbiguousConnection { .. }
            | Self::JobNotFound { .. }
            | Self::State { .. } => ErrorClass::Config,
            Self::AlreadyRunning { .. } => ErrorClass::Conflict,
            Self::TriggerUnconfirmed { .. } => ErrorClass::Transient,
            Self::PollFailed { cause, .. } => cause.class(),
            Self::JobsFailed(_) => ErrorClass::RemoteFailed,
            Self::Interrupted(_) => ErrorClass::Cancelled,
            Self::TimedOut(_) => ErrorClass::Timeout,
            Self::Connections { first, .. } => first.class(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Self::Http(e) => e.retryable(),
            Self::PollFailed { cause, .. } => cause.retryable(),
            Self::Connections { first, .. } => first.retryable(),
            other => other.class().is_retryable(),
        }
    }
}

impl AirbyteError {
    /// Whether this is an authentication or permission failure (never worth polling again).
    #[must_use]
    pub fn is_auth(&self) -> bool {
        self.class() == ErrorClass::Auth
    }

    /// Whether waiting and asking again may help.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let e = AirbyteError::AlreadyRunning {
            connection_id: "c".into(),
            message: "A sync is already running for: c".into(),
        };
        assert_eq!(e.class(), ErrorClass::Conflict);
        let e = AirbyteError::AmbiguousConnection {
            name: "Stripe".into(),
            ids: vec!["a".into(), "b".into()],
        };
        assert_eq!(e.class(), ErrorClass::Config);
        assert!(e.to_string().contains("2 Airbyte connections"), "{e}");
        let e = AirbyteError::TriggerUnconfirmed {
            connection_id: "c".into(),
            cause: "connection reset".into(),
        };
        assert!(e.retryable());
        let e = AirbyteError::ConnectionNotFound {
            name: "x".into(),
            workspaces: vec!["w".into()],
        };
        assert!(e.to_string().ends_with("in workspace(s) w"), "{e}");
    }
}
