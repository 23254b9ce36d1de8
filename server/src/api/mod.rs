//! The HTTP API. Every route but health, OpenAPI and login needs a caller; every record
//! operation goes through [`tabiji_storage::Store`], which enforces the caller's rights.

mod admin;
mod auth;
mod calculated;
mod channels;
mod content;
mod engine;
mod export;
mod export_jobs;
mod flows;
mod imports;
mod lists;
mod metrics;
mod openapi;
mod points;
mod records;
mod reports;
mod schema;
mod segments;
mod send_times;
mod sql;
mod suppressions;
mod track;
mod views;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde_json::json;
use tabiji_storage::sessions::{self, SessionState};
use tabiji_storage::{Principal, auth as users};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Largest request body: room for a bulk call of 100,000 tourists.
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
pub const SESSION_COOKIE: &str = "tabiji_session";

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi::document))
        .merge(auth::routes())
        .merge(schema::routes())
        .merge(records::routes())
        .merge(export::routes())
        .merge(points::routes())
        .merge(segments::routes())
        .merge(lists::routes())
        .merge(imports::routes())
        .merge(export_jobs::routes())
        .merge(content::routes())
        .merge(channels::routes())
        .merge(suppressions::routes())
        .merge(track::routes())
        .merge(calculated::routes())
        .merge(views::routes())
        .merge(sql::routes())
        .merge(reports::routes())
        .merge(send_times::routes())
        .merge(admin::routes())
        .merge(flows::routes())
        .merge(engine::routes())
        .merge(metrics::routes());
    crate::editor::serve_from(api, state.editor_dir.as_ref())
        .layer(axum::middleware::from_fn(same_origin_writes))
        // Extractors hold bodies to 2 MiB unless told otherwise: bulk calls and partner files
        // are larger.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Refuses writes a browser sends from another origin: they would ride on the session cookie
/// (or, for the sign-in itself, sign the victim in as someone else). Browsers tell with
/// `Sec-Fetch-Site` and `Origin`; other clients send neither, and tokens are not sent by
/// browsers on their own. Signed tracking links (`/t/…`) are meant to be followed from
/// anywhere.
async fn same_origin_writes(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let headers = request.headers();
    let writes = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if writes
        && !headers.contains_key(AUTHORIZATION)
        && !request.uri().path().starts_with("/t/")
        && let Some(from) = cross_origin(headers)
    {
        return ApiError::CrossOrigin(from).into_response();
    }
    next.run(request).await
}

/// Where a browser says a request came from, when that is not this origin.
fn cross_origin(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Some(text("origin").unwrap_or(site).to_string());
    }
    let origin = text("origin")?;
    let host = text("host").unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (origin_host != host).then(|| origin.to_string())
}

/// How long `/api/health` waits for the database before it reports it unreachable.
const HEALTH_PING_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// 200 while the database answers; 503 `database_unavailable` while it does not, so that a
/// load balancer or monitor sees the outage (the workers retry by themselves meanwhile).
async fn health(State(state): State<AppState>) -> axum::response::Response {
    let database = format!("{:?}", state.store.db().backend()).to_lowercase();
    let ping = tokio::time::timeout(HEALTH_PING_LIMIT, state.store.db().conn.ping()).await;
    let problem = match ping {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "no answer within {} s",
            HEALTH_PING_LIMIT.as_secs()
        )),
    };
    match problem {
        None => axum::Json(json!({
            "status": "ok",
            "database": database,
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .into_response(),
        Some(why) => {
            tracing::warn!(error = %why, "health: database unreachable");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "status": "unavailable",
                    "database": database,
                    "version": env!("CARGO_PKG_VERSION"),
                    "error": {
                        "code": "database_unavailable",
                        "message": crate::error::DATABASE_UNAVAILABLE,
                    },
                })),
            )
                .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(crate::error::DATABASE_RETRY_AFTER),
            );
            response
        }
    }
}

/// The signed-in caller: from `Authorization: Bearer <token>` or the session cookie.
pub struct Caller(pub Principal);

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let now = state.clock.now();
        let db = state.store.db();
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthenticated)?;
            return users::token_principal(db, token.trim(), now)
                .await?
                .map(Caller)
                .ok_or(ApiError::Unauthenticated);
        }
        if let Some(secret) = session_cookie(&parts.headers) {
            return match sessions::session_state(db, &secret, state.sessions, now).await? {
                SessionState::Live(who) => Ok(Caller(who)),
                SessionState::Ended(reason) => Err(ApiError::SessionEnded(reason)),
                SessionState::Unknown => Err(ApiError::Unauthenticated),
            };
        }
        Err(ApiError::Unauthenticated)
    }
}

/// The address a request came from: the connection's peer, or behind a reverse proxy the
/// address the proxy appended to `X-Forwarded-For` (the last one; earlier ones are the
/// client's to invent).
pub fn client_ip(
    headers: &HeaderMap,
    peer: std::net::SocketAddr,
    behind_proxy: bool,
) -> std::net::IpAddr {
    if behind_proxy
        && let Some(forwarded) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .next_back()
    {
        return forwarded;
    }
    peer.ip()
}

/// Path parameters whose errors are in the API's error shape (axum's own answer in plain
/// text otherwise).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Query parameters whose errors are in the API's error shape, naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// A JSON body whose errors name the line and column, in the API's error shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadJson(e.to_string()))
    }
}

/// Runs `work` to its end even if the caller goes away first: an import or export run must
/// finish in the history, not stay `running` because a browser was closed.
pub(crate) async fn to_the_end<T: Send + 'static>(
    work: impl std::future::Future<Output = ApiResult<T>> + Send + 'static,
) -> ApiResult<T> {
    tokio::spawn(work)
        .await
        .map_err(|e| ApiError::Internal(format!("a run stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn writes_from_other_origins_are_told_apart() {
        assert_eq!(
            cross_origin(&headers(&[])),
            None,
            "curl and partner systems"
        );
        assert_eq!(
            cross_origin(&headers(&[
                ("host", "crm.example:8080"),
                ("origin", "http://crm.example:8080")
            ])),
            None
        );
        assert_eq!(
            cross_origin(&headers(&[("sec-fetch-site", "same-origin")])),
            None
        );
        assert_eq!(
            cross_origin(&headers(&[
                ("host", "crm.example"),
                ("origin", "https://evil.example")
            ])),
            Some("https://evil.example".into())
        );
        assert_eq!(
            cross_origin(&headers(&[
                ("host", "crm.example"),
                ("origin", "http://crm.example:8081")
            ])),
            Some("http://crm.example:8081".into()),
            "another port of the same host"
        );
        assert_eq!(
            cross_origin(&headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://a.crm.example")
            ])),
            Some("https://a.crm.example".into())
        );
        assert_eq!(
            cross_origin(&headers(&[("host", "crm.example"), ("origin", "null")])),
            Some("null".into())
        );
    }
}
