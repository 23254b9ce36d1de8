//! Filters compiled to SQL against an in-memory evaluator of the same resolved conditions, over
//! generated tourists and purchases, on SQLite and (when `DATABASE_URL` names one) PostgreSQL.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use tabiji_model::filter::{
    Aggregate, Cond, DRAW_SCALE, Draw, Filter, ValueKind, compare, draw_rank, eval_test,
    system_field,
};
use tabiji_model::{EntitySchema, StoredValue};

use super::*;
use crate::migration;
use crate::records::ListQuery;
use crate::scratch::Scratch;

const TOURISTS: usize = 400;
const FILTERS: usize = 300;

fn now() -> DateTime<Utc> {
    "2026-11-28T03:00:00Z".parse().unwrap()
}

const PREFECTURES: &[&str] = &["愛知県", "東京都", "大阪府", "北海道", "岐阜県"];
const CITIES: &[&str] = &[
    "Nagoya-shi",
    "nagoya",
    "名古屋市",
    "Tokyo",
    "豊橋市",
    "100%_off",
    "a_b",
    "A%B",
    "wow!",
];
const INTERESTS: &[&str] = &["nature", "hot_springs", "food", "history", "shopping"];
const CATEGORIES: &[&str] = &["food", "souvenir", "ticket", "hotel"];

fn maybe<T>(rng: &mut StdRng, p_none: f64, value: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    if rng.random_bool(p_none) {
        None
    } else {
        Some(value(rng))
    }
}

fn day(rng: &mut StdRng, from_days_ago: i64, to_days_ahead: i64) -> NaiveDate {
    now().date_naive() + Duration::days(rng.random_range(-from_days_ago..=to_days_ahead))
}

fn instant(rng: &mut StdRng, days_ago: i64) -> DateTime<Utc> {
    now() - Duration::seconds(rng.random_range(-86_400 * 3..=86_400 * days_ago))
}

fn tourist(rng: &mut StdRng, n: usize) -> Json {
    let interests: Vec<&str> = INTERESTS
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.3))
        .collect();
    let birth = maybe(rng, 0.2, |r| day(r, 365 * 60, 0).to_string());
    let last_visit = maybe(rng, 0.3, |r| day(r, 400, 0).to_string());
    let prefecture = maybe(rng, 0.15, |r| *PREFECTURES.choose(r).unwrap());
    let city = maybe(rng, 0.2, |r| *CITIES.choose(r).unwrap());
    let gender = maybe(rng, 0.2, |r| {
        *["female", "male", "other"].choose(r).unwrap()
    });
    let registered = maybe(rng, 0.1, |r| instant(r, 800).to_rfc3339());
    let spend = maybe(rng, 0.25, |r| r.random_range(0..50_000));
    let visits = maybe(rng, 0.25, |r| r.random_range(0..12));
    let interests = if rng.random_bool(0.15) {
        Json::Null
    } else {
        json!(interests)
    };
    let opt_in = maybe(rng, 0.2, |r| r.random_bool(0.6));
    json!({
        "email": format!("t{n}@{}", ["example.jp", "mail.example.com", "Example.JP"][n % 3]),
        "prefecture": prefecture,
        "city": city,
        "gender": gender,
        "birth_date": birth,
        "last_visit_on": last_visit,
        "registered_at": registered,
        "total_spend": spend,
        "visit_count": visits,
        "interests": interests,
        "opt_in_email": opt_in,
    })
}

fn purchase(rng: &mut StdRng, owner: i64) -> Json {
    let category = maybe(rng, 0.1, |r| *CATEGORIES.choose(r).unwrap());
    json!({
        "tourist_id": owner,
        "occurred_at": instant(rng, 120).to_rfc3339(),
        "amount": rng.random_range(100..20_000),
        "product_category": category,
    })
}

type Row = HashMap<String, StoredValue>;

/// The stored data, read back through the API and parsed as filters see it.
struct World {
    tourists: Vec<Row>,
    purchases: HashMap<i64, Vec<Row>>,
}

fn as_row(schema: &EntitySchema, record: &Record) -> Row {
    record
        .iter()
        .map(|(key, value)| {
            let field = schema
                .field(key)
                .cloned()
                .or_else(|| system_field(key))
                .unwrap();
            let parsed = match (key.as_str(), value) {
                ("id", v) => StoredValue::Int(v.as_i64().unwrap()),
                (_, v) => field.parse(v).unwrap(),
            };
            (key.clone(), parsed)
        })
        .collect()
}

async fn read_all(store: &Store, entity: &str) -> Vec<Row> {
    let who = Principal::system();
    let schema = store.entity_schema(entity).await.unwrap();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(
                &who,
                entity,
                &ListQuery {
                    after,
                    limit: Some(1000),
                    parent_id: None,
                },
            )
            .await
            .unwrap();
        out.extend(page.items.iter().map(|r| as_row(&schema, r)));
        match page.next_after {
            Some(a) => after = Some(a),
            None => return out,
        }
    }
}

fn kind_of(schema: &EntitySchema, key: &str) -> ValueKind {
    let field = schema
        .field(key)
        .cloned()
        .or_else(|| system_field(key))
        .unwrap();
    ValueKind::of(&field.ty)
}

fn eval(cond: &Cond, row: &Row, world: &World) -> bool {
    match cond {
        Cond::All(items) => items.iter().all(|c| eval(c, row, world)),
        Cond::Any(items) => items.iter().any(|c| eval(c, row, world)),
        Cond::Not(inner) => !eval(inner, row, world),
        Cond::Field { key, kind, test } => eval_test(test, *kind, row.get(key)),
        Cond::History(h) => {
            let id = match row.get("id") {
                Some(StoredValue::Int(id)) => *id,
                other => panic!("{other:?}"),
            };
            let rows: Vec<&Row> = world
                .purchases
                .get(&id)
                .map(|rows| rows.iter().filter(|r| eval(&h.rows, r, world)).collect())
                .unwrap_or_default();
            let values = |k: &str| -> Vec<StoredValue> {
                rows.iter()
                    .filter_map(|r| r.get(k))
                    .filter(|v| **v != StoredValue::Null)
                    .cloned()
                    .collect()
            };
            let extreme = |k: &str, want: std::cmp::Ordering| {
                values(k)
                    .into_iter()
                    .reduce(|a, b| if compare(&b, &a) == Some(want) { b } else { a })
            };
            let (value, kind) = match &h.measure {
                Aggregate::Count => (Some(StoredValue::Int(rows.len() as i64)), ValueKind::Int),
                Aggregate::Sum(k) => (
                    Some(StoredValue::Int(
                        values(k)
                            .iter()
                            .map(|v| match v {
                                StoredValue::Int(n) => *n,
                                other => panic!("{other:?}"),
                            })
                            .sum(),
                    )),
                    ValueKind::Int,
                ),
                Aggregate::Avg(k) => {
                    let vs = values(k);
                    let total: f64 = vs
                        .iter()
                        .map(|v| match v {
                            StoredValue::Int(n) => *n as f64,
                            other => panic!("{other:?}"),
                        })
                        .sum();
                    (
                        (!vs.is_empty()).then(|| StoredValue::Float(total / vs.len() as f64)),
                        ValueKind::Float,
                    )
                }
                Aggregate::Min(k) => (extreme(k, std::cmp::Ordering::Less), ValueKind::Int),
                Aggregate::Max(k) => (extreme(k, std::cmp::Ordering::Greater), ValueKind::Int),
                Aggregate::First(k) => (extreme(k, std::cmp::Ordering::Less), ValueKind::Timestamp),
                Aggregate::Last(k) => (
                    extreme(k, std::cmp::Ordering::Greater),
                    ValueKind::Timestamp,
                ),
            };
            value.is_some_and(|v| eval_test(&h.test, kind, Some(&v)))
        }
        Cond::Sample { of, draw, seed, .. } => {
            let id_of = |row: &Row| match row["id"] {
                StoredValue::Int(id) => id,
                _ => unreachable!(),
            };
            let id = id_of(row);
            match draw {
                Draw::PerMillion(n) => {
                    eval(of, row, world) && draw_rank(id, *seed) % DRAW_SCALE < *n
                }
                Draw::Count(n) => {
                    let mut drawn: Vec<(i64, i64)> = world
                        .tourists
                        .iter()
                        .filter(|r| eval(of, r, world))
                        .map(|r| (draw_rank(id_of(r), *seed), id_of(r)))
                        .collect();
                    drawn.sort_unstable();
                    drawn.iter().take(*n as usize).any(|(_, i)| *i == id)
                }
            }
        }
        Cond::Message { .. }
        | Cond::Journey { .. }
        | Cond::InTable { .. }
        | Cond::InParent { .. }
        | Cond::InList { .. } => {
            unreachable!("the generator writes no message, flow, owner or output-table conditions")
        }
    }
}

fn period(rng: &mut StdRng) -> Json {
    let unit = *["day", "week", "month", "year"].choose(rng).unwrap();
    match rng.random_range(0..7) {
        0 => json!({"last_days": rng.random_range(1..200)}),
        1 => json!({"next_days": rng.random_range(1..30)}),
        2 => json!({"more_than_days_ago": rng.random_range(1..400)}),
        3 => json!({"this": unit}),
        4 => json!({"last": unit}),
        5 => json!({"next": unit}),
        _ => {
            let from = day(rng, 300, 0);
            json!({"between": {"from": from.to_string(),
                "to": (from + Duration::days(rng.random_range(0..120))).to_string()}})
        }
    }
}

fn field_test(rng: &mut StdRng) -> Json {
    let (key, op, value): (&str, &str, Json) = match rng.random_range(0..12) {
        0 => {
            let op = *[
                "eq",
                "ne",
                "in",
                "not_in",
                "contains",
                "starts_with",
                "ends_with",
                "empty",
                "not_empty",
            ]
            .choose(rng)
            .unwrap();
            let value = match op {
                "in" | "not_in" => json!([PREFECTURES.choose(rng), "ｱｲﾁ"]),
                "contains" => json!(*["知", "京", "都"].choose(rng).unwrap()),
                "starts_with" => json!(*["愛", "東"].choose(rng).unwrap()),
                "ends_with" => json!(*["県", "府", "道"].choose(rng).unwrap()),
                "empty" | "not_empty" => Json::Null,
                _ => json!(PREFECTURES.choose(rng)),
            };
            ("prefecture", op, value)
        }
        1 => {
            let op = *[
                "eq",
                "ne",
                "contains",
                "not_contains",
                "starts_with",
                "ends_with",
            ]
            .choose(rng)
            .unwrap();
            let value = *[
                "nagoya",
                "NAGOYA",
                "%",
                "_",
                "0%_",
                "名古屋",
                "shi",
                "A%",
                "b",
                "!",
            ]
            .choose(rng)
            .unwrap();
            let value = if matches!(op, "eq" | "ne") {
                *CITIES.choose(rng).unwrap()
            } else {
                value
            };
            ("city", op, json!(value))
        }
        2 => {
            let op = *["eq", "ne", "in", "not_in", "empty", "not_empty"]
                .choose(rng)
                .unwrap();
            let value = match op {
                "in" | "not_in" => json!(["female", "other"]),
                "empty" | "not_empty" => Json::Null,
                _ => json!(*["female", "male"].choose(rng).unwrap()),
            };
            ("gender", op, value)
        }
        3 => {
            let op = *[
                "eq",
                "ne",
                "lt",
                "lte",
                "gt",
                "gte",
                "between",
                "in_period",
                "month_is",
                "empty",
            ]
            .choose(rng)
            .unwrap();
            let value = match op {
                "between" => {
                    let a = day(rng, 365 * 60, 0);
                    json!([
                        a.to_string(),
                        (a + Duration::days(rng.random_range(0..3000))).to_string()
                    ])
                }
                "in_period" => period(rng),
                "month_is" => {
                    if rng.random_bool(0.5) {
                        json!(rng.random_range(1..=12))
                    } else {
                        json!(*["this", "next", "last"].choose(rng).unwrap())
                    }
                }
                "empty" => Json::Null,
                _ => json!(day(rng, 365 * 60, 0).to_string()),
            };
            ("birth_date", op, value)
        }
        4 => {
            let op = *["in_period", "lt", "gte", "between", "not_empty"]
                .choose(rng)
                .unwrap();
            let value = match op {
                "in_period" => period(rng),
                "between" => json!([day(rng, 200, 0).to_string(), day(rng, 100, 0).to_string()]),
                "not_empty" => Json::Null,
                _ => json!(day(rng, 400, 0).to_string()),
            };
            ("last_visit_on", op, value)
        }
        5 => {
            let op = *["lt", "lte", "gt", "gte", "between", "in_period", "empty"]
                .choose(rng)
                .unwrap();
            let value = match op {
                "in_period" => period(rng),
                "between" => json!([
                    instant(rng, 800).to_rfc3339(),
                    instant(rng, 300).to_rfc3339()
                ]),
                "empty" => Json::Null,
                _ => json!(instant(rng, 800).to_rfc3339()),
            };
            ("registered_at", op, value)
        }
        6 | 7 => {
            let key = *["total_spend", "visit_count"].choose(rng).unwrap();
            let top = if key == "total_spend" { 50_000 } else { 12 };
            let op = *[
                "eq",
                "ne",
                "in",
                "not_in",
                "lt",
                "lte",
                "gt",
                "gte",
                "between",
                "empty",
                "not_empty",
            ]
            .choose(rng)
            .unwrap();
            let value = match op {
                "in" | "not_in" => json!([rng.random_range(0..top), rng.random_range(0..top), 3]),
                "between" => {
                    let a = rng.random_range(-5..top);
                    json!([a, a + rng.random_range(0..top)])
                }
                "empty" | "not_empty" => Json::Null,
                "lt" | "gt" => json!(rng.random_range(-5..top + 5)),
                _ => json!(rng.random_range(0..top)),
            };
            (key, op, value)
        }
        8 => {
            let op = *["any_of", "all_of", "none_of", "empty", "not_empty"]
                .choose(rng)
                .unwrap();
            let how_many = rng.random_range(1..3);
            let picked: Vec<&str> = INTERESTS.choose_multiple(rng, how_many).copied().collect();
            let value = if matches!(op, "empty" | "not_empty") {
                Json::Null
            } else {
                json!(picked)
            };
            ("interests", op, value)
        }
        9 => (
            "opt_in_email",
            *["is_true", "is_false", "empty", "not_empty"]
                .choose(rng)
                .unwrap(),
            Json::Null,
        ),
        10 => {
            let op = *["contains", "ends_with", "starts_with", "eq"]
                .choose(rng)
                .unwrap();
            let value = match op {
                "eq" => json!(format!("T{}@EXAMPLE.jp", rng.random_range(0..TOURISTS))),
                "ends_with" => json!(*[".jp", ".com", "JP"].choose(rng).unwrap()),
                "starts_with" => json!(format!("t{}", rng.random_range(0..40))),
                _ => json!(*["mail", "example", "@"].choose(rng).unwrap()),
            };
            ("email", op, value)
        }
        _ => {
            let op = *["lt", "gt", "between"].choose(rng).unwrap();
            let a = rng.random_range(0..TOURISTS as i64);
            let value = if op == "between" {
                json!([a, a + 50])
            } else {
                json!(a)
            };
            ("id", op, value)
        }
    };
    if Json::is_null(&value) {
        json!({"field": {"key": key, "op": op}})
    } else {
        json!({"field": {"key": key, "op": op, "value": value}})
    }
}

fn history_test(rng: &mut StdRng) -> Json {
    let mut h = serde_json::Map::new();
    h.insert("store".into(), json!("purchases"));
    if rng.random_bool(0.6) {
        h.insert("period".into(), period(rng));
    }
    if rng.random_bool(0.4) {
        let cat = CATEGORIES.choose(rng).unwrap();
        h.insert(
            "where".into(),
            if rng.random_bool(0.5) {
                json!({"field": {"key": "product_category", "op": "eq", "value": cat}})
            } else {
                json!({"any": [
                    {"field": {"key": "product_category", "op": "ne", "value": cat}},
                    {"field": {"key": "amount", "op": "gt", "value": rng.random_range(100..20_000)}}
                ]})
            },
        );
    }
    let op = *["eq", "ne", "lt", "lte", "gt", "gte", "between"]
        .choose(rng)
        .unwrap();
    let (measure, low, high) = match rng.random_range(0..7) {
        0 => (Json::Null, 0, 4),
        1 => (json!("count"), 0, 4),
        2 => (json!({"sum": "amount"}), 0, 40_000),
        3 => (json!({"avg": "amount"}), 100, 20_000),
        4 => (json!({"max": "amount"}), 100, 20_000),
        5 => (json!({"min": "amount"}), 100, 20_000),
        _ => {
            h.insert(
                "measure".into(),
                json!(*["last_at", "first_at"].choose(rng).unwrap()),
            );
            let op = *["lt", "gte", "in_period"].choose(rng).unwrap();
            h.insert("op".into(), json!(op));
            h.insert(
                "value".into(),
                if op == "in_period" {
                    period(rng)
                } else {
                    json!(instant(rng, 120).to_rfc3339())
                },
            );
            return json!({ "history": h });
        }
    };
    if Json::is_null(&measure) {
        return json!({ "history": h });
    }
    h.insert("measure".into(), measure);
    h.insert("op".into(), json!(op));
    let a = rng.random_range(low..=high);
    h.insert(
        "value".into(),
        if op == "between" {
            json!([a, a + rng.random_range(0..=high)])
        } else {
            json!(a)
        },
    );
    json!({ "history": h })
}

fn filter(rng: &mut StdRng, depth: u32) -> Json {
    let roll = rng.random_range(0..10);
    if depth < 3 && roll < 3 {
        let items: Vec<Json> = (0..rng.random_range(0..4))
            .map(|_| filter(rng, depth + 1))
            .collect();
        return if roll == 0 {
            json!({ "any": items })
        } else {
            json!({ "all": items })
        };
    }
    if depth < 3 && roll == 3 {
        return json!({"not": filter(rng, depth + 1)});
    }
    if depth < 3 && roll == 4 && rng.random_bool(0.4) {
        let seed = rng.random_range(0..1000);
        let mut sample = if rng.random_bool(0.5) {
            json!({"ratio": rng.random_range(0.05..0.9), "seed": seed})
        } else {
            json!({"count": rng.random_range(1..200), "seed": seed})
        };
        if rng.random_bool(0.7) {
            sample["of"] = filter(rng, depth + 1);
        }
        return json!({ "sample": sample });
    }
    if roll < 6 {
        history_test(rng)
    } else {
        field_test(rng)
    }
}

async fn seeded_store(scratch: &Scratch) -> (Store, World) {
    let db = crate::Db::connect(&scratch.url).await.unwrap();
    migration::run(&db).await.unwrap();
    let store = Store::open(db).await.unwrap();
    let who = Principal::system();
    let mut rng = StdRng::seed_from_u64(7);
    let tourists: Vec<Json> = (0..TOURISTS).map(|n| tourist(&mut rng, n)).collect();
    let created = store.bulk_create(&who, "tourists", tourists).await.unwrap();
    let mut purchases = Vec::new();
    for r in &created {
        for _ in 0..rng.random_range(0..5) {
            purchases.push(purchase(&mut rng, r.id));
        }
    }
    store
        .bulk_create(&who, "purchases", purchases)
        .await
        .unwrap();
    let tourists = read_all(&store, "tourists").await;
    let mut purchases: HashMap<i64, Vec<Row>> = HashMap::new();
    for row in read_all(&store, "purchases").await {
        let StoredValue::Int(owner) = row["tourist_id"] else {
            panic!()
        };
        purchases.entry(owner).or_default().push(row);
    }
    (
        store,
        World {
            tourists,
            purchases,
        },
    )
}

async fn all_ids(store: &Store, cond: &Cond) -> BTreeSet<i64> {
    store
        .ids_matching("tourists", cond, 0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn generated_filters_match_the_in_memory_evaluator() {
    for scratch in Scratch::all_backends().await {
        let (store, world) = seeded_store(&scratch).await;
        let mut rng = StdRng::seed_from_u64(42);
        let mut nonempty = 0;
        for n in 0..FILTERS {
            let json = filter(&mut rng, 0);
            let parsed: Filter = serde_json::from_value(json.clone()).unwrap();
            let resolved = store
                .resolve_filter(None, "tourists", &parsed, parse_zone(None).unwrap(), now())
                .await
                .unwrap_or_else(|e| panic!("filter {n} {json}: {e}"));
            let expected: BTreeSet<i64> = world
                .tourists
                .iter()
                .filter(|row| eval(&resolved.cond, row, &world))
                .map(|row| match row["id"] {
                    StoredValue::Int(id) => id,
                    _ => unreachable!(),
                })
                .collect();
            let got = all_ids(&store, &resolved.cond).await;
            assert_eq!(
                got,
                expected,
                "filter {n} on {:?}: {json}\nresolved: {:?}\nonly in SQL: {:?}\nonly in memory: {:?}",
                store.db().backend(),
                resolved.cond,
                got.difference(&expected).take(5).collect::<Vec<_>>(),
                expected.difference(&got).take(5).collect::<Vec<_>>(),
            );
            let count = store
                .count_where(
                    "tourists",
                    store
                        .compiler("tourists")
                        .await
                        .unwrap()
                        .cond(&resolved.cond),
                )
                .await
                .unwrap();
            assert_eq!(
                count as usize,
                expected.len(),
                "count of filter {n}: {json}"
            );
            if !expected.is_empty() && expected.len() < TOURISTS {
                nonempty += 1;
            }
        }
        // The generator must produce filters that discriminate, or the test proves little.
        assert!(
            nonempty > FILTERS / 3,
            "only {nonempty} filters selected a proper subset"
        );
        scratch.remove().await;
    }
}

async fn pages(store: &Store, request: &SearchRequest, size: u64) -> Vec<i64> {
    let who = Principal::system();
    let mut request = request.clone();
    request.limit = Some(size);
    let mut ids = Vec::new();
    loop {
        let page = store
            .search(&who, "tourists", &request, now())
            .await
            .unwrap();
        ids.extend(page.items.iter().map(|r| r["id"].as_i64().unwrap()));
        match page.next_after {
            Some(after) => request.after = Some(after),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn sorted_pages_visit_every_match_once_in_order_with_empty_values_last() {
    for scratch in Scratch::all_backends().await {
        let (store, world) = seeded_store(&scratch).await;
        let filter: Filter = serde_json::from_value(
            json!({"not": {"field": {"key": "gender", "op": "eq", "value": "male"}}}),
        )
        .unwrap();
        let resolved = store
            .resolve_filter(None, "tourists", &filter, parse_zone(None).unwrap(), now())
            .await
            .unwrap();
        let schema = store.entity_schema("tourists").await.unwrap();
        for (key, desc) in [
            ("total_spend", true),
            ("total_spend", false),
            ("birth_date", false),
            ("registered_at", true),
            ("opt_in_email", false),
            ("id", true),
        ] {
            let request = SearchRequest {
                filter: Some(filter.clone()),
                sort: Some(Sort {
                    field: key.into(),
                    desc,
                }),
                ..Default::default()
            };
            let got = pages(&store, &request, 7).await;
            let kind = kind_of(&schema, key);
            let mut expected: Vec<&Row> = world
                .tourists
                .iter()
                .filter(|row| eval(&resolved.cond, row, &world))
                .collect();
            let value = |row: &Row| row.get(key).filter(|v| **v != StoredValue::Null).cloned();
            let id = |row: &Row| match row["id"] {
                StoredValue::Int(id) => id,
                _ => unreachable!(),
            };
            expected.sort_by(|a, b| {
                let (va, vb) = (value(a), value(b));
                va.is_none()
                    .cmp(&vb.is_none())
                    .then_with(|| match (&va, &vb) {
                        (Some(x), Some(y)) => {
                            let o = compare(x, y).unwrap();
                            if desc { o.reverse() } else { o }
                        }
                        _ => std::cmp::Ordering::Equal,
                    })
                    .then_with(|| {
                        if key == "id" && desc {
                            id(b).cmp(&id(a))
                        } else {
                            id(a).cmp(&id(b))
                        }
                    })
            });
            let expected: Vec<i64> = expected.iter().map(|r| id(r)).collect();
            assert_eq!(got, expected, "sorted on {key} desc={desc} ({kind:?})");
        }
        // Text sorts follow the database's collation: pages must still join into one order.
        let request = SearchRequest {
            sort: Some(Sort {
                field: "city".into(),
                desc: false,
            }),
            ..Default::default()
        };
        let paged = pages(&store, &request, 9).await;
        let whole = pages(&store, &request, 1000).await;
        assert_eq!(paged, whole);
        assert_eq!(whole.len(), TOURISTS);
        scratch.remove().await;
    }
}

#[tokio::test]
async fn filters_on_fields_the_caller_may_not_view_are_refused() {
    use tabiji_model::rights::{EntityRights, FieldAccess, Rights};
    let scratch = Scratch::sqlite();
    let (store, _) = seeded_store(&scratch).await;
    let mut tourists = EntityRights::with_ops(&[Op::View]);
    tourists
        .fields
        .insert("birth_date".into(), FieldAccess::None);
    let mut rights = Rights::default();
    rights.entities.insert("tourists".into(), tourists);
    let who = Principal {
        user_id: Some(99),
        login: "clerk".into(),
        rights,
    };
    let zone = parse_zone(None).unwrap();
    let hidden: Filter = serde_json::from_value(
        json!({"field": {"key": "birth_date", "op": "month_is", "value": "this"}}),
    )
    .unwrap();
    let err = store
        .count_matching(&who, "tourists", &hidden, zone, now())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Forbidden { field: Some(f), .. } if f == "birth_date"),
        "{err}"
    );
    // Purchases are not theirs to see either, so neither is "bought something".
    let history: Filter =
        serde_json::from_value(json!({"history": {"store": "purchases"}})).unwrap();
    let err = store
        .count_matching(&who, "tourists", &history, zone, now())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Forbidden { entity, .. } if entity == "purchases"),
        "{err}"
    );
    let visible: Filter = serde_json::from_value(
        json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}),
    )
    .unwrap();
    let n = store
        .count_matching(&who, "tourists", &visible, zone, now())
        .await
        .unwrap();
    assert!(n > 0);
    let page = store
        .search(
            &who,
            "tourists",
            &SearchRequest {
                filter: Some(visible),
                ..Default::default()
            },
            now(),
        )
        .await
        .unwrap();
    assert!(page.items.iter().all(|r| !r.contains_key("birth_date")));
    scratch.remove().await;
}
