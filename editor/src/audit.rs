//! The access log and live sessions screen (`#/audit`; administrators, as the API is; CF-3,
//! CF-11): who viewed, searched, exported or changed what and when, searched by user, action,
//! entity, record, outcome and days, paged newest first, exported as CSV; and every live
//! session, which an administrator can end.

use leptos::prelude::*;
use serde_json::Value;

use crate::logbook::{self, ACTIONS, Search};
use crate::record::when;
use crate::{Session, api};

/// Entries a page shows.
const PAGE: u32 = 100;

#[component]
pub fn AuditScreen() -> impl IntoView {
    let session = expect_context::<Session>();
    let form = RwSignal::new(Search::default());
    // The search shown, as sent: the export link follows it, not what is still being typed.
    let asked = RwSignal::new(String::new());
    let entries = RwSignal::new(Vec::<Value>::new());
    let next_before = RwSignal::new(None::<i64>);
    let kept_since = RwSignal::new(None::<String>);
    let problem = RwSignal::new(None::<String>);
    let sessions = RwSignal::new(Vec::<Value>::new());
    let mine = RwSignal::new(Vec::<i64>::new());

    let find = move |before: Option<i64>| {
        let query = match logbook::query(&form.get_untracked(), before) {
            Ok(q) => q,
            Err(reason) => {
                problem.set(Some(reason));
                return;
            }
        };
        leptos::task::spawn_local(async move {
            let path = format!("/api/admin/access-log?limit={PAGE}&{query}");
            match api::get(&path).await {
                Ok(page) => {
                    let found = page["entries"].as_array().cloned().unwrap_or_default();
                    let _ = entries.try_update(|list| {
                        if before.is_none() {
                            list.clear();
                        }
                        list.extend(found);
                    });
                    let _ = next_before.try_set(page["next_before_id"].as_i64());
                    let _ = kept_since.try_set(page["kept_since"].as_str().map(str::to_string));
                    let _ = problem.try_set(None);
                    if before.is_none() {
                        let _ = asked.try_set(
                            logbook::query(&form.get_untracked(), None).unwrap_or_default(),
                        );
                    }
                }
                Err(e) => {
                    let _ = problem.try_set(Some(session.explain(&e)));
                }
            }
        });
    };
    let load_sessions = move || {
        leptos::task::spawn_local(async move {
            if let Ok(own) = api::get("/api/auth/sessions").await {
                let _ = mine.try_set(
                    own["sessions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|s| s["current"] == true)
                        .filter_map(|s| s["id"].as_i64())
                        .collect(),
                );
            }
            match api::get("/api/admin/sessions").await {
                Ok(list) => {
                    let _ =
                        sessions.try_set(list["sessions"].as_array().cloned().unwrap_or_default());
                }
                Err(e) => {
                    let _ = problem.try_set(Some(session.explain(&e)));
                }
            }
        });
    };
    find(None);
    load_sessions();

    let end_session = move |id: i64| {
        leptos::task::spawn_local(async move {
            match api::delete(&format!("/api/admin/sessions/{id}")).await {
                Ok(_) => load_sessions(),
                Err(e) => {
                    let _ = problem.try_set(Some(session.explain(&e)));
                }
            }
        });
    };

    let input =
        move |test: &'static str, get: fn(&Search) -> String, set: fn(&mut Search, String)| {
            view! {
                <input data-test=test prop:value=move || form.with(get) on:input=move |ev| {
                    let text = event_target_value(&ev);
                    form.update(|f| set(f, text));
                }/>
            }
        };
    let day = move |test: &'static str, set: fn(&mut Search, String)| {
        view! {
            <input type="date" data-test=test on:change=move |ev| {
                let text = event_target_value(&ev);
                form.update(|f| set(f, text));
            }/>
        }
    };

    let rows = move || {
        let lang = session.lang.get();
        entries
            .get()
            .into_iter()
            .map(|e| {
                let denied = e["outcome"] == "denied";
                let entity = e["entity"].as_str().map(str::to_string);
                let record = e["record_id"].as_i64();
                let record_cell = match logbook::record_link(entity.as_deref(), record) {
                    Some(href) => view! { <a href=href>{record.map(|r| r.to_string())}</a> }.into_any(),
                    None => view! { <span>{record.map(|r| r.to_string())}</span> }.into_any(),
                };
                view! {
                    <tr data-entry=e["id"].to_string() class:denied=denied>
                        <td>{when(e["at"].as_str().unwrap_or_default(), lang)}</td>
                        <td data-column="login">{e["login"].as_str().unwrap_or_default().to_string()}</td>
                        <td data-column="action">{e["action"].as_str().unwrap_or_default().to_string()}</td>
                        <td data-column="entity">{entity}</td>
                        <td data-column="record">{record_cell}</td>
                        <td data-column="outcome">{session.t(&format!("audit.outcome.{}", e["outcome"].as_str().unwrap_or_default()))}</td>
                        <td class="detail">{e["detail"].as_str().unwrap_or_default().to_string()}</td>
                    </tr>
                }
            })
            .collect_view()
    };

    let session_rows = move || {
        let lang = session.lang.get();
        let own = mine.get();
        sessions
            .get()
            .into_iter()
            .map(|s| {
                let id = s["id"].as_i64().unwrap_or_default();
                let this = own.contains(&id);
                let time = |key: &str| when(s[key].as_str().unwrap_or_default(), lang);
                view! {
                    <tr data-session=id.to_string() data-login=s["login"].as_str().unwrap_or_default().to_string()>
                        <td>{s["login"].as_str().unwrap_or_default().to_string()}
                            {this.then(|| view! { <span class="hint">{format!(" ({})", session.t("audit.this_session"))}</span> })}</td>
                        <td>{time("created_at")}</td>
                        <td>{time("last_seen_at")}</td>
                        <td>{time("expires_at")}</td>
                        <td>{s["ip"].as_str().unwrap_or_default().to_string()}</td>
                        <td title=s["user_agent"].as_str().unwrap_or_default().to_string()>
                            {logbook::browser_of(s["user_agent"].as_str().unwrap_or_default())}
                        </td>
                        <td><button class="danger" data-test="end-session" disabled=this title=if this { session.t("audit.own_session") } else { String::new() }
                            on:click=move |_| end_session(id)>{session.t("audit.end")}</button></td>
                    </tr>
                }
            })
            .collect_view()
    };

    let actions = ACTIONS
        .into_iter()
        .map(|a| view! { <option value=a/> })
        .collect_view();
    let outcome_choice = move || {
        let current = form.with(|f| f.outcome.clone());
        ["", "ok", "denied"]
            .into_iter()
            .map(|o| {
                let text = if o.is_empty() {
                    session.t("audit.any")
                } else {
                    session.t(&format!("audit.outcome.{o}"))
                };
                view! { <option value=o selected=current == o>{text}</option> }
            })
            .collect_view()
    };

    view! {
        <section class="audit-screen">
            <div class="toolbar"><h1>{move || session.t("audit.title")}</h1></div>
            <p class="error" role="alert" data-test="problem">{move || problem.get()}</p>
            <h2>{move || session.t("audit.log")}</h2>
            <form class="audit-search" on:submit=move |ev| {
                ev.prevent_default();
                find(None);
            }>
                <label>{move || session.t("audit.login")}{input("login", |s| s.login.clone(), |s, t| s.login = t)}</label>
                <label>{move || session.t("audit.action")}
                    <input list="audit-actions" data-test="action" prop:value=move || form.with(|f| f.action.clone())
                        on:input=move |ev| { let text = event_target_value(&ev); form.update(|f| f.action = text); }/>
                    <datalist id="audit-actions">{actions}</datalist>
                </label>
                <label>{move || session.t("audit.entity")}{input("entity", |s| s.entity.clone(), |s, t| s.entity = t)}</label>
                <label>{move || session.t("audit.record")}{input("record", |s| s.record_id.clone(), |s, t| s.record_id = t)}</label>
                <label>{move || session.t("audit.outcome")}
                    <select data-test="outcome" on:change=move |ev| { let o = event_target_value(&ev); form.update(|f| f.outcome = o); }>{outcome_choice}</select>
                </label>
                <label>{move || session.t("audit.from")}{day("from", |s, t| s.from = t)}</label>
                <label>{move || session.t("audit.to")}{day("to", |s, t| s.to = t)}</label>
                <button class="primary" type="submit" data-test="find">{move || session.t("audit.find")}</button>
                <a class="button" data-test="export-log" download=""
                    href=move || format!("/api/admin/access-log/export?{}", asked.get())>{move || session.t("audit.export")}</a>
            </form>
            <p class="hint" data-test="kept-since">{move || kept_since.get().map(|at| session.tf("audit.kept_since", when(&at, session.lang.get())))}</p>
            <table class="records" data-test="access-log">
                <thead><tr>
                    <th>{move || session.t("audit.at")}</th>
                    <th>{move || session.t("audit.login")}</th>
                    <th>{move || session.t("audit.action")}</th>
                    <th>{move || session.t("audit.entity")}</th>
                    <th>{move || session.t("audit.record")}</th>
                    <th>{move || session.t("audit.outcome")}</th>
                    <th>{move || session.t("audit.detail")}</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <div class="pager">
                <button data-test="older" disabled=move || next_before.with(Option::is_none)
                    on:click=move |_| find(next_before.get_untracked())>{move || session.t("audit.older")}</button>
            </div>
            <h2>{move || session.t("audit.sessions")}</h2>
            <table class="records" data-test="sessions">
                <thead><tr>
                    <th>{move || session.t("audit.login")}</th>
                    <th>{move || session.t("audit.signed_in")}</th>
                    <th>{move || session.t("audit.last_seen")}</th>
                    <th>{move || session.t("audit.expires")}</th>
                    <th>"IP"</th>
                    <th>{move || session.t("audit.browser")}</th>
                    <th></th>
                </tr></thead>
                <tbody>{session_rows}</tbody>
            </table>
        </section>
    }
}
