//! Last-line-of-defence redaction: replaces known secret values in any text we emit.
//!
//! Secrets are carried as `secrecy::SecretString` everywhere, so they should never reach a
//! formatter. The redactor is the belt to those braces: the binary registers every secret value
//! it loads and passes all output (result, logs, error messages) through it.

/// Replaces registered secret values with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    // Longest first, so a secret containing another is replaced whole.
    secrets: Vec<String>,
}

/// Values shorter than this are not registered: replacing `1` or `ab` everywhere would mangle
/// output without protecting anything real.
const MIN_SECRET_LEN: usize = 4;

impl Redactor {
    /// An empty redactor.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value (ignored when shorter than 4 characters). A multi-line secret
    /// (a PEM key) is also registered line by line, because logs may carry a single line of it.
    pub fn add(&mut self, secret: &str) {
        self.add_one(secret);
        if secret.trim().contains('\n') {
            for line in secret.lines() {
                self.add_one(line);
            }
        }
    }

    /// Registers the password inside a URL such as `postgres://user:password@host/db`.
    pub fn add_url_password(&mut self, url: &str) {
        if let Some(pw) = url_password(url) {
            self.add(pw);
        }
    }

    fn add_one(&mut self, secret: &str) {
        let s = secret.trim();
        if s.len() >= MIN_SECRET_LEN && !self.secrets.iter().any(|x| x == s) {
            self.secrets.push(s.to_owned());
            self.secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    /// Whether any secret is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every registered secret replaced by `***`.
    #[must_use]
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// Whether an environment variable name looks like it holds a secret.
    #[must_use]
    pub fn is_secret_name(name: &str) -> bool {
        let n = name.to_ascii_uppercase();
        [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "PASSPHRASE",
            "PRIVATE_KEY",
            "API_KEY",
            "WEBHOOK",
            "AWS_KEY",
            "SAS",
            "CREDENTIAL",
            "STATE_KEY",
        ]
        .iter()
        .any(|w| n.contains(w))
            || n.starts_with("AIRFLOW_CONN_")
    }
}

/// The password in `scheme://user:password@host…`, if any.
#[must_use]
pub fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

/// `url` with its `user:password@` part replaced by `***@`, for messages about it.
#[must_use]
pub fn redact_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_longest_first() {
        let mut r = Redactor::new();
        r.add("abcd");
        r.add("abcdefgh");
        r.add("xy");
        assert_eq!(r.redact("t=abcdefgh u=abcd v=xy"), "t=*** u=*** v=xy");
    }

    #[test]
    fn multi_line_secrets_are_matched_line_by_line() {
        let mut r = Redactor::new();
        r.add("-----BEGIN KEY-----\nMIIEabcdefgh\n-----END KEY-----");
        assert_eq!(r.redact("log: MIIEabcdefgh"), "log: ***");
    }

    #[test]
    fn url_passwords_and_userinfo() {
        assert_eq!(url_password("postgres://u:pw1234@h/db"), Some("pw1234"));
        assert_eq!(url_password("https://h/x:y@z"), None);
        assert_eq!(url_password("sqlite://crm.db"), None);
        assert_eq!(
            redact_userinfo("postgres://u:pw@h:5432/db"),
            "postgres://***@h:5432/db"
        );
        assert_eq!(redact_userinfo("https://h/x@y"), "https://h/x@y");
        let mut r = Redactor::new();
        r.add_url_password("mysql://root:hunter22@db/x");
        assert_eq!(r.redact("hunter22"), "***");
    }

    #[test]
    fn secret_names() {
        for n in [
            "DATABRICKS_TOKEN",
            "AIRBYTE_CLIENT_SECRET",
            "AWS_SECRET_KEY",
            "AWS_KEY",
            "SLACK_WEBHOOK_URL",
            "AIRFLOW_CONN_SNOWFLAKE",
            "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
            "SYNCCTL_STATE_KEY",
        ] {
            assert!(Redactor::is_secret_name(n), "{n}");
        }
        for n in ["DATABRICKS_HOST", "AIRBYTE_API_URL", "SNOWFLAKE_USER"] {
            assert!(!Redactor::is_secret_name(n), "{n}");
        }
    }
}
