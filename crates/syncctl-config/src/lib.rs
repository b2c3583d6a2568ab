//! Settings resolution for syncctl: flags beat the process environment, the environment beats
//! `--env-file` files. Also secrets, `${VAR}` interpolation and YAML loading.
//!
//! Nothing here reads `std::env` on its own: the binary snapshots the process environment once
//! into an [`Env`] and hands it down, so tests can build any environment they like.

mod env;
mod interpolate;
mod yaml;

pub use env::{Env, EnvFileError};
pub use interpolate::{InterpolateError, interpolate};
pub use secrecy::{ExposeSecret, SecretString};
pub use syncctl_core::redact::redact_userinfo;
pub use yaml::{YamlError, from_yaml_str, from_yaml_str_interpolated};

/// The largest config, env or values file syncctl reads (1 MiB): real ones are a few KB, and
/// `--config /dev/zero` must fail at once instead of growing until memory runs out.
pub const MAX_INPUT_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a UTF-8 text file of at most `max` bytes; works on pipes and devices, reading at most
/// `max + 1` bytes.
///
/// # Errors
/// The file cannot be read, is larger than `max` bytes (`InvalidData`, "larger than …"), or is
/// not UTF-8.
pub fn read_capped(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes; refused"),
        ));
    }
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Why a setting could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is missing.
    #[error("missing {what}: pass {flag} or set {env}")]
    Missing {
        /// What the setting is, in words.
        what: &'static str,
        /// The flag that sets it.
        flag: &'static str,
        /// The environment variable that sets it.
        env: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The flag or variable name.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An env file could not be read.
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    /// A YAML file could not be parsed.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// `${VAR}` interpolation failed.
    #[error(transparent)]
    Interpolate(#[from] InterpolateError),
}

impl syncctl_core::Classified for ConfigError {
    fn class(&self) -> syncctl_core::ErrorClass {
        syncctl_core::ErrorClass::Config
    }
}

/// Parses a service base URL: it must be absolute with an `http` or `https` scheme.
///
/// # Errors
/// Returns [`ConfigError::Invalid`] naming `name` when the value is not such a URL.
pub fn parse_base_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim().trim_end_matches('/');
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !v.chars().any(char::is_whitespace);
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ConfigError::Invalid {
            name: name.to_owned(),
            reason: format!(
                "{:?} is not a full URL; write it with its scheme, like https://host.example.com",
                redact_userinfo(value)
            ),
        })
    }
}

/// Parses a SaaS API origin, `scheme://host[:port]` with no path, query, fragment or user
/// information: the connectors add the vendor's paths themselves, so a path here would be
/// silently doubled.
///
/// # Errors
/// Returns [`ConfigError::Invalid`] naming `name` when the value is not such a URL.
pub fn parse_origin_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let url = parse_base_url(name, value)?;
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(ConfigError::Invalid {
            name: name.to_owned(),
            reason: format!(
                "must be scheme://host:port with no path (syncctl adds the API's paths), got {:?}",
                redact_userinfo(value)
            ),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_capped_even_on_endless_devices() {
        let e = read_capped(std::path::Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, "x=1\n").unwrap();
        assert_eq!(read_capped(&p, 4).unwrap(), "x=1\n");
        assert!(read_capped(&p, 3).is_err());
    }

    #[test]
    fn origins_have_no_path_query_or_userinfo() {
        assert_eq!(
            parse_origin_url("X", "http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        for bad in [
            "https://h/v3",
            "https://h?x=1",
            "https://h#f",
            "https://u:pw@h",
            "h:9",
        ] {
            let e = parse_origin_url("X_BASE_URL", bad).unwrap_err().to_string();
            assert!(e.contains("X_BASE_URL") && !e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn base_urls_need_a_scheme() {
        assert_eq!(
            parse_base_url("X", "http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            parse_base_url("X", "https://h.example.com/api").unwrap(),
            "https://h.example.com/api"
        );
        for bad in [
            "h.example.com",
            "ftp://h",
            "https://",
            "http:///x",
            "https://a b",
        ] {
            let e = parse_base_url("DATABRICKS_HOST", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("DATABRICKS_HOST") && e.contains("scheme"), "{e}");
        }
    }

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            redact_userinfo("postgres://u:pw@h:5432/db"),
            "postgres://***@h:5432/db"
        );
        assert_eq!(redact_userinfo("https://h/x@y"), "https://h/x@y");
    }
}
