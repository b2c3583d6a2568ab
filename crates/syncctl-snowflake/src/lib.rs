//! Snowflake SQL API v2 client and the partitioned COPY INTO builder.
//!
//! * [`copy`] turns a table, a location, date partitions and COPY options into statements,
//!   with every identifier quoted and every literal escaped ([`quote`]), and secrets kept out
//!   of the copy of the SQL that people see.
//! * [`api`] submits statements asynchronously with a `requestId`, resubmits with
//!   `retry=true` after a lost answer, polls, follows result partitions and cancels.
//! * [`run`] runs a plan (one transaction or one request per statement) and collects the
//!   per-file results on the shared `syncctl_core::Waiter`; [`result`] reads COPY output;
//!   [`conclude`](mod@conclude) decides what a run means for the command (error class, words).
//! * [`auth`] signs key-pair JWTs and names the token type; [`settings`] resolves the
//!   connection from flags, `SNOWFLAKE_*` variables and an Airflow connection.

pub mod api;
pub mod auth;
pub mod conclude;
pub mod copy;
mod error;
pub mod location;
pub mod partition;
pub mod quote;
pub mod result;
pub mod run;
pub mod settings;

pub use api::{ResultSet, SqlApi, StatementRequest, StatementStatus, Submitted};
pub use auth::{Credentials, KeyPairJwt, PrivateKey};
pub use conclude::conclude;
pub use copy::{
    CopyPlan, CopySpec, FileFormat, MatchByColumnName, MetadataColumn, OnError, PlannedCopy,
    StorageAccess,
};
pub use error::SnowflakeError;
pub use location::{Cloud, Location};
pub use partition::{Partition, PartitionTemplate};
pub use result::{CopyOutput, FileResult, Totals, ValidationError};
pub use run::{CopyReport, RunEnd, RunOptions, run_copy};
pub use settings::{ConnectionSettings, Overrides, SessionContext};
