//! `syncctl snowflake copy`: partitioned COPY INTO through the Snowflake SQL API v2.

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use syncctl_core::{ErrorClass, HumanDuration, OnKill};
use syncctl_http::HttpClient;
use syncctl_snowflake::partition::{DEFAULT_TEMPLATE, parse_date};
use syncctl_snowflake::quote::ObjectName;
use syncctl_snowflake::settings::{SessionContext, is_configured};
use syncctl_snowflake::{
    ConnectionSettings, CopyPlan, CopySpec, FileFormat, Location, MatchByColumnName,
    MetadataColumn, OnError, Overrides, PartitionTemplate, RunOptions, SqlApi, StorageAccess,
    Totals, conclude,
};
use tokio::time::Instant;

use crate::context::AppContext;
use crate::error::CliError;
use crate::progress::Progress;

use super::Outcome;
use super::doctor::{Probe, ServiceReport};
use super::wait::WaitArgs;

/// Arguments of `syncctl snowflake`.
#[derive(Debug, Args)]
pub(crate) struct SnowflakeArgs {
    #[command(subcommand)]
    command: SnowflakeCommand,
}

#[derive(Debug, Subcommand)]
enum SnowflakeCommand {
    /// Load date-partitioned files into a table with COPY INTO (SQL API v2)
    #[command(
        long_about = "Load date-partitioned files into a table with COPY INTO, through the Snowflake SQL API v2.\n\n\
One COPY per partition (per 1000 files with --files); several run as one BEGIN … COMMIT request unless \
--no-transaction. Identifiers are quoted and literals escaped; anything that looks like an injection is \
refused before anything is sent. Connection: SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and \
SNOWFLAKE_PRIVATE_KEY_PATH (or SNOWFLAKE_PRIVATE_KEY [+ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE]) for key-pair \
auth, or SNOWFLAKE_TOKEN with SNOWFLAKE_AUTHENTICATOR=oauth|programmatic_access_token; \
SNOWFLAKE_WAREHOUSE/ROLE/DATABASE/SCHEMA; SNOWFLAKE_HOST overrides the URL; AIRFLOW_CONN_SNOWFLAKE \
(URI or JSON) fills in whatever those leave unset."
    )]
    Copy(Box<CopyArgs>),
}

/// `syncctl snowflake copy` flags.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // flags are booleans by nature
struct CopyArgs {
    /// Target table: DB.SCHEMA.TABLE, SCHEMA.TABLE or TABLE (quote parts with "…" to keep case)
    #[arg(long, value_name = "NAME")]
    table: String,

    /// Where the partitions live: s3://bucket/path/, azure://ACCOUNT.blob.core.windows.net/CONTAINER/path/,
    /// gcs://bucket/path/ or @DB.SCHEMA.STAGE/path/
    #[arg(long = "from", value_name = "LOCATION")]
    from: String,

    /// Partition folder under --from; placeholders {date} {date_nodash} {yyyy} {mm} {dd}; '' for
    /// the whole location
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_TEMPLATE)]
    partition: String,

    /// The partition date (YYYY-MM-DD or YYYYMMDD; Airflow: {{ ds }})
    #[arg(long, value_name = "DATE", conflicts_with_all = ["from_date", "to_date"])]
    date: Option<String>,

    /// First date of a range (inclusive; one partition per day)
    #[arg(long, value_name = "DATE", requires = "to_date")]
    from_date: Option<String>,

    /// Last date of a range (inclusive)
    #[arg(long, value_name = "DATE", requires = "from_date")]
    to_date: Option<String>,

    /// Inline file format options, e.g. 'TYPE=JSON STRIP_OUTER_ARRAY=TRUE'
    #[arg(long, value_name = "OPTIONS", conflicts_with = "file_format_name")]
    file_format: Option<String>,

    /// A named file format object (DB.SCHEMA.FORMAT)
    #[arg(long, value_name = "NAME")]
    file_format_name: Option<String>,

    /// Only files whose path matches this regular expression
    #[arg(long, value_name = "REGEX", conflicts_with = "files")]
    pattern: Option<String>,

    /// Only these files, relative to each partition (comma-separated or repeated; sent in
    /// chunks of 1000)
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    files: Vec<String>,

    /// ON_ERROR: CONTINUE, SKIP_FILE, SKIP_FILE_<n>, SKIP_FILE_<n>% or ABORT_STATEMENT
    /// (Snowflake's default). Files that do not load completely fail the command unless CONTINUE
    #[arg(long, value_name = "MODE")]
    on_error: Option<String>,

    /// MATCH_BY_COLUMN_NAME: CASE_SENSITIVE, CASE_INSENSITIVE or NONE
    #[arg(long, value_name = "MODE")]
    match_by_column_name: Option<String>,

    /// Copy file metadata into a column, e.g. SOURCE_FILE=METADATA$FILENAME (repeatable; needs
    /// --match-by-column-name)
    #[arg(long, value_name = "COL=FIELD", value_delimiter = ',')]
    include_metadata: Vec<String>,

    /// Delete files from the location after they load
    #[arg(long)]
    purge: bool,

    /// Reload files even if Snowflake's load metadata says they were loaded (duplicates rows)
    #[arg(long)]
    force: bool,

    /// Do not add LOAD_UNCERTAIN_FILES = TRUE to partitions older than 64 days (Snowflake then
    /// silently skips files whose load status it has forgotten)
    #[arg(long)]
    no_load_uncertain: bool,

    /// STORAGE_INTEGRATION for an external location (else AWS_KEY_ID/AWS_SECRET_KEY or
    /// AWS_KEY/AWS_SECRET [+ AWS_TOKEN] for s3://, the SAS token for azure://)
    #[arg(long, value_name = "NAME")]
    storage_integration: Option<String>,

    /// Environment variable holding the Azure SAS token
    #[arg(long, value_name = "VAR", default_value = "AZURE_SAS_TOKEN")]
    azure_sas_token_env: String,

    /// Print the exact SQL (secrets as ***) in the result; send nothing
    #[arg(long)]
    dry_run: bool,

    /// VALIDATION_MODE = RETURN_ERRORS: report the errors the files would cause, load nothing
    #[arg(long)]
    validate: bool,

    /// One request per statement instead of one BEGIN … COMMIT request for all
    #[arg(long)]
    no_transaction: bool,

    /// Warehouse [env: SNOWFLAKE_WAREHOUSE]
    #[arg(long, value_name = "NAME")]
    warehouse: Option<String>,

    /// Role [env: SNOWFLAKE_ROLE]
    #[arg(long, value_name = "NAME")]
    role: Option<String>,

    /// Database for unqualified names [env: SNOWFLAKE_DATABASE]
    #[arg(long, value_name = "NAME")]
    database: Option<String>,

    /// Schema for unqualified names [env: SNOWFLAKE_SCHEMA]
    #[arg(long, value_name = "NAME")]
    schema: Option<String>,

    /// Airflow connection id to read settings from (AIRFLOW_CONN_<ID>)
    #[arg(long, value_name = "ID", default_value = "snowflake")]
    airflow_conn_id: String,

    /// Snowflake's own statement timeout (the request's timeout field)
    #[arg(long, value_name = "DURATION")]
    statement_timeout: Option<HumanDuration>,

    #[command(flatten)]
    wait: WaitArgs,
}

impl SnowflakeArgs {
    /// Whether this is a dry run (nothing sent but the SQL shown).
    pub(crate) fn dry_run(&self) -> bool {
        match &self.command {
            SnowflakeCommand::Copy(a) => a.dry_run,
        }
    }

    /// The command's name in results.
    pub(crate) fn name(&self) -> String {
        match self.command {
            SnowflakeCommand::Copy(_) => "snowflake copy".to_owned(),
        }
    }
}

/// Runs the command.
pub(crate) async fn exec(args: SnowflakeArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    match args.command {
        SnowflakeCommand::Copy(a) => copy(*a, ctx).await,
    }
}

/// Builds the COPY spec from flags and the environment; every problem here is a usage or
/// config error and nothing has been sent.
fn build_spec(a: &CopyArgs, ctx: &AppContext) -> Result<CopySpec, CliError> {
    let table = ObjectName::parse("--table", a.table.trim()).map_err(CliError::from)?;
    let location = Location::parse(&a.from).map_err(CliError::from)?;
    let template = PartitionTemplate::parse(&a.partition).map_err(CliError::from)?;
    let dates = match (&a.date, &a.from_date, &a.to_date) {
        (Some(d), _, _) => {
            let d = parse_date("--date", d).map_err(CliError::from)?;
            Some((d, d))
        }
        (None, Some(f), Some(t)) => Some((
            parse_date("--from-date", f).map_err(CliError::from)?,
            parse_date("--to-date", t).map_err(CliError::from)?,
        )),
        _ => None,
    };
    let partitions = template.expand(dates).map_err(CliError::from)?;
    let file_format = match (&a.file_format, &a.file_format_name) {
        (Some(opts), _) => Some(FileFormat::parse_options(opts).map_err(CliError::from)?),
        (None, Some(name)) => Some(FileFormat::Named(
            ObjectName::parse("--file-format-name", name.trim()).map_err(CliError::from)?,
        )),
        (None, None) => None,
    };
    let mut files: Vec<String> = Vec::new();
    for f in a.files.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        if !files.iter().any(|x| x == f) {
            files.push(f.to_owned());
        }
    }
    let include_metadata = a
        .include_metadata
        .iter()
        .filter(|m| !m.trim().is_empty())
        .map(|m| m.parse::<MetadataColumn>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::from)?;
    let access = StorageAccess::resolve(
        &location,
        a.storage_integration.as_deref(),
        &ctx.env,
        &a.azure_sas_token_env,
    )
    .map_err(CliError::from)?;
    Ok(CopySpec {
        table,
        location,
        partitions,
        files,
        pattern: a.pattern.clone(),
        file_format,
        on_error: a
            .on_error
            .as_deref()
            .map(str::parse::<OnError>)
            .transpose()
            .map_err(CliError::from)?,
        match_by_column_name: a
            .match_by_column_name
            .as_deref()
            .map(str::parse::<MatchByColumnName>)
            .transpose()
            .map_err(CliError::from)?,
        include_metadata,
        purge: a.purge,
        force: a.force,
        load_uncertain: !a.no_load_uncertain,
        validate: a.validate,
        access,
    })
}

async fn copy(a: CopyArgs, ctx: &AppContext) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let waiter = a.wait.waiter(ctx, started, OnKill::Cancel)?;
    let spec = build_spec(&a, ctx)?;
    let today = chrono::Utc::now().date_naive();
    let plan = spec.plan(today).map_err(CliError::from)?;
    let transaction = !a.no_transaction;
    let base = serde_json::json!({
        "table": spec.table.to_string(),
        "location": spec.location.to_string(),
        "partitions": spec.partitions.iter().map(|p| p.path.clone()).collect::<Vec<_>>(),
        "mode": if spec.validate { "validate" } else { "load" },
        "access": spec.access.describe(),
    });
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    if a.dry_run {
        return Ok(dry_run(base, &plan, transaction));
    }

    let overrides = Overrides {
        context: SessionContext {
            warehouse: a.warehouse.clone(),
            role: a.role.clone(),
            database: a.database.clone(),
            schema: a.schema.clone(),
        },
        airflow_conn_id: Some(a.airflow_conn_id.clone()),
    };
    let settings = ConnectionSettings::resolve(&ctx.env, &overrides)?;
    for s in &settings.secrets {
        ctx.add_secret(s.expose_secret());
    }
    tracing::info!(
        base_url = %settings.base_url,
        auth = settings.credentials.describe(),
        sources = %settings.sources.join(", "),
        fingerprint = settings.credentials.fingerprint().unwrap_or("-"),
        warehouse = settings.context.warehouse.as_deref().unwrap_or("(user default)"),
        statements = plan.copies.len(),
        "Loading {} partition(s) into {}.",
        spec.partitions.len(),
        spec.table
    );
    let api = sql_api(ctx, &settings)?;
    let retry_first = ctx
        .orchestrator
        .airflow_try_number
        .as_deref()
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n > 1);
    let opts = RunOptions {
        transaction,
        validate: spec.validate,
        context: settings.context.clone(),
        statement_timeout: a.statement_timeout.map(HumanDuration::get),
        query_tag: Some(match &ctx.idempotency_key {
            Some(k) => format!("syncctl snowflake copy {k}"),
            None => "syncctl snowflake copy".to_owned(),
        }),
        idempotency_key: ctx.idempotency_key.clone(),
        retry_first,
        wait: waiter,
    };
    let mut progress = Progress::new(ctx.progress, "Waiting for Snowflake");
    let mut on_progress = |m: &str| progress.update(m);
    let report = syncctl_snowflake::run_copy(&api, &plan, &opts, &mut on_progress).await;
    let clocks = opts.wait.options();
    Ok(conclude(
        base,
        &spec,
        plan.warnings,
        report,
        clocks.deadline,
        clocks.wait_timeout,
    )
    .into())
}

fn sql_api(ctx: &AppContext, settings: &ConnectionSettings) -> Result<SqlApi, CliError> {
    let policy = ctx.retry_policy()?;
    let http = HttpClient::builder("snowflake", &settings.base_url)
        .timeout(ctx.http_timeout()?)
        .retry(policy)
        .auth(settings.credentials.provider())
        .build()?;
    Ok(SqlApi::new(http, policy.base_delay))
}

fn dry_run(mut data: serde_json::Value, plan: &CopyPlan, transaction: bool) -> Outcome {
    let statements: Vec<serde_json::Value> = plan
        .copies
        .iter()
        .map(|c| {
            serde_json::json!({
                "handle": null,
                "sql": c.redacted_sql,
                "partition": c.partition,
                "load_uncertain": c.load_uncertain,
            })
        })
        .collect();
    let batches: Vec<&[syncctl_snowflake::PlannedCopy]> = if transaction {
        vec![&plan.copies[..]]
    } else {
        plan.copies.chunks(1).collect()
    };
    let requests: Vec<serde_json::Value> = batches
        .into_iter()
        .map(|b| {
            let t = CopyPlan::request_text(b, transaction);
            serde_json::json!({"statement": t.redacted, "statement_count": t.count, "transaction": transaction && b.len() > 1})
        })
        .collect();
    data["statements"] = serde_json::json!(statements);
    data["requests"] = serde_json::json!(requests);
    data["files"] = serde_json::json!([]);
    data["totals"] = serde_json::json!(Totals::default());
    Outcome::planned(data).with_warnings(plan.warnings.clone())
}

/// `syncctl doctor` checks for this group's services.
pub(crate) fn doctor_probes() -> Vec<Probe> {
    vec![Probe {
        name: "snowflake",
        check: |ctx, offline| Box::pin(probe(ctx, offline)),
    }]
}

async fn probe(ctx: &AppContext, offline: bool) -> ServiceReport {
    let mut r = ServiceReport {
        name: "snowflake",
        ..ServiceReport::default()
    };
    if !is_configured(&ctx.env, None) {
        return r;
    }
    r.configured = true;
    let settings = match ConnectionSettings::resolve(&ctx.env, &Overrides::default()) {
        Ok(s) => s,
        Err(e) => {
            r.ok = Some(false);
            r.message = Some(e.to_string());
            r.class = Some(ErrorClass::Config);
            return r;
        }
    };
    for s in &settings.secrets {
        ctx.add_secret(s.expose_secret());
    }
    r.base_url = Some(settings.base_url.clone());
    r.auth = Some(match settings.credentials.fingerprint() {
        Some(fp) => format!("{} ({fp})", settings.credentials.describe()),
        None => settings.credentials.describe().to_owned(),
    });
    if offline {
        return r;
    }
    let result = async {
        let api = sql_api(ctx, &settings)?;
        api.probe(&settings.context).await.map_err(CliError::from)
    }
    .await;
    match result {
        Ok(version) => {
            r.ok = Some(true);
            r.message = Some(match version {
                Some(v) => format!("authenticated; Snowflake {v}"),
                None => "authenticated".to_owned(),
            });
        }
        Err(e) => {
            r.ok = Some(false);
            r.class = Some(e.class);
            r.message = Some(e.to_info().message);
        }
    }
    r
}
