//! Exporting BENCH_ROWS tourists (default 1,000,000) as CSV through the HTTP API of a `tabiji
//! serve` process, read to the end by a client: the rate, and the server's peak resident memory
//! while it runs (its high-water mark is reset just before). The reference, in
//! the same run, is the database's own CSV writer over the same rows and columns: the sqlite3
//! shell's `-csv` mode, PostgreSQL's `COPY … TO` (psql `\copy`).
//!
//! `cargo bench -p tabiji-server --bench export` (or `scripts/bench/export`); BENCH_REPEAT
//! rounds (default 3), the median counting; DATABASE_URL=postgres://… adds PostgreSQL, and
//! BENCH_DATABASE_URL keeps the loaded database between runs.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Principal, Store};

mod common;
mod served;

/// One line of a process's `/proc/PID/status` (`VmHWM`, `RssAnon` …), in MB.
fn status_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Samples a process's anonymous resident memory (its heap: what the export itself holds, not
/// the database file SQLite maps) until told to stop; the largest sample, in MB.
fn sample_anonymous(
    pid: u32,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<f64>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(status_mb(pid, "RssAnon:"));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    (stop, sampler)
}

fn reset_peak_rss(pid: u32) {
    // Writing 5 to clear_refs resets the high-water mark (Linux 4.0 and later).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// The time, the peak resident memory (all of it, and anonymous only) and the bytes received.
async fn ours(base: &str, token: &str, rows: usize, pid: u32) -> (Duration, (f64, f64), u64) {
    let client = reqwest::Client::new();
    reset_peak_rss(pid);
    let (stop, sampler) = sample_anonymous(pid);
    let started = Instant::now();
    let mut response = client
        .post(format!("{base}/api/data/tourists/export?format=csv"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut bytes = 0u64;
    let mut lines = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = (status_mb(pid, "VmHWM:"), sampler.join().unwrap());
    assert!(
        lines > rows as u64,
        "{lines} lines (a header and one per row) for {rows} rows"
    );
    (elapsed, peak, bytes)
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

fn columns(store: &Store) -> String {
    let schema = store.schemas().get("tourists").unwrap();
    std::iter::once("id".to_string())
        .chain(schema.fields.iter().map(|f| format!("\"{}\"", f.key)))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn round(url: &str, rows: usize, repeat: usize, label: &str) {
    let store = common::open(url).await;
    let have = store.count(&Principal::system(), "tourists").await.unwrap() as usize;
    if have < rows {
        common::load(&store, rows - have, 0).await;
    }
    let token = served::admin_token(store.db()).await;
    let columns = columns(&store);
    store.db().conn.clone().close().await.ok();
    let (mut server, base) = served::serve(url, &["--no-worker"], &[("RUST_LOG", "info".as_ref())]);
    let total = rows.max(have);
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    let mut size = 0;
    for _ in 0..repeat {
        let (elapsed, peak, bytes) = ours(&base, &token, total, server.id()).await;
        times.push(elapsed);
        peaks.push(peak);
        size = bytes;
    }
    let select = format!("SELECT {columns} FROM tourists ORDER BY id");
    let mut references = Vec::new();
    for _ in 0..repeat {
        references.push(if url.starts_with("sqlite") {
            let path = url.trim_start_matches("sqlite://");
            timed(
                Command::new("sqlite3")
                    .args(["-csv", "-header", path, &select])
                    .stdout(std::process::Stdio::null()),
            )
        } else {
            timed(Command::new("psql").args([
                url,
                "-qc",
                &format!("\\copy ({select}) TO '/dev/null' CSV HEADER"),
            ]))
        });
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let ours = common::median(times);
    let reference = common::median(references);
    let peak = peaks.iter().map(|p| p.0).fold(0.0, f64::max);
    let anonymous = peaks.iter().map(|p| p.1).fold(0.0, f64::max);
    let rate = total as f64 / ours.as_secs_f64();
    let reference_name = if url.starts_with("sqlite") {
        "sqlite3 -csv"
    } else {
        "COPY TO"
    };
    println!(
        "{label}: tabiji export of {total} tourists ({} MB CSV) in {:.2} s = {rate:.0} rows/s (target >= 200000: {})",
        size / 1_000_000,
        ours.as_secs_f64(),
        if rate >= 200_000.0 { "met" } else { "NOT met" }
    );
    println!(
        "{label}: the server's peak anonymous resident memory during the export {anonymous:.0} MB (target <= 100: {}); all resident memory, with the database file SQLite maps, {peak:.0} MB",
        if anonymous <= 100.0 { "met" } else { "NOT met" }
    );
    println!(
        "{label}: {reference_name} of the same rows in {:.2} s = {:.0} rows/s; ratio tabiji/{reference_name} = {:.2}x",
        reference.as_secs_f64(),
        total as f64 / reference.as_secs_f64(),
        ours.as_secs_f64() / reference.as_secs_f64()
    );
}

/// The allocator the `tabiji` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let repeat: usize = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!("export benchmark: {rows} tourists, every field, CSV over HTTP");
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    if backends.contains("sqlite") {
        match std::env::var("BENCH_DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("sqlite"))
        {
            Some(url) => round(&url, rows, repeat, "sqlite").await,
            None => {
                let scratch = Scratch::sqlite();
                round(&scratch.url, rows, repeat, "sqlite").await;
                scratch.remove().await;
            }
        }
    }
    let postgres = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    match postgres {
        Some(admin_url) if backends.contains("postgres") => {
            let scratch = Scratch::postgres(&admin_url).await.unwrap();
            round(&scratch.url, rows, repeat, "postgres").await;
            scratch.remove().await;
        }
        _ => println!("postgres: skipped (set DATABASE_URL=postgres://... to include it)"),
    }
}
