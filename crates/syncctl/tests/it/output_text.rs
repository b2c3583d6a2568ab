//! `--output text` through the binary: the human summary on stderr says what the JSON result
//! says (counts per side, rejections with their reasons, the dry-run marker, the run id), and
//! the JSON line still ends stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::Quickstart;

/// The summary's row of counts for `side`: read, created, updated, deleted, unchanged,
/// rejected, failed.
fn row(stderr: &str, side: &str) -> Vec<u64> {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{side} ")))
        .unwrap_or_else(|| panic!("no {side} row in:\n{stderr}"));
    line.split_whitespace()
        .skip(1)
        .take(7)
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn the_text_summary_is_the_result_in_words() {
    let q = Quickstart::new();
    for (args, dry) in [(vec!["plan"], true), (vec!["run"], false)] {
        let mut all = args.clone();
        all.extend(["--output", "text", "-q"]);
        let r = q.sync(&all);
        assert_eq!(r.code, 0, "{}", r.stderr);
        // The JSON result is still the last stdout line, and the summary is not on stdout.
        assert_eq!(r.result["schema"], "syncctl.result/v1");
        assert!(!r.stdout.contains("read   created"));
        let d = &r.result["data"];
        for side in ["source", "target"] {
            let s = &d[side];
            let n = |k: &str| s[k].as_u64().unwrap();
            let expected = vec![
                n("read"),
                n("created"),
                n("updated"),
                n("deleted"),
                n("read") - n("updated") - n("deleted") - n("failed"),
                n("rejected"),
                n("failed"),
            ];
            assert_eq!(row(&r.stderr, side), expected, "{args:?} {side}");
        }
        let reason = d["rejected"][0]["reasons"][0].as_str().unwrap();
        assert!(r.stderr.contains(reason), "{}", r.stderr);
        let run_id = r.result["run_id"].as_str().unwrap();
        assert!(r.stderr.contains(&format!("run {run_id}")), "{}", r.stderr);
        assert_eq!(
            r.stderr.contains("DRY RUN, nothing written"),
            dry,
            "{}",
            r.stderr
        );
        // Only a stored run has an audit to show.
        assert_eq!(
            r.stderr.contains(&format!("syncctl sync show {run_id}")),
            !dry,
            "{}",
            r.stderr
        );
    }
}
