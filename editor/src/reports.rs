//! The reports screen (`#/reports`, `#/reports/dashboards/{key}`, `#/reports/{key}`): the
//! dashboards and reports the user may view, a dashboard's widgets laid out on its 12-column
//! grid, each report drawn as its chart (bar, line, pie, funnel or table) in SVG from the rows
//! the server evaluated with the viewer's rights, its rows in a table beside it. A widget the
//! viewer may not see shows why in its place. Users with the rights make dashboards and arrange
//! them (add, drag, resize, retitle, remove widgets); reports are built in `report_builder`.

use std::collections::HashMap;

use leptos::prelude::*;
use serde_json::{Value, json};
use tabiji_model::Op;

use crate::arrange::{self, Widget};
use crate::charts::{self, BOTTOM, HEIGHT, LEFT, TOP, Table, WIDTH};
use crate::report_builder::ReportBuilder;
use crate::{Session, api, go_to};

/// What the screen shows.
#[derive(Clone, PartialEq, Debug)]
pub enum Shown {
    /// The first dashboard, if there is one.
    Start,
    Dashboard(String),
    Report(String),
    /// The report builder, for a new report or the one named.
    Builder(Option<String>),
}

/// `dashboards/{key}`, `edit/`, `edit/{key}`, `{key}` or nothing, as after `#/reports/`.
pub fn shown(rest: &str) -> Shown {
    match rest.split_once('/') {
        Some(("dashboards", key)) if !key.is_empty() => Shown::Dashboard(key.to_string()),
        Some(("edit", "")) => Shown::Builder(None),
        Some(("edit", key)) => Shown::Builder(Some(key.to_string())),
        None if !rest.is_empty() => Shown::Report(rest.to_string()),
        _ => Shown::Start,
    }
}

#[component]
pub fn ReportsScreen(shown: Shown) -> impl IntoView {
    let session = expect_context::<Session>();
    let dashboards = RwSignal::new(Vec::<Value>::new());
    let reports = RwSignal::new(Vec::<Value>::new());
    let problem = RwSignal::new(None::<String>);
    let opened = RwSignal::new(shown);
    leptos::task::spawn_local(async move {
        match api::get("/api/dashboards").await {
            Ok(body) => {
                let list = body["dashboards"].as_array().cloned().unwrap_or_default();
                if opened.get_untracked() == Shown::Start
                    && let Some(key) = list.first().and_then(|d| d["key"].as_str())
                {
                    let _ = opened.try_set(Shown::Dashboard(key.to_string()));
                }
                let _ = dashboards.try_set(list);
            }
            Err(e) => {
                let _ = problem.try_set(Some(session.explain(&e)));
            }
        }
        if let Ok(body) = api::get("/api/reports").await {
            let _ = reports.try_set(body["reports"].as_array().cloned().unwrap_or_default());
        }
    });
    let index =
        move |list: RwSignal<Vec<Value>>, kind: &'static str| {
            move || {
                list.get()
                .into_iter()
                .map(|item| {
                    let key = item["key"].as_str().unwrap_or_default().to_string();
                    let name = item["name"].as_str().unwrap_or(&key).to_string();
                    let (href, this) = if kind == "dashboards" {
                        (format!("#/reports/dashboards/{key}"), Shown::Dashboard(key.clone()))
                    } else {
                        (format!("#/reports/{key}"), Shown::Report(key.clone()))
                    };
                    let current = move || opened.get() == this;
                    view! { <li class:current=current><a href=href data-key=key>{name}</a></li> }
                })
                .collect_view()
            }
        };
    let may_create = move || session.rights().allows("reports", Op::Create);
    let board_key = RwSignal::new(String::new());
    let board_name = RwSignal::new(String::new());
    let create_board = move |_| {
        let key = board_key.get_untracked().trim().to_string();
        let name = board_name.get_untracked().trim().to_string();
        let body = json!({"key": key, "name": if name.is_empty() { key.clone() } else { name }, "widgets": []});
        leptos::task::spawn_local(async move {
            match api::post("/api/dashboards", &body).await {
                Ok(_) => go_to(&format!("#/reports/dashboards/{key}")),
                Err(e) => problem.set(Some(session.explain(&e))),
            }
        });
    };
    view! {
        <section class="reports-screen">
            <div class="toolbar">
                <h1>{move || session.t("nav.reports")}</h1>
                {move || may_create().then(|| view! {
                    <a class="button" href="#/reports/edit/" data-test="new-report">{session.t("reports.new")}</a>
                })}
            </div>
            <p class="error" role="alert">{move || problem.get()}</p>
            <div class="reports-layout">
                <aside class="reports-index">
                    <h2>{move || session.t("reports.dashboards")}</h2>
                    <ul data-test="dashboards">{index(dashboards, "dashboards")}</ul>
                    {move || may_create().then(|| view! {
                        <details class="new-dashboard" data-test="new-dashboard">
                            <summary>{session.t("reports.new_dashboard")}</summary>
                            <input data-test="dashboard-key" placeholder=session.t("reports.key") prop:value=board_key
                                on:input=move |ev| board_key.set(event_target_value(&ev))/>
                            <input data-test="dashboard-name" placeholder=session.t("reports.name") prop:value=board_name
                                on:input=move |ev| board_name.set(event_target_value(&ev))/>
                            <button class="primary" data-test="create-dashboard" disabled=move || board_key.with(|k| k.trim().is_empty())
                                on:click=create_board>{session.t("reports.create")}</button>
                        </details>
                    })}
                    <h2>{move || session.t("reports.reports")}</h2>
                    <ul data-test="reports">{index(reports, "reports")}</ul>
                </aside>
                <div class="reports-body">
                    {move || match opened.get() {
                        Shown::Dashboard(key) => view! { <Dashboard key=key reports=reports/> }.into_any(),
                        Shown::Report(key) => view! { <Report key=key/> }.into_any(),
                        Shown::Builder(key) => view! { <ReportBuilder key=key/> }.into_any(),
                        Shown::Start => view! { <p class="hint">{session.t("reports.none")}</p> }.into_any(),
                    }}
                </div>
            </div>
        </section>
    }
}

#[component]
fn Dashboard(key: String, reports: RwSignal<Vec<Value>>) -> impl IntoView {
    let session = expect_context::<Session>();
    let board = RwSignal::new(None::<Value>);
    // The widgets as arranged on screen, saved or not.
    let layout = RwSignal::new(Vec::<Widget>::new());
    // Each report's widget as the server evaluated it for the viewer: name, data or error.
    let drawn = RwSignal::new(HashMap::<String, Value>::new());
    let arranging = RwSignal::new(false);
    let dragged = RwSignal::new(None::<usize>);
    let name = RwSignal::new(String::new());
    let added = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let path = format!("/api/dashboards/{}", api::encoded(&key));
    let may_edit = move || session.rights().allows("reports", Op::Edit);
    let load = {
        let path = path.clone();
        move || {
            let path = path.clone();
            leptos::task::spawn_local(async move {
                match api::get(&path).await {
                    Ok(body) => {
                        let widgets = arrange::widgets_of(&body);
                        let _ = drawn.try_set(
                            body["shown"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|w| {
                                    Some((w["report"].as_str()?.to_string(), w.clone()))
                                })
                                .collect(),
                        );
                        let _ = name.try_set(body["name"].as_str().unwrap_or_default().to_string());
                        // An empty dashboard opens ready to be filled.
                        if widgets.is_empty() && may_edit() {
                            let _ = arranging.try_set(true);
                        }
                        let _ = layout.try_set(widgets);
                        let _ = board.try_set(Some(body));
                        let _ = problem.try_set(None);
                    }
                    Err(e) => {
                        let _ = problem.try_set(Some(session.explain(&e)));
                    }
                }
            });
        }
    };
    load();
    let add_widget = move |_| {
        let report = added.get_untracked();
        if !layout
            .try_update(|l| arrange::add(l, &report))
            .unwrap_or(false)
        {
            return;
        }
        if drawn.with_untracked(|d| d.contains_key(&report)) {
            return;
        }
        leptos::task::spawn_local(async move {
            let shown =
                match api::get(&format!("/api/reports/{}/data", api::encoded(&report))).await {
                    Ok(data) => json!({"data": data}),
                    Err(e) => json!({"error": {"message": session.explain(&e)}}),
                };
            let _ = drawn.try_update(|d| d.insert(report, shown));
        });
    };
    let save_path = path.clone();
    let board_key = key.clone();
    let save_layout = move |_| {
        let body = arrange::body(&board_key, &name.get_untracked(), &layout.get_untracked());
        let path = save_path.clone();
        let reload = load.clone();
        leptos::task::spawn_local(async move {
            match api::put(&path, &body).await {
                Ok(_) => {
                    arranging.set(false);
                    reload();
                }
                Err(e) => problem.set(Some(session.explain(&e))),
            }
        });
    };
    let cancel = move |_| {
        if let Some(b) = board.get_untracked() {
            layout.set(arrange::widgets_of(&b));
            name.set(b["name"].as_str().unwrap_or_default().to_string());
        }
        arranging.set(false);
    };
    let delete_path = path.clone();
    let delete_board = move |_| {
        let path = delete_path.clone();
        leptos::task::spawn_local(async move {
            match api::delete(&path).await {
                Ok(_) => go_to("#/reports/"),
                Err(e) => problem.set(Some(session.explain(&e))),
            }
        });
    };
    let report_name = move |report: &str| {
        reports.with(|list| {
            list.iter()
                .find(|r| r["key"] == report)
                .and_then(|r| r["name"].as_str().map(str::to_string))
        })
    };
    let widgets = move || {
        let editing = arranging.get();
        layout
            .get()
            .into_iter()
            .enumerate()
            .map(|(index, widget)| {
                let shown = drawn.with(|d| d.get(&widget.report).cloned()).unwrap_or(Value::Null);
                let title = widget
                    .title
                    .clone()
                    .or_else(|| shown["name"].as_str().map(str::to_string))
                    .or_else(|| report_name(&widget.report))
                    .unwrap_or_else(|| widget.report.clone());
                let body = match shown.get("data") {
                    Some(data) if !data.is_null() => chart(data.clone(), session).into_any(),
                    _ => view! {
                        <p class="error" data-test="widget-error">
                            {shown["error"]["message"].as_str().unwrap_or_default().to_string()}
                        </p>
                    }
                    .into_any(),
                };
                let controls = editing.then(|| {
                    let typed = widget.title.clone().unwrap_or_default();
                    let width = widget.width;
                    let count = layout.with_untracked(Vec::len);
                    let widths = (1..=arrange::COLUMNS)
                        .map(|w| view! { <option value=w.to_string() selected=w == width>{w.to_string()}</option> })
                        .collect_view();
                    view! {
                        <div class="widget-controls" data-test="widget-controls">
                            <input data-field="title" placeholder=session.t("reports.title") prop:value=typed
                                on:change=move |ev| {
                                    let text = event_target_value(&ev);
                                    layout.update(|l| arrange::retitle(&mut l[index], &text));
                                }/>
                            <label>{session.t("reports.width")}
                                <select data-field="width" on:change=move |ev| {
                                    let chosen: u8 = event_target_value(&ev).parse().unwrap_or(width);
                                    layout.update(|l| arrange::widen(&mut l[index], chosen as i8 - width as i8));
                                }>{widths}</select>
                            </label>
                            <button data-test="earlier" title=session.t("reports.earlier") disabled=index == 0
                                on:click=move |_| layout.update(|l| arrange::step(l, index, -1))>"←"</button>
                            <button data-test="later" title=session.t("reports.later") disabled={index + 1 >= count}
                                on:click=move |_| layout.update(|l| arrange::step(l, index, 1))>"→"</button>
                            <button data-test="remove-widget" title=session.t("reports.remove")
                                on:click=move |_| layout.update(|l| { l.remove(index); })>"×"</button>
                        </div>
                    }
                });
                view! {
                    <figure class=format!("widget span-{}", widget.width.clamp(1, arrange::COLUMNS))
                        class:dragged=move || dragged.get() == Some(index)
                        data-report=widget.report.clone() data-index=index.to_string()
                        draggable=if editing { "true" } else { "false" }
                        on:dragstart=move |ev: web_sys::DragEvent| {
                            if let Some(data) = ev.data_transfer() {
                                let _ = data.set_data("text/plain", &index.to_string());
                                data.set_effect_allowed("move");
                            }
                            dragged.set(Some(index));
                        }
                        on:dragover=move |ev: web_sys::DragEvent| {
                            if dragged.get_untracked().is_some() { ev.prevent_default(); }
                        }
                        on:drop=move |ev: web_sys::DragEvent| {
                            ev.prevent_default();
                            if let Some(from) = dragged.get_untracked() {
                                layout.update(|l| arrange::shift(l, from, index));
                            }
                            dragged.set(None);
                        }
                        on:dragend=move |_| dragged.set(None)>
                        <figcaption>{title}</figcaption>
                        {controls}
                        {body}
                    </figure>
                }
            })
            .collect_view()
    };
    let report_options = move || {
        std::iter::once(
            view! { <option value="" selected=true>{session.t("props.none")}</option> }.into_any(),
        )
        .chain(reports.get().into_iter().map(|r| {
            let key = r["key"].as_str().unwrap_or_default().to_string();
            let text = r["name"].as_str().unwrap_or(&key).to_string();
            view! { <option value=key>{text}</option> }.into_any()
        }))
        .collect_view()
    };
    view! {
        <div class="dashboard" class:arranging=arranging data-test="dashboard" data-key=key.clone()>
            <div class="dashboard-head">
                {move || if arranging.get() {
                    view! {
                        <input class="dashboard-title" data-test="dashboard-title" prop:value=name
                            on:input=move |ev| name.set(event_target_value(&ev))/>
                    }.into_any()
                } else {
                    view! { <h2>{move || name.get()}</h2> }.into_any()
                }}
                {move || (may_edit() && !arranging.get() && board.with(Option::is_some)).then(|| view! {
                    <button data-test="arrange" on:click=move |_| arranging.set(true)>{session.t("reports.arrange")}</button>
                })}
            </div>
            {move || arranging.get().then(|| view! {
                <div class="arrange-bar" data-test="arrange-bar">
                    <select data-test="add-report" on:change=move |ev| added.set(event_target_value(&ev))>{report_options}</select>
                    <button data-test="add-widget" disabled={move || added.with(String::is_empty) || layout.with(|l| l.len() >= arrange::MAX_WIDGETS)}
                        on:click=add_widget>{session.t("reports.add_widget")}</button>
                    <span class="hint">{session.t("reports.drag_hint")}</span>
                    <button class="primary" data-test="save-layout" on:click=save_layout.clone()>{session.t("reports.save_layout")}</button>
                    <button data-test="cancel-layout" on:click=cancel>{session.t("reports.cancel")}</button>
                    {session.rights().allows("reports", Op::Delete).then(|| view! {
                        <button class="danger" data-test="delete-dashboard" on:click=delete_board.clone()>{session.t("reports.delete_dashboard")}</button>
                    })}
                </div>
            })}
            <p class="error" role="alert">{move || problem.get()}</p>
            <div class="widgets">{widgets}</div>
        </div>
    }
}

#[component]
fn Report(key: String) -> impl IntoView {
    let session = expect_context::<Session>();
    let report = RwSignal::new(None::<Value>);
    let data = RwSignal::new(None::<Result<Value, String>>);
    let (read, evaluated) = (
        format!("/api/reports/{key}"),
        format!("/api/reports/{key}/data"),
    );
    leptos::task::spawn_local(async move {
        if let Ok(body) = api::get(&read).await {
            let _ = report.try_set(Some(body));
        }
        let answer = api::get(&evaluated).await.map_err(|e| session.explain(&e));
        let _ = data.try_set(Some(answer));
    });
    let figure_key = key.clone();
    let edit_key = key.clone();
    view! {
        <div class="report" data-test="report" data-key=key.clone()>
            <div class="dashboard-head">
                <h2>{move || report.get().and_then(|r| r["name"].as_str().map(str::to_string))}</h2>
                {move || session.rights().allows("reports", Op::Edit).then(|| view! {
                    <a class="button" data-test="edit-report" href=format!("#/reports/edit/{}", edit_key.clone())>{session.t("reports.edit")}</a>
                })}
            </div>
            <p class="hint">{move || report.get().and_then(|r| r["description"].as_str().map(str::to_string))}</p>
            {move || data.get().map(|answer| match answer {
                Ok(d) => view! {
                    <figure class="widget span-12" data-report=figure_key.clone()>{chart(d.clone(), session)}</figure>
                    {rows_under(&d)}
                }.into_any(),
                Err(why) => view! { <p class="error" data-test="widget-error">{why}</p> }.into_any(),
            })}
        </div>
    }
}

/// A report's rows drawn as its chart; `table` draws the rows themselves.
pub fn chart(data: Value, session: Session) -> impl IntoView {
    let table = charts::table_of(&data);
    let kind = data["chart"].as_str().unwrap_or("table").to_string();
    let truncated = data["truncated"].as_bool() == Some(true);
    let drawing = match kind.as_str() {
        "bar" => bar_chart(&table).into_any(),
        "line" => line_chart(&table).into_any(),
        "pie" => pie_chart(&table).into_any(),
        "funnel" => funnel_chart(&table).into_any(),
        _ => rows_table(&data).into_any(),
    };
    view! {
        <div class="chart" data-chart=kind>
            {drawing}
            {truncated.then(|| view! { <p class="hint">{session.t("reports.truncated")}</p> })}
        </div>
    }
}

fn legend(table: &Table) -> impl IntoView + use<> {
    let names: Vec<String> = table.series.iter().map(|(n, _)| n.clone()).collect();
    (names.len() > 1).then(|| {
        view! {
            <ul class="legend">
                {names.into_iter().enumerate().map(|(i, n)| view! {
                    <li><span class=format!("swatch series-{}", i % 6)></span>{n}</li>
                }).collect_view()}
            </ul>
        }
    })
}

fn value_axis(top: f64) -> impl IntoView {
    charts::ticks(top)
        .into_iter()
        .map(|tick| {
            let y = charts::y_of(tick, top);
            view! {
                <line class="grid" x1=LEFT y1=y x2=WIDTH y2=y/>
                <text class="tick" x=LEFT - 6.0 y=y + 4.0 text-anchor="end">{charts::value_text(tick)}</text>
            }
        })
        .collect_view()
}

fn category_axis(labels: &[String]) -> impl IntoView + use<> {
    let count = labels.len();
    labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            view! {
                <text class="category" x=charts::x_of(i, count) y=HEIGHT - BOTTOM + 16.0 text-anchor="middle">
                    {label.clone()}
                </text>
            }
        })
        .collect_view()
}

fn view_box() -> String {
    format!("0 0 {WIDTH} {HEIGHT}")
}

fn bar_chart(table: &Table) -> impl IntoView + use<> {
    let top = charts::top_of(table);
    let labels = table.labels.clone();
    let bars = charts::bars(table, top)
        .into_iter()
        .map(|b| {
            view! {
                <rect class=format!("bar series-{}", b.series % 6) x=b.x y=b.y width=b.width height=b.height
                    data-value=b.value>
                    <title>{charts::value_text(b.value)}</title>
                </rect>
            }
        })
        .collect_view();
    view! {
        <svg class="chart-svg" viewBox=view_box() role="img">
            {value_axis(top)}
            {bars}
            {category_axis(&labels)}
        </svg>
        {legend(table)}
    }
}

fn line_chart(table: &Table) -> impl IntoView + use<> {
    let top = charts::top_of(table);
    let labels = table.labels.clone();
    let lines = table
        .series
        .iter()
        .enumerate()
        .map(|(i, (_, values))| {
            // A dot on each value, so that a line of one point is seen too.
            let dots = values
                .iter()
                .enumerate()
                .map(|(at, &value)| {
                    view! {
                        <circle class=format!("dot series-{}", i % 6) cx=charts::x_of(at, values.len())
                            cy=charts::y_of(value, top) r="3.5" data-value=value>
                            <title>{charts::value_text(value)}</title>
                        </circle>
                    }
                })
                .collect_view();
            view! {
                <polyline class=format!("line series-{}", i % 6) points=charts::line_points(values, top)/>
                {dots}
            }
        })
        .collect_view();
    view! {
        <svg class="chart-svg" viewBox=view_box() role="img">
            {value_axis(top)}
            {lines}
            {category_axis(&labels)}
        </svg>
        {legend(table)}
    }
}

fn pie_chart(table: &Table) -> impl IntoView + use<> {
    let values = table
        .series
        .first()
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let radius = (HEIGHT - TOP * 2.0) / 2.0;
    let slices = charts::slices(&values, radius + TOP, HEIGHT / 2.0, radius);
    let paths = slices
        .iter()
        .enumerate()
        .map(|(i, s)| {
            view! {
                <path class=format!("slice series-{}", i % 6) d=s.path.clone() data-share=s.share>
                    <title>{format!("{} {:.1}%", table.labels.get(i).cloned().unwrap_or_default(), s.share * 100.0)}</title>
                </path>
            }
        })
        .collect_view();
    let keys = table
        .labels
        .iter()
        .zip(values.iter())
        .enumerate()
        .map(|(i, (label, value))| {
            view! { <li><span class=format!("swatch series-{}", i % 6)></span>{format!("{label}: {}", charts::value_text(*value))}</li> }
        })
        .collect_view();
    view! {
        <div class="pie">
            <svg class="chart-svg" viewBox=format!("0 0 {} {HEIGHT}", radius * 2.0 + TOP * 2.0) role="img">{paths}</svg>
            <ul class="legend">{keys}</ul>
        </div>
    }
}

fn funnel_chart(table: &Table) -> impl IntoView + use<> {
    let names: Vec<String> = table.series.iter().map(|(n, _)| n.clone()).collect();
    let steps = charts::funnel(table)
        .into_iter()
        .map(|b| {
            let name = names.get(b.series).cloned().unwrap_or_default();
            view! {
                <rect class=format!("bar series-{}", b.series % 6) x=b.x y=b.y width=b.width height=b.height data-value=b.value/>
                <text class="step" x=WIDTH / 2.0 y=b.y + b.height / 2.0 + 4.0 text-anchor="middle">
                    {format!("{name}: {}", charts::value_text(b.value))}
                </text>
            }
        })
        .collect_view();
    view! { <svg class="chart-svg" viewBox=view_box() role="img">{steps}</svg> }
}

/// The rows under a chart, unless the chart is the table of them.
pub fn rows_under(data: &Value) -> Option<impl IntoView + use<>> {
    (data["chart"].as_str() != Some("table")).then(|| rows_table(data))
}

/// The rows as a table: dimensions, then measures.
fn rows_table(data: &Value) -> impl IntoView + use<> {
    let columns: Vec<String> = charts::names(data, "dimensions")
        .into_iter()
        .chain(charts::names(data, "measures"))
        .collect();
    let rows = data["rows"].as_array().cloned().unwrap_or_default();
    let head = columns
        .iter()
        .map(|c| view! { <th>{c.clone()}</th> })
        .collect_view();
    let body = rows
        .into_iter()
        .map(|row| {
            let cells = columns
                .iter()
                .map(|c| view! { <td>{charts::text(&row[c.as_str()])}</td> })
                .collect_view();
            view! { <tr>{cells}</tr> }
        })
        .collect_view();
    view! {
        <table class="records report-rows" data-test="report-rows">
            <thead><tr>{head}</tr></thead>
            <tbody>{body}</tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_what_is_shown() {
        assert_eq!(shown(""), Shown::Start);
        assert_eq!(shown("dashboards/home"), Shown::Dashboard("home".into()));
        assert_eq!(shown("dashboards/"), Shown::Start);
        assert_eq!(shown("edit/"), Shown::Builder(None));
        assert_eq!(shown("edit/sales"), Shown::Builder(Some("sales".into())));
        assert_eq!(shown("edit"), Shown::Report("edit".into()));
        assert_eq!(
            shown("sales_by_month"),
            Shown::Report("sales_by_month".into())
        );
    }
}
