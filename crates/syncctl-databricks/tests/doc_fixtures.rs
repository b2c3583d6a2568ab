//! Responses recorded by Databricks itself (tests/contracts/databricks/fixtures, sources in its
//! SOURCES.md), parsed with the client's own types: the supplement, the fake and the client were
//! written by the same people, so these are the check that does not come from us.

use std::path::PathBuf;

use syncctl_core::{Classified, ErrorClass};
use syncctl_databricks::DatabricksError;
use syncctl_databricks::model::Run;
use syncctl_http::HttpError;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/contracts/databricks/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run_page(name: &str) -> Run {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

/// Merges pages the way `JobsClient::get_run` does: first page whole, later pages appended.
fn merged(names: &[&str]) -> Run {
    let mut pages = names.iter().map(|n| run_page(n));
    let mut run = pages.next().expect("at least one page");
    for page in pages {
        run.append_page(page);
    }
    run
}

fn ids(tasks: &[syncctl_databricks::model::RunTask]) -> Vec<Option<i64>> {
    tasks.iter().map(|t| t.run_id).collect()
}

#[test]
fn runs_get_task_pages_chain_by_token_and_merge_every_task() {
    let first = run_page("runs-get-tasks-page1.json");
    assert_eq!(first.next_page_token.as_deref(), Some("tokenToSecondPage"));
    // The last page says `"next_page_token": null`: that ends paging like an absent token.
    assert_eq!(run_page("runs-get-tasks-page3.json").next_page_token, None);
    let run = merged(&[
        "runs-get-tasks-page1.json",
        "runs-get-tasks-page2.json",
        "runs-get-tasks-page3.json",
    ]);
    assert_eq!(ids(&run.tasks), [0, 1, 2, 3, 4].map(Some));
    assert!(run.iterations.is_empty());
}

#[test]
fn runs_get_iteration_pages_keep_the_repeated_for_each_task_once() {
    let run = merged(&[
        "runs-get-iterations-page1.json",
        "runs-get-iterations-page2.json",
        "runs-get-iterations-page3.json",
    ]);
    assert_eq!(
        ids(&run.tasks),
        [Some(1337)],
        "the for-each task, not three copies"
    );
    assert_eq!(ids(&run.iterations), [0, 1, 2, 3, 4].map(Some));
    assert_eq!(run.latest_tasks().len(), 1);
}

fn api_error(status: u16, name: &str) -> DatabricksError {
    DatabricksError::from_http(HttpError::Status {
        service: "databricks".into(),
        method: "GET".into(),
        path: "/api/2.2/jobs/runs/get".into(),
        status,
        body: fixture(name),
        attempts: 1,
    })
}

#[test]
fn error_bodies_give_code_message_and_class() {
    match api_error(400, "error-400-invalid-parameter-value.json") {
        DatabricksError::Api {
            status,
            ref error_code,
            ref message,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(error_code, "INVALID_PARAMETER_VALUE");
            assert_eq!(message, "Cluster abc does not exist");
        }
        other => panic!("not parsed as a Databricks error: {other:?}"),
    }
    assert_eq!(
        api_error(400, "error-400-invalid-parameter-value.json").class(),
        ErrorClass::Config
    );
    // A numeric error_code next to a 400 status: the HTTP status decides the class, not the 500.
    let numeric = api_error(400, "error-400-numeric-error-code.json");
    match &numeric {
        DatabricksError::Api {
            error_code,
            message,
            ..
        } => {
            assert_eq!(error_code, "500");
            assert_eq!(message, "Cluster abc does not exist");
        }
        other => panic!("numeric error_code not parsed: {other:?}"),
    }
    assert_eq!(numeric.class(), ErrorClass::Config);
}
