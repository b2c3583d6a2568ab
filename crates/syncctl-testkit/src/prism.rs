//! Contract harness: runs traffic through Stoplight Prism in proxy mode.
//!
//! `prism proxy <spec> <fake> --errors` validates every request syncctl sends and every
//! response a fake returns against the vendor's spec. Invalid requests get 422 and are not
//! forwarded; off-spec responses become 500 `#VIOLATIONS`. The harness also keeps Prism's log
//! so a test can assert that no violation was reported at all (quirk: Prism only warns about
//! some problems). Fakes must never answer 501: Prism would fall back to mocking.
//!
//! Prism comes from npm (`tools/contract/package.json`, installed by `scripts/test.sh`).
//! Vendor specs are read from `tests/contracts/vendor/` in the repository (copies with their
//! licences and provenance in `SOURCES.md` there), or from `SYNCCTL_CONTRACTS_DIR` when set.
//! A missing Prism or spec fails the test: contract tests never skip.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The workspace root (two levels above this crate).
#[must_use]
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The vendor spec copies kept in the repository (`tests/contracts/vendor`).
#[must_use]
pub fn vendored_contracts_dir() -> PathBuf {
    workspace_root().join("tests/contracts/vendor")
}

/// Where the vendor specs are: `SYNCCTL_CONTRACTS_DIR` when set (same layout), else the
/// copies in the repository.
#[must_use]
pub fn contracts_dir() -> PathBuf {
    std::env::var_os("SYNCCTL_CONTRACTS_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(vendored_contracts_dir, PathBuf::from)
}

/// A spec under the contracts dir (`airbyte/config.yaml`), or one of ours under
/// `tests/contracts/` when `rel` starts with `syncctl:`.
///
/// # Panics
/// When the file does not exist (the message says how to fix it).
#[must_use]
pub fn spec_path(rel: &str) -> PathBuf {
    let p = match rel.strip_prefix("syncctl:") {
        Some(ours) => workspace_root().join("tests/contracts").join(ours),
        None => contracts_dir().join(rel),
    };
    assert!(
        p.is_file(),
        "contract spec {} not found; the vendor copies live in tests/contracts/vendor (see SOURCES.md \
         there), and SYNCCTL_CONTRACTS_DIR, when set, must point at a folder with the same layout",
        p.display()
    );
    p
}

/// The Prism executable.
///
/// # Panics
/// When Prism is not installed (run `scripts/test.sh`, or `npm ci` in `tools/contract`).
#[must_use]
pub fn prism_bin() -> PathBuf {
    let p = std::env::var_os("PRISM_BIN").map_or_else(
        || workspace_root().join("tools/contract/node_modules/.bin/prism"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "Prism not found at {}; run `npm ci --prefix tools/contract` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A running `prism proxy`. Killed on drop.
pub struct PrismProxy {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl PrismProxy {
    /// Starts `prism proxy <spec> <upstream> --errors` on a free port and waits until it
    /// listens.
    ///
    /// # Panics
    /// When Prism cannot start within 90 s (the log is in the message).
    pub async fn start(spec: &str, upstream: &str) -> Self {
        let spec = spec_path(spec);
        let port = free_port();
        let mut child = Command::new(prism_bin())
            .args([
                "proxy",
                &spec.to_string_lossy(),
                upstream,
                "--errors",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Prism: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(strip_ansi(&line));
                }
            });
        }
        let proxy = Self { child, port, log };
        for _ in 0..900 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return proxy;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Prism did not start within 90 s:\n{}",
            proxy.log().join("\n")
        );
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything Prism logged so far.
    #[must_use]
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Log lines that report a request or response violating the spec. Waits until Prism's
    /// log has been quiet for a moment, because it writes the verdict after answering.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.settle();
        self.log()
            .into_iter()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("violation")
                    || l.contains("✖")
                    || (l.contains("[validator]") && (l.contains("error") || l.contains("warning")))
            })
            .collect()
    }

    /// Waits until no new log line arrived for 300 ms (at most 3 s).
    fn settle(&self) {
        let started = std::time::Instant::now();
        let mut quiet_since = std::time::Instant::now();
        let mut seen = self.log().len();
        while started.elapsed() < Duration::from_secs(3)
            && quiet_since.elapsed() < Duration::from_millis(300)
        {
            std::thread::sleep(Duration::from_millis(50));
            let n = self.log().len();
            if n != seen {
                seen = n;
                quiet_since = std::time::Instant::now();
            }
        }
    }

    /// Fails the test when Prism saw any violation.
    ///
    /// # Panics
    /// When there was a violation.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "Prism reported contract violations:\n{}\n--- full log ---\n{}",
            v.join("\n"),
            self.log().join("\n")
        );
    }
}

impl Drop for PrismProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for n in chars.by_ref() {
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;

    /// The `sha256  path` lines of the SOURCES.md checksum block.
    fn listed_checksums(sources: &str) -> BTreeMap<String, String> {
        sources
            .lines()
            .filter_map(|line| {
                let (sum, path) = line.split_once("  ")?;
                (sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| (path.trim().to_owned(), sum.to_ascii_lowercase()))
            })
            .collect()
    }

    fn files_under(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, root, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel != "SOURCES.md" {
                    out.push(rel);
                }
            }
        }
    }

    /// Provenance stays true: every vendored file has a checksum in SOURCES.md and matches it,
    /// and every listed file exists.
    #[test]
    fn vendor_specs_match_sources() {
        let root = vendored_contracts_dir();
        let sources = std::fs::read_to_string(root.join("SOURCES.md")).unwrap();
        let listed = listed_checksums(&sources);
        let mut present = Vec::new();
        files_under(&root, &root, &mut present);
        present.sort();
        for rel in &present {
            let bytes = std::fs::read(root.join(rel)).unwrap();
            let actual: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let expected = listed.get(rel).unwrap_or_else(|| {
                panic!("{rel} has no SHA-256 line in tests/contracts/vendor/SOURCES.md")
            });
            assert_eq!(
                &actual, expected,
                "{rel} differs from the checksum in SOURCES.md"
            );
        }
        for rel in listed.keys() {
            assert!(
                present.contains(rel),
                "SOURCES.md lists {rel}, which is not in the folder"
            );
        }
        assert!(
            present.iter().any(|f| f.ends_with("LICENSE")),
            "licence files travel with the specs"
        );
    }

    #[test]
    fn specs_default_to_the_vendored_copies() {
        if std::env::var_os("SYNCCTL_CONTRACTS_DIR").is_none() {
            assert_eq!(contracts_dir(), vendored_contracts_dir());
            assert!(spec_path("snowflake/sqlapi.yaml").is_file());
        }
    }
}
