//! The report builder's choices (MA-17) as a report definition and back, without a browser:
//! records of an entity or messages flows sent, up to two groupings, measures, conditions and
//! a chart; which charts fit the choices, as the server checks them.

use serde_json::{Value, json};
use tabiji_model::field::{FieldDef, FieldType};
use tabiji_model::filter::Filter;

use crate::conditions::{self, Condition};

pub const CHARTS: [&str; 5] = ["table", "bar", "line", "pie", "funnel"];
pub const BUCKETS: [&str; 4] = ["day", "week", "month", "year"];
/// How records are measured; all but `count` need a numeric field.
pub const VERBS: [&str; 5] = ["count", "sum", "avg", "min", "max"];
/// How messages are grouped, besides `tourists.FIELD`.
pub const MESSAGE_GROUPS: [&str; 8] = [
    "flow",
    "node",
    "template",
    "channel",
    "day",
    "week",
    "month",
    "age_group",
];
pub const MESSAGE_MEASURES: [&str; 6] = [
    "sent",
    "failed",
    "opened",
    "clicked",
    "open_rate",
    "click_rate",
];
/// Groupings a report has at most.
pub const MAX_GROUPS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Records,
    Messages,
}

/// One grouping: a field (records) or a message grouping; a date's bucket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grouping {
    pub field: String,
    pub bucket: String,
}

/// One measure: a verb of [`VERBS`] and its field (records), or a name of
/// [`MESSAGE_MEASURES`] with no field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Measure {
    pub verb: String,
    pub field: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choices {
    pub source: Source,
    pub entity: String,
    /// Messages of one flow (its id), or of every flow when empty.
    pub flow: String,
    /// When messages were sent, as a row's period is typed (`30`, `last month`); every time
    /// when empty.
    pub period: String,
    pub groups: Vec<Grouping>,
    pub measures: Vec<Measure>,
    /// Over the entity's records, or over the recipients of messages (tourists).
    pub conditions: Vec<Condition>,
    pub any: bool,
    pub chart: String,
}

impl Default for Choices {
    fn default() -> Self {
        Choices {
            source: Source::Records,
            entity: "tourists".into(),
            flow: String::new(),
            period: String::new(),
            groups: vec![Grouping::default()],
            measures: vec![Measure {
                verb: "count".into(),
                field: String::new(),
            }],
            conditions: vec![Condition::default()],
            any: false,
            chart: "table".into(),
        }
    }
}

/// Can the field be summed, averaged, compared?
pub fn numeric(field: &FieldDef) -> bool {
    matches!(field.ty, FieldType::Integer { .. } | FieldType::Decimal)
}

/// Is the field grouped by a bucket (dates may be; times must be)?
pub fn dated(field: &FieldDef) -> bool {
    matches!(field.ty, FieldType::Date | FieldType::Timestamp)
}

/// Can records be grouped by the field (all but multiple-choice fields)?
pub fn groupable(field: &FieldDef) -> bool {
    !matches!(field.ty, FieldType::MultiChoice { .. })
}

/// The bucket a newly picked field starts with: a month for dates and times.
pub fn first_bucket(field: Option<&FieldDef>) -> String {
    match field {
        Some(f) if dated(f) => "month".into(),
        _ => String::new(),
    }
}

fn filled_groups(choices: &Choices) -> Vec<&Grouping> {
    choices
        .groups
        .iter()
        .filter(|g| !g.field.is_empty())
        .collect()
}

fn filled_measures(choices: &Choices) -> Vec<&Measure> {
    choices
        .measures
        .iter()
        .filter(|m| {
            !m.verb.is_empty()
                && (choices.source == Source::Messages || m.verb == "count" || !m.field.is_empty())
        })
        .collect()
}

/// The filter the conditions make, none while no condition is filled in.
fn filter(choices: &Choices, fields: &[FieldDef]) -> Result<Option<Value>, String> {
    if choices.conditions.iter().all(conditions::incomplete) {
        return Ok(None);
    }
    let filter = conditions::build(&choices.conditions, choices.any, fields)?;
    Ok(Some(
        serde_json::to_value(filter).expect("a filter is JSON"),
    ))
}

/// The report definition the choices make; `fields` are the entity's (records) or the
/// tourists' (messages), as the schema gives them to the user.
pub fn definition(choices: &Choices, fields: &[FieldDef]) -> Result<Value, String> {
    let filter = filter(choices, fields)?;
    let groups = filled_groups(choices);
    let measures = filled_measures(choices);
    let source = match choices.source {
        Source::Records => {
            let mut records = json!({
                "entity": choices.entity,
                "group_by": groups.iter().map(|g| {
                    if g.bucket.is_empty() { json!({"field": g.field}) } else { json!({"field": g.field, "bucket": g.bucket}) }
                }).collect::<Vec<_>>(),
                "measures": measures.iter().map(|m| {
                    if m.verb == "count" { json!("count") } else { json!({(m.verb.clone()): m.field}) }
                }).collect::<Vec<_>>(),
            });
            if let Some(filter) = filter {
                records["filter"] = filter;
            }
            json!({"records": records})
        }
        Source::Messages => {
            let mut messages = json!({
                "group_by": groups.iter().map(|g| g.field.clone()).collect::<Vec<_>>(),
                "measures": measures.iter().map(|m| m.verb.clone()).collect::<Vec<_>>(),
            });
            if !choices.flow.is_empty() {
                let id: i64 = choices
                    .flow
                    .parse()
                    .map_err(|_| format!("flow: {} is not a flow's id", choices.flow))?;
                messages["flow"] = json!(id);
            }
            if !choices.period.trim().is_empty() {
                let period = conditions::period(&choices.period).ok_or_else(|| {
                    "period: a number of days (30) or this/last/next day, week, month or year"
                        .to_string()
                })?;
                messages["period"] = serde_json::to_value(period).expect("a period is JSON");
            }
            if let Some(filter) = filter {
                messages["recipients"] = filter;
            }
            json!({"messages": messages})
        }
    };
    Ok(json!({"chart": choices.chart, "source": source}))
}

fn rows(filter: Option<&Value>) -> Option<(Vec<Condition>, bool)> {
    match filter {
        None | Some(Value::Null) => Some((vec![Condition::default()], false)),
        Some(f) => {
            let (mut rows, any) =
                conditions::rows_of(&serde_json::from_value::<Filter>(f.clone()).ok()?)?;
            if rows.is_empty() {
                rows.push(Condition::default());
            }
            Some((rows, any))
        }
    }
}

fn at_least_one<T: Default>(mut list: Vec<T>) -> Vec<T> {
    if list.is_empty() {
        list.push(T::default());
    }
    list
}

/// The choices that make `definition`; none for a definition the builder cannot show
/// (analyses, nested conditions, periods other than those a row can type), which is then
/// edited as JSON.
pub fn choices_of(definition: &Value) -> Option<Choices> {
    let chart = definition["chart"].as_str()?.to_string();
    let source = definition["source"].as_object()?;
    if let Some(records) = source.get("records") {
        let groups = records["group_by"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|g| {
                Some(Grouping {
                    field: g["field"].as_str()?.to_string(),
                    bucket: g["bucket"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let measures = records["measures"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| match m {
                Value::String(verb) => Some(Measure {
                    verb: verb.clone(),
                    field: String::new(),
                }),
                Value::Object(one) => {
                    let (verb, field) = one.iter().next()?;
                    Some(Measure {
                        verb: verb.clone(),
                        field: field.as_str()?.to_string(),
                    })
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let (conditions, any) = rows(records.get("filter"))?;
        return Some(Choices {
            source: Source::Records,
            entity: records["entity"].as_str()?.to_string(),
            groups: at_least_one(groups),
            measures: at_least_one(measures),
            conditions,
            any,
            chart,
            ..Choices::default()
        });
    }
    let messages = source.get("messages")?;
    let names = |key: &str| -> Option<Vec<String>> {
        messages[key]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let period = match messages.get("period") {
        None | Some(Value::Null) => String::new(),
        Some(p) => conditions::period_text(&serde_json::from_value(p.clone()).ok()?)?,
    };
    let (conditions, any) = rows(messages.get("recipients"))?;
    Some(Choices {
        source: Source::Messages,
        entity: "tourists".into(),
        flow: messages["flow"]
            .as_i64()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        period,
        groups: at_least_one(
            names("group_by")?
                .into_iter()
                .map(|field| Grouping {
                    field,
                    bucket: String::new(),
                })
                .collect(),
        ),
        measures: at_least_one(
            names("measures")?
                .into_iter()
                .map(|verb| Measure {
                    verb,
                    field: String::new(),
                })
                .collect(),
        ),
        conditions,
        any,
        chart,
    })
}

/// Why `chart` does not fit the choices, as the server would refuse it; none when it fits.
pub fn misfit(chart: &str, choices: &Choices, fields: &[FieldDef]) -> Option<&'static str> {
    let groups = filled_groups(choices);
    let measures = match (choices.source, filled_measures(choices).len()) {
        // Messages measured by nothing are measured by everything.
        (Source::Messages, 0) => MESSAGE_MEASURES.len(),
        (_, n) => n,
    };
    let dated_first = groups.first().is_some_and(|g| match choices.source {
        Source::Records => {
            !g.bucket.is_empty() || fields.iter().any(|f| f.key == g.field && dated(f))
        }
        Source::Messages => matches!(g.field.as_str(), "day" | "week" | "month"),
    });
    match chart {
        "bar" if groups.is_empty() => Some("reports.needs_group"),
        "line" if !dated_first => Some("reports.needs_date"),
        "pie" if groups.len() != 1 || measures != 1 => Some("reports.needs_one_each"),
        "funnel" if !groups.is_empty() || measures < 2 => Some("reports.needs_steps"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase_fields() -> Vec<FieldDef> {
        serde_json::from_value(json!([
            {"key": "amount", "label": {"ja": "金額", "en": "Amount"}, "type": "integer"},
            {"key": "occurred_at", "label": {"ja": "日時", "en": "When"}, "type": "timestamp"},
            {"key": "shop", "label": {"ja": "店舗", "en": "Shop"}, "type": "text"},
            {"key": "tags", "label": {"ja": "タグ", "en": "Tags"}, "type": "multi_choice", "options": ["a"]}
        ]))
        .unwrap()
    }

    fn sales_by_month() -> Choices {
        Choices {
            entity: "purchases".into(),
            groups: vec![Grouping {
                field: "occurred_at".into(),
                bucket: "month".into(),
            }],
            measures: vec![
                Measure {
                    verb: "sum".into(),
                    field: "amount".into(),
                },
                Measure {
                    verb: "count".into(),
                    field: String::new(),
                },
                Measure {
                    verb: "avg".into(),
                    field: String::new(),
                },
            ],
            conditions: vec![Condition {
                field: "shop".into(),
                op: "eq".into(),
                value: "名古屋".into(),
            }],
            chart: "line".into(),
            ..Choices::default()
        }
    }

    #[test]
    fn picked_fields_make_a_records_report() {
        let fields = purchase_fields();
        assert_eq!(
            definition(&sales_by_month(), &fields).unwrap(),
            json!({"chart": "line", "source": {"records": {
                "entity": "purchases",
                "group_by": [{"field": "occurred_at", "bucket": "month"}],
                "measures": [{"sum": "amount"}, "count"],
                "filter": {"all": [{"field": {"key": "shop", "op": "eq", "value": "名古屋"}}]}}}})
        );
        // Conditions still being typed, groupings and measures without a field are left out.
        let bare = Choices {
            entity: "purchases".into(),
            groups: vec![Grouping::default()],
            ..Choices::default()
        };
        assert_eq!(
            definition(&bare, &fields).unwrap(),
            json!({"chart": "table", "source": {"records": {
                "entity": "purchases", "group_by": [], "measures": ["count"]}}})
        );
    }

    #[test]
    fn picked_groupings_make_a_messages_report() {
        let tourists: Vec<FieldDef> = serde_json::from_value(json!([
            {"key": "prefecture", "label": {"ja": "都道府県", "en": "Prefecture"}, "type": "text"}]))
        .unwrap();
        let choices = Choices {
            source: Source::Messages,
            flow: "12".into(),
            period: "last month".into(),
            groups: vec![Grouping {
                field: "age_group".into(),
                bucket: String::new(),
            }],
            measures: ["sent", "open_rate"]
                .map(|verb| Measure {
                    verb: verb.into(),
                    field: String::new(),
                })
                .to_vec(),
            conditions: vec![Condition {
                field: "prefecture".into(),
                op: "eq".into(),
                value: "愛知県".into(),
            }],
            chart: "bar".into(),
            ..Choices::default()
        };
        let made = definition(&choices, &tourists).unwrap();
        assert_eq!(
            made,
            json!({"chart": "bar", "source": {"messages": {
                "flow": 12, "period": {"last": "month"}, "group_by": ["age_group"],
                "measures": ["sent", "open_rate"],
                "recipients": {"all": [{"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}]}}}})
        );
        assert_eq!(choices_of(&made), Some(choices.clone()));
        let refused = |period: &str, flow: &str| {
            definition(
                &Choices {
                    period: period.into(),
                    flow: flow.into(),
                    ..choices.clone()
                },
                &tourists,
            )
            .unwrap_err()
        };
        assert!(refused("soon", "").starts_with("period:"));
        assert!(refused("", "twelve").starts_with("flow:"));
    }

    #[test]
    fn a_saved_definition_reads_back_as_the_choices_that_made_it() {
        let fields = purchase_fields();
        let mut choices = sales_by_month();
        choices.measures.pop();
        let made = definition(&choices, &fields).unwrap();
        assert_eq!(choices_of(&made), Some(choices));
        let analysis =
            json!({"chart": "bar", "source": {"analysis": {"decile": {"amount": "amount"}}}});
        assert_eq!(choices_of(&analysis), None);
        let nested = json!({"chart": "table", "source": {"records": {"entity": "purchases",
            "filter": {"not": {"segment": "vip"}}, "measures": ["count"]}}});
        assert_eq!(choices_of(&nested), None);
        let bare =
            choices_of(&json!({"chart": "table", "source": {"records": {"entity": "purchases"}}}))
                .unwrap();
        assert_eq!(
            (
                bare.groups.len(),
                bare.measures.len(),
                bare.conditions.len()
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn charts_that_do_not_fit_say_why_as_the_server_would() {
        let fields = purchase_fields();
        let by_month = sales_by_month();
        let fits = |chart: &str, c: &Choices| misfit(chart, c, &fields);
        assert_eq!(fits("line", &by_month), None);
        assert_eq!(fits("bar", &by_month), None);
        assert_eq!(fits("pie", &by_month), Some("reports.needs_one_each"));
        assert_eq!(fits("funnel", &by_month), Some("reports.needs_steps"));
        let by_shop = Choices {
            groups: vec![Grouping {
                field: "shop".into(),
                bucket: String::new(),
            }],
            measures: vec![Measure {
                verb: "count".into(),
                field: String::new(),
            }],
            ..by_month.clone()
        };
        assert_eq!(fits("line", &by_shop), Some("reports.needs_date"));
        assert_eq!(fits("pie", &by_shop), None);
        let totals = Choices {
            groups: vec![Grouping::default()],
            ..by_month.clone()
        };
        assert_eq!(fits("bar", &totals), Some("reports.needs_group"));
        assert_eq!(fits("funnel", &totals), None);
        assert_eq!(fits("table", &totals), None);
        let messages = Choices {
            source: Source::Messages,
            groups: vec![Grouping::default()],
            measures: vec![Measure::default()],
            ..Choices::default()
        };
        assert_eq!(fits("funnel", &messages), None);
        assert!(numeric(&fields[0]) && !numeric(&fields[2]));
        assert!(dated(&fields[1]) && !groupable(&fields[3]));
        assert_eq!(first_bucket(Some(&fields[1])), "month");
        assert_eq!(first_bucket(Some(&fields[0])), "");
    }
}
