//! The SQL workspace screen (`#/sql`): a SELECT written and run over the data the user may
//! see, its rows in a table, and its result kept as an output table (created, overwritten or
//! appended to); the tables and columns the user may name listed beside the editor, names
//! put into the query with a click; output tables opened, copied and dropped.

use leptos::html::Textarea;
use leptos::prelude::*;
use serde_json::Value;
use tabiji_model::Op;

use crate::Session;
use crate::api::{self, ApiError};
use crate::draft::utf16_offset;
use crate::record::{grouped, when};
use crate::results::{self, LIMITS, MODES};

const SQL: &str = "sql";

#[component]
pub fn WorkspaceScreen() -> impl IntoView {
    let session = expect_context::<Session>();
    let catalog = RwSignal::new(Vec::<Value>::new());
    let tables = RwSignal::new(Vec::<Value>::new());
    let sql = RwSignal::new(String::new());
    let limit = RwSignal::new(LIMITS[0]);
    let answer = RwSignal::new(None::<Value>);
    let running = RwSignal::new(false);
    let message = RwSignal::new(None::<(bool, String)>);
    let editor = NodeRef::<Textarea>::new();
    // Bumped by a save, a copy or a drop, so the lists show it.
    let revision = RwSignal::new(0_u64);
    Effect::new(move |_| {
        revision.track();
        leptos::task::spawn_local(async move {
            match api::get("/api/sql/catalog").await {
                Ok(body) => {
                    let _ = catalog.try_set(body["tables"].as_array().cloned().unwrap_or_default());
                }
                Err(e) => {
                    let _ = message.try_set(Some((false, session.explain(&e))));
                }
            }
            if let Ok(body) = api::get("/api/sql/tables").await {
                let _ = tables.try_set(body["tables"].as_array().cloned().unwrap_or_default());
            }
        });
    });
    let refused = move |error: ApiError| {
        // A refusal from the database may say where in the query it is.
        if let (
            ApiError::Refused {
                position: Some((line, column)),
                ..
            },
            Some(area),
        ) = (&error, editor.get_untracked())
        {
            let at = utf16_offset(&sql.get_untracked(), *line, *column);
            let _ = area.focus();
            let _ = area.set_selection_range(at, at);
        }
        let _ = message.try_set(Some((false, session.explain(&error))));
    };
    let run = move || {
        let body = serde_json::json!({"sql": sql.get_untracked(), "limit": limit.get_untracked()});
        running.set(true);
        message.set(None);
        leptos::task::spawn_local(async move {
            match api::post("/api/sql/query", &body).await {
                Ok(result) => {
                    let _ = answer.try_set(Some(result));
                }
                Err(e) => {
                    let _ = answer.try_set(None);
                    refused(e);
                }
            }
            let _ = running.try_set(false);
        });
    };
    // A name from the catalog goes where the cursor is.
    let put_in = move |name: String| {
        if let Some(area) = editor.get_untracked() {
            let start = area.selection_start().ok().flatten().unwrap_or(0);
            let end = area.selection_end().ok().flatten().unwrap_or(start);
            let _ = area.set_range_text_with_start_and_end_and_mode(&name, start, end, "end");
            sql.set(area.value());
            let _ = area.focus();
        }
    };
    let open_table = move |name: String| {
        sql.set(results::first_rows(&name));
        run();
    };
    let may = move |op| session.rights().allows(SQL, op);
    view! {
        <section class="sql-screen">
            <div class="toolbar"><h1>{move || session.t("nav.sql")}</h1></div>
            <div class="sql-layout">
                <aside class="sql-catalog" data-test="sql-catalog">
                    <h2>{move || session.t("sql.catalog")}</h2>
                    {move || catalog.get().into_iter().map(|table| {
                        let name = table["name"].as_str().unwrap_or_default().to_string();
                        let kind = table["kind"].as_str().unwrap_or_default().to_string();
                        let columns = table["columns"].as_array().cloned().unwrap_or_default();
                        let table_name = name.clone();
                        view! {
                            <details data-table=name.clone() data-kind=kind.clone()>
                                <summary>
                                    <button type="button" class="link" data-test="put-table"
                                        on:click=move |_| put_in(table_name.clone())>{name.clone()}</button>
                                    <small>{session.t(&format!("sql.kind.{kind}"))}</small>
                                </summary>
                                <ul>{columns.into_iter().filter_map(|c| c.as_str().map(str::to_string)).map(|column| {
                                    let (inserted, label) = (column.clone(), column.clone());
                                    view! { <li><button type="button" class="link" data-column=column
                                        on:click=move |_| put_in(inserted.clone())>{label}</button></li> }
                                }).collect_view()}</ul>
                            </details>
                        }
                    }).collect_view()}
                </aside>
                <div class="sql-main">
                    <textarea class="code" rows="10" spellcheck="false" data-test="sql-text" node_ref=editor
                        placeholder="SELECT prefecture, count(*) AS n FROM tourists GROUP BY prefecture"
                        prop:value=sql on:input=move |ev| sql.set(event_target_value(&ev))
                        on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                            if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                                ev.prevent_default();
                                run();
                            }
                        }></textarea>
                    <div class="actions">
                        <button class="primary" data-test="sql-run" on:click=move |_| run()
                            disabled=move || running.get() || sql.with(|s| s.trim().is_empty())>
                            {move || session.t("sql.run")}
                        </button>
                        <label>{move || session.t("sql.limit")}
                            <select data-test="sql-limit" on:change=move |ev| {
                                if let Ok(n) = event_target_value(&ev).parse() { limit.set(n); }
                            }>
                                {LIMITS.iter().map(|n| view! { <option value=n.to_string()>{grouped(i64::from(*n))}</option> }).collect_view()}
                            </select>
                        </label>
                        <small class="hint">{move || session.t("sql.keys")}</small>
                    </div>
                    <p class="message" class:error=move || message.with(|m| matches!(m, Some((false, _))))
                        role="status" data-test="sql-message">{move || message.get().map(|(_, text)| text)}</p>
                    {move || answer.get().map(|a| result_table(a, session))}
                    <Show when=move || answer.with(Option::is_some) && (may(Op::Create) || may(Op::Edit))>
                        <SaveResult sql=sql message=message revision=revision/>
                    </Show>
                </div>
            </div>
            <OutputTables tables=tables message=message revision=revision open=open_table/>
        </section>
    }
}

fn result_table(answer: Value, session: Session) -> impl IntoView {
    let columns = answer["columns"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<bool> = columns
        .iter()
        .map(|c| results::numeric(c["kind"].as_str().unwrap_or_default()))
        .collect();
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    let summary = session
        .tf("sql.rows", grouped(rows.len() as i64))
        .replace("{ms}", &answer["elapsed_ms"].to_string());
    let truncated = answer["truncated"].as_bool().unwrap_or(false);
    view! {
        <p class="sql-summary" data-test="sql-summary">
            {summary}
            {truncated.then(|| view! { <strong data-test="sql-truncated">{session.t("sql.truncated")}</strong> })}
        </p>
        <div class="sql-result">
            <table class="records" data-test="sql-result">
                <thead><tr>{columns.iter().zip(kinds.iter()).map(|(c, &number)| view! {
                    <th class:number=number title=c["kind"].as_str().unwrap_or_default().to_string()>
                        {c["name"].as_str().unwrap_or_default().to_string()}
                    </th>
                }).collect_view()}</tr></thead>
                <tbody>{rows.into_iter().map(|row| view! {
                    <tr>{row.as_array().cloned().unwrap_or_default().iter().zip(kinds.iter()).map(|(cell, &number)| {
                        match results::cell_text(cell) {
                            Some(text) => view! { <td class:number=number>{text}</td> }.into_any(),
                            None => view! { <td class="null">"NULL"</td> }.into_any(),
                        }
                    }).collect_view()}</tr>
                }).collect_view()}</tbody>
            </table>
        </div>
    }
}

/// The query on screen kept as an output table.
#[component]
fn SaveResult(
    sql: RwSignal<String>,
    message: RwSignal<Option<(bool, String)>>,
    revision: RwSignal<u64>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let name = RwSignal::new(String::new());
    let mode = RwSignal::new(String::from("create"));
    let description = RwSignal::new(String::new());
    let offered = move || {
        let rights = session.rights();
        MODES
            .into_iter()
            .filter(|(_, op)| rights.allows(SQL, *op))
            .map(|(m, _)| m)
            .collect::<Vec<_>>()
    };
    Effect::new(move |_| {
        let modes = offered();
        if !modes.contains(&mode.get_untracked().as_str())
            && let Some(first) = modes.first()
        {
            mode.set(first.to_string());
        }
    });
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = results::save_request(
            &name.get_untracked(),
            &sql.get_untracked(),
            &mode.get_untracked(),
            &description.get_untracked(),
        );
        leptos::task::spawn_local(async move {
            let said = match api::post("/api/sql/tables", &body).await {
                Ok(table) => {
                    let _ = revision.try_update(|r| *r += 1);
                    let rows = grouped(table["row_count"].as_i64().unwrap_or_default());
                    let text = session
                        .tf("sql.saved", table["name"].as_str().unwrap_or_default())
                        .replace("{rows}", &rows);
                    (true, text)
                }
                Err(e) => (false, session.explain(&e)),
            };
            let _ = message.try_set(Some(said));
        });
    };
    view! {
        <form class="save-result" data-test="sql-save" on:submit=save>
            <h2>{move || session.t("sql.keep")}</h2>
            <input data-test="sql-save-name" required placeholder=move || session.t("sql.table_name")
                prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            <select data-test="sql-save-mode" prop:value=mode on:change=move |ev| mode.set(event_target_value(&ev))>
                {move || offered().into_iter().map(|m| view! {
                    <option value=m selected=mode.with_untracked(|c| c == m)>{session.t(&format!("sql.mode.{m}"))}</option>
                }).collect_view()}
            </select>
            <input data-test="sql-save-description" placeholder=move || session.t("sql.description")
                prop:value=description on:input=move |ev| description.set(event_target_value(&ev))/>
            <button type="submit">{move || session.t("sql.save")}</button>
        </form>
    }
}

/// The output tables the user may read, each opened in the editor, copied or dropped.
#[component]
fn OutputTables(
    tables: RwSignal<Vec<Value>>,
    message: RwSignal<Option<(bool, String)>>,
    revision: RwSignal<u64>,
    open: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let done = move |answer: Result<Value, ApiError>, words: String| {
        let said = match answer {
            Ok(_) => {
                let _ = revision.try_update(|r| *r += 1);
                (true, words)
            }
            Err(e) => (false, session.explain(&e)),
        };
        let _ = message.try_set(Some(said));
    };
    let copy = move |name: String| {
        let Some(window) = web_sys::window() else {
            return;
        };
        let Ok(Some(to)) = window.prompt_with_message_and_default(
            &session.tf("sql.copy_to", &name),
            &format!("{name}_copy"),
        ) else {
            return;
        };
        let body = serde_json::json!({"to": to.trim()});
        leptos::task::spawn_local(async move {
            let answer = api::post(&format!("/api/sql/tables/{name}/copy"), &body).await;
            done(answer, session.tf("sql.copied", to.trim()));
        });
    };
    let drop_table = move |name: String| {
        let sure = web_sys::window()
            .and_then(|w| {
                w.confirm_with_message(&session.tf("sql.confirm_drop", &name))
                    .ok()
            })
            .unwrap_or(false);
        if !sure {
            return;
        }
        leptos::task::spawn_local(async move {
            let answer = api::delete(&format!("/api/sql/tables/{name}")).await;
            done(answer, session.tf("sql.dropped", &name));
        });
    };
    let rows = move || {
        let rights = session.rights();
        let lang = session.lang.get();
        tables
            .get()
            .into_iter()
            .map(|t| {
                let name = t["name"].as_str().unwrap_or_default().to_string();
                let columns = t["columns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let (opened, copied, dropped) = (name.clone(), name.clone(), name.clone());
                view! {
                    <tr data-table=name.clone()>
                        <td><strong>{name.clone()}</strong><br/><small>{t["description"].as_str().unwrap_or_default().to_string()}</small></td>
                        <td class="number">{grouped(t["row_count"].as_i64().unwrap_or_default())}</td>
                        <td><small>{columns}</small></td>
                        <td>{t["created_by"].as_str().unwrap_or_default().to_string()}</td>
                        <td>{when(t["updated_at"].as_str().unwrap_or_default(), lang)}</td>
                        <td class="actions">
                            <button type="button" data-test="table-open" on:click=move |_| open(opened.clone())>{session.t("sql.open")}</button>
                            {rights.allows(SQL, Op::Create).then(|| view! {
                                <button type="button" data-test="table-copy" on:click=move |_| copy(copied.clone())>{session.t("sql.copy")}</button>
                            })}
                            {rights.allows(SQL, Op::Delete).then(|| view! {
                                <button type="button" class="danger" data-test="table-drop" on:click=move |_| drop_table(dropped.clone())>{session.t("sql.drop")}</button>
                            })}
                        </td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <h2>{move || session.t("sql.tables")}</h2>
        <table class="records output-tables" data-test="output-tables">
            <thead><tr>
                <th>{move || session.t("sql.table_name")}</th>
                <th>{move || session.t("sql.row_count")}</th>
                <th>{move || session.t("sql.columns")}</th>
                <th>{move || session.t("imports.by")}</th>
                <th>{move || session.t("sql.updated")}</th>
                <th></th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
