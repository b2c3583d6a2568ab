//! Authentication providers: static credentials and tokens that refresh before they expire.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::{Body, HttpClient, HttpError, Request};

/// Adds credentials to requests.
#[async_trait]
pub trait AuthProvider: Send + Sync + fmt::Debug {
    /// The headers to add to the next request (values marked sensitive).
    async fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError>;

    /// Drops cached credentials after a 401. Returns whether fresh credentials can be had,
    /// that is whether re-sending the request once is worth it.
    fn invalidate(&self) -> bool {
        false
    }

    /// How we authenticate, for `syncctl doctor` ("bearer token", "OAuth client credentials").
    fn method(&self) -> &'static str;
}

/// Builds a sensitive header value (hidden from `Debug`).
///
/// # Errors
/// Fails when the value contains characters a header cannot carry.
pub fn sensitive_header(value: &str, service: &str) -> Result<HeaderValue, HttpError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| HttpError::Credentials {
        service: service.to_owned(),
        message: "credential contains characters that cannot be sent in an HTTP header".into(),
        transient: false,
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A static bearer token (personal access token, API token).
pub struct BearerToken {
    service: String,
    token: SecretString,
    extra: Vec<(HeaderName, HeaderValue)>,
}

impl BearerToken {
    /// A bearer token for `service`.
    #[must_use]
    pub fn new(service: impl Into<String>, token: SecretString) -> Self {
        Self {
            service: service.into(),
            token,
            extra: Vec::new(),
        }
    }

    /// Adds a fixed header sent with the token (e.g. Snowflake's token-type header).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra.push((name, value));
        self
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl AuthProvider for BearerToken {
    async fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
        let mut h = vec![(
            AUTHORIZATION,
            sensitive_header(
                &format!("Bearer {}", self.token.expose_secret()),
                &self.service,
            )?,
        )];
        h.extend(self.extra.iter().cloned());
        Ok(h)
    }
    fn method(&self) -> &'static str {
        "bearer token"
    }
}

/// HTTP basic authentication.
pub struct BasicAuth {
    service: String,
    username: String,
    password: SecretString,
}

impl BasicAuth {
    /// Basic auth for `service`.
    #[must_use]
    pub fn new(
        service: impl Into<String>,
        username: impl Into<String>,
        password: SecretString,
    ) -> Self {
        Self {
            service: service.into(),
            username: username.into(),
            password,
        }
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("service", &self.service)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The `Authorization: Basic …` value for a user and password.
fn basic_value(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[async_trait]
impl AuthProvider for BasicAuth {
    async fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
        Ok(vec![(
            AUTHORIZATION,
            sensitive_header(
                &basic_value(&self.username, self.password.expose_secret()),
                &self.service,
            )?,
        )])
    }
    fn method(&self) -> &'static str {
        "basic auth"
    }
}

/// A token and when it stops working.
#[derive(Clone)]
pub struct AccessToken {
    /// The token.
    pub token: SecretString,
    /// When it expires; `None` for tokens that do not say.
    pub expires_at: Option<Instant>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// A token valid for `expires_in` from now.
    #[must_use]
    pub fn expiring_in(token: SecretString, expires_in: Option<Duration>) -> Self {
        Self {
            token,
            expires_at: expires_in.map(|d| Instant::now() + d),
        }
    }
}

/// Obtains a fresh token (from a token endpoint, or by signing a JWT locally).
#[async_trait]
pub trait TokenFetcher: Send + Sync {
    /// Fetches a new token.
    async fn fetch(&self) -> Result<AccessToken, HttpError>;
    /// The auth method's name for `syncctl doctor`.
    fn method(&self) -> &'static str;
}

/// A token cache that refreshes `lead` before expiry and once more after a 401.
pub struct RefreshingToken<F> {
    service: String,
    fetcher: F,
    lead: Duration,
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    extra: Vec<(HeaderName, HeaderValue)>,
    fetches: AtomicU32,
}

impl<F> fmt::Debug for RefreshingToken<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshingToken")
            .field("service", &self.service)
            .field("lead", &self.lead)
            .finish_non_exhaustive()
    }
}

impl<F: TokenFetcher> RefreshingToken<F> {
    /// Wraps a fetcher; tokens are renewed `lead` before they expire (use 60–120 s: OSS
    /// Airbyte tokens live about three minutes and long waits outlive them).
    #[must_use]
    pub fn new(service: impl Into<String>, fetcher: F, lead: Duration) -> Self {
        Self {
            service: service.into(),
            fetcher,
            lead,
            cache: tokio::sync::Mutex::new(None),
            extra: Vec::new(),
            fetches: AtomicU32::new(0),
        }
    }

    /// Adds a fixed header sent with the token.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra.push((name, value));
        self
    }

    /// How many tokens were fetched so far.
    pub fn fetch_count(&self) -> u32 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The current token, fetching a new one when missing or about to expire.
    ///
    /// # Errors
    /// Whatever the fetcher returns.
    pub async fn token(&self) -> Result<SecretString, HttpError> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.as_ref().is_some_and(|t| {
            t.expires_at
                .is_none_or(|at| Instant::now() + self.lead < at)
        });
        if !fresh {
            tracing::debug!(service = %self.service, "fetching a new access token");
            let t = self.fetcher.fetch().await?;
            self.fetches.fetch_add(1, Ordering::Relaxed);
            *cache = Some(t);
        }
        cache
            .as_ref()
            .map(|t| t.token.clone())
            .ok_or_else(|| HttpError::Credentials {
                service: self.service.clone(),
                message: "token cache empty after refresh".into(),
                transient: true,
            })
    }
}

#[async_trait]
impl<F: TokenFetcher> AuthProvider for RefreshingToken<F> {
    async fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
        let token = self.token().await?;
        let mut h = vec![(
            AUTHORIZATION,
            sensitive_header(&format!("Bearer {}", token.expose_secret()), &self.service)?,
        )];
        h.extend(self.extra.iter().cloned());
        Ok(h)
    }

    fn invalidate(&self) -> bool {
        if let Ok(mut c) = self.cache.try_lock() {
            *c = None;
        }
        true
    }

    fn method(&self) -> &'static str {
        self.fetcher.method()
    }
}

/// How a client-credentials token endpoint wants the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStyle {
    /// Form body `grant_type=client_credentials[&scope=…]` with HTTP basic client id/secret
    /// (RFC 6749 §2.3.1; Databricks `/oidc/v1/token`).
    FormBasic {
        /// The `scope` parameter, if any.
        scope: Option<String>,
    },
    /// JSON body `{"client_id","client_secret","grant_type":"client_credentials"}` (Airbyte).
    Json,
}

/// OAuth 2.0 client-credentials grant against a token endpoint.
pub struct ClientCredentials {
    http: HttpClient,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    style: CredentialStyle,
}

impl ClientCredentials {
    /// A fetcher that posts to `token_url` through `http` (a client without auth).
    #[must_use]
    pub fn new(
        http: HttpClient,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
        style: CredentialStyle,
    ) -> Self {
        Self {
            http,
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            style,
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[async_trait]
impl TokenFetcher for ClientCredentials {
    async fn fetch(&self) -> Result<AccessToken, HttpError> {
        let req = match &self.style {
            CredentialStyle::FormBasic { scope } => {
                let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
                if let Some(s) = scope {
                    form.push(("scope".to_owned(), s.clone()));
                }
                let auth = basic_value(&self.client_id, self.client_secret.expose_secret());
                Request::post(&self.token_url)
                    .sensitive_header(AUTHORIZATION, sensitive_header(&auth, self.http.service())?)
                    .body(Body::Form(form))
            }
            CredentialStyle::Json => Request::post(&self.token_url).json(serde_json::json!({
                "client_id": self.client_id,
                "client_secret": self.client_secret.expose_secret(),
                "grant_type": "client_credentials",
            })),
        }
        // A token request creates nothing; repeating it is safe.
        .retry_safe();
        let resp = self.http.send(req).await.map_err(|e| match e {
            HttpError::Status { status, service, .. } if status == 400 || status == 401 || status == 403 => HttpError::Credentials {
                service,
                message: format!("token endpoint refused the client credentials (HTTP {status}); check the client id and secret"),
                transient: false,
            },
            other => other,
        })?;
        let body: TokenResponse = resp.json()?;
        // Some servers send expires_in as a string.
        let secs = match body.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(AccessToken::expiring_in(
            body.access_token,
            secs.map(Duration::from_secs),
        ))
    }

    fn method(&self) -> &'static str {
        "OAuth client credentials"
    }
}
