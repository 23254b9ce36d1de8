//! Scheduled work fired once across workers: one row per job and due time in a ticks table
//! (import fetches, scheduled exports), whose primary key lets one process win; and whom a
//! scheduled run acts as.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};

use crate::auth::{self, Principal};
use crate::error::Result;
use crate::records::Store;

/// The latest due time of job `key` that fired (epoch milliseconds).
pub(crate) async fn last(
    store: &Store,
    table: &str,
    key_column: &str,
    key: &str,
) -> Result<Option<i64>> {
    let mut q = Query::select();
    q.expr_as(Expr::col(Alias::new("tick_at")).max(), Alias::new("t"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new(key_column)).eq(key));
    match store.db().conn.query_one(&q).await? {
        Some(row) => Ok(row.try_get("", "t")?),
        None => Ok(None),
    }
}

/// Records that job `key`'s run due at `tick_at` fires; `false` when another worker recorded
/// it first.
pub(crate) async fn claim(
    store: &Store,
    table: &str,
    key_column: &str,
    key: &str,
    tick_at: i64,
    now: i64,
) -> Result<bool> {
    let insert = Query::insert()
        .into_table(Alias::new(table))
        .columns([key_column, "tick_at", "fired_at"].map(Alias::new))
        .values_panic([key.into(), tick_at.into(), now.into()])
        .on_conflict(
            OnConflict::columns([key_column, "tick_at"].map(Alias::new))
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    Ok(store.db().conn.execute(&insert).await?.rows_affected() == 1)
}

/// Whom a scheduled run acts as: the user who saved the job, with their rights as they are
/// now (`None` when that user is gone or disabled); tabiji itself for jobs saved from the
/// command line.
pub async fn acting_owner(store: &Store, created_by: &str) -> Result<Option<Principal>> {
    match auth::find_user(store.db(), created_by).await? {
        Some(user) if user.active => Ok(Some(auth::principal_for(store.db(), &user).await?)),
        Some(_) => Ok(None),
        None if created_by == Principal::system().login => Ok(Some(Principal::system())),
        None => Ok(None),
    }
}
