//! tabiji's browser app: sign-in, the list of scenarios and the flow canvas.
//!
//! # Layout
//! - `canvas`: what the canvas does to a flow (add, connect, move, delete, lay out, undo);
//!   pure, tested natively.
//! - `i18n`: Japanese and English text.
//! - `api`: calls to the HTTP API (same origin, session cookie).
//! - `editor`: the flow canvas screen; `props`: its property panel.
//! - `list`: the tourists, businesses and inquiries screens (segment builder, live count,
//!   table); `conditions`: its rows as a filter of `model/`, pure.
//! - `card`: one record's card (fields, editing, timeline); `record`: what it shows and sends,
//!   pure.
//! - `content`: templates, parts and snippets (editing, versions, preview, test run); `draft`:
//!   what it shows and sends, pure.
//! - `imports`: partner files sent through import flows with their progress, counts and
//!   rejected rows, and the import history; `intake`: what it shows and sends, pure.
//! - `workspace`: the SQL workspace (queries, results, output tables); `results`: what it
//!   shows and sends, pure.
//! - `admin`: users, roles and their rights (administrators); `grants`: what it changes in a
//!   rights document, pure.
//! - `reports`: dashboards and reports drawn as SVG charts, dashboards arranged; `charts`: their
//!   geometry, pure; `arrange`: what arranging does to a dashboard's widgets, pure.
//! - `report_builder`: a report made by picking what to count, groupings, measures, conditions
//!   and a chart, previewed as it changes; `design`: the choices as a definition, pure.
//! - `audit`: the access log (search, pages, CSV export) and live sessions (administrators);
//!   `logbook`: its queries and what it shows, pure.
//! - `filter_rows`: conditions as rows, shared by the list screens and the report builder.
//! - this file: the app shell (session, language, hash routes `#/flows`, `#/flows/{id}`,
//!   `#/{entity}` and `#/{entity}/{id}` for the entities of [`RECORD_SCREENS`], `#/content`,
//!   `#/content/{kind}/{key}`, `#/imports`, `#/imports/{id}`, `#/sql`, `#/admin`, `#/audit`, `#/reports`,
//!   `#/reports/dashboards/{key}`, `#/reports/{key}`, `#/reports/edit/` and
//!   `#/reports/edit/{key}`).

mod admin;
mod api;
mod arrange;
mod audit;
mod canvas;
mod card;
mod charts;
mod conditions;
mod content;
mod design;
mod draft;
mod editor;
mod filter_rows;
mod grants;
mod i18n;
mod imports;
mod intake;
mod list;
mod logbook;
mod props;
mod record;
mod report_builder;
mod reports;
mod results;
mod workspace;

use leptos::prelude::*;
use serde_json::{Value, json};
use tabiji_model::{Op, Rights};

use crate::api::ApiError;
use crate::i18n::{Lang, t};

const LANGUAGE_KEY: &str = "tabiji.lang";

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// Shared by every screen: the language and who is signed in.
#[derive(Clone, Copy)]
pub struct Session {
    pub lang: RwSignal<Lang>,
    pub user: RwSignal<Option<Value>>,
    /// Why the last session ended, shown on the sign-in form.
    pub ended: RwSignal<Option<String>>,
    /// The signed-in user's rights, read once each time the user changes rather than at every
    /// check a screen makes.
    granted: Memo<Rights>,
}

impl Session {
    pub fn t(&self, key: &str) -> String {
        t(self.lang.get(), key)
    }

    /// [`Session::t`] with `{}` replaced by `value`.
    pub fn tf(&self, key: &str, value: impl std::fmt::Display) -> String {
        i18n::tf(self.lang.get(), key, value)
    }

    /// What the signed-in user may do (nothing when no one is signed in); tracked.
    pub fn rights(&self) -> Rights {
        self.granted.get()
    }

    /// A refusal or failure in words, signing out when the session has ended.
    pub fn explain(&self, error: &ApiError) -> String {
        match error {
            ApiError::Network => self.t("error.network"),
            ApiError::Unauthenticated => {
                self.user.set(None);
                self.t("error.session")
            }
            ApiError::SessionEnded(reason) => {
                self.ended.set(Some(reason.clone()));
                self.user.set(None);
                self.t("error.session")
            }
            ApiError::Refused {
                message, details, ..
            } if details.is_empty() => message.clone(),
            ApiError::Refused {
                message, details, ..
            } => {
                format!("{message}: {}", details.join("; "))
            }
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn initial_language() -> Lang {
    let stored = storage().and_then(|s| s.get_item(LANGUAGE_KEY).ok().flatten());
    let browser = web_sys::window().and_then(|w| w.navigator().language());
    Lang::from_code(&stored.or(browser).unwrap_or_default())
}

fn current_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// Opens another screen, as following a link would.
pub fn go_to(hash: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_hash(hash);
    }
}

/// The entities with a list screen and cards, in the order of the top bar.
pub const RECORD_SCREENS: [&str; 3] = ["tourists", "businesses", "inquiries"];

#[derive(Clone, PartialEq, Debug)]
enum Route {
    Flows,
    List(&'static str),
    Card(&'static str, i64),
    NewFlow,
    Flow(i64),
    Content(Option<draft::Kind>, Option<String>),
    Imports(Option<i64>),
    Sql,
    Admin,
    Audit,
    Reports(reports::Shown),
}

fn route(hash: &str) -> Route {
    let path = hash.trim_start_matches('#').trim_start_matches('/');
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    if let Some(entity) = RECORD_SCREENS.into_iter().find(|e| *e == head) {
        return match rest.parse::<i64>() {
            Ok(id) => Route::Card(entity, id),
            Err(_) => Route::List(entity),
        };
    }
    if head == "content" {
        let (kind, key) = rest.split_once('/').unwrap_or((rest, ""));
        return match draft::Kind::parse(kind) {
            Some(kind) if !key.is_empty() => Route::Content(Some(kind), Some(key.to_string())),
            kind => Route::Content(kind, None),
        };
    }
    if head == "reports" {
        return Route::Reports(reports::shown(rest));
    }
    if head == "admin" {
        return Route::Admin;
    }
    if head == "audit" {
        return Route::Audit;
    }
    if head == "sql" {
        return Route::Sql;
    }
    if head == "imports" {
        return Route::Imports(rest.parse().ok());
    }
    match path.strip_prefix("flows/") {
        Some("new") => Route::NewFlow,
        Some(id) => id.parse().map(Route::Flow).unwrap_or(Route::Flows),
        None => Route::Flows,
    }
}

#[component]
fn App() -> impl IntoView {
    let user = RwSignal::new(None::<Value>);
    let session = Session {
        lang: RwSignal::new(initial_language()),
        user,
        ended: RwSignal::new(None),
        granted: Memo::new(move |_| {
            user.with(|u| {
                u.as_ref()
                    .and_then(|u| serde_json::from_value(u["rights"].clone()).ok())
                    .unwrap_or_default()
            })
        }),
    };
    provide_context(session);
    let checked = RwSignal::new(false);
    let hash = RwSignal::new(current_hash());
    let _listener =
        window_event_listener(leptos::ev::hashchange, move |_| hash.set(current_hash()));
    Effect::new(move |_| {
        let lang = session.lang.get();
        if let Some(s) = storage() {
            let _ = s.set_item(LANGUAGE_KEY, lang.code());
        }
        if let Some(root) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = root.set_attribute("lang", lang.code());
        }
    });
    leptos::task::spawn_local(async move {
        match api::get("/api/auth/me").await {
            Ok(me) => session.user.set(Some(me["user"].clone())),
            Err(ApiError::SessionEnded(reason)) => session.ended.set(Some(reason)),
            Err(_) => {}
        }
        checked.set(true);
    });
    let screen = move || {
        if !checked.get() {
            return ().into_any();
        }
        if session.user.with(Option::is_none) {
            return view! { <Login/> }.into_any();
        }
        let rights = session.rights();
        match route(&hash.get()) {
            // Someone who may not view flows starts on the first screen they may view.
            Route::Flows if !rights.allows("flows", Op::View) => {
                match RECORD_SCREENS
                    .into_iter()
                    .find(|e| rights.allows(e, Op::View))
                {
                    Some(entity) => view! { <list::RecordList entity=entity/> }.into_any(),
                    None => view! { <FlowList/> }.into_any(),
                }
            }
            Route::Flows => view! { <FlowList/> }.into_any(),
            Route::List(entity) => view! { <list::RecordList entity=entity/> }.into_any(),
            Route::Card(entity, id) => view! { <card::RecordCard entity=entity id=id/> }.into_any(),
            Route::NewFlow => view! { <editor::FlowEditor id=None/> }.into_any(),
            Route::Flow(id) => view! { <editor::FlowEditor id=Some(id)/> }.into_any(),
            Route::Content(kind, key) => {
                view! { <content::ContentScreen kind=kind key=key/> }.into_any()
            }
            Route::Imports(run) => view! { <imports::ImportScreen run=run/> }.into_any(),
            Route::Sql => view! { <workspace::WorkspaceScreen/> }.into_any(),
            Route::Admin => view! { <admin::AdminScreen/> }.into_any(),
            Route::Audit => view! { <audit::AuditScreen/> }.into_any(),
            Route::Reports(shown) => view! { <reports::ReportsScreen shown=shown/> }.into_any(),
        }
    };
    view! {
        <header class="topbar">
            <a class="brand" href="#/flows">{move || session.t("app.title")}</a>
            <nav>
                <Show when=move || session.rights().allows("flows", Op::View)>
                    <a href="#/flows" data-test="nav-flows">{move || session.t("nav.flows")}</a>
                </Show>
                {move || {
                    // Only the screens of entities the user may view.
                    let rights = session.rights();
                    RECORD_SCREENS
                        .into_iter()
                        .filter(|entity| rights.allows(entity, Op::View))
                        .map(|entity| view! {
                            <a href=format!("#/{entity}") data-test=format!("nav-{entity}")>{session.t(&format!("nav.{entity}"))}</a>
                        })
                        .collect_view()
                }}
                <Show when=move || {
                    let rights = session.rights();
                    draft::Kind::ALL.iter().any(|k| rights.allows(k.rights_entity(), Op::View))
                }>
                    <a href="#/content" data-test="nav-content">{move || session.t("nav.content")}</a>
                </Show>
                <Show when=move || imports::offered(session)>
                    <a href="#/imports" data-test="nav-imports">{move || session.t("nav.imports")}</a>
                </Show>
                <Show when=move || session.rights().allows("reports", Op::View)>
                    <a href="#/reports" data-test="nav-reports">{move || session.t("nav.reports")}</a>
                </Show>
                <Show when=move || session.rights().allows("sql", Op::View)>
                    <a href="#/sql" data-test="nav-sql">{move || session.t("nav.sql")}</a>
                </Show>
                <Show when=move || admin::offered(session)>
                    <a href="#/admin" data-test="nav-admin">{move || session.t("nav.admin")}</a>
                    <a href="#/audit" data-test="nav-audit">{move || session.t("nav.audit")}</a>
                </Show>
                <button data-test="language" on:click=move |_| session.lang.update(|l| *l = l.other())>
                    {move || session.t("nav.language")}
                </button>
                <Show when=move || session.user.with(Option::is_some)>
                    <span class="who">{move || session.user.with(|u| u.as_ref().and_then(|u| u["login"].as_str().map(str::to_string)).unwrap_or_default())}</span>
                    <button data-test="logout" on:click=move |_| {
                        leptos::task::spawn_local(async move {
                            let _ = api::post("/api/auth/logout", &Value::Null).await;
                            session.ended.set(Some("signed_out".into()));
                            session.user.set(None);
                        });
                    }>{move || session.t("nav.logout")}</button>
                </Show>
            </nav>
        </header>
        <main>{screen}</main>
    }
}

#[component]
fn Login() -> impl IntoView {
    let session = expect_context::<Session>();
    let login = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let failure = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({"login": login.get_untracked(), "password": password.get_untracked()});
        leptos::task::spawn_local(async move {
            match api::post("/api/auth/login", &body).await {
                Ok(answer) => {
                    failure.set(None);
                    session.ended.set(None);
                    session.user.set(Some(answer["user"].clone()));
                }
                Err(ApiError::Unauthenticated) => failure.set(Some(session.t("login.failed"))),
                Err(ApiError::Refused { code, message, .. })
                    if matches!(
                        code.as_str(),
                        "login_locked" | "too_many_attempts" | "already_signed_in"
                    ) =>
                {
                    let key = format!("login.{code}");
                    let text = session.t(&key);
                    failure.set(Some(if text == key { message } else { text }));
                }
                Err(e) => failure.set(Some(session.explain(&e))),
            }
        });
    };
    view! {
        <form class="login" on:submit=submit>
            <h1>{move || session.t("login.title")}</h1>
            <Show when=move || session.ended.with(Option::is_some)>
                <p class="notice" role="status" data-test="session-ended">
                    {move || session.ended.get().map(|reason| session.t(&format!("ended.{reason}")))}
                </p>
            </Show>
            <label>{move || session.t("login.login")}
                <input name="login" autocomplete="username" required
                    prop:value=login on:input=move |ev| login.set(event_target_value(&ev))/>
            </label>
            <label>{move || session.t("login.password")}
                <input name="password" type="password" autocomplete="current-password" required
                    prop:value=password on:input=move |ev| password.set(event_target_value(&ev))/>
            </label>
            <button type="submit">{move || session.t("login.submit")}</button>
            <p class="error" role="alert">{move || failure.get()}</p>
        </form>
    }
}

#[component]
fn FlowList() -> impl IntoView {
    let session = expect_context::<Session>();
    let flows = RwSignal::new(None::<Vec<Value>>);
    let failure = RwSignal::new(None::<String>);
    leptos::task::spawn_local(async move {
        match api::get("/api/flows").await {
            Ok(answer) => flows.set(Some(
                answer["flows"].as_array().cloned().unwrap_or_default(),
            )),
            Err(e) => failure.set(Some(session.explain(&e))),
        }
    });
    let rows = move || {
        flows.get().map(|list| {
            if list.is_empty() {
                return view! { <tr><td colspan="4">{session.t("flows.none")}</td></tr> }.into_any();
            }
            list.into_iter()
                .map(|flow| {
                    let id = flow["id"].as_i64().unwrap_or_default();
                    let status = flow["status"].as_str().unwrap_or_default().to_string();
                    view! {
                        <tr data-flow=id.to_string()>
                            <td><a href=format!("#/flows/{id}")>{flow["name"].as_str().unwrap_or_default().to_string()}</a></td>
                            <td class=format!("status {status}")>{session.t(&format!("status.{status}"))}</td>
                            <td>{flow["current_version"].as_i64().map(|v| v.to_string()).unwrap_or_default()}</td>
                            <td>{flow["updated_at"].as_str().unwrap_or_default().chars().take(16).collect::<String>().replace('T', " ")}</td>
                        </tr>
                    }
                })
                .collect_view()
                .into_any()
        })
    };
    view! {
        <section class="flows">
            <div class="toolbar">
                <h1>{move || session.t("nav.flows")}</h1>
                <a class="button" href="#/flows/new" data-test="new-flow">{move || session.t("flows.new")}</a>
            </div>
            <p class="error" role="alert">{move || failure.get()}</p>
            <table>
                <thead><tr>
                    <th>{move || session.t("flows.name")}</th>
                    <th>{move || session.t("flows.status")}</th>
                    <th>{move || session.t("flows.version")}</th>
                    <th>{move || session.t("flows.updated")}</th>
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_name_the_screens() {
        assert!(route("") == Route::Flows);
        assert!(route("#/flows") == Route::Flows);
        assert!(route("#/flows/new") == Route::NewFlow);
        assert!(route("#/flows/12") == Route::Flow(12));
        assert!(route("#/flows/x") == Route::Flows);
        assert_eq!(route("#/tourists"), Route::List("tourists"));
        assert_eq!(route("#/tourists/42"), Route::Card("tourists", 42));
        assert_eq!(route("#/tourists/x"), Route::List("tourists"));
        assert_eq!(route("#/businesses/7"), Route::Card("businesses", 7));
        assert_eq!(route("#/inquiries"), Route::List("inquiries"));
        assert_eq!(route("#/content"), Route::Content(None, None));
        assert_eq!(
            route("#/content/snippets"),
            Route::Content(Some(draft::Kind::Snippets), None)
        );
        assert_eq!(
            route("#/content/templates/autumn"),
            Route::Content(Some(draft::Kind::Templates), Some("autumn".into()))
        );
        assert_eq!(route("#/content/flows/x"), Route::Content(None, None));
        assert_eq!(route("#/imports"), Route::Imports(None));
        assert_eq!(route("#/imports/17"), Route::Imports(Some(17)));
        assert_eq!(route("#/imports/x"), Route::Imports(None));
        assert_eq!(route("#/sql"), Route::Sql);
        assert_eq!(route("#/admin"), Route::Admin);
        assert_eq!(route("#/audit"), Route::Audit);
        assert_eq!(
            route("#/reports/dashboards/home"),
            Route::Reports(reports::Shown::Dashboard("home".into()))
        );
        assert_eq!(
            route("#/purchases/1"),
            Route::Flows,
            "only entities with screens"
        );
    }
}
