//! The vocabulary every other syncctl crate shares: the `syncctl.result/v1` envelope, error
//! classes and the [`Conclusion`] a library hands the binary, the shared [`Waiter`] for remote
//! jobs, durations, orchestrator context, secret redaction, records, the connector traits
//! and their registry, and the (pure) circuit breaker.
//!
//! This crate never does I/O: no network, no files, no environment reads (the waiter only
//! uses tokio's clock). Callers hand it the
//! data (an environment map, a clock reading) so that everything here is a pure function.

pub mod breaker;
pub mod conclusion;
pub mod connector;
pub mod context;
pub mod digest;
pub mod duration;
pub mod error;
pub mod record;
pub mod redact;
pub mod registry;
pub mod result;
pub mod wait;

pub use conclusion::{Conclusion, End};
pub use connector::{
    BuildContext, BuildFuture, Capabilities, Connector, ConnectorError, ConnectorFactory,
    CredentialStore, FieldSchema, FieldType, MemoryCredentials, NaturalKey, Normalisation,
    ObjectSchema, Page, PageOrder, PageToken, RateLimitScope, ReadRequest, RecordError, Sink,
    Source, WriteContext, WriteOp, WriteOutcome,
};
pub use context::{IdempotencyKey, OrchestratorContext};
pub use duration::{HumanDuration, ParseDurationError};
pub use error::{Classified, ErrorClass};
pub use record::{Record, RecordKey};
pub use redact::Redactor;
pub use registry::{Registry, parse_settings};
pub use result::{ErrorInfo, Metric, MetricKind, RESULT_SCHEMA_ID, RunResult, Status};
pub use wait::{MAX_KILL_GRACE, OnKill, Stop, WaitOptions, WaitOptionsError, Waiter};
