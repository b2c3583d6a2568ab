//! COPY INTO output: one row per file (or "0 files processed"), or validation errors.

use serde::Serialize;

use crate::SnowflakeError;
use crate::api::ResultSet;

/// Snowflake's per-file status for a file that loaded completely.
pub const LOADED: &str = "LOADED";
/// Some rows loaded, some were rejected (`ON_ERROR = CONTINUE` or `SKIP_FILE_<n>`).
pub const PARTIALLY_LOADED: &str = "PARTIALLY_LOADED";
/// Nothing loaded from the file.
pub const LOAD_FAILED: &str = "LOAD_FAILED";

/// One file's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileResult {
    /// The file (full URL or stage path).
    pub file: String,
    /// `LOADED`, `PARTIALLY_LOADED` or `LOAD_FAILED`.
    pub status: String,
    /// Rows read from the file.
    pub rows_parsed: u64,
    /// Rows written to the table.
    pub rows_loaded: u64,
    /// Rows with errors.
    pub errors_seen: u64,
    /// The first error's message.
    pub first_error: Option<String>,
    /// The line of the first error.
    pub first_error_line: Option<u64>,
    /// The column of the first error.
    pub first_error_column_name: Option<String>,
}

/// One error found by `VALIDATION_MODE = RETURN_ERRORS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// The message.
    pub error: String,
    /// The file.
    pub file: Option<String>,
    /// The line in the file.
    pub line: Option<u64>,
    /// The character position.
    pub character: Option<u64>,
    /// Snowflake's category (`parsing`, `conversion`).
    pub category: Option<String>,
    /// The error code.
    pub code: Option<String>,
    /// The SQL state.
    pub sql_state: Option<String>,
    /// The column.
    pub column_name: Option<String>,
    /// The row number in the file.
    pub row_number: Option<u64>,
}

/// What one COPY statement reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutput {
    /// One row per file.
    Files(Vec<FileResult>),
    /// "Copy executed with 0 files processed." (nothing new matched).
    NoFiles(String),
    /// The errors `VALIDATION_MODE` found (empty when the files are clean).
    Validation(Vec<ValidationError>),
}

/// Sums over all files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Files with status `LOADED`.
    pub files_loaded: u64,
    /// Files with status `PARTIALLY_LOADED`.
    pub files_partially_loaded: u64,
    /// Files with status `LOAD_FAILED`.
    pub files_failed: u64,
    /// Rows parsed in all files.
    pub rows_parsed: u64,
    /// Rows loaded from all files.
    pub rows_loaded: u64,
}

impl Totals {
    /// Totals of `files`.
    #[must_use]
    pub fn of<'a>(files: impl IntoIterator<Item = &'a FileResult>) -> Self {
        let mut t = Self::default();
        for f in files {
            match f.status.as_str() {
                LOADED => t.files_loaded += 1,
                PARTIALLY_LOADED => t.files_partially_loaded += 1,
                LOAD_FAILED => t.files_failed += 1,
                _ => {}
            }
            t.rows_parsed += f.rows_parsed;
            t.rows_loaded += f.rows_loaded;
        }
        t
    }
}

/// Reads a COPY statement's result set.
///
/// # Errors
/// [`SnowflakeError::Protocol`] when the columns are not a COPY result.
pub fn parse_copy_output(rs: &ResultSet, validation: bool) -> Result<CopyOutput, SnowflakeError> {
    let get = |row: &[Option<String>], col: Option<usize>| -> Option<String> {
        col.and_then(|i| row.get(i).cloned().flatten())
            .filter(|v| !v.is_empty())
    };
    let num = |row: &[Option<String>], col: Option<usize>| -> Option<u64> {
        get(row, col).and_then(|v| v.trim().parse().ok())
    };
    if validation {
        let Some(error) = rs.column("error") else {
            return no_files(rs).map_or_else(
                || {
                    Err(SnowflakeError::Protocol(
                        "a validation result without an ERROR column".into(),
                    ))
                },
                |_| Ok(CopyOutput::Validation(Vec::new())),
            );
        };
        let (file, line, character, category, code, sql_state, column_name, row_number) = (
            rs.column("file"),
            rs.column("line"),
            rs.column("character"),
            rs.column("category"),
            rs.column("code"),
            rs.column("sql_state"),
            rs.column("column_name"),
            rs.column("row_number"),
        );
        let errors = rs
            .rows
            .iter()
            .map(|r| ValidationError {
                error: get(r, Some(error)).unwrap_or_default(),
                file: get(r, file),
                line: num(r, line),
                character: num(r, character),
                category: get(r, category),
                code: get(r, code),
                sql_state: get(r, sql_state),
                column_name: get(r, column_name),
                row_number: num(r, row_number),
            })
            .collect();
        return Ok(CopyOutput::Validation(errors));
    }
    let Some(file) = rs.column("file") else {
        return no_files(rs).map(CopyOutput::NoFiles).ok_or_else(|| {
            SnowflakeError::Protocol(format!(
                "a COPY result without a FILE column (columns: {})",
                rs.columns.join(", ")
            ))
        });
    };
    let (status, parsed, loaded, errors, first_error, first_line, first_col) = (
        rs.column("status"),
        rs.column("rows_parsed"),
        rs.column("rows_loaded"),
        rs.column("errors_seen"),
        rs.column("first_error"),
        rs.column("first_error_line"),
        rs.column("first_error_column_name"),
    );
    let mut files = Vec::new();
    for row in &rs.rows {
        let Some(name) = get(row, Some(file)) else {
            continue;
        };
        files.push(FileResult {
            file: name,
            status: get(row, status)
                .unwrap_or_default()
                .trim()
                .to_ascii_uppercase()
                .replace(' ', "_"),
            rows_parsed: num(row, parsed).unwrap_or(0),
            rows_loaded: num(row, loaded).unwrap_or(0),
            errors_seen: num(row, errors).unwrap_or(0),
            first_error: get(row, first_error),
            first_error_line: num(row, first_line),
            first_error_column_name: get(row, first_col),
        });
    }
    if files.is_empty() {
        return Ok(CopyOutput::NoFiles(no_files(rs).unwrap_or_else(|| {
            "Copy executed with 0 files processed.".into()
        })));
    }
    Ok(CopyOutput::Files(files))
}

/// The "0 files processed" message, when that is what the result says.
fn no_files(rs: &ResultSet) -> Option<String> {
    let col = rs.column("status")?;
    let msg = rs.rows.first()?.get(col)?.clone()?;
    msg.contains("0 files processed").then_some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(columns: &[&str], rows: &[&[Option<&str>]]) -> ResultSet {
        ResultSet {
            handle: "h".into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_owned)).collect())
                .collect(),
            ..ResultSet::default()
        }
    }

    #[test]
    fn file_rows_and_totals() {
        let r = rs(
            &[
                "file",
                "status",
                "rows_parsed",
                "rows_loaded",
                "error_limit",
                "errors_seen",
                "first_error",
                "first_error_line",
                "first_error_character",
                "first_error_column_name",
            ],
            &[
                &[
                    Some("s3://b/a.json"),
                    Some("LOADED"),
                    Some("10"),
                    Some("10"),
                    Some("1"),
                    Some("0"),
                    None,
                    None,
                    None,
                    None,
                ],
                &[
                    Some("s3://b/b.json"),
                    Some("partially loaded"),
                    Some("5"),
                    Some("3"),
                    Some("5"),
                    Some("2"),
                    Some("bad json"),
                    Some("4"),
                    Some("1"),
                    Some("\"T\"[\"V\":1]"),
                ],
            ],
        );
        let CopyOutput::Files(files) = parse_copy_output(&r, false).unwrap() else {
            panic!("expected files");
        };
        assert_eq!(files[1].status, PARTIALLY_LOADED);
        assert_eq!(files[1].first_error_line, Some(4));
        let t = Totals::of(&files);
        assert_eq!(
            (
                t.files_loaded,
                t.files_partially_loaded,
                t.rows_parsed,
                t.rows_loaded
            ),
            (1, 1, 15, 13)
        );
    }

    #[test]
    fn zero_files_processed() {
        let r = rs(
            &["status"],
            &[&[Some("Copy executed with 0 files processed.")]],
        );
        assert_eq!(
            parse_copy_output(&r, false).unwrap(),
            CopyOutput::NoFiles("Copy executed with 0 files processed.".into())
        );
        assert_eq!(
            parse_copy_output(&r, true).unwrap(),
            CopyOutput::Validation(vec![])
        );
        let r = rs(&["rows"], &[]);
        assert!(parse_copy_output(&r, false).is_err());
    }
}
