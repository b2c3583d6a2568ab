//! Database connectors: PostgreSQL, MySQL/MariaDB and SQLite (CSV files are `syncctl-csv`).
//!
//! One module per connector, each implementing the traits of [`syncctl_core::connector`] and
//! exporting a `FACTORY`; [`registry`] lists them. Adding a connector is one module here plus
//! one line in [`registry::FACTORIES`]. Every connector passes `syncctl_testkit::conformance`.
//!
//! Shared pieces: [`settings`] (the settings every SQL connector takes), [`ident`]
//! (identifier parsing and quoting per dialect) and `syncctl_validate::coerce` (value
//! conversion, shared with pre-write validation so both agree on what fits a column). The
//! PostgreSQL and MySQL connectors also share [`sql_rows`] (rows read as text, prepared write
//! ops, batch grouping, page tokens, statement counters), `sql_connector` (connector state,
//! fail-fast connection checks, settings checks of the discovered table) and `batch_replay`
//! (the bulk attempt and its per-savepoint replay); their own modules keep the SQL dialect,
//! the catalog queries and the bulk statement shapes.

mod batch_replay;
pub mod ident;
pub mod mysql;
pub mod postgres;
pub mod registry;
pub mod settings;
mod sql_connector;
pub mod sql_rows;
pub mod sqlite;

pub use registry::{FACTORIES, build, factory};
