//! What the content screen shows and sends, pure: a saved template, part or snippet as the
//! form's texts, the form's texts as the definition to save, the server's refusals by input,
//! and where a line and column the server names fall in a text box.

use serde_json::{Map, Value};

/// The three kinds of content, as the API's paths name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Templates,
    Parts,
    Snippets,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Templates, Kind::Parts, Kind::Snippets];

    pub fn path(self) -> &'static str {
        match self {
            Kind::Templates => "templates",
            Kind::Parts => "parts",
            Kind::Snippets => "snippets",
        }
    }

    pub fn parse(path: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.path() == path)
    }

    /// The entity whose rights govern the kind: parts are content like templates, snippets are
    /// code.
    pub fn rights_entity(self) -> &'static str {
        match self {
            Kind::Templates | Kind::Parts => "templates",
            Kind::Snippets => "snippets",
        }
    }
}

/// The channels a template can be written for.
pub const CHANNELS: [&str; 5] = ["email", "sms", "line", "webhook", "test"];

/// A new template starts as an e-mail.
const FIRST_CHANNEL: &str = "email";

/// The inputs of a kind's form, in order. A template's depend on its channel: an e-mail has a
/// subject, a preheader, HTML and text; LINE has text and a flex container; the others text.
pub fn inputs_of(kind: Kind, channel: &str) -> &'static [&'static str] {
    match kind {
        Kind::Templates => match channel {
            "email" => &["channel", "subject", "preheader", "html", "text"],
            "line" => &["channel", "text", "flex"],
            _ => &["channel", "text"],
        },
        Kind::Parts => &["body"],
        Kind::Snippets => &["description", "source"],
    }
}

/// Every input a kind can have, whatever the channel.
fn every_input(kind: Kind) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = Vec::new();
    for channel in CHANNELS {
        for input in inputs_of(kind, channel) {
            if !all.contains(input) {
                all.push(input);
            }
        }
    }
    all
}

/// The inputs that must be sent even when empty, so the server names them when they are.
fn required(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Templates => &["channel"],
        Kind::Parts => &["body"],
        Kind::Snippets => &["source"],
    }
}

/// The form's texts for a saved definition (`None`: a new one). A LINE flex container is shown
/// as indented JSON.
pub fn texts(kind: Kind, definition: Option<&Value>) -> Map<String, Value> {
    let mut texts = Map::new();
    for input in every_input(kind) {
        let value = definition.map(|d| &d[input]).unwrap_or(&Value::Null);
        let text = match value {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        texts.insert(input.to_string(), Value::String(text));
    }
    if kind == Kind::Templates && text_of(&texts, "channel").is_empty() {
        texts.insert("channel".into(), Value::String(FIRST_CHANNEL.into()));
    }
    texts
}

pub fn text_of<'a>(texts: &'a Map<String, Value>, input: &str) -> &'a str {
    texts.get(input).and_then(Value::as_str).unwrap_or_default()
}

/// The definition to save from the form's texts: the inputs of the chosen channel only (text
/// typed for an e-mail's subject is not sent with an SMS), empty ones left out. A flex
/// container that is not JSON is refused here, naming its input.
pub fn definition(kind: Kind, texts: &Map<String, Value>) -> Result<Value, (String, String)> {
    let channel = text_of(texts, "channel");
    let mut out = Map::new();
    for &input in inputs_of(kind, channel) {
        let text = text_of(texts, input);
        if text.trim().is_empty() && !required(kind).contains(&input) {
            continue;
        }
        let value = if input == "flex" {
            serde_json::from_str(text).map_err(|e| {
                (
                    input.to_string(),
                    format!("not JSON (line {}, column {})", e.line(), e.column()),
                )
            })?
        } else {
            Value::String(text.to_string())
        };
        out.insert(input.to_string(), value);
    }
    Ok(Value::Object(out))
}

/// The input a refusal belongs to: a string inside a flex container
/// (`flex/body/contents/0/text`) is the flex input's.
pub fn input_of(at: &str) -> &str {
    at.split('/').next().unwrap_or(at)
}

/// Each input's refusals (`field: message`, as the API client gives them), joined where an
/// input has several.
pub fn refusals(details: &[String]) -> Map<String, Value> {
    let mut by_input = Map::new();
    for detail in details {
        let Some((at, message)) = detail.split_once(": ") else {
            continue;
        };
        let input = input_of(at).to_string();
        let text = match by_input.get(&input).and_then(Value::as_str) {
            Some(before) => format!("{before}; {message}"),
            None => message.to_string(),
        };
        by_input.insert(input, Value::String(text));
    }
    by_input
}

/// Where line `line`, column `column` (both counted from 1, columns in characters, as rhai and
/// handlebars count them) fall in `text`, in the UTF-16 units a text box's selection counts;
/// past the end of a line is its end, past the last line the end of the text.
pub fn utf16_offset(text: &str, line: u32, column: u32) -> u32 {
    let mut offset = 0u32;
    for (number, content) in text.split('\n').enumerate() {
        if number + 1 == line as usize {
            let before: u32 = content
                .chars()
                .take(column.saturating_sub(1) as usize)
                .map(|c| c.len_utf16() as u32)
                .sum();
            return offset + before;
        }
        offset += content.chars().map(|c| c.len_utf16() as u32).sum::<u32>() + 1;
    }
    offset.saturating_sub(1)
}

/// A test run's value as shown: a string as it is, anything else as JSON.
pub fn shown_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The arguments of a test run from their input: a JSON array, or nothing.
pub fn arguments(text: &str) -> Result<Vec<Value>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err("a JSON array, such as [\"秋\", 2]".into()),
        Err(e) => Err(format!(
            "not JSON (line {}, column {}): a JSON array, such as [\"秋\", 2]",
            e.line(),
            e.column()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_are_named_by_their_paths_and_governed_by_their_rights() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.path()), Some(kind));
        }
        assert_eq!(Kind::parse("flows"), None);
        assert_eq!(Kind::Parts.rights_entity(), "templates");
        assert_eq!(Kind::Snippets.rights_entity(), "snippets");
    }

    #[test]
    fn a_saved_template_round_trips_through_the_form() {
        let saved = json!({"channel": "email", "subject": "{{contact.given_name}}様", "html": "<p>秋</p>", "text": "秋"});
        let texts = texts(Kind::Templates, Some(&saved));
        assert_eq!(text_of(&texts, "preheader"), "");
        assert_eq!(definition(Kind::Templates, &texts).unwrap(), saved);

        let line = json!({"channel": "line", "text": "秋", "flex": {"type": "bubble", "body": {"type": "box"}}});
        let texts = super::texts(Kind::Templates, Some(&line));
        assert!(text_of(&texts, "flex").contains("\n  \"body\""), "indented");
        assert_eq!(definition(Kind::Templates, &texts).unwrap(), line);
    }

    #[test]
    fn a_new_template_is_an_email_and_a_new_snippet_sends_its_empty_source() {
        let texts = texts(Kind::Templates, None);
        assert_eq!(text_of(&texts, "channel"), "email");
        assert_eq!(
            definition(Kind::Templates, &texts).unwrap(),
            json!({"channel": "email"})
        );
        assert_eq!(
            definition(Kind::Snippets, &super::texts(Kind::Snippets, None)).unwrap(),
            json!({"source": ""})
        );
    }

    #[test]
    fn only_the_chosen_channels_inputs_are_sent() {
        let mut texts = texts(Kind::Templates, None);
        for (input, text) in [
            ("subject", "件名"),
            ("html", "<p>x</p>"),
            ("text", "本文"),
            ("flex", "{"),
        ] {
            texts.insert(input.into(), json!(text));
        }
        texts.insert("channel".into(), json!("sms"));
        assert_eq!(
            definition(Kind::Templates, &texts).unwrap(),
            json!({"channel": "sms", "text": "本文"})
        );
        texts.insert("channel".into(), json!("line"));
        let (input, message) = definition(Kind::Templates, &texts).unwrap_err();
        assert_eq!(input, "flex");
        assert!(message.starts_with("not JSON (line 1"), "{message}");
    }

    #[test]
    fn refusals_land_on_their_inputs_joined() {
        let found = refusals(&[
            "html: includes \"nowhere\", which is not a saved part".into(),
            "html: line 2, column 1: unclosed block".into(),
            "flex/body/contents/0/text: line 1, column 3: bad".into(),
            "plain words".into(),
        ]);
        assert_eq!(
            Value::Object(found),
            json!({
                "html": "includes \"nowhere\", which is not a saved part; line 2, column 1: unclosed block",
                "flex": "line 1, column 3: bad"
            })
        );
    }

    #[test]
    fn lines_and_columns_become_text_box_offsets() {
        let source = "let x = 1;\nlet 名前 = 😀 + ;";
        assert_eq!(utf16_offset(source, 1, 1), 0);
        assert_eq!(utf16_offset(source, 2, 1), 11);
        // 名前 are one unit each, the emoji two.
        assert_eq!(utf16_offset(source, 2, 12), 11 + 11 + 1);
        assert_eq!(utf16_offset(source, 1, 99), 10, "the end of the line");
        assert_eq!(
            utf16_offset(source, 9, 1),
            source.encode_utf16().count() as u32,
            "the end of the text"
        );
    }

    #[test]
    fn arguments_are_a_json_array_or_nothing() {
        assert_eq!(arguments("").unwrap(), Vec::<Value>::new());
        assert_eq!(
            arguments("[\"秋\", 2]").unwrap(),
            vec![json!("秋"), json!(2)]
        );
        assert!(arguments("\"秋\"").unwrap_err().starts_with("a JSON array"));
        assert!(arguments("[1,").unwrap_err().starts_with("not JSON"));
        assert_eq!(shown_value(&json!("花子様")), "花子様");
        assert_eq!(shown_value(&json!({"a": 1})), "{\n  \"a\": 1\n}");
    }
}
