//! `/api/channels`: the SMS, LINE and webhook channels, configured by administrators. The
//! credential is written, never read back: responses say only whether one is set and whether
//! this process can open it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_engine::channels::{self, ChannelError};
use tabiji_model::FieldType;
use tabiji_model::channel::ChannelSettings;
use tabiji_model::flow::{CONTACTS, Channel};
use tabiji_storage::audit::{self, Entry};
use tabiji_storage::{ItemError, StorageError};

use super::admin::require_admin;
use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/channels", get(list)).route(
        "/api/channels/{channel}",
        get(read).put(save).delete(remove),
    )
}

fn configurable(name: &str) -> ApiResult<Channel> {
    Channel::parse(name)
        .filter(|c| ChannelSettings::configurable(*c))
        .ok_or_else(|| {
            ApiError::Storage(StorageError::NoSuch {
                kind: "configurable channel (sms, line or webhook; e-mail is set when tabiji starts)",
                name: name.to_string(),
            })
        })
}

fn api_error(e: ChannelError) -> ApiError {
    match e {
        ChannelError::Storage(e) => ApiError::Storage(e),
        ChannelError::Settings { problems, .. } => ApiError::Storage(StorageError::Invalid(
            problems
                .into_iter()
                .map(|p| ItemError::field(&p.at, "invalid", p.message))
                .collect(),
        )),
        ChannelError::NoCredential { credential, .. } => ApiError::Storage(StorageError::Invalid(
            vec![ItemError::field(credential, "required", e.to_string())],
        )),
        ChannelError::NoMasterKey => ApiError::Unprocessable {
            code: "no_master_key",
            message: e.to_string(),
        },
        other => ApiError::Unprocessable {
            code: "credential_unusable",
            message: other.to_string(),
        },
    }
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "read channel settings").await?;
    let channels = channels::list(&state.store, state.runtime.vault())
        .await
        .map_err(api_error)?;
    Ok(Json(json!({
        "channels": channels,
        "master_key": state.runtime.vault().map(|v| v.id()),
    })))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "read channel settings").await?;
    let channel = configurable(&name)?;
    let found = channels::get(&state.store, state.runtime.vault(), channel)
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            ApiError::Storage(StorageError::NoSuch {
                kind: "configured channel",
                name: name.clone(),
            })
        })?;
    Ok(Json(found))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    settings: Value,
    /// The provider's token or the webhook's signing secret; left out, the saved one is kept.
    #[serde(default)]
    credential: Option<String>,
}

/// The contact fields the settings name exist, and a phone number field is a phone field.
async fn check_fields(state: &AppState, settings: &ChannelSettings) -> ApiResult<()> {
    let schema = state.store.entity_schema(CONTACTS).await?;
    let mut problems = Vec::new();
    for (at, key) in settings.contact_fields() {
        match schema.fields.iter().find(|f| f.key == key) {
            None => problems.push(ItemError::field(
                at,
                "unknown_field",
                format!("tourists have no field {key:?}"),
            )),
            Some(f) if matches!(f.ty, FieldType::Password) => problems.push(ItemError::field(
                at,
                "not_allowed",
                format!("{key:?} is a password and is never sent"),
            )),
            Some(f) if at == "phone_field" && !matches!(f.ty, FieldType::Phone) => {
                problems.push(ItemError::field(
                    at,
                    "not_phone",
                    format!("{key:?} is not a phone number field"),
                ))
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Storage(StorageError::Invalid(problems)))
    }
}

async fn save(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SaveBody>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "configure channels").await?;
    let channel = configurable(&name)?;
    let mut settings = body.settings;
    let Some(object) = settings.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "settings must be an object of the channel's settings".into(),
        ));
    };
    match object.get("channel").and_then(Value::as_str) {
        None => {
            object.insert("channel".into(), json!(channel.as_str()));
        }
        Some(named) if named == channel.as_str() => {}
        Some(named) => {
            return Err(ApiError::BadRequest(format!(
                "the settings are for {named:?} but were sent to /api/channels/{name}"
            )));
        }
    }
    let settings: ChannelSettings = serde_json::from_value(settings).map_err(|e| {
        ApiError::Storage(StorageError::Invalid(vec![ItemError::field(
            "settings",
            "invalid",
            e.to_string(),
        )]))
    })?;
    check_fields(&state, &settings).await?;
    let existed = channels::get(&state.store, state.runtime.vault(), channel)
        .await
        .map_err(api_error)?
        .is_some();
    channels::save(
        &state.store,
        state.runtime.vault(),
        state.runtime.channel_reach(),
        &settings,
        body.credential.as_deref(),
        &who.login,
        state.clock.now(),
    )
    .await
    .map_err(api_error)?;
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "configure_channel",
            entity: Some(tabiji_model::channel::CHANNELS),
            record_id: None,
            outcome: "ok",
            detail: Some(format!(
                "{}{}",
                channel.as_str(),
                if body
                    .credential
                    .as_deref()
                    .is_some_and(|c| !c.trim().is_empty())
                {
                    " (credential replaced)"
                } else {
                    ""
                }
            )),
        },
    )
    .await?;
    let saved = channels::get(&state.store, state.runtime.vault(), channel)
        .await
        .map_err(api_error)?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(saved)))
}

async fn remove(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "configure channels").await?;
    let channel = configurable(&name)?;
    let removed = channels::remove(&state.store, channel, &who.login, state.clock.now())
        .await
        .map_err(api_error)?;
    if !removed {
        return Err(ApiError::Storage(StorageError::NoSuch {
            kind: "configured channel",
            name,
        }));
    }
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "remove_channel",
            entity: Some(tabiji_model::channel::CHANNELS),
            record_id: None,
            outcome: "ok",
            detail: Some(channel.as_str().to_string()),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
