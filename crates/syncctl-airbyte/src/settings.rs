//! Which API, which URL and which credentials, resolved from environment variables (passed in
//! as a lookup: this crate never reads the process environment itself).

use std::fmt;

use syncctl_config::{SecretString, parse_base_url};

use crate::client::{Api, Auth};
use crate::error::AirbyteError;

/// `--api` / `AIRBYTE_API`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiChoice {
    /// Public when client credentials or a token are set, else config.
    Auto,
    /// The config API.
    Config,
    /// The public API.
    Public,
}

impl std::str::FromStr for ApiChoice {
    type Err = AirbyteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "config" => Ok(Self::Config),
            "public" => Ok(Self::Public),
            other => Err(AirbyteError::Settings(format!(
                "AIRBYTE_API must be auto, config or public, got {other:?}"
            ))),
        }
    }
}

/// Resolved settings: enough to build a client.
pub struct AirbyteSettings {
    /// Which API.
    pub api: Api,
    /// The API base, version included.
    pub base_url: String,
    /// Credentials.
    pub auth: Auth,
    /// `AIRBYTE_WORKSPACE_ID` (comma-separated), for name lookups.
    pub workspace_ids: Vec<String>,
}

impl fmt::Debug for AirbyteSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirbyteSettings")
            .field("api", &self.api)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth.method())
            .field("workspace_ids", &self.workspace_ids)
            .finish()
    }
}

/// Every environment variable the Airbyte settings read (connection ids aside).
pub const ENV_VARS: [&str; 10] = [
    "AIRBYTE_API",
    "AIRBYTE_API_URL",
    "AIRBYTE_PUBLIC_API_URL",
    "AIRBYTE_API_USERNAME",
    "AIRBYTE_API_PASSWORD",
    "AIRBYTE_CLIENT_ID",
    "AIRBYTE_CLIENT_SECRET",
    "AIRBYTE_API_TOKEN",
    "AIRBYTE_TOKEN_URL",
    "AIRBYTE_WORKSPACE_ID",
];

impl AirbyteSettings {
    /// Resolves settings; `choice` is `--api` when given (it beats `AIRBYTE_API`).
    ///
    /// # Errors
    /// [`AirbyteError::Settings`] naming the variable to fix.
    pub fn resolve(
        get: impl Fn(&str) -> Option<String>,
        choice: Option<ApiChoice>,
    ) -> Result<Self, AirbyteError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let choice = match choice {
            Some(c) => c,
            None => get("AIRBYTE_API")
                .map(|v| v.parse())
                .transpose()?
                .unwrap_or(ApiChoice::Auto),
        };
        let pair = |a: &str, b: &str| -> Result<Option<(String, SecretString)>, AirbyteError> {
            match (get(a), get(b)) {
                (Some(x), Some(y)) => Ok(Some((x, SecretString::from(y)))),
                (None, None) => Ok(None),
                (Some(_), None) => Err(AirbyteError::Settings(format!(
                    "{a} is set but {b} is not; set both or neither"
                ))),
                (None, Some(_)) => Err(AirbyteError::Settings(format!(
                    "{b} is set but {a} is not; set both or neither"
                ))),
            }
        };
        let basic = pair("AIRBYTE_API_USERNAME", "AIRBYTE_API_PASSWORD")?;
        let client = pair("AIRBYTE_CLIENT_ID", "AIRBYTE_CLIENT_SECRET")?;
        let token = get("AIRBYTE_API_TOKEN").map(SecretString::from);
        let api = match choice {
            ApiChoice::Config => Api::Config,
            ApiChoice::Public => Api::Public,
            ApiChoice::Auto if client.is_some() || token.is_some() => Api::Public,
            ApiChoice::Auto => Api::Config,
        };
        let server = get("AIRBYTE_API_URL")
            .map(|u| parse_base_url("AIRBYTE_API_URL", &u).map(|u| server_root(&u)))
            .transpose()
            .map_err(|e| AirbyteError::Settings(e.to_string()))?;
        let base_url = match api {
            Api::Config => format!(
                "{}/api/v1",
                server.ok_or_else(|| AirbyteError::Settings(
                    "missing Airbyte server URL: set AIRBYTE_API_URL (for example http://airbyte-server:8000)".into()
                ))?
            ),
            Api::Public => match get("AIRBYTE_PUBLIC_API_URL") {
                Some(u) => parse_base_url("AIRBYTE_PUBLIC_API_URL", &u)
                    .map_err(|e| AirbyteError::Settings(e.to_string()))?,
                None => format!(
                    "{}/api/public/v1",
                    server.ok_or_else(|| AirbyteError::Settings(
                        "missing Airbyte URL: set AIRBYTE_API_URL (server root) or AIRBYTE_PUBLIC_API_URL (public API base, version included, e.g. https://api.airbyte.com/v1)".into()
                    ))?
                ),
            },
        };
        let token_url = match get("AIRBYTE_TOKEN_URL") {
            Some(u) => parse_base_url("AIRBYTE_TOKEN_URL", &u)
                .map_err(|e| AirbyteError::Settings(e.to_string()))?,
            None if api == Api::Public => format!("{base_url}/applications/token"),
            None => format!(
                "{}/applications/token",
                base_url.trim_end_matches("/api/v1").to_owned() + "/api/public/v1"
            ),
        };
        let client_auth = client.map(|(client_id, client_secret)| Auth::ClientCredentials {
            client_id,
            client_secret,
            token_url,
        });
        let basic_auth = basic.map(|(username, password)| Auth::Basic { username, password });
        let token_auth = token.map(Auth::Token);
        // The config API is the seed's basic-auth setup; the public API prefers credentials
        // that can be refreshed over a static token that may expire mid-wait.
        let auth = match api {
            Api::Config => basic_auth.or(token_auth).or(client_auth),
            Api::Public => client_auth.or(token_auth).or(basic_auth),
        }
        .unwrap_or(Auth::None);
        let workspace_ids = get("AIRBYTE_WORKSPACE_ID")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            api,
            base_url,
            auth,
            workspace_ids,
        })
    }
}

/// The server root: users often paste `…/api` or `…/api/v1`; both mean the same server.
fn server_root(url: &str) -> String {
    let mut u = url.trim_end_matches('/');
    for suffix in ["/api/public/v1", "/api/v1", "/api"] {
        if let Some(stripped) = u.strip_suffix(suffix) {
            u = stripped;
            break;
        }
    }
    u.to_owned()
}

/// The variable `--connection NAME` reads: `AIRBYTE_<NAME>_CONNECTION_ID`, upper-cased, with
/// anything but letters and digits turned into `_`.
#[must_use]
pub fn connection_env_var(name: &str) -> String {
    let n: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("AIRBYTE_{n}_CONNECTION_ID")
}

/// The connection names configured as `AIRBYTE_<NAME>_CONNECTION_ID` among `names`, with
/// their variable, sorted.
pub fn configured_connections<'a>(names: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = names
        .filter_map(|n| {
            let inner = n.strip_prefix("AIRBYTE_")?.strip_suffix("_CONNECTION_ID")?;
            (!inner.is_empty()).then(|| (inner.to_ascii_lowercase(), n.to_owned()))
        })
        .collect();
    out.sort();
    out
}

/// Whether `s` is a UUID (Airbyte connection and workspace ids are).
#[must_use]
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use syncctl_config::ExposeSecret;

    use super::*;

    fn resolve(
        pairs: &[(&str, &str)],
        choice: Option<ApiChoice>,
    ) -> Result<AirbyteSettings, AirbyteError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AirbyteSettings::resolve(|k| map.get(k).cloned(), choice)
    }

    #[test]
    fn auto_picks_config_with_basic_auth() {
        let s = resolve(
            &[
                ("AIRBYTE_API_URL", "http://airbyte-server:8000/"),
                ("AIRBYTE_API_USERNAME", "airbyte"),
                ("AIRBYTE_API_PASSWORD", "pw"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(s.api, Api::Config);
        assert_eq!(s.base_url, "http://airbyte-server:8000/api/v1");
        assert_eq!(s.auth.method(), "basic auth");
    }

    #[test]
    fn auto_picks_public_with_client_credentials() {
        let s = resolve(
            &[
                ("AIRBYTE_API_URL", "http://h:8000/api"),
                ("AIRBYTE_CLIENT_ID", "id"),
                ("AIRBYTE_CLIENT_SECRET", "secret"),
                ("AIRBYTE_API_TOKEN", "static"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(s.api, Api::Public);
        assert_eq!(s.base_url, "http://h:8000/api/public/v1");
        match &s.auth {
            Auth::ClientCredentials {
                token_url,
                client_secret,
                ..
            } => {
                assert_eq!(token_url, "http://h:8000/api/public/v1/applications/token");
                assert_eq!(client_secret.expose_secret(), "secret");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{s:?}").contains("secret\""));
    }

    #[test]
    fn public_url_override_and_cloud() {
        let s = resolve(
            &[
                ("AIRBYTE_PUBLIC_API_URL", "https://api.airbyte.com/v1"),
                ("AIRBYTE_API_TOKEN", "t0ken"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(s.base_url, "https://api.airbyte.com/v1");
        assert_eq!(s.auth.method(), "bearer token");
        let s = resolve(
            &[
                ("AIRBYTE_API_URL", "http://h:8000"),
                ("AIRBYTE_API", "public"),
                ("AIRBYTE_WORKSPACE_ID", "w1, w2"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(s.api, Api::Public);
        assert_eq!(s.auth.method(), "none");
        assert_eq!(s.workspace_ids, vec!["w1", "w2"]);
    }

    #[test]
    fn flag_beats_env_and_errors_name_the_variable() {
        let s = resolve(
            &[
                ("AIRBYTE_API_URL", "http://h:8000"),
                ("AIRBYTE_API", "public"),
            ],
            Some(ApiChoice::Config),
        )
        .unwrap();
        assert_eq!(s.api, Api::Config);
        for (pairs, needle) in [
            (vec![], "AIRBYTE_API_URL"),
            (vec![("AIRBYTE_API_URL", "h:8000")], "AIRBYTE_API_URL"),
            (
                vec![
                    ("AIRBYTE_API_URL", "http://h"),
                    ("AIRBYTE_API_USERNAME", "u"),
                ],
                "AIRBYTE_API_PASSWORD",
            ),
            (
                vec![
                    ("AIRBYTE_API_URL", "http://h"),
                    ("AIRBYTE_CLIENT_SECRET", "s"),
                ],
                "AIRBYTE_CLIENT_ID",
            ),
            (vec![("AIRBYTE_API", "graphql")], "AIRBYTE_API"),
        ] {
            let e = resolve(&pairs, None).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn connection_vars() {
        assert_eq!(connection_env_var("stripe"), "AIRBYTE_STRIPE_CONNECTION_ID");
        assert_eq!(
            connection_env_var("hub-spot"),
            "AIRBYTE_HUB_SPOT_CONNECTION_ID"
        );
        let found = configured_connections(
            [
                "AIRBYTE_API_URL",
                "AIRBYTE_STRIPE_CONNECTION_ID",
                "AIRBYTE_HUBSPOT_CONNECTION_ID",
            ]
            .into_iter(),
        );
        assert_eq!(
            found,
            vec![
                (
                    "hubspot".to_owned(),
                    "AIRBYTE_HUBSPOT_CONNECTION_ID".to_owned()
                ),
                (
                    "stripe".to_owned(),
                    "AIRBYTE_STRIPE_CONNECTION_ID".to_owned()
                )
            ]
        );
        assert!(is_uuid("9924bcd0-99be-453d-ba47-c2c9766f7da5"));
        assert!(!is_uuid("9924bcd099be453dba47c2c9766f7da5"));
        assert!(!is_uuid("stripe"));
    }
}
