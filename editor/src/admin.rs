//! The users and rights screen (`#/admin`, administrators only): users listed with their roles,
//! created, enabled or disabled, signed out everywhere and unlocked; roles created; a user's or
//! role's rights edited as a matrix of operations per entity and per system target, with field
//! access per field. Record rules are shown and kept as they are (they are set through the API).

use std::collections::BTreeSet;

use leptos::prelude::*;
use serde_json::{Value, json};
use tabiji_model::rights::SYSTEM_TARGETS;
use tabiji_model::{FieldAccess, Op, Rights};

use crate::Session;
use crate::api;
use crate::grants;
use crate::i18n::label;

/// Whose rights are open in the editor.
#[derive(Clone, PartialEq, Debug)]
enum Holder {
    User(String),
    Role(String),
}

type Said = RwSignal<Option<(bool, String)>>;

fn tell(message: Said, said: (bool, String)) {
    let _ = message.try_set(Some(said));
}

#[component]
pub fn AdminScreen() -> impl IntoView {
    let session = expect_context::<Session>();
    let users = RwSignal::new(Vec::<Value>::new());
    let roles = RwSignal::new(Vec::<Value>::new());
    let entities = RwSignal::new(Vec::<Value>::new());
    let message: Said = RwSignal::new(None);
    let holder = RwSignal::new(None::<Holder>);
    // Bumped by every change, so the lists show it.
    let revision = RwSignal::new(0_u64);
    Effect::new(move |_| {
        revision.track();
        leptos::task::spawn_local(async move {
            match api::get("/api/admin/users").await {
                Ok(body) => {
                    let _ = users.try_set(body["users"].as_array().cloned().unwrap_or_default());
                }
                Err(e) => tell(message, (false, session.explain(&e))),
            }
            if let Ok(body) = api::get("/api/admin/roles").await {
                let _ = roles.try_set(body["roles"].as_array().cloned().unwrap_or_default());
            }
        });
    });
    leptos::task::spawn_local(async move {
        if let Ok(body) = api::get("/api/schema").await {
            let _ = entities.try_set(body["entities"].as_array().cloned().unwrap_or_default());
        }
    });
    let act = move |path: String, words: &'static str| {
        leptos::task::spawn_local(async move {
            let said = match api::post(&path, &Value::Null).await {
                Ok(answer) => {
                    let n = answer["ended_sessions"].as_u64().unwrap_or_default();
                    (true, session.tf(words, n))
                }
                Err(e) => (false, session.explain(&e)),
            };
            tell(message, said);
        });
    };
    let user_rows = move || {
        users
            .get()
            .into_iter()
            .map(|u| {
                let login = u["login"].as_str().unwrap_or_default().to_string();
                let roles_text = u["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let yes = |v: &Value| if v.as_bool() == Some(true) { "✓" } else { "" };
                let (edit, out, unlock) = (login.clone(), login.clone(), login.clone());
                let current = {
                    let login = login.clone();
                    move || holder.get() == Some(Holder::User(login.clone()))
                };
                view! {
                    <tr data-user=login.clone() class:current=current class:inactive=u["active"] == false>
                        <td><strong>{login.clone()}</strong><br/><small>{u["display_name"].as_str().unwrap_or_default().to_string()}</small></td>
                        <td>{yes(&u["admin"])}</td>
                        <td>{yes(&u["active"])}</td>
                        <td>{roles_text}</td>
                        <td class="actions">
                            <button type="button" data-test="user-edit" on:click=move |_| holder.set(Some(Holder::User(edit.clone())))>{session.t("admin.edit")}</button>
                            <button type="button" data-test="user-logout" on:click=move |_| act(format!("/api/admin/users/{}/logout", api::encoded(&out)), "admin.logged_out")>{session.t("admin.logout")}</button>
                            <button type="button" data-test="user-unlock" on:click=move |_| act(format!("/api/admin/users/{}/unlock", api::encoded(&unlock)), "admin.unlocked")>{session.t("admin.unlock")}</button>
                        </td>
                    </tr>
                }
            })
            .collect_view()
    };
    let role_rows = move || {
        roles
            .get()
            .into_iter()
            .map(|r| {
                let name = r["name"].as_str().unwrap_or_default().to_string();
                let opened = name.clone();
                let current = {
                    let name = name.clone();
                    move || holder.get() == Some(Holder::Role(name.clone()))
                };
                view! {
                    <tr data-role=name.clone() class:current=current>
                        <td><strong>{name.clone()}</strong></td>
                        <td>{r["description"].as_str().unwrap_or_default().to_string()}</td>
                        <td class="actions">
                            <button type="button" data-test="role-edit" on:click=move |_| holder.set(Some(Holder::Role(opened.clone())))>{session.t("admin.edit_rights")}</button>
                        </td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <section class="admin-screen">
            <div class="toolbar"><h1>{move || session.t("nav.admin")}</h1></div>
            <p class="message" class:error=move || message.with(|m| matches!(m, Some((false, _))))
                role="status" data-test="admin-message">{move || message.get().map(|(_, text)| text)}</p>
            <div class="admin-layout">
                <div class="admin-lists">
                    <h2>{move || session.t("admin.users")}</h2>
                    <table class="records" data-test="users">
                        <thead><tr>
                            <th>{move || session.t("admin.login")}</th>
                            <th>{move || session.t("admin.administrator")}</th>
                            <th>{move || session.t("admin.active")}</th>
                            <th>{move || session.t("admin.roles")}</th>
                            <th></th>
                        </tr></thead>
                        <tbody>{user_rows}</tbody>
                    </table>
                    <NewUser roles=roles message=message revision=revision holder=holder/>
                    <h2>{move || session.t("admin.roles")}</h2>
                    <table class="records" data-test="roles">
                        <thead><tr>
                            <th>{move || session.t("admin.role")}</th>
                            <th>{move || session.t("admin.description")}</th>
                            <th></th>
                        </tr></thead>
                        <tbody>{role_rows}</tbody>
                    </table>
                    <NewRole message=message revision=revision holder=holder/>
                </div>
                {move || {
                    // Drawn again from what is stored whenever the lists are read again.
                    let h = holder.get()?;
                    let found = match &h {
                        Holder::User(login) => users.with(|l| l.iter().find(|u| u["login"] == login.as_str()).cloned()),
                        Holder::Role(name) => roles.with(|l| l.iter().find(|r| r["name"] == name.as_str()).cloned()),
                    }?;
                    Some(view! {
                        <RightsEditor holder=h found=found roles=roles entities=entities message=message revision=revision/>
                    })
                }}
            </div>
        </section>
    }
}

#[component]
fn NewUser(
    roles: RwSignal<Vec<Value>>,
    message: Said,
    revision: RwSignal<u64>,
    holder: RwSignal<Option<Holder>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let login = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let chosen = RwSignal::new(BTreeSet::<String>::new());
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({"login": login.get_untracked().trim(), "display_name": name.get_untracked().trim(),
            "password": password.get_untracked(), "roles": chosen.get_untracked()});
        leptos::task::spawn_local(async move {
            match api::post("/api/admin/users", &body).await {
                Ok(created) => {
                    let who = created["login"].as_str().unwrap_or_default().to_string();
                    tell(message, (true, session.tf("admin.user_created", &who)));
                    let _ = password.try_set(String::new());
                    let _ = login.try_set(String::new());
                    let _ = name.try_set(String::new());
                    let _ = chosen.try_set(BTreeSet::new());
                    let _ = revision.try_update(|r| *r += 1);
                    let _ = holder.try_set(Some(Holder::User(who)));
                }
                Err(e) => tell(message, (false, session.explain(&e))),
            }
        });
    };
    view! {
        <form class="admin-new" data-test="new-user" on:submit=create>
            <h3>{move || session.t("admin.new_user")}</h3>
            <input name="login" required autocomplete="off" placeholder=move || session.t("admin.login")
                prop:value=login on:input=move |ev| login.set(event_target_value(&ev))/>
            <input name="display_name" placeholder=move || session.t("admin.display_name")
                prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            <input name="password" type="password" required autocomplete="new-password" placeholder=move || session.t("admin.password")
                prop:value=password on:input=move |ev| password.set(event_target_value(&ev))/>
            <RoleChoices roles=roles chosen=chosen test="new-user-roles"/>
            <button type="submit">{move || session.t("admin.create")}</button>
        </form>
    }
}

/// A tick box per role; `chosen` holds the roles ticked.
#[component]
fn RoleChoices(
    roles: RwSignal<Vec<Value>>,
    chosen: RwSignal<BTreeSet<String>>,
    test: &'static str,
) -> impl IntoView {
    view! {
        <span class="choices" data-test=test>
            {move || roles.get().into_iter().filter_map(|r| r["name"].as_str().map(str::to_string)).map(|role| {
                let (held, toggled) = (role.clone(), role.clone());
                view! {
                    <label><input type="checkbox" data-role=role.clone()
                        prop:checked=move || chosen.with(|c| c.contains(&held))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            chosen.update(|c| { if on { c.insert(toggled.clone()); } else { c.remove(&toggled); } });
                        }/>{role}</label>
                }
            }).collect_view()}
        </span>
    }
}

#[component]
fn NewRole(
    message: Said,
    revision: RwSignal<u64>,
    holder: RwSignal<Option<Holder>>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({"name": name.get_untracked().trim(), "description": description.get_untracked().trim(),
            "rights": {}});
        leptos::task::spawn_local(async move {
            match api::post("/api/admin/roles", &body).await {
                Ok(created) => {
                    let role = created["name"].as_str().unwrap_or_default().to_string();
                    tell(message, (true, session.tf("admin.role_created", &role)));
                    let _ = name.try_set(String::new());
                    let _ = description.try_set(String::new());
                    let _ = revision.try_update(|r| *r += 1);
                    let _ = holder.try_set(Some(Holder::Role(role)));
                }
                Err(e) => tell(message, (false, session.explain(&e))),
            }
        });
    };
    view! {
        <form class="admin-new" data-test="new-role" on:submit=create>
            <h3>{move || session.t("admin.new_role")}</h3>
            <input name="name" required placeholder=move || session.t("admin.role")
                prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            <input name="description" placeholder=move || session.t("admin.description")
                prop:value=description on:input=move |ev| description.set(event_target_value(&ev))/>
            <button type="submit">{move || session.t("admin.create")}</button>
        </form>
    }
}

/// One user's or role's rights as a matrix, and for a user their flags and roles.
#[component]
fn RightsEditor(
    holder: Holder,
    /// The user or role as the server listed it.
    found: Value,
    roles: RwSignal<Vec<Value>>,
    entities: RwSignal<Vec<Value>>,
    message: Said,
    revision: RwSignal<u64>,
) -> impl IntoView {
    let session = expect_context::<Session>();
    let (is_user, key) = match &holder {
        Holder::User(login) => (true, login.clone()),
        Holder::Role(name) => (false, name.clone()),
    };
    let rights = RwSignal::new(
        serde_json::from_value::<Rights>(found["rights"].clone()).unwrap_or_default(),
    );
    let admin = RwSignal::new(found["admin"].as_bool().unwrap_or(false));
    let active = RwSignal::new(found["active"].as_bool().unwrap_or(true));
    let display_name = RwSignal::new(
        found["display_name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let held_roles = RwSignal::new(
        found["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect::<BTreeSet<_>>(),
    );
    let password = RwSignal::new(String::new());
    let path = StoredValue::new(if is_user {
        format!("/api/admin/users/{}", api::encoded(&key))
    } else {
        format!("/api/admin/roles/{}", api::encoded(&key))
    });
    let save = move |_| {
        let granted = rights.get_untracked();
        let body = if is_user {
            let mut body = json!({"display_name": display_name.get_untracked(), "admin": admin.get_untracked(),
                "active": active.get_untracked(), "roles": held_roles.get_untracked(), "rights": granted});
            let new_password = password.get_untracked();
            if !new_password.is_empty() {
                body["password"] = json!(new_password);
            }
            body
        } else {
            json!({"rights": granted})
        };
        leptos::task::spawn_local(async move {
            let answer = if is_user {
                api::patch(&path.get_value(), &body).await
            } else {
                api::put(&path.get_value(), &body).await
            };
            let said = match answer {
                Ok(_) => {
                    let _ = password.try_set(String::new());
                    let _ = revision.try_update(|r| *r += 1);
                    (true, session.t("admin.saved"))
                }
                Err(e) => (false, session.explain(&e)),
            };
            tell(message, said);
        });
    };
    // Entities of the schema, then the system's targets.
    let targets = move || {
        let lang = session.lang.get();
        let mut out: Vec<(String, String)> = entities.with(|list| {
            list.iter()
                .filter_map(|e| {
                    let name = e["name"].as_str()?.to_string();
                    let shown = serde_json::from_value(e["label"].clone())
                        .map(|l| label(&l, lang))
                        .unwrap_or_else(|_| name.clone());
                    Some((name, shown))
                })
                .collect()
        });
        out.extend(
            SYSTEM_TARGETS
                .iter()
                .map(|t| (t.to_string(), session.t(&format!("target.{t}")))),
        );
        out
    };
    let matrix = move || {
        targets()
            .into_iter()
            .map(|(target, shown)| {
                let cells = Op::ALL
                    .into_iter()
                    .map(|op| {
                        let (read, write) = (target.clone(), target.clone());
                        view! {
                            <td><input type="checkbox" data-target=target.clone() data-op=op.name()
                                aria-label=format!("{shown} {}", session.t(&format!("right.{}", op.name())))
                                prop:checked=move || rights.with(|r| grants::has_op(r, &read, op))
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    rights.update(|r| grants::set_op(r, &write, op, on));
                                }/></td>
                        }
                    })
                    .collect_view();
                view! { <tr><th>{shown.clone()}</th>{cells}</tr> }
            })
            .collect_view()
    };
    let field_rules = move || {
        let lang = session.lang.get();
        entities
            .get()
            .into_iter()
            .map(|e| {
                let entity = e["name"].as_str().unwrap_or_default().to_string();
                let shown = serde_json::from_value(e["label"].clone())
                    .map(|l| label(&l, lang))
                    .unwrap_or_else(|_| entity.clone());
                let fields = e["fields"].as_array().cloned().unwrap_or_default();
                let default = rights.with_untracked(|r| grants::field_rule(r, &entity, "").1);
                let (write_default, records_of) = (entity.clone(), entity.clone());
                let records = move || {
                    rights.with(|r| {
                        r.entities
                            .get(&records_of)
                            .and_then(|e| e.records.as_ref())
                            .map(|f| serde_json::to_string(f).unwrap_or_default())
                    })
                };
                let rows = fields
                    .into_iter()
                    .map(|f| {
                        let field = f["key"].as_str().unwrap_or_default().to_string();
                        let field_shown = serde_json::from_value(f["label"].clone())
                            .map(|l| label(&l, lang))
                            .unwrap_or_else(|_| field.clone());
                        let rule = rights.with_untracked(|r| grants::field_rule(r, &entity, &field).0);
                        let (entity_w, field_w) = (entity.clone(), field.clone());
                        view! {
                            <label class="field-rule">{field_shown}
                                <select data-field=field.clone()
                                    on:change=move |ev| {
                                        let access = grants::parse_access(&event_target_value(&ev));
                                        rights.update(|r| grants::set_field(r, &entity_w, &field_w, access));
                                    }>
                                    <option value="default" selected=rule.is_none()>{session.t("admin.access.default")}</option>
                                    {access_options(session, rule)}
                                </select>
                            </label>
                        }
                    })
                    .collect_view();
                view! {
                    <details class="field-rules" data-fields=entity.clone()>
                        <summary>{session.tf("admin.fields_of", &shown)}</summary>
                        <label class="field-rule">{session.t("admin.access.others")}
                            <select data-default=entity.clone()
                                on:change=move |ev| {
                                    if let Some(access) = grants::parse_access(&event_target_value(&ev)) {
                                        rights.update(|r| grants::set_default_access(r, &write_default, access));
                                    }
                                }>
                                {access_options(session, Some(default))}
                            </select>
                        </label>
                        {rows}
                        {move || records().map(|json| view! {
                            <p class="hint">{session.t("admin.records")}<code>{json}</code></p>
                        })}
                    </details>
                }
            })
            .collect_view()
    };
    let heading = match &holder {
        Holder::User(login) => session.tf("admin.rights_of_user", login),
        Holder::Role(name) => session.tf("admin.rights_of_role", name),
    };
    view! {
        <div class="rights-editor" data-test="rights-editor" data-holder=key.clone()>
            <h2>{heading}</h2>
            {is_user.then(|| view! {
                <div class="user-flags">
                    <label>{session.t("admin.display_name")}
                        <input data-test="user-display-name" prop:value=display_name on:input=move |ev| display_name.set(event_target_value(&ev))/>
                    </label>
                    <label><input type="checkbox" data-test="user-admin" prop:checked=admin
                        on:change=move |ev| admin.set(event_target_checked(&ev))/>{session.t("admin.administrator")}</label>
                    <label><input type="checkbox" data-test="user-active" prop:checked=active
                        on:change=move |ev| active.set(event_target_checked(&ev))/>{session.t("admin.active")}</label>
                    <RoleChoices roles=roles chosen=held_roles test="user-roles"/>
                    <label>{session.t("admin.new_password")}
                        <input type="password" autocomplete="new-password" data-test="user-password"
                            prop:value=password on:input=move |ev| password.set(event_target_value(&ev))/>
                    </label>
                    <p class="hint">{session.t("admin.own_rights")}</p>
                </div>
            })}
            <table class="rights-matrix" data-test="rights-matrix">
                <thead><tr>
                    <th></th>
                    {Op::ALL.into_iter().map(|op| view! { <th>{move || session.t(&format!("right.{}", op.name()))}</th> }).collect_view()}
                </tr></thead>
                <tbody>{matrix}</tbody>
            </table>
            {field_rules}
            <button class="primary" data-test="rights-save" on:click=save>{move || session.t("admin.save")}</button>
        </div>
    }
}

/// The three kinds of field access as options, `current` selected.
fn access_options(session: Session, current: Option<FieldAccess>) -> impl IntoView {
    [FieldAccess::None, FieldAccess::Read, FieldAccess::Edit]
        .into_iter()
        .map(|a| {
            let name = grants::access_name(a);
            view! { <option value=name selected=current == Some(a)>{session.t(&format!("admin.access.{name}"))}</option> }
        })
        .collect_view()
}

/// Whether the screen is offered: to administrators only, as the API is.
pub fn offered(session: Session) -> bool {
    session.rights().admin
}
