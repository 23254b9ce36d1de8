//! Per-user rights: operations per entity, access per field, administration; denials logged.

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn hidden_fields_never_appear(app: &TestApp) {
    let r = app
        .admin
        .post(app.url("/api/data/tourists"))
        .json(&json!({"email": "secret@example.jp", "phone": "03-1111-2222", "city": "高山市"}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["record"]["id"]
        .as_i64()
        .unwrap();
    let clerk = app
        .user_with_rights(
            "clerk",
            json!({"entities": {"tourists": {"ops": ["view", "edit"], "fields": {"phone": "none", "email": "read"}}}}),
        )
        .await;

    let one: Value = clerk
        .get(app.url(&format!("/api/data/tourists/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["city"], "高山市");
    assert!(one.get("phone").is_none(), "{one}");
    let page = clerk
        .get(app.url("/api/data/tourists"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("0311112222") && !page.contains("\"phone\""),
        "{page}"
    );
    let schema: Value = clerk
        .get(app.url("/api/schema/tourists"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        !keys.contains(&"phone") && keys.contains(&"mobile_phone"),
        "{keys:?}"
    );

    let r = clerk
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"email": "other@example.jp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "email");
    let r = clerk
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"phone": "03-0000-0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = clerk
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"city": "下呂市"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = r.json::<Value>().await.unwrap();
    assert!(
        after.get("phone").is_none(),
        "the edit's answer hides the field too"
    );

    for (method, path) in [
        ("POST", "/api/data/tourists"),
        ("DELETE", &*format!("/api/data/tourists/{id}")),
        ("GET", "/api/data/businesses"),
    ] {
        let request = clerk.request(method.parse().unwrap(), app.url(path));
        let request = if method == "POST" {
            request.json(&json!({"email": "n@example.jp"}))
        } else {
            request
        };
        assert_eq!(
            request.send().await.unwrap().status(),
            403,
            "{method} {path}"
        );
    }
    for path in [
        "/api/admin/users",
        "/api/admin/roles",
        "/api/admin/access-log",
    ] {
        assert_eq!(
            clerk.get(app.url(path)).send().await.unwrap().status(),
            403,
            "{path}"
        );
    }
    let r = clerk
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "sneaky", "password": "sneaky-password", "admin": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let log: Value = app
        .admin
        .get(app.url("/api/admin/access-log?login=clerk&limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    let denied = entries.iter().filter(|e| e["outcome"] == "denied").count();
    assert!(denied >= 5, "every refusal is logged: {log}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "view" && e["record_id"] == id && e["outcome"] == "ok"),
        "views of personal data are logged"
    );
}

async fn roles_combine(app: &TestApp) {
    let r = app
        .admin
        .post(app.url("/api/admin/roles"))
        .json(
            &json!({"name": "readers", "rights": {"entities": {"businesses": {"ops": ["view"]}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let both = app
        .user_with_rights("both", json!({"entities": {"tourists": {"ops": ["view"]}}}))
        .await;
    assert_eq!(
        both.get(app.url("/api/data/businesses"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let r = app
        .admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "two-roles", "password": "two-roles-password", "roles": ["readers", "role-of-both"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user = tabiji_e2e::client();
    user.post(app.url("/api/auth/login"))
        .json(&json!({"login": "two-roles", "password": "two-roles-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        user.get(app.url("/api/data/businesses"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        user.get(app.url("/api/data/tourists"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let r = app
        .admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "weak", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["details"][0]["code"],
        "password_too_short"
    );
    let r = app
        .admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "ghost", "password": "ghost-password", "roles": ["no such role"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn field_rights() {
    on_every_backend!(hidden_fields_never_appear);
}

#[tokio::test]
async fn role_union() {
    on_every_backend!(roles_combine);
}
