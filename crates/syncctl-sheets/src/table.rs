//! A tab read as a table: the header row, rows by key, and the row layout writes are planned on.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use syncctl_core::{Record, RecordKey};

use crate::SheetsError;
use crate::a1::column_letters;
use crate::value::{self, ColumnType};

/// The header row: a field name per column (`None` for empty header cells, whose columns are
/// not fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Names by 0-based column.
    pub columns: Vec<Option<String>>,
}

impl Header {
    /// Parses row 1. Names are trimmed; empty cells skip their column.
    ///
    /// # Errors
    /// An empty header row, a duplicated name, or a non-text name.
    pub fn parse(tab: &str, row: &[Value]) -> Result<Self, SheetsError> {
        let mut columns = Vec::with_capacity(row.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, cell) in row.iter().enumerate() {
            let name = match cell {
                Value::String(s) if s.trim().is_empty() => None,
                Value::Null => None,
                Value::String(s) => Some(s.trim().to_owned()),
                other => value::key_text(other),
            };
            if let Some(n) = &name
                && let Some(prev) = seen.insert(n.clone(), i)
            {
                return Err(SheetsError::Config(format!(
                    "tab {tab:?}: header {n:?} appears in columns {} and {}; each column needs its own name",
                    column_letters(prev),
                    column_letters(i)
                )));
            }
            columns.push(name);
        }
        while columns.last().is_some_and(Option::is_none) {
            columns.pop();
        }
        if columns.is_empty() {
            return Err(SheetsError::Config(format!(
                "tab {tab:?} has an empty header row: row 1 must hold the field names"
            )));
        }
        Ok(Self { columns })
    }

    /// The column of a field.
    #[must_use]
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.as_deref() == Some(name))
    }

    /// Field names in column order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().filter_map(|c| c.as_deref())
    }

    /// The last column with a name (0-based).
    #[must_use]
    pub fn last_column(&self) -> usize {
        self.columns.len().saturating_sub(1)
    }
}

/// How rows are turned into records.
#[derive(Debug, Clone)]
pub struct RowRules {
    /// The tab (for messages).
    pub tab: String,
    /// The key column's name.
    pub key: String,
    /// The modified-time column's name.
    pub updated_at: Option<String>,
    /// The status column and its deleted value.
    pub deleted: Option<(String, String)>,
    /// Column types by name.
    pub types: BTreeMap<String, ColumnType>,
}

/// Where each key sits: what writes are planned on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Key → 1-based row number.
    pub rows: HashMap<String, usize>,
    /// The last row holding anything (1 = only the header).
    pub last_row: usize,
}

/// A whole tab, parsed.
#[derive(Debug, Clone)]
pub struct Table {
    /// The header as read.
    pub header: Header,
    /// Records ordered by key.
    pub records: Vec<Record>,
    /// Where they are.
    pub layout: Layout,
}

fn cell(row: &[Value], i: usize) -> &Value {
    row.get(i).unwrap_or(&Value::Null)
}

impl RowRules {
    /// Parses a whole-tab read (row 1 = header).
    ///
    /// # Errors
    /// Header problems, a missing key column, a row with values but no key, a duplicated key:
    /// each a config error naming the rows, so nothing is written from a sheet that is
    /// ambiguous.
    pub fn parse_table(&self, values: &[Vec<Value>]) -> Result<Table, SheetsError> {
        let header = Header::parse(&self.tab, values.first().map_or(&[][..], Vec::as_slice))?;
        let key_col = header
            .index(&self.key)
            .ok_or_else(|| self.missing(&self.key, &header))?;
        let cols: Vec<(usize, &str, ColumnType)> = header
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
            .map(|(i, n)| (i, n, self.types.get(n).copied().unwrap_or_default()))
            .collect();
        let upd_col = match &self.updated_at {
            Some(u) => Some(header.index(u).ok_or_else(|| self.missing(u, &header))?),
            None => None,
        };
        let del_col = match &self.deleted {
            Some((d, v)) => Some((header.index(d).ok_or_else(|| self.missing(d, &header))?, v)),
            None => None,
        };
        let mut layout = Layout {
            rows: HashMap::with_capacity(values.len()),
            last_row: 1,
        };
        let mut records = Vec::with_capacity(values.len());
        for (i, row) in values.iter().enumerate().skip(1) {
            let row_no = i + 1;
            if row.iter().all(value::is_empty) {
                continue;
            }
            layout.last_row = row_no;
            let Some(key) = value::key_text(cell(row, key_col)) else {
                return Err(SheetsError::Config(format!(
                    "tab {:?} row {row_no} has values but no key in column {} ({}); fill in the key or clear the row",
                    self.tab,
                    self.key,
                    column_letters(key_col)
                )));
            };
            if let Some(prev) = layout.rows.insert(key.clone(), row_no) {
                return Err(SheetsError::Config(format!(
                    "tab {:?}: key {key:?} appears on rows {prev} and {row_no}; each row needs its own {} so syncctl never updates the wrong one",
                    self.tab, self.key
                )));
            }
            let fields = cols
                .iter()
                .map(|(c, n, ty)| ((*n).to_owned(), value::cell_to_value(cell(row, *c), *ty)))
                .collect();
            records.push(Record {
                key: RecordKey(key),
                fields,
                updated_at: upd_col.and_then(|c| value::cell_to_time(cell(row, c))),
                deleted: del_col.is_some_and(|(c, v)| match cell(row, c) {
                    Value::String(s) => s.trim().eq_ignore_ascii_case(v),
                    _ => false,
                }),
                version: None,
            });
        }
        records.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Table {
            header,
            records,
            layout,
        })
    }

    /// The key column of a write's fresh read (`'Tab'!C:C`, row 1 = the header cell) as a
    /// layout. Rows with an empty key cell are not placed.
    ///
    /// # Errors
    /// A duplicated key.
    pub fn parse_key_column(&self, column: &[Vec<Value>]) -> Result<Layout, SheetsError> {
        let mut layout = Layout {
            rows: HashMap::with_capacity(column.len()),
            last_row: 1,
        };
        for (i, row) in column.iter().enumerate().skip(1) {
            let row_no = i + 1;
            let Some(key) = row.first().and_then(value::key_text) else {
                continue;
            };
            layout.last_row = row_no;
            if let Some(prev) = layout.rows.insert(key.clone(), row_no) {
                return Err(SheetsError::Config(format!(
                    "tab {:?}: key {key:?} appears on rows {prev} and {row_no}; each row needs its own {}",
                    self.tab, self.key
                )));
            }
        }
        Ok(layout)
    }

    /// A config error for a configured column the header lacks.
    #[must_use]
    pub fn missing(&self, name: &str, header: &Header) -> SheetsError {
        let have: Vec<&str> = header.names().collect();
        SheetsError::Config(format!(
            "tab {:?} has no column {name:?} in its header row (columns: {})",
            self.tab,
            have.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> RowRules {
        RowRules {
            tab: "Sheet1".into(),
            key: "email".into(),
            updated_at: None,
            deleted: Some(("status".into(), "deleted".into())),
            types: BTreeMap::new(),
        }
    }

    fn rows(v: Value) -> Vec<Vec<Value>> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rows_become_records_by_key_and_empty_rows_are_skipped() {
        let t = rules()
            .parse_table(&rows(json!([
                ["email", "name", "", "status"],
                ["b@x.io", "Bo"],
                [],
                ["", "", ""],
                ["a@x.io", "Al", "ignored", "deleted"],
                [],
            ])))
            .unwrap();
        assert_eq!(t.records.len(), 2);
        assert_eq!(t.records[0].key.as_str(), "a@x.io");
        assert!(t.records[0].deleted);
        assert!(!t.records[0].fields.contains_key(""));
        assert_eq!(t.records[1].fields["status"], Value::Null);
        assert_eq!(t.layout.rows["a@x.io"], 5);
        assert_eq!(t.layout.last_row, 5);
    }

    #[test]
    fn ambiguous_sheets_are_refused_with_the_rows_named() {
        let e = rules()
            .parse_table(&rows(json!([["email", "status"], ["a@x.io"], ["a@x.io"]])))
            .unwrap_err();
        assert!(e.to_string().contains("rows 2 and 3"), "{e}");
        let e = rules()
            .parse_table(&rows(json!([["email", "status"], ["", "x"]])))
            .unwrap_err();
        assert!(e.to_string().contains("row 2 has values but no key"), "{e}");
        let e = rules()
            .parse_table(&rows(json!([["mail", "status"]])))
            .unwrap_err();
        assert!(e.to_string().contains("no column \"email\""), "{e}");
        let e = rules()
            .parse_table(&rows(json!([["email", "email"]])))
            .unwrap_err();
        assert!(e.to_string().contains("columns A and B"), "{e}");
        let e = rules().parse_table(&rows(json!([]))).unwrap_err();
        assert!(e.to_string().contains("empty header row"), "{e}");
    }
}
