//! The storage layer against real databases: SQLite always, PostgreSQL when DATABASE_URL is set.

use serde_json::{Value, json};
use tabiji_model::rights::{EntityRights, FieldAccess};
use tabiji_model::{Op, Rights};
use tabiji_storage::records::{ItemStatus, ListQuery};
use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Db, Principal, StorageError, Store, migration};

/// Runs `check` against a freshly migrated store on every backend.
macro_rules! on_every_backend {
    ($check:ident) => {
        for scratch in Scratch::all_backends().await {
            let db = Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            let store = Store::open(db.clone()).await.unwrap();
            $check(&store).await;
            db.conn.close().await.unwrap();
            scratch.remove().await;
        }
    };
}

fn admin() -> Principal {
    Principal::system()
}

fn staff(rights: Rights) -> Principal {
    Principal {
        user_id: None,
        login: "staff".into(),
        rights,
    }
}

fn tourist(email: &str) -> Value {
    json!({"email": email, "family_name": "山田", "given_name": "太郎", "family_name_kana": "ﾔﾏﾀﾞ",
           "phone": "03-1234-5678", "birth_date": "1990/4/1", "interests": ["food", "nature"],
           "opt_in_email": "はい", "prefecture": "愛知県"})
}

async fn create_read_update_delete(store: &Store) {
    let (record, status) = store
        .create(&admin(), "tourists", &tourist("Ｔａｒｏ@Example.JP"))
        .await
        .unwrap();
    assert_eq!(status, ItemStatus::Created);
    let id = record["id"].as_i64().unwrap();
    assert_eq!(record["email"], "taro@example.jp");
    assert_eq!(record["family_name_kana"], "ヤマダ");
    assert_eq!(record["phone"], "0312345678");
    assert_eq!(record["birth_date"], "1990-04-01");
    assert_eq!(record["interests"], json!(["nature", "food"]));
    assert_eq!(record["opt_in_email"], true);
    assert_eq!(record["points_balance"], 0);

    let updated = store
        .update(
            &admin(),
            "tourists",
            id,
            &json!({"city": "名古屋市", "visit_count": 3}),
        )
        .await
        .unwrap();
    assert_eq!(updated["city"], "名古屋市");
    assert_eq!(updated["email"], "taro@example.jp");
    assert_eq!(
        store.get(&admin(), "tourists", id).await.unwrap()["visit_count"],
        3
    );

    store.delete(&admin(), "tourists", id).await.unwrap();
    assert!(matches!(
        store.get(&admin(), "tourists", id).await,
        Err(StorageError::NotFound { .. })
    ));
}

async fn bad_input_names_the_field(store: &Store) {
    let err = store
        .create(
            &admin(),
            "tourists",
            &json!({"email": "not-an-address", "birth_date": "1990-02-30", "shoe_size": 27}),
        )
        .await
        .unwrap_err();
    let StorageError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    let codes: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field.as_deref().unwrap(), e.code))
        .collect();
    assert!(codes.contains(&("email", "invalid_email")), "{codes:?}");
    assert!(codes.contains(&("birth_date", "invalid_date")), "{codes:?}");
    assert!(codes.contains(&("shoe_size", "unknown_field")), "{codes:?}");
    assert!(
        !codes.contains(&("email", "required")),
        "a refused value is not also reported missing: {codes:?}"
    );

    let err = store
        .create(&admin(), "tourists", &json!({"family_name": "佐藤"}))
        .await
        .unwrap_err();
    let StorageError::Invalid(errors) = err else {
        panic!()
    };
    assert_eq!(
        (errors[0].field.as_deref(), errors[0].code),
        (Some("email"), "required")
    );

    store
        .create(&admin(), "tourists", &tourist("dup@example.jp"))
        .await
        .unwrap();
    let err = store
        .create(&admin(), "tourists", &tourist("DUP@example.jp"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Conflict(ref e) if e[0].code == "duplicate"),
        "{err:?}"
    );

    let err = store
        .create(
            &admin(),
            "tourists",
            &json!({"email": "x@example.jp", "points_balance": 5}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Invalid(ref e) if e[0].code == "read_only_field"),
        "{err:?}"
    );
}

async fn bulk_is_all_or_nothing(store: &Store) {
    let items: Vec<Value> = (0..2500)
        .map(|i| tourist(&format!("user{i}@example.jp")))
        .collect();
    let results = store
        .bulk_create(&admin(), "tourists", items.clone())
        .await
        .unwrap();
    assert_eq!(results.len(), 2500);
    let first = store
        .get(&admin(), "tourists", results[0].id)
        .await
        .unwrap();
    assert_eq!(first["email"], "user0@example.jp");
    let last = store
        .get(&admin(), "tourists", results[2499].id)
        .await
        .unwrap();
    assert_eq!(last["email"], "user2499@example.jp");

    let awkward = "He said \"ok\", {braces}, back\\slash,\nNULL 改行\ttab";
    let tricky = vec![
        json!({"email": "tricky1@example.jp", "notes": awkward, "city": "NULL"}),
        json!({"email": "tricky2@example.jp", "notes": "{}"}),
    ];
    let results_tricky = store
        .bulk_create(&admin(), "tourists", tricky.clone())
        .await
        .unwrap();
    let stored = store
        .get(&admin(), "tourists", results_tricky[0].id)
        .await
        .unwrap();
    assert_eq!(
        (stored["notes"].as_str(), stored["city"].as_str()),
        (Some(awkward), Some("NULL"))
    );
    assert_eq!(stored["family_name"], Value::Null);
    assert_eq!(
        store
            .get(&admin(), "tourists", results_tricky[1].id)
            .await
            .unwrap()["notes"],
        "{}"
    );

    let before = store.count(&admin(), "tourists").await.unwrap();
    let bad = vec![
        tourist("new1@example.jp"),
        json!({"email": "broken"}),
        tourist("user7@example.jp"),
        tourist("new1@example.jp"),
    ];
    let err = store
        .bulk_create(&admin(), "tourists", bad.clone())
        .await
        .unwrap_err();
    let StorageError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    assert_eq!(errors[0].index, Some(1));
    assert_eq!(
        store.count(&admin(), "tourists").await.unwrap(),
        before,
        "nothing half-written"
    );

    let bad = vec![
        tourist("new1@example.jp"),
        tourist("user7@example.jp"),
        tourist("new1@example.jp"),
    ];
    let StorageError::Conflict(errors) = store
        .bulk_create(&admin(), "tourists", bad.clone())
        .await
        .unwrap_err()
    else {
        panic!()
    };
    let mut at: Vec<usize> = errors.iter().map(|e| e.index.unwrap()).collect();
    at.sort();
    assert_eq!(at, vec![1, 2]);
    assert_eq!(store.count(&admin(), "tourists").await.unwrap(), before);

    // Errors in later slices of a large call still undo the earlier slices.
    let mut late: Vec<Value> = (0..2500)
        .map(|i| tourist(&format!("late{i}@example.jp")))
        .collect();
    late[1700] = json!({"email": "late-broken", "gender": "?"});
    late[2300]["birth_date"] = json!("yesterday");
    let StorageError::Invalid(errors) = store
        .bulk_create(&admin(), "tourists", late.clone())
        .await
        .unwrap_err()
    else {
        panic!()
    };
    let at: Vec<usize> = errors.iter().map(|e| e.index.unwrap()).collect();
    assert_eq!(at, vec![1700, 1700, 2300]);
    late[1700] = tourist("late-fixed@example.jp");
    late[2300] = tourist("user42@example.jp");
    let StorageError::Conflict(errors) = store
        .bulk_create(&admin(), "tourists", late)
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(
        errors.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![Some(2300)]
    );
    assert_eq!(
        store.count(&admin(), "tourists").await.unwrap(),
        before,
        "nothing half-written"
    );

    let ids: Vec<i64> = results.iter().take(3).map(|r| r.id).collect();
    let updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "member_type": "premium"}))
        .collect();
    store
        .bulk_update(&admin(), "tourists", &updates)
        .await
        .unwrap();
    assert_eq!(
        store.get(&admin(), "tourists", ids[2]).await.unwrap()["member_type"],
        "premium"
    );

    let err = store
        .bulk_delete(&admin(), "tourists", &[ids[0], 999_999])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(ref e) if e[0].index == Some(1)));
    assert!(
        store.get(&admin(), "tourists", ids[0]).await.is_ok(),
        "nothing deleted"
    );
    store.bulk_delete(&admin(), "tourists", &ids).await.unwrap();
    assert_eq!(store.count(&admin(), "tourists").await.unwrap(), before - 3);

    let page = store
        .list(
            &admin(),
            "tourists",
            &ListQuery {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1000);
    let next = store
        .list(
            &admin(),
            "tourists",
            &ListQuery {
                after: page.next_after,
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(next.items[0]["id"].as_i64().unwrap() > page.items[999]["id"].as_i64().unwrap());
}

async fn field_rights_hide_and_protect(store: &Store) {
    let (record, _) = store
        .create(&admin(), "tourists", &tourist("hidden@example.jp"))
        .await
        .unwrap();
    let id = record["id"].as_i64().unwrap();
    let mut tourists = EntityRights::with_ops(&[Op::View, Op::Edit]);
    tourists.fields.insert("phone".into(), FieldAccess::None);
    tourists.fields.insert("email".into(), FieldAccess::Read);
    let clerk = staff(Rights {
        admin: false,
        entities: [("tourists".to_string(), tourists)].into(),
    });

    let seen = store.get(&clerk, "tourists", id).await.unwrap();
    assert!(!seen.contains_key("phone"), "a hidden field never appears");
    assert_eq!(seen["email"], "hidden@example.jp");
    let page = store
        .list(&clerk, "tourists", &ListQuery::default())
        .await
        .unwrap();
    assert!(page.items.iter().all(|r| !r.contains_key("phone")));
    let schema = store.visible_schema(&clerk, "tourists").await.unwrap();
    assert!(schema.field("phone").is_none());
    assert!(schema.field("email").unwrap().read_only);

    let err = store
        .update(
            &clerk,
            "tourists",
            id,
            &json!({"email": "other@example.jp"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Forbidden { ref field, .. } if field.as_deref() == Some("email"))
    );
    store
        .update(&clerk, "tourists", id, &json!({"city": "豊田市"}))
        .await
        .unwrap();
    assert!(matches!(
        store.delete(&clerk, "tourists", id).await,
        Err(StorageError::Forbidden { .. })
    ));
    assert!(matches!(
        store.get(&clerk, "businesses", 1).await,
        Err(StorageError::Forbidden { .. })
    ));
    let staff = tabiji_storage::audit::Search {
        login: Some("staff".into()),
        ..Default::default()
    };
    let log = tabiji_storage::audit::search(store.db(), &staff, 10)
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.outcome == "denied" && e.action == "delete"),
        "denials are logged"
    );
}

async fn point_ledger_is_idempotent_and_moves_the_balance(store: &Store) {
    let (record, _) = store
        .create(&admin(), "tourists", &tourist("points@example.jp"))
        .await
        .unwrap();
    let id = record["id"].as_i64().unwrap();
    let grant = json!({"tourist_id": id, "occurred_at": "2026-11-01 10:00", "kind": "grant", "points": 500,
                       "source_system": "ota", "transaction_id": "T-1"});
    let (entry, status) = store
        .create(&admin(), "point_ledger", &grant)
        .await
        .unwrap();
    assert_eq!(
        (status, entry["balance_after"].as_i64()),
        (ItemStatus::Created, Some(500))
    );
    let (again, status) = store
        .create(&admin(), "point_ledger", &grant)
        .await
        .unwrap();
    assert_eq!(
        (status, again["id"].clone()),
        (ItemStatus::Existing, entry["id"].clone())
    );
    assert_eq!(
        store.get(&admin(), "tourists", id).await.unwrap()["points_balance"],
        500
    );

    let spend = |tx: &str, points: i64| {
        json!({"tourist_id": id, "occurred_at": "2026-11-02T09:00:00+09:00", "kind": "use",
                                    "points": points, "source_system": "point_programme", "transaction_id": tx})
    };
    store
        .create(&admin(), "point_ledger", &spend("U-1", 200))
        .await
        .unwrap();
    let err = store
        .create(&admin(), "point_ledger", &spend("U-2", 301))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Invalid(ref e) if e[0].code == "insufficient_points"),
        "{err:?}"
    );
    assert_eq!(
        store.get(&admin(), "tourists", id).await.unwrap()["points_balance"],
        300
    );
    let err = store
        .update(
            &admin(),
            "point_ledger",
            entry["id"].as_i64().unwrap(),
            &json!({"points": 1}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(ref e) if e[0].code == "append_only"));

    let history = store
        .list(
            &admin(),
            "point_ledger",
            &ListQuery {
                parent_id: Some(id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(history.items.len(), 2);
    let err = store
        .create(
            &admin(),
            "point_ledger",
            &json!({"tourist_id": 999_999, "occurred_at": "2026-11-01", "kind": "grant",
        "points": 1, "source_system": "ota", "transaction_id": "T-9"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Invalid(ref e) if e[0].code == "unknown_reference"),
        "{err:?}"
    );
}

async fn custom_fields_and_history_stores(store: &Store) {
    // Another process on the same database, opened before the schema changes below.
    let other_process = Store::open(store.db().clone())
        .await
        .unwrap()
        .with_schema_check_every(std::time::Duration::ZERO);
    let field = serde_json::from_value(
        json!({"key": "favourite_onsen", "label": {"ja": "好きな温泉", "en": "Favourite onsen"},
        "type": "single_choice", "options": ["別府", "草津", "下呂"]}),
    )
    .unwrap();
    store
        .add_custom_field(&admin(), "tourists", field)
        .await
        .unwrap();
    let secret = serde_json::from_value(
        json!({"key": "portal_password", "label": {"ja": "パスワード", "en": "Portal password"},
        "type": "password"}),
    )
    .unwrap();
    store
        .add_custom_field(&admin(), "tourists", secret)
        .await
        .unwrap();
    let (record, _) = store
        .create(&admin(), "tourists", &json!({"email": "onsen@example.jp", "favourite_onsen": "下呂", "portal_password": "s3cret-pass"}))
        .await
        .unwrap();
    assert_eq!(record["favourite_onsen"], "下呂");
    assert!(
        !record.contains_key("portal_password"),
        "passwords are never returned"
    );
    let err = store
        .create(
            &admin(),
            "tourists",
            &json!({"email": "o2@example.jp", "favourite_onsen": "有馬"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(ref e) if e[0].code == "invalid_choice"));

    let dup = serde_json::from_value(
        json!({"key": "email", "label": {"ja": "x", "en": "x"}, "type": "text"}),
    )
    .unwrap();
    assert!(matches!(
        store.add_custom_field(&admin(), "tourists", dup).await,
        Err(StorageError::Conflict(_))
    ));

    let unique_date = serde_json::from_value(
        json!({"key": "visa_until", "label": {"ja": "x", "en": "x"}, "type": "date", "unique": true}),
    )
    .unwrap();
    let err = store
        .add_custom_field(&admin(), "tourists", unique_date)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Invalid(ref e) if e[0].code == "invalid_definition"),
        "{err:?}"
    );
    let member_no = serde_json::from_value(
        json!({"key": "member_no", "label": {"ja": "会員番号", "en": "Member no."}, "type": "text", "unique": true}),
    )
    .unwrap();
    store
        .add_custom_field(&admin(), "tourists", member_no)
        .await
        .unwrap();
    store
        .create(
            &admin(),
            "tourists",
            &json!({"email": "m1@example.jp", "member_no": "A-1"}),
        )
        .await
        .unwrap();
    let err = store
        .create(
            &admin(),
            "tourists",
            &json!({"email": "m2@example.jp", "member_no": "A-1"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Conflict(ref e) if e[0].field.as_deref() == Some("member_no")),
        "{err:?}"
    );

    let label = tabiji_model::field::Label {
        ja: "来訪履歴".into(),
        en: "Visits".into(),
    };
    store
        .add_history_store(&admin(), "visits", label)
        .await
        .unwrap();
    let spot = serde_json::from_value(
        json!({"key": "spot_id", "label": {"ja": "スポット", "en": "Spot"}, "type": "text"}),
    )
    .unwrap();
    store
        .add_custom_field(&admin(), "visits", spot)
        .await
        .unwrap();
    let tourist_id = record["id"].as_i64().unwrap();
    let (visit, _) = store
        .create(&admin(), "visits", &json!({"tourist_id": tourist_id, "occurred_at": "2026-10-10 12:00", "spot_id": "S-42"}))
        .await
        .unwrap();
    assert_eq!(visit["spot_id"], "S-42");
    assert_eq!(visit["occurred_at"], "2026-10-10T03:00:00Z");

    // A process that was running all along picks the changes up.
    let (seen, _) = other_process
        .create(
            &admin(),
            "tourists",
            &json!({"email": "other@example.jp", "favourite_onsen": "別府"}),
        )
        .await
        .unwrap();
    assert_eq!(seen["favourite_onsen"], "別府");
    other_process
        .create(
            &admin(),
            "visits",
            &json!({"tourist_id": seen["id"], "occurred_at": "2026-10-11", "spot_id": "S-1"}),
        )
        .await
        .unwrap();

    // A restarted process sees what was added.
    let reopened = Store::open(store.db().clone()).await.unwrap();
    assert!(
        reopened
            .schemas()
            .get("visits")
            .unwrap()
            .field("spot_id")
            .is_some()
    );
    assert!(
        reopened
            .schemas()
            .get("tourists")
            .unwrap()
            .field("favourite_onsen")
            .is_some()
    );

    // Deleting a tourist removes what belongs to them.
    store
        .delete(&admin(), "tourists", tourist_id)
        .await
        .unwrap();
    assert!(
        store
            .get(&admin(), "visits", visit["id"].as_i64().unwrap())
            .await
            .is_err()
    );
}

async fn inquiries_and_interactions_link_to_their_owner(store: &Store) {
    let (t, _) = store
        .create(&admin(), "tourists", &tourist("ask@example.jp"))
        .await
        .unwrap();
    let (inquiry, _) = store
        .create(
            &admin(),
            "inquiries",
            &json!({"tourist_id": t["id"], "subject": "落とし物", "category": "lost_item",
            "channel": "phone", "status": "open", "received_at": "2026-11-20 15:00"}),
        )
        .await
        .unwrap();
    store
        .create(
            &admin(),
            "inquiry_responses",
            &json!({"inquiry_id": inquiry["id"], "responded_at": "2026-11-21 10:00",
            "status": "resolved", "staff": "鈴木", "body": "駅で保管中とご案内"}),
        )
        .await
        .unwrap();
    let (b, _) = store
        .create(&admin(), "businesses", &json!({"name": "ホテル東山", "category": "accommodation", "corporate_number": "１２３４５６７８９０１２３"}))
        .await
        .unwrap();
    assert_eq!(b["corporate_number"], "1234567890123");
    store
        .create(&admin(), "interactions", &json!({"business_id": b["id"], "occurred_at": "2026-11-22 14:00", "kind": "visit", "subject": "契約更新"}))
        .await
        .unwrap();
    let err = store
        .create(
            &admin(),
            "interactions",
            &json!({"business_id": 424242, "occurred_at": "2026-11-22 14:00", "subject": "x"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(ref e) if e[0].code == "unknown_reference"));
    let responses = store
        .list(
            &admin(),
            "inquiry_responses",
            &ListQuery {
                parent_id: inquiry["id"].as_i64(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(responses.items[0]["staff"], "鈴木");
}

#[tokio::test]
async fn crud() {
    on_every_backend!(create_read_update_delete);
}

#[tokio::test]
async fn bad_input() {
    on_every_backend!(bad_input_names_the_field);
}

#[tokio::test]
async fn bulk() {
    on_every_backend!(bulk_is_all_or_nothing);
}

#[tokio::test]
async fn field_rights() {
    on_every_backend!(field_rights_hide_and_protect);
}

#[tokio::test]
async fn point_ledger() {
    on_every_backend!(point_ledger_is_idempotent_and_moves_the_balance);
}

#[tokio::test]
async fn custom_schema() {
    on_every_backend!(custom_fields_and_history_stores);
}

#[tokio::test]
async fn linked_records() {
    on_every_backend!(inquiries_and_interactions_link_to_their_owner);
}

/// Writers at once (API calls beside the worker) wait for each other instead of failing: on
/// SQLite a transaction that reads before it writes must hold the write lock from its start,
/// or it fails with "database is locked" when another writer commits first.
async fn concurrent_writers_all_succeed(store: &Store) {
    let (owner, _) = store
        .create(&admin(), "tourists", &tourist("owner@example.jp"))
        .await
        .unwrap();
    let owner = owner["id"].as_i64().unwrap();
    let mut tasks = Vec::new();
    for task in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..15 {
                let purchase = json!({"tourist_id": owner, "amount": 1000 + n, "product": format!("p{task}-{n}"),
                                      "occurred_at": "2026-11-29T03:00:00Z"});
                store.create(&admin(), "purchases", &purchase).await?;
                let inquiry = json!({"tourist_id": owner, "subject": format!("s{task}-{n}"),
                                     "received_at": "2026-11-29T03:00:00Z"});
                store.create(&admin(), "inquiries", &inquiry).await?;
            }
            Ok::<_, StorageError>(())
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .expect("every concurrent write succeeds");
    }
    let count = store.count(&admin(), "purchases").await.unwrap();
    assert_eq!(count, 12 * 15);
}

#[tokio::test]
async fn concurrent_writers() {
    on_every_backend!(concurrent_writers_all_succeed);
}

/// Staff of the Aichi office: tourists of Aichi only, and (through them) their purchases.
fn aichi_office() -> Principal {
    let mut tourists = EntityRights::with_ops(&[Op::View, Op::Create, Op::Edit, Op::Delete]);
    tourists.records = Some(
        serde_json::from_value(
            json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}),
        )
        .unwrap(),
    );
    staff(Rights {
        admin: false,
        entities: [
            ("tourists".to_string(), tourists),
            (
                "purchases".to_string(),
                EntityRights::with_ops(&[Op::View, Op::Create]),
            ),
        ]
        .into(),
    })
}

fn in_prefecture(email: &str, prefecture: &str) -> Value {
    let mut t = tourist(email);
    t["prefecture"] = json!(prefecture);
    t
}

async fn record_rights_narrow_every_path(store: &Store) {
    let now = chrono::Utc::now();
    let ids: Vec<i64> = store
        .bulk_create(
            &admin(),
            "tourists",
            vec![
                in_prefecture("a1@example.jp", "愛知県"),
                in_prefecture("a2@example.jp", "愛知県"),
                in_prefecture("g1@example.jp", "岐阜県"),
            ],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let (aichi, gifu) = (ids[0], ids[2]);
    for (tourist, amount) in [(aichi, 1000), (gifu, 5000)] {
        store
            .create(
                &admin(),
                "purchases",
                &json!({"tourist_id": tourist, "occurred_at": "2026-11-01 10:00", "amount": amount}),
            )
            .await
            .unwrap();
    }
    let who = aichi_office();

    // Reads: list, count, search with its count, aggregate, get, find by unique field.
    let listed = store
        .list(&who, "tourists", &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(listed.items.iter().all(|t| t["prefecture"] == "愛知県"));
    assert_eq!(store.count(&who, "tourists").await.unwrap(), 2);
    let request: tabiji_storage::search::SearchRequest =
        serde_json::from_value(json!({"count": true})).unwrap();
    let page = store.search(&who, "tourists", &request, now).await.unwrap();
    assert_eq!((page.items.len(), page.count), (2, Some(2)));
    let sums: tabiji_storage::aggregate::AggregateRequest =
        serde_json::from_value(json!({"measures": ["count", {"sum": "amount"}]})).unwrap();
    let sums = store
        .aggregate(&who, "purchases", &sums, now)
        .await
        .unwrap();
    assert_eq!(
        sums.groups[0]["count"], 1,
        "only the Aichi tourist's purchase"
    );
    assert_eq!(sums.groups[0]["sum_amount"], 1000);
    assert!(store.get(&who, "tourists", aichi).await.is_ok());
    assert!(matches!(
        store.get(&who, "tourists", gifu).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(
        store
            .id_by_unique(&who, "tourists", "email", "g1@example.jp")
            .await
            .unwrap(),
        None
    );
    let purchases = store
        .list(&who, "purchases", &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(purchases.items.len(), 1);
    assert_eq!(purchases.items[0]["tourist_id"], aichi);

    // A history store narrowed by its own filter: conditions over it count only the rows
    // reached (the ¥5,000 purchase is not theirs to see, so its buyer has no purchase).
    let mut small = EntityRights::with_ops(&[Op::View]);
    small.records = Some(
        serde_json::from_value(json!({"field": {"key": "amount", "op": "lt", "value": 3000}}))
            .unwrap(),
    );
    let small_purchases = staff(Rights {
        admin: false,
        entities: [
            ("tourists".to_string(), EntityRights::with_ops(&[Op::View])),
            ("purchases".to_string(), small),
        ]
        .into(),
    });
    let buyers: tabiji_storage::search::SearchRequest = serde_json::from_value(
        json!({"filter": {"history": {"store": "purchases"}}, "count": true}),
    )
    .unwrap();
    let page = store
        .search(&small_purchases, "tourists", &buyers, now)
        .await
        .unwrap();
    assert_eq!(page.count, Some(1));
    assert_eq!(page.items[0]["id"], aichi);
    let page = store
        .search(&admin(), "tourists", &buyers, now)
        .await
        .unwrap();
    assert_eq!(page.count, Some(2));

    // Writes: a record outside cannot be changed, deleted, linked to, or written into being.
    assert!(matches!(
        store
            .update(&who, "tourists", gifu, &json!({"city": "岐阜市"}))
            .await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(&who, "tourists", gifu).await,
        Err(StorageError::NotFound { .. })
    ));
    let err = store
        .create(
            &who,
            "purchases",
            &json!({"tourist_id": gifu, "occurred_at": "2026-11-02 10:00", "amount": 1}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(ref e) if e[0].code == "unknown_reference"));
    assert!(matches!(
        store
            .create(&who, "tourists", &in_prefecture("new@example.jp", "岐阜県"))
            .await,
        Err(StorageError::OutsideRecords { index: None, .. })
    ));
    assert!(matches!(
        store
            .update(&who, "tourists", aichi, &json!({"prefecture": "岐阜県"}))
            .await,
        Err(StorageError::OutsideRecords { .. })
    ));
    let err = store
        .bulk_update(
            &who,
            "tourists",
            &[
                json!({"id": ids[1], "city": "豊田市"}),
                json!({"id": aichi, "prefecture": "三重県"}),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::OutsideRecords { index: Some(1), .. }
    ));
    // A value taken by a record outside is refused without naming that record.
    match store
        .create(&who, "tourists", &in_prefecture("g1@example.jp", "愛知県"))
        .await
    {
        Err(StorageError::Conflict(errors)) => {
            assert_eq!(
                errors[0].message,
                "g1@example.jp belongs to another tourists record already"
            );
        }
        other => panic!("{other:?}"),
    }
    let kept = store.get(&admin(), "tourists", aichi).await.unwrap();
    assert_eq!(
        kept["prefecture"], "愛知県",
        "nothing of a refused write stays"
    );
    assert_eq!(
        store.get(&admin(), "tourists", ids[1]).await.unwrap()["city"],
        Value::Null
    );
    assert_eq!(store.count(&admin(), "tourists").await.unwrap(), 3);
    let (own, _) = store
        .create(&who, "tourists", &in_prefecture("own@example.jp", "愛知県"))
        .await
        .unwrap();

    // Upserts: rows that match or would make a record outside are rejected; the rest land.
    let tally = store
        .upsert_items(
            &who,
            "tourists",
            "email",
            vec![
                json!({"email": "g1@example.jp", "city": "高山市"}),
                json!({"email": "a2@example.jp", "city": "岡崎市"}),
                json!({"email": "new2@example.jp", "family_name": "佐藤", "prefecture": "静岡県"}),
                json!({"email": "new3@example.jp", "family_name": "伊藤", "prefecture": "愛知県"}),
            ],
        )
        .await
        .unwrap();
    let reasons: Vec<(u64, &str)> = tally
        .rejected
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, 0);
    assert!(
        reasons[0].1.contains("outside your record rights"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, 2);
    assert!(
        reasons[1].1.contains("would not match your record rights"),
        "{reasons:?}"
    );
    assert_eq!((tally.created, tally.updated), (1, 1));
    assert_eq!(
        store.get(&admin(), "tourists", gifu).await.unwrap()["city"],
        Value::Null
    );
    assert_eq!(
        store
            .id_by_unique(&admin(), "tourists", "email", "new2@example.jp")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.count(&who, "tourists").await.unwrap(), 4);
    store
        .delete(&who, "tourists", own["id"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(store.count(&admin(), "tourists").await.unwrap(), 4);
}

#[tokio::test]
async fn record_rights() {
    on_every_backend!(record_rights_narrow_every_path);
}
