//! `sync init`: a built-in mapping as a `sync.yaml` to start from.

use serde_json::json;

use crate::context::AppContext;
use crate::error::CliError;

use super::super::Outcome;
use super::InitArgs;
use super::settings;

/// The chosen built-in mapping's YAML: as the result's `data.yaml`, or alone with `--raw`.
/// It is parsed first with the config loader, so what it prints is a config that loads.
pub(super) fn init(a: &InitArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let b = settings::choose_builtin(Some(&a.source), Some(&a.target), a.object.as_deref())?;
    let config = settings::load_builtin(b, ctx)?;
    let objects: Vec<String> = syncctl_sync::builtin::for_pair(b.source, b.target)
        .iter()
        .map(|b| b.object())
        .collect();
    let mut outcome = Outcome::succeeded(json!({
        "sync": config.name,
        "source": b.source,
        "target": b.target,
        "object": b.object(),
        "objects": objects,
        "yaml": b.yaml,
    }));
    if a.raw {
        outcome.raw_stdout = Some(b.yaml.to_owned());
    }
    Ok(outcome)
}
