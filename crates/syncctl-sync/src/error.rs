//! Why a sync could not run or finish.

use syncctl_core::{Classified, ConnectorError, ErrorClass};

/// A sync-level failure. Per-record problems are not errors: they are counted and audited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The sync config is invalid; every problem is listed.
    #[error("invalid sync config: {}", problems.join("; "))]
    Config {
        /// One sentence per problem.
        problems: Vec<String>,
    },
    /// A connector call failed as a whole.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The state store failed.
    #[error("state store: {0}")]
    Store(String),
    /// The state store cannot be used as configured (bad URL, needs migration).
    #[error("state store: {0}")]
    StoreConfig(String),
    /// The state store refused the credentials.
    #[error("state store: {0}")]
    StoreAuth(String),
    /// Another run of this sync holds the lock.
    #[error("sync {sync:?} is already running ({holder}); try again when it finishes")]
    Locked {
        /// The sync.
        sync: String,
        /// Who holds it, for the message.
        holder: String,
    },
    /// A circuit breaker is open for a connector.
    #[error(
        "circuit breaker for {endpoint} is open after {failures} consecutive failures; next probe after {next_probe}"
    )]
    BreakerOpen {
        /// The connector endpoint.
        endpoint: String,
        /// Consecutive failures that opened it.
        failures: u32,
        /// When a half-open probe is allowed (RFC 3339).
        next_probe: String,
    },
    /// The mass-delete guard stopped the run before deleting anything.
    #[error(
        "mass-delete guard: {count} of {linked} linked records ({percent:.0}%) vanished from the {side}, more than max_delete_fraction {max:.0}%; nothing was deleted (if this is intended, rerun with --max-delete-fraction {suggest})"
    )]
    MassDelete {
        /// The side the records vanished from.
        side: &'static str,
        /// How many vanished.
        count: usize,
        /// Linked records on that side.
        linked: usize,
        /// `count / linked` in percent.
        percent: f64,
        /// The limit in percent.
        max: f64,
        /// A fraction that would allow it.
        suggest: String,
    },
    /// The state store belongs to other endpoints, another key or another mapping.
    #[error(
        "sync {sync:?}: the state store was built for a different binding: {}; nothing was read or written. Using it would pair records by the stored links and overwrite the wrong records. Use a new sync name (or state store) for a new pair of systems, or rerun with --rebind if the same data moved",
        differences.join("; ")
    )]
    Binding {
        /// The sync.
        sync: String,
        /// One phrase per difference.
        differences: Vec<String>,
    },
    /// Interrupted by a signal.
    #[error("interrupted; the run stopped between batches and can be run again")]
    Cancelled,
    /// A conflict id that does not exist (or is not open).
    #[error("{0}")]
    NotFound(String),
}

impl Classified for SyncError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Config { .. }
            | Self::StoreConfig(_)
            | Self::MassDelete { .. }
            | Self::Binding { .. } => ErrorClass::Config,
            Self::Connector(e) => e.class(),
            Self::Store(_) | Self::BreakerOpen { .. } => ErrorClass::Transient,
            Self::Locked { .. } => ErrorClass::Conflict,
            Self::StoreAuth(_) => ErrorClass::Auth,
            Self::Cancelled => ErrorClass::Cancelled,
            Self::NotFound(_) => ErrorClass::Usage,
        }
    }
}

impl From<sqlx::Error> for SyncError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for SyncError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::StoreConfig(format!("migration failed: {e}"))
    }
}

impl SyncError {
    /// A config error with one problem.
    #[must_use]
    pub fn config(problem: impl Into<String>) -> Self {
        Self::Config {
            problems: vec![problem.into()],
        }
    }
}
