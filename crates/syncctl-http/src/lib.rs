//! The HTTP core: the one place syncctl builds a `reqwest::Client`.
//!
//! Every service client (Airbyte, Databricks, Snowflake, HubSpot, …) sends through an
//! [`HttpClient`], which adds timeouts and a User-Agent, authenticates with an [`auth`]
//! provider (refreshing tokens before they expire and re-authenticating once on 401), waits on
//! a per-service [`RateLimiter`], fails fast while a [`CircuitBreaker`] is open, and retries
//! with jittered exponential backoff that honours `Retry-After`, but only requests that are safe
//! to repeat (see [`RetrySafety`]).

pub mod auth;
mod client;
mod error;
mod rate;
mod retry;
mod stats;

pub use auth::{
    AccessToken, AuthProvider, BasicAuth, BearerToken, ClientCredentials, CredentialStyle,
    RefreshTokenGrant, RefreshingToken, TokenFetcher,
};
// The breaker is pure state (it lives in core so a connector's `BuildContext` can carry the
// engine's persisted one); re-exported here where the client uses it.
pub use client::{
    Body, HttpClient, HttpClientBuilder, RecordingSleeper, Request, Response, RetrySafety, Sleeper,
    TokioSleeper,
};
pub use error::{HttpError, is_retryable_answer, is_retryable_status};
pub use rate::RateLimiter;
pub use retry::{RetryPolicy, parse_retry_after};
pub use stats::{HttpStats, HttpStatsSnapshot};
pub use syncctl_core::breaker::{
    BreakerConfig, BreakerPhase, BreakerState, CircuitBreaker, SharedBreaker,
};

/// The User-Agent every request carries.
pub const USER_AGENT: &str = concat!("syncctl/", "0.1.0");
