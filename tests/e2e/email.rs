//! Content and e-mail end to end: a developer saves a rhai snippet, a marketer a part and a
//! template that use it, previews it for a tourist, and a flow sends it through a real SMTP
//! server (aiosmtpd). Each message is checked as it arrived: DKIM verified by dkimpy, the
//! Japanese subject MIME-encoded, the personalised text in the body. A recipient the relay
//! refuses for good is dead with the relay's words; one it refuses for now is retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabiji_connectors::smtp::{Dkim, Smtp, SmtpSettings};
use tabiji_e2e::smtp::{SmtpSink, dkim_verify, mime_parts};
use tabiji_e2e::{TestApp, backends, spawn_app_sending};
use tabiji_engine::runtime::Config;

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.call(reqwest::Method::PUT, path, Some(body)).await
}

/// A file of `examples/content/`, as docs/content.md has users save it.
fn example(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/content")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

async fn save_content(app: &TestApp) {
    let (status, body) = put(
        app,
        "/api/snippets/greeting",
        example("snippets/greeting.json"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);

    // A part that includes a missing part is refused, naming it.
    let (status, body) = put(app, "/api/parts/footer", json!({"body": "{{> legal}}"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "unknown_part");
    let (status, _) = put(app, "/api/parts/legal", example("parts/legal.json")).await;
    assert_eq!(status, 201);
    let (status, _) = put(app, "/api/parts/footer", example("parts/footer.json")).await;
    assert_eq!(status, 201);
    // …and one that would include itself.
    let (status, body) = put(app, "/api/parts/legal", json!({"body": "{{> footer}}"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "part_cycle");

    // A syntax error names the section, line and column.
    let (status, body) = put(
        app,
        "/api/templates/autumn",
        json!({"channel": "email", "subject": "秋", "html": "<p>\n{{#if contact.given_name}}</p>"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let detail = &body["error"]["details"][0];
    assert_eq!(
        (detail["field"].as_str(), detail["code"].as_str()),
        (Some("html"), Some("syntax"))
    );
    assert!(
        detail["message"].as_str().unwrap().starts_with("line "),
        "{detail}"
    );

    let template = example("templates/autumn.json");
    let (status, body) = put(app, "/api/templates/autumn", template.clone()).await;
    assert_eq!(status, 201, "{body}");
    // Saving again makes version 2; both stay readable.
    let mut second = template.clone();
    second["preheader"] = json!("秋の特別プラン (11月末まで)");
    let (status, body) = put(app, "/api/templates/autumn", second).await;
    assert_eq!((status, body["version"].as_i64()), (200, Some(2)), "{body}");
    let versions = app.get("/api/templates/autumn/versions").await;
    let versions = versions["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["definition"], template);
}

async fn tourists(app: &TestApp) -> Vec<i64> {
    app.create_tourists(vec![
        json!({"email": "hanako@example.jp", "given_name": "花子", "family_name": "<山田>", "prefecture": "愛知県", "member_type": "premium", "opt_in_email": true}),
        json!({"email": "bounce@example.jp", "given_name": "次郎", "family_name": "佐藤", "prefecture": "岐阜県", "opt_in_email": true}),
        json!({"email": "busy@example.jp", "given_name": "三郎", "family_name": "鈴木", "prefecture": "三重県", "opt_in_email": true}),
        json!({"email": "shiro@example.jp", "given_name": "四郎", "family_name": "高橋", "prefecture": "静岡県"}),
    ])
    .await
}

const PUBLIC_URL: &str = "https://crm.kanko.example.jp";

/// A link in a message, sent to the test server instead of the public address.
fn local(app: &TestApp, link: &str) -> String {
    link.replacen(PUBLIC_URL, &app.base, 1)
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .split("\r\n")
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

#[tokio::test]
async fn a_personalised_mail_arrives_signed() {
    for scratch in backends().await {
        let sink = SmtpSink::start();
        let pem = Dkim::generate_pem().unwrap();
        let dkim = Dkim::from_pem("kanko.example.jp", "tabiji2026", &pem, "test key").unwrap();
        let record = dkim.dns_record();
        let smtp = Smtp::new(SmtpSettings {
            url: sink.url(),
            password: None,
            default_sender: "旅路観光協会 <news@kanko.example.jp>".into(),
            dkim: Some(dkim),
            connections: 2,
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        let config = Config {
            retry_base: Duration::from_secs(3600),
            public_url: Some(PUBLIC_URL.into()),
            ..Config::default()
        };
        let app = spawn_app_sending(scratch, config, vec![Arc::new(smtp)]).await;

        save_content(&app).await;
        let ids = tourists(&app).await;

        // The preview shows what Hanako will get, her name escaped in the HTML only.
        let (status, preview) = app
            .post(
                "/api/templates/autumn/preview",
                json!({"contact_id": ids[0]}),
            )
            .await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(
            preview["subject"],
            "花子様 (プレミアム会員)、紅葉の愛知県へ"
        );
        assert!(
            preview["html"]
                .as_str()
                .unwrap()
                .contains("&lt;山田&gt;さまへ"),
            "{preview}"
        );
        assert!(
            preview["text"]
                .as_str()
                .unwrap()
                .contains("<山田>さまへ\n秋の特別プラン: https://kanko.example.jp/autumn\n--\n一般社団法人 旅路観光協会\n配信停止: https://unsubscribe.tabiji.invalid/"),
            "{preview}"
        );

        let flow = json!({
            "format": 1, "name": "autumn",
            "settings": {"re_entry": "after_exit"},
            "entry": {"type": "api", "next": "mail"},
            "nodes": [
                {"id": "mail", "type": "send", "channel": "email", "template": "autumn", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        });
        let (_, created) = app.post("/api/flows", flow).await;
        let flow_id = created["id"].as_i64().unwrap();
        let (status, _) = app
            .post(&format!("/api/flows/{flow_id}/publish"), json!({}))
            .await;
        assert_eq!(status, 200);
        let (status, report) = app
            .post(
                &format!("/api/flows/{flow_id}/runs"),
                json!({"contacts": ids}),
            )
            .await;
        assert_eq!(status, 200, "{report}");

        let sent = app
            .get_until(
                &format!("/api/deliveries?status=sent&flow={flow_id}"),
                |v| !v["deliveries"].as_array().unwrap().is_empty(),
            )
            .await;
        assert_eq!(sent["deliveries"][0]["contact_id"], ids[0], "{sent}");
        let dead = app
            .get_until(
                &format!("/api/deliveries?status=dead&flow={flow_id}"),
                |v| !v["deliveries"].as_array().unwrap().is_empty(),
            )
            .await;
        let bounced = &dead["deliveries"][0];
        assert_eq!(bounced["contact_id"], ids[1], "{dead}");
        assert!(
            bounced["error"].as_str().unwrap().contains("550"),
            "{bounced}"
        );
        let pending = app
            .get_until(
                &format!("/api/deliveries?status=pending&flow={flow_id}"),
                |v| {
                    v["deliveries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|d| d["attempts"] == 1)
                },
            )
            .await;
        let retried = &pending["deliveries"][0];
        assert_eq!(retried["contact_id"], ids[2], "{pending}");
        assert!(
            retried["error"].as_str().unwrap().contains("451"),
            "{retried}"
        );

        let messages = sink.messages();
        assert_eq!(messages.len(), 1, "only Hanako's mail was taken");
        dkim_verify(&messages[0], &record)
            .unwrap_or_else(|why| panic!("DKIM does not verify: {why}"));
        let wire = String::from_utf8(messages[0].clone()).unwrap();
        assert!(
            header(&wire, "Subject").unwrap().starts_with("=?utf-8?"),
            "{wire}"
        );
        assert!(
            header(&wire, "To").unwrap().contains("hanako@example.jp"),
            "{wire}"
        );
        assert!(
            header(&wire, "From")
                .unwrap()
                .contains("<news@kanko.example.jp>"),
            "{wire}"
        );
        assert!(wire.contains("multipart/alternative"), "{wire}");
        // Shiro never agreed to receive e-mail.
        let suppressed = app
            .get(&format!("/api/deliveries?status=suppressed&flow={flow_id}"))
            .await;
        assert_eq!(
            suppressed["deliveries"][0]["contact_id"], ids[3],
            "{suppressed}"
        );
        assert!(
            suppressed["deliveries"][0]["error"]
                .as_str()
                .unwrap()
                .contains("opt_in_email"),
            "{suppressed}"
        );

        // As a mail client reads it: the links go through the tracker, the pixel is there.
        let mail = mime_parts(&messages[0]);
        let html = mail["html"].as_str().unwrap();
        // Line ends travel as CRLF, as SMTP wants.
        let text = mail["text"].as_str().unwrap().replace("\r\n", "\n");
        assert!(
            text.contains("花子様 (プレミアム会員)\n<山田>さまへ"),
            "{text}"
        );
        let links: Vec<String> = html
            .split("href=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
            .collect();
        assert_eq!(links.len(), 2, "{html}");
        let click = local(&app, &links[0]);
        let unsubscribe_link = &links[1];
        assert!(click.contains("/t/c/"), "{click}");
        assert!(
            unsubscribe_link.starts_with(&format!("{PUBLIC_URL}/t/u/")),
            "{unsubscribe_link}"
        );
        let list_unsubscribe = mail["headers"]["List-Unsubscribe"].as_str().unwrap();
        assert_eq!(list_unsubscribe, format!("<{unsubscribe_link}>"));
        assert_eq!(
            mail["headers"]["List-Unsubscribe-Post"],
            "List-Unsubscribe=One-Click"
        );
        assert!(
            text.contains(&format!("配信停止: {unsubscribe_link}")),
            "{text}"
        );
        let pixel = html
            .split("<img src=\"")
            .nth(1)
            .map(|rest| rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
            .unwrap();

        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = browser.get(&click).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(
            response.headers()["location"],
            "https://kanko.example.jp/autumn?utm_source=mail&utm_campaign=autumn"
        );
        // A link pointed elsewhere is refused: no open redirect.
        let tampered = format!(
            "{}?u=https%3A%2F%2Fevil.example%2F",
            &click[..click.find('?').unwrap()]
        );
        let response = browser.get(&tampered).send().await.unwrap();
        assert_eq!(response.status(), 400);
        assert!(response.headers().get("location").is_none());
        let response = browser.get(local(&app, &pixel)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/gif");
        let named = app.event_names(ids[0]).await;
        assert_eq!(
            named,
            vec!["clicked".to_string(), "opened".to_string()],
            "one open however often; the click"
        );

        // One click in the mail client (RFC 8058) unsubscribes; the confirmation page alone does not.
        let page = browser
            .get(local(&app, unsubscribe_link))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("<form method=\"post\">")
        );
        let tourist = app.get(&format!("/api/data/tourists/{}", ids[0])).await;
        assert_eq!(tourist["opt_in_email"], true, "a GET changes nothing");
        let response = browser
            .post(local(&app, unsubscribe_link))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let tourist = app.get(&format!("/api/data/tourists/{}", ids[0])).await;
        assert_eq!(tourist["opt_in_email"], false, "{tourist}");
        // Her consent is restored for the next check, by staff.
        let (status, _) = app
            .call(
                reqwest::Method::PATCH,
                &format!("/api/data/tourists/{}", ids[0]),
                Some(json!({"opt_in_email": true})),
            )
            .await;
        assert_eq!(status, 200);

        // The refused address is on the suppression list, and the refusal is an event.
        let listed = app.get("/api/suppressions?channel=email").await;
        let listed = listed["suppressions"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (listed[0]["address"].as_str(), listed[0]["reason"].as_str()),
            (Some("bounce@example.jp"), Some("bounce"))
        );
        assert!(listed[0]["detail"].as_str().unwrap().contains("5.1.1"));
        assert_eq!(app.event_names(ids[1]).await, vec!["bounced".to_string()]);

        // A broken snippet saved later fails the next send with its reason, not a blank mail;
        // the bounced address is not tried again.
        let (status, _) = put(
            &app,
            "/api/snippets/greeting",
            json!({"source": "throw \"no greeting today\""}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, report) = app
            .post(
                &format!("/api/flows/{flow_id}/runs"),
                json!({"contacts": [ids[0], ids[1]], "key": "again"}),
            )
            .await;
        assert_eq!(
            (status, &report["entered"]),
            (200, &json!([ids[0], ids[1]])),
            "{report}"
        );
        let suppressed = app
            .get_until(
                &format!("/api/deliveries?status=suppressed&flow={flow_id}"),
                |v| v["deliveries"].as_array().unwrap().len() == 2,
            )
            .await;
        let again = suppressed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["contact_id"] == ids[1])
            .unwrap()
            .clone();
        assert!(
            again["error"]
                .as_str()
                .unwrap()
                .contains("the email is on the suppression list (bounce"),
            "{again}"
        );
        let dead = app
            .get_until(
                &format!("/api/deliveries?status=dead&flow={flow_id}"),
                |v| v["deliveries"].as_array().unwrap().len() == 2,
            )
            .await;
        let failed = dead["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["contact_id"] == ids[0])
            .unwrap()
            .clone();
        let why = failed["error"].as_str().unwrap();
        assert!(
            why.contains("snippet \"greeting\"") && why.contains("no greeting today"),
            "{why}"
        );
        assert_eq!(sink.messages().len(), 1);
        app.stop().await;
    }
}

/// The template editor previews what is on screen before it is saved.
#[tokio::test]
async fn a_draft_template_previews_as_it_would_once_saved_and_nothing_is_saved() {
    for scratch in backends().await {
        let app = tabiji_e2e::spawn_app(scratch).await;
        save_content(&app).await;
        let ids = tourists(&app).await;

        let mut draft = example("templates/autumn.json");
        draft["subject"] = json!("{{contact.given_name}}様、冬の{{contact.prefecture}}へ");
        draft["html"] = json!("");
        let (status, preview) = app
            .post(
                "/api/templates/autumn/preview",
                json!({"contact_id": ids[0], "definition": draft}),
            )
            .await;
        assert_eq!(status, 200, "{preview}");
        assert_eq!(preview["subject"], "花子様、冬の愛知県へ");
        assert!(
            preview.get("html").is_none(),
            "the saved HTML does not show through: {preview}"
        );
        assert!(
            preview["text"]
                .as_str()
                .unwrap()
                .contains("一般社団法人 旅路観光協会"),
            "the saved parts are included: {preview}"
        );
        let saved = app.get("/api/templates/autumn").await;
        assert_eq!(saved["version"], 2, "a preview saves nothing: {saved}");

        // A key not saved yet previews too.
        let (status, preview) = app
            .post(
                "/api/templates/winter/preview",
                json!({"contact": {"given_name": "次郎"}, "definition": {"channel": "sms", "text": "{{contact.given_name}}さん {{script \"greeting\"}}"}}),
            )
            .await;
        assert_eq!(status, 200, "{preview}");
        assert!(
            preview["text"].as_str().unwrap().starts_with("次郎さん "),
            "{preview}"
        );

        // What would refuse the save refuses the preview, naming the section.
        let (status, body) = app
            .post(
                "/api/templates/winter/preview",
                json!({"definition": {"channel": "email", "subject": "冬", "html": "<p>\n{{> nowhere}}"}}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        let detail = &body["error"]["details"][0];
        assert_eq!(
            (detail["field"].as_str(), detail["code"].as_str()),
            (Some("html"), Some("unknown_part")),
            "{body}"
        );
        let (status, body) = app
            .post(
                "/api/templates/-bad-/preview",
                json!({"definition": {"channel": "sms", "text": "x"}}),
            )
            .await;
        assert_eq!(status, 400, "{body}");

        // The HTML as a page for the editor's preview frame: its inline styles allowed, no
        // script, framed by tabiji only.
        let draft = json!({"channel": "email", "subject": "冬", "preheader": "冬のご案内",
                           "html": "<p style=\"color:red\">{{contact.given_name}}様</p>{{> footer}}"});
        let page = app
            .admin
            .post(app.url("/api/templates/winter/preview.html"))
            .header("sec-fetch-site", "same-origin")
            .form(&[
                ("definition", draft.to_string()),
                ("contact_id", ids[0].to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let policy = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            policy.starts_with("sandbox;")
                && policy.contains("style-src 'unsafe-inline'")
                && policy.contains("frame-ancestors 'self'")
                && !policy.contains("script"),
            "{policy}"
        );
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = page.text().await.unwrap();
        assert!(
            html.starts_with("<div style=\"display:none")
                && html.contains("<p style=\"color:red\">花子様</p>"),
            "{html}"
        );
        assert!(html.contains("一般社団法人 旅路観光協会"), "{html}");
        let page = app
            .admin
            .post(app.url("/api/templates/winter/preview.html"))
            .form(&[("contact_id", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400);
        let body: Value = page.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("contact_id"),
            "{body}"
        );
        // Another site cannot have a signed-in browser post it.
        let page = app
            .admin
            .post(app.url("/api/templates/autumn/preview.html"))
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .form(&[("contact_id", ids[0].to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 403);

        // Previewing needs the view right on templates, saved or not.
        let staff = app
            .user_with_rights(
                "staff",
                json!({"entities": {"tourists": {"ops": ["view"]}}}),
            )
            .await;
        let response = staff
            .post(app.url("/api/templates/winter/preview"))
            .json(&json!({"definition": {"channel": "sms", "text": "x"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let response = staff
            .post(app.url("/api/templates/autumn/preview.html"))
            .form(&[("contact_id", ids[0].to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        app.stop().await;
    }
}

#[tokio::test]
async fn snippets_test_run_and_hostile_ones_are_stopped() {
    for scratch in backends().await {
        let app = tabiji_e2e::spawn_app(scratch).await;
        let (status, body) = app
            .post(
                "/api/snippets/run",
                json!({"source": "`${contact.first_name}: ${args[0] * 2}`", "contact": {"first_name": "花子"}, "args": [21]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["value"], "花子: 42");

        let (status, body) = app
            .post(
                "/api/snippets/run",
                json!({"source": "let x = 1;\nlet y = (x + ;"}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            (
                body["error"]["code"].as_str(),
                body["error"]["line"].as_i64()
            ),
            (Some("script_syntax"), Some(2))
        );
        assert!(body["error"]["column"].as_i64().is_some(), "{body}");

        for hostile in [
            "loop {}",
            "let s = \"x\"; loop { s += s; }",
            "fn f(n) { f(n + 1) } f(0)",
        ] {
            let started = Instant::now();
            let (status, body) = app
                .post("/api/snippets/run", json!({"source": hostile}))
                .await;
            assert_eq!(status, 422, "{hostile}: {body}");
            assert_eq!(body["error"]["code"], "script_limit", "{hostile}: {body}");
            assert!(started.elapsed() < Duration::from_secs(5), "{hostile}");
        }
        // The server still answers.
        let (status, _) = app
            .post("/api/snippets/run", json!({"source": "1 + 1"}))
            .await;
        assert_eq!(status, 200);

        // A staff member without the snippets right may neither run nor read them.
        let staff = app
            .user_with_rights(
                "staff",
                json!({"entities": {"tourists": {"ops": ["view"]}}}),
            )
            .await;
        let response = staff
            .post(app.url("/api/snippets/run"))
            .json(&json!({"source": "1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let response = staff.get(app.url("/api/templates")).send().await.unwrap();
        assert_eq!(response.status(), 403);
        // Reading snippets is not running code: that takes the right to write them.
        let reader = app
            .user_with_rights(
                "reader",
                json!({"entities": {"snippets": {"ops": ["view"]}}}),
            )
            .await;
        let response = reader.get(app.url("/api/snippets")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let response = reader
            .post(app.url("/api/snippets/run"))
            .json(&json!({"source": "1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        app.stop().await;
    }
}
