//! Faults: PostgreSQL crashes and comes back while a scenario is sending. The service says
//! the database is unavailable (health and API answer 503 with `Retry-After`), the workers
//! carry on by themselves once it is back, and every contact gets each message exactly once.
//!
//! The server restarted is one of the test's own ([`PrivatePostgres`]), never the one
//! `DATABASE_URL` names, which other tests are using. The test runs where `DATABASE_URL`
//! names a PostgreSQL server, as the other PostgreSQL tests do.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabiji_connectors::Recording;
use tabiji_e2e::postgres::PrivatePostgres;
use tabiji_e2e::{TestApp, client, spawn_app_sending};
use tabiji_storage::scratch::Scratch;

const CONTACTS: usize = 200;

/// Waits (up to `limit`) until `done` holds, polling every 100 ms.
async fn within<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn health(app: &TestApp) -> (u16, Value, Option<String>) {
    let response = client()
        .get(app.url("/api/health"))
        .send()
        .await
        .expect("the server answers while the database is away");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, response.json().await.unwrap(), retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_mid_scenario_loses_and_repeats_nothing() {
    if !std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        eprintln!("skipped: DATABASE_URL does not name a PostgreSQL server");
        return;
    }
    let server = PrivatePostgres::start();
    let scratch = Scratch::postgres(&server.url())
        .await
        .expect("the private server makes a scratch database");
    // A provider that takes a while per batch, so that the crash lands mid-send.
    let channel = Arc::new(Recording::new().with_delay(Duration::from_millis(150)));
    let config = tabiji_engine::runtime::Config {
        delivery_batch: 10,
        ..Default::default()
    };
    let app = spawn_app_sending(scratch, config, vec![channel.clone()]).await;

    let ids = app
        .create_tourists(
            (0..CONTACTS)
                .map(|i| json!({"email": format!("guest{i}@example.jp")}))
                .collect(),
        )
        .await;
    let flow = json!({
        "format": 1, "name": "two mails across a crash",
        "entry": {"type": "api", "next": "first"},
        "nodes": [
            {"id": "first", "type": "send", "channel": "test", "template": "first", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "2s", "next": "second"},
            {"id": "second", "type": "send", "channel": "test", "template": "second", "next": "end"},
            {"id": "end", "type": "exit"}
        ]
    });
    let flow_id = app.publish_and_enter(flow, &ids).await;

    let (served, sent) = (&app, &channel);
    within(Duration::from_secs(30), "the first sends", || async move {
        sent.count() >= 30
    })
    .await;
    let crash = tokio::task::spawn_blocking(move || {
        server.crash();
        server
    });
    let server = crash.await.unwrap();
    let sent_at_crash = channel.count();
    assert!(
        sent_at_crash < 2 * CONTACTS,
        "the crash came after the last send"
    );

    // The outage is reported, not hidden: health and the API answer 503 with Retry-After.
    within(
        Duration::from_secs(10),
        "health to report the outage",
        || async move { health(served).await.0 == 503 },
    )
    .await;
    let (_, body, retry_after) = health(&app).await;
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let response = app
        .admin
        .get(app.url("/api/data/tourists?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");

    let restart = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    });
    let server = restart.await.unwrap();
    within(
        Duration::from_secs(30),
        "health to recover",
        || async move { health(served).await.0 == 200 },
    )
    .await;

    // Nothing lost: every contact gets both mails; nothing repeated: each exactly once.
    within(Duration::from_secs(90), "every mail", || async move {
        sent.count() >= 2 * CONTACTS
    })
    .await;
    let stats = app
        .get_until(&format!("/api/flows/{flow_id}/stats"), |v| {
            v["outcomes"]["exit"] == CONTACTS
        })
        .await;
    assert_eq!(
        stats["deliveries"],
        json!({"sent": 2 * CONTACTS}),
        "every delivery is recorded as sent, none unknown or dead: {stats}"
    );
    // Late duplicates would arrive after the count is reached: give them the time to.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times: HashMap<(i64, String), usize> = HashMap::new();
    for message in channel.sent() {
        *times
            .entry((message.contact_id, message.template.clone()))
            .or_default() += 1;
    }
    for id in &ids {
        for template in ["first", "second"] {
            assert_eq!(
                times.get(&(*id, template.to_string())),
                Some(&1),
                "contact {id} got {template:?} once"
            );
        }
    }
    assert_eq!(times.len(), 2 * CONTACTS);
    app.stop().await;
    drop(server);
}
