//! Progress for long waits: a spinner when stderr is a terminal, otherwise a plain log line
//! when the state changes and at most every `every` seconds (Airflow task logs).

use std::time::Duration;

use tokio::time::Instant;
use tracing::Span;
use tracing_indicatif::span_ext::IndicatifSpanExt;

/// Reports the progress of one wait.
#[allow(dead_code)] // used by service commands as they land
pub(crate) struct Progress {
    span: Option<Span>,
    last_message: String,
    last_log: Option<Instant>,
    every: Duration,
}

#[allow(dead_code)] // used by service commands as they land
impl Progress {
    /// Starts reporting; `bars` says whether spinners are active (see `logging::init`).
    pub(crate) fn new(bars: bool, title: &str) -> Self {
        let span = bars.then(|| {
            let span = tracing::info_span!("progress", indicatif.pb_show = tracing::field::Empty);
            span.pb_set_message(title);
            span.pb_start();
            span
        });
        Self {
            span,
            last_message: String::new(),
            last_log: None,
            every: Duration::from_secs(30),
        }
    }

    /// Updates the message; logs it when it changed or `every` has passed.
    pub(crate) fn update(&mut self, message: &str) {
        if let Some(span) = &self.span {
            span.pb_set_message(message);
            return;
        }
        let due = self.last_log.is_none_or(|t| t.elapsed() >= self.every);
        if message != self.last_message || due {
            tracing::info!("{message}");
            self.last_message = message.to_owned();
            self.last_log = Some(Instant::now());
        }
    }
}
