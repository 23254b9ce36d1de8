//! `/api/lists`: static lists (CF-5): records added by id or by a filter, kept until removed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tabiji_model::filter::Filter;
use tabiji_storage::lists::{self, Members, NewList};

use super::segments::Evaluate;
use super::{Caller, JsonBody, Path, Query};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/lists", get(list).post(create))
        .route("/api/lists/{key}", get(read).delete(delete))
        .route("/api/lists/{key}/members", get(members).post(add))
        .route("/api/lists/{key}/members/remove", post(remove))
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"lists": lists::list(&state.store, &who).await?}),
    ))
}

async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewList>,
) -> ApiResult<impl IntoResponse> {
    let created = lists::create(&state.store, &who, &body, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(lists::get(&state.store, &who, &key).await?))
}

async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    lists::delete(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    Query(params): Query<Evaluate>,
) -> ApiResult<impl IntoResponse> {
    let list = lists::get(&state.store, &who, &key).await?;
    let request = params.search(Filter::List(key));
    Ok(Json(
        state
            .store
            .search(&who, &list.entity, &request, state.clock.now())
            .await?,
    ))
}

async fn add(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Members>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        lists::add(&state.store, &who, &key, &body, state.clock.now()).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Members>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        lists::remove(&state.store, &who, &key, &body, state.clock.now()).await?,
    ))
}
