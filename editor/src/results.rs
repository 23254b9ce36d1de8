//! What the SQL workspace shows and sends, pure: a result's cells as text, its summary line,
//! the save request, and the query that opens a table.

use serde_json::{Value, json};

/// The row limits offered for a query; the server's own default is 1,000.
pub const LIMITS: [u32; 3] = [100, 1_000, 10_000];

/// How a result is kept, as the server names it; each is also the key of its label
/// (`sql.mode.{name}`) and the right it needs on `sql`.
pub const MODES: [(&str, tabiji_model::Op); 3] = [
    ("create", tabiji_model::Op::Create),
    ("overwrite", tabiji_model::Op::Edit),
    ("append", tabiji_model::Op::Edit),
];

/// A cell as the table shows it: text as it is, numbers as the database gave them, true and
/// false spelled out, `None` for NULL (shown apart from an empty text).
pub fn cell_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether a column of this kind is a number, which the table aligns right.
pub fn numeric(kind: &str) -> bool {
    matches!(kind, "integer" | "real")
}

/// The request that keeps `sql`'s result as output table `name`.
pub fn save_request(name: &str, sql: &str, mode: &str, description: &str) -> Value {
    let mut body = json!({"name": name.trim(), "sql": sql, "mode": mode});
    if !description.trim().is_empty() {
        body["description"] = json!(description.trim());
    }
    body
}

/// The query a table's name opens in the editor.
pub fn first_rows(table: &str) -> String {
    format!("SELECT *\nFROM {table}\nLIMIT 100")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_null_apart_from_empty_text() {
        assert_eq!(cell_text(&Value::Null), None);
        assert_eq!(cell_text(&json!("")), Some(String::new()));
        assert_eq!(cell_text(&json!("愛知県")), Some("愛知県".into()));
        assert_eq!(cell_text(&json!(51234000)), Some("51234000".into()));
        assert_eq!(cell_text(&json!(2.5)), Some("2.5".into()));
        assert_eq!(cell_text(&json!(true)), Some("true".into()));
        assert!(numeric("real") && numeric("integer") && !numeric("text"));
    }

    #[test]
    fn a_save_sends_a_description_only_when_there_is_one() {
        assert_eq!(
            save_request(" vip ", "SELECT 1 AS n", "create", "  "),
            json!({"name": "vip", "sql": "SELECT 1 AS n", "mode": "create"})
        );
        assert_eq!(
            save_request("vip", "SELECT 1 AS n", "append", " 上位 "),
            json!({"name": "vip", "sql": "SELECT 1 AS n", "mode": "append", "description": "上位"})
        );
        assert_eq!(first_rows("vip"), "SELECT *\nFROM vip\nLIMIT 100");
    }
}
