//! The property panel: the selected node's settings, or the flow's own when none is selected.
//! Every change is one undoable edit, made when a field is left (`change`), not per keystroke.

use leptos::prelude::*;
use serde_json::Value;
use tabiji_model::flow::{
    Awaited, BRANCH_OPS, Channel, Entry, Flow, ReEntry, Settings, Step, Variant,
};

use crate::Session;
use crate::editor::{Editing, Library};

/// A typed value from a text box: JSON where it reads as JSON (numbers, true, lists), text
/// otherwise.
fn value_from_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn value_to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `A:50, B:50` ↔ variants, keeping where each variant led.
fn variants_from_text(text: &str, old: &[Variant]) -> Option<Vec<Variant>> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .enumerate()
        .map(|(i, part)| {
            let (name, percent) = part.split_once(':')?;
            Some(Variant {
                name: name.trim().to_string(),
                percent: percent.trim().trim_end_matches('%').parse().ok()?,
                next: old.get(i).map(|v| v.next.clone()).unwrap_or_default(),
            })
        })
        .collect()
}

fn variants_to_text(variants: &[Variant]) -> String {
    variants
        .iter()
        .map(|v| format!("{}:{}", v.name, v.percent))
        .collect::<Vec<_>>()
        .join(", ")
}

fn entry_key(entry: &Entry) -> &'static str {
    match entry {
        Entry::Api { .. } => "api",
        Entry::SegmentSnapshot { .. } => "segment_snapshot",
        Entry::SegmentEnter { .. } => "segment_enter",
        Entry::Event { .. } => "event",
        Entry::Schedule { .. } => "schedule",
    }
}

/// The entry of another kind, keeping where it leads and the segment it had.
fn entry_of_kind(kind: &str, old: &Entry) -> Entry {
    let next = old.next().to_string();
    let segment = old
        .segment()
        .unwrap_or(tabiji_model::flow::ALL_CONTACTS)
        .to_string();
    match kind {
        "segment_snapshot" => Entry::SegmentSnapshot { segment, next },
        "segment_enter" => Entry::SegmentEnter { segment, next },
        "event" => Entry::Event {
            event: "purchase".into(),
            next,
        },
        "schedule" => Entry::Schedule {
            cron: Some("0 9 * * 1".into()),
            recurrence: None,
            segment,
            next,
        },
        _ => Entry::Api { next },
    }
}

/// Applies `change` to the node `id`'s step as one edit.
fn edit_step(editing: Editing, id: String, change: impl FnOnce(&mut Step)) {
    editing.edit(|f: &mut Flow| {
        if let Some(node) = f.nodes.iter_mut().find(|n| n.id == id) {
            change(&mut node.step);
        }
    });
}

fn options(list: Vec<(String, String)>, current: String) -> impl IntoView {
    let known = list.iter().any(|(value, _)| *value == current);
    let extra = (!known && !current.is_empty()).then(|| (current.clone(), current.clone()));
    list.into_iter()
        .chain(extra)
        .map(|(value, label)| {
            let chosen = value == current;
            view! { <option value=value selected=chosen>{label}</option> }
        })
        .collect_view()
}

#[derive(Clone, PartialEq)]
enum Shown {
    Node {
        id: String,
        step: Step,
        /// The send nodes a wait-for-event may listen to.
        sends: Vec<String>,
    },
    Flow {
        entry: Entry,
        settings: Settings,
    },
}

#[component]
pub fn Properties() -> impl IntoView {
    let session = expect_context::<Session>();
    let editing = expect_context::<Editing>();
    let library = expect_context::<RwSignal<Library>>();
    // Only what the panel shows: moving nodes changes none of it, so a drag does not rebuild it.
    let shown = Memo::new(move |_| {
        let chosen = editing.selected.get();
        let id = (chosen.len() == 1)
            .then(|| chosen.into_iter().next())
            .flatten();
        editing.flow.with(|f| match id.and_then(|id| f.node(&id)) {
            Some(node) => Shown::Node {
                id: node.id.clone(),
                step: node.step.clone(),
                sends: f
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.step, Step::Send { .. }))
                    .map(|n| n.id.clone())
                    .collect(),
            },
            None => Shown::Flow {
                entry: f.entry.clone(),
                settings: f.settings.clone(),
            },
        })
    });
    let panel = move || match shown.get() {
        Shown::Node { id, step, sends } => {
            node_panel(session, editing, library, id, step, sends).into_any()
        }
        Shown::Flow { entry, settings } => {
            flow_panel(session, editing, library, entry, settings).into_any()
        }
    };
    view! { <div class="properties" data-test="properties">{panel}</div> }
}

fn flow_panel(
    session: Session,
    editing: Editing,
    library: RwSignal<Library>,
    entry: Entry,
    settings: Settings,
) -> impl IntoView {
    let t = move |key: &str| session.t(key);
    let entry_kind = entry_key(&entry);
    let entry_options = [
        "api",
        "segment_snapshot",
        "segment_enter",
        "event",
        "schedule",
    ]
    .map(|k| (k.to_string(), t(&format!("props.entry.{k}"))))
    .to_vec();
    let segment_options = std::iter::once((
        tabiji_model::flow::ALL_CONTACTS.to_string(),
        tabiji_model::flow::ALL_CONTACTS.to_string(),
    ))
    .chain(
        library
            .get()
            .segments
            .into_iter()
            .map(|(key, name)| (key.clone(), format!("{name} ({key})"))),
    )
    .collect::<Vec<_>>();
    let segment = entry.segment().map(str::to_string);
    let event = match &entry {
        Entry::Event { event, .. } => Some(event.clone()),
        _ => None,
    };
    let cron = match &entry {
        Entry::Schedule { cron, .. } => Some(cron.clone().unwrap_or_default()),
        _ => None,
    };
    let re_entry = match settings.re_entry {
        ReEntry::Never => "never",
        ReEntry::AfterExit => "after_exit",
        ReEntry::Always => "always",
    };
    view! {
        <h2>{t("props.flow")}</h2>
        <label>{t("props.entry")}
            <select data-field="entry" on:change=move |ev| {
                let kind = event_target_value(&ev);
                editing.edit(|f| f.entry = entry_of_kind(&kind, &f.entry));
            }>{options(entry_options, entry_kind.to_string())}</select>
        </label>
        {segment.map(|current| view! {
            <label>{t("props.segment")}
                <select data-field="segment" on:change=move |ev| {
                    let chosen = event_target_value(&ev);
                    editing.edit(|f| match &mut f.entry {
                        Entry::SegmentSnapshot { segment, .. } | Entry::SegmentEnter { segment, .. }
                        | Entry::Schedule { segment, .. } => *segment = chosen,
                        _ => {}
                    });
                }>{options(segment_options, current)}</select>
            </label>
        })}
        {event.map(|current| view! {
            <label>{t("props.event")}
                <input data-field="event" prop:value=current on:change=move |ev| {
                    let name = event_target_value(&ev);
                    editing.edit(|f| if let Entry::Event { event, .. } = &mut f.entry { *event = name });
                }/>
            </label>
        })}
        {cron.map(|current| view! {
            <label>{t("props.cron")}
                <input data-field="cron" prop:value=current on:change=move |ev| {
                    let text = event_target_value(&ev);
                    editing.edit(|f| if let Entry::Schedule { cron, .. } = &mut f.entry { *cron = Some(text) });
                }/>
            </label>
        })}
        <label>{t("props.re_entry")}
            <select data-field="re_entry" on:change=move |ev| {
                let chosen = match event_target_value(&ev).as_str() {
                    "after_exit" => ReEntry::AfterExit,
                    "always" => ReEntry::Always,
                    _ => ReEntry::Never,
                };
                editing.edit(|f| f.settings.re_entry = chosen);
            }>{options(["never", "after_exit", "always"].map(|k| (k.to_string(), t(&format!("props.re_entry.{k}")))).to_vec(), re_entry.to_string())}</select>
        </label>
        <label>{t("props.zone")}
            <input data-field="zone" prop:value=settings.zone.clone() on:change=move |ev| {
                let zone = event_target_value(&ev);
                editing.edit(|f| f.settings.zone = zone);
            }/>
        </label>
    }
}

fn node_panel(
    session: Session,
    editing: Editing,
    library: RwSignal<Library>,
    id: String,
    step: Step,
    sends: Vec<String>,
) -> impl IntoView {
    let t = move |key: &str| session.t(key);
    let heading = format!(
        "{} · {id}",
        t(&format!("kind.{}", crate::canvas::Kind::of(&step).key()))
    );
    let none = || (String::new(), session.t("props.none"));
    let fields = match step {
        Step::Send {
            channel,
            template,
            sender,
            best_time_within,
            ..
        } => {
            let templates = std::iter::once(none())
                .chain(
                    library
                        .get()
                        .templates
                        .into_iter()
                        .filter(|(_, c)| *c == channel.as_str() || channel == Channel::Test)
                        .map(|(key, _)| (key.clone(), key)),
                )
                .collect();
            let (a, b, c) = (id.clone(), id.clone(), id.clone());
            view! {
                <label>{t("props.template")}
                    <select data-field="template" on:change=move |ev| {
                        let chosen = event_target_value(&ev);
                        edit_step(editing, a.clone(), |s| if let Step::Send { template, .. } = s { *template = chosen });
                    }>{options(templates, template)}</select>
                </label>
                <label>{t("props.sender")}
                    <input data-field="sender" prop:value=sender.unwrap_or_default() on:change=move |ev| {
                        let text = event_target_value(&ev);
                        edit_step(editing, b.clone(), |s| if let Step::Send { sender, .. } = s {
                            *sender = (!text.trim().is_empty()).then(|| text.trim().to_string());
                        });
                    }/>
                </label>
                <label>{t("props.best_time")}
                    <input data-field="best_time_within" placeholder="24h" prop:value=best_time_within.unwrap_or_default() on:change=move |ev| {
                        let text = event_target_value(&ev);
                        edit_step(editing, c.clone(), |s| if let Step::Send { best_time_within, .. } = s {
                            *best_time_within = (!text.trim().is_empty()).then(|| text.trim().to_string());
                        });
                    }/>
                </label>
            }
            .into_any()
        }
        Step::Wait { duration, .. } => view! {
            <label>{t("props.duration")}
                <input data-field="duration" prop:value=duration on:change=move |ev| {
                    let text = event_target_value(&ev);
                    edit_step(editing, id.clone(), |s| if let Step::Wait { duration, .. } = s { *duration = text });
                }/>
            </label>
        }
        .into_any(),
        Step::WaitUntil { time, weekdays, .. } => {
            let other = id.clone();
            view! {
                <label>{t("props.time")}
                    <input data-field="time" type="time" prop:value=time on:change=move |ev| {
                        let text = event_target_value(&ev);
                        edit_step(editing, id.clone(), |s| if let Step::WaitUntil { time, .. } = s { *time = text });
                    }/>
                </label>
                <label>{t("props.weekdays")}
                    <input data-field="weekdays" prop:value=weekdays.join(",") on:change=move |ev| {
                        let list: Vec<String> = event_target_value(&ev).split(',').map(|d| d.trim().to_lowercase()).filter(|d| !d.is_empty()).collect();
                        edit_step(editing, other.clone(), |s| if let Step::WaitUntil { weekdays, .. } = s { *weekdays = list });
                    }/>
                </label>
            }
            .into_any()
        }
        Step::WaitForEvent { event, timeout, .. } => {
            let (kind, of, name) = match &event {
                Awaited::Opened { of } => ("opened", of.clone(), String::new()),
                Awaited::Clicked { of } => ("clicked", of.clone(), String::new()),
                Awaited::Purchased => ("purchased", String::new(), String::new()),
                Awaited::Event { name } => ("event", String::new(), name.clone()),
            };
            let sends = std::iter::once(none())
                .chain(sends.into_iter().map(|id| (id.clone(), id)))
                .collect();
            let kinds = ["opened", "clicked", "purchased", "event"]
                .map(|k| (k.to_string(), t(&format!("props.awaited.{k}"))))
                .to_vec();
            let (a, b, c, d) = (id.clone(), id.clone(), id.clone(), id.clone());
            view! {
                <label>{t("props.awaited")}
                    <select data-field="awaited" on:change=move |ev| {
                        let chosen = event_target_value(&ev);
                        edit_step(editing, a.clone(), |s| if let Step::WaitForEvent { event, .. } = s {
                            let of = match event { Awaited::Opened { of } | Awaited::Clicked { of } => of.clone(), _ => String::new() };
                            *event = match chosen.as_str() {
                                "opened" => Awaited::Opened { of },
                                "clicked" => Awaited::Clicked { of },
                                "event" => Awaited::Event { name: String::new() },
                                _ => Awaited::Purchased,
                            };
                        });
                    }>{options(kinds, kind.to_string())}</select>
                </label>
                {(kind == "opened" || kind == "clicked").then(|| view! {
                    <label>{t("props.of")}
                        <select data-field="of" on:change=move |ev| {
                            let chosen = event_target_value(&ev);
                            edit_step(editing, b.clone(), |s| if let Step::WaitForEvent { event: Awaited::Opened { of } | Awaited::Clicked { of }, .. } = s { *of = chosen });
                        }>{options(sends, of)}</select>
                    </label>
                })}
                {(kind == "event").then(|| view! {
                    <label>{t("props.event")}
                        <input data-field="event_name" prop:value=name on:change=move |ev| {
                            let text = event_target_value(&ev);
                            edit_step(editing, c.clone(), |s| if let Step::WaitForEvent { event: Awaited::Event { name }, .. } = s { *name = text });
                        }/>
                    </label>
                })}
                <label>{t("props.timeout")}
                    <input data-field="timeout" prop:value=timeout on:change=move |ev| {
                        let text = event_target_value(&ev);
                        edit_step(editing, d.clone(), |s| if let Step::WaitForEvent { timeout, .. } = s { *timeout = text });
                    }/>
                </label>
            }
            .into_any()
        }
        Step::Branch {
            field, op, value, ..
        } => {
            let (a, b, c) = (id.clone(), id.clone(), id.clone());
            let ops = BRANCH_OPS.map(|o| (o.to_string(), o.to_string())).to_vec();
            view! {
                <label>{t("props.field")}
                    <input data-field="field" prop:value=field on:change=move |ev| {
                        let text = event_target_value(&ev);
                        edit_step(editing, a.clone(), |s| if let Step::Branch { field, .. } = s { *field = text });
                    }/>
                </label>
                <label>{t("props.op")}
                    <select data-field="op" on:change=move |ev| {
                        let chosen = event_target_value(&ev);
                        edit_step(editing, b.clone(), |s| if let Step::Branch { op, .. } = s { *op = chosen });
                    }>{options(ops, op)}</select>
                </label>
                <label>{t("props.value")}
                    <input data-field="value" prop:value=value_to_text(&value) on:change=move |ev| {
                        let parsed = value_from_text(&event_target_value(&ev));
                        edit_step(editing, c.clone(), |s| if let Step::Branch { value, .. } = s { *value = parsed });
                    }/>
                </label>
            }
            .into_any()
        }
        Step::Condition { snippet, .. } => {
            let snippets = std::iter::once(none())
                .chain(library.get().snippets.into_iter().map(|k| (k.clone(), k)))
                .collect();
            view! {
                <label>{t("props.snippet")}
                    <select data-field="snippet" on:change=move |ev| {
                        let chosen = event_target_value(&ev);
                        edit_step(editing, id.clone(), |s| if let Step::Condition { snippet, .. } = s { *snippet = chosen });
                    }>{options(snippets, snippet)}</select>
                </label>
            }
            .into_any()
        }
        Step::Split {
            variants,
            holdout_percent,
        } => {
            let other = id.clone();
            let invalid = RwSignal::new(false);
            view! {
                <label>{t("props.variants")}
                    <input data-field="variants" class:invalid=invalid prop:value=variants_to_text(&variants) on:change=move |ev| {
                        let text = event_target_value(&ev);
                        let mut ok = true;
                        edit_step(editing, id.clone(), |s| if let Step::Split { variants, .. } = s {
                            match variants_from_text(&text, variants) {
                                Some(parsed) if !parsed.is_empty() => *variants = parsed,
                                _ => ok = false,
                            }
                        });
                        invalid.set(!ok);
                    }/>
                </label>
                <label>{t("props.holdout")}
                    <input data-field="holdout" type="number" min="0" max="100" prop:value=holdout_percent.to_string() on:change=move |ev| {
                        let percent = event_target_value(&ev).parse().unwrap_or(0.0);
                        edit_step(editing, other.clone(), |s| if let Step::Split { holdout_percent, .. } = s { *holdout_percent = percent });
                    }/>
                </label>
            }
            .into_any()
        }
        Step::UpdateContact { set, .. } => {
            let invalid = RwSignal::new(false);
            let text = serde_json::to_string_pretty(&set).unwrap_or_default();
            view! {
                <label>{t("props.set")}
                    <textarea data-field="set" rows="5" class:invalid=invalid prop:value=text on:change=move |ev| {
                        match serde_json::from_str(&event_target_value(&ev)) {
                            Ok(parsed) => {
                                invalid.set(false);
                                edit_step(editing, id.clone(), |s| if let Step::UpdateContact { set, .. } = s { *set = parsed });
                            }
                            Err(_) => invalid.set(true),
                        }
                    }></textarea>
                </label>
                <Show when=move || invalid.get()><p class="error">{t("props.invalid_json")}</p></Show>
            }
            .into_any()
        }
        Step::Exit => ().into_any(),
    };
    view! {
        <h2 data-test="node-heading">{heading}</h2>
        {fields}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json_where_they_read_as_json() {
        assert_eq!(value_from_text("12"), Value::from(12));
        assert_eq!(value_from_text("true"), Value::Bool(true));
        assert_eq!(value_from_text("愛知県"), Value::from("愛知県"));
        assert_eq!(value_to_text(&Value::from("愛知県")), "愛知県");
        assert_eq!(value_to_text(&Value::from(12)), "12");
    }

    #[test]
    fn variants_keep_their_exits() {
        let old = vec![Variant {
            name: "A".into(),
            percent: 50.0,
            next: "email_1".into(),
        }];
        let parsed = variants_from_text("A: 40, B:40%, C:20", &old).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].next, "email_1");
        assert_eq!(parsed[1].percent, 40.0);
        assert_eq!(parsed[2].next, "");
        assert!(variants_from_text("A 40", &old).is_none());
        assert_eq!(variants_to_text(&parsed), "A:40, B:40, C:20");
    }

    #[test]
    fn a_new_entry_keeps_where_it_leads() {
        let old = Entry::Api {
            next: "email_1".into(),
        };
        let entry = entry_of_kind("segment_enter", &old);
        assert_eq!(entry.next(), "email_1");
        assert_eq!(entry.segment(), Some("all"));
        assert_eq!(entry_key(&entry_of_kind("schedule", &entry)), "schedule");
    }
}
