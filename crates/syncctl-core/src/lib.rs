//! The vocabulary every other syncctl crate shares: the `syncctl.result/v1` envelope, error
//! classes, durations, orchestrator context, secret redaction and records.
//!
//! This crate never does I/O: no network, no files, no environment reads. Callers hand it the
//! data (an environment map, a clock reading) so that everything here is a pure function.

pub mod connector;
pub mod context;
pub mod duration;
pub mod error;
pub mod record;
pub mod redact;
pub mod result;

pub use connector::{
    BuildContext, BuildFuture, Capabilities, Connector, ConnectorError, ConnectorFactory,
    FieldSchema, FieldType, NaturalKey, ObjectSchema, Page, PageToken, ReadRequest, RecordError,
    Sink, Source, WriteContext, WriteOp, WriteOutcome,
};
pub use context::{IdempotencyKey, OrchestratorContext};
pub use duration::{HumanDuration, ParseDurationError};
pub use error::{Classified, ErrorClass};
pub use record::{Record, RecordKey};
pub use redact::Redactor;
pub use result::{ErrorInfo, Metric, MetricKind, RESULT_SCHEMA_ID, RunResult, Status};
