//! Static lists (CF-5): named sets of records of one entity, added by id or by a filter at one
//! moment, kept until removed (unlike segments, which are evaluated each time). A filter's
//! `{"list": KEY}` condition selects their members, so lists combine with everything else.

use crate::db::begin_write;
use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult, SqlErr};
use serde::{Deserialize, Serialize};
use tabiji_model::Op;
use tabiji_model::filter::Filter;
use tabiji_model::schema::check_identifier;

use crate::Db;
use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::{MAX_BULK, Store};
use crate::search::parse_zone;
use crate::segments;

/// The resource whose rights govern static lists: `view` reads them and uses them in filters,
/// `create` makes them, `edit` adds and removes members, `delete` drops them.
pub const LISTS: &str = "lists";

#[derive(Debug, Clone, Serialize)]
pub struct List {
    pub key: String,
    pub name: String,
    pub entity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Members that still exist.
    pub members: u64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    pub key: String,
    pub name: String,
    #[serde(default = "tourists")]
    pub entity: String,
    #[serde(default)]
    pub description: Option<String>,
}

fn tourists() -> String {
    "tourists".into()
}

/// Records to add to a list or remove from it: by id, or every record a filter matches now.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Members {
    #[serde(default)]
    pub ids: Vec<i64>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MembersChanged {
    /// Added or removed now.
    pub changed: u64,
    /// Already members (adding) or not members (removing).
    pub unchanged: u64,
    /// Ids no record has.
    pub missing: Vec<i64>,
    /// Members after the change.
    pub members: u64,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

fn not_found(key: &str) -> StorageError {
    StorageError::NoSuch {
        kind: "list",
        name: key.to_string(),
    }
}

/// Every list's id and entity, by key: what filters' `list` conditions resolve to.
pub async fn keys(db: &Db) -> Result<HashMap<String, (i64, String)>> {
    let mut q = Query::select();
    q.columns(["id", "key", "entity"].map(col))
        .from(col("sys_lists"));
    let rows = db.conn.query_all(&q).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "key")?,
                (r.try_get("", "id")?, r.try_get("", "entity")?),
            ))
        })
        .collect()
}

struct Row {
    id: i64,
    list: List,
}

/// Lists with their live member counts (members whose record was deleted, or that `who` does
/// not reach, are not counted).
async fn select(store: &Store, who: &Principal, key: Option<&str>) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut q = Query::select();
    q.columns(
        [
            "id",
            "key",
            "name",
            "entity",
            "description",
            "created_by",
            "created_at",
            "updated_at",
        ]
        .map(col),
    )
    .from(col("sys_lists"))
    .order_by(col("key"), Order::Asc);
    if let Some(key) = key {
        q.and_where(Expr::col(col("key")).eq(key));
    }
    for row in store.db().conn.query_all(&q).await? {
        let id: i64 = row.try_get("", "id")?;
        let entity: String = row.try_get("", "entity")?;
        let members = count_members(store, who, id, &entity).await?;
        let mut found = from_row(&row)?;
        found.list.members = members;
        rows.push(found);
    }
    Ok(rows)
}

fn from_row(row: &QueryResult) -> Result<Row> {
    Ok(Row {
        id: row.try_get("", "id")?,
        list: List {
            key: row.try_get("", "key")?,
            name: row.try_get("", "name")?,
            entity: row.try_get("", "entity")?,
            description: row.try_get("", "description")?,
            members: 0,
            created_by: row.try_get("", "created_by")?,
            created_at: row.try_get("", "created_at")?,
            updated_at: row.try_get("", "updated_at")?,
        },
    })
}

async fn count_members(store: &Store, who: &Principal, list: i64, entity: &str) -> Result<u64> {
    let mut records = Query::select();
    records.column(col("id")).from(col(entity));
    if let Some(scope) = store.scope_expr(who, entity, Utc::now()).await? {
        records.and_where(scope);
    }
    let mut q = Query::select();
    q.expr_as(Expr::cust("COUNT(*)"), col("n"))
        .from(col("sys_list_members"))
        .and_where(Expr::col(col("list_id")).eq(list))
        .and_where(Expr::col(col("record_id")).in_subquery(records));
    let row = store.db().conn.query_one(&q).await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0) as u64)
}

async fn find(store: &Store, who: &Principal, key: &str) -> Result<Row> {
    select(store, who, Some(key))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(key))
}

pub async fn create(
    store: &Store,
    who: &Principal,
    new: &NewList,
    now: DateTime<Utc>,
) -> Result<List> {
    store.require(who, LISTS, Op::Create).await?;
    check_identifier(&new.key).map_err(|m| invalid("key", "invalid_key", m))?;
    let n = new.name.trim().chars().count();
    if n == 0 || n > 200 {
        return Err(invalid(
            "name",
            "invalid_name",
            "give the list a name of 1 to 200 characters",
        ));
    }
    store.entity_schema(&new.entity).await?;
    store.require(who, &new.entity, Op::View).await?;
    let insert = Query::insert()
        .into_table(col("sys_lists"))
        .columns(
            [
                "key",
                "name",
                "entity",
                "description",
                "created_by",
                "created_at",
                "updated_at",
            ]
            .map(col),
        )
        .values_panic([
            new.key.as_str().into(),
            new.name.trim().into(),
            new.entity.as_str().into(),
            new.description.clone().into(),
            who.login.as_str().into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    if let Err(e) = store.db().conn.execute(&insert).await {
        if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Err(StorageError::Conflict(vec![ItemError::field(
                "key",
                "duplicate_key",
                format!("a list called {:?} exists already", new.key),
            )]));
        }
        return Err(e.into());
    }
    store
        .log(who, "create", LISTS, None, "ok", Some(new.key.clone()))
        .await?;
    Ok(find(store, who, &new.key).await?.list)
}

pub async fn get(store: &Store, who: &Principal, key: &str) -> Result<List> {
    store.require(who, LISTS, Op::View).await?;
    Ok(find(store, who, key).await?.list)
}

pub async fn list(store: &Store, who: &Principal) -> Result<Vec<List>> {
    store.require(who, LISTS, Op::View).await?;
    Ok(select(store, who, None)
        .await?
        .into_iter()
        .map(|r| r.list)
        .collect())
}

/// The ids `members` names: the listed ones that exist, and those its filter matches now, as
/// `who` may see them.
async fn resolve_members(
    store: &Store,
    who: &Principal,
    entity: &str,
    members: &Members,
    now: DateTime<Utc>,
) -> Result<(BTreeSet<i64>, Vec<i64>)> {
    if members.ids.is_empty() && members.filter.is_none() {
        return Err(invalid(
            "ids",
            "nothing_named",
            "name the records by ids or by a filter",
        ));
    }
    store.require(who, entity, Op::View).await?;
    let mut ids: BTreeSet<i64> = BTreeSet::new();
    let mut missing = Vec::new();
    if !members.ids.is_empty() {
        let wanted: BTreeSet<i64> = members.ids.iter().copied().collect();
        if wanted.len() > MAX_BULK {
            return Err(invalid(
                "ids",
                "too_many",
                format!("at most {MAX_BULK} ids at a time"),
            ));
        }
        let wanted: Vec<i64> = wanted.into_iter().collect();
        let found: BTreeSet<i64> = store
            .reachable(&store.db().conn, who, entity, &wanted, now)
            .await?
            .into_iter()
            .collect();
        let wanted: BTreeSet<i64> = wanted.into_iter().collect();
        missing = wanted.difference(&found).copied().collect();
        ids.extend(found);
    }
    if let Some(filter) = &members.filter {
        let zone = parse_zone(members.zone.as_deref())?;
        let resolved = store
            .resolve_filter(Some(who), entity, filter, zone, now)
            .await?;
        let matching = store
            .ids_matching(entity, &resolved.cond, 0, MAX_FILTERED as u64 + 1)
            .await?;
        if matching.len() > MAX_FILTERED {
            return Err(invalid(
                "filter",
                "too_many",
                format!(
                    "the filter matches more than {MAX_FILTERED} records; narrow it, or save it as a segment"
                ),
            ));
        }
        ids.extend(matching);
    }
    Ok((ids, missing))
}

/// Most records one filter adds or removes at a time.
pub const MAX_FILTERED: usize = 100_000;

/// Adds records to a list; adding a member twice changes nothing.
pub async fn add(
    store: &Store,
    who: &Principal,
    key: &str,
    members: &Members,
    now: DateTime<Utc>,
) -> Result<MembersChanged> {
    store.require(who, LISTS, Op::Edit).await?;
    let row = find(store, who, key).await?;
    let (ids, missing) = resolve_members(store, who, &row.list.entity, members, now).await?;
    let txn = begin_write(&store.db().conn).await?;
    let mut changed = 0;
    let batch: Vec<i64> = ids.iter().copied().collect();
    for chunk in batch.chunks(5_000) {
        let mut insert = Query::insert();
        insert
            .into_table(col("sys_list_members"))
            .columns(["list_id", "record_id", "added_at"].map(col))
            .on_conflict(
                OnConflict::columns(["list_id", "record_id"].map(col))
                    .do_nothing()
                    .to_owned(),
            );
        for id in chunk {
            insert.values_panic([row.id.into(), (*id).into(), now.into()]);
        }
        changed += txn.execute(&insert).await?.rows_affected();
    }
    touch(&txn, row.id, now).await?;
    txn.commit().await?;
    changed_members(
        store,
        who,
        &row,
        "added",
        (changed, ids.len() as u64),
        missing,
    )
    .await
}

/// Removes records from a list.
pub async fn remove(
    store: &Store,
    who: &Principal,
    key: &str,
    members: &Members,
    now: DateTime<Utc>,
) -> Result<MembersChanged> {
    store.require(who, LISTS, Op::Edit).await?;
    let row = find(store, who, key).await?;
    let (ids, missing) = resolve_members(store, who, &row.list.entity, members, now).await?;
    let txn = begin_write(&store.db().conn).await?;
    let mut changed = 0;
    let batch: Vec<i64> = ids.iter().copied().collect();
    for chunk in batch.chunks(5_000) {
        let delete = Query::delete()
            .from_table(col("sys_list_members"))
            .and_where(Expr::col(col("list_id")).eq(row.id))
            .and_where(Expr::col(col("record_id")).is_in(chunk.iter().copied()))
            .to_owned();
        changed += txn.execute(&delete).await?.rows_affected();
    }
    touch(&txn, row.id, now).await?;
    txn.commit().await?;
    changed_members(
        store,
        who,
        &row,
        "removed",
        (changed, ids.len() as u64),
        missing,
    )
    .await
}

/// Logs a change of members and answers what it did and how many members remain.
async fn changed_members(
    store: &Store,
    who: &Principal,
    row: &Row,
    verb: &str,
    (changed, named): (u64, u64),
    missing: Vec<i64>,
) -> Result<MembersChanged> {
    store
        .log(
            who,
            "edit",
            LISTS,
            None,
            "ok",
            Some(format!("{}: {changed} {verb}", row.list.key)),
        )
        .await?;
    Ok(MembersChanged {
        changed,
        unchanged: named - changed,
        missing,
        members: count_members(store, who, row.id, &row.list.entity).await?,
    })
}

async fn touch(conn: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<()> {
    let mut q = Query::update();
    q.table(col("sys_lists"))
        .value(col("updated_at"), now)
        .and_where(Expr::col(col("id")).eq(id));
    conn.execute(&q).await?;
    Ok(())
}

/// Drops a list and its members, unless a saved segment uses it.
pub async fn delete(store: &Store, who: &Principal, key: &str) -> Result<()> {
    store.require(who, LISTS, Op::Delete).await?;
    let row = find(store, who, key).await?;
    let mut users: Vec<String> = segments::definitions(store.db())
        .await?
        .into_iter()
        .filter(|(_, (_, f))| f.lists().contains(&key))
        .map(|(k, _)| format!("segment {k:?}"))
        .collect();
    if !users.is_empty() {
        users.sort();
        return Err(StorageError::Conflict(vec![ItemError::field(
            "key",
            "list_in_use",
            format!("{key:?} is used by {}", users.join(", ")),
        )]));
    }
    let txn = begin_write(&store.db().conn).await?;
    for (table, column) in [("sys_list_members", "list_id"), ("sys_lists", "id")] {
        let delete = Query::delete()
            .from_table(col(table))
            .and_where(Expr::col(col(column)).eq(row.id))
            .to_owned();
        txn.execute(&delete).await?;
    }
    txn.commit().await?;
    store
        .log(who, "delete", LISTS, None, "ok", Some(key.into()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tabiji_model::rights::{EntityRights, Rights};

    use super::*;
    use crate::migration;
    use crate::scratch::Scratch;

    fn now() -> DateTime<Utc> {
        "2026-11-28T03:00:00Z".parse().unwrap()
    }

    fn members(body: serde_json::Value) -> Members {
        serde_json::from_value(body).unwrap()
    }

    #[tokio::test]
    async fn lists_keep_what_was_added_and_combine_in_filters() {
        for scratch in Scratch::all_backends().await {
            let db = crate::Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            let store = Store::open(db).await.unwrap();
            let admin = Principal::system();
            let tourists = (0..6)
                .map(|n| json!({"email": format!("l{n}@example.jp"), "prefecture": if n < 2 { "愛知県" } else { "東京都" }}))
                .collect();
            let ids: Vec<i64> = store
                .bulk_create(&admin, "tourists", tourists)
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect();
            let new = NewList {
                key: "fair_2026".into(),
                name: "旅行博2026 来場者".into(),
                entity: "tourists".into(),
                description: None,
            };
            create(&store, &admin, &new, now()).await.unwrap();
            let e = create(&store, &admin, &new, now()).await.unwrap_err();
            assert!(matches!(e, StorageError::Conflict(_)), "{e}");

            let added = add(
                &store,
                &admin,
                "fair_2026",
                &members(json!({"ids": [ids[4], ids[5], 999_999]})),
                now(),
            )
            .await
            .unwrap();
            assert_eq!(
                added,
                MembersChanged {
                    changed: 2,
                    unchanged: 0,
                    missing: vec![999_999],
                    members: 2
                }
            );
            let added = add(
                &store,
                &admin,
                "fair_2026",
                &members(json!({"ids": [ids[5]], "filter": {"field": {"key": "prefecture", "op": "eq", "value": "愛知県"}}})),
                now(),
            )
            .await
            .unwrap();
            assert_eq!((added.changed, added.unchanged, added.members), (2, 1, 4));

            let zone = parse_zone(None).unwrap();
            let count = |filter: serde_json::Value| {
                let store = store.clone();
                let admin = admin.clone();
                async move {
                    store
                        .count_matching(
                            &admin,
                            "tourists",
                            &serde_json::from_value(filter).unwrap(),
                            zone,
                            now(),
                        )
                        .await
                }
            };
            assert_eq!(count(json!({"list": "fair_2026"})).await.unwrap(), 4);
            assert_eq!(
                count(json!({"all": [{"list": "fair_2026"}, {"field": {"key": "prefecture", "op": "eq", "value": "東京都"}}]}))
                    .await
                    .unwrap(),
                2
            );
            assert_eq!(
                count(json!({"not": {"list": "fair_2026"}})).await.unwrap(),
                2
            );

            let removed = remove(
                &store,
                &admin,
                "fair_2026",
                &members(json!({"ids": [ids[0], ids[1]]})),
                now(),
            )
            .await
            .unwrap();
            assert_eq!((removed.changed, removed.members), (2, 2));
            // A member whose record is deleted no longer counts.
            store.delete(&admin, "tourists", ids[4]).await.unwrap();
            assert_eq!(get(&store, &admin, "fair_2026").await.unwrap().members, 1);

            // Rights: using a list in a filter needs the view right on lists.
            let clerk = Principal {
                user_id: Some(2),
                login: "clerk".into(),
                rights: Rights {
                    admin: false,
                    entities: [("tourists".to_string(), EntityRights::with_ops(&[Op::View]))]
                        .into(),
                },
            };
            let e = store
                .count_matching(
                    &clerk,
                    "tourists",
                    &Filter::List("fair_2026".into()),
                    zone,
                    now(),
                )
                .await
                .unwrap_err();
            assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");
            let e = add(
                &store,
                &clerk,
                "fair_2026",
                &members(json!({"ids": [ids[0]]})),
                now(),
            )
            .await
            .unwrap_err();
            assert!(matches!(e, StorageError::Forbidden { .. }), "{e}");

            let e = count(json!({"list": "nothing"})).await.unwrap_err();
            assert!(e.to_string().contains("there is no list"), "{e}");
            crate::segments::create(
                &store,
                &admin,
                &crate::segments::NewSegment {
                    key: "fair_tokyo".into(),
                    name: "fair, Tokyo".into(),
                    entity: "tourists".into(),
                    filter: serde_json::from_value(json!({"list": "fair_2026"})).unwrap(),
                    description: None,
                },
                now(),
            )
            .await
            .unwrap();
            let e = delete(&store, &admin, "fair_2026").await.unwrap_err();
            assert!(e.to_string().contains("segment \"fair_tokyo\""), "{e}");
            crate::segments::delete(&store, &admin, "fair_tokyo")
                .await
                .unwrap();
            delete(&store, &admin, "fair_2026").await.unwrap();
            assert!(list(&store, &admin).await.unwrap().is_empty());
            scratch.remove().await;
        }
    }
}
