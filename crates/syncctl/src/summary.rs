//! The human summary `--output text` prints on stderr. It is built from the finished result
//! (the same value the JSON line carries), never from a command's internals, so the two cannot
//! disagree; a field the result lacks is left out rather than guessed.

use std::fmt::Write as _;

use serde_json::Value;
use syncctl_core::RunResult;

/// Lists (failures, rejections, conflicts, files) show this many items, then "… and N more".
const LIST_HEAD: usize = 5;

/// The summary of `r`, one block of lines without a trailing newline.
pub(crate) fn human_summary(r: &RunResult) -> String {
    let mut s = String::new();
    let dry = if r.dry_run {
        " · DRY RUN, nothing written"
    } else {
        ""
    };
    let _ = write!(
        s,
        "syncctl {}: {} (exit {}) in {} · run {}{dry}",
        r.command,
        r.status.as_str(),
        r.exit_code,
        duration(r.duration_ms),
        r.run_id
    );
    let d = &r.data;
    match r.command.as_str() {
        "sync run" | "sync plan" => sync_run(&mut s, d, r.dry_run),
        "sync check" => sync_check(&mut s, d),
        "sync history" => sync_history(&mut s, d),
        "sync show" => sync_show(&mut s, d),
        "sync conflicts list" => conflicts_list(&mut s, d),
        "sync conflicts resolve" => conflict_resolve(&mut s, d),
        "airbyte trigger" | "airbyte status" | "airbyte cancel" => airbyte(&mut s, d),
        "dbx run-now" | "dbx status" | "dbx cancel" => dbx(&mut s, d),
        "snowflake copy" => snowflake(&mut s, d, r.dry_run),
        "doctor" => doctor(&mut s, d),
        "notify" => notify(&mut s, d),
        _ => {}
    }
    if let Some(k) = &r.idempotency_key {
        let _ = write!(s, "\nidempotency key: {k}");
    }
    if !r.warnings.is_empty() {
        let _ = write!(s, "\nwarnings:");
        list(&mut s, &r.warnings, |w| w.clone());
    }
    if let Some(e) = &r.error {
        let retry = if e.retryable {
            ", a retry may succeed"
        } else {
            ""
        };
        let _ = write!(s, "\nerror ({}{retry}): {}", e.class, e.message);
    }
    s
}

/// `850 ms`, `1.4 s`, `2m 05s`, `1h 02m`.
fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{}.{} s", ms / 1000, ms % 1000 / 100),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// `0 B`, `512 B`, `1.5 KiB`, `2.0 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all that is shown
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn u64_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn num(v: &Value, key: &str) -> u64 {
    u64_of(v, key).unwrap_or(0)
}

/// A scalar as text (`-` for null or missing).
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The first `LIST_HEAD` items, one per indented line, then how many were left out of `total`.
fn list_of<T>(s: &mut String, items: &[T], total: usize, line: impl Fn(&T) -> String) {
    for item in items.iter().take(LIST_HEAD) {
        let _ = write!(s, "\n  {}", line(item));
    }
    let shown = items.len().min(LIST_HEAD);
    if total > shown {
        let _ = write!(s, "\n  … and {} more", total - shown);
    }
}

fn list<T>(s: &mut String, items: &[T], line: impl Fn(&T) -> String) {
    list_of(s, items, items.len(), line);
}

/// Records read from a side and not written to it: `read − updated − deleted − failed`
/// (reads include the records looked up by key, so every update or delete was read first).
fn unchanged(side: &Value) -> u64 {
    num(side, "read")
        .saturating_sub(num(side, "updated"))
        .saturating_sub(num(side, "deleted"))
        .saturating_sub(num(side, "failed"))
}

fn sync_run(s: &mut String, d: &Value, dry_run: bool) {
    let Some(name) = str_of(d, "sync") else {
        return;
    };
    let _ = write!(
        s,
        "\nsync {name}: {}, conflicts {}",
        str_of(d, "direction").unwrap_or("-"),
        str_of(d, "conflict_strategy").unwrap_or("-")
    );
    if dry_run {
        let _ = write!(s, " (counts are what a run would do)");
    }
    let header = [
        "read",
        "created",
        "updated",
        "deleted",
        "unchanged",
        "rejected",
        "failed",
    ];
    let _ = write!(s, "\n  {:<8}", "");
    for h in header {
        let _ = write!(s, " {h:>9}");
    }
    let _ = write!(s, "  connector and object");
    for side in ["source", "target"] {
        let Some(v) = d.get(side) else { continue };
        let _ = write!(s, "\n  {side:<8}");
        for h in header {
            let n = if h == "unchanged" {
                unchanged(v)
            } else {
                num(v, h)
            };
            let _ = write!(s, " {n:>9}");
        }
        let _ = write!(
            s,
            "  {} {}",
            str_of(v, "connector").unwrap_or("-"),
            str_of(v, "object").unwrap_or("-")
        );
    }
    if d.get("conflicts").is_some_and(|c| num(c, "detected") == 0) {
        let _ = write!(s, "\nconflicts: none");
    } else if let Some(c) = d.get("conflicts") {
        let _ = write!(
            s,
            "\nconflicts: {} detected, {} resolved, {} queued for review",
            num(c, "detected"),
            num(c, "resolved"),
            num(c, "queued")
        );
        let total = usize::try_from(num(c, "detected")).unwrap_or(usize::MAX);
        list_of(s, array(c, "items"), total, |i| {
            let fields: Vec<&str> = i
                .get("fields")
                .and_then(Value::as_object)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let id = i
                .get("id")
                .and_then(Value::as_i64)
                .map(|id| format!("#{id} "))
                .unwrap_or_default();
            format!(
                "{id}source {} / target {}: {} ({})",
                text(i.get("source_key")),
                text(i.get("target_key")),
                fields.join(", "),
                text(i.get("outcome"))
            )
        });
    }
    let failed_total = d
        .get("source")
        .zip(d.get("target"))
        .map_or(0, |(a, b)| num(a, "failed") + num(b, "failed"));
    if failed_total > 0 || !array(d, "failed").is_empty() {
        let _ = write!(s, "\nfailed writes: {failed_total}");
        let total = usize::try_from(failed_total).unwrap_or(usize::MAX);
        list_of(s, array(d, "failed"), total, |f| {
            format!(
                "{} {} {}: {}",
                text(f.get("side")),
                text(f.get("action")),
                text(f.get("key")),
                text(f.get("error"))
            )
        });
    }
    let rejected_total = d
        .get("source")
        .zip(d.get("target"))
        .map_or(0, |(a, b)| num(a, "rejected") + num(b, "rejected"));
    if rejected_total > 0 || !array(d, "rejected").is_empty() {
        let _ = write!(s, "\nrejected records: {rejected_total}");
        let total = usize::try_from(rejected_total).unwrap_or(usize::MAX);
        list_of(s, array(d, "rejected"), total, |r| {
            let reasons: Vec<String> = array(r, "reasons").iter().map(|x| text(Some(x))).collect();
            format!(
                "{} (to {}): {}",
                text(r.get("record")),
                text(r.get("side")),
                reasons.join("; ")
            )
        });
    }
    if let Some(n) = u64_of(d, "plan_omitted").filter(|n| *n > 0) {
        let _ = write!(
            s,
            "\nplan: {n} entries left out of the result (--plan-limit)"
        );
    }
    // A dry run stores nothing, so there is no audit to show.
    if let Some(run) = str_of(d, "run").filter(|r| !r.is_empty() && !dry_run) {
        let _ = write!(s, "\naudit: syncctl sync show {run}");
    }
}

fn sync_check(s: &mut String, d: &Value) {
    if let Some(name) = str_of(d, "sync") {
        let _ = write!(
            s,
            "\nsync {name}: {}, conflicts {}",
            str_of(d, "direction").unwrap_or("-"),
            str_of(d, "conflict_strategy").unwrap_or("-")
        );
    }
    for side in ["source", "target"] {
        if let Some(v) = d.get(side) {
            let fields = array(v, "fields").len();
            let _ = write!(
                s,
                "\n  {side:<8} {} {} at {}",
                text(v.get("connector")),
                text(v.get("object")),
                text(v.get("endpoint"))
            );
            if fields > 0 {
                let _ = write!(s, " ({fields} fields, key {})", text(v.get("key")));
            }
        }
    }
    if let Some(state) = d.get("state") {
        let _ = write!(s, "\n  state    {}", text(Some(state)));
    }
    let problems = array(d, "problems");
    if !problems.is_empty() {
        let _ = write!(s, "\nproblems: {}", problems.len());
        list(s, problems, |p| text(Some(p)));
    }
}

fn sync_history(s: &mut String, d: &Value) {
    let runs = array(d, "runs");
    let _ = write!(s, "\n{} run(s)", runs.len());
    for r in runs {
        let counts = r.get("counts").map(compact_counts).unwrap_or_default();
        let _ = write!(
            s,
            "\n  {}  {}  {:<11} {}{counts}",
            text(r.get("started_at")),
            text(r.get("run")),
            text(r.get("status")),
            text(r.get("sync"))
        );
        if let Some(e) = str_of(r, "error") {
            let _ = write!(s, "\n      error: {e}");
        }
    }
}

/// `counts` of a stored run as ` · source +1 ~2 -0 · target …`, from whatever it holds.
fn compact_counts(c: &Value) -> String {
    let mut out = String::new();
    for side in ["source", "target"] {
        if let Some(v) = c.get(side) {
            let _ = write!(
                out,
                " · {side} +{} ~{} -{}",
                num(v, "created"),
                num(v, "updated"),
                num(v, "deleted")
            );
            if num(v, "failed") > 0 {
                let _ = write!(out, " failed {}", num(v, "failed"));
            }
        }
    }
    out
}

fn sync_show(s: &mut String, d: &Value) {
    if let Some(r) = d.get("run") {
        let _ = write!(
            s,
            "\nrun {} of {}: {} ({}), {} → {}",
            text(r.get("run")),
            text(r.get("sync")),
            text(r.get("status")),
            text(r.get("direction")),
            text(r.get("started_at")),
            text(r.get("finished_at"))
        );
        if let Some(c) = r.get("counts") {
            let _ = write!(s, "\ncounts:{}", compact_counts(c));
        }
    }
    let changes = array(d, "changes");
    let _ = write!(s, "\nchanges: {}", changes.len());
    list(s, changes, |c| {
        let mut line = format!(
            "{} {} {}: {}",
            text(c.get("side")),
            text(c.get("action")),
            text(c.get("key")),
            text(c.get("status"))
        );
        if let Some(e) = str_of(c, "error") {
            let _ = write!(line, " ({e})");
        }
        line
    });
}

fn conflict_line(c: &Value) -> String {
    let fields: Vec<&str> = c
        .get("fields")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    format!(
        "#{} {} source {} / target {}: {} ({})",
        text(c.get("id")),
        text(c.get("sync")),
        text(c.get("source_key")),
        text(c.get("target_key")),
        fields.join(", "),
        text(c.get("status"))
    )
}

fn conflicts_list(s: &mut String, d: &Value) {
    let items = array(d, "conflicts");
    let _ = write!(s, "\n{} conflict(s)", items.len());
    list(s, items, conflict_line);
}

fn conflict_resolve(s: &mut String, d: &Value) {
    if let Some(c) = d.get("conflict") {
        let _ = write!(s, "\nconflict {}", conflict_line(c));
    }
}

fn airbyte(s: &mut String, d: &Value) {
    let jobs = array(d, "jobs");
    if jobs.is_empty() {
        return;
    }
    let mut tally = Vec::new();
    for k in ["succeeded", "failed", "running", "skipped"] {
        if let Some(n) = u64_of(d, k) {
            tally.push(format!("{n} {k}"));
        }
    }
    let api = str_of(d, "api")
        .map(|a| format!(" ({a} API)"))
        .unwrap_or_default();
    let _ = write!(s, "\n{} job(s){api}", jobs.len());
    if !tally.is_empty() {
        let _ = write!(s, ": {}", tally.join(", "));
    }
    for j in jobs {
        let mut notes = Vec::new();
        for flag in ["attached", "reused", "reconciled", "cancel_confirmed"] {
            if j.get(flag).and_then(Value::as_bool) == Some(true) {
                notes.push(flag.replace('_', " "));
            }
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", notes.join(", "))
        };
        let took = u64_of(j, "duration_ms")
            .map(|ms| format!(" in {}", duration(ms)))
            .unwrap_or_default();
        let _ = write!(
            s,
            "\n  job {} connection {}: {}{took}, {} records, {}, attempt {}{notes}",
            text(j.get("job_id")),
            text(j.get("connection_id")),
            text(j.get("outcome").or_else(|| j.get("status"))),
            num(j, "records_synced"),
            bytes(num(j, "bytes_synced")),
            text(j.get("attempts"))
        );
        if let Some(reason) = str_of(j, "failure_reason") {
            let _ = write!(s, "\n      reason: {reason}");
        }
        let streams = array(j, "streams");
        if !streams.is_empty() {
            let _ = write!(s, "\n      streams:");
            for st in streams.iter().take(LIST_HEAD) {
                let rejected = num(st, "records_rejected");
                let rejected = if rejected > 0 {
                    format!(", {rejected} rejected")
                } else {
                    String::new()
                };
                let _ = write!(
                    s,
                    "\n        {}: {} records, {} committed{rejected}",
                    text(st.get("stream")),
                    num(st, "records_committed"),
                    bytes(num(st, "bytes_committed"))
                );
            }
            if streams.len() > LIST_HEAD {
                let _ = write!(s, "\n        … and {} more", streams.len() - LIST_HEAD);
            }
        }
    }
}

fn dbx(s: &mut String, d: &Value) {
    let Some(run) = d.get("run_id").filter(|v| !v.is_null()) else {
        return;
    };
    let state = match str_of(d, "result_state") {
        Some(r) => format!("{} / {r}", text(d.get("life_cycle_state"))),
        None => text(d.get("life_cycle_state")),
    };
    let _ = write!(
        s,
        "\nDatabricks run {run} of job {}: {state}",
        text(d.get("job_id"))
    );
    if d.get("attached").and_then(Value::as_bool) == Some(true) {
        let _ = write!(s, " [attached to an earlier try's run]");
    }
    if let Some(r) = d.get("repair_id").filter(|v| !v.is_null()) {
        let _ = write!(s, " [repair {r}]");
    }
    if let Some(m) = str_of(d, "state_message").filter(|m| !m.is_empty()) {
        let _ = write!(s, "\n  {m}");
    }
    if let Some(url) = str_of(d, "run_page_url") {
        let _ = write!(s, "\n  {url}");
    }
    let tasks = array(d, "tasks");
    if !tasks.is_empty() {
        let _ = write!(s, "\ntasks:");
        for t in tasks {
            let took = u64_of(t, "duration_ms")
                .map(|ms| format!(" in {}", duration(ms)))
                .unwrap_or_default();
            let _ = write!(
                s,
                "\n  {:<20} {}{took}",
                text(t.get("task_key")),
                str_of(t, "result_state").unwrap_or("(no result yet)")
            );
            if let Some(e) = str_of(t, "error") {
                let _ = write!(s, ": {e}");
            }
        }
    }
}

fn snowflake(s: &mut String, d: &Value, dry_run: bool) {
    let Some(table) = str_of(d, "table") else {
        return;
    };
    let partitions = array(d, "partitions");
    let _ = write!(
        s,
        "\n{} into {table} from {} ({} partition(s), {}, {})",
        if str_of(d, "mode") == Some("validate") {
            "validate"
        } else {
            "COPY"
        },
        text(d.get("location")),
        partitions.len(),
        text(d.get("access")),
        if dry_run { "SQL only" } else { "sent" }
    );
    if let Some(t) = d.get("totals").filter(|_| !dry_run) {
        let _ = write!(
            s,
            "\nrows: {} loaded of {} parsed; files: {} loaded, {} partially, {} failed",
            num(t, "rows_loaded"),
            num(t, "rows_parsed"),
            num(t, "files_loaded"),
            num(t, "files_partially_loaded"),
            num(t, "files_failed")
        );
    }
    let statements = array(d, "statements");
    if !statements.is_empty() {
        let _ = write!(s, "\nstatements:");
        list(s, statements, |st| {
            let mut line = text(st.get("partition"));
            if let Some(n) = u64_of(st, "files") {
                let _ = write!(line, ": {n} file(s)");
            }
            if let Some(status) = str_of(st, "status") {
                let _ = write!(line, ", {status}");
            }
            if let Some(h) = str_of(st, "handle").filter(|_| !dry_run) {
                let _ = write!(line, " (query id {h})");
            }
            line
        });
    }
    let bad: Vec<&Value> = array(d, "files")
        .iter()
        .filter(|f| str_of(f, "status") != Some("LOADED"))
        .collect();
    if !bad.is_empty() {
        let _ = write!(s, "\nfiles not loaded completely: {}", bad.len());
        list(s, &bad, |f| {
            let mut line = format!(
                "{} {}: {} of {} rows",
                text(f.get("file")),
                text(f.get("status")),
                num(f, "rows_loaded"),
                num(f, "rows_parsed")
            );
            if let Some(e) = str_of(f, "first_error") {
                let _ = write!(line, "; line {}: {e}", text(f.get("first_error_line")));
            }
            line
        });
    }
}

fn doctor(s: &mut String, d: &Value) {
    for svc in array(d, "services") {
        let state = match (
            svc.get("configured").and_then(Value::as_bool),
            svc.get("ok").and_then(Value::as_bool),
        ) {
            (Some(false), _) => "not configured",
            (_, Some(true)) => "ok",
            (_, Some(false)) => "FAILED",
            _ => "configured (not called)",
        };
        let _ = write!(s, "\n  {:<12} {state}", text(svc.get("name")));
        if let Some(url) = str_of(svc, "base_url") {
            let _ = write!(s, "  {url}");
        }
        if let Some(auth) = str_of(svc, "auth") {
            let _ = write!(s, " ({auth})");
        }
        if let Some(m) = str_of(svc, "message") {
            let _ = write!(s, "\n      {m}");
        }
    }
}

fn notify(s: &mut String, d: &Value) {
    let Some(title) = str_of(d, "title") else {
        return;
    };
    let _ = write!(
        s,
        "\nalert {title:?}: {} delivered, {} failed",
        num(d, "delivered"),
        num(d, "failed")
    );
    for x in array(d, "deliveries") {
        let state = if x.get("delivered").and_then(Value::as_bool) == Some(true) {
            "delivered"
        } else {
            "FAILED"
        };
        let _ = write!(
            s,
            "\n  {} {}: {state} after {} attempt(s)",
            text(x.get("channel")),
            text(x.get("target")),
            text(x.get("attempts"))
        );
        if let Some(e) = str_of(x, "error") {
            let _ = write!(s, ": {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use syncctl_core::{ErrorClass, ErrorInfo, Status};

    fn result(command: &str, status: Status, exit_code: i32, data: Value) -> RunResult {
        let started = chrono::Utc.with_ymd_and_hms(2025, 10, 1, 2, 0, 0).unwrap();
        let mut r = RunResult::new(command, started);
        r.run_id = uuid::Uuid::parse_str("7f9c1f7e-5a1b-4c1e-9a55-2f0c1d3e4b5a").unwrap();
        r.status = status;
        r.exit_code = exit_code;
        r.data = data;
        r.finish(started + chrono::Duration::milliseconds(83_412));
        r
    }

    fn side(connector: &str, object: &str, counts: [u64; 6]) -> Value {
        json!({
            "connector": connector, "object": object, "endpoint": "x", "batch_size": 100,
            "read": counts[0], "created": counts[1], "updated": counts[2], "deleted": counts[3],
            "rejected": counts[4], "failed": counts[5], "cursor": {"before": null, "after": null},
        })
    }

    #[test]
    fn a_sync_run_with_failures_conflicts_and_rejections() {
        let failed: Vec<Value> = (0..7)
            .map(|i| {
                json!({"id": i, "side": "target", "action": "update", "key": format!("{}", 40 + i),
                       "error": "Duplicate entry 'ada@example.com' for key 'email'"})
            })
            .collect();
        let data = json!({
            "sync": "contacts", "run": "0c8d4c4e-1f7a-4a8e-b0a1-5e9d2f3c4b6a",
            "direction": "bidirectional", "conflict_strategy": "manual", "dry_run": false,
            "source": side("postgres", "public.contacts", [120, 3, 2, 0, 0, 0]),
            "target": side("mysql", "crm.customers", [118, 1, 9, 1, 2, 7]),
            "conflicts": {"detected": 1, "resolved": 0, "queued": 1, "items": [
                {"id": 12, "source_key": "1", "target_key": "1", "outcome": "queued",
                 "fields": {"first_name": {"base": "Ada", "source": "Augusta", "target": "Ada-Lady", "winner": null}}}
            ]},
            "rejected": [
                {"id": 3, "side": "target", "record": "source:77", "natural_key": "not-an-email",
                 "reasons": ["target: email is not an email address"]},
                {"id": 4, "side": "target", "record": "source:78", "natural_key": null,
                 "reasons": ["target: phone is empty", "target: name is required"]}
            ],
            "failed": failed,
            "breaker": {},
        });
        let mut r = result("sync run", Status::Failed, 1, data);
        r.error = Some(ErrorInfo::new(
            ErrorClass::RemoteFailed,
            "7 writes failed (more than --max-failures 0)",
        ));
        r.warnings
            .push("1 conflict is queued for review".to_owned());
        insta::assert_snapshot!(human_summary(&r));
    }

    #[test]
    fn a_dry_run_says_nothing_was_written() {
        let data = json!({
            "sync": "contacts", "run": "", "direction": "source_to_target",
            "conflict_strategy": "latest", "dry_run": true,
            "source": side("sqlite", "contacts", [4, 0, 0, 0, 0, 0]),
            "target": side("postgres", "public.customers", [1, 3, 0, 0, 1, 0]),
            "conflicts": {"detected": 0, "resolved": 0, "queued": 0, "items": []},
            "rejected": [{"id": null, "side": "target", "record": "source:not-an-email",
                          "natural_key": "not-an-email", "reasons": ["target: email is not an email address"]}],
            "failed": [], "breaker": {}, "plan": [], "plan_omitted": 0,
        });
        let mut r = result("sync plan", Status::Planned, 0, data);
        r.dry_run = true;
        r.duration_ms = 412;
        insta::assert_snapshot!(human_summary(&r));
    }

    #[test]
    fn airbyte_jobs_with_records_bytes_and_reasons() {
        let data = json!({
            "api": "config", "succeeded": 1, "failed": 1, "running": 0, "skipped": 0,
            "jobs": [
                {"job_id": 100, "connection_id": "0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02",
                 "outcome": "failed", "status": "failed", "attempts": 3, "duration_ms": 121_000,
                 "records_synced": 0, "bytes_synced": 0, "attached": false, "reused": false,
                 "failure_reason": "HubSpot returned 401: the private app token was revoked (source, system_error)",
                 "streams": [{"stream": "users", "records_committed": 0, "bytes_committed": 0, "records_rejected": 0}]},
                {"job_id": 101, "connection_id": "a3f9c2d4-7e1b-4f6a-b5c8-1d2e3f4a5b03",
                 "outcome": "succeeded", "status": "succeeded", "attempts": 1, "duration_ms": 45_250,
                 "records_synced": 125_000, "bytes_synced": 48_234_496, "attached": true,
                 "failure_reason": null,
                 "streams": [{"stream": "charges", "records_committed": 120_000, "bytes_committed": 47_185_920, "records_rejected": 3},
                             {"stream": "customers", "records_committed": 5_000, "bytes_committed": 1_048_576, "records_rejected": 0}]}
            ]
        });
        let mut r = result("airbyte trigger", Status::Failed, 1, data);
        r.error = Some(ErrorInfo::new(
            ErrorClass::RemoteFailed,
            "connection 0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02: job 100 failed",
        ));
        insta::assert_snapshot!(human_summary(&r));
    }

    #[test]
    fn a_databricks_run_with_a_failed_task_and_its_link() {
        let data = json!({
            "attached": false, "job_id": 43, "life_cycle_state": "TERMINATED", "repair_id": null,
            "result_state": "FAILED", "run_id": 1100,
            "run_page_url": "https://dbc-1234.cloud.databricks.com/#job/43/run/1100",
            "state_message": "Task report failed with message: Workload failed.",
            "tasks": [
                {"task_key": "extract", "result_state": "SUCCESS", "duration_ms": 60_000, "error": null, "run_id": 1101},
                {"task_key": "report", "result_state": "FAILED", "duration_ms": 3_500, "error": "ZeroDivisionError: division by zero", "run_id": 1102},
                {"task_key": "publish", "result_state": null, "duration_ms": null, "error": null, "run_id": 1103}
            ]
        });
        let mut r = result("dbx run-now", Status::Failed, 1, data);
        r.idempotency_key = Some("nightly_etl/scheduled__2025-10-01/run".to_owned());
        insta::assert_snapshot!(human_summary(&r));
    }

    #[test]
    fn a_snowflake_copy_with_a_partially_loaded_file() {
        let data = json!({
            "table": "RAW.EVENTS.EVENTS", "location": "s3://lake/events/", "mode": "load",
            "access": "storage integration", "partitions": ["date=2025-10-01/"],
            "statements": [{"partition": "date=2025-10-01/", "files": 2, "status": "succeeded",
                            "handle": "01b2c3d4-0000-1111-0000-000000000001", "sql": "COPY INTO …"}],
            "files": [
                {"file": "s3://lake/events/date=2025-10-01/part-0001.json", "status": "LOADED", "rows_loaded": 100, "rows_parsed": 100, "first_error": null},
                {"file": "s3://lake/events/date=2025-10-01/part-0002.json", "status": "PARTIALLY_LOADED", "rows_loaded": 48, "rows_parsed": 50,
                 "first_error": "Numeric value 'abc' is not recognized", "first_error_line": 7}
            ],
            "totals": {"rows_loaded": 148, "rows_parsed": 150, "files_loaded": 1, "files_partially_loaded": 1, "files_failed": 0}
        });
        let r = result("snowflake copy", Status::Failed, 1, data);
        insta::assert_snapshot!(human_summary(&r));
    }

    #[test]
    fn durations_and_sizes_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(1_420), "1.4 s");
        assert_eq!(duration(125_000), "2m 05s");
        assert_eq!(duration(3_720_000), "1h 02m");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn unchanged_is_what_was_read_and_not_written() {
        assert_eq!(unchanged(&side("x", "y", [10, 5, 2, 1, 0, 1])), 6);
        assert_eq!(unchanged(&side("x", "y", [0, 5, 0, 0, 0, 2])), 0);
    }
}
