//! The channels administrators configure (SMS, LINE, webhook): public settings as JSON and the
//! credential as the engine sealed it (this module never sees it in clear). Administrators
//! only; the API checks that before calling here.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult};
use serde_json::Value as Json;

use crate::error::{Result, StorageError};
use crate::records::Store;

fn col(name: &str) -> Alias {
    Alias::new(name)
}

const TABLE: &str = "sys_channels";

/// One configured channel as stored.
#[derive(Debug, Clone)]
pub struct StoredChannel {
    pub channel: String,
    pub settings: Json,
    /// As sealed by the engine's vault.
    pub credential: String,
    pub revision: i64,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

fn from_row(row: &QueryResult) -> Result<Option<StoredChannel>> {
    let settings: Option<String> = row.try_get("", "settings")?;
    let credential: Option<String> = row.try_get("", "credential")?;
    let (Some(settings), Some(credential)) = (settings, credential) else {
        return Ok(None);
    };
    let channel: String = row.try_get("", "channel")?;
    let settings = serde_json::from_str(&settings).map_err(|e| {
        StorageError::Database(sea_orm::DbErr::Custom(format!(
            "the stored settings of channel {channel} are not JSON: {e}"
        )))
    })?;
    Ok(Some(StoredChannel {
        channel,
        settings,
        credential,
        revision: row.try_get("", "revision")?,
        updated_by: row.try_get("", "updated_by")?,
        updated_at: row.try_get("", "updated_at")?,
    }))
}

fn select() -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .columns(
            [
                "channel",
                "settings",
                "credential",
                "revision",
                "updated_by",
                "updated_at",
            ]
            .map(col),
        )
        .from(col(TABLE))
        .to_owned()
}

/// Every configured channel.
pub async fn list(store: &Store) -> Result<Vec<StoredChannel>> {
    let q = select().order_by(col("channel"), Order::Asc).to_owned();
    let rows = store.db().conn.query_all(&q).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.extend(from_row(row)?);
    }
    Ok(out)
}

pub async fn get(store: &Store, channel: &str) -> Result<Option<StoredChannel>> {
    let q = select()
        .and_where(Expr::col(col("channel")).eq(channel))
        .to_owned();
    match store.db().conn.query_one(&q).await? {
        Some(row) => from_row(&row),
        None => Ok(None),
    }
}

/// Saves a channel's settings and sealed credential, replacing what was there.
pub async fn save(
    store: &Store,
    channel: &str,
    settings: &Json,
    credential: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    write(
        store,
        channel,
        Some(settings.to_string()),
        Some(credential.to_string()),
        by,
        now,
    )
    .await
}

/// Removes a channel: its settings and credential are cleared. Returns whether it was there.
pub async fn remove(store: &Store, channel: &str, by: &str, now: DateTime<Utc>) -> Result<bool> {
    let existed = get(store, channel).await?.is_some();
    if existed {
        write(store, channel, None, None, by, now).await?;
    }
    Ok(existed)
}

async fn write(
    store: &Store,
    channel: &str,
    settings: Option<String>,
    credential: Option<String>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let q = Query::insert()
        .into_table(col(TABLE))
        .columns(
            [
                "channel",
                "settings",
                "credential",
                "revision",
                "updated_by",
                "updated_at",
            ]
            .map(col),
        )
        .values_panic([
            channel.into(),
            settings.into(),
            credential.into(),
            1i64.into(),
            by.into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::column(col("channel"))
                .update_columns(["settings", "credential", "updated_by", "updated_at"].map(col))
                .value(
                    col("revision"),
                    Expr::col((col(TABLE), col("revision"))).add(1),
                )
                .to_owned(),
        )
        .to_owned();
    store.db().conn.execute(&q).await?;
    Ok(())
}

/// Changes whenever any channel is saved or removed (revisions only grow).
pub async fn stamp(store: &Store) -> Result<i64> {
    // PostgreSQL sums bigints into numeric: cast back.
    let q = Query::select()
        .expr(Expr::cust("CAST(COALESCE(SUM(revision), 0) AS BIGINT)"))
        .from(col(TABLE))
        .to_owned();
    let row = store.db().conn.query_one(&q).await?;
    Ok(match row {
        Some(row) => row.try_get_by_index::<i64>(0)?,
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;
    use serde_json::json;

    #[tokio::test]
    async fn saves_replace_removals_clear_and_the_stamp_always_moves() {
        for scratch in Scratch::all_backends().await {
            let db = crate::Db::connect(&scratch.url).await.unwrap();
            crate::migration::run(&db).await.unwrap();
            let store = Store::open(db).await.unwrap();
            check(&store).await;
            scratch.remove().await;
        }
    }

    async fn check(store: &Store) {
        let now = Utc::now();
        assert_eq!(stamp(store).await.unwrap(), 0);
        save(
            store,
            "sms",
            &json!({"channel": "sms"}),
            "sealed-1",
            "admin",
            now,
        )
        .await
        .unwrap();
        let first = stamp(store).await.unwrap();
        save(
            store,
            "sms",
            &json!({"channel": "sms", "from": "KANKO"}),
            "sealed-2",
            "root",
            now,
        )
        .await
        .unwrap();
        let second = stamp(store).await.unwrap();
        assert!(second > first);
        let stored = get(store, "sms").await.unwrap().unwrap();
        assert_eq!(
            (
                stored.credential.as_str(),
                stored.updated_by.as_str(),
                stored.revision
            ),
            ("sealed-2", "root", 2)
        );
        assert_eq!(stored.settings["from"], "KANKO");
        assert!(remove(store, "sms", "admin", now).await.unwrap());
        assert!(stamp(store).await.unwrap() > second);
        assert!(get(store, "sms").await.unwrap().is_none());
        assert!(list(store).await.unwrap().is_empty());
        assert!(!remove(store, "sms", "admin", now).await.unwrap());
    }
}
