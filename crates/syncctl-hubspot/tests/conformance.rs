//! The testkit's conformance suite against the HubSpot connector (contacts) over the stateful
//! HubSpot fake: every case gets a fresh portal, rows are seeded behind the connector's back
//! with their modified time (`HubSpotFake::seed_at`).

use serde_json::{Value, json};
use syncctl_core::{BuildContext, Connector, RecordKey};
use syncctl_testkit::conformance::{FakePerCase, Fixture, PeopleFields, Person, run_all};
use syncctl_testkit::fakes::hubspot::HubSpotFake;

const TOKEN: &str = "pat-na1-conformance-token";

/// One fake portal per case.
#[derive(Default)]
struct HubSpotFixture {
    portals: FakePerCase<HubSpotFake>,
}

impl HubSpotFixture {
    fn fake(&self) -> HubSpotFake {
        self.portals
            .current()
            .unwrap_or_else(|| HubSpotFake::new(TOKEN))
    }
}

#[async_trait::async_trait]
impl Fixture for HubSpotFixture {
    async fn fresh(&self) -> Box<dyn Connector> {
        let fake = HubSpotFake::new(TOKEN);
        let router = fake.router();
        let url = self.portals.serve(fake, router).await;
        let ctx = BuildContext::new(".").with_env(move |k| match k {
            "HUBSPOT_API_TOKEN" => Some(TOKEN.to_owned()),
            "HUBSPOT_BASE_URL" => Some(url.clone()),
            _ => None,
        });
        match (syncctl_hubspot::FACTORY.build)(
            ctx,
            json!({"connector": "hubspot", "object": "contacts"}),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => panic!("building the connector: {e}"),
        }
    }

    async fn insert(&self, rows: &[Person]) -> Vec<RecordKey> {
        let fake = self.fake();
        rows.iter()
            .map(|p| {
                let name = p.name.clone().unwrap_or_default();
                let id = fake.seed_at(
                    "contacts",
                    &[("email", &p.email), ("firstname", &name)],
                    p.updated_at,
                );
                RecordKey(id.to_string())
            })
            .collect()
    }

    fn refused_age(&self) -> Option<Value> {
        None
    }

    /// HubSpot refuses a second contact with an existing email (409 on `batch/create`).
    fn enforces_unique_email(&self) -> bool {
        true
    }

    /// `batch/archive` answers 204 whatever the ids' state (HubSpot's API reference).
    fn deletes_report_missing_records(&self) -> bool {
        false
    }

    fn fields(&self) -> PeopleFields {
        PeopleFields {
            key: "hs_object_id".into(),
            email: "email".into(),
            name: "firstname".into(),
            age: None,
            updated_at: "lastmodifieddate".into(),
        }
    }

    /// An email without `@`: HubSpot fails that record alone (207, `INVALID_EMAIL`).
    fn refused_value(&self) -> Option<(String, Value)> {
        Some(("email".into(), json!("not-an-email")))
    }
}

#[tokio::test]
async fn hubspot_contacts_conform() {
    let fixture = HubSpotFixture::default();
    if let Err(failures) = run_all(&fixture).await {
        panic!("HubSpot conformance:\n{}", failures.join("\n"));
    }
}
