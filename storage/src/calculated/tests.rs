//! Calculated attributes on SQLite and (when `DATABASE_URL` names one) PostgreSQL: computed for
//! everyone when defined, kept up to date incrementally, read-only, in filters like any field.

use serde_json::{Value as Json, json};
use tabiji_model::rights::{EntityRights, Rights};

use super::*;
use crate::migration;
use crate::scratch::Scratch;

fn now() -> DateTime<Utc> {
    "2026-11-28T03:00:00Z".parse().unwrap()
}

fn days_ago(n: i64) -> String {
    (now() - chrono::Duration::days(n)).to_rfc3339()
}

fn attribute(body: Json) -> NewCalculated {
    serde_json::from_value(body).unwrap()
}

async fn value(store: &Store, id: i64, key: &str) -> Json {
    store
        .get(&Principal::system(), "tourists", id)
        .await
        .unwrap()
        .get(key)
        .cloned()
        .unwrap_or(Json::Null)
}

#[tokio::test]
async fn attributes_are_computed_kept_up_to_date_and_read_only() {
    for scratch in Scratch::all_backends().await {
        let db = crate::Db::connect(&scratch.url).await.unwrap();
        migration::run(&db).await.unwrap();
        let store = Store::open(db).await.unwrap();
        let admin = Principal::system();
        let tourists = (0..4)
            .map(|n| json!({"email": format!("c{n}@example.jp")}))
            .collect();
        let ids: Vec<i64> = store
            .bulk_create(&admin, "tourists", tourists)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        let bought = |who: i64, amount: i64, ago: i64, product: &str| json!({"tourist_id": who, "amount": amount, "occurred_at": days_ago(ago), "product": product});
        store
            .bulk_create(
                &admin,
                "purchases",
                vec![
                    bought(ids[0], 1000, 10, "onsen"),
                    bought(ids[0], 3000, 400, "ticket"),
                    bought(ids[1], 500, 5, "ticket"),
                ],
            )
            .await
            .unwrap();
        for body in [
            json!({"key": "purchase_count", "label": {"ja": "購入回数", "en": "Purchases"},
                   "store": "purchases", "measure": "count"}),
            json!({"key": "spent_this_year", "label": {"ja": "年間購入額", "en": "Spent in a year"},
                   "store": "purchases", "measure": {"sum": "amount"}, "period": {"last_days": 365}}),
            json!({"key": "last_purchase_at", "label": {"ja": "最終購入日時", "en": "Last purchase"},
                   "store": "purchases", "measure": "last_at"}),
            json!({"key": "tickets", "label": {"ja": "チケット購入", "en": "Tickets"},
                   "store": "purchases", "measure": "count",
                   "filter": {"field": {"key": "product", "op": "eq", "value": "ticket"}}}),
        ] {
            create(&store, &admin, &attribute(body), now())
                .await
                .unwrap();
        }
        assert_eq!(value(&store, ids[0], "purchase_count").await, json!(2));
        assert_eq!(value(&store, ids[0], "spent_this_year").await, json!(1000));
        assert_eq!(value(&store, ids[0], "tickets").await, json!(1));
        assert_eq!(value(&store, ids[1], "spent_this_year").await, json!(500));
        assert_eq!(value(&store, ids[2], "purchase_count").await, json!(0));
        assert_eq!(value(&store, ids[2], "spent_this_year").await, json!(0));
        assert_eq!(value(&store, ids[2], "last_purchase_at").await, Json::Null);
        let last = value(&store, ids[0], "last_purchase_at").await;
        assert_eq!(
            last.as_str().unwrap().parse::<DateTime<Utc>>().unwrap(),
            now() - chrono::Duration::days(10)
        );

        // New rows reach their tourists at the next tick, without a full recomputation.
        store
            .bulk_create(&admin, "purchases", vec![bought(ids[2], 700, 1, "ticket")])
            .await
            .unwrap();
        let changed = tick(&store, parse_zone(None).unwrap(), now())
            .await
            .unwrap();
        assert_eq!(changed, 4, "the third tourist's four attributes");
        assert_eq!(value(&store, ids[2], "purchase_count").await, json!(1));
        assert_eq!(value(&store, ids[2], "tickets").await, json!(1));
        assert_eq!(
            tick(&store, parse_zone(None).unwrap(), now())
                .await
                .unwrap(),
            0,
            "nothing new"
        );

        // A filter reads them like any field; nobody writes them.
        let zone = parse_zone(None).unwrap();
        let big: Filter = serde_json::from_value(
            json!({"field": {"key": "purchase_count", "op": "gte", "value": 1}}),
        )
        .unwrap();
        assert_eq!(
            store
                .count_matching(&admin, "tourists", &big, zone, now())
                .await
                .unwrap(),
            3
        );
        let e = store
            .update(&admin, "tourists", ids[3], &json!({"purchase_count": 99}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("kept by tabiji"), "{e}");

        // A day later the rolling year has moved: the full refresh forgets the old purchase.
        let next_year = now() + chrono::Duration::days(360);
        tick(&store, zone, next_year).await.unwrap();
        assert_eq!(value(&store, ids[0], "spent_this_year").await, json!(0));
        assert_eq!(value(&store, ids[2], "spent_this_year").await, json!(700));

        let e = create(
            &store,
            &admin,
            &attribute(
                json!({"key": "odd", "label": {"ja": "x", "en": "x"}, "store": "purchases",
                "measure": {"sum": "product"}}),
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = create(
            &store,
            &admin,
            &attribute(
                json!({"key": "odd", "label": {"ja": "x", "en": "x"}, "store": "tourists",
                "measure": "count"}),
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("not a history"), "{e}");
        let clerk = Principal {
            user_id: Some(2),
            login: "clerk".into(),
            rights: Rights {
                admin: false,
                entities: [("tourists".to_string(), EntityRights::with_ops(&[Op::View]))].into(),
            },
        };
        let e = create(
            &store,
            &clerk,
            &attribute(
                json!({"key": "mine", "label": {"ja": "x", "en": "x"}, "store": "purchases",
                "measure": "count"}),
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");
        assert_eq!(list(&store, &clerk).await.unwrap().len(), 4);
        scratch.remove().await;
    }
}
