//! `examples/kestra/sheets_sync_unified.yaml`: the flow parses, its inputs are the seed's
//! (`source_type`, `target_type`, `direction`), its command is `syncctl sync run … --output
//! kestra`, and running that command as Kestra would (inputs rendered, `sh -c`) prints the
//! `::{"outputs": …}::` and `::{"metrics": …}::` lines whose keys the flow's report task reads.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::sheets::{DEMO_SPREADSHEET_ID, SheetsFake, demo, service_account_json};

fn flow() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/kestra/sheets_sync_unified.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    syncctl_config::from_yaml_str::<Value>("sheets_sync_unified.yaml", &text).unwrap()
}

fn task<'a>(flow: &'a Value, id: &str) -> &'a Value {
    flow["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

/// `{{ inputs.x }}` replaced by the input's default, as Kestra renders an execution that
/// takes the defaults.
fn render(text: &str, flow: &Value) -> String {
    let mut out = text.to_owned();
    for i in flow["inputs"].as_array().unwrap() {
        let id = i["id"].as_str().unwrap();
        let v = i["defaults"].as_str().unwrap();
        out = out.replace(&format!("{{{{ inputs.{id} }}}}"), v);
    }
    out
}

#[test]
fn the_flow_has_the_seed_inputs_and_calls_syncctl_in_kestra_mode() {
    let f = flow();
    assert_eq!(f["id"], "sheets_sync_unified");
    let ids: Vec<&str> = f["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["source_type", "target_type", "direction"]);
    for i in f["inputs"].as_array().unwrap() {
        let values: Vec<&str> = i["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(values.contains(&i["defaults"].as_str().unwrap()), "{i}");
    }
    let sync = task(&f, "sync");
    assert_eq!(sync["type"], "io.kestra.plugin.scripts.shell.Commands");
    let cmd = sync["commands"][0].as_str().unwrap();
    assert!(cmd.starts_with("syncctl sync run "), "{cmd}");
    assert!(cmd.ends_with("--output kestra"), "{cmd}");
    for input in ["source_type", "target_type", "direction"] {
        assert!(cmd.contains(&format!("{{{{ inputs.{input} }}}}")), "{cmd}");
    }
    assert!(
        render(cmd, &f)
            .contains("--source google_sheets --target hubspot --direction source_to_target")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_command_prints_the_outputs_the_flow_reads() {
    let f = flow();
    let fake: SheetsFake = demo();
    let server = FakeServer::start(fake.router()).await;
    let dir = tempfile::tempdir().unwrap();
    let cmd = render(task(&f, "sync")["commands"][0].as_str().unwrap(), &f);
    let bin = assert_cmd::cargo::cargo_bin("syncctl");
    let path = format!("{}:/usr/bin:/bin", bin.parent().unwrap().display());
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(&cmd)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env(
            "GOOGLE_SHEETS_CREDENTIALS_JSON",
            service_account_json(&format!("{}/token", server.url())),
        )
        .env("GOOGLE_SHEETS_SPREADSHEET_ID", DEMO_SPREADSHEET_ID)
        .env("GOOGLE_SHEETS_BASE_URL", server.url())
        .env("SYNCCTL_STATE_URL", "sqlite://state.db")
        .env(
            "SYNCCTL_IDEMPOTENCY_KEY",
            "company.sync.sheets_sync_unified.exec1",
        );
    let out = tokio::task::spawn_blocking(move || sh.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    let kestra: Vec<Value> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("::").and_then(|l| l.strip_suffix("::")))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    let outputs = kestra
        .iter()
        .find_map(|v| v.get("outputs"))
        .unwrap_or_else(|| panic!("no outputs line:\n{stdout}"));
    let metrics = kestra
        .iter()
        .find_map(|v| v.get("metrics"))
        .unwrap_or_else(|| panic!("no metrics line:\n{stdout}"));
    assert!(
        metrics
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "duration"),
        "{metrics}"
    );
    let result: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(outputs["status"], result["status"]);
    assert_eq!(outputs["exit_code"], result["exit_code"]);
    assert_eq!(
        outputs["exit_code"].as_i64().unwrap(),
        i64::from(out.status.code().unwrap())
    );
    assert_eq!(
        outputs["idempotency_key"],
        "company.sync.sheets_sync_unified.exec1"
    );
    // Every `outputs.sync.vars.X` the report task reads is there.
    let message = task(&f, "report")["message"].as_str().unwrap();
    let used: BTreeSet<&str> = message
        .split("outputs.sync.vars.")
        .skip(1)
        .map(|s| {
            s.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .next()
                .unwrap()
        })
        .collect();
    assert!(used.len() >= 4, "{used:?}");
    for k in used {
        assert!(
            outputs.get(k).is_some(),
            "the flow reads outputs.sync.vars.{k}, not printed: {outputs}"
        );
    }
    // The sheet is the source of a one-way sync: never written.
    assert_eq!(
        server
            .requests_to(&axum::http::Method::POST, "values:batchUpdate")
            .len(),
        0
    );
}
