//! Email: one message per recipient, plain text and HTML alternatives, over SMTP (lettre on
//! rustls with the platform verifier, the same TLS stack as the HTTP clients).
//!
//! A 4xx SMTP reply means the server did not take the message, and a connection that could
//! not be opened sent nothing, so both are retried; a 5xx reply is final.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::{Alert, EmailSettings, NotifyError, SmtpTls};

/// Attempts per recipient.
const ATTEMPTS: u32 = 3;
/// Pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Sends alerts to every configured recipient.
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    recipients: Vec<Mailbox>,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .field("recipients", &self.recipients.len())
            .finish_non_exhaustive()
    }
}

impl EmailSender {
    /// A sender for these settings (nothing is connected yet).
    ///
    /// # Errors
    /// [`NotifyError::Invalid`] when the CA file is not PEM or TLS cannot be set up.
    pub fn new(s: &EmailSettings) -> Result<Self, NotifyError> {
        let invalid = |name: &'static str, message: String| NotifyError::Invalid { name, message };
        let tls = if s.tls == SmtpTls::None {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    invalid(
                        "SMTP_CA_FILE (--smtp-ca-file)",
                        format!("not a PEM certificate: {e}"),
                    )
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| invalid("SMTP_TLS (--smtp-tls)", format!("cannot set up TLS: {e}")))?;
            match s.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(4)));
        if let (Some(user), Some(pw)) = (&s.username, &s.password) {
            b = b.credentials(Credentials::new(
                user.clone(),
                pw.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: b.build(),
            from: s.from.clone(),
            recipients: s.recipients.clone(),
        })
    }

    /// Sends one message per recipient; one result per recipient, in order.
    pub async fn send(&self, alert: &Alert) -> Vec<(String, Result<u32, NotifyError>)> {
        let text = render_text(alert);
        let html = render_html(alert);
        let mut out = Vec::with_capacity(self.recipients.len());
        for to in &self.recipients {
            let result = self.send_one(alert, to, &text, &html).await;
            out.push((to.email.to_string(), result));
        }
        out
    }

    async fn send_one(
        &self,
        alert: &Alert,
        to: &Mailbox,
        text: &str,
        html: &str,
    ) -> Result<u32, NotifyError> {
        let fail = |message: String| NotifyError::Smtp {
            recipient: to.email.to_string(),
            message,
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(&alert.title)
            .header(header::Date::now());
        if let Some(id) = &alert.run_id {
            builder = builder.message_id(Some(format!(
                "<{id}.{}@syncctl>",
                to.email.to_string().replace(['@', '<', '>'], ".")
            )));
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                text.to_owned(),
                html.to_owned(),
            ))
            .map_err(|e| fail(format!("cannot build the message: {e}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.transport.send(message.clone()).await {
                Ok(_) => return Ok(attempt),
                Err(e) => {
                    let retry = e.is_transient() || e.is_timeout() || is_connect_failure(&e);
                    if !retry || attempt >= ATTEMPTS {
                        return Err(fail(describe(&e)));
                    }
                    tracing::debug!(attempt, error = %describe(&e), "email not sent; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
}

/// Whether the connection could not be opened at all (nothing was sent).
fn is_connect_failure(e: &lettre::transport::smtp::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            );
        }
        src = s.source();
    }
    false
}

/// lettre's error with its cause chain; it never includes credentials.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let c_text = c.to_string();
        if !s.contains(&c_text) {
            s.push_str(": ");
            s.push_str(&c_text);
        }
        src = c.source();
    }
    s
}

/// The plain-text body.
#[must_use]
pub fn render_text(a: &Alert) -> String {
    let mut s = format!("{}\n{}\n\n", a.title, "=".repeat(a.title.chars().count()));
    if let Some(m) = &a.message {
        match &a.error_class {
            Some(c) => s.push_str(&format!("Error ({c}): {m}\n\n")),
            None => s.push_str(&format!("{m}\n\n")),
        }
    }
    for (k, v) in &a.facts {
        s.push_str(&format!("{k}: {v}\n"));
    }
    if !a.warnings.is_empty() {
        s.push_str("\nWarnings:\n");
        for w in &a.warnings {
            s.push_str(&format!("  - {w}\n"));
        }
    }
    s.push('\n');
    if let Some(id) = &a.run_id {
        s.push_str(&format!("Run id: {id}\n"));
    }
    if let Some(k) = &a.idempotency_key {
        s.push_str(&format!("Idempotency key: {k}\n"));
    }
    for (k, v) in &a.context {
        s.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(t) = &a.finished_at {
        s.push_str(&format!("Finished: {t}\n"));
    }
    for l in &a.links {
        s.push_str(&format!("{}: {}\n", l.label, l.url));
    }
    s
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML body (inline styles only: mail clients drop style sheets).
#[must_use]
pub fn render_html(a: &Alert) -> String {
    let colour = if a.is_failure() { "#c0392b" } else { "#1e8449" };
    let mut s = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\
         <h2 style=\"color:{colour}\">{}</h2>",
        html_escape(&a.title)
    );
    if let Some(m) = &a.message {
        let label = a.error_class.as_ref().map_or_else(String::new, |c| {
            format!("<b>Error ({})</b>: ", html_escape(c))
        });
        s.push_str(&format!("<p>{label}{}</p>", html_escape(m)));
    }
    let mut rows: Vec<(String, String)> = a.facts.clone();
    if let Some(id) = &a.run_id {
        rows.push(("Run id".into(), id.clone()));
    }
    if let Some(k) = &a.idempotency_key {
        rows.push(("Idempotency key".into(), k.clone()));
    }
    rows.extend(a.context.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(t) = &a.finished_at {
        rows.push(("Finished".into(), t.clone()));
    }
    s.push_str("<table cellpadding=\"4\" style=\"border-collapse:collapse\">");
    for (k, v) in rows {
        s.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            html_escape(&k),
            html_escape(&v)
        ));
    }
    s.push_str("</table>");
    if !a.warnings.is_empty() {
        s.push_str("<p><b>Warnings</b></p><ul>");
        for w in &a.warnings {
            s.push_str(&format!("<li>{}</li>", html_escape(w)));
        }
        s.push_str("</ul>");
    }
    for l in &a.links {
        s.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>",
            html_escape(&l.url),
            html_escape(&l.label)
        ));
    }
    s.push_str("</body></html>");
    s
}

#[cfg(test)]
mod tests {
    use syncctl_core::Status;

    use super::*;

    #[test]
    fn bodies_carry_everything_and_html_is_escaped() {
        let mut a = Alert::new("syncctl sync run failed", Status::Failed);
        a.message = Some("row <1> & more".into());
        a.error_class = Some("remote_failed".into());
        a.facts.push(("Sync".into(), "contacts".into()));
        a.run_id = Some("r-1".into());
        a.context.insert("airflow_dag_id".into(), "etl".into());
        let t = render_text(&a);
        assert!(t.contains("Error (remote_failed): row <1> & more"));
        assert!(t.contains("Sync: contacts"));
        assert!(t.contains("airflow_dag_id: etl"));
        let h = render_html(&a);
        assert!(h.contains("row &lt;1&gt; &amp; more"));
        assert!(h.contains("<th align=\"left\">Run id</th><td>r-1</td>"));
    }
}
