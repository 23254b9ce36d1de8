//! Definitions saved under a key (import flows, export jobs): one table each with the same
//! columns: the key, the entity it concerns, the definition as JSON, who saved it last (its
//! owner, whom scheduled runs act as), when it was created and when it last changed. Rights and
//! the access log stay with each kind.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;

/// The problems a definition's own check found, as field errors; `Ok` when there are none.
pub(crate) fn problems(found: Vec<tabiji_model::import::ImportFlowError>) -> Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    Err(StorageError::Invalid(
        found
            .into_iter()
            .map(|e| ItemError {
                index: None,
                field: Some(e.at),
                code: e.code,
                message: e.message,
            })
            .collect(),
    ))
}

/// Where a kind of definition is kept, and what people call it.
pub(crate) struct Table {
    pub name: &'static str,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Saved<T> {
    pub key: String,
    pub definition: T,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

impl Table {
    pub(crate) fn not_found(&self, key: &str) -> StorageError {
        StorageError::NoSuch {
            kind: self.kind,
            name: key.to_string(),
        }
    }

    /// Saves `definition` under `key`, replacing what was there. Whoever saves it last owns
    /// it: scheduled runs act as them, so nobody can change what runs with another's rights.
    pub(crate) async fn upsert<T: Serialize>(
        &self,
        store: &Store,
        who: &Principal,
        key: &str,
        entity: &str,
        definition: &T,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let json = serde_json::to_string(definition).expect("a definition serialises");
        let insert = Query::insert()
            .into_table(col(self.name))
            .columns(
                [
                    "key",
                    "entity",
                    "definition",
                    "created_by",
                    "created_at",
                    "updated_at",
                ]
                .map(col),
            )
            .values_panic([
                key.into(),
                entity.into(),
                json.into(),
                who.login.as_str().into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::column(col("key"))
                    .update_columns(["entity", "definition", "created_by", "updated_at"].map(col))
                    .to_owned(),
            )
            .to_owned();
        store.db().conn.execute(&insert).await?;
        Ok(())
    }

    /// The definition saved under `key`, or every one in key order.
    pub(crate) async fn select<T: DeserializeOwned>(
        &self,
        store: &Store,
        key: Option<&str>,
    ) -> Result<Vec<Saved<T>>> {
        let mut q = Query::select();
        q.columns(
            [
                "key",
                "definition",
                "created_by",
                "created_at",
                "updated_at",
            ]
            .map(col),
        )
        .from(col(self.name))
        .order_by(col("key"), Order::Asc);
        if let Some(key) = key {
            q.and_where(Expr::col(col("key")).eq(key));
        }
        let mut saved = Vec::new();
        for row in store.db().conn.query_all(&q).await? {
            saved.push(Saved {
                key: row.try_get("", "key")?,
                definition: self.definition(&row)?,
                created_by: row.try_get("", "created_by")?,
                created_at: row.try_get("", "created_at")?,
                updated_at: row.try_get("", "updated_at")?,
            });
        }
        Ok(saved)
    }

    pub(crate) async fn find<T: DeserializeOwned>(
        &self,
        store: &Store,
        key: &str,
    ) -> Result<Option<Saved<T>>> {
        Ok(self.select(store, Some(key)).await?.into_iter().next())
    }

    pub(crate) async fn remove(&self, store: &Store, key: &str) -> Result<()> {
        let q = Query::delete()
            .from_table(col(self.name))
            .and_where(Expr::col(col("key")).eq(key))
            .to_owned();
        store.db().conn.execute(&q).await?;
        Ok(())
    }

    /// The definition a row keeps as JSON (a saved one, or one as a run used it).
    pub(crate) fn definition<T: DeserializeOwned>(&self, row: &QueryResult) -> Result<T> {
        let text: String = row.try_get("", "definition")?;
        serde_json::from_str(&text).map_err(|e| {
            StorageError::Database(sea_orm::DbErr::Custom(format!(
                "a stored {} does not read back: {e}",
                self.kind
            )))
        })
    }
}

/// The runs of saved definitions (imports, exports): one row per run, newest first.
pub(crate) struct History {
    pub table: &'static str,
    /// The column naming the definition a run belongs to.
    pub key_column: &'static str,
    pub columns: &'static [&'static str],
}

impl History {
    /// Runs newest first: the one with `id`, or those of one definition or of all; at most
    /// `limit`; only of the `entities` given, unless none is.
    pub(crate) async fn select<T>(
        &self,
        store: &Store,
        entities: &[String],
        id: Option<i64>,
        key: Option<&str>,
        limit: u64,
        read: impl Fn(&QueryResult) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut q = Query::select();
        q.columns(self.columns.iter().map(|c| col(c)))
            .from(col(self.table))
            .order_by(col("id"), Order::Desc)
            .limit(limit);
        if let Some(id) = id {
            q.and_where(Expr::col(col("id")).eq(id));
        }
        if let Some(key) = key {
            q.and_where(Expr::col(col(self.key_column)).eq(key));
        }
        if !entities.is_empty() {
            q.and_where(Expr::col(col("entity")).is_in(entities.iter().map(String::as_str)));
        }
        let mut runs = Vec::new();
        for row in store.db().conn.query_all(&q).await? {
            runs.push(read(&row)?);
        }
        Ok(runs)
    }

    /// Runs newest first, of one definition or of all, over the entities `allowed` lets the
    /// caller see (all of them for administrators); at most `limit` (1 to 1,000).
    pub(crate) async fn visible<T>(
        &self,
        store: &Store,
        who: &Principal,
        key: Option<&str>,
        limit: u64,
        allowed: impl Fn(&str) -> bool,
        read: impl Fn(&QueryResult) -> Result<T>,
    ) -> Result<Vec<T>> {
        let limit = limit.clamp(1, 1000);
        if who.is_admin() {
            return self.select(store, &[], None, key, limit, read).await;
        }
        let entities: Vec<String> = store
            .schemas()
            .all()
            .filter(|e| allowed(&e.name))
            .map(|e| e.name.clone())
            .collect();
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        self.select(store, &entities, None, key, limit, read).await
    }
}

/// How long a run may stay `running` before it is taken for one its process abandoned. The
/// largest file (256 MiB) imports in minutes, so an hour is past any honest run.
pub const ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl History {
    /// Marks failed the runs still `running` that started before `now` − [`ABANDONED_AFTER`]:
    /// their process stopped (a crash, a restart) before finishing them, and the history must
    /// not show them running for ever. Answers how many.
    pub(crate) async fn fail_abandoned(&self, store: &Store, now: DateTime<Utc>) -> Result<u64> {
        let update = Query::update()
            .table(col(self.table))
            .value(col("status"), "failed")
            .value(
                col("error"),
                "interrupted: the process running it stopped before it ended; run it again",
            )
            .value(col("finished_at"), now)
            .and_where(Expr::col(col("status")).eq("running"))
            .and_where(Expr::col(col("started_at")).lt(now - ABANDONED_AFTER))
            .to_owned();
        Ok(store.db().conn.execute(&update).await?.rows_affected())
    }
}
