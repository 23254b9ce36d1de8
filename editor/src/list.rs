//! The list screens (tourists, businesses, inquiries): a segment builder without SQL
//! (conditions on the fields the user may see, all or any) with a live count, a sortable
//! keyset-paged table with a choice of columns, each row opening its card, and saving the
//! conditions as a segment that flows (tourists) and reports use. Fields the user may not see are
//! absent from the schema the server gives, so they appear nowhere here.

use leptos::prelude::*;
use serde_json::{Value, json};
use tabiji_model::field::FieldDef;

use crate::Session;
use crate::api;
use crate::conditions::{self, Condition};
use crate::filter_rows::FilterRows;
use crate::i18n::{self, Lang, tf};

const PAGE: usize = 50;
/// Columns shown before the user chooses.
const FIRST_COLUMNS: usize = 7;

fn label(field: &FieldDef, lang: Lang) -> String {
    i18n::label(&field.label, lang)
}

/// Takes `key` out of `list` when it is there, adds it at the end when it is not (a tick box).
pub fn toggle(list: &mut Vec<String>, key: &str) {
    match list.iter().position(|k| k == key) {
        Some(at) => {
            list.remove(at);
        }
        None => list.push(key.to_string()),
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[component]
pub fn RecordList(entity: &'static str) -> impl IntoView {
    let session = expect_context::<Session>();
    let fields = RwSignal::new(Vec::<FieldDef>::new());
    let rows = RwSignal::new(vec![Condition::default()]);
    let any = RwSignal::new(false);
    let count = RwSignal::new(None::<u64>);
    let problem = RwSignal::new(None::<String>);
    let columns = RwSignal::new(Vec::<String>::new());
    let sort = RwSignal::new(None::<(String, bool)>);
    let items = RwSignal::new(Vec::<Value>::new());
    // `after` of each page shown so far, for going back; the last is the current page's.
    let pages = RwSignal::new(vec![None::<String>]);
    let next_after = RwSignal::new(None::<String>);
    let message = RwSignal::new(None::<(bool, String)>);
    let segment_key = RwSignal::new(String::new());
    let segment_name = RwSignal::new(String::new());
    // Answers that arrive after a newer question are dropped.
    let asked = StoredValue::new(0_u64);

    leptos::task::spawn_local(async move {
        match api::get(&format!("/api/schema/{entity}")).await {
            Ok(schema) => {
                let list: Vec<FieldDef> =
                    serde_json::from_value(schema["fields"].clone()).unwrap_or_default();
                columns.set(
                    list.iter()
                        .take(FIRST_COLUMNS)
                        .map(|f| f.key.clone())
                        .collect(),
                );
                fields.set(list);
            }
            Err(e) => problem.set(Some(session.explain(&e))),
        }
    });

    let filter = Memo::new(move |_| {
        fields.with(|f| {
            rows.with(|r| {
                conditions::build(r, any.get(), f)
                    .map(|filter| serde_json::to_value(filter).expect("a filter is JSON"))
            })
        })
    });

    let load = move |after: Option<String>| {
        let Ok(filter) = filter.get_untracked() else {
            return;
        };
        let mut body = json!({"filter": filter, "limit": PAGE, "count": true});
        if let Some((field, desc)) = sort.get_untracked() {
            body["sort"] = json!({"field": field, "desc": desc});
        }
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        let ticket = asked.get_value() + 1;
        asked.set_value(ticket);
        leptos::task::spawn_local(async move {
            let answer = api::post(&format!("/api/data/{entity}/search"), &body).await;
            // A newer question was asked, or the screen was left.
            if asked.try_get_value() != Some(ticket) {
                return;
            }
            match answer {
                Ok(page) => {
                    problem.set(None);
                    count.set(page["count"].as_u64());
                    items.set(page["items"].as_array().cloned().unwrap_or_default());
                    next_after.set(page["next_after"].as_str().map(str::to_string));
                }
                Err(e) => {
                    count.set(None);
                    problem.set(Some(session.explain(&e)));
                }
            }
        });
    };

    // A changed condition or sort starts again from the first page.
    Effect::new(move |_| {
        let ready = !fields.with(Vec::is_empty);
        sort.track();
        match filter.get() {
            Ok(_) if ready => {
                pages.set(vec![None]);
                load(None);
            }
            Ok(_) => {}
            Err(reason) => {
                count.set(None);
                problem.set(Some(reason));
            }
        }
    });

    // A segment saved while a condition is half filled in would leave that condition out.
    let half_filled = move || {
        rows.with(|r| {
            r.iter()
                .any(|row| !row.field.is_empty() && conditions::incomplete(row))
        })
    };
    let save_segment = move |_| {
        let Ok(filter) = filter.get_untracked() else {
            return;
        };
        let key = segment_key.get_untracked().trim().to_string();
        let name = segment_name.get_untracked().trim().to_string();
        let body = json!({"key": key, "name": if name.is_empty() { key.clone() } else { name }, "entity": entity, "filter": filter});
        leptos::task::spawn_local(async move {
            match api::post("/api/segments", &body).await {
                Ok(_) => match api::get(&format!("/api/segments/{key}/count")).await {
                    Ok(answer) => message.set(Some((
                        true,
                        tf(
                            session.lang.get_untracked(),
                            "contacts.segment_saved",
                            format!("{key} ({})", answer["count"]),
                        ),
                    ))),
                    Err(e) => message.set(Some((false, session.explain(&e)))),
                },
                Err(e) => message.set(Some((false, session.explain(&e)))),
            }
        });
    };

    let column_choice = move || {
        let lang = session.lang.get();
        fields
            .get()
            .into_iter()
            .map(|f| {
                let key = f.key.clone();
                let shown = columns.with(|c| c.contains(&key));
                view! {
                    <label class="column-choice">
                        <input type="checkbox" data-column=key.clone() prop:checked=shown on:change=move |_| {
                            columns.update(|c| toggle(c, &key))
                        }/>
                        {label(&f, lang)}
                    </label>
                }
            })
            .collect_view()
    };

    let header = move || {
        let lang = session.lang.get();
        let shown = columns.get();
        fields.with(|list| {
            shown
                .iter()
                .filter_map(|key| list.iter().find(|f| f.key == *key))
                .map(|f| {
                    let key = f.key.clone();
                    let marker = sort.with(|s| match s {
                        Some((k, desc)) if *k == key => {
                            if *desc {
                                " ▼"
                            } else {
                                " ▲"
                            }
                        }
                        _ => "",
                    });
                    let text = label(f, lang);
                    view! {
                        <th data-column=key.clone() on:click=move |_| sort.update(|s| {
                            *s = match s.take() {
                                Some((k, false)) if k == key => Some((k, true)),
                                _ => Some((key.clone(), false)),
                            }
                        })>{text}{marker}</th>
                    }
                })
                .collect_view()
        })
    };

    let body = move || {
        let shown = columns.get();
        items
            .get()
            .into_iter()
            .map(|item| {
                let id = item["id"].to_string();
                let cells = shown
                    .iter()
                    .map(|key| view! { <td>{cell(&item[key])}</td> })
                    .collect_view();
                view! {
                    <tr data-id=id.clone()>
                        <td><a href=format!("#/{entity}/{id}") data-test="open-record">{session.t("contacts.open")}</a></td>
                        {cells}
                    </tr>
                }
            })
            .collect_view()
    };

    view! {
        <section class="contacts" data-entity=entity>
            <div class="toolbar">
                <h1>{move || session.t(&format!("nav.{entity}"))}</h1>
                <span class="count" data-test="count">
                    {move || count.get().map(|n| tf(session.lang.get(), &format!("count.{entity}"), n))}
                </span>
            </div>
            <div class="builder">
                <FilterRows fields=fields rows=rows any=any/>
                <p class="error" role="alert" data-test="problem">{move || problem.get()}</p>
                <div class="save-segment">
                    <input data-test="segment-key" placeholder=move || session.t("contacts.segment_key") prop:value=segment_key on:input=move |ev| segment_key.set(event_target_value(&ev))/>
                    <input data-test="segment-name" placeholder=move || session.t("contacts.segment_name") prop:value=segment_name on:input=move |ev| segment_name.set(event_target_value(&ev))/>
                    <button data-test="save-segment" class="primary" disabled=move || segment_key.with(|k| k.trim().is_empty()) || filter.with(Result::is_err) || half_filled() on:click=save_segment>{move || session.t("contacts.save_segment")}</button>
                </div>
                <p class="message" data-test="message" class:error=move || message.with(|m| matches!(m, Some((false, _))))>{move || message.get().map(|(_, text)| text)}</p>
            </div>
            <details class="columns">
                <summary>{move || session.t("contacts.columns")}</summary>
                {column_choice}
            </details>
            <table class="records" data-test="records">
                <thead><tr><th></th>{header}</tr></thead>
                <tbody>{body}</tbody>
            </table>
            <div class="pager">
                <button data-test="previous" disabled=move || pages.with(|p| p.len() < 2) on:click=move |_| {
                    pages.update(|p| { p.pop(); });
                    load(pages.with_untracked(|p| p.last().cloned().flatten()));
                }>{move || session.t("contacts.previous")}</button>
                <button data-test="next" disabled=move || next_after.with(Option::is_none) on:click=move |_| {
                    // Taken, so that a second click waits for the next page's own cursor.
                    let after = next_after.try_update(Option::take).flatten();
                    if after.is_none() {
                        return;
                    }
                    pages.update(|p| p.push(after.clone()));
                    load(after);
                }>{move || session.t("contacts.next")}</button>
            </div>
        </section>
    }
}
