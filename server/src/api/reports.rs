//! `/api/reports` and `/api/dashboards` (CF-7, CF-8, MA-12, MA-17, PT-5): reports evaluated on
//! the server with the viewer's rights, dashboards of report widgets, and analyses (AN-3) kept
//! as output tables.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tabiji_storage::analyses::{self, SaveAnalysis};
use tabiji_storage::reports::{self, NewDashboard, NewReport, ReportDef};

use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/reports", get(list).post(create))
        .route("/api/reports/run", post(run))
        .route("/api/reports/{key}", get(read).put(replace).delete(delete))
        .route("/api/reports/{key}/data", get(data))
        .route("/api/analyses/tables", post(save_analysis))
        .route(
            "/api/dashboards",
            get(list_dashboards).post(create_dashboard),
        )
        .route(
            "/api/dashboards/{key}",
            get(show_dashboard)
                .put(replace_dashboard)
                .delete(delete_dashboard),
        )
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"reports": reports::list_reports(&state.store, &who).await?}),
    ))
}

async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewReport>,
) -> ApiResult<impl IntoResponse> {
    let report = reports::create_report(&state.store, &who, &body, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

async fn run(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<ReportDef>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        reports::run_unsaved(&state.store, &who, &body, state.clock.now()).await?,
    ))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(reports::get_report(&state.store, &who, &key).await?))
}

async fn replace(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<NewReport>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        reports::update_report(&state.store, &who, &key, &body, state.clock.now()).await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    reports::delete_report(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn data(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        reports::run_saved(&state.store, &who, &key, state.clock.now()).await?,
    ))
}

async fn list_dashboards(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"dashboards": reports::list_dashboards(&state.store, &who).await?}),
    ))
}

async fn create_dashboard(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewDashboard>,
) -> ApiResult<impl IntoResponse> {
    let dashboard = reports::create_dashboard(&state.store, &who, &body, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(dashboard)))
}

async fn show_dashboard(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        reports::show_dashboard(&state.store, &who, &key, state.clock.now()).await?,
    ))
}

async fn replace_dashboard(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<NewDashboard>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        reports::update_dashboard(&state.store, &who, &key, &body, state.clock.now()).await?,
    ))
}

async fn delete_dashboard(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    reports::delete_dashboard(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn save_analysis(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<SaveAnalysis>,
) -> ApiResult<impl IntoResponse> {
    let table = analyses::save(&state.store, &who, &body, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(table)))
}
