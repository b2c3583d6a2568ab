//! The connector's settings block and the environment variables that fill its gaps.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

use crate::SheetsError;
use crate::value::ColumnType;

/// The default Sheets API origin.
pub const DEFAULT_BASE_URL: &str = "https://sheets.googleapis.com";

/// The tab used when the config names none.
pub const DEFAULT_TAB: &str = "Sheet1";

/// The value a status column gets when a record is archived, by default.
pub const DEFAULT_DELETED_VALUE: &str = "deleted";

/// `{connector: google_sheets, spreadsheet_id, object (the tab), key_column, …}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SheetsSettings {
    /// The tab (the object); default `Sheet1`.
    #[serde(default)]
    pub object: Option<String>,
    /// Same as `object`, for readers who think in tabs.
    #[serde(default)]
    pub tab: Option<String>,
    /// The spreadsheet id (default `GOOGLE_SHEETS_SPREADSHEET_ID`).
    #[serde(default)]
    pub spreadsheet_id: Option<String>,
    /// The service-account key JSON, or a path to it (default `GOOGLE_SHEETS_CREDENTIALS_JSON`).
    #[serde(default)]
    pub credentials_json: Option<SecretString>,
    /// The token endpoint (default `GOOGLE_OAUTH_TOKEN_URL`, else the key's `token_uri`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// `scheme://host:port` of the API (default `GOOGLE_SHEETS_BASE_URL`, else Google's).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The header of the column that identifies rows (default `id` if the header has it,
    /// else the first column).
    #[serde(default)]
    pub key_column: Option<String>,
    /// A column holding each row's modified time (serial number or RFC 3339 text).
    #[serde(default)]
    pub updated_at_column: Option<String>,
    /// A status column: archiving a record writes `deleted_value` there, and reads report rows
    /// holding it as deleted.
    #[serde(default)]
    pub deleted_column: Option<String>,
    /// What `deleted_column` holds for deleted rows (default `deleted`).
    #[serde(default)]
    pub deleted_value: Option<String>,
    /// Column types by header name (`date`, `timestamp`, `number`, `boolean`, `text`).
    #[serde(default)]
    pub column_types: BTreeMap<String, ColumnType>,
    /// Client-side pacing (Google's per-user quota is 60 reads and 60 writes a minute).
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// The header columns the sync uses (default: every column). Other columns are left
    /// alone, and each run names them in a warning, so a column added by hand is not ignored
    /// without a word.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct ResolvedSettings {
    /// The tab.
    pub tab: String,
    /// The spreadsheet id.
    pub spreadsheet_id: String,
    /// The key JSON or path.
    pub credentials_json: SecretString,
    /// Token endpoint override.
    pub token_url: Option<String>,
    /// API origin, no trailing slash.
    pub base_url: String,
    /// Key column, when configured.
    pub key_column: Option<String>,
    /// Modified-time column.
    pub updated_at_column: Option<String>,
    /// Status column.
    pub deleted_column: Option<String>,
    /// Its deleted value.
    pub deleted_value: String,
    /// Column types.
    pub column_types: BTreeMap<String, ColumnType>,
    /// Requests a minute.
    pub requests_per_minute: u32,
    /// The columns the sync uses, when limited.
    pub columns: Option<Vec<String>>,
}

/// Checks `scheme://host[:port]` with nothing after it.
///
/// # Errors
/// [`SheetsError::Config`] saying what is wrong.
pub fn check_base_url(url: &str) -> Result<String, SheetsError> {
    syncctl_config::parse_origin_url("GOOGLE_SHEETS_BASE_URL / base_url", url)
        .map_err(|e| SheetsError::Config(e.to_string()))
}

impl SheetsSettings {
    /// Applies defaults: settings first, then `env` (`GOOGLE_SHEETS_*`), then built-ins.
    ///
    /// # Errors
    /// Missing spreadsheet id or credentials, conflicting `object`/`tab`, a bad base URL.
    pub fn resolve(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        _base_dir: &Path,
    ) -> Result<ResolvedSettings, SheetsError> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let tab = match (nonempty(self.object), nonempty(self.tab)) {
            (Some(o), Some(t)) if o != t => {
                return Err(SheetsError::Config(format!(
                    "object {o:?} and tab {t:?} disagree; set one of them"
                )));
            }
            (Some(o), _) => o,
            (None, Some(t)) => t,
            (None, None) => DEFAULT_TAB.to_owned(),
        };
        let spreadsheet_id = nonempty(self.spreadsheet_id)
            .or_else(|| nonempty(env("GOOGLE_SHEETS_SPREADSHEET_ID")))
            .ok_or_else(|| {
                SheetsError::Config(
                    "no spreadsheet: set GOOGLE_SHEETS_SPREADSHEET_ID or spreadsheet_id (the id in the sheet's URL, /spreadsheets/d/<id>/)".into(),
                )
            })?;
        if !spreadsheet_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SheetsError::Config(format!(
                "spreadsheet id {spreadsheet_id:?} is not a Sheets id (letters, digits, '-' and '_')"
            )));
        }
        let credentials_json = match self.credentials_json {
            Some(c) => c,
            None => env("GOOGLE_SHEETS_CREDENTIALS_JSON")
                .filter(|s| !s.trim().is_empty())
                .map(SecretString::from)
                .ok_or_else(|| {
                    SheetsError::Config(
                        "no credentials: set GOOGLE_SHEETS_CREDENTIALS_JSON to a service-account key (its JSON, or a path to it)".into(),
                    )
                })?,
        };
        let base_url = check_base_url(
            &nonempty(self.base_url)
                .or_else(|| nonempty(env("GOOGLE_SHEETS_BASE_URL")))
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
        )?;
        let token_url =
            nonempty(self.token_url).or_else(|| nonempty(env("GOOGLE_OAUTH_TOKEN_URL")));
        if let Some(t) = &token_url
            && !(t.starts_with("https://") || t.starts_with("http://"))
        {
            return Err(SheetsError::Config(format!(
                "token URL {t:?} is not an http(s) URL"
            )));
        }
        let rpm = self.requests_per_minute.unwrap_or(60);
        if rpm == 0 {
            return Err(SheetsError::Config(
                "requests_per_minute must be at least 1".into(),
            ));
        }
        let columns = match self.columns {
            Some(c) => {
                let c: Vec<String> = c.iter().map(|n| n.trim().to_owned()).collect();
                if c.is_empty() || c.iter().any(String::is_empty) {
                    return Err(SheetsError::Config(
                        "columns: list the header names the sync uses (none may be empty), or leave it out for every column".into(),
                    ));
                }
                Some(c)
            }
            None => None,
        };
        Ok(ResolvedSettings {
            columns,
            tab,
            spreadsheet_id,
            credentials_json,
            token_url,
            base_url,
            key_column: nonempty(self.key_column),
            updated_at_column: nonempty(self.updated_at_column),
            deleted_column: nonempty(self.deleted_column),
            deleted_value: self
                .deleted_value
                .unwrap_or_else(|| DEFAULT_DELETED_VALUE.to_owned()),
            column_types: self.column_types,
            requests_per_minute: rpm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "GOOGLE_SHEETS_SPREADSHEET_ID" => Some("abc_DEF-123".into()),
            "GOOGLE_SHEETS_CREDENTIALS_JSON" => Some("/nonexistent/key.json".into()),
            _ => None,
        }
    }

    #[test]
    fn environment_fills_the_gaps_and_the_tab_defaults_to_sheet1() {
        let r = SheetsSettings::default()
            .resolve(&env, Path::new("."))
            .unwrap();
        assert_eq!(r.tab, "Sheet1");
        assert_eq!(r.spreadsheet_id, "abc_DEF-123");
        assert_eq!(r.base_url, DEFAULT_BASE_URL);
        assert_eq!(r.deleted_value, "deleted");
    }

    #[test]
    fn base_urls_have_no_path() {
        assert_eq!(
            check_base_url("http://127.0.0.1:4010/").unwrap(),
            "http://127.0.0.1:4010"
        );
        assert!(check_base_url("http://127.0.0.1:4010/v4").is_err());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("https://user:pw@x").is_err());
    }

    #[test]
    fn missing_spreadsheet_is_a_config_error_naming_the_variable() {
        let e = SheetsSettings::default()
            .resolve(&|_| None, Path::new("."))
            .unwrap_err();
        assert!(
            e.to_string().contains("GOOGLE_SHEETS_SPREADSHEET_ID"),
            "{e}"
        );
    }
}
