//! `/api/exports`: scheduled exports (DI-4): jobs that make a file of records or of an
//! aggregate on a schedule and deliver it to a folder or an SFTP server, run now on demand, and
//! the history of their runs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tabiji_engine::export::run_job;
use tabiji_model::export::ExportJob;
use tabiji_storage::export_jobs;

use super::{Caller, JsonBody, Path, Query, to_the_end};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/exports", get(history))
        .route("/api/exports/check", post(check))
        .route("/api/exports/jobs", get(list_jobs))
        .route(
            "/api/exports/jobs/{key}",
            get(read_job).put(save_job).delete(delete_job),
        )
        .route("/api/exports/jobs/{key}/run", post(run_now))
}

async fn check(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(job): JsonBody<ExportJob>,
) -> ApiResult<impl IntoResponse> {
    // The answer describes the entity's fields: only for those who may export from it.
    state.store.require_export_job(&who, &job).await?;
    export_jobs::check(&state.store, &job).await?;
    Ok(Json(json!({"valid": true})))
}

async fn list_jobs(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"jobs": export_jobs::list(&state.store, &who).await?}),
    ))
}

async fn read_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(export_jobs::get(&state.store, &who, &key).await?))
}

async fn save_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(job): JsonBody<ExportJob>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        export_jobs::save(&state.store, &who, &key, &job, state.clock.now()).await?,
    ))
}

async fn delete_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    export_jobs::delete(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes and delivers the job's file now, as the caller; the run (201), `status: failed` with
/// its `error` when the file could not be made or delivered.
async fn run_now(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let saved = export_jobs::get(&state.store, &who, &key).await?;
    let run = to_the_end(async move {
        Ok(run_job(
            &state.store,
            &who,
            &key,
            &saved.definition,
            state.clock.now(),
            state.runtime.transfers(),
            state.clock.as_ref(),
        )
        .await?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[derive(Deserialize)]
struct HistoryQuery {
    job: Option<String>,
    limit: Option<u64>,
}

async fn history(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<impl IntoResponse> {
    let runs = export_jobs::history(
        &state.store,
        &who,
        query.job.as_deref(),
        query.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(json!({"exports": runs})))
}
