//! Finding records with a [`Filter`]: compiled to one SQL statement for SQLite or PostgreSQL,
//! sorted on any field, paged by keyset, counted.
//!
//! The caller's rights apply to the filter as to the results: a filter may only test fields
//! the caller may view (a count over a hidden field would reveal it), message and flow
//! conditions need the right to view flows, and the records come back with only the fields
//! the caller may view.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, Func, JoinType, Order, Query, SelectStatement, Value,
};
use sea_orm::{ConnectionTrait, DbBackend};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tabiji_model::filter::{
    Aggregate, Cond, DRAW_MASK, DRAW_MIX, DRAW_MULTIPLIER, DRAW_SCALE, DRAW_SEED_STEP, Draw,
    Filter, FilterError, HistoryCond, JourneyStatus, MessageStatus, Resolved, Resolver, Test,
    ValueKind, system_field,
};
use tabiji_model::zone::Zone;
use tabiji_model::{EntitySchema, Op, StoredValue};

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::flows::FLOWS;
use crate::lists;
use crate::records::{MAX_PAGE, Record, Store};
use crate::segments;
use crate::workspace;

/// The zone relative periods are read in when a request names none.
pub const DEFAULT_ZONE: &str = "Asia/Tokyo";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Every record when left out.
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub sort: Option<Sort>,
    /// The `next_after` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<u64>,
    /// Also count every matching record.
    #[serde(default)]
    pub count: bool,
    /// The zone "today" and "this month" are read in; Asia/Tokyo when left out.
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sort {
    pub field: String,
    #[serde(default)]
    pub desc: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    pub items: Vec<Record>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn filter_errors(errors: Vec<FilterError>) -> StorageError {
    StorageError::Invalid(
        errors
            .into_iter()
            .map(|e| ItemError::field(&e.path, e.code, e.message))
            .collect(),
    )
}

pub fn parse_zone(zone: Option<&str>) -> Result<Zone> {
    let name = zone.unwrap_or(DEFAULT_ZONE);
    Zone::parse(name).ok_or_else(|| {
        StorageError::invalid(ItemError::field(
            "zone",
            "unknown_zone",
            format!("{name:?} is not a time zone (try Asia/Tokyo, UTC or +09:00)"),
        ))
    })
}

fn value_of(v: &StoredValue) -> Value {
    match v {
        StoredValue::Null => Value::String(None),
        StoredValue::Text(s) | StoredValue::Secret(s) => Value::String(Some(s.clone())),
        StoredValue::Int(n) => Value::BigInt(Some(*n)),
        StoredValue::Float(f) => Value::Double(Some(*f)),
        StoredValue::Bool(b) => Value::Bool(Some(*b)),
        StoredValue::Date(d) => Value::ChronoDate(Some(*d)),
        StoredValue::Timestamp(t) => Value::ChronoDateTimeUtc(Some(*t)),
    }
}

fn val(v: &StoredValue) -> Expr {
    Expr::val(value_of(v))
}

/// `%`, `_` and the escape character `!` taken literally in a LIKE pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// Compiles resolved conditions for one backend.
pub struct Compiler {
    pub backend: DbBackend,
    /// The entity the conditions are about.
    pub table: String,
    /// Its fields with an index of their own (and `id`).
    pub indexed: BTreeSet<String>,
}

/// Whether a condition costs a subquery: evaluated after the plain field tests of its group.
fn costly(cond: &Cond) -> bool {
    match cond {
        Cond::Field { .. } => false,
        Cond::All(items) | Cond::Any(items) => items.iter().any(costly),
        Cond::Not(inner) => costly(inner),
        Cond::History(_)
        | Cond::Message { .. }
        | Cond::Journey { .. }
        | Cond::Sample { .. }
        | Cond::InTable { .. }
        | Cond::InParent { .. }
        | Cond::InList { .. } => true,
    }
}

impl Compiler {
    /// A compiler for conditions about `schema`'s records.
    pub fn new(backend: DbBackend, schema: &EntitySchema) -> Compiler {
        let mut indexed: BTreeSet<String> = schema
            .fields
            .iter()
            .filter(|f| f.indexed || f.unique)
            .map(|f| f.key.clone())
            .collect();
        indexed.insert("id".into());
        if let Some(parent) = &schema.parent {
            indexed.insert(parent.field.clone());
        }
        Compiler {
            backend,
            table: schema.name.clone(),
            indexed,
        }
    }

    /// Whether a test can pick its records from an index: then the group it is in holds few
    /// candidates, and history conditions beside it are better evaluated per candidate.
    fn narrows(&self, cond: &Cond) -> bool {
        match cond {
            Cond::Field { key, test, .. } => {
                self.indexed.contains(key)
                    && matches!(
                        test,
                        Test::Eq(_)
                            | Test::In(_)
                            | Test::Lt(_)
                            | Test::Lte(_)
                            | Test::Gt(_)
                            | Test::Gte(_)
                            | Test::Between(..)
                            | Test::Range(..)
                    )
            }
            Cond::All(items) => items.iter().any(|c| self.narrows(c)),
            _ => false,
        }
    }

    pub fn cond(&self, cond: &Cond) -> Expr {
        self.cond_in(cond, false)
    }

    /// `per_candidate`: the enclosing group narrows to few records by an index.
    fn cond_in(&self, cond: &Cond, per_candidate: bool) -> Expr {
        match cond {
            Cond::All(items) => {
                let per_candidate = per_candidate || items.iter().any(|c| self.narrows(c));
                // Plain field tests first: the database meets the subqueries only for the
                // records that pass them.
                let (cheap, dear): (Vec<&Cond>, Vec<&Cond>) =
                    items.iter().partition(|c| !costly(c));
                cheap
                    .into_iter()
                    .chain(dear)
                    .map(|c| self.cond_in(c, per_candidate))
                    .reduce(|a, b| a.and(b))
                    .unwrap_or_else(|| Expr::cust("1 = 1"))
            }
            Cond::History(h) if per_candidate => self.history_per_candidate(h),
            Cond::Any(items) => items
                .iter()
                .map(|c| self.cond_in(c, per_candidate))
                .reduce(|a, b| a.or(b))
                .unwrap_or_else(|| Expr::cust("1 = 0")),
            Cond::Not(inner) => self.cond_in(inner, per_candidate).not(),
            Cond::Field { key, kind, test } => self.test(Expr::col(col(key)), *kind, test),
            Cond::History(h) => self.history(h),
            Cond::Message {
                flow,
                node,
                template,
                status,
                from_ms,
                to_ms,
            } => {
                let mut q = Query::select();
                let time = match status {
                    MessageStatus::Sent | MessageStatus::Failed => {
                        q.column((col("d"), col("contact_id")))
                            .from_as(col("sys_deliveries"), col("d"))
                            .and_where(Expr::col((col("d"), col("status"))).eq(
                                if *status == MessageStatus::Sent {
                                    "sent"
                                } else {
                                    "dead"
                                },
                            ));
                        (col("d"), col("updated_at"))
                    }
                    MessageStatus::Opened | MessageStatus::Clicked => {
                        q.column((col("e"), col("contact_id")))
                            .from_as(col("sys_events"), col("e"))
                            .and_where(Expr::col((col("e"), col("name"))).eq(
                                if *status == MessageStatus::Opened {
                                    "opened"
                                } else {
                                    "clicked"
                                },
                            ));
                        if flow.is_some() || template.is_some() {
                            q.join_as(
                                JoinType::InnerJoin,
                                col("sys_deliveries"),
                                col("d"),
                                Expr::col((col("d"), col("id")))
                                    .equals((col("e"), col("delivery_id"))),
                            );
                        }
                        (col("e"), col("occurred_at"))
                    }
                };
                if let Some(flow) = flow {
                    q.and_where(Expr::col((col("d"), col("flow_id"))).eq(*flow));
                }
                if let Some(node) = node {
                    q.and_where(Expr::col((col("d"), col("node"))).eq(node.as_str()));
                }
                if let Some(template) = template {
                    q.and_where(Expr::col((col("d"), col("template"))).eq(template.as_str()));
                }
                if let Some(from) = from_ms {
                    q.and_where(Expr::col(time.clone()).gte(*from));
                }
                if let Some(to) = to_ms {
                    q.and_where(Expr::col(time).lt(*to));
                }
                Expr::col(col("id")).in_subquery(q)
            }
            Cond::Sample {
                table,
                of,
                draw,
                seed,
            } => Expr::col(col("id")).in_subquery(self.sample(table, of, *draw, *seed)),
            Cond::InList { list } => {
                let mut q = Query::select();
                q.column(col("record_id"))
                    .from(col("sys_list_members"))
                    .and_where(Expr::col(col("list_id")).eq(*list));
                Expr::col(col("id")).in_subquery(q)
            }
            Cond::InParent {
                field,
                entity,
                cond,
            } => {
                let parent = Compiler {
                    backend: self.backend,
                    table: entity.clone(),
                    indexed: BTreeSet::from(["id".to_string()]),
                };
                let mut q = Query::select();
                q.column(col("id"))
                    .from(col(entity))
                    .and_where(parent.cond(cond));
                Expr::col(col(field)).in_subquery(q)
            }
            Cond::InTable { name, column } => {
                let mut q = Query::select();
                q.column(col(column))
                    .from(col(&workspace::physical_name(name)))
                    .and_where(Expr::col(col(column)).is_not_null());
                Expr::col(col("id")).in_subquery(q)
            }
            Cond::Journey { flow, at, status } => {
                let mut q = Query::select();
                q.column(col("contact_id"))
                    .from(col("sys_runs"))
                    .and_where(Expr::col(col("flow_id")).eq(*flow));
                match status {
                    JourneyStatus::Entered => {}
                    JourneyStatus::Active => {
                        q.and_where(Expr::col(col("state")).eq("waiting"));
                    }
                    JourneyStatus::Finished => {
                        q.and_where(Expr::col(col("state")).eq("finished"));
                    }
                    JourneyStatus::ReachedGoal => {
                        q.and_where(Expr::col(col("outcome")).like("goal:%"));
                    }
                }
                if let Some(at) = at {
                    q.and_where(Expr::col(col("state")).eq("waiting"))
                        .and_where(Expr::col(col("node")).eq(at.as_str()));
                }
                Expr::col(col("id")).in_subquery(q)
            }
        }
    }

    /// The ids a draw takes: each record ranked by [`tabiji_model::filter::draw_rank`], computed
    /// layer by layer in derived tables so that no step's text repeats the one before.
    fn sample(&self, table: &str, of: &Cond, draw: Draw, seed: u32) -> SelectStatement {
        let mut base = Query::select();
        base.column(col("id"))
            .expr_as(
                self.custom(
                    &format!("((? * {DRAW_MULTIPLIER} + ?) & {DRAW_MASK})"),
                    vec![
                        Expr::col(col("id")),
                        Expr::val(i64::from(seed) * DRAW_SEED_STEP),
                    ],
                ),
                col("x"),
            )
            .from(col(table))
            .and_where(self.cond(of));
        let xor_shift = |x: &str| {
            let x = || Expr::col(col(x));
            self.custom(
                "((? | (? >> 16)) - (? & (? >> 16)))",
                vec![x(), x(), x(), x()],
            )
        };
        let mut layer = base;
        for round in 0..2 {
            let mut next = Query::select();
            next.column(col("id"))
                .expr_as(
                    self.custom(
                        &format!("((? * {DRAW_MIX}) & {DRAW_MASK})"),
                        vec![xor_shift("x")],
                    ),
                    col("x"),
                )
                .from_subquery(layer, col(&format!("r{round}")));
            layer = next;
        }
        let mut ranked = Query::select();
        ranked
            .column(col("id"))
            .expr_as(xor_shift("x"), col("rank"))
            .from_subquery(layer, col("r2"));
        let mut q = Query::select();
        q.column(col("id")).from_subquery(ranked, col("ranked"));
        match draw {
            Draw::PerMillion(n) => {
                q.and_where(self.custom(
                    &format!("(? % {DRAW_SCALE}) < ?"),
                    vec![Expr::col(col("rank")), Expr::val(n)],
                ));
            }
            Draw::Count(n) => {
                q.order_by(col("rank"), Order::Asc)
                    .order_by(col("id"), Order::Asc)
                    .limit(n);
            }
        }
        q
    }

    /// A history condition as a subquery about one record (`… WHERE owner = tourists.id`),
    /// evaluated for each candidate the rest of its group let through.
    fn history_per_candidate(&self, h: &HistoryCond) -> Expr {
        let mut q = Query::select();
        q.from(col(&h.store))
            .and_where(
                Expr::col((col(&h.store), col(&h.owner_field)))
                    .equals((col(&self.table), col("id"))),
            )
            .and_where(self.cond(&h.rows));
        if h.measure == Aggregate::Count && is_any_row(&h.test) {
            q.expr(Expr::val(1));
            return Expr::exists(q);
        }
        // One aggregate row per candidate, tested in HAVING: the rows are read once, and a
        // candidate with no rows still yields its row (COUNT 0, COALESCE(SUM, 0), or NULL for
        // averages, minimums and times, whose tests then fail), so EXISTS is exactly the test.
        let (measure, kind) = self.measure(&h.measure);
        // The measure is selected too: that is what makes it an aggregate query to SQLite.
        q.expr(measure.clone()).and_having(
            measure
                .clone()
                .is_not_null()
                .and(self.test(measure, kind, &h.test)),
        );
        Expr::exists(q)
    }

    fn measure(&self, measure: &Aggregate) -> (Expr, ValueKind) {
        match measure {
            Aggregate::Count => (Expr::cust("COUNT(*)"), ValueKind::Int),
            Aggregate::Sum(k) => (
                Func::coalesce([Expr::from(Func::sum(Expr::col(col(k)))), Expr::val(0i64)]).into(),
                ValueKind::Float,
            ),
            Aggregate::Avg(k) => (Func::avg(Expr::col(col(k))).into(), ValueKind::Float),
            Aggregate::Min(k) => (Func::min(Expr::col(col(k))).into(), ValueKind::Float),
            Aggregate::Max(k) => (Func::max(Expr::col(col(k))).into(), ValueKind::Float),
            Aggregate::First(k) => (Func::min(Expr::col(col(k))).into(), ValueKind::Timestamp),
            Aggregate::Last(k) => (Func::max(Expr::col(col(k))).into(), ValueKind::Timestamp),
        }
    }

    fn history(&self, h: &HistoryCond) -> Expr {
        let mut q = Query::select();
        q.column(col(&h.owner_field))
            .from(col(&h.store))
            .and_where(self.cond(&h.rows));
        if h.measure == Aggregate::Count && is_any_row(&h.test) {
            return Expr::col(col("id")).in_subquery(q);
        }
        let (measure, kind) = self.measure(&h.measure);
        // Strict: an owner whose rows have no value to measure (an average of nothing) fails.
        let test = measure
            .clone()
            .is_not_null()
            .and(self.test(measure, kind, &h.test));
        q.group_by_col(col(&h.owner_field));
        if h.holds_for_none {
            // Everyone but the owners whose rows fail the test: owners with no rows pass.
            q.and_having(test.not());
            Expr::col(col("id")).not_in_subquery(q)
        } else {
            q.and_having(test);
            Expr::col(col("id")).in_subquery(q)
        }
    }

    /// A custom SQL fragment with `?` where each expression goes, in this backend's placeholders.
    pub(crate) fn custom(&self, template: &str, exprs: Vec<Expr>) -> Expr {
        let text = if self.backend == DbBackend::Postgres {
            let mut n = 0;
            template
                .split('?')
                .enumerate()
                .map(|(i, part)| {
                    if i == 0 {
                        part.to_string()
                    } else {
                        n += 1;
                        format!("${n}{part}")
                    }
                })
                .collect()
        } else {
            template.to_string()
        };
        Expr::cust_with_exprs(text, exprs)
    }

    /// LIKE ignoring the case of Latin letters (ILIKE on PostgreSQL), `!` escaping.
    fn contains(&self, subject: Expr, pattern: String) -> Expr {
        let template = match self.backend {
            DbBackend::Postgres => "? ILIKE ? ESCAPE '!'",
            _ => "? LIKE ? ESCAPE '!'",
        };
        self.custom(template, vec![subject, Expr::val(pattern)])
    }

    fn holds_option(&self, subject: Expr, option: &str) -> Expr {
        let quoted = serde_json::to_string(option).expect("a string serialises");
        let function = match self.backend {
            DbBackend::Postgres => "strpos(?, ?) > 0",
            _ => "instr(?, ?) > 0",
        };
        self.custom(function, vec![subject, Expr::val(quoted)])
    }

    /// Whether the choices held include any (or, with `all`, every) one of `options`.
    fn options(&self, subject: &Expr, options: &[String], all: bool) -> Expr {
        options
            .iter()
            .map(|o| self.holds_option(subject.clone(), o))
            .reduce(|a, b| if all { a.and(b) } else { a.or(b) })
            .expect("option lists are never empty")
    }

    /// A two-valued test: never NULL, so `not` around it means what it says.
    fn test(&self, subject: Expr, kind: ValueKind, test: &Test) -> Expr {
        let present = || {
            let mut e = subject.clone().is_not_null();
            if matches!(kind, ValueKind::Text | ValueKind::Choices) {
                e = e.and(subject.clone().ne(""));
            }
            if kind == ValueKind::Choices {
                e = e.and(subject.clone().ne("[]"));
            }
            e
        };
        let guard = |e: Expr| subject.clone().is_not_null().and(e);
        let or_missing = |e: Expr| subject.clone().is_null().or(e);
        match test {
            Test::Empty => present().not(),
            Test::NotEmpty => present(),
            Test::Eq(v) => guard(subject.clone().eq(val(v))),
            Test::Ne(v) => or_missing(subject.clone().ne(val(v))),
            Test::In(vs) => guard(subject.clone().is_in(vs.iter().map(value_of))),
            Test::NotIn(vs) => or_missing(subject.clone().is_not_in(vs.iter().map(value_of))),
            Test::Lt(v) => guard(subject.clone().lt(val(v))),
            Test::Lte(v) => guard(subject.clone().lte(val(v))),
            Test::Gt(v) => guard(subject.clone().gt(val(v))),
            Test::Gte(v) => guard(subject.clone().gte(val(v))),
            Test::Between(low, high) => guard(subject.clone().between(val(low), val(high))),
            Test::Range(from, to) => {
                let mut e = subject.clone().is_not_null();
                if let Some(from) = from {
                    e = e.and(subject.clone().gte(val(from)));
                }
                if let Some(to) = to {
                    e = e.and(subject.clone().lt(val(to)));
                }
                e
            }
            Test::Contains(n) => {
                guard(self.contains(subject.clone(), format!("%{}%", like_escape(n))))
            }
            Test::NotContains(n) => or_missing(
                self.contains(subject.clone(), format!("%{}%", like_escape(n)))
                    .not(),
            ),
            Test::StartsWith(n) => {
                guard(self.contains(subject.clone(), format!("{}%", like_escape(n))))
            }
            Test::EndsWith(n) => {
                guard(self.contains(subject.clone(), format!("%{}", like_escape(n))))
            }
            Test::Month(m) => {
                let month = format!("{m:02}");
                let template = match (kind, self.backend) {
                    (ValueKind::Date, DbBackend::Postgres) => "to_char(?, 'MM')",
                    (ValueKind::Date, _) => "substr(?, 6, 2)",
                    _ => "substr(?, 1, 2)",
                };
                let part = self.custom(template, vec![subject.clone()]);
                guard(part.eq(month))
            }
            Test::AnyOf(options) => guard(self.options(&subject, options, false)),
            Test::AllOf(options) => guard(self.options(&subject, options, true)),
            Test::NoneOf(options) => or_missing(self.options(&subject, options, false).not()),
        }
    }
}

/// "At least one row".
fn is_any_row(test: &Test) -> bool {
    matches!(
        test,
        Test::Gte(StoredValue::Int(1)) | Test::Gt(StoredValue::Int(0))
    )
}

/// A position in a sorted result: the sort field's value (as the API shows it) and the id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    v: Json,
    id: i64,
}

/// A value as an opaque page cursor: its JSON, hex-encoded, so it travels in a URL as it is.
pub(crate) fn encode_cursor<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("a cursor serialises");
    json.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cursor that continues a search sorted on `sort_field` right after `record`.
pub(crate) fn cursor_after(record: &Record, sort_field: &str) -> String {
    encode_cursor(&Cursor {
        v: record.get(sort_field).cloned().unwrap_or(Json::Null),
        id: record.get("id").and_then(Json::as_i64).unwrap_or(0),
    })
}

/// A cursor [`encode_cursor`] wrote, of at most `max_len` characters; `None` for anything else.
pub(crate) fn decode_cursor<T: serde::de::DeserializeOwned>(s: &str, max_len: usize) -> Option<T> {
    if !s.len().is_multiple_of(2) || s.len() > max_len {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    serde_json::from_slice(&bytes?).ok()
}

/// A cursor's value back in the column's type.
fn cursor_value(kind: ValueKind, v: &Json) -> Option<Value> {
    Some(match (kind, v) {
        (_, Json::Null) => return None,
        (ValueKind::Text, Json::String(s)) => Value::String(Some(s.clone())),
        (ValueKind::Choices, v @ Json::Array(_)) => Value::String(Some(v.to_string())),
        (ValueKind::Int, v) => Value::BigInt(Some(v.as_i64()?)),
        (ValueKind::Float, v) => Value::Double(Some(v.as_f64()?)),
        (ValueKind::Bool, Json::Bool(b)) => Value::Bool(Some(*b)),
        (ValueKind::Date, Json::String(s)) => Value::ChronoDate(Some(s.parse::<NaiveDate>().ok()?)),
        (ValueKind::Timestamp, Json::String(s)) => Value::ChronoDateTimeUtc(Some(
            DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc),
        )),
        _ => return None,
    })
}

/// What a filter may name: saved segments and output tables, loaded only when it does.
#[derive(Debug, Default)]
pub(crate) struct Named {
    pub segments: HashMap<String, (String, Filter)>,
    pub tables: HashMap<String, workspace::ListTable>,
    /// Static lists' ids and entities, by key.
    pub lists: HashMap<String, (i64, String)>,
}

/// Resolution itself, kept out of async code: the resolver's lookups are not `Send`.
pub(crate) fn resolve(
    entity: &str,
    filter: &Filter,
    zone: Zone,
    now: DateTime<Utc>,
    schemas: &crate::schemas::Schemas,
    named: &Named,
) -> Result<Resolved> {
    let lookup = |name: &str| schemas.find(name);
    let segment = |key: &str| named.segments.get(key).cloned();
    let output_table = |name: &str| named.tables.get(name).map(|t| t.id_columns.clone());
    let list = |key: &str| named.lists.get(key).cloned();
    let resolver = Resolver {
        now,
        zone,
        entity: &lookup,
        segment: &segment,
        output_table: &output_table,
        list: &list,
    };
    resolver.resolve(filter, entity).map_err(filter_errors)
}

impl Store {
    /// Checks a filter against the schema and the caller's rights, fixing relative dates at `now`.
    pub async fn resolve_filter(
        &self,
        who: Option<&Principal>,
        entity: &str,
        filter: &Filter,
        zone: Zone,
        now: DateTime<Utc>,
    ) -> Result<Resolved> {
        self.entity_schema(entity).await?;
        let schemas = self.schemas();
        // Most filters name no segment or output table: only those that do read the stored
        // definitions (a segment may name a table in turn).
        let mut named = Named::default();
        if !filter.segments().is_empty() {
            named.segments = segments::definitions(self.db()).await?;
        }
        if !filter.output_tables().is_empty()
            || named
                .segments
                .values()
                .any(|(_, f)| !f.output_tables().is_empty())
        {
            named.tables = workspace::lists(self).await?;
        }
        if !filter.lists().is_empty() || named.segments.values().any(|(_, f)| !f.lists().is_empty())
        {
            named.lists = lists::keys(self.db()).await?;
        }
        self.resolve_with(who, entity, filter, zone, now, &schemas, &named)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn resolve_with(
        &self,
        who: Option<&Principal>,
        entity: &str,
        filter: &Filter,
        zone: Zone,
        now: DateTime<Utc>,
        schemas: &crate::schemas::Schemas,
        named: &Named,
    ) -> Result<Resolved> {
        let mut resolved = resolve(entity, filter, zone, now, schemas, named)?;
        if let Some(who) = who {
            self.narrow_history(who, &mut resolved.cond, now)?;
            if let Some(scope) = self.scope(who, entity, now)? {
                resolved.cond = Cond::All(vec![scope, resolved.cond]);
            }
            for (table, field) in &resolved.fields {
                if !who.rights.allows(table, Op::View) {
                    self.log(who, "search", table, None, "denied", None).await?;
                    return Err(StorageError::Forbidden {
                        entity: table.clone(),
                        op: Op::View.name(),
                        field: None,
                    });
                }
                if !who.rights.can_view_field(table, field) {
                    self.log(who, "search", table, None, "denied", Some(field.clone()))
                        .await?;
                    return Err(StorageError::Forbidden {
                        entity: table.clone(),
                        op: Op::View.name(),
                        field: Some(field.clone()),
                    });
                }
            }
            if resolved.reads_engine {
                self.require(who, FLOWS, Op::View).await?;
            }
            if !resolved.lists.is_empty() {
                self.require(who, lists::LISTS, Op::View).await?;
            }
            if !resolved.output_tables.is_empty() {
                self.require(who, workspace::SQL, Op::View).await?;
                for name in &resolved.output_tables {
                    if let Some(table) = named.tables.get(name)
                        && !workspace::may_read(who, &table.reads, &table.created_by)
                    {
                        self.log(
                            who,
                            "search",
                            workspace::SQL,
                            None,
                            "denied",
                            Some(name.clone()),
                        )
                        .await?;
                        return Err(StorageError::Forbidden {
                            entity: format!("output table {name}"),
                            op: Op::View.name(),
                            field: None,
                        });
                    }
                }
            }
        }
        Ok(resolved)
    }

    async fn compiler(&self, entity: &str) -> Result<Compiler> {
        let schema = self.entity_schema(entity).await?;
        Ok(Compiler::new(self.db().backend(), &schema))
    }

    /// One page of the records a filter matches, sorted, with only the fields the caller may view.
    pub async fn search(
        &self,
        who: &Principal,
        entity: &str,
        request: &SearchRequest,
        now: DateTime<Utc>,
    ) -> Result<SearchPage> {
        let schema = self.entity_schema(entity).await?;
        self.require(who, entity, Op::View).await?;
        let zone = parse_zone(request.zone.as_deref())?;
        let filter = request.filter.clone().unwrap_or(Filter::All(vec![]));
        let resolved = self
            .resolve_filter(Some(who), entity, &filter, zone, now)
            .await?;
        let limit = request.limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let sort = request.sort.clone().unwrap_or(Sort {
            field: "id".into(),
            desc: false,
        });
        let sort_field = schema
            .field(&sort.field)
            .cloned()
            .or_else(|| system_field(&sort.field))
            .filter(|f| !matches!(f.ty, tabiji_model::FieldType::Password))
            .ok_or_else(|| {
                StorageError::invalid(ItemError::field(
                    "sort.field",
                    "unknown_field",
                    format!("{entity} has no field {:?} to sort on", sort.field),
                ))
            })?;
        if !who.rights.can_view_field(entity, &sort_field.key) {
            return Err(StorageError::Forbidden {
                entity: entity.into(),
                op: Op::View.name(),
                field: Some(sort_field.key.clone()),
            });
        }
        let kind = ValueKind::of(&sort_field.ty);
        let compiler = Compiler::new(self.db().backend(), &schema);
        let matches = compiler.cond(&resolved.cond);

        let fields = self.readable_fields(who, &schema);
        let mut q = self.select(&schema, &fields);
        if self.db().backend() == DbBackend::Postgres && resolved.cond != Cond::All(vec![]) {
            // PostgreSQL plans `SELECT *` with a filter as a bitmap scan that reads every
            // candidate row before testing it; asking for the ids first lets it answer the
            // filter from the index, as for a count, and read only the rows of the page.
            let mut ids = Query::select();
            ids.column(col("id"))
                .from(col(entity))
                .and_where(matches.clone());
            q.and_where(Expr::col(col("id")).in_subquery(ids));
        } else {
            q.and_where(matches.clone());
        }
        let by_id = sort_field.key == "id";
        if let Some(after) = &request.after {
            let bad = || {
                StorageError::invalid(ItemError::field(
                    "after",
                    "invalid_cursor",
                    "pass back the next_after of the previous page, with the same sort",
                ))
            };
            let cursor: Cursor = decode_cursor(after, 8192).ok_or_else(bad)?;
            q.and_where(
                self.after(&sort_field.key, kind, sort.desc, &cursor)
                    .ok_or_else(bad)?,
            );
        }
        let sort_col = Expr::col(col(&sort_field.key));
        if !by_id {
            q.order_by_expr(sort_col.clone().is_null(), Order::Asc);
            q.order_by_expr(sort_col, if sort.desc { Order::Desc } else { Order::Asc });
            q.order_by(col("id"), Order::Asc);
        } else {
            q.order_by(col("id"), if sort.desc { Order::Desc } else { Order::Asc });
        }
        q.limit(limit + 1);
        let rows = self.db().conn.query_all(&q).await?;
        let more = rows.len() as u64 > limit;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(|row| Self::to_record(row, &fields))
            .collect::<Result<Vec<_>>>()?;
        let next_after = if more {
            items.last().map(|r| cursor_after(r, &sort_field.key))
        } else {
            None
        };
        let count = if request.count {
            Some(self.count_where(&schema.name, matches).await?)
        } else {
            None
        };
        self.log(
            who,
            "search",
            entity,
            None,
            "ok",
            Some(format!("{} records", items.len())),
        )
        .await?;
        Ok(SearchPage {
            items,
            next_after,
            count,
        })
    }

    /// The keyset condition for "after this cursor": NULLs sort last in either direction.
    fn after(&self, key: &str, kind: ValueKind, desc: bool, cursor: &Cursor) -> Option<Expr> {
        let c = || Expr::col(col(key));
        let id = || Expr::col(col("id"));
        if key == "id" {
            return Some(if desc {
                id().lt(cursor.id)
            } else {
                id().gt(cursor.id)
            });
        }
        match cursor_value(kind, &cursor.v) {
            None if matches!(cursor.v, Json::Null) => Some(c().is_null().and(id().gt(cursor.id))),
            None => None,
            Some(v) => {
                let beyond = if desc {
                    c().lt(Expr::val(v.clone()))
                } else {
                    c().gt(Expr::val(v.clone()))
                };
                Some(
                    c().is_not_null()
                        .and(beyond.or(c().eq(Expr::val(v)).and(id().gt(cursor.id))))
                        .or(c().is_null()),
                )
            }
        }
    }

    async fn count_where(&self, table: &str, matches: Expr) -> Result<u64> {
        let mut q = Query::select();
        q.expr_as(Expr::cust("COUNT(*)"), col("n"))
            .from(col(table))
            .and_where(matches);
        let row = self.db().conn.query_one(&q).await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0) as u64)
    }

    /// How many records a filter matches.
    pub async fn count_matching(
        &self,
        who: &Principal,
        entity: &str,
        filter: &Filter,
        zone: Zone,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        self.require(who, entity, Op::View).await?;
        let resolved = self
            .resolve_filter(Some(who), entity, filter, zone, now)
            .await?;
        let n = self
            .count_where(entity, self.compiler(entity).await?.cond(&resolved.cond))
            .await?;
        self.log(
            who,
            "count",
            entity,
            None,
            "ok",
            Some(format!("{n} records")),
        )
        .await?;
        Ok(n)
    }

    /// Ids of the records a resolved filter matches, above `after`, in id order: how the engine
    /// walks a segment. No rights apply: the flow's publisher was checked when it was published.
    pub async fn ids_matching(
        &self,
        entity: &str,
        cond: &Cond,
        after: i64,
        limit: u64,
    ) -> Result<Vec<i64>> {
        let mut q = Query::select();
        q.column(col("id"))
            .from(col(entity))
            .and_where(Expr::col(col("id")).gt(after))
            .and_where(self.compiler(entity).await?.cond(cond))
            .order_by(col("id"), Order::Asc)
            .limit(limit);
        let rows = self.db().conn.query_all(&q).await?;
        rows.iter()
            .map(|r| r.try_get::<i64>("", "id").map_err(Into::into))
            .collect()
    }
}

#[cfg(test)]
mod tests;
