//! The CSV connector alone: the benchmark rows (`syncctl_testkit::bench_rows`) read page by
//! page from a file, and written as natural-key creates into a file holding only its header,
//! in rows/s. The read records and the written file are checked against the generated rows.
//! Run by `scripts/bench/connectors.sh`, or:
//!
//! ```text
//! cargo bench -p syncctl-csv --bench csv_rows            # 100 000 rows
//! cargo bench -p syncctl-csv --bench csv_rows -- 20000
//! ```
//!
//! Pages and batches of `SYNCCTL_BENCH_PAGE` records (default 1000); files under
//! target/bench/connectors/. Prints Markdown table rows like the SQL connectors' bench.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use syncctl_core::{BuildContext, ReadRequest, WriteContext, WriteOutcome};
use syncctl_csv::CsvConnector;
use syncctl_testkit::bench_rows::{BenchRow, COLUMNS, check_all, rows};

fn page() -> usize {
    std::env::var("SYNCCTL_BENCH_PAGE")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000)
}

fn connector(dir: &Path, file: &str) -> CsvConnector {
    let settings = serde_json::from_value(json!({
        "path": file,
        "key_column": "sku",
        "updated_at_column": "modified_at",
    }))
    .unwrap();
    CsvConnector::new(&BuildContext::new(dir), settings).unwrap()
}

fn line(op: &str, n: usize, secs: f64) {
    let rate = n as f64 / secs;
    let met = if rate >= 100_000.0 { "yes" } else { "**no**" };
    println!("| csv | {op} | {n} | {secs:.2} | {rate:.0} | - | - | ≥ 100000 rows/s: {met} |");
}

#[tokio::main]
async fn main() {
    use syncctl_core::Connector;
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(100_000);
    let rows = rows(n);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/connectors");
    std::fs::create_dir_all(&dir).unwrap();

    let mut w = csv::Writer::from_path(dir.join("source.csv")).unwrap();
    w.write_record(COLUMNS).unwrap();
    for r in &rows {
        let qty = r.qty.to_string();
        let modified = r.modified();
        let price = r.price();
        w.write_record([
            r.sku.as_str(),
            &r.name,
            &qty,
            &price,
            &modified,
            r.note.as_deref().unwrap_or(""),
        ])
        .unwrap();
    }
    w.flush().unwrap();
    drop(w);

    let source = connector(&dir, "source.csv");
    let schema = source.describe().await.unwrap();
    let start = Instant::now();
    let mut req = ReadRequest::full(page());
    let mut read = Vec::new();
    loop {
        let p = source
            .source()
            .unwrap()
            .read_page(&schema, &req)
            .await
            .unwrap();
        read.extend(p.records);
        match p.next {
            Some(t) => req.after = Some(t),
            None => break,
        }
    }
    let read_secs = start.elapsed().as_secs_f64();
    check_all(&rows, &read).unwrap();

    std::fs::write(dir.join("target.csv"), format!("{}\n", COLUMNS.join(","))).unwrap();
    let target = connector(&dir, "target.csv");
    let schema = target.describe().await.unwrap();
    let ctx = WriteContext::new("bench", "00000000-0000-0000-0000-00000000beef");
    let ops: Vec<_> = rows.iter().map(BenchRow::create_op).collect();
    let start = Instant::now();
    for batch in ops.chunks(page().min(schema.max_batch)) {
        let out = target
            .sink()
            .unwrap()
            .write(&schema, batch, &ctx)
            .await
            .unwrap();
        for o in &out {
            assert!(
                matches!(o, WriteOutcome::Applied { created: true, .. }),
                "{o:?}"
            );
        }
    }
    let write_secs = start.elapsed().as_secs_f64();
    // What a fresh reader finds in the written file.
    let reread = connector(&dir, "target.csv");
    let keys: Vec<_> = rows
        .iter()
        .map(|r| syncctl_core::RecordKey(r.sku.clone()))
        .collect();
    let written = reread
        .source()
        .unwrap()
        .read_keys(&schema, &keys)
        .await
        .unwrap();
    check_all(&rows, &written).unwrap();

    line("read", n, read_secs);
    line("write (natural-key creates)", n, write_secs);
}
