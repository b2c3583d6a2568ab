//! What every command gets: the layered environment, cancellation, the idempotency key and
//! the knobs shared by all service clients.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use syncctl_config::Env;
use syncctl_core::{HumanDuration, IdempotencyKey, OrchestratorContext, Redactor};
use syncctl_http::RetryPolicy;
use tokio_util::sync::CancellationToken;

use crate::error::CliError;
use crate::signals::SignalState;

/// The context handed to every command.
#[derive(Clone)]
#[allow(dead_code)] // cancel, signals and progress are read by long-running commands as they land
pub(crate) struct AppContext {
    /// Process environment over `--env-file` files.
    pub(crate) env: Env,
    /// Who called us.
    pub(crate) orchestrator: OrchestratorContext,
    /// `--idempotency-key`, or the one derived from the orchestrator context.
    pub(crate) idempotency_key: Option<IdempotencyKey>,
    /// Fires on SIGINT/SIGTERM.
    pub(crate) cancel: CancellationToken,
    /// Which signal fired.
    pub(crate) signals: SignalState,
    /// Secret values to scrub from all output; commands add the ones they load from files.
    pub(crate) redactor: Arc<RwLock<Redactor>>,
    /// Whether progress bars may be drawn.
    pub(crate) progress: bool,
    /// `-v` count minus `-q` count (commands that print more detail in results with `-v`).
    pub(crate) verbosity: i8,
    /// Alert and metrics settings (`syncctl notify` sends with them).
    pub(crate) alerting: crate::alerting::Alerting,
}

impl AppContext {
    /// The retry policy for service clients; `SYNCCTL_HTTP_MAX_RETRIES` and
    /// `SYNCCTL_HTTP_RETRY_BASE` tune it (tests shorten delays with them).
    #[allow(dead_code)] // used by service commands as they land
    pub(crate) fn retry_policy(&self) -> Result<RetryPolicy, CliError> {
        let mut p = RetryPolicy::default();
        if let Some(v) = self.env.get("SYNCCTL_HTTP_MAX_RETRIES") {
            p.max_retries = v.parse().map_err(|_| {
                CliError::config(format!(
                    "SYNCCTL_HTTP_MAX_RETRIES must be a whole number, got {v:?}"
                ))
            })?;
        }
        if let Some(v) = self.env.get("SYNCCTL_HTTP_RETRY_BASE") {
            let d: HumanDuration = v
                .parse()
                .map_err(|e| CliError::config(format!("SYNCCTL_HTTP_RETRY_BASE: {e}")))?;
            p.base_delay = d.get();
            p.max_delay = p.max_delay.max(d.get());
        }
        Ok(p)
    }

    /// The HTTP request timeout (`SYNCCTL_HTTP_TIMEOUT`, default 60 s).
    #[allow(dead_code)] // used by service commands as they land
    pub(crate) fn http_timeout(&self) -> Result<Duration, CliError> {
        match self.env.get("SYNCCTL_HTTP_TIMEOUT") {
            None => Ok(Duration::from_secs(60)),
            Some(v) => v
                .parse::<HumanDuration>()
                .map(HumanDuration::get)
                .map_err(|e| CliError::config(format!("SYNCCTL_HTTP_TIMEOUT: {e}"))),
        }
    }

    /// Registers a secret value loaded from somewhere other than the environment.
    #[allow(dead_code)] // used by service commands as they land
    pub(crate) fn add_secret(&self, value: &str) {
        if let Ok(mut r) = self.redactor.write() {
            r.add(value);
        }
    }
}
