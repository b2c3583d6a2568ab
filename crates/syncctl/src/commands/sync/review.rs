//! `sync conflicts list|resolve`, `sync history` and `sync show`: reading the state store, and
//! recording a person's decision on a conflict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use syncctl_sync::store::{ConflictRow, RunRow, StoredChange};
use syncctl_sync::{RunSettings, Side, StateStore, SyncConfig};

use crate::context::AppContext;
use crate::error::CliError;

use super::super::Outcome;
use super::settings;
use super::{
    ConflictListArgs, ConflictResolveArgs, ConflictStatusArg, HistoryArgs, ShowArgs, StoreArgs,
};

/// The store named by `--config`, `--state-url` or `SYNCCTL_STATE_URL`, and the config if any.
async fn store_of(
    s: &StoreArgs,
    ctx: &AppContext,
    write: bool,
) -> Result<(StateStore, Option<(SyncConfig, PathBuf)>), CliError> {
    let config = match &s.config {
        Some(p) => Some(settings::load_config(p, ctx)?),
        None => None,
    };
    let (url, base) = settings::state_url(s, config.as_ref().map(|(c, b)| (c, b.as_path())), ctx)?;
    let store = if write {
        StateStore::open(&url, &base).await?
    } else {
        StateStore::open_read_only(&url, &base).await?
    };
    Ok((store, config))
}

fn conflict_json(c: &ConflictRow) -> Value {
    json!({
        "id": c.conflict_id,
        "sync": c.sync_name,
        "link": c.link_id,
        "source_key": c.source_key,
        "target_key": c.target_key,
        "fields": c.fields.0,
        "strategy": c.strategy,
        "status": c.status,
        "resolution": c.resolution.as_ref().map(|r| &r.0),
        "detected_run": c.detected_run,
        "detected_at": syncctl_core::result::format_timestamp(c.detected_at),
        "resolved_by": c.resolved_by,
        "resolved_at": c.resolved_at.map(syncctl_core::result::format_timestamp),
        "applied_run": c.applied_run,
    })
}

/// `sync conflicts list`.
pub(super) async fn list_conflicts(
    a: ConflictListArgs,
    ctx: &AppContext,
) -> Result<Outcome, CliError> {
    let (store, config) = store_of(&a.store, ctx, false).await?;
    let sync = a.sync_name.or_else(|| config.map(|(c, _)| c.name));
    let statuses: &[&str] = match a.status {
        ConflictStatusArg::Pending => &["open", "resolved"],
        ConflictStatusArg::Open => &["open"],
        ConflictStatusArg::Resolved => &["resolved"],
        ConflictStatusArg::Closed => &["applied", "superseded", "auto_resolved"],
        ConflictStatusArg::All => &[],
    };
    let rows = store
        .conflicts(sync.as_deref(), statuses, a.limit.max(0))
        .await?;
    let data = json!({
        "sync": sync,
        "state": store.display(),
        "count": rows.len(),
        "conflicts": rows.iter().map(conflict_json).collect::<Vec<_>>(),
    });
    store.close().await;
    Ok(Outcome::succeeded(data))
}

/// `sync conflicts resolve ID --keep source|target|VALUES.json [--apply]`.
pub(super) async fn resolve_conflict(
    a: ConflictResolveArgs,
    ctx: &AppContext,
) -> Result<Outcome, CliError> {
    if a.apply && a.store.config.is_none() {
        return Err(CliError::usage(
            "--apply needs --config, to reach the systems the sync writes to",
        ));
    }
    let (store, config) = store_of(&a.store, ctx, true).await?;
    let Some(current) = store.conflict(a.id).await? else {
        store.close().await;
        return Err(CliError::usage(format!(
            "no conflict with id {} in {}",
            a.id,
            store.display()
        )));
    };
    let resolution = match a.keep.as_str() {
        "source" | "target" => json!({"keep": a.keep}),
        path => json!({"values": values_file(path, &current, config.as_ref().map(|(c, _)| c))?}),
    };
    let by = a.by.clone().unwrap_or_else(|| settings::invoked_by(ctx));
    let row = store.resolve_conflict(a.id, &resolution, &by).await?;
    let mut data = json!({"conflict": conflict_json(&row), "state": store.display()});
    if !a.apply {
        store.close().await;
        return Ok(Outcome::succeeded(data));
    }
    let Some((config, base_dir)) = config else {
        store.close().await;
        return Err(CliError::usage("--apply needs --config"));
    };
    if config.name != row.sync_name {
        store.close().await;
        return Err(CliError::usage(format!(
            "conflict {} belongs to sync {:?}, not to the config's {:?}",
            a.id, row.sync_name, config.name
        )));
    }
    let store = std::sync::Arc::new(store);
    let (state_url, state_base) =
        settings::state_url(&a.store, Some((&config, base_dir.as_path())), ctx)?;
    let platform =
        settings::Platform::with_store(store.clone(), &state_url, &state_base, ctx).await?;
    let source =
        settings::build_connector(Side::Source, &config, &base_dir, ctx, &platform).await?;
    let target =
        settings::build_connector(Side::Target, &config, &base_dir, ctx, &platform).await?;
    let settings = RunSettings {
        config: config.clone(),
        dry_run: false,
        full_refresh: false,
        include_plan: true,
        plan_limit: 0,
        only_links: Some(vec![row.link_id]),
        invoked_by: by,
        args: json!({"conflicts_resolve": a.id, "apply": true}),
        lock_lease: std::time::Duration::from_secs(60),
        rebind: false,
        breakers: platform.breakers.clone().map(Some),
    };
    let outcome = syncctl_sync::run(
        &settings,
        source.as_ref(),
        target.as_ref(),
        store.as_ref(),
        &ctx.cancel,
    )
    .await;
    if let Some(after) = store.conflict(a.id).await? {
        data["conflict"] = conflict_json(&after);
    }
    store.close().await;
    data["run"] = serde_json::to_value(&outcome.report).unwrap_or(Value::Null);
    Ok(match outcome.error {
        None => Outcome::succeeded(data),
        Some(e) => Outcome::failed(data, e.into()),
    }
    .with_warnings(outcome.warnings))
}

/// Reads a `VALUES.json` resolution: one value for every conflicting field, named by its source
/// field (or, with `--config`, its target field).
fn values_file(
    path: &str,
    c: &ConflictRow,
    config: Option<&SyncConfig>,
) -> Result<BTreeMap<String, Value>, CliError> {
    let text = syncctl_config::read_capped(Path::new(path), syncctl_config::MAX_INPUT_FILE_BYTES)
        .map_err(|e| {
        CliError::usage(format!(
            "--keep takes source, target or a JSON file of field values; cannot read {path:?}: {e}"
        ))
    })?;
    let values: BTreeMap<String, Value> = serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "{path}: expected a JSON object of field → value: {e}"
        ))
    })?;
    let mut canonical = BTreeMap::new();
    for (k, v) in values {
        if v.is_object() || v.is_array() {
            return Err(CliError::usage(format!(
                "{path}: {k} must be a plain value"
            )));
        }
        let name = config
            .and_then(|cfg| cfg.fields.iter().find(|f| f.target == k && f.source != k))
            .map_or(k, |f| f.source.clone());
        canonical.insert(name, v);
    }
    let wanted: Vec<String> = c
        .fields
        .0
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|f| !canonical.contains_key(*f))
        .map(String::as_str)
        .collect();
    let unknown: Vec<&str> = canonical
        .keys()
        .filter(|k| !wanted.contains(k))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() || !unknown.is_empty() {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("missing: {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            why.push(format!(
                "not in conflict {}: {}",
                c.conflict_id,
                unknown.join(", ")
            ));
        }
        return Err(CliError::usage(format!(
            "{path} must give a value for exactly the conflicting fields ({}); {}",
            wanted.join(", "),
            why.join("; ")
        )));
    }
    let mut problems = Vec::new();
    for (name, v) in &canonical {
        if let Some(p) = type_problem(name, v, &c.fields.0[name.as_str()]) {
            problems.push(p);
        }
    }
    if let Some(cfg) = config {
        problems.extend(rule_problems(cfg, &canonical));
    }
    if !problems.is_empty() {
        return Err(CliError::usage(format!(
            "{path}: {}; nothing was recorded",
            problems.join("; ")
        )));
    }
    Ok(canonical)
}

/// The JSON type of a value, in words.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value of another type than both sides hold for the field (a number for a name) would be
/// written to both systems: refused. `null` (clearing the field) is allowed.
fn type_problem(name: &str, v: &Value, conflict: &Value) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let held: Vec<&'static str> = ["source", "target", "base"]
        .iter()
        .filter_map(|k| conflict.get(*k))
        .filter(|x| !x.is_null())
        .map(kind_of)
        .collect();
    if held.is_empty() || held.contains(&kind_of(v)) {
        return None;
    }
    Some(format!(
        "{name} must be {} like the values in conflict, not {} ({v})",
        held[0],
        kind_of(v)
    ))
}

/// The config's validation rules for the resolved values, under both the source and the
/// target field name (the value is written to both sides).
fn rule_problems(cfg: &SyncConfig, values: &BTreeMap<String, Value>) -> Vec<String> {
    let mut named = BTreeMap::new();
    for (source_name, v) in values {
        named.insert(source_name.clone(), v.clone());
        if let Some(f) = cfg.fields.iter().find(|f| f.source == *source_name) {
            named.insert(f.target.clone(), v.clone());
        }
    }
    let mut out: Vec<String> = cfg
        .validation
        .check(&named, false)
        .into_iter()
        .map(|v| v.message)
        .collect();
    out.dedup();
    out
}

fn run_json(r: &RunRow) -> Value {
    json!({
        "run": r.run_id,
        "sync": r.sync_name,
        "status": r.status,
        "direction": r.direction,
        "started_at": syncctl_core::result::format_timestamp(r.started_at),
        "finished_at": r.finished_at.map(syncctl_core::result::format_timestamp),
        "invoked_by": r.invoked_by,
        "args": r.args.0,
        "counts": r.counts.as_ref().map(|c| &c.0),
        "error": r.error,
    })
}

fn change_json(c: &StoredChange) -> Value {
    json!({
        "id": c.change_id,
        "seq": c.seq,
        "link": c.link_id,
        "side": c.side,
        "key": c.record_key,
        "action": c.action,
        "before": c.before.as_ref().map(|v| &v.0),
        "after": c.after.as_ref().map(|v| &v.0),
        "status": c.status,
        "error": c.error,
    })
}

/// `sync history`.
pub(super) async fn history(a: HistoryArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let (store, config) = store_of(&a.store, ctx, false).await?;
    let sync = a.sync_name.or_else(|| config.map(|(c, _)| c.name));
    let runs = store.history(sync.as_deref(), a.limit.max(0)).await?;
    let data = json!({
        "sync": sync,
        "state": store.display(),
        "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
    });
    store.close().await;
    Ok(Outcome::succeeded(data))
}

/// `sync show RUN_ID`.
pub(super) async fn show(a: ShowArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let (store, _) = store_of(&a.store, ctx, false).await?;
    let Some(run) = store.run(&a.run_id).await? else {
        let msg = format!("no run {} in {}", a.run_id, store.display());
        store.close().await;
        return Err(CliError::usage(msg));
    };
    let changes = store.changes(&a.run_id).await?;
    let data = json!({
        "run": run_json(&run),
        "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
    });
    store.close().await;
    Ok(Outcome::succeeded(data))
}
