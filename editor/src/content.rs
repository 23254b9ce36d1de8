//! The content screen (`#/content`, `#/content/{kind}/{key}`): templates, parts and snippets
//! listed by kind; one opened in a form that saves a new version, with its earlier versions
//! to load back; a template previewed for a tourist as it is on screen, before it is saved; a
//! snippet test-run for a tourist, its errors pointing at the line and column in the code.
//! Opening a key that is not saved starts a new one.

use leptos::html::{Form, Input, Textarea};
use leptos::prelude::*;
use serde_json::{Map, Value, json};
use tabiji_model::Op;

use crate::api::{self, ApiError};
use crate::draft::{self, Kind, text_of};
use crate::record;
use crate::{Session, go_to};

/// What a refused save, preview or run says: each input's refusals under it, the rest in the
/// message.
fn refused(
    session: Session,
    error: &ApiError,
    errors: RwSignal<Map<String, Value>>,
    message: RwSignal<Option<(bool, String)>>,
) {
    let by_input = match error {
        ApiError::Refused { details, .. } => draft::refusals(details),
        _ => Map::new(),
    };
    let said = if by_input.is_empty() {
        session.explain(error)
    } else {
        session.t("content.refused")
    };
    errors.set(by_input);
    message.set(Some((false, said)));
}

#[component]
pub fn ContentScreen(kind: Option<Kind>, key: Option<String>) -> impl IntoView {
    let session = expect_context::<Session>();
    let index = RwSignal::new(Map::<String, Value>::new());
    let problem = RwSignal::new(None::<String>);
    // Bumped by a save or a deletion, so the lists show it.
    let revision = RwSignal::new(0_u64);
    let viewable = move || {
        let rights = session.rights();
        Kind::ALL
            .into_iter()
            .filter(|k| rights.allows(k.rights_entity(), Op::View))
            .collect::<Vec<_>>()
    };
    Effect::new(move |_| {
        revision.track();
        for kind in viewable() {
            leptos::task::spawn_local(async move {
                match api::get(&format!("/api/{}", kind.path())).await {
                    Ok(answer) => index.update(|i| {
                        i.insert(kind.path().into(), answer["items"].clone());
                    }),
                    Err(e) => problem.set(Some(session.explain(&e))),
                }
            });
        }
    });
    let selected = key.clone();
    let lists = move || {
        let rights = session.rights();
        viewable()
            .into_iter()
            .map(|k| {
                let items = index.with(|i| {
                    i.get(k.path())
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                });
                let rows = items
                    .into_iter()
                    .map(|item| {
                        let name = item["key"].as_str().unwrap_or_default().to_string();
                        let current = kind == Some(k) && selected.as_deref() == Some(name.as_str());
                        view! {
                            <li class:current=current>
                                <a href=format!("#/content/{}/{name}", k.path()) data-key=name.clone()>{name.clone()}</a>
                                <small>{format!("v{}", item["version"])}</small>
                            </li>
                        }
                    })
                    .collect_view();
                let may_create = rights.allows(k.rights_entity(), Op::Create);
                view! {
                    <div class="content-kind" data-kind=k.path()>
                        <h2>{session.t(&format!("content.{}", k.path()))}</h2>
                        <ul>{rows}</ul>
                        {may_create.then(|| view! { <NewItem kind=k/> })}
                    </div>
                }
            })
            .collect_view()
    };
    let opened = match (kind, key) {
        (Some(kind), Some(key)) => view! { <ContentEditor kind=kind key=key revision=revision/> }.into_any(),
        _ => view! { <p class="hint" data-test="content-hint">{move || session.t("content.pick")}</p> }.into_any(),
    };
    view! {
        <section class="content-screen">
            <div class="toolbar"><h1>{move || session.t("nav.content")}</h1></div>
            <p class="error" role="alert">{move || problem.get()}</p>
            <div class="content-layout">
                <aside class="content-index" data-test="content-index">{lists}</aside>
                <div class="content-body">{opened}</div>
            </div>
        </section>
    }
}

/// A key for a new item, checked as the server will check it; opening it starts the form.
#[component]
fn NewItem(kind: Kind) -> impl IntoView {
    let session = expect_context::<Session>();
    let key = RwSignal::new(String::new());
    let failure = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = key.get_untracked().trim().to_string();
        match tabiji_model::content::check_key(&name) {
            Ok(()) => {
                failure.set(None);
                key.set(String::new());
                go_to(&format!("#/content/{}/{name}", kind.path()));
            }
            Err(why) => failure.set(Some(why)),
        }
    };
    view! {
        <form class="new-item" data-test=format!("new-{}", kind.path()) on:submit=submit>
            <input placeholder=move || session.t("content.new_key") prop:value=key
                on:input=move |ev| key.set(event_target_value(&ev))/>
            <button type="submit">{move || session.t("content.new")}</button>
            <span class="field-error">{move || failure.get()}</span>
        </form>
    }
}

#[component]
fn ContentEditor(kind: Kind, key: String, revision: RwSignal<u64>) -> impl IntoView {
    let session = expect_context::<Session>();
    let path = StoredValue::new(format!("/api/{}/{key}", kind.path()));
    let texts = RwSignal::new(draft::texts(kind, None));
    let saved = RwSignal::new(None::<Value>);
    let versions = RwSignal::new(Vec::<Value>::new());
    let errors = RwSignal::new(Map::<String, Value>::new());
    let message = RwSignal::new(None::<(bool, String)>);
    let tourist = RwSignal::new(String::new());
    let source_box = NodeRef::<Textarea>::new();
    let frame_form = NodeRef::<Form>::new();
    let frame_definition = NodeRef::<Input>::new();
    let frame_contact = NodeRef::<Input>::new();
    // The HTML goes to the frame as a page of its own, which may keep its inline styles and
    // pictures: a frame written by the editor would inherit the editor's stricter policy.
    let show_in_frame = move |definition: &Value, contact: &str| {
        if let (Some(form), Some(draft), Some(tourist)) = (
            frame_form.get_untracked(),
            frame_definition.get_untracked(),
            frame_contact.get_untracked(),
        ) {
            draft.set_value(&definition.to_string());
            tourist.set_value(contact);
            let _ = form.submit();
        }
    };

    let load_versions = move || {
        leptos::task::spawn_local(async move {
            if let Ok(answer) = api::get(&format!("{}/versions", path.get_value())).await {
                versions.set(answer["versions"].as_array().cloned().unwrap_or_default());
            }
        });
    };
    let preview = RwSignal::new(None::<Value>);
    let preview_message = RwSignal::new(None::<(bool, String)>);
    let run_preview = move || {
        let definition = match texts.with_untracked(|t| draft::definition(kind, t)) {
            Ok(definition) => definition,
            Err((input, why)) => {
                errors.set(Map::from_iter([(input, Value::String(why))]));
                preview_message.set(Some((false, session.t("content.refused"))));
                return;
            }
        };
        let mut body = json!({ "definition": definition });
        let contact = tourist.get_untracked().trim().to_string();
        if let Ok(id) = contact.parse::<i64>() {
            body["contact_id"] = json!(id);
        }
        leptos::task::spawn_local(async move {
            match api::post(&format!("{}/preview", path.get_value()), &body).await {
                Ok(rendered) => {
                    errors.set(Map::new());
                    preview_message.set(None);
                    if rendered["html"].as_str().is_some_and(|h| !h.is_empty()) {
                        show_in_frame(&body["definition"], &contact);
                    }
                    preview.set(Some(rendered));
                }
                Err(e) => {
                    preview.set(None);
                    refused(session, &e, errors, preview_message);
                }
            }
        });
    };
    leptos::task::spawn_local(async move {
        match api::get(&path.get_value()).await {
            Ok(item) => {
                texts.set(draft::texts(kind, Some(&item["definition"])));
                saved.set(Some(item));
            }
            Err(ApiError::Refused { code, .. }) if code == "not_found" => {
                message.set(Some((true, session.t("content.new_item"))));
            }
            Err(e) => message.set(Some((false, session.explain(&e)))),
        }
        load_versions();
        // Something to preview and test with from the start: the first tourist.
        if session.rights().allows("tourists", Op::View)
            && let Ok(page) = api::get("/api/data/tourists?limit=1").await
            && let Some(id) = page["items"][0]["id"].as_i64()
        {
            tourist.set(id.to_string());
        }
        if kind == Kind::Templates && saved.with_untracked(Option::is_some) {
            run_preview();
        }
    });

    let exists = move || saved.with(Option::is_some);
    let may_write = move || {
        let op = if exists() { Op::Edit } else { Op::Create };
        session.rights().allows(kind.rights_entity(), op)
    };
    let may_delete = move || exists() && session.rights().allows(kind.rights_entity(), Op::Delete);
    let changed = Memo::new(move |_| {
        let now = texts.with(|t| draft::definition(kind, t));
        saved.with(|s| match (s, now) {
            (Some(s), Ok(now)) => s["definition"] != now,
            _ => true,
        })
    });

    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let definition = match texts.with_untracked(|t| draft::definition(kind, t)) {
            Ok(definition) => definition,
            Err((input, why)) => {
                errors.set(Map::from_iter([(input, Value::String(why))]));
                message.set(Some((false, session.t("content.refused"))));
                return;
            }
        };
        leptos::task::spawn_local(async move {
            match api::put(&path.get_value(), &definition).await {
                Ok(item) => {
                    errors.set(Map::new());
                    message.set(Some((
                        true,
                        format!("{} (v{})", session.t("content.saved"), item["version"]),
                    )));
                    saved.set(Some(item));
                    revision.update(|r| *r += 1);
                    load_versions();
                }
                Err(e) => refused(session, &e, errors, message),
            }
        });
    };
    let remove = move |_| {
        let sure = web_sys::window()
            .and_then(|w| {
                w.confirm_with_message(&session.t("content.confirm_delete"))
                    .ok()
            })
            .unwrap_or(false);
        if !sure {
            return;
        }
        leptos::task::spawn_local(async move {
            match api::delete(&path.get_value()).await {
                Ok(_) => {
                    revision.update(|r| *r += 1);
                    go_to(&format!("#/content/{}", kind.path()));
                }
                Err(e) => message.set(Some((false, session.explain(&e)))),
            }
        });
    };

    // Only the channel decides which inputs there are: typing re-renders none of them.
    let channel = Memo::new(move |_| texts.with(|t| text_of(t, "channel").to_string()));
    let form = move || {
        let locked = !may_write();
        draft::inputs_of(kind, &channel.get())
            .iter()
            .map(|&input| input_control(input, texts, errors, locked, source_box, session))
            .collect_view()
    };

    let version_list = move || {
        let lang = session.lang.get();
        versions
            .get()
            .into_iter()
            .map(|v| {
                let number = v["version"].as_i64().unwrap_or_default();
                let when = v["saved_at"]
                    .as_str()
                    .map(|at| record::when(at, lang))
                    .unwrap_or_default();
                let by = v["saved_by"].as_str().unwrap_or_default().to_string();
                let definition = v["definition"].clone();
                view! {
                    <li data-version=number.to_string()>
                        <span>{format!("v{number} · {when} · {by}")}</span>
                        <button type="button" data-test="load-version" on:click=move |_| {
                            texts.set(draft::texts(kind, Some(&definition)));
                            message.set(Some((true, session.t("content.loaded"))));
                        }>{session.t("content.load")}</button>
                    </li>
                }
            })
            .collect_view()
    };

    let side = match kind {
        Kind::Templates => view! {
            <div class="try" data-test="preview-panel">
                <h2>{move || session.t("content.preview")}</h2>
                <div class="try-controls">
                    <TouristChoice tourist=tourist test="preview-tourist"/>
                    <button type="button" data-test="run-preview" on:click=move |_| run_preview()>{move || session.t("content.preview_run")}</button>
                </div>
                <p class="message" data-test="preview-message" class:error=move || preview_message.with(|m| matches!(m, Some((false, _))))>
                    {move || preview_message.get().map(|(_, text)| text)}
                </p>
                {move || preview.get().map(|p| shown_lines(p, session))}
                <form class="frame-form" method="post" target="preview-frame" node_ref=frame_form
                    action=move || format!("{}/preview.html", path.get_value())>
                    <input type="hidden" name="definition" node_ref=frame_definition/>
                    <input type="hidden" name="contact_id" node_ref=frame_contact/>
                </form>
                <iframe class="mail" name="preview-frame" sandbox="" data-test="preview-html"
                    class:hidden=move || preview.with(|p| p.as_ref().is_none_or(|p| p["html"].as_str().is_none_or(str::is_empty)))
                    title=move || session.t("content.input.html")></iframe>
                {move || preview.get().map(shown_bodies)}
            </div>
        }
        .into_any(),
        Kind::Snippets => view! { <TestRun texts=texts tourist=tourist source_box=source_box/> }.into_any(),
        Kind::Parts => ().into_any(),
    };

    view! {
        <div class="content-editor" data-kind=kind.path() data-key=key.clone()>
            <form class="content-form" data-test="content-form" on:submit=save>
                <h2>{let key = key.clone(); move || format!("{} · {key}", session.t(&format!("content.one.{}", kind.path())))}
                    {move || saved.with(|s| s.as_ref().map(|s| format!(" (v{})", s["version"])))}
                </h2>
                {form}
                <div class="actions">
                    <button type="submit" class="primary" data-test="save-content"
                        disabled=move || !may_write() || !changed.get()>{move || session.t("content.save")}</button>
                    <Show when=may_delete>
                        <button type="button" class="danger" data-test="delete-content" on:click=remove>{move || session.t("content.delete")}</button>
                    </Show>
                    <span class="message" data-test="content-message" class:error=move || message.with(|m| matches!(m, Some((false, _))))>
                        {move || message.get().map(|(_, text)| text)}
                    </span>
                </div>
                <h3>{move || session.t("content.versions")}</h3>
                <ol class="versions" data-test="versions">{version_list}</ol>
            </form>
            {side}
        </div>
    }
}

/// One input of the form with its label and its refusal. The snippet's source is tied to
/// `source_box`, so a test run's error can point at its line and column.
fn input_control(
    input: &'static str,
    texts: RwSignal<Map<String, Value>>,
    errors: RwSignal<Map<String, Value>>,
    locked: bool,
    source_box: NodeRef<Textarea>,
    session: Session,
) -> impl IntoView {
    let current = move || texts.with(|t| text_of(t, input).to_string());
    let set = move |text: String| {
        texts.update(|t| {
            t.insert(input.to_string(), Value::String(text));
        })
    };
    let control = match input {
        "channel" => {
            let options = draft::CHANNELS
                .into_iter()
                .map(|c| {
                    view! { <option value=c selected=move || current() == c>{move || session.t(&format!("channel.{c}"))}</option> }
                })
                .collect_view();
            view! { <select data-input=input disabled=locked on:change=move |ev| set(event_target_value(&ev))>{options}</select> }.into_any()
        }
        "subject" | "preheader" | "description" => view! {
            <input data-input=input disabled=locked prop:value=current on:input=move |ev| set(event_target_value(&ev))/>
        }
        .into_any(),
        "source" => view! {
            <textarea data-input=input class="code" rows="12" spellcheck="false" disabled=locked node_ref=source_box
                prop:value=current on:input=move |ev| set(event_target_value(&ev))></textarea>
        }
        .into_any(),
        _ => view! {
            <textarea data-input=input class="code" rows={if input == "html" { "10" } else { "6" }} spellcheck="false" disabled=locked
                prop:value=current on:input=move |ev| set(event_target_value(&ev))></textarea>
        }
        .into_any(),
    };
    let error = move || errors.with(|e| e.get(input).and_then(Value::as_str).map(str::to_string));
    view! {
        <label class="field" class:invalid=move || error().is_some()>
            <span class="name">{move || session.t(&format!("content.input.{input}"))}</span>
            {control}
            <span class="field-error" data-error=input>{error}</span>
        </label>
    }
}

/// The tourist a preview or test run is for, by id.
#[component]
fn TouristChoice(tourist: RwSignal<String>, test: &'static str) -> impl IntoView {
    let session = expect_context::<Session>();
    view! {
        <label>{move || session.t("content.tourist")}
            <input data-test=test inputmode="numeric" prop:value=tourist
                on:input=move |ev| tourist.set(event_target_value(&ev))/>
        </label>
    }
}

/// A rendered template's subject and preheader.
fn shown_lines(rendered: Value, session: Session) -> impl IntoView {
    let line = |key: &'static str| {
        rendered[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|text| {
                view! {
                    <dt>{session.t(&format!("content.input.{key}"))}</dt>
                    <dd data-test=format!("preview-{key}")>{text.to_string()}</dd>
                }
            })
    };
    view! { <dl class="rendered" data-test="preview">{line("subject")}{line("preheader")}</dl> }
}

/// A rendered template's text and LINE flex message (its HTML is in the frame).
fn shown_bodies(rendered: Value) -> impl IntoView {
    let text = rendered["text"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|text| view! { <pre data-test="preview-text">{text.to_string()}</pre> });
    let flex = rendered.get("flex").map(|flex| {
        view! { <pre data-test="preview-flex">{draft::shown_value(flex)}</pre> }
    });
    (text, flex)
}

/// Runs the snippet on screen (saved or not) for a tourist with arguments; an error's line and
/// column select that place in the code.
#[component]
fn TestRun(
    texts: RwSignal<Map<String, Value>>,
    tourist: RwSignal<String>,
    source_box: NodeRef<Textarea>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let args = RwSignal::new(String::new());
    let outcome = RwSignal::new(None::<(bool, String)>);
    let took = RwSignal::new(None::<u64>);
    let may_run = move || {
        let rights = session.rights();
        rights.allows("snippets", Op::Create) || rights.allows("snippets", Op::Edit)
    };
    let point_at = move |line: u32, column: u32| {
        if let Some(textarea) = source_box.get_untracked() {
            let offset = draft::utf16_offset(&textarea.value(), line, column);
            let _ = textarea.focus();
            let _ = textarea.set_selection_range(offset, offset + 1);
        }
    };
    let run = move |_| {
        let arguments = match draft::arguments(&args.get_untracked()) {
            Ok(arguments) => arguments,
            Err(why) => {
                outcome.set(Some((
                    false,
                    format!("{}: {why}", session.t("content.args")),
                )));
                return;
            }
        };
        let mut body = json!({ "source": texts.with_untracked(|t| text_of(t, "source").to_string()), "args": arguments });
        if let Ok(id) = tourist.get_untracked().trim().parse::<i64>() {
            body["contact_id"] = json!(id);
        }
        leptos::task::spawn_local(async move {
            match api::post("/api/snippets/run", &body).await {
                Ok(answer) => {
                    took.set(answer["micros"].as_u64());
                    outcome.set(Some((true, draft::shown_value(&answer["value"]))));
                }
                Err(e) => {
                    took.set(None);
                    if let ApiError::Refused {
                        position: Some((line, column)),
                        ..
                    } = &e
                    {
                        point_at(*line, *column);
                    }
                    outcome.set(Some((false, session.explain(&e))));
                }
            }
        });
    };
    view! {
        <div class="try" data-test="run-panel">
            <h2>{move || session.t("content.test_run")}</h2>
            <div class="try-controls">
                <TouristChoice tourist=tourist test="run-tourist"/>
                <label>{move || session.t("content.args")}
                    <input data-test="run-args" placeholder="[\"秋\"]" prop:value=args
                        on:input=move |ev| args.set(event_target_value(&ev))/>
                </label>
                <button type="button" data-test="run-snippet" disabled=move || !may_run() on:click=run>{move || session.t("content.run")}</button>
            </div>
            {move || outcome.get().map(|(ok, text)| if ok {
                view! {
                    <div class="run-value">
                        <pre data-test="run-value">{text}</pre>
                        <small data-test="run-micros">{took.get().map(|m| format!("{m} µs"))}</small>
                    </div>
                }.into_any()
            } else {
                view! { <p class="error" data-test="run-error">{text}</p> }.into_any()
            })}
        </div>
    }
}
