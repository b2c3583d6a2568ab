//! The testkit's conformance suite against the QuickBooks connector (Customer) over the
//! stateful QuickBooks fake: every case gets a fresh company, rows are inserted behind the
//! connector's back with their `MetaData.LastUpdatedTime`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use syncctl_core::{Connector, MemoryCredentials, RecordKey};
use syncctl_quickbooks::{
    ClientOptions, Entity, QuickBooksClient, QuickBooksConnector, QuickBooksSettings,
};
use syncctl_testkit::conformance::{FakePerCase, Fixture, PeopleFields, Person, run_all};
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};

/// One fake company per case.
#[derive(Default)]
struct QuickBooksFixture {
    companies: FakePerCase<QuickBooksFake>,
}

impl QuickBooksFixture {
    fn fake(&self) -> QuickBooksFake {
        self.companies.current().unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Fixture for QuickBooksFixture {
    async fn fresh(&self) -> Box<dyn Connector> {
        let fake = QuickBooksFake::new();
        let router = fake.router();
        let base_url = self.companies.serve(fake, router).await;
        let client = QuickBooksClient::new(
            &QuickBooksSettings {
                realm_id: DEMO_REALM.into(),
                base_url,
                access_token: Some(SecretString::from(DEMO_ACCESS_TOKEN.to_owned())),
                refresh: None,
            },
            ClientOptions {
                credentials: Arc::new(MemoryCredentials::default()),
                ..ClientOptions::default()
            },
        );
        match client {
            Ok(client) => Box::new(QuickBooksConnector::new(client, Entity::Customer)),
            Err(e) => panic!("building the client: {e}"),
        }
    }

    async fn insert(&self, rows: &[Person]) -> Vec<RecordKey> {
        let fake = self.fake();
        rows.iter()
            .map(|p| {
                let id = fake.insert(
                    "Customer",
                    json!({
                        "GivenName": p.name,
                        "PrimaryEmailAddr": {"Address": p.email},
                        "MetaData": {
                            "LastUpdatedTime": p.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                        },
                    }),
                );
                RecordKey(id)
            })
            .collect()
    }

    fn refused_age(&self) -> Option<Value> {
        None
    }

    /// QuickBooks keeps `DisplayName` unique, not emails.
    fn enforces_unique_email(&self) -> bool {
        false
    }

    /// No upsert and no unique email in QuickBooks: identical replays only (`requestid`).
    fn natural_key_creates_upsert(&self) -> bool {
        false
    }

    fn fields(&self) -> PeopleFields {
        PeopleFields {
            key: "Id".into(),
            email: "PrimaryEmailAddr.Address".into(),
            name: "GivenName".into(),
            age: None,
            updated_at: "MetaData.LastUpdatedTime".into(),
        }
    }

    /// Within CDC's 30-day look-back, so incremental reads take the CDC path; whole seconds,
    /// as QuickBooks stores `LastUpdatedTime`.
    fn epoch(&self) -> DateTime<Utc> {
        let t = Utc::now() - chrono::Duration::days(1);
        DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
    }

    /// A `GivenName` longer than Intuit's 100 characters fails that record alone.
    fn refused_value(&self) -> Option<(String, Value)> {
        Some(("GivenName".into(), json!("x".repeat(101))))
    }
}

#[tokio::test]
async fn quickbooks_customers_conform() {
    let fixture = QuickBooksFixture::default();
    if let Err(failures) = run_all(&fixture).await {
        panic!("QuickBooks conformance:\n{}", failures.join("\n"));
    }
}
