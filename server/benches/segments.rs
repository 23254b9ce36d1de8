//! A typical segment over N tourists (default 1,000,000) and N × 10 purchases: three field
//! conditions and one history condition ("from Aichi, female, birthday this month, spent more
//! than ¥10,000 in the last 30 days"). Times the count and the first sorted page through the
//! product's own path (`Store::count_matching`, `Store::search`: resolution, rights, SQL, the
//! access-log entry), and the same statements in DuckDB over the very rows tabiji stored
//! (exported to CSV), in the same run; prints the ratio.
//!
//! `cargo bench -p tabiji-server --bench segments` (or `scripts/bench/segments`, which installs
//! DuckDB from PyPI when missing); BENCH_TOURISTS sets N, BENCH_PURCHASES_PER_TOURIST the
//! history (default 10); DATABASE_URL=postgres://… adds PostgreSQL; BENCH_BACKENDS picks one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, Order, Query, SqliteQueryBuilder, Value as SqlValue,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tabiji_model::filter::{Cond, Filter};
use tabiji_storage::scratch::Scratch;
use tabiji_storage::search::{Compiler, SearchRequest, Sort, parse_zone};
use tabiji_storage::{Db, Principal, Store};

mod common;

use common::{load, median, now, open};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REPEAT: usize = 7;

fn typical() -> Filter {
    serde_json::from_value(json!({"all": [
        {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
        {"field": {"key": "gender", "op": "eq", "value": "female"}},
        {"field": {"key": "birth_date", "op": "month_is", "value": "this"}},
        {"history": {"store": "purchases", "period": {"last_days": 30},
                     "measure": {"sum": "amount"}, "op": "gt", "value": 10000}}
    ]}))
    .unwrap()
}

async fn timed<F: AsyncFnMut()>(mut f: F) -> Duration {
    f().await;
    let mut times = Vec::with_capacity(REPEAT);
    for _ in 0..REPEAT {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    median(times)
}

struct Figures {
    count: u64,
    count_time: Duration,
    page_time: Duration,
}

async fn measure(store: &Store) -> Figures {
    let admin = Principal::system();
    let zone = parse_zone(None).unwrap();
    let filter = typical();
    let mut count = 0;
    let count_time = timed(async || {
        count = store
            .count_matching(&admin, "tourists", &filter, zone, now())
            .await
            .unwrap();
    })
    .await;
    let request = SearchRequest {
        filter: Some(filter.clone()),
        sort: Some(Sort {
            field: "total_spend".into(),
            desc: true,
        }),
        limit: Some(50),
        ..Default::default()
    };
    let page_time = timed(async || {
        let page = store
            .search(&admin, "tourists", &request, now())
            .await
            .unwrap();
        assert_eq!(page.items.len() as u64, Ord::min(count, 50));
    })
    .await;
    // What every call costs besides its SQL: resolution, rights, the access-log entry.
    let by_id: Filter =
        serde_json::from_value(json!({"field": {"key": "id", "op": "eq", "value": 1}})).unwrap();
    let fixed = timed(async || {
        store
            .count_matching(&admin, "tourists", &by_id, zone, now())
            .await
            .unwrap();
    })
    .await;
    println!(
        "  a count by id (the fixed cost of a call): {:.1} ms",
        ms(fixed)
    );
    Figures {
        count,
        count_time,
        page_time,
    }
}

fn csv_cell(out: &mut String, value: Option<String>) {
    if let Some(v) = value {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    }
}

/// Writes `columns` of `table` as CSV, NULL as an empty unquoted cell.
async fn export(store: &Store, table: &str, columns: &[(&str, bool)], path: &Path) {
    let conn = &store.db().conn;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    writeln!(file, "{}", names.join(",")).unwrap();
    let mut after = 0i64;
    loop {
        let sql = format!(
            "SELECT id, {} FROM {table} WHERE id > {after} ORDER BY id LIMIT 200000",
            names.join(", ")
        );
        let rows = conn
            .query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .unwrap();
        let Some(last) = rows.last() else { break };
        after = last.try_get("", "id").unwrap();
        let mut out = String::new();
        for row in &rows {
            for (i, (c, numeric)) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if *numeric {
                    if let Some(n) = row.try_get::<Option<i64>>("", c).unwrap() {
                        let _ = write!(out, "{n}");
                    }
                } else {
                    csv_cell(&mut out, row.try_get::<Option<String>>("", c).unwrap());
                }
            }
            out.push('\n');
        }
        file.write_all(out.as_bytes()).unwrap();
    }
}

/// A statement as SQLite text with `?` parameters, and the parameters as SQLite stores them.
fn duckdb_statement(select: &sea_orm::sea_query::SelectStatement) -> Value {
    let (sql, values) = select.build(SqliteQueryBuilder);
    let params: Vec<Value> = values
        .0
        .iter()
        .map(|v| match v {
            SqlValue::String(Some(s)) => json!(s),
            SqlValue::BigInt(Some(n)) => json!(n),
            SqlValue::Int(Some(n)) => json!(n),
            SqlValue::BigUnsigned(Some(n)) => json!(n),
            SqlValue::Double(Some(f)) => json!(f),
            SqlValue::Bool(Some(b)) => json!(i64::from(*b)),
            SqlValue::ChronoDate(Some(d)) => json!(d.to_string()),
            SqlValue::ChronoDateTimeUtc(Some(t)) => {
                json!(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
            }
            other => panic!("no DuckDB form for {other:?}"),
        })
        .collect();
    json!({"sql": sql, "params": params})
}

fn duckdb_queries(cond: &Cond) -> Value {
    let matches = Compiler::new(DbBackend::Sqlite, &tabiji_model::schema::tourists()).cond(cond);
    let mut count = Query::select();
    count
        .expr(Expr::cust("COUNT(*)"))
        .from(Alias::new("tourists"))
        .and_where(matches.clone());
    let mut page = Query::select();
    page.columns(
        [
            "id",
            "email",
            "prefecture",
            "gender",
            "birth_date",
            "total_spend",
        ]
        .map(Alias::new),
    )
    .from(Alias::new("tourists"))
    .and_where(matches)
    .order_by_expr(Expr::col(Alias::new("total_spend")).is_null(), Order::Asc)
    .order_by(Alias::new("total_spend"), Order::Desc)
    .order_by(Alias::new("id"), Order::Asc)
    .limit(51);
    json!({"count": duckdb_statement(&count), "page": duckdb_statement(&page)})
}

/// Runs the DuckDB reference; its figures in milliseconds (count, first page) and its count.
fn duckdb(dir: &Path, queries: &Value) -> Option<(f64, f64, u64)> {
    std::fs::write(dir.join("queries.json"), queries.to_string()).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench/duckdb_reference.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(REPEAT.to_string())
        .output()
        .expect("python3 runs");
    if !out.status.success() {
        println!(
            "  DuckDB reference failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some((
        result["count_ms"].as_f64()?,
        result["page_ms"].as_f64()?,
        result["count"].as_u64()?,
    ))
}

/// A database for one run, or one kept between runs.
enum Kept {
    Scratch(Scratch),
    Url(String),
}

impl Kept {
    fn url(&self) -> &str {
        match self {
            Kept::Scratch(s) => &s.url,
            Kept::Url(u) => u,
        }
    }

    fn sqlite(tourists: usize, per_tourist: u64) -> Kept {
        let path =
            std::env::temp_dir().join(format!("tabiji-bench-segments-{tourists}-{per_tourist}.db"));
        Kept::Url(format!("sqlite://{}", path.display()))
    }

    async fn postgres(admin_url: &str, tourists: usize, per_tourist: u64) -> Kept {
        let name = format!("tabiji_bench_segments_{tourists}_{per_tourist}");
        let admin = Db::connect(admin_url).await.expect("PostgreSQL");
        let exists = admin
            .conn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT 1 AS one FROM pg_database WHERE datname = '{name}'"),
            ))
            .await
            .unwrap()
            .is_some();
        if !exists {
            admin
                .conn
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        }
        let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        Kept::Url(format!("{server}/{name}{query}"))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let tourists: usize = std::env::var("BENCH_TOURISTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_tourist: u64 = std::env::var("BENCH_PURCHASES_PER_TOURIST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let only = std::env::var("BENCH_BACKENDS").unwrap_or_default();
    // BENCH_KEEP=1 keeps the loaded databases (a SQLite file in the temp folder, a PostgreSQL
    // database next to DATABASE_URL's) and reuses them in later runs: loading is the slow part.
    let keep = std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1");
    let mut backends = Vec::new();
    if only.is_empty() || only.contains("sqlite") {
        backends.push(if keep {
            Kept::sqlite(tourists, per_tourist)
        } else {
            Kept::Scratch(Scratch::sqlite())
        });
    }
    if let Ok(url) = std::env::var("DATABASE_URL")
        && url.starts_with("postgres")
        && (only.is_empty() || only.contains("postgres"))
    {
        backends.push(if keep {
            Kept::postgres(&url, tourists, per_tourist).await
        } else {
            Kept::Scratch(
                Scratch::postgres(&url)
                    .await
                    .expect("PostgreSQL scratch database"),
            )
        });
    }
    let dir = std::env::temp_dir().join(format!("tabiji-bench-segments-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut reference = None;
    let mut rows = Vec::new();
    for scratch in backends {
        let store = open(scratch.url()).await;
        let backend = format!("{:?}", store.db().backend());
        println!("{backend}:");
        let loaded = store.count(&Principal::system(), "tourists").await.unwrap();
        if loaded == 0 {
            load(&store, tourists, per_tourist).await;
        } else {
            println!("  reusing the {loaded} tourists kept from an earlier run");
        }
        let figures = measure(&store).await;
        println!(
            "  typical segment: {} tourists; count {:.1} ms, first sorted page {:.1} ms",
            figures.count,
            ms(figures.count_time),
            ms(figures.page_time)
        );
        if reference.is_none() && store.db().backend() == DbBackend::Sqlite {
            export(
                &store,
                "tourists",
                &[
                    ("id", true),
                    ("email", false),
                    ("prefecture", false),
                    ("gender", false),
                    ("birth_date", false),
                    ("total_spend", true),
                ],
                &dir.join("tourists.csv"),
            )
            .await;
            export(
                &store,
                "purchases",
                &[
                    ("tourist_id", true),
                    ("occurred_at", false),
                    ("amount", true),
                ],
                &dir.join("purchases.csv"),
            )
            .await;
            let resolved = store
                .resolve_filter(
                    None,
                    "tourists",
                    &typical(),
                    parse_zone(None).unwrap(),
                    now(),
                )
                .await
                .unwrap();
            reference = duckdb(&dir, &duckdb_queries(&resolved.cond));
            if let Some((count_ms, page_ms, count)) = reference {
                assert_eq!(count, figures.count, "DuckDB counts the same tourists");
                println!(
                    "  DuckDB over the same rows: count {count_ms:.1} ms, first page {page_ms:.1} ms"
                );
            }
        }
        rows.push((backend, figures));
        store.db().conn.clone().close().await.ok();
        if let Kept::Scratch(scratch) = scratch {
            scratch.remove().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\n| backend | count | target ≤ 300 ms | first page | target ≤ 100 ms | count ÷ DuckDB | page ÷ DuckDB (target ≤ 5×) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (backend, f) in rows {
        let (count_ratio, page_ratio) = match reference {
            Some((c, p, _)) => (
                format!("{:.2}×", ms(f.count_time) / c),
                format!("{:.2}×", ms(f.page_time) / p),
            ),
            None => ("–".into(), "–".into()),
        };
        println!(
            "| {backend} | {:.1} ms | {} | {:.1} ms | {} | {count_ratio} | {page_ratio} |",
            ms(f.count_time),
            if f.count_time <= Duration::from_millis(300) {
                "met"
            } else {
                "not met"
            },
            ms(f.page_time),
            if f.page_time <= Duration::from_millis(100) {
                "met"
            } else {
                "not met"
            },
        );
    }
}
