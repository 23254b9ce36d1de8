//! `POST /api/points`: a point grant, use, expiry or adjustment from a partner system, keyed by
//! the tourist's e-mail address (DI-1, DI-3, DI-5): applied at once to the tourist's balance,
//! kept once per (source_system, transaction_id), a use beyond the balance refused.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tabiji_model::Op;
use tabiji_storage::records::ItemStatus;
use tabiji_storage::{ItemError, StorageError};

use super::{Caller, JsonBody};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/points", post(record))
}

/// The body is a point-ledger entry with `email` in place of `tourist_id`.
async fn record(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<impl IntoResponse> {
    state
        .store
        .require(&who, "point_ledger", Op::Create)
        .await?;
    let Value::Object(mut entry) = body else {
        return Err(ApiError::BadRequest(
            "send a JSON object: email, kind, points, source_system, transaction_id, occurred_at"
                .into(),
        ));
    };
    let Some(email) = entry.remove("email") else {
        return Err(StorageError::invalid(ItemError::field(
            "email",
            "required",
            "the tourist's e-mail address is required",
        ))
        .into());
    };
    let email = email.as_str().unwrap_or_default().to_string();
    if entry.contains_key("tourist_id") {
        return Err(StorageError::invalid(ItemError::field(
            "tourist_id",
            "unexpected_field",
            "the tourist is named by email here; send tourist_id to /api/data/point_ledger instead",
        ))
        .into());
    }
    let Some(tourist) = state
        .store
        .id_by_unique(&who, "tourists", "email", &email)
        .await?
    else {
        return Err(StorageError::invalid(ItemError::field(
            "email",
            "unknown_tourist",
            format!("no tourist has the e-mail address {email}"),
        ))
        .into());
    };
    entry.insert("tourist_id".into(), Value::from(tourist));
    let (record, status) = state
        .store
        .create(&who, "point_ledger", &Value::Object(entry))
        .await?;
    let code = if status == ItemStatus::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(json!({"status": status, "balance": record.get("balance_after"), "record": record})),
    ))
}
