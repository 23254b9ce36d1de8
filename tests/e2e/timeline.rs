//! A tourist's timeline (`GET /api/data/tourists/{id}/timeline`): purchases, points, inquiries,
//! the messages a flow sent, the events that came back and the flows entered, newest first,
//! paged with one cursor; each caller sees only the sources and fields their rights allow.

use std::collections::BTreeSet;

use chrono::DateTime;
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

/// Every entry of the timeline, `limit` at a time, following `next_before`.
async fn every_page(app: &TestApp, client: &reqwest::Client, path: &str, limit: u64) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..100 {
        let url = match &before {
            Some(cursor) => format!("{path}?limit={limit}&before={cursor}"),
            None => format!("{path}?limit={limit}"),
        };
        let (status, page) = app.call_as(client, reqwest::Method::GET, &url, None).await;
        assert_eq!(status, 200, "{url}: {page}");
        let items = page["entries"].as_array().unwrap();
        assert!(items.len() as u64 <= limit);
        entries.extend(items.iter().cloned());
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => return entries,
        }
    }
    panic!("the timeline of {path} never ended");
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn millis(entry: &Value) -> i64 {
    let at = entry["at"]
        .as_str()
        .unwrap_or_else(|| panic!("no time: {entry}"));
    DateTime::parse_from_rfc3339(at).unwrap().timestamp_millis()
}

fn keys(entries: &[Value]) -> Vec<(String, i64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn timeline(app: &TestApp) {
    let ids = app
        .create_tourists(vec![
            json!({"email": "haruka@example.jp", "prefecture": "愛知県"}),
            json!({"email": "other@example.jp", "prefecture": "岐阜県"}),
        ])
        .await;
    let (tourist, other) = (ids[0], ids[1]);
    for (at, amount, shop) in [
        ("2026-10-01T10:00:00+09:00", 1200, "高山陣屋売店"),
        ("2026-11-15T18:30:00+09:00", 5400, "白川郷食堂"),
    ] {
        let (status, body) = app
            .post(
                "/api/data/purchases",
                json!({"tourist_id": tourist, "occurred_at": at, "amount": amount, "shop": shop}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = app
        .post(
            "/api/data/purchases",
            json!({"tourist_id": other, "occurred_at": "2026-11-16T09:00:00+09:00", "amount": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            "/api/points",
            json!({"email": "haruka@example.jp", "kind": "grant", "points": 300, "source_system": "ota",
                   "transaction_id": "OTA-1", "occurred_at": "2026-11-20T09:00:00+09:00"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            "/api/data/inquiries",
            json!({"tourist_id": tourist, "subject": "忘れ物 / lost umbrella"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (flow_id, delivery) = app.mail_and_open(tourist, "ようこそ", "welcome").await;
    let (status, body) = app
        .post(
            "/api/events",
            json!({"events": [{"id": "gate-1", "contact_id": tourist, "name": "ticket_used",
                               "properties": {"gate": "高山駅"}}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let path = format!("/api/data/tourists/{tourist}/timeline");
    let whole = app.get(&format!("{path}?limit=200")).await;
    assert!(whole.get("next_before").is_none(), "{whole}");
    let everything = whole["entries"].as_array().unwrap().clone();
    let sources: BTreeSet<&str> = everything
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from([
            "events",
            "inquiries",
            "messages",
            "point_ledger",
            "purchases",
            "runs"
        ]),
        "{whole}"
    );
    assert_eq!(
        everything.len(),
        8,
        "2 purchases, 1 point entry, 1 inquiry, 1 message, 2 events, 1 run: {whole}"
    );
    let shops: Vec<&str> = everything
        .iter()
        .filter(|e| e["source"] == "purchases")
        .map(|e| e["data"]["shop"].as_str().unwrap())
        .collect();
    assert_eq!(
        shops,
        ["白川郷食堂", "高山陣屋売店"],
        "newest first, another tourist's purchase absent"
    );
    let message = everything
        .iter()
        .find(|e| e["source"] == "messages")
        .unwrap();
    assert_eq!(message["id"], delivery);
    assert_eq!(
        message["data"]["flow"],
        json!({"id": flow_id, "name": "ようこそ"})
    );
    assert_eq!(message["data"]["template"], "welcome");
    let run = everything.iter().find(|e| e["source"] == "runs").unwrap();
    assert_eq!(run["data"]["flow"]["name"], "ようこそ");
    let gate = everything
        .iter()
        .find(|e| e["data"]["name"] == "ticket_used")
        .unwrap();
    assert_eq!(gate["data"]["properties"]["gate"], "高山駅");
    let times: Vec<i64> = everything.iter().map(millis).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {whole}"
    );
    assert_eq!(
        whole["sources"].as_array().unwrap().len(),
        6,
        "every source the administrator may view is named: {whole}"
    );
    let history: Vec<&str> = whole["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["history"] == true)
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["inquiries", "point_ledger", "purchases"],
        "history stores are told from the engine's sources: {whole}"
    );

    // Two at a time, the pages hold the same entries in the same order, each once.
    let paged = every_page(app, &app.admin, &path, 2).await;
    assert_eq!(keys(&paged), keys(&everything));

    // One source at a time.
    let only = app
        .get(&format!("{path}?sources=purchases,point_ledger"))
        .await;
    let picked: BTreeSet<&str> = only["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(picked, BTreeSet::from(["point_ledger", "purchases"]));

    // Bad requests name what is wrong.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("sources=purchases,bogus", "sources"),
        ("before=zz", "before"),
        ("before=", "before"),
    ] {
        // A cursor of the right form that places a history store by time and id, as only the
        // engine's sources are placed.
        let query = if query == "before=" {
            format!("before={}", hex(r#"{"purchases":{"before":[1,2]}}"#))
        } else {
            query.to_string()
        };
        let (status, body) = app
            .call(reqwest::Method::GET, &format!("{path}?{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(
            body["error"]["details"][0]["field"], field,
            "{query}: {body}"
        );
    }
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/data/tourists/999999/timeline",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );

    // A clerk who may see tourists and their purchases, but not amounts, points or flows,
    // sees purchases without amounts and nothing else.
    let clerk = app
        .user_with_rights(
            "timeline_clerk",
            json!({"entities": {"tourists": {"ops": ["view"]},
                                "purchases": {"ops": ["view"], "fields": {"amount": "none"}}}}),
        )
        .await;
    let seen = every_page(app, &clerk, &path, 1).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    for entry in &seen {
        assert_eq!(entry["source"], "purchases");
        assert!(entry["data"].get("amount").is_none(), "{entry}");
        assert!(entry["data"].get("shop").is_some(), "{entry}");
    }
    let (status, body) = app
        .call_as(
            &clerk,
            reqwest::Method::GET,
            &format!("{path}?sources=messages"),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // Record rights: a clerk for Gifu's tourists cannot reach an Aichi tourist's timeline.
    let gifu = app
        .user_with_rights(
            "gifu_clerk",
            json!({"entities": {"tourists": {"ops": ["view"], "records":
                       {"field": {"key": "prefecture", "op": "eq", "value": "岐阜県"}}},
                                "purchases": {"ops": ["view"]}}}),
        )
        .await;
    let (status, _) = app.call_as(&gifu, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let theirs = every_page(
        app,
        &gifu,
        &format!("/api/data/tourists/{other}/timeline"),
        10,
    )
    .await;
    assert_eq!(keys(&theirs).len(), 1);

    // A user without the view of tourists is refused, and the refusal is logged.
    let outsider = app
        .user_with_rights(
            "outsider",
            json!({"entities": {"purchases": {"ops": ["view"]}}}),
        )
        .await;
    let (status, _) = app
        .call_as(&outsider, reqwest::Method::GET, &path, None)
        .await;
    assert_eq!(status, 403);

    // Reading a timeline is in the access log.
    let log = app.get("/api/admin/access-log?login=timeline_clerk").await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "view" && e["record_id"] == tourist),
        "{log}"
    );
}

#[tokio::test]
async fn a_tourists_timeline_merges_history_messages_and_runs() {
    on_every_backend!(timeline);
}
