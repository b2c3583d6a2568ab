//! `syncctl doctor`: for every service, the resolved base URL, the auth method chosen (never
//! the secret) and whether one cheap authenticated call succeeds.

use std::future::Future;
use std::pin::Pin;

use clap::Args;
use serde::Serialize;
use syncctl_core::ErrorClass;

use crate::context::AppContext;
use crate::error::CliError;

use super::Outcome;

/// Arguments of `syncctl doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Check only these services (repeatable)
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    /// Resolve settings only; make no network calls
    #[arg(long)]
    offline: bool,
}

/// What doctor found about one service.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ServiceReport {
    pub(crate) name: &'static str,
    /// Whether enough settings are present to use the service.
    pub(crate) configured: bool,
    pub(crate) base_url: Option<String>,
    /// How we authenticate ("bearer token", "OAuth client credentials", …).
    pub(crate) auth: Option<String>,
    /// Whether the cheap call succeeded (`null` when not tried).
    pub(crate) ok: Option<bool>,
    pub(crate) message: Option<String>,
    #[serde(skip)]
    pub(crate) class: Option<ErrorClass>,
}

type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ServiceReport> + Send + 'a>>;

/// One service's check: resolve its settings from the context, then (unless offline) make one
/// cheap authenticated call.
pub(crate) struct Probe {
    pub(crate) name: &'static str,
    pub(crate) check: for<'a> fn(&'a AppContext, bool) -> ProbeFuture<'a>,
}

/// Every service doctor knows; each command group lists its own.
fn probes() -> Vec<Probe> {
    let mut all = Vec::new();
    all.extend(super::airbyte::doctor_probes());
    all.extend(super::dbx::doctor_probes());
    all.extend(super::snowflake::doctor_probes());
    all.extend(super::sync::doctor_probes());
    all
}

/// Runs the probes.
pub(crate) async fn exec(args: DoctorArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let all = probes();
    for wanted in &args.services {
        if !all.iter().any(|p| p.name == wanted) {
            let names: Vec<_> = all.iter().map(|p| p.name).collect();
            return Err(CliError::usage(format!(
                "unknown service {wanted:?}; known: {}",
                if names.is_empty() {
                    "none yet".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
    }
    let mut reports = Vec::new();
    for p in all
        .iter()
        .filter(|p| args.services.is_empty() || args.services.iter().any(|s| s == p.name))
    {
        let r = (p.check)(ctx, args.offline).await;
        if r.configured {
            tracing::info!(service = r.name, base_url = r.base_url.as_deref().unwrap_or("-"), auth = r.auth.as_deref().unwrap_or("-"), ok = ?r.ok, "Checked service.");
        }
        reports.push(r);
    }
    let data = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "orchestrator": ctx.orchestrator.orchestrator(),
        "context": ctx.orchestrator.to_map(),
        "idempotency_key": ctx.idempotency_key.as_ref().map(ToString::to_string),
        "services": reports,
    });
    let failed: Vec<&ServiceReport> = reports.iter().filter(|r| r.ok == Some(false)).collect();
    if let Some(first) = failed.first() {
        let msg = failed
            .iter()
            .map(|r| format!("{}: {}", r.name, r.message.as_deref().unwrap_or("failed")))
            .collect::<Vec<_>>()
            .join("; ");
        return Ok(Outcome::failed(
            data,
            CliError::new(
                first.class.unwrap_or(ErrorClass::Transient),
                anyhow::anyhow!("{msg}"),
            ),
        ));
    }
    let mut warnings = Vec::new();
    if reports.iter().all(|r| !r.configured) {
        warnings.push("no service is configured; set e.g. AIRBYTE_API_URL, DATABRICKS_HOST or SNOWFLAKE_ACCOUNT (or pass --env-file)".to_owned());
    }
    Ok(Outcome::succeeded(data).with_warnings(warnings))
}
