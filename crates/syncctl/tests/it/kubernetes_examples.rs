//! `examples/kubernetes/`: what can be checked without a container runtime. The Dockerfile's
//! build context holds what it copies, the binary it installs is the one the workspace builds,
//! the entrypoint is that binary in exec form (syncctl is PID 1 and gets SIGTERM itself), the
//! runtime user is not root, every `SYNCCTL_*` variable it sets is one the code reads, and the
//! Job and CronJob containers' `args` are a command line the binary accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo().join("examples/kubernetes/Dockerfile")).unwrap()
}

/// Instructions with their continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || (line.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(body) = line.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

fn all_sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = String::new();
    for c in std::fs::read_dir(repo().join("crates")).unwrap().flatten() {
        if c.path().join("src").is_dir() {
            walk(&c.path().join("src"), &mut out);
        }
    }
    out
}

#[test]
fn the_dockerfile_copies_what_exists_and_runs_syncctl_as_pid_1_and_not_root() {
    let steps = instructions(&dockerfile());
    let mut installed: Option<String> = None;
    let mut copied_to: Option<String> = None;
    for step in &steps {
        let (op, rest) = step.split_once(' ').unwrap_or((step, ""));
        match op {
            "COPY" if rest.starts_with("--from=") => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                assert_eq!(
                    Some(parts[1]),
                    installed.as_deref(),
                    "COPY --from copies what the build stage installed"
                );
                copied_to = Some(parts[2].to_owned());
            }
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                for src in &parts[..parts.len() - 1] {
                    assert!(
                        repo().join(src).exists(),
                        "COPY {src}: not in the build context (the repository root)"
                    );
                }
            }
            "RUN" if rest.contains("cargo build") => {
                assert!(
                    rest.contains("-p syncctl") && rest.contains("--bin syncctl"),
                    "{rest}"
                );
                assert!(
                    rest.contains("--locked"),
                    "the image builds from Cargo.lock"
                );
                let after = rest.split("install -D ").nth(1).expect("install -D");
                let mut words = after.split_whitespace();
                assert_eq!(words.next(), Some("target/release/syncctl"));
                installed = words.next().map(str::to_owned);
            }
            "USER" => {
                let uid = rest.split(':').next().unwrap().trim();
                let uid: u32 = uid
                    .parse()
                    .expect("a numeric USER (runAsNonRoot checks it)");
                assert_ne!(uid, 0, "the runtime user is not root");
            }
            "ENTRYPOINT" => {
                let exec: Vec<String> = serde_json::from_str(rest)
                    .expect("ENTRYPOINT in exec form: no shell, syncctl is PID 1");
                assert_eq!(Some(exec[0].as_str()), copied_to.as_deref());
            }
            _ => {}
        }
    }
    assert!(copied_to.is_some(), "the runtime stage copies the binary");
    assert!(
        steps.iter().any(|s| s.starts_with("ENTRYPOINT")),
        "no ENTRYPOINT"
    );
    assert!(
        steps.iter().any(|s| s.starts_with("USER")),
        "no USER: the image would run as root"
    );
    // The binary the Dockerfile names is the workspace's.
    let manifest = std::fs::read_to_string(repo().join("crates/syncctl/Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"syncctl\"\npath = \"src/main.rs\""));
}

#[test]
fn every_variable_the_dockerfile_sets_is_read_by_syncctl() {
    let sources = all_sources();
    let mut seen = 0;
    for step in instructions(&dockerfile()) {
        let Some(rest) = step.strip_prefix("ENV ") else {
            continue;
        };
        for pair in rest.split_whitespace() {
            let name = pair.split('=').next().unwrap();
            if name.starts_with("SYNCCTL_") {
                seen += 1;
                assert!(
                    sources.contains(&format!("\"{name}\"")),
                    "the Dockerfile sets {name}, which no code reads"
                );
            }
        }
    }
    assert!(seen > 0);
}

#[test]
fn the_build_context_keeps_what_the_build_needs_and_leaves_target_out() {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"target/"),
        "target/ would be sent as context"
    );
    for needed in ["Cargo.toml", "Cargo.lock", "crates", "crates/"] {
        assert!(!lines.contains(&needed), ".dockerignore drops {needed}");
    }
}

#[test]
fn the_job_and_cronjob_args_are_command_lines_syncctl_accepts() {
    let mut checked = 0;
    for file in ["job.yaml", "cronjob.yaml"] {
        let text = std::fs::read_to_string(repo().join("examples/kubernetes").join(file)).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            .as_object()
            .or_else(|| doc["spec"]["template"]["spec"].as_object())
            .unwrap_or_else(|| panic!("{file}: no pod spec"));
        for c in spec["containers"].as_array().unwrap() {
            let args: Vec<String> = c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            // `--help` after the arguments: clap parses everything before it first, so an
            // unknown flag or a bad value still fails (exit 2).
            let out = crate::support::syncctl()
                .args(&args)
                .arg("--help")
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{file}: {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}
