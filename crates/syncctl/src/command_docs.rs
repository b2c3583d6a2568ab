//! `docs/commands/<group>-<command>.md`: one page per command. The part between the
//! `GENERATED` markers (usage, flags with their values, defaults and variables, and the
//! environment the command reads) is rendered here from the same clap tree `--help` shows, and
//! a test fails when a page's copy differs, so a changed flag cannot leave a stale page; rerun
//! it with `SYNCCTL_UPDATE_DOCS=1` to rewrite them. Everything outside the markers (result
//! `data`, exit codes, examples) is written by hand; its examples must still parse.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Arg, Command};

use crate::help;

pub(crate) const BEGIN: &str = "<!-- BEGIN GENERATED from the clap definitions: \
    SYNCCTL_UPDATE_DOCS=1 cargo test -p syncctl --bin syncctl command_docs -->";
pub(crate) const END: &str = "<!-- END GENERATED -->";

/// Every leaf command as `(path, command)`, in `--help` order.
pub(crate) fn leaves() -> Vec<(String, Command)> {
    fn walk(cmd: &Command, parent: &str, out: &mut Vec<(String, Command)>) {
        for sc in cmd.get_subcommands().filter(|sc| sc.get_name() != "help") {
            let path = if parent.is_empty() {
                sc.get_name().to_owned()
            } else {
                format!("{parent} {}", sc.get_name())
            };
            if sc.has_subcommands() {
                walk(sc, &path, out);
            } else {
                out.push((path, sc.clone()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&help::command(), "", &mut out);
    out
}

/// `docs/commands/sync-conflicts-list.md` for `sync conflicts list`.
pub(crate) fn page_path(docs: &Path, path: &str) -> PathBuf {
    docs.join("commands")
        .join(format!("{}.md", path.replace(' ', "-")))
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `[name: value]` notes clap shows after a help text, taken out of it.
fn take_note(help: &mut String, name: &str) -> Option<String> {
    let open = format!("[{name}: ");
    let start = help.find(&open)?;
    let rest = &help[start + open.len()..];
    // Notes may hold brackets of their own ("[default: the config's `state`, else …]").
    let mut depth = 1;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end?;
    let value = rest[..end].trim().to_owned();
    help.replace_range(start..start + open.len() + end + 1, "");
    *help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(value)
}

/// Help text for a table: outside code spans, `<NAME>` would read as an HTML tag and vanish.
fn prose(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 0 {
                part.replace('<', "&lt;").replace('>', "&gt;")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// A default value as code (`10s`), or as it is written when it is a sentence.
fn code_or_prose(d: String) -> String {
    if d.contains(' ') || d.contains('`') {
        d
    } else {
        format!("`{d}`")
    }
}

fn flag_row(arg: &Arg) -> String {
    let mut help = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    let env = take_note(&mut help, "env");
    let mut default = take_note(&mut help, "default");
    let connectors = take_note(&mut help, "connectors");
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() {
        default = Some(defaults.join(", "));
    }
    let name = match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("`-{s}`, `--{l}`"),
        (None, Some(l)) => format!("`--{l}`"),
        (Some(s), None) => format!("`-{s}`"),
        (None, None) => format!("`{}` (positional)", arg.get_id()),
    };
    let takes_value = !matches!(
        arg.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
    );
    if !takes_value {
        default = None;
    }
    let mut value = if takes_value {
        arg.get_value_names()
            .map(|v| {
                v.iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| format!("`{}`", arg.get_id().as_str().to_uppercase()))
    } else {
        String::new()
    };
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| format!("`{}`", p.get_name()))
        .collect();
    if takes_value && !possible.is_empty() {
        value = possible.join(" | ");
    }
    if let Some(c) = connectors {
        value = c
            .split(',')
            .map(|k| format!("`{}`", k.trim()))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if matches!(arg.get_action(), clap::ArgAction::Append) {
        value.push_str(", repeatable");
    }
    let required = if arg.is_required_set() {
        " (required)"
    } else {
        ""
    };
    format!(
        "| {name}{required} | {} | {} | {} | {} |",
        cell(&value),
        cell(&default.map(code_or_prose).unwrap_or_default()),
        env.map(|e| format!("`{e}`")).unwrap_or_default(),
        prose(&cell(&help))
    )
}

/// The generated part of the page of `path`.
pub(crate) fn generated(path: &str, cmd: &Command) -> String {
    let mut s = String::new();
    let about = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    let _ = writeln!(s, "{about}\n");
    let mut cmd = cmd.clone().bin_name(format!("syncctl {path}"));
    let usage = cmd.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ").trim();
    let _ = writeln!(s, "```text\n{usage}\n```\n");
    let _ = writeln!(s, "### Flags\n");
    let _ = writeln!(
        s,
        "Global options (`--output`, `--result-file`, `-v`, `--env-file`, …) work here too: see \
         [the CLI page](../cli.md#global-options-before-or-after-any-command).\n"
    );
    let _ = writeln!(
        s,
        "| Flag | Value | Default | Environment | Description |\n|---|---|---|---|---|"
    );
    let mut headings: Vec<Option<String>> = Vec::new();
    for arg in cmd.get_arguments() {
        let h = arg.get_help_heading().map(str::to_owned);
        if !headings.contains(&h) {
            headings.push(h);
        }
    }
    for heading in headings {
        for arg in cmd.get_arguments().filter(|a| {
            a.get_help_heading().map(str::to_owned) == heading
                && !a.is_hide_set()
                && a.get_id() != "help"
                && a.get_id() != "version"
        }) {
            let mut row = flag_row(arg);
            if let Some(h) = &heading {
                // The group the flag is listed under in --help.
                row = row.replacen(" |", &format!(" ({h}) |"), 1);
            }
            let _ = writeln!(s, "{row}");
        }
    }
    let notes: Vec<String> = cmd
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default()
        .split("\n\n")
        .filter(|block| {
            !block.trim().is_empty()
                && !block.starts_with("Examples:")
                && !block.starts_with("Global options (")
        })
        .map(str::to_owned)
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(
            s,
            "\n### Environment and notes (from `--help`)\n\n```text\n{}\n```",
            notes.join("\n\n")
        );
    }
    s
}

/// The page of `path` with its generated part replaced; `None` when it has no markers.
pub(crate) fn refresh(page: &str, generated: &str) -> Option<String> {
    let start = page.find(BEGIN)?;
    let end = page.find(END)?;
    Some(format!(
        "{}{BEGIN}\n{generated}{}",
        &page[..start],
        &page[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    }

    /// The pages match the clap tree; `SYNCCTL_UPDATE_DOCS=1` rewrites their generated part.
    #[test]
    fn command_docs_are_current() {
        let update = std::env::var_os("SYNCCTL_UPDATE_DOCS").is_some();
        let mut stale = Vec::new();
        for (path, cmd) in leaves() {
            let file = page_path(&docs_dir(), &path);
            let Ok(page) = std::fs::read_to_string(&file) else {
                stale.push(format!("{} is missing", file.display()));
                continue;
            };
            let Some(fresh) = refresh(&page, &generated(&path, &cmd)) else {
                stale.push(format!("{} has no generated part", file.display()));
                continue;
            };
            if fresh != page {
                if update {
                    std::fs::write(&file, fresh).unwrap();
                } else {
                    stale.push(format!("{} is stale", file.display()));
                }
            }
        }
        assert!(
            stale.is_empty(),
            "{}\nrerun with SYNCCTL_UPDATE_DOCS=1 to regenerate the flag tables",
            stale.join("\n")
        );
    }

    /// Every page has the hand-written sections, and its examples parse.
    #[test]
    fn command_pages_have_data_exit_codes_and_examples_that_parse() {
        for (path, _) in leaves() {
            let file = page_path(&docs_dir(), &path);
            let page = std::fs::read_to_string(&file).unwrap_or_default();
            for section in ["## Result", "## Exit codes", "## Examples"] {
                assert!(page.contains(section), "{} lacks {section}", file.display());
            }
            let examples = page.split("## Examples").nth(1).unwrap_or_default();
            let mut seen = 0;
            for line in examples
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("syncctl "))
            {
                let cmdline = line.split(['|', '>']).next().unwrap_or(line);
                if cmdline.contains("$(") || cmdline.ends_with('\\') {
                    continue;
                }
                let words = help::split_words(cmdline);
                let parsed = help::command().try_get_matches_from(&words);
                assert!(
                    parsed.is_ok(),
                    "{}: example does not parse: {line}\n{parsed:?}",
                    file.display()
                );
                seen += 1;
            }
            assert!(seen >= 2, "{} has fewer than 2 examples", file.display());
        }
    }

    #[test]
    fn cli_md_and_readme_link_every_page() {
        let cli = std::fs::read_to_string(docs_dir().join("cli.md")).unwrap();
        let readme = std::fs::read_to_string(docs_dir().join("../README.md")).unwrap_or_default();
        for (path, _) in leaves() {
            let name = format!("commands/{}.md", path.replace(' ', "-"));
            assert!(cli.contains(&name), "docs/cli.md does not link {name}");
            assert!(
                readme.contains(&format!("docs/{name}")),
                "README does not link {name}"
            );
        }
    }

    #[test]
    fn angle_brackets_are_escaped_outside_code_only() {
        assert_eq!(
            prose("AIRBYTE_<NAME>_ID, or `a > b`"),
            "AIRBYTE_&lt;NAME&gt;_ID, or `a > b`"
        );
    }

    #[test]
    fn notes_are_taken_out_of_help_texts() {
        let mut h = "State store URL [env: SYNCCTL_STATE_URL] [default: the config's `state` [x]]"
            .to_owned();
        assert_eq!(
            take_note(&mut h, "env").as_deref(),
            Some("SYNCCTL_STATE_URL")
        );
        assert_eq!(
            take_note(&mut h, "default").as_deref(),
            Some("the config's `state` [x]")
        );
        assert_eq!(h, "State store URL");
    }
}
