//! `/api/data/{entity}`: records of every entity, one by one and in bulk.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_model::filter::Filter;
use tabiji_storage::actions::FilteredAction;
use tabiji_storage::aggregate::AggregateRequest;
use tabiji_storage::records::{ItemStatus, ListQuery};
use tabiji_storage::search::{SearchRequest, parse_zone};
use tabiji_storage::timeline::TimelineRequest;

use super::{Caller, JsonBody, Path, Query};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/data/{entity}", get(list).post(create))
        .route(
            "/api/data/{entity}/bulk",
            post(bulk_create)
                .put(bulk_upsert)
                .patch(bulk_update)
                .delete(bulk_delete),
        )
        .route("/api/data/{entity}/search", post(search))
        .route("/api/data/{entity}/count", post(count))
        .route("/api/data/{entity}/aggregate", post(aggregate))
        .route("/api/data/{entity}/filtered", post(act_on_filtered))
        .route(
            "/api/data/{entity}/{id}",
            get(read).patch(update).delete(delete),
        )
        .route("/api/data/{entity}/{id}/timeline", get(timeline))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineParams {
    before: Option<String>,
    limit: Option<u64>,
    /// Comma-separated source keys.
    sources: Option<String>,
}

/// `GET /api/data/{entity}/{id}/timeline`: the record's history rows and, for tourists, their
/// messages, events and flow runs, newest first.
async fn timeline(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((entity, id)): Path<(String, i64)>,
    Query(params): Query<TimelineParams>,
) -> ApiResult<impl IntoResponse> {
    let request = TimelineRequest {
        before: params.before,
        limit: params.limit,
        sources: params.sources.map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
    };
    let page = state
        .store
        .timeline(&who, &entity, id, &request, state.clock.now())
        .await?;
    Ok(Json(page))
}

#[derive(Deserialize)]
struct ListParams {
    after: Option<i64>,
    limit: Option<u64>,
    parent_id: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    Query(params): Query<ListParams>,
) -> ApiResult<impl IntoResponse> {
    let query = ListQuery {
        after: params.after,
        limit: params.limit,
        parent_id: params.parent_id,
    };
    Ok(Json(state.store.list(&who, &entity, &query).await?))
}

async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<impl IntoResponse> {
    let (record, status) = state.store.create(&who, &entity, &body).await?;
    let code = if status == ItemStatus::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(json!({"status": status, "record": record}))))
}

async fn read(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((entity, id)): Path<(String, i64)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.store.get(&who, &entity, id).await?))
}

async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((entity, id)): Path<(String, i64)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.store.update(&who, &entity, id, &body).await?))
}

async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((entity, id)): Path<(String, i64)>,
) -> ApiResult<impl IntoResponse> {
    state.store.delete(&who, &entity, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct BulkItems {
    items: Vec<Value>,
}

#[derive(Deserialize)]
struct BulkIds {
    ids: Vec<i64>,
}

fn non_empty<T>(items: &[T]) -> ApiResult<()> {
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "the list is empty: send at least one item".into(),
        ));
    }
    Ok(())
}

async fn bulk_create(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<BulkItems>,
) -> ApiResult<impl IntoResponse> {
    non_empty(&body.items)?;
    let results = state.store.bulk_create(&who, &entity, body.items).await?;
    Ok((StatusCode::CREATED, Json(json!({"results": results}))))
}

#[derive(Deserialize)]
struct UpsertParams {
    /// The unique field records are matched by (`email`, `member_no` …).
    key: Option<String>,
}

/// Most items one upsert takes (the body limit allows them).
const MAX_UPSERT_ITEMS: usize = 100_000;

/// Creates or changes records matched by a unique field: the good items are written, the
/// others come back with their index and reason (DI-12).
async fn bulk_upsert(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    Query(params): Query<UpsertParams>,
    JsonBody(body): JsonBody<BulkItems>,
) -> ApiResult<impl IntoResponse> {
    non_empty(&body.items)?;
    let Some(key) = params.key else {
        return Err(ApiError::BadRequest(
            "key: name the unique field to match records by, such as ?key=email".into(),
        ));
    };
    if body.items.len() > MAX_UPSERT_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "items: at most {MAX_UPSERT_ITEMS} per request; send the rest in another"
        )));
    }
    let tally = state
        .store
        .upsert_items(&who, &entity, &key, body.items)
        .await?;
    let rejected: Vec<Value> = tally
        .rejected
        .iter()
        .map(|r| json!({"index": r.line, "field": r.field, "reason": r.reason}))
        .collect();
    Ok(Json(json!({
        "created": tally.created,
        "updated": tally.updated,
        "unchanged": tally.unchanged,
        "merged": tally.merged,
        "rejected": rejected,
    })))
}

async fn bulk_update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<BulkItems>,
) -> ApiResult<impl IntoResponse> {
    non_empty(&body.items)?;
    let results = state.store.bulk_update(&who, &entity, &body.items).await?;
    Ok(Json(json!({"results": results})))
}

async fn bulk_delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<BulkIds>,
) -> ApiResult<impl IntoResponse> {
    non_empty(&body.ids)?;
    let results = state.store.bulk_delete(&who, &entity, &body.ids).await?;
    Ok(Json(json!({"results": results})))
}

/// Records matching a filter, sorted and paged (CF-4, CF-5).
async fn search(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<SearchRequest>,
) -> ApiResult<impl IntoResponse> {
    let now = state.clock.now();
    Ok(Json(state.store.search(&who, &entity, &body, now).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountRequest {
    #[serde(default)]
    filter: Option<Filter>,
    #[serde(default)]
    zone: Option<String>,
}

async fn count(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<CountRequest>,
) -> ApiResult<impl IntoResponse> {
    let zone = parse_zone(body.zone.as_deref())?;
    let filter = body.filter.unwrap_or(Filter::All(vec![]));
    let n = state
        .store
        .count_matching(&who, &entity, &filter, zone, state.clock.now())
        .await?;
    Ok(Json(json!({"count": n})))
}

/// Counts, sums, averages, minimums and maximums, grouped (CF-10).
async fn aggregate(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<AggregateRequest>,
) -> ApiResult<impl IntoResponse> {
    let now = state.clock.now();
    Ok(Json(
        state.store.aggregate(&who, &entity, &body, now).await?,
    ))
}

/// Sets fields, adds or removes choices, or deletes every record a filter matches (DM-2);
/// `"preview": true` only counts.
async fn act_on_filtered(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<FilteredAction>,
) -> ApiResult<impl IntoResponse> {
    let now = state.clock.now();
    Ok(Json(
        state
            .store
            .act_on_filtered(&who, &entity, &body, now)
            .await?,
    ))
}
