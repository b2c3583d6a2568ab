//! tracing setup: stderr (stdout in Kestra mode), text or JSON, redacted, with progress bars
//! only when stderr is a terminal.

use std::io::{self, Write};
use std::sync::{Arc, RwLock};

use syncctl_core::Redactor;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::cli::LogFormat;

/// Where log lines go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogTarget {
    Stderr,
    /// Kestra marks every stderr line as a warning, so Kestra mode logs to stdout.
    Stdout,
}

/// A writer that scrubs secrets from each formatted event before it is written.
#[derive(Clone)]
struct Redacting<W> {
    inner: W,
    redactor: Arc<RwLock<Redactor>>,
}

struct RedactingWriter<W: Write> {
    inner: W,
    redactor: Arc<RwLock<Redactor>>,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = self.redactor.read().map_or_else(
            |_| String::from("[log line withheld]\n"),
            |r| r.redact(&text),
        );
        self.inner.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            redactor: self.redactor.clone(),
        }
    }
}

/// The filter for a verbosity: 0 info, 1 debug (ours), 2 trace (ours), 3 trace (all);
/// negative is quieter. `SYNCCTL_LOG` (EnvFilter syntax) overrides.
fn filter(verbosity: i8, override_spec: Option<&str>) -> EnvFilter {
    if let Some(spec) = override_spec
        && let Ok(f) = EnvFilter::try_new(spec)
    {
        return f;
    }
    let spec = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => {
            "warn,syncctl=info,syncctl_core=info,syncctl_http=info,syncctl_config=info,syncctl_validate=info,syncctl_airbyte=info,syncctl_databricks=info,syncctl_snowflake=info,syncctl_sync=info,syncctl_sql=info,syncctl_csv=info"
        }
        1 => {
            "warn,syncctl=debug,syncctl_core=debug,syncctl_http=debug,syncctl_config=debug,syncctl_validate=debug,syncctl_airbyte=debug,syncctl_databricks=debug,syncctl_snowflake=debug,syncctl_sync=debug,syncctl_sql=debug,syncctl_csv=debug"
        }
        2 => {
            "info,syncctl=trace,syncctl_core=trace,syncctl_http=trace,syncctl_config=trace,syncctl_validate=trace,syncctl_airbyte=trace,syncctl_databricks=trace,syncctl_snowflake=trace,syncctl_sync=trace,syncctl_sql=trace,syncctl_csv=trace"
        }
        _ => "trace",
    };
    EnvFilter::new(spec)
}

/// Installs the global subscriber. Returns whether progress bars are active.
pub(crate) fn init(
    format: LogFormat,
    verbosity: i8,
    target: LogTarget,
    progress_allowed: bool,
    redactor: Arc<RwLock<Redactor>>,
    override_spec: Option<&str>,
) -> bool {
    use std::io::IsTerminal;
    let ansi = target == LogTarget::Stderr
        && io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let progress = progress_allowed && target == LogTarget::Stderr && io::stderr().is_terminal();
    let indicatif = progress.then(tracing_indicatif::IndicatifLayer::new);
    let writer = match (&indicatif, target) {
        (Some(layer), _) => BoxMakeWriter::new(Redacting {
            inner: layer.get_stderr_writer(),
            redactor,
        }),
        (None, LogTarget::Stdout) => BoxMakeWriter::new(Redacting {
            inner: io::stdout,
            redactor,
        }),
        (None, LogTarget::Stderr) => BoxMakeWriter::new(Redacting {
            inner: io::stderr,
            redactor,
        }),
    };
    // One global filter: a per-layer filter inside a Vec of boxed layers dropped the first
    // debug event after a filtered-out info event (seen with `SYNCCTL_LOG=warn,…`).
    type Filtered = tracing_subscriber::layer::Layered<EnvFilter, Registry>;
    let fmt: Box<dyn Layer<Filtered> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_target(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .boxed(),
    };
    let bars =
        indicatif.map(|l| l.with_filter(tracing_indicatif::filter::IndicatifFilter::new(false)));
    tracing_subscriber::registry()
        .with(filter(verbosity, override_spec))
        .with(fmt)
        .with(bars)
        .try_init()
        .is_ok()
        && progress
}
