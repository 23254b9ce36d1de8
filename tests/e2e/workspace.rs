//! The SQL workspace through the API (MA-7, MA-9): an analyst queries, keeps the result as an
//! output table, and a flow sends to it; a clerk's field rights hold inside SQL; writes and
//! system tables stay out of reach.

use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn seed(app: &TestApp) -> Vec<i64> {
    let items: Vec<Value> = (0..6)
        .map(|n| {
            json!({
                "email": format!("w{n}@example.jp"),
                "phone": format!("090-1111-{n:04}"),
                "prefecture": if n % 2 == 0 { "愛知県" } else { "東京都" },
                "opt_in_email": true,
            })
        })
        .collect();
    let (status, body) = app
        .post("/api/data/tourists/bulk", json!({ "items": items }))
        .await;
    assert_eq!(status, 201, "{body}");
    let ids: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let purchases: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            json!({"tourist_id": id, "amount": 5_000 * (n as i64 + 1), "occurred_at": "2026-11-01T01:00:00Z"})
        })
        .collect();
    let (status, body) = app
        .post("/api/data/purchases/bulk", json!({ "items": purchases }))
        .await;
    assert_eq!(status, 201, "{body}");
    ids
}

async fn analyst_keeps_a_list_and_a_flow_sends_to_it(app: &TestApp) {
    let ids = seed(app).await;
    let (status, answer) = app
        .post(
            "/api/sql/query",
            json!({"sql": "SELECT t.prefecture, count(*) AS buyers, sum(p.amount) AS spent \
                           FROM tourists t JOIN purchases p ON p.tourist_id = t.id \
                           GROUP BY t.prefecture ORDER BY spent DESC"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["columns"][0]["name"], "prefecture");
    assert_eq!(answer["rows"][0][0], "東京都");
    assert_eq!(answer["rows"][0][1], 3);
    assert_eq!(answer["rows"][0][2].as_f64(), Some(60_000.0));
    assert_eq!(answer["truncated"], false);

    let (status, table) = app
        .post(
            "/api/sql/tables",
            json!({"name": "big_buyers", "description": "¥15,000 or more",
                   "sql": "SELECT tourist_id FROM purchases WHERE amount >= 15000"}),
        )
        .await;
    assert_eq!(status, 201, "{table}");
    assert_eq!(table["row_count"], 4);
    assert_eq!(
        table["reads"],
        json!(["purchases.amount", "purchases.tourist_id"])
    );
    let listed = app.get("/api/sql/tables").await;
    assert_eq!(listed["tables"][0]["name"], "big_buyers");
    let catalog = app.get("/api/sql/catalog").await;
    assert!(
        catalog["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "big_buyers" && t["kind"] == "output")
    );

    // The table as a delivery list: a segment over it, and a flow that sends to the segment.
    let (status, body) = app
        .post(
            "/api/segments",
            json!({"key": "big_buyers_aichi", "name": "愛知の大口購入者", "filter": {"all": [
                {"output_table": {"name": "big_buyers", "column": "tourist_id"}},
                {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}
            ]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let count = app.get("/api/segments/big_buyers_aichi/count").await;
    assert_eq!(count["count"], 2, "{count}");
    let (_, draft) = app
        .post(
            "/api/flows",
            json!({
                "format": 1, "name": "thanks",
                "entry": {"type": "segment_snapshot", "segment": "big_buyers_aichi", "next": "mail"},
                "nodes": [
                    {"id": "mail", "type": "send", "channel": "test", "template": "thanks", "next": "end"},
                    {"id": "end", "type": "exit"}
                ]
            }),
        )
        .await;
    let flow = draft["id"].as_i64().unwrap();
    let (status, body) = app
        .post(&format!("/api/flows/{flow}/publish"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let start = std::time::Instant::now();
    while app.channel.sent().len() < 2 {
        assert!(start.elapsed().as_secs() < 20, "the list was never sent to");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut sent: Vec<i64> = app.channel.sent().iter().map(|m| m.contact_id).collect();
    sent.sort_unstable();
    // Purchases of ¥15,000 or more: tourists 3–6 (of 1–6); from Aichi: the 3rd and 5th.
    assert_eq!(sent, vec![ids[2], ids[4]]);

    let (status, body) = app
        .call(Method::DELETE, "/api/sql/tables/big_buyers", None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "output_table_in_use");

    let (status, copy) = app
        .post(
            "/api/sql/tables/big_buyers/copy",
            json!({"to": "big_buyers_2026"}),
        )
        .await;
    assert_eq!(status, 201, "{copy}");
    assert_eq!(copy["row_count"], 4);
    let (status, _) = app
        .call(Method::DELETE, "/api/sql/tables/big_buyers_2026", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .call(Method::GET, "/api/sql/tables/big_buyers_2026", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_analyst_keeps_a_query_as_a_list_and_a_flow_sends_to_it() {
    on_every_backend!(analyst_keeps_a_list_and_a_flow_sends_to_it);
}

async fn rights_and_the_sandbox_hold(app: &TestApp) {
    seed(app).await;
    let (status, _) = app
        .post(
            "/api/sql/tables",
            json!({"name": "phones", "sql": "SELECT id, phone FROM tourists"}),
        )
        .await;
    assert_eq!(status, 201);
    let clerk = app
        .user_with_rights(
            "analyst",
            json!({"entities": {
                "tourists": {"ops": ["view"], "fields": {"phone": "none"}},
                "sql": {"ops": ["view", "create"]}
            }}),
        )
        .await;
    let ask = |sql: &str| {
        clerk
            .post(app.url("/api/sql/query"))
            .json(&json!({ "sql": sql }))
            .send()
    };
    let r = ask("SELECT * FROM tourists").await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let columns: Vec<&str> = answer["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"email") && !columns.contains(&"phone"),
        "{columns:?}"
    );

    for (sql, code) in [
        ("SELECT phone FROM tourists", "sql_failed"),
        ("SELECT * FROM phones", "sql_not_allowed"),
        ("SELECT amount FROM purchases", "sql_not_allowed"),
        (
            "SELECT login, password_hash FROM sys_users",
            "sql_not_allowed",
        ),
        ("DELETE FROM tourists", "sql_not_allowed"),
        (
            "UPDATE tourists SET email = 'x@example.jp'",
            "sql_not_allowed",
        ),
        ("SELECT 1; DROP TABLE tourists", "sql_not_allowed"),
        ("SELECT load_extension('x')", "sql_not_allowed"),
    ] {
        let r = ask(sql).await.unwrap();
        assert_eq!(r.status(), 422, "{sql}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["details"][0]["code"], code, "{sql}: {body}");
    }
    let r = clerk
        .get(app.url("/api/sql/tables/phones"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = clerk
        .delete(app.url("/api/sql/tables/phones"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no delete right");

    // Nothing was changed, and the access log has what the analyst tried.
    let count = app
        .post("/api/data/tourists/count", json!({"filter": {"all": []}}))
        .await;
    assert_eq!(count.1["count"], 6);
    let log = app
        .get("/api/admin/access-log?login=analyst&limit=100")
        .await;
    let text = log.to_string();
    assert!(text.contains("sql_query"), "{text}");
    assert!(text.contains("refused"), "{text}");
}

#[tokio::test]
async fn field_rights_hold_inside_sql_and_nothing_writes() {
    on_every_backend!(rights_and_the_sandbox_hold);
}
