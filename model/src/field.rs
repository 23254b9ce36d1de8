//! Field types and the parsing of input values into typed, normalised values.
//!
//! Input arrives as JSON from the API and as text from files, typed by people in Japan: dates as
//! 2024/1/5 or 2024年1月5日, numbers in full-width digits, yes/no as はい/いいえ. Everything
//! is folded into one canonical [`StoredValue`] here so that storage and the segment engine only
//! ever see one form.

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use std::borrow::Cow;

use crate::normalize::{self, nfkc, nfkc_cow};

/// Longest text a `text` field takes unless its definition says otherwise.
pub const DEFAULT_TEXT_MAX: u32 = 255;
/// Longest text a `long_text` field takes.
pub const LONG_TEXT_MAX: u32 = 20_000;
/// Shortest password a `password` field accepts.
pub const PASSWORD_MIN: usize = 8;

fn default_text_max() -> u32 {
    DEFAULT_TEXT_MAX
}

/// What a field holds. Serialised with a `type` tag: `{"type": "single_choice", "options": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldType {
    Text {
        #[serde(default = "default_text_max")]
        max_len: u32,
    },
    LongText,
    Email,
    Phone,
    PostalCode,
    Url,
    Integer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    Decimal,
    Boolean,
    Date,
    /// A day of the year without a year (birthdays, anniversaries), stored as `MM-DD`.
    MonthDay,
    Timestamp,
    SingleChoice {
        options: Vec<String>,
    },
    MultiChoice {
        options: Vec<String>,
    },
    /// Stored as an argon2id hash; never returned.
    Password,
    /// The id of a record of another entity.
    Reference {
        entity: String,
    },
}

/// How a field's values are kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    BigInt,
    Double,
    Bool,
    Date,
    Timestamp,
}

impl FieldType {
    pub fn text() -> Self {
        FieldType::Text {
            max_len: DEFAULT_TEXT_MAX,
        }
    }

    pub fn integer() -> Self {
        FieldType::Integer {
            min: None,
            max: None,
        }
    }

    pub fn single(options: &[&str]) -> Self {
        FieldType::SingleChoice {
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    pub fn multi(options: &[&str]) -> Self {
        FieldType::MultiChoice {
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    pub fn column_kind(&self) -> ColumnKind {
        match self {
            FieldType::Integer { .. } | FieldType::Reference { .. } => ColumnKind::BigInt,
            FieldType::Decimal => ColumnKind::Double,
            FieldType::Boolean => ColumnKind::Bool,
            FieldType::Date => ColumnKind::Date,
            FieldType::Timestamp => ColumnKind::Timestamp,
            FieldType::Text { .. }
            | FieldType::LongText
            | FieldType::Email
            | FieldType::Phone
            | FieldType::PostalCode
            | FieldType::Url
            | FieldType::MonthDay
            | FieldType::SingleChoice { .. }
            | FieldType::MultiChoice { .. }
            | FieldType::Password => ColumnKind::Text,
        }
    }

    /// The type's name as it appears in the API (`"single_choice"`).
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Text { .. } => "text",
            FieldType::LongText => "long_text",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::PostalCode => "postal_code",
            FieldType::Url => "url",
            FieldType::Integer { .. } => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::MonthDay => "month_day",
            FieldType::Timestamp => "timestamp",
            FieldType::SingleChoice { .. } => "single_choice",
            FieldType::MultiChoice { .. } => "multi_choice",
            FieldType::Password => "password",
            FieldType::Reference { .. } => "reference",
        }
    }

    /// Checks the definition itself (used when an operator defines a custom field).
    pub fn check_definition(&self) -> Result<(), String> {
        match self {
            FieldType::Text { max_len } if *max_len == 0 || *max_len > LONG_TEXT_MAX => {
                Err(format!("max_len must be between 1 and {LONG_TEXT_MAX}"))
            }
            FieldType::Integer {
                min: Some(min),
                max: Some(max),
            } if min > max => Err("min must not be greater than max".into()),
            FieldType::SingleChoice { options } | FieldType::MultiChoice { options } => {
                if options.is_empty() || options.len() > 500 {
                    return Err("options must list 1 to 500 choices".into());
                }
                let mut seen = BTreeSet::new();
                for option in options {
                    if option.trim().is_empty() || option.chars().count() > 100 {
                        return Err("every option must be 1 to 100 characters".into());
                    }
                    if !seen.insert(option) {
                        return Err(format!("option {option:?} is listed twice"));
                    }
                }
                Ok(())
            }
            FieldType::Reference { .. } => {
                Err("reference fields are built in; custom fields cannot define them".into())
            }
            _ => Ok(()),
        }
    }
}

/// A value after parsing and normalisation, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredValue {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    Timestamp(DateTime<Utc>),
    /// A password as typed; storage hashes it before it is written and never reads it back.
    Secret(String),
}

/// Names of fields in API payloads and messages, with the translations the UI shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub ja: String,
    pub en: String,
}

/// One field of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub key: String,
    pub label: Label,
    #[serde(flatten)]
    pub ty: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    /// Fold full-width/half-width forms (kana, codes) before storing.
    #[serde(default)]
    pub nfkc: bool,
    /// Maintained by tabiji (ids, timestamps, point balances); never written through the API.
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub builtin: bool,
    /// Kept in a database index of its own, for filters that pick few records by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub indexed: bool,
}

/// Why a value was refused, naming the field. `code` is stable for programs; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            code,
            message: message.into(),
        }
    }
}

/// The zone naive times are read in when the input carries none (Asia/Tokyo has had no DST
/// since 1951, so a fixed offset is exact).
pub fn tokyo() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

impl FieldDef {
    /// Parses one input value for this field. `Null` (or an empty string) means "no value";
    /// whether that is allowed is the record's business.
    pub fn parse(&self, input: &Json) -> Result<StoredValue, FieldError> {
        let err = |code: &'static str, message: String| FieldError::new(&self.key, code, message);
        if input.is_null() {
            return Ok(StoredValue::Null);
        }
        if let Json::String(s) = input
            && s.trim().is_empty()
            && !matches!(self.ty, FieldType::Password)
        {
            return Ok(StoredValue::Null);
        }
        match &self.ty {
            FieldType::Text { max_len } => self.parse_text(input, *max_len),
            FieldType::LongText => self.parse_text(input, LONG_TEXT_MAX),
            FieldType::Email => {
                let s = self.expect_string(input)?;
                normalize::email(&s)
                    .map(StoredValue::Text)
                    .map_err(|e| err("invalid_email", e.to_string()))
            }
            FieldType::Phone => {
                let s = self.expect_string(input)?;
                normalize::phone(&s)
                    .map(StoredValue::Text)
                    .map_err(|e| err("invalid_phone", e.to_string()))
            }
            FieldType::PostalCode => {
                let s = self.expect_string(input)?;
                normalize::postal_code(&s)
                    .map(StoredValue::Text)
                    .map_err(|e| err("invalid_postal_code", e.to_string()))
            }
            FieldType::Url => {
                let s = self.expect_string(input)?;
                let s = s.trim();
                let ok = (s.starts_with("https://") || s.starts_with("http://"))
                    && s.len() > "https://".len()
                    && s.len() <= 2048
                    && !s.chars().any(char::is_whitespace);
                if ok {
                    Ok(StoredValue::Text(s.to_string()))
                } else {
                    Err(err(
                        "invalid_url",
                        "must be an http:// or https:// address without spaces".into(),
                    ))
                }
            }
            FieldType::Integer { min, max } => {
                let n = parse_integer(input)
                    .ok_or_else(|| err("invalid_type", "must be a whole number".into()))?;
                if let Some(min) = min
                    && n < *min
                {
                    return Err(err("out_of_range", format!("must be at least {min}")));
                }
                if let Some(max) = max
                    && n > *max
                {
                    return Err(err("out_of_range", format!("must be at most {max}")));
                }
                Ok(StoredValue::Int(n))
            }
            FieldType::Decimal => parse_decimal(input)
                .map(StoredValue::Float)
                .ok_or_else(|| err("invalid_type", "must be a number".into())),
            FieldType::Boolean => parse_bool(input).map(StoredValue::Bool).ok_or_else(|| {
                err(
                    "invalid_type",
                    "must be true or false (also accepted: 1/0, yes/no, はい/いいえ)".into(),
                )
            }),
            FieldType::Date => {
                let s = self.expect_string(input)?;
                parse_date(&s).map(StoredValue::Date).ok_or_else(|| {
                    err(
                        "invalid_date",
                        format!("{s:?} is not a date; write 2024-01-05, 2024/1/5 or 2024年1月5日"),
                    )
                })
            }
            FieldType::MonthDay => {
                let s = self.expect_string(input)?;
                parse_month_day(&s).map(StoredValue::Text).ok_or_else(|| {
                    err(
                        "invalid_month_day",
                        format!("{s:?} is not a month and day; write 01-05, 1/5 or 1月5日"),
                    )
                })
            }
            FieldType::Timestamp => {
                let s = self.expect_string(input)?;
                parse_timestamp(&s).map(StoredValue::Timestamp).ok_or_else(|| {
                    err(
                        "invalid_timestamp",
                        format!(
                            "{s:?} is not a time; write 2024-01-05T10:30:00+09:00 or 2024/1/5 10:30 (Asia/Tokyo)"
                        ),
                    )
                })
            }
            FieldType::SingleChoice { options } => {
                let raw = self.expect_string(input)?;
                let s = nfkc_cow(raw.trim());
                if let Some(option) = options.iter().find(|o| **o == *s) {
                    Ok(StoredValue::Text(option.clone()))
                } else {
                    Err(err(
                        "invalid_choice",
                        format!("{s:?} is not one of: {}", options.join(", ")),
                    ))
                }
            }
            FieldType::MultiChoice { options } => {
                let picked: Vec<String> = match input {
                    Json::Array(items) => items
                        .iter()
                        .map(|item| match item {
                            Json::String(s) => Ok(nfkc(s.trim())),
                            _ => Err(err("invalid_type", "must be a list of strings".into())),
                        })
                        .collect::<Result<_, _>>()?,
                    Json::String(s) => nfkc(s)
                        .split([',', '、', ';', '|'])
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect(),
                    _ => return Err(err("invalid_type", "must be a list of strings".into())),
                };
                if let Some(bad) = picked.iter().find(|p| !options.contains(p)) {
                    return Err(err(
                        "invalid_choice",
                        format!("{bad:?} is not one of: {}", options.join(", ")),
                    ));
                }
                let chosen: Vec<&String> = options.iter().filter(|o| picked.contains(o)).collect();
                Ok(StoredValue::Text(
                    serde_json::to_string(&chosen).expect("a list of strings serialises"),
                ))
            }
            FieldType::Password => {
                let s = self.expect_string(input)?;
                if s.chars().count() < PASSWORD_MIN {
                    return Err(err(
                        "password_too_short",
                        format!("must be at least {PASSWORD_MIN} characters"),
                    ));
                }
                if s.len() > 1024 {
                    return Err(err("too_long", "must be at most 1024 bytes".into()));
                }
                Ok(StoredValue::Secret(s.into_owned()))
            }
            FieldType::Reference { entity } => match parse_integer(input) {
                Some(id) if id > 0 => Ok(StoredValue::Int(id)),
                _ => Err(err(
                    "invalid_reference",
                    format!("must be the id of a record in {entity}"),
                )),
            },
        }
    }

    fn expect_string<'a>(&self, input: &'a Json) -> Result<Cow<'a, str>, FieldError> {
        match input {
            Json::String(s) => Ok(Cow::Borrowed(s)),
            Json::Number(n) => Ok(Cow::Owned(n.to_string())),
            _ => Err(FieldError::new(
                &self.key,
                "invalid_type",
                format!("must be a {} given as a string", self.ty.name()),
            )),
        }
    }

    fn parse_text(&self, input: &Json, max_len: u32) -> Result<StoredValue, FieldError> {
        let raw = self.expect_string(input)?;
        let text = if self.nfkc {
            nfkc_cow(raw.trim()).into_owned()
        } else {
            raw.trim().to_string()
        };
        let len = text.chars().count();
        if len > max_len as usize {
            return Err(FieldError::new(
                &self.key,
                "too_long",
                format!("must be at most {max_len} characters (got {len})"),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(FieldError::new(
                &self.key,
                "invalid_characters",
                "contains control characters",
            ));
        }
        Ok(StoredValue::Text(text))
    }
}

fn parse_integer(input: &Json) -> Option<i64> {
    match input {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Json::String(s) => {
            let folded: String = nfkc(s.trim()).chars().filter(|c| *c != ',').collect();
            folded.parse().ok()
        }
        _ => None,
    }
}

fn parse_decimal(input: &Json) -> Option<f64> {
    match input {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => {
            let folded: String = nfkc(s.trim()).chars().filter(|c| *c != ',').collect();
            folded.parse::<f64>().ok().filter(|f| f.is_finite())
        }
        _ => None,
    }
}

fn parse_bool(input: &Json) -> Option<bool> {
    match input {
        Json::Bool(b) => Some(*b),
        Json::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Json::String(s) => match nfkc(s.trim()).to_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" | "はい" | "有" | "あり" | "○" => Some(true),
            "false" | "0" | "no" | "n" | "off" | "いいえ" | "無" | "なし" | "×" => {
                Some(false)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Splits `2024-01-05`, `2024/1/5`, `2024.1.5` and `2024年1月5日` into two or three numbers.
fn date_parts(s: &str) -> Option<([u32; 3], usize)> {
    let folded = nfkc_cow(s.trim());
    let folded = folded.trim_end_matches('日');
    let mut parts = [0u32; 3];
    let mut count = 0;
    for part in folded.split(['-', '/', '.', '年', '月']) {
        if count == 3 {
            return None;
        }
        parts[count] = part.trim().parse().ok()?;
        count += 1;
    }
    Some((parts, count))
}

/// Reads the date forms Japanese files use; also `20240105`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let b = s.as_bytes();
    // The ISO form most systems send, without allocating.
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && let (Ok(y), Ok(m), Ok(d)) = (s[..4].parse(), s[5..7].parse(), s[8..].parse())
    {
        return NaiveDate::from_ymd_opt(y, m, d);
    }
    let folded = nfkc_cow(s);
    if folded.len() == 8 && folded.chars().all(|c| c.is_ascii_digit()) {
        return NaiveDate::parse_from_str(&folded, "%Y%m%d").ok();
    }
    match date_parts(&folded)? {
        ([y, m, d], 3) if y >= 1000 => NaiveDate::from_ymd_opt(y as i32, m, d),
        _ => None,
    }
}

/// `10:30`, `10:30:15` or `10:30:15.250`.
fn parse_time(s: &str) -> Option<chrono::NaiveTime> {
    let mut parts = s.split(':');
    let h: u32 = parts.next()?.trim().parse().ok()?;
    let m: u32 = parts.next()?.trim().parse().ok()?;
    let (sec, nano) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, fraction) = sec.split_once('.').unwrap_or((sec, ""));
            let nano = if fraction.is_empty() {
                0
            } else if fraction.len() <= 9 && fraction.bytes().all(|c| c.is_ascii_digit()) {
                format!("{fraction:0<9}").parse().ok()?
            } else {
                return None;
            };
            (whole.trim().parse().ok()?, nano)
        }
    };
    if parts.next().is_some() {
        return None;
    }
    chrono::NaiveTime::from_hms_nano_opt(h, m, sec, nano)
}

fn parse_month_day(s: &str) -> Option<String> {
    match date_parts(s)? {
        // 2000 is a leap year, so 02-29 is a valid birthday.
        ([m, d, _], 2) if NaiveDate::from_ymd_opt(2000, m, d).is_some() => {
            Some(format!("{m:02}-{d:02}"))
        }
        _ => None,
    }
}

/// RFC 3339, or a date and time without a zone, read in Asia/Tokyo.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let folded = nfkc_cow(s.trim());
    if let Ok(t) = DateTime::parse_from_rfc3339(&folded) {
        return Some(t.with_timezone(&Utc));
    }
    let (date, time) = folded
        .split_once(['T', ' '])
        .map(|(d, t)| (d, t.trim()))
        .unwrap_or((&folded, "00:00"));
    let date = parse_date(date)?;
    let time = parse_time(time)?;
    let naive = NaiveDateTime::new(date, time);
    tokyo()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(ty: FieldType) -> FieldDef {
        FieldDef {
            key: "f".into(),
            label: Label {
                ja: "項目".into(),
                en: "Field".into(),
            },
            ty,
            required: false,
            unique: false,
            nfkc: false,
            read_only: false,
            builtin: false,
            indexed: false,
        }
    }

    #[test]
    fn dates_in_japanese_forms() {
        let f = field(FieldType::Date);
        let jan5 = StoredValue::Date(NaiveDate::from_ymd_opt(2024, 1, 5).unwrap());
        for input in [
            "2024-01-05",
            "2024/1/5",
            "2024年1月5日",
            "２０２４／０１／０５",
            "20240105",
        ] {
            assert_eq!(f.parse(&json!(input)).unwrap(), jan5, "{input}");
        }
        let e = f.parse(&json!("2024/2/30")).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("f", "invalid_date"));
    }

    #[test]
    fn timestamps_without_zone_are_tokyo_time() {
        let f = field(FieldType::Timestamp);
        let StoredValue::Timestamp(t) = f.parse(&json!("2024/1/5 09:30")).unwrap() else {
            panic!()
        };
        assert_eq!(t.to_rfc3339(), "2024-01-05T00:30:00+00:00");
        let StoredValue::Timestamp(t) = f.parse(&json!("2024-01-05T09:30:00Z")).unwrap() else {
            panic!()
        };
        assert_eq!(t.to_rfc3339(), "2024-01-05T09:30:00+00:00");
    }

    #[test]
    fn times_of_day() {
        let t = |s| parse_time(s).map(|t| t.to_string());
        assert_eq!(t("9:05").as_deref(), Some("09:05:00"));
        assert_eq!(t("10:30:15").as_deref(), Some("10:30:15"));
        assert_eq!(t("10:30:15.25").as_deref(), Some("10:30:15.250"));
        for bad in ["25:00", "10:3x", "10", "10:30:15:01", "10:30:15.x"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("2024-1-5"), NaiveDate::from_ymd_opt(2024, 1, 5));
        assert_eq!(parse_date("2024/1/5/6"), None);
    }

    #[test]
    fn month_day_allows_leap_day() {
        let f = field(FieldType::MonthDay);
        assert_eq!(
            f.parse(&json!("2/29")).unwrap(),
            StoredValue::Text("02-29".into())
        );
        assert_eq!(
            f.parse(&json!("12月1日")).unwrap(),
            StoredValue::Text("12-01".into())
        );
        assert!(f.parse(&json!("2/30")).is_err());
    }

    #[test]
    fn numbers_accept_full_width_and_commas() {
        let f = field(FieldType::Integer {
            min: Some(0),
            max: None,
        });
        assert_eq!(
            f.parse(&json!("１２,３４５")).unwrap(),
            StoredValue::Int(12345)
        );
        assert_eq!(f.parse(&json!(7)).unwrap(), StoredValue::Int(7));
        assert_eq!(f.parse(&json!(-1)).unwrap_err().code, "out_of_range");
        assert_eq!(f.parse(&json!("abc")).unwrap_err().code, "invalid_type");
        assert_eq!(f.parse(&json!(true)).unwrap_err().code, "invalid_type");
    }

    #[test]
    fn text_length_counts_characters_not_bytes() {
        let f = field(FieldType::Text { max_len: 3 });
        assert_eq!(
            f.parse(&json!("東京都")).unwrap(),
            StoredValue::Text("東京都".into())
        );
        let e = f.parse(&json!("北海道庁")).unwrap_err();
        assert_eq!(e.code, "too_long");
        assert!(e.message.contains("at most 3"));
    }

    #[test]
    fn choices_are_checked_and_ordered() {
        let f = field(FieldType::multi(&["food", "onsen", "nature"]));
        assert_eq!(
            f.parse(&json!(["nature", "food", "food"])).unwrap(),
            StoredValue::Text(r#"["food","nature"]"#.into())
        );
        assert_eq!(
            f.parse(&json!("onsen、food")).unwrap(),
            StoredValue::Text(r#"["food","onsen"]"#.into())
        );
        assert_eq!(f.parse(&json!(["ski"])).unwrap_err().code, "invalid_choice");
        let s = field(FieldType::single(&["male", "female"]));
        assert_eq!(s.parse(&json!("other")).unwrap_err().code, "invalid_choice");
    }

    #[test]
    fn booleans_in_japanese() {
        let f = field(FieldType::Boolean);
        assert_eq!(f.parse(&json!("はい")).unwrap(), StoredValue::Bool(true));
        assert_eq!(f.parse(&json!(0)).unwrap(), StoredValue::Bool(false));
        assert!(f.parse(&json!("maybe")).is_err());
    }

    #[test]
    fn passwords_have_a_minimum_length() {
        let f = field(FieldType::Password);
        assert_eq!(
            f.parse(&json!("short")).unwrap_err().code,
            "password_too_short"
        );
        assert!(matches!(
            f.parse(&json!("long enough")).unwrap(),
            StoredValue::Secret(_)
        ));
    }

    #[test]
    fn empty_strings_mean_no_value() {
        let f = field(FieldType::Email);
        assert_eq!(f.parse(&json!("  ")).unwrap(), StoredValue::Null);
    }

    #[test]
    fn definitions_are_checked() {
        assert!(FieldType::single(&[]).check_definition().is_err());
        assert!(FieldType::single(&["a", "a"]).check_definition().is_err());
        assert!(FieldType::Text { max_len: 0 }.check_definition().is_err());
        assert!(FieldType::single(&["a", "b"]).check_definition().is_ok());
    }

    #[test]
    fn field_def_json_shape() {
        let def: FieldDef = serde_json::from_value(json!({
            "key": "favourite_spa", "label": {"ja": "好きな温泉", "en": "Favourite spa"},
            "type": "single_choice", "options": ["Beppu", "Kusatsu"]
        }))
        .unwrap();
        assert_eq!(def.ty, FieldType::single(&["Beppu", "Kusatsu"]));
        assert!(!def.required);
    }
}
