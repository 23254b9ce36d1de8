//! Saved import flows and the import history (AN-1): which file went into which fields, when,
//! by whom, with how many rows read, created, updated, unchanged, deleted and rejected, and
//! every rejected row with its line and reason.
//!
//! Rights: the import right on a flow's entity saves, runs and reads the flow and its history.

use crate::db::begin_write;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::Serialize;
use tabiji_model::Op;
use tabiji_model::import::ImportFlow;
use tabiji_model::schema::check_identifier;

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::{Rejected, Store, Tally};
use crate::saved::{History, Saved, Table};

/// Rejected rows kept per run; past it the run still counts them.
pub const MAX_REJECTS_KEPT: usize = 100_000;

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// An import flow saved under a key.
pub type SavedFlow = Saved<ImportFlow>;

const FLOWS: Table = Table {
    name: "sys_import_flows",
    kind: "import flow",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    /// Every row was read; some may have been rejected.
    Done,
    /// The file could not be read on (wrong header, broken quoting) or the database failed;
    /// batches committed before that stay, and their counts are shown.
    Failed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Status {
        match text {
            "done" => Status::Done,
            "failed" => Status::Failed,
            _ => Status::Running,
        }
    }
}

/// One run of a flow over one file.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: i64,
    pub flow: String,
    pub entity: String,
    pub definition: ImportFlow,
    pub file_name: String,
    pub file_sha256: String,
    pub file_bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rows_read: i64,
    /// How far into the file the rows counted so far reach, in bytes: with `file_bytes`, how
    /// much of a running import is done. A workbook is unpacked before its rows are read, so
    /// for one this is its size times the share of its rows read.
    pub bytes_read: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
    pub merged: i64,
    pub rejected: i64,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// The file a run reads.
pub struct File<'a> {
    pub name: &'a str,
    pub sha256: String,
    pub bytes: i64,
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

/// Every problem with `flow` against the current schema, as field errors.
pub async fn check(store: &Store, flow: &ImportFlow) -> Result<()> {
    // Asking for the entity picks up fields another process added since.
    let _ = store.entity_schema(&flow.entity).await;
    let schemas = store.schemas();
    crate::saved::problems(flow.check(|name| schemas.find(name)))
}

/// Saves (or replaces) the flow called `key`.
pub async fn save(
    store: &Store,
    who: &Principal,
    key: &str,
    flow: &ImportFlow,
    now: DateTime<Utc>,
) -> Result<SavedFlow> {
    check_identifier(key).map_err(|m| invalid("key", "invalid_key", m))?;
    store.require_import(who, flow).await?;
    check(store, flow).await?;
    if let Some(existing) = FLOWS.find::<ImportFlow>(store, key).await? {
        store
            .require(who, &existing.definition.entity, Op::Import)
            .await?;
    }
    FLOWS
        .upsert(store, who, key, &flow.entity, flow, now)
        .await?;
    store
        .log(
            who,
            "save_import_flow",
            &flow.entity,
            None,
            "ok",
            Some(key.to_string()),
        )
        .await?;
    FLOWS
        .find(store, key)
        .await?
        .ok_or_else(|| FLOWS.not_found(key))
}

pub async fn get(store: &Store, who: &Principal, key: &str) -> Result<SavedFlow> {
    let flow = FLOWS
        .find::<ImportFlow>(store, key)
        .await?
        .ok_or_else(|| FLOWS.not_found(key))?;
    store
        .require(who, &flow.definition.entity, Op::Import)
        .await?;
    Ok(flow)
}

/// The flows whose entity the caller may import into.
pub async fn list(store: &Store, who: &Principal) -> Result<Vec<SavedFlow>> {
    Ok(FLOWS
        .select::<ImportFlow>(store, None)
        .await?
        .into_iter()
        .filter(|flow| who.rights.allows(&flow.definition.entity, Op::Import))
        .collect())
}

/// Every saved flow, for the scheduler.
pub async fn all(store: &Store) -> Result<Vec<SavedFlow>> {
    list(store, &Principal::system()).await
}

pub async fn delete(store: &Store, who: &Principal, key: &str) -> Result<()> {
    let flow = get(store, who, key).await?;
    FLOWS.remove(store, key).await?;
    store
        .log(
            who,
            "delete_import_flow",
            &flow.definition.entity,
            None,
            "ok",
            Some(key.into()),
        )
        .await
}

/// Records that a run of `flow` over `file` began; returns its id.
pub async fn start(
    store: &Store,
    who: &Principal,
    key: &str,
    flow: &ImportFlow,
    file: &File<'_>,
    now: DateTime<Utc>,
) -> Result<i64> {
    let definition = serde_json::to_string(flow).expect("a flow serialises");
    let zero = || 0i64.into();
    let insert = Query::insert()
        .into_table(col("sys_imports"))
        .columns(
            [
                "flow_key",
                "entity",
                "definition",
                "file_name",
                "file_sha256",
                "file_bytes",
                "status",
                "rows_read",
                "created",
                "updated",
                "unchanged",
                "deleted",
                "merged",
                "rejected",
                "started_by",
                "started_at",
            ]
            .map(col),
        )
        .values_panic([
            key.into(),
            flow.entity.as_str().into(),
            definition.into(),
            file.name.into(),
            file.sha256.as_str().into(),
            file.bytes.into(),
            Status::Running.name().into(),
            zero(),
            zero(),
            zero(),
            zero(),
            zero(),
            zero(),
            zero(),
            who.login.as_str().into(),
            now.into(),
        ])
        .returning_col(col("id"))
        .to_owned();
    let row = store
        .db()
        .conn
        .query_one(&insert)
        .await?
        .ok_or_else(|| StorageError::Database(sea_orm::DbErr::RecordNotInserted))?;
    Ok(row.try_get("", "id")?)
}

/// Adds a batch's counts and rejected rows to run `id`, in one transaction; `bytes_read` is
/// how far into the file the rows read so far reach.
pub async fn progress(
    store: &Store,
    id: i64,
    rows_read: u64,
    bytes_read: u64,
    tally: &Tally,
    encoding: &str,
) -> Result<()> {
    let txn = begin_write(&store.db().conn).await?;
    let add = |name: &str, n: u64| (col(name), Expr::col(col(name)).add(n as i64));
    let update = Query::update()
        .table(col("sys_imports"))
        .values([
            add("rows_read", rows_read),
            add("created", tally.created),
            add("updated", tally.updated),
            add("unchanged", tally.unchanged),
            add("deleted", tally.deleted),
            add("merged", tally.merged),
            add("rejected", tally.rejected.len() as u64),
        ])
        .value(col("encoding"), encoding)
        .value(col("bytes_read"), bytes_read as i64)
        .and_where(Expr::col(col("id")).eq(id))
        .to_owned();
    txn.execute(&update).await?;
    let mut kept_q = Query::select();
    kept_q
        .expr_as(Expr::col(col("id")).count(), col("n"))
        .from(col("sys_import_rejects"))
        .and_where(Expr::col(col("import_id")).eq(id));
    let kept: i64 = match txn.query_one(&kept_q).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    let room = MAX_REJECTS_KEPT.saturating_sub(kept as usize);
    let keep: Vec<&Rejected> = tally.rejected.iter().take(room).collect();
    for chunk in keep.chunks(500) {
        let mut insert = Query::insert();
        insert
            .into_table(col("sys_import_rejects"))
            .columns(["import_id", "line", "field", "reason", "raw"].map(col));
        for r in chunk {
            insert.values_panic([
                id.into(),
                (r.line as i64).into(),
                r.field.clone().into(),
                r.reason.as_str().into(),
                r.raw.as_str().into(),
            ]);
        }
        txn.execute(&insert).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Marks run `id` done, or failed with `error`, and puts the run in the access log.
pub async fn finish(
    store: &Store,
    who: &Principal,
    id: i64,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let status = if error.is_some() {
        Status::Failed
    } else {
        Status::Done
    };
    let update = Query::update()
        .table(col("sys_imports"))
        .value(col("status"), status.name())
        .value(col("error"), error.map(str::to_string))
        .value(col("finished_at"), now)
        .and_where(Expr::col(col("id")).eq(id))
        .to_owned();
    store.db().conn.execute(&update).await?;
    let Some(run) = RUNS.select(store, &[], Some(id), None, 1, run).await?.pop() else {
        return Ok(());
    };
    let mut detail = format!(
        "import {id} of {:?} by flow {}: {} read, {} created, {} updated, {} unchanged, {} deleted, {} rejected",
        run.file_name,
        run.flow,
        run.rows_read,
        run.created,
        run.updated,
        run.unchanged,
        run.deleted,
        run.rejected
    );
    if let Some(error) = error {
        detail.push_str(&format!("; failed: {error}"));
    }
    let outcome = if error.is_some() { "failed" } else { "ok" };
    store
        .log(who, "import_run", &run.entity, None, outcome, Some(detail))
        .await
}

const RUN_COLUMNS: [&str; 21] = [
    "id",
    "flow_key",
    "entity",
    "definition",
    "file_name",
    "file_sha256",
    "file_bytes",
    "encoding",
    "status",
    "error",
    "rows_read",
    "bytes_read",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "merged",
    "rejected",
    "started_by",
    "started_at",
    "finished_at",
];

const RUNS: History = History {
    table: "sys_imports",
    key_column: "flow_key",
    columns: &RUN_COLUMNS,
};

fn run(row: &QueryResult) -> Result<Run> {
    let status: String = row.try_get("", "status")?;
    Ok(Run {
        id: row.try_get("", "id")?,
        flow: row.try_get("", "flow_key")?,
        entity: row.try_get("", "entity")?,
        definition: FLOWS.definition(row)?,
        file_name: row.try_get("", "file_name")?,
        file_sha256: row.try_get("", "file_sha256")?,
        file_bytes: row.try_get("", "file_bytes")?,
        encoding: row.try_get("", "encoding")?,
        status: Status::parse(&status),
        error: row.try_get("", "error")?,
        rows_read: row.try_get("", "rows_read")?,
        bytes_read: row.try_get("", "bytes_read")?,
        created: row.try_get("", "created")?,
        updated: row.try_get("", "updated")?,
        unchanged: row.try_get("", "unchanged")?,
        deleted: row.try_get("", "deleted")?,
        merged: row.try_get("", "merged")?,
        rejected: row.try_get("", "rejected")?,
        started_by: row.try_get("", "started_by")?,
        started_at: row.try_get("", "started_at")?,
        finished_at: row.try_get("", "finished_at")?,
    })
}

/// Runs newest first, of one flow or of all, that the caller may see; at most `limit`.
pub async fn history(
    store: &Store,
    who: &Principal,
    flow: Option<&str>,
    limit: u64,
) -> Result<Vec<Run>> {
    RUNS.visible(
        store,
        who,
        flow,
        limit,
        |e| who.rights.allows(e, Op::Import),
        run,
    )
    .await
}

pub async fn get_run(store: &Store, who: &Principal, id: i64) -> Result<Run> {
    let found = RUNS
        .select(store, &[], Some(id), None, 1, run)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StorageError::NotFound {
            entity: "imports".into(),
            id,
        })?;
    store.require(who, &found.entity, Op::Import).await?;
    Ok(found)
}

/// The rejected rows of run `id`, in line order. They hold whole lines of the file, so the
/// caller must be able to view every field the flow fills.
pub async fn rejects(store: &Store, who: &Principal, id: i64) -> Result<Vec<Rejected>> {
    let found = get_run(store, who, id).await?;
    store.require_view_of_import(who, &found.definition).await?;
    // Rejected rows are raw lines of the file, about any record: under record rights, only
    // one's own imports' (whose rows were checked against them).
    if store.scope(who, &found.entity, Utc::now())?.is_some() && found.started_by != who.login {
        return Err(StorageError::NeedsEveryRecord {
            entity: found.entity.clone(),
            what: "reading another's rejected rows",
        });
    }
    let mut q = Query::select();
    q.columns(["line", "field", "reason", "raw"].map(col))
        .from(col("sys_import_rejects"))
        .and_where(Expr::col(col("import_id")).eq(id))
        .order_by(col("line"), Order::Asc);
    let mut out = Vec::new();
    for row in store.db().conn.query_all(&q).await? {
        out.push(Rejected {
            line: row.try_get::<i64>("", "line")? as u64,
            field: row.try_get("", "field")?,
            reason: row.try_get("", "reason")?,
            raw: row.try_get("", "raw")?,
        });
    }
    store
        .log(
            who,
            "view_import_rejects",
            &found.entity,
            None,
            "ok",
            Some(format!("import {id}")),
        )
        .await?;
    Ok(out)
}

/// Marks failed the import runs a stopped process left `running` (see
/// [`crate::saved::ABANDONED_AFTER`]); answers how many.
pub async fn fail_abandoned(store: &Store, now: DateTime<Utc>) -> Result<u64> {
    RUNS.fail_abandoned(store, now).await
}

/// Whether flow `key` already imported a file with this SHA-256 to its end.
pub async fn already_imported(store: &Store, key: &str, sha256: &str) -> Result<bool> {
    let mut q = Query::select();
    q.column(col("id"))
        .from(col("sys_imports"))
        .and_where(Expr::col(col("flow_key")).eq(key))
        .and_where(Expr::col(col("file_sha256")).eq(sha256))
        .and_where(Expr::col(col("status")).eq(Status::Done.name()))
        .limit(1);
    Ok(store.db().conn.query_one(&q).await?.is_some())
}

/// The latest scheduled fetch of flow `key` that fired (epoch milliseconds).
pub async fn last_tick(store: &Store, key: &str) -> Result<Option<i64>> {
    crate::ticks::last(store, "sys_import_ticks", "flow_key", key).await
}

/// Records that flow `key`'s fetch due at `tick_at` fires; `false` when another worker
/// recorded it first.
pub async fn claim_tick(store: &Store, key: &str, tick_at: i64, now: i64) -> Result<bool> {
    crate::ticks::claim(store, "sys_import_ticks", "flow_key", key, tick_at, now).await
}

/// Whom a scheduled run of `flow` acts as: see [`crate::ticks::acting_owner`].
pub async fn owner(store: &Store, flow: &SavedFlow) -> Result<Option<Principal>> {
    crate::ticks::acting_owner(store, &flow.created_by).await
}
