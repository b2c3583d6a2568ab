//! What `--help`, `syncctl completions` and `syncctl man` show beyond the clap definitions:
//! the environment each command reads, two or three real examples at the end of every
//! command's help, and the global options listed once (on `syncctl --help`) instead of on
//! every page. Kept in one table here so the flag definitions stay where their commands are.

use std::ffi::OsString;

use clap::{Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// The environment a command reads besides its flags' own `[env: …]`, and its examples, by
/// command path (`"airbyte trigger"`).
struct Page {
    path: &'static str,
    environment: &'static str,
    examples: &'static str,
}

const AIRBYTE_ENV: &str = "\
  AIRBYTE_API_URL            server root, e.g. http://airbyte-server:8000
  AIRBYTE_API_USERNAME/_PASSWORD    basic auth (config API, Airbyte OSS)
  AIRBYTE_CLIENT_ID/_SECRET  client credentials for the public API; AIRBYTE_API_TOKEN a static token
  AIRBYTE_PUBLIC_API_URL     public API base (default {AIRBYTE_API_URL}/api/public/v1)";

const DBX_ENV: &str = "\
  DATABRICKS_HOST            workspace URL, e.g. https://dbc-1234.cloud.databricks.com
  DATABRICKS_TOKEN           personal access token, or
  DATABRICKS_CLIENT_ID/_SECRET      OAuth M2M (service principal)
  DATABRICKS_AUTH_TYPE       pat | oauth-m2m, when both are set
  DATABRICKS_CONFIG_FILE     profiles file (default ~/.databrickscfg), with --profile";

const SNOWFLAKE_ENV: &str = "\
  SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER        who (SNOWFLAKE_HOST overrides the URL)
  SNOWFLAKE_PRIVATE_KEY_PATH | SNOWFLAKE_PRIVATE_KEY [+ _PASSPHRASE]    key-pair auth (JWT)
  SNOWFLAKE_TOKEN + SNOWFLAKE_AUTHENTICATOR=oauth|programmatic_access_token
  SNOWFLAKE_WAREHOUSE, _ROLE, _DATABASE, _SCHEMA
  AIRFLOW_CONN_SNOWFLAKE     an Airflow connection (URI or JSON) fills in what those leave unset";

const SYNC_ENV: &str = "\
  SYNCCTL_STATE_URL          the state store (--state-url)
  SYNCCTL_STATE_DIR          without a state URL, the store is state.db in this directory
  ${VAR} in the config       read from the environment (and --env-file files)";

const PAGES: &[Page] = &[
    Page {
        path: "airbyte trigger",
        environment: "",
        examples: "\
  syncctl airbyte trigger --connection stripe --connection hubspot --connection salesforce
  syncctl airbyte trigger --connection-name 'HubSpot → Postgres' --deadline 50m --api public
  syncctl airbyte trigger --connection stripe --if-running skip --noop-exit-code 99",
    },
    Page {
        path: "airbyte status",
        environment: AIRBYTE_ENV,
        examples: "\
  syncctl airbyte status --job-id 4211
  syncctl airbyte status --job-id 4211 --wait --wait-timeout 30m",
    },
    Page {
        path: "airbyte cancel",
        environment: AIRBYTE_ENV,
        examples: "\
  syncctl airbyte cancel --job-id 4211
  syncctl airbyte cancel --job-id 4211 --no-wait",
    },
    Page {
        path: "dbx run-now",
        environment: DBX_ENV,
        examples: "\
  syncctl dbx run-now --job-name nightly-etl --job-param date=2025-10-01
  syncctl dbx run-now --job-id 12345 --notebook-param mode=incremental --deadline 3h
  syncctl dbx run-now --job-name nightly-etl --no-wait --profile prod",
    },
    Page {
        path: "dbx status",
        environment: DBX_ENV,
        examples: "\
  syncctl dbx status --run-id 884422
  syncctl dbx status --run-id 884422 --wait --wait-timeout 2h",
    },
    Page {
        path: "dbx cancel",
        environment: DBX_ENV,
        examples: "\
  syncctl dbx cancel --run-id 884422
  syncctl dbx cancel --run-id 884422 --no-wait",
    },
    Page {
        path: "snowflake copy",
        environment: SNOWFLAKE_ENV,
        examples: "\
  syncctl snowflake copy --table RAW.EVENTS.EVENTS --from s3://lake/events/ --date 2025-10-01
  syncctl snowflake copy --table EVENTS --from @LAKE/ev/ --from-date 2025-09-01 --to-date 2025-09-30
  syncctl snowflake copy --table EVENTS --from s3://lake/events/ --date 2025-10-01 --dry-run",
    },
    Page {
        path: "sync run",
        environment: SYNC_ENV,
        examples: "\
  syncctl sync run --config sync.yaml
  syncctl sync run --config sync.yaml --dry-run --output text
  syncctl sync run --source hubspot --target quickbooks --direction bidirectional",
    },
    Page {
        path: "sync plan",
        environment: SYNC_ENV,
        examples: "\
  syncctl sync plan --config sync.yaml
  syncctl sync plan --config sync.yaml --full-refresh | jq '.data.plan'",
    },
    Page {
        path: "sync check",
        environment: SYNC_ENV,
        examples: "\
  syncctl sync check --config sync.yaml
  syncctl sync check --config sync.yaml --state-url postgres://syncctl@db/syncctl",
    },
    Page {
        path: "sync init",
        environment: "",
        examples: "\
  syncctl sync init --source hubspot --target quickbooks --raw > sync.yaml
  syncctl sync init --source hubspot --target quickbooks --object companies:Customer --raw
  syncctl sync init --source hubspot --target quickbooks --object deals:Invoice --raw
  syncctl sync init --source google_sheets --target hubspot | jq -r '.data.objects[]'",
    },
    Page {
        path: "sync conflicts list",
        environment: SYNC_ENV,
        examples: "\
  syncctl sync conflicts list --config sync.yaml
  syncctl sync conflicts list --sync contacts --status all --limit 20",
    },
    Page {
        path: "sync conflicts resolve",
        environment: SYNC_ENV,
        examples: "\
  syncctl sync conflicts resolve 42 --keep source --config sync.yaml
  syncctl sync conflicts resolve 42 --keep values.json --apply --config sync.yaml",
    },
    Page {
        path: "sync history",
        environment: SYNC_ENV,
        examples: "\
  syncctl sync history --config sync.yaml
  syncctl sync history --sync contacts --limit 5",
    },
    Page {
        path: "sync show",
        environment: SYNC_ENV,
        examples: "\
  syncctl sync show 7f9c1f7e-5a1b-4c1e-9a55-2f0c1d3e4b5a --config sync.yaml
  syncctl sync show \"$(syncctl sync run -c sync.yaml | tail -n1 | jq -r .run_id)\" -c sync.yaml",
    },
    Page {
        path: "notify",
        environment: "",
        examples: "\
  syncctl notify --status failed --title 'nightly_etl failed' --message 'task load: exit 1'
  syncctl notify --from-result /airflow/xcom/return.json --link Log=https://airflow/log/42
  syncctl notify --status succeeded --title 'backfill done' --fact rows=120000",
    },
    Page {
        path: "doctor",
        environment: "",
        examples: "\
  syncctl doctor
  syncctl doctor --env-file /etc/syncctl/env --output text",
    },
    Page {
        path: "schema",
        environment: "",
        examples: "\
  syncctl schema --raw > result.v1.schema.json",
    },
    Page {
        path: "completions",
        environment: "",
        examples: "\
  syncctl completions bash > /etc/bash_completion.d/syncctl
  syncctl completions zsh > \"${fpath[1]}/_syncctl\"
  syncctl completions fish > ~/.config/fish/completions/syncctl.fish",
    },
    Page {
        path: "man",
        environment: "",
        examples: "\
  syncctl man > /usr/local/share/man/man1/syncctl.1 && man syncctl
  syncctl man | man -l -",
    },
];

/// The footer of every page but the top one: where the global options are.
const GLOBAL_OPTIONS_FOOTER: &str = "\
Global options (accepted before or after any command; listed in `syncctl --help`):
  --result-file --output --log-format -v/--verbose -q/--quiet --env-file --noop-exit-code
  --termination-log --idempotency-key --no-progress
Environment for every command: SYNCCTL_HTTP_TIMEOUT (default 60s), SYNCCTL_HTTP_MAX_RETRIES,
  SYNCCTL_LOG (a tracing filter, e.g. syncctl_http=debug)";

/// The command tree as `--help` shows it and the parser parses it.
pub(crate) fn command() -> Command {
    let mut root = Cli::command().mut_subcommands(|sc| with_connectors(sc, ""));
    // Building propagates the global options into every subcommand; only then can they be
    // hidden there (they still parse everywhere).
    root.build();
    root.mut_subcommands(|sc| decorate(sc, ""))
}

/// The command tree for completions and the man page: globals are offered everywhere.
pub(crate) fn command_for_completions() -> Command {
    Cli::command().mut_subcommands(|sc| add_pages(with_connectors(sc, ""), ""))
}

/// Parses `args` with the decorated tree.
pub(crate) fn try_parse(args: &[OsString]) -> Result<Cli, clap::Error> {
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

fn path_of(parent: &str, cmd: &Command) -> String {
    if parent.is_empty() {
        cmd.get_name().to_owned()
    } else {
        format!("{parent} {}", cmd.get_name())
    }
}

/// Hides the propagated global options and adds the page's environment, examples and the
/// global-options footer.
fn decorate(cmd: Command, parent: &str) -> Command {
    let path = path_of(parent, &cmd);
    let cmd = cmd
        .mut_args(|a| if a.is_global_set() { a.hide(true) } else { a })
        .mut_subcommands(|sc| decorate(sc, &path));
    let cmd = add_page(cmd, &path);
    let after = cmd
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    cmd.after_help(join(&after, GLOBAL_OPTIONS_FOOTER))
}

/// Adds the connector lists everywhere. Before `build()` only: replacing an argument of a built
/// command would leave clap's argument index pointing at the wrong ones.
fn with_connectors(cmd: Command, parent: &str) -> Command {
    let path = path_of(parent, &cmd);
    let cmd = cmd.mut_subcommands(|sc| with_connectors(sc, &path));
    list_builtin_mappings(list_connectors(cmd, &path), &path)
}

/// `sync init` lists the built-in mappings it can print, from the embedded list so the help
/// cannot go stale: one line per connector pair, its `--object` choices, default first.
fn list_builtin_mappings(cmd: Command, path: &str) -> Command {
    if path != "sync init" {
        return cmd;
    }
    let mut pairs: Vec<(String, Vec<String>)> = Vec::new();
    for b in syncctl_sync::builtin::BUILTINS {
        let pair = format!("--source {} --target {}", b.source, b.target);
        if pairs.iter().any(|(p, _)| *p == pair) {
            continue;
        }
        let objects = syncctl_sync::builtin::for_pair(b.source, b.target)
            .iter()
            .map(|m| {
                if m.default {
                    format!("{} (default)", m.object())
                } else {
                    m.object()
                }
            })
            .collect();
        pairs.push((pair, objects));
    }
    let width = pairs.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    let lines: Vec<String> = pairs
        .iter()
        .map(|(pair, objects)| format!("  {pair:<width$}  --object {}", objects.join(" | ")))
        .collect();
    let list = format!("Built-in mappings:\n{}", lines.join("\n"));
    let after = cmd
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    cmd.after_help(join(&after, &list))
}

/// `--source`/`--target` list the connector kinds this binary has (accepted values), from the
/// registry so the list cannot go stale.
fn list_connectors(cmd: Command, path: &str) -> Command {
    if !matches!(path, "sync run" | "sync plan" | "sync check") {
        return cmd;
    }
    let kinds = crate::commands::sync::connector_kinds();
    let note = format!("[connectors: {}]", kinds.join(", "));
    ["source", "target"].into_iter().fold(cmd, |cmd, id| {
        let note = note.clone();
        cmd.mut_arg(id, move |a| {
            let help = a.get_help().map(ToString::to_string).unwrap_or_default();
            a.help(format!("{help} {note}"))
        })
    })
}

fn add_pages(cmd: Command, parent: &str) -> Command {
    let path = path_of(parent, &cmd);
    let cmd = cmd.mut_subcommands(|sc| add_pages(sc, &path));
    add_page(cmd, &path)
}

fn add_page(cmd: Command, path: &str) -> Command {
    let Some(page) = PAGES.iter().find(|p| p.path == path) else {
        return cmd;
    };
    let mut after = cmd
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    if !page.environment.is_empty() {
        after = join(
            &after,
            &format!("Environment:\n{}", indent(page.environment)),
        );
    }
    after = join(&after, &format!("Examples:\n{}", indent(page.examples)));
    cmd.after_help(after)
}

/// Two spaces before each line (a `\`-continued string literal loses its first line's indent).
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {}", l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a}\n\n{b}")
    }
}

/// Every leaf command path, for tests.
#[cfg(test)]
fn leaf_paths(cmd: &Command, parent: &str, out: &mut Vec<String>) {
    for sc in cmd.get_subcommands() {
        if sc.get_name() == "help" {
            continue;
        }
        let path = path_of(parent, sc);
        if sc.has_subcommands() {
            leaf_paths(sc, &path, out);
        } else {
            out.push(path);
        }
    }
}

/// Splits a documented command line into words as a POSIX shell would (examples in tests).
#[cfg(test)]
pub(crate) fn split_words(s: &str) -> Vec<String> {
    shlex::split(s).unwrap_or_else(|| panic!("unbalanced quotes in example: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help_of(path: &str) -> String {
        let mut cmd = command();
        let mut words: Vec<&str> = vec!["syncctl"];
        words.extend(path.split(' '));
        words.push("--help");
        let err = cmd.try_get_matches_from_mut(words).unwrap_err();
        err.render().to_string()
    }

    #[test]
    fn every_command_has_examples_except_placeholders() {
        let mut leaves = Vec::new();
        leaf_paths(&Cli::command(), "", &mut leaves);
        for path in leaves {
            let help = help_of(&path);
            assert!(
                help.contains("Examples:\n  syncctl "),
                "{path} has no examples:\n{help}"
            );
            assert!(
                help.contains("Global options (accepted"),
                "{path} lacks the footer"
            );
            assert!(
                !help.contains("--termination-log <PATH>"),
                "{path} repeats the global options"
            );
        }
    }

    #[test]
    fn examples_parse() {
        for page in PAGES {
            for line in page.examples.lines() {
                let line = line.trim();
                assert!(
                    line.len() <= 100,
                    "example too long for the help width: {line}"
                );
                // Only the syncctl part of a pipeline; shell substitutions are left out.
                let cmdline = line.split(['|', '>']).next().unwrap_or(line);
                if cmdline.contains("$(") {
                    continue;
                }
                let words = split_words(cmdline);
                let parsed = command().try_get_matches_from(&words);
                assert!(parsed.is_ok(), "example does not parse: {line}\n{parsed:?}");
            }
        }
    }

    /// The `[env: NAME]` notes in a help text.
    fn env_notes(help: &str) -> Vec<String> {
        help.split("[env: ")
            .skip(1)
            .filter_map(|rest| rest.split_once(']'))
            .map(|(name, _)| name.trim().to_owned())
            .collect()
    }

    fn each_command(cmd: &Command, path: &str, f: &mut dyn FnMut(&str, &Command)) {
        f(path, cmd);
        for sc in cmd.get_subcommands().filter(|sc| sc.get_name() != "help") {
            let sub = if path.is_empty() {
                sc.get_name().to_owned()
            } else {
                format!("{path} {}", sc.get_name())
            };
            each_command(sc, &sub, f);
        }
    }

    /// The flag audit: a flag whose help says `[env: NAME]` is one the Env layer
    /// (`env_flags`) resolves from NAME, every flag the Env layer resolves from a variable says
    /// so in `--help`, and no entry names a flag its commands do not have.
    #[test]
    fn env_backed_flags_show_their_variable_and_no_other_flag_claims_one() {
        let root = command();
        let mut problems = Vec::new();
        each_command(&root, "", &mut |path, cmd| {
            let rendered = if path.is_empty() {
                command().render_long_help().to_string()
            } else {
                help_of(path)
            };
            let rendered = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                let text = format!(
                    "{} {}",
                    arg.get_help().map(ToString::to_string).unwrap_or_default(),
                    arg.get_long_help()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
                let documented = env_notes(&text);
                for name in &documented {
                    if !crate::env_flags::is_backed(path, long, name) {
                        problems.push(format!(
                            "`{path}` --{long} says [env: {name}] but env_flags does not resolve it from {name}"
                        ));
                    }
                }
                for f in crate::env_flags::of_command(path)
                    .iter()
                    .filter(|f| f.flag == long)
                {
                    if !documented.iter().any(|d| d == f.env) {
                        problems.push(format!(
                            "`{path}` --{long} is read from {} but its help does not say [env: {}]",
                            f.env, f.env
                        ));
                    }
                    // Shown on this page: the command's own flags everywhere, the global
                    // options on the top page (every other page points there).
                    let shown_here = !arg.is_hide_set();
                    if shown_here && !rendered.contains(&format!("[env: {}]", f.env)) {
                        problems.push(format!("`{path}` --help does not show [env: {}]", f.env));
                    }
                }
            }
            for f in crate::env_flags::of_command(path) {
                if !cmd.get_arguments().any(|a| a.get_long() == Some(f.flag)) {
                    problems.push(format!(
                        "env_flags lists --{} ({}) for `{path}`, which has no such flag",
                        f.flag, f.env
                    ));
                }
            }
        });
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Every command-level variable in the table is read by some code: a renamed variable
    /// cannot leave a stale `[env: …]` behind.
    #[test]
    fn every_env_backed_flag_names_a_variable_the_code_reads() {
        fn sources(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    sources(&p, out);
                } else if p.extension().is_some_and(|e| e == "rs") && !p.ends_with("env_flags.rs") {
                    out.push(std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut texts = Vec::new();
        for c in std::fs::read_dir(&crates).unwrap().flatten() {
            let src = c.path().join("src");
            if src.is_dir() {
                sources(&src, &mut texts);
            }
        }
        for f in crate::env_flags::own_entries() {
            if f.commands.is_empty() {
                // Globals are read through the table: `global_var(env, "FLAG")` in app.rs.
                let call = format!(", \"{}\")", f.flag);
                assert!(
                    texts.iter().any(|t| t
                        .lines()
                        .any(|l| l.contains("global_var(") && l.contains(&call))),
                    "app.rs never reads --{} from {}",
                    f.flag,
                    f.env
                );
                continue;
            }
            let quoted = format!("\"{}\"", f.env);
            assert!(
                texts.iter().any(|t| t.contains(&quoted)),
                "no code reads {} (--{})",
                f.env,
                f.flag
            );
        }
    }

    #[test]
    fn the_top_page_lists_the_global_options_once() {
        let mut cmd = command();
        let help = cmd.render_long_help().to_string();
        assert_eq!(help.matches("--result-file <PATH>").count(), 1);
        assert!(help.contains("Global options:"));
    }

    #[test]
    fn source_and_target_list_the_connectors() {
        let help = help_of("sync run");
        assert!(help.contains("[connectors: "), "{help}");
        assert!(help.contains("postgres"));
    }

    #[test]
    fn sync_check_offers_no_run_flags() {
        let help = help_of("sync check");
        for flag in ["--dry-run", "--show-plan", "--plan-limit", "--full-refresh"] {
            assert!(!help.contains(flag), "sync check offers {flag}");
        }
        assert!(
            command()
                .try_get_matches_from(["syncctl", "sync", "check", "--dry-run"])
                .is_err()
        );
    }
}
