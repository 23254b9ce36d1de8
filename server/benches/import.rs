//! A partner's daily user file through an import flow: BENCH_ROWS rows (default 100,000) of the
//! demo tourists' 34 fields, half of them changes to tourists already stored (matched by
//! e-mail) and half new, decoded, mapped, parsed, compared with what is stored and written. The
//! reference, in the same run, loads the same file into a bare table of text columns with the
//! database's own loader: the sqlite3 shell's `.import`, PostgreSQL's `COPY` (psql `\copy`).
//! The same file in Shift_JIS measures what decoding it costs over UTF-8.
//!
//! `cargo bench -p tabiji-server --bench import` (or `scripts/bench/import`); BENCH_REPEAT
//! rounds (default 3), the best of each side counting; DATABASE_URL=postgres://… adds PostgreSQL.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tabiji_model::clock::SystemClock;
use tabiji_model::import::ImportFlow;
use tabiji_server::demo::{Rng, tourist};
use tabiji_server::open_store;
use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Principal, Store, imports};

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// The stored half, and the file: every stored tourist changed, interleaved with new ones.
fn data(rows: usize) -> (Vec<Value>, Vec<u8>, Vec<String>) {
    let mut rng = Rng::new(7);
    let stored: Vec<Value> = (0..rows / 2).map(|i| tourist(&mut rng, i)).collect();
    let fresh: Vec<Value> = (rows / 2..rows).map(|i| tourist(&mut rng, i)).collect();
    let keys: Vec<String> = stored[0].as_object().unwrap().keys().cloned().collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&keys).unwrap();
    for (old, new) in stored.iter().zip(&fresh) {
        let mut changed = old.clone();
        changed["city"] = Value::String(format!("{}{}", cell(&old["city"]), "町"));
        changed["visit_count"] = Value::from(old["visit_count"].as_u64().unwrap_or(0) + 1);
        for row in [&changed, new] {
            out.write_record(keys.iter().map(|k| cell(&row[k.as_str()])))
                .unwrap();
        }
    }
    (stored, out.into_inner().unwrap(), keys)
}

fn flow(keys: &[String]) -> ImportFlow {
    let columns: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::json!({"column": k, "field": k}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "format": 1, "name": "benchmark users", "entity": "tourists",
        "columns": columns, "action": {"type": "upsert", "key": "email"}
    }))
    .unwrap()
}

/// Loads the stored half (not timed), then times the import of `file`.
async fn ours(store: &Store, stored: &[Value], flow: &ImportFlow, file: &[u8]) -> Duration {
    let system = Principal::system();
    for chunk in stored.chunks(5_000) {
        store
            .bulk_create(&system, "tourists", chunk.to_vec())
            .await
            .unwrap();
    }
    imports::save(store, &system, "bench", flow, chrono::Utc::now())
        .await
        .unwrap();
    let started = Instant::now();
    let run = tabiji_engine::import::run_file(
        store,
        &system,
        "bench",
        flow,
        "bench.csv",
        file,
        &SystemClock,
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let rows = (stored.len() * 2) as i64;
    assert_eq!(
        (run.rows_read, run.created, run.updated, run.rejected),
        (rows, rows / 2, rows / 2, 0),
        "{:?}",
        run.error
    );
    elapsed
}

fn timed(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn bare_table(keys: &[String]) -> String {
    let columns: Vec<String> = keys.iter().map(|k| format!("\"{k}\" text")).collect();
    format!("CREATE TABLE bare ({})", columns.join(", "))
}

struct Round {
    utf8: Duration,
    sjis: Duration,
    reference: Duration,
}

async fn sqlite_round(
    stored: &[Value],
    flow: &ImportFlow,
    utf8: &[u8],
    sjis: &[u8],
    path: &std::path::Path,
    keys: &[String],
) -> Round {
    let mut times = Vec::new();
    for file in [utf8, sjis] {
        let scratch = Scratch::sqlite();
        let store = open_store(&scratch.url).await.unwrap();
        times.push(ours(&store, stored, flow, file).await);
        store.db().conn.clone().close().await.ok();
        scratch.remove().await;
    }
    let scratch = Scratch::sqlite();
    let db = scratch.url.trim_start_matches("sqlite://").to_string();
    timed(Command::new("sqlite3").args([&db, &bare_table(keys)]));
    let import = format!(".import --csv --skip 1 {} bare", path.display());
    let reference = timed(Command::new("sqlite3").args([&db, &import]));
    scratch.remove().await;
    Round {
        utf8: times[0],
        sjis: times[1],
        reference,
    }
}

async fn postgres_round(
    admin_url: &str,
    stored: &[Value],
    flow: &ImportFlow,
    utf8: &[u8],
    sjis: &[u8],
    path: &std::path::Path,
    keys: &[String],
) -> Round {
    let mut times = Vec::new();
    for file in [utf8, sjis] {
        let scratch = Scratch::postgres(admin_url).await.unwrap();
        let store = open_store(&scratch.url).await.unwrap();
        times.push(ours(&store, stored, flow, file).await);
        store.db().conn.clone().close().await.ok();
        scratch.remove().await;
    }
    let scratch = Scratch::postgres(admin_url).await.unwrap();
    timed(Command::new("psql").args([&scratch.url, "-qc", &bare_table(keys)]));
    let copy = format!("\\copy bare FROM '{}' CSV HEADER", path.display());
    let reference = timed(Command::new("psql").args([&scratch.url, "-qc", &copy]));
    scratch.remove().await;
    Round {
        utf8: times[0],
        sjis: times[1],
        reference,
    }
}

fn report(label: &str, rows: usize, best: &Round, reference: &str, floor: f64) {
    let rate = rows as f64 / best.utf8.as_secs_f64();
    let ratio = best.utf8.as_secs_f64() / best.reference.as_secs_f64();
    let sjis = best.sjis.as_secs_f64() / best.utf8.as_secs_f64() - 1.0;
    println!(
        "{label}: tabiji import {rows} rows (UTF-8) in {:.3} s = {rate:.0} rows/s (target >= {floor:.0}: {})",
        best.utf8.as_secs_f64(),
        if rate >= floor { "met" } else { "NOT met" }
    );
    println!(
        "{label}: {reference} of the same file into a bare table in {:.3} s = {:.0} rows/s",
        best.reference.as_secs_f64(),
        rows as f64 / best.reference.as_secs_f64()
    );
    println!(
        "{label}: ratio tabiji/{reference} = {ratio:.2}x (target <= 3.00x: {})",
        if ratio <= 3.0 { "met" } else { "NOT met" }
    );
    println!(
        "{label}: the same file in Shift_JIS in {:.3} s: {:+.1} % over UTF-8 (target <= 10 %: {})",
        best.sjis.as_secs_f64(),
        sjis * 100.0,
        if sjis <= 0.10 { "met" } else { "NOT met" }
    );
}

fn best(rounds: &[Round]) -> Round {
    Round {
        utf8: rounds.iter().map(|r| r.utf8).min().unwrap(),
        sjis: rounds.iter().map(|r| r.sjis).min().unwrap(),
        reference: rounds.iter().map(|r| r.reference).min().unwrap(),
    }
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
    let repeat: usize = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (stored, utf8, keys) = data(rows);
    let text = String::from_utf8(utf8.clone()).unwrap();
    let (encoded, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!unmappable, "the demo data is all Shift_JIS");
    let sjis = encoded.into_owned();
    println!(
        "import benchmark: {rows} rows x {} columns ({} MB UTF-8), half updates by e-mail, half new",
        keys.len(),
        utf8.len() / 1_000_000
    );
    let path = std::env::temp_dir().join(format!("tabiji-import-bench-{}.csv", std::process::id()));
    std::fs::write(&path, &utf8).unwrap();

    let mut rounds = Vec::new();
    for _ in 0..repeat {
        rounds.push(sqlite_round(&stored, &flow(&keys), &utf8, &sjis, &path, &keys).await);
    }
    report("sqlite", rows, &best(&rounds), "sqlite3 .import", 50_000.0);

    let postgres = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    if let Some(admin_url) = postgres {
        let mut rounds = Vec::new();
        for _ in 0..repeat {
            rounds.push(
                postgres_round(
                    &admin_url,
                    &stored,
                    &flow(&keys),
                    &utf8,
                    &sjis,
                    &path,
                    &keys,
                )
                .await,
            );
        }
        report("postgres", rows, &best(&rounds), "COPY", 30_000.0);
    } else {
        println!("postgres: skipped (set DATABASE_URL=postgres://... to include it)");
    }
    let _ = std::fs::remove_file(&path);
}
