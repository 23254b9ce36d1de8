//! Rate limits on the public and partner endpoints: one address flooding the tracking links
//! still gets its pixels and redirects, but stops being recorded; its unsubscribes and event
//! calls are answered 429 with Retry-After; another address is not affected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, backends, spawn_app_tuned};
use tabiji_engine::personalise::Tracker;
use tabiji_server::throttle::Throttle;

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Sends one message through the recording channel; its delivery and contact.
async fn one_delivery(app: &TestApp) -> (i64, i64) {
    let (status, created) = app
        .post("/api/data/tourists", json!({"email": "reader@example.jp"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let contact = created["record"]["id"].as_i64().unwrap();
    let flow = json!({
        "format": 1, "name": "one mail",
        "entry": {"type": "api", "next": "mail"},
        "nodes": [
            {"id": "mail", "type": "send", "channel": "test", "template": "welcome-1", "next": "end"},
            {"id": "end", "type": "exit"}
        ]
    });
    let (_, created) = app.post("/api/flows", flow).await;
    let flow_id = created["id"].as_i64().unwrap();
    let (status, _) = app
        .post(&format!("/api/flows/{flow_id}/publish"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post(
            &format!("/api/flows/{flow_id}/runs"),
            json!({"contacts": [contact]}),
        )
        .await;
    assert_eq!(status, 200);
    let start = Instant::now();
    while app.channel.sent().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no mail was sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (app.channel.sent()[0].delivery_id, contact)
}

async fn openers(app: &TestApp) -> u64 {
    let (status, found) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"message": {"status": "opened"}}, "count": true, "limit": 1}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    found["count"].as_u64().unwrap()
}

async fn floods_are_shed(app: &TestApp) {
    let (delivery, contact) = one_delivery(app).await;
    let key = tabiji_storage::secrets::get_or_make(
        &app.store,
        "tracking_links",
        || "ab".repeat(32),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let tracker = Tracker::new(&app.base, from_hex(&key));
    let web = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let from = |address: &'static str, url: &str| web.get(url).header("x-forwarded-for", address);

    // One address uses up its three requests with damaged links…
    let damaged = format!("{}/t/o/{delivery}/{contact}/0000.gif", app.base);
    for _ in 0..3 {
        let r = from("192.0.2.1", &damaged).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // …then its genuine open is served, and not recorded; its click still goes through.
    let r = from("192.0.2.1", &tracker.open_url(delivery, contact))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["content-type"].to_str().unwrap()
        ),
        (200, "image/gif")
    );
    assert_eq!(openers(app).await, 0, "a flooding address is not recorded");
    let target = "https://example.jp/onsen";
    let r = from("192.0.2.1", &tracker.click_url(delivery, contact, target))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], target);
    let r = web
        .post(tracker.unsubscribe_url(delivery, contact))
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let suppressed = app.get("/api/suppressions").await;
    assert_eq!(
        suppressed.to_string().matches("reader@example.jp").count(),
        0,
        "{suppressed}"
    );

    // Another address is recorded as ever.
    let r = from("192.0.2.2", &tracker.open_url(delivery, contact))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(openers(app).await, 1);

    // A partner calling the events API too often is told to wait.
    let event = json!({"events": [{"contact_id": contact, "name": "visited", "id": "v"}]});
    for expected in [200, 200, 429] {
        let r = app
            .admin
            .post(app.url("/api/events"))
            .header("x-forwarded-for", "192.0.2.3")
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected);
        if expected == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
}

#[tokio::test]
async fn public_endpoints_are_rate_limited() {
    for scratch in backends().await {
        let config = tabiji_engine::runtime::Config {
            public_url: Some("http://tabiji.invalid".into()),
            ..Default::default()
        };
        let app = spawn_app_tuned(scratch, config, Vec::new(), |state| {
            state.behind_proxy = true;
            state.tracking_throttle = Arc::new(Throttle::per_minute(3));
            state.events_throttle = Arc::new(Throttle::per_minute(2));
        })
        .await;
        floods_are_shed(&app).await;
        app.stop().await;
    }
}
