//! Databricks Jobs client: run-now (by id or exact name), poll runs with their tasks, cancel,
//! repair, and the flows the `syncctl dbx` commands run on top.
//!
//! * [`config`] resolves the host and credentials like the Databricks CLI (environment, then
//!   a `~/.databrickscfg` profile; PAT or OAuth M2M).
//! * [`client::JobsClient`] makes the Jobs API 2.2 (or 2.1) calls through `syncctl-http`.
//! * [`state`] is the one table of life-cycle and result names, legacy and newer.
//! * [`flow::Flow`] triggers or attaches, waits on the shared `syncctl_core::Waiter` (wait
//!   timeout, deadline), cancels on signals and reports per-task results; [`conclude`] turns
//!   how a flow ended into the command's ending and error class.

pub mod client;
pub mod conclude;
pub mod config;
mod error;
pub mod flow;
pub mod model;
pub mod state;

pub use client::{ClientOptions, JobsClient, RunNowAnswer};
pub use conclude::conclude;
pub use config::{Credentials, Settings};
pub use error::DatabricksError;
pub use flow::{Ending, Flow, FlowFailure, FlowResult, JobRef, RunNowSpec, RunReport, TaskReport};
pub use model::ApiVersion;
