//! Users, roles, passwords and API tokens (CF-1, CF-2, CF-11); browser sessions are in
//! [`crate::sessions`].

use crate::db::begin_write;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tabiji_model::Rights;

use crate::Db;
use crate::entities::{api_token, role, user, user_role};
use crate::error::{ItemError, Result, StorageError};
use crate::sessions::{self, EndReason};

/// Shortest password a user account accepts.
pub const USER_PASSWORD_MIN: usize = 10;
/// Characters a password needs besides any copy of the login id in it.
const PASSWORD_BESIDES_LOGIN: usize = 6;
/// Prefix that makes tabiji API tokens recognisable (and findable by secret scanners).
pub const TOKEN_PREFIX: &str = "tbj_";

/// Who is asking, with the rights that apply to them.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `None` for tabiji itself (the demo loader, migrations).
    pub user_id: Option<i64>,
    pub login: String,
    pub rights: Rights,
}

impl Principal {
    /// tabiji acting on its own behalf, from the command line.
    pub fn system() -> Self {
        Principal {
            user_id: None,
            login: "system".into(),
            rights: Rights::admin(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.rights.admin
    }
}

pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id with default parameters hashes any password")
        .to_string()
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Hashing is deliberately slow; keep it off the async workers.
pub async fn hash_password_async(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .expect("password hashing does not panic")
}

pub(crate) async fn verify_password_async(hash: String, password: &str) -> bool {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .expect("password verification does not panic")
}

/// A hash verified against when a login does not exist, so both cases cost the same.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no user has this password"));

pub(crate) fn dummy_hash() -> String {
    DUMMY_HASH.clone()
}

pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub(crate) fn sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

pub fn check_login(login: &str) -> Result<()> {
    let ok = (3..=64).contains(&login.len())
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "login",
            "invalid_login",
            "must be 3 to 64 characters of a-z, A-Z, 0-9, . _ @ -",
        ))
    }
}

/// Passwords everyone tries first; long enough to pass the length rule, so named here.
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789012",
    "0123456789",
    "0987654321",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "abcdefghij",
    "abc1234567",
    "administrator",
    "changeme123",
    "iloveyou12",
    "letmein123",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "p@ssw0rd123",
    "qazwsxedcrfv",
    "qwertyuiop",
    "qwerty12345",
    "qwerty123456",
    "welcome123",
    "tabiji1234",
];

/// The password policy: long enough, not too long, not the login id, not one character
/// repeated, not one of the passwords everyone tries first. No rules on character classes:
/// they make passwords harder to remember, not to guess (NIST SP 800-63B).
pub fn check_password(password: &str, login: &str) -> Result<()> {
    if password.chars().count() < USER_PASSWORD_MIN {
        return Err(bad(
            "password",
            "password_too_short",
            format!("must be at least {USER_PASSWORD_MIN} characters"),
        ));
    }
    if password.len() > 1024 {
        return Err(bad("password", "too_long", "must be at most 1024 bytes"));
    }
    let lower = password.to_lowercase();
    if !login.is_empty()
        && lower.replace(&login.to_lowercase(), "").chars().count() < PASSWORD_BESIDES_LOGIN
    {
        return Err(bad(
            "password",
            "password_like_login",
            format!(
                "must not be the login id with a few characters added; use at least {PASSWORD_BESIDES_LOGIN} characters besides it"
            ),
        ));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(bad(
            "password",
            "password_too_simple",
            "must not be one character repeated",
        ));
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(bad(
            "password",
            "password_too_common",
            "is one of the passwords tried first by anyone guessing; choose another",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub login: String,
    pub display_name: String,
    pub password: String,
    pub is_admin: bool,
    pub roles: Vec<String>,
    pub rights: Rights,
}

pub async fn create_user(db: &Db, new: NewUser) -> Result<user::Model> {
    check_login(&new.login)?;
    check_password(&new.password, &new.login)?;
    if user::Entity::find()
        .filter(user::Column::Login.eq(&new.login))
        .one(&db.conn)
        .await?
        .is_some()
    {
        return Err(StorageError::Conflict(vec![ItemError::field(
            "login",
            "duplicate",
            format!("a user with login {} exists already", new.login),
        )]));
    }
    let roles = find_roles(db, &new.roles).await?;
    let hash = hash_password_async(new.password).await;
    let now = Utc::now();
    let txn = begin_write(&db.conn).await?;
    let created = user::ActiveModel {
        login: Set(new.login),
        display_name: Set(new.display_name),
        password_hash: Set(hash),
        is_admin: Set(new.is_admin),
        active: Set(true),
        rights: Set(serde_json::to_string(&new.rights).expect("rights serialise")),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    for role in roles {
        user_role::ActiveModel {
            user_id: Set(created.id),
            role_id: Set(role.id),
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(created)
}

async fn find_roles(db: &Db, names: &[String]) -> Result<Vec<role::Model>> {
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let found = role::Entity::find()
            .filter(role::Column::Name.eq(name))
            .one(&db.conn)
            .await?
            .ok_or_else(|| {
                StorageError::invalid(
                    ItemError::field(
                        "roles",
                        "unknown_role",
                        format!("no role is called {name:?}"),
                    )
                    .at(Some(i)),
                )
            })?;
        out.push(found);
    }
    Ok(out)
}

pub async fn create_role(
    db: &Db,
    name: &str,
    description: &str,
    rights: &Rights,
) -> Result<role::Model> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(bad("name", "invalid_name", "must be 1 to 100 characters"));
    }
    if role::Entity::find()
        .filter(role::Column::Name.eq(name))
        .one(&db.conn)
        .await?
        .is_some()
    {
        return Err(StorageError::Conflict(vec![ItemError::field(
            "name",
            "duplicate",
            format!("a role called {name} exists already"),
        )]));
    }
    Ok(role::ActiveModel {
        name: Set(name.to_string()),
        description: Set(description.to_string()),
        rights: Set(serde_json::to_string(rights).expect("rights serialise")),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&db.conn)
    .await?)
}

pub async fn update_role_rights(db: &Db, name: &str, rights: &Rights) -> Result<role::Model> {
    let found = role::Entity::find()
        .filter(role::Column::Name.eq(name))
        .one(&db.conn)
        .await?
        .ok_or_else(|| {
            bad(
                "name",
                "unknown_role",
                format!("no role is called {name:?}"),
            )
        })?;
    let mut active = found.into_active_model();
    active.rights = Set(serde_json::to_string(rights).expect("rights serialise"));
    Ok(active.update(&db.conn).await?)
}

pub async fn list_roles(db: &Db) -> Result<Vec<role::Model>> {
    Ok(role::Entity::find()
        .order_by_asc(role::Column::Name)
        .all(&db.conn)
        .await?)
}

pub async fn list_users(db: &Db) -> Result<Vec<(user::Model, Vec<String>)>> {
    let users = user::Entity::find()
        .order_by_asc(user::Column::Login)
        .all(&db.conn)
        .await?;
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        let roles = roles_of(db, u.id)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect();
        out.push((u, roles));
    }
    Ok(out)
}

async fn roles_of(db: &Db, user_id: i64) -> Result<Vec<role::Model>> {
    let ids: Vec<i64> = user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user_id))
        .all(&db.conn)
        .await?
        .into_iter()
        .map(|r| r.role_id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(role::Entity::find()
        .filter(role::Column::Id.is_in(ids))
        .all(&db.conn)
        .await?)
}

pub async fn find_user(db: &Db, login: &str) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Login.eq(login))
        .one(&db.conn)
        .await?)
}

/// What an administrator changes about a user; `None` leaves it as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub display_name: Option<String>,
    pub admin: Option<bool>,
    pub active: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub rights: Option<Rights>,
    /// A new password; every session of the user ends.
    pub password: Option<String>,
}

/// Changes a user. Disabling them or setting their password ends their sessions; the last
/// active administrator cannot be disabled or lose the administrator flag.
pub async fn update_user(
    db: &Db,
    login: &str,
    change: UserChange,
    now: DateTime<Utc>,
) -> Result<user::Model> {
    let found = find_user(db, login).await?.ok_or_else(|| {
        bad(
            "login",
            "unknown_user",
            format!("no user has login {login:?}"),
        )
    })?;
    if let Some(name) = &change.display_name
        && name.chars().count() > 200
    {
        return Err(bad(
            "display_name",
            "too_long",
            "must be at most 200 characters",
        ));
    }
    let stays_admin =
        change.admin.unwrap_or(found.is_admin) && change.active.unwrap_or(found.active);
    if found.is_admin && found.active && !stays_admin {
        let admins = user::Entity::find()
            .filter(user::Column::IsAdmin.eq(true))
            .filter(user::Column::Active.eq(true))
            .count(&db.conn)
            .await?;
        if admins <= 1 {
            return Err(bad(
                if change.active == Some(false) {
                    "active"
                } else {
                    "admin"
                },
                "last_administrator",
                "this is the last active administrator; make another user an administrator first",
            ));
        }
    }
    let roles = match &change.roles {
        Some(names) => Some(find_roles(db, names).await?),
        None => None,
    };
    let hash = match change.password {
        Some(password) => {
            check_password(&password, &found.login)?;
            Some(hash_password_async(password).await)
        }
        None => None,
    };
    let ends = if change.active == Some(false) {
        Some(EndReason::AccountDisabled)
    } else if hash.is_some() {
        Some(EndReason::PasswordChanged)
    } else {
        None
    };
    let txn = begin_write(&db.conn).await?;
    let id = found.id;
    let mut active = found.into_active_model();
    if let Some(name) = change.display_name {
        active.display_name = Set(name);
    }
    if let Some(admin) = change.admin {
        active.is_admin = Set(admin);
    }
    if let Some(on) = change.active {
        active.active = Set(on);
    }
    if let Some(rights) = &change.rights {
        active.rights = Set(serde_json::to_string(rights).expect("rights serialise"));
    }
    if let Some(hash) = hash {
        active.password_hash = Set(hash);
    }
    active.updated_at = Set(now);
    let updated = active.update(&txn).await?;
    if let Some(roles) = roles {
        user_role::Entity::delete_many()
            .filter(user_role::Column::UserId.eq(id))
            .exec(&txn)
            .await?;
        for role in roles {
            user_role::ActiveModel {
                user_id: Set(id),
                role_id: Set(role.id),
            }
            .insert(&txn)
            .await?;
        }
    }
    txn.commit().await?;
    if let Some(reason) = ends {
        sessions::end_for_user(db, id, reason, now).await?;
    }
    Ok(updated)
}

/// A user changes their own password, proving they know the current one; their other
/// sessions end, the one `keep` holds stays.
pub async fn change_own_password(
    db: &Db,
    user_id: i64,
    current: &str,
    new: String,
    keep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let found = active_user(db, user_id)
        .await?
        .ok_or(StorageError::BadCredentials)?;
    if !verify_password_async(found.password_hash.clone(), current).await {
        return Err(bad(
            "current_password",
            "wrong_password",
            "is not the account's current password",
        ));
    }
    check_password(&new, &found.login)?;
    if verify_password_async(found.password_hash.clone(), &new).await {
        return Err(bad(
            "password",
            "password_unchanged",
            "is the current password; choose a new one",
        ));
    }
    let hash = hash_password_async(new).await;
    let mut active = found.into_active_model();
    active.password_hash = Set(hash);
    active.updated_at = Set(now);
    active.update(&db.conn).await?;
    sessions::end_for_user_except(db, user_id, keep, EndReason::PasswordChanged, now).await
}

/// The user with the rights of all their roles and their own.
pub async fn principal_for(db: &Db, user: &user::Model) -> Result<Principal> {
    let parse = |json: &str| -> Result<Rights> {
        serde_json::from_str(json).map_err(|e| {
            StorageError::Database(sea_orm::DbErr::Custom(format!(
                "stored rights cannot be read: {e}"
            )))
        })
    };
    let mut rights = parse(&user.rights)?;
    rights.admin |= user.is_admin;
    for role in roles_of(db, user.id).await? {
        rights = rights.merge(&parse(&role.rights)?);
    }
    Ok(Principal {
        user_id: Some(user.id),
        login: user.login.clone(),
        rights,
    })
}

pub(crate) async fn active_user(db: &Db, user_id: i64) -> Result<Option<user::Model>> {
    Ok(user::Entity::find_by_id(user_id)
        .one(&db.conn)
        .await?
        .filter(|u| u.active))
}

/// Creates an API token for a user; the token is returned once and only its hash is kept.
/// With a `scope`, the token holds only what both its user's rights and the scope allow.
pub async fn create_token(
    db: &Db,
    user_id: i64,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    scope: Option<&Rights>,
) -> Result<(api_token::Model, String)> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(bad("name", "invalid_name", "must be 1 to 100 characters"));
    }
    let secret = format!("{TOKEN_PREFIX}{}", random_secret());
    let model = api_token::ActiveModel {
        user_id: Set(user_id),
        name: Set(name.to_string()),
        token_hash: Set(sha256(&secret)),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        last_used_at: Set(None),
        revoked: Set(false),
        scope: Set(scope.map(|s| serde_json::to_string(s).expect("rights serialise"))),
        ..Default::default()
    }
    .insert(&db.conn)
    .await?;
    Ok((model, secret))
}

/// An API token as its owner and administrators see it: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    /// Whether it works now: neither revoked nor expired.
    pub usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Rights>,
}

/// The tokens of one user (`Some(id)`) or of everyone, newest first.
pub async fn tokens(db: &Db, user_id: Option<i64>, now: DateTime<Utc>) -> Result<Vec<TokenInfo>> {
    let mut q = api_token::Entity::find().order_by_desc(api_token::Column::Id);
    if let Some(id) = user_id {
        q = q.filter(api_token::Column::UserId.eq(id));
    }
    let logins: HashMap<i64, String> = user::Entity::find()
        .all(&db.conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.login))
        .collect();
    Ok(q.all(&db.conn)
        .await?
        .into_iter()
        .map(|t| TokenInfo {
            id: t.id,
            login: logins.get(&t.user_id).cloned().unwrap_or_default(),
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            usable: !t.revoked && t.expires_at.is_none_or(|e| e > now),
            revoked: t.revoked,
            scope: t
                .scope
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        })
        .collect())
}

/// Revokes a token, of `owner` only when given (a user revoking their own); revoking twice
/// changes nothing. Returns the token's name.
pub async fn revoke_token(db: &Db, id: i64, owner: Option<i64>) -> Result<String> {
    let token = api_token::Entity::find_by_id(id)
        .one(&db.conn)
        .await?
        .filter(|t| owner.is_none_or(|o| o == t.user_id))
        .ok_or_else(|| StorageError::NoSuch {
            kind: "API token",
            name: id.to_string(),
        })?;
    let name = token.name.clone();
    if !token.revoked {
        let mut active = token.into_active_model();
        active.revoked = Set(true);
        active.update(&db.conn).await?;
    }
    Ok(name)
}

pub async fn token_principal(
    db: &Db,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Option<Principal>> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let Some(token) = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(sha256(secret)))
        .one(&db.conn)
        .await?
    else {
        return Ok(None);
    };
    if token.revoked || token.expires_at.is_some_and(|t| t <= now) {
        return Ok(None);
    }
    let Some(user) = active_user(db, token.user_id).await? else {
        return Ok(None);
    };
    if token
        .last_used_at
        .is_none_or(|t| now - t > Duration::minutes(1))
    {
        let mut active = token.clone().into_active_model();
        active.last_used_at = Set(Some(now));
        active.update(&db.conn).await?;
    }
    let mut principal = principal_for(db, &user).await?;
    if let Some(scope) = &token.scope {
        let scope: Rights = serde_json::from_str(scope).map_err(|e| {
            StorageError::Database(sea_orm::DbErr::Custom(format!(
                "a token's stored scope cannot be read: {e}"
            )))
        })?;
        principal.rights = principal.rights.intersect(&scope);
    }
    Ok(Some(principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_rights_are_checked_on_is_offered_to_administrators() {
        for target in [
            crate::flows::FLOWS,
            crate::segments::SEGMENTS,
            crate::lists::LISTS,
            crate::reports::REPORTS,
            crate::workspace::SQL,
            tabiji_model::content::TEMPLATES,
            tabiji_model::content::SNIPPETS,
            tabiji_model::channel::CHANNELS,
            crate::suppressions::SUPPRESSIONS,
            crate::timeline::MESSAGES,
            crate::timeline::EVENTS,
            crate::timeline::RUNS,
        ] {
            assert!(
                tabiji_model::rights::SYSTEM_TARGETS.contains(&target),
                "{target} is missing from the rights screen's list"
            );
        }
    }

    #[test]
    fn passwords_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "wrong horse battery"));
    }

    #[test]
    fn logins_and_passwords_are_checked() {
        assert!(check_login("sato.hanako@pref").is_ok());
        assert!(check_login("a").is_err());
        assert!(check_login("名前").is_err());
        let code = |password: &str, login: &str| match check_password(password, login) {
            Ok(()) => "ok",
            Err(StorageError::Invalid(items)) => items[0].code,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(code("short", "sato"), "password_too_short");
        assert_eq!(code("long enough pass", "sato"), "ok");
        assert_eq!(code("長い日本語のパスワードです", "sato"), "ok");
        assert_eq!(code("SatoHanako1", "satohanako"), "password_like_login");
        assert_eq!(code("satohanako-spring", "satohanako"), "ok");
        assert_eq!(code("aaaaaaaaaaaa", "sato"), "password_too_simple");
        assert_eq!(code("QwertyUiop", "sato"), "password_too_common");
        assert_eq!(code(&"x".repeat(1025), "sato"), "too_long");
    }
}
