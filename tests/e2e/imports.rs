//! Partner files through import flows (DI-2, DI-3, MA-11, AN-1): a Shift_JIS daily user file
//! merged into the tourists by e-mail, with adds, changes and deletes; bad rows rejected with
//! their line and reason while the good ones are kept; the same file imported twice changes
//! nothing; a file with the wrong header writes nothing; point grants by file, kept once per
//! transaction.

use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

fn sjis(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
    assert!(!unmappable, "the test text is all Shift_JIS");
    bytes.into_owned()
}

async fn upload(
    app: &TestApp,
    client: &reqwest::Client,
    key: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let r = client
        .post(app.url(&format!("/api/imports/flows/{key}/run?file={name}")))
        .header("content-type", "text/csv")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn tourist(app: &TestApp, email: &str) -> Option<Value> {
    let (status, body) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"field": {"key": "email", "op": "eq", "value": email}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().first().cloned()
}

async fn partner_files(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [
                {"email": "a@example.jp", "family_name": "山田", "prefecture": "北海道"},
                {"email": "gone@example.jp", "family_name": "退会"}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let flow = json!({
        "format": 1,
        "name": "OTA 会員 日次ファイル",
        "entity": "tourists",
        "columns": [
            {"column": "メールアドレス", "field": "email"},
            {"column": "姓", "field": "family_name"},
            {"column": "生年月日", "field": "birth_date", "convert": "excel_date"},
            {"column": "性別", "field": "gender", "codes": {"1": "male", "2": "female"}},
            {"column": "都道府県", "field": "prefecture"}
        ],
        "action": {"type": "upsert", "key": "email"},
        "delete_when": {"column": "区分", "values": ["D"]}
    });
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/imports/flows/ota_users",
            Some(flow.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A flow that names a field the entity does not have is refused with its place.
    let mut wrong = flow.clone();
    wrong["columns"][1]["field"] = json!("surname");
    let (status, body) = app.post("/api/imports/check", wrong).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"], "columns[1].field",
        "{body}"
    );

    let mut file = sjis(
        "区分,メールアドレス,姓,生年月日,性別,都道府県\r\n\
         A,ＢＥＴＡ@example.jp,鈴木,45292,2,愛知県\r\n\
         C,a@example.jp,山田,1990/4/1,1,東京都\r\n\
         A,not-an-email,佐藤,,1,\r\n\
         A,c@example.jp,高橋,2024年13月1日,1,\r\n\
         A,d@example.jp,伊藤,,9,\r\n\
         A,e@example.jp,渡辺\r\n\
         A,beta@example.jp,,,,大阪府\r\n\
         D,gone@example.jp,,,,\r\n\
         A,f@example.jp,",
    );
    file.extend_from_slice(b"\x82\xff");
    file.extend_from_slice(&sjis(",,,\r\n"));
    let (status, run) = upload(
        app,
        &app.admin,
        "ota_users",
        "ota_20261129.csv",
        file.clone(),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let counts = |run: &Value| {
        [
            "rows_read",
            "created",
            "updated",
            "unchanged",
            "deleted",
            "merged",
            "rejected",
        ]
        .map(|k| run[k].as_i64().unwrap())
    };
    assert_eq!(run["status"], "done", "{run}");
    assert_eq!(run["encoding"], "shift_jis");
    assert_eq!(counts(&run), [9, 1, 1, 0, 1, 1, 5], "{run}");

    let beta = tourist(app, "beta@example.jp")
        .await
        .expect("beta was created");
    assert_eq!(
        (
            &beta["family_name"],
            &beta["birth_date"],
            &beta["gender"],
            &beta["prefecture"]
        ),
        (
            &json!("鈴木"),
            &json!("2024-01-01"),
            &json!("female"),
            &json!("大阪府")
        ),
        "{beta}"
    );
    let a = tourist(app, "a@example.jp").await.unwrap();
    assert_eq!(
        (&a["birth_date"], &a["gender"], &a["prefecture"]),
        (&json!("1990-04-01"), &json!("male"), &json!("東京都"))
    );
    assert!(tourist(app, "gone@example.jp").await.is_none());

    // The rejected rows, as CSV for Excel and as JSON, each with its line and reason.
    let id = run["id"].as_i64().unwrap();
    let r = app
        .admin
        .get(app.url(&format!("/api/imports/{id}/rejected")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("\u{feff}line,field,reason,row\n"), "{csv}");
    assert!(csv.contains("4,email,"), "{csv}");
    let rejected = app
        .get(&format!("/api/imports/{id}/rejected?format=json"))
        .await["rejected"]
        .clone();
    let lines: Vec<(i64, String)> = rejected
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        vec![4, 5, 6, 7, 10],
        "{rejected}"
    );
    assert!(lines[0].1.starts_with("email:"), "{lines:?}");
    assert!(lines[1].1.contains("2024年13月1日"), "{lines:?}");
    assert!(
        lines[2].1.contains("\"9\" is not a known code"),
        "{lines:?}"
    );
    assert!(
        lines[3].1.contains("has 3 columns where the header has 6"),
        "{lines:?}"
    );
    assert!(lines[4].1.contains("is not valid shift_jis"), "{lines:?}");
    assert_eq!(rejected[2]["raw"], "A,d@example.jp,伊藤,,9,");

    // The same file again changes nothing: no record is written, none is touched.
    let (status, again) = upload(app, &app.admin, "ota_users", "ota_20261129.csv", file).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(counts(&again), [9, 0, 0, 3, 0, 1, 5], "{again}");
    let a_again = tourist(app, "a@example.jp").await.unwrap();
    assert_eq!(a_again["updated_at"], a["updated_at"]);

    // A file that is not what the flow expects fails before any row is written.
    let before = app.get("/api/data/tourists?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .len();
    let (status, failed) = upload(
        app,
        &app.admin,
        "ota_users",
        "wrong.csv",
        "区分,メール,姓\nA,x@example.jp,新井\n".as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{failed}");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("no column \"メールアドレス\""),
        "{failed}"
    );
    assert_eq!(failed["rows_read"], 0);
    let after = app.get("/api/data/tourists?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);

    // Point grants by file, linked by e-mail, each transaction kept once.
    let points = json!({
        "format": 1,
        "name": "OTA ポイント付与",
        "entity": "point_ledger",
        "file": {"encoding": "utf-8"},
        "columns": [
            {"column": "取引ID", "field": "transaction_id"},
            {"column": "ポイント", "field": "points"},
            {"column": "日時", "field": "occurred_at"}
        ],
        "constants": {"source_system": "ota", "kind": "grant"},
        "action": {"type": "append"},
        "link": {"field": "tourist_id", "by": "email", "column": "メール"}
    });
    let (status, body) = app
        .call(Method::PUT, "/api/imports/flows/ota_points", Some(points))
        .await;
    assert_eq!(status, 200, "{body}");
    let grants = "メール,取引ID,ポイント,日時\n\
                  beta@example.jp,T-1,100,2026/11/28 10:00\n\
                  Beta@Example.jp,T-2,２５０,2026/11/28 11:00\n\
                  nobody@example.jp,T-3,50,2026/11/28 12:00\n"
        .as_bytes()
        .to_vec();
    let (_, run) = upload(app, &app.admin, "ota_points", "points.csv", grants.clone()).await;
    assert_eq!(counts(&run), [3, 2, 0, 0, 0, 0, 1], "{run}");
    let (_, again) = upload(app, &app.admin, "ota_points", "points.csv", grants).await;
    assert_eq!(counts(&again), [3, 0, 0, 2, 0, 0, 1], "{again}");
    let beta = tourist(app, "beta@example.jp").await.unwrap();
    assert_eq!(beta["points_balance"], 350, "{beta}");

    // An Excel workbook, through a flow that reads XLSX.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, text) in ["メールアドレス", "姓", "都道府県"].iter().enumerate() {
        sheet.write_string(0, c as u16, *text).unwrap();
    }
    for (c, text) in ["xl@example.jp", "表計算", "静岡県"].iter().enumerate() {
        sheet.write_string(1, c as u16, *text).unwrap();
    }
    let workbook = book.save_to_buffer().unwrap();
    let xlsx_flow = json!({
        "format": 1, "name": "Excel 会員", "entity": "tourists", "file": {"kind": "xlsx"},
        "columns": [
            {"column": "メールアドレス", "field": "email"}, {"column": "姓", "field": "family_name"},
            {"column": "都道府県", "field": "prefecture"}
        ],
        "action": {"type": "upsert", "key": "email"}
    });
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/imports/flows/excel_members",
            Some(xlsx_flow),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, run) = upload(app, &app.admin, "excel_members", "members.xlsx", workbook).await;
    assert_eq!(
        (run["created"].clone(), run["encoding"].clone()),
        (json!(1), json!("xlsx")),
        "{run}"
    );
    let xl = tourist(app, "xl@example.jp").await.unwrap();
    assert_eq!(xl["prefecture"], "静岡県");
    let (_, broken) = upload(
        app,
        &app.admin,
        "excel_members",
        "broken.xlsx",
        b"PK not really".to_vec(),
    )
    .await;
    assert_eq!(broken["status"], "failed");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("not an XLSX workbook"),
        "{broken}"
    );

    // The history, newest first, shows what each file did.
    let history = app.get("/api/imports?flow=ota_users").await["imports"].clone();
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["failed", "done", "done"]);
    assert_eq!(history[2]["file_name"], "ota_20261129.csv");
    assert_eq!(history[2]["definition"]["columns"][0]["field"], "email");

    // Without the import right, nothing: not the flow, not a run, not the history.
    let clerk = app
        .user_with_rights(
            "clerk_import",
            json!({"entities": {"tourists": {"ops": ["view", "create", "edit"]}}}),
        )
        .await;
    let (status, _) = upload(app, &clerk, "ota_users", "x.csv", b"a\n".to_vec()).await;
    assert_eq!(status, 403);
    let r = clerk
        .put(app.url("/api/imports/flows/mine"))
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = clerk
        .get(app.url(&format!("/api/imports/{id}/rejected")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = clerk.get(app.url("/api/imports")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["imports"], json!([]));
}

#[tokio::test]
async fn partner_files_are_merged_by_email() {
    on_every_backend!(partner_files);
}

async fn large_files_and_guarded_rejections(app: &TestApp) {
    let flow = json!({
        "format": 1, "name": "会員", "entity": "tourists",
        "file": {"encoding": "utf-8"},
        "columns": [
            {"column": "email", "field": "email"},
            {"column": "name", "field": "family_name"},
            {"column": "address", "field": "address_line"}
        ],
        "action": {"type": "upsert", "key": "email"}
    });
    let (status, body) = app
        .call(Method::PUT, "/api/imports/flows/members", Some(flow))
        .await;
    assert_eq!(status, 200, "{body}");
    // Over axum's default 2 MiB body limit; a cell Excel would run as a formula.
    let mut file = String::from("email,name,address\n=SUM(A1),悪意,x\n");
    for i in 0..30_000 {
        file.push_str(&format!(
            "member{i}@example.jp,会員{i},愛知県名古屋市中区三の丸三丁目一番二号 愛知県庁本庁舎{i}号室\n"
        ));
    }
    assert!(file.len() > 3 * 1024 * 1024, "{}", file.len());
    let (status, run) = upload(app, &app.admin, "members", "members.csv", file.into_bytes()).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(
        (run["created"].clone(), run["rejected"].clone()),
        (json!(30_000), json!(1)),
        "{run}"
    );
    assert_eq!(run["bytes_read"], run["file_bytes"], "{run}");
    let id = run["id"].as_i64().unwrap();

    // Answered at once, read on in the background: the run is followed to its end, its
    // progress never going back.
    let mut later = String::from("email,name,address\n");
    for i in 0..30_000 {
        later.push_str(&format!("later{i}@example.jp,後日{i},東京都\n"));
    }
    let size = later.len() as i64;
    let r = app
        .admin
        .post(app.url("/api/imports/flows/members/run?file=later.csv"))
        .header("content-type", "text/csv")
        .header("prefer", "respond-async")
        .body(later)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["preference-applied"], "respond-async");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let started: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/imports/{}", started["id"].as_i64().unwrap())
    );
    assert_eq!(
        (
            started["status"].as_str(),
            started["file_bytes"].as_i64(),
            started["rows_read"].as_i64()
        ),
        (Some("running"), Some(size), Some(0)),
        "{started}"
    );
    let mut seen = vec![0];
    let done = loop {
        let run: Value = app
            .admin
            .get(app.url(&location))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reached = run["bytes_read"].as_i64().unwrap();
        assert!(reached >= *seen.last().unwrap(), "{seen:?} then {run}");
        seen.push(reached);
        if run["status"] != "running" {
            break run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        (
            done["status"].as_str(),
            done["created"].as_i64(),
            done["bytes_read"].as_i64()
        ),
        (Some("done"), Some(30_000), Some(size)),
        "{done}"
    );
    let csv = app
        .admin
        .get(app.url(&format!("/api/imports/{id}/rejected")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains("\"'=SUM(A1),悪意,x\""), "{csv}");

    // Someone who may import tourists but not see their names sees the run, not its rows.
    let limited = app
        .user_with_rights(
            "importer_limited",
            json!({"entities": {"tourists": {"ops": ["view", "create", "edit", "import"],
                                             "fields": {"family_name": "none"}}}}),
        )
        .await;
    let r = limited.get(app.url("/api/imports")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id),
        "{body}"
    );
    let r = limited
        .get(app.url(&format!("/api/imports/{id}/rejected")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, _) = upload(
        app,
        &limited,
        "members",
        "x.csv",
        b"email,name,address\n".to_vec(),
    )
    .await;
    assert_eq!(status, 403, "writing a field they may not see is refused");
}

#[tokio::test]
async fn large_files_import_and_rejected_rows_are_guarded() {
    on_every_backend!(large_files_and_guarded_rejections);
}
