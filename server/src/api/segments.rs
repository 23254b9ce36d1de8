//! `/api/segments`: saved segments (CF-4), their counts and their members.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tabiji_model::Op;
use tabiji_model::filter::Filter;
use tabiji_storage::search::{SearchRequest, Sort, parse_zone};
use tabiji_storage::segments::{self, NewSegment, SEGMENTS, SegmentChange};

use super::{Caller, JsonBody, Path, Query};
use crate::AppState;
use crate::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/segments", get(list).post(create))
        .route(
            "/api/segments/{key}",
            get(read).patch(update).delete(delete),
        )
        .route("/api/segments/{key}/count", get(count))
        .route("/api/segments/{key}/members", get(members))
}

async fn list(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        json!({"segments": segments::list(&state.store, &who).await?}),
    ))
}

async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewSegment>,
) -> ApiResult<impl IntoResponse> {
    let created = segments::create(&state.store, &who, &body, state.clock.now()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(segments::get(&state.store, &who, &key).await?))
}

async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<SegmentChange>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        segments::update(&state.store, &who, &key, &body, state.clock.now()).await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    segments::delete(&state.store, &who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of a saved set's records, as query parameters: `?sort=F&desc=true&limit=N&after=C`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Evaluate {
    zone: Option<String>,
    after: Option<String>,
    limit: Option<u64>,
    sort: Option<String>,
    #[serde(default)]
    desc: bool,
    #[serde(default)]
    count: bool,
}

impl Evaluate {
    pub(super) fn search(self, filter: Filter) -> SearchRequest {
        SearchRequest {
            filter: Some(filter),
            sort: self.sort.map(|field| Sort {
                field,
                desc: self.desc,
            }),
            after: self.after,
            limit: self.limit,
            count: self.count,
            zone: self.zone,
        }
    }
}

async fn count(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    Query(params): Query<Evaluate>,
) -> ApiResult<impl IntoResponse> {
    let segment = segments::get(&state.store, &who, &key).await?;
    let zone = parse_zone(params.zone.as_deref())?;
    let n = state
        .store
        .count_matching(
            &who,
            &segment.entity,
            &Filter::Segment(key),
            zone,
            state.clock.now(),
        )
        .await?;
    Ok(Json(json!({"count": n})))
}

async fn members(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    Query(params): Query<Evaluate>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, SEGMENTS, Op::View).await?;
    let segment = segments::get(&state.store, &who, &key).await?;
    let request = params.search(Filter::Segment(key));
    Ok(Json(
        state
            .store
            .search(&who, &segment.entity, &request, state.clock.now())
            .await?,
    ))
}
