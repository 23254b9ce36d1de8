//! Per-user views (CF-4): each user keeps their own named views of an entity (conditions,
//! lists and segments through the filter, a date field and a period, columns, sort) and opens
//! them with the period they pick that day. Views are private to their owner; opening one
//! runs the search with the owner's rights, as any search does.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult, SqlErr};
use serde::{Deserialize, Serialize};
use tabiji_model::filter::{FieldTest, Filter, Operator, Period};
use tabiji_model::schema::check_identifier;

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;
use crate::search::{SearchPage, SearchRequest, Sort, parse_zone};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewDef {
    /// `tourists` when left out.
    #[serde(default = "tourists")]
    pub entity: String,
    /// What the view shows: any filter, lists and segments included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// The date or time field the period applies to (`registered_at`, `last_visit`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_field: Option<String>,
    /// The period shown unless another is picked when the view is opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The columns to show, in order; every field the owner may see when empty.
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<Sort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn tourists() -> String {
    "tourists".into()
}

#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub key: String,
    pub name: String,
    pub favourite: bool,
    pub definition: ViewDef,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewView {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub favourite: bool,
    pub definition: ViewDef,
}

/// Opening a view: another period than its own, and the page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open {
    #[serde(default)]
    pub period: Option<Period>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub count: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Opened {
    pub columns: Vec<String>,
    /// The period the records were chosen by, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(flatten)]
    pub page: SearchPage,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

fn not_found(key: &str) -> StorageError {
    StorageError::NoSuch {
        kind: "view",
        name: key.to_string(),
    }
}

const COLUMNS: [&str; 7] = [
    "owner",
    "key",
    "name",
    "favourite",
    "definition",
    "created_at",
    "updated_at",
];

fn from_row(row: &QueryResult) -> Result<View> {
    let key: String = row.try_get("", "key")?;
    let definition: String = row.try_get("", "definition")?;
    Ok(View {
        definition: serde_json::from_str(&definition).map_err(|e| {
            invalid(
                "definition",
                "corrupt_view",
                format!("the stored definition of view {key:?} could not be read: {e}"),
            )
        })?,
        key,
        name: row.try_get("", "name")?,
        favourite: row.try_get("", "favourite")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// The filter a view opens with: its own, and the period on its date field.
fn filter_of(def: &ViewDef, period: Option<&Period>) -> Filter {
    let mut parts: Vec<Filter> = def.filter.iter().cloned().collect();
    if let (Some(field), Some(period)) = (&def.period_field, period) {
        parts.push(Filter::Field(FieldTest {
            key: field.clone(),
            op: Operator::InPeriod,
            value: Some(serde_json::to_value(period).expect("a period serialises")),
        }));
    }
    Filter::All(parts)
}

/// Checks a definition as its owner would open it: entity, columns, the filter and period.
async fn check(store: &Store, who: &Principal, def: &ViewDef, now: DateTime<Utc>) -> Result<()> {
    let schema = store.visible_schema(who, &def.entity).await?;
    let mut problems = Vec::new();
    for (i, c) in def.columns.iter().enumerate() {
        if schema.field(c).is_none() && !["id", "created_at", "updated_at"].contains(&c.as_str()) {
            problems.push(ItemError::field(
                &format!("definition.columns[{i}]"),
                "unknown_field",
                format!("{} has no field {c:?} you may see", def.entity),
            ));
        }
    }
    if def.period.is_some() && def.period_field.is_none() {
        problems.push(ItemError::field(
            "definition.period_field",
            "missing",
            "name the date field the period applies to",
        ));
    }
    if !problems.is_empty() {
        return Err(StorageError::Invalid(problems));
    }
    let zone = parse_zone(def.zone.as_deref())?;
    // A placeholder period when the view has none, so that the field itself is checked.
    let period = def.period.clone().unwrap_or(Period::LastDays(1));
    store
        .resolve_filter(
            Some(who),
            &def.entity,
            &filter_of(def, Some(&period)),
            zone,
            now,
        )
        .await
        .map_err(|e| match e {
            StorageError::Invalid(errors) => StorageError::Invalid(
                errors
                    .into_iter()
                    .map(|mut e| {
                        e.field = e.field.map(|f| format!("definition.{f}"));
                        e
                    })
                    .collect(),
            ),
            other => other,
        })?;
    Ok(())
}

async fn find(store: &Store, who: &Principal, key: &str) -> Result<View> {
    let mut q = Query::select();
    q.columns(COLUMNS.map(col))
        .from(col("sys_views"))
        .and_where(Expr::col(col("owner")).eq(who.login.as_str()))
        .and_where(Expr::col(col("key")).eq(key));
    let row = store
        .db()
        .conn
        .query_one(&q)
        .await?
        .ok_or_else(|| not_found(key))?;
    from_row(&row)
}

/// The caller's own views, favourites first.
pub async fn list(store: &Store, who: &Principal) -> Result<Vec<View>> {
    let mut q = Query::select();
    q.columns(COLUMNS.map(col))
        .from(col("sys_views"))
        .and_where(Expr::col(col("owner")).eq(who.login.as_str()))
        .order_by(col("favourite"), Order::Desc)
        .order_by(col("name"), Order::Asc);
    let rows = store.db().conn.query_all(&q).await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(store: &Store, who: &Principal, key: &str) -> Result<View> {
    find(store, who, key).await
}

pub async fn create(
    store: &Store,
    who: &Principal,
    new: &NewView,
    now: DateTime<Utc>,
) -> Result<View> {
    check_identifier(&new.key).map_err(|m| invalid("key", "invalid_key", m))?;
    let n = new.name.trim().chars().count();
    if n == 0 || n > 200 {
        return Err(invalid(
            "name",
            "invalid_name",
            "give the view a name of 1 to 200 characters",
        ));
    }
    check(store, who, &new.definition, now).await?;
    let insert = Query::insert()
        .into_table(col("sys_views"))
        .columns(COLUMNS.map(col))
        .values_panic([
            who.login.as_str().into(),
            new.key.as_str().into(),
            new.name.trim().into(),
            new.favourite.into(),
            serde_json::to_string(&new.definition)
                .expect("a definition serialises")
                .into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    if let Err(e) = store.db().conn.execute(&insert).await {
        if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Err(StorageError::Conflict(vec![ItemError::field(
                "key",
                "duplicate_key",
                format!("you have a view called {:?} already", new.key),
            )]));
        }
        return Err(e.into());
    }
    find(store, who, &new.key).await
}

/// Replaces one of the caller's views.
pub async fn update(
    store: &Store,
    who: &Principal,
    key: &str,
    new: &NewView,
    now: DateTime<Utc>,
) -> Result<View> {
    find(store, who, key).await?;
    if new.key != key {
        return Err(invalid("key", "key_changed", "a view's key never changes"));
    }
    check(store, who, &new.definition, now).await?;
    let mut q = Query::update();
    q.table(col("sys_views"))
        .value(col("name"), new.name.trim())
        .value(col("favourite"), new.favourite)
        .value(
            col("definition"),
            serde_json::to_string(&new.definition).expect("a definition serialises"),
        )
        .value(col("updated_at"), now)
        .and_where(Expr::col(col("owner")).eq(who.login.as_str()))
        .and_where(Expr::col(col("key")).eq(key));
    store.db().conn.execute(&q).await?;
    find(store, who, key).await
}

pub async fn delete(store: &Store, who: &Principal, key: &str) -> Result<()> {
    find(store, who, key).await?;
    let q = Query::delete()
        .from_table(col("sys_views"))
        .and_where(Expr::col(col("owner")).eq(who.login.as_str()))
        .and_where(Expr::col(col("key")).eq(key))
        .to_owned();
    store.db().conn.execute(&q).await?;
    Ok(())
}

/// Opens one of the caller's views: its records, in the period picked now or its own.
pub async fn open(
    store: &Store,
    who: &Principal,
    key: &str,
    request: &Open,
    now: DateTime<Utc>,
) -> Result<Opened> {
    let view = find(store, who, key).await?;
    let def = &view.definition;
    if request.period.is_some() && def.period_field.is_none() {
        return Err(invalid(
            "period",
            "no_period_field",
            format!("view {key:?} has no date field to apply a period to"),
        ));
    }
    let period = request.period.clone().or_else(|| def.period.clone());
    let search = SearchRequest {
        filter: Some(filter_of(def, period.as_ref())),
        sort: def.sort.clone(),
        after: request.after.clone(),
        limit: request.limit,
        count: request.count,
        zone: def.zone.clone(),
    };
    let page = store.search(who, &def.entity, &search, now).await?;
    let columns = if def.columns.is_empty() {
        store
            .visible_schema(who, &def.entity)
            .await?
            .fields
            .iter()
            .map(|f| f.key.clone())
            .collect()
    } else {
        def.columns.clone()
    };
    Ok(Opened {
        columns,
        period,
        page,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::migration;
    use crate::scratch::Scratch;

    fn now() -> DateTime<Utc> {
        "2026-11-28T03:00:00Z".parse().unwrap()
    }

    #[tokio::test]
    async fn each_user_opens_their_own_views_with_the_period_they_pick() {
        for scratch in Scratch::all_backends().await {
            let db = crate::Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            let store = Store::open(db).await.unwrap();
            let admin = Principal::system();
            let registered = [
                "2026-11-20T01:00:00Z",
                "2026-11-02T01:00:00Z",
                "2026-10-15T01:00:00Z",
                "2025-06-01T01:00:00Z",
            ];
            let tourists = registered
                .iter()
                .enumerate()
                .map(|(n, at)| json!({"email": format!("v{n}@example.jp"), "registered_at": at, "prefecture": "愛知県"}))
                .collect();
            store
                .bulk_create(&admin, "tourists", tourists)
                .await
                .unwrap();
            let new: NewView = serde_json::from_value(json!({
                "key": "new_aichi", "name": "今月の愛知の新規", "favourite": true,
                "definition": {"filter": {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}},
                    "period_field": "registered_at", "period": {"this": "month"},
                    "columns": ["email", "registered_at"], "sort": {"field": "registered_at", "desc": true}}
            }))
            .unwrap();
            create(&store, &admin, &new, now()).await.unwrap();

            let opened = open(
                &store,
                &admin,
                "new_aichi",
                &Open {
                    count: true,
                    ..Default::default()
                },
                now(),
            )
            .await
            .unwrap();
            assert_eq!(opened.page.count, Some(2));
            assert_eq!(opened.columns, ["email", "registered_at"]);
            let last_year: Open =
                serde_json::from_value(json!({"period": {"last": "year"}, "count": true})).unwrap();
            let opened = open(&store, &admin, "new_aichi", &last_year, now())
                .await
                .unwrap();
            assert_eq!(opened.page.count, Some(1));
            let last_days: Open =
                serde_json::from_value(json!({"period": {"last_days": 60}, "count": true}))
                    .unwrap();
            assert_eq!(
                open(&store, &admin, "new_aichi", &last_days, now())
                    .await
                    .unwrap()
                    .page
                    .count,
                Some(3)
            );

            // Another user neither sees nor opens it, and may keep a view of the same key.
            let other = Principal {
                user_id: Some(5),
                login: "other".into(),
                rights: tabiji_model::rights::Rights::admin(),
            };
            assert!(list(&store, &other).await.unwrap().is_empty());
            let e = open(&store, &other, "new_aichi", &Open::default(), now())
                .await
                .unwrap_err();
            assert!(matches!(e, StorageError::NoSuch { .. }), "{e}");
            create(&store, &other, &new, now()).await.unwrap();

            let bad: NewView = serde_json::from_value(json!({
                "key": "bad", "name": "bad",
                "definition": {"period_field": "email", "period": {"this": "month"}, "columns": ["shoe_size"]}
            }))
            .unwrap();
            match create(&store, &admin, &bad, now()).await.unwrap_err() {
                StorageError::Invalid(errors) => {
                    assert_eq!(errors[0].field.as_deref(), Some("definition.columns[0]"));
                }
                other => panic!("{other:?}"),
            }
            let bad: NewView = serde_json::from_value(json!({
                "key": "bad", "name": "bad",
                "definition": {"period_field": "email", "period": {"this": "month"}}
            }))
            .unwrap();
            match create(&store, &admin, &bad, now()).await.unwrap_err() {
                StorageError::Invalid(errors) => {
                    assert!(
                        errors[0]
                            .field
                            .as_deref()
                            .unwrap()
                            .starts_with("definition.filter"),
                        "{errors:?}"
                    );
                }
                other => panic!("{other:?}"),
            }
            scratch.remove().await;
        }
    }
}
