//! Reports over records and over messages, saved reports and dashboards, on SQLite and (when
//! `DATABASE_URL` names one) PostgreSQL.

use sea_orm::Statement;
use serde_json::json;
use tabiji_model::rights::{EntityRights, FieldAccess, Rights};

use super::*;
use crate::migration;
use crate::scratch::Scratch;

fn now() -> DateTime<Utc> {
    "2026-11-28T03:00:00Z".parse().unwrap()
}

fn def(body: Json) -> ReportDef {
    serde_json::from_value(body).unwrap()
}

fn codes(e: StorageError) -> Vec<(String, &'static str)> {
    match e {
        StorageError::Invalid(errors) | StorageError::Conflict(errors) => errors
            .into_iter()
            .map(|e| (e.field.unwrap_or_default(), e.code))
            .collect(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Six tourists (born 1990, 1985, 1960, …), three of them from Aichi, and the messages two flows
/// sent them with their opens and clicks.
async fn seeded(scratch: &Scratch) -> (Store, Vec<i64>) {
    let db = crate::Db::connect(&scratch.url).await.unwrap();
    migration::run(&db).await.unwrap();
    let store = Store::open(db).await.unwrap();
    let who = Principal::system();
    let births = [
        "1990-05-01",
        "1985-12-31",
        "1960-01-01",
        "2001-11-28",
        "2001-11-29",
        "1999-02-02",
    ];
    let tourists = births
        .iter()
        .enumerate()
        .map(|(n, b)| {
            json!({"email": format!("r{n}@example.jp"), "birth_date": b,
                   "prefecture": if n < 3 { "愛知県" } else { "東京都" }})
        })
        .collect();
    let ids: Vec<i64> = store
        .bulk_create(&who, "tourists", tourists)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let purchases = vec![
        json!({"tourist_id": ids[0], "amount": 1000, "occurred_at": "2026-10-05T01:00:00Z"}),
        json!({"tourist_id": ids[1], "amount": 3000, "occurred_at": "2026-10-31T16:00:00Z"}),
        json!({"tourist_id": ids[2], "amount": 5000, "occurred_at": "2026-11-20T01:00:00Z"}),
    ];
    store
        .bulk_create(&who, "purchases", purchases)
        .await
        .unwrap();
    // 2026-11-27 16:00 UTC is 28 November in Tokyo; 2026-11-26 01:00 UTC is the 26th.
    let late = "2026-11-27T16:00:00Z"
        .parse::<DateTime<Utc>>()
        .unwrap()
        .timestamp_millis();
    let early = "2026-11-26T01:00:00Z"
        .parse::<DateTime<Utc>>()
        .unwrap()
        .timestamp_millis();
    // (flow, template, contact, status, at, opened, clicked)
    let deliveries = [
        (1, "autumn", ids[0], "sent", late, true, true),
        (1, "autumn", ids[1], "sent", late, true, false),
        (1, "autumn", ids[2], "sent", early, false, false),
        (1, "autumn", ids[3], "sent", early, false, false),
        (1, "autumn", ids[4], "dead", early, false, false),
        (2, "winter", ids[5], "sent", late, true, false),
    ];
    let backend = store.db().backend();
    for (n, (flow, template, contact, status, at, opened, clicked)) in
        deliveries.into_iter().enumerate()
    {
        let id = n as i64 + 1;
        store
            .db()
            .conn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    DbBackend::Postgres => {
                        "INSERT INTO sys_deliveries (id, run_id, flow_id, node, iteration, contact_id, channel, template, status, attempts, next_attempt_at, created_at, updated_at) \
                         VALUES ($1, $1, $2, 'mail', 0, $3, 'email', $4, $5, 1, 0, $6, $6)"
                    }
                    _ => {
                        "INSERT INTO sys_deliveries (id, run_id, flow_id, node, iteration, contact_id, channel, template, status, attempts, next_attempt_at, created_at, updated_at) \
                         VALUES (?1, ?1, ?2, 'mail', 0, ?3, 'email', ?4, ?5, 1, 0, ?6, ?6)"
                    }
                },
                [
                    id.into(),
                    (flow as i64).into(),
                    contact.into(),
                    template.into(),
                    status.into(),
                    at.into(),
                ],
            ))
            .await
            .unwrap();
        for (name, happened) in [("opened", opened), ("opened", opened), ("clicked", clicked)] {
            if !happened {
                continue;
            }
            let key = format!("{name}-{id}-{}", rand::random::<u32>());
            store
                .db()
                .conn
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    match backend {
                        DbBackend::Postgres => {
                            "INSERT INTO sys_events (event_key, contact_id, name, delivery_id, properties, occurred_at, received_at) \
                             VALUES ($1, $2, $3, $4, '{}', $5, $5)"
                        }
                        _ => {
                            "INSERT INTO sys_events (event_key, contact_id, name, delivery_id, properties, occurred_at, received_at) \
                             VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?5)"
                        }
                    },
                    [key.into(), contact.into(), name.into(), id.into(), at.into()],
                ))
                .await
                .unwrap();
        }
    }
    (store, ids)
}

fn clerk() -> Principal {
    let mut tourists = EntityRights::with_ops(&[Op::View]);
    tourists
        .fields
        .insert("birth_date".into(), FieldAccess::None);
    Principal {
        user_id: Some(2),
        login: "clerk".into(),
        rights: Rights {
            admin: false,
            entities: [
                ("tourists".to_string(), tourists),
                (FLOWS.to_string(), EntityRights::with_ops(&[Op::View])),
                (REPORTS.to_string(), EntityRights::with_ops(&[Op::View])),
            ]
            .into(),
        },
    }
}

#[tokio::test]
async fn message_reports_count_sends_opens_and_clicks_by_any_dimension() {
    for scratch in Scratch::all_backends().await {
        let (store, _) = seeded(&scratch).await;
        let admin = Principal::system();
        let run = |body: Json| {
            let store = store.clone();
            let admin = admin.clone();
            async move { store.run_report(&admin, &def(body), now()).await }
        };

        let by_flow =
            run(json!({"chart": "table", "source": {"messages": {"group_by": ["flow"]}}}))
                .await
                .unwrap();
        assert_eq!(by_flow.dimensions, ["flow"]);
        assert_eq!(
            by_flow.rows,
            [
                json!({"flow": 1, "sent": 4, "failed": 1, "opened": 2, "clicked": 1, "open_rate": 0.5, "click_rate": 0.25}),
                json!({"flow": 2, "sent": 1, "failed": 0, "opened": 1, "clicked": 0, "open_rate": 1.0, "click_rate": 0.0}),
            ]
            .map(|v| v.as_object().unwrap().clone())
        );

        let by_day = run(json!({"chart": "line", "source": {"messages": {
            "flow": 1, "group_by": ["day"], "measures": ["sent", "opened"]}}}))
        .await
        .unwrap();
        assert_eq!(
            by_day.rows,
            [
                json!({"day": "2026-11-26", "sent": 2, "opened": 0}),
                json!({"day": "2026-11-28", "sent": 2, "opened": 2}),
            ]
            .map(|v| v.as_object().unwrap().clone())
        );

        // PT-5: a scenario's results by age group. On 28 November 2026 the recipients are
        // 36, 40, 66, 25, 24 (the 29 November birthday is tomorrow) and 27.
        let by_age = run(json!({"chart": "bar", "source": {"messages": {
            "group_by": ["age_group"], "measures": ["sent", "open_rate"]}}}))
        .await
        .unwrap();
        assert_eq!(
            by_age.rows,
            [
                json!({"age_group": 20, "sent": 2, "open_rate": 0.5}),
                json!({"age_group": 30, "sent": 1, "open_rate": 1.0}),
                json!({"age_group": 40, "sent": 1, "open_rate": 1.0}),
                json!({"age_group": 60, "sent": 1, "open_rate": 0.0}),
            ]
            .map(|v| v.as_object().unwrap().clone())
        );

        let aichi = run(json!({"chart": "funnel", "source": {"messages": {
            "recipients": {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
            "period": {"last_days": 1},
            "measures": ["sent", "opened", "clicked"]}}}))
        .await
        .unwrap();
        assert_eq!(
            aichi.rows,
            [json!({"sent": 2, "opened": 2, "clicked": 1})
                .as_object()
                .unwrap()
                .clone()]
        );

        let by_prefecture = run(json!({"chart": "pie", "source": {"messages": {
            "group_by": ["tourists.prefecture"], "measures": ["sent"]}}}))
        .await
        .unwrap();
        let sent_to = |prefecture: &str| {
            by_prefecture
                .rows
                .iter()
                .find(|r| r["tourists.prefecture"] == json!(prefecture))
                .map(|r| r["sent"].clone())
        };
        assert_eq!(by_prefecture.rows.len(), 2);
        assert_eq!(sent_to("愛知県"), Some(json!(3)));
        assert_eq!(sent_to("東京都"), Some(json!(2)));

        let e = run(json!({"chart": "pie", "source": {"messages": {"group_by": ["flow"]}}}))
            .await
            .unwrap_err();
        assert_eq!(
            codes(e),
            [("definition.chart".to_string(), "chart_mismatch")]
        );
        let e = run(json!({"chart": "table", "source": {"messages": {"group_by": ["flavour"]}}}))
            .await
            .unwrap_err();
        assert_eq!(
            codes(e),
            [(
                "definition.source.messages.group_by[0]".to_string(),
                "unknown_dimension"
            )]
        );

        // The viewer's rights: no birth dates, no age groups.
        let e = store
            .run_report(
                &clerk(),
                &def(json!({"chart": "bar", "source": {"messages": {"group_by": ["age_group"]}}})),
                now(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");
        scratch.remove().await;
    }
}

#[tokio::test]
async fn record_reports_are_aggregates_with_a_chart() {
    for scratch in Scratch::all_backends().await {
        let (store, _) = seeded(&scratch).await;
        let admin = Principal::system();
        let monthly = store
            .run_report(
                &admin,
                &def(
                    json!({"chart": "line", "source": {"records": {"entity": "purchases",
                    "group_by": [{"field": "occurred_at", "bucket": "month"}],
                    "measures": [{"sum": "amount"}, "count"]}}}),
                ),
                now(),
            )
            .await
            .unwrap();
        assert_eq!(monthly.dimensions, ["occurred_at_month"]);
        assert_eq!(monthly.measures, ["sum_amount", "count"]);
        assert_eq!(
            monthly.rows,
            [
                json!({"occurred_at_month": "2026-10", "sum_amount": 1000, "count": 1}),
                json!({"occurred_at_month": "2026-11", "sum_amount": 8000, "count": 2}),
            ]
            .map(|v| v.as_object().unwrap().clone())
        );
        let e = store
            .run_report(
                &admin,
                &def(
                    json!({"chart": "line", "source": {"records": {"entity": "tourists",
                    "group_by": [{"field": "prefecture"}]}}}),
                ),
                now(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            codes(e),
            [("definition.chart".to_string(), "chart_mismatch")]
        );
        let e = store
            .run_report(
                &admin,
                &def(
                    json!({"chart": "bar", "source": {"records": {"entity": "tourists",
                    "group_by": [{"field": "shoe_size"}]}}}),
                ),
                now(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            codes(e),
            [(
                "definition.source.records.group_by[0]".to_string(),
                "unknown_field"
            )]
        );
        scratch.remove().await;
    }
}

#[tokio::test]
async fn dashboards_show_each_viewer_what_they_may_see() {
    for scratch in Scratch::all_backends().await {
        let (store, _) = seeded(&scratch).await;
        let admin = Principal::system();
        let report = |key: &str, body: Json| NewReport {
            key: key.into(),
            name: format!("report {key}"),
            description: None,
            definition: def(body),
        };
        create_report(
            &store,
            &admin,
            &report(
                "by_prefecture",
                json!({"chart": "pie", "source": {"records": {"entity": "tourists", "group_by": [{"field": "prefecture"}]}}}),
            ),
            now(),
        )
        .await
        .unwrap();
        create_report(
            &store,
            &admin,
            &report(
                "by_age",
                json!({"chart": "bar", "source": {"messages": {"group_by": ["age_group"]}}}),
            ),
            now(),
        )
        .await
        .unwrap();
        let e = create_report(
            &store,
            &admin,
            &report(
                "broken",
                json!({"chart": "funnel", "source": {"records": {"entity": "tourists"}}}),
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            codes(e),
            [("definition.chart".to_string(), "chart_mismatch")]
        );

        let widgets: Vec<Widget> = serde_json::from_value(json!([
            {"report": "by_prefecture", "width": 4},
            {"report": "by_age", "width": 8, "title": "年代別開封率"}
        ]))
        .unwrap();
        create_dashboard(
            &store,
            &admin,
            &NewDashboard {
                key: "marketing".into(),
                name: "マーケティング".into(),
                widgets: widgets.clone(),
            },
            now(),
        )
        .await
        .unwrap();
        let e = create_dashboard(
            &store,
            &admin,
            &NewDashboard {
                key: "bad".into(),
                name: "bad".into(),
                widgets: serde_json::from_value(
                    json!([{"report": "nothing"}, {"report": "by_age", "width": 13}]),
                )
                .unwrap(),
            },
            now(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            codes(e),
            [
                ("widgets[0].report".to_string(), "unknown_report"),
                ("widgets[1].width".to_string(), "invalid_width")
            ]
        );

        let shown = show_dashboard(&store, &admin, "marketing", now())
            .await
            .unwrap();
        assert_eq!(shown.shown.len(), 2);
        assert!(shown.shown.iter().all(|w| w.data.is_some()));
        assert_eq!(shown.shown[1].name, "年代別開封率");

        let as_clerk = show_dashboard(&store, &clerk(), "marketing", now())
            .await
            .unwrap();
        assert_eq!(
            as_clerk.shown[0].data.as_ref().unwrap().rows.len(),
            2,
            "the clerk sees tourists by prefecture"
        );
        assert!(as_clerk.shown[1].data.is_none());
        assert_eq!(
            as_clerk.shown[1].error.as_ref().unwrap()["code"],
            "forbidden"
        );

        let e = delete_report(&store, &admin, "by_age").await.unwrap_err();
        assert_eq!(codes(e), [("key".to_string(), "report_in_use")]);
        update_dashboard(
            &store,
            &admin,
            "marketing",
            &NewDashboard {
                key: "marketing".into(),
                name: "マーケティング".into(),
                widgets: widgets[..1].to_vec(),
            },
            now(),
        )
        .await
        .unwrap();
        delete_report(&store, &admin, "by_age").await.unwrap();
        let e = create_report(
            &store,
            &clerk(),
            &report(
                "mine",
                json!({"chart": "table", "source": {"records": {"entity": "tourists"}}}),
            ),
            now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");
        scratch.remove().await;
    }
}
