//! Points from partner systems by API, keyed by e-mail (DI-1, DI-3, DI-5), and a tourist's point
//! history in the order things happened (DI-6).

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn points(app: &TestApp) {
    let (status, body) = app
        .post("/api/data/tourists", json!({"email": "Ｐ@example.jp"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let tourist = body["record"]["id"].as_i64().unwrap();
    let grant = json!({"email": "P@Example.JP", "kind": "grant", "points": 300, "source_system": "itinerary",
                       "transaction_id": "IT-1", "occurred_at": "2026-11-28T10:00:00+09:00"});
    let (status, body) = app.post("/api/points", grant.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["status"].clone(), body["balance"].clone()),
        (json!("created"), json!(300))
    );
    let (status, body) = app.post("/api/points", grant).await;
    assert_eq!(
        status, 200,
        "the same transaction again is kept once: {body}"
    );
    assert_eq!(body["status"], "existing");

    let (status, body) = app
        .post(
            "/api/points",
            json!({"email": "p@example.jp", "kind": "use", "points": 500, "source_system": "points",
                   "transaction_id": "U-1", "occurred_at": "2026-11-28T11:00:00+09:00"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "insufficient_points");
    let (status, body) = app
        .post(
            "/api/points",
            json!({"email": "p@example.jp", "kind": "use", "points": 120, "source_system": "points",
                   "transaction_id": "U-2", "occurred_at": "2026-11-28T09:00:00+09:00"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["balance"], 180);
    let (status, body) = app
        .post(
            "/api/points",
            json!({"email": "nobody@example.jp", "kind": "grant", "points": 1, "source_system": "ota",
                   "transaction_id": "X", "occurred_at": "2026-11-28T09:00:00+09:00"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["field"], "email");

    // The history in the order things happened, not the order they arrived.
    let (status, page) = app
        .post(
            "/api/data/point_ledger/search",
            json!({"filter": {"field": {"key": "tourist_id", "op": "eq", "value": tourist}},
                   "sort": {"field": "occurred_at"}}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let order: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["transaction_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec!["U-2", "IT-1"]);

    // Finding a tourist by e-mail needs the view of e-mail addresses.
    let clerk = app
        .user_with_rights(
            "points_clerk",
            json!({"entities": {"point_ledger": {"ops": ["create", "view"]},
                                "tourists": {"ops": ["view"], "fields": {"email": "none"}}}}),
        )
        .await;
    let r = clerk
        .post(app.url("/api/points"))
        .json(
            &json!({"email": "p@example.jp", "kind": "grant", "points": 1, "source_system": "ota",
                      "transaction_id": "C-1", "occurred_at": "2026-11-28T09:00:00+09:00"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "email");
}

#[tokio::test]
async fn points_by_email_apply_at_once_and_once() {
    on_every_backend!(points);
}
