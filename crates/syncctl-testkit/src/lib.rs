//! Dev-only test support for syncctl.
//!
//! * [`server`]: a fake HTTP server on `127.0.0.1:0` that records every request and can inject
//!   faults (429 with `Retry-After`, 5xx, slow answers, dropped connections) per route.
//! * [`prism`]: runs a test's traffic through Stoplight Prism (`prism proxy --errors`) so that a
//!   request syncctl sends, or a response a fake returns, that breaks the vendor's spec fails.
//! * [`conformance`]: the suite every connector passes against a real instance of its system
//!   or its stateful fake (here, so that a connector crate never depends on another one).
//! * [`bench_rows`]: the rows the connector benchmarks move, and the check of what they stored.
//! * [`cli`]: helpers for driving the real `syncctl` binary and reading its result line.
//! * [`services`]: the registry behind `syncctl-fakes serve <service>`.
//! * [`xsd`]: QuickBooks contract checks of JSON bodies against Intuit's XSDs.
//!
//! Fakes are stateful (cargo's fake registry is the model): tests seed them through a builder,
//! run syncctl against them, then assert on both the result and what the fake saw.

pub mod bench_rows;
pub mod cli;
pub mod conformance;
pub mod fakes;
pub mod prism;
pub mod receivers;
pub mod server;
pub mod services;
pub mod xsd;

pub use server::{FakeServer, Fault, FaultRule, RecordedRequest};
