//! Airbyte client: trigger, poll, attach and cancel connection syncs, over the config API
//! (`/api/v1`, basic auth: Airbyte OSS) and the public API (`/api/public/v1` or Cloud's
//! `https://api.airbyte.com/v1`, bearer tokens from client credentials).
//!
//! What it does that the orchestrator anchors do not:
//! * the sync trigger is never repeated blindly: after a lost answer the connection's jobs
//!   are listed first ([`AirbyteClient::trigger`]);
//! * "a sync is already running" (409, or a body saying so) is an answer, not an error:
//!   attach, skip or fail ([`IfRunning`]);
//! * one table maps job states to outcomes, and unknown states keep the wait going
//!   ([`JOB_STATES`]);
//! * it waits on the shared [`syncctl_core::Waiter`]: stop waiting and leave the job, or
//!   cancel it; a signal cancels and waits for Airbyte to confirm (`on_kill`);
//! * the library decides what the reports mean for the command ([`conclude`]): which error
//!   class, in what words;
//! * an idempotency key remembers which job a task started ([`StateStore`]), so a rerun
//!   reattaches instead of starting another.

mod client;
mod conclude;
mod config_api;
mod error;
mod job;
mod public_api;
mod run;
mod settings;
mod state;
mod wait;

pub use client::{
    AirbyteClient, Api, Auth, ClientOptions, RECENT_JOBS, SERVICE, TokenObserver, Trigger, pick_job,
};
pub use conclude::{conclude, conclude_cancel};
pub use error::AirbyteError;
pub use job::{
    JOB_STATES, Job, Phase, StreamStats, describe_state, parse_iso8601_duration, phase_of,
};
pub use run::{
    Idempotency, IfRunning, JobReport, RunOptions, Verdict, cancel_existing, run_connection,
    watch_job,
};
pub use settings::{
    AirbyteSettings, ApiChoice, ENV_VARS, configured_connections, connection_env_var, is_uuid,
};
pub use state::{STATE_SCHEMA, StateRecord, StateStore};
pub use wait::{NoObserver, WaitEnd, WaitObserver, Waited, cancel_and_confirm, wait_for_job};
