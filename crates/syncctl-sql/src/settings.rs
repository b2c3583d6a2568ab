//! The settings every SQL connector (postgres, mysql, sqlite) takes.

use secrecy::SecretString;
use serde::Deserialize;

/// `{connector: postgres|mysql|sqlite, url, object, key_column, updated_at_column, …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSettings {
    /// Connection URL (`postgres://user:pass@host/db`, `sqlite://crm.db`); a secret because it
    /// may carry a password.
    pub url: SecretString,
    /// The table, optionally schema-qualified (`crm.contacts`).
    pub object: String,
    /// The key column; defaults to the table's single-column primary key.
    #[serde(default)]
    pub key_column: Option<String>,
    /// The last-modified column used as the incremental cursor; without one every run reads
    /// the whole table.
    #[serde(default)]
    pub updated_at_column: Option<String>,
    /// A soft-delete column (boolean or timestamp) for `deletes: archive`.
    #[serde(default)]
    pub deleted_column: Option<String>,
    /// A column set to `syncctl:<sync name>` on every row syncctl writes (echo marking for
    /// triggers and audits).
    #[serde(default)]
    pub origin_column: Option<String>,
    /// Cap on records per write statement batch (default and maximum per connector).
    #[serde(default)]
    pub max_batch: Option<usize>,
}

/// Columns that settings name and the discovered schema must contain.
impl SqlSettings {
    /// `(setting name, column)` for every configured column.
    #[must_use]
    pub fn configured_columns(&self) -> Vec<(&'static str, &str)> {
        let mut v = Vec::new();
        if let Some(c) = &self.key_column {
            v.push(("key_column", c.as_str()));
        }
        if let Some(c) = &self.updated_at_column {
            v.push(("updated_at_column", c.as_str()));
        }
        if let Some(c) = &self.deleted_column {
            v.push(("deleted_column", c.as_str()));
        }
        if let Some(c) = &self.origin_column {
            v.push(("origin_column", c.as_str()));
        }
        v
    }
}
