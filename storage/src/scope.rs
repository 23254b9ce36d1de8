//! Record-level rights (CF-2): which records of an entity a caller reaches.
//!
//! # Layout
//! - [`Store::scope`]: the caller's record filter for an entity, and for a record that belongs
//!   to another (a purchase to its tourist) the owner's filter too, as one resolved condition.
//!   Filter resolution ([`Store::resolve_with`]) adds it to every search, count, aggregate,
//!   export, report and bulk action; the record paths that read or write by id use the rest.
//! - [`Store::scope_expr`]: the same, compiled for a `WHERE`.
//! - [`Store::reachable`]: which of some ids the caller reaches, for paths that name records.
//! - [`Store::reached_contacts`]: the contacts a caller's flow and send-time statistics count.
//! - [`Store::check_written`]: refuses a write that leaves a record outside the caller's reach.
//! - [`Store::require_reachable`], [`Store::require_every_record`]: for the API's paths that
//!   name contacts, and for operations that reach every record (publishing a flow).
//! - [`check_record_filters`]: refuses record filters that cannot be applied, when rights are
//!   saved.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use tabiji_model::Rights;
use tabiji_model::filter::Cond;
use tabiji_model::flow::CONTACTS;

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::{Store, among_chunk};
use crate::schemas::Schemas;
use crate::search::{Compiler, Named, parse_zone, resolve};

/// How far up a chain of owners a scope follows (a response's inquiry's tourist…).
const MAX_OWNER_DEPTH: usize = 8;

/// The scope of `entity` under `rights`, or why it cannot be applied.
fn scope_in(
    schemas: &Schemas,
    rights: &Rights,
    entity: &str,
    now: DateTime<Utc>,
    depth: usize,
) -> std::result::Result<Option<Cond>, String> {
    let Some(schema) = schemas.find(entity) else {
        return Ok(None);
    };
    let own = match rights.records(entity) {
        None => None,
        Some(filter) => {
            if let Some(what) = filter.unstable_part() {
                return Err(format!("a record filter may not use {what}"));
            }
            let zone = parse_zone(None).map_err(|e| e.to_string())?;
            let resolved = resolve(entity, filter, zone, now, schemas, &Named::default())
                .map_err(|e| e.to_string())?;
            Some(resolved.cond)
        }
    };
    let owner = match &schema.parent {
        Some(parent) if depth < MAX_OWNER_DEPTH => {
            scope_in(schemas, rights, &parent.entity, now, depth + 1)?.map(|cond| Cond::InParent {
                field: parent.field.clone(),
                entity: parent.entity.clone(),
                cond: Box::new(cond),
            })
        }
        _ => None,
    };
    Ok(match (own, owner) {
        (None, None) => None,
        (Some(c), None) | (None, Some(c)) => Some(c),
        (Some(a), Some(b)) => Some(Cond::All(vec![a, b])),
    })
}

/// Refuses record filters that name what may not be in one, or that do not resolve against
/// the schema, naming the entity each is for (`rights.entities.<entity>.records`).
pub fn check_record_filters(schemas: &Schemas, rights: &Rights) -> Result<()> {
    let now = Utc::now();
    let errors: Vec<ItemError> = rights
        .entities
        .iter()
        .filter(|(_, r)| r.records.is_some())
        .filter_map(|(entity, _)| {
            let at = format!("rights.entities.{entity}.records");
            if schemas.find(entity).is_none() {
                return Some(ItemError::field(
                    &at,
                    "unknown_entity",
                    format!("no entity is called {entity:?}"),
                ));
            }
            let only = Rights {
                admin: false,
                entities: [(entity.clone(), rights.entities[entity].clone())].into(),
            };
            scope_in(schemas, &only, entity, now, MAX_OWNER_DEPTH)
                .err()
                .map(|reason| ItemError::field(&at, "invalid_record_filter", reason))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StorageError::Invalid(errors))
    }
}

impl Store {
    /// The condition every record of `entity` the caller reaches meets, relative dates fixed at
    /// `now`; `None` when they reach every record.
    pub(crate) fn scope(
        &self,
        who: &Principal,
        entity: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Cond>> {
        scope_in(&self.schemas(), &who.rights, entity, now, 0).map_err(|reason| {
            StorageError::RecordRightsUnusable {
                entity: entity.into(),
                reason,
            }
        })
    }

    /// Whether the caller's record rights narrow `entity` (or what it belongs to).
    pub fn scope_narrows(&self, who: &Principal, entity: &str) -> Result<bool> {
        Ok(self.scope(who, entity, Utc::now())?.is_some())
    }

    /// Limits the history rows a condition counts (purchases ≥ ¥10,000…) to those the caller
    /// reaches, when their record rights narrow the history store itself.
    pub(crate) fn narrow_history(
        &self,
        who: &Principal,
        cond: &mut Cond,
        now: DateTime<Utc>,
    ) -> Result<()> {
        match cond {
            Cond::All(items) | Cond::Any(items) => items
                .iter_mut()
                .try_for_each(|c| self.narrow_history(who, c, now)),
            Cond::Not(inner) => self.narrow_history(who, inner, now),
            Cond::History(h) => {
                if who.rights.records(&h.store).is_some()
                    && let Some(scope) = self.scope(who, &h.store, now)?
                {
                    let rows = std::mem::replace(&mut *h.rows, Cond::All(vec![]));
                    *h.rows = Cond::All(vec![scope, rows]);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// [`Store::scope`] compiled for a `WHERE` on `entity`'s table.
    pub(crate) async fn scope_expr(
        &self,
        who: &Principal,
        entity: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Expr>> {
        let Some(cond) = self.scope(who, entity, now)? else {
            return Ok(None);
        };
        let schema = self.entity_schema(entity).await?;
        Ok(Some(
            Compiler::new(self.db().backend(), &schema).cond(&cond),
        ))
    }

    /// The contacts whose runs, deliveries and opens a caller's statistics count: every one,
    /// or the tourists their record rights reach.
    pub async fn reached_contacts(
        &self,
        who: &Principal,
        now: DateTime<Utc>,
    ) -> Result<crate::journeys::Reached> {
        let Some(scope) = self.scope_expr(who, CONTACTS, now).await? else {
            return Ok(crate::journeys::Reached::everyone());
        };
        let mut q = Query::select();
        q.column(Alias::new("id"))
            .from(Alias::new(CONTACTS))
            .and_where(scope);
        Ok(crate::journeys::Reached::members(q))
    }

    /// The ids among `ids` that exist and that the caller reaches.
    pub async fn reachable<C: ConnectionTrait>(
        &self,
        conn: &C,
        who: &Principal,
        entity: &str,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<HashSet<i64>> {
        let scope = self.scope_expr(who, entity, now).await?;
        let mut found = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(among_chunk(self.db().backend()).min(1000)) {
            let mut q = Query::select();
            q.column(Alias::new("id"))
                .from(Alias::new(entity))
                .and_where(Expr::col(Alias::new("id")).is_in(chunk.iter().copied()));
            if let Some(scope) = &scope {
                q.and_where(scope.clone());
            }
            for row in conn.query_all(&q).await? {
                found.insert(row.try_get::<i64>("", "id")?);
            }
        }
        Ok(found)
    }

    /// Refuses, as not found, any of `ids` outside the caller's record rights. Without record
    /// rights on `entity` nothing is refused here: whether the ids exist is the path's concern.
    pub async fn require_reachable(
        &self,
        who: &Principal,
        entity: &str,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.scope(who, entity, now)?.is_none() {
            return Ok(());
        }
        let reached = self
            .reachable(&self.db().conn, who, entity, ids, now)
            .await?;
        match ids.iter().find(|id| !reached.contains(id)) {
            None => Ok(()),
            Some(id) => Err(StorageError::NotFound {
                entity: entity.into(),
                id: *id,
            }),
        }
    }

    /// Refuses (and logs) `what`, an operation that reaches every record of `entity` (running
    /// a flow, listing every delivery), to a caller whose record rights narrow it.
    pub async fn require_every_record(
        &self,
        who: &Principal,
        entity: &str,
        what: &'static str,
    ) -> Result<()> {
        if self.scope(who, entity, Utc::now())?.is_none() {
            return Ok(());
        }
        self.log(
            who,
            what,
            entity,
            None,
            "denied",
            Some("record rights narrow it".into()),
        )
        .await?;
        Err(StorageError::NeedsEveryRecord {
            entity: entity.into(),
            what,
        })
    }

    /// Refuses a write that left one of `written` — (item index, id) pairs — outside the
    /// caller's reach; the caller rolls the transaction back. Not logged here: on SQLite the
    /// access log waits for the open write transaction, so the caller logs after it ends.
    pub(crate) async fn check_written<C: ConnectionTrait>(
        &self,
        conn: &C,
        who: &Principal,
        entity: &str,
        written: &[(Option<usize>, i64)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.scope(who, entity, now)?.is_none() || written.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = written.iter().map(|(_, id)| *id).collect();
        let reached = self.reachable(conn, who, entity, &ids, now).await?;
        let Some((index, _)) = written.iter().find(|(_, id)| !reached.contains(id)) else {
            return Ok(());
        };
        Err(StorageError::OutsideRecords {
            entity: entity.into(),
            index: *index,
        })
    }
}
