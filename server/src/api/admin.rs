//! `/api/admin`: users, roles and the access log; administrators only.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tabiji_model::Rights;
use tabiji_storage::Principal;
use tabiji_storage::audit::{self, Entry};
use tabiji_storage::auth::{self as users, NewUser};

use super::{Caller, JsonBody};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users).post(create_user))
        .route("/api/admin/roles", get(list_roles).post(create_role))
        .route("/api/admin/roles/{name}", put(update_role))
        .route("/api/admin/access-log", get(access_log))
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
        .map(|(u, roles)| json!({"id": u.id, "login": u.login, "display_name": u.display_name, "admin": u.is_admin, "active": u.active, "roles": roles}))
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

async fn create_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<CreateUser>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "create users").await?;
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
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "create_user",
            entity: None,
            record_id: Some(created.id),
            outcome: "ok",
            detail: Some(created.login.clone()),
        },
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
    let role = users::create_role(
        state.store.db(),
        &body.name,
        &body.description,
        &body.rights,
    )
    .await?;
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "create_role",
            entity: None,
            record_id: Some(role.id),
            outcome: "ok",
            detail: Some(role.name.clone()),
        },
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
    let role = users::update_role_rights(state.store.db(), &name, &body.rights).await?;
    audit::record(
        state.store.db(),
        &who,
        Entry {
            action: "update_role",
            entity: None,
            record_id: Some(role.id),
            outcome: "ok",
            detail: Some(role.name.clone()),
        },
    )
    .await?;
    Ok(Json(
        json!({"id": role.id, "name": role.name, "rights": body.rights}),
    ))
}

#[derive(Deserialize)]
struct LogQuery {
    login: Option<String>,
    limit: Option<u64>,
}

async fn access_log(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<LogQuery>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&state, &who, "read the access log").await?;
    let entries: Vec<_> = audit::recent(state.store.db(), q.login.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?
        .into_iter()
        .map(|e| json!({"id": e.id, "at": e.at, "login": e.login, "action": e.action, "entity": e.entity, "record_id": e.record_id, "outcome": e.outcome, "detail": e.detail}))
        .collect();
    Ok(Json(json!({"entries": entries})))
}
