//! `/api/templates`, `/api/parts`, `/api/snippets`: message content (MA-1, MA-10). Each kind
//! lists, reads, checks, saves (a new version each time), lists versions and deletes; templates
//! preview for a contact (saved or a draft; as JSON, or the HTML as a page for the editor's
//! preview frame), snippets test-run for a contact.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tabiji_engine::personalise::{DraftError, Library};
use tabiji_model::Op;
use tabiji_model::content::{ContentError, ContentKind, Rendered};
use tabiji_model::flow::CONTACTS;
use tabiji_storage::auth::Principal;
use tabiji_storage::{ItemError, StorageError, content};

use super::{Caller, JsonBody, Path};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for (base, kind) in [
        ("/api/templates", ContentKind::Template),
        ("/api/parts", ContentKind::Part),
        ("/api/snippets", ContentKind::Snippet),
    ] {
        router = router
            .route(
                base,
                get(move |s: State<AppState>, c: Caller| list(kind, s, c)),
            )
            .route(
                &format!("{base}/check"),
                post(
                    move |s: State<AppState>, c: Caller, b: JsonBody<CheckBody>| {
                        check(kind, s, c, b)
                    },
                ),
            )
            .route(
                &format!("{base}/{{key}}"),
                get(move |s: State<AppState>, c: Caller, k: Path<String>| read(kind, s, c, k))
                    .put(
                        move |s: State<AppState>,
                              c: Caller,
                              k: Path<String>,
                              b: JsonBody<Value>| {
                            save(kind, s, c, k, b)
                        },
                    )
                    .delete(move |s: State<AppState>, c: Caller, k: Path<String>| {
                        delete(kind, s, c, k)
                    }),
            )
            .route(
                &format!("{base}/{{key}}/versions"),
                get(move |s: State<AppState>, c: Caller, k: Path<String>| versions(kind, s, c, k)),
            );
    }
    router
        .route("/api/templates/{key}/preview", post(preview))
        .route("/api/templates/{key}/preview.html", post(preview_page))
        .route("/api/snippets/run", post(run_snippet))
}

fn refused(problems: Vec<ContentError>) -> ApiError {
    ApiError::Storage(StorageError::Invalid(
        problems
            .into_iter()
            .map(|p| ItemError {
                index: None,
                field: Some(if p.at.is_empty() {
                    "definition".to_string()
                } else {
                    p.at
                }),
                code: p.code,
                message: p.message,
            })
            .collect(),
    ))
}

async fn library(state: &AppState) -> ApiResult<Arc<Library>> {
    Ok(state.runtime.content().library(&state.store).await?)
}

async fn list(
    kind: ContentKind,
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    let items = content::list(&state.store, &who, kind).await?;
    Ok(Json(json!({ "items": items })))
}

async fn read(
    kind: ContentKind,
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(content::get(&state.store, &who, kind, &key).await?))
}

async fn versions(
    kind: ContentKind,
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let versions = content::versions(&state.store, &who, kind, &key).await?;
    Ok(Json(json!({ "versions": versions })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    key: String,
    definition: Value,
}

/// Whether a definition would save as `key`: `{"valid": true}`, or 422 with each problem.
async fn check(
    kind: ContentKind,
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<CheckBody>,
) -> ApiResult<impl IntoResponse> {
    state
        .store
        .require(&who, kind.rights_entity(), Op::View)
        .await?;
    let problems = library(&state)
        .await?
        .check(kind, &body.key, &body.definition);
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    Ok(Json(json!({ "valid": true })))
}

async fn save(
    kind: ContentKind,
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(definition): JsonBody<Value>,
) -> ApiResult<impl IntoResponse> {
    // Rights first: someone who may not save learns nothing about the library from the check.
    let exists = content::get(&state.store, &Principal::system(), kind, &key)
        .await
        .is_ok();
    let op = if exists { Op::Edit } else { Op::Create };
    state.store.require(&who, kind.rights_entity(), op).await?;
    let problems = library(&state).await?.check(kind, &key, &definition);
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    let saved = content::save(
        &state.store,
        &who,
        kind,
        &key,
        &definition,
        state.clock.now(),
    )
    .await?;
    let status = if saved.version == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(saved)))
}

async fn delete(
    kind: ContentKind,
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    content::delete(&state.store, &who, kind, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whom to render for: a saved contact (read with the caller's rights: fields they may not
/// see are absent) or sample data given inline.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Subject {
    contact_id: Option<i64>,
    contact: Option<Map<String, Value>>,
}

async fn subject(
    state: &AppState,
    who: &Principal,
    subject: &Subject,
) -> ApiResult<Map<String, Value>> {
    match (subject.contact_id, &subject.contact) {
        (Some(id), None) => Ok(state.store.get(who, CONTACTS, id).await?),
        (None, Some(contact)) => Ok(contact.clone()),
        (None, None) => Ok(Map::new()),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give either contact_id (a saved tourist) or contact (sample data), not both".into(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    /// A definition not saved yet (the editor's draft), rendered as it would be once saved as
    /// the path's key; without it, the saved template.
    definition: Option<Value>,
    #[serde(flatten)]
    subject: Subject,
}

/// Renders the template for a contact: subject, preheader, HTML and text as sent.
async fn preview(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<PreviewBody>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!(rendered(&state, &who, key, body).await?)))
}

/// What the editor's preview frame posts: the draft as JSON text and the tourist, both
/// optional, as a form (a frame is filled by a form, not by a call).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewForm {
    #[serde(default)]
    definition: Option<String>,
    #[serde(default)]
    contact_id: Option<String>,
}

/// The policy of the HTML preview page: a message's HTML needs its inline styles and its
/// pictures, which the editor's own policy forbids (a frame written by the editor inherits
/// it); this page allows those and nothing else: no script, no form, no plugin, no access to
/// tabiji's origin, framed by tabiji only.
pub const PREVIEW_POLICY: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline'; \
     img-src https: http: data:; font-src https: data:; frame-ancestors 'self'";

/// The template's HTML for a tourist as a page of its own, under [`PREVIEW_POLICY`].
async fn preview_page(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    form: Result<axum::Form<PreviewForm>, axum::extract::rejection::FormRejection>,
) -> ApiResult<impl IntoResponse> {
    // Rights first: someone who may not preview learns nothing from how the form is refused.
    state
        .store
        .require(&who, ContentKind::Template.rights_entity(), Op::View)
        .await?;
    let axum::Form(form) = form.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let definition = match form.definition.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| ApiError::BadRequest(format!("definition: {e}")))?,
        ),
    };
    let contact_id = match form.contact_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("contact_id: {text:?} is not a tourist's id"))
        })?),
    };
    let body = PreviewBody {
        definition,
        subject: Subject {
            contact_id,
            contact: None,
        },
    };
    let rendered = rendered(&state, &who, key, body).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PREVIEW_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        rendered.html,
    ))
}

async fn rendered(
    state: &AppState,
    who: &Principal,
    key: String,
    body: PreviewBody,
) -> ApiResult<Rendered> {
    match &body.definition {
        Some(_) => {
            tabiji_model::content::check_key(&key).map_err(ApiError::BadRequest)?;
            state
                .store
                .require(who, ContentKind::Template.rights_entity(), Op::View)
                .await?;
        }
        None => {
            content::get(&state.store, who, ContentKind::Template, &key).await?;
        }
    }
    let contact = subject(state, who, &body.subject).await?;
    let library = library(state).await?;
    let rendered = tokio::task::spawn_blocking(move || match &body.definition {
        Some(definition) => library.render_draft(&key, definition, &contact),
        None => library.render(&key, &contact).map_err(DraftError::Render),
    })
    .await
    .map_err(|e| ApiError::Internal(format!("rendering stopped: {e}")))?;
    match rendered {
        Ok(rendered) => Ok(rendered),
        Err(DraftError::Invalid(problems)) => Err(refused(problems)),
        Err(DraftError::Render(e)) => Err(ApiError::Unprocessable {
            code: "render_failed",
            message: e.to_string(),
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    source: String,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(flatten)]
    subject: Subject,
}

/// Runs a snippet's source for a contact without saving it: `{"value": …}`, or 422 with the
/// error's `line` and `column`.
async fn run_snippet(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<RunBody>,
) -> ApiResult<impl IntoResponse> {
    // Running code is a developer's act: the right to write snippets, not only to read them.
    let entity = ContentKind::Snippet.rights_entity();
    if !(who.rights.allows(entity, Op::Create) || who.rights.allows(entity, Op::Edit)) {
        state.store.require(&who, entity, Op::Edit).await?;
    }
    if body.source.len() > tabiji_model::content::MAX_SOURCE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "source: at most {} bytes are accepted",
            tabiji_model::content::MAX_SOURCE_BYTES
        )));
    }
    let contact = subject(&state, &who, &body.subject).await?;
    let library = library(&state).await?;
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        library.try_snippet(&body.source, &contact, &body.args)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the snippet stopped: {e}")))?;
    let micros = started.elapsed().as_micros() as u64;
    match result {
        Ok(value) => Ok((
            StatusCode::OK,
            Json(json!({ "value": value, "micros": micros })),
        )),
        Err(e) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": {
                    "code": format!("script_{}", e.code),
                    "message": e.to_string(),
                    "line": e.line,
                    "column": e.column,
                }
            })),
        )),
    }
}
