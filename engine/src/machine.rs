//! Runs move through a flow by [`apply`]: a pure function of the flow, the run, the contact's
//! data, what happened and the time. It returns the run's new position and the actions to carry
//! out (sends, contact updates, timers, step-log entries), which the runtime writes in the same
//! transaction as the new position.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tabiji_model::flow::{Awaited, Channel, Flow, Step, parse_duration};

use crate::time::next_time_of_day;

/// Steps one input may take a run through before it must reach a wait or an exit. Validation
/// refuses loops without a wait, so only a flow that skipped validation can reach this.
const MAX_STEPS_PER_INPUT: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Finish {
    Exit,
    /// A goal event happened (its name).
    Goal(String),
    /// The contact fell in a split's hold-out group.
    Holdout,
    /// The flow could not be followed (a missing node or an unreadable setting).
    Broken(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Position {
    NotStarted,
    /// At a waiting node until `until` (or, for a wait for an event, until the event).
    Waiting {
        node: String,
        until: DateTime<Utc>,
    },
    Finished(Finish),
}

/// One contact's journey through one flow version, keyed (flow, contact, entry key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Stable for the run: it decides the run's split variants.
    pub key: String,
    pub position: Position,
    /// How many waits the run has begun. Timers carry it so that a stale timer is ignored, and
    /// deliveries carry it so that a send visited again in a loop gets a new idempotency key.
    pub iteration: u32,
}

impl Run {
    pub fn new(key: impl Into<String>) -> Self {
        Run {
            key: key.into(),
            position: Position::NotStarted,
            iteration: 0,
        }
    }
}

/// What happened to the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    Enter,
    /// A timer set for `iteration` came due.
    Timer {
        iteration: u32,
    },
    /// Something the contact did: `opened`/`clicked` (of a send node), `purchased`, or any
    /// named event.
    Event {
        name: &'a str,
        of: Option<&'a str>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Action {
    /// Deliver a message; `(node, iteration)` with the run is the idempotency key.
    Send {
        node: String,
        iteration: u32,
        channel: Channel,
        template: String,
        sender: Option<String>,
        /// MA-16: deliver at the contact's best hour within this many seconds.
        best_time_within: Option<u64>,
    },
    UpdateContact {
        node: String,
        set: Map<String, Json>,
    },
    /// Wake the run at `at` with `Input::Timer { iteration }`.
    Timer { at: DateTime<Utc>, iteration: u32 },
    /// The step log (PT-2): node, what happened there, when.
    Log {
        node: String,
        outcome: String,
        at: DateTime<Utc>,
    },
}

/// Decides rhai conditions (`condition` nodes): whether snippet `snippet` holds for a contact.
pub trait Conditions {
    fn holds(
        &self,
        snippet: &str,
        args: &[Json],
        contact: &Map<String, Json>,
    ) -> Result<bool, String>;
}

/// For callers without snippets: every condition fails, saying so.
pub struct NoConditions;

impl Conditions for NoConditions {
    fn holds(&self, snippet: &str, _: &[Json], _: &Map<String, Json>) -> Result<bool, String> {
        Err(format!("snippet {snippet:?} cannot be run here"))
    }
}

/// Decides what `input` means for `run`. Inputs that do not apply (an early or stale timer, an
/// event the run is not waiting for, anything after the end) change nothing.
pub fn apply(
    flow: &Flow,
    run: &Run,
    contact: &Map<String, Json>,
    input: &Input,
    now: DateTime<Utc>,
) -> (Run, Vec<Action>) {
    apply_with(flow, run, contact, input, now, &NoConditions)
}

/// [`apply`] with rhai conditions decided by `conditions`.
pub fn apply_with(
    flow: &Flow,
    run: &Run,
    contact: &Map<String, Json>,
    input: &Input,
    now: DateTime<Utc>,
    conditions: &dyn Conditions,
) -> (Run, Vec<Action>) {
    let mut next = run.clone();
    let mut actions = Vec::new();
    if matches!(run.position, Position::Finished(_)) {
        return (next, actions);
    }
    if let Input::Event { name, .. } = input
        && flow.settings.goals.iter().any(|g| g == name)
    {
        let at = match &run.position {
            Position::Waiting { node, .. } => node.clone(),
            _ => "entry".into(),
        };
        actions.push(log(&at, format!("goal {name}"), now));
        next.position = Position::Finished(Finish::Goal(name.to_string()));
        return (next, actions);
    }
    let start = match (&run.position, input) {
        (Position::NotStarted, Input::Enter) => flow.entry.next().to_string(),
        (Position::Waiting { node, until }, Input::Timer { iteration })
            if *iteration == run.iteration && now >= *until =>
        {
            match flow.node(node).map(|n| &n.step) {
                Some(Step::Wait { next: to, .. } | Step::WaitUntil { next: to, .. }) => {
                    actions.push(log(node, "waited", now));
                    to.clone()
                }
                Some(Step::WaitForEvent { on_timeout, .. }) => {
                    // PT-1: the passive reaction ("not opened") is decided when the period
                    // passed without the event.
                    actions.push(log(node, "timeout", now));
                    on_timeout.clone()
                }
                _ => return broken(next, actions, node, now),
            }
        }
        (Position::Waiting { node, .. }, Input::Event { name, of }) => {
            match flow.node(node).map(|n| &n.step) {
                Some(Step::WaitForEvent {
                    event, on_event, ..
                }) if awaited(event, name, *of) => {
                    actions.push(log(node, *name, now));
                    on_event.clone()
                }
                _ => return (next, actions),
            }
        }
        _ => return (next, actions),
    };
    walk(
        flow,
        &mut next,
        contact,
        start,
        now,
        conditions,
        &mut actions,
    );
    (next, actions)
}

fn awaited(event: &Awaited, name: &str, of: Option<&str>) -> bool {
    match event {
        Awaited::Opened { of: node } => name == "opened" && of == Some(node.as_str()),
        Awaited::Clicked { of: node } => name == "clicked" && of == Some(node.as_str()),
        Awaited::Purchased => name == "purchased",
        Awaited::Event { name: wanted } => name == wanted,
    }
}

fn log(node: &str, outcome: impl Into<String>, at: DateTime<Utc>) -> Action {
    Action::Log {
        node: node.to_string(),
        outcome: outcome.into(),
        at,
    }
}

fn broken(
    mut run: Run,
    mut actions: Vec<Action>,
    node: &str,
    now: DateTime<Utc>,
) -> (Run, Vec<Action>) {
    actions.push(log(node, "broken", now));
    run.position = Position::Finished(Finish::Broken(format!("node {node} cannot be followed")));
    (run, actions)
}

/// Follows nodes that take no time from `id` until the run waits or ends.
fn walk(
    flow: &Flow,
    run: &mut Run,
    contact: &Map<String, Json>,
    mut id: String,
    now: DateTime<Utc>,
    conditions: &dyn Conditions,
    actions: &mut Vec<Action>,
) {
    for _ in 0..MAX_STEPS_PER_INPUT {
        let Some(node) = flow.node(&id) else {
            let (r, a) = broken(run.clone(), std::mem::take(actions), &id, now);
            *run = r;
            *actions = a;
            return;
        };
        let wait_until =
            |until: Option<DateTime<Utc>>, run: &mut Run, actions: &mut Vec<Action>| match until {
                Some(until) => {
                    run.iteration += 1;
                    actions.push(Action::Timer {
                        at: until,
                        iteration: run.iteration,
                    });
                    run.position = Position::Waiting {
                        node: node.id.clone(),
                        until,
                    };
                }
                None => {
                    run.position = Position::Finished(Finish::Broken(format!(
                        "node {} has an unreadable time",
                        node.id
                    )))
                }
            };
        let after =
            |text: &str| parse_duration(text).map(|secs| now + Duration::seconds(secs as i64));
        id = match &node.step {
            Step::Send {
                channel,
                template,
                sender,
                best_time_within,
                next,
            } => {
                actions.push(Action::Send {
                    node: node.id.clone(),
                    iteration: run.iteration,
                    channel: *channel,
                    template: template.clone(),
                    sender: sender.clone(),
                    best_time_within: best_time_within.as_deref().and_then(parse_duration),
                });
                actions.push(log(&node.id, "sent", now));
                next.clone()
            }
            Step::UpdateContact { set, next } => {
                actions.push(Action::UpdateContact {
                    node: node.id.clone(),
                    set: set.clone().into_iter().collect(),
                });
                actions.push(log(&node.id, "updated", now));
                next.clone()
            }
            Step::Branch {
                field,
                op,
                value,
                on_true,
                on_false,
            } => {
                let holds = compare(contact.get(field).unwrap_or(&Json::Null), op, value);
                actions.push(log(&node.id, if holds { "true" } else { "false" }, now));
                if holds {
                    on_true.clone()
                } else {
                    on_false.clone()
                }
            }
            Step::Condition {
                snippet,
                args,
                on_true,
                on_false,
            } => match conditions.holds(snippet, args, contact) {
                Ok(true) => {
                    actions.push(log(&node.id, "true", now));
                    on_true.clone()
                }
                Ok(false) => {
                    actions.push(log(&node.id, "false", now));
                    on_false.clone()
                }
                Err(why) => {
                    actions.push(log(&node.id, format!("false: {why}"), now));
                    on_false.clone()
                }
            },
            Step::Split { variants, .. } => {
                let point = bucket(&run.key, &node.id);
                let mut upper = 0.0;
                let chosen = variants.iter().find(|v| {
                    upper += v.percent;
                    point < upper
                });
                match chosen {
                    Some(variant) => {
                        actions.push(log(&node.id, format!("variant {}", variant.name), now));
                        variant.next.clone()
                    }
                    None => {
                        actions.push(log(&node.id, "holdout", now));
                        run.position = Position::Finished(Finish::Holdout);
                        return;
                    }
                }
            }
            Step::Wait { duration, .. } => {
                wait_until(after(duration), run, actions);
                return;
            }
            Step::WaitUntil { time, weekdays, .. } => {
                wait_until(
                    next_time_of_day(now, time, weekdays, &flow.settings.zone),
                    run,
                    actions,
                );
                return;
            }
            Step::WaitForEvent { timeout, .. } => {
                wait_until(after(timeout), run, actions);
                return;
            }
            Step::Exit => {
                actions.push(log(&node.id, "exit", now));
                run.position = Position::Finished(Finish::Exit);
                return;
            }
        };
    }
    run.position = Position::Finished(Finish::Broken("the flow loops without waiting".into()));
}

/// Where a run falls in a split, in [0, 100): FNV-1a of the run key and node, so the same run
/// always takes the same variant, on every machine.
fn bucket(run_key: &str, node: &str) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in run_key.bytes().chain([0]).chain(node.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % 1_000_000) as f64 / 10_000.0
}

fn compare(actual: &Json, op: &str, expected: &Json) -> bool {
    let number = |v: &Json| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let ordering = match (number(actual), number(expected)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => match (actual.as_str(), expected.as_str()) {
            (Some(a), Some(b)) => Some(a.cmp(b)),
            _ => None,
        },
    };
    use std::cmp::Ordering::*;
    match op {
        "eq" => actual == expected || ordering == Some(Equal),
        "ne" => !(actual == expected || ordering == Some(Equal)),
        "gt" => ordering == Some(Greater),
        "gte" => matches!(ordering, Some(Greater | Equal)),
        "lt" => ordering == Some(Less),
        "lte" => matches!(ordering, Some(Less | Equal)),
        "contains" => match actual {
            Json::Array(items) => items.contains(expected),
            Json::String(s) => expected.as_str().is_some_and(|e| s.contains(e)),
            _ => false,
        },
        "empty" => {
            actual.is_null()
                || actual.as_str() == Some("")
                || actual.as_array().is_some_and(Vec::is_empty)
        }
        "not_empty" => !compare(actual, "empty", expected),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn autumn() -> Flow {
        serde_json::from_str(include_str!("../../examples/flows/autumn-campaign.json")).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sends(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { template, .. } => Some(template.clone()),
                _ => None,
            })
            .collect()
    }

    struct Premium;

    impl Conditions for Premium {
        fn holds(
            &self,
            snippet: &str,
            args: &[Json],
            contact: &Map<String, Json>,
        ) -> Result<bool, String> {
            assert_eq!((snippet, args), ("is-premium", &[Json::from(1)][..]));
            match contact.get("member_type").and_then(Json::as_str) {
                Some("premium") => Ok(true),
                Some(_) => Ok(false),
                None => Err("contact.member_type is not set".into()),
            }
        }
    }

    #[test]
    fn a_condition_follows_its_snippet_and_a_failing_one_goes_false() {
        let flow: Flow = serde_json::from_value(serde_json::json!({
            "format": 1, "name": "c",
            "entry": {"type": "api", "next": "cond"},
            "nodes": [
                {"id": "cond", "type": "condition", "snippet": "is-premium", "args": [1], "on_true": "vip", "on_false": "plain"},
                {"id": "vip", "type": "send", "channel": "test", "template": "vip", "next": "end"},
                {"id": "plain", "type": "send", "channel": "test", "template": "plain", "next": "end"},
                {"id": "end", "type": "exit"}
            ]
        }))
        .unwrap();
        assert!(flow.validate().is_empty(), "{:?}", flow.validate());
        let now = t("2026-12-01T00:00:00Z");
        let go = |contact: serde_json::Value, conditions: &dyn Conditions| {
            let contact = contact.as_object().unwrap().clone();
            let (_, actions) = apply_with(
                &flow,
                &Run::new("k"),
                &contact,
                &Input::Enter,
                now,
                conditions,
            );
            let logged = actions.iter().find_map(|a| match a {
                Action::Log { node, outcome, .. } if node == "cond" => Some(outcome.clone()),
                _ => None,
            });
            (sends(&actions), logged.unwrap())
        };
        let premium = serde_json::json!({"member_type": "premium"});
        assert_eq!(
            go(premium.clone(), &Premium),
            (vec!["vip".to_string()], "true".to_string())
        );
        assert_eq!(
            go(serde_json::json!({"member_type": "regular"}), &Premium),
            (vec!["plain".to_string()], "false".to_string())
        );
        assert_eq!(
            go(serde_json::json!({}), &Premium),
            (
                vec!["plain".to_string()],
                "false: contact.member_type is not set".to_string()
            )
        );
        let (sent, logged) = go(premium, &NoConditions);
        assert_eq!(sent, vec!["plain".to_string()]);
        assert!(logged.starts_with("false: "), "{logged}");
    }

    /// Drives one contact through the patent's scenario; returns every template sent, in order.
    fn journey(events: &[(&str, &str, Option<&str>)]) -> (Vec<String>, Run) {
        let flow = autumn();
        let contact = Map::new();
        let (mut run, actions) = apply(
            &flow,
            &Run::new("flow1:42:2026-12-01"),
            &contact,
            &Input::Enter,
            t("2026-12-01T00:00:00Z"),
        );
        let mut sent = sends(&actions);
        let mut timers: Vec<(DateTime<Utc>, u32)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Timer { at, iteration } => Some((*at, *iteration)),
                _ => None,
            })
            .collect();
        for (when, what, of) in events {
            let now = t(when);
            // Timers due before this moment fire first, in order, as the sweeper would.
            timers.sort();
            while let Some(&(at, iteration)) = timers.first() {
                if at > now {
                    break;
                }
                timers.remove(0);
                let (r, a) = apply(&flow, &run, &contact, &Input::Timer { iteration }, at);
                run = r;
                sent.extend(sends(&a));
                timers.extend(a.iter().filter_map(|x| match x {
                    Action::Timer { at, iteration } => Some((*at, *iteration)),
                    _ => None,
                }));
            }
            if *what != "tick" {
                let (r, a) = apply(
                    &flow,
                    &run,
                    &contact,
                    &Input::Event {
                        name: what,
                        of: *of,
                    },
                    now,
                );
                run = r;
                sent.extend(sends(&a));
                timers.extend(a.iter().filter_map(|x| match x {
                    Action::Timer { at, iteration } => Some((*at, *iteration)),
                    _ => None,
                }));
            }
        }
        (sent, run)
    }

    #[test]
    fn opened_then_clicked() {
        let (sent, run) = journey(&[
            ("2026-12-02T10:00:00Z", "opened", Some("mail1")),
            ("2026-12-03T10:00:00Z", "clicked", Some("mail2")),
        ]);
        assert_eq!(sent, ["autumn-1", "autumn-2", "autumn-coupon"]);
        assert_eq!(run.position, Position::Finished(Finish::Exit));
    }

    #[test]
    fn not_opened_within_three_days_gets_the_sms() {
        let (sent, run) = journey(&[("2026-12-05T00:00:00Z", "opened", Some("mail1"))]);
        assert_eq!(
            sent,
            ["autumn-1", "autumn-sms"],
            "the late open changes nothing"
        );
        assert_eq!(run.position, Position::Finished(Finish::Exit));
    }

    #[test]
    fn opened_but_not_clicked() {
        let (sent, run) = journey(&[
            ("2026-12-01T12:00:00Z", "opened", Some("mail1")),
            ("2026-12-10T00:00:00Z", "tick", None),
        ]);
        assert_eq!(sent, ["autumn-1", "autumn-2"]);
        assert_eq!(run.position, Position::Finished(Finish::Exit));
    }

    #[test]
    fn other_events_stale_and_early_timers_change_nothing() {
        let flow = autumn();
        let contact = Map::new();
        let (run, _) = apply(
            &flow,
            &Run::new("k"),
            &contact,
            &Input::Enter,
            t("2026-12-01T00:00:00Z"),
        );
        for (input, now) in [
            (
                Input::Event {
                    name: "opened",
                    of: Some("mail2"),
                },
                "2026-12-01T01:00:00Z",
            ),
            (
                Input::Event {
                    name: "clicked",
                    of: Some("mail1"),
                },
                "2026-12-01T01:00:00Z",
            ),
            (Input::Timer { iteration: 1 }, "2026-12-03T23:59:59Z"),
            (Input::Timer { iteration: 0 }, "2026-12-09T00:00:00Z"),
            (Input::Enter, "2026-12-01T02:00:00Z"),
        ] {
            let (after, actions) = apply(&flow, &run, &contact, &input, t(now));
            assert_eq!((after, actions), (run.clone(), vec![]), "{input:?}");
        }
    }

    #[test]
    fn a_goal_ends_the_run_wherever_it_is() {
        let (sent, run) = journey(&[("2026-12-01T12:00:00Z", "purchased", None)]);
        assert_eq!(sent, ["autumn-1"]);
        assert_eq!(
            run.position,
            Position::Finished(Finish::Goal("purchased".into()))
        );
    }

    #[test]
    fn deliveries_carry_an_idempotency_iteration() {
        let flow = autumn();
        let (run, actions) = apply(
            &flow,
            &Run::new("k"),
            &Map::new(),
            &Input::Enter,
            t("2026-12-01T00:00:00Z"),
        );
        assert!(actions.contains(&Action::Send {
            node: "mail1".into(),
            iteration: 0,
            channel: Channel::Email,
            template: "autumn-1".into(),
            sender: None,
            best_time_within: None
        }));
        assert!(actions.contains(&Action::Timer {
            at: t("2026-12-04T00:00:00Z"),
            iteration: 1
        }));
        assert!(actions.iter().any(|a| matches!(a, Action::Log { node, outcome, .. } if node == "mail1" && outcome == "sent")));
        assert_eq!(
            run.position,
            Position::Waiting {
                node: "wait_open".into(),
                until: t("2026-12-04T00:00:00Z")
            }
        );
    }

    #[test]
    fn branches_and_splits() {
        let flow: Flow = serde_json::from_value(serde_json::json!({
            "format": 1, "name": "b",
            "entry": {"type": "api", "next": "rich"},
            "nodes": [
                {"id": "rich", "type": "branch", "field": "total_spend", "op": "gte", "value": 10000, "on_true": "ab", "on_false": "done"},
                {"id": "ab", "type": "split", "variants": [{"name": "A", "percent": 50, "next": "a"}, {"name": "B", "percent": 40, "next": "b"}], "holdout_percent": 10},
                {"id": "a", "type": "send", "channel": "test", "template": "A", "next": "done"},
                {"id": "b", "type": "send", "channel": "test", "template": "B", "next": "done"},
                {"id": "done", "type": "exit"}
            ]
        }))
        .unwrap();
        assert_eq!(flow.validate(), vec![]);
        let now = t("2026-12-01T00:00:00Z");
        let poor: Map<String, Json> = [("total_spend".to_string(), Json::from(3000))]
            .into_iter()
            .collect();
        let (_, actions) = apply(&flow, &Run::new("x"), &poor, &Input::Enter, now);
        assert!(sends(&actions).is_empty());
        let rich: Map<String, Json> = [(
            "total_spend".to_string(),
            Json::from("12,000".replace(',', "")),
        )]
        .into_iter()
        .collect();
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..10_000 {
            let (run, actions) = apply(
                &flow,
                &Run::new(format!("flow:{i}:0")),
                &rich,
                &Input::Enter,
                now,
            );
            let key = match run.position {
                Position::Finished(Finish::Holdout) => "holdout".to_string(),
                _ => sends(&actions).join(""),
            };
            *counts.entry(key).or_insert(0i32) += 1;
            let (again, _) = apply(
                &flow,
                &Run::new(format!("flow:{i}:0")),
                &rich,
                &Input::Enter,
                now,
            );
            assert_eq!(
                again.position, run.position,
                "the same run takes the same variant"
            );
        }
        for (key, share) in [("A", 5_000), ("B", 4_000), ("holdout", 1_000)] {
            let n = counts[key];
            assert!((n - share).abs() < 300, "{key}: {n} of 10,000 ({counts:?})");
        }
    }

    #[test]
    fn comparisons() {
        assert!(compare(&Json::from(5), "gt", &Json::from(3)));
        assert!(compare(&Json::from("愛知県"), "eq", &Json::from("愛知県")));
        assert!(compare(
            &serde_json::json!(["food", "onsen"]),
            "contains",
            &Json::from("onsen")
        ));
        assert!(compare(&Json::Null, "empty", &Json::Null));
        assert!(compare(&Json::from("x"), "not_empty", &Json::Null));
        assert!(!compare(&Json::Null, "gt", &Json::from(1)));
    }
}
