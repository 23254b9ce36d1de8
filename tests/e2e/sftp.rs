//! SFTP sources (MA-13) against a real OpenSSH server on a loopback port: a partner's daily
//! files fetched oldest first (UTF-8 and Shift_JIS), merged by e-mail, moved to `done/` on the
//! server, not fetched twice; a server offering another host key is not logged in to, and a
//! key the server does not accept is reported as a refused login.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::sshd::SshServer;
use tabiji_e2e::{TestApp, backends, spawn_app_with};
use tabiji_engine::runtime::Config;
use tabiji_engine::transfer::Transfers;

fn flow(sshd: &SshServer, host_key: &str, key: &str) -> Value {
    json!({
        "format": 1,
        "name": "OTA 会員 (SFTP)",
        "entity": "tourists",
        "source": {
            "type": "sftp", "host": "127.0.0.1", "port": sshd.port, "user": sshd.user,
            "host_key": host_key, "key": key,
            "path": sshd.folder.display().to_string(), "pattern": "users_*.csv"
        },
        "columns": [
            {"column": "メールアドレス", "field": "email"},
            {"column": "氏名", "field": "family_name"}
        ],
        "action": {"type": "upsert", "key": "email"},
        "cron": "0 3 * * *"
    })
}

/// Writes a partner file with the given modification time.
fn drop_file(sshd: &SshServer, name: &str, bytes: &[u8], time: &str) {
    let path = sshd.folder.join(name);
    std::fs::write(&path, bytes).unwrap();
    let status = Command::new("touch")
        .args(["-d", time])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
}

async fn fetch(app: &TestApp, key: &str) -> (u16, Value) {
    app.post(&format!("/api/imports/flows/{key}/fetch"), json!({}))
        .await
}

/// Saves `flow` and fetches it, which must be refused (400); the error's message.
async fn fetch_refused(app: &TestApp, flow: Value) -> String {
    let (status, body) = app
        .call(Method::PUT, "/api/imports/flows/ota_sftp", Some(flow))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = fetch(app, "ota_sftp").await;
    assert_eq!(status, 400, "{body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn names_in(folder: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn partner_files_over_sftp(app: &TestApp, sshd: &SshServer) {
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/imports/flows/ota_sftp",
            Some(flow(sshd, &sshd.host_key, SshServer::KEY)),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (shift_jis, _, _) =
        encoding_rs::SHIFT_JIS.encode("メールアドレス,氏名\r\nsato@example.jp,佐藤花子\r\n");
    drop_file(sshd, "users_20261128.csv", &shift_jis, "2026-11-28 03:00");
    drop_file(
        sshd,
        "users_20261127.csv",
        "メールアドレス,氏名\nＳＡＴＯ@example.jp,佐藤\nito@example.jp,伊藤\n".as_bytes(),
        "2026-11-27 03:00",
    );
    drop_file(sshd, "other.csv", b"not for this flow", "2026-11-27 03:00");

    let (status, body) = fetch(app, "ota_sftp").await;
    assert_eq!(status, 200, "{body}");
    let runs = body["runs"].as_array().unwrap();
    let summary: Vec<(&str, &str, i64, i64)> = runs
        .iter()
        .map(|run| {
            (
                run["file_name"].as_str().unwrap(),
                run["status"].as_str().unwrap(),
                run["created"].as_i64().unwrap(),
                run["updated"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("users_20261127.csv", "done", 2, 0),
            ("users_20261128.csv", "done", 0, 1),
        ],
        "oldest first; the same person merged by e-mail: {body}"
    );
    assert_eq!(runs[1]["encoding"], "shift_jis", "{body}");
    let (status, found) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"field": {"key": "email", "op": "eq", "value": "sato@example.jp"}}}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"][0]["family_name"], "佐藤花子", "{found}");
    assert_eq!(names_in(&sshd.folder), ["done", "other.csv"]);
    assert_eq!(
        names_in(&sshd.folder.join("done")),
        ["users_20261127.csv", "users_20261128.csv"]
    );

    let (status, body) = fetch(app, "ota_sftp").await;
    assert_eq!(
        (status, &body["runs"]),
        (200, &json!([])),
        "nothing fetched twice"
    );

    // The partner sends a file of a name already done: it is imported and kept beside it.
    drop_file(
        sshd,
        "users_20261128.csv",
        "メールアドレス,氏名\nkato@example.jp,加藤\n".as_bytes(),
        "2026-11-29 03:00",
    );
    let (status, body) = fetch(app, "ota_sftp").await;
    assert_eq!(status, 200, "{body}");
    let id = body["runs"][0]["id"].as_i64().unwrap();
    assert_eq!(body["runs"][0]["created"], 1, "{body}");
    assert!(
        names_in(&sshd.folder.join("done")).contains(&format!("{id}.users_20261128.csv")),
        "{:?}",
        names_in(&sshd.folder.join("done"))
    );

    // A server offering another host key is not logged in to, and says which key it offered.
    drop_file(
        sshd,
        "users_20261130.csv",
        "メールアドレス,氏名\nsuzuki@example.jp,鈴木\n".as_bytes(),
        "2026-11-30 03:00",
    );
    let other = format!("SHA256:{}", "A".repeat(43));
    let message = fetch_refused(app, flow(sshd, &other, SshServer::KEY)).await;
    assert!(
        message.contains(&sshd.host_key) && message.contains("nothing was sent"),
        "{message}"
    );
    assert!(names_in(&sshd.folder).contains(&"users_20261130.csv".to_string()));

    // A key the server does not accept: the login is refused, named as such.
    let stranger = sshd.keys.join("stranger");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(status.success());
    let message = fetch_refused(app, flow(sshd, &sshd.host_key, "stranger")).await;
    assert!(
        message.contains(&format!("refused the login of {} with the key", sshd.user)),
        "{message}"
    );

    // A server the operator did not list is not connected to, whatever the flow says.
    let mut elsewhere = flow(sshd, &sshd.host_key, SshServer::KEY);
    elsewhere["source"]["host"] = "localhost".into();
    let message = fetch_refused(app, elsewhere).await;
    assert!(
        message.contains("is not among the SFTP servers flows may log in to"),
        "{message}"
    );

    // A credential the operator did not bind to this server is not sent to it.
    let message = fetch_refused(app, flow(sshd, &sshd.host_key, "points_ed25519")).await;
    assert!(
        message.contains("points_ed25519 is not a credential the operator allows for 127.0.0.1"),
        "{message}"
    );

    // A password from a variable the process does not have.
    let mut by_password = flow(sshd, &sshd.host_key, SshServer::KEY);
    let source = by_password["source"].as_object_mut().unwrap();
    source.remove("key");
    source.insert("password_env".into(), "TABIJI_SFTP_NOT_SET".into());
    let message = fetch_refused(app, by_password).await;
    assert!(
        message.contains("TABIJI_SFTP_NOT_SET is not set"),
        "{message}"
    );
    assert!(names_in(&sshd.folder).contains(&"users_20261130.csv".to_string()));
}

#[tokio::test]
async fn partner_files_are_pulled_over_sftp() {
    for scratch in backends().await {
        let sshd = SshServer::start();
        let config = Config {
            transfers: Transfers {
                sftp_keys: Some(sshd.keys.clone()),
                // The server bound to the credentials the tests use on it.
                sftp_hosts: vec![format!(
                    "127.0.0.1={}|stranger|TABIJI_SFTP_NOT_SET",
                    SshServer::KEY
                )],
                ..Transfers::default()
            },
            ..Config::default()
        };
        let app = spawn_app_with(scratch, config).await;
        partner_files_over_sftp(&app, &sshd).await;
        app.stop().await;
    }
}
