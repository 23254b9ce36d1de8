//! Analyses (AN-3): decile, RFM and basket analyses over a history store of tourists
//! (purchases by default).
//!
//! Each analysis is written as SQL over the workspace's tables and run through the workspace
//! (`workspace::query_generated`): the allow-list, the viewer's field views and the read-only
//! sandbox apply as they do to SQL a person writes, and the SQL is kept with an output table
//! saved from it, for an analyst to read and adapt.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::DbBackend;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tabiji_model::filter::{Period, ValueKind};
use tabiji_model::zone::Zone;
use tabiji_model::{EntitySchema, Op};

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;
use crate::workspace::{self, Answer};

/// Rows an analysis answers with at most.
const MAX_ROWS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Analysis {
    /// Buyers split into ten groups of equal size by what they spent, highest first: how much
    /// each tenth buys and its share of the whole.
    Decile(Spending),
    /// Recency, frequency and monetary scores (1–5, 5 best) per buyer, summed up as segments
    /// (champions, loyal, …) or listed per tourist.
    Rfm(Spending),
    /// Items bought by the same tourist (or on the same day), in pairs: how often together,
    /// support, confidence both ways and lift.
    Basket(Basket),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spending {
    /// A history store of tourists; `purchases` when left out.
    #[serde(default = "purchases")]
    pub store: String,
    /// Its numeric field that is spent; `amount` when left out.
    #[serde(default = "amount")]
    pub amount: String,
    /// When the rows happened; every time when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// One row per tourist (`tourist_id`, scores) instead of the summary: what an output table
    /// keeps for use as a list.
    #[serde(default)]
    pub per_tourist: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Basket {
    #[serde(default = "purchases")]
    pub store: String,
    /// The field naming what was bought; `product` when left out.
    #[serde(default = "product")]
    pub item: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// What one basket is: everything a tourist bought (`tourist`, the default), or what they
    /// bought on one day (`day`, in the zone).
    #[serde(default)]
    pub by: BasketBy,
    /// Pairs seen together fewer times are left out; 2 when left out.
    #[serde(default = "two")]
    pub min_together: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BasketBy {
    #[default]
    Tourist,
    Day,
}

fn purchases() -> String {
    "purchases".into()
}

fn amount() -> String {
    "amount".into()
}

fn product() -> String {
    "product".into()
}

fn two() -> u32 {
    2
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(at: DateTime<Utc>) -> String {
    format!("'{}'", at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The store, its owner and time fields, checked against `who`'s rights.
struct Source {
    table: String,
    owner: String,
    time: String,
}

impl Analysis {
    fn store(&self) -> &str {
        match self {
            Analysis::Decile(s) | Analysis::Rfm(s) => &s.store,
            Analysis::Basket(b) => &b.store,
        }
    }

    fn period(&self) -> Option<&Period> {
        match self {
            Analysis::Decile(s) | Analysis::Rfm(s) => s.period.as_ref(),
            Analysis::Basket(b) => b.period.as_ref(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Analysis::Decile(_) => "decile",
            Analysis::Rfm(_) => "rfm",
            Analysis::Basket(_) => "basket",
        }
    }

    /// The dimensions of its answer; the other columns are measures.
    pub fn dimensions(&self) -> Vec<String> {
        let names: &[&str] = match self {
            Analysis::Decile(s) | Analysis::Rfm(s) if s.per_tourist => &["tourist_id"],
            Analysis::Decile(_) => &["decile"],
            Analysis::Rfm(_) => &["segment"],
            Analysis::Basket(_) => &["item_a", "item_b"],
        };
        names.iter().map(|n| n.to_string()).collect()
    }
}

async fn source(
    store: &Store,
    who: &Principal,
    analysis: &Analysis,
    at: &str,
) -> Result<(Source, std::sync::Arc<EntitySchema>)> {
    let name = analysis.store();
    let schema = store.entity_schema(name).await.map_err(|_| {
        invalid(
            &format!("{at}.store"),
            "unknown_store",
            format!("there is no history store {name:?}"),
        )
    })?;
    let (Some(parent), Some(time)) = (&schema.parent, &schema.time_field) else {
        return Err(invalid(
            &format!("{at}.store"),
            "not_a_history_store",
            format!("{name} is not a history of tourists"),
        ));
    };
    if parent.entity != "tourists" {
        return Err(invalid(
            &format!("{at}.store"),
            "not_a_history_store",
            format!("{name} is a history of {}, not of tourists", parent.entity),
        ));
    }
    store.require(who, name, Op::View).await?;
    let (field, code, wanted): (&str, &str, &[ValueKind]) = match analysis {
        Analysis::Decile(s) | Analysis::Rfm(s) => {
            (&s.amount, "amount", &[ValueKind::Int, ValueKind::Float])
        }
        Analysis::Basket(b) => (&b.item, "item", &[ValueKind::Text, ValueKind::Int]),
    };
    match schema.field(field) {
        Some(f) if wanted.contains(&ValueKind::of(&f.ty)) => {}
        Some(_) => {
            return Err(invalid(
                &format!("{at}.{code}"),
                "wrong_type",
                format!(
                    "{name}.{field} cannot be the {code} of a {} analysis",
                    analysis.name()
                ),
            ));
        }
        None => {
            return Err(invalid(
                &format!("{at}.{code}"),
                "unknown_field",
                format!("{name} has no field {field:?}"),
            ));
        }
    }
    for f in [field, parent.field.as_str(), time.as_str()] {
        if !who.rights.can_view_field(name, f) {
            return Err(StorageError::Forbidden {
                entity: name.to_string(),
                op: Op::View.name(),
                field: Some(f.to_string()),
            });
        }
    }
    Ok((
        Source {
            table: quote(name),
            owner: quote(&parent.field),
            time: quote(time),
        },
        schema,
    ))
}

/// The SQL of an analysis, for `backend`, with periods read in `zone` at `now`.
fn sql(
    analysis: &Analysis,
    source: &Source,
    backend: DbBackend,
    zone: Zone,
    now: DateTime<Utc>,
    at: &str,
) -> Result<String> {
    let Source { table, owner, time } = source;
    let pg = backend == DbBackend::Postgres;
    let mut filter = format!("{owner} IS NOT NULL");
    if let Some(period) = analysis.period() {
        let (from, to) = period
            .instants(zone, now)
            .map_err(|m| invalid(&format!("{at}.period"), "invalid_period", m))?;
        // SQLite keeps times as RFC 3339 text: compare them as instants, not as text.
        let bound = |op: &str, t: DateTime<Utc>| {
            if pg {
                format!(" AND {time} {op} {}", literal(t))
            } else {
                format!(" AND julianday({time}) {op} julianday({})", literal(t))
            }
        };
        filter.extend(from.map(|t| bound(">=", t)));
        filter.extend(to.map(|t| bound("<", t)));
    }
    Ok(match analysis {
        Analysis::Decile(s) => {
            let amount = quote(&s.amount);
            let ranked = format!(
                "WITH totals AS (SELECT {owner} AS tourist_id, sum({amount}) AS total FROM {table} \
                 WHERE {filter} GROUP BY {owner}), \
                 ranked AS (SELECT tourist_id, total, ntile(10) OVER (ORDER BY total DESC, tourist_id) AS decile FROM totals)"
            );
            if s.per_tourist {
                format!("{ranked} SELECT tourist_id, total, decile FROM ranked ORDER BY tourist_id")
            } else {
                format!(
                    "{ranked} SELECT decile, count(*) AS customers, sum(total) AS total, \
                     min(total) AS min_total, max(total) AS max_total, \
                     round(sum(total) * 1.0 / nullif((SELECT sum(total) FROM totals), 0), 4) AS share \
                     FROM ranked GROUP BY decile ORDER BY decile"
                )
            }
        }
        Analysis::Rfm(s) => {
            let amount = quote(&s.amount);
            let now = literal(now);
            let recency = if pg {
                format!(
                    "CAST(floor(extract(epoch FROM (CAST({now} AS timestamptz) - last_at)) / 86400) AS BIGINT)"
                )
            } else {
                format!("CAST(julianday({now}) - julianday(last_at) AS INTEGER)")
            };
            let scored = format!(
                "WITH per AS (SELECT {owner} AS tourist_id, count(*) AS frequency, sum({amount}) AS monetary, \
                 max({time}) AS last_at FROM {table} WHERE {filter} GROUP BY {owner}), \
                 days AS (SELECT tourist_id, frequency, monetary, {recency} AS recency_days FROM per), \
                 scored AS (SELECT tourist_id, recency_days, frequency, monetary, \
                 ntile(5) OVER (ORDER BY recency_days DESC, tourist_id) AS r, \
                 ntile(5) OVER (ORDER BY frequency, tourist_id) AS f, \
                 ntile(5) OVER (ORDER BY monetary, tourist_id) AS m FROM days)"
            );
            if s.per_tourist {
                format!(
                    "{scored} SELECT tourist_id, recency_days, frequency, monetary, r, f, m, \
                     r * 100 + f * 10 + m AS rfm FROM scored ORDER BY tourist_id"
                )
            } else {
                format!(
                    "{scored}, named AS (SELECT CASE \
                     WHEN r >= 4 AND f >= 4 THEN 'champions' \
                     WHEN f >= 4 THEN 'loyal' \
                     WHEN r >= 4 AND f <= 1 THEN 'new' \
                     WHEN r >= 4 THEN 'potential_loyalists' \
                     WHEN r <= 2 AND f >= 3 THEN 'at_risk' \
                     WHEN r <= 2 THEN 'hibernating' \
                     ELSE 'needs_attention' END AS segment, recency_days, frequency, monetary FROM scored) \
                     SELECT segment, count(*) AS customers, round(avg(recency_days), 1) AS avg_recency_days, \
                     round(avg(frequency), 2) AS avg_frequency, round(avg(monetary), 0) AS avg_monetary, \
                     sum(monetary) AS monetary FROM named GROUP BY segment ORDER BY customers DESC, segment"
                )
            }
        }
        Analysis::Basket(b) => {
            let item = quote(&b.item);
            let basket = match (b.by, pg) {
                (BasketBy::Tourist, _) => owner.clone(),
                (BasketBy::Day, true) => {
                    let zone_name = match zone {
                        Zone::Named(tz) => tz.name().to_string(),
                        Zone::Fixed(_) => "UTC".to_string(),
                    };
                    format!(
                        "CAST({owner} AS text) || ':' || to_char({time} AT TIME ZONE '{zone_name}', 'YYYY-MM-DD')"
                    )
                }
                (BasketBy::Day, false) => {
                    let minutes = (zone.local(now) - now.naive_utc()).num_minutes();
                    format!("{owner} || ':' || date({time}, '{minutes:+} minutes')")
                }
            };
            format!(
                "WITH items AS (SELECT DISTINCT {basket} AS basket, {item} AS item FROM {table} \
                 WHERE {filter} AND {item} IS NOT NULL), \
                 singles AS (SELECT item, count(*) AS baskets FROM items GROUP BY item), \
                 total AS (SELECT count(DISTINCT basket) AS n FROM items), \
                 pairs AS (SELECT a.item AS item_a, b.item AS item_b, count(*) AS together FROM items a \
                 JOIN items b ON a.basket = b.basket AND a.item < b.item GROUP BY a.item, b.item \
                 HAVING count(*) >= {min}) \
                 SELECT p.item_a, p.item_b, p.together, \
                 round(p.together * 1.0 / t.n, 4) AS support, \
                 round(p.together * 1.0 / sa.baskets, 4) AS confidence_a_b, \
                 round(p.together * 1.0 / sb.baskets, 4) AS confidence_b_a, \
                 round(p.together * 1.0 * t.n / (sa.baskets * sb.baskets), 4) AS lift \
                 FROM pairs p JOIN singles sa ON sa.item = p.item_a JOIN singles sb ON sb.item = p.item_b \
                 CROSS JOIN total t ORDER BY p.together DESC, lift DESC, p.item_a, p.item_b",
                min = b.min_together.max(1)
            )
        }
    })
}

/// The SQL an analysis runs for `who`: what a saved output table keeps.
pub async fn sql_for(
    store: &Store,
    who: &Principal,
    analysis: &Analysis,
    zone: Zone,
    now: DateTime<Utc>,
    at: &str,
) -> Result<String> {
    let (source, _) = source(store, who, analysis, at).await?;
    sql(analysis, &source, store.db().backend(), zone, now, at)
}

/// Runs an analysis as `who`: one object per row, with the decile's cumulative share added.
pub async fn run(
    store: &Store,
    who: &Principal,
    analysis: &Analysis,
    zone: Zone,
    now: DateTime<Utc>,
    limit: usize,
    at: &str,
) -> Result<(Vec<Map<String, Json>>, Vec<String>, bool)> {
    let text = sql_for(store, who, analysis, zone, now, at).await?;
    let Answer {
        columns,
        rows,
        truncated,
        ..
    } = workspace::query_generated(store, who, "analysis", &text, limit.min(MAX_ROWS)).await?;
    let names: Vec<String> = columns.into_iter().map(|c| c.name).collect();
    let mut objects: Vec<Map<String, Json>> = rows
        .into_iter()
        .map(|row| names.iter().cloned().zip(row).collect())
        .collect();
    if let Analysis::Decile(s) = analysis
        && !s.per_tourist
    {
        let mut cumulative = 0.0;
        for row in &mut objects {
            cumulative += row.get("share").and_then(Json::as_f64).unwrap_or(0.0);
            row.insert(
                "cumulative_share".into(),
                Json::from((cumulative * 10_000.0).round() / 10_000.0),
            );
        }
    }
    let mut columns = names;
    if matches!(analysis, Analysis::Decile(s) if !s.per_tourist) {
        columns.push("cumulative_share".into());
    }
    Ok((objects, columns, truncated))
}

/// An analysis kept as an output table of the SQL workspace (its SQL kept with it), usable as
/// a list in filters: `{"rfm": {"per_tourist": true}}` gives one row per tourist with scores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveAnalysis {
    pub name: String,
    #[serde(default)]
    pub mode: workspace::SaveMode,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    pub analysis: Analysis,
}

/// Saves an analysis's rows as an output table; needs the workspace's rights.
pub async fn save(
    store: &Store,
    who: &Principal,
    request: &SaveAnalysis,
    now: DateTime<Utc>,
) -> Result<workspace::OutputTable> {
    let zone = crate::search::parse_zone(request.zone.as_deref())?;
    let text = sql_for(store, who, &request.analysis, zone, now, "analysis").await?;
    workspace::save(
        store,
        who,
        &workspace::SaveRequest {
            name: request.name.clone(),
            sql: text,
            mode: request.mode,
            description: request.description.clone(),
            timeout_seconds: None,
        },
        now,
    )
    .await
}

#[cfg(test)]
mod tests;
