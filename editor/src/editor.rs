//! The flow canvas: palette, nodes and wires in SVG, pan and zoom, the toolbar (save,
//! publish, pause, resume, undo, redo, layout, predict), problems from the model's validation
//! on the nodes, and live counts once the flow runs.

use std::collections::{BTreeMap, BTreeSet};

use leptos::ev;
use leptos::html::Div;
use leptos::prelude::*;
use serde_json::{Value, json};
use tabiji_model::flow::{Flow, Step};

use crate::canvas::{self, ENTRY, History, Kind, NODE_WIDTH};
use crate::i18n::tf;
use crate::props::Properties;
use crate::{Session, api};

/// What a pointer held down is doing.
#[derive(Clone)]
enum Drag {
    Move {
        start: (f64, f64),
        origin: BTreeMap<String, (f64, f64)>,
        /// The flow before the move, for undo.
        before: Box<Flow>,
        moved: bool,
    },
    Connect {
        from: String,
        port: usize,
    },
    Place {
        kind: Kind,
    },
    Pan {
        start: (f64, f64),
        origin: (f64, f64),
        moved: bool,
    },
}

/// The canvas's state, shared by the toolbar, the canvas and the property panel.
#[derive(Clone, Copy)]
pub struct Editing {
    pub flow: RwSignal<Flow>,
    pub selected: RwSignal<BTreeSet<String>>,
    history: StoredValue<History>,
    revision: RwSignal<u64>,
}

impl Editing {
    /// Changes the flow as one undoable step.
    pub fn edit(&self, change: impl FnOnce(&mut Flow)) {
        let before = self.flow.get_untracked();
        let mut after = before.clone();
        change(&mut after);
        if after != before {
            self.history.update_value(|h| h.record(before));
            self.flow.set(after);
            self.revision.update(|r| *r += 1);
        }
    }

    fn undo(&self) {
        self.travel(History::undo);
    }

    fn redo(&self) {
        self.travel(History::redo);
    }

    /// Replaces the flow with the one `step` takes out of the history, if any.
    fn travel(&self, step: fn(&mut History, &Flow) -> Option<Flow>) {
        let current = self.flow.get_untracked();
        if let Some(other) = self
            .history
            .try_update_value(|h| step(h, &current))
            .flatten()
        {
            self.flow.set(other);
            self.revision.update(|r| *r += 1);
        }
    }

    fn delete_selected(&self) {
        let ids = self.selected.get_untracked();
        if !ids.is_empty() {
            self.edit(|f| canvas::delete_nodes(f, &ids));
            self.selected.set(BTreeSet::new());
        }
    }
}

/// Content the property panel offers: template keys with their channel, segment keys,
/// snippet keys.
#[derive(Clone, Default)]
pub struct Library {
    pub templates: Vec<(String, String)>,
    pub segments: Vec<(String, String)>,
    pub snippets: Vec<String>,
}

async fn load_library() -> Library {
    let items = |v: &Value, list: &str| v[list].as_array().cloned().unwrap_or_default();
    let mut library = Library::default();
    if let Ok(v) = api::get("/api/templates").await {
        library.templates = items(&v, "items")
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or_default().to_string(),
                    t["definition"]["channel"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
    }
    if let Ok(v) = api::get("/api/segments").await {
        library.segments = items(&v, "segments")
            .iter()
            .map(|s| {
                (
                    s["key"].as_str().unwrap_or_default().to_string(),
                    s["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
    }
    if let Ok(v) = api::get("/api/snippets").await {
        library.snippets = items(&v, "items")
            .iter()
            .filter_map(|s| s["key"].as_str().map(str::to_string))
            .collect();
    }
    library
}

/// Counts shown on a node: contacts waiting there now and steps taken there (live), or the
/// prediction of a dry run.
fn live_counts(stats: &Value, node: &str) -> Option<String> {
    let waiting = stats["waiting"][node].as_i64().unwrap_or(0);
    let passed: i64 = stats["steps"][node]
        .as_object()
        .map(|o| o.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0);
    (waiting > 0 || passed > 0).then(|| format!("⏳{waiting} ✓{passed}"))
}

fn predicted_counts(prediction: &Value, node: &str) -> Option<String> {
    let reached: i64 = prediction["nodes"][node]
        .as_object()
        .map(|o| o.values().filter_map(Value::as_i64).sum())?;
    Some(format!("≈{reached}"))
}

#[component]
pub fn FlowEditor(id: Option<i64>) -> impl IntoView {
    let session = expect_context::<Session>();
    let editing = Editing {
        flow: RwSignal::new(canvas::new_flow(&session.t("flows.new"))),
        selected: RwSignal::new(BTreeSet::new()),
        history: StoredValue::new(History::default()),
        revision: RwSignal::new(0),
    };
    provide_context(editing);
    let flow = editing.flow;
    let selected = editing.selected;
    // A new flow gets its id when first saved; the address follows without a new screen.
    let flow_id = RwSignal::new(id);
    let saved_revision = RwSignal::new(if id.is_some() { u64::MAX } else { 0 });
    let status = RwSignal::new("draft".to_string());
    let message = RwSignal::new(None::<(bool, String)>);
    let stats = RwSignal::new(Value::Null);
    let prediction = RwSignal::new(Value::Null);
    let library = RwSignal::new(Library::default());
    provide_context(library);
    let view_box = RwSignal::new((0.0_f64, 0.0_f64, 1.0_f64));
    // An existing flow may be saved only once it has been read: saving the empty canvas shown
    // meanwhile (or after a failed read) would overwrite the stored draft.
    let loaded = RwSignal::new(id.is_none());
    // A save or publish under way: a second one would create a second new flow.
    let busy = RwSignal::new(false);
    let drag = StoredValue::new(None::<Drag>);
    // The nodes a drag holds and how far it has moved them: a move redraws those nodes and
    // their wires only, and the flow changes once, when they are let go (a flow changed on
    // every move would redraw every node, port and wire of the canvas).
    let moving = RwSignal::new(BTreeSet::<String>::new());
    let offset = RwSignal::new((0.0_f64, 0.0_f64));
    // Where node `id` is drawn: where the flow has it, plus the drag's offset if the drag holds
    // it (only then is the offset read, so only those nodes follow each move).
    let shifted = move |(x, y): (f64, f64), id: &str| {
        if moving.with(|m| m.contains(id)) {
            let (dx, dy) = offset.get();
            ((x + dx).round(), (y + dy).round())
        } else {
            (x, y)
        }
    };
    let wire = RwSignal::new(None::<((f64, f64), (f64, f64))>);
    let ghost = RwSignal::new(None::<(Kind, (f64, f64))>);
    let surface = NodeRef::<Div>::new();

    leptos::task::spawn_local(async move { library.set(load_library().await) });
    if let Some(id) = id {
        leptos::task::spawn_local(async move {
            match api::get(&format!("/api/flows/{id}")).await {
                Ok(info) => match serde_json::from_value::<Flow>(info["draft"].clone()) {
                    Ok(mut draft) => {
                        canvas::place_unplaced(&mut draft);
                        flow.set(draft);
                        status.set(info["status"].as_str().unwrap_or("draft").to_string());
                        // The screen may have been left while the flow was read.
                        if let Some(revision) = editing.revision.try_get_untracked() {
                            saved_revision.set(revision);
                        }
                        loaded.set(true);
                    }
                    Err(e) => message.set(Some((false, format!("draft: {e}")))),
                },
                Err(e) => message.set(Some((false, session.explain(&e)))),
            }
        });
    }
    let refresh = move || {
        if let Some(id) = flow_id.get_untracked()
            && status.get_untracked() != "draft"
        {
            leptos::task::spawn_local(async move {
                if let Ok(v) = api::get(&format!("/api/flows/{id}/stats")).await {
                    stats.set(v);
                }
            });
        }
    };
    refresh();
    if let Ok(handle) = set_interval_with_handle(refresh, std::time::Duration::from_secs(5)) {
        on_cleanup(move || handle.clear());
    }

    let dirty = move || editing.revision.get() != saved_revision.get();
    let problems = Memo::new(move |_| flow.with(canvas::problems));

    // Where the canvas's top left corner is on the page.
    let surface_origin = move || {
        surface
            .get_untracked()
            .map(|el| {
                let r = el.get_bounding_client_rect();
                (r.left(), r.top())
            })
            .unwrap_or_default()
    };
    // Client coordinates to flow coordinates.
    let to_flow = move |x: f64, y: f64| -> (f64, f64) {
        let (left, top) = surface_origin();
        let (px, py, zoom) = view_box.get_untracked();
        ((x - left - px) / zoom, (y - top - py) / zoom)
    };

    let save = move |then_publish: bool| {
        if busy.get_untracked() || !loaded.get_untracked() {
            return;
        }
        busy.set(true);
        let body = serde_json::to_value(flow.get_untracked()).unwrap_or(Value::Null);
        let revision = editing.revision.get_untracked();
        let id = flow_id.get_untracked();
        leptos::task::spawn_local(async move {
            let stored = match id {
                Some(id) => api::put(&format!("/api/flows/{id}"), &body).await,
                None => api::post("/api/flows", &body).await,
            };
            let info = match stored {
                Ok(info) => info,
                Err(e) => {
                    busy.set(false);
                    return message.set(Some((false, session.explain(&e))));
                }
            };
            saved_revision.set(revision);
            let Some(stored_id) = info["id"].as_i64() else {
                return busy.set(false);
            };
            if id.is_none() {
                flow_id.set(Some(stored_id));
                replace_address(&format!("#/flows/{stored_id}"));
            }
            if !then_publish {
                message.set(Some((true, session.t("editor.saved"))));
            } else {
                match api::post(&format!("/api/flows/{stored_id}/publish"), &Value::Null).await {
                    Ok(info) => {
                        status.set(info["status"].as_str().unwrap_or("active").to_string());
                        let version = info["current_version"].as_i64().unwrap_or_default();
                        message.set(Some((
                            true,
                            tf(session.lang.get_untracked(), "editor.published", version),
                        )));
                    }
                    Err(e) => message.set(Some((false, session.explain(&e)))),
                }
            }
            busy.set(false);
        });
    };
    let set_status = move |wanted: &'static str| {
        let Some(id) = flow_id.get_untracked() else {
            return;
        };
        leptos::task::spawn_local(async move {
            match api::post(
                &format!("/api/flows/{id}/status"),
                &json!({ "status": wanted }),
            )
            .await
            {
                Ok(info) => status.set(info["status"].as_str().unwrap_or(wanted).to_string()),
                Err(e) => message.set(Some((false, session.explain(&e)))),
            }
        });
    };
    let predict = move || {
        let Some(id) = flow_id.get_untracked() else {
            return;
        };
        let body = serde_json::to_value(flow.get_untracked()).unwrap_or(Value::Null);
        let revision = editing.revision.get_untracked();
        leptos::task::spawn_local(async move {
            // The prediction is of the draft as drawn, so it is saved first.
            if let Err(e) = api::put(&format!("/api/flows/{id}"), &body).await {
                return message.set(Some((false, session.explain(&e))));
            }
            saved_revision.set(revision);
            match api::post(&format!("/api/flows/{id}/simulate"), &json!({})).await {
                Ok(v) => {
                    let contacts = v["contacts"].as_u64().unwrap_or_default();
                    message.set(Some((
                        true,
                        tf(session.lang.get_untracked(), "editor.predicted", contacts),
                    )));
                    prediction.set(v);
                }
                Err(e) => message.set(Some((false, session.explain(&e)))),
            }
        });
    };
    let add_at_free_spot = move |kind: Kind| {
        let (px, py, zoom) = view_box.get_untracked();
        let count = flow.with_untracked(|f| f.nodes.len()) as f64;
        let spot = (
            ((320.0 - px) / zoom + 20.0 * (count % 8.0)).round(),
            ((80.0 - py) / zoom + 20.0 * (count % 8.0)).round(),
        );
        let mut new_id = String::new();
        editing.edit(|f| new_id = canvas::add_node(f, kind, spot));
        selected.set(BTreeSet::from([new_id]));
    };
    let fit = move || {
        let (min_x, min_y) = flow.with_untracked(|f| {
            f.nodes
                .iter()
                .filter_map(|n| n.position)
                .chain([canvas::ENTRY_POSITION])
                .fold((f64::MAX, f64::MAX), |(x, y), (a, b)| (x.min(a), y.min(b)))
        });
        view_box.set((40.0 - min_x, 40.0 - min_y, 1.0));
    };

    // A press that ends outside the canvas (a palette item clicked, a drag let go elsewhere);
    // nodes moved that far stay moved, as one undoable step.
    let release = window_event_listener(ev::pointerup, move |_| {
        if let Some(Drag::Move {
            before,
            moved: true,
            ..
        }) = drag.get_value()
        {
            editing.history.update_value(|h| h.record(*before));
            editing.revision.update(|r| *r += 1);
        }
        drag.set_value(None);
        wire.set(None);
        ghost.set(None);
    });
    on_cleanup(move || release.remove());

    let on_pointer_down = move |ev: ev::PointerEvent| {
        if ev.button() != 0 {
            return;
        }
        let (px, py, _) = view_box.get_untracked();
        drag.set_value(Some(Drag::Pan {
            start: (ev.client_x() as f64, ev.client_y() as f64),
            origin: (px, py),
            moved: false,
        }));
    };
    let on_pointer_move = move |ev: ev::PointerEvent| {
        let (cx, cy) = (ev.client_x() as f64, ev.client_y() as f64);
        let Some(current) = drag.get_value() else {
            return;
        };
        match current {
            Drag::Pan {
                start,
                origin,
                moved,
            } => {
                let (dx, dy) = (cx - start.0, cy - start.1);
                if moved || dx.abs() + dy.abs() > 3.0 {
                    view_box.update(|v| {
                        v.0 = origin.0 + dx;
                        v.1 = origin.1 + dy;
                    });
                    drag.set_value(Some(Drag::Pan {
                        start,
                        origin,
                        moved: true,
                    }));
                }
            }
            Drag::Move {
                start,
                origin,
                before,
                ..
            } => {
                let zoom = view_box.get_untracked().2;
                let (dx, dy) = ((cx - start.0) / zoom, (cy - start.1) / zoom);
                if moving.with_untracked(BTreeSet::is_empty) {
                    moving.set(origin.keys().cloned().collect());
                }
                offset.set((dx, dy));
                drag.set_value(Some(Drag::Move {
                    start,
                    origin,
                    before,
                    moved: true,
                }));
            }
            Drag::Connect { from, port } => {
                let (x, y) = flow.with_untracked(|f| canvas::position(f, &from));
                let count = flow.with_untracked(|f| canvas::ports(f, &from).len());
                wire.set(Some((
                    (x + NODE_WIDTH, y + canvas::port_offset(port, count)),
                    to_flow(cx, cy),
                )));
            }
            Drag::Place { kind } => ghost.set(Some((kind, to_flow(cx, cy)))),
        }
    };
    let on_pointer_up = move |ev: ev::PointerEvent| {
        match drag.get_value() {
            Some(Drag::Pan { moved: false, .. }) => selected.set(BTreeSet::new()),
            Some(Drag::Move {
                before,
                origin,
                moved: true,
                ..
            }) => {
                let (dx, dy) = offset.get_untracked();
                flow.update(|f| canvas::move_nodes(f, &origin, dx, dy));
                moving.set(BTreeSet::new());
                offset.set((0.0, 0.0));
                editing.history.update_value(|h| h.record(*before));
                editing.revision.update(|r| *r += 1);
            }
            // An exit dragged out and let go on no node is opened again.
            Some(Drag::Connect { from, port }) => {
                editing.edit(|f| canvas::disconnect(f, &from, port));
            }
            Some(Drag::Place { kind }) => {
                let (x, y) = to_flow(ev.client_x() as f64, ev.client_y() as f64);
                let spot = (
                    (x - NODE_WIDTH / 2.0).round(),
                    (y - canvas::NODE_HEIGHT / 2.0).round(),
                );
                let mut new_id = String::new();
                editing.edit(|f| new_id = canvas::add_node(f, kind, spot));
                selected.set(BTreeSet::from([new_id]));
            }
            _ => {}
        }
        drag.set_value(None);
        wire.set(None);
        ghost.set(None);
    };
    let on_wheel = move |ev: ev::WheelEvent| {
        ev.prevent_default();
        let (left, top) = surface_origin();
        let (mx, my) = (ev.client_x() as f64 - left, ev.client_y() as f64 - top);
        view_box.update(|(px, py, zoom)| {
            let next = (*zoom * if ev.delta_y() < 0.0 { 1.1 } else { 1.0 / 1.1 }).clamp(0.25, 3.0);
            *px = mx - (mx - *px) * next / *zoom;
            *py = my - (my - *py) * next / *zoom;
            *zoom = next;
        });
    };
    let on_key = move |ev: ev::KeyboardEvent| {
        let ctrl = ev.ctrl_key() || ev.meta_key();
        let step = if ev.shift_key() { 50.0 } else { 10.0 };
        let nudge = |dx: f64, dy: f64| {
            let ids = selected.get_untracked();
            editing.edit(|f| {
                let origin = f
                    .nodes
                    .iter()
                    .filter(|n| ids.contains(&n.id))
                    .filter_map(|n| n.position.map(|p| (n.id.clone(), p)))
                    .collect();
                canvas::move_nodes(f, &origin, dx, dy);
            });
        };
        match ev.key().as_str() {
            "Delete" | "Backspace" => editing.delete_selected(),
            "z" | "Z" if ctrl && ev.shift_key() => editing.redo(),
            "z" if ctrl => editing.undo(),
            "y" if ctrl => editing.redo(),
            "a" if ctrl => selected
                .set(flow.with_untracked(|f| f.nodes.iter().map(|n| n.id.clone()).collect())),
            "ArrowLeft" => nudge(-step, 0.0),
            "ArrowRight" => nudge(step, 0.0),
            "ArrowUp" => nudge(0.0, -step),
            "ArrowDown" => nudge(0.0, step),
            "Escape" => selected.set(BTreeSet::new()),
            _ => return,
        }
        ev.prevent_default();
    };

    let node_ids =
        Memo::new(move |_| flow.with(|f| f.nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>()));

    let render_node = move |id: String| {
        let is_entry = id == ENTRY;
        let kind_key = {
            let id = id.clone();
            move || {
                if is_entry {
                    "entry".to_string()
                } else {
                    flow.with(|f| {
                        f.node(&id)
                            .map(|n| Kind::of(&n.step).key().to_string())
                            .unwrap_or_default()
                    })
                }
            }
        };
        let title = {
            let kind_key = kind_key.clone();
            move || session.t(&format!("kind.{}", kind_key()))
        };
        let summary = {
            let id = id.clone();
            move || flow.with(|f| summary(f, &id))
        };
        let transform = {
            let id = id.clone();
            move || {
                let (x, y) = shifted(flow.with(|f| canvas::position(f, &id)), &id);
                format!("translate({x},{y})")
            }
        };
        let height = {
            let id = id.clone();
            move || flow.with(|f| canvas::node_height(canvas::ports(f, &id).len()))
        };
        let is_selected = {
            let id = id.clone();
            move || selected.with(|s| s.contains(&id))
        };
        let problem_text = {
            let id = id.clone();
            move || problems.with(|p| p.get(&id).map(|list| list.join("\n")))
        };
        let has_problem = {
            let problem_text = problem_text.clone();
            move || problem_text().is_some()
        };
        let counts = {
            let id = id.clone();
            move || {
                stats
                    .with(|s| live_counts(s, &id))
                    .or_else(|| prediction.with(|p| predicted_counts(p, &id)))
            }
        };
        let ports = {
            let id = id.clone();
            move || {
                let list = flow.with(|f| canvas::ports(f, &id));
                let count = list.len();
                list.into_iter()
                    .enumerate()
                    .map(|(index, port)| {
                        let from = id.clone();
                        let y = canvas::port_offset(index, count);
                        let label = session.t(&format!("port.{}", port.label));
                        let label = if label.starts_with("port.") {
                            port.label.clone()
                        } else {
                            label
                        };
                        let connected = !port.target.is_empty();
                        view! {
                            <g class="port" class:connected=connected
                                data-port=index.to_string() data-port-name=port.label.clone()
                                on:pointerdown=move |ev: ev::PointerEvent| {
                                    ev.stop_propagation();
                                    ev.prevent_default();
                                    drag.set_value(Some(Drag::Connect { from: from.clone(), port: index }));
                                }>
                                <text x=(NODE_WIDTH - 10.0).to_string() y=(y + 4.0).to_string() text-anchor="end" class="port-label">{label}</text>
                                <circle cx=NODE_WIDTH.to_string() cy=y.to_string() r="7"/>
                            </g>
                        }
                    })
                    .collect_view()
            }
        };
        let on_down = {
            let id = id.clone();
            move |ev: ev::PointerEvent| {
                ev.stop_propagation();
                if ev.button() != 0 || is_entry {
                    selected.set(BTreeSet::new());
                    return;
                }
                let mut chosen = selected.get_untracked();
                if ev.shift_key() {
                    if !chosen.remove(&id) {
                        chosen.insert(id.clone());
                    }
                } else if !chosen.contains(&id) {
                    chosen = BTreeSet::from([id.clone()]);
                }
                selected.set(chosen.clone());
                let origin = flow.with_untracked(|f| {
                    f.nodes
                        .iter()
                        .filter(|n| chosen.contains(&n.id))
                        .filter_map(|n| n.position.map(|p| (n.id.clone(), p)))
                        .collect()
                });
                drag.set_value(Some(Drag::Move {
                    start: (ev.client_x() as f64, ev.client_y() as f64),
                    origin,
                    before: Box::new(flow.get_untracked()),
                    moved: false,
                }));
            }
        };
        let on_up = {
            let id = id.clone();
            move |_: ev::PointerEvent| {
                if let Some(Drag::Connect { from, port }) = drag.get_value()
                    && !is_entry
                {
                    editing.edit(|f| {
                        let _ = canvas::connect(f, &from, port, &id);
                    });
                    drag.set_value(None);
                }
            }
        };
        view! {
            <g class="node" class:entry=is_entry class:selected=is_selected class:invalid=has_problem
                data-problems=problem_text data-node=id.clone() data-kind=kind_key.clone() transform=transform
                on:pointerdown=on_down on:pointerup=on_up>
                <rect class="body" width=NODE_WIDTH.to_string() height=move || height().to_string() rx="8"/>
                <text class="title" x="14" y="24">{title}</text>
                <text class="summary" x="14" y="46">{summary}</text>
                <text class="counts" x="14" y=(canvas::NODE_HEIGHT - 6.0).to_string()>{counts}</text>
                {(!is_entry).then(|| view! { <circle class="input" cx="0" cy=(canvas::NODE_HEIGHT / 2.0).to_string() r="6"/> })}
                {ports}
            </g>
        }
    };

    let wires = move || {
        // Drawn again when the flow changes or a drag starts or ends; in between, only the
        // wires of the nodes a drag holds follow it.
        moving.track();
        flow.with(|f| {
            std::iter::once(ENTRY.to_string())
                .chain(f.nodes.iter().map(|n| n.id.clone()))
                .flat_map(|from| {
                    let list = canvas::ports(f, &from);
                    let count = list.len();
                    let (x, y) = canvas::position(f, &from);
                    list.into_iter()
                        .enumerate()
                        .filter(|(_, p)| f.node(&p.target).is_some())
                        .map(move |(index, port)| {
                            let (tx, ty) = canvas::position(f, &port.target);
                            let (from_id, to_id) = (from.clone(), port.target.clone());
                            let d = move || {
                                let (x, y) = shifted((x, y), &from_id);
                                let (tx, ty) = shifted((tx, ty), &to_id);
                                let start = (x + NODE_WIDTH, y + canvas::port_offset(index, count));
                                curve(start, (tx, ty + canvas::NODE_HEIGHT / 2.0))
                            };
                            view! {
                                <path class="wire" data-from=from.clone() data-to=port.target.clone() d=d/>
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect_view()
        })
    };

    let palette = Kind::ALL
        .into_iter()
        .map(|kind| {
            view! {
                <button class="palette-item" data-kind=kind.key()
                    on:pointerdown=move |ev: ev::PointerEvent| {
                        ev.prevent_default();
                        drag.set_value(Some(Drag::Place { kind }));
                    }
                    on:click=move |_| add_at_free_spot(kind)>
                    {move || session.t(&format!("kind.{}", kind.key()))}
                </button>
            }
        })
        .collect_view();

    let status_text = move || session.t(&format!("status.{}", status.get()));
    view! {
        <section class="editor">
            <div class="toolbar">
                <input class="flow-name" data-test="flow-name" prop:value=move || flow.with(|f| f.name.clone())
                    on:change=move |ev| { let v = event_target_value(&ev); editing.edit(|f| f.name = v) }/>
                <span class=move || format!("status {}", status.get()) data-test="status">{status_text}</span>
                <span class="dirty" data-test="dirty">{move || dirty().then(|| session.t("editor.unsaved"))}</span>
                <span class="spacer"></span>
                <button data-test="undo" disabled=move || { editing.revision.get(); !editing.history.with_value(History::can_undo) } on:click=move |_| editing.undo()>{move || session.t("editor.undo")}</button>
                <button data-test="redo" disabled=move || { editing.revision.get(); !editing.history.with_value(History::can_redo) } on:click=move |_| editing.redo()>{move || session.t("editor.redo")}</button>
                <button data-test="layout" on:click=move |_| editing.edit(canvas::auto_layout)>{move || session.t("editor.layout")}</button>
                <button data-test="delete" disabled=move || selected.with(BTreeSet::is_empty) on:click=move |_| editing.delete_selected()>{move || session.t("editor.delete")}</button>
                <button data-test="zoom-out" on:click=move |_| view_box.update(|v| v.2 = (v.2 / 1.25).max(0.25))>"−"</button>
                <button data-test="zoom-in" on:click=move |_| view_box.update(|v| v.2 = (v.2 * 1.25).min(3.0))>"+"</button>
                <button data-test="fit" on:click=move |_| fit()>{move || session.t("editor.fit")}</button>
                <button data-test="predict" disabled=move || flow_id.with(Option::is_none) || !loaded.get() on:click=move |_| predict()>{move || session.t("editor.predict")}</button>
                <button data-test="save" class="primary" disabled=move || busy.get() || !loaded.get() on:click=move |_| save(false)>{move || session.t("editor.save")}</button>
                <button data-test="publish" class="primary" disabled=move || busy.get() || !loaded.get() on:click=move |_| save(true)>{move || session.t("editor.publish")}</button>
                <Show when=move || status.get() == "active">
                    <button data-test="pause" on:click=move |_| set_status("paused")>{move || session.t("editor.pause")}</button>
                </Show>
                <Show when=move || status.get() == "paused">
                    <button data-test="resume" on:click=move |_| set_status("active")>{move || session.t("editor.resume")}</button>
                </Show>
            </div>
            <p class="message" data-test="message" role="status"
                class:error=move || message.with(|m| matches!(m, Some((false, _))))>
                {move || message.get().map(|(_, text)| text)}
            </p>
            <div class="workspace">
                <aside class="palette">
                    <h2>{move || session.t("editor.palette")}</h2>
                    <p class="hint">{move || session.t("editor.palette_hint")}</p>
                    {palette}
                </aside>
                <div class="surface" node_ref=surface tabindex="0" data-test="canvas"
                    on:pointerdown=on_pointer_down on:pointermove=on_pointer_move
                    on:pointerup=on_pointer_up on:wheel=on_wheel on:keydown=on_key>
                    <svg class="canvas">
                        <g transform=move || { let (x, y, z) = view_box.get(); format!("translate({x},{y}) scale({z})") }>
                            {wires}
                            {move || wire.get().map(|(a, b)| view! { <path class="wire pending" d=curve(a, b)/> })}
                            {render_node(ENTRY.to_string())}
                            <For each=move || node_ids.get() key=|id| id.clone() children=render_node/>
                            {move || ghost.get().map(|(kind, (x, y))| view! {
                                <g class="node ghost" transform=format!("translate({},{})", x - NODE_WIDTH / 2.0, y - canvas::NODE_HEIGHT / 2.0)>
                                    <rect class="body" width=NODE_WIDTH.to_string() height=canvas::NODE_HEIGHT.to_string() rx="8"/>
                                    <text class="title" x="14" y="24">{session.t(&format!("kind.{}", kind.key()))}</text>
                                </g>
                            })}
                        </g>
                    </svg>
                    <p class="keys">{move || session.t("editor.keys")}</p>
                </div>
                <aside class="side">
                    <Properties/>
                    <h2>{move || session.t("editor.problems")}</h2>
                    <ul class="problems" data-test="problems">
                        {move || {
                            let list = problems.get();
                            if list.is_empty() {
                                return view! { <li class="ok">{session.t("editor.no_problems")}</li> }.into_any();
                            }
                            list.into_iter()
                                .flat_map(|(at, messages)| messages.into_iter().map(move |m| (at.clone(), m)))
                                .map(|(at, m)| {
                                    let target = at.clone();
                                    let label = at.clone();
                                    view! {
                                        <li data-at=at on:click=move |_| {
                                            if flow.with_untracked(|f| f.node(&target).is_some()) {
                                                selected.set(BTreeSet::from([target.clone()]));
                                            }
                                        }><b>{label}</b>": "{m}</li>
                                    }
                                })
                                .collect_view()
                                .into_any()
                        }}
                    </ul>
                </aside>
            </div>
        </section>
    }
}

/// Shows `hash` in the address bar without leaving the screen (no `hashchange`).
fn replace_address(hash: &str) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(hash));
    }
}

/// A wire from an exit to an input: a horizontal S-curve.
fn curve((x1, y1): (f64, f64), (x2, y2): (f64, f64)) -> String {
    let bend = ((x2 - x1).abs() / 2.0).max(40.0);
    format!(
        "M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}",
        x1 + bend,
        x2 - bend
    )
}

/// One line under a node's title: what it does.
fn summary(flow: &Flow, id: &str) -> String {
    if id == ENTRY {
        return match &flow.entry {
            tabiji_model::flow::Entry::Api { .. } => "API".into(),
            tabiji_model::flow::Entry::Event { event, .. } => event.clone(),
            tabiji_model::flow::Entry::Schedule { cron, segment, .. } => {
                format!("{} · {segment}", cron.clone().unwrap_or_default())
            }
            other => other.segment().unwrap_or_default().to_string(),
        };
    }
    let Some(node) = flow.node(id) else {
        return String::new();
    };
    let text = match &node.step {
        Step::Send { template, .. } => template.clone(),
        Step::Wait { duration, .. } => duration.clone(),
        Step::WaitUntil { time, weekdays, .. } => format!("{time} {}", weekdays.join(",")),
        Step::WaitForEvent { event, timeout, .. } => {
            let what = match event {
                tabiji_model::flow::Awaited::Opened { of } => format!("opened {of}"),
                tabiji_model::flow::Awaited::Clicked { of } => format!("clicked {of}"),
                tabiji_model::flow::Awaited::Purchased => "purchased".into(),
                tabiji_model::flow::Awaited::Event { name } => name.clone(),
            };
            format!("{what} · {timeout}")
        }
        Step::Branch {
            field, op, value, ..
        } => format!("{field} {op} {value}"),
        Step::Condition { snippet, .. } => snippet.clone(),
        Step::Split { variants, .. } => variants
            .iter()
            .map(|v| format!("{} {}%", v.name, v.percent))
            .collect::<Vec<_>>()
            .join(" / "),
        Step::UpdateContact { set, .. } => set.keys().cloned().collect::<Vec<_>>().join(", "),
        Step::Exit => String::new(),
    };
    let mut short: String = text.chars().take(24).collect();
    if text.chars().count() > 24 {
        short.push('…');
    }
    short
}
