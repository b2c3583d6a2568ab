//! The CSV file connector: a spreadsheet exported as a CSV file, read whole and rewritten
//! atomically (see [`connector`] for the settings and the rules).
//!
//! A crate of its own so that file handling (replacement, permissions, spreadsheet formula
//! guards) evolves apart from the database connectors of `syncctl-sql`.

pub mod connector;
pub mod formula_guard;
mod target_file;

pub use connector::{CsvConnector, CsvSettings, FACTORY};

/// Every connector this crate provides (one line in the binary's registry).
pub const FACTORIES: &[syncctl_core::ConnectorFactory] = &[FACTORY];
