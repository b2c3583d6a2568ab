//! How a command against a remote service ended, decided by the library that understood the
//! service: the binary turns a [`Conclusion`] into its result and exit code without knowing
//! the service (the error's [`Classified`] class decides the code).

use crate::{Classified, Metric};

/// How it ended.
#[derive(Debug)]
pub enum End<E> {
    /// Everything asked for was done.
    Succeeded,
    /// Nothing to do (already running and told to skip, nothing new to load, already ended).
    Skipped,
    /// Failed, timed out or interrupted; the error's class says which.
    Failed(E),
}

/// A command's ending with what it reports: `data` for the result, warnings and metrics.
#[derive(Debug)]
pub struct Conclusion<E> {
    /// How it ended.
    pub end: End<E>,
    /// The result's `data`.
    pub data: serde_json::Value,
    /// Things to tell the user that did not decide the ending.
    pub warnings: Vec<String>,
    /// Metrics of the run.
    pub metrics: Vec<Metric>,
}

impl<E: Classified> Conclusion<E> {
    /// Ends as `end` with `data`.
    #[must_use]
    pub fn new(end: End<E>, data: serde_json::Value) -> Self {
        Self {
            end,
            data,
            warnings: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// A success.
    #[must_use]
    pub fn succeeded(data: serde_json::Value) -> Self {
        Self::new(End::Succeeded, data)
    }

    /// Nothing to do.
    #[must_use]
    pub fn skipped(data: serde_json::Value) -> Self {
        Self::new(End::Skipped, data)
    }

    /// A failure of the error's class.
    #[must_use]
    pub fn failed(data: serde_json::Value, error: E) -> Self {
        Self::new(End::Failed(error), data)
    }

    /// Adds warnings.
    #[must_use]
    pub fn with_warnings(mut self, warnings: impl IntoIterator<Item = String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// Adds metrics.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Vec<Metric>) -> Self {
        self.metrics.extend(metrics);
        self
    }

    /// The error, if it failed.
    #[must_use]
    pub fn error(&self) -> Option<&E> {
        match &self.end {
            End::Failed(e) => Some(e),
            _ => None,
        }
    }
}
