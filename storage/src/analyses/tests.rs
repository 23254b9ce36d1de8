//! Decile, RFM and basket analyses on SQLite and (when `DATABASE_URL` names one) PostgreSQL,
//! over ten tourists whose purchases make every answer known in advance.

use serde_json::json;
use tabiji_model::rights::{EntityRights, FieldAccess, Rights};

use super::*;
use crate::migration;
use crate::scratch::Scratch;
use crate::search::parse_zone;

fn now() -> DateTime<Utc> {
    "2026-11-28T03:00:00Z".parse().unwrap()
}

/// Tourist k (1–10) bought k times for ¥1,000, the last time 11 − k days ago; the j-th purchase
/// is an onsen, sake or ticket in turn.
async fn seeded(scratch: &Scratch) -> (Store, Vec<i64>) {
    let db = crate::Db::connect(&scratch.url).await.unwrap();
    migration::run(&db).await.unwrap();
    let store = Store::open(db).await.unwrap();
    let who = Principal::system();
    let tourists = (1..=10)
        .map(|k| json!({"email": format!("k{k}@example.jp")}))
        .collect();
    let ids: Vec<i64> = store
        .bulk_create(&who, "tourists", tourists)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let products = ["onsen", "sake", "ticket"];
    let mut purchases = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let k = i as i64 + 1;
        for j in 0..k {
            let days_ago = 11 - k + (k - 1 - j) * 20;
            let at = now() - chrono::Duration::days(days_ago);
            purchases.push(
                json!({"tourist_id": id, "amount": 1000, "occurred_at": at.to_rfc3339(),
                                  "product": products[j as usize % 3]}),
            );
        }
    }
    store
        .bulk_create(&who, "purchases", purchases)
        .await
        .unwrap();
    (store, ids)
}

async fn rows(store: &Store, who: &Principal, analysis: Json) -> Vec<Map<String, Json>> {
    let analysis: Analysis = serde_json::from_value(analysis).unwrap();
    run(
        store,
        who,
        &analysis,
        parse_zone(None).unwrap(),
        now(),
        1000,
        "analysis",
    )
    .await
    .unwrap()
    .0
}

fn num(row: &Map<String, Json>, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {row:?}"))
}

#[tokio::test]
async fn deciles_rfm_and_baskets_give_the_known_answers() {
    for scratch in Scratch::all_backends().await {
        let (store, ids) = seeded(&scratch).await;
        let admin = Principal::system();

        let deciles = rows(&store, &admin, json!({"decile": {}})).await;
        assert_eq!(deciles.len(), 10);
        assert_eq!(deciles[0]["decile"], json!(1));
        assert_eq!(num(&deciles[0], "total"), 10_000.0);
        assert_eq!(num(&deciles[0], "share"), 0.1818);
        assert_eq!(num(&deciles[9], "total"), 1_000.0);
        assert_eq!(num(&deciles[9], "cumulative_share"), 1.0);

        let per_tourist = rows(&store, &admin, json!({"rfm": {"per_tourist": true}})).await;
        assert_eq!(per_tourist.len(), 10);
        let best = per_tourist
            .iter()
            .find(|r| r["tourist_id"] == json!(ids[9]))
            .unwrap();
        assert_eq!(best["rfm"], json!(555), "{best:?}");
        assert_eq!(best["recency_days"], json!(1));
        assert_eq!(best["frequency"], json!(10));
        let worst = per_tourist
            .iter()
            .find(|r| r["tourist_id"] == json!(ids[0]))
            .unwrap();
        assert_eq!(worst["rfm"], json!(111), "{worst:?}");

        let segments = rows(&store, &admin, json!({"rfm": {}})).await;
        let customers: f64 = segments.iter().map(|r| num(r, "customers")).sum();
        assert_eq!(customers, 10.0);
        let champions = segments
            .iter()
            .find(|r| r["segment"] == json!("champions"))
            .expect("tourists 7 to 10 score 4 or 5 on recency and frequency");
        assert_eq!(num(champions, "customers"), 4.0);
        assert_eq!(num(champions, "avg_frequency"), 8.5);

        // Only the last 15 days: each tourist's latest purchase (k bought 11 − k days ago).
        let recent = rows(
            &store,
            &admin,
            json!({"decile": {"period": {"last_days": 15}}}),
        )
        .await;
        let total: f64 = recent.iter().map(|r| num(r, "total")).sum();
        assert_eq!(total, 10_000.0, "{recent:?}");

        let pairs = rows(&store, &admin, json!({"basket": {}})).await;
        let pair = |i: usize| {
            (
                pairs[i]["item_a"].as_str().unwrap().to_string(),
                pairs[i]["item_b"].as_str().unwrap().to_string(),
                num(&pairs[i], "together"),
                num(&pairs[i], "lift"),
            )
        };
        assert_eq!(pairs.len(), 3);
        assert_eq!(pair(0), ("onsen".into(), "sake".into(), 9.0, 1.0));
        assert_eq!(pair(1), ("sake".into(), "ticket".into(), 8.0, 1.1111));
        assert_eq!(pair(2), ("onsen".into(), "ticket".into(), 8.0, 1.0));
        assert_eq!(num(&pairs[0], "support"), 0.9);
        assert_eq!(num(&pairs[0], "confidence_b_a"), 1.0);
        // Purchases 20 days apart never share a day.
        let same_day = rows(
            &store,
            &admin,
            json!({"basket": {"by": "day", "min_together": 1}}),
        )
        .await;
        assert!(same_day.is_empty(), "{same_day:?}");

        // Kept as an output table, the per-tourist scores are a list like any other.
        let table = save(
            &store,
            &admin,
            &serde_json::from_value(
                json!({"name": "rfm_scores", "analysis": {"rfm": {"per_tourist": true}}}),
            )
            .unwrap(),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(table.row_count, 10);
        assert!(table.sql.contains("ntile(5)"), "{}", table.sql);
        scratch.remove().await;
    }
}

#[tokio::test]
async fn analyses_refuse_what_the_viewer_may_not_see_and_say_what_is_wrong() {
    for scratch in Scratch::all_backends().await {
        let (store, _) = seeded(&scratch).await;
        let mut purchases = EntityRights::with_ops(&[Op::View]);
        purchases.fields.insert("amount".into(), FieldAccess::None);
        let clerk = Principal {
            user_id: Some(2),
            login: "clerk".into(),
            rights: Rights {
                admin: false,
                entities: [("purchases".to_string(), purchases)].into(),
            },
        };
        let zone = parse_zone(None).unwrap();
        let decile: Analysis = serde_json::from_value(json!({"decile": {}})).unwrap();
        let e = run(&store, &clerk, &decile, zone, now(), 10, "analysis")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StorageError::Forbidden { field: Some(f), .. } if f == "amount"),
            "{e}"
        );
        let basket: Analysis = serde_json::from_value(json!({"basket": {}})).unwrap();
        let pairs = run(&store, &clerk, &basket, zone, now(), 10, "analysis")
            .await
            .unwrap();
        assert_eq!(pairs.0.len(), 3, "products are visible to the clerk");

        let admin = Principal::system();
        for (analysis, field, code) in [
            (
                json!({"decile": {"amount": "product"}}),
                "analysis.amount",
                "wrong_type",
            ),
            (
                json!({"rfm": {"store": "tourists"}}),
                "analysis.store",
                "not_a_history_store",
            ),
            (
                json!({"basket": {"store": "nothing"}}),
                "analysis.store",
                "unknown_store",
            ),
            (
                json!({"basket": {"item": "colour"}}),
                "analysis.item",
                "unknown_field",
            ),
        ] {
            let analysis: Analysis = serde_json::from_value(analysis).unwrap();
            match run(&store, &admin, &analysis, zone, now(), 10, "analysis").await {
                Err(StorageError::Invalid(errors)) => {
                    assert_eq!(errors[0].field.as_deref(), Some(field));
                    assert_eq!(errors[0].code, code);
                }
                other => panic!("{analysis:?}: {other:?}"),
            }
        }
        scratch.remove().await;
    }
}
