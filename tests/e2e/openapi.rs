//! The OpenAPI document describes every entity, including what operators added.

use serde_json::{Value, json};
use tabiji_e2e::{TestApp, client, on_every_backend};

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

async fn describes_the_live_schema(app: &TestApp) {
    let doc: Value = client()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for entity in [
        "tourists",
        "businesses",
        "inquiries",
        "inquiry_responses",
        "interactions",
        "purchases",
        "point_ledger",
    ] {
        assert!(
            doc["paths"][format!("/api/data/{entity}")]["post"].is_object(),
            "{entity}"
        );
        assert!(
            doc["components"]["schemas"][entity]["properties"].is_object(),
            "{entity}"
        );
    }
    assert!(doc["paths"]["/api/data/tourists/search"]["post"].is_object());
    assert!(doc["paths"]["/api/segments/{key}/members"]["get"].is_object());
    // The filter language is described, its references resolving among the components.
    let text = doc.to_string();
    assert!(!text.contains("#/$defs/"));
    for name in ["Filter", "FieldTest", "HistoryTest", "Period", "Operator"] {
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
    assert!(doc["components"]["schemas"]["ImportFlow"]["properties"]["columns"].is_object());
    for path in [
        "/api/imports/flows/{key}/run",
        "/api/imports/{id}/rejected",
        "/api/sql/query",
        "/api/sql/tables/{name}/copy",
        "/api/reports/run",
        "/api/dashboards/{key}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} points outside the components"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} resolves to nothing"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["tourists"]["required"],
        json!(["email"])
    );
    assert!(
        doc["components"]["schemas"]["tourists"]["properties"]
            .as_object()
            .unwrap()
            .len()
            >= 33
    );

    app.admin
        .post(app.url("/api/schema/tourists/fields"))
        .json(&json!({"key": "favourite_onsen", "label": {"ja": "好きな温泉", "en": "Favourite onsen"}, "type": "single_choice", "options": ["下呂", "奥飛騨"]}))
        .send()
        .await
        .unwrap();
    let doc: Value = client()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["components"]["schemas"]["tourists"]["properties"]["favourite_onsen"]["enum"],
        json!(["下呂", "奥飛騨"])
    );
}

#[tokio::test]
async fn openapi_document() {
    on_every_backend!(describes_the_live_schema);
}
