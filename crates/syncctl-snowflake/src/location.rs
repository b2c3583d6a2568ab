//! Where the files are: an external URL (`s3://`, `azure://`, `gcs://`) or a stage (`@…`).

use std::fmt;

use crate::SnowflakeError;
use crate::quote::{ObjectName, check_path_chars, quote_literal, shown, split_outside_quotes};

/// The cloud behind an external location; decides which credentials apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon S3 (`s3://bucket/path`).
    S3,
    /// Azure Blob Storage / ADLS Gen2 (`azure://account.blob.core.windows.net/container/path`).
    Azure,
    /// Google Cloud Storage (`gcs://bucket/path`).
    Gcs,
}

impl Cloud {
    /// The URL scheme.
    #[must_use]
    pub fn scheme(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Azure => "azure",
            Self::Gcs => "gcs",
        }
    }
}

/// What a stage reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    /// A named stage (`@DB.SCHEMA.STAGE`).
    Named(ObjectName),
    /// The user's stage (`@~`).
    User,
    /// A table's stage (`@%TABLE`).
    Table(ObjectName),
}

/// A `--from` location, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An external cloud URL. `root` is `scheme://bucket` (or the Azure account and
    /// container); `path` is everything after it, without a leading slash.
    External {
        /// Which cloud.
        cloud: Cloud,
        /// `s3://bucket`, `azure://account.blob.core.windows.net/container`, `gcs://bucket`.
        root: String,
        /// The prefix under the root (may be empty).
        path: String,
    },
    /// A stage and a path inside it.
    Stage {
        /// The stage.
        stage: StageRef,
        /// The path inside the stage (may be empty).
        path: String,
    },
}

impl Location {
    /// Parses `s3://bucket/events/`, `azure://acct.blob.core.windows.net/container/events/`,
    /// `gcs://bucket/events/`, `@DB.SCHEMA.STAGE/events/`, `@~/events/` or `@%TABLE/events/`.
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`] when the location is malformed or contains characters that
    /// could leave a SQL literal.
    pub fn parse(text: &str) -> Result<Self, SnowflakeError> {
        let text = text.trim();
        if let Some(stage) = text.strip_prefix('@') {
            return parse_stage(text, stage);
        }
        check_path_chars("location", text)?;
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            SnowflakeError::Usage(format!(
                "invalid location {}: write it as s3://bucket/path/, azure://account.blob.core.windows.net/container/path/, gcs://bucket/path/ or @stage/path/",
                shown(text)
            ))
        })?;
        let cloud = match scheme.to_ascii_lowercase().as_str() {
            "s3" => Cloud::S3,
            "azure" => Cloud::Azure,
            "gcs" => Cloud::Gcs,
            other => {
                return Err(SnowflakeError::Usage(format!(
                    "invalid location {}: unsupported scheme {other:?} (use s3://, azure://, gcs:// or @stage)",
                    shown(text)
                )));
            }
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (root, path) = match cloud {
            Cloud::S3 | Cloud::Gcs => {
                if !valid_bucket(host) {
                    return Err(SnowflakeError::Usage(format!(
                        "invalid location {}: {host:?} is not a valid bucket name",
                        shown(text)
                    )));
                }
                (format!("{}://{host}", cloud.scheme()), path)
            }
            Cloud::Azure => {
                let account_ok = host.split_once(".blob.core.").is_some_and(|(acct, _)| {
                    !acct.is_empty()
                        && acct
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                });
                let (container, path) = path.split_once('/').unwrap_or((path, ""));
                if !account_ok || container.is_empty() {
                    return Err(SnowflakeError::Usage(format!(
                        "invalid location {}: write Azure locations as azure://ACCOUNT.blob.core.windows.net/CONTAINER/path/",
                        shown(text)
                    )));
                }
                (format!("azure://{host}/{container}"), path)
            }
        };
        Ok(Self::External {
            cloud,
            root,
            path: path.to_owned(),
        })
    }

    /// The cloud, for external locations.
    #[must_use]
    pub fn cloud(&self) -> Option<Cloud> {
        match self {
            Self::External { cloud, .. } => Some(*cloud),
            Self::Stage { .. } => None,
        }
    }

    /// The location with `sub` appended under its path (a `/` is added between them when
    /// needed).
    #[must_use]
    pub fn join(&self, sub: &str) -> Self {
        let joined = |path: &str| {
            if sub.is_empty() {
                path.to_owned()
            } else if path.is_empty() || path.ends_with('/') {
                format!("{path}{sub}")
            } else {
                format!("{path}/{sub}")
            }
        };
        match self {
            Self::External { cloud, root, path } => Self::External {
                cloud: *cloud,
                root: root.clone(),
                path: joined(path),
            },
            Self::Stage { stage, path } => Self::Stage {
                stage: stage.clone(),
                path: joined(path),
            },
        }
    }

    /// The location as the text Snowflake reads (identifiers in a stage name double-quoted).
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Self::External { root, path, .. } => format!("{root}/{path}"),
            Self::Stage { stage, path } => {
                let name = match stage {
                    StageRef::Named(n) => n.sql(),
                    StageRef::User => "~".to_owned(),
                    StageRef::Table(t) => format!("%{}", t.sql()),
                };
                if path.is_empty() {
                    format!("@{name}")
                } else {
                    format!("@{name}/{path}")
                }
            }
        }
    }

    /// The location as a SQL string literal (for `FROM`).
    #[must_use]
    pub fn sql(&self) -> String {
        quote_literal(&self.text())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::External { root, path, .. } => write!(f, "{root}/{path}"),
            Self::Stage { stage, path } => {
                let name = match stage {
                    StageRef::Named(n) => n.to_string(),
                    StageRef::User => "~".to_owned(),
                    StageRef::Table(t) => format!("%{t}"),
                };
                if path.is_empty() {
                    write!(f, "@{name}")
                } else {
                    write!(f, "@{name}/{path}")
                }
            }
        }
    }
}

fn parse_stage(full: &str, stage: &str) -> Result<Location, SnowflakeError> {
    let pieces = split_outside_quotes(stage, '/');
    let name = pieces.first().copied().unwrap_or_default();
    let path = pieces.get(1..).map(|p| p.join("/")).unwrap_or_default();
    check_path_chars("stage path", &path)?;
    let stage = if name == "~" {
        StageRef::User
    } else if let Some(table) = name.strip_prefix('%') {
        StageRef::Table(ObjectName::parse("table stage", table)?)
    } else {
        StageRef::Named(ObjectName::parse("stage", name).map_err(|e| match e {
            SnowflakeError::Usage(m) => SnowflakeError::Usage(format!(
                "{m} (in location {}; write stages as @DB.SCHEMA.STAGE/path/)",
                shown(full)
            )),
            other => other,
        })?)
    };
    Ok(Location::Stage { stage, path })
}

/// S3 and GCS bucket names: 3–63 characters of lower-case letters, digits, dots and hyphens
/// (GCS also allows underscores), starting and ending with a letter or digit.
fn valid_bucket(b: &str) -> bool {
    (3..=222).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        && b.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_locations_parse_and_join() {
        let l = Location::parse("s3://biz-datalake-dev/events/").unwrap();
        assert_eq!(l.cloud(), Some(Cloud::S3));
        assert_eq!(
            l.join("date=2025-10-30/").sql(),
            "'s3://biz-datalake-dev/events/date=2025-10-30/'"
        );
        let l = Location::parse("s3://biz-datalake-dev/events").unwrap();
        assert_eq!(
            l.join("date=2025-10-30/").text(),
            "s3://biz-datalake-dev/events/date=2025-10-30/"
        );
        let l = Location::parse("azure://acct.blob.core.windows.net/lake/events/").unwrap();
        assert_eq!(l.cloud(), Some(Cloud::Azure));
        assert_eq!(l.text(), "azure://acct.blob.core.windows.net/lake/events/");
        let l = Location::parse("gcs://bucket_1/x/").unwrap();
        assert_eq!(l.cloud(), Some(Cloud::Gcs));
    }

    #[test]
    fn stages_are_quoted_inside_the_literal() {
        let l = Location::parse("@raw.events.lake_stage/events/").unwrap();
        assert_eq!(
            l.join("date=2025-10-30/").sql(),
            r#"'@"RAW"."EVENTS"."LAKE_STAGE"/events/date=2025-10-30/'"#
        );
        assert_eq!(l.to_string(), "@RAW.EVENTS.LAKE_STAGE/events/");
        let l = Location::parse(r#"@"my/stage"/x/"#).unwrap();
        assert_eq!(l.text(), r#"@"my/stage"/x/"#);
        assert_eq!(Location::parse("@~/a/").unwrap().text(), "@~/a/");
        assert_eq!(Location::parse("@%events").unwrap().text(), r#"@%"EVENTS""#);
    }

    #[test]
    fn bad_locations_are_refused() {
        for bad in [
            "biz-datalake-dev/events/",
            "http://x/y",
            "s3://Bad_Bucket/x",
            "s3://b/x'; DROP TABLE T; --",
            "s3://bucket/x\\",
            "azure://acct/container/x",
            "azure://acct.blob.core.windows.net/",
            "@a.b.c.d/x",
            "@stage/x';--",
            "@",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
