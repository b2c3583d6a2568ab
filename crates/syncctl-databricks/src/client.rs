//! The Jobs API calls syncctl makes, over the shared HTTP core.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use syncctl_http::{
    AuthProvider, BearerToken, ClientCredentials, CredentialStyle, HttpClient, RefreshingToken,
    Request, RetryPolicy, Sleeper,
};

use crate::DatabricksError;
use crate::config::{Credentials, Settings};
use crate::model::{ApiVersion, BaseJob, ListJobsPage, Run, RunOutput};

/// OAuth tokens are renewed this long before they expire (Airflow's provider uses the same
/// lead; long waits outlive hour-long tokens).
pub const TOKEN_REFRESH_LEAD: Duration = Duration::from_secs(120);

/// The OAuth M2M token endpoint, under the workspace host.
pub const TOKEN_PATH: &str = "/oidc/v1/token";

/// Page size for `jobs/list` (the API's maximum per version).
fn list_limit(api: ApiVersion) -> u32 {
    match api {
        ApiVersion::V2_1 => 25,
        ApiVersion::V2_2 => 100,
    }
}

/// Stops runaway pagination if a server keeps returning the same token.
const MAX_PAGES: usize = 1000;

/// How the HTTP clients are built.
#[derive(Clone)]
pub struct ClientOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retry policy for requests that are safe to repeat.
    pub retry: RetryPolicy,
    /// Replaces the retry timer (tests record delays instead of sleeping).
    pub sleeper: Option<Arc<dyn Sleeper>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            sleeper: None,
        }
    }
}

/// What `run-now` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunNowAnswer {
    /// The run it started, or the run an earlier request with the same idempotency token
    /// started.
    pub run_id: i64,
    /// The server's clock when it answered (its `Date` header), epoch milliseconds; the local
    /// clock when the header is missing.
    pub server_time_ms: i64,
}

/// A Jobs API client for one workspace.
#[derive(Clone)]
pub struct JobsClient {
    http: HttpClient,
    api: ApiVersion,
}

/// Builds the credentials for `settings`; OAuth tokens are fetched from `{host}/oidc/v1/token`.
///
/// # Errors
/// When the token client cannot be built.
pub fn auth_provider(
    settings: &Settings,
    opts: &ClientOptions,
) -> Result<Arc<dyn AuthProvider>, DatabricksError> {
    Ok(match &settings.credentials {
        Credentials::Pat(token) => Arc::new(BearerToken::new("databricks", token.clone())),
        Credentials::ClientCredentials {
            client_id,
            client_secret,
        } => {
            let mut b = HttpClient::builder("databricks", settings.host.clone())
                .timeout(opts.timeout)
                .retry(opts.retry);
            if let Some(s) = &opts.sleeper {
                b = b.sleeper(s.clone());
            }
            let fetcher = ClientCredentials::new(
                b.build()?,
                TOKEN_PATH,
                client_id.clone(),
                client_secret.clone(),
                CredentialStyle::FormBasic {
                    scope: Some("all-apis".to_owned()),
                },
            );
            Arc::new(RefreshingToken::new(
                "databricks",
                fetcher,
                TOKEN_REFRESH_LEAD,
            ))
        }
    })
}

impl std::fmt::Debug for JobsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsClient")
            .field("http", &self.http)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl JobsClient {
    /// A client for the workspace in `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn connect(
        settings: &Settings,
        api: ApiVersion,
        opts: &ClientOptions,
    ) -> Result<Self, DatabricksError> {
        let auth = auth_provider(settings, opts)?;
        Self::at(&settings.api_root(), auth, api, opts)
    }

    /// A client whose Jobs paths hang off `api_root` (normally `{host}/api`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn at(
        api_root: &str,
        auth: Arc<dyn AuthProvider>,
        api: ApiVersion,
        opts: &ClientOptions,
    ) -> Result<Self, DatabricksError> {
        // The gateway answers an invalid or expired token with 403 "Invalid access token.":
        // an OAuth token is fetched once more before that counts as an auth failure.
        let mut b = HttpClient::builder("databricks", api_root)
            .timeout(opts.timeout)
            .retry(opts.retry)
            .auth(auth)
            .reauth_on_forbidden();
        if let Some(s) = &opts.sleeper {
            b = b.sleeper(s.clone());
        }
        Ok(Self {
            http: b.build()?,
            api,
        })
    }

    /// The API version in use.
    #[must_use]
    pub fn api(&self) -> ApiVersion {
        self.api
    }

    /// The auth method's name ("bearer token", "OAuth client credentials").
    #[must_use]
    pub fn auth_method(&self) -> Option<&'static str> {
        self.http.auth_method()
    }

    fn path(&self, rest: &str) -> String {
        format!("{}/jobs/{rest}", self.api.as_str())
    }

    async fn call<T: DeserializeOwned>(&self, req: Request) -> Result<T, DatabricksError> {
        let resp = self
            .http
            .send(req)
            .await
            .map_err(DatabricksError::from_http)?;
        Ok(resp.json()?)
    }

    /// The one job whose name is `name`: case-sensitive exact matches first, then the API's
    /// case-insensitive ones. Follows every page.
    ///
    /// # Errors
    /// [`DatabricksError::JobNotFound`], [`DatabricksError::AmbiguousJobName`], API errors.
    pub async fn find_job_id(&self, name: &str) -> Result<i64, DatabricksError> {
        let jobs = self.list_jobs_named(name).await?;
        let name_of = |j: &BaseJob| j.settings.as_ref().and_then(|s| s.name.clone());
        let exact: Vec<i64> = jobs
            .iter()
            .filter(|j| name_of(j).as_deref() == Some(name))
            .map(|j| j.job_id)
            .collect();
        let candidates = if exact.is_empty() {
            jobs.iter()
                .filter(|j| name_of(j).is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .map(|j| j.job_id)
                .collect()
        } else {
            exact
        };
        match candidates.as_slice() {
            [] => Err(DatabricksError::JobNotFound {
                name: name.to_owned(),
            }),
            [one] => Ok(*one),
            many => {
                let mut ids = many.to_vec();
                ids.sort_unstable();
                ids.dedup();
                Err(DatabricksError::AmbiguousJobName {
                    name: name.to_owned(),
                    ids,
                })
            }
        }
    }

    /// Every job the API lists for the name filter, across pages.
    async fn list_jobs_named(&self, name: &str) -> Result<Vec<BaseJob>, DatabricksError> {
        let mut all = Vec::new();
        let mut offset = 0usize;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut req = Request::get(self.path("list"))
                .query("name", name)
                .query("limit", list_limit(self.api).to_string());
            req = match (self.api, &token) {
                (ApiVersion::V2_1, _) => req.query("offset", offset.to_string()),
                (ApiVersion::V2_2, Some(t)) => req.query("page_token", t.clone()),
                (ApiVersion::V2_2, None) => req,
            };
            let page: ListJobsPage = self.call(req).await?;
            let n = page.jobs.len();
            all.extend(page.jobs);
            match self.api {
                ApiVersion::V2_1 => {
                    if !page.has_more.unwrap_or(false) || n == 0 {
                        return Ok(all);
                    }
                    offset += n;
                }
                ApiVersion::V2_2 => match page.next_page_token.filter(|t| !t.is_empty()) {
                    Some(t) if token.as_deref() != Some(t.as_str()) => token = Some(t),
                    _ => return Ok(all),
                },
            }
        }
        Ok(all)
    }

    /// Starts a run. With an idempotency token in `body` the request is marked safe to
    /// resend (Databricks returns the existing run); without one it is sent once (the HTTP
    /// client still waits out a 429, which means nothing started).
    ///
    /// # Errors
    /// API and transport errors.
    pub async fn run_now(&self, body: &Value) -> Result<RunNowAnswer, DatabricksError> {
        let keyed = body
            .get("idempotency_token")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        let mut req = Request::post(self.path("run-now")).json(body.clone());
        if keyed {
            req = req.keyed();
        }
        let resp = self
            .http
            .send_raw(req)
            .await
            .map_err(DatabricksError::from_http)?;
        if !resp.status.is_success() {
            return Err(DatabricksError::from_http(resp.into_error()));
        }
        let server_time_ms = resp
            .header("date")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .map_or_else(now_ms, system_time_ms);
        #[derive(serde::Deserialize)]
        struct Answer {
            run_id: i64,
        }
        let a: Answer = resp.json()?;
        Ok(RunNowAnswer {
            run_id: a.run_id,
            server_time_ms,
        })
    }

    /// One run with every page merged (API 2.2 pages its tasks, iterations, job clusters, job
    /// parameters and repair history past 100 each).
    ///
    /// # Errors
    /// API and transport errors.
    pub async fn get_run(
        &self,
        run_id: i64,
        include_history: bool,
    ) -> Result<Run, DatabricksError> {
        let mut token: Option<String> = None;
        let mut merged: Option<Run> = None;
        for _ in 0..MAX_PAGES {
            let mut req = Request::get(self.path("runs/get")).query("run_id", run_id.to_string());
            if include_history {
                req = req.query("include_history", "true");
            }
            if let Some(t) = &token {
                req = req.query("page_token", t.clone());
            }
            let page: Run = self.call(req).await?;
            let next = page
                .next_page_token
                .clone()
                .filter(|t| !t.is_empty() && self.api == ApiVersion::V2_2);
            match &mut merged {
                None => merged = Some(page),
                Some(run) => run.append_page(page),
            }
            match next {
                Some(t) if token.as_deref() != Some(t.as_str()) => token = Some(t),
                _ => break,
            }
        }
        let mut run = merged.unwrap_or_default();
        run.next_page_token = None;
        Ok(run)
    }

    /// Asks Databricks to cancel a run (it stops asynchronously).
    ///
    /// # Errors
    /// API and transport errors.
    pub async fn cancel_run(&self, run_id: i64) -> Result<(), DatabricksError> {
        // Cancelling twice is harmless, so the request may be repeated.
        let req = Request::post(self.path("runs/cancel"))
            .json(json!({ "run_id": run_id }))
            .retry_safe();
        let _: Value = self.call(req).await?;
        Ok(())
    }

    /// The output of one task run (its `error` explains a failure).
    ///
    /// # Errors
    /// API and transport errors.
    pub async fn get_output(&self, task_run_id: i64) -> Result<RunOutput, DatabricksError> {
        self.call(
            Request::get(self.path("runs/get-output")).query("run_id", task_run_id.to_string()),
        )
        .await
    }

    /// Re-runs a finished run's failed tasks (`rerun_all_failed_tasks`), passing the
    /// parameters in `params` again; returns the repair id.
    ///
    /// # Errors
    /// API and transport errors.
    pub async fn repair_run(
        &self,
        run_id: i64,
        latest_repair_id: Option<i64>,
        params: &serde_json::Map<String, Value>,
    ) -> Result<i64, DatabricksError> {
        let mut body = serde_json::Map::new();
        body.insert("run_id".into(), json!(run_id));
        body.insert("rerun_all_failed_tasks".into(), json!(true));
        if let Some(id) = latest_repair_id {
            body.insert("latest_repair_id".into(), json!(id));
        }
        for (k, v) in params {
            if REPAIR_PARAMS.contains(&k.as_str()) {
                body.insert(k.clone(), v.clone());
            }
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            repair_id: i64,
        }
        let a: Answer = self
            .call(Request::post(self.path("runs/repair")).json(Value::Object(body)))
            .await?;
        Ok(a.repair_id)
    }

    /// A cheap authenticated call for `syncctl doctor`.
    ///
    /// # Errors
    /// API and transport errors.
    pub async fn ping(&self) -> Result<(), DatabricksError> {
        let _: ListJobsPage = self
            .call(Request::get(self.path("list")).query("limit", "1"))
            .await?;
        Ok(())
    }
}

/// The run-now parameters `runs/repair` accepts too; repairs get them again so a repaired
/// task sees the same parameters (apache/airflow#64828 lost them).
const REPAIR_PARAMS: [&str; 9] = [
    "job_parameters",
    "notebook_params",
    "python_params",
    "python_named_params",
    "jar_params",
    "sql_params",
    "spark_submit_params",
    "dbt_commands",
    "pipeline_params",
];

fn system_time_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

/// The local clock in epoch milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    system_time_ms(SystemTime::now())
}
