//! Test-only: JSON documents shaped like those of tabiji's languages (flows, filters), for
//! fuzzing their readers and validators. The words come from the language's own JSON Schema,
//! so generated documents reach deep into the validators instead of failing at the first key.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Every property name, enum value and constant a JSON Schema mentions.
pub fn words_of(schema: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if key == "properties"
                        && let Value::Object(properties) = inner
                    {
                        out.extend(properties.keys().cloned());
                    }
                    if key == "enum" || key == "const" {
                        match inner {
                            Value::Array(items) => out.extend(
                                items.iter().filter_map(|i| i.as_str().map(str::to_string)),
                            ),
                            Value::String(s) => out.push(s.clone()),
                            _ => {}
                        }
                    }
                    walk(inner, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut out);
    out.sort();
    out.dedup();
    out
}

/// Any JSON value, its keys and most strings drawn from `words` (plus `extra` values a
/// language reads inside strings, such as durations or field names).
pub fn json_like(words: Vec<String>, extra: &[&str]) -> BoxedStrategy<Value> {
    let mut strings = words.clone();
    strings.extend(extra.iter().map(|s| s.to_string()));
    let word = prop::sample::select(words);
    let string = prop_oneof![
        4 => prop::sample::select(strings),
        1 => "\\PC{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..200).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        string.prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 80, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// Every place in `value` (as JSON pointers), the document itself included.
pub fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    walk(
                        inner,
                        format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(inner, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// One change to a document.
#[derive(Debug, Clone)]
enum Change {
    Set(Value),
    Remove,
    Duplicate,
}

/// `base` with a few changes that mostly keep its shape, so that the result still reads and
/// the validator behind the reader is what gets exercised: values replaced (by words of the
/// language, numbers, or any JSON from `replacements`), keys and items removed, items
/// repeated.
pub fn mutated(base: Value, replacements: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let places = pointers(&base);
    let change = prop_oneof![
        6 => replacements.prop_map(Change::Set),
        2 => Just(Change::Remove),
        2 => Just(Change::Duplicate),
    ];
    prop::collection::vec((prop::sample::select(places), change), 1..4).prop_map(move |changes| {
        let mut doc = base.clone();
        for (at, change) in changes {
            apply(&mut doc, &at, change);
        }
        doc
    })
}

fn apply(doc: &mut Value, at: &str, change: Change) {
    let Some((parent, last)) = at.rsplit_once('/') else {
        if let Change::Set(value) = change {
            *doc = value;
        }
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match (change, doc.pointer_mut(parent)) {
        (Change::Set(value), Some(_)) => {
            if let Some(slot) = doc.pointer_mut(at) {
                *slot = value;
            }
        }
        (Change::Remove, Some(Value::Object(map))) => {
            map.remove(&key);
        }
        (Change::Remove, Some(Value::Array(items))) => {
            if let Ok(i) = key.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        (Change::Duplicate, Some(Value::Array(items))) => {
            if let Some(item) = key
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
            {
                items.push(item);
            }
        }
        _ => {}
    }
}

/// Replacements that keep a document readable more often than any JSON would: the
/// language's words and a few numbers, with any JSON now and then.
pub fn leaves(words: Vec<String>, extra: &[&str]) -> BoxedStrategy<Value> {
    let mut strings = words.clone();
    strings.extend(extra.iter().map(|s| s.to_string()));
    prop_oneof![
        6 => prop::sample::select(strings).prop_map(Value::String),
        2 => (-3i64..400).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => json_like(words, extra),
    ]
    .boxed()
}
