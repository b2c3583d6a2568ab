//! One client over both Airbyte APIs: trigger (never blindly retried), get, cancel, list
//! recent jobs, find a connection by name.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use syncctl_config::SecretString;
use syncctl_http::{
    AccessToken, BasicAuth, BearerToken, ClientCredentials, CredentialStyle, HttpClient, HttpError,
    RefreshingToken, RetryPolicy, Sleeper, TokenFetcher, TokioSleeper, is_retryable_status,
};

use crate::error::AirbyteError;
use crate::job::{Job, Phase};
use crate::{config_api, public_api};

/// The service name in logs and errors.
pub const SERVICE: &str = "airbyte";

/// How long before a token expires it is renewed. OSS tokens live about three minutes, so a
/// long wait renews them many times.
const TOKEN_REFRESH_LEAD: Duration = Duration::from_secs(60);

/// How far apart our clock and Airbyte's may be when matching a job to the moment we asked
/// for it.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(2);

/// How many trigger requests may be sent for one sync, counting the first, when the earlier
/// ones certainly started nothing.
const TRIGGER_ATTEMPTS: u32 = 3;

/// How many recent jobs are looked at when finding the running one.
pub const RECENT_JOBS: u32 = 20;

/// Which Airbyte API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `/api/v1`, every call a POST (Airbyte OSS, basic auth).
    Config,
    /// `/api/public/v1` or `https://api.airbyte.com/v1` (bearer tokens).
    Public,
}

impl Api {
    /// `config` or `public`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Public => "public",
        }
    }
}

/// How to authenticate.
pub enum Auth {
    /// No credentials (Airbyte OSS with auth disabled).
    None,
    /// HTTP basic auth.
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// A static bearer token.
    Token(SecretString),
    /// OAuth client credentials exchanged for short-lived tokens at `token_url`.
    ClientCredentials {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: SecretString,
        /// The token endpoint (`{public base}/applications/token` by default).
        token_url: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method())
    }
}

impl Auth {
    /// How we authenticate, in words (never the secret).
    #[must_use]
    pub fn method(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Basic { .. } => "basic auth",
            Self::Token(_) => "bearer token",
            Self::ClientCredentials { .. } => "OAuth client credentials",
        }
    }
}

/// Called with every access token fetched, so the caller can scrub it from all output.
pub type TokenObserver = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything needed to build a client.
pub struct ClientOptions {
    /// Which API.
    pub api: Api,
    /// The API base, version included (`http://host:8000/api/v1`,
    /// `http://host:8000/api/public/v1`).
    pub base_url: String,
    /// Credentials.
    pub auth: Auth,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries for requests that are safe to repeat.
    pub retry: RetryPolicy,
    /// Replaces the retry timer (tests).
    pub sleeper: Option<Arc<dyn Sleeper>>,
    /// Sees each fetched access token.
    pub on_token: Option<TokenObserver>,
}

/// The result of asking Airbyte to start a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A job started. `reconciled` when the answer was lost and the job was found by
    /// listing the connection's jobs instead.
    Started {
        /// The job.
        job: Job,
        /// Whether it was found by reconciliation.
        reconciled: bool,
    },
    /// Airbyte refused: a sync is already running for the connection.
    AlreadyRunning {
        /// What Airbyte said.
        message: String,
    },
}

/// A client for one Airbyte deployment. Cheap to clone.
#[derive(Clone)]
pub struct AirbyteClient {
    api: Api,
    http: HttpClient,
    retry: RetryPolicy,
    auth_method: &'static str,
    sleeper: Arc<dyn Sleeper>,
}

/// Reports each fetched token before handing it on.
struct ObservedFetcher {
    inner: ClientCredentials,
    on_token: Option<TokenObserver>,
}

#[async_trait::async_trait]
impl TokenFetcher for ObservedFetcher {
    async fn fetch(&self) -> Result<AccessToken, HttpError> {
        let t = self.inner.fetch().await?;
        if let Some(f) = &self.on_token {
            use syncctl_config::ExposeSecret;
            f(t.token.expose_secret());
        }
        Ok(t)
    }
    fn method(&self) -> &'static str {
        self.inner.method()
    }
}

impl std::fmt::Debug for AirbyteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AirbyteClient")
            .field("api", &self.api)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl AirbyteClient {
    /// Builds a client.
    ///
    /// # Errors
    /// [`AirbyteError::Http`] when the base URL is not absolute.
    pub fn new(opts: ClientOptions) -> Result<Self, AirbyteError> {
        let builder = |base: &str| {
            let b = HttpClient::builder(SERVICE, base)
                .timeout(opts.timeout)
                .retry(opts.retry);
            match &opts.sleeper {
                Some(s) => b.sleeper(s.clone()),
                None => b,
            }
        };
        let auth_method = opts.auth.method();
        let mut b = builder(&opts.base_url);
        b = match opts.auth {
            Auth::None => b,
            Auth::Basic { username, password } => {
                b.auth(Arc::new(BasicAuth::new(SERVICE, username, password)))
            }
            Auth::Token(t) => b.auth(Arc::new(BearerToken::new(SERVICE, t))),
            Auth::ClientCredentials {
                client_id,
                client_secret,
                token_url,
            } => {
                let token_http = builder(&opts.base_url).build()?;
                let fetcher = ObservedFetcher {
                    inner: ClientCredentials::new(
                        token_http,
                        token_url,
                        client_id,
                        client_secret,
                        CredentialStyle::Json,
                    ),
                    on_token: opts.on_token.clone(),
                };
                b.auth(Arc::new(RefreshingToken::new(
                    SERVICE,
                    fetcher,
                    TOKEN_REFRESH_LEAD,
                )))
            }
        };
        Ok(Self {
            api: opts.api,
            http: b.build()?,
            retry: opts.retry,
            auth_method,
            sleeper: opts.sleeper.unwrap_or_else(|| Arc::new(TokioSleeper)),
        })
    }

    /// Which API this client speaks.
    #[must_use]
    pub fn api(&self) -> Api {
        self.api
    }

    /// The API base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    /// How it authenticates.
    #[must_use]
    pub fn auth_method(&self) -> &'static str {
        self.auth_method
    }

    /// Asks Airbyte to start a sync of `connection_id`.
    ///
    /// The request is never repeated blindly. When its answer is lost (connection broken,
    /// timeout, a gateway 5xx), the connection's recent jobs are listed first: a job that is
    /// running, or that was created since we asked, is ours. Only when none is found is the
    /// request sent again, which is safe because Airbyte refuses a second concurrent sync
    /// of a connection (409), and that refusal leads back to the running job.
    ///
    /// # Errors
    /// HTTP errors with a definite answer (401, 404, 422…), or
    /// [`AirbyteError::TriggerUnconfirmed`] when no job could be confirmed.
    pub async fn trigger(&self, connection_id: &str) -> Result<Trigger, AirbyteError> {
        let mut last_cause = String::new();
        for attempt in 1..=TRIGGER_ATTEMPTS {
            let sent_at = Utc::now();
            let req = match self.api {
                Api::Config => config_api::trigger_request(connection_id),
                Api::Public => public_api::trigger_request(connection_id),
            };
            let ambiguous = match self.http.send_raw(req).await {
                Ok(resp) if resp.status.is_success() => {
                    let job = match self.api {
                        Api::Config => config_api::job_from_response(&resp),
                        Api::Public => public_api::job_from_response(&resp),
                    };
                    match job {
                        Ok(mut job) => {
                            if job.connection_id.is_empty() {
                                connection_id.clone_into(&mut job.connection_id);
                            }
                            return Ok(Trigger::Started {
                                job,
                                reconciled: false,
                            });
                        }
                        // The sync started but the answer is unreadable: find the job.
                        Err(e) => e.to_string(),
                    }
                }
                Ok(resp) => {
                    let status = resp.status.as_u16();
                    let body = resp.text();
                    if status == 409 || body.to_ascii_lowercase().contains("already running") {
                        return Ok(Trigger::AlreadyRunning {
                            message: already_running_message(&body),
                        });
                    }
                    // The HTTP client already waited out 429s (a refusal, nothing started);
                    // one that is still here means rate-limited after retries: transient.
                    if status == 429 || !is_retryable_status(status) {
                        return Err(resp.into_error().into());
                    }
                    resp.into_error().to_string()
                }
                // Sent, but the connection broke or timed out before the answer came back.
                Err(
                    e @ HttpError::Transport {
                        not_sent: false, ..
                    },
                ) => e.to_string(),
                // Never sent (the client already retried those), or no credentials.
                Err(e) => return Err(e.into()),
            };
            tracing::warn!(connection_id, cause = %ambiguous, "The sync request may have reached Airbyte but its answer was lost; looking for the job before anything else.");
            last_cause = ambiguous;
            if let Some(job) = self
                .find_started_job(connection_id, sent_at)
                .await
                .map_err(|e| AirbyteError::TriggerUnconfirmed {
                    connection_id: connection_id.to_owned(),
                    cause: format!("{last_cause}; listing jobs failed too: {e}"),
                })?
            {
                tracing::info!(
                    connection_id,
                    job_id = job.id,
                    "Found the job the lost request started."
                );
                return Ok(Trigger::Started {
                    job,
                    reconciled: true,
                });
            }
            if attempt < TRIGGER_ATTEMPTS {
                let wait = self.backoff(attempt);
                tracing::info!(
                    connection_id,
                    "No job was started by the lost request; asking again."
                );
                self.sleeper.sleep(wait).await;
            }
        }
        Err(AirbyteError::TriggerUnconfirmed {
            connection_id: connection_id.to_owned(),
            cause: last_cause,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.retry
            .base_delay
            .saturating_mul(factor)
            .min(self.retry.max_delay)
    }

    /// A job of the connection that is still active, or that was created since `since`
    /// (allowing for clock skew): the one a lost trigger request started.
    async fn find_started_job(
        &self,
        connection_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Job>, AirbyteError> {
        let jobs = self.recent_jobs(connection_id, RECENT_JOBS).await?;
        Ok(pick_job(&jobs, Some(since)))
    }

    /// The job.
    ///
    /// # Errors
    /// [`AirbyteError::JobNotFound`] on 404, else HTTP errors.
    pub async fn get_job(&self, job_id: i64) -> Result<Job, AirbyteError> {
        match self.api {
            Api::Config => config_api::get_job(&self.http, job_id).await,
            Api::Public => public_api::get_job(&self.http, job_id).await,
        }
    }

    /// Asks Airbyte to cancel the job (asynchronous on Airbyte's side: poll until it says
    /// `cancelled`).
    ///
    /// # Errors
    /// [`AirbyteError::JobNotFound`] on 404, else HTTP errors.
    pub async fn cancel_job(&self, job_id: i64) -> Result<Job, AirbyteError> {
        match self.api {
            Api::Config => config_api::cancel_job(&self.http, job_id).await,
            Api::Public => public_api::cancel_job(&self.http, job_id).await,
        }
    }

    /// The connection's most recent sync jobs, newest first.
    ///
    /// # Errors
    /// HTTP errors.
    pub async fn recent_jobs(
        &self,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<Job>, AirbyteError> {
        match self.api {
            Api::Config => config_api::recent_jobs(&self.http, connection_id, limit).await,
            Api::Public => public_api::recent_jobs(&self.http, connection_id, limit).await,
        }
    }

    /// The connection's active job, if it has one (the newest when, oddly, several are).
    ///
    /// # Errors
    /// HTTP errors.
    pub async fn active_job(&self, connection_id: &str) -> Result<Option<Job>, AirbyteError> {
        let jobs = self.recent_jobs(connection_id, RECENT_JOBS).await?;
        Ok(jobs.into_iter().find(|j| j.phase() == Phase::Active))
    }

    /// The id of the one connection named exactly `name`.
    ///
    /// The public API is paged through; the config API lists each workspace in
    /// `workspace_ids` (it needs at least one).
    ///
    /// # Errors
    /// [`AirbyteError::ConnectionNotFound`], [`AirbyteError::AmbiguousConnection`],
    /// [`AirbyteError::Settings`] (config API without a workspace), HTTP errors.
    pub async fn find_connection(
        &self,
        name: &str,
        workspace_ids: &[String],
    ) -> Result<String, AirbyteError> {
        let all = match self.api {
            Api::Public => public_api::connections(&self.http, workspace_ids).await?,
            Api::Config => {
                if workspace_ids.is_empty() {
                    return Err(AirbyteError::Settings(
                        "the config API lists connections per workspace: set AIRBYTE_WORKSPACE_ID (or pass --workspace-id) to look a connection up by name".into(),
                    ));
                }
                let mut all = Vec::new();
                for w in workspace_ids {
                    all.extend(config_api::connections(&self.http, w).await?);
                }
                all
            }
        };
        let mut ids: Vec<String> = all
            .into_iter()
            .filter(|(_, n)| n == name)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids.dedup();
        match ids.len() {
            0 => Err(AirbyteError::ConnectionNotFound {
                name: name.to_owned(),
                workspaces: workspace_ids.to_vec(),
            }),
            1 => Ok(ids.remove(0)),
            _ => Err(AirbyteError::AmbiguousConnection {
                name: name.to_owned(),
                ids,
            }),
        }
    }

    /// One cheap authenticated call for `syncctl doctor`: fetch the named connections (which
    /// also proves they exist), or list one job / check health when none is named.
    ///
    /// # Errors
    /// HTTP errors.
    pub async fn probe(&self, connection_ids: &[String]) -> Result<Vec<String>, AirbyteError> {
        let mut names = Vec::new();
        for id in connection_ids {
            let name = match self.api {
                Api::Config => config_api::connection_name(&self.http, id).await?,
                Api::Public => public_api::connection_name(&self.http, id).await?,
            };
            names.push(name);
        }
        if connection_ids.is_empty() {
            match self.api {
                Api::Config => config_api::health(&self.http).await?,
                Api::Public => public_api::probe(&self.http).await?,
            }
        }
        Ok(names)
    }
}

/// From a connection's recent jobs (newest first): the active one, or else the newest one
/// created at or after `since` (less clock skew).
#[must_use]
pub fn pick_job(jobs: &[Job], since: Option<DateTime<Utc>>) -> Option<Job> {
    if let Some(active) = jobs.iter().find(|j| j.phase() == Phase::Active) {
        return Some(active.clone());
    }
    let since = since? - CLOCK_SKEW;
    jobs.iter()
        .find(|j| j.created_at.or(j.started_at).is_some_and(|t| t >= since))
        .cloned()
}

/// Airbyte's message from a conflict body (config API `message`, public API `detail`).
fn already_running_message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    ["message", "detail", "title"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|m| m.as_str()))
        .map_or_else(
            || "Airbyte answered that a sync is already running".to_owned(),
            str::to_owned,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, status: &str, created: Option<DateTime<Utc>>) -> Job {
        let mut j = Job::new(id, "c", status);
        j.created_at = created;
        j
    }

    #[test]
    fn picking_prefers_active_then_recent() {
        let now = Utc::now();
        let jobs = vec![
            job(3, "succeeded", Some(now)),
            job(2, "running", Some(now - chrono::Duration::hours(1))),
        ];
        assert_eq!(pick_job(&jobs, None).map(|j| j.id), Some(2));
        let jobs = vec![
            job(3, "succeeded", Some(now - chrono::Duration::seconds(30))),
            job(2, "failed", Some(now - chrono::Duration::hours(1))),
        ];
        assert_eq!(pick_job(&jobs, Some(now)).map(|j| j.id), Some(3));
        assert_eq!(pick_job(&jobs, None), None);
        assert_eq!(
            pick_job(&jobs, Some(now + chrono::Duration::hours(1))),
            None
        );
    }

    #[test]
    fn conflict_messages() {
        assert_eq!(
            already_running_message(
                r#"{"message":"A sync is already running for: x","exceptionClassName":"ValueConflictKnownException"}"#
            ),
            "A sync is already running for: x"
        );
        assert_eq!(
            already_running_message(
                r#"{"type":"t","title":"state-conflict","status":409,"detail":"A sync is already running for: y"}"#
            ),
            "A sync is already running for: y"
        );
        assert!(already_running_message("<html>").contains("already running"));
    }
}
