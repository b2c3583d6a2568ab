//! Date partitions: `--partition 'date={date}/'` expanded for `--date` or a date range.

use chrono::{Duration, NaiveDate};

use crate::SnowflakeError;
use crate::quote::{check_path_chars, shown};

/// Most partitions one command may expand to (one COPY statement each, at least).
pub const MAX_PARTITIONS: usize = 1000;

/// Snowflake forgets a file's load status after this many days; older files are "uncertain"
/// and silently skipped unless `LOAD_UNCERTAIN_FILES = TRUE`.
pub const LOAD_METADATA_DAYS: i64 = 64;

/// The default template: the seed's `date=2025-10-30/` folders.
pub const DEFAULT_TEMPLATE: &str = "date={date}/";

/// The placeholders a template may use.
const PLACEHOLDERS: [&str; 6] = ["date", "ds", "date_nodash", "yyyy", "mm", "dd"];

/// A partition path template such as `date={date}/` or `{yyyy}/{mm}/{dd}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTemplate(String);

/// One partition: the path under the location and the date it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// `date=2025-10-30/`.
    pub path: String,
    /// The date, when the template has one.
    pub date: Option<NaiveDate>,
}

impl PartitionTemplate {
    /// Validates a template: known `{placeholders}` only, no leading `/`, no characters that
    /// could leave a SQL literal.
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`].
    pub fn parse(text: &str) -> Result<Self, SnowflakeError> {
        check_path_chars("partition template", text)?;
        if text.starts_with('/') {
            return Err(SnowflakeError::Usage(format!(
                "invalid partition template {}: it is a path under --from, so it must not start with /",
                shown(text)
            )));
        }
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                SnowflakeError::Usage(format!(
                    "invalid partition template {}: unclosed {{",
                    shown(text)
                ))
            })?;
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(SnowflakeError::Usage(format!(
                    "invalid partition template {}: unknown placeholder {{{name}}}; use {}",
                    shown(text),
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                )));
            }
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(SnowflakeError::Usage(format!(
                "invalid partition template {}: stray }}",
                shown(text)
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// Whether the template needs a date.
    #[must_use]
    pub fn has_date(&self) -> bool {
        self.0.contains('{')
    }

    /// The template text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path for one date.
    #[must_use]
    pub fn render(&self, date: NaiveDate) -> String {
        self.0
            .replace("{date}", &date.format("%Y-%m-%d").to_string())
            .replace("{ds}", &date.format("%Y-%m-%d").to_string())
            .replace("{date_nodash}", &date.format("%Y%m%d").to_string())
            .replace("{yyyy}", &date.format("%Y").to_string())
            .replace("{mm}", &date.format("%m").to_string())
            .replace("{dd}", &date.format("%d").to_string())
    }

    /// The partitions for the dates asked for: one per day from `from` to `to` inclusive,
    /// or the template itself when it has no date placeholder (and no dates were given).
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`] when dates are missing, unexpected, reversed or too many.
    pub fn expand(
        &self,
        dates: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Vec<Partition>, SnowflakeError> {
        match (self.has_date(), dates) {
            (false, None) => Ok(vec![Partition {
                path: self.0.clone(),
                date: None,
            }]),
            (false, Some(_)) => Err(SnowflakeError::Usage(format!(
                "the partition template {} has no {{date}} placeholder, so --date/--from-date/--to-date cannot be used with it",
                shown(&self.0)
            ))),
            (true, None) => Err(SnowflakeError::Usage(format!(
                "the partition template {} needs a date: pass --date YYYY-MM-DD or --from-date/--to-date (or --partition '' to load the whole location)",
                shown(&self.0)
            ))),
            (true, Some((from, to))) => {
                if to < from {
                    return Err(SnowflakeError::Usage(format!(
                        "--to-date {to} is before --from-date {from}"
                    )));
                }
                let days = usize::try_from((to - from).num_days()).unwrap_or(usize::MAX);
                if days >= MAX_PARTITIONS {
                    return Err(SnowflakeError::Usage(format!(
                        "{from}..{to} is {} days; at most {MAX_PARTITIONS} partitions per run (split the backfill)",
                        days.saturating_add(1)
                    )));
                }
                let mut out = Vec::with_capacity(days + 1);
                let mut d = from;
                while d <= to {
                    out.push(Partition {
                        path: self.render(d),
                        date: Some(d),
                    });
                    d += Duration::days(1);
                }
                Ok(out)
            }
        }
    }
}

/// Parses `2025-10-30` or `20251030` (Airflow's `{{ ds }}` and `{{ ds_nodash }}`).
///
/// # Errors
/// [`SnowflakeError::Usage`] naming `flag`.
pub fn parse_date(flag: &str, text: &str) -> Result<NaiveDate, SnowflakeError> {
    let t = text.trim();
    let nodash = || {
        (t.len() == 8 && t.chars().all(|c| c.is_ascii_digit()))
            .then(|| NaiveDate::parse_from_str(t, "%Y%m%d").ok())
            .flatten()
    };
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .or_else(nodash)
        .ok_or_else(|| {
            SnowflakeError::Usage(format!(
                "invalid {flag} {}: write dates as YYYY-MM-DD (or YYYYMMDD)",
                shown(text)
            ))
        })
}

/// Whether a partition of `date` is older than Snowflake's 64-day load metadata on `today`.
#[must_use]
pub fn is_uncertain(date: NaiveDate, today: NaiveDate) -> bool {
    (today - date).num_days() > LOAD_METADATA_DAYS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date("--date", s).unwrap()
    }

    #[test]
    fn expands_one_partition_per_day_inclusive() {
        let t = PartitionTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        let p = t.expand(Some((d("2025-10-30"), d("2025-11-01")))).unwrap();
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["date=2025-10-30/", "date=2025-10-31/", "date=2025-11-01/"]
        );
        let t = PartitionTemplate::parse("{yyyy}/{mm}/{dd}/").unwrap();
        assert_eq!(t.render(d("20250102")), "2025/01/02/");
    }

    #[test]
    fn templates_and_dates_must_agree() {
        let t = PartitionTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        assert!(t.expand(None).is_err());
        assert!(t.expand(Some((d("2025-10-30"), d("2025-10-01")))).is_err());
        assert!(t.expand(Some((d("2020-01-01"), d("2025-01-01")))).is_err());
        let plain = PartitionTemplate::parse("").unwrap();
        assert_eq!(plain.expand(None).unwrap()[0].path, "");
        assert!(
            plain
                .expand(Some((d("2025-10-30"), d("2025-10-30"))))
                .is_err()
        );
        for bad in [
            "{day}/",
            "date={date/",
            "/date={date}/",
            "x}'",
            "date={date}/';--",
        ] {
            assert!(PartitionTemplate::parse(bad).is_err(), "{bad}");
        }
        for bad in ["2025-13-01", "30/10/2025", "yesterday", ""] {
            assert!(parse_date("--date", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sixty_four_days_is_still_certain() {
        let today = d("2025-12-31");
        assert!(!is_uncertain(today - Duration::days(64), today));
        assert!(is_uncertain(today - Duration::days(65), today));
    }
}
