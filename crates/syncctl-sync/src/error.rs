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
    /// Permanent causes (a corrupt or read-only SQLite file, a permission the server refuses)
    /// must not be retried by the orchestrator forever: only what may pass stays transient.
    fn from(e: sqlx::Error) -> Self {
        let msg = e.to_string();
        match store_error_kind(&e) {
            StoreErrorKind::Permission => Self::StoreAuth(msg),
            StoreErrorKind::Unusable => Self::StoreConfig(msg),
            StoreErrorKind::Transient => Self::Store(msg),
        }
    }
}

/// How a state-store error will behave on a retry.
#[derive(Debug, PartialEq, Eq)]
enum StoreErrorKind {
    /// Refused for lack of a permission: the same on every retry.
    Permission,
    /// The store itself cannot be used (corrupt, not a database, read-only, unopenable file).
    Unusable,
    /// May pass on a retry (network, busy, pool timeout, server restarting).
    Transient,
}

fn store_error_kind(e: &sqlx::Error) -> StoreErrorKind {
    let sqlx::Error::Database(db) = e else {
        return StoreErrorKind::Transient;
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    sqlstate_or_sqlite_kind(&code)
}

/// PostgreSQL reports a five-character SQLSTATE; SQLite its result code as a number of at most
/// four digits (extended codes keep the primary code in the low byte).
fn sqlstate_or_sqlite_kind(code: &str) -> StoreErrorKind {
    if code.len() < 5
        && let Ok(n) = code.parse::<u32>()
    {
        return match n & 0xff {
            // SQLITE_PERM, SQLITE_AUTH
            3 | 23 => StoreErrorKind::Permission,
            // SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB
            8 | 11 | 14 | 26 => StoreErrorKind::Unusable,
            _ => StoreErrorKind::Transient,
        };
    }
    match code {
        // insufficient_privilege, and class 28: invalid authorization
        "42501" => StoreErrorKind::Permission,
        c if c.starts_with("28") => StoreErrorKind::Permission,
        // read_only_sql_transaction, data corrupted, index corrupted, undefined table/column
        // (a store an older or other program changed)
        "25006" | "XX001" | "XX002" | "42P01" | "42703" => StoreErrorKind::Unusable,
        _ => StoreErrorKind::Transient,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_store_errors_are_not_transient() {
        use StoreErrorKind::*;
        // SQLite: corrupt, not a database, read-only (extended code 1032), cannot open, permission.
        for (code, kind) in [
            ("11", Unusable),
            ("26", Unusable),
            ("1032", Unusable),
            ("14", Unusable),
            ("3", Permission),
            ("5", Transient),   // SQLITE_BUSY
            ("517", Transient), // SQLITE_BUSY_SNAPSHOT
            ("42501", Permission),
            ("28P01", Permission),
            ("25006", Unusable),
            ("XX001", Unusable),
            ("40001", Transient), // serialization failure
            ("57P01", Transient), // admin shutdown
        ] {
            assert_eq!(sqlstate_or_sqlite_kind(code), kind, "code {code}");
        }
    }

    #[test]
    fn non_database_errors_stay_transient() {
        let e = sqlx::Error::PoolTimedOut;
        assert!(matches!(SyncError::from(e), SyncError::Store(_)));
    }
}
