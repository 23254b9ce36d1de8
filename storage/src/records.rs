//! Records of every entity, read and written with the caller's rights enforced.
//!
//! This is the one place where rights are checked, so every feature built on top (search,
//! export, imports, the engine's data fetches) inherits them: an operation the caller may not
//! perform is refused and logged, a field they may not view is never selected, a field they may
//! not edit is refused with its name.

use crate::db::begin_write;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement, Value};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, QueryResult, SqlErr, Statement,
};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tabiji_model::field::{ColumnKind, Label};
use tabiji_model::schema::{EntityKind, SYSTEM_FIELDS};
use tabiji_model::{EntitySchema, FieldDef, FieldType, Op, StoredValue};

use crate::Db;
use crate::audit::{self, Entry};
use crate::auth::{Principal, hash_password};
use crate::error::{ItemError, Result, StorageError};
use crate::schemas::{self, Schemas};
use crate::sql::Sql;

mod import;
pub use import::{ImportRow, Rejected, Tally};

/// A record as the API shows it: field key → JSON value, plus `id`, `created_at`, `updated_at`.
pub type Record = Map<String, Json>;

/// Most records one list call returns.
pub const MAX_PAGE: u64 = 1000;
/// Most items one bulk call takes.
pub const MAX_BULK: usize = 100_000;

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Keyset pagination: records with an id greater than this.
    pub after: Option<i64>,
    pub limit: Option<u64>,
    /// Only records whose parent link (e.g. `tourist_id`) is this id.
    pub parent_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub items: Vec<Record>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Created,
    /// A point-ledger entry whose (source_system, transaction_id) was recorded before:
    /// nothing was written again.
    Existing,
    Updated,
    Deleted,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub index: usize,
    pub id: i64,
    pub status: ItemStatus,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Update,
}

/// One item's parsed values, indexed like the schema's fields; `None` where not given.
#[derive(Clone)]
struct Parsed {
    values: Vec<Option<StoredValue>>,
}

impl Parsed {
    fn at(&self, field: usize) -> Option<&StoredValue> {
        self.values[field].as_ref()
    }

    fn given(&self) -> impl Iterator<Item = (usize, &StoredValue)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
    }
}

fn field_index(schema: &EntitySchema, key: &str) -> usize {
    schema
        .fields
        .iter()
        .position(|f| f.key == key)
        .unwrap_or_else(|| panic!("{} has a built-in field {key}", schema.name))
}

/// Field positions by key, built once per call rather than searched per value.
fn key_index(schema: &EntitySchema) -> HashMap<&str, usize> {
    schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.key.as_str(), i))
        .collect()
}

/// Items parsed on more than one thread when there are at least this many.
const PARALLEL_PARSE_FROM: usize = 2_000;

#[derive(Clone)]
pub struct Store {
    db: Db,
    schemas: Arc<RwLock<Arc<Schemas>>>,
    /// When the stored schema definitions were last compared with ours, and what they were.
    schema_check: Arc<tokio::sync::Mutex<(Option<Instant>, String)>>,
    schema_check_every: Duration,
}

/// How often a process looks for custom fields and history stores that another process added.
pub const SCHEMA_CHECK_EVERY: Duration = Duration::from_secs(2);

fn forbidden(entity: &str, op: Op, field: Option<&str>) -> StorageError {
    StorageError::Forbidden {
        entity: entity.to_string(),
        op: op.name(),
        field: field.map(str::to_string),
    }
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn null_of(kind: ColumnKind) -> Value {
    match kind {
        ColumnKind::Text => Value::String(None),
        ColumnKind::BigInt => Value::BigInt(None),
        ColumnKind::Double => Value::Double(None),
        ColumnKind::Bool => Value::Bool(None),
        ColumnKind::Date => Value::ChronoDate(None),
        ColumnKind::Timestamp => Value::ChronoDateTimeUtc(None),
    }
}

fn to_sql(kind: ColumnKind, value: &StoredValue) -> Value {
    match value {
        StoredValue::Null => null_of(kind),
        StoredValue::Text(s) => Value::String(Some(s.clone())),
        StoredValue::Secret(s) => Value::String(Some(hash_password(s))),
        StoredValue::Int(n) => Value::BigInt(Some(*n)),
        StoredValue::Float(f) => Value::Double(Some(*f)),
        StoredValue::Bool(b) => Value::Bool(Some(*b)),
        StoredValue::Date(d) => Value::ChronoDate(Some(*d)),
        StoredValue::Timestamp(t) => Value::ChronoDateTimeUtc(Some(*t)),
    }
}

fn pg_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Text => "text",
        ColumnKind::BigInt => "bigint",
        ColumnKind::Double => "double precision",
        ColumnKind::Bool => "boolean",
        ColumnKind::Date => "date",
        ColumnKind::Timestamp => "timestamptz",
    }
}

/// A PostgreSQL array literal (`{"a","b",NULL}`) of stored values in their text forms.
fn pg_array<'a>(values: impl Iterator<Item = Option<&'a StoredValue>>) -> String {
    let mut out = String::from("{");
    for (n, value) in values.enumerate() {
        if n > 0 {
            out.push(',');
        }
        let text: std::borrow::Cow<str> = match value {
            None | Some(StoredValue::Null) => {
                out.push_str("NULL");
                continue;
            }
            // Numbers and booleans need no quoting.
            Some(StoredValue::Int(n)) => {
                let _ = write!(out, "{n}");
                continue;
            }
            Some(StoredValue::Bool(b)) => {
                out.push(if *b { 't' } else { 'f' });
                continue;
            }
            Some(StoredValue::Text(s)) => s.as_str().into(),
            Some(StoredValue::Secret(s)) => hash_password(s).into(),
            Some(StoredValue::Float(f)) => f.to_string().into(),
            Some(StoredValue::Date(d)) => d.to_string().into(),
            Some(StoredValue::Timestamp(t)) => t.to_rfc3339().into(),
        };
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// [`to_sql`] for a value that is no longer needed, without copying its text.
fn into_sql(kind: ColumnKind, value: StoredValue) -> Value {
    match value {
        StoredValue::Text(s) => Value::String(Some(s)),
        other => to_sql(kind, &other),
    }
}

/// A key for comparing unique values, whatever their type.
fn unique_key(value: &StoredValue) -> Option<String> {
    match value {
        StoredValue::Null | StoredValue::Secret(_) => None,
        StoredValue::Text(s) => Some(s.clone()),
        StoredValue::Int(n) => Some(n.to_string()),
        StoredValue::Float(f) => Some(f.to_string()),
        StoredValue::Bool(b) => Some(b.to_string()),
        StoredValue::Date(d) => Some(d.to_string()),
        StoredValue::Timestamp(t) => Some(t.to_rfc3339()),
    }
}

pub(crate) fn decode(row: &QueryResult, field: &FieldDef) -> std::result::Result<Json, DbErr> {
    let key = field.key.as_str();
    Ok(match field.ty.column_kind() {
        ColumnKind::Text => match row.try_get::<Option<String>>("", key)? {
            None => Json::Null,
            Some(s) if matches!(field.ty, FieldType::MultiChoice { .. }) => {
                serde_json::from_str(&s).unwrap_or(Json::Null)
            }
            Some(s) => Json::String(s),
        },
        ColumnKind::BigInt => row
            .try_get::<Option<i64>>("", key)?
            .map_or(Json::Null, Json::from),
        ColumnKind::Double => row
            .try_get::<Option<f64>>("", key)?
            .map_or(Json::Null, Json::from),
        ColumnKind::Bool => row
            .try_get::<Option<bool>>("", key)?
            .map_or(Json::Null, Json::from),
        ColumnKind::Date => row
            .try_get::<Option<NaiveDate>>("", key)?
            .map_or(Json::Null, |d| Json::String(d.to_string())),
        ColumnKind::Timestamp => row
            .try_get::<Option<DateTime<Utc>>>("", key)?
            .map_or(Json::Null, |t| {
                Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }),
    })
}

fn system_timestamp(row: &QueryResult, key: &str) -> std::result::Result<Json, DbErr> {
    let t: DateTime<Utc> = row.try_get("", key)?;
    Ok(Json::String(
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    ))
}

/// `column IN (values)`. On PostgreSQL the values go as one array parameter, unnested so that
/// it is joined by hash: it plans a list of a thousand parameters slowly, and `= ANY(array)`
/// compares every row with every value when it scans a table it believes small.
pub(crate) fn among(
    backend: DbBackend,
    column: &str,
    kind: ColumnKind,
    values: &[&StoredValue],
) -> Expr {
    if backend == DbBackend::Postgres {
        return Expr::cust_with_values(
            format!("\"{column}\" IN (SELECT UNNEST($1::{}[]))", pg_type(kind)),
            [Value::String(Some(pg_array(
                values.iter().map(|v| Some(*v)),
            )))],
        );
    }
    Expr::col(col(column)).is_in(values.iter().map(|v| to_sql(kind, v)))
}

/// How many values one [`among`] takes.
pub(crate) fn among_chunk(backend: DbBackend) -> usize {
    if backend == DbBackend::Postgres {
        50_000
    } else {
        rows_per_statement(1)
    }
}

/// Chunks multi-row statements so they stay under every backend's bind-parameter limit.
fn rows_per_statement(columns: usize) -> usize {
    (30_000 / columns.max(1)).clamp(1, 1000)
}

impl Store {
    pub async fn open(db: Db) -> Result<Store> {
        let schemas = Schemas::load(&db).await?;
        let version = schemas::stored_version(&db).await?;
        Ok(Store {
            db,
            schemas: Arc::new(RwLock::new(Arc::new(schemas))),
            schema_check: Arc::new(tokio::sync::Mutex::new((Some(Instant::now()), version))),
            schema_check_every: SCHEMA_CHECK_EVERY,
        })
    }

    /// Changes how often other processes' schema changes are looked for (tests use zero).
    pub fn with_schema_check_every(mut self, every: Duration) -> Self {
        self.schema_check_every = every;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn schemas(&self) -> Arc<Schemas> {
        self.schemas
            .read()
            .expect("schema lock is never poisoned")
            .clone()
    }

    /// Reads the stored schemas again (after this process changed them). Loads are serialised
    /// with the periodic check in [`Store::entity_schema`]: otherwise a check that read the
    /// schemas just before a field was added could replace the fresh ones after, and the new
    /// field would vanish from this process until the next check.
    pub async fn reload_schemas(&self) -> Result<()> {
        let mut check = self.schema_check.lock().await;
        self.reload_holding(&mut check).await
    }

    async fn reload_holding(&self, check: &mut (Option<Instant>, String)) -> Result<()> {
        // The version is read first: a change landing in between makes the next check load
        // again rather than miss it.
        let version = schemas::stored_version(&self.db).await?;
        let fresh = Arc::new(Schemas::load(&self.db).await?);
        *self.schemas.write().expect("schema lock is never poisoned") = fresh;
        *check = (Some(Instant::now()), version);
        Ok(())
    }

    /// The entity's schema, reloaded first when another process changed the stored schemas.
    pub async fn entity_schema(&self, name: &str) -> Result<Arc<EntitySchema>> {
        self.entity(name).await
    }

    async fn entity(&self, name: &str) -> Result<Arc<EntitySchema>> {
        let mut check = self.schema_check.lock().await;
        if check
            .0
            .is_none_or(|at| at.elapsed() >= self.schema_check_every)
        {
            let version = schemas::stored_version(&self.db).await?;
            if version != check.1 {
                self.reload_holding(&mut check).await?;
            } else {
                check.0 = Some(Instant::now());
            }
        }
        drop(check);
        self.schemas().get(name)
    }

    pub(crate) async fn log(
        &self,
        who: &Principal,
        action: &str,
        entity: &str,
        id: Option<i64>,
        outcome: &str,
        detail: Option<String>,
    ) -> Result<()> {
        audit::record(
            &self.db,
            who,
            Entry {
                action,
                entity: Some(entity),
                record_id: id,
                outcome,
                detail,
            },
        )
        .await
    }

    /// Refuses (and logs) an operation the caller may not perform.
    pub async fn require(&self, who: &Principal, entity: &str, op: Op) -> Result<()> {
        if who.rights.allows(entity, op) {
            return Ok(());
        }
        self.log(who, op.name(), entity, None, "denied", None)
            .await?;
        Err(forbidden(entity, op, None))
    }

    /// The entity's schema with only the fields the caller may view, each marked read-only
    /// where the caller may not edit it.
    pub async fn visible_schema(&self, who: &Principal, entity: &str) -> Result<EntitySchema> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::View).await?;
        let mut visible = (*schema).clone();
        visible
            .fields
            .retain(|f| who.rights.can_view_field(entity, &f.key));
        for f in &mut visible.fields {
            f.read_only |= !who.rights.can_write_field(entity, &f.key);
        }
        Ok(visible)
    }

    /// Every entity the caller may view.
    pub fn entities_visible_to(&self, who: &Principal) -> Vec<Arc<EntitySchema>> {
        self.schemas()
            .all()
            .filter(|e| who.rights.allows(&e.name, Op::View))
            .cloned()
            .collect()
    }

    pub(crate) fn readable_fields<'a>(
        &self,
        who: &Principal,
        schema: &'a EntitySchema,
    ) -> Vec<&'a FieldDef> {
        schema
            .fields
            .iter()
            .filter(|f| !matches!(f.ty, FieldType::Password))
            .filter(|f| who.rights.can_view_field(&schema.name, &f.key))
            .collect()
    }

    pub(crate) fn select(&self, schema: &EntitySchema, fields: &[&FieldDef]) -> SelectStatement {
        let mut q = Query::select();
        q.from(col(&schema.name)).column(col("id"));
        for f in fields {
            q.column(col(&f.key));
        }
        q.column(col("created_at")).column(col("updated_at"));
        q
    }

    pub(crate) fn to_record(row: &QueryResult, fields: &[&FieldDef]) -> Result<Record> {
        let mut record = Map::with_capacity(fields.len() + 3);
        record.insert("id".into(), Json::from(row.try_get::<i64>("", "id")?));
        for f in fields {
            record.insert(f.key.clone(), decode(row, f)?);
        }
        record.insert("created_at".into(), system_timestamp(row, "created_at")?);
        record.insert("updated_at".into(), system_timestamp(row, "updated_at")?);
        Ok(record)
    }

    /// The id of the record whose unique `field` holds `value` (read as the field reads input,
    /// so e-mail addresses are folded), if any; the caller must be able to view that field.
    pub async fn id_by_unique(
        &self,
        who: &Principal,
        entity: &str,
        field: &str,
        value: &str,
    ) -> Result<Option<i64>> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::View).await?;
        let Some(def) = schema.field(field).filter(|f| f.unique) else {
            return Err(StorageError::invalid(ItemError::field(
                field,
                "not_unique",
                format!("{entity} records cannot be found by {field}: it is not a unique field"),
            )));
        };
        if !who.rights.can_view_field(entity, field) {
            return Err(forbidden(entity, Op::View, Some(field)));
        }
        let parsed = def
            .parse(&Json::String(value.to_string()))
            .map_err(|e| StorageError::invalid(ItemError::from(e)))?;
        let mut q = Query::select();
        q.column(col("id"))
            .from(col(entity))
            .and_where(Expr::col(col(field)).eq(to_sql(def.ty.column_kind(), &parsed)));
        if let Some(scope) = self.scope_expr(who, entity, Utc::now()).await? {
            q.and_where(scope);
        }
        match self.db.conn.query_one(&q).await? {
            Some(row) => Ok(Some(row.try_get("", "id")?)),
            None => Ok(None),
        }
    }

    pub async fn get(&self, who: &Principal, entity: &str, id: i64) -> Result<Record> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::View).await?;
        let record = self.fetch(&self.db.conn, who, &schema, id).await?;
        self.log(who, "view", entity, Some(id), "ok", None).await?;
        Ok(record)
    }

    async fn fetch<C: ConnectionTrait>(
        &self,
        conn: &C,
        who: &Principal,
        schema: &EntitySchema,
        id: i64,
    ) -> Result<Record> {
        let fields = self.readable_fields(who, schema);
        let mut q = self.select(schema, &fields);
        q.and_where(Expr::col(col("id")).eq(id));
        if let Some(scope) = self.scope_expr(who, &schema.name, Utc::now()).await? {
            q.and_where(scope);
        }
        let row = conn
            .query_one(&q)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                entity: schema.name.clone(),
                id,
            })?;
        Self::to_record(&row, &fields)
    }

    pub async fn list(&self, who: &Principal, entity: &str, query: &ListQuery) -> Result<Page> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::View).await?;
        let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let fields = self.readable_fields(who, &schema);
        let mut q = self.select(&schema, &fields);
        if let Some(after) = query.after {
            q.and_where(Expr::col(col("id")).gt(after));
        }
        if let Some(parent_id) = query.parent_id {
            let parent = schema.parent.as_ref().ok_or_else(|| {
                StorageError::invalid(ItemError::field(
                    "parent_id",
                    "no_parent",
                    format!("{entity} records belong to no other record"),
                ))
            })?;
            q.and_where(Expr::col(col(&parent.field)).eq(parent_id));
        }
        if let Some(scope) = self.scope_expr(who, entity, Utc::now()).await? {
            q.and_where(scope);
        }
        q.order_by(col("id"), Order::Asc).limit(limit + 1);
        let rows = self.db.conn.query_all(&q).await?;
        let more = rows.len() as u64 > limit;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(|row| Self::to_record(row, &fields))
            .collect::<Result<Vec<_>>>()?;
        let next_after = if more {
            items
                .last()
                .and_then(|r| r.get("id"))
                .and_then(Json::as_i64)
        } else {
            None
        };
        self.log(
            who,
            "list",
            entity,
            None,
            "ok",
            Some(format!("{} records", items.len())),
        )
        .await?;
        Ok(Page { items, next_after })
    }

    /// Parses one item, checking every field against the schema and the caller's rights.
    fn parse_item(
        who: &Principal,
        schema: &EntitySchema,
        keys: &HashMap<&str, usize>,
        input: &Json,
        mode: Mode,
        index: Option<usize>,
    ) -> Result<std::result::Result<Parsed, Vec<ItemError>>> {
        let Json::Object(object) = input else {
            return Ok(Err(vec![ItemError {
                index,
                field: None,
                code: "invalid_type",
                message: "each record must be a JSON object of field: value".into(),
            }]));
        };
        let op = if mode == Mode::Create {
            Op::Create
        } else {
            Op::Edit
        };
        let mut errors = Vec::new();
        let mut values: Vec<Option<StoredValue>> = (0..schema.fields.len()).map(|_| None).collect();
        let mut refused = vec![false; schema.fields.len()];
        for (key, value) in object {
            if key == "id" && mode == Mode::Update {
                continue;
            }
            if SYSTEM_FIELDS.contains(&key.as_str()) {
                errors.push(
                    ItemError::field(
                        key,
                        "read_only_field",
                        "is kept by tabiji and cannot be written",
                    )
                    .at(index),
                );
                continue;
            }
            let Some(&at) = keys.get(key.as_str()) else {
                errors.push(
                    ItemError::field(
                        key,
                        "unknown_field",
                        format!("{} has no field called {key}", schema.name),
                    )
                    .at(index),
                );
                continue;
            };
            let field = &schema.fields[at];
            if field.read_only {
                errors.push(
                    ItemError::field(
                        key,
                        "read_only_field",
                        "is kept by tabiji and cannot be written",
                    )
                    .at(index),
                );
                continue;
            }
            if !who.rights.can_write_field(&schema.name, key) {
                return Err(forbidden(&schema.name, op, Some(key)));
            }
            match field.parse(value) {
                Ok(parsed) => values[at] = Some(parsed),
                Err(e) => {
                    refused[at] = true;
                    errors.push(ItemError::from(e).at(index));
                }
            }
        }
        for (at, field) in schema.fields.iter().enumerate() {
            if !field.required || refused[at] {
                continue;
            }
            let missing = match &values[at] {
                None => mode == Mode::Create,
                Some(v) => *v == StoredValue::Null,
            };
            if missing {
                errors.push(ItemError::field(&field.key, "required", "is required").at(index));
            }
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        Ok(Ok(Parsed { values }))
    }

    /// Parses a slice of items; `first` is the index of its first item in the whole request.
    fn parse_slice(
        who: &Principal,
        schema: &EntitySchema,
        items: &[Json],
        first: usize,
        mode: Mode,
    ) -> Result<(Vec<Parsed>, Vec<ItemError>)> {
        let keys = key_index(schema);
        let mut parsed = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match Self::parse_item(who, schema, &keys, item, mode, Some(first + i))? {
                Ok(p) => parsed.push(p),
                Err(mut e) => errors.append(&mut e),
            }
        }
        Ok((parsed, errors))
    }

    /// Parses items, spreading large slices over the cores; `first` is the index of the
    /// slice's first item in the whole request.
    fn parse_items(
        who: &Principal,
        schema: &EntitySchema,
        items: &[Json],
        first: usize,
        mode: Mode,
    ) -> Result<(Vec<Parsed>, Vec<ItemError>)> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        if items.len() < PARALLEL_PARSE_FROM || threads < 2 {
            return Self::parse_slice(who, schema, items, first, mode);
        }
        let per_thread = items.len().div_ceil(threads);
        let parts: Vec<Result<(Vec<Parsed>, Vec<ItemError>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(per_thread)
                .enumerate()
                .map(|(n, chunk)| {
                    scope.spawn(move || {
                        Self::parse_slice(who, schema, chunk, first + n * per_thread, mode)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("parsing does not panic"))
                .collect()
        });
        let mut parsed = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for part in parts {
            let (mut p, mut e) = part?;
            parsed.append(&mut p);
            errors.append(&mut e);
        }
        Ok((parsed, errors))
    }

    fn parse_all(
        &self,
        who: &Principal,
        schema: &EntitySchema,
        items: &[Json],
        mode: Mode,
    ) -> Result<Vec<Parsed>> {
        if items.len() > MAX_BULK {
            return Err(StorageError::invalid(ItemError {
                index: None,
                field: None,
                code: "too_many_items",
                message: format!("send at most {MAX_BULK} items per call"),
            }));
        }
        let (parsed, errors) = Self::parse_items(who, schema, items, 0, mode)?;
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(StorageError::Invalid(errors))
        }
    }

    /// Unique fields: no two items share a value, and no other stored record has it. The
    /// record that has it is named only to a caller who reaches every record.
    async fn check_unique<C: ConnectionTrait>(
        &self,
        conn: &C,
        who: &Principal,
        schema: &EntitySchema,
        items: &[(Option<usize>, Option<i64>, &Parsed)],
    ) -> Result<()> {
        let narrowed = self.scope(who, &schema.name, Utc::now())?.is_some();
        let mut errors = Vec::new();
        for (at, field) in schema.fields.iter().enumerate().filter(|(_, f)| f.unique) {
            let mut first_at: HashMap<String, Option<usize>> = HashMap::new();
            let mut owners: HashMap<String, Option<i64>> = HashMap::new();
            let mut values = Vec::new();
            for (index, id, parsed) in items {
                let Some(value) = parsed.at(at) else {
                    continue;
                };
                let Some(key) = unique_key(value) else {
                    continue;
                };
                if let Some(first) = first_at.get(&key) {
                    errors.push(
                        ItemError::field(
                            &field.key,
                            "duplicate",
                            format!("{key} is also given in item {}", first.unwrap_or(0)),
                        )
                        .at(*index),
                    );
                    continue;
                }
                first_at.insert(key.clone(), *index);
                owners.insert(key, *id);
                values.push(value);
            }
            let backend = conn.get_database_backend();
            for chunk in values.chunks(among_chunk(backend)) {
                let mut q = Query::select();
                q.column(col("id"))
                    .column(col(&field.key))
                    .from(col(&schema.name))
                    .and_where(among(backend, &field.key, field.ty.column_kind(), chunk));
                for row in conn.query_all(&q).await? {
                    let id: i64 = row.try_get("", "id")?;
                    let taken = match field.ty.column_kind() {
                        ColumnKind::BigInt => row.try_get::<i64>("", &field.key)?.to_string(),
                        _ => row.try_get::<String>("", &field.key)?,
                    };
                    if owners.get(&taken).copied().flatten() == Some(id) {
                        continue;
                    }
                    errors.push(
                        ItemError::field(
                            &field.key,
                            "duplicate",
                            if narrowed {
                                format!("{taken} belongs to another {} record already", schema.name)
                            } else {
                                format!("{taken} belongs to {} {id} already", schema.name)
                            },
                        )
                        .at(first_at.get(&taken).copied().flatten()),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StorageError::Conflict(errors))
        }
    }

    /// Refuses references to records that do not exist or that the caller does not reach (to
    /// them, those do not exist either).
    async fn check_references<C: ConnectionTrait>(
        &self,
        conn: &C,
        who: &Principal,
        schema: &EntitySchema,
        items: &[(Option<usize>, &Parsed)],
    ) -> Result<()> {
        let mut errors = Vec::new();
        for (at, field) in schema.fields.iter().enumerate() {
            let FieldType::Reference { entity: target } = &field.ty else {
                continue;
            };
            let wanted: Vec<i64> = items
                .iter()
                .filter_map(|(_, p)| match p.at(at) {
                    Some(StoredValue::Int(id)) => Some(*id),
                    _ => None,
                })
                .collect::<Vec<_>>();
            let found = self
                .reachable(conn, who, target, &wanted, Utc::now())
                .await?;
            for (index, parsed) in items {
                if let Some(StoredValue::Int(id)) = parsed.at(at)
                    && !found.contains(id)
                {
                    errors.push(
                        ItemError::field(
                            &field.key,
                            "unknown_reference",
                            format!("{target} {id} does not exist"),
                        )
                        .at(*index),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StorageError::Invalid(errors))
        }
    }

    pub async fn create(
        &self,
        who: &Principal,
        entity: &str,
        input: &Json,
    ) -> Result<(Record, ItemStatus)> {
        let results = self
            .create_many(who, entity, vec![input.clone()], false)
            .await?;
        let result = &results[0];
        let schema = self.entity(entity).await?;
        let record = self.fetch(&self.db.conn, who, &schema, result.id).await?;
        Ok((record, result.status))
    }

    /// Creates many records, all or nothing; every refused item is named by its index.
    pub async fn bulk_create(
        &self,
        who: &Principal,
        entity: &str,
        items: Vec<Json>,
    ) -> Result<Vec<ItemResult>> {
        self.create_many(who, entity, items, true).await
    }

    async fn create_many(
        &self,
        who: &Principal,
        entity: &str,
        items: Vec<Json>,
        bulk: bool,
    ) -> Result<Vec<ItemResult>> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::Create).await?;
        let outcome = if schema.kind == EntityKind::PointLedger {
            self.create_ledger_entries(who, &schema, &items, bulk).await
        } else {
            self.create_rows(who, &schema, items).await
        };
        let results = match outcome {
            Ok(results) => results,
            Err(StorageError::Invalid(errors)) if !bulk => {
                return Err(StorageError::Invalid(
                    errors.into_iter().map(|e| e.at(None)).collect(),
                ));
            }
            Err(StorageError::Conflict(errors)) if !bulk => {
                return Err(StorageError::Conflict(
                    errors.into_iter().map(|e| e.at(None)).collect(),
                ));
            }
            Err(e @ (StorageError::Forbidden { .. } | StorageError::OutsideRecords { .. })) => {
                let e = match e {
                    StorageError::OutsideRecords { entity, .. } if !bulk => {
                        StorageError::OutsideRecords {
                            entity,
                            index: None,
                        }
                    }
                    e => e,
                };
                let detail = e.to_string();
                self.log(who, "create", entity, None, "denied", Some(detail))
                    .await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let created = results
            .iter()
            .filter(|r| r.status == ItemStatus::Created)
            .count();
        let (record_id, detail) = if bulk {
            (
                None,
                Some(format!("{created} created of {}", results.len())),
            )
        } else {
            (results.first().map(|r| r.id), None)
        };
        self.log(who, "create", entity, record_id, "ok", detail)
            .await?;
        Ok(results)
    }

    async fn create_ledger_entries(
        &self,
        who: &Principal,
        schema: &EntitySchema,
        items: &[Json],
        bulk: bool,
    ) -> Result<Vec<ItemResult>> {
        let parsed = self.parse_all(who, schema, items, Mode::Create)?;
        let txn = begin_write(&self.db.conn).await?;
        let refs: Vec<(Option<usize>, &Parsed)> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| (Some(i), p))
            .collect();
        self.check_references(&txn, who, schema, &refs).await?;
        let (results, errors) = self.insert_ledger(&txn, schema, &parsed, bulk).await?;
        if !errors.is_empty() {
            return Err(StorageError::Invalid(errors));
        }
        let written: Vec<(Option<usize>, i64)> =
            results.iter().map(|r| (Some(r.index), r.id)).collect();
        self.check_written(&txn, who, &schema.name, &written, Utc::now())
            .await?;
        txn.commit().await?;
        Ok(results)
    }

    /// Parses every item first (on all cores for large calls), so that every bad item is
    /// named before anything is written, then writes them in one transaction.
    async fn create_rows(
        &self,
        who: &Principal,
        schema: &Arc<EntitySchema>,
        items: Vec<Json>,
    ) -> Result<Vec<ItemResult>> {
        let parsed = self.parse_all(who, schema, &items, Mode::Create)?;
        let txn = begin_write(&self.db.conn).await?;
        let refs: Vec<(Option<usize>, &Parsed)> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| (Some(i), p))
            .collect();
        self.check_references(&txn, who, schema, &refs).await?;
        let ids = match self.insert_rows(&txn, schema, parsed).await {
            Err(StorageError::Conflict(generic)) => {
                // The unique indexes check on the happy path; only a refused insert pays for
                // parsing again and the search that names which items clash.
                txn.rollback().await?;
                let parsed = self.parse_all(who, schema, &items, Mode::Create)?;
                let uniq: Vec<(Option<usize>, Option<i64>, &Parsed)> = parsed
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (Some(i), None, p))
                    .collect();
                self.check_unique(&self.db.conn, who, schema, &uniq).await?;
                return Err(StorageError::Conflict(generic));
            }
            other => other?,
        };
        let written: Vec<(Option<usize>, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (Some(i), *id))
            .collect();
        self.check_written(&txn, who, &schema.name, &written, Utc::now())
            .await?;
        txn.commit().await?;
        Ok(ids
            .into_iter()
            .enumerate()
            .map(|(index, id)| ItemResult {
                index,
                id,
                status: ItemStatus::Created,
            })
            .collect())
    }

    /// Multi-row inserts in one transaction; returns the new ids in input order.
    async fn insert_rows(
        &self,
        txn: &DatabaseTransaction,
        schema: &EntitySchema,
        parsed: Vec<Parsed>,
    ) -> Result<Vec<i64>> {
        let now = Utc::now();
        let backend = txn.get_database_backend();
        // Tourists start with no points rather than an unknown balance.
        let balance =
            (schema.kind == EntityKind::Tourists).then(|| field_index(schema, "points_balance"));
        let columns: Vec<usize> = (0..schema.fields.len())
            .filter(|&i| Some(i) == balance || parsed.iter().any(|p| p.at(i).is_some()))
            .collect();
        let width = columns.len() + 2;
        let mut head = format!("INSERT INTO \"{}\" (", schema.name);
        for &i in &columns {
            head.push_str(&format!("\"{}\", ", schema.fields[i].key));
        }
        head.push_str("\"created_at\", \"updated_at\") VALUES ");
        let mut ids = Vec::with_capacity(parsed.len());
        if backend == DbBackend::Postgres {
            // One array parameter per column, unnested by the server: PostgreSQL plans a
            // statement with thousands of parameters slowly, and reads array literals about
            // as fast as COPY reads its text format.
            let mut list = String::new();
            let mut unnest = String::new();
            for (n, &i) in columns.iter().enumerate() {
                let field = &schema.fields[i];
                list.push_str(&format!("\"{}\", ", field.key));
                if n > 0 {
                    unnest.push_str(", ");
                }
                unnest.push_str(&format!(
                    "${}::{}[]",
                    n + 1,
                    pg_type(field.ty.column_kind())
                ));
            }
            // Both timestamps are one value for the whole batch: a scalar parameter, not arrays.
            let stamp = columns.len() + 1;
            let sql = format!(
                "INSERT INTO \"{}\" ({list}\"created_at\", \"updated_at\") \
                 SELECT u.*, ${stamp}::timestamptz, ${stamp}::timestamptz FROM UNNEST({unnest}) AS u \
                 RETURNING \"id\"",
                schema.name
            );
            for chunk in parsed.chunks(10_000) {
                let mut values: Vec<Value> = Vec::with_capacity(columns.len() + 1);
                for &i in &columns {
                    let array = pg_array(chunk.iter().map(|item| match item.at(i) {
                        Some(v) => Some(v),
                        None if Some(i) == balance => Some(&StoredValue::Int(0)),
                        None => None,
                    }));
                    values.push(Value::String(Some(array)));
                }
                values.push(Value::ChronoDateTimeUtc(Some(now)));
                let mut chunk_ids = txn
                    .query_all_raw(Statement::from_sql_and_values(backend, sql.clone(), values))
                    .await
                    .map_err(unique_violation)?
                    .iter()
                    .map(|row| row.try_get::<i64>("", "id"))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                chunk_ids.sort_unstable();
                ids.extend(chunk_ids);
            }
            return Ok(ids);
        }
        let per_statement = rows_per_statement(width);
        let mut rest = parsed.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<Parsed> = rest.by_ref().take(per_statement).collect();
            // Built as text once per chunk: the identifiers are checked names, the values are
            // all bound parameters.
            let mut sql = String::with_capacity(head.len() + chunk.len() * width * 5);
            sql.push_str(&head);
            let mut values = Vec::with_capacity(chunk.len() * width);
            let rows = chunk.len();
            for (r, item) in chunk.into_iter().enumerate() {
                let mut given = item.values;
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for c in 0..width {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('?');
                }
                sql.push(')');
                for &i in &columns {
                    let kind = schema.fields[i].ty.column_kind();
                    values.push(match given[i].take() {
                        Some(v) => into_sql(kind, v),
                        None if Some(i) == balance => Value::BigInt(Some(0)),
                        None => null_of(kind),
                    });
                }
                values.push(Value::ChronoDateTimeUtc(Some(now)));
                values.push(Value::ChronoDateTimeUtc(Some(now)));
            }
            let result = txn
                .execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .map_err(unique_violation)?;
            // Inside the write transaction SQLite numbers the rows of one statement
            // consecutively, ending at the last insert rowid; asking for them back row by row
            // (RETURNING) costs a fifth of the insert.
            let last = result.last_insert_id() as i64;
            let count = result.rows_affected() as i64;
            if count != rows as i64 {
                return Err(StorageError::Database(DbErr::Custom(format!(
                    "{rows} rows were given but {count} inserted"
                ))));
            }
            ids.extend(last - count + 1..=last);
        }
        Ok(ids)
    }

    /// Point-ledger entries: idempotent by (source_system, transaction_id), each moving the
    /// tourist's balance in the same transaction; a use beyond the balance is refused. A
    /// refused entry leaves no trace, so the others may be committed without it.
    async fn insert_ledger(
        &self,
        txn: &DatabaseTransaction,
        schema: &EntitySchema,
        parsed: &[Parsed],
        bulk: bool,
    ) -> Result<(Vec<ItemResult>, Vec<ItemError>)> {
        let mut results = Vec::with_capacity(parsed.len());
        let mut errors = Vec::new();
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        let [source, transaction, points_at, kind, tourist, balance_at] = [
            "source_system",
            "transaction_id",
            "points",
            "kind",
            "tourist_id",
            "balance_after",
        ]
        .map(|key| field_index(schema, key));
        for (index, item) in parsed.iter().enumerate() {
            let text = |at: usize| match item.at(at) {
                Some(StoredValue::Text(s)) => s.clone(),
                _ => String::new(),
            };
            let int = |at: usize| match item.at(at) {
                Some(StoredValue::Int(n)) => *n,
                _ => 0,
            };
            let at = if bulk { Some(index) } else { None };
            let key = (text(source), text(transaction));
            if let Some(first) = seen.get(&key) {
                errors.push(
                    ItemError::field(
                        "transaction_id",
                        "duplicate",
                        format!("{} is also given in item {first}", key.1),
                    )
                    .at(at),
                );
                continue;
            }
            seen.insert(key.clone(), index);
            let mut existing = Query::select();
            existing
                .column(col("id"))
                .from(col(&schema.name))
                .and_where(Expr::col(col("source_system")).eq(key.0.clone()))
                .and_where(Expr::col(col("transaction_id")).eq(key.1.clone()));
            if let Some(row) = txn.query_one(&existing).await? {
                results.push(ItemResult {
                    index,
                    id: row.try_get("", "id")?,
                    status: ItemStatus::Existing,
                });
                continue;
            }
            let points = int(points_at);
            let delta = match text(kind).as_str() {
                "grant" | "adjust" => points,
                _ => -points,
            };
            let tourist_id = int(tourist);
            let mut update = Query::update();
            update
                .table(col("tourists"))
                .value(
                    col("points_balance"),
                    Expr::col(col("points_balance")).add(delta),
                )
                .value(
                    col("updated_at"),
                    Value::ChronoDateTimeUtc(Some(Utc::now())),
                )
                .and_where(Expr::col(col("id")).eq(tourist_id))
                .and_where(Expr::col(col("points_balance")).add(delta).gte(0))
                .returning_col(col("points_balance"));
            let balance: i64 = match txn.query_one(&update).await? {
                Some(row) => row.try_get("", "points_balance")?,
                None => {
                    let mut current = Query::select();
                    current
                        .column(col("points_balance"))
                        .from(col("tourists"))
                        .and_where(Expr::col(col("id")).eq(tourist_id));
                    errors.push(match txn.query_one(&current).await? {
                        Some(row) => ItemError::field(
                            "points",
                            "insufficient_points",
                            format!(
                                "tourist {tourist_id} has {} points, fewer than the {points} to use",
                                row.try_get::<i64>("", "points_balance")?
                            ),
                        )
                        .at(at),
                        None => ItemError::field(
                            "tourist_id",
                            "unknown_reference",
                            format!("tourists {tourist_id} does not exist"),
                        )
                        .at(at),
                    });
                    continue;
                }
            };
            let mut entry = item.clone();
            entry.values[balance_at] = Some(StoredValue::Int(balance));
            let ids = self.insert_rows(txn, schema, vec![entry]).await?;
            results.push(ItemResult {
                index,
                id: ids[0],
                status: ItemStatus::Created,
            });
        }
        Ok((results, errors))
    }

    pub async fn update(
        &self,
        who: &Principal,
        entity: &str,
        id: i64,
        patch: &Json,
    ) -> Result<Record> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::Edit).await?;
        if schema.append_only {
            return Err(append_only(entity));
        }
        let parsed =
            match Self::parse_item(who, &schema, &key_index(&schema), patch, Mode::Update, None)? {
                Ok(p) => p,
                Err(errors) => return Err(StorageError::Invalid(errors)),
            };
        let now = Utc::now();
        let scope = self.scope_expr(who, entity, now).await?;
        let txn = begin_write(&self.db.conn).await?;
        self.check_references(&txn, who, &schema, &[(None, &parsed)])
            .await?;
        self.check_unique(&txn, who, &schema, &[(None, Some(id), &parsed)])
            .await?;
        if !self
            .update_row(&txn, &schema, id, &parsed, scope.as_ref())
            .await?
        {
            return Err(StorageError::NotFound {
                entity: entity.into(),
                id,
            });
        }
        if let Err(e) = self
            .check_written(&txn, who, entity, &[(None, id)], now)
            .await
        {
            txn.rollback().await?;
            self.log(who, "edit", entity, Some(id), "denied", Some(e.to_string()))
                .await?;
            return Err(e);
        }
        let record = self.fetch(&txn, who, &schema, id).await?;
        txn.commit().await?;
        self.log(
            who,
            "edit",
            entity,
            Some(id),
            "ok",
            Some(changed_fields(&schema, &parsed)),
        )
        .await?;
        Ok(record)
    }

    /// Changes one record, if it exists and is within `scope`.
    async fn update_row(
        &self,
        txn: &DatabaseTransaction,
        schema: &EntitySchema,
        id: i64,
        parsed: &Parsed,
        scope: Option<&Expr>,
    ) -> Result<bool> {
        let mut update = Query::update();
        update.table(col(&schema.name));
        for (at, value) in parsed.given() {
            let field = &schema.fields[at];
            update.value(col(&field.key), to_sql(field.ty.column_kind(), value));
        }
        update
            .value(
                col("updated_at"),
                Value::ChronoDateTimeUtc(Some(Utc::now())),
            )
            .and_where(Expr::col(col("id")).eq(id));
        if let Some(scope) = scope {
            update.and_where(scope.clone());
        }
        let result = txn.execute(&update).await.map_err(unique_violation)?;
        Ok(result.rows_affected() == 1)
    }

    /// Updates many records at once: each item is an object with its `id` and the fields to
    /// change. All or nothing.
    pub async fn bulk_update(
        &self,
        who: &Principal,
        entity: &str,
        items: &[Json],
    ) -> Result<Vec<ItemResult>> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::Edit).await?;
        if schema.append_only {
            return Err(append_only(entity));
        }
        let mut ids = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get("id").and_then(Json::as_i64) {
                Some(id) if id > 0 => ids.push(id),
                _ => errors.push(
                    ItemError::field(
                        "id",
                        "required",
                        "each item needs the id of the record to change",
                    )
                    .at(Some(i)),
                ),
            }
        }
        if !errors.is_empty() {
            return Err(StorageError::Invalid(errors));
        }
        let parsed = self.parse_all(who, &schema, items, Mode::Update)?;
        let now = Utc::now();
        let scope = self.scope_expr(who, entity, now).await?;
        let txn = begin_write(&self.db.conn).await?;
        let refs: Vec<(Option<usize>, &Parsed)> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| (Some(i), p))
            .collect();
        self.check_references(&txn, who, &schema, &refs).await?;
        let uniq: Vec<(Option<usize>, Option<i64>, &Parsed)> = parsed
            .iter()
            .enumerate()
            .map(|(i, p)| (Some(i), Some(ids[i]), p))
            .collect();
        self.check_unique(&txn, who, &schema, &uniq).await?;
        let mut missing = Vec::new();
        for (i, item) in parsed.iter().enumerate() {
            if !self
                .update_row(&txn, &schema, ids[i], item, scope.as_ref())
                .await?
            {
                missing.push(
                    ItemError::field(
                        "id",
                        "not_found",
                        format!("{entity} {} does not exist", ids[i]),
                    )
                    .at(Some(i)),
                );
            }
        }
        if !missing.is_empty() {
            return Err(StorageError::Invalid(missing));
        }
        let written: Vec<(Option<usize>, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (Some(i), *id))
            .collect();
        if let Err(e) = self.check_written(&txn, who, entity, &written, now).await {
            txn.rollback().await?;
            self.log(who, "edit", entity, None, "denied", Some(e.to_string()))
                .await?;
            return Err(e);
        }
        txn.commit().await?;
        self.log(
            who,
            "edit",
            entity,
            None,
            "ok",
            Some(format!("{} updated", ids.len())),
        )
        .await?;
        Ok(ids
            .into_iter()
            .enumerate()
            .map(|(index, id)| ItemResult {
                index,
                id,
                status: ItemStatus::Updated,
            })
            .collect())
    }

    pub async fn delete(&self, who: &Principal, entity: &str, id: i64) -> Result<()> {
        self.delete_many(who, entity, &[id], false)
            .await
            .map(|_| ())
    }

    /// Deletes records by id, all or nothing; records that belong to them go with them.
    pub async fn bulk_delete(
        &self,
        who: &Principal,
        entity: &str,
        ids: &[i64],
    ) -> Result<Vec<ItemResult>> {
        self.delete_many(who, entity, ids, true).await
    }

    async fn delete_many(
        &self,
        who: &Principal,
        entity: &str,
        ids: &[i64],
        bulk: bool,
    ) -> Result<Vec<ItemResult>> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::Delete).await?;
        if schema.kind == EntityKind::PointLedger && !who.is_admin() {
            return Err(append_only(entity));
        }
        let txn = begin_write(&self.db.conn).await?;
        let found = self.reachable(&txn, who, entity, ids, Utc::now()).await?;
        let missing: Vec<ItemError> = ids
            .iter()
            .enumerate()
            .filter(|(_, id)| !found.contains(id))
            .map(|(i, id)| {
                ItemError::field("id", "not_found", format!("{entity} {id} does not exist"))
                    .at(bulk.then_some(i))
            })
            .collect();
        if !missing.is_empty() {
            if !bulk {
                return Err(StorageError::NotFound {
                    entity: entity.into(),
                    id: ids[0],
                });
            }
            return Err(StorageError::Invalid(missing));
        }
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut q = Query::delete();
            q.from_table(col(entity))
                .and_where(Expr::col(col("id")).is_in(chunk.iter().copied()));
            txn.execute(&q).await?;
        }
        txn.commit().await?;
        let (record_id, detail) = if bulk {
            (None, Some(format!("{} deleted", ids.len())))
        } else {
            (ids.first().copied(), None)
        };
        self.log(who, "delete", entity, record_id, "ok", detail)
            .await?;
        Ok(ids
            .iter()
            .enumerate()
            .map(|(index, id)| ItemResult {
                index,
                id: *id,
                status: ItemStatus::Deleted,
            })
            .collect())
    }

    /// Adds an operator-defined field (DM-7); needs the entity's schema right.
    pub async fn add_custom_field(
        &self,
        who: &Principal,
        entity: &str,
        field: FieldDef,
    ) -> Result<FieldDef> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::Schema).await?;
        let added = schemas::add_custom_field(&self.db, &schema, field).await?;
        self.reload_schemas().await?;
        self.log(
            who,
            "schema",
            entity,
            None,
            "ok",
            Some(format!("added field {}", added.key)),
        )
        .await?;
        Ok(added)
    }

    /// Creates an operator-defined history store (DM-8); administrators only.
    pub async fn add_history_store(
        &self,
        who: &Principal,
        name: &str,
        label: Label,
    ) -> Result<EntitySchema> {
        if !who.is_admin() {
            self.log(
                who,
                "schema",
                name,
                None,
                "denied",
                Some("create history store".into()),
            )
            .await?;
            return Err(forbidden(name, Op::Schema, None));
        }
        let created = schemas::add_history_store(&self.db, &self.schemas(), name, label).await?;
        self.reload_schemas().await?;
        self.log(
            who,
            "schema",
            name,
            None,
            "ok",
            Some("created history store".into()),
        )
        .await?;
        Ok(created)
    }

    /// How many records an entity holds.
    pub async fn count(&self, who: &Principal, entity: &str) -> Result<u64> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::View).await?;
        let mut q = Query::select();
        q.expr_as(Expr::col(col("id")).count(), col("n"))
            .from(col(&schema.name));
        if let Some(scope) = self.scope_expr(who, entity, Utc::now()).await? {
            q.and_where(scope);
        }
        let row = self
            .db
            .conn
            .query_one(&q)
            .await?
            .expect("COUNT returns a row");
        Ok(row.try_get::<i64>("", "n")? as u64)
    }

    /// The engine's read of contacts: the fields `keys` (those a flow branches on and its
    /// channels need) of each of `ids`. Keys the entity does not have are skipped.
    pub async fn contact_fields(
        &self,
        entity: &str,
        ids: &[i64],
        keys: &[String],
    ) -> Result<HashMap<i64, Record>> {
        let schema = self.entity(entity).await?;
        let fields: Vec<&FieldDef> = schema
            .fields
            .iter()
            .filter(|f| keys.contains(&f.key) && !matches!(f.ty, FieldType::Password))
            .collect();
        let mut columns = String::from("\"id\"");
        for f in &fields {
            // Keys are checked identifiers (schema::check_identifier).
            write!(columns, ", \"{}\"", f.key).expect("writing to a String");
        }
        let mut records = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(10_000) {
            let mut sql = Sql::new(self.db.backend());
            sql.push(&format!(
                "SELECT {columns}, \"created_at\", \"updated_at\" FROM \"{}\" WHERE ",
                schema.name
            ))
            .in_list("\"id\"", chunk.iter().copied());
            for row in self.db.conn.query_all_raw(sql.statement()).await? {
                let record = Self::to_record(&row, &fields)?;
                records.insert(row.try_get::<i64>("", "id")?, record);
            }
        }
        Ok(records)
    }

    /// Changes records inside the caller's transaction (the engine step that decided the
    /// change commits them together). Each item is checked on its own: an item that does not
    /// fit the schema or would break a unique field comes back with its index and error, and
    /// the rest are applied.
    pub async fn update_within(
        &self,
        txn: &DatabaseTransaction,
        who: &Principal,
        entity: &str,
        items: &[(i64, Json)],
    ) -> Result<Vec<ItemError>> {
        let schema = self.entity(entity).await?;
        self.require(who, entity, Op::Edit).await?;
        if schema.append_only {
            return Err(append_only(entity));
        }
        let keys = key_index(&schema);
        let scope = self.scope_expr(who, entity, Utc::now()).await?;
        let mut refused = Vec::new();
        let mut good = Vec::with_capacity(items.len());
        for (i, (id, patch)) in items.iter().enumerate() {
            match Self::parse_item(who, &schema, &keys, patch, Mode::Update, Some(i))? {
                Ok(parsed) => good.push((i, *id, parsed)),
                Err(mut errors) => refused.append(&mut errors),
            }
        }
        let refs: Vec<(Option<usize>, &Parsed)> =
            good.iter().map(|(i, _, p)| (Some(*i), p)).collect();
        if let Err(StorageError::Invalid(mut errors)) =
            self.check_references(txn, who, &schema, &refs).await
        {
            refused.append(&mut errors);
        }
        let uniq: Vec<(Option<usize>, Option<i64>, &Parsed)> = good
            .iter()
            .map(|(i, id, p)| (Some(*i), Some(*id), p))
            .collect();
        if let Err(StorageError::Conflict(mut errors)) =
            self.check_unique(txn, who, &schema, &uniq).await
        {
            refused.append(&mut errors);
        }
        let bad: BTreeSet<usize> = refused.iter().filter_map(|e| e.index).collect();
        for (i, id, parsed) in &good {
            if !bad.contains(i) {
                self.update_row(txn, &schema, *id, parsed, scope.as_ref())
                    .await?;
            }
        }
        Ok(refused)
    }
}

fn append_only(entity: &str) -> StorageError {
    StorageError::invalid(ItemError {
        index: None,
        field: None,
        code: "append_only",
        message: format!("{entity} entries are never changed; record a correcting entry instead"),
    })
}

fn changed_fields(schema: &EntitySchema, parsed: &Parsed) -> String {
    let keys: Vec<&str> = parsed
        .given()
        .map(|(at, _)| schema.fields[at].key.as_str())
        .collect();
    format!("fields: {}", keys.join(", "))
}

/// A unique index refused a row that the pre-checks let through (a concurrent writer).
fn unique_violation(e: DbErr) -> StorageError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => {
            StorageError::Conflict(vec![ItemError {
                index: None,
                field: None,
                code: "duplicate",
                message: format!("a unique value is taken by another record ({detail})"),
            }])
        }
        _ => StorageError::Database(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_array_literals_quote_and_escape() {
        let values = [
            Some(StoredValue::Text(r#"a "quoted" \ name"#.into())),
            None,
            Some(StoredValue::Null),
            Some(StoredValue::Int(-5)),
            Some(StoredValue::Bool(true)),
            Some(StoredValue::Text("NULL".into())),
        ];
        assert_eq!(
            pg_array(values.iter().map(Option::as_ref)),
            r#"{"a \"quoted\" \\ name",NULL,NULL,-5,t,"NULL"}"#
        );
    }
}
