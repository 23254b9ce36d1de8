//! 200 concurrent API clients for 60 s against the real `tabiji serve`, while a scenario sends.
//!
//! Loads BENCH_ROWS tourists (default 100,000) into a scratch SQLite database (or the
//! PostgreSQL server DATABASE_URL names), publishes a flow that enters every tourist and sends
//! each a message through the recording channel, and at once runs BENCH_CLIENTS clients (200) for
//! BENCH_SECONDS (60), each with its own connection and token, each request one of: read a
//! tourist by id (60 %), a filtered search of 20 (25 %), a change to a tourist (10 %), a count
//! (5 %). The reference, in the same run: the same clients for the same time on
//! `GET /api/health`, the server's floor. Prints requests, errors, throughput, p50/p99 of both
//! and their ratio, and the messages sent during the load.
//! `cargo bench -p tabiji-server --bench load` (or `scripts/bench/load`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabiji_server::demo::Rng;
use tabiji_storage::scratch::Scratch;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The allocator the `tabiji` binary uses, so the figures are the binary's.
// Shared by the benchmarks: this one needs the loading, not the timing helpers.
#[allow(dead_code)]
mod common;
mod served;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PREFECTURES: [&str; 4] = ["愛知県", "東京都", "岐阜県", "大阪府"];

struct Outcome {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

/// `clients` clients for `seconds`, each calling `request(client, its rng)` in a loop.
async fn run_clients(
    clients: u64,
    seconds: u64,
    base: Arc<String>,
    token: Arc<String>,
    rows: u64,
    mixed: bool,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for n in 0..clients {
        let (base, token) = (base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut rng = Rng::new(1000 + n);
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            while Instant::now() < deadline {
                let id = 1 + rng.below(rows) as i64;
                let pick = rng.below(100);
                let request = if !mixed {
                    client.get(format!("{base}/api/health"))
                } else if pick < 60 {
                    client.get(format!("{base}/api/data/tourists/{id}"))
                } else if pick < 85 {
                    client
                        .post(format!("{base}/api/data/tourists/search"))
                        .json(&json!({"filter": {"all": [
                            {"field": {"key": "prefecture", "op": "eq",
                                       "value": PREFECTURES[rng.below(4) as usize]}},
                            {"field": {"key": "visit_count", "op": "gte", "value": rng.below(12)}}]},
                            "limit": 20}))
                } else if pick < 95 {
                    client
                        .patch(format!("{base}/api/data/tourists/{id}"))
                        .json(&json!({"visit_count": rng.below(50)}))
                } else {
                    client
                        .post(format!("{base}/api/data/tourists/count"))
                        .json(&json!({"filter": {"field": {"key": "prefecture", "op": "eq", "value": "東京都"}}}))
                };
                let started = Instant::now();
                match request.bearer_auth(token.as_str()).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.bytes().await;
                        latencies.push(started.elapsed());
                        if !status.is_success() || body.is_err() {
                            errors.push(format!("{status}"));
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (latencies, errors)
        }));
    }
    let mut outcome = Outcome {
        latencies: Vec::new(),
        errors: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        outcome.latencies.extend(latencies);
        outcome.errors.extend(errors);
    }
    outcome.latencies.sort();
    outcome
}

fn report(name: &str, outcome: &Outcome, seconds: u64) -> (f64, f64) {
    let n = outcome.latencies.len();
    let (p50, p99) = (
        ms(percentile(&outcome.latencies, 0.5)),
        ms(percentile(&outcome.latencies, 0.99)),
    );
    println!(
        "  {name}: {n} requests, {} errors, {:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.1} ms",
        outcome.errors.len(),
        n as f64 / seconds as f64,
        ms(*outcome.latencies.last().unwrap()),
    );
    if let Some(first) = outcome.errors.first() {
        println!("    first error: {first}");
    }
    (p50, p99)
}

fn sent_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let rows = env_or("BENCH_ROWS", 100_000);
    let clients = env_or("BENCH_CLIENTS", 200);
    let seconds = env_or("BENCH_SECONDS", 60);
    let scratch = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Scratch::postgres(&url).await.unwrap(),
        _ => Scratch::sqlite(),
    };
    let store = common::open(&scratch.url).await;
    common::load(&store, rows as usize, 0).await;
    let db = store.db().clone();
    let token = served::admin_token(&db).await;
    let sent_file = std::env::temp_dir().join(format!("tabiji-load-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&sent_file);

    let (mut server, base) = served::serve(
        &scratch.url,
        &[],
        &[
            ("TABIJI_TEST_CHANNEL_FILE", sent_file.as_os_str()),
            ("RUST_LOG", "warn".as_ref()),
        ],
    );

    // The scenario that keeps sending: published as the clients start, it enters every
    // tourist (a segment snapshot, in batches behind its cursor) and sends each a message
    // through the recording channel, so its whole path runs beside the clients. Entering the
    // tourists through the API beforehand would let the engine send most of them before the
    // clients begin, the faster the database the more (on PostgreSQL all but the last 1,000).
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/segments"))
        .bearer_auth(&token)
        .json(&json!({"key": "everyone", "name": "everyone", "filter": {"all": []}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let flow = json!({
        "format": 1, "name": "sends during the load",
        "entry": {"type": "segment_snapshot", "segment": "everyone", "next": "mail"},
        "nodes": [
            {"id": "mail", "type": "send", "channel": "test", "template": "welcome-1", "next": "end"},
            {"id": "end", "type": "exit"}
        ]
    });
    let created: Value = client
        .post(format!("{base}/api/flows"))
        .bearer_auth(&token)
        .json(&flow)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flow_id = created["id"].as_i64().unwrap();
    let r = client
        .post(format!("{base}/api/flows/{flow_id}/publish"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let (base, token) = (Arc::new(base), Arc::new(token));
    println!(
        "{clients} clients for {seconds} s each, {rows} tourists, {} (one process on this machine's cores):",
        if scratch.url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let before = sent_lines(&sent_file);
    let mixed = run_clients(clients, seconds, base.clone(), token.clone(), rows, true).await;
    let during = sent_lines(&sent_file) - before;
    let (m50, m99) = report(
        "API mix (60 % read by id, 25 % search, 10 % change, 5 % count)",
        &mixed,
        seconds,
    );
    println!(
        "  messages the scenario sent during the load: {during} of {rows} ({:.0}/s)",
        during as f64 / seconds as f64
    );
    let floor = run_clients(clients, seconds, base, token, rows, false).await;
    let (f50, f99) = report("GET /api/health (the reference)", &floor, seconds);
    println!(
        "  ratio API mix / health: p50 {:.1}x, p99 {:.1}x; errors under load: {}",
        m50 / f50,
        m99 / f99,
        if mixed.errors.is_empty() {
            "none"
        } else {
            "SOME"
        }
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let _ = std::fs::remove_file(&sent_file);
    db.conn.close().await.ok();
    scratch.remove().await;
}
