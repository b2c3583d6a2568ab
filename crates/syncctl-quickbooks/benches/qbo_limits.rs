//! QuickBooks connector against the fake enforcing Intuit's published limits, with the clock
//! scaled so a run takes seconds: N customers created (batches of 30), read back by a full
//! scan, then an incremental read of a quiet company. Reports calls used against the minimum
//! and wall time against the rate-limit floor (40 batch requests per scaled minute).
//!
//! `cargo bench -p syncctl-quickbooks --bench qbo_limits -- [N] [SCALE]` (default 10000 60).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::Instant;

use secrecy::SecretString;
use serde_json::json;
use syncctl_core::{Connector, NaturalKey, ReadRequest, WriteContext, WriteOp, WriteOutcome};
use syncctl_quickbooks::{
    ClientOptions, Entity, Limits, QuickBooksClient, QuickBooksConnector, QuickBooksSettings,
};
use syncctl_testkit::FakeServer;
use syncctl_testkit::fakes::quickbooks::{DEMO_ACCESS_TOKEN, DEMO_REALM, QuickBooksFake};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let scale: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(60.0);
    let fake = QuickBooksFake::new().time_scale(scale);
    let server = FakeServer::start(fake.router()).await;
    let client = QuickBooksClient::new(
        &QuickBooksSettings {
            realm_id: DEMO_REALM.into(),
            base_url: server.url(),
            access_token: Some(SecretString::from(DEMO_ACCESS_TOKEN.to_owned())),
            refresh: None,
        },
        ClientOptions {
            limits: Limits::default().scaled(scale),
            credentials: Arc::new(syncctl_core::MemoryCredentials::default()),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let conn = QuickBooksConnector::new(client, Entity::Customer);
    let schema = conn.describe().await.unwrap();
    let ctx = WriteContext::new("bench", "run-1");
    let started = Instant::now();
    let mut created = 0;
    let ops: Vec<WriteOp> = (0..n)
        .map(|i| WriteOp::Create {
            token: format!("t{i}"),
            natural_key: Some(NaturalKey {
                field: "PrimaryEmailAddr.Address".into(),
                value: json!(format!("p{i}@example.com")),
            }),
            fields: [
                ("GivenName".to_owned(), json!(format!("Person{i}"))),
                ("FamilyName".to_owned(), json!("Bench")),
                (
                    "PrimaryEmailAddr.Address".to_owned(),
                    json!(format!("p{i}@example.com")),
                ),
            ]
            .into_iter()
            .collect(),
        })
        .collect();
    for chunk in ops.chunks(schema.max_batch) {
        let out = conn
            .sink()
            .unwrap()
            .write(&schema, chunk, &ctx)
            .await
            .unwrap();
        created += out
            .iter()
            .filter(|o| matches!(o, WriteOutcome::Applied { created: true, .. }))
            .count();
    }
    let write_secs = started.elapsed().as_secs_f64();
    let after_writes = conn.client().stats();
    let read_started = Instant::now();
    let mut req = ReadRequest::full(1000);
    let mut read = 0;
    loop {
        let page = conn
            .source()
            .unwrap()
            .read_page(&schema, &req)
            .await
            .unwrap();
        read += page.records.len();
        match page.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    let read_secs = read_started.elapsed().as_secs_f64();
    let after_read = conn.client().stats();
    let quiet = ReadRequest {
        since: Some(chrono::Utc::now() + chrono::Duration::seconds(1)),
        ..ReadRequest::full(1000)
    };
    let page = conn
        .source()
        .unwrap()
        .read_page(&schema, &quiet)
        .await
        .unwrap();
    let after_quiet = conn.client().stats();
    let min_batches = n.div_ceil(30);
    let floor = (min_batches as f64 - 1.0).max(0.0) / 40.0 * 60.0 / scale;
    println!("QuickBooks fake, limits 500/min, 10 concurrent, 40 batches/min; clock x{scale}");
    println!(
        "created {created}/{n} customers: {} batch calls (minimum {min_batches}), {} other calls, {:.1} s wall (rate-limit floor {:.1} s = {:.1} min unscaled), throttled {}",
        after_writes.batches,
        after_writes.queries + after_writes.cdc,
        write_secs,
        floor,
        floor * scale / 60.0,
        fake.throttled()
    );
    println!(
        "full scan: {read} records (with page overlap repeats) in {} query calls (minimum {}), {:.2} s",
        after_read.queries - after_writes.queries,
        n.div_ceil(1000),
        read_secs
    );
    println!(
        "quiet incremental read: {} records, {} CDC call(s), {} queries",
        page.records.len(),
        after_quiet.cdc - after_read.cdc,
        after_quiet.queries - after_read.queries
    );
}
