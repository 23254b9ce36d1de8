//! Events: stored once per event key, then matched in batches against the contact's waiting
//! runs (moving them on, or ending them at a goal) and against flows they start.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tabiji_storage::db::begin_write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tabiji_model::flow::{Entry, Flow, ReEntry};
use tabiji_storage::journeys::{self, NewEvent};

use super::{Move, Result, Runtime, machine_run, millis, run_key};
use crate::machine::{Input, Run, apply_with};

/// An event as a partner system or the tracking endpoints report it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    /// The sender's id for the event: a second event with the same key is a duplicate.
    pub event_key: String,
    pub contact_id: i64,
    /// `opened`, `clicked`, `purchased`, or any other name.
    pub name: String,
    /// The delivery the event is about (opens and clicks).
    pub delivery_id: Option<i64>,
    pub properties: Json,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    /// Keys seen before: stored once, never applied twice.
    pub duplicates: Vec<String>,
}

/// A run being moved by this batch's events, in memory until the batch is stored.
struct Tracked {
    stored: Option<(i64, i32)>,
    flow: Arc<Flow>,
    flow_id: i64,
    version: i32,
    contact_id: i64,
    entry_key: String,
    run: Run,
    actions: Vec<crate::machine::Action>,
}

impl Runtime {
    /// Stores events (deduplicated by key) and wakes this process's worker.
    pub async fn ingest(&self, events: Vec<IncomingEvent>) -> Result<IngestReport> {
        let now = self.now();
        let keys: Vec<String> = events.iter().map(|e| e.event_key.clone()).collect();
        let rows = events
            .into_iter()
            .map(|e| NewEvent {
                event_key: e.event_key,
                contact_id: e.contact_id,
                name: e.name,
                delivery_id: e.delivery_id,
                properties: e.properties.to_string(),
                occurred_at: millis(e.occurred_at.unwrap_or(now)),
            })
            .collect();
        let stored = journeys::insert_events(&self.store.db().conn, rows, millis(now)).await?;
        self.wake();
        let mut seen = HashSet::new();
        let duplicates: Vec<String> = keys
            .into_iter()
            .filter(|k| !stored.contains(k) || !seen.insert(k.clone()))
            .collect();
        Ok(IngestReport {
            accepted: stored.len(),
            duplicates,
        })
    }

    /// Applies one batch of stored events. Returns how many events were handled.
    pub async fn event_step(&self) -> Result<usize> {
        let conn = &self.store.db().conn;
        let now = self.now();
        let lease = self.config.lease.as_millis() as i64;
        let events = journeys::claim_events(conn, millis(now), lease, self.config.batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let live = journeys::live_flows(conn).await?;
        let live_ids: Vec<i64> = live.iter().map(|f| f.id).collect();
        let mut contacts: Vec<i64> = events.iter().map(|e| e.contact_id).collect();
        contacts.sort_unstable();
        contacts.dedup();

        // Flows an event starts: active, with an event entry.
        let mut starters: Vec<(i64, i32, Arc<Flow>)> = Vec::new();
        for f in live.iter().filter(|f| f.active) {
            let flow = self.flow(f.id, f.version).await?;
            if matches!(flow.entry, Entry::Event { .. }) {
                starters.push((f.id, f.version, flow));
            }
        }
        // PT-4: privacy-mode runs are filed under the contact's pseudonym; a privacy flow an
        // event starts gives the contact one.
        let create = starters.iter().any(|(_, _, f)| f.settings.privacy);
        let pseudonym = journeys::pseudonyms_for(conn, &contacts, create, millis(now)).await?;
        let subject = |flow: &Flow, contact: i64| {
            if flow.settings.privacy {
                pseudonym.get(&contact).copied()
            } else {
                Some(contact)
            }
        };
        let mut subjects = contacts.clone();
        subjects.extend(pseudonym.values().copied());
        let waiting = journeys::waiting_runs_of(conn, &live_ids, &subjects).await?;
        let delivery_ids: Vec<i64> = events.iter().filter_map(|e| e.delivery_id).collect();
        let delivered = journeys::delivery_nodes(conn, &delivery_ids).await?;
        let mut tracked: Vec<Tracked> = Vec::new();
        let mut by_contact: HashMap<i64, Vec<usize>> = HashMap::new();
        for row in waiting {
            let flow = self.flow(row.flow_id, row.version).await?;
            by_contact
                .entry(row.contact_id)
                .or_default()
                .push(tracked.len());
            tracked.push(Tracked {
                stored: Some((row.id, row.iteration)),
                run: machine_run(&row),
                flow,
                flow_id: row.flow_id,
                version: row.version,
                contact_id: row.contact_id,
                entry_key: row.entry_key,
                actions: Vec::new(),
            });
        }
        // Re-entry rules for event entries: who is, or was, in each starting flow.
        let mut in_flow: HashMap<i64, (HashSet<i64>, HashSet<i64>)> = HashMap::new();
        for (flow_id, _, flow) in &starters {
            let mine: Vec<i64> = contacts.iter().filter_map(|&c| subject(flow, c)).collect();
            let ever = journeys::contacts_with_runs(conn, *flow_id, &mine, false).await?;
            let open = journeys::contacts_with_runs(conn, *flow_id, &mine, true).await?;
            in_flow.insert(*flow_id, (ever, open));
        }
        let mut wanted: Vec<(Arc<Flow>, i64)> = tracked
            .iter()
            .map(|t| (t.flow.clone(), t.contact_id))
            .collect();
        for (_, _, flow) in &starters {
            wanted.extend(
                contacts
                    .iter()
                    .filter_map(|&c| subject(flow, c))
                    .map(|s| (flow.clone(), s)),
            );
        }
        let data = self.contacts_for(&wanted).await?;
        let library = self.conditions(wanted.iter().map(|(f, _)| &**f)).await?;
        let empty = Map::new();

        for event in &events {
            let of_run = event.delivery_id.and_then(|d| delivered.get(&d));
            let mine: Vec<usize> = [
                Some(event.contact_id),
                pseudonym.get(&event.contact_id).copied(),
            ]
            .into_iter()
            .flatten()
            .flat_map(|s| by_contact.get(&s).cloned().unwrap_or_default())
            .collect();
            for i in mine {
                let contact = data.get(&tracked[i].contact_id).unwrap_or(&empty);
                let t = &mut tracked[i];
                let of = of_run
                    .filter(|(run_id, _)| Some(*run_id) == t.stored.map(|s| s.0))
                    .map(|(_, node)| node.as_str());
                let input = Input::Event {
                    name: &event.name,
                    of,
                };
                let (next, actions) = apply_with(
                    &t.flow,
                    &t.run,
                    contact,
                    &input,
                    now,
                    super::decider(&library),
                );
                if next != t.run || !actions.is_empty() {
                    t.run = next;
                    t.actions.extend(actions);
                }
            }
            for (flow_id, version, flow) in &starters {
                let Entry::Event { event: wanted, .. } = &flow.entry else {
                    continue;
                };
                if *wanted != event.name {
                    continue;
                }
                let Some(who) = subject(flow, event.contact_id) else {
                    continue;
                };
                let (ever, open) = in_flow.get_mut(flow_id).expect("filled above");
                let blocked = match flow.settings.re_entry {
                    ReEntry::Never => ever.contains(&who),
                    ReEntry::AfterExit => open.contains(&who),
                    ReEntry::Always => false,
                };
                if blocked {
                    continue;
                }
                let entry_key = format!("event:{}", event.event_key);
                let contact = data.get(&who).unwrap_or(&empty);
                let (run, actions) = super::enter(
                    flow,
                    run_key(*flow_id, who, &entry_key),
                    contact,
                    now,
                    &library,
                );
                ever.insert(who);
                if !matches!(run.position, crate::machine::Position::Finished(_)) {
                    open.insert(who);
                }
                by_contact.entry(who).or_default().push(tracked.len());
                tracked.push(Tracked {
                    stored: None,
                    flow: flow.clone(),
                    flow_id: *flow_id,
                    version: *version,
                    contact_id: who,
                    entry_key,
                    run,
                    actions,
                });
            }
        }
        let moves: Vec<Move> = tracked
            .into_iter()
            .filter(|t| t.stored.is_none() || !t.actions.is_empty())
            .map(|t| Move {
                stored: t.stored,
                flow_id: t.flow_id,
                version: t.version,
                contact_id: t.contact_id,
                entry_key: t.entry_key,
                run: t.run,
                actions: t.actions,
            })
            .collect();
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        let txn = begin_write(conn).await?;
        self.store_moves(&txn, moves, now).await?;
        journeys::mark_events_processed(&txn, &ids, millis(now)).await?;
        txn.commit().await?;
        self.wrote(events.len()).await?;
        Ok(events.len())
    }
}
