//! The `tabiji` binary as a user runs it: migrate, create a user and a token, load demo data,
//! serve, and answer with the token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tabiji_storage::scratch::Scratch;

fn tabiji(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tabiji"));
    cmd.env("DATABASE_URL", url).env("RUST_LOG", "warn");
    cmd
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("tabiji runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

async fn the_command_line(url: &str) {
    let (out, _) = run(tabiji(url).arg("migrate"));
    assert!(out.contains("20 migration(s) applied"), "{out}");
    let (out, _) = run(tabiji(url).arg("migrate"));
    assert!(out.contains("0 migration(s) applied"), "{out}");

    let (out, _) = run(tabiji(url).args([
        "role",
        "create",
        "--name",
        "desk",
        "--rights",
        r#"{"entities":{"tourists":{"ops":["view"],"fields":{"phone":"none"}}}}"#,
    ]));
    assert!(out.contains("created role desk"));
    let (out, _) = run(tabiji(url)
        .args(["user", "create", "--login", "yamada", "--role", "desk"])
        .env("TABIJI_PASSWORD", "yamada-password"));
    assert!(out.contains("created user yamada"), "{out}");
    let refused = tabiji(url)
        .args(["user", "create", "--login", "weak"])
        .env("TABIJI_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password"),
        "the error names the field"
    );
    let (token, _) =
        run(tabiji(url).args(["token", "create", "--login", "yamada", "--name", "cli test"]));
    let token = token.trim().to_string();
    assert!(token.starts_with("tbj_"));

    let (_, err) = run(tabiji(url).args([
        "demo",
        "--contacts",
        "3000",
        "--businesses",
        "300",
        "--no-serve",
    ]));
    assert!(
        err.contains("loaded 3000 tourists, 300 businesses"),
        "{err}"
    );
    let (_, err) = run(tabiji(url).args(["demo", "--contacts", "3000", "--no-serve"]));
    assert!(
        err.contains("already holds 3000 tourists"),
        "running demo twice loads nothing twice: {err}"
    );

    let mut server = tabiji(url)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--second-sign-in",
            "reject",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let client = reqwest::Client::new();
    let page: serde_json::Value = client
        .get(format!("{base}/api/data/tourists?limit=5"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(
        items
            .iter()
            .all(|t| t.get("phone").is_none() && t.get("email").is_some())
    );
    let r = client
        .get(format!("{base}/api/data/businesses"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The demo saved the example content for its administrator to open.
    let (admin_token, _) =
        run(tabiji(url).args(["token", "create", "--login", "admin", "--name", "content"]));
    let templates: serde_json::Value = client
        .get(format!("{base}/api/templates"))
        .bearer_auth(admin_token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(templates["items"][0]["key"], "autumn", "{templates}");

    // One session per account, refused while the first is live; forced off from the shell.
    let sign_in = || async {
        let r = client
            .post(format!("{base}/api/auth/login"))
            .json(&serde_json::json!({"login": "yamada", "password": "yamada-password"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        (status, body)
    };
    assert_eq!(sign_in().await.0, 200);
    let (status, body) = sign_in().await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_signed_in");
    let (out, _) = run(tabiji(url).args(["user", "logout", "--login", "yamada"]));
    assert!(out.contains("1 session(s) of yamada ended"), "{out}");
    assert_eq!(sign_in().await.0, 200, "the account is free again");

    // Disabled from the shell: the token stops, until enabled again.
    run(tabiji(url).args(["user", "disable", "--login", "yamada"]));
    let me = |token: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}/api/auth/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(token.clone()).await, 401);
    let (out, _) = run(tabiji(url).args(["user", "list"]));
    assert!(out.contains("[disabled]"), "{out}");
    run(tabiji(url).args(["user", "disable", "--login", "yamada", "--enable"]));
    assert_eq!(me(token.clone()).await, 200);
    let (out, _) = run(tabiji(url)
        .args(["user", "password", "--login", "yamada"])
        .env("TABIJI_PASSWORD", "a new password for yamada"));
    assert!(out.contains("password of yamada set"), "{out}");
    let (status, _) = sign_in().await;
    assert_eq!(status, 401, "the old password is gone");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn command_line() {
    for scratch in Scratch::all_backends().await {
        the_command_line(&scratch.url).await;
        scratch.remove().await;
    }
}

#[test]
fn flow_files_are_validated() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/flows/autumn-campaign.json"
    );
    let (out, _) =
        run(Command::new(env!("CARGO_BIN_EXE_tabiji")).args(["flow", "validate", example]));
    assert!(
        out.trim_end().ends_with("autumn-campaign.json: valid"),
        "{out}"
    );

    let broken =
        std::env::temp_dir().join(format!("tabiji-broken-flow-{}.json", std::process::id()));
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace(r#""on_timeout": "sms""#, r#""on_timeout": "sms9""#);
    std::fs::write(&broken, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["flow", "validate"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("wait_open: exit on_timeout leads to \"sms9\""),
        "{printed}"
    );
    std::fs::write(&broken, "{\"format\": 1,\n \"name\": ").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["flow", "validate"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("line 2"),
        "JSON errors name the line"
    );
    let _ = std::fs::remove_file(&broken);
}

/// The example export jobs checked and saved; a run without an export root fails, saying how
/// to turn directory destinations on.
async fn example_exports(url: &str) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/exports");
    let daily = format!("{examples}/point_grants_daily.json");
    let nightly = format!("{examples}/tourists_nightly.json");
    let (out, _) = run(tabiji(url).args(["export", "check", &daily, &nightly]));
    assert_eq!(out.matches(": valid").count(), 2, "{out}");
    let (out, _) = run(tabiji(url).args(["export", "save", "tourists_nightly", &nightly]));
    assert!(out.contains("saved export job tourists_nightly"), "{out}");
    let out = tabiji(url)
        .args(["export", "run", "tourists_nightly"])
        .env_remove("TABIJI_EXPORT_ROOT")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("failed: directory destinations are off: start tabiji with --export-root"),
        "{printed}"
    );
    let (out, _) = run(tabiji(url).args(["export", "schema"]));
    assert!(out.contains("\"destination\""), "{out}");
}

/// The example partner files through the example import flows, as an operator runs them.
async fn example_imports(url: &str) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/imports");
    let users = format!("{examples}/ota_users.json");
    let points = format!("{examples}/ota_points.json");
    let sftp = format!("{examples}/ota_users_sftp.json");
    let (out, _) = run(tabiji(url).args(["import", "check", &users, &points, &sftp]));
    assert_eq!(out.matches(": valid").count(), 3, "{out}");
    run(tabiji(url).args(["import", "save", "ota_users", &users]));
    run(tabiji(url).args(["import", "save", "ota_points", &points]));
    let out = tabiji(url)
        .args([
            "import",
            "run",
            "ota_users",
            &format!("{examples}/ota_users_sjis.csv"),
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejected rows fail the command: {printed}"
    );
    assert!(
        printed.contains(
            "ota_users_sjis.csv: 6 rows read, 1 created, 0 updated, 1 unchanged, 0 deleted, 2 merged, 2 rejected (shift_jis)"
        ),
        "{printed}"
    );
    assert!(printed.contains("  line 5: email: "), "{printed}");
    assert!(printed.contains("  line 6: birth_date: "), "{printed}");
    let out = tabiji(url)
        .args([
            "import",
            "run",
            "ota_points",
            &format!("{examples}/ota_points_sjis.csv"),
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(
            "3 rows read, 2 created, 0 updated, 0 unchanged, 0 deleted, 0 merged, 1 rejected"
        ),
        "{printed}"
    );
    assert!(
        printed.contains("line 4: メールアドレス: no tourists record has email unknown@example.jp"),
        "{printed}"
    );
    // The UTF-8 copy of the user file holds the same rows: nothing changes.
    let out = tabiji(url)
        .args([
            "import",
            "run",
            "ota_users",
            &format!("{examples}/ota_users.csv"),
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("6 rows read, 0 created, 0 updated, 2 unchanged, 0 deleted, 2 merged, 2 rejected (utf-8)"),
        "{printed}"
    );
}

#[tokio::test]
async fn example_import_flows_run() {
    for scratch in Scratch::all_backends().await {
        example_imports(&scratch.url).await;
        scratch.remove().await;
    }
}

#[tokio::test]
async fn example_export_jobs_check_and_save() {
    for scratch in Scratch::all_backends().await {
        example_exports(&scratch.url).await;
        scratch.remove().await;
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["demo", "--help"],
        vec!["user", "create", "--help"],
        vec!["token", "create", "--help"],
        vec!["import", "run", "--help"],
        vec!["export", "run", "--help"],
    ] {
        let (out, _) = run(Command::new(env!("CARGO_BIN_EXE_tabiji")).args(&args));
        assert!(out.contains("Usage"), "{args:?}: {out}");
    }
}

#[test]
fn a_wrong_database_url_is_explained() {
    let out = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["migrate"])
        .env("DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite:// or postgres://"));
}

/// An HTTP source through `tabiji import fetch`, against a partner's file server (wiremock):
/// the secret header from the process's environment, the host on the operator's list, the same
/// file not imported twice, a redirect to another host refused.
#[tokio::test]
async fn http_sources_download_from_the_hosts_the_operator_allows() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let partner = MockServer::start().await;
    let (users, _, _) = encoding_rs::SHIFT_JIS
        .encode("メールアドレス,氏名\r\nweb@example.jp,上田\r\nweb2@example.jp,下田\r\n");
    Mock::given(method("GET"))
        .and(path("/exports/users_today.csv"))
        .and(header("authorization", "Bearer s3cret"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(users.into_owned()))
        .mount(&partner)
        .await;
    let port = partner.address().port();
    Mock::given(method("GET"))
        .and(path("/moved.csv"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("http://localhost:{port}/exports/users_today.csv"),
        ))
        .mount(&partner)
        .await;
    let allowed = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("tabiji-http-source-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flow_file = |name: &str, url: String, secret: bool| {
        let file = dir.join(format!("{name}.json"));
        let headers = if secret {
            serde_json::json!({"Authorization": "TABIJI_HTTP_TEST_AUTHORIZATION"})
        } else {
            serde_json::json!({})
        };
        let flow = serde_json::json!({
            "format": 1, "name": "OTA (HTTP)", "entity": "tourists",
            "source": {"type": "http", "url": url, "headers": headers},
            "columns": [{"column": "メールアドレス", "field": "email"}, {"column": "氏名", "field": "family_name"}],
            "action": {"type": "upsert", "key": "email"},
            "cron": "0 3 * * *"
        });
        std::fs::write(&file, flow.to_string()).unwrap();
        file.display().to_string()
    };
    let direct = flow_file(
        "direct",
        format!("{}/exports/users_today.csv", partner.uri()),
        true,
    );
    let moved = flow_file("moved", format!("{}/moved.csv", partner.uri()), true);
    let moved_open = flow_file("moved_open", format!("{}/moved.csv", partner.uri()), false);
    for scratch in Scratch::all_backends().await {
        let url = scratch.url.clone();
        run(tabiji(&url).arg("migrate"));
        run(tabiji(&url).args(["import", "save", "http_users", &direct]));
        run(tabiji(&url).args(["import", "save", "http_moved", &moved]));
        run(tabiji(&url).args(["import", "save", "http_moved_open", &moved_open]));
        let fetch = |key: &str, hosts: &str, token: Option<&str>| {
            let mut cmd = tabiji(&url);
            cmd.args(["import", "fetch", key, "--http-hosts", hosts]);
            match token {
                Some(token) => cmd.env("TABIJI_HTTP_TEST_AUTHORIZATION", token),
                None => cmd.env_remove("TABIJI_HTTP_TEST_AUTHORIZATION"),
            };
            let out = cmd.output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        };
        let (ok, out) = fetch("http_users", &allowed, Some("Bearer s3cret"));
        assert!(ok, "{out}");
        assert!(
            out.contains("users_today.csv: 2 rows read, 2 created") && out.contains("(shift_jis)"),
            "{out}"
        );
        let (ok, out) = fetch("http_users", &allowed, Some("Bearer s3cret"));
        assert!(
            ok && out.contains("no file to import"),
            "the same file again: {out}"
        );
        let (ok, out) = fetch("http_users", &allowed, None);
        assert!(
            !ok && out.contains("TABIJI_HTTP_TEST_AUTHORIZATION is not set"),
            "{out}"
        );
        let (ok, out) = fetch("http_users", "partner.example", Some("Bearer s3cret"));
        assert!(
            !ok && out.contains("127.0.0.1 is not among the hosts HTTP sources may reach"),
            "{out}"
        );
        let (ok, out) = fetch("http_users", &allowed, Some("Bearer wrong"));
        assert!(!ok && out.contains("answered 404"), "{out}");
        let (ok, out) = fetch("http_moved", &allowed, Some("Bearer s3cret"));
        assert!(
            !ok && out.contains("a request with secret headers follows redirects only on the same scheme, host and port"),
            "secret headers never follow a redirect elsewhere: {out}"
        );
        let (ok, out) = fetch("http_moved_open", &allowed, None);
        assert!(
            !ok && out.contains("redirected to localhost, which is not among the hosts"),
            "a redirect may not leave the allowed hosts: {out}"
        );
        scratch.remove().await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dkim_keys_are_made_private_and_their_records_printed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tabiji-dkim-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("dkim.pem");
    let identity = ["--domain", "kanko.example.jp", "--selector", "tabiji2026"];
    let (out, _) = run(Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["dkim", "keygen", "--out", key.to_str().unwrap()])
        .args(identity)
        .args([
            "--spf",
            "203.0.113.5,_spf.mailer.example",
            "--dmarc-reports",
            "dmarc@kanko.example.jp",
        ]));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    assert!(
        out.contains("tabiji2026._domainkey.kanko.example.jp.\tTXT\t\"v=DKIM1; k=rsa; p=MII"),
        "{out}"
    );
    assert!(
        out.contains(
            "kanko.example.jp.\tTXT\t\"v=spf1 ip4:203.0.113.5 include:_spf.mailer.example ~all\""
        ),
        "{out}"
    );
    assert!(out.contains("_dmarc.kanko.example.jp.\tTXT\t\"v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:dmarc@kanko.example.jp\""), "{out}");

    // The same records again from the key; an existing key is never replaced.
    let (again, _) = run(Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["dkim", "records", "--key", key.to_str().unwrap()])
        .args(identity)
        .args([
            "--spf",
            "203.0.113.5,_spf.mailer.example",
            "--dmarc-reports",
            "dmarc@kanko.example.jp",
        ]));
    assert_eq!(
        again.lines().skip(1).collect::<Vec<_>>(),
        out.lines().skip(2).collect::<Vec<_>>()
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["dkim", "keygen", "--out", key.to_str().unwrap()])
        .args(identity)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // A key others can read is refused, saying how to fix it.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["dkim", "records", "--key", key.to_str().unwrap()])
        .args(identity)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("chmod 600"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_master_key_is_made_private_and_never_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tabiji-master-key-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("master.key");
    let (out, _) = run(Command::new(env!("CARGO_BIN_EXE_tabiji")).args([
        "master-key",
        "generate",
        key.to_str().unwrap(),
    ]));
    assert!(out.contains("--master-key-file"), "{out}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read_to_string(&key).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args(["master-key", "generate", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first);

    // A server refuses to start with a key others can read, saying how to fix it.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_tabiji"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--master-key-file",
            key.to_str().unwrap(),
        ])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("t.db").display()),
        )
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
