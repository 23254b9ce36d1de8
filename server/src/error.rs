//! Every failure the API reports: a status, a stable `code`, a message a person can act on, and
//! for bad input the list of items and fields concerned.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tabiji_engine::RuntimeError;
use tabiji_storage::sessions::EndReason;
use tabiji_storage::{ItemError, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "sign in first: send a session cookie (POST /api/auth/login) or an Authorization: Bearer token"
    )]
    Unauthenticated,
    /// The session cookie belongs to a session that has ended, for the reason given.
    #[error("{}; sign in again", .0.explain())]
    SessionEnded(EndReason),
    /// Too many attempts from one address in a short time.
    #[error("too many attempts from this address; wait {} seconds", .0.as_secs().max(1))]
    TooManyAttempts(std::time::Duration),
    /// Too many requests from one address to a public or partner endpoint.
    #[error("too many requests from this address; wait {} seconds", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    #[error("only administrators may {0}")]
    AdminOnly(&'static str),
    /// A browser sent a write from another site or origin (cross-site request forgery).
    #[error(
        "this request came from another origin ({0}); tabiji accepts writes signed in by cookie only from its own pages"
    )]
    CrossOrigin(String),
    #[error("the request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("{0}")]
    BadRequest(String),
    /// A partner's server (an SFTP source) could not be reached or failed part-way.
    #[error("{0}")]
    Upstream(String),
    /// Well-formed input the request could not be carried out with (a template that does not
    /// render for the contact given), under its own code.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// Work that should not fail did (a task panicked); logged, not shown.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Engine(RuntimeError),
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Storage(e) => ApiError::Storage(e),
            RuntimeError::Database(e) => ApiError::Storage(StorageError::Database(e)),
            other => ApiError::Engine(other),
        }
    }
}

/// What a caller is told while the database cannot be reached (restarting, say). A write
/// that got this answer may or may not have been stored: writes keyed by a transaction id
/// or an e-mail address can be sent again safely.
pub const DATABASE_UNAVAILABLE: &str = "the database cannot be reached just now (restarting, down or too busy); the request may not have been carried out";

/// Seconds a caller should wait before trying again after [`DATABASE_UNAVAILABLE`].
pub const DATABASE_RETRY_AFTER: u64 = 5;

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::SessionEnded(_) => (StatusCode::UNAUTHORIZED, "session_ended"),
            ApiError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::AdminOnly(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::CrossOrigin(_) => (StatusCode::FORBIDDEN, "cross_origin"),
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Engine(e) => match e {
                RuntimeError::NotPublished(_) => (StatusCode::NOT_FOUND, "not_published"),
                RuntimeError::NotActive(_) => (StatusCode::CONFLICT, "flow_not_active"),
                RuntimeError::NotApiEntry { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "not_api_entry")
                }
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::Storage(e) => match e {
                StorageError::UnknownEntity(_) => (StatusCode::NOT_FOUND, "unknown_entity"),
                StorageError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
                StorageError::NoSuch { .. } => (StatusCode::NOT_FOUND, "not_found"),
                StorageError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
                StorageError::OutsideRecords { .. } => {
                    (StatusCode::FORBIDDEN, "outside_your_records")
                }
                StorageError::NeedsEveryRecord { .. } => {
                    (StatusCode::FORBIDDEN, "needs_every_record")
                }
                StorageError::RecordRightsUnusable { .. } => {
                    (StatusCode::FORBIDDEN, "record_rights_unusable")
                }
                StorageError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
                StorageError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                StorageError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
                StorageError::Locked { .. } => (StatusCode::TOO_MANY_REQUESTS, "login_locked"),
                StorageError::AlreadySignedIn { .. } => (StatusCode::CONFLICT, "already_signed_in"),
                StorageError::Database(e) if tabiji_storage::db::is_unreachable(e) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
                }
                StorageError::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let (message, details): (String, &[ItemError]) = match &self {
            ApiError::Engine(e @ (RuntimeError::BadVersion { .. } | RuntimeError::Database(_))) => {
                tracing::error!(error = %e, "engine error");
                (
                    "the server could not complete the request; it has been logged".into(),
                    &[],
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                (
                    "the server could not complete the request; it has been logged".into(),
                    &[],
                )
            }
            ApiError::Storage(StorageError::Database(e))
                if tabiji_storage::db::is_unreachable(e) =>
            {
                tracing::warn!(error = %e, "database unreachable");
                (
                    format!("{DATABASE_UNAVAILABLE}; try again in {DATABASE_RETRY_AFTER} seconds"),
                    &[],
                )
            }
            ApiError::Storage(StorageError::Database(e)) => {
                // The database's words may name tables or values; they go to the log, not out.
                tracing::error!(error = %e, "database error");
                (
                    "the server could not complete the request; it has been logged".into(),
                    &[],
                )
            }
            ApiError::Storage(StorageError::Invalid(items) | StorageError::Conflict(items)) => {
                (self.to_string(), items)
            }
            _ => (self.to_string(), &[]),
        };
        let field = match &self {
            ApiError::Storage(StorageError::Forbidden { field, .. }) => field.clone(),
            _ => None,
        };
        let mut body = json!({"error": {"code": code, "message": message}});
        if !details.is_empty() {
            body["error"]["details"] = json!(details);
        }
        if let Some(field) = field {
            body["error"]["field"] = json!(field);
        }
        if let ApiError::SessionEnded(reason) = &self {
            body["error"]["reason"] = json!(reason.code());
        }
        let retry_after = match &self {
            ApiError::TooManyAttempts(wait) | ApiError::RateLimited(wait) => {
                Some(wait.as_secs().max(1))
            }
            ApiError::Storage(StorageError::Locked { until }) => Some(
                (*until - chrono::Utc::now())
                    .num_seconds()
                    .max(1)
                    .unsigned_abs(),
            ),
            ApiError::Storage(StorageError::Database(_))
                if status == StatusCode::SERVICE_UNAVAILABLE =>
            {
                Some(DATABASE_RETRY_AFTER)
            }
            _ => None,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
