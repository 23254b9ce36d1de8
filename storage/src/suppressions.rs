//! The suppression list: addresses (an e-mail address, a phone number as stored, a LINE user
//! ID) a channel must not send to, because they bounced, their owner complained, or staff
//! said so. Kept by address rather than by contact, so a tourist imported again with the same
//! address stays suppressed.
//!
//! Rights: the `suppressions` entity: view lists, create adds, delete removes. Bounces are
//! added by the engine.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use serde::Serialize;

use crate::error::Result;

fn col(name: &str) -> Alias {
    Alias::new(name)
}

const TABLE: &str = "sys_suppressions";
/// The rights entity guarding the list.
pub const SUPPRESSIONS: &str = "suppressions";

/// Why an address is on the list.
pub const REASONS: [&str; 3] = ["bounce", "complaint", "manual"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    pub channel: String,
    pub address: String,
    /// `bounce`, `complaint` or `manual`.
    pub reason: String,
    /// The provider's words for a bounce, or the note staff gave.
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: [&str; 7] = [
    "channel",
    "address",
    "reason",
    "detail",
    "contact_id",
    "created_by",
    "created_at",
];

fn from_row(row: &sea_orm::QueryResult) -> Result<Suppression> {
    Ok(Suppression {
        channel: row.try_get("", "channel")?,
        address: row.try_get("", "address")?,
        reason: row.try_get("", "reason")?,
        detail: row.try_get("", "detail")?,
        contact_id: row.try_get("", "contact_id")?,
        created_by: row.try_get("", "created_by")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// Adds addresses; one already listed keeps its first reason (the earliest is the one that
/// explains it). Returns how many were new.
pub async fn add<C: ConnectionTrait>(conn: &C, items: &[Suppression]) -> Result<u64> {
    let mut added = 0;
    for chunk in items.chunks(200) {
        let mut q = Query::insert()
            .into_table(col(TABLE))
            .columns(COLUMNS.map(col))
            .on_conflict(
                OnConflict::columns(["channel", "address"].map(col))
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        for s in chunk {
            q.values_panic([
                s.channel.clone().into(),
                s.address.clone().into(),
                s.reason.clone().into(),
                s.detail.chars().take(500).collect::<String>().into(),
                s.contact_id.into(),
                s.created_by.clone().into(),
                s.created_at.into(),
            ]);
        }
        added += conn.execute(&q).await?.rows_affected();
    }
    Ok(added)
}

/// Which of `addresses` are suppressed on `channel`, with why.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    channel: &str,
    addresses: &[String],
) -> Result<HashMap<String, Suppression>> {
    let mut found = HashMap::new();
    for chunk in addresses.chunks(500) {
        let q = Query::select()
            .columns(COLUMNS.map(col))
            .from(col(TABLE))
            .and_where(Expr::col(col("channel")).eq(channel))
            .and_where(Expr::col(col("address")).is_in(chunk.iter().cloned()))
            .to_owned();
        for row in conn.query_all(&q).await? {
            let s = from_row(&row)?;
            found.insert(s.address.clone(), s);
        }
    }
    Ok(found)
}

/// The list, newest first, optionally for one channel.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    channel: Option<&str>,
    limit: u64,
) -> Result<Vec<Suppression>> {
    let mut q = Query::select()
        .columns(COLUMNS.map(col))
        .from(col(TABLE))
        .order_by(col("created_at"), Order::Desc)
        .order_by(col("address"), Order::Asc)
        .limit(limit)
        .to_owned();
    if let Some(channel) = channel {
        q.and_where(Expr::col(col("channel")).eq(channel));
    }
    conn.query_all(&q).await?.iter().map(from_row).collect()
}

/// Takes an address off the list; returns whether it was on it.
pub async fn remove<C: ConnectionTrait>(conn: &C, channel: &str, address: &str) -> Result<bool> {
    let q = Query::delete()
        .from_table(col(TABLE))
        .and_where(Expr::col(col("channel")).eq(channel))
        .and_where(Expr::col(col("address")).eq(address))
        .to_owned();
    Ok(conn.execute(&q).await?.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Store;
    use crate::scratch::Scratch;

    fn item(address: &str, reason: &str) -> Suppression {
        Suppression {
            channel: "email".into(),
            address: address.into(),
            reason: reason.into(),
            detail: "550 5.1.1 no such user".into(),
            contact_id: Some(3),
            created_by: "tabiji".into(),
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn the_first_reason_stays_and_lookups_are_per_channel() {
        for scratch in Scratch::all_backends().await {
            let db = crate::Db::connect(&scratch.url).await.unwrap();
            crate::migration::run(&db).await.unwrap();
            let store = Store::open(db).await.unwrap();
            let conn = &store.db().conn;
            let added = add(
                conn,
                &[
                    item("a@example.jp", "bounce"),
                    item("b@example.jp", "manual"),
                ],
            )
            .await
            .unwrap();
            assert_eq!(added, 2);
            assert_eq!(
                add(conn, &[item("a@example.jp", "complaint")])
                    .await
                    .unwrap(),
                0
            );
            let found = find(
                conn,
                "email",
                &["a@example.jp".into(), "c@example.jp".into()],
            )
            .await
            .unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found["a@example.jp"].reason, "bounce");
            assert!(
                find(conn, "sms", &["a@example.jp".into()])
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(list(conn, Some("email"), 10).await.unwrap().len(), 2);
            assert!(remove(conn, "email", "a@example.jp").await.unwrap());
            assert!(!remove(conn, "email", "a@example.jp").await.unwrap());
            assert_eq!(list(conn, None, 10).await.unwrap().len(), 1);
            scratch.remove().await;
        }
    }
}
