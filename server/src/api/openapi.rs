//! `/api/openapi.json`, generated from the live schemas so that custom fields and history
//! stores are described as soon as they exist.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use tabiji_model::content::ContentKind;
use tabiji_model::{EntitySchema, FieldDef, FieldType};

use crate::AppState;

fn field_schema(field: &FieldDef) -> Value {
    let mut s = match &field.ty {
        FieldType::Text { max_len } => json!({"type": "string", "maxLength": max_len}),
        FieldType::LongText => {
            json!({"type": "string", "maxLength": tabiji_model::field::LONG_TEXT_MAX})
        }
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Phone => {
            json!({"type": "string", "description": "digits only when read back; hyphens, spaces and full-width digits accepted"})
        }
        FieldType::PostalCode => json!({"type": "string", "pattern": "^[0-9]{3}-[0-9]{4}$"}),
        FieldType::Url => json!({"type": "string", "format": "uri"}),
        FieldType::Integer { min, max } => {
            let mut s = json!({"type": "integer", "format": "int64"});
            if let Some(min) = min {
                s["minimum"] = json!(min);
            }
            if let Some(max) = max {
                s["maximum"] = json!(max);
            }
            s
        }
        FieldType::Decimal => json!({"type": "number"}),
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::MonthDay => json!({"type": "string", "pattern": "^[0-9]{2}-[0-9]{2}$"}),
        FieldType::Timestamp => json!({"type": "string", "format": "date-time"}),
        FieldType::SingleChoice { options } => json!({"type": "string", "enum": options}),
        FieldType::MultiChoice { options } => {
            json!({"type": "array", "items": {"type": "string", "enum": options}, "uniqueItems": true})
        }
        FieldType::Password => {
            json!({"type": "string", "writeOnly": true, "minLength": tabiji_model::field::PASSWORD_MIN})
        }
        FieldType::Reference { entity } => {
            json!({"type": "integer", "format": "int64", "minimum": 1, "description": format!("id of a record in {entity}")})
        }
    };
    let label = format!("{} / {}", field.label.ja, field.label.en);
    s["title"] = json!(label);
    if let Some(kind) = s.get("type").cloned() {
        s["type"] = json!([kind, "null"]);
    }
    if field.read_only {
        s["readOnly"] = json!(true);
    }
    s
}

fn record_schema(entity: &EntitySchema) -> Value {
    let mut props = Map::new();
    props.insert(
        "id".into(),
        json!({"type": "integer", "format": "int64", "readOnly": true}),
    );
    for f in &entity.fields {
        props.insert(f.key.clone(), field_schema(f));
    }
    props.insert(
        "created_at".into(),
        json!({"type": "string", "format": "date-time", "readOnly": true}),
    );
    props.insert(
        "updated_at".into(),
        json!({"type": "string", "format": "date-time", "readOnly": true}),
    );
    let required: Vec<&str> = entity
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.key.as_str())
        .collect();
    json!({
        "type": "object",
        "title": format!("{} / {}", entity.label.ja, entity.label.en),
        "description": "Fields the caller may not view are absent; passwords are never returned.",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn error_responses() -> Value {
    let err = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut out = Map::new();
    for (code, what) in [
        (
            "400",
            "The request body is not valid JSON or not the expected shape.",
        ),
        (
            "401",
            "Not signed in, or the session ended (`session_ended` with its `reason`).",
        ),
        ("403", "The caller lacks the right; the attempt is logged."),
        ("404", "No such entity or record."),
        ("409", "A unique value is taken."),
        (
            "422",
            "Invalid values; `details` names each item and field.",
        ),
        (
            "429",
            "Too many failed sign-ins (`login_locked`, `too_many_attempts`); `Retry-After` says how long to wait.",
        ),
        (
            "503",
            "The database cannot be reached just now (`database_unavailable`); `Retry-After` says when to try again.",
        ),
    ] {
        let mut r = err.clone();
        r["description"] = json!(what);
        out.insert(code.into(), r);
    }
    Value::Object(out)
}

fn with_errors(mut responses: Value) -> Value {
    if let (Value::Object(ours), Value::Object(errors)) = (&mut responses, error_responses()) {
        for (k, v) in errors {
            ours.entry(k).or_insert(v);
        }
    }
    responses
}

fn content_schema(kind: ContentKind) -> Value {
    tabiji_model::content::json_schema(kind)
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn entity_paths(entity: &EntitySchema, paths: &mut Map<String, Value>) {
    let name = &entity.name;
    let record = json!({"$ref": format!("#/components/schemas/{name}")});
    let tag = json!([name]);
    let id_param = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}}]);
    let body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let results = json!({"type": "object", "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/ItemResult"}}}});
    paths.insert(
        format!("/api/data/{name}"),
        json!({
            "get": {"tags": tag, "summary": format!("List {name} (keyset pagination by id)"),
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "integer", "format": "int64"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "parent_id", "in": "query", "schema": {"type": "integer", "format": "int64"}}],
                "responses": with_errors(json!({"200": ok("A page", json!({"type": "object", "properties": {"items": {"type": "array", "items": record}, "next_after": {"type": "integer"}}}))}))},
            "post": {"tags": tag, "summary": format!("Create one of {name}"), "requestBody": body(record.clone()),
                "responses": with_errors(json!({
                    "201": ok("Created", json!({"type": "object", "properties": {"status": {"type": "string"}, "record": record}})),
                    "200": ok("Recorded before (point ledger: same source_system and transaction_id)", json!({"type": "object", "properties": {"status": {"type": "string"}, "record": record}}))}))}
        }),
    );
    paths.insert(
        format!("/api/data/{name}/bulk"),
        json!({
            "post": {"tags": tag, "summary": "Create many, all or nothing", "requestBody": body(json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": record}}})),
                "responses": with_errors(json!({"201": ok("Created", results.clone())}))},
            "put": {"tags": tag, "summary": "Create or update many, matched by a unique field (?key=email): the good items are written, the others come back with their index and reason",
                "parameters": [{"name": "key", "in": "query", "required": true, "schema": {"type": "string"}, "description": "a unique field of the entity"}],
                "requestBody": body(json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "maxItems": 100000, "items": {"type": "object"}}}})),
                "responses": with_errors(json!({"200": ok("What happened", json!({"type": "object", "properties": {
                    "created": {"type": "integer"}, "updated": {"type": "integer"}, "unchanged": {"type": "integer"}, "merged": {"type": "integer"},
                    "rejected": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "field": {"type": ["string", "null"]}, "reason": {"type": "string"}}}}}}))}))},
            "patch": {"tags": tag, "summary": "Update many (each item has its id), all or nothing", "requestBody": body(json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"type": "object"}}}})),
                "responses": with_errors(json!({"200": ok("Updated", results.clone())}))},
            "delete": {"tags": tag, "summary": "Delete many by id, all or nothing", "requestBody": body(json!({"type": "object", "required": ["ids"], "properties": {"ids": {"type": "array", "items": {"type": "integer", "format": "int64"}}}})),
                "responses": with_errors(json!({"200": ok("Deleted", results)}))}
        }),
    );
    let filter = json!({"$ref": "#/components/schemas/Filter"});
    paths.insert(
        format!("/api/data/{name}/search"),
        json!({
            "post": {"tags": tag, "summary": format!("Find {name} with a filter (docs/search.md): sorted on any field, keyset pages, optionally counted"),
                "requestBody": body(json!({"type": "object", "properties": {
                    "filter": filter, "sort": {"type": "object", "required": ["field"], "properties": {"field": {"type": "string"}, "desc": {"type": "boolean"}}},
                    "after": {"type": "string", "description": "next_after of the previous page"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000}, "count": {"type": "boolean"},
                    "zone": {"type": "string", "description": "zone of relative dates; Asia/Tokyo by default"}}})),
                "responses": with_errors(json!({"200": ok("A page", json!({"type": "object", "properties": {
                    "items": {"type": "array", "items": record}, "next_after": {"type": "string"}, "count": {"type": "integer"}}}))}))}
        }),
    );
    paths.insert(
        format!("/api/data/{name}/count"),
        json!({
            "post": {"tags": tag, "summary": format!("Count the {name} a filter matches"),
                "requestBody": body(json!({"type": "object", "properties": {"filter": filter, "zone": {"type": "string"}}})),
                "responses": with_errors(json!({"200": ok("The count", json!({"type": "object", "properties": {"count": {"type": "integer"}}}))}))}
        }),
    );
    paths.insert(
        format!("/api/data/{name}/aggregate"),
        json!({
            "post": {"tags": tag, "summary": format!("Count, sum, average, minimum, maximum of {name} a filter matches, grouped by up to two fields or date buckets"),
                "requestBody": body(json!({"type": "object", "properties": {
                    "filter": filter,
                    "group_by": {"type": "array", "maxItems": 2, "items": {"type": "object", "required": ["field"], "properties": {
                        "field": {"type": "string"}, "bucket": {"type": "string", "enum": ["day", "week", "month", "year"]}}}},
                    "measures": {"type": "array", "items": {"description": "\"count\", or {\"sum\"|\"avg\"|\"min\"|\"max\": field}"}},
                    "zone": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 10000}}})),
                "responses": with_errors(json!({"200": ok("Groups", json!({"type": "object", "properties": {
                    "groups": {"type": "array", "items": {"type": "object"}}, "truncated": {"type": "boolean"}}}))}))}
        }),
    );
    paths.insert(
        format!("/api/data/{name}/filtered"),
        json!({
            "post": {"tags": tag, "summary": format!("Set fields, add or remove choices, or delete every one of {name} a filter matches; preview first"),
                "requestBody": body(json!({"type": "object", "required": ["filter", "action"], "properties": {
                    "filter": filter,
                    "action": {"description": "{\"set\": {…}}, {\"add_choices\": {…}}, {\"remove_choices\": {…}} or \"delete\""},
                    "preview": {"type": "boolean"}, "expected_count": {"type": "integer"}, "zone": {"type": "string"}}})),
                "responses": with_errors(json!({"200": ok("What was (or would be) done", json!({"type": "object", "properties": {
                    "matched": {"type": "integer"}, "changed": {"type": "integer"}, "preview": {"type": "boolean"}}}))}))}
        }),
    );
    paths.insert(
        format!("/api/data/{name}/{{id}}"),
        json!({
            "parameters": id_param.clone(),
            "get": {"tags": tag, "summary": format!("Read one of {name}"), "responses": with_errors(json!({"200": ok("The record", record.clone())}))},
            "patch": {"tags": tag, "summary": format!("Change fields of one of {name}"), "requestBody": body(json!({"type": "object"})),
                "responses": with_errors(json!({"200": ok("The record after the change", record)}))},
            "delete": {"tags": tag, "summary": format!("Delete one of {name} and what belongs to it"), "responses": with_errors(json!({"204": {"description": "Deleted"}}))}
        }),
    );
    paths.insert(
        format!("/api/data/{name}/{{id}}/timeline"),
        json!({
            "parameters": id_param,
            "get": {"tags": tag, "summary": format!("One of {name}'s history rows (and a tourist's messages, events and flow runs), newest first"),
                "parameters": [
                    {"name": "before", "in": "query", "schema": {"type": "string"}, "description": "next_before of the previous page"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {"name": "sources", "in": "query", "schema": {"type": "string"}, "description": "comma-separated source keys; every one the caller may view when left out"}],
                "responses": with_errors(json!({"200": ok("A page", json!({"type": "object", "required": ["entries", "sources"], "properties": {
                    "entries": {"type": "array", "items": {"type": "object", "required": ["source", "id", "data"], "properties": {
                        "source": {"type": "string"}, "id": {"type": "integer"}, "at": {"type": ["string", "null"]}, "data": {}}}},
                    "next_before": {"type": "string"},
                    "sources": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}, "label": {"type": "object"}, "history": {"type": "boolean"}}}}}}))}))}
        }),
    );
}

pub async fn document(State(state): State<AppState>) -> Json<Value> {
    let schemas = state.store.schemas();
    let mut paths = Map::new();
    let mut components = Map::new();
    components.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
            "reason": {"type": "string", "description": "why a session ended (with code session_ended)"},
            "details": {"type": "array", "items": {"type": "object", "properties": {
                "index": {"type": "integer"}, "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}}}}}}),
    );
    components.insert(
        "ItemResult".into(),
        json!({"type": "object", "properties": {"index": {"type": "integer"}, "id": {"type": "integer"}, "status": {"type": "string", "enum": ["created", "existing", "updated", "deleted"]}}}),
    );
    // The filter language's own schema, its definitions moved among the components.
    // Its references to itself (`#`, the root of its own document) become references to the
    // Filter component.
    let filter = tabiji_model::filter::json_schema()
        .to_string()
        .replace("#/$defs/", "#/components/schemas/")
        .replace(
            r##""$ref":"#""##,
            r##""$ref":"#/components/schemas/Filter""##,
        );
    let mut filter: Map<String, Value> = serde_json::from_str(&filter).expect("still JSON");
    if let Some(Value::Object(defs)) = filter.remove("$defs") {
        components.extend(defs);
    }
    filter.remove("$schema");
    components.insert("Filter".into(), Value::Object(filter));
    // Import flows and export jobs likewise, their definitions prefixed so no name meets the
    // filter's.
    for (name, prefix, schema) in [
        ("ImportFlow", "Import", tabiji_model::import::json_schema()),
        ("ExportJob", "Export", tabiji_model::export::json_schema()),
        (
            "Template",
            "Template",
            content_schema(ContentKind::Template),
        ),
        ("Part", "Part", content_schema(ContentKind::Part)),
        ("Snippet", "Snippet", content_schema(ContentKind::Snippet)),
        (
            "ChannelSettings",
            "Channel",
            tabiji_model::channel::json_schema(),
        ),
    ] {
        let text = schema
            .to_string()
            .replace("#/$defs/", &format!("#/components/schemas/{prefix}"));
        let mut schema: Map<String, Value> = serde_json::from_str(&text).expect("still JSON");
        if let Some(Value::Object(defs)) = schema.remove("$defs") {
            components.extend(defs.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
        schema.remove("$schema");
        components.insert(name.into(), Value::Object(schema));
    }
    let grouping = json!({"type": "object", "required": ["field"], "properties": {
        "field": {"type": "string"}, "bucket": {"type": "string", "enum": ["day", "week", "month", "year"]}}});
    let measure = json!({"oneOf": [{"type": "string", "enum": ["count"]}, {"type": "object", "minProperties": 1, "maxProperties": 1,
        "properties": {"sum": {"type": "string"}, "avg": {"type": "string"}, "min": {"type": "string"}, "max": {"type": "string"}}}]});
    components.insert(
        "ReportDefinition".into(),
        json!({"type": "object", "required": ["chart", "source"], "properties": {
            "chart": {"type": "string", "enum": ["bar", "line", "pie", "table", "funnel"]},
            "zone": {"type": "string", "default": "Asia/Tokyo"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
            "source": {"oneOf": [
                {"type": "object", "required": ["records"], "properties": {"records": {"type": "object", "required": ["entity"], "properties": {
                    "entity": {"type": "string"}, "filter": {"$ref": "#/components/schemas/Filter"},
                    "group_by": {"type": "array", "maxItems": 2, "items": grouping}, "measures": {"type": "array", "items": measure}}}}},
                {"type": "object", "required": ["messages"], "properties": {"messages": {"type": "object", "properties": {
                    "flow": {"type": "integer"}, "period": {"$ref": "#/components/schemas/Period"},
                    "recipients": {"$ref": "#/components/schemas/Filter"},
                    "group_by": {"type": "array", "maxItems": 2, "items": {"type": "string",
                        "description": "flow, node, template, channel, day, week, month, age_group or tourists.FIELD"}},
                    "measures": {"type": "array", "items": {"type": "string", "enum": ["sent", "failed", "opened", "clicked", "open_rate", "click_rate"]}}}}}},
                {"type": "object", "required": ["analysis"], "properties": {"analysis": {"type": "object",
                    "description": "{\"decile\": {…}}, {\"rfm\": {…}} or {\"basket\": {…}}: see docs/reports.md"}}}
            ]}}}),
    );
    for entity in schemas.all() {
        components.insert(entity.name.clone(), record_schema(entity));
        entity_paths(entity, &mut paths);
    }
    paths.insert("/api/health".into(), json!({"get": {"summary": "Liveness and database check", "security": [], "responses": {"200": ok("Up", json!({"type": "object"})), "503": {"description": "The database cannot be reached (`database_unavailable`); `Retry-After` says when to look again", "content": {"application/json": {"schema": {"type": "object"}}}}}}}));
    paths.insert("/api/auth/login".into(), json!({"post": {"summary": "Sign in; sets the session cookie", "security": [],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["login", "password"], "properties": {"login": {"type": "string"}, "password": {"type": "string"}}}}}},
        "responses": with_errors(json!({"200": ok("Signed in", json!({"type": "object"}))}))}}));
    paths.insert("/api/auth/logout".into(), json!({"post": {"summary": "Sign out (answers 204 with or without a session)", "security": [], "responses": {"204": {"description": "Signed out"}}}}));
    paths.insert("/api/auth/me".into(), json!({"get": {"summary": "The caller and their rights", "responses": with_errors(json!({"200": ok("The caller", json!({"type": "object"}))}))}}));
    paths.insert("/api/schema".into(), json!({"get": {"summary": "Entities and fields the caller may see", "responses": with_errors(json!({"200": ok("Schemas", json!({"type": "object"}))}))}}));
    paths.insert("/api/schema/{entity}".into(), json!({"get": {"summary": "One entity's fields as the caller sees them",
        "parameters": [{"name": "entity", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": with_errors(json!({"200": ok("Schema", json!({"type": "object"}))}))}}));
    paths.insert("/api/schema/{entity}/fields".into(), json!({"post": {"summary": "Add a custom field (needs the schema right)",
        "parameters": [{"name": "entity", "in": "path", "required": true, "schema": {"type": "string"}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "label", "type"]}}}},
        "responses": with_errors(json!({"201": ok("The field", json!({"type": "object"}))}))}}));
    paths.insert("/api/schema/history-stores".into(), json!({"post": {"summary": "Create a history store linked to tourists (administrators)",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "label"]}}}},
        "responses": with_errors(json!({"201": ok("The store", json!({"type": "object"}))}))}}));
    let flow_id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}}]);
    let flow_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "a flow of format 1 (docs/flows.md)"}}}});
    paths.insert("/api/flows".into(), json!({
        "get": {"summary": "Flows with their status and the problems of their drafts", "responses": with_errors(json!({"200": ok("Flows", json!({"type": "object"}))}))},
        "post": {"summary": "Save a new flow draft", "requestBody": flow_body.clone(), "responses": with_errors(json!({"201": ok("The flow", json!({"type": "object"}))}))}}));
    paths.insert("/api/flows/{id}".into(), json!({"parameters": flow_id.clone(),
        "get": {"summary": "A flow and its draft", "responses": with_errors(json!({"200": ok("The flow", json!({"type": "object"}))}))},
        "put": {"summary": "Replace the draft", "requestBody": flow_body, "responses": with_errors(json!({"200": ok("The flow", json!({"type": "object"}))}))}}));
    paths.insert("/api/flows/{id}/publish".into(), json!({"parameters": flow_id.clone(),
        "post": {"summary": "Publish the draft as the next immutable version (needs the publish right)", "responses": with_errors(json!({"200": ok("The flow", json!({"type": "object"}))}))}}));
    paths.insert("/api/flows/{id}/status".into(), json!({"parameters": flow_id.clone(),
        "post": {"summary": "Pause (paused), resume (active) or stop (stopped) a published flow",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["active", "paused", "stopped"]}}}}}},
                 "responses": with_errors(json!({"200": ok("The flow", json!({"type": "object"}))}))}}));
    paths.insert("/api/flows/{id}/versions/{version}".into(), json!({
        "parameters": [flow_id[0].clone(), {"name": "version", "in": "path", "required": true, "schema": {"type": "integer"}}],
        "get": {"summary": "A published version exactly as published", "responses": with_errors(json!({"200": ok("The definition", json!({"type": "object"}))}))}}));
    let key =
        json!([{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let segment_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "name", "filter"], "properties": {
        "key": {"type": "string"}, "name": {"type": "string"}, "entity": {"type": "string", "default": "tourists"},
        "filter": {"$ref": "#/components/schemas/Filter"}, "description": {"type": "string"}}}}}});
    paths.insert("/api/segments".into(), json!({
        "get": {"summary": "Saved segments (needs the view right on segments)", "responses": with_errors(json!({"200": ok("Segments", json!({"type": "object"}))}))},
        "post": {"summary": "Save a segment: a named filter, evaluated whenever it is used", "requestBody": segment_body,
                 "responses": with_errors(json!({"201": ok("The segment", json!({"type": "object"}))}))}}));
    paths.insert("/api/segments/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "A segment", "responses": with_errors(json!({"200": ok("The segment", json!({"type": "object"}))}))},
        "patch": {"summary": "Rename it, or change its filter or description", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                  "responses": with_errors(json!({"200": ok("The segment", json!({"type": "object"}))}))},
        "delete": {"summary": "Delete a segment no other segment and no running flow uses", "responses": with_errors(json!({"204": {"description": "Deleted"}}))}}));
    paths.insert("/api/segments/{key}/count".into(), json!({"parameters": key.clone(),
        "get": {"summary": "How many records the segment holds now", "responses": with_errors(json!({"200": ok("The count", json!({"type": "object"}))}))}}));
    paths.insert("/api/segments/{key}/members".into(), json!({"parameters": key,
        "get": {"summary": "The segment's records: ?sort=FIELD&desc=true&limit=N&after=CURSOR&count=true",
                "responses": with_errors(json!({"200": ok("A page", json!({"type": "object"}))}))}}));
    let list_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "name"], "properties": {
        "key": {"type": "string"}, "name": {"type": "string"}, "entity": {"type": "string", "default": "tourists"}, "description": {"type": "string"}}}}}});
    let members_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
        "ids": {"type": "array", "items": {"type": "integer"}}, "filter": {"$ref": "#/components/schemas/Filter"}, "zone": {"type": "string"}}}}}});
    paths.insert("/api/lists".into(), json!({
        "get": {"summary": "Static lists (needs the view right on lists)", "responses": with_errors(json!({"200": ok("Lists", json!({"type": "object"}))}))},
        "post": {"summary": "Create a static list", "requestBody": list_body, "responses": with_errors(json!({"201": ok("The list", json!({"type": "object"}))}))}}));
    paths.insert("/api/lists/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "A list and its member count", "responses": with_errors(json!({"200": ok("The list", json!({"type": "object"}))}))},
        "delete": {"summary": "Drop a list no segment uses", "responses": with_errors(json!({"204": {"description": "Dropped"}}))}}));
    paths.insert("/api/lists/{key}/members".into(), json!({"parameters": key.clone(),
        "get": {"summary": "The list's records: ?sort=FIELD&desc=true&limit=N&after=CURSOR&count=true", "responses": with_errors(json!({"200": ok("A page", json!({"type": "object"}))}))},
        "post": {"summary": "Add records by ids or by a filter (edit right)", "requestBody": members_body.clone(),
                 "responses": with_errors(json!({"200": ok("changed, unchanged, missing, members", json!({"type": "object"}))}))}}));
    paths.insert("/api/lists/{key}/members/remove".into(), json!({"parameters": key.clone(),
        "post": {"summary": "Remove records by ids or by a filter (edit right)", "requestBody": members_body,
                 "responses": with_errors(json!({"200": ok("changed, unchanged, missing, members", json!({"type": "object"}))}))}}));
    let view_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "name", "definition"], "properties": {
        "key": {"type": "string"}, "name": {"type": "string"}, "favourite": {"type": "boolean"},
        "definition": {"type": "object", "properties": {
            "entity": {"type": "string", "default": "tourists"}, "filter": {"$ref": "#/components/schemas/Filter"},
            "period_field": {"type": "string"}, "period": {"$ref": "#/components/schemas/Period"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "sort": {"type": "object", "properties": {"field": {"type": "string"}, "desc": {"type": "boolean"}}}, "zone": {"type": "string"}}}}}}}});
    paths.insert("/api/views".into(), json!({
        "get": {"summary": "The caller's own views, favourites first", "responses": with_errors(json!({"200": ok("Views", json!({"type": "object"}))}))},
        "post": {"summary": "Keep a view of one's own", "requestBody": view_body.clone(), "responses": with_errors(json!({"201": ok("The view", json!({"type": "object"}))}))}}));
    paths.insert("/api/views/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "One of the caller's views", "responses": with_errors(json!({"200": ok("The view", json!({"type": "object"}))}))},
        "put": {"summary": "Replace it", "requestBody": view_body, "responses": with_errors(json!({"200": ok("The view", json!({"type": "object"}))}))},
        "delete": {"summary": "Delete it", "responses": with_errors(json!({"204": {"description": "Deleted"}}))}}));
    paths.insert("/api/views/{key}/open".into(), json!({"parameters": key.clone(),
        "post": {"summary": "Open a view: its records in the period picked now (or its own), paged",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                     "period": {"$ref": "#/components/schemas/Period"}, "after": {"type": "string"}, "limit": {"type": "integer"}, "count": {"type": "boolean"}}}}}},
                 "responses": with_errors(json!({"200": ok("columns, period, items, next_after, count", json!({"type": "object"}))}))}}));
    let calculated_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "label", "store", "measure"], "properties": {
        "key": {"type": "string", "description": "the tourist field it fills"},
        "label": {"type": "object", "properties": {"ja": {"type": "string"}, "en": {"type": "string"}}},
        "store": {"type": "string", "description": "a history store of tourists"},
        "measure": {"oneOf": [{"type": "string", "enum": ["count", "first_at", "last_at"]},
            {"type": "object", "minProperties": 1, "maxProperties": 1, "properties": {"sum": {"type": "string"}, "avg": {"type": "string"}, "min": {"type": "string"}, "max": {"type": "string"}}}]},
        "filter": {"$ref": "#/components/schemas/Filter"}, "period": {"$ref": "#/components/schemas/Period"}}}}}});
    paths.insert("/api/calculated".into(), json!({
        "get": {"summary": "Calculated attributes of tourists", "responses": with_errors(json!({"200": ok("Attributes", json!({"type": "object"}))}))},
        "post": {"summary": "Define one: adds its read-only tourist field and computes it for everyone (schema right on tourists)", "requestBody": calculated_body,
                 "responses": with_errors(json!({"201": ok("The attribute", json!({"type": "object"}))}))}}));
    paths.insert("/api/calculated/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "One attribute", "responses": with_errors(json!({"200": ok("The attribute", json!({"type": "object"}))}))},
        "delete": {"summary": "Stop keeping it (the field stays with its last values)", "responses": with_errors(json!({"204": {"description": "Stopped"}}))}}));
    paths.insert("/api/calculated/{key}/refresh".into(), json!({"parameters": key.clone(),
        "post": {"summary": "Recompute it for every tourist now", "responses": with_errors(json!({"200": ok("How many values changed", json!({"type": "object"}))}))}}));
    let flow_body = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImportFlow"}}}});
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}]);
    paths.insert("/api/imports".into(), json!({
        "get": {"summary": "The import history, newest first: file, flow as run, rows read, created, updated, unchanged, deleted, merged, rejected",
                "parameters": [{"name": "flow", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": with_errors(json!({"200": ok("Runs", json!({"type": "object"}))}))}}));
    paths.insert("/api/data/{entity}/export".into(), json!({
        "parameters": [{"name": "entity", "in": "path", "required": true, "schema": {"type": "string"}}],
        "post": {"summary": "The records a filter matches as a file for Excel, streamed (export right; only fields the caller may view)",
                 "parameters": [
                     {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "csv_sjis", "xlsx"], "default": "csv"}},
                     {"name": "header", "in": "query", "schema": {"type": "string", "enum": ["keys", "ja", "en"], "default": "keys"}}],
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                     "filter": {"$ref": "#/components/schemas/Filter"},
                     "fields": {"type": "array", "items": {"type": "string"}},
                     "zone": {"type": "string", "default": "Asia/Tokyo"}}}}}},
                 "responses": with_errors(json!({"200": {"description": "The file", "content": {
                     "text/csv": {"schema": {"type": "string", "format": "binary"}},
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}}}}}))}}));
    paths.insert("/api/points".into(), json!({
        "post": {"summary": "A point grant, use, expiry or adjustment keyed by the tourist's e-mail: applied at once, kept once per (source_system, transaction_id) (create right on point_ledger, view of tourists' e-mail)",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
                     "required": ["email", "kind", "points", "source_system", "transaction_id", "occurred_at"],
                     "properties": {"email": {"type": "string"}, "kind": {"type": "string", "enum": ["grant", "use", "expire", "adjust"]},
                         "points": {"type": "integer"}, "source_system": {"type": "string"}, "transaction_id": {"type": "string"},
                         "occurred_at": {"type": "string"}, "reason": {"type": "string"}}}}}},
                 "responses": with_errors(json!({"201": ok("Recorded: status, balance, record", json!({"type": "object"})),
                     "200": ok("Recorded before (the same transaction): status existing", json!({"type": "object"}))}))}}));
    paths.insert("/api/imports/check".into(), json!({
        "post": {"summary": "Check an import flow against the schema without saving it", "requestBody": flow_body.clone(),
                 "responses": with_errors(json!({"200": ok("Valid", json!({"type": "object"}))}))}}));
    paths.insert("/api/imports/flows".into(), json!({
        "get": {"summary": "Import flows whose entity the caller may import into", "responses": with_errors(json!({"200": ok("Flows", json!({"type": "object"}))}))}}));
    paths.insert("/api/imports/flows/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "One import flow", "responses": with_errors(json!({"200": ok("The flow", json!({"type": "object"}))}))},
        "put": {"summary": "Save an import flow (import right on its entity, and the rights its rows need)", "requestBody": flow_body,
                "responses": with_errors(json!({"200": ok("The saved flow", json!({"type": "object"}))}))},
        "delete": {"summary": "Delete an import flow (its history stays)", "responses": with_errors(json!({"204": {"description": "Deleted"}}))}}));
    paths.insert("/api/imports/flows/{key}/run".into(), json!({"parameters": key.clone(),
        "post": {"summary": "Run the flow over the file sent as the body; a file the flow cannot read gives a failed run",
                 "parameters": [{"name": "file", "in": "query", "schema": {"type": "string"}, "description": "the file's name for the history"},
                     {"name": "Prefer", "in": "header", "schema": {"type": "string"}, "description": "respond-async: answer as soon as the run is recorded and read the file on in the background"}],
                 "requestBody": {"required": true, "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}, "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                 "responses": with_errors(json!({"201": ok("The run with its counts", json!({"type": "object"})),
                     "202": {"description": "Prefer: respond-async: the run as started; follow it at Location (/api/imports/{id}): its counts and bytes_read grow until its status is done or failed",
                             "headers": {"Location": {"schema": {"type": "string"}}}, "content": {"application/json": {"schema": {"type": "object"}}}}}))}}));
    paths.insert("/api/imports/flows/{key}/fetch".into(), json!({"parameters": key.clone(),
        "post": {"summary": "Fetch a directory or SFTP flow's files now, as its schedule would (a folder must be under the server's import root)",
                 "responses": with_errors(json!({"200": ok("The runs, one per file", json!({"type": "object"}))}))}}));
    paths.insert("/api/imports/{id}".into(), json!({"parameters": id.clone(),
        "get": {"summary": "One import run", "responses": with_errors(json!({"200": ok("The run", json!({"type": "object"}))}))}}));
    paths.insert("/api/imports/{id}/rejected".into(), json!({"parameters": id,
        "get": {"summary": "A run's rejected rows with line and reason: CSV (UTF-8 with BOM) or ?format=json",
                "parameters": [{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "json"], "default": "csv"}}],
                "responses": with_errors(json!({"200": {"description": "Rejected rows", "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}}}}))}}));
    let job_body = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExportJob"}}}});
    paths.insert("/api/exports".into(), json!({
        "get": {"summary": "The history of scheduled exports, newest first: job as run, file, destination, rows, size, SHA-256, or why it failed",
                "parameters": [{"name": "job", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": with_errors(json!({"200": ok("Runs", json!({"type": "object"}))}))}}));
    paths.insert("/api/exports/check".into(), json!({
        "post": {"summary": "Check an export job against the schema without saving it", "requestBody": job_body.clone(),
                 "responses": with_errors(json!({"200": ok("Valid", json!({"type": "object"}))}))}}));
    paths.insert("/api/exports/jobs".into(), json!({
        "get": {"summary": "Export jobs whose entity the caller may export from", "responses": with_errors(json!({"200": ok("Jobs", json!({"type": "object"}))}))}}));
    paths.insert("/api/exports/jobs/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "One export job", "responses": with_errors(json!({"200": ok("The job", json!({"type": "object"}))}))},
        "put": {"summary": "Save an export job (export and view rights on its entity); it runs on its schedule as the user who saved it", "requestBody": job_body,
                "responses": with_errors(json!({"200": ok("The saved job", json!({"type": "object"}))}))},
        "delete": {"summary": "Delete an export job (its history stays)", "responses": with_errors(json!({"204": {"description": "Deleted"}}))}}));
    paths.insert("/api/exports/jobs/{key}/run".into(), json!({"parameters": key.clone(),
        "post": {"summary": "Make and deliver the job's file now, as the caller; a file that could not be made or delivered gives a failed run",
                 "responses": with_errors(json!({"201": ok("The run", json!({"type": "object"}))}))}}));
    for (base, kind, schema) in [
        ("/api/templates", "template", "Template"),
        ("/api/parts", "part", "Part"),
        ("/api/snippets", "snippet", "Snippet"),
    ] {
        let body = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        let check = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "definition"], "additionalProperties": false,
            "properties": {"key": {"type": "string"}, "definition": {"$ref": format!("#/components/schemas/{schema}")}}}}}});
        paths.insert(base.into(), json!({
            "get": {"summary": format!("The current version of every {kind}"), "responses": with_errors(json!({"200": ok("Items", json!({"type": "object"}))}))}}));
        paths.insert(format!("{base}/check"), json!({
            "post": {"summary": format!("Check a {kind} as if saved under key (syntax with line and column, references)"), "requestBody": check,
                     "responses": with_errors(json!({"200": ok("Valid", json!({"type": "object"}))}))}}));
        paths.insert(format!("{base}/{{key}}"), json!({"parameters": key.clone(),
            "get": {"summary": format!("The current version of one {kind}"), "responses": with_errors(json!({"200": ok("The item", json!({"type": "object"}))}))},
            "put": {"summary": format!("Save a {kind}: a new version each time (create right for a new key, edit right after)"), "requestBody": body,
                    "responses": with_errors(json!({"201": ok("The first version", json!({"type": "object"})), "200": ok("The new version", json!({"type": "object"}))}))},
            "delete": {"summary": format!("Delete a {kind} (its versions stay readable)"), "responses": with_errors(json!({"204": {"description": "Deleted"}}))}}));
        paths.insert(format!("{base}/{{key}}/versions"), json!({"parameters": key.clone(),
            "get": {"summary": format!("Every version of a {kind}, newest first"), "responses": with_errors(json!({"200": ok("Versions", json!({"type": "object"}))}))}}));
    }
    let channel = json!([{"name": "channel", "in": "path", "required": true, "schema": {"type": "string", "enum": ["sms", "line", "webhook"]}}]);
    paths.insert("/api/channels".into(), json!({
        "get": {"summary": "The configured SMS, LINE and webhook channels (administrators): settings, whether a credential is set and usable, never the credential",
                "responses": with_errors(json!({"200": ok("Channels and the master key's id", json!({"type": "object"}))}))}}));
    paths.insert("/api/channels/{channel}".into(), json!({"parameters": channel,
        "get": {"summary": "One configured channel", "responses": with_errors(json!({"200": ok("The channel", json!({"type": "object"}))}))},
        "put": {"summary": "Configure a channel (administrators); the credential is sealed with the master key, and kept when left out",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["settings"], "additionalProperties": false, "properties": {
                    "settings": {"$ref": "#/components/schemas/ChannelSettings"},
                    "credential": {"type": "string", "description": "the SMS provider's auth token, the LINE channel access token or the webhook signing secret"}}}}}},
                "responses": with_errors(json!({"201": ok("The new channel", json!({"type": "object"})), "200": ok("The changed channel", json!({"type": "object"}))}))},
        "delete": {"summary": "Remove a channel and its credential", "responses": with_errors(json!({"204": {"description": "Removed"}}))}}));
    paths.insert("/api/send-times".into(), json!({
        "get": {"summary": "MA-16: sends, opens and open rates by hour of the day, open rates by how often contacts were sent to, and the hour most opens happen (view right on reports and flows)",
                "parameters": [{"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 730, "default": 90}},
                               {"name": "zone", "in": "query", "schema": {"type": "string", "default": "Asia/Tokyo"}}],
                "responses": with_errors(json!({"200": ok("By hour and by frequency", json!({"type": "object"}))}))}}));
    paths.insert("/api/suppressions".into(), json!({
        "get": {"summary": "Addresses channels no longer send to, newest first (view right on suppressions): bounces, complaints, staff decisions",
                "parameters": [{"name": "channel", "in": "query", "schema": {"type": "string", "enum": ["email", "sms", "line"]}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}}],
                "responses": with_errors(json!({"200": ok("The list", json!({"type": "object"}))}))},
        "post": {"summary": "Suppress an address (create right on suppressions), e.g. from a provider's complaint feedback loop",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["channel", "address"], "additionalProperties": false, "properties": {
                     "channel": {"type": "string", "enum": ["email", "sms", "line"]}, "address": {"type": "string"},
                     "reason": {"type": "string", "enum": ["complaint", "bounce", "manual"], "default": "manual"}, "note": {"type": "string"}}}}}},
                 "responses": with_errors(json!({"201": ok("Added", json!({"type": "object"})), "200": ok("Already listed", json!({"type": "object"}))}))}}));
    paths.insert("/api/suppressions/{channel}/{address}".into(), json!({
        "parameters": [{"name": "channel", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "address", "in": "path", "required": true, "schema": {"type": "string"}}],
        "delete": {"summary": "Take an address off the list (delete right on suppressions)", "responses": with_errors(json!({"204": {"description": "Removed"}}))}}));
    let subject = json!({"contact_id": {"type": "integer", "description": "a saved tourist, read with the caller's field rights"},
                         "contact": {"type": "object", "description": "sample data instead of a saved tourist"}});
    let mut preview_properties = subject.clone();
    preview_properties["definition"] = json!({"type": "object", "description": "an unsaved template (as PUT takes it); 422 with each problem that would refuse its save"});
    paths.insert("/api/templates/{key}/preview".into(), json!({"parameters": key.clone(),
        "post": {"summary": "Render the template for a tourist or sample data: subject, preheader, HTML and text as sent; with a definition, that unsaved draft as it would render once saved as the key",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": preview_properties}}}},
                 "responses": with_errors(json!({"200": ok("The rendered message", json!({"type": "object"}))}))}}));
    paths.insert("/api/templates/{key}/preview.html".into(), json!({"parameters": key.clone(),
        "post": {"summary": "The rendered HTML as a page of its own (for a preview frame), under a policy that allows its inline styles and pictures and nothing else; a form with an optional draft definition (JSON text) and contact_id",
                 "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": false, "properties": {
                     "definition": {"type": "string", "description": "an unsaved template as JSON text"},
                     "contact_id": {"type": "string", "description": "a saved tourist's id"}}}}}},
                 "responses": with_errors(json!({"200": {"description": "The message's HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}))}}));
    let mut run_properties = subject;
    run_properties["source"] = json!({"type": "string"});
    run_properties["args"] = json!({"type": "array"});
    paths.insert("/api/snippets/run".into(), json!({
        "post": {"summary": "Run rhai code for a tourist without saving it (view right on snippets); 422 with code, line and column when it fails",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["source"], "additionalProperties": false, "properties": run_properties}}}},
                 "responses": with_errors(json!({"200": ok("The value and the time taken", json!({"type": "object"}))}))}}));
    let query_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["sql"], "properties": {
        "sql": {"type": "string", "description": "One SELECT over the tables /api/sql/catalog lists"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
        "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 60, "default": 10}}}}}});
    paths.insert("/api/sql/query".into(), json!({
        "post": {"summary": "Run a read-only query over the data the caller may see (needs the view right on sql)", "requestBody": query_body,
                 "responses": with_errors(json!({"200": ok("Columns, rows, truncated, elapsed_ms", json!({"type": "object"}))}))}}));
    paths.insert("/api/sql/catalog".into(), json!({
        "get": {"summary": "The tables and columns the caller may name in a query, and the functions it may call", "responses": with_errors(json!({"200": ok("Tables and functions", json!({"type": "object"}))}))}}));
    let save_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "sql"], "properties": {
        "name": {"type": "string"}, "sql": {"type": "string"},
        "mode": {"type": "string", "enum": ["create", "overwrite", "append"], "default": "create"},
        "description": {"type": "string"}, "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 60}}}}}});
    paths.insert("/api/sql/tables".into(), json!({
        "get": {"summary": "Output tables the caller may read", "responses": with_errors(json!({"200": ok("Output tables", json!({"type": "object"}))}))},
        "post": {"summary": "Keep a query's rows as an output table: create (create right), overwrite or append (edit right)", "requestBody": save_body,
                 "responses": with_errors(json!({"201": ok("The new table", json!({"type": "object"})), "200": ok("The changed table", json!({"type": "object"}))}))}}));
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    paths.insert("/api/sql/tables/{name}".into(), json!({"parameters": name.clone(),
        "get": {"summary": "An output table: columns, rows, what it was made from", "responses": with_errors(json!({"200": ok("The table", json!({"type": "object"}))}))},
        "delete": {"summary": "Drop an output table (delete right)", "responses": with_errors(json!({"204": {"description": "Dropped"}}))}}));
    paths.insert("/api/sql/tables/{name}/copy".into(), json!({"parameters": name,
        "post": {"summary": "Copy an output table to a new name (create right)",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}}}}},
                 "responses": with_errors(json!({"201": ok("The copy", json!({"type": "object"}))}))}}));
    let report_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "name", "definition"], "properties": {
        "key": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
        "definition": {"$ref": "#/components/schemas/ReportDefinition"}}}}}});
    paths.insert("/api/reports".into(), json!({
        "get": {"summary": "Saved reports (needs the view right on reports)", "responses": with_errors(json!({"200": ok("Reports", json!({"type": "object"}))}))},
        "post": {"summary": "Save a report; it runs once first, as its author", "requestBody": report_body.clone(),
                 "responses": with_errors(json!({"201": ok("The report", json!({"type": "object"}))}))}}));
    paths.insert("/api/reports/run".into(), json!({
        "post": {"summary": "Evaluate a report definition without saving it",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReportDefinition"}}}},
                 "responses": with_errors(json!({"200": ok("Dimensions, measures and rows", json!({"type": "object"}))}))}}));
    paths.insert("/api/reports/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "A report's definition", "responses": with_errors(json!({"200": ok("The report", json!({"type": "object"}))}))},
        "put": {"summary": "Replace its name, description and definition", "requestBody": report_body,
                "responses": with_errors(json!({"200": ok("The report", json!({"type": "object"}))}))},
        "delete": {"summary": "Delete a report no dashboard shows", "responses": with_errors(json!({"204": {"description": "Deleted"}}))}}));
    paths.insert("/api/reports/{key}/data".into(), json!({"parameters": key.clone(),
        "get": {"summary": "Evaluate a saved report with the caller's rights", "responses": with_errors(json!({"200": ok("Dimensions, measures and rows", json!({"type": "object"}))}))}}));
    paths.insert("/api/analyses/tables".into(), json!({
        "post": {"summary": "Keep a decile, RFM or basket analysis as an output table of the SQL workspace (needs the create right on sql)",
                 "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "analysis"], "properties": {
                     "name": {"type": "string"}, "mode": {"type": "string", "enum": ["create", "overwrite", "append"]},
                     "description": {"type": "string"}, "zone": {"type": "string"}, "analysis": {"type": "object"}}}}}},
                 "responses": with_errors(json!({"201": ok("The output table", json!({"type": "object"}))}))}}));
    let dashboard_body = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["key", "name"], "properties": {
        "key": {"type": "string"}, "name": {"type": "string"},
        "widgets": {"type": "array", "items": {"type": "object", "required": ["report"], "properties": {
            "report": {"type": "string"}, "width": {"type": "integer", "minimum": 1, "maximum": 12, "default": 6}, "title": {"type": "string"}}}}}}}}});
    paths.insert("/api/dashboards".into(), json!({
        "get": {"summary": "Dashboards", "responses": with_errors(json!({"200": ok("Dashboards", json!({"type": "object"}))}))},
        "post": {"summary": "Create a dashboard of report widgets", "requestBody": dashboard_body.clone(),
                 "responses": with_errors(json!({"201": ok("The dashboard", json!({"type": "object"}))}))}}));
    paths.insert("/api/dashboards/{key}".into(), json!({"parameters": key.clone(),
        "get": {"summary": "A dashboard with every widget evaluated for the caller (data, or the error in its place)", "responses": with_errors(json!({"200": ok("The dashboard", json!({"type": "object"}))}))},
        "put": {"summary": "Replace its name and widgets", "requestBody": dashboard_body,
                "responses": with_errors(json!({"200": ok("The dashboard", json!({"type": "object"}))}))},
        "delete": {"summary": "Delete a dashboard", "responses": with_errors(json!({"204": {"description": "Deleted"}}))}}));
    paths.insert("/api/auth/sessions".into(), json!({"get": {"summary": "The caller's live sessions", "responses": with_errors(json!({"200": ok("A list", json!({"type": "object"}))}))}}));
    let rights_schema = json!({"type": "object", "properties": {"admin": {"type": "boolean"}, "entities": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "ops": {"type": "array", "items": {"type": "string", "enum": ["view", "create", "edit", "delete", "import", "export", "schema", "publish"]}},
        "default_field_access": {"type": "string", "enum": ["none", "read", "edit"]},
        "fields": {"type": "object", "additionalProperties": {"type": "string", "enum": ["none", "read", "edit"]}},
        "records": {"description": "Only the records this filter (docs/filter.schema.json) matches; absent: every record", "type": "object"}}}}}});
    paths.insert("/api/auth/tokens".into(), json!({
        "post": {"summary": "Create an API token for the caller (shown once); a scope narrows it to what both the scope and the caller's rights allow",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                "name": {"type": "string"}, "expires_in_days": {"type": "integer", "minimum": 1}, "scope": rights_schema.clone()}}}}},
            "responses": with_errors(json!({"201": ok("The token", json!({"type": "object"}))}))},
        "get": {"summary": "The caller's API tokens (never their secrets)", "responses": with_errors(json!({"200": ok("A list", json!({"type": "object"}))}))}}));
    let token_id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}}]);
    paths.insert("/api/auth/tokens/{id}".into(), json!({"parameters": token_id.clone(),
        "delete": {"summary": "Revoke one of the caller's API tokens", "responses": with_errors(json!({"204": {"description": "Revoked"}}))}}));
    paths.insert("/api/admin/tokens".into(), json!({"parameters": [{"name": "login", "in": "query", "schema": {"type": "string"}}],
        "get": {"summary": "API tokens of every user, or of one (administrators)", "responses": with_errors(json!({"200": ok("A list", json!({"type": "object"}))}))}}));
    paths.insert("/api/admin/tokens/{id}".into(), json!({"parameters": token_id,
        "delete": {"summary": "Revoke anyone's API token (administrators)", "responses": with_errors(json!({"204": {"description": "Revoked"}}))}}));
    paths.insert("/api/admin/users".into(), json!({
        "get": {"summary": "Users (administrators)", "responses": with_errors(json!({"200": ok("A list", json!({"type": "object"}))}))},
        "post": {"summary": "Create a user (administrators)",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["login", "password"], "properties": {
                "login": {"type": "string"}, "password": {"type": "string"}, "display_name": {"type": "string"}, "admin": {"type": "boolean"},
                "roles": {"type": "array", "items": {"type": "string"}}, "rights": rights_schema.clone()}}}}},
            "responses": with_errors(json!({"201": ok("The user", json!({"type": "object"}))}))}}));
    let role_body = |required: Value| {
        json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "required": required, "properties": {
        "name": {"type": "string"}, "description": {"type": "string"}, "rights": rights_schema.clone()}}}}})
    };
    paths.insert("/api/admin/roles".into(), json!({
        "get": {"summary": "Roles (administrators)", "responses": with_errors(json!({"200": ok("A list", json!({"type": "object"}))}))},
        "post": {"summary": "Create a role (administrators)", "requestBody": role_body(json!(["name", "rights"])),
            "responses": with_errors(json!({"201": ok("The role", json!({"type": "object"}))}))}}));
    paths.insert("/api/admin/roles/{name}".into(), json!({"parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "put": {"summary": "Replace a role's rights (administrators)", "requestBody": role_body(json!(["rights"])),
            "responses": with_errors(json!({"200": ok("The role", json!({"type": "object"}))}))}}));
    let text = json!({"type": "string"});
    let log_filters: Vec<Value> = [
        ("login", text.clone()),
        ("action", text.clone()),
        ("entity", text.clone()),
        ("record_id", json!({"type": "integer", "format": "int64"})),
        ("outcome", text.clone()),
        ("from", json!({"type": "string", "format": "date-time"})),
        ("to", json!({"type": "string", "format": "date-time"})),
        ("before_id", json!({"type": "integer", "format": "int64"})),
        (
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    ]
    .into_iter()
    .map(|(name, schema)| json!({"name": name, "in": "query", "required": false, "schema": schema}))
    .collect();
    paths.insert("/api/admin/access-log".into(), json!({"get": {"summary": "The access log, newest first, filtered, a page at a time (administrators)",
        "parameters": log_filters.clone(),
        "responses": with_errors(json!({"200": ok("Entries, next_before_id and kept_since", json!({"type": "object"}))}))}}));
    paths.insert("/api/admin/access-log/export".into(), json!({"get": {"summary": "The access log as CSV (administrators)",
        "parameters": log_filters,
        "responses": with_errors(json!({"200": {"description": "CSV, UTF-8 with a byte-order mark", "content": {"text/csv": {"schema": {"type": "string"}}}}}))}}));
    let login_param =
        json!([{"name": "login", "in": "path", "required": true, "schema": {"type": "string"}}]);
    paths.insert("/api/admin/users/{login}".into(), json!({"parameters": login_param.clone(),
        "patch": {"summary": "Change a user: name, administrator, enabled, roles, rights, password (administrators)",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "display_name": {"type": "string"}, "admin": {"type": "boolean"}, "active": {"type": "boolean"},
                "roles": {"type": "array", "items": {"type": "string"}}, "rights": {"type": "object"}, "password": {"type": "string"}}}}}},
            "responses": with_errors(json!({"200": ok("The user", json!({"type": "object"}))}))}}));
    paths.insert("/api/admin/users/{login}/logout".into(), json!({"parameters": login_param.clone(),
        "post": {"summary": "End every session of the user (administrators)", "responses": with_errors(json!({"200": ok("How many ended", json!({"type": "object"}))}))}}));
    paths.insert("/api/admin/users/{login}/unlock".into(), json!({"parameters": login_param,
        "post": {"summary": "Lift the lock wrong passwords put on a login (administrators)", "responses": with_errors(json!({"200": ok("Whether it was locked", json!({"type": "object"}))}))}}));
    paths.insert("/api/admin/sessions".into(), json!({"get": {"summary": "Live sessions (administrators)",
        "parameters": [{"name": "login", "in": "query", "required": false, "schema": {"type": "string"}}],
        "responses": with_errors(json!({"200": ok("Sessions", json!({"type": "object"}))}))}}));
    paths.insert("/api/admin/sessions/{id}".into(), json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}}],
        "delete": {"summary": "End one session (administrators)", "responses": with_errors(json!({"204": {"description": "Ended"}}))}}));
    paths.insert("/api/auth/password".into(), json!({"post": {"summary": "Change the caller's password; their other sessions end",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["current_password", "password"], "properties": {
            "current_password": {"type": "string"}, "password": {"type": "string"}}}}}},
        "responses": with_errors(json!({"200": ok("How many other sessions ended", json!({"type": "object"}))}))}}));
    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "tabiji API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "CRM and marketing automation for tourism organisations. Sign in with POST /api/auth/login (cookie) or send Authorization: Bearer <token>."},
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": super::SESSION_COOKIE}
            }
        }
    }))
}
