//! Connection settings: flags over `SNOWFLAKE_*` variables over an Airflow connection
//! (`AIRFLOW_CONN_SNOWFLAKE`, URI or JSON form).

use std::collections::BTreeMap;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use syncctl_config::Env;

use crate::SnowflakeError;
use crate::auth::{Credentials, KeyPairJwt, PrivateKey};

/// The session context a statement runs in (`warehouse`, `role`, `database`, `schema`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionContext {
    /// The warehouse (case-sensitive, as `SHOW WAREHOUSES` prints it).
    pub warehouse: Option<String>,
    /// The role.
    pub role: Option<String>,
    /// The database.
    pub database: Option<String>,
    /// The schema.
    pub schema: Option<String>,
}

/// Values given on the command line, which beat every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--warehouse`, `--role`, `--database`, `--schema`.
    pub context: SessionContext,
    /// `--airflow-conn-id` (default `snowflake`, read from `AIRFLOW_CONN_SNOWFLAKE`).
    pub airflow_conn_id: Option<String>,
}

/// Everything needed to talk to the SQL API.
#[derive(Debug)]
pub struct ConnectionSettings {
    /// `https://<account>.snowflakecomputing.com`, or `SNOWFLAKE_HOST`.
    pub base_url: String,
    /// The account identifier, when known.
    pub account: Option<String>,
    /// The user, when known.
    pub user: Option<String>,
    /// The credential and its token type.
    pub credentials: Credentials,
    /// Warehouse, role, database and schema.
    pub context: SessionContext,
    /// Where settings came from (`environment`, `AIRFLOW_CONN_SNOWFLAKE`).
    pub sources: Vec<String>,
    /// Secret values read from places the binary's redactor does not scan by name (decoded
    /// Airflow connection fields, key files); register them before logging anything.
    pub secrets: Vec<SecretString>,
}

/// The Airflow connection variable for `conn_id`.
#[must_use]
pub fn airflow_conn_var(conn_id: &str) -> String {
    format!("AIRFLOW_CONN_{}", conn_id.to_ascii_uppercase())
}

/// Whether any Snowflake settings are present at all (for `doctor`).
#[must_use]
pub fn is_configured(env: &Env, conn_id: Option<&str>) -> bool {
    env.contains("SNOWFLAKE_ACCOUNT")
        || env.contains("SNOWFLAKE_HOST")
        || env.contains(&airflow_conn_var(conn_id.unwrap_or("snowflake")))
}

/// An Airflow connection, decoded.
#[derive(Default)]
struct AirflowConn {
    login: Option<String>,
    password: Option<SecretString>,
    host: Option<String>,
    schema: Option<String>,
    extra: BTreeMap<String, SecretString>,
}

impl AirflowConn {
    /// Parses `snowflake://user:pass@host/schema?account=…&warehouse=…` or the JSON form
    /// `{"conn_type":"snowflake","login":…,"password":…,"schema":…,"extra":{…}}`.
    fn parse(var: &str, text: &str) -> Result<Self, SnowflakeError> {
        let bad = |why: &str| SnowflakeError::Config(format!("cannot read {var}: {why}"));
        let t = text.trim();
        if t.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(t).map_err(|_| bad("it is not valid JSON"))?;
            let s = |k: &str| v.get(k).and_then(value_text).filter(|x| !x.is_empty());
            let mut conn = Self {
                login: s("login"),
                password: s("password").map(SecretString::from),
                host: s("host"),
                schema: s("schema"),
                extra: BTreeMap::new(),
            };
            let extra = match v.get("extra") {
                Some(serde_json::Value::String(raw)) if !raw.trim().is_empty() => {
                    serde_json::from_str(raw).map_err(|_| bad("its extra is not valid JSON"))?
                }
                Some(e @ serde_json::Value::Object(_)) => e.clone(),
                _ => serde_json::Value::Null,
            };
            conn.add_extra(&extra);
            return Ok(conn);
        }
        let (_, rest) = t.split_once("://").ok_or_else(|| {
            bad("expected a URI like snowflake://user:password@/schema?account=… or JSON")
        })?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        let mut conn = Self::default();
        let host = match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                conn.login = Some(percent_decode(user)).filter(|x| !x.is_empty());
                conn.password = Some(percent_decode(pass))
                    .filter(|x| !x.is_empty())
                    .map(SecretString::from);
                host
            }
            None => authority,
        };
        let host = percent_decode(host);
        conn.host =
            Some(host.split(':').next().unwrap_or_default().to_owned()).filter(|x| !x.is_empty());
        conn.schema = Some(percent_decode(path)).filter(|x| !x.is_empty());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k);
            let v = percent_decode(v);
            if k == "__extra__" {
                let extra: serde_json::Value =
                    serde_json::from_str(&v).map_err(|_| bad("its __extra__ is not valid JSON"))?;
                conn.add_extra(&extra);
            } else {
                conn.extra.insert(k, SecretString::from(v));
            }
        }
        Ok(conn)
    }

    fn add_extra(&mut self, extra: &serde_json::Value) {
        if let Some(map) = extra.as_object() {
            for (k, v) in map {
                if let Some(text) = value_text(v) {
                    self.extra.insert(k.clone(), SecretString::from(text));
                }
            }
        }
    }

    /// An extra field, also in its old `extra__snowflake__` form.
    fn extra(&self, key: &str) -> Option<SecretString> {
        self.extra
            .get(key)
            .or_else(|| self.extra.get(&format!("extra__snowflake__{key}")))
            .filter(|v| !v.expose_secret().trim().is_empty())
            .cloned()
    }

    fn extra_text(&self, key: &str) -> Option<String> {
        self.extra(key).map(|v| v.expose_secret().trim().to_owned())
    }
}

fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `%XX` decoding (and `+` as space in query values is not used by Airflow's URIs).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl ConnectionSettings {
    /// Resolves settings: flags, then `SNOWFLAKE_*`, then the Airflow connection.
    ///
    /// # Errors
    /// [`SnowflakeError::Config`] naming what is missing or unusable.
    pub fn resolve(env: &Env, overrides: &Overrides) -> Result<Self, SnowflakeError> {
        let conn_id = overrides.airflow_conn_id.as_deref().unwrap_or("snowflake");
        let conn_var = airflow_conn_var(conn_id);
        let mut sources = Vec::new();
        let mut secrets = Vec::new();
        let conn = match env.get(&conn_var) {
            Some(text) => {
                sources.push(conn_var.clone());
                let c = AirflowConn::parse(&conn_var, &text)?;
                secrets.extend(c.password.clone());
                secrets.extend(c.extra.values().cloned());
                c
            }
            None => AirflowConn::default(),
        };
        if env.names().any(|n| n.starts_with("SNOWFLAKE_")) {
            sources.insert(0, "environment".to_owned());
        }
        let pick = |var: &str, fallback: Option<String>| {
            env.get(var).map(|v| v.trim().to_owned()).or(fallback)
        };

        // People often paste the host (`myorg-acct.snowflakecomputing.com`) as the account.
        let account = pick("SNOWFLAKE_ACCOUNT", conn.extra_text("account")).map(|a| {
            let a = a.trim_start_matches("https://").trim_end_matches('/');
            a.strip_suffix(".snowflakecomputing.com")
                .unwrap_or(a)
                .to_owned()
        });
        let region = pick("SNOWFLAKE_REGION", conn.extra_text("region"));
        let user = pick("SNOWFLAKE_USER", conn.login.clone());
        let base_url = match env.get("SNOWFLAKE_HOST") {
            Some(h) => syncctl_config::parse_base_url("SNOWFLAKE_HOST", &h)
                .map_err(|e| SnowflakeError::Config(e.to_string()))?,
            None => match conn
                .host
                .as_deref()
                .filter(|h| h.contains("snowflakecomputing"))
            {
                Some(h) => syncctl_config::parse_base_url(&conn_var, &format!("https://{h}"))
                    .map_err(|e| SnowflakeError::Config(e.to_string()))?,
                None => {
                    let account = account.as_deref().ok_or_else(|| {
                        SnowflakeError::Config(format!(
                            "missing Snowflake account: set SNOWFLAKE_ACCOUNT (or SNOWFLAKE_HOST, or {conn_var})"
                        ))
                    })?;
                    account_url(account, region.as_deref())?
                }
            },
        };

        let authenticator = pick("SNOWFLAKE_AUTHENTICATOR", conn.extra_text("authenticator"))
            .map(|a| a.to_ascii_lowercase());
        let token = env
            .secret("SNOWFLAKE_TOKEN")
            .or_else(|| conn.extra("token"));
        let key_pem = match (
            env.get("SNOWFLAKE_PRIVATE_KEY_PATH"),
            env.secret("SNOWFLAKE_PRIVATE_KEY"),
        ) {
            (Some(path), _) => Some(read_key_file("SNOWFLAKE_PRIVATE_KEY_PATH", &path)?),
            (None, Some(pem)) => Some(pem),
            (None, None) => match (
                conn.extra_text("private_key_file"),
                conn.extra("private_key_content"),
            ) {
                (Some(path), _) => Some(read_key_file(
                    &format!("{conn_var} private_key_file"),
                    &path,
                )?),
                (None, Some(content)) => Some(decode_key_content(&content)),
                (None, None) => None,
            },
        };
        if let Some(k) = &key_pem {
            secrets.push(k.clone());
        }
        let passphrase = env
            .secret("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
            .or_else(|| conn.password.clone());

        let credentials = match authenticator.as_deref() {
            Some("oauth") => Credentials::OAuth(token.ok_or_else(|| {
                SnowflakeError::Config("SNOWFLAKE_AUTHENTICATOR=oauth needs an access token in SNOWFLAKE_TOKEN".into())
            })?),
            Some("programmatic_access_token" | "pat") => Credentials::ProgrammaticAccessToken(
                token.or_else(|| conn.password.clone()).ok_or_else(|| {
                    SnowflakeError::Config(
                        "SNOWFLAKE_AUTHENTICATOR=programmatic_access_token needs the token in SNOWFLAKE_TOKEN".into(),
                    )
                })?,
            ),
            Some("snowflake_jwt" | "jwt" | "keypair") | None if key_pem.is_some() => {
                let pem = key_pem.ok_or_else(|| SnowflakeError::Config("missing private key".into()))?;
                let key = PrivateKey::from_pem(&pem, passphrase.as_ref())?;
                let account = account.as_deref().ok_or_else(|| {
                    SnowflakeError::Config(format!(
                        "key-pair auth needs the account: set SNOWFLAKE_ACCOUNT (or account in {conn_var})"
                    ))
                })?;
                let user = user.as_deref().ok_or_else(|| {
                    SnowflakeError::Config(format!(
                        "key-pair auth needs the user: set SNOWFLAKE_USER (or login in {conn_var})"
                    ))
                })?;
                Credentials::KeyPair(KeyPairJwt::new(account, user, key))
            }
            Some("snowflake_jwt" | "jwt" | "keypair") => {
                return Err(SnowflakeError::Config(
                    "key-pair auth needs a private key: set SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY".into(),
                ));
            }
            None if token.is_some() => {
                return Err(SnowflakeError::Config(
                    "SNOWFLAKE_TOKEN is set but SNOWFLAKE_AUTHENTICATOR is not: set it to oauth or programmatic_access_token".into(),
                ));
            }
            None => {
                return Err(SnowflakeError::Config(format!(
                    "no Snowflake credentials: set SNOWFLAKE_PRIVATE_KEY_PATH (or SNOWFLAKE_PRIVATE_KEY) for key-pair auth, or SNOWFLAKE_TOKEN with SNOWFLAKE_AUTHENTICATOR=oauth|programmatic_access_token (or {conn_var})"
                )));
            }
            Some(other) => {
                return Err(SnowflakeError::Config(format!(
                    "authenticator {other:?} is not supported by the SQL API; use snowflake_jwt (key pair), oauth or programmatic_access_token"
                )));
            }
        };

        let context = SessionContext {
            warehouse: overrides
                .context
                .warehouse
                .clone()
                .or_else(|| pick("SNOWFLAKE_WAREHOUSE", conn.extra_text("warehouse"))),
            role: overrides
                .context
                .role
                .clone()
                .or_else(|| pick("SNOWFLAKE_ROLE", conn.extra_text("role"))),
            database: overrides
                .context
                .database
                .clone()
                .or_else(|| pick("SNOWFLAKE_DATABASE", conn.extra_text("database"))),
            schema: overrides.context.schema.clone().or_else(|| {
                pick(
                    "SNOWFLAKE_SCHEMA",
                    conn.schema.clone().or_else(|| conn.extra_text("schema")),
                )
            }),
        };
        Ok(Self {
            base_url,
            account,
            user,
            credentials,
            context,
            sources,
            secrets,
        })
    }
}

/// `https://<account>[.<region>].snowflakecomputing.com` (URL hosts use `-` for `_`).
fn account_url(account: &str, region: Option<&str>) -> Result<String, SnowflakeError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !ok(account) || region.is_some_and(|r| !ok(r)) {
        return Err(SnowflakeError::Config(format!(
            "invalid SNOWFLAKE_ACCOUNT {account:?}: use the account identifier (orgname-account_name or a locator like xy12345.us-east-2.aws)"
        )));
    }
    let mut host = account.to_ascii_lowercase().replace('_', "-");
    if let Some(r) = region {
        host.push('.');
        host.push_str(&r.to_ascii_lowercase());
    }
    Ok(format!("https://{host}.snowflakecomputing.com"))
}

fn read_key_file(what: &str, path: &str) -> Result<SecretString, SnowflakeError> {
    std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|e| SnowflakeError::Config(format!("cannot read {what} {path}: {}", e.kind())))
}

/// Airflow's `private_key_content` is base64-encoded PEM in recent providers, plain PEM in
/// older ones.
fn decode_key_content(content: &SecretString) -> SecretString {
    let raw = content.expose_secret();
    if raw.contains("-----BEGIN") {
        return content.clone();
    }
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map_or_else(|| content.clone(), SecretString::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn urls_come_from_the_account_or_the_host() {
        assert_eq!(
            account_url("myorg-my_acct", None).unwrap(),
            "https://myorg-my-acct.snowflakecomputing.com"
        );
        assert_eq!(
            account_url("xy12345", Some("us-east-2.aws")).unwrap(),
            "https://xy12345.us-east-2.aws.snowflakecomputing.com"
        );
        assert!(account_url("evil.com/x?", None).is_err());
        let s = ConnectionSettings::resolve(
            &env(&[
                (
                    "SNOWFLAKE_ACCOUNT",
                    "https://MyOrg-Acct.snowflakecomputing.com/",
                ),
                ("SNOWFLAKE_TOKEN", "tok-123456"),
                ("SNOWFLAKE_AUTHENTICATOR", "oauth"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.base_url, "https://myorg-acct.snowflakecomputing.com");
        assert_eq!(s.account.as_deref(), Some("MyOrg-Acct"));
    }

    #[test]
    fn airflow_uri_and_json_forms() {
        let c = AirflowConn::parse(
            "AIRFLOW_CONN_SNOWFLAKE",
            "snowflake://etl_user:p%40ss@/PUBLIC?account=myorg-acct&warehouse=WH&extra__snowflake__role=LOADER",
        )
        .unwrap();
        assert_eq!(c.login.as_deref(), Some("etl_user"));
        assert_eq!(c.password.as_ref().unwrap().expose_secret(), "p@ss");
        assert_eq!(c.schema.as_deref(), Some("PUBLIC"));
        assert_eq!(c.extra_text("account").as_deref(), Some("myorg-acct"));
        assert_eq!(c.extra_text("role").as_deref(), Some("LOADER"));
        let c = AirflowConn::parse(
            "X",
            r#"{"conn_type":"snowflake","login":"u","schema":"S","extra":"{\"account\":\"a\",\"insecure_mode\":false}"}"#,
        )
        .unwrap();
        assert_eq!(c.extra_text("account").as_deref(), Some("a"));
        assert_eq!(c.extra_text("insecure_mode").as_deref(), Some("false"));
        assert!(AirflowConn::parse("X", "{not json").is_err());
    }

    #[test]
    fn missing_credentials_say_what_to_set() {
        let e =
            ConnectionSettings::resolve(&env(&[("SNOWFLAKE_ACCOUNT", "a")]), &Overrides::default())
                .unwrap_err()
                .to_string();
        assert!(e.contains("SNOWFLAKE_PRIVATE_KEY_PATH"), "{e}");
        let e = ConnectionSettings::resolve(
            &env(&[
                ("SNOWFLAKE_ACCOUNT", "a"),
                ("SNOWFLAKE_TOKEN", "tok-123456"),
            ]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("SNOWFLAKE_AUTHENTICATOR"), "{e}");
        let s = ConnectionSettings::resolve(
            &env(&[
                ("SNOWFLAKE_HOST", "http://127.0.0.1:9"),
                ("SNOWFLAKE_TOKEN", "tok-123456"),
                ("SNOWFLAKE_AUTHENTICATOR", "PROGRAMMATIC_ACCESS_TOKEN"),
                ("SNOWFLAKE_WAREHOUSE", "WH"),
            ]),
            &Overrides {
                context: SessionContext {
                    warehouse: Some("FLAG_WH".into()),
                    ..SessionContext::default()
                },
                airflow_conn_id: None,
            },
        )
        .unwrap();
        assert_eq!(s.credentials.token_type(), "PROGRAMMATIC_ACCESS_TOKEN");
        assert_eq!(s.base_url, "http://127.0.0.1:9");
        assert_eq!(s.context.warehouse.as_deref(), Some("FLAG_WH"));
    }

    #[test]
    fn base64_key_content_is_decoded() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(
            decode_key_content(&SecretString::from(b64)).expose_secret(),
            pem
        );
        assert_eq!(
            decode_key_content(&SecretString::from(pem)).expose_secret(),
            pem
        );
    }
}
