//! tabiji's HTTP API and the `tabiji` command.
//!
//! # Layout
//! - [`api`]: the axum routes: health, OpenAPI, login and tokens, schema, records, administration.
//! - [`error`]: [`error::ApiError`], how every failure becomes a status and a JSON body with a
//!   stable code.
//! - [`demo`]: the deterministic demo data set (`tabiji demo`).
//! - [`editor`]: serves the browser editor's built files at `/`.
//! - [`throttle`]: attempts per client address (sign-ins, tracking links, events).
//! - `main.rs`: the command line (serve, migrate, demo, user, role, token).

pub mod api;
pub mod demo;
pub mod editor;
pub mod error;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use tabiji_connectors::Registry;
use tabiji_engine::runtime::{Config as EngineConfig, Runtime};
use tabiji_model::clock::{Clock, SystemClock};
use tabiji_storage::{Db, Store, migration};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// The engine this process runs: events and API entries go through it.
    pub runtime: Arc<Runtime>,
    /// Mark the session cookie `Secure` (set when tabiji is served over HTTPS).
    pub secure_cookies: bool,
    /// The built browser editor, served at `/` (see [`editor`]).
    pub editor_dir: Option<std::path::PathBuf>,
    /// Idle timeout and what a second sign-in with the same account does.
    pub sessions: tabiji_storage::sessions::Policy,
    /// Take the client's address from the `X-Forwarded-For` a reverse proxy appends, not from
    /// the connection (which is the proxy's).
    pub behind_proxy: bool,
    pub sign_in_throttle: Arc<throttle::Throttle>,
    /// Tracking links (opens, clicks, unsubscribes) per client address.
    pub tracking_throttle: Arc<throttle::Throttle>,
    /// Calls to the events API per client address.
    pub events_throttle: Arc<throttle::Throttle>,
}

/// Tracking requests a minute from one address before its opens and clicks stop being
/// recorded: high, because a mail provider's image proxy fetches many recipients' pixels.
pub const TRACKING_PER_MINUTE: u32 = 6_000;
/// Calls to `POST /api/events` a minute from one address (each carries up to 1,000 events).
pub const EVENTS_PER_MINUTE: u32 = 600;

impl AppState {
    /// The API over `store`, with an engine that sends through `connectors`.
    pub fn new(store: Store, connectors: Registry) -> Self {
        AppState::with_engine(store, connectors, EngineConfig::default())
    }

    pub fn with_engine(store: Store, connectors: Registry, config: EngineConfig) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let runtime = Arc::new(Runtime::new(
            store.clone(),
            clock.clone(),
            connectors,
            config,
        ));
        AppState {
            store,
            clock,
            runtime,
            secure_cookies: false,
            editor_dir: None,
            sessions: Default::default(),
            behind_proxy: false,
            sign_in_throttle: Default::default(),
            tracking_throttle: Arc::new(throttle::Throttle::per_minute(TRACKING_PER_MINUTE)),
            events_throttle: Arc::new(throttle::Throttle::per_minute(EVENTS_PER_MINUTE)),
        }
    }
}

/// Connects, migrates and opens the store.
pub async fn open_store(database_url: &str) -> anyhow::Result<Store> {
    let db = Db::connect(database_url).await?;
    let applied = migration::run(&db).await?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(Store::open(db).await?)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
