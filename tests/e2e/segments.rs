//! Finding tourists without SQL, through the API: the issue's own example ("from Aichi, bought
//! more than ¥10,000 in the last 30 days, birthday this month"), saved as segments, combined,
//! counted and paged; message and flow results as conditions; rights on the filter itself.

use chrono::{Datelike, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tabiji_e2e::{TestApp, on_every_backend};

fn ids_of(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

fn days_ago(n: i64) -> String {
    (Utc::now() - Duration::days(n)).to_rfc3339()
}

async fn find_and_save_segments(app: &TestApp) {
    // Months as they are in Tokyo, where "this month" is read.
    let today = (Utc::now() + Duration::hours(9)).date_naive();
    let this_month = format!("1990-{:02}-01", today.month());
    let next_month = format!("1985-{:02}-01", today.month() % 12 + 1);
    let ids = app
        .create_tourists(vec![
            json!({"email": "a@example.jp", "prefecture": "愛知県", "birth_date": this_month}),
            json!({"email": "b@example.jp", "prefecture": "愛知県", "birth_date": this_month}),
            json!({"email": "c@example.jp", "prefecture": "愛知県", "birth_date": next_month}),
            json!({"email": "d@example.jp", "prefecture": "東京都", "birth_date": this_month}),
            json!({"email": "e@example.jp", "prefecture": "愛知県", "birth_date": this_month}),
            json!({"email": "f@example.jp", "prefecture": "愛知県"}),
        ])
        .await;
    let [a, b, c, d, e, f] = ids[..] else {
        panic!("{ids:?}")
    };
    let purchase = |who: i64, amount: i64, ago: i64| json!({"tourist_id": who, "amount": amount, "occurred_at": days_ago(ago)});
    let (status, body) = app
        .post(
            "/api/data/purchases/bulk",
            json!({"items": [
                purchase(a, 8000, 5), purchase(a, 4000, 10),
                purchase(b, 12000, 45),
                purchase(c, 20000, 2),
                purchase(d, 15000, 1),
                purchase(e, 6000, 3), purchase(e, 6000, 3),
                purchase(f, 30000, 1),
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let aichi = json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}});
    let big_spender = json!({"history": {"store": "purchases", "period": {"last_days": 30},
        "measure": {"sum": "amount"}, "op": "gt", "value": 10000}});
    let birthday = json!({"field": {"key": "birth_date", "op": "month_is", "value": "this"}});
    let (status, page) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"all": [aichi, big_spender, birthday]}, "count": true, "limit": 1}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 2);
    assert_eq!(ids_of(&page), vec![a]);
    let (_, second) = app
        .post(
            "/api/data/tourists/search",
            json!({"filter": {"all": [aichi, big_spender, birthday]}, "limit": 1,
                   "after": page["next_after"]}),
        )
        .await;
    assert_eq!(ids_of(&second), vec![e]);
    assert!(second.get("next_after").is_none(), "{second}");

    // Saved, combined and counted.
    for (key, filter) in [
        ("aichi", aichi.clone()),
        ("big_spenders", big_spender.clone()),
        ("birthday_month", birthday.clone()),
        (
            "campaign",
            json!({"all": [{"segment": "aichi"}, {"segment": "big_spenders"}, {"segment": "birthday_month"}]}),
        ),
        (
            "aichi_not_big",
            json!({"all": [{"segment": "aichi"}, {"not": {"segment": "big_spenders"}}]}),
        ),
    ] {
        let (status, body) = app
            .post(
                "/api/segments",
                json!({"key": key, "name": format!("{key} 顧客"), "filter": filter}),
            )
            .await;
        assert_eq!(status, 201, "{key}: {body}");
        assert_eq!(body["entity"], "tourists");
    }
    assert_eq!(app.get("/api/segments/campaign/count").await["count"], 2);
    let members = app
        .get("/api/segments/aichi/members?sort=email&desc=true&count=true&limit=3")
        .await;
    assert_eq!(ids_of(&members), vec![f, e, c]);
    assert_eq!(members["count"], 5);
    let after = members["next_after"].as_str().unwrap();
    let rest = app
        .get(&format!(
            "/api/segments/aichi/members?sort=email&desc=true&after={after}"
        ))
        .await;
    assert_eq!(ids_of(&rest), vec![b, a]);
    let members = app.get("/api/segments/aichi_not_big/members").await;
    assert_eq!(
        ids_of(&members),
        vec![b],
        "B's big purchase was 45 days ago"
    );
    let listed = app.get("/api/segments").await;
    assert_eq!(listed["segments"].as_array().unwrap().len(), 5);

    // A segment that would reach itself is refused, naming the chain.
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/segments/aichi",
            Some(json!({"filter": {"segment": "aichi_not_big"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "segment_cycle");
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/segments/aichi",
            Some(json!({"name": "愛知県の観光客"})),
        )
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("愛知県の観光客"))
    );

    // In use: not deleted. Unused: deleted.
    let (status, body) = app.call(Method::DELETE, "/api/segments/aichi", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("segment \"aichi_not_big\""),
        "{body}"
    );
    let (status, _) = app
        .call(Method::DELETE, "/api/segments/aichi_not_big", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .call(Method::GET, "/api/segments/aichi_not_big", None)
        .await;
    assert_eq!(status, 404);

    // Mistakes are named.
    let (status, body) = app
        .post(
            "/api/segments",
            json!({"key": "aichi", "name": "again", "filter": {"all": []}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["code"].as_str()),
        (409, Some("duplicate_key"))
    );
    let (status, body) = app
        .post(
            "/api/data/tourists/count",
            json!({"filter": {"any": [aichi, {"field": {"key": "shoe_size", "op": "gt", "value": 40}}]}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "filter.any[1].field");
    assert_eq!(body["error"]["details"][0]["code"], "unknown_field");
    let (status, body) = app
        .post("/api/data/tourists/count", json!({"filter": {"every": []}}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant `every`"),
        "{body}"
    );
}

#[tokio::test]
async fn segments_find_save_combine_and_page() {
    on_every_backend!(find_and_save_segments);
}

async fn message_and_flow_results(app: &TestApp) {
    let ids = app
        .create_tourists(
            (0..3)
                .map(|n| json!({"email": format!("m{n}@example.jp")}))
                .collect(),
        )
        .await;
    let flow = json!({
        "format": 1, "name": "welcome",
        "entry": {"type": "api", "next": "mail1"},
        "nodes": [
            {"id": "mail1", "type": "send", "channel": "test", "template": "welcome-1", "next": "wait_open"},
            {"id": "wait_open", "type": "wait_for_event", "event": {"opened": {"of": "mail1"}},
             "timeout": "3d", "on_event": "end", "on_timeout": "end"},
            {"id": "end", "type": "exit"}
        ]
    });
    let (_, created) = app.post("/api/flows", flow).await;
    let flow_id = created["id"].as_i64().unwrap();
    let (status, _) = app
        .post(&format!("/api/flows/{flow_id}/publish"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            &format!("/api/flows/{flow_id}/runs"),
            json!({"contacts": [ids[0], ids[1]]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let count = |filter: Value| async move {
        let (status, body) = app
            .post(
                "/api/data/tourists/search",
                json!({"filter": filter, "count": true}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ids_of(&body)
    };
    let sent = json!({"message": {"flow": flow_id, "node": "mail1", "status": "sent",
        "period": {"this": "day"}}});
    let start = std::time::Instant::now();
    while count(sent.clone()).await.len() < 2 {
        assert!(
            start.elapsed().as_secs() < 20,
            "the two mails were never sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(sent.clone()).await, vec![ids[0], ids[1]]);
    assert_eq!(
        count(json!({"journey": {"flow": flow_id, "at": "wait_open"}})).await,
        vec![ids[0], ids[1]]
    );
    let deliveries = app
        .get(&format!("/api/deliveries?status=sent&flow={flow_id}"))
        .await;
    let delivery = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["contact_id"] == ids[1])
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) = app
        .post(
            "/api/events",
            json!({"events": [{"id": "open-m1", "contact_id": ids[1], "name": "opened",
                "delivery_id": delivery}]}),
        )
        .await;
    assert_eq!(status, 200);
    let opened = json!({"message": {"flow": flow_id, "status": "opened"}});
    assert_eq!(count(opened.clone()).await, vec![ids[1]]);
    // Sent but not opened: the ones to remind.
    assert_eq!(
        count(json!({"all": [sent, {"not": opened}]})).await,
        vec![ids[0]]
    );
    let start = std::time::Instant::now();
    while count(json!({"journey": {"flow": flow_id, "status": "finished"}}))
        .await
        .is_empty()
    {
        assert!(
            start.elapsed().as_secs() < 20,
            "the opened run never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(json!({"journey": {"flow": flow_id, "status": "finished"}})).await,
        vec![ids[1]]
    );
    assert_eq!(
        count(json!({"not": {"journey": {"flow": flow_id}}})).await,
        vec![ids[2]]
    );
}

#[tokio::test]
async fn message_and_flow_results_are_conditions() {
    on_every_backend!(message_and_flow_results);
}

async fn filters_respect_field_rights(app: &TestApp) {
    app.create_tourists(vec![
        json!({"email": "r@example.jp", "prefecture": "愛知県", "birth_date": "1990-01-01"}),
    ])
    .await;
    let clerk = app
        .user_with_rights(
            "clerk",
            json!({"entities": {"tourists": {"ops": ["view"], "fields": {"birth_date": "none"}}}}),
        )
        .await;
    let search = |filter: Value| {
        clerk
            .post(app.url("/api/data/tourists/search"))
            .json(&json!({ "filter": filter }))
            .send()
    };
    let r = search(json!({"field": {"key": "birth_date", "op": "lt", "value": "2000-01-01"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "birth_date");
    let r = search(json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert!(body["items"][0].get("birth_date").is_none(), "{body}");
    // Saved segments are a right of their own.
    let r = clerk.get(app.url("/api/segments")).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn filters_respect_field_rights_and_segments_need_their_own() {
    on_every_backend!(filters_respect_field_rights);
}

async fn flows_send_to_saved_segments(app: &TestApp) {
    let ids = app
        .create_tourists(vec![
            json!({"email": "s0@example.jp", "prefecture": "愛知県", "opt_in_email": true}),
            json!({"email": "s1@example.jp", "prefecture": "東京都", "opt_in_email": true}),
            json!({"email": "s2@example.jp", "prefecture": "愛知県", "opt_in_email": false}),
            json!({"email": "s3@example.jp", "prefecture": "愛知県", "opt_in_email": true}),
        ])
        .await;
    let flow = |segment: &str| {
        json!({
            "format": 1, "name": format!("to {segment}"),
            "entry": {"type": "segment_snapshot", "segment": segment, "next": "mail"},
            "nodes": [
                {"id": "mail", "type": "send", "channel": "test", "template": "autumn", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        })
    };
    let (_, draft) = app.post("/api/flows", flow("aichi_mail")).await;
    let id = draft["id"].as_i64().unwrap();
    let (status, body) = app
        .post(&format!("/api/flows/{id}/publish"), json!({}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "unknown_segment");

    let (status, body) = app
        .post(
            "/api/segments",
            json!({"key": "aichi_mail", "name": "愛知・メール可", "filter": {"all": [
                {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
                {"field": {"key": "opt_in_email", "op": "is_true"}}
            ]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(&format!("/api/flows/{id}/publish"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let start = std::time::Instant::now();
    while app.channel.sent().len() < 2 {
        assert!(
            start.elapsed().as_secs() < 20,
            "the segment was never sent to"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut sent: Vec<i64> = app.channel.sent().iter().map(|m| m.contact_id).collect();
    sent.sort_unstable();
    assert_eq!(sent, vec![ids[0], ids[3]]);
    // A segment a running flow sends to stays.
    let (status, _) = app
        .call(Method::DELETE, "/api/segments/aichi_mail", None)
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn flows_send_to_saved_segments_only() {
    on_every_backend!(flows_send_to_saved_segments);
}

async fn act_on_a_filtered_set(app: &TestApp) {
    let ids = app
        .create_tourists(vec![
            json!({"email": "p0@example.jp", "prefecture": "愛知県", "interests": ["food"]}),
            json!({"email": "p1@example.jp", "prefecture": "愛知県", "interests": []}),
            json!({"email": "p2@example.jp", "prefecture": "愛知県"}),
            json!({"email": "p3@example.jp", "prefecture": "東京都"}),
            json!({"email": "p4@example.jp", "prefecture": "東京都"}),
        ])
        .await;
    let aichi = json!({"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}});
    let act = |action: Value, extra: Value| {
        let mut body = json!({"filter": aichi.clone(), "action": action});
        if let Value::Object(extra) = extra {
            body.as_object_mut().unwrap().extend(extra);
        }
        app.post("/api/data/tourists/filtered", body)
    };
    let premium = json!({"set": {"member_type": "premium"}});
    let (status, preview) = act(premium.clone(), json!({"preview": true})).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        (preview["matched"].as_u64(), preview["changed"].as_u64()),
        (Some(3), Some(0))
    );
    let count_premium = || async {
        let (_, body) = app
            .post(
                "/api/data/tourists/count",
                json!({"filter": {"field": {"key": "member_type", "op": "eq", "value": "premium"}}}),
            )
            .await;
        body["count"].as_u64().unwrap()
    };
    assert_eq!(count_premium().await, 0, "a preview changes nothing");
    let (status, body) = act(premium.clone(), json!({"expected_count": 2})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "changed_since_preview");
    let (status, body) = act(premium, json!({"expected_count": 3})).await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(3)), "{body}");
    assert_eq!(count_premium().await, 3);

    // Tagging: options added to and removed from a multiple-choice field.
    let (_, body) = act(
        json!({"add_choices": {"interests": ["history"]}}),
        json!({}),
    )
    .await;
    assert_eq!(body["changed"], 3, "{body}");
    let first = app.get(&format!("/api/data/tourists/{}", ids[0])).await;
    assert_eq!(first["interests"], json!(["food", "history"]));
    let (_, body) = act(
        json!({"remove_choices": {"interests": ["food"]}}),
        json!({}),
    )
    .await;
    assert_eq!(body["changed"], 1, "only one held food: {body}");

    // A bad value refuses the whole action, naming the field; nothing changes.
    let (status, body) = act(json!({"set": {"member_type": "vip"}}), json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "member_type");
    assert_eq!(count_premium().await, 3);
    let viewer = app
        .user_with_rights(
            "viewer",
            json!({"entities": {"tourists": {"ops": ["view"]}}}),
        )
        .await;
    let r = viewer
        .post(app.url("/api/data/tourists/filtered"))
        .json(&json!({"filter": aichi, "action": "delete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let (_, body) = app
        .post(
            "/api/data/tourists/filtered",
            json!({"filter": {"field": {"key": "prefecture", "op": "eq", "value": "東京都"}},
                   "action": "delete"}),
        )
        .await;
    assert_eq!(body["changed"], 2, "{body}");
    let (_, body) = app.post("/api/data/tourists/count", json!({})).await;
    assert_eq!(body["count"], 3);
}

#[tokio::test]
async fn bulk_actions_on_a_filtered_set_preview_then_act() {
    on_every_backend!(act_on_a_filtered_set);
}

async fn aggregates_and_draws(app: &TestApp) {
    let items: Vec<Value> = (0..40)
        .map(|n| {
            json!({"email": format!("g{n}@example.jp"),
                   "prefecture": if n % 4 == 0 { "東京都" } else { "愛知県" },
                   "total_spend": n * 100})
        })
        .collect();
    app.create_tourists(items).await;
    let (status, body) = app
        .post(
            "/api/data/tourists/aggregate",
            json!({"group_by": [{"field": "prefecture"}],
                   "measures": ["count", {"sum": "total_spend"}, {"avg": "total_spend"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Tokyo: n = 0, 4, …, 36 (10 tourists, 1,800 on average); Aichi the 30 others.
    assert_eq!(
        body["groups"],
        json!([
            {"prefecture": "愛知県", "count": 30, "sum_total_spend": 60000, "avg_total_spend": 2000.0},
            {"prefecture": "東京都", "count": 10, "sum_total_spend": 18000, "avg_total_spend": 1800.0}
        ])
    );

    // A reproducible draw of 5 Aichi tourists, saved as a segment for a campaign.
    let draw = |seed: u32| {
        json!({"sample": {"of": {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
                          "count": 5, "seed": seed}})
    };
    let drawn = |seed: u32| async move {
        let (_, page) = app
            .post("/api/data/tourists/search", json!({"filter": draw(seed)}))
            .await;
        ids_of(&page)
    };
    let first = drawn(7).await;
    assert_eq!(first.len(), 5);
    assert_eq!(
        drawn(7).await,
        first,
        "the same seed draws the same tourists"
    );
    assert_ne!(drawn(8).await, first);
    let (status, _) = app
        .post(
            "/api/segments",
            json!({"key": "lucky_five", "name": "抽選5名", "filter": draw(7)}),
        )
        .await;
    assert_eq!(status, 201);
    let members = app.get("/api/segments/lucky_five/members").await;
    assert_eq!(ids_of(&members), first);
    let (_, tenth) = app
        .post(
            "/api/data/tourists/count",
            json!({"filter": {"sample": {"ratio": 0.5, "seed": 3}}}),
        )
        .await;
    let n = tenth["count"].as_u64().unwrap();
    assert!((10..=30).contains(&n), "about half of 40: {n}");
}

#[tokio::test]
async fn aggregates_group_and_draws_are_reproducible() {
    on_every_backend!(aggregates_and_draws);
}
