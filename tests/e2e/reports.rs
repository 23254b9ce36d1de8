//! Reports and dashboards through the API: a flow sends, a tourist opens, and the message report
//! shows it by template and by age group; a dashboard shows each viewer what they may see.

use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn reports_and_dashboards(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [
                {"email": "a@example.jp", "birth_date": "1990-01-01", "prefecture": "愛知県"},
                {"email": "b@example.jp", "birth_date": "1995-06-01", "prefecture": "愛知県"},
                {"email": "c@example.jp", "birth_date": "1970-06-01", "prefecture": "東京都"}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ids: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let (_, draft) = app
        .post(
            "/api/flows",
            json!({
                "format": 1, "name": "welcome",
                "entry": {"type": "api", "next": "mail"},
                "nodes": [
                    {"id": "mail", "type": "send", "channel": "test", "template": "welcome", "next": "end"},
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
    let (status, body) = app
        .post(&format!("/api/flows/{flow}/runs"), json!({"contacts": ids}))
        .await;
    assert!(status < 300, "{body}");

    // Wait until the three mails are sent and recorded.
    let report =
        json!({"chart": "table", "source": {"messages": {"flow": flow, "group_by": ["template"]}}});
    let start = std::time::Instant::now();
    let mut rows = Value::Null;
    while start.elapsed().as_secs() < 20 {
        let (status, data) = app.post("/api/reports/run", report.clone()).await;
        assert_eq!(status, 200, "{data}");
        rows = data["rows"].clone();
        if rows[0]["sent"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows[0]["sent"], 3, "{rows}");
    assert_eq!(rows[0]["template"], "welcome");
    let delivery_id = app
        .channel
        .sent()
        .iter()
        .find(|m| m.contact_id == ids[0])
        .expect("the first tourist's mail")
        .delivery_id;
    let (status, body) = app
        .post(
            "/api/events",
            json!({"events": [{"id": "open-1", "contact_id": ids[0], "name": "opened", "delivery_id": delivery_id}]}),
        )
        .await;
    assert!(status < 300, "{body}");

    let (status, saved) = app
        .post(
            "/api/reports",
            json!({"key": "welcome_by_age", "name": "年代別開封率",
                   "definition": {"chart": "bar", "source": {"messages": {"flow": flow, "group_by": ["age_group"], "measures": ["sent", "opened", "open_rate"]}}}}),
        )
        .await;
    assert_eq!(status, 201, "{saved}");
    let data = app.get("/api/reports/welcome_by_age/data").await;
    assert_eq!(data["dimensions"], json!(["age_group"]));
    let opened: i64 = data["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["opened"].as_i64().unwrap())
        .sum();
    assert_eq!(opened, 1, "{data}");

    let (status, body) = app
        .post(
            "/api/reports",
            json!({"key": "tourists_by_prefecture", "name": "都道府県別",
                   "definition": {"chart": "pie", "source": {"records": {"entity": "tourists", "group_by": [{"field": "prefecture"}]}}}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            "/api/dashboards",
            json!({"key": "home", "name": "ホーム", "widgets": [
                {"report": "tourists_by_prefecture", "width": 4},
                {"report": "welcome_by_age", "width": 8}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let shown = app.get("/api/dashboards/home").await;
    assert_eq!(
        shown["shown"][0]["data"]["rows"].as_array().unwrap().len(),
        2
    );
    assert!(shown["shown"][1]["data"]["rows"].is_array());

    // A viewer who may see tourists and reports, but not flows: the message widget says so.
    let viewer = app
        .user_with_rights(
            "viewer",
            json!({"entities": {"tourists": {"ops": ["view"]}, "reports": {"ops": ["view"]}}}),
        )
        .await;
    let shown: Value = viewer
        .get(app.url("/api/dashboards/home"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(shown["shown"][0]["data"].is_object(), "{shown}");
    assert_eq!(shown["shown"][1]["error"]["code"], "forbidden", "{shown}");
    let r = viewer
        .post(app.url("/api/dashboards"))
        .json(&json!({"key": "mine", "name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let (status, body) = app
        .call(Method::DELETE, "/api/reports/welcome_by_age", None)
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app
        .post(
            "/api/reports/run",
            json!({"chart": "pie", "source": {"records": {"entity": "tourists"}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "definition.chart");
}

#[tokio::test]
async fn message_reports_and_dashboards_with_the_viewers_rights() {
    on_every_backend!(reports_and_dashboards);
}

async fn analyses_as_reports_and_lists(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [{"email": "x@example.jp"}, {"email": "y@example.jp"}, {"email": "z@example.jp"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ids: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let bought = |id: i64, product: &str, amount: i64| json!({"tourist_id": id, "product": product, "amount": amount, "occurred_at": "2026-11-01T01:00:00Z"});
    let (status, body) = app
        .post(
            "/api/data/purchases/bulk",
            json!({"items": [
                bought(ids[0], "onsen", 9000), bought(ids[0], "sake", 1000),
                bought(ids[1], "onsen", 3000), bought(ids[1], "sake", 500),
                bought(ids[2], "ticket", 800)
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, data) = app
        .post(
            "/api/reports/run",
            json!({"chart": "table", "source": {"analysis": {"basket": {}}}}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["dimensions"], json!(["item_a", "item_b"]));
    assert_eq!(data["rows"][0]["item_a"], "onsen");
    assert_eq!(data["rows"][0]["together"], 2);
    let (status, data) = app
        .post(
            "/api/reports/run",
            json!({"chart": "bar", "source": {"analysis": {"decile": {}}}}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["rows"][0]["total"], 10000);

    let (status, table) = app
        .post(
            "/api/analyses/tables",
            json!({"name": "deciles", "analysis": {"decile": {"per_tourist": true}}}),
        )
        .await;
    assert_eq!(status, 201, "{table}");
    assert_eq!(table["row_count"], 3);
    let (status, count) = app
        .post(
            "/api/data/tourists/count",
            json!({"filter": {"output_table": {"name": "deciles", "column": "tourist_id"}}}),
        )
        .await;
    assert_eq!(status, 200, "{count}");
    assert_eq!(count["count"], 3);
}

#[tokio::test]
async fn analyses_run_as_reports_and_keep_their_rows_as_lists() {
    on_every_backend!(analyses_as_reports_and_lists);
}
