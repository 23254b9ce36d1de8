//! The SQL workspace (MA-7, MA-9): users with the `sql` right run SELECT queries over the data
//! they may see, and keep results as output tables that serve as delivery lists.
//!
//! Three fences, each enough on its own to stop a write:
//! 1. [`check`]: sqlparser allow-list: one query, no writes, no `INTO`, no locks, only the
//!    workspace's tables, a list of functions; the syntax tree is rewritten and what runs is
//!    the rewritten tree, never the user's text.
//! 2. Views: each table a query names becomes a `WITH` view holding only the fields the user
//!    may view (passwords never), so field rights hold inside SQL too.
//! 3. The database: the query runs on [`Sandbox`] connections that cannot write (SQLite opened
//!    read-only with `query_only`; PostgreSQL `BEGIN READ ONLY`), stopped after a time limit
//!    (SQLite's progress handler, PostgreSQL's `statement_timeout`), at most two at a time.
//!
//! Output tables are real tables named `sqlout_<name>` (a prefix no entity may use), written by
//! tabiji itself from the sandbox's rows: a staging table filled in batches, then swapped in
//! with one short transaction, so a failed or refused save leaves the old table as it was.
//! Each remembers which fields its query could have read (`reads`); only users who may view
//! all of them may read the table, so a result does not carry a field past its rights.

mod check;

use crate::db::begin_write;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use rand::RngCore;
use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, Order, Query, Table, Values};
use sea_orm::sqlx::postgres::PgPool;
use sea_orm::sqlx::sqlite::{SqlitePool, SqliteRow};
use sea_orm::sqlx::{
    self, AssertSqlSafe, Column as _, Connection, Executor, Row, SqlSafeStr, Statement as _,
    TypeInfo, ValueRef,
};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, SqlErr, Value};
use sea_query_sqlx::SqlxValues;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tabiji_model::Op;
use tabiji_model::schema::check_identifier;
use tokio::sync::mpsc;

pub use check::FUNCTIONS;

use crate::auth::Principal;
use crate::db::Sandbox;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;
use crate::segments;
use crate::sql::Sql;

/// The resource whose rights govern the workspace: `view` runs queries and reads output
/// tables, `create` saves new ones and copies, `edit` overwrites and appends, `delete` drops.
pub const SQL: &str = "sql";

/// Rows a query answers with unless it asks for fewer or more.
pub const DEFAULT_ROWS: usize = 1_000;
/// The most rows one answer holds; output tables hold more.
pub const MAX_ROWS: usize = 10_000;
/// The most rows an output table holds.
pub const MAX_TABLE_ROWS: u64 = 1_000_000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The physical name of output table `x` is `sqlout_x`.
const TABLE_PREFIX: &str = "sqlout_";
/// Rows handed from the sandbox to the writer at a time.
const CHUNK: usize = 1_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    /// At most this many rows (default 1,000, at most 10,000); `truncated` says if more matched.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Stopped after this long (default 10 s, at most 60 s).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Integer,
    Real,
    Text,
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Json>>,
    /// More rows matched than `limit`.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveMode {
    /// A new table; refused if the name is taken.
    #[default]
    Create,
    /// Replaces an existing table's rows and columns.
    Overwrite,
    /// Adds rows to an existing table; the query must give its columns, in order.
    Append,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    pub name: String,
    pub sql: String,
    #[serde(default)]
    pub mode: SaveMode,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputTable {
    pub name: String,
    pub columns: Vec<Column>,
    pub row_count: i64,
    /// The fields (`entity.field`) its queries could have read: who may read the table must
    /// be allowed to view every one.
    pub reads: Vec<String>,
    /// The query that last wrote it.
    pub sql: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A table the caller may name in a query, with the columns they see.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogTable {
    pub name: String,
    /// `entity` (records and history stores) or `output` (output tables).
    pub kind: &'static str,
    pub columns: Vec<String>,
}

/// What a query may read: each table's visible columns, and what the base table is called.
struct Offer {
    tables: BTreeMap<String, Offered>,
}

struct Offered {
    base: String,
    columns: Vec<String>,
    /// Output tables: the fields their rows came from.
    reads: Option<Vec<String>>,
    /// Entities the caller's record rights narrow: the rows they reach.
    rows: Option<Expr>,
}

impl Offer {
    fn names(&self) -> BTreeSet<String> {
        self.tables.keys().cloned().collect()
    }
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

fn no_table(name: &str) -> StorageError {
    StorageError::NoSuch {
        kind: "output table",
        name: name.to_string(),
    }
}

/// The table output table `name` is kept in.
pub fn physical_name(name: &str) -> String {
    format!("{TABLE_PREFIX}{name}")
}

/// An output table as a list of record ids: its integer columns, and what it was made from.
#[derive(Debug, Clone)]
pub struct ListTable {
    pub id_columns: Vec<String>,
    pub reads: Vec<String>,
    pub created_by: String,
}

/// Every output table as a list, by name: what filters' `output_table` conditions resolve to.
pub async fn lists(store: &Store) -> Result<std::collections::HashMap<String, ListTable>> {
    Ok(stored_tables(store)
        .await?
        .into_iter()
        .map(|t| {
            let id_columns = t
                .columns
                .iter()
                .filter(|c| c.kind == Kind::Integer)
                .map(|c| c.name.clone())
                .collect();
            (
                t.name,
                ListTable {
                    id_columns,
                    reads: t.reads,
                    created_by: t.created_by,
                },
            )
        })
        .collect())
}

/// Whether `who` may read an output table: they may view every field it was made from, and
/// if record rights narrow anything for them, they made it themselves (its rows came through
/// their own narrowed views; another's may hold ids, history or analyses of records they do
/// not reach, which its `reads` cannot tell).
pub fn may_read(who: &Principal, reads: &[String], created_by: &str) -> bool {
    let narrowed = !who.rights.admin && who.rights.entities.values().any(|e| e.records.is_some());
    (!narrowed || created_by == who.login)
        && reads.iter().all(|r| match r.split_once('.') {
            Some((entity, field)) => who.rights.can_view_field(entity, field),
            None => false,
        })
}

async fn offer(store: &Store, who: &Principal) -> Result<Offer> {
    let mut tables = BTreeMap::new();
    let now = Utc::now();
    for schema in store.entities_visible_to(who) {
        let mut columns = vec!["id".to_string()];
        columns.extend(
            store
                .readable_fields(who, &schema)
                .into_iter()
                .map(|f| f.key.clone()),
        );
        columns.extend(["created_at".to_string(), "updated_at".to_string()]);
        tables.insert(
            schema.name.clone(),
            Offered {
                base: schema.name.clone(),
                columns,
                reads: None,
                rows: store.scope_expr(who, &schema.name, now).await?,
            },
        );
    }
    for table in stored_tables(store).await? {
        if may_read(who, &table.reads, &table.created_by) && !tables.contains_key(&table.name) {
            tables.insert(
                table.name.clone(),
                Offered {
                    base: physical_name(&table.name),
                    columns: table.columns.iter().map(|c| c.name.clone()).collect(),
                    reads: Some(table.reads),
                    rows: None,
                },
            );
        }
    }
    Ok(Offer { tables })
}

/// The fields a checked query could have read, as `entity.field`.
fn reads_of(
    store: &Store,
    who: &Principal,
    checked: &check::Checked,
    offer: &Offer,
) -> Vec<String> {
    let schemas = store.schemas();
    let mut reads = BTreeSet::new();
    for name in &checked.tables {
        let Some(offered) = offer.tables.get(name) else {
            continue;
        };
        match &offered.reads {
            Some(from_output) => reads.extend(from_output.iter().cloned()),
            None => {
                let Some(schema) = schemas.find(name) else {
                    continue;
                };
                for field in store.readable_fields(who, schema) {
                    if checked.whole_rows || checked.words.contains(&field.key) {
                        reads.insert(format!("{name}.{}", field.key));
                    }
                }
            }
        }
    }
    reads.into_iter().collect()
}

/// The `WITH` list that defines each table the query reads as the columns the user may see,
/// and where their record rights narrow it, the rows they reach. The rights' values travel as
/// parameters, in the form the database stores them (a timestamp inlined as text compares
/// wrongly on SQLite).
fn views(checked: &check::Checked, offer: &Offer, schema: &str, backend: DbBackend) -> Sql {
    let mut sql = Sql::new(backend);
    let offered = checked
        .tables
        .iter()
        .filter_map(|name| offer.tables.get(name).map(|o| (name, o)));
    for (n, (name, offered)) in offered.enumerate() {
        sql.push(if n == 0 { "WITH " } else { ", " });
        sql.push(&format!("{} AS (", quote(&check::view_name(name))));
        match &offered.rows {
            None => {
                let columns: Vec<String> = offered.columns.iter().map(|c| quote(c)).collect();
                sql.push(&format!(
                    "SELECT {} FROM {}.{}",
                    columns.join(", "),
                    quote(schema),
                    quote(&offered.base)
                ));
            }
            Some(rows) => {
                let mut q = Query::select();
                q.columns(offered.columns.iter().map(|c| col(c)))
                    .from((col(schema), col(&offered.base)))
                    .and_where(rows.clone());
                sql.push_query(&q);
            }
        }
        sql.push(")");
    }
    if !sql.text.is_empty() {
        sql.push(" ");
    }
    sql
}

/// A message from the sandbox to whoever consumes the rows.
enum Part {
    Columns(Vec<(String, Option<Kind>)>),
    Rows(Vec<Vec<Json>>),
}

/// Why a query stopped early, in words the user can act on.
fn query_failed(e: sqlx::Error, timeout: Duration, interrupted: bool) -> StorageError {
    let timed_out = interrupted
        || e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "57014");
    if timed_out {
        return invalid(
            "sql",
            "sql_timeout",
            format!(
                "the query ran longer than {} s and was stopped; narrow it, or allow more \
                 time with timeout_seconds (at most {} s)",
                timeout.as_secs(),
                MAX_TIMEOUT.as_secs()
            ),
        );
    }
    match e.as_database_error() {
        Some(d) => invalid("sql", "sql_failed", readable_names(d.message())),
        None => StorageError::Database(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
            Arc::new(e),
        ))),
    }
}

/// A database message with the generated table names turned back into words the user knows:
/// the workspace's tables by their names, the query's own `WITH` tables as such.
fn readable_names(message: &str) -> String {
    let mut out = message.replace(check::VIEW_PREFIX, "");
    while let Some(at) = out.find("tabiji_cte_") {
        let digits = out[at + "tabiji_cte_".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
        out.replace_range(at..at + "tabiji_cte_".len() + digits, "a WITH table");
    }
    out
}

struct Plan<'a> {
    checked: &'a check::Checked,
    offer: &'a Offer,
    /// Read at most this many rows.
    limit: u64,
    timeout: Duration,
}

async fn produce(sandbox: &Sandbox, plan: &Plan<'_>, out: mpsc::Sender<Part>) -> Result<()> {
    match sandbox {
        Sandbox::Sqlite(pool) => produce_sqlite(pool, plan, out).await,
        Sandbox::Postgres(pool) => produce_postgres(pool, plan, out).await,
    }
}

fn connection_error(e: sqlx::Error) -> StorageError {
    StorageError::Database(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
        Arc::new(e),
    )))
}

async fn produce_sqlite(pool: &SqlitePool, plan: &Plan<'_>, out: mpsc::Sender<Part>) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(connection_error)?;
    let deadline = Instant::now() + plan.timeout;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        let mut handle = conn.lock_handle().await.map_err(connection_error)?;
        handle.set_progress_handler(1_000, move || {
            let go_on = Instant::now() < deadline;
            if !go_on {
                interrupted.store(true, Ordering::Relaxed);
            }
            go_on
        });
    }
    let mut sql = views(plan.checked, plan.offer, "main", DbBackend::Sqlite);
    sql.push(&format!(
        "SELECT * FROM ({}) LIMIT {}",
        plan.checked.sql, plan.limit
    ));
    let (sql, values) = sql.into_parts();
    let result = async {
        let statement = (&mut *conn)
            .prepare(AssertSqlSafe(sql.clone()).into_sql_str())
            .await?;
        let columns = statement
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), None))
            .collect();
        if out.send(Part::Columns(columns)).await.is_err() {
            return Ok(());
        }
        let mut rows =
            sqlx::query_with(AssertSqlSafe(sql), SqlxValues(Values(values))).fetch(&mut *conn);
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(row) = rows.try_next().await? {
            chunk.push(sqlite_row(&row)?);
            if chunk.len() == CHUNK
                && out
                    .send(Part::Rows(std::mem::replace(
                        &mut chunk,
                        Vec::with_capacity(CHUNK),
                    )))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        if !chunk.is_empty() {
            let _ = out.send(Part::Rows(chunk)).await;
        }
        Ok::<(), sqlx::Error>(())
    }
    .await;
    conn.lock_handle()
        .await
        .map_err(connection_error)?
        .remove_progress_handler();
    result.map_err(|e| query_failed(e, plan.timeout, interrupted.load(Ordering::Relaxed)))
}

fn sqlite_row(row: &SqliteRow) -> Result<Vec<Json>, sqlx::Error> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Json::Null);
            }
            let ty = raw.type_info().name().to_string();
            Ok(match ty.as_str() {
                "INTEGER" => Json::from(row.try_get_unchecked::<i64, _>(i)?),
                "REAL" => serde_json::Number::from_f64(row.try_get_unchecked::<f64, _>(i)?)
                    .map_or(Json::Null, Json::Number),
                "BLOB" => Json::String(hex::encode(row.try_get_unchecked::<Vec<u8>, _>(i)?)),
                _ => Json::String(row.try_get_unchecked::<String, _>(i)?),
            })
        })
        .collect()
}

fn postgres_kind(type_name: &str) -> Kind {
    match type_name {
        "INT2" | "INT4" | "INT8" => Kind::Integer,
        "FLOAT4" | "FLOAT8" | "NUMERIC" => Kind::Real,
        "BOOL" => Kind::Boolean,
        _ => Kind::Text,
    }
}

async fn produce_postgres(pool: &PgPool, plan: &Plan<'_>, out: mpsc::Sender<Part>) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(connection_error)?;
    let result = async {
        let mut txn = conn.begin_with("BEGIN READ ONLY").await?;
        sqlx::query(AssertSqlSafe(format!(
            "SET LOCAL statement_timeout = {}",
            plan.timeout.as_millis()
        )))
        .execute(&mut *txn)
        .await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut *txn)
            .await?;
        let views = views(plan.checked, plan.offer, &schema, DbBackend::Postgres);
        let described = format!(
            "{}SELECT * FROM ({}) AS tabiji_result",
            views.text, plan.checked.sql
        );
        let statement = (&mut *txn)
            .prepare(AssertSqlSafe(described).into_sql_str())
            .await?;
        let columns: Vec<(String, Option<Kind>)> = statement
            .columns()
            .iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    Some(postgres_kind(c.type_info().name())),
                )
            })
            .collect();
        let n = columns.len();
        if out.send(Part::Columns(columns)).await.is_err() {
            return Ok(());
        }
        // Each row as one JSON array made by the server: every type it has (numeric, dates,
        // arrays, JSON) arrives in one form. Positional names, since the query's own names
        // may repeat; at most 100 arguments per call.
        let names: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
        let json = if n == 0 {
            "'[]'".to_string()
        } else {
            let parts: Vec<String> = names
                .chunks(100)
                .map(|c| format!("jsonb_build_array({})", c.join(", ")))
                .collect();
            format!("({})::text", parts.join(" || "))
        };
        let alias = if n == 0 {
            String::new()
        } else {
            format!("({})", names.join(", "))
        };
        let mut sql = views;
        sql.push(&format!(
            "SELECT {json} FROM ({}) AS tabiji_result{alias} LIMIT {}",
            plan.checked.sql, plan.limit
        ));
        let (sql, values) = sql.into_parts();
        {
            let mut rows =
                sqlx::query_with(AssertSqlSafe(sql), SqlxValues(Values(values))).fetch(&mut *txn);
            let mut chunk = Vec::with_capacity(CHUNK);
            while let Some(row) = rows.try_next().await? {
                let text: String = row.try_get(0)?;
                let values: Vec<Json> =
                    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                chunk.push(values);
                if chunk.len() == CHUNK
                    && out
                        .send(Part::Rows(std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(CHUNK),
                        )))
                        .await
                        .is_err()
                {
                    break;
                }
            }
            if !chunk.is_empty() {
                let _ = out.send(Part::Rows(chunk)).await;
            }
        }
        txn.rollback().await?;
        Ok::<(), sqlx::Error>(())
    }
    .await;
    result.map_err(|e| query_failed(e, plan.timeout, false))
}

fn timeout_of(seconds: Option<u64>) -> Result<Duration> {
    match seconds {
        None => Ok(DEFAULT_TIMEOUT),
        Some(s) if (1..=MAX_TIMEOUT.as_secs()).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(invalid(
            "timeout_seconds",
            "invalid_timeout",
            format!("give 1 to {} seconds", MAX_TIMEOUT.as_secs()),
        )),
    }
}

/// Checks a query as `who` may run it: their tables, the allow-list.
async fn prepare(store: &Store, who: &Principal, sql: &str) -> Result<(check::Checked, Offer)> {
    store.require(who, SQL, Op::View).await?;
    checked(store, who, sql).await
}

/// Checks a query against the allow-list and the tables `who` may read.
async fn checked(store: &Store, who: &Principal, sql: &str) -> Result<(check::Checked, Offer)> {
    let offer = offer(store, who).await?;
    match check::check(store.db().backend(), sql, &offer.names()) {
        Ok(checked) => Ok((checked, offer)),
        Err(problems) => {
            store
                .log(who, "sql_query", SQL, None, "refused", Some(excerpt(sql)))
                .await?;
            Err(StorageError::Invalid(
                problems
                    .into_iter()
                    .map(|p| ItemError::field("sql", "sql_not_allowed", p))
                    .collect(),
            ))
        }
    }
}

fn excerpt(sql: &str) -> String {
    sql.chars().take(500).collect()
}

/// The kind a column's values share: integers, numbers, text; `None` if all are null.
fn kind_of<'a>(values: impl Iterator<Item = &'a Json>) -> Option<Kind> {
    let mut kind = None;
    for value in values {
        let this = match value {
            Json::Null => continue,
            Json::Bool(_) => Kind::Boolean,
            Json::Number(n) if n.is_i64() => Kind::Integer,
            Json::Number(_) => Kind::Real,
            _ => Kind::Text,
        };
        kind = Some(match (kind, this) {
            (None, k) => k,
            (Some(a), b) if a == b => a,
            (Some(Kind::Integer), Kind::Real) | (Some(Kind::Real), Kind::Integer) => Kind::Real,
            _ => Kind::Text,
        });
    }
    kind
}

fn columns_of(described: &[(String, Option<Kind>)], rows: &[Vec<Json>]) -> Vec<Column> {
    described
        .iter()
        .enumerate()
        .map(|(i, (name, kind))| Column {
            name: name.clone(),
            kind: kind
                .or_else(|| kind_of(rows.iter().filter_map(|r| r.get(i))))
                .unwrap_or(Kind::Text),
        })
        .collect()
}

/// Runs a query over the data the caller may see and answers with its first rows.
pub async fn query(store: &Store, who: &Principal, request: &QueryRequest) -> Result<Answer> {
    let limit = request.limit.unwrap_or(DEFAULT_ROWS);
    if limit == 0 || limit > MAX_ROWS {
        return Err(invalid(
            "limit",
            "invalid_limit",
            format!("ask for 1 to {MAX_ROWS} rows; save larger results as an output table"),
        ));
    }
    let timeout = timeout_of(request.timeout_seconds)?;
    let (checked, offer) = prepare(store, who, &request.sql).await?;
    answer(
        store,
        who,
        "sql_query",
        &request.sql,
        (&checked, &offer),
        limit,
        timeout,
    )
    .await
}

/// Runs SQL that tabiji wrote (an analysis) with every fence of the workspace: the allow-list,
/// `who`'s views, the read-only sandbox. The caller has checked the right to ask for it.
pub(crate) async fn query_generated(
    store: &Store,
    who: &Principal,
    action: &str,
    sql: &str,
    limit: usize,
) -> Result<Answer> {
    let (checked, offer) = checked(store, who, sql).await?;
    answer(
        store,
        who,
        action,
        sql,
        (&checked, &offer),
        limit,
        DEFAULT_TIMEOUT,
    )
    .await
}

async fn answer(
    store: &Store,
    who: &Principal,
    action: &str,
    sql: &str,
    (checked, offer): (&check::Checked, &Offer),
    limit: usize,
    timeout: Duration,
) -> Result<Answer> {
    let started = Instant::now();
    let sandbox = store.db().sandbox().await?;
    let plan = Plan {
        checked,
        offer,
        limit: limit as u64 + 1,
        timeout,
    };
    let (sender, mut receiver) = mpsc::channel(2);
    let collect = async {
        let mut described = Vec::new();
        let mut rows = Vec::new();
        while let Some(part) = receiver.recv().await {
            match part {
                Part::Columns(c) => described = c,
                Part::Rows(r) => rows.extend(r),
            }
        }
        (described, rows)
    };
    let (produced, (described, mut rows)) = tokio::join!(produce(sandbox, &plan, sender), collect);
    let outcome = if produced.is_ok() { "ok" } else { "failed" };
    store
        .log(who, action, SQL, None, outcome, Some(excerpt(sql)))
        .await?;
    produced?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    Ok(Answer {
        columns: columns_of(&described, &rows),
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The tables the caller may name in a query, with the columns they would see.
pub async fn catalog(store: &Store, who: &Principal) -> Result<Vec<CatalogTable>> {
    store.require(who, SQL, Op::View).await?;
    let offer = offer(store, who).await?;
    Ok(offer
        .tables
        .into_iter()
        .map(|(name, offered)| CatalogTable {
            name,
            kind: if offered.reads.is_some() {
                "output"
            } else {
                "entity"
            },
            columns: offered.columns,
        })
        .collect())
}

const META_COLUMNS: [&str; 10] = [
    "name",
    "columns",
    "row_count",
    "reads",
    "sql",
    "description",
    "created_by",
    "created_at",
    "updated_at",
    "id",
];

fn from_row(row: &QueryResult) -> Result<OutputTable> {
    let name: String = row.try_get("", "name")?;
    let corrupt = |what: &str, e: serde_json::Error| {
        invalid(
            "name",
            "corrupt_output_table",
            format!("the stored {what} of output table {name:?} could not be read: {e}"),
        )
    };
    let columns: String = row.try_get("", "columns")?;
    let reads: String = row.try_get("", "reads")?;
    Ok(OutputTable {
        columns: serde_json::from_str(&columns).map_err(|e| corrupt("columns", e))?,
        reads: serde_json::from_str(&reads).map_err(|e| corrupt("reads", e))?,
        row_count: row.try_get("", "row_count")?,
        sql: row.try_get("", "sql")?,
        description: row.try_get("", "description")?,
        created_by: row.try_get("", "created_by")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
        name,
    })
}

async fn stored_tables(store: &Store) -> Result<Vec<OutputTable>> {
    let mut q = Query::select();
    q.columns(META_COLUMNS.map(col))
        .from(col("sys_output_tables"))
        .order_by(col("name"), Order::Asc);
    let rows = store.db().conn.query_all(&q).await?;
    rows.iter().map(from_row).collect()
}

async fn find(store: &Store, name: &str) -> Result<Option<OutputTable>> {
    let mut q = Query::select();
    q.columns(META_COLUMNS.map(col))
        .from(col("sys_output_tables"))
        .and_where(Expr::col(col("name")).eq(name));
    store
        .db()
        .conn
        .query_one(&q)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// An output table the caller may read.
async fn readable(store: &Store, who: &Principal, name: &str) -> Result<OutputTable> {
    let table = find(store, name).await?.ok_or_else(|| no_table(name))?;
    if !may_read(who, &table.reads, &table.created_by) {
        store
            .log(who, "view", SQL, None, "denied", Some(name.to_string()))
            .await?;
        return Err(StorageError::Forbidden {
            entity: format!("output table {name}"),
            op: "view",
            field: table
                .reads
                .iter()
                .find(|r| {
                    r.split_once('.')
                        .is_none_or(|(e, f)| !who.rights.can_view_field(e, f))
                })
                .cloned(),
        });
    }
    Ok(table)
}

pub async fn get(store: &Store, who: &Principal, name: &str) -> Result<OutputTable> {
    store.require(who, SQL, Op::View).await?;
    readable(store, who, name).await
}

/// The output tables the caller may read.
pub async fn list(store: &Store, who: &Principal) -> Result<Vec<OutputTable>> {
    store.require(who, SQL, Op::View).await?;
    Ok(stored_tables(store)
        .await?
        .into_iter()
        .filter(|t| may_read(who, &t.reads, &t.created_by))
        .collect())
}

/// An output table's name: an identifier no entity has.
fn check_name(store: &Store, name: &str) -> Result<()> {
    check_identifier(name).map_err(|m| invalid("name", "invalid_name", m))?;
    if store.schemas().find(name).is_some() {
        return Err(StorageError::Conflict(vec![ItemError::field(
            "name",
            "name_taken",
            format!("{name:?} is an entity's name; give the output table another"),
        )]));
    }
    Ok(())
}

fn column_def(column: &Column) -> ColumnDef {
    let mut def = ColumnDef::new(col(&column.name));
    match column.kind {
        Kind::Integer => def.big_integer(),
        Kind::Real => def.double(),
        Kind::Text => def.text(),
        Kind::Boolean => def.boolean(),
    };
    def.null();
    def
}

fn check_columns(columns: &[Column]) -> Result<()> {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    if columns.is_empty() {
        problems.push(ItemError::field(
            "sql",
            "no_columns",
            "the query gives no columns to keep",
        ));
    }
    for (i, c) in columns.iter().enumerate() {
        let ok = !c.name.is_empty()
            && c.name.len() <= 63
            && c.name
                .starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
            && c.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !ok {
            problems.push(ItemError::field(
                &format!("columns[{i}]"),
                "invalid_column_name",
                format!(
                    "column {} is called {:?}: name it with AS (letters, digits and _, at most 63)",
                    i + 1,
                    c.name
                ),
            ));
        } else if !seen.insert(c.name.to_lowercase()) {
            problems.push(ItemError::field(
                &format!("columns[{i}]"),
                "duplicate_column_name",
                format!(
                    "two columns are called {:?}: give one another name with AS",
                    c.name
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StorageError::Invalid(problems))
    }
}

/// A row's value as the column stores it, or what is wrong with it.
fn cell(value: Json, column: &Column, row: u64) -> Result<Value> {
    let wrong = |value: &Json| {
        invalid(
            "sql",
            "mixed_column_types",
            format!(
                "row {row}, column {}: {value} is not {:?} like the rows before it; CAST the \
                 column so that every row has one type",
                column.name, column.kind
            ),
        )
    };
    Ok(match (column.kind, value) {
        (Kind::Integer, Json::Null) => Value::BigInt(None),
        (Kind::Real, Json::Null) => Value::Double(None),
        (Kind::Text, Json::Null) => Value::String(None),
        (Kind::Boolean, Json::Null) => Value::Bool(None),
        (Kind::Integer, Json::Number(n)) if n.is_i64() => Value::BigInt(n.as_i64()),
        (Kind::Integer, Json::Bool(b)) => Value::BigInt(Some(i64::from(b))),
        (Kind::Real, Json::Number(n)) => Value::Double(n.as_f64()),
        (Kind::Boolean, Json::Bool(b)) => Value::Bool(Some(b)),
        (Kind::Boolean, Json::Number(n)) if n.is_i64() => Value::Bool(Some(n.as_i64() != Some(0))),
        (Kind::Text, Json::String(s)) => Value::String(Some(s)),
        (Kind::Text, other) => Value::String(Some(other.to_string())),
        (_, other) => return Err(wrong(&other)),
    })
}

async fn drop_table(conn: &impl ConnectionTrait, physical: &str) -> Result<(), sea_orm::DbErr> {
    let drop = Table::drop().table(col(physical)).if_exists().to_owned();
    conn.execute(&drop).await.map(|_| ())
}

async fn rename_table(conn: &impl ConnectionTrait, from: &str, to: &str) -> Result<()> {
    let rename = Table::rename().table(col(from), col(to)).to_owned();
    conn.execute(&rename).await?;
    Ok(())
}

/// Fills a new staging table from the sandbox's rows; answers its columns and row count.
async fn fill(
    store: &Store,
    staging: &str,
    plan: &Plan<'_>,
    fixed: Option<&[Column]>,
) -> Result<(Vec<Column>, u64)> {
    let sandbox = store.db().sandbox().await?;
    let (sender, mut receiver) = mpsc::channel(2);
    let conn = &store.db().conn;
    let write = async {
        let mut columns: Option<Vec<Column>> = None;
        let mut described = Vec::new();
        let mut count = 0u64;
        while let Some(part) = receiver.recv().await {
            let rows = match part {
                Part::Columns(c) => {
                    described = c;
                    continue;
                }
                Part::Rows(rows) => rows,
            };
            if columns.is_none() {
                let chosen = choose_columns(fixed, columns_of(&described, &rows))?;
                create_table(conn, staging, &chosen).await?;
                columns = Some(chosen);
            }
            let columns = columns.as_ref().expect("set above");
            count = insert(conn, staging, columns, rows, count).await?;
            if count > MAX_TABLE_ROWS {
                return Err(invalid(
                    "sql",
                    "too_many_rows",
                    format!(
                        "the query gives more than {MAX_TABLE_ROWS} rows; an output table holds \
                         at most that many"
                    ),
                ));
            }
        }
        let columns = match columns {
            Some(c) => c,
            // No rows: the columns come from the query alone.
            None => {
                let chosen = choose_columns(fixed, columns_of(&described, &[]))?;
                create_table(conn, staging, &chosen).await?;
                chosen
            }
        };
        Ok::<_, StorageError>((columns, count))
    };
    let (produced, written) = tokio::join!(produce(sandbox, plan, sender), write);
    // The writer may stop first (a refused row); the sandbox's error, if any, explains more.
    produced?;
    written
}

/// The columns a staging table gets: an appended table's own, or the query's once checked.
fn choose_columns(fixed: Option<&[Column]>, found: Vec<Column>) -> Result<Vec<Column>> {
    match fixed {
        Some(fixed) => {
            same_columns(fixed, &found)?;
            Ok(fixed.to_vec())
        }
        None => {
            check_columns(&found)?;
            Ok(found)
        }
    }
}

fn same_columns(existing: &[Column], found: &[Column]) -> Result<()> {
    let names = |c: &[Column]| c.iter().map(|c| c.name.to_lowercase()).collect::<Vec<_>>();
    if names(existing) != names(found) {
        return Err(invalid(
            "sql",
            "columns_differ",
            format!(
                "appending needs the table's columns in its order ({}); the query gives ({})",
                existing
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                found
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

async fn copy_rows(
    conn: &impl ConnectionTrait,
    from: &str,
    to: &str,
    columns: &[Column],
) -> Result<()> {
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let names = names.join(", ");
    conn.execute_unprepared(&format!(
        "INSERT INTO {} ({names}) SELECT {names} FROM {}",
        quote(to),
        quote(from)
    ))
    .await?;
    Ok(())
}

async fn create_table(
    conn: &impl ConnectionTrait,
    physical: &str,
    columns: &[Column],
) -> Result<()> {
    let mut create = Table::create();
    create.table(col(physical));
    for c in columns {
        create.col(column_def(c));
    }
    conn.execute(&create).await?;
    Ok(())
}

/// Inserts rows in statements of at most ~30,000 parameters (SQLite's limit is 32,766).
async fn insert(
    conn: &impl ConnectionTrait,
    physical: &str,
    columns: &[Column],
    rows: Vec<Vec<Json>>,
    mut count: u64,
) -> Result<u64> {
    let per_statement = (30_000 / columns.len().max(1)).clamp(1, 1_000);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut statement = Query::insert();
        statement
            .into_table(col(physical))
            .columns(columns.iter().map(|c| col(&c.name)));
        for row in rows.by_ref().take(per_statement) {
            count += 1;
            let values = row
                .into_iter()
                .zip(columns)
                .map(|(v, c)| cell(v, c, count).map(Into::into))
                .collect::<Result<Vec<_>>>()?;
            statement.values_panic(values);
        }
        conn.execute(&statement).await?;
    }
    Ok(count)
}

fn random_suffix() -> String {
    format!("{:08x}", rand::rng().next_u32())
}

/// Runs a query and keeps its rows as an output table: created, overwritten or appended to.
pub async fn save(
    store: &Store,
    who: &Principal,
    request: &SaveRequest,
    now: DateTime<Utc>,
) -> Result<OutputTable> {
    let name = request.name.as_str();
    let existing = find(store, name).await?;
    match (request.mode, &existing) {
        (SaveMode::Create, _) => store.require(who, SQL, Op::Create).await?,
        (_, _) => store.require(who, SQL, Op::Edit).await?,
    }
    check_name(store, name)?;
    match (request.mode, &existing) {
        (SaveMode::Create, Some(_)) => {
            return Err(StorageError::Conflict(vec![ItemError::field(
                "name",
                "duplicate_name",
                format!(
                    "an output table called {name:?} exists already; overwrite or append to it"
                ),
            )]));
        }
        (SaveMode::Overwrite | SaveMode::Append, None) => return Err(no_table(name)),
        (_, Some(_)) => {
            readable(store, who, name).await?;
        }
        (_, None) => {}
    }
    let timeout = timeout_of(request.timeout_seconds)?;
    let (checked, offer) = prepare(store, who, &request.sql).await?;
    let mut reads = reads_of(store, who, &checked, &offer);
    let staging = format!("{TABLE_PREFIX}{name}__{}", random_suffix());
    let plan = Plan {
        checked: &checked,
        offer: &offer,
        limit: MAX_TABLE_ROWS + 1,
        timeout,
    };
    let fixed = match (request.mode, &existing) {
        (SaveMode::Append, Some(table)) => Some(table.columns.as_slice()),
        _ => None,
    };
    let filled = fill(store, &staging, &plan, fixed).await;
    let conn = &store.db().conn;
    let (columns, count) = match filled {
        Ok(done) => done,
        Err(e) => {
            drop_table(conn, &staging).await?;
            store
                .log(who, "sql_save", SQL, None, "failed", Some(name.to_string()))
                .await?;
            return Err(e);
        }
    };
    let physical = physical_name(name);
    let columns_json = serde_json::to_string(&columns).expect("columns serialise");
    let swapped = async {
        let txn = begin_write(conn).await?;
        match (request.mode, &existing) {
            (SaveMode::Append, Some(table)) => {
                copy_rows(&txn, &staging, &physical, &table.columns).await?;
                drop_table(&txn, &staging).await?;
                reads.extend(table.reads.iter().cloned());
                reads.sort();
                reads.dedup();
                let mut update = Query::update();
                update
                    .table(col("sys_output_tables"))
                    .value(col("row_count"), table.row_count + count as i64)
                    .value(
                        col("reads"),
                        serde_json::to_string(&reads).expect("strings"),
                    )
                    .value(col("sql"), request.sql.as_str())
                    .value(col("updated_at"), now)
                    .and_where(Expr::col(col("name")).eq(name));
                txn.execute(&update).await?;
            }
            (_, Some(_)) => {
                drop_table(&txn, &physical).await?;
                rename_table(&txn, &staging, &physical).await?;
                let mut update = Query::update();
                update
                    .table(col("sys_output_tables"))
                    .value(col("columns"), columns_json.as_str())
                    .value(col("row_count"), count as i64)
                    .value(
                        col("reads"),
                        serde_json::to_string(&reads).expect("strings"),
                    )
                    .value(col("sql"), request.sql.as_str())
                    .value(col("updated_at"), now);
                if let Some(description) = &request.description {
                    update.value(col("description"), description.as_str());
                }
                update.and_where(Expr::col(col("name")).eq(name));
                txn.execute(&update).await?;
            }
            (_, None) => {
                rename_table(&txn, &staging, &physical).await?;
                insert_meta(
                    &txn,
                    name,
                    &columns_json,
                    count as i64,
                    &reads,
                    &request.sql,
                    request.description.as_deref(),
                    &who.login,
                    now,
                )
                .await?;
            }
        }
        txn.commit().await?;
        Ok::<(), StorageError>(())
    }
    .await;
    if let Err(e) = swapped {
        drop_table(conn, &staging).await?;
        return Err(taken_or(e, name));
    }
    store
        .log(
            who,
            "sql_save",
            SQL,
            None,
            "ok",
            Some(format!("{name}: {count} rows")),
        )
        .await?;
    find(store, name).await?.ok_or_else(|| no_table(name))
}

/// A unique-name violation (two saves racing for one name) as the conflict it is.
fn taken_or(e: StorageError, name: &str) -> StorageError {
    if let StorageError::Database(db) = &e
        && matches!(db.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
    {
        return StorageError::Conflict(vec![ItemError::field(
            "name",
            "duplicate_name",
            format!("an output table called {name:?} exists already"),
        )]);
    }
    e
}

#[allow(clippy::too_many_arguments)]
async fn insert_meta(
    conn: &impl ConnectionTrait,
    name: &str,
    columns_json: &str,
    row_count: i64,
    reads: &[String],
    sql: &str,
    description: Option<&str>,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let insert = Query::insert()
        .into_table(col("sys_output_tables"))
        .columns(META_COLUMNS[..9].iter().map(|c| col(c)))
        .values_panic([
            name.into(),
            columns_json.into(),
            row_count.into(),
            serde_json::to_string(reads).expect("strings").into(),
            sql.into(),
            description.map(str::to_string).into(),
            created_by.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    conn.execute(&insert).await?;
    Ok(())
}

/// Copies an output table the caller may read to a new one.
pub async fn copy(
    store: &Store,
    who: &Principal,
    from: &str,
    to: &str,
    now: DateTime<Utc>,
) -> Result<OutputTable> {
    store.require(who, SQL, Op::Create).await?;
    let source = readable(store, who, from).await?;
    check_name(store, to)?;
    if find(store, to).await?.is_some() {
        return Err(StorageError::Conflict(vec![ItemError::field(
            "to",
            "duplicate_name",
            format!("an output table called {to:?} exists already"),
        )]));
    }
    let conn = &store.db().conn;
    let done = async {
        let txn = begin_write(conn).await?;
        let physical = physical_name(to);
        create_table(&txn, &physical, &source.columns).await?;
        copy_rows(&txn, &physical_name(from), &physical, &source.columns).await?;
        insert_meta(
            &txn,
            to,
            &serde_json::to_string(&source.columns).expect("columns serialise"),
            source.row_count,
            &source.reads,
            &source.sql,
            source.description.as_deref(),
            &who.login,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok::<(), StorageError>(())
    }
    .await;
    done.map_err(|e| taken_or(e, to))?;
    store
        .log(
            who,
            "sql_copy",
            SQL,
            None,
            "ok",
            Some(format!("{from} → {to}")),
        )
        .await?;
    find(store, to).await?.ok_or_else(|| no_table(to))
}

/// Drops an output table and its rows.
pub async fn delete(store: &Store, who: &Principal, name: &str) -> Result<()> {
    store.require(who, SQL, Op::Delete).await?;
    readable(store, who, name).await?;
    let mut users: Vec<String> = segments::definitions(store.db())
        .await?
        .into_iter()
        .filter(|(_, (_, filter))| filter.output_tables().contains(&name))
        .map(|(key, _)| format!("segment {key:?}"))
        .collect();
    if !users.is_empty() {
        users.sort();
        return Err(StorageError::Conflict(vec![ItemError::field(
            "name",
            "output_table_in_use",
            format!("{name:?} is used by {}", users.join(", ")),
        )]));
    }
    let conn = &store.db().conn;
    let txn = begin_write(conn).await?;
    drop_table(&txn, &physical_name(name)).await?;
    let delete = Query::delete()
        .from_table(col("sys_output_tables"))
        .and_where(Expr::col(col("name")).eq(name))
        .to_owned();
    txn.execute(&delete).await?;
    txn.commit().await?;
    store
        .log(who, "sql_delete", SQL, None, "ok", Some(name.to_string()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
