//! Timers: waiting runs whose wake time has come, claimed in batches in wake order.

use sea_orm::DbBackend;
use serde_json::Map;
use tabiji_storage::db::begin_write;
use tabiji_storage::journeys;

use super::{Move, Result, Runtime, machine_run, millis};
use crate::machine::{Input, apply_with};

impl Runtime {
    /// Moves one batch of due runs of active flows. Returns how many moved.
    pub async fn timer_step(&self) -> Result<usize> {
        let conn = &self.store.db().conn;
        let now = self.now();
        let active: Vec<i64> = journeys::live_flows(conn)
            .await?
            .into_iter()
            .filter(|f| f.active)
            .map(|f| f.id)
            .collect();
        // PostgreSQL locks the due rows in the transaction that moves them; SQLite, which
        // has one writer at a time, leases them first and moves them in a second transaction.
        let (txn, due) = if conn.get_database_backend() == DbBackend::Postgres {
            let txn = begin_write(conn).await?;
            let due =
                journeys::lock_due_runs(&txn, &active, millis(now), self.config.batch).await?;
            (Some(txn), due)
        } else {
            let lease = self.config.lease.as_millis() as i64;
            let due =
                journeys::claim_due_runs(conn, &active, millis(now), lease, self.config.batch)
                    .await?;
            (None, due)
        };
        if due.is_empty() {
            return Ok(0);
        }
        let mut wanted = Vec::with_capacity(due.len());
        for row in &due {
            wanted.push((self.flow(row.flow_id, row.version).await?, row.contact_id));
        }
        let data = self.contacts_for(&wanted).await?;
        let library = self.conditions(wanted.iter().map(|(f, _)| &**f)).await?;
        let empty = Map::new();
        let moves: Vec<Move> = due
            .into_iter()
            .zip(wanted)
            .map(|(row, (flow, _))| {
                let run = machine_run(&row);
                let input = Input::Timer {
                    iteration: run.iteration,
                };
                let contact = data.get(&row.contact_id).unwrap_or(&empty);
                let (next, actions) =
                    apply_with(&flow, &run, contact, &input, now, super::decider(&library));
                Move {
                    stored: Some((row.id, row.iteration)),
                    flow_id: row.flow_id,
                    version: row.version,
                    contact_id: row.contact_id,
                    entry_key: row.entry_key,
                    run: next,
                    actions,
                }
            })
            .collect();
        let txn = match txn {
            Some(txn) => txn,
            None => begin_write(conn).await?,
        };
        let moved = self.store_moves(&txn, moves, now).await?;
        txn.commit().await?;
        self.wrote(moved.len()).await?;
        Ok(moved.len())
    }
}
