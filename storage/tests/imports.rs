//! Import rows written as records (`Store::import_rows`), on SQLite and, when DATABASE_URL is
//! set, PostgreSQL: how rows with one key merge, how a refused record takes every row merged
//! into it along, and how history and ledger rows are kept once.

use serde_json::{Map, Value, json};
use tabiji_model::import::ImportFlow;
use tabiji_storage::records::{ImportRow, Tally};
use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Db, Principal, Store, migration};

macro_rules! on_every_backend {
    ($check:ident) => {
        for scratch in Scratch::all_backends().await {
            let db = Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            let store = Store::open(db.clone()).await.unwrap();
            $check(&store).await;
            db.conn.close().await.unwrap();
            scratch.remove().await;
        }
    };
}

fn flow(json: Value) -> ImportFlow {
    serde_json::from_value(json).unwrap()
}

/// Rows from (line, field → cell) pairs; `delete` and `link` left empty.
fn rows(items: &[(u64, Value)]) -> Vec<ImportRow> {
    items
        .iter()
        .map(|(line, values)| ImportRow {
            line: *line,
            values: values.as_object().cloned().unwrap_or_else(Map::new),
            delete: false,
            link: values
                .get("_link")
                .and_then(Value::as_str)
                .map(str::to_string),
            raw: format!("line {line}"),
        })
        .map(|mut row| {
            row.values.remove("_link");
            row
        })
        .collect()
}

fn lines_and_reasons(tally: &Tally) -> Vec<(u64, String)> {
    tally
        .rejected
        .iter()
        .map(|r| (r.line, r.reason.clone()))
        .collect()
}

async fn merging_and_refusing(store: &Store) {
    let system = Principal::system();
    let member_no = serde_json::from_value(
        json!({"key": "member_no", "label": {"ja": "会員番号", "en": "Member no"},
        "type": "text", "unique": true}),
    )
    .unwrap();
    store
        .add_custom_field(&system, "tourists", member_no)
        .await
        .unwrap();
    store
        .bulk_create(
            &system,
            "tourists",
            vec![json!({"email": "b@example.jp", "member_no": "M1"})],
        )
        .await
        .unwrap();
    let users = flow(json!({
        "format": 1, "name": "users", "entity": "tourists", "empty_cells": "clear",
        "columns": [
            {"column": "e", "field": "email"}, {"column": "f", "field": "family_name"},
            {"column": "g", "field": "given_name"}, {"column": "m", "field": "member_no"}
        ],
        "action": {"type": "upsert", "key": "email"}
    }));
    let tally = store
        .import_rows(
            &system,
            &users,
            rows(&[
                (
                    2,
                    json!({"email": "a@example.jp", "family_name": "山田", "given_name": "太郎"}),
                ),
                (
                    3,
                    json!({"email": "a@example.jp", "family_name": null, "given_name": "次郎"}),
                ),
                (4, json!({"email": "c@example.jp", "member_no": "M2"})),
                (5, json!({"email": "c@example.jp", "member_no": "M1"})),
                (6, json!({"email": "d@example.jp", "member_no": "M3"})),
                (7, json!({"email": "e@example.jp", "member_no": "M3"})),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        (tally.created, tally.merged, tally.updated, tally.unchanged),
        (2, 1, 0, 0),
        "{tally:?}"
    );
    let reasons = lines_and_reasons(&tally);
    assert_eq!(
        reasons.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        vec![4, 5, 7],
        "{reasons:?}"
    );
    assert!(
        reasons[0].1.contains("M1 belongs to tourists"),
        "{reasons:?}"
    );
    assert_eq!(reasons[2].1, "member_no: M3 is also given on line 6");
    let found = store
        .list(&system, "tourists", &Default::default())
        .await
        .unwrap()
        .items;
    let a = found.iter().find(|t| t["email"] == "a@example.jp").unwrap();
    assert_eq!(
        (&a["family_name"], &a["given_name"]),
        (&json!("山田"), &json!("次郎"))
    );
    assert!(!found.iter().any(|t| t["email"] == "c@example.jp"));

    // Updates: a cleared cell clears its field; with kept cells, a field not given stays.
    let tally = store
        .import_rows(
            &system,
            &users,
            rows(&[(
                9,
                json!({"email": "a@example.jp", "family_name": null, "given_name": "三郎"}),
            )]),
        )
        .await
        .unwrap();
    assert_eq!(tally.updated, 1, "{tally:?}");
    let mut keeping = users.clone();
    keeping.empty_cells = tabiji_model::import::EmptyCells::Keep;
    let tally = store
        .import_rows(
            &system,
            &keeping,
            rows(&[
                (2, json!({"email": "d@example.jp", "given_name": "四郎"})),
                (3, json!({"email": "b@example.jp", "family_name": "林"})),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(tally.updated, 2, "{tally:?}");
    let found = store
        .list(&system, "tourists", &Default::default())
        .await
        .unwrap()
        .items;
    let get = |email: &str| found.iter().find(|t| t["email"] == email).unwrap().clone();
    assert_eq!(
        (
            get("a@example.jp")["family_name"].clone(),
            get("a@example.jp")["given_name"].clone()
        ),
        (Value::Null, json!("三郎"))
    );
    assert_eq!(
        (
            get("d@example.jp")["member_no"].clone(),
            get("d@example.jp")["given_name"].clone()
        ),
        (json!("M3"), json!("四郎"))
    );
    assert_eq!(
        (
            get("b@example.jp")["member_no"].clone(),
            get("b@example.jp")["family_name"].clone()
        ),
        (json!("M1"), json!("林"))
    );
}

async fn history_and_ledger_rows_are_kept_once(store: &Store) {
    let system = Principal::system();
    store
        .bulk_create(&system, "tourists", vec![json!({"email": "p@example.jp"})])
        .await
        .unwrap();
    let purchases = flow(json!({
        "format": 1, "name": "tickets", "entity": "purchases",
        "columns": [
            {"column": "t", "field": "transaction_id"}, {"column": "a", "field": "amount"},
            {"column": "o", "field": "occurred_at"}
        ],
        "constants": {"source_system": "eticket"},
        "action": {"type": "append", "unique_by": ["source_system", "transaction_id"]},
        "link": {"field": "tourist_id", "by": "email", "column": "m"}
    }));
    let batch = || {
        rows(&[
            (
                2,
                json!({"transaction_id": "T1", "amount": "1200", "occurred_at": "2026/11/1 10:00", "_link": "p@example.jp"}),
            ),
            (
                3,
                json!({"transaction_id": "T1", "amount": "1200", "occurred_at": "2026/11/1 10:00", "_link": "p@example.jp"}),
            ),
            (
                4,
                json!({"amount": "500", "occurred_at": "2026/11/1 11:00", "_link": "P@EXAMPLE.JP"}),
            ),
            (
                5,
                json!({"transaction_id": "T2", "amount": "800", "occurred_at": "2026/11/2 09:00", "_link": "p@example.jp"}),
            ),
        ])
    };
    let first = store
        .import_rows(&system, &purchases, batch())
        .await
        .unwrap();
    assert_eq!((first.created, first.unchanged), (2, 1), "{first:?}");
    assert_eq!(
        lines_and_reasons(&first),
        vec![(
            4,
            "transaction_id: is empty, so the row cannot be told from rows already stored"
                .to_string()
        )]
    );
    let again = store
        .import_rows(&system, &purchases, batch())
        .await
        .unwrap();
    assert_eq!(
        (again.created, again.unchanged, again.rejected.len()),
        (0, 3, 1)
    );

    let points = flow(json!({
        "format": 1, "name": "points", "entity": "point_ledger",
        "columns": [
            {"column": "t", "field": "transaction_id"}, {"column": "p", "field": "points"},
            {"column": "o", "field": "occurred_at"}, {"column": "k", "field": "kind"}
        ],
        "constants": {"source_system": "ota"},
        "action": {"type": "append"},
        "link": {"field": "tourist_id", "by": "email", "column": "m"}
    }));
    let grants = rows(&[
        (
            2,
            json!({"transaction_id": "G1", "points": "100", "kind": "grant", "occurred_at": "2026/11/1", "_link": "p@example.jp"}),
        ),
        (
            3,
            json!({"transaction_id": "G1", "points": "100", "kind": "grant", "occurred_at": "2026/11/1", "_link": "p@example.jp"}),
        ),
        (
            4,
            json!({"transaction_id": "U1", "points": "500", "kind": "use", "occurred_at": "2026/11/2", "_link": "p@example.jp"}),
        ),
        (
            5,
            json!({"transaction_id": "U2", "points": "60", "kind": "use", "occurred_at": "2026/11/2", "_link": "p@example.jp"}),
        ),
    ]);
    let tally = store.import_rows(&system, &points, grants).await.unwrap();
    assert_eq!((tally.created, tally.unchanged), (2, 1), "{tally:?}");
    let reasons = lines_and_reasons(&tally);
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].0, 4);
    assert!(
        reasons[0].1.contains("has 100 points, fewer than the 500"),
        "{reasons:?}"
    );
    let tourist = &store
        .list(&system, "tourists", &Default::default())
        .await
        .unwrap()
        .items[0];
    assert_eq!(
        tourist["points_balance"], 40,
        "the refused use left no trace"
    );
}

/// A run its process left `running` (a crash) is marked failed once it is an hour old, and
/// a run under way is left alone.
async fn abandoned_runs_fail(store: &Store) {
    use tabiji_storage::imports::{self, File, Status};
    let system = Principal::system();
    let users = flow(json!({
        "format": 1, "name": "users", "entity": "tourists",
        "columns": [{"column": "mail", "field": "email"}],
        "action": {"type": "upsert", "key": "email"}
    }));
    let now: chrono::DateTime<chrono::Utc> = "2026-11-29T03:00:00Z".parse().unwrap();
    let file = File {
        name: "users.csv",
        sha256: String::new(),
        bytes: 0,
    };
    let crashed = imports::start(
        store,
        &system,
        "users",
        &users,
        &file,
        now - chrono::TimeDelta::hours(2),
    )
    .await
    .unwrap();
    let running = imports::start(
        store,
        &system,
        "users",
        &users,
        &file,
        now - chrono::TimeDelta::minutes(5),
    )
    .await
    .unwrap();
    assert_eq!(imports::fail_abandoned(store, now).await.unwrap(), 1);
    let crashed = imports::get_run(store, &system, crashed).await.unwrap();
    assert_eq!(crashed.status, Status::Failed);
    assert!(crashed.error.unwrap().starts_with("interrupted"));
    let running = imports::get_run(store, &system, running).await.unwrap();
    assert_eq!(running.status, Status::Running);
    assert_eq!(imports::fail_abandoned(store, now).await.unwrap(), 0);
}

#[tokio::test]
async fn runs_a_stopped_process_left_running_are_marked_failed() {
    on_every_backend!(abandoned_runs_fail);
}

#[tokio::test]
async fn rows_with_one_key_merge_and_fail_together() {
    on_every_backend!(merging_and_refusing);
}

#[tokio::test]
async fn history_and_ledger_rows_are_kept_once_per_identity() {
    on_every_backend!(history_and_ledger_rows_are_kept_once);
}
