//! Scheduled exports (DI-4): the point programme's daily file of yesterday's grants per
//! system, made from an aggregate and delivered to a folder below the export root (Shift_JIS),
//! and a file of ledger records delivered to a real OpenSSH server; the history of both; a
//! folder outside the root refused; the export right required.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::sshd::SshServer;
use tabiji_e2e::{TestApp, backends, spawn_app_with};
use tabiji_engine::runtime::Config;
use tabiji_engine::transfer::Transfers;

fn tokyo_now() -> chrono::DateTime<chrono_tz::Tz> {
    Utc::now().with_timezone(&chrono_tz::Asia::Tokyo)
}

async fn save(app: &TestApp, client: &reqwest::Client, key: &str, job: Value) -> (u16, Value) {
    let r = client
        .put(app.url(&format!("/api/exports/jobs/{key}")))
        .json(&job)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn run(app: &TestApp, client: &reqwest::Client, key: &str) -> (u16, Value) {
    let r = client
        .post(app.url(&format!("/api/exports/jobs/{key}/run")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn scheduled_exports(app: &TestApp, root: &std::path::Path, sshd: &SshServer) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [{"email": "a@example.jp"}, {"email": "b@example.jp"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let today = tokyo_now();
    let yesterday = today - Duration::days(1);
    let at = |day: &chrono::DateTime<chrono_tz::Tz>, time: &str| {
        format!("{}T{time}+09:00", day.format("%Y-%m-%d"))
    };
    for (email, kind, points, system, id, when) in [
        (
            "a@example.jp",
            "grant",
            100,
            "planner",
            "P-1",
            at(&yesterday, "10:00:00"),
        ),
        (
            "a@example.jp",
            "grant",
            250,
            "ota",
            "O-1",
            at(&yesterday, "00:00:00"),
        ),
        (
            "b@example.jp",
            "grant",
            50,
            "ota",
            "O-2",
            at(&yesterday, "23:59:59"),
        ),
        (
            "b@example.jp",
            "use",
            20,
            "ota",
            "U-1",
            at(&yesterday, "23:59:59"),
        ),
        (
            "a@example.jp",
            "grant",
            30,
            "planner",
            "P-2",
            at(&today, "00:00:00"),
        ),
        (
            "b@example.jp",
            "grant",
            5,
            "ota",
            "+81-7",
            at(&today, "00:00:01"),
        ),
    ] {
        let (status, body) = app
            .post(
                "/api/points",
                json!({"email": email, "kind": kind, "points": points, "source_system": system,
                       "transaction_id": id, "occurred_at": when}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    let points_folder = root.join("points");
    std::fs::create_dir_all(&points_folder).unwrap();
    let daily = json!({
        "format": 1, "name": "ポイント付与 日次集計", "entity": "point_ledger",
        "filter": {"all": [
            {"field": {"key": "kind", "op": "eq", "value": "grant"}},
            {"field": {"key": "occurred_at", "op": "in_period", "value": {"last": "day"}}}
        ]},
        "summary": {
            "group_by": [{"field": "occurred_at", "bucket": "day"}, {"field": "source_system"}],
            "measures": ["count", {"sum": "points"}]
        },
        "file": {"name": "point_grants_{date}.csv", "encoding": "shift_jis", "header": "ja"},
        "destination": {"type": "directory", "path": points_folder.to_str().unwrap()},
        "recurrence": {"every": "day", "at": "04:00"}
    });
    let (status, body) = save(app, &app.admin, "daily_points", daily.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = run(app, &app.admin, "daily_points").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "done", "{body}");
    assert_eq!(body["rows"], 2, "{body}");
    let name = format!("point_grants_{}.csv", today.format("%Y%m%d"));
    assert_eq!(body["file_name"], name.as_str());
    let bytes = std::fs::read(points_folder.join(&name)).unwrap();
    assert_eq!(body["file_bytes"], bytes.len());
    let (text, _, malformed) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!malformed, "the file is Shift_JIS");
    let day = yesterday.format("%Y-%m-%d");
    assert_eq!(
        text,
        format!(
            "日時 (日),連携元,件数,ポイント 合計\r\n{day},ota,2,300\r\n{day},planner,1,100\r\n"
        )
    );
    let leftovers: Vec<_> = std::fs::read_dir(&points_folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, [name], "no partial file stays");

    // Records, to the point programme's SFTP server, with field labels and a byte-order mark.
    let ledger = json!({
        "format": 1, "name": "付与明細", "entity": "point_ledger",
        "filter": {"field": {"key": "kind", "op": "eq", "value": "grant"}},
        "fields": ["source_system", "transaction_id", "points"],
        "file": {"name": "grants_{date}_{time}.csv", "header": "en", "guard_formulas": false},
        "destination": {
            "type": "sftp", "host": "127.0.0.1", "port": sshd.port, "user": sshd.user,
            "host_key": sshd.host_key, "key": SshServer::KEY,
            "path": sshd.folder.to_str().unwrap()
        },
        "cron": "30 4 * * *"
    });
    let (status, body) = save(app, &app.admin, "ledger_sftp", ledger).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = run(app, &app.admin, "ledger_sftp").await;
    assert_eq!((status, &body["status"]), (201, &json!("done")), "{body}");
    assert_eq!(body["rows"], 5, "{body}");
    let sent = std::fs::read(sshd.folder.join(body["file_name"].as_str().unwrap())).unwrap();
    let sent = String::from_utf8(sent).unwrap();
    let lines: Vec<&str> = sent.split("\r\n").collect();
    assert_eq!(lines[0], "\u{feff}id,Source system,Transaction id,Points");
    assert!(lines[1].ends_with(",planner,P-1,100"), "{sent}");
    assert_eq!(
        lines.len(),
        7,
        "a header, five grants and the last line's end: {sent}"
    );
    assert!(
        lines[5].ends_with(",ota,+81-7,5"),
        "a file for a system keeps its values as they are: {sent}"
    );
    assert_eq!(
        std::fs::read_dir(&sshd.folder).unwrap().count(),
        1,
        "the partial file was renamed"
    );
    assert!(body["destination"].as_str().unwrap().starts_with("sftp://"));

    // A folder outside the export root: the run fails, saying why, and writes nothing there.
    let outside = std::env::temp_dir().join(format!("tabiji-outside-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    let mut astray = daily.clone();
    astray["destination"]["path"] = outside.to_str().unwrap().into();
    let (status, body) = save(app, &app.admin, "astray", astray).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = run(app, &app.admin, "astray").await;
    assert_eq!((status, &body["status"]), (201, &json!("failed")), "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is not inside the export root"),
        "{body}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    std::fs::remove_dir_all(&outside).unwrap();

    // A bad job is refused with every problem named.
    let mut broken = daily.clone();
    broken["summary"]["measures"] = json!([{"sum": "amount"}]);
    broken.as_object_mut().unwrap().remove("recurrence");
    let (status, body) = save(app, &app.admin, "broken", broken).await;
    assert_eq!(status, 422, "{body}");
    let places: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(places, ["summary.measures[0]", "cron"], "{body}");

    // The history, newest first.
    let history = app.get("/api/exports?job=daily_points").await;
    assert_eq!(history["exports"].as_array().unwrap().len(), 1, "{history}");
    let all = app.get("/api/exports").await;
    assert_eq!(all["exports"].as_array().unwrap().len(), 3, "{all}");

    // Viewing is not exporting.
    let viewer = app
        .user_with_rights(
            "ledger_viewer",
            json!({"entities": {"point_ledger": {"ops": ["view"]}}}),
        )
        .await;
    let (status, _) = save(app, &viewer, "mine", daily.clone()).await;
    assert_eq!(status, 403);
    let (status, _) = run(app, &viewer, "daily_points").await;
    assert_eq!(status, 403);
    let r = viewer.get(app.url("/api/exports")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["exports"], json!([]), "{body}");
    let (status, _) = app
        .call(Method::DELETE, "/api/exports/jobs/astray", None)
        .await;
    assert_eq!(status, 204);

    // Whoever changes a job owns it (scheduled runs act as them), and may only make it write
    // what they may see.
    let clerk = app
        .user_with_rights(
            "ledger_clerk",
            json!({"entities": {"point_ledger": {"ops": ["view", "export"], "fields": {"points": "none"}}}}),
        )
        .await;
    let (status, body) = save(app, &clerk, "daily_points", daily.clone()).await;
    assert_eq!(
        status, 403,
        "the sum of points is hidden from the clerk: {body}"
    );
    assert_eq!(body["error"]["field"], "points", "{body}");
    let mut counts_only = daily;
    counts_only["summary"]["measures"] = json!(["count"]);
    let (status, body) = save(app, &clerk, "daily_points", counts_only).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created_by"], "ledger_clerk", "{body}");
}

#[tokio::test]
async fn files_for_the_point_programme_are_made_and_delivered() {
    for scratch in backends().await {
        let sshd = SshServer::start();
        let root = sshd.folder.parent().unwrap().join("exports");
        std::fs::create_dir_all(&root).unwrap();
        let config = Config {
            transfers: Transfers {
                export_root: Some(root.clone()),
                sftp_keys: Some(sshd.keys.clone()),
                sftp_hosts: vec!["127.0.0.1".into()],
                ..Transfers::default()
            },
            ..Config::default()
        };
        let app = spawn_app_with(scratch, config).await;
        scheduled_exports(&app, &root, &sshd).await;
        app.stop().await;
    }
}
