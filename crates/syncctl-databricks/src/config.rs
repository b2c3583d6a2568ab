//! Connection settings resolved the way the Databricks CLI and SDKs do ("unified auth"):
//! each attribute comes from the environment first, then from a `~/.databrickscfg` profile.
//!
//! Profiles: `--profile` beats `DATABRICKS_CONFIG_PROFILE`; without either the `DEFAULT`
//! profile is used when the file has one. The file is `DATABRICKS_CONFIG_FILE` or
//! `$HOME/.databrickscfg`. Supported auth types: personal access token (`pat`) and OAuth
//! machine-to-machine client credentials (`oauth-m2m`); when both are configured,
//! `DATABRICKS_AUTH_TYPE` (or `auth_type` in the profile) must say which.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::DatabricksError;

/// How syncctl authenticates to the workspace.
pub enum Credentials {
    /// A personal access token (`DATABRICKS_TOKEN` / `token`).
    Pat(SecretString),
    /// OAuth M2M: a service principal's client id and secret, exchanged at
    /// `{host}/oidc/v1/token` for short-lived tokens with scope `all-apis`.
    ClientCredentials {
        /// `DATABRICKS_CLIENT_ID` / `client_id`.
        client_id: String,
        /// `DATABRICKS_CLIENT_SECRET` / `client_secret`.
        client_secret: SecretString,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pat(_) => f.write_str("Pat(***)"),
            Self::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

impl Credentials {
    /// The auth type name (`pat` or `oauth-m2m`), as `DATABRICKS_AUTH_TYPE` spells it.
    #[must_use]
    pub fn auth_type(&self) -> &'static str {
        match self {
            Self::Pat(_) => "pat",
            Self::ClientCredentials { .. } => "oauth-m2m",
        }
    }
}

/// Resolved connection settings.
#[derive(Debug)]
pub struct Settings {
    /// The workspace URL, with scheme and without a trailing slash.
    pub host: String,
    /// The credentials.
    pub credentials: Credentials,
    /// The profile that supplied settings, if one did.
    pub profile: Option<String>,
    /// The config file that was read, if one was.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// Calls `f` with every secret value, so the caller can scrub them from all output
    /// (secrets read from the config file are not environment variables).
    pub fn each_secret(&self, mut f: impl FnMut(&str)) {
        match &self.credentials {
            Credentials::Pat(t) => f(t.expose_secret()),
            Credentials::ClientCredentials { client_secret, .. } => {
                f(client_secret.expose_secret());
            }
        }
    }

    /// `{host}/api`, the root the Jobs API paths hang off.
    #[must_use]
    pub fn api_root(&self) -> String {
        format!("{}/api", self.host)
    }
}

/// Names of the environment variables read here.
pub const ENV_VARS: [&str; 7] = [
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_AUTH_TYPE",
    "DATABRICKS_CONFIG_PROFILE",
    "DATABRICKS_CONFIG_FILE",
];

/// One attribute: its environment variable and its `.databrickscfg` key.
struct Attr {
    env: &'static str,
    key: &'static str,
}

const HOST: Attr = Attr {
    env: "DATABRICKS_HOST",
    key: "host",
};
const TOKEN: Attr = Attr {
    env: "DATABRICKS_TOKEN",
    key: "token",
};
const CLIENT_ID: Attr = Attr {
    env: "DATABRICKS_CLIENT_ID",
    key: "client_id",
};
const CLIENT_SECRET: Attr = Attr {
    env: "DATABRICKS_CLIENT_SECRET",
    key: "client_secret",
};
const AUTH_TYPE: Attr = Attr {
    env: "DATABRICKS_AUTH_TYPE",
    key: "auth_type",
};

/// Resolves the settings from an environment lookup and an optional `--profile`.
///
/// # Errors
/// [`DatabricksError::Config`] when the host or credentials are missing or contradictory,
/// an explicitly named profile or config file does not exist, or the file cannot be read.
pub fn resolve(
    env: impl Fn(&str) -> Option<String>,
    profile_flag: Option<&str>,
) -> Result<Settings, DatabricksError> {
    let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let explicit_profile = profile_flag
        .map(str::to_owned)
        .filter(|p| !p.trim().is_empty())
        .or_else(|| env("DATABRICKS_CONFIG_PROFILE"));
    let (file, explicit_file) = match env("DATABRICKS_CONFIG_FILE") {
        Some(f) => (Some(PathBuf::from(f)), true),
        None => (
            env("HOME").map(|h| Path::new(&h).join(".databrickscfg")),
            false,
        ),
    };
    let mut profile_values = BTreeMap::new();
    let mut used_profile = None;
    let mut used_file = None;
    match (&file, &explicit_profile) {
        (Some(path), _) if path.is_file() => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                DatabricksError::Config(format!(
                    "cannot read Databricks config file {}: {e}",
                    path.display()
                ))
            })?;
            let sections = parse_ini(&text).map_err(|line| {
                DatabricksError::Config(format!(
                    "Databricks config file {} line {line}: expected [profile] or key = value",
                    path.display()
                ))
            })?;
            let wanted = explicit_profile.as_deref().unwrap_or("DEFAULT");
            match sections.get(wanted) {
                Some(values) => {
                    profile_values.clone_from(values);
                    used_profile = Some(wanted.to_owned());
                    used_file = Some(path.clone());
                }
                None if explicit_profile.is_some() => {
                    let names: Vec<&str> = sections.keys().map(String::as_str).collect();
                    return Err(DatabricksError::Config(format!(
                        "profile {wanted:?} not found in {} (profiles: {})",
                        path.display(),
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
                None => {}
            }
        }
        (Some(path), Some(p)) => {
            return Err(DatabricksError::Config(format!(
                "profile {p:?} was asked for but the Databricks config file {} does not exist",
                path.display()
            )));
        }
        (Some(path), None) if explicit_file => {
            return Err(DatabricksError::Config(format!(
                "DATABRICKS_CONFIG_FILE names {}, which does not exist",
                path.display()
            )));
        }
        (None, Some(p)) => {
            return Err(DatabricksError::Config(format!(
                "profile {p:?} was asked for but HOME is not set, so ~/.databrickscfg cannot be found; set DATABRICKS_CONFIG_FILE"
            )));
        }
        _ => {}
    }
    let get = |a: &Attr| env(a.env).or_else(|| non_empty(profile_values.get(a.key)));
    let where_hint = match &used_profile {
        Some(p) => format!(" (or `{{}}` in profile {p})"),
        None => " (or `{}` in a ~/.databrickscfg profile chosen with --profile)".to_owned(),
    };
    let hint = |a: &Attr| where_hint.replace("{}", a.key);

    let host_raw = get(&HOST).ok_or_else(|| {
        DatabricksError::Config(format!(
            "missing Databricks host: set DATABRICKS_HOST{}",
            hint(&HOST)
        ))
    })?;
    let host = normalize_host(&host_raw)?;

    let token = get(&TOKEN);
    let client_id = get(&CLIENT_ID);
    let client_secret = get(&CLIENT_SECRET);
    let auth_type = get(&AUTH_TYPE);
    let pat = |token: Option<String>| {
        token
            .map(|t| Credentials::Pat(SecretString::from(t)))
            .ok_or_else(|| {
                DatabricksError::Config(format!(
                    "auth type pat needs a token: set DATABRICKS_TOKEN{}",
                    hint(&TOKEN)
                ))
            })
    };
    let m2m = |id: Option<String>, secret: Option<String>| match (id, secret) {
        (Some(client_id), Some(s)) => Ok(Credentials::ClientCredentials {
            client_id,
            client_secret: SecretString::from(s),
        }),
        (Some(_), None) => Err(DatabricksError::Config(format!(
            "DATABRICKS_CLIENT_ID is set but the client secret is missing: set DATABRICKS_CLIENT_SECRET{}",
            hint(&CLIENT_SECRET)
        ))),
        (None, _) => Err(DatabricksError::Config(format!(
            "OAuth M2M needs a client id: set DATABRICKS_CLIENT_ID{}",
            hint(&CLIENT_ID)
        ))),
    };
    let credentials = match auth_type.as_deref().map(str::trim) {
        Some("pat") => pat(token)?,
        Some("oauth-m2m") => m2m(client_id, client_secret)?,
        Some(other) => {
            return Err(DatabricksError::Config(format!(
                "auth type {other:?} is not supported by syncctl; use pat (DATABRICKS_TOKEN) or oauth-m2m (DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET)"
            )));
        }
        None => match (
            token.is_some(),
            client_id.is_some() || client_secret.is_some(),
        ) {
            (true, true) => {
                return Err(DatabricksError::Config(
                    "more than one Databricks authentication method is configured (a token and OAuth client credentials); set DATABRICKS_AUTH_TYPE to pat or oauth-m2m".to_owned(),
                ));
            }
            (true, false) => pat(token)?,
            (false, true) => m2m(client_id, client_secret)?,
            (false, false) => {
                return Err(DatabricksError::Config(format!(
                    "missing Databricks credentials: set DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET{}",
                    where_hint.replace("`{}`", "`token` or `client_id`/`client_secret`")
                )));
            }
        },
    };
    Ok(Settings {
        host,
        credentials,
        profile: used_profile,
        config_file: used_file,
    })
}

fn non_empty(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
}

/// Adds `https://` to a bare host (the SDKs accept `adb-123.azuredatabricks.net`) and checks
/// the result is a URL.
fn normalize_host(raw: &str) -> Result<String, DatabricksError> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    syncctl_config::parse_base_url("DATABRICKS_HOST", &with_scheme)
        .map_err(|e| DatabricksError::Config(e.to_string()))
}

/// Parses `.databrickscfg`: `[section]` headers and `key = value` lines, `#` and `;`
/// comments. Keys before any header go to `DEFAULT`. Returns the 1-based number of the
/// first line that is neither.
fn parse_ini(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, usize> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = "DEFAULT".to_owned();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
            sections.entry(current.clone()).or_default();
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(i + 1)?;
        let k = k.trim();
        if k.is_empty() {
            return Err(i + 1);
        }
        sections
            .entry(current.clone())
            .or_default()
            .insert(k.to_ascii_lowercase(), v.trim().to_owned());
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const CFG: &str = "\
; written by the CLI
[DEFAULT]
host = https://default.cloud.databricks.com/
token = dapi-default

[prod]
host = prod.cloud.databricks.com
client_id = sp-id
client_secret = sp-secret
";

    fn cfg_dir() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".databrickscfg"), CFG).unwrap();
        let home = dir.path().to_string_lossy().into_owned();
        (dir, home)
    }

    #[test]
    fn environment_only_pat() {
        let s = resolve(
            env_of(&[
                ("DATABRICKS_HOST", "https://x.cloud/"),
                ("DATABRICKS_TOKEN", "t"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.host, "https://x.cloud");
        assert_eq!(s.credentials.auth_type(), "pat");
        assert!(s.profile.is_none());
        assert_eq!(s.api_root(), "https://x.cloud/api");
    }

    #[test]
    fn default_profile_is_used_without_asking() {
        let (_d, home) = cfg_dir();
        let s = resolve(env_of(&[("HOME", &home)]), None).unwrap();
        assert_eq!(s.host, "https://default.cloud.databricks.com");
        assert_eq!(s.profile.as_deref(), Some("DEFAULT"));
        let mut secrets = Vec::new();
        s.each_secret(|v| secrets.push(v.to_owned()));
        assert_eq!(secrets, vec!["dapi-default"]);
    }

    #[test]
    fn named_profile_from_flag_or_env_and_bare_hosts_get_https() {
        let (_d, home) = cfg_dir();
        for s in [
            resolve(env_of(&[("HOME", &home)]), Some("prod")).unwrap(),
            resolve(
                env_of(&[("HOME", &home), ("DATABRICKS_CONFIG_PROFILE", "prod")]),
                None,
            )
            .unwrap(),
        ] {
            assert_eq!(s.host, "https://prod.cloud.databricks.com");
            assert_eq!(s.credentials.auth_type(), "oauth-m2m");
            assert!(format!("{:?}", s.credentials).contains("sp-id"));
            assert!(!format!("{s:?}").contains("sp-secret"));
        }
    }

    #[test]
    fn environment_beats_the_profile_per_attribute() {
        let (_d, home) = cfg_dir();
        let s = resolve(
            env_of(&[("HOME", &home), ("DATABRICKS_HOST", "https://env.host")]),
            None,
        )
        .unwrap();
        assert_eq!(s.host, "https://env.host");
        assert_eq!(s.credentials.auth_type(), "pat");
    }

    #[test]
    fn config_file_from_env() {
        let (d, _) = cfg_dir();
        let path = d.path().join(".databrickscfg");
        let s = resolve(
            env_of(&[("DATABRICKS_CONFIG_FILE", path.to_str().unwrap())]),
            Some("prod"),
        )
        .unwrap();
        assert_eq!(s.config_file.as_deref(), Some(path.as_path()));
        let e = resolve(
            env_of(&[("DATABRICKS_CONFIG_FILE", "/nonexistent/cfg")]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn clear_errors() {
        let (_d, home) = cfg_dir();
        let e = resolve(env_of(&[("HOME", &home)]), Some("staging"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"staging\" not found") && e.contains("DEFAULT, prod"),
            "{e}"
        );
        let e = resolve(env_of(&[]), None).unwrap_err().to_string();
        assert!(e.contains("missing Databricks host"), "{e}");
        let e = resolve(env_of(&[("DATABRICKS_HOST", "https://h")]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing Databricks credentials"), "{e}");
        let e = resolve(
            env_of(&[
                ("DATABRICKS_HOST", "https://h"),
                ("DATABRICKS_CLIENT_ID", "x"),
            ]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("client secret is missing"), "{e}");
        let both = [
            ("DATABRICKS_HOST", "https://h"),
            ("DATABRICKS_TOKEN", "t"),
            ("DATABRICKS_CLIENT_ID", "x"),
            ("DATABRICKS_CLIENT_SECRET", "y"),
        ];
        let e = resolve(env_of(&both), None).unwrap_err().to_string();
        assert!(e.contains("DATABRICKS_AUTH_TYPE"), "{e}");
        let mut chosen = both.to_vec();
        chosen.push(("DATABRICKS_AUTH_TYPE", "oauth-m2m"));
        let s = resolve(env_of(&chosen), None).unwrap();
        assert_eq!(s.credentials.auth_type(), "oauth-m2m");
        let e = resolve(
            env_of(&[
                ("DATABRICKS_HOST", "https://h"),
                ("DATABRICKS_AUTH_TYPE", "azure-cli"),
            ]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not supported"), "{e}");
        let e = resolve(
            env_of(&[
                ("DATABRICKS_HOST", "https://a b"),
                ("DATABRICKS_TOKEN", "t"),
            ]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("DATABRICKS_HOST"), "{e}");
    }

    #[test]
    fn ini_syntax_errors_name_the_line() {
        assert_eq!(parse_ini("[a]\nx = 1\nnonsense\n").unwrap_err(), 3);
        let s = parse_ini("host = h\n[p]\nToken=t\n").unwrap();
        assert_eq!(s["DEFAULT"]["host"], "h");
        assert_eq!(s["p"]["token"], "t");
    }
}
