//! Browser sessions (CF-11): signing in with a lock after repeated wrong passwords, the policy
//! for a second sign-in with the same account, idle timeouts, signing out, and sessions ended
//! by an administrator. An ended session keeps its row, with the reason, until the purge, so
//! the browser holding it is told why it was signed out.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};

use crate::Db;
use crate::auth::{self, Principal};
use crate::entities::{login_failure, session, user};
use crate::error::{Result, StorageError};

/// Wrong passwords in a row (within [`LOCK_FOR`]) that lock a login.
pub const LOCK_AFTER: i64 = 5;
/// How long a locked login stays locked, and the window its failures are counted in.
pub const LOCK_FOR: Duration = Duration::minutes(15);
/// Ended sessions and expired locks are kept this long, then purged.
pub const KEEP_ENDED: Duration = Duration::days(30);

/// What to do when an account signs in while it already has a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondSignIn {
    /// Both sessions stay; the second sign-in is logged.
    Allow,
    /// The new session replaces the older ones, whose browsers are told why.
    #[default]
    EndOlder,
    /// The new sign-in is refused until the live session signs out, idles out or is ended by
    /// an administrator.
    Reject,
}

impl SecondSignIn {
    pub const NAMES: [&'static str; 3] = ["allow", "end-older", "reject"];

    pub fn as_str(self) -> &'static str {
        match self {
            SecondSignIn::Allow => "allow",
            SecondSignIn::EndOlder => "end-older",
            SecondSignIn::Reject => "reject",
        }
    }
}

impl std::str::FromStr for SecondSignIn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(SecondSignIn::Allow),
            "end-older" => Ok(SecondSignIn::EndOlder),
            "reject" => Ok(SecondSignIn::Reject),
            other => Err(format!(
                "{other:?} is not a second sign-in policy; use one of {}",
                SecondSignIn::NAMES.join(", ")
            )),
        }
    }
}

/// How sessions behave; set by the operator when starting tabiji.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A session unused this long ends.
    pub idle: Duration,
    pub second_sign_in: SecondSignIn,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            idle: Duration::hours(8),
            second_sign_in: SecondSignIn::default(),
        }
    }
}

/// Why a session ended; the code is what the API and the browser show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    SignedOut,
    Idle,
    SignedInElsewhere,
    EndedByAdministrator,
    PasswordChanged,
    AccountDisabled,
}

impl EndReason {
    const ALL: [EndReason; 6] = [
        EndReason::SignedOut,
        EndReason::Idle,
        EndReason::SignedInElsewhere,
        EndReason::EndedByAdministrator,
        EndReason::PasswordChanged,
        EndReason::AccountDisabled,
    ];

    pub fn code(self) -> &'static str {
        match self {
            EndReason::SignedOut => "signed_out",
            EndReason::Idle => "idle",
            EndReason::SignedInElsewhere => "signed_in_elsewhere",
            EndReason::EndedByAdministrator => "ended_by_administrator",
            EndReason::PasswordChanged => "password_changed",
            EndReason::AccountDisabled => "account_disabled",
        }
    }

    pub fn explain(self) -> &'static str {
        match self {
            EndReason::SignedOut => "this session was signed out",
            EndReason::Idle => "this session ended after a period without activity",
            EndReason::SignedInElsewhere => {
                "this account signed in somewhere else, which ended this session"
            }
            EndReason::EndedByAdministrator => "an administrator ended this session",
            EndReason::PasswordChanged => "the account's password was changed",
            EndReason::AccountDisabled => "the account was disabled",
        }
    }

    fn parse(code: &str) -> EndReason {
        EndReason::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .unwrap_or(EndReason::SignedOut)
    }
}

/// Where a sign-in comes from.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A successful sign-in.
#[derive(Debug)]
pub struct SignedIn {
    pub principal: Principal,
    /// The cookie value; only its hash is stored.
    pub secret: String,
    /// Live sessions the account had when it signed in (ended, under `EndOlder`).
    pub other_sessions: usize,
}

/// What a session cookie stands for now.
#[derive(Debug)]
pub enum SessionState {
    Live(Principal),
    Ended(EndReason),
    Unknown,
}

/// One live session, for the lists of sessions.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: i64,
    pub user_id: i64,
    pub login: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

fn failure_key(login: &str) -> String {
    login.chars().take(64).collect()
}

/// Checks a login and password and opens a session, applying the lock and the second sign-in
/// policy.
pub async fn sign_in(
    db: &Db,
    login: &str,
    password: &str,
    device: Device,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<SignedIn> {
    let key = failure_key(login);
    let failures = login_failure::Entity::find_by_id(key.clone())
        .one(&db.conn)
        .await?;
    if let Some(until) = failures.as_ref().and_then(|f| f.locked_until)
        && until > now
    {
        return Err(StorageError::Locked { until });
    }
    let found = auth::find_user(db, login).await?.filter(|u| u.active);
    let user = match found {
        Some(user) if auth::verify_password_async(user.password_hash.clone(), password).await => {
            user
        }
        found => {
            if found.is_none() {
                // Cost the same as a wrong password, so timing does not tell which logins exist.
                auth::verify_password_async(auth::dummy_hash(), password).await;
            }
            return Err(count_failure(db, key, failures, now).await?);
        }
    };
    if failures.is_some() {
        login_failure::Entity::delete_by_id(key)
            .exec(&db.conn)
            .await?;
    }
    let live = live_sessions(db, Some(user.id), now).await?;
    if policy.second_sign_in == SecondSignIn::Reject
        && let Some(newest) = live.iter().map(|s| s.last_seen_at).max()
    {
        return Err(StorageError::AlreadySignedIn { last_seen: newest });
    }
    if policy.second_sign_in == SecondSignIn::EndOlder && !live.is_empty() {
        end_for_user(db, user.id, EndReason::SignedInElsewhere, now).await?;
    }
    let secret = auth::random_secret();
    session::ActiveModel {
        user_id: Set(user.id),
        token_hash: Set(auth::sha256(&secret)),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(now + policy.idle),
        ended_at: Set(None),
        ended_reason: Set(None),
        ip: Set(device.ip),
        user_agent: Set(device
            .user_agent
            .map(|agent| agent.chars().take(300).collect())),
        ..Default::default()
    }
    .insert(&db.conn)
    .await?;
    Ok(SignedIn {
        principal: auth::principal_for(db, &user).await?,
        secret,
        other_sessions: live.len(),
    })
}

/// Counts a wrong password for `key`; the error to answer with (the lock, once reached).
async fn count_failure(
    db: &Db,
    key: String,
    before: Option<login_failure::Model>,
    now: DateTime<Utc>,
) -> Result<StorageError> {
    let in_window = before
        .as_ref()
        .filter(|f| f.locked_until.is_none_or(|until| until <= now))
        .filter(|f| now - f.first_at < LOCK_FOR);
    let (failures, first_at) = match in_window {
        Some(f) => (f.failures + 1, f.first_at),
        None => (1, now),
    };
    let locked_until = (failures >= LOCK_AFTER).then(|| now + LOCK_FOR);
    let row = login_failure::ActiveModel {
        login: Set(key),
        failures: Set(if locked_until.is_some() { 0 } else { failures }),
        first_at: Set(if locked_until.is_some() {
            now
        } else {
            first_at
        }),
        locked_until: Set(locked_until),
    };
    if before.is_some() {
        row.update(&db.conn).await?;
    } else {
        row.insert(&db.conn).await?;
    }
    Ok(match locked_until {
        Some(until) => StorageError::Locked { until },
        None => StorageError::BadCredentials,
    })
}

/// Lifts the lock on a login (an administrator's action).
pub async fn unlock(db: &Db, login: &str) -> Result<bool> {
    let gone = login_failure::Entity::delete_by_id(failure_key(login))
        .exec(&db.conn)
        .await?;
    Ok(gone.rows_affected > 0)
}

/// The state of the session a cookie holds; a live session's idle timeout starts again.
pub async fn session_state(
    db: &Db,
    secret: &str,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<SessionState> {
    let Some(found) = session::Entity::find()
        .filter(session::Column::TokenHash.eq(auth::sha256(secret)))
        .one(&db.conn)
        .await?
    else {
        return Ok(SessionState::Unknown);
    };
    if let Some(reason) = &found.ended_reason {
        return Ok(SessionState::Ended(EndReason::parse(reason)));
    }
    if found.expires_at <= now {
        end(db, found.id, EndReason::Idle, now).await?;
        return Ok(SessionState::Ended(EndReason::Idle));
    }
    let Some(user) = user::Entity::find_by_id(found.user_id)
        .one(&db.conn)
        .await?
    else {
        return Ok(SessionState::Unknown);
    };
    if !user.active {
        end(db, found.id, EndReason::AccountDisabled, now).await?;
        return Ok(SessionState::Ended(EndReason::AccountDisabled));
    }
    // Extending on every request would write on every read; once a minute is enough.
    if now - found.last_seen_at > Duration::minutes(1) {
        let mut active = found.into_active_model();
        active.last_seen_at = Set(now);
        active.expires_at = Set(now + policy.idle);
        active.update(&db.conn).await?;
    }
    Ok(SessionState::Live(auth::principal_for(db, &user).await?))
}

fn is_live(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(session::Column::EndedAt.is_null())
        .add(session::Column::ExpiresAt.gt(now))
}

fn ending(reason: EndReason, now: DateTime<Utc>) -> [(session::Column, Expr); 2] {
    [
        (session::Column::EndedAt, Expr::value(now)),
        (session::Column::EndedReason, Expr::value(reason.code())),
    ]
}

/// Ends the session a cookie holds (signing out).
pub async fn sign_out(db: &Db, secret: &str, now: DateTime<Utc>) -> Result<()> {
    let mut update = session::Entity::update_many()
        .filter(session::Column::TokenHash.eq(auth::sha256(secret)))
        .filter(session::Column::EndedAt.is_null());
    for (column, value) in ending(EndReason::SignedOut, now) {
        update = update.col_expr(column, value);
    }
    update.exec(&db.conn).await?;
    Ok(())
}

/// Ends one session; the login it belonged to, if it was live.
pub async fn end(db: &Db, id: i64, reason: EndReason, now: DateTime<Utc>) -> Result<Option<i64>> {
    let Some(found) = session::Entity::find_by_id(id)
        .filter(session::Column::EndedAt.is_null())
        .one(&db.conn)
        .await?
    else {
        return Ok(None);
    };
    let mut update = session::Entity::update_many()
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::EndedAt.is_null());
    for (column, value) in ending(reason, now) {
        update = update.col_expr(column, value);
    }
    let changed = update.exec(&db.conn).await?.rows_affected;
    Ok((changed > 0).then_some(found.user_id))
}

/// Ends every live session of a user; how many there were.
pub async fn end_for_user(
    db: &Db,
    user_id: i64,
    reason: EndReason,
    now: DateTime<Utc>,
) -> Result<u64> {
    end_for_user_except(db, user_id, None, reason, now).await
}

/// Ends every live session of a user but the one `keep` holds (the caller's own).
pub async fn end_for_user_except(
    db: &Db,
    user_id: i64,
    keep: Option<&str>,
    reason: EndReason,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut update = session::Entity::update_many()
        .filter(session::Column::UserId.eq(user_id))
        .filter(is_live(now));
    if let Some(secret) = keep {
        update = update.filter(session::Column::TokenHash.ne(auth::sha256(secret)));
    }
    for (column, value) in ending(reason, now) {
        update = update.col_expr(column, value);
    }
    Ok(update.exec(&db.conn).await?.rows_affected)
}

/// Live sessions, newest first; one user's when `user_id` is given.
pub async fn live_sessions(
    db: &Db,
    user_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<LiveSession>> {
    let mut query = session::Entity::find()
        .filter(is_live(now))
        .order_by_desc(session::Column::LastSeenAt)
        .order_by_desc(session::Column::Id);
    if let Some(user_id) = user_id {
        query = query.filter(session::Column::UserId.eq(user_id));
    }
    let found = query.all(&db.conn).await?;
    let mut ids: Vec<i64> = found.iter().map(|s| s.user_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let logins: std::collections::HashMap<i64, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(&db.conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.login))
        .collect();
    Ok(found
        .into_iter()
        .map(|s| LiveSession {
            id: s.id,
            user_id: s.user_id,
            login: logins.get(&s.user_id).cloned().unwrap_or_default(),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect())
}

/// The id of the session a cookie holds.
pub async fn id_of(db: &Db, secret: &str) -> Result<Option<i64>> {
    Ok(session::Entity::find()
        .filter(session::Column::TokenHash.eq(auth::sha256(secret)))
        .one(&db.conn)
        .await?
        .map(|s| s.id))
}

/// Deletes sessions ended (or expired) and locks lifted more than [`KEEP_ENDED`] ago; how many
/// rows went.
pub async fn purge(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    let before = now - KEEP_ENDED;
    let sessions = session::Entity::delete_many()
        .filter(
            Condition::any()
                .add(session::Column::EndedAt.lt(before))
                .add(
                    Condition::all()
                        .add(session::Column::EndedAt.is_null())
                        .add(session::Column::ExpiresAt.lt(before)),
                ),
        )
        .exec(&db.conn)
        .await?
        .rows_affected;
    let failures = login_failure::Entity::delete_many()
        .filter(login_failure::Column::FirstAt.lt(now - LOCK_FOR))
        .filter(
            Condition::any()
                .add(login_failure::Column::LockedUntil.is_null())
                .add(login_failure::Column::LockedUntil.lt(now)),
        )
        .exec(&db.conn)
        .await?
        .rows_affected;
    Ok(sessions + failures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit;
    use crate::auth::{NewUser, UserChange};
    use crate::migration;
    use crate::scratch::Scratch;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    async fn db_with_user(scratch: &Scratch) -> Db {
        let db = Db::connect(&scratch.url).await.unwrap();
        migration::run(&db).await.unwrap();
        for login in ["sato", "root"] {
            auth::create_user(
                &db,
                NewUser {
                    login: login.into(),
                    password: "correct horse battery".into(),
                    is_admin: login == "root",
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        db
    }

    fn code(e: &StorageError) -> &'static str {
        match e {
            StorageError::BadCredentials => "bad",
            StorageError::Locked { .. } => "locked",
            StorageError::AlreadySignedIn { .. } => "already",
            _ => "other",
        }
    }

    async fn try_sign_in(
        db: &Db,
        login: &str,
        password: &str,
        policy: Policy,
        now: DateTime<Utc>,
    ) -> Result<SignedIn> {
        sign_in(db, login, password, Device::default(), policy, now).await
    }

    #[tokio::test]
    async fn wrong_passwords_lock_a_login_for_a_while_whether_or_not_it_exists() {
        for scratch in Scratch::all_backends().await {
            let db = db_with_user(&scratch).await;
            let policy = Policy::default();
            let t0 = at("2026-11-29T01:00:00Z");
            // Four wrong, then the right one: the count starts again.
            for i in 0..4 {
                let e = try_sign_in(&db, "sato", "wrong", policy, t0 + Duration::seconds(i))
                    .await
                    .unwrap_err();
                assert_eq!(code(&e), "bad");
            }
            try_sign_in(
                &db,
                "sato",
                "correct horse battery",
                policy,
                t0 + Duration::seconds(5),
            )
            .await
            .unwrap();
            for i in 0..4 {
                let e = try_sign_in(&db, "sato", "wrong", policy, t0 + Duration::seconds(10 + i))
                    .await
                    .unwrap_err();
                assert_eq!(code(&e), "bad", "attempt {i} after the reset");
            }
            let fifth = try_sign_in(&db, "sato", "wrong", policy, t0 + Duration::seconds(20))
                .await
                .unwrap_err();
            assert_eq!(code(&fifth), "locked");
            let locked_at = t0 + Duration::seconds(20);
            let e = try_sign_in(
                &db,
                "sato",
                "correct horse battery",
                policy,
                locked_at + Duration::minutes(14),
            )
            .await
            .unwrap_err();
            assert_eq!(code(&e), "locked", "even the right password, while locked");
            try_sign_in(
                &db,
                "sato",
                "correct horse battery",
                policy,
                locked_at + LOCK_FOR + Duration::seconds(1),
            )
            .await
            .expect("the lock lifts by itself");

            // Failures spread over more than the window never lock.
            for i in 0..8 {
                let e = try_sign_in(&db, "root", "wrong", policy, t0 + Duration::minutes(4 * i))
                    .await
                    .unwrap_err();
                assert_eq!(code(&e), "bad", "spread attempt {i}");
            }

            for i in 0..5 {
                let e = try_sign_in(&db, "nobody", "wrong", policy, t0 + Duration::seconds(i))
                    .await
                    .unwrap_err();
                assert_eq!(code(&e), if i < 4 { "bad" } else { "locked" });
            }
            for i in 0..4 {
                try_sign_in(
                    &db,
                    "sato",
                    "wrong",
                    policy,
                    t0 + Duration::hours(2) + Duration::seconds(i),
                )
                .await
                .unwrap_err();
            }
            assert_eq!(
                code(
                    &try_sign_in(
                        &db,
                        "sato",
                        "wrong",
                        policy,
                        t0 + Duration::hours(2) + Duration::seconds(5)
                    )
                    .await
                    .unwrap_err()
                ),
                "locked"
            );
            assert!(unlock(&db, "sato").await.unwrap());
            try_sign_in(
                &db,
                "sato",
                "correct horse battery",
                policy,
                t0 + Duration::hours(2) + Duration::seconds(6),
            )
            .await
            .expect("an administrator lifted the lock");
        }
    }

    #[tokio::test]
    async fn a_second_sign_in_ends_the_older_session_is_refused_or_allowed_as_configured() {
        for scratch in Scratch::all_backends().await {
            let db = db_with_user(&scratch).await;
            let now = at("2026-11-29T01:00:00Z");
            let state = |secret: String, now| {
                let db = db.clone();
                async move {
                    match session_state(&db, &secret, Policy::default(), now)
                        .await
                        .unwrap()
                    {
                        SessionState::Live(p) => format!("live {}", p.login),
                        SessionState::Ended(r) => r.code().to_string(),
                        SessionState::Unknown => "unknown".into(),
                    }
                }
            };
            let end_older = Policy::default();
            let first = try_sign_in(&db, "sato", "correct horse battery", end_older, now)
                .await
                .unwrap();
            assert_eq!(first.other_sessions, 0);
            let second = try_sign_in(&db, "sato", "correct horse battery", end_older, now)
                .await
                .unwrap();
            assert_eq!(second.other_sessions, 1);
            assert_eq!(
                state(first.secret.clone(), now).await,
                "signed_in_elsewhere"
            );
            assert_eq!(state(second.secret.clone(), now).await, "live sato");

            let reject = Policy {
                second_sign_in: SecondSignIn::Reject,
                ..Policy::default()
            };
            let e = try_sign_in(&db, "sato", "correct horse battery", reject, now)
                .await
                .unwrap_err();
            assert_eq!(code(&e), "already");
            assert_eq!(
                state(second.secret.clone(), now).await,
                "live sato",
                "the live one stays"
            );

            let allow = Policy {
                second_sign_in: SecondSignIn::Allow,
                ..Policy::default()
            };
            let third = try_sign_in(&db, "sato", "correct horse battery", allow, now)
                .await
                .unwrap();
            assert_eq!(third.other_sessions, 1);
            assert_eq!(state(second.secret.clone(), now).await, "live sato");
            assert_eq!(live_sessions(&db, None, now).await.unwrap().len(), 2);

            // Idle: activity keeps a session; eight quiet hours end it.
            let later = now + Duration::hours(7);
            assert_eq!(state(third.secret.clone(), later).await, "live sato");
            assert_eq!(
                state(third.secret.clone(), later + Duration::hours(7)).await,
                "live sato",
                "extended by the use seven hours in"
            );
            assert_eq!(
                state(second.secret.clone(), later + Duration::hours(7)).await,
                "idle"
            );

            sign_out(&db, &third.secret, later).await.unwrap();
            assert_eq!(state(third.secret.clone(), later).await, "signed_out");
            assert_eq!(state("no such cookie".into(), later).await, "unknown");

            // A disabled account's sessions end; the last administrator stays one.
            let fourth = try_sign_in(&db, "sato", "correct horse battery", allow, later)
                .await
                .unwrap();
            let off = UserChange {
                active: Some(false),
                ..Default::default()
            };
            auth::update_user(&db, "sato", off.clone(), later)
                .await
                .unwrap();
            assert_eq!(
                state(fourth.secret.clone(), later).await,
                "account_disabled"
            );
            let e = auth::update_user(&db, "root", off, later)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("last active administrator"), "{e}");

            // Ended sessions are kept thirty days, with their reason, then purged.
            assert_eq!(purge(&db, later + Duration::days(29)).await.unwrap(), 0);
            assert!(purge(&db, later + Duration::days(31)).await.unwrap() >= 4);
            assert_eq!(state(fourth.secret, later).await, "unknown");
        }
    }

    #[tokio::test]
    async fn the_access_log_keeps_one_month_and_finds_by_who_and_what() {
        for scratch in Scratch::all_backends().await {
            let db = db_with_user(&scratch).await;
            let sato = Principal {
                user_id: Some(1),
                login: "sato".into(),
                rights: Default::default(),
            };
            for (action, record) in [("view", Some(7)), ("view", Some(8)), ("export", None)] {
                audit::record(
                    &db,
                    &sato,
                    audit::Entry {
                        action,
                        entity: Some("tourists"),
                        record_id: record,
                        outcome: "ok",
                        detail: None,
                    },
                )
                .await
                .unwrap();
            }
            let find = |search: audit::Search| {
                let db = db.clone();
                async move { audit::search(&db, &search, 10).await.unwrap().len() }
            };
            assert_eq!(
                find(audit::Search {
                    login: Some("sato".into()),
                    ..Default::default()
                })
                .await,
                3
            );
            assert_eq!(
                find(audit::Search {
                    entity: Some("tourists".into()),
                    record_id: Some(7),
                    ..Default::default()
                })
                .await,
                1
            );
            let newest = audit::search(&db, &Default::default(), 1).await.unwrap();
            assert_eq!(newest[0].action, "export");
            assert_eq!(
                find(audit::Search {
                    before_id: Some(newest[0].id),
                    ..Default::default()
                })
                .await,
                2,
                "the next page"
            );
            let now = Utc::now();
            assert_eq!(
                audit::purge(&db, now + Duration::days(27)).await.unwrap(),
                0
            );
            assert_eq!(
                audit::purge(&db, now + Duration::days(32)).await.unwrap(),
                3
            );
            assert_eq!(find(Default::default()).await, 0);
        }
    }
}
