//! Every operation the OpenAPI document names, called by a signed-in user who holds no rights,
//! is refused (403), except the few that are every user's own (their session, password and
//! tokens) or public by design; and a user who may only view is refused every change. The
//! document is the list, so an endpoint added without a rights check fails here.

use serde_json::{Map, Value, json};
use tabiji_e2e::{TestApp, client, on_every_backend};

/// Operations any signed-in user may call: about themselves, or public.
const OWN_OR_PUBLIC: [&str; 11] = [
    "GET /api/health",
    "GET /api/openapi.json",
    "POST /api/auth/login",
    "POST /api/auth/logout",
    "GET /api/auth/me",
    "GET /api/auth/sessions",
    "POST /api/auth/password",
    "GET /api/auth/tokens",
    "POST /api/auth/tokens",
    "DELETE /api/auth/tokens/{id}",
    "GET /api/schema",
];

/// Lists that hold only what the caller may see (their own views, the import flows and export
/// jobs of entities they may import into or export from): empty for a user without rights.
const FILTERED_LISTS: [&str; 5] = [
    "GET /api/views",
    "GET /api/imports",
    "GET /api/imports/flows",
    "GET /api/exports",
    "GET /api/exports/jobs",
];

/// Operations on one user's own things: someone else's is not found.
const OWN_THINGS: [&str; 4] = [
    "GET /api/views/{key}",
    "PUT /api/views/{key}",
    "DELETE /api/views/{key}",
    "POST /api/views/{key}/open",
];

/// Bodies the generic reading of the schema cannot make: what a real client would send.
fn known_body(operation: &str) -> Option<Value> {
    let example = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    Some(match operation {
        "PUT /api/imports/flows/{key}" | "POST /api/imports/check" => {
            example(include_str!("../../examples/imports/ota_users.json"))
        }
        "PUT /api/exports/jobs/{key}" | "POST /api/exports/check" => {
            example(include_str!("../../examples/exports/tourists_nightly.json"))
        }
        "POST /api/segments" => json!({"key": "k", "name": "k", "filter": {"all": []}}),
        filtered if filtered.starts_with("POST /api/data/") && filtered.ends_with("/filtered") => {
            json!({"filter": {"all": []}, "action": {"set": {"city": "x"}}})
        }
        "POST /api/calculated" => json!({"key": "total_bought",
            "label": {"ja": "累計購入額", "en": "Total bought"},
            "store": "purchases", "measure": {"sum": "amount"}}),
        "POST /api/schema/history-stores" => {
            json!({"name": "visits", "label": {"ja": "来訪", "en": "Visits"}})
        }
        "POST /api/schema/{entity}/fields" => json!({"key": "favourite_onsen",
            "label": {"ja": "好きな温泉", "en": "Favourite onsen"}, "type": "text"}),
        "POST /api/analyses/tables" => {
            json!({"name": "deciles", "analysis": {"decile": {"per_tourist": true}}})
        }
        _ => return None,
    })
}

/// Operations that read (or only evaluate) with the view right, or make the caller's own
/// view of what they may read: a viewer may call them.
fn reads(method: &str, path: &str) -> bool {
    method == "GET"
        || (method == "POST" && path == "/api/views")
        || [
            "/search",
            "/count",
            "/aggregate",
            "/simulate",
            "/api/sql/query",
            "/preview",
            "/run",
            "/evaluate",
            "/test",
        ]
        .iter()
        .any(|suffix| path.ends_with(suffix))
}

/// A path with its parameters filled in with values that name nothing in particular.
fn concrete(path: &str) -> String {
    path.replace("{entity}", "tourists")
        .replace("{id}", "1")
        .replace("{version}", "1")
        .replace("{login}", "admin")
        .replace("{name}", "n")
        .replace("{key}", "k")
        .replace("{kind}", "templates")
        .replace("{channel}", "sms")
        .replace("{delivery}", "1")
        .replace("{contact}", "1")
        .replace("{signature}", "x")
}

/// Resolves `#/components/schemas/…` references.
fn deref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            deref(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The smallest value a schema accepts, as far as a generic reading can tell: enough for the
/// body to parse, so that what answers is the rights check and not the parser.
fn minimal(doc: &Value, schema: &Value, depth: usize) -> Value {
    let schema = deref(doc, schema);
    if depth > 6 {
        return Value::Null;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.first().cloned().unwrap_or(Value::Null);
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(first) = schema
            .get(combinator)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return minimal(doc, first, depth + 1);
        }
    }
    let ty = match &schema["type"] {
        Value::String(t) => t.as_str(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "object",
    };
    match ty {
        "string" => json!("x"),
        "integer" | "number" => json!(schema.get("minimum").cloned().unwrap_or(json!(1))),
        "boolean" => json!(false),
        "array" => match schema.get("items") {
            Some(items) => json!([minimal(doc, items, depth + 1)]),
            None => json!([]),
        },
        "null" => Value::Null,
        _ => {
            let mut object = Map::new();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for key in required {
                let property = &schema["properties"][key];
                object.insert(key.to_string(), minimal(doc, property, depth + 1));
            }
            Value::Object(object)
        }
    }
}

/// Calls every operation as `user`; returns `(operation, status, answer)` for each.
async fn call_every_operation(
    app: &TestApp,
    user: &reqwest::Client,
    doc: &Value,
    run_id: i64,
) -> Vec<(String, u16, String)> {
    let mut answers = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let name = format!("{} {path}", method.to_uppercase());
            if OWN_OR_PUBLIC.contains(&name.as_str())
                || OWN_THINGS.contains(&name.as_str())
                || !path.starts_with("/api/")
            {
                continue;
            }
            let mut url = concrete(path);
            if path.starts_with("/api/imports/{id}") {
                url = path.replace("{id}", &run_id.to_string());
            }
            if method == "put" && path.ends_with("/bulk") {
                url.push_str("?key=email");
            }
            let mut request = user.request(method.to_uppercase().parse().unwrap(), app.url(&url));
            let body = &operation["requestBody"]["content"];
            if let Some(known) = known_body(&name) {
                request = request.json(&known);
            } else if let Some(json) = body.get("application/json") {
                request = request.json(&minimal(doc, &json["schema"], 0));
            } else if body.get("text/csv").is_some() || body.get("text/plain").is_some() {
                request = request.body("email\nx@example.jp\n");
            }
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            answers.push((name, status, r.text().await.unwrap()));
        }
    }
    answers
}

async fn every_operation_checks_rights(app: &TestApp) {
    let doc: Value = client()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Things to be refused: an import flow, an export job, an import run.
    for (path, body) in [
        (
            "/api/imports/flows/k",
            include_str!("../../examples/imports/ota_users.json"),
        ),
        (
            "/api/exports/jobs/k",
            include_str!("../../examples/exports/tourists_nightly.json"),
        ),
    ] {
        let body: Value = serde_json::from_str(body).unwrap();
        let (status, answer) = app.call(reqwest::Method::PUT, path, Some(body)).await;
        assert!(status == 200 || status == 201, "{path}: {answer}");
    }
    let r = app
        .admin
        .post(app.url("/api/imports/flows/k/run?file=users.csv"))
        .header("content-type", "text/csv")
        .body(include_str!("../../examples/imports/ota_users.csv"))
        .send()
        .await
        .unwrap();
    let run: Value = r.json().await.unwrap();
    let run_id = run["id"].as_i64().unwrap_or_else(|| panic!("{run}"));

    let nobody = app.user_with_rights("nobody", json!({})).await;
    let answers = call_every_operation(app, &nobody, &doc, run_id).await;
    assert!(answers.len() > 80, "{} operations", answers.len());
    let let_through: Vec<String> = answers
        .iter()
        .filter(|(name, status, body)| {
            if FILTERED_LISTS.contains(&name.as_str()) {
                let answer: Value = serde_json::from_str(body).unwrap();
                let list = answer.as_object().unwrap().values().next().unwrap();
                return *status != 200 || list != &json!([]);
            }
            *status != 403
        })
        .map(|(name, status, body)| format!("{name} → {status} {body}"))
        .collect();
    assert!(
        let_through.is_empty(),
        "a user without rights got past these:\n{}",
        let_through.join("\n")
    );

    // A viewer of everything may read, and is refused every change.
    let entities = [
        "tourists",
        "businesses",
        "inquiries",
        "inquiry_responses",
        "interactions",
        "purchases",
        "point_ledger",
        "flows",
        "segments",
        "lists",
        "reports",
        "sql",
        "suppressions",
        "events",
        "metrics",
    ];
    let rights: Map<String, Value> = entities
        .iter()
        .map(|e| (e.to_string(), json!({"ops": ["view"]})))
        .collect();
    let viewer = app
        .user_with_rights("viewer", json!({"entities": rights}))
        .await;
    let answers = call_every_operation(app, &viewer, &doc, run_id).await;
    let changed: Vec<String> = answers
        .iter()
        .filter(|(name, status, _)| {
            let (method, path) = name.split_once(' ').unwrap();
            !reads(method, path) && *status != 403
        })
        .map(|(name, status, body)| format!("{name} → {status} {body}"))
        .collect();
    assert!(
        changed.is_empty(),
        "a viewer got past these changes:\n{}",
        changed.join("\n")
    );
    let log = app
        .get("/api/admin/access-log?login=nobody&outcome=denied&limit=1000")
        .await;
    assert!(
        log["entries"].as_array().unwrap().len() > 50,
        "refusals are logged: {log}"
    );
}

#[tokio::test]
async fn denial_matrix() {
    on_every_backend!(every_operation_checks_rights);
}
