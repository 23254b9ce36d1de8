//! `/api/flows`: scenario drafts, publishing and status.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_model::Op;
use tabiji_model::flow::{Flow, Step};
use tabiji_storage::{ItemError, StorageError, flows};

use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

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
    state.store.require(&who, flows::FLOWS, Op::Publish).await?;
    check_content(&state, &flows::get(&state.store, &who, id).await?.draft).await?;
    Ok(Json(flows::publish(&state.store, &who, id).await?))
}

/// The templates and snippets a flow names are saved, compile, and suit their channel: a
/// flow published without them would fail at every contact.
async fn check_content(state: &AppState, draft: &Value) -> ApiResult<()> {
    // A draft that does not parse is refused by publishing itself, with its reasons.
    let Ok(flow) = serde_json::from_value::<Flow>(draft.clone()) else {
        return Ok(());
    };
    let library = state.runtime.content().library(&state.store).await?;
    let mut problems = Vec::new();
    for node in &flow.nodes {
        let at = format!("nodes.{}", node.id);
        match &node.step {
            Step::Send {
                channel, template, ..
            } if state.runtime.renders(*channel).await? => match library.template_channel(template)
            {
                Ok(c) if c == *channel => {}
                Ok(c) => problems.push(ItemError::field(
                    &at,
                    "wrong_channel",
                    format!(
                        "template {template:?} is for {}, this node sends {}",
                        c.as_str(),
                        channel.as_str()
                    ),
                )),
                Err(e) => problems.push(ItemError::field(&at, "unknown_template", e.to_string())),
            },
            Step::Condition { snippet, .. } if !library.has_snippet(snippet) => {
                problems.push(ItemError::field(
                    &at,
                    "unknown_snippet",
                    format!("snippet {snippet:?} is not saved, or does not compile"),
                ))
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Storage(StorageError::Invalid(problems)))
    }
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
