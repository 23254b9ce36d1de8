//! SMS, LINE and webhook channels end to end: an administrator configures each through the
//! API (the credential sealed under the master key, never shown again), a marketer saves a
//! template per channel, and a flow sends all three to a tourist. The providers are wiremock
//! servers that check each request has the shape the providers document: Twilio's form-encoded
//! Messages API with basic auth, LINE's push API with a bearer token and a retry key, and a
//! webhook signed with HMAC-SHA256 that the receiver verifies.

use std::sync::Arc;

use serde_json::{Value, json};
use tabiji_connectors::http::Reach;
use tabiji_connectors::webhook::{SIGNATURE_HEADER, signature};
use tabiji_e2e::{TestApp, backends, spawn_app, spawn_app_with};
use tabiji_engine::channels::Vault;
use tabiji_engine::runtime::Config;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-token-8f3a";
const LINE_TOKEN: &str = "line-channel-access-token-77c1";
const HOOK_SECRET: &str = "whsec-e2e-5d1e";
const HANAKO_LINE: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
const PUBLIC_URL: &str = "https://crm.kanko.example.jp";

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.call(reqwest::Method::PUT, path, Some(body)).await
}

async fn providers() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        )))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM7e1", "status": "queued"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .and(header(
            "authorization",
            format!("Bearer {LINE_TOKEN}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"sentMessages": [{"id": "4612309668", "quoteToken": "q"}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/visits"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

async fn configure(app: &TestApp, providers: &MockServer) {
    // Refusals name the field.
    let (status, body) = put(
        app,
        "/api/channels/sms",
        json!({"settings": {"base_url": "http://sms.example.com", "account_sid": ACCOUNT, "from": "+815012345678"}, "credential": TWILIO_TOKEN}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "base_url", "{body}");
    let (status, body) = put(
        app,
        "/api/channels/sms",
        json!({"settings": {"base_url": providers.uri(), "account_sid": ACCOUNT, "from": "+815012345678", "phone_field": "email"}, "credential": TWILIO_TOKEN}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "not_phone", "{body}");
    let (status, body) = put(
        app,
        "/api/channels/sms",
        json!({"settings": {"base_url": providers.uri(), "account_sid": ACCOUNT, "from": "+815012345678"}}),
    )
    .await;
    assert_eq!(status, 422, "a new channel needs its credential: {body}");
    assert_eq!(body["error"]["details"][0]["field"], "auth_token", "{body}");
    let (status, body) = put(app, "/api/channels/email", json!({"settings": {}})).await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = put(
        app,
        "/api/channels/sms",
        json!({"settings": {"base_url": providers.uri(), "account_sid": ACCOUNT, "from": "+815012345678"}, "credential": TWILIO_TOKEN}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["credential_set"].as_bool(), body["usable"].as_bool()),
        (Some(true), Some(true)),
        "{body}"
    );
    let (status, body) = put(
        app,
        "/api/channels/line",
        json!({"settings": {"base_url": providers.uri()}, "credential": LINE_TOKEN}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = put(
        app,
        "/api/channels/webhook",
        json!({"settings": {"url": format!("{}/hooks/visits", providers.uri()), "fields": ["email", "given_name"]}, "credential": HOOK_SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A credential never follows a changed address: it must be given again.
    let (status, body) = put(
        app,
        "/api/channels/sms",
        json!({"settings": {"base_url": "https://sms.attacker.example", "account_sid": ACCOUNT, "from": "KANKO"}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "auth_token", "{body}");
    // Saving again without the credential, to the same address, keeps it.
    let (status, body) = put(
        app,
        "/api/channels/sms",
        json!({"settings": {"base_url": providers.uri(), "account_sid": ACCOUNT, "from": "KANKO"}}),
    )
    .await;
    assert_eq!(
        (status, body["revision"].as_i64()),
        (200, Some(2)),
        "{body}"
    );

    // No credential is ever read back, and none is stored in clear.
    let listed = app.get("/api/channels").await;
    assert_eq!(listed["channels"].as_array().unwrap().len(), 3, "{listed}");
    let shown = listed.to_string();
    for secret in [TWILIO_TOKEN, LINE_TOKEN, HOOK_SECRET] {
        assert!(!shown.contains(secret), "{shown}");
    }
    use sea_orm::{ConnectionTrait, Statement};
    let conn = &app.store.db().conn;
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT credential FROM sys_channels".to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let stored: String = row.try_get("", "credential").unwrap();
        assert!(stored.starts_with("v1."), "{stored}");
        for secret in [TWILIO_TOKEN, LINE_TOKEN, HOOK_SECRET] {
            assert!(!stored.contains(secret));
        }
    }

    // Only administrators configure channels.
    let marketer = app
        .user_with_rights(
            "marketer",
            json!({"entities": {"tourists": {"ops": ["view", "edit"]}}}),
        )
        .await;
    let r = marketer.get(app.url("/api/channels")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = marketer
        .post(app.url("/api/suppressions"))
        .json(&json!({"channel": "email", "address": "someone@example.jp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "suppressing needs the right");
    let r = marketer
        .put(app.url("/api/channels/line"))
        .json(&json!({"settings": {"base_url": "https://evil.example"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

async fn save_templates(app: &TestApp) {
    for (key, template) in [
        (
            "sms-momiji",
            json!({"channel": "sms", "text": "{{contact.given_name}}様、紅葉まつりは11/30まで。"}),
        ),
        (
            "line-momiji",
            json!({"channel": "line", "text": "{{contact.given_name}}様へ紅葉のご案内",
            "flex": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
                {"type": "text", "text": "{{contact.family_name}} {{contact.given_name}}様", "weight": "bold"},
                {"type": "text", "text": "紅葉まつりは11/30まで", "wrap": true}
            ]}}}),
        ),
        (
            "visit-hook",
            json!({"channel": "webhook", "text": "{{contact.given_name}}様が紅葉のご案内を受け取りました"}),
        ),
    ] {
        let (status, body) = put(app, &format!("/api/templates/{key}"), template).await;
        assert_eq!(status, 201, "{key}: {body}");
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn sms_line_and_webhooks_reach_their_providers() {
    for scratch in backends().await {
        let providers = providers().await;
        let vault = Vault::from_base64(&Vault::generate(), "test key").unwrap();
        let config = Config {
            vault: Some(Arc::new(vault)),
            // The providers' doubles listen on this machine.
            channel_reach: Reach::Anywhere,
            public_url: Some(PUBLIC_URL.into()),
            ..Config::default()
        };
        let app = spawn_app_with(scratch, config).await;
        configure(&app, &providers).await;
        save_templates(&app).await;

        let (status, created) = app
            .post(
                "/api/data/tourists/bulk",
                json!({"items": [
                    {"email": "hanako@example.jp", "given_name": "花子", "family_name": "山田", "mobile_phone": "090-1234-5678",
                     "line_user_id": HANAKO_LINE, "opt_in_sms": true, "opt_in_line": true},
                    {"email": "taro@example.jp", "given_name": "太郎", "family_name": "佐藤", "mobile_phone": "080-0000-1111"},
                    {"email": "jiro@example.jp", "given_name": "次郎", "family_name": "鈴木", "mobile_phone": "080-2222-3333", "opt_in_sms": true}
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

        // Jiro complained through the provider's feedback loop: his number is suppressed,
        // however it was typed.
        let (status, body) = app
            .post(
                "/api/suppressions",
                json!({"channel": "sms", "address": "０８０−２２２２−３３３３", "reason": "complaint", "note": "STOP"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["address"], "+818022223333");
        let (status, body) = app
            .post(
                "/api/suppressions",
                json!({"channel": "sms", "address": "phone?", "reason": "complaint"}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"][0]["field"], "address");

        // A flow naming a template that is not saved, or one for another channel, is not
        // published.
        let broken = json!({
            "format": 1, "name": "broken",
            "entry": {"type": "api", "next": "sms"},
            "nodes": [
                {"id": "sms", "type": "send", "channel": "sms", "template": "no-such-template", "next": "line"},
                {"id": "line", "type": "send", "channel": "line", "template": "sms-momiji", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        });
        let (_, created) = app.post("/api/flows", broken).await;
        let (status, body) = app
            .post(&format!("/api/flows/{}/publish", created["id"]), json!({}))
            .await;
        assert_eq!(status, 422, "{body}");
        let problems: Vec<(&str, &str)> = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["field"].as_str().unwrap(), d["code"].as_str().unwrap()))
            .collect();
        assert_eq!(
            problems,
            vec![
                ("nodes.sms", "unknown_template"),
                ("nodes.line", "wrong_channel")
            ]
        );

        let flow = json!({
            "format": 1, "name": "momiji",
            "entry": {"type": "api", "next": "sms"},
            "nodes": [
                {"id": "sms", "type": "send", "channel": "sms", "template": "sms-momiji", "next": "line"},
                {"id": "line", "type": "send", "channel": "line", "template": "line-momiji", "next": "hook"},
                {"id": "hook", "type": "send", "channel": "webhook", "template": "visit-hook", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        });
        let flow_id = app.publish_and_enter(flow, &ids).await;

        // Hanako gets all three; Taro agreed to neither SMS nor LINE, Jiro's number is
        // suppressed, and the webhook needs no consent.
        let sent = app
            .get_until(
                &format!("/api/deliveries?status=sent&flow={flow_id}"),
                |v| v["deliveries"].as_array().unwrap().len() == 5,
            )
            .await;
        let mut refs: Vec<(i64, String)> = sent["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["contact_id"].as_i64().unwrap(),
                    d["provider_ref"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        refs.sort();
        assert_eq!(
            refs,
            vec![
                (ids[0], "204".to_string()),
                (ids[0], "4612309668".to_string()),
                (ids[0], "SM7e1".to_string()),
                (ids[1], "204".to_string()),
                (ids[2], "204".to_string()),
            ],
            "{sent}"
        );
        let suppressed = app
            .get(&format!("/api/deliveries?status=suppressed&flow={flow_id}"))
            .await;
        let reasons: Vec<&str> = suppressed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["error"].as_str().unwrap())
            .collect();
        assert_eq!(reasons.len(), 4, "{suppressed}");
        assert!(
            reasons.iter().any(|r| r.contains("opt_in_sms")),
            "{reasons:?}"
        );
        assert_eq!(
            reasons.iter().filter(|r| r.contains("opt_in_line")).count(),
            2
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("the mobile_phone is on the suppression list (complaint")),
            "{reasons:?}"
        );

        let received = providers.received_requests().await.unwrap();
        let sms: Vec<_> = received
            .iter()
            .filter(|r| r.url.path().ends_with("/Messages.json"))
            .collect();
        assert_eq!(sms.len(), 1);
        use base64::Engine as _;
        let expected_auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TWILIO_TOKEN}"))
        );
        assert_eq!(sms[0].headers["authorization"], expected_auth.as_str());
        let sent_form = form(&sms[0].body);
        assert_eq!(
            sent_form[..3],
            [
                ("To".to_string(), "+819012345678".to_string()),
                ("From".to_string(), "KANKO".to_string()),
                (
                    "Body".to_string(),
                    "花子様、紅葉まつりは11/30まで。".to_string()
                ),
            ]
        );
        // Twilio reports the delivery to the signed status address: a `delivered` event.
        let (name, callback) = &sent_form[3];
        assert_eq!(name, "StatusCallback");
        assert!(
            callback.starts_with(&format!("{PUBLIC_URL}/t/s/")),
            "{callback}"
        );
        let callback = callback.replacen(PUBLIC_URL, &app.base, 1);
        let provider = reqwest::Client::new();
        let report = |url: String, status: &'static str| {
            provider
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("MessageSid=SM7e1&MessageStatus={status}"))
                .send()
        };
        assert_eq!(
            report(callback.clone(), "sent").await.unwrap().status(),
            204
        );
        assert_eq!(
            report(callback.clone(), "delivered")
                .await
                .unwrap()
                .status(),
            204
        );
        // The signature's last character changed (to 0, or to 1 where it was 0 already).
        let last = if callback.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &callback[..callback.len() - 1]);
        assert_eq!(report(forged, "undelivered").await.unwrap().status(), 403);
        assert_eq!(app.event_names(ids[0]).await, vec!["delivered".to_string()]);

        let line: Vec<_> = received
            .iter()
            .filter(|r| r.url.path() == "/v2/bot/message/push")
            .collect();
        assert_eq!(line.len(), 1);
        let pushed: Value = serde_json::from_slice(&line[0].body).unwrap();
        assert_eq!(
            pushed,
            json!({"to": HANAKO_LINE, "messages": [{"type": "flex", "altText": "花子様へ紅葉のご案内",
            "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [
                {"type": "text", "text": "山田 花子様", "weight": "bold"},
                {"type": "text", "text": "紅葉まつりは11/30まで", "wrap": true}
            ]}}}]})
        );
        let retry_key = line[0].headers["x-line-retry-key"].to_str().unwrap();
        assert_eq!(retry_key.len(), 36, "{retry_key}");

        let hooks: Vec<_> = received
            .iter()
            .filter(|r| r.url.path() == "/hooks/visits")
            .collect();
        assert_eq!(hooks.len(), 3);
        for hook in hooks {
            let signed = hook.headers[SIGNATURE_HEADER].to_str().unwrap();
            let t: u64 = signed[2..signed.find(',').unwrap()].parse().unwrap();
            assert_eq!(signed, signature(HOOK_SECRET, t, &hook.body), "verifies");
            let body: Value = serde_json::from_slice(&hook.body).unwrap();
            let contact = body["contact"].as_object().unwrap();
            let mut keys: Vec<&String> = contact.keys().collect();
            keys.sort();
            assert_eq!(keys, vec!["email", "given_name"], "only the chosen fields");
            assert!(
                body["text"]
                    .as_str()
                    .unwrap()
                    .ends_with("様が紅葉のご案内を受け取りました"),
                "{body}"
            );
            assert!(hook.headers.contains_key("idempotency-key"));
        }

        // Staff take Jiro's number off the list.
        let (status, _) = app
            .call(
                reqwest::Method::DELETE,
                "/api/suppressions/sms/080-2222-3333",
                None,
            )
            .await;
        assert_eq!(status, 204);
        let listed = app.get("/api/suppressions?channel=sms").await;
        assert_eq!(listed["suppressions"], json!([]));

        // A removed channel is gone with its credential.
        let (status, _) = app
            .call(reqwest::Method::DELETE, "/api/channels/line", None)
            .await;
        assert_eq!(status, 204);
        let (status, _) = app
            .call(reqwest::Method::GET, "/api/channels/line", None)
            .await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

#[tokio::test]
async fn channels_need_a_master_key_and_public_addresses() {
    let app = spawn_app(tabiji_storage::scratch::Scratch::sqlite()).await;
    // A channel may not point at this machine unless the operator allows it.
    let (status, body) = put(
        &app,
        "/api/channels/webhook",
        json!({"settings": {"url": "http://127.0.0.1:2375/containers/x/kill"}, "credential": HOOK_SECRET}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "url", "{body}");
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-local-channel-urls"),
        "{body}"
    );
    let (status, body) = put(
        &app,
        "/api/channels/line",
        json!({"settings": {}, "credential": LINE_TOKEN}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "no_master_key");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tabiji master-key generate"),
        "{body}"
    );
    app.stop().await;
}
