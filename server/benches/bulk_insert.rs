//! Bulk insert of tourists through the storage layer (validation, normalisation, rights,
//! multi-row inserts), against each database's own bulk loader on the same rows, in the same
//! run: the sqlite3 shell's `.import` and PostgreSQL's `COPY` (psql `\copy`).
//!
//! `cargo bench -p tabiji-server --bench bulk_insert` (or `scripts/bench/bulk_insert`);
//! BENCH_ROWS sets the row count (default 100,000); BENCH_REPEAT the rounds, of which the best
//! counts for each side (default 3); DATABASE_URL=postgres://… adds PostgreSQL.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tabiji_server::demo::{Rng, tourist};
use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Db, Principal, Store, migration};

const BATCH: usize = 5_000;

async fn open(url: &str) -> Store {
    let db = Db::connect(url).await.expect("scratch database");
    migration::run(&db).await.expect("migrations");
    Store::open(db).await.expect("store")
}

async fn through_storage(store: &Store, rows: &[Value]) -> Duration {
    let system = Principal::system();
    // The calls own their items, as the API's do; splitting them is not part of the timing.
    let calls: Vec<Vec<Value>> = rows.chunks(BATCH).map(<[Value]>::to_vec).collect();
    let started = Instant::now();
    for chunk in calls {
        store
            .bulk_create(&system, "tourists", chunk)
            .await
            .expect("bulk insert");
    }
    started.elapsed()
}

fn run(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn report(
    label: &str,
    rows: usize,
    ours: Duration,
    reference: Duration,
    reference_name: &str,
    floor: f64,
) {
    let ours_rate = rows as f64 / ours.as_secs_f64();
    let ref_rate = rows as f64 / reference.as_secs_f64();
    let ratio = ours.as_secs_f64() / reference.as_secs_f64();
    println!(
        "{label}: tabiji storage {rows} rows in {:.3} s = {ours_rate:.0} rows/s",
        ours.as_secs_f64()
    );
    println!(
        "{label}: {reference_name} {rows} rows in {:.3} s = {ref_rate:.0} rows/s",
        reference.as_secs_f64()
    );
    println!(
        "{label}: ratio tabiji/{reference_name} = {ratio:.2}x (target <= 3.00x: {}); rate target >= {floor:.0} rows/s: {}",
        if ratio <= 3.0 { "met" } else { "NOT met" },
        if ours_rate >= floor { "met" } else { "NOT met" }
    );
}

async fn sqlite_round(data: &[Value], csv: &std::path::Path) -> (Duration, Duration) {
    let rows = data.len();
    let ours_db = Scratch::sqlite();
    let store = open(&ours_db.url).await;
    let ours = through_storage(&store, data).await;
    let ours_path = ours_db.url.trim_start_matches("sqlite://").to_string();
    store.db().conn.clone().close().await.ok();
    let export = Command::new("sqlite3")
        .args(["-csv", "-header", &ours_path, "SELECT * FROM tourists"])
        .output()
        .expect("the sqlite3 shell (apt-get install sqlite3)");
    std::fs::write(csv, export.stdout).unwrap();
    let ref_db = Scratch::sqlite();
    open(&ref_db.url).await.db().conn.clone().close().await.ok();
    let ref_path = ref_db.url.trim_start_matches("sqlite://").to_string();
    let import = format!(".import --csv --skip 1 {} tourists", csv.display());
    let reference = run(Command::new("sqlite3").args([&ref_path, &import]));
    let loaded = Command::new("sqlite3")
        .args([&ref_path, "SELECT count(*) FROM tourists"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&loaded.stdout).trim(),
        rows.to_string(),
        "the reference loaded every row"
    );
    ours_db.remove().await;
    ref_db.remove().await;
    (ours, reference)
}

async fn postgres_round(
    admin_url: &str,
    data: &[Value],
    csv: &std::path::Path,
) -> (Duration, Duration) {
    let ours_db = Scratch::postgres(admin_url)
        .await
        .expect("PostgreSQL scratch database");
    let store = open(&ours_db.url).await;
    let ours = through_storage(&store, data).await;
    store.db().conn.clone().close().await.ok();
    run(Command::new("psql").args([
        &ours_db.url,
        "-qc",
        &format!("\\copy tourists TO '{}' CSV HEADER", csv.display()),
    ]));
    let ref_db = Scratch::postgres(admin_url)
        .await
        .expect("PostgreSQL scratch database");
    open(&ref_db.url).await.db().conn.clone().close().await.ok();
    let reference = run(Command::new("psql").args([
        &ref_db.url,
        "-qc",
        &format!("\\copy tourists FROM '{}' CSV HEADER", csv.display()),
    ]));
    ours_db.remove().await;
    ref_db.remove().await;
    (ours, reference)
}

/// The allocator the `tabiji` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut rng = Rng::new(42);
    let data: Vec<Value> = (0..rows).map(|i| tourist(&mut rng, i)).collect();
    let columns = data[0].as_object().unwrap().len();
    println!(
        "bulk insert benchmark: {rows} tourists x {columns} fields (+ id, points_balance, created_at, updated_at)"
    );
    let csv = std::env::temp_dir().join(format!("tabiji-bench-{}.csv", std::process::id()));

    // Each round runs tabiji then the reference; the best of the rounds counts for each, since
    // the machine is shared and only slowed down by others.
    let repeat: usize = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..repeat {
        let (ours, reference) = sqlite_round(&data, &csv).await;
        best = (best.0.min(ours), best.1.min(reference));
    }
    report("sqlite", rows, best.0, best.1, "sqlite3 .import", 50_000.0);

    let postgres = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    if let Some(admin_url) = postgres {
        let mut best = (Duration::MAX, Duration::MAX);
        for _ in 0..repeat {
            let (ours, reference) = postgres_round(&admin_url, &data, &csv).await;
            best = (best.0.min(ours), best.1.min(reference));
        }
        report("postgres", rows, best.0, best.1, "COPY", 30_000.0);
    } else {
        println!("postgres: skipped (set DATABASE_URL=postgres://... to include it)");
    }
    let _ = std::fs::remove_file(&csv);
}
