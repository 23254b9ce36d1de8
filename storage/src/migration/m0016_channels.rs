//! Channels an administrator configures (SMS, LINE, webhook): the public settings and the
//! credential, sealed by the engine before it reaches the database.
//!
//! The suppression list: addresses a channel must not send to any more, because they bounced,
//! their owner complained, or staff said so (kept by address, so a contact imported again with
//! the same address stays suppressed).
//!
//! A removed channel keeps its row with the settings and credential cleared, so `revision`
//! only ever grows and processes can tell any change by its sum.

use sea_orm_migration::prelude::*;

use super::columns::{big, big_null, text, text_null, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_channels")
                .col(text("channel").primary_key())
                .col(text_null("settings"))
                .col(text_null("credential"))
                .col(big("revision"))
                .col(text("updated_by"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_suppressions")
                .col(text("channel"))
                .col(text("address"))
                .col(text("reason"))
                .col(text("detail"))
                .col(big_null("contact_id"))
                .col(text("created_by"))
                .col(time("created_at"))
                .primary_key(Index::create().col("channel").col("address"))
                .take(),
        )
        .await?;
        Ok(())
    }
}
