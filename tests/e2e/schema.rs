//! Operator-defined custom fields and history stores through the API.

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn custom_fields(app: &TestApp) {
    let api = &app.admin;
    let r = api
        .post(app.url("/api/schema/tourists/fields"))
        .json(&json!({"key": "anniversary", "label": {"ja": "記念日", "en": "Anniversary"}, "type": "month_day"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = api
        .post(app.url("/api/data/tourists"))
        .json(&json!({"email": "anniv@example.jp", "anniversary": "12月24日"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["record"]["anniversary"],
        "12-24"
    );

    let r = api
        .post(app.url("/api/schema/tourists/fields"))
        .json(&json!({"key": "Bad Key", "label": {"ja": "x", "en": "x"}, "type": "text"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["details"][0]["code"],
        "invalid_key"
    );
    let r = api
        .post(app.url("/api/schema/tourists/fields"))
        .json(&json!({"key": "colour", "label": {"ja": "色", "en": "Colour"}, "type": "single_choice", "options": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    let viewer = app
        .user_with_rights(
            "viewer",
            json!({"entities": {"tourists": {"ops": ["view"]}}}),
        )
        .await;
    let r = viewer
        .post(app.url("/api/schema/tourists/fields"))
        .json(&json!({"key": "sneaky", "label": {"ja": "x", "en": "x"}, "type": "text"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

async fn history_stores(app: &TestApp) {
    let api = &app.admin;
    let r = api
        .post(app.url("/api/schema/history-stores"))
        .json(&json!({"name": "eticket_uses", "label": {"ja": "電子チケット利用", "en": "E-ticket uses"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for field in [
        json!({"key": "shop", "label": {"ja": "店舗", "en": "Shop"}, "type": "text"}),
        json!({"key": "coupon_value", "label": {"ja": "額面", "en": "Value"}, "type": "integer"}),
    ] {
        let r = api
            .post(app.url("/api/schema/eticket_uses/fields"))
            .json(&field)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let t: Value = api
        .post(app.url("/api/data/tourists"))
        .json(&json!({"email": "ticket@example.jp"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = api
        .post(app.url("/api/data/eticket_uses"))
        .json(&json!({"tourist_id": t["record"]["id"], "occurred_at": "2026-11-10 11:00", "shop": "高山陣屋", "coupon_value": "１，０００"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["record"]["coupon_value"],
        1000
    );
    let r = api
        .post(app.url("/api/schema/history-stores"))
        .json(&json!({"name": "tourists", "label": {"ja": "x", "en": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = api
        .post(app.url("/api/schema/history-stores"))
        .json(&json!({"name": "sys_users", "label": {"ja": "x", "en": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "system tables are out of reach");
}

#[tokio::test]
async fn custom_fields_via_api() {
    on_every_backend!(custom_fields);
}

#[tokio::test]
async fn history_stores_via_api() {
    on_every_backend!(history_stores);
}
