//! `syncctl schema`: the JSON Schema of `syncctl.result/v1`.

use clap::Args;
use syncctl_core::RunResult;

use super::Outcome;

/// Arguments of `syncctl schema`.
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Print only the schema document (pretty JSON), not a result line; for
    /// `syncctl schema --raw > docs/result.v1.schema.json`
    #[arg(long)]
    raw: bool,
}

/// The schema as the result's `data`, or raw with `--raw`.
pub(crate) fn exec(args: &SchemaArgs) -> Outcome {
    let text = RunResult::json_schema();
    let data = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    let mut outcome = Outcome::succeeded(data);
    if args.raw {
        outcome.raw_stdout = Some(text);
    }
    outcome
}
