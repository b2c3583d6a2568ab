//! The only module that writes to stdout: the result line, Kestra's protocol lines, the result
//! file and the termination log. Everything passes through the redactor first.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};

use syncctl_core::{Metric, Redactor, RunResult, Status};

use crate::cli::OutputMode;

/// Where and how the result is reported.
pub(crate) struct Output {
    pub(crate) mode: OutputMode,
    pub(crate) result_file: Option<PathBuf>,
    pub(crate) termination_log: Option<PathBuf>,
}

/// Kubernetes keeps at most 4096 bytes of a termination message.
const TERMINATION_LOG_MAX: usize = 4096;

impl Output {
    /// Writes the result everywhere it is asked for; the stdout line goes last. Returns
    /// `false` when the result could not be delivered (result file unwritable, stdout closed
    /// or full): the orchestrator got nothing, so the process must not exit 0. The reason is
    /// on stderr, and in the stdout line when only the file failed.
    pub(crate) fn emit(
        &self,
        result: &mut RunResult,
        metrics: &[Metric],
        redactor: &Redactor,
    ) -> bool {
        let mut delivered = true;
        if let Some(path) = &self.result_file {
            // Written first so that a failure to write it can still be reported in the line.
            let line = redactor.redact(&result.to_json_line());
            if let Err(e) = write_result_file(path, format!("{line}\n").as_bytes()) {
                let msg = format!("could not write the result file {}: {e}", path.display());
                eprintln!("{}", redactor.redact(&format!("error: {msg}")));
                if result.exit_code == 0 {
                    // The line must agree with the exit code: the command did its work, but
                    // the orchestrator reading the file got nothing, so this run failed.
                    result.exit_code = 1;
                    result.status = Status::Failed;
                    result.error = Some(syncctl_core::result::ErrorInfo::new(
                        syncctl_core::ErrorClass::Internal,
                        format!("{msg}; the command itself completed (see data)"),
                    ));
                } else {
                    result.warnings.push(msg);
                }
                delivered = false;
            }
        }
        if let Some(path) = &self.termination_log
            && !matches!(
                result.status,
                Status::Succeeded | Status::Planned | Status::Skipped
            )
        {
            let reason = match &result.error {
                Some(e) => format!("{} ({}): {}", result.status.as_str(), e.class, e.message),
                None => result.status.as_str().to_owned(),
            };
            let mut reason = redactor.redact(&reason.replace('\n', " "));
            truncate_on_char_boundary(&mut reason, TERMINATION_LOG_MAX - 1);
            if let Err(e) = std::fs::write(path, format!("{reason}\n")) {
                eprintln!(
                    "warning: could not write the termination log {}: {e}",
                    path.display()
                );
            }
        }
        if self.mode == OutputMode::Text {
            eprintln!(
                "{}",
                redactor.redact(&crate::summary::human_summary(result))
            );
        }
        let mut lines = Vec::new();
        if self.mode == OutputMode::Kestra {
            lines.push(format!(
                "::{}::",
                serde_json::json!({ "outputs": kestra_outputs(result) })
            ));
            let mut all = vec![Metric::timer(
                "duration",
                result.duration_ms as f64 / 1000.0,
            )];
            all.extend_from_slice(metrics);
            lines.push(format!("::{}::", serde_json::json!({ "metrics": all })));
        }
        lines.push(result.to_json_line());
        let mut out = std::io::stdout().lock();
        let written = lines
            .iter()
            .try_for_each(|l| writeln!(out, "{}", redactor.redact(l)))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            eprintln!("error: could not write the result to stdout: {e}");
            delivered = false;
        }
        delivered
    }
}

/// Prints clap's help or version text (the one stdout output that is not a result).
pub(crate) fn print_help(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{text}");
    let _ = out.flush();
}

/// Prints a message to stderr through the redactor (used before logging is set up).
pub(crate) fn print_error(text: &str, redactor: &Redactor) {
    eprintln!("{}", redactor.redact(text).trim_end());
}

/// Kestra `outputs`: the result's headline fields plus `data`, readable as
/// `{{ outputs.<task>.vars.status }}`.
fn kestra_outputs(r: &RunResult) -> serde_json::Value {
    serde_json::json!({
        "status": r.status,
        "exit_code": r.exit_code,
        "run_id": r.run_id,
        "command": r.command,
        "idempotency_key": r.idempotency_key,
        "error_class": r.error.as_ref().map(|e| e.class),
        "error_message": r.error.as_ref().map(|e| e.message.clone()),
        "data": r.data,
    })
}

fn truncate_on_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Writes the result file without ever replacing something that is not ours to replace:
///
/// * a symlink is written through (its target is written, the link stays);
/// * a device, pipe or other non-regular file (`/dev/stdout`, `/dev/termination-log`) is
///   written in place;
/// * an existing regular file we may not write is refused, never replaced by rename;
/// * otherwise a temporary file is renamed over it, so a reader never sees half a result.
fn write_result_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    match std::fs::metadata(&target) {
        Ok(m) if !m.is_file() => {
            let mut f = std::fs::OpenOptions::new().write(true).open(&target)?;
            return f.write_all(bytes).and_then(|()| f.flush());
        }
        Ok(m) if m.permissions().readonly() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the file is read-only; it was not replaced",
            ));
        }
        Ok(_) => {
            // Permission bits alone do not say whether we may write it (another owner).
            std::fs::OpenOptions::new().write(true).open(&target)?;
        }
        Err(_) => {}
    }
    write_atomically(&target, bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).or_else(|_| {
        // Some mounts refuse renames; fall back to writing in place.
        let _ = std::fs::remove_file(&tmp);
        std::fs::write(path, bytes)
    })
}
