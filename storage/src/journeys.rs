//! The engine's tables (runs, step log, outbox, events, entry cursors), read and written a
//! batch at a time. The engine decides; these functions only store.
//!
//! Work is shared between worker processes by leases: a claim marks up to N due rows as
//! taken until a time (PostgreSQL skips rows another worker has locked), and every change of
//! a run is a compare-and-set on its iteration, so two workers never both move a run.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::SelectStatement;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};
use serde::Serialize;

use crate::sql::{Cell, Sql, Ty, max_rows};

type Result<T> = std::result::Result<T, DbErr>;

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub flow_id: i64,
    pub version: i32,
    pub contact_id: i64,
    pub entry_key: String,
    /// `waiting` or `finished`.
    pub state: String,
    pub node: Option<String>,
    pub wake_at: Option<i64>,
    pub iteration: i32,
    pub outcome: Option<String>,
    pub entered_at: i64,
    pub updated_at: i64,
}

const RUN_COLUMNS: &str = "id, flow_id, version, contact_id, entry_key, state, node, wake_at, \
                           iteration, outcome, entered_at, updated_at";

fn run_row(row: &QueryResult) -> Result<RunRow> {
    Ok(RunRow {
        id: row.try_get("", "id")?,
        flow_id: row.try_get("", "flow_id")?,
        version: row.try_get("", "version")?,
        contact_id: row.try_get("", "contact_id")?,
        entry_key: row.try_get("", "entry_key")?,
        state: row.try_get("", "state")?,
        node: row.try_get("", "node")?,
        wake_at: row.try_get("", "wake_at")?,
        iteration: row.try_get("", "iteration")?,
        outcome: row.try_get("", "outcome")?,
        entered_at: row.try_get("", "entered_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// Where a run is after a step: the fields of `sys_runs` the engine decides.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub state: &'static str,
    pub node: Option<String>,
    pub wake_at: Option<i64>,
    pub iteration: i32,
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub flow_id: i64,
    pub version: i32,
    pub contact_id: i64,
    pub entry_key: String,
    pub state: RunState,
}

/// A run moved out of the wait it was claimed in (`expected_iteration`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunChange {
    pub id: i64,
    pub expected_iteration: i32,
    pub state: RunState,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    pub run_id: i64,
    pub flow_id: i64,
    pub node: String,
    pub outcome: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub run_id: i64,
    pub flow_id: i64,
    pub node: String,
    pub iteration: i32,
    pub contact_id: i64,
    pub channel: String,
    pub template: String,
    pub sender: Option<String>,
    pub next_attempt_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub run_id: i64,
    pub flow_id: i64,
    pub node: String,
    pub iteration: i32,
    pub contact_id: i64,
    pub channel: String,
    pub template: String,
    pub sender: Option<String>,
    /// `pending`, `sending`, `sent`, `dead` (gave up, with the reason), `unknown` (the worker
    /// stopped while the provider was being called) or `suppressed` (not sent by rule).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub provider_ref: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const DELIVERY_COLUMNS: &str = "id, run_id, flow_id, node, iteration, contact_id, channel, \
     template, sender, status, attempts, next_attempt_at, provider_ref, error, created_at, updated_at";

fn delivery_row(row: &QueryResult) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: row.try_get("", "id")?,
        run_id: row.try_get("", "run_id")?,
        flow_id: row.try_get("", "flow_id")?,
        node: row.try_get("", "node")?,
        iteration: row.try_get("", "iteration")?,
        contact_id: row.try_get("", "contact_id")?,
        channel: row.try_get("", "channel")?,
        template: row.try_get("", "template")?,
        sender: row.try_get("", "sender")?,
        status: row.try_get("", "status")?,
        attempts: row.try_get("", "attempts")?,
        next_attempt_at: row.try_get("", "next_attempt_at")?,
        provider_ref: row.try_get("", "provider_ref")?,
        error: row.try_get("", "error")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// What became of one claimed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryResult {
    pub id: i64,
    pub status: &'static str,
    pub provider_ref: Option<String>,
    pub error: Option<String>,
    pub next_attempt_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_key: String,
    pub contact_id: i64,
    pub name: String,
    pub delivery_id: Option<i64>,
    pub properties: String,
    pub occurred_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub event_key: String,
    pub contact_id: i64,
    pub name: String,
    pub delivery_id: Option<i64>,
    pub properties: String,
    pub occurred_at: i64,
}

const EVENT_COLUMNS: &str = "id, event_key, contact_id, name, delivery_id, properties, occurred_at";

fn event_row(row: &QueryResult) -> Result<EventRow> {
    Ok(EventRow {
        id: row.try_get("", "id")?,
        event_key: row.try_get("", "event_key")?,
        contact_id: row.try_get("", "contact_id")?,
        name: row.try_get("", "name")?,
        delivery_id: row.try_get("", "delivery_id")?,
        properties: row.try_get("", "properties")?,
        occurred_at: row.try_get("", "occurred_at")?,
    })
}

fn skip_locked(backend: DbBackend) -> &'static str {
    if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    }
}

fn state_cells(s: &RunState) -> [Cell; 5] {
    [
        s.state.into(),
        s.node.clone().into(),
        s.wake_at.into(),
        i64::from(s.iteration).into(),
        s.outcome.clone().into(),
    ]
}

/// Runs one statement per batch of `items` small enough for the backend's parameter limit:
/// `cells` turns an item into its row of `columns`, `statement` writes the SQL around the
/// batch's row source. Returns the rows every statement returned.
async fn per_batch<C: ConnectionTrait, T>(
    conn: &C,
    items: Vec<T>,
    columns: &[(&str, Ty)],
    cells: impl Fn(T) -> Vec<Cell>,
    statement: impl Fn(&mut Sql, Vec<Vec<Cell>>),
) -> Result<Vec<QueryResult>> {
    let mut returned = Vec::new();
    let mut rest = items.into_iter().peekable();
    while rest.peek().is_some() {
        let rows: Vec<Vec<Cell>> = rest
            .by_ref()
            .take(max_rows(columns.len()))
            .map(&cells)
            .collect();
        let mut sql = Sql::new(conn.get_database_backend());
        statement(&mut sql, rows);
        returned.extend(conn.query_all_raw(sql.statement()).await?);
    }
    Ok(returned)
}

/// A flow whose runs exist and may move: active, or paused (events still reach its runs;
/// timers, entries and sends wait for it to resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveFlow {
    pub id: i64,
    pub version: i32,
    pub active: bool,
}

pub async fn live_flows<C: ConnectionTrait>(conn: &C) -> Result<Vec<LiveFlow>> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT id, current_version, status FROM sys_flows \
             WHERE status IN ('active', 'paused') AND current_version IS NOT NULL ORDER BY id",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("", "status")?;
            Ok(LiveFlow {
                id: r.try_get("", "id")?,
                version: r.try_get("", "current_version")?,
                active: status == "active",
            })
        })
        .collect()
}

/// The definition of a published version, as stored.
pub async fn flow_version<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    version: i32,
) -> Result<Option<String>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT definition FROM sys_flow_versions WHERE flow_id = ")
        .bind(flow_id)
        .push(" AND version = ")
        .bind(i64::from(version));
    match conn.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some(row.try_get("", "definition")?)),
        None => Ok(None),
    }
}

/// Records that a bulk entry begins (once: a second call changes nothing).
pub async fn start_entry<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    version: i32,
    entry_key: &str,
    now: i64,
) -> Result<()> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(
        "INSERT INTO sys_flow_entries \
         (flow_id, version, entry_key, cursor, done, entered, started_at, updated_at) VALUES (",
    )
    .bind(flow_id)
    .push(", ")
    .bind(i64::from(version))
    .push(", ")
    .bind(entry_key)
    .push(", 0, false, 0, ")
    .bind(now)
    .push(", ")
    .bind(now)
    .push(") ON CONFLICT (flow_id, entry_key) DO NOTHING");
    conn.execute_raw(sql.statement()).await?;
    Ok(())
}

/// A bulk entry still in progress: `(flow_id, version, entry_key, cursor)`.
pub async fn open_entries<C: ConnectionTrait>(
    conn: &C,
    flow_ids: &[i64],
) -> Result<Vec<(i64, i32, String, i64)>> {
    if flow_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(
        "SELECT flow_id, version, entry_key, cursor FROM sys_flow_entries \
         WHERE done = false AND ",
    )
    .in_list("flow_id", flow_ids.iter().copied())
    .push(" ORDER BY started_at");
    let rows = conn.query_all_raw(sql.statement()).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "flow_id")?,
                r.try_get("", "version")?,
                r.try_get("", "entry_key")?,
                r.try_get("", "cursor")?,
            ))
        })
        .collect()
}

/// Moves an entry's cursor from `from` to `to`, if no other worker moved it first. Call it
/// first in the transaction that stores the batch, so the batch is stored once.
#[allow(clippy::too_many_arguments)]
pub async fn advance_entry<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    entry_key: &str,
    from: i64,
    to: i64,
    done: bool,
    entered: i64,
    now: i64,
) -> Result<bool> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("UPDATE sys_flow_entries SET cursor = ")
        .bind(to)
        .push(", done = ")
        .push(if done { "true" } else { "false" })
        .push(", entered = entered + ")
        .bind(entered)
        .push(", updated_at = ")
        .bind(now)
        .push(" WHERE flow_id = ")
        .bind(flow_id)
        .push(" AND entry_key = ")
        .bind(entry_key)
        .push(" AND cursor = ")
        .bind(from)
        .push(" AND done = false");
    Ok(conn.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Ids of `table`'s rows after `after`, in order.
pub async fn ids_after<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<i64>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(&format!("SELECT id FROM \"{table}\" WHERE id > "))
        .bind(after)
        .push(&format!(" ORDER BY id LIMIT {limit}"));
    let rows = conn.query_all_raw(sql.statement()).await?;
    rows.iter().map(|r| r.try_get("", "id")).collect()
}

/// Which of `contacts` already have a run of the flow (only unfinished ones if `open_only`).
pub async fn contacts_with_runs<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    contacts: &[i64],
    open_only: bool,
) -> Result<HashSet<i64>> {
    let mut found = HashSet::new();
    for chunk in contacts.chunks(max_rows(1)) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("SELECT DISTINCT contact_id FROM sys_runs WHERE flow_id = ")
            .bind(flow_id)
            .push(if open_only {
                " AND state <> 'finished'"
            } else {
                ""
            })
            .push(" AND ")
            .in_list("contact_id", chunk.iter().copied());
        for row in conn.query_all_raw(sql.statement()).await? {
            found.insert(row.try_get("", "contact_id")?);
        }
    }
    Ok(found)
}

/// A run's key: (flow, contact, entry key).
pub type RunKey = (i64, i64, String);

/// Inserts runs; a run whose key is taken is skipped. Returns the new runs' ids by key.
pub async fn insert_runs<C: ConnectionTrait>(
    conn: &C,
    runs: Vec<NewRun>,
    now: i64,
) -> Result<HashMap<RunKey, i64>> {
    let columns = [
        ("flow_id", Ty::BigInt),
        ("version", Ty::BigInt),
        ("contact_id", Ty::BigInt),
        ("entry_key", Ty::Text),
        ("state", Ty::Text),
        ("node", Ty::Text),
        ("wake_at", Ty::BigInt),
        ("iteration", Ty::BigInt),
        ("outcome", Ty::Text),
    ];
    let mut ids = HashMap::with_capacity(runs.len());
    let returned = per_batch(
        conn,
        runs,
        &columns,
        |r| {
            let mut row: Vec<Cell> = vec![
                r.flow_id.into(),
                i64::from(r.version).into(),
                r.contact_id.into(),
                r.entry_key.into(),
            ];
            row.extend(state_cells(&r.state));
            row
        },
        |sql, rows| {
            sql.push(
                "INSERT INTO sys_runs (flow_id, version, contact_id, entry_key, state, node, wake_at, \
                 iteration, outcome, entered_at, updated_at) \
                 SELECT flow_id, version, contact_id, entry_key, state, node, wake_at, iteration, \
                 outcome, ",
            )
            .bind(now)
            .push(", ")
            .bind(now)
            .push(" FROM ")
            .rows(&columns, rows)
            .push(
                " AS v WHERE true ON CONFLICT (flow_id, contact_id, entry_key) DO NOTHING \
                 RETURNING id, flow_id, contact_id, entry_key",
            );
        },
    )
    .await?;
    for row in returned {
        let key = (
            row.try_get("", "flow_id")?,
            row.try_get("", "contact_id")?,
            row.try_get("", "entry_key")?,
        );
        ids.insert(key, row.try_get("", "id")?);
    }
    Ok(ids)
}

/// Takes up to `limit` waiting runs of `flows` whose timer is due, for `lease_ms`.
pub async fn claim_due_runs<C: ConnectionTrait>(
    conn: &C,
    flows: &[i64],
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<RunRow>> {
    if flows.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("UPDATE sys_runs SET lease_until = ")
        .bind(now + lease_ms)
        .push(" WHERE id IN (SELECT id FROM sys_runs WHERE state = 'waiting' AND wake_at <= ")
        .bind(now)
        .push(" AND (lease_until IS NULL OR lease_until < ")
        .bind(now)
        // `+flow_id`: walk the due index in wake order (see `claim_deliveries`).
        .push(") AND ")
        .in_list("+flow_id", flows.iter().copied())
        .push(&format!(
            " ORDER BY wake_at LIMIT {limit}{}) RETURNING {RUN_COLUMNS}",
            skip_locked(backend)
        ));
    let rows = conn.query_all_raw(sql.statement()).await?;
    rows.iter().map(run_row).collect()
}

/// PostgreSQL: locks up to `limit` due waiting runs of `flows` for the transaction `conn` is
/// (skipping rows another worker holds), instead of writing a lease: the transaction that
/// moves them holds them, and a crash releases them with it.
pub async fn lock_due_runs<C: ConnectionTrait>(
    conn: &C,
    flows: &[i64],
    now: i64,
    limit: usize,
) -> Result<Vec<RunRow>> {
    if flows.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(&format!(
        "SELECT {RUN_COLUMNS} FROM sys_runs WHERE state = 'waiting' AND wake_at <= "
    ))
    .bind(now)
    .push(" AND (lease_until IS NULL OR lease_until < ")
    .bind(now)
    .push(") AND ")
    .in_list("+flow_id", flows.iter().copied())
    .push(&format!(
        " ORDER BY wake_at LIMIT {limit} FOR UPDATE SKIP LOCKED"
    ));
    let rows = conn.query_all_raw(sql.statement()).await?;
    rows.iter().map(run_row).collect()
}

/// Waiting runs of these contacts in `flows` (for events).
pub async fn waiting_runs_of<C: ConnectionTrait>(
    conn: &C,
    flows: &[i64],
    contacts: &[i64],
) -> Result<Vec<RunRow>> {
    let mut runs = Vec::new();
    if flows.is_empty() {
        return Ok(runs);
    }
    for chunk in contacts.chunks(max_rows(1) - flows.len()) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push(&format!(
            "SELECT {RUN_COLUMNS} FROM sys_runs WHERE state = 'waiting' AND "
        ))
        .in_list("contact_id", chunk.iter().copied())
        // `+flow_id`: look the contacts up by the contact index, not every waiting run of
        // the flows.
        .push(" AND ")
        .in_list("+flow_id", flows.iter().copied());
        for row in conn.query_all_raw(sql.statement()).await? {
            runs.push(run_row(&row)?);
        }
    }
    Ok(runs)
}

/// Moves runs out of their waits; a run whose iteration moved on since it was read (another
/// worker, or an event that won the race with the timer) is left alone. Returns the ids moved.
pub async fn update_runs<C: ConnectionTrait>(
    conn: &C,
    changes: Vec<RunChange>,
    now: i64,
) -> Result<HashSet<i64>> {
    let columns = [
        ("id", Ty::BigInt),
        ("expected", Ty::BigInt),
        ("state", Ty::Text),
        ("node", Ty::Text),
        ("wake_at", Ty::BigInt),
        ("iteration", Ty::BigInt),
        ("outcome", Ty::Text),
    ];
    let mut moved = HashSet::with_capacity(changes.len());
    let returned = per_batch(
        conn,
        changes,
        &columns,
        |c| {
            let mut row: Vec<Cell> = vec![c.id.into(), i64::from(c.expected_iteration).into()];
            row.extend(state_cells(&c.state));
            row
        },
        |sql, rows| {
            sql.push(
                "UPDATE sys_runs SET state = v.state, node = v.node, wake_at = v.wake_at, \
                 iteration = v.iteration, outcome = v.outcome, lease_until = NULL, updated_at = ",
            )
            .bind(now)
            .push(" FROM ")
            .rows(&columns, rows)
            .push(
                " AS v WHERE sys_runs.id = v.id AND sys_runs.iteration = v.expected \
                 AND sys_runs.state = 'waiting' RETURNING sys_runs.id",
            );
        },
    )
    .await?;
    for row in returned {
        moved.insert(row.try_get("", "id")?);
    }
    Ok(moved)
}

pub async fn insert_steps<C: ConnectionTrait>(conn: &C, steps: Vec<NewStep>) -> Result<()> {
    let columns = [
        ("run_id", Ty::BigInt),
        ("flow_id", Ty::BigInt),
        ("node", Ty::Text),
        ("outcome", Ty::Text),
        ("at", Ty::BigInt),
    ];
    per_batch(
        conn,
        steps,
        &columns,
        |s| {
            vec![
                s.run_id.into(),
                s.flow_id.into(),
                s.node.into(),
                s.outcome.into(),
                s.at.into(),
            ]
        },
        |sql, rows| {
            sql.push(
                "INSERT INTO sys_run_steps (run_id, flow_id, node, outcome, at) \
                 SELECT run_id, flow_id, node, outcome, at FROM ",
            )
            .rows(&columns, rows)
            .push(" AS v");
        },
    )
    .await?;
    Ok(())
}

/// Writes deliveries to the outbox as `pending`; one already there under the same key is kept.
pub async fn insert_deliveries<C: ConnectionTrait>(
    conn: &C,
    deliveries: Vec<NewDelivery>,
    now: i64,
) -> Result<()> {
    let columns = [
        ("run_id", Ty::BigInt),
        ("flow_id", Ty::BigInt),
        ("node", Ty::Text),
        ("iteration", Ty::BigInt),
        ("contact_id", Ty::BigInt),
        ("channel", Ty::Text),
        ("template", Ty::Text),
        ("sender", Ty::Text),
        ("next_attempt_at", Ty::BigInt),
    ];
    per_batch(
        conn,
        deliveries,
        &columns,
        |d| {
            vec![
                d.run_id.into(),
                d.flow_id.into(),
                d.node.into(),
                i64::from(d.iteration).into(),
                d.contact_id.into(),
                d.channel.into(),
                d.template.into(),
                d.sender.into(),
                d.next_attempt_at.into(),
            ]
        },
        |sql, rows| {
            sql.push(
                "INSERT INTO sys_deliveries (run_id, flow_id, node, iteration, contact_id, channel, \
                 template, sender, status, attempts, next_attempt_at, created_at, updated_at) \
                 SELECT run_id, flow_id, node, iteration, contact_id, channel, template, sender, \
                 'pending', 0, next_attempt_at, ",
            )
            .bind(now)
            .push(", ")
            .bind(now)
            .push(" FROM ")
            .rows(&columns, rows)
            .push(" AS v WHERE true ON CONFLICT (run_id, node, iteration) DO NOTHING");
        },
    )
    .await?;
    Ok(())
}

/// Takes up to `limit` due pending deliveries of `flows`: they become `sending` until
/// `now + lease_ms`, and count an attempt.
pub async fn claim_deliveries<C: ConnectionTrait>(
    conn: &C,
    flows: &[i64],
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<DeliveryRow>> {
    if flows.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(
        "UPDATE sys_deliveries SET status = 'sending', attempts = attempts + 1, lease_until = ",
    )
    .bind(now + lease_ms)
    .push(", updated_at = ")
    .bind(now)
    .push(
        " WHERE id IN (SELECT id FROM sys_deliveries WHERE status = 'pending' \
         AND next_attempt_at <= ",
    )
    .bind(now)
    // `+flow_id`: filter while walking the due index in order, rather than let SQLite pick
    // the flow index and sort every pending delivery for each batch.
    .push(" AND ")
    .in_list("+flow_id", flows.iter().copied())
    .push(&format!(
        " ORDER BY next_attempt_at LIMIT {limit}{}) RETURNING {DELIVERY_COLUMNS}",
        skip_locked(backend)
    ));
    let rows = conn.query_all_raw(sql.statement()).await?;
    let mut claimed = rows.iter().map(delivery_row).collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|d| d.id);
    Ok(claimed)
}

/// Records what the providers said about claimed deliveries. A delivery no longer `sending`
/// (declared `unknown` after its lease ran out) keeps that status.
pub async fn finish_deliveries<C: ConnectionTrait>(
    conn: &C,
    results: Vec<DeliveryResult>,
    now: i64,
) -> Result<()> {
    let columns = [
        ("id", Ty::BigInt),
        ("status", Ty::Text),
        ("provider_ref", Ty::Text),
        ("error", Ty::Text),
        ("next_attempt_at", Ty::BigInt),
    ];
    per_batch(
        conn,
        results,
        &columns,
        |r| {
            vec![
                r.id.into(),
                r.status.into(),
                r.provider_ref.into(),
                r.error.into(),
                r.next_attempt_at.into(),
            ]
        },
        |sql, rows| {
            sql.push(
                        "UPDATE sys_deliveries SET status = v.status, provider_ref = v.provider_ref, \
                 error = v.error, next_attempt_at = v.next_attempt_at, lease_until = NULL, updated_at = ",
                    )
                    .bind(now)
                    .push(" FROM ")
                    .rows(&columns, rows)
                    .push(" AS v WHERE sys_deliveries.id = v.id AND sys_deliveries.status = 'sending'");
        },
    )
    .await?;
    Ok(())
}

/// Deliveries left `sending` past their lease: the worker stopped between asking the provider
/// and recording the answer. Whether the message went out is unknown, so it is never resent
/// silently; an operator may retry it. Returns how many were marked.
pub async fn expire_sending<C: ConnectionTrait>(conn: &C, now: i64) -> Result<u64> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(
        "UPDATE sys_deliveries SET status = 'unknown', lease_until = NULL, \
         error = 'the worker stopped while the provider was being called; not resent', \
         updated_at = ",
    )
    .bind(now)
    .push(" WHERE status = 'sending' AND lease_until < ")
    .bind(now);
    Ok(conn.execute_raw(sql.statement()).await?.rows_affected())
}

/// Deliveries with a status, newest first, optionally of one flow.
pub async fn deliveries_by_status<C: ConnectionTrait>(
    conn: &C,
    status: &str,
    flow_id: Option<i64>,
    limit: u64,
) -> Result<Vec<DeliveryRow>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM sys_deliveries WHERE status = "
    ))
    .bind(status);
    if let Some(flow_id) = flow_id {
        sql.push(" AND flow_id = ").bind(flow_id);
    }
    sql.push(&format!(" ORDER BY id DESC LIMIT {limit}"));
    let rows = conn.query_all_raw(sql.statement()).await?;
    rows.iter().map(delivery_row).collect()
}

/// One delivery by id.
pub async fn delivery<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<DeliveryRow>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM sys_deliveries WHERE id = "
    ))
    .bind(id);
    match conn.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some(delivery_row(&row)?)),
        None => Ok(None),
    }
}

/// Puts `dead` or `unknown` deliveries back in the queue. Returns the ids requeued.
pub async fn retry_deliveries<C: ConnectionTrait>(
    conn: &C,
    ids: &[i64],
    now: i64,
) -> Result<Vec<i64>> {
    let mut requeued = Vec::new();
    for chunk in ids.chunks(max_rows(1)) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("UPDATE sys_deliveries SET status = 'pending', next_attempt_at = ")
            .bind(now)
            .push(", updated_at = ")
            .bind(now)
            .push(" WHERE status IN ('dead', 'unknown') AND ")
            .in_list("id", chunk.iter().copied())
            .push(" RETURNING id");
        for row in conn.query_all_raw(sql.statement()).await? {
            requeued.push(row.try_get("", "id")?);
        }
    }
    requeued.sort_unstable();
    Ok(requeued)
}

/// Sends to a contact since `since`, across all flows (for frequency caps).
pub async fn sends_since<C: ConnectionTrait>(
    conn: &C,
    contacts: &[i64],
    since: i64,
) -> Result<HashMap<i64, u32>> {
    let mut counts = HashMap::new();
    for chunk in contacts.chunks(max_rows(1) - 1) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push(
            "SELECT contact_id, COUNT(*) AS n FROM sys_deliveries \
             WHERE status IN ('sent', 'unknown') AND updated_at >= ",
        )
        .bind(since)
        .push(" AND ")
        .in_list("contact_id", chunk.iter().copied())
        .push(" GROUP BY contact_id");
        for row in conn.query_all_raw(sql.statement()).await? {
            let n: i64 = row.try_get("", "n")?;
            counts.insert(row.try_get("", "contact_id")?, n as u32);
        }
    }
    Ok(counts)
}

/// Which contacts a statistic counts: everyone, or the tourists a caller's record rights
/// reach ([`Store::reached_contacts`]). A privacy-mode flow's pseudonymous ids count when the
/// contact behind them is reached.
///
/// [`Store::reached_contacts`]: crate::Store::reached_contacts
#[derive(Debug, Clone, Default)]
pub struct Reached {
    /// `SELECT id FROM tourists WHERE …`.
    members: Option<SelectStatement>,
}

impl Reached {
    pub fn everyone() -> Reached {
        Reached::default()
    }

    pub(crate) fn members(select_ids: SelectStatement) -> Reached {
        Reached {
            members: Some(select_ids),
        }
    }

    /// Appends ` AND …` limiting `column` (a contact id) to the reached contacts, or nothing.
    fn and(&self, sql: &mut Sql, column: &str) {
        let Some(select) = &self.members else {
            return;
        };
        sql.push(&format!(" AND ({column} IN ("))
            .push_query(select)
            .push(&format!(
                ") OR {column} IN (SELECT pseudonym FROM sys_pseudonyms WHERE contact_id IN ("
            ))
            .push_query(select)
            .push(")))");
    }
}

/// MA-16: opens since `since` by hour of the day (UTC shifted by `offset_secs`), per contact
/// of `contacts`, or for everyone when `contacts` is `None` (keyed 0). `(contact, hour) → n`.
pub async fn opens_by_hour<C: ConnectionTrait>(
    conn: &C,
    contacts: Option<&[i64]>,
    since: i64,
    offset_secs: i64,
    reached: &Reached,
) -> Result<HashMap<(i64, u32), u64>> {
    let mut counts = HashMap::new();
    let hour = format!("((occurred_at / 1000 + {offset_secs}) / 3600) % 24");
    let everyone = [0i64];
    let chunks: Vec<&[i64]> = match contacts {
        Some(contacts) => contacts.chunks(max_rows(1) - 1).collect(),
        None => vec![&everyone[..]],
    };
    for chunk in chunks {
        let mut sql = Sql::new(conn.get_database_backend());
        let who = if contacts.is_some() {
            "contact_id"
        } else {
            "CAST(0 AS BIGINT)"
        };
        sql.push(&format!(
            "SELECT {who} AS contact_id, {hour} AS hour, COUNT(*) AS n FROM sys_events \
             WHERE name = 'opened' AND occurred_at >= "
        ))
        .bind(since);
        reached.and(&mut sql, "contact_id");
        if contacts.is_some() {
            sql.push(" AND ")
                .in_list("contact_id", chunk.iter().copied());
        }
        sql.push(" GROUP BY 1, 2");
        for row in conn.query_all_raw(sql.statement()).await? {
            let contact: i64 = row.try_get("", "contact_id")?;
            let hour: i64 = row.try_get("", "hour")?;
            let n: i64 = row.try_get("", "n")?;
            counts.insert((contact, hour.rem_euclid(24) as u32), n as u64);
        }
    }
    Ok(counts)
}

/// MA-16: messages sent since `since` by hour of sending (UTC shifted by `offset_secs`), and
/// how many of them were opened: `hour → (sent, opened)`.
pub async fn sends_by_hour<C: ConnectionTrait>(
    conn: &C,
    since: i64,
    offset_secs: i64,
    reached: &Reached,
) -> Result<HashMap<u32, (u64, u64)>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(&format!(
        "SELECT ((d.updated_at / 1000 + {offset_secs}) / 3600) % 24 AS hour, COUNT(*) AS sent, \
         COUNT(e.id) AS opened FROM sys_deliveries d LEFT JOIN sys_events e \
         ON e.delivery_id = d.id AND e.name = 'opened' WHERE d.status = 'sent' AND d.updated_at >= "
    ))
    .bind(since);
    reached.and(&mut sql, "d.contact_id");
    sql.push(" GROUP BY 1");
    let mut out = HashMap::new();
    for row in conn.query_all_raw(sql.statement()).await? {
        let hour: i64 = row.try_get("", "hour")?;
        let sent: i64 = row.try_get("", "sent")?;
        let opened: i64 = row.try_get("", "opened")?;
        out.insert(hour.rem_euclid(24) as u32, (sent as u64, opened as u64));
    }
    Ok(out)
}

/// MA-16: for each contact sent to since `since`, how many messages they got and how many of
/// those they opened.
pub async fn sends_per_contact<C: ConnectionTrait>(
    conn: &C,
    since: i64,
    reached: &Reached,
) -> Result<Vec<(u64, u64)>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(
        "SELECT d.contact_id, COUNT(*) AS sent, COUNT(e.id) AS opened FROM sys_deliveries d \
         LEFT JOIN sys_events e ON e.delivery_id = d.id AND e.name = 'opened' \
         WHERE d.status = 'sent' AND d.updated_at >= ",
    )
    .bind(since);
    reached.and(&mut sql, "d.contact_id");
    sql.push(" GROUP BY d.contact_id");
    let mut out = Vec::new();
    for row in conn.query_all_raw(sql.statement()).await? {
        let sent: i64 = row.try_get("", "sent")?;
        let opened: i64 = row.try_get("", "opened")?;
        out.push((sent as u64, opened as u64));
    }
    Ok(out)
}

/// Stores events; one whose key was seen before is skipped. Returns the keys stored.
pub async fn insert_events<C: ConnectionTrait>(
    conn: &C,
    events: Vec<NewEvent>,
    now: i64,
) -> Result<HashSet<String>> {
    let columns = [
        ("event_key", Ty::Text),
        ("contact_id", Ty::BigInt),
        ("name", Ty::Text),
        ("delivery_id", Ty::BigInt),
        ("properties", Ty::Text),
        ("occurred_at", Ty::BigInt),
    ];
    let mut stored = HashSet::with_capacity(events.len());
    let returned = per_batch(
        conn,
        events,
        &columns,
        |e| {
            vec![
                e.event_key.into(),
                e.contact_id.into(),
                e.name.into(),
                e.delivery_id.into(),
                e.properties.into(),
                e.occurred_at.into(),
            ]
        },
        |sql, rows| {
            sql.push(
                "INSERT INTO sys_events (event_key, contact_id, name, delivery_id, properties, \
                 occurred_at, received_at) \
                 SELECT event_key, contact_id, name, delivery_id, properties, occurred_at, ",
            )
            .bind(now)
            .push(" FROM ")
            .rows(&columns, rows)
            .push(" AS v WHERE true ON CONFLICT (event_key) DO NOTHING RETURNING event_key");
        },
    )
    .await?;
    for row in returned {
        stored.insert(row.try_get("", "event_key")?);
    }
    Ok(stored)
}

/// Takes up to `limit` unprocessed events, oldest first, for `lease_ms`.
pub async fn claim_events<C: ConnectionTrait>(
    conn: &C,
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<EventRow>> {
    let backend = conn.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push("UPDATE sys_events SET lease_until = ")
        .bind(now + lease_ms)
        .push(
            " WHERE id IN (SELECT id FROM sys_events WHERE processed_at IS NULL \
             AND (lease_until IS NULL OR lease_until < ",
        )
        .bind(now)
        .push(&format!(
            ") ORDER BY id LIMIT {limit}{}) RETURNING {EVENT_COLUMNS}",
            skip_locked(backend)
        ));
    let rows = conn.query_all_raw(sql.statement()).await?;
    let mut events = rows.iter().map(event_row).collect::<Result<Vec<_>>>()?;
    events.sort_by_key(|e| e.id);
    Ok(events)
}

pub async fn mark_events_processed<C: ConnectionTrait>(
    conn: &C,
    ids: &[i64],
    now: i64,
) -> Result<()> {
    for chunk in ids.chunks(max_rows(1) - 1) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("UPDATE sys_events SET lease_until = NULL, processed_at = ")
            .bind(now)
            .push(" WHERE ")
            .in_list("id", chunk.iter().copied());
        conn.execute_raw(sql.statement()).await?;
    }
    Ok(())
}

/// `(run id, node)` of each delivery, for events that name one.
pub async fn delivery_nodes<C: ConnectionTrait>(
    conn: &C,
    ids: &[i64],
) -> Result<HashMap<i64, (i64, String)>> {
    let mut nodes = HashMap::new();
    for chunk in ids.chunks(max_rows(1)) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("SELECT id, run_id, node FROM sys_deliveries WHERE ")
            .in_list("id", chunk.iter().copied());
        for row in conn.query_all_raw(sql.statement()).await? {
            nodes.insert(
                row.try_get("", "id")?,
                (row.try_get("", "run_id")?, row.try_get("", "node")?),
            );
        }
    }
    Ok(nodes)
}

/// Counts for a flow's picture: runs waiting at each node, steps by node and outcome, runs by
/// state and outcome, deliveries by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlowStats {
    pub runs: HashMap<String, i64>,
    pub waiting: HashMap<String, i64>,
    pub steps: HashMap<String, HashMap<String, i64>>,
    pub outcomes: HashMap<String, i64>,
    pub deliveries: HashMap<String, i64>,
}

pub async fn flow_stats<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    reached: &Reached,
) -> Result<FlowStats> {
    let backend = conn.get_database_backend();
    let mut stats = FlowStats::default();
    // `SELECT … FROM table WHERE flow_id = ? [AND the reached contacts] GROUP BY …`
    let query = |select_from: &str, runs_of_reached: bool, group_by: &str| {
        let mut sql = Sql::new(backend);
        sql.push(select_from)
            .push(" WHERE flow_id = ")
            .bind(flow_id);
        if runs_of_reached {
            // The step log names runs, not contacts.
            sql.push(" AND run_id IN (SELECT id FROM sys_runs WHERE flow_id = ")
                .bind(flow_id);
            reached.and(&mut sql, "contact_id");
            sql.push(")");
        } else {
            reached.and(&mut sql, "contact_id");
        }
        sql.push(" GROUP BY ").push(group_by);
        sql.statement()
    };
    for row in conn
        .query_all_raw(query(
            "SELECT state, node, outcome, COUNT(*) AS n FROM sys_runs",
            false,
            "state, node, outcome",
        ))
        .await?
    {
        let state: String = row.try_get("", "state")?;
        let n: i64 = row.try_get("", "n")?;
        *stats.runs.entry(state.clone()).or_default() += n;
        if state == "waiting" {
            let node: Option<String> = row.try_get("", "node")?;
            *stats.waiting.entry(node.unwrap_or_default()).or_default() += n;
        } else {
            let outcome: Option<String> = row.try_get("", "outcome")?;
            *stats
                .outcomes
                .entry(outcome.unwrap_or_default())
                .or_default() += n;
        }
    }
    for row in conn
        .query_all_raw(query(
            "SELECT node, outcome, COUNT(*) AS n FROM sys_run_steps",
            reached.members.is_some(),
            "node, outcome",
        ))
        .await?
    {
        stats
            .steps
            .entry(row.try_get("", "node")?)
            .or_default()
            .insert(row.try_get("", "outcome")?, row.try_get("", "n")?);
    }
    for row in conn
        .query_all_raw(query(
            "SELECT status, COUNT(*) AS n FROM sys_deliveries",
            false,
            "status",
        ))
        .await?
    {
        stats
            .deliveries
            .insert(row.try_get("", "status")?, row.try_get("", "n")?);
    }
    Ok(stats)
}

/// Where a page of a contact's rows ends: the time and id of its last row, newest first.
pub type Before = Option<(i64, i64)>;

/// Up to `limit` of one contact's rows of an engine table, newest first by `time` (ties by id),
/// older than `before`; the table's `(contact_id, time)` index answers it.
async fn contact_rows<C: ConnectionTrait>(
    conn: &C,
    table_and_columns: (&str, &str),
    time: &str,
    contact_id: i64,
    before: Before,
    limit: u64,
) -> Result<Vec<QueryResult>> {
    let (table, columns) = table_and_columns;
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push(&format!(
        "SELECT {columns} FROM {table} WHERE contact_id = "
    ))
    .bind(contact_id);
    if let Some((at, id)) = before {
        sql.push(&format!(" AND ({time} < "))
            .bind(at)
            .push(&format!(" OR ({time} = "))
            .bind(at)
            .push(" AND id < ")
            .bind(id)
            .push("))");
    }
    sql.push(&format!(" ORDER BY {time} DESC, id DESC LIMIT {limit}"));
    conn.query_all_raw(sql.statement()).await
}

/// A contact's runs, newest entry first.
pub async fn runs_of_contact<C: ConnectionTrait>(
    conn: &C,
    contact_id: i64,
    before: Before,
    limit: u64,
) -> Result<Vec<RunRow>> {
    let rows = contact_rows(
        conn,
        ("sys_runs", RUN_COLUMNS),
        "entered_at",
        contact_id,
        before,
        limit,
    )
    .await?;
    rows.iter().map(run_row).collect()
}

/// The messages flows sent (or are sending) a contact, newest first.
pub async fn deliveries_of_contact<C: ConnectionTrait>(
    conn: &C,
    contact_id: i64,
    before: Before,
    limit: u64,
) -> Result<Vec<DeliveryRow>> {
    let rows = contact_rows(
        conn,
        ("sys_deliveries", DELIVERY_COLUMNS),
        "created_at",
        contact_id,
        before,
        limit,
    )
    .await?;
    rows.iter().map(delivery_row).collect()
}

/// The events of a contact (opens, clicks, bounces, partners' events), newest first.
pub async fn events_of_contact<C: ConnectionTrait>(
    conn: &C,
    contact_id: i64,
    before: Before,
    limit: u64,
) -> Result<Vec<EventRow>> {
    let rows = contact_rows(
        conn,
        ("sys_events", EVENT_COLUMNS),
        "occurred_at",
        contact_id,
        before,
        limit,
    )
    .await?;
    rows.iter().map(event_row).collect()
}

/// The contact a run is for.
pub async fn contact_of_run<C: ConnectionTrait>(conn: &C, run_id: i64) -> Result<Option<i64>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT contact_id FROM sys_runs WHERE id = ")
        .bind(run_id);
    match conn.query_one_raw(sql.statement()).await? {
        Some(row) => Ok(Some(row.try_get("", "contact_id")?)),
        None => Ok(None),
    }
}

/// A run's step log, in order: `(node, outcome, at)`.
pub async fn steps_of_run<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
) -> Result<Vec<(String, String, i64)>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT node, outcome, at FROM sys_run_steps WHERE run_id = ")
        .bind(run_id)
        .push(" ORDER BY id");
    let rows = conn.query_all_raw(sql.statement()).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "node")?,
                r.try_get("", "outcome")?,
                r.try_get("", "at")?,
            ))
        })
        .collect()
}

/// Contact ids by e-mail address (as stored: normalised), for events that name the contact so.
pub async fn contacts_by_email<C: ConnectionTrait>(
    conn: &C,
    emails: &[String],
) -> Result<HashMap<String, i64>> {
    let mut found = HashMap::new();
    for chunk in emails.chunks(max_rows(1)) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("SELECT id, email FROM tourists WHERE email IN (");
        for (i, email) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(email.as_str());
        }
        sql.push(")");
        for row in conn.query_all_raw(sql.statement()).await? {
            found.insert(row.try_get("", "email")?, row.try_get("", "id")?);
        }
    }
    Ok(found)
}

/// Which of `ids` exist in `table`.
pub async fn existing<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    ids: &[i64],
) -> Result<HashSet<i64>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(max_rows(1)) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push(&format!("SELECT id FROM \"{table}\" WHERE "))
            .in_list("id", chunk.iter().copied());
        for row in conn.query_all_raw(sql.statement()).await? {
            found.insert(row.try_get("", "id")?);
        }
    }
    Ok(found)
}

/// The engine's state across all flows, for `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineGauges {
    pub runs: Vec<(String, i64)>,
    pub deliveries: Vec<(String, i64)>,
    /// Waiting runs whose timer is due.
    pub timers_due: i64,
    /// How late the most overdue timer is, in milliseconds (0 when none is due).
    pub timer_lag_ms: i64,
    pub events_unprocessed: i64,
}

pub async fn engine_gauges<C: ConnectionTrait>(conn: &C, now: i64) -> Result<EngineGauges> {
    let backend = conn.get_database_backend();
    let mut gauges = EngineGauges::default();
    let pairs = |sql: &str| Statement::from_string(backend, sql.to_string());
    for row in conn
        .query_all_raw(pairs(
            "SELECT state AS k, COUNT(*) AS n FROM sys_runs GROUP BY state ORDER BY state",
        ))
        .await?
    {
        gauges
            .runs
            .push((row.try_get("", "k")?, row.try_get("", "n")?));
    }
    for row in conn
        .query_all_raw(pairs(
            "SELECT status AS k, COUNT(*) AS n FROM sys_deliveries GROUP BY status ORDER BY status",
        ))
        .await?
    {
        gauges
            .deliveries
            .push((row.try_get("", "k")?, row.try_get("", "n")?));
    }
    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT COUNT(*) AS n, MIN(wake_at) AS oldest FROM sys_runs \
         WHERE state = 'waiting' AND wake_at <= ",
    )
    .bind(now);
    if let Some(row) = conn.query_one_raw(sql.statement()).await? {
        gauges.timers_due = row.try_get("", "n")?;
        let oldest: Option<i64> = row.try_get("", "oldest")?;
        gauges.timer_lag_ms = oldest.map_or(0, |at| (now - at).max(0));
    }
    if let Some(row) = conn
        .query_one_raw(pairs(
            "SELECT COUNT(*) AS n FROM sys_events WHERE processed_at IS NULL",
        ))
        .await?
    {
        gauges.events_unprocessed = row.try_get("", "n")?;
    }
    Ok(gauges)
}

/// When a flow's version was published (a schedule's ticks count from then).
pub async fn published_at<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    version: i32,
) -> Result<Option<i64>> {
    use sea_orm::EntityTrait;
    Ok(
        crate::entities::flow_version::Entity::find_by_id((flow_id, version))
            .one(conn)
            .await?
            .map(|v| v.published_at.timestamp_millis()),
    )
}

/// The latest tick a flow's schedule fired.
pub async fn last_tick<C: ConnectionTrait>(conn: &C, flow_id: i64) -> Result<Option<i64>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT MAX(tick_at) AS t FROM sys_schedule_ticks WHERE flow_id = ")
        .bind(flow_id);
    match conn.query_one_raw(sql.statement()).await? {
        Some(row) => row.try_get("", "t"),
        None => Ok(None),
    }
}

/// Records that a tick fires; `false` when another scheduler recorded it first.
pub async fn claim_tick<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    tick_at: i64,
    now: i64,
) -> Result<bool> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("INSERT INTO sys_schedule_ticks (flow_id, tick_at, fired_at) VALUES (")
        .bind(flow_id)
        .push(", ")
        .bind(tick_at)
        .push(", ")
        .bind(now)
        .push(") ON CONFLICT (flow_id, tick_at) DO NOTHING");
    Ok(conn.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// PT-4: the pseudonym of each contact (negative ids), created for those without one when
/// `create` is set.
pub async fn pseudonyms_for<C: ConnectionTrait>(
    conn: &C,
    contacts: &[i64],
    create: bool,
    now: i64,
) -> Result<HashMap<i64, i64>> {
    let lookup = async |contacts: &[i64]| -> Result<HashMap<i64, i64>> {
        let mut found = HashMap::new();
        for chunk in contacts.chunks(max_rows(1)) {
            let mut sql = Sql::new(conn.get_database_backend());
            sql.push("SELECT pseudonym, contact_id FROM sys_pseudonyms WHERE ")
                .in_list("contact_id", chunk.iter().copied());
            for row in conn.query_all_raw(sql.statement()).await? {
                found.insert(
                    row.try_get("", "contact_id")?,
                    row.try_get("", "pseudonym")?,
                );
            }
        }
        Ok(found)
    };
    let mut found = lookup(contacts).await?;
    let missing: Vec<i64> = contacts
        .iter()
        .copied()
        .filter(|c| !found.contains_key(c))
        .collect();
    if !create || missing.is_empty() {
        return Ok(found);
    }
    let columns = [("pseudonym", Ty::BigInt), ("contact_id", Ty::BigInt)];
    for chunk in missing.chunks(max_rows(2)) {
        let rows = chunk
            .iter()
            .map(|&c| {
                let pseudonym = -((rand::random::<u64>() >> 2) as i64) - 1;
                vec![pseudonym.into(), c.into()]
            })
            .collect();
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("INSERT INTO sys_pseudonyms (pseudonym, contact_id, created_at) SELECT pseudonym, contact_id, ")
            .bind(now)
            .push(" FROM ")
            .rows(&columns, rows)
            .push(" AS v WHERE true ON CONFLICT DO NOTHING");
        conn.execute_raw(sql.statement()).await?;
    }
    // Another worker may have given some of them a pseudonym first: read back what is stored.
    found.extend(lookup(&missing).await?);
    Ok(found)
}

/// The contacts behind pseudonyms.
pub async fn contacts_of<C: ConnectionTrait>(
    conn: &C,
    pseudonyms: &[i64],
) -> Result<HashMap<i64, i64>> {
    let mut found = HashMap::new();
    for chunk in pseudonyms.chunks(max_rows(1)) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("SELECT pseudonym, contact_id FROM sys_pseudonyms WHERE ")
            .in_list("pseudonym", chunk.iter().copied());
        for row in conn.query_all_raw(sql.statement()).await? {
            found.insert(
                row.try_get("", "pseudonym")?,
                row.try_get("", "contact_id")?,
            );
        }
    }
    Ok(found)
}

/// The members of a `segment_enter` flow's segment as last seen, in id order.
pub async fn flow_members<C: ConnectionTrait>(conn: &C, flow_id: i64) -> Result<Vec<i64>> {
    let mut sql = Sql::new(conn.get_database_backend());
    sql.push("SELECT contact_id FROM sys_flow_members WHERE flow_id = ")
        .bind(flow_id)
        .push(" ORDER BY contact_id");
    conn.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|r| r.try_get("", "contact_id"))
        .collect()
}

/// Records contacts as members; returns those that were not members already (another worker
/// may have recorded some first).
pub async fn add_flow_members<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    contacts: Vec<i64>,
    now: i64,
) -> Result<Vec<i64>> {
    let columns = [("contact_id", Ty::BigInt)];
    let returned = per_batch(
        conn,
        contacts,
        &columns,
        |c| vec![c.into()],
        |sql, rows| {
            sql.push("INSERT INTO sys_flow_members (flow_id, contact_id, joined_at) SELECT ")
                .bind(flow_id)
                .push(", contact_id, ")
                .bind(now)
                .push(" FROM ")
                .rows(&columns, rows)
                .push(
                    " AS v WHERE true ON CONFLICT (flow_id, contact_id) DO NOTHING \
                     RETURNING contact_id",
                );
        },
    )
    .await?;
    returned
        .iter()
        .map(|r| r.try_get("", "contact_id"))
        .collect()
}

pub async fn remove_flow_members<C: ConnectionTrait>(
    conn: &C,
    flow_id: i64,
    contacts: &[i64],
) -> Result<()> {
    for chunk in contacts.chunks(max_rows(1)) {
        let mut sql = Sql::new(conn.get_database_backend());
        sql.push("DELETE FROM sys_flow_members WHERE flow_id = ")
            .bind(flow_id)
            .push(" AND ")
            .in_list("contact_id", chunk.iter().copied());
        conn.execute_raw(sql.statement()).await?;
    }
    Ok(())
}
