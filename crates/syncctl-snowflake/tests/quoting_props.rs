//! Property tests: no identifier, path, pattern, file name or file-format text can break out of
//! its quoting. Generated SQL is read back with the testkit's independent Snowflake lexer
//! (the same one the fake server executes), which must see exactly the tokens we meant.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The case counts are reported on stderr (`-- --nocapture` shows them).
#![allow(clippy::print_stderr)]

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::NaiveDate;
use proptest::prelude::*;
use syncctl_snowflake::quote::{ObjectName, quote_ident, quote_literal};
use syncctl_snowflake::{
    CopyPlan, CopySpec, FileFormat, Location, OnError, PartitionTemplate, StorageAccess,
};
use syncctl_testkit::fakes::snowflake::sql::{self, OptionValue, Token};

/// Cases per property. Refused inputs are rejected with `prop_assume!` rather than passing
/// silently, so each property checks this many accepted inputs (or fails on too many rejects).
const CASES: u32 = 512;

static TABLE_NAMES: AtomicU32 = AtomicU32::new(0);
static LOCATIONS: AtomicU32 = AtomicU32::new(0);
static WHOLE_REQUESTS: AtomicU32 = AtomicU32::new(0);

/// Counts a case that reached the end of its assertions and reports the count once all
/// accepted cases have (`cargo test -- --nocapture` shows it).
fn reached(counter: &AtomicU32, property: &str) {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    if n == cases() {
        eprintln!("{property}: {n} generated cases reached every assertion");
    }
}

/// Text that leans on everything SQL cares about.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_ '\";\\\\.\\-/@%$()=*\n\t,]{0,40}",
        any::<String>(),
        Just("x'; DROP TABLE T; --".to_owned()),
        Just("\\'; DROP TABLE T; --".to_owned()),
        Just("a\\".to_owned()),
        Just("$$; DROP TABLE T; $$".to_owned()),
        Just("\"; DROP TABLE T; --".to_owned()),
        Just("*/ DROP /*".to_owned()),
    ]
}

/// Table names that are mostly valid: unquoted, quoted with odd characters, or nasty.
fn table_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_$]{0,8}",
        "\"[a-zA-Z0-9 .$@%()=*,/-]{1,10}\"",
    ];
    prop_oneof![
        4 => proptest::collection::vec(part, 1..=3).prop_map(|p| p.join(".")),
        1 => nasty(),
    ]
}

/// Paths that are mostly valid, with every character a path may hold.
fn path_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _.=/@%$()*,\"+:-]{1,20}",
        1 => nasty(),
    ]
}

/// File-format options: `TYPE=JSON` plus pairs whose values are words, lists or literals with
/// hostile contents, or raw hostile text.
fn format_text() -> impl Strategy<Value = String> {
    let literal = || nasty().prop_map(|s| quote_literal(&s));
    let word = "-?[A-Za-z0-9_.+-]{1,6}";
    let value = prop_oneof![
        2 => word.prop_map(|w| w.to_owned()),
        2 => literal(),
        1 => proptest::collection::vec(literal(), 1..3).prop_map(|l| format!("({})", l.join(", "))),
    ];
    let pair = ("[A-Z_]{1,8}", value).prop_map(|(k, v)| format!("{k}={v}"));
    prop_oneof![
        4 => proptest::collection::vec(pair, 0..4).prop_map(|p| p.join(" ")),
        1 => nasty(),
    ]
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 15).unwrap()
}

/// Cases per property: `PROPTEST_CASES` (scripts/fuzz.sh runs many), else [`CASES`].
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_global_rejects: 100_000, ..ProptestConfig::default() })]

    #[test]
    fn a_literal_is_always_one_string_token_with_the_same_value(s in nasty()) {
        let tokens = sql::tokenize(&quote_literal(&s)).unwrap();
        prop_assert_eq!(tokens, vec![Token::Str(s)]);
    }

    #[test]
    fn a_quoted_identifier_is_always_one_identifier_token(s in nasty()) {
        let tokens = sql::tokenize(&quote_ident(&s)).unwrap();
        prop_assert_eq!(tokens, vec![Token::QuotedIdent(s)]);
    }

    #[test]
    fn table_names_are_refused_or_read_back_part_for_part(s in table_text()) {
        let name = ObjectName::parse("--table", &s);
        prop_assume!(name.is_ok(), "refused input is not a case");
        let name = name.unwrap();
        let tokens = sql::tokenize(&name.sql()).unwrap();
        let parts: Vec<String> = tokens.iter().filter_map(sql::ident_name).collect();
        let expected: Vec<String> = name.parts().iter().map(|p| p.name().to_owned()).collect();
        prop_assert!(!parts.is_empty());
        prop_assert_eq!(&parts, &expected);
        prop_assert_eq!(tokens.len(), parts.len() * 2 - 1, "only dots between the parts");
        prop_assert!(!s.contains(';'));
        reached(&TABLE_NAMES, "table_names_are_refused_or_read_back_part_for_part");
    }

    #[test]
    fn locations_are_refused_or_one_literal(prefix in prop_oneof![Just("s3://bucket-1/"), Just("@db.sch.stage/"), Just("azure://acct.blob.core.windows.net/c/"), Just("@\"My Stage\"/"), Just("")], rest in nasty()) {
        let text = format!("{prefix}{rest}");
        let loc = Location::parse(&text);
        prop_assume!(loc.is_ok(), "refused input is not a case");
        let loc = loc.unwrap();
        let tokens = sql::tokenize(&loc.sql()).unwrap();
        prop_assert_eq!(tokens, vec![Token::Str(loc.text())]);
        reached(&LOCATIONS, "locations_are_refused_or_one_literal");
    }

    #[test]
    fn a_whole_copy_request_reads_back_as_exactly_the_statements_built(
        table in table_text(),
        from_rest in path_text(),
        template in path_text(),
        files in proptest::collection::vec(path_text(), 0..4),
        pattern in proptest::option::of(nasty()),
        format in format_text(),
        on_error in prop_oneof![Just("CONTINUE".to_owned()), Just("SKIP_FILE_5%".to_owned()), nasty()],
    ) {
        let table = ObjectName::parse("--table", &table);
        let location = Location::parse(&format!("s3://bucket-1/{from_rest}"));
        let template = PartitionTemplate::parse(&format!("{template}{{date}}/"));
        prop_assume!(table.is_ok() && location.is_ok() && template.is_ok(), "refused input is not a case");
        let (table, location, template) = (table.unwrap(), location.unwrap(), template.unwrap());
        let partitions = template
            .expand(Some((NaiveDate::from_ymd_opt(2025, 10, 30).unwrap(), NaiveDate::from_ymd_opt(2025, 10, 31).unwrap())))
            .unwrap();
        let file_format = FileFormat::parse_options(&format!("TYPE=JSON {format}")).ok();
        let spec = CopySpec {
            table: table.clone(),
            location,
            partitions,
            files: if pattern.is_some() { Vec::new() } else { files },
            pattern: pattern.filter(|p| !p.is_empty()),
            file_format: file_format.clone(),
            on_error: on_error.parse::<OnError>().ok(),
            match_by_column_name: None,
            include_metadata: Vec::new(),
            purge: false,
            force: false,
            load_uncertain: true,
            validate: false,
            access: StorageAccess::None,
        };
        let plan = spec.plan(today());
        prop_assume!(plan.is_ok(), "refused input is not a case");
        let plan = plan.unwrap();
        prop_assert!(!plan.copies.is_empty());
        let text = CopyPlan::request_text(&plan.copies, true);
        let statements = sql::split_statements(sql::tokenize(&text.redacted).unwrap());
        prop_assert_eq!(statements.len(), text.count);
        prop_assert_eq!(&statements[0], &vec![Token::Word("BEGIN".into())]);
        prop_assert_eq!(statements.last().unwrap(), &vec![Token::Word("COMMIT".into())]);
        for (stmt, copy) in statements[1..statements.len() - 1].iter().zip(&plan.copies) {
            let cmd = sql::parse_copy(stmt).map_err(|e| TestCaseError::fail(format!("{e}\n{}", copy.redacted_sql)))?;
            let expected: Vec<String> = table.parts().iter().map(|p| p.name().to_owned()).collect();
            prop_assert_eq!(&cmd.table, &expected);
            prop_assert_eq!(&cmd.from, &spec.location.join(&copy.partition).text());
            prop_assert_eq!(cmd.group_strings("FILES"), spec.files.clone());
            match (&spec.pattern, cmd.option("PATTERN")) {
                (Some(p), Some(OptionValue::Str(got))) => prop_assert_eq!(p, got),
                (None, None) => {}
                (want, got) => prop_assert!(false, "pattern {want:?} read back as {got:?}"),
            }
            let keys: Vec<&str> = cmd.options.iter().map(|(k, _)| k.as_str()).collect();
            let mut allowed = vec!["FILES", "PATTERN", "FILE_FORMAT", "ON_ERROR", "LOAD_UNCERTAIN_FILES"];
            allowed.retain(|k| keys.contains(k));
            prop_assert_eq!(keys, allowed, "no option appears that we did not write");
            if let Some(FileFormat::Options(opts)) = &file_format {
                let pairs = cmd.group_pairs("FILE_FORMAT");
                let got: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                let want: Vec<&str> = opts.iter().map(|(k, _)| k.as_str()).collect();
                prop_assert_eq!(got, want);
            }
        }
        reached(&WHOLE_REQUESTS, "a_whole_copy_request_reads_back_as_exactly_the_statements_built");
    }
}
