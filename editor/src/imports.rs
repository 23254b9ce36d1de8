//! The import screen (`#/imports`, `#/imports/{id}`): a partner file sent through an import
//! flow with a progress bar (the upload, then the server reading it), the run's counts as they
//! grow, its rejected rows with line and reason and their CSV download, the flows that fetch
//! their own files fetched now, and the import history.

use leptos::html::Input;
use leptos::prelude::*;
use serde_json::Value;
use tabiji_model::Op;
use tabiji_model::import::ImportFlow;

use crate::Session;
use crate::api;
use crate::intake::{self, COUNTS, Stage};
use crate::record::{grouped, when};

/// How often a running import is looked at again.
const FOLLOW_EVERY_MS: i32 = 400;
/// Runs the history shows.
const HISTORY_LIMIT: u32 = 50;
/// Rejected rows shown on screen; the download holds them all.
const REJECTS_SHOWN: usize = 100;

/// Shows `#/imports/{id}` without reloading the screen, so a reload shows the run again.
fn show_in_address(id: i64) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("#/imports/{id}")),
        );
    }
}

#[component]
pub fn ImportScreen(run: Option<i64>) -> impl IntoView {
    let session = expect_context::<Session>();
    let flows = RwSignal::new(Vec::<(String, ImportFlow)>::new());
    let labels = RwSignal::new(Vec::<(String, Value)>::new());
    let problem = RwSignal::new(None::<String>);
    let followed = RwSignal::new(run);
    // Bumped when a run ends or starts, so the history shows it.
    let revision = RwSignal::new(0_u64);
    // The entities' names first, so a flow is never shown with its entity's key.
    leptos::task::spawn_local(async move {
        let _ = labels.try_set(api::entity_labels().await);
        match api::get("/api/imports/flows").await {
            Ok(answer) => flows.set(
                answer["flows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|saved| {
                        let key = saved["key"].as_str()?.to_string();
                        let flow = serde_json::from_value(saved["definition"].clone()).ok()?;
                        Some((key, flow))
                    })
                    .collect(),
            ),
            Err(e) => problem.set(Some(session.explain(&e))),
        }
    });
    let entity_label = move |entity: &str| {
        labels.with(|l| {
            l.iter()
                .find(|(name, _)| name == entity)
                .and_then(|(_, label)| label[session.lang.get().code()].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| entity.to_string())
        })
    };
    view! {
        <section class="imports-screen">
            <div class="toolbar"><h1>{move || session.t("nav.imports")}</h1></div>
            <p class="error" role="alert">{move || problem.get()}</p>
            <div class="imports-layout">
                <SendFile flows=flows followed=followed revision=revision entity_label=entity_label/>
                {move || followed.get().map(|id| view! { <RunPanel id=id revision=revision/> })}
            </div>
            <History revision=revision followed=followed/>
        </section>
    }
}

/// A flow picked, a file chosen and sent, with the upload's progress; or a fetching flow's
/// files fetched now.
#[component]
fn SendFile(
    flows: RwSignal<Vec<(String, ImportFlow)>>,
    followed: RwSignal<Option<i64>>,
    revision: RwSignal<u64>,
    entity_label: impl Fn(&str) -> String + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let chosen = RwSignal::new(String::new());
    let has_file = RwSignal::new(false);
    let sending = RwSignal::new(None::<Stage>);
    let message = RwSignal::new(None::<(bool, String)>);
    let file_input = NodeRef::<Input>::new();
    // The first flow is offered until another is chosen.
    Effect::new(move |_| {
        if chosen.with_untracked(String::is_empty)
            && let Some((key, _)) = flows.with(|f| f.first().cloned())
        {
            chosen.set(key);
        }
    });
    let flow = move || {
        let key = chosen.get();
        flows.with(|f| f.iter().find(|(k, _)| *k == key).map(|(_, f)| f.clone()))
    };
    let send = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(file) = file_input
            .get_untracked()
            .and_then(|input| input.files())
            .and_then(|files| files.get(0))
        else {
            return;
        };
        let path = intake::run_path(&chosen.get_untracked(), &file.name());
        sending.set(Some(Stage::Sending(0)));
        message.set(None);
        leptos::task::spawn_local(async move {
            let answer = api::upload(&path, &file, move |loaded, total| {
                let _ = sending.try_set(Some(Stage::Sending(intake::percent(loaded, total))));
            })
            .await;
            let _ = sending.try_set(None);
            match answer {
                Ok(run) => {
                    if let Some(id) = run["id"].as_i64() {
                        show_in_address(id);
                        let _ = followed.try_set(Some(id));
                        let _ = revision.try_update(|r| *r += 1);
                    }
                }
                Err(e) => {
                    let _ = message.try_set(Some((false, session.explain(&e))));
                }
            }
        });
    };
    let fetch = move |_| {
        let key = chosen.get_untracked();
        message.set(Some((true, session.t("imports.fetching"))));
        leptos::task::spawn_local(async move {
            let path = format!("/api/imports/flows/{}/fetch", api::encoded(&key));
            let said = match api::post(&path, &Value::Null).await {
                Ok(answer) => {
                    let runs = answer["runs"].as_array().cloned().unwrap_or_default();
                    if let Some(id) = runs.last().and_then(|r| r["id"].as_i64()) {
                        show_in_address(id);
                        let _ = followed.try_set(Some(id));
                    }
                    let _ = revision.try_update(|r| *r += 1);
                    (true, session.tf("imports.fetched", runs.len()))
                }
                Err(e) => (false, session.explain(&e)),
            };
            let _ = message.try_set(Some(said));
        });
    };
    let busy = move || sending.with(Option::is_some);
    view! {
        <form class="send-file" data-test="send-file" on:submit=send>
            <h2>{move || session.t("imports.send")}</h2>
            <label class="field">{move || session.t("imports.flow")}
                <select data-test="import-flow" prop:value=chosen
                    on:change=move |ev| chosen.set(event_target_value(&ev))>
                    {move || flows.get().into_iter().map(|(key, flow)| {
                        let selected = chosen.with_untracked(|c| *c == key);
                        view! { <option value=key.clone() selected=selected>{format!("{} ({key})", flow.name)}</option> }
                    }).collect_view()}
                </select>
            </label>
            {move || flow().map(|f| view! {
                <p class="flow-summary" data-test="flow-summary">
                    {format!("{} · {} · {}", entity_label(&f.entity), session.t(intake::source_key(&f)),
                        session.tf("imports.columns", f.columns.len()))}
                </p>
            })}
            <Show when=move || flows.with(Vec::is_empty)>
                <p class="hint">{move || session.t("imports.no_flows")}</p>
            </Show>
            <label class="field">{move || session.t("imports.file")}
                <input type="file" data-test="import-file" node_ref=file_input
                    accept=move || flow().map(|f| intake::accepts(&f)).unwrap_or_default()
                    on:change=move |ev| {
                        let count = event_target::<web_sys::HtmlInputElement>(&ev)
                            .files()
                            .map_or(0, |files| files.length());
                        has_file.set(count > 0);
                    }/>
            </label>
            <div class="actions">
                <button type="submit" class="primary" data-test="import-start"
                    disabled=move || busy() || !has_file.get() || flow().is_none()>
                    {move || session.t("imports.start")}
                </button>
                {move || flow().filter(intake::fetches).map(|_| view! {
                    <button type="button" data-test="import-fetch" disabled=busy on:click=fetch>
                        {session.t("imports.fetch")}
                    </button>
                })}
            </div>
            {move || sending.get().map(|stage| progress_bar(stage, session))}
            <p class="message" class:error=move || message.with(|m| matches!(m, Some((false, _))))
                role="status" data-test="import-message">
                {move || message.get().map(|(_, text)| text)}
            </p>
        </form>
    }
}

fn progress_bar(stage: Stage, session: Session) -> impl IntoView {
    let words = session.tf(&format!("imports.stage.{}", stage.name()), stage.percent());
    view! {
        <div class="import-progress" data-test="import-progress" data-stage=stage.name()>
            <progress max="100" prop:value=f64::from(stage.percent()) aria-label=words.clone()></progress>
            <span>{words}</span>
        </div>
    }
}

/// One run, looked at again until it ends: its progress, counts, error and rejected rows.
#[component]
fn RunPanel(id: i64, revision: RwSignal<u64>) -> impl IntoView {
    let session = expect_context::<Session>();
    let run = RwSignal::new(None::<Value>);
    let rejects = RwSignal::new(None::<Result<Vec<Value>, String>>);
    let problem = RwSignal::new(None::<String>);
    leptos::task::spawn_local(async move {
        loop {
            match api::get(&format!("/api/imports/{id}")).await {
                Ok(answer) => {
                    let running = matches!(intake::stage_of(&answer), Stage::Reading(_));
                    if run.try_set(Some(answer)).is_some() {
                        return; // the panel is gone
                    }
                    if !running {
                        break;
                    }
                }
                Err(e) => {
                    let _ = problem.try_set(Some(session.explain(&e)));
                    return;
                }
            }
            api::pause(FOLLOW_EVERY_MS).await;
        }
        let _ = revision.try_update(|r| *r += 1);
        let rejected = run
            .try_with_untracked(|r| r.as_ref().and_then(|r| r["rejected"].as_i64()))
            .flatten()
            .unwrap_or(0);
        if rejected == 0 {
            return;
        }
        let answer = api::get(&format!("/api/imports/{id}/rejected?format=json")).await;
        let _ = rejects.try_set(Some(match answer {
            Ok(body) => Ok(body["rejected"].as_array().cloned().unwrap_or_default()),
            Err(e) => Err(session.explain(&e)),
        }));
    });
    let header = move || {
        run.get().map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            let lang = session.lang.get();
            view! {
                <h2>{session.tf("imports.run", id)}</h2>
                <dl class="run-facts">
                    <dt>{session.t("imports.file")}</dt><dd data-test="run-file">{text("file_name")}</dd>
                    <dt>{session.t("imports.flow")}</dt><dd>{text("flow")}</dd>
                    <dt>{session.t("imports.started")}</dt>
                    <dd>{format!("{} · {}", when(&text("started_at"), lang), text("started_by"))}</dd>
                    <dt>{session.t("imports.size")}</dt>
                    <dd>{format!("{}{}", intake::size_text(r["file_bytes"].as_i64().unwrap_or_default()),
                        r["encoding"].as_str().map(|e| format!(" · {e}")).unwrap_or_default())}</dd>
                </dl>
                {progress_bar(intake::stage_of(&r), session)}
                {r["error"].as_str().map(|e| view! { <p class="error" data-test="run-error">{e.to_string()}</p> })}
            }
        })
    };
    let counts = move || {
        run.get().map(|r| {
            view! {
                <table class="counts" data-test="run-counts">
                    <tr>{COUNTS.iter().map(|c| view! { <th>{session.t(&format!("imports.count.{c}"))}</th> }).collect_view()}</tr>
                    <tr>{COUNTS.iter().map(|c| view! {
                        <td data-count=*c>{grouped(r[*c].as_i64().unwrap_or_default())}</td>
                    }).collect_view()}</tr>
                </table>
            }
        })
    };
    let rejected = move || {
        rejects.get().map(|answer| match answer {
            Err(why) => view! { <p class="hint" data-test="rejects-hidden">{why}</p> }.into_any(),
            Ok(rows) => {
                let more = rows.len().saturating_sub(REJECTS_SHOWN);
                let shown = rows
                    .into_iter()
                    .take(REJECTS_SHOWN)
                    .map(|row| {
                        let text = |k: &str| row[k].as_str().unwrap_or_default().to_string();
                        view! {
                            <tr>
                                <td>{row["line"].as_u64().unwrap_or_default()}</td>
                                <td>{text("field")}</td>
                                <td>{text("reason")}</td>
                                <td><code>{text("raw")}</code></td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <h3>{session.t("imports.rejected_rows")}</h3>
                    <a class="button" data-test="rejects-download" download=format!("import-{id}-rejected.csv")
                        href=format!("/api/imports/{id}/rejected")>{session.t("imports.download")}</a>
                    <table class="records rejects" data-test="rejects">
                        <thead><tr>
                            <th>{session.t("imports.line")}</th>
                            <th>{session.t("imports.field")}</th>
                            <th>{session.t("imports.reason")}</th>
                            <th>{session.t("imports.row")}</th>
                        </tr></thead>
                        <tbody>{shown}</tbody>
                    </table>
                    {(more > 0).then(|| view! { <p class="hint">{session.tf("imports.more_rejects", more)}</p> })}
                }
                .into_any()
            }
        })
    };
    view! {
        <div class="run-panel" data-test="run-panel" data-run=id>
            <p class="error" role="alert">{move || problem.get()}</p>
            {header}
            {counts}
            {rejected}
        </div>
    }
}

/// The latest runs the user may see, newest first.
#[component]
fn History(revision: RwSignal<u64>, followed: RwSignal<Option<i64>>) -> impl IntoView {
    let session = expect_context::<Session>();
    let runs = RwSignal::new(Vec::<Value>::new());
    Effect::new(move |_| {
        revision.track();
        leptos::task::spawn_local(async move {
            if let Ok(answer) = api::get(&format!("/api/imports?limit={HISTORY_LIMIT}")).await {
                let _ = runs.try_set(answer["imports"].as_array().cloned().unwrap_or_default());
            }
        });
    });
    let rows = move || {
        let lang = session.lang.get();
        runs.get()
            .into_iter()
            .map(|r| {
                let id = r["id"].as_i64().unwrap_or_default();
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                let stage = intake::stage_of(&r);
                let current = move || followed.get() == Some(id);
                view! {
                    <tr data-run=id class:current=current>
                        <td><a href=format!("#/imports/{id}")>{when(&text("started_at"), lang)}</a></td>
                        <td>{text("flow")}</td>
                        <td>{text("file_name")}</td>
                        <td>{text("started_by")}</td>
                        <td class=format!("status {}", stage.name())>
                            {session.tf(&format!("imports.stage.{}", stage.name()), stage.percent())}
                        </td>
                        {COUNTS.iter().map(|c| view! { <td class="number">{grouped(r[*c].as_i64().unwrap_or_default())}</td> }).collect_view()}
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <h2>{move || session.t("imports.history")}</h2>
        <table class="records history" data-test="import-history">
            <thead><tr>
                <th>{move || session.t("imports.started")}</th>
                <th>{move || session.t("imports.flow")}</th>
                <th>{move || session.t("imports.file")}</th>
                <th>{move || session.t("imports.by")}</th>
                <th>{move || session.t("imports.status")}</th>
                {move || COUNTS.iter().map(|c| view! { <th>{session.t(&format!("imports.count.{c}"))}</th> }).collect_view()}
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// Whether the user may import into anything, so the screen is offered.
pub fn offered(session: Session) -> bool {
    session.rights().allows_somewhere(Op::Import)
}
