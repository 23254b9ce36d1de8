//! Scheduled import fetches: one row per flow and due time, so however many workers run the
//! scheduler, each fetch fires once.

use sea_orm_migration::prelude::*;

use super::columns::{big, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_import_ticks")
                .col(text("flow_key"))
                .col(big("tick_at"))
                .col(big("fired_at"))
                .primary_key(Index::create().col("flow_key").col("tick_at"))
                .take(),
        )
        .await?;
        Ok(())
    }
}
