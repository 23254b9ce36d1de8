//! Exports (CF-6, MA-11): a filtered set of tourists as CSV for Excel (UTF-8 with a byte-order
//! mark, or Shift_JIS), and as XLSX read back by a real reader; fields the user may not see are
//! absent; the export right is needed; formulas stay text.

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn export(
    app: &TestApp,
    client: &reqwest::Client,
    query: &str,
    body: Value,
) -> (u16, Vec<u8>) {
    let r = client
        .post(app.url(&format!("/api/data/tourists/export{query}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

async fn exports(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [
                {"email": "a@example.jp", "family_name": "山田", "prefecture": "愛知県", "phone": "052-111-2222",
                 "registered_at": "2026-11-28T15:30:00Z", "interests": ["food", "nature"]},
                {"email": "b@example.jp", "family_name": "=HYPERLINK(\"http://x\")", "prefecture": "愛知県"},
                {"email": "c@example.jp", "family_name": "🍣好き", "prefecture": "愛知県"},
                {"email": "d@example.jp", "family_name": "遠藤", "prefecture": "東京都"}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let aichi = json!({"filter": {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
                       "fields": ["email", "family_name", "phone", "registered_at", "interests"]});

    let (status, bytes) = export(app, &app.admin, "", aichi.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "\u{feff}id,email,family_name,phone,registered_at,interests"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].ends_with(",a@example.jp,山田,0521112222,2026-11-29 00:30:00,\"nature,food\""),
        "times in Tokyo, lists joined: {}",
        lines[1]
    );
    assert!(
        lines[2].contains(",\"'=HYPERLINK(\"\"http://x\"\")\","),
        "{}",
        lines[2]
    );

    // Shift_JIS for older Excel, Japanese headers; what Shift_JIS lacks becomes ?.
    let (status, bytes) =
        export(app, &app.admin, "?format=csv_sjis&header=ja", aichi.clone()).await;
    assert_eq!(status, 200);
    let (text, _, malformed) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!malformed);
    assert!(text.starts_with("id,メールアドレス,姓,電話番号"), "{text}");
    assert!(text.contains(",?好き,"), "{text}");

    // XLSX, read back by calamine.
    let (status, bytes) = export(app, &app.admin, "?format=xlsx", aichi.clone()).await;
    assert_eq!(status, 200);
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0][1], Data::String("email".into()));
    assert_eq!(rows[1][2], Data::String("山田".into()));
    assert!(
        matches!(rows[1][0], Data::Float(id) if id >= 1.0),
        "{:?}",
        rows[1][0]
    );

    // Someone without the right to see phone numbers gets none; asking for them is refused.
    let desk = app
        .user_with_rights(
            "desk_export",
            json!({"entities": {"tourists": {"ops": ["view", "export"], "fields": {"phone": "none"}}}}),
        )
        .await;
    let (status, bytes) = export(app, &desk, "", json!({})).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes).unwrap();
    let header = text.lines().next().unwrap();
    let columns: Vec<&str> = header.split(',').collect();
    assert!(
        columns.contains(&"email") && !columns.contains(&"phone"),
        "{header}"
    );
    assert!(!text.contains("0521112222"));
    assert_eq!(text.lines().count(), 5, "all four tourists: {text}");
    let (status, _) = export(app, &desk, "", aichi.clone()).await;
    assert_eq!(status, 403);
    let viewer = app
        .user_with_rights(
            "viewer_export",
            json!({"entities": {"tourists": {"ops": ["view"]}}}),
        )
        .await;
    let (status, _) = export(app, &viewer, "", json!({})).await;
    assert_eq!(status, 403, "exporting needs the export right");

    let log = app.get("/api/admin/access-log?limit=1000").await;
    let exports: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export")
        .collect();
    assert!(
        exports
            .iter()
            .any(|e| e["outcome"] == "ok" && e["detail"] == "3 records"),
        "{exports:?}"
    );
    assert!(
        exports.iter().any(|e| e["outcome"] == "started"
            && e["detail"]
                .as_str()
                .unwrap()
                .starts_with("fields: email, family_name, phone")),
        "{exports:?}"
    );
}

#[tokio::test]
async fn exports_for_excel_honour_field_rights() {
    on_every_backend!(exports);
}
