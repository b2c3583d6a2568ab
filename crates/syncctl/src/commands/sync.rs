//! `syncctl sync`: two-way record sync. `run`/`plan`/`check` drive the engine in
//! `syncctl-sync` over connectors built from the config; `conflicts`, `history` and `show`
//! read (and, for resolutions, write) its state store.

mod init;
mod review;
mod runs;
mod settings;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::context::AppContext;
use crate::error::CliError;

use super::Outcome;
use super::doctor::Probe;

/// Arguments of `syncctl sync`.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    #[command(subcommand)]
    command: SyncCommand,
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Sync records between the source and the target (or plan it with --dry-run)
    Run(Box<RunArgs>),
    /// Read both sides and print the full plan; writes nothing anywhere (= run --dry-run)
    Plan(Box<PlanArgs>),
    /// Validate the config and connectivity; lists every problem at once (exit 2 on any)
    Check(Box<CheckArgs>),
    /// Print a built-in mapping as a sync.yaml to start from (--raw: the YAML alone)
    Init(InitArgs),
    /// List and resolve conflicts queued by the manual strategy
    Conflicts(ConflictsArgs),
    /// Recent runs of a sync, newest first
    History(HistoryArgs),
    /// One run and its per-record audit
    Show(ShowArgs),
}

impl SyncArgs {
    /// Whether this is a dry run (`sync plan`, `sync run --dry-run`).
    pub(crate) fn dry_run(&self) -> bool {
        match &self.command {
            SyncCommand::Run(a) => a.dry_run,
            SyncCommand::Plan(_) => true,
            _ => false,
        }
    }

    /// The command's name in results.
    pub(crate) fn name(&self) -> String {
        match &self.command {
            SyncCommand::Run(_) => "sync run",
            SyncCommand::Plan(_) => "sync plan",
            SyncCommand::Check(_) => "sync check",
            SyncCommand::Init(_) => "sync init",
            SyncCommand::Conflicts(c) => match c.command {
                ConflictsCommand::List(_) => "sync conflicts list",
                ConflictsCommand::Resolve(_) => "sync conflicts resolve",
            },
            SyncCommand::History(_) => "sync history",
            SyncCommand::Show(_) => "sync show",
        }
        .to_owned()
    }
}

/// Which way records flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum DirectionArg {
    /// Source changes go to the target
    SourceToTarget,
    /// Target changes go to the source
    TargetToSource,
    /// Both ways, conflicts settled by the strategy
    Bidirectional,
}

/// How same-field conflicts are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum StrategyArg {
    /// The source's value wins
    SourceWins,
    /// The target's value wins
    TargetWins,
    /// The record modified last wins (ties: source)
    Latest,
    /// Queue for review; the record is left untouched on both sides
    Manual,
}

/// Where the state store is.
#[derive(Debug, Args)]
struct StoreArgs {
    /// The sync config (YAML); its `state` names the store
    #[arg(long, short = 'c', value_name = "PATH")]
    config: Option<PathBuf>,

    /// State store URL: sqlite:///abs/state.db, sqlite://rel/state.db or
    /// postgres://…[?schema=NAME] [env: SYNCCTL_STATE_URL] [default: the config's `state`, else
    /// state.db in $SYNCCTL_STATE_DIR when set, else sqlite://.syncctl/state.db]
    #[arg(long, value_name = "URL")]
    state_url: Option<String>,
}

/// What to sync: the config and its overrides (`run`, `plan`, `check`).
#[derive(Debug, Args)]
struct SpecArgs {
    #[command(flatten)]
    store: StoreArgs,

    /// Source connector kind; without --config, `--source hubspot --target quickbooks` uses the
    /// built-in contacts ↔ customers mapping
    #[arg(long, value_name = "TYPE", help_heading = "Overrides")]
    source: Option<String>,

    /// Target connector kind
    #[arg(long, value_name = "TYPE", help_heading = "Overrides")]
    target: Option<String>,

    /// Objects to sync, as SOURCE:TARGET (tables, files, CRM objects); without --config it
    /// chooses one of the pair's built-in mappings (`syncctl sync init --help` lists them)
    #[arg(long, value_name = "SRC:TGT", help_heading = "Overrides")]
    object: Option<String>,

    /// Which way records flow [default: the config's, else bidirectional]
    #[arg(long, value_enum, value_name = "DIRECTION", help_heading = "Overrides")]
    direction: Option<DirectionArg>,

    /// How a field changed on both sides to different values is settled [default: the
    /// config's, else manual]
    #[arg(long, value_enum, value_name = "STRATEGY", help_heading = "Overrides")]
    conflict_strategy: Option<StrategyArg>,

    /// Records per write batch (capped by each connector's own maximum) [default: the
    /// config's, else 100]
    #[arg(long, value_name = "N", help_heading = "Overrides")]
    batch_size: Option<usize>,

    /// Failed writes tolerated before the run counts as failed [default: the config's, else 0]
    #[arg(long, value_name = "N", help_heading = "Overrides")]
    max_failures: Option<u64>,

    /// Mass-delete guard: the largest fraction of a side's linked records one run may delete
    /// [default: the config's, else 0.1]
    #[arg(long, value_name = "FRACTION", help_heading = "Overrides")]
    max_delete_fraction: Option<f64>,
}

/// How much to read and how much of the plan to report (`run`, `plan`).
#[derive(Debug, Args)]
struct ReadArgs {
    /// Ignore the incremental cursors and read every record of both sides
    #[arg(long)]
    full_refresh: bool,

    /// At most this many plan entries in the result (0: all); counts are always complete
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    plan_limit: usize,

    /// Use the state store although its recorded endpoints, objects, key or field mapping
    /// differ from the config (a deliberate move), and record the new binding. Links are then
    /// trusted against the new systems: only for the same data in a new place
    #[arg(long)]
    rebind: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    spec: SpecArgs,

    #[command(flatten)]
    read: ReadArgs,

    /// Plan only: read both sides, print the plan, write nothing anywhere
    #[arg(long)]
    dry_run: bool,

    /// Include the per-record plan in the result (always there with --dry-run; -v does too)
    #[arg(long)]
    show_plan: bool,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    spec: SpecArgs,

    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    spec: SpecArgs,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Source connector kind (hubspot, google_sheets, …)
    #[arg(long, value_name = "TYPE")]
    source: String,

    /// Target connector kind (quickbooks, hubspot, …)
    #[arg(long, value_name = "TYPE")]
    target: String,

    /// Which built-in mapping of the pair, as SOURCE:TARGET objects [default: the pair's default]
    #[arg(long, value_name = "SRC:TGT")]
    object: Option<String>,

    /// Print only the YAML (no result line), for `sync init … --raw > sync.yaml`
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Args)]
struct ConflictsArgs {
    #[command(subcommand)]
    command: ConflictsCommand,
}

#[derive(Debug, Subcommand)]
enum ConflictsCommand {
    /// List conflicts (open and resolved-but-not-applied by default)
    List(ConflictListArgs),
    /// Resolve a conflict: applied on the next run, or now with --apply
    Resolve(ConflictResolveArgs),
}

/// Which conflicts to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConflictStatusArg {
    /// Waiting for a decision, or decided and waiting for the next run
    Pending,
    /// Waiting for a decision
    Open,
    /// Decided, not yet applied
    Resolved,
    /// Applied, superseded or settled by a strategy
    Closed,
    /// Everything
    All,
}

#[derive(Debug, Args)]
struct ConflictListArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this sync [default: the config's name, with --config]
    #[arg(long = "sync", value_name = "NAME")]
    sync_name: Option<String>,
    /// Which conflicts
    #[arg(long, value_enum, default_value = "pending")]
    status: ConflictStatusArg,
    /// At most this many (newest first)
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: i64,
}

#[derive(Debug, Args)]
struct ConflictResolveArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The conflict id (from `sync conflicts list` or a run's result)
    #[arg(value_name = "ID")]
    id: i64,
    /// `source`, `target`, or a JSON file of field → value for every conflicting field
    #[arg(long, value_name = "source|target|VALUES.json")]
    keep: String,
    /// Apply it now (runs the sync for this one record; needs --config) instead of on the next run
    #[arg(long)]
    apply: bool,
    /// Who resolved it, for the audit [default: $USER@host]
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(Debug, Args)]
struct HistoryArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this sync [default: the config's name, with --config]
    #[arg(long = "sync", value_name = "NAME")]
    sync_name: Option<String>,
    /// At most this many runs
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: i64,
}

#[derive(Debug, Args)]
struct ShowArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The run id (`data.run` of a result, or from `sync history`)
    #[arg(value_name = "RUN_ID")]
    run_id: String,
}

/// The connector kinds this binary has (for `--source`/`--target` in `--help`).
pub(crate) fn connector_kinds() -> Vec<&'static str> {
    settings::registry().kinds()
}

/// Runs the command.
pub(crate) async fn exec(args: SyncArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    match args.command {
        SyncCommand::Run(a) => {
            let include_plan = a.show_plan || a.dry_run;
            runs::run(&a.spec, &a.read, a.dry_run, include_plan, ctx).await
        }
        SyncCommand::Plan(a) => runs::run(&a.spec, &a.read, true, true, ctx).await,
        SyncCommand::Check(a) => runs::check(&a.spec, ctx).await,
        SyncCommand::Init(a) => init::init(&a, ctx),
        SyncCommand::Conflicts(c) => match c.command {
            ConflictsCommand::List(a) => review::list_conflicts(a, ctx).await,
            ConflictsCommand::Resolve(a) => review::resolve_conflict(a, ctx).await,
        },
        SyncCommand::History(a) => review::history(a, ctx).await,
        SyncCommand::Show(a) => review::show(a, ctx).await,
    }
}

/// `syncctl doctor` checks for this group: none, the sync's systems come from its config
/// (`syncctl sync check --config …` checks them).
pub(crate) fn doctor_probes() -> Vec<Probe> {
    Vec::new()
}
