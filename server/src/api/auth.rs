//! Signing in and out, one's own sessions and password, and API tokens for integrators.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, SET_COOKIE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_model::Rights;
use tabiji_storage::audit::{self, Entry};
use tabiji_storage::sessions::{self, Device, LiveSession, SecondSignIn};
use tabiji_storage::{Principal, StorageError, auth as users};

use super::{Caller, JsonBody, Path, SESSION_COOKIE};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/sessions", get(own_sessions))
        .route("/api/auth/password", post(change_password))
        .route("/api/auth/tokens", post(create_token).get(own_tokens))
        .route("/api/auth/tokens/{id}", delete(revoke_own_token))
}

#[derive(Deserialize)]
struct LoginRequest {
    login: String,
    password: String,
}

pub fn describe(who: &Principal) -> Value {
    json!({"id": who.user_id, "login": who.login, "admin": who.is_admin(), "rights": who.rights})
}

fn line(action: &'static str, outcome: &'static str, detail: Option<String>) -> Entry<'static> {
    Entry {
        action,
        entity: None,
        record_id: None,
        outcome,
        detail,
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    let db = state.store.db();
    let ip = super::client_ip(&headers, peer, state.behind_proxy);
    let attempted = Principal {
        user_id: None,
        login: body.login.chars().take(64).collect(),
        rights: Default::default(),
    };
    if let Some(wait) = state.sign_in_throttle.blocked(ip, Instant::now()) {
        audit::record(
            db,
            &attempted,
            line("login", "denied", Some(format!("throttled: {ip}"))),
        )
        .await?;
        return Err(ApiError::TooManyAttempts(wait));
    }
    let device = Device {
        ip: Some(ip.to_string()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let policy = state.sessions;
    let signed_in = match sessions::sign_in(
        db,
        &body.login,
        &body.password,
        device,
        policy,
        state.clock.now(),
    )
    .await
    {
        Ok(signed_in) => signed_in,
        Err(e) => {
            if matches!(
                e,
                StorageError::BadCredentials | StorageError::Locked { .. }
            ) {
                state.sign_in_throttle.failed(ip, Instant::now());
            }
            let detail = match &e {
                StorageError::Locked { .. } => format!("locked: {ip}"),
                StorageError::AlreadySignedIn { .. } => {
                    format!("already signed in elsewhere: {ip}")
                }
                _ => format!("wrong login id or password: {ip}"),
            };
            audit::record(db, &attempted, line("login", "denied", Some(detail))).await?;
            return Err(e.into());
        }
    };
    let who = &signed_in.principal;
    audit::record(db, who, line("login", "ok", Some(ip.to_string()))).await?;
    if signed_in.other_sessions > 0 {
        let outcome = match policy.second_sign_in {
            SecondSignIn::EndOlder => "ended_older",
            _ => "allowed",
        };
        let detail = format!("{} other session(s) live; {ip}", signed_in.other_sessions);
        audit::record(db, who, line("second_login", outcome, Some(detail))).await?;
    }
    // No Max-Age: the cookie goes when the browser closes; the server ends idle sessions.
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        signed_in.secret
    );
    let mut out = HeaderMap::new();
    out.insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("the cookie is ASCII"),
    );
    Ok((
        out,
        Json(
            json!({"user": describe(who), "ended_sessions": match policy.second_sign_in {
                SecondSignIn::EndOlder => signed_in.other_sessions,
                _ => 0,
            }}),
        ),
    ))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    if let Some(secret) = super::session_cookie(&headers) {
        sessions::sign_out(state.store.db(), &secret, state.clock.now()).await?;
    }
    let mut out = HeaderMap::new();
    out.insert(
        SET_COOKIE,
        HeaderValue::from_static("tabiji_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok((StatusCode::NO_CONTENT, out))
}

pub fn describe_session(s: &LiveSession, current: Option<i64>) -> Value {
    json!({
        "id": s.id,
        "login": s.login,
        "created_at": s.created_at,
        "last_seen_at": s.last_seen_at,
        "expires_at": s.expires_at,
        "ip": s.ip,
        "user_agent": s.user_agent,
        "current": current == Some(s.id),
    })
}

/// The id of the session the request's cookie holds, to mark it in lists of sessions.
pub async fn current_session(
    db: &tabiji_storage::Db,
    headers: &HeaderMap,
) -> ApiResult<Option<i64>> {
    Ok(match super::session_cookie(headers) {
        Some(secret) => sessions::id_of(db, &secret).await?,
        None => None,
    })
}

/// The caller's own live sessions, theirs to check for one they do not recognise.
async fn own_sessions(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let user_id = who.user_id.ok_or(ApiError::Unauthenticated)?;
    let db = state.store.db();
    let current = current_session(db, &headers).await?;
    let list: Vec<Value> = sessions::live_sessions(db, Some(user_id), state.clock.now())
        .await?
        .iter()
        .map(|s| describe_session(s, current))
        .collect();
    Ok(Json(json!({"sessions": list})))
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    password: String,
}

/// A user changes their own password; their other sessions end.
async fn change_password(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PasswordChange>,
) -> ApiResult<Json<Value>> {
    let user_id = who.user_id.ok_or(ApiError::Unauthenticated)?;
    let db = state.store.db();
    let keep = super::session_cookie(&headers);
    let ended = users::change_own_password(
        db,
        user_id,
        &body.current_password,
        body.password,
        keep.as_deref(),
        state.clock.now(),
    )
    .await;
    let outcome = if ended.is_ok() { "ok" } else { "denied" };
    audit::record(db, &who, line("change_password", outcome, None)).await?;
    Ok(Json(json!({"ended_sessions": ended?})))
}

async fn me(Caller(who): Caller) -> Json<Value> {
    Json(json!({"user": describe(&who)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: String,
    /// Days until the token stops working; none means it lasts until revoked.
    expires_in_days: Option<u32>,
    /// A rights document the token is narrowed to; none: the user's own rights.
    scope: Option<Rights>,
}

async fn create_token(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<TokenRequest>,
) -> ApiResult<impl IntoResponse> {
    let user_id = who.user_id.ok_or(ApiError::Unauthenticated)?;
    let expires_at = body
        .expires_in_days
        .map(|d| state.clock.now() + Duration::days(i64::from(d.clamp(1, 3650))));
    if let Some(scope) = &body.scope {
        tabiji_storage::scope::check_record_filters(&state.store.schemas(), scope)?;
    }
    // A token making a token passes on no more than it holds itself.
    let scope = if headers.contains_key(AUTHORIZATION) {
        Some(match &body.scope {
            Some(scope) => who.rights.intersect(scope),
            None => who.rights.clone(),
        })
    } else {
        body.scope
    };
    let (token, secret) = users::create_token(
        state.store.db(),
        user_id,
        &body.name,
        expires_at,
        scope.as_ref(),
    )
    .await?;
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "create_token",
            entity: None,
            record_id: Some(token.id),
            outcome: "ok",
            detail: Some(body.name),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": token.id, "name": token.name, "token": secret, "expires_at": token.expires_at, "scope": scope}),
        ),
    ))
}

/// The caller's own API tokens (never their secrets).
async fn own_tokens(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Json<Value>> {
    let user_id = who.user_id.ok_or(ApiError::Unauthenticated)?;
    let tokens = users::tokens(state.store.db(), Some(user_id), state.clock.now()).await?;
    Ok(Json(json!({"tokens": tokens})))
}

/// Revokes one of the caller's own tokens; it stops working at once.
async fn revoke_own_token(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let user_id = who.user_id.ok_or(ApiError::Unauthenticated)?;
    let name = users::revoke_token(state.store.db(), id, Some(user_id)).await?;
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "revoke_token",
            entity: None,
            record_id: Some(id),
            outcome: "ok",
            detail: Some(name),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
