//! Hand-written SQL for set-at-a-time work: a batch of rows passed as one row source, the same
//! statement text shape on SQLite and PostgreSQL.
//!
//! SQLite reads the rows from a multi-row `VALUES` list; PostgreSQL from one array parameter per
//! column (`UNNEST`), because it plans statements with thousands of parameters slowly.

use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement, SqliteQueryBuilder};
use sea_orm::{DbBackend, Statement, Value};

/// A column's SQL type in a row source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    BigInt,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(Some(v))
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        Cell::Int(v)
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(Some(v))
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(Some(v.to_string()))
    }
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        Cell::Text(v)
    }
}

impl Cell {
    fn into_value(self) -> Value {
        match self {
            Cell::Int(v) => Value::BigInt(v),
            Cell::Text(v) => Value::String(v),
        }
    }
}

/// Id lists up to this long are compared directly on PostgreSQL (see [`Sql::in_list`]).
const SHORT_LIST: usize = 64;

/// Statement text and its parameters, numbered for the backend as they are bound.
pub struct Sql {
    backend: DbBackend,
    pub text: String,
    values: Vec<Value>,
}

impl Sql {
    pub fn new(backend: DbBackend) -> Self {
        Sql {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    /// The statement text and its values, in placeholder order.
    pub fn into_parts(self) -> (String, Vec<Value>) {
        (self.text, self.values)
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Cell>) -> &mut Self {
        self.bind_value(value.into().into_value())
    }

    /// Appends `query`, built for this backend, its values bound in turn.
    pub fn push_query(&mut self, query: &SelectStatement) -> &mut Self {
        let (text, values) = match self.backend {
            DbBackend::Postgres => query.build(PostgresQueryBuilder),
            _ => query.build(SqliteQueryBuilder),
        };
        self.push_built(&text, &values.0)
    }

    /// Appends a statement built by sea-query for this backend (`?` or `$n` placeholders),
    /// its values bound in turn, so that they travel as parameters in the form the database
    /// stores them (a timestamp inlined as text compares wrongly on SQLite).
    fn push_built(&mut self, text: &str, values: &[Value]) -> &mut Self {
        let mut chars = text.char_indices().peekable();
        let mut next = 0;
        while let Some((_, c)) = chars.next() {
            match c {
                // Quoted strings and identifiers are copied as they are.
                '\'' | '"' => {
                    self.text.push(c);
                    for (_, inner) in chars.by_ref() {
                        self.text.push(inner);
                        if inner == c {
                            break;
                        }
                    }
                }
                '?' if self.backend != DbBackend::Postgres => {
                    self.bind_value(values[next].clone());
                    next += 1;
                }
                '$' if self.backend == DbBackend::Postgres
                    && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) =>
                {
                    let mut n = 0usize;
                    while let Some((_, d)) =
                        chars.peek().copied().filter(|(_, d)| d.is_ascii_digit())
                    {
                        n = n * 10 + d.to_digit(10).expect("a digit") as usize;
                        chars.next();
                    }
                    self.bind_value(values[n - 1].clone());
                }
                _ => self.text.push(c),
            }
        }
        self
    }

    fn bind_value(&mut self, value: Value) -> &mut Self {
        self.values.push(value);
        match self.backend {
            DbBackend::Postgres => {
                let n = self.values.len();
                self.text.push_str(&format!("${n}"));
            }
            _ => self.text.push('?'),
        }
        self
    }

    /// Appends `column IN (?, ?, …)` on SQLite. On PostgreSQL, which plans thousands of
    /// parameters slowly, the ids travel as one array parameter: a short list (the flows of a
    /// claim) as `column = ANY($n)`, a filter that still lets an index be walked in order; a
    /// long one (a batch of contacts) as `column IN (SELECT UNNEST($n))`, which PostgreSQL
    /// hashes, where `= ANY` would compare every row with every id when it scans.
    pub fn in_list(&mut self, column: &str, ids: impl IntoIterator<Item = i64>) -> &mut Self {
        let ids: Vec<i64> = ids.into_iter().collect();
        self.text.push_str(column);
        if self.backend == DbBackend::Postgres {
            let mut array = String::from("{");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    array.push(',');
                }
                array.push_str(&id.to_string());
            }
            array.push('}');
            if ids.len() <= SHORT_LIST {
                self.text.push_str(" = ANY(");
                self.bind(array);
                self.text.push_str("::bigint[])");
            } else {
                self.text.push_str(" IN (SELECT UNNEST(");
                self.bind(array);
                self.text.push_str("::bigint[]))");
            }
            return self;
        }
        self.text.push_str(" IN (");
        for (i, id) in ids.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(id);
        }
        self.text.push(')');
        self
    }

    /// Appends a parenthesised subquery yielding `rows` with the given column names and types.
    /// Every row must have one cell per column.
    pub fn rows(&mut self, columns: &[(&str, Ty)], rows: Vec<Vec<Cell>>) -> &mut Self {
        match self.backend {
            DbBackend::Postgres => {
                let mut arrays: Vec<String> = vec![String::from("{"); columns.len()];
                for (r, row) in rows.into_iter().enumerate() {
                    for (c, cell) in row.into_iter().enumerate() {
                        let array = &mut arrays[c];
                        if r > 0 {
                            array.push(',');
                        }
                        push_array_element(array, cell);
                    }
                }
                self.text.push_str("(SELECT * FROM UNNEST(");
                for (c, array) in arrays.into_iter().enumerate() {
                    if c > 0 {
                        self.text.push_str(", ");
                    }
                    let mut array = array;
                    array.push('}');
                    self.bind(array);
                    self.text.push_str(match columns[c].1 {
                        Ty::BigInt => "::bigint[]",
                        Ty::Text => "::text[]",
                    });
                }
                self.text.push_str(") AS u(");
                for (c, (name, _)) in columns.iter().enumerate() {
                    if c > 0 {
                        self.text.push_str(", ");
                    }
                    self.text.push_str(&format!("\"{name}\""));
                }
                self.text.push_str("))");
            }
            _ => {
                self.text.push_str("(SELECT ");
                for (c, (name, _)) in columns.iter().enumerate() {
                    if c > 0 {
                        self.text.push_str(", ");
                    }
                    self.text
                        .push_str(&format!("column{} AS \"{name}\"", c + 1));
                }
                self.text.push_str(" FROM (VALUES ");
                for (r, row) in rows.into_iter().enumerate() {
                    self.text.push_str(if r == 0 { "(" } else { ", (" });
                    for (c, cell) in row.into_iter().enumerate() {
                        if c > 0 {
                            self.text.push_str(", ");
                        }
                        self.bind(cell);
                    }
                    self.text.push(')');
                }
                self.text.push_str("))");
            }
        }
        self
    }

    pub fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

/// SQLite allows 32,766 parameters per statement; batches stay well below.
pub fn max_rows(columns: usize) -> usize {
    (30_000 / columns.max(1)).max(1)
}

fn push_array_element(array: &mut String, cell: Cell) {
    match cell {
        Cell::Int(Some(v)) => array.push_str(&v.to_string()),
        Cell::Text(Some(s)) => {
            array.push('"');
            for ch in s.chars() {
                if ch == '"' || ch == '\\' {
                    array.push('\\');
                }
                array.push(ch);
            }
            array.push('"');
        }
        Cell::Int(None) | Cell::Text(None) => array.push_str("NULL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_statements_join_the_placeholders_already_bound() {
        let values = [Value::BigInt(Some(7)), Value::String(Some("愛知県".into()))];
        let mut sql = Sql::new(DbBackend::Sqlite);
        sql.push("SELECT 1 WHERE a = ")
            .bind(1)
            .push(" AND b IN (")
            .push_built(
                "SELECT id FROM t WHERE c = ? AND d <> 'is ? kept' AND e = ?",
                &values,
            )
            .push(")");
        assert_eq!(
            sql.text,
            "SELECT 1 WHERE a = ? AND b IN (SELECT id FROM t WHERE c = ? AND d <> 'is ? kept' AND e = ?)"
        );
        assert_eq!(sql.values.len(), 3);
        assert_eq!(sql.values[2], values[1]);

        let mut sql = Sql::new(DbBackend::Postgres);
        sql.push("SELECT 1 WHERE a = ")
            .bind(1)
            .push(" AND b IN (")
            .push_built(
                r#"SELECT "id" FROM "t" WHERE "c" = $1 AND "d" <> '$2' AND "e" = $2"#,
                &values,
            )
            .push(") AND z = ")
            .bind(2);
        assert_eq!(
            sql.text,
            r#"SELECT 1 WHERE a = $1 AND b IN (SELECT "id" FROM "t" WHERE "c" = $2 AND "d" <> '$2' AND "e" = $3) AND z = $4"#
        );
        assert_eq!(sql.values[1], values[0]);
        assert_eq!(sql.values[2], values[1]);
    }

    #[test]
    fn sqlite_rows_are_a_values_list_with_named_columns() {
        let mut sql = Sql::new(DbBackend::Sqlite);
        sql.rows(
            &[("id", Ty::BigInt), ("name", Ty::Text)],
            vec![vec![1.into(), "a".into()], vec![2.into(), Cell::Text(None)]],
        );
        assert_eq!(
            sql.text,
            "(SELECT column1 AS \"id\", column2 AS \"name\" FROM (VALUES (?, ?), (?, ?)))"
        );
        assert_eq!(sql.values.len(), 4);
    }

    #[test]
    fn id_lists_are_placeholders_on_sqlite_and_one_array_on_postgres() {
        let mut sql = Sql::new(DbBackend::Sqlite);
        sql.push("WHERE ").in_list("id", [1, 2]);
        assert_eq!(sql.text, "WHERE id IN (?, ?)");
        let mut sql = Sql::new(DbBackend::Postgres);
        sql.push("WHERE ").in_list("id", [1, 2]);
        assert_eq!(sql.text, "WHERE id = ANY($1::bigint[])");
        assert_eq!(sql.values, [Value::String(Some("{1,2}".into()))]);
        let mut sql = Sql::new(DbBackend::Postgres);
        sql.push("WHERE ").in_list("id", 1..=100);
        assert_eq!(sql.text, "WHERE id IN (SELECT UNNEST($1::bigint[]))");
    }

    #[test]
    fn postgres_rows_are_one_quoted_array_per_column() {
        let mut sql = Sql::new(DbBackend::Postgres);
        sql.push("x = ").bind(7).push(" AND ");
        sql.rows(
            &[("id", Ty::BigInt), ("name", Ty::Text)],
            vec![
                vec![1.into(), "a \"b\" \\c".into()],
                vec![Cell::Int(None), Cell::Text(None)],
            ],
        );
        assert!(
            sql.text.ends_with(
                "(SELECT * FROM UNNEST($2::bigint[], $3::text[]) AS u(\"id\", \"name\"))"
            )
        );
        assert_eq!(sql.values[1], Value::String(Some("{1,NULL}".into())));
        assert_eq!(
            sql.values[2],
            Value::String(Some("{\"a \\\"b\\\" \\\\c\",NULL}".into()))
        );
    }
}
