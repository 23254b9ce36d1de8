//! Sessions (CF-11): a second sign-in, forced log-off, locks after wrong passwords, the limit
//! per address, password changes, disabled accounts; and the access log (CF-3) searched and
//! exported by an administrator.

use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::{ADMIN_LOGIN, TestApp, client, on_every_backend};

const PASSWORD: &str = "spring in Nagoya 2026";

async fn sign_in(app: &TestApp, login: &str, password: &str) -> (reqwest::Client, u16, Value) {
    let browser = client();
    let r = browser
        .post(app.url("/api/auth/login"))
        .header("user-agent", format!("e2e browser of {login}"))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").cloned();
    let mut body: Value = r.json().await.unwrap();
    if let Some(wait) = retry_after {
        body["retry_after"] = json!(wait.to_str().unwrap().parse::<u64>().unwrap());
    }
    (browser, status, body)
}

/// The status and error code (or `ok`) of `GET /api/auth/me`, and the reason of an ended
/// session.
async fn me(browser: &reqwest::Client, app: &TestApp) -> (u16, String) {
    let r = browser.get(app.url("/api/auth/me")).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let code = match &body["error"] {
        Value::Null => "ok".to_string(),
        e => format!(
            "{}{}",
            e["code"].as_str().unwrap(),
            e["reason"]
                .as_str()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        ),
    };
    (status, code)
}

async fn create_user(app: &TestApp, login: &str) {
    let (status, body) = app
        .post(
            "/api/admin/users",
            json!({"login": login, "password": PASSWORD, "roles": []}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn log_of(app: &TestApp, query: &str) -> Vec<Value> {
    let log = app.get(&format!("/api/admin/access-log?{query}")).await;
    log["entries"].as_array().unwrap().clone()
}

async fn a_second_sign_in_and_forced_log_off(app: &TestApp) {
    create_user(app, "sato").await;
    let (office, status, body) = sign_in(app, "sato", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended_sessions"], 0);
    assert_eq!(me(&office, app).await, (200, "ok".into()));

    // The same account from a second browser: the first is signed out and told why.
    let (home, status, body) = sign_in(app, "sato", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended_sessions"], 1);
    assert_eq!(
        me(&office, app).await,
        (401, "session_ended signed_in_elsewhere".into())
    );
    let r = office.get(app.url("/api/auth/me")).send().await.unwrap();
    let message = r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("signed in somewhere else"), "{message}");
    assert_eq!(me(&home, app).await, (200, "ok".into()));
    let second = log_of(app, "login=sato&action=second_login").await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0]["outcome"], "ended_older");

    // The user sees their one live session, marked as this one.
    let own: Value = home
        .get(app.url("/api/auth/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let own = own["sessions"].as_array().unwrap();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["current"], true);
    assert_eq!(own[0]["ip"], "127.0.0.1");
    assert_eq!(own[0]["user_agent"], "e2e browser of sato");

    // Only an administrator forces anyone off.
    let r = home
        .post(app.url("/api/admin/users/sato/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let listed = app.get("/api/admin/sessions?login=sato").await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");
    let (status, body) = app.post("/api/admin/users/sato/logout", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended_sessions"], 1);
    assert_eq!(
        me(&home, app).await,
        (401, "session_ended ended_by_administrator".into())
    );
    let listed = app.get("/api/admin/sessions?login=sato").await;
    assert_eq!(listed["sessions"], json!([]));

    // One session ended by its id.
    let (phone, _, _) = sign_in(app, "sato", PASSWORD).await;
    let listed = app.get("/api/admin/sessions?login=sato").await;
    let id = listed["sessions"][0]["id"].as_i64().unwrap();
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/admin/sessions/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        me(&phone, app).await,
        (401, "session_ended ended_by_administrator".into())
    );
    let (status, body) = app
        .call(Method::DELETE, &format!("/api/admin/sessions/{id}"), None)
        .await;
    assert_eq!(status, 404, "an ended session cannot end again: {body}");
    let forced = log_of(app, "action=log_off").await;
    assert_eq!(forced.len(), 2, "{forced:?}");
    assert!(forced.iter().all(|e| e["login"] == ADMIN_LOGIN));

    // Signing out ends the session for good, even for a copy of the cookie kept elsewhere.
    let r = client()
        .post(app.url("/api/auth/login"))
        .json(&json!({"login": "sato", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let copy = |path: &str| {
        reqwest::Client::new()
            .post(app.url(path))
            .header("cookie", cookie.clone())
    };
    assert_eq!(copy("/api/auth/logout").send().await.unwrap().status(), 204);
    let r = reqwest::Client::new()
        .get(app.url("/api/auth/me"))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "signed_out", "{body}");
}

async fn wrong_passwords_lock_and_addresses_are_held_back(app: &TestApp) {
    create_user(app, "suzuki").await;
    for attempt in 1..=5 {
        let (_, status, body) = sign_in(app, "suzuki", "not the password").await;
        if attempt < 5 {
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["error"]["code"], "bad_credentials");
        } else {
            assert_eq!(status, 429, "{body}");
            assert_eq!(body["error"]["code"], "login_locked");
            let wait = body["retry_after"].as_u64().unwrap();
            assert!((800..=900).contains(&wait), "{wait}");
        }
    }
    let (_, status, body) = sign_in(app, "suzuki", PASSWORD).await;
    assert_eq!(status, 429, "locked even with the right password: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ask an administrator to unlock it")
    );
    let (status, body) = app
        .post("/api/admin/users/suzuki/unlock", Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["was_locked"], true);
    let (_, status, body) = sign_in(app, "suzuki", PASSWORD).await;
    assert_eq!(status, 200, "{body}");

    let denied = log_of(app, "login=suzuki&action=login&outcome=denied").await;
    assert_eq!(denied.len(), 6, "{denied:?}");
    assert!(
        denied
            .iter()
            .any(|e| e["detail"].as_str().unwrap().starts_with("locked"))
    );

    // One address guessing across many logins is held back, then told how long to wait.
    let mut throttled = None;
    for n in 0..40 {
        let (_, status, body) = sign_in(app, &format!("guess{n}"), "password guess").await;
        if status == 429 && body["error"]["code"] == "too_many_attempts" {
            throttled = Some((n, body));
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    let (n, body) = throttled.expect("the address is throttled");
    // Thirty failures per address: the six above and these.
    assert_eq!(n + 6, 30, "{body}");
    assert!(body["retry_after"].as_u64().unwrap() > 0);
}

async fn passwords_and_disabled_accounts(app: &TestApp) {
    create_user(app, "tanaka").await;
    let (desk, _, _) = sign_in(app, "tanaka", PASSWORD).await;
    let (tablet, _, _) = sign_in(app, "tanaka", PASSWORD).await;
    assert_eq!(
        me(&desk, app).await,
        (401, "session_ended signed_in_elsewhere".into())
    );

    let change = |current: &str, new: &str| json!({"current_password": current, "password": new});
    let r = tablet
        .post(app.url("/api/auth/password"))
        .json(&change("wrong current", "a new spring password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["field"], "current_password");
    for (weak, code) in [
        ("short", "password_too_short"),
        ("tanaka1234", "password_like_login"),
        ("qwertyuiop", "password_too_common"),
    ] {
        let r = tablet
            .post(app.url("/api/auth/password"))
            .json(&change(PASSWORD, weak))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{weak}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["details"][0]["code"], code, "{body}");
    }
    let r = tablet
        .post(app.url("/api/auth/password"))
        .json(&change(PASSWORD, "a new spring password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(&tablet, app).await, (200, "ok".into()), "this one stays");
    let (_, status, _) = sign_in(app, "tanaka", PASSWORD).await;
    assert_eq!(status, 401, "the old password is gone");
    let (browser, status, _) = sign_in(app, "tanaka", "a new spring password").await;
    assert_eq!(status, 200);

    // An API token of the user, then the user is disabled: the session and the token stop.
    let r = browser
        .post(app.url("/api/auth/tokens"))
        .json(&json!({"name": "nightly"}))
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/admin/users/tanaka",
            Some(json!({"active": false, "display_name": "田中 (退職)"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    assert_eq!(
        me(&browser, app).await,
        (401, "session_ended account_disabled".into())
    );
    let r = reqwest::Client::new()
        .get(app.url("/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, status, _) = sign_in(app, "tanaka", "a new spring password").await;
    assert_eq!(status, 401);

    // An administrator sets a password and enables the account again.
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/admin/users/tanaka",
            Some(json!({"active": true, "password": "set by the administrator"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, status, _) = sign_in(app, "tanaka", "set by the administrator").await;
    assert_eq!(status, 200);
    let users = app.get("/api/admin/users").await;
    let tanaka = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "tanaka")
        .unwrap()
        .clone();
    assert_eq!(tanaka["display_name"], "田中 (退職)");

    // The last administrator cannot be disabled or demoted.
    for change in [json!({"active": false}), json!({"admin": false})] {
        let (status, body) = app
            .call(
                Method::PATCH,
                &format!("/api/admin/users/{ADMIN_LOGIN}"),
                Some(change),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"][0]["code"], "last_administrator");
    }
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/admin/users/nobody",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "login");
    let updates = log_of(app, "action=update_user").await;
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert_eq!(updates[0]["detail"], "tanaka: active, password");
}

async fn the_access_log_is_searched_paged_and_exported(app: &TestApp) {
    let mut ids = Vec::new();
    for email in ["a@example.jp", "b@example.jp"] {
        let (status, body) = app
            .post("/api/data/tourists", json!({ "email": email }))
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["record"]["id"].as_i64().unwrap());
    }
    for id in &ids {
        let (status, _) = app
            .call(Method::GET, &format!("/api/data/tourists/{id}"), None)
            .await;
        assert_eq!(status, 200);
    }
    let all = log_of(app, "limit=1000").await;
    assert!(all.len() >= 4, "{all:?}");
    let viewed = log_of(app, &format!("entity=tourists&record_id={}", ids[0])).await;
    let actions: Vec<&str> = viewed
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"view"),
        "views of one record are found: {viewed:?}"
    );
    assert!(viewed.iter().all(|e| e["record_id"] == ids[0]));

    // Pages of two, newest first, cover the log once.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let page = app.get(&format!("/api/admin/access-log?{query}")).await;
        let entries = page["entries"].as_array().unwrap();
        seen.extend(entries.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_before_id"].as_i64() {
            Some(before) => query = format!("limit=2&before_id={before}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, each once");
    assert!(seen.len() >= all.len());

    // Malformed parameters are answered in the API's JSON error shape, naming the parameter.
    let (status, body) = app
        .call(Method::GET, "/api/admin/access-log?to=yesterday", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("to"),
        "{body}"
    );
    let (status, body) = app
        .call(Method::DELETE, "/api/admin/sessions/not-a-number", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");

    let since = app.get("/api/admin/access-log?limit=1").await["kept_since"].clone();
    assert!(since.is_string(), "the page says what the log still holds");
    let r = app
        .admin
        .get(app.url("/api/admin/access-log/export?action=login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("access-log-")
    );
    let bytes = r.bytes().await.unwrap();
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBFid,at,login,action,entity,record_id,outcome,detail\r\n")
    );
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|row| row.contains(",login,")), "{text}");
    let exports = log_of(app, "action=export_access_log").await;
    assert_eq!(exports.len(), 1);

    let staff = app
        .user_with_rights(
            "viewer",
            json!({"entities": {"tourists": {"ops": ["view"]}}}),
        )
        .await;
    for path in [
        "/api/admin/access-log",
        "/api/admin/access-log/export",
        "/api/admin/sessions",
    ] {
        let r = staff.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn second_sign_in_and_forced_log_off() {
    on_every_backend!(a_second_sign_in_and_forced_log_off);
}

#[tokio::test]
async fn locks_and_limits() {
    on_every_backend!(wrong_passwords_lock_and_addresses_are_held_back);
}

#[tokio::test]
async fn passwords_and_disabling() {
    on_every_backend!(passwords_and_disabled_accounts);
}

#[tokio::test]
async fn access_log() {
    on_every_backend!(the_access_log_is_searched_paged_and_exported);
}
