//! Slack: a Block Kit message posted to an incoming webhook.
//!
//! Slack answers `200 ok`, or a status with an error word (`400 invalid_payload`,
//! `403 action_prohibited`, `404 no_service`, `410 channel_is_archived`, `429` with
//! `Retry-After`, `500 rollup_error`). 429 and 5xx are retried (a 429 was refused before
//! anything was posted; a rare duplicate alert after a 5xx beats a lost one); 4xx are final.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use syncctl_http::{HttpClient, HttpError, Request, RetryPolicy};

use crate::{Alert, NotifyError, SlackSettings};

/// Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
const HEADER_MAX: usize = 150;
const SECTION_TEXT_MAX: usize = 3000;
const FIELD_TEXT_MAX: usize = 2000;
const FIELDS_MAX: usize = 10;
const BUTTON_TEXT_MAX: usize = 75;
const CONTEXT_TEXT_MAX: usize = 2000;

/// Sends alerts to one incoming webhook.
#[derive(Debug, Clone)]
pub struct SlackSender {
    client: HttpClient,
    url: String,
}

impl SlackSender {
    /// A sender whose retries fit within a few seconds.
    ///
    /// # Errors
    /// [`NotifyError::Invalid`] when the URL cannot be used.
    pub fn new(settings: &SlackSettings) -> Result<Self, NotifyError> {
        let url = settings.webhook_url.expose_secret().to_owned();
        let origin = origin_of(&url).ok_or(NotifyError::Invalid {
            name: "SLACK_WEBHOOK_URL (--slack-webhook-url)",
            message: "must be a full http(s) URL".into(),
        })?;
        let client = HttpClient::builder("slack", origin)
            .timeout(Duration::from_secs(4))
            .connect_timeout(Duration::from_secs(2))
            .retry(RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
                max_retry_after: Duration::from_secs(3),
            })
            .build()
            .map_err(|_| NotifyError::Invalid {
                name: "SLACK_WEBHOOK_URL (--slack-webhook-url)",
                message: "cannot build an HTTP client for it".into(),
            })?;
        Ok(Self { client, url })
    }

    /// Posts the alert; returns how many attempts it took.
    ///
    /// # Errors
    /// [`NotifyError::SlackStatus`] or [`NotifyError::SlackTransport`]; neither names the URL.
    pub async fn send(&self, alert: &Alert) -> Result<u32, NotifyError> {
        // Idempotent for our purposes: see the module docs on duplicates after a 5xx.
        let req = Request::post(self.url.clone())
            .json(block_kit(alert))
            .retry_safe();
        match self.client.send_raw(req).await {
            Ok(resp) if resp.status.is_success() => Ok(resp.attempts()),
            Ok(resp) => Err(NotifyError::SlackStatus {
                status: resp.status.as_u16(),
                body: short(&resp.text(), 120),
            }),
            Err(e) => Err(NotifyError::SlackTransport(describe(&e))),
        }
    }
}

/// The error without method/path (the path is the webhook's secret).
fn describe(e: &HttpError) -> String {
    match e {
        HttpError::Transport { message, .. } => message.clone(),
        other => other.class().to_string(),
    }
}

use syncctl_core::Classified as _;

fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = &rest[..rest.find('/').unwrap_or(rest.len())];
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with `…` when cut.
fn short(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The Block Kit payload: header, error section, fields with key figures, context with run id
/// and orchestrator, link buttons; `text` is the notification fallback.
#[must_use]
pub fn block_kit(alert: &Alert) -> Value {
    let icon = if alert.is_failure() {
        ":red_circle:"
    } else {
        ":large_green_circle:"
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": short(&alert.title, HEADER_MAX), "emoji": true}
    })];
    if let Some(msg) = &alert.message {
        let label = match &alert.error_class {
            Some(class) => format!("*Error ({class})*"),
            None => "*Message*".to_owned(),
        };
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": short(&format!("{label}\n{}", escape(msg)), SECTION_TEXT_MAX)}
        }));
    }
    let fields: Vec<Value> = alert
        .facts
        .iter()
        .map(|(k, v)| {
            json!({"type": "mrkdwn", "text": short(&format!("*{}*\n{}", escape(k), escape(v)), FIELD_TEXT_MAX)})
        })
        .collect();
    for chunk in fields.chunks(FIELDS_MAX) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    if !alert.warnings.is_empty() {
        let list: Vec<String> = alert
            .warnings
            .iter()
            .take(5)
            .map(|w| format!("• {}", escape(w)))
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": short(&format!("*Warnings ({})*\n{}", alert.warnings.len(), list.join("\n")), SECTION_TEXT_MAX)}
        }));
    }
    let mut context = Vec::new();
    if let Some(id) = &alert.run_id {
        context.push(format!("run id `{id}`"));
    }
    if let Some(k) = &alert.idempotency_key {
        context.push(format!("key `{}`", escape(k)));
    }
    if let Some(c) = alert.context_line() {
        context.push(escape(&c));
    }
    if let Some(t) = &alert.finished_at {
        context.push(format!("finished {t}"));
    }
    if !context.is_empty() {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": short(&context.join(" · "), CONTEXT_TEXT_MAX)}]
        }));
    }
    if !alert.links.is_empty() {
        let buttons: Vec<Value> = alert
            .links
            .iter()
            .take(5)
            .map(|l| {
                json!({
                    "type": "button",
                    "text": {"type": "plain_text", "text": short(&l.label, BUTTON_TEXT_MAX)},
                    "url": l.url
                })
            })
            .collect();
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    let fallback = match &alert.message {
        Some(m) => format!("{icon} {}: {}", alert.title, short(m, 300)),
        None => format!("{icon} {}", alert.title),
    };
    json!({"text": escape(&fallback), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use syncctl_core::Status;

    use super::*;
    use crate::Link;

    #[test]
    fn payload_respects_block_kit_limits_and_escapes() {
        let mut a = Alert::new("x".repeat(400), Status::Failed);
        a.message = Some("bad <tag> & stuff".into());
        a.error_class = Some("remote_failed".into());
        a.facts = (0..13).map(|i| (format!("k{i}"), "v".into())).collect();
        a.links.push(Link {
            label: "Databricks run".into(),
            url: "https://ws/#job/1/run/2".into(),
        });
        let p = block_kit(&a);
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            150
        );
        assert_eq!(
            blocks[1]["text"]["text"],
            "*Error (remote_failed)*\nbad &lt;tag&gt; &amp; stuff"
        );
        assert_eq!(blocks[2]["fields"].as_array().unwrap().len(), 10);
        assert_eq!(blocks[3]["fields"].as_array().unwrap().len(), 3);
        assert_eq!(blocks[4]["type"], "actions");
        assert!(p["text"].as_str().unwrap().starts_with(":red_circle: "));
    }

    #[test]
    fn origin_keeps_scheme_and_host_only() {
        assert_eq!(
            origin_of("https://hooks.slack.com/services/T/B/x").as_deref(),
            Some("https://hooks.slack.com")
        );
        assert_eq!(origin_of("nope"), None);
    }
}
