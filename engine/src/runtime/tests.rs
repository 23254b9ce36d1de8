//! The runtime against real databases (SQLite always, PostgreSQL when `DATABASE_URL` names
//! one), driven by a test clock.

use std::sync::Arc;

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{Value as Json, json};
use tabiji_connectors::{BoxFuture, Connector, Message, Outcome, Recording, Registry};
use tabiji_model::clock::FixedClock;
use tabiji_model::flow::Channel;
use tabiji_storage::journeys;
use tabiji_storage::scratch::Scratch;
use tabiji_storage::{Db, Principal, Store, flows, imports, migration};

use super::*;
use tabiji_model::zone::Zone;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Fixture {
    runtime: Arc<Runtime>,
    clock: Arc<FixedClock>,
    channel: Arc<Recording>,
    scratch: Scratch,
}

async fn fixture(scratch: Scratch, contacts: usize) -> Fixture {
    let db = Db::connect(&scratch.url).await.unwrap();
    migration::run(&db).await.unwrap();
    let store = Store::open(db).await.unwrap();
    let items: Vec<Json> = (1..=contacts)
        .map(|i| json!({"email": format!("guest{i}@example.jp"), "prefecture": if i % 2 == 0 { "愛知県" } else { "岐阜県" }}))
        .collect();
    store
        .bulk_create(&Principal::system(), "tourists", items)
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(t("2026-12-01T01:00:00Z")));
    let channel = Arc::new(Recording::new());
    let registry = Registry::new().with(channel.clone());
    let runtime = Arc::new(Runtime::new(
        store,
        clock.clone(),
        registry,
        Config::default(),
    ));
    Fixture {
        runtime,
        clock,
        channel,
        scratch,
    }
}

async fn publish(store: &Store, flow: Json) -> i64 {
    let who = Principal::system();
    let created = flows::create(store, &who, &flow).await.unwrap();
    flows::publish(store, &who, created.id).await.unwrap();
    created.id
}

/// Runs every step until nothing is left to do now.
async fn settle(rt: &Runtime) {
    loop {
        let done = rt.enter_step().await.unwrap()
            + rt.event_step().await.unwrap()
            + rt.timer_step().await.unwrap()
            + rt.deliver_step().await.unwrap();
        if done == 0 {
            return;
        }
    }
}

fn patent_flow() -> Json {
    json!({
        "format": 1,
        "name": "patent",
        "settings": {"goals": ["purchased"]},
        "entry": {"type": "segment_snapshot", "segment": "all", "next": "mail1"},
        "nodes": [
            {"id": "mail1", "type": "send", "channel": "test", "template": "mail-1", "next": "wait_open"},
            {"id": "wait_open", "type": "wait_for_event", "event": {"opened": {"of": "mail1"}},
             "timeout": "3d", "on_event": "mail2", "on_timeout": "sms"},
            {"id": "mail2", "type": "send", "channel": "test", "template": "mail-2", "next": "wait_click"},
            {"id": "wait_click", "type": "wait_for_event", "event": {"clicked": {"of": "mail2"}},
             "timeout": "5d", "on_event": "mail3", "on_timeout": "done"},
            {"id": "mail3", "type": "send", "channel": "test", "template": "mail-3", "next": "done"},
            {"id": "sms", "type": "send", "channel": "test", "template": "sms", "next": "done"},
            {"id": "done", "type": "exit"}
        ]
    })
}

fn templates_of(channel: &Recording, contact: i64) -> Vec<String> {
    channel
        .sent()
        .into_iter()
        .filter(|m| m.contact_id == contact)
        .map(|m| m.template)
        .collect()
}

async fn delivery_of(rt: &Runtime, contact: i64, node: &str) -> i64 {
    let sent = journeys::deliveries_by_status(&rt.store.db().conn, "sent", None, 10_000)
        .await
        .unwrap();
    sent.iter()
        .find(|d| d.contact_id == contact && d.node == node)
        .unwrap_or_else(|| panic!("contact {contact} was sent {node}"))
        .id
}

fn event(key: &str, contact: i64, name: &str, delivery: Option<i64>) -> IncomingEvent {
    IncomingEvent {
        event_key: key.into(),
        contact_id: contact,
        name: name.into(),
        delivery_id: delivery,
        properties: json!({}),
        occurred_at: None,
    }
}

#[tokio::test]
async fn the_patent_scenario_on_every_backend() {
    for scratch in Scratch::all_backends().await {
        let f = fixture(scratch, 6).await;
        let rt = &f.runtime;
        let flow_id = publish(rt.store(), patent_flow()).await;
        settle(rt).await;
        for c in 1..=6 {
            assert_eq!(templates_of(&f.channel, c), ["mail-1"], "contact {c}");
        }
        // Contacts 1-3 open mail 1 within the three days; 1 then clicks mail 2; 4 buys
        // (the goal) while waiting.
        f.clock.advance(Span::hours(30));
        let mut events = Vec::new();
        for c in 1..=3 {
            let d = delivery_of(rt, c, "mail1").await;
            events.push(event(&format!("open-{c}"), c, "opened", Some(d)));
        }
        events.push(event("buy-4", 4, "purchased", None));
        // The same open reported twice moves the run once.
        events.push(event("open-1", 1, "opened", None));
        let report = rt.ingest(events).await.unwrap();
        assert_eq!(report.accepted, 4);
        assert_eq!(report.duplicates, ["open-1"]);
        settle(rt).await;
        let d = delivery_of(rt, 1, "mail2").await;
        rt.ingest(vec![event("click-1", 1, "clicked", Some(d))])
            .await
            .unwrap();
        settle(rt).await;
        // "Not opened" is decided when three days passed without the open (PT-1).
        f.clock.advance(Span::hours(24));
        settle(rt).await;
        assert!(templates_of(&f.channel, 5).len() == 1, "not yet 3 days");
        f.clock.advance(Span::hours(19));
        settle(rt).await;
        // An open after the timeout changes nothing.
        let d = delivery_of(rt, 5, "mail1").await;
        rt.ingest(vec![event("late-open-5", 5, "opened", Some(d))])
            .await
            .unwrap();
        f.clock.advance(Span::days(6));
        settle(rt).await;

        assert_eq!(templates_of(&f.channel, 1), ["mail-1", "mail-2", "mail-3"]);
        assert_eq!(templates_of(&f.channel, 2), ["mail-1", "mail-2"]);
        assert_eq!(templates_of(&f.channel, 3), ["mail-1", "mail-2"]);
        assert_eq!(templates_of(&f.channel, 4), ["mail-1"]);
        assert_eq!(templates_of(&f.channel, 5), ["mail-1", "sms"]);
        assert_eq!(templates_of(&f.channel, 6), ["mail-1", "sms"]);

        let conn = &rt.store.db().conn;
        let stats = journeys::flow_stats(conn, flow_id, &journeys::Reached::everyone())
            .await
            .unwrap();
        assert_eq!(stats.runs.get("finished"), Some(&6));
        assert_eq!(stats.outcomes.get("exit"), Some(&5));
        assert_eq!(stats.outcomes.get("goal:purchased"), Some(&1));
        assert_eq!(stats.deliveries.get("sent"), Some(&12));
        assert_eq!(stats.steps["wait_open"].get("opened"), Some(&3));
        assert_eq!(stats.steps["wait_open"].get("timeout"), Some(&2));

        // The step log (PT-2) of contact 5: node, outcome, time.
        let run = &journeys::runs_of_contact(conn, 5, None, 1_000)
            .await
            .unwrap()[0];
        let steps = journeys::steps_of_run(conn, run.id).await.unwrap();
        let path: Vec<(&str, &str)> = steps
            .iter()
            .map(|(n, o, _)| (n.as_str(), o.as_str()))
            .collect();
        assert_eq!(
            path,
            [
                ("mail1", "sent"),
                ("wait_open", "timeout"),
                ("sms", "sent"),
                ("done", "exit")
            ]
        );
        assert_eq!(
            steps[1].2,
            t("2026-12-04T02:00:00Z").timestamp_millis(),
            "the timeout fires at the first sweep after three days"
        );
        f.scratch.remove().await;
    }
}

#[tokio::test]
async fn pause_holds_timers_and_sends_and_resume_continues_where_it_stopped() {
    let f = fixture(Scratch::sqlite(), 3).await;
    let rt = &f.runtime;
    let who = Principal::system();
    let id = publish(
        rt.store(),
        json!({
            "format": 1, "name": "pause",
            "entry": {"type": "segment_snapshot", "segment": "all", "next": "wait"},
            "nodes": [
                {"id": "wait", "type": "wait", "duration": "1d", "next": "mail"},
                {"id": "mail", "type": "send", "channel": "test", "template": "t", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        }),
    )
    .await;
    settle(rt).await;
    flows::set_status(rt.store(), &who, id, "paused")
        .await
        .unwrap();
    f.clock.advance(Span::days(2));
    settle(rt).await;
    assert!(f.channel.sent().is_empty(), "paused: nothing moves");
    flows::set_status(rt.store(), &who, id, "active")
        .await
        .unwrap();
    settle(rt).await;
    assert_eq!(f.channel.sent().len(), 3);
    // Resuming did not enter anyone again.
    let stats = journeys::flow_stats(&rt.store.db().conn, id, &journeys::Reached::everyone())
        .await
        .unwrap();
    assert_eq!(stats.runs.get("finished"), Some(&3));
    f.scratch.remove().await;
}

#[tokio::test]
async fn api_entry_re_entry_rules_and_contact_updates() {
    let f = fixture(Scratch::sqlite(), 4).await;
    let rt = &f.runtime;
    let flow = |re_entry: &str| {
        json!({
            "format": 1, "name": format!("api {re_entry}"),
            "settings": {"re_entry": re_entry},
            "entry": {"type": "api", "next": "tag"},
            "nodes": [
                {"id": "tag", "type": "update_contact", "set": {"notes": "entered by api"}, "next": "aichi"},
                {"id": "aichi", "type": "branch", "field": "prefecture", "op": "eq", "value": "愛知県",
                 "on_true": "mail", "on_false": "end"},
                {"id": "mail", "type": "send", "channel": "test", "template": "aichi", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        })
    };
    let never = publish(rt.store(), flow("never")).await;
    let always = publish(rt.store(), flow("always")).await;
    let report = rt.enter_contacts(never, &[1, 2, 2, 99], "a").await.unwrap();
    assert_eq!(report.entered, [1, 2]);
    assert_eq!(report.unknown, [99]);
    let again = rt.enter_contacts(never, &[1, 3], "b").await.unwrap();
    assert_eq!((again.entered, again.skipped), (vec![3], vec![1]));
    let twice = rt.enter_contacts(always, &[2], "x").await.unwrap();
    assert_eq!(twice.entered, [2]);
    let same_key = rt.enter_contacts(always, &[2], "x").await.unwrap();
    assert_eq!(same_key.skipped, [2], "one run per (flow, contact, key)");
    let other_key = rt.enter_contacts(always, &[2], "y").await.unwrap();
    assert_eq!(other_key.entered, [2]);
    settle(rt).await;
    // Only contact 2 lives in Aichi; it went through the never-flow once and the
    // always-flow twice.
    assert_eq!(templates_of(&f.channel, 2).len(), 3);
    assert!(templates_of(&f.channel, 1).is_empty());
    let record = rt
        .store
        .get(&Principal::system(), "tourists", 3)
        .await
        .unwrap();
    assert_eq!(record["notes"], "entered by api");

    let snapshot = publish(
        rt.store(),
        json!({"format": 1, "name": "s", "entry": {"type": "segment_snapshot", "segment": "all", "next": "end"},
               "nodes": [{"id": "end", "type": "exit"}]}),
    )
    .await;
    match rt.enter_contacts(snapshot, &[1], "k").await {
        Err(RuntimeError::NotApiEntry { entry, .. }) => assert_eq!(entry, "segment_snapshot"),
        other => panic!("expected NotApiEntry, got {other:?}"),
    }
    f.scratch.remove().await;
}

/// A provider that fails transiently a set number of times, then accepts.
struct Flaky {
    failures: std::sync::Mutex<u32>,
    permanent_for: Option<i64>,
}

impl Connector for Flaky {
    fn channel(&self) -> Channel {
        Channel::Sms
    }
    fn required_fields(&self) -> Vec<String> {
        vec!["mobile_phone".into()]
    }
    /// What the provider answers does not depend on the text: no template needed.
    fn needs_content(&self) -> bool {
        false
    }
    fn max_batch(&self) -> usize {
        10
    }
    fn send_batch<'a>(
        &'a self,
        batch: &'a [Message],
        _deadline: std::time::Instant,
    ) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let mut failures = self.failures.lock().unwrap();
            batch
                .iter()
                .map(|m| {
                    if Some(m.contact_id) == self.permanent_for {
                        Outcome::Permanent("number not in service".into())
                    } else if *failures > 0 {
                        *failures -= 1;
                        Outcome::Transient("503 from the provider".into())
                    } else {
                        Outcome::Accepted {
                            provider_ref: format!("sms-{}", m.delivery_id),
                        }
                    }
                })
                .collect()
        })
    }
}

#[tokio::test]
async fn retries_with_backoff_dead_letters_suppression_and_unknown_after_a_crash() {
    let scratch = Scratch::sqlite();
    let db = Db::connect(&scratch.url).await.unwrap();
    migration::run(&db).await.unwrap();
    let store = Store::open(db).await.unwrap();
    let who = Principal::system();
    store
        .bulk_create(
            &who,
            "tourists",
            vec![
                json!({"email": "a@example.jp", "mobile_phone": "090-1111-2222", "opt_in_sms": true}),
                json!({"email": "b@example.jp", "mobile_phone": "090-3333-4444", "opt_in_sms": true}),
                json!({"email": "c@example.jp", "opt_in_sms": true}),
                json!({"email": "d@example.jp", "mobile_phone": "090-5555-6666", "opt_in_sms": false}),
            ],
        )
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(t("2026-12-01T03:00:00Z")));
    let registry = Registry::new().with(Arc::new(Flaky {
        failures: std::sync::Mutex::new(2),
        permanent_for: Some(2),
    }));
    let config = Config {
        max_attempts: 3,
        ..Config::default()
    };
    let rt = Runtime::new(store.clone(), clock.clone(), registry, config);
    let flow = publish(
        &store,
        json!({"format": 1, "name": "sms", "entry": {"type": "segment_snapshot", "segment": "all", "next": "sms"},
               "nodes": [{"id": "sms", "type": "send", "channel": "sms", "template": "t", "next": "end"},
                         {"id": "end", "type": "exit"}]}),
    )
    .await;
    settle(&rt).await;
    let conn = &store.db().conn;
    let status = |s: &'static str| async move {
        journeys::deliveries_by_status(conn, s, Some(flow), 100)
            .await
            .unwrap()
    };
    // 1 failed transiently and waits 30 s; 2 is dead; 3 has no mobile phone; 4 said no to SMS.
    let pending = status("pending").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].next_attempt_at,
        t("2026-12-01T03:00:30Z").timestamp_millis()
    );
    assert_eq!(
        status("dead").await[0].error.as_deref(),
        Some("number not in service")
    );
    let suppressed: Vec<Option<String>> = status("suppressed")
        .await
        .into_iter()
        .map(|d| d.error)
        .collect();
    assert_eq!(
        suppressed,
        vec![
            Some("the contact has not agreed to receive sms (opt_in_sms is not true)".into()),
            Some("the contact has no mobile_phone".into()),
        ],
        "newest first"
    );
    clock.advance(Span::seconds(30));
    settle(&rt).await;
    assert_eq!(
        status("pending").await[0].next_attempt_at,
        t("2026-12-01T03:01:30Z").timestamp_millis(),
        "the second retry waits twice as long"
    );
    clock.advance(Span::seconds(60));
    settle(&rt).await;
    assert_eq!(status("sent").await.len(), 1);

    // A dead delivery retried by an operator goes out again through the queue.
    let dead = status("dead").await[0].id;
    assert_eq!(
        journeys::retry_deliveries(conn, &[dead], clock.now().timestamp_millis())
            .await
            .unwrap(),
        [dead]
    );
    assert_eq!(status("pending").await.len(), 1);

    // A worker that died mid-send leaves `sending`; after the lease it is `unknown`.
    let claimed =
        journeys::claim_deliveries(conn, &[flow], clock.now().timestamp_millis(), 60_000, 10)
            .await
            .unwrap();
    assert_eq!(claimed.len(), 1);
    clock.advance(Span::seconds(61));
    assert_eq!(rt.expire_step().await.unwrap(), 1);
    settle(&rt).await;
    assert_eq!(status("unknown").await.len(), 1, "never resent silently");
    scratch.remove().await;
}

#[tokio::test]
async fn two_schedulers_fire_each_tick_once_and_catch_up_with_the_latest() {
    for scratch in Scratch::all_backends().await {
        let db = Db::connect(&scratch.url).await.unwrap();
        migration::run(&db).await.unwrap();
        let store = Store::open(db).await.unwrap();
        let items = (1..=5)
            .map(|i| json!({"email": format!("weekly{i}@example.jp")}))
            .collect();
        store
            .bulk_create(&Principal::system(), "tourists", items)
            .await
            .unwrap();
        // Publishing stamps the real time; the schedulers' clock starts there.
        let id = publish(
            &store,
            json!({
                "format": 1, "name": "daily news",
                "settings": {"re_entry": "after_exit"},
                "entry": {"type": "schedule", "segment": "all", "next": "mail",
                          "recurrence": {"every": "day", "at": "09:00"}},
                "nodes": [
                    {"id": "mail", "type": "send", "channel": "test", "template": "news", "next": "end"},
                    {"id": "end", "type": "exit"}
                ]
            }),
        )
        .await;
        let clock = Arc::new(FixedClock::new(Utc::now()));
        let channel = Arc::new(Recording::new());
        let scheduler = || {
            Runtime::new(
                store.clone(),
                clock.clone(),
                Registry::new().with(channel.clone()),
                Config::default(),
            )
        };
        let (a, b) = (scheduler(), scheduler());
        let both = async || {
            let (x, y) = tokio::join!(a.schedule_step(), b.schedule_step());
            x.unwrap() + y.unwrap()
        };
        assert_eq!(both().await, 0, "no 09:00 since publishing");
        clock.advance(Span::hours(24));
        assert_eq!(both().await, 1, "one 09:00 passed: fired once by the two");
        assert_eq!(both().await, 0, "and not again");
        settle(&a).await;
        settle(&b).await;
        assert_eq!(channel.sent().len(), 5);

        // Three days down: only the latest missed tick fires.
        clock.advance(Span::hours(72));
        assert_eq!(both().await, 1);
        settle(&a).await;
        assert_eq!(channel.sent().len(), 10);
        let ticks = journeys::last_tick(&store.db().conn, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            Zone::parse("Asia/Tokyo")
                .unwrap()
                .local(from_millis(ticks))
                .format("%H:%M")
                .to_string(),
            "09:00"
        );
        scratch.remove().await;
    }
}

#[tokio::test]
async fn privacy_mode_holds_pseudonyms_and_reads_only_what_each_action_needs() {
    for scratch in Scratch::all_backends().await {
        let f = fixture(scratch, 4).await;
        let rt = &f.runtime;
        let id = publish(
            rt.store(),
            json!({
                "format": 1, "name": "private",
                "settings": {"privacy": true, "re_entry": "always"},
                "entry": {"type": "event", "event": "signed_up", "next": "aichi"},
                "nodes": [
                    {"id": "aichi", "type": "branch", "field": "prefecture", "op": "eq", "value": "愛知県",
                     "on_true": "mail", "on_false": "end"},
                    {"id": "mail", "type": "send", "channel": "test", "template": "hello", "next": "wait"},
                    {"id": "wait", "type": "wait_for_event", "event": {"opened": {"of": "mail"}},
                     "timeout": "1d", "on_event": "tag", "on_timeout": "end"},
                    {"id": "tag", "type": "update_contact", "set": {"notes": "opened privately"}, "next": "end"},
                    {"id": "end", "type": "exit"}
                ]
            }),
        )
        .await;
        let signups = (1..=4)
            .map(|c| event(&format!("signup-{c}"), c, "signed_up", None))
            .collect();
        rt.ingest(signups).await.unwrap();
        settle(rt).await;

        // Contacts 2 and 4 live in Aichi: the branch read their data through the pseudonym.
        let sent = f.channel.sent();
        let mut to: Vec<&str> = sent
            .iter()
            .map(|m| m.to["email"].as_str().unwrap())
            .collect();
        to.sort();
        assert_eq!(to, ["guest2@example.jp", "guest4@example.jp"]);
        assert!(
            sent.iter().all(|m| m.contact_id < 0),
            "the channel sees pseudonyms"
        );
        assert!(
            sent.iter().all(|m| m.to.keys().eq(["email"].iter())),
            "only the fields the channel needs"
        );
        let conn = &rt.store.db().conn;
        for table in ["sys_runs", "sys_deliveries"] {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE flow_id = {id} AND contact_id > 0"
            );
            let row = conn
                .query_one_raw(sea_orm::Statement::from_string(
                    conn.get_database_backend(),
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                row.try_get::<i64>("", "n").unwrap(),
                0,
                "{table} holds no contact id"
            );
        }
        assert!(
            journeys::runs_of_contact(conn, 2, None, 1_000)
                .await
                .unwrap()
                .is_empty()
        );

        // Contact 2 opens, reported under its real id: the run moves, and the update reaches
        // the real record.
        let mail = sent
            .iter()
            .find(|m| m.to["email"] == "guest2@example.jp")
            .unwrap()
            .delivery_id;
        rt.ingest(vec![event("open-2", 2, "opened", Some(mail))])
            .await
            .unwrap();
        settle(rt).await;
        let record = rt
            .store
            .get(&Principal::system(), "tourists", 2)
            .await
            .unwrap();
        assert_eq!(record["notes"], "opened privately");
        let stats = journeys::flow_stats(conn, id, &journeys::Reached::everyone())
            .await
            .unwrap();
        assert_eq!(stats.runs.get("finished"), Some(&3));
        assert_eq!(stats.waiting.get("wait"), Some(&1));
        f.scratch.remove().await;
    }
}

#[tokio::test]
async fn segment_enter_takes_contacts_as_they_start_matching() {
    for scratch in Scratch::all_backends().await {
        let f = fixture(scratch, 6).await;
        let rt = &f.runtime;
        let store = rt.store();
        let who = Principal::system();
        tabiji_storage::segments::create(
            store,
            &who,
            &serde_json::from_value(json!({"key": "premium", "name": "Premium",
                "filter": {"field": {"key": "member_type", "op": "eq", "value": "premium"}}}))
            .unwrap(),
            f.clock.now(),
        )
        .await
        .unwrap();
        let who = &who;
        let set = |ids: &[i64], member_type: &str| {
            let items: Vec<Json> = ids
                .iter()
                .map(|id| json!({"id": id, "member_type": member_type}))
                .collect();
            async move { store.bulk_update(who, "tourists", &items).await.unwrap() }
        };
        set(&[1, 2], "premium").await;
        let flow = publish(
            store,
            json!({
                "format": 1, "name": "welcome to premium",
                "settings": {"re_entry": "after_exit"},
                "entry": {"type": "segment_enter", "segment": "premium", "next": "mail"},
                "nodes": [
                    {"id": "mail", "type": "send", "channel": "test", "template": "premium", "next": "end"},
                    {"id": "end", "type": "exit"}
                ]
            }),
        )
        .await;
        let sweep = async || {
            let n = rt.segment_enter_step().await.unwrap();
            settle(rt).await;
            n
        };
        // The first look enters everyone matching.
        assert_eq!(sweep().await, 2);
        let sent = |c: i64| templates_of(&f.channel, c).len();
        assert_eq!((sent(1), sent(2), sent(3)), (1, 1, 0));

        // Within the interval nothing is evaluated, even if someone joined.
        set(&[3], "premium").await;
        f.clock.advance(Span::seconds(30));
        assert_eq!(sweep().await, 0);
        f.clock.advance(Span::seconds(31));
        assert_eq!(sweep().await, 1, "3 started matching");
        assert_eq!(sent(3), 1);

        // Leaving and coming back enters again (the run had finished: re-entry after exit).
        set(&[1], "general").await;
        f.clock.advance(Span::seconds(61));
        assert_eq!(sweep().await, 0);
        set(&[1], "premium").await;
        f.clock.advance(Span::seconds(61));
        assert_eq!(sweep().await, 1);
        assert_eq!(sent(1), 2);
        // Staying in the segment enters nobody twice.
        f.clock.advance(Span::seconds(61));
        assert_eq!(sweep().await, 0);
        assert_eq!(f.channel.sent().len(), 4);
        assert_eq!(
            journeys::flow_members(&store.db().conn, flow)
                .await
                .unwrap(),
            vec![1, 2, 3]
        );
        f.scratch.remove().await;
    }
}

#[tokio::test]
async fn directory_flows_fetch_on_their_schedule_inside_the_import_root() {
    for (n, scratch) in Scratch::all_backends().await.into_iter().enumerate() {
        let base = std::env::temp_dir().join(format!("tabiji-fetch-{}-{n}", std::process::id()));
        let root = base.join("root");
        let inbox = root.join("ota");
        let outside = base.join("elsewhere");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let db = Db::connect(&scratch.url).await.unwrap();
        migration::run(&db).await.unwrap();
        let store = Store::open(db).await.unwrap();
        // 21:00 in Tokyo, the evening before.
        let clock = Arc::new(FixedClock::new(t("2026-11-28T12:00:00Z")));
        let runtime = Runtime::new(
            store.clone(),
            clock.clone(),
            Registry::new(),
            Config {
                transfers: crate::transfer::Transfers {
                    import_root: Some(root.clone()),
                    ..Default::default()
                },
                ..Config::default()
            },
        );
        let flow = |path: &std::path::Path| -> tabiji_model::import::ImportFlow {
            serde_json::from_value(json!({
                "format": 1, "name": "OTA nightly", "entity": "tourists",
                "source": {"type": "directory", "path": path.to_str().unwrap(), "pattern": "users_*.csv"},
                "recurrence": {"every": "day", "at": "03:00"},
                "columns": [{"column": "mail", "field": "email"}, {"column": "pref", "field": "prefecture"}],
                "action": {"type": "upsert", "key": "email"}
            }))
            .unwrap()
        };
        let system = Principal::system();
        imports::save(&store, &system, "ota_nightly", &flow(&inbox), clock.now())
            .await
            .unwrap();
        imports::save(&store, &system, "stray", &flow(&outside), clock.now())
            .await
            .unwrap();
        std::fs::write(
            inbox.join("users_1.csv"),
            "mail,pref\na@example.jp,愛知県\n",
        )
        .unwrap();
        std::fs::write(
            inbox.join("users_2.csv"),
            "mail,pref\na@example.jp,岐阜県\nb@example.jp,三重県\n",
        )
        .unwrap();
        std::fs::write(inbox.join("notes.txt"), "not a partner file").unwrap();
        std::fs::write(
            outside.join("users_1.csv"),
            "mail,pref\nx@example.jp,東京都\n",
        )
        .unwrap();

        assert_eq!(
            runtime.transfer_step().await.unwrap(),
            0,
            "not yet 03:00 in Tokyo"
        );
        clock.advance(Span::hours(6) + Span::seconds(30));
        assert_eq!(runtime.transfer_step().await.unwrap(), 2);
        let history = imports::history(&store, &system, None, 10).await.unwrap();
        let outcome: Vec<(&str, &str, i64, i64, &str)> = history
            .iter()
            .map(|r| {
                (
                    r.flow.as_str(),
                    r.file_name.as_str(),
                    r.created,
                    r.updated,
                    r.error.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(outcome.len(), 3, "{outcome:?}");
        assert_eq!(outcome[1], ("ota_nightly", "users_2.csv", 1, 1, ""));
        assert_eq!(outcome[2], ("ota_nightly", "users_1.csv", 1, 0, ""));
        assert_eq!(outcome[0].0, "stray");
        assert!(
            outcome[0].4.contains("is not inside the import root"),
            "{outcome:?}"
        );
        assert!(inbox.join("done/users_1.csv").exists());
        assert!(inbox.join("done/users_2.csv").exists());
        assert!(
            inbox.join("notes.txt").exists(),
            "files the pattern does not match stay"
        );
        assert!(
            outside.join("users_1.csv").exists(),
            "nothing outside the root is read"
        );

        // The tick fired once; a later look the same night does nothing.
        std::fs::write(
            inbox.join("users_3.csv"),
            "mail,pref\nc@example.jp,愛知県\n",
        )
        .unwrap();
        clock.advance(Span::minutes(5));
        assert_eq!(runtime.transfer_step().await.unwrap(), 0);
        assert!(inbox.join("users_3.csv").exists());
        clock.advance(Span::days(1));
        assert_eq!(
            runtime.transfer_step().await.unwrap(),
            1,
            "the next night's file"
        );

        // A file with another name outside the root (a hard link) is not read; it stays, a
        // failed run says why. A `done` that is a link out of the root is refused.
        std::fs::write(outside.join("secret.txt"), "mail,pref\ns@example.jp,x\n").unwrap();
        std::fs::hard_link(outside.join("secret.txt"), inbox.join("users_4.csv")).unwrap();
        clock.advance(Span::days(1));
        runtime.transfer_step().await.unwrap();
        let latest = &imports::history(&store, &system, Some("ota_nightly"), 1)
            .await
            .unwrap()[0];
        assert_eq!(latest.file_name, "users_4.csv");
        assert!(
            latest
                .error
                .as_deref()
                .unwrap_or("")
                .contains("has other names"),
            "{latest:?}"
        );
        assert!(inbox.join("users_4.csv").exists());
        std::fs::remove_file(inbox.join("users_4.csv")).unwrap();
        std::fs::rename(inbox.join("done"), inbox.join("old")).unwrap();
        std::os::unix::fs::symlink(&outside, inbox.join("done")).unwrap();
        std::fs::write(
            inbox.join("users_5.csv"),
            "mail,pref\nd@example.jp,愛知県\n",
        )
        .unwrap();
        clock.advance(Span::days(1));
        runtime.transfer_step().await.unwrap();
        let latest = &imports::history(&store, &system, Some("ota_nightly"), 1)
            .await
            .unwrap()[0];
        assert!(
            latest
                .error
                .as_deref()
                .unwrap_or("")
                .contains("is not a folder"),
            "{latest:?}"
        );
        assert!(inbox.join("users_5.csv").exists());
        assert!(!outside.join("users_5.csv").exists());

        store.db().conn.clone().close().await.ok();
        scratch.remove().await;
        std::fs::remove_dir_all(&base).unwrap();
    }
}

#[tokio::test]
async fn export_jobs_run_once_at_their_tick_with_periods_counted_from_it() {
    for (n, scratch) in Scratch::all_backends().await.into_iter().enumerate() {
        let root = std::env::temp_dir().join(format!("tabiji-exports-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let db = Db::connect(&scratch.url).await.unwrap();
        migration::run(&db).await.unwrap();
        let store = Store::open(db).await.unwrap();
        let system = Principal::system();
        store
            .bulk_create(
                &system,
                "tourists",
                ["2026-11-28", "2026-11-29", "2026-11-30"]
                    .iter()
                    .map(|day| json!({"email": format!("{day}@example.jp"), "last_visit_on": day}))
                    .collect(),
            )
            .await
            .unwrap();
        // 21:00 in Tokyo on the 28th.
        let clock = Arc::new(FixedClock::new(t("2026-11-28T12:00:00Z")));
        let runtime = Runtime::new(
            store.clone(),
            clock.clone(),
            Registry::new(),
            Config {
                transfers: crate::transfer::Transfers {
                    export_root: Some(root.clone()),
                    ..Default::default()
                },
                ..Config::default()
            },
        );
        let job: tabiji_model::export::ExportJob = serde_json::from_value(json!({
            "format": 1, "name": "yesterday's visitors", "entity": "tourists",
            "filter": {"field": {"key": "last_visit_on", "op": "in_period", "value": {"last": "day"}}},
            "fields": ["email"],
            "file": {"name": "visits_{date}.csv"},
            "destination": {"type": "directory", "path": root.to_str().unwrap()},
            "recurrence": {"every": "day", "at": "04:00"}
        }))
        .unwrap();
        tabiji_storage::export_jobs::save(&store, &system, "visits", &job, clock.now())
            .await
            .unwrap();
        let emails = |name: &str| -> Vec<String> {
            let text = std::fs::read_to_string(root.join(name)).unwrap();
            text.lines()
                .skip(1)
                .map(|line| line.split(',').nth(1).unwrap().to_string())
                .collect()
        };

        assert_eq!(runtime.transfer_step().await.unwrap(), 0, "not yet 04:00");
        clock.advance(Span::hours(7) + Span::seconds(30));
        assert_eq!(runtime.transfer_step().await.unwrap(), 1);
        assert_eq!(emails("visits_20261129.csv"), ["2026-11-28@example.jp"]);
        clock.advance(Span::hours(3));
        assert_eq!(
            runtime.transfer_step().await.unwrap(),
            0,
            "each tick fires once"
        );

        // The worker gets to the 30th's 04:00 run only after the next midnight (00:30 on
        // 1 December): the file is still the 30th's, with the 29th's visitors.
        clock.advance(Span::hours(41) + Span::minutes(29) + Span::seconds(30));
        assert_eq!(runtime.transfer_step().await.unwrap(), 1);
        assert_eq!(emails("visits_20261130.csv"), ["2026-11-29@example.jp"]);
        let history = tabiji_storage::export_jobs::history(&store, &system, Some("visits"), 10)
            .await
            .unwrap();
        let due: Vec<String> = history.iter().map(|r| r.due_at.to_rfc3339()).collect();
        assert_eq!(
            due,
            ["2026-11-29T19:00:00+00:00", "2026-11-28T19:00:00+00:00"]
        );
        std::fs::remove_dir_all(&root).unwrap();
        scratch.remove().await;
    }
}

/// The worker's housekeeping: the access log keeps a month, looked at once an hour.
#[tokio::test]
async fn housekeeping_purges_the_access_log_after_a_month_once_an_hour() {
    for scratch in Scratch::all_backends().await {
        let f = fixture(scratch, 1).await;
        let db = f.runtime.store.db();
        let entry = tabiji_storage::audit::Entry {
            action: "view",
            entity: Some("tourists"),
            record_id: Some(1),
            outcome: "ok",
            detail: None,
        };
        tabiji_storage::audit::record(db, &Principal::system(), entry)
            .await
            .unwrap();
        let logged = tabiji_storage::audit::search(db, &Default::default(), 10)
            .await
            .unwrap();
        let written = logged.iter().map(|e| e.at).max().unwrap();
        let month_later = written.checked_add_months(chrono::Months::new(1)).unwrap();
        f.clock
            .advance(month_later - Span::minutes(30) - f.runtime.now());
        assert_eq!(f.runtime.housekeeping_step().await.unwrap(), 0, "kept");
        f.clock.advance(Span::minutes(40));
        assert_eq!(
            f.runtime.housekeeping_step().await.unwrap(),
            0,
            "a month old, but not looked at again within the hour"
        );
        f.clock.advance(Span::minutes(21));
        assert_eq!(
            f.runtime.housekeeping_step().await.unwrap(),
            logged.len(),
            "purged: the fixture's bulk create and the view"
        );
        let left = tabiji_storage::audit::search(db, &Default::default(), 10)
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
        f.scratch.remove().await;
    }
}
