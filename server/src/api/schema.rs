//! `/api/schema`: the entities and fields the caller may see; custom fields and history stores.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tabiji_model::FieldDef;
use tabiji_model::field::Label;

use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/schema", get(list))
        .route("/api/schema/history-stores", post(create_history_store))
        .route("/api/schema/{entity}", get(entity))
        .route("/api/schema/{entity}/fields", post(add_field))
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    let mut entities = Vec::new();
    for e in state.store.entities_visible_to(&who) {
        entities.push(state.store.visible_schema(&who, &e.name).await?);
    }
    Ok(Json(json!({"entities": entities})))
}

async fn entity(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.store.visible_schema(&who, &entity).await?))
}

async fn add_field(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(field): JsonBody<FieldDef>,
) -> ApiResult<impl IntoResponse> {
    let added = state.store.add_custom_field(&who, &entity, field).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

#[derive(Deserialize)]
struct NewHistoryStore {
    name: String,
    label: Label,
}

async fn create_history_store(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewHistoryStore>,
) -> ApiResult<impl IntoResponse> {
    let created = state
        .store
        .add_history_store(&who, &body.name, body.label)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}
