//! The layered environment: process variables over `--env-file` files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// An env file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    /// The file could not be read.
    #[error("cannot read env file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `KEY=VALUE`.
    #[error("env file {path} line {line}: expected KEY=VALUE")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// A snapshot of the process environment layered over env files.
#[derive(Clone, Default)]
pub struct Env {
    process: BTreeMap<String, String>,
    files: BTreeMap<String, String>,
}

impl std::fmt::Debug for Env {
    // Values may be secrets: show names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("process", &self.process.keys().collect::<Vec<_>>())
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Env {
    /// An environment from explicit process variables (no files).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            process: vars.into_iter().collect(),
            files: BTreeMap::new(),
        }
    }

    /// Adds the variables of a `KEY=VALUE` file beneath the process variables.
    /// Later files beat earlier ones.
    ///
    /// # Errors
    /// Fails when the file cannot be read or a line is not `KEY=VALUE`.
    pub fn load_file(&mut self, path: &Path) -> Result<(), EnvFileError> {
        let text = crate::read_capped(path, crate::MAX_INPUT_FILE_BYTES).map_err(|source| {
            EnvFileError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
        for (k, v) in parse_env_file(&text).map_err(|line| EnvFileError::Syntax {
            path: path.to_owned(),
            line,
        })? {
            self.files.insert(k, v);
        }
        Ok(())
    }

    /// The value of `name`, if set and not empty.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<String> {
        self.process
            .get(name)
            .or_else(|| self.files.get(name))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// The value of `name` as a secret.
    #[must_use]
    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::from)
    }

    /// Whether `name` is set (and not empty).
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every variable name, process and file, for secret registration and prefix scans.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self
            .process
            .keys()
            .chain(self.files.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter()
    }

    /// Sets a variable at the process level (tests and derived settings).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.process.insert(name.into(), value.into());
    }
}

/// Parses `KEY=VALUE` lines: `#` comments, blank lines, optional `export `, and single or
/// double quotes around the value. Returns the 1-based line number of the first bad line.
fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, usize> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or(i + 1)?;
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(i + 1);
        }
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            v[1..v.len() - 1].replace("\\n", "\n")
        } else {
            v.to_owned()
        };
        out.push((k.to_owned(), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn process_env_beats_files_and_later_files_beat_earlier() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.env");
        let b = dir.path().join("b.env");
        std::fs::write(&a, "# comment\nexport A=from_a\nB='quoted b'\nC=\"c1\"\n\n").unwrap();
        std::fs::write(&b, "C=c2\n").unwrap();
        let mut env = Env::from_vars([("A".to_owned(), "from_process".to_owned())]);
        env.load_file(&a).unwrap();
        env.load_file(&b).unwrap();
        assert_eq!(env.get("A").as_deref(), Some("from_process"));
        assert_eq!(env.get("B").as_deref(), Some("quoted b"));
        assert_eq!(env.get("C").as_deref(), Some("c2"));
        assert_eq!(env.secret("B").unwrap().expose_secret(), "quoted b");
        assert!(env.get("D").is_none());
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.env");
        std::fs::write(&p, "A=1\nnot a pair\n").unwrap();
        let e = Env::default().load_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = Env::default()
            .load_file(&dir.path().join("missing.env"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read env file"), "{e}");
    }

    #[test]
    fn debug_shows_names_only() {
        let env = Env::from_vars([("TOKEN".to_owned(), "s3cr3t-value".to_owned())]);
        let d = format!("{env:?}");
        assert!(d.contains("TOKEN") && !d.contains("s3cr3t"));
    }
}
