//! The partner integrations shipped in `examples/partners/` (DI-7, DI-8, DI-9), set up as
//! their docs say: the history store and its fields through the schema API, the import flow
//! saved, the sample file sent. Surveys, itinerary plans and e-ticket uses land in the
//! tourists' history, linked by e-mail; bad rows are rejected with their line and reason; the
//! same file again adds nothing; what is calculated from them follows at once (CF-9).

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, backends, spawn_app_with};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/partners");

fn read_json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{EXAMPLES}/{path}")).unwrap()).unwrap()
}

async fn set_up(app: &TestApp, partner: &str) -> String {
    let store = read_json(&format!("{partner}/store.json"));
    let name = store["name"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            "/api/schema/history-stores",
            json!({"name": name, "label": store["label"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for field in store["fields"].as_array().unwrap() {
        let (status, body) = app
            .post(&format!("/api/schema/{name}/fields"), field.clone())
            .await;
        assert_eq!(status, 201, "{partner}: {field}: {body}");
    }
    let r = app
        .admin
        .put(app.url(&format!("/api/imports/flows/{partner}")))
        .json(&read_json(&format!("{partner}/flow.json")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    name
}

async fn send(app: &TestApp, partner: &str, file: &str) -> Value {
    let bytes = std::fs::read(format!("{EXAMPLES}/{partner}/{file}")).unwrap();
    let r = app
        .admin
        .post(app.url(&format!("/api/imports/flows/{partner}/run?file={file}")))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// Read, created, unchanged, rejected.
fn counts(run: &Value) -> [i64; 4] {
    ["rows_read", "created", "unchanged", "rejected"].map(|k| run[k].as_i64().unwrap())
}

async fn reasons(app: &TestApp, run: &Value) -> Vec<(i64, String)> {
    let id = run["id"].as_i64().unwrap();
    let body = app
        .get(&format!("/api/imports/{id}/rejected?format=json"))
        .await;
    body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["field"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn history_of(app: &TestApp, store: &str, email: &str) -> Vec<Value> {
    let (status, found) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"field": {"key": "email", "op": "eq", "value": email}}}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    let id = found["items"][0]["id"].as_i64().unwrap();
    let (status, page) = app
        .post(
            &format!("/api/data/{store}/search"),
            json!({"filter": {"field": {"key": "tourist_id", "op": "eq", "value": id}},
                   "sort": {"field": "occurred_at"}}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn partner_examples(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [{"email": "hanako@example.jp"}, {"email": "taro@example.jp"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // DI-7: surveys, a comment over two lines, a full-width score and e-mail.
    let surveys = set_up(app, "surveys").await;
    let run = send(app, "surveys", "sample.csv").await;
    assert_eq!(counts(&run), [5, 2, 0, 3], "{run}");
    assert_eq!(
        reasons(app, &run).await,
        [
            (5, "satisfaction".into()),
            (6, "メールアドレス".into()),
            (7, "visit_purpose".into())
        ],
        "lines counted across the quoted line break"
    );
    let taro = history_of(app, &surveys, "taro@example.jp").await;
    assert_eq!(
        (&taro[0]["satisfaction"], &taro[0]["visit_purpose"]),
        (&json!(3), &json!("出張"))
    );
    let hanako = history_of(app, &surveys, "hanako@example.jp").await;
    assert_eq!(hanako[0]["comment"], "紅葉がきれいでした。\nまた来ます。");
    let again = send(app, "surveys", "sample.csv").await;
    assert_eq!(counts(&again), [5, 0, 2, 3], "{again}");

    // DI-8: itinerary plans, tab-separated, transport codes.
    let plans = set_up(app, "itineraries").await;
    let run = send(app, "itineraries", "sample.tsv").await;
    assert_eq!(counts(&run), [4, 3, 0, 1], "{run}");
    assert_eq!(reasons(app, &run).await, [(5, "transport".into())]);
    let hanako = history_of(app, &plans, "hanako@example.jp").await;
    let visits: Vec<(&str, &str)> = hanako
        .iter()
        .map(|v| {
            (
                v["spot_id"].as_str().unwrap(),
                v["transport"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(visits, [("SP-001", "徒歩"), ("SP-014", "バス")]);

    // DI-9: e-ticket uses in Shift_JIS, amounts with separators and full-width digits; each
    // tourist's e-ticket spending, calculated from them, follows the import at once (CF-9).
    let tickets = set_up(app, "etickets").await;
    let (status, body) = app
        .post(
            "/api/calculated",
            json!({"key": "eticket_spend", "label": {"ja": "電子チケット利用額", "en": "E-ticket spend"},
                   "store": tickets, "measure": {"sum": "amount"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let run = send(app, "etickets", "sample_sjis.csv").await;
    assert_eq!(counts(&run), [3, 2, 0, 1], "{run}");
    assert_eq!(run["encoding"], "shift_jis");
    assert_eq!(reasons(app, &run).await, [(4, "amount".into())]);
    let taro = history_of(app, &tickets, "taro@example.jp").await;
    assert_eq!(
        (&taro[0]["facility"], &taro[0]["amount"]),
        (&json!("飛騨の里"), &json!(1200))
    );
    let (_, found) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"field": {"key": "eticket_spend", "op": "gt", "value": 0}},
                   "sort": {"field": "email"}}),
        )
        .await;
    let spend: Vec<(&str, i64)> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["email"].as_str().unwrap(),
                t["eticket_spend"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        spend,
        [("hanako@example.jp", 1000), ("taro@example.jp", 1200)]
    );
}

#[tokio::test]
async fn partner_examples_import_as_documented() {
    for scratch in backends().await {
        // The worker's own look at calculated attributes is an hour away: what the test sees
        // right after an import is the import's doing.
        let config = tabiji_engine::runtime::Config {
            calculated_every: std::time::Duration::from_secs(3600),
            ..Default::default()
        };
        let app = spawn_app_with(scratch, config).await;
        partner_examples(&app).await;
        app.stop().await;
    }
}
