//! `/api/sql`: the SQL workspace (MA-7, MA-9): read-only queries over the data the caller may
//! see, and output tables kept from their results.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tabiji_storage::workspace::{self, QueryRequest, SaveRequest};

use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/sql/query", post(query))
        .route("/api/sql/catalog", get(catalog))
        .route("/api/sql/tables", get(list).post(save))
        .route("/api/sql/tables/{name}", get(read).delete(delete))
        .route("/api/sql/tables/{name}/copy", post(copy))
}

async fn query(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<QueryRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(workspace::query(&state.store, &who, &body).await?))
}

async fn catalog(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"tables": workspace::catalog(&state.store, &who).await?, "functions": workspace::FUNCTIONS}),
    ))
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"tables": workspace::list(&state.store, &who).await?}),
    ))
}

async fn save(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<SaveRequest>,
) -> ApiResult<impl IntoResponse> {
    let created = body.mode == workspace::SaveMode::Create;
    let table = workspace::save(&state.store, &who, &body, state.clock.now()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(table)))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(workspace::get(&state.store, &who, &name).await?))
}

async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    workspace::delete(&state.store, &who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyRequest {
    to: String,
}

async fn copy(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CopyRequest>,
) -> ApiResult<impl IntoResponse> {
    let table = workspace::copy(&state.store, &who, &name, &body.to, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(table)))
}
