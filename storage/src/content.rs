//! Templates, parts and snippets (MA-1, MA-10), saved under a key per kind. Every save is a
//! new version: the current one is what sends use, the earlier ones stay readable (and can be
//! saved again to roll back).
//!
//! Rights: templates and parts are guarded by the `templates` entity, snippets (code) by
//! `snippets`: view reads, create saves a new key, edit saves a new version, delete removes
//! the key (its versions stay). Whether a definition compiles is checked by the engine before
//! it is saved here.

use crate::db::begin_write;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::Serialize;
use serde_json::Value as Json;
use tabiji_model::Op;
use tabiji_model::content::{ContentKind, check_key};

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;

fn col(name: &str) -> Alias {
    Alias::new(name)
}

const CURRENT: &str = "sys_content";
const VERSIONS: &str = "sys_content_versions";

/// The current version of a template, part or snippet.
#[derive(Debug, Clone, Serialize)]
pub struct Content {
    pub kind: ContentKind,
    pub key: String,
    pub version: i64,
    pub definition: Json,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// One saved version.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version: i64,
    pub definition: Json,
    pub saved_by: String,
    pub saved_at: DateTime<Utc>,
}

fn no_such(kind: ContentKind, key: &str) -> StorageError {
    StorageError::NoSuch {
        kind: kind.as_str(),
        name: key.to_string(),
    }
}

fn definition(row: &QueryResult) -> Result<Json> {
    let text: String = row.try_get("", "definition")?;
    serde_json::from_str(&text).map_err(|e| {
        StorageError::Database(sea_orm::DbErr::Custom(format!(
            "stored content does not read back: {e}"
        )))
    })
}

fn read_current(row: &QueryResult) -> Result<Content> {
    let kind: String = row.try_get("", "kind")?;
    Ok(Content {
        kind: ContentKind::parse(&kind).ok_or_else(|| {
            StorageError::Database(sea_orm::DbErr::Custom(format!(
                "unknown content kind {kind:?}"
            )))
        })?,
        key: row.try_get("", "key")?,
        version: row.try_get("", "version")?,
        definition: definition(row)?,
        created_by: row.try_get("", "created_by")?,
        created_at: row.try_get("", "created_at")?,
        updated_by: row.try_get("", "updated_by")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

const CURRENT_COLUMNS: [&str; 8] = [
    "kind",
    "key",
    "version",
    "definition",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
];

async fn select(
    conn: &impl ConnectionTrait,
    kind: Option<ContentKind>,
    key: Option<&str>,
) -> Result<Vec<Content>> {
    let mut q = Query::select();
    q.columns(CURRENT_COLUMNS.map(col))
        .from(col(CURRENT))
        .order_by(col("kind"), Order::Asc)
        .order_by(col("key"), Order::Asc);
    if let Some(kind) = kind {
        q.and_where(Expr::col(col("kind")).eq(kind.as_str()));
    }
    if let Some(key) = key {
        q.and_where(Expr::col(col("key")).eq(key));
    }
    conn.query_all(&q).await?.iter().map(read_current).collect()
}

/// Saves `definition` as the next version of `key` (the first, for a new key). The caller
/// has checked it compiles.
pub async fn save(
    store: &Store,
    who: &Principal,
    kind: ContentKind,
    key: &str,
    definition: &Json,
    now: DateTime<Utc>,
) -> Result<Content> {
    check_key(key).map_err(|m| StorageError::invalid(ItemError::field("key", "invalid_key", m)))?;
    let entity = kind.rights_entity();
    let existing = select(&store.db().conn, Some(kind), Some(key)).await?;
    let op = if existing.is_empty() {
        Op::Create
    } else {
        Op::Edit
    };
    store.require(who, entity, op).await?;

    let txn = begin_write(&store.db().conn).await?;
    let last = Query::select()
        .expr(Func::max(Expr::col(col("version"))))
        .from(col(VERSIONS))
        .and_where(Expr::col(col("kind")).eq(kind.as_str()))
        .and_where(Expr::col(col("key")).eq(key))
        .to_owned();
    let last: Option<i64> = match txn.query_one(&last).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => None,
    };
    let version = last.unwrap_or(0) + 1;
    let text = definition.to_string();
    let insert_version = Query::insert()
        .into_table(col(VERSIONS))
        .columns(
            [
                "kind",
                "key",
                "version",
                "definition",
                "saved_by",
                "saved_at",
            ]
            .map(col),
        )
        .values_panic([
            kind.as_str().into(),
            key.into(),
            version.into(),
            text.clone().into(),
            who.login.as_str().into(),
            now.into(),
        ])
        .to_owned();
    txn.execute(&insert_version).await.map_err(|e| {
        if e.to_string().to_lowercase().contains("unique") {
            StorageError::Conflict(vec![ItemError::field(
                "key",
                "saved_meanwhile",
                format!(
                    "{key} was saved by someone else at the same moment: load it and save again"
                ),
            )])
        } else {
            e.into()
        }
    })?;
    let upsert = Query::insert()
        .into_table(col(CURRENT))
        .columns(CURRENT_COLUMNS.map(col))
        .values_panic([
            kind.as_str().into(),
            key.into(),
            version.into(),
            text.into(),
            who.login.as_str().into(),
            now.into(),
            who.login.as_str().into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::columns([col("kind"), col("key")])
                .update_columns(["version", "definition", "updated_by", "updated_at"].map(col))
                .to_owned(),
        )
        .to_owned();
    txn.execute(&upsert).await?;
    let saved = select(&txn, Some(kind), Some(key))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| no_such(kind, key))?;
    txn.commit().await?;
    store
        .log(
            who,
            if version == 1 { "create" } else { "edit" },
            entity,
            None,
            "ok",
            Some(format!("{} {key} v{version}", kind.as_str())),
        )
        .await?;
    Ok(saved)
}

pub async fn get(store: &Store, who: &Principal, kind: ContentKind, key: &str) -> Result<Content> {
    store.require(who, kind.rights_entity(), Op::View).await?;
    select(&store.db().conn, Some(kind), Some(key))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| no_such(kind, key))
}

pub async fn list(store: &Store, who: &Principal, kind: ContentKind) -> Result<Vec<Content>> {
    store.require(who, kind.rights_entity(), Op::View).await?;
    select(&store.db().conn, Some(kind), None).await
}

/// Every version of `key`, newest first (also of a deleted key).
pub async fn versions(
    store: &Store,
    who: &Principal,
    kind: ContentKind,
    key: &str,
) -> Result<Vec<Version>> {
    store.require(who, kind.rights_entity(), Op::View).await?;
    let q = Query::select()
        .columns(["version", "definition", "saved_by", "saved_at"].map(col))
        .from(col(VERSIONS))
        .and_where(Expr::col(col("kind")).eq(kind.as_str()))
        .and_where(Expr::col(col("key")).eq(key))
        .order_by(col("version"), Order::Desc)
        .to_owned();
    let rows = store.db().conn.query_all(&q).await?;
    if rows.is_empty() {
        return Err(no_such(kind, key));
    }
    rows.iter()
        .map(|row| {
            Ok(Version {
                version: row.try_get("", "version")?,
                definition: definition(row)?,
                saved_by: row.try_get("", "saved_by")?,
                saved_at: row.try_get("", "saved_at")?,
            })
        })
        .collect()
}

/// Removes `key`; its versions stay readable, and saving the key again continues them.
pub async fn delete(store: &Store, who: &Principal, kind: ContentKind, key: &str) -> Result<()> {
    let entity = kind.rights_entity();
    store.require(who, entity, Op::Delete).await?;
    let q = Query::delete()
        .from_table(col(CURRENT))
        .and_where(Expr::col(col("kind")).eq(kind.as_str()))
        .and_where(Expr::col(col("key")).eq(key))
        .to_owned();
    if store.db().conn.execute(&q).await?.rows_affected() == 0 {
        return Err(no_such(kind, key));
    }
    store
        .log(
            who,
            "delete",
            entity,
            None,
            "ok",
            Some(format!("{} {key}", kind.as_str())),
        )
        .await
}

/// Everything current, for the engine to compile (no rights: the engine renders for every
/// sender).
pub async fn all(store: &Store) -> Result<Vec<Content>> {
    select(&store.db().conn, None, None).await
}

/// What is saved, in brief: how many items are current and how many versions were ever
/// saved. Counts, not ids: ids can commit out of order on PostgreSQL, counts only grow with
/// each committed save (and the first with each deletion).
pub type Stamp = (i64, i64);

/// Changes whenever anything is saved or deleted: the engine recompiles when it does.
pub async fn stamp(store: &Store) -> Result<Stamp> {
    let conn = &store.db().conn;
    let mut counts = [0i64; 2];
    for (i, table) in [CURRENT, VERSIONS].into_iter().enumerate() {
        let q = Query::select()
            .expr(Func::count(Expr::col(col("id"))))
            .from(col(table))
            .to_owned();
        if let Some(row) = conn.query_one(&q).await? {
            counts[i] = row.try_get_by_index(0)?;
        }
    }
    Ok((counts[0], counts[1]))
}
