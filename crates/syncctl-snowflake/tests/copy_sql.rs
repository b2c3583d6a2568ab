//! Golden tests of the generated COPY INTO SQL, one per option, and the request text that
//! wraps statements in a transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use syncctl_config::Env;
use syncctl_snowflake::partition::parse_date;
use syncctl_snowflake::quote::ObjectName;
use syncctl_snowflake::{
    CopyPlan, CopySpec, FileFormat, Location, MatchByColumnName, OnError, PartitionTemplate,
    StorageAccess,
};

fn day(s: &str) -> NaiveDate {
    parse_date("--date", s).unwrap()
}

/// "Today" for every test: 2025-11-15, so 2025-10-30 is recent and 2025-06-01 is uncertain.
fn today() -> NaiveDate {
    day("2025-11-15")
}

fn spec(from: &str, dates: (&str, &str)) -> CopySpec {
    let location = Location::parse(from).unwrap();
    let partitions = PartitionTemplate::parse("date={date}/")
        .unwrap()
        .expand(Some((day(dates.0), day(dates.1))))
        .unwrap();
    CopySpec {
        table: ObjectName::parse("--table", "raw.events.events").unwrap(),
        location,
        partitions,
        files: Vec::new(),
        pattern: None,
        file_format: Some(FileFormat::parse_options("TYPE=JSON").unwrap()),
        on_error: None,
        match_by_column_name: None,
        include_metadata: Vec::new(),
        purge: false,
        force: false,
        load_uncertain: true,
        validate: false,
        access: StorageAccess::None,
    }
}

fn integration(name: &str) -> StorageAccess {
    StorageAccess::resolve(
        &Location::parse("s3://bucket/x/").unwrap(),
        Some(name),
        &Env::default(),
        "AZURE_SAS_TOKEN",
    )
    .unwrap()
}

fn seed() -> CopySpec {
    let mut s = spec(
        "s3://biz-datalake-dev/events/",
        ("2025-10-30", "2025-10-30"),
    );
    s.access = integration("datalake_int");
    s
}

fn one(spec: &CopySpec) -> String {
    let plan = spec.plan(today()).unwrap();
    assert_eq!(plan.copies.len(), 1);
    plan.copies[0].redacted_sql.clone()
}

#[test]
fn seed_partition_with_a_storage_integration() {
    insta::assert_snapshot!(one(&seed()), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "DATALAKE_INT"
      FILE_FORMAT = (TYPE = JSON)
    "#);
}

#[test]
fn aws_credentials_are_sent_but_shown_as_stars() {
    let env = Env::from_vars([
        ("AWS_KEY".to_owned(), "AKIAEXAMPLEKEY".to_owned()),
        ("AWS_SECRET".to_owned(), "s3cr3t'with\\quote".to_owned()),
        ("AWS_TOKEN".to_owned(), "session-token-value".to_owned()),
    ]);
    let mut s = seed();
    s.access = StorageAccess::resolve(&s.location, None, &env, "AZURE_SAS_TOKEN").unwrap();
    let plan = s.plan(today()).unwrap();
    insta::assert_snapshot!(plan.copies[0].redacted_sql, @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      CREDENTIALS = (AWS_KEY_ID = '***' AWS_SECRET_KEY = '***' AWS_TOKEN = '***')
      FILE_FORMAT = (TYPE = JSON)
    "#);
    let real = plan.copies[0].sql().expose_secret();
    assert!(real.contains("AWS_KEY_ID = 'AKIAEXAMPLEKEY'"), "{real}");
    assert!(
        real.contains(r"AWS_SECRET_KEY = 's3cr3t''with\\quote'"),
        "{real}"
    );
    assert!(!plan.warnings.iter().any(|w| w.contains("public bucket")));
    // Snowflake's own names win over the seed's.
    let env = Env::from_vars([
        ("AWS_KEY_ID".to_owned(), "primary-id".to_owned()),
        ("AWS_SECRET_KEY".to_owned(), "primary-secret".to_owned()),
        ("AWS_KEY".to_owned(), "seed-id".to_owned()),
        ("AWS_SECRET".to_owned(), "seed-secret".to_owned()),
    ]);
    let a = StorageAccess::resolve(&s.location, None, &env, "AZURE_SAS_TOKEN").unwrap();
    s.access = a;
    assert!(
        s.plan(today()).unwrap().copies[0]
            .sql()
            .expose_secret()
            .contains("primary-id")
    );
    // Half a pair is a configuration error.
    let env = Env::from_vars([("AWS_KEY_ID".to_owned(), "x".to_owned())]);
    assert!(StorageAccess::resolve(&s.location, None, &env, "AZURE_SAS_TOKEN").is_err());
}

#[test]
fn azure_sas_token_and_gcs_integration() {
    let env = Env::from_vars([("MY_SAS".to_owned(), "?sv=2024&sig=abc%2F".to_owned())]);
    let mut s = spec(
        "azure://acct.blob.core.windows.net/lake/events/",
        ("2025-10-30", "2025-10-30"),
    );
    s.access = StorageAccess::resolve(&s.location, None, &env, "MY_SAS").unwrap();
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 'azure://acct.blob.core.windows.net/lake/events/date=2025-10-30/'
      CREDENTIALS = (AZURE_SAS_TOKEN = '***')
      FILE_FORMAT = (TYPE = JSON)
    "#);
    let mut s = spec("gcs://lake-bucket/events/", ("2025-10-30", "2025-10-30"));
    assert!(s.plan(today()).is_err(), "GCS needs an integration");
    s.access = integration("GCS_INT");
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 'gcs://lake-bucket/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "GCS_INT"
      FILE_FORMAT = (TYPE = JSON)
    "#);
}

#[test]
fn stages_named_user_and_table() {
    let mut s = spec(
        r#"@raw.events."Lake Stage"/events/"#,
        ("2025-10-30", "2025-10-30"),
    );
    s.table = ObjectName::parse("--table", r#"RAW.EVENTS."Events_Mixed""#).unwrap();
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."Events_Mixed"
      FROM '@"RAW"."EVENTS"."Lake Stage"/events/date=2025-10-30/'
      FILE_FORMAT = (TYPE = JSON)
    "#);
    s.location = Location::parse("@~/exports/").unwrap();
    assert!(one(&s).contains("FROM '@~/exports/date=2025-10-30/'"));
    s.location = Location::parse("@%events").unwrap();
    assert!(one(&s).contains(r#"FROM '@%"EVENTS"/date=2025-10-30/'"#));
    s.access = integration("X");
    assert!(
        s.plan(today()).is_err(),
        "stages carry their own credentials"
    );
}

#[test]
fn files_are_listed_and_chunked_by_a_thousand() {
    let mut s = seed();
    s.files = vec!["part-0001.json".into(), "sub/part 0002.json".into()];
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "DATALAKE_INT"
      FILES = ('part-0001.json', 'sub/part 0002.json')
      FILE_FORMAT = (TYPE = JSON)
    "#);
    s.files = (0..2001).map(|i| format!("part-{i:05}.json")).collect();
    let plan = s.plan(today()).unwrap();
    assert_eq!(plan.copies.len(), 3);
    assert_eq!(plan.copies[0].chunk, Some((1, 3)));
    assert_eq!(plan.copies[2].chunk, Some((3, 3)));
    let counts: Vec<usize> = plan
        .copies
        .iter()
        .map(|c| c.redacted_sql.matches(".json'").count())
        .collect();
    assert_eq!(counts, [1000, 1000, 1]);
    s.pattern = Some(".*".into());
    assert!(s.plan(today()).is_err(), "FILES and PATTERN together");
    s.pattern = None;
    s.files = vec!["x';DROP TABLE T;--".into()];
    assert!(s.plan(today()).is_err());
}

#[test]
fn pattern_backslashes_and_quotes_are_escaped() {
    let mut s = seed();
    s.pattern = Some(r".*part-[0-9]+\.json(\.gz)?'".into());
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "DATALAKE_INT"
      PATTERN = '.*part-[0-9]+\\.json(\\.gz)?'''
      FILE_FORMAT = (TYPE = JSON)
    "#);
}

#[test]
fn file_formats_inline_and_named() {
    let mut s = seed();
    s.file_format = Some(
        FileFormat::parse_options(r"type = csv, skip_header = 1, null_if = ('', 'NULL'), field_optionally_enclosed_by = '\042'")
            .unwrap(),
    );
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "DATALAKE_INT"
      FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 NULL_IF = ('', 'NULL') FIELD_OPTIONALLY_ENCLOSED_BY = '\042')
    "#);
    s.file_format = Some(FileFormat::Named(
        ObjectName::parse("f", "raw.events.json_fmt").unwrap(),
    ));
    assert!(one(&s).contains(r#"FILE_FORMAT = (FORMAT_NAME = "RAW"."EVENTS"."JSON_FMT")"#));
    s.file_format = None;
    assert!(
        !one(&s).contains("FILE_FORMAT"),
        "no format: the stage's or table's applies"
    );
}

#[test]
fn on_error_variants() {
    let mut s = seed();
    let mut lines = Vec::new();
    for v in [
        "continue",
        "skip_file",
        "SKIP_FILE_3",
        "skip_file_10%",
        "abort_statement",
    ] {
        s.on_error = Some(v.parse::<OnError>().unwrap());
        let sql = one(&s);
        lines.push(
            sql.lines()
                .find(|l| l.contains("ON_ERROR"))
                .unwrap()
                .trim()
                .to_owned(),
        );
    }
    insta::assert_snapshot!(lines.join("\n"), @r"
    ON_ERROR = CONTINUE
    ON_ERROR = SKIP_FILE
    ON_ERROR = SKIP_FILE_3
    ON_ERROR = 'SKIP_FILE_10%'
    ON_ERROR = ABORT_STATEMENT
    ");
}

#[test]
fn match_by_column_name_with_metadata_purge_and_force() {
    let mut s = seed();
    s.on_error = Some(OnError::Continue);
    s.match_by_column_name = Some("case-insensitive".parse::<MatchByColumnName>().unwrap());
    s.include_metadata = vec![
        "source_file=METADATA$FILENAME".parse().unwrap(),
        "\"Row Nr\"=metadata$file_row_number".parse().unwrap(),
    ];
    s.purge = true;
    s.force = true;
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "DATALAKE_INT"
      FILE_FORMAT = (TYPE = JSON)
      ON_ERROR = CONTINUE
      PURGE = TRUE
      MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
      INCLUDE_METADATA = ("SOURCE_FILE" = METADATA$FILENAME, "Row Nr" = METADATA$FILE_ROW_NUMBER)
      FORCE = TRUE
    "#);
    s.match_by_column_name = None;
    assert!(
        s.plan(today()).is_err(),
        "INCLUDE_METADATA needs MATCH_BY_COLUMN_NAME"
    );
}

#[test]
fn old_partitions_get_load_uncertain_files_with_a_warning() {
    let mut s = spec(
        "s3://biz-datalake-dev/events/",
        ("2025-06-01", "2025-06-02"),
    );
    s.access = integration("DATALAKE_INT");
    let plan = s.plan(today()).unwrap();
    assert!(plan.copies.iter().all(|c| c.load_uncertain));
    insta::assert_snapshot!(plan.copies[0].redacted_sql, @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-06-01/'
      STORAGE_INTEGRATION = "DATALAKE_INT"
      FILE_FORMAT = (TYPE = JSON)
      LOAD_UNCERTAIN_FILES = TRUE
    "#);
    assert_eq!(plan.warnings.len(), 1);
    assert!(
        plan.warnings[0].contains("LOAD_UNCERTAIN_FILES = TRUE"),
        "{:?}",
        plan.warnings
    );
    // Opting out still warns, differently.
    s.load_uncertain = false;
    let plan = s.plan(today()).unwrap();
    assert!(
        plan.copies
            .iter()
            .all(|c| !c.redacted_sql.contains("LOAD_UNCERTAIN"))
    );
    assert!(
        plan.warnings[0].contains("silently skips"),
        "{:?}",
        plan.warnings
    );
    // A range across the 64-day line only marks the old days (09-11 is 65 days back).
    let mut s = spec(
        "s3://biz-datalake-dev/events/",
        ("2025-09-11", "2025-09-13"),
    );
    s.access = integration("DATALAKE_INT");
    let flags: Vec<bool> = s
        .plan(today())
        .unwrap()
        .copies
        .iter()
        .map(|c| c.load_uncertain)
        .collect();
    assert_eq!(flags, [true, false, false]);
    // FORCE loads everything anyway, so the option is not added.
    s.force = true;
    assert!(
        s.plan(today())
            .unwrap()
            .copies
            .iter()
            .all(|c| !c.load_uncertain)
    );
}

#[test]
fn validation_mode_and_its_conflicts() {
    let mut s = seed();
    s.validate = true;
    insta::assert_snapshot!(one(&s), @r#"
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "DATALAKE_INT"
      FILE_FORMAT = (TYPE = JSON)
      VALIDATION_MODE = RETURN_ERRORS
    "#);
    s.match_by_column_name = Some(MatchByColumnName::CaseInsensitive);
    assert!(s.plan(today()).is_err());
    s.match_by_column_name = None;
    s.purge = true;
    assert!(s.plan(today()).is_err());
}

#[test]
fn several_partitions_run_in_one_transaction_unless_told_not_to() {
    let mut s = spec(
        "s3://biz-datalake-dev/events/",
        ("2025-10-30", "2025-10-31"),
    );
    s.access = integration("DATALAKE_INT");
    s.file_format = None;
    let plan = s.plan(today()).unwrap();
    let t = CopyPlan::request_text(&plan.copies, true);
    assert_eq!(t.count, 4);
    assert_eq!(t.first_copy_index, 1);
    insta::assert_snapshot!(t.redacted, @r#"
    BEGIN;
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-30/'
      STORAGE_INTEGRATION = "DATALAKE_INT";
    COPY INTO "RAW"."EVENTS"."EVENTS"
      FROM 's3://biz-datalake-dev/events/date=2025-10-31/'
      STORAGE_INTEGRATION = "DATALAKE_INT";
    COMMIT
    "#);
    let t = CopyPlan::request_text(&plan.copies[..1], true);
    assert_eq!(
        (t.count, t.first_copy_index),
        (1, 0),
        "one statement needs no transaction"
    );
    let t = CopyPlan::request_text(&plan.copies, false);
    assert_eq!((t.count, t.first_copy_index), (2, 0));
    assert!(!t.redacted.contains("BEGIN"));
}

#[test]
fn public_bucket_warning_and_future_dates() {
    let s = spec(
        "s3://biz-datalake-dev/events/",
        ("2025-11-16", "2025-11-16"),
    );
    let plan = s.plan(today()).unwrap();
    assert!(
        plan.warnings.iter().any(|w| w.contains("public bucket")),
        "{:?}",
        plan.warnings
    );
    assert!(
        plan.warnings.iter().any(|w| w.contains("after today")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn redacted_and_real_sql_differ_only_in_secrets() {
    let env = Env::from_vars([
        ("AWS_KEY_ID".to_owned(), "id-123456".to_owned()),
        ("AWS_SECRET_KEY".to_owned(), "secret-123456".to_owned()),
    ]);
    let mut s = seed();
    s.access = StorageAccess::resolve(&s.location, None, &env, "AZURE_SAS_TOKEN").unwrap();
    let plan = s.plan(today()).unwrap();
    let c = &plan.copies[0];
    let real = c
        .sql()
        .expose_secret()
        .replace("id-123456", "***")
        .replace("secret-123456", "***");
    assert_eq!(real, c.redacted_sql);
    let t = CopyPlan::request_text(&plan.copies, true);
    let _: &SecretString = &t.sql;
    assert!(!t.redacted.contains("secret-123456"));
    assert!(t.sql.expose_secret().contains("secret-123456"));
}
