//! examples/kestra: every flow parses, calls syncctl with `--output kestra` and the idempotency
//! context, and each of its commands is accepted by the real binary (flags parse; with no
//! credentials the failure is a config or auth error, never a usage error). Every `::{…}::`
//! line the binary prints matches Kestra's pattern `^::(\{.*})::$` and carries outputs or
//! metrics; the sync flow's command runs for real on the quickstart.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Quickstart, syncctl};

fn flows() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kestra");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        // Flows with a test of their own (kestra_sheets.rs: a fake Sheets behind it).
        .filter(|p| !p.ends_with("sheets_sync_unified.yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let flow: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, flow)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `syncctl …` lines of a flow's shell tasks.
fn commands(flow: &Value) -> Vec<(String, &Value)> {
    flow["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "io.kestra.plugin.scripts.shell.Commands")
        .flat_map(|t| {
            t["commands"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |c| (c.as_str().unwrap().to_owned(), t))
        })
        .collect()
}

/// Kestra's pattern for protocol lines, `^::(\{.*})::$`, and the JSON inside.
fn kestra_line(line: &str) -> Option<Value> {
    let inner = line.strip_prefix("::")?.strip_suffix("::")?;
    if !(inner.starts_with('{') && inner.ends_with('}')) || inner.contains('\n') {
        return None;
    }
    serde_json::from_str(inner).ok()
}

/// Replaces the flows' Pebble expressions with values a real execution would give.
fn render(command: &str, quickstart_config: &str) -> String {
    let mut s = command.to_owned();
    for (expr, value) in [
        ("{{ inputs.dry_run ? ' --dry-run' : '' }}", ""),
        ("{{ inputs.source_type }}", "csv"),
        ("{{ inputs.target_type }}", "sqlite"),
        ("{{ inputs.direction }}", "bidirectional"),
        ("{{ inputs.batch_size }}", "500"),
        ("{{ trigger.date | date('yyyy-MM-dd') }}", "2025-10-01"),
        ("{{ trigger.body.object ?? 'contacts' }}", "contacts"),
    ] {
        s = s.replace(expr, value);
    }
    assert!(!s.contains("{{"), "unrendered expression in {command}");
    s.replace("/opt/syncctl/syncs/contacts.yaml", quickstart_config)
}

/// Splits a shell line into words as the flow's shell would.
fn words(line: &str) -> Vec<String> {
    shlex::split(line).unwrap_or_else(|| panic!("unbalanced quotes in {line}"))
}

#[test]
fn every_flow_calls_syncctl_for_kestra() {
    let flows = flows();
    let ids: Vec<&str> = flows
        .iter()
        .map(|(_, f)| f["id"].as_str().unwrap())
        .collect();
    for want in [
        "airbyte_sync",
        "dbx_run_now",
        "snowflake_copy",
        "sync_run",
        "sync_on_webhook",
    ] {
        assert!(ids.contains(&want), "no flow {want}: {ids:?}");
    }
    for (path, flow) in &flows {
        assert!(flow["namespace"].is_string(), "{}", path.display());
        let cmds = commands(flow);
        assert!(!cmds.is_empty(), "{} runs no syncctl", path.display());
        for (cmd, task) in cmds {
            assert!(cmd.starts_with("syncctl "), "{cmd}");
            assert!(cmd.ends_with("--output kestra"), "{cmd}");
            for var in ["KESTRA_EXECUTION_ID", "KESTRA_TASK_ID"] {
                assert!(task["env"][var].is_string(), "{}: {var}", path.display());
            }
            assert!(task["retry"].is_object(), "{}: no retry", path.display());
        }
    }
    let webhook = &flows
        .iter()
        .find(|(_, f)| f["id"] == "sync_on_webhook")
        .unwrap()
        .1;
    assert_eq!(
        webhook["triggers"][0]["type"],
        "io.kestra.plugin.core.trigger.Webhook"
    );
}

#[test]
fn the_binary_accepts_every_flow_command_and_speaks_kestra() {
    for (path, flow) in flows() {
        for (cmd, _) in commands(&flow) {
            let q = Quickstart::new();
            let argv = words(&render(&cmd, &q.config()));
            let out = syncctl()
                .current_dir(q.dir.path())
                .env("KESTRA_EXECUTION_ID", "4Zq3xYdemo")
                .env("KESTRA_TASK_ID", "sync")
                .args(&argv[1..])
                .output()
                .unwrap();
            let stdout = String::from_utf8(out.stdout).unwrap();
            let protocol: Vec<Value> = stdout
                .lines()
                .filter(|l| l.starts_with("::"))
                .map(|l| kestra_line(l).unwrap_or_else(|| panic!("not Kestra's pattern: {l}")))
                .collect();
            let outputs = protocol
                .iter()
                .find_map(|v| v.get("outputs"))
                .unwrap_or_else(|| panic!("{}: no outputs line\n{stdout}", path.display()));
            assert!(protocol.iter().any(|v| v["metrics"].is_array()), "{cmd}");
            assert_ne!(
                outputs["error_class"],
                "usage",
                "{}: {cmd} is rejected: {}",
                path.display(),
                outputs["error_message"]
            );
            assert_eq!(
                outputs["idempotency_key"]
                    .as_str()
                    .map(|k| k.contains("4Zq3xYdemo")),
                Some(true),
                "{cmd}"
            );
            if flow["id"] == "sync_run" {
                assert_eq!(outputs["status"], "succeeded", "{stdout}");
                assert_eq!(outputs["data"]["target"]["created"], 3);
                assert_eq!(outputs["run_id"], outputs["data"]["run"]);
            }
        }
    }
}
