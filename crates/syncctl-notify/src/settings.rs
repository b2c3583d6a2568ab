//! Alert and metrics settings, resolved from one lookup over the seed's variable names.
//!
//! The binary passes a lookup in which flags sit over the environment and the environment over
//! `--env-file` files, so this module decides meaning once for every source.
//!
//! | variable | flag | meaning |
//! |---|---|---|
//! | `SYNCCTL_NOTIFY` | `--notify` | `on-failure` (default), `always`, `never` |
//! | `ENABLE_SLACK` | `--enable-slack` | `true`/`false`; unset means "on when a webhook is set" |
//! | `SLACK_WEBHOOK_URL` | `--slack-webhook-url` | incoming-webhook URL (secret) |
//! | `ENABLE_EMAIL` | `--enable-email` | `true`/`false`; unset means "on when ALERT_EMAILS is set" |
//! | `ALERT_EMAILS` | `--alert-emails` | comma-separated recipients |
//! | `SMTP_HOST`, `SMTP_PORT` | `--smtp-host`, `--smtp-port` | mail server (port default by TLS mode) |
//! | `SMTP_USERNAME`, `SMTP_PASSWORD` | `--smtp-username`, `--smtp-password` | AUTH (password is secret) |
//! | `SMTP_FROM` | `--smtp-from` | sender address |
//! | `SMTP_TLS` | `--smtp-tls` | `starttls` (default), `tls`, `none` |
//! | `SMTP_CA_FILE` | `--smtp-ca-file` | extra trusted CA (PEM) for an internal relay |
//! | `PROMETHEUS_PUSHGATEWAY_URL` | `--pushgateway` | Pushgateway base URL |
//! | `SYNCCTL_METRICS_FILE` | `--metrics-file` | node_exporter textfile to write |

use std::path::PathBuf;

use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use syncctl_core::{Redactor, Status};

use crate::NotifyError;

/// When automatic alerts are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyPolicy {
    /// When a run did not succeed (failed, timed out, cancelled).
    #[default]
    OnFailure,
    /// After every run.
    Always,
    /// Never.
    Never,
}

impl NotifyPolicy {
    /// Parses `on-failure`, `always` or `never`.
    ///
    /// # Errors
    /// [`NotifyError::Invalid`] for anything else.
    pub fn parse(value: &str) -> Result<Self, NotifyError> {
        match value.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "on-failure" => Ok(Self::OnFailure),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(NotifyError::Invalid {
                name: "SYNCCTL_NOTIFY (--notify)",
                message: format!("must be on-failure, always or never, got {other:?}"),
            }),
        }
    }

    /// Whether a run that ended with `status` is alerted.
    #[must_use]
    pub fn wants(self, status: Status) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::OnFailure => is_failure(status),
        }
    }
}

/// Whether a status is a failure for alerting (and `syncctl_run_status` 0).
#[must_use]
pub fn is_failure(status: Status) -> bool {
    matches!(
        status,
        Status::Failed | Status::TimedOut | Status::Cancelled
    )
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection, upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption (a local relay on port 25).
    None,
}

impl SmtpTls {
    fn parse(value: &str) -> Result<Self, NotifyError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(Self::StartTls),
            "tls" | "ssl" | "smtps" => Ok(Self::Tls),
            "none" | "off" | "plain" => Ok(Self::None),
            other => Err(NotifyError::Invalid {
                name: "SMTP_TLS (--smtp-tls)",
                message: format!("must be none, starttls or tls, got {other:?}"),
            }),
        }
    }

    /// The usual port for this mode.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }

    /// The mode's name as `SMTP_TLS` spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartTls => "starttls",
            Self::Tls => "tls",
            Self::None => "none",
        }
    }
}

/// Slack incoming-webhook settings.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// The webhook URL; its path is the credential.
    pub webhook_url: SecretString,
}

/// SMTP settings.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// Mail server host.
    pub host: String,
    /// Mail server port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// AUTH user name.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<SecretString>,
    /// Sender.
    pub from: Mailbox,
    /// Recipients; each gets its own message.
    pub recipients: Vec<Mailbox>,
    /// Extra trusted CA certificate (PEM), for relays with a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

/// Where alerts go and when.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// When automatic alerts are sent.
    pub policy: NotifyPolicy,
    /// Slack, when enabled.
    pub slack: Option<SlackSettings>,
    /// Email, when enabled.
    pub email: Option<EmailSettings>,
}

/// Where metrics go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Pushgateway base URL.
    pub pushgateway: Option<String>,
    /// node_exporter textfile path.
    pub file: Option<PathBuf>,
}

fn get(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, NotifyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(NotifyError::Invalid {
            name,
            message: format!("must be true or false, got {other:?}"),
        }),
    }
}

fn mailbox(name: &'static str, value: &str) -> Result<Mailbox, NotifyError> {
    value.trim().parse().map_err(|e| NotifyError::Invalid {
        name,
        message: format!("{:?} is not an email address ({e})", value.trim()),
    })
}

impl AlertSettings {
    /// Resolves alert settings; every problem in an enabled channel is an error, so a broken
    /// alert setup is refused before the command runs instead of failing silently later.
    ///
    /// # Errors
    /// [`NotifyError::Invalid`] or [`NotifyError::Missing`].
    pub fn resolve(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, NotifyError> {
        let policy = match get(&lookup, "SYNCCTL_NOTIFY") {
            Some(v) => NotifyPolicy::parse(&v)?,
            None => NotifyPolicy::default(),
        };
        let webhook = get(&lookup, "SLACK_WEBHOOK_URL");
        let slack_on = match get(&lookup, "ENABLE_SLACK") {
            Some(v) => parse_bool("ENABLE_SLACK (--enable-slack)", &v)?,
            None => webhook.is_some(),
        };
        let slack = if slack_on {
            let url = webhook.ok_or(NotifyError::Missing {
                channel: "Slack",
                missing: "SLACK_WEBHOOK_URL (--slack-webhook-url)",
            })?;
            let url = url.trim().to_owned();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(NotifyError::Invalid {
                    name: "SLACK_WEBHOOK_URL (--slack-webhook-url)",
                    message: "must be a full http(s) URL".into(),
                });
            }
            Some(SlackSettings {
                webhook_url: SecretString::from(url),
            })
        } else {
            None
        };
        let recipients = get(&lookup, "ALERT_EMAILS");
        let email_on = match get(&lookup, "ENABLE_EMAIL") {
            Some(v) => parse_bool("ENABLE_EMAIL (--enable-email)", &v)?,
            None => recipients.is_some(),
        };
        let email = if email_on {
            Some(Self::email(&lookup, recipients)?)
        } else {
            None
        };
        Ok(Self {
            policy,
            slack,
            email,
        })
    }

    fn email(
        lookup: &impl Fn(&str) -> Option<String>,
        recipients: Option<String>,
    ) -> Result<EmailSettings, NotifyError> {
        let missing = |m| NotifyError::Missing {
            channel: "email",
            missing: m,
        };
        let recipients = recipients.ok_or(missing("ALERT_EMAILS (--alert-emails)"))?;
        let recipients = recipients
            .split([',', ';'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| mailbox("ALERT_EMAILS (--alert-emails)", r))
            .collect::<Result<Vec<_>, _>>()?;
        if recipients.is_empty() {
            return Err(missing("ALERT_EMAILS (--alert-emails)"));
        }
        let host = get(lookup, "SMTP_HOST").ok_or(missing("SMTP_HOST (--smtp-host)"))?;
        let tls = match get(lookup, "SMTP_TLS") {
            Some(v) => SmtpTls::parse(&v)?,
            None => SmtpTls::default(),
        };
        let port = match get(lookup, "SMTP_PORT") {
            Some(v) => v
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| NotifyError::Invalid {
                    name: "SMTP_PORT (--smtp-port)",
                    message: format!("must be a port number, got {v:?}"),
                })?,
            None => tls.default_port(),
        };
        let from = get(lookup, "SMTP_FROM").ok_or(missing("SMTP_FROM (--smtp-from)"))?;
        let from = mailbox("SMTP_FROM (--smtp-from)", &from)?;
        let username = get(lookup, "SMTP_USERNAME");
        let password = get(lookup, "SMTP_PASSWORD").map(SecretString::from);
        if username.is_some() != password.is_some() {
            return Err(NotifyError::Invalid {
                name: "SMTP_USERNAME/SMTP_PASSWORD",
                message: "set both for AUTH, or neither".into(),
            });
        }
        let ca_pem = match get(lookup, "SMTP_CA_FILE") {
            Some(path) => Some(
                std::fs::read(path.trim()).map_err(|e| NotifyError::Invalid {
                    name: "SMTP_CA_FILE (--smtp-ca-file)",
                    message: format!("cannot read {}: {e}", path.trim()),
                })?,
            ),
            None => None,
        };
        Ok(EmailSettings {
            host: host.trim().to_owned(),
            port,
            tls,
            username,
            password,
            from,
            recipients,
            ca_pem,
        })
    }

    /// Whether any channel is enabled.
    #[must_use]
    pub fn any_channel(&self) -> bool {
        self.slack.is_some() || self.email.is_some()
    }

    /// Registers the webhook URL, its path (logged by HTTP debug lines) and the SMTP password.
    pub fn register_secrets(&self, redactor: &mut Redactor) {
        if let Some(s) = &self.slack {
            let url = s.webhook_url.expose_secret();
            redactor.add(url);
            if let Some(path) = url_path(url) {
                redactor.add(path);
            }
        }
        if let Some(e) = &self.email
            && let Some(p) = &e.password
        {
            redactor.add(p.expose_secret());
        }
    }
}

/// The path (and query) of a URL: for a Slack webhook, the part that is the credential.
fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    (path.len() > 1).then_some(path)
}

impl MetricsSettings {
    /// Resolves the Pushgateway URL and the metrics file.
    ///
    /// # Errors
    /// [`NotifyError::Invalid`] when the Pushgateway URL has no scheme.
    pub fn resolve(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, NotifyError> {
        let pushgateway = match get(&lookup, "PROMETHEUS_PUSHGATEWAY_URL") {
            Some(u) => {
                let u = u.trim().trim_end_matches('/').to_owned();
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(NotifyError::Invalid {
                        name: "PROMETHEUS_PUSHGATEWAY_URL (--pushgateway)",
                        message: "must be a full http(s) URL such as http://pushgateway:9091"
                            .into(),
                    });
                }
                Some(u)
            }
            None => None,
        };
        Ok(Self {
            pushgateway,
            file: get(&lookup, "SYNCCTL_METRICS_FILE").map(|p| PathBuf::from(p.trim())),
        })
    }

    /// Registers a password inside the Pushgateway URL (`https://user:pw@host`).
    pub fn register_secrets(&self, redactor: &mut Redactor) {
        if let Some(u) = &self.pushgateway {
            redactor.add_url_password(u);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn nothing_set_means_no_channel_and_on_failure() {
        let s = AlertSettings::resolve(lookup(&[])).unwrap();
        assert!(!s.any_channel());
        assert_eq!(s.policy, NotifyPolicy::OnFailure);
        assert!(s.policy.wants(Status::Failed));
        assert!(s.policy.wants(Status::TimedOut));
        assert!(!s.policy.wants(Status::Succeeded));
        assert!(!s.policy.wants(Status::Skipped));
        assert!(NotifyPolicy::Always.wants(Status::Succeeded));
        assert!(!NotifyPolicy::Never.wants(Status::Failed));
    }

    #[test]
    fn seed_names_enable_both_channels() {
        let s = AlertSettings::resolve(lookup(&[
            ("ENABLE_SLACK", "true"),
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/abcdefgh",
            ),
            ("ENABLE_EMAIL", "true"),
            ("ALERT_EMAILS", "ops@example.com, data@example.com"),
            ("SMTP_HOST", "smtp.example.com"),
            ("SMTP_USERNAME", "alerts"),
            ("SMTP_PASSWORD", "s3cret-pw"),
            ("SMTP_FROM", "syncctl <alerts@example.com>"),
            ("SMTP_TLS", "tls"),
            ("SYNCCTL_NOTIFY", "always"),
        ]))
        .unwrap();
        assert_eq!(s.policy, NotifyPolicy::Always);
        let e = s.email.as_ref().unwrap();
        assert_eq!(e.recipients.len(), 2);
        assert_eq!(e.port, 465);
        assert_eq!(e.tls, SmtpTls::Tls);
        let mut r = Redactor::new();
        s.register_secrets(&mut r);
        assert_eq!(
            r.redact("POST /services/T0/B0/abcdefgh pw=s3cret-pw"),
            "POST *** pw=***"
        );
    }

    #[test]
    fn enable_false_turns_a_configured_channel_off() {
        let s = AlertSettings::resolve(lookup(&[
            ("ENABLE_SLACK", "false"),
            ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/x"),
        ]))
        .unwrap();
        assert!(s.slack.is_none());
    }

    #[test]
    fn broken_settings_are_refused_with_the_variable_named() {
        let err = |pairs: &[(&str, &str)]| {
            AlertSettings::resolve(lookup(pairs))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("ENABLE_SLACK", "true")]),
            "Slack is enabled but SLACK_WEBHOOK_URL (--slack-webhook-url) is not set"
        );
        assert!(err(&[("ENABLE_SLACK", "maybe")]).contains("must be true or false"));
        assert!(err(&[("SYNCCTL_NOTIFY", "sometimes")]).contains("on-failure, always or never"));
        assert!(err(&[("ALERT_EMAILS", "ops@example.com")]).contains("SMTP_HOST (--smtp-host)"));
        assert!(
            err(&[
                ("ALERT_EMAILS", "not an address"),
                ("SMTP_HOST", "h"),
                ("SMTP_FROM", "a@b.c")
            ])
            .contains("is not an email address")
        );
        let e = err(&[
            ("ALERT_EMAILS", "a@b.c"),
            ("SMTP_HOST", "h"),
            ("SMTP_FROM", "a@b.c"),
            ("SMTP_TLS", "maybe"),
        ]);
        assert!(e.contains("none, starttls or tls"), "{e}");
        let e = err(&[
            ("ALERT_EMAILS", "a@b.c"),
            ("SMTP_HOST", "h"),
            ("SMTP_FROM", "a@b.c"),
            ("SMTP_PASSWORD", "only-password"),
        ]);
        assert!(e.contains("set both"), "{e}");
        assert!(!e.contains("only-password"));
    }

    #[test]
    fn metrics_settings_need_a_scheme() {
        let m =
            MetricsSettings::resolve(lookup(&[("PROMETHEUS_PUSHGATEWAY_URL", "http://pg:9091/")]))
                .unwrap();
        assert_eq!(m.pushgateway.as_deref(), Some("http://pg:9091"));
        assert!(
            MetricsSettings::resolve(lookup(&[("PROMETHEUS_PUSHGATEWAY_URL", "pg:9091")])).is_err()
        );
    }
}
