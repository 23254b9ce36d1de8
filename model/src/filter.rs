//! Filters: the JSON a user writes to find records without SQL (segments, searches, bulk
//! actions), and the resolved form storage compiles to SQL.
//!
//! A [`Filter`] is what arrives: groups (`all`, `any`, `not`) of conditions on a record's own
//! fields, on its history (purchases, point ledger, any history store), on the messages it was
//! sent, on the flows it is in, or on another saved segment. [`Resolver::resolve`] checks it
//! against the schema, parses every value the way the field stores it, turns relative dates
//! ("the last 30 days", "this month") into fixed bounds for one instant and zone, and returns
//! a [`Cond`]: the same tree with nothing left to interpret.
//!
//! Every leaf is two-valued: a record with no value for a field fails a positive test and
//! passes its negation (`ne`, `not_in`, `not_contains`, `none_of`), so `not` means what it
//! says and SQL's NULL logic never leaks into results.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::field::{ColumnKind, FieldDef, FieldType, Label, StoredValue};
use crate::flow::CONTACTS;
use crate::normalize::nfkc;
use crate::schema::EntitySchema;
use crate::zone::Zone;

/// Most conditions one filter may hold, segments it refers to included.
pub const MAX_CONDITIONS: usize = 500;
/// Deepest nesting of groups and segment references.
pub const MAX_DEPTH: usize = 16;

/// A filter as users write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Filter {
    /// Every condition holds (an empty list matches every record).
    All(Vec<Filter>),
    /// At least one condition holds (an empty list matches none).
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Field(FieldTest),
    History(HistoryTest),
    Message(MessageTest),
    Journey(JourneyTest),
    /// The records of another saved segment of the same entity, by its key.
    Segment(String),
    /// A random draw (DM-10), the same every time for the same seed and records.
    Sample(SampleTest),
    /// The records whose ids an output table of the SQL workspace holds (MA-9): a list made
    /// with SQL, usable like any other condition.
    OutputTable(OutputTableTest),
    /// The members of a static list (CF-5), by its key: records added to it by hand, by ids or
    /// by a filter at one moment, kept until removed.
    List(String),
}

/// `{"output_table": {"name": "vip_2026", "column": "tourist_id"}}`: records whose id is in
/// that column of the output table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputTableTest {
    pub name: String,
    /// An integer column holding record ids; `id` when left out.
    #[serde(default = "id_column")]
    pub column: String,
}

fn id_column() -> String {
    "id".into()
}

/// `{"sample": {"of": FILTER, "count": 500, "seed": 42}}` draws 500 of the records `of` matches;
/// `"ratio": 0.1` draws each record with probability 10 %. Which records are drawn depends only
/// on their ids and the seed, so a saved segment that draws keeps the same members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleTest {
    /// What to draw from; every record when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<Box<Filter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default)]
    pub seed: u32,
}

/// Draws per million records for `ratio`.
pub const DRAW_SCALE: i64 = 1_000_000;

/// Where a record falls in the draw of `seed`: a 32-bit integer hash of its id and the seed
/// (a multiplicative step, then two xor-shift-multiply rounds so that seeds draw unrelated
/// records). Every step stays inside 64-bit integers and uses only `*`, `+`, `&`, `|`, `-` and
/// `>>`, so SQLite and PostgreSQL compute the very same ranks (see `storage::search`).
pub fn draw_rank(id: i64, seed: u32) -> i64 {
    let mut x = (id.wrapping_mul(DRAW_MULTIPLIER) + i64::from(seed) * DRAW_SEED_STEP) & DRAW_MASK;
    for _ in 0..2 {
        x = (((x >> 16) ^ x) * DRAW_MIX) & DRAW_MASK;
    }
    (x >> 16) ^ x
}

pub const DRAW_MULTIPLIER: i64 = 2_654_435_761;
pub const DRAW_SEED_STEP: i64 = 40_503;
pub const DRAW_MIX: i64 = 0x045d_9f3b;
pub const DRAW_MASK: i64 = 0xffff_ffff;

impl Filter {
    /// The keys of the saved segments this filter names itself (not those they name in turn).
    pub fn segments(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.each(&mut |f| {
            if let Filter::Segment(key) = f {
                out.push(key.as_str());
            }
        });
        out
    }

    /// The output tables this filter names itself.
    pub fn output_tables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.each(&mut |f| {
            if let Filter::OutputTable(t) = f {
                out.push(t.name.as_str());
            }
        });
        out
    }

    /// The static lists this filter names itself.
    pub fn lists(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.each(&mut |f| {
            if let Filter::List(key) = f {
                out.push(key.as_str());
            }
        });
        out
    }

    /// The first part of this filter whose matches change by themselves, as a name for
    /// messages: a saved segment or list, an output table, a draw, message or flow results.
    pub fn unstable_part(&self) -> Option<&'static str> {
        let mut found = None;
        self.each(&mut |f| {
            let what = match f {
                Filter::Segment(_) => "a saved segment",
                Filter::List(_) => "a list",
                Filter::OutputTable(_) => "an output table",
                Filter::Sample(_) => "a random draw",
                Filter::Message(_) => "message results",
                Filter::Journey(_) => "flow results",
                _ => return,
            };
            found.get_or_insert(what);
        });
        found
    }

    /// Calls `visit` on this filter and every filter inside it.
    fn each<'a>(&'a self, visit: &mut impl FnMut(&'a Filter)) {
        visit(self);
        match self {
            Filter::All(items) | Filter::Any(items) => items.iter().for_each(|f| f.each(visit)),
            Filter::Not(inner) => inner.each(visit),
            Filter::History(h) => h.filter.iter().for_each(|f| f.each(visit)),
            Filter::Sample(s) => s.of.iter().for_each(|f| f.each(visit)),
            Filter::Field(_)
            | Filter::Message(_)
            | Filter::Journey(_)
            | Filter::Segment(_)
            | Filter::OutputTable(_)
            | Filter::List(_) => {}
        }
    }
}

/// The JSON Schema of [`Filter`], published as `docs/filter.schema.json`.
pub fn json_schema() -> Json {
    serde_json::to_value(schemars::schema_for!(Filter)).expect("a schema is JSON")
}

/// A test of one field: `{"key": "prefecture", "op": "eq", "value": "愛知県"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldTest {
    pub key: String,
    pub op: Operator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Eq,
    Ne,
    In,
    NotIn,
    Lt,
    Lte,
    Gt,
    Gte,
    /// Inclusive at both ends: `"value": [low, high]`.
    Between,
    /// Ignoring the case of Latin letters.
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Empty,
    NotEmpty,
    IsTrue,
    IsFalse,
    /// A date or time within a [`Period`] such as `{"last_days": 30}` or `{"this": "month"}`.
    InPeriod,
    /// The month of a date or month-day: 1–12, or `"this"`, `"next"`, `"last"` (birthdays).
    MonthIs,
    /// Multiple choice: holds at least one of the listed options.
    AnyOf,
    AllOf,
    NoneOf,
}

impl Operator {
    pub fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Ne => "ne",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Between => "between",
            Operator::Contains => "contains",
            Operator::NotContains => "not_contains",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::Empty => "empty",
            Operator::NotEmpty => "not_empty",
            Operator::IsTrue => "is_true",
            Operator::IsFalse => "is_false",
            Operator::InPeriod => "in_period",
            Operator::MonthIs => "month_is",
            Operator::AnyOf => "any_of",
            Operator::AllOf => "all_of",
            Operator::NoneOf => "none_of",
        }
    }

    /// The operators a field type accepts.
    pub fn for_type(ty: &FieldType) -> &'static [Operator] {
        use Operator::*;
        match ty {
            FieldType::Text { .. }
            | FieldType::LongText
            | FieldType::Email
            | FieldType::Phone
            | FieldType::PostalCode
            | FieldType::Url => &[
                Eq,
                Ne,
                In,
                NotIn,
                Contains,
                NotContains,
                StartsWith,
                EndsWith,
                Empty,
                NotEmpty,
            ],
            FieldType::Integer { .. } | FieldType::Decimal | FieldType::Reference { .. } => &[
                Eq, Ne, In, NotIn, Lt, Lte, Gt, Gte, Between, Empty, NotEmpty,
            ],
            FieldType::Boolean => &[IsTrue, IsFalse, Empty, NotEmpty],
            FieldType::Date => &[
                Eq, Ne, Lt, Lte, Gt, Gte, Between, InPeriod, MonthIs, Empty, NotEmpty,
            ],
            FieldType::MonthDay => &[
                Eq, Ne, In, NotIn, Lt, Lte, Gt, Gte, Between, MonthIs, Empty, NotEmpty,
            ],
            FieldType::Timestamp => &[Lt, Lte, Gt, Gte, Between, InPeriod, Empty, NotEmpty],
            FieldType::SingleChoice { .. } => &[Eq, Ne, In, NotIn, Empty, NotEmpty],
            FieldType::MultiChoice { .. } => &[AnyOf, AllOf, NoneOf, Empty, NotEmpty],
            FieldType::Password => &[],
        }
    }
}

/// A span of days in the filter's zone, fixed when the filter is resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Period {
    /// The last N days, today included.
    LastDays(u32),
    /// Today and the N − 1 days after it.
    NextDays(u32),
    /// Before the day N days ago: `{"more_than_days_ago": 90}` for "not in the last 90 days".
    MoreThanDaysAgo(u32),
    /// The current day, week (Monday to Sunday), month or year.
    This(Unit),
    /// The one before the current one: `{"last": "month"}` is the whole of last month.
    Last(Unit),
    Next(Unit),
    /// From one day to another, both included; either end may be left open.
    Between {
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        from: Option<NaiveDate>,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        to: Option<NaiveDate>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Day,
    Week,
    Month,
    Year,
}

/// A condition on a record's history: "bought more than ¥10,000 in the last 30 days",
/// "used points three times", "last inquiry before 2025".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryTest {
    /// The history entity: `purchases`, `point_ledger`, `inquiries` or a custom history store.
    pub store: String,
    /// Only rows whose time field falls in this period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Only rows matching this filter over the store's own fields.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Box<Filter>>,
    /// What is measured over the rows; `count` when left out.
    #[serde(default)]
    pub measure: Measure,
    /// The test of the measure; "at least one row" when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Operator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    #[default]
    Count,
    Sum(String),
    Avg(String),
    Min(String),
    Max(String),
    /// The time of the first row (the store's time field).
    FirstAt,
    LastAt,
}

/// Messages a contact was sent by flows, and what they did with them (AN-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageTest {
    /// The flow's id; any flow when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<i64>,
    /// The send node's id within the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub status: MessageStatus,
    /// When it was sent, opened or clicked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Handed to the provider.
    Sent,
    Opened,
    Clicked,
    /// Given up on after every retry.
    Failed,
}

/// Where a contact is in a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyTest {
    pub flow: i64,
    /// Waiting at this node now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// `entered` when left out.
    #[serde(default)]
    pub status: JourneyStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JourneyStatus {
    /// Has entered the flow at some time.
    #[default]
    Entered,
    /// Is in the flow now.
    Active,
    Finished,
    /// Finished by reaching one of the flow's goals.
    ReachedGoal,
}

/// A resolved filter: every value parsed, every period fixed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Field {
        key: String,
        kind: ValueKind,
        test: Test,
    },
    History(HistoryCond),
    Message {
        flow: Option<i64>,
        node: Option<String>,
        template: Option<String>,
        status: MessageStatus,
        /// Epoch milliseconds, half-open.
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    },
    Journey {
        flow: i64,
        at: Option<String>,
        status: JourneyStatus,
    },
    /// The record is a member of static list `list` (its id).
    InList {
        list: i64,
    },
    /// The record's `field` holds the id of an `entity` record meeting `cond`: how a history
    /// row follows its owner's record rights.
    InParent {
        field: String,
        entity: String,
        cond: Box<Cond>,
    },
    /// The record's id is in `column` of output table `name`.
    InTable {
        name: String,
        column: String,
    },
    Sample {
        table: String,
        of: Box<Cond>,
        draw: Draw,
        seed: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// Records whose rank modulo [`DRAW_SCALE`] is below this.
    PerMillion(i64),
    /// The records of lowest rank (ties broken by id).
    Count(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryCond {
    pub store: String,
    /// The store's field holding the owner's id.
    pub owner_field: String,
    /// Over the store's rows, the period included.
    pub rows: Box<Cond>,
    pub measure: Aggregate,
    pub test: Test,
    /// Whether a record with no matching rows passes (`count < 3`, `sum = 0`).
    pub holds_for_none: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    Count,
    Sum(String),
    Avg(String),
    Min(String),
    Max(String),
    First(String),
    Last(String),
}

/// How values compare: what a test's operands are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    /// A JSON list of options, stored as text.
    Choices,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
}

impl ValueKind {
    pub fn of(ty: &FieldType) -> ValueKind {
        if matches!(ty, FieldType::MultiChoice { .. }) {
            return ValueKind::Choices;
        }
        match ty.column_kind() {
            ColumnKind::Text => ValueKind::Text,
            ColumnKind::BigInt => ValueKind::Int,
            ColumnKind::Double => ValueKind::Float,
            ColumnKind::Bool => ValueKind::Bool,
            ColumnKind::Date => ValueKind::Date,
            ColumnKind::Timestamp => ValueKind::Timestamp,
        }
    }
}

/// A test of one value. Text tests carry their needle already folded as the field stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Empty,
    NotEmpty,
    Eq(StoredValue),
    Ne(StoredValue),
    In(Vec<StoredValue>),
    NotIn(Vec<StoredValue>),
    Lt(StoredValue),
    Lte(StoredValue),
    Gt(StoredValue),
    Gte(StoredValue),
    /// Inclusive.
    Between(StoredValue, StoredValue),
    /// Half-open `[from, to)`: a resolved period.
    Range(Option<StoredValue>, Option<StoredValue>),
    Contains(String),
    NotContains(String),
    StartsWith(String),
    EndsWith(String),
    /// The month (1–12) of a date or `MM-DD` value.
    Month(u32),
    AnyOf(Vec<String>),
    AllOf(Vec<String>),
    NoneOf(Vec<String>),
}

impl Test {
    /// Whether a test passes for a record with no value: the negative tests do.
    pub fn passes_when_empty(&self) -> bool {
        matches!(
            self,
            Test::Empty | Test::Ne(_) | Test::NotIn(_) | Test::NotContains(_) | Test::NoneOf(_)
        )
    }
}

/// Why a filter was refused: where in it (`all[2].history.value`) and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    pub path: String,
    pub code: &'static str,
    pub message: String,
}

/// A resolved filter and what it reads, for rights checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub cond: Cond,
    /// (entity, field) pairs the filter tests.
    pub fields: BTreeSet<(String, String)>,
    /// Whether it looks at message results or flow runs.
    pub reads_engine: bool,
    /// The saved segments it draws on.
    pub segments: BTreeSet<String>,
    /// The output tables it reads.
    pub output_tables: BTreeSet<String>,
    /// The static lists it reads.
    pub lists: BTreeSet<String>,
}

/// What resolving needs to know about the world.
pub struct Resolver<'a> {
    pub now: DateTime<Utc>,
    pub zone: Zone,
    pub entity: &'a dyn Fn(&str) -> Option<&'a EntitySchema>,
    /// A saved segment's entity and filter, by key.
    pub segment: &'a dyn Fn(&str) -> Option<(String, Filter)>,
    /// An output table's integer columns, by name; `None` for tables the caller may not read.
    pub output_table: &'a dyn Fn(&str) -> Option<Vec<String>>,
    /// A static list's id and entity, by key.
    pub list: &'a dyn Fn(&str) -> Option<(i64, String)>,
}

struct Walk {
    fields: BTreeSet<(String, String)>,
    reads_engine: bool,
    segments: BTreeSet<String>,
    output_tables: BTreeSet<String>,
    lists: BTreeSet<String>,
    /// Segments being expanded, to refuse cycles.
    stack: Vec<String>,
    conditions: usize,
    errors: Vec<FilterError>,
}

fn not_contacts(entity: &str) -> String {
    format!("flows send to {CONTACTS}; {entity} have no messages or flow runs")
}

/// The system columns every record has, as fields a filter may test.
pub fn system_field(key: &str) -> Option<FieldDef> {
    let ty = match key {
        "id" => FieldType::integer(),
        "created_at" | "updated_at" => FieldType::Timestamp,
        _ => return None,
    };
    Some(FieldDef {
        key: key.into(),
        label: Label {
            ja: key.into(),
            en: key.into(),
        },
        ty,
        required: true,
        unique: key == "id",
        nfkc: false,
        read_only: true,
        builtin: true,
        indexed: key == "id",
    })
}

impl Period {
    /// The period as a half-open span of instants (local midnights in `zone`), read at `now`.
    #[allow(clippy::type_complexity)]
    pub fn instants(
        &self,
        zone: Zone,
        now: DateTime<Utc>,
    ) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), String> {
        let resolver = Resolver {
            now,
            zone,
            entity: &|_| None,
            segment: &|_| None,
            output_table: &|_| None,
            list: &|_| None,
        };
        resolver.instants(self)
    }
}

impl Resolver<'_> {
    /// Checks `filter` against `entity` and fixes every value, or says everything wrong with it.
    pub fn resolve(&self, filter: &Filter, entity: &str) -> Result<Resolved, Vec<FilterError>> {
        let mut walk = Walk {
            fields: BTreeSet::new(),
            reads_engine: false,
            segments: BTreeSet::new(),
            output_tables: BTreeSet::new(),
            lists: BTreeSet::new(),
            stack: Vec::new(),
            conditions: 0,
            errors: Vec::new(),
        };
        let Some(schema) = (self.entity)(entity) else {
            return Err(vec![FilterError {
                path: "entity".into(),
                code: "unknown_entity",
                message: format!("there is no entity {entity:?}"),
            }]);
        };
        let cond = self.walk(filter, schema, "filter", 0, &mut walk, Scope::Record);
        if walk.errors.is_empty() {
            Ok(Resolved {
                cond: cond.expect("no errors means a condition"),
                fields: walk.fields,
                reads_engine: walk.reads_engine,
                segments: walk.segments,
                output_tables: walk.output_tables,
                lists: walk.lists,
            })
        } else {
            Err(walk.errors)
        }
    }

    fn walk(
        &self,
        filter: &Filter,
        schema: &EntitySchema,
        path: &str,
        depth: usize,
        walk: &mut Walk,
        scope: Scope,
    ) -> Option<Cond> {
        let fail = |walk: &mut Walk, path: String, code: &'static str, message: String| {
            walk.errors.push(FilterError {
                path,
                code,
                message,
            });
            None
        };
        if depth > MAX_DEPTH {
            return fail(
                walk,
                path.into(),
                "too_deep",
                format!("groups and segments nest at most {MAX_DEPTH} deep"),
            );
        }
        if scope == Scope::HistoryRows
            && !matches!(
                filter,
                Filter::All(_) | Filter::Any(_) | Filter::Not(_) | Filter::Field(_)
            )
        {
            return fail(
                walk,
                path.into(),
                "not_allowed_here",
                "a history condition's `where` tests the store's own fields only".into(),
            );
        }
        walk.conditions += 1;
        if walk.conditions == MAX_CONDITIONS + 1 {
            return fail(
                walk,
                path.into(),
                "too_many_conditions",
                format!("a filter holds at most {MAX_CONDITIONS} conditions"),
            );
        }
        match filter {
            Filter::All(items) | Filter::Any(items) => {
                let key = if matches!(filter, Filter::All(_)) {
                    "all"
                } else {
                    "any"
                };
                let conds: Vec<Option<Cond>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        self.walk(
                            f,
                            schema,
                            &format!("{path}.{key}[{i}]"),
                            depth + 1,
                            walk,
                            scope,
                        )
                    })
                    .collect();
                let conds: Option<Vec<Cond>> = conds.into_iter().collect();
                let conds = conds?;
                Some(if key == "all" {
                    Cond::All(conds)
                } else {
                    Cond::Any(conds)
                })
            }
            Filter::Not(inner) => self
                .walk(
                    inner,
                    schema,
                    &format!("{path}.not"),
                    depth + 1,
                    walk,
                    scope,
                )
                .map(|c| Cond::Not(Box::new(c))),
            Filter::Field(test) => {
                let path = format!("{path}.field");
                let field = schema
                    .field(&test.key)
                    .cloned()
                    .or_else(|| system_field(&test.key));
                let Some(field) = field else {
                    return fail(
                        walk,
                        path,
                        "unknown_field",
                        format!("{} has no field {:?}", schema.name, test.key),
                    );
                };
                walk.fields.insert((schema.name.clone(), field.key.clone()));
                match self.field_test(&field, test.op, test.value.as_ref()) {
                    Ok(t) => Some(Cond::Field {
                        key: field.key.clone(),
                        kind: ValueKind::of(&field.ty),
                        test: t,
                    }),
                    Err((code, message)) => {
                        fail(walk, path, code, format!("{}: {message}", field.key))
                    }
                }
            }
            Filter::History(h) => {
                let path = format!("{path}.history");
                self.history(h, schema, &path, depth, walk)
            }
            Filter::Message(m) => {
                let path = format!("{path}.message");
                if schema.name != CONTACTS {
                    return fail(walk, path, "not_contacts", not_contacts(&schema.name));
                }
                walk.reads_engine = true;
                let (from_ms, to_ms) = match &m.period {
                    Some(p) => match self.instants(p) {
                        Ok((from, to)) => (
                            from.map(|t| t.timestamp_millis()),
                            to.map(|t| t.timestamp_millis()),
                        ),
                        Err(message) => {
                            return fail(walk, format!("{path}.period"), "invalid_period", message);
                        }
                    },
                    None => (None, None),
                };
                if m.node.is_some() && m.flow.is_none() {
                    return fail(
                        walk,
                        format!("{path}.node"),
                        "node_without_flow",
                        "name the flow the node belongs to".into(),
                    );
                }
                Some(Cond::Message {
                    flow: m.flow,
                    node: m.node.clone(),
                    template: m.template.clone(),
                    status: m.status,
                    from_ms,
                    to_ms,
                })
            }
            Filter::Journey(j) => {
                if schema.name != CONTACTS {
                    return fail(
                        walk,
                        format!("{path}.journey"),
                        "not_contacts",
                        not_contacts(&schema.name),
                    );
                }
                walk.reads_engine = true;
                Some(Cond::Journey {
                    flow: j.flow,
                    at: j.at.clone(),
                    status: j.status,
                })
            }
            Filter::Sample(sample) => {
                let path = format!("{path}.sample");
                let draw = match (sample.ratio, sample.count) {
                    (Some(r), None) if r > 0.0 && r <= 1.0 => {
                        Draw::PerMillion((r * DRAW_SCALE as f64).round() as i64)
                    }
                    (None, Some(n)) if (1..=10_000_000).contains(&n) => Draw::Count(n),
                    (Some(_), None) => {
                        return fail(
                            walk,
                            format!("{path}.ratio"),
                            "invalid_value",
                            "a ratio is above 0 and at most 1 (0.1 draws 10 %)".into(),
                        );
                    }
                    (None, Some(_)) => {
                        return fail(
                            walk,
                            format!("{path}.count"),
                            "invalid_value",
                            "draw 1 to 10,000,000 records".into(),
                        );
                    }
                    _ => {
                        return fail(
                            walk,
                            path,
                            "invalid_value",
                            "give either a ratio or a count".into(),
                        );
                    }
                };
                let of = match &sample.of {
                    Some(of) => {
                        self.walk(of, schema, &format!("{path}.of"), depth + 1, walk, scope)?
                    }
                    None => Cond::All(vec![]),
                };
                Some(Cond::Sample {
                    table: schema.name.clone(),
                    of: Box::new(of),
                    draw,
                    seed: sample.seed,
                })
            }
            Filter::Segment(key) => {
                let path = format!("{path}.segment");
                if walk.stack.contains(key) {
                    return fail(
                        walk,
                        path,
                        "segment_cycle",
                        format!(
                            "segment {key:?} refers back to itself through {}",
                            walk.stack.join(" → ")
                        ),
                    );
                }
                let Some((entity, inner)) = (self.segment)(key) else {
                    return fail(
                        walk,
                        path,
                        "unknown_segment",
                        format!("there is no segment {key:?}"),
                    );
                };
                if entity != schema.name {
                    return fail(
                        walk,
                        path,
                        "wrong_entity",
                        format!("segment {key:?} holds {entity}, not {}", schema.name),
                    );
                }
                walk.segments.insert(key.clone());
                walk.stack.push(key.clone());
                let cond = self.walk(
                    &inner,
                    schema,
                    &format!("{path}({key})"),
                    depth + 1,
                    walk,
                    scope,
                );
                walk.stack.pop();
                cond
            }
            Filter::OutputTable(table) => {
                let path = format!("{path}.output_table");
                let Some(columns) = (self.output_table)(&table.name) else {
                    return fail(
                        walk,
                        format!("{path}.name"),
                        "unknown_output_table",
                        format!("there is no output table {:?} you may read", table.name),
                    );
                };
                if !columns.contains(&table.column) {
                    return fail(
                        walk,
                        format!("{path}.column"),
                        "unknown_column",
                        format!(
                            "output table {:?} has no integer column {:?}; its integer columns: {}",
                            table.name,
                            table.column,
                            columns.join(", ")
                        ),
                    );
                }
                walk.output_tables.insert(table.name.clone());
                Some(Cond::InTable {
                    name: table.name.clone(),
                    column: table.column.clone(),
                })
            }
            Filter::List(key) => {
                let path = format!("{path}.list");
                let Some((id, entity)) = (self.list)(key) else {
                    return fail(
                        walk,
                        path,
                        "unknown_list",
                        format!("there is no list {key:?}"),
                    );
                };
                if entity != schema.name {
                    return fail(
                        walk,
                        path,
                        "wrong_entity",
                        format!("list {key:?} holds {entity}, not {}", schema.name),
                    );
                }
                walk.lists.insert(key.clone());
                Some(Cond::InList { list: id })
            }
        }
    }

    fn history(
        &self,
        h: &HistoryTest,
        owner: &EntitySchema,
        path: &str,
        depth: usize,
        walk: &mut Walk,
    ) -> Option<Cond> {
        let mut fail = |path: String, code: &'static str, message: String| {
            walk.errors.push(FilterError {
                path,
                code,
                message,
            });
        };
        let Some(store) = (self.entity)(&h.store) else {
            fail(
                format!("{path}.store"),
                "unknown_entity",
                format!("there is no history store {:?}", h.store),
            );
            return None;
        };
        let Some(parent) = store.parent.as_ref().filter(|p| p.entity == owner.name) else {
            fail(
                format!("{path}.store"),
                "not_history_of",
                format!("{} records do not belong to {}", store.name, owner.name),
            );
            return None;
        };
        // Every history condition reads the store, if only its owner links.
        walk.fields
            .insert((store.name.clone(), parent.field.clone()));
        let time_field = store.time_field.clone();
        let mut rows = Vec::new();
        if let Some(period) = &h.period {
            let Some(time) = &time_field else {
                fail(
                    format!("{path}.period"),
                    "no_time_field",
                    format!("{} has no time field to take a period over", store.name),
                );
                return None;
            };
            let field = store
                .field(time)
                .expect("a store's time field is one of its fields");
            match self.range_for(field, period) {
                Ok(test) => rows.push(Cond::Field {
                    key: time.clone(),
                    kind: ValueKind::of(&field.ty),
                    test,
                }),
                Err(message) => {
                    fail(format!("{path}.period"), "invalid_period", message);
                    return None;
                }
            }
            walk.fields.insert((store.name.clone(), time.clone()));
        }
        if let Some(inner) = &h.filter {
            rows.push(self.walk(
                inner,
                store,
                &format!("{path}.where"),
                depth + 1,
                walk,
                Scope::HistoryRows,
            )?);
        }
        let numeric = |walk: &mut Walk, key: &str| -> Option<String> {
            match store.field(key) {
                Some(f) if matches!(ValueKind::of(&f.ty), ValueKind::Int | ValueKind::Float) => {
                    walk.fields.insert((store.name.clone(), key.to_string()));
                    Some(key.to_string())
                }
                Some(_) => {
                    walk.errors.push(FilterError {
                        path: format!("{path}.measure"),
                        code: "not_numeric",
                        message: format!("{}.{key} is not a number", store.name),
                    });
                    None
                }
                None => {
                    walk.errors.push(FilterError {
                        path: format!("{path}.measure"),
                        code: "unknown_field",
                        message: format!("{} has no field {key:?}", store.name),
                    });
                    None
                }
            }
        };
        let measure = match &h.measure {
            Measure::Count => Aggregate::Count,
            Measure::Sum(k) => Aggregate::Sum(numeric(walk, k)?),
            Measure::Avg(k) => Aggregate::Avg(numeric(walk, k)?),
            Measure::Min(k) => Aggregate::Min(numeric(walk, k)?),
            Measure::Max(k) => Aggregate::Max(numeric(walk, k)?),
            Measure::FirstAt | Measure::LastAt => {
                let Some(time) = &time_field else {
                    walk.errors.push(FilterError {
                        path: format!("{path}.measure"),
                        code: "no_time_field",
                        message: format!("{} has no time field", store.name),
                    });
                    return None;
                };
                walk.fields.insert((store.name.clone(), time.clone()));
                if h.measure == Measure::FirstAt {
                    Aggregate::First(time.clone())
                } else {
                    Aggregate::Last(time.clone())
                }
            }
        };
        // The measure is tested as if it were a field of the type it yields.
        let measured = FieldDef {
            key: "measure".into(),
            label: Label {
                ja: String::new(),
                en: String::new(),
            },
            ty: match &measure {
                Aggregate::Count => FieldType::integer(),
                Aggregate::Avg(_) => FieldType::Decimal,
                Aggregate::Sum(k) | Aggregate::Min(k) | Aggregate::Max(k) => store
                    .field(k)
                    .map(|f| f.ty.clone())
                    .unwrap_or(FieldType::Decimal),
                Aggregate::First(_) | Aggregate::Last(_) => FieldType::Timestamp,
            },
            required: false,
            unique: false,
            nfkc: false,
            read_only: false,
            builtin: false,
            indexed: false,
        };
        let (op, value) = match (h.op, &h.value) {
            (None, None) if measure == Aggregate::Count => (Operator::Gte, Some(Json::from(1))),
            (None, _) => {
                walk.errors.push(FilterError {
                    path: format!("{path}.op"),
                    code: "missing_op",
                    message: "say how the measure is tested (op and value)".into(),
                });
                return None;
            }
            (Some(op), value) => (op, value.clone()),
        };
        if matches!(op, Operator::Empty | Operator::NotEmpty) {
            walk.errors.push(FilterError {
                path: format!("{path}.op"),
                code: "invalid_operator",
                message: "test a measure with eq, ne, lt, lte, gt, gte, between or in_period; \
                          use not around the condition for \"has none\""
                    .into(),
            });
            return None;
        }
        let test = match self.field_test(&measured, op, value.as_ref()) {
            Ok(t) => t,
            Err((code, message)) => {
                walk.errors.push(FilterError {
                    path: format!("{path}.value"),
                    code,
                    message,
                });
                return None;
            }
        };
        let holds_for_none = matches!(measure, Aggregate::Count | Aggregate::Sum(_))
            && eval_test(&test, ValueKind::Int, Some(&StoredValue::Int(0)));
        Some(Cond::History(HistoryCond {
            store: store.name.clone(),
            owner_field: parent.field.clone(),
            rows: Box::new(Cond::All(rows)),
            measure,
            test,
            holds_for_none,
        }))
    }

    /// Parses one field test's value for the field's type.
    fn field_test(
        &self,
        field: &FieldDef,
        op: Operator,
        value: Option<&Json>,
    ) -> Result<Test, (&'static str, String)> {
        let allowed = Operator::for_type(&field.ty);
        if !allowed.contains(&op) {
            let names: Vec<&str> = allowed.iter().map(|o| o.name()).collect();
            return Err((
                "invalid_operator",
                if names.is_empty() {
                    format!("{} fields cannot be searched", field.ty.name())
                } else {
                    format!(
                        "{} does not apply to {} fields; use one of: {}",
                        op.name(),
                        field.ty.name(),
                        names.join(", ")
                    )
                },
            ));
        }
        let needs_value = !matches!(
            op,
            Operator::Empty | Operator::NotEmpty | Operator::IsTrue | Operator::IsFalse
        );
        let value = match (needs_value, value) {
            (true, None | Some(Json::Null)) => {
                return Err((
                    "missing_value",
                    format!(
                        "{} needs a value; use empty to find records without one",
                        op.name()
                    ),
                ));
            }
            (false, Some(v)) if !v.is_null() => {
                return Err(("unexpected_value", format!("{} takes no value", op.name())));
            }
            (_, v) => v.cloned().unwrap_or(Json::Null),
        };
        let exact = |v: &Json| -> Result<StoredValue, (&'static str, String)> {
            match field.parse(v) {
                Ok(StoredValue::Null) => Err(("missing_value", "the value is empty".into())),
                Ok(StoredValue::Secret(_)) => Err(("invalid_operator", "not searchable".into())),
                Ok(v) => Ok(v),
                Err(e) => Err((e.code, e.message)),
            }
        };
        // Comparisons ignore the field's own limits: "less than 0" is a fair question of a
        // field that refuses negative values.
        let loose = |v: &Json| -> Result<StoredValue, (&'static str, String)> {
            let mut unbounded = field.clone();
            if let FieldType::Integer { min, max } = &mut unbounded.ty {
                *min = None;
                *max = None;
            }
            match (&field.ty, v) {
                (FieldType::Integer { .. } | FieldType::Reference { .. }, Json::Number(n))
                    if n.as_i64().is_none() =>
                {
                    return n
                        .as_f64()
                        .map(StoredValue::Float)
                        .ok_or(("invalid_type", "must be a number".to_string()));
                }
                _ => {}
            }
            match unbounded.parse(v) {
                Ok(StoredValue::Null) => Err(("missing_value", "the value is empty".into())),
                Ok(v) => Ok(v),
                Err(e) => Err((e.code, e.message)),
            }
        };
        let list = |v: &Json| -> Result<Vec<Json>, (&'static str, String)> {
            match v {
                Json::Array(items) if !items.is_empty() && items.len() <= 1000 => Ok(items.clone()),
                Json::Array(_) => Err(("invalid_value", "list 1 to 1000 values".to_string())),
                _ => Err(("invalid_type", "must be a list of values".into())),
            }
        };
        let needle = |v: &Json| -> Result<String, (&'static str, String)> {
            let Json::String(s) = v else {
                return Err(("invalid_type", "must be text".into()));
            };
            let mut s = if field.nfkc
                || matches!(
                    field.ty,
                    FieldType::Email | FieldType::Phone | FieldType::PostalCode
                ) {
                nfkc(s.trim())
            } else {
                s.to_string()
            };
            if matches!(field.ty, FieldType::Phone | FieldType::PostalCode) {
                s.retain(|c| c != '-' && c != ' ');
            }
            if s.is_empty() {
                return Err(("missing_value", "the text to look for is empty".into()));
            }
            Ok(s)
        };
        let options = |v: &Json| -> Result<Vec<String>, (&'static str, String)> {
            let FieldType::MultiChoice { options } = &field.ty else {
                unreachable!("only multiple-choice fields take option lists")
            };
            let items = list(v)?;
            items
                .iter()
                .map(|item| match item.as_str() {
                    Some(s) if options.iter().any(|o| o == s) => Ok(s.to_string()),
                    _ => Err((
                        "invalid_choice",
                        format!("{item} is not one of: {}", options.join(", ")),
                    )),
                })
                .collect()
        };
        Ok(match op {
            Operator::Empty => Test::Empty,
            Operator::NotEmpty => Test::NotEmpty,
            Operator::IsTrue => Test::Eq(StoredValue::Bool(true)),
            Operator::IsFalse => Test::Eq(StoredValue::Bool(false)),
            Operator::Eq => Test::Eq(exact(&value)?),
            Operator::Ne => Test::Ne(exact(&value)?),
            Operator::In => Test::In(list(&value)?.iter().map(exact).collect::<Result<_, _>>()?),
            Operator::NotIn => {
                Test::NotIn(list(&value)?.iter().map(exact).collect::<Result<_, _>>()?)
            }
            Operator::Lt => Test::Lt(loose(&value)?),
            Operator::Lte => Test::Lte(loose(&value)?),
            Operator::Gt => Test::Gt(loose(&value)?),
            Operator::Gte => Test::Gte(loose(&value)?),
            Operator::Between => {
                let items = list(&value)?;
                let [low, high] = items.as_slice() else {
                    return Err(("invalid_value", "between takes [low, high]".into()));
                };
                Test::Between(loose(low)?, loose(high)?)
            }
            Operator::Contains => Test::Contains(needle(&value)?),
            Operator::NotContains => Test::NotContains(needle(&value)?),
            Operator::StartsWith => Test::StartsWith(needle(&value)?),
            Operator::EndsWith => Test::EndsWith(needle(&value)?),
            Operator::InPeriod => {
                let period: Period = serde_json::from_value(value).map_err(|e| {
                    (
                        "invalid_period",
                        format!(
                            "a period is {{\"last_days\": 30}}, {{\"this\": \"month\"}}, \
                             {{\"between\": {{\"from\": \"2026-01-01\", \"to\": \"2026-01-31\"}}}}…: {e}"
                        ),
                    )
                })?;
                self.range_for(field, &period)
                    .map_err(|m| ("invalid_period", m))?
            }
            Operator::MonthIs => {
                let today = self.today();
                let month = match &value {
                    Json::Number(n) => n
                        .as_u64()
                        .filter(|m| (1..=12).contains(m))
                        .map(|m| m as u32),
                    Json::String(s) if s == "this" => Some(today.month()),
                    Json::String(s) if s == "next" => Some(today.month() % 12 + 1),
                    Json::String(s) if s == "last" => Some((today.month() + 10) % 12 + 1),
                    _ => None,
                };
                Test::Month(month.ok_or((
                    "invalid_value",
                    "a month is 1 to 12, \"this\", \"next\" or \"last\"".to_string(),
                ))?)
            }
            Operator::AnyOf => Test::AnyOf(options(&value)?),
            Operator::AllOf => Test::AllOf(options(&value)?),
            Operator::NoneOf => Test::NoneOf(options(&value)?),
        })
    }

    fn today(&self) -> NaiveDate {
        self.zone.local(self.now).date()
    }

    /// A period as a half-open span of local days.
    fn days(&self, period: &Period) -> Result<Span<NaiveDate>, String> {
        let today = self.today();
        let day = |n: u32| Duration::days(i64::from(n));
        let start_of = |unit: Unit, at: NaiveDate| -> NaiveDate {
            match unit {
                Unit::Day => at,
                Unit::Week => at - day(at.weekday().num_days_from_monday()),
                Unit::Month => at.with_day(1).expect("every month has a first day"),
                Unit::Year => NaiveDate::from_ymd_opt(at.year(), 1, 1).expect("1 January exists"),
            }
        };
        let after = |unit: Unit, start: NaiveDate| -> NaiveDate {
            match unit {
                Unit::Day => start + day(1),
                Unit::Week => start + day(7),
                Unit::Month => start
                    .checked_add_months(chrono::Months::new(1))
                    .expect("dates stay in range"),
                Unit::Year => start
                    .checked_add_months(chrono::Months::new(12))
                    .expect("dates stay in range"),
            }
        };
        let before = |unit: Unit, start: NaiveDate| -> NaiveDate {
            match unit {
                Unit::Day => start - day(1),
                Unit::Week => start - day(7),
                Unit::Month => start
                    .checked_sub_months(chrono::Months::new(1))
                    .expect("dates stay in range"),
                Unit::Year => start
                    .checked_sub_months(chrono::Months::new(12))
                    .expect("dates stay in range"),
            }
        };
        let limit = |n: u32| -> Result<(), String> {
            if n == 0 || n > 36_500 {
                Err("the number of days must be between 1 and 36500".into())
            } else {
                Ok(())
            }
        };
        Ok(match period {
            Period::LastDays(n) => {
                limit(*n)?;
                (Some(today - day(n - 1)), Some(today + day(1)))
            }
            Period::NextDays(n) => {
                limit(*n)?;
                (Some(today), Some(today + day(*n)))
            }
            Period::MoreThanDaysAgo(n) => {
                limit(*n)?;
                (None, Some(today - day(*n)))
            }
            Period::This(unit) => {
                let start = start_of(*unit, today);
                (Some(start), Some(after(*unit, start)))
            }
            Period::Last(unit) => {
                let start = start_of(*unit, today);
                (Some(before(*unit, start)), Some(start))
            }
            Period::Next(unit) => {
                let start = after(*unit, start_of(*unit, today));
                (Some(start), Some(after(*unit, start)))
            }
            Period::Between { from, to } => {
                if let (Some(from), Some(to)) = (from, to)
                    && from > to
                {
                    return Err(format!("from ({from}) is after to ({to})"));
                }
                (*from, to.map(|t| t + day(1)))
            }
        })
    }

    /// A period as a half-open span of instants: local midnights in the resolver's zone.
    fn instants(&self, period: &Period) -> Result<Span<DateTime<Utc>>, String> {
        let (from, to) = self.days(period)?;
        let midnight = |d: NaiveDate| self.zone.instant(d.and_hms_opt(0, 0, 0).expect("midnight"));
        Ok((from.map(midnight), to.map(midnight)))
    }

    fn range_for(&self, field: &FieldDef, period: &Period) -> Result<Test, String> {
        match field.ty {
            FieldType::Date => {
                let (from, to) = self.days(period)?;
                Ok(Test::Range(
                    from.map(StoredValue::Date),
                    to.map(StoredValue::Date),
                ))
            }
            FieldType::Timestamp => {
                let (from, to) = self.instants(period)?;
                Ok(Test::Range(
                    from.map(StoredValue::Timestamp),
                    to.map(StoredValue::Timestamp),
                ))
            }
            _ => Err(format!("{} is not a date or a time", field.key)),
        }
    }
}

/// A half-open span; either end may be open.
type Span<T> = (Option<T>, Option<T>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Record,
    HistoryRows,
}

/// Evaluates a test against one value, the meaning every SQL backend must reproduce.
pub fn eval_test(test: &Test, kind: ValueKind, value: Option<&StoredValue>) -> bool {
    let value = value.filter(|v| !is_empty(kind, v));
    let Some(v) = value else {
        return test.passes_when_empty();
    };
    let cmp = |other: &StoredValue| compare(v, other);
    use std::cmp::Ordering::*;
    match test {
        Test::Empty => false,
        Test::NotEmpty => true,
        Test::Eq(x) => cmp(x) == Some(Equal),
        Test::Ne(x) => cmp(x) != Some(Equal),
        Test::In(xs) => xs.iter().any(|x| cmp(x) == Some(Equal)),
        Test::NotIn(xs) => !xs.iter().any(|x| cmp(x) == Some(Equal)),
        Test::Lt(x) => cmp(x) == Some(Less),
        Test::Lte(x) => matches!(cmp(x), Some(Less | Equal)),
        Test::Gt(x) => cmp(x) == Some(Greater),
        Test::Gte(x) => matches!(cmp(x), Some(Greater | Equal)),
        Test::Between(low, high) => {
            matches!(cmp(low), Some(Greater | Equal)) && matches!(cmp(high), Some(Less | Equal))
        }
        Test::Range(from, to) => {
            from.as_ref()
                .is_none_or(|f| matches!(cmp(f), Some(Greater | Equal)))
                && to.as_ref().is_none_or(|t| cmp(t) == Some(Less))
        }
        Test::Contains(n) => text(v).is_some_and(|t| fold(&t).contains(&fold(n))),
        Test::NotContains(n) => !text(v).is_some_and(|t| fold(&t).contains(&fold(n))),
        Test::StartsWith(n) => text(v).is_some_and(|t| fold(&t).starts_with(&fold(n))),
        Test::EndsWith(n) => text(v).is_some_and(|t| fold(&t).ends_with(&fold(n))),
        Test::Month(m) => match v {
            StoredValue::Date(d) => d.month() == *m,
            StoredValue::Text(s) => s.get(0..2).and_then(|p| p.parse::<u32>().ok()) == Some(*m),
            _ => false,
        },
        Test::AnyOf(options) => {
            let held = choices(v);
            options.iter().any(|o| held.contains(o))
        }
        Test::AllOf(options) => {
            let held = choices(v);
            options.iter().all(|o| held.contains(o))
        }
        Test::NoneOf(options) => {
            let held = choices(v);
            !options.iter().any(|o| held.contains(o))
        }
    }
}

fn is_empty(kind: ValueKind, v: &StoredValue) -> bool {
    match v {
        StoredValue::Null => true,
        StoredValue::Text(s) => s.is_empty() || (kind == ValueKind::Choices && s == "[]"),
        _ => false,
    }
}

fn text(v: &StoredValue) -> Option<String> {
    match v {
        StoredValue::Text(s) => Some(s.clone()),
        _ => None,
    }
}

/// Case folding of Latin letters only, as SQLite's LIKE does.
fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn choices(v: &StoredValue) -> Vec<String> {
    match v {
        StoredValue::Text(s) => serde_json::from_str(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Orders two values of one kind; integers and decimals compare as numbers.
pub fn compare(a: &StoredValue, b: &StoredValue) -> Option<std::cmp::Ordering> {
    use StoredValue as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Int(x), V::Float(y)) => (*x as f64).partial_cmp(y),
        (V::Float(x), V::Int(y)) => x.partial_cmp(&(*y as f64)),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y),
        (V::Text(x), V::Text(y)) => Some(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Date(x), V::Date(y)) => Some(x.cmp(y)),
        (V::Timestamp(x), V::Timestamp(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{builtin, tourists};
    use serde_json::json;

    mod fuzzed {
        use proptest::prelude::*;

        use super::*;
        use crate::fuzz::{json_like, leaves, mutated, words_of};

        const IN_STRINGS: &[&str] = &[
            "prefecture",
            "email",
            "birthday",
            "registered_at",
            "points_balance",
            "phone",
            "member_type",
            "gender",
            "purchases",
            "point_ledger",
            "amount",
            "occurred_at",
            "aichi",
            "loop_a",
            "shops",
            "vip",
            "fair_visitors",
            "愛知県",
            "2026-02-30",
            "2026-11-01",
            "-1",
            "1e400",
            "P1D",
            "Asia/Tokyo",
        ];

        fn filters() -> BoxedStrategy<Json> {
            json_like(words_of(&json_schema()), IN_STRINGS)
        }

        fn example() -> Json {
            json!({"all": [
                {"field": {"key": "prefecture", "op": "in", "value": ["愛知県", "岐阜県"]}},
                {"not": {"field": {"key": "birthday", "op": "birthday_within", "value": {"month": "this"}}}},
                {"any": [{"segment": "aichi"}, {"sample": {"of": {"all": []}, "ratio": 0.1, "seed": 3}}]}
            ]})
        }

        fn read(doc: Json) {
            if let Ok(filter) = serde_json::from_value::<Filter>(doc)
                && let Err(errors) = resolve_parsed(&filter, "2026-11-29T03:00:00Z")
            {
                assert!(!errors.is_empty());
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever a user sends as a filter is resolved or refused with its errors, never
            /// a panic (the DSL parser and checker).
            #[test]
            fn any_json_is_resolved_or_refused(doc in filters()) {
                read(doc);
            }

            #[test]
            fn damaged_filters_are_resolved_or_refused(
                doc in mutated(example(), leaves(words_of(&json_schema()), IN_STRINGS))
            ) {
                read(doc);
            }
        }
    }

    fn resolve_at(filter: Json, now: &str) -> Result<Resolved, Vec<FilterError>> {
        let filter: Filter = serde_json::from_value(filter).unwrap();
        resolve_parsed(&filter, now)
    }

    fn resolve_parsed(filter: &Filter, now: &str) -> Result<Resolved, Vec<FilterError>> {
        let entities = builtin();
        let lookup = |name: &str| entities.iter().find(|e| e.name == name);
        let segments = |key: &str| -> Option<(String, Filter)> {
            match key {
                "aichi" => Some((
                    "tourists".into(),
                    serde_json::from_value(
                        json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}),
                    )
                    .unwrap(),
                )),
                "loop_a" => Some(("tourists".into(), Filter::Segment("loop_b".into()))),
                "loop_b" => Some(("tourists".into(), Filter::Segment("loop_a".into()))),
                "shops" => Some(("businesses".into(), Filter::All(vec![]))),
                _ => None,
            }
        };
        let resolver = Resolver {
            now: now.parse().unwrap(),
            zone: Zone::parse("Asia/Tokyo").unwrap(),
            entity: &lookup,
            segment: &segments,
            output_table: &|name: &str| {
                (name == "vip").then(|| vec!["id".to_string(), "tourist_id".to_string()])
            },
            list: &|key: &str| match key {
                "fair_visitors" => Some((7, "tourists".to_string())),
                "partners" => Some((8, "businesses".to_string())),
                _ => None,
            },
        };
        resolver.resolve(filter, "tourists")
    }

    fn resolve(filter: Json) -> Result<Resolved, Vec<FilterError>> {
        // 2026-11-28 23:30 in Tokyo.
        resolve_at(filter, "2026-11-28T14:30:00Z")
    }

    fn only_test(r: &Resolved) -> &Test {
        match &r.cond {
            Cond::Field { test, .. } => test,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_are_parsed_as_the_field_stores_them() {
        let r = resolve(
            json!({"field": {"key": "phone", "op": "eq", "value": "０９０-１２３４-５６７８"}}),
        )
        .unwrap();
        let Test::Eq(StoredValue::Text(phone)) = only_test(&r) else {
            panic!()
        };
        assert!(!phone.contains('０'), "{phone}");
        let r = resolve(
            json!({"field": {"key": "prefecture", "op": "in", "value": ["愛知県", "ｱｲﾁ"]}}),
        )
        .unwrap();
        assert_eq!(
            only_test(&r),
            &Test::In(vec![
                StoredValue::Text("愛知県".into()),
                StoredValue::Text("アイチ".into())
            ])
        );
        assert!(r.fields.contains(&("tourists".into(), "prefecture".into())));
    }

    #[test]
    fn periods_are_local_days_in_the_zone() {
        // In Tokyo it is already 28 November at 23:30; the last 30 days start on 30 October.
        let r = resolve(json!({"field": {"key": "last_visit_on", "op": "in_period", "value": {"last_days": 30}}}))
            .unwrap();
        let d = |s: &str| Some(StoredValue::Date(s.parse().unwrap()));
        assert_eq!(
            only_test(&r),
            &Test::Range(d("2026-10-30"), d("2026-11-29"))
        );
        let r = resolve(json!({"field": {"key": "registered_at", "op": "in_period", "value": {"last": "month"}}}))
            .unwrap();
        let t = |s: &str| Some(StoredValue::Timestamp(s.parse().unwrap()));
        assert_eq!(
            only_test(&r),
            &Test::Range(t("2026-09-30T15:00:00Z"), t("2026-10-31T15:00:00Z"))
        );
        let r = resolve(json!({"field": {"key": "birth_date", "op": "month_is", "value": "this"}}))
            .unwrap();
        assert_eq!(only_test(&r), &Test::Month(11));
        // Past midnight UTC on the 30th of November it is December in Tokyo.
        let r = resolve_at(
            json!({"field": {"key": "birth_date", "op": "month_is", "value": "next"}}),
            "2026-11-30T15:30:00Z",
        )
        .unwrap();
        assert_eq!(only_test(&r), &Test::Month(1));
        let r = resolve(json!({"field": {"key": "first_visit_on", "op": "in_period", "value": {"this": "week"}}}))
            .unwrap();
        // 28 November 2026 is a Saturday; the week began on Monday the 23rd.
        assert_eq!(
            only_test(&r),
            &Test::Range(d("2026-11-23"), d("2026-11-30"))
        );
    }

    #[test]
    fn history_defaults_to_at_least_one_row_and_knows_when_none_passes() {
        let r = resolve(json!({"history": {"store": "purchases", "period": {"last_days": 30}}}))
            .unwrap();
        let Cond::History(h) = &r.cond else { panic!() };
        assert_eq!(h.test, Test::Gte(StoredValue::Int(1)));
        assert!(!h.holds_for_none);
        let r = resolve(
            json!({"history": {"store": "purchases", "measure": {"sum": "amount"},
            "op": "lt", "value": 10000}}),
        )
        .unwrap();
        let Cond::History(h) = &r.cond else { panic!() };
        assert!(h.holds_for_none, "no purchases is a sum of 0, below 10000");
        let r = resolve(
            json!({"history": {"store": "purchases", "measure": {"avg": "amount"},
            "op": "lt", "value": 10000}}),
        )
        .unwrap();
        let Cond::History(h) = &r.cond else { panic!() };
        assert!(!h.holds_for_none, "no purchases has no average");
    }

    #[test]
    fn errors_name_the_place_in_the_filter() {
        let errors = resolve(json!({"all": [
            {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
            {"field": {"key": "shoe_size", "op": "eq", "value": 1}},
            {"field": {"key": "gender", "op": "contains", "value": "f"}},
            {"field": {"key": "visit_count", "op": "gt"}},
            {"history": {"store": "businesses"}},
            {"history": {"store": "purchases", "measure": {"sum": "product"}, "op": "gt", "value": 1}},
            {"segment": "loop_a"},
            {"segment": "shops"},
            {"field": {"key": "registered_at", "op": "in_period", "value": {"last_days": 0}}},
        ]}))
        .unwrap_err();
        let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.path.as_str(), e.code)).collect();
        assert_eq!(
            got,
            vec![
                ("filter.all[1].field", "unknown_field"),
                ("filter.all[2].field", "invalid_operator"),
                ("filter.all[3].field", "missing_value"),
                ("filter.all[4].history.store", "not_history_of"),
                ("filter.all[5].history.measure", "not_numeric"),
                (
                    "filter.all[6].segment(loop_a).segment(loop_b).segment",
                    "segment_cycle"
                ),
                ("filter.all[7].segment", "wrong_entity"),
                ("filter.all[8].field", "invalid_period"),
            ]
        );
        assert!(
            errors[1].message.contains("use one of: eq, ne"),
            "{}",
            errors[1].message
        );
    }

    #[test]
    fn a_filter_lists_the_segments_it_names() {
        let filter: Filter = serde_json::from_value(json!({"all": [
            {"segment": "a"},
            {"not": {"sample": {"of": {"segment": "b"}, "ratio": 0.5}}},
            {"field": {"key": "city", "op": "empty"}}
        ]}))
        .unwrap();
        assert_eq!(filter.segments(), vec!["a", "b"]);
        assert!(Filter::All(vec![]).segments().is_empty());
        assert!(filter.output_tables().is_empty());
    }

    #[test]
    fn static_lists_are_named_by_key_and_hold_one_entity() {
        let filter =
            json!({"any": [{"list": "fair_visitors"}, {"list": "partners"}, {"list": "gone"}]});
        let parsed: Filter = serde_json::from_value(filter.clone()).unwrap();
        assert_eq!(parsed.lists(), vec!["fair_visitors", "partners", "gone"]);
        let errors = resolve(filter).unwrap_err();
        let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.path.as_str(), e.code)).collect();
        assert_eq!(
            found,
            [
                ("filter.any[1].list", "wrong_entity"),
                ("filter.any[2].list", "unknown_list")
            ]
        );
        let r = resolve(json!({"not": {"list": "fair_visitors"}})).unwrap();
        assert_eq!(r.cond, Cond::Not(Box::new(Cond::InList { list: 7 })));
        assert_eq!(r.lists, ["fair_visitors".to_string()].into());
    }

    #[test]
    fn output_tables_are_lists_of_ids() {
        let r = resolve(json!({"any": [
            {"output_table": {"name": "vip", "column": "tourist_id"}},
            {"output_table": {"name": "vip"}}
        ]}))
        .unwrap();
        assert_eq!(r.output_tables, ["vip".to_string()].into());
        assert_eq!(
            r.cond,
            Cond::Any(vec![
                Cond::InTable {
                    name: "vip".into(),
                    column: "tourist_id".into()
                },
                Cond::InTable {
                    name: "vip".into(),
                    column: "id".into()
                }
            ])
        );
        let filter = json!({"all": [
            {"output_table": {"name": "secret"}},
            {"output_table": {"name": "vip", "column": "email"}}
        ]});
        let parsed: Filter = serde_json::from_value(filter.clone()).unwrap();
        assert_eq!(parsed.output_tables(), vec!["secret", "vip"]);
        let errors = resolve(filter).unwrap_err();
        let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.path.as_str(), e.code)).collect();
        assert_eq!(
            found,
            [
                ("filter.all[0].output_table.name", "unknown_output_table"),
                ("filter.all[1].output_table.column", "unknown_column")
            ]
        );
    }

    #[test]
    fn unstable_parts_are_named() {
        let filter = |v: Json| serde_json::from_value::<Filter>(v).unwrap();
        assert_eq!(
            filter(json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}))
                .unstable_part(),
            None
        );
        assert_eq!(
            filter(json!({"all": [{"field": {"key": "prefecture", "op": "empty"}}, {"not": {"segment": "x"}}]}))
                .unstable_part(),
            Some("a saved segment")
        );
        assert_eq!(
            filter(json!({"any": [{"list": "vip"}]})).unstable_part(),
            Some("a list")
        );
    }

    #[test]
    fn segments_expand_in_place() {
        let r = resolve(json!({"not": {"segment": "aichi"}})).unwrap();
        assert!(matches!(&r.cond, Cond::Not(inner) if matches!(**inner, Cond::Field { .. })));
        assert!(r.segments.contains("aichi"));
    }

    #[test]
    fn draws_take_the_ratio_asked_and_depend_on_the_seed() {
        let drawn = |seed| {
            (1..=100_000)
                .filter(|id| draw_rank(*id, seed) % DRAW_SCALE < DRAW_SCALE / 10)
                .collect::<Vec<i64>>()
        };
        let (a, b) = (drawn(1), drawn(2));
        for d in [&a, &b] {
            assert!((9_500..=10_500).contains(&d.len()), "{}", d.len());
        }
        assert_eq!(a, drawn(1), "the same seed draws the same records");
        let shared = a.iter().filter(|id| b.binary_search(id).is_ok()).count();
        assert!(
            shared < 2_000,
            "another seed draws other records ({shared} shared)"
        );
        assert!(
            resolve(json!({"sample": {"ratio": 1.5}})).unwrap_err()[0].path
                == "filter.sample.ratio"
        );
        assert!(resolve(json!({"sample": {"ratio": 0.1, "count": 5}})).is_err());
    }

    #[test]
    fn missing_values_pass_only_negative_tests() {
        let t = Test::Ne(StoredValue::Text("a".into()));
        assert!(eval_test(&t, ValueKind::Text, None));
        assert!(!eval_test(
            &Test::Eq(StoredValue::Int(0)),
            ValueKind::Int,
            None
        ));
        assert!(eval_test(
            &Test::NoneOf(vec!["food".into()]),
            ValueKind::Choices,
            Some(&StoredValue::Text("[]".into()))
        ));
        assert!(eval_test(
            &Test::Contains("AICHI".into()),
            ValueKind::Text,
            Some(&StoredValue::Text("aichi-ken".into()))
        ));
    }

    #[test]
    fn the_published_json_schema_is_the_code_s() {
        let published: Json =
            serde_json::from_str(include_str!("../../docs/filter.schema.json")).unwrap();
        assert!(
            published == json_schema(),
            "docs/filter.schema.json is stale: regenerate it with `tabiji filter-schema > docs/filter.schema.json`"
        );
    }

    #[test]
    fn every_searchable_type_has_operators_and_passwords_none() {
        for f in tourists().fields {
            assert!(!Operator::for_type(&f.ty).is_empty(), "{}", f.key);
        }
        assert!(Operator::for_type(&FieldType::Password).is_empty());
    }
}
