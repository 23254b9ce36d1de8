//! tabiji's HTTP API and the `tabiji` command.
//!
//! # Layout
//! - [`api`]: the axum routes: health, OpenAPI, login and tokens, schema, records, administration.
//! - [`error`]: [`error::ApiError`], how every failure becomes a status and a JSON body with a
//!   stable code.
//! - [`demo`]: the deterministic demo data set (`tabiji demo`).
//! - `main.rs`: the command line (serve, migrate, demo, user, role, token).

pub mod api;
pub mod demo;
pub mod error;

use std::net::SocketAddr;
use std::sync::Arc;

use tabiji_model::clock::{Clock, SystemClock};
use tabiji_storage::{Db, Store, migration};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Mark the session cookie `Secure` (set when tabiji is served over HTTPS).
    pub secure_cookies: bool,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        AppState {
            store,
            clock: Arc::new(SystemClock),
            secure_cookies: false,
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
