//! Records through the API: one by one and in bulk, with errors that name the item and field.

use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn one_by_one(app: &TestApp) {
    let api = &app.admin;
    let r = api
        .post(app.url("/api/data/tourists"))
        .json(&json!({"email": " Hanako@Example.JP ", "family_name": "佐藤", "given_name_kana": "ﾊﾅｺ", "mobile_phone": "０９０－１２３４－５６７８",
                      "postal_code": "〒506-0011", "birth_date": "1988年7月7日", "interests": "hot_springs、food", "language": "ja"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let record = &created["record"];
    let id = record["id"].as_i64().unwrap();
    assert_eq!(record["email"], "hanako@example.jp");
    assert_eq!(record["given_name_kana"], "ハナコ");
    assert_eq!(record["mobile_phone"], "09012345678");
    assert_eq!(record["birth_date"], "1988-07-07");
    assert_eq!(record["interests"], json!(["hot_springs", "food"]));

    let r = api
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"member_type": "premium", "notes": "VIP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = api
        .get(app.url(&format!("/api/data/tourists/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (read["member_type"].as_str(), read["notes"].as_str()),
        (Some("premium"), Some("VIP"))
    );

    let r = api
        .post(app.url("/api/data/tourists"))
        .json(&json!({"email": "HANAKO@example.jp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "the normalised e-mail is the unique key");
    let r = api
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"family_name": "あ".repeat(51)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["field"], "family_name");
    assert_eq!(body["error"]["details"][0]["code"], "too_long");

    assert_eq!(
        api.delete(app.url(&format!("/api/data/tourists/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let r = api
        .get(app.url(&format!("/api/data/tourists/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    assert_eq!(
        api.get(app.url("/api/data/spaceships"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = api
        .post(app.url("/api/data/tourists"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );
}

async fn in_bulk(app: &TestApp) {
    let api = &app.admin;
    let items: Vec<Value> = (0..300)
        .map(|i| json!({"email": format!("bulk{i}@example.jp"), "visit_count": i}))
        .collect();
    let r = api
        .post(app.url("/api/data/tourists/bulk"))
        .json(&json!({"items": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let results: Value = r.json().await.unwrap();
    let results = results["results"].as_array().unwrap();
    assert_eq!(results.len(), 300);
    assert_eq!(results[299]["index"], 299);
    let last: Value = api
        .get(app.url(&format!("/api/data/tourists/{}", results[299]["id"])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["email"], "bulk299@example.jp");

    let bad = json!({"items": [{"email": "fine@example.jp"}, {"email": "bulk5@example.jp"}, {"email": "x@example.jp", "visit_count": -1}, {"email": "x2@example.jp", "colour": "red"}]});
    let r = api
        .post(app.url("/api/data/tourists/bulk"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let details: Vec<(i64, String, String)> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["index"].as_i64().unwrap(),
                d["field"].as_str().unwrap().to_string(),
                d["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        details,
        vec![
            (2, "visit_count".into(), "out_of_range".into()),
            (3, "colour".into(), "unknown_field".into())
        ]
    );
    let r = api
        .get(app.url("/api/data/tourists?limit=1000"))
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        300,
        "nothing half-written"
    );

    let ids: Vec<i64> = results
        .iter()
        .take(10)
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "opt_in_sms": true}))
        .collect();
    let r = api
        .patch(app.url("/api/data/tourists/bulk"))
        .json(&json!({"items": updates}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api
        .delete(app.url("/api/data/tourists/bulk"))
        .json(&json!({"ids": ids}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = api
        .get(app.url("/api/data/tourists?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 290);
    let r = api
        .post(app.url("/api/data/tourists/bulk"))
        .json(&json!({"items": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn points_inquiries_and_interactions(app: &TestApp) {
    let api = &app.admin;
    let t: Value = api
        .post(app.url("/api/data/tourists"))
        .json(&json!({"email": "points@example.jp"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tourist_id = t["record"]["id"].as_i64().unwrap();
    let grant = json!({"tourist_id": tourist_id, "occurred_at": "2026-11-01T10:00:00+09:00", "kind": "grant", "points": 300,
                       "source_system": "itinerary_planner", "transaction_id": "IP-77"});
    let r = api
        .post(app.url("/api/data/point_ledger"))
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = api
        .post(app.url("/api/data/point_ledger"))
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a repeated transaction id is not applied twice"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "existing");
    let tourist: Value = api
        .get(app.url(&format!("/api/data/tourists/{tourist_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tourist["points_balance"], 300);

    let inquiry: Value = api
        .post(app.url("/api/data/inquiries"))
        .json(&json!({"tourist_id": tourist_id, "subject": "ポイントが付与されない", "status": "open", "channel": "email"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inquiry_id = inquiry["record"]["id"].as_i64().unwrap();
    for (when, status) in [
        ("2026-11-02 09:00", "in_progress"),
        ("2026-11-03 09:00", "resolved"),
    ] {
        let r = api
            .post(app.url("/api/data/inquiry_responses"))
            .json(&json!({"inquiry_id": inquiry_id, "responded_at": when, "status": status, "staff": "田中"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let responses: Value = api
        .get(app.url(&format!(
            "/api/data/inquiry_responses?parent_id={inquiry_id}"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(responses["items"].as_array().unwrap().len(), 2);

    let business: Value = api
        .post(app.url("/api/data/businesses"))
        .json(&json!({"name": "飛騨の宿", "category": "accommodation"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = api
        .post(app.url("/api/data/interactions"))
        .json(&json!({"business_id": business["record"]["id"], "occurred_at": "2026-11-05 15:00", "kind": "meeting", "subject": "冬季キャンペーン"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = api
        .post(app.url("/api/data/interactions"))
        .json(&json!({"occurred_at": "2026-11-05 15:00", "subject": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["details"][0]["field"],
        "business_id"
    );
}

/// The generic batch upsert (DI-12): records matched by a unique field, created or changed,
/// the good items kept and the others named by index.
async fn upsert_by_key(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists",
            json!({"email": "a@example.jp", "family_name": "山田"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let items = json!({"items": [
        {"email": "Ａ@Example.jp", "prefecture": "愛知県"},
        {"email": "new@example.jp", "family_name": "新"},
        {"email": "not an address", "family_name": "x"},
        "not an object",
        {"email": "new@example.jp", "given_name": "太郎"},
        {"email": "ro@example.jp", "points_balance": 1000000}
    ]});
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/data/tourists/bulk?key=email",
            Some(items.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        [&body["created"], &body["updated"], &body["merged"]],
        [&json!(1), &json!(1), &json!(1)],
        "{body}"
    );
    let rejected: Vec<(i64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_i64().unwrap(),
                r["field"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [(2, "email"), (3, ""), (5, "points_balance")],
        "{body}"
    );
    let (_, found) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"field": {"key": "email", "op": "in", "value": ["a@example.jp", "new@example.jp"]}},
                   "sort": {"field": "email"}}),
        )
        .await;
    let got: Vec<(&str, &str, &str)> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["family_name"].as_str().unwrap_or(""),
                t["given_name"].as_str().unwrap_or(""),
                t["prefecture"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(got, [("山田", "", "愛知県"), ("新", "太郎", "")]);
    let (_, again) = app
        .call(
            Method::PUT,
            "/api/data/tourists/bulk?key=email",
            Some(items),
        )
        .await;
    assert_eq!(
        [&again["created"], &again["updated"], &again["unchanged"]],
        [&json!(0), &json!(0), &json!(2)],
        "the same items again change nothing: {again}"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/data/tourists/bulk?key=family_name",
            Some(json!({"items": [{"family_name": "x"}]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "key_not_unique");
    let clerk = app
        .user_with_rights(
            "upsert_clerk",
            json!({"entities": {"tourists": {"ops": ["view", "create", "edit"], "fields": {"phone": "read"}}}}),
        )
        .await;
    let r = clerk
        .put(app.url("/api/data/tourists/bulk?key=email"))
        .json(&json!({"items": [{"email": "a@example.jp", "phone": "090-1234-5678"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a field the caller may not write");
    let viewer = app
        .user_with_rights(
            "upsert_viewer",
            json!({"entities": {"tourists": {"ops": ["view", "create"]}}}),
        )
        .await;
    let r = viewer
        .put(app.url("/api/data/tourists/bulk?key=email"))
        .json(&json!({"items": [{"email": "z@example.jp"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "upserting needs the edit right");
}

#[tokio::test]
async fn batch_upsert_by_key() {
    on_every_backend!(upsert_by_key);
}

#[tokio::test]
async fn crud_one_by_one() {
    on_every_backend!(one_by_one);
}

#[tokio::test]
async fn crud_in_bulk() {
    on_every_backend!(in_bulk);
}

#[tokio::test]
async fn linked_records() {
    on_every_backend!(points_inquiries_and_interactions);
}
