//! SIGINT/SIGTERM → a cancellation token every long-running command watches.
//!
//! Installing handlers matters most as PID 1 in a container: the kernel does not apply the
//! default action to PID 1, so without a handler KubernetesPodOperator's SIGTERM is ignored
//! and the pod is killed 30 s later without cleanup.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio_util::sync::CancellationToken;

/// Which signal arrived (0 = none) and a second token for "stop waiting for cleanup".
#[derive(Clone, Debug, Default)]
pub(crate) struct SignalState {
    signal: Arc<AtomicI32>,
    /// Fires on a second signal: give up on cleanup and report at once.
    pub(crate) force: CancellationToken,
}

/// SIGINT's number.
pub(crate) const SIGINT: i32 = 2;
/// SIGTERM's number.
pub(crate) const SIGTERM: i32 = 15;

impl SignalState {
    /// The signal that interrupted us, if any.
    pub(crate) fn received(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Spawns the listener on the current runtime.
pub(crate) fn install(cancel: CancellationToken, state: SignalState) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let n = tokio::select! {
                Some(()) = int.recv() => SIGINT,
                Some(()) = term.recv() => SIGTERM,
                else => return,
            };
            if cancel.is_cancelled() {
                tracing::warn!("Second signal: not waiting for cleanup any longer.");
                state.force.cancel();
            } else {
                let _ = state
                    .signal
                    .compare_exchange(0, n, Ordering::SeqCst, Ordering::SeqCst);
                tracing::warn!(
                    signal = n,
                    "Interrupted: cancelling remote work and reporting."
                );
                cancel.cancel();
            }
        }
    });
    Ok(())
}
