//! Driving the real `syncctl` binary and reading its result.

use std::process::Output;

/// The parsed last stdout line, plus stdout and stderr for further checks.
#[derive(Debug)]
pub struct CliRun {
    /// The process exit code (`-1` when killed by a signal).
    pub code: i32,
    /// The full stdout.
    pub stdout: String,
    /// The full stderr.
    pub stderr: String,
    /// The result: the last stdout line parsed as JSON.
    pub result: serde_json::Value,
}

impl CliRun {
    /// Parses a finished process's output.
    ///
    /// # Panics
    /// When the last stdout line is not a JSON object (the contract is broken).
    #[must_use]
    pub fn from_output(out: &Output) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let last = stdout.lines().last().unwrap_or_default();
        let result: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| {
            panic!("last stdout line is not JSON ({e}):\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
        assert!(result.is_object(), "result is not an object: {last}");
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
            result,
        }
    }

    /// `result.status`.
    #[must_use]
    pub fn status(&self) -> &str {
        self.result["status"].as_str().unwrap_or_default()
    }

    /// `result.error.class`, if any.
    #[must_use]
    pub fn error_class(&self) -> Option<&str> {
        self.result["error"]["class"].as_str()
    }
}

/// Insta redactions for the parts of a result that change per run.
#[must_use]
pub fn volatile_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        (".run_id", "[run_id]"),
        (".started_at", "[timestamp]"),
        (".finished_at", "[timestamp]"),
        (".duration_ms", "[duration]"),
    ]
}
