//! The access log (CF-3): who read, searched, changed or was refused what, and when.

use std::sync::Arc;

use chrono::{DateTime, Months, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::Db;
use crate::auth::Principal;
use crate::entities::access_log;
use crate::error::Result;
use tokio::sync::oneshot;

/// One line of the access log.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub entity: Option<&'a str>,
    pub record_id: Option<i64>,
    pub outcome: &'a str,
    pub detail: Option<String>,
}

/// Writes one line, returning once it is stored.
pub async fn record(db: &Db, who: &Principal, entry: Entry<'_>) -> Result<()> {
    db.journal.write(db, line(who, entry)).await
}

fn line(who: &Principal, entry: Entry<'_>) -> access_log::ActiveModel {
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
}

/// Access-log lines waiting to be written, and the turn to write them.
///
/// Every request writes a line, and a line written alone is a transaction of its own: on
/// SQLite one writer at a time, each waiting for the lock; on PostgreSQL a WAL flush each.
/// Lines that arrive while a group is being written wait for the next group, which goes as
/// one multi-row INSERT; each caller still returns only once its own line is stored.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    waiting: std::sync::Mutex<Vec<Waiting>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
struct Waiting {
    line: access_log::ActiveModel,
    stored: oneshot::Sender<bool>,
}

/// At most this many lines go in one INSERT (8 parameters each); a larger group takes several.
const GROUP: usize = 1_000;

impl Journal {
    async fn write(&self, db: &Db, line: access_log::ActiveModel) -> Result<()> {
        let (stored, mut outcome) = oneshot::channel();
        self.waiting
            .lock()
            .expect("no thread panics holding the access-log queue")
            .push(Waiting {
                line: line.clone(),
                stored,
            });
        let turn = self.turn.clone().lock_owned().await;
        let written = match outcome.try_recv() {
            Ok(written) => {
                drop(turn);
                written
            }
            Err(oneshot::error::TryRecvError::Empty) => {
                // This line is still waiting, so it is this caller's turn to write every line
                // that waits, however many (a line left behind would have no one left to write
                // it). A task of its own writes them, so that a caller who goes away (a client
                // that hangs up) cannot leave the others waiting.
                let group: Vec<Waiting> = std::mem::take(
                    &mut *self
                        .waiting
                        .lock()
                        .expect("no thread panics holding the access-log queue"),
                );
                let conn = db.conn.clone();
                tokio::spawn(async move {
                    let mut group = group.into_iter().peekable();
                    while group.peek().is_some() {
                        let (lines, stored): (Vec<_>, Vec<_>) = group
                            .by_ref()
                            .take(GROUP)
                            .map(|w| (w.line, w.stored))
                            .unzip();
                        let written = access_log::Entity::insert_many(lines)
                            .exec_without_returning(&conn)
                            .await
                            .is_ok();
                        // Each caller hears before the turn passes on: whoever takes the turn
                        // next and has not heard is sure to find its line still waiting.
                        for stored in stored {
                            let _ = stored.send(written);
                        }
                    }
                    drop(turn);
                });
                outcome.await.unwrap_or(false)
            }
            Err(oneshot::error::TryRecvError::Closed) => false,
        };
        if !written {
            // The group failed as a whole; alone, each line either goes in or brings back
            // the database's own error for this caller.
            line.insert(&db.conn).await?;
        }
        Ok(())
    }
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
    use crate::migration;
    use crate::scratch::Scratch;
    use sea_orm::{ConnectionTrait, PaginatorTrait};

    /// Tourist `id` viewed.
    fn viewed(id: usize) -> Entry<'static> {
        Entry {
            action: "view",
            entity: Some("tourists"),
            record_id: Some(id as i64),
            outcome: "ok",
            detail: None,
        }
    }

    async fn record_many(db: &Db, n: usize) -> Vec<Result<()>> {
        let who = Principal::system();
        let calls = (0..n).map(|i| {
            let (db, who) = (db.clone(), who.clone());
            tokio::spawn(async move { record(&db, &who, viewed(i)).await })
        });
        let mut results = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            results.push(call.await.unwrap());
        }
        results
    }

    #[tokio::test]
    async fn lines_written_at_once_are_each_stored_once() {
        for scratch in Scratch::all_backends().await {
            let db = Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            // More than one INSERT's worth arrive at once.
            let n = GROUP as i64 * 2 + 500;
            assert!(record_many(&db, n as usize).await.iter().all(Result::is_ok));
            let mut ids: Vec<i64> = access_log::Entity::find()
                .all(&db.conn)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|line| line.record_id)
                .collect();
            ids.sort();
            assert_eq!(ids, (0..n).collect::<Vec<i64>>());
            db.conn.close().await.unwrap();
            scratch.remove().await;
        }
    }

    /// A caller whose line waits behind more than one INSERT's worth of others still has it
    /// written, though every other caller has gone.
    #[tokio::test]
    async fn a_line_behind_a_full_group_is_written_too() {
        let scratch = Scratch::sqlite();
        let db = Db::connect(&scratch.url).await.unwrap();
        migration::run(&db).await.unwrap();
        let who = Principal::system();
        db.journal
            .waiting
            .lock()
            .unwrap()
            .extend((0..GROUP).map(|i| {
                let (stored, _gone) = oneshot::channel();
                Waiting {
                    line: line(&who, viewed(i)),
                    stored,
                }
            }));
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            record(&db, &who, viewed(GROUP)),
        )
        .await
        .expect("the line is written, not left waiting")
        .unwrap();
        assert_eq!(
            access_log::Entity::find().count(&db.conn).await.unwrap(),
            GROUP as u64 + 1
        );
        db.conn.close().await.unwrap();
        scratch.remove().await;
    }

    #[tokio::test]
    async fn a_group_that_cannot_be_written_fails_every_caller_in_it() {
        for scratch in Scratch::all_backends().await {
            let db = Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            db.conn
                .execute_unprepared("ALTER TABLE sys_access_log RENAME TO gone")
                .await
                .unwrap();
            let results = record_many(&db, 50).await;
            assert!(results.iter().all(Result::is_err), "{results:?}");
            db.conn
                .execute_unprepared("ALTER TABLE gone RENAME TO sys_access_log")
                .await
                .unwrap();
            assert_eq!(access_log::Entity::find().count(&db.conn).await.unwrap(), 0);
            assert!(record_many(&db, 5).await.iter().all(Result::is_ok));
            db.conn.close().await.unwrap();
            scratch.remove().await;
        }
    }

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
