//! OAuth 2.0 for QuickBooks: a configured access token, refreshed with the app's client
//! credentials and a refresh token that Intuit rotates.
//!
//! Intuit access tokens live one hour. A refresh (`grant_type=refresh_token` at the token
//! endpoint, client id and secret in HTTP basic auth) returns a new access token and, about
//! once a day, a **new refresh token**; the old one stops working. Losing the new one locks
//! the integration out until someone reconnects the app. The refresh flow is the HTTP core's
//! [`RefreshTokenGrant`] behind a [`RefreshingToken`]: the rotated refresh token is saved in
//! the platform's [`CredentialStore`] (the sync state store, encrypted with
//! `SYNCCTL_STATE_KEY`) before the new access token is used, and the stored token is used
//! instead of `QUICKBOOKS_REFRESH_TOKEN` while it descends from that configured value. There is
//! no QuickBooks-specific token store.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use syncctl_core::CredentialStore;
use syncctl_http::auth::sensitive_header;
use syncctl_http::{
    AccessToken, AuthProvider, HttpClient, HttpError, RefreshTokenGrant, RefreshingToken,
};

use crate::settings::RefreshSettings;

/// Lead time: a token is refreshed this long before it expires.
const REFRESH_LEAD: std::time::Duration = std::time::Duration::from_secs(300);

/// The credential-store name of the refresh token of one app and company.
#[must_use]
pub fn store_key(client_id: &str, realm_id: &str) -> String {
    format!("quickbooks:{client_id}:{realm_id}:refresh_token")
}

/// The auth provider: the configured access token alone, or a refreshing token (seeded with the
/// configured access token when there is one).
pub enum QuickBooksAuth {
    /// `QUICKBOOKS_ACCESS_TOKEN` only: used until refused.
    Static(SecretString),
    /// Refresh settings given: refreshed before expiry and after a 401.
    Refreshing(Box<RefreshingToken<RefreshTokenGrant>>),
}

impl fmt::Debug for QuickBooksAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuickBooksAuth")
            .field("refreshing", &matches!(self, Self::Refreshing(_)))
            .finish_non_exhaustive()
    }
}

impl QuickBooksAuth {
    /// A provider from the configured access token and optional refresh settings;
    /// `token_http` is a client without auth for the token endpoint, `store` keeps the
    /// rotating refresh token under [`store_key`].
    #[must_use]
    pub fn new(
        access_token: Option<SecretString>,
        refresh: Option<(
            RefreshSettings,
            HttpClient,
            Arc<dyn CredentialStore>,
            String,
        )>,
    ) -> Self {
        match (access_token, refresh) {
            (Some(t), None) => Self::Static(t),
            (access, Some((settings, http, store, name))) => {
                let grant = RefreshTokenGrant::new(
                    http,
                    settings.token_url,
                    settings.client_id,
                    settings.client_secret,
                    settings.refresh_token,
                    store,
                    name,
                )
                .with_rejected_hint(
                    "reconnect the app to QuickBooks and set QUICKBOOKS_REFRESH_TOKEN to the new refresh token",
                );
                let token = RefreshingToken::new("quickbooks", grant, REFRESH_LEAD);
                // Intuit does not say when a configured token expires: used until refused.
                Self::Refreshing(Box::new(match access {
                    Some(t) => token.with_initial(AccessToken {
                        token: t,
                        expires_at: None,
                    }),
                    None => token,
                }))
            }
            // Settings resolution refuses this; an empty token fails at the first call.
            (None, None) => Self::Static(SecretString::from(String::new())),
        }
    }

    /// How many refreshes were made.
    #[must_use]
    pub fn refresh_count(&self) -> u32 {
        match self {
            Self::Static(_) => 0,
            Self::Refreshing(t) => t.fetch_count(),
        }
    }
}

#[async_trait]
impl AuthProvider for QuickBooksAuth {
    async fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, HttpError> {
        match self {
            Self::Static(t) => Ok(vec![(
                AUTHORIZATION,
                sensitive_header(&format!("Bearer {}", t.expose_secret()), "quickbooks")?,
            )]),
            Self::Refreshing(t) => t.headers().await,
        }
    }

    fn invalidate(&self) -> bool {
        match self {
            Self::Static(_) => false,
            Self::Refreshing(t) => t.invalidate(),
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Self::Static(_) => "OAuth 2.0 access token",
            Self::Refreshing(t) => t.method(),
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
