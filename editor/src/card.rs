//! A record's card (`#/tourists/{id}`, `#/businesses/{id}`, `#/inquiries/{id}`): its fields,
//! editable where the user may edit them, and its timeline, newest first, a page at a time,
//! narrowed to the sources the user ticks: a tourist's purchases, points, inquiries, messages,
//! opens and clicks and flows; a business's interactions; an inquiry's responses. Fields and
//! sources the user may not see never reach the browser.

use leptos::prelude::*;
use serde_json::{Map, Value};
use tabiji_model::field::{FieldDef, FieldType};

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::{self, Lang};
use crate::list::toggle;
use crate::record;
use tabiji_model::Op;

const TIMELINE_PAGE: usize = 30;

fn source_label(source: &Value, lang: Lang) -> String {
    source["label"][lang.code()]
        .as_str()
        .or_else(|| source["key"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The heading: a person's name, a business's name, an inquiry's subject, else an e-mail
/// address, else the record's number.
fn title(record: &Value, id: i64) -> String {
    let name = [&record["family_name"], &record["given_name"]]
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if !name.trim().is_empty() {
        return name;
    }
    ["name", "subject", "email"]
        .iter()
        .find_map(|key| record[key].as_str().filter(|s| !s.trim().is_empty()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("#{id}"))
}

/// Each refused field's message, by field (the status line says the whole of it).
fn field_errors(error: &ApiError) -> Map<String, Value> {
    let mut by_field = Map::new();
    if let ApiError::Refused { details, .. } = error {
        for detail in details {
            if let Some((field, message)) = detail.split_once(": ") {
                by_field.insert(field.to_string(), Value::String(message.to_string()));
            }
        }
    }
    by_field
}

/// One field's label, input of its kind (read-only where the user may not edit it) and the
/// server's refusal of its value; the input's text lives in `edited`, by field key.
fn field_control(
    f: FieldDef,
    edited: RwSignal<Map<String, Value>>,
    errors: RwSignal<Map<String, Value>>,
    lang: Lang,
    session: Session,
) -> impl IntoView {
    let key = f.key.clone();
    let locked = f.read_only;
    let current = {
        let key = key.clone();
        move || {
            edited.with(|e| {
                e.get(&key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
        }
    };
    let set = {
        let key = key.clone();
        move |text: String| {
            edited.update(|e| {
                e.insert(key.clone(), Value::String(text));
            })
        }
    };
    // A reference to a record with a card of its own opens that card.
    let link = match &f.ty {
        FieldType::Reference { entity } => crate::RECORD_SCREENS
            .into_iter()
            .find(|screen| screen == entity)
            .map(|screen| {
                let target = current.clone();
                let shown = current.clone();
                // The referenced record by its name, once read (by its screen's name until then,
                // or if the user may not read it).
                let name = RwSignal::new(None::<String>);
                let watched = current.clone();
                Effect::new(move |_| {
                    name.set(None);
                    let Ok(id) = watched().trim().parse::<i64>() else {
                        return;
                    };
                    leptos::task::spawn_local(async move {
                        if let Ok(record) = api::get(&format!("/api/data/{screen}/{id}")).await {
                            let _ = name.try_set(Some(title(&record, id)));
                        }
                    });
                });
                view! {
                    <Show when=move || !shown().is_empty()>
                        <a class="reference" data-test=format!("open-{}", f.key) href={
                            let target = target.clone();
                            move || format!("#/{screen}/{}", target())
                        }>{move || format!("→ {}", name.get().unwrap_or_else(|| session.t(&format!("nav.{screen}"))))}</a>
                    </Show>
                }
            }),
        _ => None,
    };
    let control = match &f.ty {
        FieldType::SingleChoice { options } => {
            let choices = std::iter::once(String::new())
                .chain(options.iter().cloned())
                .map(|o| {
                    let current = current.clone();
                    let value = o.clone();
                    view! { <option value=o.clone() selected=move || current() == value>{o.clone()}</option> }
                })
                .collect_view();
            view! {
                <select data-field=key.clone() disabled=locked on:change=move |ev| set(event_target_value(&ev))>{choices}</select>
            }
            .into_any()
        }
        FieldType::Boolean => {
            let checked = current.clone();
            view! {
                <input type="checkbox" data-field=key.clone() disabled=locked
                    prop:checked=move || checked() == "true"
                    on:change=move |ev| set(event_target_checked(&ev).to_string())/>
            }
            .into_any()
        }
        FieldType::LongText => view! {
            <textarea data-field=key.clone() disabled=locked prop:value=current
                on:input=move |ev| set(event_target_value(&ev))></textarea>
        }
        .into_any(),
        _ => view! {
            <input data-field=key.clone() disabled=locked prop:value=current
                on:input=move |ev| set(event_target_value(&ev))/>
        }
        .into_any(),
    };
    let error_key = key.clone();
    let error = move || {
        errors.with(|e| {
            e.get(&error_key)
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    };
    let flagged = error.clone();
    view! {
        <label class="field" class:invalid=move || flagged().is_some()>
            <span class="name">
                {i18n::label(&f.label, lang)}
                {locked.then(|| view! { <small class="read-only">{session.t("card.read_only")}</small> })}
            </span>
            {control}
            {link}
            <span class="field-error" data-error=key.clone()>{error}</span>
        </label>
    }
}

/// The controls of every field of a form.
fn controls(
    fields: RwSignal<Vec<FieldDef>>,
    edited: RwSignal<Map<String, Value>>,
    errors: RwSignal<Map<String, Value>>,
    session: Session,
) -> impl IntoView {
    let lang = session.lang.get();
    fields
        .get()
        .into_iter()
        .map(|f| field_control(f, edited, errors, lang, session))
        .collect_view()
}

/// A refused save: each field's refusal under it, and the status line saying so (the
/// refusals themselves are not repeated there).
fn refused(
    session: Session,
    error: &ApiError,
    errors: RwSignal<Map<String, Value>>,
    message: RwSignal<Option<(bool, String)>>,
) {
    let by_field = field_errors(error);
    let said = if by_field.is_empty() {
        session.explain(error)
    } else {
        session.t("card.refused")
    };
    errors.set(by_field);
    message.set(Some((false, said)));
}

#[component]
pub fn RecordCard(entity: &'static str, id: i64) -> impl IntoView {
    let session = expect_context::<Session>();
    let fields = RwSignal::new(Vec::<FieldDef>::new());
    let record = RwSignal::new(None::<Value>);
    let edited = RwSignal::new(Map::<String, Value>::new());
    let errors = RwSignal::new(Map::<String, Value>::new());
    let message = RwSignal::new(None::<(bool, String)>);
    let problem = RwSignal::new(None::<String>);

    let sources = RwSignal::new(Vec::<Value>::new());
    let chosen = RwSignal::new(None::<Vec<String>>);
    let entries = RwSignal::new(Vec::<Value>::new());
    let next_before = RwSignal::new(None::<String>);
    let timeline_loaded = RwSignal::new(false);
    // Answers that arrive after a newer question are dropped.
    let asked = StoredValue::new(0_u64);

    let fill = move |value: Value| {
        let inputs = fields.with_untracked(|f| record::inputs(f, &value));
        edited.set(inputs);
        record.set(Some(value));
    };

    leptos::task::spawn_local(async move {
        match api::get(&format!("/api/schema/{entity}")).await {
            Ok(schema) => {
                fields.set(serde_json::from_value(schema["fields"].clone()).unwrap_or_default())
            }
            Err(e) => problem.set(Some(session.explain(&e))),
        }
        match api::get(&format!("/api/data/{entity}/{id}")).await {
            Ok(value) => fill(value),
            Err(e) => problem.set(Some(session.explain(&e))),
        }
    });

    let load_timeline = move |before: Option<String>| {
        let mut path = format!("/api/data/{entity}/{id}/timeline?limit={TIMELINE_PAGE}");
        if let Some(list) = chosen.get_untracked() {
            path.push_str(&format!("&sources={}", list.join(",")));
        }
        let appending = before.is_some();
        if let Some(cursor) = before {
            path.push_str(&format!("&before={cursor}"));
        }
        let ticket = asked.get_value() + 1;
        asked.set_value(ticket);
        leptos::task::spawn_local(async move {
            let answer = api::get(&path).await;
            if asked.try_get_value() != Some(ticket) {
                return;
            }
            match answer {
                Ok(page) => {
                    let items = page["entries"].as_array().cloned().unwrap_or_default();
                    if appending {
                        entries.update(|e| e.extend(items));
                    } else {
                        entries.set(items);
                    }
                    sources.set(page["sources"].as_array().cloned().unwrap_or_default());
                    next_before.set(page["next_before"].as_str().map(str::to_string));
                    timeline_loaded.set(true);
                }
                Err(e) => problem.set(Some(session.explain(&e))),
            }
        });
    };
    let revision = RwSignal::new(0_u64);
    Effect::new(move |_| {
        chosen.track();
        revision.track();
        load_timeline(None);
    });

    let pending = Memo::new(move |_| {
        record.with(|r| {
            r.as_ref()
                .map(|r| fields.with(|f| edited.with(|e| record::changes(f, r, e))))
                .unwrap_or_default()
        })
    });

    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = Value::Object(pending.get_untracked());
        if body.as_object().is_some_and(Map::is_empty) {
            message.set(Some((true, session.t("card.unchanged"))));
            return;
        }
        leptos::task::spawn_local(async move {
            match api::patch(&format!("/api/data/{entity}/{id}"), &body).await {
                Ok(saved) => {
                    errors.set(Map::new());
                    fill(saved);
                    message.set(Some((true, session.t("card.saved"))));
                    load_timeline(None);
                }
                Err(e) => refused(session, &e, errors, message),
            }
        });
    };

    let inputs = move || controls(fields, edited, errors, session);

    let source_choice = move || {
        let lang = session.lang.get();
        sources
            .get()
            .into_iter()
            .map(|source| {
                let key = source["key"].as_str().unwrap_or_default().to_string();
                let shown = chosen.with(|c| c.as_ref().is_none_or(|c| c.contains(&key)));
                view! {
                    <label class="source-choice">
                        <input type="checkbox" data-source=key.clone() prop:checked=shown on:change=move |_| {
                            let every: Vec<String> = sources.with_untracked(|s| {
                                s.iter().filter_map(|s| s["key"].as_str().map(str::to_string)).collect()
                            });
                            chosen.update(|c| {
                                let mut list = c.take().unwrap_or_else(|| every.clone());
                                toggle(&mut list, &key);
                                // Every source ticked is the same as no choice; none ticked shows nothing.
                                *c = if list.len() == every.len() { None } else { Some(list) };
                            });
                        }/>
                        {source_label(&source, lang)}
                    </label>
                }
            })
            .collect_view()
    };

    let timeline = move || {
        let lang = session.lang.get();
        let names = sources.get();
        let list = entries.get();
        if list.is_empty() && timeline_loaded.get() {
            return view! { <li class="empty">{session.t("card.empty")}</li> }.into_any();
        }
        list.into_iter()
            .map(|entry| {
                let source = entry["source"].as_str().unwrap_or_default().to_string();
                let kind = names
                    .iter()
                    .find(|s| s["key"] == source.as_str())
                    .map(|s| source_label(s, lang))
                    .unwrap_or_else(|| source.clone());
                let at = entry["at"]
                    .as_str()
                    .map(|at| record::when(at, lang))
                    .unwrap_or_default();
                let line = record::summary(&entry, lang);
                view! {
                    <li data-source=source.clone() data-entry=entry["id"].to_string()>
                        <time>{at}</time>
                        <span class=format!("kind {source}")>{kind}</span>
                        <span class="what">{line}</span>
                    </li>
                }
            })
            .collect_view()
            .into_any()
    };

    view! {
        <section class="card-screen" data-entity=entity>
            <div class="toolbar">
                <a href=format!("#/{entity}") data-test="back">{move || format!("← {}", session.t(&format!("nav.{entity}")))}</a>
                <h1 data-test="card-title">{move || record.with(|r| r.as_ref().map(|r| title(r, id)).unwrap_or_default())}</h1>
            </div>
            <p class="error" role="alert" data-test="problem">{move || problem.get()}</p>
            <div class="card">
                <form class="record" data-test="record" on:submit=save>
                    <h2>{move || session.t("card.details")}</h2>
                    {inputs}
                    <div class="actions">
                        <button type="submit" class="primary" data-test="save-record"
                            disabled=move || pending.with(Map::is_empty)>{move || session.t("card.save")}</button>
                        <span class="message" data-test="message" class:error=move || message.with(|m| matches!(m, Some((false, _))))>
                            {move || message.get().map(|(_, text)| text)}
                        </span>
                    </div>
                </form>
                <div class="timeline">
                    <h2>{move || session.t("card.timeline")}</h2>
                    <div class="sources" data-test="sources">{source_choice}</div>
                    <AddEntry parent=id sources=sources revision=revision/>
                    <ol data-test="timeline">{timeline}</ol>
                    <button data-test="older" disabled=move || next_before.with(Option::is_none) on:click=move |_| {
                        let before = next_before.try_update(Option::take).flatten();
                        if before.is_some() {
                            load_timeline(before);
                        }
                    }>{move || session.t("card.older")}</button>
                </div>
            </div>
        </section>
    }
}

/// Adds a row to one of the record's history stores the user may write to: an inquiry's
/// response, a business's interaction, a purchase… The owner is filled in; the time field starts
/// at now, in Asia/Tokyo.
#[component]
fn AddEntry(parent: i64, sources: RwSignal<Vec<Value>>, revision: RwSignal<u64>) -> impl IntoView {
    let session = expect_context::<Session>();
    let store = RwSignal::new(String::new());
    let fields = RwSignal::new(Vec::<FieldDef>::new());
    let parent_field = RwSignal::new(None::<String>);
    let edited = RwSignal::new(Map::<String, Value>::new());
    let errors = RwSignal::new(Map::<String, Value>::new());
    let message = RwSignal::new(None::<(bool, String)>);

    let writable = move || {
        let rights = session.rights();
        sources.with(|list| {
            list.iter()
                // History stores only: the engine's messages, events and runs are written by flows.
                .filter(|s| s["history"] == true)
                .filter(|s| {
                    s["key"]
                        .as_str()
                        .is_some_and(|k| rights.allows(k, Op::Create))
                })
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let started = move |time_field: Option<&str>| {
        let mut inputs = Map::new();
        if let Some(time) = time_field {
            let now = js_sys::Date::new_0()
                .to_iso_string()
                .as_string()
                .unwrap_or_default();
            inputs.insert(
                time.to_string(),
                Value::String(record::when(&now, Lang::Ja)),
            );
        }
        inputs
    };
    let pick = move |key: String| {
        store.set(key.clone());
        fields.set(Vec::new());
        errors.set(Map::new());
        message.set(None);
        if key.is_empty() {
            return;
        }
        leptos::task::spawn_local(async move {
            match api::get(&format!("/api/schema/{key}")).await {
                Ok(schema) => {
                    let owner = schema["parent"]["field"].as_str().map(str::to_string);
                    let list: Vec<FieldDef> =
                        serde_json::from_value(schema["fields"].clone()).unwrap_or_default();
                    edited.set(started(schema["time_field"].as_str()));
                    fields.set(
                        list.into_iter()
                            .filter(|f| !f.read_only && Some(&f.key) != owner.as_ref())
                            .collect(),
                    );
                    parent_field.set(owner);
                }
                Err(e) => message.set(Some((false, session.explain(&e)))),
            }
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let key = store.get_untracked();
        let Some(owner) = parent_field.get_untracked() else {
            return;
        };
        let mut body = fields
            .with_untracked(|f| edited.with_untracked(|e| record::changes(f, &Value::Null, e)));
        body.insert(owner, Value::from(parent));
        let body = Value::Object(body);
        leptos::task::spawn_local(async move {
            match api::post(&format!("/api/data/{key}"), &body).await {
                Ok(_) => {
                    // A fresh form for the next row, the time at now again.
                    pick(key);
                    message.set(Some((true, session.t("card.added"))));
                    revision.update(|r| *r += 1);
                }
                Err(e) => refused(session, &e, errors, message),
            }
        });
    };

    let options = move || {
        let lang = session.lang.get();
        let current = store.get();
        std::iter::once(view! { <option value="" selected=current.is_empty()>{session.t("card.add_pick")}</option> }.into_any())
            .chain(writable().into_iter().map(|s| {
                let key = s["key"].as_str().unwrap_or_default().to_string();
                let chosen = key == current;
                view! { <option value=key.clone() selected=chosen>{source_label(&s, lang)}</option> }.into_any()
            }))
            .collect_view()
    };
    let inputs = move || controls(fields, edited, errors, session);

    view! {
        <Show when=move || !writable().is_empty()>
            <form class="add-entry" data-test="add-entry" on:submit=submit>
                <select data-test="entry-store" on:change=move |ev| pick(event_target_value(&ev))>{options}</select>
                <Show when=move || !fields.with(Vec::is_empty)>
                    {inputs}
                    <button type="submit" class="primary" data-test="add-entry-submit">{move || session.t("card.add")}</button>
                </Show>
                <span class="message" data-test="entry-message" class:error=move || message.with(|m| matches!(m, Some((false, _))))>
                    {move || message.get().map(|(_, text)| text)}
                </span>
            </form>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_heading_is_the_name_else_the_address_else_the_number() {
        assert_eq!(
            title(&json!({"family_name": "山田", "given_name": "花子"}), 1),
            "山田 花子"
        );
        assert_eq!(title(&json!({"email": "h@example.jp"}), 1), "h@example.jp");
        assert_eq!(
            title(
                &json!({"name": "高山観光ホテル", "email": "x@example.jp"}),
                2
            ),
            "高山観光ホテル"
        );
        assert_eq!(title(&json!({"subject": "傘の忘れ物"}), 3), "傘の忘れ物");
        assert_eq!(title(&json!({}), 7), "#7");
    }

    #[test]
    fn refusals_land_on_their_fields() {
        let error = ApiError::Refused {
            code: "invalid".into(),
            message: "1 field is not valid".into(),
            details: vec!["phone: not a phone number".into(), "plain".into()],
            position: None,
        };
        assert_eq!(
            Value::Object(field_errors(&error)),
            json!({"phone": "not a phone number"})
        );
    }
}
