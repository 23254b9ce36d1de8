//! The browser editor in a real Chromium (playwright-core, `tests/browser/`): a new user
//! draws the patent scenario by drag and drop and publishes it, and the flow the server
//! stored is the one drawn. Screenshots are kept in `target/browser-artifacts/`.

use std::path::Path;

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, backends, spawn_app};

fn browser_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where screenshots go, kept after the run for people to look at.
fn artifacts(backend: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/browser-artifacts")
        .join(backend)
}

/// Runs `script` of `tests/browser/` in Chromium (the screenshot folder first, then `args`)
/// and gives what it printed as JSON; fails the test with the script's log when it fails.
async fn browser(script: &str, args: &[&str], backend: &str) -> Value {
    let run = tokio::process::Command::new("node")
        .arg(browser_dir().join(script))
        .arg(artifacts(backend))
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .unwrap_or_else(|_| panic!("{backend}: {script} took over 5 minutes"))
        .expect("node runs (apt-get install nodejs)");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{backend}: {script} failed\n{log}");
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

fn check_prerequisites() {
    assert!(
        tabiji_server::editor::is_built(&tabiji_e2e::editor_dir()),
        "the editor is not built in {}: run scripts/build-editor",
        tabiji_e2e::editor_dir().display()
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: npm ci --prefix tests/browser"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: apt-get install chromium (or set CHROMIUM)"
    );
}

async fn save_templates(app: &TestApp) {
    for (key, template) in [
        (
            "welcome",
            json!({"channel": "email", "subject": "ようこそ", "text": "{{contact.given_name}}様、ようこそ"}),
        ),
        (
            "followup",
            json!({"channel": "email", "subject": "ご覧いただきありがとうございます", "text": "次の旅のご提案です"}),
        ),
        (
            "reminder",
            json!({"channel": "sms", "text": "{{contact.given_name}}様、メールをご確認ください"}),
        ),
    ] {
        let (status, body) = app
            .call(
                reqwest::Method::PUT,
                &format!("/api/templates/{key}"),
                Some(template),
            )
            .await;
        assert_eq!(status, 201, "{key}: {body}");
    }
}

#[tokio::test]
async fn a_new_user_draws_publishes_and_reloads_the_patent_scenario() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        save_templates(&app).await;

        let page = app.admin.get(app.url("/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{csp}"
        );
        assert_eq!(page.headers()["x-content-type-options"], "nosniff");
        let wasm = app
            .admin
            .get(app.url("/tabiji_editor_bg.wasm"))
            .send()
            .await
            .unwrap();
        assert_eq!(wasm.headers()["content-type"], "application/wasm");
        assert!(wasm.bytes().await.unwrap().starts_with(b"\0asm"));

        let drawn = browser(
            "flow_editor.mjs",
            &[&app.base, "marketer", &app.administrator("marketer").await],
            app.backend,
        )
        .await;

        let id = drawn["flow_id"].as_i64().unwrap();
        let (status, info) = app
            .call(reqwest::Method::GET, &format!("/api/flows/{id}"), None)
            .await;
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["status"], "active", "{info}");
        assert_eq!(info["current_version"], 1);
        assert_eq!(info["name"], "特許シナリオ");
        let (_, version) = app
            .call(
                reqwest::Method::GET,
                &format!("/api/flows/{id}/versions/1"),
                None,
            )
            .await;
        let flow = &info["draft"];
        assert_eq!(version, *flow, "the published version is the draft drawn");

        // The patent scenario, as drawn.
        assert_eq!(flow["entry"], json!({"type": "api", "next": "email_1"}));
        let nodes = flow["nodes"].as_array().unwrap();
        let node = |id: &str| {
            nodes
                .iter()
                .find(|n| n["id"] == id)
                .unwrap_or_else(|| panic!("{id} in {flow}"))
                .clone()
        };
        assert_eq!(nodes.len(), 5, "{flow}");
        let step = |id: &str| {
            let mut n = node(id);
            n.as_object_mut().unwrap().remove("position");
            n
        };
        assert_eq!(
            step("email_1"),
            json!({"id": "email_1", "type": "send", "channel": "email", "template": "welcome", "next": "wait_for_event_1"})
        );
        assert_eq!(
            step("wait_for_event_1"),
            json!({"id": "wait_for_event_1", "type": "wait_for_event", "event": {"opened": {"of": "email_1"}},
                   "timeout": "3d", "on_event": "email_2", "on_timeout": "sms_1"})
        );
        assert_eq!(
            step("email_2"),
            json!({"id": "email_2", "type": "send", "channel": "email", "template": "followup", "next": "exit_1"})
        );
        assert_eq!(step("sms_1")["template"], "reminder");
        assert_eq!(step("sms_1")["channel"], "sms");
        assert_eq!(step("sms_1")["next"], "exit_1");
        assert_eq!(step("exit_1"), json!({"id": "exit_1", "type": "exit"}));

        // Where the canvas drew each node is where the server keeps it.
        for drawn_node in drawn["nodes"].as_array().unwrap() {
            let id = drawn_node["id"].as_str().unwrap();
            let position = &node(id)["position"];
            let expected = format!(
                "translate({},{})",
                position[0].as_f64().unwrap(),
                position[1].as_f64().unwrap()
            );
            assert_eq!(drawn_node["transform"], expected.as_str(), "{id}");
        }
        app.stop().await;
    }
}

/// Phone numbers of the seeded tourists, as stored (digits only).
fn phone(i: usize) -> String {
    format!("0905550{i:04}")
}

#[tokio::test]
async fn a_segment_built_in_the_browser_counts_as_the_api_does_and_phone_numbers_stay_hidden() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        let prefectures = ["愛知県", "岐阜県", "三重県"];
        let items: Vec<Value> = (0..90)
            .map(|i| {
                json!({
                    "email": format!("guest{i:02}@example.jp"),
                    "family_name": "佐藤", "given_name": format!("花子{i}"),
                    "prefecture": prefectures[i % 3],
                    "member_type": if i % 4 == 0 { "premium" } else { "general" },
                    "phone": phone(i), "mobile_phone": format!("080-7777-{i:04}"),
                })
            })
            .collect();
        let (status, body) = app
            .post("/api/data/tourists/bulk", json!({ "items": items }))
            .await;
        assert_eq!(status, 201, "{body}");
        app.user_with_rights(
            "desk",
            json!({"entities": {"tourists": {"ops": ["view", "edit"],
                   "fields": {"phone": "none", "mobile_phone": "none"}}}}),
        )
        .await;

        let manager = app.administrator("manager").await;
        let mut phones: Vec<String> = (0..90).map(phone).collect();
        phones.extend((0..90).map(|i| format!("0807777{i:04}")));
        let mut args = vec![
            app.base.as_str(),
            "manager",
            &manager,
            "desk",
            "desk-password",
        ];
        args.extend(phones.iter().map(String::as_str));
        let shown = browser("contacts.mjs", &args, app.backend).await;

        // The counts the screen showed are the API's.
        let api_count = |filter: Value| {
            let app = &app;
            async move {
                let (status, body) = app
                    .post("/api/data/tourists/count", json!({ "filter": filter }))
                    .await;
                assert_eq!(status, 200, "{body}");
                body["count"].clone()
            }
        };
        let aichi = json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}});
        let premium = json!({"field": {"key": "member_type", "op": "eq", "value": "premium"}});
        assert_eq!(shown["everyone"], 90);
        assert_eq!(shown["aichi"], api_count(json!({"all": [aichi]})).await);
        let both = api_count(json!({"all": [aichi, premium]})).await;
        assert_eq!(shown["aichi_premium"], both, "{shown}");
        assert_eq!(
            both, 8,
            "every third tourist is from Aichi, every fourth premium"
        );
        assert_eq!(shown["rows"], 8);
        let segment = app.get("/api/segments/aichi_premium/count").await;
        assert_eq!(segment["count"], both);
        assert!(
            shown["saved"]
                .as_str()
                .unwrap()
                .contains("aichi_premium (8)"),
            "{shown}"
        );

        // The front desk: no phone column, no phone condition, no phone number on screen.
        for list in ["clerk_columns", "clerk_fields"] {
            let keys: Vec<&str> = shown[list]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(keys.contains(&"email"), "{list}: {keys:?}");
            assert!(
                !keys.contains(&"phone") && !keys.contains(&"mobile_phone"),
                "{list}: {keys:?}"
            );
        }
        assert_eq!(
            shown["admin_sees"], 8,
            "the probe finds the phone numbers where they may be seen: {shown}"
        );
        assert_eq!(shown["leaked"], json!([]), "{shown}");
        app.stop().await;
    }
}

#[tokio::test]
async fn record_cards_show_timelines_and_save_edits_with_refusals_on_their_fields() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        let phone = "090-1234-5678";
        let ids = app
            .create_tourists(vec![
                json!({"email": "hanako@example.jp", "family_name": "山田", "given_name": "花子",
                       "phone": phone, "city": "名古屋市", "birth_date": "1990-02-01"}),
                json!({"email": "taro@example.jp", "family_name": "佐藤", "given_name": "太郎"}),
            ])
            .await;
        let tourist = ids[0];
        let purchases: Vec<Value> = (0..25)
            .map(|i| {
                json!({"tourist_id": tourist, "amount": 1000 + i * 100, "shop": format!("売店{i}"),
                       "occurred_at": format!("2026-10-{:02}T10:00:00+09:00", i + 1)})
            })
            .collect();
        let (status, body) = app
            .post("/api/data/purchases/bulk", json!({ "items": purchases }))
            .await;
        assert_eq!(status, 201, "{body}");
        for i in 0..5 {
            let (status, body) = app
                .post(
                    "/api/points",
                    json!({"email": "hanako@example.jp", "kind": "grant", "points": 100, "source_system": "ota",
                           "transaction_id": format!("OTA-{i}"), "occurred_at": format!("2026-11-0{}T09:00:00+09:00", i + 1)}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let (status, body) = app
            .post(
                "/api/data/inquiries",
                json!({"tourist_id": tourist, "subject": "傘の忘れ物", "status": "open"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let inquiry = body["record"]["id"].as_i64().unwrap();
        let (status, body) = app
            .post(
                "/api/data/inquiry_responses",
                json!({"inquiry_id": inquiry, "responded_at": "2026-11-02T10:00:00+09:00", "status": "resolved",
                       "staff": "鈴木", "body": "駅の忘れ物窓口でお預かりしています"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = app
            .post("/api/data/businesses", json!({"name": "高山観光ホテル"}))
            .await;
        assert_eq!(status, 201, "{body}");
        let business = body["record"]["id"].as_i64().unwrap();
        for (day, subject, amount) in [(3, "契約更新", 120_000), (9, "打ち合わせ", 0)] {
            let (status, body) = app
                .post(
                    "/api/data/interactions",
                    json!({"business_id": business, "occurred_at": format!("2026-11-0{day}T15:00:00+09:00"),
                           "subject": subject, "staff": "田中", "amount": amount}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        app.mail_and_open(tourist, "秋のご案内", "autumn").await;
        app.user_with_rights(
            "desk",
            json!({"entities": {"tourists": {"ops": ["view", "edit"],
                                             "fields": {"phone": "none", "mobile_phone": "none"}},
                                "purchases": {"ops": ["view"], "fields": {"amount": "none"}}}}),
        )
        .await;
        let manager = app.administrator("manager").await;
        let shown = browser(
            "cards.mjs",
            &[
                app.base.as_str(),
                "manager",
                &manager,
                "desk",
                "desk-password",
                phone,
            ],
            app.backend,
        )
        .await;

        assert_eq!(
            shown["id"], tourist,
            "the first row opens the first tourist"
        );
        assert_eq!(shown["title"], "山田 花子");
        // The card shows the API's timeline, entry for entry, over two pages.
        let api = app
            .get(&format!("/api/data/tourists/{tourist}/timeline?limit=200"))
            .await;
        let expected: Vec<(Value, Value)> = api["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["source"].clone(), e["id"].clone()))
            .collect();
        assert_eq!(
            expected.len(),
            34,
            "25 purchases, 5 point grants, 1 inquiry, 1 mail, its opening, 1 run"
        );
        let drawn: Vec<(Value, Value)> = shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["source"].clone(), e["id"].clone()))
            .collect();
        assert_eq!(drawn, expected, "{shown}");
        assert_eq!(shown["first_page"], 30);
        let lines: Vec<&str> = shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["what"].as_str().unwrap())
            .collect();
        assert!(lines.contains(&"¥3,400 · 売店24"), "{lines:?}");
        assert!(lines.contains(&"+100 pt · granted · ota"), "{lines:?}");
        assert!(
            lines.contains(&"Test channel · autumn · 秋のご案内 · sent"),
            "{lines:?}"
        );
        assert!(lines.contains(&"opened"), "{lines:?}");
        let oldest = shown["timeline"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(
            oldest["at"], "1 Oct 2026 10:00",
            "times in Asia/Tokyo: {oldest}"
        );
        let purchases_only = shown["purchases_only"].as_array().unwrap();
        assert_eq!(purchases_only.len(), 25, "{shown}");
        assert!(shown["admin_sees_phone"].as_bool().unwrap());

        // The edit was saved; the refused date changed nothing and was named on its field.
        assert_eq!(shown["city_after_save"], "高山市");
        let stored = app.get(&format!("/api/data/tourists/{tourist}")).await;
        assert_eq!(stored["city"], "高山市");
        assert_eq!(stored["birth_date"], "1990-02-01");
        assert!(
            shown["birth_date_error"]
                .as_str()
                .unwrap()
                .contains("1990/2/30"),
            "{shown}"
        );
        assert_eq!(
            shown["status_line"], "Not saved: correct the fields marked in red",
            "the refusal itself is under its field, not repeated"
        );

        // The front desk: no phone, and purchases without amounts only.
        let fields: Vec<&str> = shown["desk_fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            fields.contains(&"city") && !fields.contains(&"phone"),
            "{fields:?}"
        );
        assert_eq!(shown["desk_sees_phone"], false, "{shown}");
        assert_eq!(shown["desk_sources"], json!(["purchases"]));
        let desk_lines = shown["desk_timeline"].as_array().unwrap();
        assert_eq!(desk_lines.len(), 25);
        assert!(
            desk_lines
                .iter()
                .all(|e| e["source"] == "purchases" && !e["what"].as_str().unwrap().contains('¥')),
            "{shown}"
        );
        assert_eq!(
            shown["desk_heading"], "履歴",
            "the front desk reads Japanese"
        );
        assert_eq!(
            shown["desk_screens"],
            json!(["nav-tourists"]),
            "no screens of entities the front desk may not view"
        );

        // A business's card shows its interactions, an inquiry's its responses.
        assert_eq!(shown["business"]["title"], "高山観光ホテル");
        let visits: Vec<&str> = shown["business"]["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["what"].as_str().unwrap())
            .collect();
        assert_eq!(
            visits,
            ["打ち合わせ · 田中 · ¥0", "契約更新 · 田中 · ¥120,000"],
            "{shown}"
        );
        assert_eq!(shown["inquiry"]["title"], "傘の忘れ物");
        assert_eq!(
            shown["inquiry"]["timeline"][0]["what"],
            "resolved · 鈴木 · 駅の忘れ物窓口でお預かりしています"
        );

        // A response added from the card is stored for the inquiry, at the time the form
        // started with, and tops its timeline.
        let started = shown["inquiry"]["started_at"].as_str().unwrap();
        assert!(
            started.len() == 16 && started.starts_with("20") && started.contains(' '),
            "now in Asia/Tokyo, as 2026/11/30 19:20: {started}"
        );
        assert_eq!(
            shown["inquiry"]["after"][0]["what"], "closed · 山本 · ご本人が受け取りに来られました",
            "{shown}"
        );
        let responses = app
            .get(&format!("/api/data/inquiry_responses?parent_id={inquiry}"))
            .await;
        let added = responses["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["staff"] == "山本")
            .unwrap_or_else(|| panic!("{responses}"));
        assert_eq!(added["status"], "closed");
        let at =
            chrono::DateTime::parse_from_rfc3339(added["responded_at"].as_str().unwrap()).unwrap();
        assert!(
            (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
                .num_minutes()
                .abs()
                <= 5,
            "{added}"
        );
        assert_eq!(
            shown["desk_add_entry"], 0,
            "the front desk may not add purchases"
        );
        assert_eq!(
            shown["inquiry"]["tourist_link"], "→ 山田 花子",
            "a reference names the record it leads to"
        );
        assert_eq!(
            shown["inquiry"]["tourist_title"], "山田 花子",
            "the inquiry links its tourist"
        );
        app.stop().await;
    }
}

/// A file of `examples/content/`, saved through the API as docs/content.md shows.
async fn save_example(app: &TestApp, kind: &str, key: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/content")
        .join(kind)
        .join(format!("{key}.json"));
    let definition: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let (status, body) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/{kind}/{key}"),
            Some(definition),
        )
        .await;
    assert_eq!(status, 201, "{kind}/{key}: {body}");
}

#[tokio::test]
async fn templates_are_previewed_and_snippets_test_run_before_they_are_saved() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        app.create_tourists(vec![
            json!({"email": "hanako@example.jp", "given_name": "花子", "family_name": "<山田>",
                   "prefecture": "愛知県", "member_type": "premium"}),
        ])
        .await;
        save_example(&app, "snippets", "greeting").await;
        save_example(&app, "parts", "legal").await;
        save_example(&app, "parts", "footer").await;
        save_example(&app, "templates", "autumn").await;
        app.user_with_rights(
            "marketer",
            json!({"entities": {"tourists": {"ops": ["view"]}, "templates": {"ops": ["view"]}}}),
        )
        .await;
        app.user_with_rights("desk", json!({"entities": {"tourists": {"ops": ["view"]}}}))
            .await;
        let admin = app.administrator("developer").await;
        let shown = browser(
            "content.mjs",
            &[
                app.base.as_str(),
                "developer",
                &admin,
                "marketer",
                "marketer-password",
                "desk",
                "desk-password",
            ],
            app.backend,
        )
        .await;

        assert_eq!(
            shown["index"],
            json!({"templates": ["autumn"], "parts": ["footer", "legal"], "snippets": ["greeting"]})
        );
        // The saved template, previewed for the first tourist as she will get it.
        assert_eq!(
            shown["firstSubject"],
            "花子様 (プレミアム会員)、紅葉の愛知県へ"
        );
        let html = shown["previewHtml"].as_str().unwrap();
        assert!(
            html.contains("&lt;山田&gt;さまへ"),
            "escaped in the HTML: {html}"
        );
        assert_eq!(
            shown["preheaderDisplay"], "none",
            "the frame applies the message's inline styles"
        );
        assert!(
            shown["previewText"]
                .as_str()
                .unwrap()
                .contains("<山田>さまへ"),
            "{shown}"
        );
        assert!(shown["tourist"].as_str().unwrap().parse::<i64>().is_ok());
        // A snippet that is not saved is named under the subject, before anything is saved.
        assert!(
            shown["subjectError"]
                .as_str()
                .unwrap()
                .contains("calls snippet \"season\", which is not saved"),
            "{shown}"
        );
        assert_eq!(shown["newMessage"], "Not saved yet: saving makes version 1");
        // The syntax error's line is selected in the code (line 2 is characters 11 to 25).
        assert!(
            shown["runError"].as_str().unwrap().contains("line 2"),
            "{shown}"
        );
        let at = shown["errorAt"].as_i64().unwrap();
        assert!((11..=25).contains(&at), "the cursor is on line 2: {at}");
        assert_eq!(shown["runValue"], "冬の旅");
        assert!(
            shown["runMicros"].as_str().unwrap().ends_with(" µs"),
            "{shown}"
        );
        assert_eq!(shown["snippetSaved"], "Saved (v1)");
        let snippet = app.get("/api/snippets/season").await;
        assert_eq!(
            snippet["definition"],
            json!({"description": "季節の旅", "source": "args[0] + \"の旅\""})
        );
        // The template's new subject: previewed, then saved as version 2.
        assert_eq!(shown["newSubject"], "冬の旅のご案内");
        assert_eq!(shown["templateSaved"], "Saved (v2)");
        assert_eq!(shown["saveDisabledAfterSave"], true, "nothing left to save");
        assert_eq!(
            shown["loadedSubject"],
            "{{script \"greeting\"}}、紅葉の{{contact.prefecture}}へ"
        );
        assert_eq!(
            shown["loadedPreview"],
            "花子様 (プレミアム会員)、紅葉の愛知県へ"
        );
        // The HTML that does not compile was refused under it; version 2 stands.
        assert!(
            shown["htmlError"].as_str().unwrap().starts_with("line "),
            "{shown}"
        );
        assert_eq!(
            shown["refusal"],
            "Not accepted: see the notes under the fields"
        );
        let template = app.get("/api/templates/autumn").await;
        assert_eq!(template["version"], 2);
        assert_eq!(
            template["definition"]["subject"],
            "{{script \"season\" \"冬\"}}のご案内"
        );
        assert_eq!(shown["smsInputs"], json!(["channel", "text"]));
        // The part written and deleted in the browser: gone, its version still readable.
        assert_eq!(shown["partsAfterDelete"], json!(["footer", "legal"]));
        let (status, _) = app
            .call(reqwest::Method::GET, "/api/parts/scratch", None)
            .await;
        assert_eq!(status, 404);
        let versions = app.get("/api/parts/scratch/versions").await;
        assert_eq!(
            versions["versions"][0]["definition"],
            json!({"body": "下書き {{contact.given_name}}"})
        );

        // A marketer who may only view templates: no snippets, nothing to save, the preview.
        assert_eq!(shown["viewerHeading"], "コンテンツ");
        assert_eq!(shown["viewerSubject"], "冬の旅のご案内");
        assert_eq!(shown["viewerKinds"], json!(["templates", "parts"]));
        assert_eq!(shown["viewer_can_save"], false);
        assert_eq!(shown["viewer_inputs_locked"], true);
        assert_eq!(shown["viewer_can_create"], false);
        assert_eq!(shown["desk_sees_content"], false);
        app.stop().await;
    }
}

/// The example partner file (Shift_JIS, with its bad rows) and `extra` generated members after
/// it, so the server reads it in several batches.
fn partner_file(extra: usize) -> Vec<u8> {
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/imports/ota_users_sjis.csv");
    let mut bytes = std::fs::read(example).unwrap();
    if !bytes.ends_with(b"\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    let mut more = String::new();
    for i in 0..extra {
        more.push_str(&format!(
            "A,member{i}@example.jp,会員,{i}号,カイイン,イチ,1990/1/1,1,460-0001,愛知県,052-000-{:04}\r\n",
            i % 10_000
        ));
    }
    let (encoded, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&more);
    assert!(!unmappable);
    bytes.extend_from_slice(&encoded);
    bytes
}

#[tokio::test]
async fn a_partner_file_is_imported_with_its_progress_and_rejected_rows_on_screen() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        app.create_tourists(vec![
            json!({"email": "hanako.suzuki@example.jp", "family_name": "鈴木"}),
        ])
        .await;
        let flow: Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/imports/ota_users.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let (status, body) = app
            .call(
                reqwest::Method::PUT,
                "/api/imports/flows/ota_users",
                Some(flow),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        app.user_with_rights(
            "importer",
            json!({"entities": {"tourists": {"ops": ["view", "create", "edit", "delete", "import"],
                                             "fields": {"gender": "none"}}}}),
        )
        .await;
        app.user_with_rights("desk", json!({"entities": {"tourists": {"ops": ["view"]}}}))
            .await;
        let admin = app.administrator("operator").await;
        let file = artifacts(app.backend).join("ota_users_daily.csv");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let bytes = partner_file(20_000);
        std::fs::write(&file, &bytes).unwrap();
        let shown = browser(
            "imports.mjs",
            &[
                app.base.as_str(),
                file.to_str().unwrap(),
                "operator",
                &admin,
                "importer",
                "importer-password",
                "desk",
                "desk-password",
            ],
            app.backend,
        )
        .await;

        assert_eq!(shown["startDisabledWithoutFile"], true);
        assert_eq!(
            shown["summary"], "Tourists · Upload · 10 columns",
            "{shown}"
        );
        assert!(shown["accept"].as_str().unwrap().starts_with(".csv"));
        // The run the screen followed is the one the server recorded.
        let id: i64 = shown["address"]
            .as_str()
            .unwrap()
            .strip_prefix("#/imports/")
            .unwrap()
            .parse()
            .unwrap();
        let run = app.get(&format!("/api/imports/{id}")).await;
        assert_eq!(
            (
                run["status"].as_str(),
                run["file_name"].as_str(),
                run["started_by"].as_str()
            ),
            (Some("done"), Some("ota_users_daily.csv"), Some("operator")),
            "{run}"
        );
        assert_eq!(run["file_bytes"], bytes.len());
        assert_eq!(shown["runFile"], "ota_users_daily.csv");
        let grouped = |n: &Value| {
            let digits = n.as_i64().unwrap().to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        for count in [
            "rows_read",
            "created",
            "updated",
            "unchanged",
            "deleted",
            "merged",
            "rejected",
        ] {
            assert_eq!(
                shown["shownCounts"][count],
                grouped(&run[count]),
                "{count}: {shown}"
            );
            assert_eq!(
                shown["countsAfterReload"][count],
                grouped(&run[count]),
                "{count}"
            );
            assert_eq!(
                shown["importerCounts"][count],
                grouped(&run[count]),
                "{count}"
            );
        }
        assert!(run["created"].as_i64().unwrap() >= 20_000, "{run}");
        assert!(run["rejected"].as_i64().unwrap() > 0, "{run}");
        // The bar went sending → reading → done, its percent never going back, ending full.
        let seen: Vec<(String, u32)> = shown["stagesSeen"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let (stage, percent) = s.as_str().unwrap().split_once(' ').unwrap();
                (stage.to_string(), percent.parse().unwrap())
            })
            .collect();
        eprintln!("the progress bar showed {seen:?}");
        let order = |stage: &str| {
            ["sending", "reading", "done"]
                .iter()
                .position(|s| *s == stage)
        };
        assert!(
            seen.windows(2)
                .all(|w| (order(&w[0].0), w[0].1) <= (order(&w[1].0), w[1].1)),
            "{seen:?}"
        );
        assert_eq!(seen.last(), Some(&("done".to_string(), 100)), "{seen:?}");
        // The rejected rows on screen and in the download are the server's.
        let rejected = app
            .get(&format!("/api/imports/{id}/rejected?format=json"))
            .await;
        let expected: Vec<Value> = rejected["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                json!([
                    r["line"].to_string(),
                    r["field"].as_str().unwrap_or_default(),
                    r["reason"],
                    r["raw"]
                ])
            })
            .collect();
        assert_eq!(shown["rejects"], json!(expected));
        let csv = app
            .admin
            .get(app.url(&format!("/api/imports/{id}/rejected")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let downloaded = shown["downloaded"].as_str().unwrap();
        assert!(
            downloaded.starts_with('\u{feff}'),
            "Excel reads it as UTF-8"
        );
        assert_eq!(
            downloaded.trim_start_matches('\u{feff}'),
            csv.trim_start_matches('\u{feff}')
        );
        assert_eq!(shown["downloadName"], format!("import-{id}-rejected.csv"));
        assert_eq!(shown["historyFirst"]["run"], id.to_string());
        assert_eq!(shown["historyFirst"]["current"], true);
        assert_eq!(shown["historyFirst"]["cells"][1], "ota_users");
        assert_eq!(shown["historyFirst"]["cells"][4], "Done");
        // The importer who may not see genders sees the run but not its rows of the file.
        assert_eq!(shown["importerHeading"], "取込");
        assert!(
            shown["importerHidden"].as_str().unwrap().contains("gender"),
            "{shown}"
        );
        assert_eq!(shown["deskSeesImports"], false);
        app.stop().await;
    }
}

#[tokio::test]
async fn queries_run_and_results_are_kept_in_the_sql_workspace() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        app.create_tourists(vec![
            json!({"email": "a@example.jp", "family_name": "愛知", "prefecture": "愛知県", "phone": "052-111-2222"}),
            json!({"email": "b@example.jp", "family_name": "岐阜", "prefecture": "岐阜県"}),
            json!({"email": "c@example.jp", "family_name": "名古屋", "prefecture": "愛知県", "phone": "090-3333-4444"}),
        ])
        .await;
        // A table the clerk may read: it reads prefectures only.
        let (status, body) = app
            .post(
                "/api/sql/tables",
                json!({"name": "prefectures", "sql": "SELECT DISTINCT prefecture FROM tourists WHERE prefecture IS NOT NULL"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        app.user_with_rights(
            "analyst",
            json!({"entities": {"tourists": {"ops": ["view"]},
                                "sql": {"ops": ["view", "create", "edit", "delete"]}}}),
        )
        .await;
        app.user_with_rights(
            "clerk",
            json!({"entities": {"tourists": {"ops": ["view"], "fields": {"phone": "none"}},
                                "sql": {"ops": ["view"]}}}),
        )
        .await;
        let shown = browser(
            "sql.mjs",
            &[
                app.base.as_str(),
                "analyst",
                "analyst-password",
                "clerk",
                "clerk-password",
            ],
            app.backend,
        )
        .await;

        assert!(
            shown["analystCatalog"]["tourists"]
                .as_array()
                .unwrap()
                .contains(&json!("phone")),
            "{shown}"
        );
        // The table's name went where the cursor was; the rows are the server's.
        assert_eq!(
            shown["written"],
            "SELECT prefecture, count(*) AS n FROM tourists GROUP BY prefecture ORDER BY n DESC, prefecture"
        );
        let (status, answer) = app
            .post(
                "/api/sql/query",
                json!({"sql": shown["written"], "limit": 100}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let texts = |rows: &Value| -> Vec<Vec<String>> {
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|c| match c {
                            Value::String(s) => s.clone(),
                            Value::Null => "NULL".into(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .collect()
        };
        assert_eq!(shown["grouped"]["columns"], json!(["prefecture", "n"]));
        assert_eq!(
            json!(texts(&shown["grouped"]["rows"])),
            json!(texts(&answer["rows"]))
        );
        assert_eq!(
            shown["grouped"]["rows"],
            json!([["愛知県", "2"], ["岐阜県", "1"]])
        );
        assert!(
            shown["summary"].as_str().unwrap().starts_with("2 rows ("),
            "{shown}"
        );
        assert!(
            shown["refusal"].as_str().unwrap().contains("nosuch"),
            "{shown}"
        );
        assert_eq!(
            shown["resultAfterRefusal"], 0,
            "no stale rows under a refusal"
        );
        assert_eq!(shown["phones"]["rows"].as_array().unwrap().len(), 2);
        assert_eq!(shown["modes"], json!(["create", "overwrite", "append"]));
        assert_eq!(shown["saved"], "Saved with_phones (2 rows)");
        let table = app.get("/api/sql/tables/with_phones").await;
        assert_eq!(
            (
                table["row_count"].clone(),
                table["description"].clone(),
                table["created_by"].clone()
            ),
            (json!(2), json!("電話番号のある観光客"), json!("analyst"))
        );
        assert_eq!(
            shown["opened"]["sql"],
            "SELECT *\nFROM with_phones\nLIMIT 100"
        );
        assert_eq!(shown["opened"]["columns"], json!(["tourist_id", "phone"]));
        assert_eq!(shown["opened"]["rows"], shown["phones"]["rows"]);
        assert_eq!(
            shown["afterCopy"],
            json!(["prefectures", "with_phones", "with_phones_copy"])
        );
        assert_eq!(shown["afterDrop"], json!(["prefectures", "with_phones"]));
        let (status, _) = app
            .call(
                reqwest::Method::GET,
                "/api/sql/tables/with_phones_copy",
                None,
            )
            .await;
        assert_eq!(status, 404);
        // The clerk without phone rights: no phone anywhere, no saving.
        assert!(
            !shown["clerkCatalog"]["tourists"]
                .as_array()
                .unwrap()
                .contains(&json!("phone")),
            "{shown}"
        );
        assert!(shown["clerkCatalog"]["with_phones"].is_null(), "{shown}");
        assert_eq!(shown["clerkHeading"], "SQL");
        assert!(
            shown["clerkRefusal"].as_str().unwrap().contains("phone"),
            "{shown}"
        );
        assert_eq!(shown["clerkCount"]["rows"], json!([["3"]]));
        assert_eq!(shown["clerkMaySave"], false);
        assert_eq!(shown["clerkTables"], json!(["prefectures"]));
        app.stop().await;
    }
}

#[tokio::test]
async fn an_administrator_grants_a_role_makes_a_user_and_signs_them_out() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        app.create_tourists(vec![
            json!({"email": "a@example.jp", "family_name": "愛知", "phone": "052-111-2222"}),
        ])
        .await;
        let admin = app.administrator("chief").await;
        let shown = browser(
            "admin.mjs",
            &[
                app.base.as_str(),
                "chief",
                &admin,
                "uketsuke",
                "front-desk-password-2026",
            ],
            app.backend,
        )
        .await;

        assert_eq!(shown["heading"], "ユーザーと権限");
        assert_eq!(
            shown["roleCreated"],
            "ロール 受付 front/desk を追加しました"
        );
        assert_eq!(shown["roleSaved"], "保存しました");
        // The role as stored: what was ticked and chosen, nothing else.
        let roles = app.get("/api/admin/roles").await;
        let role = roles["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "受付 front/desk")
            .cloned()
            .unwrap();
        assert_eq!(role["description"], "受付");
        assert_eq!(
            role["rights"],
            json!({"admin": false, "entities": {"tourists": {"ops": ["view"],
                "default_field_access": "edit", "fields": {"phone": "none"}}}})
        );
        let users = app.get("/api/admin/users").await;
        let user = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["login"] == "uketsuke")
            .cloned()
            .unwrap();
        assert_eq!(
            (
                user["display_name"].clone(),
                user["roles"].clone(),
                user["admin"].clone()
            ),
            (json!("受付 花子"), json!(["受付 front/desk"]), json!(false))
        );
        assert_eq!(shown["userRow"][3], "受付 front/desk", "{shown}");
        assert_eq!(shown["userRoleTicked"], true);
        // The new user sees tourists, without phone numbers, and no administration.
        let columns = shown["deskColumns"].as_array().unwrap();
        assert!(!columns.is_empty(), "{shown}");
        assert!(
            !columns
                .iter()
                .any(|c| c.as_str().unwrap().contains("Phone")),
            "{shown}"
        );
        assert_eq!(shown["deskSeesAdmin"], false);
        assert_eq!(shown["loggedOut"], "1 件のセッションを終了しました");
        assert_eq!(shown["deskEnded"], "An administrator signed you out");
        // Every change is in the access log.
        let log = app.get("/api/admin/access-log?login=chief").await;
        let actions: Vec<&str> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        for action in ["create_role", "update_role", "create_user", "log_off"] {
            assert!(actions.contains(&action), "{action} not in {actions:?}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn dashboards_draw_each_report_as_its_chart_for_the_viewer() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        app.create_tourists(vec![
            json!({"email": "a@example.jp", "family_name": "愛知", "prefecture": "愛知県"}),
            json!({"email": "b@example.jp", "family_name": "岐阜", "prefecture": "岐阜県"}),
            json!({"email": "c@example.jp", "family_name": "名古屋", "prefecture": "愛知県"}),
            json!({"email": "d@example.jp", "family_name": "三重", "prefecture": "三重県"}),
            json!({"email": "e@example.jp", "family_name": "豊田", "prefecture": "愛知県"}),
        ])
        .await;
        let by_prefecture = json!({"records": {"entity": "tourists",
            "group_by": [{"field": "prefecture"}], "measures": ["count"]}});
        for (key, name, chart, source) in [
            ("by_prefecture", "都道府県別", "bar", by_prefecture.clone()),
            ("prefecture_share", "都道府県の割合", "pie", by_prefecture),
            (
                "welcome_funnel",
                "ようこそメール",
                "funnel",
                json!({"messages": {"measures": ["sent", "opened", "clicked"]}}),
            ),
        ] {
            let (status, body) = app
                .post(
                    "/api/reports",
                    json!({"key": key, "name": name, "definition": {"chart": chart, "source": source}}),
                )
                .await;
            assert_eq!(status, 201, "{key}: {body}");
        }
        let (status, body) = app
            .post(
                "/api/dashboards",
                json!({"key": "home", "name": "ホーム", "widgets": [
                    {"report": "by_prefecture", "width": 8},
                    {"report": "prefecture_share", "width": 4, "title": "割合"},
                    {"report": "welcome_funnel", "width": 12}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        app.user_with_rights(
            "staff",
            json!({"entities": {"tourists": {"ops": ["view"]}, "reports": {"ops": ["view"]}}}),
        )
        .await;
        let admin = app.administrator("analyst").await;
        let shown = browser(
            "reports.mjs",
            &[
                app.base.as_str(),
                "analyst",
                &admin,
                "staff",
                "staff-password",
            ],
            app.backend,
        )
        .await;

        // The bars are the server's counts, in its order; the pie shares them out.
        let data = app.get("/api/reports/by_prefecture/data").await;
        let counts: Vec<i64> = data["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_i64().unwrap())
            .collect();
        assert_eq!(counts.iter().sum::<i64>(), 5, "{data}");
        let board = &shown["adminDashboard"];
        assert_eq!(board["by_prefecture"]["chart"], "bar");
        assert_eq!(board["by_prefecture"]["bars"], json!(counts));
        assert_eq!(board["by_prefecture"]["caption"], "都道府県別");
        assert_eq!(
            board["prefecture_share"]["caption"], "割合",
            "the widget's own title"
        );
        let shares: Vec<f64> = board["prefecture_share"]["slices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        let expected: Vec<f64> = counts.iter().map(|&c| c as f64 / 5.0).collect();
        assert_eq!(shares.len(), expected.len());
        for (got, want) in shares.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-9, "{shares:?} vs {expected:?}");
        }
        assert_eq!(board["welcome_funnel"]["chart"], "funnel");
        assert_eq!(board["welcome_funnel"]["bars"], json!([0, 0, 0]));
        // The report on its own: its rows under the chart, as the API gives them.
        assert_eq!(shown["address"], "#/reports/by_prefecture");
        assert_eq!(shown["reportBars"], json!(counts));
        let rows: Vec<Value> = data["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["prefecture"], r["count"].to_string()]))
            .collect();
        assert_eq!(shown["rows"], json!(rows));
        // Staff without the view of flows: the bars, and why the funnel is not shown.
        assert_eq!(shown["staffHeading"], "レポート");
        assert_eq!(
            shown["staffDashboard"]["by_prefecture"]["bars"],
            json!(counts)
        );
        let error = shown["staffDashboard"]["welcome_funnel"]["error"]
            .as_str()
            .unwrap();
        assert!(error.contains("flows"), "{error}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_report_is_built_by_picking_fields_and_arranged_on_a_new_dashboard() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        app.create_tourists(vec![
            json!({"email": "a@example.jp", "family_name": "愛知", "prefecture": "愛知県", "total_spend": 12000}),
            json!({"email": "b@example.jp", "family_name": "岐阜", "prefecture": "岐阜県", "total_spend": 3000}),
            json!({"email": "c@example.jp", "family_name": "名古屋", "prefecture": "愛知県", "total_spend": 8000}),
            json!({"email": "d@example.jp", "family_name": "三重", "prefecture": "三重県", "total_spend": 0}),
            json!({"email": "e@example.jp", "family_name": "豊田", "prefecture": "愛知県"}),
        ])
        .await;
        for (key, name, definition) in [
            (
                "by_month",
                "月別登録",
                json!({"chart": "line", "source": {"records": {"entity": "tourists",
                    "group_by": [{"field": "registered_at", "bucket": "month"}], "measures": ["count"]}}}),
            ),
            (
                "nested",
                "入れ子の条件",
                json!({"chart": "table", "source": {"records": {"entity": "tourists",
                    "filter": {"any": [{"all": [{"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}]},
                                       {"field": {"key": "total_spend", "op": "gt", "value": 5000}}]},
                    "measures": ["count"]}}}),
            ),
        ] {
            let (status, body) = app
                .post(
                    "/api/reports",
                    json!({"key": key, "name": name, "definition": definition}),
                )
                .await;
            assert_eq!(status, 201, "{key}: {body}");
        }
        app.user_with_rights(
            "staff",
            json!({"entities": {"tourists": {"ops": ["view"]}, "reports": {"ops": ["view"]}}}),
        )
        .await;
        let admin = app.administrator("analyst").await;
        let shown = browser(
            "report_builder.mjs",
            &[
                app.base.as_str(),
                "analyst",
                &admin,
                "staff",
                "staff-password",
            ],
            app.backend,
        )
        .await;

        // What was picked is the definition the form shows, and the preview is its rows.
        let built = json!({"chart": "bar", "source": {"records": {"entity": "tourists",
            "group_by": [{"field": "prefecture"}],
            "measures": ["count", {"sum": "total_spend"}],
            "filter": {"all": [{"field": {"key": "total_spend", "op": "gt", "value": 0}}]}}}});
        assert_eq!(shown["shownDefinition"], built);
        assert_eq!(shown["pieRefused"]["disabled"], true);
        assert_eq!(
            shown["pieRefused"]["why"],
            "A pie chart shows one measure over one grouping"
        );
        let (status, data) = app.post("/api/reports/run", built.clone()).await;
        assert_eq!(status, 200, "{data}");
        let rows = data["rows"].as_array().unwrap();
        let mut groups: Vec<(&str, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r["prefecture"].as_str().unwrap(),
                    r["count"].as_i64().unwrap(),
                    r["sum_total_spend"].as_i64().unwrap(),
                )
            })
            .collect();
        // The bars of each measure in turn, each in the server's order of categories.
        let bars: Vec<i64> = groups
            .iter()
            .map(|g| g.1)
            .chain(groups.iter().map(|g| g.2))
            .collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(
            groups,
            [("岐阜県", 1, 3000), ("愛知県", 2, 20000)],
            "{data}"
        );
        assert_eq!(shown["previewBars"], json!(bars));
        assert_eq!(shown["savedBars"], json!(bars));
        assert_eq!(shown["listed"], "都道府県別の購入");
        // Opened again, the form shows what was saved; saved again as a pie of one measure.
        assert_eq!(
            shown["reopened"],
            json!({"group": "prefecture", "measured": "total_spend", "condition": "0", "chart": true})
        );
        let saved = app.get("/api/reports/spend_by_prefecture").await;
        assert_eq!(saved["name"], "都道府県別の購入");
        let mut pie = built.clone();
        pie["chart"] = json!("pie");
        pie["source"]["records"]["measures"] = json!(["count"]);
        // The server writes the grouping's absent bucket out.
        pie["source"]["records"]["group_by"] = json!([{"field": "prefecture", "bucket": null}]);
        assert_eq!(saved["definition"], pie);
        // The nested filter is shown as the JSON it is.
        let nested = app.get("/api/reports/nested").await;
        assert_eq!(shown["nestedJson"], nested["definition"]);
        // The dashboard as arranged: by_month dragged in front, the pie narrowed and retitled.
        let arranged = json!([
            {"report": "by_month", "span": "span-6", "caption": "月別登録", "chart": "line"},
            {"report": "spend_by_prefecture", "span": "span-4", "caption": "購入の割合", "chart": "pie"}]);
        assert_eq!(shown["arranged"], arranged);
        assert_eq!(shown["reloaded"], arranged);
        assert_eq!(shown["address"], "#/reports/dashboards/sales");
        let board = app.get("/api/dashboards/sales").await;
        assert_eq!(board["name"], "売上");
        assert_eq!(
            board["widgets"],
            json!([{"report": "by_month", "width": 6},
                   {"report": "spend_by_prefecture", "width": 4, "title": "購入の割合"}])
        );
        // Staff who may only view are offered neither building nor arranging.
        assert_eq!(shown["offered"], json!([]));
        assert_eq!(shown["offeredOnReport"], json!([]));
        app.stop().await;
    }
}

#[tokio::test]
async fn the_access_log_is_searched_and_a_live_session_ended_on_screen() {
    check_prerequisites();
    for scratch in backends().await {
        let app = spawn_app(scratch).await;
        app.create_tourists(vec![
            json!({"email": "a@example.jp", "family_name": "愛知", "prefecture": "愛知県"}),
        ])
        .await;
        let staff = app
            .user_with_rights(
                "staff",
                json!({"entities": {"tourists": {"ops": ["view"]}}}),
            )
            .await;
        // Two refusals of the staff member's, to be found on screen.
        for path in ["/api/admin/users", "/api/reports"] {
            let answer = staff
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 403, "{path}");
        }
        let admin = app.administrator("auditor").await;
        let shown = browser(
            "audit.mjs",
            &[
                app.base.as_str(),
                "auditor",
                &admin,
                "staff",
                "staff-password",
            ],
            app.backend,
        )
        .await;

        // The refusals on screen are the log's, newest first.
        let log = app
            .get("/api/admin/access-log?login=staff&outcome=denied")
            .await;
        let expected: Vec<Value> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                json!({"login": "staff", "action": e["action"], "outcome": "Denied", "denied": true})
            })
            .collect();
        assert!(expected.len() >= 2, "{log}");
        assert_eq!(shown["refusals"], json!(expected));
        assert_eq!(
            shown["exportHref"],
            "/api/admin/access-log/export?login=staff&outcome=denied"
        );
        assert!(
            shown["keptSince"]
                .as_str()
                .unwrap()
                .starts_with("Entries are kept for one month"),
            "{}",
            shown["keptSince"]
        );
        assert!(
            shown["badRecord"].as_str().unwrap().contains("record_id"),
            "{}",
            shown["badRecord"]
        );
        // The staff member's session was listed (Chromium on Linux) and ended; the
        // administrator's own is marked and cannot be ended from the list.
        let row = shown["staffSession"].as_array().unwrap();
        assert_eq!(row[0], "staff", "{row:?}");
        assert_eq!(row[5], "Chrome (Linux)", "{row:?}");
        assert_eq!(shown["ownMarked"], 1);
        assert_eq!(
            shown["ownEndable"], false,
            "one's own session ends with Sign out"
        );
        assert_eq!(shown["deskEnded"], "管理者によってログアウトされました");
        let live = app.get("/api/admin/sessions?login=staff").await;
        assert_eq!(live["sessions"], json!([]), "{live}");
        app.stop().await;
    }
}
