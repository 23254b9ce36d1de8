//! The workspace on SQLite and (when `DATABASE_URL` names one) PostgreSQL: field rights inside
//! SQL, the database's own refusal to write, time limits, output tables and their rights.

use sea_orm::DbBackend;
use serde_json::json;
use tabiji_model::filter::Filter;
use tabiji_model::rights::{EntityRights, FieldAccess, Rights};

use super::*;
use crate::migration;
use crate::scratch::Scratch;

fn now() -> DateTime<Utc> {
    "2026-11-28T03:00:00Z".parse().unwrap()
}

fn clerk() -> Principal {
    let mut tourists = EntityRights::with_ops(&[Op::View]);
    tourists.fields.insert("phone".into(), FieldAccess::None);
    Principal {
        user_id: Some(2),
        login: "clerk".into(),
        rights: Rights {
            admin: false,
            entities: [
                ("tourists".to_string(), tourists),
                (
                    SQL.to_string(),
                    EntityRights::with_ops(&[Op::View, Op::Create, Op::Edit, Op::Delete]),
                ),
            ]
            .into(),
        },
    }
}

async fn seeded(scratch: &Scratch) -> Store {
    let db = crate::Db::connect(&scratch.url).await.unwrap();
    migration::run(&db).await.unwrap();
    let store = Store::open(db).await.unwrap();
    let who = Principal::system();
    let tourists = (0..30)
        .map(|n| {
            json!({
                "email": format!("t{n}@example.jp"),
                "phone": format!("090-0000-{n:04}"),
                "prefecture": if n % 3 == 0 { "愛知県" } else { "東京都" },
            })
        })
        .collect();
    let created = store.bulk_create(&who, "tourists", tourists).await.unwrap();
    let purchases = created
        .iter()
        .map(|t| {
            json!({"tourist_id": t.id, "occurred_at": "2026-11-01T10:00:00Z", "amount": 1000 + t.id})
        })
        .collect();
    store
        .bulk_create(&who, "purchases", purchases)
        .await
        .unwrap();
    store
}

fn ask(sql: &str) -> QueryRequest {
    QueryRequest {
        sql: sql.into(),
        limit: None,
        timeout_seconds: None,
    }
}

fn codes(e: StorageError) -> Vec<&'static str> {
    match e {
        StorageError::Invalid(errors) | StorageError::Conflict(errors) => {
            errors.iter().map(|e| e.code).collect()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn message(e: &StorageError) -> String {
    e.to_string()
}

#[tokio::test]
async fn queries_see_only_what_the_user_may_see() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        let admin = Principal::system();
        let answer = query(
            &store,
            &admin,
            &ask(
                "SELECT t.prefecture, count(*) AS tourists, sum(p.amount) AS spent \
                 FROM tourists t JOIN purchases p ON p.tourist_id = t.id \
                 GROUP BY t.prefecture ORDER BY tourists DESC",
            ),
        )
        .await
        .unwrap();
        let names: Vec<&str> = answer.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prefecture", "tourists", "spent"]);
        assert_eq!(answer.columns[1].kind, Kind::Integer);
        assert_eq!(answer.rows.len(), 2);
        assert_eq!(answer.rows[0][0], json!("東京都"));
        assert_eq!(answer.rows[0][1], json!(20));
        assert!(!answer.truncated);

        let clerk = clerk();
        let all = query(&store, &clerk, &ask("SELECT * FROM tourists ORDER BY id"))
            .await
            .unwrap();
        assert!(all.columns.iter().any(|c| c.name == "email"));
        assert!(
            !all.columns.iter().any(|c| c.name == "phone"),
            "{:?}",
            all.columns
        );
        assert!(!all.columns.iter().any(|c| c.name == "password_hash"));
        let e = query(&store, &clerk, &ask("SELECT phone FROM tourists"))
            .await
            .unwrap_err();
        assert_eq!(codes(e), ["sql_failed"]);
        let e = query(&store, &clerk, &ask("SELECT amount FROM purchases"))
            .await
            .unwrap_err();
        assert_eq!(codes(e), ["sql_not_allowed"], "no right to purchases");
        let e = query(&store, &clerk, &ask("SELECT login FROM sys_users"))
            .await
            .unwrap_err();
        assert!(message(&e).contains("no table \"sys_users\""), "{e}");

        let capped = query(
            &store,
            &admin,
            &QueryRequest {
                sql: "SELECT id FROM tourists".into(),
                limit: Some(7),
                timeout_seconds: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(capped.rows.len(), 7);
        assert!(capped.truncated);

        let nobody = Principal {
            user_id: Some(3),
            login: "nobody".into(),
            rights: Rights {
                admin: false,
                entities: [("tourists".to_string(), EntityRights::with_ops(&[Op::View]))].into(),
            },
        };
        let e = query(&store, &nobody, &ask("SELECT 1")).await.unwrap_err();
        assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");
        scratch.remove().await;
    }
}

#[tokio::test]
async fn the_sandbox_connection_itself_refuses_to_write() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        // Straight to the sandbox, past the allow-list: the database must refuse on its own.
        match store.db().sandbox().await.unwrap() {
            Sandbox::Sqlite(pool) => {
                for sql in [
                    "DELETE FROM tourists",
                    "CREATE TABLE evil (a INTEGER)",
                    "PRAGMA query_only = 0",
                ] {
                    let mut conn = pool.acquire().await.unwrap();
                    let _ = sqlx::query(sql).execute(&mut *conn).await;
                    let e = sqlx::query("DELETE FROM tourists")
                        .execute(&mut *conn)
                        .await
                        .unwrap_err();
                    assert!(
                        e.to_string().contains("readonly") || e.to_string().contains("read"),
                        "{sql}: {e}"
                    );
                }
            }
            Sandbox::Postgres(pool) => {
                let mut conn = pool.acquire().await.unwrap();
                let e = sqlx::query("DELETE FROM tourists")
                    .execute(&mut *conn)
                    .await
                    .unwrap_err();
                assert!(e.to_string().contains("read-only"), "{e}");
                let mut txn = conn.begin_with("BEGIN READ ONLY").await.unwrap();
                sqlx::query("SELECT set_config('default_transaction_read_only', 'off', false)")
                    .execute(&mut *txn)
                    .await
                    .unwrap();
                let e = sqlx::query("DELETE FROM tourists")
                    .execute(&mut *txn)
                    .await
                    .unwrap_err();
                assert!(e.to_string().contains("read-only"), "{e}");
            }
        }
        let row = store
            .db()
            .conn
            .query_one_raw(sea_orm::Statement::from_string(
                store.db().backend(),
                "SELECT count(*) AS n FROM tourists",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 30);
        scratch.remove().await;
    }
}

#[tokio::test]
async fn a_query_past_its_time_is_stopped_and_the_next_one_runs() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        let admin = Principal::system();
        let started = Instant::now();
        let e = query(
            &store,
            &admin,
            &QueryRequest {
                sql: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                      SELECT count(*) FROM n"
                    .into(),
                limit: None,
                timeout_seconds: Some(1),
            },
        )
        .await
        .unwrap_err();
        assert_eq!(codes(e), ["sql_timeout"]);
        assert!(started.elapsed() < Duration::from_secs(20));
        // Both sandbox connections still work.
        for _ in 0..3 {
            let answer = query(&store, &admin, &ask("SELECT count(*) AS n FROM tourists"))
                .await
                .unwrap();
            assert_eq!(answer.rows, vec![vec![json!(30)]]);
        }
        scratch.remove().await;
    }
}

fn save_request(name: &str, sql: &str, mode: SaveMode) -> SaveRequest {
    SaveRequest {
        name: name.into(),
        sql: sql.into(),
        mode,
        description: None,
        timeout_seconds: None,
    }
}

async fn count_in(store: &Store, who: &Principal, table: &str) -> Json {
    query(store, who, &ask(&format!("SELECT count(*) FROM {table}")))
        .await
        .unwrap()
        .rows[0][0]
        .clone()
}

#[tokio::test]
async fn output_tables_are_created_overwritten_appended_copied_and_deleted() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        let admin = Principal::system();
        let aichi = "SELECT id AS tourist_id, email FROM tourists WHERE prefecture = '愛知県'";
        let table = save(
            &store,
            &admin,
            &save_request("aichi", aichi, SaveMode::Create),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(table.row_count, 10);
        assert_eq!(
            table.columns,
            [
                Column {
                    name: "tourist_id".into(),
                    kind: Kind::Integer
                },
                Column {
                    name: "email".into(),
                    kind: Kind::Text
                }
            ]
        );
        assert_eq!(table.reads, ["tourists.email", "tourists.prefecture"]);
        assert_eq!(count_in(&store, &admin, "aichi").await, json!(10));

        let e = save(
            &store,
            &admin,
            &save_request("aichi", aichi, SaveMode::Create),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(codes(e), ["duplicate_name"]);

        let appended = save(
            &store,
            &admin,
            &save_request(
                "aichi",
                "SELECT id, email FROM tourists WHERE id <= 2",
                SaveMode::Append,
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(codes(appended), ["columns_differ"]);
        let appended = save(
            &store,
            &admin,
            &save_request(
                "aichi",
                "SELECT id AS tourist_id, email FROM tourists WHERE id <= 2",
                SaveMode::Append,
            ),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(appended.row_count, 12);
        assert_eq!(count_in(&store, &admin, "aichi").await, json!(12));

        // A failing overwrite leaves the table as it was.
        let e = save(
            &store,
            &admin,
            &save_request(
                "aichi",
                "SELECT id AS tourist_id, no_such_column FROM tourists",
                SaveMode::Overwrite,
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(codes(e), ["sql_failed"]);
        // Values of several types in one column: text on SQLite, refused by PostgreSQL.
        let mixed = save(
            &store,
            &admin,
            &save_request(
                "mixed",
                "SELECT CASE WHEN id < 5 THEN id ELSE email END AS mixed FROM tourists",
                SaveMode::Create,
            ),
            now(),
        )
        .await;
        match store.db().backend() {
            DbBackend::Postgres => assert_eq!(codes(mixed.unwrap_err()), ["sql_failed"]),
            _ => {
                let mixed = mixed.unwrap();
                assert_eq!(mixed.columns[0].kind, Kind::Text);
                delete(&store, &admin, "mixed").await.unwrap();
            }
        }
        assert_eq!(count_in(&store, &admin, "aichi").await, json!(12));

        let e = save(
            &store,
            &admin,
            &save_request(
                "counts",
                "SELECT prefecture AS \"the prefecture\" FROM tourists",
                SaveMode::Create,
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(codes(e), ["invalid_column_name"]);

        let overwritten = save(
            &store,
            &admin,
            &save_request(
                "aichi",
                "SELECT id AS tourist_id, amount * 1.5 AS score FROM purchases WHERE amount > 1020",
                SaveMode::Overwrite,
            ),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(overwritten.row_count, 10);
        assert_eq!(overwritten.columns[1].kind, Kind::Real);
        // `tourist_id` is only an alias here, but a purchases field too: reads over-approximate.
        assert_eq!(
            overwritten.reads,
            ["purchases.amount", "purchases.tourist_id"]
        );

        let copied = copy(&store, &admin, "aichi", "aichi_copy", now())
            .await
            .unwrap();
        assert_eq!(copied.row_count, 10);
        assert_eq!(count_in(&store, &admin, "aichi_copy").await, json!(10));
        let e = copy(&store, &admin, "aichi", "tourists", now())
            .await
            .unwrap_err();
        assert_eq!(codes(e), ["name_taken"]);

        let joined = query(
            &store,
            &admin,
            &ask("SELECT count(*) FROM aichi a JOIN aichi_copy c ON a.tourist_id = c.tourist_id"),
        )
        .await
        .unwrap();
        assert_eq!(joined.rows[0][0], json!(10));

        delete(&store, &admin, "aichi_copy").await.unwrap();
        let names: Vec<String> = list(&store, &admin)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["aichi"]);
        let e = query(&store, &admin, &ask("SELECT * FROM aichi_copy"))
            .await
            .unwrap_err();
        assert_eq!(codes(e), ["sql_not_allowed"]);
        scratch.remove().await;
    }
}

#[tokio::test]
async fn an_output_table_is_read_only_by_those_who_may_see_what_it_was_made_from() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        let admin = Principal::system();
        let clerk = clerk();
        save(
            &store,
            &admin,
            &save_request("phones", "SELECT id, phone FROM tourists", SaveMode::Create),
            now(),
        )
        .await
        .unwrap();
        save(
            &store,
            &admin,
            &save_request(
                "aichi",
                "SELECT id FROM tourists WHERE prefecture = '愛知県'",
                SaveMode::Create,
            ),
            now(),
        )
        .await
        .unwrap();
        let visible: Vec<String> = list(&store, &clerk)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(visible, ["aichi"]);
        assert_eq!(count_in(&store, &clerk, "aichi").await, json!(10));
        let e = get(&store, &clerk, "phones").await.unwrap_err();
        assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");
        let e = query(&store, &clerk, &ask("SELECT * FROM phones"))
            .await
            .unwrap_err();
        assert_eq!(codes(e), ["sql_not_allowed"]);
        let e = copy(&store, &clerk, "phones", "mine", now())
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");

        // What the clerk makes from a table carries that table's sources along.
        let derived = save(
            &store,
            &clerk,
            &save_request("derived", "SELECT * FROM aichi", SaveMode::Create),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(derived.reads, ["tourists.prefecture"]);
        assert_eq!(derived.created_by, "clerk");
        let catalog = catalog(&store, &clerk).await.unwrap();
        let tourists = catalog.iter().find(|t| t.name == "tourists").unwrap();
        assert!(!tourists.columns.contains(&"phone".to_string()));
        assert!(
            catalog
                .iter()
                .any(|t| t.name == "derived" && t.kind == "output")
        );
        assert!(!catalog.iter().any(|t| t.name == "phones"));
        scratch.remove().await;
    }
}

/// Record rights on a timestamp narrow SQL as they narrow a search: the value is compared as
/// the database stores it, not as text of another form.
#[tokio::test]
async fn record_rights_on_a_time_narrow_the_rows_sql_reads() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        let since = |at: &str| {
            let mut purchases = EntityRights::with_ops(&[Op::View]);
            purchases.records = Some(
                serde_json::from_value::<Filter>(
                    json!({"field": {"key": "occurred_at", "op": "gte", "value": at}}),
                )
                .unwrap(),
            );
            let mut who = clerk();
            who.rights.entities.insert("purchases".into(), purchases);
            who
        };
        let count = |who: Principal| {
            let store = &store;
            async move {
                query(store, &who, &ask("SELECT count(*) FROM purchases"))
                    .await
                    .unwrap()
                    .rows[0][0]
                    .clone()
            }
        };
        // Every purchase is at 10:00 on 1 November.
        assert_eq!(count(since("2026-11-01T09:59:59Z")).await, json!(30));
        assert_eq!(count(since("2026-11-01T10:00:01Z")).await, json!(0));
        assert_eq!(count(since("2026-11-01T19:00:00+09:00")).await, json!(30));
        scratch.remove().await;
    }
}

#[test]
fn a_later_row_of_another_type_is_refused_with_its_row_and_column() {
    let column = Column {
        name: "score".into(),
        kind: Kind::Integer,
    };
    assert_eq!(cell(json!(7), &column, 1).unwrap(), Value::BigInt(Some(7)));
    assert_eq!(cell(Json::Null, &column, 2).unwrap(), Value::BigInt(None));
    let e = cell(json!("seven"), &column, 1_001).unwrap_err();
    assert_eq!(codes(e), ["mixed_column_types"]);
    let e = cell(json!(7.5), &column, 1_002).unwrap_err();
    assert!(message(&e).contains("row 1002, column score"), "{e}");
    let text = Column {
        name: "t".into(),
        kind: Kind::Text,
    };
    assert_eq!(
        cell(json!([1, 2]), &text, 1).unwrap(),
        Value::String(Some("[1,2]".into()))
    );
    assert_eq!(kind_of([json!(1), json!(2.5)].iter()), Some(Kind::Real));
    assert_eq!(kind_of([json!(1), json!("a")].iter()), Some(Kind::Text));
    assert_eq!(kind_of([Json::Null].iter()), None);
}

#[test]
fn generated_names_are_turned_back_in_messages() {
    assert_eq!(
        readable_names("no such column: tabiji_view_tourists.phone in tabiji_cte_12"),
        "no such column: tourists.phone in a WITH table"
    );
}

#[tokio::test]
async fn an_output_table_is_a_list_filters_and_segments_select_by() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        let admin = Principal::system();
        save(
            &store,
            &admin,
            &save_request(
                "big_spenders",
                "SELECT tourist_id, sum(amount) AS spent FROM purchases GROUP BY tourist_id \
                 HAVING sum(amount) >= 1020",
                SaveMode::Create,
            ),
            now(),
        )
        .await
        .unwrap();
        let zone = crate::search::parse_zone(None).unwrap();
        let filter: Filter = serde_json::from_value(json!({"all": [
            {"output_table": {"name": "big_spenders", "column": "tourist_id"}},
            {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}
        ]}))
        .unwrap();
        let count = store
            .count_matching(&admin, "tourists", &filter, zone, now())
            .await
            .unwrap();
        // Ids 20–30 spent 1,020 or more; of those, 22, 25 and 28 are from Aichi.
        assert_eq!(count, 3);

        let e = store
            .count_matching(
                &admin,
                "tourists",
                &serde_json::from_value(
                    json!({"output_table": {"name": "big_spenders", "column": "spent_typo"}}),
                )
                .unwrap(),
                zone,
                now(),
            )
            .await
            .unwrap_err();
        assert_eq!(codes(e), ["unknown_column"]);

        // A clerk without the workspace right may not use the list.
        let mut no_sql = clerk();
        no_sql.rights.entities.remove(SQL);
        let e = store
            .count_matching(&no_sql, "tourists", &filter, zone, now())
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");

        crate::segments::create(
            &store,
            &admin,
            &crate::segments::NewSegment {
                key: "aichi_big".into(),
                name: "Big spenders from Aichi".into(),
                entity: "tourists".into(),
                filter,
                description: None,
            },
            now(),
        )
        .await
        .unwrap();
        let e = delete(&store, &admin, "big_spenders").await.unwrap_err();
        assert_eq!(codes(e), ["output_table_in_use"]);
        scratch.remove().await;
    }
}

#[tokio::test]
async fn a_query_that_builds_a_huge_value_is_stopped_on_sqlite() {
    let scratch = Scratch::sqlite();
    let store = seeded(&scratch).await;
    let e = query(
        &store,
        &Principal::system(),
        &ask("WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 500000000) \
              SELECT max(length(s)) FROM r"),
    )
    .await
    .unwrap_err();
    assert!(message(&e).contains("too big"), "{e}");
    scratch.remove().await;
}

#[tokio::test]
async fn sql_smuggled_in_a_with_table_name_stays_a_name() {
    for scratch in Scratch::all_backends().await {
        let store = seeded(&scratch).await;
        let answer = query(
            &store,
            &clerk(),
            &ask(r#"WITH "x AS (SELECT 1) SELECT login FROM sys_users) --" AS (SELECT 1 AS one) SELECT one FROM "x AS (SELECT 1) SELECT login FROM sys_users) --""#),
        )
        .await
        .unwrap();
        assert_eq!(answer.rows, vec![vec![json!(1)]]);
        let e = query(
            &store,
            &clerk(),
            &ask("SELECT 1 AS a UNION TABLE sys_users"),
        )
        .await
        .unwrap_err();
        assert_eq!(codes(e), ["sql_not_allowed"]);
        scratch.remove().await;
    }
}
