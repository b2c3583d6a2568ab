//! The local record of which job an idempotency key started (`SYNCCTL_STATE_DIR`), so that a
//! rerun of the same task reattaches instead of starting a second sync.
//!
//! One small JSON file per key, named by the key's UUIDv5, written atomically (temp file then
//! rename). The intent (key, connection, when we asked) is written *before* the trigger is
//! sent and the job id right after, so a crash in between still leaves the time to match the
//! connection's jobs against.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use syncctl_core::IdempotencyKey;

use crate::error::AirbyteError;

/// The `schema` of state files.
pub const STATE_SCHEMA: &str = "syncctl.airbyte.state/v1";

/// What is remembered for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Always [`STATE_SCHEMA`].
    pub schema: String,
    /// The idempotency key (already scoped to the connection).
    pub key: String,
    /// The connection.
    pub connection_id: String,
    /// The Airbyte API base the job lives on (a different deployment never matches).
    pub base_url: String,
    /// The job, once known.
    pub job_id: Option<i64>,
    /// When the trigger was sent.
    pub trigger_sent_at: Option<DateTime<Utc>>,
    /// When this record was written.
    pub updated_at: DateTime<Utc>,
}

/// A directory of state records.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Records live in `<dir>/airbyte/`.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.join("airbyte"),
        }
    }

    /// The file for `key`.
    #[must_use]
    pub fn path_for(&self, key: &IdempotencyKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.uuid()))
    }

    fn err(path: &Path, message: impl std::fmt::Display) -> AirbyteError {
        AirbyteError::State {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }

    /// The record for `key`, if any. A file that cannot be parsed is reported, not ignored:
    /// ignoring it could start a duplicate sync.
    ///
    /// # Errors
    /// [`AirbyteError::State`] when the file exists but cannot be read or parsed.
    pub fn load(&self, key: &IdempotencyKey) -> Result<Option<StateRecord>, AirbyteError> {
        let path = self.path_for(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::err(&path, e)),
        };
        let rec: StateRecord = serde_json::from_str(&text).map_err(|e| {
            Self::err(
                &path,
                format!("not a syncctl state file ({e}); delete it to start over"),
            )
        })?;
        Ok((rec.key == key.as_str()).then_some(rec))
    }

    /// Writes the record atomically.
    ///
    /// # Errors
    /// [`AirbyteError::State`] when the directory or file cannot be written.
    pub fn save(&self, rec: &StateRecord) -> Result<(), AirbyteError> {
        let key = IdempotencyKey::new(rec.key.clone());
        let path = self.path_for(&key);
        std::fs::create_dir_all(&self.dir).map_err(|e| Self::err(&self.dir, e))?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", key.uuid(), std::process::id()));
        let body = serde_json::to_vec_pretty(rec).map_err(|e| Self::err(&path, e))?;
        std::fs::write(&tmp, body).map_err(|e| Self::err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Self::err(&path, e)
        })
    }

    /// A fresh record.
    #[must_use]
    pub fn record(
        key: &IdempotencyKey,
        connection_id: &str,
        base_url: &str,
        job_id: Option<i64>,
        trigger_sent_at: Option<DateTime<Utc>>,
    ) -> StateRecord {
        StateRecord {
            schema: STATE_SCHEMA.to_owned(),
            key: key.as_str().to_owned(),
            connection_id: connection_id.to_owned(),
            base_url: base_url.to_owned(),
            job_id,
            trigger_sent_at,
            updated_at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let key = IdempotencyKey::new("airflow:d:r:t").scoped("conn");
        assert_eq!(store.load(&key).unwrap(), None);
        let rec = StateStore::record(&key, "conn", "http://h/api/v1", Some(7), Some(Utc::now()));
        store.save(&rec).unwrap();
        assert_eq!(store.load(&key).unwrap(), Some(rec));
        let other = IdempotencyKey::new("airflow:d:r:t").scoped("other");
        assert_eq!(store.load(&other).unwrap(), None);
        std::fs::write(store.path_for(&key), "{").unwrap();
        let e = store.load(&key).unwrap_err().to_string();
        assert!(e.contains("delete it"), "{e}");
        // No temp files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("airbyte"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
