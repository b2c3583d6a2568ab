//! `--help` of every `syncctl sync` command, as snapshots: the flags are part of the interface.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn help_texts() {
    for (name, args) in [
        ("sync_help", vec!["sync", "--help"]),
        ("sync_run_help", vec!["sync", "run", "--help"]),
        ("sync_plan_help", vec!["sync", "plan", "--help"]),
        ("sync_check_help", vec!["sync", "check", "--help"]),
        ("sync_init_help", vec!["sync", "init", "--help"]),
        (
            "sync_conflicts_list_help",
            vec!["sync", "conflicts", "list", "--help"],
        ),
        (
            "sync_conflicts_resolve_help",
            vec!["sync", "conflicts", "resolve", "--help"],
        ),
        ("sync_history_help", vec!["sync", "history", "--help"]),
        ("sync_show_help", vec!["sync", "show", "--help"]),
    ] {
        let out = crate::support::syncctl().args(&args).output().unwrap();
        assert!(out.status.success(), "{name}");
        insta::assert_snapshot!(name, String::from_utf8(out.stdout).unwrap());
    }
}
