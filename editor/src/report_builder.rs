//! The report builder (`#/reports/edit/` for a new report, `#/reports/edit/{key}` to change
//! one; MA-17): pick what to count (an entity's records or the messages flows sent), groupings,
//! measures, conditions and a chart; the server evaluates the definition with the user's rights
//! as it changes and the chart is drawn beside the form; then it is saved under a key. A
//! definition the form cannot show (an analysis, nested conditions) is edited as JSON.

use leptos::prelude::*;
use serde_json::{Value, json};
use tabiji_model::Op;
use tabiji_model::field::FieldDef;

use crate::conditions::Condition;
use crate::design::{self, Choices, Grouping, Measure, Source};
use crate::filter_rows::FilterRows;
use crate::i18n;
use crate::reports::{chart, rows_under};
use crate::{Session, api, go_to};

/// How long typing rests before the preview is asked for.
const SETTLE_MS: i32 = 300;

#[component]
pub fn ReportBuilder(key: Option<String>) -> impl IntoView {
    let session = expect_context::<Session>();
    let editing = key.clone();
    let form = RwSignal::new(Choices::default());
    let rows = RwSignal::new(vec![Condition::default()]);
    let any = RwSignal::new(false);
    // Set when the definition is edited as JSON rather than through the form.
    let written = RwSignal::new(None::<Value>);
    let json_text = RwSignal::new(String::new());
    let fields = RwSignal::new(Vec::<FieldDef>::new());
    let entities = RwSignal::new(Vec::<(String, Value)>::new());
    let flows = RwSignal::new(Vec::<(i64, String)>::new());
    let preview = RwSignal::new(None::<Result<Value, String>>);
    let message = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let new_key = RwSignal::new(String::new());
    // The saved report is read before the schema is asked for its entity's fields.
    let loaded = RwSignal::new(key.is_none());
    let asked = StoredValue::new(0_u64);

    leptos::task::spawn_local(async move {
        let _ = entities.try_set(api::entity_labels().await);
        if let Ok(answer) = api::get("/api/flows").await {
            let _ = flows.try_set(
                answer["flows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| Some((f["id"].as_i64()?, f["name"].as_str()?.to_string())))
                    .collect(),
            );
        }
    });
    if let Some(key) = key.clone() {
        leptos::task::spawn_local(async move {
            match api::get(&format!("/api/reports/{}", api::encoded(&key))).await {
                Ok(report) => {
                    let _ = name.try_set(report["name"].as_str().unwrap_or_default().to_string());
                    let _ = description.try_set(
                        report["description"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                    let definition = report["definition"].clone();
                    match design::choices_of(&definition) {
                        Some(choices) => {
                            let _ = rows.try_set(choices.conditions.clone());
                            let _ = any.try_set(choices.any);
                            let _ = form.try_set(choices);
                        }
                        None => {
                            let _ = json_text.try_set(
                                serde_json::to_string_pretty(&definition).unwrap_or_default(),
                            );
                            let _ = written.try_set(Some(definition));
                        }
                    }
                }
                Err(e) => {
                    let _ = message.try_set(Some(session.explain(&e)));
                }
            }
            let _ = loaded.try_set(true);
        });
    }

    // The fields of what is counted: the entity's, or the recipients' (tourists).
    let counted = Memo::new(move |_| {
        form.with(|f| match f.source {
            Source::Records => f.entity.clone(),
            Source::Messages => "tourists".to_string(),
        })
    });
    Effect::new(move |_| {
        if !loaded.get() {
            return;
        }
        let entity = counted.get();
        leptos::task::spawn_local(async move {
            match api::get(&format!("/api/schema/{}", api::encoded(&entity))).await {
                Ok(schema) => {
                    let _ = fields.try_set(
                        serde_json::from_value(schema["fields"].clone()).unwrap_or_default(),
                    );
                }
                Err(e) => {
                    let _ = fields.try_set(Vec::new());
                    let _ = message.try_set(Some(session.explain(&e)));
                }
            }
        });
    });

    let choices = Memo::new(move |_| Choices {
        conditions: rows.get(),
        any: any.get(),
        ..form.get()
    });
    let definition = Memo::new(move |_| match written.get() {
        Some(definition) => Ok(definition),
        None => fields.with(|f| design::definition(&choices.get(), f)),
    });

    // The preview follows the definition once typing rests; older answers are dropped.
    Effect::new(move |_| {
        let definition = definition.get();
        if !loaded.get() || (fields.with(Vec::is_empty) && written.with(Option::is_none)) {
            return;
        }
        let ticket = asked.get_value() + 1;
        asked.set_value(ticket);
        leptos::task::spawn_local(async move {
            api::pause(SETTLE_MS).await;
            if asked.try_get_value() != Some(ticket) {
                return;
            }
            let answer = match definition {
                Ok(definition) => api::post("/api/reports/run", &definition)
                    .await
                    .map_err(|e| session.explain(&e)),
                Err(reason) => Err(reason),
            };
            if asked.try_get_value() == Some(ticket) {
                let _ = preview.try_set(Some(answer));
            }
        });
    });

    let start_over = move |source: Source, entity: String| {
        rows.set(vec![Condition::default()]);
        any.set(false);
        form.set(Choices {
            source,
            entity,
            measures: vec![Measure {
                verb: if source == Source::Records {
                    "count".into()
                } else {
                    "sent".into()
                },
                field: String::new(),
            }],
            ..Choices::default()
        });
    };

    let source_choice = move || {
        let current = form.with(|f| f.source);
        [(Source::Records, "records"), (Source::Messages, "messages")]
            .into_iter()
            .map(|(source, name)| {
                view! {
                    <label>
                        <input type="radio" name="report-source" data-test=format!("source-{name}")
                            prop:checked=current == source
                            on:change=move |_| start_over(source, "tourists".into())/>
                        {session.t(&format!("reports.source.{name}"))}
                    </label>
                }
            })
            .collect_view()
    };

    let entity_choice = move || {
        let lang = session.lang.get();
        let current = form.with(|f| f.entity.clone());
        let options = entities
            .get()
            .into_iter()
            .map(|(key, label)| {
                let chosen = key == current;
                let text = serde_json::from_value(label)
                    .map(|l| i18n::label(&l, lang))
                    .unwrap_or_else(|_| key.clone());
                view! { <option value=key.clone() selected=chosen>{text}</option> }
            })
            .collect_view();
        view! {
            <label>{session.t("reports.entity")}
                <select data-test="entity" on:change=move |ev| start_over(Source::Records, event_target_value(&ev))>{options}</select>
            </label>
        }
    };

    let message_choice = move || {
        let current = form.with(|f| f.flow.clone());
        let options = std::iter::once(view! { <option value="" selected=current.is_empty()>{session.t("reports.every_flow")}</option> }.into_any())
            .chain(flows.get().into_iter().map(|(id, flow)| {
                let chosen = id.to_string() == current;
                view! { <option value=id.to_string() selected=chosen>{flow}</option> }.into_any()
            }))
            .collect_view();
        view! {
            <label>{session.t("reports.flow")}
                <select data-test="flow" on:change=move |ev| {
                    let flow = event_target_value(&ev);
                    form.update(move |f| f.flow = flow);
                }>{options}</select>
            </label>
            <label>{session.t("reports.period")}
                <input data-test="period" prop:value=move || form.with(|f| f.period.clone()) on:change=move |ev| {
                    let period = event_target_value(&ev);
                    form.update(move |f| f.period = period);
                }/>
            </label>
        }
    };

    // What a grouping may be: the entity's fields, or message groupings and tourists' fields.
    let group_options = move |current: String| {
        let lang = session.lang.get();
        let source = form.with(|f| f.source);
        let mut options = vec![(String::new(), session.t("props.none"))];
        if source == Source::Messages {
            options.extend(
                design::MESSAGE_GROUPS.map(|g| (g.to_string(), session.t(&format!("mgroup.{g}")))),
            );
        }
        fields.with(|list| {
            options.extend(list.iter().filter(|f| design::groupable(f)).map(|f| {
                let label = i18n::label(&f.label, lang);
                match source {
                    Source::Records => (f.key.clone(), label),
                    Source::Messages => (
                        format!("tourists.{}", f.key),
                        i18n::tf(lang, "reports.tourist_field", label),
                    ),
                }
            }))
        });
        options
            .into_iter()
            .map(|(key, text)| {
                let chosen = key == current;
                view! { <option value=key selected=chosen>{text}</option> }
            })
            .collect_view()
    };

    let group_rows = move || {
        let groups = form.with(|f| f.groups.clone());
        let source = form.with(|f| f.source);
        groups
            .into_iter()
            .enumerate()
            .map(|(index, group)| {
                let dated = source == Source::Records
                    && fields.with(|list| list.iter().any(|f| f.key == group.field && design::dated(f)));
                let bucket = group.bucket.clone();
                let buckets = std::iter::once((String::new(), session.t("reports.no_bucket")))
                    .chain(design::BUCKETS.map(|b| (b.to_string(), session.t(&format!("bucket.{b}")))))
                    .map(|(b, text)| {
                        let chosen = b == bucket;
                        view! { <option value=b selected=chosen>{text}</option> }
                    })
                    .collect_view();
                view! {
                    <div class="design-row" data-group=index.to_string()>
                        <select data-field="group" on:change=move |ev| {
                            let field = event_target_value(&ev);
                            let bucket = fields.with(|list| design::first_bucket(list.iter().find(|f| f.key == field)));
                            form.update(move |f| f.groups[index] = Grouping { field, bucket });
                        }>{group_options(group.field.clone())}</select>
                        {dated.then(|| view! {
                            <select data-field="bucket" on:change=move |ev| {
                                let bucket = event_target_value(&ev);
                                form.update(move |f| f.groups[index].bucket = bucket);
                            }>{buckets}</select>
                        })}
                        <button title=session.t("reports.remove") on:click=move |_| form.update(move |f| {
                            f.groups.remove(index);
                            if f.groups.is_empty() { f.groups.push(Grouping::default()); }
                        })>"×"</button>
                    </div>
                }
            })
            .collect_view()
    };

    let measure_rows = move || {
        let lang = session.lang.get();
        let (measures, source) = form.with(|f| (f.measures.clone(), f.source));
        measures
            .into_iter()
            .enumerate()
            .map(|(index, measure)| {
                let names: Vec<(String, String)> = match source {
                    Source::Records => design::VERBS.map(|v| (v.to_string(), session.t(&format!("verb.{v}")))).to_vec(),
                    Source::Messages => design::MESSAGE_MEASURES.map(|m| (m.to_string(), session.t(&format!("measure.{m}")))).to_vec(),
                };
                let verbs = names
                    .into_iter()
                    .map(|(v, text)| {
                        let chosen = v == measure.verb;
                        view! { <option value=v selected=chosen>{text}</option> }
                    })
                    .collect_view();
                let needs_field = source == Source::Records && measure.verb != "count";
                let current = measure.field.clone();
                let numeric = fields.with(|list| {
                    std::iter::once((String::new(), session.t("props.none")))
                        .chain(list.iter().filter(|f| design::numeric(f)).map(|f| (f.key.clone(), i18n::label(&f.label, lang))))
                        .map(|(key, text)| {
                            let chosen = key == current;
                            view! { <option value=key selected=chosen>{text}</option> }
                        })
                        .collect_view()
                });
                view! {
                    <div class="design-row" data-measure=index.to_string()>
                        <select data-field="verb" on:change=move |ev| {
                            let verb = event_target_value(&ev);
                            form.update(move |f| f.measures[index].verb = verb);
                        }>{verbs}</select>
                        {needs_field.then(|| view! {
                            <select data-field="measured" on:change=move |ev| {
                                let field = event_target_value(&ev);
                                form.update(move |f| f.measures[index].field = field);
                            }>{numeric}</select>
                        })}
                        <button title=session.t("reports.remove") on:click=move |_| form.update(move |f| {
                            f.measures.remove(index);
                            if f.measures.is_empty() { f.measures.push(Measure::default()); }
                        })>"×"</button>
                    </div>
                }
            })
            .collect_view()
    };

    let chart_choice = move || {
        let current = form.with(|f| f.chart.clone());
        let shown = choices.get();
        design::CHARTS
            .into_iter()
            .map(|chart| {
                let misfit = fields.with(|list| design::misfit(chart, &shown, list));
                let why = misfit.map(|k| session.t(k)).unwrap_or_default();
                view! {
                    <label class="chart-choice" class:misfit=misfit.is_some() title=why>
                        <input type="radio" name="report-chart" data-chart-choice=chart
                            prop:checked=current == chart disabled=misfit.is_some()
                            on:change=move |_| form.update(move |f| f.chart = chart.to_string())/>
                        {session.t(&format!("chart.{chart}"))}
                    </label>
                }
            })
            .collect_view()
    };

    let use_json = move |_| match serde_json::from_str::<Value>(&json_text.get_untracked()) {
        Ok(definition) => match design::choices_of(&definition) {
            Some(choices) => {
                written.set(None);
                rows.set(choices.conditions.clone());
                any.set(choices.any);
                form.set(choices);
            }
            None => written.set(Some(definition)),
        },
        Err(e) => message.set(Some(format!("JSON: {e}"))),
    };

    let saved_key = editing.clone();
    let save = move |_| {
        let Ok(definition) = definition.get_untracked() else {
            return;
        };
        let key = saved_key
            .clone()
            .unwrap_or_else(|| new_key.get_untracked().trim().to_string());
        let name_text = name.get_untracked().trim().to_string();
        let mut body = json!({
            "key": key,
            "name": if name_text.is_empty() { key.clone() } else { name_text },
            "definition": definition,
        });
        let text = description.get_untracked().trim().to_string();
        if !text.is_empty() {
            body["description"] = json!(text);
        }
        let existing = saved_key.is_some();
        leptos::task::spawn_local(async move {
            let path = format!("/api/reports/{}", api::encoded(&key));
            let answer = if existing {
                api::put(&path, &body).await
            } else {
                api::post("/api/reports", &body).await
            };
            match answer {
                Ok(_) => go_to(&format!("#/reports/{key}")),
                Err(e) => {
                    let _ = message.try_set(Some(session.explain(&e)));
                }
            }
        });
    };
    let deleted_key = editing.clone();
    let delete = move |_| {
        let Some(key) = deleted_key.clone() else {
            return;
        };
        leptos::task::spawn_local(async move {
            match api::delete(&format!("/api/reports/{}", api::encoded(&key))).await {
                Ok(_) => go_to("#/reports"),
                Err(e) => {
                    let _ = message.try_set(Some(session.explain(&e)));
                }
            }
        });
    };
    let may_delete = editing.is_some() && session.rights().allows("reports", Op::Delete);
    let is_new = editing.is_none();
    let heading_key = editing.clone().unwrap_or_default();

    view! {
        <div class="report-builder" data-test="report-builder">
            <h2>{move || if is_new { session.t("reports.new") } else { format!("{} {heading_key}", session.t("reports.editing")) }}</h2>
            <div class="design">
                <div class="design-form">
                    {move || written.with(Option::is_some).then(|| view! { <p class="hint" data-test="json-only">{session.t("reports.json_only")}</p> })}
                    <div class="design-parts" class:hidden=move || written.with(Option::is_some)>
                        <fieldset>
                            <legend>{move || session.t("reports.source")}</legend>
                            {source_choice}
                            {move || match form.with(|f| f.source) {
                                Source::Records => entity_choice().into_any(),
                                Source::Messages => message_choice().into_any(),
                            }}
                        </fieldset>
                        <fieldset data-test="groups">
                            <legend>{move || session.t("reports.group_by")}</legend>
                            {group_rows}
                            <button data-test="add-group" disabled={move || form.with(|f| f.groups.len() >= design::MAX_GROUPS)}
                                on:click=move |_| form.update(|f| f.groups.push(Grouping::default()))>{move || session.t("reports.add_group")}</button>
                        </fieldset>
                        <fieldset data-test="measures">
                            <legend>{move || session.t("reports.measures")}</legend>
                            {measure_rows}
                            <button data-test="add-measure" on:click=move |_| form.update(|f| f.measures.push(Measure::default()))>{move || session.t("reports.add_measure")}</button>
                        </fieldset>
                        <fieldset class="builder" data-test="conditions">
                            <legend>{move || session.t("reports.conditions")}</legend>
                            <FilterRows fields=fields rows=rows any=any/>
                        </fieldset>
                        <fieldset data-test="charts">
                            <legend>{move || session.t("reports.chart")}</legend>
                            {chart_choice}
                        </fieldset>
                    </div>
                    <details class="design-json" on:toggle=move |_| {
                        if written.with_untracked(Option::is_none) && let Ok(d) = definition.get_untracked() {
                            json_text.set(serde_json::to_string_pretty(&d).unwrap_or_default());
                        }
                    }>
                        <summary>{move || session.t("reports.json")}</summary>
                        <textarea data-test="definition-json" rows="14" prop:value=json_text
                            on:input=move |ev| json_text.set(event_target_value(&ev))></textarea>
                        <button data-test="use-json" on:click=use_json>{move || session.t("reports.use_json")}</button>
                    </details>
                    <div class="save-report">
                        {is_new.then(|| view! {
                            <input data-test="report-key" placeholder=move || session.t("reports.key") prop:value=new_key
                                on:input=move |ev| new_key.set(event_target_value(&ev))/>
                        })}
                        <input data-test="report-name" placeholder=move || session.t("reports.name") prop:value=name
                            on:input=move |ev| name.set(event_target_value(&ev))/>
                        <input data-test="report-description" placeholder=move || session.t("reports.description") prop:value=description
                            on:input=move |ev| description.set(event_target_value(&ev))/>
                        <button class="primary" data-test="save-report"
                            disabled=move || definition.with(Result::is_err) || (is_new && new_key.with(|k| k.trim().is_empty()))
                            on:click=save>{move || session.t("reports.save")}</button>
                        {may_delete.then(|| view! {
                            <button class="danger" data-test="delete-report" on:click=delete>{move || session.t("reports.delete")}</button>
                        })}
                    </div>
                    <p class="error" role="alert" data-test="design-problem">
                        {move || definition.get().err().or_else(|| message.get())}
                    </p>
                </div>
                <div class="design-preview" data-test="preview">
                    <h3>{move || session.t("reports.preview")}</h3>
                    {move || preview.get().map(|answer| match answer {
                        Ok(data) => view! {
                            <figure class="widget span-12">{chart(data.clone(), session)}</figure>
                            {rows_under(&data)}
                        }.into_any(),
                        Err(why) => view! { <p class="error" data-test="preview-error">{why}</p> }.into_any(),
                    })}
                </div>
            </div>
        </div>
    }
}
