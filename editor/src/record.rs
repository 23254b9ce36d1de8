//! What the tourist card shows and sends, without the browser: a field's value as the text of
//! its input and back, the fields an edit changed, times in a zone and the user's language, and
//! a timeline entry in one line.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};
use tabiji_model::field::{FieldDef, FieldType};

use crate::i18n::{Lang, t};

/// Asia/Tokyo, where times are shown: UTC+9 all year (Japan keeps no daylight saving time), so
/// a fixed offset is exact and the browser need not carry the time zone database.
const TOKYO_SECONDS_EAST: i32 = 9 * 3600;

/// A stored value as the text its input holds.
pub fn input_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(input_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A field's stored value as its input holds it: times in Asia/Tokyo in the numeric form the
/// server reads back (`2026/11/30 19:20`), everything else as [`input_text`] writes it.
pub fn field_text(value: &Value, ty: &FieldType) -> String {
    match (ty, value.as_str()) {
        (FieldType::Timestamp, Some(at)) => when(at, Lang::Ja),
        _ => input_text(value),
    }
}

/// The inputs of a form showing `record`: each field's text, by key.
pub fn inputs(fields: &[FieldDef], record: &Value) -> Map<String, Value> {
    fields
        .iter()
        .map(|f| {
            (
                f.key.clone(),
                Value::String(field_text(&record[&f.key], &f.ty)),
            )
        })
        .collect()
}

/// What an input's text means for the field, as the API takes it: empty is no value; numbers
/// that read as numbers go as numbers; the server reads everything else (dates, full-width
/// digits, phone numbers) and names the field when it cannot.
fn value_of(text: &str, ty: &FieldType) -> Value {
    let text = text.trim();
    if text.is_empty() {
        return Value::Null;
    }
    match ty {
        FieldType::Integer { .. } | FieldType::Reference { .. } => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        FieldType::Decimal => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.into())),
        FieldType::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.into()),
        },
        FieldType::MultiChoice { .. } => Value::Array(
            text.split([',', '、', '，'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.into()))
                .collect(),
        ),
        _ => Value::String(text.into()),
    }
}

/// The fields whose input no longer holds what the record holds, as a PATCH body. Fields the
/// user may not edit are never sent.
pub fn changes(
    fields: &[FieldDef],
    record: &Value,
    edited: &Map<String, Value>,
) -> Map<String, Value> {
    let mut body = Map::new();
    for field in fields.iter().filter(|f| !f.read_only) {
        let Some(Value::String(text)) = edited.get(&field.key) else {
            continue;
        };
        if *text != field_text(&record[&field.key], &field.ty) {
            body.insert(field.key.clone(), value_of(text, &field.ty));
        }
    }
    body
}

/// A time from the API in Asia/Tokyo, written the way the language writes it; a date stays a
/// date, anything else is shown as it came.
pub fn when(at: &str, lang: Lang) -> String {
    let Ok(time) = DateTime::parse_from_rfc3339(at) else {
        return at.to_string();
    };
    let tokyo = FixedOffset::east_opt(TOKYO_SECONDS_EAST).expect("+09:00 is an offset");
    let local = time.with_timezone(&tokyo).naive_local();
    match lang {
        Lang::Ja => local.format("%Y/%m/%d %H:%M").to_string(),
        Lang::En => local.format("%-d %b %Y %H:%M").to_string(),
    }
}

/// An amount with thousands separators: `5400` → `5,400`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The first `most` characters of `text` on one line, with an ellipsis when there was more.
fn abridged(text: &str, most: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= most {
        return line;
    }
    let mut cut: String = line.chars().take(most).collect();
    cut.push('…');
    cut
}

fn text(data: &Value, key: &str) -> String {
    input_text(&data[key])
}

/// A timeline entry in one line: what happened, in the user's language.
pub fn summary(entry: &Value, lang: Lang) -> String {
    let data = &entry["data"];
    let joined = |parts: Vec<String>| {
        parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" · ")
    };
    match entry["source"].as_str().unwrap_or_default() {
        "purchases" => joined(vec![
            data["amount"]
                .as_i64()
                .map(|a| format!("¥{}", grouped(a)))
                .unwrap_or_default(),
            text(data, "product"),
            text(data, "shop"),
        ]),
        "point_ledger" => {
            let points = data["points"].as_i64().unwrap_or_default();
            let taken = matches!(data["kind"].as_str(), Some("use" | "expire")) || points < 0;
            let sign = if taken { "−" } else { "+" };
            let signed = format!("{sign}{} pt", grouped(points.abs()));
            joined(vec![
                signed,
                t(lang, &format!("points.{}", text(data, "kind"))),
                text(data, "source_system"),
                text(data, "reason"),
            ])
        }
        "inquiries" => joined(vec![
            text(data, "subject"),
            data["status"]
                .as_str()
                .map(|s| t(lang, &format!("inquiry.{s}")))
                .unwrap_or_default(),
        ]),
        "inquiry_responses" => joined(vec![
            data["status"]
                .as_str()
                .map(|s| t(lang, &format!("inquiry.{s}")))
                .unwrap_or_default(),
            text(data, "staff"),
            abridged(&text(data, "body"), 80),
        ]),
        "interactions" => joined(vec![
            text(data, "subject"),
            text(data, "staff"),
            data["amount"]
                .as_i64()
                .map(|a| format!("¥{}", grouped(a)))
                .unwrap_or_default(),
        ]),
        "messages" => joined(vec![
            t(lang, &format!("channel.{}", text(data, "channel"))),
            text(data, "template"),
            text(&data["flow"], "name"),
            t(lang, &format!("delivery.{}", text(data, "status"))),
        ]),
        "events" => {
            let name = text(data, "name");
            let known = format!("event.{name}");
            let said = t(lang, &known);
            let properties = data["properties"]
                .as_object()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| format!("{k}: {}", input_text(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            joined(vec![if said == known { name } else { said }, properties])
        }
        "runs" => joined(vec![
            text(&data["flow"], "name"),
            t(lang, &format!("run.{}", text(data, "state"))),
            text(data, "node"),
        ]),
        _ => {
            // A custom history store: its own fields, as they are.
            data.as_object()
                .map(|fields| {
                    joined(
                        fields
                            .iter()
                            .filter(|(k, _)| {
                                !matches!(
                                    k.as_str(),
                                    "id" | "tourist_id"
                                        | "business_id"
                                        | "created_at"
                                        | "updated_at"
                                )
                            })
                            .map(|(k, v)| format!("{k}: {}", input_text(v)))
                            .collect(),
                    )
                })
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<FieldDef> {
        serde_json::from_value(json!([
            {"key": "email", "label": {"ja": "メール", "en": "E-mail"}, "type": "email", "read_only": true},
            {"key": "city", "label": {"ja": "市区町村", "en": "City"}, "type": "text"},
            {"key": "visits", "label": {"ja": "回数", "en": "Visits"}, "type": "integer"},
            {"key": "tags", "label": {"ja": "タグ", "en": "Tags"}, "type": "multi_choice", "options": ["a", "b"]},
            {"key": "opt_in", "label": {"ja": "同意", "en": "Opt-in"}, "type": "boolean"}
        ]))
        .unwrap()
    }

    #[test]
    fn only_changed_editable_fields_are_sent_as_the_api_reads_them() {
        let record = json!({"email": "a@example.jp", "city": "高山市", "visits": 3, "tags": ["a"], "opt_in": false});
        let mut edited = inputs(&fields(), &record);
        assert!(
            changes(&fields(), &record, &edited).is_empty(),
            "nothing changed"
        );
        edited.insert("email".into(), json!("b@example.jp"));
        edited.insert("city".into(), json!(""));
        edited.insert("visits".into(), json!("12"));
        edited.insert("tags".into(), json!("a、b"));
        edited.insert("opt_in".into(), json!("true"));
        assert_eq!(
            Value::Object(changes(&fields(), &record, &edited)),
            json!({"city": null, "visits": 12, "tags": ["a", "b"], "opt_in": true}),
            "a read-only field is not sent; emptied is null"
        );
        edited.insert("visits".into(), json!("１２"));
        assert_eq!(
            changes(&fields(), &record, &edited)["visits"],
            json!("１２"),
            "the server reads full-width digits and names the field when it cannot"
        );
    }

    #[test]
    fn times_are_edited_in_tokyo_and_sent_only_when_changed() {
        let fields: Vec<FieldDef> = serde_json::from_value(json!([
            {"key": "at", "label": {"ja": "日時", "en": "At"}, "type": "timestamp"}
        ]))
        .unwrap();
        let record = json!({"at": "2026-11-30T09:48:56.382Z"});
        let mut edited = inputs(&fields, &record);
        assert_eq!(edited["at"], "2026/11/30 18:48");
        assert!(
            changes(&fields, &record, &edited).is_empty(),
            "seconds are kept when untouched"
        );
        edited.insert("at".into(), json!("2026/11/30 19:00"));
        assert_eq!(changes(&fields, &record, &edited)["at"], "2026/11/30 19:00");
        let blank = inputs(&fields, &Value::Null);
        assert_eq!(blank["at"], "", "a new row starts empty");
    }

    #[test]
    fn times_are_shown_in_tokyo_in_the_users_language() {
        let at = "2026-11-15T09:30:00+00:00";
        assert_eq!(when(at, Lang::Ja), "2026/11/15 18:30");
        assert_eq!(when(at, Lang::En), "15 Nov 2026 18:30");
        assert_eq!(when("2026-11-15T23:30:00Z", Lang::Ja), "2026/11/16 08:30");
        assert_eq!(when("2026-11-15", Lang::Ja), "2026-11-15");
    }

    #[test]
    fn amounts_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(5400), "5,400");
        assert_eq!(grouped(-1234567), "-1,234,567");
    }

    #[test]
    fn entries_read_as_one_line() {
        let purchase =
            json!({"source": "purchases", "data": {"amount": 5400, "shop": "白川郷食堂"}});
        assert_eq!(summary(&purchase, Lang::Ja), "¥5,400 · 白川郷食堂");
        let hidden = json!({"source": "purchases", "data": {"shop": "白川郷食堂"}});
        assert_eq!(
            summary(&hidden, Lang::En),
            "白川郷食堂",
            "an amount the user may not see"
        );
        let used = json!({"source": "point_ledger", "data": {"kind": "use", "points": 1200, "source_system": "ota"}});
        assert_eq!(summary(&used, Lang::En), "−1,200 pt · used · ota");
        let mail = json!({"source": "messages", "data": {"channel": "email", "template": "welcome",
            "flow": {"id": 1, "name": "ようこそ"}, "status": "sent"}});
        assert_eq!(
            summary(&mail, Lang::En),
            "E-mail · welcome · ようこそ · sent"
        );
        let opened = json!({"source": "events", "data": {"name": "opened", "properties": {}}});
        assert_eq!(summary(&opened, Lang::Ja), "開封");
        let custom = json!({"source": "events", "data": {"name": "ticket_used", "properties": {"gate": "高山駅"}}});
        assert_eq!(summary(&custom, Lang::En), "ticket_used · gate: 高山駅");
        let response = json!({"source": "inquiry_responses", "data": {"status": "resolved", "staff": "鈴木",
            "body": "傘は駅の\n忘れ物窓口で\nお預かりしています"}});
        assert_eq!(
            summary(&response, Lang::Ja),
            "解決 · 鈴木 · 傘は駅の 忘れ物窓口で お預かりしています"
        );
        let visit = json!({"source": "interactions", "data": {"subject": "契約更新", "staff": "田中", "amount": 120000}});
        assert_eq!(summary(&visit, Lang::En), "契約更新 · 田中 · ¥120,000");
        assert_eq!(abridged("あいうえお", 3), "あいう…");
        let store =
            json!({"source": "eticket_uses", "data": {"id": 4, "tourist_id": 1, "gate": "北口"}});
        assert_eq!(summary(&store, Lang::En), "gate: 北口");
    }
}
