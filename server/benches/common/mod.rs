//! What the benchmarks share: the demo data loaded through the product's own bulk path, and
//! the median of repeated timings.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tabiji_server::demo::{Rng, tourist};
use tabiji_storage::{Db, Principal, Store, migration};

pub fn now() -> DateTime<Utc> {
    // The demo data's history runs up to 1 November 2026.
    "2026-11-01T03:00:00Z".parse().unwrap()
}

pub async fn open(url: &str) -> Store {
    let db = Db::connect(url).await.expect("scratch database");
    migration::run(&db).await.expect("migrations");
    Store::open(db).await.expect("store")
}

pub async fn load(store: &Store, tourists: usize, per_tourist: u64) {
    let system = Principal::system();
    let mut rng = Rng::new(11);
    let started = Instant::now();
    let mut ids = Vec::with_capacity(tourists);
    let mut next = 0;
    while next < tourists {
        let end = (next + 5_000).min(tourists);
        let batch: Vec<Value> = (next..end).map(|i| tourist(&mut rng, i)).collect();
        ids.extend(
            store
                .bulk_create(&system, "tourists", batch)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id),
        );
        next = end;
    }
    let end = now().timestamp();
    let mut batch = Vec::with_capacity(5_000);
    let mut written = 0usize;
    for (n, id) in ids.iter().enumerate() {
        for _ in 0..rng.below(per_tourist * 2 + 1) {
            let at = DateTime::from_timestamp(end - rng.below(2 * 365 * 86_400) as i64, 0)
                .unwrap()
                .to_rfc3339();
            let amount = 300 * (1 + rng.below(40));
            batch.push(
                json!({"tourist_id": id, "occurred_at": at, "amount": amount,
                "product_category": rng.pick(&["food", "souvenir", "tour", "hot_springs"])}),
            );
        }
        if batch.len() >= 5_000 || n + 1 == ids.len() {
            written += batch.len();
            store
                .bulk_create(&system, "purchases", std::mem::take(&mut batch))
                .await
                .unwrap();
        }
    }
    let conn = &store.db().conn;
    conn.execute_unprepared("ANALYZE").await.unwrap();
    println!(
        "  loaded {tourists} tourists and {written} purchases in {:.0} s (not timed)",
        started.elapsed().as_secs_f64()
    );
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
