//! What the canvas does to a flow, without a browser: add, move, connect, delete and lay out
//! nodes, and undo or redo it all. The flow being drawn is a [`Flow`] of `model/` itself, so
//! what is saved is exactly what the engine reads; an exit not yet connected is an empty
//! string, which the model's validation reports.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tabiji_model::flow::{
    Awaited, Channel, Entry, FORMAT_VERSION, Flow, Node, Settings, Step, Variant,
};

/// Where the entry is drawn and its id as a connection's start.
pub const ENTRY: &str = "entry";
pub const ENTRY_POSITION: (f64, f64) = (40.0, 200.0);
pub const NODE_WIDTH: f64 = 190.0;
pub const NODE_HEIGHT: f64 = 70.0;
/// How far apart auto-layout puts columns and rows.
const COLUMN: f64 = 260.0;
const ROW: f64 = 120.0;
/// Undo steps kept.
const HISTORY: usize = 200;

/// What the palette offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Sms,
    Line,
    Webhook,
    Wait,
    WaitUntil,
    WaitForEvent,
    Branch,
    Condition,
    Split,
    UpdateContact,
    Exit,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Email,
        Kind::Sms,
        Kind::Line,
        Kind::Webhook,
        Kind::Wait,
        Kind::WaitUntil,
        Kind::WaitForEvent,
        Kind::Branch,
        Kind::Condition,
        Kind::Split,
        Kind::UpdateContact,
        Kind::Exit,
    ];

    /// The kind's name in ids, test hooks and translations.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Sms => "sms",
            Kind::Line => "line",
            Kind::Webhook => "webhook",
            Kind::Wait => "wait",
            Kind::WaitUntil => "wait_until",
            Kind::WaitForEvent => "wait_for_event",
            Kind::Branch => "branch",
            Kind::Condition => "condition",
            Kind::Split => "split",
            Kind::UpdateContact => "update_contact",
            Kind::Exit => "exit",
        }
    }

    pub fn of(step: &Step) -> Kind {
        match step {
            Step::Send { channel, .. } => match channel {
                Channel::Email | Channel::Test => Kind::Email,
                Channel::Sms => Kind::Sms,
                Channel::Line => Kind::Line,
                Channel::Webhook => Kind::Webhook,
            },
            Step::Wait { .. } => Kind::Wait,
            Step::WaitUntil { .. } => Kind::WaitUntil,
            Step::WaitForEvent { .. } => Kind::WaitForEvent,
            Step::Branch { .. } => Kind::Branch,
            Step::Condition { .. } => Kind::Condition,
            Step::Split { .. } => Kind::Split,
            Step::UpdateContact { .. } => Kind::UpdateContact,
            Step::Exit => Kind::Exit,
        }
    }

    /// A new node's step: sensible values where there are any, exits unconnected.
    pub fn step(self) -> Step {
        let send = |channel| Step::Send {
            channel,
            template: String::new(),
            sender: None,
            best_time_within: None,
            next: String::new(),
        };
        match self {
            Kind::Email => send(Channel::Email),
            Kind::Sms => send(Channel::Sms),
            Kind::Line => send(Channel::Line),
            Kind::Webhook => send(Channel::Webhook),
            Kind::Wait => Step::Wait {
                duration: "1d".into(),
                next: String::new(),
            },
            Kind::WaitUntil => Step::WaitUntil {
                time: "09:00".into(),
                weekdays: Vec::new(),
                next: String::new(),
            },
            Kind::WaitForEvent => Step::WaitForEvent {
                event: Awaited::Purchased,
                timeout: "3d".into(),
                on_event: String::new(),
                on_timeout: String::new(),
            },
            Kind::Branch => Step::Branch {
                field: String::new(),
                op: "eq".into(),
                value: serde_json::Value::String(String::new()),
                on_true: String::new(),
                on_false: String::new(),
            },
            Kind::Condition => Step::Condition {
                snippet: String::new(),
                args: Vec::new(),
                on_true: String::new(),
                on_false: String::new(),
            },
            Kind::Split => Step::Split {
                variants: vec![
                    Variant {
                        name: "A".into(),
                        percent: 50.0,
                        next: String::new(),
                    },
                    Variant {
                        name: "B".into(),
                        percent: 50.0,
                        next: String::new(),
                    },
                ],
                holdout_percent: 0.0,
            },
            Kind::UpdateContact => Step::UpdateContact {
                set: BTreeMap::new(),
                next: String::new(),
            },
            Kind::Exit => Step::Exit,
        }
    }
}

/// An empty flow that contacts enter by API call, in Tokyo time.
pub fn new_flow(name: &str) -> Flow {
    Flow {
        format: FORMAT_VERSION,
        name: name.to_string(),
        description: String::new(),
        settings: Settings::default(),
        entry: Entry::Api {
            next: String::new(),
        },
        nodes: Vec::new(),
    }
}

/// One exit of a node as the canvas draws it: its label and where it leads ("" when open).
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub label: String,
    pub target: String,
}

/// The exits of a node (or of the entry), in the order they are drawn.
pub fn ports(flow: &Flow, id: &str) -> Vec<Port> {
    if id == ENTRY {
        return vec![Port {
            label: "next".into(),
            target: flow.entry.next().to_string(),
        }];
    }
    let Some(node) = flow.node(id) else {
        return Vec::new();
    };
    if let Step::Split { variants, .. } = &node.step {
        return variants
            .iter()
            .map(|v| Port {
                label: v.name.clone(),
                target: v.next.clone(),
            })
            .collect();
    }
    node.step
        .exits()
        .into_iter()
        .map(|(label, target)| Port {
            label: label.into(),
            target: target.into(),
        })
        .collect()
}

fn exits_mut(step: &mut Step) -> Vec<&mut String> {
    match step {
        Step::Send { next, .. }
        | Step::Wait { next, .. }
        | Step::WaitUntil { next, .. }
        | Step::UpdateContact { next, .. } => vec![next],
        Step::WaitForEvent {
            on_event,
            on_timeout,
            ..
        } => vec![on_event, on_timeout],
        Step::Branch {
            on_true, on_false, ..
        }
        | Step::Condition {
            on_true, on_false, ..
        } => vec![on_true, on_false],
        Step::Split { variants, .. } => variants.iter_mut().map(|v| &mut v.next).collect(),
        Step::Exit => Vec::new(),
    }
}

/// Why a connection was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NoSuchPort,
    NoSuchNode,
    ToItself,
}

/// Leads exit `port` of `from` (a node id or [`ENTRY`]) to node `to`, replacing the
/// connection it had.
pub fn connect(flow: &mut Flow, from: &str, port: usize, to: &str) -> Result<(), Refused> {
    if flow.node(to).is_none() {
        return Err(Refused::NoSuchNode);
    }
    if from == to {
        return Err(Refused::ToItself);
    }
    let slot = if from == ENTRY {
        (port == 0).then(|| flow.entry.next_mut())
    } else {
        let node = flow
            .nodes
            .iter_mut()
            .find(|n| n.id == from)
            .ok_or(Refused::NoSuchNode)?;
        exits_mut(&mut node.step).into_iter().nth(port)
    };
    *slot.ok_or(Refused::NoSuchPort)? = to.to_string();
    Ok(())
}

/// Opens exit `port` of `from` again.
pub fn disconnect(flow: &mut Flow, from: &str, port: usize) {
    if from == ENTRY {
        flow.entry.next_mut().clear();
    } else if let Some(node) = flow.nodes.iter_mut().find(|n| n.id == from)
        && let Some(slot) = exits_mut(&mut node.step).into_iter().nth(port)
    {
        slot.clear();
    }
}

/// Adds a node of `kind` at `position` and gives its new id (`email_1`, `wait_2`…).
pub fn add_node(flow: &mut Flow, kind: Kind, position: (f64, f64)) -> String {
    let taken: BTreeSet<&str> = flow.nodes.iter().map(|n| n.id.as_str()).collect();
    let id = (1..)
        .map(|n| format!("{}_{n}", kind.key()))
        .find(|id| !taken.contains(id.as_str()))
        .expect("an unused id");
    flow.nodes.push(Node {
        id: id.clone(),
        step: kind.step(),
        position: Some(position),
    });
    id
}

/// A node's height: room for its exits on the right edge.
pub fn node_height(ports: usize) -> f64 {
    NODE_HEIGHT.max(24.0 * (ports as f64 + 1.0))
}

/// Where exit `index` of `count` sits below the node's top edge.
pub fn port_offset(index: usize, count: usize) -> f64 {
    node_height(count) * (index as f64 + 1.0) / (count as f64 + 1.0)
}

/// Where a node is drawn; nodes saved without a position get one from auto-layout.
pub fn position(flow: &Flow, id: &str) -> (f64, f64) {
    if id == ENTRY {
        return ENTRY_POSITION;
    }
    flow.node(id)
        .and_then(|n| n.position)
        .unwrap_or(ENTRY_POSITION)
}

/// Moves the nodes `ids` by `(dx, dy)` from the positions in `origin`.
pub fn move_nodes(flow: &mut Flow, origin: &BTreeMap<String, (f64, f64)>, dx: f64, dy: f64) {
    for node in &mut flow.nodes {
        if let Some((x, y)) = origin.get(&node.id) {
            node.position = Some(((x + dx).round(), (y + dy).round()));
        }
    }
}

/// Removes the nodes `ids`; exits that led to them are left open, and a wait-for-event that
/// listened to a removed send keeps the name so that validation points at it.
pub fn delete_nodes(flow: &mut Flow, ids: &BTreeSet<String>) {
    flow.nodes.retain(|n| !ids.contains(&n.id));
    let next = flow.entry.next_mut();
    if ids.contains(next.as_str()) {
        next.clear();
    }
    for node in &mut flow.nodes {
        for slot in exits_mut(&mut node.step) {
            if ids.contains(slot.as_str()) {
                slot.clear();
            }
        }
    }
}

/// Lays the flow out left to right: each node one column after the first node that leads to
/// it, nodes the entry does not reach in a last column.
pub fn auto_layout(flow: &mut Flow) {
    let mut column: BTreeMap<String, usize> = BTreeMap::new();
    let mut queue = VecDeque::new();
    let first = flow.entry.next().to_string();
    if flow.node(&first).is_some() {
        column.insert(first.clone(), 1);
        queue.push_back(first);
    }
    while let Some(id) = queue.pop_front() {
        let here = column[&id];
        for port in ports(flow, &id) {
            if flow.node(&port.target).is_some() && !column.contains_key(&port.target) {
                column.insert(port.target.clone(), here + 1);
                queue.push_back(port.target);
            }
        }
    }
    let last = column.values().max().copied().unwrap_or(0) + 1;
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    for node in &mut flow.nodes {
        let col = *column.get(&node.id).unwrap_or(&last);
        let row = rows.entry(col).or_default();
        node.position = Some((
            ENTRY_POSITION.0 + col as f64 * COLUMN,
            ENTRY_POSITION.1 - NODE_HEIGHT + *row as f64 * ROW,
        ));
        *row += 1;
    }
}

/// Gives every node without a position one, so that drafts written by hand can be drawn.
pub fn place_unplaced(flow: &mut Flow) {
    if flow.nodes.iter().any(|n| n.position.is_none()) {
        let placed: BTreeMap<String, (f64, f64)> = flow
            .nodes
            .iter()
            .filter_map(|n| n.position.map(|p| (n.id.clone(), p)))
            .collect();
        auto_layout(flow);
        for node in &mut flow.nodes {
            if let Some(p) = placed.get(&node.id) {
                node.position = Some(*p);
            }
        }
    }
}

/// The problems to show, by node id (`entry`, `settings` and `flow` for the rest): the model's
/// validation, with open exits said plainly.
pub fn problems(flow: &Flow) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut open = BTreeSet::new();
    for id in std::iter::once(ENTRY.to_string()).chain(flow.nodes.iter().map(|n| n.id.clone())) {
        for port in ports(flow, &id) {
            if port.target.is_empty() {
                open.insert(id.clone());
                found
                    .entry(id.clone())
                    .or_default()
                    .push(format!("exit {} is not connected", port.label));
            }
        }
    }
    for error in flow.validate() {
        if error.code == "dangling_exit"
            && open.contains(&error.at)
            && error.message.contains("\"\"")
        {
            continue;
        }
        found.entry(error.at).or_default().push(error.message);
    }
    found
}

/// Undo and redo over whole flows: a flow of a few hundred nodes is small beside the page.
#[derive(Debug, Default, Clone)]
pub struct History {
    past: Vec<Flow>,
    future: Vec<Flow>,
}

impl History {
    /// Remembers `before` as the state an undo returns to.
    pub fn record(&mut self, before: Flow) {
        if self.past.last() == Some(&before) {
            return;
        }
        self.past.push(before);
        if self.past.len() > HISTORY {
            self.past.remove(0);
        }
        self.future.clear();
    }

    pub fn undo(&mut self, current: &Flow) -> Option<Flow> {
        let previous = self.past.pop()?;
        self.future.push(current.clone());
        Some(previous)
    }

    pub fn redo(&mut self, current: &Flow) -> Option<Flow> {
        let next = self.future.pop()?;
        self.past.push(current.clone());
        Some(next)
    }

    pub fn can_undo(&self) -> bool {
        !self.past.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.future.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patent's scenario: e-mail, wait three days for it to be opened, then a second
    /// e-mail to those who opened it and an SMS to those who did not; both then leave.
    fn patent() -> Flow {
        let mut flow = new_flow("patent");
        let first = add_node(&mut flow, Kind::Email, (300.0, 200.0));
        let wait = add_node(&mut flow, Kind::WaitForEvent, (560.0, 200.0));
        let second = add_node(&mut flow, Kind::Email, (820.0, 120.0));
        let sms = add_node(&mut flow, Kind::Sms, (820.0, 280.0));
        let exit = add_node(&mut flow, Kind::Exit, (1080.0, 200.0));
        connect(&mut flow, ENTRY, 0, &first).unwrap();
        connect(&mut flow, &first, 0, &wait).unwrap();
        connect(&mut flow, &wait, 0, &second).unwrap();
        connect(&mut flow, &wait, 1, &sms).unwrap();
        connect(&mut flow, &second, 0, &exit).unwrap();
        connect(&mut flow, &sms, 0, &exit).unwrap();
        for node in &mut flow.nodes {
            match &mut node.step {
                Step::Send { template, .. } => *template = format!("t-{}", node.id),
                Step::WaitForEvent { event, .. } => *event = Awaited::Opened { of: first.clone() },
                _ => {}
            }
        }
        flow
    }

    #[test]
    fn new_nodes_get_unused_ids_and_open_exits() {
        let mut flow = new_flow("f");
        assert_eq!(add_node(&mut flow, Kind::Email, (0.0, 0.0)), "email_1");
        assert_eq!(add_node(&mut flow, Kind::Email, (0.0, 0.0)), "email_2");
        flow.nodes.remove(0);
        assert_eq!(add_node(&mut flow, Kind::Email, (0.0, 0.0)), "email_1");
        assert_eq!(ports(&flow, "email_2")[0].target, "");
    }

    #[test]
    fn a_connected_patent_flow_validates_and_survives_json() {
        let flow = patent();
        assert!(flow.validate().is_empty(), "{:?}", flow.validate());
        assert!(problems(&flow).is_empty());
        let json = serde_json::to_value(&flow).unwrap();
        let back: Flow = serde_json::from_value(json).unwrap();
        assert_eq!(back, flow);
    }

    #[test]
    fn open_exits_are_named_plainly_and_block_nothing_else() {
        let mut flow = patent();
        disconnect(&mut flow, "wait_for_event_1", 1);
        let found = problems(&flow);
        assert_eq!(
            found["wait_for_event_1"],
            vec!["exit on_timeout is not connected".to_string()]
        );
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn connections_are_checked() {
        let mut flow = patent();
        assert_eq!(
            connect(&mut flow, "email_1", 0, "nowhere"),
            Err(Refused::NoSuchNode)
        );
        assert_eq!(
            connect(&mut flow, "email_1", 0, "email_1"),
            Err(Refused::ToItself)
        );
        assert_eq!(
            connect(&mut flow, "email_1", 3, "sms_1"),
            Err(Refused::NoSuchPort)
        );
        assert_eq!(
            connect(&mut flow, ENTRY, 1, "sms_1"),
            Err(Refused::NoSuchPort)
        );
        let split = add_node(&mut flow, Kind::Split, (0.0, 0.0));
        connect(&mut flow, &split, 1, "sms_1").unwrap();
        assert_eq!(ports(&flow, &split)[1].target, "sms_1");
        assert_eq!(ports(&flow, &split)[1].label, "B");
    }

    #[test]
    fn deleting_nodes_opens_the_exits_that_led_to_them() {
        let mut flow = patent();
        delete_nodes(&mut flow, &BTreeSet::from(["email_1".to_string()]));
        assert_eq!(flow.entry.next(), "");
        assert!(flow.node("email_1").is_none());
        let found = problems(&flow);
        assert!(found.contains_key(ENTRY), "{found:?}");
    }

    #[test]
    fn moving_rounds_to_whole_pixels() {
        let mut flow = patent();
        let origin = BTreeMap::from([("sms_1".to_string(), (820.0, 280.0))]);
        move_nodes(&mut flow, &origin, 10.4, -20.6);
        assert_eq!(position(&flow, "sms_1"), (830.0, 259.0));
        assert_eq!(position(&flow, "email_1"), (300.0, 200.0));
    }

    #[test]
    fn auto_layout_puts_each_node_after_the_one_leading_to_it() {
        let mut flow = patent();
        add_node(&mut flow, Kind::Wait, (0.0, 0.0));
        auto_layout(&mut flow);
        let x = |id: &str| position(&flow, id).0;
        assert!(x("email_1") < x("wait_for_event_1"));
        assert!(x("wait_for_event_1") < x("email_2"));
        assert_eq!(x("email_2"), x("sms_1"));
        assert_ne!(position(&flow, "email_2").1, position(&flow, "sms_1").1);
        assert!(x("exit_1") > x("sms_1"));
        assert!(x("wait_1") > x("exit_1"), "unreached nodes go last");
    }

    #[test]
    fn drafts_without_positions_are_placed_and_placed_nodes_stay() {
        let mut flow = patent();
        flow.nodes[1].position = None;
        place_unplaced(&mut flow);
        assert!(flow.nodes.iter().all(|n| n.position.is_some()));
        assert_eq!(position(&flow, "email_1"), (300.0, 200.0));
    }

    #[test]
    fn undo_and_redo_walk_the_history() {
        let mut history = History::default();
        let mut flow = new_flow("f");
        history.record(flow.clone());
        add_node(&mut flow, Kind::Wait, (0.0, 0.0));
        let with_wait = flow.clone();
        let undone = history.undo(&flow).unwrap();
        assert!(undone.nodes.is_empty());
        assert!(history.can_redo());
        assert_eq!(history.redo(&undone).unwrap(), with_wait);
        assert!(history.redo(&with_wait).is_none());
        history.record(with_wait.clone());
        history.record(with_wait);
        assert!(history.undo(&flow).is_some());
        assert!(history.undo(&flow).is_some());
        assert!(
            history.undo(&flow).is_none(),
            "a repeated state is kept once"
        );
    }
}
