//! Google Sheets ⇄ HubSpot through the binary with the built-in mapping (no config file), the
//! sheet served by the testkit's Sheets fake and HubSpot by the HubSpot fake: one way from the
//! sheet, creates and updates land in HubSpot, the sheet is never written (no write call in
//! the Sheets fake's request log) and a rerun writes nothing; one way from HubSpot, the sheet
//! gets the rows and HubSpot is never written; a column beyond the mapping is left alone.

use std::path::Path;

use axum::http::Method;
use serde_json::{Value, json};
use syncctl_testkit::FakeServer;
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::hubspot::HubSpotFake;
use syncctl_testkit::fakes::sheets::{Edit, SheetsFake, service_account_json};

const TOKEN: &str = "pat-na1-sheets-e2e-token";
const ID: &str = "1SheetsHubSpotE2E";
/// The tab the built-in mapping names.
const TAB: &str = "Contacts";

struct World {
    sheets: SheetsFake,
    sheets_server: FakeServer,
    hubspot: HubSpotFake,
    hubspot_server: FakeServer,
    dir: tempfile::TempDir,
}

fn header() -> Vec<Value> {
    [
        "email",
        "firstname",
        "lastname",
        "phone",
        "company",
        "notes",
    ]
    .iter()
    .map(|h| json!(h))
    .collect()
}

impl World {
    async fn new(rows: Vec<Vec<Value>>) -> Self {
        let sheets = SheetsFake::new(ID).tab(TAB, rows, 100);
        let sheets_server = FakeServer::start(sheets.router()).await;
        let hubspot = HubSpotFake::new(TOKEN);
        let hubspot_server = FakeServer::start(hubspot.router()).await;
        Self {
            sheets,
            sheets_server,
            hubspot,
            hubspot_server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn run(&self, args: &[&str]) -> CliRun {
        let mut cmd = crate::support::syncctl();
        cmd.current_dir(self.dir.path())
            .env("HUBSPOT_API_TOKEN", TOKEN)
            .env("HUBSPOT_BASE_URL", self.hubspot_server.url())
            .env(
                "GOOGLE_SHEETS_CREDENTIALS_JSON",
                service_account_json(&format!("{}/token", self.sheets_server.url())),
            )
            .env("GOOGLE_SHEETS_SPREADSHEET_ID", ID)
            .env("GOOGLE_SHEETS_BASE_URL", self.sheets_server.url())
            .arg("sync")
            .args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let r = CliRun::from_output(&out);
        assert!(
            !r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN),
            "the HubSpot token leaked"
        );
        assert!(
            !r.stdout.contains("PRIVATE KEY") && !r.stderr.contains("PRIVATE KEY"),
            "the service-account key leaked"
        );
        r
    }

    /// Calls that change the spreadsheet: `values.batchUpdate`, `values.append`,
    /// `spreadsheets.batchUpdate` (every POST but the token endpoint's).
    fn sheet_writes(&self) -> usize {
        self.sheets_server
            .requests()
            .iter()
            .filter(|r| r.method == Method::POST && r.path.starts_with("/v4/"))
            .count()
    }

    fn contact(&self, email: &str) -> std::collections::BTreeMap<String, String> {
        let found = self.hubspot.find("contacts", "email", email);
        assert_eq!(found.len(), 1, "{email}: {found:?}");
        found[0].properties.clone()
    }

    fn state_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn row(cells: &[&str]) -> Vec<Value> {
    cells.iter().map(|c| json!(c)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheet_to_hubspot_creates_and_updates_and_never_writes_the_sheet() {
    let w = World::new(vec![
        header(),
        row(&[
            "Ada@Example.com",
            "Ada",
            "Lovelace",
            "+441234567",
            "Analytical",
            "call back",
        ]),
        row(&["grace@example.com", "Grace", "Hopper", "", "Navy"]),
        row(&["linus@example.com", "Linus", "Torvalds"]),
    ])
    .await;
    let ada = w.hubspot.seed(
        "contacts",
        &[
            ("email", "ada@example.com"),
            ("firstname", "A."),
            ("lastname", "Lovelace"),
        ],
    );
    w.hubspot.seed(
        "contacts",
        &[
            ("email", "alan@example.com"),
            ("firstname", "Alan"),
            ("lastname", "Turing"),
        ],
    );
    let sheet_before = w.sheets.rows(TAB);
    let args = [
        "run",
        "--source",
        "google_sheets",
        "--target",
        "hubspot",
        "--direction",
        "source_to_target",
    ];

    let first = w.run(&args).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.stdout);
    assert_eq!(first.status(), "succeeded", "{}", first.stdout);
    // Ada matched by email (case aside) and updated; Grace and Linus created; Alan, who is
    // only in HubSpot, untouched and not copied to the sheet.
    assert_eq!(
        w.hubspot
            .find("contacts", "email", "ada@example.com")
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![ada]
    );
    let a = w.contact("ada@example.com");
    assert_eq!(a["firstname"], "Ada");
    assert_eq!(a["company"], "Analytical");
    assert!(
        !a.contains_key("notes"),
        "a column beyond the mapping was synced: {a:?}"
    );
    let g = w.contact("grace@example.com");
    assert_eq!(
        (g["firstname"].as_str(), g["company"].as_str()),
        ("Grace", "Navy")
    );
    assert_eq!(w.contact("linus@example.com")["lastname"], "Torvalds");
    assert_eq!(w.contact("alan@example.com")["firstname"], "Alan");
    assert_eq!(w.hubspot.all("contacts").len(), 4);
    assert_eq!(w.sheet_writes(), 0, "the sheet was written");
    assert_eq!(w.sheets.rows(TAB), sheet_before);
    assert!(
        first
            .stderr
            .contains("columns notes are not among this sync's columns"),
        "the column beyond the mapping is named: {}",
        first.stderr
    );
    let data = &first.result["data"];
    assert_eq!(data["target"]["created"], 2, "{data}");
    assert_eq!(data["target"]["updated"], 1, "{data}");

    // Nothing changed: the rerun writes nothing anywhere.
    let hubspot_writes = w.hubspot.write_calls();
    let again = w.run(&args).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        w.hubspot.write_calls(),
        hubspot_writes,
        "a rerun wrote to HubSpot"
    );
    assert_eq!(w.sheet_writes(), 0);

    // A hand edit in the sheet flows to HubSpot on the next run; the sheet stays unwritten.
    w.sheets.edit(&Edit::SetCell {
        tab: TAB.into(),
        row: 3,
        column: 4,
        value: json!("US Navy"),
    });
    let third = w.run(&args).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(w.contact("grace@example.com")["company"], "US Navy");
    assert_eq!(third.result["data"]["target"]["updated"], 1);
    assert_eq!(w.sheet_writes(), 0);
    assert!(w.state_dir().read_dir().unwrap().next().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_to_sheet_fills_the_tab_and_never_writes_hubspot() {
    let w = World::new(vec![
        header(),
        row(&["ada@example.com", "Ada", "", "", "", "keep this note"]),
    ])
    .await;
    w.hubspot.seed(
        "contacts",
        &[
            ("email", "ada@example.com"),
            ("firstname", "Ada"),
            ("lastname", "Lovelace"),
            ("company", "Analytical"),
        ],
    );
    w.hubspot.seed(
        "contacts",
        &[
            ("email", "grace@example.com"),
            ("firstname", "Grace"),
            ("lastname", "Hopper"),
            ("phone", "+15550100"),
        ],
    );
    // The mirror built-in: HubSpot as the source, one way into the sheet.
    let args = [
        "run",
        "--source",
        "hubspot",
        "--target",
        "google_sheets",
        "--direction",
        "source_to_target",
    ];
    let first = w.run(&args).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.stdout);
    assert_eq!(first.status(), "succeeded", "{}", first.stdout);
    assert_eq!(w.hubspot.write_calls(), 0, "HubSpot was written");
    let rows = w.sheets.rows(TAB);
    let by_email = |e: &str| -> Vec<Value> {
        let found: Vec<&Vec<Value>> = rows
            .iter()
            .filter(|r| r.first() == Some(&json!(e)))
            .collect();
        assert_eq!(found.len(), 1, "{e}: {rows:?}");
        found[0].clone()
    };
    let ada = by_email("ada@example.com");
    assert_eq!(ada[2], json!("Lovelace"));
    assert_eq!(ada[4], json!("Analytical"));
    assert_eq!(
        ada[5],
        json!("keep this note"),
        "a column beyond the mapping was touched"
    );
    let grace = by_email("grace@example.com");
    assert_eq!(
        grace[..4],
        [
            json!("grace@example.com"),
            json!("Grace"),
            json!("Hopper"),
            json!("+15550100")
        ]
    );
    assert_eq!(rows.iter().filter(|r| !r.is_empty()).count(), 3, "{rows:?}");

    // Nothing changed in HubSpot: the rerun sends no write to the sheet.
    let writes = w.sheet_writes();
    assert!(writes > 0);
    let again = w.run(&args).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(w.sheet_writes(), writes, "a rerun wrote to the sheet");
    assert_eq!(w.hubspot.write_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_missing_a_mapped_column_is_refused_before_any_write() {
    let w = World::new(vec![
        row(&["email", "firstname", "lastname", "company"]),
        row(&["ada@example.com", "Ada", "Lovelace", "Analytical"]),
    ])
    .await;
    for args in [
        [
            "run",
            "--source",
            "google_sheets",
            "--target",
            "hubspot",
            "--direction",
            "source_to_target",
        ],
        [
            "run",
            "--source",
            "hubspot",
            "--target",
            "google_sheets",
            "--direction",
            "source_to_target",
        ],
    ] {
        let r = w.run(&args).await;
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(r.error_class(), Some("config"), "{}", r.stdout);
        assert!(
            r.stdout.contains("phone"),
            "names the missing column: {}",
            r.stdout
        );
    }
    assert_eq!(w.sheet_writes(), 0);
    assert_eq!(w.hubspot.write_calls(), 0);
}
