//! The access log (CF-3): who read, searched, changed or was refused what, and when.

use chrono::Utc;
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

/// The newest entries first, optionally only one user's.
pub async fn recent(db: &Db, login: Option<&str>, limit: u64) -> Result<Vec<access_log::Model>> {
    let mut query = access_log::Entity::find().order_by_desc(access_log::Column::Id);
    if let Some(login) = login {
        query = query.filter(access_log::Column::Login.eq(login));
    }
    Ok(query.limit(limit).all(&db.conn).await?)
}
