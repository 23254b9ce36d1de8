//! Reading one tourist by id through the API at 1,000,000 stored, and the server's memory.
//!
//! Loads BENCH_ROWS tourists (default 1,000,000) into a scratch SQLite database, starts the real
//! `tabiji serve`, reads random tourists one after another over loopback with an API token, and
//! reads the same ids directly from SQLite in-process as the reference. Prints p50/p99 of both,
//! their ratio, and the server's resident memory (VmRSS, VmHWM) after the run.
//! `cargo bench -p tabiji-server --bench get_by_id` (or `scripts/bench/get_by_id`).

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::Value;
use tabiji_server::demo::{Rng, tourist};
use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Db, Principal, Store, migration};

const READS: usize = 20_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn memory_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The allocator the `tabiji` binary uses, so the figures are the binary's.
mod served;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let scratch = Scratch::sqlite();
    let db = Db::connect(&scratch.url).await.unwrap();
    migration::run(&db).await.unwrap();
    let store = Store::open(db.clone()).await.unwrap();
    let started = Instant::now();
    let mut rng = Rng::new(7);
    let system = Principal::system();
    for start in (0..rows).step_by(5_000) {
        let batch: Vec<Value> = (start..(start + 5_000).min(rows))
            .map(|i| tourist(&mut rng, i))
            .collect();
        store.bulk_create(&system, "tourists", batch).await.unwrap();
    }
    println!(
        "loaded {rows} tourists in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let token = served::admin_token(&db).await;
    let (mut server, base) = served::serve(&scratch.url, &[], &[("RUST_LOG", "warn".as_ref())]);
    let pid = server.id();
    let ids: Vec<i64> = (0..READS)
        .map(|_| 1 + rng.below(rows as u64) as i64)
        .collect();
    let client = reqwest::Client::new();
    for id in ids.iter().take(500) {
        client
            .get(format!("{base}/api/data/tourists/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    }
    let mut api = Vec::with_capacity(READS);
    for id in &ids {
        let t = Instant::now();
        let r = client
            .get(format!("{base}/api/data/tourists/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        api.push(t.elapsed());
    }
    let rss = memory_kib(pid, "VmRSS:");
    let hwm = memory_kib(pid, "VmHWM:");

    let mut direct = Vec::with_capacity(READS);
    for id in &ids {
        let t = Instant::now();
        let row = db
            .conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT * FROM tourists WHERE id = ?",
                [(*id).into()],
            ))
            .await
            .unwrap();
        assert!(row.is_some());
        direct.push(t.elapsed());
    }
    api.sort();
    direct.sort();
    let (a50, a99, d50, d99) = (
        percentile(&api, 0.5),
        percentile(&api, 0.99),
        percentile(&direct, 0.5),
        percentile(&direct, 0.99),
    );
    println!(
        "GET /api/data/tourists/{{id}} at {rows} stored, {READS} sequential reads over loopback:"
    );
    println!(
        "  api:    p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(a50),
        ms(a99),
        ms(*api.last().unwrap())
    );
    println!(
        "  direct: p50 {:.3} ms  p99 {:.3} ms  (SELECT by id in-process, the reference)",
        ms(d50),
        ms(d99)
    );
    println!(
        "  ratio api/direct: p50 {:.1}x  p99 {:.1}x; target p99 <= 5 ms: {}",
        ms(a50) / ms(d50),
        ms(a99) / ms(d99),
        if ms(a99) <= 5.0 { "met" } else { "NOT met" }
    );
    println!(
        "tabiji serve memory after the run: VmRSS {} MB, peak VmHWM {} MB; target <= 300 MB: {}",
        rss / 1024,
        hwm / 1024,
        if hwm / 1024 <= 300 { "met" } else { "NOT met" }
    );
    server.kill().unwrap();
    server.wait().unwrap();
    db.conn.close().await.ok();
    scratch.remove().await;
}
