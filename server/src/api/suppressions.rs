//! `/api/suppressions`: addresses a channel no longer sends to. Bounces arrive by themselves;
//! complaints (a provider's feedback loop) and staff decisions are added here. Rights: the
//! `suppressions` entity (view, create, delete).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tabiji_model::Op;
use tabiji_model::flow::Channel;
use tabiji_model::normalize;
use tabiji_storage::audit::{self, Entry};
use tabiji_storage::suppressions::{self, REASONS, SUPPRESSIONS, Suppression};
use tabiji_storage::{ItemError, StorageError};

use super::{Caller, JsonBody, Path, Query};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The suppression list is about every contact's addresses: not for a caller whose record
/// rights narrow tourists.
async fn every_contact(state: &AppState, who: &tabiji_storage::Principal) -> ApiResult<()> {
    state
        .store
        .require_every_record(who, tabiji_model::flow::CONTACTS, "the suppression list")
        .await?;
    Ok(())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/suppressions", get(list).post(add))
        .route("/api/suppressions/{channel}/{address}", delete(remove))
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Storage(StorageError::Invalid(vec![ItemError::field(
        field, "invalid", message,
    )]))
}

/// The channel and the address in the form the list keeps (so it matches at send time
/// however it was typed): e-mail addresses normalised, phone numbers in E.164 form (national
/// numbers in the SMS channel's country).
async fn normalised(
    state: &AppState,
    channel: &str,
    address: &str,
) -> ApiResult<(Channel, String)> {
    let channel = Channel::parse(channel)
        .filter(|c| matches!(c, Channel::Email | Channel::Sms | Channel::Line))
        .ok_or_else(|| invalid("channel", "is email, sms or line"))?;
    let address = match channel {
        Channel::Email => {
            normalize::email(address).map_err(|e| invalid("address", format!("{address:?} {e}")))?
        }
        Channel::Sms => {
            let country = match tabiji_storage::channels::get(&state.store, "sms").await? {
                Some(stored) => stored.settings["country_code"]
                    .as_str()
                    .unwrap_or("81")
                    .to_string(),
                None => "81".into(),
            };
            normalize::e164(address, &country)
                .map_err(|e| invalid("address", format!("{address:?} {e}")))?
        }
        _ => address.trim().to_string(),
    };
    if address.is_empty() {
        return Err(invalid("address", "is required"));
    }
    Ok((channel, address))
}

#[derive(Deserialize)]
struct ListQuery {
    channel: Option<String>,
    limit: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, SUPPRESSIONS, Op::View).await?;
    every_contact(&state, &who).await?;
    let limit = q.limit.unwrap_or(1_000).clamp(1, 10_000);
    let items = suppressions::list(&state.store.db().conn, q.channel.as_deref(), limit).await?;
    Ok(Json(json!({"suppressions": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    channel: String,
    address: String,
    /// `complaint` (a provider's feedback loop), `bounce` or `manual`.
    #[serde(default = "manual")]
    reason: String,
    #[serde(default)]
    note: String,
}

fn manual() -> String {
    "manual".into()
}

async fn add(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<AddBody>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, SUPPRESSIONS, Op::Create).await?;
    every_contact(&state, &who).await?;
    let (channel, address) = normalised(&state, &body.channel, &body.address).await?;
    if !REASONS.contains(&body.reason.as_str()) {
        return Err(invalid(
            "reason",
            format!("is one of {}", REASONS.join(", ")),
        ));
    }
    let item = Suppression {
        channel: channel.as_str().into(),
        address: address.clone(),
        reason: body.reason,
        detail: body.note,
        contact_id: None,
        created_by: who.login.clone(),
        created_at: state.clock.now(),
    };
    let added = suppressions::add(&state.store.db().conn, std::slice::from_ref(&item)).await?;
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "suppress",
            entity: Some(SUPPRESSIONS),
            record_id: None,
            outcome: "ok",
            detail: Some(format!("{} ({})", channel.as_str(), item.reason)),
        },
    )
    .await?;
    let status = if added > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"channel": channel.as_str(), "address": address, "added": added > 0})),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((channel, address)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, SUPPRESSIONS, Op::Delete).await?;
    every_contact(&state, &who).await?;
    let (channel, address) = normalised(&state, &channel, &address).await?;
    if !suppressions::remove(&state.store.db().conn, channel.as_str(), &address).await? {
        return Err(ApiError::Storage(StorageError::NoSuch {
            kind: "suppressed address",
            name: address,
        }));
    }
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "unsuppress",
            entity: Some(SUPPRESSIONS),
            record_id: None,
            outcome: "ok",
            detail: Some(channel.as_str().into()),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
