//! The reports screen (`#/reports`, `#/reports/dashboards/{key}`, `#/reports/{key}`): the
//! dashboards and reports the user may view, a dashboard's widgets laid out on its 12-column
//! grid, each report drawn as its chart (bar, line, pie, funnel or table) in SVG from the rows
//! the server evaluated with the viewer's rights, its rows in a table beside it. A widget the
//! viewer may not see shows why in its place.

use leptos::prelude::*;
use serde_json::Value;

use crate::Session;
use crate::api;
use crate::charts::{self, BOTTOM, HEIGHT, LEFT, TOP, Table, WIDTH};

/// What the screen shows.
#[derive(Clone, PartialEq, Debug)]
pub enum Shown {
    /// The first dashboard, if there is one.
    Start,
    Dashboard(String),
    Report(String),
}

/// `dashboards/{key}`, `{key}` or nothing, as after `#/reports/`.
pub fn shown(rest: &str) -> Shown {
    match rest.split_once('/') {
        Some(("dashboards", key)) if !key.is_empty() => Shown::Dashboard(key.to_string()),
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
    view! {
        <section class="reports-screen">
            <div class="toolbar"><h1>{move || session.t("nav.reports")}</h1></div>
            <p class="error" role="alert">{move || problem.get()}</p>
            <div class="reports-layout">
                <aside class="reports-index">
                    <h2>{move || session.t("reports.dashboards")}</h2>
                    <ul data-test="dashboards">{index(dashboards, "dashboards")}</ul>
                    <h2>{move || session.t("reports.reports")}</h2>
                    <ul data-test="reports">{index(reports, "reports")}</ul>
                </aside>
                <div class="reports-body">
                    {move || match opened.get() {
                        Shown::Dashboard(key) => view! { <Dashboard key=key/> }.into_any(),
                        Shown::Report(key) => view! { <Report key=key/> }.into_any(),
                        Shown::Start => view! { <p class="hint">{session.t("reports.none")}</p> }.into_any(),
                    }}
                </div>
            </div>
        </section>
    }
}

#[component]
fn Dashboard(key: String) -> impl IntoView {
    let session = expect_context::<Session>();
    let board = RwSignal::new(None::<Value>);
    let problem = RwSignal::new(None::<String>);
    let path = format!("/api/dashboards/{key}");
    leptos::task::spawn_local(async move {
        match api::get(&path).await {
            Ok(body) => {
                let _ = board.try_set(Some(body));
            }
            Err(e) => {
                let _ = problem.try_set(Some(session.explain(&e)));
            }
        }
    });
    let widgets = move || {
        board.get().map(|b| {
            b["shown"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|w| {
                    let width = w["width"].as_u64().unwrap_or(12).clamp(1, 12);
                    let title = w["title"]
                        .as_str()
                        .or_else(|| w["name"].as_str())
                        .or_else(|| w["report"].as_str())
                        .unwrap_or_default()
                        .to_string();
                    let body = match w.get("data") {
                        Some(data) if !data.is_null() => chart(data.clone(), session).into_any(),
                        _ => view! {
                            <p class="error" data-test="widget-error">
                                {w["error"]["message"].as_str().unwrap_or_default().to_string()}
                            </p>
                        }
                        .into_any(),
                    };
                    view! {
                        <figure class=format!("widget span-{width}") data-report=w["report"].as_str().unwrap_or_default().to_string()>
                            <figcaption>{title}</figcaption>
                            {body}
                        </figure>
                    }
                })
                .collect_view()
        })
    };
    view! {
        <div class="dashboard" data-test="dashboard" data-key=key.clone()>
            <h2>{move || board.get().and_then(|b| b["name"].as_str().map(str::to_string))}</h2>
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
    view! {
        <div class="report" data-test="report" data-key=key>
            <h2>{move || report.get().and_then(|r| r["name"].as_str().map(str::to_string))}</h2>
            <p class="hint">{move || report.get().and_then(|r| r["description"].as_str().map(str::to_string))}</p>
            {move || data.get().map(|answer| match answer {
                Ok(d) => view! {
                    <figure class="widget span-12" data-report=figure_key.clone()>{chart(d.clone(), session)}</figure>
                    {rows_table(&d)}
                }.into_any(),
                Err(why) => view! { <p class="error" data-test="widget-error">{why}</p> }.into_any(),
            })}
        </div>
    }
}

/// A report's rows drawn as its chart; `table` draws the rows themselves.
fn chart(data: Value, session: Session) -> impl IntoView {
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
            view! { <polyline class=format!("line series-{}", i % 6) points=charts::line_points(values, top)/> }
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
        assert_eq!(
            shown("sales_by_month"),
            Shown::Report("sales_by_month".into())
        );
    }
}
