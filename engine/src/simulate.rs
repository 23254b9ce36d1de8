//! Dry runs: how many contacts would pass each node, decided by the same [`apply`] the runtime
//! uses, over contacts' current data, with nothing stored or sent. Events cannot be foreseen,
//! so a simulation assumes either that nobody reacts (every wait for an event times out) or
//! that everybody does (every wait for an event sees it).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tabiji_model::flow::{Awaited, Flow, Step};

use crate::machine::{Action, Conditions, Finish, Input, Position, Run, apply_with};

/// What a simulation assumes about the events waits listen for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assume {
    #[default]
    NoEvents,
    AllEvents,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prediction {
    pub contacts: u64,
    /// Per node, how many contacts would reach it and with which outcome.
    pub nodes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Sends per send node.
    pub sends: BTreeMap<String, u64>,
    /// How the runs would end (`exit`, `goal:…`, `holdout`, `broken: …`).
    pub outcomes: BTreeMap<String, u64>,
}

/// Inputs a single contact may take before the simulation gives up on it (a flow that loops
/// through waits forever).
const MAX_INPUTS: usize = 200;

impl Prediction {
    /// Adds one contact's simulated journey.
    pub fn add(
        &mut self,
        flow: &Flow,
        key: &str,
        contact: &Map<String, Json>,
        assume: Assume,
        start: DateTime<Utc>,
        conditions: &dyn Conditions,
    ) {
        self.contacts += 1;
        let mut run = Run::new(key);
        let mut now = start;
        let mut input = Input::Enter;
        for _ in 0..MAX_INPUTS {
            let (next, actions) = apply_with(flow, &run, contact, &input, now, conditions);
            for action in &actions {
                match action {
                    Action::Log { node, outcome, .. } => {
                        *self
                            .nodes
                            .entry(node.clone())
                            .or_default()
                            .entry(outcome.clone())
                            .or_default() += 1
                    }
                    Action::Send { node, .. } => *self.sends.entry(node.clone()).or_default() += 1,
                    Action::UpdateContact { .. } | Action::Timer { .. } => {}
                }
            }
            run = next;
            match &run.position {
                Position::Finished(finish) => {
                    let outcome = match finish {
                        Finish::Exit => "exit".to_string(),
                        Finish::Goal(name) => format!("goal:{name}"),
                        Finish::Holdout => "holdout".into(),
                        Finish::Broken(why) => format!("broken: {why}"),
                    };
                    *self.outcomes.entry(outcome).or_default() += 1;
                    return;
                }
                Position::Waiting { node, until } => {
                    let awaited = flow.node(node).and_then(|n| match &n.step {
                        Step::WaitForEvent { event, .. } => Some(event),
                        _ => None,
                    });
                    input = match (assume, awaited) {
                        (Assume::AllEvents, Some(Awaited::Opened { of })) => Input::Event {
                            name: "opened",
                            of: Some(of.as_str()),
                        },
                        (Assume::AllEvents, Some(Awaited::Clicked { of })) => Input::Event {
                            name: "clicked",
                            of: Some(of.as_str()),
                        },
                        (Assume::AllEvents, Some(Awaited::Purchased)) => Input::Event {
                            name: "purchased",
                            of: None,
                        },
                        (Assume::AllEvents, Some(Awaited::Event { name })) => Input::Event {
                            name: name.as_str(),
                            of: None,
                        },
                        _ => {
                            now = *until;
                            Input::Timer {
                                iteration: run.iteration,
                            }
                        }
                    };
                }
                Position::NotStarted => return,
            }
        }
        *self
            .outcomes
            .entry("still waiting after 200 steps".into())
            .or_default() += 1;
    }
}
