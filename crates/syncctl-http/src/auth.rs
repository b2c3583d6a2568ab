//! Authentication providers: static credentials and tokens that refresh before they expire.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use syncctl_core::{Classified, CredentialStore};
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
///
/// A token is cached, and so used, only after its fetcher returned it: a fetcher that must
/// keep something durable first (a rotated refresh token, see [`RefreshTokenGrant`]) does so
/// inside [`TokenFetcher::fetch`], so no request ever carries a token whose refresh chain
/// could still be lost.
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

    /// Starts with `token` (one the operator configured): it is used until it expires or a
    /// 401 invalidates it, and only then is the fetcher asked.
    #[must_use]
    pub fn with_initial(self, token: AccessToken) -> Self {
        Self {
            cache: tokio::sync::Mutex::new(Some(token)),
            ..self
        }
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

/// The OAuth 2.0 refresh-token grant (RFC 6749 §6) for providers that **rotate** refresh
/// tokens (Intuit: the old refresh token stops working once a new one is issued).
///
/// * The refresh token sent is the newest one in the [`CredentialStore`] while that chain
///   descends from the operator's configured token (the store keeps a SHA-256 of the configured
///   token it started from); when the operator configures a different token (the app was
///   reconnected), the configured one wins. The store is read again before every refresh:
///   another run sharing the app and account may have rotated the token meanwhile.
/// * A rotated refresh token is saved in the store **before** [`TokenFetcher::fetch`] returns,
///   so [`RefreshingToken`] never caches, and no request ever carries, an access token whose
///   refresh chain is not durable. If it cannot be saved the fetch fails and the run stops:
///   nothing further may depend on a token that only lives in memory.
/// * Before each grant the store is asked whether it can take a write
///   ([`CredentialStore::ready_to_save`]): a store that cannot (read-only, not available) stops
///   the refresh before the provider rotates anything.
/// * The grant request is sent once, never resent after it may have reached the server (a
///   lost answer could have rotated the token); only connection refusals and 429s are resent.
pub struct RefreshTokenGrant {
    http: HttpClient,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    configured: SecretString,
    store: Arc<dyn CredentialStore>,
    name: String,
    rejected_hint: String,
}

impl fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("token_url", &self.token_url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the credential store holds for a [`RefreshTokenGrant`].
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRefresh {
    /// SHA-256 (hex) of the configured refresh token this chain started from.
    seed_sha256: String,
    /// The newest refresh token the provider issued.
    refresh_token: String,
}

/// An OAuth token answer's `expires_in` (seconds; RFC 6749 §5.1 says a number, some servers
/// send it as a string), for `#[serde(default, deserialize_with = "…")]` on an
/// `Option<Duration>`: a number or a string of one; anything else counts as absent.
///
/// # Errors
/// Only what the deserializer itself fails with (the value is read as any JSON value first).
pub fn deserialize_expires_in<'de, D>(deserializer: D) -> Result<Option<Duration>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value: Option<serde_json::Value> = serde::Deserialize::deserialize(deserializer)?;
    let secs = match value {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(secs.map(Duration::from_secs))
}

#[derive(serde::Deserialize)]
struct GrantAnswer {
    access_token: SecretString,
    #[serde(default, deserialize_with = "deserialize_expires_in")]
    expires_in: Option<Duration>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
}

#[derive(serde::Deserialize)]
struct GrantError {
    #[serde(default)]
    error: String,
}

impl RefreshTokenGrant {
    /// A grant posting to `token_url` through `http` (a client without auth) with the client
    /// id and secret in HTTP basic auth; the rotating token is kept in `store` as `name`
    /// (name the app and account: `quickbooks:<client>:<realm>:refresh_token`).
    #[must_use]
    pub fn new(
        http: HttpClient,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
        configured: SecretString,
        store: Arc<dyn CredentialStore>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            http,
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            configured,
            store,
            name: name.into(),
            rejected_hint: "authorise the app again and configure the new refresh token".into(),
        }
    }

    /// What to tell the operator when the token endpoint refuses the refresh token.
    #[must_use]
    pub fn with_rejected_hint(mut self, hint: impl Into<String>) -> Self {
        self.rejected_hint = hint.into();
        self
    }

    fn error(&self, message: String, transient: bool) -> HttpError {
        HttpError::Credentials {
            service: self.http.service().to_owned(),
            message,
            transient,
        }
    }

    /// The refresh token to send: the stored one while it descends from the configured one.
    /// Read from the store every time, never cached: another run may have rotated it.
    async fn current_refresh_token(&self) -> Result<SecretString, HttpError> {
        let seed = syncctl_core::digest::sha256_hex(self.configured.expose_secret());
        // A store that cannot be read (unreachable, wrong SYNCCTL_STATE_KEY) stops here,
        // before the provider is asked and could rotate anything.
        let stored = self.store.load(&self.name).await.map_err(|e| {
            let transient = e.class() == syncctl_core::ErrorClass::Transient;
            self.error(
                format!("cannot read the stored refresh token: {e}"),
                transient,
            )
        })?;
        let chosen = match stored
            .and_then(|s| serde_json::from_str::<StoredRefresh>(s.expose_secret()).ok())
        {
            Some(s) if s.seed_sha256 == seed => {
                tracing::debug!(name = %self.name, "using the rotated refresh token from the credential store");
                SecretString::from(s.refresh_token)
            }
            Some(_) => {
                tracing::info!(name = %self.name, "the configured refresh token changed since the stored one was rotated: using the configured one");
                self.configured.clone()
            }
            None => self.configured.clone(),
        };
        Ok(chosen)
    }

    async fn persist(&self, token: &SecretString) -> Result<(), HttpError> {
        let value = serde_json::to_string(&StoredRefresh {
            seed_sha256: syncctl_core::digest::sha256_hex(self.configured.expose_secret()),
            refresh_token: token.expose_secret().to_owned(),
        })
        .map_err(|e| self.error(e.to_string(), false))?;
        let value = SecretString::from(value);
        // The provider has already rotated the token: a store that may recover (busy, a
        // dropped connection) gets two more tries; a permanent refusal ends at once.
        let mut last = String::new();
        for attempt in 0..3u64 {
            match self.store.save(&self.name, &value).await {
                Ok(()) => return Ok(()),
                Err(e) if e.class() == syncctl_core::ErrorClass::Transient && attempt < 2 => {
                    tracing::warn!(attempt, error = %e, "saving the rotated refresh token failed; retrying");
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
                Err(e) => {
                    last = e.to_string();
                    break;
                }
            }
        }
        Err(self.error(
            format!("the provider rotated the refresh token but it could not be saved ({last}); the run stops so that nothing depends on it"),
            false,
        ))
    }
}

#[async_trait]
impl TokenFetcher for RefreshTokenGrant {
    async fn fetch(&self) -> Result<AccessToken, HttpError> {
        let refresh_token = self.current_refresh_token().await?;
        // A store that could not keep the rotated token refuses here, before the provider
        // rotates anything. (Writing the current token back instead would overwrite a newer
        // one another run saved meanwhile.)
        self.store.ready_to_save().await.map_err(|e| {
            self.error(
                format!("the credential store cannot keep a rotated refresh token, so no refresh is attempted: {e}"),
                e.class() == syncctl_core::ErrorClass::Transient,
            )
        })?;
        let basic = basic_value(&self.client_id, self.client_secret.expose_secret());
        let req = Request::post(&self.token_url)
            .without_auth()
            .unsafe_to_retry()
            .sensitive_header(
                AUTHORIZATION,
                sensitive_header(&basic, self.http.service())?,
            )
            .header("Accept", "application/json")
            .body(Body::Form(vec![
                ("grant_type".into(), "refresh_token".into()),
                (
                    "refresh_token".into(),
                    refresh_token.expose_secret().to_owned(),
                ),
            ]));
        let resp = self.http.send_raw(req).await?;
        let status = resp.status.as_u16();
        if status == 400 || status == 401 {
            let reason = serde_json::from_slice::<GrantError>(&resp.body)
                .map(|e| e.error)
                .ok()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(self.error(
                format!(
                    "the OAuth token endpoint refused the refresh token ({reason}); {}",
                    self.rejected_hint
                ),
                false,
            ));
        }
        if !resp.status.is_success() {
            return Err(without_body(resp.into_error()));
        }
        let answer: GrantAnswer = resp.json()?;
        if let Some(new) = &answer.refresh_token
            && new.expose_secret() != refresh_token.expose_secret()
        {
            self.persist(new).await?;
            tracing::info!(name = %self.name, "the provider rotated the refresh token; saved it in the credential store");
        }
        Ok(AccessToken::expiring_in(
            answer.access_token,
            Some(answer.expires_in.unwrap_or(Duration::from_secs(3600))),
        ))
    }

    fn method(&self) -> &'static str {
        "OAuth 2.0 refresh token (rotating, persisted)"
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

/// A token endpoint's error without the body excerpt: the endpoint (or a proxy in front of it)
/// may echo the submitted grant there (a refresh token, the client secret), and errors are
/// logged and shown.
fn without_body(e: HttpError) -> HttpError {
    match e {
        HttpError::Status {
            service,
            method,
            path,
            status,
            attempts,
            ..
        } => HttpError::Status {
            service,
            method,
            path,
            status,
            body: "(token endpoint answer withheld: it may echo credentials)".into(),
            attempts,
        },
        other => other,
    }
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
    #[serde(default, deserialize_with = "deserialize_expires_in")]
    expires_in: Option<Duration>,
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
            other => without_body(other),
        })?;
        let body: TokenResponse = resp.json()?;
        Ok(AccessToken::expiring_in(body.access_token, body.expires_in))
    }

    fn method(&self) -> &'static str {
        "OAuth client credentials"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default, deserialize_with = "deserialize_expires_in")]
        expires_in: Option<Duration>,
    }

    fn expires_in(json: &str) -> Option<Duration> {
        serde_json::from_str::<Answer>(json).unwrap().expires_in
    }

    #[test]
    fn expires_in_is_a_number_or_a_number_in_a_string() {
        assert_eq!(
            expires_in(r#"{"expires_in": 3599}"#),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(
            expires_in(r#"{"expires_in": "3600"}"#),
            Some(Duration::from_secs(3600))
        );
        for absent in [
            "{}",
            r#"{"expires_in": null}"#,
            r#"{"expires_in": "soon"}"#,
            r#"{"expires_in": -5}"#,
        ] {
            assert_eq!(expires_in(absent), None, "{absent}");
        }
    }
}
