//! Message content as data (MA-1, MA-10): templates a send node names, the reusable parts
//! templates include, and the rhai snippets that personalise them. Each is saved under a key,
//! and every save is a new version.
//!
//! Only the shape is checked here; whether a template or a snippet compiles is the engine's
//! business (the model stays free of the template and script engines so the editor can share it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::flow::Channel;

/// A saved key: a letter, then letters, digits, `_` or `-`, at most 64.
pub fn check_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_well
        || key.len() > 64
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "{key:?} is not a usable key: start with a letter, then letters, digits, _ or -, at most 64"
        ));
    }
    Ok(())
}

/// What a template, a part or a snippet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    Template,
    Part,
    Snippet,
}

impl ContentKind {
    pub const ALL: [ContentKind; 3] = [
        ContentKind::Template,
        ContentKind::Part,
        ContentKind::Snippet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Template => "template",
            ContentKind::Part => "part",
            ContentKind::Snippet => "snippet",
        }
    }

    pub fn parse(name: &str) -> Option<ContentKind> {
        ContentKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The rights entity that guards this kind: templates and parts are the marketers',
    /// snippets (code) the developers'.
    pub fn rights_entity(self) -> &'static str {
        match self {
            ContentKind::Template | ContentKind::Part => TEMPLATES,
            ContentKind::Snippet => SNIPPETS,
        }
    }
}

/// The rights entity for templates and parts.
pub const TEMPLATES: &str = "templates";
/// The rights entity for rhai snippets.
pub const SNIPPETS: &str = "snippets";

/// A message template in handlebars. The contact's fields are under `contact`
/// (`{{contact.first_name}}`), parts are included with `{{> part_key}}` and snippets are
/// called with `{{script "snippet_key" arg…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub channel: Channel,
    /// E-mail only, and required there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// E-mail only: the preview line mail clients show after the subject.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preheader: String,
    /// E-mail only. HTML-escaped where values are inserted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub html: String,
    /// The plain-text part of an e-mail, or the whole of an SMS or LINE message (with `flex`,
    /// the alternative text LINE shows in notifications and chat lists).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// LINE only: a flex message container (`{"type": "bubble", …}` or
    /// `{"type": "carousel", …}`) as LINE's Messaging API defines it. Every string in it is a
    /// template of its own, so values are inserted as JSON strings and cannot change its shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex: Option<serde_json::Value>,
}

/// A reusable piece of content (a header, a footer, a coupon block) that templates include.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub body: String,
}

/// A rhai snippet. It sees the contact as `contact` (a map of the contact's fields) and the
/// helper's arguments as `args`, and its last expression is its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snippet {
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A template rendered for one contact: what a channel sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rendered {
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preheader: String,
    /// With the preheader placed at the top of the body, hidden, where mail clients look for it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub html: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex: Option<serde_json::Value>,
}

/// The longest alternative text LINE accepts for a flex message, in characters.
pub const LINE_ALT_TEXT_CHARS: usize = 400;
/// The longest text LINE accepts in one text message, in characters.
pub const LINE_TEXT_CHARS: usize = 5000;

/// The JSON Schema of each kind's definition, for the OpenAPI document.
pub fn json_schema(kind: ContentKind) -> serde_json::Value {
    let schema = match kind {
        ContentKind::Template => schemars::schema_for!(Template),
        ContentKind::Part => schemars::schema_for!(Part),
        ContentKind::Snippet => schemars::schema_for!(Snippet),
    };
    serde_json::to_value(schema).expect("a schema is JSON")
}

/// A problem with a definition, at a path such as `subject` or `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentError {
    pub at: String,
    pub code: &'static str,
    pub message: String,
}

fn err(at: &str, code: &'static str, message: impl Into<String>) -> ContentError {
    ContentError {
        at: at.to_string(),
        code,
        message: message.into(),
    }
}

/// The longest source accepted for one part of a template, a part or a snippet.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;

fn check_size(at: &str, text: &str, errors: &mut Vec<ContentError>) {
    if text.len() > MAX_SOURCE_BYTES {
        errors.push(err(
            at,
            "too_long",
            format!(
                "is {} bytes; at most {MAX_SOURCE_BYTES} are accepted",
                text.len()
            ),
        ));
    }
}

impl Template {
    /// Shape problems: what the channel needs and what it cannot carry.
    pub fn check(&self) -> Vec<ContentError> {
        let mut errors = Vec::new();
        for (at, text) in [
            ("subject", &self.subject),
            ("preheader", &self.preheader),
            ("html", &self.html),
            ("text", &self.text),
        ] {
            check_size(at, text, &mut errors);
        }
        match self.channel {
            Channel::Email => {
                if self.subject.trim().is_empty() {
                    errors.push(err("subject", "required", "an e-mail needs a subject"));
                }
                if self.subject.contains(['\r', '\n']) {
                    errors.push(err(
                        "subject",
                        "line_break",
                        "a subject is one line: remove the line breaks",
                    ));
                }
                if self.html.trim().is_empty() && self.text.trim().is_empty() {
                    errors.push(err(
                        "html",
                        "required",
                        "an e-mail needs an HTML part, a text part or both",
                    ));
                }
            }
            other => {
                for (at, text) in [
                    ("subject", &self.subject),
                    ("preheader", &self.preheader),
                    ("html", &self.html),
                ] {
                    if !text.is_empty() {
                        errors.push(err(
                            at,
                            "not_for_channel",
                            format!(
                                "{} messages have no {at}: put the content in text",
                                other.as_str()
                            ),
                        ));
                    }
                }
                if self.text.trim().is_empty() {
                    errors.push(err(
                        "text",
                        "required",
                        match other {
                            Channel::Line if self.flex.is_some() => {
                                "a LINE flex message needs its alternative text in text".into()
                            }
                            _ => format!("a {} message needs its text", other.as_str()),
                        },
                    ));
                }
            }
        }
        match (&self.flex, self.channel) {
            (None, _) => {}
            (Some(flex), Channel::Line) => {
                let kind = flex.get("type").and_then(|t| t.as_str());
                if !matches!(kind, Some("bubble" | "carousel")) {
                    errors.push(err(
                        "flex",
                        "invalid",
                        "a flex message is an object whose type is \"bubble\" or \"carousel\"",
                    ));
                }
                let size = flex.to_string().len();
                if size > MAX_SOURCE_BYTES {
                    errors.push(err(
                        "flex",
                        "too_long",
                        format!("is {size} bytes; at most {MAX_SOURCE_BYTES} are accepted"),
                    ));
                }
            }
            (Some(_), other) => errors.push(err(
                "flex",
                "not_for_channel",
                format!(
                    "{} messages have no flex part: only LINE has",
                    other.as_str()
                ),
            )),
        }
        errors
    }
}

impl Part {
    pub fn check(&self) -> Vec<ContentError> {
        let mut errors = Vec::new();
        check_size("body", &self.body, &mut errors);
        errors
    }
}

impl Snippet {
    pub fn check(&self) -> Vec<ContentError> {
        let mut errors = Vec::new();
        check_size("source", &self.source, &mut errors);
        if self.source.trim().is_empty() {
            errors.push(err("source", "required", "write the snippet's code"));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_start_with_a_letter_and_stay_short() {
        assert!(check_key("autumn-1").is_ok());
        assert!(check_key("season_greeting").is_ok());
        for bad in ["", "1st", "a b", "../x", "ä", &"a".repeat(65)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_email_needs_a_one_line_subject_and_a_body() {
        let t = Template {
            channel: Channel::Email,
            subject: "秋の\nご案内".into(),
            preheader: String::new(),
            html: String::new(),
            text: " ".into(),
            flex: None,
        };
        let codes: Vec<_> = t.check().into_iter().map(|e| (e.at, e.code)).collect();
        assert_eq!(
            codes,
            vec![
                ("subject".to_string(), "line_break"),
                ("html".to_string(), "required")
            ]
        );
    }

    #[test]
    fn only_line_has_flex_and_it_needs_a_container_and_alt_text() {
        let line: Template = serde_json::from_value(serde_json::json!({
            "channel": "line", "text": "秋のご案内",
            "flex": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": []}}
        }))
        .unwrap();
        assert!(line.check().is_empty(), "{:?}", line.check());
        let no_alt = Template {
            text: String::new(),
            flex: Some(serde_json::json!({"type": "text"})),
            ..line.clone()
        };
        let found: Vec<_> = no_alt.check().into_iter().map(|e| (e.at, e.code)).collect();
        assert_eq!(
            found,
            vec![
                ("text".to_string(), "required"),
                ("flex".to_string(), "invalid")
            ]
        );
        let sms = Template {
            channel: Channel::Sms,
            ..line
        };
        let found: Vec<_> = sms.check().into_iter().map(|e| (e.at, e.code)).collect();
        assert_eq!(found, vec![("flex".to_string(), "not_for_channel")]);
    }

    #[test]
    fn an_sms_is_text_only() {
        let t: Template = serde_json::from_value(serde_json::json!({
            "channel": "sms", "subject": "x", "text": "こんにちは {{contact.first_name}}"
        }))
        .unwrap();
        let found = t.check();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].at.as_str(), found[0].code),
            ("subject", "not_for_channel")
        );
    }

    #[test]
    fn unknown_properties_are_refused() {
        let parsed: Result<Template, _> = serde_json::from_value(serde_json::json!({
            "channel": "email", "subjet": "typo"
        }));
        assert!(parsed.unwrap_err().to_string().contains("subjet"));
    }
}
