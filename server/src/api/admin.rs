//! `/api/admin`: users, roles, sessions and the access log; administrators only.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use tabiji_model::Rights;
use tabiji_storage::Principal;
use tabiji_storage::audit::{self, Entry};
use tabiji_storage::auth::{self as users, NewUser, UserChange};
use tabiji_storage::entities::access_log;
use tabiji_storage::search::parse_zone;
use tabiji_storage::sessions::{self, EndReason};

use super::{Caller, JsonBody, Path, Query};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users).post(create_user))
        .route("/api/admin/users/{login}", patch(update_user))
        .route("/api/admin/users/{login}/logout", post(log_off))
        .route("/api/admin/users/{login}/unlock", post(unlock))
        .route("/api/admin/sessions", get(list_sessions))
        .route("/api/admin/sessions/{id}", delete(end_session))
        .route("/api/admin/tokens", get(list_tokens))
        .route("/api/admin/tokens/{id}", delete(revoke_token))
        .route("/api/admin/roles", get(list_roles).post(create_role))
        .route("/api/admin/roles/{name}", put(update_role))
        .route("/api/admin/access-log", get(access_log))
        .route("/api/admin/access-log/export", get(export_access_log))
}

/// Logs an administrator's action on users, roles, sessions or the log itself.
async fn administered(
    state: &AppState,
    who: &Principal,
    action: &'static str,
    record_id: Option<i64>,
    detail: Option<String>,
) -> ApiResult<()> {
    let entry = Entry {
        action,
        entity: None,
        record_id,
        outcome: "ok",
        detail,
    };
    Ok(audit::record(state.store.db(), who, entry).await?)
}

pub(super) async fn require_admin(
    state: &AppState,
    who: &Principal,
    what: &'static str,
) -> ApiResult<()> {
    if who.is_admin() {
        return Ok(());
    }
    audit::record(
        state.store.db(),
        who,
        Entry {
            action: what,
            entity: None,
            record_id: None,
            outcome: "denied",
            detail: None,
        },
    )
    .await?;
    Err(ApiError::AdminOnly(what))
}

async fn list_users(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "list users").await?;
    let users: Vec<_> = users::list_users(state.store.db())
        .await?
        .into_iter()
        .map(|(u, roles)| {
            // The user's own rights, as granted (their roles' are on the roles).
            let rights: Rights = serde_json::from_str(&u.rights).unwrap_or_default();
            json!({"id": u.id, "login": u.login, "display_name": u.display_name, "admin": u.is_admin,
                   "active": u.active, "roles": roles, "rights": rights})
        })
        .collect();
    Ok(Json(json!({"users": users})))
}

#[derive(Deserialize)]
struct CreateUser {
    login: String,
    #[serde(default)]
    display_name: String,
    password: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    rights: Rights,
}

/// Refuses record filters that cannot be applied, before anything is stored.
fn check_rights(state: &AppState, rights: &Rights) -> ApiResult<()> {
    tabiji_storage::scope::check_record_filters(&state.store.schemas(), rights)?;
    Ok(())
}

async fn create_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<CreateUser>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "create users").await?;
    check_rights(&state, &body.rights)?;
    let created = users::create_user(
        state.store.db(),
        NewUser {
            login: body.login,
            display_name: body.display_name,
            password: body.password,
            is_admin: body.admin,
            roles: body.roles,
            rights: body.rights,
        },
    )
    .await?;
    administered(
        &state,
        &who,
        "create_user",
        Some(created.id),
        Some(created.login.clone()),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": created.id, "login": created.login})),
    ))
}

async fn list_roles(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "list roles").await?;
    let mut roles = Vec::new();
    for r in users::list_roles(state.store.db()).await? {
        let rights: Rights = serde_json::from_str(&r.rights).unwrap_or_default();
        roles.push(
            json!({"id": r.id, "name": r.name, "description": r.description, "rights": rights}),
        );
    }
    Ok(Json(json!({"roles": roles})))
}

#[derive(Deserialize)]
struct CreateRole {
    name: String,
    #[serde(default)]
    description: String,
    rights: Rights,
}

async fn create_role(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<CreateRole>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "create roles").await?;
    check_rights(&state, &body.rights)?;
    let role = users::create_role(
        state.store.db(),
        &body.name,
        &body.description,
        &body.rights,
    )
    .await?;
    administered(
        &state,
        &who,
        "create_role",
        Some(role.id),
        Some(role.name.clone()),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": role.id, "name": role.name})),
    ))
}

#[derive(Deserialize)]
struct UpdateRole {
    rights: Rights,
}

async fn update_role(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UpdateRole>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "change roles").await?;
    check_rights(&state, &body.rights)?;
    let role = users::update_role_rights(state.store.db(), &name, &body.rights).await?;
    administered(
        &state,
        &who,
        "update_role",
        Some(role.id),
        Some(role.name.clone()),
    )
    .await?;
    Ok(Json(
        json!({"id": role.id, "name": role.name, "rights": body.rights}),
    ))
}

#[derive(Deserialize)]
struct UserUpdate {
    display_name: Option<String>,
    admin: Option<bool>,
    active: Option<bool>,
    roles: Option<Vec<String>>,
    rights: Option<Rights>,
    password: Option<String>,
}

/// Changes a user: name, administrator flag, enabled or not, roles, own rights, password.
async fn update_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(login): Path<String>,
    JsonBody(body): JsonBody<UserUpdate>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "change users").await?;
    if let Some(rights) = &body.rights {
        check_rights(&state, rights)?;
    }
    let mut changed: Vec<&str> = Vec::new();
    for (name, given) in [
        ("display_name", body.display_name.is_some()),
        ("admin", body.admin.is_some()),
        ("active", body.active.is_some()),
        ("roles", body.roles.is_some()),
        ("rights", body.rights.is_some()),
        ("password", body.password.is_some()),
    ] {
        if given {
            changed.push(name);
        }
    }
    let updated = users::update_user(
        state.store.db(),
        &login,
        UserChange {
            display_name: body.display_name,
            admin: body.admin,
            active: body.active,
            roles: body.roles,
            rights: body.rights,
            password: body.password,
        },
        state.clock.now(),
    )
    .await?;
    administered(
        &state,
        &who,
        "update_user",
        Some(updated.id),
        Some(format!("{}: {}", updated.login, changed.join(", "))),
    )
    .await?;
    Ok(Json(
        json!({"id": updated.id, "login": updated.login, "display_name": updated.display_name, "admin": updated.is_admin, "active": updated.active}),
    ))
}

async fn user_named(
    state: &AppState,
    login: &str,
) -> ApiResult<tabiji_storage::entities::user::Model> {
    users::find_user(state.store.db(), login)
        .await?
        .ok_or_else(|| {
            ApiError::Storage(tabiji_storage::StorageError::NoSuch {
                kind: "user",
                name: login.to_string(),
            })
        })
}

/// Forced log-off: every session of the user ends at once.
async fn log_off(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(login): Path<String>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "log users off").await?;
    let user = user_named(&state, &login).await?;
    let ended = sessions::end_for_user(
        state.store.db(),
        user.id,
        EndReason::EndedByAdministrator,
        state.clock.now(),
    )
    .await?;
    administered(
        &state,
        &who,
        "log_off",
        Some(user.id),
        Some(format!("{}: {ended} session(s)", user.login)),
    )
    .await?;
    Ok(Json(json!({"login": user.login, "ended_sessions": ended})))
}

/// Lifts the lock repeated wrong passwords put on a login.
async fn unlock(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(login): Path<String>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "unlock logins").await?;
    let was_locked = sessions::unlock(state.store.db(), &login).await?;
    administered(
        &state,
        &who,
        "unlock",
        None,
        Some(login.chars().take(64).collect()),
    )
    .await?;
    Ok(Json(json!({"login": login, "was_locked": was_locked})))
}

#[derive(Deserialize)]
struct SessionQuery {
    login: Option<String>,
}

async fn list_sessions(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: axum::http::HeaderMap,
    Query(q): Query<SessionQuery>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "list sessions").await?;
    let db = state.store.db();
    let user_id = match &q.login {
        Some(login) => Some(user_named(&state, login).await?.id),
        None => None,
    };
    let current = super::auth::current_session(db, &headers).await?;
    let list: Vec<_> = sessions::live_sessions(db, user_id, state.clock.now())
        .await?
        .iter()
        .map(|s| super::auth::describe_session(s, current))
        .collect();
    Ok(Json(json!({"sessions": list})))
}

/// Every user's API tokens, or one user's (`?login=`), newest first; never their secrets.
async fn list_tokens(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<SessionQuery>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "list API tokens").await?;
    let user_id = match &q.login {
        Some(login) => Some(user_named(&state, login).await?.id),
        None => None,
    };
    let tokens = users::tokens(state.store.db(), user_id, state.clock.now()).await?;
    Ok(Json(json!({"tokens": tokens})))
}

/// Revokes anyone's API token; it stops working at once.
async fn revoke_token(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    require_admin(&state, &who, "revoke API tokens").await?;
    let name = users::revoke_token(state.store.db(), id, None).await?;
    administered(&state, &who, "revoke_token", Some(id), Some(name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn end_session(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "end sessions").await?;
    let ended = sessions::end(
        state.store.db(),
        id,
        EndReason::EndedByAdministrator,
        state.clock.now(),
    )
    .await?;
    let Some(user_id) = ended else {
        return Err(ApiError::Storage(tabiji_storage::StorageError::NoSuch {
            kind: "live session",
            name: id.to_string(),
        }));
    };
    administered(
        &state,
        &who,
        "log_off",
        Some(user_id),
        Some(format!("session {id}")),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Access-log filters, as query parameters.
#[derive(Deserialize)]
struct LogQuery {
    login: Option<String>,
    action: Option<String>,
    entity: Option<String>,
    record_id: Option<i64>,
    outcome: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    before_id: Option<i64>,
    limit: Option<u64>,
}

impl LogQuery {
    fn search(&self) -> audit::Search {
        audit::Search {
            login: self.login.clone(),
            action: self.action.clone(),
            entity: self.entity.clone(),
            record_id: self.record_id,
            outcome: self.outcome.clone(),
            from: self.from,
            to: self.to,
            before_id: self.before_id,
        }
    }
}

fn describe_entry(e: &access_log::Model) -> serde_json::Value {
    json!({"id": e.id, "at": e.at, "login": e.login, "action": e.action, "entity": e.entity, "record_id": e.record_id, "outcome": e.outcome, "detail": e.detail})
}

/// The access log, newest first, a page at a time: `next_before_id` asks for the next page.
async fn access_log(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<LogQuery>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "read the access log").await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let found = audit::search(state.store.db(), &q.search(), limit).await?;
    let next = (found.len() as u64 == limit).then(|| found.last().map(|e| e.id));
    let entries: Vec<_> = found.iter().map(describe_entry).collect();
    Ok(Json(
        json!({"entries": entries, "next_before_id": next.flatten(), "kept_since": audit::kept_since(state.clock.now())}),
    ))
}

/// Rows per page read while exporting the access log.
const EXPORT_PAGE: u64 = 5_000;

/// The access log as CSV (UTF-8 with a byte-order mark, for Excel; times in Asia/Tokyo),
/// streamed a page at a time. The export itself is logged.
async fn export_access_log(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<LogQuery>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "export the access log").await?;
    let search = q.search();
    administered(&state, &who, "export_access_log", None, None).await?;
    let zone = parse_zone(None)?;
    let stamp = zone.local(state.clock.now()).format("%Y%m%d-%H%M");
    let store = state.store.clone();
    let header = Some(vec![
        "id",
        "at",
        "login",
        "action",
        "entity",
        "record_id",
        "outcome",
        "detail",
    ]);
    let chunks = stream::unfold(Some((search, header)), move |page| {
        let store = store.clone();
        async move {
            let (mut search, header) = page?;
            let mut start = Vec::with_capacity(1 << 20);
            if header.is_some() {
                // Excel reads a CSV file as UTF-8 only when it begins with a byte-order mark.
                start.extend_from_slice(b"\xEF\xBB\xBF");
            }
            let mut out = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(start);
            if let Some(names) = &header
                && let Err(e) = out.write_record(names)
            {
                return Some((Err(std::io::Error::other(e)), None));
            }
            let rows = match audit::search(store.db(), &search, EXPORT_PAGE).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "an access-log export stopped");
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            };
            for e in &rows {
                let at = zone.local(e.at).format("%Y-%m-%d %H:%M:%S").to_string();
                let record = [
                    e.id.to_string(),
                    at,
                    e.login.clone(),
                    e.action.clone(),
                    e.entity.clone().unwrap_or_default(),
                    e.record_id.map(|id| id.to_string()).unwrap_or_default(),
                    e.outcome.clone(),
                    e.detail.clone().unwrap_or_default(),
                ];
                if let Err(e) = out.write_record(&record) {
                    return Some((Err(std::io::Error::other(e)), None));
                }
            }
            let bytes = out.into_inner().map_err(|e| e.into_error()).ok()?;
            let more = rows.len() as u64 == EXPORT_PAGE;
            search.before_id = rows.last().map(|e| e.id);
            if bytes.is_empty() {
                return None;
            }
            Some((
                Ok::<_, std::io::Error>(bytes),
                more.then_some((search, None)),
            ))
        }
    });
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"access-log-{stamp}.csv\""),
            ),
        ],
        Body::from_stream(chunks),
    ))
}
