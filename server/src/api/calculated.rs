//! `/api/calculated`: calculated attributes (DM-9), tourist fields tabiji keeps from history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tabiji_storage::calculated::{self, NewCalculated};

use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/calculated", get(list).post(create))
        .route("/api/calculated/{key}", get(read).delete(delete))
        .route("/api/calculated/{key}/refresh", post(refresh))
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"calculated": calculated::list(&state.store, &who).await?}),
    ))
}

async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewCalculated>,
) -> ApiResult<impl IntoResponse> {
    let created = calculated::create(&state.store, &who, &body, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(calculated::get(&state.store, &who, &key).await?))
}

async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    calculated::delete(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let changed = calculated::refresh_now(&state.store, &who, &key, state.clock.now()).await?;
    Ok(Json(json!({"changed": changed})))
}
