//! Static lists and per-user views through the API (CF-4, CF-5): a list filled by ids and by a
//! filter, combined in a search; a clerk's own view opened with the period they pick.

use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn lists_and_views(app: &TestApp) {
    let now = chrono::Utc::now();
    let days_ago = |n: i64| (now - chrono::Duration::days(n)).to_rfc3339();
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [
                {"email": "f0@example.jp", "prefecture": "愛知県", "registered_at": days_ago(1)},
                {"email": "f1@example.jp", "prefecture": "愛知県", "registered_at": days_ago(40)},
                {"email": "f2@example.jp", "prefecture": "東京都", "registered_at": days_ago(2)},
                {"email": "f3@example.jp", "prefecture": "東京都", "registered_at": days_ago(400)}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ids: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();

    let (status, body) = app
        .post(
            "/api/lists",
            json!({"key": "fair_2026", "name": "旅行博2026 来場者"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, changed) = app
        .post(
            "/api/lists/fair_2026/members",
            json!({"ids": [ids[0], ids[3], 424242]}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["changed"], 2);
    assert_eq!(changed["missing"], json!([424242]));
    let (_, changed) = app
        .post(
            "/api/lists/fair_2026/members",
            json!({"filter": {"field": {"key": "prefecture", "op": "eq", "value": "東京都"}}}),
        )
        .await;
    assert_eq!(
        (changed["changed"].clone(), changed["members"].clone()),
        (json!(1), json!(3))
    );
    let page = app
        .get("/api/lists/fair_2026/members?count=true&sort=email")
        .await;
    assert_eq!(page["count"], 3);
    assert_eq!(page["items"][0]["email"], "f0@example.jp");
    let (_, changed) = app
        .post(
            "/api/lists/fair_2026/members/remove",
            json!({"ids": [ids[3]]}),
        )
        .await;
    assert_eq!(changed["members"], 2);

    // A clerk keeps a view of their own: the fair's visitors registered in a period.
    let clerk = app
        .user_with_rights(
            "clerk2",
            json!({"entities": {"tourists": {"ops": ["view"]}, "lists": {"ops": ["view"]}}}),
        )
        .await;
    let r = clerk
        .post(app.url("/api/views"))
        .json(
            &json!({"key": "fair_recent", "name": "来場者(最近の登録)", "favourite": true,
            "definition": {"filter": {"list": "fair_2026"}, "period_field": "registered_at",
                           "period": {"last_days": 30}, "columns": ["email", "prefecture"]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let open = |period: Value| {
        clerk
            .post(app.url("/api/views/fair_recent/open"))
            .json(&json!({"period": period, "count": true}))
            .send()
    };
    let opened: Value = open(Value::Null).await.unwrap().json().await.unwrap();
    assert_eq!(opened["count"], 2, "{opened}");
    assert_eq!(opened["columns"], json!(["email", "prefecture"]));
    let opened: Value = open(json!({"last_days": 2}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(opened["count"], 1, "{opened}");
    assert_eq!(opened["items"][0]["email"], "f0@example.jp");
    let listed: Value = clerk
        .get(app.url("/api/views"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["views"][0]["key"], "fair_recent");
    // The administrator has no view of that name: views are their owner's.
    let (status, _) = app.call(Method::GET, "/api/views/fair_recent", None).await;
    assert_eq!(status, 404);
    // The clerk may read lists but not change them.
    let r = clerk
        .post(app.url("/api/lists/fair_2026/members"))
        .json(&json!({"ids": [ids[1]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn static_lists_and_each_users_views() {
    on_every_backend!(lists_and_views);
}

async fn calculated_attributes(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [{"email": "k0@example.jp"}, {"email": "k1@example.jp"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ids: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let bought = |id: i64, amount: i64| json!({"tourist_id": id, "amount": amount, "occurred_at": chrono::Utc::now().to_rfc3339()});
    app.post(
        "/api/data/purchases/bulk",
        json!({"items": [bought(ids[0], 1200), bought(ids[0], 800)]}),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/calculated",
            json!({"key": "total_bought", "label": {"ja": "累計購入額", "en": "Total bought"},
                   "store": "purchases", "measure": {"sum": "amount"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let first = app.get(&format!("/api/data/tourists/{}", ids[0])).await;
    assert_eq!(first["total_bought"], 2000);
    app.post(
        "/api/data/purchases/bulk",
        json!({"items": [bought(ids[1], 300)]}),
    )
    .await;
    let (status, body) = app
        .post("/api/calculated/total_bought/refresh", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], 1);
    let second = app.get(&format!("/api/data/tourists/{}", ids[1])).await;
    assert_eq!(second["total_bought"], 300);
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/data/tourists/{}", ids[1]),
            Some(json!({"total_bought": 1})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let schema = app.get("/api/schema/tourists").await;
    let field = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "total_bought")
        .unwrap()
        .clone();
    assert_eq!(field["read_only"], true, "{field}");
}

#[tokio::test]
async fn calculated_attributes_are_kept_and_read_only() {
    on_every_backend!(calculated_attributes);
}
