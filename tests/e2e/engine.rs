//! The running engine through the API: contacts enter a flow, the worker sends through the
//! recording channel, an event posted by a partner moves a waiting run at once, and the
//! counts, runs, step log and dead letters are there to read.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

/// Waits (up to 20 s) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(app: &TestApp, path: &str) -> Value {
    app.get(path).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.post(path, body).await
}

async fn opened_moves_the_run_on(app: &TestApp) {
    let ids = app
        .create_tourists(vec![
            json!({"email": "guest1@example.jp"}),
            json!({"email": "guest2@example.jp"}),
            json!({"email": "guest3@example.jp"}),
        ])
        .await;
    let flow = json!({
        "format": 1, "name": "welcome",
        "entry": {"type": "api", "next": "mail1"},
        "nodes": [
            {"id": "mail1", "type": "send", "channel": "test", "template": "welcome-1", "next": "wait_open"},
            {"id": "wait_open", "type": "wait_for_event", "event": {"opened": {"of": "mail1"}},
             "timeout": "1d", "on_event": "mail2", "on_timeout": "end"},
            {"id": "mail2", "type": "send", "channel": "test", "template": "welcome-2", "next": "end"},
            {"id": "end", "type": "exit"}
        ]
    });
    let (_, created) = post(app, "/api/flows", flow).await;
    let flow_id = created["id"].as_i64().unwrap();

    // A dry run over today's contacts, nothing sent: nobody opens, or everybody does.
    let (status, none) = post(app, &format!("/api/flows/{flow_id}/simulate"), json!({})).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["contacts"], 3);
    assert_eq!(none["sends"], json!({"mail1": 3}));
    assert_eq!(none["nodes"]["wait_open"], json!({"timeout": 3}));
    assert_eq!(none["outcomes"], json!({"exit": 3}));
    let (_, all) = post(
        app,
        &format!("/api/flows/{flow_id}/simulate"),
        json!({"assume": "all_events"}),
    )
    .await;
    assert_eq!(all["sends"], json!({"mail1": 3, "mail2": 3}));
    assert!(app.channel.sent().is_empty(), "a simulation sends nothing");

    // Entering before publishing is refused with a reason.
    let (status, body) = post(
        app,
        &format!("/api/flows/{flow_id}/runs"),
        json!({"contacts": ids}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("flow_not_active"))
    );

    let (status, _) = post(app, &format!("/api/flows/{flow_id}/publish"), json!({})).await;
    assert_eq!(status, 200);
    let (status, report) = post(
        app,
        &format!("/api/flows/{flow_id}/runs"),
        json!({"contacts": [ids[0], ids[1], ids[2], 999_999], "key": "launch"}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["entered"], json!(ids));
    assert_eq!(report["unknown"], json!([999_999]));

    eventually("three welcome mails", || app.channel.sent().len() == 3).await;
    let sent = app
        .get_until(
            &format!("/api/deliveries?status=sent&flow={flow_id}"),
            |v| v["deliveries"].as_array().unwrap().len() == 3,
        )
        .await;
    assert!(
        sent["deliveries"][0]["created_at"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    let delivery = sent["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["contact_id"] == ids[0])
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    let (status, report) = post(
        app,
        "/api/events",
        json!({"events": [
            {"id": "open-1", "contact_id": ids[0], "name": "opened", "delivery_id": delivery},
            {"id": "open-1", "contact_id": ids[0], "name": "opened", "delivery_id": delivery},
            {"id": "visit-2", "email": "ＧＵＥＳＴ２@Example.jp", "name": "visited", "properties": {"spot": "白川郷"}},
            {"id": "x", "email": "nobody@example.jp", "name": "opened"},
            {"contact_id": ids[0], "name": "opened"},
            {"id": "y", "contact_id": ids[0], "name": "opened", "colour": "red"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["duplicates"], json!(["open-1"]));
    let rejected: Vec<(i64, &str)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_i64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [
            (3, "unknown_contact"),
            (4, "required"),
            (5, "invalid_event")
        ]
    );

    eventually("the second mail to the contact who opened", || {
        app.channel
            .sent()
            .iter()
            .any(|m| m.contact_id == ids[0] && m.template == "welcome-2")
    })
    .await;
    let stats = app
        .get_until(&format!("/api/flows/{flow_id}/stats"), |v| {
            v["deliveries"]["sent"] == 4
        })
        .await;
    assert_eq!(stats["waiting"]["wait_open"], 2);
    assert_eq!(stats["outcomes"]["exit"], 1);
    assert_eq!(stats["deliveries"]["sent"], 4);
    assert_eq!(stats["steps"]["wait_open"]["opened"], 1);

    let runs = get(app, &format!("/api/runs?contact={}", ids[0])).await;
    let run = &runs["runs"][0];
    assert_eq!(
        (run["state"].as_str(), run["outcome"].as_str()),
        (Some("finished"), Some("exit"))
    );
    assert!(run["entered_at"].as_str().unwrap().ends_with("+00:00"));
    let steps = get(app, &format!("/api/runs/{}/steps", run["id"])).await;
    let path: Vec<(&str, &str)> = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["node"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        path,
        [
            ("mail1", "sent"),
            ("wait_open", "opened"),
            ("mail2", "sent"),
            ("end", "exit")
        ]
    );
    assert!(
        steps["steps"][0]["at"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );

    // Nothing is dead; a retry of a delivery that is not dead requeues nothing.
    let dead = get(app, "/api/deliveries?status=dead").await;
    assert_eq!(dead["deliveries"], json!([]));
    let (status, body) = post(app, "/api/deliveries/retry", json!({"ids": [delivery]})).await;
    assert_eq!((status, body["requeued"].clone()), (200, json!([])));
    let r = app
        .admin
        .get(app.url("/api/deliveries?status=lost"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn events_need_the_right(app: &TestApp) {
    let clerk = app
        .user_with_rights(
            "clerk",
            json!({"entities": {"tourists": {"ops": ["view"]}}}),
        )
        .await;
    let r = clerk
        .post(app.url("/api/events"))
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = clerk
        .get(app.url("/api/flows/1/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let partner = app
        .user_with_rights(
            "partner",
            json!({"entities": {"events": {"ops": ["create"]}}}),
        )
        .await;
    let r = partner
        .post(app.url("/api/events"))
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_event_moves_a_waiting_run() {
    on_every_backend!(opened_moves_the_run_on);
}

#[tokio::test]
async fn posting_events_needs_the_events_right() {
    on_every_backend!(events_need_the_right);
}

/// A developer's rhai snippet decides a branch (MA-10): premium members get one mail, others
/// another. Publishing refuses a condition naming a snippet that is not saved.
async fn a_rhai_condition_routes_contacts(app: &TestApp) {
    let (status, body) = app
        .call(
            reqwest::Method::PUT,
            "/api/snippets/is-premium",
            Some(json!({"source": "contact.member_type == \"premium\" && args[0] <= 2026"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let flow = |snippet: &str| {
        json!({
            "format": 1, "name": format!("condition {snippet}"),
            "entry": {"type": "api", "next": "premium"},
            "nodes": [
                {"id": "premium", "type": "condition", "snippet": snippet, "args": [2026], "on_true": "vip", "on_false": "plain"},
                {"id": "vip", "type": "send", "channel": "test", "template": "vip-offer", "next": "end"},
                {"id": "plain", "type": "send", "channel": "test", "template": "autumn-news", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        })
    };
    let (_, missing) = post(app, "/api/flows", flow("no-such-snippet")).await;
    let (status, body) = post(
        app,
        &format!("/api/flows/{}/publish", missing["id"]),
        json!({}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"], "nodes.premium",
        "{body}"
    );
    assert_eq!(
        body["error"]["details"][0]["code"], "unknown_snippet",
        "{body}"
    );

    let (_, created) = post(app, "/api/flows", flow("is-premium")).await;
    let flow_id = created["id"].as_i64().unwrap();
    let (status, body) = post(app, &format!("/api/flows/{flow_id}/publish"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, created) = post(
        app,
        "/api/data/tourists/bulk",
        json!({"items": [
            {"email": "premium@example.jp", "member_type": "premium"},
            {"email": "general@example.jp", "member_type": "general"}
        ]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let ids: Vec<i64> = created["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let (status, body) = post(
        app,
        &format!("/api/flows/{flow_id}/runs"),
        json!({"contacts": ids}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    eventually("both mails", || {
        app.channel
            .sent()
            .iter()
            .filter(|m| m.template == "vip-offer" || m.template == "autumn-news")
            .count()
            == 2
    })
    .await;
    let sent: Vec<(i64, String)> = app
        .channel
        .sent()
        .iter()
        .filter(|m| m.template == "vip-offer" || m.template == "autumn-news")
        .map(|m| (m.contact_id, m.template.clone()))
        .collect();
    assert!(
        sent.contains(&(ids[0], "vip-offer".to_string())),
        "{sent:?}"
    );
    assert!(
        sent.contains(&(ids[1], "autumn-news".to_string())),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_snippet_decides_a_branch() {
    on_every_backend!(a_rhai_condition_routes_contacts);
}

/// The first `hour`:00 UTC at or after `from`.
fn next_utc_hour(from: chrono::DateTime<chrono::Utc>, hour: u32) -> chrono::DateTime<chrono::Utc> {
    let today = from.date_naive().and_hms_opt(hour, 0, 0).unwrap().and_utc();
    if today >= from {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

/// MA-16: a send "at the best time within 24h" waits for each contact's busiest opening hour,
/// or everyone's when they never opened; the send-time report shows the hours.
async fn sends_wait_for_each_contacts_best_hour(app: &TestApp) {
    let (status, created) = post(
        app,
        "/api/data/tourists/bulk",
        json!({"items": [
            {"email": "evening@example.jp"}, {"email": "morning@example.jp"}, {"email": "never@example.jp"}
        ]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let ids: Vec<i64> = created["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let now = chrono::Utc::now();
    let at = |days: i64, h: u32, m: u32| {
        (now - chrono::Duration::days(days))
            .date_naive()
            .and_hms_opt(h, m, 0)
            .unwrap()
            .and_utc()
            .to_rfc3339()
    };
    // The evening reader opens at 20:15 in Tokyo (11:15 UTC), the morning one at 07:30 (22:30).
    let (status, body) = post(
        app,
        "/api/events",
        json!({"events": [
            {"id": "e1", "contact_id": ids[0], "name": "opened", "occurred_at": at(3, 11, 15)},
            {"id": "e2", "contact_id": ids[0], "name": "opened", "occurred_at": at(4, 11, 40)},
            {"id": "e3", "contact_id": ids[0], "name": "opened", "occurred_at": at(5, 11, 5)},
            {"id": "m1", "contact_id": ids[1], "name": "opened", "occurred_at": at(2, 22, 30)}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (_, created) = post(
        app,
        "/api/flows",
        json!({
            "format": 1, "name": "best time",
            "entry": {"type": "api", "next": "mail"},
            "nodes": [
                {"id": "mail", "type": "send", "channel": "test", "template": "news", "best_time_within": "24h", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        }),
    )
    .await;
    let flow_id = created["id"].as_i64().unwrap();
    let (status, body) = post(app, &format!("/api/flows/{flow_id}/publish"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        app,
        &format!("/api/flows/{flow_id}/runs"),
        json!({"contacts": ids}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pending = app
        .get_until(
            &format!("/api/deliveries?status=pending&flow={flow_id}"),
            |v| v["deliveries"].as_array().unwrap().len() == 3,
        )
        .await;
    for d in pending["deliveries"].as_array().unwrap() {
        let created: chrono::DateTime<chrono::Utc> =
            d["created_at"].as_str().unwrap().parse().unwrap();
        let due: chrono::DateTime<chrono::Utc> =
            d["next_attempt_at"].as_str().unwrap().parse().unwrap();
        let hour = if d["contact_id"] == ids[1] { 22 } else { 11 };
        let expected = next_utc_hour(created - chrono::Duration::seconds(1), hour);
        assert!(
            (due - expected).num_seconds().abs() <= 1,
            "contact {}: due {due}, expected {expected}",
            d["contact_id"]
        );
    }

    let report = app.get("/api/send-times?days=30").await;
    assert_eq!(report["best_hour"], 20, "{report}");
    assert_eq!(report["by_hour"][20]["opens"], 3, "{report}");
    assert_eq!(report["by_hour"][7]["opens"], 1, "{report}");
    assert_eq!(report["zone"], "Asia/Tokyo");
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/api/send-times?zone=Mars/Olympus",
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_send_waits_for_the_best_hour() {
    on_every_backend!(sends_wait_for_each_contacts_best_hour);
}
