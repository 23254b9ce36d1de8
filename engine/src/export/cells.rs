//! Cells of the files exports write, as Excel reads them: times in the export's zone, lists
//! joined, text Excel would run as a formula kept as text; and Shift_JIS for older Excel.

use std::borrow::Cow;

use chrono::DateTime;
use serde_json::Value as Json;
use tabiji_model::FieldDef;
use tabiji_model::export::HeaderNames;
use tabiji_model::field::FieldType;
use tabiji_model::zone::Zone;

/// The header line: `id`, then each field by its key or its label.
pub fn header_names(fields: &[FieldDef], header: HeaderNames) -> Vec<String> {
    std::iter::once("id".to_string())
        .chain(fields.iter().map(|f| match header {
            HeaderNames::Keys => f.key.clone(),
            HeaderNames::Ja => f.label.ja.clone(),
            HeaderNames::En => f.label.en.clone(),
        }))
        .collect()
}

/// A cell as text for CSV: [`text`], with text that Excel would run as a formula kept as text.
pub fn cell<'a>(field: Option<&FieldDef>, value: &'a Json, zone: &Zone) -> Cow<'a, str> {
    let text = text(field, value, zone);
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) && !matches!(value, Json::Number(_)) {
        return Cow::Owned(format!("'{text}"));
    }
    text
}

/// A value as text: times in the export's zone as Excel reads them, lists joined.
pub fn text<'a>(field: Option<&FieldDef>, value: &'a Json, zone: &Zone) -> Cow<'a, str> {
    match value {
        Json::Null => Cow::Borrowed(""),
        Json::String(s) => match field.map(|f| &f.ty) {
            Some(FieldType::Timestamp) => DateTime::parse_from_rfc3339(s)
                .map(|t| {
                    Cow::Owned(
                        zone.local(t.with_timezone(&chrono::Utc))
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string(),
                    )
                })
                .unwrap_or(Cow::Borrowed(s)),
            _ => Cow::Borrowed(s),
        },
        Json::Array(items) => Cow::Owned(
            items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Cow::Owned(other.to_string()),
    }
}

/// Characters that JIS-based Unicode text (macOS, the web) writes where Windows' CP932 has its
/// own code points for the same glyph: 〜 ‖ − — ¢ £ ¬ would otherwise all become `?`.
const JIS_TO_CP932: [(char, char); 7] = [
    ('\u{301C}', '\u{FF5E}'),
    ('\u{2016}', '\u{2225}'),
    ('\u{2212}', '\u{FF0D}'),
    ('\u{2014}', '\u{2015}'),
    ('\u{00A2}', '\u{FFE0}'),
    ('\u{00A3}', '\u{FFE1}'),
    ('\u{00AC}', '\u{FFE2}'),
];

fn cp932_form(c: char) -> char {
    JIS_TO_CP932
        .iter()
        .find(|(jis, _)| *jis == c)
        .map_or(c, |(_, cp932)| *cp932)
}

/// UTF-8 text in Shift_JIS (CP932): a character Shift_JIS lacks becomes `?`.
pub fn shift_jis(utf8: &[u8]) -> Vec<u8> {
    let lossy = String::from_utf8_lossy(utf8);
    let text: Cow<'_, str> = if lossy.chars().any(|c| cp932_form(c) != c) {
        lossy.chars().map(cp932_form).collect::<String>().into()
    } else {
        lossy
    };
    let mut encoder = encoding_rs::SHIFT_JIS.new_encoder();
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest: &str = &text;
    loop {
        let mut buffer = [0u8; 8192];
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut buffer, true);
        bytes.extend_from_slice(&buffer[..written]);
        rest = &rest[read..];
        match result {
            encoding_rs::EncoderResult::InputEmpty => break,
            encoding_rs::EncoderResult::OutputFull => {}
            encoding_rs::EncoderResult::Unmappable(_) => bytes.push(b'?'),
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_excel_reads_them() {
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        let when = tabiji_model::filter::system_field("created_at").unwrap();
        assert_eq!(when.ty, FieldType::Timestamp);
        assert_eq!(
            cell(Some(&when), &Json::from("2026-11-28T15:30:00Z"), &tokyo),
            "2026-11-29 00:30:00"
        );
        assert_eq!(cell(None, &Json::from("=1+1"), &tokyo), "'=1+1");
        assert_eq!(cell(None, &Json::from(-5), &tokyo), "-5");
        assert_eq!(cell(None, &serde_json::json!(["a", "b"]), &tokyo), "a,b");
        assert_eq!(
            shift_jis("山田,〜".as_bytes()),
            b"\x8eR\x93c,\x81`".to_vec()
        );
        assert_eq!(
            shift_jis("１０〜２０−５".as_bytes()),
            shift_jis("１０～２０－５".as_bytes()),
            "the JIS wave dash and minus as Windows writes them"
        );
        assert_eq!(shift_jis("😀".as_bytes()), b"?".to_vec());
    }
}
