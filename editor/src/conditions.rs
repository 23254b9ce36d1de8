//! The segment builder's conditions as a filter of `model/`, without a browser: each row is a
//! field, an operator the field's type accepts and a value typed as text.

use serde_json::Value;
use tabiji_model::field::{FieldDef, FieldType};
use tabiji_model::filter::{FieldTest, Filter, Operator, Period, Unit};

/// One row of the builder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    pub field: String,
    pub op: String,
    pub value: String,
}

/// The operators `field` accepts, by name.
pub fn operators(field: &FieldDef) -> Vec<&'static str> {
    Operator::for_type(&field.ty)
        .iter()
        .map(|op| op.name())
        .collect()
}

fn operator(name: &str) -> Option<Operator> {
    serde_json::from_value(Value::String(name.into())).ok()
}

/// Does the operator compare with a value?
pub fn takes_value(op: &str) -> bool {
    !matches!(op, "empty" | "not_empty" | "is_true" | "is_false")
}

/// A value as the field stores it where the text reads so (numbers for numeric fields), the
/// text otherwise: the server normalises the rest (`1990年4月1日`, full-width digits).
fn scalar(text: &str, ty: &FieldType) -> Value {
    let text = text.trim();
    match ty {
        FieldType::Integer { .. } | FieldType::Decimal | FieldType::Reference { .. } => {
            serde_json::from_str::<serde_json::Number>(text)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(text.into()))
        }
        _ => Value::String(text.into()),
    }
}

/// Splits a list typed as `a, b` or `a、b`.
fn items(text: &str) -> Vec<&str> {
    text.split([',', '、', '，'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `in_period` values typed as a few words: `30` (the last 30 days), `this month`,
/// `last week`, `next year`.
pub fn period(text: &str) -> Option<Period> {
    let text = text.trim();
    if let Ok(days) = text.parse() {
        return Some(Period::LastDays(days));
    }
    let (which, unit) = text.split_once(' ')?;
    let unit: Unit = serde_json::from_value(Value::String(unit.trim().into())).ok()?;
    match which {
        "this" => Some(Period::This(unit)),
        "last" => Some(Period::Last(unit)),
        "next" => Some(Period::Next(unit)),
        _ => None,
    }
}

/// A period as [`period`] reads it back; none for a period it cannot write.
pub fn period_text(period: &Period) -> Option<String> {
    let unit = |u: &Unit| serde_json::to_value(u).ok()?.as_str().map(str::to_string);
    match period {
        Period::LastDays(days) => Some(days.to_string()),
        Period::This(u) => Some(format!("this {}", unit(u)?)),
        Period::Last(u) => Some(format!("last {}", unit(u)?)),
        Period::Next(u) => Some(format!("next {}", unit(u)?)),
        _ => None,
    }
}

/// A value as a row shows it: lists joined by commas, a range as `low ~ high`.
fn value_text(op: &str, value: &Value) -> Option<String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match (op, value) {
        ("between", Value::Array(ends)) if ends.len() == 2 => {
            Some(format!("{} ~ {}", one(&ends[0])?, one(&ends[1])?))
        }
        (_, Value::Array(items)) => Some(
            items
                .iter()
                .map(one)
                .collect::<Option<Vec<_>>>()?
                .join(", "),
        ),
        ("in_period", period) => period_text(&serde_json::from_value(period.clone()).ok()?),
        (_, v) => one(v),
    }
}

/// The rows and the all/any choice that [`build`] turns into `filter`; none when the filter
/// holds more than one level of field tests (groups, history conditions, segments…), which
/// rows cannot show.
pub fn rows_of(filter: &Filter) -> Option<(Vec<Condition>, bool)> {
    let (tests, any): (&[Filter], bool) = match filter {
        Filter::All(tests) => (tests, false),
        Filter::Any(tests) => (tests, true),
        single @ Filter::Field(_) => (std::slice::from_ref(single), false),
        _ => return None,
    };
    let rows = tests
        .iter()
        .map(|test| match test {
            Filter::Field(FieldTest { key, op, value }) => Some(Condition {
                field: key.clone(),
                op: op.name().to_string(),
                value: match value {
                    Some(v) => value_text(op.name(), v)?,
                    None => String::new(),
                },
            }),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((rows, any))
}

/// The value of one row, or why it cannot be read.
fn value(row: &Condition, field: &FieldDef) -> Result<Option<Value>, String> {
    if !takes_value(&row.op) {
        return Ok(None);
    }
    let text = row.value.trim();
    Ok(Some(match row.op.as_str() {
        "in" | "not_in" | "any_of" | "all_of" | "none_of" => Value::Array(
            items(text)
                .into_iter()
                .map(|t| scalar(t, &field.ty))
                .collect(),
        ),
        "between" => {
            let ends = items(&text.replace('~', ","))
                .into_iter()
                .map(|t| scalar(t, &field.ty))
                .collect::<Vec<_>>();
            if ends.len() != 2 {
                return Err(format!(
                    "{}: between takes two values: low, high",
                    field.key
                ));
            }
            Value::Array(ends)
        }
        "in_period" => serde_json::to_value(period(text).ok_or_else(|| {
            format!(
                "{}: a period is a number of days (30) or this/last/next day, week, month or year",
                field.key
            )
        })?)
        .expect("a period is JSON"),
        "month_is" => text
            .parse::<u32>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        _ => scalar(text, &field.ty),
    }))
}

/// Is the row still being filled in (no field yet, or no value for an operator that needs one)?
pub fn incomplete(row: &Condition) -> bool {
    row.field.is_empty() || (takes_value(&row.op) && row.value.trim().is_empty())
}

/// The filter the rows make: all of them (or any of them). Rows still being filled in are left
/// out, so the count stays put while a condition is typed.
pub fn build(rows: &[Condition], any: bool, fields: &[FieldDef]) -> Result<Filter, String> {
    let mut tests = Vec::new();
    for row in rows.iter().filter(|r| !incomplete(r)) {
        let field = fields
            .iter()
            .find(|f| f.key == row.field)
            .ok_or_else(|| format!("{}: no such field", row.field))?;
        let op = operator(&row.op)
            .filter(|op| Operator::for_type(&field.ty).contains(op))
            .ok_or_else(|| format!("{}: choose an operator", field.key))?;
        tests.push(Filter::Field(FieldTest {
            key: field.key.clone(),
            op,
            value: value(row, field)?,
        }));
    }
    Ok(if any {
        Filter::Any(tests)
    } else {
        Filter::All(tests)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<FieldDef> {
        serde_json::from_value(json!([
            {"key": "prefecture", "label": {"ja": "都道府県", "en": "Prefecture"}, "type": "text"},
            {"key": "total_spend", "label": {"ja": "累計購入額", "en": "Total spend"}, "type": "integer"},
            {"key": "birth_date", "label": {"ja": "生年月日", "en": "Birth date"}, "type": "date"},
            {"key": "member_type", "label": {"ja": "会員種別", "en": "Member type"}, "type": "single_choice",
             "options": ["general", "premium"]},
            {"key": "opted_in", "label": {"ja": "配信可", "en": "Opted in"}, "type": "boolean"}
        ]))
        .unwrap()
    }

    fn row(field: &str, op: &str, value: &str) -> Condition {
        Condition {
            field: field.into(),
            op: op.into(),
            value: value.into(),
        }
    }

    #[test]
    fn rows_become_the_filter_language() {
        let filter = build(
            &[
                row("prefecture", "eq", " 愛知県 "),
                row("total_spend", "between", "10000 ~ 50000"),
                row("member_type", "in", "general、premium"),
                row("birth_date", "month_is", "this"),
                row("opted_in", "is_true", "ignored"),
                row("", "eq", "skipped"),
                row("prefecture", "eq", " "),
            ],
            false,
            &fields(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(filter).unwrap(),
            json!({"all": [
                {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
                {"field": {"key": "total_spend", "op": "between", "value": [10000, 50000]}},
                {"field": {"key": "member_type", "op": "in", "value": ["general", "premium"]}},
                {"field": {"key": "birth_date", "op": "month_is", "value": "this"}},
                {"field": {"key": "opted_in", "op": "is_true"}}
            ]})
        );
        let any = build(
            &[row("birth_date", "in_period", "last month")],
            true,
            &fields(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(any).unwrap(),
            json!({"any": [{"field": {"key": "birth_date", "op": "in_period", "value": {"last": "month"}}}]})
        );
    }

    #[test]
    fn rows_that_cannot_be_read_say_which_field() {
        let fields = fields();
        let refused = |r: Condition| build(&[r], false, &fields).unwrap_err();
        assert!(
            refused(row("prefecture", "gt", "a")).starts_with("prefecture: choose an operator")
        );
        assert!(refused(row("total_spend", "between", "1")).contains("two values"));
        assert!(refused(row("birth_date", "in_period", "soon")).contains("period"));
        assert!(refused(row("phone", "eq", "1")).contains("no such field"));
        assert_eq!(
            operators(&fields[4]),
            vec!["is_true", "is_false", "empty", "not_empty"]
        );
    }

    #[test]
    fn a_filter_of_field_tests_reads_back_as_the_rows_that_made_it() {
        let fields = fields();
        let rows = vec![
            row("prefecture", "eq", "愛知県"),
            row("total_spend", "between", "10000 ~ 50000"),
            row("member_type", "in", "general, premium"),
            row("birth_date", "in_period", "last month"),
            row("birth_date", "in_period", "30"),
            row("opted_in", "is_true", ""),
        ];
        for any in [false, true] {
            let filter = build(&rows, any, &fields).unwrap();
            assert_eq!(rows_of(&filter), Some((rows.clone(), any)));
        }
        let nested: Filter = serde_json::from_value(json!({"all": [
            {"any": [{"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}]}]}))
        .unwrap();
        assert_eq!(rows_of(&nested), None);
        let segment: Filter = serde_json::from_value(json!({"segment": "vip"})).unwrap();
        assert_eq!(rows_of(&segment), None);
    }
}
