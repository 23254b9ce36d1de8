//! Reports and dashboards (CF-7, CF-8, MA-12, MA-17, PT-5): a report is a source (records of
//! any entity, or messages sent by flows), dimensions, measures, a filter and a chart type,
//! evaluated on the server; a dashboard is an ordered set of report widgets.
//!
//! Running a report checks the viewer's rights, not its author's: the same dashboard shows
//! each person what they may see, and a widget they may not see says so in its place.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, JoinType, Order, Query};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, SqlErr};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tabiji_model::Op;
use tabiji_model::filter::{Filter, Period, ValueKind};
use tabiji_model::schema::check_identifier;
use tabiji_model::zone::Zone;

use crate::aggregate::{AggregateMeasure, AggregateRequest, Bucket, Grouping, bucket_expr};
use crate::analyses::{self, Analysis};
use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::flows::FLOWS;
use crate::records::Store;
use crate::search::{Compiler, parse_zone};

/// The resource whose rights govern reports and dashboards.
pub const REPORTS: &str = "reports";

/// Widgets one dashboard holds.
pub const MAX_WIDGETS: usize = 24;

/// How a report is drawn. The server checks that the shape fits the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chart {
    Bar,
    /// The first dimension is a date bucket.
    Line,
    /// One dimension, one measure.
    Pie,
    Table,
    /// No dimension; the measures are the steps, in order.
    Funnel,
}

/// What a report counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Records of one entity: an aggregate (CF-10) kept with a name.
    Records {
        entity: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<Filter>,
        #[serde(default)]
        group_by: Vec<Grouping>,
        #[serde(default)]
        measures: Vec<AggregateMeasure>,
    },
    /// Messages flows sent (MA-12, PT-5): sent, failed, opened, clicked and the rates, by flow,
    /// node, template, channel, send date or the recipients' own fields.
    Messages {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow: Option<i64>,
        /// When the messages were sent; every time when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<Period>,
        /// Only messages to the tourists this filter matches.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipients: Option<Filter>,
        /// `flow`, `node`, `template`, `channel`, `day`, `week`, `month`, `age_group` (ten-year
        /// bands of the recipient's age) or `tourists.FIELD`; at most two.
        #[serde(default)]
        group_by: Vec<String>,
        /// Of `sent`, `failed`, `opened`, `clicked`, `open_rate`, `click_rate`; all when empty.
        #[serde(default)]
        measures: Vec<MessageMeasure>,
    },
    /// A decile, RFM or basket analysis (AN-3).
    Analysis(Analysis),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageMeasure {
    Sent,
    Failed,
    /// Sent messages opened at least once.
    Opened,
    /// Sent messages clicked at least once.
    Clicked,
    /// opened / sent.
    OpenRate,
    /// clicked / sent.
    ClickRate,
}

impl MessageMeasure {
    const ALL: [MessageMeasure; 6] = [
        MessageMeasure::Sent,
        MessageMeasure::Failed,
        MessageMeasure::Opened,
        MessageMeasure::Clicked,
        MessageMeasure::OpenRate,
        MessageMeasure::ClickRate,
    ];

    fn name(self) -> &'static str {
        match self {
            MessageMeasure::Sent => "sent",
            MessageMeasure::Failed => "failed",
            MessageMeasure::Opened => "opened",
            MessageMeasure::Clicked => "clicked",
            MessageMeasure::OpenRate => "open_rate",
            MessageMeasure::ClickRate => "click_rate",
        }
    }
}

/// A report as its author writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportDef {
    pub chart: Chart,
    pub source: Source,
    /// Dates and buckets are read in this zone (Asia/Tokyo when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Most rows (1,000 when left out, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// A report's result: one row per group, dimensions first, then measures.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub chart: Chart,
    pub dimensions: Vec<String>,
    pub measures: Vec<String>,
    pub rows: Vec<Map<String, Json>>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub key: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub definition: ReportDef,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub definition: ReportDef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    pub report: String,
    /// Columns of a 12-column grid (6 when left out).
    #[serde(default = "half")]
    pub width: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

fn half() -> u8 {
    6
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub key: String,
    pub name: String,
    pub widgets: Vec<Widget>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDashboard {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub widgets: Vec<Widget>,
}

/// One widget of a dashboard as a viewer sees it: the data, or why they cannot see it.
#[derive(Debug, Clone, Serialize)]
pub struct ShownWidget {
    #[serde(flatten)]
    pub widget: Widget,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<ReportData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Json>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShownDashboard {
    #[serde(flatten)]
    pub dashboard: Dashboard,
    pub shown: Vec<ShownWidget>,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

/// Checks that the report's shape fits its chart.
fn check_chart(def: &ReportDef, dimensions: usize, measures: usize, dated: bool) -> Result<()> {
    let problem = match def.chart {
        Chart::Pie if dimensions != 1 || measures != 1 => {
            Some("a pie chart shows one measure over one dimension")
        }
        Chart::Line if !dated => Some("a line chart needs a date bucket as its first dimension"),
        Chart::Bar if dimensions == 0 => Some("a bar chart needs a dimension to draw bars for"),
        Chart::Funnel if dimensions != 0 || measures < 2 => {
            Some("a funnel shows two or more measures as steps, without dimensions")
        }
        _ => None,
    };
    match problem {
        Some(message) => Err(invalid("definition.chart", "chart_mismatch", message)),
        None => Ok(()),
    }
}

impl Store {
    /// Evaluates a report definition as `who`, with their rights.
    pub async fn run_report(
        &self,
        who: &Principal,
        def: &ReportDef,
        now: DateTime<Utc>,
    ) -> Result<ReportData> {
        match &def.source {
            Source::Records {
                entity,
                filter,
                group_by,
                measures,
            } => {
                let dated = group_by.first().is_some_and(|g| {
                    g.bucket.is_some()
                        || self.schemas().find(entity).is_some_and(|s| {
                            s.field(&g.field)
                                .is_some_and(|f| matches!(ValueKind::of(&f.ty), ValueKind::Date))
                        })
                });
                let measures = if measures.is_empty() {
                    vec![AggregateMeasure::Count]
                } else {
                    measures.clone()
                };
                check_chart(def, group_by.len(), measures.len(), dated)?;
                let answer = self
                    .aggregate(
                        who,
                        entity,
                        &AggregateRequest {
                            filter: filter.clone(),
                            group_by: group_by.clone(),
                            measures: measures.clone(),
                            zone: def.zone.clone(),
                            limit: def.limit,
                        },
                        now,
                    )
                    .await
                    .map_err(|e| at_definition(e, "definition.source.records"))?;
                let measure_names: Vec<String> = measures.iter().map(|m| m.name()).collect();
                let dimensions = answer
                    .groups
                    .first()
                    .map(|g| {
                        g.keys()
                            .filter(|k| !measure_names.contains(k))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_else(|| group_by.iter().map(|g| g.field.clone()).collect());
                Ok(ReportData {
                    chart: def.chart,
                    dimensions,
                    measures: measure_names,
                    rows: answer.groups,
                    truncated: answer.truncated,
                })
            }
            Source::Messages { .. } => self.message_report(who, def, now).await,
            Source::Analysis(analysis) => {
                let dimensions = analysis.dimensions();
                // Every analysis gives two or more measures.
                check_chart(def, dimensions.len(), 2, false)?;
                let zone = parse_zone(def.zone.as_deref())?;
                let limit = def.limit.unwrap_or(1_000).clamp(1, 10_000) as usize;
                let (rows, columns, truncated) = analyses::run(
                    self,
                    who,
                    analysis,
                    zone,
                    now,
                    limit,
                    "definition.source.analysis",
                )
                .await?;
                Ok(ReportData {
                    chart: def.chart,
                    measures: columns
                        .into_iter()
                        .filter(|c| !dimensions.contains(c))
                        .collect(),
                    dimensions,
                    rows,
                    truncated,
                })
            }
        }
    }

    async fn message_report(
        &self,
        who: &Principal,
        def: &ReportDef,
        now: DateTime<Utc>,
    ) -> Result<ReportData> {
        let Source::Messages {
            flow,
            period,
            recipients,
            group_by,
            measures,
        } = &def.source
        else {
            unreachable!("called for message reports only")
        };
        self.require(who, FLOWS, Op::View).await?;
        let zone = parse_zone(def.zone.as_deref())?;
        let backend = self.db().backend();
        let measures: Vec<MessageMeasure> = if measures.is_empty() {
            MessageMeasure::ALL.to_vec()
        } else {
            measures.clone()
        };
        if group_by.len() > 2 {
            return Err(invalid(
                "definition.source.messages.group_by",
                "too_many_groupings",
                "group by at most two dimensions",
            ));
        }
        let dimensions: Vec<Dimension> = group_by
            .iter()
            .enumerate()
            .map(|(i, g)| Dimension::parse(g, i))
            .collect::<Result<_>>()?;
        let dated = matches!(dimensions.first(), Some(Dimension::Sent(_)));
        check_chart(def, dimensions.len(), measures.len(), dated)?;

        let mut q = Query::select();
        q.from_as(col("sys_deliveries"), col("d"));
        if let Some(flow) = flow {
            q.and_where(Expr::col((col("d"), col("flow_id"))).eq(*flow));
        }
        if let Some(period) = period {
            let (from, to) = period_bounds(period, zone, now)
                .map_err(|m| invalid("definition.source.messages.period", "invalid_period", m))?;
            if let Some(from) = from {
                q.and_where(Expr::col((col("d"), col("created_at"))).gte(from));
            }
            if let Some(to) = to {
                q.and_where(Expr::col((col("d"), col("created_at"))).lt(to));
            }
        }
        // A viewer whose record rights narrow tourists counts only the messages of those
        // they reach: filter resolution adds their record filter.
        let everyone = Filter::All(vec![]);
        let scoped = self.scope(who, "tourists", now)?.is_some();
        if let Some(filter) = recipients.as_ref().or(scoped.then_some(&everyone)) {
            let resolved = self
                .resolve_filter(Some(who), "tourists", filter, zone, now)
                .await
                .map_err(|e| at_definition(e, "definition.source.messages.recipients"))?;
            let schema = self.entity_schema("tourists").await?;
            let compiler = Compiler::new(backend, &schema);
            let mut members = Query::select();
            members
                .column(col("id"))
                .from(col("tourists"))
                .and_where(compiler.cond(&resolved.cond));
            // A privacy-mode flow's deliveries hold the pseudonym of the contact behind them.
            let mut pseudonyms = Query::select();
            pseudonyms
                .column(col("pseudonym"))
                .from(col("sys_pseudonyms"))
                .and_where(Expr::col(col("contact_id")).in_subquery(members.clone()));
            q.and_where(
                Expr::col((col("d"), col("contact_id")))
                    .in_subquery(members)
                    .or(Expr::col((col("d"), col("contact_id"))).in_subquery(pseudonyms)),
            );
        }
        let joins_tourists = dimensions
            .iter()
            .any(|d| matches!(d, Dimension::Tourist(_) | Dimension::AgeGroup));
        if joins_tourists {
            q.join_as(
                JoinType::LeftJoin,
                col("tourists"),
                col("t"),
                Expr::col((col("t"), col("id"))).equals((col("d"), col("contact_id"))),
            );
        }
        let today = zone.local(now).date();
        let mut names = Vec::new();
        for (i, dimension) in dimensions.iter().enumerate() {
            let at = format!("definition.source.messages.group_by[{i}]");
            let expr = match dimension {
                Dimension::Column(c) => Expr::col((col("d"), col(c))),
                Dimension::Sent(bucket) => {
                    let time = match backend {
                        DbBackend::Postgres => Expr::cust_with_exprs(
                            "to_timestamp($1 / 1000.0)",
                            [Expr::col((col("d"), col("created_at")))],
                        ),
                        _ => Expr::cust_with_exprs(
                            "datetime(? / 1000, 'unixepoch')",
                            [Expr::col((col("d"), col("created_at")))],
                        ),
                    };
                    bucket_expr(backend, time, ValueKind::Timestamp, *bucket, zone, now)
                }
                Dimension::Tourist(field) => {
                    self.tourist_dimension(who, field, &at).await?;
                    Expr::col((col("t"), col(field)))
                }
                Dimension::AgeGroup => {
                    self.tourist_dimension(who, "birth_date", &at).await?;
                    age_group(backend, today)
                }
            };
            let alias = format!("g{i}");
            q.expr_as(expr, col(&alias))
                .group_by_col(col(&alias))
                .order_by(col(&alias), Order::Asc);
            names.push(dimension.name());
        }
        let status_is = |s: &str| format!("d.status = '{s}'");
        let event = |name: &str| {
            format!(
                "EXISTS (SELECT 1 FROM sys_events e WHERE e.delivery_id = d.id AND e.name = '{name}')"
            )
        };
        let counted = [
            ("sent", status_is("sent")),
            ("failed", status_is("dead")),
            (
                "opened",
                format!("{} AND {}", status_is("sent"), event("opened")),
            ),
            (
                "clicked",
                format!("{} AND {}", status_is("sent"), event("clicked")),
            ),
        ];
        for (name, condition) in &counted {
            q.expr_as(
                Expr::cust(format!(
                    "CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT)"
                )),
                col(name),
            );
        }
        let limit = def.limit.unwrap_or(1_000).clamp(1, 10_000);
        q.limit(limit + 1);
        let rows = self.db().conn.query_all(&q).await?;
        let truncated = rows.len() as u64 > limit;
        let rows = rows
            .iter()
            .take(limit as usize)
            .map(|row| message_row(row, &dimensions, &names, &measures))
            .collect::<Result<Vec<_>>>()?;
        self.log(
            who,
            "report",
            FLOWS,
            None,
            "ok",
            Some(format!("messages: {} rows", rows.len())),
        )
        .await?;
        Ok(ReportData {
            chart: def.chart,
            dimensions: names,
            measures: measures.iter().map(|m| m.name().to_string()).collect(),
            rows,
            truncated,
        })
    }

    /// A tourist field as a message dimension: one the viewer may see, with one value per
    /// tourist.
    async fn tourist_dimension(&self, who: &Principal, field: &str, at: &str) -> Result<()> {
        let schema = self.entity_schema("tourists").await?;
        let Some(def) = schema.field(field) else {
            return Err(invalid(
                at,
                "unknown_field",
                format!("tourists has no field {field:?}"),
            ));
        };
        if matches!(
            ValueKind::of(&def.ty),
            ValueKind::Choices | ValueKind::Timestamp
        ) || matches!(def.ty, tabiji_model::FieldType::Password)
        {
            return Err(invalid(
                at,
                "not_groupable",
                format!("{field} cannot be a dimension; use a field with one plain value"),
            ));
        }
        if !who.rights.can_view_field("tourists", field) {
            self.log(
                who,
                "report",
                "tourists",
                None,
                "denied",
                Some(field.into()),
            )
            .await?;
            return Err(StorageError::Forbidden {
                entity: "tourists".into(),
                op: Op::View.name(),
                field: Some(field.into()),
            });
        }
        Ok(())
    }
}

/// Paths in an aggregate's errors, made to point into the report definition.
fn at_definition(e: StorageError, prefix: &str) -> StorageError {
    match e {
        StorageError::Invalid(errors) => StorageError::Invalid(
            errors
                .into_iter()
                .map(|mut e| {
                    e.field = Some(match e.field {
                        Some(f) => format!("{prefix}.{f}"),
                        None => prefix.to_string(),
                    });
                    e
                })
                .collect(),
        ),
        other => other,
    }
}

/// A message report's dimension.
#[derive(Debug, Clone, PartialEq)]
enum Dimension {
    /// A column of the delivery: flow_id, node, template, channel.
    Column(&'static str),
    Sent(Bucket),
    Tourist(String),
    AgeGroup,
}

impl Dimension {
    fn parse(text: &str, i: usize) -> Result<Dimension> {
        Ok(match text {
            "flow" => Dimension::Column("flow_id"),
            "node" => Dimension::Column("node"),
            "template" => Dimension::Column("template"),
            "channel" => Dimension::Column("channel"),
            "day" => Dimension::Sent(Bucket::Day),
            "week" => Dimension::Sent(Bucket::Week),
            "month" => Dimension::Sent(Bucket::Month),
            "age_group" => Dimension::AgeGroup,
            other => match other.strip_prefix("tourists.") {
                Some(field) if check_identifier(field).is_ok() => {
                    Dimension::Tourist(field.to_string())
                }
                _ => {
                    return Err(invalid(
                        &format!("definition.source.messages.group_by[{i}]"),
                        "unknown_dimension",
                        format!(
                            "{other:?} is not a dimension; use flow, node, template, channel, \
                             day, week, month, age_group or tourists.FIELD"
                        ),
                    ));
                }
            },
        })
    }

    fn name(&self) -> String {
        match self {
            Dimension::Column("flow_id") => "flow".into(),
            Dimension::Column(c) => (*c).into(),
            Dimension::Sent(Bucket::Day) => "day".into(),
            Dimension::Sent(Bucket::Week) => "week".into(),
            Dimension::Sent(Bucket::Month) => "month".into(),
            Dimension::Sent(Bucket::Year) => "year".into(),
            Dimension::Tourist(f) => format!("tourists.{f}"),
            Dimension::AgeGroup => "age_group".into(),
        }
    }
}

/// The lower end of the recipient's ten-year age band on `today` (20 for 20–29); null without
/// a birth date.
fn age_group(backend: DbBackend, today: chrono::NaiveDate) -> Expr {
    let today = today.format("%Y-%m-%d").to_string();
    let birth = Expr::col((col("t"), col("birth_date")));
    match backend {
        DbBackend::Postgres => Expr::cust_with_exprs(
            "(CAST(date_part('year', age(CAST($1 AS DATE), $2)) AS BIGINT) / 10 * 10)",
            [Expr::val(today), birth],
        ),
        _ => Expr::cust_with_exprs(
            "(((CAST(strftime('%Y', ?) AS INTEGER) - CAST(strftime('%Y', ?) AS INTEGER)) \
             - (strftime('%m-%d', ?) < strftime('%m-%d', ?))) / 10 * 10)",
            [
                Expr::val(today.clone()),
                birth.clone(),
                Expr::val(today),
                birth,
            ],
        ),
    }
}

/// A period's half-open bounds in epoch milliseconds.
fn period_bounds(
    period: &Period,
    zone: Zone,
    now: DateTime<Utc>,
) -> std::result::Result<(Option<i64>, Option<i64>), String> {
    let (from, to) = period.instants(zone, now)?;
    Ok((
        from.map(|t| t.timestamp_millis()),
        to.map(|t| t.timestamp_millis()),
    ))
}

fn message_row(
    row: &QueryResult,
    dimensions: &[Dimension],
    names: &[String],
    measures: &[MessageMeasure],
) -> Result<Map<String, Json>> {
    let mut out = Map::new();
    for (i, (dimension, name)) in dimensions.iter().zip(names).enumerate() {
        let alias = format!("g{i}");
        let value = match dimension {
            Dimension::Column("flow_id") | Dimension::AgeGroup => row
                .try_get::<Option<i64>>("", &alias)?
                .map_or(Json::Null, Json::from),
            Dimension::Tourist(_) => read_any(row, &alias),
            _ => row
                .try_get::<Option<String>>("", &alias)?
                .map_or(Json::Null, Json::from),
        };
        out.insert(name.clone(), value);
    }
    let count =
        |name: &str| -> Result<i64> { Ok(row.try_get::<Option<i64>>("", name)?.unwrap_or(0)) };
    let (sent, failed, opened, clicked) = (
        count("sent")?,
        count("failed")?,
        count("opened")?,
        count("clicked")?,
    );
    let rate = |n: i64| {
        if sent == 0 {
            Json::Null
        } else {
            Json::from((n as f64 / sent as f64 * 10_000.0).round() / 10_000.0)
        }
    };
    for m in measures {
        let value = match m {
            MessageMeasure::Sent => Json::from(sent),
            MessageMeasure::Failed => Json::from(failed),
            MessageMeasure::Opened => Json::from(opened),
            MessageMeasure::Clicked => Json::from(clicked),
            MessageMeasure::OpenRate => rate(opened),
            MessageMeasure::ClickRate => rate(clicked),
        };
        out.insert(m.name().to_string(), value);
    }
    Ok(out)
}

/// A tourist field's value of whatever type it is stored as.
fn read_any(row: &QueryResult, alias: &str) -> Json {
    if let Ok(v) = row.try_get::<Option<i64>>("", alias) {
        return v.map_or(Json::Null, Json::from);
    }
    if let Ok(v) = row.try_get::<Option<f64>>("", alias) {
        return v.map_or(Json::Null, Json::from);
    }
    if let Ok(v) = row.try_get::<Option<bool>>("", alias) {
        return v.map_or(Json::Null, Json::from);
    }
    if let Ok(v) = row.try_get::<Option<String>>("", alias) {
        return v.map_or(Json::Null, Json::from);
    }
    if let Ok(v) = row.try_get::<Option<chrono::NaiveDate>>("", alias) {
        return v.map_or(Json::Null, |d| Json::from(d.to_string()));
    }
    Json::Null
}

// Saved reports and dashboards.

fn check_name(name: &str) -> Result<()> {
    let n = name.trim().chars().count();
    if n == 0 || n > 200 {
        return Err(invalid(
            "name",
            "invalid_name",
            "give it a name of 1 to 200 characters",
        ));
    }
    Ok(())
}

fn conflict_or(e: sea_orm::DbErr, what: &str, key: &str) -> StorageError {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return StorageError::Conflict(vec![ItemError::field(
            "key",
            "duplicate_key",
            format!("a {what} called {key:?} exists already"),
        )]);
    }
    e.into()
}

fn not_found(kind: &'static str, key: &str) -> StorageError {
    StorageError::NoSuch {
        kind,
        name: key.to_string(),
    }
}

const REPORT_COLUMNS: [&str; 7] = [
    "key",
    "name",
    "description",
    "definition",
    "created_by",
    "created_at",
    "updated_at",
];

fn report_from(row: &QueryResult) -> Result<Report> {
    let key: String = row.try_get("", "key")?;
    let definition: String = row.try_get("", "definition")?;
    let definition = serde_json::from_str(&definition).map_err(|e| {
        invalid(
            "definition",
            "corrupt_report",
            format!("the stored definition of report {key:?} could not be read: {e}"),
        )
    })?;
    Ok(Report {
        key,
        name: row.try_get("", "name")?,
        description: row.try_get("", "description")?,
        definition,
        created_by: row.try_get("", "created_by")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

async fn find_report(store: &Store, key: &str) -> Result<Report> {
    let mut q = Query::select();
    q.columns(REPORT_COLUMNS.map(col))
        .from(col("sys_reports"))
        .and_where(Expr::col(col("key")).eq(key));
    let row = store
        .db()
        .conn
        .query_one(&q)
        .await?
        .ok_or_else(|| not_found("report", key))?;
    report_from(&row)
}

/// Saves a report after running it once as its author: a report that cannot run is refused.
pub async fn create_report(
    store: &Store,
    who: &Principal,
    new: &NewReport,
    now: DateTime<Utc>,
) -> Result<Report> {
    store.require(who, REPORTS, Op::Create).await?;
    check_identifier(&new.key).map_err(|m| invalid("key", "invalid_key", m))?;
    check_name(&new.name)?;
    store.run_report(who, &new.definition, now).await?;
    let insert = Query::insert()
        .into_table(col("sys_reports"))
        .columns(REPORT_COLUMNS.map(col))
        .values_panic([
            new.key.as_str().into(),
            new.name.trim().into(),
            new.description.clone().into(),
            serde_json::to_string(&new.definition)
                .expect("a definition serialises")
                .into(),
            who.login.as_str().into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    store
        .db()
        .conn
        .execute(&insert)
        .await
        .map_err(|e| conflict_or(e, "report", &new.key))?;
    store
        .log(who, "create", REPORTS, None, "ok", Some(new.key.clone()))
        .await?;
    find_report(store, &new.key).await
}

/// Replaces a report's name, description and definition.
pub async fn update_report(
    store: &Store,
    who: &Principal,
    key: &str,
    new: &NewReport,
    now: DateTime<Utc>,
) -> Result<Report> {
    store.require(who, REPORTS, Op::Edit).await?;
    find_report(store, key).await?;
    if new.key != key {
        return Err(invalid(
            "key",
            "key_changed",
            "a report's key never changes",
        ));
    }
    check_name(&new.name)?;
    store.run_report(who, &new.definition, now).await?;
    let mut q = Query::update();
    q.table(col("sys_reports"))
        .value(col("name"), new.name.trim())
        .value(col("description"), new.description.clone())
        .value(
            col("definition"),
            serde_json::to_string(&new.definition).expect("a definition serialises"),
        )
        .value(col("updated_at"), now)
        .and_where(Expr::col(col("key")).eq(key));
    store.db().conn.execute(&q).await?;
    store
        .log(who, "edit", REPORTS, None, "ok", Some(key.into()))
        .await?;
    find_report(store, key).await
}

/// Deletes a report no dashboard shows.
pub async fn delete_report(store: &Store, who: &Principal, key: &str) -> Result<()> {
    store.require(who, REPORTS, Op::Delete).await?;
    find_report(store, key).await?;
    let users: Vec<String> = all_dashboards(store)
        .await?
        .into_iter()
        .filter(|d| d.widgets.iter().any(|w| w.report == key))
        .map(|d| format!("dashboard {:?}", d.key))
        .collect();
    if !users.is_empty() {
        return Err(StorageError::Conflict(vec![ItemError::field(
            "key",
            "report_in_use",
            format!("{key:?} is shown on {}", users.join(", ")),
        )]));
    }
    let q = Query::delete()
        .from_table(col("sys_reports"))
        .and_where(Expr::col(col("key")).eq(key))
        .to_owned();
    store.db().conn.execute(&q).await?;
    store
        .log(who, "delete", REPORTS, None, "ok", Some(key.into()))
        .await?;
    Ok(())
}

pub async fn get_report(store: &Store, who: &Principal, key: &str) -> Result<Report> {
    store.require(who, REPORTS, Op::View).await?;
    find_report(store, key).await
}

pub async fn list_reports(store: &Store, who: &Principal) -> Result<Vec<Report>> {
    store.require(who, REPORTS, Op::View).await?;
    let mut q = Query::select();
    q.columns(REPORT_COLUMNS.map(col))
        .from(col("sys_reports"))
        .order_by(col("key"), Order::Asc);
    let rows = store.db().conn.query_all(&q).await?;
    rows.iter().map(report_from).collect()
}

/// Runs a saved report as `who`.
pub async fn run_saved(
    store: &Store,
    who: &Principal,
    key: &str,
    now: DateTime<Utc>,
) -> Result<ReportData> {
    let report = get_report(store, who, key).await?;
    store.run_report(who, &report.definition, now).await
}

/// Runs a definition without saving it: the "pick fields, get a chart" path (MA-17).
pub async fn run_unsaved(
    store: &Store,
    who: &Principal,
    def: &ReportDef,
    now: DateTime<Utc>,
) -> Result<ReportData> {
    store.require(who, REPORTS, Op::View).await?;
    store.run_report(who, def, now).await
}

const DASHBOARD_COLUMNS: [&str; 6] = [
    "key",
    "name",
    "widgets",
    "created_by",
    "created_at",
    "updated_at",
];

fn dashboard_from(row: &QueryResult) -> Result<Dashboard> {
    let key: String = row.try_get("", "key")?;
    let widgets: String = row.try_get("", "widgets")?;
    let widgets = serde_json::from_str(&widgets).map_err(|e| {
        invalid(
            "widgets",
            "corrupt_dashboard",
            format!("the stored widgets of dashboard {key:?} could not be read: {e}"),
        )
    })?;
    Ok(Dashboard {
        key,
        name: row.try_get("", "name")?,
        widgets,
        created_by: row.try_get("", "created_by")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

async fn all_dashboards(store: &Store) -> Result<Vec<Dashboard>> {
    let mut q = Query::select();
    q.columns(DASHBOARD_COLUMNS.map(col))
        .from(col("sys_dashboards"))
        .order_by(col("key"), Order::Asc);
    let rows = store.db().conn.query_all(&q).await?;
    rows.iter().map(dashboard_from).collect()
}

async fn find_dashboard(store: &Store, key: &str) -> Result<Dashboard> {
    let mut q = Query::select();
    q.columns(DASHBOARD_COLUMNS.map(col))
        .from(col("sys_dashboards"))
        .and_where(Expr::col(col("key")).eq(key));
    let row = store
        .db()
        .conn
        .query_one(&q)
        .await?
        .ok_or_else(|| not_found("dashboard", key))?;
    dashboard_from(&row)
}

async fn check_widgets(store: &Store, widgets: &[Widget]) -> Result<()> {
    if widgets.len() > MAX_WIDGETS {
        return Err(invalid(
            "widgets",
            "too_many_widgets",
            format!("a dashboard holds at most {MAX_WIDGETS} widgets"),
        ));
    }
    let mut problems = Vec::new();
    for (i, w) in widgets.iter().enumerate() {
        if !(1..=12).contains(&w.width) {
            problems.push(ItemError::field(
                &format!("widgets[{i}].width"),
                "invalid_width",
                "a widget is 1 to 12 columns wide",
            ));
        }
        if let Err(StorageError::NoSuch { .. }) = find_report(store, &w.report).await {
            problems.push(ItemError::field(
                &format!("widgets[{i}].report"),
                "unknown_report",
                format!("there is no report {:?}", w.report),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StorageError::Invalid(problems))
    }
}

pub async fn create_dashboard(
    store: &Store,
    who: &Principal,
    new: &NewDashboard,
    now: DateTime<Utc>,
) -> Result<Dashboard> {
    store.require(who, REPORTS, Op::Create).await?;
    check_identifier(&new.key).map_err(|m| invalid("key", "invalid_key", m))?;
    check_name(&new.name)?;
    check_widgets(store, &new.widgets).await?;
    let insert = Query::insert()
        .into_table(col("sys_dashboards"))
        .columns(DASHBOARD_COLUMNS.map(col))
        .values_panic([
            new.key.as_str().into(),
            new.name.trim().into(),
            serde_json::to_string(&new.widgets)
                .expect("widgets serialise")
                .into(),
            who.login.as_str().into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    store
        .db()
        .conn
        .execute(&insert)
        .await
        .map_err(|e| conflict_or(e, "dashboard", &new.key))?;
    store
        .log(
            who,
            "create",
            REPORTS,
            None,
            "ok",
            Some(format!("dashboard {}", new.key)),
        )
        .await?;
    find_dashboard(store, &new.key).await
}

/// Replaces a dashboard's name and widgets: how widgets are added, removed and reordered.
pub async fn update_dashboard(
    store: &Store,
    who: &Principal,
    key: &str,
    new: &NewDashboard,
    now: DateTime<Utc>,
) -> Result<Dashboard> {
    store.require(who, REPORTS, Op::Edit).await?;
    find_dashboard(store, key).await?;
    if new.key != key {
        return Err(invalid(
            "key",
            "key_changed",
            "a dashboard's key never changes",
        ));
    }
    check_name(&new.name)?;
    check_widgets(store, &new.widgets).await?;
    let mut q = Query::update();
    q.table(col("sys_dashboards"))
        .value(col("name"), new.name.trim())
        .value(
            col("widgets"),
            serde_json::to_string(&new.widgets).expect("widgets serialise"),
        )
        .value(col("updated_at"), now)
        .and_where(Expr::col(col("key")).eq(key));
    store.db().conn.execute(&q).await?;
    store
        .log(
            who,
            "edit",
            REPORTS,
            None,
            "ok",
            Some(format!("dashboard {key}")),
        )
        .await?;
    find_dashboard(store, key).await
}

pub async fn delete_dashboard(store: &Store, who: &Principal, key: &str) -> Result<()> {
    store.require(who, REPORTS, Op::Delete).await?;
    find_dashboard(store, key).await?;
    let q = Query::delete()
        .from_table(col("sys_dashboards"))
        .and_where(Expr::col(col("key")).eq(key))
        .to_owned();
    store.db().conn.execute(&q).await?;
    store
        .log(
            who,
            "delete",
            REPORTS,
            None,
            "ok",
            Some(format!("dashboard {key}")),
        )
        .await?;
    Ok(())
}

pub async fn list_dashboards(store: &Store, who: &Principal) -> Result<Vec<Dashboard>> {
    store.require(who, REPORTS, Op::View).await?;
    all_dashboards(store).await
}

/// A dashboard with every widget evaluated for `who`; a widget they may not see, or whose
/// report fails, carries its error instead of data.
pub async fn show_dashboard(
    store: &Store,
    who: &Principal,
    key: &str,
    now: DateTime<Utc>,
) -> Result<ShownDashboard> {
    store.require(who, REPORTS, Op::View).await?;
    let dashboard = find_dashboard(store, key).await?;
    let mut reports: BTreeMap<String, Report> = BTreeMap::new();
    let mut shown = Vec::new();
    for widget in &dashboard.widgets {
        if !reports.contains_key(&widget.report) {
            match find_report(store, &widget.report).await {
                Ok(r) => {
                    reports.insert(widget.report.clone(), r);
                }
                Err(e) => {
                    shown.push(ShownWidget {
                        widget: widget.clone(),
                        name: widget.report.clone(),
                        data: None,
                        error: Some(error_json(&e)),
                    });
                    continue;
                }
            }
        }
        let report = &reports[&widget.report];
        let (data, error) = match store.run_report(who, &report.definition, now).await {
            Ok(data) => (Some(data), None),
            Err(e) => (None, Some(error_json(&e))),
        };
        shown.push(ShownWidget {
            widget: widget.clone(),
            name: widget.title.clone().unwrap_or_else(|| report.name.clone()),
            data,
            error,
        });
    }
    Ok(ShownDashboard { dashboard, shown })
}

/// An error as a widget shows it: a stable code and a message.
fn error_json(e: &StorageError) -> Json {
    let code = match e {
        StorageError::Forbidden { .. } => "forbidden",
        StorageError::NoSuch { .. } | StorageError::NotFound { .. } => "not_found",
        StorageError::Invalid(_) => "invalid",
        StorageError::Conflict(_) => "conflict",
        _ => "failed",
    };
    serde_json::json!({"code": code, "message": e.to_string()})
}

#[cfg(test)]
mod tests;
