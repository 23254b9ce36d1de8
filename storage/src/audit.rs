//! The access log (CF-3): who read, searched, changed or was refused what, and when.

use chrono::{DateTime, Months, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::Db;
use crate::auth::Principal;
use crate::entities::access_log;
use crate::error::Result;

/// One line of the access log.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub entity: Option<&'a str>,
    pub record_id: Option<i64>,
    pub outcome: &'a str,
    pub detail: Option<String>,
}

pub async fn record(db: &Db, who: &Principal, entry: Entry<'_>) -> Result<()> {
    access_log::ActiveModel {
        at: Set(Utc::now()),
        user_id: Set(who.user_id),
        login: Set(who.login.clone()),
        action: Set(entry.action.to_string()),
        entity: Set(entry.entity.map(str::to_string)),
        record_id: Set(entry.record_id),
        outcome: Set(entry.outcome.to_string()),
        detail: Set(entry.detail),
        ..Default::default()
    }
    .insert(&db.conn)
    .await?;
    Ok(())
}

/// Which entries to find; every part given must match.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub login: Option<String>,
    pub action: Option<String>,
    pub entity: Option<String>,
    pub record_id: Option<i64>,
    pub outcome: Option<String>,
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub to: Option<DateTime<Utc>>,
    /// Entries older than this one (the previous page's last id).
    pub before_id: Option<i64>,
}

/// The newest entries matching `search` first, at most `limit`.
pub async fn search(db: &Db, search: &Search, limit: u64) -> Result<Vec<access_log::Model>> {
    let mut query = access_log::Entity::find().order_by_desc(access_log::Column::Id);
    if let Some(login) = &search.login {
        query = query.filter(access_log::Column::Login.eq(login));
    }
    if let Some(action) = &search.action {
        query = query.filter(access_log::Column::Action.eq(action));
    }
    if let Some(entity) = &search.entity {
        query = query.filter(access_log::Column::Entity.eq(entity));
    }
    if let Some(id) = search.record_id {
        query = query.filter(access_log::Column::RecordId.eq(id));
    }
    if let Some(outcome) = &search.outcome {
        query = query.filter(access_log::Column::Outcome.eq(outcome));
    }
    if let Some(from) = search.from {
        query = query.filter(access_log::Column::At.gte(from));
    }
    if let Some(to) = search.to {
        query = query.filter(access_log::Column::At.lt(to));
    }
    if let Some(before) = search.before_id {
        query = query.filter(access_log::Column::Id.lt(before));
    }
    Ok(query.limit(limit).all(&db.conn).await?)
}

/// The oldest time an entry is kept at `now`: one calendar month back (CF-3).
pub fn kept_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_sub_months(Months::new(1))
        .expect("a month before any time tabiji runs exists")
}

/// Deletes the entries older than one month; how many went.
pub async fn purge(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    Ok(access_log::Entity::delete_many()
        .filter(access_log::Column::At.lt(kept_since(now)))
        .exec(&db.conn)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_one_calendar_month() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            kept_since(at("2026-11-29T03:00:00Z")),
            at("2026-10-29T03:00:00Z")
        );
        assert_eq!(
            kept_since(at("2026-03-31T00:00:00Z")),
            at("2026-02-28T00:00:00Z"),
            "the last day of a shorter month"
        );
    }
}
