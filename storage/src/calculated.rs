//! Calculated attributes (DM-9): a tourist field that tabiji keeps from a history store: how
//! many purchases, their total, the first and last purchase, within a rolling period and a
//! filter over the rows. The field is an ordinary field for everything that reads (filters,
//! sorts, exports, SQL, field rights) and read-only to every user.
//!
//! Kept up to date two ways: incrementally, for the tourists whose history rows are new or
//! changed since the last look (a watermark on the store's ids and update times; at once after
//! an import into the store, and by the worker every `calculated_every`), and by batch,
//! for everyone, once a day in the zone (so rolling periods move and deleted rows are
//! forgotten) and whenever asked. Both are one set-based `UPDATE … FROM (aggregate)`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, Func, Order, PostgresQueryBuilder, Query, SelectStatement,
    SqliteQueryBuilder,
};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, SqlErr, Statement};
use serde::{Deserialize, Serialize};
use tabiji_model::field::{FieldDef, FieldType, Label};
use tabiji_model::filter::{FieldTest, Filter, Operator, Period, ValueKind};
use tabiji_model::zone::Zone;
use tabiji_model::{EntitySchema, Op};

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;
use crate::schemas;
use crate::search::{Compiler, parse_zone};

/// The entity calculated attributes are kept on.
pub const OWNER: &str = "tourists";

/// What a calculated attribute measures over the rows of its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Count,
    Sum(String),
    Avg(String),
    Min(String),
    Max(String),
    /// The time of the first row.
    FirstAt,
    /// The time of the last row.
    LastAt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCalculated {
    /// The tourist field it fills; created with the attribute.
    pub key: String,
    pub label: Label,
    /// A history store of tourists (`purchases`, `point_ledger`, a custom one).
    pub store: String,
    pub measure: Measure,
    /// Only the store's rows this filter matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only rows whose time falls in this period, read afresh every day (`{"last_days": 365}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calculated {
    #[serde(flatten)]
    pub definition: NewCalculated,
    /// When every tourist was last recomputed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

/// The store's owner and time fields, or why it is not a history of tourists.
fn history_fields(schema: &EntitySchema) -> Result<(String, String)> {
    match (&schema.parent, &schema.time_field) {
        (Some(parent), Some(time)) if parent.entity == OWNER => {
            Ok((parent.field.clone(), time.clone()))
        }
        _ => Err(invalid(
            "store",
            "not_a_history_store",
            format!("{} is not a history of tourists", schema.name),
        )),
    }
}

/// The type of the field a measure fills, checked against the store.
fn field_type(schema: &EntitySchema, measure: &Measure) -> Result<FieldType> {
    let numeric = |key: &str| -> Result<FieldType> {
        match schema.field(key).map(|f| (f, ValueKind::of(&f.ty))) {
            Some((f, ValueKind::Int | ValueKind::Float)) => Ok(f.ty.clone()),
            Some(_) => Err(invalid(
                "measure",
                "not_numeric",
                format!("{}.{key} is not a number", schema.name),
            )),
            None => Err(invalid(
                "measure",
                "unknown_field",
                format!("{} has no field {key:?}", schema.name),
            )),
        }
    };
    Ok(match measure {
        Measure::Count => FieldType::integer(),
        Measure::Sum(k) | Measure::Min(k) | Measure::Max(k) => numeric(k)?,
        Measure::Avg(k) => {
            numeric(k)?;
            FieldType::Decimal
        }
        Measure::FirstAt | Measure::LastAt => FieldType::Timestamp,
    })
}

/// The aggregate over the store's rows, and the value a tourist without rows gets.
fn aggregate(measure: &Measure, time: &str) -> (Expr, Option<i64>) {
    match measure {
        Measure::Count => (Expr::cust("COUNT(*)"), Some(0)),
        Measure::Sum(k) => (Func::sum(Expr::col(col(k))).into(), Some(0)),
        Measure::Avg(k) => (Func::avg(Expr::col(col(k))).into(), None),
        Measure::Min(k) => (Func::min(Expr::col(col(k))).into(), None),
        Measure::Max(k) => (Func::max(Expr::col(col(k))).into(), None),
        Measure::FirstAt => (Func::min(Expr::col(col(time))).into(), None),
        Measure::LastAt => (Func::max(Expr::col(col(time))).into(), None),
    }
}

/// The store rows an attribute counts, as a condition on the store's own columns.
async fn rows_condition(
    store: &Store,
    who: Option<&Principal>,
    def: &NewCalculated,
    zone: Zone,
    now: DateTime<Utc>,
) -> Result<Expr> {
    let schema = store.entity_schema(&def.store).await?;
    let (_, time) = history_fields(&schema)?;
    let mut parts: Vec<Filter> = def.filter.iter().cloned().collect();
    if let Some(period) = &def.period {
        parts.push(Filter::Field(FieldTest {
            key: time,
            op: Operator::InPeriod,
            value: Some(serde_json::to_value(period).expect("a period serialises")),
        }));
    }
    let resolved = store
        .resolve_filter(who, &def.store, &Filter::All(parts), zone, now)
        .await?;
    Ok(Compiler::new(store.db().backend(), &schema).cond(&resolved.cond))
}

fn render(backend: DbBackend, q: &SelectStatement) -> (String, sea_orm::sea_query::Values) {
    match backend {
        DbBackend::Postgres => q.build(PostgresQueryBuilder),
        _ => q.build(SqliteQueryBuilder),
    }
}

/// Recomputes an attribute for every tourist, or for `owners` only. Answers the tourists whose
/// value changed.
pub async fn refresh(
    store: &Store,
    def: &NewCalculated,
    owners: Option<&[i64]>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let schema = store.entity_schema(&def.store).await?;
    let (owner, time) = history_fields(&schema)?;
    let backend = store.db().backend();
    let condition = rows_condition(store, None, def, parse_zone(None)?, now).await?;
    let (value, empty) = aggregate(&def.measure, &time);
    let mut per_owner = Query::select();
    per_owner
        .expr_as(Expr::col(col(&owner)), col("owner"))
        .expr_as(value, col("v"))
        .from(col(&def.store))
        .and_where(Expr::col(col(&owner)).is_not_null())
        .and_where(condition.clone())
        .group_by_col(col(&owner));
    let mut matching = Query::select();
    matching
        .column(col(&owner))
        .from(col(&def.store))
        .and_where(Expr::col(col(&owner)).is_not_null())
        .and_where(condition);
    if let Some(ids) = owners {
        per_owner.and_where(Expr::col(col(&owner)).is_in(ids.iter().copied()));
        // Only these tourists' rows: otherwise the reset below reads every owner's.
        matching.and_where(Expr::col(col(&owner)).is_in(ids.iter().copied()));
    }
    let (sub, values) = render(backend, &per_owner);
    let key = format!("\"{}\"", def.key);
    let differs = if backend == DbBackend::Postgres {
        "IS DISTINCT FROM"
    } else {
        "IS NOT"
    };
    let set = format!(
        "UPDATE {OWNER} SET {key} = s.v FROM ({sub}) AS s \
         WHERE {OWNER}.id = s.owner AND {OWNER}.{key} {differs} s.v"
    );
    let conn = &store.db().conn;
    let mut changed = conn
        .execute_raw(Statement::from_sql_and_values(backend, set, values))
        .await?
        .rows_affected();
    // Tourists with no rows (any more) get zero or nothing.
    let empty_value = match empty {
        Some(n) => n.to_string(),
        None => "NULL".into(),
    };
    let (rows, values) = render(backend, &matching);
    let mut reset = format!(
        "UPDATE {OWNER} SET {key} = {empty_value} WHERE {key} {differs} {empty_value} \
         AND id NOT IN ({rows})"
    );
    if let Some(ids) = owners {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        if list.is_empty() {
            return Ok(changed);
        }
        reset.push_str(&format!(" AND id IN ({})", list.join(", ")));
    }
    changed += conn
        .execute_raw(Statement::from_sql_and_values(backend, reset, values))
        .await?
        .rows_affected();
    Ok(changed)
}

const COLUMNS: [&str; 6] = [
    "key",
    "definition",
    "watermark_id",
    "watermark_at",
    "full_at",
    "created_by",
];

struct Stored {
    id: i64,
    definition: NewCalculated,
    watermark_id: i64,
    watermark_at: i64,
    full_at: Option<i64>,
    created_by: String,
}

fn from_row(row: &QueryResult) -> Result<Stored> {
    let key: String = row.try_get("", "key")?;
    let definition: String = row.try_get("", "definition")?;
    Ok(Stored {
        id: row.try_get("", "id")?,
        definition: serde_json::from_str(&definition).map_err(|e| {
            invalid(
                "definition",
                "corrupt_calculated",
                format!("the stored definition of {key:?} could not be read: {e}"),
            )
        })?,
        watermark_id: row.try_get("", "watermark_id")?,
        watermark_at: row.try_get("", "watermark_at")?,
        full_at: row.try_get("", "full_at")?,
        created_by: row.try_get("", "created_by")?,
    })
}

async fn stored(store: &Store, key: Option<&str>) -> Result<Vec<Stored>> {
    let mut q = Query::select();
    q.column(col("id"))
        .columns(COLUMNS.map(col))
        .from(col("sys_calculated"))
        .order_by(col("key"), Order::Asc);
    if let Some(key) = key {
        q.and_where(Expr::col(col("key")).eq(key));
    }
    let rows = store.db().conn.query_all(&q).await?;
    rows.iter().map(from_row).collect()
}

fn shown(s: Stored) -> Calculated {
    Calculated {
        definition: s.definition,
        full_at: s.full_at.and_then(DateTime::from_timestamp_millis),
        created_by: s.created_by,
    }
}

/// Defines an attribute: adds its tourist field, stores the definition and computes it for
/// every tourist. Needs the schema right on tourists and the right to view what it reads.
pub async fn create(
    store: &Store,
    who: &Principal,
    new: &NewCalculated,
    now: DateTime<Utc>,
) -> Result<Calculated> {
    store.require(who, OWNER, Op::Schema).await?;
    store
        .require_every_record(who, OWNER, "defining a calculated attribute")
        .await?;
    let history = store.entity_schema(&new.store).await.map_err(|_| {
        invalid(
            "store",
            "unknown_store",
            format!("there is no history store {:?}", new.store),
        )
    })?;
    history_fields(&history)?;
    store.require(who, &new.store, Op::View).await?;
    let ty = field_type(&history, &new.measure)?;
    if let Measure::Sum(k) | Measure::Avg(k) | Measure::Min(k) | Measure::Max(k) = &new.measure
        && !who.rights.can_view_field(&new.store, k)
    {
        return Err(StorageError::Forbidden {
            entity: new.store.clone(),
            op: Op::View.name(),
            field: Some(k.clone()),
        });
    }
    // The filter and period are checked as the author may see them.
    rows_condition(store, Some(who), new, parse_zone(None)?, now)
        .await
        .map_err(|e| match e {
            StorageError::Invalid(errors) => StorageError::Invalid(
                errors
                    .into_iter()
                    .map(|mut e| {
                        // Paths point into the definition as written, not the combined filter.
                        let period_at = if new.filter.is_some() {
                            "filter.all[1]"
                        } else {
                            "filter.all[0]"
                        };
                        e.field = e.field.map(|f| {
                            if new.filter.is_some() && f.starts_with("filter.all[0]") {
                                f.replacen("filter.all[0]", "filter", 1)
                            } else if new.period.is_some() && f.starts_with(period_at) {
                                "period".into()
                            } else {
                                f
                            }
                        });
                        e
                    })
                    .collect(),
            ),
            other => other,
        })?;
    let tourists = store.entity_schema(OWNER).await?;
    schemas::add_kept_field(
        store.db(),
        &tourists,
        FieldDef {
            key: new.key.clone(),
            label: new.label.clone(),
            ty,
            required: false,
            unique: false,
            nfkc: false,
            read_only: true,
            builtin: false,
            indexed: false,
        },
    )
    .await?;
    store.reload_schemas().await?;
    let insert = Query::insert()
        .into_table(col("sys_calculated"))
        .columns(COLUMNS.map(col))
        .values_panic([
            new.key.as_str().into(),
            serde_json::to_string(new)
                .expect("a definition serialises")
                .into(),
            0i64.into(),
            0i64.into(),
            None::<i64>.into(),
            who.login.as_str().into(),
        ])
        .to_owned();
    store.db().conn.execute(&insert).await.map_err(|e| {
        if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            StorageError::Conflict(vec![ItemError::field(
                "key",
                "duplicate_key",
                format!("{:?} is calculated already", new.key),
            )])
        } else {
            e.into()
        }
    })?;
    store
        .log(
            who,
            "schema",
            OWNER,
            None,
            "ok",
            Some(format!("calculated {}", new.key)),
        )
        .await?;
    refresh_stored(store, &new.key, true, now).await?;
    get(store, who, &new.key).await
}

pub async fn list(store: &Store, who: &Principal) -> Result<Vec<Calculated>> {
    store.require(who, OWNER, Op::View).await?;
    Ok(stored(store, None)
        .await?
        .into_iter()
        .filter(|s| who.rights.can_view_field(OWNER, &s.definition.key))
        .map(shown)
        .collect())
}

pub async fn get(store: &Store, who: &Principal, key: &str) -> Result<Calculated> {
    store.require(who, OWNER, Op::View).await?;
    stored(store, Some(key))
        .await?
        .into_iter()
        .find(|s| who.rights.can_view_field(OWNER, &s.definition.key))
        .map(shown)
        .ok_or_else(|| StorageError::NoSuch {
            kind: "calculated attribute",
            name: key.to_string(),
        })
}

/// Stops keeping an attribute; its field stays with the last values, read-only.
pub async fn delete(store: &Store, who: &Principal, key: &str) -> Result<()> {
    store.require(who, OWNER, Op::Schema).await?;
    get(store, who, key).await?;
    let q = Query::delete()
        .from_table(col("sys_calculated"))
        .and_where(Expr::col(col("key")).eq(key))
        .to_owned();
    store.db().conn.execute(&q).await?;
    store
        .log(
            who,
            "schema",
            OWNER,
            None,
            "ok",
            Some(format!("stopped calculating {key}")),
        )
        .await?;
    Ok(())
}

/// Recomputes one attribute now, for every tourist; needs the schema right on tourists.
pub async fn refresh_now(
    store: &Store,
    who: &Principal,
    key: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    store.require(who, OWNER, Op::Schema).await?;
    store
        .require_every_record(who, OWNER, "refreshing a calculated attribute")
        .await?;
    get(store, who, key).await?;
    refresh_stored(store, key, true, now).await
}

/// Brings one attribute up to date: everyone (`full`), or the tourists whose rows are new or
/// changed since its watermark.
async fn refresh_stored(store: &Store, key: &str, full: bool, now: DateTime<Utc>) -> Result<u64> {
    let Some(s) = stored(store, Some(key)).await?.into_iter().next() else {
        return Ok(0);
    };
    let def = &s.definition;
    let schema = store.entity_schema(&def.store).await?;
    let (owner, _) = history_fields(&schema)?;
    let conn = &store.db().conn;
    // The watermark is read before the rows, so a row written meanwhile is seen next time; it
    // is the store's own highest id and update time, so no clock but the rows' counts.
    let mut top = Query::select();
    top.expr_as(Func::max(Expr::col(col("id"))), col("top"))
        .expr_as(Func::max(Expr::col(col("updated_at"))), col("top_at"))
        .from(col(&def.store));
    let row = conn.query_one(&top).await?;
    let top: i64 = row
        .as_ref()
        .and_then(|r| r.try_get::<Option<i64>>("", "top").ok().flatten())
        .unwrap_or(0);
    let top_at: i64 = row
        .as_ref()
        .and_then(|r| {
            r.try_get::<Option<DateTime<Utc>>>("", "top_at")
                .ok()
                .flatten()
        })
        .map_or(s.watermark_at, |t| t.timestamp_millis());
    let changed = if full {
        refresh(store, def, None, now).await?
    } else {
        // Append-only stores (purchases, the point ledger) only gain rows: the id watermark
        // alone finds them through the primary key. Others are also read for changed rows.
        let new_rows = Expr::col(col("id")).gt(s.watermark_id);
        let wanted = if schema.append_only {
            new_rows
        } else {
            new_rows.or(Expr::col(col("updated_at"))
                .gt(DateTime::from_timestamp_millis(s.watermark_at).unwrap_or_default()))
        };
        let mut touched = Query::select();
        touched
            .distinct()
            .column(col(&owner))
            .from(col(&def.store))
            .and_where(Expr::col(col(&owner)).is_not_null())
            .and_where(wanted);
        let owners: Vec<i64> = conn
            .query_all(&touched)
            .await?
            .iter()
            .map(|r| r.try_get::<i64>("", &owner))
            .collect::<std::result::Result<_, _>>()?;
        let mut changed = 0;
        for chunk in owners.chunks(5_000) {
            changed += refresh(store, def, Some(chunk), now).await?;
        }
        changed
    };
    let mut mark = Query::update();
    mark.table(col("sys_calculated"))
        .value(col("watermark_id"), top)
        .value(col("watermark_at"), top_at)
        .and_where(Expr::col(col("id")).eq(s.id));
    if full {
        mark.value(col("full_at"), now.timestamp_millis());
    }
    conn.execute(&mark).await?;
    Ok(changed)
}

/// Brings the attributes kept from `entity` up to date for the tourists whose rows are new or
/// changed (CF-9: right after an import wrote them, rather than at the worker's next look).
/// Answers the tourists changed.
pub async fn refresh_from(store: &Store, entity: &str, now: DateTime<Utc>) -> Result<u64> {
    let mut changed = 0;
    for s in stored(store, None).await? {
        if s.definition.store == entity {
            changed += refresh_stored(store, &s.definition.key, false, now).await?;
        }
    }
    Ok(changed)
}

/// What the worker does every `calculated_every`: each attribute incrementally, and in full
/// once a day (when the day in `zone` has changed since its last full refresh). Answers the
/// tourists changed.
pub async fn tick(store: &Store, zone: Zone, now: DateTime<Utc>) -> Result<u64> {
    let mut changed = 0;
    for s in stored(store, None).await? {
        let today = zone.local(now).date();
        let full = s
            .full_at
            .and_then(DateTime::from_timestamp_millis)
            .is_none_or(|at| zone.local(at).date() != today);
        changed += refresh_stored(store, &s.definition.key, full, now).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests;
