//! Aggregates (CF-10): count, sum, average, minimum and maximum of the records a filter matches,
//! grouped by up to two fields or date buckets, computed by the database.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Order, Query};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tabiji_model::filter::{Filter, ValueKind, system_field};
use tabiji_model::zone::Zone;
use tabiji_model::{FieldDef, FieldType, Op};

pub use tabiji_model::aggregate::{AggregateMeasure, Bucket, Grouping};

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;
use crate::search::{Compiler, parse_zone};

/// Most groups one answer holds.
pub const MAX_GROUPS: u64 = 10_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateRequest {
    #[serde(default)]
    pub filter: Option<Filter>,
    /// Up to two groupings; one row for everything when empty.
    #[serde(default)]
    pub group_by: Vec<Grouping>,
    /// `["count"]` when left out.
    #[serde(default)]
    pub measures: Vec<AggregateMeasure>,
    #[serde(default)]
    pub zone: Option<String>,
    /// Most groups to return (1,000 when left out, at most 10,000), in key order.
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Aggregates {
    /// One object per group: the grouping keys (`prefecture`, `registered_at_month`, …) and the
    /// measures (`count`, `sum_total_spend`, …). Records without a value group under null.
    pub groups: Vec<Map<String, Json>>,
    /// More groups exist than `limit` let through.
    pub truncated: bool,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn invalid(field: &str, code: &'static str, message: String) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

/// Whole minutes east of UTC the zone is at `now`: how SQLite, which has no zone database,
/// shifts times (exact for fixed offsets and Asia/Tokyo; a daylight-saving zone uses the
/// offset in force now).
fn offset_minutes(zone: Zone, now: DateTime<Utc>) -> i64 {
    (zone.local(now) - now.naive_utc()).num_minutes()
}

/// How a kind of value is read back from a result row.
#[derive(Clone, Copy)]
enum Read {
    Text,
    Int,
    Float,
    Bool,
}

fn read(row: &QueryResult, name: &str, how: Read) -> Result<Json> {
    Ok(match how {
        Read::Text => row
            .try_get::<Option<String>>("", name)?
            .map_or(Json::Null, Json::from),
        Read::Int => row
            .try_get::<Option<i64>>("", name)?
            .map_or(Json::Null, Json::from),
        Read::Float => row
            .try_get::<Option<f64>>("", name)?
            .map_or(Json::Null, Json::from),
        Read::Bool => row
            .try_get::<Option<bool>>("", name)?
            .map_or(Json::Null, Json::from),
    })
}

impl Store {
    pub async fn aggregate(
        &self,
        who: &Principal,
        entity: &str,
        request: &AggregateRequest,
        now: DateTime<Utc>,
    ) -> Result<Aggregates> {
        let schema = self.entity_schema(entity).await?;
        self.require(who, entity, Op::View).await?;
        let zone = parse_zone(request.zone.as_deref())?;
        let filter = request.filter.clone().unwrap_or(Filter::All(vec![]));
        let resolved = self
            .resolve_filter(Some(who), entity, &filter, zone, now)
            .await?;
        if request.group_by.len() > 2 {
            return Err(invalid(
                "group_by",
                "too_many_groupings",
                "group by at most two fields".into(),
            ));
        }
        let backend = self.db().backend();
        let field = |key: &str, at: &str| -> Result<FieldDef> {
            let f = schema
                .field(key)
                .cloned()
                .or_else(|| system_field(key))
                .filter(|f| !matches!(f.ty, FieldType::Password))
                .ok_or_else(|| {
                    invalid(
                        at,
                        "unknown_field",
                        format!("{entity} has no field {key:?}"),
                    )
                })?;
            if !who.rights.can_view_field(entity, &f.key) {
                return Err(StorageError::Forbidden {
                    entity: entity.into(),
                    op: Op::View.name(),
                    field: Some(f.key.clone()),
                });
            }
            Ok(f)
        };

        let compiler = Compiler::new(backend, &schema);
        let mut q = Query::select();
        q.from(col(entity)).and_where(compiler.cond(&resolved.cond));
        let mut columns: Vec<(String, Read)> = Vec::new();
        for (i, g) in request.group_by.iter().enumerate() {
            let at = format!("group_by[{i}]");
            let f = field(&g.field, &at)?;
            let kind = ValueKind::of(&f.ty);
            let c = Expr::col(col(&f.key));
            let (expr, name, how) = match (kind, g.bucket) {
                (ValueKind::Choices, _) => {
                    return Err(invalid(
                        &at,
                        "not_groupable",
                        format!(
                            "{} holds several choices; count each with a filter (any_of) instead",
                            f.key
                        ),
                    ));
                }
                (ValueKind::Date | ValueKind::Timestamp, Some(bucket)) => (
                    bucket_expr(backend, c, kind, bucket, zone, now),
                    g.name(),
                    Read::Text,
                ),
                (ValueKind::Timestamp, None) => {
                    return Err(invalid(
                        &at,
                        "bucket_needed",
                        format!("group {} by a bucket: day, week, month or year", f.key),
                    ));
                }
                (ValueKind::Date, None) => (
                    bucket_expr(backend, c, kind, Bucket::Day, zone, now),
                    f.key.clone(),
                    Read::Text,
                ),
                (_, Some(_)) => {
                    return Err(invalid(
                        &at,
                        "not_a_date",
                        format!("{} is not a date or time; leave out the bucket", f.key),
                    ));
                }
                (ValueKind::Int, None) => (c, f.key.clone(), Read::Int),
                (ValueKind::Float, None) => (c, f.key.clone(), Read::Float),
                (ValueKind::Bool, None) => (c, f.key.clone(), Read::Bool),
                (ValueKind::Text, None) => (c, f.key.clone(), Read::Text),
            };
            let alias = format!("g{i}");
            q.expr_as(expr, col(&alias))
                .group_by_col(col(&alias))
                .order_by(col(&alias), Order::Asc);
            columns.push((name, how));
        }
        let group_count = columns.len();
        let measures = if request.measures.is_empty() {
            vec![AggregateMeasure::Count]
        } else {
            request.measures.clone()
        };
        for (i, m) in measures.iter().enumerate() {
            let at = format!("measures[{i}]");
            let numeric = |key: &str| -> Result<(FieldDef, bool)> {
                let f = field(key, &at)?;
                match ValueKind::of(&f.ty) {
                    ValueKind::Int => Ok((f, true)),
                    ValueKind::Float => Ok((f, false)),
                    _ => Err(invalid(
                        &at,
                        "not_numeric",
                        format!("{} is not a number", f.key),
                    )),
                }
            };
            let (expr, how) = match m {
                AggregateMeasure::Count => (Expr::cust("COUNT(*)"), Read::Int),
                AggregateMeasure::Sum(k) => {
                    let (f, int) = numeric(k)?;
                    let sum: Expr = Func::sum(Expr::col(col(&f.key))).into();
                    if int {
                        (cast(&compiler, sum, "BIGINT"), Read::Int)
                    } else {
                        (cast(&compiler, sum, "DOUBLE PRECISION"), Read::Float)
                    }
                }
                AggregateMeasure::Avg(k) => {
                    let (f, _) = numeric(k)?;
                    let avg: Expr = Func::avg(Expr::col(col(&f.key))).into();
                    (cast(&compiler, avg, "DOUBLE PRECISION"), Read::Float)
                }
                AggregateMeasure::Min(k) | AggregateMeasure::Max(k) => {
                    let (f, int) = numeric(k)?;
                    let c = Expr::col(col(&f.key));
                    let e: Expr = if matches!(m, AggregateMeasure::Min(_)) {
                        Func::min(c).into()
                    } else {
                        Func::max(c).into()
                    };
                    (e, if int { Read::Int } else { Read::Float })
                }
            };
            q.expr_as(expr, col(&format!("m{i}")));
            columns.push((m.name(), how));
        }
        let limit = request.limit.unwrap_or(1_000).clamp(1, MAX_GROUPS);
        q.limit(limit + 1);
        let rows = self.db().conn.query_all(&q).await?;
        let truncated = rows.len() as u64 > limit;
        let groups = rows
            .iter()
            .take(limit as usize)
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, how))| {
                        let alias = if i < group_count {
                            format!("g{i}")
                        } else {
                            format!("m{}", i - group_count)
                        };
                        Ok((name.clone(), read(row, &alias, *how)?))
                    })
                    .collect::<Result<Map<String, Json>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        self.log(
            who,
            "aggregate",
            entity,
            None,
            "ok",
            Some(format!("{} groups", groups.len())),
        )
        .await?;
        Ok(Aggregates { groups, truncated })
    }
}

fn cast(compiler: &Compiler, e: Expr, ty: &str) -> Expr {
    compiler.custom(&format!("CAST(? AS {ty})"), vec![e])
}

/// A date or time as the text of its bucket (`2026-11-28`, `2026-11-23` for a week, `2026-11`,
/// `2026`), times read in `zone`.
pub(crate) fn bucket_expr(
    backend: DbBackend,
    c: Expr,
    kind: ValueKind,
    bucket: Bucket,
    zone: Zone,
    now: DateTime<Utc>,
) -> Expr {
    if backend == DbBackend::Postgres {
        let local = if kind == ValueKind::Timestamp {
            match zone {
                Zone::Named(tz) => Expr::cust_with_exprs(
                    "($1 AT TIME ZONE $2)",
                    [c, Expr::val(tz.name().to_string())],
                ),
                Zone::Fixed(_) => Expr::cust_with_exprs(
                    "(($1 AT TIME ZONE 'UTC') + make_interval(mins => $2))",
                    [c, Expr::val(offset_minutes(zone, now) as i32)],
                ),
            }
        } else {
            c
        };
        let template = match bucket {
            Bucket::Day => "to_char($1, 'YYYY-MM-DD')",
            Bucket::Week => "to_char(date_trunc('week', $1), 'YYYY-MM-DD')",
            Bucket::Month => "to_char($1, 'YYYY-MM')",
            Bucket::Year => "to_char($1, 'YYYY')",
        };
        return Expr::cust_with_exprs(template, [local]);
    }
    let shift = if kind == ValueKind::Timestamp {
        format!(", '{:+} minutes'", offset_minutes(zone, now))
    } else {
        String::new()
    };
    let template = match bucket {
        Bucket::Day => format!("date(?{shift})"),
        Bucket::Week => format!("date(?{shift}, '-6 days', 'weekday 1')"),
        Bucket::Month => format!("strftime('%Y-%m', ?{shift})"),
        Bucket::Year => format!("strftime('%Y', ?{shift})"),
    };
    Expr::cust_with_exprs(template, [c])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::migration;
    use crate::scratch::Scratch;

    fn request(body: Json) -> AggregateRequest {
        serde_json::from_value(body).unwrap()
    }

    #[tokio::test]
    async fn groups_by_fields_and_local_date_buckets() {
        for scratch in Scratch::all_backends().await {
            let db = crate::Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            let store = Store::open(db).await.unwrap();
            let who = Principal::system();
            let t = |email: &str, pref: Option<&str>, spend: i64, at: &str, birth: &str| {
                json!({"email": email, "prefecture": pref, "total_spend": spend, "visit_count": spend / 1000,
                       "registered_at": at, "birth_date": birth})
            };
            store
                .bulk_create(
                    &who,
                    "tourists",
                    vec![
                        // 16:00 UTC on 31 October is 1 November in Tokyo.
                        t(
                            "a@x.jp",
                            Some("愛知県"),
                            1000,
                            "2026-10-31T16:00:00Z",
                            "1990-11-28",
                        ),
                        t(
                            "b@x.jp",
                            Some("愛知県"),
                            3000,
                            "2026-10-31T14:00:00Z",
                            "1990-11-23",
                        ),
                        t(
                            "c@x.jp",
                            Some("東京都"),
                            5000,
                            "2026-11-15T00:00:00Z",
                            "1985-11-22",
                        ),
                        t("d@x.jp", None, 7000, "2026-11-16T00:00:00Z", "1985-01-01"),
                    ],
                )
                .await
                .unwrap();
            let now: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
            let got = store
                .aggregate(
                    &who,
                    "tourists",
                    &request(json!({"group_by": [{"field": "prefecture"}],
                        "measures": ["count", {"sum": "total_spend"}, {"avg": "visit_count"}, {"max": "total_spend"}]})),
                    now,
                )
                .await
                .unwrap();
            let groups: Vec<Json> = got.groups.into_iter().map(Json::Object).collect();
            // Records without a prefecture group under null, which sorts first on SQLite and
            // last on PostgreSQL: compare as a set.
            for expected in [
                json!({"prefecture": "愛知県", "count": 2, "sum_total_spend": 4000, "avg_visit_count": 2.0, "max_total_spend": 3000}),
                json!({"prefecture": "東京都", "count": 1, "sum_total_spend": 5000, "avg_visit_count": 5.0, "max_total_spend": 5000}),
                json!({"prefecture": null, "count": 1, "sum_total_spend": 7000, "avg_visit_count": 7.0, "max_total_spend": 7000}),
            ] {
                assert!(groups.contains(&expected), "{expected} not in {groups:?}");
            }
            assert_eq!(groups.len(), 3);

            let got = store
                .aggregate(
                    &who,
                    "tourists",
                    &request(
                        json!({"group_by": [{"field": "registered_at", "bucket": "month"}],
                        "filter": {"field": {"key": "prefecture", "op": "not_empty"}}}),
                    ),
                    now,
                )
                .await
                .unwrap();
            assert_eq!(
                Json::Array(got.groups.into_iter().map(Json::Object).collect()),
                json!([{"registered_at_month": "2026-10", "count": 1},
                       {"registered_at_month": "2026-11", "count": 2}])
            );
            let got = store
                .aggregate(
                    &who,
                    "tourists",
                    &request(json!({"group_by": [{"field": "birth_date", "bucket": "week"}],
                        "filter": {"field": {"key": "birth_date", "op": "gt", "value": "1986-01-01"}}})),
                    now,
                )
                .await
                .unwrap();
            // 28 November 1990 was a Wednesday, 23 November a Friday.
            assert_eq!(
                Json::Array(got.groups.into_iter().map(Json::Object).collect()),
                json!([{"birth_date_week": "1990-11-19", "count": 1},
                       {"birth_date_week": "1990-11-26", "count": 1}])
            );

            for (body, code) in [
                (
                    json!({"group_by": [{"field": "interests"}]}),
                    "not_groupable",
                ),
                (
                    json!({"group_by": [{"field": "registered_at"}]}),
                    "bucket_needed",
                ),
                (
                    json!({"group_by": [{"field": "email", "bucket": "day"}]}),
                    "not_a_date",
                ),
                (json!({"measures": [{"sum": "email"}]}), "not_numeric"),
                (
                    json!({"group_by": [{"field": "gender"}, {"field": "city"}, {"field": "email"}]}),
                    "too_many_groupings",
                ),
            ] {
                let err = store
                    .aggregate(&who, "tourists", &request(body.clone()), now)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, StorageError::Invalid(e) if e[0].code == code),
                    "{body}: {err}"
                );
            }
            store.db().conn.clone().close().await.ok();
            scratch.remove().await;
        }
    }
}
