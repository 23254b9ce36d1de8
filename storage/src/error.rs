use serde::Serialize;
use tabiji_model::FieldError;

/// One problem with one item of a request: which item (in bulk), which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub code: &'static str,
    pub message: String,
}

impl ItemError {
    pub fn field(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        ItemError {
            index: None,
            field: Some(field.to_string()),
            code,
            message: message.into(),
        }
    }

    pub fn at(mut self, index: Option<usize>) -> Self {
        self.index = index;
        self
    }
}

/// A flow's problem, as an error naming the node (or `entry`, `settings`) as its field.
impl From<tabiji_model::flow::FlowError> for ItemError {
    fn from(e: tabiji_model::flow::FlowError) -> Self {
        ItemError {
            index: None,
            field: Some(e.at),
            code: e.code,
            message: e.message,
        }
    }
}

impl From<FieldError> for ItemError {
    fn from(e: FieldError) -> Self {
        ItemError {
            index: None,
            field: Some(e.field),
            code: e.code,
            message: e.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no entity is called {0:?}")]
    UnknownEntity(String),
    #[error("{entity} {id} does not exist")]
    NotFound { entity: String, id: i64 },
    #[error("there is no {kind} {name:?}")]
    NoSuch { kind: &'static str, name: String },
    #[error("you may not {op} {entity}{}", field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Forbidden {
        entity: String,
        op: &'static str,
        field: Option<String>,
    },
    /// Writing the record would put it outside the caller's record rights.
    #[error(
        "you may only write {entity} records that match your record rights{}; this one would not",
        index.map(|i| format!(" (item {i})")).unwrap_or_default()
    )]
    OutsideRecords {
        entity: String,
        index: Option<usize>,
    },
    /// An operation that reaches every record of an entity, asked by a caller who may reach
    /// only some.
    #[error(
        "{what} reaches every {entity} record, and your record rights narrow {entity}; ask someone who may reach them all"
    )]
    NeedsEveryRecord { entity: String, what: &'static str },
    /// The caller's record rights cannot be applied any more (a field they test was removed).
    #[error(
        "your record rights on {entity} cannot be applied ({reason}); ask an administrator to correct them"
    )]
    RecordRightsUnusable { entity: String, reason: String },
    #[error("the request was refused: {}", summary(.0))]
    Invalid(Vec<ItemError>),
    #[error("the request conflicts with stored data: {}", summary(.0))]
    Conflict(Vec<ItemError>),
    #[error("wrong login id or password")]
    BadCredentials,
    /// Too many wrong passwords for this login in a short time.
    #[error(
        "too many failed sign-ins for this login id; try again after {} UTC, or ask an administrator to unlock it",
        until.format("%Y-%m-%d %H:%M:%S")
    )]
    Locked {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The account has a live session and the policy refuses a second one.
    #[error(
        "this account is already signed in elsewhere (last active {} UTC); sign out there first, or ask an administrator to end that session",
        last_seen.format("%Y-%m-%d %H:%M:%S")
    )]
    AlreadySignedIn {
        last_seen: chrono::DateTime<chrono::Utc>,
    },
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
}

fn summary(errors: &[ItemError]) -> String {
    errors
        .iter()
        .take(5)
        .map(|e| {
            let at = e.index.map(|i| format!("item {i}: ")).unwrap_or_default();
            let field = e
                .field
                .as_ref()
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            format!("{at}{field}{}", e.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl StorageError {
    pub fn invalid(error: ItemError) -> Self {
        StorageError::Invalid(vec![error])
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
