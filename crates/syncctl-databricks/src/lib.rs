//! Databricks Jobs client: run-now (by id or exact name), poll runs with their tasks, cancel,
//! repair, and the flows the `syncctl dbx` commands run on top.
//!
//! * [`config`] resolves the host and credentials like the Databricks CLI (environment, then
//!   a `~/.databrickscfg` profile; PAT or OAuth M2M).
//! * [`client::JobsClient`] makes the Jobs API 2.2 (or 2.1) calls through `syncctl-http`.
//! * [`state`] is the one table of life-cycle and result names, legacy and newer.
//! * [`flow::Flow`] triggers or attaches, waits with a wait timeout and a deadline, cancels
//!   on signals and reports per-task results.

pub mod client;
pub mod config;
mod error;
pub mod flow;
pub mod model;
pub mod state;

pub use client::{ClientOptions, JobsClient, RunNowAnswer};
pub use config::{Credentials, Settings};
pub use error::DatabricksError;
pub use flow::{
    Ending, Flow, FlowFailure, FlowResult, JobRef, OnKill, RunNowSpec, RunReport, TaskReport,
    WaitOptions,
};
pub use model::ApiVersion;
