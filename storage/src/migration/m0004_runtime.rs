//! The engine's runtime tables: runs, the step log, the delivery outbox, events, entry
//! cursors, schedule ticks and pseudonyms. Times are milliseconds since the Unix epoch (UTC)
//! in BIGINT columns: compact, the same on both backends, and compared without parsing.

use sea_orm_migration::prelude::*;

use super::columns::{big, big_null, id, text, text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One contact's journey through one flow version. `iteration` counts the waits begun:
        // every move out of a wait is a compare-and-set on it, so a timer and an event racing
        // for the same wait move the run once.
        m.create_table(
            Table::create()
                .table("sys_runs")
                .col(id())
                .col(big("flow_id"))
                .col(ColumnDef::new("version").integer().not_null())
                .col(big("contact_id"))
                .col(text("entry_key"))
                .col(text("state"))
                .col(text_null("node"))
                .col(big_null("wake_at"))
                .col(ColumnDef::new("iteration").integer().not_null())
                .col(text_null("outcome"))
                .col(big_null("lease_until"))
                .col(big("entered_at"))
                .col(big("updated_at"))
                .take(),
        )
        .await?;
        // The step log (PT-2): every node a run passed and what happened there.
        m.create_table(
            Table::create()
                .table("sys_run_steps")
                .col(id())
                .col(big("run_id"))
                .col(big("flow_id"))
                .col(text("node"))
                .col(text("outcome"))
                .col(big("at"))
                .take(),
        )
        .await?;
        // The outbox: written with the state change that decided the send, before any provider
        // is called. (run_id, node, iteration) is the idempotency key.
        m.create_table(
            Table::create()
                .table("sys_deliveries")
                .col(id())
                .col(big("run_id"))
                .col(big("flow_id"))
                .col(text("node"))
                .col(ColumnDef::new("iteration").integer().not_null())
                .col(big("contact_id"))
                .col(text("channel"))
                .col(text("template"))
                .col(text_null("sender"))
                .col(text("status"))
                .col(ColumnDef::new("attempts").integer().not_null())
                .col(big("next_attempt_at"))
                .col(big_null("lease_until"))
                .col(text_null("provider_ref"))
                .col(text_null("error"))
                .col(big("created_at"))
                .col(big("updated_at"))
                .take(),
        )
        .await?;
        // Events from partner systems and tracking, deduplicated by the sender's event key.
        m.create_table(
            Table::create()
                .table("sys_events")
                .col(id())
                .col(text("event_key"))
                .col(big("contact_id"))
                .col(text("name"))
                .col(big_null("delivery_id"))
                .col(text("properties"))
                .col(big("occurred_at"))
                .col(big("received_at"))
                .col(big_null("processed_at"))
                .col(big_null("lease_until"))
                .take(),
        )
        .await?;
        // How far a bulk entry (a segment snapshot) has got: pause and resume continue here.
        m.create_table(
            Table::create()
                .table("sys_flow_entries")
                .col(big("flow_id"))
                .col(ColumnDef::new("version").integer().not_null())
                .col(text("entry_key"))
                .col(big("cursor"))
                .col(ColumnDef::new("done").boolean().not_null())
                .col(big("entered"))
                .col(big("started_at"))
                .col(big("updated_at"))
                .primary_key(Index::create().col("flow_id").col("entry_key"))
                .take(),
        )
        .await?;
        // One row per schedule tick fired: the primary key is what makes a tick fire once
        // however many schedulers see it.
        m.create_table(
            Table::create()
                .table("sys_schedule_ticks")
                .col(big("flow_id"))
                .col(big("tick_at"))
                .col(big("fired_at"))
                .primary_key(Index::create().col("flow_id").col("tick_at"))
                .take(),
        )
        .await?;
        // PT-4: the pseudonymous ids that privacy-mode flows hold instead of contact ids. They
        // are negative, so they can never be mistaken for a contact id.
        m.create_table(
            Table::create()
                .table("sys_pseudonyms")
                .col(
                    ColumnDef::new("pseudonym")
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .col(big("contact_id"))
                .col(big("created_at"))
                .take(),
        )
        .await?;
        let db = m.get_connection();
        for sql in [
            "CREATE UNIQUE INDEX sys_runs_key ON sys_runs (flow_id, contact_id, entry_key)",
            "CREATE INDEX sys_runs_due ON sys_runs (wake_at) WHERE state = 'waiting'",
            "CREATE INDEX sys_runs_contact ON sys_runs (contact_id) WHERE state = 'waiting'",
            "CREATE INDEX sys_runs_flow_node ON sys_runs (flow_id, state, node)",
            "CREATE INDEX sys_run_steps_run ON sys_run_steps (run_id)",
            "CREATE INDEX sys_run_steps_flow ON sys_run_steps (flow_id, node, outcome)",
            "CREATE UNIQUE INDEX sys_deliveries_key ON sys_deliveries (run_id, node, iteration)",
            "CREATE INDEX sys_deliveries_due ON sys_deliveries (next_attempt_at) \
             WHERE status = 'pending'",
            "CREATE INDEX sys_deliveries_sending ON sys_deliveries (lease_until) \
             WHERE status = 'sending'",
            "CREATE INDEX sys_deliveries_flow ON sys_deliveries (flow_id, status)",
            "CREATE INDEX sys_deliveries_contact ON sys_deliveries (contact_id, created_at)",
            "CREATE UNIQUE INDEX sys_events_key ON sys_events (event_key)",
            "CREATE UNIQUE INDEX sys_pseudonyms_contact ON sys_pseudonyms (contact_id)",
            "CREATE INDEX sys_events_new ON sys_events (id) WHERE processed_at IS NULL",
            "CREATE INDEX sys_events_contact ON sys_events (contact_id, occurred_at)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            // Queue tables: every claim and settlement leaves a dead row version behind, and a
            // claim walks its index past them until they are vacuumed. Vacuum them after 1 %
            // churn rather than PostgreSQL's default 20 %, without throttling.
            for table in ["sys_runs", "sys_deliveries", "sys_events"] {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.01, \
                     autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0)"
                ))
                .await?;
            }
        }
        Ok(())
    }
}
