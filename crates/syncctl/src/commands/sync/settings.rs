//! Settings for `syncctl sync`: the config file (interpolated, validated), the command-line
//! overrides on top of it, the state store URL and the connectors built from the registry.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use syncctl_core::breaker::{BreakerConfig, CircuitBreaker, SharedBreaker};
use syncctl_core::{
    BuildContext, Classified, Connector, ConnectorError, CredentialStore, ErrorClass, Registry,
};
use syncctl_sync::builtin::{self, Builtin};
use syncctl_sync::config::{ConflictStrategy, Direction, SyncConfig, parse_config_with};
use syncctl_sync::credentials::STATE_KEY_VAR;
use syncctl_sync::{Side, StateCredentials, StateKey, StateStore, SyncError};

use crate::context::AppContext;
use crate::error::CliError;

use super::{DirectionArg, SpecArgs, StoreArgs, StrategyArg};

/// The state store used when neither flag, environment nor config names one.
pub(super) const DEFAULT_STATE: &str = "sqlite://.syncctl/state.db";

/// Connector kinds that are planned but not in this build.
const LATER: &[(&str, &str)] = &[];

/// Every connector this binary has: one line per connector crate.
pub(super) fn registry() -> Registry {
    Registry::new(&[
        syncctl_sql::FACTORIES,
        syncctl_csv::FACTORIES,
        syncctl_hubspot::FACTORIES,
        syncctl_quickbooks::FACTORIES,
        syncctl_sheets::FACTORIES,
    ])
}

/// A config ready to run, and where its relative paths and state live.
pub(super) struct Resolved {
    pub(super) config: SyncConfig,
    pub(super) config_path: Option<PathBuf>,
    /// Relative connector paths are taken from here (the config's directory, else the cwd).
    pub(super) base_dir: PathBuf,
    pub(super) state_url: String,
    /// Relative state paths are taken from here.
    pub(super) state_base: PathBuf,
}

fn cwd() -> Result<PathBuf, CliError> {
    std::env::current_dir().map_err(|e| CliError::new(ErrorClass::Internal, e))
}

/// Reads, interpolates (`${VAR}` from the environment) and validates a config file.
pub(super) fn load_config(
    path: &Path,
    ctx: &AppContext,
) -> Result<(SyncConfig, PathBuf), CliError> {
    let text =
        syncctl_config::read_capped(path, syncctl_config::MAX_INPUT_FILE_BYTES).map_err(|e| {
            CliError::config(format!("cannot read sync config {}: {e}", path.display()))
        })?;
    let origin = path.display().to_string();
    let config = parse_config_with(&origin, &text, &|k| ctx.env.get(k))?;
    register_secrets(&config.source, ctx);
    register_secrets(&config.target, ctx);
    if let Some(s) = &config.state {
        register_secrets(&Value::String(s.clone()), ctx);
    }
    // Absolute, so connector endpoints (which name breakers) do not depend on the cwd.
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(cwd, |p| {
            std::path::absolute(p).map_err(|e| CliError::new(ErrorClass::Internal, e))
        })?;
    Ok((config, base))
}

/// Registers every password-like value of a connector block with the redactor.
fn register_secrets(v: &Value, ctx: &AppContext) {
    match v {
        Value::String(s) => {
            if let Some(pw) = syncctl_core::redact::url_password(s) {
                ctx.add_secret(pw);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                let secretish = syncctl_core::Redactor::is_secret_name(k);
                if let (true, Value::String(s)) = (secretish, v) {
                    ctx.add_secret(s);
                }
                register_secrets(v, ctx);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| register_secrets(v, ctx)),
        _ => {}
    }
}

/// The state URL and the directory its relative path is taken from: `--state-url`, then
/// `SYNCCTL_STATE_URL` (both relative to the working directory), then the config's `state`
/// (relative to the config), then `$SYNCCTL_STATE_DIR/state.db`, then the default next to the
/// config (or in the cwd).
pub(super) fn state_url(
    store: &StoreArgs,
    config: Option<(&SyncConfig, &Path)>,
    ctx: &AppContext,
) -> Result<(String, PathBuf), CliError> {
    if let Some(u) = &store.state_url {
        register_secrets(&Value::String(u.clone()), ctx);
        return Ok((u.clone(), cwd()?));
    }
    if let Some(u) = ctx
        .env
        .get("SYNCCTL_STATE_URL")
        .filter(|u| !u.trim().is_empty())
    {
        return Ok((u, cwd()?));
    }
    match config {
        Some((c, base)) => match &c.state {
            Some(s) => Ok((s.clone(), base.to_path_buf())),
            None => default_state(base, ctx),
        },
        None => default_state(&cwd()?, ctx),
    }
}

/// The state store when nothing names one: `state.db` in `SYNCCTL_STATE_DIR` when that is set
/// (the container image sets it to its one writable directory, where the Airbyte records live
/// too; a relative path is taken from the working directory), else [`DEFAULT_STATE`] relative
/// to `base`.
fn default_state(base: &Path, ctx: &AppContext) -> Result<(String, PathBuf), CliError> {
    let Some(dir) = ctx
        .env
        .get("SYNCCTL_STATE_DIR")
        .filter(|d| !d.trim().is_empty())
    else {
        return Ok((DEFAULT_STATE.to_owned(), base.to_path_buf()));
    };
    let file = std::path::absolute(Path::new(&dir).join("state.db")).map_err(|e| {
        CliError::config(format!(
            "SYNCCTL_STATE_DIR {dir:?} is not a usable path: {e}"
        ))
    })?;
    // An absolute path: `sqlite:///var/lib/syncctl/state.db`.
    Ok((format!("sqlite://{}", file.display()), cwd()?))
}

/// The built-in mapping `--source`, `--target` and `--object` choose (usage error, exit 2,
/// listing the choices, when none fits).
pub(super) fn choose_builtin(
    source: Option<&str>,
    target: Option<&str>,
    object: Option<&str>,
) -> Result<&'static Builtin, CliError> {
    let (Some(s), Some(t)) = (source, target) else {
        // The pairs from the embedded list, so the message cannot go stale.
        let mut pairs: Vec<String> = Vec::new();
        for b in builtin::BUILTINS {
            let pair = format!("{} → {}", b.source, b.target);
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        return Err(CliError::usage(format!(
            "pass --config sync.yaml, or --source and --target for a pair with a built-in mapping ({})",
            pairs.join(", ")
        )));
    };
    builtin::choose(s, t, object).map_err(|e| CliError::usage(e.to_string()))
}

/// Parses a built-in mapping with the loader of config files (`${VAR}` from the environment).
pub(super) fn load_builtin(b: &Builtin, ctx: &AppContext) -> Result<SyncConfig, CliError> {
    let config = parse_config_with(&b.origin(), b.yaml, &|k| ctx.env.get(k))?;
    register_secrets(&config.source, ctx);
    register_secrets(&config.target, ctx);
    Ok(config)
}

/// Resolves the config and the overrides of `run`/`plan`/`check`.
pub(super) fn resolve_run(a: &SpecArgs, ctx: &AppContext) -> Result<Resolved, CliError> {
    let (mut config, base_dir, config_path) = match &a.store.config {
        Some(p) => {
            let (c, base) = load_config(p, ctx)?;
            (c, base, Some(p.clone()))
        }
        None => {
            let b = choose_builtin(
                a.source.as_deref(),
                a.target.as_deref(),
                a.object.as_deref(),
            )?;
            (load_builtin(b, ctx)?, cwd()?, None)
        }
    };
    for (side, want) in [(Side::Source, &a.source), (Side::Target, &a.target)] {
        if let Some(w) = want
            && config.kind(side) != w
        {
            return Err(CliError::usage(format!(
                "--{} {w} does not match the config's {} connector {}",
                side.as_str(),
                side.as_str(),
                config.kind(side)
            )));
        }
    }
    // With a config file, --object renames its objects; without one it chose the mapping.
    if let (Some(o), Some(_)) = (&a.object, &config_path) {
        let Some((s, t)) = o
            .split_once(':')
            .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        else {
            return Err(CliError::usage(format!(
                "--object takes SOURCE:TARGET, got {o:?}"
            )));
        };
        for (block, v) in [(&mut config.source, s), (&mut config.target, t)] {
            if let Some(m) = block.as_object_mut() {
                m.insert("object".into(), Value::String(v.to_owned()));
            }
        }
    }
    if let Some(d) = a.direction {
        config.direction = match d {
            DirectionArg::SourceToTarget => Direction::SourceToTarget,
            DirectionArg::TargetToSource => Direction::TargetToSource,
            DirectionArg::Bidirectional => Direction::Bidirectional,
        };
    }
    if let Some(s) = a.conflict_strategy {
        config.conflict_strategy = match s {
            StrategyArg::SourceWins => ConflictStrategy::SourceWins,
            StrategyArg::TargetWins => ConflictStrategy::TargetWins,
            StrategyArg::Latest => ConflictStrategy::Latest,
            StrategyArg::Manual => ConflictStrategy::Manual,
        };
    }
    if let Some(n) = a.batch_size {
        config.batch_size = n;
    }
    if let Some(n) = a.max_failures {
        config.max_failures = n;
    }
    if let Some(f) = a.max_delete_fraction {
        config.max_delete_fraction = f;
    }
    let mut problems = config.problems();
    problems.extend(latest_needs_row_times(&config));
    if !problems.is_empty() {
        return Err(SyncError::Config { problems }.into());
    }
    let (state_url, state_base) = state_url(&a.store, Some((&config, &base_dir)), ctx)?;
    Ok(Resolved {
        config,
        config_path,
        base_dir,
        state_url,
        state_base,
    })
}

/// Connector kinds whose records carry no modified time unless the block names an
/// `updated_at_column` (a sheet has no per-row edit time, and its file time is not readable
/// with the spreadsheets scope).
const NO_ROW_TIMES: &[&str] = &["google_sheets"];

/// `conflict_strategy: latest` on a side that cannot say which edit is later would quietly
/// become "source wins": refused before anything runs.
fn latest_needs_row_times(config: &SyncConfig) -> Vec<String> {
    if config.conflict_strategy != ConflictStrategy::Latest {
        return Vec::new();
    }
    [("source", &config.source), ("target", &config.target)]
        .into_iter()
        .filter(|(_, b)| {
            b.get("connector")
                .and_then(Value::as_str)
                .is_some_and(|k| NO_ROW_TIMES.contains(&k))
                && b.get("updated_at_column")
                    .and_then(Value::as_str)
                    .is_none_or(|c| c.trim().is_empty())
        })
        .map(|(side, b)| {
            format!(
                "conflict_strategy latest needs to know when each row changed, but the {side} ({}) has no updated_at_column: a sheet keeps no per-row edit time. Use source_wins, target_wins or manual, or add an updated_at column that every edit sets",
                b.get("connector").and_then(Value::as_str).unwrap_or_default()
            )
        })
        .collect()
}

/// What every connector gets besides its settings: where rotating credentials are kept and
/// one breaker per side, the very breakers the engine loads from and saves to the state store.
pub(super) struct Platform {
    /// Handed to the connectors when they are built; the store behind it is attached after
    /// (building touches no credential), so connector settings are checked before the state
    /// store is opened.
    credentials: Arc<AttachedCredentials>,
    /// Source, target.
    pub(super) breakers: [SharedBreaker; 2],
}

impl Platform {
    /// Fresh closed breakers and no credential store yet: attach one with
    /// [`Platform::attach_state_store`] or [`Platform::attach_no_store`] before the connectors
    /// run.
    pub(super) fn new() -> Self {
        let breaker = || Arc::new(Mutex::new(CircuitBreaker::new(BreakerConfig::default())));
        Self {
            credentials: Arc::new(AttachedCredentials(OnceLock::new())),
            breakers: [breaker(), breaker()],
        }
    }

    /// [`Platform::new`] with `store` attached.
    pub(super) async fn with_store(
        store: Arc<StateStore>,
        state_url: &str,
        state_base: &Path,
        ctx: &AppContext,
    ) -> Result<Self, CliError> {
        let platform = Self::new();
        platform
            .attach_state_store(store, state_url, state_base, ctx)
            .await?;
        Ok(platform)
    }

    /// Keeps credentials in `store` (sealed with `SYNCCTL_STATE_KEY` when set), checked to open
    /// with that key before any connector runs; a read-only store (dry run) saves a rotated
    /// token to the store at the run's state URL.
    pub(super) async fn attach_state_store(
        &self,
        store: Arc<StateStore>,
        state_url: &str,
        state_base: &Path,
        ctx: &AppContext,
    ) -> Result<(), CliError> {
        let key = match ctx.env.get(STATE_KEY_VAR).filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(StateKey::parse(&v)?),
            None => None,
        };
        let creds =
            StateCredentials::new(store, key).saving_to(state_url, state_base.to_path_buf());
        creds.verify().await?;
        self.credentials.attach(Arc::new(creds));
        Ok(())
    }

    /// No state store could be opened (`sync check`): loads find nothing and saves fail, so a
    /// refresh that would rotate a token is refused before it is sent instead of losing it.
    pub(super) fn attach_no_store(&self, why: String) {
        self.credentials.attach(Arc::new(NoCredentialStore(why)));
    }

    fn breaker(&self, side: Side) -> SharedBreaker {
        self.breakers[match side {
            Side::Source => 0,
            Side::Target => 1,
        }]
        .clone()
    }
}

/// The credential store the connectors are built with, attached once the state store is open.
struct AttachedCredentials(OnceLock<Arc<dyn CredentialStore>>);

impl AttachedCredentials {
    fn attach(&self, store: Arc<dyn CredentialStore>) {
        // Attached once per command; a second store would split the credentials in two.
        assert!(
            self.0.set(store).is_ok(),
            "the credential store is attached twice"
        );
    }

    fn store(&self) -> Result<&Arc<dyn CredentialStore>, ConnectorError> {
        self.0.get().ok_or_else(|| {
            ConnectorError::unavailable(
                "credential store",
                "the state store is not open yet (a connector used credentials while being built)",
            )
        })
    }
}

#[async_trait::async_trait]
impl CredentialStore for AttachedCredentials {
    async fn load(&self, name: &str) -> Result<Option<secrecy::SecretString>, ConnectorError> {
        self.store()?.load(name).await
    }
    async fn save(&self, name: &str, value: &secrecy::SecretString) -> Result<(), ConnectorError> {
        self.store()?.save(name, value).await
    }
    async fn ready_to_save(&self) -> Result<(), ConnectorError> {
        self.store()?.ready_to_save().await
    }
}

/// The credential store when the state store cannot be opened.
struct NoCredentialStore(String);

#[async_trait::async_trait]
impl CredentialStore for NoCredentialStore {
    async fn load(&self, _name: &str) -> Result<Option<secrecy::SecretString>, ConnectorError> {
        Ok(None)
    }
    async fn save(
        &self,
        _name: &str,
        _value: &secrecy::SecretString,
    ) -> Result<(), ConnectorError> {
        self.ready_to_save().await
    }
    async fn ready_to_save(&self) -> Result<(), ConnectorError> {
        Err(ConnectorError::unavailable(
            "credential store",
            format!("the state store is not available: {}", self.0),
        ))
    }
}

/// Builds one side's connector from the registry, with the environment (`--env-file`s
/// under the process), the command's cancellation token, the credential store and the side's
/// breaker.
pub(super) async fn build_connector(
    side: Side,
    config: &SyncConfig,
    base_dir: &Path,
    ctx: &AppContext,
    platform: &Platform,
) -> Result<Box<dyn Connector>, CliError> {
    let kind = config.kind(side);
    let block = match side {
        Side::Source => config.source.clone(),
        Side::Target => config.target.clone(),
    };
    let registry = registry();
    let Some(f) = registry.get(kind) else {
        let available = registry.kinds();
        let msg = match LATER.iter().find(|(k, _)| *k == kind) {
            Some((_, product)) => format!(
                "{} connector `{kind}` ({product}) is not available in this version of syncctl (available: {})",
                side.as_str(),
                available.join(", ")
            ),
            None => format!(
                "{} connector `{kind}` is unknown (available: {})",
                side.as_str(),
                available.join(", ")
            ),
        };
        return Err(CliError::config(msg));
    };
    let env = ctx.env.clone();
    let build_ctx = BuildContext::new(base_dir.to_path_buf())
        .with_env(move |name| env.get(name))
        .with_cancel(ctx.cancel.clone())
        .with_credentials(platform.credentials.clone())
        .with_breaker(platform.breaker(side));
    (f.build)(build_ctx, block)
        .await
        .map_err(|e| connector_error(side, e))
}

/// A connector error with the side it happened on.
pub(super) fn connector_error(side: Side, e: syncctl_core::ConnectorError) -> CliError {
    let class = e.class();
    CliError::new(
        class,
        anyhow::Error::new(e).context(format!("{} connector", side.as_str())),
    )
}

/// Who runs the sync, for the run row.
pub(super) fn invoked_by(ctx: &AppContext) -> String {
    let user = ctx
        .env
        .get("USER")
        .or_else(|| ctx.env.get("USERNAME"))
        .unwrap_or_else(|| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    match ctx.orchestrator.idempotency_key() {
        Some(k) => format!("{user}@{host} ({k})"),
        None => format!("{user}@{host}"),
    }
}

/// The settings recorded in the run row (never URLs or secrets).
pub(super) fn recorded_args(r: &Resolved, full_refresh: bool, dry_run: bool) -> Value {
    let c = &r.config;
    let side = |b: &Value| {
        serde_json::json!({
            "connector": b.get("connector"),
            "object": b.get("object"),
        })
    };
    serde_json::json!({
        "config": r.config_path.as_ref().map(|p| p.display().to_string()),
        "source": side(&c.source),
        "target": side(&c.target),
        "direction": c.direction.as_str(),
        "conflict_strategy": c.conflict_strategy.as_str(),
        "batch_size": c.batch_size,
        "deletes": c.deletes.as_str(),
        "max_delete_fraction": c.max_delete_fraction,
        "max_failures": c.max_failures,
        "full_refresh": full_refresh,
        "dry_run": dry_run,
    })
}
