//! The exit-code table (also in `syncctl --help` and the README).

use syncctl_core::{ErrorClass, Status};

/// Exit codes, documented for orchestrators.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    succeeded (dry runs too)
  1    the remote job or the sync failed
  2    invalid usage, config or input (do not retry)
  3    authentication or permission refused (do not retry)
  4    transient: unavailable, network, rate-limited after retries (a retry may succeed)
  5    wait timeout or deadline reached
  6    conflict: already running and told to fail, or a lock is held
  130  interrupted by SIGINT;  143  interrupted by SIGTERM
  N    nothing to do, when --noop-exit-code N is set (default 0; BashOperator skips on 99)

The last line of stdout is always one JSON result (schema syncctl.result/v1); logs go to stderr.";

/// The exit code for a failure of `class`; `signal` is the signal that interrupted us, if any.
pub(crate) fn for_class(class: ErrorClass, signal: Option<i32>) -> i32 {
    match class {
        ErrorClass::RemoteFailed | ErrorClass::Internal => 1,
        ErrorClass::Usage | ErrorClass::Config => 2,
        ErrorClass::Auth => 3,
        ErrorClass::Transient => 4,
        ErrorClass::Timeout => 5,
        ErrorClass::Conflict => 6,
        ErrorClass::Cancelled => 128 + signal.unwrap_or(15),
    }
}

/// The exit code for a finished command.
pub(crate) fn for_status(
    status: Status,
    class: Option<ErrorClass>,
    signal: Option<i32>,
    noop_exit_code: i32,
) -> i32 {
    match status {
        Status::Succeeded | Status::Planned => 0,
        Status::Skipped => noop_exit_code,
        Status::TimedOut => 5,
        Status::Cancelled => 128 + signal.unwrap_or(15),
        Status::Failed => for_class(class.unwrap_or(ErrorClass::RemoteFailed), signal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(for_status(Status::Succeeded, None, None, 99), 0);
        assert_eq!(for_status(Status::Planned, None, None, 99), 0);
        assert_eq!(for_status(Status::Skipped, None, None, 99), 99);
        assert_eq!(for_status(Status::Skipped, None, None, 0), 0);
        assert_eq!(
            for_status(Status::TimedOut, Some(ErrorClass::Timeout), None, 0),
            5
        );
        assert_eq!(for_status(Status::Cancelled, None, Some(2), 0), 130);
        assert_eq!(for_status(Status::Cancelled, None, Some(15), 0), 143);
        assert_eq!(
            for_status(Status::Failed, Some(ErrorClass::Conflict), None, 0),
            6
        );
        assert_eq!(
            for_status(Status::Failed, Some(ErrorClass::Auth), None, 0),
            3
        );
        assert_eq!(
            for_status(Status::Failed, Some(ErrorClass::Transient), None, 0),
            4
        );
        assert_eq!(
            for_status(Status::Failed, Some(ErrorClass::Usage), None, 0),
            2
        );
        assert_eq!(
            for_status(Status::Failed, Some(ErrorClass::RemoteFailed), None, 0),
            1
        );
    }
}
