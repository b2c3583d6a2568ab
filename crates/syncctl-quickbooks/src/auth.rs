//! OAuth 2.0 for QuickBooks: a configured access token, refreshed with the app's client
//! credentials and a refresh token that Intuit rotates.
//!
//! Intuit access tokens live one hour. A refresh (`grant_type=refresh_token` at the token
//! endpoint, client id and secret in HTTP basic auth) returns a new access token and, about
//! once a day, a **new refresh token**; the old one stops working. Losing the new one locks
//! the integration out until someone reconnects the app, so:
//!
//! * the rotated refresh token is saved in a [`RefreshTokenStore`] (the platform's credential
//!   store, persisted in the state store) **before** the new access token is used;
//! * the stored token is used instead of `QUICKBOOKS_REFRESH_TOKEN` while it descends from
//!   that configured value (the store keeps a SHA-256 of the configured token it started
//!   from); when the operator configures a different refresh token (the app was reconnected)
//!   the configured one wins;
//! * a refresh request is never resent blindly after it may have reached Intuit (a lost
//!   answer could have rotated the token): it is sent once, resent only on connection
//!   refused or 429.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use syncctl_http::auth::sensitive_header;
use syncctl_http::{AccessToken, AuthProvider, Body, HttpClient, HttpError, Request};
use tokio::time::Instant;

use crate::settings::RefreshSettings;

/// Lead time: a token is refreshed this long before it expires.
const REFRESH_LEAD: Duration = Duration::from_secs(300);

/// Where the rotating refresh token lives between runs (the platform's credential store).
#[async_trait]
pub trait RefreshTokenStore: Send + Sync + fmt::Debug {
    /// The value saved under `key`, if any.
    ///
    /// # Errors
    /// The store cannot be read.
    async fn load(&self, key: &str) -> Result<Option<SecretString>, String>;
    /// Saves `value` under `key`, replacing what was there; durable when it returns.
    ///
    /// # Errors
    /// The store cannot be written.
    async fn save(&self, key: &str, value: SecretString) -> Result<(), String>;
}

/// An in-memory store (tests, and runs that only use an access token).
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    values: tokio::sync::Mutex<HashMap<String, SecretString>>,
}

#[async_trait]
impl RefreshTokenStore for MemoryTokenStore {
    async fn load(&self, key: &str) -> Result<Option<SecretString>, String> {
        Ok(self.values.lock().await.get(key).cloned())
    }
    async fn save(&self, key: &str, value: SecretString) -> Result<(), String> {
        self.values.lock().await.insert(key.to_owned(), value);
        Ok(())
    }
}

/// What the store holds: the current refresh token and the configured token it descends from.
#[derive(Serialize, Deserialize)]
struct StoredRefresh {
    /// SHA-256 (hex) of the configured `QUICKBOOKS_REFRESH_TOKEN` this chain started from.
    seed_sha256: String,
    /// The newest refresh token Intuit issued.
    refresh_token: String,
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The credential-store key for one app and company.
#[must_use]
pub fn store_key(client_id: &str, realm_id: &str) -> String {
    format!("quickbooks:{client_id}:{realm_id}:refresh_token")
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
}

/// Obtains access tokens with the refresh grant and keeps the rotating refresh token.
struct Refresher {
    http: HttpClient,
    settings: RefreshSettings,
    store: Arc<dyn RefreshTokenStore>,
    key: String,
    current: tokio::sync::Mutex<Option<SecretString>>,
}

impl Refresher {
    fn credentials_error(&self, message: String, transient: bool) -> HttpError {
        HttpError::Credentials {
            service: "quickbooks".into(),
            message,
            transient,
        }
    }

    /// The refresh token to use: the stored one while it descends from the configured one.
    async fn current_refresh_token(&self) -> Result<SecretString, HttpError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref() {
            return Ok(t.clone());
        }
        let configured = self.settings.refresh_token.clone();
        let seed = sha256_hex(configured.expose_secret());
        let stored = self.store.load(&self.key).await.map_err(|e| {
            self.credentials_error(format!("cannot read the stored refresh token: {e}"), true)
        })?;
        let chosen = match stored
            .and_then(|s| serde_json::from_str::<StoredRefresh>(s.expose_secret()).ok())
        {
            Some(s) if s.seed_sha256 == seed => {
                tracing::debug!(
                    "using the rotated QuickBooks refresh token from the credential store"
                );
                SecretString::from(s.refresh_token)
            }
            Some(_) => {
                tracing::info!(
                    "QUICKBOOKS_REFRESH_TOKEN changed since the stored token was rotated: using the configured one"
                );
                configured
            }
            None => configured,
        };
        *current = Some(chosen.clone());
        Ok(chosen)
    }

    async fn persist(&self, token: &SecretString) -> Result<(), HttpError> {
        let value = serde_json::to_string(&StoredRefresh {
            seed_sha256: sha256_hex(self.settings.refresh_token.expose_secret()),
            refresh_token: token.expose_secret().to_owned(),
        })
        .map_err(|e| self.credentials_error(e.to_string(), false))?;
        let mut last = String::new();
        for attempt in 0..3u64 {
            match self
                .store
                .save(&self.key, SecretString::from(value.clone()))
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "saving the rotated QuickBooks refresh token failed; retrying");
                    last = e;
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        Err(self.credentials_error(
            format!("Intuit rotated the refresh token but it could not be saved ({last}); the run stops so that no further refresh depends on it"),
            false,
        ))
    }

    async fn refresh(&self) -> Result<AccessToken, HttpError> {
        let refresh_token = self.current_refresh_token().await?;
        let basic = format!(
            "Basic {}",
            base64_encode(&format!(
                "{}:{}",
                self.settings.client_id,
                self.settings.client_secret.expose_secret()
            ))
        );
        // Sent once: a resend after a lost answer could use a refresh token Intuit already
        // rotated (the HTTP core still resends on connection refused and 429).
        let req = Request::post(&self.settings.token_url)
            .without_auth()
            .unsafe_to_retry()
            .sensitive_header(AUTHORIZATION, sensitive_header(&basic, "quickbooks")?)
            .sensitive_header(ACCEPT, HeaderValue::from_static("application/json"))
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
            let reason = serde_json::from_slice::<TokenError>(&resp.body)
                .map(|e| e.error)
                .unwrap_or_default();
            let reason = if reason.is_empty() {
                format!("HTTP {status}")
            } else {
                reason
            };
            return Err(self.credentials_error(
                crate::QuickBooksError::RefreshRejected { reason }
                    .to_string()
                    .trim_start_matches("quickbooks: ")
                    .to_owned(),
                false,
            ));
        }
        if !resp.status.is_success() {
            return Err(resp.into_error());
        }
        let answer: TokenAnswer = resp.json()?;
        if let Some(new) = &answer.refresh_token
            && new.expose_secret() != refresh_token.expose_secret()
        {
            self.persist(new).await?;
            *self.current.lock().await = Some(new.clone());
            tracing::info!(
                "Intuit rotated the QuickBooks refresh token; saved it in the credential store"
            );
        }
        Ok(AccessToken::expiring_in(
            answer.access_token,
            Some(Duration::from_secs(answer.expires_in.unwrap_or(3600))),
        ))
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The auth provider: the configured access token until it expires or is refused, then
/// refreshed tokens (when refresh settings are given).
pub struct QuickBooksAuth {
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    refresher: Option<Refresher>,
    refreshes: AtomicU32,
}

impl fmt::Debug for QuickBooksAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuickBooksAuth")
            .field("refreshing", &self.refresher.is_some())
            .finish_non_exhaustive()
    }
}

impl QuickBooksAuth {
    /// A provider from the configured access token and optional refresh settings; `token_http`
    /// is a client without auth for the token endpoint.
    #[must_use]
    pub fn new(
        access_token: Option<SecretString>,
        refresh: Option<(
            RefreshSettings,
            HttpClient,
            Arc<dyn RefreshTokenStore>,
            String,
        )>,
    ) -> Self {
        Self {
            // Intuit does not say when a configured token expires: it is used until refused.
            cache: tokio::sync::Mutex::new(access_token.map(|t| AccessToken {
                token: t,
                expires_at: None,
            })),
            refresher: refresh.map(|(settings, http, store, key)| Refresher {
                http,
                settings,
                store,
                key,
                current: tokio::sync::Mutex::new(None),
            }),
            refreshes: AtomicU32::new(0),
        }
    }

    /// How many refreshes were made.
    #[must_use]
    pub fn refresh_count(&self) -> u32 {
        self.refreshes.load(Ordering::Relaxed)
    }

    async fn token(&self) -> Result<SecretString, HttpError> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.as_ref().is_some_and(|t| {
            t.expires_at
                .is_none_or(|at| Instant::now() + REFRESH_LEAD < at)
        });
        if !fresh {
            let Some(r) = &self.refresher else {
                return Err(HttpError::Credentials {
                    service: "quickbooks".into(),
                    message: "the access token was refused or expired and no refresh settings are configured: set QUICKBOOKS_CLIENT_ID, QUICKBOOKS_CLIENT_SECRET and QUICKBOOKS_REFRESH_TOKEN for runs longer than an hour".into(),
                    transient: false,
                });
            };
            tracing::debug!("refreshing the QuickBooks access token");
            let t = r.refresh().await?;
            self.refreshes.fetch_add(1, Ordering::Relaxed);
            *cache = Some(t);
        }
        cache
            .as_ref()
            .map(|t| t.token.clone())
            .ok_or_else(|| HttpError::Credentials {
                service: "quickbooks".into(),
                message: "no access token".into(),
                transient: false,
            })
    }
}

#[async_trait]
impl AuthProvider for QuickBooksAuth {
    async fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
        let token = self.token().await?;
        Ok(vec![(
            AUTHORIZATION,
            sensitive_header(&format!("Bearer {}", token.expose_secret()), "quickbooks")?,
        )])
    }

    fn invalidate(&self) -> bool {
        if self.refresher.is_none() {
            return false;
        }
        if let Ok(mut c) = self.cache.try_lock() {
            *c = None;
        }
        true
    }

    fn method(&self) -> &'static str {
        if self.refresher.is_some() {
            "OAuth 2.0 refresh token (rotating, persisted)"
        } else {
            "OAuth 2.0 access token"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_name_app_and_company() {
        assert_eq!(store_key("abc", "123"), "quickbooks:abc:123:refresh_token");
    }
}
