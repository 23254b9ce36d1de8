//! Scenarios ("flows") as data: what the editor draws, what `tabiji flow validate` checks and
//! what the engine will run (issue 3). A flow is an entry and a graph of nodes; every exit of a
//! node names the next node by id.
//!
//! Validation is pure and names the node in every message, so the editor can mark it.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schedule::{Cron, Recurrence, Schedule};
use crate::zone::Zone;

/// The flow format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// The flow format (not the flow's own published version).
    pub format: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub settings: Settings,
    pub entry: Entry,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// May a contact enter again?
    #[serde(default)]
    pub re_entry: ReEntry,
    /// The zone for times of day, quiet hours and schedules.
    #[serde(default = "tokyo")]
    pub zone: String,
    /// No sends between these times of day (`["21:00", "08:00"]`); sends wait for the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<(String, String)>,
    /// At most this many sends to one contact per period, across all flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_cap: Option<FrequencyCap>,
    /// PT-3: what the scenario promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_product: Option<String>,
    /// PT-3: no entries before / after these dates (`YYYY-MM-DD`, in the flow's zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_on: Option<String>,
    /// Contacts leave the flow as soon as one of these events happens (goals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// PT-4 privacy mode: the flow's runs, step log and deliveries hold a pseudonymous id, and
    /// each action reads only the contact fields it needs, keeping them only for the action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privacy: bool,
}

fn tokyo() -> String {
    "Asia/Tokyo".into()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            re_entry: ReEntry::default(),
            zone: tokyo(),
            quiet_hours: None,
            frequency_cap: None,
            target_product: None,
            starts_on: None,
            ends_on: None,
            goals: Vec::new(),
            privacy: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReEntry {
    #[default]
    Never,
    AfterExit,
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub max_sends: u32,
    pub per_days: u32,
}

/// How contacts enter the flow; `next` is the first node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// Everyone in a segment when the flow starts.
    SegmentSnapshot { segment: String, next: String },
    /// Each contact as they start matching a segment.
    SegmentEnter { segment: String, next: String },
    /// Each contact an event happens to (purchase, sign-up, point grant, any named event).
    Event { event: String, next: String },
    /// Contacts added by a call to the API.
    Api { next: String },
    /// Everyone in a segment, on a schedule in the flow's zone: a five-field `cron`
    /// expression or a friendly `recurrence` (one of the two).
    Schedule {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cron: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recurrence: Option<Recurrence>,
        segment: String,
        next: String,
    },
}

impl Entry {
    /// A scheduled entry's schedule, or why it has none.
    pub fn schedule(&self) -> Option<Result<Schedule, String>> {
        let Entry::Schedule {
            cron, recurrence, ..
        } = self
        else {
            return None;
        };
        Some(match (cron, recurrence) {
            (Some(cron), None) => Cron::parse(cron).map(Schedule::Cron),
            (None, Some(recurrence)) => recurrence.schedule(),
            _ => Err("give either a cron expression or a recurrence, not both or neither".into()),
        })
    }
}

/// The JSON Schema of the flow format, generated from these types: `docs/flow.schema.json`
/// and `tabiji flow schema` print it, and a test keeps the file in step with the code.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Flow)).expect("a schema is JSON")
}

/// The built-in segment of every contact; any other name is a saved segment's key.
pub const ALL_CONTACTS: &str = "all";

/// The entity whose records are the flows' contacts.
pub const CONTACTS: &str = "tourists";

impl Entry {
    /// The segment the entry draws from, if any.
    pub fn segment(&self) -> Option<&str> {
        match self {
            Entry::SegmentSnapshot { segment, .. }
            | Entry::SegmentEnter { segment, .. }
            | Entry::Schedule { segment, .. } => Some(segment),
            Entry::Event { .. } | Entry::Api { .. } => None,
        }
    }

    pub fn next(&self) -> &str {
        match self {
            Entry::SegmentSnapshot { next, .. }
            | Entry::SegmentEnter { next, .. }
            | Entry::Event { next, .. }
            | Entry::Api { next }
            | Entry::Schedule { next, .. } => next,
        }
    }

    /// The first node, to change (the editor connects the entry).
    pub fn next_mut(&mut self) -> &mut String {
        match self {
            Entry::SegmentSnapshot { next, .. }
            | Entry::SegmentEnter { next, .. }
            | Entry::Event { next, .. }
            | Entry::Api { next }
            | Entry::Schedule { next, .. } => next,
        }
    }
}

/// Unknown keys of a node are refused by [`Step`], which receives every key but `id` and
/// `position` (serde cannot deny unknown fields on a struct with a flattened part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Node {
    pub id: String,
    #[serde(flatten)]
    pub step: Step,
    /// Where the editor draws it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Line,
    Webhook,
    /// Records deliveries instead of sending them: for tests and dry runs.
    Test,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Line => "line",
            Channel::Webhook => "webhook",
            Channel::Test => "test",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        [
            Channel::Email,
            Channel::Sms,
            Channel::Line,
            Channel::Webhook,
            Channel::Test,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
    }
}

/// What a wait-for-event listens for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Awaited {
    /// The message sent by node `of` was opened (PT-1).
    Opened {
        of: String,
    },
    Clicked {
        of: String,
    },
    Purchased,
    /// Any event with this name.
    Event {
        name: String,
    },
}

/// One share of a random split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    pub percent: f64,
    pub next: String,
}

/// What a node does, with its exits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Send {
        channel: Channel,
        template: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
        /// MA-16: send at the contact's best hour (from their opens, else everyone's) within
        /// this long (`24h`), instead of at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        best_time_within: Option<String>,
        next: String,
    },
    /// Wait a duration such as `3d`, `12h`, `30m`.
    Wait { duration: String, next: String },
    /// Wait until a time of day (`09:00`), optionally on given weekdays (`mon` … `sun`).
    WaitUntil {
        time: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        weekdays: Vec<String>,
        next: String,
    },
    /// PT-1: move on when the event happens, or after `timeout` when it has not.
    WaitForEvent {
        event: Awaited,
        timeout: String,
        on_event: String,
        on_timeout: String,
    },
    /// Branch on the contact's data: `field` compared with `value` by `op`.
    Branch {
        field: String,
        op: String,
        value: serde_json::Value,
        on_true: String,
        on_false: String,
    },
    /// Branch on a rhai snippet (MA-10) saved under `snippet`: it sees the contact as
    /// `contact` and `args`, and gives `true` or `false`. A snippet that fails (or gives
    /// anything else) sends the contact `on_false`, with the reason in the step log.
    Condition {
        snippet: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<serde_json::Value>,
        on_true: String,
        on_false: String,
    },
    /// A/B/n split with an optional hold-out that leaves the flow.
    Split {
        variants: Vec<Variant>,
        #[serde(default)]
        holdout_percent: f64,
    },
    /// Set fields of the contact.
    UpdateContact {
        set: BTreeMap<String, serde_json::Value>,
        next: String,
    },
    /// Leave the flow.
    Exit,
}

impl Step {
    /// Every exit, named as the editor labels its ports.
    pub fn exits(&self) -> Vec<(&'static str, &str)> {
        match self {
            Step::Send { next, .. }
            | Step::Wait { next, .. }
            | Step::WaitUntil { next, .. }
            | Step::UpdateContact { next, .. } => vec![("next", next)],
            Step::WaitForEvent {
                on_event,
                on_timeout,
                ..
            } => vec![("on_event", on_event), ("on_timeout", on_timeout)],
            Step::Branch {
                on_true, on_false, ..
            }
            | Step::Condition {
                on_true, on_false, ..
            } => vec![("on_true", on_true), ("on_false", on_false)],
            Step::Split { variants, .. } => variants
                .iter()
                .map(|v| ("variant", v.next.as_str()))
                .collect(),
            Step::Exit => Vec::new(),
        }
    }

    /// Does passing through this node take time? A loop needs one such node, or a contact
    /// would circle without end.
    pub fn waits(&self) -> bool {
        matches!(
            self,
            Step::Wait { .. } | Step::WaitUntil { .. } | Step::WaitForEvent { .. }
        )
    }
}

/// One problem with a flow, naming the node (or `entry`/`settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowError {
    pub at: String,
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for FlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.at, self.message, self.code)
    }
}

fn err(at: &str, code: &'static str, message: impl Into<String>) -> FlowError {
    FlowError {
        at: at.to_string(),
        code,
        message: message.into(),
    }
}

/// `3d`, `12h`, `30m`, `45s`, or combinations such as `1d12h`: the length in seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
        any = true;
    }
    (any && number.is_empty() && total > 0).then_some(total)
}

/// `HH:MM`, 00:00 to 23:59.
pub fn parse_time_of_day(text: &str) -> Option<(u32, u32)> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some((h, m))
}

/// Weekday names as flows write them, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// The operators a branch node compares with.
pub const BRANCH_OPS: [&str; 9] = [
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "empty",
    "not_empty",
];

impl Flow {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every problem with the flow, in node order; empty when it may be published.
    pub fn validate(&self) -> Vec<FlowError> {
        let mut errors = Vec::new();
        if self.format != FORMAT_VERSION {
            errors.push(err(
                "flow",
                "unknown_format",
                format!(
                    "format {} is not known; this tabiji reads format {FORMAT_VERSION}",
                    self.format
                ),
            ));
        }
        if self.name.trim().is_empty() {
            errors.push(err("flow", "required", "give the flow a name"));
        }
        self.validate_settings(&mut errors);

        let mut ids = BTreeSet::new();
        for node in &self.nodes {
            if node.id.trim().is_empty() || node.id.len() > 64 {
                errors.push(err(
                    &node.id,
                    "invalid_id",
                    "a node id must be 1 to 64 characters",
                ));
            }
            if !ids.insert(node.id.as_str()) {
                errors.push(err(&node.id, "duplicate_id", "another node has this id"));
            }
        }
        if self.nodes.is_empty() {
            errors.push(err("flow", "no_nodes", "a flow needs at least one node"));
        }
        let check_target = |at: &str, port: &str, target: &str, errors: &mut Vec<FlowError>| {
            if !ids.contains(target) {
                errors.push(err(
                    at,
                    "dangling_exit",
                    format!("exit {port} leads to {target:?}, which is not a node of this flow"),
                ));
            }
        };
        check_target("entry", "next", self.entry.next(), &mut errors);
        self.validate_entry(&mut errors);
        for node in &self.nodes {
            for (port, target) in node.step.exits() {
                check_target(&node.id, port, target, &mut errors);
            }
            self.validate_step(node, &mut errors);
        }
        if errors
            .iter()
            .any(|e| e.code == "dangling_exit" || e.code == "duplicate_id")
        {
            return errors;
        }
        self.validate_graph(&mut errors);
        errors
    }

    fn validate_settings(&self, errors: &mut Vec<FlowError>) {
        let s = &self.settings;
        if Zone::parse(&s.zone).is_none() {
            errors.push(err(
                "settings",
                "unknown_zone",
                format!(
                    "zone {:?} is not known; use a zone name such as Asia/Tokyo, UTC, or an offset such as +09:00",
                    s.zone
                ),
            ));
        }
        if let Some((from, to)) = &s.quiet_hours
            && (parse_time_of_day(from).is_none() || parse_time_of_day(to).is_none())
        {
            errors.push(err(
                "settings",
                "invalid_time",
                "quiet_hours must be two times such as [\"21:00\", \"08:00\"]",
            ));
        }
        if let Some(cap) = &s.frequency_cap
            && (cap.max_sends == 0 || cap.per_days == 0)
        {
            errors.push(err(
                "settings",
                "invalid_cap",
                "frequency_cap needs max_sends and per_days above zero",
            ));
        }
        let date = |d: &Option<String>| d.as_deref().map(crate::field::parse_date);
        match (date(&s.starts_on), date(&s.ends_on)) {
            (Some(None), _) | (_, Some(None)) => errors.push(err(
                "settings",
                "invalid_date",
                "starts_on and ends_on are dates such as 2026-12-01",
            )),
            (Some(Some(a)), Some(Some(b))) if b < a => errors.push(err(
                "settings",
                "invalid_period",
                "ends_on is before starts_on",
            )),
            _ => {}
        }
    }

    fn validate_entry(&self, errors: &mut Vec<FlowError>) {
        let blank = |s: &str| s.trim().is_empty();
        match &self.entry {
            Entry::SegmentSnapshot { segment, .. } | Entry::SegmentEnter { segment, .. }
                if blank(segment) =>
            {
                errors.push(err(
                    "entry",
                    "required",
                    "name the segment contacts enter from",
                ))
            }
            Entry::Event { event, .. } if blank(event) => errors.push(err(
                "entry",
                "required",
                "name the event that starts the flow",
            )),
            Entry::Schedule { segment, .. } => {
                if let Some(Err(problem)) = self.entry.schedule() {
                    errors.push(err("entry", "invalid_schedule", problem));
                }
                if self.settings.re_entry == ReEntry::Never {
                    errors.push(err(
                        "settings",
                        "schedule_never_reenters",
                        "with re_entry \"never\" a scheduled flow reaches each contact at the first tick only; choose \"after_exit\" or \"always\"",
                    ));
                }
                if blank(segment) {
                    errors.push(err(
                        "entry",
                        "required",
                        "name the segment a scheduled flow sends to",
                    ));
                }
            }
            _ => {}
        }
    }

    fn validate_step(&self, node: &Node, errors: &mut Vec<FlowError>) {
        let at = node.id.as_str();
        match &node.step {
            Step::Send {
                template,
                best_time_within,
                ..
            } => {
                if template.trim().is_empty() {
                    errors.push(err(at, "required", "choose the template to send"));
                }
                if let Some(window) = best_time_within
                    && !parse_duration(window).is_some_and(|s| (3_600..=7 * 86_400).contains(&s))
                {
                    errors.push(err(
                        at,
                        "invalid_duration",
                        format!("best_time_within {window:?} is not a duration from 1h to 7d"),
                    ));
                }
            }
            Step::Wait { duration, .. } if parse_duration(duration).is_none() => errors.push(err(
                at,
                "invalid_duration",
                format!("{duration:?} is not a duration such as 3d, 12h or 30m"),
            )),
            Step::WaitUntil { time, weekdays, .. } => {
                if parse_time_of_day(time).is_none() {
                    errors.push(err(
                        at,
                        "invalid_time",
                        format!("{time:?} is not a time of day such as 09:00"),
                    ));
                }
                if let Some(bad) = weekdays.iter().find(|d| !WEEKDAYS.contains(&d.as_str())) {
                    errors.push(err(
                        at,
                        "invalid_weekday",
                        format!("{bad:?} is not one of {}", WEEKDAYS.join(", ")),
                    ));
                }
            }
            Step::WaitForEvent { event, timeout, .. } => {
                if parse_duration(timeout).is_none() {
                    errors.push(err(
                        at,
                        "invalid_duration",
                        format!("{timeout:?} is not a duration such as 3d, 12h or 30m"),
                    ));
                }
                if let Awaited::Opened { of } | Awaited::Clicked { of } = event {
                    match self.node(of).map(|n| &n.step) {
                        Some(Step::Send { .. }) => {}
                        _ => errors.push(err(at, "unknown_reference", format!("waits for a reaction to {of:?}, which is not a send node of this flow"))),
                    }
                }
            }
            Step::Branch { field, op, .. } => {
                if field.trim().is_empty() {
                    errors.push(err(at, "required", "choose the field to branch on"));
                }
                if !BRANCH_OPS.contains(&op.as_str()) {
                    errors.push(err(
                        at,
                        "invalid_operator",
                        format!("{op:?} is not one of {}", BRANCH_OPS.join(", ")),
                    ));
                }
            }
            Step::Condition { snippet, .. } => {
                if let Err(why) = crate::content::check_key(snippet) {
                    errors.push(err(at, "invalid_snippet", why));
                }
            }
            Step::Split {
                variants,
                holdout_percent,
            } => {
                let total: f64 = variants.iter().map(|v| v.percent).sum::<f64>() + holdout_percent;
                if variants.is_empty() {
                    errors.push(err(at, "required", "a split needs at least one variant"));
                } else if variants.iter().any(|v| v.percent <= 0.0)
                    || *holdout_percent < 0.0
                    || (total - 100.0).abs() > 1e-6
                {
                    errors.push(err(at, "invalid_split", format!("the variants and the hold-out must be positive and add up to 100 % (they add up to {total} %)")));
                }
            }
            Step::UpdateContact { set, .. } if set.is_empty() => {
                errors.push(err(at, "required", "set at least one field"))
            }
            _ => {}
        }
    }

    /// Unreachable nodes, and loops a contact could circle without waiting.
    fn validate_graph(&self, errors: &mut Vec<FlowError>) {
        let exits: BTreeMap<&str, Vec<&str>> = self
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id.as_str(),
                    n.step.exits().into_iter().map(|(_, t)| t).collect(),
                )
            })
            .collect();
        let mut reached = BTreeSet::new();
        let mut stack = vec![self.entry.next()];
        while let Some(id) = stack.pop() {
            if reached.insert(id) {
                stack.extend(exits[id].iter().copied());
            }
        }
        for node in &self.nodes {
            if !reached.contains(node.id.as_str()) {
                errors.push(err(
                    &node.id,
                    "unreachable",
                    "no path from the entry leads here",
                ));
            }
        }
        // A cycle among nodes that do not wait: depth-first search over the non-waiting nodes.
        let waits: BTreeSet<&str> = self
            .nodes
            .iter()
            .filter(|n| n.step.waits())
            .map(|n| n.id.as_str())
            .collect();
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        for start in self
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .filter(|id| !waits.contains(id))
        {
            let mut path: Vec<(&str, usize)> = vec![(start, 0)];
            if state.contains_key(start) {
                continue;
            }
            state.insert(start, 1);
            while let Some((id, i)) = path.pop() {
                let next = exits[id]
                    .iter()
                    .copied()
                    .filter(|t| !waits.contains(t))
                    .nth(i);
                match next {
                    None => {
                        state.insert(id, 2);
                    }
                    Some(target) => {
                        path.push((id, i + 1));
                        match state.get(target) {
                            Some(1) => {
                                errors.push(err(target, "loop_without_wait", format!("a contact can circle from {target} back to it without waiting; put a wait in the loop")));
                                return;
                            }
                            Some(_) => {}
                            None => {
                                state.insert(target, 1);
                                path.push((target, 0));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patent's scenario (S1): mail → wait for open 3 days → opened: mail 2 / not: SMS.
    pub(crate) fn patent_flow() -> serde_json::Value {
        serde_json::json!({
            "format": 1,
            "name": "秋の誘客 / Autumn campaign",
            "settings": {"re_entry": "never", "quiet_hours": ["21:00", "08:00"], "target_product": "飛騨牛ランチ"},
            "entry": {"type": "segment_snapshot", "segment": "all", "next": "mail1"},
            "nodes": [
                {"id": "mail1", "type": "send", "channel": "email", "template": "autumn-1", "next": "wait_open"},
                {"id": "wait_open", "type": "wait_for_event", "event": {"opened": {"of": "mail1"}}, "timeout": "3d",
                 "on_event": "mail2", "on_timeout": "sms"},
                {"id": "mail2", "type": "send", "channel": "email", "template": "autumn-2", "next": "done"},
                {"id": "sms", "type": "send", "channel": "sms", "template": "autumn-sms", "next": "done"},
                {"id": "done", "type": "exit"}
            ]
        })
    }

    fn codes(flow: &Flow) -> Vec<(String, &'static str)> {
        flow.validate()
            .into_iter()
            .map(|e| (e.at, e.code))
            .collect()
    }

    mod fuzzed {
        use proptest::prelude::*;

        use super::*;
        use crate::fuzz::{json_like, leaves, mutated, words_of};

        const IN_STRINGS: &[&str] = &[
            "3d",
            "90m",
            "0s",
            "25:00",
            "09:30",
            "mail1",
            "wait_open",
            "done",
            "all",
            "Asia/Tokyo",
            "Mars/Olympus",
            "0 9 * * MON",
            "* * *",
            "2026-02-30",
            "email",
        ];

        fn flows() -> BoxedStrategy<serde_json::Value> {
            json_like(words_of(&json_schema()), IN_STRINGS)
        }

        /// Whatever a flow file holds, reading and validating it ends in a flow or in errors,
        /// never in a panic.
        fn read(doc: serde_json::Value) {
            if let Ok(flow) = serde_json::from_value::<Flow>(doc) {
                for e in flow.validate() {
                    assert!(!e.message.is_empty(), "{e:?}");
                }
                let _ = flow.entry.schedule();
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn any_json_is_read_or_refused(doc in flows()) {
                read(doc);
            }

            #[test]
            fn damaged_patent_flows_are_read_or_refused(
                doc in mutated(patent_flow(), leaves(words_of(&json_schema()), IN_STRINGS))
            ) {
                read(doc);
            }

            #[test]
            fn any_duration_or_time_text(text in "\\PC{0,12}", digits in "[0-9]{1,25}[smhdw]?") {
                let _ = parse_duration(&text);
                let _ = parse_duration(&digits);
                let _ = parse_time_of_day(&text);
            }
        }
    }

    #[test]
    fn the_patent_scenario_is_valid_and_round_trips() {
        let flow: Flow = serde_json::from_value(patent_flow()).unwrap();
        assert_eq!(flow.validate(), vec![]);
        let again: Flow = serde_json::from_value(serde_json::to_value(&flow).unwrap()).unwrap();
        assert_eq!(again, flow);
        assert_eq!(flow.settings.zone, "Asia/Tokyo");
    }

    #[test]
    fn the_published_json_schema_is_the_code_s() {
        let published: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/flow.schema.json")).unwrap();
        assert!(
            published == json_schema(),
            "docs/flow.schema.json is stale: regenerate it with `tabiji flow schema > docs/flow.schema.json`"
        );
    }

    #[test]
    fn schedules_by_cron_or_recurrence() {
        let with_entry = |entry: serde_json::Value, re_entry: &str| {
            let mut json = patent_flow();
            json["entry"] = entry;
            json["settings"]["re_entry"] = re_entry.into();
            json["settings"]["zone"] = "Europe/Berlin".into();
            serde_json::from_value::<Flow>(json).unwrap()
        };
        let weekly = serde_json::json!({"type": "schedule", "segment": "all", "next": "mail1",
            "recurrence": {"every": "week", "on": ["mon", "thu"], "at": "09:00"}});
        assert_eq!(codes(&with_entry(weekly.clone(), "always")), vec![]);
        assert_eq!(
            codes(&with_entry(weekly, "never")),
            vec![("settings".into(), "schedule_never_reenters")]
        );
        let cron = serde_json::json!({"type": "schedule", "segment": "all", "next": "mail1", "cron": "0 9 * * 1-5"});
        assert_eq!(codes(&with_entry(cron, "after_exit")), vec![]);
        for bad in [
            serde_json::json!({"type": "schedule", "segment": "all", "next": "mail1", "cron": "0 25 * * *"}),
            serde_json::json!({"type": "schedule", "segment": "all", "next": "mail1"}),
            serde_json::json!({"type": "schedule", "segment": "all", "next": "mail1", "cron": "0 9 * * *",
                               "recurrence": {"every": "day", "at": "09:00"}}),
            serde_json::json!({"type": "schedule", "segment": "all", "next": "mail1",
                               "recurrence": {"every": "month", "day": 32, "at": "09:00"}}),
        ] {
            assert_eq!(
                codes(&with_entry(bad.clone(), "always")),
                vec![("entry".into(), "invalid_schedule")],
                "{bad}"
            );
        }
    }

    #[test]
    fn dangling_and_unreachable_nodes_are_named() {
        let mut json = patent_flow();
        json["nodes"][2]["next"] = "nowhere".into();
        let flow: Flow = serde_json::from_value(json).unwrap();
        assert_eq!(codes(&flow), vec![("mail2".into(), "dangling_exit")]);

        let mut json = patent_flow();
        json["nodes"][1]["on_timeout"] = "done".into();
        let flow: Flow = serde_json::from_value(json).unwrap();
        assert_eq!(codes(&flow), vec![("sms".into(), "unreachable")]);
    }

    #[test]
    fn loops_need_a_wait() {
        let mut json = patent_flow();
        json["nodes"][2]["next"] = "mail1".into();
        let flow: Flow = serde_json::from_value(json).unwrap();
        assert_eq!(
            flow.validate(),
            vec![],
            "mail1 → wait_open → mail2 → mail1 waits in wait_open"
        );

        let mut json = patent_flow();
        json["nodes"].as_array_mut().unwrap().push(serde_json::json!(
            {"id": "tag", "type": "update_contact", "set": {"member_type": "premium"}, "next": "mail3"}));
        json["nodes"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
            {"id": "mail3", "type": "send", "channel": "email", "template": "x", "next": "tag"}));
        json["nodes"][2]["next"] = "tag".into();
        let flow: Flow = serde_json::from_value(json).unwrap();
        let found = codes(&flow);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, "loop_without_wait");
    }

    #[test]
    fn steps_are_checked() {
        let mut json = patent_flow();
        json["nodes"][1]["timeout"] = "three days".into();
        json["nodes"][1]["event"] = serde_json::json!({"opened": {"of": "sms2"}});
        json["nodes"].as_array_mut().unwrap().push(serde_json::json!(
            {"id": "ab", "type": "split", "variants": [{"name": "A", "percent": 50, "next": "done"}, {"name": "B", "percent": 40, "next": "done"}]}));
        json["nodes"][0]["next"] = "ab".into();
        json["settings"]["zone"] = "Mars/Olympus".into();
        let flow: Flow = serde_json::from_value(json).unwrap();
        let found = codes(&flow);
        for expected in [
            ("settings".to_string(), "unknown_zone"),
            ("wait_open".to_string(), "invalid_duration"),
            ("wait_open".to_string(), "unknown_reference"),
            ("ab".to_string(), "invalid_split"),
        ] {
            assert!(found.contains(&expected), "{expected:?} in {found:?}");
        }
    }

    #[test]
    fn unknown_fields_and_types_are_refused_when_read() {
        let mut json = patent_flow();
        json["nodes"][0]["colour"] = "red".into();
        assert!(serde_json::from_value::<Flow>(json).is_err());
        let mut json = patent_flow();
        json["nodes"][0]["type"] = "teleport".into();
        assert!(serde_json::from_value::<Flow>(json).is_err());
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("3d"), Some(259_200));
        assert_eq!(parse_duration("1d12h"), Some(129_600));
        assert_eq!(parse_duration("30m"), Some(1_800));
        for bad in ["", "3", "d", "0h", "3x", "-1d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_time_of_day("09:00"), Some((9, 0)));
        assert_eq!(parse_time_of_day("24:00"), None);
        assert_eq!(parse_time_of_day("9:00"), None);
    }
}
