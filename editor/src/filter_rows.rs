//! Conditions on fields as rows (field, operator, value), matched all or any: the segment
//! builder of the list screens and the report builder's filter. `conditions` reads the rows.

use leptos::prelude::*;
use tabiji_model::field::{FieldDef, FieldType};

use crate::Session;
use crate::conditions::{self, Condition};
use crate::i18n;

#[component]
pub fn FilterRows(
    /// The fields the user may use.
    fields: RwSignal<Vec<FieldDef>>,
    rows: RwSignal<Vec<Condition>>,
    /// Any condition (true) or all of them.
    any: RwSignal<bool>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let label = |field: &FieldDef, lang| i18n::label(&field.label, lang);
    let field_options = move |current: String| {
        let lang = session.lang.get();
        std::iter::once(view! { <option value="" selected=current.is_empty()>{session.t("props.none")}</option> }.into_any())
            .chain(fields.get().into_iter().map(|f| {
                let chosen = f.key == current;
                let text = label(&f, lang);
                view! { <option value=f.key.clone() selected=chosen>{text}</option> }.into_any()
            }))
            .collect_view()
    };

    let condition_rows = move || {
        let count_rows = rows.with(Vec::len);
        (0..count_rows)
            .map(|index| {
                let row = rows.with(|r| r[index].clone());
                let ops = fields.with(|f| {
                    f.iter()
                        .find(|f| f.key == row.field)
                        .map(conditions::operators)
                        .unwrap_or_default()
                });
                let op_options = ops
                    .iter()
                    .map(|op| {
                        let chosen = *op == row.op;
                        view! { <option value=*op selected=chosen>{session.t(&format!("op.{op}"))}</option> }
                    })
                    .collect_view();
                let wants_value = conditions::takes_value(&row.op);
                // One option of a single choice is picked from its options.
                let choices = fields.with(|f| {
                    f.iter()
                        .find(|f| f.key == row.field)
                        .and_then(|f| match &f.ty {
                            FieldType::SingleChoice { options } if matches!(row.op.as_str(), "eq" | "ne") => {
                                Some(options.clone())
                            }
                            _ => None,
                        })
                });
                let value_input = match choices {
                    Some(options) => {
                        let current = row.value.clone();
                        let options = std::iter::once(String::new())
                            .chain(options)
                            .map(|o| {
                                let chosen = o == current;
                                view! { <option value=o.clone() selected=chosen>{o.clone()}</option> }
                            })
                            .collect_view();
                        view! {
                            <select data-field="value" on:change=move |ev| {
                                let text = event_target_value(&ev);
                                rows.update(|r| r[index].value = text);
                            }>{options}</select>
                        }
                        .into_any()
                    }
                    None => view! {
                        <input data-field="value" prop:value=row.value.clone() on:change=move |ev| {
                            let text = event_target_value(&ev);
                            rows.update(|r| r[index].value = text);
                        }/>
                    }
                    .into_any(),
                };
                view! {
                    <div class="condition" class:incomplete=conditions::incomplete(&row) data-row=index.to_string()>
                        <select data-field="field" on:change=move |ev| {
                            let key = event_target_value(&ev);
                            let first = fields.with(|f| f.iter().find(|f| f.key == key).and_then(|f| conditions::operators(f).first().copied()).unwrap_or_default());
                            rows.update(|r| r[index] = Condition { field: key, op: first.to_string(), value: String::new() });
                        }>{field_options(row.field.clone())}</select>
                        <select data-field="op" on:change=move |ev| {
                            let op = event_target_value(&ev);
                            rows.update(|r| r[index].op = op);
                        }>{op_options}</select>
                        {wants_value.then_some(value_input)}
                        <button data-test="remove-condition" title=session.t("contacts.remove") on:click=move |_| rows.update(|r| {
                            r.remove(index);
                            if r.is_empty() { r.push(Condition::default()); }
                        })>"×"</button>
                    </div>
                }
            })
            .collect_view()
    };

    view! {
        <div class="match">
            <label><input type="radio" name="match" prop:checked=move || !any.get() on:change=move |_| any.set(false)/>{move || session.t("contacts.all")}</label>
            <label><input type="radio" name="match" data-test="match-any" prop:checked=move || any.get() on:change=move |_| any.set(true)/>{move || session.t("contacts.any")}</label>
        </div>
        {condition_rows}
        <button data-test="add-condition" on:click=move |_| rows.update(|r| r.push(Condition::default()))>{move || session.t("contacts.add")}</button>
    }
}
