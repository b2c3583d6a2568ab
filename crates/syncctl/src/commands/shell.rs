//! `syncctl completions SHELL` and `syncctl man`: generated from the clap definitions, so they
//! never drift from the flags.

use clap::{Args, ValueEnum};
use clap_complete::Shell;

use super::Outcome;

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ShellArg {
    /// bash (bash-completion)
    Bash,
    /// zsh (put the script on $fpath as _syncctl)
    Zsh,
    /// fish (~/.config/fish/completions/syncctl.fish)
    Fish,
}

/// Arguments of `syncctl completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    shell: ShellArg,
}

/// Arguments of `syncctl man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {}

/// The completion script on stdout (no result line: stdout is the script).
pub(crate) fn completions(args: &CompletionsArgs) -> Outcome {
    let shell = match args.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    let mut cmd = crate::help::command_for_completions();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "syncctl", &mut script);
    raw(String::from_utf8_lossy(&script).into_owned())
}

/// The man page (roff) on stdout: the top page, then one section per command.
pub(crate) fn man() -> Outcome {
    let cmd = crate::help::command_for_completions();
    let mut page = Vec::new();
    let rendered = clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .and_then(|()| render_subcommands(&cmd, "syncctl", &mut page));
    match rendered {
        Ok(()) => raw(String::from_utf8_lossy(&page).into_owned()),
        Err(e) => Outcome::failed(
            serde_json::Value::Null,
            crate::error::CliError::new(syncctl_core::ErrorClass::Internal, e),
        ),
    }
}

/// Appends each command's page as a section (`.SH "SYNCCTL SYNC RUN"`), so that one
/// `man syncctl` covers every command.
fn render_subcommands(cmd: &clap::Command, prefix: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
    for sc in cmd.get_subcommands().filter(|sc| !sc.is_hide_set()) {
        if sc.get_name() == "help" {
            continue;
        }
        let name = format!("{prefix} {}", sc.get_name());
        let titled = sc.clone().bin_name(name.clone());
        let man = clap_mangen::Man::new(titled);
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        let mut section = Vec::new();
        man.render_description_section(&mut section)?;
        man.render_synopsis_section(&mut section)?;
        man.render_options_section(&mut section)?;
        if sc.get_after_help().is_some() {
            man.render_extra_section(&mut section)?;
        }
        out.extend(demote_headings(&section));
        render_subcommands(sc, &name, out)?;
    }
    Ok(())
}

/// A command's sections as subsections (`.SS`), so they nest under the command's heading.
fn demote_headings(section: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(section);
    text.lines()
        .map(|l| match l.strip_prefix(".SH ") {
            Some(rest) => format!(".SS {rest}\n"),
            None => format!("{l}\n"),
        })
        .flat_map(String::into_bytes)
        .collect()
}

fn raw(text: String) -> Outcome {
    let mut outcome = Outcome::succeeded(serde_json::Value::Null);
    outcome.raw_stdout = Some(text);
    outcome
}
