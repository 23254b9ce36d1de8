//! Keys the installation makes for itself, kept in the database so every process (API
//! servers and workers on several machines) uses the same one: the first process that needs a
//! key makes it, and the others read that one.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};

use crate::error::{Result, StorageError};
use crate::records::Store;

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// The secret called `name`, made with `make` if there is none yet.
pub async fn get_or_make(
    store: &Store,
    name: &str,
    make: impl FnOnce() -> String,
    now: DateTime<Utc>,
) -> Result<String> {
    let conn = &store.db().conn;
    let insert = Query::insert()
        .into_table(col("sys_secrets"))
        .columns(["name", "value", "created_at"].map(col))
        .values_panic([name.into(), make().into(), now.into()])
        .on_conflict(OnConflict::column(col("name")).do_nothing().to_owned())
        .to_owned();
    conn.execute(&insert).await?;
    let select = Query::select()
        .column(col("value"))
        .from(col("sys_secrets"))
        .and_where(Expr::col(col("name")).eq(name))
        .to_owned();
    let row = conn.query_one(&select).await?.ok_or_else(|| {
        StorageError::Database(sea_orm::DbErr::Custom(format!(
            "the secret {name} was not kept"
        )))
    })?;
    Ok(row.try_get("", "value")?)
}
