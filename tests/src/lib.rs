//! The end-to-end harness: [`spawn_app`] starts a real tabiji server on a loopback port over a
//! fresh database, with an administrator signed in and a worker running flows through a
//! recording `test` channel.
//!
//! # Layout
//! - `src/lib.rs`: the harness ([`TestApp`], [`backends`]).
//! - `src/sshd.rs`: a real OpenSSH server on a loopback port, for SFTP sources.
//! - `src/postgres.rs`: a PostgreSQL server of a test's own, which it may crash and restart.
//! - `e2e/`: the tests, one module per capability, all in one test binary.

pub mod postgres;
pub mod smtp;
pub mod sshd;

use std::sync::Arc;

use serde_json::{Value, json};
use tabiji_connectors::{Recording, Registry};
use tabiji_engine::runtime::{WorkerHandle, spawn_worker};
use tabiji_server::{AppState, open_store, serve};
use tabiji_storage::auth::{self as users, NewUser};
use tabiji_storage::scratch::Scratch;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ADMIN_LOGIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestApp {
    pub base: String,
    pub store: tabiji_storage::Store,
    /// Signed in as the administrator (session cookie).
    pub admin: reqwest::Client,
    pub backend: &'static str,
    /// What the server's `test` channel has sent.
    pub channel: Arc<Recording>,
    worker: Option<WorkerHandle>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    scratch: Option<Scratch>,
}

/// The databases every end-to-end test runs against: SQLite always, PostgreSQL when
/// `DATABASE_URL` points at one.
pub async fn backends() -> Vec<Scratch> {
    Scratch::all_backends().await
}

pub async fn spawn_app(scratch: Scratch) -> TestApp {
    spawn_app_with(scratch, tabiji_engine::runtime::Config::default()).await
}

/// [`spawn_app`] with the engine configured as an operator would (import root, SFTP keys…).
pub async fn spawn_app_with(scratch: Scratch, config: tabiji_engine::runtime::Config) -> TestApp {
    spawn_app_sending(scratch, config, Vec::new()).await
}

/// [`spawn_app_with`] with channels besides the recording `test` channel (e-mail through a
/// real SMTP server…).
pub async fn spawn_app_sending(
    scratch: Scratch,
    config: tabiji_engine::runtime::Config,
    channels: Vec<Arc<dyn tabiji_connectors::Connector>>,
) -> TestApp {
    spawn_app_tuned(scratch, config, channels, |_| {}).await
}

/// [`spawn_app_sending`] with the server's settings changed by `tune` before it starts (the
/// limits an operator sets on the command line…).
pub async fn spawn_app_tuned(
    scratch: Scratch,
    config: tabiji_engine::runtime::Config,
    channels: Vec<Arc<dyn tabiji_connectors::Connector>>,
    tune: impl FnOnce(&mut AppState),
) -> TestApp {
    let backend = if scratch.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let store = open_store(&scratch.url)
        .await
        .expect("the scratch database opens");
    users::create_user(
        store.db(),
        NewUser {
            login: ADMIN_LOGIN.into(),
            display_name: "管理者".into(),
            password: ADMIN_PASSWORD.into(),
            is_admin: true,
            ..Default::default()
        },
    )
    .await
    .expect("the administrator is created");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port is free");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let channel = Arc::new(Recording::new());
    let mut registry = Registry::new().with(channel.clone());
    for connector in channels {
        registry = registry.with(connector);
    }
    let mut state = AppState::with_engine(store.clone(), registry, config);
    state.editor_dir = Some(editor_dir());
    tune(&mut state);
    let worker = Some(spawn_worker(state.runtime.clone()));
    let server = tokio::spawn(async move {
        serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .expect("the server runs");
    });
    let admin = client();
    let response = admin
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"login": ADMIN_LOGIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the administrator signs in");
    TestApp {
        base,
        store,
        admin,
        backend,
        channel,
        worker,
        stop: Some(stop),
        server,
        scratch: Some(scratch),
    }
}

/// A new, empty folder under the system's temporary folder, named after `prefix`, this
/// process and the time, for a peer's files (keys, mail, a database cluster).
pub fn fresh_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The built browser editor the test servers serve: `TABIJI_EDITOR_DIR`, or where
/// `scripts/build-editor` puts it.
pub fn editor_dir() -> std::path::PathBuf {
    std::env::var_os("TABIJI_EDITOR_DIR")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(tabiji_server::editor::DEFAULT_DIR)
        })
}

/// A client that keeps cookies, as a browser does.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates another administrator and returns their password: a browser signing in as
    /// [`ADMIN_LOGIN`] would end the session of [`TestApp::admin`] (one session per account).
    pub async fn administrator(&self, login: &str) -> String {
        let password = format!("{login} keeps the keys");
        let (status, body) = self
            .post(
                "/api/admin/users",
                json!({"login": login, "password": password, "admin": true}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        password
    }

    /// Creates a user with the given rights document and returns a client signed in as them.
    pub async fn user_with_rights(&self, login: &str, rights: Value) -> reqwest::Client {
        let role = format!("role-of-{login}");
        let r = self
            .admin
            .post(self.url("/api/admin/roles"))
            .json(&json!({"name": role, "rights": rights}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let password = format!("{login}-password");
        let r = self
            .admin
            .post(self.url("/api/admin/users"))
            .json(&json!({"login": login, "password": password, "roles": [role]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let user = client();
        let r = user
            .post(self.url("/api/auth/login"))
            .json(&json!({"login": login, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        user
    }

    /// Sends `body` with `method` as the administrator; the status and the JSON answer (null
    /// when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(&self.admin, method, path, body).await
    }

    /// Sends `body` with `method` as `client`; the status and the JSON answer (null when it is
    /// not JSON).
    pub async fn call_as(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// GETs `path` as the administrator, which must answer 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// GETs `path` until `done` holds of the answer (the worker runs in the background);
    /// fails the test after 30 s, showing the last answer.
    pub async fn get_until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = std::time::Instant::now();
        loop {
            let value = self.get(path).await;
            if done(&value) {
                return value;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "timed out waiting on {path}: {value}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The names of the events stored for a contact, in name order.
    pub async fn event_names(&self, contact: i64) -> Vec<String> {
        use sea_orm::{ConnectionTrait, Statement};
        let conn = &self.store.db().conn;
        let rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                format!("SELECT name FROM sys_events WHERE contact_id = {contact} ORDER BY name"),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get::<String>("", "name").unwrap())
            .collect()
    }

    /// Creates tourists (all or nothing) and returns their ids in order.
    pub async fn create_tourists(&self, items: Vec<Value>) -> Vec<i64> {
        let (status, created) = self
            .post("/api/data/tourists/bulk", json!({"items": items}))
            .await;
        assert_eq!(status, 201, "{created}");
        created["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    }

    /// Saves `flow` (its entry an API call), publishes it and starts a run for each of
    /// `contacts`; returns the flow's id.
    pub async fn publish_and_enter(&self, flow: Value, contacts: &[i64]) -> i64 {
        let (status, created) = self.post("/api/flows", flow).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_i64().unwrap();
        let (status, body) = self
            .post(&format!("/api/flows/{id}/publish"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self
            .post(
                &format!("/api/flows/{id}/runs"),
                json!({"contacts": contacts}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        id
    }

    /// Publishes a flow named `name` that sends `template` through the recording channel, enters
    /// `contact`, waits until the mail is sent and records its opening; returns the flow's and
    /// the delivery's ids.
    pub async fn mail_and_open(&self, contact: i64, name: &str, template: &str) -> (i64, i64) {
        let flow = json!({
            "format": 1, "name": name,
            "entry": {"type": "api", "next": "mail"},
            "nodes": [
                {"id": "mail", "type": "send", "channel": "test", "template": template, "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        });
        let flow_id = self.publish_and_enter(flow, &[contact]).await;
        let sent = self
            .get_until(
                &format!("/api/deliveries?status=sent&flow={flow_id}"),
                |v| v["deliveries"].as_array().unwrap().len() == 1,
            )
            .await;
        let delivery = sent["deliveries"][0]["id"].as_i64().unwrap();
        let opened = json!({"events": [{"id": format!("open-{delivery}"), "contact_id": contact,
                                        "name": "opened", "delivery_id": delivery}]});
        let (status, body) = self.post("/api/events", opened).await;
        assert_eq!(status, 200, "{body}");
        (flow_id, delivery)
    }

    pub async fn stop(mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        self.store.db().conn.clone().close().await.ok();
        if let Some(scratch) = self.scratch.take() {
            scratch.remove().await;
        }
    }
}

/// Runs an async test body against a fresh app on every backend.
#[macro_export]
macro_rules! on_every_backend {
    ($body:ident) => {
        for scratch in $crate::backends().await {
            let app = $crate::spawn_app(scratch).await;
            $body(&app).await;
            app.stop().await;
        }
    };
}
