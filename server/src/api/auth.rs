//! Signing in and out, and API tokens for integrators.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_storage::audit::{self, Entry};
use tabiji_storage::{Principal, auth as users};

use super::{Caller, JsonBody, SESSION_COOKIE};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/tokens", post(create_token))
}

#[derive(Deserialize)]
struct LoginRequest {
    login: String,
    password: String,
}

pub fn describe(who: &Principal) -> Value {
    json!({"id": who.user_id, "login": who.login, "admin": who.is_admin(), "rights": who.rights})
}

async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    let db = state.store.db();
    match users::login(db, &body.login, &body.password, state.clock.now()).await {
        Ok((who, secret)) => {
            audit::record(
                db,
                &who,
                Entry {
                    action: "login",
                    entity: None,
                    record_id: None,
                    outcome: "ok",
                    detail: None,
                },
            )
            .await?;
            let secure = if state.secure_cookies { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                users::SESSION_IDLE.num_seconds()
            );
            let mut headers = HeaderMap::new();
            headers.insert(
                SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("the cookie is ASCII"),
            );
            Ok((headers, Json(json!({"user": describe(&who)}))))
        }
        Err(e) => {
            let attempted = Principal {
                user_id: None,
                login: body.login.chars().take(64).collect(),
                rights: Default::default(),
            };
            audit::record(
                db,
                &attempted,
                Entry {
                    action: "login",
                    entity: None,
                    record_id: None,
                    outcome: "denied",
                    detail: None,
                },
            )
            .await?;
            Err(e.into())
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    if let Some(secret) = super::session_cookie(&headers) {
        users::logout(state.store.db(), &secret).await?;
    }
    let mut out = HeaderMap::new();
    out.insert(
        SET_COOKIE,
        HeaderValue::from_static("tabiji_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok((StatusCode::NO_CONTENT, out))
}

async fn me(Caller(who): Caller) -> Json<Value> {
    Json(json!({"user": describe(&who)}))
}

#[derive(Deserialize)]
struct TokenRequest {
    name: String,
    /// Days until the token stops working; none means it lasts until revoked.
    expires_in_days: Option<u32>,
}

async fn create_token(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<TokenRequest>,
) -> ApiResult<impl IntoResponse> {
    let user_id = who.user_id.ok_or(ApiError::Unauthenticated)?;
    let expires_at = body
        .expires_in_days
        .map(|d| state.clock.now() + Duration::days(i64::from(d.clamp(1, 3650))));
    let (token, secret) =
        users::create_token(state.store.db(), user_id, &body.name, expires_at).await?;
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
            json!({"id": token.id, "name": token.name, "token": secret, "expires_at": token.expires_at}),
        ),
    ))
}
