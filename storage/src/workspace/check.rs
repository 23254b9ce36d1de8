//! The SQL workspace's allow-list: a user's text is parsed (sqlparser), refused unless it is one
//! read-only query over the tables the workspace offers, and rewritten so that every table it
//! names is one tabiji generated.
//!
//! What runs is the rewritten syntax tree, never the user's text, so the database cannot read
//! the text differently from the check. Every table reference is resolved here, scope by scope,
//! and renamed: the workspace's tables to `tabiji_view_<name>` (defined by the caller as views
//! that hold only the fields the user may see), the query's own `WITH` tables to
//! `tabiji_cte_<n>_<name>`. No real table has such a name (the prefix is reserved), so a
//! reference the database resolves differently from this check fails instead of reading
//! something else.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;

use sea_orm::DbBackend;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, ObjectNamePart,
    Query, Select, SelectItem, SetExpr, Statement, TableAlias, TableFactor, Value, VisitMut,
    VisitorMut,
};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Functions a query may call: aggregates, window functions, arithmetic, text, dates and JSON.
/// Left out on purpose: anything that reads or changes the server's state (`set_config`,
/// `pg_*`, `nextval`, `load_extension`, `sqlite_*`), and functions that build arbitrarily large
/// values from a small input (`repeat`, `lpad`, `printf`, `randomblob`, `zeroblob`).
pub const FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "total",
    "group_concat",
    "string_agg",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "json_group_array",
    "json_group_object",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    // window functions
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // numbers
    "abs",
    "round",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "mod",
    "div",
    "power",
    "pow",
    "sqrt",
    "exp",
    "ln",
    "log",
    "log10",
    "log2",
    "sign",
    "random",
    "pi",
    "greatest",
    "least",
    "width_bucket",
    // nulls and conditions
    "coalesce",
    "nullif",
    "ifnull",
    "iif",
    // text
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "lower",
    "upper",
    "trim",
    "ltrim",
    "rtrim",
    "btrim",
    "substr",
    "substring",
    "replace",
    "instr",
    "strpos",
    "position",
    "concat",
    "concat_ws",
    "left",
    "right",
    "split_part",
    "reverse",
    "initcap",
    "translate",
    "hex",
    "unicode",
    "char",
    "chr",
    "ascii",
    "md5",
    "regexp_replace",
    "starts_with",
    "to_hex",
    // dates and times
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "date_trunc",
    "date_part",
    "date_bin",
    "age",
    "make_date",
    "make_timestamp",
    "make_interval",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtimestamp",
    "timezone",
    "justify_days",
    "isfinite",
    // JSON
    "json",
    "json_extract",
    "json_array_length",
    "json_type",
    "json_valid",
    "json_array",
    "json_object",
    "json_quote",
    "json_extract_path_text",
    "jsonb_extract_path_text",
    "jsonb_array_length",
    "json_typeof",
    "jsonb_typeof",
    "to_json",
    "to_jsonb",
    "json_build_array",
    "json_build_object",
    "jsonb_build_array",
    "jsonb_build_object",
    "typeof",
];

/// Types a value may be cast to.
const CAST_TYPES: &[&str] = &[
    "int",
    "integer",
    "bigint",
    "smallint",
    "int2",
    "int4",
    "int8",
    "numeric",
    "decimal",
    "real",
    "float",
    "float4",
    "float8",
    "double",
    "text",
    "varchar",
    "character",
    "char",
    "date",
    "timestamp",
    "timestamptz",
    "time",
    "boolean",
    "bool",
    "interval",
    "json",
    "jsonb",
];

/// The prefix of the names tabiji gives the workspace's tables inside a query.
pub const VIEW_PREFIX: &str = "tabiji_view_";
const CTE_PREFIX: &str = "tabiji_cte_";

/// A query that passed the check, rewritten, with what it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The rewritten query: every table it names is a `tabiji_view_…` or `tabiji_cte_…`.
    pub sql: String,
    /// The workspace tables it reads, by the names the user wrote.
    pub tables: BTreeSet<String>,
    /// Every word of the text, lower-cased: a superset of the columns it can name.
    pub words: BTreeSet<String>,
    /// It reads whole rows (`*`, `t.*`, a table used as a value, `NATURAL JOIN`), so every
    /// column of the tables it reads may reach its result.
    pub whole_rows: bool,
}

/// The name a workspace table has inside a checked query.
pub fn view_name(table: &str) -> String {
    format!("{VIEW_PREFIX}{table}")
}

/// A generated name as the rewritten query prints it: always quoted, so that no text can
/// escape from it, whatever it holds.
fn generated(name: String) -> Ident {
    Ident::with_quote('"', name)
}

/// Whether a set expression has `TABLE x` anywhere in it: a table reference the walker would
/// not see (it is no `FROM` item), so it is refused.
fn holds_table(set: &SetExpr) -> bool {
    match set {
        SetExpr::Table(_) => true,
        SetExpr::SetOperation { left, right, .. } => holds_table(left) || holds_table(right),
        _ => false,
    }
}

fn dialect(backend: DbBackend) -> Box<dyn Dialect> {
    match backend {
        DbBackend::Postgres => Box::new(PostgreSqlDialect {}),
        _ => Box::new(SQLiteDialect {}),
    }
}

/// Checks `sql` against the allow-list; `tables` are the workspace tables the user may read.
/// Every problem found is returned, each as one sentence.
pub fn check(
    backend: DbBackend,
    sql: &str,
    tables: &BTreeSet<String>,
) -> Result<Checked, Vec<String>> {
    let dialect = dialect(backend);
    let mut statements =
        Parser::parse_sql(dialect.as_ref(), sql).map_err(|e| vec![e.to_string()])?;
    let mut query = match statements.len() {
        0 => return Err(vec!["write one SELECT query".into()]),
        1 => match statements.pop().expect("one statement") {
            Statement::Query(query) => query,
            other => {
                return Err(vec![format!(
                    "only SELECT queries may run in the workspace, not {}",
                    statement_kind(&other)
                )]);
            }
        },
        n => {
            return Err(vec![format!(
                "write one query at a time (found {n} statements)"
            )]);
        }
    };
    let mut walker = Walker {
        tables,
        scopes: Vec::new(),
        next_cte: 0,
        used: BTreeSet::new(),
        aliases: BTreeSet::new(),
        identifiers: BTreeSet::new(),
        whole_rows: false,
        problems: Vec::new(),
    };
    let _ = query.visit(&mut walker);
    if !walker.problems.is_empty() {
        return Err(walker.problems);
    }
    let words = words(dialect.as_ref(), sql);
    let whole_rows = walker.whole_rows
        || words.contains("natural")
        || walker
            .identifiers
            .iter()
            .any(|i| walker.aliases.contains(i));
    Ok(Checked {
        sql: query.to_string(),
        tables: walker.used,
        words,
        whole_rows,
    })
}

fn words(dialect: &dyn Dialect, sql: &str) -> BTreeSet<String> {
    Tokenizer::new(dialect, sql)
        .tokenize()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_lowercase()),
            _ => None,
        })
        .collect()
}

fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let first: Vec<&str> = text.split_whitespace().take(2).collect();
    first.join(" ").to_uppercase()
}

/// One query's `WITH` tables: the user's name and the generated one.
struct Scope {
    ctes: HashMap<String, String>,
}

struct Walker<'a> {
    tables: &'a BTreeSet<String>,
    scopes: Vec<Scope>,
    next_cte: usize,
    used: BTreeSet<String>,
    /// Names rows are referred to by: aliases and table names in FROM.
    aliases: BTreeSet<String>,
    /// Bare identifiers used as values.
    identifiers: BTreeSet<String>,
    whole_rows: bool,
    problems: Vec<String>,
}

fn single_name(name: &ObjectName) -> Option<&Ident> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(ident),
        _ => None,
    }
}

impl Walker<'_> {
    fn refuse(&mut self, problem: String) {
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    fn resolve(&mut self, name: &str) -> Option<String> {
        let key = name.to_lowercase();
        for scope in self.scopes.iter().rev() {
            if let Some(generated) = scope.ctes.get(&key) {
                return Some(generated.clone());
            }
        }
        if self.tables.contains(&key) {
            self.used.insert(key.clone());
            return Some(view_name(&key));
        }
        None
    }

    fn unknown_table(&self, name: &str) -> String {
        let known: Vec<&str> = self.tables.iter().map(String::as_str).collect();
        format!(
            "there is no table {name:?} you may read; the workspace offers: {}",
            known.join(", ")
        )
    }
}

impl VisitorMut for Walker<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        if !matches!(statement, Statement::Query(_)) {
            let kind = statement_kind(statement);
            self.refuse(format!(
                "only SELECT queries may run in the workspace, not {kind}"
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if !query.locks.is_empty() {
            self.refuse("FOR UPDATE and FOR SHARE lock rows; the workspace only reads".into());
        }
        if query.for_clause.is_some()
            || query.settings.is_some()
            || query.format_clause.is_some()
            || !query.pipe_operators.is_empty()
        {
            self.refuse("the query uses a clause neither SQLite nor PostgreSQL has".into());
        }
        if holds_table(&query.body) {
            self.refuse("write SELECT * FROM t instead of TABLE t".into());
        }
        let mut scope = Scope {
            ctes: HashMap::new(),
        };
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                let name = cte.alias.name.value.to_lowercase();
                self.next_cte += 1;
                // The user's name stays out of the generated one: it is only ever printed
                // as the alias sqlparser quotes.
                let name_inside = format!("{CTE_PREFIX}{}", self.next_cte);
                cte.alias.name = generated(name_inside.clone());
                scope.ctes.insert(name, name_inside);
            }
        }
        self.scopes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        if select.into.is_some() {
            self.refuse(
                "SELECT INTO creates a table; save results as an output table instead".into(),
            );
        }
        if select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            self.whole_rows = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                json_path,
                ..
            } => {
                if args.is_some() {
                    let shown = name.to_string();
                    self.refuse(format!(
                        "{shown}(…) is a table function; the workspace reads tables only"
                    ));
                    return ControlFlow::Continue(());
                }
                if !with_hints.is_empty() || json_path.is_some() {
                    self.refuse(format!("table hints on {name} are not supported"));
                }
                let Some(ident) = single_name(name).cloned() else {
                    let shown = name.to_string();
                    self.refuse(format!(
                        "write the table's name without a schema ({shown}); the workspace offers \
                         its own tables only"
                    ));
                    return ControlFlow::Continue(());
                };
                let Some(name_inside) = self.resolve(&ident.value) else {
                    let problem = self.unknown_table(&ident.value);
                    self.refuse(problem);
                    return ControlFlow::Continue(());
                };
                *name = ObjectName(vec![ObjectNamePart::Identifier(generated(name_inside))]);
                match alias {
                    Some(alias) => {
                        self.aliases.insert(alias.name.value.to_lowercase());
                    }
                    None => {
                        self.aliases.insert(ident.value.to_lowercase());
                        *alias = Some(TableAlias {
                            explicit: true,
                            name: ident,
                            columns: Vec::new(),
                            at: None,
                        });
                    }
                }
            }
            TableFactor::Derived { alias, .. } => {
                if let Some(alias) = alias {
                    self.aliases.insert(alias.name.value.to_lowercase());
                }
            }
            TableFactor::NestedJoin { .. } => {}
            other => {
                let shown: String = other.to_string().chars().take(40).collect();
                self.refuse(format!(
                    "{shown} is not supported in FROM; read tables, subqueries and joins"
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => {
                let name = single_name(&function.name).map(|i| i.value.to_lowercase());
                let allowed = name.as_deref().is_some_and(|n| FUNCTIONS.contains(&n));
                // `f(t.*)` hands a whole row to a function; `count(*)` reads no column.
                if let FunctionArguments::List(list) = &function.args
                    && list.args.iter().any(|arg| {
                        let arg = match arg {
                            FunctionArg::Unnamed(a)
                            | FunctionArg::Named { arg: a, .. }
                            | FunctionArg::ExprNamed { arg: a, .. } => a,
                        };
                        match arg {
                            FunctionArgExpr::QualifiedWildcard(_)
                            | FunctionArgExpr::WildcardWithOptions(_) => true,
                            FunctionArgExpr::Wildcard => name.as_deref() != Some("count"),
                            FunctionArgExpr::Expr(_) => false,
                        }
                    })
                {
                    self.whole_rows = true;
                }
                if !allowed {
                    self.refuse(format!(
                        "the function {} is not allowed in the workspace (see docs/sql.md for \
                         the ones that are)",
                        function.name
                    ));
                }
            }
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => self.whole_rows = true,
            Expr::Cast { data_type, .. }
            | Expr::TypedString(sqlparser::ast::TypedString { data_type, .. }) => {
                let text = data_type.to_string().to_lowercase();
                let base = text
                    .split(|c: char| c == '(' || c.is_whitespace())
                    .next()
                    .unwrap_or_default();
                if !CAST_TYPES.contains(&base) {
                    self.refuse(format!("values cannot be cast to {text} in the workspace"));
                }
            }
            Expr::Value(value) if matches!(value.value, Value::Placeholder(_)) => {
                self.refuse(format!(
                    "{} is a parameter; write the value into the query",
                    value.value
                ));
            }
            Expr::Identifier(ident) => {
                self.identifiers.insert(ident.value.to_lowercase());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered() -> BTreeSet<String> {
        ["tourists", "purchases", "vip"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn ok(backend: DbBackend, sql: &str) -> Checked {
        check(backend, sql, &offered()).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    fn refused(backend: DbBackend, sql: &str) -> String {
        match check(backend, sql, &offered()) {
            Ok(c) => panic!("{sql} passed as {}", c.sql),
            Err(problems) => problems.join(" | "),
        }
    }

    const BOTH: [DbBackend; 2] = [DbBackend::Sqlite, DbBackend::Postgres];

    #[test]
    fn tables_are_renamed_and_keep_their_names_as_aliases() {
        for b in BOTH {
            let c = ok(
                b,
                "SELECT tourists.email, count(*) AS n FROM tourists JOIN purchases p \
                 ON p.tourist_id = tourists.id GROUP BY tourists.email",
            );
            assert!(
                c.sql.contains(r#"FROM "tabiji_view_tourists" AS tourists"#),
                "{}",
                c.sql
            );
            assert!(
                c.sql.contains(r#"JOIN "tabiji_view_purchases" p"#),
                "{}",
                c.sql
            );
            assert_eq!(c.tables, ["purchases", "tourists"].map(String::from).into());
            assert!(c.words.contains("email") && c.words.contains("tourist_id"));
            assert!(!c.whole_rows);
        }
    }

    #[test]
    fn with_tables_get_generated_names_scope_by_scope() {
        for b in BOTH {
            let c = ok(
                b,
                "WITH big AS (SELECT tourist_id FROM purchases WHERE amount > 1000) \
                 SELECT * FROM big WHERE tourist_id IN (WITH big AS (SELECT 1 AS tourist_id) SELECT tourist_id FROM big)",
            );
            assert!(c.sql.contains(r#"WITH "tabiji_cte_1" AS"#), "{}", c.sql);
            assert!(c.sql.contains(r#"FROM "tabiji_cte_1" AS big"#), "{}", c.sql);
            assert!(c.sql.contains(r#"FROM "tabiji_cte_2" AS big"#), "{}", c.sql);
            assert_eq!(c.tables, ["purchases"].map(String::from).into());
            assert!(c.whole_rows, "SELECT * reads whole rows");
        }
    }

    #[test]
    fn a_with_table_named_like_a_system_table_still_cannot_reach_it() {
        // Outside the subquery that defines it, the name is unknown: refused, not resolved by
        // the database to the real table.
        let problems = refused(
            DbBackend::Postgres,
            "SELECT * FROM (WITH sys_users AS (SELECT 1) SELECT * FROM sys_users) q, sys_users",
        );
        assert!(problems.contains("no table \"sys_users\""), "{problems}");
        let c = ok(
            DbBackend::Sqlite,
            "WITH sys_users AS (SELECT 1 AS x) SELECT x FROM sys_users",
        );
        assert!(!c.sql.contains(" sys_users AS ("), "{}", c.sql);
    }

    #[test]
    fn a_with_table_name_cannot_carry_sql_into_the_rewritten_query() {
        for (b, sql) in [
            (
                DbBackend::Sqlite,
                r#"WITH "x AS (SELECT 1) SELECT * FROM sys_users) --" AS (SELECT 1) SELECT 1"#,
            ),
            (
                DbBackend::Postgres,
                r#"WITH "x AS (SELECT 1) SELECT to_json(u) FROM sys_users u) AS tabiji_result(c1) --" AS (SELECT 1) SELECT 1"#,
            ),
        ] {
            let c = ok(b, sql);
            assert!(!c.sql.contains("sys_users"), "{}", c.sql);
            assert!(
                c.sql.starts_with(r#"WITH "tabiji_cte_1" AS ("#),
                "{}",
                c.sql
            );
        }
        let c = ok(
            DbBackend::Sqlite,
            r#"WITH "we ird" AS (SELECT 1 AS a) SELECT a FROM "we ird""#,
        );
        assert!(
            c.sql.contains(r#"FROM "tabiji_cte_1" AS "we ird""#),
            "{}",
            c.sql
        );
    }

    #[test]
    fn table_statements_are_refused_inside_set_operations_too() {
        for sql in [
            "TABLE sys_users UNION TABLE sys_users",
            "SELECT 1 UNION TABLE tourists",
            "TABLE public.sys_sessions INTERSECT TABLE public.sys_sessions",
        ] {
            let problems = refused(DbBackend::Postgres, sql);
            assert!(problems.contains("TABLE"), "{sql}: {problems}");
        }
    }

    #[test]
    fn rows_handed_whole_to_functions_count_as_whole_rows() {
        for sql in [
            "SELECT to_json(t.*) AS j FROM tourists t",
            "SELECT json_build_array(t.*) FROM tourists t",
        ] {
            assert!(ok(DbBackend::Postgres, sql).whole_rows, "{sql}");
        }
        assert!(!ok(DbBackend::Postgres, "SELECT count(*) FROM tourists").whole_rows);
        let problems = refused(DbBackend::Postgres, "SELECT regclass 'sys_users'");
        assert!(problems.contains("cannot be cast"), "{problems}");
    }

    #[test]
    fn only_reading_queries_pass() {
        for b in BOTH {
            for sql in [
                "DELETE FROM tourists",
                "UPDATE tourists SET email = ''",
                "INSERT INTO tourists (email) VALUES ('x')",
                "DROP TABLE tourists",
                "CREATE TABLE x (a INT)",
                "PRAGMA table_info(tourists)",
                "ATTACH DATABASE 'x.db' AS x",
                "SELECT 1; DELETE FROM tourists",
            ] {
                let problems = refused(b, sql);
                assert!(
                    problems.contains("only SELECT")
                        || problems.contains("one query at a time")
                        || problems.contains("Expected"),
                    "{sql}: {problems}"
                );
            }
        }
        let problems = refused(
            DbBackend::Postgres,
            "WITH gone AS (DELETE FROM tourists RETURNING id) SELECT * FROM gone",
        );
        assert!(problems.contains("only SELECT"), "{problems}");
        let problems = refused(DbBackend::Postgres, "SELECT * INTO copy FROM tourists");
        assert!(problems.contains("SELECT INTO"), "{problems}");
        let problems = refused(DbBackend::Postgres, "SELECT * FROM tourists FOR UPDATE");
        assert!(problems.contains("FOR UPDATE"), "{problems}");
    }

    #[test]
    fn system_tables_catalogs_and_schemas_are_out_of_reach() {
        for b in BOTH {
            for (sql, expect) in [
                ("SELECT * FROM sys_users", "no table \"sys_users\""),
                ("SELECT * FROM sqlite_master", "no table"),
                ("SELECT * FROM pg_shadow", "no table"),
                ("SELECT * FROM main.tourists", "without a schema"),
                ("SELECT * FROM public.tourists", "without a schema"),
                (
                    "SELECT * FROM information_schema.tables",
                    "without a schema",
                ),
                ("SELECT * FROM sqlout_vip", "no table"),
                ("SELECT * FROM tabiji_view_tourists", "no table"),
                (
                    "SELECT * FROM tourists WHERE id IN (SELECT user_id FROM sys_sessions)",
                    "no table \"sys_sessions\"",
                ),
            ] {
                let problems = refused(b, sql);
                assert!(problems.contains(expect), "{sql}: {problems}");
            }
        }
        let problems = refused(
            DbBackend::Sqlite,
            "SELECT * FROM pragma_table_info('sys_users')",
        );
        assert!(problems.contains("table function"), "{problems}");
        let problems = refused(DbBackend::Postgres, "SELECT * FROM generate_series(1, 10)");
        assert!(problems.contains("table function"), "{problems}");
    }

    #[test]
    fn functions_outside_the_list_are_refused() {
        for b in BOTH {
            for sql in [
                "SELECT load_extension('evil')",
                "SELECT set_config('default_transaction_read_only', 'off', false)",
                "SELECT pg_read_file('/etc/passwd')",
                "SELECT current_setting('data_directory')",
                "SELECT nextval('sys_users_id_seq')",
                "SELECT repeat('x', 1000000000)",
                "SELECT randomblob(1000000000)",
                "SELECT pg_catalog.lower('A')",
            ] {
                let problems = refused(b, sql);
                assert!(problems.contains("not allowed"), "{sql}: {problems}");
            }
            ok(
                b,
                "SELECT lower(email), count(*), max(amount) FROM tourists, purchases",
            );
            ok(
                b,
                "SELECT tourist_id, row_number() OVER (PARTITION BY tourist_id ORDER BY amount DESC) FROM purchases",
            );
        }
        let problems = refused(DbBackend::Postgres, "SELECT 'sys_users'::regclass");
        assert!(problems.contains("cannot be cast"), "{problems}");
        ok(
            DbBackend::Postgres,
            "SELECT amount::numeric(10,2), occurred_at::date FROM purchases",
        );
    }

    #[test]
    fn parameters_and_whole_rows_are_noticed() {
        let problems = refused(DbBackend::Postgres, "SELECT * FROM tourists WHERE id = $1");
        assert!(problems.contains("parameter"), "{problems}");
        let c = ok(DbBackend::Postgres, "SELECT t FROM tourists t");
        assert!(c.whole_rows, "a table used as a value is its whole row");
        let c = ok(
            DbBackend::Sqlite,
            "SELECT email FROM tourists NATURAL JOIN vip",
        );
        assert!(c.whole_rows);
        let c = ok(DbBackend::Sqlite, "SELECT count(*) FROM tourists");
        assert!(!c.whole_rows, "count(*) reads no column");
    }

    #[test]
    fn every_problem_is_reported_and_syntax_errors_say_where() {
        let problems = check(
            DbBackend::Sqlite,
            "SELECT load_extension('x') FROM sys_users",
            &offered(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let problems =
            check(DbBackend::Sqlite, "SELEC email FROM tourists", &offered()).unwrap_err();
        assert!(problems[0].contains("Line: 1"), "{problems:?}");
    }
}
