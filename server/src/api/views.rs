//! `/api/views`: each user's own views (CF-4), opened with the period they pick.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tabiji_storage::views::{self, NewView, Open};

use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/views", get(list).post(create))
        .route("/api/views/{key}", get(read).put(replace).delete(delete))
        .route("/api/views/{key}/open", post(open))
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"views": views::list(&state.store, &who).await?}),
    ))
}

async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewView>,
) -> ApiResult<impl IntoResponse> {
    let view = views::create(&state.store, &who, &body, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(views::get(&state.store, &who, &key).await?))
}

async fn replace(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<NewView>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        views::update(&state.store, &who, &key, &body, state.clock.now()).await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    views::delete(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn open(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Open>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        views::open(&state.store, &who, &key, &body, state.clock.now()).await?,
    ))
}
