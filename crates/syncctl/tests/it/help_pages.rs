//! The CLI explains itself: `--help` of the commands outside the service groups (snapshots),
//! shell completions and the man page generated from the same definitions.

fn syncctl(args: &[&str]) -> (i32, String) {
    let out = crate::support::syncctl().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("doctor_help", vec!["doctor", "--help"]),
        ("notify_help", vec!["notify", "--help"]),
        ("schema_help", vec!["schema", "--help"]),
        ("completions_help", vec!["completions", "--help"]),
        ("man_help", vec!["man", "--help"]),
    ] {
        let (code, text) = syncctl(&args);
        assert_eq!(code, 0, "{name}");
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn completion_scripts_cover_every_command_and_the_global_options() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script) = syncctl(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        for word in [
            "trigger",
            "run-now",
            "copy",
            "conflicts",
            "dry-run",
            "result-file",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        // The script is the whole of stdout: no result line to confuse the shell.
        assert!(
            !script.contains("\"schema\":\"syncctl.result/v1\""),
            "{shell}"
        );
    }
    let (code, _) = syncctl(&["completions", "powershell-or-so"]);
    assert_eq!(code, 2);
}

#[test]
fn the_man_page_has_every_command_with_its_examples() {
    let (code, page) = syncctl(&["man"]);
    assert_eq!(code, 0);
    assert!(
        page.starts_with(".ie") || page.contains(".TH syncctl"),
        "{}",
        &page[..200]
    );
    for section in [
        "SYNCCTL AIRBYTE TRIGGER",
        "SYNCCTL DBX RUN-NOW",
        "SYNCCTL SNOWFLAKE COPY",
        "SYNCCTL SYNC RUN",
        "SYNCCTL SYNC CONFLICTS RESOLVE",
    ] {
        assert!(page.contains(&format!(".SH \"{section}\"")), "no {section}");
    }
    assert!(page.contains("Examples:"));
    assert!(page.contains("\\-\\-result\\-file") || page.contains("--result-file"));
}

#[test]
fn every_help_page_ends_with_examples_and_lists_global_options_once() {
    let (_, top) = syncctl(&["--help"]);
    assert_eq!(top.matches("--termination-log <PATH>").count(), 1);
    for args in [
        vec!["airbyte", "trigger", "--help"],
        vec!["dbx", "run-now", "--help"],
        vec!["snowflake", "copy", "--help"],
        vec!["sync", "run", "--help"],
    ] {
        let (code, text) = syncctl(&args);
        assert_eq!(code, 0);
        assert!(!text.contains("--termination-log <PATH>"), "{args:?}");
        let examples = text.find("Examples:").expect("examples");
        assert!(text[examples..].contains("syncctl "), "{args:?}");
        assert!(text.contains("Environment:"), "{args:?}");
    }
    // Flags that mean nothing for a command are not offered.
    let (code, _) = syncctl(&["sync", "check", "--dry-run"]);
    assert_eq!(code, 2);
}
