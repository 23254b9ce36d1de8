//! Signing in with a session cookie or an API token; everything else is closed.

use serde_json::{Value, json};
use tabiji_e2e::{ADMIN_LOGIN, TestApp, client, on_every_backend};

async fn only_health_and_login_are_open(app: &TestApp) {
    let anonymous = client();
    let health: Value = anonymous
        .get(app.url("/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], app.backend);
    for path in [
        "/api/data/tourists",
        "/api/data/tourists/1",
        "/api/schema",
        "/api/auth/me",
        "/api/admin/users",
    ] {
        let r = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated", "{path}");
    }
}

async fn session_cookie_sign_in_and_out(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/admin/users",
            json!({"login": "clerk", "password": "front desk password"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let browser = client();
    let r = browser
        .post(app.url("/api/auth/login"))
        .json(&json!({"login": "clerk", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "bad_credentials"
    );
    let r = browser
        .post(app.url("/api/auth/login"))
        .json(&json!({"login": "nobody", "password": "whatever123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "unknown logins get the same answer");

    let r = browser
        .post(app.url("/api/auth/login"))
        .json(&json!({"login": "clerk", "password": "front desk password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Max-Age"),
        "the cookie goes with the browser; the server ends idle sessions: {cookie}"
    );
    let me: Value = browser
        .get(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["login"], "clerk");
    assert_eq!(me["user"]["admin"], false);

    let r = browser
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = browser.get(app.url("/api/auth/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "unauthenticated",
        "the browser was told to drop the cookie"
    );

    let log: Value = app
        .admin
        .get(app.url("/api/admin/access-log?limit=50"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login" && e["outcome"] == "denied")
        .count();
    assert_eq!(failed, 2, "failed sign-ins are logged: {log}");
}

async fn api_tokens_for_integrators(app: &TestApp) {
    let r = app
        .admin
        .post(app.url("/api/auth/tokens"))
        .json(&json!({"name": "OTA nightly", "expires_in_days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("tbj_"));

    let integrator = reqwest::Client::new();
    let r = integrator
        .post(app.url("/api/data/tourists"))
        .bearer_auth(&token)
        .json(&json!({"email": "token@example.jp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for bad in ["tbj_0000", "not-a-token", ""] {
        let r = integrator
            .get(app.url("/api/data/tourists"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad:?}");
    }

    // A scoped token holds only what its scope allows, even for an administrator: this one may
    // read tourists without their phone numbers and grant points, nothing else.
    let r = app
        .admin
        .post(app.url("/api/auth/tokens"))
        .json(&json!({"name": "points partner", "scope": {"entities": {
            "tourists": {"ops": ["view"], "fields": {"phone": "none"}},
            "point_ledger": {"ops": ["view", "create"]}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let scoped = created["token"].as_str().unwrap().to_string();
    let scoped_id = created["id"].as_i64().unwrap();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = integrator.request(method, app.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, page) = call(reqwest::Method::GET, "/api/data/tourists", &scoped, None).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["email"], "token@example.jp");
    assert!(page["items"][0].get("phone").is_none(), "{page}");
    let (status, _) = call(
        reqwest::Method::POST,
        "/api/data/tourists",
        &scoped,
        Some(json!({"email": "more@example.jp"})),
    )
    .await;
    assert_eq!(status, 403, "the scope grants no creating of tourists");
    let (status, _) = call(reqwest::Method::GET, "/api/admin/users", &scoped, None).await;
    assert_eq!(status, 403, "nor administration");
    // A token it makes holds no more than it does.
    let (status, child) = call(
        reqwest::Method::POST,
        "/api/auth/tokens",
        &scoped,
        Some(json!({"name": "child"})),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    assert_eq!(child["scope"]["admin"], false, "{child}");
    let child = child["token"].as_str().unwrap().to_string();
    let (status, _) = call(reqwest::Method::GET, "/api/admin/users", &child, None).await;
    assert_eq!(status, 403);
    // Record filters in a scope are checked like a role's.
    let (status, refused) = call(
        reqwest::Method::POST,
        "/api/auth/tokens",
        &token,
        Some(json!({"name": "bad", "scope": {"entities": {"tourists": {"ops": ["view"], "records": {"list": "vip"}}}}})),
    )
    .await;
    assert_eq!(status, 422, "{refused}");

    // Owners list their tokens (never the secrets) and revoke them; administrators anyone's.
    let (status, mine) = call(reqwest::Method::GET, "/api/auth/tokens", &token, None).await;
    assert_eq!(status, 200);
    let text = mine.to_string();
    assert!(!text.contains(&token) && !text.contains(&scoped), "{text}");
    let listed: Vec<&str> = mine["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["child", "points partner", "OTA nightly"]);
    assert_eq!(mine["tokens"][1]["usable"], true);
    let r = app
        .admin
        .delete(app.url(&format!("/api/auth/tokens/{scoped_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = call(reqwest::Method::GET, "/api/data/tourists", &scoped, None).await;
    assert_eq!(status, 401, "a revoked token stops at once");
    let all = app.get("/api/admin/tokens?login=admin").await;
    assert_eq!(all["tokens"][1]["revoked"], true, "{all}");
    assert_eq!(all["tokens"][1]["usable"], false, "{all}");
    let child_id = all["tokens"][0]["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/admin/tokens/{child_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = call(reqwest::Method::GET, "/api/data/tourists", &child, None).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .call(reqwest::Method::DELETE, "/api/auth/tokens/999999", None)
        .await;
    assert_eq!(status, 404);
    let log = app.get("/api/admin/access-log?action=revoke_token").await;
    assert_eq!(log["entries"].as_array().unwrap().len(), 2, "{log}");
}

/// A page on another origin cannot write with the administrator's cookie, nor sign anyone in;
/// the editor's own pages (same origin) and clients that are not browsers can.
async fn writes_from_other_origins_are_refused(app: &TestApp) {
    let host = app.base.trim_start_matches("http://").to_string();
    let flow =
        json!({"format": 1, "name": "csrf", "entry": {"type": "api", "next": "x"}, "nodes": []});
    for (origin, site, status) in [
        (Some("https://evil.example"), None, 403),
        (Some("http://127.0.0.1:1"), None, 403),
        (None, Some("cross-site"), 403),
        (Some(app.base.as_str()), Some("same-origin"), 201),
        (None, None, 201),
    ] {
        let mut request = app.admin.post(app.url("/api/flows")).json(&flow);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        let r = request.header("host", &host).send().await.unwrap();
        assert_eq!(r.status(), status, "{origin:?} {site:?}");
        if status == 403 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "cross_origin");
        }
    }
    let forged = client()
        .post(app.url("/api/auth/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"login": ADMIN_LOGIN, "password": tabiji_e2e::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn cross_origin_writes() {
    on_every_backend!(writes_from_other_origins_are_refused);
}

#[tokio::test]
async fn closed_by_default() {
    on_every_backend!(only_health_and_login_are_open);
}

#[tokio::test]
async fn sessions() {
    on_every_backend!(session_cookie_sign_in_and_out);
}

#[tokio::test]
async fn tokens() {
    on_every_backend!(api_tokens_for_integrators);
}
