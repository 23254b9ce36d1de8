//! `/api/imports`: import flows (partner files into records), their runs and the import
//! history with every rejected row (DI-2, DI-3, DI-7…DI-9, MA-11, AN-1).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tabiji_connectors::http_pull::HttpPullError;
use tabiji_connectors::sftp::SftpError;
use tabiji_engine::import::fetch::{self as fetching, FetchError};
use tabiji_engine::import::{read_file, run_file, start_file};
use tabiji_model::import::ImportFlow;
use tabiji_storage::imports;

use super::{Caller, JsonBody, Path, Query, to_the_end};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/imports", get(history))
        .route("/api/imports/check", post(check))
        .route("/api/imports/flows", get(list_flows))
        .route(
            "/api/imports/flows/{key}",
            get(read_flow).put(save_flow).delete(delete_flow),
        )
        .route("/api/imports/flows/{key}/run", post(run))
        .route("/api/imports/flows/{key}/fetch", post(fetch))
        .route("/api/imports/{id}", get(read_run))
        .route("/api/imports/{id}/rejected", get(rejected))
}

async fn check(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(flow): JsonBody<ImportFlow>,
) -> ApiResult<impl IntoResponse> {
    // The answer describes the entity's fields: only for those who may import into it.
    state
        .store
        .require(&who, &flow.entity, tabiji_model::Op::Import)
        .await?;
    imports::check(&state.store, &flow).await?;
    Ok(Json(json!({"valid": true})))
}

async fn list_flows(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"flows": imports::list(&state.store, &who).await?}),
    ))
}

async fn read_flow(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(imports::get(&state.store, &who, &key).await?))
}

async fn save_flow(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(flow): JsonBody<ImportFlow>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        imports::save(&state.store, &who, &key, &flow, state.clock.now()).await?,
    ))
}

async fn delete_flow(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    imports::delete(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct RunQuery {
    /// The file's name, as the history shows it.
    file: Option<String>,
}

/// Whether the caller asked to be answered before the work is done (RFC 7240).
fn respond_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// The request body is the file itself, as sent (any encoding the flow reads). With
/// `Prefer: respond-async` the run is answered (202, `Location` of the run) as soon as it is
/// recorded, and the file is read on in the background: the caller follows its counts and
/// `bytes_read` at `/api/imports/{id}`.
async fn run(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    Query(query): Query<RunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::response::Response> {
    let saved = imports::get(&state.store, &who, &key).await?;
    let name = query.file.unwrap_or_else(|| "upload".into());
    if name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "file: give a file name of at most 255 bytes without control characters".into(),
        ));
    }
    if respond_async(&headers) {
        let clock = state.clock.as_ref();
        let id = start_file(
            &state.store,
            &who,
            &key,
            &saved.definition,
            &name,
            &body,
            clock,
        )
        .await?;
        let started = imports::get_run(&state.store, &who, id).await?;
        tokio::spawn(async move {
            let clock = state.clock.as_ref();
            if let Err(e) = read_file(&state.store, &who, id, &saved.definition, &body, clock).await
            {
                tracing::error!(import = id, error = %e, "an import answered at once failed");
            }
        });
        return Ok((
            StatusCode::ACCEPTED,
            [
                (LOCATION, format!("/api/imports/{id}")),
                (
                    axum::http::HeaderName::from_static("preference-applied"),
                    "respond-async".to_string(),
                ),
            ],
            Json(started),
        )
            .into_response());
    }
    let run = to_the_end(async move {
        Ok(run_file(
            &state.store,
            &who,
            &key,
            &saved.definition,
            &name,
            &body,
            state.clock.as_ref(),
        )
        .await?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

/// A directory or SFTP flow's files, fetched now rather than at its scheduled time.
async fn fetch(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let saved = imports::get(&state.store, &who, &key).await?;
    let runs = to_the_end(async move {
        fetching::fetch(
            &state.store,
            &who,
            &key,
            &saved.definition,
            state.runtime.transfers(),
            state.clock.as_ref(),
        )
        .await
        .map_err(fetch_error)
    })
    .await?;
    Ok(Json(json!({"runs": runs})))
}

/// The partner's failures are 502; the flow's or the operator's, 400.
fn fetch_error(e: FetchError) -> ApiError {
    match e {
        FetchError::Storage(e) => ApiError::Storage(e),
        FetchError::Sftp(
            e @ (SftpError::Connect { .. }
            | SftpError::Timeout { .. }
            | SftpError::Session { .. }
            | SftpError::File { .. }),
        ) => ApiError::Upstream(e.to_string()),
        FetchError::Http(
            e @ (HttpPullError::Request { .. }
            | HttpPullError::Status { .. }
            | HttpPullError::TooLarge { .. }),
        ) => ApiError::Upstream(e.to_string()),
        other => ApiError::BadRequest(other.to_string()),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    flow: Option<String>,
    limit: Option<u64>,
}

async fn history(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<impl IntoResponse> {
    let runs = imports::history(
        &state.store,
        &who,
        query.flow.as_deref(),
        query.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(json!({"imports": runs})))
}

async fn read_run(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(imports::get_run(&state.store, &who, id).await?))
}

#[derive(Deserialize)]
struct RejectedQuery {
    /// `csv` (default: UTF-8 with a byte-order mark, which Excel opens as UTF-8) or `json`.
    format: Option<String>,
}

async fn rejected(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
    Query(query): Query<RejectedQuery>,
) -> ApiResult<axum::response::Response> {
    let rows = imports::rejects(&state.store, &who, id).await?;
    match query.format.as_deref().unwrap_or("csv") {
        "json" => Ok(Json(json!({"rejected": rows})).into_response()),
        "csv" => {
            let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
            let written = out
                .write_record(["line", "field", "reason", "row"])
                .and_then(|()| {
                    rows.iter().try_for_each(|r| {
                        out.write_record([
                            r.line.to_string().as_str(),
                            r.field.as_deref().unwrap_or(""),
                            &inert(&r.reason),
                            &inert(&r.raw),
                        ])
                    })
                });
            let bytes = written
                .map_err(|e| e.to_string())
                .and_then(|()| out.into_inner().map_err(|e| e.to_string()))
                .map_err(|e| ApiError::BadRequest(format!("the file could not be written: {e}")))?;
            Ok((
                [
                    (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        CONTENT_DISPOSITION,
                        format!("attachment; filename=\"import-{id}-rejected.csv\""),
                    ),
                ],
                bytes,
            )
                .into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "format: {other:?} is not csv or json"
        ))),
    }
}

/// Partner text written into a file people open in Excel: a cell that Excel would read as a
/// formula (`=`, `+`, `-`, `@`, tab, carriage return first) is kept as text.
fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respond_async_is_one_preference_among_others() {
        let prefer = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append("prefer", v.parse().unwrap());
            }
            respond_async(&headers)
        };
        assert!(prefer(&["respond-async"]));
        assert!(prefer(&["return=minimal, Respond-Async"]));
        assert!(prefer(&["wait=10", "respond-async"]));
        assert!(!prefer(&[]));
        assert!(!prefer(&["return=representation"]));
        assert!(!prefer(&["respond-asynchronously"]));
    }
}
