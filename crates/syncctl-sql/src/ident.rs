//! SQL identifiers: parsing `schema.table` from config and quoting per dialect.
//!
//! Identifiers never come from record data: table names come from config and column names
//! from the schema the connector discovered (a configured column that the database does not
//! report is a config error before any SQL uses it). Quoting still doubles embedded quotes so
//! that an odd but real name (`"order"`, `my"col`) cannot break a statement.

use std::fmt;

/// The quoting style of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `"name"` (PostgreSQL, SQLite, standard SQL).
    DoubleQuote,
    /// `` `name` `` (MySQL, MariaDB).
    Backtick,
}

/// Quotes one identifier for `dialect`.
#[must_use]
pub fn quote(name: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::DoubleQuote => format!("\"{}\"", name.replace('"', "\"\"")),
        Dialect::Backtick => format!("`{}`", name.replace('`', "``")),
    }
}

/// A table name as configured: `contacts` or `crm.contacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema (PostgreSQL schema, MySQL database, SQLite attached database), if given.
    pub schema: Option<String>,
    /// The table.
    pub table: String,
}

impl TableName {
    /// Parses `table` or `schema.table`; parts may be double-quoted to contain dots.
    ///
    /// # Errors
    /// An empty part, more than two parts, or an unterminated quote.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut chars = s.trim().chars().peekable();
        let mut quoted = false;
        let mut was_quoted = false;
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => {
                    quoted = !quoted;
                    was_quoted = true;
                }
                '.' if !quoted => {
                    parts.push(std::mem::take(&mut cur));
                }
                c => cur.push(c),
            }
        }
        if quoted {
            return Err(format!("{s:?}: unterminated quote"));
        }
        parts.push(cur);
        if parts.iter().any(|p| p.is_empty() && !was_quoted) || parts.iter().any(String::is_empty) {
            return Err(format!("{s:?}: empty name part"));
        }
        match parts.len() {
            1 => Ok(Self {
                schema: None,
                table: parts.remove(0),
            }),
            2 => {
                let table = parts.remove(1);
                Ok(Self {
                    schema: Some(parts.remove(0)),
                    table,
                })
            }
            _ => Err(format!("{s:?}: write a table as `table` or `schema.table`")),
        }
    }

    /// The quoted, qualified name for `dialect`.
    #[must_use]
    pub fn quoted(&self, dialect: Dialect) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote(s, dialect), quote(&self.table, dialect)),
            None => quote(&self.table, dialect),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote("a\"b", Dialect::DoubleQuote), "\"a\"\"b\"");
        assert_eq!(quote("a`b", Dialect::Backtick), "`a``b`");
    }

    #[test]
    fn table_names() {
        let t = TableName::parse("crm.contacts").unwrap();
        assert_eq!(t.schema.as_deref(), Some("crm"));
        assert_eq!(t.quoted(Dialect::DoubleQuote), "\"crm\".\"contacts\"");
        assert_eq!(
            TableName::parse("\"a.b\"").unwrap().table,
            "a.b",
            "quoted dots stay in the name"
        );
        for bad in ["", "a.", ".b", "a.b.c", "\"x"] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
    }
}
