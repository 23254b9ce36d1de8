//! Calculated attributes (DM-9) over N tourists (default 1,000,000) and about N × 10 purchases:
//! the full recomputation of three attributes (purchase count, spending in the last 365 days,
//! last purchase) through the product's own path (`calculated::refresh`), against the
//! database's own aggregate of the same rows (`SELECT tourist_id, count(*), sum(amount),
//! max(occurred_at) … GROUP BY tourist_id`, read to the end) in the same run; then the
//! incremental tick after 1,000 new purchases. Prints the ratio. The target: a full
//! recomputation within 60 s at 1,000,000 tourists.
//!
//! `cargo bench -p tabiji-server --bench calculated`; BENCH_TOURISTS sets N,
//! BENCH_PURCHASES_PER_TOURIST the history (default 10); DATABASE_URL=postgres://… adds
//! PostgreSQL; BENCH_BACKENDS picks one; BENCH_DATABASE_URL reuses a loaded database.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use tabiji_storage::calculated::{self, NewCalculated};
use tabiji_storage::scratch::Scratch;
use tabiji_storage::search::parse_zone;
use tabiji_storage::{Principal, Store};

mod common;

use common::{load, median, now, open};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REPEAT: usize = 3;

fn attributes() -> Vec<NewCalculated> {
    [
        json!({"key": "purchase_count", "label": {"ja": "購入回数", "en": "Purchases"},
               "store": "purchases", "measure": "count"}),
        json!({"key": "spent_365", "label": {"ja": "年間購入額", "en": "Spent in a year"},
               "store": "purchases", "measure": {"sum": "amount"}, "period": {"last_days": 365}}),
        json!({"key": "last_purchase_at", "label": {"ja": "最終購入", "en": "Last purchase"},
               "store": "purchases", "measure": "last_at"}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect()
}

async fn reference(store: &Store) -> Duration {
    let backend = store.db().backend();
    let started = Instant::now();
    let rows = store
        .db()
        .conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT tourist_id, count(*) AS n, sum(amount) AS s, max(occurred_at) AS m \
             FROM purchases GROUP BY tourist_id",
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    started.elapsed()
}

async fn run(url: &str, tourists: usize, per_tourist: u64, name: &str, loaded: bool) {
    let store = open(url).await;
    if !loaded {
        load(&store, tourists, per_tourist).await;
    }
    let admin = Principal::system();
    let defs = attributes();
    if calculated::list(&store, &admin).await.unwrap().is_empty() {
        let created = Instant::now();
        for def in &defs {
            calculated::create(&store, &admin, def, now())
                .await
                .unwrap();
        }
        println!(
            "  defining the three attributes (each computed once for everyone): {:.1} s",
            created.elapsed().as_secs_f64()
        );
    }
    let mut full = Vec::new();
    let mut baseline = Vec::new();
    for round in 0..REPEAT {
        // Every value changes, as on the first night: cleared, then recomputed.
        store
            .db()
            .conn
            .execute_unprepared(
                "UPDATE tourists SET purchase_count = NULL, spent_365 = NULL, last_purchase_at = NULL",
            )
            .await
            .unwrap();
        let started = Instant::now();
        let mut changed = 0;
        for def in &defs {
            changed += calculated::refresh(&store, def, None, now()).await.unwrap();
        }
        full.push(started.elapsed());
        baseline.push(reference(&store).await);
        if round == 0 {
            println!("  values written per full recomputation: {changed}");
        }
    }
    let full = median(full);
    let baseline = median(baseline);
    // The incremental path: 1,000 new purchases of 1,000 tourists.
    let mut rows = Vec::new();
    for i in 0..1_000i64 {
        rows.push(
            json!({"tourist_id": 1 + i * 97 % tourists as i64, "amount": 1000,
                         "occurred_at": now().to_rfc3339()}),
        );
    }
    store.bulk_create(&admin, "purchases", rows).await.unwrap();
    let started = Instant::now();
    let changed = calculated::tick(&store, parse_zone(None).unwrap(), now())
        .await
        .unwrap();
    let tick = started.elapsed();
    println!(
        "{name}: full recomputation of 3 attributes {:.1} s (target ≤ 60 s) · the database's own \
         GROUP BY of the same rows {:.1} s · ratio {:.2}× · incremental tick after 1,000 new \
         purchases {:.0} ms ({changed} values)",
        full.as_secs_f64(),
        baseline.as_secs_f64(),
        full.as_secs_f64() / baseline.as_secs_f64(),
        tick.as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let tourists: usize = std::env::var("BENCH_TOURISTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_tourist: u64 = std::env::var("BENCH_PURCHASES_PER_TOURIST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let only = std::env::var("BENCH_BACKENDS").unwrap_or_default();
    println!("calculated attributes over {tourists} tourists, ~{per_tourist} purchases each");
    // BENCH_DATABASE_URL runs on a database a previous run loaded (and left, when stopped),
    // since loading 11 million rows through the product takes 20 minutes.
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        let name = if url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        run(&url, tourists, per_tourist, name, true).await;
        return;
    }
    if only.is_empty() || only == "sqlite" {
        let scratch = Scratch::sqlite();
        run(&scratch.url, tourists, per_tourist, "SQLite", false).await;
        scratch.remove().await;
    }
    if (only.is_empty() || only == "postgres")
        && let Ok(url) = std::env::var("DATABASE_URL")
        && url.starts_with("postgres")
    {
        let scratch = Scratch::postgres(&url).await.unwrap();
        run(&scratch.url, tourists, per_tourist, "PostgreSQL", false).await;
        scratch.remove().await;
    }
}
