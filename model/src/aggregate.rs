//! Aggregates as data (CF-10): groupings (a field, or a date bucketed by day, week, month or
//! year) and measures (count, sum, average, minimum, maximum), shared by the aggregate API,
//! reports and scheduled exports; storage computes them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grouping {
    pub field: String,
    /// For dates and times: the span a group covers, in the request's zone.
    #[serde(default)]
    pub bucket: Option<Bucket>,
}

impl Grouping {
    /// The name of the grouping in each group: the field, or `registered_at_month`.
    pub fn name(&self) -> String {
        match self.bucket {
            None => self.field.clone(),
            Some(bucket) => format!("{}_{}", self.field, bucket.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Day,
    /// Monday to Sunday, named by its Monday.
    Week,
    Month,
    Year,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
            Bucket::Year => "year",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Bucket::Day => "日",
            Bucket::Week => "週",
            Bucket::Month => "月",
            Bucket::Year => "年",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateMeasure {
    Count,
    Sum(String),
    Avg(String),
    Min(String),
    Max(String),
}

impl AggregateMeasure {
    /// The name of the measure in each group: `count`, `sum_total_spend`, …
    /// The field measured; none for a count.
    pub fn field(&self) -> Option<&str> {
        match self {
            AggregateMeasure::Count => None,
            AggregateMeasure::Sum(f)
            | AggregateMeasure::Avg(f)
            | AggregateMeasure::Min(f)
            | AggregateMeasure::Max(f) => Some(f),
        }
    }

    /// What the measure does, for Japanese and English column headings.
    pub fn verb_ja(&self) -> &'static str {
        match self {
            AggregateMeasure::Count => "件数",
            AggregateMeasure::Sum(_) => "合計",
            AggregateMeasure::Avg(_) => "平均",
            AggregateMeasure::Min(_) => "最小",
            AggregateMeasure::Max(_) => "最大",
        }
    }

    pub fn verb_en(&self) -> &'static str {
        match self {
            AggregateMeasure::Count => "count",
            AggregateMeasure::Sum(_) => "total",
            AggregateMeasure::Avg(_) => "average",
            AggregateMeasure::Min(_) => "minimum",
            AggregateMeasure::Max(_) => "maximum",
        }
    }

    pub fn name(&self) -> String {
        match self {
            AggregateMeasure::Count => "count".into(),
            AggregateMeasure::Sum(f) => format!("sum_{f}"),
            AggregateMeasure::Avg(f) => format!("avg_{f}"),
            AggregateMeasure::Min(f) => format!("min_{f}"),
            AggregateMeasure::Max(f) => format!("max_{f}"),
        }
    }
}
