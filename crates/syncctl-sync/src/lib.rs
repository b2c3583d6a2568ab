//! The bidirectional sync engine, its state store and audit trail.
//!
//! * [`config`]: the `sync.yaml` model and its loader.
//! * [`builtin`]: the built-in mappings, YAML files in the `sync.yaml` format.
//! * [`mapping`]: the canonical view both sides are compared in.
//! * [`merge`]: the pure three-way, per-field merge of one pair.
//! * [`engine`]: a run: pages, pairing, validation, batches, read-back, deletes, cursors.
//! * [`store`]: the SQLite/PostgreSQL state store (links, audit, conflicts, cursors, breakers,
//!   lock).
//! * [`credentials`]: rotating secrets (refresh tokens) in the state store, AES-256-GCM
//!   with `SYNCCTL_STATE_KEY`.
//! * [`report`]: the result data of a run.
//!
//! This crate never names a concrete connector; it works through `syncctl_core::connector`.

pub mod binding;
pub mod builtin;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod error;
pub mod mapping;
pub mod merge;
pub mod report;
pub mod store;

pub use config::{
    ConflictStrategy, DeletePolicy, Direction, SyncConfig, parse_config, parse_config_with,
};
pub use credentials::{StateCredentials, StateKey};
pub use engine::{RunOutcome, RunSettings, config_problems, run};
pub use error::SyncError;
pub use report::RunReport;
pub use store::{Side, StateStore};

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod testing;
