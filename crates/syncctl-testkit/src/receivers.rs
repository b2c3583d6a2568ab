//! Real alert and metrics receivers on loopback, started per test: an SMTP server (aiosmtpd,
//! `tools/alerts/smtp_server.py`) and a Prometheus Pushgateway (Debian's
//! `prometheus-pushgateway`). `scripts/install-alert-tools.sh` installs both and exports
//! `SYNCCTL_TEST_SMTP_PYTHON`, `SYNCCTL_TEST_PUSHGATEWAY_BIN` and
//! `SYNCCTL_TEST_REQUIRE_ALERT_TOOLS=1`; under `scripts/test.sh` a missing tool fails the test,
//! elsewhere the test says why it skipped.
#![allow(clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the testkit lives in `crates/syncctl-testkit`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Where a tool is: `var` if set, else `default` if it exists. `None` (the test should return)
/// only when the run does not require the tools; with `SYNCCTL_TEST_REQUIRE_ALERT_TOOLS=1`
/// a missing tool panics with what to run.
fn tool(var: &str, default: PathBuf, what: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map_or(default, PathBuf::from);
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("SYNCCTL_TEST_REQUIRE_ALERT_TOOLS").is_ok_and(|v| v == "1");
    let msg = format!(
        "{what} not found at {} ({var}); run `bash scripts/install-alert-tools.sh`",
        path.display()
    );
    assert!(!required, "{msg}");
    eprintln!("skipping: {msg}");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// How the test SMTP server secures connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// Plain SMTP.
    Plain,
    /// STARTTLS required before MAIL FROM.
    StartTls,
    /// Implicit TLS (SMTPS).
    Tls,
}

/// A message the SMTP server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The raw RFC 5322 message.
    pub raw: String,
    /// `MAIL FROM`.
    pub mail_from: String,
    /// `RCPT TO`s.
    pub rcpt_tos: Vec<String>,
    /// Whether the session was encrypted.
    pub tls: bool,
    /// The AUTH login, if any.
    pub login: Option<String>,
}

/// A running aiosmtpd server; stopped on drop.
pub struct SmtpServer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The port on 127.0.0.1.
    pub port: u16,
    out: tempfile_dir::Dir,
    /// The CA certificate (PEM) that signed the server's certificate (for `localhost`).
    pub ca_file: PathBuf,
}

/// A tiny temp-dir holder (the testkit has no tempfile dependency).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    /// Removed on drop.
    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "syncctl-{tag}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&p).expect("create temp dir");
            Self(p)
        }
        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl SmtpServer {
    /// Starts a server in `mode`, requiring AUTH with `user`/`password` when given; `None`
    /// when the tools are not installed and not required.
    #[must_use]
    pub fn start(mode: SmtpMode, auth: Option<(&str, &str)>) -> Option<Self> {
        Self::start_failing_first(mode, auth, 0)
    }

    /// Like [`Self::start`], refusing the first `fail_first` messages with a transient 451.
    #[must_use]
    pub fn start_failing_first(
        mode: SmtpMode,
        auth: Option<(&str, &str)>,
        fail_first: u32,
    ) -> Option<Self> {
        let root = repo_root();
        let python = tool(
            "SYNCCTL_TEST_SMTP_PYTHON",
            root.join("tools/alerts/venv/bin/python"),
            "the aiosmtpd venv",
        )?;
        let script = root.join("tools/alerts/smtp_server.py");
        let out = tempfile_dir::Dir::new("smtp");
        let certs = out.path().join("certs");
        let status = Command::new(&python)
            .arg(&script)
            .arg("--gen-certs")
            .arg(&certs)
            .status()
            .expect("run smtp_server.py --gen-certs");
        assert!(status.success(), "generating test certificates failed");
        let port = free_port();
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .args(["--port", &port.to_string()])
            .args([
                "--tls",
                match mode {
                    SmtpMode::Plain => "none",
                    SmtpMode::StartTls => "starttls",
                    SmtpMode::Tls => "tls",
                },
            ])
            .arg("--certs")
            .arg(&certs)
            .arg("--out")
            .arg(out.path().join("mail"))
            .args(["--fail-first", &fail_first.to_string()]);
        if let Some((u, p)) = auth {
            cmd.args(["--user", u, "--password", p]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start smtp_server.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read READY line");
        assert!(
            line.starts_with("READY"),
            "SMTP server did not start: {line:?}"
        );
        let stdin = child.stdin.take();
        Some(Self {
            child,
            stdin,
            port,
            ca_file: certs.join("ca.pem"),
            out,
        })
    }

    /// Every accepted message, in arrival order.
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedMail> {
        let dir = self.out.path().join("mail");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "json"));
        names.sort();
        names
            .iter()
            .map(|meta| {
                let m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(meta).expect("read meta"))
                        .expect("meta json");
                ReceivedMail {
                    raw: std::fs::read_to_string(meta.with_extension("eml")).expect("read eml"),
                    mail_from: m["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: m["rcpt_tos"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    tls: m["tls"].as_bool().unwrap_or(false),
                    login: m["login"].as_str().map(str::to_owned),
                }
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Closing stdin stops the server; kill it if it does not stop promptly.
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running Prometheus Pushgateway on loopback (no persistence); stopped on drop.
pub struct PushgatewayServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl PushgatewayServer {
    /// Starts one and waits until it answers; `None` when not installed and not required.
    #[must_use]
    pub fn start() -> Option<Self> {
        let bin = tool(
            "SYNCCTL_TEST_PUSHGATEWAY_BIN",
            PathBuf::from("/usr/bin/prometheus-pushgateway"),
            "prometheus-pushgateway",
        )?;
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-pushgateway");
        let me = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(me);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("prometheus-pushgateway did not listen on {port}");
    }

    /// The gateway's own `/metrics` page (what Prometheus scrapes).
    #[must_use]
    pub fn scrape(&self) -> String {
        http_get(&format!("{}/metrics", self.url))
    }
}

impl Drop for PushgatewayServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET over a plain TCP socket (the testkit has no HTTP client of its own).
fn http_get(url: &str) -> String {
    use std::io::Read;
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let body = buf.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if buf.contains("Transfer-Encoding: chunked") || buf.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
