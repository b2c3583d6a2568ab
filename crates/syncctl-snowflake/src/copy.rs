//! The COPY INTO builder: options as typed values, rendered to SQL one partition at a time.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use syncctl_config::Env;

use crate::SnowflakeError;
use crate::location::{Cloud, Location};
use crate::partition::{Partition, is_uncertain};
use crate::quote::{Identifier, ObjectName, check_path_chars, quote_literal, shown};

/// Most file names Snowflake accepts in one `FILES = (…)` list.
pub const MAX_FILES_PER_STATEMENT: usize = 1000;

/// What stands in for a secret in SQL shown to people.
pub const REDACTED: &str = "***";

/// The file types `FILE_FORMAT = (TYPE = …)` accepts.
const FILE_TYPES: [&str; 6] = ["CSV", "JSON", "AVRO", "ORC", "PARQUET", "XML"];

/// One value in a file-format option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatValue {
    /// A keyword or number (`JSON`, `TRUE`, `AUTO`, `1`), upper-cased.
    Word(String),
    /// A string literal exactly as written (quotes included); its extent was found with
    /// Snowflake's own rules (`\` escapes, `''` is a quote), so it cannot end early.
    Literal(String),
    /// A parenthesised list (`NULL_IF = ('', 'NULL')`).
    List(Vec<FormatValue>),
}

impl fmt::Display for FormatValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(w) => f.write_str(w),
            Self::Literal(l) => f.write_str(l),
            Self::List(items) => {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "({})", items.join(", "))
            }
        }
    }
}

/// `--file-format` or `--file-format-name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    /// Inline options, `TYPE` first.
    Options(Vec<(String, FormatValue)>),
    /// A named file format object.
    Named(ObjectName),
}

impl FileFormat {
    /// Parses inline options such as `TYPE=JSON STRIP_OUTER_ARRAY=TRUE` or
    /// `(TYPE = CSV, SKIP_HEADER = 1, NULL_IF = ('', 'NULL'))`.
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`] when the text is not `KEY = VALUE` pairs with a known `TYPE`.
    pub fn parse_options(text: &str) -> Result<Self, SnowflakeError> {
        let bad = |why: String| {
            SnowflakeError::Usage(format!("invalid --file-format {}: {why}", shown(text)))
        };
        let mut p = OptionParser {
            s: text.trim(),
            pos: 0,
        };
        let wrapped = p.s.starts_with('(') && p.s.ends_with(')');
        if wrapped {
            p.s = &p.s[1..p.s.len() - 1];
        }
        let mut options: Vec<(String, FormatValue)> = Vec::new();
        loop {
            p.skip_separators();
            if p.at_end() {
                break;
            }
            let key = p.word().map_err(&bad)?.to_ascii_uppercase();
            if !key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(bad(format!("{key:?} is not an option name")));
            }
            p.skip_spaces();
            if !p.eat('=') {
                return Err(bad(format!("expected = after {key}")));
            }
            p.skip_spaces();
            let value = p.value(0).map_err(&bad)?;
            if key == "FORMAT_NAME" {
                return Err(bad("use --file-format-name for a named file format".into()));
            }
            if options.iter().any(|(k, _)| *k == key) {
                return Err(bad(format!("{key} is given twice")));
            }
            options.push((key, value));
        }
        let Some(pos) = options.iter().position(|(k, _)| k == "TYPE") else {
            return Err(bad(format!(
                "TYPE is required (one of {})",
                FILE_TYPES.join(", ")
            )));
        };
        match &options[pos].1 {
            FormatValue::Word(t) if FILE_TYPES.contains(&t.as_str()) => {}
            other => {
                return Err(bad(format!(
                    "TYPE {other} is not one of {}",
                    FILE_TYPES.join(", ")
                )));
            }
        }
        let ty = options.remove(pos);
        options.insert(0, ty);
        Ok(Self::Options(options))
    }

    /// `FILE_FORMAT = (…)`.
    #[must_use]
    pub fn sql(&self) -> String {
        match self {
            Self::Options(opts) => {
                let body: Vec<String> = opts.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("FILE_FORMAT = ({})", body.join(" "))
            }
            Self::Named(name) => format!("FILE_FORMAT = (FORMAT_NAME = {})", name.sql()),
        }
    }
}

/// A tiny scanner for file-format option text.
struct OptionParser<'a> {
    s: &'a str,
    pos: usize,
}

impl OptionParser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.pos += 1;
        }
    }
    fn skip_separators(&mut self) {
        while self
            .peek()
            .is_some_and(|c| c == ' ' || c == '\t' || c == ',')
        {
            self.pos += 1;
        }
    }
    fn word(&mut self) -> Result<&str, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(match self.peek() {
                Some(c) => format!("unexpected {c:?}"),
                None => "unexpected end".into(),
            });
        }
        Ok(&self.s[start..self.pos])
    }
    fn value(&mut self, depth: usize) -> Result<FormatValue, String> {
        match self.peek() {
            Some('\'') => self.literal().map(FormatValue::Literal),
            Some('(') if depth == 0 => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_separators();
                    if self.eat(')') {
                        break;
                    }
                    if self.at_end() {
                        return Err("unclosed (".into());
                    }
                    items.push(self.value(depth + 1)?);
                }
                Ok(FormatValue::List(items))
            }
            _ => {
                let w = self.word()?;
                // `--` would start a comment and swallow the rest of the line.
                if w.contains("--") {
                    return Err(format!("{w:?} is not a value"));
                }
                Ok(FormatValue::Word(w.to_ascii_uppercase()))
            }
        }
    }
    /// A single-quoted literal; its end is found the way Snowflake finds it.
    fn literal(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if chars.next().is_none() => break,
                '\'' => {
                    if self.rest()[i + 1..].starts_with('\'') {
                        chars.next();
                    } else {
                        let end = self.pos + i + 1;
                        let lit = self.s[start..end].to_owned();
                        if lit.chars().any(char::is_control) {
                            return Err("control characters are not accepted in a value".into());
                        }
                        self.pos = end;
                        return Ok(lit);
                    }
                }
                _ => {}
            }
        }
        Err("unterminated string value".into())
    }
}

/// `ON_ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Load the good rows, skip the bad ones.
    Continue,
    /// Skip a file with any error.
    SkipFile,
    /// Skip a file with at least this many errors.
    SkipFileRows(u64),
    /// Skip a file when this percentage of its rows have errors.
    SkipFilePercent(u8),
    /// Fail the statement on the first error (Snowflake's default for bulk loads).
    AbortStatement,
}

impl FromStr for OnError {
    type Err = SnowflakeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let u = s
            .trim()
            .trim_matches('\'')
            .to_ascii_uppercase()
            .replace('-', "_");
        let bad = || {
            SnowflakeError::Usage(format!(
                "invalid --on-error {}: use CONTINUE, SKIP_FILE, SKIP_FILE_<n>, SKIP_FILE_<n>% or ABORT_STATEMENT",
                shown(s)
            ))
        };
        Ok(match u.as_str() {
            "CONTINUE" => Self::Continue,
            "SKIP_FILE" => Self::SkipFile,
            "ABORT_STATEMENT" => Self::AbortStatement,
            other => {
                let n = other.strip_prefix("SKIP_FILE_").ok_or_else(bad)?;
                if let Some(pct) = n.strip_suffix('%') {
                    let pct: u8 = pct.parse().map_err(|_| bad())?;
                    if !(1..=100).contains(&pct) {
                        return Err(bad());
                    }
                    Self::SkipFilePercent(pct)
                } else {
                    let rows: u64 = n.parse().map_err(|_| bad())?;
                    if rows == 0 {
                        return Err(bad());
                    }
                    Self::SkipFileRows(rows)
                }
            }
        })
    }
}

impl OnError {
    /// The option's SQL value.
    #[must_use]
    pub fn sql(self) -> String {
        match self {
            Self::Continue => "CONTINUE".into(),
            Self::SkipFile => "SKIP_FILE".into(),
            Self::SkipFileRows(n) => format!("SKIP_FILE_{n}"),
            Self::SkipFilePercent(p) => format!("'SKIP_FILE_{p}%'"),
            Self::AbortStatement => "ABORT_STATEMENT".into(),
        }
    }
}

/// `MATCH_BY_COLUMN_NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchByColumnName {
    /// Column names must match exactly.
    CaseSensitive,
    /// Column names match ignoring case.
    CaseInsensitive,
    /// Load by position (the default).
    None,
}

impl FromStr for MatchByColumnName {
    type Err = SnowflakeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "CASE_SENSITIVE" => Ok(Self::CaseSensitive),
            "CASE_INSENSITIVE" => Ok(Self::CaseInsensitive),
            "NONE" => Ok(Self::None),
            _ => Err(SnowflakeError::Usage(format!(
                "invalid --match-by-column-name {}: use CASE_SENSITIVE, CASE_INSENSITIVE or NONE",
                shown(s)
            ))),
        }
    }
}

impl MatchByColumnName {
    /// The option's SQL value.
    #[must_use]
    pub fn sql(self) -> &'static str {
        match self {
            Self::CaseSensitive => "CASE_SENSITIVE",
            Self::CaseInsensitive => "CASE_INSENSITIVE",
            Self::None => "NONE",
        }
    }
}

/// The file metadata `INCLUDE_METADATA` can copy into a column.
const METADATA_FIELDS: [&str; 5] = [
    "METADATA$FILENAME",
    "METADATA$FILE_ROW_NUMBER",
    "METADATA$FILE_CONTENT_KEY",
    "METADATA$FILE_LAST_MODIFIED",
    "METADATA$START_SCAN_TIME",
];

/// One `--include-metadata col=METADATA$FILENAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataColumn {
    /// The target column.
    pub column: Identifier,
    /// The metadata field (`METADATA$FILENAME`).
    pub field: &'static str,
}

impl FromStr for MetadataColumn {
    type Err = SnowflakeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (col, field) = s.split_once('=').ok_or_else(|| {
            SnowflakeError::Usage(format!(
                "invalid --include-metadata {}: write it as COLUMN=METADATA$FILENAME",
                shown(s)
            ))
        })?;
        let column = Identifier::parse("--include-metadata column", col.trim())?;
        let wanted = field.trim().to_ascii_uppercase();
        let field = METADATA_FIELDS
            .iter()
            .find(|f| **f == wanted)
            .ok_or_else(|| {
                SnowflakeError::Usage(format!(
                    "invalid --include-metadata {}: the field must be one of {}",
                    shown(s),
                    METADATA_FIELDS.join(", ")
                ))
            })?;
        Ok(Self { column, field })
    }
}

/// How Snowflake reaches an external location.
#[derive(Clone)]
pub enum StorageAccess {
    /// Nothing in the statement: a stage carries its own, or the bucket is public.
    None,
    /// `STORAGE_INTEGRATION = name`.
    Integration(Identifier),
    /// `CREDENTIALS = (AWS_KEY_ID = … AWS_SECRET_KEY = … [AWS_TOKEN = …])`.
    Aws {
        /// The access key id.
        key_id: SecretString,
        /// The secret access key.
        secret_key: SecretString,
        /// A session token for temporary credentials.
        token: Option<SecretString>,
    },
    /// `CREDENTIALS = (AZURE_SAS_TOKEN = …)`.
    AzureSas(SecretString),
}

impl fmt::Debug for StorageAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl StorageAccess {
    /// Picks the access for `location`: `--storage-integration` first, else credentials from
    /// the environment for the location's cloud (`AWS_KEY_ID`/`AWS_SECRET_KEY`, or the seed's
    /// `AWS_KEY`/`AWS_SECRET`, plus `AWS_TOKEN`; the SAS token in `sas_var` for Azure).
    /// Stages carry their own credentials, so the environment is ignored for them.
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`] for an integration on a stage, [`SnowflakeError::Config`]
    /// for half a credential pair.
    pub fn resolve(
        location: &Location,
        integration: Option<&str>,
        env: &Env,
        sas_var: &str,
    ) -> Result<Self, SnowflakeError> {
        if let Some(name) = integration {
            return Ok(Self::Integration(Identifier::parse(
                "--storage-integration",
                name,
            )?));
        }
        match location.cloud() {
            None | Some(Cloud::Gcs) => Ok(Self::None),
            Some(Cloud::S3) => {
                let pairs = [("AWS_KEY_ID", "AWS_SECRET_KEY"), ("AWS_KEY", "AWS_SECRET")];
                for (id_var, secret_var) in pairs {
                    match (env.secret(id_var), env.secret(secret_var)) {
                        (Some(key_id), Some(secret_key)) => {
                            return Ok(Self::Aws {
                                key_id,
                                secret_key,
                                token: env.secret("AWS_TOKEN"),
                            });
                        }
                        (Some(_), None) | (None, Some(_)) => {
                            return Err(SnowflakeError::Config(format!(
                                "{id_var} and {secret_var} must be set together"
                            )));
                        }
                        (None, None) => {}
                    }
                }
                Ok(Self::None)
            }
            Some(Cloud::Azure) => Ok(env.secret(sas_var).map_or(Self::None, Self::AzureSas)),
        }
    }

    /// How access is granted, without any secret (for logs and results).
    #[must_use]
    pub fn describe(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Integration(_) => "storage integration",
            Self::Aws { .. } => "AWS key credentials",
            Self::AzureSas(_) => "Azure SAS token",
        }
    }

    fn sql(&self, reveal: bool) -> Option<String> {
        let lit = |s: &SecretString| {
            if reveal {
                quote_literal(s.expose_secret())
            } else {
                quote_literal(REDACTED)
            }
        };
        match self {
            Self::None => None,
            Self::Integration(name) => Some(format!("STORAGE_INTEGRATION = {}", name.sql())),
            Self::Aws {
                key_id,
                secret_key,
                token,
            } => {
                let mut s = format!(
                    "CREDENTIALS = (AWS_KEY_ID = {} AWS_SECRET_KEY = {}",
                    lit(key_id),
                    lit(secret_key)
                );
                if let Some(t) = token {
                    s.push_str(&format!(" AWS_TOKEN = {}", lit(t)));
                }
                s.push(')');
                Some(s)
            }
            Self::AzureSas(t) => Some(format!("CREDENTIALS = (AZURE_SAS_TOKEN = {})", lit(t))),
        }
    }
}

/// Everything one `snowflake copy` asks for.
#[derive(Debug, Clone)]
pub struct CopySpec {
    /// The target table.
    pub table: ObjectName,
    /// `--from`.
    pub location: Location,
    /// The expanded partitions.
    pub partitions: Vec<Partition>,
    /// `--files`, relative to each partition.
    pub files: Vec<String>,
    /// `--pattern`.
    pub pattern: Option<String>,
    /// `--file-format` / `--file-format-name`.
    pub file_format: Option<FileFormat>,
    /// `--on-error`.
    pub on_error: Option<OnError>,
    /// `--match-by-column-name`.
    pub match_by_column_name: Option<MatchByColumnName>,
    /// `--include-metadata`.
    pub include_metadata: Vec<MetadataColumn>,
    /// `--purge`.
    pub purge: bool,
    /// `--force` (never implied).
    pub force: bool,
    /// Add `LOAD_UNCERTAIN_FILES = TRUE` to partitions older than 64 days (off with
    /// `--no-load-uncertain`).
    pub load_uncertain: bool,
    /// `--validate`: `VALIDATION_MODE = RETURN_ERRORS`.
    pub validate: bool,
    /// Storage integration or credentials.
    pub access: StorageAccess,
}

/// One COPY statement of the plan.
#[derive(Clone)]
pub struct PlannedCopy {
    /// The partition path (`date=2025-10-30/`).
    pub partition: String,
    /// The full location of the partition, as shown to people.
    pub location: String,
    /// Which chunk of `--files` this statement carries (1-based index, count).
    pub chunk: Option<(usize, usize)>,
    /// Whether `LOAD_UNCERTAIN_FILES = TRUE` was added.
    pub load_uncertain: bool,
    /// The SQL with every secret replaced by `***` (what results and logs show).
    pub redacted_sql: String,
    sql: SecretString,
}

impl fmt::Debug for PlannedCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannedCopy")
            .field("partition", &self.partition)
            .field("redacted_sql", &self.redacted_sql)
            .finish_non_exhaustive()
    }
}

impl PlannedCopy {
    /// The SQL to send (may contain credentials).
    #[must_use]
    pub fn sql(&self) -> &SecretString {
        &self.sql
    }
}

/// The statements one run sends, and what the user should know about them.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// One statement per partition (or per chunk of 1000 files).
    pub copies: Vec<PlannedCopy>,
    /// Warnings (uncertain partitions, missing credentials, future dates).
    pub warnings: Vec<String>,
}

impl CopySpec {
    /// Checks the options against each other and the location.
    ///
    /// # Errors
    /// [`SnowflakeError::Usage`] describing the conflict.
    pub fn check(&self) -> Result<(), SnowflakeError> {
        let usage = |m: &str| Err(SnowflakeError::Usage(m.to_owned()));
        if !self.files.is_empty() && self.pattern.is_some() {
            return usage(
                "--files and --pattern cannot be used together (Snowflake honours only FILES)",
            );
        }
        if self.partitions.is_empty() {
            return usage("no partitions to copy");
        }
        let matching = matches!(
            self.match_by_column_name,
            Some(MatchByColumnName::CaseSensitive | MatchByColumnName::CaseInsensitive)
        );
        if !self.include_metadata.is_empty() && !matching {
            return usage(
                "--include-metadata needs --match-by-column-name CASE_SENSITIVE or CASE_INSENSITIVE",
            );
        }
        if self.validate && self.match_by_column_name.is_some() {
            return usage(
                "--validate cannot be combined with --match-by-column-name (Snowflake refuses VALIDATION_MODE with it)",
            );
        }
        if self.validate && self.purge {
            return usage("--validate loads nothing, so --purge makes no sense with it");
        }
        for f in &self.files {
            if f.is_empty() || f.starts_with('/') {
                return Err(SnowflakeError::Usage(format!(
                    "invalid --files entry {}: give names relative to the partition folder",
                    shown(f)
                )));
            }
            check_path_chars("--files entry", f)?;
        }
        if let Some(p) = &self.pattern
            && (p.is_empty() || p.chars().any(char::is_control))
        {
            return usage(
                "--pattern must be a non-empty regular expression without control characters",
            );
        }
        match (&self.access, &self.location) {
            (StorageAccess::None, _) => {}
            (_, Location::Stage { .. }) => {
                return usage(
                    "a stage carries its own credentials; drop --storage-integration when --from is @stage",
                );
            }
            (StorageAccess::Aws { .. }, l) if l.cloud() != Some(Cloud::S3) => {
                return usage("AWS credentials only apply to s3:// locations");
            }
            (StorageAccess::AzureSas(_), l) if l.cloud() != Some(Cloud::Azure) => {
                return usage("an Azure SAS token only applies to azure:// locations");
            }
            _ => {}
        }
        if self.location.cloud() == Some(Cloud::Gcs)
            && !matches!(self.access, StorageAccess::Integration(_))
        {
            return usage(
                "gcs:// locations need --storage-integration (Snowflake has no key credentials for GCS)",
            );
        }
        Ok(())
    }

    /// The statements to send, with warnings. `today` decides which partitions are older than
    /// Snowflake's 64-day load metadata.
    ///
    /// # Errors
    /// Whatever [`Self::check`] finds.
    pub fn plan(&self, today: NaiveDate) -> Result<CopyPlan, SnowflakeError> {
        self.check()?;
        let mut warnings = Vec::new();
        let mut uncertain = Vec::new();
        let mut future = Vec::new();
        let mut copies = Vec::new();
        for part in &self.partitions {
            let old = part.date.is_some_and(|d| is_uncertain(d, today));
            if old {
                uncertain.push(part.path.clone());
            }
            if part.date.is_some_and(|d| d > today) {
                future.push(part.path.clone());
            }
            let load_uncertain = old && self.load_uncertain && !self.force && !self.validate;
            let location = self.location.join(&part.path);
            let chunks: Vec<&[String]> = if self.files.is_empty() {
                vec![&[]]
            } else {
                self.files.chunks(MAX_FILES_PER_STATEMENT).collect()
            };
            let n = chunks.len();
            for (i, files) in chunks.into_iter().enumerate() {
                let render = |reveal| self.render(&location, files, load_uncertain, reveal);
                copies.push(PlannedCopy {
                    partition: part.path.clone(),
                    location: location.to_string(),
                    chunk: (n > 1).then_some((i + 1, n)),
                    load_uncertain,
                    redacted_sql: render(false),
                    sql: SecretString::from(render(true)),
                });
            }
        }
        if !uncertain.is_empty() && !self.force && !self.validate {
            let list = summarize(&uncertain);
            warnings.push(if self.load_uncertain {
                format!(
                    "{} partition(s) are older than 64 days ({list}): added LOAD_UNCERTAIN_FILES = TRUE, because Snowflake has forgotten whether their files were loaded and would skip them silently; a file loaded more than 64 days ago may load again (pass --no-load-uncertain to skip them instead)",
                    uncertain.len()
                )
            } else {
                format!(
                    "{} partition(s) are older than 64 days ({list}) and --no-load-uncertain was given: Snowflake silently skips files whose load status it has forgotten, so some may not load",
                    uncertain.len()
                )
            });
        }
        if !future.is_empty() {
            warnings.push(format!(
                "{} partition(s) are dated after today ({})",
                future.len(),
                summarize(&future)
            ));
        }
        if matches!(self.access, StorageAccess::None)
            && matches!(self.location, Location::External { .. })
        {
            warnings.push(format!(
                "no --storage-integration or credentials for {}: this works only for a public bucket",
                self.location
            ));
        }
        Ok(CopyPlan { copies, warnings })
    }

    fn render(
        &self,
        location: &Location,
        files: &[String],
        load_uncertain: bool,
        reveal: bool,
    ) -> String {
        let mut clauses = vec![
            format!("COPY INTO {}", self.table.sql()),
            format!("FROM {}", location.sql()),
        ];
        if let Some(access) = self.access.sql(reveal) {
            clauses.push(access);
        }
        if !files.is_empty() {
            let list: Vec<String> = files.iter().map(|f| quote_literal(f)).collect();
            clauses.push(format!("FILES = ({})", list.join(", ")));
        }
        if let Some(p) = &self.pattern {
            clauses.push(format!("PATTERN = {}", quote_literal(p)));
        }
        if let Some(ff) = &self.file_format {
            clauses.push(ff.sql());
        }
        if let Some(e) = self.on_error {
            clauses.push(format!("ON_ERROR = {}", e.sql()));
        }
        if self.purge {
            clauses.push("PURGE = TRUE".into());
        }
        if let Some(m) = self.match_by_column_name {
            clauses.push(format!("MATCH_BY_COLUMN_NAME = {}", m.sql()));
        }
        if !self.include_metadata.is_empty() {
            let cols: Vec<String> = self
                .include_metadata
                .iter()
                .map(|m| format!("{} = {}", m.column.sql(), m.field))
                .collect();
            clauses.push(format!("INCLUDE_METADATA = ({})", cols.join(", ")));
        }
        if self.force {
            clauses.push("FORCE = TRUE".into());
        }
        if load_uncertain {
            clauses.push("LOAD_UNCERTAIN_FILES = TRUE".into());
        }
        if self.validate {
            clauses.push("VALIDATION_MODE = RETURN_ERRORS".into());
        }
        clauses.join("\n  ")
    }
}

/// The statement text for one request: a single COPY, or `BEGIN; COPY…; COMMIT` when several
/// statements run in one transaction, or several statements without one.
#[derive(Debug, Clone)]
pub struct RequestText {
    /// The statement text with secrets replaced by `***`.
    pub redacted: String,
    /// The statement text to send.
    pub sql: SecretString,
    /// How many statements it holds (`MULTI_STATEMENT_COUNT`).
    pub count: usize,
    /// Index of each COPY within the statements (1 when wrapped in `BEGIN`).
    pub first_copy_index: usize,
}

impl CopyPlan {
    /// The text of one request carrying `copies`, wrapped in a transaction when asked and
    /// there is more than one statement.
    #[must_use]
    pub fn request_text(copies: &[PlannedCopy], transaction: bool) -> RequestText {
        let wrap = transaction && copies.len() > 1;
        let join = |parts: Vec<&str>| {
            let mut all: Vec<&str> = Vec::with_capacity(parts.len() + 2);
            if wrap {
                all.push("BEGIN");
            }
            all.extend(parts);
            if wrap {
                all.push("COMMIT");
            }
            all.join(";\n")
        };
        let redacted = join(copies.iter().map(|c| c.redacted_sql.as_str()).collect());
        let sql = join(copies.iter().map(|c| c.sql.expose_secret()).collect());
        RequestText {
            redacted,
            sql: SecretString::from(sql),
            count: copies.len() + if wrap { 2 } else { 0 },
            first_copy_index: usize::from(wrap),
        }
    }
}

fn summarize(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [first, .., last] if items.len() > 3 => format!("{first} … {last}"),
        many => many.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format_options_are_normalised() {
        let f = FileFormat::parse_options("type=json strip_outer_array=true").unwrap();
        assert_eq!(
            f.sql(),
            "FILE_FORMAT = (TYPE = JSON STRIP_OUTER_ARRAY = TRUE)"
        );
        let f = FileFormat::parse_options(
            r"(SKIP_HEADER = 1, TYPE = CSV, NULL_IF = ('', 'N''A', '\\N'), FIELD_DELIMITER = '\t')",
        )
        .unwrap();
        assert_eq!(
            f.sql(),
            r"FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 NULL_IF = ('', 'N''A', '\\N') FIELD_DELIMITER = '\t')"
        );
    }

    #[test]
    fn file_format_injection_and_nonsense_are_refused() {
        for bad in [
            "",
            "STRIP_OUTER_ARRAY=TRUE",
            "TYPE=JSONX",
            "TYPE=JSON) FORCE=TRUE; DROP TABLE X; --",
            "TYPE=JSON NULL_IF=('x') ; DROP",
            "TYPE=JSON DATE_FORMAT='abc\\'",
            "TYPE=JSON DATE_FORMAT='a' 'b'",
            "TYPE=JSON TYPE=CSV",
            "FORMAT_NAME=X TYPE=JSON",
            "TYPE=JSON NULL_IF=(('a'))",
            "TYPE=JSON X=--",
            "TYPE=JSON X=a--b",
        ] {
            assert!(FileFormat::parse_options(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn on_error_values() {
        assert_eq!("continue".parse::<OnError>().unwrap(), OnError::Continue);
        assert_eq!(
            "SKIP_FILE_10%".parse::<OnError>().unwrap().sql(),
            "'SKIP_FILE_10%'"
        );
        assert_eq!(
            "skip_file_3".parse::<OnError>().unwrap().sql(),
            "SKIP_FILE_3"
        );
        for bad in ["skip", "SKIP_FILE_0", "SKIP_FILE_101%", "ABORT"] {
            assert!(bad.parse::<OnError>().is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_columns() {
        let m: MetadataColumn = "source_file=metadata$filename".parse().unwrap();
        assert_eq!(m.column.sql(), "\"SOURCE_FILE\"");
        assert_eq!(m.field, "METADATA$FILENAME");
        assert!("x=METADATA$NOPE".parse::<MetadataColumn>().is_err());
        assert!("x".parse::<MetadataColumn>().is_err());
    }
}
