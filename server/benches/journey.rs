//! The engine end to end: N contacts (default 1,000,000) through
//! entry → send → wait for the open (3 days) → branch on the prefecture → send → exit,
//! with the recording channel, a test clock, and 10 % of the contacts opening (events with
//! wake-ups). Prints contact-steps per second, the timer sweep, event ingestion, peak memory,
//! and the ratio to the storage ceiling: the same rows written by plain batched INSERTs into
//! the same tables of a fresh database, in the same run.
//!
//! `cargo bench -p tabiji-server --bench journey` (or `scripts/bench/journey`); BENCH_CONTACTS
//! sets N; DATABASE_URL=postgres://… adds PostgreSQL; BENCH_BACKENDS=postgres (or sqlite) runs one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, Utc};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::{Value, json};
use tabiji_connectors::{Recording, Registry};
use tabiji_engine::runtime::{Config, IncomingEvent, Runtime};
use tabiji_model::clock::FixedClock;
use tabiji_server::demo::{Rng, tourist};
use tabiji_storage::journeys::{self, NewDelivery, NewEvent, NewRun, NewStep, RunState};
use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Db, Principal, Store, flows, migration};

async fn open(url: &str) -> Store {
    let db = Db::connect(url).await.expect("scratch database");
    migration::run(&db).await.expect("migrations");
    Store::open(db).await.expect("store")
}

fn flow() -> Value {
    json!({
        "format": 1, "name": "benchmark",
        "entry": {"type": "segment_snapshot", "segment": "all", "next": "mail1"},
        "nodes": [
            {"id": "mail1", "type": "send", "channel": "test", "template": "t1", "next": "wait_open"},
            {"id": "wait_open", "type": "wait_for_event", "event": {"opened": {"of": "mail1"}},
             "timeout": "3d", "on_event": "mail2", "on_timeout": "aichi"},
            {"id": "aichi", "type": "branch", "field": "prefecture", "op": "eq", "value": "愛知県",
             "on_true": "mail2", "on_false": "mail3"},
            {"id": "mail2", "type": "send", "channel": "test", "template": "t2", "next": "end"},
            {"id": "mail3", "type": "send", "channel": "test", "template": "t3", "next": "end"},
            {"id": "end", "type": "exit"}
        ]
    })
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn until_idle(mut step: impl AsyncFnMut() -> usize) -> Duration {
    let started = Instant::now();
    while step().await > 0 {}
    started.elapsed()
}

async fn count(store: &Store, sql: &str) -> i64 {
    let conn = &store.db().conn;
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

struct Measured {
    engine: Duration,
    runs: i64,
    steps: i64,
    deliveries: i64,
    events: i64,
}

async fn engine_round(url: &str, contacts: usize) -> Measured {
    let store = open(url).await;
    let system = Principal::system();
    let mut rng = Rng::new(7);
    let load = Instant::now();
    let mut next = 0;
    while next < contacts {
        let end = (next + 5_000).min(contacts);
        let batch: Vec<Value> = (next..end).map(|i| tourist(&mut rng, i)).collect();
        store.bulk_create(&system, "tourists", batch).await.unwrap();
        next = end;
    }
    println!(
        "  loaded {contacts} tourists in {:.1} s (not timed)",
        load.elapsed().as_secs_f64()
    );

    let t0: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(FixedClock::new(t0));
    let channel = Arc::new(Recording::counting());
    let rt = Runtime::new(
        store.clone(),
        clock.clone(),
        Registry::new().with(channel.clone()),
        Config::default(),
    );
    let created = flows::create(&store, &system, &flow()).await.unwrap();
    flows::publish(&store, &system, created.id).await.unwrap();

    let enter = until_idle(async || rt.enter_step().await.unwrap()).await;
    println!("  entry + first send decided: {:.1} s", enter.as_secs_f64());
    let rss_active = peak_rss_mb();
    let send1 = until_idle(async || rt.deliver_step().await.unwrap()).await;
    println!("  first sends delivered: {:.1} s", send1.as_secs_f64());

    // 10 % open the first mail: events naming the delivery, ingested 10,000 per call.
    let conn = &store.db().conn;
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            format!(
                "SELECT id, contact_id FROM sys_deliveries WHERE node = 'mail1' ORDER BY id LIMIT {}",
                contacts / 10
            ),
        ))
        .await
        .unwrap();
    let opens: Vec<IncomingEvent> = rows
        .iter()
        .map(|r| {
            let id: i64 = r.try_get("", "id").unwrap();
            IncomingEvent {
                event_key: format!("open-{id}"),
                contact_id: r.try_get("", "contact_id").unwrap(),
                name: "opened".into(),
                delivery_id: Some(id),
                properties: json!({}),
                occurred_at: None,
            }
        })
        .collect();
    let events = opens.len();
    clock.advance(Span::hours(1));
    let started = Instant::now();
    for chunk in opens.chunks(10_000) {
        rt.ingest(chunk.to_vec()).await.unwrap();
        while rt.event_step().await.unwrap() > 0 {}
    }
    let eventing = started.elapsed();
    println!(
        "  {events} events ingested and applied in {:.1} s = {:.0} events/s",
        eventing.as_secs_f64(),
        events as f64 / eventing.as_secs_f64()
    );

    clock.advance(Span::days(3));
    let due = count(
        &store,
        "SELECT COUNT(*) AS n FROM sys_runs WHERE state = 'waiting'",
    )
    .await;
    let sweep = until_idle(async || rt.timer_step().await.unwrap()).await;
    println!(
        "  {due} due timers swept (branch decided, send written) in {:.1} s = {:.0} timers/s",
        sweep.as_secs_f64(),
        due as f64 / sweep.as_secs_f64()
    );
    let send2 = until_idle(async || rt.deliver_step().await.unwrap()).await;
    println!("  second sends delivered: {:.1} s", send2.as_secs_f64());

    let m = Measured {
        engine: enter + send1 + eventing + sweep + send2,
        runs: count(&store, "SELECT COUNT(*) AS n FROM sys_runs").await,
        steps: count(&store, "SELECT COUNT(*) AS n FROM sys_run_steps").await,
        deliveries: count(&store, "SELECT COUNT(*) AS n FROM sys_deliveries").await,
        events: count(&store, "SELECT COUNT(*) AS n FROM sys_events").await,
    };
    assert_eq!(
        channel.count() as i64,
        m.deliveries,
        "every delivery sent once"
    );
    assert_eq!(m.deliveries, 2 * contacts as i64);
    let finished = count(
        &store,
        "SELECT COUNT(*) AS n FROM sys_runs WHERE state = 'finished'",
    )
    .await;
    assert_eq!(finished, contacts as i64, "no run left behind");
    println!(
        "  peak memory with {contacts} runs waiting: {rss_active:.0} MB (whole process, loader included)"
    );
    store.db().conn.clone().close().await.ok();
    m
}

/// The same rows as the engine wrote, by plain batched INSERTs in transactions of 2,000 rows.
async fn ceiling(url: &str, m: &Measured) -> Duration {
    let store = open(url).await;
    let conn = &store.db().conn;
    let batch = 2_000usize;
    let started = Instant::now();
    let mut run_ids = Vec::new();
    for start in (0..m.runs).step_by(batch) {
        let end = (start + batch as i64).min(m.runs);
        let txn = conn.begin().await.unwrap();
        let rows = (start..end)
            .map(|i| NewRun {
                flow_id: 1,
                version: 1,
                contact_id: i + 1,
                entry_key: "snapshot".into(),
                state: RunState {
                    state: "finished",
                    node: Some("end".into()),
                    wake_at: None,
                    iteration: 1,
                    outcome: Some("exit".into()),
                },
            })
            .collect();
        run_ids.extend(
            journeys::insert_runs(&txn, rows, 0)
                .await
                .unwrap()
                .into_values(),
        );
        txn.commit().await.unwrap();
    }
    run_ids.sort_unstable();
    let per_run = (m.steps / m.runs.max(1)).max(1);
    for chunk in run_ids.chunks(batch / per_run as usize) {
        let txn = conn.begin().await.unwrap();
        let rows = chunk
            .iter()
            .flat_map(|&run_id| {
                (0..per_run).map(move |n| NewStep {
                    run_id,
                    flow_id: 1,
                    node: format!("node{n}"),
                    outcome: "sent".into(),
                    at: n,
                })
            })
            .collect();
        journeys::insert_steps(&txn, rows).await.unwrap();
        txn.commit().await.unwrap();
    }
    let per_run = (m.deliveries / m.runs.max(1)).max(1);
    for chunk in run_ids.chunks(batch / per_run as usize) {
        let txn = conn.begin().await.unwrap();
        let rows = chunk
            .iter()
            .flat_map(|&run_id| {
                (0..per_run).map(move |n| NewDelivery {
                    run_id,
                    flow_id: 1,
                    node: format!("mail{n}"),
                    iteration: 0,
                    contact_id: run_id,
                    channel: "test".into(),
                    template: "t".into(),
                    sender: None,
                    next_attempt_at: 0,
                })
            })
            .collect();
        journeys::insert_deliveries(&txn, rows, 0).await.unwrap();
        txn.commit().await.unwrap();
    }
    for start in (0..m.events).step_by(batch) {
        let end = (start + batch as i64).min(m.events);
        let txn = conn.begin().await.unwrap();
        let rows = (start..end)
            .map(|i| NewEvent {
                event_key: format!("open-{i}"),
                contact_id: i + 1,
                name: "opened".into(),
                delivery_id: Some(i + 1),
                properties: "{}".into(),
                occurred_at: 0,
            })
            .collect();
        journeys::insert_events(&txn, rows, 0).await.unwrap();
        txn.commit().await.unwrap();
    }
    let elapsed = started.elapsed();
    store.db().conn.clone().close().await.ok();
    elapsed
}

async fn bench(label: &str, engine_db: Scratch, ceiling_db: Scratch, contacts: usize, floor: f64) {
    println!("{label}: {contacts} contacts");
    let m = engine_round(&engine_db.url, contacts).await;
    let reference = ceiling(&ceiling_db.url, &m).await;
    let rate = m.steps as f64 / m.engine.as_secs_f64();
    let ratio = m.engine.as_secs_f64() / reference.as_secs_f64();
    println!(
        "{label}: engine {} contact-steps ({} runs, {} deliveries, {} events) in {:.1} s = {rate:.0} contact-steps/s (target >= {floor:.0}: {})",
        m.steps,
        m.runs,
        m.deliveries,
        m.events,
        m.engine.as_secs_f64(),
        if rate >= floor { "met" } else { "NOT met" }
    );
    println!(
        "{label}: storage ceiling (the same rows by plain batched INSERTs) {:.1} s; ratio engine/ceiling = {ratio:.2}x",
        reference.as_secs_f64()
    );
    engine_db.remove().await;
    ceiling_db.remove().await;
}

#[tokio::main]
async fn main() {
    let contacts: usize = std::env::var("BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let only = std::env::var("BENCH_BACKENDS").unwrap_or_default();
    if only.is_empty() || only.contains("sqlite") {
        let (a, b) = (Scratch::sqlite(), Scratch::sqlite());
        bench("sqlite", a, b, contacts, 20_000.0).await;
    }
    if let Ok(url) = std::env::var("DATABASE_URL")
        && url.starts_with("postgres")
        && (only.is_empty() || only.contains("postgres"))
    {
        let a = Scratch::postgres(&url).await.expect("postgres scratch");
        let b = Scratch::postgres(&url).await.expect("postgres scratch");
        bench("postgres", a, b, contacts, 10_000.0).await;
    }
}
