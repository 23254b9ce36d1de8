//! Per-user rights: operations per entity, access per field, administration; denials logged.

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

async fn hidden_fields_never_appear(app: &TestApp) {
    let r = app
        .admin
        .post(app.url("/api/data/tourists"))
        .json(&json!({"email": "secret@example.jp", "phone": "03-1111-2222", "city": "高山市"}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["record"]["id"]
        .as_i64()
        .unwrap();
    let clerk = app
        .user_with_rights(
            "clerk",
            json!({"entities": {"tourists": {"ops": ["view", "edit"], "fields": {"phone": "none", "email": "read"}}}}),
        )
        .await;

    let one: Value = clerk
        .get(app.url(&format!("/api/data/tourists/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["city"], "高山市");
    assert!(one.get("phone").is_none(), "{one}");
    let page = clerk
        .get(app.url("/api/data/tourists"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("0311112222") && !page.contains("\"phone\""),
        "{page}"
    );
    let schema: Value = clerk
        .get(app.url("/api/schema/tourists"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        !keys.contains(&"phone") && keys.contains(&"mobile_phone"),
        "{keys:?}"
    );

    let r = clerk
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"email": "other@example.jp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "email");
    let r = clerk
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"phone": "03-0000-0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = clerk
        .patch(app.url(&format!("/api/data/tourists/{id}")))
        .json(&json!({"city": "下呂市"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = r.json::<Value>().await.unwrap();
    assert!(
        after.get("phone").is_none(),
        "the edit's answer hides the field too"
    );

    for (method, path) in [
        ("POST", "/api/data/tourists"),
        ("DELETE", &*format!("/api/data/tourists/{id}")),
        ("GET", "/api/data/businesses"),
    ] {
        let request = clerk.request(method.parse().unwrap(), app.url(path));
        let request = if method == "POST" {
            request.json(&json!({"email": "n@example.jp"}))
        } else {
            request
        };
        assert_eq!(
            request.send().await.unwrap().status(),
            403,
            "{method} {path}"
        );
    }
    for path in [
        "/api/admin/users",
        "/api/admin/roles",
        "/api/admin/access-log",
    ] {
        assert_eq!(
            clerk.get(app.url(path)).send().await.unwrap().status(),
            403,
            "{path}"
        );
    }
    let r = clerk
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "sneaky", "password": "sneaky-password", "admin": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let log: Value = app
        .admin
        .get(app.url("/api/admin/access-log?login=clerk&limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    let denied = entries.iter().filter(|e| e["outcome"] == "denied").count();
    assert!(denied >= 5, "every refusal is logged: {log}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "view" && e["record_id"] == id && e["outcome"] == "ok"),
        "views of personal data are logged"
    );
}

async fn roles_combine(app: &TestApp) {
    let r = app
        .admin
        .post(app.url("/api/admin/roles"))
        .json(
            &json!({"name": "readers", "rights": {"entities": {"businesses": {"ops": ["view"]}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let both = app
        .user_with_rights("both", json!({"entities": {"tourists": {"ops": ["view"]}}}))
        .await;
    assert_eq!(
        both.get(app.url("/api/data/businesses"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let r = app
        .admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "two-roles", "password": "two-roles-password", "roles": ["readers", "role-of-both"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user = tabiji_e2e::client();
    user.post(app.url("/api/auth/login"))
        .json(&json!({"login": "two-roles", "password": "two-roles-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        user.get(app.url("/api/data/businesses"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        user.get(app.url("/api/data/tourists"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let r = app
        .admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "weak", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["details"][0]["code"],
        "password_too_short"
    );
    let r = app
        .admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"login": "ghost", "password": "ghost-password", "roles": ["no such role"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

/// Record-level rights through the API: staff of the Aichi office reach Aichi's tourists (and
/// their purchases) in every read path — list, record, search, export, SQL — and cannot write a
/// tourist outside; rights that cannot be applied are refused when saved, naming where.
async fn record_rights_narrow_the_api(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/data/tourists/bulk",
            json!({"items": [
                {"email": "a1@example.jp", "family_name": "愛知一", "prefecture": "愛知県"},
                {"email": "a2@example.jp", "family_name": "愛知二", "prefecture": "愛知県"},
                {"email": "g1@example.jp", "family_name": "岐阜一", "prefecture": "岐阜県"}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let gifu = body["results"][2]["id"].as_i64().unwrap();
    let aichi = body["results"][0]["id"].as_i64().unwrap();
    for (tourist, amount) in [(aichi, 1200), (gifu, 9000)] {
        let (status, body) = app
            .post(
                "/api/data/purchases",
                json!({"tourist_id": tourist, "occurred_at": "2026-11-01 10:00", "amount": amount}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let aichi_only = json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}});

    // Rights that could not be applied are refused with where they are.
    let (status, body) = app
        .post(
            "/api/admin/roles",
            json!({"name": "bad", "rights": {"entities": {"tourists": {"ops": ["view"],
                   "records": {"segment": "vip"}}}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"],
        "rights.entities.tourists.records"
    );
    let (status, body) = app
        .post(
            "/api/admin/roles",
            json!({"name": "bad", "rights": {"entities": {"tourists": {"ops": ["view"],
                   "records": {"field": {"key": "no_such_field", "op": "empty"}}}}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let office = app
        .user_with_rights(
            "aichi-office",
            json!({"entities": {
                "tourists": {"ops": ["view", "create", "edit", "export"], "records": aichi_only},
                "purchases": {"ops": ["view"]},
                "sql": {"ops": ["view"]},
                "flows": {"ops": ["view", "create", "edit", "publish"]},
                "events": {"ops": ["create"]},
                "suppressions": {"ops": ["view"]},
                "reports": {"ops": ["view"]}
            }}),
        )
        .await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;

    let (status, page) = app
        .call_as(&office, get.clone(), "/api/data/tourists", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    let (status, _) = app
        .call_as(
            &office,
            get.clone(),
            &format!("/api/data/tourists/{gifu}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "a tourist outside is, to them, no tourist");
    let (status, found) = app
        .call_as(
            &office,
            post.clone(),
            "/api/data/tourists/search",
            Some(json!({"count": true})),
        )
        .await;
    assert_eq!((status, found["count"].as_u64()), (200, Some(2)), "{found}");
    let (status, purchases) = app
        .call_as(&office, get.clone(), "/api/data/purchases", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        purchases["items"].as_array().unwrap().len(),
        1,
        "{purchases}"
    );

    let r = office
        .post(app.url("/api/data/tourists/export"))
        .json(&json!({"fields": ["email", "prefecture"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(
        csv.contains("a1@example.jp") && csv.contains("a2@example.jp"),
        "{csv}"
    );
    assert!(!csv.contains("g1@example.jp"), "{csv}");

    let (status, answer) = app
        .call_as(
            &office,
            post.clone(),
            "/api/sql/query",
            Some(
                json!({"sql": "SELECT t.prefecture, count(*) AS n, max(p.amount) AS top \
                            FROM tourists t LEFT JOIN purchases p ON p.tourist_id = t.id \
                            GROUP BY t.prefecture"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"], json!([["愛知県", 2, 1200]]), "{answer}");
    let (status, answer) = app
        .call_as(
            &office,
            post.clone(),
            "/api/sql/query",
            Some(json!({"sql": "SELECT count(*) FROM purchases"})),
        )
        .await;
    assert_eq!(
        (status, answer["rows"].clone()),
        (200, json!([[1]])),
        "{answer}"
    );

    // Writes that would leave a tourist outside are refused and change nothing.
    let (status, body) = app
        .call_as(
            &office,
            patch.clone(),
            &format!("/api/data/tourists/{aichi}"),
            Some(json!({"prefecture": "岐阜県"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "outside_your_records");
    let (status, body) = app
        .call_as(
            &office,
            patch,
            &format!("/api/data/tourists/{gifu}"),
            Some(json!({"city": "高山市"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .call_as(
            &office,
            post.clone(),
            "/api/data/tourists",
            Some(json!({"email": "g2@example.jp", "prefecture": "岐阜県"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("outside_your_records"))
    );
    let everyone = app.get("/api/data/tourists").await;
    let stored: Vec<(&str, &str)> = everyone["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["email"].as_str().unwrap(),
                t["prefecture"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            ("a1@example.jp", "愛知県"),
            ("a2@example.jp", "愛知県"),
            ("g1@example.jp", "岐阜県")
        ]
    );

    // A flow runs for every contact its entry selects: not theirs to publish.
    let (status, flow) = app
        .call_as(
            &office,
            post.clone(),
            "/api/flows",
            Some(
                serde_json::from_str(include_str!("../../examples/flows/autumn-campaign.json"))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{flow}");
    for (path, body) in [
        (format!("/api/flows/{}/publish", flow["id"]), None),
        (
            format!("/api/flows/{}/simulate", flow["id"]),
            Some(json!({})),
        ),
        (
            format!("/api/flows/{}/status", flow["id"]),
            Some(json!({"status": "paused"})),
        ),
    ] {
        let (status, answer) = app.call_as(&office, post.clone(), &path, body).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "needs_every_record", "{path}");
    }
    let (status, answer) = app
        .call_as(&office, get.clone(), "/api/suppressions", None)
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("needs_every_record"))
    );
    let (status, _) = app
        .call_as(
            &office,
            get.clone(),
            &format!("/api/runs?contact={gifu}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Events name contacts too: one outside is no contact.
    let (status, report) = app
        .call_as(
            &office,
            post.clone(),
            "/api/events",
            Some(json!({"events": [
                {"id": "e1", "contact_id": aichi, "name": "visited"},
                {"id": "e2", "contact_id": gifu, "name": "visited"},
                {"id": "e3", "email": "g1@example.jp", "name": "visited"}
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    let codes: Vec<&str> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["unknown_contact", "unknown_contact"]);

    // Another's output table may hold ids of anyone: not theirs to read.
    let (status, table) = app
        .post(
            "/api/sql/tables",
            json!({"name": "everyone", "sql": "SELECT id FROM tourists"}),
        )
        .await;
    assert_eq!(status, 201, "{table}");
    let (status, _) = app
        .call_as(&office, get, "/api/sql/tables/everyone", None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call_as(
            &office,
            post,
            "/api/sql/query",
            Some(json!({"sql": "SELECT count(*) FROM everyone"})),
        )
        .await;
    assert!(status == 403 || status == 422, "{status}");

    // A flow's statistics count only the tourists the caller reaches.
    let flow = json!({"format": 1, "name": "everyone's mail",
                      "entry": {"type": "api", "next": "mail"},
                      "nodes": [{"id": "mail", "type": "send", "channel": "test", "template": "news", "next": "end"},
                                {"id": "end", "type": "exit"}]});
    let flow_id = app.publish_and_enter(flow, &[aichi, gifu]).await;
    let stats = format!("/api/flows/{flow_id}/stats");
    let all = app
        .get_until(&stats, |v| v["deliveries"]["sent"] == 2)
        .await;
    assert_eq!(all["outcomes"]["exit"], 2, "{all}");
    let (status, theirs) = app
        .call_as(&office, reqwest::Method::GET, &stats, None)
        .await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["runs"], json!({"finished": 1}), "{theirs}");
    assert_eq!(theirs["outcomes"], json!({"exit": 1}), "{theirs}");
    assert_eq!(theirs["deliveries"], json!({"sent": 1}), "{theirs}");
    assert_eq!(theirs["steps"]["mail"]["sent"], 1, "{theirs}");

    // The same when the flow keeps pseudonyms (privacy mode), and in a message report.
    let private = json!({"format": 1, "name": "private mail", "settings": {"privacy": true},
                         "entry": {"type": "api", "next": "mail"},
                         "nodes": [{"id": "mail", "type": "send", "channel": "test", "template": "quiet", "next": "end"},
                                   {"id": "end", "type": "exit"}]});
    let private_id = app.publish_and_enter(private, &[aichi, gifu]).await;
    let stats = format!("/api/flows/{private_id}/stats");
    app.get_until(&stats, |v| v["deliveries"]["sent"] == 2)
        .await;
    let (status, theirs) = app
        .call_as(&office, reqwest::Method::GET, &stats, None)
        .await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["deliveries"], json!({"sent": 1}), "{theirs}");
    let report = json!({"chart": "table", "source": {"messages": {"flow": private_id, "measures": ["sent"]}}});
    let (status, all) = app.post("/api/reports/run", report.clone()).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["rows"][0]["sent"], 2, "{all}");
    let (status, theirs) = app
        .call_as(
            &office,
            reqwest::Method::POST,
            "/api/reports/run",
            Some(report),
        )
        .await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["rows"][0]["sent"], 1, "{theirs}");
}

#[tokio::test]
async fn record_rights() {
    on_every_backend!(record_rights_narrow_the_api);
}

#[tokio::test]
async fn field_rights() {
    on_every_backend!(hidden_fields_never_appear);
}

#[tokio::test]
async fn role_union() {
    on_every_backend!(roles_combine);
}
