//! `/api/flows`: scenario drafts, publishing and status.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_storage::flows;

use super::{Caller, JsonBody};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/flows", get(list).post(create))
        .route("/api/flows/{id}", get(read).put(update))
        .route("/api/flows/{id}/publish", post(publish))
        .route("/api/flows/{id}/status", post(status))
        .route("/api/flows/{id}/versions/{version}", get(version))
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"flows": flows::list(&state.store, &who).await?}),
    ))
}

async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<impl IntoResponse> {
    let created = flows::create(&state.store, &who, &body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(flows::get(&state.store, &who, id).await?))
}

async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        flows::update_draft(&state.store, &who, id, &body).await?,
    ))
}

async fn publish(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(flows::publish(&state.store, &who, id).await?))
}

#[derive(Deserialize)]
struct StatusChange {
    status: String,
}

async fn status(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<StatusChange>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        flows::set_status(&state.store, &who, id, &body.status).await?,
    ))
}

async fn version(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((id, version)): Path<(i64, i32)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(flows::version(&state.store, &who, id, version).await?))
}
