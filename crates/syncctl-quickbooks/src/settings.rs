//! Settings: the connector's config block over the `QUICKBOOKS_*` environment variables.
//!
//! | setting | config key | environment | default |
//! |---|---|---|---|
//! | company (realm) id | `realm_id` | `QUICKBOOKS_REALM_ID` | required |
//! | environment | `environment` | `QUICKBOOKS_ENVIRONMENT` | `production` |
//! | API base URL | `base_url` | `QUICKBOOKS_BASE_URL` | by environment |
//! | OAuth token endpoint | `token_url` | `QUICKBOOKS_TOKEN_URL` | Intuit's |
//! | access token | — | `QUICKBOOKS_ACCESS_TOKEN` | |
//! | refresh: client id, secret, refresh token | — | `QUICKBOOKS_CLIENT_ID`, `QUICKBOOKS_CLIENT_SECRET`, `QUICKBOOKS_REFRESH_TOKEN` | |
//!
//! Either an access token or the three refresh settings are needed; with both, the access
//! token is used until it expires and is then refreshed. Secrets are read only from the
//! environment (or `${VAR}` interpolation does not apply to them), never from the config block.

use secrecy::SecretString;
use serde::Deserialize;

use crate::QuickBooksError;

/// `https://quickbooks.api.intuit.com`.
pub const PRODUCTION_BASE_URL: &str = "https://quickbooks.api.intuit.com";
/// `https://sandbox-quickbooks.api.intuit.com`.
pub const SANDBOX_BASE_URL: &str = "https://sandbox-quickbooks.api.intuit.com";
/// Intuit's OAuth 2.0 token endpoint (both environments).
pub const INTUIT_TOKEN_URL: &str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer";
/// The `minorversion` sent on every call. Minor versions 1–74 were retired on 1 Aug 2025.
pub const MINOR_VERSION: u32 = 75;

/// Which QuickBooks Online environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Live companies.
    Production,
    /// Developer sandbox companies.
    Sandbox,
}

impl Environment {
    fn parse(v: &str) -> Result<Self, QuickBooksError> {
        match v.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Self::Production),
            "sandbox" => Ok(Self::Sandbox),
            other => Err(QuickBooksError::Settings(format!(
                "QUICKBOOKS_ENVIRONMENT must be sandbox or production, not {other:?}"
            ))),
        }
    }

    /// The default API base URL.
    #[must_use]
    pub fn base_url(self) -> &'static str {
        match self {
            Self::Production => PRODUCTION_BASE_URL,
            Self::Sandbox => SANDBOX_BASE_URL,
        }
    }
}

/// OAuth refresh settings (client credentials + the initial refresh token).
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// The refresh token the operator configured (the stored, rotated one wins while it
    /// descends from this one; see `auth`).
    pub refresh_token: SecretString,
    /// The token endpoint.
    pub token_url: String,
}

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct QuickBooksSettings {
    /// The company id.
    pub realm_id: String,
    /// Base URL, scheme://host[:port], no path.
    pub base_url: String,
    /// A current access token, if one was given.
    pub access_token: Option<SecretString>,
    /// Refresh settings, if given.
    pub refresh: Option<RefreshSettings>,
}

/// The non-secret keys a connector block may carry (besides `connector` and `object`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSettings {
    /// `Customer`, `Item` or `Invoice`.
    pub object: Option<String>,
    /// The company id.
    pub realm_id: Option<String>,
    /// `sandbox` or `production`.
    pub environment: Option<String>,
    /// API base URL override.
    pub base_url: Option<String>,
    /// Token endpoint override.
    pub token_url: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Checks a base URL: `scheme://host[:port]` with no path, query or credentials.
///
/// # Errors
/// A settings error naming `name`.
pub fn parse_origin(name: &str, value: &str) -> Result<String, QuickBooksError> {
    syncctl_config::parse_origin_url(name, value)
        .map_err(|e| QuickBooksError::Settings(e.to_string()))
}

impl QuickBooksSettings {
    /// Resolves settings: config block first, then the environment.
    ///
    /// # Errors
    /// Missing realm or credentials, an unknown environment, a base URL with a path.
    pub fn resolve(
        block: &BlockSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, QuickBooksError> {
        let realm_id = non_empty(block.realm_id.clone())
            .or_else(|| non_empty(env("QUICKBOOKS_REALM_ID")))
            .ok_or_else(|| {
                QuickBooksError::Settings(
                    "missing the company id: set QUICKBOOKS_REALM_ID (or realm_id in the connector block)".into(),
                )
            })?;
        if !realm_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(QuickBooksError::Settings(format!(
                "QUICKBOOKS_REALM_ID must be the company id (digits), got {realm_id:?}"
            )));
        }
        let environment = match non_empty(block.environment.clone())
            .or_else(|| non_empty(env("QUICKBOOKS_ENVIRONMENT")))
        {
            Some(v) => Environment::parse(&v)?,
            None => Environment::Production,
        };
        let base_url = match non_empty(block.base_url.clone())
            .or_else(|| non_empty(env("QUICKBOOKS_BASE_URL")))
        {
            Some(u) => parse_origin("QUICKBOOKS_BASE_URL", &u)?,
            None => environment.base_url().to_owned(),
        };
        let token_url = match non_empty(block.token_url.clone())
            .or_else(|| non_empty(env("QUICKBOOKS_TOKEN_URL")))
        {
            Some(u) => syncctl_config::parse_base_url("QUICKBOOKS_TOKEN_URL", &u)
                .map_err(|e| QuickBooksError::Settings(e.to_string()))?,
            None => INTUIT_TOKEN_URL.to_owned(),
        };
        let secret = |name: &str| non_empty(env(name)).map(SecretString::from);
        let access_token = secret("QUICKBOOKS_ACCESS_TOKEN");
        let client_id = non_empty(env("QUICKBOOKS_CLIENT_ID"));
        let client_secret = secret("QUICKBOOKS_CLIENT_SECRET");
        let refresh_token = secret("QUICKBOOKS_REFRESH_TOKEN");
        let refresh = match (client_id, client_secret, refresh_token) {
            (Some(client_id), Some(client_secret), Some(refresh_token)) => Some(RefreshSettings {
                client_id,
                client_secret,
                refresh_token,
                token_url,
            }),
            (None, None, None) => None,
            (id, secret, token) => {
                let missing: Vec<_> = [
                    ("QUICKBOOKS_CLIENT_ID", id.is_none()),
                    ("QUICKBOOKS_CLIENT_SECRET", secret.is_none()),
                    ("QUICKBOOKS_REFRESH_TOKEN", token.is_none()),
                ]
                .into_iter()
                .filter_map(|(n, m)| m.then_some(n))
                .collect();
                return Err(QuickBooksError::Settings(format!(
                    "OAuth refresh needs QUICKBOOKS_CLIENT_ID, QUICKBOOKS_CLIENT_SECRET and QUICKBOOKS_REFRESH_TOKEN together; missing {}",
                    missing.join(", ")
                )));
            }
        };
        if access_token.is_none() && refresh.is_none() {
            return Err(QuickBooksError::Settings(
                "no credentials: set QUICKBOOKS_ACCESS_TOKEN, or QUICKBOOKS_CLIENT_ID, QUICKBOOKS_CLIENT_SECRET and QUICKBOOKS_REFRESH_TOKEN (needed for runs longer than the access token's hour)".into(),
            ));
        }
        Ok(Self {
            realm_id,
            base_url,
            access_token,
            refresh,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Vars(HashMap<String, String>);

    impl Vars {
        fn get(&self, k: &str) -> Option<String> {
            self.0.get(k).cloned()
        }
    }

    type Lookup = Box<dyn Fn(&str) -> Option<String>>;

    fn env_fn(pairs: &[(&str, &str)]) -> Lookup {
        let v = env(pairs);
        Box::new(move |k| v.get(k))
    }

    fn env(pairs: &[(&str, &str)]) -> Vars {
        Vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn environment_picks_the_base_url_and_the_override_wins() {
        let b = BlockSettings::default();
        let s = QuickBooksSettings::resolve(
            &b,
            &*env_fn(&[
                ("QUICKBOOKS_REALM_ID", "123"),
                ("QUICKBOOKS_ACCESS_TOKEN", "t"),
                ("QUICKBOOKS_ENVIRONMENT", "sandbox"),
            ]),
        )
        .unwrap();
        assert_eq!(s.base_url, SANDBOX_BASE_URL);
        assert!(s.refresh.is_none());
        let s = QuickBooksSettings::resolve(
            &b,
            &*env_fn(&[
                ("QUICKBOOKS_REALM_ID", "123"),
                ("QUICKBOOKS_ACCESS_TOKEN", "t"),
                ("QUICKBOOKS_BASE_URL", "http://127.0.0.1:9000/"),
            ]),
        )
        .unwrap();
        assert_eq!(s.base_url, "http://127.0.0.1:9000");
        let s = QuickBooksSettings::resolve(
            &b,
            &*env_fn(&[
                ("QUICKBOOKS_REALM_ID", "123"),
                ("QUICKBOOKS_ACCESS_TOKEN", "t"),
            ]),
        )
        .unwrap();
        assert_eq!(s.base_url, PRODUCTION_BASE_URL);
    }

    #[test]
    fn bad_settings_say_what_to_set() {
        let b = BlockSettings::default();
        let err = |pairs: &[(&str, &str)]| {
            {
                let e = env(pairs);
                QuickBooksSettings::resolve(&b, &|k| e.get(k))
            }
            .unwrap_err()
            .to_string()
        };
        assert!(err(&[("QUICKBOOKS_ACCESS_TOKEN", "t")]).contains("QUICKBOOKS_REALM_ID"));
        assert!(err(&[("QUICKBOOKS_REALM_ID", "1")]).contains("no credentials"));
        let e = err(&[
            ("QUICKBOOKS_REALM_ID", "1"),
            ("QUICKBOOKS_CLIENT_ID", "c"),
            ("QUICKBOOKS_REFRESH_TOKEN", "secret-refresh"),
        ]);
        assert!(
            e.contains("missing QUICKBOOKS_CLIENT_SECRET") && !e.contains("secret-refresh"),
            "{e}"
        );
        assert!(
            err(&[
                ("QUICKBOOKS_REALM_ID", "1"),
                ("QUICKBOOKS_ACCESS_TOKEN", "t"),
                ("QUICKBOOKS_ENVIRONMENT", "staging")
            ])
            .contains("sandbox or production")
        );
        let e = err(&[
            ("QUICKBOOKS_REALM_ID", "1"),
            ("QUICKBOOKS_ACCESS_TOKEN", "t"),
            ("QUICKBOOKS_BASE_URL", "https://u:pw@h.example.com/v3"),
        ]);
        assert!(e.contains("no path") && !e.contains("pw"), "{e}");
        assert!(
            err(&[
                ("QUICKBOOKS_REALM_ID", "1 OR 1"),
                ("QUICKBOOKS_ACCESS_TOKEN", "t")
            ])
            .contains("digits")
        );
    }

    #[test]
    fn refresh_settings_come_together() {
        let s = QuickBooksSettings::resolve(
            &BlockSettings {
                realm_id: Some("9".into()),
                token_url: Some("http://127.0.0.1:1/oauth2/v1/tokens/bearer".into()),
                ..BlockSettings::default()
            },
            &*env_fn(&[
                ("QUICKBOOKS_CLIENT_ID", "c"),
                ("QUICKBOOKS_CLIENT_SECRET", "s"),
                ("QUICKBOOKS_REFRESH_TOKEN", "r"),
            ]),
        )
        .unwrap();
        let r = s.refresh.unwrap();
        assert_eq!(r.client_id, "c");
        assert_eq!(r.token_url, "http://127.0.0.1:1/oauth2/v1/tokens/bearer");
        assert!(s.access_token.is_none());
    }
}
