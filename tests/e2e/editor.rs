//! The browser editor in a real Chromium (playwright-core, `tests/browser/`): a new user
//! draws the patent scenario by drag and drop and publishes it, and the flow the server
//! stored is the one drawn. Screenshots are kept in `target/browser-artifacts/`.

use std::path::Path;

use serde_json::{Value, json};
use tabiji_e2e::{ADMIN_LOGIN, ADMIN_PASSWORD, TestApp, backends, spawn_app};

fn browser_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where screenshots go, kept after the run for people to look at.
fn artifacts(backend: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/browser-artifacts")
        .join(backend)
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

        // Asynchronously: the server answering the browser runs on this test's runtime.
        let out = tokio::process::Command::new("node")
            .arg(browser_dir().join("flow_editor.mjs"))
            .args([&app.base, ADMIN_LOGIN, ADMIN_PASSWORD])
            .arg(artifacts(app.backend))
            .output()
            .await
            .expect("node runs (apt-get install nodejs)");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}: the browser test failed\n{log}",
            app.backend
        );
        let drawn: Value = serde_json::from_slice(&out.stdout).expect("the drawing as JSON");

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
