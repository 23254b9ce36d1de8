//! The runtime: carries out the machine's decisions against the database and the connectors,
//! a batch at a time.
//!
//! Every step follows one shape: claim due work (a lease, so other workers skip it), decide
//! with [`crate::machine::apply`], then store the runs' new positions, their step log, their
//! outbox deliveries and their contact updates in one transaction. A run moves only by a
//! compare-and-set on its iteration, so a timer and an event racing for one wait, or two
//! workers holding the same expired lease, move it once. A crash before the commit leaves the
//! lease to run out and the work to be claimed again; a crash after it loses nothing.

mod calculated;
mod deliver;
mod enter;
mod events;
mod exports;
mod housekeeping;
mod imports;
mod schedule;
mod timers;
mod tracking;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde_json::{Map, Value as Json};
use tabiji_connectors::Registry;
use tabiji_model::clock::Clock;
use tabiji_model::flow::{Channel, Flow, Step};
use tabiji_storage::journeys::{self, NewDelivery, NewRun, NewStep, RunChange, RunRow, RunState};
use tabiji_storage::{Principal, StorageError, Store};
use tokio::sync::Notify;

use crate::machine::{Action, Conditions, Finish, NoConditions, Position, Run};
use crate::time::quiet_until;

pub use enter::EnterReport;
pub use events::{IncomingEvent, IngestReport};
pub use tracking::LinkUse;
pub use worker::{WorkerHandle, spawn_worker};

pub use tabiji_model::flow::CONTACTS;

#[derive(Debug, Clone)]
pub struct Config {
    /// Runs, entries or events handled per transaction.
    pub batch: usize,
    /// How long a claim holds work before another worker may take it.
    pub lease: Duration,
    /// Deliveries claimed per round; at most this many are in flight at once.
    pub delivery_batch: usize,
    /// Attempts before a transiently failing delivery is given up as dead.
    pub max_attempts: i32,
    /// The first retry's delay; each further retry doubles it, up to an hour.
    pub retry_base: Duration,
    /// How long an idle worker waits before looking for work again (events posted to this
    /// process wake it at once).
    pub idle_poll: Duration,
    /// How often the segment of each `segment_enter` flow is evaluated for contacts who have
    /// started matching.
    pub segment_every: Duration,
    /// How often calculated attributes are brought up to date for the tourists whose history
    /// changed (and, once a day, for everyone).
    pub calculated_every: Duration,
    /// The folders and SFTP keys import flows and scheduled exports may use.
    pub transfers: crate::transfer::Transfers,
    /// How far a personalisation snippet may go for one message.
    pub script_limits: crate::personalise::Limits,
    /// Where people reach this installation (`https://crm.kanko.example.jp`): tracking and
    /// unsubscribe links point there. Without it, messages carry none.
    pub public_url: Option<String>,
    /// Seals the credentials of the channels administrators configure; without it they
    /// cannot be saved.
    pub vault: Option<Arc<crate::channels::Vault>>,
    /// Where configured channels may send: public addresses only, unless the operator allows
    /// this machine and private networks too.
    pub channel_reach: tabiji_connectors::http::Reach,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch: 2_000,
            lease: Duration::from_secs(60),
            delivery_batch: 500,
            max_attempts: 5,
            retry_base: Duration::from_secs(30),
            idle_poll: Duration::from_millis(250),
            segment_every: Duration::from_secs(60),
            calculated_every: Duration::from_secs(30),
            transfers: Default::default(),
            script_limits: crate::personalise::Limits::default(),
            public_url: None,
            vault: None,
            channel_reach: tabiji_connectors::http::Reach::Public,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("flow {0} does not exist or has no published version")]
    NotPublished(i64),
    #[error("flow {flow} version {version} cannot be read: {reason}")]
    BadVersion {
        flow: i64,
        version: i32,
        reason: String,
    },
    #[error("flow {0} is not active: activate or resume it first")]
    NotActive(i64),
    #[error("flow {flow} does not take contacts through the API (its entry is {entry})")]
    NotApiEntry { flow: i64, entry: String },
    /// Work handed to a blocking thread did not come back (it panicked).
    #[error("{0}")]
    Task(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

pub struct Runtime {
    store: Store,
    clock: Arc<dyn Clock>,
    connectors: Registry,
    config: Config,
    /// Published versions never change, so each is parsed once per process.
    flows: Mutex<HashMap<(i64, i32), Arc<Flow>>>,
    /// Flows whose bulk entry this process has already recorded as begun.
    started: Mutex<HashSet<i64>>,
    /// When this process last evaluated each `segment_enter` flow's segment.
    swept: Mutex<HashMap<i64, DateTime<Utc>>>,
    /// When this process last brought calculated attributes up to date.
    calculated_at: Mutex<Option<DateTime<Utc>>>,
    /// When this process last looked for scheduled imports and exports that are due.
    transfers_at: Mutex<Option<DateTime<Utc>>>,
    /// When this process last purged the access log and ended sessions.
    housekept_at: Mutex<Option<DateTime<Utc>>>,
    /// Woken when work arrives through this process (events, API entries).
    pub(crate) wake: Notify,
    pub counters: Counters,
    /// Templates, parts and snippets, compiled.
    content: crate::personalise::Content,
    /// The connectors of the channels administrators configured (SMS, LINE, webhook).
    configured: crate::channels::Configured,
    /// Everyone's busiest opening hour per zone, and when it was counted (MA-16): it counts
    /// every open of 90 days, so it is counted again hourly rather than per batch.
    population_hours: Mutex<HashMap<String, CountedHour>>,
    /// Signs tracking links once its key is read (from the database, shared by all processes).
    tracker: tokio::sync::OnceCell<crate::personalise::Tracker>,
    /// Rows this process wrote to the engine tables since it last refreshed PostgreSQL's
    /// statistics of them.
    written_since_analyze: AtomicU64,
}

/// PostgreSQL plans the claim queries from table statistics; tables that grew by this many rows
/// since their last analysis are analysed again rather than waiting for autovacuum, which
/// otherwise plans a million-row queue from an empty table's numbers.
const ANALYZE_EVERY: u64 = 200_000;

/// What this process's engine has done since it started, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Runs stored after a move (entered, moved by a timer or an event).
    pub moves: AtomicU64,
    /// Step-log rows written.
    pub steps: AtomicU64,
    /// Deliveries handed back by connectors or settled by rule, by the status they went to.
    pub deliveries: Mutex<HashMap<&'static str, u64>>,
}

/// One run's move, decided and waiting to be stored.
struct Move {
    /// The stored run and the iteration it was read at; `None` for a run entering now.
    stored: Option<(i64, i32)>,
    flow_id: i64,
    version: i32,
    contact_id: i64,
    entry_key: String,
    run: Run,
    actions: Vec<Action>,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn run_key(flow_id: i64, contact_id: i64, entry_key: &str) -> String {
    format!("{flow_id}:{contact_id}:{entry_key}")
}

/// The machine's view of a stored waiting run.
fn machine_run(row: &RunRow) -> Run {
    Run {
        key: run_key(row.flow_id, row.contact_id, &row.entry_key),
        position: match (&row.node, row.wake_at) {
            (Some(node), Some(at)) if row.state == "waiting" => Position::Waiting {
                node: node.clone(),
                until: from_millis(at),
            },
            _ => Position::Finished(Finish::Broken("stored run is not waiting".into())),
        },
        iteration: row.iteration.max(0) as u32,
    }
}

fn stored_state(run: &Run, actions: &[Action]) -> RunState {
    let last_node = actions.iter().rev().find_map(|a| match a {
        Action::Log { node, .. } => Some(node.clone()),
        _ => None,
    });
    let iteration = run.iteration as i32;
    match &run.position {
        Position::Waiting { node, until } => RunState {
            state: "waiting",
            node: Some(node.clone()),
            wake_at: Some(millis(*until)),
            iteration,
            outcome: None,
        },
        Position::Finished(finish) => RunState {
            state: "finished",
            node: last_node,
            wake_at: None,
            iteration,
            outcome: Some(match finish {
                Finish::Exit => "exit".into(),
                Finish::Goal(name) => format!("goal:{name}"),
                Finish::Holdout => "holdout".into(),
                Finish::Broken(why) => format!("broken: {why}"),
            }),
        },
        Position::NotStarted => RunState {
            state: "finished",
            node: last_node,
            wake_at: None,
            iteration,
            outcome: Some("broken: the run did not start".into()),
        },
    }
}

/// How far back opens count for the best time to send (MA-16).
const BEST_TIME_DAYS: i64 = 90;

/// An hour counted at a moment (`None`: nobody opened anything).
type CountedHour = (DateTime<Utc>, Option<u32>);

/// What decides `condition` nodes: the library when one was read, otherwise nothing can.
fn decider(library: &Option<Arc<crate::personalise::Library>>) -> &dyn Conditions {
    match library {
        Some(library) => &**library,
        None => &NoConditions,
    }
}

/// A new run of `flow` for one contact under `key`, moved as far as entering takes it.
fn enter(
    flow: &Flow,
    key: String,
    contact: &Map<String, Json>,
    now: DateTime<Utc>,
    library: &Option<Arc<crate::personalise::Library>>,
) -> (Run, Vec<Action>) {
    crate::machine::apply_with(
        flow,
        &Run::new(key),
        contact,
        &crate::machine::Input::Enter,
        now,
        decider(library),
    )
}

/// The hour with the most opens (the earliest of equals), if any.
fn busiest_hour(counts: impl Iterator<Item = (u32, u64)>) -> Option<u32> {
    counts
        .filter(|&(_, n)| n > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(hour, _)| hour)
}

/// In [`branch_fields`]: the flow needs every field of the contact (a rhai condition).
pub(super) const EVERY_FIELD: &str = "*";

/// The contact fields a flow's branches read.
pub(super) fn branch_fields(flow: &Flow) -> Vec<String> {
    let mut fields: Vec<String> = flow
        .nodes
        .iter()
        .filter_map(|n| match &n.step {
            Step::Branch { field, .. } => Some(field.clone()),
            // A snippet may read any field.
            Step::Condition { .. } => Some(EVERY_FIELD.to_string()),
            _ => None,
        })
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

impl Runtime {
    pub fn new(store: Store, clock: Arc<dyn Clock>, connectors: Registry, config: Config) -> Self {
        let sandbox = crate::personalise::Sandbox::new(config.script_limits.clone());
        Runtime {
            content: crate::personalise::Content::new(sandbox),
            configured: Default::default(),
            population_hours: Mutex::new(HashMap::new()),
            tracker: tokio::sync::OnceCell::new(),
            store,
            clock,
            connectors,
            config,
            flows: Mutex::new(HashMap::new()),
            started: Mutex::new(HashSet::new()),
            swept: Mutex::new(HashMap::new()),
            calculated_at: Mutex::new(None),
            transfers_at: Mutex::new(None),
            housekept_at: Mutex::new(None),
            wake: Notify::new(),
            counters: Counters::default(),
            written_since_analyze: AtomicU64::new(0),
        }
    }

    /// The compiled templates, parts and snippets this process renders with.
    pub fn content(&self) -> &crate::personalise::Content {
        &self.content
    }

    /// The link signer, when the installation has a public address.
    pub async fn tracker(&self) -> Result<Option<&crate::personalise::Tracker>> {
        let Some(url) = &self.config.public_url else {
            return Ok(None);
        };
        let tracker = self
            .tracker
            .get_or_try_init(|| async {
                let key = tabiji_storage::secrets::get_or_make(
                    &self.store,
                    "tracking_links",
                    || {
                        use rand::RngCore;
                        let mut key = [0u8; 32];
                        rand::rng().fill_bytes(&mut key);
                        hex::encode(key)
                    },
                    self.now(),
                )
                .await?;
                let key = hex::decode(key).map_err(|e| {
                    RuntimeError::Storage(tabiji_storage::StorageError::Database(
                        sea_orm::DbErr::Custom(format!("the tracking key is not hex: {e}")),
                    ))
                })?;
                Ok::<_, RuntimeError>(crate::personalise::Tracker::new(url, key))
            })
            .await?;
        Ok(Some(tracker))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The master key channel credentials are sealed with, when the operator gave one.
    pub fn vault(&self) -> Option<&crate::channels::Vault> {
        self.config.vault.as_deref()
    }

    /// Whether sends on `channel` render a template here (a provider's channel), so a flow
    /// naming a missing template would fail at every send.
    pub async fn renders(&self, channel: Channel) -> Result<bool> {
        Ok(match self.connector(&self.configured().await?, channel) {
            Some(Ok(connector)) => connector.needs_content(),
            Some(Err(_)) => true,
            None => false,
        })
    }

    /// The snippets `condition` nodes run, read only when one of `flows` has such a node:
    /// checking the content is a query, kept off batches that do not need it.
    async fn conditions<'a>(
        &self,
        mut flows: impl Iterator<Item = &'a Flow>,
    ) -> Result<Option<Arc<crate::personalise::Library>>> {
        let needed = flows.any(|f| {
            f.nodes
                .iter()
                .any(|n| matches!(n.step, Step::Condition { .. }))
        });
        Ok(if needed {
            Some(self.content.library(&self.store).await?)
        } else {
            None
        })
    }

    /// Where configured channels may send.
    pub fn channel_reach(&self) -> tabiji_connectors::http::Reach {
        self.config.channel_reach
    }

    /// The connectors of the channels administrators configured, as of now (one query to
    /// see whether they changed).
    async fn configured(&self) -> Result<crate::channels::Connectors> {
        self.configured
            .connectors(&self.store, self.vault(), self.config.channel_reach)
            .await
            .map_err(|e| match e {
                crate::channels::ChannelError::Storage(e) => RuntimeError::Storage(e),
                other => RuntimeError::Task(other.to_string()),
            })
    }

    /// The connector for `channel`: a channel an administrator configured wins over one the
    /// process was started with. `Some(Err)` when it is configured but cannot send now.
    fn connector(
        &self,
        configured: &crate::channels::Connectors,
        channel: Channel,
    ) -> Option<crate::channels::Built> {
        match configured.get(&channel) {
            Some(built) => Some(built.clone()),
            None => self.connectors.get(channel).cloned().map(Ok),
        }
    }

    /// Wakes this process's idle worker loops: work has just been stored.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The folders and SFTP keys import flows and scheduled exports may use, as the operator
    /// set them.
    pub fn transfers(&self) -> &crate::transfer::Transfers {
        &self.config.transfers
    }

    /// Counts rows written and, on PostgreSQL, refreshes the engine tables' statistics when
    /// they have grown a lot (see [`ANALYZE_EVERY`]).
    async fn wrote(&self, rows: usize) -> Result<()> {
        let total = self
            .written_since_analyze
            .fetch_add(rows as u64, Ordering::Relaxed)
            + rows as u64;
        let conn = &self.store.db().conn;
        if total >= ANALYZE_EVERY && conn.get_database_backend() == sea_orm::DbBackend::Postgres {
            self.written_since_analyze.store(0, Ordering::Relaxed);
            conn.execute_unprepared("ANALYZE sys_runs, sys_deliveries, sys_run_steps, sys_events")
                .await?;
        }
        Ok(())
    }

    /// A published version, parsed once.
    async fn flow(&self, flow_id: i64, version: i32) -> Result<Arc<Flow>> {
        if let Some(flow) = self
            .flows
            .lock()
            .expect("not poisoned")
            .get(&(flow_id, version))
        {
            return Ok(flow.clone());
        }
        let text = journeys::flow_version(&self.store.db().conn, flow_id, version)
            .await?
            .ok_or(RuntimeError::NotPublished(flow_id))?;
        let flow: Flow = serde_json::from_str(&text).map_err(|e| RuntimeError::BadVersion {
            flow: flow_id,
            version,
            reason: e.to_string(),
        })?;
        let flow = Arc::new(flow);
        self.flows
            .lock()
            .expect("not poisoned")
            .insert((flow_id, version), flow.clone());
        Ok(flow)
    }

    /// The fields each contact's branches need, for the flows of `runs`: `(flow, contact)`.
    async fn contacts_for(
        &self,
        wanted: &[(Arc<Flow>, i64)],
    ) -> Result<HashMap<i64, Map<String, Json>>> {
        let mut fields: Vec<String> = Vec::new();
        let mut subjects = Vec::new();
        for (flow, subject) in wanted {
            let needed = branch_fields(flow);
            if !needed.is_empty() {
                subjects.push(*subject);
                fields.extend(needed);
            }
        }
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        fields.sort();
        fields.dedup();
        if fields.iter().any(|f| f == EVERY_FIELD) {
            fields = self.contact_keys().await?;
        }
        self.fields_of(&subjects, &fields).await
    }

    /// The real contact behind each subject: a contact id is itself; a pseudonym (negative,
    /// PT-4) is looked up. Subjects whose contact is gone are missing.
    async fn real_contacts(&self, subjects: &[i64]) -> Result<HashMap<i64, i64>> {
        let pseudonyms: Vec<i64> = subjects.iter().copied().filter(|s| *s < 0).collect();
        let mut real = if pseudonyms.is_empty() {
            HashMap::new()
        } else {
            journeys::contacts_of(&self.store.db().conn, &pseudonyms).await?
        };
        real.extend(subjects.iter().filter(|s| **s > 0).map(|&s| (s, s)));
        Ok(real)
    }

    /// `fields` of each subject's contact, keyed by subject; read for one action and dropped.
    async fn fields_of(
        &self,
        subjects: &[i64],
        fields: &[String],
    ) -> Result<HashMap<i64, Map<String, Json>>> {
        let real = self.real_contacts(subjects).await?;
        let mut ids: Vec<i64> = real.values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let records = self.store.contact_fields(CONTACTS, &ids, fields).await?;
        Ok(real
            .into_iter()
            .filter_map(|(subject, contact)| records.get(&contact).map(|r| (subject, r.clone())))
            .collect())
    }

    /// MA-16: the best hour to reach each contact of `moves` that has a send at its best time:
    /// the hour of the day (in the flow's zone) they opened most in the last 90 days, else the
    /// hour everyone opened most. Contacts without either are missing (sent at once).
    async fn best_hours(&self, moves: &[Move], now: DateTime<Utc>) -> Result<HashMap<i64, u32>> {
        let mut wanted: HashMap<String, Vec<i64>> = HashMap::new();
        for m in moves {
            let timed = m.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Send {
                        best_time_within: Some(_),
                        ..
                    }
                )
            });
            if timed {
                let flow = self.flow(m.flow_id, m.version).await?;
                wanted
                    .entry(flow.settings.zone.clone())
                    .or_default()
                    .push(m.contact_id);
            }
        }
        let mut best = HashMap::new();
        let since = millis(now - chrono::Duration::days(BEST_TIME_DAYS));
        for (zone, contacts) in wanted {
            let offset = tabiji_model::zone::Zone::parse(&zone)
                .map(|z| (z.local(now) - now.naive_utc()).num_seconds())
                .unwrap_or(0);
            let conn = &self.store.db().conn;
            let theirs = journeys::opens_by_hour(
                conn,
                Some(&contacts),
                since,
                offset,
                &journeys::Reached::everyone(),
            )
            .await?;
            let counted = self
                .population_hours
                .lock()
                .expect("not poisoned")
                .get(&zone)
                .filter(|(at, _)| now - *at < chrono::Duration::hours(1))
                .map(|(_, hour)| *hour);
            let fallback = match counted {
                Some(hour) => hour,
                None => {
                    let everyone = journeys::opens_by_hour(
                        conn,
                        None,
                        since,
                        offset,
                        &journeys::Reached::everyone(),
                    )
                    .await?;
                    let hour = busiest_hour(everyone.iter().map(|(&(_, h), &n)| (h, n)));
                    self.population_hours
                        .lock()
                        .expect("not poisoned")
                        .insert(zone.clone(), (now, hour));
                    hour
                }
            };
            let mut by_contact: HashMap<i64, Vec<(u32, u64)>> = HashMap::new();
            for ((contact, hour), n) in theirs {
                by_contact.entry(contact).or_default().push((hour, n));
            }
            for contact in contacts {
                let own = by_contact
                    .get(&contact)
                    .and_then(|hours| busiest_hour(hours.iter().copied()));
                if let Some(hour) = own.or(fallback) {
                    best.insert(contact, hour);
                }
            }
        }
        Ok(best)
    }

    /// Stores decided moves in `txn`: new runs, moved runs (compare-and-set), their step
    /// log, outbox deliveries and contact updates. A move whose run another worker moved
    /// first is dropped with everything it decided. Returns the contacts whose moves were
    /// stored.
    async fn store_moves(
        &self,
        txn: &DatabaseTransaction,
        moves: Vec<Move>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let at = millis(now);
        let mut inserts = Vec::new();
        let mut changes = Vec::new();
        for m in &moves {
            let state = stored_state(&m.run, &m.actions);
            match m.stored {
                None => inserts.push(NewRun {
                    flow_id: m.flow_id,
                    version: m.version,
                    contact_id: m.contact_id,
                    entry_key: m.entry_key.clone(),
                    state,
                }),
                Some((id, expected_iteration)) => changes.push(RunChange {
                    id,
                    expected_iteration,
                    state,
                }),
            }
        }
        let best_hours = self.best_hours(&moves, now).await?;
        let inserted = journeys::insert_runs(txn, inserts, at).await?;
        let moved = journeys::update_runs(txn, changes, at).await?;
        let mut steps = Vec::new();
        let mut deliveries = Vec::new();
        let mut updates: Vec<(i64, Json)> = Vec::new();
        let mut update_owner: Vec<(i64, i64, String)> = Vec::new();
        let mut stored = Vec::with_capacity(moves.len());
        for m in moves {
            let run_id = match m.stored {
                None => match inserted.get(&(m.flow_id, m.contact_id, m.entry_key.clone())) {
                    Some(id) => *id,
                    None => continue,
                },
                Some((id, _)) if moved.contains(&id) => id,
                Some(_) => continue,
            };
            stored.push(m.contact_id);
            let flow = self.flow(m.flow_id, m.version).await?;
            for action in m.actions {
                match action {
                    Action::Log { node, outcome, at } => steps.push(NewStep {
                        run_id,
                        flow_id: m.flow_id,
                        node,
                        outcome,
                        at: millis(at),
                    }),
                    Action::Send {
                        node,
                        iteration,
                        channel,
                        template,
                        sender,
                        best_time_within,
                    } => {
                        let at_best = match (best_time_within, best_hours.get(&m.contact_id)) {
                            (Some(within), Some(&hour)) => {
                                crate::time::best_time(now, hour, within, &flow.settings.zone)
                            }
                            _ => now,
                        };
                        let send_at = flow
                            .settings
                            .quiet_hours
                            .as_ref()
                            .and_then(|q| quiet_until(at_best, q, &flow.settings.zone))
                            .unwrap_or(at_best);
                        deliveries.push(NewDelivery {
                            run_id,
                            flow_id: m.flow_id,
                            node,
                            iteration: iteration as i32,
                            contact_id: m.contact_id,
                            channel: channel.as_str().into(),
                            template,
                            sender,
                            next_attempt_at: millis(send_at),
                        })
                    }
                    Action::UpdateContact { node, set } => {
                        updates.push((m.contact_id, Json::Object(set)));
                        update_owner.push((run_id, m.flow_id, node));
                    }
                    // The run's stored wake time is the timer.
                    Action::Timer { .. } => {}
                }
            }
        }
        if !updates.is_empty() {
            let subjects: Vec<i64> = updates.iter().map(|(s, _)| *s).collect();
            let real = self.real_contacts(&subjects).await?;
            for (subject, _) in updates.iter_mut() {
                // A contact deleted since has no record to update: id 0 matches nothing.
                *subject = real.get(subject).copied().unwrap_or(0);
            }
            let refused = self
                .store
                .update_within(txn, &Principal::system(), CONTACTS, &updates)
                .await?;
            for error in refused {
                let Some(index) = error.index else { continue };
                let (run_id, flow_id, node) = update_owner[index].clone();
                steps.push(NewStep {
                    run_id,
                    flow_id,
                    node,
                    outcome: format!(
                        "update refused: {}{}",
                        error.field.map(|f| format!("{f}: ")).unwrap_or_default(),
                        error.message
                    ),
                    at,
                });
            }
        }
        self.counters
            .moves
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        self.counters
            .steps
            .fetch_add(steps.len() as u64, Ordering::Relaxed);
        if tracing::enabled!(tracing::Level::DEBUG) {
            for step in &steps {
                tracing::debug!(
                    run_id = step.run_id,
                    flow_id = step.flow_id,
                    node = %step.node,
                    outcome = %step.outcome,
                    "step"
                );
            }
        }
        journeys::insert_steps(txn, steps).await?;
        journeys::insert_deliveries(txn, deliveries, at).await?;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests;
