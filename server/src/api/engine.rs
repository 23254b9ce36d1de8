//! The running engine through HTTP: events in, contacts into API-entry flows, each flow's
//! counts, a contact's runs and their step log, and the outbox's dead letters.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_engine::runtime::{CONTACTS, IncomingEvent};
use tabiji_engine::simulate::Assume;
use tabiji_model::Op;
use tabiji_model::flow::Flow;
use tabiji_model::normalize::email as normalize_email;
use tabiji_storage::flows::{self, FLOWS};
use tabiji_storage::journeys;
use tabiji_storage::{ItemError, StorageError};

use super::{Caller, JsonBody, Path, Query};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The rights entity for posting events: `{"entities": {"events": {"ops": ["create"]}}}`.
pub const EVENTS: &str = "events";

/// Events per call.
const MAX_EVENTS: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/events", post(post_events))
        .route("/api/flows/{id}/runs", post(enter))
        .route("/api/flows/{id}/stats", get(stats))
        .route("/api/flows/{id}/simulate", post(simulate))
        .route("/api/runs", get(runs_of_contact))
        .route("/api/runs/{id}/steps", get(steps))
        .route("/api/deliveries", get(deliveries))
        .route("/api/deliveries/retry", post(retry))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    /// The sender's unique id for the event (deduplication key).
    id: Option<String>,
    contact_id: Option<i64>,
    email: Option<String>,
    name: Option<String>,
    delivery_id: Option<i64>,
    #[serde(default)]
    properties: Value,
    occurred_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct EventBatch {
    events: Vec<Value>,
}

fn rejected(index: usize, field: &str, code: &'static str, message: String) -> ItemError {
    ItemError::field(field, code, message).at(Some(index))
}

/// `POST /api/events`: `{"events": [{"id", "contact_id" | "email", "name", "delivery_id"?,
/// "properties"?, "occurred_at"?}]}`. Good events are kept and bad ones named, each by index.
async fn post_events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Caller(who): Caller,
    JsonBody(batch): JsonBody<EventBatch>,
) -> ApiResult<impl IntoResponse> {
    let ip = super::client_ip(&headers, peer, state.behind_proxy);
    if let Some(wait) = state.events_throttle.hit(ip, std::time::Instant::now()) {
        return Err(ApiError::RateLimited(wait));
    }
    state.store.require(&who, EVENTS, Op::Create).await?;
    if batch.events.len() > MAX_EVENTS {
        return Err(ApiError::BadRequest(format!(
            "send at most {MAX_EVENTS} events per call (got {})",
            batch.events.len()
        )));
    }
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(batch.events.len());
    for (i, raw) in batch.events.into_iter().enumerate() {
        let event: EventIn = match serde_json::from_value(raw) {
            Ok(e) => e,
            Err(e) => {
                errors.push(ItemError {
                    index: Some(i),
                    field: None,
                    code: "invalid_event",
                    message: e.to_string(),
                });
                continue;
            }
        };
        let key = event.id.clone().filter(|k| !k.trim().is_empty());
        let name = event.name.clone().filter(|n| !n.trim().is_empty());
        match (key, name) {
            (None, _) => errors.push(rejected(
                i,
                "id",
                "required",
                "each event needs the sender's unique id, so a resent event counts once".into(),
            )),
            (_, None) => errors.push(rejected(i, "name", "required", "name the event".into())),
            (Some(key), Some(name)) if event.contact_id.is_some() || event.email.is_some() => {
                parsed.push((i, key, name, event))
            }
            _ => errors.push(rejected(
                i,
                "contact_id",
                "required",
                "name the contact by contact_id or email".into(),
            )),
        }
    }
    let emails: Vec<String> = parsed
        .iter()
        .filter(|(_, _, _, e)| e.contact_id.is_none())
        .filter_map(|(_, _, _, e)| e.email.as_deref().and_then(|m| normalize_email(m).ok()))
        .collect();
    let conn = &state.store.db().conn;
    let by_email = journeys::contacts_by_email(conn, &emails)
        .await
        .map_err(StorageError::from)?;
    let ids: Vec<i64> = parsed
        .iter()
        .filter_map(|(_, _, _, e)| e.contact_id)
        .collect();
    let mut known = journeys::existing(conn, CONTACTS, &ids)
        .await
        .map_err(StorageError::from)?;
    let mut by_email = by_email;
    if state.store.scope_narrows(&who, CONTACTS)? {
        // A contact outside the caller's record rights is, to them, no contact.
        let named: Vec<i64> = known.iter().chain(by_email.values()).copied().collect();
        let reached = state
            .store
            .reachable(conn, &who, CONTACTS, &named, state.clock.now())
            .await?;
        known.retain(|id| reached.contains(id));
        by_email.retain(|_, id| reached.contains(id));
    }
    let mut events = Vec::with_capacity(parsed.len());
    for (i, key, name, e) in parsed {
        let contact = match (e.contact_id, &e.email) {
            (Some(id), _) if known.contains(&id) => id,
            (Some(id), _) => {
                errors.push(rejected(
                    i,
                    "contact_id",
                    "unknown_contact",
                    format!("there is no tourist {id}"),
                ));
                continue;
            }
            (None, Some(mail)) => match normalize_email(mail).ok().and_then(|m| by_email.get(&m)) {
                Some(id) => *id,
                None => {
                    errors.push(rejected(
                        i,
                        "email",
                        "unknown_contact",
                        format!("no tourist has the e-mail address {mail}"),
                    ));
                    continue;
                }
            },
            (None, None) => unreachable!("checked above"),
        };
        events.push(IncomingEvent {
            event_key: key,
            contact_id: contact,
            name,
            delivery_id: e.delivery_id,
            properties: e.properties,
            occurred_at: e.occurred_at,
        });
    }
    let report = state.runtime.ingest(events).await?;
    errors.sort_by_key(|e| e.index);
    Ok(Json(json!({
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": errors,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterRequest {
    contacts: Vec<i64>,
    /// Entries with the same key enter a contact once; defaults to one key per call.
    key: Option<String>,
}

/// `POST /api/flows/{id}/runs`: puts contacts into a flow whose entry is `api`.
async fn enter(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<EnterRequest>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, FLOWS, Op::Edit).await?;
    if body.contacts.len() > MAX_EVENTS {
        return Err(ApiError::BadRequest(format!(
            "enter at most {MAX_EVENTS} contacts per call"
        )));
    }
    state
        .store
        .require_reachable(&who, CONTACTS, &body.contacts, state.clock.now())
        .await?;
    let key = body
        .key
        .unwrap_or_else(|| state.clock.now().timestamp_micros().to_string());
    let report = state
        .runtime
        .enter_contacts(id, &body.contacts, &key)
        .await?;
    Ok(Json(report))
}

async fn stats(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, FLOWS, Op::View).await?;
    // Someone whose record rights narrow tourists counts only the tourists they reach.
    let reached = state
        .store
        .reached_contacts(&who, state.clock.now())
        .await?;
    let stats = journeys::flow_stats(&state.store.db().conn, id, &reached)
        .await
        .map_err(StorageError::from)?;
    Ok(Json(stats))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SimulateRequest {
    #[serde(default)]
    assume: Assume,
}

/// `POST /api/flows/{id}/simulate`: how the draft would run over today's contacts; nothing is
/// stored or sent.
async fn simulate(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<SimulateRequest>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, CONTACTS, Op::View).await?;
    state
        .store
        .require_every_record(&who, CONTACTS, "simulating a flow")
        .await?;
    let info = flows::get(&state.store, &who, id).await?;
    if !info.problems.is_empty() {
        return Err(StorageError::Invalid(
            info.problems.into_iter().map(ItemError::from).collect(),
        )
        .into());
    }
    let flow: Flow = serde_json::from_value(info.draft)
        .map_err(|e| ApiError::BadRequest(format!("the draft is not a flow: {e}")))?;
    let prediction = state.runtime.simulate(&flow, body.assume).await?;
    Ok(Json(prediction))
}

#[derive(Deserialize)]
struct RunsQuery {
    contact: i64,
}

async fn runs_of_contact(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<RunsQuery>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, FLOWS, Op::View).await?;
    state.store.require(&who, CONTACTS, Op::View).await?;
    state
        .store
        .require_reachable(&who, CONTACTS, &[q.contact], state.clock.now())
        .await?;
    let runs = journeys::runs_of_contact(&state.store.db().conn, q.contact, None, 1_000)
        .await
        .map_err(StorageError::from)?;
    let runs: Vec<Value> = runs
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "flow_id": r.flow_id, "version": r.version,
                "contact_id": r.contact_id, "entry_key": r.entry_key, "state": r.state,
                "node": r.node, "iteration": r.iteration, "outcome": r.outcome,
                "wake_at": r.wake_at.map(rfc3339),
                "entered_at": rfc3339(r.entered_at), "updated_at": rfc3339(r.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({"runs": runs})))
}

/// The engine keeps times as epoch milliseconds; the API speaks RFC 3339.
fn rfc3339(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

async fn steps(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, FLOWS, Op::View).await?;
    if state.store.scope_narrows(&who, CONTACTS)? {
        let contact = journeys::contact_of_run(&state.store.db().conn, id)
            .await
            .map_err(StorageError::from)?
            .ok_or(StorageError::NotFound {
                entity: "runs".into(),
                id,
            })?;
        state
            .store
            .require_reachable(&who, CONTACTS, &[contact], state.clock.now())
            .await?;
    }
    let steps = journeys::steps_of_run(&state.store.db().conn, id)
        .await
        .map_err(StorageError::from)?;
    let steps: Vec<Value> = steps
        .into_iter()
        .map(|(node, outcome, at)| {
            json!({"node": node, "outcome": outcome,
                   "at": rfc3339(at)})
        })
        .collect();
    Ok(Json(json!({"steps": steps})))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    status: String,
    flow: Option<i64>,
    limit: Option<u64>,
}

const STATUSES: [&str; 6] = [
    "pending",
    "sending",
    "sent",
    "dead",
    "unknown",
    "suppressed",
];

/// `GET /api/deliveries?status=dead`: the dead letters (or any other status), newest first.
async fn deliveries(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, FLOWS, Op::View).await?;
    state
        .store
        .require_every_record(&who, CONTACTS, "listing deliveries")
        .await?;
    if !STATUSES.contains(&q.status.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "status must be one of {}",
            STATUSES.join(", ")
        )));
    }
    let rows = journeys::deliveries_by_status(
        &state.store.db().conn,
        &q.status,
        q.flow,
        q.limit.unwrap_or(100).clamp(1, 1_000),
    )
    .await
    .map_err(StorageError::from)?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id, "run_id": d.run_id, "flow_id": d.flow_id, "node": d.node,
                "iteration": d.iteration, "contact_id": d.contact_id, "channel": d.channel,
                "template": d.template, "sender": d.sender, "status": d.status,
                "attempts": d.attempts, "next_attempt_at": rfc3339(d.next_attempt_at),
                "provider_ref": d.provider_ref, "error": d.error,
                "created_at": rfc3339(d.created_at), "updated_at": rfc3339(d.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({"deliveries": rows})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryRequest {
    ids: Vec<i64>,
}

/// `POST /api/deliveries/retry`: puts dead or unknown deliveries back in the queue.
async fn retry(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<RetryRequest>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, FLOWS, Op::Publish).await?;
    state
        .store
        .require_every_record(&who, CONTACTS, "retrying deliveries")
        .await?;
    let now = state.clock.now().timestamp_millis();
    let requeued = journeys::retry_deliveries(&state.store.db().conn, &body.ids, now)
        .await
        .map_err(StorageError::from)?;
    state.runtime.wake();
    Ok(Json(json!({"requeued": requeued})))
}
