//! Saved segments (CF-4): a named filter over one entity, evaluated whenever it is used, so it
//! is never stale. Segments may draw on one another (`{"segment": "aichi"}`), which is how lists
//! are combined: `any` for a union, `all` for an intersection, `all` + `not` for a difference.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult, SqlErr};
use serde::{Deserialize, Serialize};
use tabiji_model::Op;
use tabiji_model::filter::Filter;
use tabiji_model::flow::Flow;
use tabiji_model::schema::check_identifier;

use crate::Db;
use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::journeys;
use crate::records::Store;
use crate::search::{Named, parse_zone};
use crate::workspace;

/// The resource whose rights govern saved segments.
pub const SEGMENTS: &str = "segments";

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub entity: String,
    pub filter: Filter,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSegment {
    /// How flows and other segments refer to it; never changes.
    pub key: String,
    pub name: String,
    /// `tourists` when left out.
    #[serde(default = "tourists")]
    pub entity: String,
    pub filter: Filter,
    #[serde(default)]
    pub description: Option<String>,
}

fn tourists() -> String {
    "tourists".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentChange {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub description: Option<String>,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn not_found(key: &str) -> StorageError {
    StorageError::NoSuch {
        kind: "segment",
        name: key.to_string(),
    }
}

fn parse_filter(key: &str, text: &str) -> Result<Filter> {
    serde_json::from_str(text).map_err(|e| {
        StorageError::invalid(ItemError::field(
            "filter",
            "corrupt_segment",
            format!("the stored filter of segment {key:?} could not be read: {e}"),
        ))
    })
}

fn from_row(row: &QueryResult) -> Result<Segment> {
    let key: String = row.try_get("", "key")?;
    let filter: String = row.try_get("", "filter")?;
    Ok(Segment {
        id: row.try_get("", "id")?,
        filter: parse_filter(&key, &filter)?,
        key,
        name: row.try_get("", "name")?,
        entity: row.try_get("", "entity")?,
        description: row.try_get("", "description")?,
        created_by: row.try_get("", "created_by")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// The columns of `sys_segments`; every one but the id is written on create.
const COLUMNS: [&str; 9] = [
    "id",
    "key",
    "name",
    "entity",
    "filter",
    "description",
    "created_by",
    "created_at",
    "updated_at",
];

fn select() -> sea_orm::sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(COLUMNS.map(col)).from(col("sys_segments"));
    q
}

/// Every saved segment's entity and filter, by key: what a filter's `segment` conditions expand to.
pub async fn definitions(db: &Db) -> Result<HashMap<String, (String, Filter)>> {
    let mut q = Query::select();
    q.columns(["key", "entity", "filter"].map(col))
        .from(col("sys_segments"));
    let rows = db.conn.query_all(&q).await?;
    rows.iter()
        .map(|r| {
            let key: String = r.try_get("", "key")?;
            let filter: String = r.try_get("", "filter")?;
            let filter = parse_filter(&key, &filter)?;
            Ok((key, (r.try_get("", "entity")?, filter)))
        })
        .collect()
}

async fn find(store: &Store, key: &str) -> Result<Segment> {
    let mut q = select();
    q.and_where(Expr::col(col("key")).eq(key));
    let row = store
        .db()
        .conn
        .query_one(&q)
        .await?
        .ok_or_else(|| not_found(key))?;
    from_row(&row)
}

fn check_name(name: &str) -> Result<()> {
    let n = name.trim().chars().count();
    if n == 0 || n > 200 {
        return Err(StorageError::invalid(ItemError::field(
            "name",
            "invalid_name",
            "give the segment a name of 1 to 200 characters",
        )));
    }
    Ok(())
}

/// Checks a segment's filter as its author: every field must be one they may view, and no
/// chain of segments may lead back to this one.
async fn check_filter(
    store: &Store,
    who: &Principal,
    key: &str,
    entity: &str,
    filter: &Filter,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut segments = definitions(store.db()).await?;
    segments.insert(key.to_string(), (entity.to_string(), filter.clone()));
    let named = Named {
        segments,
        tables: workspace::lists(store).await?,
        lists: crate::lists::keys(store.db()).await?,
    };
    let schemas = store.schemas();
    store
        .resolve_with(
            Some(who),
            entity,
            &Filter::Segment(key.to_string()),
            parse_zone(None)?,
            now,
            &schemas,
            &named,
        )
        .await
        .map_err(|e| match e {
            StorageError::Invalid(errors) => StorageError::Invalid(
                errors
                    .into_iter()
                    .map(|mut e| {
                        // Paths start at the segment's own filter, as its author wrote it.
                        if let Some(f) = &mut e.field {
                            let prefix = format!("filter.segment({key})");
                            if let Some(rest) = f.strip_prefix(&prefix) {
                                *f = format!("filter{rest}");
                            }
                        }
                        e
                    })
                    .collect(),
            ),
            other => other,
        })?;
    Ok(())
}

pub async fn create(
    store: &Store,
    who: &Principal,
    new: &NewSegment,
    now: DateTime<Utc>,
) -> Result<Segment> {
    store.require(who, SEGMENTS, Op::Create).await?;
    check_identifier(&new.key).map_err(|message| {
        StorageError::invalid(ItemError::field("key", "invalid_key", message))
    })?;
    check_name(&new.name)?;
    store.require(who, &new.entity, Op::View).await?;
    check_filter(store, who, &new.key, &new.entity, &new.filter, now).await?;
    let filter = serde_json::to_string(&new.filter).expect("a filter serialises");
    let insert = Query::insert()
        .into_table(col("sys_segments"))
        .columns(COLUMNS[1..].iter().map(|c| col(c)))
        .values_panic([
            new.key.as_str().into(),
            new.name.trim().into(),
            new.entity.as_str().into(),
            filter.into(),
            new.description.clone().into(),
            who.login.as_str().into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    if let Err(e) = store.db().conn.execute(&insert).await {
        if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Err(StorageError::Conflict(vec![ItemError::field(
                "key",
                "duplicate_key",
                format!("a segment called {:?} exists already", new.key),
            )]));
        }
        return Err(e.into());
    }
    store
        .log(who, "create", SEGMENTS, None, "ok", Some(new.key.clone()))
        .await?;
    find(store, &new.key).await
}

pub async fn update(
    store: &Store,
    who: &Principal,
    key: &str,
    change: &SegmentChange,
    now: DateTime<Utc>,
) -> Result<Segment> {
    store.require(who, SEGMENTS, Op::Edit).await?;
    let current = find(store, key).await?;
    let mut q = Query::update();
    q.table(col("sys_segments"))
        .value(col("updated_at"), now)
        .and_where(Expr::col(col("key")).eq(key));
    if let Some(name) = &change.name {
        check_name(name)?;
        q.value(col("name"), name.trim());
    }
    if let Some(filter) = &change.filter {
        check_filter(store, who, key, &current.entity, filter, now).await?;
        q.value(
            col("filter"),
            serde_json::to_string(filter).expect("a filter serialises"),
        );
    }
    if let Some(description) = &change.description {
        q.value(col("description"), description.as_str());
    }
    store.db().conn.execute(&q).await?;
    store
        .log(
            who,
            "edit",
            SEGMENTS,
            Some(current.id),
            "ok",
            Some(key.into()),
        )
        .await?;
    find(store, key).await
}

/// Deletes a segment no other segment and no running flow draws on.
pub async fn delete(store: &Store, who: &Principal, key: &str) -> Result<()> {
    store.require(who, SEGMENTS, Op::Delete).await?;
    let current = find(store, key).await?;
    let saved = definitions(store.db()).await?;
    let mut users: Vec<String> = saved
        .iter()
        .filter(|(k, (_, f))| k.as_str() != key && f.segments().contains(&key))
        .map(|(k, _)| format!("segment {k:?}"))
        .collect();
    for live in journeys::live_flows(&store.db().conn).await? {
        let Some(text) = journeys::flow_version(&store.db().conn, live.id, live.version).await?
        else {
            continue;
        };
        if let Ok(flow) = serde_json::from_str::<Flow>(&text)
            && flow.entry.segment() == Some(key)
        {
            users.push(format!("flow {}", live.id));
        }
    }
    if !users.is_empty() {
        users.sort();
        return Err(StorageError::Conflict(vec![ItemError::field(
            "key",
            "segment_in_use",
            format!("{key:?} is used by {}", users.join(", ")),
        )]));
    }
    let delete = Query::delete()
        .from_table(col("sys_segments"))
        .and_where(Expr::col(col("key")).eq(key))
        .to_owned();
    store.db().conn.execute(&delete).await?;
    store
        .log(
            who,
            "delete",
            SEGMENTS,
            Some(current.id),
            "ok",
            Some(key.into()),
        )
        .await?;
    Ok(())
}

pub async fn get(store: &Store, who: &Principal, key: &str) -> Result<Segment> {
    store.require(who, SEGMENTS, Op::View).await?;
    find(store, key).await
}

pub async fn list(store: &Store, who: &Principal) -> Result<Vec<Segment>> {
    store.require(who, SEGMENTS, Op::View).await?;
    let mut q = select();
    q.order_by(col("key"), Order::Asc);
    let rows = store.db().conn.query_all(&q).await?;
    rows.iter().map(from_row).collect()
}
