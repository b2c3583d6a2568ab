//! A1 notation: column letters, quoted tab names and the ranges the connector reads and writes.

/// The column letters of a 0-based column index (`0` → `A`, `26` → `AA`).
#[must_use]
pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + u8::try_from(rem).unwrap_or(0));
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The 0-based index of column letters (`A` → 0); `None` for anything but ASCII letters.
#[must_use]
pub fn column_index(letters: &str) -> Option<usize> {
    if letters.is_empty() || letters.len() > 4 {
        return None;
    }
    let mut n = 0usize;
    for c in letters.chars() {
        if !c.is_ascii_alphabetic() {
            return None;
        }
        n = n * 26 + (c.to_ascii_uppercase() as usize - 'A' as usize + 1);
    }
    Some(n - 1)
}

/// A tab name as it must appear in a range: always single-quoted, inner quotes doubled
/// (`Sheet 1` → `'Sheet 1'`, `Bob's` → `'Bob''s'`), which Sheets accepts for every name.
#[must_use]
pub fn quote_tab(tab: &str) -> String {
    format!("'{}'", tab.replace('\'', "''"))
}

/// The whole tab (`'Sheet1'`).
#[must_use]
pub fn whole_tab(tab: &str) -> String {
    quote_tab(tab)
}

/// One row, all columns (`'Sheet1'!1:1`); `row` is 1-based.
#[must_use]
pub fn row(tab: &str, row: usize) -> String {
    format!("{}!{row}:{row}", quote_tab(tab))
}

/// One whole column (`'Sheet1'!C:C`); `col` is 0-based.
#[must_use]
pub fn column(tab: &str, col: usize) -> String {
    let l = column_letters(col);
    format!("{}!{l}:{l}", quote_tab(tab))
}

/// A rectangle: 0-based columns `first_col..=last_col`, 1-based rows `first_row..=last_row`.
#[must_use]
pub fn cells(
    tab: &str,
    first_col: usize,
    first_row: usize,
    last_col: usize,
    last_row: usize,
) -> String {
    format!(
        "{}!{}{first_row}:{}{last_row}",
        quote_tab(tab),
        column_letters(first_col),
        column_letters(last_col)
    )
}

/// A parsed range: the tab and the bounds it names (`None` = open on that side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRange {
    /// The tab name, unquoted (`None` when the range names none: the first tab).
    pub tab: Option<String>,
    /// First column, 0-based.
    pub first_col: Option<usize>,
    /// First row, 1-based.
    pub first_row: Option<usize>,
    /// Last column, 0-based.
    pub last_col: Option<usize>,
    /// Last row, 1-based.
    pub last_row: Option<usize>,
}

/// Parses `'My tab'!A2:C`, `Sheet1!1:1`, `Sheet1!C:C`, `Sheet1!B3`, `Sheet1` or `A1:B2`.
///
/// # Errors
/// A message in Sheets' words (`Unable to parse range: …`).
pub fn parse_range(range: &str) -> Result<ParsedRange, String> {
    let bad = || format!("Unable to parse range: {range}");
    let (tab, cells) = split_tab(range).ok_or_else(bad)?;
    let Some(cells) = cells else {
        return Ok(ParsedRange {
            tab,
            first_col: None,
            first_row: None,
            last_col: None,
            last_row: None,
        });
    };
    let (a, b) = match cells.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (cells, None),
    };
    let (c1, r1) = parse_cell(a).ok_or_else(bad)?;
    let (c2, r2) = match b {
        Some(b) => parse_cell(b).ok_or_else(bad)?,
        None => (c1, r1),
    };
    if c1.is_none() && r1.is_none() {
        return Err(bad());
    }
    Ok(ParsedRange {
        tab,
        first_col: c1,
        first_row: r1,
        last_col: c2,
        last_row: r2,
    })
}

/// Splits `tab!cells`; a name without `!` that is not a cell reference is a whole tab.
fn split_tab(range: &str) -> Option<(Option<String>, Option<&str>)> {
    if let Some(rest) = range.strip_prefix('\'') {
        // Quoted name: '' is an escaped quote.
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    name.push('\'');
                    continue;
                }
                let after = &rest[i + 1..];
                return match after.strip_prefix('!') {
                    Some(cells) => Some((Some(name), Some(cells))),
                    None if after.is_empty() => Some((Some(name), None)),
                    None => None,
                };
            }
            name.push(c);
        }
        return None;
    }
    match range.split_once('!') {
        Some((t, cells)) => Some((Some(t.to_owned()), Some(cells))),
        None if parse_cell(range.split(':').next().unwrap_or(""))
            .is_some_and(|(c, r)| c.is_some() || r.is_some())
            && range.chars().any(|c| c.is_ascii_digit() || c == ':') =>
        {
            Some((None, Some(range)))
        }
        None => Some((Some(range.to_owned()), None)),
    }
}

/// `B3` → (Some(1), Some(3)); `C` → (Some(2), None); `7` → (None, Some(7)).
fn parse_cell(s: &str) -> Option<(Option<usize>, Option<usize>)> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
    let (letters, digits) = s.split_at(split);
    let col = if letters.is_empty() {
        None
    } else {
        Some(column_index(letters)?)
    };
    let row = if digits.is_empty() {
        None
    } else {
        let r: usize = digits.parse().ok()?;
        if r == 0 {
            return None;
        }
        Some(r)
    };
    Some((col, row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip() {
        for (i, l) in [
            (0, "A"),
            (25, "Z"),
            (26, "AA"),
            (51, "AZ"),
            (52, "BA"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(column_letters(i), l);
            assert_eq!(column_index(l), Some(i));
        }
        assert_eq!(column_index("a"), Some(0));
        assert_eq!(column_index("A1"), None);
    }

    #[test]
    fn ranges_quote_every_tab_name() {
        assert_eq!(row("Sheet1", 1), "'Sheet1'!1:1");
        assert_eq!(column("My tab", 2), "'My tab'!C:C");
        assert_eq!(cells("Bob's", 0, 2, 3, 5), "'Bob''s'!A2:D5");
    }

    #[test]
    fn parses_what_it_writes_and_what_sheets_returns() {
        let p = parse_range("'Bob''s'!A2:D5").unwrap();
        assert_eq!(p.tab.as_deref(), Some("Bob's"));
        assert_eq!(
            (p.first_col, p.first_row, p.last_col, p.last_row),
            (Some(0), Some(2), Some(3), Some(5))
        );
        let p = parse_range("Sheet1!1:1").unwrap();
        assert_eq!(
            (p.first_col, p.first_row, p.last_col, p.last_row),
            (None, Some(1), None, Some(1))
        );
        let p = parse_range("Sheet1!C:C").unwrap();
        assert_eq!(
            (p.first_col, p.first_row, p.last_col, p.last_row),
            (Some(2), None, Some(2), None)
        );
        let p = parse_range("Sheet1").unwrap();
        assert_eq!(p.tab.as_deref(), Some("Sheet1"));
        assert_eq!(p.first_col, None);
        let p = parse_range("'Sheet 1'").unwrap();
        assert_eq!(p.tab.as_deref(), Some("Sheet 1"));
        let p = parse_range("Sheet1!B3").unwrap();
        assert_eq!(
            (p.first_col, p.first_row, p.last_col, p.last_row),
            (Some(1), Some(3), Some(1), Some(3))
        );
        let p = parse_range("A1:B2").unwrap();
        assert_eq!(p.tab, None);
        assert!(parse_range("'unterminated!A1").is_err());
        assert!(parse_range("Sheet1!A0").is_err());
    }
}
