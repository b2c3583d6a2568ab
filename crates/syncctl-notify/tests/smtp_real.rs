//! Email alerts sent to a real SMTP server (aiosmtpd) on loopback: STARTTLS, implicit TLS,
//! plain, AUTH, one message per recipient with plain-text and HTML parts, transient refusals
//! retried, a wrong password reported without the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use secrecy::SecretString;
use syncctl_core::Status;
use syncctl_notify::{Alert, EmailSender, EmailSettings, SmtpTls};
use syncctl_testkit::receivers::{SmtpMode, SmtpServer};

const PASSWORD: &str = "smtp-Pa55word-42";

fn settings(server: &SmtpServer, tls: SmtpTls, auth: bool) -> EmailSettings {
    EmailSettings {
        host: "localhost".into(),
        port: server.port,
        tls,
        username: auth.then(|| "alerts".to_owned()),
        password: auth.then(|| SecretString::from(PASSWORD)),
        from: "syncctl <alerts@example.com>".parse().unwrap(),
        recipients: vec![
            "ops@example.com".parse().unwrap(),
            "Data Team <data@example.com>".parse().unwrap(),
        ],
        ca_pem: Some(std::fs::read(&server.ca_file).unwrap()),
    }
}

fn alert() -> Alert {
    let mut a = Alert::new("syncctl sync run failed", Status::Failed);
    a.message = Some("target postgres: 3 writes failed <see audit>".into());
    a.error_class = Some("remote_failed".into());
    a.facts.push(("Sync".into(), "contacts".into()));
    a.run_id = Some("0f1e2d3c-run".into());
    a
}

/// The message with quoted-printable soft breaks and escapes undone (enough for ASCII checks).
fn decoded(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::new();
    let b = joined.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(char::from(v));
            i += 3;
            continue;
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    out
}

fn check_mails(server: &SmtpServer, tls: bool, login: Option<&str>) {
    let mails = server.received();
    assert_eq!(mails.len(), 2, "one message per recipient");
    for (m, to) in mails.iter().zip(["ops@example.com", "data@example.com"]) {
        assert_eq!(m.rcpt_tos, [to]);
        assert_eq!(m.mail_from, "alerts@example.com");
        assert_eq!(m.tls, tls);
        assert_eq!(m.login.as_deref(), login);
        let text = decoded(&m.raw);
        assert!(text.contains("Subject: syncctl sync run failed"), "{text}");
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("Content-Type: text/plain"));
        assert!(text.contains("Content-Type: text/html"));
        assert!(
            text.contains("Error (remote_failed): target postgres: 3 writes failed <see audit>")
        );
        assert!(text.contains("target postgres: 3 writes failed &lt;see audit&gt;"));
        assert!(text.contains("Sync: contacts"));
        assert!(!text.contains(PASSWORD));
    }
}

#[tokio::test]
async fn starttls_with_auth_delivers_one_mail_per_recipient() {
    let Some(server) = SmtpServer::start(SmtpMode::StartTls, Some(("alerts", PASSWORD))) else {
        return;
    };
    let results = EmailSender::new(&settings(&server, SmtpTls::StartTls, true))
        .unwrap()
        .send(&alert())
        .await;
    assert_eq!(results.len(), 2, "one result per recipient: {results:?}");
    for (to, r) in &results {
        assert!(r.is_ok(), "{to}: {r:?}");
    }
    check_mails(&server, true, Some("alerts"));
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers() {
    let Some(server) = SmtpServer::start(SmtpMode::Tls, Some(("alerts", PASSWORD))) else {
        return;
    };
    let results = EmailSender::new(&settings(&server, SmtpTls::Tls, true))
        .unwrap()
        .send(&alert())
        .await;
    assert_eq!(results.len(), 2, "one result per recipient: {results:?}");
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    check_mails(&server, true, Some("alerts"));
}

#[tokio::test]
async fn a_plain_relay_without_auth_delivers() {
    let Some(server) = SmtpServer::start(SmtpMode::Plain, None) else {
        return;
    };
    let results = EmailSender::new(&settings(&server, SmtpTls::None, false))
        .unwrap()
        .send(&alert())
        .await;
    assert_eq!(results.len(), 2, "one result per recipient: {results:?}");
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    check_mails(&server, false, None);
}

#[tokio::test]
async fn a_wrong_password_is_reported_per_recipient_without_the_password() {
    let Some(server) = SmtpServer::start(SmtpMode::StartTls, Some(("alerts", "other-password")))
    else {
        return;
    };
    let results = EmailSender::new(&settings(&server, SmtpTls::StartTls, true))
        .unwrap()
        .send(&alert())
        .await;
    assert_eq!(results.len(), 2, "one result per recipient: {results:?}");
    assert!(server.received().is_empty());
    for (to, r) in results {
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with(&format!("email to {to} not sent: ")), "{e}");
        assert!(e.contains("535"), "{e}");
        assert!(!e.contains(PASSWORD), "{e}");
    }
}

#[tokio::test]
async fn starttls_refuses_an_untrusted_certificate() {
    let Some(server) = SmtpServer::start(SmtpMode::StartTls, Some(("alerts", PASSWORD))) else {
        return;
    };
    let mut s = settings(&server, SmtpTls::StartTls, true);
    s.ca_pem = None;
    let results = EmailSender::new(&s).unwrap().send(&alert()).await;
    assert_eq!(results.len(), 2, "one result per recipient: {results:?}");
    assert!(server.received().is_empty());
    assert!(results.iter().all(|(_, r)| r.is_err()), "{results:?}");
}

#[tokio::test]
async fn a_transient_refusal_is_retried() {
    let Some(server) =
        SmtpServer::start_failing_first(SmtpMode::StartTls, Some(("alerts", PASSWORD)), 1)
    else {
        return;
    };
    let results = EmailSender::new(&settings(&server, SmtpTls::StartTls, true))
        .unwrap()
        .send(&alert())
        .await;
    assert_eq!(results.len(), 2, "one result per recipient: {results:?}");
    assert_eq!(results[0].1.as_ref().ok(), Some(&2), "{results:?}");
    assert_eq!(results[1].1.as_ref().ok(), Some(&1), "{results:?}");
    assert_eq!(server.received().len(), 2);
}
