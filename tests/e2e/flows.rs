//! Flow lifecycle through the API: draft, publish immutable versions, pause, resume, stop.

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

fn autumn() -> Value {
    let text = include_str!("../../examples/flows/autumn-campaign.json");
    serde_json::from_str(text).unwrap()
}

async fn lifecycle(app: &TestApp) {
    let api = &app.admin;
    let r = api
        .post(app.url("/api/flows"))
        .json(&autumn())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        (
            created["status"].as_str(),
            created["problems"].as_array().unwrap().len()
        ),
        (Some("draft"), 0)
    );

    let r = api
        .post(app.url(&format!("/api/flows/{id}/publish")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let published: Value = r.json().await.unwrap();
    assert_eq!(
        (
            published["status"].as_str(),
            published["current_version"].as_i64()
        ),
        (Some("active"), Some(1))
    );

    // A broken draft can be saved (work in progress) but not published; the node is named.
    let mut broken = autumn();
    broken["nodes"][1]["on_timeout"] = json!("sms-typo");
    let r = api
        .put(app.url(&format!("/api/flows/{id}")))
        .json(&broken)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let saved: Value = r.json().await.unwrap();
    assert_eq!(saved["problems"][0]["at"], "wait_open");
    let r = api
        .post(app.url(&format!("/api/flows/{id}/publish")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["field"], "wait_open");
    assert_eq!(body["error"]["details"][0]["code"], "dangling_exit");

    let mut second = autumn();
    second["nodes"][1]["timeout"] = json!("2d");
    api.put(app.url(&format!("/api/flows/{id}")))
        .json(&second)
        .send()
        .await
        .unwrap();
    let r = api
        .post(app.url(&format!("/api/flows/{id}/publish")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["current_version"], 2);
    let v1: Value = api
        .get(app.url(&format!("/api/flows/{id}/versions/1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v2: Value = api
        .get(app.url(&format!("/api/flows/{id}/versions/2")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v1["nodes"][1]["timeout"], "3d",
        "published versions never change"
    );
    assert_eq!(v2["nodes"][1]["timeout"], "2d");

    for (wanted, code) in [
        ("paused", 200),
        ("paused", 422),
        ("active", 200),
        ("stopped", 200),
        ("active", 422),
    ] {
        let r = api
            .post(app.url(&format!("/api/flows/{id}/status")))
            .json(&json!({"status": wanted}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), code, "{wanted}");
    }
    let r = api
        .post(app.url("/api/flows"))
        .json(&json!({"format": 1, "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "not a flow in shape");
    let list: Value = api
        .get(app.url("/api/flows"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["flows"][0]["status"], "stopped");
}

async fn publishing_needs_the_right(app: &TestApp) {
    let marketer = app
        .user_with_rights(
            "marketer",
            json!({"entities": {"flows": {"ops": ["view", "create", "edit"]}}}),
        )
        .await;
    let r = marketer
        .post(app.url("/api/flows"))
        .json(&autumn())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = marketer
        .post(app.url(&format!("/api/flows/{id}/publish")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let viewer = app
        .user_with_rights(
            "viewer",
            json!({"entities": {"tourists": {"ops": ["view"]}}}),
        )
        .await;
    assert_eq!(
        viewer
            .get(app.url("/api/flows"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn flow_lifecycle() {
    on_every_backend!(lifecycle);
}

#[tokio::test]
async fn flow_rights() {
    on_every_backend!(publishing_needs_the_right);
}
