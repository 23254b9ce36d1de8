//! Contacts entering flows: a segment snapshot in batches behind a checkpointed cursor, or a
//! list of contacts named by an API call.

use std::collections::{HashMap, HashSet};
use tabiji_storage::db::begin_write;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Map;
use tabiji_model::filter::Filter;
use tabiji_model::flow::{ALL_CONTACTS, Entry, Flow, ReEntry};
use tabiji_model::zone::Zone;
use tabiji_storage::{StorageError, journeys};

use super::{CONTACTS, Move, Result, Runtime, RuntimeError, millis, run_key};

/// The entry key of a flow's segment snapshot: taken once, when the flow first runs.
const SNAPSHOT: &str = "snapshot";

/// What an API entry did with each contact named.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnterReport {
    pub entered: Vec<i64>,
    /// Already in the flow (or once in it, when the flow allows no re-entry).
    pub skipped: Vec<i64>,
    /// No such contact.
    pub unknown: Vec<i64>,
}

/// Whether the flow takes entries on `now`'s date in its zone (PT-3 start and end dates).
/// `None` when the period has ended for good.
fn entry_open(flow: &Flow, now: DateTime<Utc>) -> Option<bool> {
    let today = Zone::parse(&flow.settings.zone)?.local(now).date();
    let day = |d: &Option<String>| {
        d.as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    if day(&flow.settings.ends_on).is_some_and(|end| today > end) {
        return None;
    }
    Some(day(&flow.settings.starts_on).is_none_or(|start| today >= start))
}

impl Runtime {
    /// The next contacts (by id, above `after`) of the segment the flow's entry draws from,
    /// matched as of `now` in the flow's zone.
    async fn segment_ids(
        &self,
        flow: &Flow,
        after: i64,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let segment = flow.entry.segment().unwrap_or(ALL_CONTACTS);
        if segment == ALL_CONTACTS {
            return Ok(journeys::ids_after(&self.store.db().conn, CONTACTS, after, limit).await?);
        }
        let zone =
            Zone::parse(&flow.settings.zone).unwrap_or(Zone::Fixed(tabiji_model::field::tokyo()));
        let resolved = self
            .store
            .resolve_filter(None, CONTACTS, &Filter::Segment(segment.into()), zone, now)
            .await?;
        Ok(self
            .store
            .ids_matching(CONTACTS, &resolved.cond, after, limit as u64)
            .await?)
    }

    /// Moves every open segment snapshot on by one batch. Returns how many contacts entered.
    pub async fn enter_step(&self) -> Result<usize> {
        let conn = &self.store.db().conn;
        let now = self.now();
        let live = journeys::live_flows(conn).await?;
        let mut active = Vec::new();
        for f in live.iter().filter(|f| f.active) {
            active.push(f.id);
            let flow = self.flow(f.id, f.version).await?;
            let begun = self.started.lock().expect("not poisoned").contains(&f.id);
            if !begun && matches!(flow.entry, Entry::SegmentSnapshot { .. }) {
                journeys::start_entry(conn, f.id, f.version, SNAPSHOT, millis(now)).await?;
                self.started.lock().expect("not poisoned").insert(f.id);
            }
        }
        let mut entered = 0;
        for (flow_id, version, entry_key, cursor) in journeys::open_entries(conn, &active).await? {
            let flow = self.flow(flow_id, version).await?;
            let ids = match entry_open(&flow, now) {
                Some(true) => match self
                    .segment_ids(&flow, cursor, self.config.batch, now)
                    .await
                {
                    Ok(ids) => ids,
                    // A segment that no longer resolves (a field it tests was removed) stops
                    // this flow's entry, not every flow's.
                    Err(RuntimeError::Storage(
                        e @ (StorageError::Invalid(_) | StorageError::NoSuch { .. }),
                    )) => {
                        tracing::warn!(flow = flow_id, error = %e, "the flow's segment cannot be evaluated");
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                Some(false) => continue,
                None => Vec::new(),
            };
            let to = ids.last().copied().unwrap_or(cursor);
            let done = ids.len() < self.config.batch;
            let txn = begin_write(conn).await?;
            // First statement of the transaction: it takes the write lock, and only one
            // worker moves the cursor from here.
            let n = ids.len() as i64;
            if !journeys::advance_entry(&txn, flow_id, &entry_key, cursor, to, done, n, millis(now))
                .await?
            {
                txn.rollback().await?;
                continue;
            }
            let report = self
                .enter_in(&txn, flow_id, version, &flow, ids, &entry_key, now)
                .await?;
            txn.commit().await?;
            self.wrote(report.entered.len()).await?;
            entered += report.entered.len();
        }
        Ok(entered)
    }

    /// Evaluates the segment of each active `segment_enter` flow (at most once per
    /// `segment_every`) and enters the contacts who started matching since the last time;
    /// those who stopped matching are forgotten, so they enter again when they match again
    /// (if the flow's re-entry rule lets them). Returns how many entered.
    pub async fn segment_enter_step(&self) -> Result<usize> {
        let conn = &self.store.db().conn;
        let now = self.now();
        let mut entered = 0;
        for f in journeys::live_flows(conn)
            .await?
            .into_iter()
            .filter(|f| f.active)
        {
            let flow = self.flow(f.id, f.version).await?;
            if !matches!(flow.entry, Entry::SegmentEnter { .. })
                || entry_open(&flow, now) != Some(true)
            {
                continue;
            }
            {
                let mut swept = self.swept.lock().expect("not poisoned");
                let due = swept.get(&f.id).is_none_or(|last| {
                    now.signed_duration_since(*last)
                        .to_std()
                        .unwrap_or_default()
                        >= self.config.segment_every
                });
                if !due {
                    continue;
                }
                swept.insert(f.id, now);
            }
            let mut matching = Vec::new();
            loop {
                let after = matching.last().copied().unwrap_or(0);
                let ids = match self.segment_ids(&flow, after, 50_000, now).await {
                    Ok(ids) => ids,
                    Err(RuntimeError::Storage(
                        e @ (StorageError::Invalid(_) | StorageError::NoSuch { .. }),
                    )) => {
                        tracing::warn!(flow = f.id, error = %e, "the flow's segment cannot be evaluated");
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let done = ids.len() < 50_000;
                matching.extend(ids);
                if done {
                    break;
                }
            }
            let members = journeys::flow_members(conn, f.id).await?;
            let (joined, left) = sorted_difference(&matching, &members);
            if !left.is_empty() {
                journeys::remove_flow_members(conn, f.id, &left).await?;
            }
            let entry_key = format!("joined:{}", millis(now));
            for chunk in joined.chunks(self.config.batch) {
                let txn = begin_write(conn).await?;
                // Only the contacts this worker recorded first enter: another worker sweeping
                // at the same moment enters the rest.
                let fresh =
                    journeys::add_flow_members(&txn, f.id, chunk.to_vec(), millis(now)).await?;
                let report = self
                    .enter_in(&txn, f.id, f.version, &flow, fresh, &entry_key, now)
                    .await?;
                txn.commit().await?;
                self.wrote(report.entered.len()).await?;
                entered += report.entered.len();
            }
        }
        Ok(entered)
    }

    /// Puts the named contacts into an active flow whose entry is `api`, under `entry_key`
    /// (a second call with the same key enters nobody twice).
    pub async fn enter_contacts(
        &self,
        flow_id: i64,
        contacts: &[i64],
        entry_key: &str,
    ) -> Result<EnterReport> {
        let conn = &self.store.db().conn;
        let live = journeys::live_flows(conn).await?;
        let Some(f) = live.iter().find(|f| f.id == flow_id) else {
            return Err(RuntimeError::NotActive(flow_id));
        };
        if !f.active {
            return Err(RuntimeError::NotActive(flow_id));
        }
        let flow = self.flow(f.id, f.version).await?;
        if !matches!(flow.entry, Entry::Api { .. }) {
            let entry = serde_json::to_value(&flow.entry)
                .ok()
                .and_then(|e| e.get("type").and_then(|t| t.as_str()).map(String::from))
                .unwrap_or_default();
            return Err(RuntimeError::NotApiEntry {
                flow: flow_id,
                entry,
            });
        }
        let now = self.now();
        if entry_open(&flow, now) != Some(true) {
            return Ok(EnterReport {
                skipped: contacts.to_vec(),
                ..EnterReport::default()
            });
        }
        let known = journeys::existing(conn, CONTACTS, contacts).await?;
        let mut unknown = Vec::new();
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        for &c in contacts {
            if !known.contains(&c) {
                unknown.push(c);
            } else if seen.insert(c) {
                ids.push(c);
            }
        }
        let txn = begin_write(conn).await?;
        let mut report = self
            .enter_in(
                &txn,
                f.id,
                f.version,
                &flow,
                ids,
                &format!("api:{entry_key}"),
                now,
            )
            .await?;
        txn.commit().await?;
        report.unknown = unknown;
        self.wake();
        Ok(report)
    }

    /// Enters `contacts` under one entry key, honouring the flow's re-entry rule, in `txn`.
    #[allow(clippy::too_many_arguments)]
    async fn enter_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        flow_id: i64,
        version: i32,
        flow: &std::sync::Arc<Flow>,
        contacts: Vec<i64>,
        entry_key: &str,
        now: DateTime<Utc>,
    ) -> Result<EnterReport> {
        // PT-4: a privacy-mode flow holds pseudonyms ("subjects") in place of contact ids.
        let (subjects, contact_of): (Vec<i64>, HashMap<i64, i64>) = if flow.settings.privacy {
            let pseudonyms = journeys::pseudonyms_for(txn, &contacts, true, millis(now)).await?;
            contacts
                .iter()
                .filter_map(|c| pseudonyms.get(c).map(|p| (*p, (*p, *c))))
                .unzip()
        } else {
            (contacts.clone(), contacts.iter().map(|&c| (c, c)).collect())
        };
        let contacts = subjects;
        let blocked = match flow.settings.re_entry {
            ReEntry::Never => journeys::contacts_with_runs(txn, flow_id, &contacts, false).await?,
            ReEntry::AfterExit => {
                journeys::contacts_with_runs(txn, flow_id, &contacts, true).await?
            }
            ReEntry::Always => HashSet::new(),
        };
        let (ids, skipped): (Vec<i64>, Vec<i64>) =
            contacts.into_iter().partition(|c| !blocked.contains(c));
        let wanted: Vec<_> = ids.iter().map(|&c| (flow.clone(), c)).collect();
        let data = self.contacts_for(&wanted).await?;
        let library = self.conditions(std::iter::once(&**flow)).await?;
        let empty = Map::new();
        let moves: Vec<Move> = ids
            .iter()
            .map(|&contact_id| {
                let contact = data.get(&contact_id).unwrap_or(&empty);
                let (run, actions) = super::enter(
                    flow,
                    run_key(flow_id, contact_id, entry_key),
                    contact,
                    now,
                    &library,
                );
                Move {
                    stored: None,
                    flow_id,
                    version,
                    contact_id,
                    entry_key: entry_key.to_string(),
                    run,
                    actions,
                }
            })
            .collect();
        let entered = self.store_moves(txn, moves, now).await?;
        let stored: HashSet<i64> = entered.iter().copied().collect();
        let mut skipped = skipped;
        skipped.extend(ids.into_iter().filter(|c| !stored.contains(c)));
        let real = |subjects: Vec<i64>| -> Vec<i64> {
            subjects
                .into_iter()
                .filter_map(|s| contact_of.get(&s).copied())
                .collect()
        };
        Ok(EnterReport {
            entered: real(entered),
            skipped: real(skipped),
            unknown: Vec::new(),
        })
    }
}

impl Runtime {
    /// Predicts how the flow's segment would pass through `flow` now (see
    /// [`crate::simulate`]); reads contacts in batches, stores and sends nothing.
    pub async fn simulate(
        &self,
        flow: &Flow,
        assume: crate::simulate::Assume,
    ) -> Result<crate::simulate::Prediction> {
        let now = self.now();
        let mut fields = super::branch_fields(flow);
        if fields.iter().any(|f| f == super::EVERY_FIELD) {
            fields = self.contact_keys().await?;
        }
        let library = self.conditions(std::iter::once(flow)).await?;
        let mut prediction = crate::simulate::Prediction::default();
        let mut after = 0;
        let empty = Map::new();
        loop {
            let ids = self.segment_ids(flow, after, 5_000, now).await?;
            let Some(&last) = ids.last() else {
                return Ok(prediction);
            };
            let data = if fields.is_empty() {
                Default::default()
            } else {
                self.store.contact_fields(CONTACTS, &ids, &fields).await?
            };
            for id in ids {
                let contact = data.get(&id).unwrap_or(&empty);
                prediction.add(
                    flow,
                    &run_key(0, id, "simulation"),
                    contact,
                    assume,
                    now,
                    super::decider(&library),
                );
            }
            after = last;
        }
    }
}

/// What is in `now` and not in `before`, and what is in `before` and not in `now` (both sorted).
fn sorted_difference(now: &[i64], before: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let (mut joined, mut left) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < now.len() || j < before.len() {
        match (now.get(i), before.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                joined.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                joined.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                left.push(*b);
                j += 1;
            }
            (None, None) => unreachable!("the loop stops first"),
        }
    }
    (joined, left)
}

#[cfg(test)]
mod difference_tests {
    use super::sorted_difference;

    #[test]
    fn joined_and_left_are_the_two_sides_of_the_difference() {
        assert_eq!(
            sorted_difference(&[1, 3, 4, 9], &[2, 3, 9, 10]),
            (vec![1, 4], vec![2, 10])
        );
        assert_eq!(sorted_difference(&[], &[5]), (vec![], vec![5]));
        assert_eq!(sorted_difference(&[5], &[]), (vec![5], vec![]));
    }
}
