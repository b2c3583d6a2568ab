//! Service-account auth: an RS256 JWT assertion exchanged at Google's token endpoint for an
//! access token with the `spreadsheets` scope, cached and renewed before it expires
//! (`syncctl_http::RefreshingToken`).
//!
//! The assertion's claims are `{iss: client_email, scope, aud: token_uri, iat, exp}` with a
//! lifetime of one hour (Google's maximum); the header carries `kid: private_key_id`. The
//! assertion is posted as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use syncctl_http::{AccessToken, Body, HttpClient, HttpError, Request, TokenFetcher};

use crate::SheetsError;

/// The OAuth scope for reading and writing spreadsheets (and nothing in Drive).
pub const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

/// The JWT bearer grant type (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Assertion lifetime: Google accepts at most one hour.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// Renew the access token this long before it expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The fields of a service-account key file syncctl uses.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// `client_email`: the JWT issuer, and who the sheet must be shared with.
    pub client_email: String,
    /// `private_key_id`, sent as the JWT `kid`.
    pub private_key_id: Option<String>,
    /// `token_uri`: the JWT audience and the default token endpoint.
    pub token_uri: String,
    private_key: SecretString,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<SecretString>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Reads the key from `GOOGLE_SHEETS_CREDENTIALS_JSON`'s value: the JSON itself (it starts
    /// with `{`), or a path to the file (relative to `base_dir`).
    ///
    /// # Errors
    /// [`SheetsError::Config`] naming what is missing; never quoting the key.
    pub fn from_setting(value: &SecretString, base_dir: &Path) -> Result<Self, SheetsError> {
        let v = value.expose_secret().trim();
        if v.starts_with('{') {
            return Self::from_json(v, "GOOGLE_SHEETS_CREDENTIALS_JSON");
        }
        let path = base_dir.join(v);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SheetsError::Config(format!(
                "cannot read the service-account key file {}: {}",
                path.display(),
                e.kind()
            ))
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses a service-account key file's JSON.
    ///
    /// # Errors
    /// [`SheetsError::Config`] when it is not a service-account key.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, SheetsError> {
        let bad = |what: String| SheetsError::Config(format!("{origin}: {what}"));
        // serde_json's messages name positions, never content.
        let f: KeyFile = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "not a service-account key file (invalid JSON at line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if let Some(k) = f.kind.as_deref()
            && k != "service_account"
        {
            return Err(bad(format!(
                "type is {k:?}; syncctl needs a service-account key (\"type\": \"service_account\")"
            )));
        }
        let missing = |k: &str| bad(format!("the key file has no {k}"));
        let client_email = f.client_email.ok_or_else(|| missing("client_email"))?;
        let private_key = f.private_key.ok_or_else(|| missing("private_key"))?;
        let token_uri = f.token_uri.ok_or_else(|| missing("token_uri"))?;
        if EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes()).is_err() {
            return Err(bad(
                "private_key is not an RSA private key in PEM form (-----BEGIN PRIVATE KEY-----)"
                    .to_owned(),
            ));
        }
        Ok(Self {
            client_email,
            private_key_id: f.private_key_id,
            token_uri,
            private_key,
        })
    }

    /// A signed assertion issued at `now` (seconds since the epoch).
    ///
    /// # Errors
    /// [`SheetsError::Config`] when signing fails.
    pub fn assertion(&self, now: i64) -> Result<SecretString, SheetsError> {
        let key = EncodingKey::from_rsa_pem(self.private_key.expose_secret().as_bytes()).map_err(
            |_| SheetsError::Config("the service-account private_key cannot be used".into()),
        )?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.private_key_id);
        let lifetime = i64::try_from(ASSERTION_LIFETIME.as_secs()).unwrap_or(3600);
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + lifetime,
        });
        jsonwebtoken::encode(&header, &claims, &key)
            .map(SecretString::from)
            .map_err(|_| SheetsError::Config("signing the JWT assertion failed".into()))
    }
}

/// Fetches access tokens with a signed assertion.
pub struct ServiceAccountJwt {
    key: ServiceAccountKey,
    http: HttpClient,
    token_url: String,
}

impl ServiceAccountJwt {
    /// Posts assertions to `token_url` through `http` (a client without auth).
    #[must_use]
    pub fn new(key: ServiceAccountKey, http: HttpClient, token_url: impl Into<String>) -> Self {
        Self {
            key,
            http,
            token_url: token_url.into(),
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(
        default,
        deserialize_with = "syncctl_http::auth::deserialize_expires_in"
    )]
    expires_in: Option<Duration>,
}

#[derive(serde::Deserialize)]
struct TokenRefusal {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[async_trait]
impl TokenFetcher for ServiceAccountJwt {
    async fn fetch(&self) -> Result<AccessToken, HttpError> {
        let service = self.http.service().to_owned();
        let assertion = self
            .key
            .assertion(chrono::Utc::now().timestamp())
            .map_err(|e| HttpError::Credentials {
                service: service.clone(),
                message: e.to_string(),
                transient: false,
            })?;
        let req = Request::post(&self.token_url)
            .without_auth()
            .body(Body::Form(vec![
                ("grant_type".to_owned(), JWT_BEARER_GRANT.to_owned()),
                ("assertion".to_owned(), assertion.expose_secret().to_owned()),
            ]))
            // Exchanging an assertion creates nothing; repeating it is safe.
            .retry_safe();
        let resp = self.http.send(req).await.map_err(|e| match e {
            HttpError::Status {
                status, ref body, ..
            } if (400..500).contains(&status) && status != 429 => {
                let why = serde_json::from_str::<TokenRefusal>(body)
                    .map(|r| format!("{} ({})", r.error, r.error_description))
                    .unwrap_or_else(|_| "no reason given".into());
                HttpError::Credentials {
                    service: service.clone(),
                    message: format!(
                        "the token endpoint refused the service account {} (HTTP {status}): {why}",
                        self.key.client_email
                    ),
                    transient: false,
                }
            }
            other => other,
        })?;
        let answer: TokenAnswer = resp.json()?;
        Ok(AccessToken::expiring_in(
            answer.access_token,
            answer.expires_in,
        ))
    }

    fn method(&self) -> &'static str {
        "Google service account (JWT bearer)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answer_with_expires_in_as_a_string_is_read() {
        let a: TokenAnswer =
            serde_json::from_str(r#"{"access_token": "ya29.x", "expires_in": "3599"}"#).unwrap();
        assert_eq!(a.expires_in, Some(Duration::from_secs(3599)));
    }
}
